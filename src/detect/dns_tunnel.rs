//! `dns_tunneling`: data smuggled through DNS query names.
//!
//! Three signals, per client:
//! - long name: a query name longer than `max_name_length` (published: 50) that carries
//!   encoded data: a high-entropy label longer than 32 characters, or raw bytes. A single
//!   32-character hex label is how CDNs and telemetry name objects (an MD5, as in Microsoft's
//!   `<hash>.clo.footprintdns.com`); tunnels fill labels towards the 63-byte limit;
//! - rate: at least `rate_per_sec` (published: 20) machine-looking queries within one second;
//! - subdomains: at least `distinct_subdomains` distinct encoded subdomains under one
//!   registered domain within the window (dnscat2's short hex names fit here).
//!
//! "Encoded" means a label (or hyphen-free part of one) of 16+ characters whose Shannon
//! entropy is at least `min_label_entropy` bits per character (hex, base32 and base64 all
//! pass; words do not), or bytes that no host name contains (iodine's raw labels, base64's
//! `+/=`). "Machine-looking"
//! means encoded, or a NULL/TXT/MX/CNAME query for a subdomain (iodine, dnscat, dns2tcp).
//! Ordinary long names never count: reverse lookups (`*.arpa`), service records and other
//! names with `_` labels (Active Directory's `_ldap._tcp...`, DKIM, DMARC), and mDNS `.local`.
//! The published rate rule alone would fire on a browser: the benign baseline resolves 49
//! stackexchange.com subdomains in one second, all plain words.
//!
//! Severity is medium; critical when the long-name signal and a volume signal (rate or
//! subdomains) both hold for the same client.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::{Clock, Reporter, Spread, Tracker};
use super::{AllowList, Detector, DetectorStats, Finding, Rule, Severity, Target, secs};
use crate::flow::{FlowMark, community_id::community_id};
use crate::packet::{PacketBatch, PacketMeta, Timestamp};
use crate::wire::dns::{display_name, qtype_name};

/// Settings of the `dns_tunneling` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsTunnelConfig {
    pub enabled: bool,
    pub allow: AllowList,
    /// Names longer than this (characters) with an encoded subdomain (published: 50).
    pub max_name_length: usize,
    /// Machine-looking queries per second from one client (published: 20).
    pub rate_per_sec: usize,
    /// Distinct encoded subdomains of one registered domain within the window.
    pub distinct_subdomains: usize,
    pub window_secs: u64,
    /// Bits per character from which a 16+ character label counts as encoded.
    pub min_label_entropy: f64,
    /// Cap on tracked clients.
    pub max_tracked: usize,
}

impl Default for DnsTunnelConfig {
    fn default() -> Self {
        DnsTunnelConfig {
            enabled: true,
            allow: AllowList::default(),
            max_name_length: 50,
            rate_per_sec: 20,
            distinct_subdomains: 10,
            window_secs: 60,
            min_label_entropy: 3.4,
            max_tracked: 16_384,
        }
    }
}

/// Query types tunnels favour because their answers carry arbitrary data.
const TUNNEL_QTYPES: [u16; 4] = [
    10, /* NULL */
    16, /* TXT */
    15, /* MX */
    5,  /* CNAME */
];

/// The registered domain of `name` by a short heuristic (no public-suffix list on the
/// device): the last two labels, or three under a two-letter country code with a short
/// second level (`example.co.uk`). Empty when the last label is not a word, i.e. the name
/// has no real domain (dnscat's direct mode sends `dnscat.<hex>.<hex>`).
pub fn registered_domain(name: &[u8]) -> &[u8] {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let Some(last_dot) = name.iter().rposition(|&b| b == b'.') else {
        return name;
    };
    let tld = &name[last_dot + 1..];
    if tld.is_empty() || !tld.iter().all(u8::is_ascii_alphabetic) {
        return &[];
    }
    let second = name[..last_dot].iter().rposition(|&b| b == b'.');
    let sld = &name[second.map_or(0, |i| i + 1)..last_dot];
    let start = match second {
        Some(s) if tld.len() == 2 && sld.len() <= 3 => name[..s]
            .iter()
            .rposition(|&b| b == b'.')
            .map_or(0, |i| i + 1),
        Some(s) => s + 1,
        None => 0,
    };
    &name[start..]
}

/// The part of `name` left of its registered domain.
pub fn subdomain<'a>(name: &'a [u8], domain: &[u8]) -> &'a [u8] {
    if domain.is_empty() {
        name
    } else {
        name.get(..name.len().saturating_sub(domain.len() + 1))
            .unwrap_or_default()
    }
}

/// Names that are long by nature: reverse lookups, service records, mDNS.
pub fn is_ordinary(name: &[u8]) -> bool {
    let lower = |suffix: &[u8]| {
        name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    lower(b".arpa")
        || lower(b".local")
        || name.first() == Some(&b'_')
        || name.windows(2).any(|w| w == b"._")
}

/// Shannon entropy of `s` in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u16; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// How a subdomain looks to the detector.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Encoding {
    /// Bytes no host name contains (raw binary, base64's `+/=`).
    pub raw: bool,
    /// The longest hyphen-free run of 16+ characters in a label at or above the entropy
    /// threshold.
    pub longest_encoded_label: usize,
    /// The highest entropy of a 16+ character label, in bits per character.
    pub max_entropy: f64,
}

impl Encoding {
    pub fn encoded(&self) -> bool {
        self.raw || self.longest_encoded_label > 0
    }

    /// Enough encoded data for one name to count as a long tunnel name.
    pub fn carries_payload(&self) -> bool {
        self.raw || self.longest_encoded_label > 32
    }
}

/// Examines the subdomain part of a name.
pub fn encoding(sub: &[u8], min_entropy: f64) -> Encoding {
    let mut e = Encoding {
        raw: sub
            .iter()
            .any(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')),
        ..Encoding::default()
    };
    // Hyphens join words in ordinary names (`data-collector-linkedin-prod-1143471378`);
    // encoders use them rarely, so a label is judged by its hyphen-free runs.
    for run in sub
        .split(|&b| b == b'.' || b == b'-')
        .filter(|run| run.len() >= 16)
    {
        let bits = entropy(run);
        e.max_entropy = e.max_entropy.max(bits);
        if bits >= min_entropy {
            e.longest_encoded_label = e.longest_encoded_label.max(run.len());
        }
    }
    e
}

struct Client {
    /// Times of the last `rate_per_sec` machine-looking queries.
    recent: VecDeque<Timestamp>,
    /// (registered domain hash, its encoded subdomains), at most `MAX_DOMAINS`.
    domains: Vec<(u64, Spread<u64>)>,
    top_domain: Vec<u8>,
    top_subdomains: usize,
    queries: u64,
    long_names: u64,
    qtypes: Vec<(u16, u64)>,
    longest: Vec<u8>,
    max_entropy: f64,
    max_rate: usize,
    signals: [bool; 3],
    resolver: (IpAddr, u16),
    /// (protocol, source port) of the latest query that met a signal: its flow's
    /// Community ID goes into the finding.
    holding_query: Option<(u8, u16)>,
    first: Timestamp,
    reporter: Reporter,
}

const MAX_DOMAINS: usize = 8;
const LONG: usize = 0;
const RATE: usize = 1;
const SUBDOMAINS: usize = 2;
const SIGNAL_NAMES: [&str; 3] = ["long_name", "rate", "subdomains"];

/// Detects DNS tunnels.
pub struct DnsTunnel {
    config: DnsTunnelConfig,
    clock: Clock,
    clients: Tracker<IpAddr, Client>,
    seed: u16,
    findings: u64,
}

impl DnsTunnel {
    pub fn new(config: DnsTunnelConfig) -> Self {
        DnsTunnel::with_seed(config, 0)
    }

    /// With the Community ID seed of the flow table, so that alerts and flows agree.
    pub fn with_seed(config: DnsTunnelConfig, seed: u16) -> Self {
        DnsTunnel {
            seed,
            clients: Tracker::new(config.max_tracked, secs(config.window_secs)),
            clock: Clock::default(),
            config,
            findings: 0,
        }
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        super::state::stable_hash(bytes)
    }

    fn query(
        &mut self,
        p: &PacketMeta,
        name: &[u8],
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let now = self.clock.advance(p.ts);
        let Some(dns) = p.dns else { return };
        if dns.is_response || name.is_empty() || is_ordinary(name) {
            return;
        }
        let domain = registered_domain(name);
        let sub = subdomain(name, domain);
        let enc = encoding(sub, self.config.min_label_entropy);
        let (encoded, label_entropy) = (enc.encoded(), enc.max_entropy);
        let long = enc.carries_payload() && name.len() > self.config.max_name_length;
        let machine = encoded || (!sub.is_empty() && TUNNEL_QTYPES.contains(&dns.qtype));
        if !machine || self.config.allow.allows(p.src, p.dst) {
            return;
        }
        let domain_hash = self.hash(domain);
        let sub_hash = self.hash(sub);
        let cfg = &self.config;
        let window = secs(cfg.window_secs);
        let seed = self.seed;
        let Some(c) = self.clients.entry(p.src, now, || Client {
            recent: VecDeque::with_capacity(cfg.rate_per_sec),
            domains: Vec::new(),
            top_domain: Vec::new(),
            top_subdomains: 0,
            queries: 0,
            long_names: 0,
            qtypes: Vec::new(),
            longest: Vec::new(),
            max_entropy: 0.0,
            max_rate: 0,
            signals: [false; 3],
            resolver: (p.dst, p.dst_port),
            holding_query: None,
            first: now,
            reporter: Reporter::default(),
        }) else {
            return;
        };
        c.queries += 1;
        c.reporter.note(1);
        c.resolver = (p.dst, p.dst_port);
        if let Some((_, n)) = c.qtypes.iter_mut().find(|(t, _)| *t == dns.qtype) {
            *n += 1;
        } else if c.qtypes.len() < 16 {
            c.qtypes.push((dns.qtype, 1));
        }
        if name.len() > c.longest.len() {
            c.longest = name.to_vec();
        }
        c.max_entropy = c.max_entropy.max(label_entropy);

        // Rate: the oldest of the last `rate_per_sec` queries is under a second old.
        if c.recent.len() == cfg.rate_per_sec {
            c.recent.pop_front();
        }
        c.recent.push_back(now);
        let in_second = c
            .recent
            .iter()
            .filter(|t| now.0.saturating_sub(t.0) < Timestamp::NANOS_PER_SEC)
            .count();
        c.max_rate = c.max_rate.max(in_second);
        let rate = in_second >= cfg.rate_per_sec;

        // Distinct encoded subdomains under this registered domain.
        let mut subdomains = false;
        if encoded {
            let i = match c.domains.iter().position(|(d, _)| *d == domain_hash) {
                Some(i) => i,
                None => {
                    if c.domains.len() >= MAX_DOMAINS {
                        c.domains.remove(0);
                    }
                    c.domains
                        .push((domain_hash, Spread::new(cfg.distinct_subdomains * 2)));
                    c.domains.len() - 1
                }
            };
            let (n, _) = c.domains[i].1.touch(sub_hash, now, window);
            if n > c.top_subdomains || c.top_domain.is_empty() {
                c.top_subdomains = n.max(c.top_subdomains);
                c.top_domain = domain.to_vec();
            }
            subdomains = n >= cfg.distinct_subdomains;
        }
        if long {
            c.long_names += 1;
        }
        c.signals[LONG] |= long;
        c.signals[RATE] |= rate;
        c.signals[SUBDOMAINS] |= subdomains;
        let holds = long || rate || subdomains;
        if holds {
            c.holding_query = Some((p.ip_proto, p.src_port));
        }
        if let Some(count) = c.reporter.due(now, holds) {
            out.push(finding(cfg, seed, p.src, c, now, count, observed));
        }
    }
}

fn finding(
    cfg: &DnsTunnelConfig,
    seed: u16,
    src: IpAddr,
    c: &Client,
    now: Timestamp,
    count: u64,
    observed: Option<std::time::Instant>,
) -> Finding {
    let critical = c.signals[LONG] && (c.signals[RATE] || c.signals[SUBDOMAINS]);
    let signals: Vec<&str> = SIGNAL_NAMES
        .iter()
        .zip(c.signals)
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
    let domain = if c.top_domain.is_empty() {
        None
    } else {
        Some(display_name(&c.top_domain))
    };
    let qtypes: serde_json::Map<String, serde_json::Value> = c
        .qtypes
        .iter()
        .map(|&(t, n)| (qtype_name(t), n.into()))
        .collect();
    let (resolver, port) = c.resolver;
    let target = Target::Service(resolver, port);
    Finding {
        rule: Rule::DnsTunneling,
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Medium
        },
        source: Some(src),
        target,
        ts: now,
        description: format!(
            "{src} sent {} encoded-looking DNS queries{} via {target} ({})",
            c.queries,
            domain
                .as_deref()
                .map(|d| format!(" under {d}"))
                .unwrap_or_default(),
            signals.join(", ")
        ),
        evidence: json!({
            "signals": signals,
            "domain": domain,
            "longest_name": display_name(&c.longest),
            "longest_length": c.longest.len(),
            "long_names": c.long_names,
            "max_label_entropy": (c.max_entropy * 100.0).round() / 100.0,
            "requests_per_sec": c.max_rate,
            "distinct_subdomains": c.top_subdomains,
            "query_types": qtypes,
            "suspicious_queries": c.queries,
            "resolver": resolver.to_string(),
            "window_secs": cfg.window_secs,
            "max_name_length": cfg.max_name_length,
            "rate_threshold": cfg.rate_per_sec,
            "subdomain_threshold": cfg.distinct_subdomains,
            "first_seen": super::unix(c.first),
        }),
        count,
        community_id: c
            .holding_query
            .map(|(proto, sport)| community_id(seed, src, resolver, proto, sport, port)),
        observed,
    }
}

impl Detector for DnsTunnel {
    fn rule(&self) -> Rule {
        Rule::DnsTunneling
    }

    fn on_packets(&mut self, batch: &PacketBatch, _marks: &[FlowMark], out: &mut Vec<Finding>) {
        let before = out.len();
        for p in &batch.packets {
            if let Some(name) = batch.qname(p) {
                self.query(p, name, batch.started, out);
            }
        }
        if let Some(now) = self.clock.now() {
            let (cfg, seed) = (&self.config, self.seed);
            self.clients.maintain(now, |&src, last, c| {
                if let Some(count) = c.reporter.take_final() {
                    out.push(finding(cfg, seed, src, c, last, count, None));
                }
            });
        }
        self.findings += (out.len() - before) as u64;
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        let (cfg, seed) = (&self.config, self.seed);
        for (&src, last, c) in self.clients.iter_mut() {
            if let Some(count) = c.reporter.take_final() {
                out.push(finding(cfg, seed, src, c, last, count, None));
            }
        }
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked: self.clients.len(),
            refused: self.clients.refused,
            findings: self.findings,
        }
    }
}
