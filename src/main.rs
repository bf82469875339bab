//! The `tapir` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use tapir::analyze::{self, AnalyzeOptions, Input, Outcome};
use tapir::config::Config;
use tapir::synth::{Generator, Scenario};

/// Network traffic analyzer and security monitor for taps, Raspberry Pis and ARM routers.
#[derive(Parser)]
#[command(name = "tapir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse capture files (or an interface for a while) and print a summary.
    Analyze {
        /// pcap or pcapng files (optionally zstd-compressed), read in order as one stream.
        #[arg(required_unless_present = "iface", conflicts_with = "iface")]
        files: Vec<PathBuf>,
        /// Capture live from this interface instead (needs --duration).
        #[arg(long, requires = "duration")]
        iface: Option<String>,
        /// Seconds to capture live.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// BPF capture filter for live capture (see `man pcap-filter`).
        #[arg(long, value_name = "EXPR")]
        bpf: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Write one JSON line per flow record to this file.
        #[arg(long, value_name = "PATH")]
        flows_out: Option<PathBuf>,
        /// Write one JSON line per alert to this file.
        #[arg(long, value_name = "PATH")]
        alerts_out: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// How many top talkers to report.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Write a synthetic, deterministic capture.
    Gen {
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Number of frames to write.
        #[arg(long, default_value_t = 50_000)]
        packets: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output pcap file.
        #[arg(long, value_name = "FILE.pcap")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze {
            files,
            iface,
            duration,
            bpf,
            json,
            flows_out,
            alerts_out,
            config,
            top,
        } => {
            let mut config = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tapir: {e}");
                    return ExitCode::from(2);
                }
            };
            if bpf.is_some() {
                config.capture.bpf = bpf;
            }
            let input = match iface {
                Some(iface) => {
                    let secs = duration.unwrap_or(0.0);
                    if !(secs > 0.0 && secs.is_finite()) {
                        eprintln!("tapir: --duration must be a positive number of seconds");
                        return ExitCode::from(2);
                    }
                    Input::Live {
                        iface,
                        duration: Duration::from_secs_f64(secs),
                    }
                }
                None => Input::Files(files),
            };
            let options = AnalyzeOptions {
                input,
                config,
                flows_out,
                alerts_out,
                progress: !json,
                top_talkers: top,
            };
            let mut warn = |m: String| eprintln!("tapir: {m}");
            match analyze::run(options, &mut warn) {
                Ok((summary, outcome)) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string(&summary).expect("summary serializes")
                        );
                    } else {
                        print!("{}", analyze::render_text(&summary));
                    }
                    match outcome {
                        Outcome::Complete => ExitCode::SUCCESS,
                        Outcome::Failed => ExitCode::from(1),
                    }
                }
                Err(e) => {
                    eprintln!("tapir: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Gen {
            scenario,
            packets,
            seed,
            out,
        } => match write_scenario(scenario, packets, seed, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tapir: cannot write {}: {e}", out.display());
                ExitCode::from(1)
            }
        },
    }
}

/// Writes `packets` frames of `scenario` as a microsecond pcap through libpcap.
fn write_scenario(
    scenario: Scenario,
    packets: u64,
    seed: u64,
    out: &std::path::Path,
) -> Result<(), pcap::Error> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)?;
    let mut file = dead.savefile(out)?;
    let mut generator = Generator::new(scenario, seed);
    for _ in 0..packets {
        let (ts, data) = generator.next_frame();
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: ts.secs() as libc::time_t,
                tv_usec: (ts.0.rem_euclid(1_000_000_000) / 1000) as libc::suseconds_t,
            },
            caplen: data.len() as u32,
            len: data.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, data));
    }
    file.flush()
}
