//! Threat lists, end to end: lists built from what tshark sees in a capture in
//! ../shared/pcaps raise exactly the `threat_intel` alerts tshark's view predicts (one per
//! entry and local host), near misses and a million random entries raise none, every file
//! format is read with its junk lines counted, and a list served over HTTPS on loopback is
//! fetched, refreshed with a 304, and shown with its age.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::server::Server;
use common::{pcap, run_with_limit, tapir, tempdir};
use rand::{RngExt, SeedableRng};
use serde_json::Value;

const BROWSING: &str = "names/mercury_chrome_mlkem_tcp_quic_dns.pcap";

/// tshark's (src, dst) pairs of the packets matching `filter`.
fn tshark_pairs(file: &Path, filter: &str) -> BTreeSet<(String, String)> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-e", "ip.src", "-e", "ip.dst"])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The local side of every packet to or from the listed `addr_filter` (an `ip.addr`
/// expression), as tshark sees them.
fn local_peers(file: &Path, addr_filter: &str, listed: impl Fn(&str) -> bool) -> BTreeSet<String> {
    tshark_pairs(file, addr_filter)
        .into_iter()
        .map(|(src, dst)| if listed(&src) { dst } else { src })
        .collect()
}

fn analyze_with(dir: &Path, config: &str, capture: &Path) -> Value {
    let path = dir.join("tapir.toml");
    std::fs::write(&path, config).unwrap();
    let out = run_with_limit(
        tapir()
            .args(["analyze", "--json", "--config"])
            .arg(&path)
            .arg(capture),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (source, target) of each threat_intel alert.
fn intel_alerts(summary: &Value) -> BTreeSet<(String, String)> {
    summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "threat_intel")
        .map(|a| {
            (
                a["source_ip"].as_str().unwrap().to_string(),
                a["target"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The expected alerts for an address, a network and a domain of the browsing capture.
fn expected_browsing(file: &Path) -> BTreeSet<(String, String)> {
    let mut expected = BTreeSet::new();
    for host in local_peers(file, "ip.addr==72.163.128.140", |a| a == "72.163.128.140") {
        expected.insert((host, "72.163.128.140".to_string()));
    }
    for host in local_peers(file, "ip.addr==146.112.61.0/24", |a| {
        a.starts_with("146.112.61.")
    }) {
        expected.insert((host, "146.112.61.0/24".to_string()));
    }
    // DNS answers that hand a client a listed address.
    for (_, client) in tshark_pairs(file, "dns.a==72.163.128.140") {
        expected.insert((client, "72.163.128.140".to_string()));
    }
    for (_, client) in tshark_pairs(file, "dns.a==146.112.61.0/24") {
        expected.insert((client, "146.112.61.0/24".to_string()));
    }
    let askers = tshark_pairs(
        file,
        "(dns.flags.response==0 && dns.qry.name matches \"(^|\\\\.)surfshark\\\\.com$\") || tls.handshake.extensions_server_name matches \"(^|\\\\.)surfshark\\\\.com$\"",
    );
    for (src, _) in askers {
        expected.insert((src, "surfshark.com".to_string()));
    }
    expected
}

#[test]
fn an_address_a_network_and_a_domain_raise_exactly_their_alerts() {
    let file = pcap(BROWSING);
    let expected = expected_browsing(&file);
    assert_eq!(
        expected.len(),
        3,
        "tshark sees one host on each: {expected:?}"
    );
    let dir = tempdir();
    // Near misses: the next address, the next /24, a name that is a suffix but not a label.
    std::fs::write(
        dir.join("list.txt"),
        "# test list\n72.163.128.140\n146.112.61.0/24\nsurfshark.com\n\
         72.163.128.141\n146.112.62.0/24\nurfshark.com\nwww.google.com.evil.test\n",
    )
    .unwrap();
    let config = format!(
        "[intel]\ndir = \"{}\"\n[[intel.list]]\nname = \"test\"\npath = \"list.txt\"\nseverity = \"critical\"\n",
        dir.display()
    );
    let summary = analyze_with(&dir, &config, &file);
    assert_eq!(intel_alerts(&summary), expected);
    for a in summary["alerts"].as_array().unwrap() {
        if a["alert_type"] != "threat_intel" {
            continue;
        }
        assert_eq!(a["severity"], "critical");
        assert_eq!(a["evidence"]["list"], "test");
        let matched = a["evidence"]["matched"].as_str().unwrap();
        match a["target"].as_str().unwrap() {
            "surfshark.com" => assert!(["dns_question", "server_name"].contains(&matched), "{a}"),
            _ => {
                // A flow to it, or (tshark: 146.112.61.106 in an answer of 72.163.128.140,
                // the client's resolver) a DNS answer giving it to the client.
                assert!(["dst", "dns_answer"].contains(&matched), "{a}");
                if matched == "dst" {
                    assert!(a["community_id"].as_str().unwrap().starts_with("1:"));
                }
            }
        }
    }
    let lists = summary["intel"].as_array().unwrap();
    assert_eq!(lists[0]["entries"]["networks"], 4);
    assert_eq!(lists[0]["entries"]["domains"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listed_ja4_matches_the_client_that_sent_it() {
    // The MANIFEST: one Safari ClientHello from 192.168.1.13, JA4 t12d2010h2_2a284e3b0c56_f05fdf8c38a9.
    let dir = tempdir();
    std::fs::write(
        dir.join("ja4.txt"),
        "t12d2010h2_2a284e3b0c56_f05fdf8c38a9\nt13d1516h2_8daaf6152771_e5627efa2ab1\n",
    )
    .unwrap();
    let config = format!(
        "[intel]\ndir = \"{}\"\n[[intel.list]]\nname = \"fingerprints\"\npath = \"ja4.txt\"\n",
        dir.display()
    );
    let summary = analyze_with(&dir, &config, &pcap("names/ndpi_443_safari_tls12.pcap"));
    let expected: BTreeSet<_> = [(
        "192.168.1.13".to_string(),
        "t12d2010h2_2a284e3b0c56_f05fdf8c38a9".to_string(),
    )]
    .into();
    assert_eq!(intel_alerts(&summary), expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_format_is_read_and_junk_lines_are_counted() {
    let file = pcap(BROWSING);
    let dir = tempdir();
    // Feodo Tracker's CSV layout: the address in column 2, a header line that is not one.
    std::fs::write(
        dir.join("feodo.csv"),
        "################\n# Feodo Tracker: IP blocklist\n\
         \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
         \"2024-05-01 07:44:46\",\"72.163.128.140\",\"443\",\"online\",\"2024-05-01\",\"Test\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("drop.txt"),
        "; Spamhaus DROP List\n146.112.61.0/24 ; SBL000001\nnot-a-network ; SBL2\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("hosts"),
        "127.0.0.1 localhost\n0.0.0.0 ext.surfshark.com\n0.0.0.0\n",
    )
    .unwrap();
    let config = format!(
        "[intel]\ndir = \"{}\"\n\
         [[intel.list]]\nname = \"feodo\"\npath = \"feodo.csv\"\nformat = \"csv\"\ncolumn = 2\n\
         [[intel.list]]\nname = \"drop\"\npath = \"drop.txt\"\nformat = \"drop\"\n\
         [[intel.list]]\nname = \"hosts\"\npath = \"hosts\"\nformat = \"hosts\"\n",
        dir.display()
    );
    let summary = analyze_with(&dir, &config, &file);
    let mut expected = expected_browsing(&file);
    // The hosts file lists the exact name, not the domain.
    expected = expected
        .into_iter()
        .map(|(h, t)| {
            let t = if t == "surfshark.com" {
                "ext.surfshark.com".to_string()
            } else {
                t
            };
            (h, t)
        })
        .collect();
    assert_eq!(intel_alerts(&summary), expected);
    let lists = summary["intel"].as_array().unwrap();
    let by_name = |n: &str| lists.iter().find(|l| l["name"] == n).unwrap().clone();
    assert_eq!(
        (
            by_name("feodo")["entries"]["networks"].as_u64(),
            by_name("feodo")["malformed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(by_name("drop")["malformed"], 1);
    assert!(
        by_name("drop")["first_malformed"]
            .as_str()
            .unwrap()
            .starts_with("line 3:")
    );
    assert_eq!(
        (
            by_name("hosts")["entries"]["domains"].as_u64(),
            by_name("hosts")["malformed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_million_entries_that_do_not_match_raise_nothing() {
    let file = pcap(BROWSING);
    let seen: BTreeSet<String> = tshark_pairs(&file, "ip")
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .collect();
    let dir = tempdir();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("big.txt")).unwrap());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
    let mut written = 0;
    while written < 1_000_000 {
        let line = match written % 10 {
            0..=5 => {
                let a: [u8; 4] = rng.random();
                let ip = std::net::Ipv4Addr::from(a).to_string();
                if seen.contains(&ip) {
                    continue;
                }
                ip
            }
            // Distinct /28s of the reserved 240.0.0.0/4.
            6 => format!(
                "{}/28",
                std::net::Ipv4Addr::from(0xf000_0000u32 + written as u32 * 16)
            ),
            7 => format!(
                "2001:db8:{:x}:{:x}::/64",
                rng.random::<u16>(),
                rng.random::<u16>()
            ),
            _ => format!("h{:016x}.example{}.test", rng.random::<u64>(), written % 97),
        };
        writeln!(out, "{line}").unwrap();
        written += 1;
    }
    out.flush().unwrap();
    drop(out);
    let config = format!(
        "[intel]\ndir = \"{}\"\n[[intel.list]]\nname = \"big\"\npath = \"big.txt\"\n",
        dir.display()
    );
    let summary = analyze_with(&dir, &config, &file);
    assert_eq!(intel_alerts(&summary), BTreeSet::new());
    let list = &summary["intel"][0];
    let entries = list["entries"]["networks"].as_u64().unwrap()
        + list["entries"]["domains"].as_u64().unwrap();
    assert!(entries > 990_000, "{list}");
    assert_eq!(list["malformed"], 0);
    // Bounded: about 8 bytes an IPv4 network, 24 an IPv6 one, 10 a name.
    assert!(list["bytes"].as_u64().unwrap() < 16_000_000, "{list}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTPS server on loopback for `dir` (Python's, which answers If-Modified-Since with
/// 304), with a certificate made for 127.0.0.1; returns the port and the process.
fn https_server(dir: &Path) -> (u16, Killed) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).unwrap();
    let script = "import functools, http.server, ssl, sys\n\
        d = sys.argv[1]\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        ctx.load_cert_chain(d + '/ca.pem', d + '/key.pem')\n\
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d + '/www')\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n\
        s.socket = ctx.wrap_socket(s.socket, server_side=True)\n\
        print(s.server_address[1], flush=True)\n\
        s.serve_forever()\n";
    let mut child = Command::new("python3")
        .args(["-u", "-c", script])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        line.trim().parse().expect("the HTTPS server's port"),
        Killed(child),
    )
}

#[test]
fn an_https_list_is_fetched_refreshed_with_a_304_and_files_reload_without_a_restart() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/feed.txt"), "72.163.128.140\n").unwrap();
    std::fs::write(dir.join("local.txt"), "146.112.61.0/24\n").unwrap();
    std::fs::write(dir.join("old.txt"), "192.0.2.1\n").unwrap();
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(dir.join("old.txt"))
        .unwrap()
        .set_modified(ten_days_ago)
        .unwrap();
    let (port, mut https) = https_server(&dir);
    let config = format!(
        "[intel]\ndir = \"{d}\"\ncheck_secs = 1\n\
         [[intel.list]]\nname = \"feed\"\nurl = \"https://127.0.0.1:{port}/feed.txt\"\nca_file = \"{d}/ca.pem\"\nrefresh = \"1h\"\n\
         [[intel.list]]\nname = \"local\"\npath = \"local.txt\"\n\
         [[intel.list]]\nname = \"old\"\npath = \"old.txt\"\nmax_age = \"1d\"\n",
        d = dir.display()
    );
    let file = pcap(BROWSING);
    let server = Server::start(
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        Some(&config),
    );
    server.wait_replayed();
    let intel = server.get("/intel").json();
    let list = |v: &Value, n: &str| {
        v["lists"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == n)
            .unwrap()
            .clone()
    };
    let feed = list(&intel, "feed");
    assert_eq!(feed["last_error"], Value::Null, "{feed}");
    assert_eq!(
        (
            feed["fetches"].as_u64(),
            feed["entries"]["networks"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(feed["stale"], false);
    assert_eq!(
        list(&intel, "old")["stale"],
        true,
        "ten days old, max_age 1d"
    );
    // The downloaded list and the file raise their alerts.
    let alerts = server.get("/alerts?limit=100").json();
    let targets: BTreeSet<String> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "threat_intel")
        .map(|a| a["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        targets,
        ["146.112.61.0/24".to_string(), "72.163.128.140".to_string()].into()
    );

    // A reload asks again, conditionally: the server answers 304 and the list stays.
    let reload = server.post("/intel/reload");
    assert_eq!(reload.status, 200, "{}", reload.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let feed = loop {
        let feed = list(&server.get("/intel").json(), "feed");
        if feed["fetches"] == 2 {
            break feed;
        }
        assert!(Instant::now() < deadline, "no second fetch: {feed}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(feed["not_modified"], 1, "{feed}");
    assert_eq!(feed["entries"]["networks"], 1);

    // A list file changed on disk is read again within check_secs.
    std::fs::write(
        dir.join("local.txt"),
        "146.112.61.0/24\n198.51.100.0/24\nexample.net\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let local = list(&server.get("/intel").json(), "local");
        if local["entries"]["networks"] == 2 && local["entries"]["domains"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed file was not read: {local}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let _ = https.0.kill();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut https.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("\"GET /feed.txt HTTP/1.1\" 200"), "{log}");
    assert!(log.contains("\"GET /feed.txt HTTP/1.1\" 304"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_largest_list_reloads_within_the_units_memory_limit() {
    // A list just under the default max_list_mb (64): about 4 million IPv4 addresses. A
    // reload holds the old set and the new one at once; both must fit under MemoryMax.
    let dir = tempdir();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("big.txt")).unwrap());
    let mut written = 0u64;
    let mut n = 0u32;
    while written < 63 << 20 {
        let line = format!("{}\n", std::net::Ipv4Addr::from(0xf000_0000u32 + n * 7));
        written += line.len() as u64;
        out.write_all(line.as_bytes()).unwrap();
        n += 1;
    }
    out.flush().unwrap();
    drop(out);
    let config = format!(
        "[intel]\ndir = \"{}\"\n[[intel.list]]\nname = \"big\"\npath = \"big.txt\"\n",
        dir.display()
    );
    let file = pcap("synflood/stopddos_synflood_spoofed.pcap");
    let server = Server::start(
        &["replay", file.to_str().unwrap(), "--speed", "0"],
        Some(&config),
    );
    let Some(confined) = common::confine::Confinement::apply_or_skip(server.child.id(), "intel")
    else {
        return;
    };
    let entries = |s: &Server| {
        let v = s.get("/intel").json();
        (
            v["reloads"].as_u64().unwrap(),
            v["entries"].as_u64().unwrap(),
        )
    };
    let (reloads, count) = entries(&server);
    assert_eq!(count, u64::from(n));
    for round in 1..=2 {
        assert_eq!(server.post("/intel/reload").status, 200);
        let deadline = Instant::now() + Duration::from_secs(120);
        while entries(&server).0 < reloads + round {
            assert!(Instant::now() < deadline, "the reload did not finish");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(entries(&server).1, u64::from(n));
    let (rss, threads) = common::confine::rss_and_threads(server.child.id());
    eprintln!("{n} entries: RSS {} MB, {threads} threads", rss >> 20);
    // The set is 8 bytes an address.
    let bytes = server.get("/intel").json()["bytes"].as_u64().unwrap();
    assert!(bytes < 9 * u64::from(n), "{bytes} bytes");
    assert_eq!(confined.oom_kills(), 0);
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
