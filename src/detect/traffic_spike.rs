//! `traffic_spike`: the link's bytes per second far above its recent normal.
//!
//! The statistic: each completed second of packet time is compared with the seconds before
//! it (up to `history_secs`, quiet seconds counted as zero) by its z-score,
//! `(bytes − mean) / σ` with the population standard deviation. A second alerts when
//! `z ≥ z_threshold` and its rate is at least `min_bytes_per_sec` (on a near-silent link σ is
//! tiny and any packet would be "anomalous"). Nothing is judged until `learning_secs` of
//! history exist, so the start of a capture or of the service cannot alert by itself; a
//! capture that is one burst from its first packet has no baseline and stays silent. A jump
//! in packet time longer than the history starts learning afresh.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::{Clock, Reporter};
use super::{AllowList, Detector, DetectorStats, Finding, Rule, Severity, Target};
use crate::flow::FlowMark;
use crate::packet::{PacketBatch, Timestamp};

/// Settings of the `traffic_spike` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficSpikeConfig {
    pub enabled: bool,
    /// Traffic from these sources or to these targets is left out of the link's bytes.
    pub allow: AllowList,
    /// Standard deviations above the mean (published: 3.0).
    pub z_threshold: f64,
    /// Seconds of history the mean and deviation are taken over.
    pub history_secs: u64,
    /// Seconds of history needed before any second is judged.
    pub learning_secs: u64,
    /// Seconds below this rate never alert.
    pub min_bytes_per_sec: u64,
}

impl Default for TrafficSpikeConfig {
    fn default() -> Self {
        TrafficSpikeConfig {
            enabled: true,
            allow: AllowList::default(),
            z_threshold: 3.0,
            history_secs: 300,
            learning_secs: 60,
            min_bytes_per_sec: 100_000,
        }
    }
}

/// One second's traffic.
#[derive(Clone, Copy, Debug, Default)]
struct Second {
    sec: i64,
    bytes: u64,
    packets: u64,
}

/// The verdict on one second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    pub bytes: u64,
    pub mean: f64,
    pub std_dev: f64,
    pub z: f64,
}

/// Detects link-wide traffic spikes.
pub struct TrafficSpike {
    config: TrafficSpikeConfig,
    clock: Clock,
    current: Option<Second>,
    history: VecDeque<u64>,
    sum: u128,
    sum_sq: u128,
    reporter: Reporter,
    peak: Option<(Second, Judgement)>,
    findings: u64,
}

impl TrafficSpike {
    pub fn new(config: TrafficSpikeConfig) -> Self {
        TrafficSpike {
            history: VecDeque::with_capacity(config.history_secs as usize),
            config,
            clock: Clock::default(),
            current: None,
            sum: 0,
            sum_sq: 0,
            reporter: Reporter::default(),
            peak: None,
            findings: 0,
        }
    }

    /// The z-score of `bytes` against the history, once it is long enough.
    pub fn judge(&self, bytes: u64) -> Option<Judgement> {
        let n = self.history.len();
        if (n as u64) < self.config.learning_secs {
            return None;
        }
        let mean = self.sum as f64 / n as f64;
        let var = (self.sum_sq as f64 / n as f64 - mean * mean).max(0.0);
        let std_dev = var.sqrt();
        let z = (bytes as f64 - mean) / std_dev.max(1.0);
        Some(Judgement {
            bytes,
            mean,
            std_dev,
            z,
        })
    }

    fn push_history(&mut self, bytes: u64) {
        if self.history.len() as u64 >= self.config.history_secs
            && let Some(old) = self.history.pop_front()
        {
            self.sum -= u128::from(old);
            self.sum_sq -= u128::from(old) * u128::from(old);
        }
        self.history.push_back(bytes);
        self.sum += u128::from(bytes);
        self.sum_sq += u128::from(bytes) * u128::from(bytes);
    }

    fn reset_history(&mut self) {
        self.history.clear();
        self.sum = 0;
        self.sum_sq = 0;
    }

    /// Judges a finished (or, at the end, the last) second, then adds it to the history.
    fn close(
        &mut self,
        second: Second,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let verdict = self.judge(second.bytes);
        let holds = verdict.is_some_and(|j| {
            j.z >= self.config.z_threshold && second.bytes >= self.config.min_bytes_per_sec
        });
        if let (true, Some(j)) = (holds, verdict) {
            self.reporter.note(1);
            if self.peak.is_none_or(|(_, p)| j.z > p.z) {
                self.peak = Some((second, j));
            }
            if let Some(count) = self
                .reporter
                .due(Timestamp::from_parts(second.sec, 0), true)
            {
                out.push(self.finding(second, j, count, observed));
            }
        } else {
            self.reporter
                .due(Timestamp::from_parts(second.sec, 0), false);
        }
        self.push_history(second.bytes);
    }

    fn finding(
        &self,
        second: Second,
        j: Judgement,
        count: u64,
        observed: Option<std::time::Instant>,
    ) -> Finding {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let peak = self.peak.map(|(s, p)| (s.bytes, round(p.z)));
        Finding {
            rule: Rule::TrafficSpike,
            severity: Severity::Medium,
            source: None,
            target: Target::Link,
            ts: Timestamp::from_parts(second.sec, 0),
            description: format!(
                "Link traffic reached {} bytes/s, {:.1} standard deviations above its mean of {:.0} bytes/s",
                second.bytes, j.z, j.mean
            ),
            evidence: json!({
                "bytes_per_sec": second.bytes,
                "packets_per_sec": second.packets,
                "mean": round(j.mean),
                "std_dev": round(j.std_dev),
                "z_score": round(j.z),
                "threshold": self.config.z_threshold,
                "history_secs": self.history.len(),
                "second": second.sec,
                "peak_bytes_per_sec": peak.map(|p| p.0),
                "peak_z_score": peak.map(|p| p.1),
            }),
            count,
            community_id: None,
            observed,
        }
    }
}

impl Detector for TrafficSpike {
    fn rule(&self) -> Rule {
        Rule::TrafficSpike
    }

    fn on_packets(&mut self, batch: &PacketBatch, _marks: &[FlowMark], out: &mut Vec<Finding>) {
        let before = out.len();
        let filter = !self.config.allow.sources.is_empty() || !self.config.allow.targets.is_empty();
        for p in &batch.packets {
            if filter && p.is_ip() && self.config.allow.allows(p.src, p.dst) {
                continue;
            }
            let sec = self.clock.advance(p.ts).secs();
            match self.current {
                Some(ref mut s) if s.sec == sec => {
                    s.bytes += u64::from(p.wire_len);
                    s.packets += 1;
                    continue;
                }
                Some(done) => {
                    self.close(done, batch.started, out);
                    let gap = (sec - done.sec - 1).max(0) as u64;
                    if gap >= self.config.history_secs {
                        self.reset_history();
                    } else {
                        for _ in 0..gap {
                            self.push_history(0);
                        }
                    }
                }
                None => {}
            }
            self.current = Some(Second {
                sec,
                bytes: u64::from(p.wire_len),
                packets: 1,
            });
        }
        self.findings += (out.len() - before) as u64;
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        if let Some(last) = self.current.take() {
            self.close(last, None, out);
        }
        if let (Some(count), Some((second, j))) = (self.reporter.take_final(), self.peak) {
            out.push(self.finding(second, j, count, None).count_only());
        }
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked: self.history.len(),
            refused: 0,
            findings: self.findings,
        }
    }
}
