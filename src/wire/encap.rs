//! Encapsulation headers: the tunnels (GRE and PPTP's enhanced GRE, ERSPAN I/II/III, VXLAN,
//! Geneve, GTP-U, Teredo, AYIYA) and the link-layer wrappers (MPLS, PPPoE, 802.1Q/QinQ,
//! 802.1ah PBB, VN-Tag, Cisco FabricPath) that sit between a capture and the packet inside.
//!
//! Each function reads one header and says what follows it; what to do with that (nesting,
//! depth, counting) is the decoder's business. Every length field is checked against the
//! bytes present before it is used, and a header cut short is `Cut`, never a panic.

use super::link::{Inner, ether_type};

/// The header ended before its fixed or announced length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut;

/// EtherTypes (and GRE protocol types, which share the registry) of encapsulations.
pub mod kind {
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tags.
    pub const QINQ_OLD1: u16 = 0x9100;
    pub const QINQ_OLD2: u16 = 0x9200;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const PBB: u16 = 0x88e7;
    pub const VN_TAG: u16 = 0x8926;
    pub const FABRICPATH: u16 = 0x8903;
    /// Transparent Ethernet bridging: an Ethernet frame inside GRE (NVGRE) or Geneve.
    pub const ETHERNET_BRIDGING: u16 = 0x6558;
    /// ERSPAN types I and II (told apart by GRE's sequence-number bit).
    pub const ERSPAN: u16 = 0x88be;
    pub const ERSPAN_III: u16 = 0x22eb;
    /// PPP inside (PPTP's enhanced) GRE.
    pub const PPP: u16 = 0x880b;
}

/// What an encapsulation header carries, and the number that identifies its tunnel
/// (VNI, GRE key, TEID, ERSPAN session, PPPoE session, MPLS label), when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encap<'a> {
    pub inner: Inner<'a>,
    pub id: Option<u32>,
}

fn be16(b: &[u8], at: usize) -> Result<u16, Cut> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(Cut)
}

fn be32(b: &[u8], at: usize) -> Result<u32, Cut> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(Cut)
}

fn rest(b: &[u8], at: usize) -> Result<&[u8], Cut> {
    b.get(at..).ok_or(Cut)
}

/// An IP packet identified by its version nibble (GTP-U, MPLS and ERSPAN III say no more).
fn ip_by_version(b: &[u8]) -> Inner<'_> {
    match b.first().map(|v| v >> 4) {
        Some(4) => Inner::EtherType(ether_type::IPV4, b),
        Some(6) => Inner::EtherType(ether_type::IPV6, b),
        _ => Inner::Ip(b),
    }
}

/// A GRE header (RFC 2784 with RFC 2890's key and sequence number, RFC 1701's routing, and
/// version 1, PPTP's enhanced GRE of RFC 2637).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gre<'a> {
    pub version: u8,
    /// The payload's EtherType.
    pub protocol: u16,
    /// Version 0: the key; version 1: the call id (the low half of the key field).
    pub key: Option<u32>,
    pub has_sequence: bool,
    pub payload: &'a [u8],
}

/// Reads a GRE header.
pub fn gre(b: &[u8]) -> Result<Gre<'_>, Cut> {
    let flags = *b.first().ok_or(Cut)?;
    let flags2 = *b.get(1).ok_or(Cut)?;
    let protocol = be16(b, 2)?;
    let (checksum, routing, has_key, has_sequence) = (
        flags & 0x80 != 0,
        flags & 0x40 != 0,
        flags & 0x20 != 0,
        flags & 0x10 != 0,
    );
    let version = flags2 & 0x07;
    let mut at = 4;
    if checksum || routing {
        at += 4;
    }
    let mut key = None;
    if has_key {
        let k = be32(b, at)?;
        key = Some(if version == 1 { k & 0xffff } else { k });
        at += 4;
    }
    if has_sequence {
        at += 4;
    }
    // Version 1's acknowledgment number.
    if version == 1 && flags2 & 0x80 != 0 {
        at += 4;
    }
    if routing {
        // Source route entries until the null one: address family (2), offset (1), length (1).
        loop {
            let family = be16(b, at)?;
            let len = usize::from(*b.get(at + 3).ok_or(Cut)?);
            at += 4 + len;
            if family == 0 && len == 0 {
                break;
            }
        }
    }
    Ok(Gre {
        version,
        protocol,
        key,
        has_sequence,
        payload: rest(b, at)?,
    })
}

/// ERSPAN type II (8-byte header): the session id and the mirrored Ethernet frame.
pub fn erspan_ii(b: &[u8]) -> Result<Encap<'_>, Cut> {
    let session = be16(b, 2)? & 0x03ff;
    be32(b, 4)?;
    Ok(Encap {
        inner: Inner::Ethernet(rest(b, 8)?),
        id: Some(u32::from(session)),
    })
}

/// ERSPAN type III (12-byte header, then an 8-byte platform sub-header when the O bit is
/// set): the session id and the mirrored frame (Ethernet, or IP when the frame type says 2).
pub fn erspan_iii(b: &[u8]) -> Result<Encap<'_>, Cut> {
    let session = be16(b, 2)? & 0x03ff;
    let flags = be16(b, 10)?;
    let frame_type = (flags >> 10) & 0x1f;
    let platform = flags & 0x0001 != 0;
    let at = if platform { 20 } else { 12 };
    let payload = rest(b, at)?;
    if platform {
        be32(b, 16)?;
    }
    let inner = match frame_type {
        2 => ip_by_version(payload),
        _ => Inner::Ethernet(payload),
    };
    Ok(Encap {
        inner,
        id: Some(u32::from(session)),
    })
}

/// VXLAN (RFC 7348): `None` when the valid-VNI flag is clear (not a VXLAN data frame).
pub fn vxlan(b: &[u8]) -> Result<Option<Encap<'_>>, Cut> {
    let word = be32(b, 0)?;
    let vni = be32(b, 4)? >> 8;
    if word & 0x0800_0000 == 0 {
        return Ok(None);
    }
    Ok(Some(Encap {
        inner: Inner::Ethernet(rest(b, 8)?),
        id: Some(vni),
    }))
}

/// Geneve (RFC 8926), options skipped by their announced length: `None` for a version
/// other than 0.
pub fn geneve(b: &[u8]) -> Result<Option<Encap<'_>>, Cut> {
    let first = *b.first().ok_or(Cut)?;
    if first >> 6 != 0 {
        return Ok(None);
    }
    let options = usize::from(first & 0x3f) * 4;
    let protocol = be16(b, 2)?;
    let vni = be32(b, 4)? >> 8;
    let payload = rest(b, 8 + options)?;
    let inner = match protocol {
        kind::ETHERNET_BRIDGING => Inner::Ethernet(payload),
        other => Inner::EtherType(other, payload),
    };
    Ok(Some(Encap {
        inner,
        id: Some(vni),
    }))
}

/// GTPv1-U (3GPP TS 29.281): a G-PDU's TEID and user packet, extension headers skipped;
/// `None` for other versions and for signalling messages (echo, error indication, ...).
pub fn gtp_u(b: &[u8]) -> Result<Option<Encap<'_>>, Cut> {
    const G_PDU: u8 = 0xff;
    let flags = *b.first().ok_or(Cut)?;
    let message = *b.get(1).ok_or(Cut)?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || message != G_PDU {
        return Ok(None);
    }
    let teid = be32(b, 4)?;
    let mut at = 8;
    if flags & 0x07 != 0 {
        // Sequence number (2), N-PDU number (1), next extension header type (1).
        let mut next = *b.get(at + 3).ok_or(Cut)?;
        at += 4;
        while next != 0 {
            // Each extension: length in 4-octet units, content, then the next type.
            let units = usize::from(*b.get(at).ok_or(Cut)?);
            if units == 0 {
                return Err(Cut);
            }
            let end = at + units * 4;
            next = *b.get(end - 1).ok_or(Cut)?;
            at = end;
        }
    }
    Ok(Some(Encap {
        inner: ip_by_version(rest(b, at)?),
        id: Some(teid),
    }))
}

/// Teredo (RFC 4380): strips the authentication and origin indicators and returns the IPv6
/// packet, or `None` when the payload is not one: an IPv6 header whose payload length fills
/// the datagram exactly. `off_port` (for ports other than 3544) also asks that one address
/// be a Teredo (2001::/32) or link-local one, so that ordinary UDP is not mistaken for
/// Teredo. What does not parse is simply not Teredo.
pub fn teredo(b: &[u8], off_port: bool) -> Option<&[u8]> {
    let mut at = 0;
    if be16(b, at).ok() == Some(0x0001) {
        let (id_len, auth_len) = (*b.get(at + 2)?, *b.get(at + 3)?);
        // Client id, authentication value, nonce (8) and confirmation byte (1).
        at += 4 + usize::from(id_len) + usize::from(auth_len) + 9;
    }
    if be16(b, at).ok() == Some(0x0000) {
        at += 8;
    }
    let ip = b.get(at..).filter(|ip| ip.len() >= 40 && ip[0] >> 4 == 6)?;
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if payload_len + 40 != ip.len() {
        return None;
    }
    let teredo_or_local = |a: &[u8]| a[..4] == [0x20, 0x01, 0, 0] || a[..2] == [0xfe, 0x80];
    if off_port && !(teredo_or_local(&ip[8..24]) || teredo_or_local(&ip[24..40])) {
        return None;
    }
    Some(ip)
}

/// AYIYA (draft-massar-v6ops-ayiya): the forwarded IPv4 or IPv6 packet, `None` for other
/// operations (heartbeats, echo, queries) and payloads.
pub fn ayiya(b: &[u8]) -> Result<Option<Encap<'_>>, Cut> {
    let id_len = 1usize << (*b.first().ok_or(Cut)? >> 4);
    let sig_len = usize::from(*b.get(1).ok_or(Cut)? >> 4) * 4;
    let opcode = *b.get(2).ok_or(Cut)? & 0x0f;
    let next = *b.get(3).ok_or(Cut)?;
    const FORWARD: u8 = 1;
    if opcode != FORWARD {
        return Ok(None);
    }
    let payload = rest(b, 8 + id_len + sig_len)?;
    let inner = match next {
        4 => Inner::EtherType(ether_type::IPV4, payload),
        41 => Inner::EtherType(ether_type::IPV6, payload),
        _ => return Ok(None),
    };
    Ok(Some(Encap { inner, id: None }))
}

/// An MPLS label stack: skips to the bottom of stack and guesses what follows, as every
/// monitor must (MPLS does not say): IPv4 or IPv6 by the version nibble, an Ethernet
/// pseudowire after a zero nibble (the RFC 4385 control word, skipped) or otherwise.
/// The id is the bottom label.
pub fn mpls(b: &[u8]) -> Result<Encap<'_>, Cut> {
    let mut at = 0;
    let label = loop {
        let entry = be32(b, at)?;
        at += 4;
        if entry & 0x100 != 0 {
            break entry >> 12;
        }
    };
    let payload = rest(b, at)?;
    let inner = match payload.first().map(|v| v >> 4) {
        Some(4) | Some(6) => ip_by_version(payload),
        Some(0) => Inner::Ethernet(rest(payload, 4)?),
        Some(_) => Inner::Ethernet(payload),
        None => return Err(Cut),
    };
    Ok(Encap {
        inner,
        id: Some(label),
    })
}

/// A PPPoE session frame (RFC 2516): the session id and the PPP payload (IPv4, IPv6, or a
/// PPP control protocol counted as non-IP).
pub fn pppoe_session(b: &[u8]) -> Result<Encap<'_>, Cut> {
    let session = be16(b, 2)?;
    be16(b, 4)?;
    Ok(Encap {
        inner: ppp_payload(rest(b, 6)?)?,
        id: Some(u32::from(session)),
    })
}

/// A PPP frame's protocol field (possibly compressed, possibly after HDLC address and
/// control bytes), mapped to what it carries.
pub fn ppp_payload(b: &[u8]) -> Result<Inner<'_>, Cut> {
    let b = match b {
        [0xff, 0x03, tail @ ..] => tail,
        _ => b,
    };
    let (protocol, payload) = match b {
        [first, tail @ ..] if first & 1 == 1 => (u16::from(*first), tail),
        [hi, lo, tail @ ..] => (u16::from_be_bytes([*hi, *lo]), tail),
        _ => return Err(Cut),
    };
    Ok(match protocol {
        0x0021 => Inner::EtherType(ether_type::IPV4, payload),
        0x0057 => Inner::EtherType(ether_type::IPV6, payload),
        0x0281 => Inner::EtherType(kind::MPLS_UNICAST, payload),
        other => Inner::NonIp(other),
    })
}

/// One link-layer step inside an Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStep<'a> {
    /// A VLAN tag (802.1Q, 802.1ad or a pre-standard QinQ tag): its id and what follows.
    Vlan {
        id: u16,
        ether_type: u16,
        rest: &'a [u8],
    },
    /// 802.1ah PBB: the I-SID and the customer Ethernet frame.
    Pbb { isid: u32, frame: &'a [u8] },
    /// VN-Tag: what follows the tag.
    VnTag { ether_type: u16, rest: &'a [u8] },
}

/// Reads the tag that `ether_type` announces at the start of `b`, if it is a link-layer
/// tag; `Ok(None)` for any other EtherType.
pub fn link_step(ether_type: u16, b: &[u8]) -> Result<Option<LinkStep<'_>>, Cut> {
    Ok(Some(match ether_type {
        kind::VLAN | kind::QINQ | kind::QINQ_OLD1 | kind::QINQ_OLD2 => LinkStep::Vlan {
            id: be16(b, 0)? & 0x0fff,
            ether_type: be16(b, 2)?,
            rest: rest(b, 4)?,
        },
        kind::PBB => {
            let isid = be32(b, 0)? & 0x00ff_ffff;
            // I-TAG (4), then the customer frame's addresses and EtherType.
            be16(b, 16)?;
            LinkStep::Pbb {
                isid,
                frame: rest(b, 4)?,
            }
        }
        kind::VN_TAG => LinkStep::VnTag {
            ether_type: be16(b, 4)?,
            rest: rest(b, 6)?,
        },
        _ => return Ok(None),
    }))
}

/// Cisco FabricPath: a 16-byte outer header (outer addresses, EtherType 0x8903, FTag and
/// TTL) in front of a classic Ethernet frame; `frame` starts at the outer destination.
pub fn fabricpath(frame: &[u8]) -> Result<&[u8], Cut> {
    be16(frame, 28)?;
    rest(frame, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_reads_key_and_sequence_and_skips_checksum() {
        // C, K and S set: checksum+reserved, key 0x01020304, sequence 9, then IPv4.
        let b = [
            0xb0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 9, 0x45,
        ];
        let g = gre(&b).unwrap();
        assert_eq!(g.protocol, 0x0800);
        assert_eq!(g.key, Some(0x0102_0304));
        assert!(g.has_sequence);
        assert_eq!(g.payload, &[0x45]);
        for cut in 0..16 {
            assert_eq!(gre(&b[..cut]), Err(Cut), "cut at {cut}");
        }
    }

    #[test]
    fn enhanced_gre_keeps_the_call_id_and_skips_the_ack() {
        // Version 1, K and S set, A set: payload length 0x0010, call id 0x1234, seq, ack.
        let b = [
            0x30, 0x81, 0x88, 0x0b, 0x00, 0x10, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 2, 0xff,
        ];
        let g = gre(&b).unwrap();
        assert_eq!((g.version, g.protocol, g.key), (1, kind::PPP, Some(0x1234)));
        assert_eq!(g.payload, &[0xff]);
    }

    #[test]
    fn gre_routing_entries_end_at_the_null_entry() {
        // R set: checksum/offset word, one SRE of 4 bytes, the null SRE, then the payload.
        let b = [
            0x40, 0, 0x08, 0x00, 0, 0, 0, 0, 0x08, 0x00, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0, 0x45,
        ];
        assert_eq!(gre(&b).unwrap().payload, &[0x45]);
        assert_eq!(gre(&b[..17]), Err(Cut));
    }

    #[test]
    fn vxlan_needs_the_vni_flag() {
        let b = [0x08, 0, 0, 0, 0x00, 0x01, 0x2c, 0, 0xaa];
        let e = vxlan(&b).unwrap().unwrap();
        assert_eq!(e.id, Some(300));
        assert_eq!(e.inner, Inner::Ethernet(&[0xaa]));
        assert_eq!(vxlan(&[0; 9]), Ok(None));
        assert_eq!(vxlan(&b[..7]), Err(Cut));
    }

    #[test]
    fn geneve_skips_options_by_length() {
        // 2 words of options, protocol 0x6558, VNI 7.
        let mut b = vec![0x02, 0, 0x65, 0x58, 0, 0, 7, 0];
        b.extend_from_slice(&[0xee; 8]);
        b.push(0xaa);
        let e = geneve(&b).unwrap().unwrap();
        assert_eq!((e.id, e.inner), (Some(7), Inner::Ethernet(&[0xaa])));
        assert_eq!(geneve(&b[..15]), Err(Cut));
        b[0] = 0x42; // version 1
        assert_eq!(geneve(&b), Ok(None));
    }

    #[test]
    fn gtp_u_skips_extension_headers() {
        // E set, G-PDU, TEID 0xdeadbeef, seq/npdu, next ext 0x85 (PDU session container,
        // one unit), then IPv4.
        let b = [
            0x34, 0xff, 0, 12, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0x85, 1, 0x10, 0x05, 0x00, 0x45,
        ];
        let e = gtp_u(&b).unwrap().unwrap();
        assert_eq!(e.id, Some(0xdead_beef));
        assert_eq!(e.inner, Inner::EtherType(ether_type::IPV4, &[0x45]));
        assert_eq!(gtp_u(&b[..15]), Err(Cut));
        let mut zero_len = b;
        zero_len[12] = 0;
        assert_eq!(gtp_u(&zero_len), Err(Cut));
        let mut echo = b;
        echo[1] = 1;
        assert_eq!(gtp_u(&echo), Ok(None));
    }

    #[test]
    fn mpls_finds_the_bottom_and_guesses_the_payload() {
        // Two labels (16, then 17 with S), then IPv6.
        let b = [0, 0x01, 0x00, 64, 0, 0x01, 0x11, 64, 0x60, 0];
        let e = mpls(&b).unwrap();
        assert_eq!(e.id, Some(17));
        assert_eq!(e.inner, Inner::EtherType(ether_type::IPV6, &b[8..]));
        // Control word then Ethernet.
        let pw = [0, 0x01, 0x01, 64, 0, 0, 0, 0, 0xaa];
        assert_eq!(mpls(&pw).unwrap().inner, Inner::Ethernet(&[0xaa]));
        // No bottom of stack before the end.
        assert_eq!(mpls(&[0, 0x01, 0x00, 64]), Err(Cut));
    }

    #[test]
    fn teredo_strips_indicators_and_is_strict_off_port() {
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        ip6.extend_from_slice(&[0x20, 0x01, 0, 0]);
        ip6.extend_from_slice(&[0; 12]);
        ip6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        ip6.extend_from_slice(&[0; 12]);
        let mut b = vec![0, 0, 0x0d, 0x94, 1, 2, 3, 4]; // origin indication
        b.extend_from_slice(&ip6);
        assert_eq!(teredo(&b, true), Some(&ip6[..]));
        // An authentication indicator with a 1-byte id and no auth value before it.
        let mut auth = vec![0, 1, 1, 0, 0xaa];
        auth.extend_from_slice(&[0; 9]);
        auth.extend_from_slice(&b);
        assert_eq!(teredo(&auth, true), Some(&ip6[..]));
        // A length that does not match is not Teredo; nor, off port 3544, are addresses
        // that are neither Teredo nor link-local.
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(teredo(&longer, false), None);
        let mut native = b.clone();
        native[8 + 8..8 + 12].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(teredo(&native, true), None);
        assert_eq!(teredo(&native, false), Some(&native[8..]));
        assert_eq!(teredo(&[0, 0, 1], false), None);
        assert_eq!(teredo(&[0, 1], false), None);
    }

    #[test]
    fn ayiya_forwards_ipv6() {
        // 4-byte identity (2^2), 0 signature, forward, next header 41, epoch.
        let b = [0x21, 0x00, 0x01, 41, 0, 0, 0, 0, 1, 2, 3, 4, 0x60];
        let e = ayiya(&b).unwrap().unwrap();
        assert_eq!(e.inner, Inner::EtherType(ether_type::IPV6, &[0x60]));
        assert_eq!(ayiya(&b[..11]), Err(Cut));
    }

    #[test]
    fn erspan_headers() {
        let mut ii = vec![0x10, 0x00, 0x00, 0x2a, 0, 0, 0, 0];
        ii.push(0xaa);
        let e = erspan_ii(&ii).unwrap();
        assert_eq!((e.id, e.inner), (Some(42), Inner::Ethernet(&[0xaa])));
        assert_eq!(erspan_ii(&ii[..7]), Err(Cut));
        // Type III with the O bit: 12 + 8 bytes before the frame.
        let mut iii = vec![0x20, 0x00, 0x03, 0xff, 0, 0, 0, 0, 0, 0, 0x00, 0x01];
        iii.extend_from_slice(&[0; 8]);
        iii.push(0xbb);
        let e = erspan_iii(&iii).unwrap();
        assert_eq!((e.id, e.inner), (Some(1023), Inner::Ethernet(&[0xbb])));
        assert_eq!(erspan_iii(&iii[..19]), Err(Cut));
    }

    #[test]
    fn link_steps() {
        let vlan = [0x20, 0x0a, 0x08, 0x00, 0x45];
        assert_eq!(
            link_step(kind::VLAN, &vlan),
            Ok(Some(LinkStep::Vlan {
                id: 10,
                ether_type: 0x0800,
                rest: &[0x45]
            }))
        );
        assert_eq!(link_step(0x0800, &vlan), Ok(None));
        assert_eq!(link_step(kind::VN_TAG, &[0; 5]), Err(Cut));
        let mut pbb = vec![0, 0, 0x01, 0x00];
        pbb.extend_from_slice(&[0; 12]);
        pbb.extend_from_slice(&[0x08, 0x00]);
        match link_step(kind::PBB, &pbb).unwrap().unwrap() {
            LinkStep::Pbb { isid, frame } => assert_eq!((isid, frame.len()), (256, 14)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pppoe_session(&[0x11, 0, 0x12, 0x34, 0, 3, 0x00, 0x57, 0x60])
                .unwrap()
                .inner,
            Inner::EtherType(ether_type::IPV6, &[0x60])
        );
        assert_eq!(
            pppoe_session(&[0x11, 0, 0, 1, 0, 3, 0xc0, 0x21, 1])
                .unwrap()
                .inner,
            Inner::NonIp(0xc021)
        );
    }
}
