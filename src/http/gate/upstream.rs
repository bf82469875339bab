//! The gate's side of tiny_http: a small pool of Unix-socket connections, one request at a
//! time on each, and the framing of tiny_http's responses.
//!
//! tiny_http gives every connection a thread. Client keep-alive lives in the gate's tasks;
//! tiny_http sees only the pool's connections (plus one per open WebSocket), so its threads
//! are bounded by the pool's size whatever the number of clients.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::body::{BodyError, BodyReader};
use super::head::Framing;

/// The largest response head accepted from tiny_http.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why tiny_http's answer could not be had.
#[derive(Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// Every pooled connection stayed busy until the deadline.
    Busy,
    /// Connecting, sending or reading failed, or the answer was malformed or late.
    Failed(String),
}

/// How a response's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    None,
    Length(u64),
    Chunked,
    /// Ends when tiny_http closes the connection.
    UntilClose,
}

/// A response head from tiny_http.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub body: ResponseBody,
    /// tiny_http will close the connection after this response.
    pub close: bool,
    /// The declared `Content-Length` (a HEAD answer's says what a GET would get).
    pub length: Option<u64>,
    /// The head as received, without its `Connection`, `Keep-Alive` and framing headers
    /// and without the final empty line (see `encode`).
    lines: Vec<u8>,
    /// The head exactly as received.
    pub raw: Vec<u8>,
}

impl ResponseHead {
    /// The head for the client: with `Content-Length: body_length` unless bodiless, and
    /// `Connection: close` when the gate closes the client's connection after it.
    pub fn encode(&self, body_length: Option<u64>, close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.len() + 64);
        out.extend_from_slice(&self.lines);
        if let Some(n) = body_length {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Reads one response head from `rd` (`buf` keeps what follows it). `head_only`: the
/// request was a HEAD, so there is no body whatever the headers say.
pub async fn read_response_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    head_only: bool,
    deadline: Instant,
) -> Result<ResponseHead, UpstreamError> {
    let failed = |what: &str| UpstreamError::Failed(what.to_string());
    let end = loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(failed("response head too large"));
        }
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Err(_) => return Err(failed("no answer in time")),
            Ok(Ok(0)) => return Err(failed("closed before answering")),
            Ok(Err(e)) => return Err(UpstreamError::Failed(e.to_string())),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let raw: Vec<u8> = buf.drain(..end).collect();
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut slots);
    if !matches!(resp.parse(&raw), Ok(httparse::Status::Complete(_))) {
        return Err(failed("malformed response head"));
    }
    let status = resp.code.ok_or_else(|| failed("no status"))?;
    let mut lines = Vec::with_capacity(raw.len());
    let _ = write!(lines, "HTTP/1.1 {status} {}\r\n", resp.reason.unwrap_or(""));
    let (mut length, mut chunked, mut close) = (None, false, false);
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| failed("bad Content-Length"))?,
            );
        } else if is("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if is("connection") {
            close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
            // A 101 keeps its `Connection: upgrade`; other answers get the gate's own.
            if status == 101 {
                let _ = write!(lines, "{}: {value}\r\n", h.name);
            }
        } else if is("keep-alive") {
        } else {
            lines.extend_from_slice(h.name.as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(h.value);
            lines.extend_from_slice(b"\r\n");
        }
    }
    let body = if head_only || status < 200 || status == 204 || status == 304 {
        ResponseBody::None
    } else if chunked {
        ResponseBody::Chunked
    } else if let Some(n) = length {
        ResponseBody::Length(n)
    } else {
        ResponseBody::UntilClose
    };
    Ok(ResponseHead {
        status,
        body,
        close: close || body == ResponseBody::UntilClose,
        length,
        lines,
        raw,
    })
}

/// The pool of connections to tiny_http's socket.
pub struct Pool {
    socket: PathBuf,
    idle: Mutex<Vec<UnixStream>>,
    slots: Semaphore,
}

/// One pooled connection, lent for one request.
pub struct Lease<'a> {
    pool: &'a Pool,
    _slot: SemaphorePermit<'a>,
    stream: Option<UnixStream>,
    /// Whether the stream came from the idle list (it may have been closed meanwhile).
    reused: bool,
    /// What was read past the current response.
    pub buf: Vec<u8>,
}

impl Pool {
    /// At most `size` connections to `socket` at once.
    pub fn new(socket: PathBuf, size: usize) -> Pool {
        Pool {
            socket,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1)),
        }
    }

    /// A connection for one request, waiting at most until `deadline` for a free one.
    pub async fn lease(&self, deadline: Instant) -> Result<Lease<'_>, UpstreamError> {
        let slot = tokio::time::timeout_at(deadline, self.slots.acquire())
            .await
            .map_err(|_| UpstreamError::Busy)?
            .map_err(|_| UpstreamError::Busy)?;
        let pooled = self.idle.lock().expect("pool lock").pop();
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(s) => s,
            None => self.connect().await?,
        };
        Ok(Lease {
            pool: self,
            _slot: slot,
            stream: Some(stream),
            reused,
            buf: Vec::new(),
        })
    }

    async fn connect(&self) -> Result<UnixStream, UpstreamError> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|e| UpstreamError::Failed(format!("cannot reach tiny_http: {e}")))
    }

    /// A connection of its own, outside the pool (a WebSocket keeps it for good).
    pub async fn dedicated(&self) -> Result<UnixStream, UpstreamError> {
        self.connect().await
    }
}

impl Lease<'_> {
    fn stream(&mut self) -> &mut UnixStream {
        self.stream
            .as_mut()
            .expect("a lease holds its stream until dropped")
    }

    /// Sends a whole request and reads the response head. A pooled connection tiny_http
    /// closed meanwhile is replaced once, transparently (it never saw the request).
    pub async fn exchange(
        &mut self,
        request: &[u8],
        body: &[u8],
        head_only: bool,
        deadline: Instant,
    ) -> Result<ResponseHead, UpstreamError> {
        loop {
            let sent = async {
                let s = self.stream();
                s.write_all(request).await?;
                s.write_all(body).await
            };
            let sent = tokio::time::timeout_at(deadline, sent).await;
            let answer = match sent {
                Ok(Ok(())) => {
                    let stream = self.stream.as_mut().expect("held");
                    read_response_head(stream, &mut self.buf, head_only, deadline).await
                }
                Ok(Err(e)) => Err(UpstreamError::Failed(e.to_string())),
                Err(_) => Err(UpstreamError::Failed("tiny_http took no request".into())),
            };
            match answer {
                Err(UpstreamError::Failed(_)) if self.reused && self.buf.is_empty() => {
                    self.reused = false;
                    self.stream = Some(self.pool.connect().await?);
                }
                other => return other,
            }
        }
    }

    /// Reads a response body framed by `body` (at most `limit` bytes) into memory.
    pub async fn read_body(
        &mut self,
        body: ResponseBody,
        limit: u64,
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        let framing = match body {
            ResponseBody::None => return Ok(Vec::new()),
            ResponseBody::Length(n) => Framing::Length(n),
            ResponseBody::Chunked => Framing::Chunked,
            ResponseBody::UntilClose => {
                return Err(UpstreamError::Failed("unframed response".into()));
            }
        };
        let mut out = Vec::new();
        let stream = self.stream.as_mut().expect("held");
        let mut reader = BodyReader {
            rd: stream,
            buf: &mut self.buf,
            deadline,
            stall: Duration::from_secs(3600),
        };
        match reader.read(framing, limit, &mut out).await {
            Ok(_) => Ok(out),
            Err(BodyError::TooLarge) => Err(UpstreamError::Failed("response too large".into())),
            Err(e) => Err(UpstreamError::Failed(format!("{e:?}"))),
        }
    }

    /// Reads up to `max` bytes of body (what is buffered first); 0 at the end.
    pub async fn read_some(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if !self.buf.is_empty() {
            let n = self.buf.len().min(out.len());
            out[..n].copy_from_slice(&self.buf[..n]);
            self.buf.drain(..n);
            return Ok(n);
        }
        self.stream().read(out).await
    }

    /// Gives the connection back for the next request (a leftover byte or a closing
    /// answer means it is not reusable: it is dropped instead).
    pub fn release(mut self, reusable: bool) {
        if reusable
            && self.buf.is_empty()
            && let Some(s) = self.stream.take()
        {
            self.pool.idle.lock().expect("pool lock").push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head(raw: &[u8], head_only: bool) -> (ResponseHead, Vec<u8>) {
        let mut rd = raw;
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        let h = read_response_head(&mut rd, &mut buf, head_only, deadline)
            .await
            .unwrap();
        (h, buf)
    }

    #[tokio::test]
    async fn responses_are_framed_and_their_connection_header_is_the_gates() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}";
        let (h, rest) = head(raw, false).await;
        assert_eq!(
            (h.status, h.body, h.close),
            (200, ResponseBody::Length(2), false)
        );
        assert_eq!(rest, b"{}");
        assert_eq!(
            h.encode(Some(2), true),
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        let (h, _) = head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).await;
        assert_eq!(h.body, ResponseBody::None);
        let (h, _) = head(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(h.body, ResponseBody::None);
        let (h, _) = head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(h.body, ResponseBody::Chunked);
        let (h, _) = head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false).await;
        assert_eq!((h.body, h.close), (ResponseBody::UntilClose, true));
        let (h, _) =
            head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false).await;
        assert_eq!((h.status, h.body), (101, ResponseBody::None));
        assert!(
            String::from_utf8_lossy(&h.encode(None, false)).contains("Connection: Upgrade\r\n")
        );
    }
}
