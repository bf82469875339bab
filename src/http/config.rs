//! The `[server]` section: the HTTP server's limits, the WebSocket hub's settings and TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::access;

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
    /// A request head must arrive whole within this long (also the keep-alive idle time).
    pub header_timeout_secs: u64,
    /// A request body (other than an upload) must arrive whole within this long.
    pub body_timeout_secs: u64,
    /// An upload must arrive whole within this long.
    pub upload_timeout_secs: u64,
    /// Largest request head (request line and headers), in KiB.
    pub max_header_kb: u64,
    /// Largest request body other than an upload, in KiB.
    pub max_body_kb: u64,
    /// Open connections at most; at the limit, the one that has waited longest for its next
    /// request is closed to make room.
    pub max_connections: usize,
    /// The address people use to reach the dashboard (`https://tap.example.net`), if it is
    /// a name: requests must name this server in `Host` (DNS rebinding), and its host is
    /// accepted there.
    pub public_url: Option<String>,
    /// More host names this server may be reached by. IP addresses, `localhost` and this
    /// machine's host name (also with `.local`) are always accepted.
    pub allowed_hosts: Vec<String>,
    /// How long a request waits for an actor's answer before a 503.
    pub actor_timeout_ms: u64,
    pub websocket: HubConfig,
    pub tls: TlsConfig,
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
            header_timeout_secs: 10,
            body_timeout_secs: 15,
            upload_timeout_secs: 900,
            max_header_kb: 16,
            max_body_kb: 64,
            max_connections: 512,
            public_url: None,
            allowed_hosts: Vec::new(),
            actor_timeout_ms: 5000,
            websocket: HubConfig::default(),
            tls: TlsConfig::default(),
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
        if self.io_timeout_secs == 0
            || self.header_timeout_secs == 0
            || self.body_timeout_secs == 0
            || self.upload_timeout_secs == 0
        {
            return Err(
                "server.io_timeout_secs, header_timeout_secs, body_timeout_secs and upload_timeout_secs must be at least 1".into(),
            );
        }
        if let Some(url) = &self.public_url
            && access::url_host(url).is_none()
        {
            return Err(format!(
                "server.public_url {url:?} is not an http:// or https:// address with a host"
            ));
        }
        if self.max_header_kb == 0 || self.max_body_kb == 0 || self.max_connections < 8 {
            return Err("server.max_header_kb and max_body_kb must be at least 1, max_connections at least 8".into());
        }
        if self.websocket.client_queue == 0 {
            return Err("server.websocket.client_queue must be at least 1".into());
        }
        Ok(())
    }

    /// Connections from the gate to tiny_http for ordinary requests (each is a tiny_http
    /// thread): two per worker, so a worker finds the next request waiting.
    pub fn upstream_connections(&self) -> usize {
        self.workers * 2
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

/// WebSocket settings (part of the `[server]` section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Concurrent WebSocket clients, all streams together.
    pub max_clients: usize,
    /// Messages queued per client before it counts as too slow and is dropped.
    pub client_queue: usize,
    /// Seconds of the bandwidth series in each `/ws/metrics` message.
    pub series_points: usize,
    /// Top talkers in each `/ws/metrics` message.
    pub talkers: usize,
    /// Active flows in each `/ws/flows` message.
    pub flows: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_clients: 64,
            client_queue: 16,
            series_points: 30,
            talkers: 10,
            flows: 10,
        }
    }
}

/// The `[server.tls]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve HTTPS (and WSS) instead of HTTP.
    pub enabled: bool,
    /// PEM certificate chain. Unset: a self-signed certificate is generated (`tls/` beside
    /// the credentials file) and reused.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `cert`.
    pub key: Option<PathBuf>,
}
