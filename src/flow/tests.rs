use std::net::IpAddr;

use super::*;
use crate::packet::{Fragment, Network, PacketMeta, TcpFlags, Timestamp, ip_proto};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(t: f64, src: &str, sport: u16, dst: &str, dport: u16, flags: u8, len: u32) -> PacketMeta {
    let mut p = PacketMeta::blank(Timestamp::from_secs_f64(t), len);
    p.network = if src.contains(':') {
        Network::Ipv6
    } else {
        Network::Ipv4
    };
    p.src = ip(src);
    p.dst = ip(dst);
    p.ip_proto = ip_proto::TCP;
    p.src_port = sport;
    p.dst_port = dport;
    p.has_ports = true;
    p.tcp_flags = TcpFlags(flags);
    p
}

fn udp(t: f64, src: &str, sport: u16, dst: &str, dport: u16) -> PacketMeta {
    let mut p = tcp(t, src, sport, dst, dport, 0, 100);
    p.ip_proto = ip_proto::UDP;
    p
}

const SYN: u8 = TcpFlags::SYN;
const SYNACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
const ACK: u8 = TcpFlags::ACK;
const FINACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

fn run(table: &mut FlowTable, packets: &[PacketMeta]) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    for p in packets {
        table.observe(p, &mut out);
    }
    out
}

#[test]
fn both_directions_make_one_flow_with_the_syn_sender_as_src() {
    let mut table = FlowTable::new(FlowConfig::default());
    let out = run(
        &mut table,
        &[
            tcp(1.0, "10.0.0.9", 40000, "10.0.0.1", 22, SYN, 60),
            tcp(1.1, "10.0.0.1", 22, "10.0.0.9", 40000, SYNACK, 60),
            tcp(1.2, "10.0.0.9", 40000, "10.0.0.1", 22, ACK, 54),
            tcp(1.3, "10.0.0.1", 22, "10.0.0.9", 40000, ACK, 154),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(table.len(), 1);
    let flow = &table.active(10, |_| true)[0];
    assert_eq!((flow.src, flow.src_port), (ip("10.0.0.9"), 40000));
    assert_eq!((flow.dst, flow.dst_port), (ip("10.0.0.1"), 22));
    assert_eq!((flow.src_packets, flow.dst_packets), (2, 2));
    assert_eq!((flow.src_bytes, flow.dst_bytes), (114, 214));
    assert_eq!(flow.state, FlowState::Established);
    assert_eq!(flow.src_flags, TcpFlags(SYN | ACK));
}

#[test]
fn a_syn_ack_seen_first_makes_its_receiver_the_initiator() {
    let mut table = FlowTable::new(FlowConfig::default());
    run(
        &mut table,
        &[tcp(1.0, "10.0.0.1", 80, "10.0.0.9", 50000, SYNACK, 60)],
    );
    let flow = &table.active(1, |_| true)[0];
    assert_eq!(flow.src, ip("10.0.0.9"));
    assert_eq!(flow.dst_packets, 1);
}

#[test]
fn idle_flows_expire_by_class_in_packet_time() {
    let mut table = FlowTable::new(FlowConfig::default());
    let out = run(
        &mut table,
        &[
            tcp(0.0, "10.0.0.9", 1, "10.0.0.1", 80, SYN, 60),
            tcp(0.1, "10.0.0.1", 80, "10.0.0.9", 1, RST | ACK, 60),
            udp(0.2, "10.0.0.9", 5000, "10.0.0.53", 53),
            // 10 s later the reset flow (closed class, 10 s) is due, the UDP one (60 s) is not
            udp(10.5, "10.0.0.7", 1, "10.0.0.8", 2),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, FlowState::Reset);
    assert_eq!(out[0].end, EndReason::IdleTimeout);
    let out = run(&mut table, &[udp(60.3, "10.0.0.7", 1, "10.0.0.8", 2)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dst_port, 53);
    assert_eq!(table.stats().expired, 2);
}

/// A batch of `packets` for `ingest`.
fn batch_of(packets: Vec<PacketMeta>) -> crate::packet::PacketBatch {
    let mut batch = crate::packet::PacketBatch::with_capacity(packets.len());
    batch.packets = packets;
    batch
}

#[test]
fn a_jump_in_time_finishes_idle_flows_a_bounded_number_per_batch_and_loses_none() {
    // 3,000 UDP flows of two packets each, then packet time jumps past their timeout.
    let mut table = FlowTable::new(FlowConfig::default());
    let host = |i: usize| format!("10.1.{}.{}", i / 250, i % 250 + 1);
    let opened: Vec<PacketMeta> = (0..3000)
        .flat_map(|i| [udp(1.0, &host(i), 5000, "10.0.0.53", 53); 2])
        .collect();
    assert!(run(&mut table, &opened).is_empty());
    // The first batch after the jump: ten packets, one of them from the last flow opened,
    // which the sweep reaches last.
    let mut later: Vec<PacketMeta> = (0..9)
        .map(|i| udp(500.0, "10.2.0.1", 6000 + i, "10.0.0.53", 53))
        .collect();
    later.push(udp(500.0, &host(2999), 5000, "10.0.0.53", 53));
    let mut out = Vec::new();
    table.ingest(&batch_of(later), &mut out);
    // At most the sweep's budget of 1,024 idle flows, plus the last flow, ended by its own
    // packet (after its 60 s UDP timeout) rather than extended by it.
    assert_eq!(out.len(), 1025);
    let last = out.iter().find(|r| r.src == ip(&host(2999))).unwrap();
    assert_eq!((last.src_packets, last.end), (2, EndReason::IdleTimeout));
    // The rest follow on the next batches, each idle flow exactly once with its packets.
    while out.len() < 3000 {
        let before = out.len();
        table.ingest(
            &batch_of(vec![udp(501.0, "10.2.0.1", 6000, "10.0.0.53", 53)]),
            &mut out,
        );
        assert!(
            out.len() - before <= 1024,
            "one batch finished {}",
            out.len() - before
        );
        assert!(out.len() > before, "the sweep stalled at {before}");
    }
    assert_eq!(out.len(), 3000);
    let mut sources: Vec<IpAddr> = out.iter().map(|r| r.src).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 3000);
    assert!(
        out.iter()
            .all(|r| r.src_packets == 2 && r.end == EndReason::IdleTimeout)
    );
    // The ten new flows, the last one's second life among them, are still active.
    assert_eq!(table.len(), 10);
    assert_eq!(table.stats().expired, 3000);
}

#[test]
fn time_going_backwards_neither_expires_nor_stalls() {
    let mut table = FlowTable::new(FlowConfig::default());
    let out = run(
        &mut table,
        &[
            udp(1000.0, "10.0.0.1", 1, "10.0.0.2", 2),
            udp(5.0, "10.0.0.3", 1, "10.0.0.4", 2),
            udp(1001.0, "10.0.0.1", 1, "10.0.0.2", 2),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(table.len(), 2);
    let out = run(&mut table, &[udp(1070.0, "10.0.0.5", 1, "10.0.0.6", 2)]);
    assert_eq!(out.len(), 2, "both older flows expire on the table clock");
}

#[test]
fn the_cap_evicts_the_least_recently_active_flow() {
    let config = FlowConfig {
        max_flows: 3,
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(config);
    let out = run(
        &mut table,
        &[
            udp(1.0, "10.0.0.1", 1, "10.0.0.2", 2),
            udp(2.0, "10.0.0.3", 1, "10.0.0.4", 2),
            udp(3.0, "10.0.0.5", 1, "10.0.0.6", 2),
            udp(4.0, "10.0.0.1", 1, "10.0.0.2", 2), // refreshes the first flow
            udp(5.0, "10.0.0.7", 1, "10.0.0.8", 2),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].src, ip("10.0.0.3"));
    assert_eq!(out[0].end, EndReason::Evicted);
    assert_eq!(table.len(), 3);
    assert_eq!(table.stats().evicted, 1);
}

#[test]
fn a_random_source_syn_flood_stays_within_the_cap() {
    let config = FlowConfig {
        max_flows: 1000,
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(config);
    let mut out = Vec::new();
    for i in 0..50_000u32 {
        let src = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
        table.observe(
            &tcp(
                1.0 + f64::from(i) * 1e-4,
                &src,
                1024,
                "10.0.0.1",
                80,
                SYN,
                60,
            ),
            &mut out,
        );
    }
    assert_eq!(table.len(), 1000);
    assert_eq!(table.stats().evicted, 49_000);
    assert_eq!(table.stats().peak_active, 1000);
}

#[test]
fn a_new_syn_on_a_closed_tuple_starts_a_new_flow() {
    let mut table = FlowTable::new(FlowConfig::default());
    let out = run(
        &mut table,
        &[
            tcp(1.0, "10.0.0.9", 40000, "10.0.0.1", 21, SYN, 60),
            tcp(1.1, "10.0.0.1", 21, "10.0.0.9", 40000, SYNACK, 60),
            tcp(1.2, "10.0.0.9", 40000, "10.0.0.1", 21, FINACK, 60),
            tcp(1.3, "10.0.0.1", 21, "10.0.0.9", 40000, FINACK, 60),
            tcp(2.0, "10.0.0.9", 40000, "10.0.0.1", 21, SYN, 60),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, FlowState::Closed);
    assert_eq!(out[0].packets(), 4);
    assert_eq!(table.len(), 1);
    assert_eq!(table.stats().created, 2);
}

#[test]
fn later_fragments_join_the_flow_of_their_first_fragment() {
    let mut table = FlowTable::new(FlowConfig::default());
    let mut first = udp(1.0, "10.0.0.1", 4000, "10.0.0.2", 5000);
    first.fragment = Fragment::First;
    first.frag_id = 77;
    let mut later = first;
    later.fragment = Fragment::Later;
    later.has_ports = false;
    later.src_port = 0;
    later.dst_port = 0;
    let mut orphan = later;
    orphan.frag_id = 78;
    run(&mut table, &[first, later, orphan]);
    assert_eq!(table.len(), 1);
    assert_eq!(table.active(1, |_| true)[0].src_packets, 2);
    assert_eq!(table.stats().unattributed_fragments, 1);
}

#[test]
fn long_flows_emit_interim_records() {
    let config = FlowConfig {
        active_timeout: 60,
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(config);
    let packets: Vec<_> = (0..=130)
        .map(|s| udp(f64::from(s), "10.0.0.1", 1, "10.0.0.2", 2))
        .collect();
    let out = run(&mut table, &packets);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r.end == EndReason::ActiveTimeout));
    assert_eq!(out[1].packets(), 121);
    assert_eq!(table.len(), 1);
}

#[test]
fn echo_request_and_reply_are_one_icmp_flow_errors_are_their_own() {
    let mut table = FlowTable::new(FlowConfig::default());
    let icmp = |t: f64, src: &str, dst: &str, ty: u8, code: u8| {
        let mut p = udp(t, src, 0, dst, 0);
        p.ip_proto = ip_proto::ICMP;
        p.icmp_type = ty;
        p.icmp_code = code;
        p
    };
    run(
        &mut table,
        &[
            icmp(1.0, "10.0.0.1", "10.0.0.2", 8, 0),
            icmp(1.1, "10.0.0.2", "10.0.0.1", 0, 0),
            icmp(2.0, "10.0.0.2", "10.0.0.1", 3, 3),
            icmp(2.1, "10.0.0.2", "10.0.0.1", 3, 3),
        ],
    );
    assert_eq!(table.len(), 2);
    let flows = table.active(10, |_| true);
    let echo = flows.iter().find(|f| f.src_port == 8).unwrap();
    assert_eq!((echo.src_packets, echo.dst_packets), (1, 1));
    let unreachable = flows.iter().find(|f| f.src_port == 3).unwrap();
    assert_eq!(unreachable.src, ip("10.0.0.2"));
    assert_eq!(unreachable.src_packets, 2);
}

#[test]
fn flush_emits_everything_in_creation_order() {
    let mut table = FlowTable::new(FlowConfig::default());
    run(
        &mut table,
        &[
            udp(1.0, "10.0.0.5", 1, "10.0.0.6", 2),
            udp(1.0, "10.0.0.1", 1, "10.0.0.2", 2),
        ],
    );
    let mut out = Vec::new();
    table.flush_all(&mut out);
    assert_eq!(out.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
    assert!(out.iter().all(|r| r.end == EndReason::Shutdown));
    assert!(table.is_empty());
}

#[test]
fn published_json_shape() {
    let mut table = FlowTable::new(FlowConfig::default());
    run(
        &mut table,
        &[
            tcp(10.0, "10.0.0.9", 40000, "10.0.0.1", 80, SYN, 60),
            tcp(12.0, "10.0.0.1", 80, "10.0.0.9", 40000, SYNACK, 140),
        ],
    );
    let json = serde_json::to_value(&table.active(1, |_| true)[0]).unwrap();
    assert_eq!(json["src_ip"], "10.0.0.9");
    assert_eq!(json["protocol"], "TCP");
    assert_eq!(json["duration"], 2.0);
    assert_eq!(json["total_bytes"], 200);
    assert_eq!(json["packet_count"], 2);
    assert_eq!(json["bytes_per_sec"], 100.0);
    assert_eq!(json["tcp_flags"], serde_json::json!(["SYN", "ACK"]));
    assert!(json["community_id"].as_str().unwrap().starts_with("1:"));
}

#[test]
fn a_reset_before_the_initiator_closes_marks_the_flow_refused() {
    let mut table = FlowTable::new(FlowConfig::default());
    let records: Vec<FlowRecord> = run(
        &mut table,
        &[
            // Closed port: SYN answered by RST.
            tcp(0.0, "10.0.0.1", 5000, "10.0.0.2", 23, SYN, 60),
            tcp(0.0, "10.0.0.2", 23, "10.0.0.1", 5000, RST | ACK, 60),
            // Kerberos-style: the client closes first, then the server resets.
            tcp(1.0, "10.0.0.1", 5001, "10.0.0.2", 88, SYN, 60),
            tcp(1.0, "10.0.0.2", 88, "10.0.0.1", 5001, SYNACK, 60),
            tcp(1.0, "10.0.0.1", 5001, "10.0.0.2", 88, ACK, 60),
            tcp(1.1, "10.0.0.1", 5001, "10.0.0.2", 88, FINACK, 60),
            tcp(1.1, "10.0.0.2", 88, "10.0.0.1", 5001, RST | ACK, 60),
            // The client resets its own connection.
            tcp(2.0, "10.0.0.1", 5002, "10.0.0.2", 22, SYN, 60),
            tcp(2.0, "10.0.0.2", 22, "10.0.0.1", 5002, SYNACK, 60),
            tcp(2.0, "10.0.0.1", 5002, "10.0.0.2", 22, RST, 60),
        ],
    );
    let mut records = records;
    table.flush_all(&mut records);
    let refused = |port: u16| records.iter().find(|r| r.dst_port == port).unwrap().refused;
    assert!(refused(23));
    assert!(!refused(88));
    assert!(!refused(22));
}

#[test]
fn active_flows_come_newest_first_across_classes_and_filter() {
    let mut table = FlowTable::new(FlowConfig::default());
    run(
        &mut table,
        &[
            udp(1.0, "10.0.0.1", 5000, "10.0.0.2", 53),
            tcp(2.0, "10.0.0.3", 40000, "10.0.0.4", 80, SYN, 60),
            udp(3.0, "10.0.0.5", 5001, "10.0.0.6", 123),
            tcp(4.0, "10.0.0.4", 80, "10.0.0.3", 40000, SYNACK, 60),
            tcp(5.0, "10.0.0.7", 40001, "10.0.0.8", 443, SYN, 60),
        ],
    );
    let order: Vec<IpAddr> = table.active(10, |_| true).iter().map(|r| r.src).collect();
    // The handshake at 4.0 moved 10.0.0.3's flow ahead of the UDP flow of 3.0.
    assert_eq!(
        order,
        [
            ip("10.0.0.7"),
            ip("10.0.0.3"),
            ip("10.0.0.5"),
            ip("10.0.0.1")
        ]
    );
    assert_eq!(table.active(2, |_| true).len(), 2);
    let udp_only: Vec<IpAddr> = table
        .active(10, |r| r.ip_proto == ip_proto::UDP)
        .iter()
        .map(|r| r.src)
        .collect();
    assert_eq!(udp_only, [ip("10.0.0.5"), ip("10.0.0.1")]);
}

#[test]
fn marks_say_which_packets_open_answer_and_complete_a_connection() {
    const O: u8 = FlowMark::OPENS | FlowMark::FIRST_FROM_SENDER;
    const R: u8 = FlowMark::FROM_RESPONDER;
    let mut table = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    let mut marks = |packets: &[PacketMeta]| -> Vec<u8> {
        packets
            .iter()
            .map(|p| table.observe(p, &mut out).0)
            .collect()
    };
    // RFC 9293 three-way handshake, data, then a retransmitted SYN of another connection.
    let handshake = marks(&[
        tcp(1.0, "10.0.0.9", 40000, "10.0.0.1", 22, SYN, 60),
        tcp(1.1, "10.0.0.1", 22, "10.0.0.9", 40000, SYNACK, 60),
        tcp(1.2, "10.0.0.9", 40000, "10.0.0.1", 22, ACK, 54),
        tcp(1.3, "10.0.0.1", 22, "10.0.0.9", 40000, ACK, 154),
        tcp(1.4, "10.0.0.9", 40000, "10.0.0.1", 22, ACK, 54),
        tcp(2.0, "10.0.0.9", 40001, "10.0.0.1", 23, SYN, 60),
        tcp(3.0, "10.0.0.9", 40001, "10.0.0.1", 23, SYN, 60),
    ]);
    assert_eq!(
        handshake,
        [
            O,
            R | FlowMark::FIRST_FROM_SENDER,
            FlowMark::COMPLETES_HANDSHAKE,
            R,
            0,
            O,
            0
        ]
    );
    // A closed port answers with RST (RFC 9293 3.10.7.1): the answer is the responder's
    // first packet; a UDP request and its reply likewise.
    let refused = marks(&[
        tcp(4.0, "10.0.0.9", 40002, "10.0.0.1", 24, SYN, 60),
        tcp(4.1, "10.0.0.1", 24, "10.0.0.9", 40002, RST | ACK, 54),
        udp(5.0, "10.0.0.9", 5353, "10.0.0.53", 53),
        udp(5.1, "10.0.0.53", 53, "10.0.0.9", 5353),
        udp(5.2, "10.0.0.9", 5353, "10.0.0.53", 53),
    ]);
    assert_eq!(
        refused,
        [
            O,
            R | FlowMark::FIRST_FROM_SENDER,
            O,
            R | FlowMark::FIRST_FROM_SENDER,
            0
        ]
    );
    // Not IP: untracked.
    let mut arp = PacketMeta::blank(Timestamp::from_secs_f64(6.0), 42);
    arp.network = Network::Other { ether_type: 0x0806 };
    assert_eq!(marks(&[arp]), [FlowMark::UNTRACKED]);
}
