//! The facts a decoded packet gives about the stations of the local segment: ARP (smoltcp's
//! reader), neighbour discovery (smoltcp's), DHCPv4 and DHCPv6, and the names stations give
//! themselves over mDNS, LLMNR and NetBIOS. Read only for the packets that carry them, into
//! the batch's `lan` facts and name arena.

use std::net::IpAddr;

use smoltcp::wire::{ArpPacket, ArpRepr, Icmpv6Packet, NdiscNeighborFlags, NdiscRepr};

use super::{Decoded, LanBytes};
use crate::packet::{Lan, LanFact, LanNameSource, MacAddr, NameRef, PacketBatch, ip_proto};
use crate::wire::{dhcp, dns, netbios};

/// Names kept from one mDNS or LLMNR message: a responder announces a handful of its own.
const MAX_NAMES_PER_MESSAGE: usize = 8;

/// Whether `d` may say something about the segment: an ARP or NDP packet, or UDP to or
/// from a DHCP, DHCPv6, mDNS, LLMNR or NetBIOS port. Most packets are none of these.
#[inline]
pub(super) fn may_tell(d: &Decoded<'_>) -> bool {
    const fn lan_port(port: u16) -> bool {
        matches!(port, 67 | 68 | 137 | 138 | 546 | 547 | 5353 | 5355)
    }
    d.lan.is_some()
        || (d.meta.ip_proto == ip_proto::UDP
            && (lan_port(d.meta.src_port) || lan_port(d.meta.dst_port)))
}

/// Reads the segment facts of `d` (about to become packet `batch.len()`) into `batch`.
pub(super) fn read(d: &Decoded<'_>, batch: &mut PacketBatch) {
    let packet = batch.packets.len() as u32;
    let meta = &d.meta;
    let facts = &mut batch.lan;
    let arena = &mut batch.names;
    let mut push = |fact: Lan| facts.push(LanFact { packet, fact });
    match d.lan {
        Some(LanBytes::Arp(bytes)) => {
            if let Some(fact) = arp(bytes) {
                push(fact);
            }
            return;
        }
        Some(LanBytes::Ndp(bytes)) => {
            if let Some(fact) = ndp(bytes) {
                push(fact);
            }
            return;
        }
        None => {}
    }
    if meta.ip_proto != ip_proto::UDP {
        return;
    }
    let Some((_, udp)) = d.segment else {
        return;
    };
    let (src, dst) = (meta.src_port, meta.dst_port);
    let either = |ports: &[u16]| ports.contains(&src) || ports.contains(&dst);
    if either(&dhcp::V4_PORTS) {
        if let Some(fact) = dhcp::v4(udp, arena) {
            push(Lan::Dhcp(fact));
        }
    } else if either(&dhcp::V6_PORTS) {
        if let Some(f) = dhcp::v6(udp, arena) {
            push(Lan::Dhcp6 {
                msg: f.msg,
                relayed: f.relayed,
                duid: f.duid,
                fqdn: f.fqdn,
                vendor_class: f.vendor_class,
            });
        }
    } else if src == 5353 || src == 5355 || dst == 5353 {
        // Responses only: an mDNS or LLMNR responder (or an mDNS prober, in its authority
        // section, from any port) speaks for itself; a question names someone else.
        let source = if src == 5355 {
            LanNameSource::Llmnr
        } else {
            LanNameSource::Mdns
        };
        let is_response = udp.get(2).is_some_and(|f| f & 0x80 != 0);
        let probe = source == LanNameSource::Mdns && udp.len() >= 12 && udp[8..10] != [0, 0];
        if !(is_response || probe) {
            return;
        }
        let mut kept = 0;
        let _ = dns::owner_addresses(udp, arena, |range, addr, arena| {
            let name = NameRef {
                offset: range.start as u32,
                len: range.len() as u16,
            };
            // A host announces its name for each of its addresses: keep each name once.
            let text = &arena[range.clone()];
            let dup = facts
                .iter()
                .rev()
                .take_while(|f| f.packet == packet)
                .any(|f| {
                    matches!(f.fact, Lan::Name { name: n, .. }
                    if arena.get(n.offset as usize..n.offset as usize + usize::from(n.len))
                        == Some(text))
                });
            if dup || kept >= MAX_NAMES_PER_MESSAGE || !is_host_name(text) {
                arena.truncate(range.start);
                return;
            }
            kept += 1;
            facts.push(LanFact {
                packet,
                fact: Lan::Name {
                    source,
                    name,
                    addr: Some(addr),
                },
            });
        });
    } else if src == netbios::NAME_PORT {
        if let Some((name, addr, group)) =
            netbios::name_claim(udp).filter(|(n, _, _)| n.is_station())
        {
            let name = super::put_name(arena, Some(name.name()), 15);
            push(Lan::Name {
                source: if group {
                    LanNameSource::NbnsGroup
                } else {
                    LanNameSource::Nbns
                },
                name,
                addr: Some(IpAddr::V4(addr)),
            });
        }
    } else if src == netbios::DATAGRAM_PORT
        && let Some((name, addr)) = netbios::datagram_source(udp).filter(|(n, _)| n.is_station())
    {
        let name = super::put_name(arena, Some(name.name()), 15);
        push(Lan::Name {
            source: LanNameSource::Netbios,
            name,
            addr: Some(addr),
        });
    }
}

/// A host name as a station announces it: not a reverse-lookup name or a service instance.
fn is_host_name(name: &[u8]) -> bool {
    let lower = |suffix: &[u8]| {
        name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    !name.is_empty()
        && !lower(b".in-addr.arpa")
        && !lower(b".ip6.arpa")
        && !name.split(|&b| b == b'.').any(|l| l.first() == Some(&b'_'))
}

fn arp(bytes: &[u8]) -> Option<Lan> {
    let packet = ArpPacket::new_checked(bytes).ok()?;
    match ArpRepr::parse(&packet).ok()? {
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } => Some(Lan::Arp {
            op: u16::from(operation),
            sender_mac: MacAddr(source_hardware_addr.0),
            sender_ip: source_protocol_addr,
            target_mac: MacAddr(target_hardware_addr.0),
            target_ip: target_protocol_addr,
        }),
        _ => None,
    }
}

fn ndp(bytes: &[u8]) -> Option<Lan> {
    let packet = Icmpv6Packet::new_checked(bytes).ok()?;
    let kind = bytes[0];
    let mac = |ll: Option<smoltcp::wire::RawHardwareAddress>| {
        ll.and_then(|a| MacAddr::from_slice(a.as_bytes()))
    };
    let fact = |target, lladdr, flags: Option<NdiscNeighborFlags>| Lan::Ndp {
        kind,
        target,
        lladdr: mac(lladdr),
        solicited: flags.is_some_and(|f| f.contains(NdiscNeighborFlags::SOLICITED)),
        override_: flags.is_some_and(|f| f.contains(NdiscNeighborFlags::OVERRIDE)),
    };
    let unspecified = std::net::Ipv6Addr::UNSPECIFIED;
    Some(match NdiscRepr::parse(&packet).ok()? {
        NdiscRepr::RouterSolicit { lladdr } | NdiscRepr::RouterAdvert { lladdr, .. } => {
            fact(unspecified, lladdr, None)
        }
        NdiscRepr::NeighborSolicit {
            target_addr,
            lladdr,
        } => fact(target_addr, lladdr, None),
        NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        } => fact(target_addr, lladdr, Some(flags)),
        NdiscRepr::Redirect { .. } => return None,
    })
}
