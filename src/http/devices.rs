//! `/devices`: the inventory's stations (a listing with a query, one device with its recent
//! flows and alerts, an admin's label and "known" mark), and the device names that flows,
//! top talkers and alerts carry beside local addresses.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::access::RequestInfo;
use super::api::Api;
use super::reply::{Reply, internal};
use super::route::ApiError;
use crate::devices::view::{self, DeviceQuery, Moment};
use crate::flow::FlowQuery;
use crate::messages::StoreDevices;
use crate::model::alert::AlertQuery;
use crate::packet::MacAddr;
use crate::store::actor::{QueryAlerts, QueryFlows, QueryHistory};
use crate::store::rollup::{By, HistoryQuery, Metric};

/// Longest label an admin may give a device.
const MAX_LABEL: usize = 64;
/// Recent flows and alerts shown with a device.
const DEVICE_FLOWS: usize = 50;
/// Stored flows read per address for a device's rankings.
const TALLIED_FLOWS: usize = 5_000;
const DEVICE_ALERTS: usize = 50;

impl Api {
    fn device_book(&self) -> Result<&crate::devices::SharedDevices, ApiError> {
        self.devices.as_ref().ok_or_else(|| {
            ApiError::new(
                409,
                "devices are off",
                json!("the device inventory is off; set [devices] enabled = true to keep one"),
            )
        })
    }

    /// The label or name (else the MAC) of the station using each local address.
    pub(super) fn device_labels(&self) -> HashMap<IpAddr, String> {
        let Some(book) = &self.devices else {
            return HashMap::new();
        };
        let book = book.lock();
        let mut labels: HashMap<IpAddr, (f64, String)> = HashMap::new();
        for d in book.inventory.devices() {
            let shown = d
                .display_name()
                .map_or_else(|| d.mac.to_string(), str::to_string);
            for a in &d.addresses {
                // An address that moved between stations goes to the latest.
                let e = labels.entry(a.ip).or_insert((f64::MIN, String::new()));
                if a.last_seen > e.0 {
                    *e = (a.last_seen, shown.clone());
                }
            }
        }
        labels.into_iter().map(|(ip, (_, s))| (ip, s)).collect()
    }

    /// Adds `src_device`/`dst_device` to flow objects and `source_device` to alerts.
    pub(super) fn label_devices(&self, items: &mut [Value], fields: &[(&str, &str)]) {
        let labels = self.device_labels();
        if labels.is_empty() {
            return;
        }
        for item in items {
            for (ip_field, device_field) in fields {
                let ip = item[*ip_field]
                    .as_str()
                    .and_then(|s| s.parse::<IpAddr>().ok());
                if let Some(label) = ip.and_then(|ip| labels.get(&ip)) {
                    item[*device_field] = json!(label);
                }
            }
        }
    }

    fn moment(book: &crate::devices::DeviceBook) -> Moment {
        let inv = &book.inventory;
        Moment {
            learning_ends: inv.learning_end(),
            now: inv.clock_secs(),
        }
    }

    /// `GET /devices`.
    pub(super) fn devices(&self, q: DeviceQuery) -> Result<Reply, ApiError> {
        let book = self.device_book()?.lock();
        let moment = Self::moment(&book);
        let devices = view::list(book.inventory.devices(), &q, &moment);
        let all = DeviceQuery {
            new: Some(true),
            limit: usize::MAX,
            ..DeviceQuery::default()
        };
        let new = view::list(book.inventory.devices(), &all, &moment).len();
        Reply::ok(json!({
            "count": devices.len(),
            "total": book.inventory.len(),
            "new": new,
            "learning": book.inventory.learning(),
            "learning_until": moment.learning_ends,
            "evicted": book.inventory.evicted,
            "minutes_dropped": book.inventory.minutes_dropped,
            "rules": book.rules.stats,
            "devices": devices,
        }))
    }

    /// `GET /devices/{mac}`: the device (with the MACs merged into it), its bytes over the
    /// last day of the history (`history`, as `/history?by=device` gives it), its busiest
    /// peers, destinations, applications and protocols and its recent flows from its
    /// addresses' stored flows (`top_peers`, `destinations`, `apps`, `protocols`,
    /// `server_names`, `recent_flows`), and the alerts about it.
    pub(super) fn device(
        &self,
        rt: &tokio::runtime::Runtime,
        mac: MacAddr,
    ) -> Result<Reply, ApiError> {
        let (mut shown, addresses) = {
            let book = self.device_book()?.lock();
            let moment = Self::moment(&book);
            let Some((device, macs)) = view::group(book.inventory.devices())
                .into_iter()
                .find(|(_, macs)| macs.contains(&mac))
            else {
                return Err(ApiError::new(
                    404,
                    format!("no device {mac} in the inventory"),
                    json!({"mac": mac.to_string()}),
                ));
            };
            let addresses: Vec<IpAddr> = device.addresses.iter().map(|a| a.ip).collect();
            (view::device_json(&device, &macs, &moment), addresses)
        };
        let mut flows = Vec::new();
        let mut alerts = Vec::new();
        if let Some(store) = &self.store {
            // Its newest stored flows from each of its (latest) addresses: the rankings and
            // the recent flows come from them.
            for ip in addresses.iter().rev().take(4) {
                let query = FlowQuery {
                    limit: TALLIED_FLOWS,
                    ip: Some(*ip),
                    ..FlowQuery::default()
                };
                flows.extend(self.ask(rt, "the store", store, QueryFlows(query))??);
            }
            flows.sort_by_key(|f| std::cmp::Reverse(f.last_seen));
            flows.dedup_by(|a, b| a.community_id == b.community_id && a.last_seen == b.last_seen);
            // A device's `names` are the ones it gave itself: what flows called it as a
            // server goes under `server_names`.
            let mut ranked = json!({});
            super::handlers::tally(&flows, |ip| addresses.contains(&ip), &mut ranked);
            if let Value::Object(ranked) = ranked {
                for (key, value) in ranked {
                    let key = if key == "names" {
                        "server_names".into()
                    } else {
                        key
                    };
                    shown[key] = value;
                }
            }
            flows.truncate(DEVICE_FLOWS);
            let query = AlertQuery {
                limit: 10_000,
                ..AlertQuery::default()
            };
            let mac_text = mac.to_string();
            let texts: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            alerts = self
                .ask(rt, "the store", store, QueryAlerts(query))??
                .into_iter()
                .filter(|a| {
                    let about = |s: &str| s == mac_text || texts.iter().any(|t| t == s);
                    about(&a.source_ip)
                        || about(a.target.rsplit_once(':').map_or(&a.target, |(h, _)| h))
                        || about(&a.target)
                        || a.evidence.as_json().contains(&mac_text)
                })
                .take(DEVICE_ALERTS)
                .collect();
        }
        if let Some(store) = &self.store {
            let query = HistoryQuery {
                metric: Metric::Bytes,
                by: By::Device,
                key: shown["mac"].as_str().map(str::to_string),
                from: None,
                to: None,
                step: None,
            };
            let history = self.ask(rt, "the store", store, QueryHistory(query))??;
            shown["history"] =
                serde_json::to_value(&history).map_err(|e| internal(e.to_string()))?;
        }
        shown["recent_flows"] =
            serde_json::to_value(&flows).map_err(|e| internal(e.to_string()))?;
        shown["alerts"] = serde_json::to_value(&alerts).map_err(|e| internal(e.to_string()))?;
        Reply::ok(shown)
    }

    /// `POST /devices/{mac}` (admin): `{"label": "…" | null, "known": true|false}`.
    pub(super) fn annotate_device(
        &self,
        info: &RequestInfo,
        mac: MacAddr,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Annotation {
            #[serde(default, deserialize_with = "present")]
            label: Option<Option<String>>,
            known: Option<bool>,
        }
        /// Tells a `null` label (clear it) from an absent one (leave it).
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Option<String>>, D::Error> {
            Option::<String>::deserialize(d).map(Some)
        }
        let a: Annotation = super::account::parse_body(info, body)?;
        if let Some(Some(label)) = &a.label
            && (label.chars().count() > MAX_LABEL || label.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(
                format!("a label is at most {MAX_LABEL} printable characters"),
                json!({"label": label}),
            ));
        }
        let book = self.device_book()?;
        let (device, state, moment) = {
            let mut book = book.lock();
            let Some(device) = book.inventory.annotate(mac, a.label, a.known) else {
                return Err(ApiError::new(
                    404,
                    format!("no device {mac} in the inventory"),
                    json!({"mac": mac.to_string()}),
                ));
            };
            let moment = Self::moment(&book);
            (device, book.inventory.state().clone(), moment)
        };
        // Written at once, so that a restart right after keeps it.
        if let Some(store) = &self.store {
            store.do_send(StoreDevices {
                devices: vec![device.clone()],
                removed: Vec::new(),
                state,
            });
        }
        Reply::ok(view::device_json(&device, &[device.mac], &moment))
    }
}
