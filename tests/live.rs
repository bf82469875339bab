//! Live capture on a veth pair between two network namespaces that this test creates (and
//! removes), with tcpreplay as the traffic. Nothing leaves the namespaces: the frames are
//! addressed between the pair's own addresses (10.77.0.1 and 10.77.0.2).
//!
//! Needs root (or CAP_NET_ADMIN + CAP_NET_RAW), `ip` and `tcpreplay`; skipped with a message
//! otherwise. `scripts/install-deps.sh` installs the tools.

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
    fn create() -> Option<Namespaces> {
        let id = std::process::id();
        let ns = Namespaces {
            capture: format!("tapir-cap-{id}"),
            sender: format!("tapir-snd-{id}"),
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
        eprintln!(
            "SKIPPED: live capture test needs `ip` and `tcpreplay` (scripts/install-deps.sh installs them)"
        );
        return;
    }
    let Some(ns) = Namespaces::create() else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root or CAP_NET_ADMIN)");
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
