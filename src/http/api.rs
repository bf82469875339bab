//! Dispatch: the worker loop, and for each request its host check, route, access decision
//! (`access::decide`), body and handler; the handlers live in `handlers` (data), `account`
//! (login, tokens, settings), `upload` and `prometheus`, and answer through `reply`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use serde_json::{Value, json};
use tiny_http::{Request, Response, StatusCode};

use super::ServerConfig;
use super::access::RequestInfo;
use super::gate::GateStats;
use super::hub::HubActor;
use super::reply::{
    Body, MAX_JSON_BODY, Reply, read_body, respond, respond_asset, respond_error, unavailable,
};
use super::route::{self, ApiError, Route};
use crate::auth::Auth;
use crate::engine::Engine;
use crate::engine::{GetEngineStatus, StopReplay};
use crate::geo::GeoIp;
use crate::metrics::actor::{GetPacket, GetPackets};
use crate::pipeline::PipelineAddrs;
use crate::store::StoreConfig;
use crate::store::actor::StoreActor;

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
    /// The device inventory (`None` when `[devices] enabled = false`).
    pub devices: Option<crate::devices::SharedDevices>,
    /// The threat lists and their refresher (`None` without `[[intel.list]]`).
    pub intel: Option<(
        crate::intel::SharedIntel,
        crate::intel::refresh::IntelHandle,
    )>,
    /// The notification targets (`None` without `[[notify]]`).
    pub notify: Option<Arc<crate::notify::control::NotifyControl>>,
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
    pub(super) fn ask<A, M>(
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
    pub(super) fn pipeline(&self) -> PipelineAddrs {
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
            Route::AnnotateDevice { mac } => self.annotate_device(&info, *mac, &body),
            Route::NotifyTest => self.notify_test(&info, &body),
            Route::SaveNotifyTarget => self.save_notify_target(&info, &body),
            Route::DeleteNotifyTarget { name } => self.delete_notify_target(name),
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
            Route::History(q) => self.history(rt, q),
            Route::Host { ip, from, to } => self.host(rt, ip, from, to),
            Route::Names { ip } => self.names(rt, ip),
            Route::Apps => self.apps(rt),
            Route::Devices(q) => self.devices(q),
            Route::Device { mac } => self.device(rt, mac),
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
            Route::Intel => Reply::ok(self.intel_view()),
            Route::ReloadIntel => match &self.intel {
                Some((_, handle)) => {
                    handle.reload();
                    Reply::ok(json!({"reloading": true}))
                }
                None => Err(ApiError::new(
                    409,
                    "no threat lists are configured; add [[intel.list]] entries to the config",
                    Value::Null,
                )),
            },
            Route::Notify => Reply::ok(self.notify_view()),
            _ => unreachable!("handled in `handle`"),
        }
    }
}
