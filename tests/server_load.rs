//! Load on loopback: 50 HTTP clients and 20 WebSocket clients for `TAPIR_LOAD_SECS` (default
//! 30) against `tapir replay --speed 0 --loop` of a busy capture. Asserts no errors, no
//! dropped WebSocket and bounded memory; prints the figures (requests/s, latencies, the
//! replay's packets/s with and without the load, WebSocket message sizes). Timings are
//! reported, not asserted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::pcap;
use common::server::Server;

/// 82,582 packets of 500 TCP sessions in 6.5 s (MANIFEST), in time order, so every pass of
/// the loop follows the last.
const BENCH: &str = "synflood/zeek_echo_connections_burst.pcap";
const HTTP_CLIENTS: usize = 50;
const WS_CLIENTS: usize = 20;
const PATHS: [&str; 3] = ["/stats", "/flows?limit=100", "/alerts"];

fn frames(server: &Server) -> u64 {
    server.get("/debug").json()["capture"]["frames"]
        .as_u64()
        .unwrap()
}

/// Packets per second the replay reaches over `secs`.
fn replay_rate(server: &Server, secs: f64) -> f64 {
    let (f0, t0) = (frames(server), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    (frames(server) - f0) as f64 / t0.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn fifty_http_and_twenty_websocket_clients_on_a_full_speed_replay() {
    let secs: u64 = std::env::var("TAPIR_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let file = pcap(BENCH);
    let server = Server::start(
        &["replay", file.to_str().unwrap(), "--speed", "0", "--loop"],
        None,
    );
    std::thread::sleep(Duration::from_secs(2));
    let idle_rate = replay_rate(&server, 5.0);

    let stop = Arc::new(AtomicBool::new(false));
    let base = server.base.clone();
    let bearer = server.bearer();
    let t0 = Instant::now();
    let http: Vec<_> = (0..HTTP_CLIENTS)
        .map(|i| {
            let (stop, base, bearer) = (Arc::clone(&stop), base.clone(), bearer.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(20)))
                    .build()
                    .into();
                let mut latencies: [Vec<Duration>; 3] = Default::default();
                let mut errors = Vec::new();
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let which = n % PATHS.len();
                    n += 1;
                    let started = Instant::now();
                    let request = agent
                        .get(format!("{base}{}", PATHS[which]))
                        .header("Authorization", &bearer);
                    match request.call() {
                        Ok(mut r) if r.status() == 200 => {
                            let _ = r.body_mut().read_to_string();
                            latencies[which].push(started.elapsed());
                        }
                        Ok(r) => errors.push(format!("{} {}", PATHS[which], r.status())),
                        Err(e) => errors.push(format!(
                            "{} {e} (sent {:.1} s after start)",
                            PATHS[which],
                            started.duration_since(t0).as_secs_f64()
                        )),
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let ws: Vec<_> = (0..WS_CLIENTS)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let path = ["/ws/metrics", "/ws/flows", "/ws/alerts"][i % 3];
            let url = server.ws_request(path);
            std::thread::spawn(move || {
                let (mut socket, _) = tungstenite::connect(url).expect("WebSocket handshake");
                if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
                    s.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                }
                let (mut messages, mut bytes, mut closed) = (0u64, 0u64, false);
                while !stop.load(Ordering::Relaxed) {
                    match socket.read() {
                        Ok(tungstenite::Message::Text(t)) => {
                            messages += 1;
                            bytes += t.len() as u64;
                        }
                        Ok(tungstenite::Message::Close(_)) => {
                            closed = true;
                            break;
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                (path, messages, bytes, closed)
            })
        })
        .collect();

    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let loaded_rate = replay_rate(&server, (secs as f64 - 4.0).max(1.0));
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();

    let mut all: [Vec<Duration>; 3] = Default::default();
    let mut errors = Vec::new();
    for h in http {
        let (lat, err) = h.join().unwrap();
        for (a, l) in all.iter_mut().zip(lat) {
            a.extend(l);
        }
        errors.extend(err);
    }
    let mut ws_report = Vec::new();
    for w in ws {
        ws_report.push(w.join().unwrap());
    }
    let debug = server.get("/debug").json();

    eprintln!("load: {HTTP_CLIENTS} HTTP + {WS_CLIENTS} WebSocket clients for {elapsed:.0} s");
    eprintln!("replay packets/s: {idle_rate:.0} without load, {loaded_rate:.0} under load");
    for (path, lat) in PATHS.iter().zip(all.iter_mut()) {
        lat.sort();
        eprintln!(
            "{path:>18}: {} requests, {:.0}/s, p50 {:?}, p99 {:?}, max {:?}",
            lat.len(),
            lat.len() as f64 / elapsed,
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            lat.last().unwrap()
        );
    }
    for stream in ["/ws/metrics", "/ws/flows", "/ws/alerts"] {
        let (n, b) = ws_report
            .iter()
            .filter(|r| r.0 == stream)
            .fold((0, 0), |(n, b), r| (n + r.1, b + r.2));
        eprintln!(
            "{stream:>18}: {n} messages, {} bytes on average",
            b.checked_div(n).unwrap_or(0)
        );
    }
    eprintln!(
        "hub: {}; peak RSS {} MB",
        debug["websocket"],
        debug["peak_rss_bytes"].as_u64().unwrap() / (1 << 20)
    );

    assert!(
        errors.is_empty(),
        "{} errors, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(all.iter().all(|l| l.len() > 50), "too few requests served");
    for (path, messages, _, closed) in &ws_report {
        assert!(!closed, "a {path} client was closed");
        if *path != "/ws/alerts" {
            // One per second (metrics) or two (flows), less a start-up margin.
            let period = if *path == "/ws/metrics" { 1 } else { 2 };
            assert!(
                *messages >= secs / period - 3,
                "{path}: {messages} messages in {secs} s"
            );
        }
    }
    assert_eq!(debug["websocket"]["dropped_slow"], 0);
    // Bounded, not small: at full speed the store writes tens of thousands of flows a
    // second and sled's share (it grows with `max_disk_mb`) plateaus near 250 MB (README).
    assert!(
        debug["peak_rss_bytes"].as_u64().unwrap() < 384 << 20,
        "peak RSS {}",
        debug["peak_rss_bytes"]
    );
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}
