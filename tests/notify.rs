//! Notifications, end to end: `tapir analyze` and the server send to receivers these tests
//! start on loopback. An HTTP receiver records every request and stands in for the
//! webhook, Slack, Discord, ntfy, Gotify and Telegram endpoints; the requests are checked
//! against each service's documented shape. Python's `smtpd` receives the mail. The
//! episodes come from the same run's alerts; the checks are what reaches the receivers.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::Server;
use common::{pcap, run_with_limit, tapir, tempdir};
use serde_json::Value;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// An HTTP server on 127.0.0.1 that records requests and answers each path with the
/// statuses scripted for it, in turn (then 200).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: &[(&str, &[u16])]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<BTreeMap<String, Vec<u16>>>> = Arc::new(Mutex::new(
            script
                .iter()
                .map(|(p, s)| (p.to_string(), s.to_vec()))
                .collect(),
        ));
        let recorded = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (got, script) = (recorded.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &got, &script));
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

fn serve(
    stream: TcpStream,
    got: &Mutex<Vec<Received>>,
    script: &Mutex<BTreeMap<String, Vec<u16>>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    // One request per connection: every answer says `Connection: close`.
    {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().unwrap().push(Received {
            method,
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        let status = {
            let mut script = script.lock().unwrap();
            match script.get_mut(&path) {
                Some(s) if !s.is_empty() => s.remove(0),
                _ => 200,
            }
        };
        let answer = if status == 200 {
            "{\"ok\":true}"
        } else {
            "busy"
        };
        let extra = if status == 500 {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{answer}",
            answer.len()
        );
    }
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A listener that accepts connections and never answers.
fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(90);
        while Instant::now() < until {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (port, handle)
}

const SECRET_HEADER: &str = "Bearer webhook-secret-7f3a";
const TELEGRAM_TOKEN: &str = "123456:telegram-secret-token";
const GOTIFY_TOKEN: &str = "gotify-secret-app-token";

/// The config of one target of each HTTP kind on `r`, none rate-limited.
fn http_targets(r: &Receiver) -> String {
    format!(
        r#"
[server]
public_url = "https://tapir.example.lan"

[[notify]]
name = "hook"
kind = "webhook"
url = "{hook}"
min_severity = "low"
rate_per_minute = 1000
headers = {{ Authorization = "{SECRET_HEADER}" }}

[[notify]]
name = "slack"
kind = "slack"
url = "{slack}"
min_severity = "low"
rate_per_minute = 1000

[[notify]]
name = "discord"
kind = "discord"
url = "{discord}"
min_severity = "low"
rate_per_minute = 1000

[[notify]]
name = "phone"
kind = "ntfy"
url = "{ntfy}"
min_severity = "low"
rate_per_minute = 1000

[[notify]]
name = "gotify"
kind = "gotify"
url = "{gotify}"
token = "{GOTIFY_TOKEN}"
min_severity = "low"
rate_per_minute = 1000

[[notify]]
name = "telegram"
kind = "telegram"
url = "{telegram}"
token = "{TELEGRAM_TOKEN}"
chat_id = "-1001234"
min_severity = "low"
rate_per_minute = 1000
"#,
        hook = r.url("/hook"),
        slack = r.url("/services/T0/B0/slack-secret-path"),
        discord = r.url("/api/webhooks/1/discord-secret"),
        ntfy = r.url("/tapir-alerts"),
        gotify = r.url("/gotify"),
        telegram = r.url(""),
    )
}

fn analyze_with(config: &str, capture: &Path, limit: Duration) -> (Value, String, Duration) {
    let dir = tempdir();
    let path = dir.join("tapir.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let out = run_with_limit(
        tapir()
            .args(["analyze", "--json", "--config"])
            .arg(&path)
            .arg(capture),
        limit,
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "analyze failed: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (summary, stderr, took)
}

fn counters(summary: &Value, name: &str) -> Value {
    summary["notify"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {}", summary["notify"]))["counters"]
        .clone()
}

#[test]
fn each_service_gets_one_message_per_episode_in_its_documented_shape() {
    let r = Receiver::start(&[]);
    let capture = pcap("portscan/nfpuzzle4_mr_x_scan.pcap");
    let (summary, _, _) = analyze_with(&http_targets(&r), &capture, Duration::from_secs(120));
    let alerts = summary["alerts"].as_array().unwrap();
    assert!(alerts.len() >= 3, "the scan raises alerts: {alerts:?}");
    let ids: Vec<u64> = alerts.iter().map(|a| a["id"].as_u64().unwrap()).collect();

    // The webhook: the alert itself, once per episode; a rise in severity once more.
    let hooks = r.requests("/hook");
    let opened: Vec<u64> = hooks
        .iter()
        .map(Received::json)
        .filter(|b| b["event"] == "alert_opened")
        .map(|b| b["alert"]["id"].as_u64().unwrap())
        .collect();
    let mut sorted = opened.clone();
    sorted.sort_unstable();
    let mut expected = ids.clone();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "one alert_opened per episode");
    for raised in hooks
        .iter()
        .map(Received::json)
        .filter(|b| b["event"] == "severity_raised")
    {
        assert!(opened.contains(&raised["alert"]["id"].as_u64().unwrap()));
    }
    let messages = hooks.len();
    for h in &hooks {
        assert_eq!(h.method, "POST");
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(h.headers["authorization"], SECRET_HEADER);
        let b = h.json();
        let id = b["alert"]["id"].as_u64().unwrap();
        assert_eq!(
            b["link"],
            format!("https://tapir.example.lan/#/alerts?id={id}")
        );
        // tshark: the capture runs from 2010-02-02 23:34:06 to 23:44:13 UTC.
        let text = b["text"].as_str().unwrap();
        let time = text.lines().find_map(|l| l.strip_prefix("Time: ")).unwrap();
        assert!(
            ("2010-02-02 23:34:06 UTC"..="2010-02-02 23:44:13 UTC").contains(&time),
            "{text}"
        );
    }
    let first = alerts
        .iter()
        .find(|a| a["alert_type"] == "port_scan")
        .unwrap();
    // The description grows as the episode does; what was sent is the one at the opening.
    let desc = format!(
        "Source: {}\nTarget: {}",
        first["source_ip"].as_str().unwrap(),
        first["target"].as_str().unwrap()
    );

    // Slack (and Mattermost): `text`. Discord: `content` within 2,000 characters.
    let slack = r.requests("/services/T0/B0/slack-secret-path");
    assert_eq!(slack.len(), messages);
    assert!(
        slack
            .iter()
            .any(|s| s.json()["text"].as_str().unwrap().contains(&desc))
    );
    let discord = r.requests("/api/webhooks/1/discord-secret");
    assert_eq!(discord.len(), messages);
    for d in &discord {
        let content = d.json()["content"].as_str().unwrap().to_string();
        assert!(!content.is_empty() && content.chars().count() <= 2000);
    }
    // ntfy: the body is the text; title and priority in headers (high → 4).
    let ntfy = r.requests("/tapir-alerts");
    assert_eq!(ntfy.len(), messages);
    let high = ntfy
        .iter()
        .find(|n| n.headers["title"].contains("high port_scan"))
        .expect("an ntfy message for the high port scan");
    assert_eq!(high.headers["priority"], "4");
    assert!(high.headers["click"].starts_with("https://tapir.example.lan/#/alerts?id="));
    assert!(String::from_utf8_lossy(&high.body).contains(&desc));
    // Gotify: POST /message with the app token header; priority 8 for high.
    let gotify = r.requests("/gotify/message");
    assert_eq!(gotify.len(), messages);
    assert!(
        gotify
            .iter()
            .all(|g| g.headers["x-gotify-key"] == GOTIFY_TOKEN)
    );
    assert!(gotify.iter().any(|g| g.json()["priority"] == 8));
    // Telegram: POST /bot<token>/sendMessage with chat_id and text.
    let telegram = r.requests(&format!("/bot{TELEGRAM_TOKEN}/sendMessage"));
    assert_eq!(telegram.len(), messages);
    let t = telegram[0].json();
    assert_eq!(t["chat_id"], "-1001234");
    assert!(t["text"].as_str().unwrap().starts_with("tapir: "));

    // Every service is sent a POST; every JSON service gets JSON.
    let all = r.got.lock().unwrap().clone();
    assert_eq!(all.len(), messages * 6);
    assert!(all.iter().all(|q| q.method == "POST"));
    for q in all.iter().filter(|q| !q.path.starts_with("/tapir-alerts")) {
        assert_eq!(q.headers["content-type"], "application/json", "{}", q.path);
    }
    assert!(
        ntfy.iter()
            .all(|n| n.headers["content-type"].starts_with("text/plain"))
    );
    for name in ["hook", "slack", "discord", "phone", "gotify", "telegram"] {
        let c = counters(&summary, name);
        assert_eq!(c["sent"], messages as u64, "{name}: {c}");
        assert_eq!(
            (c["failed"].as_u64(), c["dropped"].as_u64()),
            (Some(0), Some(0))
        );
    }
}

#[test]
fn past_the_rate_one_digest_a_retry_after_500_and_a_dead_target_costs_drops_only() {
    let r = Receiver::start(&[("/retry", &[500])]);
    let (dead_port, _dead) = black_hole();
    let config = format!(
        r#"
[[notify]]
name = "all"
kind = "webhook"
url = "{all}"
min_severity = "low"
rate_per_minute = 1000

[[notify]]
name = "limited"
kind = "webhook"
url = "{limited}"
min_severity = "low"
rate_per_minute = 2

[[notify]]
name = "retry"
kind = "webhook"
url = "{retry}"
min_severity = "low"
rate_per_minute = 1000

[[notify]]
name = "dead"
kind = "webhook"
url = "http://127.0.0.1:{dead_port}/never"
min_severity = "low"
timeout_secs = 1
attempts = 2
queue = 1
"#,
        all = r.url("/all"),
        limited = r.url("/limited"),
        retry = r.url("/retry"),
    );
    let capture = pcap("portscan/nfpuzzle4_mr_x_scan.pcap");
    let (summary, _, took) = analyze_with(&config, &capture, Duration::from_secs(120));
    let total = r.requests("/all").len();
    assert!(total >= 4, "the scan makes several messages: {total}");

    // Rate 2: two messages, then one digest of the rest.
    let limited: Vec<Value> = r.requests("/limited").iter().map(Received::json).collect();
    assert_eq!(limited.len(), 3, "{limited:?}");
    let digests: Vec<&Value> = limited.iter().filter(|b| b["event"] == "digest").collect();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0]["count"], (total - 2) as u64);
    let by_rule: u64 = digests[0]["by_rule"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_rule, (total - 2) as u64);
    assert!(
        digests[0]["title"]
            .as_str()
            .unwrap()
            .starts_with(&format!("tapir: {} new alerts: ", total - 2))
    );

    // 500 with Retry-After: 1, then 200: the first message arrives on the second attempt,
    // at least a second later, with the same body.
    let retry = r.requests("/retry");
    assert_eq!(retry.len(), total + 1);
    assert_eq!(retry[0].body, retry[1].body);
    assert!(retry[1].at.duration_since(retry[0].at) >= Duration::from_millis(950));
    let c = counters(&summary, "retry");
    assert_eq!(c["sent"], total as u64);
    assert_eq!(c["retries"], 1);
    assert_eq!(c["failed"], 0);

    // The dead target: nothing sent, the overflow dropped and counted, and no stall: each
    // message costs at most attempts × timeout plus a second of back-off.
    let c = counters(&summary, "dead");
    assert_eq!(c["sent"], 0);
    assert!(c["dropped"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(
        c["failed"].as_u64().unwrap() + c["dropped"].as_u64().unwrap(),
        total as u64,
        "{c}"
    );
    assert!(c["last_error"].as_str().unwrap().contains("cannot reach"));
    assert!(took < Duration::from_secs(60), "analyze took {took:?}");
}

#[test]
fn mail_reaches_an_smtp_server_with_subject_and_body() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Python's smtpd prints each message it receives (Debian's python3 3.11 has it).
    let mut sink = Killed(
        Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-u",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for the SMTP sink"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the SMTP sink did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = format!(
        r#"
[[notify]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
smtp_security = "none"
from = "tapir <tapir@example.org>"
to = ["oncall@example.org"]
min_severity = "high"
rules = ["port_scan"]
"#
    );
    let capture = pcap("portscan/nmap_tcp_syn_scan.pcap");
    let (summary, _, _) = analyze_with(&config, &capture, Duration::from_secs(60));
    let scans: Vec<&Value> = summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "port_scan")
        .collect();
    // The MANIFEST: one SYN scan, 192.168.1.10 → 192.168.1.25.
    assert_eq!(scans.len(), 1);
    assert_eq!(counters(&summary, "mail")["sent"], 1);
    let _ = sink.0.kill();
    let mut printed = String::new();
    sink.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert_eq!(printed.matches("MESSAGE FOLLOWS").count(), 1, "{printed}");
    let severity = scans[0]["severity"].as_str().unwrap();
    assert!(
        printed.contains(&format!(
            "Subject: tapir: {severity} port_scan from 192.168.1.10"
        )),
        "{printed}"
    );
    assert!(printed.contains("To: oncall@example.org"), "{printed}");
    assert!(printed.contains("Target: 192.168.1.25"), "{printed}");
}

#[test]
fn the_server_tests_a_target_and_never_shows_its_secrets() {
    let r = Receiver::start(&[("/broken", &[403; 50])]);
    let (dead_port, _dead) = black_hole();
    let config = format!(
        "{}\n[[notify]]\nname = \"broken\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[notify]]\nname = \"dead\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{dead_port}/services/dead-secret-path\"\n\
         timeout_secs = 1\nattempts = 1\nmin_severity = \"low\"\n",
        http_targets(&r),
        r.url("/broken")
    );
    let server = Server::start(
        &[
            "replay",
            pcap("portscan/nmap_tcp_syn_scan.pcap").to_str().unwrap(),
            "--speed",
            "0",
        ],
        Some(&config),
    );
    let answer = post_json(&server, "/notify/test", r#"{"target":"telegram"}"#);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v = answer.json();
    assert_eq!(
        (v["ok"].as_bool(), v["status"].as_u64()),
        (Some(true), Some(200)),
        "{v}"
    );
    let sent = r.requests(&format!("/bot{TELEGRAM_TOKEN}/sendMessage"));
    assert!(sent.iter().any(|s| {
        s.json()["text"]
            .as_str()
            .unwrap()
            .starts_with("tapir: test message")
    }));
    // A target that refuses: the answer says so.
    let v = post_json(&server, "/notify/test", r#"{"target":"broken"}"#).json();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("403"), "{v}");
    let missing = post_json(&server, "/notify/test", r#"{"target":"nope"}"#);
    assert_eq!(missing.status, 404);

    // The dead Slack target fails on the replay's alerts; its error is logged, scrubbed.
    server.wait_debug(Duration::from_secs(30), "the dead target's failure", |d| {
        d["notify"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["name"] == "dead" && t["counters"]["failed"].as_u64() > Some(0))
        })
    });
    let secrets = [
        SECRET_HEADER,
        TELEGRAM_TOKEN,
        GOTIFY_TOKEN,
        "slack-secret-path",
        "discord-secret",
        "dead-secret-path",
    ];
    let mut seen = Vec::new();
    for path in ["/settings", "/debug", "/notify", "/metrics"] {
        let a = server.get(path);
        assert_eq!(a.status, 200, "{path}");
        seen.push((path.to_string(), a.body));
    }
    let notify = server.get("/notify").json();
    let hook = notify["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "hook")
        .unwrap()
        .clone();
    assert_eq!(hook["url"], "set");
    assert_eq!(hook["headers"]["Authorization"], "set");
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("notification to dead failed"), "{stderr}");
    seen.push(("stderr".into(), stderr));
    for (place, text) in &seen {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{place} shows the secret {secret:?}"
            );
        }
    }
}

fn post_json(server: &Server, path: &str, body: &str) -> common::server::Answer {
    let bearer = server.bearer();
    server.send(
        "POST",
        path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(body),
    )
}

#[test]
fn an_admin_adds_changes_and_removes_targets_kept_with_the_credentials() {
    let r = Receiver::start(&[]);
    let config = format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        r.url("/hook")
    );
    let tiny = pcap("icmp/cs_icmp_echo.pcapng");
    let replay = ["replay", tiny.to_str().unwrap(), "--speed", "0"];
    let server = Server::start(&replay, Some(&config));
    const TOKEN: &str = "tk_ntfy-access-token-91ab";
    let add = format!(
        r#"{{"name":"phone","kind":"ntfy","url":"{}","token":"{TOKEN}","min_severity":"high"}}"#,
        r.url("/phone-topic")
    );
    let answer = post_json(&server, "/notify/targets", &add);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains(TOKEN));
    let phone = |v: &Value| {
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "phone")
            .cloned()
    };
    let shown = phone(&answer.json()).unwrap();
    assert_eq!(
        (shown["origin"].as_str(), shown["token"].as_str()),
        (Some("dashboard"), Some("set"))
    );
    // Kept in the credentials file, readable by its owner only.
    let credentials = server.dir.join("auth.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&credentials)
            .unwrap()
            .contains(TOKEN)
    );
    // An edit that sends the token back as "set" keeps it.
    let edit = format!(
        r#"{{"name":"phone","kind":"ntfy","url":"{}","token":"set","min_severity":"critical"}}"#,
        r.url("/phone-topic")
    );
    let v = post_json(&server, "/notify/targets", &edit).json();
    assert_eq!(phone(&v).unwrap()["min_severity"], "critical");
    let v = post_json(&server, "/notify/test", r#"{"target":"phone"}"#).json();
    assert_eq!(v["ok"], true, "{v}");
    let sent = r.requests("/phone-topic");
    assert_eq!(
        sent.last().unwrap().headers["authorization"],
        format!("Bearer {TOKEN}")
    );
    // A target of the config file is not changed here; a bad one is refused with the reason.
    let a = post_json(
        &server,
        "/notify/targets",
        r#"{"name":"hook","kind":"slack","url":"http://127.0.0.1:9/x"}"#,
    );
    assert_eq!(a.status, 409, "{}", a.body);
    let a = post_json(
        &server,
        "/notify/targets",
        r#"{"name":"tg","kind":"telegram","token":"1:a"}"#,
    );
    assert_eq!(a.status, 400);
    assert!(a.body.contains("chat_id"), "{}", a.body);
    // It survives a restart.
    let dir = server.dir.clone();
    let (code, stderr) = server.stop_keeping_db();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the log shows the token");
    let server = Server::start_in(dir, &replay, Some(&config));
    let v = server.get("/notify").json();
    assert_eq!(phone(&v).unwrap()["min_severity"], "critical");
    let bearer = server.bearer();
    let gone = server.send(
        "DELETE",
        "/notify/targets/phone",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(phone(&gone.json()).is_none());
    let config_one = server.send(
        "DELETE",
        "/notify/targets/hook",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(config_one.status, 409);
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_local_host_is_named_by_the_device_inventory() {
    // tshark: 192.168.0.13 (DHCP host name jaekuryu-HP) talks to 64.71.255.204.
    let r = Receiver::start(&[]);
    let dir = tempdir();
    std::fs::write(dir.join("list.txt"), "64.71.255.204\n").unwrap();
    let config = format!(
        "[intel]\ndir = \"{}\"\n[[intel.list]]\nname = \"test\"\npath = \"list.txt\"\n\
         [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nrules = [\"threat_intel\"]\n",
        dir.display(),
        r.url("/hook")
    );
    let capture = pcap("devices/suricata_win_host_dhcp_llmnr_ssdp_ndp.pcap");
    let (summary, _, _) = analyze_with(&config, &capture, Duration::from_secs(60));
    assert_eq!(
        counters(&summary, "hook")["sent"],
        1,
        "{}",
        summary["notify"]
    );
    let text = r.requests("/hook")[0].json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("Source: 192.168.0.13 (jaekuryu-HP)\nTarget: 64.71.255.204\n"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_stopping_sends_the_digest_it_holds() {
    let r = Receiver::start(&[]);
    let config = format!(
        "[[notify]]\nname = \"all\"\nkind = \"webhook\"\nurl = \"{}\"\nmin_severity = \"low\"\nrate_per_minute = 1000\n\
         [[notify]]\nname = \"one\"\nkind = \"webhook\"\nurl = \"{}\"\nmin_severity = \"low\"\nrate_per_minute = 1\n",
        r.url("/all"),
        r.url("/one")
    );
    let capture = pcap("portscan/nfpuzzle4_mr_x_scan.pcap");
    let server = Server::start(
        &["replay", capture.to_str().unwrap(), "--speed", "0"],
        Some(&config),
    );
    server.wait_replayed();
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let total = r.requests("/all").len();
    assert!(total >= 2, "{total}");
    let one: Vec<Value> = r.requests("/one").iter().map(Received::json).collect();
    assert_eq!(one.len(), 2, "{one:?}");
    assert_eq!(one[1]["event"], "digest");
    assert_eq!(one[1]["count"], (total - 1) as u64);
}
