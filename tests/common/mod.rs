//! Helpers shared by the integration tests: the shared captures and running the binary.

#![allow(dead_code)]

pub mod confine;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A test that cannot run here (no root, no namespaces, a tool missing): in CI (`CI=true`,
/// which runs as root with every tool installed) that is a failure with the reason; elsewhere
/// the test is skipped with the reason printed.
pub fn cannot_run(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("this test must run in CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// `../shared/pcaps`, beside the checkout.
pub fn pcaps() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
    assert!(
        dir.join("manifest.json").is_file(),
        "the shared captures are missing: expected {} (the test suite reads them from ../shared/pcaps)",
        dir.display()
    );
    dir
}

pub fn pcap(rel: &str) -> PathBuf {
    pcaps().join(rel)
}

pub fn tapir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapir"))
}

/// Runs `cmd`, killing it after `limit` (a hang is a failure, not a stuck suite).
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning tapir");
    let started = Instant::now();
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Output {
                status,
                stdout: out.join().unwrap(),
                stderr: err.join().unwrap(),
            };
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `tapir analyze --json FILE [extra]`: the exit code and the parsed summary (if any).
pub fn analyze(file: &Path, extra: &[&str]) -> (Option<i32>, Option<serde_json::Value>, String) {
    let out = run_with_limit(
        tapir().arg("analyze").arg("--json").args(extra).arg(file),
        Duration::from_secs(60),
    );
    let json = serde_json::from_slice(&out.stdout).ok();
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Flow records written with `--flows-out`.
pub fn flows_of(file: &Path) -> Vec<serde_json::Value> {
    let dir = tempdir();
    let out = dir.join("flows.jsonl");
    let (code, _, stderr) = analyze(file, &["--flows-out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let records = json_lines(&out);
    let _ = std::fs::remove_dir_all(&dir);
    records
}

/// The JSON values of a file of one per line (flow records, EVE events).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A fresh temporary directory (removed by the caller or left in /tmp).
pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tapir-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // A directory left by an earlier run whose process had the same id (ids wrap) would
    // hand this test its files: start empty.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The entries of `manifest.json`.
pub fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(pcaps().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
