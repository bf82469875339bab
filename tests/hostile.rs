//! A stranger on the watched network, without a login, against a real `tapir replay` on
//! loopback: each attack that once took the appliance down or around its login, kept as a
//! regression test. Memory and thread bounds are checked inside cgroups of the unit's
//! `MemoryMax=256M` and `TasksMax=512` (enforced in CI, which runs as root).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::confine::{Confinement, rss_and_threads};
use common::server::{Server, set_password};
use common::{pcap, tempdir};

/// hydra -t 4 against SSH: attacker 240.0.1.3 → 240.125.0.2:22 (MANIFEST).
const HYDRA: &str = "bruteforce/traceshare_hydra_4_tasks.pcap";
const PASSWORD: &str = "the right password";

/// The most threads tapir keeps while serving without WebSocket clients (README): the
/// pipeline's actors, capture, store, the gate, two hashing threads, the workers and the
/// tiny_http threads of the gate's pool (two per worker).
const MAX_THREADS_WITHOUT_WEBSOCKETS: u64 = 48;

fn replay(config: &str) -> Server {
    let dir = tempdir();
    set_password(&dir, "admin", PASSWORD, "admin");
    let file = pcap(HYDRA);
    Server::start_in(
        dir,
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        Some(config),
    )
}

fn pid(server: &Server) -> u32 {
    server.child.id()
}

fn addr(server: &Server) -> String {
    server.base.split("://").nth(1).unwrap().to_string()
}

/// Sends `bytes` on a new connection and reads until it closes or `limit` passes.
fn raw(server: &Server, bytes: &[u8], limit: Duration) -> String {
    let mut s = TcpStream::connect(addr(server)).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
        .collect()
}

/// A login request; `close` asks the server to close the connection after answering.
fn login_request(password: &str, close: bool) -> String {
    let body = format!(r#"{{"password":"{password}"}}"#);
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {connection}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one whole response (head, then `Content-Length` bytes): its status and text.
fn read_response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let text = String::from_utf8_lossy(&got).into_owned();
                return Some((statuses(&text).first().copied()?, text));
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `/healthz` from a new connection, with how long it took.
fn healthz(server: &Server) -> (u16, Duration) {
    let started = Instant::now();
    let text = raw(
        server,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    (
        statuses(&text).first().copied().unwrap_or(0),
        started.elapsed(),
    )
}

fn assert_healthy(server: &Server, what: &str) -> Duration {
    let (status, took) = healthz(server);
    assert_eq!(status, 200, "{what}: /healthz");
    assert!(
        took < Duration::from_secs(1),
        "{what}: /healthz took {took:?}"
    );
    took
}

#[test]
fn logins_keep_memory_flat_and_threads_bounded_under_the_units_limits() {
    // No throttle here: every login must be hashed (the throttle has a test of its own).
    let server = replay("[auth]\nlogin_free_attempts = 100000\n");
    server.wait_replayed();
    let confined = Confinement::apply_or_skip(pid(&server), "logins");
    let login_round = |n: usize, connections: usize| {
        let per = n / connections;
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                let addr = addr(&server);
                std::thread::spawn(move || {
                    let mut codes = Vec::new();
                    let mut s = TcpStream::connect(&addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    for i in 0..per {
                        // Every fourth login is right.
                        let pw = if (c + i) % 4 == 0 {
                            PASSWORD
                        } else {
                            "wrong password"
                        };
                        let request = login_request(pw, false);
                        // Refused as busy (503): try again shortly, as Retry-After asks,
                        // until this login is hashed.
                        for _ in 0..2000 {
                            let answer = match s.write_all(request.as_bytes()) {
                                Ok(()) => read_response(&mut s),
                                Err(_) => None,
                            };
                            let (code, text) = answer.unwrap_or((0, String::new()));
                            codes.push(code);
                            if code == 0 || text.contains("Connection: close") {
                                s = TcpStream::connect(&addr).unwrap();
                                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            }
                            if code != 503 {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    codes
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    };
    // Ten logins first: the hashing threads' blocks are allocated once, now.
    let warm = login_round(10, 2);
    assert!(warm.iter().all(|c| [200, 401, 503].contains(c)), "{warm:?}");
    let (rss_after_10, _) = rss_and_threads(pid(&server));
    let mut peak_threads = 0;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.extend(login_round(48, 16));
        peak_threads = peak_threads.max(rss_and_threads(pid(&server)).1);
    }
    let (rss_after, threads) = rss_and_threads(pid(&server));
    let hashed = codes.iter().filter(|c| [200, 401].contains(*c)).count();
    let busy = codes.iter().filter(|c| **c == 503).count();
    eprintln!(
        "240 logins from 16 connections: {hashed} hashed, {busy} refused as busy; RSS {} -> {} MB; {peak_threads} threads at most",
        rss_after_10 / 1_000_000,
        rss_after / 1_000_000
    );
    assert!(
        codes.iter().all(|c| [200, 401, 503].contains(c)),
        "{codes:?}"
    );
    assert_eq!(hashed, 240, "every login was hashed in the end: {codes:?}");
    assert!(codes.contains(&200), "the right password logged in");
    // Memory after 240 logins is memory after 10, within a few MB.
    assert!(
        rss_after < rss_after_10 + 8 * 1024 * 1024,
        "RSS grew from {rss_after_10} to {rss_after} bytes"
    );
    assert!(threads.max(peak_threads) <= MAX_THREADS_WITHOUT_WEBSOCKETS);
    if let Some(c) = &confined {
        assert_eq!(c.oom_kills(), 0);
    }
    assert_healthy(&server, "after the logins");
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_throttled_address_stays_throttled_through_smuggling_and_huge_heads_go_nowhere() {
    let server = replay("[auth]\nlogin_free_attempts = 2\nlogin_max_delay_secs = 60\n");
    // Wrong passwords until the address must wait.
    let mut throttled = false;
    for _ in 0..6 {
        let text = raw(
            &server,
            login_request("wrong password", true).as_bytes(),
            Duration::from_secs(10),
        );
        throttled |= statuses(&text).contains(&429);
    }
    assert!(throttled, "wrong passwords are throttled");
    let (rss_before, _) = rss_and_threads(pid(&server));
    // The smuggling shape: an upgrade that tiny_http refuses, then requests on the same
    // connection, one with the right password, sixty with guesses, a forged peer.
    let mut attack = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                       Connection: keep-alive\r\nConnection: upgrade\r\n\r\n"
        .to_vec();
    attack.extend_from_slice(
        login_request(PASSWORD, false)
            .replace(
                "Host: 127.0.0.1\r\n",
                "Host: 127.0.0.1\r\nX-Tapir-Peer: 10.9.9.9\r\n",
            )
            .as_bytes(),
    );
    for i in 0..60 {
        attack.extend_from_slice(login_request(&format!("guess number {i}"), false).as_bytes());
    }
    let text = raw(&server, &attack, Duration::from_secs(10));
    let codes = statuses(&text);
    assert!(
        !text.contains("csrf_token"),
        "a throttled address logged in: {text}"
    );
    assert!(
        !codes.contains(&401) && !codes.contains(&200) || codes == [200],
        "a password was checked past the throttle: {codes:?}"
    );
    // Still throttled, right password or not.
    let text = raw(
        &server,
        login_request(PASSWORD, true).as_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(statuses(&text), [429], "{text}");
    // A 200 MB header, straight or behind the same trick, never reaches tiny_http.
    for prefix in [
        &b""[..],
        &b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
    ] {
        let mut s = TcpStream::connect(addr(&server)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(prefix);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ");
        let pad = vec![b'a'; 1024 * 1024];
        for _ in 0..200 {
            if s.write_all(&pad).is_err() {
                break;
            }
        }
    }
    let (rss_after, _) = rss_and_threads(pid(&server));
    assert!(
        rss_after < rss_before + 16 * 1024 * 1024,
        "RSS grew from {rss_before} to {rss_after} bytes"
    );
    assert_healthy(&server, "after the smuggling attempts");
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn two_requests_never_get_three_answers_and_bad_heads_get_one_at_once() {
    let server = replay("");
    // The trailer desync: a hidden request in the trailers of the first.
    let desync =
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\nXGET /auth/session HTTP/1.1\r\n\
                   X-Tapir-Peer: 10.9.9.9\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let text = raw(&server, desync, Duration::from_secs(5));
    let codes = statuses(&text);
    assert!(codes.len() <= 2, "{codes:?}: {text}");
    assert!(
        !text.contains("authenticated"),
        "the hidden request was answered: {text}"
    );
    // Non-ASCII values, an unknown expectation, bare LF: a JSON 4xx at once.
    for (request, status) in [
        (&b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Name: caf\xc3\xa9\r\n\r\n"[..], 400),
        (&b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n{}"[..], 417),
        (&b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n"[..], 400),
    ] {
        let started = Instant::now();
        let text = raw(&server, request, Duration::from_secs(5));
        assert_eq!(statuses(&text), [status], "{text}");
        assert!(text.contains("\"error\""), "{text}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn slow_bodies_and_keep_alive_floods_leave_healthz_answering_within_a_second() {
    let server = replay("");
    server.wait_replayed();
    let confined = Confinement::apply_or_skip(pid(&server), "floods");
    // Eight clients send large bodies one byte a second: to login and to acknowledge.
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = TcpStream::connect(addr(&server)).unwrap();
            let path = if i % 2 == 0 {
                "/auth/login"
            } else {
                "/alerts/1/acknowledge"
            };
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: 60000\r\n\r\n{{"
            )
            .unwrap();
            s
        })
        .collect();
    let mut worst = Duration::ZERO;
    for _ in 0..6 {
        for s in &mut slow {
            let _ = s.write_all(b" ");
        }
        worst = worst.max(assert_healthy(&server, "during the slow bodies"));
        std::thread::sleep(Duration::from_millis(1000));
    }
    eprintln!("worst /healthz during slow bodies: {worst:?}");
    drop(slow);
    // 600 keep-alive clients, each asking again and again: beyond max_connections (512).
    let mut clients: Vec<Option<TcpStream>> = (0..600).map(|_| None).collect();
    let (mut peak_threads, mut worst) = (0, Duration::ZERO);
    for round in 0..4 {
        for c in clients.iter_mut() {
            let s = c.get_or_insert_with(|| {
                let s = TcpStream::connect(addr(&server)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            });
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        }
        for c in clients.iter_mut() {
            let mut buf = [0u8; 2048];
            // An evicted client reads the end of its connection and reconnects next round.
            if c.as_mut()
                .is_some_and(|s| s.read(&mut buf).unwrap_or(0) == 0)
            {
                *c = None;
            }
        }
        peak_threads = peak_threads.max(rss_and_threads(pid(&server)).1);
        worst = worst.max(assert_healthy(&server, &format!("flood round {round}")));
    }
    eprintln!("600 keep-alive clients: worst /healthz {worst:?}, {peak_threads} threads at most");
    assert!(
        peak_threads <= MAX_THREADS_WITHOUT_WEBSOCKETS,
        "{peak_threads} threads"
    );
    drop(clients);
    let gate = &server.get("/debug").json()["http"]["gate"];
    assert!(
        gate["body_timeouts"].as_u64().unwrap() >= 1 || gate["evicted"].as_u64().unwrap() >= 8,
        "{gate}"
    );
    assert!(gate["evicted"].as_u64().unwrap() >= 88, "{gate}");
    if let Some(c) = &confined {
        assert_eq!(c.oom_kills(), 0);
    }
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

/// Requests a page of another site could make: a state change with its `Origin`, and a
/// read through a rebound name.
fn cross_site_is_refused(server: &Server, auth: &[(&str, &str)]) {
    let mut h = auth.to_vec();
    h.push(("Origin", "http://evil.example"));
    let ack = server.send("POST", "/alerts/1/acknowledge", &h, None);
    assert_eq!(ack.status, 403, "{}", ack.body);
    let mut h = auth.to_vec();
    h.push(("Sec-Fetch-Site", "cross-site"));
    assert_eq!(
        server.send("POST", "/pcap/replay/stop", &h, None).status,
        403
    );
    // DNS rebinding: the page's own name arrives in Host.
    let port = server.base.rsplit(':').next().unwrap();
    let rebound =
        format!("GET /stats HTTP/1.1\r\nHost: rebind.example:{port}\r\nConnection: close\r\n\r\n");
    let text = raw(server, rebound.as_bytes(), Duration::from_secs(5));
    assert_eq!(statuses(&text), [421], "{text}");
    assert!(!text.contains("total_packets"));
    // The same requests from this server's own pages, or no browser, go through.
    let mut h = auth.to_vec();
    let own = format!("http://127.0.0.1:{port}");
    h.push(("Origin", &own));
    assert_eq!(server.send("GET", "/stats", &h, None).status, 200);
    let local =
        format!("GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    assert_eq!(
        statuses(&raw(server, local.as_bytes(), Duration::from_secs(5))),
        [200]
    );
}

#[test]
fn cross_site_requests_and_foreign_hosts_are_refused_with_login_on_and_off() {
    // Demo on loopback: no login at all.
    let demo = Server::start(&["demo"], None);
    cross_site_is_refused(&demo, &[]);
    assert_eq!(demo.stop().0, Some(0));
    let server = replay("");
    let bearer = server.bearer();
    cross_site_is_refused(&server, &[("Authorization", &bearer)]);
    assert_eq!(server.stop().0, Some(0));
}

#[test]
fn masked_views_hold_no_full_address_and_nothing_derived_from_one() {
    let server = replay("[privacy]\nip_masking = true\n");
    server.wait_replayed();
    let full = ["240.0.1.3", "240.125.0.2"];
    let mut seen = String::new();
    for path in [
        "/flows?start_time=0&limit=1000",
        "/alerts",
        "/stats",
        "/top-talkers?limit=50",
        "/packets?limit=100",
    ] {
        let a = server.get(path);
        assert_eq!(a.status, 200, "{path}");
        seen.push_str(&a.body);
    }
    let (mut ws, _) = tungstenite::connect(server.ws_request("/ws/flows")).unwrap();
    if let Ok(msg) = ws.read() {
        seen.push_str(&msg.into_text().map(|t| t.to_string()).unwrap_or_default());
    }
    for ip in full {
        assert!(!seen.contains(ip), "{ip} shown in full");
    }
    assert!(seen.contains("240.0.1.0/24"), "the masked network is shown");
    // Community IDs hash the full addresses and ports: none may be shown.
    assert!(!seen.contains("community_id"), "a Community ID is shown");
    assert!(!seen.contains("\"1:"), "a Community ID value is shown");
    assert_eq!(server.stop().0, Some(0));
}

#[test]
fn a_partial_upload_left_by_a_crash_is_deleted_at_the_next_start() {
    let dir = tempdir();
    let uploads = dir.join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    // Named as a spool of a process that no longer exists (above the kernel's pid_max).
    let orphan = uploads.join("tapir-spool-4194305-x1y2z3");
    std::fs::write(
        &orphan,
        b"--zz\r\nContent-Disposition: form-data; name=\"file\"",
    )
    .unwrap();
    let config = format!("[server]\nupload_dir = {:?}\n", uploads.to_str().unwrap());
    let file = pcap(HYDRA);
    let server = Server::start_in(
        dir,
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        Some(&config),
    );
    assert!(!orphan.exists(), "the partial upload is still there");
    // Said in the log (read by another thread: give it a moment).
    let said = |s: &Server| s.stderr_so_far().contains("deleted 1 partial upload");
    let started = Instant::now();
    while !said(&server) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(said(&server), "{}", server.stderr_so_far());
    assert_eq!(server.stop().0, Some(0));
}
