//! IPFIX (RFC 7011) encoding of flow records: one template per address family, uniflow
//! (a record per direction that carried packets, which every collector reads) or RFC 5103
//! biflow (reverse counters under the reverse PEN 29305), messages packed up to a size limit,
//! sequence numbers counting data records, templates re-sent periodically (RFC 7011 §8.4, for
//! UDP). Plain bytes in, plain bytes out: the socket is the caller's.

use std::net::IpAddr;

use crate::model::flow::{EndReason, FlowRecord};

/// IPFIX version number in the message header.
const VERSION: u16 = 10;
const MESSAGE_HEADER: usize = 16;
const SET_HEADER: usize = 4;
const TEMPLATE_SET_ID: u16 = 2;
/// The private enterprise number of RFC 5103's reverse information elements.
const REVERSE_PEN: u32 = 29305;

/// Template ids: IPv4, IPv6; +2 for the biflow variants.
const TEMPLATE_V4: u16 = 256;
const TEMPLATE_V6: u16 = 257;
const BIFLOW: u16 = 2;

/// One field of a template: information element id, length, enterprise number.
struct Field(u16, u16, Option<u32>);

/// The fields every record has, after the two addresses (IANA IPFIX registry numbers).
const COMMON: &[Field] = &[
    Field(7, 2, None),   // sourceTransportPort
    Field(11, 2, None),  // destinationTransportPort
    Field(4, 1, None),   // protocolIdentifier
    Field(6, 2, None),   // tcpControlBits (RFC 7125: 16 bits)
    Field(58, 2, None),  // vlanId
    Field(1, 8, None),   // octetDeltaCount
    Field(2, 8, None),   // packetDeltaCount
    Field(152, 8, None), // flowStartMilliseconds
    Field(153, 8, None), // flowEndMilliseconds
    Field(136, 1, None), // flowEndReason
];

/// The RFC 5103 reverse counterparts, in biflow templates.
const REVERSE: &[Field] = &[
    Field(6, 2, Some(REVERSE_PEN)), // reverseTcpControlBits
    Field(1, 8, Some(REVERSE_PEN)), // reverseOctetDeltaCount
    Field(2, 8, Some(REVERSE_PEN)), // reversePacketDeltaCount
];

/// Bytes of one data record for a template.
fn record_len(v6: bool, biflow: bool) -> usize {
    let addrs = if v6 { 32 } else { 8 };
    let common: usize = COMMON.iter().map(|f| usize::from(f.1)).sum();
    let reverse: usize = REVERSE.iter().map(|f| usize::from(f.1)).sum();
    addrs + common + if biflow { reverse } else { 0 }
}

/// RFC 7011 `flowEndReason` values (IANA registry).
fn end_reason(end: EndReason) -> u8 {
    match end {
        EndReason::IdleTimeout => 0x01,
        EndReason::ActiveTimeout | EndReason::Active => 0x02,
        EndReason::Closed => 0x03,
        EndReason::Shutdown => 0x04,
        EndReason::Evicted => 0x05,
    }
}

/// Builds IPFIX messages from flow records.
pub struct Encoder {
    domain: u32,
    biflow: bool,
    max_message: usize,
    /// Data records sent so far (the next message's sequence number).
    sequence: u32,
    message: Vec<u8>,
    /// The data set being filled: its template and where its header starts.
    open_set: Option<(u16, usize)>,
    records_in_message: u32,
}

impl Encoder {
    /// `max_message`: the largest message (UDP payload) to build, at least 512 bytes.
    pub fn new(domain: u32, biflow: bool, max_message: usize) -> Encoder {
        Encoder {
            domain,
            biflow,
            max_message: max_message.max(512),
            sequence: 0,
            message: Vec::with_capacity(max_message),
            open_set: None,
            records_in_message: 0,
        }
    }

    /// A message holding only the templates, with the current sequence number.
    pub fn templates(&self, export_secs: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        header(&mut out, export_secs, self.sequence, self.domain);
        let set_start = out.len();
        out.extend_from_slice(&TEMPLATE_SET_ID.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        for v6 in [false, true] {
            let (id, fields) = self.template(v6);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
            for Field(ie, len, pen) in fields {
                match pen {
                    Some(pen) => {
                        out.extend_from_slice(&(ie | 0x8000).to_be_bytes());
                        out.extend_from_slice(&len.to_be_bytes());
                        out.extend_from_slice(&pen.to_be_bytes());
                    }
                    None => {
                        out.extend_from_slice(&ie.to_be_bytes());
                        out.extend_from_slice(&len.to_be_bytes());
                    }
                }
            }
        }
        let set_len = (out.len() - set_start) as u16;
        out[set_start + 2..set_start + 4].copy_from_slice(&set_len.to_be_bytes());
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    fn template(&self, v6: bool) -> (u16, Vec<&'static Field>) {
        let (src, dst) = if v6 {
            (&Field(27, 16, None), &Field(28, 16, None))
        } else {
            (&Field(8, 4, None), &Field(12, 4, None))
        };
        let mut fields = vec![src, dst];
        fields.extend(COMMON.iter());
        if self.biflow {
            fields.extend(REVERSE.iter());
        }
        let id = if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 } + if self.biflow { BIFLOW } else { 0 };
        (id, fields)
    }

    /// Adds a flow record (one or two data records); every message that filled up on the
    /// way is handed to `emit`. Returns the data records added.
    pub fn add(
        &mut self,
        r: &FlowRecord,
        export_secs: u32,
        emit: &mut impl FnMut(Vec<u8>, u64),
    ) -> u32 {
        if self.biflow {
            self.push(r, Direction::Both, export_secs, emit);
            return 1;
        }
        let mut n = 0;
        if r.src_packets > 0 || r.dst_packets == 0 {
            self.push(r, Direction::Forward, export_secs, emit);
            n += 1;
        }
        if r.dst_packets > 0 {
            self.push(r, Direction::Reverse, export_secs, emit);
            n += 1;
        }
        n
    }

    /// The message being filled and its number of data records, if it holds any (ends it).
    pub fn finish(&mut self) -> Option<(Vec<u8>, u64)> {
        if self.records_in_message == 0 {
            return None;
        }
        self.close_set();
        let len = self.message.len() as u16;
        self.message[2..4].copy_from_slice(&len.to_be_bytes());
        let n = self.records_in_message;
        self.sequence = self.sequence.wrapping_add(n);
        self.records_in_message = 0;
        Some((std::mem::take(&mut self.message), u64::from(n)))
    }

    fn push(
        &mut self,
        r: &FlowRecord,
        dir: Direction,
        export_secs: u32,
        emit: &mut impl FnMut(Vec<u8>, u64),
    ) {
        let v6 = matches!((r.src, r.dst), (IpAddr::V6(_), _) | (_, IpAddr::V6(_)));
        let template = self.template(v6).0;
        let len = record_len(v6, self.biflow);
        let set_header = if self.open_set.is_some_and(|(t, _)| t == template) {
            0
        } else {
            SET_HEADER
        };
        if self.records_in_message > 0
            && self.message.len() + set_header + len > self.max_message
            && let Some((m, n)) = self.finish()
        {
            emit(m, n);
        }
        if self.records_in_message == 0 {
            self.message.clear();
            header(&mut self.message, export_secs, self.sequence, self.domain);
            self.open_set = None;
        }
        if self.open_set.is_none_or(|(t, _)| t != template) {
            self.close_set();
            self.open_set = Some((template, self.message.len()));
            self.message.extend_from_slice(&template.to_be_bytes());
            self.message.extend_from_slice(&[0, 0]);
        }
        write_record(&mut self.message, r, dir, v6);
        self.records_in_message += 1;
    }

    fn close_set(&mut self) {
        if let Some((_, start)) = self.open_set.take() {
            let len = (self.message.len() - start) as u16;
            self.message[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
}

/// Which side of a biflow a data record describes.
#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Forward,
    Reverse,
    Both,
}

fn header(out: &mut Vec<u8>, export_secs: u32, sequence: u32, domain: u32) {
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // length, set when done
    out.extend_from_slice(&export_secs.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&domain.to_be_bytes());
    debug_assert_eq!(out.len() % MESSAGE_HEADER, 0);
}

fn addr(out: &mut Vec<u8>, ip: IpAddr, v6: bool) {
    match (ip, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), _) => out.extend_from_slice(&a.octets()),
    }
}

/// Nanoseconds since the epoch as milliseconds (a capture's pre-1970 nonsense becomes 0).
fn millis(ns: i64) -> u64 {
    (ns.max(0) / 1_000_000) as u64
}

fn write_record(out: &mut Vec<u8>, r: &FlowRecord, dir: Direction, v6: bool) {
    let reverse = dir == Direction::Reverse;
    let (src, dst, sport, dport) = if reverse {
        (r.dst, r.src, r.dst_port, r.src_port)
    } else {
        (r.src, r.dst, r.src_port, r.dst_port)
    };
    let (flags, bytes, packets) = if reverse {
        (r.dst_flags.0, r.dst_bytes, r.dst_packets)
    } else {
        (r.src_flags.0, r.src_bytes, r.src_packets)
    };
    addr(out, src, v6);
    addr(out, dst, v6);
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.push(r.ip_proto);
    out.extend_from_slice(&u16::from(flags).to_be_bytes());
    out.extend_from_slice(&r.vlan.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&bytes.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&millis(r.first_seen.0).to_be_bytes());
    out.extend_from_slice(&millis(r.last_seen.0).to_be_bytes());
    out.push(end_reason(r.end));
    if dir == Direction::Both {
        out.extend_from_slice(&u16::from(r.dst_flags.0).to_be_bytes());
        out.extend_from_slice(&r.dst_bytes.to_be_bytes());
        out.extend_from_slice(&r.dst_packets.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flow::FlowState;
    use crate::packet::{TcpFlags, Timestamp};

    pub(crate) fn record(src: &str, dst: &str, packets: (u64, u64)) -> FlowRecord {
        FlowRecord {
            id: 1,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 40000,
            dst_port: 22,
            ip_proto: 6,
            first_seen: Timestamp(1_700_000_000_123_000_000),
            last_seen: Timestamp(1_700_000_005_456_000_000),
            src_packets: packets.0,
            dst_packets: packets.1,
            src_bytes: packets.0 * 100,
            dst_bytes: packets.1 * 60,
            src_flags: TcpFlags(0x1b),
            dst_flags: TcpFlags(0x12),
            state: FlowState::Closed,
            refused: false,
            vlan: Some(7),
            community_id: String::new(),
            end: EndReason::IdleTimeout,
            tunnel: None,
            carries: None,
            server_name: None,
            name_source: None,
            http_host: None,
            http_user_agent: None,
            tls: None,
            app: None,
        }
    }

    #[test]
    fn templates_follow_rfc_7011_and_5103() {
        let uni = Encoder::new(1, false, 1400).templates(99);
        assert_eq!(&uni[..2], &[0, 10]);
        assert_eq!(u16::from_be_bytes([uni[2], uni[3]]) as usize, uni.len());
        assert_eq!(u32::from_be_bytes(uni[4..8].try_into().unwrap()), 99);
        // Set 2, then template 256 with 12 fields: sourceIPv4Address (8), length 4.
        assert_eq!(&uni[16..18], &[0, 2]);
        assert_eq!(&uni[20..28], &[1, 0, 0, 12, 0, 8, 0, 4]);
        let bi = Encoder::new(1, true, 1400).templates(99);
        // Template 258, 15 fields; the reverse counters carry the enterprise bit and PEN 29305.
        assert_eq!(&bi[20..24], &[1, 2, 0, 15]);
        let pen = REVERSE_PEN.to_be_bytes();
        let reverse_octets = [0x80, 1, 0, 8, pen[0], pen[1], pen[2], pen[3]];
        assert!(bi.windows(8).any(|w| w == reverse_octets));
    }

    #[test]
    fn records_pack_into_messages_with_counted_sequence_numbers() {
        let mut enc = Encoder::new(7, false, 512);
        let mut sent = Vec::new();
        let r = record("192.0.2.1", "198.51.100.2", (3, 2));
        let mut added = 0;
        for _ in 0..20 {
            added += enc.add(&r, 5, &mut |m, _| sent.push(m));
        }
        sent.extend(enc.finish().map(|(m, _)| m));
        assert_eq!(added, 40, "one record per direction");
        let len = record_len(false, false);
        assert_eq!(len, 50);
        let mut expected_seq = 0u32;
        let mut total = 0;
        for m in &sent {
            assert!(m.len() <= 512);
            assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
            assert_eq!(
                u32::from_be_bytes(m[8..12].try_into().unwrap()),
                expected_seq
            );
            assert_eq!(u32::from_be_bytes(m[12..16].try_into().unwrap()), 7);
            let n = (m.len() - MESSAGE_HEADER - SET_HEADER) / len;
            assert_eq!(m.len(), MESSAGE_HEADER + SET_HEADER + n * len);
            expected_seq += n as u32;
            total += n;
        }
        assert_eq!(total, 40);
        // The first record: the forward direction, big-endian fields in template order.
        let d = &sent[0][20..20 + len];
        assert_eq!(&d[..8], &[192, 0, 2, 1, 198, 51, 100, 2]);
        assert_eq!(u16::from_be_bytes([d[8], d[9]]), 40000);
        assert_eq!(d[12], 6);
        assert_eq!(u16::from_be_bytes([d[13], d[14]]), 0x1b);
        assert_eq!(u16::from_be_bytes([d[15], d[16]]), 7);
        assert_eq!(u64::from_be_bytes(d[17..25].try_into().unwrap()), 300);
        assert_eq!(u64::from_be_bytes(d[25..33].try_into().unwrap()), 3);
        assert_eq!(
            u64::from_be_bytes(d[33..41].try_into().unwrap()),
            1_700_000_000_123
        );
        assert_eq!(
            u64::from_be_bytes(d[41..49].try_into().unwrap()),
            1_700_000_005_456
        );
        assert_eq!(d[49], 1);
        // The second: the reverse direction.
        let d = &sent[0][20 + len..20 + 2 * len];
        assert_eq!(&d[..8], &[198, 51, 100, 2, 192, 0, 2, 1]);
        assert_eq!(u64::from_be_bytes(d[17..25].try_into().unwrap()), 120);
    }

    #[test]
    fn families_get_their_own_sets_and_biflows_one_record() {
        let mut enc = Encoder::new(1, true, 1400);
        let mut sent = Vec::new();
        enc.add(
            &record("192.0.2.1", "198.51.100.2", (3, 0)),
            5,
            &mut |m, _| sent.push(m),
        );
        enc.add(
            &record("2001:db8::1", "2001:db8::2", (1, 1)),
            5,
            &mut |m, _| sent.push(m),
        );
        sent.extend(enc.finish().map(|(m, _)| m));
        assert_eq!(sent.len(), 1);
        let m = &sent[0];
        let v4 = record_len(false, true);
        let v6 = record_len(true, true);
        assert_eq!(m.len(), 16 + 4 + v4 + 4 + v6);
        assert_eq!(&m[16..18], &[1, 2]);
        assert_eq!(&m[16 + 4 + v4..16 + 4 + v4 + 2], &[1, 3]);
    }
}
