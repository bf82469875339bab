//! The inventory and the LAN rules as plain structs.

use std::net::{IpAddr, Ipv4Addr};

use super::inventory::{Inventory, InventoryLimits};
use super::rules::{LanRules, RulesConfig};
use crate::model::finding::{Finding, Rule};
use crate::packet::{DhcpFact, Lan, LanFact, MacAddr, NameRef, PacketBatch, PacketMeta, Timestamp};

fn mac(last: u8) -> MacAddr {
    MacAddr([0x00, 0x0c, 0x29, 0x00, 0x00, last])
}

fn inventory(max_devices: usize, learning_secs: u64) -> Inventory {
    Inventory::new(InventoryLimits {
        max_devices,
        local_networks: vec![
            "192.168.0.0/16".parse().unwrap(),
            "fe80::/10".parse().unwrap(),
        ],
        learning_secs,
    })
    .with_wall_clock(test_clock)
}

thread_local! {
    /// The wall clock the inventories of a test see.
    static WALL: std::cell::Cell<f64> = const { std::cell::Cell::new(1_000.0) };
}

fn test_clock() -> f64 {
    WALL.with(|w| w.get())
}

fn set_wall(secs: f64) {
    WALL.with(|w| w.set(secs));
}

/// A batch of one frame from `src` at `secs`, with `facts` about it.
fn frame(src: MacAddr, ip: [u8; 4], secs: i64, facts: &[Lan]) -> PacketBatch {
    let mut batch = PacketBatch::with_capacity(1);
    let mut p = PacketMeta::blank(Timestamp::from_parts(secs, 0), 60);
    p.network = crate::packet::Network::Ipv4;
    p.src = IpAddr::V4(Ipv4Addr::from(ip));
    p.src_mac = src;
    p.dst_mac = MacAddr([0xff; 6]);
    batch.packets.push(p);
    batch.lan = facts
        .iter()
        .map(|&fact| LanFact { packet: 0, fact })
        .collect();
    batch
}

fn arp(op: u16, sender: MacAddr, sender_ip: [u8; 4], target: MacAddr, target_ip: [u8; 4]) -> Lan {
    Lan::Arp {
        op,
        sender_mac: sender,
        sender_ip: Ipv4Addr::from(sender_ip),
        target_mac: target,
        target_ip: Ipv4Addr::from(target_ip),
    }
}

fn run(inv: &mut Inventory, rules: &mut LanRules, batch: &PacketBatch) -> Vec<Finding> {
    let mut out = Vec::new();
    inv.observe(batch, &[]);
    rules.check(batch, inv, &mut out);
    out
}

#[test]
fn a_flood_of_forged_macs_stays_within_the_cap_and_keeps_labelled_stations() {
    let mut inv = inventory(64, 3600);
    inv.observe(&frame(mac(1), [192, 168, 1, 1], 0, &[]), &[]);
    inv.annotate(mac(1), Some(Some("router".into())), Some(true));
    for i in 0..10_000u32 {
        let b = i.to_be_bytes();
        let forged = MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]]);
        inv.observe(&frame(forged, [10, 0, 0, 1], 1 + i64::from(i), &[]), &[]);
        assert!(inv.len() <= 64);
    }
    assert!(inv.evicted >= 10_000 - 64);
    assert_eq!(inv.get(mac(1)).unwrap().label.as_deref(), Some("router"));
    // Addresses outside the local networks are not a station's own.
    assert!(inv.devices().all(|d| {
        d.addresses
            .iter()
            .all(|a| a.ip != IpAddr::from([10, 0, 0, 1]))
    }));
}

#[test]
fn stations_present_while_learning_are_not_new_and_later_ones_are() {
    let mut inv = inventory(100, 60);
    let mut rules = LanRules::new(RulesConfig::default());
    let mut see = |inv: &mut Inventory, station: u8, secs: i64| {
        let batch = frame(mac(station), [192, 168, 1, station], secs, &[]);
        run(inv, &mut rules, &batch)
    };
    // Learning goes by the wall clock: packet time years later changes nothing.
    set_wall(1000.0);
    assert!(see(&mut inv, 1, 1000).is_empty());
    set_wall(1059.0);
    assert!(see(&mut inv, 2, 1000 + 3 * 365 * 86_400).is_empty());
    assert!(inv.learning());
    set_wall(1061.0);
    let found = see(&mut inv, 3, 1061);
    assert!(!inv.learning());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, Rule::NewDevice);
    assert_eq!(found[0].target.to_string(), "00:0c:29:00:00:03");
    assert!(inv.get(mac(3)).unwrap().arrived && !inv.get(mac(2)).unwrap().arrived);
    // Seen again: not new again.
    assert!(see(&mut inv, 3, 1062).is_empty());
}

#[test]
fn an_address_claimed_back_by_its_owner_is_a_conflict_and_a_failover_is_not() {
    let (owner, intruder, asker) = (mac(1), mac(2), mac(3));
    let gw = [192, 168, 1, 1];
    let mut inv = inventory(100, 3600);
    let mut rules = LanRules::new(RulesConfig::default());
    let mut all = Vec::new();
    // The owner answers a request; a second MAC announces the address; the owner answers
    // again a few seconds later: two live stations claim it.
    let steps = [
        (
            asker,
            10,
            arp(1, asker, [192, 168, 1, 9], MacAddr::ZERO, gw),
        ),
        (owner, 10, arp(2, owner, gw, asker, [192, 168, 1, 9])),
        (intruder, 12, arp(2, intruder, gw, MacAddr([0xff; 6]), gw)),
    ];
    for (src, t, fact) in steps {
        let ip = if src == asker { [192, 168, 1, 9] } else { gw };
        all.extend(run(&mut inv, &mut rules, &frame(src, ip, t, &[fact])));
    }
    assert!(all.is_empty(), "a move alone is a failover: {all:?}");
    all.extend(run(
        &mut inv,
        &mut rules,
        &frame(owner, gw, 14, &[arp(2, owner, gw, asker, [192, 168, 1, 9])]),
    ));
    assert_eq!(all.len(), 1, "{all:?}");
    let f = &all[0];
    assert_eq!(f.rule, Rule::ArpSpoofing);
    assert_eq!(f.target.to_string(), "192.168.1.1");
    assert_eq!(f.evidence["mac"], intruder.to_string());
    assert_eq!(f.evidence["owner_mac"], owner.to_string());
}

fn offer(server_id: [u8; 4], client: MacAddr) -> Lan {
    Lan::Dhcp(DhcpFact {
        msg: 2,
        xid: 1,
        chaddr: client,
        yiaddr: Ipv4Addr::new(192, 168, 1, 50),
        giaddr: Ipv4Addr::UNSPECIFIED,
        server_id: Some(Ipv4Addr::from(server_id)),
        requested: None,
        prefix_len: Some(24),
        host_name: NameRef::default(),
        fqdn: NameRef::default(),
        vendor_class: NameRef::default(),
        params: NameRef::default(),
        client_id: NameRef::default(),
    })
}

#[test]
fn a_dhcp_server_is_known_by_identifier_or_mac_and_a_second_one_is_rogue() {
    let mut inv = inventory(100, 3600);
    let mut rules = LanRules::new(RulesConfig::default());
    let client = mac(9);
    let mut found = Vec::new();
    let steps = [
        // The first server seen is the segment's.
        (mac(1), [192, 168, 1, 1]),
        // Its offers duplicated from the all-zero MAC (a tap's artefact).
        (MacAddr::ZERO, [192, 168, 1, 1]),
        // The same box answering for another subnet.
        (mac(1), [192, 168, 2, 1]),
        // Another server.
        (mac(7), [192, 168, 1, 66]),
        (mac(7), [192, 168, 1, 66]),
    ];
    for (t, (server, id)) in steps.into_iter().enumerate() {
        let batch = frame(server, id, 100 + t as i64 * 5, &[offer(id, client)]);
        found.extend(run(&mut inv, &mut rules, &batch));
    }
    let rogue: Vec<_> = found.iter().filter(|f| f.rule == Rule::RogueDhcp).collect();
    assert_eq!(
        rogue.len(),
        2,
        "one finding per second of the episode: {found:?}"
    );
    assert!(
        rogue
            .iter()
            .all(|f| f.source == Some(IpAddr::from([192, 168, 1, 66])))
    );
    assert_eq!(rogue[0].evidence["server_mac"], mac(7).to_string());
}

#[test]
fn randomised_macs_with_one_dhcp_client_id_are_one_device() {
    use crate::model::device::{Device, DeviceName};
    let phone = |mac: [u8; 6], last_seen: f64, bytes: u64| Device {
        mac: MacAddr(mac),
        last_seen,
        first_seen: last_seen - 10.0,
        bytes_sent: bytes,
        client_id: Some("01aabbccddeeff".into()),
        names: vec![DeviceName {
            name: "Pixel-7".into(),
            source: "dhcp".into(),
            last_seen,
        }],
        ..Device::default()
    };
    let devices = [
        phone([0x2a, 1, 2, 3, 4, 5], 100.0, 10),
        phone([0x3e, 9, 9, 9, 9, 9], 200.0, 5),
        // A registered MAC with the same id stays itself (not a private address).
        phone([0x00, 0x0c, 0x29, 1, 1, 1], 150.0, 1),
    ];
    let groups = super::view::group(devices.iter());
    assert_eq!(groups.len(), 2);
    let (shown, macs) = &groups[0];
    assert_eq!(
        shown.mac,
        MacAddr([0x3e, 9, 9, 9, 9, 9]),
        "the latest seen is shown"
    );
    assert_eq!(
        macs,
        &[
            MacAddr([0x3e, 9, 9, 9, 9, 9]),
            MacAddr([0x2a, 1, 2, 3, 4, 5])
        ]
    );
    assert_eq!(shown.bytes_sent, 15);
    assert_eq!(shown.first_seen, 90.0);
}

#[test]
fn a_neighbour_advertisement_fight_is_spoofing_too() {
    let (owner, intruder) = (mac(1), mac(2));
    let target: std::net::Ipv6Addr = "fe80::1".parse().unwrap();
    let na = |lladdr: MacAddr| Lan::Ndp {
        kind: 136,
        target,
        lladdr: Some(lladdr),
        solicited: false,
        override_: true,
    };
    let mut inv = inventory(100, 3600);
    let mut rules = LanRules::new(RulesConfig::default());
    let mut found = Vec::new();
    for (src, t) in [(owner, 10), (intruder, 11), (owner, 12)] {
        found.extend(run(
            &mut inv,
            &mut rules,
            &frame(src, [192, 168, 1, 1], t, &[na(src)]),
        ));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].target.to_string(), "fe80::1");
    assert_eq!(found[0].evidence["mac"], intruder.to_string());
}

#[test]
fn a_flood_of_forged_arp_claims_keeps_the_rules_state_bounded() {
    let mut inv = inventory(64, 3600);
    let mut rules = LanRules::new(RulesConfig::default());
    for i in 0..40_000u32 {
        let b = i.to_be_bytes();
        let forged = MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]]);
        let claimed = [192, 168, b[2], b[3]];
        let fact = arp(2, forged, claimed, mac(1), [192, 168, 0, 1]);
        run(&mut inv, &mut rules, &frame(forged, claimed, 10, &[fact]));
    }
    // The maps stop at their cap and count what they turned away.
    assert!(rules.stats.refused > 20_000, "{:?}", rules.stats);
    assert!(inv.len() <= 64);
}

#[test]
fn a_name_announced_for_another_stations_address_is_not_taken() {
    use crate::packet::LanNameSource;
    let mut inv = inventory(100, 3600);
    // The iMac uses 192.168.1.77; a sleep proxy (192.168.1.2) answers for it.
    inv.observe(&frame(mac(1), [192, 168, 1, 77], 10, &[]), &[]);
    let announce = |src: MacAddr, ip: [u8; 4], secs: i64| {
        let mut batch = frame(src, ip, secs, &[]);
        batch.names.extend_from_slice(b"Lucas-iMac.local");
        batch.lan.push(LanFact {
            packet: 0,
            fact: Lan::Name {
                source: LanNameSource::Mdns,
                name: NameRef { offset: 0, len: 16 },
                addr: Some(IpAddr::from([192, 168, 1, 77])),
            },
        });
        batch
    };
    inv.observe(&announce(mac(2), [192, 168, 1, 2], 11), &[]);
    assert!(
        inv.get(mac(2)).unwrap().names.is_empty(),
        "the proxy is not the iMac"
    );
    inv.observe(&announce(mac(1), [192, 168, 1, 77], 12), &[]);
    assert_eq!(inv.get(mac(1)).unwrap().names[0].name, "Lucas-iMac.local");
}

#[test]
fn minutes_closed_faster_than_they_are_taken_are_capped_and_counted() {
    // Packet time a replay at full speed runs through: a new minute every frame, never
    // taken. Each frame closes the previous minute of its one station.
    let mut inv = inventory(64, 0);
    let frames = 70_000i64;
    for i in 0..frames {
        inv.observe(&frame(mac(1), [192, 168, 1, 1], i * 60, &[]), &[]);
    }
    inv.close_minute();
    let minutes = inv.take_minutes();
    assert_eq!(minutes.len(), 65_536);
    assert_eq!(inv.minutes_dropped, frames as u64 - 65_536);
    // The first minutes were kept (60 bytes each, the frame's length), in order.
    assert_eq!(minutes[0].start, 0);
    assert_eq!(minutes[0].bytes_sent, 60);
    assert_eq!(minutes[65_535].start, 65_535 * 60);
    // Taken, the next minutes are kept again.
    inv.observe(&frame(mac(1), [192, 168, 1, 1], frames * 60, &[]), &[]);
    inv.close_minute();
    assert_eq!(inv.take_minutes().len(), 1);
}
