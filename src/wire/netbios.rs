//! NetBIOS over TCP/IP (RFC 1001/1002): the names a Windows station registers or answers
//! for on the name service (UDP 137), and the source name of its datagrams (UDP 138, as
//! browser announcements are sent). Parsing only; nothing allocates.

use std::net::{IpAddr, Ipv4Addr};

/// UDP ports of the name and datagram services.
pub const NAME_PORT: u16 = 137;
pub const DATAGRAM_PORT: u16 = 138;

/// A NetBIOS name: 15 characters (space padded) and the suffix byte that says what it
/// names (0x00 workstation, 0x20 file server, 0x1d master browser, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetbiosName {
    pub bytes: [u8; 15],
    pub len: u8,
    pub suffix: u8,
}

impl NetbiosName {
    /// The name without its padding.
    pub fn name(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A name that stands for one station: the workstation (0x00) or server (0x20) service,
    /// a printable name that is not the `*` wildcard.
    pub fn is_station(&self) -> bool {
        matches!(self.suffix, 0x00 | 0x20)
            && self.len > 0
            && self.bytes[0] != b'*'
            && self.name().iter().all(|b| (0x21..0x7f).contains(b))
    }
}

/// Decodes the first-level encoding (RFC 1001 §14.1) of the 34-byte name field at `at`:
/// length 32, then 32 characters 'A'..'P' holding one half-byte each, then the empty scope.
fn encoded_name(msg: &[u8], at: usize) -> Option<NetbiosName> {
    let field = msg.get(at..at + 34)?;
    if field[0] != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, pair) in field[1..33].chunks_exact(2).enumerate() {
        let hi = pair[0].checked_sub(b'A').filter(|n| *n < 16)?;
        let lo = pair[1].checked_sub(b'A').filter(|n| *n < 16)?;
        raw[i] = (hi << 4) | lo;
    }
    let mut bytes = [0u8; 15];
    bytes.copy_from_slice(&raw[..15]);
    let len = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |p| p + 1) as u8;
    Some(NetbiosName {
        bytes,
        len,
        suffix: raw[15],
    })
}

/// What a name-service packet says a station is called: the name a registration (opcode
/// 5), refresh (8, 9) or multi-homed registration (15) or a positive query response
/// claims, the address of its first NB record, and whether the name is a group's (a
/// workgroup or domain the station belongs to) rather than its own.
pub fn name_claim(msg: &[u8]) -> Option<(NetbiosName, Ipv4Addr, bool)> {
    let head = msg.get(..12)?;
    let flags = u16::from_be_bytes([head[2], head[3]]);
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let rcode = flags & 0xf;
    let count = |at: usize| u16::from_be_bytes([head[at], head[at + 1]]);
    // Registrations are requests with the name in the question and an NB record in the
    // additional section; positive query answers carry the name and record in the answer.
    let (name_at, record_at) = match (response, opcode) {
        (false, 5 | 8 | 9 | 15) if count(4) == 1 && count(10) == 1 => {
            // Question (name, type, class), then the additional record's name (a pointer
            // or the name again), type, class, TTL, length.
            let q_end = 12 + 34 + 4;
            let rr_name = match msg.get(q_end)? {
                0xc0.. => 2,
                _ => 34,
            };
            (12, q_end + rr_name)
        }
        (true, 0) if rcode == 0 && count(6) >= 1 => (12, 12 + 34),
        _ => return None,
    };
    let name = encoded_name(msg, name_at)?;
    // Type NB (0x0020) and class IN; TTL; length; then NB flags (2 bytes) and the address.
    let rr = msg.get(record_at..record_at + 16)?;
    if u16::from_be_bytes([rr[0], rr[1]]) != 0x0020 {
        return None;
    }
    let group = u16::from_be_bytes([rr[10], rr[11]]) & 0x8000 != 0;
    let addr = Ipv4Addr::new(rr[12], rr[13], rr[14], rr[15]);
    Some((name, addr, group))
}

/// The source name and source address of a NetBIOS datagram (RFC 1002 §4.4.1): direct
/// unique (0x10), direct group (0x11) and broadcast (0x12) datagrams carry them.
pub fn datagram_source(msg: &[u8]) -> Option<(NetbiosName, IpAddr)> {
    let head = msg.get(..14)?;
    if !matches!(head[0], 0x10..=0x12) {
        return None;
    }
    let addr = IpAddr::V4(Ipv4Addr::new(head[4], head[5], head[6], head[7]));
    Some((encoded_name(msg, 14)?, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first-level encoding of `name` padded to 15 with `suffix` (RFC 1001 §14.1).
    fn encode(name: &str, suffix: u8) -> Vec<u8> {
        let mut raw = [b' '; 16];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        raw[15] = suffix;
        let mut out = vec![32];
        for b in raw {
            out.push(b'A' + (b >> 4));
            out.push(b'A' + (b & 0xf));
        }
        out.push(0);
        out
    }

    #[test]
    fn encoding_matches_rfc_1001() {
        // RFC 1001 §14.1's example: "FRED" padded with spaces encodes as EGFCEFEE then CA...
        let e = encode("FRED", 0x20);
        assert_eq!(&e[1..9], b"EGFCEFEE");
        assert_eq!(&e[9..11], b"CA");
        let n = encoded_name(&e, 0).unwrap();
        assert_eq!((n.name(), n.suffix), (&b"FRED"[..], 0x20));
        assert!(n.is_station());
    }

    #[test]
    fn reads_a_registration_and_tells_group_names() {
        let mut msg = vec![0x80, 0x01, 0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        msg.extend_from_slice(&encode("DJP95S0J", 0x00));
        msg.extend_from_slice(&[0, 0x20, 0, 1, 0xc0, 12, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 6]);
        msg.extend_from_slice(&[0x00, 0x00, 169, 254, 67, 194]);
        let (name, addr, group) = name_claim(&msg).expect("a registration");
        assert_eq!(name.name(), b"DJP95S0J");
        assert_eq!(addr, Ipv4Addr::new(169, 254, 67, 194));
        assert!(!group);
        let flags = msg.len() - 6;
        msg[flags] = 0x80;
        assert!(name_claim(&msg).unwrap().2, "the G bit marks a group name");
        assert_eq!(name_claim(&msg[..40]), None);
    }
}
