//! Names from DNS answers, end to end: on the shared captures, every flow whose client was
//! given its server's address in a DNS answer is named with that answer's question, as
//! tshark reads the responses; flows to addresses no answer gave stay unnamed.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{cannot_run, flows_of, pcap, tempdir};

/// One DNS response as tshark reads it: time, the client it went to, the question, and the
/// addresses it gave (A, AAAA, HTTPS/SVCB hints).
struct Response {
    at: f64,
    client: String,
    qname: String,
    addresses: BTreeSet<String>,
}

fn tshark_responses(file: &Path) -> Option<Vec<Response>> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args([
            "-Y",
            "dns.flags.response == 1 && dns.flags.rcode == 0 && !mdns && !llmnr",
        ])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"])
        .args([
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "dns.qry.name",
        ])
        .args(["-e", "dns.a", "-e", "dns.aaaa"])
        .args([
            "-e",
            "dns.svcb.svcparam.ipv4hint.ip",
            "-e",
            "dns.svcb.svcparam.ipv6hint.ip",
        ])
        .output()
        .ok()?;
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let client = if f[1].is_empty() { f[2] } else { f[1] };
                let addresses: BTreeSet<String> = f[4..]
                    .iter()
                    .flat_map(|v| v.split(','))
                    .filter(|a| !a.is_empty())
                    .map(|a| a.parse::<std::net::IpAddr>().unwrap().to_string())
                    .collect();
                (!addresses.is_empty()).then(|| Response {
                    at: f[0].parse().unwrap(),
                    client: client.to_string(),
                    qname: f[3].split(',').next().unwrap().to_ascii_lowercase(),
                    addresses,
                })
            })
            .collect(),
    )
}

#[test]
fn flows_are_named_by_the_dns_answers_their_clients_received() {
    let captures = [
        "names/ndpi_teams_cname_chains.pcap",
        "names/mercury_chrome_mlkem_tcp_quic_dns.pcap",
        "names/mercury_surfshark_android_aaaa.pcap",
        "names/foxio_tls3_dns_https_echconfig.pcapng",
        "names/foxio_latest.pcapng",
        "names/arkime_dns_https_rr.pcap",
    ];
    let mut named_by_own_answer = 0;
    for rel in captures {
        let file = pcap(rel);
        let Some(responses) = tshark_responses(&file) else {
            return cannot_run("tshark is not installed (scripts/install-deps.sh installs it)");
        };
        for f in flows_of(&file) {
            let proto = f["ip_proto"].as_u64().unwrap();
            let ports = [
                f["src_port"].as_u64().unwrap(),
                f["dst_port"].as_u64().unwrap(),
            ];
            if !(proto == 6 || proto == 17) || ports.iter().any(|p| [53, 5353, 5355].contains(p)) {
                continue;
            }
            let (client, server) = (f["src_ip"].as_str().unwrap(), f["dst_ip"].as_str().unwrap());
            let first = f["first_seen"].as_f64().unwrap();
            let own: Vec<&Response> = responses
                .iter()
                .filter(|r| r.client == client && r.addresses.contains(server))
                .collect();
            let anyone: BTreeSet<&str> = responses
                .iter()
                .filter(|r| r.addresses.contains(server))
                .map(|r| r.qname.as_str())
                .collect();
            let got = (f["server_name"].as_str(), f["name_source"].as_str());
            if matches!(got.1, Some("sni" | "quic" | "http")) {
                // The flow's own TLS or QUIC server name or HTTP Host wins over any DNS answer
                // (checked below).
                continue;
            }
            let before = own
                .iter()
                .filter(|r| r.at <= first)
                .max_by(|a, b| a.at.total_cmp(&b.at));
            if let Some(want) = before {
                // The answer the client itself received most recently before the flow.
                assert_eq!(got, (Some(want.qname.as_str()), Some("dns")), "{rel}: {f}");
                named_by_own_answer += 1;
            } else if !anyone.is_empty() {
                // Only answers after the flow began (the client had the address from a
                // cache), or answers to other clients: a name one of them gave, if any (an
                // answer after the flow ended cannot name it).
                if let Some(name) = got.0 {
                    assert!(anyone.contains(name), "{rel}: {f}");
                }
            } else {
                assert_eq!(got, (None, None), "{rel}: no answer gave {server}: {f}");
            }
        }
    }
    // Most flows of these captures are named by their own ClientHello (TCP or QUIC, checked
    // in the hello test); 6 are left to the DNS answers alone.
    assert!(
        named_by_own_answer >= 6,
        "only {named_by_own_answer} flows checked"
    );
}

#[test]
fn names_off_names_nothing() {
    let dir = tempdir();
    let config = dir.join("off.toml");
    std::fs::write(&config, "[privacy]\nnames = false\n").unwrap();
    let out = dir.join("flows.jsonl");
    let (code, _, stderr) = common::analyze(
        &pcap("names/ndpi_teams_cname_chains.pcap"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--flows-out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().count() > 10);
    assert!(!text.contains("server_name"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_server_says_what_it_knows_of_an_address() {
    // tshark: frame 665 answers 192.168.1.6's query for substrate.office.com with
    // 13.107.18.11; frame 730 answers outlook.office.com with the same address.
    let file = pcap("names/ndpi_teams_cname_chains.pcap");
    let server =
        common::server::Server::start(&["replay", file.to_str().unwrap(), "--speed", "0"], None);
    server.wait_replayed();
    let known = server.get("/names?ip=13.107.18.11");
    assert_eq!(known.status, 200, "{}", known.body);
    let known = known.json();
    let names: Vec<&str> = known["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["substrate.office.com", "outlook.office.com"],
        "{known}"
    );
    assert_eq!(known["clients"], serde_json::json!(["192.168.1.6"]));
    let first = known["names"][0]["first_seen"].as_f64().unwrap();
    assert!((first - 1_587_041_684.304_618).abs() < 1e-5, "{first}");
    // Nothing known, and no address at all.
    assert_eq!(
        server.get("/names?ip=192.0.2.99").json()["names"],
        serde_json::json!([])
    );
    assert_eq!(server.get("/names").status, 400);
    server.stop();
}

/// One ClientHello of the facts (tshark 4.0 decodes TCP and decrypts QUIC Initials itself;
/// JA4 from the ja4plus reference): client and server ("addr:port"), transport, server name
/// (lowercase), whether it was put together from several segments or Initials, whether it is
/// a connection's second hello (after a HelloRetryRequest), its JA4, and the version the
/// server's ServerHello chose.
struct Hello {
    client: String,
    server: String,
    quic: bool,
    sni: Option<String>,
    split: bool,
    second: bool,
    ja4: Option<String>,
    negotiated: Option<String>,
}

/// Every ClientHello in the MANIFEST's facts, by capture.
fn hellos() -> Vec<(String, Vec<Hello>)> {
    common::manifest()
        .into_iter()
        .filter_map(|entry| {
            let hellos = entry["facts"]["tls_sni"].as_array()?.clone();
            let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let all: Vec<_> = hellos
                .iter()
                .map(|h| Hello {
                    client: text(&h["client"]).unwrap(),
                    server: text(&h["server"]).unwrap(),
                    quic: h["transport"] == "quic",
                    sni: h["sni"].as_str().map(str::to_ascii_lowercase),
                    split: h["split_client_hello"].as_bool().unwrap_or(false),
                    second: h["second_client_hello"].as_bool().unwrap_or(false),
                    ja4: text(&h["ja4"]),
                    negotiated: text(&h["negotiated_version"]),
                })
                .collect();
            (!all.is_empty()).then(|| (entry["path"].as_str().unwrap().to_string(), all))
        })
        .collect()
}

/// The ClientHellos of one capture's facts.
fn hellos_of(rel: &str) -> Vec<Hello> {
    hellos()
        .into_iter()
        .find(|(path, _)| path == rel)
        .map(|(_, h)| h)
        .expect("the capture's facts")
}

/// "a.b.c.d:port" or "[v6]:port" or "v6:port" split at the last colon.
fn endpoint(s: &str) -> (String, u64) {
    let (ip, port) = s.rsplit_once(':').unwrap();
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    (
        ip.parse::<std::net::IpAddr>().unwrap().to_string(),
        port.parse().unwrap(),
    )
}

#[test]
fn every_client_hello_names_its_flow_with_tshark_s_server_name_and_ja4plus_s_ja4() {
    let captures = hellos();
    assert!(
        captures.len() >= 15,
        "the MANIFEST's names facts are missing"
    );
    let count = |f: &dyn Fn(&Hello) -> bool| -> usize {
        captures
            .iter()
            .map(|(_, h)| h.iter().filter(|h| !h.second && f(h)).count())
            .sum()
    };
    let with_sni = count(&|h| h.sni.is_some());
    let split_with_sni = count(&|h| h.sni.is_some() && h.split);
    let quic_with_sni = count(&|h| h.sni.is_some() && h.quic);
    let (mut named, mut split, mut quic, mut fingerprinted, mut versions) = (0, 0, 0, 0, 0);
    for (rel, hellos) in &captures {
        let flows = flows_of(&pcap(rel));
        for h in hellos.iter().filter(|h| !h.second) {
            let (c, cp) = endpoint(&h.client);
            let (s, sp) = endpoint(&h.server);
            let what = format!("{rel}: {} -> {}", h.client, h.server);
            let flow = flows
                .iter()
                .find(|f| {
                    f["src_ip"] == c.as_str()
                        && f["src_port"] == cp
                        && f["dst_ip"] == s.as_str()
                        && f["dst_port"] == sp
                        && f.get("carries").is_none()
                })
                .unwrap_or_else(|| panic!("{what}: no flow"));
            let source = if h.quic { "quic" } else { "sni" };
            match &h.sni {
                Some(sni) => {
                    assert_eq!(flow["server_name"], sni.as_str(), "{what}");
                    assert_eq!(flow["name_source"], source, "{what}");
                    named += 1;
                    split += usize::from(h.split);
                    quic += usize::from(h.quic);
                }
                None => assert_ne!(flow["name_source"], source, "{what}: no SNI sent"),
            }
            if let Some(ja4) = &h.ja4 {
                assert_eq!(flow["ja4"], ja4.as_str(), "{what}");
                fingerprinted += 1;
            }
            // tshark's "TLS1.3" is the published "TLS 1.3". (Where the mirror delivers the
            // server's packets outside the client's tunnel, they are another flow.)
            if let Some(v) = h.negotiated.as_deref().filter(|v| v.starts_with("TLS"))
                && !h.quic
                && flow["dst_packets"].as_u64() > Some(0)
            {
                assert_eq!(flow["tls_version"], v.replace("TLS", "TLS "), "{what}");
                assert!(flow["tls_cipher"].is_string(), "{what}");
                versions += 1;
            }
        }
    }
    // MANIFEST: 379 ClientHellos (304 TCP, 75 QUIC), 46 split over TCP segments and 25 over
    // QUIC Initials; every first hello that sends a server name is named by it.
    assert_eq!(named, with_sni);
    assert_eq!(
        split, split_with_sni,
        "every split ClientHello is put together"
    );
    assert!(split >= 60, "{split}");
    assert_eq!(quic, quic_with_sni);
    assert!(quic >= 60, "{quic}");
    assert!(fingerprinted >= 370, "{fingerprinted}");
    assert!(versions >= 220, "{versions}");
}

#[test]
fn http_requests_give_their_flows_host_and_user_agent_as_tshark_reads_them() {
    // MANIFEST facts (tshark `http.host`, `http.user_agent`): one per (client, server, Host,
    // User-Agent), SSDP excluded; some heads span two segments.
    let mut checked = 0;
    for entry in common::manifest() {
        let Some(requests) = entry["facts"]["http"].as_array() else {
            continue;
        };
        let rel = entry["path"].as_str().unwrap();
        let flows = flows_of(&pcap(rel));
        for r in requests {
            let client = r["client"].as_str().unwrap();
            let (server, port) = endpoint(r["server"].as_str().unwrap());
            let host = r["host"].as_str().unwrap();
            let agent = r["user_agent"].as_str();
            let matching: Vec<_> = flows
                .iter()
                .filter(|f| {
                    f["src_ip"] == client && f["dst_ip"] == server.as_str() && f["dst_port"] == port
                })
                .collect();
            assert!(
                !matching.is_empty(),
                "{rel}: no flow {client} -> {server}:{port}"
            );
            assert!(
                matching
                    .iter()
                    .any(|f| f["http_host"] == host && f["http_user_agent"].as_str() == agent),
                "{rel}: {host} {agent:?} on none of {matching:#?}"
            );
            // The Host names the server unless the Host is an address.
            let name = host
                .rsplit_once(':')
                .map_or(host, |(n, _)| n)
                .to_ascii_lowercase();
            if name.parse::<std::net::IpAddr>().is_err() {
                assert!(
                    matching
                        .iter()
                        .any(|f| f["server_name"] == name.as_str() && f["name_source"] == "http"),
                    "{rel}: {name}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked}");
}

#[test]
fn eve_flow_events_carry_suricatas_tls_and_http_fields() {
    let dir = tempdir();
    let eve = dir.join("eve.json");
    let config = dir.join("eve.toml");
    std::fs::write(
        &config,
        format!("[export.eve]\nfile = \"{}\"\n", eve.display()),
    )
    .unwrap();
    for rel in [
        "names/ndpi_teams_cname_chains.pcap",
        "names/foxio_http1.pcapng",
    ] {
        let (code, _, stderr) =
            common::analyze(&pcap(rel), &["--config", config.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let events = common::json_lines(&eve);
    // MANIFEST (tshark, ja4plus): 192.168.1.6:60533 -> 52.113.194.132:443 sends SNI
    // teams.microsoft.com, ALPN h2 first, JA4 t12d1311h2_8b80da21ef18_77989cba1f4a; the
    // server chooses TLS 1.2.
    let teams = events
        .iter()
        .find(|e| e["src_port"] == 60533 && e["dest_ip"] == "52.113.194.132")
        .expect("the Teams flow");
    assert_eq!(teams["app_proto"], "tls");
    assert_eq!(teams["tls"]["sni"], "teams.microsoft.com");
    assert_eq!(teams["tls"]["ja4"], "t12d1311h2_8b80da21ef18_77989cba1f4a");
    assert_eq!(teams["tls"]["version"], "TLS 1.2");
    assert_eq!(teams["tls"]["alpn"][0], "h2");
    // tshark: 192.168.1.188 asks avpro.global.yamaha.com with User-Agent
    // "Network_Module/1.0 (RX-A8A)".
    let yamaha = events
        .iter()
        .find(|e| e["http"]["hostname"] == "avpro.global.yamaha.com")
        .expect("the Yamaha request");
    assert_eq!(yamaha["app_proto"], "http");
    assert_eq!(yamaha["src_ip"], "192.168.1.188");
    assert_eq!(
        yamaha["http"]["http_user_agent"],
        "Network_Module/1.0 (RX-A8A)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_server_lists_flows_by_name_and_adds_up_applications() {
    // MANIFEST facts (tshark, FoxIO's JA4 test capture): 84 ClientHellos from
    // 192.168.1.168, 64 over TCP and 20 over QUIC, every first one with an SNI.
    let rel = "names/foxio_tls_handshake_browsing.pcapng";
    let hellos = hellos_of(rel);
    let first: Vec<&Hello> = hellos.iter().filter(|h| !h.second).collect();
    let under = |h: &Hello, domains: &[&str]| {
        let sni = h.sni.as_deref().unwrap_or_default();
        domains
            .iter()
            .any(|d| sni == *d || sni.ends_with(&format!(".{d}")))
    };
    let file = pcap(rel);
    let server =
        common::server::Server::start(&["replay", file.to_str().unwrap(), "--speed", "0"], None);
    server.wait_replayed();

    // /flows?name= matches the name and every name under it.
    // The replay has ended: its flows are in the store (a time range reads it).
    let flows = server
        .get("/flows?name=fbcdn.net&limit=1000&start_time=0")
        .json();
    let mut got: Vec<String> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}:{}", f["src_ip"].as_str().unwrap(), f["src_port"]))
        .collect();
    let mut want: Vec<String> = first
        .iter()
        .filter(|h| under(h, &["fbcdn.net"]))
        .map(|h| h.client.clone())
        .collect();
    got.sort();
    want.sort();
    assert!(want.len() >= 5, "{want:?}");
    assert_eq!(got, want);
    assert_eq!(
        server.get("/flows?name=bcdn.net&start_time=0").json()["count"],
        0,
        "a name matches at label boundaries only"
    );
    assert_eq!(server.get("/flows?name=%00").status, 400);

    // /apps adds the flows up: Facebook's names are its flows, and the flows named by
    // TCP and QUIC ClientHellos are as many as the capture's first hellos of each.
    let apps = server.get("/apps");
    assert_eq!(apps.status, 200, "{}", apps.body);
    let apps = apps.json();
    let facebook = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "facebook")
        .unwrap_or_else(|| panic!("{apps}"));
    let facebook_names = ["facebook.com", "facebook.net", "fbcdn.net", "fbsbx.com"];
    let want = first.iter().filter(|h| under(h, &facebook_names)).count();
    assert_eq!(facebook["flows"], want as u64, "{apps}");
    assert_eq!(facebook["category"], "social");
    assert_eq!(facebook["hosts"], 1);
    let sni = first.iter().filter(|h| !h.quic && h.sni.is_some()).count();
    let quic = first.iter().filter(|h| h.quic && h.sni.is_some()).count();
    assert_eq!(apps["named_by"]["sni"]["flows"], sni as u64, "{apps}");
    assert_eq!(apps["named_by"]["quic"]["flows"], quic as u64, "{apps}");
    let social = server
        .get("/flows?app=social&limit=1000&start_time=0")
        .json();
    assert_eq!(social["count"], want as u64);
    // The store's rollups count them too, by application and by category.
    for query in ["by=app&key=facebook", "by=category&key=social"] {
        let history = server.get(&format!("/history?metric=flows&{query}")).json();
        assert_eq!(
            history["series"][0]["total"], want as u64,
            "{query}: {history}"
        );
    }

    // A host's page: the client's applications, and a server's names, from its flows.
    let client = server.get("/hosts/192.168.1.168").json();
    let fb = client["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "facebook")
        .unwrap_or_else(|| panic!("{client}"));
    assert_eq!(fb["flows"], want as u64);
    let some = first.iter().find(|h| under(h, &["fbcdn.net"])).unwrap();
    let (ip, _) = endpoint(&some.server);
    let host = server.get(&format!("/hosts/{ip}")).json();
    assert!(
        host["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["key"] == some.sni.as_deref().unwrap()),
        "{host}"
    );

    // Top talkers carry a name their flows were seen with.

    let talkers = server.get("/top-talkers?limit=5").json();
    let named = talkers
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["ip"] != "192.168.1.168")
        .inspect(|t| {
            let ip = t["ip"].as_str().unwrap();
            let name = t["name"].as_str().unwrap_or_else(|| panic!("{t}"));
            assert!(
                first
                    .iter()
                    .any(|h| endpoint(&h.server).0 == ip && h.sni.as_deref() == Some(name)),
                "{ip} is not {name} by the facts"
            );
        })
        .count();
    assert_eq!(named, 4);
    server.stop();
}

#[test]
fn analyze_reports_applications_and_what_named_the_flows() {
    // MANIFEST facts: the Teams capture's ClientHellos, all over TCP.
    let rel = "names/ndpi_teams_cname_chains.pcap";
    let hellos = hellos_of(rel);
    let sni = hellos
        .iter()
        .filter(|h| !h.second && h.sni.is_some())
        .count() as u64;
    let teams = hellos
        .iter()
        .filter(|h| {
            !h.second
                && h.sni.as_deref().is_some_and(|s| {
                    s == "teams.microsoft.com" || s.ends_with(".teams.microsoft.com")
                })
        })
        .count() as u64;
    let (code, json, stderr) = common::analyze(&pcap(rel), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let json = json.unwrap();
    assert_eq!(
        json["names"]["named_by"]["sni"]["flows"], sni,
        "{}",
        json["names"]
    );
    let app = json["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "microsoft-teams")
        .expect("Teams is an application");
    assert_eq!(app["category"], "conferencing");
    assert!(app["flows"].as_u64().unwrap() >= teams, "{app}");
    assert!(
        json["app_categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["category"] == "conferencing")
    );
    // Names off: no sections at all.
    let dir = tempdir();
    let config = dir.join("off.toml");
    std::fs::write(&config, "[privacy]\nnames = false\n").unwrap();
    let (_, json, _) = common::analyze(&pcap(rel), &["--config", config.to_str().unwrap()]);
    let json = json.unwrap();
    assert!(json.get("apps").is_none() && json.get("names").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
