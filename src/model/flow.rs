//! Flow values: what the flow table reports and the store keeps (records, marks, counters)
//! and the query that selects records.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use crate::packet::{Encapsulation, TcpFlags, Timestamp, TunnelInfo, ip_proto};

/// What the flow table learned from one packet, for the detectors that read packets: which
/// packets open a conversation, first answer it, or complete a TCP handshake. Detectors use
/// it to skip the bulk of a connection's packets without keeping connection state of their
/// own (one per packet of a batch, in order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowMark(pub u8);

impl FlowMark {
    /// The packet started a new flow (its sender is the initiator).
    pub const OPENS: u8 = 1;
    /// The first packet its sender sent in this flow (set together with `OPENS`).
    pub const FIRST_FROM_SENDER: u8 = 2;
    /// Sent by the flow's responder.
    pub const FROM_RESPONDER: u8 = 4;
    /// The initiator's first ACK after its SYN: the TCP handshake is complete.
    pub const COMPLETES_HANDSHAKE: u8 = 8;
    /// Not tracked (not IP, or a later fragment whose first fragment was never seen):
    /// detectors must judge the packet by itself.
    pub const UNTRACKED: u8 = 16;

    #[inline]
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// The packet opens a flow or is the first its sender sent in one (or is untracked):
    /// the only packets that can be a probe or the first answer to one.
    #[inline]
    pub fn is_first_from_sender(self) -> bool {
        self.0 & (Self::FIRST_FROM_SENDER | Self::UNTRACKED) != 0
    }
}

/// Where a flow is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// TCP: SYN seen, handshake not complete.
    Handshake,
    Established,
    /// TCP: FIN from one side.
    Closing,
    /// TCP: FIN from both sides.
    Closed,
    Reset,
    /// Not TCP.
    Active,
}

/// Why a record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    IdleTimeout,
    /// Interim record of a long flow that continues.
    ActiveTimeout,
    /// A new connection reused the tuple of a finished one.
    Closed,
    /// The table was full.
    Evicted,
    /// End of input or shutdown.
    Shutdown,
    /// Still active (a snapshot, not an end).
    Active,
}

/// A flow as stored and exported. `src` is the initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub id: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ip_proto: u8,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub src_packets: u64,
    pub dst_packets: u64,
    pub src_bytes: u64,
    pub dst_bytes: u64,
    pub src_flags: TcpFlags,
    pub dst_flags: TcpFlags,
    pub state: FlowState,
    /// TCP: the responder sent RST before the initiator sent FIN (a refused or aborted
    /// attempt, as opposed to a reset after the client closed).
    pub refused: bool,
    pub vlan: Option<u16>,
    pub community_id: String,
    pub end: EndReason,
    /// The tunnel the flow was seen in (the flow itself is the inner conversation).
    pub tunnel: Option<Box<TunnelInfo>>,
    /// The kind of tunnel this flow carries, when it is a tunnel's outer flow.
    pub carries: Option<Encapsulation>,
    /// What the server (the responder) is called, and how that was learned.
    pub server_name: Option<Arc<str>>,
    pub name_source: Option<NameSource>,
    /// The Host and User-Agent of the flow's first HTTP/1.x request.
    pub http_host: Option<Arc<str>>,
    pub http_user_agent: Option<Arc<str>>,
    /// What the flow's TLS or QUIC handshake showed (boxed: most flows have none).
    pub tls: Option<Box<TlsFacts>>,
    /// The application the flow belongs to, by its server's name or, as a guess, its port.
    pub app: Option<AppLabel>,
}

/// What a flow's TLS or QUIC handshake showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFacts {
    /// The first protocol the client offered by ALPN.
    pub alpn: Option<Arc<str>>,
    /// The version: the server's choice when its ServerHello was seen, else the highest the
    /// client offered.
    pub version: u16,
    /// The cipher suite the server chose, when its ServerHello was seen.
    pub cipher: Option<u16>,
    /// The client's JA4 fingerprint.
    pub ja4: Arc<str>,
}

/// An application and its category (`youtube`, `streaming`), interned: a label is copied
/// with its record across threads many thousand times a second, and shared reference counts
/// would bounce one cache line between the cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppLabel {
    pub app: &'static str,
    pub category: &'static str,
    /// Guessed from the server's port (an IANA service name), not from a name.
    pub by_port: bool,
}

/// Distinct strings `intern` keeps at most; past this it answers `other` (a damaged or
/// hostile database cannot make it grow without bound).
const MAX_INTERNED: usize = 65_536;

/// The one `'static` copy of `text` (made once per distinct text, never freed: labels come
/// from the application catalogue, a few hundred words).
pub fn intern(text: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static TABLE: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(kept) = table.get(text) {
        return kept;
    }
    if table.len() >= MAX_INTERNED {
        return "other";
    }
    let kept: &'static str = Box::leak(text.into());
    table.insert(kept);
    kept
}

/// How a flow's server name was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// The TLS ClientHello's server name.
    Sni,
    /// The server name of a QUIC Initial's ClientHello.
    Quic,
    /// The HTTP request's Host.
    Http,
    /// A DNS answer the flow's own client received.
    Dns,
    /// A DNS answer another client received (a weaker guess).
    DnsOtherClient,
}

impl NameSource {
    pub const ALL: [NameSource; 5] = [
        NameSource::Sni,
        NameSource::Quic,
        NameSource::Http,
        NameSource::Dns,
        NameSource::DnsOtherClient,
    ];
}

impl FlowRecord {
    /// A finished TCP flow from `src` to `dst`:443 for tests, 1,500 bytes each way.
    #[cfg(test)]
    pub fn sample(src: &str, dst: &str) -> FlowRecord {
        FlowRecord {
            id: 1,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 40_000,
            dst_port: 443,
            ip_proto: ip_proto::TCP,
            first_seen: Timestamp(1_700_000_000_000_000_000),
            last_seen: Timestamp(1_700_000_001_000_000_000),
            src_packets: 3,
            dst_packets: 3,
            src_bytes: 1500,
            dst_bytes: 1500,
            src_flags: TcpFlags(0x1b),
            dst_flags: TcpFlags(0x1b),
            state: FlowState::Closed,
            refused: false,
            vlan: None,
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

    pub fn packets(&self) -> u64 {
        self.src_packets + self.dst_packets
    }

    pub fn bytes(&self) -> u64 {
        self.src_bytes + self.dst_bytes
    }

    pub fn duration_secs(&self) -> f64 {
        (self.last_seen.0.saturating_sub(self.first_seen.0)) as f64 / 1e9
    }

    /// The published protocol name of the flow's transport.
    pub fn protocol_name(&self) -> &'static str {
        protocol_name(self.ip_proto)
    }

    pub fn involves(&self, ip: IpAddr) -> bool {
        self.src == ip || self.dst == ip
    }
}

/// A TLS version as people write it (`TLS 1.3`), or its number in hex when unknown.
pub fn tls_version_name(version: u16) -> std::borrow::Cow<'static, str> {
    match version {
        0x0304 => "TLS 1.3".into(),
        0x0303 => "TLS 1.2".into(),
        0x0302 => "TLS 1.1".into(),
        0x0301 => "TLS 1.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0002 => "SSL 2.0".into(),
        v => format!("0x{v:04x}").into(),
    }
}

/// Published protocol name for an IP protocol number.
pub fn protocol_name(proto: u8) -> &'static str {
    match proto {
        ip_proto::TCP => "TCP",
        ip_proto::UDP => "UDP",
        ip_proto::ICMP => "ICMP",
        ip_proto::ICMPV6 => "ICMPv6",
        ip_proto::SCTP => "SCTP",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        2 => "IGMP",
        41 => "IPv6-in-IPv4",
        4 => "IPv4-in-IP",
        _ => "Other",
    }
}

/// The published Flow shape plus tapir's additions.
impl Serialize for FlowRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let duration = self.duration_secs();
        let bytes = self.bytes();
        let extra = usize::from(self.tunnel.is_some())
            + usize::from(self.carries.is_some())
            + 2 * usize::from(self.server_name.is_some())
            + usize::from(self.http_host.is_some())
            + usize::from(self.http_user_agent.is_some())
            + self.tls.as_ref().map_or(0, |t| {
                2 + usize::from(t.alpn.is_some()) + usize::from(t.cipher.is_some())
            })
            + self.app.as_ref().map_or(0, |a| 2 + usize::from(a.by_port));
        let mut m = s.serialize_map(Some(22 + extra))?;
        m.serialize_entry("src_ip", &self.src)?;
        m.serialize_entry("dst_ip", &self.dst)?;
        m.serialize_entry("src_port", &self.src_port)?;
        m.serialize_entry("dst_port", &self.dst_port)?;
        m.serialize_entry("protocol", self.protocol_name())?;
        m.serialize_entry("first_seen", &self.first_seen.as_secs_f64())?;
        m.serialize_entry("last_seen", &self.last_seen.as_secs_f64())?;
        m.serialize_entry("duration", &duration)?;
        m.serialize_entry("total_bytes", &bytes)?;
        m.serialize_entry("packet_count", &self.packets())?;
        let rate = if duration > 0.0 {
            bytes as f64 / duration
        } else {
            0.0
        };
        m.serialize_entry("bytes_per_sec", &rate)?;
        let flags = TcpFlags(self.src_flags.0 | self.dst_flags.0);
        m.serialize_entry("tcp_flags", &flags.names().collect::<Vec<_>>())?;
        m.serialize_entry("community_id", &self.community_id)?;
        m.serialize_entry("flow_id", &self.id)?;
        m.serialize_entry("ip_proto", &self.ip_proto)?;
        m.serialize_entry("src_packets", &self.src_packets)?;
        m.serialize_entry("dst_packets", &self.dst_packets)?;
        m.serialize_entry("src_bytes", &self.src_bytes)?;
        m.serialize_entry("dst_bytes", &self.dst_bytes)?;
        m.serialize_entry("state", &self.state)?;
        m.serialize_entry("vlan", &self.vlan)?;
        m.serialize_entry("end_reason", &self.end)?;
        if let Some(t) = &self.tunnel {
            m.serialize_entry("tunnel", &TunnelView(t))?;
        }
        if let Some(kind) = self.carries {
            m.serialize_entry("carries", kind.name())?;
        }
        if let Some(name) = &self.server_name {
            m.serialize_entry("server_name", name)?;
            m.serialize_entry("name_source", &self.name_source)?;
        }
        if let Some(host) = &self.http_host {
            m.serialize_entry("http_host", host)?;
        }
        if let Some(agent) = &self.http_user_agent {
            m.serialize_entry("http_user_agent", agent)?;
        }
        if let Some(tls) = &self.tls {
            if let Some(alpn) = &tls.alpn {
                m.serialize_entry("alpn", alpn)?;
            }
            m.serialize_entry("tls_version", &tls_version_name(tls.version))?;
            if let Some(cipher) = tls.cipher {
                m.serialize_entry("tls_cipher", &format!("0x{cipher:04x}"))?;
            }
            m.serialize_entry("ja4", &tls.ja4)?;
        }
        if let Some(app) = &self.app {
            m.serialize_entry("app", app.app)?;
            m.serialize_entry("category", app.category)?;
            if app.by_port {
                m.serialize_entry("app_guessed", &true)?;
            }
        }
        m.end()
    }
}

/// A flow's tunnel as published: Suricata's EVE `tunnel` object (the outer header's
/// addresses, ports, protocol and depth) plus the tunnel's type and number.
pub struct TunnelView<'a>(pub &'a TunnelInfo);

impl Serialize for TunnelView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let t = self.0;
        let udp = t.proto == ip_proto::UDP;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", t.kind.name())?;
        if let Some(id) = t.id {
            m.serialize_entry("id", &id)?;
        }
        m.serialize_entry("src_ip", &t.src)?;
        m.serialize_entry("dest_ip", &t.dst)?;
        if udp {
            m.serialize_entry("src_port", &t.src_port)?;
            m.serialize_entry("dest_port", &t.dst_port)?;
        }
        m.serialize_entry("proto", protocol_name(t.proto))?;
        m.serialize_entry("depth", &t.depth)?;
        m.end()
    }
}

/// Counters of the flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowTableStats {
    pub active: u64,
    /// Packet batches taken in.
    pub batches: u64,
    pub peak_active: u64,
    pub created: u64,
    pub expired: u64,
    pub evicted: u64,
    pub active_reports: u64,
    /// Later IP fragments whose first fragment was never seen.
    pub unattributed_fragments: u64,
}

/// Which flows a query wants (the published `/flows` parameters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowQuery {
    pub limit: usize,
    /// Published protocol name (`TCP`, `UDP`, `ICMP`, ...), case-insensitive.
    pub protocol: Option<String>,
    /// The initiator's address.
    pub src_ip: Option<IpAddr>,
    /// Either end's address.
    pub ip: Option<IpAddr>,
    /// Unix seconds, inclusive, on the flow's last packet.
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// A server name (lowercase): flows named by it or by a name under it
    /// (`google.com` matches `www.google.com`), or whose HTTP Host is it.
    pub name: Option<String>,
    /// An application or category, exactly.
    pub app: Option<String>,
}

impl FlowQuery {
    /// The time range in nanoseconds, widened to whole nanoseconds at both ends.
    pub fn time_bounds_ns(&self) -> (i64, i64) {
        (
            self.start.map_or(i64::MIN, |s| secs_to_ns(s, f64::floor)),
            self.end.map_or(i64::MAX, |e| secs_to_ns(e, f64::ceil)),
        )
    }

    /// Whether a record passes every filter of the query (the limit aside).
    pub fn matches(&self, r: &FlowRecord) -> bool {
        let (lo, hi) = self.time_bounds_ns();
        r.last_seen.0 >= lo
            && r.last_seen.0 <= hi
            && self.src_ip.is_none_or(|ip| r.src == ip)
            && self.ip.is_none_or(|ip| r.involves(ip))
            && self
                .protocol
                .as_deref()
                .is_none_or(|p| r.protocol_name().eq_ignore_ascii_case(p))
            && self.name.as_deref().is_none_or(|n| {
                r.server_name.as_deref().is_some_and(|s| is_under(s, n))
                    || r.http_host.as_deref().is_some_and(|h| is_under(h, n))
            })
            && self.app.as_deref().is_none_or(|a| {
                r.app
                    .as_ref()
                    .is_some_and(|l| l.app == a || l.category == a)
            })
    }
}

/// Whether `name` is `domain` or a name under it (at a label boundary), ignoring case.
pub fn is_under(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.len() >= domain.len()
        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
        && (name.len() == domain.len() || name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

fn secs_to_ns(s: f64, round: fn(f64) -> f64) -> i64 {
    let ns = round(s * 1e9);
    if ns >= i64::MAX as f64 {
        i64::MAX
    } else if ns <= i64::MIN as f64 {
        i64::MIN
    } else {
        ns as i64
    }
}
