//! Loading and refreshing the lists: a plain `Refresher` that knows each list's file, its
//! last download and when it is due, and a thread (`start`) that runs it every
//! `check_secs`, at once when asked (`IntelHandle::reload`), and publishes a new snapshot
//! only when a list changed. A list that fails keeps its previous entries and shows the
//! error.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use super::fetch::{self, Fetched};
use super::matcher::IndicatorSetBuilder;
use super::parse::read_list;
use super::{IntelConfig, ListConfig, ListStatus, LoadedList, SharedIntel, Snapshot, unix_now};

/// One list's state between refreshes.
struct ListState {
    config: ListConfig,
    loaded: Option<Arc<LoadedList>>,
    status: ListStatus,
    /// The file's modification time when it was last read.
    read_mtime: Option<SystemTime>,
    /// Unix seconds the URL is next fetched.
    next_fetch: u64,
}

/// Loads and refreshes the lists of an `[intel]` section.
pub struct Refresher {
    config: IntelConfig,
    cache_dir: Option<PathBuf>,
    lists: Vec<ListState>,
}

impl Refresher {
    /// `cache_dir` keeps downloads of URL lists without a `path` (beside the database);
    /// without one they are read from a temporary file and not kept.
    pub fn new(config: IntelConfig, cache_dir: Option<PathBuf>) -> Self {
        let lists = config
            .lists
            .iter()
            .filter(|l| l.enabled)
            .map(|l| ListState {
                config: l.clone(),
                loaded: None,
                status: ListStatus {
                    name: l.name.clone(),
                    source: l
                        .url
                        .clone()
                        .or_else(|| config.file_of(l).map(|p| p.display().to_string()))
                        .unwrap_or_default(),
                    format: l.format,
                    severity: Some(l.severity),
                    max_age_secs: super::duration_secs(&l.max_age).unwrap_or(u64::MAX),
                    ..ListStatus::default()
                },
                read_mtime: None,
                next_fetch: 0,
            })
            .collect();
        Refresher {
            config,
            cache_dir,
            lists,
        }
    }

    /// Reads changed files and fetches due URLs (all URLs when `force`); true when some
    /// list's entries changed.
    pub fn refresh(&mut self, force: bool) -> bool {
        let max_bytes = self.config.max_list_mb.saturating_mul(1 << 20);
        let mut changed = false;
        for i in 0..self.lists.len() {
            let file = self.file_for(&self.lists[i].config);
            let state = &mut self.lists[i];
            let now = unix_now();
            if let Some(url) = state.config.url.clone() {
                if !force && now < state.next_fetch {
                    continue;
                }
                let refresh = super::duration_secs(&state.config.refresh).unwrap_or(21_600);
                state.next_fetch = now.saturating_add(refresh);
                let Some(dest) = file.clone() else {
                    state.status.last_error = Some("no place to keep the download".into());
                    continue;
                };
                if let Some(parent) = dest.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                // A copy kept from before a restart serves until the first fetch answers.
                if state.loaded.is_none() && dest.exists() {
                    changed |= load_file(state, &dest, max_bytes, now);
                }
                let fetched = fetch::agent(state.config.ca_file.as_deref()).and_then(|agent| {
                    fetch::fetch(
                        &agent,
                        &url,
                        state.status.etag.as_deref(),
                        state.status.last_modified.as_deref(),
                        &dest,
                        max_bytes,
                    )
                });
                state.status.fetches += 1;
                match fetched {
                    Ok(Fetched::NotModified) => {
                        state.status.not_modified += 1;
                        state.status.checked = Some(now);
                        state.status.last_error = None;
                    }
                    Ok(Fetched::New {
                        etag,
                        last_modified,
                    }) => {
                        state.status.etag = etag;
                        state.status.last_modified = last_modified;
                        state.read_mtime = None;
                        changed |= load_file(state, &dest, max_bytes, now);
                        if state.status.last_error.is_none() {
                            // The content dates from this download, whatever the file's time.
                            state.status.updated = Some(now);
                        }
                    }
                    Err(e) => state.status.last_error = Some(e),
                }
                if self.cache_dir.is_none() && state.config.path.is_none() {
                    let _ = std::fs::remove_file(&dest);
                    if let Some(dir) = dest.parent() {
                        let _ = std::fs::remove_dir(dir);
                    }
                }
            } else if let Some(path) = file {
                let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                if force || mtime.is_none() || mtime != state.read_mtime {
                    changed |= load_file(state, &path, max_bytes, now);
                }
            }
        }
        changed
    }

    /// Where a list is read from: its `path` under the intel directory; for a URL list
    /// without one, a file in the cache directory (or a temporary one).
    fn file_for(&self, list: &ListConfig) -> Option<PathBuf> {
        if let Some(path) = self.config.file_of(list) {
            return Some(path);
        }
        let dir = self.cache_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tapir-intel-{}", std::process::id()))
        });
        super::cache_file(Some(&dir), list)
    }

    /// The lists as loaded, and their status.
    pub fn snapshot(&self) -> (Snapshot, Vec<ListStatus>) {
        let snapshot = Snapshot {
            lists: self.lists.iter().filter_map(|l| l.loaded.clone()).collect(),
        };
        let status = self.lists.iter().map(|l| l.status.clone()).collect();
        (snapshot, status)
    }

    /// Seconds until the next URL is due (at most `check_secs`).
    fn wait(&self) -> Duration {
        let now = unix_now();
        let due = self
            .lists
            .iter()
            .filter(|l| l.config.url.is_some())
            .map(|l| l.next_fetch.saturating_sub(now))
            .min()
            .unwrap_or(u64::MAX);
        Duration::from_secs(due.clamp(1, self.config.check_secs))
    }
}

/// Reads `path` as `state`'s list; true when it loaded (the entries replace the old ones).
fn load_file(state: &mut ListState, path: &Path, max_bytes: u64, now: u64) -> bool {
    let result = (|| -> Result<(LoadedList, super::parse::ParseReport, SystemTime), String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if meta.len() > max_bytes {
            return Err(format!(
                "{} is {} MiB, more than intel.max_list_mb",
                path.display(),
                meta.len() >> 20
            ));
        }
        let mut set = IndicatorSetBuilder::default();
        let report = read_list(
            BufReader::with_capacity(64 * 1024, file),
            state.config.format,
            state.config.column,
            0,
            &mut set,
        )
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let list = LoadedList {
            name: state.config.name.as_str().into(),
            severity: state.config.severity,
            set: set.build(),
        };
        Ok((list, report, meta.modified().unwrap_or(SystemTime::now())))
    })();
    match result {
        Ok((list, report, mtime)) => {
            state.status.entries = list.set.counts();
            state.status.bytes = list.set.heap_bytes();
            state.status.malformed = report.malformed;
            state.status.first_malformed = report.first_malformed;
            state.status.last_error = None;
            state.status.checked = Some(now);
            state.status.updated = Some(
                mtime
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(now, |d| d.as_secs()),
            );
            state.read_mtime = Some(mtime);
            state.loaded = Some(Arc::new(list));
            true
        }
        Err(e) => {
            state.status.last_error = Some(e);
            false
        }
    }
}

/// Asks the refresher thread for a reload; stops it when dropped.
#[derive(Clone)]
pub struct IntelHandle {
    wake: SyncSender<()>,
}

impl IntelHandle {
    /// Re-reads every file and fetches every URL now (a second request while one waits is
    /// folded into it).
    pub fn reload(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Loads every list once (before the first packet is matched), publishes them, and leaves
/// a thread that keeps them fresh.
pub fn start(shared: SharedIntel, config: IntelConfig, cache_dir: Option<PathBuf>) -> IntelHandle {
    let mut refresher = Refresher::new(config, cache_dir);
    refresher.refresh(true);
    let (snapshot, status) = refresher.snapshot();
    shared.publish(snapshot, status);
    let (wake, woken) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("intel".into())
        .spawn(move || run(refresher, shared, woken));
    if let Err(e) = spawned {
        eprintln!("tapir: cannot start the intel refresher ({e}); lists load once only");
    }
    IntelHandle { wake }
}

fn run(mut refresher: Refresher, shared: SharedIntel, woken: Receiver<()>) {
    loop {
        let force = match woken.recv_timeout(refresher.wait()) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let before = refresher.snapshot().1;
        let changed = refresher.refresh(force);
        let (snapshot, status) = refresher.snapshot();
        if changed || status != before {
            shared.publish(snapshot, status);
        }
    }
}

/// Loads every list once, for a run that ends (`analyze`).
pub fn load_once(shared: &SharedIntel, config: IntelConfig) {
    let mut refresher = Refresher::new(config, None);
    refresher.refresh(true);
    let (snapshot, status) = refresher.snapshot();
    shared.publish(snapshot, status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel::ListFormat;

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("l.txt"), "192.0.2.1\nevil.example\n").unwrap();
        let config = IntelConfig {
            dir: dir.path().to_path_buf(),
            lists: vec![ListConfig {
                name: "l".into(),
                path: Some("l.txt".into()),
                format: ListFormat::Lines,
                ..ListConfig::default()
            }],
            ..IntelConfig::default()
        };
        let mut r = Refresher::new(config, None);
        assert!(r.refresh(false));
        assert!(!r.refresh(false), "an unchanged file is not read again");
        let (snap, status) = r.snapshot();
        assert_eq!(snap.entries(), 2);
        assert_eq!(status[0].entries.total(), 2);
        // A new modification time: read again.
        std::fs::write(dir.path().join("l.txt"), "192.0.2.1\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("l.txt"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(r.refresh(false));
        assert_eq!(r.snapshot().0.entries(), 1);
        std::fs::remove_file(dir.path().join("l.txt")).unwrap();
        assert!(!r.refresh(false));
        let (snap, status) = r.snapshot();
        assert_eq!(snap.entries(), 1, "the last good copy stays");
        assert!(
            status[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("cannot read")
        );
    }
}
