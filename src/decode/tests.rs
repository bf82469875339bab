//! Decoder tests: plain frames, link wrappers and tunnels built byte by byte.

use super::*;
use crate::packet::{Protocol, TcpFlags};
use etherparse::PacketBuilder;

fn decode_one(link: LinkType, frame: &[u8]) -> Result<PacketMeta, SkipReason> {
    let mut names = Vec::new();
    Decoder::new()
        .decode(link, Timestamp(0), frame.len() as u32, frame, &mut names)
        .map(|d| d.meta)
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

// --- encapsulations, built header by header ---

fn eth(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

fn ipv6(src_last: u8, dst_last: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    for last in [src_last, dst_last] {
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(last);
    }
    p.extend_from_slice(payload);
    p
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP SYN from 192.168.0.1:40000 to 192.168.0.2:22, as an IPv4 packet.
fn inner_syn() -> Vec<u8> {
    let mut tcp = vec![
        0x9c, 0x40, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
    ];
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    ipv4([192, 168, 0, 1], [192, 168, 0, 2], 6, &tcp)
}

fn vxlan(vni: u32, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(frame);
    v
}

/// VXLAN between two VTEPs, as a capture on the underlay sees it.
fn vxlan_frame(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(
            [10, 1, 0, 1],
            [10, 1, 0, 2],
            17,
            &udp(51000, 4789, &vxlan(vni, inner_frame)),
        ),
    )
}

/// Decodes `frame`, keeping what outlives it (not its TCP payload).
fn decode_full(frame: &[u8]) -> Result<Decoded<'static>, SkipReason> {
    Decoder::new()
        .decode(
            LinkType::ETHERNET,
            Timestamp(0),
            frame.len() as u32,
            frame,
            &mut Vec::new(),
        )
        .map(|d| Decoded {
            meta: d.meta,
            dns_ok: d.dns_ok,
            seen: d.seen,
            tunnel: d.tunnel,
            segment: None,
            lan: None,
        })
}

fn assert_inner_syn(d: &Decoded) {
    let m = d.meta;
    assert_eq!(m.src.to_string(), "192.168.0.1");
    assert_eq!(m.dst.to_string(), "192.168.0.2");
    assert_eq!((m.ip_proto, m.src_port, m.dst_port), (6, 40000, 22));
    assert!(m.tcp_flags.is_syn_only());
}

#[test]
fn vxlan_yields_the_inner_packet_its_tunnel_and_its_carrier() {
    let frame = vxlan_frame(300, &eth(0x0800, &inner_syn()));
    let d = decode_full(&frame).unwrap();
    assert_inner_syn(&d);
    let t = d.tunnel.unwrap();
    assert_eq!(t.info.kind, Encapsulation::Vxlan);
    assert_eq!(t.info.id, Some(300));
    assert_eq!(
        (t.info.src.to_string(), t.info.dst.to_string()),
        ("10.1.0.1".into(), "10.1.0.2".into())
    );
    assert_eq!(
        (t.info.proto, t.info.src_port, t.info.dst_port, t.info.depth),
        (17, 51000, 4789, 1)
    );
    assert_eq!((t.carrier.ip_proto, t.carrier.dst_port), (17, 4789));
    assert_eq!(t.carrier.src.to_string(), "10.1.0.1");
    assert!(t.track_carrier);
    assert_eq!(d.seen, 1 << Encapsulation::Vxlan.index());
    // The whole frame is what the wire carried, for the inner flow as for the carrier.
    assert_eq!(d.meta.wire_len as usize, frame.len());
}

#[test]
fn vlan_tags_inside_a_tunnel_are_read_and_the_innermost_frame_gives_the_vlan() {
    let mut tagged = vec![0x00, 0x64, 0x08, 0x00]; // VLAN 100, then IPv4
    tagged.extend_from_slice(&inner_syn());
    let frame = vxlan_frame(7, &eth(0x8100, &tagged));
    let d = decode_full(&frame).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.meta.vlan, Some(100));
}

#[test]
fn gre_flavours() {
    let outer = |gre: &[u8]| eth(0x0800, &ipv4([10, 9, 0, 1], [10, 9, 0, 2], 47, gre));
    // Plain GRE with a key, carrying IPv4.
    let mut g = vec![0x20, 0, 0x08, 0x00, 0, 0, 0x01, 0x00];
    g.extend_from_slice(&inner_syn());
    let d = decode_full(&outer(&g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::Gre);
    assert_eq!(d.tunnel.unwrap().info.id, Some(256));
    assert_eq!(d.tunnel.unwrap().info.proto, 47);
    // NVGRE: Ethernet bridging.
    let mut g = vec![0x20, 0, 0x65, 0x58, 0, 0, 0x05, 0x00];
    g.extend_from_slice(&eth(0x0800, &inner_syn()));
    assert_inner_syn(&decode_full(&outer(&g)).unwrap());
    // ERSPAN type I: no sequence number, no header.
    let mut g = vec![0, 0, 0x88, 0xbe];
    g.extend_from_slice(&eth(0x0800, &inner_syn()));
    let d = decode_full(&outer(&g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::ErspanI);
    // ERSPAN type II: sequence number, then the 8-byte header with session 5.
    let mut g = vec![
        0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x0a, 0x00, 0x05, 0, 0, 0, 0,
    ];
    g.extend_from_slice(&eth(0x0800, &inner_syn()));
    let d = decode_full(&outer(&g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::ErspanII);
    assert_eq!(d.tunnel.unwrap().info.id, Some(5));
    // ERSPAN type III with the platform sub-header, session 9.
    let mut g = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
    g.extend_from_slice(&[0x20, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x01]);
    g.extend_from_slice(&[0; 8]);
    g.extend_from_slice(&eth(0x0800, &inner_syn()));
    let d = decode_full(&outer(&g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::ErspanIII);
    assert_eq!(d.tunnel.unwrap().info.id, Some(9));
    // PPTP's enhanced GRE: version 1, call id 0x4242, PPP carrying IPv4.
    let mut g = vec![
        0x30, 0x01, 0x88, 0x0b, 0, 40, 0x42, 0x42, 0, 0, 0, 7, 0xff, 0x03, 0x00, 0x21,
    ];
    g.extend_from_slice(&inner_syn());
    let d = decode_full(&outer(&g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::PptpGre);
    assert_eq!(d.tunnel.unwrap().info.id, Some(0x4242));
    // An unknown protocol and an unknown version are counted as such.
    let g = [0, 0, 0x12, 0x34, 1, 2, 3, 4];
    assert_eq!(
        decode_full(&outer(&g)).unwrap_err(),
        SkipReason::UnknownGreProtocol
    );
    let g = [0, 0x02, 0x08, 0x00, 0x45];
    assert_eq!(
        decode_full(&outer(&g)).unwrap_err(),
        SkipReason::UnknownGreProtocol
    );
}

#[test]
fn udp_tunnels_and_ip_in_ip() {
    let over_udp = |dport: u16, body: &[u8]| {
        eth(
            0x0800,
            &ipv4([10, 2, 0, 1], [10, 2, 0, 2], 17, &udp(40001, dport, body)),
        )
    };
    // Geneve with one option word, VNI 77, carrying Ethernet.
    let mut g = vec![0x01, 0, 0x65, 0x58, 0, 0, 77, 0, 0xaa, 0xbb, 0xcc, 0xdd];
    g.extend_from_slice(&eth(0x0800, &inner_syn()));
    let d = decode_full(&over_udp(6081, &g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(
        (d.tunnel.unwrap().info.kind, d.tunnel.unwrap().info.id),
        (Encapsulation::Geneve, Some(77))
    );
    // GTP-U G-PDU, TEID 0x01020304, no optional fields.
    let syn = inner_syn();
    let mut g = vec![0x30, 0xff];
    g.extend_from_slice(&(syn.len() as u16).to_be_bytes());
    g.extend_from_slice(&[1, 2, 3, 4]);
    g.extend_from_slice(&syn);
    let d = decode_full(&over_udp(2152, &g)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.id, Some(0x0102_0304));
    // A GTP echo request is plain UDP: no tunnel.
    let d = decode_full(&over_udp(2152, &[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0])).unwrap();
    assert!(d.tunnel.is_none());
    assert_eq!(d.meta.dst_port, 2152);
    // AYIYA forwarding IPv4.
    let mut a = vec![0x00, 0x00, 0x01, 4, 0, 0, 0, 0, 0xab];
    a.extend_from_slice(&syn);
    assert_inner_syn(&decode_full(&over_udp(5072, &a)).unwrap());
    // IPv4 in IPv4, IPv4 in IPv6, IPv6 in IPv4.
    let d = decode_full(&eth(0x0800, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 4, &syn))).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::Ipip);
    let d = decode_full(&eth(0x86dd, &ipv6(1, 2, 4, &syn))).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::FourInSix);
    let d = decode_full(&eth(
        0x0800,
        &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 41, &ipv6(3, 4, 59, &[])),
    ))
    .unwrap();
    assert_eq!(d.tunnel.unwrap().info.kind, Encapsulation::SixInFour);
    assert_eq!(d.meta.dst.to_string(), "2001:db8::4");
}

#[test]
fn link_layer_wrappers() {
    let syn = inner_syn();
    // MPLS: two labels, then IPv4.
    let mut m = vec![0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64];
    m.extend_from_slice(&syn);
    let d = decode_full(&eth(0x8847, &m)).unwrap();
    assert_inner_syn(&d);
    assert!(
        d.tunnel.is_none(),
        "MPLS labels are per hop: not a tunnel identity"
    );
    assert_eq!(d.seen, 1 << Encapsulation::Mpls.index());
    // MPLS Ethernet pseudowire with a control word.
    let mut m = vec![0, 0x01, 0x01, 64, 0, 0, 0, 0];
    m.extend_from_slice(&eth(0x0800, &syn));
    assert_inner_syn(&decode_full(&eth(0x8847, &m)).unwrap());
    // PPPoE session carrying IPv4; an LCP frame is non-IP; discovery is counted.
    let mut p = vec![0x11, 0, 0x00, 0x07, 0, (syn.len() + 2) as u8, 0x00, 0x21];
    p.extend_from_slice(&syn);
    assert_inner_syn(&decode_full(&eth(0x8864, &p)).unwrap());
    let lcp = decode_full(&eth(0x8864, &[0x11, 0, 0, 7, 0, 4, 0xc0, 0x21, 1, 1])).unwrap();
    assert_eq!(lcp.meta.network, Network::Other { ether_type: 0x8864 });
    let padi = decode_full(&eth(0x8863, &[0x11, 0x09, 0, 0, 0, 0])).unwrap();
    assert_eq!(padi.seen, 1 << Encapsulation::PppoeDiscovery.index());
    // 802.1ah: I-TAG, then the customer frame.
    let mut b = vec![0, 0, 0x10, 0x00];
    b.extend_from_slice(&eth(0x0800, &syn));
    assert_inner_syn(&decode_full(&eth(0x88e7, &b)).unwrap());
    // VN-Tag, then IPv4.
    let mut v = vec![0x80, 0x01, 0x00, 0x02, 0x08, 0x00];
    v.extend_from_slice(&syn);
    assert_inner_syn(&decode_full(&eth(0x8926, &v)).unwrap());
    // FabricPath: outer addresses, 0x8903, FTag/TTL, then the classic frame.
    let mut f = vec![0x02; 12];
    f.extend_from_slice(&[0x89, 0x03, 0x00, 0x3f]);
    f.extend_from_slice(&eth(0x0800, &syn));
    let d = LinkType::ETHERNET;
    let got = Decoder::new()
        .decode(d, Timestamp(0), f.len() as u32, &f, &mut Vec::new())
        .unwrap();
    assert_inner_syn(&got);
    assert_eq!(got.seen, 1 << Encapsulation::FabricPath.index());
}

#[test]
fn nesting_is_bounded_by_max_depth() {
    // IPv4 in GRE, n times over.
    let nested = |n: usize| {
        let mut p = inner_syn();
        for _ in 0..n {
            let mut g = vec![0, 0, 0x08, 0x00];
            g.extend_from_slice(&p);
            p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 47, &g);
        }
        eth(0x0800, &p)
    };
    let d = decode_full(&nested(4)).unwrap();
    assert_inner_syn(&d);
    assert_eq!(d.tunnel.unwrap().info.depth, 4);
    assert_eq!(
        decode_full(&nested(5)).unwrap_err(),
        SkipReason::TunnelTooDeep
    );
    let shallow = Decoder::with_config(DecodeConfig {
        max_depth: 1,
        ..DecodeConfig::default()
    });
    let frame = nested(2);
    let r = shallow.decode(LinkType::ETHERNET, Timestamp(0), 0, &frame, &mut Vec::new());
    assert_eq!(r.unwrap_err(), SkipReason::TunnelTooDeep);
}

#[test]
fn a_frame_cut_anywhere_in_its_tunnels_is_counted_never_a_panic() {
    // Ethernet / IPv4 / UDP / VXLAN / Ethernet / VLAN / IPv4 / GRE / ERSPAN II / Ethernet /
    // IPv4 / TCP.
    let mut erspan = vec![
        0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x0a, 0x00, 0x05, 0, 0, 0, 0,
    ];
    erspan.extend_from_slice(&eth(0x0800, &inner_syn()));
    let mut tagged = vec![0x00, 0x0a, 0x08, 0x00];
    tagged.extend_from_slice(&ipv4([10, 3, 0, 1], [10, 3, 0, 2], 47, &erspan));
    let frame = vxlan_frame(1, &eth(0x8100, &tagged));
    let mut decoder = Decoder::new();
    let mut batch = PacketBatch::default();
    // Cut inside a tunnel header (a cut right before one leaves an empty payload: a plain
    // packet).
    let tunnel_headers = [
        43..50,                                  // VXLAN
        50 + 14 + 4 + 21..50 + 14 + 4 + 20 + 16, // GRE + ERSPAN
    ];
    for cut in 0..=frame.len() {
        let r = decoder.decode_into(
            LinkType::ETHERNET,
            Timestamp(0),
            frame.len() as u32,
            &frame[..cut],
            &mut batch,
        );
        if tunnel_headers.iter().any(|h| h.contains(&cut)) {
            assert_eq!(r, Err(SkipReason::TruncatedTunnel), "cut at {cut}");
        }
    }
    let c = decoder.counters;
    assert_eq!(c.decoded + c.skipped_total(), frame.len() as u64 + 1);
    // The whole frame decodes to the innermost packet, two tunnels deep.
    let whole = batch.packets.last().unwrap();
    assert_eq!(whole.dst_port, 22);
    assert_eq!(batch.tunnel(whole).unwrap().info.depth, 2);
    assert_eq!(
        batch.tunnel(whole).unwrap().info.kind,
        Encapsulation::ErspanII
    );
    // Carrier: the outermost packet, the VXLAN one.
    assert_eq!(batch.tunnel(whole).unwrap().carrier.dst_port, 4789);
}

#[test]
fn hidden_carriers_are_marked_so() {
    let decoder = Decoder::with_config(DecodeConfig {
        hide_carriers: true,
        ..DecodeConfig::default()
    });
    let frame = vxlan_frame(1, &eth(0x0800, &inner_syn()));
    let d = decoder
        .decode(LinkType::ETHERNET, Timestamp(0), 0, &frame, &mut Vec::new())
        .unwrap();
    assert!(!d.tunnel.unwrap().track_carrier);
}

#[test]
fn probes_and_lookalikes_stay_plain_packets() {
    // nmap -sO: bare GRE and IP-in-IP headers with nothing after them.
    for proto in [47u8, 4, 41] {
        let d = decode_full(&eth(
            0x0800,
            &ipv4([10, 0, 0, 1], [10, 0, 0, 2], proto, &[]),
        ))
        .unwrap();
        assert!(d.tunnel.is_none(), "protocol {proto}");
        assert_eq!(d.meta.ip_proto, proto);
    }
    // A client whose random source port is 4789, 6081 or 2152 sends plain UDP.
    for sport in [4789u16, 6081, 2152] {
        let frame = eth(
            0x0800,
            &ipv4(
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                17,
                &udp(sport, 9, &[0x08; 30]),
            ),
        );
        let d = decode_full(&frame).unwrap();
        assert!(d.tunnel.is_none(), "source port {sport}");
        assert_eq!(d.meta.dst_port, 9);
    }
    // UDP to 4789 with an empty body is a packet, not a cut tunnel.
    let d = decode_full(&eth(
        0x0800,
        &ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, &udp(1, 4789, &[])),
    ))
    .unwrap();
    assert!(d.tunnel.is_none());
    // Random bytes from port 3544 are not Teredo unless they are an exact IPv6 packet.
    let d = decode_full(&eth(
        0x0800,
        &ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, &udp(3544, 9, &[0x60; 60])),
    ))
    .unwrap();
    assert!(d.tunnel.is_none());
}

#[test]
fn a_dns_responses_addresses_land_in_the_batch() {
    // example.org A 192.0.2.10 (TTL 300), a response to 10.0.0.1.
    let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    msg.extend_from_slice(b"\x07example\x03org\x00\x00\x01\x00\x01");
    msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 10]);
    let frame = eth(
        0x0800,
        &ipv4([10, 0, 0, 53], [10, 0, 0, 1], 17, &udp(53, 40000, &msg)),
    );
    let mut batch = PacketBatch::default();
    Decoder::new()
        .decode_into(
            LinkType::ETHERNET,
            Timestamp(0),
            frame.len() as u32,
            &frame,
            &mut batch,
        )
        .unwrap();
    let p = batch.packets[0];
    assert_eq!(batch.qname(&p), Some(&b"example.org"[..]));
    let answers = batch.answers(&p);
    assert_eq!(answers.len(), 1);
    assert_eq!(
        (answers[0].addr.to_string(), answers[0].ttl),
        ("192.0.2.10".into(), 300)
    );
    // A query has none.
    let mut query = msg.clone();
    query[2] = 0x01;
    query[7] = 0;
    query.truncate(12 + 17);
    let frame = eth(
        0x0800,
        &ipv4([10, 0, 0, 1], [10, 0, 0, 53], 17, &udp(40000, 53, &query)),
    );
    Decoder::new()
        .decode_into(
            LinkType::ETHERNET,
            Timestamp(0),
            frame.len() as u32,
            &frame,
            &mut batch,
        )
        .unwrap();
    assert!(batch.answers(&batch.packets[1]).is_empty());
}
