//! CPU cost of each pipeline stage, in nanoseconds per packet, on captures decoded once up
//! front: reading+decoding (without and with names: ClientHellos, QUIC Initials, HTTP
//! request heads), the flow table (without and with names: passive DNS, naming, the
//! application catalogue), metrics, and each detector on its own. The
//! whole-process figures (benches/throughput.sh) say how fast `analyze` is; this says where
//! the time goes. Figures, not a pass/fail test.
//!
//!   cargo bench --bench stages -- FILE...    # default: the two core benchmark inputs

use std::path::{Path, PathBuf};
use std::time::Instant;

use tapir::capture::PacketSource;
use tapir::capture::file::FileSource;
use tapir::decode::Decoder;
use tapir::detect::{DetectorsConfig, Finding};
use tapir::flow::{FlowConfig, FlowTable};
use tapir::metrics::{MetricsAggregator, MetricsConfig};
use tapir::names::apps::Catalogue;
use tapir::names::usage::Usage;
use tapir::names::{NamesConfig, PassiveDns};
use tapir::packet::PacketBatch;

const BATCH: usize = 256;
const ROUNDS: usize = 5;

fn main() {
    let mut files: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        let work = std::env::temp_dir().join("tapir-bench");
        files = vec![work.join("bench_x10.pcap"), work.join("synflood_x20.pcap")];
        if files.iter().any(|f| !f.exists()) {
            eprintln!("run benches/throughput.sh once to build {work:?}, or name files");
            std::process::exit(2);
        }
    }
    for file in &files {
        bench_file(file);
    }
}

fn bench_file(path: &Path) {
    let started = Instant::now();
    let batches = read(path, false);
    let read_ns = started.elapsed().as_nanos() as f64;
    let packets: usize = batches.iter().map(|b| b.packets.len()).sum();
    println!("{} — {packets} packets", path.display());
    let per = |ns: f64| ns / packets as f64;
    println!("  {:<16} {:>8.1} ns/packet", "read+decode", per(read_ns));
    // Both timed alike (each run's batches dropped inside it), alternating.
    let (mut named_read, mut plain_read) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..ROUNDS {
        named_read = named_read.min(best_once(|| drop(read(path, true))));
        plain_read = plain_read.min(best_once(|| drop(read(path, false))));
    }
    println!(
        "  {:<16} {:>8.1} ns/packet  (names on; off: {:.1})",
        "read+decode",
        per(named_read),
        per(plain_read)
    );
    let named = read(path, true);
    let naming = NamesConfig::default();
    let catalogue = std::sync::Arc::new(Catalogue::builtin());
    let named_table = || {
        FlowTable::new(FlowConfig::default()).with_names(
            PassiveDns::new(naming.passive_dns_entries),
            std::sync::Arc::clone(&catalogue),
        )
    };
    let named_flows = best(|| {
        let mut table = named_table();
        let (mut out, mut marks) = (Vec::new(), Vec::new());
        for b in &named {
            table.ingest_marked(b, &mut out, &mut marks);
            out.clear();
        }
        table.flush_all(&mut out);
    });
    // The records the flows actor tallies (kept outside the timed runs).
    let mut named_records = Vec::new();
    {
        let mut table = named_table();
        let (mut out, mut marks) = (Vec::new(), Vec::new());
        for b in &named {
            table.ingest_marked(b, &mut out, &mut marks);
            named_records.append(&mut out);
        }
        table.flush_all(&mut out);
        named_records.append(&mut out);
    }
    let plain_flows = best(|| {
        let mut table = FlowTable::new(FlowConfig::default());
        let (mut out, mut marks) = (Vec::new(), Vec::new());
        for b in &batches {
            table.ingest_marked(b, &mut out, &mut marks);
            out.clear();
        }
        table.flush_all(&mut out);
    });
    println!(
        "  {:<16} {:>8.1} ns/packet  (names on, records labelled; off: {:.1}, both with every record made)",
        "flow table",
        per(named_flows),
        per(plain_flows)
    );
    let usage = best(|| {
        let mut usage = Usage::new(Some(300));
        for r in &named_records {
            usage.record(r);
        }
    });
    println!(
        "  {:<16} {:>8.1} ns/packet  ({} records)",
        "app tallies",
        per(usage),
        named_records.len()
    );
    let flows = best(|| {
        let mut table = FlowTable::new(FlowConfig::default());
        let (mut out, mut marks) = (Vec::new(), Vec::new());
        for b in &batches {
            table.ingest_marked(b, &mut out, &mut marks);
            out.clear();
        }
    });
    println!("  {:<16} {:>8.1} ns/packet", "flow table", per(flows));
    let metrics = best(|| {
        let mut m = MetricsAggregator::new(MetricsConfig::default());
        for b in &batches {
            m.ingest(b);
        }
    });
    println!("  {:<16} {:>8.1} ns/packet", "metrics", per(metrics));

    // What the flows actor hands on: each batch's marks, and the flow records for the
    // detectors that judge connections.
    let (mut records, mut marks) = (Vec::new(), Vec::new());
    {
        let mut table = FlowTable::new(FlowConfig::default());
        let (mut out, mut m) = (Vec::new(), Vec::new());
        for b in &batches {
            table.ingest_marked(b, &mut out, &mut m);
            records.push(std::mem::take(&mut out));
            marks.push(std::mem::take(&mut m));
        }
    }
    let config = DetectorsConfig::default();
    let mut total = 0.0;
    for i in 0..tapir::detect::build(&config, 0).len() {
        let mut findings = 0;
        let mut name = "";
        let ns = best(|| {
            let mut detector = tapir::detect::build(&config, 0).swap_remove(i);
            name = detector.rule().name();
            let mut out: Vec<Finding> = Vec::new();
            for ((b, r), m) in batches.iter().zip(&records).zip(&marks) {
                if detector.wants_packets() {
                    detector.on_packets(b, m, &mut out);
                }
                if detector.wants_flows() && !r.is_empty() {
                    detector.on_flows(r, &mut out);
                }
            }
            detector.flush(&mut out);
            findings = out.len();
        });
        total += ns;
        println!(
            "  {name:<16} {:>8.1} ns/packet  ({findings} findings)",
            per(ns)
        );
    }
    println!("  {:<16} {:>8.1} ns/packet", "all detectors", per(total));
    println!(
        "  {:<16} {:>8.1} ns/packet",
        "core (flows+metrics)",
        per(flows + metrics)
    );
}

/// Every packet of `path`, decoded into batches as capture makes them (with `names`, also
/// the openings of streams and QUIC connections, as with names on).
fn read(path: &Path, names: bool) -> Vec<PacketBatch> {
    let mut source = FileSource::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = Decoder::new();
    if names {
        decoder = decoder.with_openings(NamesConfig::default().hello_streams);
    }
    let mut batches = Vec::new();
    let mut batch = PacketBatch::with_capacity(BATCH);
    loop {
        let status = source
            .read_some(BATCH - batch.packets.len(), &mut |f| {
                let _ = decoder.decode_into(f.link, f.ts, f.wire_len, f.data, &mut batch);
            })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if batch.packets.len() >= BATCH || status.end {
            batches.push(std::mem::replace(
                &mut batch,
                PacketBatch::with_capacity(BATCH),
            ));
        }
        if status.end {
            break;
        }
    }
    batches
}

/// One run of `f`, in nanoseconds.
fn best_once(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64
}

/// The fastest of a few runs of `f`, in nanoseconds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .fold(f64::INFINITY, f64::min)
}
