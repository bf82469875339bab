//! The device inventory and the LAN rules on the shared captures. Expected values come from
//! tshark (source MACs, live) and the MANIFEST's device facts (tshark's DHCP, mDNS, NBNS
//! and LLMNR fields), and vendors from the IEEE registry files themselves, read here with a
//! lookup of the test's own.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use common::{analyze, cannot_run, manifest, pcap};
use serde_json::Value;

/// Captures whose device facts the MANIFEST gives (`hosts`).
fn device_captures() -> Vec<(String, Value)> {
    manifest()
        .into_iter()
        .filter_map(|e| {
            let facts = e.get("facts")?.clone();
            let devices = facts.get("devices").cloned().unwrap_or(facts);
            devices.get("hosts")?;
            Some((e["path"].as_str()?.to_string(), devices))
        })
        .collect()
}

/// The devices `analyze` lists, by MAC.
fn devices_of(file: &Path) -> (HashMap<String, Value>, Value) {
    let (code, summary, stderr) = analyze(file, &[]);
    assert_eq!(code, Some(0), "{}: {stderr}", file.display());
    let summary = summary.expect("a summary");
    let devices = summary["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no devices list", file.display()))
        .iter()
        .map(|d| (d["mac"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    (devices, summary)
}

/// Every Ethernet source address tshark reads in `file` that a station can send from (not
/// group, not all zeros), the innermost one of a bridged tunnel included.
fn tshark_source_macs(file: &Path) -> Option<BTreeSet<String>> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"])
        .args(["-e", "eth.src"])
        .output()
        .ok()?;
    assert!(out.status.success(), "tshark failed on {}", file.display());
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .flat_map(|l| l.split(','))
            .filter(|m| m.len() == 17 && *m != "00:00:00:00:00:00")
            .filter(|m| u8::from_str_radix(&m[..2], 16).unwrap() & 1 == 0)
            .map(str::to_string)
            .collect(),
    )
}

/// The IEEE registries (Debian's ieee-data): prefix (hex, upper case) → organisation.
struct Registry(HashMap<String, String>);

impl Registry {
    fn load() -> Registry {
        let mut map = HashMap::new();
        for file in ["oui.csv", "mam.csv", "oui36.csv", "iab.csv"] {
            let path = Path::new("/usr/share/ieee-data").join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (install ieee-data)", path.display()));
            for line in text.lines().skip(1) {
                // Registry,Assignment,"Organization Name",Address: the name may be quoted.
                let mut fields = Vec::new();
                let (mut field, mut quoted) = (String::new(), false);
                for c in line.chars() {
                    match c {
                        '"' => quoted = !quoted,
                        ',' if !quoted => fields.push(std::mem::take(&mut field)),
                        c => field.push(c),
                    }
                }
                fields.push(field);
                if fields.len() >= 3 {
                    map.insert(
                        fields[1].trim().to_uppercase(),
                        fields[2].trim().to_string(),
                    );
                }
            }
        }
        Registry(map)
    }

    /// The organisation of the longest registered prefix of `mac` (36, 28, then 24 bits).
    fn vendor(&self, mac: &str) -> Option<&str> {
        let hex: String = mac.split(':').collect::<String>().to_uppercase();
        [9, 7, 6]
            .into_iter()
            .find_map(|n| self.0.get(&hex[..n]).map(String::as_str))
    }
}

#[test]
fn every_source_mac_becomes_a_device_with_its_registered_vendor() {
    let registry = Registry::load();
    let mut checked = 0;
    for (path, facts) in device_captures() {
        let file = pcap(&path);
        let Some(sources) = tshark_source_macs(&file) else {
            return cannot_run("tshark is not installed");
        };
        let (devices, _) = devices_of(&file);
        for mac in &sources {
            let d = devices
                .get(mac)
                .unwrap_or_else(|| panic!("{path}: source MAC {mac} is not a device"));
            assert_eq!(
                d["vendor"].as_str(),
                registry.vendor(mac),
                "{path}: vendor of {mac}"
            );
            let randomized = u8::from_str_radix(&mac[..2], 16).unwrap() & 2 != 0;
            assert_eq!(d["randomized"], randomized, "{path}: {mac}");
            checked += 1;
        }
        // The MANIFEST's vendors are the registry's too (where the MAC has one).
        for h in facts["hosts"].as_array().unwrap() {
            let mac = h["mac"].as_str().unwrap();
            if let (Some(d), Some(v)) = (devices.get(mac), h["vendor"].as_str())
                && !v.starts_with("locally administered")
            {
                assert_eq!(d["vendor"].as_str(), Some(v), "{path}: {mac}");
            }
        }
    }
    assert!(checked > 150, "only {checked} MACs checked");
}

/// Names as the MANIFEST gives them (NetBIOS names carry their suffix, `NAME<00>`);
/// `relayed`: the capture's DHCPv6 arrives through a relay agent.
fn expected_names(host: &Value, relayed: bool) -> BTreeSet<String> {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut names = BTreeSet::new();
    names.extend(list(&host["dhcp"]["hostname"]));
    names.extend(list(&host["dhcp"]["fqdn"]));
    // tshark ends a fully qualified DHCPv6 name (one with the root label) with a dot. A
    // relayed SOLICIT's name is the client's, not the relay agent's that sent the frame (as
    // the MANIFEST, going by frames, has it): only the station's own messages count.
    names.extend(
        list(&host["dhcpv6"]["fqdn"])
            .into_iter()
            .filter(|_| !relayed)
            .map(|n| n.trim_end_matches('.').to_string()),
    );
    names.extend(list(&host["mdns"]["hostnames"]));
    names.extend(list(&host["llmnr"]["answered"]));
    for key in ["registered", "answered"] {
        for n in list(&host["nbns"][key]) {
            // The workstation and server names, not the wildcard.
            if let Some(name) = n.strip_suffix("<00>").or_else(|| n.strip_suffix("<20>"))
                && !name.is_empty()
                && !name.starts_with('*')
            {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn host_names_and_dhcp_facts_equal_tsharks() {
    let mut names_checked = 0;
    let mut fingerprints = 0;
    for (path, facts) in device_captures() {
        let (devices, _) = devices_of(&pcap(&path));
        let relayed = facts["dhcpv6"]["messages"].get("RELAY-FORW").is_some();
        for h in facts["hosts"].as_array().unwrap() {
            let mac = h["mac"].as_str().unwrap();
            // The DHCP flood's MANIFEST entry names the MAC's text ("de:ad:" as bytes), not
            // the frames' de:ad:be:ef:aa:bb; and no station sends from the all-zero MAC
            // (capture2's duplicated offers do).
            if mac == "64:65:3a:61:64:3a" || mac == "00:00:00:00:00:00" {
                continue;
            }
            let d = devices
                .get(mac)
                .unwrap_or_else(|| panic!("{path}: host {mac} is not a device"));
            let have: BTreeSet<String> = d["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_string())
                .collect();
            for name in expected_names(h, relayed) {
                assert!(
                    have.contains(&name),
                    "{path}: {mac} lacks the name {name:?}; it has {have:?}"
                );
                names_checked += 1;
            }
            if let Some(list) = h["dhcp"]["param_request_list"].as_array() {
                let want: Vec<String> = list.iter().map(|n| n.to_string()).collect();
                assert_eq!(
                    d["dhcp_fingerprint"].as_str(),
                    Some(want.join(",").as_str()),
                    "{path}: option 55 of {mac}"
                );
                fingerprints += 1;
            }
            if let Some(class) = h["dhcp"]["vendor_class"].as_array().and_then(|c| c.last()) {
                assert_eq!(&d["vendor_class"], class, "{path}: option 60 of {mac}");
            }
            for ip in h["local_ips"].as_array().into_iter().flatten() {
                let ip = ip.as_str().unwrap();
                assert!(
                    d["addresses"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| a["ip"] == ip),
                    "{path}: {mac} lacks its address {ip}"
                );
            }
        }
    }
    assert!(names_checked > 60, "only {names_checked} names checked");
    assert!(
        fingerprints > 40,
        "only {fingerprints} fingerprints checked"
    );
}

/// The LAN rules' alerts of a capture.
fn lan_alerts(path: &str) -> Vec<Value> {
    let (code, summary, stderr) = analyze(&pcap(path), &[]);
    assert_eq!(code, Some(0), "{path}: {stderr}");
    lan_alerts_of(&summary.unwrap())
}

/// The `arp_spoofing` and `rogue_dhcp` alerts of an analysis summary.
fn lan_alerts_of(summary: &Value) -> Vec<Value> {
    summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            matches!(
                a["alert_type"].as_str(),
                Some("arp_spoofing" | "rogue_dhcp")
            )
        })
        .cloned()
        .collect()
}

#[test]
fn arp_spoofing_raises_one_alert_naming_the_address_and_both_macs() {
    for e in manifest() {
        let path = e["path"].as_str().unwrap();
        if !matches!(
            path,
            "other/sgr_na_arpSpoofing.pcap" | "other/cs_arppoison.pcapng"
        ) {
            continue;
        }
        let arp = &e["facts"]["devices"]["arp"];
        // The spoofer: the MAC that claims several addresses (with replies nobody asked for).
        let claims = arp["macs_claiming_several_ips"].as_object().unwrap();
        assert_eq!(claims.len(), 1, "{path}");
        let (spoofer, addresses) = claims.iter().next().unwrap();
        let alerts = lan_alerts(path);
        assert_eq!(alerts.len(), 1, "{path}: {alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a["alert_type"], "arp_spoofing");
        assert_eq!(a["severity"], "high");
        let address = a["evidence"]["address"].as_str().unwrap();
        assert!(
            addresses.as_array().unwrap().iter().any(|x| x == address),
            "{path}: {address} is not one the spoofer claimed"
        );
        assert_eq!(a["target"], address);
        let macs: Vec<&str> = a["evidence"]["macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(macs[0], spoofer.as_str(), "{path}");
        assert!(
            macs.len() >= 2,
            "{path}: the other MAC is missing: {macs:?}"
        );
        assert!(
            a["description"]
                .as_str()
                .unwrap()
                .contains(spoofer.as_str())
        );
    }
    // The MANIFEST's words: cs_arppoison's spoofed address is the gateway's.
    let alerts = lan_alerts("other/cs_arppoison.pcapng");
    assert_eq!(alerts[0]["target"], "172.16.0.1");
    assert_eq!(alerts[0]["source_ip"], "172.16.0.105");
    let macs = alerts[0]["evidence"]["macs"].as_array().unwrap();
    assert!(
        macs.iter().any(|m| m == "00:21:70:c0:56:f0"),
        "the victim: {macs:?}"
    );
}

#[test]
fn rogue_dhcp_only_when_a_second_server_answers() {
    for e in manifest() {
        let path = e["path"].as_str().unwrap().to_string();
        let facts = &e["facts"];
        let dhcp = facts["devices"]
            .get("dhcp")
            .or_else(|| facts.get("dhcp"))
            .cloned();
        let Some(dhcp) = dhcp else { continue };
        let Some(servers) = dhcp["servers"].as_array() else {
            continue;
        };
        // Servers in the order they first answered; one identifier is one server, and so
        // is one MAC answering for several subnets.
        let mut servers: Vec<&Value> = servers.iter().collect();
        servers.sort_by(|a, b| a["first_seen"].as_str().cmp(&b["first_seen"].as_str()));
        let first = servers
            .first()
            .map(|s| (s["server_id"].clone(), s["mac"].clone()));
        let rogue: BTreeSet<String> = servers
            .iter()
            .filter(|s| {
                first
                    .as_ref()
                    .is_none_or(|(id, mac)| s["server_id"] != *id && s["mac"] != *mac)
            })
            .map(|s| s["server_id"].as_str().unwrap().to_string())
            .collect();
        let alerts: BTreeSet<String> = lan_alerts(&path)
            .iter()
            .filter(|a| a["alert_type"] == "rogue_dhcp")
            .map(|a| a["evidence"]["server"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(alerts, rogue, "{path}");
    }
    // The traps: floods from one server, and one server's offers duplicated from a second
    // (all-zero) MAC.
    for path in [
        "other/suricata_dhcp_request_flood.pcap",
        "other/zeek_dhcp_flood.pcap",
        "devices/mercury_capture2_cisco_phones.pcap",
        "mixed_realistic/honeynet_suspicious_time.pcap",
    ] {
        assert!(lan_alerts(path).is_empty(), "{path}");
    }
    let many = lan_alerts("devices/malcolm_dhcp_merged_many_servers.pcap");
    assert_eq!(
        many.len(),
        7,
        "nine (server, MAC) pairs, eight identifiers, one learned"
    );
}

#[test]
fn no_benign_capture_raises_arp_spoofing_or_rogue_dhcp() {
    // The positives, the merged captures that hold several DHCP servers on purpose, and
    // the fuzzed and concatenated ones are not benign.
    let not_benign = [
        "other/sgr_na_arpSpoofing.pcap",
        "other/cs_arppoison.pcapng",
        "devices/malcolm_dhcp_merged_many_servers.pcap",
        "devices/mercury_emix_enterprise.pcap",
    ];
    let mut checked = 0;
    for e in manifest() {
        let path = e["path"].as_str().unwrap();
        let size = e["size"].as_u64().unwrap_or(0);
        if not_benign.contains(&path)
            || path.starts_with("malformed/")
            || path.starts_with("derived/")
            || size > 8 << 20
        {
            continue;
        }
        let (code, summary, _) = analyze(&pcap(path), &[]);
        let Some(summary) = summary.filter(|_| code == Some(0)) else {
            continue;
        };
        let lan = lan_alerts_of(&summary);
        assert!(lan.is_empty(), "{path}: {lan:#?}");
        checked += 1;
    }
    assert!(checked > 80, "only {checked} captures checked");
}

#[test]
fn the_api_lists_devices_and_labels_survive_a_restart_but_not_a_viewer() {
    use common::server::{Server, create_token};
    const WIN10: &str = "devices/suricata_two_win10_dhcp_dhcpv6_llmnr.pcap";
    // DESKTOP-V1FA0UQ (00:0c:29:61:f5:5f), 192.168.199.133, by the MANIFEST.
    const MAC: &str = "00:0c:29:61:f5:5f";
    let dir = common::tempdir();
    let viewer = create_token(&dir, "viewer", "viewer");
    let file = pcap(WIN10);
    let args = ["replay", file.to_str().unwrap(), "--speed", "0"];
    let server = Server::start_in(dir.clone(), &args, None);
    server.wait_replayed();
    let list = server.get("/devices").json();
    let macs: BTreeSet<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mac"].as_str().unwrap())
        .collect();
    for mac in [
        "00:50:56:c0:00:01",
        MAC,
        "00:50:56:f9:22:2b",
        "00:0c:29:03:df:ad",
    ] {
        assert!(macs.contains(mac), "{mac} in {macs:?}");
    }
    let found = server.get("/devices?q=desktop&sort=name").json();
    let names: Vec<&str> = found["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["DESKTOP-2AEFM7G", "DESKTOP-V1FA0UQ"]);
    assert_eq!(server.get("/devices?state=bogus").status, 400);
    assert_eq!(server.get("/devices/not-a-mac").status, 400);
    assert_eq!(server.get("/devices/02:00:00:00:00:01").status, 404);

    let one = server.get(&format!("/devices/{MAC}")).json();
    assert_eq!(one["vendor"], "VMware, Inc.");
    assert_eq!(
        one["dhcp_fingerprint"],
        "1,3,6,15,31,33,43,44,46,47,121,249,252"
    );
    assert!(
        one["alerts"].is_array() && !one["recent_flows"].as_array().unwrap().is_empty(),
        "{one}"
    );
    assert!(one["flows"].as_u64().unwrap() > 0, "flows it opened: {one}");

    let json = [("Content-Type", "application/json")];
    let body = r#"{"label": "Lab PC", "known": true}"#;
    let as_viewer = format!("Bearer {viewer}");
    let denied = server.send(
        "POST",
        &format!("/devices/{MAC}"),
        &[json[0], ("Authorization", &as_viewer)],
        Some(body),
    );
    assert_eq!(denied.status, 403, "{}", denied.body);
    let admin = server.bearer();
    let set = server.send(
        "POST",
        &format!("/devices/{MAC}"),
        &[json[0], ("Authorization", &admin)],
        Some(body),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["name"], "Lab PC");
    // Top talkers and flows carry the device's label beside its address.
    let flows = server.get("/flows?limit=1000").json();
    let labelled = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["src_device"] == "Lab PC" || f["dst_device"] == "Lab PC");
    let talkers = server.get("/top-talkers?limit=50").json();
    let talker = talkers
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["device"] == "Lab PC");
    assert!(labelled || talker, "no flow or talker names the device");
    let (code, _) = server.stop_keeping_db();
    assert_eq!(code, Some(0));

    // Another capture on the same database: the device, its label and mark are still there.
    let other = pcap("devices/cs_dhcp_nolease_initialization.pcapng");
    let args = ["replay", other.to_str().unwrap(), "--speed", "0"];
    let again = Server::start_in(dir, &args, None);
    again.wait_replayed();
    let one = again.get(&format!("/devices/{MAC}")).json();
    assert_eq!(one["label"], "Lab PC", "{one}");
    assert_eq!(one["known"], true);
    assert_eq!(one["names"][0]["name"], "DESKTOP-V1FA0UQ");
    assert_eq!(again.stop().0, Some(0));
}

#[test]
fn devices_go_to_eve_as_device_events_when_first_seen_and_changed() {
    let dir = common::tempdir();
    let eve = dir.join("eve.json");
    let config = dir.join("tapir.toml");
    std::fs::write(
        &config,
        format!(
            "[export.eve]\nfile = \"{}\"\nflows = false\nalerts = false\n",
            eve.display()
        ),
    )
    .unwrap();
    let file = pcap("devices/ndpi_telegram_mdns_dhcp.pcap");
    let (code, summary, stderr) = analyze(&file, &["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let events = common::json_lines(&eve);
    assert!(
        events.iter().all(|e| e["event_type"] == "device"),
        "only device events"
    );
    let devices = summary.unwrap()["devices"].as_array().unwrap().clone();
    for d in &devices {
        let mac = d["mac"].as_str().unwrap();
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["device"]["mac"] == mac)
            .collect();
        assert!(!mine.is_empty(), "no device event for {mac}");
        // The last event of a station says what the inventory knows at the end.
        let last = mine.last().unwrap();
        assert_eq!(last["device"]["vendor"], d["vendor"], "{mac}");
        assert_eq!(last["device"]["name"], d["name"], "{mac}");
        assert!(
            last["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2020-05-06T"),
            "{last}"
        );
        for key in [
            "addresses",
            "names",
            "first_seen",
            "last_seen",
            "randomized",
        ] {
            assert!(!last["device"][key].is_null(), "{key} in {last}");
        }
    }
    // The iPad (MANIFEST: Gabrieles-iPad.local over mDNS).
    assert!(events.iter().any(|e| {
        e["device"]["mac"] == "8c:fe:57:23:37:e4"
            && e["device"]["names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["name"] == "Gabrieles-iPad.local" && n["source"] == "mdns")
    }));
}

/// Bytes (frame lengths) each MAC sent, and received since it first sent (a station is
/// known from its first frame on), as tshark reads `file`.
fn tshark_bytes_by_mac(file: &Path) -> Option<HashMap<String, (u64, u64)>> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "occurrence=f"])
        .args(["-e", "eth.src", "-e", "eth.dst", "-e", "frame.len"])
        .output()
        .ok()?;
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let mut bytes: HashMap<String, (u64, u64)> = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let len: u64 = f[2].parse().unwrap();
        bytes.entry(f[0].to_string()).or_default().0 += len;
        if let Some(seen) = bytes.get_mut(f[1]) {
            seen.1 += len;
        }
    }
    Some(bytes)
}

#[test]
fn each_devices_usage_equals_the_bytes_tshark_counts_for_its_mac() {
    for path in [
        "devices/suricata_two_win10_dhcp_dhcpv6_llmnr.pcap",
        "devices/ndpi_telegram_mdns_dhcp.pcap",
        "devices/ndpi_iphone.pcap",
        "devices/pcpp_llmnr_nbns.pcap",
    ] {
        let file = pcap(path);
        let Some(want) = tshark_bytes_by_mac(&file) else {
            return cannot_run("tshark is not installed");
        };
        let (devices, _) = devices_of(&file);
        for (mac, d) in &devices {
            let (sent, received) = want[mac];
            assert_eq!(d["bytes_sent"], sent, "{path}: {mac} sent");
            assert_eq!(d["bytes_received"], received, "{path}: {mac} received");
        }
    }
}

#[test]
fn a_devices_history_sums_to_what_tshark_counts_for_its_mac() {
    use common::server::Server;
    const MAC: &str = "00:0c:29:61:f5:5f";
    let file = pcap("devices/suricata_two_win10_dhcp_dhcpv6_llmnr.pcap");
    let Some(want) = tshark_bytes_by_mac(&file) else {
        return cannot_run("tshark is not installed");
    };
    let (sent, received) = want[MAC];
    let server = Server::start(&["replay", file.to_str().unwrap(), "--speed", "0"], None);
    server.wait_replayed();
    // The minutes reach the store when the replay drains; rollups are written each flush.
    std::thread::sleep(std::time::Duration::from_secs(2));
    // The capture's own range (MANIFEST: 668 s of 2016-10-16), so minutes are the tier.
    let device = server.get(&format!("/devices/{MAC}")).json();
    let from = device["first_seen"].as_f64().unwrap() as i64 - 60;
    let to = device["last_seen"].as_f64().unwrap() as i64 + 60;
    let history = server
        .get(&format!(
            "/history?by=device&key={MAC}&metric=bytes&from={from}&to={to}"
        ))
        .json();
    assert_eq!(history["tier"], "minute", "{history}");
    assert_eq!(history["by"], "device");
    assert_eq!(history["series"][0]["key"], MAC);
    assert_eq!(history["series"][0]["total"], sent + received, "{history}");
    // The capture spans 11 minutes: a point per minute it was active in.
    let points = history["series"][0]["points"].as_array().unwrap();
    assert!(points.len() >= 3, "{history}");
    // The device page's history is the last day's, in hours.
    let page = server.get(&format!("/devices/{MAC}")).json();
    assert_eq!(page["history"]["series"][0]["total"], sent + received);
    assert_eq!(server.get("/history?by=device&key=nonsense").status, 400);
    server.stop();
}

#[test]
fn a_devices_history_is_written_while_the_capture_runs_not_only_when_it_ends() {
    use common::server::Server;
    const MAC: &str = "00:0c:29:61:f5:5f";
    let file = pcap("devices/suricata_two_win10_dhcp_dhcpv6_llmnr.pcap");
    let Some(want) = tshark_bytes_by_mac(&file) else {
        return cannot_run("tshark is not installed");
    };
    let (sent, received) = want[MAC];
    // MANIFEST: 668 s of 2016-10-16; at 30x the replay takes about 22 s.
    let server = Server::start(&["replay", file.to_str().unwrap(), "--speed", "30"], None);
    let started = std::time::Instant::now();
    let query = format!("/history?by=device&key={MAC}&metric=bytes&from=1476576000&to=1476662400");
    let total = loop {
        let history = server.get(&query).json();
        let total = history["series"][0]["total"].as_u64().unwrap_or(0);
        let state = server.get("/debug").json()["capture"]["sources"]["base"]["state"].clone();
        if total > 0 {
            // Seen before the replay drained: the minutes went to the store as they closed.
            assert_ne!(
                state, "finished",
                "history appeared only after the replay ended"
            );
            break total;
        }
        assert_ne!(state, "finished", "no device history while the replay ran");
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(total < sent + received, "{total} of {}", sent + received);
    server.wait_replayed();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let history = server.get(&query).json();
    assert_eq!(history["series"][0]["total"], sent + received, "{history}");
    server.stop();
}

#[test]
fn a_device_page_ranks_the_servers_its_station_named() {
    use common::server::Server;
    // The iPhone of ndpi_iphone (MANIFEST: c4:61:8b:35:82:a9, 192.168.2.17).
    const IPHONE: &str = "c4:61:8b:35:82:a9";
    let file = pcap("devices/ndpi_iphone.pcap");
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(&file)
        .args(["-Y", "tls.handshake.type == 1 && ip.src == 192.168.2.17"])
        .args(["-T", "fields", "-e", "tls.handshake.extensions_server_name"])
        .output();
    let Ok(out) = out else {
        return cannot_run("tshark is not installed");
    };
    let snis: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let server = Server::start(&["replay", file.to_str().unwrap(), "--speed", "0"], None);
    server.wait_replayed();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let page = server.get(&format!("/devices/{IPHONE}")).json();
    let destinations: BTreeSet<String> = page["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap().to_string())
        .collect();
    // Ten rows at most, every one a server name its ClientHellos gave.
    assert_eq!(
        destinations.len(),
        snis.len().min(10),
        "{destinations:?} of {snis:?}"
    );
    assert!(
        destinations.is_subset(&snis),
        "{destinations:?} of {snis:?}"
    );
    assert!(
        page["apps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "icloud"),
        "{}",
        page["apps"]
    );
    assert!(!page["top_peers"].as_array().unwrap().is_empty());
    server.stop();
}
