//! Storage on the device: one sled database holding alerts, flow records and per-minute metric
//! snapshots. Every sled call of the program lives in this module.
//!
//! Trees and keys (big-endian, so that a time range is one range scan):
//! - `alerts`: alert id (time-ordered) → alert JSON; acknowledgement is part of the value.
//! - flows, in time partitions ([`flows`]), each a pair of trees: `flows.<n>` (end time ns ‖
//!   record hash → compact binary record, [`codec`]) and `flows_by_ip.<n>` (address, 16
//!   bytes IPv4-mapped, ‖ flow key → nothing); both ends of a flow are indexed, so one
//!   prefix scan finds a host's flows whichever side it was on. `flow_partitions` lists them.
//! - `snapshots`: minute start → snapshot JSON.
//! - `devices`: MAC (6 bytes) → device JSON; `devices_meta`: `state` → the inventory's
//!   learning state JSON. Bounded by `[devices] max_devices`.
//!
//! The store never syncs per record: the actor collects records and writes them in one
//! batch per flush interval, then calls [`Store::flush`]. Retention deletes by age (per kind)
//! and, when the records outgrow their share of the size cap, the oldest flows first (whole
//! partitions), then snapshots, then alerts.

pub mod actor;
pub mod block;
pub mod blocks;
pub mod buffer;
pub mod codec;
pub mod flows;
pub mod load;
pub mod open_bucket;
pub mod places;
pub mod rollup;
pub mod space;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::alert::{Alert, AlertQuery};
use crate::model::device::{Device, DeviceMinute, InventoryState};
use crate::model::flow::{FlowQuery, FlowRecord};
use crate::model::traffic::MinuteSnapshot;
use crate::packet::MacAddr;
use blocks::FlowBlocks;
use codec::{DecodeError, time_from_key, time_key};
use flows::FlowPartitions;
use rollup::{History, HistoryQuery, Rollups};

/// Storage settings (the `[store]` section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database directory. Unset: `analyze` stores nothing, and the server uses the
    /// state directory (`$STATE_DIRECTORY`, as systemd sets it, else `./tapir-data`).
    pub db_path: Option<PathBuf>,
    /// Buffered records are written and synced this often.
    pub flush_interval_ms: u64,
    /// sled's page cache, in MiB.
    pub cache_mb: u64,
    /// The database's size on disk is kept under this, in MiB.
    pub max_disk_mb: u64,
    /// Records older than this (days, counted back from the newest record) are deleted.
    pub flows_retention_days: u64,
    pub snapshots_retention_days: u64,
    pub alerts_retention_days: u64,
    /// History rollups kept per tier: minutes, hours and days.
    pub minutes_retention_days: u64,
    pub hours_retention_days: u64,
    pub days_retention_days: u64,
    /// How often retention runs.
    pub retention_interval_secs: u64,
    /// Records buffered while the disk is unavailable; past this the oldest are dropped.
    pub max_pending: usize,
    /// Room, in MiB, the store leaves free on its filesystem for the system and logs: it
    /// keeps its records within what that leaves (and under `max_disk_mb`), and stops
    /// writing while less than half of it is free. 0: only `max_disk_mb` counts.
    pub min_free_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            db_path: None,
            flush_interval_ms: 1000,
            cache_mb: 4,
            // An 8 GB card keeps most of its room for the system and logs.
            max_disk_mb: 512,
            flows_retention_days: 7,
            snapshots_retention_days: 90,
            alerts_retention_days: 365,
            minutes_retention_days: 2,
            hours_retention_days: 90,
            days_retention_days: 3 * 365,
            retention_interval_secs: 10,
            max_pending: 100_000,
            min_free_mb: 64,
        }
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.flush_interval_ms == 0 {
            return Err("store.flush_interval_ms must be at least 1".into());
        }
        if self.cache_mb == 0 {
            return Err("store.cache_mb must be at least 1".into());
        }
        if self.max_disk_mb < 4 {
            return Err("store.max_disk_mb must be at least 4".into());
        }
        if self.retention_interval_secs == 0 {
            return Err("store.retention_interval_secs must be at least 1".into());
        }
        Ok(())
    }

    /// Where the server keeps its database when none is configured.
    pub fn default_db_path() -> PathBuf {
        std::env::var_os("STATE_DIRECTORY")
            .map(|d| PathBuf::from(d).join("db"))
            .unwrap_or_else(|| PathBuf::from("tapir-data"))
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the database at {path}: {source} (check that the directory is writable and no other tapir uses it)"
    )]
    Open { path: PathBuf, source: sled::Error },
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    #[error("stored record {key} is unreadable: {source}")]
    Corrupt { key: String, source: DecodeError },
    #[error(
        "cannot open the database at {path}: its disk is full ({free} bytes free), and opening a database, even to read it, needs 4 MiB; free some space on that disk (tapir keeps an 8 MiB reserve file, `tapir-reserve`, in the database directory for this, and makes it again once there is room)"
    )]
    NoSpace { path: PathBuf, free: u64 },
    #[error(
        "the disk holding {path} is nearly full: {free} bytes free, less than half of the {min_free} tapir leaves free (`[store] min_free_mb`); new records wait in memory until there is room again"
    )]
    DiskFull {
        path: PathBuf,
        free: u64,
        min_free: u64,
    },
    /// The database is closed after an earlier error, which the message repeats.
    #[error("{0}")]
    Unavailable(String),
    #[error("export failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Record counts and logical bytes per tree (kept in memory, computed at open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TreeCounts {
    pub records: u64,
    pub bytes: u64,
}

/// What `tapir db stats` and `/debug` show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreStats {
    pub path: PathBuf,
    pub size_on_disk: u64,
    pub max_disk_bytes: u64,
    /// Free bytes on the database's filesystem, and what the store leaves free there.
    pub disk_free_bytes: Option<u64>,
    pub min_free_bytes: u64,
    pub alerts: TreeCounts,
    pub flows: TreeCounts,
    pub flow_index: TreeCounts,
    /// Partitions of flows stored one per record by earlier releases (read, aged out).
    pub flow_partitions: usize,
    /// Compressed blocks of flows, and how many of them reads had to skip as unreadable.
    pub flow_blocks: usize,
    /// History rollup buckets and their bytes, per tier.
    pub rollups: RollupCounts,
    pub unreadable_blocks: u64,
    pub snapshots: TreeCounts,
    /// Logical bytes the records may fill (a share of the cap, see `Store::make_room`).
    pub logical_budget: u64,
    /// Unix seconds of the oldest and newest stored flow (by end time).
    pub oldest_flow: Option<f64>,
    pub newest_flow: Option<f64>,
    /// Deleted by retention since start: by age, and to stay under the size cap.
    pub deleted_by_age: u64,
    pub deleted_for_space: u64,
}

/// Buckets and bytes of each rollup tier.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RollupCounts {
    pub minutes: TreeCounts,
    pub hours: TreeCounts,
    pub days: TreeCounts,
}

/// The store actor's counters, for `/debug` and `analyze`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreStatus {
    /// The database is open and the last write worked.
    pub available: bool,
    pub flushes: u64,
    pub flows_written: u64,
    pub alerts_written: u64,
    pub snapshots_written: u64,
    /// Records waiting for the next write.
    pub pending: usize,
    /// Records dropped because the buffer was full while the disk was unavailable.
    pub dropped: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Sizes and counts of the database (absent while it is unavailable).
    pub database: Option<StoreStats>,
}

/// What one retention pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub by_age: u64,
    pub for_space: u64,
}

/// The database: a plain struct, used by the store actor and the `db` command.
pub struct Store {
    path: PathBuf,
    config: StoreConfig,
    db: sled::Db,
    alerts: sled::Tree,
    flows: FlowBlocks,
    /// Flows written one record per key by releases before blocks: read and aged out, never
    /// written.
    legacy: FlowPartitions,
    rollups: Rollups,
    snapshots: sled::Tree,
    devices: sled::Tree,
    devices_meta: sled::Tree,
    /// Alerts and snapshots (flows count themselves).
    counts: [TreeCounts; 2],
    deleted_by_age: u64,
    deleted_for_space: u64,
    /// Share of the usual live data retention keeps now (see `adjust_live_share`), and the
    /// size of sled's file when it was last set.
    live_share: f64,
    file_seen: u64,
}

/// Live (logical) bytes per byte of file that sled sustains under churn, measured with
/// `tapir db bench`: with flows in blocks (a few large values per second) sled's file holds
/// about 1.4 bytes per byte of data at a steady rate and up to 4 while its garbage
/// collection lags behind an unpaced burst that retention keeps trimming (see the README).
const LIVE_SHARE: f64 = 0.25;
/// Flow partitions per logical budget: retention frees about a quarter of it at a time.
const PARTITIONS_PER_BUDGET: u64 = 4;

/// Attempts, 50 ms apart, to take the lock of a database another handle is releasing.
const LOCK_RETRIES: usize = 20;

/// Indexes into `Store::counts`.
const ALERTS: usize = 0;
const SNAPSHOTS: usize = 1;

impl Store {
    /// Opens (or creates) the database at `path`. A database left by a crash is recovered
    /// by sled to its last durable state.
    pub fn open(path: &Path, config: &StoreConfig) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let sled_config = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_mb.saturating_mul(1024 * 1024))
            // sled's flusher thread is also its garbage collector (it rewrites pages out of
            // mostly-empty segments so they can be reused); without it the file only grows.
            // The store actor syncs its own batches on the same interval.
            .flush_every_ms(Some(config.flush_interval_ms))
            .mode(sled::Mode::LowSpace);
        // sled writes even to open a database (it pads its last segment, zeroes free ones
        // and writes a snapshot), and an open that runs out of room half-way leaves the
        // database unreadable for good (sled 0.34; see tests/store.rs). So an existing
        // database is opened only with room for that, taking the reserve if need be.
        let no_space = |free| StoreError::NoSpace {
            path: path.to_path_buf(),
            free,
        };
        if path.join("db").exists() {
            let room = || space::free_bytes(path).unwrap_or(u64::MAX);
            if room() < space::OPEN_NEEDS_BYTES {
                space::release_reserve(path);
                if room() < space::OPEN_NEEDS_BYTES {
                    return Err(no_space(room()));
                }
            }
        }
        // A database closed a moment ago may still be locked while sled's background
        // threads wind down: wait for them briefly rather than fail.
        let mut opened = sled_config.open();
        for _ in 0..LOCK_RETRIES {
            match &opened {
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    opened = sled_config.open();
                }
                _ => break,
            }
        }
        let db = opened.map_err(|e| match &e {
            sled::Error::Io(io) if space::is_no_space(io) => {
                no_space(space::free_bytes(path).unwrap_or(0))
            }
            _ => open_err(e),
        })?;
        space::ensure_reserve(path, min_free_bytes(config));
        let tree = |name: &str| db.open_tree(name).map_err(open_err);
        let (alerts, snapshots) = (tree("alerts")?, tree("snapshots")?);
        let (devices, devices_meta) = (tree("devices")?, tree("devices_meta")?);
        // Partitions sized for the room there is now: on a small or crowded disk, retention
        // must be able to drop a partition long before the disk fills.
        let cap = effective_cap(config, path, db.size_on_disk().unwrap_or(0));
        let budget = (cap as f64 * LIVE_SHARE) as u64;
        let legacy = FlowPartitions::open(&db, budget / PARTITIONS_PER_BUDGET)?;
        let flows = FlowBlocks::open(&db, 0)?;
        let rollups = Rollups::open(
            &db,
            [
                days(config.minutes_retention_days, 86_400),
                days(config.hours_retention_days, 86_400),
                days(config.days_retention_days, 86_400),
            ],
        )?;
        let mut counts = [TreeCounts::default(); 2];
        for (i, t) in [&alerts, &snapshots].into_iter().enumerate() {
            for entry in t.iter() {
                let (k, v) = entry?;
                counts[i].records += 1;
                counts[i].bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok(Store {
            path: path.to_path_buf(),
            config: config.clone(),
            alerts,
            flows,
            legacy,
            rollups,
            snapshots,
            devices,
            devices_meta,
            counts,
            deleted_by_age: 0,
            deleted_for_space: 0,
            live_share: 1.0,
            file_seen: db.size_on_disk().unwrap_or(0),
            db,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds flow records as blocks, leaving out any already stored (not yet durable:
    /// see [`Store::flush`]).
    pub fn insert_flows(&mut self, records: &[FlowRecord]) -> Result<(), StoreError> {
        if self.legacy.partition_count() == 0 {
            let stored = self.flows.insert(records)?;
            // Counted in the history once, as stored (written with the next flush).
            return self.rollups.add_flows(stored);
        }
        let mut fresh = Vec::with_capacity(records.len());
        for r in records {
            if !self.legacy.contains(r)? {
                fresh.push(r.clone());
            }
        }
        let stored = self.flows.insert(&fresh)?;
        self.rollups.add_flows(stored)
    }

    /// The Community ID seed the pipeline uses (`[flows] community_id_seed`): blocks then
    /// derive IDs instead of storing them.
    pub fn set_community_seed(&mut self, seed: u16) {
        self.flows.set_seed(seed);
    }

    /// Places hosts by country for the history rollups by country (GeoIP); without it no
    /// country is rolled up.
    pub fn set_locate(&mut self, locate: places::Locate) {
        self.rollups.set_locate(locate);
    }

    /// Adds or updates alerts by id. An acknowledgement already stored is kept, so a later
    /// update of the same episode (or a replay of the same capture) never un-acknowledges it.
    pub fn upsert_alerts(&mut self, alerts: &[Alert]) -> Result<(), StoreError> {
        for alert in alerts {
            let key = alert.id.to_be_bytes();
            let mut alert = alert.clone();
            let old = self.alerts.get(key)?;
            if let Some(old) = &old
                && let Ok(stored) = serde_json::from_slice::<Alert>(old)
            {
                alert.acknowledged |= stored.acknowledged;
            }
            let value = serde_json::to_vec(&alert).expect("alerts serialize");
            let c = &mut self.counts[ALERTS];
            match &old {
                Some(old) => c.bytes = c.bytes.saturating_sub(old.len() as u64),
                None => {
                    c.records += 1;
                    c.bytes += key.len() as u64;
                }
            }
            c.bytes += value.len() as u64;
            self.alerts.insert(key, value)?;
        }
        Ok(())
    }

    /// Adds or replaces minute snapshots.
    pub fn insert_snapshots(&mut self, snapshots: &[MinuteSnapshot]) -> Result<(), StoreError> {
        for s in snapshots {
            let key = time_key(s.timestamp);
            let value = serde_json::to_vec(s).expect("snapshots serialize");
            let c = &mut self.counts[SNAPSHOTS];
            let old = self.snapshots.insert(key, value.as_slice())?;
            match &old {
                Some(old) => c.bytes = c.bytes.saturating_sub(old.len() as u64),
                None => {
                    c.records += 1;
                    c.bytes += key.len() as u64;
                }
            }
            c.bytes += value.len() as u64;
            // The same minute again, unchanged (a capture analysed again), is in the history
            // already; a minute closed again with more (after a restart) adds what it saw.
            if old.is_none_or(|old| *old != *value) {
                self.rollups.add_minute(s)?;
            }
        }
        Ok(())
    }

    /// Writes devices (replacing their records), deletes evicted ones and keeps the
    /// inventory's state. Not synced: the next `flush` is.
    pub fn save_devices(
        &mut self,
        devices: &[Device],
        removed: &[MacAddr],
        state: &InventoryState,
    ) -> Result<(), StoreError> {
        for mac in removed {
            self.devices.remove(mac.0)?;
        }
        for d in devices {
            let value = serde_json::to_vec(d).expect("devices serialize");
            self.devices.insert(d.mac.0, value)?;
        }
        let state = serde_json::to_vec(state).expect("state serializes");
        self.devices_meta.insert("state", state)?;
        Ok(())
    }

    /// Adds devices' minutes to the history rollups (written with the next flush).
    pub fn add_device_minutes(&mut self, minutes: &[DeviceMinute]) -> Result<(), StoreError> {
        self.rollups.add_device_minutes(minutes)
    }

    /// The stored devices and the inventory's state (records that no longer parse are
    /// skipped).
    pub fn load_devices(&self) -> Result<(Vec<Device>, InventoryState), StoreError> {
        let mut devices = Vec::new();
        for entry in self.devices.iter() {
            let (_, value) = entry?;
            if let Ok(d) = serde_json::from_slice::<Device>(&value) {
                devices.push(d);
            }
        }
        let state = self
            .devices_meta
            .get("state")?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        Ok((devices, state))
    }

    /// Makes everything written so far durable; returns the bytes sled wrote.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        // The history's buckets changed since the last flush, once each.
        self.rollups.write()?;
        Ok(self.db.flush()?)
    }

    /// Alerts matching `q`, newest first.
    pub fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        // Ids are milliseconds × 1024 of the first finding (or a little more when many
        // alerts open in one millisecond), so the id range brackets the time range.
        let lo = q.start.map_or(0, |s| {
            ((s * 1000.0).floor().max(0.0) as u64).saturating_mul(1024)
        });
        let hi = q.end.map_or(u64::MAX, |e| {
            ((e * 1000.0).ceil().max(0.0) as u64 + 1)
                .saturating_mul(1024)
                .saturating_add(1 << 20)
        });
        let mut out = Vec::new();
        for entry in self.alerts.range(lo.to_be_bytes()..=hi.to_be_bytes()).rev() {
            if out.len() >= q.limit {
                break;
            }
            let (k, v) = entry?;
            let alert = decode_alert(&k, &v)?;
            if q.unacknowledged_only && alert.acknowledged {
                continue;
            }
            if q.start.is_some_and(|s| alert.timestamp < s)
                || q.end.is_some_and(|e| alert.timestamp > e)
            {
                continue;
            }
            out.push(alert);
        }
        Ok(out)
    }

    /// Acknowledges one alert; `None` if there is no such alert.
    pub fn acknowledge(&mut self, id: u64) -> Result<Option<Alert>, StoreError> {
        let Some(v) = self.alerts.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        let mut alert = decode_alert(&id.to_be_bytes(), &v)?;
        alert.acknowledged = true;
        self.upsert_alerts(std::slice::from_ref(&alert))?;
        Ok(Some(alert))
    }

    /// The published form: acknowledges the alerts whose first timestamp (to the
    /// millisecond) and source address match.
    pub fn acknowledge_matching(
        &mut self,
        timestamp: f64,
        source_ip: &str,
    ) -> Result<Vec<Alert>, StoreError> {
        let window = AlertQuery {
            limit: usize::MAX,
            start: Some(timestamp - 0.001),
            end: Some(timestamp + 0.001),
            ..Default::default()
        };
        let mut acked = Vec::new();
        for mut alert in self.alerts(&window)? {
            if alert.source_ip == source_ip && (alert.timestamp - timestamp).abs() < 0.0005 {
                alert.acknowledged = true;
                self.upsert_alerts(std::slice::from_ref(&alert))?;
                acked.push(alert);
            }
        }
        Ok(acked)
    }

    /// Flows matching `q`, newest (by end time) first.
    pub fn flows(&self, q: &FlowQuery) -> Result<Vec<FlowRecord>, StoreError> {
        let (lo, hi) = q.time_bounds_ns();
        let ip = q.ip.or(q.src_ip);
        let keep = |r: &FlowRecord| q.matches(r);
        let blocks = self.flows.query(lo, hi, ip, q.limit, &keep)?;
        if self.legacy.partition_count() == 0 {
            return Ok(blocks);
        }
        let legacy = self.legacy.query(lo, hi, ip, q.limit, &keep)?;
        // Both newest first: merge, keeping the newest `limit`.
        let mut all = blocks;
        all.extend(legacy);
        all.sort_by_key(|r| std::cmp::Reverse(r.last_seen.0));
        all.truncate(q.limit);
        Ok(all)
    }

    /// Traffic history from the rollups (`GET /history`).
    pub fn history(&self, q: &HistoryQuery) -> Result<History, StoreError> {
        self.rollups.history(q)
    }

    /// Minute snapshots whose minute starts within `[start, end]` (Unix seconds), oldest
    /// first, at most `limit`.
    pub fn snapshots(
        &self,
        start: Option<i64>,
        end: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MinuteSnapshot>, StoreError> {
        let (lo, hi) = (
            time_key(start.unwrap_or(i64::MIN)),
            time_key(end.unwrap_or(i64::MAX)),
        );
        let mut out = Vec::new();
        for entry in self.snapshots.range(lo..=hi).take(limit) {
            let (k, v) = entry?;
            out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("snapshot {}", time_from_key(&k).unwrap_or_default()),
                source: DecodeError::Field(json_field(&e)),
            })?);
        }
        Ok(out)
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn stats(&self) -> StoreStats {
        let (legacy, flow_index) = self.legacy.counts();
        let blocks = self.flows.counts();
        let flows = TreeCounts {
            records: blocks.records + legacy.records,
            bytes: blocks.bytes + legacy.bytes,
        };
        let span = self.flow_span();
        StoreStats {
            path: self.path.clone(),
            size_on_disk: self.db.size_on_disk().unwrap_or(0),
            max_disk_bytes: cap_bytes(&self.config),
            disk_free_bytes: space::free_bytes(&self.path).ok(),
            min_free_bytes: min_free_bytes(&self.config),
            logical_budget: self.budget(),
            alerts: self.counts[ALERTS],
            flows,
            flow_index,
            flow_partitions: self.legacy.partition_count(),
            flow_blocks: self.flows.block_count(),
            rollups: {
                let [m, h, d] = self.rollups.counts();
                let tc = |(records, bytes)| TreeCounts { records, bytes };
                RollupCounts {
                    minutes: tc(m),
                    hours: tc(h),
                    days: tc(d),
                }
            },
            unreadable_blocks: self.flows.unreadable(),
            snapshots: self.counts[SNAPSHOTS],
            oldest_flow: span.map(|(lo, _)| lo as f64 / 1e9),
            newest_flow: span.map(|(_, hi)| hi as f64 / 1e9),
            deleted_by_age: self.deleted_by_age,
            deleted_for_space: self.deleted_for_space,
        }
    }

    /// One retention pass: deletes records past their age (counted back from the newest
    /// record of their kind), then, while the database is over its size cap, the oldest
    /// records: flows first, then snapshots, then alerts.
    pub fn enforce_retention(&mut self) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        const DAY_NS: i64 = 86_400 * 1_000_000_000;
        if let Some((_, newest)) = self.flow_span() {
            let cutoff = newest.saturating_sub(days(self.config.flows_retention_days, DAY_NS));
            report.by_age += self.legacy.drop_before(&self.db, cutoff)?;
            report.by_age += self.flows.drop_before(cutoff)?;
        }
        if let Some((k, _)) = self.snapshots.last()?
            && let Some(newest) = time_from_key(&k)
        {
            let cutoff = newest.saturating_sub(days(self.config.snapshots_retention_days, 86_400));
            report.by_age += self.delete_oldest(SNAPSHOTS, Some(&time_key(cutoff)), u64::MAX)?;
        }
        if let Some((k, _)) = self.alerts.last()?
            && let Some(newest_ms) = k
                .as_ref()
                .try_into()
                .ok()
                .map(|b| u64::from_be_bytes(b) / 1024)
        {
            let keep_ms = days(self.config.alerts_retention_days, 86_400_000) as u64;
            let cutoff = newest_ms.saturating_sub(keep_ms).saturating_mul(1024);
            report.by_age += self.delete_oldest(ALERTS, Some(&cutoff.to_be_bytes()), u64::MAX)?;
        }
        // Rollup buckets are not records: they go by their tier's age, uncounted.
        self.rollups.drop_old([
            days(self.config.minutes_retention_days, 86_400),
            days(self.config.hours_retention_days, 86_400),
            days(self.config.days_retention_days, 86_400),
        ])?;
        let file = self.db.size_on_disk().unwrap_or(0);
        self.live_share =
            adjust_live_share(self.live_share, self.effective_cap(), self.file_seen, file);
        self.file_seen = file;
        report.for_space = self.make_room()?;
        self.deleted_by_age += report.by_age;
        self.deleted_for_space += report.for_space;
        Ok(report)
    }

    /// Oldest and newest stored flow end time (ns), blocks and legacy partitions together.
    fn flow_span(&self) -> Option<(i64, i64)> {
        match (self.flows.time_span(), self.legacy.time_span()) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        }
    }

    /// Logical bytes of every flow: blocks, and legacy records with their index.
    fn flow_bytes(&self) -> u64 {
        let (rows, index) = self.legacy.counts();
        self.flows.counts().bytes + rows.bytes + index.bytes
    }

    /// The logical bytes (keys and values) the records may fill.
    fn budget(&self) -> u64 {
        (self.effective_cap() as f64 * LIVE_SHARE * self.live_share) as u64
    }

    /// The size cap, lowered to what the filesystem can hold while keeping `min_free_mb`
    /// free: when other files fill the disk, retention makes room inside the database
    /// (which sled reuses) instead of growing it into the last free bytes.
    fn effective_cap(&self) -> u64 {
        effective_cap(
            &self.config,
            &self.path,
            self.db.size_on_disk().unwrap_or(0),
        )
    }

    /// Refuses new records while less than half of `min_free_mb` is free on the disk, so
    /// that the store never takes the last bytes the system needs (nor refills at once
    /// what an operator just freed).
    pub fn check_headroom(&self) -> Result<(), StoreError> {
        let min_free = min_free_bytes(&self.config);
        match space::free_bytes(&self.path) {
            Ok(free) if free < min_free / 2 => Err(StoreError::DiskFull {
                path: self.path.clone(),
                free,
                min_free,
            }),
            _ => Ok(()),
        }
    }

    /// Keeps the stored records' logical bytes under a budget derived from the cap,
    /// dropping the oldest records: flow partitions, then snapshots, then alerts.
    ///
    /// sled never shrinks its file: space freed is reused for new writes, so the file's
    /// size is its high-water mark and waiting for it to reach the cap would be too late.
    /// The budget is the cap times the share of the file that live data fills under
    /// sustained writes (measured, see `LIVE_SHARE`).
    fn make_room(&mut self) -> Result<u64, StoreError> {
        let budget = self.budget();
        // The history's rollups go by age only; flows make room for them.
        let others =
            self.counts[ALERTS].bytes + self.counts[SNAPSHOTS].bytes + self.rollups.bytes();
        if self.flow_bytes() + others <= budget {
            return Ok(0);
        }
        // Down to 90% of the budget, so that deletes come in runs, not one per write. The
        // legacy partitions hold the oldest flows: they go first.
        let target = budget / 10 * 9;
        let blocks = self.flows.counts().bytes;
        let mut deleted = self.legacy.shrink_to(
            &self.db,
            target.saturating_sub(others).saturating_sub(blocks),
        )?;
        let (rows, index) = self.legacy.counts();
        deleted += self.flows.shrink_to(
            target
                .saturating_sub(others)
                .saturating_sub(rows.bytes + index.bytes),
        )?;
        let mut excess = (self.flow_bytes() + others).saturating_sub(target);
        for slot in [SNAPSHOTS, ALERTS] {
            if excess == 0 {
                break;
            }
            let before = self.counts[slot].bytes;
            deleted += self.delete_oldest(slot, None, excess)?;
            excess = excess.saturating_sub(before - self.counts[slot].bytes);
        }
        Ok(deleted)
    }

    /// Deletes the oldest snapshots or alerts (`slot`; keys below `before`, if given) until
    /// `max_bytes` of logical data went; returns how many. Flows go by partition instead.
    fn delete_oldest(
        &mut self,
        slot: usize,
        before: Option<&[u8]>,
        max_bytes: u64,
    ) -> Result<u64, StoreError> {
        let tree = if slot == SNAPSHOTS {
            &self.snapshots
        } else {
            &self.alerts
        };
        let (mut n, mut bytes) = (0u64, 0u64);
        while bytes < max_bytes {
            let first = match &before {
                Some(b) => tree.range::<&[u8], _>(..b).next().transpose()?,
                None => tree.first()?,
            };
            let Some((k, v)) = first else {
                break;
            };
            tree.remove(&k)?;
            bytes += (k.len() + v.len()) as u64;
            n += 1;
        }
        let c = &mut self.counts[slot];
        c.records = c.records.saturating_sub(n);
        c.bytes = c.bytes.saturating_sub(bytes);
        Ok(n)
    }

    /// Writes every stored alert (oldest first) as JSON lines; returns how many.
    pub fn export_alerts(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        let mut n = 0;
        for entry in self.alerts.iter() {
            let (k, v) = entry?;
            let alert = decode_alert(&k, &v)?;
            serde_json::to_writer(&mut *out, &alert).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes every stored flow (oldest partition first) as JSON lines in the published
    /// shape.
    pub fn export_flows(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut write = |r: &FlowRecord| {
            serde_json::to_writer(&mut *out, r).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
            Ok(())
        };
        self.legacy.for_each(&mut write)?;
        self.flows.for_each(&mut write)?;
        Ok(n)
    }

    /// Checks every record decodes and every flow has its index entries; returns the
    /// number of records checked.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let mut n = self.legacy.verify()? + self.flows.verify()?;
        for entry in self.alerts.iter() {
            let (k, v) = entry?;
            decode_alert(&k, &v)?;
            n += 1;
        }
        n += self.snapshots(None, None, usize::MAX)?.len() as u64;
        Ok(n)
    }
}

fn cap_bytes(config: &StoreConfig) -> u64 {
    config.max_disk_mb.saturating_mul(1024 * 1024)
}

/// `max_disk_mb`, or less: the database's `size` plus the free space beyond `min_free_mb`.
fn effective_cap(config: &StoreConfig, path: &Path, size: u64) -> u64 {
    let cap = cap_bytes(config);
    match space::free_bytes(path) {
        Ok(free) => cap.min(size.saturating_add(free.saturating_sub(min_free_bytes(config)))),
        Err(_) => cap,
    }
}

/// Share of the cap past which a growing file makes retention keep less live data.
const FILE_PRESSURE: f64 = 0.75;
/// The least share of the usual live data retention keeps under that pressure.
const LEAST_LIVE_SHARE: f64 = 0.25;
/// How much the share moves per retention run (every 10 s, and whenever the disk is short).
const LIVE_SHARE_STEP: f64 = 0.7;

/// The share of the usual live data (`LIVE_SHARE` of the cap) to keep, from the share kept
/// so far and how sled's file moved since (`before` to `now` bytes, under a cap of `cap`).
/// Under a sustained burst sled's collector falls behind and its file grew past the cap (707
/// MB of a 512 MB cap after seven minutes of a full-speed loop), so while the file grows past
/// `FILE_PRESSURE` of the cap retention keeps less, and frees whole segments that sled
/// reuses instead. A file that holds its size has room inside (sled never shrinks it), so
/// the share comes back: a burst does not cost the history for good.
fn adjust_live_share(share: f64, cap: u64, before: u64, now: u64) -> f64 {
    if now > before && now as f64 > cap as f64 * FILE_PRESSURE {
        (share * LIVE_SHARE_STEP).max(LEAST_LIVE_SHARE)
    } else if now <= before {
        (share / LIVE_SHARE_STEP).min(1.0)
    } else {
        share
    }
}

fn min_free_bytes(config: &StoreConfig) -> u64 {
    config.min_free_mb.saturating_mul(1024 * 1024)
}

fn days(d: u64, unit: i64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX).saturating_mul(unit)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json_field(e: &serde_json::Error) -> &'static str {
    if e.is_eof() { "truncated JSON" } else { "JSON" }
}

fn decode_alert(k: &[u8], v: &[u8]) -> Result<Alert, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: format!("alert {}", hex(k)),
        source: DecodeError::Field(json_field(&e)),
    })
}

fn decode_flow_at(k: &[u8], v: &[u8]) -> Result<FlowRecord, StoreError> {
    codec::decode_flow(v).map_err(|source| StoreError::Corrupt {
        key: format!("flow {}", hex(k)),
        source,
    })
}

#[cfg(test)]
mod tests;
