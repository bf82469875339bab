//! The DNS message header and first question (RFC 1035 §4.1), read without allocating: the
//! query name is appended to a caller-provided arena in dotted form. And the addresses a
//! response gives: A and AAAA records, and the address hints of HTTPS and SVCB records
//! (RFC 9460), for passive DNS.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{DnsMeta, NameRef};

/// Longest name on the wire (RFC 1035 §2.3.4); longer input is malformed.
pub const MAX_NAME_LEN: usize = 255;
/// Compression pointers followed before giving up (a loop guard).
const MAX_POINTERS: usize = 16;

/// Why a DNS message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    Truncated,
    BadLabel,
    NameTooLong,
    PointerLoop,
}

/// Reads the header and the first question of `msg`, appending the query name to `arena`.
/// On error the arena is left as it was.
pub fn parse(msg: &[u8], arena: &mut Vec<u8>) -> Result<DnsMeta, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Truncated);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let mut meta = DnsMeta {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        is_response: flags & 0x8000 != 0,
        rcode: (flags & 0x000f) as u8,
        answers: u16::from_be_bytes([msg[6], msg[7]]),
        qtype: 0,
        qname: NameRef {
            offset: arena.len() as u32,
            len: 0,
        },
        addresses: Default::default(),
    };
    if qdcount == 0 {
        return Ok(meta);
    }
    let start = arena.len();
    match read_name(msg, 12, arena) {
        Ok(end) => {
            let qtype = msg.get(end..end + 2).ok_or(DnsError::Truncated);
            match qtype {
                Ok(q) => {
                    meta.qtype = u16::from_be_bytes([q[0], q[1]]);
                    meta.qname.len = (arena.len() - start) as u16;
                    Ok(meta)
                }
                Err(e) => {
                    arena.truncate(start);
                    Err(e)
                }
            }
        }
        Err(e) => {
            arena.truncate(start);
            Err(e)
        }
    }
}

/// Reads the name at `pos`, appending its labels joined by '.'; returns the offset just past
/// the name in the original position (after the first pointer, if any).
fn read_name(msg: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Result<usize, DnsError> {
    let start = out.len();
    let mut end_after_pointer = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok(end_after_pointer.unwrap_or(pos + 1));
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
                let sep = usize::from(out.len() > start);
                if out.len() - start + sep + len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                if sep == 1 {
                    out.push(b'.');
                }
                out.extend_from_slice(label);
                pos += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::Truncated)? as usize;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::PointerLoop);
                }
                end_after_pointer.get_or_insert(pos + 2);
                pos = ((len & 0x3f) << 8) | low;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Questions and answer records read from one message at most: a loop guard far above real
/// responses (a CNAME chain and a few dozen addresses).
const MAX_RECORDS: usize = 64;

/// Calls `found` with each address a response gives for its question, and the record's TTL:
/// A and AAAA records and the `ipv4hint` and `ipv6hint` of HTTPS and SVCB records. CNAME
/// records in between are passed over (the addresses are the question's, through the
/// chain). Stops at the first record that does not fit the message.
pub fn answers(msg: &[u8], mut found: impl FnMut(IpAddr, u32)) -> Result<(), DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Truncated);
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let (questions, records) = (count(4), count(6));
    let mut pos = 12;
    for _ in 0..questions.min(MAX_RECORDS) {
        pos = skip_name(msg, pos)? + 4;
    }
    for _ in 0..records.min(MAX_RECORDS) {
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10).ok_or(DnsError::Truncated)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = msg
            .get(pos + 10..pos + 10 + len)
            .ok_or(DnsError::Truncated)?;
        match (rtype, len) {
            (1, 4) => found(
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).expect("4"))),
                ttl,
            ),
            (28, 16) => found(
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).expect("16"))),
                ttl,
            ),
            (64 | 65, _) => address_hints(data, |ip| found(ip, ttl)),
            _ => {}
        }
        pos += 10 + len;
    }
    Ok(())
}

/// Calls `found` with the owner name (appended to `arena`, its range given) and address of
/// every A and AAAA record in all three record sections of `msg`: what an mDNS or LLMNR
/// responder (or an mDNS probe's authority section) says its own names resolve to. Names
/// of records that are not addresses are not copied. Stops at the first record that does
/// not fit the message.
pub fn owner_addresses(
    msg: &[u8],
    arena: &mut Vec<u8>,
    mut found: impl FnMut(std::ops::Range<usize>, IpAddr, &mut Vec<u8>),
) -> Result<(), DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Truncated);
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let questions = count(4);
    let records = count(6) + count(8) + count(10);
    let mut pos = 12;
    for _ in 0..questions.min(MAX_RECORDS) {
        pos = skip_name(msg, pos)? + 4;
    }
    for _ in 0..records.min(MAX_RECORDS) {
        let owner = pos;
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10).ok_or(DnsError::Truncated)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = msg
            .get(pos + 10..pos + 10 + len)
            .ok_or(DnsError::Truncated)?;
        let addr = match (rtype, len) {
            (1, 4) => Some(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(data).expect("4"),
            ))),
            (28, 16) => Some(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(data).expect("16"),
            ))),
            _ => None,
        };
        if let Some(addr) = addr {
            let start = arena.len();
            read_name(msg, owner, arena)?;
            found(start..arena.len(), addr, arena);
        }
        pos += 10 + len;
    }
    Ok(())
}

/// Reads the DNS-encoded name that makes up all of `data` (an option's value, with no
/// compression) into `out` in dotted form: for the FQDN options of DHCP and DHCPv6.
pub fn read_plain_name(data: &[u8], out: &mut Vec<u8>) -> Result<(), DnsError> {
    let start = out.len();
    let mut pos = 0;
    while let Some(&len) = data.get(pos) {
        let len = usize::from(len);
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            out.truncate(start);
            return Err(DnsError::BadLabel);
        }
        let Some(label) = data.get(pos + 1..pos + 1 + len) else {
            out.truncate(start);
            return Err(DnsError::Truncated);
        };
        if out.len() - start + len + 1 > MAX_NAME_LEN {
            out.truncate(start);
            return Err(DnsError::NameTooLong);
        }
        if out.len() > start {
            out.push(b'.');
        }
        out.extend_from_slice(label);
        pos += 1 + len;
    }
    Ok(())
}

/// The `ipv4hint` (key 4) and `ipv6hint` (key 6) of an SVCB/HTTPS record's data: priority,
/// target name (never compressed, RFC 9460 §2.2), then key-length-value parameters.
fn address_hints(data: &[u8], mut found: impl FnMut(IpAddr)) {
    let Ok(mut pos) = skip_name(data, 2) else {
        return;
    };
    while let Some(head) = data.get(pos..pos + 4) {
        let key = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some(value) = data.get(pos + 4..pos + 4 + len) else {
            return;
        };
        match key {
            4 => value.chunks_exact(4).for_each(|a| {
                found(IpAddr::V4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(a).expect("4"),
                )))
            }),
            6 => value.chunks_exact(16).for_each(|a| {
                found(IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(a).expect("16"),
                )))
            }),
            _ => {}
        }
        pos += 4 + len;
    }
}

/// The offset just past the name at `pos`, without reading it (a pointer ends it).
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, DnsError> {
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => {
                msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                return Ok(pos + 2);
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
    Err(DnsError::NameTooLong)
}

/// A DNS name for display: printable ASCII as is, other bytes as `\xNN`.
pub fn display_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if (0x21..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

pub fn qtype_name(qtype: u16) -> String {
    match qtype {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        35 => "NAPTR".into(),
        43 => "DS".into(),
        46 => "RRSIG".into(),
        48 => "DNSKEY".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name_wire: &[u8], qtype: u16) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(name_wire);
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&[0, 1]);
        msg
    }

    #[test]
    fn reads_a_plain_query() {
        let mut arena = b"xx".to_vec();
        let meta = parse(&query(b"\x03www\x07example\x03com\x00", 1), &mut arena).unwrap();
        assert_eq!(meta.id, 0x1234);
        assert!(!meta.is_response);
        assert_eq!(meta.qtype, 1);
        assert_eq!(meta.qname, NameRef { offset: 2, len: 15 });
        assert_eq!(&arena[2..], b"www.example.com");
    }

    #[test]
    fn root_name_is_empty() {
        let mut arena = Vec::new();
        let meta = parse(&query(b"\x00", 2), &mut arena).unwrap();
        assert_eq!(meta.qname.len, 0);
        assert_eq!(meta.qtype, 2);
    }

    #[test]
    fn pointer_loops_and_bad_labels_are_errors_and_leave_the_arena_alone() {
        let mut arena = b"keep".to_vec();
        // a pointer to itself at offset 12
        assert_eq!(
            parse(&query(b"\xc0\x0c", 1), &mut arena),
            Err(DnsError::PointerLoop)
        );
        assert_eq!(
            parse(&query(b"\x01a\x80", 1), &mut arena),
            Err(DnsError::BadLabel)
        );
        assert_eq!(
            parse(&query(b"\x05ab", 1)[..15], &mut arena),
            Err(DnsError::Truncated)
        );
        assert_eq!(arena, b"keep");
    }

    #[test]
    fn names_longer_than_255_bytes_are_rejected() {
        let mut wire = Vec::new();
        for _ in 0..5 {
            wire.push(63);
            wire.extend_from_slice(&[b'a'; 63]);
        }
        wire.push(0);
        assert_eq!(
            parse(&query(&wire, 16), &mut Vec::new()),
            Err(DnsError::NameTooLong)
        );
    }

    #[test]
    fn response_code_and_answers_are_read() {
        let mut msg = query(b"\x01a\x00", 28);
        msg[2] = 0x81;
        msg[3] = 0x83; // QR, RD, RA, NXDOMAIN
        msg[7] = 2;
        let meta = parse(&msg, &mut Vec::new()).unwrap();
        assert!(meta.is_response);
        assert_eq!(meta.rcode, 3);
        assert_eq!(meta.answers, 2);
    }

    /// A response to `name` with a CNAME, then an A and an AAAA record (compressed owners).
    fn response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        // CNAME www.example.com -> cdn.example.net (owner: pointer to offset 12)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 17]);
        m.extend_from_slice(b"\x03cdn\x07example\x03net\x00");
        let cdn = 12 + 21 + 12;
        m.extend_from_slice(&[
            0xc0, cdn as u8, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 93, 184, 216, 34,
        ]);
        m.extend_from_slice(&[0xc0, cdn as u8, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16]);
        m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        m
    }

    #[test]
    fn answers_give_every_address_through_a_cname_chain() {
        let mut got = Vec::new();
        answers(&response(), |ip, ttl| got.push((ip.to_string(), ttl))).unwrap();
        assert_eq!(
            got,
            [
                ("93.184.216.34".to_string(), 300),
                ("2001:db8::1".to_string(), 30)
            ]
        );
        // Cut anywhere: an error or fewer addresses, never a panic.
        let full = response();
        for cut in 0..full.len() {
            let mut n = 0;
            let _ = answers(&full[..cut], |_, _| n += 1);
            assert!(n <= 2);
        }
    }

    #[test]
    fn https_records_give_their_address_hints() {
        // RFC 9460 Appendix D.2 shape: priority 1, target ".", alpn, ipv4hint, ipv6hint.
        let mut rdata = vec![0, 1, 0];
        rdata.extend_from_slice(&[0, 1, 0, 3, 2, b'h', b'2']);
        rdata.extend_from_slice(&[0, 4, 0, 8, 192, 0, 2, 1, 192, 0, 2, 2]);
        rdata.extend_from_slice(&[
            0, 6, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
        ]);
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x00\x00\x41\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 65, 0, 1, 0, 0, 0, 10]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        let mut got = Vec::new();
        answers(&m, |ip, _| got.push(ip.to_string())).unwrap();
        assert_eq!(got, ["192.0.2.1", "192.0.2.2", "2001:db8::53"]);
    }
}
