//! HTTP: the REST API, WebSocket streams and (later) the dashboard, served by tiny_http.
//!
//! A few worker threads take requests from tiny_http and answer them by asking the actors
//! (`api`); WebSocket clients get a writer thread each, fed by the hub actor (`hub`, `ws`).
//! Socket timeouts are set on the listening socket, which Linux copies to every accepted
//! connection: a client that stalls while sending or receiving is cut off after
//! `io_timeout_secs`, and a worker is never stuck on one.

pub mod api;
pub mod hub;
pub mod multipart;
pub mod prometheus;
pub mod route;
pub mod ws;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use api::Api;
use hub::HubConfig;

/// Server settings (the `[server]` section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Threads answering HTTP requests.
    pub workers: usize,
    /// Largest accepted capture upload, in MiB.
    pub upload_max_mb: u64,
    /// Where uploads are kept while they replay (deleted after). Unset: `$STATE_DIRECTORY/uploads`
    /// under systemd, else the system's temporary directory.
    pub upload_dir: Option<PathBuf>,
    /// A connection that sends or receives nothing for this long is closed.
    pub io_timeout_secs: u64,
    /// How long a request waits for an actor's answer before a 503.
    pub actor_timeout_ms: u64,
    pub websocket: HubConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8000,
            workers: 4,
            upload_max_mb: 256,
            upload_dir: None,
            io_timeout_secs: 15,
            actor_timeout_ms: 5000,
            websocket: HubConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 64 {
            return Err("server.workers must be between 1 and 64".into());
        }
        if self.upload_max_mb == 0 {
            return Err("server.upload_max_mb must be at least 1".into());
        }
        if self.io_timeout_secs == 0 {
            return Err("server.io_timeout_secs must be at least 1".into());
        }
        if self.websocket.client_queue == 0 {
            return Err("server.websocket.client_queue must be at least 1".into());
        }
        Ok(())
    }

    /// The directory uploads are written to.
    pub fn upload_dir(&self) -> PathBuf {
        match (&self.upload_dir, std::env::var_os("STATE_DIRECTORY")) {
            (Some(dir), _) => dir.clone(),
            // systemd may pass several directories separated by colons; the first is ours.
            (None, Some(state)) => {
                let first = state
                    .to_string_lossy()
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .to_string();
                PathBuf::from(first).join("uploads")
            }
            (None, None) => std::env::temp_dir(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: {source}; is another server using the port? choose one with --port"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Start(String),
}

/// The running HTTP server: its address and the handle that stops it.
pub struct HttpServer {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `host:port` (port 0 picks a free one) and starts the workers.
    pub fn start(config: &ServerConfig, api: Arc<Api>) -> Result<HttpServer, ServeError> {
        let addr = format!("{}:{}", config.host, config.port);
        let bind = |source| ServeError::Bind {
            addr: addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&addr).map_err(bind)?;
        set_timeouts(&listener, Duration::from_secs(config.io_timeout_secs)).map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None)
                .map_err(|e| ServeError::Start(e.to_string()))?,
        );
        let workers = (0..config.workers)
            .map(|i| {
                let server = Arc::clone(&server);
                let api = Arc::clone(&api);
                std::thread::Builder::new()
                    .name(format!("tapir-http-{i}"))
                    .spawn(move || api::worker(&server, &api))
                    .expect("spawning an HTTP worker")
            })
            .collect();
        Ok(HttpServer {
            addr: local,
            server,
            workers,
        })
    }

    /// Stops accepting requests and waits for the workers to finish the ones they have.
    pub fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Sets send and receive timeouts on the listening socket; accepted connections inherit them.
fn set_timeouts(listener: &TcpListener, timeout: Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: a valid socket descriptor and a timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
