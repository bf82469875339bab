//! `threat_intel`: a flow record whose address, server name, HTTP host or JA4 is on a list,
//! or a DNS question for a listed name. Checked once per flow record and once per DNS
//! query, against the snapshot current when the batch arrives.
//!
//! The local host is the alert's source and the list entry its target, so the alerts actor
//! keeps one alert per (entry, local host) episode. Repeats for the same pair within a
//! second of packet time are added to the next finding's count instead of each making one,
//! as the other detectors do.

use std::net::IpAddr;

use hashbrown::HashMap;
use serde_json::json;

use super::{Match, SharedIntel};
use crate::detect::{Detector, DetectorStats, Finding, Rule, Target};
use crate::flow::{FlowMark, FlowRecord};
use crate::packet::{PacketBatch, Timestamp};

/// Pairs remembered for the once-a-second rule; past this the memory is cleared.
const MAX_RECENT: usize = 4096;

/// The detector's plain struct.
pub struct IntelDetector {
    lists: SharedIntel,
    /// (entry, local host) → (last finding, matches since).
    recent: HashMap<(&'static str, IpAddr), (Timestamp, u64)>,
    stats: DetectorStats,
}

/// Which part of the traffic matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Destination,
    Source,
    ServerName,
    HttpHost,
    Ja4,
    DnsQuestion,
    DnsAnswer,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Destination => "dst",
            Side::Source => "src",
            Side::ServerName => "server_name",
            Side::HttpHost => "http_host",
            Side::Ja4 => "ja4",
            Side::DnsQuestion => "dns_question",
            Side::DnsAnswer => "dns_answer",
        }
    }
}

impl IntelDetector {
    pub fn new(lists: SharedIntel) -> Self {
        IntelDetector {
            lists,
            recent: HashMap::new(),
            stats: DetectorStats::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        m: Match,
        side: Side,
        value: &str,
        local: IpAddr,
        remote: Option<IpAddr>,
        ts: Timestamp,
        community_id: Option<&str>,
        out: &mut Vec<Finding>,
    ) {
        let entry = crate::model::flow::intern(&m.entry);
        let key = (entry, local);
        let second = crate::detect::secs(1);
        if let Some((last, pending)) = self.recent.get_mut(&key)
            && ts.0.saturating_sub(last.0) < second
        {
            *pending += 1;
            return;
        }
        if self.recent.len() >= MAX_RECENT {
            self.recent.clear();
        }
        let count = self.recent.insert(key, (ts, 0)).map_or(0, |(_, n)| n) + 1;
        self.stats.findings += 1;
        let what = match remote {
            Some(remote) if side == Side::Source => format!("{remote} ({value}) reached {local}"),
            Some(remote) if side == Side::DnsAnswer => {
                format!("{local} was told by DNS that {value} is at {remote}")
            }
            Some(remote) if value != remote.to_string() => {
                format!("{local} contacted {remote} ({value})")
            }
            Some(remote) => format!("{local} contacted {remote}"),
            None => format!("{local} asked DNS for {value}"),
        };
        out.push(Finding {
            rule: Rule::ThreatIntel,
            severity: m.severity,
            source: Some(local),
            target: Target::Indicator(entry),
            ts,
            description: format!("{what}, listed in {} as {}", m.list, m.entry),
            evidence: json!({
                "list": &*m.list,
                "entry": m.entry,
                "matched": side.name(),
                "value": value,
                "local": local.to_string(),
                "remote": remote.map(|r| r.to_string()),
            }),
            count,
            community_id: community_id.map(str::to_string),
            observed: None,
        });
    }
}

impl Detector for IntelDetector {
    fn rule(&self) -> Rule {
        Rule::ThreatIntel
    }

    fn on_packets(&mut self, batch: &PacketBatch, _marks: &[FlowMark], out: &mut Vec<Finding>) {
        let lists = self.lists.snapshot();
        if lists.lists.is_empty() {
            return;
        }
        for p in &batch.packets {
            let Some(dns) = p.dns else { continue };
            let name = std::str::from_utf8(batch.name(dns.qname)).unwrap_or("");
            // A response: the addresses it gives the client (the question was checked when
            // it was asked).
            if dns.is_response {
                for answer in batch.answers(p) {
                    if let Some(m) = lists.lookup_ip(answer.addr) {
                        let name = name.to_ascii_lowercase();
                        let (local, remote) = (p.dst, Some(answer.addr));
                        self.report(m, Side::DnsAnswer, &name, local, remote, p.ts, None, out);
                    }
                }
                continue;
            }
            if let Some(m) = lists.lookup_name(name) {
                let name = name.to_ascii_lowercase();
                self.report(m, Side::DnsQuestion, &name, p.src, None, p.ts, None, out);
            }
        }
    }

    fn wants_flows(&self) -> bool {
        true
    }

    fn on_flows(&mut self, records: &[FlowRecord], out: &mut Vec<Finding>) {
        let lists = self.lists.snapshot();
        if lists.lists.is_empty() {
            return;
        }
        for r in records {
            let ts = r.first_seen;
            let cid = Some(r.community_id.as_str());
            if let Some(m) = lists.lookup_ip(r.dst) {
                let value = r.dst.to_string();
                self.report(
                    m,
                    Side::Destination,
                    &value,
                    r.src,
                    Some(r.dst),
                    ts,
                    cid,
                    out,
                );
                continue;
            }
            if let Some(m) = lists.lookup_ip(r.src) {
                let value = r.src.to_string();
                self.report(m, Side::Source, &value, r.dst, Some(r.src), ts, cid, out);
                continue;
            }
            let named = [
                (r.server_name.as_deref(), Side::ServerName),
                (r.http_host.as_deref(), Side::HttpHost),
            ];
            let by_name = named.into_iter().find_map(|(name, side)| {
                let name = name?;
                lists.lookup_name(name).map(|m| (m, side, name))
            });
            if let Some((m, side, name)) = by_name {
                let name = name.to_ascii_lowercase();
                self.report(m, side, &name, r.src, Some(r.dst), ts, cid, out);
                continue;
            }
            if let Some(tls) = &r.tls
                && let Some(m) = lists.lookup_ja4(&tls.ja4)
            {
                let ja4 = tls.ja4.to_string();
                self.report(m, Side::Ja4, &ja4, r.src, Some(r.dst), ts, cid, out);
            }
        }
    }

    fn flush(&mut self, _out: &mut Vec<Finding>) {
        self.recent.clear();
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked: self.recent.len(),
            refused: 0,
            findings: self.stats.findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::intel::matcher::IndicatorSetBuilder;
    use crate::intel::{LoadedList, Snapshot};
    use crate::model::finding::Severity;

    fn lists() -> SharedIntel {
        let mut b = IndicatorSetBuilder::default();
        b.add_net("203.0.113.0/24".parse().unwrap(), 0);
        b.add_domain("evil.example", 0);
        let shared = SharedIntel::default();
        shared.publish(
            Snapshot {
                lists: vec![Arc::new(LoadedList {
                    name: "test".into(),
                    severity: Severity::Critical,
                    set: b.build(),
                })],
            },
            Vec::new(),
        );
        shared
    }

    #[test]
    fn a_listed_server_makes_one_finding_a_second_per_local_host() {
        let mut d = IntelDetector::new(lists());
        let mut flows = Vec::new();
        for (i, ms) in [0i64, 200, 400, 1500].into_iter().enumerate() {
            let mut r = FlowRecord::sample("10.0.0.5", "203.0.113.9");
            r.first_seen = Timestamp(1_700_000_000_000_000_000 + ms * 1_000_000);
            r.id = i as u64;
            flows.push(r);
        }
        flows.push(FlowRecord::sample("10.0.0.5", "198.51.100.1"));
        let mut out = Vec::new();
        d.on_flows(&flows, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].source, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(out[0].target.to_string(), "203.0.113.0/24");
        assert_eq!(out[0].severity, Severity::Critical);
        assert_eq!(out[0].evidence["matched"], "dst");
        assert_eq!(out[1].count, 3, "the two folded repeats count in the next");
    }

    #[test]
    fn a_listed_client_reaching_in_is_matched_on_the_source() {
        let mut d = IntelDetector::new(lists());
        let r = FlowRecord::sample("203.0.113.50", "10.0.0.7");
        let mut out = Vec::new();
        d.on_flows(&[r], &mut out);
        assert_eq!(out[0].source, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(out[0].evidence["matched"], "src");
    }

    #[test]
    fn a_dns_answer_with_a_listed_address_names_the_client() {
        use crate::packet::{AnswerRef, DnsAnswer, DnsMeta, NameRef, PacketMeta};
        let mut batch = PacketBatch::default();
        batch.names.extend_from_slice(b"c2.example");
        batch.answers.push(DnsAnswer {
            addr: "203.0.113.66".parse().unwrap(),
            ttl: 60,
        });
        let mut p = PacketMeta::blank(Timestamp(1_700_000_000_000_000_000), 100);
        p.src = "192.0.2.53".parse().unwrap();
        p.dst = "10.0.0.9".parse().unwrap();
        p.dns = Some(DnsMeta {
            id: 1,
            is_response: true,
            qtype: 1,
            rcode: 0,
            answers: 1,
            qname: NameRef { offset: 0, len: 10 },
            addresses: AnswerRef { offset: 0, len: 1 },
        });
        batch.packets.push(p);
        let mut out = Vec::new();
        IntelDetector::new(lists()).on_packets(&batch, &[FlowMark(0)], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(out[0].evidence["matched"], "dns_answer");
        assert_eq!(out[0].evidence["value"], "c2.example");
    }

    #[test]
    fn names_under_a_listed_domain_match() {
        let mut d = IntelDetector::new(lists());
        let mut r = FlowRecord::sample("10.0.0.5", "192.0.2.80");
        r.server_name = Some("cdn.Evil.example".into());
        let mut out = Vec::new();
        d.on_flows(&[r], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].target.to_string(), "evil.example");
        assert_eq!(out[0].evidence["value"], "cdn.evil.example");
    }
}
