//! HTTP: the REST API, WebSocket streams and the dashboard.
//!
//! The public socket belongs to the gate (`gate`): it terminates TLS, enforces the size and
//! time limits and the connection cap, and passes whole requests to tiny_http over a Unix
//! socket in a private directory. A few worker threads take requests from tiny_http and
//! answer them by asking the actors (`api`); WebSocket clients get a writer thread each, fed
//! by the hub actor (`hub`, `ws`). tiny_http's accept loop ends at its first error and its
//! thread pool can leave a connection queued when several arrive at once, so a watchdog
//! thread connects to its socket four times a second: a queued connection is picked up (see
//! `watchdog`), and if the listener does die the process ends with an error, for the
//! service manager to restart it.

pub mod access;
mod account;
mod alerting;
pub mod api;
pub mod assets;
pub mod config;
mod devices;
pub mod gate;
mod handlers;
pub mod hub;
pub mod multipart;
pub mod prometheus;
mod reply;
pub mod route;
pub mod tls;
mod upload;
pub mod ws;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use api::Api;
pub use config::{HubConfig, ServerConfig, TlsConfig};
use gate::{Gate, Limits};
pub use reply::set_tls;

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
    gate: Gate,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Set by the watchdog when tiny_http stopped accepting.
    pub listener_dead: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    /// Holds tiny_http's socket; removed when the server goes.
    _private: tempfile::TempDir,
}

/// An HTTP server that has bound its port, its private socket and its upload directory but
/// serves nothing yet. Binding comes first so that a taken port or an unwritable directory
/// fails before capture, the store and the actors start.
pub struct BoundServer {
    listener: TcpListener,
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    socket: std::path::PathBuf,
    limits: Limits,
    workers: usize,
    private: tempfile::TempDir,
}

impl HttpServer {
    /// Binds `host:port` (port 0 picks a free one), tiny_http's private socket and the upload
    /// directory.
    pub fn bind(config: &ServerConfig) -> Result<BoundServer, ServeError> {
        let addr = format!("{}:{}", config.host, config.port);
        let bind = |source| ServeError::Bind {
            addr: addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&addr).map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        // Only this process may reach tiny_http: its socket is in a directory of mode 0700.
        let private = tempfile::Builder::new()
            .prefix("tapir-http-")
            .tempdir()
            .map_err(|e| {
                ServeError::Start(format!(
                    "cannot make a private directory in {}: {e}; make it writable for tapir, or set TMPDIR (a binary with file capabilities ignores TMPDIR and uses /tmp)",
                    std::env::temp_dir().display()
                ))
            })?;
        let start_err = |e: std::io::Error| ServeError::Start(e.to_string());
        let socket = private.path().join("http.sock");
        let inner = UnixListener::bind(&socket).map_err(start_err)?;
        let server = Arc::new(
            tiny_http::Server::from_listener(inner, None)
                .map_err(|e| ServeError::Start(e.to_string()))?,
        );
        let upload_dir = config.upload_dir();
        std::fs::create_dir_all(&upload_dir).map_err(|e| {
            ServeError::Start(format!(
                "cannot create the upload directory {}: {e}; set [server] upload_dir",
                upload_dir.display()
            ))
        })?;
        let orphans = gate::remove_orphan_uploads(&upload_dir);
        if orphans > 0 {
            eprintln!(
                "tapir: deleted {orphans} partial upload(s) left in {} by an earlier run",
                upload_dir.display()
            );
        }
        let limits = Limits {
            max_connections: config.max_connections,
            max_header: (config.max_header_kb * 1024) as usize,
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            io_timeout: Duration::from_secs(config.io_timeout_secs),
            max_body: config.max_body_kb * 1024,
            // Room for the multipart framing around the file.
            max_upload: config.upload_max_mb * 1024 * 1024 + 64 * 1024,
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            upload_timeout: Duration::from_secs(config.upload_timeout_secs),
            upload_dir,
            upstream_connections: config.upstream_connections(),
            max_upgrades: config.websocket.max_clients,
            answer_timeout: ANSWER_TIMEOUT,
        };
        Ok(BoundServer {
            listener,
            addr: local,
            server,
            socket,
            limits,
            workers: config.workers,
            private,
        })
    }
    /// Stops accepting requests and waits for the workers to finish the ones they have.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.gate.stop();
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

impl BoundServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts the gate (with TLS when `tls` is given), the workers and the watchdog.
    pub fn start(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
        api: Arc<Api>,
    ) -> Result<HttpServer, ServeError> {
        let BoundServer {
            listener,
            addr,
            server,
            socket,
            limits,
            workers,
            private,
        } = self;
        let gate = Gate::start(listener, socket.clone(), tls, limits, Arc::clone(&api.gate))
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let workers = (0..workers)
            .map(|i| {
                let server = Arc::clone(&server);
                let api = Arc::clone(&api);
                std::thread::Builder::new()
                    .name(format!("tapir-http-{i}"))
                    .spawn(move || api::worker(&server, &api))
                    .expect("spawning an HTTP worker")
            })
            .collect();
        let listener_dead = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let (dead, stop) = (Arc::clone(&listener_dead), Arc::clone(&stopping));
        std::thread::Builder::new()
            .name("tapir-http-watchdog".into())
            .spawn(move || watchdog(&socket, &dead, &stop))
            .expect("spawning the HTTP watchdog");
        Ok(HttpServer {
            addr,
            server,
            gate,
            workers,
            listener_dead,
            stopping,
            _private: private,
        })
    }
}

/// Connects to tiny_http every `WATCHDOG_EVERY`: a connection its thread pool left queued
/// (its idle-thread count can be stale when connections arrive in a burst, as a browser's
/// do) is picked up within that time, because the watchdog's own short connection makes a
/// pool thread finish a task and take the next. Flags the listener dead when a connection
/// is refused.
fn watchdog(socket: &Path, dead: &AtomicBool, stopping: &AtomicBool) {
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(WATCHDOG_EVERY);
        match UnixStream::connect(socket) {
            Ok(stream) => drop(stream),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if !stopping.load(Ordering::Relaxed) {
                    dead.store(true, Ordering::Relaxed);
                }
                return;
            }
            // Busy (a full backlog): the next round tries again.
            Err(_) => {}
        }
    }
}

/// How long tiny_http may take to answer one request (an upload is checked whole first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the watchdog connects (see `watchdog`).
const WATCHDOG_EVERY: Duration = Duration::from_millis(250);
