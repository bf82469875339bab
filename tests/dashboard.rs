//! The dashboard end to end in Debian's Chromium (Playwright, tests/e2e/dashboard.mjs) against
//! `tapir demo` with logins required: the login comes first, every view renders real data,
//! acknowledging in the UI reaches the API, an upload in the replay view produces its alerts,
//! a viewer sees no controls that change anything, logging out works, no console errors, no
//! request to another host. Screenshots of every view go to target/e2e-screenshots/.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::server::{Server, set_password};
use common::{pcap, run_with_limit};

/// The repository root and tests/e2e, once the browser and Playwright are there (the test
/// fails, never skips, without them).
fn browser_test_dirs() -> (&'static Path, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e2e = root.join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and `npm ci` in tests/e2e (scripts/install-deps.sh does both)"
    );
    (root, e2e)
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let (root, e2e) = browser_test_dirs();
    let dir = common::tempdir();
    set_password(&dir, "admin", "e2e admin password", "admin");
    set_password(&dir, "watcher", "e2e viewer password", "viewer");
    let server = Server::start_in(dir, &["demo"], Some("[auth]\nenabled = true\n"));
    let shots = root.join("target/e2e-screenshots");
    let out = run_with_limit(
        std::process::Command::new("node")
            .arg(e2e.join("dashboard.mjs"))
            .arg(&server.base)
            .arg(&shots)
            .arg(pcap("portscan/nmap_tcp_syn_scan.pcap"))
            .arg(&server.token)
            .args(["e2e admin password", "e2e viewer password"]),
        Duration::from_secs(180),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "dashboard checks failed:\n{report}"
    );
    for view in [
        "login",
        "dashboard",
        "alerts",
        "sessions",
        "map",
        "graph",
        "replay",
        "settings",
        "viewer",
    ] {
        assert!(
            shots.join(format!("{view}.png")).is_file(),
            "no screenshot of {view}"
        );
    }
    server.stop();
}

/// Replays `capture` in full on a server without logins, then runs the browser script
/// `script` (tests/e2e) against it; its report is printed, and a failing check fails.
fn replay_and_check(capture: &str, script: &str) {
    replay_with_config_and_check(capture, script, "");
}

/// Like `replay_and_check`, with more config text.
fn replay_with_config_and_check(capture: &str, script: &str, config: &str) {
    let (root, e2e) = browser_test_dirs();
    let file = pcap(capture);
    let server = Server::start(
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        Some(&format!("[auth]\nenabled = false\n{config}")),
    );
    server.wait_replayed();
    let shots = root.join("target/e2e-screenshots");
    let out = run_with_limit(
        std::process::Command::new("node")
            .arg(e2e.join(script))
            .arg(&server.base)
            .arg(&shots)
            .arg(&server.token),
        Duration::from_secs(120),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{script} checks failed:\n{report}"
    );
    server.stop();
}

#[test]
fn names_show_beside_addresses_and_the_graph_stays_readable() {
    // FoxIO's browsing capture (MANIFEST: 84 ClientHellos, 42 SNIs, 20 over QUIC), replayed
    // in full; the views read what it left (talkers, the live window's applications, stored
    // flows).
    replay_and_check("names/foxio_tls_handshake_browsing.pcapng", "names.mjs");
}

#[test]
fn the_devices_view_lists_a_replayed_captures_devices_and_opens_their_pages() {
    // A home LAN with mDNS, DHCP and NetBIOS names (MANIFEST: nine stations, among them
    // Gabrieles-iPad.local and the TL-SG116E switch).
    replay_and_check("devices/ndpi_telegram_mdns_dhcp.pcap", "devices.mjs");
}

#[test]
fn stored_flows_page_through_and_a_host_page_charts_its_history() {
    // The Mr. X scan (MANIFEST: scanner 10.42.42.253 probes .25, .50 and .56 over ten
    // minutes; 7.4k flows): more flows than a page, and minutes of history for one host.
    replay_and_check("portscan/nfpuzzle4_mr_x_scan.pcap", "history.mjs");
}

#[test]
fn the_settings_view_shows_targets_and_lists_and_sends_a_test() {
    // A receiver on loopback that answers 200 and remembers what it got.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Read, Write};
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let dir = common::tempdir();
    std::fs::write(dir.join("blocklist.txt"), "72.163.128.140\nsurfshark.com\n").unwrap();
    let config = format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook-secret\"\n\
         [intel]\ndir = \"{}\"\n[[intel.list]]\nname = \"blocklist\"\npath = \"blocklist.txt\"\n",
        dir.display()
    );
    replay_with_config_and_check(
        "names/mercury_chrome_mlkem_tcp_quic_dns.pcap",
        "settings.mjs",
        &config,
    );
    let bodies = got.lock().unwrap().clone();
    assert!(
        bodies.iter().any(|b| b.contains("\"event\":\"test\"")),
        "the receiver got no test message: {bodies:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
