//! Access control and hardening against a real `tapir replay` process: every route needs
//! credentials, viewers change nothing, browser sessions need the CSRF token and the right
//! cookie flags, wrong passwords are slowed down, the one-time password must be changed,
//! IP masking, TLS with the generated certificate (curl completes the handshake), and abuse
//! (path traversal, oversized heads and bodies, hundreds of idle connections) leaves the
//! server answering a well-behaved client within a second.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::{Server, create_token, set_password};
use common::{pcap, tempdir};
use tapir::http::route::{self, Access, ENDPOINTS, Route};

/// hydra -t 4 against SSH: attacker 240.0.1.3 → 240.125.0.2:22, 243 connections (MANIFEST).
const HYDRA: &str = "bruteforce/traceshare_hydra_4_tasks.pcap";
const ATTACKER: &str = "240.0.1.3";

fn replay(config: Option<&str>, before: impl FnOnce(&std::path::Path)) -> Server {
    let dir = tempdir();
    before(&dir);
    let file = pcap(HYDRA);
    Server::start_in(
        dir,
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        config,
    )
}

fn json_post(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> common::server::Answer {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    server.send("POST", path, &all, Some(body))
}

#[test]
fn every_route_needs_credentials_and_viewers_change_nothing() {
    let server = replay(None, |_| {});
    server.wait_replayed();
    let viewer = create_token(&server.dir, "dashboard-wall", "viewer");
    let viewer = format!("Bearer {viewer}");
    for (method, url) in ENDPOINTS {
        let access = route::parse(method, url).unwrap().access();
        let anonymous = server.send(method, url, &[], None);
        match access {
            Access::Public => assert_ne!(anonymous.status, 401, "{method} {url} is public"),
            _ => {
                assert_eq!(anonymous.status, 401, "{method} {url} without credentials");
                assert_eq!(
                    anonymous.header("WWW-Authenticate"),
                    Some("Bearer realm=\"tapir\""),
                    "{method} {url}"
                );
                assert!(anonymous.json()["error"].is_string());
            }
        }
        let bad = server.send(
            method,
            url,
            &[("Authorization", "Bearer tapir_made-up")],
            None,
        );
        if access != Access::Public {
            assert_eq!(bad.status, 401, "{method} {url} with a made-up token");
        }
        let as_viewer = server.send(method, url, &[("Authorization", &viewer)], None);
        match access {
            Access::Admin => assert_eq!(as_viewer.status, 403, "{method} {url} as a viewer"),
            _ => assert!(
                as_viewer.status != 401 && as_viewer.status != 403,
                "{method} {url} as a viewer: {} {}",
                as_viewer.status,
                as_viewer.body
            ),
        }
    }
    // WebSockets too: the handshake is refused without credentials.
    for path in ["/ws/metrics", "/ws/alerts", "/ws/flows"] {
        match tungstenite::connect(server.ws_url(path)) {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401, "{path}"),
            other => panic!("{path}: {:?}", other.map(|(_, r)| r.status())),
        }
        let (mut ws, _) = tungstenite::connect(server.ws_request(path)).expect("with a token");
        ws.close(None).ok();
    }
    // What a viewer may read is all there: the brute force alert (MANIFEST).
    let alerts = server
        .send("GET", "/alerts", &[("Authorization", &viewer)], None)
        .json();
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alert_type"] == "brute_force" && a["source_ip"] == ATTACKER)
    );
    // A revoked token stops working at once.
    let tokens = server.get("/auth/tokens").json();
    let id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "dashboard-wall")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        server
            .request("DELETE", &format!("/auth/tokens/{id}"))
            .status,
        200
    );
    assert_eq!(
        server
            .send("GET", "/stats", &[("Authorization", &viewer)], None)
            .status,
        401
    );
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

/// Headers: the cookie, then `extra`.
fn with<'a>(cookie: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("Cookie", cookie)];
    h.extend_from_slice(extra);
    h
}

/// The session cookie's value from a `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

#[test]
fn browser_sessions_need_the_csrf_token_and_the_one_time_password_must_go() {
    // No password set: the first start makes a one-time one and prints it.
    let server = replay(None, |_| {});
    let stderr = server.stderr_so_far();
    let otp = stderr
        .split("One-time password for user \"admin\": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no one-time password printed: {stderr}"))
        .to_string();
    assert_eq!(otp.len(), 16);

    // A plain form post (what another site could send) is refused; JSON logs in.
    let form = server.send(
        "POST",
        "/auth/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(&format!("username=admin&password={otp}")),
    );
    assert_eq!(form.status, 415);
    let login = json_post(
        &server,
        "/auth/login",
        &[],
        &format!(r#"{{"username":"admin","password":"{otp}"}}"#),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let body = login.json();
    assert_eq!(body["must_change_password"], true);
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let set_cookie = login.header("Set-Cookie").unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "no Secure flag over plain HTTP"
    );
    let cookie = cookie_value(&set_cookie);

    // Nothing but changing the password until it is changed.
    let blocked = server.send("GET", "/stats", &with(&cookie, &[]), None);
    assert_eq!(blocked.status, 403);
    assert!(
        blocked.body.contains("one-time password"),
        "{}",
        blocked.body
    );
    let change = format!(r#"{{"current_password":"{otp}","new_password":"a new admin password"}}"#);
    assert_eq!(
        json_post(&server, "/auth/password", &with(&cookie, &[]), &change).status,
        403,
        "no CSRF token"
    );
    let changed = json_post(
        &server,
        "/auth/password",
        &with(&cookie, &[("X-CSRF-Token", &csrf)]),
        &change,
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        server
            .send("GET", "/stats", &with(&cookie, &[]), None)
            .status,
        200
    );
    let session = server
        .send("GET", "/auth/session", &with(&cookie, &[]), None)
        .json();
    assert_eq!(session["user"], "admin");
    assert_eq!(session["csrf_token"], csrf.as_str());
    // The one-time password is gone.
    let old = json_post(
        &server,
        "/auth/login",
        &[],
        &format!(r#"{{"password":"{otp}"}}"#),
    );
    assert_eq!(old.status, 401);

    // State changes: without the token, with a wrong one, from another site: refused.
    let mask_on = r#"{"ip_masking":true}"#;
    assert_eq!(
        json_post(&server, "/settings", &with(&cookie, &[]), mask_on).status,
        403
    );
    assert_eq!(
        json_post(
            &server,
            "/settings",
            &with(&cookie, &[("X-CSRF-Token", "guess")]),
            mask_on
        )
        .status,
        403
    );
    let cross = json_post(
        &server,
        "/settings",
        &with(
            &cookie,
            &[("X-CSRF-Token", &csrf), ("Origin", "http://evil.example")],
        ),
        mask_on,
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert_eq!(
        server
            .send("POST", "/pcap/replay/stop", &with(&cookie, &[]), None)
            .status,
        403
    );
    // With it: IP masking goes on, and addresses are shown as their networks.
    let on = json_post(
        &server,
        "/settings",
        &with(&cookie, &[("X-CSRF-Token", &csrf)]),
        mask_on,
    );
    assert_eq!(on.status, 200, "{}", on.body);
    assert_eq!(on.json()["privacy"]["ip_masking"], true);
    assert!(on.json()["retention"]["flows_days"].is_number());
    server.wait_replayed();
    let flows = server.get("/flows?start_time=0&limit=5").json();
    let first = &flows["flows"][0];
    assert_eq!(first["src_ip"], "240.0.1.0/24", "{first}");
    assert_eq!(first["dst_ip"], "240.125.0.0/24", "{first}");
    let alerts = server.get("/alerts").body;
    assert!(!alerts.contains(ATTACKER), "{alerts}");
    assert!(alerts.contains("240.0.1.0/24"));
    // Saved: still on after a restart.
    let dir = server.dir.clone();
    let (code, stderr) = server.stop_keeping_db();
    assert_eq!(code, Some(0), "{stderr}");
    let file = pcap(HYDRA);
    let server = Server::start_in(
        dir,
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        None,
    );
    assert!(!server.stderr_so_far().contains("One-time password"));
    assert_eq!(
        server.get("/settings").json()["privacy"]["ip_masking"],
        true
    );

    // Logging out ends the session.
    let login = json_post(
        &server,
        "/auth/login",
        &[],
        r#"{"password":"a new admin password"}"#,
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let csrf = login.json()["csrf_token"].as_str().unwrap().to_string();
    let cookie = cookie_value(login.header("Set-Cookie").unwrap());
    let out = server.send(
        "POST",
        "/auth/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(out.status, 200);
    assert!(out.header("Set-Cookie").unwrap().contains("Max-Age=0"));
    let after = server.send("GET", "/stats", &[("Cookie", &cookie)], None);
    assert_eq!(after.status, 401);
    assert!(after.body.contains("session has expired"), "{}", after.body);
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn wrong_passwords_are_slowed_down_and_the_right_one_works_after_the_wait() {
    let server = replay(None, |dir| {
        set_password(dir, "admin", "the right password", "admin")
    });
    let wrong = r#"{"username":"admin","password":"guess"}"#;
    let mut answers = Vec::new();
    for _ in 0..20 {
        // The gate sets the client address itself: a forged one changes nothing.
        let a = json_post(
            &server,
            "/auth/login",
            &[("X-Tapir-Peer", "10.9.9.9")],
            wrong,
        );
        answers.push((a.status, a.header("Retry-After").map(str::to_string)));
    }
    // Five free attempts, then a wait, during which even trying is refused.
    for (i, (status, retry)) in answers.iter().enumerate() {
        if i < 5 {
            assert_eq!(
                (*status, retry.as_deref()),
                (401, None),
                "attempt {}",
                i + 1
            );
        } else {
            assert!(
                (*status == 429 || *status == 401) && retry.is_some(),
                "attempt {}: {status} {retry:?}",
                i + 1
            );
        }
    }
    assert!(
        answers.iter().filter(|(s, _)| *s == 429).count() >= 10,
        "{answers:?}"
    );
    let right = r#"{"username":"admin","password":"the right password"}"#;
    let now = json_post(&server, "/auth/login", &[], right);
    assert_eq!(now.status, 429, "still waiting: {}", now.body);
    let wait: u64 = now.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    std::thread::sleep(Duration::from_secs(wait));
    let later = json_post(&server, "/auth/login", &[], right);
    assert_eq!(later.status, 200, "{}", later.body);
    server.stop();
}

/// `curl` against the TLS server: the status line, headers and body as text.
fn curl_tls(
    server: &Server,
    cacert: &std::path::Path,
    path: &str,
    extra: &[&str],
) -> (bool, String) {
    let port = server
        .base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/');
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--cacert"])
        .arg(cacert)
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn tls_uses_a_generated_certificate_that_curl_verifies() {
    let server = replay(Some("[server.tls]\nenabled = true\n"), |dir| {
        set_password(dir, "admin", "the right password", "admin")
    });
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let cert = server.dir.join("tls/cert.pem");
    assert!(cert.is_file());
    let stderr = server.stderr_so_far();
    assert!(stderr.contains("SHA-256 fingerprint"), "{stderr}");
    // curl checks the chain against the generated certificate and the name "localhost".
    let (ok, text) = curl_tls(&server, &cert, "/healthz", &[]);
    assert!(ok && text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=31536000")
            || text.contains("Strict-Transport-Security: max-age=31536000"),
        "{text}"
    );
    let (ok, text) = curl_tls(&server, &cert, "/stats", &[]);
    assert!(ok && text.starts_with("HTTP/1.1 401"), "{text}");
    let (ok, text) = curl_tls(
        &server,
        &cert,
        "/auth/login",
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"password":"the right password"}"#,
        ],
    );
    assert!(ok && text.starts_with("HTTP/1.1 200"), "{text}");
    let set_cookie = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(set_cookie.contains("__Host-tapir_session="), "{set_cookie}");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let (ok, text) = curl_tls(
        &server,
        &cert,
        "/stats",
        &["-H", &format!("Authorization: {}", server.bearer())],
    );
    assert!(ok && text.starts_with("HTTP/1.1 200"), "{text}");
    // Without trusting the certificate, curl refuses it: it really is self-signed.
    let port = server.base.rsplit(':').next().unwrap();
    let untrusted = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("https://localhost:{port}/healthz"),
        ])
        .status()
        .unwrap();
    assert!(!untrusted.success());
    // Plain HTTP on the TLS port gets no answer, and the server carries on.
    let plain = raw(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(!plain.contains("200 OK"), "{plain}");
    let (ok, _) = curl_tls(&server, &cert, "/healthz", &[]);
    assert!(ok);
    let restarted_cert = std::fs::read(&cert).unwrap();
    let dir = server.dir.clone();
    server.stop_keeping_db();
    // The certificate is kept across restarts.
    let file = pcap(HYDRA);
    let server = Server::start_in(
        dir,
        &["replay", file.to_str().unwrap()],
        Some("[server.tls]\nenabled = true\n"),
    );
    assert_eq!(
        std::fs::read(server.dir.join("tls/cert.pem")).unwrap(),
        restarted_cert
    );
    server.stop();
}

/// Sends raw bytes and returns what came back before the server closed (or `limit` passed).
fn raw(server: &Server, bytes: &[u8], limit: Duration) -> String {
    let addr = server.base.split("://").nth(1).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Raises this process's open-file limit (the test holds over a thousand sockets).
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct of the right type.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

#[test]
fn abuse_leaves_the_server_answering_within_a_second() {
    raise_file_limit();
    let server = replay(None, |_| {});
    let healthy = |what: &str| {
        let started = Instant::now();
        let a = server.get("/healthz");
        let took = started.elapsed();
        assert_eq!(a.status, 200, "{what}");
        assert!(
            took < Duration::from_secs(1),
            "{what}: /healthz took {took:?}"
        );
        took
    };
    healthy("at start");

    // Path traversal on the embedded assets: nothing outside them is ever read.
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/vendor/../../../../etc/passwd",
        "//etc/passwd",
        "/index.html%00.js",
        "/..%2f..%2fCargo.toml",
        "/.%2e/src/main.rs",
        "/app.js/../../Cargo.toml",
    ] {
        let text = raw(
            &server,
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(5),
        );
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        assert!(matches!(status, 400 | 401 | 404), "{path}: {text}");
        assert!(
            !text.contains("root:") && !text.contains("[package]") && !text.contains("fn main"),
            "{path}"
        );
    }

    // Oversized heads and bodies are refused before they reach the API.
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert!(
        raw(&server, big_header.as_bytes(), Duration::from_secs(5)).starts_with("HTTP/1.1 431")
    );
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    assert!(
        raw(
            &server,
            format!("GET /healthz HTTP/1.1\r\n{many}\r\n").as_bytes(),
            Duration::from_secs(5)
        )
        .starts_with("HTTP/1.1 431")
    );
    let endless = raw(
        &server,
        format!("GET /{} HTTP/1.1\r\n", "a".repeat(40_000)).as_bytes(),
        Duration::from_secs(5),
    );
    assert!(endless.starts_with("HTTP/1.1 431"), "{endless}");
    let big_body = raw(
        &server,
        b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(big_body.starts_with("HTTP/1.1 413"), "{big_body}");
    // A chunked body is counted against the same limit (64 KiB) as it arrives: cut off.
    let mut endless_chunks =
        b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..100 {
        endless_chunks.extend_from_slice(b"400\r\n");
        endless_chunks.extend_from_slice(&[b'a'; 1024]);
        endless_chunks.extend_from_slice(b"\r\n");
    }
    let cut = raw(&server, &endless_chunks, Duration::from_secs(5));
    assert!(!cut.contains("200 OK"), "{cut}");
    // Smuggling: both framings at once.
    let both = raw(&server, b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", Duration::from_secs(5));
    assert!(both.starts_with("HTTP/1.1 400"), "{both}");
    healthy("after oversized requests");

    // 500 idle connections, half of them sending a head one byte at a time (slowloris).
    let addr = server.base.split("://").nth(1).unwrap().to_string();
    let mut idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    for (i, s) in idle.iter_mut().enumerate() {
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /stats HTTP/1.1\r\nX-");
        }
    }
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        for s in idle.iter_mut().step_by(2) {
            let _ = s.write_all(b"a");
        }
        worst = worst.max(healthy("with 500 idle connections"));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("worst /healthz with 500 idle connections: {worst:?}");
    // A flood past the connection limit (512): the oldest idle ones make room.
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    healthy("with 800 connections opened");
    // The slow heads run out of time (10 s): 408, then closed.
    std::thread::sleep(Duration::from_secs(11));
    let mut timed_out = 0;
    for s in idle.iter_mut().step_by(2).rev().take(20) {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if out.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        }
    }
    drop(flood);
    drop(idle);
    let gate = &server.get("/debug").json()["http"]["gate"];
    assert!(gate["evicted"].as_u64().unwrap() >= 280, "{gate}");
    assert!(gate["header_timeouts"].as_u64().unwrap() >= 1, "{gate}");
    assert!(gate["header_too_large"].as_u64().unwrap() >= 3, "{gate}");
    assert!(gate["body_too_large"].as_u64().unwrap() >= 2, "{gate}");
    // Evicted or timed out, every slow head was closed; some saw the 408.
    assert!(
        timed_out > 0 || gate["evicted"].as_u64().unwrap() >= 300,
        "{gate}"
    );
    healthy("after the flood");
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_route_table_knows_every_state_change() {
    // Parsed straight from the table the server uses: a route that changes state and is
    // open to viewers would fail here.
    for (method, url) in ENDPOINTS {
        let route = route::parse(method, url).unwrap();
        if *method == "POST" || *method == "DELETE" {
            assert!(
                route.changes_state() || matches!(route, Route::Login),
                "{method} {url} changes state"
            );
        }
    }
}
