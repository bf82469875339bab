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
use crate::alert::{Alert, LatencyStats};
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
use crate::metrics::TopTalker;
use crate::metrics::actor::GetStats;
use crate::output::FlushOutput;
use crate::output::JsonLinesWriter;
use crate::pipeline::{ExportService, Pipeline, StoreService};
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
    pub dns_malformed: u64,
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
}

/// Runs the analysis; warnings (cut-short files, unsupported link types) go to `warn`.
pub fn run(
    options: AnalyzeOptions,
    warn: &mut dyn FnMut(String),
) -> Result<(Summary, Outcome), AnalyzeError> {
    let started = Instant::now();
    // Open live sources up front so that a missing interface is an immediate, clear error.
    let live = match &options.input {
        Input::Live { iface, duration } => {
            let opts = LiveOptions::from_config(&options.config.capture, None);
            Some((LiveSource::open(iface, &opts)?, *duration))
        }
        Input::Files(_) => None,
    };
    let writer = match &options.flows_out {
        Some(path) => {
            Some(
                JsonLinesWriter::create(path).map_err(|source| AnalyzeError::FlowsOut {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    // Create the alerts file up front too, so a bad path fails before the work.
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

    // Open the database up front too: a bad --db-path is an error before any work.
    let store = match &options.config.store.db_path {
        Some(path) => Some(StoreActor::from_store(
            Store::open(path, &options.config.store)?,
            options.config.store.clone(),
        )),
        None => None,
    };

    // Export targets too: a collector name that does not resolve is an error up front.
    let exporter = crate::export::Exporter::open(&options.config.export)?;
    let export_targets = exporter.as_ref().map(|e| e.targets());

    let config = options.config.clone();
    let batch = BatchConfig::from(&config.capture);
    let files = match &options.input {
        Input::Files(files) => files.clone(),
        Input::Live { .. } => Vec::new(),
    };
    let top_n = options.top_talkers;
    let counters = Arc::new(CaptureCounters::default());
    let progress = options.progress && live.is_none() && std::io::stderr().is_terminal();

    let system = actix::System::new();
    let result = system.block_on(async move {
        let writer = writer.map(Actor::start);
        let mut sinks: Vec<_> = writer.iter().map(|w| w.clone().recipient()).collect();
        let mut alert_sinks = Vec::new();
        let export = exporter.map(ExportService::start);
        if let Some(export) = &export {
            sinks.push(export.addr.clone().recipient());
            alert_sinks.push(export.addr.clone().recipient());
        }
        let store = store.map(StoreService::start);
        let pipeline = Pipeline::start(
            &config.pipeline(),
            sinks,
            store.as_ref().map(|s| s.addr.clone()),
            alert_sinks,
        );
        let batch_sinks = pipeline.batch_sinks();
        let thread_counters = Arc::clone(&counters);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("tapir-capture".into())
            .spawn(move || {
                let mut reports: Vec<Result<CaptureReport, CaptureError>> = Vec::new();
                match live {
                    Some((mut source, duration)) => {
                        let stop = StopWhen {
                            deadline: Some(Instant::now() + duration),
                            ..Default::default()
                        };
                        reports.push(Ok(capture::run(
                            &mut source,
                            &batch_sinks,
                            batch,
                            &stop,
                            &thread_counters,
                        )));
                    }
                    None => {
                        for path in files {
                            let report = FileSource::open(&path).map(|mut source| {
                                capture::run(
                                    &mut source as &mut dyn PacketSource,
                                    &batch_sinks,
                                    batch,
                                    &StopWhen::default(),
                                    &thread_counters,
                                )
                            });
                            reports.push(report);
                        }
                    }
                }
                let _ = tx.send(reports);
            })
            .expect("spawning the capture thread");

        let ticker = progress.then(|| spawn_progress(Arc::clone(&counters), started));
        let reports = rx.await.map_err(|e| AnalyzeError::Actors(e.to_string()))?;
        if let Some((stop, handle)) = ticker {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        let drained = crate::pipeline::drain(
            &pipeline.flows,
            &pipeline.detectors,
            &pipeline.metrics,
            pipeline.store.as_ref(),
        )
        .await
        .map_err(|e| AnalyzeError::Actors(e.to_string()))?;
        let (flow_stats, detectors, stored) = (drained.flows, drained.detectors, drained.store);
        let stats = pipeline
            .metrics
            .send(GetStats { top_talkers: top_n })
            .await
            .map_err(|e| AnalyzeError::Actors(e.to_string()))?;
        let alerts = pipeline
            .alerts
            .send(GetAlerts(None))
            .await
            .map_err(|e| AnalyzeError::Actors(e.to_string()))?;
        let alert_stats = pipeline
            .alerts
            .send(GetAlertStats)
            .await
            .map_err(|e| AnalyzeError::Actors(e.to_string()))?;
        let written = match &writer {
            Some(w) => Some(
                w.send(FlushOutput)
                    .await
                    .map_err(|e| AnalyzeError::Actors(e.to_string()))?,
            ),
            None => None,
        };
        if let Some(export) = export {
            export
                .stop()
                .await
                .map_err(|e| AnalyzeError::Actors(e.to_string()))?;
        }
        pipeline.stop();
        if let Some(store) = store {
            store.stop();
        }
        Ok::<_, AnalyzeError>((
            reports,
            flow_stats,
            stats,
            written,
            (alerts, alert_stats, detectors),
            stored,
        ))
    });
    let (reports, flow_stats, stats, written, (alerts, alert_stats, detectors), stored) = result?;
    if let Some(s) = &stored
        && s.pending > 0
    {
        warn(format!(
            "{} records could not be stored: {}",
            s.pending,
            s.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    if let Some((path, file)) = alerts_file {
        write_alerts(file, &alerts).map_err(|source| AnalyzeError::AlertsOut { path, source })?;
    }
    let written = match written {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            warn(format!("writing flow records failed: {e}"));
            None
        }
        None => None,
    };

    let mut outcome = Outcome::Complete;
    let mut decode = DecodeCounters::default();
    let mut inputs = Vec::new();
    let (mut packets, mut bytes, mut dropped_batches, mut dropped_packets) = (0, 0, 0, 0);
    let (mut first, mut last) = (None, None);
    let mut libpcap = None;
    for report in reports {
        match report {
            Ok(r) => {
                packets += r.frames;
                bytes += r.bytes;
                dropped_batches += r.batches_dropped;
                dropped_packets += r.packets_dropped;
                decode.add(&r.decode);
                first = match (first, r.first_ts) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
                last = match (last, r.last_ts) {
                    (Some(a), Some(b)) => Some(std::cmp::max(a, b)),
                    (a, b) => a.or(b),
                };
                libpcap = libpcap.or(r.libpcap);
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
                        outcome = Outcome::Failed;
                    }
                }
                inputs.push(InputSummary {
                    source: r.source.clone(),
                    packets: r.frames,
                    link_types: r.link_types.iter().map(|l| link_label(*l)).collect(),
                    error: r.error.as_ref().map(ToString::to_string),
                });
            }
            Err(e) => {
                warn(e.to_string());
                outcome = Outcome::Failed;
                inputs.push(InputSummary {
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
    if packets > 0 && decode.decoded == 0 {
        outcome = Outcome::Failed;
    }

    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        packets,
        bytes,
        decoded: decode.decoded,
        skipped: decode.skipped_by_reason().collect(),
        dns_malformed: decode.dns_malformed,
        flows: flow_stats.created,
        protocol_counts: stats.protocol_counts,
        top_talkers: stats.top_talkers,
        alerts,
        alert_latency: alert_stats.latency,
        detectors,
        elapsed_s: elapsed,
        packets_per_sec: if elapsed > 0.0 {
            packets as f64 / elapsed
        } else {
            0.0
        },
        peak_rss_bytes: crate::process::peak_rss_bytes(),
        first_seen: first.map(|t| t.as_secs_f64()),
        last_seen: last.map(|t| t.as_secs_f64()),
        flow_table: flow_stats,
        flow_records_written: written,
        batches_dropped: dropped_batches,
        packets_dropped: dropped_packets,
        libpcap,
        inputs,
        store: stored,
        export: export_targets.map(|t| crate::export::snapshot(&t)),
    };
    Ok((summary, outcome))
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
            let _ = writeln!(
                out,
                "  {:<40} {:>12} bytes {:>9} packets",
                t.ip.to_string(),
                t.bytes,
                t.packets
            );
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
