//! Metrics: protocol counts, a per-second bandwidth series, top talkers, packets/s and a
//! bounded ring of recent packets in the published Packet shape. A minute of traffic and a
//! top talker are values of `model::traffic`, re-exported here.

pub mod actor;
pub mod packets;

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

pub use packets::{PacketRing, PacketView};

pub use crate::model::traffic::{HostCounters, MAX_SNAPSHOT_HOSTS, MinuteSnapshot, TopTalker};

use crate::packet::{PacketBatch, Protocol};

/// Metrics settings (the `[metrics]` section of the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Seconds of 1 s bandwidth buckets kept.
    pub bandwidth_window_secs: usize,
    /// Recent packets kept for `/packets`.
    pub recent_packets: usize,
    /// Hosts tracked for top talkers; past this the smaller half is dropped.
    pub max_hosts: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            bandwidth_window_secs: 300,
            recent_packets: 10_000,
            max_hosts: 65_536,
        }
    }
}

/// A host's counters since start and within the current minute (for the minute snapshot).
#[derive(Clone, Copy, Debug, Default)]
struct HostEntry {
    total: HostCounters,
    minute: HostCounters,
}

/// One second of the bandwidth series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct BandwidthPoint {
    /// Start of the second, Unix seconds.
    pub timestamp: i64,
    pub bytes: u64,
    pub packets: u64,
}

/// The published statistics snapshot (`/stats`, `/ws/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub protocol_counts: BTreeMap<&'static str, u64>,
    pub bandwidth_series: Vec<BandwidthPoint>,
    pub top_talkers: Vec<TopTalker>,
    /// Packets in the last complete second of packet time.
    pub packets_per_sec: f64,
    /// Bytes per second over the same second.
    pub bytes_per_sec: f64,
    pub active_sessions: u64,
    pub total_packets: u64,
    pub total_bytes: u64,
    /// Packet time of the newest packet, Unix seconds.
    pub timestamp: Option<f64>,
    /// Hosts dropped from the talker table to keep it bounded.
    pub hosts_pruned: u64,
}

/// Talkers kept in a minute snapshot.
pub const MINUTE_TOP_TALKERS: usize = 10;

/// The minute being filled.
struct MinuteState {
    start: i64,
    packets: u64,
    bytes: u64,
    protocol_counts: [u64; Protocol::ALL.len()],
    protocol_bytes: [u64; Protocol::ALL.len()],
}

impl MinuteState {
    fn new(start: i64) -> Self {
        MinuteState {
            start,
            packets: 0,
            bytes: 0,
            protocol_counts: [0; Protocol::ALL.len()],
            protocol_bytes: [0; Protocol::ALL.len()],
        }
    }
}

/// Aggregates packet batches into the published metrics.
pub struct MetricsAggregator {
    config: MetricsConfig,
    protocol_counts: [u64; Protocol::ALL.len()],
    total_packets: u64,
    total_bytes: u64,
    /// Ring of 1 s buckets indexed by `second % len`.
    series: Vec<BandwidthPoint>,
    /// Newest second seen (the clock of the series).
    newest_sec: Option<i64>,
    newest_ts: Option<f64>,
    hosts: HashMap<IpAddr, HostEntry>,
    hosts_pruned: u64,
    active_sessions: u64,
    packets: PacketRing,
    minute: Option<MinuteState>,
    /// Minutes that ended and wait to be taken by the store.
    finished_minutes: Vec<MinuteSnapshot>,
}

impl MetricsAggregator {
    pub fn new(config: MetricsConfig) -> Self {
        let window = config.bandwidth_window_secs.max(2);
        MetricsAggregator {
            series: vec![
                BandwidthPoint {
                    timestamp: i64::MIN,
                    ..Default::default()
                };
                window
            ],
            packets: PacketRing::new(config.recent_packets),
            config,
            protocol_counts: [0; Protocol::ALL.len()],
            total_packets: 0,
            total_bytes: 0,
            newest_sec: None,
            newest_ts: None,
            hosts: HashMap::new(),
            hosts_pruned: 0,
            active_sessions: 0,
            minute: None,
            finished_minutes: Vec::new(),
        }
    }

    pub fn ingest(&mut self, batch: &PacketBatch) {
        for p in &batch.packets {
            let bytes = u64::from(p.wire_len);
            self.total_packets += 1;
            self.total_bytes += bytes;
            self.protocol_counts[p.protocol().index()] += 1;

            let sec = p.ts.secs();
            // Late packets of an earlier minute count in the current one.
            if self.minute.as_ref().is_none_or(|m| sec >= m.start + 60) {
                self.start_minute(sec.div_euclid(60) * 60);
            }
            let minute = self.minute.get_or_insert_with(|| MinuteState::new(0));
            minute.packets += 1;
            minute.bytes += bytes;
            minute.protocol_counts[p.protocol().index()] += 1;
            minute.protocol_bytes[p.protocol().index()] += bytes;
            if self.newest_sec.is_none_or(|n| sec > n) {
                self.newest_sec = Some(sec);
                self.newest_ts = Some(p.ts.as_secs_f64());
            }
            let window = self.series.len() as i64;
            if self.newest_sec.is_some_and(|n| sec > n - window) {
                let bucket = &mut self.series[sec.rem_euclid(window) as usize];
                if bucket.timestamp != sec {
                    *bucket = BandwidthPoint {
                        timestamp: sec,
                        bytes: 0,
                        packets: 0,
                    };
                }
                bucket.bytes += bytes;
                bucket.packets += 1;
            }

            if p.is_ip() {
                let src = self.hosts.entry(p.src).or_default();
                for c in [&mut src.total, &mut src.minute] {
                    c.bytes_sent += bytes;
                    c.packets_sent += 1;
                }
                let dst = self.hosts.entry(p.dst).or_default();
                for c in [&mut dst.total, &mut dst.minute] {
                    c.bytes_received += bytes;
                    c.packets_received += 1;
                }
            }
        }
        if self.hosts.len() > self.config.max_hosts {
            self.prune_hosts();
        }
        self.packets.push_batch(batch);
    }

    /// Closes the current minute (if any) and opens the one starting at `start`.
    fn start_minute(&mut self, start: i64) {
        self.finish_minute();
        self.minute = Some(MinuteState::new(start));
    }

    /// Turns the current minute into a snapshot waiting in `take_finished_minutes`.
    pub fn finish_minute(&mut self) {
        let Some(m) = self.minute.take() else {
            return;
        };
        let mut hosts: Vec<(IpAddr, HostCounters)> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.minute.packets() > 0)
            .map(|(ip, h)| (*ip, h.minute))
            .collect();
        let mut hosts_other = HostCounters::default();
        if hosts.len() > MAX_SNAPSHOT_HOSTS {
            hosts.select_nth_unstable_by(MAX_SNAPSHOT_HOSTS, |a, b| {
                (b.1.bytes(), b.1.packets(), a.0).cmp(&(a.1.bytes(), a.1.packets(), b.0))
            });
            for (_, c) in hosts.drain(MAX_SNAPSHOT_HOSTS..) {
                hosts_other.add(&c);
            }
            hosts.shrink_to_fit();
        }
        let top_talkers = top_by_bytes(
            self.hosts
                .iter()
                .filter(|(_, h)| h.minute.packets() > 0)
                .map(|(ip, h)| (*ip, h.minute)),
            MINUTE_TOP_TALKERS,
        );
        for h in self.hosts.values_mut() {
            h.minute = HostCounters::default();
        }
        self.finished_minutes.push(MinuteSnapshot {
            timestamp: m.start,
            packets: m.packets,
            bytes: m.bytes,
            protocol_counts: Protocol::ALL
                .into_iter()
                .filter(|p| m.protocol_counts[p.index()] > 0)
                .map(|p| (p.name().to_string(), m.protocol_counts[p.index()]))
                .collect(),
            top_talkers,
            active_sessions: self.active_sessions,
            hosts,
            hosts_other,
            protocol_bytes: Protocol::ALL
                .into_iter()
                .filter(|p| m.protocol_bytes[p.index()] > 0)
                .map(|p| (p.name().to_string(), m.protocol_bytes[p.index()]))
                .collect(),
        });
    }

    /// Minutes that ended since the last call, oldest first.
    pub fn take_finished_minutes(&mut self) -> Vec<MinuteSnapshot> {
        std::mem::take(&mut self.finished_minutes)
    }

    pub fn set_active_sessions(&mut self, active: u64) {
        self.active_sessions = active;
    }

    pub fn packets(&self) -> &PacketRing {
        &self.packets
    }

    /// Keeps the busier half of the host table (by bytes).
    fn prune_hosts(&mut self) {
        let keep = self.config.max_hosts / 2;
        let mut sizes: Vec<u64> = self.hosts.values().map(|h| h.total.bytes()).collect();
        let cut = sizes.len() - keep.max(1);
        let (_, threshold, _) = sizes.select_nth_unstable(cut);
        let threshold = *threshold;
        let before = self.hosts.len();
        self.hosts.retain(|_, h| h.total.bytes() > threshold);
        // Ties at the threshold may leave too few; that is fine, the table refills.
        self.hosts_pruned += (before - self.hosts.len()) as u64;
    }

    /// The `limit` hosts with the most bytes (ties broken by address, for stable output).
    pub fn top_talkers(&self, limit: usize) -> Vec<TopTalker> {
        top_by_bytes(self.hosts.iter().map(|(ip, h)| (*ip, h.total)), limit)
    }

    /// The series of the last `bandwidth_window_secs` seconds ending at the newest, zero-filled.
    pub fn bandwidth_series(&self) -> Vec<BandwidthPoint> {
        let Some(newest) = self.newest_sec else {
            return Vec::new();
        };
        let window = self.series.len() as i64;
        (newest - window + 1..=newest)
            .map(|sec| {
                let b = self.series[sec.rem_euclid(window) as usize];
                if b.timestamp == sec {
                    b
                } else {
                    BandwidthPoint {
                        timestamp: sec,
                        bytes: 0,
                        packets: 0,
                    }
                }
            })
            .collect()
    }

    fn bucket(&self, sec: i64) -> BandwidthPoint {
        let window = self.series.len() as i64;
        let b = self.series[sec.rem_euclid(window) as usize];
        if b.timestamp == sec {
            b
        } else {
            BandwidthPoint::default()
        }
    }

    pub fn protocol_counts(&self) -> BTreeMap<&'static str, u64> {
        Protocol::ALL
            .into_iter()
            .filter(|p| self.protocol_counts[p.index()] > 0)
            .map(|p| (p.name(), self.protocol_counts[p.index()]))
            .collect()
    }

    pub fn snapshot(&self, top_talkers: usize) -> StatsSnapshot {
        // The newest second is still filling; rates come from the one before it.
        let last_complete = self
            .newest_sec
            .map(|n| self.bucket(n - 1))
            .unwrap_or_default();
        StatsSnapshot {
            protocol_counts: self.protocol_counts(),
            bandwidth_series: self.bandwidth_series(),
            top_talkers: self.top_talkers(top_talkers),
            packets_per_sec: last_complete.packets as f64,
            bytes_per_sec: last_complete.bytes as f64,
            active_sessions: self.active_sessions,
            total_packets: self.total_packets,
            total_bytes: self.total_bytes,
            timestamp: self.newest_ts,
            hosts_pruned: self.hosts_pruned,
        }
    }
}

/// The `limit` hosts with the most bytes, ties broken by address for stable output.
fn top_by_bytes(
    hosts: impl Iterator<Item = (IpAddr, HostCounters)>,
    limit: usize,
) -> Vec<TopTalker> {
    let mut all: Vec<(IpAddr, HostCounters)> = hosts.collect();
    let order = |a: &(IpAddr, HostCounters), b: &(IpAddr, HostCounters)| {
        b.1.bytes().cmp(&a.1.bytes()).then(a.0.cmp(&b.0))
    };
    if all.len() > limit && limit > 0 {
        all.select_nth_unstable_by(limit - 1, order);
        all.truncate(limit);
    }
    all.sort_by(order);
    all.into_iter()
        .take(limit)
        .map(|(ip, h)| TopTalker {
            ip,
            name: None,
            device: None,
            bytes: h.bytes(),
            packets: h.packets(),
            detail: h,
        })
        .collect()
}

#[cfg(test)]
mod tests;
