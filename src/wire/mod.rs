//! Wire formats that etherparse and smoltcp do not cover: capture link headers (Linux SLL
//! and SLL2, BSD loopback, PPP, NFLOG), the encapsulations in front of a packet (tunnels and
//! link-layer wrappers), the few transport fields a monitor needs even from truncated
//! headers and first fragments, the DNS question and answers, the TLS ClientHello (with its
//! JA4) and ServerHello, QUIC client Initials (decrypted with ring) and the HTTP/1.x request
//! head.
//!
//! Parsing only: each function reads a byte slice, checks every length before using it, and
//! returns borrowed views or small values. No logic, and no allocation, except that the
//! ClientHello and request-head readers copy out the few names they return (a hello may
//! span several records) and a QUIC Initial is decrypted into a buffer of its own.

pub mod dhcp;
pub mod dns;
pub mod encap;
pub mod http;
pub mod ipv6;
pub mod l4;
pub mod link;
pub mod netbios;
pub mod quic;
pub mod tls;
