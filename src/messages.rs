//! The messages of the data plane, and the queries several parts send to the flows, metrics,
//! alerts and store actors. Imports no actor.
//!
//! Capture → flows and metrics: `PacketBatchMsg`. Flows → the detectors that read packets:
//! `MarkedBatchMsg` (the same batch, marked by the flow table). Flows → sinks:
//! `FlowRecordsMsg`; flows → metrics: `FlowTableStatus`. Detectors → alerts: `FindingsMsg`.
//! Alerts → store: `AlertsChanged`; metrics → store: `MinuteSnapshots`; flows → store:
//! `FlowRecordsMsg`. Queries (from the CLI and the HTTP workers) return values. Server: HTTP
//! → engine (`StartUpload`, `StopReplay`, `GetEngineStatus`, `Shutdown`), alerts → hub
//! (`AlertsChanged`), HTTP → hub (`Subscribe`).
//!
//! Control messages live beside the actor that handles them: `http::hub::PipelineChanged`
//! (engine → hub) and `export::FlushExport`. The HTTP workers read the current
//! `pipeline::PipelineAddrs` from a watch channel the engine publishes to.

use std::sync::Arc;

use actix::Message;

use crate::alert::{Alert, AlertQuery, LatencyStats};
use crate::detect::{DetectorStats, Finding, Rule};
use crate::engine::EngineStatus;
use crate::flow::{FlowMark, FlowRecord, FlowTableStats};
use crate::http::hub::HubStatus;
use crate::http::route::Stream;
use crate::metrics::{MinuteSnapshot, PacketView, StatsSnapshot};
use crate::packet::PacketBatch;
use crate::store::FlowQuery;
use crate::store::StoreStatus;

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

/// Active flows matching the query, most recent first.
#[derive(Message)]
#[rtype(result = "Vec<FlowRecord>")]
pub struct GetActiveFlows(pub FlowQuery);

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

/// Detector → alerts: observations to merge into alerts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FindingsMsg(pub Vec<Finding>);

/// End of input: a detector reports what is pending (to the alerts actor, before replying)
/// and replies with its counters.
#[derive(Message)]
#[rtype(result = "(Rule, DetectorStats)")]
pub struct FlushDetectors;

/// Alerts newest first matching the query, or every alert oldest first with `None`.
#[derive(Message)]
#[rtype(result = "Vec<Alert>")]
pub struct GetAlerts(pub Option<AlertQuery>);

/// Store → alerts, at a pipeline's start: ids the store knows as acknowledged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KnownAcknowledged(pub Vec<u64>);

/// Acknowledge one alert by id; replies with it, or `None` if unknown.
#[derive(Message)]
#[rtype(result = "Option<Alert>")]
pub struct AcknowledgeAlert {
    pub id: u64,
}

/// The published form: acknowledge by first timestamp and source address.
#[derive(Message)]
#[rtype(result = "Vec<Alert>")]
pub struct AcknowledgeMatching {
    pub timestamp: f64,
    pub source_ip: String,
}

/// The alerts actor's counters.
#[derive(Message)]
#[rtype(result = "AlertStats")]
pub struct GetAlertStats;

/// Counters of the alerts actor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlertStats {
    pub alerts: usize,
    pub opened: u64,
    pub updated: u64,
    pub latency: LatencyStats,
}

/// Alerts that were opened or updated, as they are now.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct AlertsChanged(pub Vec<Alert>);

/// Minutes of metrics that ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MinuteSnapshots(pub Vec<MinuteSnapshot>);

/// End of input: close the current minute and send it on; replies when sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FinishMinute;

/// Store → itself: write the next slice of what is pending.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteMore;

/// Write and sync everything buffered now; replies with the store's status.
#[derive(Message)]
#[rtype(result = "StoreStatus")]
pub struct FlushStore;

/// The store's status and database sizes.
#[derive(Message)]
#[rtype(result = "StoreStatus")]
pub struct GetStoreStatus;

/// The store could not answer (its database is unavailable); the reason.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage unavailable: {0}")]
pub struct StoreUnavailable(pub String);

/// Stored alerts matching the query, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Alert>, StoreUnavailable>")]
pub struct QueryAlerts(pub AlertQuery);

/// Stored flows matching the query, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<FlowRecord>, StoreUnavailable>")]
pub struct QueryFlows(pub FlowQuery);

/// Acknowledge a stored alert by id (persisted at once).
#[derive(Message)]
#[rtype(result = "Result<Option<Alert>, StoreUnavailable>")]
pub struct StoreAcknowledge {
    pub id: u64,
}

/// Acknowledge stored alerts by the published timestamp + source address form.
#[derive(Message)]
#[rtype(result = "Result<Vec<Alert>, StoreUnavailable>")]
pub struct StoreAcknowledgeMatching {
    pub timestamp: f64,
    pub source_ip: String,
}

/// Capture thread → engine: the thread of `stage` ended; here is its source and report.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CaptureEnded {
    pub stage: u64,
    pub source: Box<dyn crate::capture::PacketSource>,
    pub report: crate::capture::CaptureReport,
}

/// Server → engine: which sources run, for `/debug`.
#[derive(Message)]
#[rtype(result = "EngineStatus")]
pub struct GetEngineStatus;

/// Server → engine: replay an uploaded capture (already checked to be one) at `speed`× its
/// pace (0 = as fast as possible). The file is deleted when the replay is over.
#[derive(Message)]
#[rtype(result = "Result<String, UploadRejected>")]
pub struct StartUpload {
    pub file: tempfile::TempPath,
    pub name: String,
    pub speed: f64,
}

/// Why an upload was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum UploadRejected {
    #[error("a replay is already running ({0}); stop it first with POST /pcap/replay/stop")]
    Busy(String),
    #[error("{0}")]
    NotACapture(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Server → engine: stop the replay (an upload's, else a `replay` file's); false if none ran.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopReplay;

/// Stop capture and drain every pipeline into the store; replies when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Server → hub: a WebSocket client wants `stream`; frames go to `tx`. Replies false when
/// the client cap is reached.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Subscribe {
    pub stream: Stream,
    pub tx: std::sync::mpsc::SyncSender<tungstenite::Message>,
    /// Set by the client's writer thread when it ends.
    pub closed: Arc<std::sync::atomic::AtomicBool>,
}

/// Close every WebSocket (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// The hub's counters.
#[derive(Message)]
#[rtype(result = "HubStatus")]
pub struct GetHubStatus;
