//! History rollups: traffic summed per minute, hour and day, for the link as a whole, per
//! host and per protocol, written as minutes close and as flows are stored (never recomputed
//! from flows), each tier with its own retention. Per application and per category, the
//! bytes, packets and flows of the flows that ended in a bucket (a flow's application is
//! known only once it is named, so its traffic is counted where it ends). Per device (MAC),
//! what it sent and received in each minute of packet time, as the device inventory counts
//! it (a batch of frames counts in the minute of its first frame). Per country, with a
//! locator (GeoIP): the traffic of the hosts it places and the flows they took part in.
//!
//! A bucket is one sled value per tier and start time (`rollup.m`, `rollup.h`, `rollup.d`:
//! big-endian start → zstd-compressed JSON). The buckets being filled stay in memory, keyed
//! by value ([`OpenBucket`]), and are written after each batch of input; a flow that ends in a bucket already written and
//! evicted reads it back first. A bucket keeps its busiest hosts (by bytes) and folds the
//! rest into `other`, so that a scan of the whole address space costs a bounded bucket.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::codec::{self, DecodeError, time_from_key, time_key};
use super::open_bucket::{Country, Name, OpenBucket};
use super::places::{Locate, Places};
use crate::model::device::DeviceMinute;
use crate::model::flow::FlowRecord;
use crate::model::traffic::{HostCounters, MinuteSnapshot};

/// What is summed for one key of a bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Both directions.
    pub bytes: u64,
    pub packets: u64,
    /// Flows that ended in the bucket.
    pub flows: u64,
    /// Sent by the host (hosts only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_out: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub packets_out: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Counters {
    pub(super) fn add(&mut self, o: &Counters) {
        self.bytes += o.bytes;
        self.packets += o.packets;
        self.flows += o.flows;
        self.bytes_out += o.bytes_out;
        self.packets_out += o.packets_out;
    }

    pub fn metric(&self, metric: Metric) -> u64 {
        match metric {
            Metric::Bytes => self.bytes,
            Metric::Packets => self.packets,
            Metric::Flows => self.flows,
        }
    }
}

/// One bucket of one tier.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub total: Counters,
    pub hosts: BTreeMap<String, Counters>,
    pub protocols: BTreeMap<String, Counters>,
    /// By application and by category (absent from buckets written before they existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, Counters>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, Counters>,
    /// By device (MAC): what it sent and received, and the flows it opened.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, Counters>,
    /// By country (ISO code) of the hosts GeoIP places: their traffic both ways, what they
    /// sent, and the flows they took part in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub countries: BTreeMap<String, Counters>,
}

/// The key hosts beyond a bucket's cap are folded into.
pub const OTHER: &str = "other";

/// A rollup tier: its bucket length and what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    pub fn step_secs(self) -> i64 {
        match self {
            Tier::Minute => 60,
            Tier::Hour => 3600,
            Tier::Day => 86_400,
        }
    }

    fn tree(self) -> &'static str {
        match self {
            Tier::Minute => "rollup.m",
            Tier::Hour => "rollup.h",
            Tier::Day => "rollup.d",
        }
    }

    /// Hosts a bucket keeps by name.
    fn max_hosts(self) -> usize {
        match self {
            Tier::Minute => 200,
            Tier::Hour => 1000,
            Tier::Day => 2000,
        }
    }

    /// Buckets kept in memory after a write, counted back from the newest.
    fn kept_in_memory(self) -> i64 {
        match self {
            Tier::Minute => 10,
            Tier::Hour => 3,
            Tier::Day => 2,
        }
    }

    /// The tier for a range: minutes up to 6 hours, hours up to 31 days, days beyond.
    pub fn for_span(secs: i64) -> Tier {
        if secs <= 6 * 3600 {
            Tier::Minute
        } else if secs <= 31 * 86_400 {
            Tier::Hour
        } else {
            Tier::Day
        }
    }
}

/// Which number a history series shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Bytes,
    Packets,
    Flows,
}

/// What a series is summed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Total,
    Host,
    Protocol,
    App,
    Category,
    Device,
    Country,
}

/// A history query (`GET /history`).
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryQuery {
    pub metric: Metric,
    pub by: By,
    /// The host or protocol; without one, the busiest keys of the range.
    pub key: Option<String>,
    /// Unix seconds, inclusive. Unset: up to the newest minute stored, and 24 hours back.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Seconds per point: the tier's step or a multiple of it.
    pub step: Option<i64>,
}

/// One series of a history answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    pub key: String,
    /// Sum over the range.
    pub total: u64,
    /// `[start, value]`, one per step with data.
    pub points: Vec<(i64, u64)>,
}

/// A history answer: which tier and step it used, and the series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct History {
    pub tier: Tier,
    pub step: i64,
    pub metric: Metric,
    pub by: By,
    pub from: i64,
    pub to: i64,
    pub series: Vec<Series>,
}

/// Buckets of one tier held in memory at most between writes.
const MAX_OPEN: usize = 256;

/// Keys of the open buckets of all tiers together.
fn open_keys(open: &[BTreeMap<i64, OpenBucket>; 3]) -> usize {
    open.iter()
        .flat_map(|o| o.values())
        .map(OpenBucket::keys)
        .sum()
}

/// Keys of all open buckets together at most between writes (about 5 MB): input spread
/// over many buckets (a capture of many days, a replay loop at full speed) writes early
/// rather than hold them.
const MAX_OPEN_KEYS: usize = 65_536;

/// Series returned when no key is given.
const TOP_KEYS: usize = 10;

/// The rollups of one database.
pub struct Rollups {
    trees: [sled::Tree; 3],
    open: [BTreeMap<i64, OpenBucket>; 3],
    dirty: [std::collections::BTreeSet<i64>; 3],
    /// Buckets and bytes per tier (kept current as buckets are written).
    counts: [(u64, u64); 3],
    /// How far back from its newest bucket each tier keeps buckets (seconds), and the newest
    /// bucket start seen: input older than that is not rolled up at all (retention would
    /// drop it), so that a capture spanning years costs a bounded number of buckets.
    keep_secs: [i64; 3],
    newest: [Option<i64>; 3],
    /// Places addresses for the rollups by country (none without a GeoIP database).
    places: Places,
    /// The most buckets one tier held open at once, and the most keys all tiers held.
    #[cfg(test)]
    most_open: usize,
    #[cfg(test)]
    most_open_keys: usize,
}

fn corrupt(tier: Tier, start: i64, source: DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: format!("{} rollup {start}", tier.tree()),
        source,
    }
}

fn encode(bucket: &OpenBucket) -> Vec<u8> {
    codec::compress(&bucket.to_json())
}

fn decode(v: &[u8]) -> Result<Bucket, DecodeError> {
    let mut json = Vec::new();
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(v)
        .map_err(|_| DecodeError::Field("rollup compression"))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut decoder, 64 * 1024 * 1024),
        &mut json,
    )
    .map_err(|_| DecodeError::Field("rollup compression"))?;
    serde_json::from_slice(&json).map_err(|_| DecodeError::Field("rollup JSON"))
}

impl Rollups {
    pub fn open(db: &sled::Db, keep_secs: [i64; 3]) -> Result<Rollups, StoreError> {
        let trees = [
            db.open_tree(Tier::Minute.tree())?,
            db.open_tree(Tier::Hour.tree())?,
            db.open_tree(Tier::Day.tree())?,
        ];
        let mut counts = [(0, 0); 3];
        let mut newest = [None; 3];
        for (i, t) in trees.iter().enumerate() {
            newest[i] = t.last()?.and_then(|(k, _)| time_from_key(&k));
            for entry in t.iter() {
                let (k, v) = entry?;
                counts[i].0 += 1;
                counts[i].1 += (k.len() + v.len()) as u64;
            }
        }
        Ok(Rollups {
            trees,
            open: Default::default(),
            dirty: Default::default(),
            counts,
            keep_secs,
            newest,
            places: Places::default(),
            #[cfg(test)]
            most_open: 0,
            #[cfg(test)]
            most_open_keys: 0,
        })
    }

    /// Buckets and bytes per tier (minute, hour, day).
    pub fn counts(&self) -> [(u64, u64); 3] {
        self.counts
    }

    pub fn bytes(&self) -> u64 {
        self.counts.iter().map(|c| c.1).sum()
    }

    /// The bucket of `tier` starting at `start`, read back if it was written and evicted;
    /// `None` when it is older than the tier keeps.
    fn bucket(&mut self, tier: Tier, start: i64) -> Result<Option<&mut OpenBucket>, StoreError> {
        let i = tier as usize;
        let newest = self.newest[i].map_or(start, |n| n.max(start));
        self.newest[i] = Some(newest);
        if start < newest.saturating_sub(self.keep_secs[i]) {
            return Ok(None);
        }
        if !self.open[i].contains_key(&start) {
            // Input spread over many buckets (a replay looping through years at full speed,
            // whose devices' minutes of five seconds fall in thousands of buckets per tier)
            // is written as it comes, not held to the end of the call.
            if self.open[i].len() >= MAX_OPEN {
                self.write()?;
                self.open[i].clear();
            }
            let stored = match self.trees[i].get(time_key(start))? {
                Some(v) => {
                    OpenBucket::from_bucket(decode(&v).map_err(|e| corrupt(tier, start, e))?)
                }
                None => OpenBucket::default(),
            };
            self.open[i].insert(start, stored);
            #[cfg(test)]
            {
                self.most_open = self.most_open.max(self.open[i].len());
                self.most_open_keys = self.most_open_keys.max(open_keys(&self.open));
            }
        }
        self.dirty[i].insert(start);
        Ok(Some(self.open[i].get_mut(&start).expect("inserted above")))
    }

    /// Writes early, and lets go, when the open buckets of all tiers hold more than
    /// `MAX_OPEN_KEYS` keys between them (many busy buckets until the next flush).
    fn bound_memory(&mut self) -> Result<(), StoreError> {
        // (Buckets per tier are bounded as they open, in `bucket`.)
        if open_keys(&self.open) > MAX_OPEN_KEYS {
            // Everything open is written, so any of it can go and be read back when needed.
            self.write()?;
            self.open.iter_mut().for_each(BTreeMap::clear);
        }
        Ok(())
    }

    /// Adds a closed minute of traffic to every tier.
    pub fn add_minute(&mut self, m: &MinuteSnapshot) -> Result<(), StoreError> {
        let hosts: Vec<(IpAddr, Counters, Option<Country>)> = m
            .hosts
            .iter()
            .map(|(ip, h)| {
                let c = Counters {
                    bytes: h.bytes(),
                    packets: h.packets(),
                    flows: 0,
                    bytes_out: h.bytes_sent,
                    packets_out: h.packets_sent,
                };
                (*ip, c, self.places.country(*ip))
            })
            .collect();
        for tier in Tier::ALL {
            let start = m.timestamp.div_euclid(tier.step_secs()) * tier.step_secs();
            let Some(b) = self.bucket(tier, start)? else {
                continue;
            };
            b.total.bytes += m.bytes;
            b.total.packets += m.packets;
            for (name, packets) in &m.protocol_counts {
                let c = b.protocols.entry(Name::Owned(name.clone()));
                c.packets += packets;
                c.bytes += m.protocol_bytes.get(name).copied().unwrap_or(0);
            }
            for (ip, c, country) in &hosts {
                b.hosts.entry(*ip).add(c);
                if let Some(country) = country {
                    b.countries.entry(*country).add(c);
                }
                // A minute holds up to `[metrics] max_hosts` (65,536) hosts.
                b.hosts.bound(tier.max_hosts());
            }
            if m.hosts_other != HostCounters::default() {
                let h = &m.hosts_other;
                b.hosts.add_other(&Counters {
                    bytes: h.bytes(),
                    packets: h.packets(),
                    flows: 0,
                    bytes_out: h.bytes_sent,
                    packets_out: h.packets_sent,
                });
            }
            b.bound(tier.max_hosts());
        }
        self.bound_memory()
    }

    /// Adds devices' minutes (sent and received, flows opened) to their buckets.
    pub fn add_device_minutes(&mut self, minutes: &[DeviceMinute]) -> Result<(), StoreError> {
        for m in minutes {
            for tier in Tier::ALL {
                let start = m.start.div_euclid(tier.step_secs()) * tier.step_secs();
                let Some(b) = self.bucket(tier, start)? else {
                    continue;
                };
                b.devices.entry(m.mac).add(&Counters {
                    bytes: m.bytes_sent + m.bytes_received,
                    packets: m.packets_sent + m.packets_received,
                    flows: m.flows,
                    bytes_out: m.bytes_sent,
                    packets_out: m.packets_sent,
                });
                b.bound(tier.max_hosts());
            }
            // Per minute, not per call: the minutes of one call can reopen hundreds of
            // stored buckets, each with up to 2,000 hosts.
            self.bound_memory()?;
        }
        Ok(())
    }

    /// Counts flows in the buckets their end falls in: the link's, each end's and the
    /// protocol's.
    pub fn add_flows<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a FlowRecord>,
    ) -> Result<(), StoreError> {
        // Counted by minute first, then each minute added to its bucket of every tier: a
        // batch's flows end in a few minutes, so the tiers see each key once per minute
        // rather than once per flow.
        let mut minutes: Vec<(i64, OpenBucket)> = Vec::new();
        for r in records {
            let secs = r.last_seen.0.div_euclid(1_000_000_000);
            let start = secs.div_euclid(60) * 60;
            let at = match minutes.iter().rposition(|(s, _)| *s == start) {
                Some(at) => at,
                None => {
                    minutes.push((start, OpenBucket::default()));
                    minutes.len() - 1
                }
            };
            let b = &mut minutes[at].1;
            b.total.flows += 1;
            b.protocols.named(r.protocol_name()).flows += 1;
            if let Some(label) = &r.app {
                let c = Counters {
                    bytes: r.bytes(),
                    packets: r.packets(),
                    flows: 1,
                    bytes_out: 0,
                    packets_out: 0,
                };
                b.apps.named(label.app).add(&c);
                b.categories.named(label.category).add(&c);
            }
            b.hosts.entry(r.src).flows += 1;
            if r.dst != r.src {
                b.hosts.entry(r.dst).flows += 1;
            }
            let src_country = self.places.country(r.src);
            let dst_country = self
                .places
                .country(r.dst)
                .filter(|c| Some(*c) != src_country);
            for country in [src_country, dst_country].into_iter().flatten() {
                b.countries.entry(country).flows += 1;
            }
            // Folded no finer than the tier that keeps the most keys, which it is added to.
            b.bound(Tier::Day.max_hosts());
            if minutes.len() > MAX_OPEN {
                self.add_counted(&mut minutes)?;
            }
        }
        self.add_counted(&mut minutes)
    }

    /// Adds minutes counted apart to their buckets of every tier.
    fn add_counted(&mut self, minutes: &mut Vec<(i64, OpenBucket)>) -> Result<(), StoreError> {
        for (minute, counted) in minutes.drain(..) {
            for tier in Tier::ALL {
                let start = minute.div_euclid(tier.step_secs()) * tier.step_secs();
                if let Some(b) = self.bucket(tier, start)? {
                    b.merge(&counted);
                    b.bound(tier.max_hosts());
                }
            }
            self.bound_memory()?;
        }
        Ok(())
    }

    /// Writes the buckets changed since the last write, then keeps only the newest few of
    /// each tier in memory.
    pub fn write(&mut self) -> Result<(), StoreError> {
        for tier in Tier::ALL {
            let i = tier as usize;
            for start in std::mem::take(&mut self.dirty[i]) {
                let Some(b) = self.open[i].get_mut(&start) else {
                    continue;
                };
                b.fold(tier.max_hosts());
                let value = encode(b);
                let key = time_key(start);
                let old = self.trees[i].insert(key, value.as_slice())?;
                match old {
                    Some(old) => {
                        self.counts[i].1 = self.counts[i].1 - old.len() as u64 + value.len() as u64
                    }
                    None => {
                        self.counts[i].0 += 1;
                        self.counts[i].1 += (key.len() + value.len()) as u64;
                    }
                }
            }
            if let Some(&newest) = self.open[i].keys().next_back() {
                let keep_from = newest - tier.kept_in_memory() * tier.step_secs();
                self.open[i].retain(|&start, _| start > keep_from);
            }
        }
        Ok(())
    }

    /// Deletes buckets older than each tier's retention (seconds), counted back from the
    /// tier's newest bucket; returns how many went.
    pub fn drop_old(&mut self, keep_secs: [i64; 3]) -> Result<u64, StoreError> {
        let mut n = 0;
        for tier in Tier::ALL {
            let i = tier as usize;
            let Some((k, _)) = self.trees[i].last()? else {
                continue;
            };
            let newest = time_from_key(&k).unwrap_or(0);
            let cutoff = time_key(newest.saturating_sub(keep_secs[i]));
            let old: Vec<_> = self.trees[i]
                .range(..cutoff)
                .keys()
                .collect::<Result<_, _>>()?;
            for key in old {
                if let Some(v) = self.trees[i].remove(&key)? {
                    self.counts[i].0 -= 1;
                    self.counts[i].1 -= (key.len() + v.len()) as u64;
                    n += 1;
                }
                if let Some(start) = time_from_key(&key) {
                    self.open[i].remove(&start);
                }
            }
        }
        Ok(n)
    }

    /// Places the hosts of later input by country with `locate` (GeoIP).
    pub fn set_locate(&mut self, locate: Locate) {
        self.places = Places::new(locate);
    }

    /// Answers a history query from the tier the range calls for.
    pub fn history(&self, q: &HistoryQuery) -> Result<History, StoreError> {
        let newest = match self.open[0].keys().next_back() {
            Some(&start) => Some(start),
            None => self.trees[0].last()?.and_then(|(k, _)| time_from_key(&k)),
        };
        let to = q.to.or(newest.map(|s| s + 59)).unwrap_or(0);
        let from = q.from.unwrap_or(to.saturating_sub(86_400));
        let q = &HistoryQuery {
            from: Some(from),
            to: Some(to),
            ..q.clone()
        };
        let tier = Tier::for_span(to.saturating_sub(from));
        let base = tier.step_secs();
        let step = q.step.map(|s| (s.max(base) / base) * base).unwrap_or(base);
        let i = tier as usize;
        let first = from.div_euclid(base) * base;
        // Written buckets, with the ones in memory (newer) over them.
        let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
        for entry in self.trees[i].range(time_key(first)..=time_key(to)) {
            let (k, v) = entry?;
            let start = time_from_key(&k).unwrap_or(0);
            buckets.insert(start, decode(&v).map_err(|e| corrupt(tier, start, e))?);
        }
        for (start, b) in self.open[i].range(first..=to) {
            buckets.insert(*start, b.to_bucket());
        }
        let value_of = |b: &Bucket, key: &str| -> u64 {
            let c = match q.by {
                By::Total => Some(&b.total),
                By::Host => b.hosts.get(key),
                By::Protocol => b.protocols.get(key),
                By::App => b.apps.get(key),
                By::Category => b.categories.get(key),
                By::Device => b.devices.get(key),
                By::Country => b.countries.get(key),
            };
            c.map_or(0, |c| c.metric(q.metric))
        };
        let keys: Vec<String> = match (&q.key, q.by) {
            (_, By::Total) => vec!["total".into()],
            (Some(k), _) => vec![k.clone()],
            (None, by) => {
                let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
                for b in buckets.values() {
                    let map = match by {
                        By::Host => &b.hosts,
                        By::App => &b.apps,
                        By::Category => &b.categories,
                        By::Device => &b.devices,
                        By::Country => &b.countries,
                        _ => &b.protocols,
                    };
                    for (k, c) in map {
                        *sums.entry(k.as_str()).or_default() += c.metric(q.metric);
                    }
                }
                let mut ranked: Vec<(&str, u64)> = sums.into_iter().collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                ranked
                    .into_iter()
                    .take(TOP_KEYS)
                    .map(|(k, _)| k.to_string())
                    .collect()
            }
        };
        let series = keys
            .into_iter()
            .map(|key| {
                let mut points: BTreeMap<i64, u64> = BTreeMap::new();
                for (start, b) in &buckets {
                    let v = value_of(b, &key);
                    if v > 0 {
                        *points.entry(start.div_euclid(step) * step).or_default() += v;
                    }
                }
                Series {
                    total: points.values().sum(),
                    points: points.into_iter().collect(),
                    key,
                }
            })
            .collect();
        Ok(History {
            tier,
            step,
            metric: q.metric,
            by: q.by,
            from,
            to,
            series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::MacAddr;

    fn db() -> (sled::Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "tapir-rollup-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        (sled::open(&dir).unwrap(), dir)
    }

    fn minute(start: i64, bytes: u64, hosts: &[(&str, u64, u64)]) -> MinuteSnapshot {
        MinuteSnapshot {
            timestamp: start,
            packets: bytes / 100,
            bytes,
            protocol_counts: [("TCP".to_string(), bytes / 100)].into(),
            protocol_bytes: [("TCP".to_string(), bytes)].into(),
            hosts: hosts
                .iter()
                .map(|(ip, sent, received)| {
                    (
                        ip.parse().unwrap(),
                        HostCounters {
                            bytes_sent: *sent,
                            bytes_received: *received,
                            packets_sent: sent / 100,
                            packets_received: received / 100,
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    fn query(by: By, key: Option<&str>, from: i64, to: i64) -> HistoryQuery {
        HistoryQuery {
            metric: Metric::Bytes,
            by,
            key: key.map(String::from),
            from: Some(from),
            to: Some(to),
            step: None,
        }
    }

    #[test]
    fn a_flood_of_full_minutes_keeps_the_open_buckets_bounded_and_the_totals_exact() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
        // What a spoofed flood replayed at full speed hands the rollups: minute after
        // minute, each with as many hosts as the metrics keep (65,536), never written in
        // between. Each host sent 10 bytes; one host sent 1 MB every minute.
        let day0 = 86_400 * 19_000;
        let minutes = 20;
        let mut total = 0;
        for m in 0..minutes {
            let mut snapshot = minute(day0 + m * 60, 0, &[("192.0.2.1", 1_000_000, 0)]);
            for i in 0..65_535u32 {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                snapshot.hosts.push((
                    ip,
                    HostCounters {
                        bytes_sent: 10,
                        ..Default::default()
                    },
                ));
            }
            snapshot.bytes = 1_000_000 + 65_535 * 10;
            total += snapshot.bytes;
            r.add_minute(&snapshot).unwrap();
            let open: usize = r
                .open
                .iter()
                .flat_map(|o| o.values())
                .map(|b| b.keys())
                .sum();
            assert!(open <= MAX_OPEN_KEYS, "{open} keys open after minute {m}");
            for b in r.open.iter().flat_map(|o| o.values()) {
                assert!(
                    b.hosts.len() <= 4 * Tier::Day.max_hosts(),
                    "{}",
                    b.hosts.len()
                );
            }
        }
        r.write().unwrap();
        // Nothing was lost to the folding: the link's bytes are every byte counted, and the
        // big sender kept its name in every bucket.
        let day = r
            .history(&query(By::Total, None, day0, day0 + 86_399))
            .unwrap();
        assert_eq!(day.series[0].total, total);
        let hosts = r
            .history(&query(By::Host, Some("192.0.2.1"), day0, day0 + 3 * 3600))
            .unwrap();
        assert_eq!(hosts.series[0].total, minutes as u64 * 1_000_000);
        drop(r);
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn device_minutes_that_reopen_busy_stored_buckets_keep_the_open_keys_bounded() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
        // 150 days, each with one minute of 1,000 hosts, written and let go.
        let day0 = 86_400 * 19_000;
        let days = 150;
        let hosts: Vec<(String, u64, u64)> = (0..1_000u32)
            .map(|i| (std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(), 10, 0))
            .collect();
        let hosts: Vec<(&str, u64, u64)> = hosts
            .iter()
            .map(|(ip, s, r)| (ip.as_str(), *s, *r))
            .collect();
        for k in 0..days {
            r.add_minute(&minute(day0 + k * 86_400, 10_000, &hosts))
                .unwrap();
        }
        r.write().unwrap();
        r.open.iter_mut().for_each(BTreeMap::clear);
        r.most_open_keys = 0;
        // One call of device minutes, one in each of those days: every bucket it touches is
        // read back with its hosts (200 a minute, 1,000 an hour and a day).
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let minutes: Vec<DeviceMinute> = (0..days)
            .map(|k| DeviceMinute {
                mac,
                start: day0 + k * 86_400,
                packets_sent: 1,
                bytes_sent: 7,
                packets_received: 0,
                bytes_received: 0,
                flows: 1,
            })
            .collect();
        r.add_device_minutes(&minutes).unwrap();
        // Within the bound, give or take the three buckets of the minute that crossed it
        // (the old code held all 150 days' buckets open: 330,000 keys).
        let slack = 3 * (Tier::Day.max_hosts() + 10);
        assert!(
            r.most_open_keys <= MAX_OPEN_KEYS + slack,
            "{} keys open at once",
            r.most_open_keys
        );
        r.write().unwrap();
        // Written early, nothing lost: the device's bytes over all the days, and the hosts'.
        let span = (day0, day0 + days * 86_400);
        let device = r
            .history(&query(By::Device, Some(&mac.to_string()), span.0, span.1))
            .unwrap();
        assert_eq!(device.series[0].total, 7 * days as u64);
        let total = r.history(&query(By::Total, None, span.0, span.1)).unwrap();
        assert_eq!(total.series[0].total, 10_000 * days as u64);
        drop(r);
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn device_minutes_spread_over_many_buckets_are_written_as_they_come_and_add_up() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
        // What five seconds of a replay looping at full speed hand the rollups: one call
        // with a minute in each of 3,000 different days (every pass of a capture that spans
        // years is a new minute, hour and day). Device d sent 100 + d bytes in each.
        let day0 = 86_400 * 19_000;
        let mac = |d: u8| MacAddr([2, 0, 0, 0, 0, d]);
        let minutes: Vec<DeviceMinute> = (0..3_000i64)
            .map(|k| {
                let d = (k % 3) as u8;
                DeviceMinute {
                    mac: mac(d),
                    start: day0 + k * 86_400 + 600,
                    packets_sent: 1,
                    bytes_sent: 100 + u64::from(d),
                    packets_received: 0,
                    bytes_received: 0,
                    flows: 1,
                }
            })
            .collect();
        r.add_device_minutes(&minutes).unwrap();
        assert!(
            r.most_open <= MAX_OPEN,
            "{} buckets open at once",
            r.most_open
        );
        r.write().unwrap();
        // Nothing was lost by writing early: each device's days hold its bytes of every
        // minute (1,000 minutes each), read back from the day tier.
        for d in 0..3u8 {
            let h = r
                .history(&query(
                    By::Device,
                    Some(&mac(d).to_string()),
                    day0,
                    day0 + 3_000 * 86_400,
                ))
                .unwrap();
            assert_eq!(h.tier, Tier::Day);
            assert_eq!(
                h.series[0].total,
                1_000 * (100 + u64::from(d)),
                "device {d}"
            );
            assert_eq!(h.series[0].points.len(), 1_000, "device {d}");
        }
        drop(r);
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hours_and_days_are_the_sums_of_their_minutes_in_memory_and_once_written() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
        // Three hours of minutes from 23:00 on day 0, with a host that comes and goes.
        let day0 = 86_400 * 19_000;
        let mut want_hours: BTreeMap<i64, u64> = BTreeMap::new();
        let mut want_host = 0;
        for m in 0..180 {
            let start = day0 + 23 * 3600 + m * 60;
            let bytes = 1000 + m as u64;
            let host_bytes = if m % 3 == 0 { 70 } else { 0 };
            want_host += host_bytes;
            r.add_minute(&minute(start, bytes, &[("10.0.0.1", host_bytes, 5)]))
                .unwrap();
            *want_hours.entry(start / 3600 * 3600).or_default() += bytes;
            if m % 7 == 0 {
                r.write().unwrap();
            }
        }
        for written in [false, true] {
            if written {
                r.write().unwrap();
                r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
            }
            let h = r
                .history(&query(
                    By::Total,
                    None,
                    day0 + 23 * 3600,
                    day0 + 26 * 3600 + 1,
                ))
                .unwrap();
            assert_eq!(h.tier, Tier::Minute);
            assert_eq!(h.series[0].points.len(), 180);
            let hours = r
                .history(&HistoryQuery {
                    step: Some(3600),
                    ..query(By::Total, None, day0 + 23 * 3600, day0 + 26 * 3600)
                })
                .unwrap();
            assert_eq!(hours.step, 3600);
            let got: BTreeMap<i64, u64> = hours.series[0].points.iter().copied().collect();
            assert_eq!(got, want_hours);
            // A week's range reads the hour tier: the same sums.
            let week = r
                .history(&query(By::Total, None, day0, day0 + 7 * 86_400))
                .unwrap();
            assert_eq!(week.tier, Tier::Hour);
            let got: BTreeMap<i64, u64> = week.series[0].points.iter().copied().collect();
            assert_eq!(got, want_hours);
            // A year reads days: day 0 holds 23:00-24:00, day 1 the rest.
            let year = r
                .history(&query(
                    By::Total,
                    None,
                    day0 - 200 * 86_400,
                    day0 + 100 * 86_400,
                ))
                .unwrap();
            assert_eq!(year.tier, Tier::Day);
            assert_eq!(year.series[0].points.len(), 2);
            assert_eq!(year.series[0].total, want_hours.values().sum::<u64>());
            let host = r
                .history(&query(By::Host, Some("10.0.0.1"), day0, day0 + 7 * 86_400))
                .unwrap();
            // Sent and received: 70 + 5 in the minutes it sent, 5 in the others.
            assert_eq!(host.series[0].total, want_host + 5 * 180);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flows_count_in_the_bucket_of_their_end_and_late_ones_reopen_it() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
        let flow = |end_secs: i64, src: &str| FlowRecord {
            id: 1,
            src: src.parse().unwrap(),
            dst: "192.0.2.9".parse().unwrap(),
            src_port: 1,
            dst_port: 53,
            ip_proto: 17,
            first_seen: crate::packet::Timestamp(end_secs * 1_000_000_000),
            last_seen: crate::packet::Timestamp(end_secs * 1_000_000_000),
            src_packets: 1,
            dst_packets: 1,
            src_bytes: 60,
            dst_bytes: 90,
            src_flags: crate::packet::TcpFlags(0),
            dst_flags: crate::packet::TcpFlags(0),
            state: crate::model::flow::FlowState::Active,
            refused: false,
            vlan: None,
            community_id: String::new(),
            end: crate::model::flow::EndReason::IdleTimeout,
            tunnel: None,
            carries: None,
            server_name: None,
            name_source: None,
            http_host: None,
            http_user_agent: None,
            tls: None,
            app: None,
        };
        r.add_flows(&[flow(600, "10.0.0.1"), flow(601, "10.0.0.2")])
            .unwrap();
        r.write().unwrap();
        // Much later minutes push minute 600 out of memory; then a late flow ends in it.
        for m in 0..30 {
            r.add_minute(&minute(7200 + m * 60, 100, &[])).unwrap();
        }
        r.write().unwrap();
        r.add_flows(&[flow(610, "10.0.0.1")]).unwrap();
        r.write().unwrap();
        let q = HistoryQuery {
            metric: Metric::Flows,
            ..query(By::Total, None, 0, 3600)
        };
        assert_eq!(r.history(&q).unwrap().series[0].points, [(600, 3)]);
        let by_host = r
            .history(&HistoryQuery {
                by: By::Host,
                ..q.clone()
            })
            .unwrap();
        let totals: Vec<(&str, u64)> = by_host
            .series
            .iter()
            .map(|s| (s.key.as_str(), s.total))
            .collect();
        assert_eq!(totals, [("192.0.2.9", 3), ("10.0.0.1", 2), ("10.0.0.2", 1)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn input_older_than_a_tier_keeps_is_not_rolled_up() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [2 * 86_400, 90 * 86_400, i64::MAX]).unwrap();
        // A capture spanning ten years, its newest minute first (as a loop's next pass comes
        // after the end of the previous one): minutes and hours only near the newest.
        let end = 9 * 365 * 86_400;
        r.add_minute(&minute(end + 7200, 100, &[])).unwrap();
        for y in 0..10 {
            r.add_minute(&minute(y * 365 * 86_400, 100, &[])).unwrap();
        }
        r.add_minute(&minute(end + 3600, 100, &[])).unwrap();
        r.write().unwrap();
        assert_eq!(r.counts()[0].0, 3);
        assert_eq!(r.counts()[1].0, 3);
        assert_eq!(r.counts()[2].0, 10);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_tier_keeps_its_own_retention() {
        let (db, dir) = db();
        let mut r = Rollups::open(&db, [i64::MAX; 3]).unwrap();
        for d in 0..10 {
            r.add_minute(&minute(d * 86_400, 100, &[])).unwrap();
        }
        r.write().unwrap();
        // Minutes 2 days, hours 5 days, days forever.
        let n = r.drop_old([2 * 86_400, 5 * 86_400, i64::MAX]).unwrap();
        assert_eq!(n, 7 + 4);
        assert_eq!(r.counts()[0].0, 3);
        assert_eq!(r.counts()[1].0, 6);
        assert_eq!(r.counts()[2].0, 10);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
