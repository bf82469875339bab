//! Every message actors exchange. Reading this file gives the whole protocol of the system.
//!
//! Capture → consumers: `PacketBatchMsg`. Flows → sinks: `FlowRecordsMsg`; flows → metrics:
//! `FlowTableStatus`. Queries (from the CLI now, the HTTP server later) return values.

use std::sync::Arc;

use actix::Message;

use crate::flow::{FlowRecord, FlowTableStats};
use crate::metrics::{PacketView, StatsSnapshot};
use crate::packet::PacketBatch;

/// A batch of decoded packets; every consumer gets the same `Arc`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct PacketBatchMsg(pub Arc<PacketBatch>);

/// Flow records that finished (or reported on an active timeout).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct FlowRecordsMsg(pub Arc<[FlowRecord]>);

/// The flow table's size after a batch, for `active_sessions`.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct FlowTableStatus(pub FlowTableStats);

/// End of input: emit every flow as a record and reply with the table's counters.
#[derive(Message)]
#[rtype(result = "FlowTableStats")]
pub struct FlushFlows;

/// The flow table's counters.
#[derive(Message)]
#[rtype(result = "FlowTableStats")]
pub struct GetFlowStats;

/// Active flows, most recent first.
#[derive(Message)]
#[rtype(result = "Vec<FlowRecord>")]
pub struct GetActiveFlows {
    pub limit: usize,
}

/// The published statistics snapshot.
#[derive(Message)]
#[rtype(result = "StatsSnapshot")]
pub struct GetStats {
    pub top_talkers: usize,
}

/// The most recent packets, newest first.
#[derive(Message)]
#[rtype(result = "Vec<PacketView>")]
pub struct GetPackets {
    pub limit: usize,
}

/// One recent packet by id.
#[derive(Message)]
#[rtype(result = "Option<PacketView>")]
pub struct GetPacket {
    pub id: u64,
}

/// Flush any buffered output (writers) and reply when done.
#[derive(Message)]
#[rtype(result = "std::io::Result<u64>")]
pub struct FlushOutput;
