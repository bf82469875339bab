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
    pub evidence: Evidence,
    /// Events gathered: probes, attempts, SYNs, queries or seconds, by rule.
    pub count: u64,
    pub acknowledged: bool,
    pub community_id: Option<String>,
}

/// An alert's evidence, kept as its JSON text. Up to `max_alerts` alerts stay in memory,
/// and as a tree of `Value`s a port scan's evidence (a sample of ports, the probe kinds)
/// took about 2 kB against a few hundred bytes of text. Serialized as the JSON it holds.
#[derive(Clone, Debug)]
pub struct Evidence(Box<serde_json::value::RawValue>);

impl Evidence {
    pub fn new(value: &serde_json::Value) -> Self {
        Evidence(
            serde_json::value::RawValue::from_string(value.to_string())
                .expect("a Value's text is JSON"),
        )
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Parsed again, for code that reads fields.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence::new(&serde_json::Value::Null)
    }
}

impl PartialEq for Evidence {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl From<serde_json::Value> for Evidence {
    fn from(value: serde_json::Value) -> Self {
        Evidence::new(&value)
    }
}

impl Serialize for Evidence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(|v| Evidence::new(&v))
    }
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
