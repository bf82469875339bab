//! The read-only data endpoints and acknowledgements: each asks the actors of the current
//! pipeline (or the store, for history) and answers in the published shape. Also `/debug`
//! and the WebSocket upgrade.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tiny_http::Request;

use super::api::Api;
use super::reply::{Body, Reply, internal, respond_error};
use super::route::{self, AckTarget, ApiError};
use crate::alert::Alert;
use crate::alert::AlertQuery;
use crate::alert::actor::{AcknowledgeAlert, AcknowledgeMatching, GetAlerts};
use crate::auth::Principal;
use crate::engine::GetEngineStatus;
use crate::flow::FlowQuery;
use crate::flow::FlowRecord;
use crate::flow::actor::{GetActiveFlows, GetAddressNames, GetBestNames, GetFlowStats, GetUsage};
use crate::geo::Place;
use crate::http::hub::{GetHubStatus, Subscribe};
use crate::metrics::TopTalker;
use crate::metrics::actor::GetStats;
use crate::store::actor::{
    GetStoreStatus, QueryAlerts, QueryFlows, QueryHistory, StoreAcknowledge,
    StoreAcknowledgeMatching,
};
use crate::store::rollup::HistoryQuery;
use serde::Serialize;
use std::collections::BTreeMap;

/// The store could not answer: 503 with its reason.
impl From<crate::store::actor::StoreUnavailable> for ApiError {
    fn from(e: crate::store::actor::StoreUnavailable) -> ApiError {
        ApiError::new(503, "storage unavailable", json!(e.0))
    }
}

impl Api {
    /// The store, for endpoints that only the database can answer.
    fn database(
        &self,
        what: &str,
    ) -> Result<&actix::Addr<crate::store::actor::StoreActor>, ApiError> {
        self.store.as_ref().ok_or_else(|| {
            ApiError::new(
                503,
                format!("{what} needs the database; start tapir with --db-path"),
                serde_json::Value::Null,
            )
        })
    }

    pub(super) fn stats(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        let mut stats = self.ask(rt, "metrics", &p.metrics, GetStats { top_talkers: 10 })?;
        self.name_talkers(rt, &mut stats.top_talkers)?;
        let mut value = serde_json::to_value(&stats).map_err(|e| internal(e.to_string()))?;
        let c = &p.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        value["packets_dropped"] = json!(
            load(&c.packets_dropped) + load(&c.libpcap_dropped) + load(&c.libpcap_if_dropped)
        );
        Ok(Reply {
            status: 200,
            body: Body::Json(value),
            headers: Vec::new(),
        })
    }

    /// Puts the best known name beside each talker's address.
    fn name_talkers(
        &self,
        rt: &tokio::runtime::Runtime,
        talkers: &mut [TopTalker],
    ) -> Result<(), ApiError> {
        if talkers.is_empty() {
            return Ok(());
        }
        let p = self.pipeline();
        let ips = talkers.iter().map(|t| t.ip).collect();
        let names = self.ask(rt, "flows", &p.flows, GetBestNames(ips))?;
        let devices = self.device_labels();
        for (t, name) in talkers.iter_mut().zip(names) {
            t.name = name;
            t.device = devices.get(&t.ip).cloned();
        }
        Ok(())
    }

    /// `GET /apps`: bytes, flows and hosts per application and category over the live
    /// window, and what named the flows.
    pub(super) fn apps(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        match self.ask(rt, "flows", &p.flows, GetUsage)? {
            Some(usage) => Reply::ok(usage),
            None => Err(ApiError::new(
                409,
                "names are off",
                json!("applications come from names; set [privacy] names = true to see them"),
            )),
        }
    }

    pub(super) fn top_talkers(
        &self,
        rt: &tokio::runtime::Runtime,
        limit: usize,
        with_geo: bool,
    ) -> Result<Reply, ApiError> {
        #[derive(Serialize)]
        struct TopTalkerGeo {
            #[serde(flatten)]
            talker: TopTalker,
            #[serde(flatten)]
            place: Option<Place>,
        }
        let p = self.pipeline();
        let mut stats = self.ask(rt, "metrics", &p.metrics, GetStats { top_talkers: limit })?;
        self.name_talkers(rt, &mut stats.top_talkers)?;
        let talkers: Vec<TopTalkerGeo> = stats
            .top_talkers
            .into_iter()
            .map(|t| TopTalkerGeo {
                place: with_geo.then(|| self.geo.lookup(t.ip).place),
                talker: t,
            })
            .collect();
        Reply::ok(talkers)
    }

    /// `GET /history`: from the store's rollups.
    pub(super) fn history(
        &self,
        rt: &tokio::runtime::Runtime,
        query: HistoryQuery,
    ) -> Result<Reply, ApiError> {
        let store = self.database("history")?;
        let history = self.ask(rt, "the store", store, QueryHistory(query))??;
        Reply::ok(history)
    }

    /// `GET /hosts/{ip}`: the host's place, its traffic history, and its busiest peers and
    /// protocols over the range from its stored flows (at most `HOST_FLOWS`, newest first).
    /// `/names?ip=`: the names DNS answers gave `ip`, when, and to which clients.
    pub(super) fn names(
        &self,
        rt: &tokio::runtime::Runtime,
        ip: std::net::IpAddr,
    ) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        let known = self.ask(rt, "flows", &p.flows, GetAddressNames(ip))?;
        let known = known.unwrap_or_default();
        Reply::ok(json!({
            "ip": ip,
            "names": known.names,
            "clients": known.clients,
        }))
    }

    pub(super) fn host(
        &self,
        rt: &tokio::runtime::Runtime,
        ip: std::net::IpAddr,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Reply, ApiError> {
        const HOST_FLOWS: usize = 20_000;
        let store = self.database("host history")?;
        let history = self.ask(
            rt,
            "the store",
            store,
            QueryHistory(HistoryQuery {
                metric: crate::store::rollup::Metric::Bytes,
                by: crate::store::rollup::By::Host,
                key: Some(ip.to_string()),
                from,
                to,
                step: None,
            }),
        )??;
        let flows = self.ask(
            rt,
            "the store",
            store,
            QueryFlows(FlowQuery {
                limit: HOST_FLOWS,
                ip: Some(ip),
                start: Some(history.from as f64),
                end: Some(history.to as f64 + 0.999_999_999),
                ..FlowQuery::default()
            }),
        )??;
        let mut answer = json!({
            "ip": ip,
            "place": self.geo.lookup(ip),
            "from": history.from,
            "to": history.to,
            "history": history,
            "flows_read": flows.len(),
            "flows_truncated": flows.len() == HOST_FLOWS,
        });
        tally(&flows, |a| a == ip, &mut answer);
        // The station that holds the address, by its label or name.
        self.label_devices(std::slice::from_mut(&mut answer), &[("ip", "device")]);
        Reply::ok(answer)
    }

    pub(super) fn flows(
        &self,
        rt: &tokio::runtime::Runtime,
        query: FlowQuery,
    ) -> Result<Reply, ApiError> {
        let pipeline = self.pipeline();
        let mut flows: Vec<FlowRecord> =
            self.ask(rt, "flows", &pipeline.flows, GetActiveFlows(query.clone()))?;
        // A time range asks for history too: finished flows from the store.
        let historical = query.start.is_some() || query.end.is_some();
        if historical && let Some(store) = &self.store {
            let stored = self.ask(rt, "the store", store, QueryFlows(query.clone()))??;
            flows.extend(stored);
            flows.sort_by_key(|f| std::cmp::Reverse(f.last_seen));
            flows.truncate(query.limit);
        }
        let mut flows = match serde_json::to_value(&flows) {
            Ok(serde_json::Value::Array(flows)) => flows,
            _ => Vec::new(),
        };
        self.label_devices(
            &mut flows,
            &[("src_ip", "src_device"), ("dst_ip", "dst_device")],
        );
        Reply::ok(json!({
            "count": flows.len(),
            "source": if historical { "active+stored" } else { "active" },
            "flows": flows,
        }))
    }

    pub(super) fn alerts(
        &self,
        rt: &tokio::runtime::Runtime,
        query: AlertQuery,
    ) -> Result<Reply, ApiError> {
        let pipeline = self.pipeline();
        // The alerts actor has the freshest state (an acknowledgement reaches the store
        // within a flush interval), so ask it without the acknowledged filter and let its
        // copies win.
        let fresh = self.ask(
            rt,
            "alerts",
            &pipeline.alerts,
            GetAlerts(Some(AlertQuery {
                unacknowledged_only: false,
                ..query.clone()
            })),
        )?;
        let mut by_id: BTreeMap<u64, Alert> = BTreeMap::new();
        if let Some(store) = &self.store {
            let stored = self.ask(rt, "the store", store, QueryAlerts(query.clone()))??;
            by_id.extend(stored.into_iter().map(|a| (a.id, a)));
        }
        by_id.extend(fresh.into_iter().map(|a| (a.id, a)));
        let mut alerts: Vec<Alert> = by_id
            .into_values()
            .filter(|a| !query.unacknowledged_only || !a.acknowledged)
            .collect();
        alerts.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp).then(b.id.cmp(&a.id)));
        alerts.truncate(query.limit);
        let mut alerts = match serde_json::to_value(&alerts) {
            Ok(serde_json::Value::Array(alerts)) => alerts,
            _ => Vec::new(),
        };
        self.label_devices(&mut alerts, &[("source_ip", "source_device")]);
        Reply::ok(json!({"count": alerts.len(), "alerts": alerts}))
    }

    pub(super) fn acknowledge(
        &self,
        rt: &tokio::runtime::Runtime,
        target: AckTarget,
    ) -> Result<Reply, ApiError> {
        let pipeline = self.pipeline();
        let acked: Vec<Alert> = match &target {
            AckTarget::Id(id) => {
                let mut acked: Vec<Alert> = self
                    .ask(rt, "alerts", &pipeline.alerts, AcknowledgeAlert { id: *id })?
                    .into_iter()
                    .collect();
                // Older alerts live only in the store.
                if acked.is_empty()
                    && let Some(store) = &self.store
                {
                    acked.extend(self.ask(
                        rt,
                        "the store",
                        store,
                        StoreAcknowledge { id: *id },
                    )??);
                }
                acked
            }
            AckTarget::Matching {
                timestamp,
                source_ip,
            } => {
                let mut acked = self.ask(
                    rt,
                    "alerts",
                    &pipeline.alerts,
                    AcknowledgeMatching {
                        timestamp: *timestamp,
                        source_ip: source_ip.clone(),
                    },
                )?;
                if let Some(store) = &self.store {
                    let stored = self.ask(
                        rt,
                        "the store",
                        store,
                        StoreAcknowledgeMatching {
                            timestamp: *timestamp,
                            source_ip: source_ip.clone(),
                        },
                    )??;
                    for a in stored {
                        if !acked.iter().any(|x| x.id == a.id) {
                            acked.push(a);
                        }
                    }
                }
                acked
            }
        };
        if acked.is_empty() {
            return Err(ApiError::new(
                404,
                "no such alert",
                match target {
                    AckTarget::Id(id) => json!({"id": id}),
                    AckTarget::Matching {
                        timestamp,
                        source_ip,
                    } => json!({"timestamp": timestamp, "source_ip": source_ip}),
                },
            ));
        }
        let ids: Vec<u64> = acked.iter().map(|a| a.id).collect();
        Reply::ok(json!({"success": true, "acknowledged": ids}))
    }

    pub(super) fn websocket(
        &self,
        rt: &tokio::runtime::Runtime,
        request: Request,
        stream: route::Stream,
        principal: &Principal,
    ) {
        let accept = match super::ws::accept_key(&request) {
            Ok(key) => key,
            Err(e) => return respond_error(request, e),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(self.config.websocket.client_queue);
        let closed = Arc::new(AtomicBool::new(false));
        let subscribe = Subscribe {
            stream,
            tx,
            closed: Arc::clone(&closed),
        };
        let allowed = self.stream_allowed(principal);
        match self.ask(rt, "the WebSocket hub", &self.hub, subscribe) {
            Ok(true) => {
                let spawned = std::thread::Builder::new()
                    .name(format!("tapir-ws-{}", stream.name()))
                    .spawn(move || super::ws::serve(request, accept, rx, closed, allowed));
                if let Err(e) = spawned {
                    eprintln!("tapir: cannot start a WebSocket thread: {e}");
                }
            }
            Ok(false) => respond_error(
                request,
                ApiError::new(
                    503,
                    "too many WebSocket clients",
                    json!({"max_clients": self.config.websocket.max_clients}),
                ),
            ),
            Err(e) => respond_error(request, e),
        }
    }

    pub(super) fn debug(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        let engine = self.ask(rt, "the engine", &self.engine, GetEngineStatus)?;
        let flows = self.ask(rt, "flows", &p.flows, GetFlowStats)?;
        let hub = self.ask(rt, "the WebSocket hub", &self.hub, GetHubStatus)?;
        let store = match &self.store {
            Some(s) => Some(self.ask(rt, "the store", s, GetStoreStatus)?),
            None => None,
        };
        let c = &p.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Reply::ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": self.mode,
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "capture": {
                "sources": engine,
                "frames": load(&c.frames),
                "bytes": load(&c.bytes),
                "decoded": load(&c.decoded),
                "skipped": c.skipped_by_reason(),
                "encapsulations": c.by_encapsulation(),
                "quic_initials_over_budget": load(&c.quic_over_budget),
                "batches_sent": load(&c.batches_sent),
                "dropped": {
                    "queue_full_batches": load(&c.batches_dropped),
                    "queue_full_packets": load(&c.packets_dropped),
                    "kernel": load(&c.libpcap_dropped),
                    "interface": load(&c.libpcap_if_dropped),
                },
                "libpcap_received": load(&c.libpcap_received),
            },
            "queues": {
                // Batches handed on but not yet through the flow table (approximate: drops
                // are counted over all consumers).
                "flows_backlog_batches": c.backlog(flows.batches),
            },
            "flows": flows,
            "store": store,
            "websocket": hub,
            "http": {
                "gate": self.gate.counts(),
                "open_sessions": self.auth.as_ref().map(|a| a.lock().expect("auth lock").counts().0),
                "throttled_addresses": self.auth.as_ref().map(|a| a.lock().expect("auth lock").counts().1),
                "auth_enabled": self.auth.is_some(),
            },
            "export": crate::export::snapshot(&self.export),
            "notify": self.notify_view()["targets"],
            "intel": self.intel_view(),
            "geoip": self.geo.status(),
            "peak_rss_bytes": crate::process::peak_rss_bytes(),
            "rss_bytes": crate::process::rss_bytes(),
        }))
    }
}

/// Rows kept of each ranking a host or device page shows.
const TOP: usize = 10;

/// Adds to `answer` what `flows` say about the host whose addresses `own` recognises, each
/// ranked by bytes (both ways) with its flows: `top_peers`, `protocols`, `names` (what its
/// flows called it as a server), `destinations` (the server names of the flows it opened)
/// and `apps` (their applications, port guesses left out).
pub(super) fn tally(
    flows: &[FlowRecord],
    own: impl Fn(std::net::IpAddr) -> bool,
    answer: &mut serde_json::Value,
) {
    let mut peers: BTreeMap<std::net::IpAddr, (u64, u64)> = BTreeMap::new();
    let mut protocols: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut names: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut destinations: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut apps: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let add = |row: &mut (u64, u64), f: &FlowRecord| {
        row.0 += f.bytes();
        row.1 += 1;
    };
    for f in flows {
        if let Some(name) = f.server_name.as_deref() {
            if own(f.dst) {
                add(names.entry(name).or_default(), f);
            }
            if own(f.src) {
                add(destinations.entry(name).or_default(), f);
            }
        }
        if let Some(app) = f.app.as_ref().filter(|a| !a.by_port) {
            add(apps.entry(app.app).or_default(), f);
        }
        let peer = if own(f.src) { f.dst } else { f.src };
        add(peers.entry(peer).or_default(), f);
        add(protocols.entry(f.protocol_name()).or_default(), f);
    }
    let ranked = |v: Vec<(String, (u64, u64))>| {
        let mut v = v;
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(TOP)
            .map(|(k, (bytes, flows))| json!({"key": k, "bytes": bytes, "flows": flows}))
            .collect::<Vec<_>>()
    };
    let text =
        |m: BTreeMap<&str, (u64, u64)>| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    answer["top_peers"] = json!(ranked(
        peers.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    ));
    answer["protocols"] = json!(ranked(text(protocols)));
    answer["names"] = json!(ranked(text(names)));
    answer["destinations"] = json!(ranked(text(destinations)));
    answer["apps"] = json!(ranked(text(apps)));
}
