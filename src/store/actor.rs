//! The store actor: buffers records, writes them once per flush interval, runs retention,
//! answers queries. It runs on its own arbiter because sled calls block on the disk.
//!
//! Storage trouble (disk full, read-only medium, a database that will not open) never stops
//! the pipeline: records stay buffered (up to `max_pending`, then the oldest are dropped and
//! counted), errors are counted and logged at most once a minute, the database is reopened
//! every few seconds, and writing resumes when it works again. Rewriting a buffered record
//! is harmless because keys are derived from the record (see `Store::insert_flows`). The
//! buffer, the reopen schedule and the error-report limit are plain values in `buffer`,
//! tested there; this actor is the shell that applies them to the database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, MessageResult};

pub use super::StoreStatus;
use super::buffer::{Pending, ReportLimit, Retry};
use super::rollup::{History, HistoryQuery};
use super::{Store, StoreConfig, StoreError};
use crate::credit::Backlog;
use crate::messages::{
    AlertsChanged, DeviceMinutes, FlowRecordsMsg, MinuteSnapshots, StoreDevices,
};
use crate::model::alert::{Alert, AlertQuery};
use crate::model::flow::{FlowQuery, FlowRecord};

/// Store → itself: write the next slice of what is pending.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct WriteMore;

/// Write and sync everything buffered now; replies with the store's status.
#[derive(actix::Message)]
#[rtype(result = "StoreStatus")]
pub struct FlushStore;

/// The store's status and database sizes.
#[derive(actix::Message)]
#[rtype(result = "StoreStatus")]
pub struct GetStoreStatus;

/// The store could not answer (its database is unavailable); the reason.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage unavailable: {0}")]
pub struct StoreUnavailable(pub String);

/// Stored alerts matching the query, newest first.
#[derive(actix::Message)]
#[rtype(result = "Result<Vec<Alert>, StoreUnavailable>")]
pub struct QueryAlerts(pub AlertQuery);

/// Stored flows matching the query, newest first.
#[derive(actix::Message)]
#[rtype(result = "Result<Vec<FlowRecord>, StoreUnavailable>")]
pub struct QueryFlows(pub FlowQuery);

/// Traffic history from the rollups.
#[derive(actix::Message)]
#[rtype(result = "Result<History, StoreUnavailable>")]
pub struct QueryHistory(pub HistoryQuery);

/// Acknowledge a stored alert by id (persisted at once).
#[derive(actix::Message)]
#[rtype(result = "Result<Option<Alert>, StoreUnavailable>")]
pub struct StoreAcknowledge {
    pub id: u64,
}

/// Acknowledge stored alerts by the published timestamp + source address form.
#[derive(actix::Message)]
#[rtype(result = "Result<Vec<Alert>, StoreUnavailable>")]
pub struct StoreAcknowledgeMatching {
    pub timestamp: f64,
    pub source_ip: String,
}

/// How often a database that failed is opened again.
const REOPEN_EVERY: Duration = Duration::from_secs(5);
/// Storage errors are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Flow records written per slice of a periodic write (a few milliseconds of sled work).
const WRITE_SLICE: usize = 2000;

/// Live records that may wait in the mailbox: half as many as the pending buffer holds
/// (about 12 MB by default), which a store that keeps up never comes near; it fills only
/// while the thread is held by a long write.
fn intake_records(max_pending: usize) -> usize {
    max_pending / 2
}

/// Hosts of waiting minute snapshots past which they are written ahead of the periodic write.
const SNAPSHOT_HOSTS_AHEAD: usize = 65_536;

pub struct StoreActor {
    config: StoreConfig,
    path: PathBuf,
    store: Option<Store>,
    reopen: Retry,
    pending: Pending,
    status: StoreStatus,
    reports: ReportLimit,
    log: Box<dyn FnMut(String) + Send>,
    /// A periodic write is under way in slices.
    writing: bool,
    /// Devices not yet written (the latest record of each), evictions and the inventory's
    /// state; bounded by the inventory's own cap, since records of one MAC replace each
    /// other.
    devices: std::collections::HashMap<crate::packet::MacAddr, crate::model::device::Device>,
    devices_removed: Vec<crate::packet::MacAddr>,
    devices_state: Option<crate::model::device::InventoryState>,
    /// Live records on their way here: senders drop what it has no room for while this
    /// thread is busy (a sync, a burst of rollups), as the pending buffer drops its oldest.
    intake: Backlog,
}

impl StoreActor {
    /// A store actor for `path`; the database is opened when the actor starts, and
    /// reopened every few seconds while that fails.
    pub fn new(path: PathBuf, config: StoreConfig) -> Self {
        StoreActor {
            pending: Pending::new(config.max_pending),
            intake: Backlog::new(intake_records(config.max_pending)),
            config,
            path,
            store: None,
            reopen: Retry::new(REOPEN_EVERY),
            status: StoreStatus::default(),
            reports: ReportLimit::new(LOG_EVERY),
            log: Box::new(|m| eprintln!("tapir: {m}")),
            writing: false,
            devices: Default::default(),
            devices_removed: Vec::new(),
            devices_state: None,
        }
    }

    /// The backlog that bounds the live records queued to this actor, for its senders.
    pub fn intake(&self) -> Backlog {
        self.intake.clone()
    }

    /// A store actor around a database already open (so that a bad path fails up front).
    pub fn from_store(store: Store, config: StoreConfig) -> Self {
        let mut actor = StoreActor::new(store.path().to_path_buf(), config);
        actor.store = Some(store);
        actor.status.available = true;
        actor
    }

    /// Replaces where error reports go (tests collect them).
    pub fn with_log(mut self, log: impl FnMut(String) + Send + 'static) -> Self {
        self.log = Box::new(log);
        self
    }

    fn ensure_open(&mut self) -> Option<&mut Store> {
        if self.store.is_none() && self.reopen.take(Instant::now()) {
            if let Some(parent) = self.path.parent()
                && !parent.as_os_str().is_empty()
            {
                let _ = std::fs::create_dir_all(parent);
            }
            match Store::open(&self.path, &self.config) {
                Ok(store) => {
                    if self.status.errors > 0 {
                        (self.log)(format!("storage at {} works again", self.path.display()));
                    }
                    self.store = Some(store);
                }
                Err(e) => self.record_error(&e),
            }
        }
        self.store.as_mut()
    }

    /// Counts an error and logs it, at most once a minute (with how many were not logged).
    fn record_error(&mut self, e: &StoreError) {
        self.status.errors += 1;
        self.status.available = false;
        self.status.last_error = Some(e.to_string());
        if let Some(more) = self.reports.note(Instant::now()) {
            let suffix = if more > 0 {
                format!(" ({more} more storage errors since the last report)")
            } else {
                String::new()
            };
            (self.log)(format!(
                "storage error, records are kept in memory and written when it works again: {e}{suffix}"
            ));
        }
    }

    /// Writes the pending devices (not synced: the next periodic write syncs them).
    fn write_devices(&mut self) -> Result<(), StoreError> {
        let Some(state) = self.devices_state.clone() else {
            return Ok(());
        };
        if self.ensure_open().is_none() {
            return Ok(());
        }
        let store = self.store.as_mut().expect("opened above");
        let devices: Vec<_> = self.devices.values().cloned().collect();
        store.save_devices(&devices, &self.devices_removed, &state)?;
        self.devices.clear();
        self.devices_removed.clear();
        self.devices_state = None;
        Ok(())
    }

    /// Writes everything pending and syncs it.
    fn write_pending(&mut self) -> Result<(), StoreError> {
        while self.write_some(usize::MAX, true)? {}
        Ok(())
    }

    /// Writes up to `max_flows` pending flow records (and, with `finish`, once no flow is
    /// left, the pending alerts and snapshots, and syncs). Returns whether flows remain.
    /// Writing in slices lets queries in between: one sync of a busy second's flows takes
    /// long enough to hold up an HTTP request.
    fn write_some(&mut self, max_flows: usize, finish: bool) -> Result<bool, StoreError> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        if self.ensure_open().is_none() {
            return Err(StoreError::Unavailable(
                self.status.last_error.clone().unwrap_or_default(),
            ));
        }
        let store = self.store.as_mut().expect("opened above");
        if let Err(full) = store.check_headroom() {
            // Room inside the database may still be made: retention deletes the oldest.
            let _ = store.enforce_retention();
            return Err(full);
        }
        let flows = self.pending.oldest_flows(max_flows);
        let n = flows.len();
        store.insert_flows(flows)?;
        // Written; a later failure retries only what is left (flow keys make a retry
        // harmless anyway).
        self.pending.flows_written(n);
        self.status.flows_written += n as u64;
        if self.pending.has_flows() {
            return Ok(true);
        }
        if !finish {
            return Ok(false);
        }
        let alerts = self.pending.alerts();
        store.upsert_alerts(&alerts)?;
        let snapshots = self.pending.snapshots();
        let written = snapshots.len() as u64;
        store.insert_snapshots(snapshots)?;
        store.flush()?;
        self.status.flushes += 1;
        self.status.alerts_written += alerts.len() as u64;
        self.status.snapshots_written += written;
        self.pending.rest_written();
        self.status.available = true;
        Ok(false)
    }

    /// Writes the pending alerts (not synced: reads see them at once, the next periodic
    /// write syncs them).
    fn write_pending_alerts(&mut self) {
        if self.pending.alert_count() == 0 || self.ensure_open().is_none() {
            return;
        }
        let store = self.store.as_mut().expect("opened above");
        let alerts = self.pending.alerts();
        match store.upsert_alerts(&alerts) {
            Ok(()) => {
                self.status.alerts_written += alerts.len() as u64;
                self.pending.alerts_written();
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Writes the waiting minute snapshots (not synced) once they carry more than
    /// `SNAPSHOT_HOSTS_AHEAD` hosts. Live, a minute closes once a minute; a replay at full
    /// speed closes a dozen a second, each with up to 65,536 hosts (3.5 MB), and a flood
    /// held 60 MB of them between two periodic writes.
    fn write_snapshots_ahead(&mut self) {
        if self.writing
            || !self.status.available
            || self.pending.snapshot_hosts() <= SNAPSHOT_HOSTS_AHEAD
            || self.ensure_open().is_none()
        {
            return;
        }
        let store = self.store.as_mut().expect("opened above");
        let snapshots = self.pending.snapshots();
        let written = snapshots.len() as u64;
        match store.insert_snapshots(snapshots) {
            Ok(()) => {
                self.status.snapshots_written += written;
                self.pending.snapshots_written();
            }
            Err(e) => self.fail(&e),
        }
    }

    /// One slice of the periodic write; the next slice is queued behind whatever messages
    /// (queries) are waiting.
    fn write_slice(&mut self, ctx: &mut Context<Self>) {
        match self.write_some(WRITE_SLICE, true) {
            Ok(true) => {
                self.writing = true;
                ctx.address().do_send(WriteMore);
            }
            Ok(false) => self.writing = false,
            Err(e) => {
                self.writing = false;
                self.fail(&e);
            }
        }
    }

    /// Writes one slice as soon as a slice's worth of flows waits, without syncing (the
    /// periodic write syncs): a fast input is written as it comes instead of piling up
    /// for a whole flush interval, which bounds the records held and spreads the work.
    /// Returns whether a slice was written.
    fn write_ahead(&mut self) -> bool {
        // A database that is away is tried again by the periodic write, not per message.
        if self.pending.flow_count() < WRITE_SLICE || !self.status.available {
            return false;
        }
        match self.write_some(WRITE_SLICE, false) {
            Ok(_) => true,
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.writing {
            self.write_slice(ctx);
        }
    }

    /// A failed write: count it and reopen the database later (sled refuses further work
    /// after an I/O error).
    fn fail(&mut self, e: &StoreError) {
        self.record_error(e);
        if !matches!(
            e,
            StoreError::Unavailable(_) | StoreError::Corrupt { .. } | StoreError::DiskFull { .. }
        ) {
            self.store = None;
            self.reopen.failed(Instant::now());
        }
    }

    fn retention(&mut self) {
        let result = match self.store.as_mut() {
            Some(store) => store.enforce_retention(),
            None => return,
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    fn status(&self) -> StoreStatus {
        StoreStatus {
            pending: self.pending.len(),
            dropped: self.pending.dropped() + self.intake.dropped(),
            database: self.store.as_ref().map(Store::stats),
            ..self.status.clone()
        }
    }

    /// Runs a query on the open database.
    fn query<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreUnavailable> {
        let result = match self.ensure_open() {
            Some(store) => f(store),
            None => {
                return Err(StoreUnavailable(
                    self.status.last_error.clone().unwrap_or_default(),
                ));
            }
        };
        result.map_err(|e| {
            let message = e.to_string();
            self.fail(&e);
            StoreUnavailable(message)
        })
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.ensure_open();
        ctx.run_interval(
            Duration::from_millis(self.config.flush_interval_ms),
            |actor, ctx| actor.tick(ctx),
        );
        ctx.run_interval(
            Duration::from_secs(self.config.retention_interval_secs),
            |actor, _| actor.retention(),
        );
    }

    fn stopping(&mut self, _: &mut Self::Context) -> actix::Running {
        if let Err(e) = self.write_pending() {
            self.fail(&e);
        }
        actix::Running::Stop
    }
}

impl Handler<WriteMore> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: WriteMore, ctx: &mut Self::Context) {
        self.write_slice(ctx);
    }
}

impl Handler<FlowRecordsMsg> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: FlowRecordsMsg, _: &mut Self::Context) {
        self.pending.push_flows(msg.0.iter().cloned());
        if msg.1.is_paced() {
            // Paced (a file is read): write all the whole slices waiting while the batch's
            // credit is held, so that reading waits for the disk instead of records piling
            // up in memory (the pending buffer grew to 100,000 records, 25 MB, when one
            // slice was written per message).
            while self.write_ahead() {}
        } else {
            self.write_ahead();
        }
    }
}

impl Handler<AlertsChanged> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: AlertsChanged, _: &mut Self::Context) {
        self.pending.push_alerts(msg.0);
    }
}

impl Handler<StoreDevices> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: StoreDevices, _: &mut Self::Context) {
        for mac in &msg.removed {
            self.devices.remove(mac);
        }
        // Evictions are few (a sixteenth of the cap at a time); past the cap the oldest
        // are forgotten and age out of the database with nothing worse than a stale record.
        self.devices_removed.extend(msg.removed);
        let cap = self.devices_removed.len().saturating_sub(1 << 16);
        self.devices_removed.drain(..cap);
        for d in msg.devices {
            self.devices.insert(d.mac, d);
        }
        self.devices_state = Some(msg.state);
        if let Err(e) = self.write_devices() {
            self.record_error(&e);
        }
    }
}

impl Handler<DeviceMinutes> for StoreActor {
    type Result = ();

    /// Into the history at once (the rollups write with the next periodic write); lost
    /// while the database is unavailable, as the devices keep their own totals.
    fn handle(&mut self, msg: DeviceMinutes, _: &mut Self::Context) {
        if self.ensure_open().is_none() {
            return;
        }
        let store = self.store.as_mut().expect("opened above");
        if let Err(e) = store.add_device_minutes(&msg.0) {
            self.record_error(&e);
        }
    }
}

impl Handler<MinuteSnapshots> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: MinuteSnapshots, _: &mut Self::Context) {
        self.pending.push_snapshots(msg.0);
        self.write_snapshots_ahead();
    }
}

impl Handler<FlushStore> for StoreActor {
    type Result = MessageResult<FlushStore>;

    fn handle(&mut self, _: FlushStore, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.write_pending() {
            self.fail(&e);
        }
        self.writing = false;
        MessageResult(self.status())
    }
}

impl Handler<GetStoreStatus> for StoreActor {
    type Result = MessageResult<GetStoreStatus>;

    fn handle(&mut self, _: GetStoreStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<QueryAlerts> for StoreActor {
    type Result = MessageResult<QueryAlerts>;

    fn handle(&mut self, msg: QueryAlerts, _: &mut Self::Context) -> Self::Result {
        // Pending alerts are newer than what is stored: write them first so the answer
        // includes them (only them: the flows can wait for their slice).
        self.write_pending_alerts();
        MessageResult(self.query(|s| s.alerts(&msg.0)))
    }
}

impl Handler<QueryFlows> for StoreActor {
    type Result = MessageResult<QueryFlows>;

    fn handle(&mut self, msg: QueryFlows, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.query(|s| s.flows(&msg.0)))
    }
}

impl Handler<QueryHistory> for StoreActor {
    type Result = MessageResult<QueryHistory>;

    fn handle(&mut self, msg: QueryHistory, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.query(|s| s.history(&msg.0)))
    }
}

impl Handler<StoreAcknowledge> for StoreActor {
    type Result = MessageResult<StoreAcknowledge>;

    fn handle(&mut self, msg: StoreAcknowledge, _: &mut Self::Context) -> Self::Result {
        self.write_pending_alerts();
        let result = self.query(|s| {
            let alert = s.acknowledge(msg.id)?;
            s.flush()?;
            Ok(alert)
        });
        MessageResult(result)
    }
}

impl Handler<StoreAcknowledgeMatching> for StoreActor {
    type Result = MessageResult<StoreAcknowledgeMatching>;

    fn handle(&mut self, msg: StoreAcknowledgeMatching, _: &mut Self::Context) -> Self::Result {
        self.write_pending_alerts();
        let result = self.query(|s| {
            let alerts = s.acknowledge_matching(msg.timestamp, &msg.source_ip)?;
            s.flush()?;
            Ok(alerts)
        });
        MessageResult(result)
    }
}
