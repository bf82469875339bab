//! What the named traffic adds up to: bytes, flows and hosts per application, per category
//! and per server name, and how many flows and bytes each naming source named. Fed with
//! flow records; `Usage` keeps minute buckets for a live window (the server's `/apps`) or
//! one bucket for everything (`tapir analyze`). Also remembers the best name of each server
//! address seen lately, for the views that list addresses.
//!
//! Bounded: at most `MAX_KEYS` names and applications per bucket (the rest add up under
//! `other`), `MAX_HOSTS` distinct hosts counted per entry and `HOSTS_PER_BUCKET` in all per
//! bucket (spoofed clients cannot fill every entry's set: past the budget, host counts are
//! lower bounds), and `MAX_ADDRESSES` addresses remembered by name.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use serde::Serialize;

use crate::model::flow::{AppLabel, EndReason, FlowRecord, NameSource};

/// Names or applications tallied per bucket at most.
const MAX_KEYS: usize = 4096;
/// Distinct hosts counted per entry at most (beyond, the count stays there).
const MAX_HOSTS: usize = 1024;
/// Host entries one bucket holds across all its tallies.
const HOSTS_PER_BUCKET: usize = 65_536;
/// Server addresses remembered with their name at most.
const MAX_ADDRESSES: usize = 16_384;
/// Entries listed per table of a summary.
const LISTED: usize = 50;

/// Bytes, flows and distinct hosts (the flows' initiators).
#[derive(Clone, Debug, Default)]
struct Tally {
    bytes: u64,
    flows: u64,
    hosts: HashSet<IpAddr>,
}

impl Tally {
    /// Counts a flow of `host`; its host is remembered while `budget` (the bucket's) lasts.
    fn add(&mut self, bytes: u64, host: IpAddr, budget: &mut usize) {
        self.bytes += bytes;
        self.flows += 1;
        if self.hosts.len() < MAX_HOSTS && *budget > 0 && self.hosts.insert(host) {
            *budget -= 1;
        }
    }

    fn merge(&mut self, other: &Tally, budget: &mut usize) {
        self.bytes += other.bytes;
        self.flows += other.flows;
        for h in &other.hosts {
            if self.hosts.len() >= MAX_HOSTS || *budget == 0 {
                break;
            }
            if self.hosts.insert(*h) {
                *budget -= 1;
            }
        }
    }
}

/// An application as tallied: name, category, and whether it was guessed from a port.
type AppKey = (&'static str, &'static str, bool);

/// The tallies of one minute (or of everything).
#[derive(Debug)]
struct Bucket {
    minute: i64,
    apps: HashMap<AppKey, Tally>,
    names: HashMap<Arc<str>, Tally>,
    /// Flows and bytes named by each source (`NameSource::ALL` order), then unnamed.
    sources: [(u64, u64); NameSource::ALL.len() + 1],
    other: Tally,
    /// Host entries the bucket may still add.
    host_budget: usize,
}

impl Bucket {
    fn new(minute: i64, host_budget: usize) -> Self {
        Bucket {
            minute,
            apps: HashMap::new(),
            names: HashMap::new(),
            sources: [(0, 0); NameSource::ALL.len() + 1],
            other: Tally::default(),
            host_budget,
        }
    }

    fn add(&mut self, r: &FlowRecord) {
        let bytes = r.bytes();
        let source = r
            .name_source
            .and_then(|s| NameSource::ALL.iter().position(|x| *x == s))
            .unwrap_or(NameSource::ALL.len());
        self.sources[source].0 += 1;
        self.sources[source].1 += bytes;
        if let Some(AppLabel {
            app,
            category,
            by_port,
        }) = &r.app
        {
            let key = (*app, *category, *by_port);
            let tally = tally_in(&mut self.apps, key, &mut self.other);
            tally.add(bytes, r.src, &mut self.host_budget);
        }
        if let Some(name) = &r.server_name {
            let tally = tally_in(&mut self.names, Arc::clone(name), &mut self.other);
            tally.add(bytes, r.src, &mut self.host_budget);
        }
    }
}

/// The tally of `key`, or `other` once the map holds `MAX_KEYS` others.
fn tally_in<'a, K: std::hash::Hash + Eq>(
    map: &'a mut HashMap<K, Tally>,
    key: K,
    other: &'a mut Tally,
) -> &'a mut Tally {
    if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        return other;
    }
    map.entry(key).or_default()
}

/// Application, category and name tallies over a window of packet time.
#[derive(Debug)]
pub struct Usage {
    /// Seconds of finished flows kept; `None` keeps everything in one bucket.
    window_secs: Option<i64>,
    buckets: VecDeque<Bucket>,
    /// The name each server address was last seen with, and when (packet time, seconds).
    names_by_address: HashMap<IpAddr, (Arc<str>, i64)>,
}

/// One row of a summary table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// The application was guessed from a port.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guessed: bool,
    pub bytes: u64,
    pub flows: u64,
    pub hosts: u64,
}

/// Flows and bytes one naming source named.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    pub flows: u64,
    pub bytes: u64,
}

/// What `/apps` and `analyze` report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageSummary {
    /// The window of finished flows (seconds); absent for a whole capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<i64>,
    /// Applications by bytes.
    pub apps: Vec<UsageRow>,
    /// Categories by bytes.
    pub categories: Vec<UsageRow>,
    /// Server names by bytes.
    pub names: Vec<UsageRow>,
    /// Flows and bytes by what named them (`sni`, `quic`, `http`, `dns`,
    /// `dns_other_client`, `unnamed`).
    pub named_by: BTreeMap<&'static str, Share>,
    /// Flows past the per-window limit on distinct names and applications.
    pub other_flows: u64,
}

impl Usage {
    /// Tallies for the last `window_secs` of packet time, or (`None`) for everything.
    pub fn new(window_secs: Option<i64>) -> Self {
        Usage {
            window_secs,
            buckets: VecDeque::new(),
            names_by_address: HashMap::new(),
        }
    }

    /// Takes in emitted records: finished flows are tallied (interim records of flows still
    /// going are not: the live table's flows are added when a summary is asked for).
    pub fn record(&mut self, r: &FlowRecord) {
        self.remember_name(r);
        if matches!(r.end, EndReason::Active | EndReason::ActiveTimeout) {
            return;
        }
        let second = r.last_seen.0.div_euclid(1_000_000_000);
        let minute = match self.window_secs {
            Some(_) => second.div_euclid(60) * 60,
            None => 0,
        };
        if self.buckets.back().is_none_or(|b| b.minute < minute) {
            self.buckets
                .push_back(Bucket::new(minute, HOSTS_PER_BUCKET));
        }
        let bucket = match self.buckets.iter_mut().rev().find(|b| b.minute <= minute) {
            Some(b) => b,
            // Older than every bucket kept: it falls in the oldest.
            None => self.buckets.front_mut().expect("a bucket was pushed"),
        };
        bucket.add(r);
        if let Some(window) = self.window_secs {
            let horizon = minute - window - 60;
            while self.buckets.front().is_some_and(|b| b.minute < horizon) {
                self.buckets.pop_front();
            }
        }
    }

    fn remember_name(&mut self, r: &FlowRecord) {
        let Some(name) = &r.server_name else {
            return;
        };
        let second = r.last_seen.0.div_euclid(1_000_000_000);
        if self.names_by_address.len() >= MAX_ADDRESSES
            && !self.names_by_address.contains_key(&r.dst)
        {
            // Forget the older half.
            let mut ages: Vec<i64> = self.names_by_address.values().map(|v| v.1).collect();
            let mid = ages.len() / 2;
            let (_, cut, _) = ages.select_nth_unstable(mid);
            let cut = *cut;
            self.names_by_address.retain(|_, v| v.1 > cut);
        }
        self.names_by_address
            .insert(r.dst, (Arc::clone(name), second));
    }

    /// The name a server address was last seen with.
    pub fn name_of(&self, addr: IpAddr) -> Option<Arc<str>> {
        self.names_by_address.get(&addr).map(|v| Arc::clone(&v.0))
    }

    /// The tallies of the window ending at `now_secs` (packet time); the flows still in the
    /// table are added to them (`Window::add`) before the summary is drawn.
    pub fn window(&self, now_secs: Option<i64>) -> Window {
        // A window adds up to seven minutes' buckets.
        let mut total = Bucket::new(0, 4 * HOSTS_PER_BUCKET);
        let horizon = match (self.window_secs, now_secs) {
            (Some(w), Some(now)) => now - w,
            _ => i64::MIN,
        };
        for b in self.buckets.iter().filter(|b| b.minute + 60 > horizon) {
            let budget = &mut total.host_budget;
            for (k, t) in &b.apps {
                total.apps.entry(*k).or_default().merge(t, budget);
            }
            for (k, t) in &b.names {
                total
                    .names
                    .entry(Arc::clone(k))
                    .or_default()
                    .merge(t, budget);
            }
            for (sum, part) in total.sources.iter_mut().zip(&b.sources) {
                sum.0 += part.0;
                sum.1 += part.1;
            }
            total.other.merge(&b.other, &mut total.host_budget);
        }
        Window {
            window_secs: self.window_secs,
            total,
        }
    }
}

/// A window's tallies, open for the live flows to be added.
pub struct Window {
    window_secs: Option<i64>,
    total: Bucket,
}

impl Window {
    /// Adds a flow still in the table.
    pub fn add(&mut self, r: &FlowRecord) {
        self.total.add(r);
    }

    /// The tables, by bytes.
    pub fn summary(self) -> UsageSummary {
        let total = self.total;
        let mut categories: HashMap<Arc<str>, Tally> = HashMap::new();
        let mut budget = 4 * HOSTS_PER_BUCKET;
        for ((_, category, _), t) in &total.apps {
            categories
                .entry(Arc::from(*category))
                .or_default()
                .merge(t, &mut budget);
        }
        let row = |t: &Tally| UsageRow {
            app: None,
            category: None,
            name: None,
            guessed: false,
            bytes: t.bytes,
            flows: t.flows,
            hosts: t.hosts.len() as u64,
        };
        let apps = ranked(
            total
                .apps
                .iter()
                .map(|((app, category, guessed), t)| UsageRow {
                    app: Some(Arc::from(*app)),
                    category: Some(Arc::from(*category)),
                    guessed: *guessed,
                    ..row(t)
                }),
        );
        let categories = ranked(categories.iter().map(|(c, t)| UsageRow {
            category: Some(Arc::clone(c)),
            ..row(t)
        }));
        let names = ranked(total.names.iter().map(|(n, t)| UsageRow {
            name: Some(Arc::clone(n)),
            ..row(t)
        }));
        let labels = NameSource::ALL
            .iter()
            .map(|s| source_name(*s))
            .chain(["unnamed"]);
        let named_by = labels
            .zip(total.sources)
            .map(|(label, (flows, bytes))| (label, Share { flows, bytes }))
            .collect();
        UsageSummary {
            window_secs: self.window_secs,
            apps,
            categories,
            names,
            named_by,
            other_flows: total.other.flows,
        }
    }
}

/// The published name of a naming source.
pub fn source_name(source: NameSource) -> &'static str {
    match source {
        NameSource::Sni => "sni",
        NameSource::Quic => "quic",
        NameSource::Http => "http",
        NameSource::Dns => "dns",
        NameSource::DnsOtherClient => "dns_other_client",
    }
}

/// The `LISTED` rows with the most bytes (ties by flows, then by key).
fn ranked(rows: impl Iterator<Item = UsageRow>) -> Vec<UsageRow> {
    let mut rows: Vec<UsageRow> = rows.collect();
    rows.sort_by(|a, b| {
        (b.bytes, b.flows)
            .cmp(&(a.bytes, a.flows))
            .then_with(|| (&a.app, &a.category, &a.name).cmp(&(&b.app, &b.category, &b.name)))
    });
    rows.truncate(LISTED);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Timestamp;

    fn record(src: &str, dst: &str, name: Option<&str>, app: Option<(&str, &str)>) -> FlowRecord {
        let mut r = FlowRecord::sample(src, dst);
        r.server_name = name.map(Arc::from);
        r.name_source = name.map(|_| NameSource::Sni);
        r.app = app.map(|(a, c)| AppLabel {
            app: crate::model::flow::intern(a),
            category: crate::model::flow::intern(c),
            by_port: false,
        });
        r
    }

    #[test]
    fn apps_categories_and_names_add_up_by_bytes_with_distinct_hosts() {
        let mut u = Usage::new(None);
        let yt = Some(("youtube", "streaming"));
        let nf = Some(("netflix", "streaming"));
        for (src, bytes, name, app) in [
            ("10.0.0.1", 1000, "www.youtube.com", yt),
            ("10.0.0.2", 500, "i.ytimg.com", yt),
            ("10.0.0.1", 3000, "www.netflix.com", nf),
        ] {
            let mut r = record(src, "192.0.2.1", Some(name), app);
            r.src_bytes = bytes;
            r.dst_bytes = 0;
            u.record(&r);
        }
        let mut unnamed = record("10.0.0.3", "192.0.2.9", None, None);
        unnamed.src_bytes = 7;
        unnamed.dst_bytes = 0;
        u.record(&unnamed);
        let s = u.window(None).summary();
        let apps: Vec<_> = s
            .apps
            .iter()
            .map(|r| (r.app.as_deref().unwrap(), r.bytes, r.flows, r.hosts))
            .collect();
        assert_eq!(apps, [("netflix", 3000, 1, 1), ("youtube", 1500, 2, 2)]);
        assert_eq!(s.categories.len(), 1);
        assert_eq!(
            (
                s.categories[0].bytes,
                s.categories[0].flows,
                s.categories[0].hosts
            ),
            (4500, 3, 2)
        );
        assert_eq!(s.names[0].name.as_deref(), Some("www.netflix.com"));
        assert_eq!(
            s.named_by["sni"],
            Share {
                flows: 3,
                bytes: 4500
            }
        );
        assert_eq!(s.named_by["unnamed"], Share { flows: 1, bytes: 7 });
        assert_eq!(
            u.name_of("192.0.2.1".parse().unwrap()).as_deref(),
            Some("www.netflix.com")
        );
    }

    #[test]
    fn a_live_window_forgets_old_flows_and_adds_the_active_ones_once() {
        let mut u = Usage::new(Some(300));
        let at = |secs: i64| Timestamp(secs * 1_000_000_000);
        let mut old = record("10.0.0.1", "192.0.2.1", Some("old.example"), None);
        old.last_seen = at(1_000);
        u.record(&old);
        let mut new = record("10.0.0.1", "192.0.2.2", Some("new.example"), None);
        new.last_seen = at(2_000);
        u.record(&new);
        // An interim record of a flow still going is not tallied; the live one is.
        let mut going = record("10.0.0.1", "192.0.2.3", Some("going.example"), None);
        going.last_seen = at(2_010);
        going.end = EndReason::ActiveTimeout;
        u.record(&going);
        going.end = EndReason::Active;
        let mut w = u.window(Some(2_020));
        w.add(&going);
        let s = w.summary();
        let names: Vec<_> = s.names.iter().map(|r| r.name.as_deref().unwrap()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"new.example") && names.contains(&"going.example"));
        assert!(u.buckets.len() <= 7);
    }

    #[test]
    fn the_tallies_stay_bounded() {
        let mut u = Usage::new(None);
        for i in 0..(MAX_KEYS as u32 + 500) {
            let name = format!("host{i}.example");
            let mut r = record("10.0.0.1", "192.0.2.1", Some(&name), None);
            r.src = IpAddr::from(i.to_be_bytes());
            r.dst = IpAddr::from(((i + 1) << 8).to_be_bytes());
            u.record(&r);
        }
        let bucket = &u.buckets[0];
        assert_eq!(bucket.names.len(), MAX_KEYS);
        // Spoofed clients: every name from many hosts; the host sets stay within the budget.
        for i in 0..(2 * HOSTS_PER_BUCKET as u32) {
            let name = format!("host{}.example", i % MAX_KEYS as u32);
            let mut r = record("10.0.0.1", "192.0.2.1", Some(&name), None);
            r.src = IpAddr::from((i | 0x0a00_0000).to_be_bytes());
            u.record(&r);
        }
        let bucket = &u.buckets[0];
        let held: usize = bucket.names.values().map(|t| t.hosts.len()).sum();
        assert!(held <= HOSTS_PER_BUCKET, "{held}");
        assert!(held >= HOSTS_PER_BUCKET - MAX_KEYS, "{held}");
        assert_eq!(bucket.other.flows, 500);
        assert!(bucket.other.hosts.len() <= MAX_HOSTS);
        assert!(u.names_by_address.len() <= MAX_ADDRESSES);
        assert_eq!(u.window(None).summary().names.len(), LISTED);
    }
}
