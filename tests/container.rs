//! The container image. The registries a real `docker build` pulls base images from are not
//! reachable here, so the multi-stage build itself runs where they are; here the Containerfile
//! and docker-compose.yml are checked against each other, and an image built from scratch
//! with the runtime stage's layout (this build's binary, the libraries `ldd` names, the GeoIP
//! database, the config) and the runtime stage's own USER/ENV/VOLUME/HEALTHCHECK/ENTRYPOINT
//! lines is run with podman: it serves, stores into its volume, and runs as its user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cannot_run, pcap, tempdir};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Containerfile's instructions (continuations joined), as (keyword, rest).
fn instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("Containerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        if current.is_empty() && (line.trim_start().starts_with('#') || line.trim().is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (word, rest) = current.trim().split_once(' ').unwrap();
                out.push((word.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// The instructions of the last stage (the runtime image).
fn runtime_stage() -> Vec<(String, String)> {
    let all = instructions();
    let from = all.iter().rposition(|(w, _)| w == "FROM").unwrap();
    all[from..].to_vec()
}

fn one<'a>(stage: &'a [(String, String)], word: &str) -> &'a str {
    let found: Vec<_> = stage.iter().filter(|(w, _)| w == word).collect();
    assert_eq!(found.len(), 1, "one {word} in the runtime stage");
    &found[0].1
}

/// `ENV A=1 B=2` lines of the runtime stage.
fn env(stage: &[(String, String)]) -> Vec<(String, String)> {
    stage
        .iter()
        .filter(|(w, _)| w == "ENV")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn compose() -> serde_yaml::Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// A YAML list of strings.
fn strings(list: &serde_yaml::Value) -> Vec<&str> {
    let items = list.as_sequence().expect("a list");
    items
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

#[test]
fn the_containerfile_and_the_compose_file_agree() {
    // Syntax: every instruction is one the Dockerfile reference defines, exec forms are JSON.
    const KNOWN: [&str; 18] = [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
        "MAINTAINER",
    ];
    for (word, rest) in instructions() {
        assert!(KNOWN.contains(&word.as_str()), "unknown instruction {word}");
        if ["CMD", "ENTRYPOINT", "VOLUME"].contains(&word.as_str()) {
            serde_json::from_str::<Vec<String>>(&rest)
                .unwrap_or_else(|e| panic!("{word} {rest}: not a JSON array: {e}"));
        }
    }
    let stages = instructions().iter().filter(|(w, _)| w == "FROM").count();
    assert_eq!(stages, 2, "a build stage and a runtime stage");
    let stage = runtime_stage();
    // An unprivileged user, the one the image creates.
    let user = one(&stage, "USER");
    let uid = user.split(':').next().unwrap();
    assert_ne!(uid, "0");
    let run = stage
        .iter()
        .filter(|(w, _)| w == "RUN")
        .map(|(_, r)| r.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(run.contains(&format!("--uid {uid}")), "{run}");
    assert!(
        run.contains("setcap cap_net_raw=ep /usr/bin/tapir"),
        "{run}"
    );
    // The state directory is the volume; the port is exposed and health-checked.
    let env = env(&stage);
    let state = &env.iter().find(|(k, _)| k == "STATE_DIRECTORY").unwrap().1;
    assert_eq!(one(&stage, "VOLUME"), format!("[\"{state}\"]"));
    let port = one(&stage, "EXPOSE");
    let health = one(&stage, "HEALTHCHECK");
    assert!(
        health.contains(r#"["/usr/bin/tapir", "healthcheck", "--port", ""#)
            && health.contains(&format!("\"{port}\"]")),
        "{health}"
    );
    assert_eq!(one(&stage, "ENTRYPOINT"), r#"["/usr/bin/tapir"]"#);
    assert!(one(&stage, "CMD").starts_with(r#"["run""#));

    let c = compose();
    let service = &c["services"]["tapir"];
    assert_eq!(service["build"]["dockerfile"], "Containerfile");
    assert_eq!(
        service["network_mode"], "host",
        "capture sees the host's interfaces"
    );
    let caps = strings(&service["cap_add"]);
    assert!(
        caps.contains(&"NET_RAW") && caps.contains(&"NET_ADMIN"),
        "{caps:?}"
    );
    assert!(service["restart"].as_str().is_some());
    // Every variable the compose file sets is one tapir reads (`[env: NAME]` in its help).
    let help = String::from_utf8(
        common::tapir()
            .args(["run", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let environment = service["environment"].as_mapping().unwrap();
    assert!(environment.contains_key("NET_IFACE"));
    for (name, value) in environment {
        let name = name.as_str().unwrap();
        assert!(
            help.contains(&format!("[env: {name}=")),
            "{name} is not read by tapir run"
        );
        if name == "DB_PATH" {
            assert!(
                value.as_str().unwrap().starts_with(state.as_str()),
                "DB_PATH in the volume"
            );
        }
    }
    // The published ./data and ./uploads land in the state directory and its uploads folder
    // (the server's default upload_dir is $STATE_DIRECTORY/uploads).
    let volumes = strings(&service["volumes"]);
    assert!(
        volumes.contains(&format!("./data:{state}").as_str()),
        "{volumes:?}"
    );
    assert!(
        volumes.contains(&format!("./uploads:{state}/uploads").as_str()),
        "{volumes:?}"
    );
    // The compose file's instructions give the data folders to the image's user.
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    assert!(text.contains(&format!("chown {uid}:{uid} data uploads")));
}

/// `podman` with settings this machine needs: its own storage (vfs, no overlay mounts) and
/// runc (crun refuses cgroup v1/v2 hybrids).
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new() -> Option<Podman> {
        let ok = |tool: &str| {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
            })
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        (root && ok("podman") && ok("runc") && ok("setcap")).then(|| Podman { dir: tempdir() })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        c
    }

    /// Runs podman with `args`; panics with its output unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Podman {
    /// Waits up to a minute for `f`; on timeout, fails with the container's log.
    fn wait_for(&self, what: &str, container: &str, mut f: impl FnMut() -> bool) {
        let started = Instant::now();
        while !f() {
            if started.elapsed() > Duration::from_secs(60) {
                let out = self.cmd().args(["logs", container]).output().unwrap();
                panic!(
                    "timed out waiting for {what}; {container}'s log:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "1"]).output();
        let _ = self.cmd().args(["rmi", "-af"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies `from` to `rootfs` + `to`, creating directories.
fn put(rootfs: &Path, from: &Path, to: &str) {
    let dest = rootfs.join(to.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(from, &dest).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// The runtime stage's layout, from this build: binary (debug info stripped, with its file
/// capability), the shared libraries and loader `ldd` names, GeoIP, config, users, state.
fn runtime_rootfs(dir: &Path, uid: &str) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("usr/bin/tapir");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_tapir"))
        .arg(&bin)
        .status()
        .unwrap();
    assert!(stripped.success());
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libpcap.so.0.8 => /lib/x86_64-linux-gnu/libpcap.so.0.8 (0x...)" or the loader.
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string);
        if let Some(path) = path {
            put(&rootfs, Path::new(&path), &path);
        }
    }
    let capped = Command::new("setcap")
        .arg("cap_net_raw=ep")
        .arg(&bin)
        .status()
        .unwrap();
    assert!(capped.success());
    let geoip = root().join("data/geoip/dbip-country.mmdb");
    if geoip.is_file() {
        put(&rootfs, &geoip, "/usr/share/tapir/geoip/dbip-country.mmdb");
    }
    let iso = Path::new("/usr/share/iso-codes/json/iso_3166-1.json");
    if iso.is_file() {
        put(&rootfs, iso, iso.to_str().unwrap());
    }
    put(
        &rootfs,
        &root().join("tapir.example.toml"),
        "/etc/tapir/tapir.toml",
    );
    std::fs::write(
        rootfs.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/false\ntapir:x:{uid}:{uid}::/var/lib/tapir:/usr/sbin/nologin\n"),
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        format!("root:x:0:\ntapir:x:{uid}:\n"),
    )
    .unwrap();
    std::fs::create_dir_all(rootfs.join("var/lib/tapir/uploads")).unwrap();
    // As in Debian: a binary with file capabilities runs in glibc's secure mode, which drops
    // TMPDIR, so tapir's private socket directory goes to /tmp.
    let tmp = rootfs.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    rootfs
}

fn chown(path: &Path, uid: &str) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_as(port, path, None)
}

fn get_as(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(&format!("http://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    let mut r = req.call().ok()?;
    Some((
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    ))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_image_of_the_runtime_layout_serves_stores_and_runs_as_its_user() {
    let Some(podman) = Podman::new() else {
        cannot_run("needs root, podman, runc and setcap (scripts/install-deps.sh installs them)");
        return;
    };
    let stage = runtime_stage();
    let uid = one(&stage, "USER").split(':').next().unwrap().to_string();
    let dir = tempdir();
    let rootfs = runtime_rootfs(&dir, &uid);
    chown(&rootfs.join("var/lib/tapir"), &uid);
    // The runtime stage's metadata, verbatim, over the layout.
    let mut file = String::from("FROM scratch\nCOPY rootfs/ /\n");
    for (word, rest) in &stage {
        if [
            "ENV",
            "VOLUME",
            "WORKDIR",
            "USER",
            "EXPOSE",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD",
        ]
        .contains(&word.as_str())
        {
            file.push_str(&format!("{word} {rest}\n"));
        }
    }
    std::fs::write(dir.join("Containerfile"), file).unwrap();
    podman.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/tapir-test",
        dir.to_str().unwrap(),
    ]);
    let size: u64 = podman
        .ok(&[
            "image",
            "inspect",
            "localhost/tapir-test",
            "--format",
            "{{.Size}}",
        ])
        .parse()
        .unwrap();
    eprintln!("image size: {:.1} MB", size as f64 / 1e6);

    // The compose file's settings: host network, its capabilities; the limits are the
    // machine's (podman's defaults exceed what this sandbox allows).
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    chown(&data, &uid);
    let volume = format!("{}:/var/lib/tapir", data.display());
    let captures = format!("{}:/captures:ro", pcap("portscan").display());
    let base = [
        "--network",
        "host",
        "--cap-add",
        "NET_RAW",
        "--cap-add",
        "NET_ADMIN",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
    ];

    // 1. The demo serves /healthz and /stats, as the image's user, and its HEALTHCHECK passes.
    let port = free_port();
    let mut args: Vec<&str> = vec!["run", "-d", "--name", "demo"];
    args.extend(base);
    args.extend(["-v", &volume, "localhost/tapir-test", "demo"]);
    let port_s = port.to_string();
    args.extend(["--port", &port_s, "--db-path", "/var/lib/tapir/demo-db"]);
    podman.ok(&args);
    podman.wait_for("the demo's /healthz", "demo", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    let (status, body) = get(port, "/stats").unwrap();
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(stats["total_packets"].as_u64().is_some(), "{stats}");
    let pid = podman.ok(&["inspect", "demo", "--format", "{{.State.Pid}}"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == uid),
        "runs as {uid}: {uids}"
    );
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!("demo RSS in the container: {rss_kb} kB");
    // The HEALTHCHECK asks port 8000; this demo serves elsewhere, so run the same probe on
    // its port in the container.
    podman.ok(&[
        "exec",
        "demo",
        "/usr/bin/tapir",
        "healthcheck",
        "--port",
        &port_s,
    ]);
    podman.ok(&["stop", "-t", "20", "demo"]);
    let code = podman.ok(&["inspect", "demo", "--format", "{{.State.ExitCode}}"]);
    assert_eq!(code, "0", "SIGTERM ends it cleanly");

    // 2. Capture as the unprivileged user: the file capability and --cap-add NET_RAW suffice.
    // A one-off container of the image with the compose file's settings, `extra` first.
    let once = |extra: &[&str], command: &[&str]| {
        let mut args: Vec<&str> = vec!["run", "--rm"];
        args.extend(base);
        args.extend(extra);
        args.push("localhost/tapir-test");
        args.extend(command);
        podman.ok(&args)
    };
    once(
        &[],
        &["analyze", "--iface", "lo", "--duration", "1", "--json"],
    );

    // 3. A replay stores into the mounted volume; the records outlive the container. MANIFEST:
    // nmap -sS from 192.168.1.10 against 1,000 ports of 192.168.1.25. A viewer token, made
    // in the volume by the image's own `tapir token create`, reads the API.
    let token = once(
        &["-v", &volume],
        &["token", "create", "test", "--role", "viewer"],
    );
    let port = free_port();
    let port_s = port.to_string();
    let mut args: Vec<&str> = vec!["run", "-d", "--name", "replay"];
    args.extend(base);
    args.extend(["-v", &volume, "-v", &captures, "localhost/tapir-test"]);
    args.extend(["replay", "/captures/nmap_tcp_syn_scan.pcap", "--speed", "0"]);
    args.extend(["--host", "127.0.0.1", "--port", &port_s]);
    podman.ok(&args);
    podman.wait_for("the replay's alert", "replay", || {
        get_as(port, "/alerts", Some(&token))
            .is_some_and(|(s, b)| s == 200 && b.contains("192.168.1.25"))
    });
    // The first start tells the one-time admin password in the container's log.
    let logs = podman.ok(&["logs", "replay"]);
    let out = podman.cmd().args(["logs", "replay"]).output().unwrap();
    let logs = logs + &String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("One-time password for user \"admin\""),
        "{logs}"
    );
    podman.ok(&["stop", "-t", "20", "replay"]);
    // Restarted, the same container serves the stored alert again.
    podman.ok(&["start", "replay"]);
    podman.wait_for("the restarted /healthz", "replay", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    podman.ok(&["stop", "-t", "20", "replay"]);
    let alerts = once(&["-v", &volume], &["db", "export", "--kind", "alerts"]);
    let scans: Vec<serde_json::Value> = alerts
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &serde_json::Value| a["alert_type"] == "port_scan")
        .collect();
    assert_eq!(scans.len(), 1, "{alerts}");
    assert_eq!(scans[0]["source_ip"], "192.168.1.10");
    assert_eq!(scans[0]["target"], "192.168.1.25");
    // On the host, in ./data, owned by the image's user.
    use std::os::unix::fs::MetadataExt;
    let db = std::fs::metadata(data.join("db")).unwrap();
    assert_eq!(db.uid().to_string(), uid);
    let _ = std::fs::remove_dir_all(&dir);
}
