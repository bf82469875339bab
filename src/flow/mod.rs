//! Flows: the bidirectional flow table, its records, and the actor around it.

pub mod actor;
pub mod community_id;
pub mod table;

use std::net::IpAddr;

use serde::{Deserialize, Serialize, Serializer};

pub use table::FlowTable;

use crate::packet::{TcpFlags, Timestamp, ip_proto};

/// Normalized 5-tuple: `(a, a_port) <= (b, b_port)` so that both directions find one flow.
/// One-way ICMP messages keep packet order (see Community ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub a: IpAddr,
    pub b: IpAddr,
    pub a_port: u16,
    pub b_port: u16,
    pub proto: u8,
}

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

/// Flow-table settings (the `[flows]` section of the config file). Timeouts are in seconds of
/// packet time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// SYN seen, handshake not complete.
    pub tcp_handshake_timeout: u64,
    pub tcp_established_timeout: u64,
    /// After FIN from both sides or a RST.
    pub tcp_closed_timeout: u64,
    pub udp_timeout: u64,
    pub icmp_timeout: u64,
    pub other_timeout: u64,
    /// A long flow emits an interim record this often (0 = never).
    pub active_timeout: u64,
    /// Hard cap on tracked flows; when full the least recently active flow is evicted.
    pub max_flows: usize,
    pub community_id_seed: u16,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_handshake_timeout: 30,
            tcp_established_timeout: 300,
            tcp_closed_timeout: 10,
            udp_timeout: 60,
            icmp_timeout: 30,
            other_timeout: 60,
            active_timeout: 1800,
            // About 45 MB of table at full size: a fit for a 512 MB device.
            max_flows: 200_000,
            community_id_seed: 0,
        }
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
}

impl FlowRecord {
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
        let mut m = s.serialize_map(Some(22))?;
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

#[cfg(test)]
mod tests;
