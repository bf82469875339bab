//! `tapir run`, `replay` and `demo`: the appliance process. Opens the database, the GeoIP
//! database and the capture source (so that a wrong path or interface fails at once), starts
//! the actors and the HTTP server, and on SIGTERM or SIGINT stops capture, drains the
//! pipelines into the store, syncs it and closes the WebSockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::Actor;

use crate::auth::{Auth, FileError};
use crate::capture::CaptureError;
use crate::config::Config;
use crate::engine::Shutdown;
use crate::engine::{BaseSource, Engine};
use crate::geo::{GeoError, GeoIp};
use crate::http::hub::CloseAll;
use crate::http::hub::HubActor;
use crate::http::tls::{Tls, TlsError};
use crate::http::{Api, HttpServer, ServeError};
use crate::messages::StoreDevices;
use crate::pipeline::{ExportService, Listeners, PipelineConfig, StoreService};
use crate::store::actor::FlushStore;
use crate::store::actor::StoreActor;
use crate::store::{Store, StoreError};

/// What to serve.
pub struct ServeOptions {
    pub mode: &'static str,
    pub base: BaseSource,
    pub config: Config,
    /// The database directory (already resolved from CLI, env, file, default).
    pub db_path: PathBuf,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Credentials(#[from] FileError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("cannot start the notification threads: {0}")]
    Notify(std::io::Error),
    #[error(
        "auth.enabled = false is only allowed on a loopback address (server.host is {0}); anyone on the network could use the appliance"
    )]
    OpenToNetwork(String),
}

/// Whether logins are required: by default yes, except for the demo on a loopback address.
fn auth_required(options: &ServeOptions) -> Result<bool, StartError> {
    let host = &options.config.server.host;
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match options.config.auth.enabled {
        Some(false) if !loopback => Err(StartError::OpenToNetwork(host.clone())),
        Some(on) => Ok(on),
        None => Ok(!(options.mode == "demo" && loopback)),
    }
}

/// Runs until SIGTERM or SIGINT. `ready` is called with the bound address and whether it
/// speaks TLS once serving.
pub fn run(options: ServeOptions, ready: impl FnOnce(SocketAddr, bool)) -> Result<(), StartError> {
    let started = Instant::now();
    let log = |m: String| eprintln!("tapir: {m}");
    let auth_on = auth_required(&options)?;
    let config = options.config;
    // The port first: a taken one fails before anything else starts.
    let bound = HttpServer::bind(&config.server)?;
    let mut store = Store::open(&options.db_path, &config.store)?;
    store.set_community_seed(config.flows.community_id_seed);
    let pipeline_config = config.pipeline();
    if let Some(book) = &pipeline_config.devices {
        let (devices, state) = store.load_devices()?;
        book.lock().inventory.restore(devices, state);
    }
    let geo = Arc::new(GeoIp::open(&config.geoip)?);
    if geo.status().database.is_some() {
        let geo = geo.clone();
        store.set_locate(Arc::new(move |ip| geo.country_code(ip)));
    }
    let source = options.base.open()?;
    if let Some(reason) = geo.status().reason {
        log(reason);
    }
    let exporter = crate::export::Exporter::open(&config.export)?;
    // The lists load before the first packet is matched; downloads are kept beside the
    // database.
    let intel = pipeline_config.intel.clone().map(|shared| {
        let handle = crate::intel::refresh::start(
            shared.clone(),
            config.intel.clone(),
            Some(options.db_path.join("intel")),
        );
        for list in shared.status(crate::intel::unix_now()) {
            match &list.last_error {
                Some(e) => log(format!("threat list {}: {e}", list.name)),
                None => log(format!(
                    "threat list {}: {} entries{}",
                    list.name,
                    list.entries.total(),
                    if list.malformed > 0 {
                        format!(", {} lines not understood", list.malformed)
                    } else {
                        String::new()
                    }
                )),
            }
        }
        (shared, handle)
    });
    let export_targets = exporter.as_ref().map(|e| e.targets()).unwrap_or_default();
    // Credentials and TLS last: a start that fails on its input leaves nothing behind.
    let credentials = config.auth.file_for(&options.db_path);
    let tls = if config.server.tls.enabled {
        let dir = credentials
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tls = Tls::setup(&config.server.tls, dir)?;
        log(format!(
            "TLS certificate {}{}, SHA-256 fingerprint {}",
            tls.cert_path.display(),
            if tls.generated {
                " (generated, self-signed)"
            } else {
                ""
            },
            tls.fingerprint
        ));
        Some(tls)
    } else {
        None
    };
    let auth = if auth_on {
        let mut auth = Auth::open(config.auth.clone(), credentials.clone())?;
        if let Some(password) = auth.ensure_admin()? {
            log(format!(
                "no admin password is set yet. One-time password for user \"admin\": {password}  (it must be changed at first login; or set one with `tapir passwd`)"
            ));
        }
        Some(auth)
    } else {
        log(
            "authentication is off: anyone who can reach this loopback address can use tapir"
                .into(),
        );
        None
    };
    let ip_masking = Arc::new(AtomicBool::new(
        auth.as_ref()
            .and_then(|a| a.credentials().settings.ip_masking)
            .unwrap_or(config.privacy.ip_masking),
    ));
    crate::process::raise_file_limit();
    crate::process::trim_heap_periodically(crate::process::TRIM_HEAP_EVERY);

    let system = actix::System::new();
    let result = system.block_on(async move {
        let store =
            StoreService::start(StoreActor::from_store(store, config.store.clone()).with_log(log));
        let export = exporter.map(ExportService::start);
        let hub = HubActor::new(config.server.websocket.clone())
            .with_mask(Arc::clone(&ip_masking))
            .start();
        let devices = pipeline_config.devices.clone();
        // Targets of the config, and those an admin added (kept with the credentials).
        let saved = auth
            .as_ref()
            .map(|a| a.credentials().settings.notify.clone())
            .unwrap_or_default();
        let notify = match crate::notify::control::NotifyControl::start(
            config.notify.clone(),
            saved,
            config.server.public_url.clone(),
            devices.clone(),
        ) {
            Ok(n) => n,
            Err(e) => {
                if let Some(export) = export {
                    let _ = export.stop().await;
                }
                let _ = store.addr.send(FlushStore).await;
                store.stop();
                return Err(StartError::Notify(e));
            }
        };
        let engine = Engine::new(
            PipelineConfig {
                store_intake: Some(store.intake.clone()),
                ..pipeline_config
            },
            options.base,
            source,
            Some(store.addr.clone()),
            Listeners {
                alerts: hub.clone().recipient(),
                pipeline: hub.clone().recipient(),
                notify: Some(notify.recipient()),
            },
            export.as_ref().map(|e| e.addr.clone()),
            Box::new(log),
        );
        let pipeline = engine.pipeline_watch();
        let engine = engine.start();
        let api = Arc::new(Api {
            engine: engine.clone(),
            pipeline,
            store: Some(store.addr.clone()),
            hub: hub.clone(),
            geo,
            config: config.server.clone(),
            mode: options.mode,
            started,
            stopping: AtomicBool::new(false),
            auth: auth.map(|a| Arc::new(Mutex::new(a))),
            gate: Arc::default(),
            ip_masking,
            store_config: config.store.clone(),
            tls_fingerprint: tls.as_ref().map(|t| t.fingerprint.clone()),
            export: export_targets,
            hosts: crate::http::access::Hosts::new(
                config.server.public_url.as_deref(),
                &config.server.allowed_hosts,
            ),
            hashing: Default::default(),
            devices,
            intel,
            notify: Some(notify),
        });
        let tls_on = tls.is_some();
        crate::http::set_tls(tls_on);
        // Listening for SIGTERM before saying it serves: a stop right after the start must
        // shut down cleanly too, not end the process by the signal's default action.
        let signals = stop_signals();
        let http = match bound.start(tls.map(|t| t.config), Arc::clone(&api)) {
            Ok(http) => http,
            Err(e) => {
                // Stop what started before answering: the actors end inside the system.
                let _ = engine.send(Shutdown).await;
                if let Some(export) = export {
                    let _ = export.stop().await;
                }
                let _ = store.addr.send(FlushStore).await;
                store.stop();
                return Err(StartError::Serve(e));
            }
        };
        ready(http.addr, tls_on);

        let listener_died = wait_for_signal_or(signals, &http.listener_dead).await;
        if listener_died {
            log("the HTTP listener stopped accepting connections; shutting down so that the service manager restarts tapir".into());
        }
        log("shutting down: stopping capture, flushing the store".into());
        api.stopping.store(true, Ordering::Relaxed);
        hub.do_send(CloseAll);
        let _ = engine.send(Shutdown).await;
        if let Some(export) = export {
            let _ = export.stop().await;
        }
        // The drained pipelines' last alerts, and the digests held for the minute, go out;
        // a target that does not answer within 5 s loses them (counted as pending).
        if let Some(notify) = &api.notify {
            notify.flush(std::time::Duration::from_secs(5)).await;
        }
        // What the devices changed since their actors last wrote (a drained pipeline's
        // actor writes no more).
        if let Some(book) = &api.devices {
            let changes = book.lock().inventory.take_changes();
            let _ = store
                .addr
                .send(StoreDevices {
                    devices: changes.devices,
                    removed: changes.removed,
                    state: changes.state,
                })
                .await;
        }
        match store.addr.send(FlushStore).await {
            Ok(status) if status.pending > 0 => log(format!(
                "{} records could not be stored: {}",
                status.pending,
                status.last_error.unwrap_or_default()
            )),
            Ok(_) => {}
            Err(e) => log(format!("the store did not answer at shutdown: {e}")),
        }
        store.stop();
        Ok::<_, StartError>((http, listener_died))
    });
    // Outside the actor system: the workers may be waiting on actors that are gone now; their
    // requests fail with 503 and they end.
    let (http, listener_died) = result?;
    http.stop();
    if listener_died {
        return Err(StartError::Serve(ServeError::Start(
            "the HTTP listener stopped".into(),
        )));
    }
    Ok(())
}

/// SIGTERM and SIGINT, caught from now on.
type StopSignals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;

fn stop_signals() -> StopSignals {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => None,
    }
}

/// Waits for SIGTERM or SIGINT (false) or for `dead` to be set (true).
async fn wait_for_signal_or(signals: StopSignals, dead: &AtomicBool) -> bool {
    let watch = async {
        while !dead.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    };
    let Some((mut term, mut int)) = signals else {
        // Without signal handling the server still serves until its listener dies.
        watch.await;
        return true;
    };
    tokio::select! {
        _ = term.recv() => false,
        _ = int.recv() => false,
        _ = watch => true,
    }
}
