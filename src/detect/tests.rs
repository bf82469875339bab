//! Unit tests of each detector's edge cases. Thresholds are the published defaults; the
//! expected values follow from the rule definitions, not from running the detectors.

use std::net::IpAddr;

use super::*;
use crate::flow::{EndReason, FlowConfig, FlowState, FlowTable};
use crate::packet::{DnsMeta, NameRef, Network, PacketMeta, TcpFlags, Timestamp, ip_proto};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;
const FIN: u8 = TcpFlags::FIN;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(t: f64, src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> PacketMeta {
    let mut p = PacketMeta::blank(Timestamp::from_secs_f64(t), 60);
    p.network = Network::Ipv4;
    p.src = ip(src);
    p.dst = ip(dst);
    p.ip_proto = ip_proto::TCP;
    p.has_ports = true;
    p.src_port = sport;
    p.dst_port = dport;
    p.tcp_flags = TcpFlags(flags);
    p
}

fn udp(t: f64, src: &str, sport: u16, dst: &str, dport: u16) -> PacketMeta {
    let mut p = tcp(t, src, sport, dst, dport, 0);
    p.ip_proto = ip_proto::UDP;
    p
}

fn batch(packets: Vec<PacketMeta>) -> PacketBatch {
    PacketBatch {
        packets,
        ..Default::default()
    }
}

/// A batch of DNS queries from `src`, one per (time, name, qtype).
fn queries(src: &str, items: &[(f64, String, u16)]) -> PacketBatch {
    let mut b = PacketBatch::default();
    for (i, (t, name, qtype)) in items.iter().enumerate() {
        let mut p = udp(*t, src, 40_000 + i as u16, "10.0.0.53", 53);
        let offset = b.names.len() as u32;
        b.names.extend_from_slice(name.as_bytes());
        p.dns = Some(DnsMeta {
            id: i as u16,
            is_response: false,
            qtype: *qtype,
            rcode: 0,
            answers: 0,
            qname: NameRef {
                offset,
                len: name.len() as u16,
            },
            addresses: Default::default(),
        });
        b.packets.push(p);
    }
    b
}

/// Feeds `batches` to `d` as the pipeline does: marked by a flow table first.
fn run(d: &mut dyn Detector, batches: Vec<PacketBatch>) -> Vec<Finding> {
    let mut table = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    for b in batches {
        feed(d, &mut table, &b, &mut out);
    }
    d.flush(&mut out);
    out
}

fn feed(d: &mut dyn Detector, table: &mut FlowTable, b: &PacketBatch, out: &mut Vec<Finding>) {
    let (mut records, mut marks) = (Vec::new(), Vec::new());
    table.ingest_marked(b, &mut records, &mut marks);
    if d.wants_flows() && !records.is_empty() {
        d.on_flows(&records, out);
    }
    d.on_packets(b, &marks, out);
}

mod port_scan {
    use super::*;

    fn scan(ports: impl Iterator<Item = (f64, u16)>, flags: u8) -> Vec<PacketMeta> {
        ports
            .map(|(t, port)| tcp(t, "10.0.0.66", 40_000, "10.0.0.1", port, flags))
            .collect()
    }

    #[test]
    fn ten_ports_alert_and_nine_do_not() {
        let mut d = PortScan::new(PortScanConfig::default());
        let nine = run(
            &mut d,
            vec![batch(scan((1..10).map(|p| (0.1 * f64::from(p), p)), SYN))],
        );
        assert!(nine.is_empty(), "9 ports is below the threshold");
        let mut d = PortScan::new(PortScanConfig::default());
        let ten = run(
            &mut d,
            vec![batch(scan((1..=10).map(|p| (0.1 * f64::from(p), p)), SYN))],
        );
        assert_eq!(ten.len(), 1);
        let f = &ten[0];
        assert_eq!((f.rule, f.severity), (Rule::PortScan, Severity::High));
        assert_eq!(f.source, Some(ip("10.0.0.66")));
        assert_eq!(f.target, Target::Host(ip("10.0.0.1")));
        assert_eq!(f.evidence["distinct_ports"], 10);
        assert_eq!(f.evidence["kind"], "vertical");
        assert_eq!(f.count, 10);
    }

    #[test]
    fn ten_ports_within_sixty_seconds_alert_and_spread_wider_do_not() {
        // Ten ports, the first at 0 s and the tenth at 59 s: inside the 60 s window.
        let inside = (0..10u16).map(|i| (f64::from(i) * 59.0 / 9.0, 100 + i));
        let mut d = PortScan::new(PortScanConfig::default());
        assert_eq!(run(&mut d, vec![batch(scan(inside, SYN))]).len(), 1);
        // The first port 70 s before the nine others: nine in the window.
        let outside = std::iter::once((0.0, 100))
            .chain((1..10u16).map(|i| (70.0 + f64::from(i) * 0.1, 100 + i)));
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(scan(outside, SYN))]).is_empty());
    }

    #[test]
    fn repeated_probes_of_one_port_wait_for_a_second_port_and_are_all_counted() {
        // Five connections to port 22 (new source ports), then nine more ports.
        let mut packets: Vec<_> = (0..5)
            .map(|i| {
                tcp(
                    0.1 * f64::from(i),
                    "10.0.0.66",
                    40_000 + i,
                    "10.0.0.1",
                    22,
                    SYN,
                )
            })
            .collect();
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(packets.clone())]).is_empty());
        assert_eq!(d.stats().tracked, 0, "one port repeated costs no state");
        packets.extend((1..=9).map(|p| tcp(1.0, "10.0.0.66", 41_000 + p, "10.0.0.1", p, SYN)));
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(packets)]);
        let vertical: Vec<_> = f
            .iter()
            .filter(|f| f.evidence["kind"] == "vertical")
            .collect();
        assert_eq!(vertical.len(), 1);
        assert_eq!(vertical[0].evidence["distinct_ports"], 10);
        assert_eq!(vertical[0].evidence["probes"], 14);
    }

    #[test]
    fn the_window_edge_is_inclusive() {
        // Port 1 at 0 s, ports 2..=9 at 30 s, port 10 at `last`.
        let at = |last: f64| {
            let mut times = vec![(0.0, 1u16)];
            times.extend((2..=9).map(|p| (30.0, p)));
            times.push((last, 10));
            let mut d = PortScan::new(PortScanConfig::default());
            run(&mut d, vec![batch(scan(times.into_iter(), SYN))])
        };
        assert_eq!(
            at(60.0).len(),
            1,
            "first probe exactly 60 s before the tenth"
        );
        assert!(
            at(60.001).is_empty(),
            "first probe just over 60 s before the tenth"
        );
    }

    #[test]
    fn stealth_probes_count_and_ack_probes_count_by_their_rst() {
        for flags in [FIN, 0, FIN | TcpFlags::PSH | TcpFlags::URG] {
            let mut d = PortScan::new(PortScanConfig::default());
            let f = run(&mut d, vec![batch(scan((1..=10).map(|p| (0.0, p)), flags))]);
            assert_eq!(f.len(), 1, "flags {flags:#x}");
        }
        // Bare ACKs alone are every connection's last packet: not counted...
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(scan((1..=10).map(|p| (0.0, p)), ACK))]).is_empty());
        // ...but a RST without ACK answering them (RFC 9293 3.10.7.1) shows an ACK probe.
        let rsts: Vec<PacketMeta> = (1..=10)
            .map(|p| tcp(0.1, "10.0.0.1", p, "10.0.0.66", 40_000, RST))
            .collect();
        let mut probes_and_answers = scan((1..=10).map(|p| (0.0, p)), ACK);
        probes_and_answers.extend(rsts.iter().cloned());
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(probes_and_answers)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].source, Some(ip("10.0.0.66")));
        assert_eq!(f[0].evidence["probe_types"]["ack"], 10);
        // RSTs that answer nothing seen (they open their flows) are not answers.
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(rsts.clone())]).is_empty());
        // Nor are RSTs to FIN-ACKs of connections picked up mid-way that the other side
        // has already forgotten: the probe of an ACK scan is a bare ACK.
        let mut closing = scan((1..=10).map(|p| (0.0, p)), ACK | FIN);
        closing.extend(rsts);
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(closing)]).is_empty());
    }

    #[test]
    fn accepted_connections_are_not_probes() {
        // A client opening ten services that all answer SYN-ACK is using them.
        let mut packets = Vec::new();
        for port in 1..=10u16 {
            packets.push(tcp(0.0, "10.0.0.66", 40_000 + port, "10.0.0.1", port, SYN));
            packets.push(tcp(
                0.0,
                "10.0.0.1",
                port,
                "10.0.0.66",
                40_000 + port,
                SYN | ACK,
            ));
        }
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
    }

    #[test]
    fn icmp_errors_never_probe_the_quoting_host() {
        let mut packets = Vec::new();
        for i in 0..50u16 {
            packets.push(udp(0.0, "10.0.0.66", 50_000, "10.0.0.1", 1000 + i));
            let mut unreachable = tcp(0.0, "10.0.0.1", 0, "10.0.0.66", 0, 0);
            unreachable.ip_proto = ip_proto::ICMP;
            unreachable.has_ports = false;
            unreachable.icmp_type = 3;
            unreachable.icmp_code = 3;
            packets.push(unreachable);
        }
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(packets)]);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|f| f.source == Some(ip("10.0.0.66"))),
            "only the UDP scanner"
        );
    }

    #[test]
    fn horizontal_sweeps_need_twenty_hosts() {
        let sweep = |hosts: u8| {
            (1..=hosts)
                .map(|h| tcp(0.0, "10.0.0.66", 40_000, &format!("10.0.1.{h}"), 445, SYN))
                .collect::<Vec<_>>()
        };
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(sweep(19))]).is_empty());
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(sweep(20))]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].target,
            Target::Sweep {
                proto: ip_proto::TCP,
                port: 445
            }
        );
        assert_eq!(f[0].evidence["distinct_hosts"], 20);
    }

    #[test]
    fn allow_listed_sources_and_targets_are_ignored() {
        for allow in [
            AllowList {
                sources: vec!["10.0.0.64/30".parse().unwrap()],
                targets: vec![],
            },
            AllowList {
                sources: vec![],
                targets: vec!["10.0.0.1/32".parse().unwrap()],
            },
        ] {
            let mut d = PortScan::new(PortScanConfig {
                allow,
                ..Default::default()
            });
            assert!(run(&mut d, vec![batch(scan((1..=100).map(|p| (0.0, p)), SYN))]).is_empty());
        }
    }

    #[test]
    fn random_sources_keep_state_at_its_cap() {
        let mut d = PortScan::new(PortScanConfig {
            max_tracked: 100,
            ..Default::default()
        });
        // One probe per source (a spoofed flood) keeps no per-source state at all.
        let one = |i: u32, port: u16| {
            let src = format!("11.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            tcp(0.0, &src, 1, "10.0.0.1", port, SYN)
        };
        run(&mut d, vec![batch((0..5000).map(|i| one(i, 80)).collect())]);
        assert_eq!(d.stats().tracked, 0);
        // Two probes per source: state for the first 100 of each map, the rest refused.
        let mut d = PortScan::new(PortScanConfig {
            max_tracked: 100,
            ..Default::default()
        });
        let packets = (0..5000).flat_map(|i| [one(i, 80), one(i, 81)]).collect();
        run(&mut d, vec![batch(packets)]);
        let stats = d.stats();
        assert!(stats.tracked <= 200, "{stats:?}");
        assert!(stats.refused >= 4900, "{stats:?}");
    }

    #[test]
    fn time_going_backwards_neither_panics_nor_reopens_windows() {
        // Ports probed at 100 s, then "earlier" packets: the clock stays at 100 s.
        let mut packets = scan((1..=5).map(|p| (100.0, p)), SYN);
        packets.extend(scan((6..=10).map(|p| (0.0, p)), SYN));
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(packets)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].ts, Timestamp::from_secs_f64(100.0));
    }

    #[test]
    fn a_thousand_ports_in_a_second_is_one_finding_then_one_final_update() {
        let mut d = PortScan::new(PortScanConfig::default());
        let mut out = Vec::new();
        feed(
            &mut d,
            &mut FlowTable::new(FlowConfig::default()),
            &batch(scan((1..=1000).map(|p| (f64::from(p) / 2000.0, p)), SYN)),
            &mut out,
        );
        assert_eq!(out.len(), 1, "rate-limited to one per second");
        d.flush(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out.iter().map(|f| f.count).sum::<u64>(), 1000);
        assert_eq!(out[1].evidence["distinct_ports"], 1000);
        // The sample is the lowest twenty ports probed, in order.
        let sample: Vec<u64> = (1..=20).collect();
        assert_eq!(out[1].evidence["ports_sample"], serde_json::json!(sample));
    }

    fn arp(t: f64, op: u8, sender: &str, target: &str) -> PacketMeta {
        let mut p = PacketMeta::blank(Timestamp::from_secs_f64(t), 60);
        p.network = Network::Arp;
        p.src = ip(sender);
        p.dst = ip(target);
        p.icmp_type = op;
        p
    }

    #[test]
    fn arp_requests_for_twenty_silent_addresses_are_a_sweep() {
        let requests = |hosts: u8| {
            (1..=hosts)
                .map(|h| arp(0.01 * f64::from(h), 1, "10.0.0.66", &format!("10.0.0.{h}")))
                .collect::<Vec<_>>()
        };
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(requests(19))]).is_empty());
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(requests(20))]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].target, Target::ArpSweep);
        assert_eq!(f[0].target.to_string(), "*:arp");
        // Hosts that reply are in use: a gateway refreshing 30 live neighbours is no sweep.
        let mut packets = Vec::new();
        for h in 1..=30u8 {
            let host = format!("10.0.0.{h}");
            packets.push(arp(f64::from(h), 1, "10.0.0.1", &host));
            packets.push(arp(f64::from(h) + 0.001, 2, &host, "10.0.0.1"));
        }
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
        // Address probes (sender 0.0.0.0) and announcements (sender = target) look for no one.
        let mut packets = Vec::new();
        for h in 1..=30u8 {
            let host = format!("10.0.0.{h}");
            packets.push(arp(0.0, 1, "0.0.0.0", &host));
            packets.push(arp(0.0, 1, &host, &host));
        }
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
    }

    #[test]
    fn ten_ip_protocols_to_one_host_are_a_protocol_scan() {
        let protocols = |n: u8| {
            (0..n)
                .map(|i| {
                    let mut p = tcp(0.0, "10.0.0.66", 0, "10.0.0.1", 0, 0);
                    p.has_ports = false;
                    // Skips TCP (6) and UDP (17), which are not "other" protocols.
                    p.ip_proto = [2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13][usize::from(i)];
                    p
                })
                .collect::<Vec<_>>()
        };
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(protocols(9))]).is_empty());
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(protocols(10))]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].target, Target::Host(ip("10.0.0.1")));
        assert_eq!(f[0].evidence["kind"], "protocol");
        assert_eq!(f[0].evidence["distinct_protocols"], 10);
    }

    #[test]
    fn unanswered_bare_acks_to_twenty_hosts_are_a_sweep_answered_ones_are_not() {
        let acks = |answered: bool| {
            let mut packets = Vec::new();
            for h in 1..=30u8 {
                let host = format!("10.0.1.{h}");
                packets.push(tcp(0.0, "10.0.0.66", 40_000, &host, 443, ACK));
                if answered {
                    // The other side of a connection picked up mid-way.
                    packets.push(tcp(0.0, &host, 443, "10.0.0.66", 40_000, ACK));
                }
            }
            packets
        };
        let mut d = PortScan::new(PortScanConfig::default());
        let f = run(&mut d, vec![batch(acks(false))]);
        let sweep = Target::Sweep {
            proto: ip_proto::TCP,
            port: 443,
        };
        assert!(
            !f.is_empty() && f.iter().all(|f| f.target == sweep),
            "{f:?}"
        );
        // The crossing at 20 hosts, then the episode's final count.
        assert_eq!(f.last().unwrap().evidence["probe_types"]["ack"], 30);
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(acks(true))]).is_empty());
        // With payload it is data of a connection, not a ping.
        let mut with_data = acks(false);
        for p in &mut with_data {
            p.payload_len = 100;
        }
        let mut d = PortScan::new(PortScanConfig::default());
        assert!(run(&mut d, vec![batch(with_data)]).is_empty());
    }
}

mod brute_force {
    use super::*;
    use crate::flow::community_id::community_id;

    fn record(
        t: f64,
        sport: u16,
        dport: u16,
        state: FlowState,
        refused: bool,
        bytes: u64,
    ) -> FlowRecord {
        FlowRecord {
            id: u64::from(sport),
            src: ip("10.0.0.66"),
            dst: ip("10.0.0.22"),
            src_port: sport,
            dst_port: dport,
            ip_proto: ip_proto::TCP,
            first_seen: Timestamp::from_secs_f64(t),
            last_seen: Timestamp::from_secs_f64(t + 2.0),
            src_packets: 10,
            dst_packets: 10,
            src_bytes: bytes,
            dst_bytes: bytes,
            src_flags: TcpFlags(SYN | ACK | FIN),
            dst_flags: TcpFlags(if refused { RST | ACK } else { SYN | ACK | FIN }),
            state,
            refused,
            vlan: None,
            // The function tests/captures.rs checks against tshark.
            community_id: community_id(
                0,
                ip("10.0.0.66"),
                ip("10.0.0.22"),
                ip_proto::TCP,
                sport,
                dport,
            ),
            end: EndReason::IdleTimeout,
            tunnel: None,
            carries: None,
            server_name: None,
            name_source: None,
            http_host: None,
            http_user_agent: None,
            tls: None,
            app: None,
        }
    }

    fn judge(records: Vec<FlowRecord>) -> Vec<Finding> {
        let mut d = BruteForce::new(BruteForceConfig::default());
        let mut out = Vec::new();
        d.on_flows(&records, &mut out);
        d.flush(&mut out);
        out
    }

    #[test]
    fn five_refused_attempts_in_thirty_seconds() {
        let refused = |n: u16, spacing: f64| {
            (0..n)
                .map(|i| {
                    record(
                        f64::from(i) * spacing,
                        50_000 + i,
                        4444,
                        FlowState::Reset,
                        true,
                        0,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert!(judge(refused(4, 1.0)).is_empty());
        let f = judge(refused(5, 1.0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].target, Target::Service(ip("10.0.0.22"), 4444));
        assert_eq!(f[0].evidence["failed_attempts"], 5);
        let fifth = &refused(5, 1.0)[4];
        assert_eq!(
            f[0].community_id.as_deref(),
            Some(fifth.community_id.as_str()),
            "the alert points at the attempt that crossed the threshold"
        );
        // Five attempts spread over 40 s: never five within 30 s.
        assert!(judge(refused(5, 10.0)).is_empty());
    }

    #[test]
    fn retries_from_one_source_port_are_one_attempt() {
        // A reverse shell's connect() retransmits its refused SYN from the same port.
        let retries = (0..15)
            .map(|i| record(f64::from(i) * 0.5, 1037, 4445, FlowState::Reset, true, 0))
            .collect();
        assert!(judge(retries).is_empty());
    }

    #[test]
    fn short_sessions_to_login_services_only() {
        let sessions = |n: u16, port: u16, bytes: u64| {
            (0..n)
                .map(|i| {
                    record(
                        f64::from(i) * 5.0,
                        50_000 + i,
                        port,
                        FlowState::Closed,
                        false,
                        bytes,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert!(judge(sessions(9, 22, 2000)).is_empty(), "nine in 45 s");
        let f = judge(sessions(10, 22, 2000));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence["service"], "SSH");
        assert!(
            judge(sessions(30, 443, 2000)).is_empty(),
            "web ports are not login services"
        );
        assert!(
            judge(sessions(30, 22, 100_000)).is_empty(),
            "big sessions are real use"
        );
    }

    #[test]
    fn slow_guessing_over_ten_minutes() {
        // One session every 20 s: 3 per minute, 30 in 580 s.
        let slow = (0..30)
            .map(|i| {
                record(
                    f64::from(i) * 20.0,
                    50_000 + i,
                    22,
                    FlowState::Closed,
                    false,
                    2000,
                )
            })
            .collect::<Vec<_>>();
        assert_eq!(judge(slow.clone()).len(), 1);
        assert!(judge(slow[..29].to_vec()).is_empty());
    }
}

mod syn_flood {
    use super::*;

    fn syns(n: u32, spoofed: bool, complete: bool) -> Vec<PacketMeta> {
        let mut packets = Vec::new();
        for i in 0..n {
            let src = if spoofed {
                format!("11.0.{}.{}", i >> 8, i & 255)
            } else {
                "10.0.0.66".to_string()
            };
            let t = f64::from(i) * 0.01;
            let sport = 10_000 + i as u16;
            packets.push(tcp(t, &src, sport, "10.0.0.80", 80, SYN));
            if complete {
                packets.push(tcp(t, "10.0.0.80", 80, &src, sport, SYN | ACK));
                packets.push(tcp(t, &src, sport, "10.0.0.80", 80, ACK));
            }
        }
        packets
    }

    #[test]
    fn a_hundred_uncompleted_syns_from_one_source() {
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(syns(99, false, false))]).is_empty());
        let mut d = SynFlood::new(SynFloodConfig::default());
        let f = run(&mut d, vec![batch(syns(100, false, false))]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].source, Some(ip("10.0.0.66")));
        assert_eq!(f[0].evidence["completion_ratio"], 0.0);
    }

    /// 100 uncompleted SYNs from one source: the first at `first`, the other 99 spread over
    /// the tenth of a second from `rest`.
    fn syns_at(first: f64, rest: f64) -> Vec<PacketMeta> {
        let mut packets = vec![tcp(first, "10.0.0.66", 9_999, "10.0.0.80", 80, SYN)];
        packets.extend((0..99u16).map(|i| {
            tcp(
                rest + f64::from(i) * 0.001,
                "10.0.0.66",
                10_000 + i,
                "10.0.0.80",
                80,
                SYN,
            )
        }));
        packets
    }

    #[test]
    fn the_window_holds_a_hundred_syns_inside_ten_seconds_and_not_outside() {
        // 100 SYNs within 9.2 s (the first at 0.0, the rest at 9.1 to 9.2): a flood.
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert_eq!(run(&mut d, vec![batch(syns_at(0.0, 9.1))]).len(), 1);
        // The first one 10.5 s before the others: 99 in the window, no flood.
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(syns_at(0.0, 10.5))]).is_empty());
        // The window is ten whole seconds of packet time (the event's own and the nine
        // before), so its true length is 9 to 10 s: 9.94 s apart is inside when the first
        // falls early in its second, 9.3 s apart is outside when it falls late.
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert_eq!(run(&mut d, vec![batch(syns_at(0.01, 9.85))]).len(), 1);
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(syns_at(0.9, 10.2))]).is_empty());
    }

    #[test]
    fn completed_handshakes_are_not_a_flood() {
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(syns(1000, false, true))]).is_empty());
    }

    #[test]
    fn syns_across_many_ports_are_a_scan_not_a_flood() {
        let packets = (0..1000u16)
            .map(|p| tcp(0.0, "10.0.0.66", 40_000, "10.0.0.80", p, SYN))
            .collect();
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
    }

    #[test]
    fn spoofed_floods_are_caught_per_target() {
        let mut d = SynFlood::new(SynFloodConfig::default());
        let f = run(&mut d, vec![batch(syns(600, true, false))]);
        assert_eq!(f.len(), 2, "crossing, then the final update: {f:?}");
        assert!(f.iter().all(|f| f.source.is_none()));
        assert_eq!(f[0].target, Target::Service(ip("10.0.0.80"), 80));
        assert_eq!(f[1].evidence["distinct_sources"], 600);
        assert_eq!(f.iter().map(|f| f.count).sum::<u64>(), 600);
    }

    #[test]
    fn retransmitted_syns_count_as_syns_but_not_as_sources() {
        // Every spoofed source sends its SYN twice (RFC 6298: a retransmission after 1 s).
        let first = syns(600, true, false);
        let mut again = first.clone();
        for p in &mut again {
            p.ts = Timestamp(p.ts.0 + Timestamp::NANOS_PER_SEC);
        }
        let mut d = SynFlood::new(SynFloodConfig::default());
        let f = run(&mut d, vec![batch(first), batch(again)]);
        let last = f.last().expect("a flood");
        assert_eq!(last.evidence["distinct_sources"], 600);
        assert_eq!(last.evidence["total_syns"], 1200);
    }

    #[test]
    fn a_flood_from_one_fixed_source_port_is_counted_in_full() {
        // hping3 -k keeps the source port: every SYN repeats the first one exactly.
        let packets = (0..100)
            .map(|i| tcp(f64::from(i) * 0.01, "10.0.0.66", 5000, "10.0.0.80", 80, SYN))
            .collect();
        let mut d = SynFlood::new(SynFloodConfig::default());
        let f = run(&mut d, vec![batch(packets)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence["syn_count"], 100);
    }

    #[test]
    fn one_client_retrying_costs_no_state() {
        // A SYN to a closed port retried six times: one source, one source port, one target.
        let packets = (0..6)
            .map(|i| {
                tcp(
                    f64::from(1 << i) - 1.0,
                    "10.0.0.5",
                    40_000,
                    "10.0.0.80",
                    80,
                    SYN,
                )
            })
            .collect();
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
        assert_eq!(d.stats().tracked, 0);
    }

    /// SYN-ACKs from `n` reflectors to one victim, which sent no SYN.
    fn reflected(n: u32, victim_fixed: bool) -> Vec<PacketMeta> {
        (0..n)
            .map(|i| {
                let reflector = format!("11.0.{}.{}", i >> 8, i & 255);
                let victim = if victim_fixed {
                    "10.0.0.80".to_string()
                } else {
                    format!("12.0.{}.{}", i >> 8, i & 255)
                };
                let t = f64::from(i) * 0.001;
                tcp(t, &reflector, 80, &victim, 10_000 + i as u16, SYN | ACK)
            })
            .collect()
    }

    #[test]
    fn unsolicited_syn_acks_from_many_reflectors_are_a_reflected_flood() {
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(reflected(499, true))]).is_empty());
        let mut d = SynFlood::new(SynFloodConfig::default());
        let f = run(&mut d, vec![batch(reflected(500, true))]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].source, None);
        assert_eq!(f[0].target, Target::Host(ip("10.0.0.80")));
        assert_eq!(f[0].evidence["variant"], "reflection");
        assert_eq!(f[0].evidence["distinct_sources"], 500);
        // Backscatter: one DoS victim's SYN-ACKs spread over the addresses spoofed at it.
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(reflected(2000, false))]).is_empty());
        // SYN-ACKs that answer SYNs the host sent are its own connections.
        let mut packets = Vec::new();
        for i in 0..600u32 {
            let server = format!("11.0.{}.{}", i >> 8, i & 255);
            let t = f64::from(i) * 0.001;
            packets.push(tcp(t, "10.0.0.80", 10_000 + i as u16, &server, 80, SYN));
            packets.push(tcp(
                t,
                &server,
                80,
                "10.0.0.80",
                10_000 + i as u16,
                SYN | ACK,
            ));
        }
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
        // A bare ACK opening a flow is not a SYN-ACK.
        let mut acks = reflected(600, true);
        for p in &mut acks {
            p.tcp_flags = TcpFlags(ACK);
        }
        let mut d = SynFlood::new(SynFloodConfig::default());
        assert!(run(&mut d, vec![batch(acks)]).is_empty());
    }
}

mod dns_tunnel {
    use super::super::dns_tunnel::{encoding, entropy, is_ordinary, registered_domain};
    use super::*;

    #[test]
    fn registered_domains() {
        assert_eq!(registered_domain(b"a.b.example.com"), b"example.com");
        assert_eq!(registered_domain(b"x.example.co.uk"), b"example.co.uk");
        assert_eq!(registered_domain(b"dnscat.546b03f5.5a03b5b1"), b"");
        assert_eq!(registered_domain(b"localhost"), b"localhost");
    }

    #[test]
    fn ordinary_long_names() {
        assert!(is_ordinary(
            b"_ldap._tcp.Default-First-Site-Name._sites.dc._msdcs.corp.local"
        ));
        assert!(is_ordinary(
            b"2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.f.f.ip6.arpa"
        ));
        assert!(!is_ordinary(b"www.example.com"));
    }

    #[test]
    fn entropy_in_bits_per_character() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert_eq!(entropy(b"abcd"), 2.0);
        assert_eq!(entropy(b"0123456789abcdef"), 4.0);
        assert!(!encoding(b"internationalization", 3.4).encoded(), "a word");
        assert!(encoding(b"le+FgAAB", 3.4).raw, "base64 has + and =");
        // An MD5-named object is encoded-looking but carries no payload by itself.
        let md5 = encoding(b"24df4e367ccd7044711599be4d744739.clo", 3.4);
        assert!(md5.encoded() && !md5.carries_payload());
        let elb = encoding(
            b"data-collector-linkedin-prod-1143471378.us-east-1.elb",
            3.4,
        );
        assert!(!elb.carries_payload(), "hyphenated words");
    }

    fn base32(i: usize, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHABET[(x % 32) as usize] as char
            })
            .collect()
    }

    #[test]
    fn one_long_encoded_name_is_a_medium_alert() {
        let name = format!("{}.t.example.com", base32(1, 60));
        let mut d = DnsTunnel::new(DnsTunnelConfig::default());
        let f = run(&mut d, vec![queries("10.0.0.9", &[(0.0, name, 1)])]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].evidence["signals"], serde_json::json!(["long_name"]));
        assert_eq!(f[0].target, Target::Service(ip("10.0.0.53"), 53));
    }

    #[test]
    fn long_names_at_twenty_per_second_are_critical() {
        let items: Vec<_> = (0..20)
            .map(|i| {
                (
                    f64::from(i) * 0.04,
                    format!("{}.t.example.com", base32(i as usize, 60)),
                    16,
                )
            })
            .collect();
        let mut d = DnsTunnel::new(DnsTunnelConfig::default());
        let f = run(&mut d, vec![queries("10.0.0.9", &items)]);
        assert!(f.iter().any(|f| f.severity == Severity::Critical), "{f:?}");
    }

    #[test]
    fn word_subdomains_at_high_rate_do_not_alert() {
        // The benign baseline: 49 stackexchange.com sites resolved within a second.
        let words = [
            "gis",
            "physics",
            "wordpress",
            "space",
            "scifi",
            "academia",
            "codereview",
        ];
        let items: Vec<_> = (0..49)
            .map(|i| {
                (
                    f64::from(i) * 0.02,
                    format!("{}{i}.stackexchange.com", words[i as usize % 7]),
                    1,
                )
            })
            .collect();
        let mut d = DnsTunnel::new(DnsTunnelConfig::default());
        assert!(run(&mut d, vec![queries("10.0.0.9", &items)]).is_empty());
    }

    #[test]
    fn short_hex_labels_alert_by_distinct_subdomains() {
        let hex = |i: usize| {
            base32(i, 34)
                .bytes()
                .map(|b| b"0123456789abcdef"[(b % 16) as usize] as char)
                .collect::<String>()
        };
        let items: Vec<_> = (0..10)
            .map(|i| {
                (
                    f64::from(i as u32) * 5.0,
                    format!("{}.biillpi.com", hex(i)),
                    15,
                )
            })
            .collect();
        let mut d = DnsTunnel::new(DnsTunnelConfig::default());
        let f = run(&mut d, vec![queries("10.0.0.9", &items[..9])]);
        assert!(f.is_empty(), "nine subdomains");
        let mut d = DnsTunnel::new(DnsTunnelConfig::default());
        let f = run(&mut d, vec![queries("10.0.0.9", &items)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence["signals"], serde_json::json!(["subdomains"]));
    }

    #[test]
    fn ordinary_long_names_do_not_alert() {
        let items = vec![
            (
                0.0,
                "_ldap._tcp.Default-First-Site-Name._sites.DomainDnsZones.picklesworth.local"
                    .to_string(),
                33,
            ),
            (
                0.1,
                "2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.f.f.ip6.arpa"
                    .to_string(),
                12,
            ),
            (
                0.2,
                "24df4e367ccd7044711599be4d744739.clo.footprintdns.com".to_string(),
                1,
            ),
        ];
        let mut d = DnsTunnel::new(DnsTunnelConfig::default());
        assert!(run(&mut d, vec![queries("10.0.0.9", &items)]).is_empty());
    }
}

mod traffic_spike {
    use super::*;

    /// One packet per second of `bytes[i]` at second `start + i`.
    fn seconds(start: i64, bytes: &[u32]) -> Vec<PacketMeta> {
        bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let mut p = tcp(0.0, "10.0.0.1", 1, "10.0.0.2", 2, ACK);
                p.ts = Timestamp::from_parts(start + i as i64, 0);
                p.wire_len = b;
                p
            })
            .collect()
    }

    fn baseline(n: usize) -> Vec<u32> {
        (0..n).map(|i| 1000 + (i as u32 % 5) * 100).collect()
    }

    #[test]
    fn a_burst_after_learning_alerts_with_its_z_score() {
        let mut bytes = baseline(60);
        bytes.extend([500_000, 1000]);
        let mut d = TrafficSpike::new(TrafficSpikeConfig::default());
        let f = run(&mut d, vec![batch(seconds(0, &bytes))]);
        assert_eq!(f.len(), 1, "{f:?}");
        // Baseline 1000..1400 B/s: mean 1200, population σ = √20000 ≈ 141.4.
        assert_eq!(f[0].evidence["mean"], 1200.0);
        assert_eq!(f[0].evidence["std_dev"], 141.42);
        let z = (500_000.0 - 1200.0) / 20_000f64.sqrt();
        assert!((f[0].evidence["z_score"].as_f64().unwrap() - z).abs() < 0.01);
    }

    #[test]
    fn nothing_is_judged_while_learning() {
        let mut bytes = baseline(30);
        bytes.extend([500_000, 1000]);
        let mut d = TrafficSpike::new(TrafficSpikeConfig::default());
        assert!(run(&mut d, vec![batch(seconds(0, &bytes))]).is_empty());
    }

    #[test]
    fn a_gap_longer_than_the_history_relearns() {
        let mut d = TrafficSpike::new(TrafficSpikeConfig::default());
        let mut packets = seconds(0, &baseline(100));
        // A year later, a burst: no baseline any more.
        packets.extend(seconds(31_536_000, &[500_000, 1000]));
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
    }

    #[test]
    fn small_bursts_on_a_quiet_link_do_not_alert() {
        let mut bytes = vec![60; 60];
        bytes.extend([50_000, 60]);
        let mut d = TrafficSpike::new(TrafficSpikeConfig::default());
        assert!(run(&mut d, vec![batch(seconds(0, &bytes))]).is_empty());
    }

    #[test]
    fn zero_duration_and_backwards_time_are_harmless() {
        let mut d = TrafficSpike::new(TrafficSpikeConfig::default());
        let mut packets = seconds(100, &[1000; 10]);
        packets.extend(seconds(0, &[1000; 10]));
        packets.iter_mut().for_each(|p| p.ts = Timestamp(0));
        assert!(run(&mut d, vec![batch(packets)]).is_empty());
    }
}
