//! `tapir run`, `replay` and `demo`: the appliance process. Opens the database, the GeoIP
//! database and the capture source (so that a wrong path or interface fails at once), starts
//! the actors and the HTTP server, and on SIGTERM or SIGINT stops capture, drains the
//! pipelines into the store, syncs it and closes the WebSockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix::Actor;

use crate::capture::CaptureError;
use crate::config::Config;
use crate::engine::{BaseSource, Engine};
use crate::geo::{GeoError, GeoIp};
use crate::http::hub::HubActor;
use crate::http::{Api, HttpServer, ServeError};
use crate::messages::{CloseAll, FlushStore, Shutdown};
use crate::pipeline::StoreService;
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
}

/// Runs until SIGTERM or SIGINT. `ready` is called with the bound address once serving.
pub fn run(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), StartError> {
    let started = Instant::now();
    let config = options.config;
    let store = Store::open(&options.db_path, &config.store)?;
    let geo = Arc::new(GeoIp::open(&config.geoip)?);
    let source = options.base.open()?;
    let log = |m: String| eprintln!("tapir: {m}");
    if let Some(reason) = geo.status().reason {
        log(reason);
    }

    let system = actix::System::new();
    let result = system.block_on(async move {
        let store =
            StoreService::start(StoreActor::from_store(store, config.store.clone()).with_log(log));
        let hub = HubActor::new(config.server.websocket.clone()).start();
        let engine = Engine::new(
            config.clone(),
            options.base,
            source,
            Some(store.addr.clone()),
            hub.clone(),
            Box::new(log),
        )
        .start();
        let api = Arc::new(Api {
            engine: engine.clone(),
            store: Some(store.addr.clone()),
            hub: hub.clone(),
            geo,
            config: config.server.clone(),
            mode: options.mode,
            started,
            stopping: AtomicBool::new(false),
        });
        let http = HttpServer::start(&config.server, Arc::clone(&api))?;
        ready(http.addr);

        let listener_died = wait_for_signal_or(&http.listener_dead).await;
        if listener_died {
            log("the HTTP listener stopped accepting connections; shutting down so that the service manager restarts tapir".into());
        }
        log("shutting down: stopping capture, flushing the store".into());
        api.stopping.store(true, Ordering::Relaxed);
        hub.do_send(CloseAll);
        let _ = engine.send(Shutdown).await;
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

/// Waits for SIGTERM or SIGINT (false) or for `dead` to be set (true).
async fn wait_for_signal_or(dead: &AtomicBool) -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = async {
        while !dead.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
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
