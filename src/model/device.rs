//! Device values: a station of the local segment as the inventory knows it, stored and
//! served as is (the vendor and the names to show are derived from it when served).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::packet::MacAddr;

/// A station of the segment, by MAC address. Times are Unix seconds of packet time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    pub mac: MacAddr,
    pub first_seen: f64,
    pub last_seen: f64,
    /// Its local addresses, most recently seen last; bounded (`MAX_ADDRESSES`).
    pub addresses: Vec<DeviceAddress>,
    /// The names it gave itself, one per (name, source); bounded (`MAX_NAMES`).
    pub names: Vec<DeviceName>,
    /// DHCP option 55 as the client sent it, comma-separated (`1,15,3,6`).
    pub dhcp_fingerprint: Option<String>,
    /// DHCP option 60 (or DHCPv6 option 16).
    pub vendor_class: Option<String>,
    /// DHCP option 61, hex.
    pub client_id: Option<String>,
    /// DHCPv6 client DUID, hex.
    pub duid: Option<String>,
    /// It answered DHCP as a server.
    pub dhcp_server: bool,
    /// It sent IPv6 router advertisements.
    pub router: bool,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Flows it opened.
    pub flows: u64,
    /// Usage of the current (UTC) day of packet time.
    pub today: DayUsage,
    /// Set by an admin.
    pub label: Option<String>,
    pub known: bool,
    /// First seen after the inventory's learning period.
    pub arrived: bool,
}

/// Caps on a device's lists: a station on a busy segment keeps its recent addresses and
/// names, and a forged flood of ARP claims cannot grow one record.
pub const MAX_ADDRESSES: usize = 16;
pub const MAX_NAMES: usize = 8;

/// A local address of a device and when it used it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAddress {
    pub ip: IpAddr,
    pub first_seen: f64,
    pub last_seen: f64,
}

/// A name a device gave itself and where it was read: `dhcp` (option 12), `dhcp_fqdn`
/// (option 81), `dhcpv6` (client FQDN), `mdns`, `llmnr`, `nbns` or `netbios`; or the
/// NetBIOS workgroup or domain it registered (`nbns_group`), never shown as its name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceName {
    pub name: String,
    pub source: String,
    pub last_seen: f64,
}

/// Packets and bytes of one UTC day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayUsage {
    /// Days since the Unix epoch.
    pub day: i64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
}

/// One minute of packet time of one device: what it sent and received, and the flows it
/// opened, for the history rollups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceMinute {
    pub mac: MacAddr,
    /// Start of the minute, Unix seconds.
    pub start: i64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub flows: u64,
}

/// What the inventory keeps beside its devices: when it started learning (wall clock, Unix
/// seconds) and the DHCP server it learned, by server identifiers and MACs (one server may
/// answer for several subnets, and one identifier may arrive from a second MAC, as a
/// failover pair or a duplicating tap sends it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryState {
    pub learning_since: Option<f64>,
    pub dhcp_servers: Vec<std::net::Ipv4Addr>,
    pub dhcp_server_macs: Vec<MacAddr>,
}

impl Device {
    /// The name to show: the label, else a DHCP host name, else the most recent other name.
    pub fn display_name(&self) -> Option<&str> {
        if let Some(label) = self.label.as_deref().filter(|l| !l.is_empty()) {
            return Some(label);
        }
        let rank = |source: &str| match source {
            "dhcp" => 0,
            "dhcp_fqdn" | "dhcpv6" => 1,
            "mdns" => 2,
            "nbns" | "netbios" => 3,
            _ => 4,
        };
        self.names
            .iter()
            .filter(|n| n.source != "nbns_group")
            .min_by(|a, b| {
                rank(&a.source)
                    .cmp(&rank(&b.source))
                    .then(b.last_seen.total_cmp(&a.last_seen))
            })
            .map(|n| n.name.as_str())
    }
}
