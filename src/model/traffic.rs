//! Traffic values: a host's counters, a top talker, and one minute of traffic as the store
//! keeps it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Traffic of one host, both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
}

/// Hosts a minute snapshot names at most; the rest are summed in `hosts_other`. Twice what
/// the busiest rollup tier keeps a day (2,000), so the rollups see the same hosts, while a
/// spoofed flood's minute (65,536 hosts, 3.5 MB) costs 230 kB in flight to the store.
pub const MAX_SNAPSHOT_HOSTS: usize = 4096;

impl HostCounters {
    pub fn add(&mut self, other: &HostCounters) {
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.packets_sent += other.packets_sent;
        self.packets_received += other.packets_received;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
    pub fn packets(&self) -> u64 {
        self.packets_sent + self.packets_received
    }
}

/// One entry of `top_talkers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopTalker {
    pub ip: IpAddr,
    /// The best name known for the address (its flows' server name, else a DNS answer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<std::sync::Arc<str>>,
    /// The local station using the address (its label or name, else its MAC), when the
    /// device inventory knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub bytes: u64,
    pub packets: u64,
    #[serde(flatten)]
    pub detail: HostCounters,
}

/// One minute of packet time, as the store keeps it: what happened within that minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MinuteSnapshot {
    /// Start of the minute, Unix seconds.
    pub timestamp: i64,
    pub packets: u64,
    pub bytes: u64,
    pub protocol_counts: BTreeMap<String, u64>,
    /// The busiest hosts of the minute, by bytes.
    pub top_talkers: Vec<TopTalker>,
    /// Flows in the table at the end of the minute.
    pub active_sessions: u64,
    /// Every host of the minute with its traffic, and bytes per protocol: for the history
    /// rollups, not kept with the snapshot.
    #[serde(skip)]
    pub hosts: Vec<(IpAddr, HostCounters)>,
    /// The hosts past the busiest `MAX_SNAPSHOT_HOSTS`, summed (for the rollups' `other`).
    #[serde(skip)]
    pub hosts_other: HostCounters,
    #[serde(skip)]
    pub protocol_bytes: BTreeMap<String, u64>,
}
