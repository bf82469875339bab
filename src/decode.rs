//! Frame → `PacketMeta`: link header, VLAN tags, IP (v4 options and fragments, v6 extension
//! chains), transport fields, ARP and the DNS question.
//!
//! etherparse slices Ethernet, VLAN/QinQ and the IP layers; smoltcp's `wire` reads ARP;
//! `crate::wire` covers the link headers and fields neither does. Decoding never panics, never
//! trusts a length field, and allocates nothing per packet (the DNS name goes into the batch
//! arena, which is reused capacity).

use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket};
use serde::Serialize;

use crate::packet::{Fragment, Network, PacketBatch, PacketMeta, Timestamp, ip_proto};
use crate::wire::link::{self, Inner, LinkError, LinkType, ether_type};
use crate::wire::{dns, l4};

/// Why a frame produced no `PacketMeta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The capture's link type is not one tapir decodes (802.11, D-Bus, ...).
    UnsupportedLinkType,
    /// The frame is shorter than its link header.
    TruncatedLinkHeader,
    /// EtherType says IPv4 but the header is unreadable (bad version, length or IHL).
    MalformedIpv4,
    /// EtherType says IPv6 but the header or extension chain is unreadable.
    MalformedIpv6,
    /// A raw-IP frame whose version nibble is neither 4 nor 6.
    BadIpVersion,
    /// EtherType says ARP but the packet is truncated.
    MalformedArp,
}

impl SkipReason {
    pub const ALL: [SkipReason; 6] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::TruncatedLinkHeader,
        SkipReason::MalformedIpv4,
        SkipReason::MalformedIpv6,
        SkipReason::BadIpVersion,
        SkipReason::MalformedArp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::TruncatedLinkHeader => "truncated_link_header",
            SkipReason::MalformedIpv4 => "malformed_ipv4",
            SkipReason::MalformedIpv6 => "malformed_ipv6",
            SkipReason::BadIpVersion => "bad_ip_version",
            SkipReason::MalformedArp => "malformed_arp",
        }
    }
}

/// Running counts of what the decoder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeCounters {
    pub decoded: u64,
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Port-53 payloads that were not a readable DNS message (the packet is still counted).
    pub dns_malformed: u64,
}

impl DecodeCounters {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// Non-zero skip counts by reason name.
    pub fn skipped_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SkipReason::ALL
            .into_iter()
            .zip(self.skipped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name(), n))
    }

    pub fn add(&mut self, other: &DecodeCounters) {
        self.decoded += other.decoded;
        self.dns_malformed += other.dns_malformed;
        for (a, b) in self.skipped.iter_mut().zip(other.skipped) {
            *a += b;
        }
    }
}

/// Ports on which UDP/TCP payloads are read as DNS (DNS, mDNS, LLMNR).
fn is_dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
}

/// Decodes frames into a batch and keeps counts.
#[derive(Debug, Default)]
pub struct Decoder {
    pub counters: DecodeCounters,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one frame and appends it to `batch`; a frame that cannot be decoded is counted
    /// under its reason and returned as the error.
    pub fn decode_into(
        &mut self,
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        frame: &[u8],
        batch: &mut PacketBatch,
    ) -> Result<(), SkipReason> {
        match decode(link, ts, wire_len, frame, &mut batch.names) {
            Ok((meta, dns_ok)) => {
                self.counters.decoded += 1;
                self.counters.dns_malformed += u64::from(!dns_ok);
                batch.packets.push(meta);
                Ok(())
            }
            Err(reason) => {
                self.counters.skipped[reason as usize] += 1;
                Err(reason)
            }
        }
    }
}

/// Decodes one frame; the flag is false when a DNS-port payload was not readable DNS.
pub fn decode(
    link: LinkType,
    ts: Timestamp,
    wire_len: u32,
    frame: &[u8],
    names: &mut Vec<u8>,
) -> Result<(PacketMeta, bool), SkipReason> {
    let mut meta = PacketMeta::blank(ts, wire_len.max(frame.len() as u32));
    let inner = link::strip(link, frame).map_err(|e| match e {
        LinkError::Truncated => SkipReason::TruncatedLinkHeader,
        LinkError::Unsupported => SkipReason::UnsupportedLinkType,
    })?;
    let sliced = match inner {
        Inner::Ethernet(bytes) => {
            LaxSlicedPacket::from_ethernet(bytes).map_err(|_| SkipReason::TruncatedLinkHeader)?
        }
        Inner::EtherType(et, bytes) => LaxSlicedPacket::from_ether_type(EtherType(et), bytes),
        Inner::Ip(bytes) => match bytes.first().map(|b| b >> 4) {
            Some(4) => LaxSlicedPacket::from_ether_type(EtherType(ether_type::IPV4), bytes),
            Some(6) => LaxSlicedPacket::from_ether_type(EtherType(ether_type::IPV6), bytes),
            _ => return Err(SkipReason::BadIpVersion),
        },
        Inner::NonIp(id) => {
            meta.network = Network::Other { ether_type: id };
            return Ok((meta, true));
        }
    };
    meta.vlan = sliced.vlan_ids().first().map(|id| id.value());

    let (proto, payload, payload_wire_len) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let header = v4.header();
            meta.network = Network::Ipv4;
            meta.src = IpAddr::V4(header.source_addr());
            meta.dst = IpAddr::V4(header.destination_addr());
            let offset = header.fragments_offset().value();
            meta.fragment = match (offset, header.more_fragments()) {
                (0, false) => Fragment::Whole,
                (0, true) => Fragment::First,
                _ => Fragment::Later,
            };
            meta.frag_id = u32::from(header.identification());
            let payload = v4.payload().payload;
            // TSO/GRO super-frames carry total_len 0: trust the captured length then.
            let from_header =
                usize::from(header.total_len()).checked_sub(usize::from(header.ihl()) * 4);
            let wire = match from_header {
                Some(n) if header.total_len() != 0 => n,
                _ => payload.len(),
            };
            (header.protocol().0, payload, wire)
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let header = v6.header();
            meta.network = Network::Ipv6;
            meta.src = IpAddr::V6(header.source_addr());
            meta.dst = IpAddr::V6(header.destination_addr());
            let chain = v6.extensions().slice();
            if let Some(frag) = crate::wire::ipv6::fragment_header(header.next_header().0, chain)
                && (frag.offset != 0 || frag.more)
            {
                meta.fragment = if frag.offset == 0 {
                    Fragment::First
                } else {
                    Fragment::Later
                };
                meta.frag_id = frag.id;
            }
            let ip_payload = v6.payload();
            let ext_len = v6.extensions().slice().len();
            let wire = match usize::from(header.payload_length()).checked_sub(ext_len) {
                Some(n) if header.payload_length() != 0 => n,
                _ => ip_payload.payload.len(),
            };
            (ip_payload.ip_number.0, ip_payload.payload, wire)
        }
        Some(LaxNetSlice::Arp(_)) => return decode_arp(&sliced, meta),
        None => {
            let et = sliced.ether_payload().map(|p| p.ether_type.0);
            return match et {
                Some(ether_type::IPV4) => Err(SkipReason::MalformedIpv4),
                Some(ether_type::IPV6) => Err(SkipReason::MalformedIpv6),
                Some(ether_type::ARP) => decode_arp(&sliced, meta),
                Some(other) => {
                    meta.network = Network::Other { ether_type: other };
                    Ok((meta, true))
                }
                None => Err(SkipReason::TruncatedLinkHeader),
            };
        }
    };
    meta.ip_proto = proto;
    meta.payload_len = payload_wire_len as u32;
    if meta.fragment == Fragment::Later {
        return Ok((meta, true));
    }

    let t = l4::parse(proto, payload);
    meta.src_port = t.src_port;
    meta.dst_port = t.dst_port;
    meta.has_ports = t.has_ports;
    meta.tcp_flags = t.flags;
    meta.icmp_type = t.icmp_type;
    meta.icmp_code = t.icmp_code;
    if let Some(hlen) = t.header_len {
        meta.payload_len = payload_wire_len.saturating_sub(hlen) as u32;
    }

    let mut dns_ok = true;
    if meta.fragment == Fragment::Whole
        && t.has_ports
        && (is_dns_port(t.src_port) || is_dns_port(t.dst_port))
    {
        let body = t
            .header_len
            .and_then(|h| payload.get(h..))
            .unwrap_or_default();
        let message = match proto {
            ip_proto::UDP => Some(body),
            // DNS over TCP: a two-byte length prefix, then the message (only segments that
            // begin a message are read).
            ip_proto::TCP if body.len() >= 14 => Some(&body[2..]),
            _ => None,
        };
        if let Some(msg) = message.filter(|m| !m.is_empty()) {
            match dns::parse(msg, names) {
                Ok(d) => meta.dns = Some(d),
                Err(_) => dns_ok = false,
            }
        }
    }
    Ok((meta, dns_ok))
}

/// ARP for IPv4 over Ethernet via smoltcp; other hardware/protocol pairs count as non-IP.
fn decode_arp(
    sliced: &LaxSlicedPacket<'_>,
    mut meta: PacketMeta,
) -> Result<(PacketMeta, bool), SkipReason> {
    use smoltcp::wire::{ArpPacket, ArpRepr};
    let bytes = sliced
        .ether_payload()
        .map(|p| p.payload)
        .ok_or(SkipReason::MalformedArp)?;
    let packet = ArpPacket::new_checked(bytes).map_err(|_| SkipReason::MalformedArp)?;
    match ArpRepr::parse(&packet) {
        Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) => {
            meta.network = Network::Arp;
            meta.src = IpAddr::V4(source_protocol_addr);
            meta.dst = IpAddr::V4(target_protocol_addr);
            meta.icmp_type = match operation {
                smoltcp::wire::ArpOperation::Request => 1,
                smoltcp::wire::ArpOperation::Reply => 2,
                smoltcp::wire::ArpOperation::Unknown(op) => op as u8,
            };
        }
        _ => {
            meta.network = Network::Other {
                ether_type: ether_type::ARP,
            }
        }
    }
    Ok((meta, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Protocol, TcpFlags};
    use etherparse::PacketBuilder;

    fn decode_one(link: LinkType, frame: &[u8]) -> Result<PacketMeta, SkipReason> {
        let mut names = Vec::new();
        decode(link, Timestamp(0), frame.len() as u32, frame, &mut names).map(|(m, _)| m)
    }

    fn eth_ipv4_tcp(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1, 1000);
        if flags & TcpFlags::SYN != 0 {
            b = b.syn();
        }
        if flags & TcpFlags::ACK != 0 {
            b = b.ack(7);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_ipv4_tcp_syn() {
        let m = decode_one(LinkType::ETHERNET, &eth_ipv4_tcp(TcpFlags::SYN, b"")).unwrap();
        assert_eq!(m.protocol(), Protocol::Tcp);
        assert_eq!(m.src.to_string(), "10.0.0.1");
        assert_eq!((m.src_port, m.dst_port), (40000, 443));
        assert!(m.tcp_flags.is_syn_only());
        assert_eq!(m.payload_len, 0);
        assert_eq!(m.vlan, None);
    }

    #[test]
    fn vlan_and_qinq_tags_are_stripped_and_the_outer_id_kept() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(
                etherparse::VlanId::try_new(300).unwrap(),
                etherparse::VlanId::try_new(100).unwrap(),
            )
            .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 64)
            .udp(5000, 6000)
            .write(&mut out, b"hello")
            .unwrap();
        let m = decode_one(LinkType::ETHERNET, &out).unwrap();
        assert_eq!(m.vlan, Some(300));
        assert_eq!(m.protocol(), Protocol::Udp);
        assert_eq!(m.payload_len, 5);
    }

    #[test]
    fn ipv6_extension_chain_reaches_udp() {
        // IPv6 with a hop-by-hop header (8 bytes) then UDP 8 bytes + 2 bytes of data.
        let mut ip = vec![0x60, 0, 0, 0, 0, 18, 0, 64];
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(4));
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb9].repeat(4));
        ip.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        ip.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 10, 0, 0, 0xab, 0xcd]);
        let m = decode_one(LinkType::RAW, &ip).unwrap();
        assert_eq!(m.network, Network::Ipv6);
        assert_eq!((m.ip_proto, m.src_port, m.dst_port), (17, 5000, 53));
        assert_eq!(m.payload_len, 2);
    }

    #[test]
    fn ipv4_fragments_first_carries_ports_later_does_not() {
        let mut frame = eth_ipv4_tcp(TcpFlags::SYN, &[0; 32]);
        // set MF on the first fragment
        frame[14 + 6] = 0x20;
        let first = decode_one(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(first.fragment, Fragment::First);
        assert_eq!(first.dst_port, 443);
        // offset 8 (×8 bytes), MF clear: a later fragment
        frame[14 + 6] = 0x00;
        frame[14 + 7] = 0x08;
        let later = decode_one(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(later.fragment, Fragment::Later);
        assert!(!later.has_ports);
        assert_eq!(later.protocol(), Protocol::OtherIp);
    }

    #[test]
    fn sll2_frames_decode() {
        let eth = eth_ipv4_tcp(TcpFlags::SYN | TcpFlags::ACK, b"x");
        let mut frame = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 1, 1, 1, 1, 1, 0, 0,
        ];
        frame.extend_from_slice(&eth[14..]);
        let m = decode_one(LinkType::LINUX_SLL2, &frame).unwrap();
        assert_eq!(m.dst_port, 443);
        assert_eq!(m.payload_len, 1);
        assert!(m.tcp_flags.has(TcpFlags::ACK));
    }

    #[test]
    fn dns_query_name_lands_in_the_arena() {
        let mut msg = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x07example\x03org\x00\x00\x10\x00\x01");
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64)
            .udp(33000, 53)
            .write(&mut out, &msg)
            .unwrap();
        let mut batch = PacketBatch::default();
        let mut decoder = Decoder::new();
        decoder
            .decode_into(
                LinkType::ETHERNET,
                Timestamp(0),
                out.len() as u32,
                &out,
                &mut batch,
            )
            .unwrap();
        let m = batch.packets[0];
        assert_eq!(m.protocol(), Protocol::Dns);
        assert_eq!(batch.qname(&m), Some(&b"example.org"[..]));
        assert_eq!(m.dns.unwrap().qtype, 16);
    }

    #[test]
    fn skips_are_counted_by_reason() {
        let mut decoder = Decoder::new();
        let mut batch = PacketBatch::default();
        let ts = Timestamp(0);
        let r = decoder.decode_into(LinkType(105), ts, 10, &[0; 10], &mut batch);
        assert_eq!(r, Err(SkipReason::UnsupportedLinkType));
        let r = decoder.decode_into(LinkType::ETHERNET, ts, 6, &[0; 6], &mut batch);
        assert_eq!(r, Err(SkipReason::TruncatedLinkHeader));
        let r = decoder.decode_into(LinkType::RAW, ts, 4, &[0x50, 0, 0, 0], &mut batch);
        assert_eq!(r, Err(SkipReason::BadIpVersion));
        let mut bad_v4 = eth_ipv4_tcp(TcpFlags::SYN, b"");
        bad_v4[14] = 0x42; // IHL 2: shorter than the minimum header
        let r = decoder.decode_into(LinkType::ETHERNET, ts, 60, &bad_v4, &mut batch);
        assert_eq!(r, Err(SkipReason::MalformedIpv4));
        assert_eq!(decoder.counters.skipped_total(), 4);
        assert_eq!(decoder.counters.decoded, 0);
        assert!(batch.is_empty());
    }

    #[test]
    fn arp_is_read_through_smoltcp() {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[2; 6]);
        frame.extend_from_slice(&[0x08, 0x06]);
        frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        frame.extend_from_slice(&[2; 6]);
        frame.extend_from_slice(&[10, 0, 0, 1]);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&[10, 0, 0, 9]);
        let m = decode_one(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(m.protocol(), Protocol::Arp);
        assert_eq!(m.dst.to_string(), "10.0.0.9");
        assert_eq!(m.icmp_type, 1);
    }
}
