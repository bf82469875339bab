//! A synthetic write load for the store (`tapir db bench`): flow records and alerts shaped
//! like a busy network's, written in batches exactly as the store actor writes them (one
//! batch and one sync per interval), with retention run between batches.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use serde::Serialize;

use super::{Store, StoreError};
use crate::flow::community_id::community_id;
use crate::model::alert::Alert;
use crate::model::finding::{Rule, Severity};
use crate::model::flow::{EndReason, FlowRecord, FlowState};
use crate::packet::{TcpFlags, Timestamp, ip_proto};

/// Packet time of the first synthetic flow: 2026-01-01T00:00:00Z.
pub const LOAD_EPOCH_NS: i64 = 1_767_225_600 * 1_000_000_000;

/// The `i`th synthetic flow: a TCP or UDP conversation between one of 65,536 clients and one
/// of 256 servers, one flow ending every millisecond of packet time. Its `id` is `i`.
pub fn synthetic_flow(i: u64) -> FlowRecord {
    synthetic_flow_every(i, 1_000_000)
}

/// Like `synthetic_flow`, one flow ending every `step_ns` of packet time.
pub fn synthetic_flow_every(i: u64, step_ns: i64) -> FlowRecord {
    let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0xffff)));
    let server = IpAddr::V4(Ipv4Addr::from(0xc0a8_0100 | ((i >> 16) as u32 & 0xff)));
    let tcp = !i.is_multiple_of(4);
    let proto = if tcp { ip_proto::TCP } else { ip_proto::UDP };
    let (sport, dport) = (32_768 + (i % 28_000) as u16, if tcp { 443 } else { 53 });
    let last = Timestamp(LOAD_EPOCH_NS + (i as i64).saturating_mul(step_ns));
    FlowRecord {
        id: i,
        src: client,
        dst: server,
        src_port: sport,
        dst_port: dport,
        ip_proto: proto,
        first_seen: Timestamp(last.0 - 2_500_000_000),
        last_seen: last,
        src_packets: 10 + i % 7,
        dst_packets: 12 + i % 5,
        src_bytes: 900 + i % 1500,
        dst_bytes: 15_000 + i % 9000,
        src_flags: TcpFlags(if tcp { 0x1b } else { 0 }),
        dst_flags: TcpFlags(if tcp { 0x1b } else { 0 }),
        state: if tcp {
            FlowState::Closed
        } else {
            FlowState::Active
        },
        refused: false,
        vlan: None,
        community_id: community_id(0, client, server, proto, sport, dport),
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

/// The `i`th synthetic alert, at the time of flow `i * 1000`.
pub fn synthetic_alert(i: u64) -> Alert {
    let ts = (LOAD_EPOCH_NS as f64 / 1e9) + i as f64;
    Alert {
        id: ((ts * 1000.0) as u64) * 1024,
        timestamp: ts,
        last_seen: ts + 30.0,
        alert_type: Rule::PortScan,
        severity: Severity::High,
        source_ip: Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0xffff)).to_string(),
        target: "192.168.1.10".into(),
        description: format!("Port scan: 120 ports probed on 192.168.1.10 (load alert {i})"),
        evidence:
            serde_json::json!({"kind": "vertical", "ports": 120, "sample_ports": [22, 80, 443]})
                .into(),
        count: 120,
        acknowledged: false,
        community_id: None,
    }
}

/// What a load run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    pub flows: u64,
    pub alerts: u64,
    pub batches: u64,
    /// Wall time of the run, and the part of it spent in the store (writing, syncing,
    /// retention) rather than making records.
    pub elapsed_s: f64,
    pub store_s: f64,
    /// Records written per second of store time.
    pub records_per_sec: f64,
    pub size_on_disk: u64,
    /// The largest size on disk seen after any batch.
    pub peak_size_on_disk: u64,
    pub max_disk_bytes: u64,
    /// Stored logical bytes (keys and values) at the end, and disk bytes per logical byte.
    pub logical_bytes: u64,
    pub space_amplification: f64,
    pub flows_stored: u64,
    pub disk_bytes_per_stored_flow: f64,
    pub deleted_for_space: u64,
    /// Flows not written because the disk had less than half of `min_free_mb` free (the
    /// store actor keeps such records in memory and writes them when room returns).
    pub flows_refused_for_space: u64,
    pub peak_rss_bytes: u64,
    /// Packet time the flows covered, in days.
    pub span_days: f64,
    /// Query times on the database the run left.
    pub queries: Option<QueryTimes>,
}

/// How long the dashboard's heaviest reads took on the database the run left, ending at
/// the newest flow.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueryTimes {
    /// The link's flows per step over 30 days (the dashboard's 30-day chart; flows, as the
    /// bench writes no minute snapshots, where the link's bytes come from).
    pub total_history_30d_ms: f64,
    pub total_history_30d_points: usize,
    pub history_step_s: i64,
    /// The hosts with the most flows over 30 days (the top list beside it).
    pub top_hosts_30d_ms: f64,
    /// The busiest of them: its history over 30 days (its host page's chart)…
    pub host: Option<String>,
    pub host_history_30d_ms: f64,
    pub host_history_30d_points: usize,
    /// …and its flows over the last 7 days (`/flows?ip=…`, up to 10,000).
    pub host_flows_7d_ms: f64,
    pub host_flows_7d: usize,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    store: &mut Store,
    first: u64,
    flows: u64,
    batch: u64,
    alert_every: u64,
    rate: Option<f64>,
    span_days: Option<f64>,
    mut flushed: impl FnMut(u64),
) -> Result<LoadReport, StoreError> {
    // Packet time per flow: one a millisecond, or the run spread over `span_days`.
    let step_ns = span_days.map_or(1_000_000, |d| {
        ((d * 86_400e9) / flows.max(1) as f64).max(1.0) as i64
    });
    let started = Instant::now();
    // Time spent in the store, without making the records (the pipeline makes them).
    let mut storing = std::time::Duration::ZERO;
    let mut report = LoadReport::default();
    let (mut next, end) = (first, first.saturating_add(flows));
    let mut records = Vec::with_capacity(batch as usize);
    while next < end {
        let upto = end.min(next + batch.max(1));
        records.clear();
        records.extend((next..upto).map(|i| synthetic_flow_every(i, step_ns)));
        let alerts: Vec<Alert> = (next..upto)
            .filter(|i| alert_every > 0 && i % alert_every == 0)
            .map(|i| synthetic_alert(i / alert_every.max(1)))
            .collect();
        let store_started = Instant::now();
        if let Err(StoreError::DiskFull { .. }) = store.check_headroom() {
            report.flows_refused_for_space += upto - next;
            next = upto;
            store.enforce_retention()?;
            continue;
        }
        store.insert_flows(&records)?;
        store.upsert_alerts(&alerts)?;
        store.flush()?;
        report.flows += upto - next;
        report.alerts += alerts.len() as u64;
        report.batches += 1;
        next = upto;
        flushed(next - first);
        store.enforce_retention()?;
        storing += store_started.elapsed();
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = started + std::time::Duration::from_secs_f64((next - first) as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        report.peak_size_on_disk = report.peak_size_on_disk.max(store.size_on_disk()?);
    }
    store.enforce_retention()?;
    let stats = store.stats();
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.store_s = storing.as_secs_f64();
    report.records_per_sec = (report.flows + report.alerts) as f64 / report.store_s.max(1e-9);
    report.size_on_disk = stats.size_on_disk;
    report.peak_size_on_disk = report.peak_size_on_disk.max(stats.size_on_disk);
    report.max_disk_bytes = stats.max_disk_bytes;
    report.logical_bytes =
        stats.alerts.bytes + stats.flows.bytes + stats.flow_index.bytes + stats.snapshots.bytes;
    report.space_amplification = stats.size_on_disk as f64 / report.logical_bytes.max(1) as f64;
    report.flows_stored = stats.flows.records;
    report.disk_bytes_per_stored_flow =
        stats.size_on_disk as f64 / stats.flows.records.max(1) as f64;
    report.deleted_for_space = stats.deleted_for_space;
    report.peak_rss_bytes = crate::process::peak_rss_bytes();
    report.span_days = (end - first) as f64 * step_ns as f64 / 86_400e9;
    let newest = (LOAD_EPOCH_NS + (end as i64).saturating_mul(step_ns)) / 1_000_000_000;
    report.queries = Some(query_times(store, newest)?);
    Ok(report)
}

/// Times the reads of the 30-day chart and of the busiest host's page, ending at `newest`
/// (Unix s).
fn query_times(store: &Store, newest: i64) -> Result<QueryTimes, StoreError> {
    use super::rollup::{By, HistoryQuery, Metric};
    let month = |metric: Metric, by: By, key: Option<String>| HistoryQuery {
        metric,
        by,
        key,
        from: Some(newest - 30 * 86_400),
        to: Some(newest),
        step: None,
    };
    let timed = |f: &dyn Fn() -> Result<super::rollup::History, StoreError>| {
        let started = Instant::now();
        f().map(|h| (h, started.elapsed().as_secs_f64() * 1e3))
    };
    let mut times = QueryTimes::default();
    let (total, ms) = timed(&|| store.history(&month(Metric::Flows, By::Total, None)))?;
    times.total_history_30d_ms = ms;
    times.total_history_30d_points = total.series.iter().map(|s| s.points.len()).sum();
    times.history_step_s = total.step;
    let (top, ms) = timed(&|| store.history(&month(Metric::Flows, By::Host, None)))?;
    times.top_hosts_30d_ms = ms;
    // The busiest named host ("other" is where the rest are folded).
    let busiest = top
        .series
        .iter()
        .find(|s| s.key.parse::<std::net::IpAddr>().is_ok());
    let Some(host) = busiest.map(|s| s.key.clone()) else {
        return Ok(times);
    };
    let (history, ms) =
        timed(&|| store.history(&month(Metric::Flows, By::Host, Some(host.clone()))))?;
    times.host_history_30d_ms = ms;
    times.host_history_30d_points = history.series.iter().map(|s| s.points.len()).sum();
    let started = Instant::now();
    let flows = store.flows(&crate::model::flow::FlowQuery {
        limit: 10_000,
        ip: host.parse().ok(),
        start: Some((newest - 7 * 86_400) as f64),
        end: Some(newest as f64),
        ..Default::default()
    })?;
    times.host_flows_7d_ms = started.elapsed().as_secs_f64() * 1e3;
    times.host_flows_7d = flows.len();
    times.host = Some(host);
    Ok(times)
}
