//! The store end to end: what `analyze --db-path` keeps, crash safety under SIGKILL, the
//! disk bound, and a full disk.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{pcap, run_with_limit, tapir, tempdir};

fn db(args: &[&str], path: &Path) -> (i32, String, String) {
    let out = run_with_limit(
        tapir().arg("db").args(args).arg("--db-path").arg(path),
        Duration::from_secs(120),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn export(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = db(&["export", "--kind", kind], path);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stats(path: &Path) -> serde_json::Value {
    let (code, out, err) = db(&["stats"], path);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn analyze_keeps_a_captures_flows_alerts_and_minutes() {
    let dir = tempdir();
    let path = dir.join("db");
    let file = pcap("bruteforce/traceshare_hydra_4_tasks.pcap");
    for _ in 0..2 {
        let (code, summary, err) = common::analyze(&file, &["--db-path", path.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(summary.unwrap()["store"]["errors"], 0);
    }
    // tshark -z conv,tcp: 243 conversations; analysing the capture twice stores them once.
    let flows = export(&path, "flows");
    assert_eq!(flows.len(), 243);
    assert!(
        flows
            .iter()
            .all(|f| f["dst_ip"] == "240.125.0.2" && f["dst_port"] == 22)
    );
    let packets: u64 = flows
        .iter()
        .map(|f| f["packet_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        packets, 9918,
        "capinfos: 9,918 packets, all in SSH conversations"
    );
    // MANIFEST: hydra -t 4 from 240.0.1.3 against 240.125.0.2:22.
    let alerts = export(&path, "alerts");
    assert!(
        alerts
            .iter()
            .any(|a| a["alert_type"] == "brute_force" && a["source_ip"] == "240.0.1.3"),
        "{alerts:?}"
    );
    // 1,201 s of capture from t=0.39 s: minutes 0 to 20, whose packets add up to capinfos'.
    let minutes = export(&path, "snapshots");
    assert!((20..=21).contains(&minutes.len()), "{}", minutes.len());
    let counted: u64 = minutes.iter().map(|m| m["packets"].as_u64().unwrap()).sum();
    assert_eq!(counted, 9918);
    let s = stats(&path);
    assert_eq!(s["flows"]["records"], 243);
    assert!(s["flow_blocks"].as_u64().unwrap() >= 1, "{s}");
    let (code, out, _) = db(&["check"], &path);
    assert_eq!(code, 0, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inspecting_a_missing_database_is_a_clear_error_and_creates_nothing() {
    let dir = tempdir();
    let path = dir.join("nothing-here");
    let (code, _, err) = db(&["stats"], &path);
    assert_eq!(code, 1);
    assert!(err.contains("no database at"), "{err}");
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a writer, waits for a random number of syncs, kills it with SIGKILL; returns the
/// number of flows it reported durable.
fn write_then_kill(path: &Path, syncs: usize) -> u64 {
    let mut child = tapir()
        .args([
            "db",
            "bench",
            "--progress",
            "--flows",
            "100000000",
            "--batch",
            "500",
        ])
        .arg("--db-path")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut flushed = 0;
    for _ in 0..syncs {
        let line = lines.next().expect("the writer stopped early").unwrap();
        flushed = line.strip_prefix("flushed ").unwrap().parse().unwrap();
    }
    // SIGKILL, mid-write: the writer never stops between syncs.
    child.kill().unwrap();
    child.wait().unwrap();
    flushed
}

#[test]
fn a_database_killed_mid_write_reopens_whole_with_every_synced_record() {
    let dir = tempdir();
    let path = dir.join("db");
    let mut seed = std::process::id() as u64;
    let mut acknowledged: Vec<std::ops::Range<u64>> = Vec::new();
    for round in 0..4 {
        let before = if round == 0 {
            0
        } else {
            stats(&path)["flows"]["records"].as_u64().unwrap()
        };
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let syncs = 2 + (seed >> 33) as usize % 12;
        let flushed = write_then_kill(&path, syncs);
        // The writer numbers its flows from the count it found.
        acknowledged.push(before..before + flushed);

        let (code, out, err) = db(&["check"], &path);
        assert_eq!(code, 0, "round {round}: {out}{err}");
        let ids: std::collections::HashSet<u64> = export(&path, "flows")
            .iter()
            .map(|f| f["flow_id"].as_u64().unwrap())
            .collect();
        for range in &acknowledged {
            let missing = range.clone().filter(|i| !ids.contains(i)).count();
            assert_eq!(
                missing, 0,
                "round {round}: {missing} synced flows of {range:?} lost"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_small_size_cap_holds_while_flows_stream_in() {
    let dir = tempdir();
    let config = dir.join("tapir.toml");
    std::fs::write(&config, "[store]\nmax_disk_mb = 32\n").unwrap();
    let out = run_with_limit(
        tapir()
            .args([
                "db", "bench", "--flows", "1000000", "--batch", "2000", "--rate", "50000",
            ])
            .arg("--config")
            .arg(&config)
            .arg("--db-path")
            .arg(dir.join("db")),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{report:#}");
    let peak = report["peak_size_on_disk"].as_u64().unwrap();
    // sled 0.34 needs headroom beyond the live data while its collector catches up with
    // a stream of writes (measured: 30-40 MB at 20,000 flows/s); the stated margin.
    let margin = 48 << 20;
    assert!(peak <= (32 << 20) + margin, "peak {} MB", peak >> 20);
    // Flows in blocks take about 25 bytes: a million overflow 32 MB's budget many times.
    assert!(report["deleted_for_space"].as_u64().unwrap() > 400_000);
    assert!(report["flows_stored"].as_u64().unwrap() > 10_000);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs of `mb` MiB mounted on a new directory, unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(mb: u32) -> Option<TinyDisk> {
        let dir = tempdir().join("tiny");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tapir-test"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyDisk(dir))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn a_full_disk_costs_records_not_the_analysis() {
    let Some(disk) = TinyDisk::mount(3) else {
        common::cannot_run("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    };
    // Many small flows: far more than 3 MB of database.
    let dir = tempdir();
    let capture = dir.join("udp.pcap");
    let out = run_with_limit(
        tapir()
            .args([
                "gen",
                "--scenario",
                "smalludp",
                "--packets",
                "300000",
                "--out",
            ])
            .arg(&capture),
        Duration::from_secs(120),
    );
    assert!(out.status.success());
    let (_, plain, _) = common::analyze(&capture, &[]);
    let plain = plain.unwrap();
    let path = disk.0.join("db");
    let (code, summary, err) = common::analyze(&capture, &["--db-path", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let summary = summary.unwrap();
    // The pipeline saw everything, as without a database.
    assert_eq!(summary["packets"], plain["packets"]);
    assert_eq!(summary["flows"], plain["flows"]);
    assert!(
        summary["store"]["errors"].as_u64().unwrap() > 0,
        "{summary:#}"
    );
    assert!(err.contains("storage error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn writing_resumes_by_itself_when_space_returns() {
    use actix::Actor;
    use tapir::messages::FlowRecordsMsg;
    use tapir::store::StoreConfig;
    use tapir::store::actor::FlushStore;
    use tapir::store::actor::StoreActor;
    use tapir::store::load::synthetic_flow;

    let Some(disk) = TinyDisk::mount(1) else {
        common::cannot_run("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    };
    let path = disk.0.join("db");
    let system = actix::System::new();
    system.block_on(async {
        let store = StoreActor::new(path.clone(), StoreConfig::default())
            .with_log(|_| {})
            .start();
        // Far more than 1 MB of flows.
        let records: std::sync::Arc<[_]> = (0..40_000).map(synthetic_flow).collect();
        store.do_send(FlowRecordsMsg::unpaced(records));
        let full = store.send(FlushStore).await.unwrap();
        assert!(full.errors > 0 && !full.available, "{full:?}");
        assert_eq!(
            full.pending, 40_000,
            "nothing is lost while the disk is full"
        );

        // Space returns; the store reopens within 5 s and writes what it kept.
        let grown = std::process::Command::new("mount")
            .args(["-o", "remount,size=256m"])
            .arg(&disk.0)
            .status()
            .unwrap();
        assert!(grown.success());
        let mut status = full;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            status = store.send(FlushStore).await.unwrap();
            if status.pending == 0 {
                break;
            }
        }
        assert!(status.available, "{status:?}");
        assert_eq!(status.pending, 0);
        assert_eq!(status.flows_written, 40_000);
        assert_eq!(status.database.unwrap().flows.records, 40_000);
    });
}

#[test]
fn an_export_into_a_closed_pipe_ends_quietly() {
    // `tapir db export | head -1`: 243 flows of ~600 bytes are more than one line, and more
    // than a pipe holds once the reader has gone.
    let dir = tempdir();
    let path = dir.join("db");
    let file = pcap("bruteforce/traceshare_hydra_4_tasks.pcap");
    let (code, _, err) = common::analyze(&file, &["--db-path", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let mut child = tapir()
        .args(["db", "export", "--kind", "flows", "--db-path"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone now (its end of the pipe closed when dropped above).
    let out = child.wait_with_output().unwrap();
    assert!(first.contains("\"src_ip\""), "{first}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Fills the filesystem holding `dir` to the last byte with a file there.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    // Whole chunks, then single bytes, until the disk refuses.
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
    path
}

fn free_bytes(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_full_disk_still_opens_for_reading_and_never_corrupts_the_database() {
    let Some(disk) = TinyDisk::mount(48) else {
        common::cannot_run("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    };
    let path = disk.0.join("db");
    let config = disk.0.join("tapir.toml");
    std::fs::write(&config, "[store]\nmin_free_mb = 8\n").unwrap();
    let cfg = config.to_str().unwrap();
    let (code, _, err) = common::analyze(
        &pcap("portscan/nfpuzzle4_mr_x_scan.pcap"),
        &["--db-path", path.to_str().unwrap(), "--config", cfg],
    );
    assert_eq!(code, Some(0), "{err}");
    let flows = export(&path, "flows").len();
    assert!(flows > 0);

    // The disk fills to the last byte (another program's files): the database still opens
    // for `db check`, `db stats` and `db export` (the store's reserve makes the room).
    let filler = fill(&disk.0);
    assert_eq!(free_bytes(&disk.0), 0);
    let (code, out, err) = db(&["check", "--config", cfg], &path);
    assert_eq!(code, 0, "db check on a full disk: {out}{err}");
    let (code, out, err) = db(&["stats", "--config", cfg], &path);
    assert_eq!(code, 0, "{err}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["flows"]["records"], flows as u64);
    assert_eq!(export(&path, "flows").len(), flows);

    // With the reserve spent and the disk full again, opening is refused up front, in one
    // sentence that says what to do, and the database is left as it was: sled, opened
    // without room, can leave it unreadable for good.
    fill(&disk.0);
    let (code, _, err) = db(&["check", "--config", cfg], &path);
    assert_ne!(code, 0);
    assert!(
        err.contains("disk is full") && err.contains("free some space"),
        "{err}"
    );
    assert_eq!(err.matches("cannot open").count(), 1, "{err}");
    std::fs::remove_file(&filler).unwrap();
    let (code, out, err) = db(&["check", "--config", cfg], &path);
    assert_eq!(code, 0, "the database survived: {out}{err}");
    assert_eq!(export(&path, "flows").len(), flows);
}

#[test]
fn the_store_leaves_room_on_a_filling_disk() {
    let Some(disk) = TinyDisk::mount(128) else {
        common::cannot_run("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    };
    // Other files take all but 24 MiB; the cap (512 MiB) is far beyond the disk.
    std::fs::write(disk.0.join("others"), vec![0u8; 104 << 20]).unwrap();
    let config = disk.0.join("tapir.toml");
    // Half of `min_free_mb` (20 MiB) is just under what is free: the store writes a few MiB,
    // then stops short of the floor, whatever sled's collector does meanwhile.
    std::fs::write(&config, "[store]\nmin_free_mb = 40\n").unwrap();
    let path = disk.0.join("db");
    let out = run_with_limit(
        tapir()
            .args(["db", "bench", "--flows", "600000", "--config"])
            .arg(&config)
            .arg("--db-path")
            .arg(&path),
        Duration::from_secs(300),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Retention made room inside the database, then writing stopped short of the floor.
    assert!(
        report["deleted_for_space"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(
        report["flows_refused_for_space"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    let free = free_bytes(&disk.0);
    assert!(free >= 4 << 20, "only {free} bytes left free: {report:#}");
    // And the database opens as it is.
    let (code, out, err) = db(&["check", "--config", config.to_str().unwrap()], &path);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn storage_errors_are_reported_once_not_nested() {
    use actix::Actor;
    use tapir::messages::FlowRecordsMsg;
    use tapir::store::StoreConfig;
    use tapir::store::actor::FlushStore;
    use tapir::store::actor::StoreActor;
    use tapir::store::load::synthetic_flow;

    // A database path under a regular file can never be opened.
    let dir = tempdir();
    std::fs::write(dir.join("file"), b"").unwrap();
    let path = dir.join("file").join("db");
    let system = actix::System::new();
    system.block_on(async {
        let store = StoreActor::new(path.clone(), StoreConfig::default())
            .with_log(|_| {})
            .start();
        let records: std::sync::Arc<[_]> = (0..10).map(synthetic_flow).collect();
        store.do_send(FlowRecordsMsg::unpaced(records));
        let mut status = store.send(FlushStore).await.unwrap();
        for _ in 0..3 {
            status = store.send(FlushStore).await.unwrap();
        }
        assert!(status.errors >= 2, "{status:?}");
        let error = status.last_error.unwrap();
        assert_eq!(error.matches("cannot open").count(), 1, "{error}");
        assert!(!error.contains("not available"), "{error}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_ends_quietly_when_its_reader_has_gone() {
    // `tapir analyze … | head -c 0`, `tapir db stats | true`: the reader closes before
    // tapir writes. The command ends with its own status and no panic.
    let dir = tempdir();
    let path = dir.join("db");
    let file = pcap("bruteforce/traceshare_hydra_4_tasks.pcap");
    let (code, _, err) = common::analyze(&file, &["--db-path", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let runs: [Vec<&std::ffi::OsStr>; 4] = [
        vec!["analyze".as_ref(), "--json".as_ref(), file.as_os_str()],
        vec!["analyze".as_ref(), file.as_os_str()],
        vec![
            "db".as_ref(),
            "stats".as_ref(),
            "--db-path".as_ref(),
            path.as_os_str(),
        ],
        vec![
            "db".as_ref(),
            "check".as_ref(),
            "--db-path".as_ref(),
            path.as_os_str(),
        ],
    ];
    for args in runs {
        let mut child = tapir()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several captures stored together: every record comes back field for field from its block,
/// and queries by time, address (either end) and protocol return exactly what a linear scan
/// of the `--flows-out` records returns.
#[test]
fn stored_flows_come_back_whole_and_queries_match_a_linear_scan() {
    use tapir::flow::FlowQuery;
    use tapir::store::{Store, StoreConfig};
    let dir = tempdir();
    let path = dir.join("db");
    let mut expected: Vec<serde_json::Value> = Vec::new();
    for (i, capture) in [
        "derived/bench_concat_mixed_ethernet.pcap",
        "ipv6/pcpp_four_ipv6_http_streams.pcap",
        "vlan/zeek_mixed_vlan_mpls.pcap",
        "bruteforce/traceshare_hydra_4_tasks.pcap",
        "ipv6/cs_icmpv6_neighbor_solicitation.pcapng",
    ]
    .iter()
    .enumerate()
    {
        let file = pcap(capture);
        let out = dir.join(format!("flows{i}.jsonl"));
        let (code, _, err) = common::analyze(
            &file,
            &[
                "--db-path",
                path.to_str().unwrap(),
                "--flows-out",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(code, Some(0), "{capture}: {err}");
        let text = std::fs::read_to_string(&out).unwrap();
        expected.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    assert!(expected.len() > 12_000, "{}", expected.len());
    let key = |f: &serde_json::Value| f.to_string();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // A stored record as the expected ones were read: written as JSON text and parsed back
    // (serde_json's parser may land one ulp away from the printed float).
    let stored_key = |r: &tapir::flow::FlowRecord| {
        key(&serde_json::from_str::<serde_json::Value>(&serde_json::to_string(r).unwrap()).unwrap())
    };
    // Equal, or a short account of the difference.
    let same = |got: Vec<String>, want: Vec<String>, what: &str| {
        if got == want {
            return;
        }
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(2).collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(2).collect();
        panic!(
            "{what}: {} records instead of {}; missing {missing:?}; extra {extra:?}",
            got.len(),
            want.len()
        );
    };
    let store = Store::open(&path, &StoreConfig::default()).unwrap();
    let everything = FlowQuery {
        limit: usize::MAX,
        ..FlowQuery::default()
    };
    let stored: Vec<String> = store
        .flows(&everything)
        .unwrap()
        .iter()
        .map(stored_key)
        .collect();
    same(
        sorted(stored),
        sorted(expected.iter().map(key).collect()),
        "every record",
    );

    let ends: Vec<f64> = expected
        .iter()
        .map(|f| f["last_seen"].as_f64().unwrap())
        .collect();
    let (lo, hi) = (
        ends.iter().cloned().fold(f64::MAX, f64::min),
        ends.iter().cloned().fold(f64::MIN, f64::max),
    );
    let mid = lo + (hi - lo) / 2.0;
    let busiest = expected[expected.len() / 3]["src_ip"]
        .as_str()
        .unwrap()
        .to_string();
    let server = expected[10]["dst_ip"].as_str().unwrap().to_string();
    type Scan = Box<dyn Fn(&serde_json::Value) -> bool>;
    let queries: Vec<(FlowQuery, Scan)> = vec![
        (
            FlowQuery {
                start: Some(mid),
                ..everything.clone()
            },
            Box::new(move |f| f["last_seen"].as_f64().unwrap() >= mid),
        ),
        (
            FlowQuery {
                start: Some(lo + 1.0),
                end: Some(mid),
                ..everything.clone()
            },
            Box::new(move |f| {
                let t = f["last_seen"].as_f64().unwrap();
                t >= lo + 1.0 && t <= mid
            }),
        ),
        (
            FlowQuery {
                ip: Some(busiest.parse().unwrap()),
                ..everything.clone()
            },
            Box::new({
                let ip = busiest.clone();
                move |f| f["src_ip"] == ip.as_str() || f["dst_ip"] == ip.as_str()
            }),
        ),
        (
            FlowQuery {
                src_ip: Some(server.parse().unwrap()),
                ..everything.clone()
            },
            Box::new({
                let ip = server.clone();
                move |f| f["src_ip"] == ip.as_str()
            }),
        ),
        (
            FlowQuery {
                protocol: Some("udp".into()),
                ..everything.clone()
            },
            Box::new(|f| f["protocol"] == "UDP"),
        ),
        (
            FlowQuery {
                protocol: Some("ICMPv6".into()),
                ..everything.clone()
            },
            Box::new(|f| f["protocol"] == "ICMPv6"),
        ),
    ];
    for (i, (query, scan)) in queries.iter().enumerate() {
        let got: Vec<String> = store.flows(query).unwrap().iter().map(stored_key).collect();
        let want: Vec<String> = expected.iter().filter(|f| scan(f)).map(key).collect();
        assert!(!want.is_empty(), "query {i} matches nothing");
        same(sorted(got), sorted(want), &format!("query {i}: {query:?}"));
    }
    // A limit keeps the newest.
    let newest = store
        .flows(&FlowQuery {
            limit: 100,
            ..everything.clone()
        })
        .unwrap();
    let mut ends_desc = ends.clone();
    ends_desc.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let got: Vec<f64> = newest
        .iter()
        .map(|r| {
            let text = serde_json::to_string(r).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["last_seen"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, ends_desc[..100]);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The history's rollups against tshark: bytes per minute of the link and bytes per host over
/// the capture (both directions), and flows per minute against the `--flows-out` records;
/// the hour tier holds the same sums.
#[test]
fn history_rollups_match_tshark_per_minute_and_per_host() {
    use std::collections::BTreeMap;
    use tapir::store::rollup::{By, HistoryQuery, Metric};
    use tapir::store::{Store, StoreConfig};
    let dir = tempdir();
    let path = dir.join("db");
    let file = pcap("bruteforce/traceshare_hydra_4_tasks.pcap");
    let flows_out = dir.join("flows.jsonl");
    let (code, _, err) = common::analyze(
        &file,
        &[
            "--db-path",
            path.to_str().unwrap(),
            "--flows-out",
            flows_out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&file)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
        ])
        .output()
        .expect("tshark (wireshark's CLI) must be installed: scripts/install-deps");
    assert!(out.status.success());
    let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
    let mut per_host: BTreeMap<String, u64> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let t: f64 = f[0].parse().unwrap();
        let len: u64 = f[1].parse().unwrap();
        *per_minute
            .entry((t as i64).div_euclid(60) * 60)
            .or_default() += len;
        let (src, dst) = if f[2].is_empty() {
            (f[4], f[5])
        } else {
            (f[2], f[3])
        };
        for host in [src, dst] {
            if !host.is_empty() {
                *per_host.entry(host.to_string()).or_default() += len;
            }
        }
    }
    let mut flows_per_minute: BTreeMap<i64, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&flows_out).unwrap().lines() {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        let end = f["last_seen"].as_f64().unwrap() as i64;
        *flows_per_minute.entry(end.div_euclid(60) * 60).or_default() += 1;
    }
    let (first, last) = (
        *per_minute.keys().next().unwrap(),
        *per_minute.keys().next_back().unwrap() + 59,
    );
    let store = Store::open(&path, &StoreConfig::default()).unwrap();
    let query = |metric, by, key: Option<&str>, step| HistoryQuery {
        metric,
        by,
        key: key.map(String::from),
        from: Some(first),
        to: Some(last),
        step,
    };
    let series = |q: HistoryQuery| -> BTreeMap<i64, u64> {
        let h = store.history(&q).unwrap();
        h.series[0].points.iter().copied().collect()
    };
    assert_eq!(
        series(query(Metric::Bytes, By::Total, None, None)),
        per_minute
    );
    assert_eq!(
        series(query(Metric::Flows, By::Total, None, None)),
        flows_per_minute
    );
    // Hours: the same bytes, summed.
    let hours = series(query(Metric::Bytes, By::Total, None, Some(3600)));
    let mut want_hours: BTreeMap<i64, u64> = BTreeMap::new();
    for (m, b) in &per_minute {
        *want_hours.entry(m.div_euclid(3600) * 3600).or_default() += b;
    }
    assert_eq!(hours, want_hours);
    for (host, bytes) in &per_host {
        let h = store
            .history(&query(Metric::Bytes, By::Host, Some(host), None))
            .unwrap();
        assert_eq!(h.series[0].total, *bytes, "{host}");
    }
    // Without a key: the busiest hosts, the attacker and its target first.
    let top = store
        .history(&query(Metric::Bytes, By::Host, None, None))
        .unwrap();
    let keys: Vec<&str> = top.series.iter().map(|s| s.key.as_str()).take(2).collect();
    assert!(
        keys.contains(&"240.0.1.3") && keys.contains(&"240.125.0.2"),
        "{keys:?}"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_bench_spreads_flows_over_days_and_times_the_history_reads() {
    // 100,000 synthetic flows over 7 days: every hour has flows (168 hourly points in a
    // 30-day chart); server i>>16 takes flows 65,536·k …, so 192.168.1.0 has the most
    // (65,536), all inside the last 7 days, and a host page reads its first 10,000.
    let dir = tempdir();
    let out = run_with_limit(
        tapir()
            .args(["db", "bench", "--flows", "100000", "--span-days", "7"])
            .arg("--db-path")
            .arg(dir.join("db")),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["span_days"], 7.0);
    let q = &report["queries"];
    assert_eq!(q["history_step_s"], 3600);
    assert_eq!(q["total_history_30d_points"], 168);
    assert_eq!(q["host"], "192.168.1.0");
    assert_eq!(q["host_flows_7d"], 10_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_files_records_are_written_before_the_store_lets_their_credit_go_and_live_ones_are_bounded() {
    use actix::Actor;
    use std::sync::Arc;
    use tapir::credit::Credits;
    use tapir::messages::{FlowRecordsMsg, RecordsHold};
    use tapir::packet::PacketBatch;
    use tapir::store::actor::{GetStoreStatus, StoreActor};
    use tapir::store::load::synthetic_flow;
    use tapir::store::{Store, StoreConfig};

    let dir = tempdir();
    let path = dir.join("db");
    // No periodic write during the test: what is written, the message wrote.
    let config = StoreConfig {
        flush_interval_ms: 3_600_000,
        ..StoreConfig::default()
    };
    let store = Store::open(&path, &config).unwrap();
    let credits = Credits::new(1);
    let system = actix::System::new();
    system.block_on(async {
        let actor = StoreActor::from_store(store, config);
        let intake = actor.intake();
        let store = actor.start();
        // 5,000 records finished by one batch of a file, holding its only credit.
        let mut batch = PacketBatch::with_capacity(1);
        batch.credit = credits.take(|| false);
        let records: Arc<[_]> = (0..5_000).map(synthetic_flow).collect();
        store.do_send(FlowRecordsMsg(records, RecordsHold::Batch(Arc::new(batch))));
        let status = store.send(GetStoreStatus).await.unwrap();
        // Every whole slice of 2,000 went to the database before the message was let go
        // (one slice per message left the rest to pile up), and the credit came back.
        assert_eq!((status.flows_written, status.pending), (4_000, 1_000));
        assert!(credits.take(|| true).is_some(), "the credit is still held");
        // Live records that find the store's backlog full (half the 100,000 pending
        // records) are dropped by their sender and counted with the store's drops.
        let _stalled = intake.admit(50_000).unwrap();
        assert!(intake.admit(10).is_none());
        let status = store.send(GetStoreStatus).await.unwrap();
        assert_eq!(status.dropped, 10);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
