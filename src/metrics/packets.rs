//! A bounded ring of recent packets, rendered in the published Packet shape on request.

use std::collections::VecDeque;
use std::fmt::Write;
use std::net::IpAddr;

use serde::Serialize;

use crate::packet::{DnsMeta, Network, PacketBatch, PacketMeta, Protocol, TcpFlags};
use crate::wire::dns::{display_name, qtype_name};

/// A recent packet as kept in the ring: the decoded facts plus its DNS name, if any.
#[derive(Clone, Debug)]
struct Recent {
    id: u64,
    meta: PacketMeta,
    /// DNS query name in display form (only DNS packets allocate).
    domain: Option<Box<str>>,
}

/// The published Packet / PacketDetail shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PacketView {
    pub id: u64,
    pub timestamp_ms: i64,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub protocol: &'static str,
    pub size_bytes: u32,
    pub data_length: u32,
    pub flags: Option<String>,
    pub info: String,
    pub domain: Option<String>,
    pub vlan: Option<u16>,
}

/// The last `capacity` packets; ids increase from 1 and are never reused.
#[derive(Debug)]
pub struct PacketRing {
    capacity: usize,
    ring: VecDeque<Recent>,
    next_id: u64,
}

impl PacketRing {
    pub fn new(capacity: usize) -> Self {
        PacketRing {
            capacity,
            ring: VecDeque::with_capacity(capacity.min(1024)),
            next_id: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn push_batch(&mut self, batch: &PacketBatch) {
        if self.capacity == 0 {
            self.next_id += batch.len() as u64;
            return;
        }
        // Only the tail of a batch bigger than the ring can survive.
        let skip = batch.len().saturating_sub(self.capacity);
        self.next_id += skip as u64;
        for meta in &batch.packets[skip..] {
            if self.ring.len() == self.capacity {
                self.ring.pop_front();
            }
            let domain = batch.qname(meta).map(|n| display_name(n).into_boxed_str());
            self.ring.push_back(Recent {
                id: self.next_id,
                meta: *meta,
                domain,
            });
            self.next_id += 1;
        }
    }

    /// Newest first.
    pub fn latest(&self, limit: usize) -> Vec<PacketView> {
        self.ring.iter().rev().take(limit).map(view).collect()
    }

    pub fn get(&self, id: u64) -> Option<PacketView> {
        let first = self.ring.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        self.ring.get(index).map(view)
    }
}

fn view(r: &Recent) -> PacketView {
    let m = &r.meta;
    let protocol = m.protocol();
    let ports = m.has_ports && matches!(protocol, Protocol::Tcp | Protocol::Udp | Protocol::Dns);
    PacketView {
        id: r.id,
        timestamp_ms: m.ts.millis(),
        src_ip: m.src,
        dst_ip: m.dst,
        src_port: ports.then_some(m.src_port),
        dst_port: ports.then_some(m.dst_port),
        protocol: protocol.name(),
        size_bytes: m.wire_len,
        data_length: m.payload_len,
        flags: (m.is_tcp() && m.has_ports).then(|| m.tcp_flags.to_string()),
        info: info(m, r.domain.as_deref()),
        domain: r.domain.as_deref().map(str::to_string),
        vlan: m.vlan,
    }
}

/// A one-line summary in the spirit of Wireshark's Info column.
fn info(m: &PacketMeta, domain: Option<&str>) -> String {
    if let (Some(dns), Some(name)) = (m.dns, domain) {
        return dns_info(&dns, name);
    }
    match m.network {
        Network::Arp => match m.icmp_type {
            1 => format!("Who has {}? Tell {}", m.dst, m.src),
            2 => format!("{} is at its sender's MAC (reply to {})", m.src, m.dst),
            op => format!("ARP operation {op}"),
        },
        Network::Other { ether_type } => format!("EtherType 0x{ether_type:04x}"),
        Network::Ipv4 | Network::Ipv6 => match m.protocol() {
            Protocol::Tcp => {
                let flags = if m.tcp_flags == TcpFlags(0) {
                    "none".to_string()
                } else {
                    m.tcp_flags.to_string()
                };
                format!(
                    "{} → {} [{}] len={}",
                    m.src_port, m.dst_port, flags, m.payload_len
                )
            }
            Protocol::Udp | Protocol::Dns => {
                format!("{} → {} len={}", m.src_port, m.dst_port, m.payload_len)
            }
            Protocol::Icmp | Protocol::Icmpv6 => icmp_info(m),
            _ if m.fragment == crate::packet::Fragment::Later => {
                format!("IP fragment (protocol {}, id {})", m.ip_proto, m.frag_id)
            }
            _ => format!("IP protocol {}", m.ip_proto),
        },
    }
}

fn dns_info(dns: &DnsMeta, name: &str) -> String {
    let kind = if dns.is_response {
        "Standard query response"
    } else {
        "Standard query"
    };
    let mut s = format!("{kind} 0x{:04x} {} {}", dns.id, qtype_name(dns.qtype), name);
    if dns.is_response && dns.rcode != 0 {
        let _ = write!(s, " {}", rcode_name(dns.rcode));
    }
    s
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

fn icmp_info(m: &PacketMeta) -> String {
    let v6 = m.ip_proto == crate::packet::ip_proto::ICMPV6;
    let name = match (v6, m.icmp_type, m.icmp_code) {
        (false, 8, _) => "Echo (ping) request".to_string(),
        (false, 0, _) => "Echo (ping) reply".to_string(),
        (false, 3, 3) => "Destination unreachable (Port unreachable)".to_string(),
        (false, 3, 1) => "Destination unreachable (Host unreachable)".to_string(),
        (false, 3, c) => format!("Destination unreachable (code {c})"),
        (false, 11, _) => "Time-to-live exceeded".to_string(),
        (false, 5, _) => "Redirect".to_string(),
        (true, 128, _) => "Echo (ping) request".to_string(),
        (true, 129, _) => "Echo (ping) reply".to_string(),
        (true, 1, _) => "Destination unreachable".to_string(),
        (true, 2, _) => "Packet too big".to_string(),
        (true, 3, _) => "Time exceeded".to_string(),
        (true, 133, _) => "Router solicitation".to_string(),
        (true, 134, _) => "Router advertisement".to_string(),
        (true, 135, _) => "Neighbor solicitation".to_string(),
        (true, 136, _) => "Neighbor advertisement".to_string(),
        (_, t, c) => format!("type {t} code {c}"),
    };
    if v6 { format!("ICMPv6 {name}") } else { name }
}
