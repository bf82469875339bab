//! The front door: owns the public socket, reads every request whole, and hands tiny_http only
//! requests it wrote itself.
//!
//! tiny_http reads heads without a size limit, waits on slow bodies on its own threads and
//! gives every connection a thread, so it never faces a client. The gate, one thread with a
//! small tokio runtime, does:
//! - TLS (rustls) when configured;
//! - each request read whole before anything else happens: the head within `header_timeout`
//!   and `max_header` (408 / 431), parsed strictly (`head`: ambiguous framing, bare LF,
//!   non-ASCII and unknown `Expect` get a 4xx at once), then the body as a whole within
//!   `body_timeout` (`upload_timeout` for uploads) and its size limit (`body`: chunked bodies
//!   de-chunked, trailers parsed and dropped). An upload is first put to the API as a
//!   preflight (who asks, and whether an upload may start), then spooled to disk as it
//!   arrives, one at a time;
//! - one canonical request per client request, written anew (`head::RequestHead::encode`:
//!   one `Connection` header, a `Content-Length` body, the gate's own `X-Tapir-Peer`), sent
//!   over a small pool of connections to tiny_http (`upstream`), one request at a time each:
//!   tiny_http's threads are bounded by the pool, not by the clients;
//! - a connection goes raw only after tiny_http answers `101 Switching Protocols` to a
//!   request the gate marked as an upgrade, over a connection of its own, at most
//!   `max_upgrades` of them;
//! - at `max_connections`, a new connection evicts the one that has waited longest for its
//!   next request (idle keep-alive, or slow to send one), so no number of polite or slow
//!   clients can lock a new one out; only when every connection is being answered is a new
//!   one refused (503);
//! - responses are read whole from tiny_http when they fit a shared budget, so a client
//!   that reads slowly holds no pooled connection, and must be taken within a deadline.

mod body;
pub mod head;
mod upstream;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use body::{BodyError, BodyReader};
use head::{Refusal, RequestHead};
use upstream::{Pool, ResponseBody, ResponseHead, UpstreamError};

/// The gate's limits (from `[server]`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header: usize,
    pub header_timeout: Duration,
    /// A client that takes nothing of a response for this long is cut off.
    pub io_timeout: Duration,
    /// Largest body of any request but an upload.
    pub max_body: u64,
    /// Largest upload body.
    pub max_upload: u64,
    /// A whole body (not an upload) must arrive within this.
    pub body_timeout: Duration,
    /// A whole upload must arrive within this.
    pub upload_timeout: Duration,
    /// Where uploads are spooled.
    pub upload_dir: PathBuf,
    /// Connections to tiny_http for ordinary requests.
    pub upstream_connections: usize,
    /// WebSocket connections at once (each keeps a tiny_http connection).
    pub max_upgrades: usize,
    /// How long tiny_http may take to answer a request.
    pub answer_timeout: Duration,
}

/// What the gate has seen (for /debug and /metrics).
#[derive(Debug, Default)]
pub struct GateStats {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Full of connections that are all being answered: refused.
    pub refused: AtomicU64,
    /// Waiting connections closed to make room for a new one.
    pub evicted: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub header_too_large: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub body_too_large: AtomicU64,
    pub bad_requests: AtomicU64,
    pub tls_failures: AtomicU64,
    /// Requests that found every pooled connection busy until their deadline.
    pub upstream_busy: AtomicU64,
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
    pub body_timeouts: u64,
    pub body_too_large: u64,
    pub bad_requests: u64,
    pub tls_failures: u64,
    pub upstream_busy: u64,
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
            body_timeouts: l(&self.body_timeouts),
            body_too_large: l(&self.body_too_large),
            bad_requests: l(&self.bad_requests),
            tls_failures: l(&self.tls_failures),
            upstream_busy: l(&self.upstream_busy),
        }
    }
}

/// One open connection, as the registry sees it.
struct Conn {
    /// When it began waiting for its next request (nanoseconds since the gate started, plus
    /// one); 0 while a request of its is being answered, or once it was picked for eviction.
    waiting_since: AtomicU64,
    evict: Notify,
}

impl Conn {
    fn waiting(&self, epoch: Instant) {
        let since = epoch.elapsed().as_nanos() as u64 + 1;
        self.waiting_since.store(since, Ordering::Relaxed);
    }

    fn answering(&self) {
        self.waiting_since.store(0, Ordering::Relaxed);
    }
}

/// Everything a connection task needs.
struct Shared {
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stats: Arc<GateStats>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    pool: Pool,
    upgrades: Semaphore,
    /// One upload is received at a time.
    uploads: Semaphore,
    /// KiB of responses held in memory for clients still taking them.
    response_budget: Semaphore,
    epoch: Instant,
    /// Every request written to tiny_http, in order (for the differential tests).
    #[cfg(test)]
    sent: Mutex<Vec<Vec<u8>>>,
}

/// Responses up to this size are read whole from tiny_http before the client gets them.
const BUFFERED_RESPONSE: u64 = 4 * 1024 * 1024;
/// All such responses together (KiB).
const RESPONSE_BUDGET_KIB: usize = 32 * 1024;

/// The running gate.
pub struct Gate {
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
    #[cfg(test)]
    shared: Arc<Shared>,
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
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            pool: Pool::new(upstream, limits.upstream_connections),
            upgrades: Semaphore::new(limits.max_upgrades),
            uploads: Semaphore::new(1),
            response_budget: Semaphore::new(RESPONSE_BUDGET_KIB),
            limits,
            stats,
            conns: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            #[cfg(test)]
            sent: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let serving = Arc::clone(&shared);
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
                        _ = accept_loop(listener, serving) => {}
                        _ = stopped.notified() => {}
                    }
                });
            })?;
        Ok(Gate {
            stop,
            thread: Some(thread),
            #[cfg(test)]
            shared,
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
            waiting_since: AtomicU64::new(0),
            evict: Notify::new(),
        });
        conn.waiting(shared.epoch);
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

/// Below the limit: true. At it: evicts the connection that has waited longest for its next
/// request, if any is waiting.
fn make_room(shared: &Shared) -> bool {
    let conns = shared.conns.lock().expect("gate registry");
    if conns.len() < shared.limits.max_connections {
        return true;
    }
    let longest = conns
        .values()
        .filter(|c| c.waiting_since.load(Ordering::Relaxed) != 0)
        .min_by_key(|c| c.waiting_since.load(Ordering::Relaxed));
    match longest {
        Some(c) => {
            // Marked, so that the next arrival picks another one.
            c.answering();
            c.evict.notify_one();
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
        None => serve(stream, peer.ip(), false, conn, shared).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(stream)) => r,
                _ = conn.evict.notified() => return,
            };
            match handshake {
                Ok(Ok(tls)) => serve(tls, peer.ip(), true, conn, shared).await,
                _ => {
                    shared.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Why a connection stops taking requests.
#[derive(Debug)]
enum Stop {
    /// Closed without a word (the client went, or was evicted while idle).
    Quiet,
    /// Answered with an error of the gate's own, then closed.
    Refused(Refusal),
    /// An answer was already written (a refused upload preflight); closed.
    Answered,
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refused(r)
    }
}

/// A request read whole.
struct Incoming<'a> {
    head: RequestHead,
    body: Vec<u8>,
    /// An upload's body, on disk; its permit is held until it is answered.
    spool: Option<(tempfile::NamedTempFile, tokio::sync::SemaphorePermit<'a>)>,
}

/// Serves one client connection (plain or TLS) until either side is done.
async fn serve<S>(stream: S, peer: IpAddr, tls: bool, conn: &Conn, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = Vec::with_capacity(1024);
    loop {
        conn.waiting(shared.epoch);
        let incoming = tokio::select! {
            r = read_request(&mut rd, &mut wr, &mut buf, peer, tls, shared) => r,
            _ = conn.evict.notified() => Err(Stop::Quiet),
        };
        conn.answering();
        let incoming = match incoming {
            Ok(i) => i,
            Err(Stop::Refused(r)) => {
                count_refusal(&shared.stats, r.status);
                return answer(&mut wr, r, &shared.limits).await;
            }
            Err(Stop::Quiet | Stop::Answered) => return,
        };
        if incoming.head.upgrade.is_some() {
            return upgrade(incoming.head, &buf, &mut rd, &mut wr, peer, tls, shared).await;
        }
        match forward(incoming, &mut wr, peer, tls, shared).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(r) => return answer(&mut wr, r, &shared.limits).await,
        }
    }
}

/// Reads the next request whole: head, checks, and body (an upload's after its preflight).
async fn read_request<'s, R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut Vec<u8>,
    peer: IpAddr,
    tls: bool,
    shared: &'s Shared,
) -> Result<Incoming<'s>, Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &shared.limits;
    let deadline = Instant::now() + limits.header_timeout;
    let n = read_head(rd, buf, limits.max_header, deadline).await?;
    let head = head::parse(&buf[..n], limits.max_body, limits.max_upload)?;
    buf.drain(..n);
    if !head.upload {
        let mut body = Vec::new();
        let within = limits.body_timeout;
        receive_body(rd, wr, buf, &head, within, &mut body, shared).await?;
        return Ok(Incoming {
            head,
            body,
            spool: None,
        });
    }
    // An upload: one at a time, and only once the API says this client may send one.
    let Ok(permit) = shared.uploads.try_acquire() else {
        return Err(Stop::Refused(Refusal {
            status: 409,
            reason: "another upload is being received; try again when it is done",
        }));
    };
    let preflight = head.encode(0, peer, tls, &[("X-Tapir-Preflight", "1")]);
    let (status, response) = exchange_whole(&preflight, &[], false, shared)
        .await
        .map_err(|e| upstream_refusal(e, &shared.stats))?;
    if status != 204 {
        let _ = send(wr, &[&response], limits.io_timeout).await;
        return Err(Stop::Answered);
    }
    let mut spool = tempfile::Builder::new()
        .prefix(&format!("{SPOOL_PREFIX}{}-", std::process::id()))
        .tempfile_in(&limits.upload_dir)
        .map_err(|_| Refusal {
            status: 507,
            reason: "the upload cannot be stored (see upload_dir)",
        })?;
    let within = limits.upload_timeout;
    receive_body(rd, wr, buf, &head, within, spool.as_file_mut(), shared).await?;
    Ok(Incoming {
        head,
        body: Vec::new(),
        spool: Some((spool, permit)),
    })
}

/// Reads a request's body whole into `sink`, within `within` as a whole (after the go-ahead
/// a client that sent `Expect: 100-continue` waits for).
async fn receive_body<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    within: Duration,
    sink: &mut impl body::Sink,
    shared: &Shared,
) -> Result<(), Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &shared.limits;
    if head.expect_continue && head.framing != head::Framing::Length(0) {
        send(wr, &[b"HTTP/1.1 100 Continue\r\n\r\n"], limits.io_timeout).await?;
    }
    let mut reader = BodyReader {
        rd,
        buf,
        deadline: Instant::now() + within,
        stall: limits.io_timeout,
    };
    let limit = head.body_limit(limits.max_body, limits.max_upload);
    reader
        .read(head.framing, limit, sink)
        .await
        .map(|_| ())
        .map_err(|e| body_refusal(e, &shared.stats))
}

/// Names of spooled uploads: the prefix, the process id, a random part.
pub const SPOOL_PREFIX: &str = "tapir-spool-";

/// Sends a request read whole to tiny_http and its answer to the client. `Ok(true)`: the
/// connection goes on; `Err`: answer with an error of the gate's and close.
async fn forward<W: AsyncWrite + Unpin>(
    incoming: Incoming<'_>,
    wr: &mut W,
    peer: IpAddr,
    tls: bool,
    shared: &Shared,
) -> Result<bool, Refusal> {
    let limits = &shared.limits;
    let Incoming { head, body, spool } = incoming;
    let spool_name = spool
        .as_ref()
        .and_then(|(file, _)| file.path().file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let extra: Vec<(&str, &str)> = spool_name
        .as_deref()
        .map(|n| ("X-Tapir-Spool", n))
        .into_iter()
        .collect();
    let request = head.encode(body.len() as u64, peer, tls, &extra);
    let deadline = Instant::now() + limits.answer_timeout;
    let mut lease = shared
        .pool
        .lease(deadline)
        .await
        .map_err(|e| upstream_refusal(e, &shared.stats))?;
    #[cfg(test)]
    shared
        .sent
        .lock()
        .unwrap()
        .push([&request[..], &body[..]].concat());
    let response = lease
        .exchange(&request, &body, head.head_only, deadline)
        .await
        .map_err(|e| upstream_refusal(e, &shared.stats))?;
    drop(body);
    let close = !head.keep_alive || response.body == ResponseBody::UntilClose;
    let write_limit = limits.io_timeout;
    match response.body {
        ResponseBody::None => {
            lease.release(!response.close);
            let head = response.encode(response.length, close);
            send(wr, &[&head], write_limit).await.map_err(|_| GONE)?;
        }
        ResponseBody::Length(n) if n <= BUFFERED_RESPONSE => {
            // Read whole when the budget allows: the pooled connection is free again
            // before a slow client has taken a byte.
            let budget = shared
                .response_budget
                .try_acquire_many(n.div_ceil(1024) as u32)
                .ok();
            if budget.is_some() {
                let bytes = lease
                    .read_body(response.body, n, deadline)
                    .await
                    .map_err(|e| upstream_refusal(e, &shared.stats))?;
                lease.release(!response.close);
                let head = response.encode(Some(n), close);
                let limit = write_limit + Duration::from_millis(n / 32);
                send(wr, &[&head, &bytes], limit).await.map_err(|_| GONE)?;
            } else {
                stream_body(lease, &response, n, close, wr, write_limit).await?;
            }
        }
        ResponseBody::Length(n) => {
            stream_body(lease, &response, n, close, wr, write_limit).await?;
        }
        ResponseBody::Chunked => {
            let bytes = lease
                .read_body(response.body, BUFFERED_RESPONSE, deadline)
                .await
                .map_err(|e| upstream_refusal(e, &shared.stats))?;
            lease.release(!response.close);
            let head = response.encode(Some(bytes.len() as u64), close);
            send(wr, &[&head, &bytes], write_limit)
                .await
                .map_err(|_| GONE)?;
        }
        ResponseBody::UntilClose => {
            let head = response.encode(None, true);
            send(wr, &[&head], write_limit).await.map_err(|_| GONE)?;
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                match tokio::time::timeout_at(deadline, lease.read_some(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => {
                        send(wr, &[&chunk[..n]], write_limit)
                            .await
                            .map_err(|_| GONE)?;
                    }
                    _ => break,
                }
            }
        }
    }
    drop(spool);
    if close {
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    }
    Ok(!close)
}

/// Marks a connection to close without a further answer (the client stopped taking ours).
const GONE: Refusal = Refusal {
    status: 0,
    reason: "",
};

/// Passes a large response through while holding its pooled connection: the client must
/// take it all within `limit` plus a second per 32 KiB, or is cut off.
async fn stream_body<W: AsyncWrite + Unpin>(
    mut lease: upstream::Lease<'_>,
    response: &ResponseHead,
    length: u64,
    close: bool,
    wr: &mut W,
    limit: Duration,
) -> Result<(), Refusal> {
    let deadline = Instant::now() + limit + Duration::from_millis(length / 32);
    let passed = tokio::time::timeout_at(deadline, async {
        let head = response.encode(Some(length), close);
        send(wr, &[&head], limit).await.map_err(|_| GONE)?;
        let mut chunk = vec![0u8; 16 * 1024];
        let mut remaining = length;
        while remaining > 0 {
            let want = chunk.len().min(remaining as usize);
            match tokio::time::timeout(limit, lease.read_some(&mut chunk[..want])).await {
                Ok(Ok(n)) if n > 0 => {
                    send(wr, &[&chunk[..n]], limit).await.map_err(|_| GONE)?;
                    remaining -= n as u64;
                }
                _ => return Err(GONE),
            }
        }
        Ok(())
    })
    .await;
    match passed {
        Ok(Ok(())) => {
            lease.release(!response.close);
            Ok(())
        }
        _ => Err(GONE),
    }
}

/// One request to tiny_http whose whole answer (at most 1 MiB) comes back as bytes for the
/// client, with `Connection: close`.
async fn exchange_whole(
    request: &[u8],
    body: &[u8],
    head_only: bool,
    shared: &Shared,
) -> Result<(u16, Vec<u8>), UpstreamError> {
    let deadline = Instant::now() + shared.limits.answer_timeout;
    let mut lease = shared.pool.lease(deadline).await?;
    #[cfg(test)]
    shared.sent.lock().unwrap().push([request, body].concat());
    let response = lease.exchange(request, body, head_only, deadline).await?;
    let bytes = lease
        .read_body(response.body, 1024 * 1024, deadline)
        .await?;
    lease.release(!response.close);
    let mut out = response.encode(Some(bytes.len() as u64), true);
    out.extend_from_slice(&bytes);
    Ok((response.status, out))
}

/// A WebSocket (or other upgrade): the request goes over a tiny_http connection of its own,
/// and only a `101` answer turns the client's connection into a raw pipe.
async fn upgrade<R, W>(
    head: RequestHead,
    buffered: &[u8],
    rd: &mut R,
    wr: &mut W,
    peer: IpAddr,
    tls: bool,
    shared: &Shared,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &shared.limits;
    let Ok(_slot) = shared.upgrades.try_acquire() else {
        let busy = Refusal {
            status: 503,
            reason: "too many WebSocket clients; try again later",
        };
        return answer(wr, busy, limits).await;
    };
    let request = head.encode(0, peer, tls, &[]);
    #[cfg(test)]
    shared.sent.lock().unwrap().push(request.clone());
    let deadline = Instant::now() + limits.answer_timeout;
    let Ok(mut up) = shared.pool.dedicated().await else {
        return answer(
            wr,
            upstream_refusal(UpstreamError::Busy, &shared.stats),
            limits,
        )
        .await;
    };
    if tokio::time::timeout_at(deadline, up.write_all(&request))
        .await
        .map_or(true, |r| r.is_err())
    {
        return;
    }
    let mut ubuf = Vec::new();
    let Ok(response) = upstream::read_response_head(&mut up, &mut ubuf, false, deadline).await
    else {
        return;
    };
    if response.status != 101 {
        // Refused (no login, too many clients, not a stream): an ordinary answer, and the
        // connection closes, as the client expected a switch.
        let framing = match response.body {
            ResponseBody::Length(n) => head::Framing::Length(n),
            _ => head::Framing::Length(0),
        };
        let mut bytes = Vec::new();
        let mut reader = BodyReader {
            rd: &mut up,
            buf: &mut ubuf,
            deadline,
            stall: limits.io_timeout,
        };
        if reader.read(framing, 1024 * 1024, &mut bytes).await.is_ok() {
            let head = response.encode(Some(bytes.len() as u64), true);
            let _ = send(wr, &[&head, &bytes], limits.io_timeout).await;
        }
        return;
    }
    if send(wr, &[&response.raw, &ubuf], limits.io_timeout)
        .await
        .is_err()
    {
        return;
    }
    let (mut urd, mut uwr) = up.into_split();
    if uwr.write_all(buffered).await.is_err() {
        return;
    }
    // From here on bytes pass unchanged, until either side closes. A client may be quiet
    // for as long as it likes, but one that takes nothing of the stream for `io_timeout` is
    // cut off: otherwise a client that vanished would hold its WebSocket slot until TCP
    // gives up on it (a quarter of an hour).
    tokio::select! {
        _ = tokio::io::copy(rd, &mut uwr) => {}
        _ = pass_down(&mut urd, wr, limits.io_timeout) => {}
    }
}

/// Copies tiny_http's side of a raw connection to the client, each write within `limit`.
async fn pass_down<R, W>(from: &mut R, to: &mut W, limit: Duration)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if send(to, &[&chunk[..n]], limit).await.is_err() {
            return;
        }
    }
}

/// Why no request head could be taken.
#[derive(Debug, PartialEq)]
enum HeadError {
    /// The client closed, or sent nothing, before a request began.
    Gone,
    Timeout,
    TooLarge,
    BareLf,
}

impl From<HeadError> for Stop {
    fn from(e: HeadError) -> Stop {
        match e {
            HeadError::Gone => Stop::Quiet,
            HeadError::Timeout => Stop::Refused(Refusal {
                status: 408,
                reason: "the request head did not arrive in time",
            }),
            HeadError::TooLarge => Stop::Refused(Refusal {
                status: 431,
                reason: "the request head is too large",
            }),
            HeadError::BareLf => Stop::Refused(Refusal {
                status: 400,
                reason: "request lines must end with CRLF",
            }),
        }
    }
}

/// Reads until `buf` holds a whole request head; returns the head's length. A bare LF is
/// refused as soon as it arrives, not when the head would have ended.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        // Browsers may send a blank line after a body; it is not part of the next request.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        let end = memchr::memmem::find(buf, b"\r\n\r\n");
        let scanned = end.map_or(buf.len(), |e| e + 4);
        if head::bare_lf(&buf[..scanned]).is_some() {
            return Err(HeadError::BareLf);
        }
        if let Some(end) = end {
            return if end + 4 > max {
                Err(HeadError::TooLarge)
            } else {
                Ok(end + 4)
            };
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Err(_) if buf.is_empty() => return Err(HeadError::Gone),
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Gone),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn body_refusal(e: BodyError, stats: &GateStats) -> Stop {
    match e {
        BodyError::TooLarge => Stop::Refused(Refusal {
            status: 413,
            reason: "the request body is too large",
        }),
        BodyError::Timeout => {
            stats.body_timeouts.fetch_add(1, Ordering::Relaxed);
            Stop::Refused(Refusal {
                status: 408,
                reason: "the request body did not arrive in time",
            })
        }
        BodyError::Malformed(reason) => Stop::Refused(Refusal {
            status: 400,
            reason,
        }),
        BodyError::Gone => Stop::Quiet,
        BodyError::Sink(_) => Stop::Refused(Refusal {
            status: 507,
            reason: "the upload could not be stored (is the disk full?)",
        }),
    }
}

fn upstream_refusal(e: UpstreamError, stats: &GateStats) -> Refusal {
    match e {
        UpstreamError::Busy => {
            stats.upstream_busy.fetch_add(1, Ordering::Relaxed);
            Refusal {
                status: 503,
                reason: "the server is busy; try again shortly",
            }
        }
        UpstreamError::Failed(_) => Refusal {
            status: 502,
            reason: "the API did not answer",
        },
    }
}

fn count_refusal(stats: &GateStats, status: u16) {
    let counter = match status {
        413 => &stats.body_too_large,
        431 => &stats.header_too_large,
        408 => &stats.header_timeouts,
        _ => &stats.bad_requests,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Writes `parts` within `limit` (as a whole) and flushes.
async fn send<W: AsyncWrite + Unpin>(
    wr: &mut W,
    parts: &[&[u8]],
    limit: Duration,
) -> Result<(), Stop> {
    let written = tokio::time::timeout(limit, async {
        for p in parts {
            wr.write_all(p).await?;
        }
        wr.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        _ => Err(Stop::Quiet),
    }
}

/// Answers with an error of the gate's own and closes (status 0: just closes).
async fn answer<W: AsyncWrite + Unpin>(wr: &mut W, refusal: Refusal, limits: &Limits) {
    if refusal.status != 0 {
        let limit = match refusal.status {
            408 => format!(
                "header_timeout_secs={} body_timeout_secs={}",
                limits.header_timeout.as_secs(),
                limits.body_timeout.as_secs()
            ),
            413 => format!(
                "max_body_bytes={} max_upload_bytes={}",
                limits.max_body, limits.max_upload
            ),
            431 => format!("max_header_bytes={}", limits.max_header),
            _ => String::new(),
        };
        let bytes = error_response(refusal.status, refusal.reason, &limit);
        let _ = send(wr, &[&bytes], Duration::from_secs(2)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// A complete `Connection: close` response in the API's error shape.
fn error_response(status: u16, error: &str, detail: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Error",
    };
    let body = serde_json::json!({"error": error, "detail": detail}).to_string();
    let mut out = Vec::with_capacity(body.len() + 256);
    let retry = if status == 503 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{retry}X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\
         Content-Security-Policy: {}\r\n\r\n{body}",
        body.len(),
        super::assets::CSP
    );
    out
}

/// Deletes uploads a crashed or killed tapir left in `dir`: spooled or extracted files
/// whose process is gone (or whose process id is now ours: a restart in a container).
/// Returns how many were deleted.
pub fn remove_orphan_uploads(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name
            .strip_prefix(SPOOL_PREFIX)
            .or_else(|| name.strip_prefix(UPLOAD_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if (pid == own || !process_alive(pid)) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Names of captures extracted from an upload, while they replay.
pub const UPLOAD_PREFIX: &str = "tapir-upload-";

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests;
