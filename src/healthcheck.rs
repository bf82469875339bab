//! `tapir healthcheck`: asks a running server's `/healthz` over plain HTTP on loopback, for a
//! container's HEALTHCHECK (the runtime image has no curl). A leaf: std only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a server is not healthy, in words for the container's log.
#[derive(Debug, PartialEq, Eq)]
pub enum Unhealthy {
    /// Nothing listens, or the connection failed.
    Unreachable(String),
    /// The server answered something other than 200.
    Status(String),
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::Unreachable(e) => write!(f, "no answer: {e}"),
            Unhealthy::Status(line) => write!(f, "unhealthy: {line}"),
        }
    }
}

/// One `GET /healthz` to `addr`; Ok when the status is 200. Reads at most the status line.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), Unhealthy> {
    let unreachable = |e: std::io::Error| Unhealthy::Unreachable(e.to_string());
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(unreachable)?;
    // `localhost` is a name the server always answers to (see http::access::Hosts).
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(unreachable)?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < head.len() && !head[..got].contains(&b'\n') {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(unreachable(e)),
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let line = line.lines().next().unwrap_or("").trim().to_string();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/1.") => Ok(()),
        _ if line.is_empty() => Err(Unhealthy::Status("an empty answer".into())),
        _ => Err(Unhealthy::Status(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `reply` to the first request; returns its address.
    fn serve(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"));
            let _ = s.write_all(reply);
        });
        addr
    }

    #[test]
    fn two_hundred_is_healthy_anything_else_is_not() {
        let t = Duration::from_secs(2);
        assert_eq!(
            probe(serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), t),
            Ok(())
        );
        assert_eq!(
            probe(serve(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"), t),
            Err(Unhealthy::Status("HTTP/1.1 503 Service Unavailable".into()))
        );
        assert_eq!(
            probe(serve(b""), t),
            Err(Unhealthy::Status("an empty answer".into()))
        );
        // TLS on that port: its first bytes are no HTTP status line.
        assert!(matches!(
            probe(serve(b"\x15\x03\x03\x00\x02\x02\x46"), t),
            Err(Unhealthy::Status(_))
        ));
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(probe(closed, t), Err(Unhealthy::Unreachable(_))));
    }
}
