//! Live capture on a veth pair between two network namespaces that each test creates (and
//! removes), with real tools as the traffic: tcpreplay, nmap, hping3, curl and dig. Nothing
//! leaves the namespaces: all traffic goes between the pair's own addresses (10.77.0.1 sends,
//! 10.77.0.2 captures).
//!
//! Needs root (or CAP_NET_ADMIN + CAP_NET_RAW) and the tools: in CI (`CI=true`, as root) a
//! test that cannot run fails with the reason; elsewhere it is skipped with the reason.
//! `scripts/install-deps.sh` installs the tools.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Two namespaces joined by a veth pair; removed on drop.
struct Namespaces {
    capture: String,
    sender: String,
}

impl Namespaces {
    /// `tag` keeps the names of tests running in parallel apart.
    fn create(tag: &str) -> Option<Namespaces> {
        let id = std::process::id();
        let ns = Namespaces {
            capture: format!("tapir-cap-{id}-{tag}"),
            sender: format!("tapir-snd-{id}-{tag}"),
        };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.capture.clone()],
            vec!["netns".into(), "add".into(), ns.sender.clone()],
            vec![
                "link".into(),
                "add".into(),
                "tcap0".into(),
                "netns".into(),
                ns.capture.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                "tsnd0".into(),
                "netns".into(),
                ns.sender.clone(),
            ],
        ];
        for args in &steps {
            if !ip(&args.iter().map(String::as_str).collect::<Vec<_>>()) {
                return None;
            }
        }
        for (netns, dev, addr) in [
            (&ns.capture, "tcap0", "10.77.0.2/24"),
            (&ns.sender, "tsnd0", "10.77.0.1/24"),
        ] {
            // No IPv6 on the pair: no router solicitations or MLD reports in the capture.
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    netns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                ])
                .status();
            assert!(ip(&["-n", netns, "addr", "add", addr, "dev", dev]));
            // Loopback too: a server's own address is reached through it.
            assert!(ip(&["-n", netns, "link", "set", "lo", "up"]));
            assert!(ip(&["-n", netns, "link", "set", dev, "up"]));
        }
        Some(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.capture]);
        ip(&["netns", "del", &self.sender]);
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn live_capture_on_a_veth_pair_sees_every_replayed_frame() {
    if !have("ip") || !have("tcpreplay") {
        common::cannot_run(
            "live capture test needs `ip` and `tcpreplay` (scripts/install-deps.sh installs them)",
        );
        return;
    }
    let Some(ns) = Namespaces::create("replay") else {
        common::cannot_run("cannot create network namespaces here (needs root or CAP_NET_ADMIN)");
        return;
    };
    let dir = tempdir();
    let frames = 20_000u64;
    let pcap = dir.join("small.pcap");
    let generated = run_with_limit(
        tapir()
            .args([
                "gen",
                "--scenario",
                "smalludp",
                "--packets",
                &frames.to_string(),
                "--seed",
                "3",
                "--out",
            ])
            .arg(&pcap),
        Duration::from_secs(60),
    );
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let mut capture = Command::new("ip");
    capture
        .args(["netns", "exec", &ns.capture])
        .arg(env!("CARGO_BIN_EXE_tapir"))
        .args([
            "analyze",
            "--json",
            "--iface",
            "tcap0",
            "--duration",
            "6",
            "--bpf",
            "udp and dst port 9",
        ]);
    let capture = std::thread::spawn(move || run_with_limit(&mut capture, Duration::from_secs(30)));
    // Let libpcap open the interface before the traffic starts.
    std::thread::sleep(Duration::from_millis(1500));
    let replay = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.sender,
            "tcpreplay",
            "-q",
            "-i",
            "tsnd0",
            "--pps",
            "20000",
        ])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&replay.stderr)
    );

    let out = capture.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["packets"], frames, "{json}");
    assert_eq!(json["decoded"], frames);
    assert_eq!(json["protocol_counts"]["UDP"], frames);
    assert_eq!(json["libpcap"]["dropped"], 0);
    assert_eq!(json["packets_dropped"], 0);
    let _ = std::fs::remove_dir_all(dir);
    drop(ns);
}

#[test]
fn capture_errors_say_what_to_do() {
    let out = run_with_limit(
        tapir().args(["analyze", "--iface", "tapir-no-such-if0", "--duration", "1"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Root sees "does not exist"; an unprivileged user may be told about privileges first.
    assert!(
        stderr.contains("does not exist") || stderr.contains("needs privileges"),
        "{stderr}"
    );
}

/// Runs `tapir analyze --iface` in the capture namespace for `secs` while `traffic` runs in
/// the sender namespace, and returns the summary.
fn capture_during(
    ns: &Namespaces,
    secs: u32,
    traffic: impl FnOnce(&Namespaces),
) -> serde_json::Value {
    let mut capture = Command::new("ip");
    capture
        .args(["netns", "exec", &ns.capture])
        .arg(env!("CARGO_BIN_EXE_tapir"))
        .args([
            "analyze",
            "--json",
            "--iface",
            "tcap0",
            "--duration",
            &secs.to_string(),
        ]);
    let capture = std::thread::spawn(move || run_with_limit(&mut capture, Duration::from_secs(60)));
    // Let libpcap open the interface before the traffic starts.
    std::thread::sleep(Duration::from_millis(1500));
    traffic(ns);
    let out = capture.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs a tool in the sender namespace (its exit status is the tool's business: a refused
/// connection is the point of some of these).
fn from_sender(ns: &Namespaces, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.sender])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "{args:?} was killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find<'a>(
    summary: &'a serde_json::Value,
    rule: &str,
    source: &str,
    target: &str,
) -> Option<&'a serde_json::Value> {
    summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert_type"] == rule && a["source_ip"] == source && a["target"] == target)
}

fn live_ready(tools: &[&str], tag: &str) -> Option<Namespaces> {
    if let Some(missing) = tools.iter().find(|t| !have(t)) {
        common::cannot_run(&format!(
            "live detector test needs `{missing}` (scripts/install-deps.sh installs it)"
        ));
        return None;
    }
    let ns = Namespaces::create(tag);
    if ns.is_none() {
        common::cannot_run("cannot create network namespaces here (needs root or CAP_NET_ADMIN)");
    }
    ns
}

#[test]
fn live_nmap_scans_are_port_scans() {
    let Some(ns) = live_ready(&["ip", "nmap"], "nmap") else {
        return;
    };
    for (mode, probe) in [("-sS", "syn"), ("-sT", "syn"), ("-sU", "udp")] {
        let summary = capture_during(&ns, 7, |ns| {
            from_sender(
                ns,
                &[
                    "nmap",
                    mode,
                    "-Pn",
                    "-n",
                    "-T5",
                    "--max-retries",
                    "0",
                    "--host-timeout",
                    "4s",
                    "-p",
                    "1-200",
                    "10.77.0.2",
                ],
            );
        });
        let alert = find(&summary, "port_scan", "10.77.0.1", "10.77.0.2")
            .unwrap_or_else(|| panic!("nmap {mode}: {summary:#}"));
        assert!(
            alert["evidence"]["probe_types"][probe].as_u64().unwrap() >= 10,
            "{alert}"
        );
        assert!(
            alert["evidence"]["distinct_ports"].as_u64().unwrap() >= 10,
            "{alert}"
        );
    }
}

/// A VXLAN tunnel (VNI 42) between the two namespaces, over the veth pair: 192.168.42.1 in
/// the sender, 192.168.42.2 in the capture namespace.
fn vxlan_over_the_pair(ns: &Namespaces) {
    for (netns, dev, local, remote, addr) in [
        (
            &ns.sender,
            "tsnd0",
            "10.77.0.1",
            "10.77.0.2",
            "192.168.42.1/24",
        ),
        (
            &ns.capture,
            "tcap0",
            "10.77.0.2",
            "10.77.0.1",
            "192.168.42.2/24",
        ),
    ] {
        let link = [
            "-n", netns, "link", "add", "tvx0", "type", "vxlan", "id", "42", "local", local,
            "remote", remote, "dstport", "4789", "dev", dev,
        ];
        assert!(ip(&link), "cannot create a VXLAN device in {netns}");
        assert!(ip(&["-n", netns, "addr", "add", addr, "dev", "tvx0"]));
        assert!(ip(&["-n", netns, "link", "set", "tvx0", "up"]));
    }
}

#[test]
fn live_nmap_through_a_vxlan_tunnel_is_a_port_scan_of_the_inner_addresses() {
    let Some(ns) = live_ready(&["ip", "nmap"], "vxlan") else {
        return;
    };
    vxlan_over_the_pair(&ns);
    // Captured on the underlay (tcap0): every probe arrives inside VXLAN.
    let summary = capture_during(&ns, 7, |ns| {
        from_sender(
            ns,
            &[
                "nmap",
                "-sS",
                "-Pn",
                "-n",
                "-T5",
                "--max-retries",
                "0",
                "--host-timeout",
                "4s",
                "-p",
                "1-200",
                "192.168.42.2",
            ],
        );
    });
    let scans: Vec<_> = summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "port_scan")
        .collect();
    assert_eq!(scans.len(), 1, "{summary:#}");
    assert_eq!(scans[0]["source_ip"], "192.168.42.1", "{summary:#}");
    assert_eq!(scans[0]["target"], "192.168.42.2", "{summary:#}");
    assert!(
        scans[0]["evidence"]["distinct_ports"].as_u64().unwrap() >= 100,
        "{summary:#}"
    );
    assert!(
        summary["encapsulations"]["vxlan"].as_u64().unwrap() >= 200,
        "{summary:#}"
    );
}

#[test]
fn live_hping3_syn_flood() {
    let Some(ns) = live_ready(&["ip", "hping3"], "hping") else {
        return;
    };
    let summary = capture_during(&ns, 5, |ns| {
        // 300 SYNs at 500 per second to one port; bounded by the count.
        from_sender(
            ns,
            &[
                "hping3",
                "-q",
                "-S",
                "-p",
                "80",
                "-c",
                "300",
                "-i",
                "u2000",
                "10.77.0.2",
            ],
        );
    });
    let alert = find(&summary, "syn_flood", "10.77.0.1", "10.77.0.2:80")
        .unwrap_or_else(|| panic!("{summary:#}"));
    assert_eq!(alert["severity"], "critical");
    assert!(alert["count"].as_u64().unwrap() >= 100);
}

#[test]
fn live_brute_force_on_a_closed_port_and_a_small_service() {
    let Some(ns) = live_ready(&["ip", "curl", "python3"], "brute") else {
        return;
    };
    // A tiny "FTP server" in the capture namespace that refuses every login and hangs up.
    let server = r"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.77.0.2', 21))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(b'530 Login incorrect.\r\n')
    c.close()
";
    let mut service = Command::new("ip")
        .args(["netns", "exec", &ns.capture, "python3", "-c", server])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let summary = capture_during(&ns, 8, |ns| {
        for _ in 0..8 {
            // Port 23 is closed: each attempt is answered by RST.
            from_sender(
                ns,
                &["curl", "-s", "--max-time", "2", "telnet://10.77.0.2:23"],
            );
        }
        for _ in 0..12 {
            from_sender(
                ns,
                &["curl", "-s", "--max-time", "2", "ftp://10.77.0.2:21/"],
            );
        }
    });
    let _ = service.kill();
    let _ = service.wait();
    let refused = find(&summary, "brute_force", "10.77.0.1", "10.77.0.2:23")
        .unwrap_or_else(|| panic!("closed port: {summary:#}"));
    assert!(
        refused["evidence"]["failed_attempts"].as_u64().unwrap() >= 5,
        "{refused}"
    );
    let sessions = find(&summary, "brute_force", "10.77.0.1", "10.77.0.2:21")
        .unwrap_or_else(|| panic!("small service: {summary:#}"));
    assert!(
        sessions["evidence"]["short_sessions"].as_u64().unwrap() >= 10,
        "{sessions}"
    );
}

#[test]
fn live_long_dns_names_are_a_tunnel() {
    let Some(ns) = live_ready(&["ip", "dig"], "dns") else {
        return;
    };
    let summary = capture_during(&ns, 6, |ns| {
        for i in 0..25u32 {
            // 60 base32 characters of "data" per query, as dns2tcp or iodine would send.
            let label: String = (0..60u32)
                .map(|j| {
                    b"abcdefghijklmnopqrstuvwxyz234567"[((i * 7919 + j * j * 31 + j) % 32) as usize]
                        as char
                })
                .collect();
            let name = format!("{label}.t.example.com");
            from_sender(
                ns,
                &["dig", "@10.77.0.2", "+tries=1", "+time=1", "TXT", &name],
            );
        }
    });
    let alert = find(&summary, "dns_tunneling", "10.77.0.1", "10.77.0.2:53")
        .unwrap_or_else(|| panic!("{summary:#}"));
    assert!(
        alert["evidence"]["long_names"].as_u64().unwrap() >= 1,
        "{alert}"
    );
}

/// `curl` from the sender namespace: status and body.
fn curl_from_sender(ns: &Namespaces, args: &[&str]) -> (u16, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.sender,
            "curl",
            "-s",
            "-m",
            "10",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn live_server_sees_an_nmap_scan_and_stops_cleanly() {
    let Some(ns) = live_ready(&["ip", "nmap", "curl"], "serve") else {
        return;
    };
    let dir = tempdir();
    // Authentication is on, as shipped: a viewer token is enough to read.
    let token = common::server::create_token(&dir, "live", "viewer");
    let auth = format!("Authorization: Bearer {token}");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns.capture])
        .arg(env!("CARGO_BIN_EXE_tapir"))
        .args([
            "run",
            "--iface",
            "tcap0",
            "--host",
            "10.77.0.2",
            "--port",
            "8000",
        ])
        .args(["--bpf", "not tcp port 8000"])
        .arg("--db-path")
        .arg(dir.join("db"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("http://10.77.0.2:8000"), "{line}");
    let base = "http://10.77.0.2:8000";
    assert_eq!(curl_from_sender(&ns, &[&format!("{base}/healthz")]).0, 200);
    // Another host on the network sees nothing without credentials.
    assert_eq!(curl_from_sender(&ns, &[&format!("{base}/alerts")]).0, 401);
    from_sender(
        &ns,
        &[
            "nmap",
            "-sS",
            "-Pn",
            "-n",
            "-T5",
            "--max-retries",
            "0",
            "-p",
            "1-200",
            "10.77.0.2",
        ],
    );
    // Detection runs on packet time; give the pipeline a moment, then ask.
    let mut found = false;
    for _ in 0..30 {
        let (status, body) = curl_from_sender(&ns, &["-H", &auth, &format!("{base}/alerts")]);
        assert_eq!(status, 200, "{body}");
        let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
        found = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alert_type"] == "port_scan" && a["source_ip"] == "10.77.0.1");
        if found {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(found, "no port scan alert from the live server");
    let (_, metrics) = curl_from_sender(&ns, &["-H", &auth, &format!("{base}/metrics")]);
    let frames: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tapir_packets_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames >= 200.0, "{frames}");
    assert!(
        metrics.contains("tapir_packets_dropped_total{reason=\"kernel\"} 0"),
        "{metrics}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = server.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ip -n NS link show DEV`'s MAC address.
fn mac_of(netns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", netns, "-o", "link", "show", dev])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "link/ether")
        .expect("an Ethernet device");
    words[at + 1].to_string()
}

#[test]
fn live_a_host_that_appears_after_the_learning_period_is_one_new_device() {
    let Some(ns) = live_ready(&["hping3"], "newdev") else {
        return;
    };
    let dir = tempdir();
    let config = dir.join("tapir.toml");
    std::fs::write(&config, "[devices]\nlearning_secs = 3\n").unwrap();
    let newcomer_ns = format!("tapir-new-{}", std::process::id());
    let mut capture = Command::new("ip");
    capture
        .args(["netns", "exec", &ns.capture])
        .arg(env!("CARGO_BIN_EXE_tapir"))
        .args(["analyze", "--json", "--iface", "tcap0", "--duration", "10"])
        .arg("--config")
        .arg(&config);
    let capture = std::thread::spawn(move || run_with_limit(&mut capture, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1500));
    // The stations present at the start: the sender and the capturing end itself.
    from_sender(
        &ns,
        &["hping3", "-1", "-c", "2", "-i", "u300000", "10.77.0.2"],
    );
    std::thread::sleep(Duration::from_secs(4));
    // A new host behind the sender's link, with a MAC of its own.
    assert!(ip(&["netns", "add", &newcomer_ns]));
    let cleanup = scopeguard(newcomer_ns.clone());
    assert!(ip(&[
        "-n", &ns.sender, "link", "add", "link", "tsnd0", "name", "tnew0", "type", "macvlan",
        "mode", "bridge"
    ]));
    assert!(ip(&[
        "-n",
        &ns.sender,
        "link",
        "set",
        "tnew0",
        "netns",
        &newcomer_ns
    ]));
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &newcomer_ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ])
        .status();
    assert!(ip(&[
        "-n",
        &newcomer_ns,
        "addr",
        "add",
        "10.77.0.3/24",
        "dev",
        "tnew0"
    ]));
    assert!(ip(&["-n", &newcomer_ns, "link", "set", "tnew0", "up"]));
    let newcomer = mac_of(&newcomer_ns, "tnew0");
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &newcomer_ns,
            "hping3",
            "-1",
            "-c",
            "2",
            "-i",
            "u300000",
        ])
        .arg("10.77.0.2")
        .output();
    let out = capture.join().unwrap();
    drop(cleanup);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new: Vec<&serde_json::Value> = summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "new_device")
        .collect();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert_eq!(new[0]["target"], newcomer.as_str());
    assert_eq!(new[0]["severity"], "low");
    let devices: Vec<&str> = summary["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mac"].as_str().unwrap())
        .collect();
    for present in [
        mac_of(&ns.sender, "tsnd0"),
        mac_of(&ns.capture, "tcap0"),
        newcomer,
    ] {
        assert!(
            devices.contains(&present.as_str()),
            "{present} in {devices:?}"
        );
    }
}

/// Deletes a namespace when dropped.
struct NamespaceGuard(String);

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.0]);
    }
}

fn scopeguard(netns: String) -> NamespaceGuard {
    NamespaceGuard(netns)
}
