//! Capture link types and the link headers tapir strips to reach the network layer.

/// A pcap LINKTYPE value (<https://www.tcpdump.org/linktypes.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const PPP: LinkType = LinkType(9);
    /// DLT_RAW as OpenBSD numbers it (12) and as other BSDs do (14).
    pub const RAW_BSD12: LinkType = LinkType(12);
    pub const RAW_BSD14: LinkType = LinkType(14);
    pub const PPP_HDLC: LinkType = LinkType(50);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const NFLOG: LinkType = LinkType(239);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Whether tapir can decode frames of this link type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            LinkType::NULL
                | LinkType::ETHERNET
                | LinkType::PPP
                | LinkType::RAW_BSD12
                | LinkType::RAW_BSD14
                | LinkType::PPP_HDLC
                | LinkType::RAW
                | LinkType::LOOP
                | LinkType::LINUX_SLL
                | LinkType::IPV4
                | LinkType::IPV6
                | LinkType::NFLOG
                | LinkType::LINUX_SLL2
        )
    }

    /// A short human name, for messages.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NULL (BSD loopback)",
            1 => "Ethernet",
            9 => "PPP",
            12 | 14 | 101 => "raw IP",
            50 => "PPP in HDLC framing",
            105 => "IEEE 802.11",
            108 => "OpenBSD loopback",
            113 => "Linux cooked v1 (SLL)",
            127 => "IEEE 802.11 radiotap",
            228 => "raw IPv4",
            229 => "raw IPv6",
            231 => "D-Bus",
            239 => "NFLOG",
            258 => "Apple PKTAP",
            276 => "Linux cooked v2 (SLL2)",
            8 => "SLIP",
            104 => "Cisco HDLC",
            147..=162 => "user-defined (DLT_USERn)",
            _ => "unknown",
        }
    }
}

/// EtherType values seen below the link header.
pub mod ether_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
}

/// What a link header says comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    /// An Ethernet II frame, header included.
    Ethernet(&'a [u8]),
    /// A payload identified by EtherType.
    EtherType(u16, &'a [u8]),
    /// An IP packet whose version is read from its first nibble.
    Ip(&'a [u8]),
    /// A frame whose payload tapir does not decode (e.g. 802.2 LLC); carries an id for counting.
    NonIp(u16),
}

/// Why a link header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    Truncated,
    Unsupported,
}

/// Strips the link header of `frame` according to `link`.
pub fn strip(link: LinkType, frame: &[u8]) -> Result<Inner<'_>, LinkError> {
    match link {
        LinkType::ETHERNET => Ok(Inner::Ethernet(frame)),
        LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => Ok(Inner::Ip(frame)),
        LinkType::IPV4 => Ok(Inner::EtherType(ether_type::IPV4, frame)),
        LinkType::IPV6 => Ok(Inner::EtherType(ether_type::IPV6, frame)),
        LinkType::NULL | LinkType::LOOP => null_loopback(frame),
        LinkType::LINUX_SLL => sll(frame),
        LinkType::LINUX_SLL2 => sll2(frame),
        LinkType::PPP | LinkType::PPP_HDLC => ppp(frame),
        LinkType::NFLOG => nflog(frame),
        _ => Err(LinkError::Unsupported),
    }
}

/// BSD loopback: a 4-byte address family in the capturing host's byte order (or network
/// order for LOOP), so both orders are accepted.
fn null_loopback(frame: &[u8]) -> Result<Inner<'_>, LinkError> {
    let header: [u8; 4] = frame
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(LinkError::Truncated)?;
    let payload = &frame[4..];
    let family = |af: u32| match af {
        2 => Some(ether_type::IPV4),
        10 | 24 | 28 | 30 => Some(ether_type::IPV6),
        _ => None,
    };
    match family(u32::from_le_bytes(header)).or_else(|| family(u32::from_be_bytes(header))) {
        Some(et) => Ok(Inner::EtherType(et, payload)),
        None => Ok(Inner::NonIp(u32::from_le_bytes(header) as u16)),
    }
}

/// Maps a Linux cooked-capture protocol field: an EtherType, or a small value for non-Ethernet-II
/// payloads (1 = Novell 802.3, 4 = 802.2 LLC, ...).
fn cooked(protocol: u16, payload: &[u8]) -> Inner<'_> {
    if protocol >= 0x0600 {
        Inner::EtherType(protocol, payload)
    } else {
        Inner::NonIp(protocol)
    }
}

/// Linux cooked capture v1: 16-byte header, protocol in the last two bytes.
fn sll(frame: &[u8]) -> Result<Inner<'_>, LinkError> {
    if frame.len() < 16 {
        return Err(LinkError::Truncated);
    }
    Ok(cooked(
        u16::from_be_bytes([frame[14], frame[15]]),
        &frame[16..],
    ))
}

/// Linux cooked capture v2: 20-byte header, protocol in the first two bytes.
fn sll2(frame: &[u8]) -> Result<Inner<'_>, LinkError> {
    if frame.len() < 20 {
        return Err(LinkError::Truncated);
    }
    Ok(cooked(
        u16::from_be_bytes([frame[0], frame[1]]),
        &frame[20..],
    ))
}

/// PPP with optional HDLC address/control bytes and optional protocol-field compression.
fn ppp(frame: &[u8]) -> Result<Inner<'_>, LinkError> {
    super::encap::ppp_payload(frame).map_err(|_| LinkError::Truncated)
}

/// Linux NFLOG: a 4-byte header, then TLVs (host-endian length and type, 4-byte aligned); the
/// packet is the value of TLV type 9 (NFULA_PAYLOAD).
fn nflog(frame: &[u8]) -> Result<Inner<'_>, LinkError> {
    const NFULA_PAYLOAD: u16 = 9;
    let family = *frame.first().ok_or(LinkError::Truncated)?;
    let mut rest = frame.get(4..).ok_or(LinkError::Truncated)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let kind = u16::from_le_bytes([rest[2], rest[3]]) & 0x7fff;
        if len < 4 || len > rest.len() {
            return Err(LinkError::Truncated);
        }
        if kind == NFULA_PAYLOAD {
            let payload = &rest[4..len];
            return Ok(match family {
                2 => Inner::EtherType(ether_type::IPV4, payload),
                10 => Inner::EtherType(ether_type::IPV6, payload),
                _ => Inner::Ip(payload),
            });
        }
        let padded = (len + 3) & !3;
        rest = rest.get(padded..).unwrap_or_default();
    }
    Err(LinkError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll2_protocol_is_read_from_the_front() {
        let mut frame = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        frame.extend_from_slice(&[0; 8]);
        frame.push(0x60);
        assert_eq!(sll2(&frame), Ok(Inner::EtherType(0x86dd, &[0x60][..])));
        assert_eq!(sll2(&frame[..19]), Err(LinkError::Truncated));
    }

    #[test]
    fn sll_llc_payload_is_non_ip() {
        let mut frame = vec![0; 14];
        frame.extend_from_slice(&[0x00, 0x04, 0xaa]);
        assert_eq!(sll(&frame), Ok(Inner::NonIp(4)));
    }

    #[test]
    fn null_accepts_both_byte_orders() {
        assert_eq!(
            null_loopback(&[2, 0, 0, 0, 0x45]),
            Ok(Inner::EtherType(0x0800, &[0x45][..]))
        );
        assert_eq!(
            null_loopback(&[0, 0, 0, 30]),
            Ok(Inner::EtherType(0x86dd, &[][..]))
        );
        assert_eq!(null_loopback(&[2, 0]), Err(LinkError::Truncated));
    }

    #[test]
    fn ppp_with_and_without_address_control() {
        assert_eq!(
            ppp(&[0xff, 0x03, 0x00, 0x21, 0x45]),
            Ok(Inner::EtherType(0x0800, &[0x45][..]))
        );
        assert_eq!(ppp(&[0x00, 0x57]), Ok(Inner::EtherType(0x86dd, &[][..])));
        assert_eq!(
            ppp(&[0x21, 0x45]),
            Ok(Inner::EtherType(0x0800, &[0x45][..]))
        );
        assert_eq!(ppp(&[0xc0, 0x21, 1]), Ok(Inner::NonIp(0xc021)));
    }

    #[test]
    fn nflog_finds_the_payload_tlv_and_rejects_bad_lengths() {
        // header, a 5-byte TLV (padded to 8), then the payload TLV
        let frame = [2, 0, 0, 0, 5, 0, 1, 0, 9, 0, 0, 0, 5, 0, 9, 0, 0x45];
        assert_eq!(nflog(&frame), Ok(Inner::EtherType(0x0800, &[0x45][..])));
        assert_eq!(
            nflog(&[2, 0, 0, 0, 0xff, 0, 9, 0]),
            Err(LinkError::Truncated)
        );
        assert_eq!(nflog(&[2, 0, 0, 0, 0, 0, 9, 0]), Err(LinkError::Truncated));
    }
}
