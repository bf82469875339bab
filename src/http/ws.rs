//! WebSocket connections: the RFC 6455 handshake on a tiny_http request, then tungstenite on
//! the upgraded connection, written by one thread per client from the hub's queue.
//!
//! The streams are server → client only. The writer never reads, so it cannot be held up by
//! a client that sends nothing; a client that stops reading is caught by the hub (full queue)
//! or by the socket's send timeout, and one that went away by the next write failing (a ping
//! every `PING_EVERY` makes sure there is one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use tiny_http::{Header, Request, Response};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode};
use tungstenite::{Message, WebSocket};

use super::route::ApiError;

const PING_EVERY: Duration = Duration::from_secs(15);
/// How often a stream checks that its session is still open.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Checks that `request` asks for a WebSocket and returns the `Sec-WebSocket-Accept` value.
pub fn accept_key(request: &Request) -> Result<String, ApiError> {
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_string())
    };
    let upgrade = header("Upgrade").unwrap_or_default();
    let connection = header("Connection").unwrap_or_default();
    let wants = upgrade.eq_ignore_ascii_case("websocket")
        && connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !wants {
        let mut e = ApiError::new(
            426,
            "this endpoint is a WebSocket: connect with a WebSocket client",
            serde_json::json!({"upgrade": "websocket"}),
        );
        e.allow = None;
        return Err(e);
    }
    if header("Sec-WebSocket-Version").as_deref() != Some("13") {
        return Err(ApiError::bad_request(
            "unsupported WebSocket version; use 13 (RFC 6455)",
            serde_json::json!({"version": header("Sec-WebSocket-Version")}),
        ));
    }
    let key = header("Sec-WebSocket-Key").ok_or_else(|| {
        ApiError::bad_request("Sec-WebSocket-Key is missing", serde_json::Value::Null)
    })?;
    Ok(tungstenite::handshake::derive_accept_key(
        key.trim().as_bytes(),
    ))
}

/// Sends the 101 response and serves the connection from `rx` until either side goes away.
/// Runs on the caller's thread (a thread of its own per client).
/// `allowed` says whether the client's session is still open; when it ends (logout, expiry),
/// the stream closes with a policy-violation frame and the dashboard asks for a login.
pub fn serve(
    request: Request,
    accept: String,
    rx: Receiver<Message>,
    closed: Arc<AtomicBool>,
    allowed: impl Fn() -> bool,
) {
    let response = Response::empty(101).with_header(
        Header::from_bytes("Sec-WebSocket-Accept", accept.as_bytes()).expect("valid header"),
    );
    let stream = request.upgrade("websocket", response);
    let config = WebSocketConfig::default().max_message_size(Some(64 * 1024));
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let mut checked = std::time::Instant::now();
    loop {
        if checked.elapsed() >= SESSION_CHECK_EVERY {
            checked = std::time::Instant::now();
            if !allowed() {
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Policy,
                    reason: "session ended".into(),
                }));
                let _ = ws.flush();
                break;
            }
        }
        let sent = match rx.recv_timeout(PING_EVERY) {
            Ok(message) => ws.send(message),
            Err(RecvTimeoutError::Timeout) => ws.send(Message::Ping(Default::default())),
            Err(RecvTimeoutError::Disconnected) => {
                // Dropped by the hub (too slow, or shutdown).
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "closing".into(),
                }));
                let _ = ws.flush();
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Relaxed);
}
