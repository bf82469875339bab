//! What one target is sent: a plain struct fed every alert change, on wall-clock time.
//!
//! An alert id not seen before opens an episode; a higher severity than the one last seen
//! raises it; anything else is an update and sends nothing. Only alerts at or above the
//! target's minimum severity and of its rules are sent (an episode that rises past the
//! minimum is sent when it does). At most `rate_per_minute` messages go out in a minute;
//! the rest are held and, when the minute ends (or at `flush`), become one digest.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::NotifyTarget;
use crate::model::alert::Alert;
use crate::model::finding::Severity;

/// Alert ids remembered (the newest); an older one seen again counts as new.
const REMEMBERED: usize = 10_000;
/// Alerts a digest lists by line; the rest are only counted.
pub const DIGEST_LINES: usize = 10;

/// What a target is to be sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// An episode opened, or (`raised`) its severity rose; with the names of its source
    /// and target where the device inventory knows them.
    Alert {
        alert: Alert,
        raised: bool,
        names: Names,
    },
    /// Alerts past the rate in one minute.
    Digest(Digest),
    /// `POST /notify/test`.
    Test,
}

/// What the source and target of an alert are called.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Names {
    pub source: Option<String>,
    pub target: Option<String>,
}

/// Alerts held back by the rate limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Digest {
    pub count: u64,
    /// Count per rule name.
    pub by_rule: BTreeMap<&'static str, u64>,
    pub worst: Option<Severity>,
    /// The first `DIGEST_LINES` of them.
    pub first: Vec<Alert>,
}

/// One target's sending rules and state.
pub struct Policy {
    target: NotifyTarget,
    /// id → severity last seen (sent or not).
    seen: HashMap<u64, Severity>,
    order: VecDeque<u64>,
    window_start: Option<Instant>,
    sent_in_window: u32,
    held: Digest,
}

impl Policy {
    pub fn new(target: NotifyTarget) -> Self {
        Policy {
            target,
            seen: HashMap::new(),
            order: VecDeque::new(),
            window_start: None,
            sent_in_window: 0,
            held: Digest::default(),
        }
    }

    /// What to send for an alert as it is now (or nothing).
    pub fn offer(&mut self, alert: &Alert, now: Instant) -> Option<Outgoing> {
        let previous = self.seen.get(&alert.id).copied();
        if previous.is_none() {
            self.order.push_back(alert.id);
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(
            alert.id,
            previous.map_or(alert.severity, |p| p.max(alert.severity)),
        );
        let wanted = |s: Severity| s >= self.target.min_severity;
        let raised = match previous {
            None => false,
            Some(p) if alert.severity > p => true,
            Some(_) => return None,
        };
        if !wanted(alert.severity) || !self.target.wants_rule(alert.alert_type.name()) {
            return None;
        }
        // Below the minimum before, at or above it now: to this target it opens now.
        let raised = raised && previous.is_some_and(wanted);
        self.roll_window(now);
        if self.sent_in_window < self.target.rate_per_minute {
            self.sent_in_window += 1;
            return Some(Outgoing::Alert {
                alert: alert.clone(),
                raised,
                names: Names::default(),
            });
        }
        let held = &mut self.held;
        held.count += 1;
        *held.by_rule.entry(alert.alert_type.name()).or_default() += 1;
        held.worst = held.worst.max(Some(alert.severity));
        if held.first.len() < DIGEST_LINES {
            held.first.push(alert.clone());
        }
        None
    }

    /// The digest of a minute that has ended, if alerts were held in it.
    pub fn tick(&mut self, now: Instant) -> Option<Outgoing> {
        let ended = self
            .window_start
            .is_some_and(|s| now.duration_since(s) >= Duration::from_secs(60));
        if !ended || self.held.count == 0 {
            return None;
        }
        // The digest is the first message of the next minute.
        self.window_start = Some(now);
        self.sent_in_window = 1;
        Some(Outgoing::Digest(std::mem::take(&mut self.held)))
    }

    /// The digest of whatever is held, now (the end of an input).
    pub fn flush(&mut self) -> Option<Outgoing> {
        (self.held.count > 0).then(|| Outgoing::Digest(std::mem::take(&mut self.held)))
    }

    fn roll_window(&mut self, now: Instant) {
        let expired = self
            .window_start
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(60));
        if expired && self.held.count == 0 {
            self.window_start = Some(now);
            self.sent_in_window = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::finding::Rule;

    fn alert(id: u64, rule: Rule, severity: Severity) -> Alert {
        Alert {
            id,
            timestamp: 1.0,
            last_seen: 1.0,
            alert_type: rule,
            severity,
            source_ip: "10.0.0.1".into(),
            target: "10.0.0.2".into(),
            description: String::new(),
            evidence: Default::default(),
            count: 1,
            acknowledged: false,
            community_id: None,
        }
    }

    fn policy(rate: u32) -> Policy {
        Policy::new(NotifyTarget {
            rate_per_minute: rate,
            min_severity: Severity::Medium,
            ..NotifyTarget::default()
        })
    }

    #[test]
    fn one_message_when_an_episode_opens_and_one_when_it_rises() {
        let mut p = policy(10);
        let now = Instant::now();
        let a = alert(1, Rule::PortScan, Severity::Medium);
        assert!(matches!(
            p.offer(&a, now),
            Some(Outgoing::Alert { raised: false, .. })
        ));
        assert_eq!(p.offer(&a, now), None, "an update sends nothing");
        let high = alert(1, Rule::PortScan, Severity::High);
        assert!(matches!(
            p.offer(&high, now),
            Some(Outgoing::Alert { raised: true, .. })
        ));
        assert_eq!(p.offer(&high, now), None);
    }

    #[test]
    fn below_the_minimum_waits_until_it_rises_past_it() {
        let mut p = policy(10);
        let now = Instant::now();
        assert_eq!(p.offer(&alert(2, Rule::SynFlood, Severity::Low), now), None);
        let sent = p.offer(&alert(2, Rule::SynFlood, Severity::High), now);
        assert!(matches!(sent, Some(Outgoing::Alert { raised: false, .. })));
    }

    #[test]
    fn past_the_rate_one_digest_at_the_end_of_the_minute() {
        let mut p = policy(3);
        let start = Instant::now();
        let mut sent = 0;
        for id in 0..12 {
            let rule = if id % 4 == 0 {
                Rule::NewDevice
            } else {
                Rule::PortScan
            };
            if p.offer(&alert(id, rule, Severity::High), start).is_some() {
                sent += 1;
            }
        }
        assert_eq!(sent, 3);
        assert_eq!(p.tick(start + Duration::from_secs(30)), None);
        let Some(Outgoing::Digest(d)) = p.tick(start + Duration::from_secs(61)) else {
            panic!("no digest");
        };
        assert_eq!(d.count, 9);
        assert_eq!(d.by_rule["port_scan"] + d.by_rule["new_device"], 9);
        assert_eq!(d.by_rule["new_device"], 2, "ids 4 and 8");
        assert_eq!(p.tick(start + Duration::from_secs(200)), None);
        // The next minute has room for two more (the digest was one).
        let later = start + Duration::from_secs(62);
        assert!(
            p.offer(&alert(100, Rule::PortScan, Severity::High), later)
                .is_some()
        );
    }

    #[test]
    fn rules_filter() {
        let mut p = Policy::new(NotifyTarget {
            rules: vec!["!new_device".into()],
            ..NotifyTarget::default()
        });
        let now = Instant::now();
        assert_eq!(
            p.offer(&alert(1, Rule::NewDevice, Severity::High), now),
            None
        );
        assert!(
            p.offer(&alert(2, Rule::PortScan, Severity::High), now)
                .is_some()
        );
    }
}
