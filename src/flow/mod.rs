//! Flows: the bidirectional flow table and the actor around it. The records, marks and
//! counters it reports are values of `model::flow`, re-exported here.

pub mod actor;
pub mod community_id;
pub mod table;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use table::FlowTable;

pub use crate::model::flow::{
    EndReason, FlowMark, FlowQuery, FlowRecord, FlowState, FlowTableStats, protocol_name,
};

/// Normalized 5-tuple: `(a, a_port) <= (b, b_port)` so that both directions find one flow.
/// One-way ICMP messages keep packet order (see Community ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub a: IpAddr,
    pub b: IpAddr,
    pub a_port: u16,
    pub b_port: u16,
    pub proto: u8,
    /// The identity of the tunnel the flow lives in (`TunnelInfo::identity`), 0 for none.
    pub tunnel: u64,
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

#[cfg(test)]
mod tests;
