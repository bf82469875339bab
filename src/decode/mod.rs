//! Frame → `PacketMeta`: link header (with the Ethernet addresses), link-layer wrappers (VLAN
//! tags, MPLS, PPPoE, PBB, VN-Tag, FabricPath), tunnels (GRE, ERSPAN, VXLAN, Geneve, GTP-U,
//! IP-in-IP, Teredo, AYIYA) nested up to a configured depth, IP (v4 options and fragments, v6
//! extension chains), transport fields, ARP, the DNS question and a response's addresses, and
//! (with names on) the TLS ClientHello or HTTP request head that opens a TCP stream, a
//! ServerHello's choices, and the ClientHello of a QUIC connection's Initials; and (with
//! devices on, `lan`) what ARP, NDP, DHCP, DHCPv6, mDNS, LLMNR and NetBIOS say about the
//! segment's stations.
//!
//! A tunnelled frame yields the innermost packet, as if it had been captured directly; the
//! tunnel it came in and its carrier (the outermost IP packet) go into the batch's tunnel
//! table. etherparse slices the IP layers; smoltcp's `wire` reads ARP, NDP and DHCPv4;
//! `crate::wire` reads the link and encapsulation headers and the rest. Decoding never panics and never trusts a length
//! field. It allocates nothing per packet (names, answers, tunnels and openings go into the
//! batch's arenas) except while a stream's opening or a QUIC connection's CRYPTO stream is
//! put together, which is bounded per stream and in number of streams (`opening`,
//! `initials`), and for each QUIC Initial decrypted (at most 4,000 a second).

mod config;
pub mod initials;
mod lan;
pub mod opening;

use initials::InitialAssembler;
use opening::{Opening, OpeningAssembler};

use std::net::IpAddr;

use etherparse::{LaxIpv4Slice, LaxIpv6Slice};
use serde::Serialize;

pub use config::DecodeConfig;

use crate::packet::{
    AnswerRef, DnsAnswer, Encapsulation, Fragment, HttpRequest, MacAddr, NameRef, Network,
    PacketBatch, PacketMeta, Timestamp, TlsChoice, TlsHello, Tunnel, TunnelInfo, TunnelRef,
    ip_proto,
};
use crate::wire::encap::{self, Cut, LinkStep, kind};
use crate::wire::link::{self, Inner, LinkError, LinkType, ether_type};
use crate::wire::tls::{self, ClientHello};
use crate::wire::{dns, l4, quic};

/// Why a frame produced no `PacketMeta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The capture's link type is not one tapir decodes (802.11, D-Bus, ...).
    UnsupportedLinkType,
    /// The frame is shorter than its link header.
    TruncatedLinkHeader,
    /// EtherType says IPv4 but the header is unreadable (bad version, length or IHL).
    MalformedIpv4,
    /// EtherType says IPv6 but the header or extension chain is unreadable.
    MalformedIpv6,
    /// A raw-IP frame whose version nibble is neither 4 nor 6.
    BadIpVersion,
    /// EtherType says ARP but the packet is truncated.
    MalformedArp,
    /// The frame ends inside an encapsulation header, or inside the frame a tunnel carries.
    TruncatedTunnel,
    /// GRE of an unknown version, or carrying a protocol tapir does not decode.
    UnknownGreProtocol,
    /// More tunnels nested than `[decode] max_depth` allows.
    TunnelTooDeep,
}

impl SkipReason {
    pub const ALL: [SkipReason; 9] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::TruncatedLinkHeader,
        SkipReason::MalformedIpv4,
        SkipReason::MalformedIpv6,
        SkipReason::BadIpVersion,
        SkipReason::MalformedArp,
        SkipReason::TruncatedTunnel,
        SkipReason::UnknownGreProtocol,
        SkipReason::TunnelTooDeep,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::TruncatedLinkHeader => "truncated_link_header",
            SkipReason::MalformedIpv4 => "malformed_ipv4",
            SkipReason::MalformedIpv6 => "malformed_ipv6",
            SkipReason::BadIpVersion => "bad_ip_version",
            SkipReason::MalformedArp => "malformed_arp",
            SkipReason::TruncatedTunnel => "truncated_tunnel",
            SkipReason::UnknownGreProtocol => "unknown_gre_protocol",
            SkipReason::TunnelTooDeep => "tunnel_too_deep",
        }
    }
}

/// Running counts of what the decoder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeCounters {
    pub decoded: u64,
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Port-53 payloads that were not a readable DNS message (the packet is still counted).
    pub dns_malformed: u64,
    /// Decoded packets that arrived in each encapsulation (once per kind per packet).
    pub encapsulated: [u64; Encapsulation::ALL.len()],
    /// QUIC Initials not decrypted because the second's decryption budget was spent.
    pub quic_over_budget: u64,
}

impl DecodeCounters {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// Non-zero skip counts by reason name.
    pub fn skipped_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SkipReason::ALL
            .into_iter()
            .zip(self.skipped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name(), n))
    }

    /// Non-zero packet counts by encapsulation name.
    pub fn by_encapsulation(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Encapsulation::ALL
            .into_iter()
            .zip(self.encapsulated)
            .filter(|(_, n)| *n > 0)
            .map(|(e, n)| (e.name(), n))
    }

    pub fn add(&mut self, other: &DecodeCounters) {
        self.decoded += other.decoded;
        self.dns_malformed += other.dns_malformed;
        for (a, b) in self.skipped.iter_mut().zip(other.skipped) {
            *a += b;
        }
        for (a, b) in self.encapsulated.iter_mut().zip(other.encapsulated) {
            *a += b;
        }
        self.quic_over_budget += other.quic_over_budget;
    }
}

/// Ports on which UDP/TCP payloads are read as DNS (DNS, mDNS, LLMNR).
fn is_dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
}

/// Decodes frames into a batch and keeps counts.
#[derive(Debug, Default)]
pub struct Decoder {
    pub counters: DecodeCounters,
    config: DecodeConfig,
    /// Clients' first bytes, until the TLS ClientHello or HTTP request head that opens
    /// them is whole (absent when names are off).
    openings: Option<OpeningAssembler>,
    /// QUIC clients' Initials, until their ClientHello is whole (absent when names are off).
    initials: Option<InitialAssembler>,
    /// Whether to read what ARP, NDP, DHCP and the local name services say about the
    /// segment's stations (for the device inventory).
    lan_facts: bool,
}

/// One decoded frame: the packet, whether its DNS payload (if any) was readable, the
/// encapsulations it passed through (a bit per `Encapsulation`), its tunnel, and a whole
/// TCP segment's sequence number and payload.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'f> {
    pub meta: PacketMeta,
    pub dns_ok: bool,
    pub seen: u32,
    pub tunnel: Option<Tunnel>,
    pub segment: Option<(u32, &'f [u8])>,
    pub lan: Option<LanBytes<'f>>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_config(config: DecodeConfig) -> Self {
        Decoder {
            counters: DecodeCounters::default(),
            config,
            openings: None,
            initials: None,
            lan_facts: false,
        }
    }

    /// Also reads what ARP, NDP, DHCP, mDNS, LLMNR and NetBIOS say about the segment's
    /// stations into the batch's `lan` facts.
    pub fn with_lan_facts(mut self) -> Self {
        self.lan_facts = true;
        self
    }

    /// Also reads what opens each TCP stream, a TLS ClientHello or an HTTP request head
    /// (the server names flows are named by), waiting for at most `streams` split ones at
    /// once.
    pub fn with_openings(mut self, streams: usize) -> Self {
        self.openings = Some(OpeningAssembler::new(streams));
        self.initials = Some(InitialAssembler::new(streams));
        self
    }

    /// Decodes one frame and appends it to `batch`; a frame that cannot be decoded is counted
    /// under its reason and returned as the error.
    pub fn decode_into(
        &mut self,
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        frame: &[u8],
        batch: &mut PacketBatch,
    ) -> Result<(), SkipReason> {
        let arenas = Arenas {
            names: &mut batch.names,
            answers: &mut batch.answers,
        };
        match self.decode_to(link, ts, wire_len, frame, arenas) {
            Ok(d) => {
                self.counters.decoded += 1;
                self.counters.dns_malformed += u64::from(!d.dns_ok);
                let mut seen = d.seen;
                while seen != 0 {
                    self.counters.encapsulated[seen.trailing_zeros() as usize] += 1;
                    seen &= seen - 1;
                }
                let mut meta = d.meta;
                if let Some(t) = d.tunnel {
                    meta.tunnel = Some(TunnelRef(batch.tunnels.len() as u32));
                    batch.tunnels.push(t);
                }
                self.read_opening(&d, batch);
                if self.lan_facts && lan::may_tell(&d) {
                    lan::read(&d, batch);
                }
                batch.packets.push(meta);
                Ok(())
            }
            Err(reason) => {
                self.counters.skipped[reason as usize] += 1;
                Err(reason)
            }
        }
    }

    /// Feeds a decoded packet to the assemblers of TCP openings and QUIC Initials. A stream
    /// key is made only for the packets they may want: most packets neither open a stream
    /// nor are the awaited rest of one.
    fn read_opening(&mut self, d: &Decoded<'_>, batch: &mut PacketBatch) {
        let meta = &d.meta;
        let key = || {
            let tunnel = d.tunnel.as_ref().map_or(0, |t| t.info.identity());
            (meta.src, meta.dst, meta.src_port, meta.dst_port, tunnel)
        };
        let packet = batch.packets.len() as u32;
        match (meta.ip_proto, d.segment) {
            (ip_proto::UDP, Some((_, payload))) => {
                if let Some(initials) = &mut self.initials
                    && quic::looks_like_initial(payload)
                {
                    if let Some(hello) = initials.datagram(key(), payload, meta.ts) {
                        put_hello(batch, packet, &hello, true);
                    }
                    self.counters.quic_over_budget = initials.over_budget;
                }
            }
            (ip_proto::TCP, segment) => {
                let Some(openings) = &mut self.openings else {
                    return;
                };
                if meta.tcp_flags.is_syn_only() && openings.remembers_read() {
                    openings.starts(&key());
                }
                let Some((seq, payload)) = segment else {
                    return;
                };
                if let Some(choice) = tls::server_hello(payload) {
                    batch.choices.push(TlsChoice {
                        packet,
                        version: choice.version,
                        cipher: choice.cipher,
                    });
                }
                if !openings.may_want(meta.src_port, meta.dst_port, payload) {
                    return;
                }
                match openings.segment(key(), seq, payload, meta.ts) {
                    Some(Opening::Tls(hello)) => put_hello(batch, packet, &hello, false),
                    Some(Opening::Http(head)) => {
                        let names = &mut batch.names;
                        batch.requests.push(HttpRequest {
                            packet,
                            host: put_name(names, head.host.as_deref(), 255),
                            user_agent: put_name(names, head.user_agent.as_deref(), 512),
                        });
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// Decodes one frame without counting it; DNS names go into `names` (a response's
    /// addresses are dropped: `decode_into` keeps them in the batch).
    pub fn decode<'f>(
        &self,
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        frame: &'f [u8],
        names: &mut Vec<u8>,
    ) -> Result<Decoded<'f>, SkipReason> {
        let mut answers = Vec::new();
        let arenas = Arenas {
            names,
            answers: &mut answers,
        };
        let mut d = self.decode_to(link, ts, wire_len, frame, arenas)?;
        if let Some(dns) = &mut d.meta.dns {
            dns.addresses = AnswerRef::default();
        }
        Ok(d)
    }

    fn decode_to<'f>(
        &self,
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        frame: &'f [u8],
        mut arenas: Arenas<'_>,
    ) -> Result<Decoded<'f>, SkipReason> {
        let wire_len = wire_len.max(frame.len() as u32);
        let mut walk = Walk {
            config: &self.config,
            meta: PacketMeta::blank(ts, wire_len),
            seen: 0,
            tunnels: 0,
            info: None,
            carrier: None,
            segment: None,
            lan: None,
        };
        let first = link::strip(link, frame).map_err(|e| match e {
            LinkError::Truncated => SkipReason::TruncatedLinkHeader,
            LinkError::Unsupported => SkipReason::UnsupportedLinkType,
        })?;
        let dns_ok = walk.run(first, &mut arenas)?;
        let tunnel = walk.info.zip(walk.carrier).map(|(info, carrier)| Tunnel {
            info,
            carrier,
            track_carrier: !self.config.hide_carriers,
        });
        Ok(Decoded {
            meta: walk.meta,
            dns_ok,
            seen: walk.seen,
            tunnel,
            segment: walk.segment,
            lan: walk.lan,
        })
    }
}

/// One frame's way down through its layers.
struct Walk<'c, 'f> {
    config: &'c DecodeConfig,
    /// The packet being filled; reset each time a tunnel is entered.
    meta: PacketMeta,
    /// Encapsulations passed, a bit each.
    seen: u32,
    /// Tunnels entered so far.
    tunnels: u8,
    /// The innermost tunnel entered.
    info: Option<TunnelInfo>,
    /// The outermost IP packet, once a tunnel has been entered.
    carrier: Option<PacketMeta>,
    /// The innermost packet's TCP segment (sequence number and payload) or UDP datagram (its
    /// payload), for whole packets.
    segment: Option<(u32, &'f [u8])>,
    /// An ARP packet or neighbour-discovery message, for the segment's facts.
    lan: Option<LanBytes<'f>>,
}

/// The bytes of a packet that speaks about the local segment's stations.
#[derive(Clone, Copy, Debug)]
pub enum LanBytes<'f> {
    /// An Ethernet/IPv4 ARP packet.
    Arp(&'f [u8]),
    /// An ICMPv6 router/neighbour solicitation or advertisement, from its type byte.
    Ndp(&'f [u8]),
}

impl<'f> Walk<'_, 'f> {
    fn saw(&mut self, e: Encapsulation) {
        self.seen |= 1 << e.index();
    }

    /// The reason for a header cut short: inside a tunnel (or in an encapsulation header)
    /// it is the tunnel's; otherwise the capture's link header's.
    fn cut(&self, in_encapsulation: bool) -> SkipReason {
        if in_encapsulation || self.tunnels > 0 {
            SkipReason::TruncatedTunnel
        } else {
            SkipReason::TruncatedLinkHeader
        }
    }

    /// Walks from the link layer's payload to the packet; the result is the DNS flag.
    fn run(&mut self, first: Inner<'f>, arenas: &mut Arenas<'_>) -> Result<bool, SkipReason> {
        let mut next = first;
        // Every step consumes at least a header's bytes, so the walk ends within the frame.
        loop {
            next = match next {
                Inner::Ethernet(b) => {
                    let et = b
                        .get(12..14)
                        .map(|s| u16::from_be_bytes([s[0], s[1]]))
                        .ok_or(self.cut(false))?;
                    if et == kind::FABRICPATH {
                        self.saw(Encapsulation::FabricPath);
                        Inner::Ethernet(encap::fabricpath(b).map_err(|Cut| self.cut(true))?)
                    } else {
                        self.meta.dst_mac = MacAddr::from_slice(b).unwrap_or_default();
                        self.meta.src_mac = MacAddr::from_slice(&b[6..]).unwrap_or_default();
                        Inner::EtherType(et, &b[14..])
                    }
                }
                Inner::Ip(b) => match b.first().map(|v| v >> 4) {
                    Some(4) => Inner::EtherType(ether_type::IPV4, b),
                    Some(6) => Inner::EtherType(ether_type::IPV6, b),
                    _ if self.tunnels > 0 => return Err(SkipReason::TruncatedTunnel),
                    _ => return Err(SkipReason::BadIpVersion),
                },
                Inner::NonIp(id) => {
                    self.meta.network = Network::Other { ether_type: id };
                    return Ok(true);
                }
                Inner::EtherType(et, b) => match et {
                    ether_type::IPV4 | ether_type::IPV6 => match self.ip(et, b, arenas)? {
                        IpOutcome::Tunnel(inner) => inner,
                        IpOutcome::Done(dns_ok) => return Ok(dns_ok),
                    },
                    ether_type::ARP => return self.arp(b),
                    kind::MPLS_UNICAST | kind::MPLS_MULTICAST => {
                        self.saw(Encapsulation::Mpls);
                        encap::mpls(b).map_err(|Cut| self.cut(true))?.inner
                    }
                    kind::PPPOE_SESSION => {
                        self.saw(Encapsulation::Pppoe);
                        let inner = encap::pppoe_session(b).map_err(|Cut| self.cut(true))?.inner;
                        if let Inner::NonIp(_) = inner {
                            // LCP, IPCP and the other PPP control protocols.
                            self.meta.network = Network::Other { ether_type: et };
                            return Ok(true);
                        }
                        inner
                    }
                    kind::PPPOE_DISCOVERY => {
                        self.saw(Encapsulation::PppoeDiscovery);
                        self.meta.network = Network::Other { ether_type: et };
                        return Ok(true);
                    }
                    _ => match encap::link_step(et, b) {
                        Ok(Some(LinkStep::Vlan {
                            id,
                            ether_type,
                            rest,
                        })) => {
                            self.saw(Encapsulation::Vlan);
                            self.meta.vlan.get_or_insert(id);
                            Inner::EtherType(ether_type, rest)
                        }
                        Ok(Some(LinkStep::Pbb { frame, .. })) => {
                            self.saw(Encapsulation::Pbb);
                            Inner::Ethernet(frame)
                        }
                        Ok(Some(LinkStep::VnTag { ether_type, rest })) => {
                            self.saw(Encapsulation::VnTag);
                            Inner::EtherType(ether_type, rest)
                        }
                        Ok(None) => {
                            self.meta.network = Network::Other { ether_type: et };
                            return Ok(true);
                        }
                        Err(Cut) => {
                            let vlan = matches!(
                                et,
                                kind::VLAN | kind::QINQ | kind::QINQ_OLD1 | kind::QINQ_OLD2
                            );
                            return Err(self.cut(!vlan));
                        }
                    },
                },
            };
        }
    }

    /// Reads an IP header and what follows: the transport fields and DNS question, or the
    /// tunnel inside.
    fn ip(
        &mut self,
        et: u16,
        b: &'f [u8],
        arenas: &mut Arenas<'_>,
    ) -> Result<IpOutcome<'f>, SkipReason> {
        let meta = &mut self.meta;
        let (proto, payload, payload_wire_len) = if et == ether_type::IPV4 {
            let (v4, _) = LaxIpv4Slice::from_slice(b).map_err(|_| SkipReason::MalformedIpv4)?;
            let header = v4.header();
            meta.network = Network::Ipv4;
            meta.src = IpAddr::V4(header.source_addr());
            meta.dst = IpAddr::V4(header.destination_addr());
            let offset = header.fragments_offset().value();
            meta.fragment = match (offset, header.more_fragments()) {
                (0, false) => Fragment::Whole,
                (0, true) => Fragment::First,
                _ => Fragment::Later,
            };
            meta.frag_id = u32::from(header.identification());
            let payload = v4.payload().payload;
            // TSO/GRO super-frames carry total_len 0: trust the captured length then.
            let from_header =
                usize::from(header.total_len()).checked_sub(usize::from(header.ihl()) * 4);
            let wire = match from_header {
                Some(n) if header.total_len() != 0 => n,
                _ => payload.len(),
            };
            (header.protocol().0, payload, wire)
        } else {
            let (v6, _) = LaxIpv6Slice::from_slice(b).map_err(|_| SkipReason::MalformedIpv6)?;
            let header = v6.header();
            meta.network = Network::Ipv6;
            meta.src = IpAddr::V6(header.source_addr());
            meta.dst = IpAddr::V6(header.destination_addr());
            let chain = v6.extensions().slice();
            if let Some(frag) = crate::wire::ipv6::fragment_header(header.next_header().0, chain)
                && (frag.offset != 0 || frag.more)
            {
                meta.fragment = if frag.offset == 0 {
                    Fragment::First
                } else {
                    Fragment::Later
                };
                meta.frag_id = frag.id;
            }
            let ip_payload = v6.payload();
            let ext_len = chain.len();
            let wire = match usize::from(header.payload_length()).checked_sub(ext_len) {
                Some(n) if header.payload_length() != 0 => n,
                _ => ip_payload.payload.len(),
            };
            (ip_payload.ip_number.0, ip_payload.payload, wire)
        };
        meta.ip_proto = proto;
        meta.payload_len = payload_wire_len as u32;
        if meta.fragment == Fragment::Later {
            return Ok(IpOutcome::Done(true));
        }

        let t = l4::parse(proto, payload);
        meta.src_port = t.src_port;
        meta.dst_port = t.dst_port;
        meta.has_ports = t.has_ports;
        meta.tcp_flags = t.flags;
        meta.icmp_type = t.icmp_type;
        meta.icmp_code = t.icmp_code;
        if let Some(hlen) = t.header_len {
            meta.payload_len = payload_wire_len.saturating_sub(hlen) as u32;
        }
        let body = t
            .header_len
            .and_then(|h| payload.get(h..))
            .unwrap_or_default();

        if let Some((encapsulation, id, inner)) = self.tunnel(proto, &t, payload, body)? {
            self.enter(encapsulation, id)?;
            return Ok(IpOutcome::Tunnel(inner));
        }
        if matches!(proto, ip_proto::TCP | ip_proto::UDP)
            && self.meta.fragment == Fragment::Whole
            && !body.is_empty()
        {
            self.segment = Some((t.seq, body));
        }
        if proto == ip_proto::ICMPV6
            && matches!(t.icmp_type, 133..=136)
            && self.meta.fragment == Fragment::Whole
        {
            self.lan = Some(LanBytes::Ndp(payload));
        }

        let meta = &mut self.meta;
        let mut dns_ok = true;
        if meta.fragment == Fragment::Whole
            && t.has_ports
            && (is_dns_port(t.src_port) || is_dns_port(t.dst_port))
        {
            let message = match proto {
                ip_proto::UDP => Some(body),
                // DNS over TCP: a two-byte length prefix, then the message (only segments
                // that begin a message are read).
                ip_proto::TCP if body.len() >= 14 => Some(&body[2..]),
                _ => None,
            };
            if let Some(msg) = message.filter(|m| !m.is_empty()) {
                match dns::parse(msg, arenas.names) {
                    Ok(mut d) => {
                        if d.is_response && d.rcode == 0 && d.answers > 0 {
                            d.addresses = answers(msg, arenas.answers);
                        }
                        meta.dns = Some(d);
                    }
                    Err(_) => dns_ok = false,
                }
            }
        }
        Ok(IpOutcome::Done(dns_ok))
    }

    /// The tunnel an IP packet carries, if it is one: GRE and its kin by protocol number,
    /// IP-in-IP, and the UDP tunnels by port (Teredo also by shape).
    fn tunnel<'a>(
        &self,
        proto: u8,
        t: &l4::Transport,
        payload: &'a [u8],
        udp_body: &'a [u8],
    ) -> Result<Option<(Encapsulation, Option<u32>, Inner<'a>)>, SkipReason> {
        const GRE: u8 = 47;
        const IPV4_IN: u8 = 4;
        const IPV6_IN: u8 = 41;
        let v6 = self.meta.network == Network::Ipv6;
        let cut = |Cut| SkipReason::TruncatedTunnel;
        // An empty payload carries nothing: a probe (nmap -sO sends bare GRE and IP-in-IP
        // headers), seen as the packet it is.
        if payload.is_empty() || (proto == ip_proto::UDP && udp_body.is_empty()) {
            return Ok(None);
        }
        Ok(match proto {
            GRE => Some(gre(payload)?),
            IPV4_IN => Some((
                if v6 {
                    Encapsulation::FourInSix
                } else {
                    Encapsulation::Ipip
                },
                None,
                Inner::EtherType(ether_type::IPV4, payload),
            )),
            IPV6_IN => Some((
                if v6 {
                    Encapsulation::SixInSix
                } else {
                    Encapsulation::SixInFour
                },
                None,
                Inner::EtherType(ether_type::IPV6, payload),
            )),
            ip_proto::UDP if t.has_ports && t.header_len.is_some() => {
                let c = self.config;
                let (src, dst) = (t.src_port, t.dst_port);
                // VXLAN, Geneve and GTP-U go to their port in both directions, so only the
                // destination port counts (as in Suricata): a random source port that
                // happens to be 4789 is no tunnel. AYIYA and Teredo servers answer from
                // theirs; off its port Teredo is recognised by its shape alone.
                let found = if c.vxlan_ports.contains(&dst) {
                    encap::vxlan(udp_body)
                        .map_err(cut)?
                        .map(|e| (Encapsulation::Vxlan, e))
                } else if c.geneve_ports.contains(&dst) {
                    encap::geneve(udp_body)
                        .map_err(cut)?
                        .map(|e| (Encapsulation::Geneve, e))
                } else if c.gtp_u_ports.contains(&dst) {
                    encap::gtp_u(udp_body)
                        .map_err(cut)?
                        .map(|e| (Encapsulation::GtpU, e))
                } else if dst == AYIYA_PORT || src == AYIYA_PORT {
                    encap::ayiya(udp_body)
                        .map_err(cut)?
                        .map(|e| (Encapsulation::Ayiya, e))
                } else {
                    let on_port = dst == TEREDO_PORT || src == TEREDO_PORT;
                    let by_shape = c.teredo_by_shape && !is_dns_port(src) && !is_dns_port(dst);
                    (on_port || by_shape)
                        .then(|| encap::teredo(udp_body, !on_port))
                        .flatten()
                        .map(|ip| {
                            let inner = Inner::EtherType(ether_type::IPV6, ip);
                            (Encapsulation::Teredo, encap::Encap { inner, id: None })
                        })
                };
                found.map(|(k, e)| (k, e.id, e.inner))
            }
            _ => None,
        })
    }

    /// Steps into a tunnel: the packet read so far becomes the tunnel's outer header (and,
    /// for the first tunnel, the carrier), and the walk starts over on what it carries.
    fn enter(&mut self, encapsulation: Encapsulation, id: Option<u32>) -> Result<(), SkipReason> {
        if self.tunnels >= self.config.max_depth {
            return Err(SkipReason::TunnelTooDeep);
        }
        self.tunnels += 1;
        self.saw(encapsulation);
        let outer = self.meta;
        let udp = outer.ip_proto == ip_proto::UDP;
        self.info = Some(TunnelInfo {
            kind: encapsulation,
            id,
            src: outer.src,
            dst: outer.dst,
            proto: outer.ip_proto,
            src_port: if udp { outer.src_port } else { 0 },
            dst_port: if udp { outer.dst_port } else { 0 },
            depth: self.tunnels,
        });
        self.carrier.get_or_insert(outer);
        self.meta = PacketMeta::blank(outer.ts, outer.wire_len);
        // Teredo, 6in4 and AYIYA end at a host: the station that sent the frame is the one
        // the inner packet is from. Other tunnels end at routers (or carry their own
        // Ethernet header, which sets the addresses again).
        if matches!(
            encapsulation,
            Encapsulation::Teredo | Encapsulation::SixInFour | Encapsulation::Ayiya
        ) {
            self.meta.src_mac = outer.src_mac;
            self.meta.dst_mac = outer.dst_mac;
        }
        Ok(())
    }

    /// ARP for IPv4 over Ethernet via smoltcp; other hardware/protocol pairs count as non-IP.
    fn arp(&mut self, bytes: &'f [u8]) -> Result<bool, SkipReason> {
        use smoltcp::wire::{ArpPacket, ArpRepr};
        let packet = ArpPacket::new_checked(bytes).map_err(|_| SkipReason::MalformedArp)?;
        let meta = &mut self.meta;
        match ArpRepr::parse(&packet) {
            Ok(ArpRepr::EthernetIpv4 {
                operation,
                source_protocol_addr,
                target_protocol_addr,
                ..
            }) => {
                meta.network = Network::Arp;
                self.lan = Some(LanBytes::Arp(bytes));
                meta.src = IpAddr::V4(source_protocol_addr);
                meta.dst = IpAddr::V4(target_protocol_addr);
                meta.icmp_type = match operation {
                    smoltcp::wire::ArpOperation::Request => 1,
                    smoltcp::wire::ArpOperation::Reply => 2,
                    smoltcp::wire::ArpOperation::Unknown(op) => op as u8,
                };
            }
            _ => {
                meta.network = Network::Other {
                    ether_type: ether_type::ARP,
                }
            }
        }
        Ok(true)
    }
}

/// Where a frame's variable-length parts go: DNS names and a response's addresses.
struct Arenas<'a> {
    names: &'a mut Vec<u8>,
    answers: &'a mut Vec<DnsAnswer>,
}

/// Appends `bytes` (at most `max` of them: a host name's 255, a User-Agent's 512) to the
/// name arena.
/// Appends a ClientHello that packet `packet` completed to the batch.
fn put_hello(batch: &mut PacketBatch, packet: u32, hello: &ClientHello, quic: bool) {
    let names = &mut batch.names;
    batch.hellos.push(TlsHello {
        packet,
        server_name: put_name(names, hello.server_name.as_deref(), 255),
        alpn: put_name(names, hello.alpn.as_deref(), 255),
        ja4: put_name(names, Some(hello.ja4.as_bytes()), 64),
        version: hello.version,
        quic,
    });
}

fn put_name(arena: &mut Vec<u8>, bytes: Option<&[u8]>, max: usize) -> NameRef {
    let bytes = bytes.map_or(&[][..], |b| &b[..b.len().min(max)]);
    let name = NameRef {
        offset: arena.len() as u32,
        len: bytes.len() as u16,
    };
    arena.extend_from_slice(bytes);
    name
}

/// Appends the addresses a response gives to `arena` (none if its records do not parse: a
/// half-read answer section is not evidence).
fn answers(msg: &[u8], arena: &mut Vec<DnsAnswer>) -> AnswerRef {
    let start = arena.len();
    if dns::answers(msg, |addr, ttl| arena.push(DnsAnswer { addr, ttl })).is_err() {
        arena.truncate(start);
    }
    AnswerRef {
        offset: start as u32,
        len: (arena.len() - start).min(usize::from(u16::MAX)) as u16,
    }
}

/// Teredo's server port (RFC 4380) and AYIYA's.
const TEREDO_PORT: u16 = 3544;
const AYIYA_PORT: u16 = 5072;

/// What an IP header led to.
enum IpOutcome<'a> {
    /// A tunnel: the walk goes on with what it carries.
    Tunnel(Inner<'a>),
    /// The packet itself; the flag is the DNS one.
    Done(bool),
}

/// A GRE packet's kind, id and payload: plain GRE (IP, Ethernet bridging as NVGRE, MPLS),
/// ERSPAN I, II and III, and PPTP's enhanced GRE.
fn gre(payload: &[u8]) -> Result<(Encapsulation, Option<u32>, Inner<'_>), SkipReason> {
    let g = encap::gre(payload).map_err(|Cut| SkipReason::TruncatedTunnel)?;
    let cut = |Cut| SkipReason::TruncatedTunnel;
    Ok(match (g.version, g.protocol) {
        (0, ether_type::IPV4 | ether_type::IPV6 | kind::MPLS_UNICAST | kind::MPLS_MULTICAST) => (
            Encapsulation::Gre,
            g.key,
            Inner::EtherType(g.protocol, g.payload),
        ),
        (0, kind::ETHERNET_BRIDGING) => (Encapsulation::Gre, g.key, Inner::Ethernet(g.payload)),
        (0, kind::PPP) => (
            Encapsulation::Gre,
            g.key,
            encap::ppp_payload(g.payload).map_err(cut)?,
        ),
        // Type I has no header and no sequence number; type II has both.
        (0, kind::ERSPAN) if !g.has_sequence => {
            (Encapsulation::ErspanI, None, Inner::Ethernet(g.payload))
        }
        (0, kind::ERSPAN) => {
            let e = encap::erspan_ii(g.payload).map_err(cut)?;
            (Encapsulation::ErspanII, e.id, e.inner)
        }
        (0, kind::ERSPAN_III) => {
            let e = encap::erspan_iii(g.payload).map_err(cut)?;
            (Encapsulation::ErspanIII, e.id, e.inner)
        }
        (1, kind::PPP) => (
            Encapsulation::PptpGre,
            g.key,
            encap::ppp_payload(g.payload).map_err(cut)?,
        ),
        _ => return Err(SkipReason::UnknownGreProtocol),
    })
}

#[cfg(test)]
mod tests;
