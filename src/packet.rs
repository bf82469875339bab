//! The decoded form of one captured frame, and the batches capture hands to every consumer.
//!
//! A `PacketMeta` is a small `Copy` value: decoding fills it in place, with no heap allocation.
//! What varies in length (DNS names and answers, tunnels, ClientHellos, request heads, the
//! segment's facts) lives in its batch's shared arenas.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Capture time in nanoseconds since the Unix epoch (packet time, never the wall clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    pub fn from_parts(secs: i64, nanos: i64) -> Self {
        Timestamp(
            secs.saturating_mul(Self::NANOS_PER_SEC)
                .saturating_add(nanos),
        )
    }
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1e9) as i64)
    }
    /// Whole seconds (floor), as used for 1 s buckets.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(Self::NANOS_PER_SEC)
    }
    pub fn millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    pub fn plus_secs(self, secs: u64) -> Self {
        Timestamp(
            self.0
                .saturating_add((secs as i64).saturating_mul(Self::NANOS_PER_SEC)),
        )
    }
}

/// An Ethernet (EUI-48) address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Read from the first six bytes of `b`.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        Some(MacAddr(b.get(..6)?.try_into().ok()?))
    }

    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }

    /// Group (multicast or broadcast) addresses have the I/G bit set.
    pub fn is_group(self) -> bool {
        self.0[0] & 1 != 0
    }

    /// An address a single station can send from: not group, not all zeros.
    pub fn is_station(self) -> bool {
        !self.is_group() && !self.is_zero()
    }

    /// Locally administered (the U/L bit): set by software, as OSes do for private,
    /// randomised addresses; no vendor is registered for it.
    pub fn is_local_admin(self) -> bool {
        self.0[0] & 2 != 0
    }

    /// The address as one integer, for keys.
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), any case.
    pub fn parse(text: &str) -> Option<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in &mut out {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        MacAddr::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a MAC address (write it as aa:bb:cc:dd:ee:ff)"
            ))
        })
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// TCP flag bits as they appear in byte 13 of the TCP header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    const NAMES: [(u8, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    /// A connection opener: SYN without ACK.
    pub fn is_syn_only(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK)
    }
    /// Names of the set flags, in header bit order (the published `tcp_flags` list).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(bit, _)| self.has(*bit))
            .map(|(_, name)| name)
    }
}

impl fmt::Display for TcpFlags {
    /// Comma-separated names, the published Packet `flags` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// What the network layer of a frame was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    Ipv4,
    Ipv6,
    /// ARP for IPv4 over Ethernet; `src`/`dst` are the sender and target protocol addresses.
    Arp,
    /// A well-formed frame whose payload is neither IP nor ARP (LLDP, STP, MPLS, PPPoE, ...).
    Other {
        ether_type: u16,
    },
}

/// IP fragmentation of a packet: only the first fragment carries the transport header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fragment {
    #[default]
    Whole,
    First,
    Later,
}

/// The label a packet is counted under in `protocol_counts` and shown in the packet list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Dns,
    Arp,
    /// IP with another transport (GRE, ESP, IGMP, ...) or a later fragment.
    OtherIp,
    /// Not IP at all.
    NonIp,
}

impl Protocol {
    pub const ALL: [Protocol; 8] = [
        Protocol::Tcp,
        Protocol::Udp,
        Protocol::Icmp,
        Protocol::Icmpv6,
        Protocol::Dns,
        Protocol::Arp,
        Protocol::OtherIp,
        Protocol::NonIp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Icmp => "ICMP",
            Protocol::Icmpv6 => "ICMPv6",
            Protocol::Dns => "DNS",
            Protocol::Arp => "ARP",
            Protocol::OtherIp => "Other",
            Protocol::NonIp => "Non-IP",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a published protocol filter value (`TCP`, `udp`, ...).
    pub fn parse(name: &str) -> Option<Protocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IP protocol numbers tapir gives meaning to.
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Where a DNS query name sits in its batch's name arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameRef {
    pub offset: u32,
    pub len: u16,
}

/// The DNS facts of a query or response (first question only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DnsMeta {
    pub id: u16,
    pub is_response: bool,
    pub qtype: u16,
    pub rcode: u8,
    pub answers: u16,
    /// Dotted presentation form without the trailing dot, raw label bytes kept as they are.
    pub qname: NameRef,
    /// A response's addresses for the question, in its batch's answer arena.
    pub addresses: AnswerRef,
}

/// Where a response's addresses sit in its batch's answer arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AnswerRef {
    pub offset: u32,
    pub len: u16,
}

/// A TLS ClientHello, read when packet `packet` of its batch completed it: the server name,
/// first ALPN protocol and JA4 fingerprint (in the batch's name arena, empty when absent),
/// the highest version offered, and whether it came in QUIC Initials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsHello {
    pub packet: u32,
    pub server_name: NameRef,
    pub alpn: NameRef,
    pub ja4: NameRef,
    pub version: u16,
    pub quic: bool,
}

/// A TLS ServerHello at the start of packet `packet`'s payload: the version and cipher
/// suite the server chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsChoice {
    pub packet: u32,
    pub version: u16,
    pub cipher: u16,
}

/// An HTTP/1.x request head, read when packet `packet` of its batch completed it: its Host
/// and User-Agent (in the batch's name arena, empty when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HttpRequest {
    pub packet: u32,
    pub host: NameRef,
    pub user_agent: NameRef,
}

/// What one packet `packet` of a batch said about a station of the local segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanFact {
    pub packet: u32,
    pub fact: Lan,
}

/// The kinds of local-segment facts, as read by `decode`; names and byte strings sit in
/// the batch's name arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lan {
    /// An ARP packet (Ethernet/IPv4): operation 1 request, 2 reply.
    Arp {
        op: u16,
        sender_mac: MacAddr,
        sender_ip: std::net::Ipv4Addr,
        target_mac: MacAddr,
        target_ip: std::net::Ipv4Addr,
    },
    /// An IPv6 neighbour-discovery message: `kind` is its ICMPv6 type (133 router
    /// solicitation, 134 advertisement, 135 neighbour solicitation, 136 advertisement);
    /// `target` the NS/NA target; `lladdr` the link-layer option; the NA flags.
    Ndp {
        kind: u8,
        target: std::net::Ipv6Addr,
        lladdr: Option<MacAddr>,
        solicited: bool,
        override_: bool,
    },
    Dhcp(DhcpFact),
    /// A DHCPv6 message (the inner one of a relay): its type, DUID (client id option, raw
    /// bytes), client FQDN and vendor class data.
    Dhcp6 {
        msg: u8,
        relayed: bool,
        duid: NameRef,
        fqdn: NameRef,
        vendor_class: NameRef,
    },
    /// A name a station gave itself: an mDNS or LLMNR answer's owner name with the address
    /// it gives, an NBNS registration or answer, or a NetBIOS datagram's source name.
    Name {
        source: LanNameSource,
        name: NameRef,
        addr: Option<IpAddr>,
    },
}

/// Where a station's self-given name was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LanNameSource {
    Mdns,
    Llmnr,
    Nbns,
    /// A NetBIOS group name the station registered: its workgroup or domain.
    NbnsGroup,
    /// The source name of a NetBIOS datagram (browser announcements, mailslots).
    Netbios,
}

impl LanNameSource {
    pub fn name(self) -> &'static str {
        match self {
            LanNameSource::Mdns => "mdns",
            LanNameSource::Llmnr => "llmnr",
            LanNameSource::Nbns => "nbns",
            LanNameSource::NbnsGroup => "nbns_group",
            LanNameSource::Netbios => "netbios",
        }
    }
}

/// A DHCPv4 message's facts: the message type (option 53), transaction id, client hardware
/// address, the address given (`yiaddr`), the relay (`giaddr`), the server identifier
/// (option 54), the requested address (50), the subnet mask (1) as a prefix length, and
/// options 12 (host name), 81 (client FQDN name), 60 (vendor class), 55 (parameter request
/// list, raw bytes) and 61 (client identifier, raw bytes) in the name arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpFact {
    pub msg: u8,
    pub xid: u32,
    pub chaddr: MacAddr,
    pub yiaddr: std::net::Ipv4Addr,
    pub giaddr: std::net::Ipv4Addr,
    pub server_id: Option<std::net::Ipv4Addr>,
    pub requested: Option<std::net::Ipv4Addr>,
    pub prefix_len: Option<u8>,
    pub host_name: NameRef,
    pub fqdn: NameRef,
    pub vendor_class: NameRef,
    pub params: NameRef,
    pub client_id: NameRef,
}

/// An address a DNS response gave for its question, and the record's TTL in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DnsAnswer {
    pub addr: IpAddr,
    pub ttl: u32,
}

/// An encapsulation a packet can arrive in: the IP tunnels (which give a flow its tunnel)
/// and the link-layer wrappers (stripped and counted only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encapsulation {
    Vlan,
    Mpls,
    Pppoe,
    /// PPPoE discovery frames (PADI, PADO, ...): counted, nothing inside.
    PppoeDiscovery,
    Pbb,
    VnTag,
    FabricPath,
    Gre,
    /// PPTP's enhanced GRE (version 1) carrying PPP.
    PptpGre,
    ErspanI,
    ErspanII,
    ErspanIII,
    Vxlan,
    Geneve,
    GtpU,
    /// IPv4 in IPv4 (protocol 4).
    Ipip,
    /// IPv6 in IPv4 (protocol 41).
    SixInFour,
    /// IPv4 in IPv6.
    FourInSix,
    /// IPv6 in IPv6.
    SixInSix,
    Teredo,
    Ayiya,
}

impl Encapsulation {
    pub const ALL: [Encapsulation; 21] = [
        Encapsulation::Vlan,
        Encapsulation::Mpls,
        Encapsulation::Pppoe,
        Encapsulation::PppoeDiscovery,
        Encapsulation::Pbb,
        Encapsulation::VnTag,
        Encapsulation::FabricPath,
        Encapsulation::Gre,
        Encapsulation::PptpGre,
        Encapsulation::ErspanI,
        Encapsulation::ErspanII,
        Encapsulation::ErspanIII,
        Encapsulation::Vxlan,
        Encapsulation::Geneve,
        Encapsulation::GtpU,
        Encapsulation::Ipip,
        Encapsulation::SixInFour,
        Encapsulation::FourInSix,
        Encapsulation::SixInSix,
        Encapsulation::Teredo,
        Encapsulation::Ayiya,
    ];

    /// The name reports and the API use.
    pub fn name(self) -> &'static str {
        match self {
            Encapsulation::Vlan => "vlan",
            Encapsulation::Mpls => "mpls",
            Encapsulation::Pppoe => "pppoe",
            Encapsulation::PppoeDiscovery => "pppoe_discovery",
            Encapsulation::Pbb => "pbb",
            Encapsulation::VnTag => "vntag",
            Encapsulation::FabricPath => "fabricpath",
            Encapsulation::Gre => "gre",
            Encapsulation::PptpGre => "pptp_gre",
            Encapsulation::ErspanI => "erspan_i",
            Encapsulation::ErspanII => "erspan_ii",
            Encapsulation::ErspanIII => "erspan_iii",
            Encapsulation::Vxlan => "vxlan",
            Encapsulation::Geneve => "geneve",
            Encapsulation::GtpU => "gtp_u",
            Encapsulation::Ipip => "ipip",
            Encapsulation::SixInFour => "6in4",
            Encapsulation::FourInSix => "4in6",
            Encapsulation::SixInSix => "6in6",
            Encapsulation::Teredo => "teredo",
            Encapsulation::Ayiya => "ayiya",
        }
    }

    pub fn parse(name: &str) -> Option<Encapsulation> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the tunnel's number is the same in both directions, so that it can tell
    /// conversations apart (a VNI or an ERSPAN session is; a GTP-U TEID and a PPTP call id
    /// are chosen by each end and differ by direction).
    pub fn id_is_shared(self) -> bool {
        !matches!(self, Encapsulation::GtpU | Encapsulation::PptpGre)
    }
}

/// The tunnel around a packet: what kind, its number, and the IP header that carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelInfo {
    /// The innermost tunnel (the one directly around the packet).
    pub kind: Encapsulation,
    /// VNI, GRE key, TEID, ERSPAN session or PPTP call id.
    pub id: Option<u32>,
    /// The tunnel's endpoints: the IP header in front of the tunnel header.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// That header's protocol (GRE, UDP, IPv4, IPv6) and, over UDP, its ports.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Encapsulation layers removed to reach the packet (tunnels, MPLS stacks, PPPoE, ...).
    pub depth: u8,
}

impl TunnelInfo {
    /// A number that is equal for both directions of one tunnel and differs between
    /// tunnels (kind, shared id, endpoints in a fixed order): what keeps equal inner tuples
    /// in different tunnels apart. Never 0.
    pub fn identity(&self) -> u64 {
        let (lo, hi) = if self.src <= self.dst {
            (self.src, self.dst)
        } else {
            (self.dst, self.src)
        };
        let id = if self.kind.id_is_shared() {
            self.id
        } else {
            None
        };
        crate::hash::stable_hash(&(self.kind as u8, id, lo, hi)).max(1)
    }
}

/// A tunnelled packet's tunnel and its carrier: the outermost IP packet as captured, which
/// is accounted as a flow of its own unless carriers are hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub info: TunnelInfo,
    pub carrier: PacketMeta,
    pub track_carrier: bool,
}

/// Where a packet's tunnel sits in its batch's tunnel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelRef(pub u32);

/// One decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    pub ts: Timestamp,
    /// Length of the frame on the wire (pcap `orig_len`), the unit of all byte counters.
    pub wire_len: u32,
    pub network: Network,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (0 when not IP).
    pub ip_proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Whether ports (or ICMP type/code) were read from a transport header.
    pub has_ports: bool,
    pub tcp_flags: TcpFlags,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Bytes of transport payload (or of IP payload when there is no transport header).
    pub payload_len: u32,
    /// Outer VLAN id, when tagged.
    pub vlan: Option<u16>,
    /// The Ethernet header around the packet (the innermost one, for a bridged tunnel);
    /// zeros when the link has none.
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub fragment: Fragment,
    /// IP identification of a fragment (IPv4 16-bit, IPv6 32-bit); ties fragments together.
    pub frag_id: u32,
    pub dns: Option<DnsMeta>,
    /// The tunnel the packet arrived in, in its batch's tunnel table.
    pub tunnel: Option<TunnelRef>,
}

impl PacketMeta {
    /// An empty record for `ts`, filled in by the decoder.
    pub fn blank(ts: Timestamp, wire_len: u32) -> Self {
        PacketMeta {
            ts,
            wire_len,
            network: Network::Other { ether_type: 0 },
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip_proto: 0,
            src_port: 0,
            dst_port: 0,
            has_ports: false,
            tcp_flags: TcpFlags(0),
            icmp_type: 0,
            icmp_code: 0,
            payload_len: 0,
            vlan: None,
            src_mac: MacAddr::ZERO,
            dst_mac: MacAddr::ZERO,
            fragment: Fragment::Whole,
            frag_id: 0,
            dns: None,
            tunnel: None,
        }
    }

    pub fn is_ip(&self) -> bool {
        matches!(self.network, Network::Ipv4 | Network::Ipv6)
    }

    pub fn is_tcp(&self) -> bool {
        self.is_ip() && self.ip_proto == ip_proto::TCP
    }

    /// The label this packet is counted under.
    pub fn protocol(&self) -> Protocol {
        match self.network {
            Network::Arp => Protocol::Arp,
            Network::Other { .. } => Protocol::NonIp,
            Network::Ipv4 | Network::Ipv6 => {
                if self.dns.is_some() {
                    return Protocol::Dns;
                }
                if self.fragment == Fragment::Later {
                    return Protocol::OtherIp;
                }
                match self.ip_proto {
                    ip_proto::TCP => Protocol::Tcp,
                    ip_proto::UDP => Protocol::Udp,
                    ip_proto::ICMP => Protocol::Icmp,
                    ip_proto::ICMPV6 => Protocol::Icmpv6,
                    _ => Protocol::OtherIp,
                }
            }
        }
    }
}

/// A batch of decoded frames, shared by every consumer through one `Arc`.
#[derive(Debug, Default)]
pub struct PacketBatch {
    pub packets: Vec<PacketMeta>,
    /// Bytes of every DNS name in the batch; `NameRef`s point into it.
    pub names: Vec<u8>,
    /// The tunnels of the batch's tunnelled packets; `TunnelRef`s point into it.
    pub tunnels: Vec<Tunnel>,
    /// The addresses of the batch's DNS responses; `AnswerRef`s point into it.
    pub answers: Vec<DnsAnswer>,
    /// The TLS ClientHellos completed by the batch's packets, in packet order.
    pub hellos: Vec<TlsHello>,
    /// The TLS ServerHellos that begin the batch's packets, in packet order.
    pub choices: Vec<TlsChoice>,
    /// The HTTP request heads completed by the batch's packets, in packet order.
    pub requests: Vec<HttpRequest>,
    /// What the batch's ARP, NDP, DHCP and local name-service packets said about the
    /// stations of the segment, in packet order.
    pub lan: Vec<LanFact>,
    /// When capture began filling the batch: the start of the alert-latency clock.
    pub started: Option<std::time::Instant>,
    /// The batch's room in the pipeline, given back when its last reader drops it.
    pub credit: Option<crate::credit::Credit>,
}

impl PacketBatch {
    pub fn with_capacity(packets: usize) -> Self {
        PacketBatch {
            packets: Vec::with_capacity(packets),
            names: Vec::with_capacity(packets * 8),
            tunnels: Vec::new(),
            answers: Vec::new(),
            hellos: Vec::new(),
            choices: Vec::new(),
            requests: Vec::new(),
            lan: Vec::new(),
            started: None,
            credit: None,
        }
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The bytes of a DNS name stored in this batch (empty if the reference is out of range).
    pub fn name(&self, name: NameRef) -> &[u8] {
        let start = name.offset as usize;
        self.names
            .get(start..start + name.len as usize)
            .unwrap_or_default()
    }

    /// The tunnel `packet` arrived in, if any.
    pub fn tunnel(&self, packet: &PacketMeta) -> Option<&Tunnel> {
        packet.tunnel.and_then(|t| self.tunnels.get(t.0 as usize))
    }

    /// The addresses a DNS response packet gave for its question (empty for anything else).
    pub fn answers(&self, packet: &PacketMeta) -> &[DnsAnswer] {
        packet.dns.map_or(&[], |d| {
            let start = d.addresses.offset as usize;
            self.answers
                .get(start..start + usize::from(d.addresses.len))
                .unwrap_or_default()
        })
    }

    /// The DNS query name of `packet`, if it has one.
    pub fn qname(&self, packet: &PacketMeta) -> Option<&[u8]> {
        packet.dns.map(|dns| self.name(dns.qname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_follow_header_bit_order() {
        let flags = TcpFlags(TcpFlags::ACK | TcpFlags::SYN | TcpFlags::CWR);
        assert_eq!(flags.names().collect::<Vec<_>>(), ["SYN", "ACK", "CWR"]);
        assert_eq!(flags.to_string(), "SYN,ACK,CWR");
        assert!(TcpFlags(TcpFlags::SYN).is_syn_only());
        assert!(!flags.is_syn_only());
    }

    #[test]
    fn timestamps_floor_to_seconds_before_the_epoch() {
        assert_eq!(Timestamp(-1).secs(), -1);
        assert_eq!(Timestamp::from_parts(5, 999_999_999).secs(), 5);
        assert_eq!(Timestamp::from_parts(1, 500_000_000).millis(), 1500);
    }

    #[test]
    fn protocol_filter_names_parse_case_insensitively() {
        assert_eq!(Protocol::parse("tcp"), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse("ICMPv6"), Some(Protocol::Icmpv6));
        assert_eq!(Protocol::parse("nope"), None);
    }
}
