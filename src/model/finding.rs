//! Detector values: the rules, severities and targets, the findings detectors report and
//! their counters.

use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::packet::{MacAddr, Timestamp, ip_proto};

use super::flow::protocol_name;

/// The rules, named by their published `alert_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    PortScan,
    BruteForce,
    SynFlood,
    DnsTunneling,
    TrafficSpike,
    /// A station of the segment not seen before (the device inventory's rule).
    NewDevice,
    /// An address claimed in ARP or neighbour advertisements by a MAC that is not its owner.
    ArpSpoofing,
    /// DHCP offers or acks from a server that is not the segment's.
    RogueDhcp,
    /// Traffic to or from an address, network, name or fingerprint on a threat list.
    ThreatIntel,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::PortScan,
        Rule::BruteForce,
        Rule::SynFlood,
        Rule::DnsTunneling,
        Rule::TrafficSpike,
        Rule::NewDevice,
        Rule::ArpSpoofing,
        Rule::RogueDhcp,
        Rule::ThreatIntel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::PortScan => "port_scan",
            Rule::BruteForce => "brute_force",
            Rule::SynFlood => "syn_flood",
            Rule::DnsTunneling => "dns_tunneling",
            Rule::TrafficSpike => "traffic_spike",
            Rule::NewDevice => "new_device",
            Rule::ArpSpoofing => "arp_spoofing",
            Rule::RogueDhcp => "rogue_dhcp",
            Rule::ThreatIntel => "threat_intel",
        }
    }
}

/// Published severities, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The published name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What an alert is about: part of its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Host(IpAddr),
    Service(IpAddr, u16),
    /// One port (or ICMP echo, port 0) across many hosts.
    Sweep {
        proto: u8,
        port: u16,
    },
    /// ARP requests for many addresses of the local segment.
    ArpSweep,
    /// The whole monitored link.
    Link,
    /// A station of the segment, by MAC address.
    Device(MacAddr),
    /// An entry of a threat list (an address, network, domain or JA4), as the list has it.
    Indicator(&'static str),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Target::Host(ip) => write!(f, "{ip}"),
            Target::Service(IpAddr::V6(ip), port) => write!(f, "[{ip}]:{port}"),
            Target::Service(ip, port) => write!(f, "{ip}:{port}"),
            Target::Sweep { proto, port } => match proto {
                ip_proto::ICMP | ip_proto::ICMPV6 => {
                    write!(f, "*:icmp-echo")
                }
                _ => write!(f, "*:{port}/{}", protocol_name(proto).to_lowercase()),
            },
            Target::ArpSweep => write!(f, "*:arp"),
            Target::Link => write!(f, "link"),
            Target::Device(mac) => write!(f, "{mac}"),
            Target::Indicator(entry) => f.write_str(entry),
        }
    }
}

/// One observation a detector reports: the alerts actor merges findings with the same
/// (rule, source, target) into one alert.
#[derive(Clone, Debug)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// `None` when the traffic comes from many (spoofed) sources.
    pub source: Option<IpAddr>,
    pub target: Target,
    /// Packet time of the observation.
    pub ts: Timestamp,
    pub description: String,
    /// Rule-specific, replaces the alert's evidence.
    pub evidence: serde_json::Value,
    /// Events (probes, attempts, SYNs, queries, seconds) since the key's previous finding.
    pub count: u64,
    pub community_id: Option<String>,
    /// When capture started the batch that triggered this finding (for alert latency).
    pub observed: Option<Instant>,
}

impl Finding {
    /// A finding that only adds to the count, keeping the alert's evidence: used when state
    /// expires, at which point the windows it would describe are empty.
    pub fn count_only(mut self) -> Finding {
        self.evidence = serde_json::Value::Null;
        self.description.clear();
        self
    }
}

/// Counters a detector reports about itself.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DetectorStats {
    /// Keys (sources, pairs, connections) currently tracked.
    pub tracked: usize,
    /// New keys not tracked because a state map was at its cap.
    pub refused: u64,
    pub findings: u64,
}
