//! Alert values: an alert in its published shape, the query that selects alerts, and the
//! alert book's counters.

use serde::{Deserialize, Serialize};

use super::finding::{Rule, Severity};

/// An alert in the published shape, plus identity and episode fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique and time-ordered: milliseconds of the first finding × 1024, then +1.
    pub id: u64,
    /// Unix seconds of the first finding (packet time).
    pub timestamp: f64,
    pub last_seen: f64,
    pub alert_type: Rule,
    pub severity: Severity,
    /// `*` when the traffic came from many (spoofed) sources.
    pub source_ip: String,
    /// `ip`, `ip:port`, `*:port/proto` (a sweep) or `link`.
    pub target: String,
    pub description: String,
    pub evidence: serde_json::Value,
    /// Events gathered: probes, attempts, SYNs, queries or seconds, by rule.
    pub count: u64,
    pub acknowledged: bool,
    pub community_id: Option<String>,
}

/// Which alerts a query wants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertQuery {
    pub limit: usize,
    pub unacknowledged_only: bool,
    /// Unix seconds, inclusive, on the alert's first timestamp.
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// Alert-latency samples: from capture starting the batch that crossed a threshold to the
/// alert being opened.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyStats {
    pub samples: usize,
    pub median_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
}

/// Counters of the alerts actor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlertStats {
    pub alerts: usize,
    pub opened: u64,
    pub updated: u64,
    pub latency: LatencyStats,
}
