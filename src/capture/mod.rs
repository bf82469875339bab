//! Capture: read frames from a source (file, interface, synthetic scenario), decode them and
//! hand `Arc`ed batches to every consumer.
//!
//! Capture runs on its own thread because libpcap and file reads block. The batches in flight
//! are bounded by credits (see `crate::credit`). Reading a file waits for a credit (nothing is lost,
//! results are deterministic); live capture never waits: a batch without a credit is dropped
//! and counted, as a full capture ring would drop it.

pub mod file;
pub mod live;
pub mod paced;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::Recipient;
use serde::{Deserialize, Serialize};

pub use crate::credit::{Credit, Credits};

use crate::decode::{DecodeConfig, DecodeCounters, Decoder, SkipReason};
use crate::messages::PacketBatchMsg;
use crate::packet::{Encapsulation, PacketBatch, Timestamp};
use crate::wire::link::LinkType;

/// One captured frame, borrowed from the source.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub wire_len: u32,
    pub link: LinkType,
    pub data: &'a [u8],
}

/// What one `read_some` call produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadStatus {
    pub frames: usize,
    /// The source has no more frames.
    pub end: bool,
}

/// libpcap's own counters for a live capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LibpcapStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// Anything frames can be read from.
pub trait PacketSource: Send {
    /// Reads up to `max` frames, passing each to `sink`. Returns early (with fewer frames)
    /// when a live source has been idle for its timeout.
    fn read_some(
        &mut self,
        max: usize,
        sink: &mut dyn FnMut(Frame<'_>),
    ) -> Result<ReadStatus, CaptureError>;
    /// For messages: "file x.pcap", "interface eth0".
    fn describe(&self) -> String;
    /// Link types seen so far.
    fn link_types(&self) -> Vec<LinkType>;
    fn libpcap_stats(&mut self) -> Option<LibpcapStats> {
        None
    }
    /// Live sources drop batches rather than wait for consumers.
    fn is_live(&self) -> bool {
        false
    }
    /// Reading resumes after a pause (paced sources restart their clock here).
    fn resume_after_pause(&mut self) {}
    /// Send a batch once it is `max_age` old, full or not (live and paced sources).
    fn batch_by_age(&self) -> bool {
        self.is_live()
    }
}

/// Why capture could not start or stopped early. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {source}; check the path and that you may read it")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a capture file: {detail}; tapir reads pcap and pcapng (optionally zstd-compressed)"
    )]
    NotACapture { path: PathBuf, detail: String },
    #[error(
        "{path} is cut short: it ends in the middle of a record after {after_frames} frames; those frames were analysed"
    )]
    CutShort { path: PathBuf, after_frames: u64 },
    #[error(
        "{path} is corrupt after {after_frames} frames: {detail}; the frames before it were analysed"
    )]
    Corrupt {
        path: PathBuf,
        after_frames: u64,
        detail: String,
    },
    #[error("reading {path} failed after {after_frames} frames; check the disk")]
    Read { path: PathBuf, after_frames: u64 },
    #[error("interface {iface} does not exist; available: {available}")]
    NoSuchInterface { iface: String, available: String },
    #[error(
        "capturing on {iface} needs privileges: run as root, or grant them once with `sudo setcap cap_net_raw,cap_net_admin=eip $(command -v tapir)`"
    )]
    NeedsPrivilege { iface: String },
    #[error("invalid capture filter {expr:?}: {detail}; see `man pcap-filter`")]
    BadFilter { expr: String, detail: String },
    #[error("live capture on {iface} failed: {detail}")]
    Live { iface: String, detail: String },
}

impl CaptureError {
    /// Whether frames read before the error are meaningful (the file was partly read).
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            CaptureError::CutShort { .. }
                | CaptureError::Corrupt { .. }
                | CaptureError::Read { .. }
        )
    }
}

/// Batching knobs, and how the frames of a batch are decoded.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Packets per batch.
    pub packets: usize,
    /// A live batch is sent when it is this old even if not full.
    pub max_age: Duration,
    /// Batches in flight between capture and the last actor to read them.
    pub in_flight: usize,
    pub decode: DecodeConfig,
    /// Read TLS ClientHellos and HTTP request heads, waiting for at most this many split
    /// ones (None: names off).
    pub hello_streams: Option<usize>,
    /// Read the segment's facts for the device inventory (ARP, NDP, DHCP, local names).
    pub lan_facts: bool,
}

/// Capture settings (the `[capture]` section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interface for live capture.
    pub iface: Option<String>,
    /// BPF filter for live capture.
    pub bpf: Option<String>,
    pub promiscuous: bool,
    pub snaplen: i32,
    /// libpcap's kernel buffer, in MiB.
    pub buffer_mb: i32,
    /// Packets per batch handed to the consumers.
    pub batch_packets: usize,
    /// A live batch is sent once this old, full or not.
    pub batch_max_age_ms: u64,
    /// Batches in flight between capture and the last actor to read them, all actors
    /// together; beyond that capture waits (files) or drops batches (live).
    pub queue_batches: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            iface: None,
            bpf: None,
            promiscuous: true,
            snaplen: 262_144,
            buffer_mb: 32,
            batch_packets: 256,
            batch_max_age_ms: 5,
            queue_batches: 64,
        }
    }
}

impl From<&CaptureConfig> for BatchConfig {
    fn from(c: &CaptureConfig) -> Self {
        BatchConfig {
            packets: c.batch_packets,
            max_age: Duration::from_millis(c.batch_max_age_ms),
            in_flight: c.queue_batches,
            decode: DecodeConfig::default(),
            hello_streams: None,
            lan_facts: false,
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            packets: 256,
            max_age: Duration::from_millis(5),
            in_flight: 64,
            decode: DecodeConfig::default(),
            hello_streams: None,
            lan_facts: false,
        }
    }
}

/// Counters that the capture thread publishes for `/debug`, progress lines and summaries.
/// Updated once per batch, read from any thread.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub decoded: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_dropped: AtomicU64,
    pub packets_dropped: AtomicU64,
    /// libpcap's own counters (live capture), refreshed about once a second.
    pub libpcap_received: AtomicU64,
    pub libpcap_dropped: AtomicU64,
    pub libpcap_if_dropped: AtomicU64,
    /// Frames skipped, by `SkipReason` index.
    pub skipped: [AtomicU64; SkipReason::ALL.len()],
    /// Decoded packets by `Encapsulation` index.
    pub encapsulated: [AtomicU64; Encapsulation::ALL.len()],
    /// QUIC Initials left unread because the second's decryption budget was spent.
    pub quic_over_budget: AtomicU64,
}

impl CaptureCounters {
    /// Publishes the decoder's running counts.
    fn publish_decode(&self, d: &DecodeCounters) {
        self.decoded.store(d.decoded, Ordering::Relaxed);
        for (a, n) in self.skipped.iter().zip(d.skipped) {
            a.store(n, Ordering::Relaxed);
        }
        for (a, n) in self.encapsulated.iter().zip(d.encapsulated) {
            a.store(n, Ordering::Relaxed);
        }
        self.quic_over_budget
            .store(d.quic_over_budget, Ordering::Relaxed);
    }

    /// Non-zero skip counts by reason name.
    pub fn skipped_by_reason(&self) -> BTreeMap<&'static str, u64> {
        SkipReason::ALL
            .iter()
            .zip(&self.skipped)
            .map(|(r, a)| (r.name(), a.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Non-zero packet counts by encapsulation name.
    pub fn by_encapsulation(&self) -> BTreeMap<&'static str, u64> {
        Encapsulation::ALL
            .iter()
            .zip(&self.encapsulated)
            .map(|(e, a)| (e.name(), a.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Batches sent that a consumer which has taken in `taken` of them has not seen yet
    /// (approximate: drops are counted over all consumers).
    pub fn backlog(&self, taken: u64) -> u64 {
        let sent = self.batches_sent.load(Ordering::Relaxed);
        let dropped = self.batches_dropped.load(Ordering::Relaxed);
        sent.saturating_sub(dropped).saturating_sub(taken)
    }

    fn set_libpcap(&self, stats: LibpcapStats) {
        self.libpcap_received
            .store(stats.received, Ordering::Relaxed);
        self.libpcap_dropped.store(stats.dropped, Ordering::Relaxed);
        self.libpcap_if_dropped
            .store(stats.if_dropped, Ordering::Relaxed);
    }
}

/// What a finished capture run saw.
#[derive(Debug, Default)]
pub struct CaptureReport {
    pub source: String,
    pub frames: u64,
    pub bytes: u64,
    pub decode: DecodeCounters,
    pub batches_sent: u64,
    /// Live batches (and their packets) the pipeline had no room for.
    pub batches_dropped: u64,
    pub packets_dropped: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    pub link_types: Vec<LinkType>,
    pub libpcap: Option<LibpcapStats>,
    pub error: Option<CaptureError>,
}

/// When to stop a capture that would otherwise run on.
#[derive(Clone, Debug, Default)]
pub struct StopWhen {
    pub flag: Option<Arc<AtomicBool>>,
    pub deadline: Option<Instant>,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
}

impl StopWhen {
    fn reached(&self, frames: u64) -> bool {
        self.interrupted() || self.max_frames.is_some_and(|m| frames >= m)
    }

    /// A stop request or the deadline: what may end a wait for room.
    fn interrupted(&self) -> bool {
        self.flag
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Reads `source` to its end (or until `stop`), decoding into batches sent to every sink.
/// Reads `source` with `run` on a thread of its own (named `name`), then hands the source
/// back with its report to `done` (on that thread). Every capture thread starts here.
pub fn spawn(
    name: String,
    mut source: Box<dyn PacketSource>,
    sinks: Vec<Recipient<PacketBatchMsg>>,
    config: BatchConfig,
    stop: StopWhen,
    counters: Arc<CaptureCounters>,
    done: impl FnOnce(Box<dyn PacketSource>, CaptureReport) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(move || {
        let report = run(source.as_mut(), &sinks, config, &stop, &counters);
        done(source, report);
    })?;
    Ok(())
}

pub fn run(
    source: &mut dyn PacketSource,
    sinks: &[Recipient<PacketBatchMsg>],
    config: BatchConfig,
    stop: &StopWhen,
    counters: &CaptureCounters,
) -> CaptureReport {
    let live = source.is_live();
    let by_age = source.batch_by_age();
    let mut decoder = Decoder::with_config(config.decode.clone());
    if let Some(streams) = config.hello_streams {
        decoder = decoder.with_openings(streams);
    }
    if config.lan_facts {
        decoder = decoder.with_lan_facts();
    }
    let credits = Credits::new(config.in_flight);
    let mut report = CaptureReport {
        source: source.describe(),
        ..Default::default()
    };
    let mut batch = PacketBatch::with_capacity(config.packets);
    let mut batch_started = Instant::now();
    let mut pending_bytes = 0u64;
    let mut stats_due = Instant::now();
    loop {
        if stop.reached(report.frames) {
            break;
        }
        let want = match stop.max_frames {
            Some(m) => (m - report.frames).min((config.packets - batch.len()) as u64) as usize,
            None => config.packets - batch.len(),
        };
        let status = {
            let frames = &mut report.frames;
            let bytes = &mut pending_bytes;
            let first = &mut report.first_ts;
            let last = &mut report.last_ts;
            source.read_some(want.max(1), &mut |frame| {
                *frames += 1;
                *bytes += u64::from(frame.wire_len);
                first.get_or_insert(frame.ts);
                *last = Some(frame.ts);
                // The alert-latency clock starts when a batch gets its first frame.
                batch.started.get_or_insert_with(Instant::now);
                let _ = decoder.decode_into(
                    frame.link,
                    frame.ts,
                    frame.wire_len,
                    frame.data,
                    &mut batch,
                );
            })
        };
        let done = match status {
            Ok(s) => s.end,
            Err(e) => {
                report.error = Some(e);
                true
            }
        };
        let full = batch.len() >= config.packets;
        let stale = by_age && !batch.is_empty() && batch_started.elapsed() >= config.max_age;
        if full || stale || done {
            if !batch.is_empty() {
                let ready =
                    std::mem::replace(&mut batch, PacketBatch::with_capacity(config.packets));
                deliver(ready, sinks, &credits, live, stop, &mut report);
            }
            batch_started = Instant::now();
            counters.frames.store(report.frames, Ordering::Relaxed);
            counters.bytes.fetch_add(pending_bytes, Ordering::Relaxed);
            counters.publish_decode(&decoder.counters);
            counters
                .batches_sent
                .store(report.batches_sent, Ordering::Relaxed);
            counters
                .batches_dropped
                .store(report.batches_dropped, Ordering::Relaxed);
            counters
                .packets_dropped
                .store(report.packets_dropped, Ordering::Relaxed);
            report.bytes += pending_bytes;
            pending_bytes = 0;
            if live && Instant::now() >= stats_due {
                stats_due = Instant::now() + Duration::from_secs(1);
                if let Some(stats) = source.libpcap_stats() {
                    counters.set_libpcap(stats);
                }
            }
        }
        if done {
            break;
        }
    }
    if !batch.is_empty() {
        deliver(batch, sinks, &credits, live, stop, &mut report);
    }
    report.bytes += pending_bytes;
    counters.frames.store(report.frames, Ordering::Relaxed);
    counters.publish_decode(&decoder.counters);
    report.decode = decoder.counters;
    report.link_types = source.link_types();
    report.libpcap = source.libpcap_stats();
    if let Some(stats) = report.libpcap {
        counters.set_libpcap(stats);
    }
    report
}

/// Sends one batch to every sink once it has a credit: waiting for one when reading a file,
/// dropping and counting the batch when live (or when a stop request ends the wait).
fn deliver(
    mut batch: PacketBatch,
    sinks: &[Recipient<PacketBatchMsg>],
    credits: &Credits,
    live: bool,
    stop: &StopWhen,
    report: &mut CaptureReport,
) {
    let packets = batch.len() as u64;
    let credit = if live {
        credits.try_take()
    } else {
        credits.take(|| stop.interrupted())
    };
    let Some(credit) = credit else {
        report.batches_dropped += 1;
        report.packets_dropped += packets;
        return;
    };
    batch.credit = Some(credit);
    let shared = Arc::new(batch);
    for sink in sinks {
        // Credits bound every mailbox a batch can sit in, so this queues without limit.
        sink.do_send(PacketBatchMsg(Arc::clone(&shared)));
    }
    report.batches_sent += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketMeta;

    fn batch(packets: usize) -> PacketBatch {
        PacketBatch {
            packets: vec![PacketMeta::blank(Timestamp(0), 60); packets],
            ..Default::default()
        }
    }

    #[test]
    fn a_live_batch_without_a_credit_is_dropped_and_counted() {
        let credits = Credits::new(1);
        let in_flight = credits.try_take().unwrap();
        let mut report = CaptureReport::default();
        let stop = StopWhen::default();
        deliver(batch(3), &[], &credits, true, &stop, &mut report);
        assert_eq!(
            (
                report.batches_sent,
                report.batches_dropped,
                report.packets_dropped
            ),
            (0, 1, 3)
        );
        drop(in_flight);
        deliver(batch(2), &[], &credits, true, &stop, &mut report);
        assert_eq!((report.batches_sent, report.batches_dropped), (1, 1));
        assert_eq!(
            credits.free(),
            1,
            "a batch no actor holds gives its credit back"
        );
    }

    #[test]
    fn a_file_batch_waits_for_a_credit_unless_capture_is_stopped() {
        let credits = Credits::new(1);
        let in_flight = credits.try_take().unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(in_flight);
        });
        let mut report = CaptureReport::default();
        deliver(
            batch(4),
            &[],
            &credits,
            false,
            &StopWhen::default(),
            &mut report,
        );
        releaser.join().unwrap();
        assert_eq!((report.batches_sent, report.batches_dropped), (1, 0));

        let _held = credits.try_take().unwrap();
        let stop = StopWhen {
            flag: Some(Arc::new(AtomicBool::new(true))),
            ..Default::default()
        };
        deliver(batch(4), &[], &credits, false, &stop, &mut report);
        assert_eq!((report.batches_sent, report.batches_dropped), (1, 1));
    }
}
