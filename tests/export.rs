//! Export to real engines: `tapir analyze` sends IPFIX to Debian's nfcapd on loopback, and
//! what nfdump reads back matches tapir's own flow records (and through them the capture);
//! tshark decodes the IPFIX packets without complaint; EVE JSON lines carry Suricata's
//! fields; RFC 5424 syslog over UDP and TCP parses; a collector that is down costs nothing
//! but counted drops.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{pcap, run_with_limit, tapir, tempdir};
use serde_json::Value;

/// hydra -t 4 against SSH: attacker 240.0.1.3 → 240.125.0.2:22, 243 connections, 9,918
/// packets (MANIFEST).
const HYDRA: &str = "bruteforce/traceshare_hydra_4_tasks.pcap";

/// Runs `tapir analyze --json --flows-out` with `config`; returns the summary and the records.
fn analyze(dir: &Path, file: &str, config: &str) -> (Value, Vec<Value>) {
    let cfg = dir.join("tapir.toml");
    std::fs::write(&cfg, config).unwrap();
    let flows = dir.join("flows.jsonl");
    let out = run_with_limit(
        tapir()
            .args(["analyze", "--json", "--flows-out"])
            .arg(&flows)
            .arg("--config")
            .arg(&cfg)
            .arg(pcap(file)),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = std::fs::read_to_string(&flows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, records)
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// IPFIX uniflow records expected for these flow records: one per direction with packets.
fn uniflow_records(records: &[Value]) -> u64 {
    records
        .iter()
        .map(|r| {
            u64::from(r["src_packets"].as_u64().unwrap() > 0)
                + u64::from(r["dst_packets"].as_u64().unwrap() > 0)
        })
        .sum()
}

/// nfdump's CSV of every file nfcapd wrote in `flowdir`: the header and the flow rows.
fn nfdump_rows(flowdir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let files: Vec<_> = std::fs::read_dir(flowdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("nfcapd.")
        })
        .collect();
    assert!(!files.is_empty(), "nfcapd wrote no file");
    let (mut header, mut rows) = (Vec::new(), Vec::new());
    for f in &files {
        let out = Command::new("nfdump")
            .arg("-r")
            .arg(f)
            .args(["-o", "csv"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let Some(h) = lines.next() else { continue };
        header = h.split(',').map(str::to_string).collect();
        let ipkt = header
            .iter()
            .position(|h| h == "ipkt")
            .expect("an ipkt column");
        for l in lines.filter(|l| !l.is_empty() && !l.starts_with("Summary") && l.contains('.')) {
            let v: Vec<String> = l.split(',').map(str::to_string).collect();
            if v.len() > ipkt && v[ipkt].parse::<u64>().is_ok() {
                rows.push(v);
            }
        }
    }
    (header, rows)
}

/// nfcapd listening on a free loopback port, writing into `flowdir`.
fn start_nfcapd(flowdir: &Path) -> (std::process::Child, u16) {
    std::fs::create_dir_all(flowdir).unwrap();
    let port = free_udp_port();
    let child = Command::new("nfcapd")
        .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-w"])
        .arg(flowdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

fn sum(records: &[Value], key: &str) -> u64 {
    records.iter().map(|r| r[key].as_u64().unwrap()).sum()
}

#[test]
fn every_ipfix_record_reaches_nfcapd_run_after_run() {
    // The Mr. X scan and the benchmark capture: bursts of hundreds of messages unpaced,
    // which nfcapd's default socket buffer could not hold (13,313 of 20,684 records stored).
    for file in [
        "portscan/nfpuzzle4_mr_x_scan.pcap",
        "derived/bench_concat_mixed_ethernet.pcap",
    ] {
        for run in 0..5 {
            let dir = tempdir();
            let flowdir = dir.join("nfcapd");
            let (mut nfcapd, port) = start_nfcapd(&flowdir);
            std::thread::sleep(Duration::from_millis(300));
            let started = Instant::now();
            let (summary, records) = analyze(
                &dir,
                file,
                &format!("[export.ipfix]\ncollectors = [\"127.0.0.1:{port}\"]\n"),
            );
            let took = started.elapsed();
            std::thread::sleep(Duration::from_secs(1));
            // SAFETY: signalling our own child.
            unsafe { libc::kill(nfcapd.id() as i32, libc::SIGTERM) };
            nfcapd.wait().unwrap();
            let directions = uniflow_records(&records);
            let export = &summary["export"][0];
            assert_eq!(export["records"].as_u64().unwrap(), directions, "{export}");
            assert_eq!(export["dropped"], 0, "{export}");
            let (_, rows) = nfdump_rows(&flowdir);
            eprintln!(
                "{file} run {run}: {directions} records sent, {} stored by nfcapd, analyze {took:?}",
                rows.len()
            );
            assert_eq!(rows.len() as u64, directions, "{file}, run {run}");
        }
    }
}

#[test]
fn nfcapd_stores_what_tapir_exports_and_tshark_decodes_it() {
    for tool in ["nfcapd", "nfdump", "tshark"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .status()
                .unwrap()
                .success(),
            "{tool} is missing (scripts/install-deps.sh installs nfdump and tshark)"
        );
    }
    let dir = tempdir();
    let flowdir = dir.join("nfcapd");
    let (mut nfcapd, port) = start_nfcapd(&flowdir);
    let shark_file = dir.join("ipfix.pcapng");
    let mut tshark = Command::new("tshark")
        .args(["-i", "lo", "-f", &format!("udp port {port}"), "-w"])
        .arg(&shark_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until tshark captures (it says so on stderr).
    let mut shark_err = BufReader::new(tshark.stderr.take().unwrap());
    let mut line = String::new();
    while shark_err.read_line(&mut line).unwrap() > 0 && !line.contains("Capturing on") {
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut shark_err, &mut std::io::sink()));
    std::thread::sleep(Duration::from_millis(500));

    let (summary, records) = analyze(
        &dir,
        HYDRA,
        &format!("[export.ipfix]\ncollectors = [\"127.0.0.1:{port}\"]\n"),
    );
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signalling our own children.
    unsafe {
        libc::kill(tshark.id() as i32, libc::SIGINT);
        libc::kill(nfcapd.id() as i32, libc::SIGTERM);
    }
    tshark.wait().unwrap();
    nfcapd.wait().unwrap();

    // tapir's own records: 243 connections, 9,918 packets (MANIFEST).
    assert_eq!(records.len(), 243);
    let packets = sum(&records, "src_packets") + sum(&records, "dst_packets");
    let bytes = sum(&records, "src_bytes") + sum(&records, "dst_bytes");
    assert_eq!(packets, 9918);
    let directions = uniflow_records(&records);
    let export = &summary["export"][0];
    assert_eq!(export["kind"], "ipfix");
    assert_eq!(export["records"].as_u64().unwrap(), directions, "{export}");
    assert_eq!(export["dropped"], 0, "{export}");

    // What nfcapd stored, read back by nfdump.
    let (header, rows) = nfdump_rows(&flowdir);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} in {header:?}"))
    };
    let (ipkt, ibyt, sa, dp) = (col("ipkt"), col("ibyt"), col("sa"), col("dp"));
    let (mut flows, mut nf_packets, mut nf_bytes) = (0u64, 0u64, 0u64);
    for v in &rows {
        flows += 1;
        nf_packets += v[ipkt].parse::<u64>().unwrap();
        nf_bytes += v[ibyt].parse::<u64>().unwrap();
        assert!(
            (v[sa] == "240.0.1.3" && v[dp] == "22") || (v[sa] == "240.125.0.2"),
            "{v:?}"
        );
    }
    assert_eq!(flows, directions, "one uniflow record per direction");
    assert_eq!(nf_packets, packets);
    assert_eq!(nf_bytes, bytes);

    // tshark reads every IPFIX message, templates and data, without a malformed packet.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&shark_file)
        .args([
            "-d",
            &format!("udp.port=={port},cflow"),
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
        ])
        .output()
        .unwrap();
    let problems = String::from_utf8_lossy(&out.stdout);
    assert!(problems.trim().is_empty(), "tshark: {problems}");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&shark_file)
        .args([
            "-d",
            &format!("udp.port=={port},cflow"),
            "-T",
            "fields",
            "-e",
            "cflow.version",
            "-e",
            "cflow.packets",
            "-e",
            "cflow.template_id",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().all(|l| l.starts_with("10")),
        "not all IPFIX: {text}"
    );
    let decoded_packets: u64 = text
        .lines()
        .flat_map(|l| l.split('\t').nth(1).unwrap_or("").split(','))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    assert_eq!(decoded_packets, packets, "packet counts tshark decoded");
    assert!(text.contains("256"), "the IPv4 template: {text}");
}

#[test]
fn eve_lines_carry_suricatas_fields_and_syslog_messages_parse() {
    let dir = tempdir();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let eve = dir.join("eve.json");
    let config = format!(
        "[export.eve]\nfile = \"{}\"\nsyslog = \"{}\"\nsyslog_protocol = \"udp\"\nsyslog_facility = \"local5\"\n",
        eve.display(),
        udp.local_addr().unwrap()
    );
    // Receive while tapir sends.
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = udp.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    });
    let (summary, records) = analyze(&dir, HYDRA, &config);
    let lines: Vec<Value> = std::fs::read_to_string(&eve)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flows: Vec<&Value> = lines.iter().filter(|e| e["event_type"] == "flow").collect();
    let alerts: Vec<&Value> = lines
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .collect();
    assert_eq!(flows.len(), records.len());
    for f in &flows {
        for key in [
            "timestamp",
            "src_ip",
            "src_port",
            "dest_ip",
            "dest_port",
            "proto",
            "community_id",
        ] {
            assert!(!f[key].is_null(), "flow without {key}: {f}");
        }
        for key in [
            "pkts_toserver",
            "pkts_toclient",
            "bytes_toserver",
            "bytes_toclient",
        ] {
            assert!(f["flow"][key].is_u64(), "flow.{key}: {f}");
        }
        for key in ["start", "end", "state"] {
            assert!(f["flow"][key].is_string(), "flow.{key}: {f}");
        }
        assert_eq!(f["proto"], "TCP");
        // Suricata's timestamp shape.
        let ts = f["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 31 && ts.ends_with("+0000") && &ts[10..11] == "T",
            "{ts}"
        );
    }
    let pkts: u64 = flows
        .iter()
        .map(|f| {
            f["flow"]["pkts_toserver"].as_u64().unwrap()
                + f["flow"]["pkts_toclient"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(pkts, 9918);
    // The brute force alert (MANIFEST), once.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = alerts[0];
    assert_eq!(a["src_ip"], "240.0.1.3");
    assert_eq!(a["dest_ip"], "240.125.0.2");
    assert_eq!(a["dest_port"], 22);
    assert_eq!(a["alert"]["severity"], 1);
    assert!(
        a["alert"]["signature"]
            .as_str()
            .unwrap()
            .contains("brute_force")
    );
    assert!(a["alert"]["category"].is_string());
    assert_eq!(summary["alerts"].as_array().unwrap().len(), 1);

    // Syslog: one RFC 5424 message per event, all of which parse.
    let messages = receiver.join().unwrap();
    assert_eq!(
        messages.len(),
        lines.len(),
        "every event also went to syslog"
    );
    for m in &messages {
        let parsed = parse_rfc5424(m).unwrap_or_else(|| panic!("not RFC 5424: {m}"));
        assert_eq!(parsed.facility, 21, "local5");
        assert_eq!(parsed.app, "tapir");
        let event: Value = serde_json::from_str(parsed.msg).unwrap();
        assert_eq!(event["event_type"], parsed.msgid);
        let want = if parsed.msgid == "alert" { 3 } else { 6 };
        assert_eq!(parsed.severity, want, "{m}");
    }

    // TCP: octet-counted frames.
    let dir2 = tempdir();
    let addr = tcp.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = tcp.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    });
    analyze(
        &dir2,
        HYDRA,
        &format!(
            "[export.eve]\nsyslog = \"{addr}\"\nsyslog_protocol = \"tcp\"\nflows = false\ndevices = false\n"
        ),
    );
    let bytes = reader.join().unwrap();
    let mut rest = &bytes[..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .expect("an octet count");
        let len: usize = std::str::from_utf8(&rest[..space])
            .unwrap()
            .parse()
            .unwrap();
        frames.push(String::from_utf8(rest[space + 1..space + 1 + len].to_vec()).unwrap());
        rest = &rest[space + 1 + len..];
    }
    assert_eq!(frames.len(), 1, "one alert, no flows: {frames:?}");
    let parsed = parse_rfc5424(&frames[0]).unwrap();
    assert_eq!(parsed.msgid, "alert");
}

/// The parts of an RFC 5424 message the test checks.
struct Syslog<'a> {
    facility: u8,
    severity: u8,
    app: &'a str,
    msgid: &'a str,
    msg: &'a str,
}

/// Parses `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (RFC 5424 §6) with a `-` SD.
fn parse_rfc5424(m: &str) -> Option<Syslog<'_>> {
    let rest = m.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let pri: u16 = pri.parse().ok()?;
    let rest = rest.strip_prefix("1 ")?;
    let mut parts = rest.splitn(7, ' ');
    let ts = parts.next()?;
    // RFC 3339 full-date "T" time with fraction and Z.
    if !(ts.len() == 27 && &ts[10..11] == "T" && ts.ends_with('Z')) {
        return None;
    }
    let host = parts.next()?;
    let app = parts.next()?;
    let procid = parts.next()?;
    let msgid = parts.next()?;
    let sd = parts.next()?;
    let msg = parts.next()?;
    if host.is_empty() || procid.parse::<u32>().is_err() || sd != "-" || pri > 191 {
        return None;
    }
    Some(Syslog {
        facility: (pri / 8) as u8,
        severity: (pri % 8) as u8,
        app,
        msgid,
        msg,
    })
}

#[test]
fn a_collector_that_is_down_costs_only_counted_drops() {
    let dir = tempdir();
    // Nothing listens here: every send after the first is refused by ICMP.
    let port = free_udp_port();
    let started = Instant::now();
    let (summary, records) = analyze(
        &dir,
        HYDRA,
        &format!("[export.ipfix]\ncollectors = [\"127.0.0.1:{port}\"]\nmax_message_bytes = 512\n"),
    );
    eprintln!(
        "analysis with the collector down took {:?}",
        started.elapsed()
    );
    assert_eq!(records.len(), 243, "the analysis itself is whole");
    assert_eq!(summary["packets"], 9918);
    let export = &summary["export"][0];
    let (sent, dropped) = (
        export["records"].as_u64().unwrap(),
        export["dropped"].as_u64().unwrap(),
    );
    assert!(dropped > 0, "{export}");
    let directions = uniflow_records(&records);
    assert_eq!(
        sent + dropped,
        directions,
        "every record sent or counted as dropped: {export}"
    );
    // A name that does not resolve is a clear error before any work.
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[export.ipfix]\ncollectors = [\"no-such-host.invalid:4739\"]\n",
    )
    .unwrap();
    let out = tapir()
        .args(["analyze", "--config"])
        .arg(&cfg)
        .arg(pcap(HYDRA))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-host.invalid"), "{stderr}");
}

#[test]
fn the_server_exports_too_and_shows_it_in_debug_and_metrics() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let config = format!(
        "[export.ipfix]\ncollectors = [\"{}\"]\n",
        receiver.local_addr().unwrap()
    );
    let file = pcap(HYDRA);
    let server = common::server::Server::start(
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        Some(&config),
    );
    server.wait_replayed();
    // The template message comes first.
    let mut buf = vec![0u8; 65536];
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 10], "IPFIX version 10");
    assert_eq!(&buf[16..18], &[0, 2], "a template set first ({n} bytes)");
    let started = Instant::now();
    let export = loop {
        let debug = server.get("/debug").json();
        let export = debug["export"][0].clone();
        if export["records"].as_u64().unwrap_or(0) > 0
            || started.elapsed() > Duration::from_secs(20)
        {
            break export;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(export["kind"], "ipfix");
    assert!(export["records"].as_u64().unwrap() > 0, "{export}");
    let metrics = server.get("/metrics").body;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tapir_export_records_total{"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.contains("kind=\"ipfix\""), "{line}");
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}
