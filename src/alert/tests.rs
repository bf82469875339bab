use std::net::IpAddr;

use super::*;
use crate::detect::{Finding, Rule, Severity, Target};
use crate::packet::Timestamp;

fn finding(t: f64, src: &str, target: &str, count: u64) -> Finding {
    let ip: IpAddr = src.parse().unwrap();
    Finding {
        rule: Rule::PortScan,
        severity: Severity::High,
        source: Some(ip),
        target: Target::Host(target.parse().unwrap()),
        ts: Timestamp::from_secs_f64(t),
        description: format!("scan at {t}"),
        evidence: serde_json::json!({ "at": t }),
        count,
        community_id: None,
        observed: None,
    }
}

#[test]
fn findings_within_the_suppression_window_update_one_alert() {
    let mut book = AlertBook::new(AlertsConfig::default());
    assert_eq!(
        book.apply(finding(1000.0, "10.0.0.1", "10.0.0.2", 10)).0,
        Change::Opened
    );
    assert_eq!(
        book.apply(finding(1200.0, "10.0.0.1", "10.0.0.2", 5)).0,
        Change::Updated
    );
    // 300 s after the last evidence is still the same episode; 301 s is a new one.
    assert_eq!(
        book.apply(finding(1500.0, "10.0.0.1", "10.0.0.2", 1)).0,
        Change::Updated
    );
    assert_eq!(
        book.apply(finding(1801.0, "10.0.0.1", "10.0.0.2", 1)).0,
        Change::Opened
    );
    let all = book.all();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].count, 16);
    assert_eq!((all[0].timestamp, all[0].last_seen), (1000.0, 1500.0));
    assert_eq!(all[0].evidence.value()["at"], 1500.0);
    assert_eq!(all[0].description, "scan at 1500");
}

#[test]
fn identity_is_rule_source_and_target() {
    let mut book = AlertBook::new(AlertsConfig::default());
    book.apply(finding(0.0, "10.0.0.1", "10.0.0.2", 1));
    book.apply(finding(0.0, "10.0.0.1", "10.0.0.3", 1));
    book.apply(finding(0.0, "10.0.0.9", "10.0.0.2", 1));
    let mut other_rule = finding(0.0, "10.0.0.1", "10.0.0.2", 1);
    other_rule.rule = Rule::SynFlood;
    book.apply(other_rule);
    assert_eq!(book.len(), 4);
}

#[test]
fn severity_only_rises_and_count_only_findings_keep_evidence() {
    let mut book = AlertBook::new(AlertsConfig::default());
    book.apply(finding(0.0, "10.0.0.1", "10.0.0.2", 1));
    let mut higher = finding(1.0, "10.0.0.1", "10.0.0.2", 1);
    higher.severity = Severity::Critical;
    book.apply(higher);
    let mut lower = finding(2.0, "10.0.0.1", "10.0.0.2", 3).count_only();
    lower.severity = Severity::Low;
    let (_, alert) = book.apply(lower);
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.evidence.value()["at"], 1.0);
    assert_eq!(alert.count, 5);
}

#[test]
fn late_findings_join_their_episode() {
    // A finding for t = 10 s that arrives after others up to t = 900 s (another identity)
    // still belongs to the alert opened at t = 0.
    let mut book = AlertBook::new(AlertsConfig::default());
    book.apply(finding(0.0, "10.0.0.1", "10.0.0.2", 1));
    book.apply(finding(900.0, "10.0.0.7", "10.0.0.8", 1));
    assert_eq!(
        book.apply(finding(10.0, "10.0.0.1", "10.0.0.2", 1)).0,
        Change::Updated
    );
}

#[test]
fn ids_are_unique_and_time_ordered() {
    let mut book = AlertBook::new(AlertsConfig::default());
    for i in 0..5 {
        book.apply(finding(100.0, &format!("10.0.0.{i}"), "10.0.0.99", 1));
    }
    book.apply(finding(101.0, "10.0.0.50", "10.0.0.99", 1));
    let ids: Vec<u64> = book.all().iter().map(|a| a.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids[0], 100_000 * 1024);
    assert_eq!(ids[5], 101_000 * 1024);
}

#[test]
fn acknowledgement_by_id_and_by_timestamp_and_source() {
    let mut book = AlertBook::new(AlertsConfig::default());
    book.apply(finding(10.5, "10.0.0.1", "10.0.0.2", 1));
    book.apply(finding(20.25, "10.0.0.3", "10.0.0.2", 1));
    let first = book.all()[0].id;
    assert!(book.acknowledge(first).unwrap().acknowledged);
    assert!(book.acknowledge(12345).is_none());
    assert_eq!(book.acknowledge_matching(20.25, "10.0.0.3").len(), 1);
    assert!(book.acknowledge_matching(20.25, "10.0.0.4").is_empty());
    let q = AlertQuery {
        limit: 10,
        unacknowledged_only: true,
        ..Default::default()
    };
    assert!(book.query(&q).is_empty());
    // Acknowledged stays acknowledged for the rest of the episode.
    book.apply(finding(30.0, "10.0.0.1", "10.0.0.2", 1));
    assert!(book.all()[0].acknowledged);
}

#[test]
fn queries_filter_by_time_and_limit_newest_first() {
    let mut book = AlertBook::new(AlertsConfig::default());
    for i in 0..10 {
        book.apply(finding(
            f64::from(i) * 1000.0,
            "10.0.0.1",
            &format!("10.0.1.{i}"),
            1,
        ));
    }
    let q = AlertQuery {
        limit: 3,
        start: Some(2000.0),
        end: Some(8000.0),
        ..Default::default()
    };
    let got: Vec<f64> = book.query(&q).iter().map(|a| a.timestamp).collect();
    assert_eq!(got, [8000.0, 7000.0, 6000.0]);
}

#[test]
fn memory_holds_at_most_max_alerts() {
    let mut book = AlertBook::new(AlertsConfig {
        max_alerts: 3,
        ..Default::default()
    });
    for i in 0..10 {
        book.apply(finding(
            f64::from(i),
            &format!("10.0.0.{i}"),
            "10.0.0.99",
            1,
        ));
    }
    let all = book.all();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].source_ip, "10.0.0.7");
}

#[test]
fn acknowledgements_the_store_knows_hold_for_alerts_opened_before_and_after_they_arrive() {
    // After a restart the same capture opens alerts with the same ids (from their times).
    let mut book = AlertBook::new(AlertsConfig::default());
    book.apply(finding(10.0, "10.0.0.1", "10.0.0.2", 1));
    let early = book.all()[0].id;
    let late = 50_000 * 1024;
    let changed = book.remember_acknowledged([early, late, 7]);
    assert_eq!(changed.iter().map(|a| a.id).collect::<Vec<_>>(), [early]);
    assert!(book.all()[0].acknowledged);
    book.apply(finding(50.0, "10.0.0.3", "10.0.0.2", 1));
    let opened = book.all()[1].clone();
    assert_eq!(opened.id, late);
    assert!(
        opened.acknowledged,
        "opened acknowledged, as the store had it"
    );
    // An id the store never acknowledged opens unacknowledged.
    book.apply(finding(60.0, "10.0.0.4", "10.0.0.2", 1));
    assert!(!book.all()[2].acknowledged);
    // Nothing is announced twice.
    assert!(book.remember_acknowledged([early]).is_empty());
}

#[test]
fn an_alerts_evidence_is_held_as_text_and_written_as_the_findings_json() {
    let mut book = AlertBook::new(AlertsConfig::default());
    let mut f = finding(1000.0, "10.0.0.1", "10.0.0.2", 1);
    let evidence = serde_json::json!({
        "kind": "vertical",
        "ports_sample": [22, 80, 443],
        "probe_types": {"syn": 3},
        "note": "a \"quoted\" word"
    });
    f.evidence = evidence.clone();
    let (_, alert) = book.apply(f);
    assert_eq!(alert.evidence.as_json(), evidence.to_string());
    // Serialized (API, store), the alert carries the evidence as JSON, not as a string.
    let json: serde_json::Value = serde_json::to_value(alert).unwrap();
    assert_eq!(json["evidence"], evidence);
    let text = serde_json::to_string(&alert).unwrap();
    assert!(text.contains(&format!("\"evidence\":{evidence}")), "{text}");
    // Read back (the store), it is the same alert.
    let back: Alert = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, alert);
    assert_eq!(back.evidence.value()["probe_types"]["syn"], 3);
}
