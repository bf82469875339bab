//! The server end to end: `tapir replay` on 127.0.0.1 with a temporary database, every
//! endpoint through a real HTTP client, the WebSockets through a real WebSocket client,
//! uploads through curl. Expected numbers come from the MANIFEST (capinfos, tshark).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::Server;
use common::{pcap, run_with_limit, tapir, tempdir};
use serde_json::Value;

const HYDRA: &str = "bruteforce/traceshare_hydra_4_tasks.pcap";
/// hydra -t 4 against SSH: attacker and defender (MANIFEST).
const ATTACKER: &str = "240.0.1.3";
const DEFENDER: &str = "240.125.0.2";

fn replay(file: &str, extra: &[&str]) -> Server {
    let path = pcap(file);
    let mut args = vec!["replay", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args, None)
}

fn is_number(v: &Value) -> bool {
    v.is_number()
}

#[test]
fn every_endpoint_answers_in_the_published_shape_and_filters_filter() {
    let server = replay(HYDRA, &["--speed", "0"]);
    server.wait_replayed();

    // /stats: the published StatsSnapshot fields; every frame counted (capinfos: 9,918).
    let stats = server.get("/stats");
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    for key in ["protocol_counts", "bandwidth_series", "top_talkers"] {
        assert!(
            stats[key].is_object() || stats[key].is_array(),
            "{key}: {stats}"
        );
    }
    assert!(is_number(&stats["packets_per_sec"]) && is_number(&stats["active_sessions"]));
    assert_eq!(stats["total_packets"], 9918);

    // /flows with a time range: active + stored; tshark counts 243 TCP conversations, all
    // opened by the attacker.
    let all = "/flows?start_time=0&end_time=4000000000&limit=10000";
    let flows = server.get(all).json();
    assert_eq!(flows["count"], 243, "{}", flows["count"]);
    // The history and the host page, from the store: the 243 flows, all between the
    // attacker and its target over TCP.
    let history = server.get("/history?metric=flows").json();
    assert_eq!(history["series"][0]["total"], 243, "{history}");
    assert_eq!(
        history["tier"], "hour",
        "24 hours by default: the hour tier"
    );
    let host = server.get("/hosts/240.0.1.3").json();
    assert_eq!(host["top_peers"][0]["key"], "240.125.0.2", "{host}");
    assert_eq!(host["top_peers"][0]["flows"], 243);
    assert_eq!(host["protocols"][0]["key"], "TCP");
    assert_eq!(host["protocols"].as_array().unwrap().len(), 1);
    assert!(host["history"]["series"][0]["total"].as_u64().unwrap() > 0);
    assert_eq!(server.get("/hosts/not-an-ip").status, 400);
    let first = &flows["flows"][0];
    for (key, check) in [
        ("src_ip", Value::is_string as fn(&Value) -> bool),
        ("dst_ip", Value::is_string),
        ("src_port", Value::is_u64),
        ("dst_port", Value::is_u64),
        ("protocol", Value::is_string),
        ("first_seen", Value::is_f64),
        ("last_seen", Value::is_f64),
        ("duration", Value::is_number),
        ("total_bytes", Value::is_u64),
        ("packet_count", Value::is_u64),
        ("bytes_per_sec", Value::is_number),
        ("tcp_flags", Value::is_array),
    ] {
        assert!(check(&first[key]), "flow field {key}: {first}");
    }
    let count = |q: &str| server.get(&format!("{all}&{q}")).json()["count"].clone();
    assert_eq!(count(&format!("src_ip={ATTACKER}")), 243);
    assert_eq!(count(&format!("src_ip={DEFENDER}")), 0);
    assert_eq!(count(&format!("ip={DEFENDER}")), 243);
    assert_eq!(count("protocol=TCP"), 243);
    assert_eq!(count("protocol=UDP"), 0);
    let some = server.get("/flows?start_time=0&end_time=4000000000&limit=7");
    assert_eq!(some.json()["count"], 7);
    // The capture's clock starts near 0 and spans 20 minutes: a window after it is empty,
    // and the first ten minutes hold some flows but not all.
    assert_eq!(
        server.get("/flows?start_time=5000&end_time=6000").json()["count"],
        0
    );
    let early = server
        .get("/flows?start_time=0&end_time=600&limit=10000")
        .json()["count"]
        .as_u64()
        .unwrap();
    assert!(early > 0 && early < 243, "{early}");

    // /alerts: the brute force from the attacker, in the published shape.
    let alerts = server.get("/alerts").json();
    let brute = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert_type"] == "brute_force" && a["source_ip"] == ATTACKER)
        .unwrap_or_else(|| panic!("no brute force alert: {alerts}"))
        .clone();
    // Typed, with values: a field that exists but is null fails.
    // The hydra capture is stamped from the epoch on (tshark: the alert's first attempt at
    // 54.6 s).
    assert!(
        brute["timestamp"].as_f64().is_some_and(|t| t > 0.0),
        "{brute}"
    );
    assert_eq!(brute["alert_type"], "brute_force");
    assert_eq!(
        brute["severity"], "high",
        "the published severity of brute_force"
    );
    assert_eq!(brute["source_ip"], ATTACKER);
    assert!(
        brute["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{brute}"
    );
    assert!(brute["evidence"].is_object(), "{brute}");
    assert!(brute["acknowledged"].is_boolean(), "{brute}");
    assert!(brute["id"].as_u64().is_some(), "{brute}");
    // Brute force points at the flow of the attempt that crossed the threshold: its
    // Community ID v1 ("1:" and a base64 SHA-1 of 28 characters).
    assert!(
        brute["community_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("1:") && c.len() == 30),
        "{brute}"
    );
    assert_eq!(brute["acknowledged"], false);

    // /packets and /packets/{id}: the recent ring, the published Packet fields.
    let packets = server.get("/packets?limit=5").json();
    assert_eq!(packets["count"], 5);
    let p = &packets["packets"][0];
    for key in ["id", "timestamp_ms", "size_bytes", "data_length"] {
        assert!(p[key].as_u64().is_some(), "packet field {key}: {p}");
    }
    for key in ["src_ip", "dst_ip"] {
        assert!(
            p[key]
                .as_str()
                .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
            "packet field {key}: {p}"
        );
    }
    assert!(p["protocol"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
    assert!(p["info"].is_string(), "{p}");
    let one = server.get(&format!("/packets/{}", p["id"]));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], p["id"]);
    assert_eq!(server.get("/packets/99999999").status, 404);

    // /top-talkers: the two hosts of the capture, 240/4 labelled reserved, not looked up.
    let talkers = server.get("/top-talkers?limit=5&with_geo=true").json();
    let ips: Vec<&str> = talkers
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ip"].as_str().unwrap())
        .collect();
    assert!(
        ips.contains(&ATTACKER) && ips.contains(&DEFENDER),
        "{talkers}"
    );
    assert_eq!(talkers[0]["scope"], "reserved");

    // /metrics: Prometheus text with the frame count.
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("\ntapir_packets_total 9918\n"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("tapir_alerts{rule=\"brute_force\""));

    // /debug and /healthz.
    let debug = server.get("/debug").json();
    assert_eq!(debug["mode"], "replay");
    assert!(
        debug["store"]["database"]["flows"]["records"]
            .as_u64()
            .unwrap()
            >= 243
    );
    assert_eq!(server.get("/healthz").status, 200);

    // Acknowledge in the published form; it sticks, and survives a restart.
    let ack = server.post(&format!(
        "/alerts/{}/acknowledge?source_ip={ATTACKER}",
        brute["timestamp"]
    ));
    assert_eq!(ack.status, 200, "{}", ack.body);
    assert_eq!(ack.json()["success"], true);
    let open = server.get("/alerts?unacknowledged_only=true").json();
    assert!(
        !open["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == brute["id"])
    );
    let dir = server.dir.clone();
    let (code, stderr) = server.stop_keeping_db();
    assert_eq!(code, Some(0), "{stderr}");

    let tiny = pcap("icmp/cs_icmp_echo.pcapng");
    let again = Server::start_in(
        dir,
        &["replay", tiny.to_str().unwrap(), "--speed", "0"],
        None,
    );
    let alerts = again.get("/alerts?limit=1000").json();
    let kept = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == brute["id"])
        .unwrap_or_else(|| panic!("the alert is gone after a restart: {alerts}"));
    assert_eq!(kept["acknowledged"], true);
    // By id too, on the stored alert.
    assert_eq!(
        again
            .post(&format!("/alerts/{}/acknowledge", brute["id"]))
            .status,
        200
    );
    assert_eq!(again.post("/alerts/12345/acknowledge").status, 404);
    again.stop();
}

#[test]
fn bad_requests_get_a_json_error_and_the_server_keeps_serving() {
    let dir = tempdir();
    let uploads = dir.join("uploads");
    let config = format!(
        "[server]\nupload_max_mb = 1\nio_timeout_secs = 1\nupload_dir = \"{}\"\n",
        uploads.display()
    );
    let tiny = pcap("icmp/cs_icmp_echo.pcapng");
    let server = Server::start_in(
        dir.clone(),
        &["replay", tiny.to_str().unwrap()],
        Some(&config),
    );
    // Quiet for longer than the I/O timeout: the server still accepts connections.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.get("/healthz").status, 200);
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/nope", 404),
        ("GET", "/ws/nope", 404),
        ("DELETE", "/flows", 405),
        ("POST", "/stats", 405),
        ("GET", "/pcap/upload", 405),
        ("GET", "/flows?limit=abc", 400),
        ("GET", "/flows?limit=-5", 400),
        ("GET", "/flows?limit=0", 400),
        ("GET", "/flows?limit=100000000000000000000", 400),
        ("GET", "/flows?src_ip=999.1.1.1", 400),
        ("GET", "/flows?protocol=XYZ", 400),
        ("GET", "/flows?start_time=20&end_time=10", 400),
        ("GET", "/flows?start_time=yesterday", 400),
        ("GET", "/flows?bogus=1", 400),
        ("GET", "/alerts?limit=1e9", 400),
        ("GET", "/alerts?unacknowledged_only=perhaps", 400),
        ("GET", "/top-talkers?limit=5000", 400),
        ("GET", "/geo", 400),
        ("GET", "/geo?ip=example.com", 400),
        ("GET", "/packets/abc", 400),
        ("POST", "/alerts/xyz/acknowledge", 400),
        ("POST", "/alerts/1.5/acknowledge?source_ip=nobody", 400),
        ("POST", "/pcap/upload", 415),
        ("GET", "/ws/metrics", 426),
    ];
    for (method, path, want) in cases {
        let answer = server.request(method, path);
        assert_eq!(answer.status, *want, "{method} {path}: {}", answer.body);
        let body = answer.json();
        assert!(body["error"].is_string(), "{method} {path}: {body}");
        assert!(body.get("detail").is_some(), "{method} {path}: {body}");
        assert_eq!(server.get("/healthz").status, 200, "after {method} {path}");
    }

    // Uploads: not a capture, a cut-short capture, too large, malformed multipart.
    let scratch = tempdir();
    let text = scratch.join("notes.txt");
    std::fs::write(&text, "this is not a capture\n".repeat(50)).unwrap();
    let cut = scratch.join("cut.pcap");
    let whole = std::fs::read(pcap(HYDRA)).unwrap();
    std::fs::write(&cut, &whole[..200_001]).unwrap();
    let big = scratch.join("big.pcap");
    std::fs::write(&big, &whole).unwrap(); // 1.7 MB > the 1 MiB limit
    for (file, want) in [(&text, 415), (&cut, 422), (&big, 413)] {
        let answer = server.upload(file, "1");
        assert_eq!(answer.status, want, "{}: {}", file.display(), answer.body);
        assert!(answer.json()["error"].is_string());
        assert_eq!(server.get("/healthz").status, 200);
    }
    let bad_speed = server.upload(&tiny, "fast");
    assert_eq!(bad_speed.status, 400, "{}", bad_speed.body);
    // A multipart body that ends inside its part.
    let part = "--zz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc";
    let raw = format!(
        "POST /pcap/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 60\r\nConnection: close\r\n\r\n{part}",
        server.bearer()
    );
    let reply = raw_request(&server, raw.as_bytes(), Some(60 - part.len()));
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // Junk that is not HTTP at all.
    let reply = raw_request(&server, b"\x16\x03\x01 hello there\r\n\r\n", None);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "{reply}"
    );
    assert_eq!(server.get("/healthz").status, 200);
    // Nothing is left behind on disk.
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "files left in the upload directory: {left:?}"
    );
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Sends raw bytes (padding the declared body with `pad` more bytes if given) and returns
/// what the server answered.
/// A whole `POST /pcap/upload` of `capture` at its recorded pace, closing the connection.
fn multipart_upload(auth: &str, capture: &[u8]) -> Vec<u8> {
    let mut body =
        b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.pcap\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
            .to_vec();
    body.extend_from_slice(capture);
    body.extend_from_slice(
        b"\r\n--zz\r\nContent-Disposition: form-data; name=\"speed\"\r\n\r\n1\r\n--zz--\r\n",
    );
    let mut request = format!(
        "POST /pcap/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

fn raw_request(server: &Server, bytes: &[u8], pad: Option<usize>) -> String {
    let addr = server.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    if let Some(n) = pad {
        s.write_all(&vec![b'x'; n]).unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn ws_next(
    ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
) -> Value {
    loop {
        match ws.read().expect("a WebSocket message") {
            tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

fn ws_connect(
    server: &Server,
    path: &str,
) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>> {
    let (ws, response) =
        tungstenite::connect(server.ws_request(path)).expect("WebSocket handshake");
    assert_eq!(response.status().as_u16(), 101);
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    ws
}

#[test]
fn websockets_stream_metrics_flows_and_an_uploads_alerts_and_stop_stops() {
    // A long, slow base replay: hydra-4 spans 20 minutes at its recorded pace.
    let dir = tempdir();
    let uploads = dir.join("uploads");
    let hydra = pcap(HYDRA);
    let server = Server::start_in(
        dir,
        &["replay", hydra.to_str().unwrap(), "--speed", "1"],
        Some(&format!(
            "[server]\nupload_dir = \"{}\"\n",
            uploads.display()
        )),
    );
    let mut metrics = ws_connect(&server, "/ws/metrics");
    let m = ws_next(&mut metrics);
    assert!(m["protocol_counts"].is_object(), "/ws/metrics: {m}");
    assert!(m["bandwidth_series"].is_array(), "/ws/metrics: {m}");
    assert!(m["top_talkers"].is_array(), "/ws/metrics: {m}");
    assert!(m["packets_per_sec"].is_number(), "/ws/metrics: {m}");
    assert!(m["active_sessions"].as_u64().is_some(), "/ws/metrics: {m}");
    let started = Instant::now();
    let m2 = ws_next(&mut metrics);
    let gap = started.elapsed();
    assert!(
        gap < Duration::from_millis(1600),
        "metrics every second, got {gap:?}"
    );
    assert!(m2["total_packets"].as_u64() >= m["total_packets"].as_u64());

    let mut flows = ws_connect(&server, "/ws/flows");
    let f = ws_next(&mut flows);
    assert!(f["flows"].is_array() && f["stats"].is_object(), "{f}");

    // Upload a port scan (MANIFEST: Mr. X scans 192.168.0.9's ports) at full speed: its
    // alert arrives on /ws/alerts.
    let mut alerts = ws_connect(&server, "/ws/alerts");
    let scan = pcap("portscan/nfpuzzle4_mr_x_scan.pcap");
    let answer = server.upload(&scan, "0");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["success"], true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let msg = ws_next(&mut alerts);
        for a in msg["alerts"].as_array().unwrap() {
            seen.push(a["alert_type"].as_str().unwrap().to_string());
        }
        if seen.iter().any(|t| t == "port_scan") {
            break;
        }
    }
    assert!(
        seen.iter().any(|t| t == "port_scan"),
        "alerts seen: {seen:?}"
    );
    // The upload ends by itself; the base replay resumes.
    server.wait_debug(Duration::from_secs(30), "the upload to end", |d| {
        d["capture"]["sources"]["upload"].is_null()
            && d["capture"]["sources"]["uploads_replayed"] == 1
            && d["capture"]["sources"]["base"]["state"] == "running"
    });
    // The upload's alert is in the history.
    let stored = server.get("/alerts?limit=1000").json();
    assert!(
        stored["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alert_type"] == "port_scan")
    );

    // Stop: a slow upload is stopped, then there is nothing left to stop but the base replay.
    let answer = server.upload(&pcap(HYDRA), "1");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        server.upload(&scan, "1").status,
        409,
        "a second upload while one replays"
    );
    // The stop answers once the upload has stopped: an upload sent the moment the answer
    // arrives is taken (both requests written in advance, on connections already open).
    let addr = server.base.trim_start_matches("http://").to_string();
    let (mut stop, mut next) = (
        TcpStream::connect(&addr).unwrap(),
        TcpStream::connect(&addr).unwrap(),
    );
    let auth = server.bearer();
    let upload = multipart_upload(&auth, &std::fs::read(pcap(HYDRA)).unwrap());
    write!(
        stop,
        "POST /pcap/replay/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut stopped = String::new();
    stop.read_to_string(&mut stopped).unwrap();
    assert!(stopped.starts_with("HTTP/1.1 200"), "{stopped}");
    next.write_all(&upload).unwrap();
    let mut answer = String::new();
    next.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "an upload right after a stop: {answer}"
    );
    assert_eq!(server.post("/pcap/replay/stop").status, 200);
    server.wait_debug(Duration::from_secs(10), "the upload to stop", |d| {
        d["capture"]["sources"]["upload"].is_null()
    });
    assert_eq!(
        server.post("/pcap/replay/stop").status,
        200,
        "stops the base replay"
    );
    server.wait_replayed();
    assert_eq!(server.post("/pcap/replay/stop").status, 409);
    // Replayed uploads are deleted.
    let left: Vec<_> = std::fs::read_dir(&uploads).unwrap().flatten().collect();
    assert!(left.is_empty(), "uploads left behind: {left:?}");
    // Shutdown closes the WebSockets with a Close frame.
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let closed = loop {
        match metrics.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.is_some(),
            Ok(_) => continue,
            Err(e) => panic!("no Close frame before the connection ended: {e}"),
        }
    };
    assert!(closed);
}

#[test]
fn acknowledgements_survive_a_crash_and_a_replay_of_the_same_capture() {
    let server = replay(HYDRA, &["--speed", "0"]);
    server.wait_replayed();
    let alerts = server.get("/alerts").json();
    let ids: Vec<u64> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    assert!(
        !ids.is_empty(),
        "the hydra capture raises an alert (MANIFEST)"
    );
    for id in &ids {
        let a = server.post(&format!("/alerts/{id}/acknowledge"));
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // Stored within a flush interval (1 s); then the process dies without a shutdown.
    std::thread::sleep(Duration::from_secs(3));
    let dir = server.dir.clone();
    server.kill_keeping_db();
    // The same capture again: its alerts open again with the same ids.
    let file = pcap(HYDRA);
    let again = Server::start_in(
        dir,
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        None,
    );
    again.wait_replayed();
    let alerts = again.get("/alerts").json();
    for a in alerts["alerts"].as_array().unwrap() {
        if ids.contains(&a["id"].as_u64().unwrap()) {
            assert_eq!(a["acknowledged"], true, "{a}");
        }
    }
    let open = again.get("/alerts?unacknowledged_only=true").json();
    assert_eq!(open["count"], 0, "{open}");
    assert_eq!(again.stop().0, Some(0));
}

#[test]
fn start_errors_are_one_clear_line_and_nothing_serves() {
    use common::{run_with_limit, tapir};
    let dir = tempdir();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nport = 8000\nworkers = \"many\"\n").unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "demo".into(),
                "--port".into(),
                "0".into(),
                "--config".into(),
                bad.display().to_string(),
            ],
            2,
            "line 3",
        ),
        (vec!["run".into()], 2, "no interface"),
        (
            vec![
                "run".into(),
                "--iface".into(),
                "tapirnope0".into(),
                "--port".into(),
                "0".into(),
            ],
            1,
            "tapirnope0",
        ),
        (
            vec![
                "replay".into(),
                "/nonexistent/x.pcap".into(),
                "--port".into(),
                "0".into(),
            ],
            1,
            "/nonexistent/x.pcap",
        ),
        (
            vec![
                "replay".into(),
                pcap(HYDRA).display().to_string(),
                "--speed=-1".into(),
            ],
            2,
            "--speed",
        ),
    ];
    for (args, code, says) in cases {
        let out = run_with_limit(
            tapir()
                .args(&args)
                .arg("--db-path")
                .arg(dir.join("db"))
                .env_remove("NET_IFACE"),
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} served: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_taken_port_is_a_clear_error_before_anything_starts() {
    // It panicked inside the actor system once the other parts had started.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempdir();
    let db = dir.join("db");
    let out = run_with_limit(
        tapir()
            .args(["demo", "--port", &port, "--db-path"])
            .arg(&db),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("choose one with --port"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!db.exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(&dir);
}
