//! GeoIP against the databases' own records: every answer tapir gives must be what
//! `mmdblookup` (libmaxminddb, an independent reader) reads from the same file.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tapir::geo::{GeoConfig, GeoIp};

fn db(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/geoip")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-geoip.sh (scripts/install-deps.sh does)",
        path.display()
    );
    path
}

/// `mmdblookup --file db --ip ip path...`: the value, or `None` when absent.
fn mmdblookup(db: &Path, ip: &str, path: &[&str]) -> Option<String> {
    let out = Command::new("mmdblookup")
        .arg("--file")
        .arg(db)
        .args(["--ip", ip])
        .args(path)
        .output()
        .expect("mmdblookup (Debian package mmdb-bin)");
    let text = String::from_utf8_lossy(&out.stdout);
    // A value prints as `  "US" <utf8_string>` or `  37.751000 <double>`.
    let line = text.lines().map(str::trim).find(|l| l.contains(" <"))?;
    let value = line.rsplit_once(" <")?.0.trim().trim_matches('"');
    Some(value.to_string())
}

/// Public resolvers, CDNs and hosting ranges on several continents, IPv4 and IPv6.
const PUBLIC: &[&str] = &[
    "8.8.8.8",
    "1.1.1.1",
    "9.9.9.9",
    "151.101.1.69",
    "185.220.101.4",
    "45.33.32.156",
    "202.12.27.33",
    "196.216.2.1",
    "200.160.0.8",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "2400:cb00:2048:1::c629:d7a2",
];

fn open(path: PathBuf) -> GeoIp {
    GeoIp::open(&GeoConfig {
        db: Some(path),
        ..Default::default()
    })
    .expect("opening the database")
}

#[test]
fn the_country_database_agrees_with_mmdblookup() {
    let path = db("dbip-country.mmdb");
    let geo = open(path.clone());
    let mut found = 0;
    for ip in PUBLIC {
        let info = geo.lookup(ip.parse().unwrap());
        let want = mmdblookup(&path, ip, &["country_code"]);
        assert_eq!(info.place.country_code, want, "{ip}");
        found += usize::from(want.is_some());
    }
    assert!(
        found >= PUBLIC.len() - 2,
        "the database knows too few of them: {found}"
    );
}

#[test]
fn country_codes_get_their_iso_3166_names() {
    // Ground truth: Debian's iso-codes list, read here by serde_json on its own.
    let list: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/usr/share/iso-codes/json/iso_3166-1.json")
            .expect("iso-codes (scripts/install-deps.sh installs it)"),
    )
    .unwrap();
    let name_of = |code: &str| {
        let c = list["3166-1"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["alpha_2"] == code)
            .unwrap();
        c.get("common_name")
            .unwrap_or(&c["name"])
            .as_str()
            .unwrap()
            .to_string()
    };
    let path = db("dbip-country.mmdb");
    let geo = open(path.clone());
    for ip in PUBLIC {
        let info = geo.lookup(ip.parse().unwrap());
        if let Some(code) = mmdblookup(&path, ip, &["country_code"]) {
            assert_eq!(info.place.country, Some(name_of(&code)), "{ip}");
        }
    }
}

#[test]
fn the_geoip2_city_database_agrees_with_mmdblookup() {
    let path = db("dbip-city-lite-2023.mmdb");
    let geo = open(path.clone());
    let mut cities = 0;
    for ip in PUBLIC {
        let info = geo.lookup(ip.parse().unwrap());
        let p = &info.place;
        cities += usize::from(p.city.is_some() && p.latitude.is_some());
        assert_eq!(
            p.country_code,
            mmdblookup(&path, ip, &["country", "iso_code"]),
            "{ip}"
        );
        assert_eq!(
            p.country,
            mmdblookup(&path, ip, &["country", "names", "en"]),
            "{ip}"
        );
        assert_eq!(
            p.city,
            mmdblookup(&path, ip, &["city", "names", "en"]),
            "{ip}"
        );
        let lat =
            mmdblookup(&path, ip, &["location", "latitude"]).map(|v| v.parse::<f64>().unwrap());
        match (p.latitude, lat) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-4, "{ip}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{ip}"),
        }
    }
    assert!(cities >= PUBLIC.len() - 2, "too few cities found: {cities}");
}

#[test]
fn special_ranges_are_labelled_and_not_looked_up() {
    let geo = open(db("dbip-country.mmdb"));
    for (ip, scope) in [
        ("192.168.1.10", "private"),
        ("10.1.2.3", "private"),
        ("127.0.0.1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("203.0.113.50", "documentation"),
        ("fe80::1", "link-local"),
        ("fd12::1", "private"),
    ] {
        let info = geo.lookup(ip.parse::<IpAddr>().unwrap());
        assert_eq!(info.place.scope, Some(scope), "{ip}");
        assert_eq!(info.place.country_code, None, "{ip}");
        assert!(info.place.reason.is_some(), "{ip}");
    }
    let status = geo.status();
    assert_eq!(status.lookups, 8);
}

#[test]
fn the_server_answers_geo_from_the_configured_database() {
    let path = db("dbip-city-lite-2023.mmdb");
    let config = format!("[geoip]\ndb = \"{}\"\n", path.display());
    let tiny = common::pcap("icmp/cs_icmp_echo.pcapng");
    let server = common::server::Server::start(
        &["replay", tiny.to_str().unwrap(), "--speed", "0"],
        Some(&config),
    );
    let answer = server.get("/geo?ip=8.8.8.8").json();
    assert_eq!(answer["ip"], "8.8.8.8");
    assert_eq!(
        answer["country_code"].as_str(),
        mmdblookup(&path, "8.8.8.8", &["country", "iso_code"]).as_deref()
    );
    // Values, not only keys: 8.8.8.8 has a country and coordinates in DB-IP Lite.
    assert!(
        answer["country"].as_str().is_some_and(|c| !c.is_empty()),
        "{answer}"
    );
    assert!(answer.get("city").is_some(), "{answer}");
    for key in ["latitude", "longitude"] {
        assert!(answer[key].as_f64().is_some(), "{key}: {answer}");
    }
    let private = server.get("/geo?ip=192.168.100.1").json();
    assert_eq!(private["scope"], "private");
    server.stop();

    // No database: everything works, and /geo says why it has no answer.
    let server = common::server::Server::start(
        &["replay", tiny.to_str().unwrap(), "--speed", "0"],
        Some("[geoip]\nenabled = false\n"),
    );
    let answer = server.get("/geo?ip=8.8.8.8");
    assert_eq!(answer.status, 200);
    assert!(
        answer.json()["reason"]
            .as_str()
            .unwrap()
            .contains("switched off")
    );
    assert_eq!(server.get("/top-talkers?with_geo=true").status, 200);
    server.stop();
}

/// History by country: each host's traffic and flows are summed under the country
/// `mmdblookup` gives its address; private addresses and addresses the database does not
/// place are in no country.
#[test]
fn history_by_country_sums_each_hosts_traffic_under_its_country() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use tapir::model::traffic::{HostCounters, MinuteSnapshot};
    use tapir::store::rollup::{By, HistoryQuery, Metric};
    use tapir::store::{Store, StoreConfig};

    let path = db("dbip-country.mmdb");
    let geo = Arc::new(open(path.clone()));
    let dir = common::tempdir();
    let mut store = Store::open(&dir, &StoreConfig::default()).unwrap();
    let locate = geo.clone();
    store.set_locate(Arc::new(move |ip| locate.country_code(ip)));

    let minute0 = 1_767_225_600; // 2026-01-01T00:00:00Z
    let local: IpAddr = "192.168.1.20".parse().unwrap();
    let mut want_bytes: BTreeMap<String, u64> = BTreeMap::new();
    let mut want_flows: BTreeMap<String, u64> = BTreeMap::new();
    let mut flows = Vec::new();
    for m in 0..3i64 {
        let mut hosts = vec![(local, HostCounters::default())];
        for (i, ip) in PUBLIC.iter().enumerate() {
            let sent = 1000 * (i as u64 + 1) + m as u64;
            let received = 7 * (i as u64 + 1);
            hosts.push((
                ip.parse().unwrap(),
                HostCounters {
                    bytes_sent: sent,
                    bytes_received: received,
                    packets_sent: 1,
                    packets_received: 1,
                },
            ));
            hosts[0].1.bytes_sent += received;
            hosts[0].1.bytes_received += sent;
            if let Some(cc) = mmdblookup(&path, ip, &["country_code"]) {
                *want_bytes.entry(cc.clone()).or_default() += sent + received;
                *want_flows.entry(cc).or_default() += 1;
            }
            let mut flow = tapir::store::load::synthetic_flow(((m as u64) << 8) | i as u64);
            flow.src = local;
            flow.dst = ip.parse().unwrap();
            flow.last_seen = tapir::packet::Timestamp((minute0 + m * 60 + 30) * 1_000_000_000);
            flows.push(flow);
        }
        store
            .insert_snapshots(&[MinuteSnapshot {
                timestamp: minute0 + m * 60,
                hosts,
                ..Default::default()
            }])
            .unwrap();
    }
    store.insert_flows(&flows).unwrap();
    store.flush().unwrap();
    assert!(want_bytes.len() >= 4, "too few countries: {want_bytes:?}");

    let history = |metric| {
        let h = store
            .history(&HistoryQuery {
                metric,
                by: By::Country,
                key: None,
                from: Some(minute0),
                to: Some(minute0 + 3 * 60),
                step: None,
            })
            .unwrap();
        h.series
            .into_iter()
            .map(|s| (s.key, s.total))
            .collect::<BTreeMap<String, u64>>()
    };
    assert_eq!(history(Metric::Bytes), want_bytes);
    assert_eq!(history(Metric::Flows), want_flows);
    let _ = std::fs::remove_dir_all(&dir);
}
