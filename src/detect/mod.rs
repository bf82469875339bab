//! Detectors: one plain struct per rule, each fed packet batches (and, for brute force, flow
//! records) and emitting `Finding`s; the alerts actor turns findings into alerts. Findings,
//! rules and severities are values of `model::finding`, re-exported here.
//!
//! Every detector keeps its per-source/per-target state in bounded, expiring maps (see
//! `state`), uses packet time only (a monotonic clock that ignores time going backwards), and
//! reports a key at most once per second of packet time so that one attack yields a handful
//! of findings, not one per packet.

pub mod actor;
pub mod brute_force;
pub mod dns_tunnel;
pub mod port_scan;
pub mod state;
pub mod syn_flood;
pub mod traffic_spike;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::flow::{FlowMark, FlowRecord};
use crate::packet::{PacketBatch, Timestamp};

pub use crate::model::finding::{DetectorStats, Finding, Rule, Severity, Target};

pub use brute_force::{BruteForce, BruteForceConfig};
pub use dns_tunnel::{DnsTunnel, DnsTunnelConfig};
pub use port_scan::{PortScan, PortScanConfig};
pub use syn_flood::{SynFlood, SynFloodConfig};
pub use traffic_spike::{TrafficSpike, TrafficSpikeConfig};

/// Networks a rule ignores: traffic from `sources` or to `targets` never counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowList {
    pub sources: Vec<IpNet>,
    pub targets: Vec<IpNet>,
}

impl AllowList {
    /// True when the rule must ignore traffic from `src` to `dst`.
    #[inline]
    pub fn allows(&self, src: IpAddr, dst: IpAddr) -> bool {
        (!self.sources.is_empty() && self.sources.iter().any(|n| n.contains(&src)))
            || (!self.targets.is_empty() && self.targets.iter().any(|n| n.contains(&dst)))
    }
}

/// Detector settings (the `[detectors.*]` sections).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorsConfig {
    pub port_scan: PortScanConfig,
    pub brute_force: BruteForceConfig,
    pub syn_flood: SynFloodConfig,
    pub dns_tunneling: DnsTunnelConfig,
    pub traffic_spike: TrafficSpikeConfig,
}

impl DetectorsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.port_scan;
        positive(
            "detectors.port_scan.ports_threshold",
            p.ports_threshold as u64,
        )?;
        positive(
            "detectors.port_scan.hosts_threshold",
            p.hosts_threshold as u64,
        )?;
        positive("detectors.port_scan.window_secs", p.window_secs)?;
        let b = &self.brute_force;
        positive(
            "detectors.brute_force.rst_threshold",
            b.rst_threshold as u64,
        )?;
        positive("detectors.brute_force.rst_window_secs", b.rst_window_secs)?;
        positive(
            "detectors.brute_force.session_threshold",
            b.session_threshold as u64,
        )?;
        positive(
            "detectors.brute_force.session_window_secs",
            b.session_window_secs,
        )?;
        positive(
            "detectors.brute_force.slow_session_threshold",
            b.slow_session_threshold as u64,
        )?;
        positive(
            "detectors.brute_force.slow_session_window_secs",
            b.slow_session_window_secs,
        )?;
        let s = &self.syn_flood;
        positive("detectors.syn_flood.source_threshold", s.source_threshold)?;
        positive("detectors.syn_flood.target_threshold", s.target_threshold)?;
        positive("detectors.syn_flood.window_secs", s.window_secs)?;
        if !(0.0..=1.0).contains(&s.max_completion_ratio) {
            return Err("detectors.syn_flood.max_completion_ratio must be between 0 and 1".into());
        }
        let d = &self.dns_tunneling;
        positive(
            "detectors.dns_tunneling.rate_per_sec",
            d.rate_per_sec as u64,
        )?;
        positive(
            "detectors.dns_tunneling.distinct_subdomains",
            d.distinct_subdomains as u64,
        )?;
        let t = &self.traffic_spike;
        if t.z_threshold.is_nan() || t.z_threshold <= 0.0 {
            return Err("detectors.traffic_spike.z_threshold must be above 0".into());
        }
        if t.history_secs < 2 || t.learning_secs < 2 || t.learning_secs > t.history_secs {
            return Err("detectors.traffic_spike: need 2 <= learning_secs <= history_secs".into());
        }
        for (name, cap) in [
            ("port_scan", p.max_tracked),
            ("brute_force", b.max_tracked),
            ("syn_flood", s.max_tracked),
            ("dns_tunneling", d.max_tracked),
        ] {
            positive(&format!("detectors.{name}.max_tracked"), cap as u64)?;
        }
        Ok(())
    }
}

fn positive(name: &str, value: u64) -> Result<(), String> {
    if value == 0 {
        Err(format!("{name} must be at least 1"))
    } else {
        Ok(())
    }
}

/// The interface every detector's plain struct implements; the actor is a thin shell.
pub trait Detector: Send + 'static {
    fn rule(&self) -> Rule;
    /// Whether the detector reads packet batches.
    fn wants_packets(&self) -> bool {
        true
    }
    /// A batch with the flow table's mark for each of its packets (`marks[i]` is
    /// `batch.packets[i]`'s).
    fn on_packets(&mut self, batch: &PacketBatch, marks: &[FlowMark], out: &mut Vec<Finding>);
    /// Whether the detector judges whole connections and wants flow records.
    fn wants_flows(&self) -> bool {
        false
    }
    /// Finished flows (only called when `wants_flows`).
    fn on_flows(&mut self, _records: &[FlowRecord], _out: &mut Vec<Finding>) {}
    /// End of input: report what is still pending.
    fn flush(&mut self, out: &mut Vec<Finding>);
    fn stats(&self) -> DetectorStats;
}

/// Builds the enabled detectors.
/// `seed` is the flow table's Community ID seed.
pub fn build(config: &DetectorsConfig, seed: u16) -> Vec<Box<dyn Detector>> {
    let mut all: Vec<Box<dyn Detector>> = Vec::new();
    if config.port_scan.enabled {
        all.push(Box::new(PortScan::new(config.port_scan.clone())));
    }
    if config.brute_force.enabled {
        all.push(Box::new(BruteForce::with_seed(
            config.brute_force.clone(),
            seed,
        )));
    }
    if config.syn_flood.enabled {
        all.push(Box::new(SynFlood::new(config.syn_flood.clone())));
    }
    if config.dns_tunneling.enabled {
        all.push(Box::new(DnsTunnel::with_seed(
            config.dns_tunneling.clone(),
            seed,
        )));
    }
    if config.traffic_spike.enabled {
        all.push(Box::new(TrafficSpike::new(config.traffic_spike.clone())));
    }
    all
}

/// Seconds as nanoseconds of packet time.
#[inline]
pub(crate) fn secs(s: u64) -> i64 {
    (s as i64).saturating_mul(Timestamp::NANOS_PER_SEC)
}

/// Timestamps as published (Unix seconds, fractional).
pub(crate) fn unix(ts: Timestamp) -> f64 {
    ts.as_secs_f64()
}
