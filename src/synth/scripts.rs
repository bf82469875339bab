//! Scripts: the frames of one benign session or one attack, with their times.

use std::net::Ipv4Addr;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::hosts::*;
use super::{Attack, Body, Spec};
use crate::packet::TcpFlags;

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000_000_000;

const SYN: u8 = TcpFlags::SYN;
const SYNACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
const ACK: u8 = TcpFlags::ACK;
const PSHACK: u8 = TcpFlags::PSH | TcpFlags::ACK;
const FINACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RSTACK: u8 = TcpFlags::RST | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

/// Public servers the benign clients talk to (well-known service addresses).
const SERVERS: [Ipv4Addr; 10] = [
    Ipv4Addr::new(93, 184, 216, 34),
    Ipv4Addr::new(151, 101, 1, 69),
    Ipv4Addr::new(142, 250, 74, 110),
    Ipv4Addr::new(104, 16, 132, 229),
    Ipv4Addr::new(13, 107, 42, 14),
    Ipv4Addr::new(185, 199, 108, 153),
    Ipv4Addr::new(17, 253, 144, 10),
    Ipv4Addr::new(31, 13, 72, 36),
    Ipv4Addr::new(52, 95, 110, 1),
    Ipv4Addr::new(140, 82, 121, 4),
];

const NAMES: [&str; 10] = [
    "www.example.com",
    "cdn.jsdelivr.net",
    "www.google.com",
    "api.github.com",
    "login.microsoftonline.com",
    "www.wikipedia.org",
    "time.cloudflare.com",
    "updates.signal.org",
    "deb.debian.org",
    "connectivity-check.ubuntu.com",
];

const NTP_SERVER: Ipv4Addr = Ipv4Addr::new(162, 159, 200, 1);
const PING_TARGET: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

type Frames = Vec<(i64, Spec)>;

fn client(rng: &mut ChaCha8Rng) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, rng.random_range(10..=60))
}

fn ephemeral(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(32768..=60999)
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8, payload: u16) -> Spec {
    Spec {
        src,
        dst,
        body: Body::Tcp {
            sport,
            dport,
            flags,
            seq: 1,
            ack: 1,
            payload,
        },
    }
}

/// A TCP conversation: handshake, `exchanges` request/response rounds, FIN close.
#[allow(clippy::too_many_arguments)]
fn tcp_session(
    rng: &mut ChaCha8Rng,
    at: i64,
    c: Ipv4Addr,
    s: Ipv4Addr,
    dport: u16,
    exchanges: u32,
    request: (u16, u16),
    response_segments: (u16, u16),
) -> Frames {
    let sport = ephemeral(rng);
    let rtt = rng.random_range(5..40) * MS;
    let mut t = at;
    let mut out = vec![(t, tcp(c, s, sport, dport, SYN, 0))];
    t += rtt / 2;
    out.push((t, tcp(s, c, dport, sport, SYNACK, 0)));
    t += rtt / 2;
    out.push((t, tcp(c, s, sport, dport, ACK, 0)));
    for _ in 0..exchanges {
        t += rng.random_range(1..20) * MS;
        let len = rng.random_range(request.0..=request.1);
        out.push((t, tcp(c, s, sport, dport, PSHACK, len)));
        t += rtt / 2;
        let segments = rng.random_range(response_segments.0..=response_segments.1);
        for i in 0..segments {
            let len = if i + 1 == segments {
                rng.random_range(100..1448)
            } else {
                1448
            };
            out.push((t, tcp(s, c, dport, sport, PSHACK, len)));
            t += 200_000;
        }
        t += rtt / 2;
        out.push((t, tcp(c, s, sport, dport, ACK, 0)));
    }
    t += rng.random_range(5..100) * MS;
    out.push((t, tcp(c, s, sport, dport, FINACK, 0)));
    t += rtt / 2;
    out.push((t, tcp(s, c, dport, sport, FINACK, 0)));
    t += rtt / 2;
    out.push((t, tcp(c, s, sport, dport, ACK, 0)));
    out
}

fn dns_pair(rng: &mut ChaCha8Rng, at: i64, c: Ipv4Addr, name: &str, qtype: u16) -> Frames {
    let sport = ephemeral(rng);
    let id: u16 = rng.random_range(0..=u16::MAX);
    let q = Spec {
        src: c,
        dst: GATEWAY,
        body: Body::Dns {
            sport,
            response: false,
            id,
            qtype,
            name: name.to_string(),
        },
    };
    let r = Spec {
        src: GATEWAY,
        dst: c,
        body: Body::Dns {
            sport,
            response: true,
            id,
            qtype,
            name: name.to_string(),
        },
    };
    vec![(at, q), (at + rng.random_range(1..30) * MS, r)]
}

/// One benign session of a random kind.
pub(super) fn benign_session(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    let c = client(rng);
    match rng.random_range(0..100) {
        0..=44 => {
            let s = SERVERS[rng.random_range(0..SERVERS.len())];
            let name = NAMES[rng.random_range(0..NAMES.len())];
            let exchanges = rng.random_range(1..=3);
            let mut frames = dns_pair(rng, at, c, name, 1);
            frames.extend(tcp_session(
                rng,
                at + 40 * MS,
                c,
                s,
                443,
                exchanges,
                (300, 900),
                (1, 12),
            ));
            frames
        }
        45..=74 => {
            let qtype = if rng.random_bool(0.7) { 1 } else { 28 };
            let name = NAMES[rng.random_range(0..NAMES.len())];
            dns_pair(rng, at, c, name, qtype)
        }
        75..=84 => (0..4u16)
            .flat_map(|seq| {
                let t = at + i64::from(seq) * SEC;
                let id = 0x1d00 | u16::from(c.octets()[3]);
                [
                    (
                        t,
                        Spec {
                            src: c,
                            dst: PING_TARGET,
                            body: Body::IcmpEcho {
                                reply: false,
                                id,
                                seq,
                            },
                        },
                    ),
                    (
                        t + 12 * MS,
                        Spec {
                            src: PING_TARGET,
                            dst: c,
                            body: Body::IcmpEcho {
                                reply: true,
                                id,
                                seq,
                            },
                        },
                    ),
                ]
            })
            .collect(),
        85..=92 => vec![
            (
                at,
                Spec {
                    src: c,
                    dst: NTP_SERVER,
                    body: Body::Udp {
                        sport: 123,
                        dport: 123,
                        payload: 48,
                    },
                },
            ),
            (
                at + 20 * MS,
                Spec {
                    src: NTP_SERVER,
                    dst: c,
                    body: Body::Udp {
                        sport: 123,
                        dport: 123,
                        payload: 48,
                    },
                },
            ),
        ],
        // The gateway asks for a client, which answers (as a live host does).
        93..=96 => vec![
            (
                at,
                Spec {
                    src: GATEWAY,
                    dst: c,
                    body: Body::Arp { reply: false },
                },
            ),
            (
                at + MS / 5,
                Spec {
                    src: c,
                    dst: GATEWAY,
                    body: Body::Arp { reply: true },
                },
            ),
        ],
        _ => {
            // LAN file share: SMB between two clients.
            let other = client(rng);
            tcp_session(rng, at, c, other, 445, 2, (100, 400), (2, 20))
        }
    }
}

/// One minimum-size UDP frame (46 bytes of IP), for capture-rate tests.
pub(super) fn small_udp(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    let sport = rng.random_range(1024..=65535);
    vec![(
        at,
        Spec {
            src: SMALL_A,
            dst: SMALL_B,
            body: Body::Udp {
                sport,
                dport: 9,
                payload: 18,
            },
        },
    )]
}

pub(super) fn attack(kind: Attack, rng: &mut ChaCha8Rng, at: i64) -> Frames {
    match kind {
        Attack::Portscan => portscan(rng, at),
        Attack::Synflood => synflood(rng, at),
        Attack::Bruteforce => bruteforce(rng, at),
        Attack::Dnstunnel => dnstunnel(rng, at),
        Attack::Spike => spike(rng, at),
    }
}

/// nmap -sS style: SYN to ports 1..=1024 at 500 per second; closed ports answer RST/ACK, open
/// ones (22, 80, 443) SYN/ACK, which the scanner resets.
fn portscan(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    let (a, v) = (SCAN_ATTACKER, SCAN_TARGET);
    let sport = ephemeral(rng);
    let mut out = Vec::new();
    for (i, port) in (1..=1024u16).enumerate() {
        let t = at + i as i64 * 2 * MS;
        out.push((t, tcp(a, v, sport, port, SYN, 0)));
        if matches!(port, 22 | 80 | 443) {
            out.push((t + MS / 2, tcp(v, a, port, sport, SYNACK, 0)));
            out.push((t + MS, tcp(a, v, sport, port, RST, 0)));
        } else {
            out.push((t + MS / 2, tcp(v, a, port, sport, RSTACK, 0)));
        }
    }
    out
}

/// 6,000 SYNs from random spoofed sources to port 80 at 2,000/s (one SYN per source, a few
/// answered), and 150 SYNs from one source to port 443 within 2 s.
fn synflood(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    let mut out = Vec::new();
    for i in 0..6000i64 {
        let src = Ipv4Addr::from(rng.random_range(0x0100_0000u32..0xdf00_0000));
        let sport = ephemeral(rng);
        let t = at + i * SEC / 2000;
        out.push((t, tcp(src, FLOOD_TARGET, sport, 80, SYN, 0)));
        if i % 50 == 0 {
            out.push((t + MS, tcp(FLOOD_TARGET, src, 80, sport, SYNACK, 0)));
        }
    }
    for i in 0..150i64 {
        let sport = 1024 + i as u16;
        out.push((
            at + i * 13 * MS,
            tcp(FLOOD_SINGLE_SOURCE, FLOOD_TARGET, sport, 443, SYN, 0),
        ));
    }
    out
}

/// 40 short SSH sessions (handshake, a few small exchanges, FIN) every 0.5 s, then 12 RDP
/// attempts answered by RST within 6 s.
fn bruteforce(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    let mut out = Vec::new();
    for i in 0..40i64 {
        out.extend(tcp_session(
            rng,
            at + i * SEC / 2,
            BRUTE_ATTACKER,
            BRUTE_TARGET,
            22,
            3,
            (40, 120),
            (1, 1),
        ));
    }
    for i in 0..12i64 {
        let t = at + 21 * SEC + i * SEC / 2;
        let sport = ephemeral(rng);
        out.push((t, tcp(BRUTE_ATTACKER, BRUTE_TARGET, sport, 3389, SYN, 0)));
        out.push((
            t + MS,
            tcp(BRUTE_TARGET, BRUTE_ATTACKER, 3389, sport, RSTACK, 0),
        ));
    }
    out
}

/// 200 TXT queries of 52-character base32 labels under one domain, 25 per second.
fn dnstunnel(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = Vec::new();
    for i in 0..200i64 {
        let label: String = (0..52)
            .map(|_| BASE32[rng.random_range(0..32)] as char)
            .collect();
        let name = format!("{label}.{i}.{TUNNEL_DOMAIN}");
        out.extend(dns_pair(rng, at + i * 40 * MS, TUNNEL_CLIENT, &name, 16));
    }
    out
}

/// A 3-second bulk download of full-size segments at 3,000 per second.
fn spike(rng: &mut ChaCha8Rng, at: i64) -> Frames {
    let (c, s) = (SPIKE_CLIENT, SPIKE_SERVER);
    let sport = ephemeral(rng);
    let mut out = vec![
        (at, tcp(c, s, sport, 443, SYN, 0)),
        (at + 10 * MS, tcp(s, c, 443, sport, SYNACK, 0)),
        (at + 20 * MS, tcp(c, s, sport, 443, PSHACK, 400)),
    ];
    for i in 0..9000i64 {
        let t = at + 30 * MS + i * SEC / 3000;
        out.push((t, tcp(s, c, 443, sport, ACK, 1448)));
        if i % 2 == 1 {
            out.push((t + 100_000, tcp(c, s, sport, 443, ACK, 0)));
        }
    }
    let end = at + 30 * MS + 3 * SEC;
    out.push((end, tcp(s, c, 443, sport, FINACK, 0)));
    out.push((end + 10 * MS, tcp(c, s, sport, 443, FINACK, 0)));
    out
}
