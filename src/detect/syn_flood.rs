//! `syn_flood`: connection requests that never complete, from one source (the published
//! rule) or, for spoofed floods that send about one SYN per source, towards one target port.
//! Both count per target port: SYNs spread over many ports or hosts are a scan, which
//! `port_scan` reports, not a flood.
//!
//! A third variant is reflection: SYN-ACKs that answer no SYN seen on the link (they open
//! their flow), from many sources to one host. An attacker spoofing the victim's address
//! sends SYNs to thousands of servers, and each one's SYN-ACK lands on the victim. They are
//! counted per host, as the victim's ports are the attacker's choice; a DoS victim's own
//! backscatter (SYN-ACKs to the many addresses spoofed at it) spreads over its destinations.
//!
//! The first two variants also require a low handshake-completion ratio: completed handshakes (the
//! client's ACK that follows its SYN, as the flow table marks it) over SYNs in the window. A NAT gateway, a load test
//! or Zeek's echo trace (500 connections in 6.5 s) open connections fast but complete them;
//! a flood does not. SYN-ACKs are never counted as SYNs (backscatter and reflection are
//! answers, not requests).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::{Clock, DistinctAddrs, FirstSight, Ip, Reporter, SecondCounts, Tracker};
use super::{AllowList, Detector, DetectorStats, Finding, Rule, Severity, Target, secs};
use crate::flow::FlowMark;
use crate::packet::{PacketBatch, PacketMeta, TcpFlags, Timestamp, ip_proto};

/// Settings of the `syn_flood` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynFloodConfig {
    pub enabled: bool,
    pub allow: AllowList,
    /// SYNs from one source within the window (published: 100 in 10 s).
    pub source_threshold: u64,
    /// SYNs towards one target port within the window, from many sources.
    pub target_threshold: u64,
    /// Distinct sources for the per-target variant (fewer is the per-source rule's case).
    pub min_sources: usize,
    pub window_secs: u64,
    /// Completed handshakes / SYNs at or below which the SYNs count as a flood.
    pub max_completion_ratio: f64,
    /// Cap on tracked sources, targets and half-open connections.
    pub max_tracked: usize,
}

impl Default for SynFloodConfig {
    fn default() -> Self {
        SynFloodConfig {
            enabled: true,
            allow: AllowList::default(),
            source_threshold: 100,
            target_threshold: 500,
            min_sources: 20,
            window_secs: 10,
            max_completion_ratio: 0.3,
            max_tracked: 65_536,
        }
    }
}

/// (source, target, target port).
type SenderKey = (Ip, Ip, u16);
/// (target, target port).
type VictimKey = (Ip, u16);

const SYNS: usize = 0;
const DONE: usize = 1;

struct Sender {
    counts: SecondCounts<2>,
    total: u64,
    reporter: Reporter,
}

impl Sender {
    fn new(window_secs: u64) -> Self {
        Sender {
            counts: SecondCounts::new(window_secs),
            total: 0,
            reporter: Reporter::default(),
        }
    }

    fn syns(&mut self, at: Timestamp, n: u32) {
        self.counts.add(at, SYNS, n);
        self.total += u64::from(n);
        self.reporter.note(u64::from(n));
    }
}

struct Victim {
    counts: SecondCounts<2>,
    sources: DistinctAddrs,
    /// The first sources seen, for evidence.
    sample: Vec<IpAddr>,
    total: u64,
    reporter: Reporter,
}

impl Victim {
    fn new(window_secs: u64) -> Self {
        Victim {
            counts: SecondCounts::new(window_secs),
            sources: DistinctAddrs::new(4096),
            sample: Vec::new(),
            total: 0,
            reporter: Reporter::default(),
        }
    }

    /// Counts `n` SYNs from `source`; `opens` says whether the first of them opened a flow
    /// (a SYN that does not, a retransmission, comes from a source already counted).
    fn syns(&mut self, source: IpAddr, opens: bool, at: Timestamp, n: u32) {
        self.counts.add(at, SYNS, n);
        self.total += u64::from(n);
        if opens && self.sources.insert(source) && self.sample.len() < 10 {
            self.sample.push(source);
        }
        self.reporter.note(u64::from(n));
    }
}

/// Detects SYN floods.
pub struct SynFlood {
    config: SynFloodConfig,
    clock: Clock,
    /// Senders with a single SYN so far (its source port; retransmissions repeat it).
    first_senders: FirstSight<SenderKey, u16>,
    senders: Tracker<SenderKey, Sender>,
    /// Target ports with SYNs from a single source so far, and that source.
    first_victims: FirstSight<VictimKey, IpAddr>,
    victims: Tracker<VictimKey, Victim>,
    /// Hosts receiving unsolicited SYN-ACKs, from the second source on.
    first_reflected: FirstSight<Ip, IpAddr>,
    reflected: Tracker<Ip, Victim>,
    findings: u64,
}

impl SynFlood {
    pub fn new(config: SynFloodConfig) -> Self {
        let window = secs(config.window_secs);
        SynFlood {
            first_senders: FirstSight::new(config.max_tracked / 32),
            first_victims: FirstSight::new(config.max_tracked / 32),
            senders: Tracker::new(config.max_tracked, window),
            victims: Tracker::new(config.max_tracked, window),
            first_reflected: FirstSight::new(config.max_tracked / 32),
            reflected: Tracker::new(config.max_tracked / 4, window),
            clock: Clock::default(),
            config,
            findings: 0,
        }
    }

    fn packet(
        &mut self,
        p: &PacketMeta,
        mark: FlowMark,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let now = self.clock.advance(p.ts);
        let f = p.tcp_flags;
        if f.has(TcpFlags::SYN) && !f.has(TcpFlags::ACK) && !f.has(TcpFlags::RST) {
            if self.config.allow.allows(p.src, p.dst) {
                return;
            }
            self.syn(p, mark, now, observed, out);
        } else if f.has(TcpFlags::SYN)
            && f.has(TcpFlags::ACK)
            && !f.has(TcpFlags::RST)
            && mark.has(FlowMark::OPENS)
        {
            if !self.config.allow.allows(p.src, p.dst) {
                self.reflected_syn_ack(p, now, observed, out);
            }
        } else if mark.has(FlowMark::COMPLETES_HANDSHAKE) {
            if let Some(s) = self.senders.peek_mut(&(Ip(p.src), Ip(p.dst), p.dst_port)) {
                s.counts.add(now, DONE, 1);
            }
            if let Some(v) = self.victims.peek_mut(&(Ip(p.dst), p.dst_port)) {
                v.counts.add(now, DONE, 1);
            }
        }
    }

    fn syn(
        &mut self,
        p: &PacketMeta,
        mark: FlowMark,
        now: Timestamp,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let cfg = &self.config;
        let window = cfg.window_secs;
        let key = (Ip(p.src), Ip(p.dst), p.dst_port);
        if let Some(s) = self.senders.second_sight(
            &mut self.first_senders,
            key,
            p.src_port,
            now,
            secs(window),
            |port, earlier| port == earlier,
            || Sender::new(window),
            |s, first| s.syns(first.at, first.times),
        ) {
            s.syns(now, 1);
            let [syns, done] = s.counts.totals(now);
            let holds = syns >= cfg.source_threshold && rarely_completed(cfg, done, syns);
            if let Some(count) = s.reporter.due(now, holds) {
                out.push(sender_finding(cfg, key, s, now, count, observed));
            }
        }
        let target = (Ip(p.dst), p.dst_port);
        if let Some(v) = self.victims.second_sight(
            &mut self.first_victims,
            target,
            p.src,
            now,
            secs(window),
            |source, earlier| source == earlier,
            || Victim::new(window),
            |v, first| v.syns(first.item, true, first.at, first.times),
        ) {
            let opens = mark.has(FlowMark::OPENS) || mark.has(FlowMark::UNTRACKED);
            v.syns(p.src, opens, now, 1);
            let [syns, done] = v.counts.totals(now);
            let holds = syns >= cfg.target_threshold
                && v.sources.len() >= cfg.min_sources
                && rarely_completed(cfg, done, syns);
            if holds {
                // Under attack: count the sources exactly for the evidence.
                v.sources.raise_cap(1 << 20);
            }
            if let Some(count) = v.reporter.due(now, holds) {
                out.push(victim_finding(cfg, target, v, now, count, observed));
            }
        }
    }
}

impl SynFlood {
    /// A SYN-ACK to `p.dst` whose SYN was never seen.
    fn reflected_syn_ack(
        &mut self,
        p: &PacketMeta,
        now: Timestamp,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let cfg = &self.config;
        let window = cfg.window_secs;
        let key = Ip(p.dst);
        if let Some(v) = self.reflected.second_sight(
            &mut self.first_reflected,
            key,
            p.src,
            now,
            secs(window),
            |source, earlier| source == earlier,
            || Victim::new(window),
            |v, first| v.syns(first.item, true, first.at, first.times),
        ) {
            v.syns(p.src, true, now, 1);
            let [syn_acks, _] = v.counts.totals(now);
            let holds = syn_acks >= cfg.target_threshold && v.sources.len() >= cfg.min_sources;
            if holds {
                v.sources.raise_cap(1 << 20);
            }
            if let Some(count) = v.reporter.due(now, holds) {
                out.push(reflection_finding(cfg, key, v, now, count, observed));
            }
        }
    }
}

/// Whether the completion ratio is at or below the threshold (without a division per SYN).
#[inline]
fn rarely_completed(cfg: &SynFloodConfig, done: u64, syns: u64) -> bool {
    done as f64 <= cfg.max_completion_ratio * syns as f64
}

fn ratio(done: u64, syns: u64) -> f64 {
    if syns == 0 {
        1.0
    } else {
        done as f64 / syns as f64
    }
}

fn sender_finding(
    cfg: &SynFloodConfig,
    (Ip(src), Ip(ip), port): SenderKey,
    s: &Sender,
    now: Timestamp,
    count: u64,
    observed: Option<std::time::Instant>,
) -> Finding {
    let [syns, done] = s.counts.totals(now);
    let target = Target::Service(ip, port);
    Finding {
        rule: Rule::SynFlood,
        severity: Severity::Critical,
        source: Some(src),
        target,
        ts: now,
        description: format!(
            "{src} sent {syns} SYNs to {target} in {} s, {done} completed",
            cfg.window_secs
        ),
        evidence: json!({
            "variant": "single_source",
            "syn_count": syns,
            "completed_handshakes": done,
            "completion_ratio": ratio(done, syns),
            "syn_rate_per_sec": syns as f64 / cfg.window_secs as f64,
            "window_secs": cfg.window_secs,
            "threshold": cfg.source_threshold,
            "total_syns": s.total,
        }),
        count,
        community_id: None,
        observed,
    }
}

fn victim_finding(
    cfg: &SynFloodConfig,
    (Ip(ip), port): VictimKey,
    v: &Victim,
    now: Timestamp,
    count: u64,
    observed: Option<std::time::Instant>,
) -> Finding {
    let [syns, done] = v.counts.totals(now);
    let target = Target::Service(ip, port);
    let sample: Vec<String> = v.sample.iter().map(ToString::to_string).collect();
    let sources = v.sources.len();
    Finding {
        rule: Rule::SynFlood,
        severity: Severity::Critical,
        source: None,
        target,
        ts: now,
        description: format!(
            "{target} received {syns} SYNs in {} s from {sources}{} sources, {done} completed",
            cfg.window_secs,
            if v.sources.saturated() { "+" } else { "" }
        ),
        evidence: json!({
            "variant": "distributed",
            "syn_count": syns,
            "syn_rate_per_sec": syns as f64 / cfg.window_secs as f64,
            "distinct_sources": sources,
            "sources_sample": sample,
            "completed_handshakes": done,
            "completion_ratio": ratio(done, syns),
            "window_secs": cfg.window_secs,
            "threshold": cfg.target_threshold,
            "total_syns": v.total,
        }),
        count,
        community_id: None,
        observed,
    }
}

fn reflection_finding(
    cfg: &SynFloodConfig,
    Ip(ip): Ip,
    v: &Victim,
    now: Timestamp,
    count: u64,
    observed: Option<std::time::Instant>,
) -> Finding {
    let [syn_acks, _] = v.counts.totals(now);
    let sample: Vec<String> = v.sample.iter().map(ToString::to_string).collect();
    let sources = v.sources.len();
    Finding {
        rule: Rule::SynFlood,
        severity: Severity::Critical,
        source: None,
        target: Target::Host(ip),
        ts: now,
        description: format!(
            "{ip} received {syn_acks} SYN-ACKs it never asked for in {} s from {sources}{} \
             sources (reflected SYN flood)",
            cfg.window_secs,
            if v.sources.saturated() { "+" } else { "" }
        ),
        evidence: json!({
            "variant": "reflection",
            "syn_ack_count": syn_acks,
            "syn_ack_rate_per_sec": syn_acks as f64 / cfg.window_secs as f64,
            "distinct_sources": sources,
            "sources_sample": sample,
            "window_secs": cfg.window_secs,
            "threshold": cfg.target_threshold,
            "total_syn_acks": v.total,
        }),
        count,
        community_id: None,
        observed,
    }
}

impl Detector for SynFlood {
    fn rule(&self) -> Rule {
        Rule::SynFlood
    }

    fn on_packets(&mut self, batch: &PacketBatch, marks: &[FlowMark], out: &mut Vec<Finding>) {
        let before = out.len();
        for (p, &mark) in batch.packets.iter().zip(marks) {
            if p.ip_proto == ip_proto::TCP && p.has_ports {
                self.packet(p, mark, batch.started, out);
            }
        }
        if let Some(now) = self.clock.now() {
            let cfg = &self.config;
            self.senders.maintain(now, |&key, last, s| {
                if let Some(count) = s.reporter.take_final() {
                    out.push(sender_finding(cfg, key, s, last, count, None));
                }
            });
            self.victims.maintain(now, |&key, last, v| {
                if let Some(count) = v.reporter.take_final() {
                    out.push(victim_finding(cfg, key, v, last, count, None));
                }
            });
            self.reflected.maintain(now, |&key, last, v| {
                if let Some(count) = v.reporter.take_final() {
                    out.push(reflection_finding(cfg, key, v, last, count, None));
                }
            });
        }
        self.findings += (out.len() - before) as u64;
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        let cfg = &self.config;
        for (&key, last, s) in self.senders.iter_mut() {
            if let Some(count) = s.reporter.take_final() {
                out.push(sender_finding(cfg, key, s, last, count, None));
            }
        }
        for (&key, last, v) in self.victims.iter_mut() {
            if let Some(count) = v.reporter.take_final() {
                out.push(victim_finding(cfg, key, v, last, count, None));
            }
        }
        for (&key, last, v) in self.reflected.iter_mut() {
            if let Some(count) = v.reporter.take_final() {
                out.push(reflection_finding(cfg, key, v, last, count, None));
            }
        }
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked: self.senders.len() + self.victims.len() + self.reflected.len(),
            refused: self.senders.refused + self.victims.refused + self.reflected.refused,
            findings: self.findings,
        }
    }
}
