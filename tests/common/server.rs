//! A real `tapir` server process for the server tests: started on 127.0.0.1 with an
//! ephemeral port and a temporary database, stopped with SIGTERM. Authentication is on as
//! shipped; the helper's requests carry an admin API token made with `tapir token create`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{tapir, tempdir};

pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    /// An admin API token.
    pub token: String,
    agent: ureq::Agent,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// What the server has printed on stderr so far.
    stderr_lines: std::sync::Arc<std::sync::Mutex<String>>,
    /// Leave `dir` (the database) behind for a restart.
    keep_dir: bool,
}

/// An HTTP answer: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl From<ureq::http::Response<ureq::Body>> for Answer {
    fn from(mut r: ureq::http::Response<ureq::Body>) -> Self {
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Answer {
            status: r.status().as_u16(),
            body: r.body_mut().read_to_string().unwrap_or_default(),
            headers,
        }
    }
}

impl Answer {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Server {
    /// Starts `tapir <args> --host 127.0.0.1 --port 0 --db-path <dir>/db`, with `config`
    /// (TOML text) if given, and waits for it to serve.
    pub fn start(args: &[&str], config: Option<&str>) -> Server {
        Self::start_in(tempdir(), args, config)
    }

    /// Like `start`, on the database (and config) of `dir`.
    pub fn start_in(dir: PathBuf, args: &[&str], config: Option<&str>) -> Server {
        let token = create_token(&dir, "tests", "admin");
        let mut cmd = tapir();
        cmd.args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--db-path")
            .arg(dir.join("db"));
        if let Some(text) = config {
            let path = dir.join("tapir.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(&path);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning tapir");
        let stderr = child.stderr.take().unwrap();
        let stderr_lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let lines = std::sync::Arc::clone(&stderr_lines);
        let stderr = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut all = lines.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
            lines.lock().unwrap().clone()
        });
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep draining, so that a later line never meets a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let Some(base) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        else {
            let _ = child.kill();
            panic!(
                "tapir did not start serving: {line:?}\n{}",
                stderr.join().unwrap()
            )
        };
        let base = base.to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server {
            child,
            base,
            dir,
            token,
            agent,
            stderr: Some(stderr),
            stderr_lines,
            keep_dir: false,
        }
    }

    /// What the server has printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr_lines.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base.replacen("http://", "ws://", 1))
    }

    /// The `Authorization` header value of the helper's admin token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path)
    }

    pub fn request(&self, method: &str, path: &str) -> Answer {
        self.send(method, path, &[("Authorization", &self.bearer())], None)
    }

    pub fn post(&self, path: &str) -> Answer {
        self.request("POST", path)
    }

    /// A request with exactly these headers (no token unless given) and body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let answer = match body {
            Some(b) => self.agent.run(req.body(b.to_string()).unwrap()),
            None => self.agent.run(req.body(()).unwrap()),
        };
        Answer::from(answer.expect("request"))
    }

    /// A WebSocket request carrying the admin token.
    pub fn ws_request(&self, path: &str) -> tungstenite::http::Request<()> {
        use tungstenite::client::IntoClientRequest;
        let mut req = self.ws_url(path).into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", self.bearer().parse().unwrap());
        req
    }

    /// Uploads `file` with curl as `multipart/form-data` (fields `file` and `speed`).
    pub fn upload(&self, file: &Path, speed: &str) -> Answer {
        let out = std::process::Command::new("curl")
            .args(["-s", "-H", &format!("Authorization: {}", self.bearer())])
            .args(["-w", "\n%{http_code}", "-F"])
            .arg(format!("file=@{}", file.display()))
            .args(["-F", &format!("speed={speed}")])
            .arg(self.url("/pcap/upload"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        Answer {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// Polls `/debug` until `done` holds for it, or panics after `limit`.
    pub fn wait_debug(&self, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let debug = self.get("/debug").json();
            if done(&debug) {
                return debug;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}: {debug:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the base source (a `replay` file) has been read to the end.
    pub fn wait_replayed(&self) -> Value {
        self.wait_debug(Duration::from_secs(60), "the replay to finish", |d| {
            d["capture"]["sources"]["base"]["state"] == "finished"
        })
    }

    /// Like `stop`, keeping the database directory for another server.
    pub fn stop_keeping_db(mut self) -> (Option<i32>, String) {
        self.keep_dir = true;
        self.stop()
    }

    /// SIGKILL (a crash or a power cut, as far as the process can tell), keeping the
    /// database directory for another server.
    pub fn kill_keeping_db(mut self) {
        self.keep_dir = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status and what it printed on stderr.
    pub fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("tapir did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status.code(), stderr)
    }
}

/// Makes an API token with `tapir token create` for the database in `dir`.
pub fn create_token(dir: &Path, name: &str, role: &str) -> String {
    let out = tapir()
        .args(["token", "create", name, "--role", role, "--db-path"])
        .arg(dir.join("db"))
        .output()
        .expect("tapir token create");
    assert!(
        out.status.success(),
        "tapir token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Sets a password with `tapir passwd` (from stdin) for the database in `dir`.
pub fn set_password(dir: &Path, user: &str, password: &str, role: &str) {
    use std::io::Write;
    let mut child = tapir()
        .args(["passwd", "--user", user, "--role", role, "--db-path"])
        .arg(dir.join("db"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tapir passwd");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tapir passwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said.
        if std::thread::panicking()
            && let Some(stderr) = self.stderr.take()
        {
            eprintln!("--- tapir's stderr:\n{}", stderr.join().unwrap_or_default());
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
