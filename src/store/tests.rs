use std::net::IpAddr;

use super::*;
use crate::model::finding::{Rule, Severity};
use crate::model::flow::{EndReason, FlowQuery, FlowState};
use crate::packet::{TcpFlags, Timestamp};

fn dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "tapir-store-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn flow(id: u64, src: &str, dst: &str, proto: u8, end_secs: f64) -> FlowRecord {
    let end = Timestamp::from_secs_f64(end_secs);
    FlowRecord {
        id,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        src_port: 40_000u16.wrapping_add(id as u16),
        dst_port: 443,
        ip_proto: proto,
        first_seen: Timestamp(end.0 - 1_500_000_000),
        last_seen: end,
        src_packets: 3,
        dst_packets: 4,
        src_bytes: 300,
        dst_bytes: 4000,
        src_flags: TcpFlags(0x12),
        dst_flags: TcpFlags(0x1b),
        state: FlowState::Closed,
        refused: id.is_multiple_of(2),
        vlan: id.is_multiple_of(3).then_some(42),
        community_id: format!("1:flow{id}"),
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

fn alert(ms: u64, source: &str) -> Alert {
    Alert {
        id: ms * 1024,
        timestamp: ms as f64 / 1000.0,
        last_seen: ms as f64 / 1000.0 + 5.0,
        alert_type: Rule::PortScan,
        severity: Severity::High,
        source_ip: source.into(),
        target: "10.0.0.9".into(),
        description: "scan".into(),
        evidence: serde_json::json!({"ports": 12}).into(),
        count: 12,
        acknowledged: false,
        community_id: None,
    }
}

fn ids(flows: &[FlowRecord]) -> Vec<u64> {
    flows.iter().map(|f| f.id).collect()
}

fn all() -> FlowQuery {
    FlowQuery {
        limit: usize::MAX,
        ..Default::default()
    }
}

#[test]
fn the_flow_encoding_round_trips_both_families_and_every_field() {
    let mut v6 = flow(7, "2001:db8::1", "2001:db8::2", 17, 1000.25);
    v6.state = FlowState::Reset;
    v6.end = EndReason::ActiveTimeout;
    v6.src_bytes = u64::MAX;
    for r in [flow(6, "10.0.0.1", "10.0.0.2", 6, 99.5), v6] {
        let mut buf = Vec::new();
        codec::encode_flow(&r, &mut buf);
        assert_eq!(codec::decode_flow(&buf).unwrap(), r);
        // Every shorter prefix is an error, never a panic or a wrong record.
        for cut in 0..buf.len() {
            assert!(codec::decode_flow(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
    assert_eq!(codec::decode_flow(&[9]), Err(DecodeError::Version(9)));
}

#[test]
fn time_keys_sort_like_the_times_they_encode() {
    let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000_000_000, i64::MAX];
    for w in times.windows(2) {
        assert!(time_key(w[0]) < time_key(w[1]));
        assert_eq!(time_from_key(&time_key(w[0])), Some(w[0]));
    }
}

#[test]
fn flow_time_ranges_are_inclusive_at_both_ends() {
    let d = dir();
    let mut s = Store::open(&d, &StoreConfig::default()).unwrap();
    let records: Vec<_> = (0..5)
        .map(|i| flow(i, "10.0.0.1", "10.0.0.2", 6, 100.0 + i as f64))
        .collect();
    s.insert_flows(&records).unwrap();
    let q = |start, end| FlowQuery {
        start,
        end,
        ..all()
    };
    // Flows ended at 100, 101, 102, 103, 104; newest first.
    assert_eq!(
        ids(&s.flows(&q(Some(101.0), Some(103.0))).unwrap()),
        [3, 2, 1]
    );
    assert_eq!(ids(&s.flows(&q(Some(101.0), Some(101.0))).unwrap()), [1]);
    assert_eq!(
        ids(&s.flows(&q(Some(101.000_001), Some(102.999_999))).unwrap()),
        [2]
    );
    assert_eq!(ids(&s.flows(&q(None, Some(100.0))).unwrap()), [0]);
    assert_eq!(ids(&s.flows(&q(Some(104.0), None)).unwrap()), [4]);
    assert!(s.flows(&q(Some(105.0), None)).unwrap().is_empty());
    // Limits keep the newest.
    let newest2 = s.flows(&FlowQuery { limit: 2, ..all() }).unwrap();
    assert_eq!(ids(&newest2), [4, 3]);
    assert_eq!(
        s.flows(&all()).unwrap(),
        records.into_iter().rev().collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_ip_index_finds_a_host_on_either_side_and_filters_combine() {
    let d = dir();
    let mut s = Store::open(&d, &StoreConfig::default()).unwrap();
    s.insert_flows(&[
        flow(1, "10.0.0.1", "10.0.0.2", 6, 10.0),
        flow(2, "10.0.0.3", "10.0.0.1", 17, 11.0),
        flow(3, "10.0.0.3", "10.0.0.4", 6, 12.0),
        // Shares 10.0.0.1's index key (IPv4-mapped) but is another address.
        flow(5, "::ffff:10.0.0.1", "2001:db8::2", 6, 14.0),
    ])
    .unwrap();
    let host: IpAddr = "10.0.0.1".parse().unwrap();
    let any = s
        .flows(&FlowQuery {
            ip: Some(host),
            ..all()
        })
        .unwrap();
    assert_eq!(
        ids(&any),
        [2, 1],
        "as initiator and as responder, not the IPv6 look-alike"
    );
    let src = s
        .flows(&FlowQuery {
            src_ip: Some(host),
            ..all()
        })
        .unwrap();
    assert_eq!(ids(&src), [1]);
    let udp = FlowQuery {
        ip: Some(host),
        protocol: Some("udp".into()),
        ..all()
    };
    assert_eq!(ids(&s.flows(&udp).unwrap()), [2]);
    let v6: IpAddr = "2001:db8::2".parse().unwrap();
    assert_eq!(
        ids(&s
            .flows(&FlowQuery {
                ip: Some(v6),
                ..all()
            })
            .unwrap()),
        [5]
    );
    let ranged = FlowQuery {
        ip: Some("10.0.0.3".parse().unwrap()),
        start: Some(12.0),
        limit: 1,
        ..all()
    };
    assert_eq!(ids(&s.flows(&ranged).unwrap()), [3]);
    assert_eq!(s.verify().unwrap(), 4);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn writing_the_same_flow_again_does_not_store_it_twice() {
    let d = dir();
    let mut s = Store::open(&d, &StoreConfig::default()).unwrap();
    let r = flow(1, "10.0.0.1", "10.0.0.2", 6, 10.0);
    s.insert_flows(std::slice::from_ref(&r)).unwrap();
    s.insert_flows(std::slice::from_ref(&r)).unwrap();
    assert_eq!(s.flows(&all()).unwrap().len(), 1);
    assert_eq!(s.stats().flows.records, 1);
    // Within a session too when a write may have failed half-way, and in another session.
    s.flows.suspect_own = true;
    s.insert_flows(&[r.clone(), flow(2, "10.0.0.1", "10.0.0.3", 6, 10.0)])
        .unwrap();
    assert_eq!(s.stats().flows.records, 2);
    drop(s);
    let mut s = Store::open(&d, &StoreConfig::default()).unwrap();
    s.insert_flows(&[r]).unwrap();
    assert_eq!(s.flows(&all()).unwrap().len(), 2);
    assert_eq!(s.stats().flows.records, 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn alerts_query_by_time_and_acknowledgement_persists_across_a_reopen() {
    let d = dir();
    let config = StoreConfig::default();
    {
        let mut s = Store::open(&d, &config).unwrap();
        s.upsert_alerts(&[
            alert(1_000_000, "10.0.0.1"),
            alert(1_001_000, "10.0.0.2"),
            alert(1_002_000, "10.0.0.1"),
        ])
        .unwrap();
        assert_eq!(
            s.acknowledge(1_001_000 * 1024).unwrap().unwrap().source_ip,
            "10.0.0.2"
        );
        assert!(s.acknowledge(5).unwrap().is_none());
        // The published form: first timestamp + source address.
        let acked = s.acknowledge_matching(1002.0, "10.0.0.1").unwrap();
        assert_eq!(acked.len(), 1);
        assert!(
            s.acknowledge_matching(1002.0, "10.0.0.9")
                .unwrap()
                .is_empty()
        );
        // A later update of an acknowledged episode keeps the acknowledgement.
        let mut update = alert(1_001_000, "10.0.0.2");
        update.count = 50;
        s.upsert_alerts(&[update]).unwrap();
        s.flush().unwrap();
    }
    let s = Store::open(&d, &config).unwrap();
    let q = |start, end, unack| AlertQuery {
        limit: 10,
        unacknowledged_only: unack,
        start,
        end,
    };
    let every = s.alerts(&q(None, None, false)).unwrap();
    assert_eq!(
        every.iter().map(|a| a.timestamp).collect::<Vec<_>>(),
        [1002.0, 1001.0, 1000.0],
        "newest first"
    );
    assert_eq!(
        every.iter().map(|a| a.acknowledged).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(every[1].count, 50);
    let open = s.alerts(&q(None, None, true)).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].timestamp, 1000.0);
    let window = s.alerts(&q(Some(1001.0), Some(1001.0), false)).unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].source_ip, "10.0.0.2");
    assert_eq!(
        s.alerts(&AlertQuery {
            limit: 2,
            ..q(None, None, false)
        })
        .unwrap()
        .len(),
        2
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn snapshots_come_back_by_minute_range_oldest_first() {
    let d = dir();
    let mut s = Store::open(&d, &StoreConfig::default()).unwrap();
    let minute = |t: i64| MinuteSnapshot {
        timestamp: t,
        packets: t as u64,
        ..Default::default()
    };
    s.insert_snapshots(&[minute(60), minute(120), minute(180), minute(240)])
        .unwrap();
    let got = s.snapshots(Some(120), Some(180), 10).unwrap();
    assert_eq!(
        got.iter().map(|m| m.timestamp).collect::<Vec<_>>(),
        [120, 180]
    );
    assert_eq!(s.snapshots(None, None, 1).unwrap()[0].timestamp, 60);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn age_retention_drops_flows_older_than_the_window_counted_from_the_newest() {
    let d = dir();
    let config = StoreConfig {
        flows_retention_days: 1,
        ..Default::default()
    };
    let mut s = Store::open(&d, &config).unwrap();
    // Three days of flows, one every two hours (a partition spans at most an hour).
    let records: Vec<_> = (0..36)
        .map(|i| flow(i, "10.0.0.1", "10.0.0.2", 6, 1e6 + i as f64 * 7200.0))
        .collect();
    for r in &records {
        s.insert_flows(std::slice::from_ref(r)).unwrap();
    }
    let report = s.enforce_retention().unwrap();
    let kept = s.flows(&all()).unwrap();
    let newest = 1e6 + 35.0 * 7200.0;
    assert!(
        kept.iter()
            .all(|f| f.last_seen.as_secs_f64() >= newest - 86_400.0)
    );
    // 24 h back from the newest reaches flow 23 (exactly 24 h older): 13 flows remain.
    assert_eq!(kept.len(), 13);
    assert_eq!(report.by_age, 23);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn over_the_size_budget_the_oldest_flows_go_first_and_alerts_stay() {
    let d = dir();
    let config = StoreConfig {
        max_disk_mb: 1,
        ..Default::default()
    };
    let mut s = Store::open(&d, &config).unwrap();
    s.upsert_alerts(&[alert(1_000, "10.0.0.1")]).unwrap();
    // Flows in blocks take a few dozen bytes each: 100,000 of them overflow the budget.
    for batch in 0..100u64 {
        let records: Vec<_> = (0..1000)
            .map(|i| {
                let id = batch * 1000 + i;
                flow(id, "10.0.0.1", "10.0.0.2", 6, 100.0 + id as f64 * 0.01)
            })
            .collect();
        s.insert_flows(&records).unwrap();
        s.enforce_retention().unwrap();
    }
    let stats = s.stats();
    let logical = stats.flows.bytes + stats.flow_index.bytes + stats.alerts.bytes;
    assert!(logical <= stats.logical_budget, "{stats:?}");
    assert!(stats.deleted_for_space > 0);
    let kept = ids(&s.flows(&all()).unwrap());
    // What remains is the newest run of flows, without gaps.
    assert_eq!(kept[0], 99_999);
    assert!(kept.windows(2).all(|w| w[0] == w[1] + 1));
    assert_eq!(
        stats.alerts.records, 1,
        "alerts give way only after flows and snapshots"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_bad_config_is_rejected_with_the_setting_named() {
    let bad = StoreConfig {
        flush_interval_ms: 0,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("flush_interval_ms"));
}

#[test]
fn flows_written_before_blocks_stay_readable_and_age_out_first() {
    let d = dir();
    let config = StoreConfig {
        flows_retention_days: 1,
        ..Default::default()
    };
    let old: Vec<_> = (0..50)
        .map(|i| flow(i, "10.0.0.1", "10.0.0.2", 6, 1e6 + i as f64))
        .collect();
    let new: Vec<_> = (50..80)
        .map(|i| flow(i, "10.0.0.3", "10.0.0.1", 17, 1e6 + i as f64))
        .collect();
    {
        // What a release before blocks wrote: one key per record, with its IP index.
        let mut s = Store::open(&d, &config).unwrap();
        s.legacy.insert(&s.db, &old).unwrap();
        s.flush().unwrap();
    }
    let mut s = Store::open(&d, &config).unwrap();
    assert_eq!(s.stats().flows.records, 50);
    // The same records again (the capture analysed again after the upgrade): kept once.
    s.insert_flows(&old[..10]).unwrap();
    assert_eq!(s.stats().flows.records, 50);
    s.insert_flows(&new).unwrap();
    let all_ids = ids(&s.flows(&all()).unwrap());
    assert_eq!(all_ids, (0..80).rev().collect::<Vec<_>>());
    // By host, across both kinds, newest first.
    let host = s
        .flows(&FlowQuery {
            ip: Some("10.0.0.1".parse().unwrap()),
            limit: 40,
            ..all()
        })
        .unwrap();
    assert_eq!(ids(&host), (40..80).rev().collect::<Vec<_>>());
    assert_eq!(s.stats().flows.records, 80);
    assert_eq!(s.verify().unwrap(), 80);
    let mut out = Vec::new();
    assert_eq!(s.export_flows(&mut out).unwrap(), 80);
    // A day after the newest, both kinds age out.
    s.insert_flows(&[flow(99, "10.0.0.9", "10.0.0.1", 6, 1e6 + 86_400.0 + 100.0)])
        .unwrap();
    s.enforce_retention().unwrap();
    assert_eq!(ids(&s.flows(&all()).unwrap()), [99]);
    assert_eq!(s.stats().flow_partitions, 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn retention_keeps_less_live_data_while_sleds_file_grows_near_the_cap_and_more_once_it_holds() {
    use super::adjust_live_share;
    let cap = 512 * 1024 * 1024;
    let mb = |n: u64| n * 1024 * 1024;
    // Growing well under the cap: all of the usual share.
    assert_eq!(adjust_live_share(1.0, cap, mb(100), mb(300)), 1.0);
    // Growing past three quarters of the cap: less at each run, down to a quarter.
    let mut share = 1.0;
    let mut file = mb(380);
    let mut shares = Vec::new();
    for _ in 0..8 {
        share = adjust_live_share(share, cap, file, file + mb(20));
        file += mb(20);
        shares.push(share);
    }
    assert!(shares.windows(2).all(|w| w[1] <= w[0]), "{shares:?}");
    assert!(shares[0] < 1.0);
    assert_eq!(share, 0.25, "{shares:?}");
    // A file that holds its size (sled reuses the room retention made): the share comes back.
    for _ in 0..8 {
        share = adjust_live_share(share, cap, file, file);
    }
    assert_eq!(share, 1.0);
}
