//! Request heads: parsed strictly, checked, and written anew in one canonical form.
//!
//! tiny_http only ever reads heads this module wrote: one request line in origin form, HTTP/1.1,
//! the client's end-to-end headers (visible ASCII only), one `Content-Length` for a body the
//! gate has already read whole, one `Connection` header of the gate's choosing, and the gate's
//! own `X-Tapir-*` headers. Anything that two parsers could read two ways (duplicate or
//! conflicting framing, bare LF, folded lines, `Transfer-Encoding` other than `chunked`,
//! non-ASCII bytes) is refused here with a status that says why.

use std::io::Write as _;
use std::net::IpAddr;

/// The largest number of header lines in one request.
pub const MAX_HEADERS: usize = 64;

/// How the client frames its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` (0 when absent).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head the gate accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target, origin form (`/path?query`).
    pub target: String,
    /// End-to-end headers, in the client's order, framing and hop-by-hop headers removed.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// The `Upgrade` value of a GET that asks to switch protocols (`Connection: upgrade`).
    pub upgrade: Option<String>,
    /// The client keeps the connection open after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before its body.
    pub expect_continue: bool,
    /// `POST /pcap/upload`: the body is spooled to disk and has the upload's size limit.
    pub upload: bool,
    /// Whether the response to this request has no body whatever its headers say.
    pub head_only: bool,
}

/// Why a head was refused: the status and what to tell the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

const fn refuse(status: u16, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

/// Where the first bare LF (a line feed not preceded by a carriage return) is, if any.
pub fn bare_lf(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes).find(|&i| i == 0 || bytes[i - 1] != b'\r')
}

/// A header value tiny_http (and any other reader) sees the same way: tab and visible ASCII.
fn plain_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Parses a whole head (ending in an empty line). `max_body` and `max_upload` bound a
/// declared length.
pub fn parse(raw: &[u8], max_body: u64, max_upload: u64) -> Result<RequestHead, Refusal> {
    if bare_lf(raw).is_some() {
        return Err(refuse(400, "request lines must end with CRLF"));
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(n)) if n == raw.len() => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(431, "too many header lines"));
        }
        _ => return Err(refuse(400, "the request could not be parsed as HTTP/1.1")),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(refuse(400, "the request could not be parsed as HTTP/1.1"));
    };
    if !target.starts_with('/') || !target.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(refuse(
            400,
            "the request target must be a path of visible ASCII characters",
        ));
    }
    let mut head = RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        headers: Vec::with_capacity(req.headers.len()),
        framing: Framing::Length(0),
        upgrade: None,
        keep_alive: minor == 1,
        expect_continue: false,
        upload: method == "POST" && target.split('?').next() == Some("/pcap/upload"),
        head_only: method == "HEAD",
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    let mut connection_upgrade = false;
    let mut upgrade = None;
    for h in req.headers.iter() {
        if !plain_value(h.value) {
            return Err(refuse(
                400,
                "header values must be visible ASCII (encode anything else)",
            ));
        }
        // Checked above: visible ASCII is UTF-8.
        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
        let name = h.name;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if name.len() > 8 && name[..8].eq_ignore_ascii_case("x-tapir-") {
            // The gate's own headers: a client's copies never pass.
        } else if is("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refuse(400, "Content-Length must be a decimal number"));
            }
            let n = value
                .parse::<u64>()
                .map_err(|_| refuse(413, "the request body is too large"))?;
            if length.is_some_and(|l| l != n) {
                return Err(refuse(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if is("transfer-encoding") {
            // Only plain chunked, once: anything else could be framed differently downstream.
            if !value.eq_ignore_ascii_case("chunked") || chunked || minor == 0 {
                return Err(refuse(
                    400,
                    "only Transfer-Encoding: chunked is accepted, once, on HTTP/1.1",
                ));
            }
            chunked = true;
        } else if is("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                    head.keep_alive = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    connection_upgrade = true;
                }
            }
        } else if is("upgrade") {
            if upgrade.is_some() {
                return Err(refuse(400, "more than one Upgrade header"));
            }
            upgrade = Some(value.to_string());
        } else if is("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(refuse(417, "only Expect: 100-continue is understood"));
            }
            head.expect_continue = true;
        } else if is("keep-alive") || is("proxy-connection") || is("te") || is("trailer") {
            // Hop-by-hop: they describe this connection, not the request.
        } else {
            if is("host") {
                hosts += 1;
            }
            head.headers.push((name.to_string(), value.to_string()));
        }
    }
    if hosts > 1 || (hosts == 0 && minor == 1) {
        return Err(refuse(
            400,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let limit = if head.upload { max_upload } else { max_body };
    head.framing = match (length, chunked) {
        // Both: a request-smuggling attempt, or a broken client.
        (Some(_), true) => {
            return Err(refuse(
                400,
                "Content-Length and Transfer-Encoding must not both be sent",
            ));
        }
        (_, true) => Framing::Chunked,
        (Some(n), false) if n > limit => return Err(refuse(413, "the request body is too large")),
        (n, false) => Framing::Length(n.unwrap_or(0)),
    };
    if method == "GET" && connection_upgrade && head.framing == Framing::Length(0) {
        head.upgrade = upgrade;
    }
    Ok(head)
}

impl RequestHead {
    /// The largest body this request may have.
    pub fn body_limit(&self, max_body: u64, max_upload: u64) -> u64 {
        if self.upload { max_upload } else { max_body }
    }

    /// The canonical head for tiny_http: a body of `body_length` bytes follows, `peer` and
    /// `tls` are the gate's word on the client, `extra` are further headers of the gate's.
    pub fn encode(
        &self,
        body_length: u64,
        peer: IpAddr,
        tls: bool,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.target.len());
        let _ = write!(out, "{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        match &self.upgrade {
            Some(protocol) => {
                let _ = write!(out, "Connection: Upgrade\r\nUpgrade: {protocol}\r\n");
            }
            None => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        }
        let _ = write!(
            out,
            "Content-Length: {body_length}\r\nX-Tapir-Peer: {peer}\r\n"
        );
        if tls {
            out.extend_from_slice(b"X-Tapir-Tls: 1\r\n");
        }
        for (name, value) in extra {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));

    fn parse(raw: &[u8]) -> Result<RequestHead, Refusal> {
        super::parse(raw, 100, 1000)
    }

    fn status(raw: &[u8]) -> u16 {
        parse(raw).unwrap_err().status
    }

    #[test]
    fn heads_are_written_anew_with_the_gates_own_framing_and_peer() {
        let raw = b"POST /alerts/1/acknowledge HTTP/1.1\r\nHost: tap\r\nX-Tapir-Peer: 10.9.9.9\r\n\
                    x-tapir-tls: 1\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\
                    Content-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\n";
        let head = parse(raw).unwrap();
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive && head.upgrade.is_none());
        assert_eq!(
            String::from_utf8(head.encode(5, PEER, false, &[])).unwrap(),
            "POST /alerts/1/acknowledge HTTP/1.1\r\nHost: tap\r\nConnection: keep-alive\r\n\
             Content-Length: 5\r\nX-Tapir-Peer: 192.0.2.9\r\n\r\n"
        );
        // A chunked body goes on with the length the gate counted.
        let head =
            parse(b"POST /auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        let text = String::from_utf8(head.encode(12, PEER, true, &[])).unwrap();
        assert!(text.contains("Content-Length: 12\r\n") && text.contains("X-Tapir-Tls: 1\r\n"));
        assert!(!text.to_ascii_lowercase().contains("transfer-encoding"));
    }

    #[test]
    fn only_a_get_that_asks_properly_is_an_upgrade() {
        let ws = b"GET /ws/metrics HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                   Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: abc\r\n\r\n";
        let head = parse(ws).unwrap();
        assert_eq!(head.upgrade.as_deref(), Some("websocket"));
        let text = String::from_utf8(head.encode(0, PEER, false, &[])).unwrap();
        assert_eq!(text.matches("Connection:").count(), 1);
        assert!(text.contains("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
        // The smuggling shape of the issue: two Connection headers, one saying upgrade.
        // It is an upgrade request, sent on as exactly one Connection header; tiny_http
        // sees what the gate decided, and the connection goes raw only on a 101.
        let two = b"GET /healthz HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                    Connection: keep-alive\r\nConnection: upgrade\r\n\r\n";
        let head = parse(two).unwrap();
        let text = String::from_utf8(head.encode(0, PEER, false, &[])).unwrap();
        assert_eq!(text.matches("Connection:").count(), 1);
        // Without Connection: upgrade, or on a POST, no upgrade.
        let plain = b"GET /ws/metrics HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(parse(plain).unwrap().upgrade, None);
        let post = b"POST /ws/metrics HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                     Connection: upgrade\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse(post).unwrap().upgrade, None);
    }

    #[test]
    fn ambiguous_or_broken_heads_are_refused_with_the_status_that_says_why() {
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n"),
            413
        );
        assert!(
            parse(b"POST /pcap/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n").is_ok()
        );
        assert_eq!(
            status(b"POST /pcap/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        for bad_length in ["x", "+5", "-1", "5, 5", " ", "0x10"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: {bad_length}\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 400, "{bad_length:?}");
        }
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            413
        );
        assert_eq!(status(b"\x16\x03\x01\x02\x00\r\n\r\n"), 400);
        // Non-ASCII in a value, a bare LF, a folded line, no Host or two.
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: t\r\nX-Name: caf\u{e9}\r\n\r\n".as_bytes()),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\nHost: t\n\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_ok());
        // Targets other than a plain path.
        assert_eq!(status(b"GET http://evil/ HTTP/1.1\r\nHost: t\r\n\r\n"), 400);
        assert_eq!(
            status("GET /caf\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes()),
            400
        );
        // Expectations other than 100-continue.
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: foo\r\n\r\n"),
            417
        );
        assert!(
            parse(
                b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
            )
            .unwrap()
            .expect_continue
        );
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let ka = |raw: &[u8]| parse(raw).unwrap().keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }
}
