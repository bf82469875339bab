//! Devices: the stations of the local segment, learned passively (`inventory`), their
//! vendors from the IEEE registries compiled in (`vendor`), and the LAN rules that watch
//! them (`rules`: new device, ARP spoofing, rogue DHCP). The decoder reads the segment facts
//! (ARP, NDP, DHCP, DHCPv6, mDNS, LLMNR, NetBIOS) into each batch; the devices actor of a
//! pipeline feeds its batches to the one shared `DeviceBook`, which outlives pipelines and
//! is what the API reads and the store keeps.

pub mod actor;
pub mod inventory;
pub mod rules;
pub mod vendor;
pub mod view;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::detect::AllowList;
use crate::packet::MacAddr;
use inventory::{Inventory, InventoryLimits};
use rules::{LanRules, RulesConfig};

/// The `[devices]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// Keep an inventory of the segment's stations (and run its rules).
    pub enabled: bool,
    /// Addresses that belong to the segment (a station's addresses outside them, such as
    /// the internet hosts a router forwards for, are not its own). Networks that DHCP
    /// leases give are added as they are seen.
    pub local_networks: Vec<IpNet>,
    /// Stations kept; past this the longest unseen go.
    pub max_devices: usize,
    /// Seconds after the first packet the inventory ever saw during which stations are
    /// learned without `new_device` alerts (a fresh install sees the whole network as new).
    pub learning_secs: u64,
    /// The segment's DHCP servers (server identifiers); empty: the first one seen.
    pub dhcp_servers: Vec<Ipv4Addr>,
    pub new_device: NewDeviceConfig,
    pub arp_spoofing: ArpSpoofingConfig,
    pub rogue_dhcp: RogueDhcpConfig,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        let nets = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "fc00::/7",
            "fe80::/10",
        ];
        DevicesConfig {
            enabled: true,
            local_networks: nets.iter().map(|n| n.parse().expect("a network")).collect(),
            max_devices: 4096,
            learning_secs: 86_400,
            dhcp_servers: Vec::new(),
            new_device: NewDeviceConfig::default(),
            arp_spoofing: ArpSpoofingConfig::default(),
            rogue_dhcp: RogueDhcpConfig::default(),
        }
    }
}

impl DevicesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.max_devices) {
            return Err("devices.max_devices must be between 1 and 1000000".into());
        }
        if self.new_device.max_per_minute == 0 {
            return Err("devices.new_device.max_per_minute must be at least 1".into());
        }
        if self.arp_spoofing.conflict_secs == 0 {
            return Err("devices.arp_spoofing.conflict_secs must be at least 1".into());
        }
        Ok(())
    }

    fn rules(&self) -> RulesConfig {
        RulesConfig {
            new_device: self.new_device.clone(),
            arp_spoofing: self.arp_spoofing.clone(),
            rogue_dhcp: self.rogue_dhcp.clone(),
            dhcp_servers: self.dhcp_servers.clone(),
        }
    }
}

/// `[devices.new_device]`: a station not seen before, after the learning period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewDeviceConfig {
    pub enabled: bool,
    /// Stations never reported.
    pub allow_macs: Vec<MacAddr>,
    /// Alerts per minute at most; a flood of forged MACs is counted past that.
    pub max_per_minute: u32,
}

impl Default for NewDeviceConfig {
    fn default() -> Self {
        NewDeviceConfig {
            enabled: true,
            allow_macs: Vec::new(),
            max_per_minute: 20,
        }
    }
}

/// `[devices.arp_spoofing]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArpSpoofingConfig {
    pub enabled: bool,
    /// ARP from these sender addresses (`sources`) or for these targets is ignored.
    pub allow: AllowList,
    /// MACs allowed to answer for others (a proxy-ARP router, a failover pair).
    pub allow_macs: Vec<MacAddr>,
    /// An address claimed back by its previous holder within this many seconds of moving
    /// is a conflict between two live stations.
    pub conflict_secs: u64,
}

impl Default for ArpSpoofingConfig {
    fn default() -> Self {
        ArpSpoofingConfig {
            enabled: true,
            allow: AllowList::default(),
            allow_macs: Vec::new(),
            conflict_secs: 60,
        }
    }
}

/// `[devices.rogue_dhcp]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RogueDhcpConfig {
    pub enabled: bool,
    /// Servers (`sources`) or offered addresses (`targets`) never reported.
    pub allow: AllowList,
}

impl Default for RogueDhcpConfig {
    fn default() -> Self {
        RogueDhcpConfig {
            enabled: true,
            allow: AllowList::default(),
        }
    }
}

/// The inventory and its rules, together behind one lock.
pub struct DeviceBook {
    pub inventory: Inventory,
    pub rules: LanRules,
}

/// The one device book of a process, shared by every pipeline's devices actor and the API.
#[derive(Clone)]
pub struct SharedDevices(Arc<Mutex<DeviceBook>>);

impl SharedDevices {
    pub fn new(config: &DevicesConfig) -> Self {
        let inventory = Inventory::new(InventoryLimits {
            max_devices: config.max_devices,
            local_networks: config.local_networks.clone(),
            learning_secs: config.learning_secs,
        });
        SharedDevices(Arc::new(Mutex::new(DeviceBook {
            inventory,
            rules: LanRules::new(config.rules()),
        })))
    }

    /// The shown name (label, DHCP host name, …) of the station that last held `ip`, if it
    /// has one.
    pub fn name_of(&self, ip: std::net::IpAddr) -> Option<String> {
        let book = self.lock();
        book.inventory
            .devices()
            .filter_map(|d| {
                let at = d.addresses.iter().find(|a| a.ip == ip)?;
                Some((at.last_seen, d.display_name()?))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, name)| name.to_string())
    }

    /// The book, even if a thread panicked while holding it (its state is counters and
    /// lists that stay consistent between statements).
    pub fn lock(&self) -> MutexGuard<'_, DeviceBook> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SharedDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDevices")
    }
}

impl PartialEq for SharedDevices {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
