//! The three rules only a device view can see: `new_device`, `arp_spoofing` and
//! `rogue_dhcp`. A plain struct fed the segment facts of each batch (after the inventory has
//! learned from them) and the inventory's arrivals; it reports `Finding`s like a detector,
//! keyed so that one episode is one alert.
//!
//! `arp_spoofing` reports a MAC that
//! - sends ARP replies nobody asked for (no request from the reply's target for that address
//!   in the last 10 s, and not a gratuitous announcement of its own address) while it also
//!   claims another address: a man in the middle tells each victim that the other's (or the
//!   gateway's) address is at its MAC, and has an address of its own;
//! - takes over an address (in ARP, or in an IPv6 neighbour advertisement) whose owner then
//!   claims it back within `conflict_secs`: both stations are alive and fighting over it.
//!   An address that moves to a new MAC and stays there (a NIC or VM failover, a new lease)
//!   is not a conflict.
//!
//! All state is bounded (`MAX_TRACKED` addresses, MACs and pending requests) and uses
//! packet time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::inventory::Inventory;
use super::{ArpSpoofingConfig, NewDeviceConfig, RogueDhcpConfig};
use crate::model::finding::{Finding, Rule, Severity, Target};
use crate::packet::{Lan, MacAddr, PacketBatch, Timestamp};

/// Addresses, MACs and pending ARP requests tracked, each.
const MAX_TRACKED: usize = 16_384;
/// How long an ARP request waits for its reply.
const REQUEST_WAIT_NS: i64 = 10_000_000_000;
/// Addresses remembered per claiming MAC.
const MAX_CLAIMS: usize = 16;

/// Who holds an address, and whom it took it from.
#[derive(Clone, Copy, Debug)]
struct Holder {
    mac: MacAddr,
    /// The previous holder and when the address moved (ns), for a claim back.
    took_from: Option<(MacAddr, i64)>,
}

/// What one MAC claimed.
#[derive(Clone, Debug, Default)]
struct Claims {
    addresses: Vec<IpAddr>,
    /// Addresses it claimed in unsolicited replies, and whom it told.
    unsolicited: Vec<(Ipv4Addr, MacAddr)>,
    replies: u64,
    /// The alert's (source, target) once reported: one episode per MAC.
    reported: Option<(Option<IpAddr>, IpAddr)>,
    last_report: i64,
}

/// Counters of the rules.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct RuleStats {
    pub new_device: u64,
    /// New stations not reported because more than `max_per_minute` arrived in a minute.
    pub new_device_suppressed: u64,
    pub arp_spoofing: u64,
    pub rogue_dhcp: u64,
    /// Addresses, MACs or requests not tracked because the maps were full.
    pub refused: u64,
}

/// The rules' settings, from `[devices]`.
#[derive(Clone, Debug, Default)]
pub struct RulesConfig {
    pub new_device: NewDeviceConfig,
    pub arp_spoofing: ArpSpoofingConfig,
    pub rogue_dhcp: RogueDhcpConfig,
    /// The segment's DHCP servers; empty: the first one seen.
    pub dhcp_servers: Vec<Ipv4Addr>,
}

/// The LAN rules.
pub struct LanRules {
    config: RulesConfig,
    holders: HashMap<IpAddr, Holder>,
    claims: HashMap<MacAddr, Claims>,
    /// (asker, address asked for) → when.
    requests: HashMap<(MacAddr, Ipv4Addr), i64>,
    /// Rogue servers reported (one episode each) and when last.
    rogue: HashMap<Ipv4Addr, i64>,
    /// New-device reports in the current minute: (minute, count).
    arrivals_minute: (i64, u32),
    pub stats: RuleStats,
}

impl LanRules {
    pub fn new(config: RulesConfig) -> Self {
        LanRules {
            config,
            holders: HashMap::new(),
            claims: HashMap::new(),
            requests: HashMap::new(),
            rogue: HashMap::new(),
            arrivals_minute: (i64::MIN, 0),
            stats: RuleStats::default(),
        }
    }

    /// Judges a batch's segment facts (after `inventory` learned from them) and the
    /// inventory's arrivals.
    pub fn check(
        &mut self,
        batch: &PacketBatch,
        inventory: &mut Inventory,
        out: &mut Vec<Finding>,
    ) {
        for fact in &batch.lan {
            let Some(p) = batch.packets.get(fact.packet as usize) else {
                continue;
            };
            match fact.fact {
                Lan::Arp {
                    op,
                    sender_mac,
                    sender_ip,
                    target_mac,
                    target_ip,
                } if self.config.arp_spoofing.enabled
                    && inventory.is_local(IpAddr::V4(sender_ip)) =>
                {
                    // Only the segment's addresses (`local_networks`, DHCP leases) are
                    // judged: a claim of any other is garbled or foreign, not a takeover.
                    self.arp(p.ts, op, sender_mac, sender_ip, target_mac, target_ip, out);
                }
                Lan::Ndp {
                    kind: 136,
                    target,
                    lladdr,
                    ..
                } if self.config.arp_spoofing.enabled && inventory.is_local(IpAddr::V6(target)) => {
                    let mac = lladdr.unwrap_or(p.src_mac);
                    if mac.is_station() {
                        self.claim(p.ts, mac, IpAddr::V6(target), out);
                    }
                }
                Lan::Dhcp(d) if self.config.rogue_dhcp.enabled && matches!(d.msg, 2 | 5) => {
                    let IpAddr::V4(src) = p.src else { continue };
                    let server = d.server_id.unwrap_or(src);
                    self.dhcp_server(p.ts, server, p.src_mac, d.chaddr, d.yiaddr, inventory, out);
                }
                _ => {}
            }
        }
        let arrivals = inventory.take_arrivals();
        if self.config.new_device.enabled {
            for mac in arrivals {
                self.new_device(mac, inventory, out);
            }
        }
        if self.requests.len() > MAX_TRACKED / 2
            && let Some(now) = batch.packets.last().map(|p| p.ts.0)
        {
            self.requests.retain(|_, t| now - *t < REQUEST_WAIT_NS);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn arp(
        &mut self,
        ts: Timestamp,
        op: u16,
        sender_mac: MacAddr,
        sender_ip: Ipv4Addr,
        target_mac: MacAddr,
        target_ip: Ipv4Addr,
        out: &mut Vec<Finding>,
    ) {
        // A probe (sender 0.0.0.0) claims nothing.
        if sender_ip.is_unspecified() || !sender_mac.is_station() {
            return;
        }
        let allowed = &self.config.arp_spoofing;
        if allowed.allow_macs.contains(&sender_mac)
            || allowed
                .allow
                .allows(IpAddr::V4(sender_ip), IpAddr::V4(target_ip))
        {
            return;
        }
        match op {
            1 => {
                if self.requests.len() < MAX_TRACKED {
                    self.requests.insert((sender_mac, target_ip), ts.0);
                } else {
                    self.stats.refused += 1;
                }
            }
            2 => {
                let asked = self
                    .requests
                    .remove(&(target_mac, sender_ip))
                    .is_some_and(|t| ts.0 - t < REQUEST_WAIT_NS);
                // The reply's target fields are the asker's own: the true holder of its
                // address, as far as this reply goes.
                if target_mac.is_station()
                    && !target_ip.is_unspecified()
                    && self.holders.len() < MAX_TRACKED
                {
                    self.holders.entry(IpAddr::V4(target_ip)).or_insert(Holder {
                        mac: target_mac,
                        took_from: None,
                    });
                }
                let room = self.claims.len() < MAX_TRACKED || self.claims.contains_key(&sender_mac);
                if !asked && sender_ip != target_ip && room {
                    let claims = self.claims.entry(sender_mac).or_default();
                    claims.replies += 1;
                    if claims.unsolicited.len() < MAX_CLAIMS
                        && !claims.unsolicited.iter().any(|(a, _)| *a == sender_ip)
                    {
                        claims.unsolicited.push((sender_ip, target_mac));
                    }
                }
            }
            _ => {}
        }
        self.claim(ts, sender_mac, IpAddr::V4(sender_ip), out);
    }

    /// `mac` says `addr` is at it.
    fn claim(&mut self, ts: Timestamp, mac: MacAddr, addr: IpAddr, out: &mut Vec<Finding>) {
        if self.claims.len() >= MAX_TRACKED && !self.claims.contains_key(&mac) {
            self.stats.refused += 1;
            return;
        }
        let claims = self.claims.entry(mac).or_default();
        if claims.addresses.len() < MAX_CLAIMS && !claims.addresses.contains(&addr) {
            claims.addresses.push(addr);
        }
        let conflict_ns = (self.config.arp_spoofing.conflict_secs as i64) * 1_000_000_000;
        let mut fight = None;
        let room = self.holders.len() < MAX_TRACKED;
        match self.holders.get_mut(&addr) {
            Some(h) if h.mac != mac => {
                // Claimed back from the station that took it, soon after: both are alive.
                if let Some((previous, when)) = h.took_from
                    && previous == mac
                    && ts.0 - when < conflict_ns
                {
                    fight = Some(h.mac);
                }
                h.took_from = Some((h.mac, ts.0));
                h.mac = mac;
            }
            Some(_) => {}
            None if room => {
                self.holders.insert(
                    addr,
                    Holder {
                        mac,
                        took_from: None,
                    },
                );
            }
            None => self.stats.refused += 1,
        }
        if let Some(intruder) = fight {
            // The station that took the address is the intruder; `mac` is its owner.
            self.report_spoofing(ts, intruder, addr, Some(mac), out);
        }
        let claims = &self.claims[&mac];
        if claims.addresses.len() >= 2
            && let Some(&(spoofed, _)) = claims.unsolicited.first()
        {
            let owner = self
                .holders
                .get(&IpAddr::V4(spoofed))
                .and_then(|h| h.took_from.map(|(m, _)| m).filter(|m| *m != mac));
            self.report_spoofing(ts, mac, IpAddr::V4(spoofed), owner, out);
        }
    }

    /// One `arp_spoofing` finding for `mac` taking `addr` (its first, for the episode's
    /// key), at most once a second.
    fn report_spoofing(
        &mut self,
        ts: Timestamp,
        mac: MacAddr,
        addr: IpAddr,
        owner: Option<MacAddr>,
        out: &mut Vec<Finding>,
    ) {
        let Some(claims) = self.claims.get_mut(&mac) else {
            return;
        };
        if claims.reported.is_some() && ts.0 - claims.last_report < 1_000_000_000 {
            return;
        }
        // The claimant's own address: one it claimed that it did not spoof.
        let own =
            claims.addresses.iter().copied().find(|a| {
                *a != addr && !claims.unsolicited.iter().any(|(u, _)| IpAddr::V4(*u) == *a)
            });
        let (source, target) = *claims.reported.get_or_insert((own, addr));
        claims.last_report = ts.0;
        let told: Vec<String> = claims
            .unsolicited
            .iter()
            .map(|(_, t)| t.to_string())
            .filter(|t| t != "00:00:00:00:00:00")
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut macs = vec![mac.to_string()];
        if let Some(o) = owner {
            macs.push(o.to_string());
        }
        for t in &told {
            if !macs.contains(t) {
                macs.push(t.clone());
            }
        }
        let claimed: Vec<String> = claims.addresses.iter().map(|a| a.to_string()).collect();
        let description = match owner {
            Some(o) => format!("{mac} claims {target}, which {o} also answers for"),
            None => format!(
                "{mac} claims {target} in ARP replies nobody asked for, and also {}",
                claimed
                    .iter()
                    .filter(|a| **a != target.to_string())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.stats.arp_spoofing += 1;
        out.push(Finding {
            rule: Rule::ArpSpoofing,
            severity: Severity::High,
            source,
            target: Target::Host(target),
            ts,
            description,
            evidence: json!({
                "address": target.to_string(),
                "mac": mac.to_string(),
                "owner_mac": owner.map(|o| o.to_string()),
                "macs": macs,
                "told": told,
                "addresses_claimed": claimed,
                "unsolicited_replies": claims.replies,
            }),
            count: 1,
            community_id: None,
            observed: None,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn dhcp_server(
        &mut self,
        ts: Timestamp,
        server: Ipv4Addr,
        server_mac: MacAddr,
        client: MacAddr,
        offered: Ipv4Addr,
        inventory: &mut Inventory,
        out: &mut Vec<Finding>,
    ) {
        if self
            .config
            .rogue_dhcp
            .allow
            .allows(IpAddr::V4(server), IpAddr::V4(offered))
        {
            return;
        }
        let known = if self.config.dhcp_servers.is_empty() {
            if inventory.learned_dhcp_server(server, server_mac) {
                return;
            }
            inventory.learned_dhcp_servers().to_vec()
        } else {
            if self.config.dhcp_servers.contains(&server) {
                return;
            }
            self.config.dhcp_servers.clone()
        };
        if let Some(last) = self.rogue.get(&server)
            && ts.0 - last < 1_000_000_000
        {
            return;
        }
        if self.rogue.len() >= MAX_TRACKED && !self.rogue.contains_key(&server) {
            self.stats.refused += 1;
            return;
        }
        self.rogue.insert(server, ts.0);
        self.stats.rogue_dhcp += 1;
        let known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
        out.push(Finding {
            rule: Rule::RogueDhcp,
            severity: Severity::High,
            source: Some(IpAddr::V4(server)),
            target: Target::Link,
            ts,
            description: format!(
                "DHCP server {server} ({server_mac}) answers clients; the segment's is {}",
                known.join(", ")
            ),
            evidence: json!({
                "server": server.to_string(),
                "server_mac": server_mac.to_string(),
                "known_servers": known,
                "client_mac": client.to_string(),
                "offered": (!offered.is_unspecified()).then(|| offered.to_string()),
            }),
            count: 1,
            community_id: None,
            observed: None,
        });
    }

    fn new_device(&mut self, mac: MacAddr, inventory: &Inventory, out: &mut Vec<Finding>) {
        if self.config.new_device.allow_macs.contains(&mac) {
            return;
        }
        let Some(d) = inventory.get(mac) else { return };
        let ts = Timestamp::from_secs_f64(d.first_seen);
        let minute = ts.secs().div_euclid(60);
        if self.arrivals_minute.0 != minute {
            self.arrivals_minute = (minute, 0);
        }
        if self.arrivals_minute.1 >= self.config.new_device.max_per_minute {
            self.stats.new_device_suppressed += 1;
            return;
        }
        self.arrivals_minute.1 += 1;
        self.stats.new_device += 1;
        let vendor = super::vendor::vendor(mac);
        let addresses: Vec<String> = d.addresses.iter().map(|a| a.ip.to_string()).collect();
        let names: Vec<_> = d
            .names
            .iter()
            .map(|n| json!({"name": n.name, "source": n.source}))
            .collect();
        let shown = d
            .display_name()
            .map(str::to_string)
            .or_else(|| vendor.map(|v| format!("a {v} device")))
            .unwrap_or_else(|| "an unknown device".into());
        out.push(Finding {
            rule: Rule::NewDevice,
            severity: Severity::Low,
            source: d.addresses.first().map(|a| a.ip),
            target: Target::Device(mac),
            ts,
            description: format!("new device {mac} on the network: {shown}"),
            evidence: json!({
                "mac": mac.to_string(),
                "vendor": vendor,
                "randomized": mac.is_local_admin(),
                "addresses": addresses,
                "names": names,
                "dhcp_fingerprint": d.dhcp_fingerprint,
                "vendor_class": d.vendor_class,
            }),
            count: 1,
            community_id: None,
            observed: None,
        });
    }
}
