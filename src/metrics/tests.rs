use super::*;
use crate::packet::{Network, PacketMeta, TcpFlags, Timestamp, ip_proto};

fn pkt(t: f64, src: &str, dst: &str, len: u32) -> PacketMeta {
    let mut p = PacketMeta::blank(Timestamp::from_secs_f64(t), len);
    p.network = Network::Ipv4;
    p.src = src.parse().unwrap();
    p.dst = dst.parse().unwrap();
    p.ip_proto = ip_proto::TCP;
    p.has_ports = true;
    p.src_port = 1234;
    p.dst_port = 80;
    p.tcp_flags = TcpFlags(TcpFlags::SYN);
    p
}

fn batch(packets: Vec<PacketMeta>) -> PacketBatch {
    PacketBatch {
        packets,
        ..Default::default()
    }
}

#[test]
fn series_buckets_by_packet_second_and_zero_fills() {
    let mut m = MetricsAggregator::new(MetricsConfig {
        bandwidth_window_secs: 5,
        ..Default::default()
    });
    m.ingest(&batch(vec![
        pkt(100.1, "10.0.0.1", "10.0.0.2", 100),
        pkt(100.9, "10.0.0.1", "10.0.0.2", 50),
        pkt(102.5, "10.0.0.1", "10.0.0.2", 10),
        // far in the past: counted in totals, not in the series
        pkt(3.0, "10.0.0.1", "10.0.0.2", 1),
    ]));
    let series = m.bandwidth_series();
    assert_eq!(
        series.iter().map(|b| b.timestamp).collect::<Vec<_>>(),
        [98, 99, 100, 101, 102]
    );
    assert_eq!(
        series.iter().map(|b| b.bytes).collect::<Vec<_>>(),
        [0, 0, 150, 0, 10]
    );
    let snap = m.snapshot(10);
    assert_eq!(snap.total_bytes, 161);
    assert_eq!(snap.packets_per_sec, 0.0, "second 101 was empty");
    assert_eq!(snap.protocol_counts["TCP"], 4);
}

#[test]
fn top_talkers_count_both_directions_and_sort_by_bytes() {
    let mut m = MetricsAggregator::new(MetricsConfig::default());
    m.ingest(&batch(vec![
        pkt(1.0, "10.0.0.1", "10.0.0.2", 100),
        pkt(1.0, "10.0.0.3", "10.0.0.2", 300),
        pkt(1.0, "10.0.0.2", "10.0.0.1", 50),
    ]));
    let top = m.top_talkers(2);
    assert_eq!(top.len(), 2);
    assert_eq!(top[0].ip.to_string(), "10.0.0.2");
    assert_eq!(top[0].bytes, 450);
    assert_eq!(top[0].detail.bytes_sent, 50);
    assert_eq!(top[0].detail.packets_received, 2);
    assert_eq!(top[1].ip.to_string(), "10.0.0.3");
}

#[test]
fn the_host_table_stays_bounded() {
    let mut m = MetricsAggregator::new(MetricsConfig {
        max_hosts: 100,
        ..Default::default()
    });
    for i in 0..1000u32 {
        let src = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        m.ingest(&batch(vec![pkt(1.0, &src, "192.168.0.1", 60 + i)]));
    }
    assert!(m.hosts.len() <= 101);
    assert!(m.snapshot(1).hosts_pruned > 0);
    assert_eq!(m.top_talkers(1)[0].ip.to_string(), "192.168.0.1");
}

#[test]
fn the_packet_ring_keeps_the_newest_and_finds_by_id() {
    let mut ring = PacketRing::new(3);
    ring.push_batch(&batch(
        (0..5)
            .map(|i| pkt(f64::from(i), "10.0.0.1", "10.0.0.2", 60))
            .collect(),
    ));
    assert_eq!(ring.len(), 3);
    let latest = ring.latest(10);
    assert_eq!(latest.iter().map(|p| p.id).collect::<Vec<_>>(), [5, 4, 3]);
    assert_eq!(ring.get(4).unwrap().timestamp_ms, 3000);
    assert!(ring.get(2).is_none());
    assert!(ring.get(6).is_none());
    let view = &latest[0];
    assert_eq!(view.protocol, "TCP");
    assert_eq!(view.flags.as_deref(), Some("SYN"));
    assert_eq!(view.info, "1234 → 80 [SYN] len=0");
}

#[test]
fn dns_names_are_escaped_for_display() {
    assert_eq!(
        crate::wire::dns::display_name(b"a.b\x00\xff"),
        "a.b\\x00\\xff"
    );
}

#[test]
fn each_minute_of_packet_time_becomes_one_snapshot_of_that_minute_only() {
    let mut m = MetricsAggregator::new(MetricsConfig::default());
    m.ingest(&batch(vec![
        pkt(120.0, "10.0.0.1", "10.0.0.2", 100),
        pkt(150.5, "10.0.0.3", "10.0.0.2", 40),
        pkt(179.999, "10.0.0.1", "10.0.0.2", 10),
        // Next minute: closes the one starting at 120.
        pkt(181.0, "10.0.0.4", "10.0.0.5", 7),
    ]));
    let minutes = m.take_finished_minutes();
    assert_eq!(minutes.len(), 1);
    let first = &minutes[0];
    assert_eq!((first.timestamp, first.packets, first.bytes), (120, 3, 150));
    assert_eq!(first.protocol_counts["TCP"], 3);
    let talkers: Vec<(String, u64)> = first
        .top_talkers
        .iter()
        .map(|t| (t.ip.to_string(), t.bytes))
        .collect();
    assert_eq!(
        talkers,
        [
            ("10.0.0.2".into(), 150),
            ("10.0.0.1".into(), 110),
            ("10.0.0.3".into(), 40)
        ]
    );
    // The end of input closes the partial minute, with only its own traffic.
    m.finish_minute();
    let last = m.take_finished_minutes();
    assert_eq!(
        (last[0].timestamp, last[0].packets, last[0].bytes),
        (180, 1, 7)
    );
    assert_eq!(last[0].top_talkers.len(), 2);
    assert!(m.take_finished_minutes().is_empty());
}

#[test]
fn a_minute_names_its_busiest_hosts_and_sums_the_rest() {
    let mut m = MetricsAggregator::new(MetricsConfig::default());
    // A spoofed flood's minute: 10,000 sources of one 60-byte SYN each to one server,
    // and one source that sent 1,500 bytes.
    let mut packets: Vec<PacketMeta> = (0..10_000u32)
        .map(|i| {
            let src = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            pkt(120.0, &src, "192.0.2.80", 60)
        })
        .collect();
    packets.push(pkt(121.0, "198.51.100.7", "192.0.2.80", 1500));
    m.ingest(&batch(packets));
    m.finish_minute();
    let minute = &m.take_finished_minutes()[0];
    assert_eq!(minute.hosts.len(), MAX_SNAPSHOT_HOSTS);
    let named: std::collections::HashMap<_, _> = minute.hosts.iter().copied().collect();
    assert_eq!(
        named[&"192.0.2.80".parse().unwrap()].bytes_received,
        601_500
    );
    assert_eq!(named[&"198.51.100.7".parse().unwrap()].bytes_sent, 1500);
    // 10,002 hosts: the 4,096 named and 5,906 sources of 60 bytes in the sum.
    assert_eq!(minute.hosts_other.bytes_sent, 5_906 * 60);
    assert_eq!(minute.hosts_other.packets_sent, 5_906);
    let sent: u64 = minute.hosts.iter().map(|(_, c)| c.bytes_sent).sum();
    assert_eq!(sent + minute.hosts_other.bytes_sent, minute.bytes);
}
