//! The inventory: every station of the segment by MAC address, learned passively from the
//! frames it sends (their source MAC and, for local addresses, source IP), from ARP and
//! neighbour discovery, from DHCP and DHCPv6, and from the names it gives itself over mDNS,
//! LLMNR and NetBIOS.
//!
//! Bounded: at most `max_devices` stations (the longest unseen, unlabelled ones go first, a
//! sixteenth at a time so that a flood of forged MACs costs O(1) per frame), and each
//! station's lists are capped (`model::device`). The per-packet work is two lookups in a
//! direct-mapped cache that also remembers absent MACs (a link's frames go between a few
//! stations) and a few counter updates; the rest (addresses, last seen) once a second, and
//! the protocol facts are rare.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use rustc_hash::FxHasher;

use crate::model::device::{
    DayUsage, Device, DeviceAddress, DeviceMinute, DeviceName, InventoryState, MAX_ADDRESSES,
    MAX_NAMES,
};
use crate::model::flow::FlowMark;
use crate::packet::{Lan, LanFact, MacAddr, NameRef, PacketBatch, PacketMeta, Timestamp};

/// Networks learned from DHCP leases, at most.
const MAX_LEARNED_NETWORKS: usize = 16;
/// Closed device minutes waiting for `take_minutes` at most (56 bytes each). Live, minutes
/// close once a minute and are taken every few seconds; a replay at full speed closes
/// minutes of packet time far faster, and past this they are dropped and counted rather
/// than held.
const MAX_PENDING_MINUTES: usize = 65_536;

/// The local networks, in a form that costs a mask and a compare per network.
#[derive(Clone, Debug, Default)]
struct LocalNetworks {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl LocalNetworks {
    fn new(nets: &[IpNet]) -> Self {
        let mut local = LocalNetworks::default();
        for net in nets {
            local.add(*net);
        }
        local
    }

    fn add(&mut self, net: IpNet) {
        match net {
            IpNet::V4(n) => {
                let mask = n.netmask().to_bits();
                self.v4.push((n.network().to_bits() & mask, mask));
            }
            IpNet::V6(n) => {
                let mask = n.netmask().to_bits();
                self.v6.push((n.network().to_bits() & mask, mask));
            }
        }
    }

    #[inline]
    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = a.to_bits();
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = a.to_bits();
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }
}

/// One station and what the inventory keeps about it besides the stored record.
#[derive(Clone, Debug)]
struct Entry {
    device: Device,
    /// Counters or facts changed since the last `take_changes`.
    dirty: bool,
    /// Facts (addresses, names, DHCP, label) changed since the last `take_changes`.
    changed: bool,
    /// The last source address looked at, and until when (ns) it need not be again: an
    /// address and the last-seen time are updated once a second, not per frame.
    recent: Option<IpAddr>,
    recheck: i64,
    /// When the device's current day of usage ends (ns).
    day_ends: i64,
    /// Its counters when the current minute began, and whether it sent or received since.
    minute_base: [u64; 5],
    in_minute: bool,
}

impl Entry {
    fn new(device: Device) -> Entry {
        Entry {
            device,
            dirty: false,
            changed: false,
            recent: None,
            recheck: i64::MIN,
            day_ends: i64::MIN,
            minute_base: [0; 5],
            in_minute: false,
        }
    }

    fn counters(&self) -> [u64; 5] {
        let d = &self.device;
        [
            d.packets_sent,
            d.bytes_sent,
            d.packets_received,
            d.bytes_received,
            d.flows,
        ]
    }

    /// Starts the usage of `ts`'s UTC day if the stored one is another day.
    fn new_day(&mut self, ts: Timestamp) {
        const DAY_NS: i64 = 86_400 * Timestamp::NANOS_PER_SEC;
        let day = ts.0.div_euclid(DAY_NS);
        if self.device.today.day != day {
            self.device.today = DayUsage {
                day,
                ..DayUsage::default()
            };
        }
        self.day_ends = (day + 1).saturating_mul(DAY_NS);
    }
}

/// Slots of the direct-mapped lookup cache, and the mark of a MAC known to be absent.
const CACHE_SLOTS: usize = 256;
const ABSENT: u32 = u32::MAX;

/// Whether the MAC `key` (`MacAddr::to_u64`) is a station's: not group, not all zeros.
#[inline]
fn is_station(key: u64) -> bool {
    key & (1 << 40) == 0 && key != 0
}

#[inline]
fn cache_slot(key: u64) -> usize {
    // The low bytes of a MAC vary most between stations of one vendor.
    ((key ^ (key >> 24)) as usize) & (CACHE_SLOTS - 1)
}

/// What changed since the last call: the records to store, the MACs whose facts changed
/// (for device events), the MACs evicted, and the inventory's own state.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub devices: Vec<Device>,
    pub changed: Vec<MacAddr>,
    pub removed: Vec<MacAddr>,
    pub state: InventoryState,
}

/// The inventory's settings.
#[derive(Clone, Debug)]
pub struct InventoryLimits {
    pub max_devices: usize,
    pub local_networks: Vec<IpNet>,
    pub learning_secs: u64,
}

/// The stations of the segment.
pub struct Inventory {
    limits: InventoryLimits,
    local: LocalNetworks,
    learned: Vec<IpNet>,
    entries: Vec<Entry>,
    index: HashMap<u64, u32, BuildHasherDefault<FxHasher>>,
    /// Which station (MAC as integer) used each address last: what a name's address is
    /// checked against. At most `MAX_ADDRESSES` per station.
    holders: HashMap<IpAddr, u64, BuildHasherDefault<FxHasher>>,
    /// Recent lookups, direct-mapped by MAC: (MAC as integer + 1, index or `ABSENT`); a key
    /// of 0 is an empty slot. Kept right as stations come and go.
    cache: Box<[(u64, u32); CACHE_SLOTS]>,
    state: InventoryState,
    /// Stations first seen after the learning period, for the `new_device` rule.
    arrivals: Vec<MacAddr>,
    removed: Vec<MacAddr>,
    /// Latest packet time seen (ns).
    clock: i64,
    /// The minute of packet time being counted (Unix seconds), and the minutes closed since
    /// the last `take_minutes`.
    minute: Option<i64>,
    minutes: Vec<DeviceMinute>,
    /// Closed minutes left out because `MAX_PENDING_MINUTES` were already waiting.
    pub minutes_dropped: u64,
    /// Stations evicted to stay under `max_devices`.
    pub evicted: u64,
    /// The wall clock, Unix seconds (tests set their own).
    wall: fn() -> f64,
}

fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Inventory {
    pub fn new(limits: InventoryLimits) -> Self {
        Inventory {
            local: LocalNetworks::new(&limits.local_networks),
            limits,
            learned: Vec::new(),
            entries: Vec::new(),
            index: HashMap::default(),
            holders: HashMap::default(),
            cache: Box::new([(0, 0); CACHE_SLOTS]),
            state: InventoryState::default(),
            arrivals: Vec::new(),
            removed: Vec::new(),
            clock: i64::MIN,
            minute: None,
            minutes: Vec::new(),
            minutes_dropped: 0,
            evicted: 0,
            wall: wall_clock,
        }
    }

    /// The same with its own wall clock (for tests of the learning period).
    pub fn with_wall_clock(mut self, wall: fn() -> f64) -> Self {
        self.wall = wall;
        self
    }

    /// Takes back what the store kept: the devices (none of which is then new) and the
    /// learning state.
    pub fn restore(&mut self, devices: Vec<Device>, state: InventoryState) {
        for device in devices.into_iter().take(self.limits.max_devices) {
            if self.index.contains_key(&device.mac.to_u64()) {
                continue;
            }
            self.index
                .insert(device.mac.to_u64(), self.entries.len() as u32);
            for a in &device.addresses {
                self.holders.insert(a.ip, device.mac.to_u64());
            }
            let mut entry = Entry::new(device);
            entry.minute_base = entry.counters();
            self.entries.push(entry);
        }
        self.state = state;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, mac: MacAddr) -> Option<&Device> {
        let i = *self.index.get(&mac.to_u64())?;
        Some(&self.entries[i as usize].device)
    }

    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.entries.iter().map(|e| &e.device)
    }

    pub fn state(&self) -> &InventoryState {
        &self.state
    }

    /// Whether a DHCP server (identifier, MAC) is the segment's one, learning the first
    /// seen as it: kept with the inventory so that a restart does not take a rogue server
    /// for the segment's. A server is the learned one by either its identifier or its MAC
    /// (never by the all-zero MAC).
    pub fn learned_dhcp_server(&mut self, id: Ipv4Addr, mac: MacAddr) -> bool {
        let state = &mut self.state;
        if state.dhcp_servers.is_empty() {
            state.dhcp_servers.push(id);
            if mac.is_station() {
                state.dhcp_server_macs.push(mac);
            }
            return true;
        }
        let by_id = state.dhcp_servers.contains(&id);
        let by_mac = mac.is_station() && state.dhcp_server_macs.contains(&mac);
        // The same server seen under another identifier or MAC: remember it (bounded).
        if by_id && mac.is_station() && !by_mac && state.dhcp_server_macs.len() < 8 {
            state.dhcp_server_macs.push(mac);
        }
        if by_mac && !by_id && state.dhcp_servers.len() < 8 {
            state.dhcp_servers.push(id);
        }
        by_id || by_mac
    }

    /// The DHCP servers learned: identifiers.
    pub fn learned_dhcp_servers(&self) -> &[Ipv4Addr] {
        &self.state.dhcp_servers
    }

    /// Whether `ip` is on the segment: in `local_networks` or a network a DHCP lease gave.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.local.contains(ip)
    }

    /// Whether the learning period lasts: it starts (on the wall clock) when the inventory
    /// first saw a station, on the first start of the appliance, and is kept with it.
    pub fn learning(&self) -> bool {
        self.learning_end().is_none_or(|end| (self.wall)() < end)
    }

    /// When the learning period ends, Unix seconds of the wall clock; `None` before the
    /// first station.
    pub fn learning_end(&self) -> Option<f64> {
        self.state
            .learning_since
            .map(|since| since + self.limits.learning_secs as f64)
    }

    /// The newest packet time seen, Unix seconds (before any packet, the latest a stored
    /// device was seen).
    pub fn clock_secs(&self) -> f64 {
        if self.clock == i64::MIN {
            self.devices().map(|d| d.last_seen).fold(0.0, f64::max)
        } else {
            Timestamp(self.clock).as_secs_f64()
        }
    }

    /// Ends the minute being counted: each device that sent or received in it gets its
    /// usage of the minute (for `take_minutes`).
    pub fn close_minute(&mut self) {
        let Some(start) = self.minute.take() else {
            return;
        };
        for e in &mut self.entries {
            if !e.in_minute {
                continue;
            }
            let now = e.counters();
            let d: [u64; 5] = std::array::from_fn(|i| now[i].saturating_sub(e.minute_base[i]));
            e.minute_base = now;
            e.in_minute = false;
            if self.minutes.len() >= MAX_PENDING_MINUTES {
                self.minutes_dropped += 1;
                continue;
            }
            self.minutes.push(DeviceMinute {
                mac: e.device.mac,
                start,
                packets_sent: d[0],
                bytes_sent: d[1],
                packets_received: d[2],
                bytes_received: d[3],
                flows: d[4],
            });
        }
    }

    /// The devices' minutes closed since the last call.
    pub fn take_minutes(&mut self) -> Vec<DeviceMinute> {
        std::mem::take(&mut self.minutes)
    }

    /// Stations first seen after the learning period since the last call.
    pub fn take_arrivals(&mut self) -> Vec<MacAddr> {
        std::mem::take(&mut self.arrivals)
    }

    /// What to store and announce since the last call.
    pub fn take_changes(&mut self) -> Changes {
        let mut changes = Changes {
            removed: std::mem::take(&mut self.removed),
            state: self.state.clone(),
            ..Changes::default()
        };
        for e in &mut self.entries {
            if e.dirty {
                changes.devices.push(e.device.clone());
                e.dirty = false;
            }
            if e.changed {
                changes.changed.push(e.device.mac);
                e.changed = false;
            }
        }
        changes
    }

    /// Sets an admin's label (an empty one clears it) and "known" mark; `None` when the
    /// station is not in the inventory.
    pub fn annotate(
        &mut self,
        mac: MacAddr,
        label: Option<Option<String>>,
        known: Option<bool>,
    ) -> Option<Device> {
        let i = *self.index.get(&mac.to_u64())? as usize;
        let e = &mut self.entries[i];
        if let Some(label) = label {
            e.device.label = label.filter(|l| !l.is_empty());
        }
        if let Some(known) = known {
            e.device.known = known;
        }
        e.dirty = true;
        e.changed = true;
        Some(e.device.clone())
    }

    /// Counts a batch's frames to their stations and learns from its segment facts. A batch
    /// is counted in the minute of its first frame (a batch spans milliseconds).
    pub fn observe(&mut self, batch: &PacketBatch, marks: &[FlowMark]) {
        if let Some(first) = batch.packets.first() {
            let minute = first.ts.secs().div_euclid(60) * 60;
            if self.minute.is_some_and(|m| m != minute) {
                self.close_minute();
            }
            self.minute = Some(minute);
        }
        for (i, p) in batch.packets.iter().enumerate() {
            self.clock = self.clock.max(p.ts.0);
            let src = p.src_mac.to_u64();
            if is_station(src) {
                let at = match self.lookup(src) {
                    Some(at) => Some(at),
                    None => self.station(p.src_mac, p.ts),
                };
                if let Some(at) = at {
                    let opens = marks.get(i).is_some_and(|m| m.has(FlowMark::OPENS));
                    self.sent(at, p, opens);
                    // A host's own tunnel (Teredo, 6in4): its outer address is its own too.
                    if let Some(t) = batch.tunnel(p)
                        && t.carrier.src_mac == p.src_mac
                        && self.local.contains(t.carrier.src)
                    {
                        self.touch_address(at, t.carrier.src, p.ts);
                    }
                }
            }
            let dst = p.dst_mac.to_u64();
            if is_station(dst)
                && let Some(at) = self.lookup(dst)
            {
                let entry = &mut self.entries[at];
                if p.ts.0 >= entry.day_ends {
                    entry.new_day(p.ts);
                }
                let d = &mut entry.device;
                d.today.packets_received += 1;
                d.today.bytes_received += u64::from(p.wire_len);
                d.packets_received += 1;
                d.bytes_received += u64::from(p.wire_len);
                entry.dirty = true;
                entry.in_minute = true;
            }
        }
        for (n, fact) in batch.lan.iter().enumerate() {
            let Some(p) = batch.packets.get(fact.packet as usize) else {
                continue;
            };
            self.learn(fact, &batch.lan[..n], batch, p);
        }
    }

    /// Counts a frame `p` sent by station `at`: counters per frame; the rest (its last-seen
    /// time, the address it used) once a second, or when the address changes.
    #[inline]
    fn sent(&mut self, at: usize, p: &PacketMeta, opens: bool) {
        let entry = &mut self.entries[at];
        if p.ts.0 >= entry.day_ends {
            entry.new_day(p.ts);
        }
        let d = &mut entry.device;
        d.today.packets_sent += 1;
        d.today.bytes_sent += u64::from(p.wire_len);
        d.packets_sent += 1;
        d.bytes_sent += u64::from(p.wire_len);
        d.flows += u64::from(opens);
        entry.dirty = true;
        entry.in_minute = true;
        if p.ts.0 < entry.recheck && entry.recent == Some(p.src) {
            return;
        }
        entry.recheck = p.ts.0.saturating_add(Timestamp::NANOS_PER_SEC);
        entry.recent = Some(p.src);
        entry.device.last_seen = entry.device.last_seen.max(p.ts.as_secs_f64());
        if p.is_ip() && self.local.contains(p.src) {
            self.touch_address(at, p.src, p.ts);
        }
    }

    /// The index of `mac`, if it is in the inventory.
    #[inline]
    fn find(&mut self, mac: MacAddr) -> Option<usize> {
        self.lookup(mac.to_u64())
    }

    /// The index of the MAC `key` (`MacAddr::to_u64`), if it is in the inventory: from the
    /// lookup cache, else the map.
    #[inline]
    fn lookup(&mut self, key: u64) -> Option<usize> {
        let slot = cache_slot(key);
        let (cached, at) = self.cache[slot];
        if cached == key + 1 {
            return (at != ABSENT).then_some(at as usize);
        }
        let at = self.index.get(&key).copied();
        self.cache[slot] = (key + 1, at.unwrap_or(ABSENT));
        at.map(|i| i as usize)
    }

    /// The index of `mac`, added (and counted as an arrival after the learning period) if
    /// new. `None` only for a MAC that is not a station's.
    fn station(&mut self, mac: MacAddr, ts: Timestamp) -> Option<usize> {
        if !mac.is_station() {
            return None;
        }
        if let Some(i) = self.find(mac) {
            return Some(i);
        }
        if self.entries.len() >= self.limits.max_devices.max(1) {
            self.evict();
        }
        let now = ts.as_secs_f64();
        // Learning goes by the wall clock, not packet time: a capture that spans days (or a
        // merge of captures years apart) is one look at the network, not days of it.
        let wall = (self.wall)();
        let since = *self.state.learning_since.get_or_insert(wall);
        let arrived = wall >= since + self.limits.learning_secs as f64;
        if arrived {
            self.arrivals.push(mac);
        }
        let i = self.entries.len();
        self.index.insert(mac.to_u64(), i as u32);
        self.cache[cache_slot(mac.to_u64())] = (mac.to_u64() + 1, i as u32);
        let mut entry = Entry::new(Device {
            mac,
            first_seen: now,
            last_seen: now,
            arrived,
            ..Device::default()
        });
        entry.new_day(ts);
        entry.dirty = true;
        entry.changed = true;
        self.entries.push(entry);
        Some(i)
    }

    /// Drops the longest-unseen sixteenth of the stations, unlabelled and unknown ones first.
    fn evict(&mut self) {
        let n = self.entries.len();
        let drop = (n / 16).max(1);
        let key = |e: &Entry| {
            let kept = e.device.known || e.device.label.is_some();
            (kept, e.device.last_seen)
        };
        self.entries.select_nth_unstable_by(drop - 1, |a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        });
        for e in self.entries.drain(..drop) {
            self.removed.push(e.device.mac);
            for a in &e.device.addresses {
                if self.holders.get(&a.ip) == Some(&e.device.mac.to_u64()) {
                    self.holders.remove(&a.ip);
                }
            }
        }
        self.evicted += drop as u64;
        self.removed.truncate(self.limits.max_devices);
        self.index.clear();
        for (i, e) in self.entries.iter().enumerate() {
            self.index.insert(e.device.mac.to_u64(), i as u32);
        }
        self.cache.fill((0, 0));
    }

    fn touch_address(&mut self, at: usize, ip: IpAddr, ts: Timestamp) {
        if ip.is_unspecified() {
            return;
        }
        let entry = &mut self.entries[at];
        let mac = entry.device.mac.to_u64();
        self.holders.insert(ip, mac);
        let now = ts.as_secs_f64();
        let list = &mut entry.device.addresses;
        if let Some(a) = list.iter_mut().find(|a| a.ip == ip) {
            a.last_seen = a.last_seen.max(now);
            return;
        }
        if let Some(old) = make_room(list, MAX_ADDRESSES, |a| a.last_seen)
            && self.holders.get(&old.ip) == Some(&mac)
        {
            self.holders.remove(&old.ip);
        }
        list.push(DeviceAddress {
            ip,
            first_seen: now,
            last_seen: now,
        });
        entry.changed = true;
        entry.dirty = true;
    }

    fn add_name(&mut self, at: usize, name: &[u8], source: &str, ts: Timestamp) {
        let name = String::from_utf8_lossy(name);
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let now = ts.as_secs_f64();
        let entry = &mut self.entries[at];
        let list = &mut entry.device.names;
        if let Some(n) = list
            .iter_mut()
            .find(|n| n.name == name && n.source == source)
        {
            n.last_seen = n.last_seen.max(now);
            return;
        }
        make_room(list, MAX_NAMES, |n| n.last_seen);
        list.push(DeviceName {
            name: name.to_string(),
            source: source.to_string(),
            last_seen: now,
        });
        entry.changed = true;
        entry.dirty = true;
    }

    /// Sets a text fact (vendor class, fingerprint, ids) when it differs.
    fn set_fact(
        &mut self,
        at: usize,
        field: fn(&mut Device) -> &mut Option<String>,
        value: String,
    ) {
        let entry = &mut self.entries[at];
        let slot = field(&mut entry.device);
        if value.is_empty() || slot.as_deref() == Some(value.as_str()) {
            return;
        }
        *slot = Some(value);
        entry.changed = true;
        entry.dirty = true;
    }

    /// Learns from one segment fact of packet `p`; `before` are the batch's earlier facts
    /// (an mDNS message's names are judged together).
    fn learn(&mut self, fact: &LanFact, before: &[LanFact], batch: &PacketBatch, p: &PacketMeta) {
        let bytes = |r: NameRef| batch.name(r);
        match fact.fact {
            Lan::Arp {
                sender_mac,
                sender_ip,
                target_mac,
                target_ip,
                op,
            } => {
                if !sender_ip.is_unspecified()
                    && let Some(at) = self.station(sender_mac, p.ts)
                {
                    self.touch_address(at, IpAddr::V4(sender_ip), p.ts);
                }
                // A reply's target is the asker, telling its own address.
                if op == 2
                    && !target_ip.is_unspecified()
                    && let Some(at) = self.find(target_mac)
                {
                    self.touch_address(at, IpAddr::V4(target_ip), p.ts);
                }
            }
            Lan::Ndp {
                kind,
                target,
                lladdr,
                ..
            } => {
                let mac = lladdr.unwrap_or(p.src_mac);
                let Some(at) = self.station(mac, p.ts) else {
                    return;
                };
                match kind {
                    134 => {
                        if !self.entries[at].device.router {
                            self.entries[at].device.router = true;
                            self.entries[at].changed = true;
                        }
                        self.touch_address(at, p.src, p.ts);
                    }
                    136 => self.touch_address(at, IpAddr::V6(target), p.ts),
                    _ => self.touch_address(at, p.src, p.ts),
                }
            }
            Lan::Dhcp(d) => match d.msg {
                // OFFER, ACK, NAK: from a server.
                2 | 5 | 6 => {
                    if let Some(at) = self.station(p.src_mac, p.ts)
                        && !self.entries[at].device.dhcp_server
                    {
                        self.entries[at].device.dhcp_server = true;
                        self.entries[at].changed = true;
                    }
                    if d.msg == 5 && !d.yiaddr.is_unspecified() {
                        if let Some(len) = d.prefix_len {
                            self.learn_network(d.yiaddr, len);
                        }
                        // The server leased an address to the client: it exists.
                        if let Some(at) = self.station(d.chaddr, p.ts) {
                            self.touch_address(at, IpAddr::V4(d.yiaddr), p.ts);
                        }
                    }
                }
                _ => {
                    // A client's own message, or one a relay agent forwards. A station that
                    // sends DHCP for hardware addresses not its own, unrelayed, is forging
                    // them (a starvation attack): those add no stations.
                    let at = if d.chaddr == p.src_mac || !d.giaddr.is_unspecified() {
                        self.station(d.chaddr, p.ts)
                    } else {
                        self.find(d.chaddr)
                    };
                    let Some(at) = at else { return };
                    self.add_name(at, bytes(d.host_name), "dhcp", p.ts);
                    self.add_name(at, bytes(d.fqdn), "dhcp_fqdn", p.ts);
                    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                    self.set_fact(at, |d| &mut d.vendor_class, text(bytes(d.vendor_class)));
                    // The fingerprint is the first list the station sent: one that changes
                    // later (another boot loader, another OS on the same NIC) is not taken
                    // for the device's own.
                    if self.entries[at].device.dhcp_fingerprint.is_none() {
                        let params = bytes(d.params).iter().map(|b| b.to_string());
                        let fingerprint = params.collect::<Vec<_>>().join(",");
                        self.set_fact(at, |d| &mut d.dhcp_fingerprint, fingerprint);
                    }
                    self.set_fact(at, |d| &mut d.client_id, hex(bytes(d.client_id)));
                }
            },
            Lan::Dhcp6 {
                msg,
                relayed,
                duid,
                fqdn,
                vendor_class,
            } => {
                // Client messages (SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE,
                // INFORMATION-REQUEST) sent by the station itself.
                if relayed || !matches!(msg, 1 | 3 | 4 | 5 | 6 | 8 | 11) {
                    return;
                }
                let Some(at) = self.station(p.src_mac, p.ts) else {
                    return;
                };
                self.add_name(at, bytes(fqdn), "dhcpv6", p.ts);
                self.set_fact(at, |d| &mut d.duid, hex(bytes(duid)));
                if self.entries[at].device.vendor_class.is_none() {
                    let class = String::from_utf8_lossy(bytes(vendor_class)).into_owned();
                    self.set_fact(at, |d| &mut d.vendor_class, class);
                }
            }
            Lan::Name { source, name, addr } => {
                // A station speaks for itself when one of the message's records for the
                // name gives its own source address (a sleep proxy answering for a
                // sleeping host does not), or, over the other IP version, any address.
                let text = bytes(name);
                let same_message = before
                    .iter()
                    .rev()
                    .take_while(|f| f.packet == fact.packet)
                    .chain(std::iter::once(fact));
                let own = same_message.clone().any(|f| {
                    matches!(f.fact, Lan::Name { name: n, addr: Some(a), .. }
                        if a == p.src && batch.name(n) == text)
                });
                let other_family = addr.is_some_and(|a| a.is_ipv4() != p.src.is_ipv4());
                let anothers = || addr.is_some_and(|a| self.held_by_other(a, p.src_mac));
                if !(own || other_family || !anothers()) {
                    return;
                }
                let Some(at) = self.station(p.src_mac, p.ts) else {
                    return;
                };
                self.add_name(at, text, source.name(), p.ts);
                if let Some(a) = addr.filter(|a| self.local.contains(*a)) {
                    self.touch_address(at, a, p.ts);
                }
            }
        }
    }

    /// Whether a station other than `mac` uses `ip`.
    fn held_by_other(&self, ip: IpAddr, mac: MacAddr) -> bool {
        self.holders.get(&ip).is_some_and(|&m| m != mac.to_u64())
    }

    /// Adds the network of a DHCP lease to the local networks.
    fn learn_network(&mut self, addr: Ipv4Addr, prefix_len: u8) {
        if self.local.contains(IpAddr::V4(addr)) || self.learned.len() >= MAX_LEARNED_NETWORKS {
            return;
        }
        if let Ok(net) = ipnet::Ipv4Net::new(addr, prefix_len.max(8)) {
            let net = IpNet::V4(net.trunc());
            self.learned.push(net);
            self.local.add(net);
        }
    }
}

/// Makes room for one more entry in `list` (at most `cap`): drops the least recently seen.
/// Makes room for one more entry in `list` (at most `cap`): drops the least recently seen,
/// and returns it.
fn make_room<T>(list: &mut Vec<T>, cap: usize, last_seen: impl Fn(&T) -> f64) -> Option<T> {
    if list.len() >= cap
        && let Some(oldest) =
            (0..list.len()).min_by(|&x, &y| last_seen(&list[x]).total_cmp(&last_seen(&list[y])))
    {
        return Some(list.remove(oldest));
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
