//! HTTP: the REST API, WebSocket streams and (later) the dashboard, served by tiny_http.
//!
//! A few worker threads take requests from tiny_http and answer them by asking the actors
//! (`api`); WebSocket clients get a writer thread each, fed by the hub actor (`hub`, `ws`).
//! Send and receive timeouts are set on the listening socket, which Linux copies to every
//! accepted connection: a client that stalls while sending a request or stops reading (a
//! stalled WebSocket) is cut off after `io_timeout_secs`, and an idle keep-alive connection
//! is closed (tiny_http answers 408), which frees its tiny_http thread. On a listener the
//! receive timeout also applies to `accept()`, and tiny_http's accept loop ends at its first
//! error, so a watchdog thread connects to the server four times a second: the loop never
//! sees a timeout, a connection tiny_http's thread pool left queued is picked up (see
//! `watchdog`), and if the listener does die (out of file descriptors, say) the watchdog
//! notices and the process ends with an error, for the service manager to restart it.

pub mod api;
pub mod assets;
pub mod hub;
pub mod multipart;
pub mod prometheus;
pub mod route;
pub mod ws;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// A connection that sends nothing, or takes nothing we send, for this long is closed.
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
    /// Set by the watchdog when the listener stopped accepting.
    pub listener_dead: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
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
        let timeout = Duration::from_secs(config.io_timeout_secs);
        set_timeout(&listener, libc::SO_SNDTIMEO, timeout).map_err(bind)?;
        set_timeout(&listener, libc::SO_RCVTIMEO, timeout).map_err(bind)?;
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
        let listener_dead = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let (dead, stop) = (Arc::clone(&listener_dead), Arc::clone(&stopping));
        std::thread::Builder::new()
            .name("tapir-http-watchdog".into())
            .spawn(move || watchdog(local, timeout, &dead, &stop))
            .expect("spawning the HTTP watchdog");
        Ok(HttpServer {
            addr: local,
            server,
            workers,
            listener_dead,
            stopping,
        })
    }

    /// Stops accepting requests and waits for the workers to finish the ones they have.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Connects to the server every `WATCHDOG_EVERY`: tiny_http's `accept()` then never times out,
/// and a connection its thread pool left queued (its idle-thread count can be stale when
/// connections arrive in a burst, as a browser's do) is picked up within that time, because
/// the watchdog's own short connection makes a pool thread finish a task and take the next.
/// Flags the listener dead when a connection is refused.
fn watchdog(addr: SocketAddr, timeout: Duration, dead: &AtomicBool, stopping: &AtomicBool) {
    let target = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let every = WATCHDOG_EVERY.min(timeout / 3);
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(every);
        match TcpStream::connect_timeout(&target, every) {
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

/// How often the watchdog connects (see `watchdog`).
const WATCHDOG_EVERY: Duration = Duration::from_millis(250);

/// Sets a socket timeout (`SO_SNDTIMEO` or `SO_RCVTIMEO`) on the listening socket; accepted
/// connections inherit it.
fn set_timeout(
    listener: &TcpListener,
    option: libc::c_int,
    timeout: Duration,
) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
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
    Ok(())
}
