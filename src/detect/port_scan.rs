//! `port_scan`: one source probing many ports of one host (vertical), many IP protocols of
//! one host (nmap -sO), or one port on many hosts (horizontal sweep, including ARP sweeps of
//! the local segment).
//!
//! Only the packets that open a flow, and each responder's first packet, are looked at (the
//! flow table marks them): the rest of a connection can be neither a probe nor the first
//! answer to one, and skipping it keeps this detector's cost per packet small.
//!
//! A probe is any packet that could open a conversation, whatever its flags: SYN (nmap -sS,
//! -sT, masscan), FIN, NULL and Xmas (-sF, -sN, -sX), UDP (-sU) and, for sweeps, ICMP echo
//! requests. Bare ACKs (-sA, -sW) are also every live connection's last packet, so they are
//! counted by their answer instead: a RST without ACK is what a host sends back to an ACK
//! for a connection it does not have (an opening bare ACK may also be a connection picked up
//! mid-way when capture starts). A UDP datagram is a probe only when it starts a
//! conversation and does not answer one: TFTP answers a request to port 69 from a new
//! port, to the port the request came from. Two more things keep ordinary traffic out:
//! - a port (or host) that accepts the conversation is forgotten again: a SYN-ACK, any ACK
//!   without RST, or a UDP reply shows a service in use, not a probe; a RST or silence does
//!   not. A browser's connections to 20 web servers are all accepted; a sweep's are not.
//! - ICMP errors are never probes. They quote the packet that caused them (nmap -sU draws
//!   1,000 "port unreachable"s that quote UDP headers) but the quoting host is answering.
//!
//! Two sweeps are seen without an answer to count by: an opening bare ACK without payload to
//! a host that never answers it (nmap -PA; a connection picked up mid-way soon shows its other
//! side, which forgets the host again), and ARP requests for addresses that never reply (an
//! ARP scan; hosts that reply are in use). A protocol scan sends IP datagrams of protocols
//! other than TCP, UDP and ICMP; ten distinct ones to one host is a scan, as ten ports are.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::{
    Clock, Conversations, Distinct, FirstSight, Reporter, Sight, Spread, Tracker, stable_hash,
};
use super::{AllowList, Detector, DetectorStats, Finding, Rule, Severity, Target, secs};
use crate::flow::FlowMark;
use crate::packet::{Network, PacketBatch, PacketMeta, TcpFlags, Timestamp, ip_proto};

/// Settings of the `port_scan` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortScanConfig {
    pub enabled: bool,
    pub allow: AllowList,
    /// Distinct ports of one target within the window (published: 10).
    pub ports_threshold: usize,
    /// Distinct hosts probed on one port within the window (also ARP requests for distinct
    /// addresses).
    pub hosts_threshold: usize,
    pub window_secs: u64,
    /// Cap on tracked (source, target) pairs, and separately on (source, port) sweeps.
    pub max_tracked: usize,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        PortScanConfig {
            enabled: true,
            allow: AllowList::default(),
            ports_threshold: 10,
            hosts_threshold: 20,
            window_secs: 60,
            max_tracked: 32_768,
        }
    }
}

/// How a probe looked; the evidence counts each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Syn,
    Fin,
    Null,
    Xmas,
    Ack,
    OtherTcp,
    Udp,
    Echo,
    /// A datagram of an IP protocol other than TCP, UDP and ICMP.
    Protocol,
    /// An ARP request.
    Arp,
}

impl ProbeKind {
    const ALL: [ProbeKind; 10] = [
        ProbeKind::Syn,
        ProbeKind::Fin,
        ProbeKind::Null,
        ProbeKind::Xmas,
        ProbeKind::Ack,
        ProbeKind::OtherTcp,
        ProbeKind::Udp,
        ProbeKind::Echo,
        ProbeKind::Protocol,
        ProbeKind::Arp,
    ];

    fn name(self) -> &'static str {
        match self {
            ProbeKind::Syn => "SYN",
            ProbeKind::Fin => "FIN",
            ProbeKind::Null => "NULL",
            ProbeKind::Xmas => "Xmas",
            ProbeKind::Ack => "ACK",
            ProbeKind::OtherTcp => "TCP",
            ProbeKind::Udp => "UDP",
            ProbeKind::Echo => "ICMP echo",
            ProbeKind::Protocol => "IP protocol",
            ProbeKind::Arp => "ARP",
        }
    }
}

/// The probe `p` is, if any.
pub fn probe_kind(p: &PacketMeta) -> Option<ProbeKind> {
    if !unicast(p.dst) {
        return None;
    }
    match p.ip_proto {
        ip_proto::TCP if p.has_ports => {
            let f = p.tcp_flags;
            if f.has(TcpFlags::RST) {
                None
            } else if f.has(TcpFlags::SYN) {
                (!f.has(TcpFlags::ACK)).then_some(ProbeKind::Syn)
            } else if f.has(TcpFlags::ACK) {
                // Counted through its RST answer (see `answered_ack_probe`).
                None
            } else if f.0 & (TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG)
                == TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG
            {
                Some(ProbeKind::Xmas)
            } else if f.0 == 0 {
                Some(ProbeKind::Null)
            } else if f.has(TcpFlags::FIN) {
                Some(ProbeKind::Fin)
            } else {
                Some(ProbeKind::OtherTcp)
            }
        }
        ip_proto::UDP if p.has_ports => {
            let dns_answer = p.dns.is_some_and(|d| d.is_response);
            (!dns_answer).then_some(ProbeKind::Udp)
        }
        ip_proto::ICMP if p.icmp_type == 8 => Some(ProbeKind::Echo),
        ip_proto::ICMPV6 if p.icmp_type == 128 => Some(ProbeKind::Echo),
        _ => None,
    }
}

/// Whether `p` is a bare ACK without payload: nmap's ACK ping, or a connection's last packet.
fn bare_ack(p: &PacketMeta) -> bool {
    p.ip_proto == ip_proto::TCP
        && p.has_ports
        && p.tcp_flags.0 & !(TcpFlags::PSH | TcpFlags::URG | TcpFlags::ECE | TcpFlags::CWR)
            == TcpFlags::ACK
        && p.payload_len == 0
        && unicast(p.dst)
}

/// Whether `p` is an IP datagram of a protocol that `probe_kind` does not look into.
fn other_protocol(p: &PacketMeta) -> bool {
    !matches!(
        p.ip_proto,
        ip_proto::TCP | ip_proto::UDP | ip_proto::ICMP | ip_proto::ICMPV6
    ) && unicast(p.dst)
}

/// The horizontal key's protocol for ARP sweeps: no probe travels in IP protocol 0 (HOPOPT is
/// an IPv6 extension header the decoder walks past, and `other_protocol` probes are vertical).
const ARP_SWEEP: u8 = 0;
/// ARP opcodes, which the decoder keeps in `PacketMeta::icmp_type`.
const ARP_REQUEST: u8 = 1;
const ARP_REPLY: u8 = 2;

/// A RST without ACK from `target:port` answers an ACK probe from `prober`: returns
/// (prober, target, port).
pub fn answered_ack_probe(p: &PacketMeta) -> Option<(IpAddr, IpAddr, u16)> {
    let f = p.tcp_flags;
    (p.ip_proto == ip_proto::TCP
        && p.has_ports
        && f.has(TcpFlags::RST)
        && !f.has(TcpFlags::ACK)
        && unicast(p.src))
    .then_some((p.dst, p.src, p.src_port))
}

/// Whether `p` shows its sender accepting a conversation `p.dst` started.
fn accepts(p: &PacketMeta) -> bool {
    match p.ip_proto {
        ip_proto::TCP => {
            p.has_ports && p.tcp_flags.has(TcpFlags::ACK) && !p.tcp_flags.has(TcpFlags::RST)
        }
        ip_proto::UDP => p.has_ports,
        ip_proto::ICMP => p.icmp_type == 0,
        ip_proto::ICMPV6 => p.icmp_type == 129,
        _ => false,
    }
}

fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_broadcast() && !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_multicast() && !v6.is_unspecified(),
    }
}

/// Probes gathered for one key (a pair for vertical, a port for horizontal).
struct Probed<T> {
    /// Items probed recently and not accepted.
    recent: Spread<T>,
    kinds: [u32; ProbeKind::ALL.len()],
    probes: u64,
    first: Timestamp,
    /// Every item probed since the key first crossed the threshold (for evidence).
    episode: Option<Box<Distinct<T>>>,
    reporter: Reporter,
}

impl<T: Copy + PartialEq + std::hash::Hash + Eq> Probed<T> {
    fn new(cap: usize, now: Timestamp) -> Self {
        Probed {
            recent: Spread::new(cap),
            kinds: [0; ProbeKind::ALL.len()],
            probes: 0,
            first: now,
            episode: None,
            reporter: Reporter::default(),
        }
    }

    /// Records a probe of `item`; returns the count of a due finding.
    fn probe(
        &mut self,
        item: T,
        kind: ProbeKind,
        now: Timestamp,
        window: i64,
        threshold: usize,
    ) -> Option<u64> {
        let (n, new) = self.recent.touch(item, now, window);
        self.kinds[kind as usize] += 1;
        self.probes += 1;
        self.reporter.note(1);
        let holds = n >= threshold;
        match &mut self.episode {
            Some(all) if new => {
                all.insert(item);
            }
            None if holds => {
                let mut all = Distinct::new(65_536);
                for i in self.recent.recent(now, window) {
                    all.insert(i);
                }
                self.episode = Some(Box::new(all));
            }
            _ => {}
        }
        self.reporter.due(now, holds)
    }

    /// Replays a first probe and its repeats, remembered before the key had state.
    fn replay(&mut self, first: Sight<(T, ProbeKind)>, window: i64, threshold: usize) {
        let (item, kind) = first.item;
        self.probe(item, kind, first.at, window, threshold);
        let repeats = first.times - 1;
        self.kinds[kind as usize] += repeats;
        self.probes += u64::from(repeats);
        self.reporter.note(u64::from(repeats));
    }

    fn main_kind(&self) -> ProbeKind {
        let i = (0..self.kinds.len())
            .max_by_key(|&i| self.kinds[i])
            .unwrap_or(0);
        ProbeKind::ALL[i]
    }

    fn kinds_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for kind in ProbeKind::ALL {
            let n = self.kinds[kind as usize];
            if n > 0 {
                map.insert(kind.name().to_lowercase().replace(' ', "_"), n.into());
            }
        }
        map.into()
    }
}

/// Detects vertical and horizontal scans.
pub struct PortScan {
    config: PortScanConfig,
    clock: Clock,
    /// (source, target) → ports probed, from the second probe on.
    vertical: Tracker<(IpAddr, IpAddr), Probed<u16>>,
    first_vertical: FirstSight<(IpAddr, IpAddr), (u16, ProbeKind)>,
    /// (source, target) → IP protocols other than TCP, UDP and ICMP sent.
    protocols: Tracker<(IpAddr, IpAddr), Probed<u16>>,
    first_protocols: FirstSight<(IpAddr, IpAddr), (u16, ProbeKind)>,
    /// (source, protocol, port) → hosts probed, from the second probe on; ARP sweeps are
    /// (source, `ARP_SWEEP`, 0).
    horizontal: Tracker<(IpAddr, u8, u16), Probed<IpAddr>>,
    first_horizontal: FirstSight<(IpAddr, u8, u16), (IpAddr, ProbeKind)>,
    /// (sender, sender port, receiver) of the first datagram of each side of recent UDP
    /// conversations: a datagram to that address and port from that receiver is a reply.
    udp_senders: Conversations,
    /// (prober, its port, target, port) of recent conversations opened by a bare ACK: a RST
    /// answers an ACK probe only there. A FIN-ACK of a connection picked up mid-way that
    /// the other side has already forgotten draws the same RST, and is no probe.
    ack_openers: Conversations,
    findings: u64,
}

impl PortScan {
    pub fn new(config: PortScanConfig) -> Self {
        let window = secs(config.window_secs);
        PortScan {
            vertical: Tracker::new(config.max_tracked, window),
            first_vertical: FirstSight::new(config.max_tracked / 16),
            protocols: Tracker::new(config.max_tracked / 16, window),
            first_protocols: FirstSight::new(config.max_tracked / 16),
            horizontal: Tracker::new(config.max_tracked, window),
            first_horizontal: FirstSight::new(config.max_tracked / 16),
            udp_senders: Conversations::new(config.max_tracked, window),
            ack_openers: Conversations::new(config.max_tracked, window),
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
        // A probe opens a conversation and an answer to it is the responder's first packet;
        // the rest of a connection cannot be either, and is most of the traffic.
        if !mark.is_first_from_sender() {
            return;
        }
        let answer = mark.has(FlowMark::FROM_RESPONDER);
        if answer && accepts(p) {
            let port = if p.ip_proto == ip_proto::TCP || p.ip_proto == ip_proto::UDP {
                p.src_port
            } else {
                0
            };
            if port != 0
                && let Some(pair) = self.vertical.peek_mut(&(p.dst, p.src))
            {
                pair.recent.forget(port);
            }
            if let Some(sweep) = self.horizontal.peek_mut(&(p.dst, p.ip_proto, port)) {
                sweep.recent.forget(p.src);
            }
        }
        if p.ip_proto == ip_proto::UDP && p.has_ports {
            self.udp_senders
                .first_sight(stable_hash(&(p.src, p.src_port, p.dst)), now);
            // A datagram that opens a conversation may still answer an earlier one from a
            // new port (TFTP): the receiver sent to the sender's address and port recently.
            if answer
                || !self
                    .udp_senders
                    .first_sight(stable_hash(&(p.dst, p.dst_port, p.src)), now)
            {
                return;
            }
        } else if answer && answered_ack_probe(p).is_none() {
            return;
        }
        let (prober, target, port, kind) = match probe_kind(p) {
            Some(kind) => (p.src, p.dst, p.dst_port, kind),
            None => match answered_ack_probe(p) {
                Some((prober, target, port))
                    if answer
                        && self
                            .ack_openers
                            .contains(stable_hash(&(prober, p.dst_port, target, port))) =>
                {
                    (prober, target, port, ProbeKind::Ack)
                }
                // An ACK ping: only a sweep says more than one connection seen mid-way.
                _ if !answer && bare_ack(p) => {
                    self.ack_openers
                        .first_sight(stable_hash(&(p.src, p.src_port, p.dst, p.dst_port)), now);
                    if !self.config.allow.allows(p.src, p.dst) {
                        let key = (p.src, p.ip_proto, p.dst_port);
                        self.sweep(key, p.dst, ProbeKind::Ack, now, observed, out);
                    }
                    return;
                }
                _ if !answer && other_protocol(p) => {
                    if !self.config.allow.allows(p.src, p.dst) {
                        let (what, proto) = (VerticalKind::Protocols, u16::from(p.ip_proto));
                        let kind = ProbeKind::Protocol;
                        self.vertical_probe(what, p.src, p.dst, proto, kind, now, observed, out);
                    }
                    return;
                }
                _ => return,
            },
        };
        if self.config.allow.allows(prober, target) {
            return;
        }
        if kind != ProbeKind::Echo {
            let what = VerticalKind::Ports;
            self.vertical_probe(what, prober, target, port, kind, now, observed, out);
        }
        let key = match kind {
            ProbeKind::Echo => (prober, ip_proto::ICMP, 0),
            _ => (prober, p.ip_proto, port),
        };
        self.sweep(key, target, kind, now, observed, out);
    }

    /// An ARP request or reply: requests for addresses that never reply are a sweep.
    fn arp(
        &mut self,
        p: &PacketMeta,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let now = self.clock.advance(p.ts);
        // Sender 0.0.0.0 is an address probe (RFC 5227) and sender == target an announcement:
        // neither looks for other hosts.
        if p.src == p.dst || !unicast(p.src) || !unicast(p.dst) {
            return;
        }
        match p.icmp_type {
            ARP_REPLY => {
                if let Some(sweep) = self.horizontal.peek_mut(&(p.dst, ARP_SWEEP, 0)) {
                    sweep.recent.forget(p.src);
                }
            }
            ARP_REQUEST if !self.config.allow.allows(p.src, p.dst) => {
                self.sweep(
                    (p.src, ARP_SWEEP, 0),
                    p.dst,
                    ProbeKind::Arp,
                    now,
                    observed,
                    out,
                );
            }
            _ => {}
        }
    }

    /// Counts a probe of `target` in the sweep `key` = (prober, protocol, port).
    fn sweep(
        &mut self,
        key: (IpAddr, u8, u16),
        target: IpAddr,
        kind: ProbeKind,
        now: Timestamp,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let window = secs(self.config.window_secs);
        let cfg = &self.config;
        let cap = cfg.hosts_threshold * 2;
        if let Some(sweep) = self.horizontal.second_sight(
            &mut self.first_horizontal,
            key,
            (target, kind),
            now,
            window,
            |probe, earlier| probe == earlier,
            || Probed::new(cap, now),
            |sweep, first| sweep.replay(first, window, cfg.hosts_threshold),
        ) && let Some(count) = sweep.probe(target, kind, now, window, cfg.hosts_threshold)
        {
            let (src, proto, port) = key;
            out.push(horizontal_finding(
                cfg, src, proto, port, sweep, now, count, observed,
            ));
        }
    }

    /// Counts a probe of `item` (a port, or an IP protocol number) of `target` by `prober`.
    #[allow(clippy::too_many_arguments)]
    fn vertical_probe(
        &mut self,
        what: VerticalKind,
        prober: IpAddr,
        target: IpAddr,
        item: u16,
        kind: ProbeKind,
        now: Timestamp,
        observed: Option<std::time::Instant>,
        out: &mut Vec<Finding>,
    ) {
        let window = secs(self.config.window_secs);
        let cfg = &self.config;
        let (tracker, first) = match what {
            VerticalKind::Ports => (&mut self.vertical, &mut self.first_vertical),
            VerticalKind::Protocols => (&mut self.protocols, &mut self.first_protocols),
        };
        let cap = cfg.ports_threshold * 2;
        if let Some(pair) = tracker.second_sight(
            first,
            (prober, target),
            (item, kind),
            now,
            window,
            |probe, earlier| probe == earlier,
            || Probed::new(cap, now),
            |pair, first| pair.replay(first, window, cfg.ports_threshold),
        ) && let Some(count) = pair.probe(item, kind, now, window, cfg.ports_threshold)
        {
            out.push(vertical_finding(
                cfg, prober, target, what, pair, now, count, observed,
            ));
        }
    }

    fn expire(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        let cfg = &self.config;
        for (tracker, kind) in [
            (&mut self.vertical, VerticalKind::Ports),
            (&mut self.protocols, VerticalKind::Protocols),
        ] {
            tracker.maintain(now, |&(src, dst), last, pair| {
                if let Some(count) = pair.reporter.take_final() {
                    out.push(vertical_finding(
                        cfg, src, dst, kind, pair, last, count, None,
                    ));
                }
            });
        }
        self.horizontal
            .maintain(now, |&(src, proto, port), last, sweep| {
                if let Some(count) = sweep.reporter.take_final() {
                    out.push(horizontal_finding(
                        cfg, src, proto, port, sweep, last, count, None,
                    ));
                }
            });
    }
}

/// The `n` smallest items, sorted: the evidence's sample, without sorting all 65,536 ports of
/// a full scan for each update.
fn smallest<T: Ord>(mut items: Vec<T>, n: usize) -> Vec<T> {
    if items.len() > n {
        items.select_nth_unstable(n);
        items.truncate(n);
    }
    items.sort_unstable();
    items
}

/// What a vertical scan went through on its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VerticalKind {
    Ports,
    Protocols,
}

#[allow(clippy::too_many_arguments)]
fn vertical_finding(
    cfg: &PortScanConfig,
    src: IpAddr,
    dst: IpAddr,
    what: VerticalKind,
    pair: &Probed<u16>,
    now: Timestamp,
    count: u64,
    observed: Option<std::time::Instant>,
) -> Finding {
    let window = secs(cfg.window_secs);
    let items: Vec<u16> = match &pair.episode {
        Some(all) => all.iter().copied().collect(),
        None => pair.recent.recent(now, window).collect(),
    };
    let distinct = items.len();
    let sample = smallest(items, 20);
    let in_window = pair.recent.count(now, window);
    let (description, evidence) = match what {
        VerticalKind::Ports => (
            format!(
                "{src} probed {distinct} ports on {dst} ({} scan)",
                pair.main_kind().name()
            ),
            json!({
                "kind": "vertical",
                "distinct_ports": distinct,
                "ports_sample": sample,
                "ports_in_window": in_window,
            }),
        ),
        VerticalKind::Protocols => (
            format!("{src} sent {distinct} IP protocols to {dst} (IP protocol scan)"),
            json!({
                "kind": "protocol",
                "distinct_protocols": distinct,
                "protocols_sample": sample,
                "protocols_in_window": in_window,
            }),
        ),
    };
    let mut evidence = evidence;
    let common = json!({
        "target": dst.to_string(),
        "probes": pair.probes,
        "probe_types": pair.kinds_json(),
        "window_secs": cfg.window_secs,
        "threshold": cfg.ports_threshold,
        "first_probe": super::unix(pair.first),
    });
    if let (Some(map), serde_json::Value::Object(rest)) = (evidence.as_object_mut(), common) {
        map.extend(rest);
    }
    Finding {
        rule: Rule::PortScan,
        severity: Severity::High,
        source: Some(src),
        target: Target::Host(dst),
        ts: now,
        description,
        evidence,
        count,
        community_id: None,
        observed,
    }
}

#[allow(clippy::too_many_arguments)]
fn horizontal_finding(
    cfg: &PortScanConfig,
    src: IpAddr,
    proto: u8,
    port: u16,
    sweep: &Probed<IpAddr>,
    now: Timestamp,
    count: u64,
    observed: Option<std::time::Instant>,
) -> Finding {
    let window = secs(cfg.window_secs);
    let hosts: Vec<IpAddr> = match &sweep.episode {
        Some(all) => all.iter().copied().collect(),
        None => sweep.recent.recent(now, window).collect(),
    };
    let distinct = hosts.len();
    let hosts = smallest(hosts, 20);
    let target = match proto {
        ARP_SWEEP => Target::ArpSweep,
        _ => Target::Sweep { proto, port },
    };
    Finding {
        rule: Rule::PortScan,
        severity: Severity::High,
        source: Some(src),
        target,
        ts: now,
        description: format!(
            "{src} swept {target} across {distinct} hosts ({} probes)",
            sweep.main_kind().name()
        ),
        evidence: json!({
            "kind": "horizontal",
            "port": port,
            "protocol": match proto {
                ARP_SWEEP => "ARP",
                _ => crate::flow::protocol_name(proto),
            },
            "distinct_hosts": distinct,
            "hosts_sample": hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "hosts_in_window": sweep.recent.count(now, window),
            "probes": sweep.probes,
            "probe_types": sweep.kinds_json(),
            "window_secs": cfg.window_secs,
            "threshold": cfg.hosts_threshold,
            "first_probe": super::unix(sweep.first),
        }),
        count,
        community_id: None,
        observed,
    }
}

impl Detector for PortScan {
    fn rule(&self) -> Rule {
        Rule::PortScan
    }

    fn on_packets(&mut self, batch: &PacketBatch, marks: &[FlowMark], out: &mut Vec<Finding>) {
        let before = out.len();
        for (p, &mark) in batch.packets.iter().zip(marks) {
            if p.is_ip() {
                self.packet(p, mark, batch.started, out);
            } else if p.network == Network::Arp {
                self.arp(p, batch.started, out);
            }
        }
        if let Some(now) = self.clock.now() {
            self.expire(now, out);
        }
        self.findings += (out.len() - before) as u64;
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        let cfg = &self.config;
        for (tracker, kind) in [
            (&mut self.vertical, VerticalKind::Ports),
            (&mut self.protocols, VerticalKind::Protocols),
        ] {
            for (&(src, dst), last, pair) in tracker.iter_mut() {
                if let Some(count) = pair.reporter.take_final() {
                    out.push(vertical_finding(
                        cfg, src, dst, kind, pair, last, count, None,
                    ));
                }
            }
        }
        for (&(src, proto, port), last, sweep) in self.horizontal.iter_mut() {
            if let Some(count) = sweep.reporter.take_final() {
                out.push(horizontal_finding(
                    cfg, src, proto, port, sweep, last, count, None,
                ));
            }
        }
    }

    fn stats(&self) -> DetectorStats {
        DetectorStats {
            tracked: self.vertical.len()
                + self.protocols.len()
                + self.horizontal.len()
                + self.udp_senders.len(),
            refused: self.vertical.refused + self.protocols.refused + self.horizontal.refused,
            findings: self.findings,
        }
    }
}
