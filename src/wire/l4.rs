//! The transport fields tapir needs (ports, TCP flags, ICMP type/code, header length), read
//! from however much of the header was captured.
//!
//! etherparse's transport slicing declines first fragments and snaplen-cut headers; a monitor
//! must still attribute those to their ports (a SYN split across two fragments is an evasion
//! trick), so these few fields are read here, each only if its bytes are present.

use crate::packet::{TcpFlags, ip_proto};

/// Transport fields of one packet; absent fields stay zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    pub src_port: u16,
    pub dst_port: u16,
    /// Ports (or ICMP type/code) were present.
    pub has_ports: bool,
    pub flags: TcpFlags,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Length of the transport header when it could be determined.
    pub header_len: Option<usize>,
    /// TCP: the sequence number (of the segment's first payload byte).
    pub seq: u32,
}

/// Reads the transport header of IP protocol `proto` from the start of `bytes`.
pub fn parse(proto: u8, bytes: &[u8]) -> Transport {
    let mut t = Transport::default();
    match proto {
        ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP if bytes.len() >= 4 => {
            t.src_port = u16::from_be_bytes([bytes[0], bytes[1]]);
            t.dst_port = u16::from_be_bytes([bytes[2], bytes[3]]);
            t.has_ports = true;
            if proto == ip_proto::TCP {
                if let Some(&flags) = bytes.get(13) {
                    t.seq = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                    t.flags = TcpFlags(flags);
                    let offset = usize::from(bytes[12] >> 4) * 4;
                    t.header_len = (offset >= 20).then_some(offset);
                }
            } else if proto == ip_proto::UDP {
                t.header_len = (bytes.len() >= 8).then_some(8);
            } else {
                t.header_len = (bytes.len() >= 12).then_some(12);
            }
        }
        ip_proto::ICMP | ip_proto::ICMPV6 if bytes.len() >= 2 => {
            t.icmp_type = bytes[0];
            t.icmp_code = bytes[1];
            t.has_ports = true;
            t.header_len = (bytes.len() >= 8).then_some(8);
        }
        _ => {}
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_without_flags_from_an_eight_byte_first_fragment() {
        let t = parse(ip_proto::TCP, &[0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1]);
        assert_eq!((t.src_port, t.dst_port, t.has_ports), (1234, 80, true));
        assert_eq!(t.flags, TcpFlags(0));
        assert_eq!(t.header_len, None);
    }

    #[test]
    fn full_tcp_header_gives_flags_and_length() {
        let mut h = [0u8; 20];
        h[12] = 0x50;
        h[13] = TcpFlags::SYN;
        let t = parse(ip_proto::TCP, &h);
        assert!(t.flags.is_syn_only());
        assert_eq!(t.header_len, Some(20));
    }

    #[test]
    fn a_bogus_data_offset_is_not_a_length() {
        let mut h = [0u8; 20];
        h[12] = 0x10;
        assert_eq!(parse(ip_proto::TCP, &h).header_len, None);
    }

    #[test]
    fn icmp_and_short_input() {
        let t = parse(ip_proto::ICMP, &[8, 0]);
        assert_eq!((t.icmp_type, t.icmp_code, t.has_ports), (8, 0, true));
        assert_eq!(parse(ip_proto::UDP, &[1, 2, 3]), Transport::default());
        assert_eq!(parse(47, &[0; 40]), Transport::default());
    }
}
