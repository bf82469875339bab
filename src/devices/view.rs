//! Devices as the API, `analyze` and the dashboard show them: the stored record plus its
//! vendor, whether its MAC is randomised, the name to show and whether it is new; listed with
//! a query (text, vendor, new/known, activity, sort), and with randomised MACs that carry the
//! same DHCP client id or host name shown as one device with several MACs.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::vendor;
use crate::model::device::Device;
use crate::packet::MacAddr;

/// Which devices a listing wants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceQuery {
    /// Text found (case-insensitively) in the MAC, vendor, names, label or addresses.
    pub text: Option<String>,
    /// Text found in the vendor.
    pub vendor: Option<String>,
    /// `Some(true)`: new devices only; `Some(false)`: known ones only.
    pub new: Option<bool>,
    /// Seen within this many seconds of the newest packet.
    pub active_secs: Option<u64>,
    pub sort: DeviceSort,
    pub limit: usize,
}

/// Listing orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSort {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Most recently arrived first.
    FirstSeen,
    Name,
    Vendor,
    /// Most bytes (sent and received) first.
    Bytes,
    Mac,
}

impl DeviceSort {
    pub fn parse(text: &str) -> Option<DeviceSort> {
        Some(match text {
            "last_seen" => DeviceSort::LastSeen,
            "first_seen" => DeviceSort::FirstSeen,
            "name" => DeviceSort::Name,
            "vendor" => DeviceSort::Vendor,
            "bytes" => DeviceSort::Bytes,
            "mac" => DeviceSort::Mac,
            _ => return None,
        })
    }
}

/// The context a device is shown in: when learning ends or ended (wall clock, Unix seconds;
/// `None` before the first station) and the newest packet time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moment {
    pub learning_ends: Option<f64>,
    pub now: f64,
}

impl Moment {
    /// New: arrived after the learning period and not marked known by an admin.
    pub fn is_new(&self, d: &Device) -> bool {
        d.arrived && !d.known
    }
}

/// One device as shown: `macs` lists every MAC merged into it (its own first).
pub fn device_json(d: &Device, macs: &[MacAddr], moment: &Moment) -> Value {
    let today_day = (moment.now / 86_400.0).floor() as i64;
    let today = if d.today.day == today_day {
        d.today
    } else {
        Default::default()
    };
    json!({
        "mac": d.mac.to_string(),
        "macs": macs.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "vendor": vendor::vendor(d.mac),
        "randomized": d.mac.is_local_admin(),
        "name": d.display_name(),
        "label": d.label,
        "known": d.known,
        "new": moment.is_new(d),
        "addresses": d.addresses,
        "names": d.names,
        "dhcp_fingerprint": d.dhcp_fingerprint,
        "vendor_class": d.vendor_class,
        "client_id": d.client_id,
        "duid": d.duid,
        "dhcp_server": d.dhcp_server,
        "router": d.router,
        "first_seen": d.first_seen,
        "last_seen": d.last_seen,
        "packets": d.packets_sent + d.packets_received,
        "bytes": d.bytes_sent + d.bytes_received,
        "packets_sent": d.packets_sent,
        "bytes_sent": d.bytes_sent,
        "packets_received": d.packets_received,
        "bytes_received": d.bytes_received,
        "flows": d.flows,
        "today": {
            "packets_sent": today.packets_sent,
            "bytes_sent": today.bytes_sent,
            "packets_received": today.packets_received,
            "bytes_received": today.bytes_received,
        },
    })
}

/// Devices grouped: a randomised MAC joins the other randomised MACs with the same DHCP
/// client id (else the same DHCP host name); the group is shown as its most recently seen
/// member, with the counters of all of them. Each group: (the merged device, its MACs).
pub fn group<'a>(devices: impl Iterator<Item = &'a Device>) -> Vec<(Device, Vec<MacAddr>)> {
    let mut groups: Vec<(Device, Vec<MacAddr>)> = Vec::new();
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    let identity = |d: &Device| {
        if !d.mac.is_local_admin() {
            return None;
        }
        d.client_id.clone().map(|c| format!("id:{c}")).or_else(|| {
            d.names
                .iter()
                .find(|n| n.source == "dhcp")
                .map(|n| format!("name:{}", n.name.to_lowercase()))
        })
    };
    for d in devices {
        let Some(key) = identity(d) else {
            groups.push((d.clone(), vec![d.mac]));
            continue;
        };
        match by_identity.get(&key) {
            None => {
                by_identity.insert(key, groups.len());
                groups.push((d.clone(), vec![d.mac]));
            }
            Some(&g) => {
                let (shown, macs) = &mut groups[g];
                macs.push(d.mac);
                let (newer, older) = if d.last_seen > shown.last_seen {
                    (d.clone(), shown.clone())
                } else {
                    (shown.clone(), d.clone())
                };
                let mut merged = newer;
                merged.first_seen = merged.first_seen.min(older.first_seen);
                merged.packets_sent += older.packets_sent;
                merged.bytes_sent += older.bytes_sent;
                merged.packets_received += older.packets_received;
                merged.bytes_received += older.bytes_received;
                merged.flows += older.flows;
                for a in older.addresses {
                    if !merged.addresses.iter().any(|x| x.ip == a.ip) {
                        merged.addresses.push(a);
                    }
                }
                merged.known |= older.known;
                merged.label = merged.label.or(older.label);
                *shown = merged;
                // The shown device's own MAC first.
                let own = shown.mac;
                macs.sort_by_key(|m| *m != own);
            }
        }
    }
    groups
}

/// The devices a query selects, as shown, in its order.
pub fn list<'a>(
    devices: impl Iterator<Item = &'a Device>,
    q: &DeviceQuery,
    moment: &Moment,
) -> Vec<Value> {
    let text = q.text.as_deref().map(str::to_lowercase);
    let vendor_text = q.vendor.as_deref().map(str::to_lowercase);
    let mut groups: Vec<(Device, Vec<MacAddr>)> = group(devices)
        .into_iter()
        .filter(|(d, macs)| {
            let vendor = vendor::vendor(d.mac).unwrap_or("").to_lowercase();
            if let Some(v) = &vendor_text
                && !vendor.contains(v.as_str())
            {
                return false;
            }
            if let Some(new) = q.new
                && moment.is_new(d) != new
            {
                return false;
            }
            if let Some(secs) = q.active_secs
                && d.last_seen < moment.now - secs as f64
            {
                return false;
            }
            let Some(t) = &text else { return true };
            macs.iter().any(|m| m.to_string().contains(t.as_str()))
                || vendor.contains(t.as_str())
                || d.label
                    .as_deref()
                    .is_some_and(|l| l.to_lowercase().contains(t.as_str()))
                || d.names
                    .iter()
                    .any(|n| n.name.to_lowercase().contains(t.as_str()))
                || d.addresses
                    .iter()
                    .any(|a| a.ip.to_string().contains(t.as_str()))
        })
        .collect();
    let name = |d: &Device| d.display_name().unwrap_or("\u{10ffff}").to_lowercase();
    match q.sort {
        DeviceSort::LastSeen => groups.sort_by(|a, b| b.0.last_seen.total_cmp(&a.0.last_seen)),
        DeviceSort::FirstSeen => groups.sort_by(|a, b| b.0.first_seen.total_cmp(&a.0.first_seen)),
        DeviceSort::Name => groups.sort_by_cached_key(|g| name(&g.0)),
        DeviceSort::Vendor => groups.sort_by_cached_key(|g| {
            vendor::vendor(g.0.mac).map_or("\u{10ffff}".into(), str::to_lowercase)
        }),
        DeviceSort::Bytes => {
            groups.sort_by_key(|g| std::cmp::Reverse(g.0.bytes_sent + g.0.bytes_received))
        }
        DeviceSort::Mac => groups.sort_by_key(|g| g.0.mac),
    }
    groups
        .iter()
        .take(q.limit.max(1))
        .map(|(d, macs)| device_json(d, macs, moment))
        .collect()
}
