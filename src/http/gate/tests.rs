//! The gate in front of a real tiny_http: what tiny_http receives is exactly what the gate
//! meant to send, one for one, whatever a client sends (a differential fuzz); waiting
//! connections make room for new ones.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// One request as a server sees it: method, target, headers (lowercase names), body.
type Seen = (String, String, Vec<(String, String)>, Vec<u8>);

/// A gate in front of a tiny_http server that records every request and answers "ok".
struct Rig {
    gate: Option<Gate>,
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(max_connections: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("http.sock");
        let inner = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = Arc::new(tiny_http::Server::from_listener(inner, None).unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..2 {
            let (server, received) = (Arc::clone(&server), Arc::clone(&received));
            std::thread::spawn(move || {
                while let Ok(mut request) = server.recv() {
                    // As the API does: the declared length only (for an upgrade, tiny_http's
                    // reader is the rest of the connection).
                    let mut body = Vec::new();
                    let length = request.body_length().unwrap_or(0) as u64;
                    let _ = request.as_reader().take(length).read_to_end(&mut body);
                    let headers = request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect();
                    received.lock().unwrap().push((
                        request.method().as_str().to_string(),
                        request.url().to_string(),
                        headers,
                        body,
                    ));
                    let _ = request.respond(tiny_http::Response::from_string("ok"));
                }
            });
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = test_limits(max_connections, dir.path());
        let gate = Gate::start(listener, socket, None, limits, Arc::default()).unwrap();
        Rig {
            gate: Some(gate),
            addr,
            received,
            server,
            _dir: dir,
        }
    }

    /// What the gate wrote to tiny_http, parsed as tiny_http should read it.
    fn sent(&self) -> Vec<Seen> {
        let gate = self.gate.as_ref().unwrap();
        gate.shared
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|bytes| parse_sent(bytes))
            .collect()
    }

    /// Sends `bytes` on a new connection and reads until the gate closes it.
    fn exchange(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(g) = self.gate.take() {
            g.stop();
        }
        self.server.unblock();
        self.server.unblock();
    }
}

/// Small limits and short deadlines, for tests.
fn test_limits(max_connections: usize, upload_dir: &std::path::Path) -> Limits {
    Limits {
        max_connections,
        max_header: 2048,
        header_timeout: Duration::from_millis(400),
        io_timeout: Duration::from_millis(400),
        max_body: 4096,
        max_upload: 8192,
        body_timeout: Duration::from_millis(400),
        upload_timeout: Duration::from_millis(400),
        upload_dir: upload_dir.to_path_buf(),
        upstream_connections: 2,
        max_upgrades: 2,
        answer_timeout: Duration::from_secs(2),
    }
}

/// A canonical request as the gate wrote it: a head, then exactly `Content-Length` bytes.
fn parse_sent(bytes: &[u8]) -> Seen {
    let mut slots = [httparse::EMPTY_HEADER; 80];
    let mut req = httparse::Request::new(&mut slots);
    let httparse::Status::Complete(n) = req.parse(bytes).unwrap() else {
        panic!("the gate wrote a partial head")
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8(h.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    assert_eq!(
        bytes.len(),
        n + length,
        "the body is exactly Content-Length"
    );
    (
        req.method.unwrap().to_string(),
        req.path.unwrap().to_string(),
        headers,
        bytes[n..].to_vec(),
    )
}

/// A random request built from the shapes smuggling and desync attempts use.
fn random_request(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let methods = ["GET", "POST", "HEAD", "PUT", "DELETE"];
    let targets = [
        "/healthz",
        "/auth/login",
        "/a?b=c",
        "/ws/metrics",
        "/%2e%2e/x",
    ];
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        methods[rng.random_range(0..methods.len())],
        targets[rng.random_range(0..targets.len())],
        if rng.random_bool(0.9) { 1 } else { 0 }
    )
    .into_bytes();
    let body: Vec<u8> = (0..rng.random_range(0..40usize))
        .map(|_| rng.random_range(b'a'..=b'z'))
        .collect();
    let mut chunked = false;
    let mut lines: Vec<Vec<u8>> = vec![b"Host: tap".to_vec()];
    for _ in 0..rng.random_range(0..6) {
        let line: Vec<u8> = match rng.random_range(0..18) {
            0 => format!("Content-Length: {}", body.len()).into(),
            1 => format!("Content-Length: {}", body.len() + rng.random_range(1..5)).into(),
            2 => {
                chunked = true;
                b"Transfer-Encoding: chunked".to_vec()
            }
            3 => b"Transfer-Encoding: gzip, chunked".to_vec(),
            4 => b"Connection: keep-alive".to_vec(),
            5 => b"Connection: upgrade".to_vec(),
            6 => b"Connection: close".to_vec(),
            7 => b"Upgrade: websocket".to_vec(),
            8 => b"X-Tapir-Peer: 10.9.9.9".to_vec(),
            9 => b"Expect: 100-continue".to_vec(),
            10 => b"Expect: foo".to_vec(),
            11 => b"X-Folded: a\r\n  b".to_vec(),
            12 => b"X-Latin: caf\xe9".to_vec(),
            13 => b"Host: other".to_vec(),
            14 => b"Content-Length: +3".to_vec(),
            15 => b"Keep-Alive: timeout=1".to_vec(),
            16 => b"Transfer-Encoding:  chunked".to_vec(),
            _ => b"X-Plain: 1".to_vec(),
        };
        lines.push(line);
    }
    for l in &lines {
        head.extend_from_slice(l);
        head.extend_from_slice(if rng.random_bool(0.03) {
            b"\n"
        } else {
            b"\r\n"
        });
    }
    head.extend_from_slice(b"\r\n");
    if chunked {
        for part in body.chunks(7) {
            let ext = if rng.random_bool(0.2) { ";x=1" } else { "" };
            head.extend_from_slice(format!("{:x}{ext}\r\n", part.len()).as_bytes());
            head.extend_from_slice(part);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"0\r\n");
        match rng.random_range(0..4) {
            0 => head.extend_from_slice(b"X-Trailer: 1\r\n"),
            1 => {
                head.extend_from_slice(b"XGET /auth/session HTTP/1.1\r\nX-Tapir-Peer: 10.9.9.9\r\n")
            }
            _ => {}
        }
        head.extend_from_slice(b"\r\n");
    } else {
        head.extend_from_slice(&body);
    }
    // Now and then, damage a byte or cut the request short.
    if rng.random_bool(0.1) && !head.is_empty() {
        let i = rng.random_range(0..head.len());
        head[i] = rng.random();
    }
    if rng.random_bool(0.05) {
        head.truncate(rng.random_range(0..head.len()));
    }
    head
}

#[test]
fn tiny_http_receives_exactly_the_requests_the_gate_meant_to_send() {
    let rig = Rig::start(16);
    let mut rng = ChaCha8Rng::seed_from_u64(0x7a91);
    let mut answers = 0;
    for _ in 0..150 {
        // One to three requests pipelined on one connection.
        let mut bytes = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            bytes.extend(random_request(&mut rng));
        }
        let out = rig.exchange(&bytes);
        answers += memchr::memmem::find_iter(&out, b"HTTP/1.1 ").count();
    }
    // tiny_http has answered everything it was sent by now.
    std::thread::sleep(Duration::from_millis(200));
    let sent = rig.sent();
    let received = rig.received.lock().unwrap().clone();
    assert!(sent.len() > 30, "only {} requests went through", sent.len());
    assert_eq!(received.len(), sent.len(), "one for one");
    for (i, (r, s)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(
            r, s,
            "request {i}: tiny_http read something the gate did not send"
        );
        let count = |name: &str| r.2.iter().filter(|(k, _)| k == name).count();
        assert_eq!(count("connection"), 1, "{r:?}");
        assert_eq!(count("content-length"), 1, "{r:?}");
        assert_eq!(count("transfer-encoding"), 0, "{r:?}");
        assert_eq!(count("x-tapir-peer"), 1, "{r:?}");
        assert!(r.2.contains(&("x-tapir-peer".into(), "127.0.0.1".into())));
    }
    // Every request the gate passed on was answered, plus the gate's own refusals.
    assert!(
        answers >= sent.len(),
        "{answers} answers for {} requests",
        sent.len()
    );
}

#[test]
fn the_desync_and_smuggling_shapes_of_the_issue_reach_tiny_http_as_one_request_each() {
    let rig = Rig::start(16);
    // Chunked trailers that hide a request: refused, nothing reaches tiny_http.
    let desync = b"POST /auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                   0\r\nXGET /auth/session HTTP/1.1\r\nX-Tapir-Peer: 10.9.9.9\r\n\r\n\
                   GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    let out = rig.exchange(desync);
    assert!(
        out.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(memchr::memmem::find_iter(&out, b"HTTP/1.1 ").count(), 1);
    assert!(rig.received.lock().unwrap().is_empty());
    // Two Connection headers, one saying upgrade, then more requests: tiny_http answers
    // 200, not 101, so the connection never goes raw; each later request is its own,
    // with the gate's peer.
    let smuggle =
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
                    Connection: upgrade\r\n\r\nGET /auth/login HTTP/1.1\r\nHost: t\r\n\
                    X-Tapir-Peer: 10.9.9.9\r\n\r\n";
    let out = rig.exchange(smuggle);
    assert!(
        out.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    std::thread::sleep(Duration::from_millis(100));
    let received = rig.received.lock().unwrap().clone();
    assert!(!received.is_empty());
    for r in &received {
        let peers: Vec<_> = r.2.iter().filter(|(k, _)| k == "x-tapir-peer").collect();
        assert_eq!(
            peers,
            [&("x-tapir-peer".to_string(), "127.0.0.1".to_string())]
        );
    }
}

#[test]
fn waiting_connections_make_room_and_bad_heads_get_an_answer_at_once() {
    let rig = Rig::start(8);
    // Eight connections that each sent a request and now wait, keep-alive.
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(rig.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            // The whole answer, whose body is "ok" (it may come in more than one read).
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.ends_with(b"\r\n\r\nok") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200"));
            s
        })
        .collect();
    // A ninth is served: the one that waited longest made room.
    let out = rig.exchange(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(
        out.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        idle[0].read(&mut buf).unwrap_or(0),
        0,
        "the longest-waiting one was closed"
    );
    // Bare LF, non-ASCII values, unknown Expect: a JSON answer at once, not a timeout.
    for (raw, status) in [
        (&b"GET / HTTP/1.1\nHost: t\n\n"[..], "400"),
        (
            &b"GET / HTTP/1.1\r\nHost: t\r\nX-A: caf\xc3\xa9\r\n\r\n"[..],
            "400",
        ),
        (
            &b"POST / HTTP/1.1\r\nHost: t\r\nExpect: foo\r\nContent-Length: 1\r\n\r\nx"[..],
            "417",
        ),
    ] {
        let mut s = TcpStream::connect(rig.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    idle.clear();
}

#[test]
fn orphaned_uploads_are_removed_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let own = std::process::id();
    // A process id that does not exist: above the kernel's maximum.
    let dead = 4_194_305;
    let files = [
        format!("{SPOOL_PREFIX}{dead}-abc"),
        format!("{UPLOAD_PREFIX}{dead}-def.pcap"),
        format!("{SPOOL_PREFIX}{own}-ghi"),
        // PID 1 is alive: its upload stays.
        format!("{UPLOAD_PREFIX}1-jkl.pcap"),
        "unrelated.pcap".to_string(),
    ];
    for f in &files {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    assert_eq!(remove_orphan_uploads(dir.path()), 3);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [files[3].clone(), files[4].clone()]);
}

#[test]
fn a_websocket_client_that_takes_nothing_is_cut_off_and_frees_its_slot() {
    // An upstream that switches protocols and then streams without end, as the hub does.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ws.sock");
    let upstream = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in upstream.incoming() {
            let Ok(mut stream) = stream else { return };
            let closed = closed_tx.clone();
            std::thread::spawn(move || {
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head);
                let _ = stream.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                );
                let frame = [b'x'; 16 * 1024];
                let started = std::time::Instant::now();
                while stream.write_all(&frame).is_ok() {}
                let _ = closed.send(started.elapsed());
            });
        }
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Gate::start(
        listener,
        socket,
        None,
        test_limits(8, dir.path()),
        Arc::default(),
    )
    .unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .write_all(
            b"GET /ws/metrics HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .unwrap();
    // The client reads the 101 and then nothing more.
    let mut head = [0u8; 64];
    client.read_exact(&mut head[..12]).unwrap();
    assert_eq!(&head[..12], b"HTTP/1.1 101");
    let held = closed_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the gate let go of the stream");
    assert!(held < Duration::from_secs(10), "{held:?}");
    drop(client);
    gate.stop();
}
