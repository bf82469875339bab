//! Threat intelligence: known-bad lists of addresses, networks, domain names and JA4
//! fingerprints (`[[intel.list]]`), read from files or fetched over HTTPS, and matched once
//! per flow record and once per DNS question (never per packet) by `IntelDetector`, which
//! raises `threat_intel`: one alert per (list entry, local host) episode.
//!
//! The lists live in `SharedIntel`: the pipelines' detectors read its current snapshot, the
//! refresher (`refresh`) swaps in a new one when a file changes, a URL's list is fetched
//! again or an admin asks for a reload, so lists change without a restart. Each list keeps
//! its own indicator set, so a list that did not change (a 304, an untouched file) is kept
//! as it is.

pub mod detector;
pub mod fetch;
pub mod matcher;
pub mod parse;
pub mod refresh;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::model::finding::Severity;
pub use detector::IntelDetector;
pub use matcher::{EntryCounts, Hit, IndicatorSet};
pub use parse::ListFormat;

/// The `[intel]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntelConfig {
    /// Where a list's relative `path` is looked for.
    pub dir: PathBuf,
    /// How often list files are checked for changes, in seconds.
    pub check_secs: u64,
    /// Largest list accepted (file or download), in MiB.
    pub max_list_mb: u64,
    #[serde(rename = "list")]
    pub lists: Vec<ListConfig>,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            dir: PathBuf::from("/etc/tapir/intel"),
            check_secs: 30,
            max_list_mb: 64,
            lists: Vec::new(),
        }
    }
}

/// One `[[intel.list]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListConfig {
    /// Shown in alerts and in `/intel`; unique.
    pub name: String,
    /// A file (relative to `[intel] dir`); or, with `url`, where the download is kept.
    pub path: Option<PathBuf>,
    /// An `https://` (or `http://`) address fetched every `refresh`.
    pub url: Option<String>,
    pub format: ListFormat,
    /// The CSV column holding the entry, counted from 1.
    pub column: usize,
    /// Severity of the alerts the list raises.
    pub severity: Severity,
    /// Age past which the list is flagged stale (`30m`, `12h`, `2d`, or seconds).
    pub max_age: String,
    /// How often a `url` is fetched again (same units).
    pub refresh: String,
    /// PEM file of the certificate authorities trusted for `url` instead of the built-in
    /// web roots (a private feed server).
    pub ca_file: Option<PathBuf>,
    pub enabled: bool,
}

impl Default for ListConfig {
    fn default() -> Self {
        ListConfig {
            name: String::new(),
            path: None,
            url: None,
            format: ListFormat::Lines,
            column: 1,
            severity: Severity::High,
            max_age: "7d".into(),
            refresh: "6h".into(),
            ca_file: None,
            enabled: true,
        }
    }
}

impl IntelConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        if self.check_secs == 0 {
            return Err("intel.check_secs must be at least 1".into());
        }
        if !(1..=1024).contains(&self.max_list_mb) {
            return Err("intel.max_list_mb must be between 1 and 1024".into());
        }
        if self.lists.len() > usize::from(u16::MAX) {
            return Err("intel: too many lists".into());
        }
        for list in &self.lists {
            let at = format!("intel.list {:?}", list.name);
            if list.name.is_empty() {
                return Err("every [[intel.list]] needs a name".into());
            }
            if !names.insert(list.name.as_str()) {
                return Err(format!("{at}: the name is used twice"));
            }
            match (&list.path, &list.url) {
                (None, None) => return Err(format!("{at}: give a path or a url")),
                (_, Some(url)) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                    return Err(format!("{at}: url must start with https:// or http://"));
                }
                _ => {}
            }
            if list.column == 0 {
                return Err(format!("{at}: column counts from 1"));
            }
            duration_secs(&list.max_age).map_err(|e| format!("{at}: max_age {e}"))?;
            let refresh = duration_secs(&list.refresh).map_err(|e| format!("{at}: refresh {e}"))?;
            if list.url.is_some() && refresh < 60 {
                return Err(format!(
                    "{at}: refresh must be at least 60 seconds (feeds ban clients that poll faster)"
                ));
            }
        }
        Ok(())
    }

    /// Where `list`'s file is (its `path` under `dir`), if it has one.
    pub fn file_of(&self, list: &ListConfig) -> Option<PathBuf> {
        list.path.as_ref().map(|p| self.dir.join(p))
    }
}

/// `30`, `90s`, `30m`, `12h`, `2d` or `1w` as seconds.
pub fn duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30m, 12h, 2d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: the unit must be s, m, h, d or w")),
    };
    Ok(n.saturating_mul(scale))
}

/// One list as loaded: its indicators and where they came from.
#[derive(Debug)]
pub struct LoadedList {
    pub name: Arc<str>,
    pub severity: Severity,
    pub set: IndicatorSet,
}

/// What the detectors match against: the lists in config order (the first hit wins).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub lists: Vec<Arc<LoadedList>>,
}

/// A match: the list, its severity and the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub list: Arc<str>,
    pub severity: Severity,
    pub entry: String,
}

impl Snapshot {
    fn first(&self, find: impl Fn(&IndicatorSet) -> Option<Hit>) -> Option<Match> {
        self.lists.iter().find_map(|l| {
            find(&l.set).map(|hit| Match {
                list: l.name.clone(),
                severity: l.severity,
                entry: hit.entry,
            })
        })
    }

    pub fn lookup_ip(&self, ip: std::net::IpAddr) -> Option<Match> {
        self.first(|s| s.lookup_ip(ip))
    }

    pub fn lookup_name(&self, name: &str) -> Option<Match> {
        self.first(|s| s.lookup_name(name))
    }

    pub fn lookup_ja4(&self, fp: &str) -> Option<Match> {
        self.first(|s| s.lookup_ja4(fp))
    }

    pub fn entries(&self) -> usize {
        self.lists.iter().map(|l| l.set.counts().total()).sum()
    }
}

/// How one list stands, for `/intel` and the settings view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListStatus {
    pub name: String,
    /// The file or URL it is read from.
    pub source: String,
    pub format: ListFormat,
    pub severity: Option<Severity>,
    pub entries: EntryCounts,
    pub malformed: u64,
    pub first_malformed: Option<String>,
    /// Unix seconds the list's content dates from (file mtime, or the download's time).
    pub updated: Option<u64>,
    /// Unix seconds of the last successful check (a 304 counts).
    pub checked: Option<u64>,
    pub max_age_secs: u64,
    /// Older than `max_age`, or never loaded.
    pub stale: bool,
    pub last_error: Option<String>,
    /// Conditional-request validators of the last download.
    #[serde(skip)]
    pub etag: Option<String>,
    #[serde(skip)]
    pub last_modified: Option<String>,
    /// Bytes of the list's indicator set.
    pub bytes: usize,
    pub fetches: u64,
    pub not_modified: u64,
}

/// The lists every pipeline matches against, shared by the detectors, the refresher and
/// the API.
#[derive(Clone, Default)]
pub struct SharedIntel {
    inner: Arc<Inner>,
}

impl PartialEq for SharedIntel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for SharedIntel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedIntel({} entries)", self.snapshot().entries())
    }
}

#[derive(Default)]
struct Inner {
    current: RwLock<Arc<Snapshot>>,
    status: Mutex<Vec<ListStatus>>,
    reloads: std::sync::atomic::AtomicU64,
}

impl SharedIntel {
    /// The current snapshot (cheap: one reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `snapshot` in place with the lists' status.
    pub fn publish(&self, snapshot: Snapshot, status: Vec<ListStatus>) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
        *self
            .inner
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
        self.inner
            .reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Each list's status, with staleness judged at `now` (Unix seconds).
    pub fn status(&self, now: u64) -> Vec<ListStatus> {
        let mut all = self
            .inner
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for s in &mut all {
            s.stale = s
                .updated
                .is_none_or(|t| now.saturating_sub(t) > s.max_age_secs);
        }
        all
    }

    /// How many snapshots were published.
    pub fn reloads(&self) -> u64 {
        self.inner
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The cache file of a URL list without a `path`: `<cache_dir>/<name>.list`, the name
/// reduced to letters, digits, `-` and `_` (a name never leaves the directory).
pub(crate) fn cache_file(cache_dir: Option<&Path>, list: &ListConfig) -> Option<PathBuf> {
    let safe: String = list
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir.map(|d| d.join(format!("{safe}.list")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_name_never_leaves_the_cache_directory() {
        let list = ListConfig {
            name: "../../etc/passwd".into(),
            ..ListConfig::default()
        };
        let file = cache_file(Some(Path::new("/var/lib/tapir/intel")), &list).unwrap();
        assert_eq!(
            file,
            Path::new("/var/lib/tapir/intel/______etc_passwd.list")
        );
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(duration_secs("90"), Ok(90));
        assert_eq!(duration_secs("30m"), Ok(1800));
        assert_eq!(duration_secs("2d"), Ok(172_800));
        assert!(duration_secs("2 days").is_err());
        assert!(duration_secs("h").is_err());
    }

    #[test]
    fn lists_need_a_name_a_source_and_sane_values() {
        let ok = ListConfig {
            name: "feodo".into(),
            path: Some("feodo.csv".into()),
            ..ListConfig::default()
        };
        let check = |list: ListConfig| {
            IntelConfig {
                lists: vec![list],
                ..IntelConfig::default()
            }
            .validate()
        };
        assert!(check(ok.clone()).is_ok());
        assert!(
            check(ListConfig {
                path: None,
                ..ok.clone()
            })
            .unwrap_err()
            .contains("path or a url")
        );
        assert!(
            check(ListConfig {
                url: Some("ftp://x".into()),
                ..ok.clone()
            })
            .is_err()
        );
        assert!(
            check(ListConfig {
                url: Some("https://x.example/l".into()),
                refresh: "10s".into(),
                ..ok.clone()
            })
            .unwrap_err()
            .contains("60 seconds")
        );
        assert!(
            check(ListConfig {
                column: 0,
                ..ok.clone()
            })
            .is_err()
        );
        let twice = IntelConfig {
            lists: vec![ok.clone(), ok],
            ..IntelConfig::default()
        };
        assert!(twice.validate().unwrap_err().contains("twice"));
    }
}
