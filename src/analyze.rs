//! `tapir analyze`: run the pipeline over capture files (or an interface for a while) to the
//! end and summarise what it saw.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::Actor;
use serde::Serialize;

use crate::alert::actor::{GetAlertStats, GetAlerts};
use crate::alert::{Alert, AlertStats, LatencyStats};
use crate::capture::file::FileSource;
use crate::capture::live::{LiveOptions, LiveSource};
use crate::capture::{
    self, BatchConfig, CaptureCounters, CaptureError, CaptureReport, LibpcapStats, PacketSource,
    StopWhen,
};
use crate::config::Config;
use crate::decode::DecodeCounters;
use crate::detect::DetectorStats;
use crate::flow::FlowTableStats;
use crate::flow::actor::{GetUsage, name_talkers};
use crate::metrics::actor::GetStats;
use crate::metrics::{StatsSnapshot, TopTalker};
use crate::model::device::{Device, InventoryState};
use crate::names::usage::{Share, UsageRow, UsageSummary};
use crate::output::FlushOutput;
use crate::output::JsonLinesWriter;
use crate::packet::Timestamp;
use crate::pipeline::{Drained, ExportService, Pipeline, PipelineConfig, StoreService};
use crate::store::actor::{StoreActor, StoreStatus};
use crate::store::{Store, StoreError};
use crate::wire::link::LinkType;

/// What to analyse.
#[derive(Clone, Debug)]
pub enum Input {
    /// Capture files, read one after another as one stream.
    Files(Vec<PathBuf>),
    /// A live interface for a fixed time.
    Live { iface: String, duration: Duration },
}

#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    pub input: Input,
    pub config: Config,
    pub flows_out: Option<PathBuf>,
    /// Where to write one JSON line per alert.
    pub alerts_out: Option<PathBuf>,
    /// Show a progress line on stderr (only when it is a terminal).
    pub progress: bool,
    pub top_talkers: usize,
}

/// One input's part of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    pub source: String,
    pub packets: u64,
    pub link_types: Vec<String>,
    pub error: Option<String>,
}

/// The result of `analyze`, printed as JSON with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub packets: u64,
    pub bytes: u64,
    pub decoded: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    /// Decoded packets by the encapsulations they arrived in (VLAN, MPLS, VXLAN, GRE, ...).
    pub encapsulations: BTreeMap<&'static str, u64>,
    pub dns_malformed: u64,
    /// QUIC Initials left unread because a second's decryption budget was spent.
    pub quic_initials_over_budget: u64,
    pub flows: u64,
    pub protocol_counts: BTreeMap<&'static str, u64>,
    pub top_talkers: Vec<TopTalker>,
    /// Every alert, oldest first.
    pub alerts: Vec<Alert>,
    pub alert_latency: LatencyStats,
    pub detectors: BTreeMap<&'static str, DetectorStats>,
    pub elapsed_s: f64,
    pub packets_per_sec: f64,
    pub peak_rss_bytes: u64,
    pub first_seen: Option<f64>,
    pub last_seen: Option<f64>,
    pub flow_table: FlowTableStats,
    pub flow_records_written: Option<u64>,
    pub batches_dropped: u64,
    pub packets_dropped: u64,
    pub libpcap: Option<LibpcapStats>,
    pub inputs: Vec<InputSummary>,
    /// What was stored, with `--db-path`.
    pub store: Option<StoreStatus>,
    /// Export targets and what each sent and dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<serde_json::Value>,
    /// Bytes, flows and hosts per application (absent when names are off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<UsageRow>>,
    /// The same per category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_categories: Option<Vec<UsageRow>>,
    /// The server names with the most bytes, and how many flows and bytes each source named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<NamesSection>,
    /// The stations of the segment, one per MAC, most bytes first (absent when devices are
    /// off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<serde_json::Value>>,
    /// The LAN rules' counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_rules: Option<crate::devices::rules::RuleStats>,
    /// Each notification target's counters after its messages were delivered or failed
    /// (absent without `[[notify]]` targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<serde_json::Value>,
    /// Each threat list as loaded (absent without `[[intel.list]]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intel: Option<Vec<crate::intel::ListStatus>>,
}

/// The `names` section of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct NamesSection {
    pub top: Vec<UsageRow>,
    pub named_by: BTreeMap<&'static str, Share>,
}

/// How the run ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was read (possibly with a cut-short file, reported as a warning).
    Complete,
    /// Some input could not be read at all, or nothing could be decoded.
    Failed,
}

/// Errors that stop `analyze` before it produces a summary.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("cannot create {path}: {source}")]
    FlowsOut {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write alerts to {path}: {source}")]
    AlertsOut {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the actor system stopped unexpectedly: {0}")]
    Actors(String),
    #[error("cannot start the notification threads: {0}")]
    Notify(std::io::Error),
}

/// Everything `analyze` writes to or reads from, opened before any work so that a bad path,
/// interface or collector is an error at once.
struct Opened {
    /// The interface and for how long, when capturing live.
    live: Option<(LiveSource, Duration)>,
    writer: Option<JsonLinesWriter>,
    alerts_file: Option<(PathBuf, std::fs::File)>,
    store: Option<OpenedStore>,
    exporter: Option<crate::export::Exporter>,
}

/// The database of `--db-path`: its actor, and what it kept of the device inventory.
struct OpenedStore {
    actor: StoreActor,
    devices: (Vec<Device>, InventoryState),
}

impl Opened {
    fn open(options: &AnalyzeOptions) -> Result<Opened, AnalyzeError> {
        let live = match &options.input {
            Input::Live { iface, duration } => {
                let opts = LiveOptions::from_config(&options.config.capture, None);
                Some((LiveSource::open(iface, &opts)?, *duration))
            }
            Input::Files(_) => None,
        };
        let writer =
            match &options.flows_out {
                Some(path) => Some(JsonLinesWriter::create(path).map_err(|source| {
                    AnalyzeError::FlowsOut {
                        path: path.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let alerts_file = match &options.alerts_out {
            Some(path) => Some((
                path.clone(),
                std::fs::File::create(path).map_err(|source| AnalyzeError::AlertsOut {
                    path: path.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        let store = match &options.config.store.db_path {
            Some(path) => {
                let mut store = Store::open(path, &options.config.store)?;
                store.set_community_seed(options.config.flows.community_id_seed);
                // The history's rollups by country, when a GeoIP database is there.
                if let Ok(geo) = crate::geo::GeoIp::open(&options.config.geoip)
                    && geo.status().database.is_some()
                {
                    let geo = std::sync::Arc::new(geo);
                    store.set_locate(std::sync::Arc::new(move |ip| geo.country_code(ip)));
                }
                let devices = store.load_devices()?;
                Some(OpenedStore {
                    actor: StoreActor::from_store(store, options.config.store.clone()),
                    devices,
                })
            }
            None => None,
        };
        let exporter = crate::export::Exporter::open(&options.config.export)?;
        Ok(Opened {
            live,
            writer,
            alerts_file,
            store,
            exporter,
        })
    }
}

/// What the pipeline reported once its input ended.
struct Ran {
    reports: Vec<Result<CaptureReport, CaptureError>>,
    drained: Drained,
    stats: StatsSnapshot,
    alerts: Vec<Alert>,
    alert_stats: AlertStats,
    /// Flow records written to `--flows-out`, or why not.
    written: Option<std::io::Result<u64>>,
    usage: Option<UsageSummary>,
    devices: Option<(Vec<serde_json::Value>, crate::devices::rules::RuleStats)>,
    notify: Option<serde_json::Value>,
    intel: Option<Vec<crate::intel::ListStatus>>,
}

/// Runs the analysis; warnings (cut-short files, unsupported link types) go to `warn`.
pub fn run(
    options: AnalyzeOptions,
    warn: &mut dyn FnMut(String),
) -> Result<(Summary, Outcome), AnalyzeError> {
    let started = Instant::now();
    let opened = Opened::open(&options)?;
    let export_targets = opened.exporter.as_ref().map(|e| e.targets());
    let alerts_file = opened.alerts_file;
    let inputs = match opened.live {
        Some((source, duration)) => vec![Reading::Live(Box::new(source), duration)],
        None => match &options.input {
            Input::Files(files) => files.iter().cloned().map(Reading::File).collect(),
            Input::Live { .. } => Vec::new(),
        },
    };
    let progress = options.progress
        && inputs.iter().all(|i| matches!(i, Reading::File(_)))
        && std::io::stderr().is_terminal();
    let system = actix::System::new();
    let ran = system.block_on(run_pipeline(
        options.config,
        inputs,
        opened.writer,
        opened.store,
        opened.exporter,
        progress.then_some(started),
        options.top_talkers,
    ))?;
    if let Some(s) = &ran.drained.store
        && s.pending > 0
    {
        warn(format!(
            "{} records could not be stored: {}",
            s.pending,
            s.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    if let Some((path, file)) = alerts_file {
        write_alerts(file, &ran.alerts)
            .map_err(|source| AnalyzeError::AlertsOut { path, source })?;
    }
    let written = match ran.written {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            warn(format!("writing flow records failed: {e}"));
            None
        }
        None => None,
    };
    let read = read_reports(ran.reports, warn);
    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        packets: read.packets,
        bytes: read.bytes,
        decoded: read.decode.decoded,
        skipped: read.decode.skipped_by_reason().collect(),
        encapsulations: read.decode.by_encapsulation().collect(),
        dns_malformed: read.decode.dns_malformed,
        quic_initials_over_budget: read.decode.quic_over_budget,
        flows: ran.drained.flows.created,
        protocol_counts: ran.stats.protocol_counts,
        top_talkers: ran.stats.top_talkers,
        alerts: ran.alerts,
        alert_latency: ran.alert_stats.latency,
        detectors: ran.drained.detectors,
        elapsed_s: elapsed,
        packets_per_sec: if elapsed > 0.0 {
            read.packets as f64 / elapsed
        } else {
            0.0
        },
        peak_rss_bytes: crate::process::peak_rss_bytes(),
        first_seen: read.first.map(|t| t.as_secs_f64()),
        last_seen: read.last.map(|t| t.as_secs_f64()),
        flow_table: ran.drained.flows,
        flow_records_written: written,
        batches_dropped: read.batches_dropped,
        packets_dropped: read.packets_dropped,
        libpcap: read.libpcap,
        inputs: read.inputs,
        store: ran.drained.store,
        export: export_targets.map(|t| crate::export::snapshot(&t)),
        apps: ran.usage.as_ref().map(|u| u.apps.clone()),
        app_categories: ran.usage.as_ref().map(|u| u.categories.clone()),
        names: ran.usage.map(|u| NamesSection {
            top: u.names,
            named_by: u.named_by,
        }),
        device_rules: ran.devices.as_ref().map(|d| d.1),
        devices: ran.devices.map(|d| d.0),
        notify: ran.notify,
        intel: ran.intel,
    };
    let outcome = if read.failed || (read.packets > 0 && read.decode.decoded == 0) {
        Outcome::Failed
    } else {
        Outcome::Complete
    };
    Ok((summary, outcome))
}

/// One input of `analyze`, read in turn.
enum Reading {
    /// A capture file, opened when its turn comes.
    File(PathBuf),
    /// An interface, for a while.
    Live(Box<dyn PacketSource>, Duration),
}

/// Starts the services and the pipeline, reads every input into it, drains it and asks it
/// for the summary's figures.
async fn run_pipeline(
    config: Config,
    inputs: Vec<Reading>,
    writer: Option<JsonLinesWriter>,
    store: Option<OpenedStore>,
    exporter: Option<crate::export::Exporter>,
    progress_since: Option<Instant>,
    top_talkers: usize,
) -> Result<Ran, AnalyzeError> {
    let actors = |e: actix::MailboxError| AnalyzeError::Actors(e.to_string());
    let writer = writer.map(Actor::start);
    let mut sinks: Vec<_> = writer.iter().map(|w| w.clone().recipient()).collect();
    let mut alert_sinks = Vec::new();
    let export = exporter.map(ExportService::start);
    if let Some(export) = &export {
        sinks.push(export.addr.clone().recipient());
        alert_sinks.push(export.addr.clone().recipient());
    }
    let (store, stored_devices) = match store {
        Some(s) => (Some(StoreService::start(s.actor)), Some(s.devices)),
        None => (None, None),
    };
    let pipeline_config = PipelineConfig {
        // The whole capture's applications, not a live window's.
        usage_window_secs: None,
        store_intake: store.as_ref().map(|s| s.intake.clone()),
        ..config.pipeline()
    };
    if let Some(intel) = &pipeline_config.intel {
        crate::intel::refresh::load_once(intel, config.intel.clone());
    }
    let notifier =
        crate::notify::actor::Notifier::start(&config.notify, config.server.public_url.clone())
            .map_err(AnalyzeError::Notify)?;
    let notify_actor = notifier.clone().map(|n| {
        crate::notify::actor::NotifyActor::new(Some(n))
            .with_devices(pipeline_config.devices.clone())
            .start()
    });
    if let Some(actor) = &notify_actor {
        alert_sinks.push(actor.clone().recipient());
    }
    let book = pipeline_config.devices.clone();
    if let (Some(book), Some((devices, state))) = (&book, stored_devices) {
        book.lock().inventory.restore(devices, state);
    }
    let device_sinks = export.iter().map(|e| e.addr.clone().recipient()).collect();
    let pipeline = Pipeline::start(
        &pipeline_config,
        sinks,
        store.as_ref().map(|s| s.addr.clone()),
        alert_sinks,
        device_sinks,
    );
    let counters = Arc::new(CaptureCounters::default());
    let ticker = progress_since.map(|since| spawn_progress(Arc::clone(&counters), since));
    let mut reports = Vec::new();
    for input in inputs {
        let (source, stop) = match input {
            Reading::Live(source, duration) => (
                source,
                StopWhen {
                    deadline: Some(Instant::now() + duration),
                    ..Default::default()
                },
            ),
            Reading::File(path) => match FileSource::open(&path) {
                Ok(source) => (
                    Box::new(source) as Box<dyn PacketSource>,
                    StopWhen::default(),
                ),
                Err(e) => {
                    reports.push(Err(e));
                    continue;
                }
            },
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        capture::spawn(
            "tapir-capture".into(),
            source,
            pipeline.batch_sinks(),
            BatchConfig {
                decode: config.decode.clone(),
                hello_streams: config.privacy.names.then_some(config.names.hello_streams),
                lan_facts: book.is_some(),
                ..BatchConfig::from(&config.capture)
            },
            stop,
            Arc::clone(&counters),
            move |_, report| {
                let _ = tx.send(report);
            },
        )
        .map_err(|e| AnalyzeError::Actors(format!("cannot start a capture thread: {e}")))?;
        reports.push(Ok(rx
            .await
            .map_err(|e| AnalyzeError::Actors(e.to_string()))?));
    }
    if let Some((stop, handle)) = ticker {
        stop.store(true, Ordering::Relaxed);
        let _ = handle.join();
    }
    let drained = crate::pipeline::drain(
        &pipeline.flows,
        &pipeline.detectors,
        pipeline.devices.as_ref(),
        &pipeline.metrics,
        pipeline.store.as_ref(),
    )
    .await
    .map_err(actors)?;
    let mut stats = pipeline
        .metrics
        .send(GetStats { top_talkers })
        .await
        .map_err(actors)?;
    name_talkers(&pipeline.flows, &mut stats.top_talkers)
        .await
        .map_err(actors)?;
    let alerts = pipeline
        .alerts
        .send(GetAlerts(None))
        .await
        .map_err(actors)?;
    let alert_stats = pipeline.alerts.send(GetAlertStats).await.map_err(actors)?;
    let usage = pipeline.flows.send(GetUsage).await.map_err(actors)?;
    let devices = book.map(|book| {
        let book = book.lock();
        let mut devices: Vec<&Device> = book.inventory.devices().collect();
        devices.sort_by_key(|d| std::cmp::Reverse(d.bytes_sent + d.bytes_received));
        let moment = crate::devices::view::Moment {
            learning_ends: None,
            now: devices.iter().map(|d| d.last_seen).fold(0.0, f64::max),
        };
        let list = devices
            .iter()
            .map(|d| crate::devices::view::device_json(d, &[d.mac], &moment))
            .collect();
        (list, book.rules.stats)
    });
    let written = match &writer {
        Some(w) => Some(w.send(FlushOutput).await.map_err(actors)?),
        None => None,
    };
    if let Some(export) = export {
        export.stop().await.map_err(actors)?;
    }
    // Every alert has reached the notify actor (the alerts actor answered above); the
    // digests of what is held go out, and the run waits for the messages to be sent or to
    // fail (a target that never answers costs its timeouts and retries, at most two minutes).
    let notify = match (&notify_actor, &notifier) {
        (Some(actor), Some(notifier)) => {
            actor
                .send(crate::notify::actor::FlushNotify)
                .await
                .map_err(actors)?;
            notifier.settle(Duration::from_secs(120)).await;
            Some(notifier.view())
        }
        _ => None,
    };
    let intel = pipeline_config
        .intel
        .as_ref()
        .map(|i| i.status(crate::intel::unix_now()));
    pipeline.stop();
    if let Some(store) = store {
        store.stop();
    }
    Ok(Ran {
        reports,
        drained,
        stats,
        alerts,
        alert_stats,
        written,
        usage,
        devices,
        notify,
        intel,
    })
}

/// What the inputs' capture reports add up to.
#[derive(Default)]
struct ReadTotals {
    packets: u64,
    bytes: u64,
    batches_dropped: u64,
    packets_dropped: u64,
    decode: DecodeCounters,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    libpcap: Option<LibpcapStats>,
    inputs: Vec<InputSummary>,
    /// An input could not be read (cut short is not a failure).
    failed: bool,
}

/// Adds up the capture reports, warning about unsupported link types and read errors.
fn read_reports(
    reports: Vec<Result<CaptureReport, CaptureError>>,
    warn: &mut dyn FnMut(String),
) -> ReadTotals {
    let mut t = ReadTotals::default();
    for report in reports {
        match report {
            Ok(r) => {
                t.packets += r.frames;
                t.bytes += r.bytes;
                t.batches_dropped += r.batches_dropped;
                t.packets_dropped += r.packets_dropped;
                t.decode.add(&r.decode);
                t.first = match (t.first, r.first_ts) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
                t.last = match (t.last, r.last_ts) {
                    (Some(a), Some(b)) => Some(std::cmp::max(a, b)),
                    (a, b) => a.or(b),
                };
                t.libpcap = t.libpcap.or(r.libpcap);
                for link in r.link_types.iter().filter(|l| !l.is_supported()) {
                    warn(format!(
                        "{}: link type {} ({}) is not supported; its frames were counted and skipped. \
                         tapir decodes Ethernet, Linux cooked (SLL/SLL2), raw IP, loopback, PPP and NFLOG captures",
                        r.source,
                        link.0,
                        link.name()
                    ));
                }
                if let Some(e) = &r.error {
                    warn(e.to_string());
                    if !e.is_partial() {
                        t.failed = true;
                    }
                }
                t.inputs.push(InputSummary {
                    source: r.source.clone(),
                    packets: r.frames,
                    link_types: r.link_types.iter().map(|l| link_label(*l)).collect(),
                    error: r.error.as_ref().map(ToString::to_string),
                });
            }
            Err(e) => {
                warn(e.to_string());
                t.failed = true;
                t.inputs.push(InputSummary {
                    source: match &e {
                        CaptureError::Open { path, .. }
                        | CaptureError::NotACapture { path, .. } => {
                            format!("file {}", path.display())
                        }
                        _ => String::new(),
                    },
                    packets: 0,
                    link_types: Vec::new(),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    t
}

/// One JSON line per alert.
fn write_alerts(file: std::fs::File, alerts: &[Alert]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(file);
    for alert in alerts {
        serde_json::to_writer(&mut out, alert)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn link_label(link: LinkType) -> String {
    format!("{} ({})", link.name(), link.0)
}

/// Prints "N packets, X MB, R packets/s" on one refreshed stderr line twice a second.
fn spawn_progress(
    counters: Arc<CaptureCounters>,
    started: Instant,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut shown = false;
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let frames = counters.frames.load(Ordering::Relaxed);
            let bytes = counters.bytes.load(Ordering::Relaxed);
            let rate = frames as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\r{frames} packets, {:.1} MB, {:.0} packets/s   ",
                bytes as f64 / 1e6,
                rate
            );
            shown = true;
        }
        if shown {
            eprint!("\r{:60}\r", "");
        }
    });
    (stop, handle)
}

/// The human-readable summary.
pub fn render_text(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} packets ({:.1} MB) in {:.2} s: {:.0} packets/s, peak memory {:.1} MB",
        s.packets,
        s.bytes as f64 / 1e6,
        s.elapsed_s,
        s.packets_per_sec,
        s.peak_rss_bytes as f64 / 1e6
    );
    let skipped: u64 = s.skipped.values().sum();
    let _ = write!(out, "decoded {}, skipped {}", s.decoded, skipped);
    if skipped > 0 {
        let reasons: Vec<String> = s.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = write!(out, " ({})", reasons.join(", "));
    }
    let _ = writeln!(out);
    if !s.encapsulations.is_empty() {
        let kinds: Vec<String> = s
            .encapsulations
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect();
        let _ = writeln!(out, "encapsulated: {}", kinds.join(", "));
    }
    let _ = writeln!(
        out,
        "flows {} (peak {} at once, {} evicted)",
        s.flows, s.flow_table.peak_active, s.flow_table.evicted
    );
    let protocols: Vec<String> = s
        .protocol_counts
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    let _ = writeln!(out, "protocols: {}", protocols.join(", "));
    if !s.top_talkers.is_empty() {
        let _ = writeln!(out, "top talkers:");
        for t in s.top_talkers.iter().take(5) {
            let line = format!(
                "  {:<40} {:>12} bytes {:>9} packets  {}",
                t.ip.to_string(),
                t.bytes,
                t.packets,
                t.name.as_deref().unwrap_or_default()
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if let Some(apps) = s.apps.as_ref().filter(|a| !a.is_empty()) {
        let _ = writeln!(out, "top applications:");
        for a in apps.iter().take(5) {
            let app = format!(
                "{}{} ({})",
                a.app.as_deref().unwrap_or_default(),
                if a.guessed { "?" } else { "" },
                a.category.as_deref().unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "  {app:<40} {:>12} bytes {:>9} flows {:>5} hosts",
                a.bytes, a.flows, a.hosts
            );
        }
    }
    if let Some(names) = &s.names {
        if !names.top.is_empty() {
            let _ = writeln!(out, "top names:");
            for n in names.top.iter().take(5) {
                let _ = writeln!(
                    out,
                    "  {:<40} {:>12} bytes {:>9} flows",
                    n.name.as_deref().unwrap_or_default(),
                    n.bytes,
                    n.flows
                );
            }
        }
        let flows: u64 = names.named_by.values().map(|v| v.flows).sum();
        if flows > 0 {
            let parts: Vec<String> = names
                .named_by
                .iter()
                .filter(|(k, v)| v.flows > 0 && **k != "unnamed")
                .map(|(k, v)| format!("{k} {}", v.flows))
                .collect();
            let named = flows - names.named_by.get("unnamed").map_or(0, |v| v.flows);
            let _ = writeln!(
                out,
                "named flows: {named} of {flows} ({})",
                if parts.is_empty() {
                    "none".into()
                } else {
                    parts.join(", ")
                }
            );
        }
    }
    if let Some(devices) = s.devices.as_ref().filter(|d| !d.is_empty()) {
        let _ = writeln!(out, "devices: {}", devices.len());
        for d in devices.iter().take(10) {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            let addresses: Vec<&str> = d["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["ip"].as_str())
                .take(2)
                .collect();
            let line = format!(
                "  {}  {:<24} {:<28} {:<30} {:>12} bytes",
                text("mac"),
                text("name"),
                text("vendor").chars().take(28).collect::<String>(),
                addresses.join(" "),
                d["bytes"].as_u64().unwrap_or(0),
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if s.alerts.is_empty() {
        let _ = writeln!(out, "alerts: none");
    } else {
        let _ = writeln!(out, "alerts: {}", s.alerts.len());
        for a in &s.alerts {
            let _ = writeln!(
                out,
                "  {:<8} {:<13} {}",
                format!("{:?}", a.severity).to_lowercase(),
                a.alert_type.name(),
                a.description
            );
        }
    }
    if let Some(l) = &s.libpcap {
        let _ = writeln!(
            out,
            "libpcap: received {}, dropped {}, interface dropped {}",
            l.received, l.dropped, l.if_dropped
        );
    }
    if let Some(st) = &s.store {
        let _ = writeln!(
            out,
            "stored: {} flows, {} alerts, {} minute snapshots{}",
            st.flows_written,
            st.alerts_written,
            st.snapshots_written,
            st.database.as_ref().map_or(String::new(), |d| format!(
                " in {} ({:.1} MB on disk)",
                d.path.display(),
                d.size_on_disk as f64 / 1e6
            ))
        );
    }
    if s.batches_dropped > 0 {
        let _ = writeln!(
            out,
            "consumers fell behind: {} batches ({} packets) dropped",
            s.batches_dropped, s.packets_dropped
        );
    }
    out
}
