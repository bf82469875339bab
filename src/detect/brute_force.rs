//! `brute_force`: one source failing again and again against one service.
//!
//! Both shapes are judged on the flow table's records (one input stream, so the result does
//! not depend on how packet batches and records interleave), per (source, target, port):
//! - Refused attempts (the published rule): connections the source opened with a SYN that
//!   the target reset before the source itself closed (SYN→RST to a closed port, or
//!   medusa's sessions that the server aborts). Each attempt counts once, by source port.
//! - Short sessions (hydra, ncrack, medusa, FTP crackers close with FIN, so RSTs miss them):
//!   finished connections to an authentication service whose handshake completed, that
//!   lasted at most `max_session_secs` and carried at most `max_session_bytes` each way.
//!
//! Look-alikes and how they are told apart:
//! - A browser opening many connections to a web server: web ports are not authentication
//!   services (`auth_ports`), and a browser's connections are accepted and then closed by
//!   the browser, never refused.
//! - An Active Directory client retrying Kerberos/LDAP: ports 88/389 are not in
//!   `auth_ports` (a Kerberos client opens one short connection per ticket by design), and
//!   the domain controller's RSTs follow the client's own FIN (Windows' abortive close),
//!   so they are not refusals.
//! - A reverse shell retrying its callback: the operating system retransmits the refused
//!   SYN from the same source port (15 RSTs per attempt in the Aurora trace), so it makes a
//!   few distinct attempts per window, not dozens, and its port is no login service.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::{Clock, FirstSight, Reporter, Spread, Tracker};
use super::{AllowList, Detector, DetectorStats, Finding, Rule, Severity, Target, secs};
use crate::flow::community_id::community_id;
use crate::flow::{FlowMark, FlowRecord, FlowState};
use crate::packet::{PacketBatch, TcpFlags, Timestamp, ip_proto};

/// Settings of the `brute_force` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BruteForceConfig {
    pub enabled: bool,
    pub allow: AllowList,
    /// Refused attempts within `rst_window_secs` (published: 5 in 30 s).
    pub rst_threshold: usize,
    pub rst_window_secs: u64,
    /// Short sessions within `session_window_secs`.
    pub session_threshold: usize,
    pub session_window_secs: u64,
    /// Slow attacks (hydra -t 1, ncrack -T paranoid) over a longer window.
    pub slow_session_threshold: usize,
    pub slow_session_window_secs: u64,
    /// A session longer than this is real use, not a guess.
    pub max_session_secs: u64,
    /// A session carrying more bytes than this in either direction is real use.
    pub max_session_bytes: u64,
    /// Ports of services that take passwords; short sessions count only here.
    pub auth_ports: Vec<u16>,
    /// Cap on tracked (source, target, port) keys.
    pub max_tracked: usize,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            enabled: true,
            allow: AllowList::default(),
            rst_threshold: 5,
            rst_window_secs: 30,
            session_threshold: 10,
            session_window_secs: 60,
            slow_session_threshold: 30,
            slow_session_window_secs: 600,
            max_session_secs: 30,
            max_session_bytes: 16_384,
            auth_ports: vec![
                21, 22, 23, 25, 110, 143, 465, 512, 513, 587, 993, 995, 1433, 1521, 3306, 3389,
                5432, 5900, 5985, 5986, 6379, 27017,
            ],
            max_tracked: 32_768,
        }
    }
}

/// The service usually behind `port`, for descriptions.
fn service_name(port: u16) -> Option<&'static str> {
    Some(match port {
        21 => "FTP",
        22 => "SSH",
        23 => "Telnet",
        25 | 465 | 587 => "SMTP",
        110 | 995 => "POP3",
        143 | 993 => "IMAP",
        512 => "rexec",
        513 => "rlogin",
        1433 => "MSSQL",
        1521 => "Oracle",
        3306 => "MySQL",
        3389 => "RDP",
        5432 => "PostgreSQL",
        5900 => "VNC",
        5985 | 5986 => "WinRM",
        6379 => "Redis",
        27017 => "MongoDB",
        _ => return None,
    })
}

/// (source, target, port).
type Key = (IpAddr, IpAddr, u16);

/// One refused connection or short session, as a flow record showed it.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    refused: bool,
    src_port: u16,
    first_seen: Timestamp,
    last_seen: Timestamp,
}

struct Victim {
    /// Source ports of refused attempts, recent ones only.
    refused: Spread<u16>,
    /// Start times of short sessions, oldest first.
    sessions: VecDeque<Timestamp>,
    refused_total: u64,
    sessions_total: u64,
    first: Timestamp,
    /// Source port of the latest attempt: the finding's flow (its Community ID).
    last_src_port: u16,
    reporter: Reporter,
}

impl Victim {
    fn new(config: &BruteForceConfig, now: Timestamp) -> Self {
        Victim {
            refused: Spread::new(config.rst_threshold * 2),
            sessions: VecDeque::new(),
            refused_total: 0,
            sessions_total: 0,
            first: now,
            last_src_port: 0,
            reporter: Reporter::default(),
        }
    }

    fn attempt(&mut self, config: &BruteForceConfig, a: Attempt) {
        self.last_src_port = a.src_port;
        if a.refused {
            // Counted once per source port: retries of one connect() are one attempt.
            let window = secs(config.rst_window_secs);
            if self.refused.touch(a.src_port, a.last_seen, window).1 {
                self.refused_total += 1;
                self.reporter.note(1);
            }
        } else {
            // Records leave the flow table in expiry order; keep start times sorted.
            let at = self.sessions.partition_point(|t| t.0 <= a.first_seen.0);
            self.sessions.insert(at, a.first_seen);
            let keep = config.session_threshold.max(config.slow_session_threshold);
            while self.sessions.len() > keep {
                self.sessions.pop_front();
            }
            self.sessions_total += 1;
            self.reporter.note(1);
        }
    }
}

/// Detects password guessing against one service.
pub struct BruteForce {
    config: BruteForceConfig,
    /// Record time: the latest `last_seen` of the records seen.
    clock: Clock,
    victims: Tracker<Key, Victim>,
    /// Services with a single attempt so far from a source (one port of a scan).
    first_attempts: FirstSight<Key, Attempt>,
    longest_window: i64,
    /// Community ID seed of the flow table, so that alerts and flows agree.
    seed: u16,
    findings: u64,
}

impl BruteForce {
    pub fn new(config: BruteForceConfig) -> Self {
        BruteForce::with_seed(config, 0)
    }

    pub fn with_seed(config: BruteForceConfig, seed: u16) -> Self {
        let longest = config
            .rst_window_secs
            .max(config.session_window_secs)
            .max(config.slow_session_window_secs);
        BruteForce {
            victims: Tracker::new(config.max_tracked, secs(longest)),
            first_attempts: FirstSight::new(config.max_tracked / 32),
            longest_window: secs(longest),
            seed,
            clock: Clock::default(),
            config,
            findings: 0,
        }
    }

    /// Whether `r` is a finished, accepted, short and small session to a login service.
    pub fn is_short_session(config: &BruteForceConfig, r: &FlowRecord) -> bool {
        r.ip_proto == ip_proto::TCP
            && config.auth_ports.contains(&r.dst_port)
            && r.src_flags.has(TcpFlags::SYN)
            && r.dst_flags.has(TcpFlags::SYN)
            && r.dst_flags.has(TcpFlags::ACK)
            && matches!(
                r.state,
                FlowState::Closed | FlowState::Closing | FlowState::Reset
            )
            && r.last_seen.0.saturating_sub(r.first_seen.0) <= secs(config.max_session_secs)
            && r.src_bytes <= config.max_session_bytes
            && r.dst_bytes <= config.max_session_bytes
    }

    fn record(&mut self, r: &FlowRecord, out: &mut Vec<Finding>) {
        if r.ip_proto != ip_proto::TCP || self.config.allow.allows(r.src, r.dst) {
            return;
        }
        let refused = r.refused && r.src_flags.has(TcpFlags::SYN);
        if !refused && !BruteForce::is_short_session(&self.config, r) {
            return;
        }
        let now = self.clock.advance(r.last_seen);
        let cfg = &self.config;
        let key = (r.src, r.dst, r.dst_port);
        let attempt = Attempt {
            refused,
            src_port: r.src_port,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
        };
        let Some(victim) = self.victims.second_sight(
            &mut self.first_attempts,
            key,
            attempt,
            now,
            self.longest_window,
            // Another record of one refused connect() (its retries) is the same attempt.
            |a, earlier| a.refused && earlier.refused && a.src_port == earlier.src_port,
            || Victim::new(cfg, now),
            |victim, first| {
                victim.first = first.item.first_seen;
                victim.attempt(cfg, first.item);
            },
        ) else {
            return;
        };
        victim.attempt(cfg, attempt);
        let holds = holds(cfg, victim, now);
        if let Some(count) = victim.reporter.due(now, holds) {
            out.push(finding(cfg, self.seed, key, victim, now, count));
        }
    }
}

/// Short sessions whose start lies within `window` of the latest one.
fn sessions_within(victim: &Victim, window: i64) -> usize {
    let Some(latest) = victim.sessions.back() else {
        return 0;
    };
    let horizon = latest.0.saturating_sub(window);
    victim.sessions.iter().filter(|t| t.0 >= horizon).count()
}

fn holds(config: &BruteForceConfig, victim: &Victim, now: Timestamp) -> bool {
    victim.refused.count(now, secs(config.rst_window_secs)) >= config.rst_threshold
        || sessions_within(victim, secs(config.session_window_secs)) >= config.session_threshold
        || sessions_within(victim, secs(config.slow_session_window_secs))
            >= config.slow_session_threshold
}

fn finding(
    config: &BruteForceConfig,
    seed: u16,
    (source, target, port): Key,
    victim: &Victim,
    now: Timestamp,
    count: u64,
) -> Finding {
    let refused = victim.refused.count(now, secs(config.rst_window_secs));
    let short = sessions_within(victim, secs(config.session_window_secs));
    let slow = sessions_within(victim, secs(config.slow_session_window_secs));
    let service = service_name(port);
    let what = match (victim.refused_total, victim.sessions_total) {
        (r, 0) => format!("{r} refused connection attempts"),
        (0, s) => format!("{s} short login sessions"),
        (r, s) => format!("{r} refused attempts and {s} short sessions"),
    };
    let endpoint = Target::Service(target, port);
    Finding {
        rule: Rule::BruteForce,
        severity: Severity::High,
        source: Some(source),
        target: endpoint,
        ts: now,
        description: match service {
            Some(name) => format!("{source} made {what} to {name} on {endpoint}"),
            None => format!("{source} made {what} to {endpoint}"),
        },
        evidence: json!({
            "target": target.to_string(),
            "port": port,
            "service": service,
            "failed_attempts": refused,
            "rst_window_secs": config.rst_window_secs,
            "rst_threshold": config.rst_threshold,
            "short_sessions": short,
            "session_window_secs": config.session_window_secs,
            "session_threshold": config.session_threshold,
            "short_sessions_slow_window": slow,
            "slow_session_window_secs": config.slow_session_window_secs,
            "slow_session_threshold": config.slow_session_threshold,
            "total_failed_attempts": victim.refused_total,
            "total_short_sessions": victim.sessions_total,
            "first_seen": super::unix(victim.first),
        }),
        count,
        community_id: Some(community_id(
            seed,
            source,
            target,
            ip_proto::TCP,
            victim.last_src_port,
            port,
        )),
        // Judged on flow records, which leave the table after it times the flow out.
        observed: None,
    }
}

impl Detector for BruteForce {
    fn rule(&self) -> Rule {
        Rule::BruteForce
    }

    fn wants_packets(&self) -> bool {
        false
    }

    fn on_packets(&mut self, _: &PacketBatch, _: &[FlowMark], _: &mut Vec<Finding>) {}

    fn wants_flows(&self) -> bool {
        true
    }

    fn on_flows(&mut self, records: &[FlowRecord], out: &mut Vec<Finding>) {
        let before = out.len();
        for r in records {
            self.record(r, out);
        }
        if let Some(now) = self.clock.now() {
            let (config, seed) = (&self.config, self.seed);
            self.victims.maintain(now, |&key, last, victim| {
                if let Some(count) = victim.reporter.take_final() {
                    out.push(finding(config, seed, key, victim, last, count));
                }
            });
        }
        self.findings += (out.len() - before) as u64;
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        let (config, seed) = (&self.config, self.seed);
        for (&key, last, victim) in self.victims.iter_mut() {
            if let Some(count) = victim.reporter.take_final() {
                out.push(finding(config, seed, key, victim, last, count));
            }
        }
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked: self.victims.len(),
            refused: self.victims.refused,
            findings: self.findings,
        }
    }
}
