//! Tunnels, end to end: on every encapsulated capture in ../shared/pcaps, the flows tapir
//! records (the inner conversations and the carriers) agree with tshark's conversation
//! statistics, which tshark computes at every layer; equal inner tuples in two VXLAN VNIs
//! stay apart; hostile encapsulations are counted by reason.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{analyze, cannot_run, flows_of, pcap, tempdir};

/// A TCP or UDP conversation: IP protocol and both endpoints, in a fixed order.
type Endpoints = (u8, (String, u16), (String, u16));

/// One encapsulated capture and what it must show: whether tshark must look for Teredo by
/// shape, the carrier flows (kind, outer pair, packets) and the packets per encapsulation.
struct Case {
    capture: &'static str,
    teredo_by_shape: bool,
    carriers: &'static [(&'static str, (&'static str, &'static str), u64)],
    encapsulations: &'static [(&'static str, u64)],
}

/// Frames per conversation as tshark counts them: TCP and UDP conversations keyed by
/// protocol and both endpoints (in a fixed order), IP conversations by both addresses.
#[derive(Debug, Default, PartialEq)]
struct Conversations {
    transport: BTreeMap<Endpoints, u64>,
    ip: BTreeMap<(String, String), u64>,
}

fn ordered<T: Ord>(a: T, b: T) -> (T, T) {
    if a <= b { (a, b) } else { (b, a) }
}

/// `tshark -q -z conv,tcp -z conv,udp -z conv,ip -z conv,ipv6` on `file`, parsed. `None`
/// when tshark is not installed.
fn tshark(file: &Path, teredo_by_shape: bool) -> Option<Conversations> {
    let mut cmd = Command::new("tshark");
    // Frame by frame, as tapir counts: no reassembly of IP fragments.
    cmd.arg("-n").arg("-r").arg(file).arg("-q");
    cmd.args(["-o", "ip.defragment:FALSE"]);
    if teredo_by_shape {
        cmd.args(["-o", "teredo.heuristic_teredo:TRUE"]);
    }
    for table in ["tcp", "udp", "ip", "ipv6"] {
        cmd.args(["-z", &format!("conv,{table}")]);
    }
    let out = cmd.output().ok()?;
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut conv = Conversations::default();
    let mut table = "";
    for line in text.lines() {
        if line.ends_with("Conversations") {
            table = line.split_whitespace().next().unwrap_or("");
            continue;
        }
        let Some((a, rest)) = line.split_once("<->") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // B, then frames and bytes (value and unit) each way.
        let frames = fields[1].parse::<u64>().unwrap() + fields[4].parse::<u64>().unwrap();
        let (a, b) = (a.trim(), fields[0]);
        let endpoint = |s: &str| {
            let (ip, port) = s.rsplit_once(':').unwrap();
            (ip.to_string(), port.parse::<u16>().unwrap())
        };
        match table {
            "TCP" | "UDP" => {
                let proto = if table == "TCP" { 6 } else { 17 };
                let (x, y) = ordered(endpoint(a), endpoint(b));
                *conv.transport.entry((proto, x, y)).or_default() += frames;
            }
            "IPv4" | "IPv6" => {
                *conv
                    .ip
                    .entry(ordered(a.to_string(), b.to_string()))
                    .or_default() += frames;
            }
            other => panic!("unexpected tshark table {other:?}"),
        }
    }
    later_fragments(file, &mut conv);
    Some(conv)
}

/// tshark counts a later IPv4 fragment (no transport header) in the IP conversation only;
/// a flow counts it with its first fragment, whose ports it shares. Adds each later
/// fragment of the outermost IP layer to the transport conversation of its first fragment,
/// both read from tshark's per-frame fields.
fn later_fragments(file: &Path, conv: &mut Conversations) {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args([
            "-o",
            "ip.defragment:FALSE",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
        ])
        .args([
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ip.id",
            "-e",
            "ip.frag_offset",
        ])
        .args(["-e", "ip.proto", "-e", "tcp.srcport", "-e", "tcp.dstport"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut trains = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 || f[0].is_empty() || f[3].is_empty() {
            continue;
        }
        let train = (f[0].to_string(), f[1].to_string(), f[2].to_string());
        let proto: u8 = f[4].parse().unwrap();
        let ports = match proto {
            6 => (f[5], f[6]),
            17 => (f[7], f[8]),
            _ => continue,
        };
        if f[3] == "0" {
            if let (Ok(s), Ok(d)) = (ports.0.parse::<u16>(), ports.1.parse::<u16>()) {
                let (x, y) = ordered((f[0].to_string(), s), (f[1].to_string(), d));
                trains.insert(train, (proto, x, y));
            }
        } else if let Some(key) = trains.get(&train) {
            *conv.transport.entry(key.clone()).or_default() += 1;
        }
    }
}

/// The same statistics from tapir's flow records: every flow (inner or carrier) counts
/// toward its address pair, TCP and UDP flows also toward their endpoints.
fn ours(flows: &[serde_json::Value]) -> Conversations {
    let mut conv = Conversations::default();
    for f in flows {
        let packets = f["packet_count"].as_u64().unwrap();
        let ip = |k: &str| f[k].as_str().unwrap().to_string();
        let port = |k: &str| f[k].as_u64().unwrap() as u16;
        let proto = f["ip_proto"].as_u64().unwrap() as u8;
        if proto == 6 || proto == 17 {
            let (x, y) = ordered(
                (ip("src_ip"), port("src_port")),
                (ip("dst_ip"), port("dst_port")),
            );
            *conv.transport.entry((proto, x, y)).or_default() += packets;
        }
        *conv
            .ip
            .entry(ordered(ip("src_ip"), ip("dst_ip")))
            .or_default() += packets;
    }
    conv
}

/// The carrier flows of `flows`: (kind, ordered addresses) → packets.
fn carriers(flows: &[serde_json::Value]) -> BTreeMap<(String, (String, String)), u64> {
    let mut out = BTreeMap::new();
    for f in flows.iter().filter(|f| f.get("carries").is_some()) {
        let pair = ordered(
            f["src_ip"].as_str().unwrap().to_string(),
            f["dst_ip"].as_str().unwrap().to_string(),
        );
        *out.entry((f["carries"].as_str().unwrap().to_string(), pair))
            .or_default() += f["packet_count"].as_u64().unwrap();
    }
    out
}

fn pair(a: &str, b: &str) -> (String, String) {
    ordered(a.to_string(), b.to_string())
}

#[test]
fn inner_conversations_and_carriers_agree_with_tshark() {
    // The carrier figures are tshark's IP conversation of the outer pair (checked below).
    let cases = [
        Case {
            capture: "other/zeek_gre_sample.pcap",
            teredo_by_shape: false,
            carriers: &[("gre", ("172.27.1.66", "66.59.109.137"), 40)],
            encapsulations: &[("gre", 40)],
        },
        Case {
            capture: "other/zeek_vxlan.pcap",
            teredo_by_shape: false,
            carriers: &[("vxlan", ("192.168.56.11", "192.168.56.12"), 10)],
            encapsulations: &[("vxlan", 10)],
        },
        Case {
            capture: "other/zeek_geneve.pcap",
            teredo_by_shape: false,
            carriers: &[("geneve", ("20.0.0.1", "20.0.0.2"), 6)],
            encapsulations: &[("geneve", 6)],
        },
        // Despite its name, GRE transparent Ethernet bridging (protocol 0x6558), as tshark
        // reads it too; 39 of its frames are later IP fragments of the carrier.
        Case {
            capture: "other/zeek_erspan.pcap",
            teredo_by_shape: false,
            carriers: &[("gre", ("10.200.0.3", "10.200.0.224"), 287)],
            encapsulations: &[("gre", 248)],
        },
        Case {
            capture: "other/zeek_4in6.pcap",
            teredo_by_shape: false,
            carriers: &[(
                "4in6",
                ("2002:4637:d5d3::4637:d5d3", "2001:4860:0:2001::68"),
                1,
            )],
            encapsulations: &[("4in6", 1)],
        },
        Case {
            capture: "ipv6/tunnels_zeek_6in4.pcap",
            teredo_by_shape: false,
            carriers: &[("6in4", ("1.2.3.4", "5.6.7.8"), 1)],
            encapsulations: &[("6in4", 1)],
        },
        Case {
            capture: "other/zeek_gtp1_fragmentation.pcap",
            teredo_by_shape: false,
            carriers: &[("gtp_u", ("239.114.155.111", "63.94.149.181"), 108)],
            encapsulations: &[("gtp_u", 72)],
        },
        // PPPoE is a link-layer wrapper: no carrier flow.
        Case {
            capture: "other/zeek_pppoe.pcap",
            teredo_by_shape: false,
            carriers: &[],
            encapsulations: &[("pppoe", 61), ("pppoe_discovery", 4)],
        },
        Case {
            capture: "ipv6/tunnels_zeek_Teredo.pcap",
            teredo_by_shape: true,
            carriers: &[
                ("teredo", ("192.168.2.16", "83.170.1.38"), 25),
                ("teredo", ("192.168.2.16", "65.55.158.80"), 3),
                ("teredo", ("192.168.2.16", "65.55.158.81"), 1),
            ],
            encapsulations: &[("teredo", 29)],
        },
    ];
    for case in cases {
        let rel = case.capture;
        let file = pcap(rel);
        let Some(want) = tshark(&file, case.teredo_by_shape) else {
            return cannot_run("tshark is not installed (scripts/install-deps.sh installs it)");
        };
        let flows = flows_of(&file);
        let got = ours(&flows);
        assert_eq!(
            got.transport, want.transport,
            "{rel}: TCP and UDP conversations"
        );
        assert_eq!(got.ip, want.ip, "{rel}: IP conversations");
        // Every flow inside a tunnel says which; every carrier's figures are tshark's.
        let carried = carriers(&flows);
        for (kind, (a, b), packets) in case.carriers {
            assert_eq!(
                carried.get(&(kind.to_string(), pair(a, b))),
                Some(packets),
                "{rel}: carrier {kind} {a} <-> {b} in {carried:?}"
            );
            assert_eq!(
                want.ip.get(&pair(a, b)),
                Some(packets),
                "{rel}: tshark's own figure"
            );
        }
        if !carried.is_empty() {
            assert!(flows.iter().any(|f| f.get("tunnel").is_some()), "{rel}");
        }
        let (code, summary, stderr) = analyze(&file, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        let summary = summary.unwrap();
        let counted: BTreeMap<String, u64> =
            serde_json::from_value(summary["encapsulations"].clone()).unwrap();
        let expected: BTreeMap<String, u64> = case
            .encapsulations
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        assert_eq!(counted, expected, "{rel}");
        assert_eq!(
            summary["decoded"].as_u64().unwrap(),
            summary["packets"].as_u64().unwrap(),
            "{rel}: every frame decodes"
        );
    }
}

#[test]
fn the_gre_sample_names_its_tunnel_on_every_inner_flow() {
    // tshark -V on frame 1: GRE without key from 172.27.1.66 to 66.59.109.137, inner
    // 66.59.111.190 -> 172.28.2.3.
    let flows = flows_of(&pcap("other/zeek_gre_sample.pcap"));
    let inner: Vec<_> = flows
        .iter()
        .filter(|f| f.get("carries").is_none())
        .collect();
    assert!(!inner.is_empty());
    for f in inner {
        let t = &f["tunnel"];
        assert_eq!(t["type"], "gre", "{f}");
        assert_eq!(
            pair(
                t["src_ip"].as_str().unwrap(),
                t["dest_ip"].as_str().unwrap()
            ),
            pair("172.27.1.66", "66.59.109.137")
        );
        assert_eq!(t["proto"], "GRE");
        assert_eq!(t["depth"], 1);
        assert!(t.get("id").is_none(), "no key in this capture");
    }
}

/// A classic pcap file of Ethernet frames, one a millisecond.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        out.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// A VXLAN frame between VTEPs 10.1.0.1 and 10.1.0.2 carrying `inner` (an Ethernet frame).
fn vxlan_frame(vni: u32, from_a: bool, inner: &[u8]) -> Vec<u8> {
    let mut vx = vec![0x08, 0, 0, 0];
    vx.extend_from_slice(&(vni << 8).to_be_bytes());
    vx.extend_from_slice(inner);
    let (src, dst) = if from_a {
        ([10, 1, 0, 1], [10, 1, 0, 2])
    } else {
        ([10, 1, 0, 2], [10, 1, 0, 1])
    };
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(50000 + vni as u16, 4789)
        .write(&mut out, &vx)
        .unwrap();
    out
}

fn inner_tcp(from_client: bool, syn: bool, ack: bool) -> Vec<u8> {
    let (src, dst, sport, dport) = if from_client {
        ([192, 168, 7, 1], [192, 168, 7, 2], 40000, 80)
    } else {
        ([192, 168, 7, 2], [192, 168, 7, 1], 80, 40000)
    };
    let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 7, 1], [2, 0, 0, 0, 7, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 1000);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

#[test]
fn equal_inner_tuples_in_two_vnis_stay_two_flows() {
    // The same handshake, in VNI 100 and in VNI 200; the answers come back the other way
    // through the tunnel, and must land in their own VNI's flow.
    let mut frames = Vec::new();
    for vni in [100, 200] {
        frames.push(vxlan_frame(vni, true, &inner_tcp(true, true, false)));
    }
    for vni in [100, 200] {
        frames.push(vxlan_frame(vni, false, &inner_tcp(false, true, true)));
    }
    for vni in [100, 200] {
        frames.push(vxlan_frame(vni, true, &inner_tcp(true, false, true)));
    }
    let dir = tempdir();
    let file = dir.join("two_vnis.pcap");
    write_pcap(&file, &frames);
    let flows = flows_of(&file);
    let inner: Vec<_> = flows
        .iter()
        .filter(|f| f["dst_port"] == 80 && f.get("carries").is_none())
        .collect();
    assert_eq!(inner.len(), 2, "{flows:?}");
    let mut vnis: Vec<u64> = inner
        .iter()
        .map(|f| f["tunnel"]["id"].as_u64().unwrap())
        .collect();
    vnis.sort();
    assert_eq!(vnis, [100, 200]);
    for f in &inner {
        assert_eq!(
            (f["src_packets"].as_u64(), f["dst_packets"].as_u64()),
            (Some(2), Some(1)),
            "{f}"
        );
        assert_eq!(f["src_ip"], "192.168.7.1");
        assert_eq!(f["state"], "established");
        assert_eq!(f["tunnel"]["type"], "vxlan");
    }
    // Both carry the same Community ID: it is the inner 5-tuple's.
    assert_eq!(inner[0]["community_id"], inner[1]["community_id"]);
    // The carriers: each VTEP sends to the other's port 4789 from a port of its own, so
    // each direction of each VNI is an outer UDP flow: 2 packets one way, 1 back.
    let mut carried: Vec<(u64, u64)> = flows
        .iter()
        .filter(|f| f["carries"] == "vxlan")
        .map(|f| {
            (
                f["src_port"].as_u64().unwrap(),
                f["packet_count"].as_u64().unwrap(),
            )
        })
        .collect();
    carried.sort();
    assert_eq!(carried, [(50100, 1), (50100, 2), (50200, 1), (50200, 2)]);

    // With carriers hidden, only the two inner flows remain.
    let config = dir.join("hide.toml");
    std::fs::write(&config, "[decode]\nhide_carriers = true\n").unwrap();
    let out = dir.join("flows.jsonl");
    let (code, _, stderr) = analyze(
        &file,
        &[
            "--config",
            config.to_str().unwrap(),
            "--flows-out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_encapsulations_are_counted_by_reason() {
    // Each frame: decoded + skipped = frames, whatever it is.
    let gre = |payload: &[u8]| {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut out, etherparse::IpNumber(47), payload)
            .unwrap();
        out
    };
    // A GRE loop: IPv4 in GRE in IPv4 ... 6 deep, past the default depth of 4.
    let mut nested = inner_tcp(true, true, false)[14..].to_vec();
    for _ in 0..6 {
        let mut g = vec![0, 0, 0x08, 0x00];
        g.extend_from_slice(&nested);
        let mut ip = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut ip, etherparse::IpNumber(47), &g)
            .unwrap();
        nested = ip;
    }
    let mut deep = vec![2, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    deep.extend_from_slice(&nested);
    let frames = vec![
        gre(&[0, 0, 0x12, 0x34, 1, 2]),      // unknown GRE protocol
        gre(&[0xb0, 0, 0x08, 0x00, 0, 0]),   // cut inside GRE's optional fields
        vxlan_frame(5, true, &[2, 0, 0, 0]), // cut inside the inner Ethernet header
        deep,                                // too deep
        vxlan_frame(5, true, &inner_tcp(true, true, false)), // fine
    ];
    let dir = tempdir();
    let file = dir.join("hostile.pcap");
    write_pcap(&file, &frames);
    let (code, summary, stderr) = analyze(&file, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary.unwrap();
    assert_eq!(s["decoded"], 1);
    assert_eq!(s["skipped"]["unknown_gre_protocol"], 1);
    assert_eq!(s["skipped"]["truncated_tunnel"], 2);
    assert_eq!(s["skipped"]["tunnel_too_deep"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eve_flow_events_carry_suricatas_tunnel_object() {
    let dir = tempdir();
    let eve = dir.join("eve.json");
    let config = dir.join("eve.toml");
    std::fs::write(
        &config,
        format!("[export.eve]\nfile = \"{}\"\n", eve.display()),
    )
    .unwrap();
    let (code, _, stderr) = analyze(
        &pcap("other/zeek_vxlan.pcap"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let events = common::json_lines(&eve);
    // tshark -V: VXLAN VNI 123 from 192.168.56.11 to 192.168.56.12:4789,
    // carrying ICMP echo 10.0.0.1 -> 10.0.0.2.
    let inner = events
        .iter()
        .find(|e| e["event_type"] == "flow" && e["proto"] == "ICMP")
        .expect("an inner ICMP flow event");
    assert_eq!(inner["src_ip"], "10.0.0.1");
    let t = &inner["tunnel"];
    assert_eq!(
        pair(
            t["src_ip"].as_str().unwrap(),
            t["dest_ip"].as_str().unwrap()
        ),
        pair("192.168.56.11", "192.168.56.12")
    );
    assert_eq!(t["proto"], "UDP");
    assert_eq!(t["dest_port"], 4789);
    assert_eq!(t["depth"], 1);
    assert_eq!(t["type"], "vxlan");
    assert_eq!(t["id"], 123);
    assert!(
        events.iter().any(|e| e["event_type"] == "flow"
            && e["carries"] == "vxlan"
            && e["dest_port"] == 4789)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_server_counts_encapsulations_and_serves_tunnelled_flows() {
    let file = pcap("other/zeek_vxlan.pcap");
    let server =
        common::server::Server::start(&["replay", file.to_str().unwrap(), "--speed", "0"], None);
    server.wait_replayed();
    // /debug: every frame decoded, all ten in VXLAN (tshark: 10 VXLAN frames).
    let debug = server.get("/debug").json();
    assert_eq!(debug["capture"]["encapsulations"]["vxlan"], 10, "{debug:#}");
    assert!(
        debug["capture"]["skipped"].as_object().unwrap().is_empty(),
        "{debug:#}"
    );
    // /flows: the inner ICMP flows name their tunnel, the carriers say what they carry.
    // Stored flows (the replay is over, so none is active any more).
    let flows = server
        .get("/flows?start_time=0&end_time=4000000000&limit=100")
        .json();
    let flows = flows["flows"].as_array().unwrap();
    assert!(
        flows
            .iter()
            .any(|f| f["protocol"] == "ICMP" && f["tunnel"]["id"] == 123),
        "{flows:#?}"
    );
    assert!(flows.iter().any(|f| f["carries"] == "vxlan"), "{flows:#?}");
    server.stop();
}
