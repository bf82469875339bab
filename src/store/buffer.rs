//! What the store actor keeps while the disk is slow or away, as plain values it consults:
//! the records waiting to be written ([`Pending`]), when to try a failed database again
//! ([`Retry`]) and when an error may be logged ([`ReportLimit`]). Times are passed in, so
//! every schedule is tested without waiting.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::model::alert::Alert;
use crate::model::flow::FlowRecord;
use crate::model::traffic::MinuteSnapshot;

/// Records waiting to be written, at most `max` of them: past that the oldest flows go
/// first (the most numerous and least valuable), then the oldest snapshots, then the oldest
/// alerts; each one dropped is counted.
pub struct Pending {
    flows: VecDeque<FlowRecord>,
    /// By id: an alert updated many times before a write is written once.
    alerts: BTreeMap<u64, Alert>,
    snapshots: VecDeque<MinuteSnapshot>,
    max: usize,
    dropped: u64,
}

impl Pending {
    pub fn new(max: usize) -> Self {
        Pending {
            flows: VecDeque::new(),
            alerts: BTreeMap::new(),
            snapshots: VecDeque::new(),
            max,
            dropped: 0,
        }
    }

    pub fn push_flows(&mut self, flows: impl IntoIterator<Item = FlowRecord>) {
        self.flows.extend(flows);
        self.bound();
    }

    /// Adds alerts, replacing a waiting one with the same id by its newer state.
    pub fn push_alerts(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for alert in alerts {
            self.alerts.insert(alert.id, alert);
        }
        self.bound();
    }

    pub fn push_snapshots(&mut self, snapshots: impl IntoIterator<Item = MinuteSnapshot>) {
        self.snapshots.extend(snapshots);
        self.bound();
    }

    fn bound(&mut self) {
        while self.len() > self.max {
            if self.flows.pop_front().is_none()
                && self.snapshots.pop_front().is_none()
                && self.alerts.pop_first().is_none()
            {
                break;
            }
            self.dropped += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len() + self.alerts.len() + self.snapshots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records dropped so far to stay within the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The oldest `n` waiting flows (fewer if fewer wait), to write.
    pub fn oldest_flows(&mut self, n: usize) -> &[FlowRecord] {
        let n = n.min(self.flows.len());
        &self.flows.make_contiguous()[..n]
    }

    /// Forgets the oldest `n` flows, written.
    pub fn flows_written(&mut self, n: usize) {
        self.flows.drain(..n.min(self.flows.len()));
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    pub fn has_flows(&self) -> bool {
        !self.flows.is_empty()
    }

    /// The waiting alerts, by id.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.values().cloned().collect()
    }

    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    pub fn alerts_written(&mut self) {
        self.alerts.clear();
    }

    pub fn snapshots(&mut self) -> &[MinuteSnapshot] {
        self.snapshots.make_contiguous()
    }

    /// Hosts the waiting snapshots carry for the rollups (the bulk of a snapshot's memory:
    /// up to `[metrics] max_hosts` each).
    pub fn snapshot_hosts(&self) -> usize {
        self.snapshots.iter().map(|s| s.hosts.len()).sum()
    }

    pub fn snapshots_written(&mut self) {
        self.snapshots.clear();
    }

    /// Forgets the alerts and snapshots, written (the flows go by `flows_written`).
    pub fn rest_written(&mut self) {
        self.alerts.clear();
        self.snapshots.clear();
    }
}

/// When to try a failed database again: at once the first time, then every `every`.
pub struct Retry {
    every: Duration,
    last: Option<Instant>,
}

impl Retry {
    pub fn new(every: Duration) -> Self {
        Retry { every, last: None }
    }

    /// Whether a try is due at `now`; if so, it counts as made.
    pub fn take(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every);
        if due {
            self.last = Some(now);
        }
        due
    }

    /// A failure at `now` (by something other than a scheduled try): wait a full period.
    pub fn failed(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

/// Errors are logged at most once per `every`; the next report says how many were not.
pub struct ReportLimit {
    every: Duration,
    last: Option<Instant>,
    unreported: u64,
}

impl ReportLimit {
    pub fn new(every: Duration) -> Self {
        ReportLimit {
            every,
            last: None,
            unreported: 0,
        }
    }

    /// An error at `now`: `Some(n)` when it is to be logged, `n` being the errors since the
    /// last report that were not; `None` when it is only counted.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            self.unreported += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::load::synthetic_flow;

    fn alert(id: u64) -> Alert {
        let mut a = crate::store::load::synthetic_alert(id);
        a.id = id;
        a
    }

    fn snapshot(minute: i64) -> MinuteSnapshot {
        MinuteSnapshot {
            timestamp: minute * 60,
            ..Default::default()
        }
    }

    #[test]
    fn past_the_bound_flows_go_first_then_snapshots_then_alerts_oldest_first() {
        let mut p = Pending::new(5);
        p.push_alerts([alert(1), alert(2)]);
        p.push_snapshots([snapshot(1), snapshot(2)]);
        p.push_flows((0..3).map(synthetic_flow));
        // 7 records for 5 places: the two oldest flows went.
        assert_eq!((p.len(), p.dropped()), (5, 2));
        assert_eq!(p.oldest_flows(10)[0].id, 2);
        // Three more alerts: the last flow, then both snapshots go.
        p.push_alerts([alert(3), alert(4), alert(5)]);
        assert_eq!((p.len(), p.dropped()), (5, 5));
        assert!(!p.has_flows());
        assert!(p.snapshots().is_empty());
        // Only alerts are left: the oldest of them goes.
        p.push_alerts([alert(6)]);
        let ids: Vec<u64> = p.alerts().iter().map(|a| a.id).collect();
        assert_eq!(ids, [2, 3, 4, 5, 6]);
        assert_eq!(p.dropped(), 6);
    }

    #[test]
    fn an_alert_updated_before_a_write_waits_once_in_its_newest_state() {
        let mut p = Pending::new(100);
        let mut first = alert(7);
        first.count = 1;
        let mut later = alert(7);
        later.count = 9;
        p.push_alerts([first]);
        p.push_alerts([later]);
        assert_eq!(p.alert_count(), 1);
        assert_eq!(p.alerts()[0].count, 9);
    }

    #[test]
    fn flows_are_written_in_slices_oldest_first() {
        let mut p = Pending::new(100);
        p.push_flows((0..5).map(synthetic_flow));
        let ids = |s: &[FlowRecord]| s.iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(ids(p.oldest_flows(2)), [0, 1]);
        p.flows_written(2);
        assert_eq!(ids(p.oldest_flows(10)), [2, 3, 4]);
        p.flows_written(10);
        assert!(!p.has_flows() && p.is_empty());
    }

    #[test]
    fn a_failed_database_is_tried_at_once_then_every_period() {
        let t0 = Instant::now();
        let mut r = Retry::new(Duration::from_secs(5));
        assert!(r.take(t0));
        assert!(!r.take(t0 + Duration::from_secs(4)));
        assert!(r.take(t0 + Duration::from_secs(5)));
        // A write that fails in between pushes the next try a full period away.
        r.failed(t0 + Duration::from_secs(7));
        assert!(!r.take(t0 + Duration::from_secs(11)));
        assert!(r.take(t0 + Duration::from_secs(12)));
    }

    #[test]
    fn errors_are_logged_once_a_period_with_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut l = ReportLimit::new(Duration::from_secs(60));
        assert_eq!(l.note(t0), Some(0));
        assert_eq!(l.note(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.note(t0 + Duration::from_secs(59)), None);
        assert_eq!(l.note(t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(l.note(t0 + Duration::from_secs(200)), Some(0));
    }
}
