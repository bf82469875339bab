//! The REST API: each route answered by asking the actors, as JSON in the published shapes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use serde::Serialize;
use serde_json::{Value, json};
use tiny_http::{Header, Request, Response, StatusCode};

use super::ServerConfig;
use super::access::RequestInfo;
use super::gate::GateStats;
use super::hub::HubActor;
use super::multipart::{self, MultipartError, MultipartReader};
use super::prometheus::{self, Family};
use super::route::{self, AckTarget, ApiError, Route};
use crate::alert::actor::{AcknowledgeAlert, AcknowledgeMatching, GetAlerts};
use crate::alert::{Alert, AlertQuery};
use crate::auth::{Auth, Principal};
use crate::capture::file::FileSource;
use crate::capture::{CaptureError, PacketSource};
use crate::engine::Engine;
use crate::engine::{GetEngineStatus, StartUpload, StopReplay, UploadRejected};
use crate::flow::FlowQuery;
use crate::flow::FlowRecord;
use crate::flow::actor::{GetActiveFlows, GetFlowStats};
use crate::geo::{GeoIp, Place};
use crate::http::hub::{GetHubStatus, Subscribe};
use crate::metrics::TopTalker;
use crate::metrics::actor::{GetPacket, GetPackets, GetStats};
use crate::pipeline::PipelineAddrs;
use crate::store::StoreConfig;
use crate::store::actor::StoreActor;
use crate::store::actor::{
    GetStoreStatus, QueryAlerts, QueryFlows, StoreAcknowledge, StoreAcknowledgeMatching,
};

/// What the workers share: the actors to ask and the settings.
pub struct Api {
    pub engine: Addr<Engine>,
    /// The pipeline the server shows (the engine publishes each change).
    pub pipeline: tokio::sync::watch::Receiver<PipelineAddrs>,
    pub store: Option<Addr<StoreActor>>,
    pub hub: Addr<HubActor>,
    pub geo: Arc<GeoIp>,
    pub config: ServerConfig,
    /// `run`, `replay` or `demo`.
    pub mode: &'static str,
    pub started: Instant,
    /// Set at shutdown: workers stop taking requests.
    pub stopping: AtomicBool,
    /// Accounts and sessions; `None` when authentication is off (demo on loopback).
    pub auth: Option<Arc<Mutex<Auth>>>,
    /// What the gate has seen.
    pub gate: Arc<GateStats>,
    /// IP masking on (shared with the hub).
    pub ip_masking: Arc<AtomicBool>,
    /// For the settings page (retention).
    pub store_config: StoreConfig,
    /// The TLS certificate's SHA-256 fingerprint, when serving HTTPS.
    pub tls_fingerprint: Option<String>,
    /// Export targets' counters.
    pub export: Vec<Arc<crate::export::TargetStats>>,
    /// The names this server answers to (`Host`).
    pub hosts: super::access::Hosts,
    /// Requests hashing a password, or waiting to (see `access::HashingSlot`).
    pub hashing: std::sync::atomic::AtomicUsize,
}

/// A JSON answer with its status.
pub(super) struct Reply {
    pub status: u16,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

pub(super) enum Body {
    Json(Value),
    Text(String, &'static str),
}

impl Reply {
    pub(super) fn ok(value: impl Serialize) -> Result<Reply, ApiError> {
        Ok(Reply {
            status: 200,
            body: Body::Json(serde_json::to_value(value).map_err(|e| internal(e.to_string()))?),
            headers: Vec::new(),
        })
    }
}

/// Set at start when the server speaks TLS: responses then carry HSTS.
static TLS_ON: AtomicBool = AtomicBool::new(false);

/// Says whether the server speaks TLS (one server per process).
pub fn set_tls(on: bool) {
    TLS_ON.store(on, Ordering::Relaxed);
}

fn internal(detail: String) -> ApiError {
    ApiError::new(500, "internal error", json!(detail))
}

fn unavailable(what: &str, detail: String) -> ApiError {
    ApiError::new(503, format!("{what} did not answer"), json!(detail))
}

/// Serves requests until the server is unblocked at shutdown. One per worker thread.
pub fn worker(server: &tiny_http::Server, api: &Api) {
    // Actor replies are awaited on a small runtime of this thread's own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime for an HTTP worker");
    loop {
        match server.recv() {
            Ok(request) => {
                // A bug in one handler must not take a worker (or the appliance) down.
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    api.handle(&rt, request)
                }));
                if handled.is_err() {
                    eprintln!("tapir: a request handler panicked; the request was dropped");
                }
            }
            Err(_) if api.stopping.load(Ordering::Relaxed) => break,
            // A failed accept: keep serving.
            Err(_) => continue,
        }
    }
}

impl Api {
    fn ask<A, M>(
        &self,
        rt: &tokio::runtime::Runtime,
        what: &str,
        addr: &Addr<A>,
        msg: M,
    ) -> Result<M::Result, ApiError>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let timeout = Duration::from_millis(self.config.actor_timeout_ms);
        // A fresh sender per request: actix parks a sender whose message found the mailbox
        // over capacity (as a busy pipeline's is), and a shared, parked sender would hold up
        // every later request. A fresh one queues at once and is answered in turn.
        let addr = addr.clone();
        match rt.block_on(async { tokio::time::timeout(timeout, addr.send(msg)).await }) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => Err(unavailable(what, e.to_string())),
            Err(_) => Err(unavailable(what, format!("no answer within {timeout:?}"))),
        }
    }

    /// The current pipeline, as the engine last published it (no round trip per request).
    fn pipeline(&self) -> PipelineAddrs {
        self.pipeline.borrow().clone()
    }

    /// Answers one request; never panics on its input.
    pub fn handle(&self, rt: &tokio::runtime::Runtime, mut request: Request) {
        let method = request.method().as_str().to_string();
        let url = request.url().to_string();
        let info = RequestInfo::of(&request);
        if !self.hosts.allows(info.host.as_deref()) {
            return respond_error(request, super::access::misdirected(&info));
        }
        // The dashboard's files are public: they hold no data, and the login screen is one.
        if (method == "GET" || method == "HEAD")
            && let Some(asset) = super::assets::find(url.split('?').next().unwrap_or(""))
        {
            return respond_asset(request, asset);
        }
        let route = route::parse(&method, &url);
        let route = match route {
            Ok(r) => r,
            Err(e) => {
                // Any body is read and dropped first, so that the pooled connection to the
                // gate stays in step (the gate has read it whole and bounded it).
                let _ = read_body(&mut request, MAX_JSON_BODY);
                return respond_error(request, e);
            }
        };
        // Who is asking comes before the body is used (an upload's is not even received: the
        // gate asks first, see `preflight` below).
        let principal = match self.authorize(&info, &route) {
            Ok(p) => p,
            Err(e) => {
                let _ = read_body(&mut request, MAX_JSON_BODY);
                return respond_error(request, e);
            }
        };
        if info.preflight {
            // The gate asks before it reads an upload's body: who asks may upload, and no
            // upload is replaying.
            let go = match route {
                Route::Upload => self.upload_may_start(rt),
                _ => Err(ApiError::bad_request("not an upload", Value::Null)),
            };
            return match go {
                Ok(()) => {
                    let _ = request.respond(Response::empty(StatusCode(204)));
                }
                Err(e) => respond_error(request, e),
            };
        }
        let body = if route == Route::Upload {
            Vec::new()
        } else {
            match read_body(&mut request, MAX_JSON_BODY) {
                Ok(b) if b.is_empty() || route.takes_json() => b,
                Ok(_) => {
                    return respond_error(
                        request,
                        ApiError::bad_request("this endpoint takes no request body", Value::Null),
                    );
                }
                Err(e) => return respond_error(request, e),
            }
        };
        if let Route::WebSocket(stream) = route {
            let principal = principal.expect("streams need a principal");
            return self.websocket(rt, request, stream, &principal);
        }
        let result = match &route {
            Route::Upload => self.upload(rt, &request, &info),
            Route::Login
            | Route::Logout
            | Route::Session
            | Route::ChangePassword
            | Route::ListTokens
            | Route::CreateToken
            | Route::RevokeToken { .. }
            | Route::Settings
            | Route::UpdateSettings => self.access_route(&route, &info, principal.as_ref(), &body),
            other => self.answer(rt, other.clone()),
        };
        match result {
            Ok(mut reply) => {
                if route.shows_traffic()
                    && self.ip_masking.load(Ordering::Relaxed)
                    && let Body::Json(value) = &mut reply.body
                {
                    crate::privacy::mask_value(value);
                }
                respond(request, reply)
            }
            Err(e) => respond_error(request, e),
        }
    }

    fn answer(&self, rt: &tokio::runtime::Runtime, route: Route) -> Result<Reply, ApiError> {
        match route {
            Route::Health => {
                // Healthy means the engine answers, not only this worker.
                self.ask(rt, "the engine", &self.engine, GetEngineStatus)?;
                Reply::ok(json!({"status": "ok", "uptime_secs": self.started.elapsed().as_secs()}))
            }
            Route::Stats => self.stats(rt),
            Route::TopTalkers { limit, with_geo } => self.top_talkers(rt, limit, with_geo),
            Route::Flows(p) => self.flows(rt, p),
            Route::Alerts(p) => self.alerts(rt, p),
            Route::Acknowledge(target) => self.acknowledge(rt, target),
            Route::Packets { limit } => {
                let p = self.pipeline();
                let packets = self.ask(rt, "metrics", &p.metrics, GetPackets { limit })?;
                Reply::ok(json!({"count": packets.len(), "packets": packets}))
            }
            Route::Packet { id } => {
                let p = self.pipeline();
                match self.ask(rt, "metrics", &p.metrics, GetPacket { id })? {
                    Some(packet) => Reply::ok(packet),
                    None => Err(ApiError::new(
                        404,
                        format!("packet {id} is not among the recent packets kept"),
                        json!({"id": id}),
                    )),
                }
            }
            Route::Geo { ip } => Reply::ok(self.geo.lookup(ip)),
            Route::StopReplay => {
                if self.ask(rt, "the engine", &self.engine, StopReplay)? {
                    Reply::ok(json!({"success": true}))
                } else {
                    Err(ApiError::new(409, "no replay is running", Value::Null))
                }
            }
            Route::Debug => self.debug(rt),
            Route::Metrics => self.metrics(rt),
            _ => unreachable!("handled in `handle`"),
        }
    }

    fn stats(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        let stats = self.ask(rt, "metrics", &p.metrics, GetStats { top_talkers: 10 })?;
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

    fn top_talkers(
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
        let stats = self.ask(rt, "metrics", &p.metrics, GetStats { top_talkers: limit })?;
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

    fn flows(&self, rt: &tokio::runtime::Runtime, query: FlowQuery) -> Result<Reply, ApiError> {
        let pipeline = self.pipeline();
        let mut flows: Vec<FlowRecord> =
            self.ask(rt, "flows", &pipeline.flows, GetActiveFlows(query.clone()))?;
        // A time range asks for history too: finished flows from the store.
        let historical = query.start.is_some() || query.end.is_some();
        if historical && let Some(store) = &self.store {
            let stored = self
                .ask(rt, "the store", store, QueryFlows(query.clone()))?
                .map_err(|e| ApiError::new(503, "storage unavailable", json!(e.0)))?;
            flows.extend(stored);
            flows.sort_by_key(|f| std::cmp::Reverse(f.last_seen));
            flows.truncate(query.limit);
        }
        Reply::ok(json!({
            "count": flows.len(),
            "source": if historical { "active+stored" } else { "active" },
            "flows": flows,
        }))
    }

    fn alerts(&self, rt: &tokio::runtime::Runtime, query: AlertQuery) -> Result<Reply, ApiError> {
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
            let stored = self
                .ask(rt, "the store", store, QueryAlerts(query.clone()))?
                .map_err(|e| ApiError::new(503, "storage unavailable", json!(e.0)))?;
            by_id.extend(stored.into_iter().map(|a| (a.id, a)));
        }
        by_id.extend(fresh.into_iter().map(|a| (a.id, a)));
        let mut alerts: Vec<Alert> = by_id
            .into_values()
            .filter(|a| !query.unacknowledged_only || !a.acknowledged)
            .collect();
        alerts.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp).then(b.id.cmp(&a.id)));
        alerts.truncate(query.limit);
        Reply::ok(json!({"count": alerts.len(), "alerts": alerts}))
    }

    fn acknowledge(
        &self,
        rt: &tokio::runtime::Runtime,
        target: AckTarget,
    ) -> Result<Reply, ApiError> {
        let pipeline = self.pipeline();
        let store_error = |e: crate::store::actor::StoreUnavailable| {
            ApiError::new(503, "storage unavailable", json!(e.0))
        };
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
                    acked.extend(
                        self.ask(rt, "the store", store, StoreAcknowledge { id: *id })?
                            .map_err(store_error)?,
                    );
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
                    let stored = self
                        .ask(
                            rt,
                            "the store",
                            store,
                            StoreAcknowledgeMatching {
                                timestamp: *timestamp,
                                source_ip: source_ip.clone(),
                            },
                        )?
                        .map_err(store_error)?;
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

    /// Whether an upload may start: none is replaying now.
    fn upload_may_start(&self, rt: &tokio::runtime::Runtime) -> Result<(), ApiError> {
        let status = self.ask(rt, "the engine", &self.engine, GetEngineStatus)?;
        match status.upload {
            Some(_) => Err(ApiError::new(
                409,
                "an upload is already replaying; stop it first with POST /pcap/replay/stop",
                Value::Null,
            )),
            None => Ok(()),
        }
    }

    /// Replays an upload the gate spooled to disk (the body is a multipart form).
    fn upload(
        &self,
        rt: &tokio::runtime::Runtime,
        request: &Request,
        info: &RequestInfo,
    ) -> Result<Reply, ApiError> {
        let limit = self.config.upload_max_mb * 1024 * 1024;
        let too_large = || {
            ApiError::new(
                413,
                format!(
                    "the upload is larger than {} MiB",
                    self.config.upload_max_mb
                ),
                json!({"limit_bytes": limit}),
            )
        };
        let dir = self.config.upload_dir();
        // The gate names the spool file; only a plain name of its own shape is opened.
        let spool = info
            .spool
            .as_deref()
            .filter(|n| n.starts_with(super::gate::SPOOL_PREFIX) && !n.contains(['/', '\\']))
            .ok_or_else(|| internal("the upload was not spooled by the front door".into()))?;
        let spooled = std::fs::File::open(dir.join(spool))
            .map_err(|e| internal(format!("cannot read the spooled upload: {e}")))?;
        let content_type = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_string())
            .unwrap_or_default();
        let boundary = multipart::boundary(&content_type).ok_or_else(|| {
            ApiError::new(
                415,
                "send the capture as multipart/form-data with a `file` field",
                json!({"content_type": content_type}),
            )
        })?;
        let mut reader = MultipartReader::new(spooled, &boundary, limit + 64 * 1024);
        let mut speed = 1.0f64;
        let mut file: Option<(tempfile::NamedTempFile, String)> = None;
        let bad = |e: MultipartError| match e {
            MultipartError::TooLarge { .. } => too_large(),
            MultipartError::Io(e) => {
                ApiError::bad_request("reading the upload failed", json!(e.to_string()))
            }
            MultipartError::Malformed(m) => {
                ApiError::bad_request("malformed multipart body", json!(m))
            }
        };
        while let Some(part) = reader.next_part().map_err(bad)? {
            match part.name.as_str() {
                "file" => {
                    let mut tmp = tempfile::Builder::new()
                        .prefix(&format!(
                            "{}{}-",
                            super::gate::UPLOAD_PREFIX,
                            std::process::id()
                        ))
                        .suffix(".pcap")
                        .tempfile_in(&dir)
                        .map_err(|e| internal(format!("cannot write to {}: {e}", dir.display())))?;
                    let n = reader.copy_part(tmp.as_file_mut()).map_err(bad)?;
                    if n > limit {
                        return Err(too_large());
                    }
                    let name = part.filename.unwrap_or_else(|| "upload".into());
                    file = Some((tmp, sanitize(&name)));
                }
                "speed" => {
                    let text = reader.read_text(32).map_err(bad)?;
                    speed = match text.trim().parse::<f64>() {
                        Ok(s) if s.is_finite() && (0.0..=1000.0).contains(&s) => s,
                        _ => {
                            return Err(ApiError::bad_request(
                                "speed must be a number from 0 (as fast as possible) to 1000",
                                json!({"value": text}),
                            ));
                        }
                    };
                }
                other => {
                    return Err(ApiError::bad_request(
                        format!("unexpected form field {other:?}"),
                        json!({"allowed": ["file", "speed"]}),
                    ));
                }
            }
        }
        let Some((tmp, name)) = file else {
            return Err(ApiError::bad_request(
                "the form has no `file` field",
                Value::Null,
            ));
        };
        let frames = check_capture(tmp.path())?;
        let describe = self
            .ask(
                rt,
                "the engine",
                &self.engine,
                StartUpload {
                    file: tmp.into_temp_path(),
                    name,
                    speed,
                },
            )?
            .map_err(|e| match e {
                UploadRejected::Busy(_) => ApiError::new(409, e.to_string(), Value::Null),
                UploadRejected::NotACapture(_) => ApiError::new(422, e.to_string(), Value::Null),
                UploadRejected::ShuttingDown => ApiError::new(503, e.to_string(), Value::Null),
            })?;
        Reply::ok(json!({
            "success": true,
            "message": format!("replaying {describe}"),
            "frames": frames,
            "speed": speed,
        }))
    }

    fn websocket(
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

    fn debug(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
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
                "flows_backlog_batches": backlog(c, flows.batches),
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
            "geoip": self.geo.status(),
            "peak_rss_bytes": crate::process::peak_rss_bytes(),
            "rss_bytes": crate::process::rss_bytes(),
        }))
    }

    fn metrics(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        let flows = self.ask(rt, "flows", &p.flows, GetFlowStats)?;
        let stats = self.ask(rt, "metrics", &p.metrics, GetStats { top_talkers: 0 })?;
        let alerts = self.ask(rt, "alerts", &p.alerts, GetAlerts(None))?;
        let hub = self.ask(rt, "the WebSocket hub", &self.hub, GetHubStatus)?;
        let store = match &self.store {
            Some(s) => Some(self.ask(rt, "the store", s, GetStoreStatus)?),
            None => None,
        };
        let c = &p.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut by_rule: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for a in &alerts {
            *by_rule
                .entry((a.alert_type.name(), a.severity.name()))
                .or_default() += 1;
        }
        let mut alert_family = Family::new(
            "tapir_alerts",
            "gauge",
            "Alerts held by the current pipeline, by rule and severity.",
        );
        for ((rule, severity), n) in by_rule {
            alert_family = alert_family.with(&[("rule", rule), ("severity", severity)], n as f64);
        }
        let protocols = Family::new(
            "tapir_protocol_packets_total",
            "counter",
            "Packets by protocol.",
        )
        .per_label(
            "protocol",
            stats.protocol_counts.iter().map(|(p, n)| (p, *n as f64)),
        );
        let ws = Family::new(
            "tapir_websocket_clients",
            "gauge",
            "Connected WebSocket clients by stream.",
        )
        .per_label("stream", hub.clients.iter().map(|(s, n)| (s, *n as f64)));
        let export_families = {
            let mut records = Family::new(
                "tapir_export_records_total",
                "counter",
                "Records (IPFIX data records, EVE events) sent, by target.",
            );
            let mut bytes = Family::new(
                "tapir_export_bytes_total",
                "counter",
                "Bytes sent, by target.",
            );
            let mut dropped = Family::new(
                "tapir_export_dropped_total",
                "counter",
                "Records that could not be sent (target down, buffer full), by target.",
            );
            for t in &self.export {
                let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
                let labels = [("kind", t.kind), ("target", t.target.as_str())];
                records = records.with(&labels, l(&t.records));
                bytes = bytes.with(&labels, l(&t.bytes));
                dropped = dropped.with(&labels, l(&t.dropped));
            }
            [records, bytes, dropped]
        };
        let mut families = vec![
            Family::single(
                "tapir_uptime_seconds",
                "gauge",
                "Seconds since start.",
                self.started.elapsed().as_secs_f64(),
            ),
            Family::new(
                "tapir_build_info",
                "gauge",
                "Version of the running binary.",
            )
            .with(
                &[("version", env!("CARGO_PKG_VERSION")), ("mode", self.mode)],
                1.0,
            ),
            Family::single(
                "tapir_packets_total",
                "counter",
                "Frames captured by the current source.",
                load(&c.frames),
            ),
            Family::single(
                "tapir_bytes_total",
                "counter",
                "Bytes captured by the current source.",
                load(&c.bytes),
            ),
            Family::single(
                "tapir_packets_decoded_total",
                "counter",
                "Frames decoded to IP packets.",
                load(&c.decoded),
            ),
            Family::new(
                "tapir_packets_dropped_total",
                "counter",
                "Packets lost, by where they were lost.",
            )
            .with(&[("reason", "queue_full")], load(&c.packets_dropped))
            .with(&[("reason", "kernel")], load(&c.libpcap_dropped))
            .with(&[("reason", "interface")], load(&c.libpcap_if_dropped)),
            protocols,
            Family::single(
                "tapir_flows_active",
                "gauge",
                "Flows in the flow table.",
                flows.active as f64,
            ),
            Family::single(
                "tapir_flows_created_total",
                "counter",
                "Flows created.",
                flows.created as f64,
            ),
            Family::single(
                "tapir_flows_evicted_total",
                "counter",
                "Flows evicted because the table was full.",
                flows.evicted as f64,
            ),
            Family::single(
                "tapir_queue_backlog_batches",
                "gauge",
                "Packet batches handed to the flow table but not yet processed.",
                backlog(c, flows.batches) as f64,
            ),
            alert_family,
            ws,
            Family::single(
                "tapir_websocket_dropped_slow_total",
                "counter",
                "WebSocket clients dropped for being too slow.",
                hub.dropped_slow as f64,
            ),
            {
                let g = self.gate.counts();
                Family::new(
                    "tapir_http_rejected_total",
                    "counter",
                    "Connections and requests the front door refused or closed, by reason.",
                )
                .with(&[("reason", "connection_limit")], g.refused as f64)
                .with(&[("reason", "evicted_idle")], g.evicted as f64)
                .with(&[("reason", "header_timeout")], g.header_timeouts as f64)
                .with(&[("reason", "header_too_large")], g.header_too_large as f64)
                .with(&[("reason", "body_timeout")], g.body_timeouts as f64)
                .with(&[("reason", "body_too_large")], g.body_too_large as f64)
                .with(&[("reason", "upstream_busy")], g.upstream_busy as f64)
                .with(&[("reason", "bad_request")], g.bad_requests as f64)
                .with(&[("reason", "tls_handshake")], g.tls_failures as f64)
            },
            Family::single(
                "tapir_http_connections",
                "gauge",
                "Open client connections.",
                self.gate.counts().open as f64,
            ),
            Family::single(
                "tapir_rss_bytes",
                "gauge",
                "Resident memory.",
                crate::process::rss_bytes() as f64,
            ),
        ];
        families.extend(export_families);
        if let Some(s) = store {
            families.push(Family::single(
                "tapir_store_available",
                "gauge",
                "1 if the database is writable.",
                f64::from(u8::from(s.available)),
            ));
            families.push(Family::single(
                "tapir_store_pending_records",
                "gauge",
                "Records waiting for the next write.",
                s.pending as f64,
            ));
            families.push(Family::single(
                "tapir_store_dropped_total",
                "counter",
                "Records dropped while the disk was unavailable.",
                s.dropped as f64,
            ));
            families.push(Family::single(
                "tapir_store_errors_total",
                "counter",
                "Failed database writes.",
                s.errors as f64,
            ));
            if let Some(db) = s.database {
                families.push(Family::single(
                    "tapir_store_size_bytes",
                    "gauge",
                    "Database size on disk.",
                    db.size_on_disk as f64,
                ));
                families.push(
                    Family::new("tapir_store_records", "gauge", "Stored records by kind.")
                        .with(&[("kind", "flows")], db.flows.records as f64)
                        .with(&[("kind", "alerts")], db.alerts.records as f64)
                        .with(&[("kind", "snapshots")], db.snapshots.records as f64),
                );
            }
        }
        Ok(Reply {
            status: 200,
            body: Body::Text(
                prometheus::render(&families),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            headers: Vec::new(),
        })
    }
}

/// Largest body read on requests other than uploads (JSON bodies; others are refused).
const MAX_JSON_BODY: u64 = 64 * 1024;

/// Reads a request's declared body, up to `limit` bytes. (A request that declares none is
/// left alone: for an upgrade, the "body" is the rest of the connection.)
fn read_body(request: &mut Request, limit: u64) -> Result<Vec<u8>, ApiError> {
    if !has_body(request) {
        return Ok(Vec::new());
    }
    let mut body = Vec::new();
    let mut limited = std::io::Read::take(request.as_reader(), limit + 1);
    match std::io::Read::read_to_end(&mut limited, &mut body) {
        Ok(n) if n as u64 > limit => Err(ApiError::new(
            413,
            "the request body is too large",
            json!({"limit_bytes": limit}),
        )),
        Ok(_) => Ok(body),
        Err(e) => Err(ApiError::bad_request(
            "reading the request failed",
            json!(e.to_string()),
        )),
    }
}

/// Whether a request declares a body (the gate always sends a `Content-Length`).
fn has_body(request: &Request) -> bool {
    request.body_length().unwrap_or(0) > 0
}

/// Reads the whole upload as a capture: frames counted, or why it is not a usable capture.
fn check_capture(path: &std::path::Path) -> Result<u64, ApiError> {
    let mut source = FileSource::open(path).map_err(|e| match e {
        CaptureError::NotACapture { detail, .. } => ApiError::new(
            415,
            "the upload is not a capture file; send pcap or pcapng (optionally zstd-compressed)",
            json!(detail),
        ),
        other => internal(other.to_string()),
    })?;
    let mut frames = 0u64;
    loop {
        match source.read_some(4096, &mut |_| frames += 1) {
            Ok(status) if status.end => break,
            Ok(_) => {}
            Err(e) => {
                return Err(ApiError::new(
                    422,
                    "the capture is damaged: it is cut short or corrupt",
                    json!({"frames_readable": frames, "reason": e.to_string()}),
                ));
            }
        }
    }
    if frames == 0 {
        return Err(ApiError::new(
            422,
            "the capture holds no packets",
            Value::Null,
        ));
    }
    Ok(frames)
}

/// Batches sent by capture that the flow table has not taken in yet.
fn backlog(c: &crate::capture::CaptureCounters, taken: u64) -> u64 {
    let sent = c.batches_sent.load(Ordering::Relaxed);
    let dropped = c.batches_dropped.load(Ordering::Relaxed);
    sent.saturating_sub(dropped).saturating_sub(taken)
}

/// A file name fit for logs and `/debug`: no paths, no control characters, bounded.
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.chars().filter(|c| !c.is_control()).take(100).collect()
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// Sends an embedded file: 304 when the client has it, gzip when the client takes it.
fn respond_asset(request: Request, asset: &super::assets::Asset) {
    let has = |name: &'static str, want: &str| {
        request
            .headers()
            .iter()
            .any(|h| h.field.equiv(name) && h.value.as_str().contains(want))
    };
    let base = |r: Response<std::io::Cursor<&'static [u8]>>| {
        secure(r)
            .with_header(header("ETag", asset.etag))
            // Always revalidate (cheap: a 304); the ETag is the content hash.
            .with_header(header("Cache-Control", "no-cache"))
            .with_header(header("Vary", "Accept-Encoding"))
    };
    if has("If-None-Match", asset.etag) {
        let empty = Response::new(
            StatusCode(304),
            Vec::new(),
            std::io::Cursor::new(&[][..]),
            Some(0),
            None,
        );
        let _ = request.respond(base(empty));
        return;
    }
    let gzip = has("Accept-Encoding", "gzip");
    let body = if gzip { asset.gzip } else { asset.body };
    // Served from the binary's own bytes, without a copy.
    let data = Response::new(
        StatusCode(200),
        Vec::new(),
        std::io::Cursor::new(body),
        Some(body.len()),
        None,
    );
    let mut response = base(data).with_header(header("Content-Type", asset.content_type));
    if gzip {
        response = response.with_header(header("Content-Encoding", "gzip"));
    }
    let _ = request.respond(response);
}

/// The security headers every response carries (and HSTS under TLS).
fn secure<R: std::io::Read>(response: Response<R>) -> Response<R> {
    // A known length is always sent as such: tiny_http would switch to chunked at 32 KiB, and
    // the front door reads a response it can size in one go.
    let response = response
        .with_chunked_threshold(usize::MAX)
        .with_header(header("Content-Security-Policy", super::assets::CSP))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("X-Frame-Options", "DENY"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header("Cross-Origin-Opener-Policy", "same-origin"))
        .with_header(header("Cross-Origin-Resource-Policy", "same-origin"));
    if TLS_ON.load(Ordering::Relaxed) {
        response.with_header(header("Strict-Transport-Security", "max-age=31536000"))
    } else {
        response
    }
}

fn respond(request: Request, reply: Reply) {
    let (bytes, content_type) = match reply.body {
        Body::Json(v) => (v.to_string().into_bytes(), "application/json"),
        Body::Text(t, ct) => (t.into_bytes(), ct),
    };
    let mut response = secure(Response::from_data(bytes))
        .with_status_code(StatusCode(reply.status))
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"));
    for (name, value) in &reply.headers {
        response = response.with_header(header(name, value));
    }
    let _ = request.respond(response);
}

fn respond_error(request: Request, e: ApiError) {
    let mut response = secure(Response::from_data(e.body().to_string().into_bytes()))
        .with_status_code(StatusCode(e.status))
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"));
    if let Some(allow) = e.allow {
        response = response.with_header(header("Allow", allow));
    }
    for (name, value) in &e.headers {
        response = response.with_header(header(name, value));
    }
    // A body the client is still sending is drained by tiny_http (bounded by its own
    // limit) or the connection is closed.
    let _ = request.respond(response);
}
