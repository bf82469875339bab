use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use super::hosts::*;
use super::*;
use crate::decode::Decoder;
use crate::packet::{PacketMeta, Protocol};

/// Generates `n` frames and decodes each (every synthetic frame must decode).
fn decoded(scenario: Scenario, n: usize) -> Vec<(PacketMeta, Option<String>)> {
    let mut g = Generator::new(scenario, 7);
    (0..n)
        .map(|_| {
            let (ts, data) = g.next_frame();
            let mut names = Vec::new();
            let d = Decoder::new()
                .decode(LinkType::ETHERNET, ts, data.len() as u32, data, &mut names)
                .expect("synthetic frames decode");
            assert!(d.dns_ok);
            let meta = d.meta;
            let name = meta.dns.map(|d| {
                String::from_utf8(names[d.qname.offset as usize..][..d.qname.len as usize].to_vec())
                    .unwrap()
            });
            (meta, name)
        })
        .collect()
}

fn ip(a: std::net::Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

#[test]
fn the_same_seed_gives_the_same_frames() {
    let frames = |seed| {
        let mut g = Generator::new(Scenario::All, seed);
        (0..3000)
            .map(|_| {
                let (ts, d) = g.next_frame();
                (ts, d.to_vec())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(frames(1), frames(1));
    assert_ne!(frames(1), frames(2));
}

#[test]
fn time_never_goes_backwards() {
    let mut g = Generator::new(Scenario::All, 3);
    let mut last = Timestamp(i64::MIN);
    for _ in 0..60_000 {
        let (ts, _) = g.next_frame();
        assert!(ts >= last);
        last = ts;
    }
}

#[test]
fn mixed_is_benign_and_varied() {
    let packets = decoded(Scenario::Mixed, 5000);
    let protocols: HashSet<Protocol> = packets.iter().map(|(p, _)| p.protocol()).collect();
    for p in [
        Protocol::Tcp,
        Protocol::Udp,
        Protocol::Dns,
        Protocol::Icmp,
        Protocol::Arp,
    ] {
        assert!(protocols.contains(&p), "{p} missing");
    }
    let attackers = [
        ip(SCAN_ATTACKER),
        ip(BRUTE_ATTACKER),
        ip(FLOOD_SINGLE_SOURCE),
    ];
    assert!(packets.iter().all(|(p, _)| !attackers.contains(&p.src)));
    let hosts: HashSet<IpAddr> = packets.iter().map(|(p, _)| p.src).collect();
    assert!(hosts.len() >= 30, "{} hosts", hosts.len());
    // ~150 packets/s of background
    let span = packets.last().unwrap().0.ts.as_secs_f64() - packets[0].0.ts.as_secs_f64();
    let rate = packets.len() as f64 / span;
    assert!((60.0..400.0).contains(&rate), "{rate} pps");
}

#[test]
fn portscan_touches_1024_ports_of_one_target() {
    let packets = decoded(Scenario::Portscan, 6000);
    let ports: HashSet<u16> = packets
        .iter()
        .filter(|(p, _)| {
            p.src == ip(SCAN_ATTACKER) && p.dst == ip(SCAN_TARGET) && p.tcp_flags.is_syn_only()
        })
        .map(|(p, _)| p.dst_port)
        .collect();
    assert_eq!(ports.len(), 1024);
}

#[test]
fn synflood_has_spoofed_sources_and_a_single_source_flood() {
    let packets = decoded(Scenario::Synflood, 8000);
    let syns = |port| {
        packets.iter().filter(move |(p, _)| {
            p.dst == ip(FLOOD_TARGET) && p.dst_port == port && p.tcp_flags.is_syn_only()
        })
    };
    let sources: HashSet<IpAddr> = syns(80).map(|(p, _)| p.src).collect();
    assert!(sources.len() > 5900, "{} sources", sources.len());
    let single = syns(443)
        .filter(|(p, _)| p.src == ip(FLOOD_SINGLE_SOURCE))
        .count();
    assert_eq!(single, 150);
}

#[test]
fn bruteforce_has_short_completed_ssh_sessions_and_rst_attempts() {
    let packets = decoded(Scenario::Bruteforce, 6000);
    let from_attacker = |port: u16, flag: u8| {
        packets
            .iter()
            .filter(move |(p, _)| {
                p.src == ip(BRUTE_ATTACKER) && p.dst_port == port && p.tcp_flags.has(flag)
            })
            .count()
    };
    assert_eq!(from_attacker(22, TcpFlags::SYN), 40);
    assert_eq!(from_attacker(22, TcpFlags::FIN), 40);
    let rsts = packets
        .iter()
        .filter(|(p, _)| {
            p.src == ip(BRUTE_TARGET) && p.src_port == 3389 && p.tcp_flags.has(TcpFlags::RST)
        })
        .count();
    assert_eq!(rsts, 12);
}

#[test]
fn dnstunnel_sends_long_txt_queries_under_one_domain() {
    let packets = decoded(Scenario::Dnstunnel, 4000);
    let queries: Vec<&String> = packets
        .iter()
        .filter(|(p, _)| {
            p.src == ip(TUNNEL_CLIENT) && p.dns.is_some_and(|d| !d.is_response && d.qtype == 16)
        })
        .filter_map(|(_, n)| n.as_ref())
        .filter(|n| n.ends_with(TUNNEL_DOMAIN))
        .collect();
    assert_eq!(queries.len(), 200);
    assert!(queries.iter().all(|n| n.len() > 50));
    let distinct: HashSet<&&String> = queries.iter().collect();
    assert_eq!(distinct.len(), 200);
}

#[test]
fn spike_is_ten_times_the_background_rate() {
    let packets = decoded(Scenario::Spike, 16_000);
    let mut per_sec: BTreeMap<i64, u64> = BTreeMap::new();
    for (p, _) in &packets {
        *per_sec.entry(p.ts.secs()).or_default() += u64::from(p.wire_len);
    }
    let mut rates: Vec<u64> = per_sec.values().copied().collect();
    rates.sort_unstable();
    let median = rates[rates.len() / 2];
    let peak = *rates.last().unwrap();
    assert!(peak >= 10 * median, "peak {peak} median {median}");
}

#[test]
fn smalludp_frames_are_minimum_size_between_the_test_hosts() {
    let packets = decoded(Scenario::Smalludp, 1000);
    assert!(
        packets
            .iter()
            .all(|(p, _)| p.wire_len == 60 && p.src == ip(SMALL_A) && p.dst == ip(SMALL_B))
    );
}
