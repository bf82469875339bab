//! The front door: owns the public socket and hands tiny_http only whole, bounded requests.
//!
//! tiny_http reads request heads without a size limit and gives every connection a thread of
//! its own, so an idle or slow client (slowloris) or a flood of connections would cost it
//! memory and threads. The gate sits in front, on one thread with a small tokio runtime:
//! - it terminates TLS (rustls) when configured;
//! - a request head must arrive whole within `header_timeout` and fit in `max_header`
//!   (else 408 / 431); bodies, with a declared length or chunked, have a size limit (413)
//!   and each read a time limit;
//! - only then does it connect to tiny_http (a Unix socket in a private directory) and pass
//!   the request on, with `X-Tapir-Peer` (the client's address) and `X-Tapir-Tls` set by
//!   the gate and any copies sent by the client removed;
//! - at `max_connections`, a new connection evicts the oldest one that has not yet sent a
//!   whole request, so idle connections can never lock out a real client;
//! - responses are passed back with a write time limit: a client that stops reading is cut
//!   off after `io_timeout`.
//!
//! After a WebSocket upgrade the bytes flow unchanged both ways.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;

/// The gate's limits (from `[server]`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header: usize,
    pub header_timeout: Duration,
    pub io_timeout: Duration,
    /// Largest body of any request but an upload.
    pub max_body: u64,
    /// Largest upload body.
    pub max_upload: u64,
}

/// What the gate has seen (for /debug and /metrics).
#[derive(Debug, Default)]
pub struct GateStats {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Full of connections that are all busy: refused.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub header_too_large: AtomicU64,
    pub body_too_large: AtomicU64,
    pub bad_requests: AtomicU64,
    pub tls_failures: AtomicU64,
}

/// A snapshot of `GateStats`.
#[derive(Clone, Debug, Serialize)]
pub struct GateCounts {
    pub open: u64,
    pub accepted: u64,
    pub refused: u64,
    pub evicted: u64,
    pub header_timeouts: u64,
    pub header_too_large: u64,
    pub body_too_large: u64,
    pub bad_requests: u64,
    pub tls_failures: u64,
}

impl GateStats {
    pub fn counts(&self) -> GateCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GateCounts {
            open: l(&self.open),
            accepted: l(&self.accepted),
            refused: l(&self.refused),
            evicted: l(&self.evicted),
            header_timeouts: l(&self.header_timeouts),
            header_too_large: l(&self.header_too_large),
            body_too_large: l(&self.body_too_large),
            bad_requests: l(&self.bad_requests),
            tls_failures: l(&self.tls_failures),
        }
    }
}

/// One open connection, as the registry sees it.
struct Conn {
    opened: Instant,
    /// Has sent a whole request (no longer evictable).
    started: AtomicBool,
    evict: Notify,
}

/// Everything a connection task needs.
struct Shared {
    upstream: PathBuf,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stats: Arc<GateStats>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// The running gate.
pub struct Gate {
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    /// Serves `listener`, passing requests to the tiny_http socket at `upstream`.
    pub fn start(
        listener: std::net::TcpListener,
        upstream: PathBuf,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: Limits,
        stats: Arc<GateStats>,
    ) -> std::io::Result<Gate> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            upstream,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            limits,
            stats,
            conns: Mutex::new(HashMap::new()),
        });
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tapir-gate".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("tapir: the front door cannot use its socket: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = accept_loop(listener, shared) => {}
                        _ = stopped.notified() => {}
                    }
                });
            })?;
        Ok(Gate {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting and closes every connection.
    pub fn stop(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // Out of descriptors, say: wait for some to be freed rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        if !make_room(&shared) {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            refuse(stream, shared.tls.is_some());
            continue;
        }
        next_id += 1;
        let conn = Arc::new(Conn {
            opened: Instant::now(),
            started: AtomicBool::new(false),
            evict: Notify::new(),
        });
        shared
            .conns
            .lock()
            .expect("gate registry")
            .insert(next_id, Arc::clone(&conn));
        shared.stats.open.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        let id = next_id;
        tokio::spawn(async move {
            serve_connection(stream, peer, &conn, &shared).await;
            shared.conns.lock().expect("gate registry").remove(&id);
            shared.stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Below the limit: true. At it: evicts the oldest connection that has not sent a whole
/// request yet, if there is one.
fn make_room(shared: &Shared) -> bool {
    let conns = shared.conns.lock().expect("gate registry");
    if conns.len() < shared.limits.max_connections {
        return true;
    }
    let idle = conns
        .values()
        .filter(|c| !c.started.load(Ordering::Relaxed))
        .min_by_key(|c| c.opened);
    match idle {
        Some(c) => {
            c.evict.notify_one();
            // Mark it so that the next arrival picks another one.
            c.started.store(true, Ordering::Relaxed);
            shared.stats.evicted.fetch_add(1, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Answers a connection the gate has no room for (plain HTTP only; a TLS client just sees
/// the connection close) without waiting on it.
fn refuse(stream: tokio::net::TcpStream, tls: bool) {
    if !tls && let Ok(std) = stream.into_std() {
        let mut std = std;
        let _ = std.set_nonblocking(true);
        let _ = std.write(&error_response(
            503,
            "the server is busy; try again shortly",
            "max_connections",
        ));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    conn: &Conn,
    shared: &Shared,
) {
    match &shared.tls {
        None => relay(stream, peer.ip(), false, conn, shared).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(stream)) => r,
                _ = conn.evict.notified() => return,
            };
            match handshake {
                Ok(Ok(tls)) => relay(tls, peer.ip(), true, conn, shared).await,
                _ => {
                    shared.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Why no request head could be taken.
#[derive(Debug, PartialEq)]
enum HeadError {
    /// The client closed, or was evicted, before a request began.
    Gone,
    Timeout,
    TooLarge,
}

/// Reads until `buf` holds a whole request head; returns the head's length.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: tokio::time::Instant,
    evict: &Notify,
) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        // Browsers may send a blank line after a body; it is not part of the next request.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            return if end + 4 > max {
                Err(HeadError::TooLarge)
            } else {
                Ok(end + 4)
            };
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, rd.read(&mut chunk)) => r,
            _ = evict.notified() => return Err(HeadError::Gone),
        };
        match read {
            Err(_) if buf.is_empty() => return Err(HeadError::Gone),
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Gone),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How a request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Length(u64),
    /// `Transfer-Encoding: chunked`, at most this many bytes of data.
    Chunked {
        limit: u64,
    },
}

/// A request head, checked and rewritten for tiny_http.
#[derive(Debug, PartialEq)]
struct Head {
    bytes: Vec<u8>,
    body: Framing,
    upgrade: bool,
}

/// Checks a head and rewrites it with the gate's own headers; `Err` is the status to answer.
fn rewrite_head(raw: &[u8], peer: IpAddr, tls: bool, limits: &Limits) -> Result<Head, u16> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        _ => return Err(400),
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(400);
    };
    let mut out = Vec::with_capacity(raw.len() + 64);
    let _ = write!(out, "{method} {path} HTTP/1.{version}\r\n");
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let (mut upgrade, mut connection_upgrade) = (false, false);
    for h in req.headers.iter() {
        let name = h.name;
        if name.len() > 8 && name[..8].eq_ignore_ascii_case("x-tapir-") {
            continue;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only plain chunked: anything else could be read differently by tiny_http.
            if !h.value.eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(400);
            }
            chunked = true;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(400u16)?;
            if length.is_some_and(|l| l != n) {
                return Err(400);
            }
            length = Some(n);
        }
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
        if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= String::from_utf8_lossy(h.value)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let is_upload = path.split('?').next() == Some("/pcap/upload");
    let limit = if is_upload {
        limits.max_upload
    } else {
        limits.max_body
    };
    let body = match (length, chunked) {
        // Both: a request-smuggling attempt, or a broken client.
        (Some(_), true) => return Err(400),
        (_, true) => Framing::Chunked { limit },
        (Some(n), false) if n > limit => return Err(413),
        (n, false) => Framing::Length(n.unwrap_or(0)),
    };
    let _ = write!(out, "X-Tapir-Peer: {peer}\r\n");
    if tls {
        out.extend_from_slice(b"X-Tapir-Tls: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Head {
        bytes: out,
        body,
        upgrade: upgrade && connection_upgrade,
    })
}

/// Serves one client connection (plain or TLS) until either side is done.
async fn relay<S>(stream: S, peer: IpAddr, tls: bool, conn: &Conn, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let limits = &shared.limits;
    let stats = &shared.stats;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    let head_len =
        match read_head(&mut rd, &mut buf, limits.max_header, deadline, &conn.evict).await {
            Ok(n) => n,
            Err(e) => {
                let status = match e {
                    HeadError::Gone => return,
                    HeadError::Timeout => {
                        stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                        408
                    }
                    HeadError::TooLarge => {
                        stats.header_too_large.fetch_add(1, Ordering::Relaxed);
                        431
                    }
                };
                return answer(&mut wr, status, limits).await;
            }
        };
    conn.started.store(true, Ordering::Relaxed);
    let head = match rewrite_head(&buf[..head_len], peer, tls, limits) {
        Ok(h) => h,
        Err(status) => {
            count_rejection(stats, status);
            return answer(&mut wr, status, limits).await;
        }
    };
    buf.drain(..head_len);
    let upstream = match UnixStream::connect(&shared.upstream).await {
        Ok(s) => s,
        Err(_) => return answer(&mut wr, 503, limits).await,
    };
    let (urd, mut uwr) = upstream.into_split();
    let responses = pump_responses(urd, wr, limits.io_timeout);
    tokio::pin!(responses);
    let requests = async {
        let mut head = head;
        loop {
            if forward(&mut uwr, &head.bytes, limits.io_timeout)
                .await
                .is_err()
            {
                return;
            }
            if head.upgrade {
                // A WebSocket: from here on, bytes pass unchanged.
                if forward(&mut uwr, &buf, limits.io_timeout).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut rd, &mut uwr).await;
                return;
            }
            let sent = match head.body {
                Framing::Length(n) => {
                    forward_body(&mut rd, &mut uwr, &mut buf, n, limits.io_timeout).await
                }
                Framing::Chunked { limit } => {
                    let r = forward_chunked(&mut rd, &mut uwr, &mut buf, limit, limits.io_timeout)
                        .await;
                    if r == Err(ChunkError::TooLarge) {
                        stats.body_too_large.fetch_add(1, Ordering::Relaxed);
                    }
                    r.map_err(|_| ())
                }
            };
            if sent.is_err() {
                return;
            }
            // Keep-alive: the next request must also arrive within the header timeout.
            let deadline = tokio::time::Instant::now() + limits.header_timeout;
            let n = match read_head(&mut rd, &mut buf, limits.max_header, deadline, &conn.evict)
                .await
            {
                Ok(n) => n,
                Err(HeadError::Gone) => return,
                Err(HeadError::Timeout) => {
                    stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(HeadError::TooLarge) => {
                    stats.header_too_large.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            head = match rewrite_head(&buf[..n], peer, tls, limits) {
                Ok(h) => h,
                Err(status) => {
                    // The response stream belongs to earlier requests: just close.
                    count_rejection(stats, status);
                    return;
                }
            };
            buf.drain(..n);
        }
    };
    tokio::select! {
        _ = &mut responses => return,
        _ = requests => {}
    }
    // The client is done sending: let tiny_http finish what it is answering.
    let _ = uwr.shutdown().await;
    let _ = tokio::time::timeout(limits.io_timeout, responses).await;
}

fn count_rejection(stats: &GateStats, status: u16) {
    let counter = match status {
        413 => &stats.body_too_large,
        431 => &stats.header_too_large,
        _ => &stats.bad_requests,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Writes `bytes` to tiny_http within the time limit.
async fn forward(
    to: &mut tokio::net::unix::OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), ()> {
    match tokio::time::timeout(limit, to.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Passes `length` body bytes on: first what is already in `buf`, then from the client, each
/// read within `limit`. What follows the body stays in `buf`.
async fn forward_body<R: AsyncRead + Unpin>(
    rd: &mut R,
    to: &mut tokio::net::unix::OwnedWriteHalf,
    buf: &mut Vec<u8>,
    length: u64,
    limit: Duration,
) -> Result<(), ()> {
    let buffered = (buf.len() as u64).min(length) as usize;
    forward(to, &buf[..buffered], limit).await?;
    buf.drain(..buffered);
    let mut remaining = length - buffered as u64;
    let mut chunk = vec![0u8; 16 * 1024];
    while remaining > 0 {
        let want = chunk.len().min(remaining as usize);
        match tokio::time::timeout(limit, rd.read(&mut chunk[..want])).await {
            Ok(Ok(n)) if n > 0 => {
                forward(to, &chunk[..n], limit).await?;
                remaining -= n as u64;
            }
            _ => return Err(()),
        }
    }
    Ok(())
}

/// Why a chunked body could not be passed on.
#[derive(Debug, PartialEq)]
enum ChunkError {
    TooLarge,
    /// Malformed framing, a stall or a closed connection.
    Broken,
}

/// Passes a chunked body on unchanged (tiny_http decodes it), checking its framing and
/// counting its data against `limit`. What follows the body stays in `buf`.
async fn forward_chunked<R: AsyncRead + Unpin>(
    rd: &mut R,
    to: &mut tokio::net::unix::OwnedWriteHalf,
    buf: &mut Vec<u8>,
    limit: u64,
    timeout: Duration,
) -> Result<(), ChunkError> {
    let mut total = 0u64;
    loop {
        let end = read_line(rd, buf, timeout).await?;
        let size_text = std::str::from_utf8(&buf[..end])
            .ok()
            .and_then(|l| l.split(';').next())
            .map(str::trim)
            .ok_or(ChunkError::Broken)?;
        let size = u64::from_str_radix(size_text, 16).map_err(|_| ChunkError::Broken)?;
        forward(to, &buf[..end + 2], timeout)
            .await
            .map_err(|_| ChunkError::Broken)?;
        buf.drain(..end + 2);
        if size == 0 {
            // Trailer lines, then the empty line that ends the body.
            loop {
                let end = read_line(rd, buf, timeout).await?;
                forward(to, &buf[..end + 2], timeout)
                    .await
                    .map_err(|_| ChunkError::Broken)?;
                buf.drain(..end + 2);
                if end == 0 {
                    return Ok(());
                }
            }
        }
        total = total.saturating_add(size);
        if total > limit {
            return Err(ChunkError::TooLarge);
        }
        // The data and its CRLF.
        forward_body(rd, to, buf, size + 2, timeout)
            .await
            .map_err(|_| ChunkError::Broken)?;
    }
}

/// Reads until `buf` holds a CRLF-ended line (at most 4 KiB); returns where the CRLF is.
async fn read_line<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<usize, ChunkError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n") {
            return Ok(i);
        }
        if buf.len() > 4096 {
            return Err(ChunkError::Broken);
        }
        match tokio::time::timeout(timeout, rd.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Err(ChunkError::Broken),
        }
    }
}

/// Copies tiny_http's responses to the client; a client that takes nothing for `limit` is
/// dropped.
async fn pump_responses<W: AsyncWrite + Unpin>(
    mut from: tokio::net::unix::OwnedReadHalf,
    mut to: W,
    limit: Duration,
) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let sent = tokio::time::timeout(limit, async {
            to.write_all(&chunk[..n]).await?;
            to.flush().await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), to.shutdown()).await;
}

/// Answers with an error of the gate's own and closes.
async fn answer<W: AsyncWrite + Unpin>(wr: &mut W, status: u16, limits: &Limits) {
    let detail = match status {
        408 => "the request head did not arrive in time",
        413 => "the request body is too large",
        431 => "the request head is too large",
        503 => "the server is not ready",
        _ => "the request could not be parsed as HTTP/1.1",
    };
    let limit = match status {
        408 => format!("header_timeout_secs={}", limits.header_timeout.as_secs()),
        413 => format!(
            "max_body_bytes={} max_upload_bytes={}",
            limits.max_body, limits.max_upload
        ),
        431 => format!("max_header_bytes={}", limits.max_header),
        _ => String::new(),
    };
    let bytes = error_response(status, detail, &limit);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        wr.write_all(&bytes).await?;
        wr.flush().await?;
        wr.shutdown().await
    })
    .await;
}

/// A complete `Connection: close` response in the API's error shape.
fn error_response(status: u16, error: &str, detail: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = serde_json::json!({"error": error, "detail": detail}).to_string();
    let mut out = Vec::with_capacity(body.len() + 256);
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\
         Content-Security-Policy: {}\r\n\r\n{body}",
        body.len(),
        super::assets::CSP
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 4,
            max_header: 256,
            header_timeout: Duration::from_millis(200),
            io_timeout: Duration::from_secs(1),
            max_body: 100,
            max_upload: 1000,
        }
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));

    #[test]
    fn heads_are_rewritten_with_the_gates_own_peer_header() {
        let raw = b"POST /alerts/1/acknowledge HTTP/1.1\r\nHost: tap\r\nX-Tapir-Peer: 10.9.9.9\r\nx-tapir-tls: 1\r\nContent-Length: 5\r\n\r\n";
        let head = rewrite_head(raw, PEER, false, &limits()).unwrap();
        let text = String::from_utf8(head.bytes).unwrap();
        assert_eq!(
            text,
            "POST /alerts/1/acknowledge HTTP/1.1\r\nHost: tap\r\nContent-Length: 5\r\nX-Tapir-Peer: 192.0.2.9\r\n\r\n"
        );
        assert_eq!(head.body, Framing::Length(5));
        assert!(!head.upgrade);
        let ws = b"GET /ws/metrics HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
        let head = rewrite_head(ws, PEER, true, &limits()).unwrap();
        assert!(head.upgrade);
        assert!(
            String::from_utf8(head.bytes)
                .unwrap()
                .contains("X-Tapir-Tls: 1\r\n")
        );
    }

    #[test]
    fn bad_heads_get_the_status_that_says_why() {
        let l = limits();
        let status = |raw: &[u8]| rewrite_head(raw, PEER, false, &l).unwrap_err();
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"),
            413
        );
        assert!(
            rewrite_head(
                b"POST /pcap/upload HTTP/1.1\r\nContent-Length: 1000\r\n\r\n",
                PEER,
                false,
                &l
            )
            .is_ok()
        );
        assert_eq!(
            status(b"POST /pcap/upload HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
        assert_eq!(
            rewrite_head(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                PEER,
                false,
                &l
            )
            .unwrap()
            .body,
            Framing::Chunked { limit: 100 }
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status(b"\x16\x03\x01\x02\x00\r\n\r\n"), 400);
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
    }

    /// Runs `forward_chunked` over `input`; returns the result, what reached the other side
    /// and what is left in the buffer.
    async fn chunked(input: &[u8], limit: u64) -> (Result<(), ChunkError>, Vec<u8>, Vec<u8>) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (_, mut to) = a.into_split();
        let mut rd = input;
        let mut buf = Vec::new();
        let r = forward_chunked(&mut rd, &mut to, &mut buf, limit, Duration::from_secs(1)).await;
        drop(to);
        let mut got = Vec::new();
        let mut b = b;
        b.read_to_end(&mut got).await.unwrap();
        (r, got, buf)
    }

    #[tokio::test]
    async fn chunked_bodies_pass_unchanged_within_their_limit() {
        // RFC 9112 section 7.1's shape: sizes in hex, an extension, a trailer.
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut input = body.to_vec();
        input.extend_from_slice(b"GET /next");
        let (r, got, rest) = chunked(&input, 100).await;
        assert_eq!(r, Ok(()));
        assert_eq!(got, body);
        assert_eq!(rest, b"GET /next");
        assert_eq!(chunked(b"0\r\n\r\n", 0).await.0, Ok(()));
        assert_eq!(
            chunked(b"a\r\n0123456789\r\n0\r\n\r\n", 9).await.0,
            Err(ChunkError::TooLarge)
        );
        assert_eq!(chunked(b"zz\r\n", 9).await.0, Err(ChunkError::Broken));
        assert_eq!(chunked(b"4\r\nWi", 9).await.0, Err(ChunkError::Broken));
    }

    #[tokio::test]
    async fn heads_must_be_whole_small_and_on_time() {
        let evict = Notify::new();
        let deadline = || tokio::time::Instant::now() + Duration::from_millis(100);
        let mut buf = Vec::new();
        let mut input: &[u8] = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
        let n = read_head(&mut input, &mut buf, 256, deadline(), &evict)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut big: &[u8] = &[b'a'; 300];
        let mut buf = Vec::new();
        assert_eq!(
            read_head(&mut big, &mut buf, 256, deadline(), &evict).await,
            Err(HeadError::TooLarge)
        );
        // A client that sends part of a head and stalls.
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            read_head(&mut server, &mut buf, 256, deadline(), &evict).await,
            Err(HeadError::Timeout)
        );
        // One that sends nothing just goes.
        let (_client, mut server) = tokio::io::duplex(64);
        let mut buf = Vec::new();
        assert_eq!(
            read_head(&mut server, &mut buf, 256, deadline(), &evict).await,
            Err(HeadError::Gone)
        );
    }
}
