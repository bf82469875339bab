//! `tapir analyze` over the real captures in ../shared/pcaps. Expected values come from the
//! MANIFEST (capinfos) and from tshark 4.0 (conversation statistics, Community ID), never from
//! tapir's own output.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use common::*;

/// Runs `check` over `entries` on two threads (the machine has two cores).
fn parallel<T: Sync>(entries: &[T], check: impl Fn(&T) -> Option<String> + Sync) -> Vec<String> {
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(entry) = entries.get(i) else { break };
                    if let Some(f) = check(entry) {
                        failures.lock().unwrap().push(f);
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn every_capture_reports_its_capinfos_packet_count() {
    let entries: Vec<_> = manifest()
        .into_iter()
        .filter(|e| e["category"] != "malformed")
        .collect();
    assert!(entries.len() > 150);
    let failures = parallel(&entries, |e| {
        let rel = e["path"].as_str().unwrap();
        let expected: u64 = e["packets"].as_str().unwrap().parse().unwrap();
        let (code, json, stderr) = analyze(&pcap(rel), &[]);
        if code == Some(101) || code.is_none() {
            return Some(format!("{rel}: crashed: {stderr}"));
        }
        let Some(json) = json else {
            return Some(format!("{rel}: no summary ({code:?}): {stderr}"));
        };
        let got = json["packets"].as_u64().unwrap();
        let decoded = json["decoded"].as_u64().unwrap();
        let skipped: u64 = json["skipped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        if got != expected {
            return Some(format!("{rel}: {got} packets, capinfos says {expected}"));
        }
        if decoded + skipped != got {
            return Some(format!(
                "{rel}: decoded {decoded} + skipped {skipped} != {got}"
            ));
        }
        None
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn malformed_captures_end_in_a_summary_or_a_clean_error_and_read_every_frame() {
    let entries: Vec<_> = manifest()
        .into_iter()
        .filter(|e| e["category"] == "malformed")
        .collect();
    assert!(entries.len() > 50);
    let failures = parallel(&entries, |e| {
        let rel = e["path"].as_str().unwrap();
        let (code, json, stderr) = analyze(&pcap(rel), &[]);
        // Every frame capinfos counts (up to where it stops reading) is read, no more. One
        // exception: capinfos counts a last record whose body the file cuts short; tapir,
        // like tcpdump ("truncated dump file"), analyses only records it can read whole. In
        // ndpi_fuzz-2021-10-13 that record claims 524,501 captured bytes of a 239-byte file.
        let capinfos: Option<u64> = e["packets"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .map(|n: u64| n - u64::from(rel == "malformed/ndpi_fuzz-2021-10-13.pcap"));
        match (code, json) {
            (Some(0 | 1), Some(j)) if capinfos.is_some_and(|n| j["packets"] != n) => Some(format!(
                "{rel}: {} frames read, capinfos counts {}",
                j["packets"],
                capinfos.unwrap_or(0)
            )),
            (Some(0 | 1), Some(_)) => None,
            (Some(1), None) if stderr.lines().count() == 1 && stderr.starts_with("tapir: ") => None,
            (code, _) => Some(format!("{rel}: exit {code:?}, stderr: {stderr}")),
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_file_cut_mid_record_keeps_the_packets_before_the_cut() {
    // MANIFEST: "first 1,350 packets readable, then the file ends inside a record".
    let (code, json, stderr) = analyze(&pcap("derived/truncated_midpacket_ppa_synscan.pcap"), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(json.unwrap()["packets"], 1350);
    assert!(
        stderr.contains("cut short") && stderr.contains("1350"),
        "{stderr}"
    );
}

#[test]
fn unreadable_inputs_are_one_line_errors_with_a_non_zero_exit() {
    let dir = tempdir();
    let text = dir.join("notes.pcap");
    std::fs::write(&text, "this is not a capture\n").unwrap();
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    let gz = dir.join("x.pcap.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    for (file, needle) in [
        (dir.join("missing.pcap"), "cannot open"),
        (text, "no pcap or pcapng magic"),
        (empty, "empty"),
        (gz, "gunzip"),
    ] {
        let (code, _, stderr) = analyze(&file, &[]);
        assert_eq!(code, Some(1), "{}", file.display());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unsupported_link_type_is_counted_reported_and_exits_non_zero() {
    // MANIFEST: 133,068 frames of 802.11 (DLT 105), no Ethernet.
    let (code, json, stderr) = analyze(&pcap("other/nfpuzzle8_wifi_80211.pcap"), &[]);
    assert_eq!(code, Some(1));
    let json = json.unwrap();
    assert_eq!(json["packets"], 133_068);
    assert_eq!(json["skipped"]["unsupported_link_type"], 133_068);
    assert!(stderr.contains("IEEE 802.11"), "{stderr}");
}

#[test]
fn formats_are_recognised_by_magic_number() {
    // Files named .pcapng that are classic pcap, big-endian nanosecond pcap, and zstd pcapng.
    for (rel, packets) in [
        ("portscan/ndpi_tcp_scan.pcapng", None),
        ("malformed/pcpp_nanosecs_big_endian.pcap", Some(10)),
        ("pcapng/pcpp_pcapng_example.pcapng.zst", Some(159)),
        ("pcapng/pcpp_pcapng_example.pcapng", Some(159)),
    ] {
        let (code, json, stderr) = analyze(&pcap(rel), &[]);
        assert_eq!(code, Some(0), "{rel}: {stderr}");
        let json = json.unwrap();
        if let Some(n) = packets {
            assert_eq!(json["packets"], n, "{rel}");
        }
        assert_eq!(json["decoded"], json["packets"], "{rel}");
    }
}

#[test]
fn nanosecond_timestamps_are_kept_to_the_nanosecond() {
    use tapir::capture::PacketSource;
    // tshark -T fields -e frame.time_epoch, first two frames of each: a little-endian
    // nanosecond pcap and a big-endian one. Cut to microseconds, every one would differ.
    for (file, expected) in [
        (
            "sll/tcpdump_tcp_handshake_nano_sll.pcap",
            [1_418_145_369_924_505_488i64, 1_418_145_370_052_027_262],
        ),
        (
            "malformed/pcpp_nanosecs_big_endian.pcap",
            [1_766_361_926_167_647_291, 1_766_361_926_167_658_091],
        ),
    ] {
        let mut source = tapir::capture::file::FileSource::open(&pcap(file)).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let status = source.read_some(2, &mut |f| got.push(f.ts.0)).unwrap();
            if status.end {
                break;
            }
        }
        assert_eq!(got[..2], expected, "{file}");
    }
    // And through the whole pipeline, as far as an f64 of seconds carries (238 ns here).
    let (_, json, _) = analyze(&pcap("sll/tcpdump_tcp_handshake_nano_sll.pcap"), &[]);
    let first = json.unwrap()["first_seen"].as_f64().unwrap();
    let expected = 1_418_145_369.0 + 924_505_488.0 / 1e9;
    assert!((first - expected).abs() < 3e-7, "{first}");
}

/// One conversation from `tshark -q -z conv,tcp -z conv,udp`: A → B frames and bytes,
/// B → A frames and bytes.
struct Conversation {
    a: (&'static str, u16),
    b: (&'static str, u16),
    a_to_b: (u64, u64),
    b_to_a: (u64, u64),
}

fn find<'a>(flows: &'a [serde_json::Value], c: &Conversation) -> &'a serde_json::Value {
    flows
        .iter()
        .find(|f| {
            f["src_ip"] == c.a.0
                && f["src_port"] == c.a.1
                && f["dst_ip"] == c.b.0
                && f["dst_port"] == c.b.1
        })
        .unwrap_or_else(|| panic!("no flow {}:{} -> {}:{}", c.a.0, c.a.1, c.b.0, c.b.1))
}

fn assert_conversations(
    rel: &str,
    flows_expected: usize,
    conversations: &[Conversation],
) -> Vec<serde_json::Value> {
    let flows = flows_of(&pcap(rel));
    assert_eq!(flows.len(), flows_expected, "{rel}");
    for c in conversations {
        let f = find(&flows, c);
        assert_eq!(
            (
                f["src_packets"].as_u64().unwrap(),
                f["src_bytes"].as_u64().unwrap()
            ),
            c.a_to_b,
            "{rel} {:?}",
            c.a
        );
        assert_eq!(
            (
                f["dst_packets"].as_u64().unwrap(),
                f["dst_bytes"].as_u64().unwrap()
            ),
            c.b_to_a,
            "{rel} {:?}",
            c.a
        );
    }
    flows
}

#[test]
fn flows_agree_with_tshark_conversations() {
    // zeek_sshguess: tshark lists 11 TCP conversations; e.g.
    //   192.168.56.1:55470 <-> 192.168.56.103:22   19 3710 bytes | 26 4613 bytes
    //   192.168.56.1:55474 <-> 192.168.56.103:22   17 3522 bytes | 24 4329 bytes
    let flows = assert_conversations(
        "bruteforce/zeek_sshguess.pcap",
        11,
        &[
            Conversation {
                a: ("192.168.56.1", 55470),
                b: ("192.168.56.103", 22),
                a_to_b: (26, 4613),
                b_to_a: (19, 3710),
            },
            Conversation {
                a: ("192.168.56.1", 55474),
                b: ("192.168.56.103", 22),
                a_to_b: (24, 4329),
                b_to_a: (17, 3522),
            },
        ],
    );
    let total: u64 = flows
        .iter()
        .map(|f| f["packet_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 431, "capinfos: 431 packets, all TCP");

    // zeek_echo_connections_burst: 500 TCP conversations with 127.0.0.1:7000, e.g.
    //   127.0.0.1:37910 <-> 127.0.0.1:7000   58 3888 bytes | 111 7403 bytes
    //   127.0.0.1:37892 <-> 127.0.0.1:7000   57 3822 bytes | 108 7188 bytes
    let flows = assert_conversations(
        "synflood/zeek_echo_connections_burst.pcap",
        500,
        &[
            Conversation {
                a: ("127.0.0.1", 37910),
                b: ("127.0.0.1", 7000),
                a_to_b: (111, 7403),
                b_to_a: (58, 3888),
            },
            Conversation {
                a: ("127.0.0.1", 37892),
                b: ("127.0.0.1", 7000),
                a_to_b: (108, 7188),
                b_to_a: (57, 3822),
            },
        ],
    );
    assert!(
        flows.iter().all(|f| f["dst_port"] == 7000),
        "the echo server is the responder"
    );

    // traceshare_hydra_4_tasks: 243 TCP conversations over 20 minutes, e.g.
    //   240.0.1.3:34364 <-> 240.125.0.2:22   25 3521 bytes | 17 2263 bytes
    assert_conversations(
        "bruteforce/traceshare_hydra_4_tasks.pcap",
        243,
        &[Conversation {
            a: ("240.0.1.3", 34364),
            b: ("240.125.0.2", 22),
            a_to_b: (17, 2263),
            b_to_a: (25, 3521),
        }],
    );

    // suricata_decode_sll2_01 (Linux cooked v2): one conversation
    //   192.168.1.253:56478 <-> 192.168.1.21:80   2 152 bytes | 3 306 bytes
    assert_conversations(
        "sll/suricata_decode_sll2_01.pcap",
        1,
        &[Conversation {
            a: ("192.168.1.253", 56478),
            b: ("192.168.1.21", 80),
            a_to_b: (3, 306),
            b_to_a: (2, 152),
        }],
    );
}

#[test]
fn udp_flows_split_where_the_idle_timeout_says_so() {
    // pcpp_DnsPackets: tshark counts 219 UDP conversations. 10.0.0.1:52532 <-> 10.0.0.138:53 is
    // one of them (2 frames each way), but its two query/response pairs are 338 s apart
    // (t = 854.76 s and 1193.25 s), beyond the 60 s UDP idle timeout, so tapir reports two
    // flows there: 220 in all, with the same packet total.
    let flows = flows_of(&pcap("dns_normal/pcpp_DnsPackets.pcap"));
    assert_eq!(flows.len(), 220);
    let pair: Vec<_> = flows
        .iter()
        .filter(|f| f["src_ip"] == "10.0.0.1" && f["src_port"] == 52532)
        .collect();
    assert_eq!(pair.len(), 2);
    let bytes: u64 = pair
        .iter()
        .map(|f| f["total_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        bytes,
        158 + 488,
        "tshark: 2 frames 158 bytes one way, 2 frames 488 bytes back"
    );
    // With a longer timeout the conversation is one flow, as tshark has it.
    let dir = tempdir();
    let config = dir.join("tapir.toml");
    std::fs::write(&config, "[flows]\nudp_timeout = 600\n").unwrap();
    let (_, json, _) = analyze(
        &pcap("dns_normal/pcpp_DnsPackets.pcap"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(json.unwrap()["flows"], 219);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn community_ids_match_tshark() {
    // tshark -r FILE --enable-protocol communityid -T fields -e communityid
    let expected: &[(&str, &[&str])] = &[
        (
            "ipv6/zeek_communityid_ipv6.pcap",
            &["1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="],
        ),
        (
            "ipv6/suricata_community_id_ipv6.pcap",
            &[
                "1:njFHyHv2ATzLP9rSy0H6wbG73QU=",
                "1:x48XA3YiAaOKTB0FEpvi+0cbuGg=",
            ],
        ),
        (
            "icmp/zeek_5_pings.pcap",
            &["1:gp8b/PCBmrLjQ2f9cKsFjc1+900="],
        ),
        (
            "icmp/zeek_icmp6_ping.pcap",
            &["1:CK4vAOXRvkt0H1zTqK7KQ1ZQong="],
        ),
        (
            "icmp/ppa_destunreachable.pcap",
            &[
                "1:DyqgoWXO7keAhPhpg0qyyhSu28A=",
                "1:vl0wQe9998jDgUtHslH49ZiJakQ=",
            ],
        ),
    ];
    for (rel, ids) in expected {
        let flows = flows_of(&pcap(rel));
        let mut got: Vec<&str> = flows
            .iter()
            .map(|f| f["community_id"].as_str().unwrap())
            .collect();
        got.sort();
        got.dedup();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(got, want, "{rel}");
    }
}

#[test]
fn decoder_reads_vlan_qinq_sll2_and_ipv6_extension_headers() {
    // Facts from the MANIFEST: VLAN 123 ping, QinQ HTTP, SLL2 with ARP/ICMP/ICMPv6,
    // IPv6 hop-by-hop + routing headers carrying UDP.
    let (_, json, _) = analyze(&pcap("vlan/zeek_icmp_dot1q.pcap"), &[]);
    let json = json.unwrap();
    assert_eq!(json["decoded"], 15);
    assert!(json["protocol_counts"]["ICMP"].as_u64().unwrap() > 0);
    assert!(json["protocol_counts"]["ARP"].as_u64().unwrap() > 0);

    let flows = flows_of(&pcap("vlan/zeek_http_qinq.pcap"));
    assert!(
        flows
            .iter()
            .any(|f| f["dst_port"] == 80 && f["protocol"] == "TCP"),
        "{flows:?}"
    );

    let (_, json, _) = analyze(&pcap("sll/zeek_linux_dlt_sll2.pcap"), &[]);
    let counts = &json.unwrap()["protocol_counts"];
    for p in ["ARP", "ICMP", "ICMPv6"] {
        assert!(counts[p].as_u64().unwrap_or(0) > 0, "{p} in {counts}");
    }

    let flows = flows_of(&pcap("ipv6/zeek_ipv6_hbh_routing0.pcap"));
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["protocol"], "UDP");
}

#[test]
fn fragment_trains_stay_with_their_flow() {
    // pcpp_frag_http_req: one HTTP request split into 11 IPv4 fragments (MANIFEST). The later
    // fragments carry no TCP header; they must land in the flow of the first.
    let flows = flows_of(&pcap("fragments/pcpp_frag_http_req.pcap"));
    let tcp: Vec<_> = flows.iter().filter(|f| f["protocol"] == "TCP").collect();
    assert_eq!(tcp.len(), 1, "{flows:?}");
    assert_eq!(tcp[0]["packet_count"], 11);
}

#[test]
fn top_talkers_agree_with_the_manifest() {
    // MANIFEST facts for nmap_tcp_syn_scan: 192.168.1.10 sends 1,007 packets, 192.168.1.25 1,000.
    let (_, json, _) = analyze(&pcap("portscan/nmap_tcp_syn_scan.pcap"), &[]);
    let talkers = json.unwrap()["top_talkers"].as_array().unwrap().clone();
    let sent: HashMap<String, u64> = talkers
        .iter()
        .map(|t| {
            (
                t["ip"].as_str().unwrap().to_string(),
                t["packets_sent"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sent["192.168.1.10"], 1007);
    assert_eq!(sent["192.168.1.25"], 1000);
}
