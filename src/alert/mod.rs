//! Alerts: identity, one alert per episode, suppression and acknowledgement. The alert
//! itself and its query are values of `model::alert`, re-exported here.
//!
//! An alert's identity is (rule, source, target). While an alert with that identity has
//! seen evidence within the suppression window (packet time), new findings update it
//! (count, last_seen, evidence, highest severity) instead of creating another; after a quiet
//! window the episode is over and the next finding opens a new alert. An acknowledged alert
//! stays acknowledged for the rest of its episode.

pub mod actor;

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use crate::detect::{Finding, Rule, Target, secs};

pub use crate::model::alert::{Alert, AlertQuery, AlertStats, Evidence, LatencyStats};

/// Alert settings (the `[alerts]` section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Quiet seconds (packet time) after which an episode is over.
    pub suppression_secs: u64,
    /// Alerts kept in memory; the oldest go first (the store keeps history).
    pub max_alerts: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            suppression_secs: 300,
            max_alerts: 10_000,
        }
    }
}

/// Whether a finding opened an alert or updated one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened,
    Updated,
}

type Identity = (Rule, Option<IpAddr>, Target);

/// The alert book: a plain struct the alerts actor wraps.
pub struct AlertBook {
    config: AlertsConfig,
    /// The latest alert of each identity still in memory. Findings can arrive late (a
    /// detector reports expired state when packets next move its clock), so episodes are
    /// judged on the alert's own `last_seen`, not on a separate expiry.
    latest: HashMap<Identity, u64>,
    alerts: BTreeMap<u64, (Identity, Alert)>,
    last_id: u64,
    /// Ids the store knows as acknowledged (from before a restart): an alert opened again
    /// with one of them (a replay of the same capture) is acknowledged from the start.
    known_acknowledged: HashSet<u64>,
    latencies_us: Vec<u64>,
    pub opened: u64,
    pub updated: u64,
}

/// The most acknowledged ids remembered from the store (the newest).
pub const KNOWN_ACKNOWLEDGED: usize = 10_000;

const MAX_LATENCY_SAMPLES: usize = 100_000;

impl AlertBook {
    pub fn new(config: AlertsConfig) -> Self {
        AlertBook {
            config,
            latest: HashMap::new(),
            alerts: BTreeMap::new(),
            last_id: 0,
            known_acknowledged: HashSet::new(),
            latencies_us: Vec::new(),
            opened: 0,
            updated: 0,
        }
    }

    /// Merges one finding; returns what changed and the alert as it is now.
    pub fn apply(&mut self, f: Finding) -> (Change, &Alert) {
        let identity = (f.rule, f.source, f.target);
        let window = secs(self.config.suppression_secs) as f64 / 1e9;
        let ts = f.ts.as_secs_f64();
        let current = self.latest.get(&identity).copied().filter(|id| {
            self.alerts
                .get(id)
                .is_some_and(|(_, a)| ts - a.last_seen <= window)
        });
        match current {
            Some(id) => {
                let (_, alert) = self.alerts.get_mut(&id).expect("checked above");
                alert.last_seen = alert.last_seen.max(ts);
                alert.count = alert.count.saturating_add(f.count);
                alert.severity = alert.severity.max(f.severity);
                if !f.evidence.is_null() {
                    alert.evidence = Evidence::new(&f.evidence);
                    alert.description = f.description;
                }
                if f.community_id.is_some() {
                    alert.community_id = f.community_id;
                }
                self.updated += 1;
                (Change::Updated, &self.alerts[&id].1)
            }
            None => {
                let id = self
                    .last_id
                    .saturating_add(1)
                    .max((f.ts.millis().max(0) as u64).saturating_mul(1024));
                self.last_id = id;
                let alert = Alert {
                    id,
                    timestamp: ts,
                    last_seen: ts,
                    alert_type: f.rule,
                    severity: f.severity,
                    source_ip: f
                        .source
                        .map_or_else(|| "*".to_string(), |ip| ip.to_string()),
                    target: f.target.to_string(),
                    description: f.description,
                    evidence: Evidence::new(&f.evidence),
                    count: f.count,
                    acknowledged: self.known_acknowledged.contains(&id),
                    community_id: f.community_id,
                };
                self.latest.insert(identity, id);
                self.alerts.insert(id, (identity, alert));
                while self.alerts.len() > self.config.max_alerts.max(1) {
                    if let Some((old, (who, _))) = self.alerts.pop_first()
                        && self.latest.get(&who) == Some(&old)
                    {
                        self.latest.remove(&who);
                    }
                }
                if let Some(started) = f.observed
                    && self.latencies_us.len() < MAX_LATENCY_SAMPLES
                {
                    self.latencies_us.push(started.elapsed().as_micros() as u64);
                }
                self.opened += 1;
                (Change::Opened, &self.alerts[&id].1)
            }
        }
    }

    /// Alerts matching `q`, newest first.
    pub fn query(&self, q: &AlertQuery) -> Vec<Alert> {
        self.alerts
            .values()
            .rev()
            .map(|(_, a)| a)
            .filter(|a| !q.unacknowledged_only || !a.acknowledged)
            .filter(|a| q.start.is_none_or(|s| a.timestamp >= s))
            .filter(|a| q.end.is_none_or(|e| a.timestamp <= e))
            .take(q.limit)
            .cloned()
            .collect()
    }

    /// Every alert, oldest first.
    pub fn all(&self) -> Vec<Alert> {
        self.alerts.values().map(|(_, a)| a.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Takes in what the store knows was acknowledged (at most `KNOWN_ACKNOWLEDGED` ids):
    /// alerts already open with those ids are acknowledged now (and returned), later ones
    /// when they open.
    pub fn remember_acknowledged(&mut self, ids: impl IntoIterator<Item = u64>) -> Vec<Alert> {
        let mut changed = Vec::new();
        for id in ids {
            if self.known_acknowledged.len() >= KNOWN_ACKNOWLEDGED {
                break;
            }
            self.known_acknowledged.insert(id);
            if let Some((_, alert)) = self.alerts.get_mut(&id)
                && !alert.acknowledged
            {
                alert.acknowledged = true;
                changed.push(alert.clone());
            }
        }
        changed
    }

    /// Acknowledges alert `id`; `None` if there is no such alert.
    pub fn acknowledge(&mut self, id: u64) -> Option<Alert> {
        let (_, alert) = self.alerts.get_mut(&id)?;
        alert.acknowledged = true;
        Some(alert.clone())
    }

    /// The published form: acknowledges the alerts of `source_ip` whose timestamp equals
    /// `timestamp` (to the millisecond); returns them.
    pub fn acknowledge_matching(&mut self, timestamp: f64, source_ip: &str) -> Vec<Alert> {
        self.alerts
            .values_mut()
            .map(|(_, a)| a)
            .filter(|a| a.source_ip == source_ip && (a.timestamp - timestamp).abs() < 0.0005)
            .map(|a| {
                a.acknowledged = true;
                a.clone()
            })
            .collect()
    }

    pub fn latency(&self) -> LatencyStats {
        let mut samples = self.latencies_us.clone();
        samples.sort_unstable();
        let pick = |q: f64| {
            (!samples.is_empty())
                .then(|| samples[((samples.len() - 1) as f64 * q).round() as usize])
        };
        LatencyStats {
            samples: samples.len(),
            median_us: pick(0.5),
            p99_us: pick(0.99),
            max_us: samples.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests;
