//! Responses: a handler's `Reply` (JSON or text with its status), API errors as JSON, the
//! dashboard's files, and the headers every response carries (security headers, HSTS under
//! TLS, no caching of data). Also the bounded reading of a request's body.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{Value, json};
use tiny_http::{Header, Request, Response, StatusCode};

use super::route::ApiError;

/// A JSON answer with its status.
pub(super) struct Reply {
    pub status: u16,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

pub(super) enum Body {
    Json(Value),
    Text(String, &'static str),
}

impl Reply {
    pub(super) fn ok(value: impl Serialize) -> Result<Reply, ApiError> {
        Ok(Reply {
            status: 200,
            body: Body::Json(serde_json::to_value(value).map_err(|e| internal(e.to_string()))?),
            headers: Vec::new(),
        })
    }
}

/// Set at start when the server speaks TLS: responses then carry HSTS.
pub(super) static TLS_ON: AtomicBool = AtomicBool::new(false);

/// Says whether the server speaks TLS (one server per process).
pub fn set_tls(on: bool) {
    TLS_ON.store(on, Ordering::Relaxed);
}

pub(super) fn internal(detail: String) -> ApiError {
    ApiError::new(500, "internal error", json!(detail))
}

pub(super) fn unavailable(what: &str, detail: String) -> ApiError {
    ApiError::new(503, format!("{what} did not answer"), json!(detail))
}

/// Largest body read on requests other than uploads (JSON bodies; others are refused).
pub(super) const MAX_JSON_BODY: u64 = 64 * 1024;

/// Reads a request's declared body, up to `limit` bytes. (A request that declares none is
/// left alone: for an upgrade, the "body" is the rest of the connection.)
pub(super) fn read_body(request: &mut Request, limit: u64) -> Result<Vec<u8>, ApiError> {
    if !has_body(request) {
        return Ok(Vec::new());
    }
    let mut body = Vec::new();
    let mut limited = std::io::Read::take(request.as_reader(), limit + 1);
    match std::io::Read::read_to_end(&mut limited, &mut body) {
        Ok(n) if n as u64 > limit => Err(ApiError::new(
            413,
            "the request body is too large",
            json!({"limit_bytes": limit}),
        )),
        Ok(_) => Ok(body),
        Err(e) => Err(ApiError::bad_request(
            "reading the request failed",
            json!(e.to_string()),
        )),
    }
}

/// Whether a request declares a body (the gate always sends a `Content-Length`).
pub(super) fn has_body(request: &Request) -> bool {
    request.body_length().unwrap_or(0) > 0
}

pub(super) fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// Sends an embedded file: 304 when the client has it, gzip when the client takes it.
pub(super) fn respond_asset(request: Request, asset: &super::assets::Asset) {
    let has = |name: &'static str, want: &str| {
        request
            .headers()
            .iter()
            .any(|h| h.field.equiv(name) && h.value.as_str().contains(want))
    };
    let base = |r: Response<std::io::Cursor<&'static [u8]>>| {
        secure(r)
            .with_header(header("ETag", asset.etag))
            // Always revalidate (cheap: a 304); the ETag is the content hash.
            .with_header(header("Cache-Control", "no-cache"))
            .with_header(header("Vary", "Accept-Encoding"))
    };
    if has("If-None-Match", asset.etag) {
        let empty = Response::new(
            StatusCode(304),
            Vec::new(),
            std::io::Cursor::new(&[][..]),
            Some(0),
            None,
        );
        let _ = request.respond(base(empty));
        return;
    }
    let gzip = has("Accept-Encoding", "gzip");
    let body = if gzip { asset.gzip } else { asset.body };
    // Served from the binary's own bytes, without a copy.
    let data = Response::new(
        StatusCode(200),
        Vec::new(),
        std::io::Cursor::new(body),
        Some(body.len()),
        None,
    );
    let mut response = base(data).with_header(header("Content-Type", asset.content_type));
    if gzip {
        response = response.with_header(header("Content-Encoding", "gzip"));
    }
    let _ = request.respond(response);
}

/// The security headers every response carries (and HSTS under TLS).
pub(super) fn secure<R: std::io::Read>(response: Response<R>) -> Response<R> {
    // A known length is always sent as such: tiny_http would switch to chunked at 32 KiB, and
    // the front door reads a response it can size in one go.
    let response = response
        .with_chunked_threshold(usize::MAX)
        .with_header(header("Content-Security-Policy", super::assets::CSP))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("X-Frame-Options", "DENY"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header("Cross-Origin-Opener-Policy", "same-origin"))
        .with_header(header("Cross-Origin-Resource-Policy", "same-origin"));
    if TLS_ON.load(Ordering::Relaxed) {
        response.with_header(header("Strict-Transport-Security", "max-age=31536000"))
    } else {
        response
    }
}

pub(super) fn respond(request: Request, reply: Reply) {
    let (bytes, content_type) = match reply.body {
        Body::Json(v) => (v.to_string().into_bytes(), "application/json"),
        Body::Text(t, ct) => (t.into_bytes(), ct),
    };
    let mut response = secure(Response::from_data(bytes))
        .with_status_code(StatusCode(reply.status))
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"));
    for (name, value) in &reply.headers {
        response = response.with_header(header(name, value));
    }
    let _ = request.respond(response);
}

pub(super) fn respond_error(request: Request, e: ApiError) {
    let mut response = secure(Response::from_data(e.body().to_string().into_bytes()))
        .with_status_code(StatusCode(e.status))
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"));
    if let Some(allow) = e.allow {
        response = response.with_header(header("Allow", allow));
    }
    for (name, value) in &e.headers {
        response = response.with_header(header(name, value));
    }
    // A body the client is still sending is drained by tiny_http (bounded by its own
    // limit) or the connection is closed.
    let _ = request.respond(response);
}
