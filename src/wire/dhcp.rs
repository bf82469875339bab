//! DHCPv4 (RFC 2131/2132) through smoltcp's packet view, and DHCPv6 (RFC 8415), whose
//! option walk smoltcp lacks (and for which the DHCP crates decode whole messages into
//! allocated maps), read here: the facts a device inventory and the rogue-server rule need.
//!
//! Parsing only: the byte-string facts are appended to a caller's arena, and every option
//! length is checked against the message before use.

use std::net::Ipv4Addr;

use smoltcp::wire::DhcpPacket;

use crate::packet::{DhcpFact, MacAddr, NameRef};

/// UDP ports of DHCPv4 (server, client) and DHCPv6 (client, server).
pub const V4_PORTS: [u16; 2] = [67, 68];
pub const V6_PORTS: [u16; 2] = [546, 547];

/// Longest option value kept from one option (host names, vendor classes, client ids).
const MAX_VALUE: usize = 255;

/// The DHCPv4 message `udp` carries, or `None` when it is not one (too short, wrong magic
/// cookie, not Ethernet addressing, no message type).
pub fn v4(udp: &[u8], arena: &mut Vec<u8>) -> Option<DhcpFact> {
    const MAGIC: u32 = 0x6382_5363;
    let packet = DhcpPacket::new_checked(udp).ok()?;
    if packet.magic_number() != MAGIC || packet.hardware_len() != 6 {
        return None;
    }
    let mut fact = DhcpFact {
        msg: 0,
        xid: packet.transaction_id(),
        chaddr: MacAddr(packet.client_hardware_address().0),
        yiaddr: packet.your_ip(),
        giaddr: packet.relay_agent_ip(),
        server_id: None,
        requested: None,
        prefix_len: None,
        host_name: NameRef::default(),
        fqdn: NameRef::default(),
        vendor_class: NameRef::default(),
        params: NameRef::default(),
        client_id: NameRef::default(),
    };
    let v4addr = |d: &[u8]| <[u8; 4]>::try_from(d).ok().map(Ipv4Addr::from);
    for option in packet.options() {
        let data = option.data;
        match option.kind {
            53 if data.len() == 1 => fact.msg = data[0],
            54 => fact.server_id = v4addr(data),
            50 => fact.requested = v4addr(data),
            1 => {
                fact.prefix_len = v4addr(data)
                    .map(|m| m.to_bits())
                    .filter(|m| m.leading_ones() + m.trailing_zeros() == 32)
                    .map(|m| m.leading_ones() as u8)
            }
            12 => fact.host_name = put(arena, trim_nul(data)),
            60 => fact.vendor_class = put(arena, trim_nul(data)),
            55 => fact.params = put(arena, data),
            61 => fact.client_id = put(arena, data),
            // RFC 4702: flags, two obsolete rcodes, then the name: DNS wire form when the
            // E flag is set, else ASCII (as older Windows clients send it).
            81 if data.len() > 3 => {
                let name = &data[3..];
                fact.fqdn = if data[0] & 0x04 != 0 {
                    let start = arena.len();
                    match crate::wire::dns::read_plain_name(name, arena) {
                        Ok(()) => NameRef {
                            offset: start as u32,
                            len: (arena.len() - start) as u16,
                        },
                        Err(_) => NameRef::default(),
                    }
                } else {
                    put(arena, trim_nul(name))
                };
            }
            _ => {}
        }
    }
    (fact.msg != 0).then_some(fact)
}

/// A DHCPv6 message's facts: its type (the relayed message's, for a relay), whether it was
/// relayed, and the client identifier (DUID), client FQDN (option 39, dotted) and the first
/// vendor-class datum (option 16) in the arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6Fact {
    pub msg: u8,
    pub relayed: bool,
    pub duid: NameRef,
    pub fqdn: NameRef,
    pub vendor_class: NameRef,
}

/// DHCPv6 message types that are relays (RELAY-FORW, RELAY-REPL): a 34-byte header, then
/// options, one of which (9) holds the relayed message.
const RELAY_FORW: u8 = 12;
const RELAY_REPL: u8 = 13;

/// Relays nested before giving up (RFC 8415 allows 8 hops).
const MAX_RELAYS: usize = 8;

/// The DHCPv6 message `udp` carries, or `None` when it does not parse.
pub fn v6(udp: &[u8], arena: &mut Vec<u8>) -> Option<V6Fact> {
    let mut msg = udp;
    let mut relayed = false;
    for _ in 0..=MAX_RELAYS {
        let kind = *msg.first()?;
        if kind == RELAY_FORW || kind == RELAY_REPL {
            let options = msg.get(34..)?;
            relayed = true;
            msg = options_of(options).find(|(code, _)| *code == 9)?.1;
            continue;
        }
        if kind == 0 || msg.len() < 4 {
            return None;
        }
        let mut fact = V6Fact {
            msg: kind,
            relayed,
            ..V6Fact::default()
        };
        for (code, data) in options_of(&msg[4..]) {
            match code {
                1 => fact.duid = put(arena, data),
                // RFC 4704: flags, then the name in DNS wire form.
                39 if data.len() > 1 => {
                    let start = arena.len();
                    if crate::wire::dns::read_plain_name(&data[1..], arena).is_ok() {
                        fact.fqdn = NameRef {
                            offset: start as u32,
                            len: (arena.len() - start) as u16,
                        };
                    }
                }
                // RFC 8415 §21.16: enterprise number, then length-prefixed data.
                16 if data.len() >= 6 => {
                    let len = usize::from(u16::from_be_bytes([data[4], data[5]]));
                    if let Some(first) = data.get(6..6 + len) {
                        fact.vendor_class = put(arena, first);
                    }
                }
                _ => {}
            }
        }
        return Some(fact);
    }
    None
}

/// The (code, value) options of a DHCPv6 option area, up to the first that overruns it.
fn options_of(mut area: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let head = area.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = area.get(4..4 + len)?;
        area = &area[4 + len..];
        Some((code, data))
    })
}

/// Host names and vendor classes are sometimes sent with a trailing NUL.
fn trim_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    &data[..end]
}

fn put(arena: &mut Vec<u8>, data: &[u8]) -> NameRef {
    let data = &data[..data.len().min(MAX_VALUE)];
    let name = NameRef {
        offset: arena.len() as u32,
        len: data.len() as u16,
    };
    arena.extend_from_slice(data);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BOOTP header with Ethernet addressing and the magic cookie, then `options`.
    fn v4_message(options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 240];
        m[0] = 1;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        m[16..20].copy_from_slice(&[192, 168, 1, 10]);
        m[28..34].copy_from_slice(&[0x00, 0x0c, 0x29, 0x59, 0xfd, 0x21]);
        m[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        m.extend_from_slice(options);
        m.push(255);
        m
    }

    #[test]
    fn reads_the_options_an_inventory_needs() {
        // RFC 2132 options 53 (DISCOVER), 12, 60, 55, 61, 50, 1, and RFC 4702's 81 with the
        // E flag (wire-form name).
        let mut opts = vec![53, 1, 1, 12, 7];
        opts.extend_from_slice(b"ubuntu2");
        opts.extend_from_slice(&[60, 8]);
        opts.extend_from_slice(b"MSFT 5.0");
        opts.extend_from_slice(&[55, 3, 1, 3, 6, 61, 7, 1, 0, 0x0c, 0x29, 0x59, 0xfd, 0x21]);
        opts.extend_from_slice(&[50, 4, 192, 168, 1, 10, 1, 4, 255, 255, 255, 0]);
        opts.extend_from_slice(&[81, 11, 0x04, 0, 0, 3, b'p', b'c', b'1', 3, b'l', b'a', b'n']);
        let mut arena = Vec::new();
        let f = v4(&v4_message(&opts), &mut arena).expect("a DHCP message");
        let text = |r: NameRef| &arena[r.offset as usize..(r.offset + u32::from(r.len)) as usize];
        assert_eq!(f.msg, 1);
        assert_eq!(f.xid, 0xdead_beef);
        assert_eq!(f.chaddr.to_string(), "00:0c:29:59:fd:21");
        assert_eq!(f.yiaddr, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(text(f.host_name), b"ubuntu2");
        assert_eq!(text(f.vendor_class), b"MSFT 5.0");
        assert_eq!(text(f.params), &[1, 3, 6]);
        assert_eq!(text(f.client_id), &[1, 0, 0x0c, 0x29, 0x59, 0xfd, 0x21]);
        assert_eq!(text(f.fqdn), b"pc1.lan");
        assert_eq!(f.requested, Some(Ipv4Addr::new(192, 168, 1, 10)));
        assert_eq!(f.prefix_len, Some(24));
    }

    #[test]
    fn rejects_what_is_not_dhcp() {
        let mut arena = Vec::new();
        let mut m = v4_message(&[53, 1, 1]);
        m[236] = 0;
        assert!(v4(&m, &mut arena).is_none(), "wrong magic cookie");
        assert!(v4(&m[..100], &mut arena).is_none(), "truncated header");
        assert!(
            v4(&v4_message(&[12, 200, 1]), &mut arena).is_none(),
            "no type"
        );
        assert!(v6(&[1, 0, 0], &mut arena).is_none());
        // An option that claims more bytes than the message holds ends the walk.
        let overrun = [1, 0, 0, 1, 0, 39, 0, 200, 0];
        assert_eq!(v6(&overrun, &mut arena).map(|f| f.fqdn.len), Some(0));
    }

    #[test]
    fn reads_a_relayed_solicit() {
        // RELAY-FORW: hop count, link and peer addresses, then option 9 with a SOLICIT that
        // has a client FQDN (RFC 4704) and a vendor class (enterprise 40712).
        let mut inner = vec![1, 0xaa, 0xbb, 0xcc];
        inner.extend_from_slice(&[0, 39, 0, 14, 0x01, 11]);
        inner.extend_from_slice(b"raspberrypi");
        inner.push(0);
        inner.extend_from_slice(&[0, 16, 0, 9, 0, 0, 0x9f, 0x08, 0, 3]);
        inner.extend_from_slice(b"pi!");
        let mut relay = vec![12, 0];
        relay.extend_from_slice(&[0; 32]);
        relay.extend_from_slice(&[0, 9]);
        relay.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        relay.extend_from_slice(&inner);
        let mut arena = Vec::new();
        let f = v6(&relay, &mut arena).expect("a relayed SOLICIT");
        assert_eq!((f.msg, f.relayed), (1, true));
        let text = |r: NameRef| &arena[r.offset as usize..(r.offset + u32::from(r.len)) as usize];
        assert_eq!(text(f.fqdn), b"raspberrypi");
        assert_eq!(text(f.vendor_class), b"pi!");
    }
}
