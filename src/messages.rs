//! The messages of the data plane, which every component may send or receive: packet batches
//! (capture → flows and metrics), marked batches (flows → the detectors that read packets),
//! flow records (flows → detectors, store, export, output), the flow table's size (flows →
//! metrics), findings (detectors → alerts), alert changes (alerts → store, export, hub) and
//! minute snapshots (metrics → store). They carry values from `model` and `packet` only, so
//! this module names no component and no actor.
//!
//! Control and query messages live beside the actor that handles them: `flow::actor`
//! (`FlushFlows`, `GetActiveFlows`, ...), `metrics::actor`, `detect::actor`, `alert::actor`,
//! `store::actor`, `output`, `export` (`FlushExport`), `engine` (`StartUpload`, `Shutdown`,
//! ...) and `http::hub` (`Subscribe`, ...). The engine tells the hub and the HTTP workers
//! about the current pipeline with `pipeline::PipelineChanged` and a watch channel.

use std::sync::Arc;

use actix::Message;

use crate::model::alert::Alert;
use crate::model::finding::Finding;
use crate::model::flow::{FlowMark, FlowRecord, FlowTableStats};
use crate::model::traffic::MinuteSnapshot;
use crate::packet::PacketBatch;

/// A batch of decoded packets; every consumer gets the same `Arc`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct PacketBatchMsg(pub Arc<PacketBatch>);

/// A batch after the flow table has seen it, with one mark per packet: the detectors skip a
/// connection's bulk by its marks instead of tracking connections again.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct MarkedBatchMsg {
    pub batch: Arc<PacketBatch>,
    pub marks: Arc<[FlowMark]>,
}

/// Flow records that finished (or reported on an active timeout), and what bounds them
/// while they wait for their reader.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct FlowRecordsMsg(pub Arc<[FlowRecord]>, pub RecordsHold);

/// What a records message holds until its reader drops it.
#[derive(Clone, Default)]
pub enum RecordsHold {
    /// Nothing: a final flush (which must reach every reader), or live records for a
    /// reader that needs no backlog.
    #[default]
    Nothing,
    /// The batch whose packets finished them, and so its capture credit: records queued
    /// behind a busy reader are bounded by the credits as packets are. The detectors always
    /// keep this pace; readers that buffer on their own terms (the store, export) only while
    /// a file is read, which then waits for them.
    Batch(Arc<PacketBatch>),
    /// A place in the reader's backlog (the store during live capture, which must never
    /// slow down and drops what the backlog has no room for).
    Backlog(Arc<crate::credit::BacklogTicket>),
}

impl RecordsHold {
    /// Whether the records keep capture's pace (the reader should catch up before it
    /// returns).
    pub fn is_paced(&self) -> bool {
        matches!(self, RecordsHold::Batch(_))
    }
}

impl FlowRecordsMsg {
    /// Records that hold nothing.
    pub fn unpaced(records: Arc<[FlowRecord]>) -> Self {
        FlowRecordsMsg(records, RecordsHold::Nothing)
    }
}

/// The flow table's size after a batch, for `active_sessions`.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct FlowTableStatus(pub FlowTableStats);

/// Detector → alerts: observations to merge into alerts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FindingsMsg(pub Vec<Finding>);

/// Devices whose facts changed (first seen, a new address or name, new DHCP facts, a
/// label), as they are now: for the device events of the export.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct DevicesChanged(pub Arc<[crate::model::device::Device]>);

/// Devices to write (every one whose counters or facts changed), the ones evicted, and the
/// inventory's state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StoreDevices {
    pub devices: Vec<crate::model::device::Device>,
    pub removed: Vec<crate::packet::MacAddr>,
    pub state: crate::model::device::InventoryState,
}

/// Devices' usage per minute of packet time, for the history rollups.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeviceMinutes(pub Vec<crate::model::device::DeviceMinute>);

/// Alerts that were opened or updated, as they are now.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct AlertsChanged(pub Vec<Alert>);

/// Minutes of metrics that ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MinuteSnapshots(pub Vec<MinuteSnapshot>);
