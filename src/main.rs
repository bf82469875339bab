//! The `tapir` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use tapir::analyze::{self, AnalyzeOptions, Input, Outcome};
use tapir::capture::live::LiveOptions;
use tapir::config::Config;
use tapir::engine::BaseSource;
use tapir::serve::ServeOptions;
use tapir::store::{Store, StoreConfig, StoreError, load};
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
        /// Store flows, alerts and minute snapshots in this database directory.
        #[arg(long, env = "DB_PATH", value_name = "DIR")]
        db_path: Option<PathBuf>,
        /// How many top talkers to report.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Inspect, export or benchmark a tapir database.
    Db {
        #[command(subcommand)]
        action: DbAction,
        /// The database directory (default: the configured one, else the state directory).
        #[arg(long, env = "DB_PATH", value_name = "DIR", global = true)]
        db_path: Option<PathBuf>,
        /// TOML configuration file (for `[store]` settings).
        #[arg(long, value_name = "PATH", global = true)]
        config: Option<PathBuf>,
    },
    /// Set a user's password (read from the terminal, or the first line of stdin).
    Passwd {
        /// The account (created if new).
        #[arg(long, default_value = "admin")]
        user: String,
        /// The account's role (default: admin for a new account, else unchanged).
        #[arg(long, value_enum)]
        role: Option<tapir::auth::Role>,
        #[command(flatten)]
        place: CredentialsArgs,
    },
    /// Create, list or revoke API tokens (for scripts and Prometheus).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        place: CredentialsArgs,
    },
    /// Capture live from an interface and serve the API and dashboard.
    Run {
        /// The interface to capture from (e.g. eth0).
        #[arg(long, env = "NET_IFACE")]
        iface: Option<String>,
        /// BPF capture filter (see `man pcap-filter`).
        #[arg(long, value_name = "EXPR")]
        bpf: Option<String>,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Replay a capture file at its recorded pace (or faster) and serve it.
    Replay {
        /// pcap or pcapng file (optionally zstd-compressed).
        file: PathBuf,
        /// Pace: 1 = as recorded, 10 = ten times faster, 0 = as fast as possible.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Start again at the end, shifted forward in time, until stopped.
        #[arg(long = "loop")]
        looping: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Serve a live demo on 127.0.0.1 from synthetic traffic with recurring attacks (no root,
    /// no network interface, a temporary database unless --db-path is given).
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Ask a running server's /healthz on this host (a container's HEALTHCHECK); exit 0 when
    /// it answers 200, 1 otherwise.
    Healthcheck {
        /// The server's port.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
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

/// Options every serving command takes.
#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (default 0.0.0.0; 127.0.0.1 for `demo`).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (default 8000; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Database directory.
    #[arg(long, env = "DB_PATH", value_name = "DIR")]
    db_path: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DbAction {
    /// Print sizes and record counts as JSON.
    Stats,
    /// Write stored records as JSON lines (oldest first) to stdout or a file.
    Export {
        #[arg(long, value_enum, default_value = "flows")]
        kind: ExportKind,
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Read every record and check the IP index; exit 1 if anything is unreadable.
    Check,
    /// Write synthetic flows and alerts the way the appliance does and report the rate,
    /// the size on disk and sled's space amplification.
    Bench {
        /// Flow records to write.
        #[arg(long, default_value_t = 1_000_000)]
        flows: u64,
        /// Flows per batch (one sync per batch).
        #[arg(long, default_value_t = 10_000)]
        batch: u64,
        /// One alert per this many flows (0 = none).
        #[arg(long, default_value_t = 1000)]
        alert_every: u64,
        /// Flows per second to pace the load at (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// Print `flushed N` after every sync.
        #[arg(long)]
        progress: bool,
        /// Spread the flows' packet time over this many days (default: one flow a
        /// millisecond), to fill the history tiers as days of traffic would.
        #[arg(long)]
        span_days: Option<f64>,
    },
}

/// Where the credentials file is: `--auth-file`, else `[auth] file`, else beside the database.
#[derive(clap::Args)]
struct CredentialsArgs {
    #[arg(long, value_name = "PATH", global = true)]
    auth_file: Option<PathBuf>,
    #[arg(long, env = "DB_PATH", value_name = "DIR", global = true)]
    db_path: Option<PathBuf>,
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (it is shown only once).
    Create {
        /// What the token is for (e.g. prometheus).
        name: String,
        #[arg(long, value_enum, default_value = "viewer")]
        role: tapir::auth::Role,
    },
    /// List the tokens (ids, names, roles; never the tokens).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportKind {
    Flows,
    Alerts,
    Snapshots,
}

fn main() -> ExitCode {
    tapir::process::tune_malloc();
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
            db_path,
            top,
        } => {
            let mut config = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tapir: {e}");
                    return ExitCode::from(2);
                }
            };
            if db_path.is_some() {
                config.store.db_path = db_path;
            }
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
                        say(&serde_json::to_string(&summary).expect("summary serializes"));
                    } else {
                        say(analyze::render_text(&summary).trim_end_matches('\n'));
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
        Command::Db {
            action,
            db_path,
            config,
        } => {
            let config = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tapir: {e}");
                    return ExitCode::from(2);
                }
            };
            let path = inspected_db_path(db_path, &config.store);
            match db_command(action, &path, &config.store) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("tapir: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { iface, bpf, serve } => {
            let config = match load_config(serve.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(iface) = iface.or_else(|| config.capture.iface.clone()) else {
                eprintln!(
                    "tapir: no interface to capture from: pass --iface IF, set NET_IFACE, or set [capture] iface in the config (or try `tapir demo`)"
                );
                return ExitCode::from(2);
            };
            let options = LiveOptions::from_config(&config.capture, bpf);
            serve_command(
                "run",
                BaseSource::Live { iface, options },
                config,
                serve,
                None,
            )
        }
        Command::Replay {
            file,
            speed,
            looping,
            serve,
        } => {
            if !(speed.is_finite() && speed >= 0.0) {
                eprintln!("tapir: --speed must be 0 (as fast as possible) or a positive number");
                return ExitCode::from(2);
            }
            let config = match load_config(serve.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let base = BaseSource::File {
                path: file,
                speed,
                looping,
            };
            serve_command("replay", base, config, serve, None)
        }
        Command::Demo { serve, seed } => {
            let config = match load_config(serve.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            serve_command(
                "demo",
                BaseSource::Demo { seed },
                config,
                serve,
                Some("127.0.0.1"),
            )
        }
        Command::Passwd { user, role, place } => match open_auth(&place) {
            Ok(mut auth) => {
                let password = match read_new_password(&user) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("tapir: {e}");
                        return ExitCode::from(2);
                    }
                };
                match auth.set_password(&user, &password, role, None) {
                    Ok(()) => {
                        eprintln!(
                            "tapir: password of {user} set in {} (a running tapir picks it up within seconds)",
                            auth.path().display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("tapir: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            Err(code) => code,
        },
        Command::Token { action, place } => match open_auth(&place) {
            Ok(mut auth) => token_command(&mut auth, action),
            Err(code) => code,
        },
        Command::Healthcheck { port, timeout } => {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            match tapir::healthcheck::probe(addr, std::time::Duration::from_secs(timeout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tapir: {addr}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Gen {
            scenario,
            packets,
            seed,
            out,
        } => match tapir::synth::write_pcap(&mut Generator::new(scenario, seed), packets, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tapir: cannot write {}: {e}", out.display());
                ExitCode::from(1)
            }
        },
    }
}

/// The database an inspecting command (`db`, `passwd`, `token`) means: `--db-path` (or
/// DB_PATH), else the config's, else the service's: `$STATE_DIRECTORY/db`, or on an installed
/// appliance (no STATE_DIRECTORY, but the package's /var/lib/tapir) `/var/lib/tapir/db`, so
/// that `sudo tapir db stats` reads the service's database; else `./tapir-data`.
fn inspected_db_path(given: Option<PathBuf>, config: &StoreConfig) -> PathBuf {
    const PACKAGED_STATE: &str = "/var/lib/tapir";
    let packaged = std::env::var_os("STATE_DIRECTORY").is_none()
        && std::path::Path::new(PACKAGED_STATE).is_dir();
    given
        .or_else(|| config.db_path.clone())
        .or_else(|| packaged.then(|| PathBuf::from(PACKAGED_STATE).join("db")))
        .unwrap_or_else(StoreConfig::default_db_path)
}

/// Opens the credentials file the server would use. On an installed appliance (the package's
/// config and state directory exist) that is the service's, so `sudo tapir passwd` just works.
fn open_auth(place: &CredentialsArgs) -> Result<tapir::auth::Auth, ExitCode> {
    const PACKAGED_CONFIG: &str = "/etc/tapir/tapir.toml";
    let config_path = place.config.clone().or_else(|| {
        Some(PathBuf::from(PACKAGED_CONFIG)).filter(|p| p.is_file() && place.db_path.is_none())
    });
    let config = load_config(config_path.as_deref())?;
    let path = match &place.auth_file {
        Some(p) => p.clone(),
        None => config
            .auth
            .file_for(&inspected_db_path(place.db_path.clone(), &config.store)),
    };
    tapir::auth::Auth::open(config.auth, path).map_err(|e| {
        eprintln!("tapir: {e}");
        ExitCode::from(1)
    })
}

/// A new password: asked twice on a terminal, else the first line of stdin.
fn read_new_password(user: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {user}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the passwords differ; nothing was changed".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn token_command(auth: &mut tapir::auth::Auth, action: TokenAction) -> ExitCode {
    match action {
        TokenAction::Create { name, role } => match auth.create_token(&name, role) {
            Ok((record, token)) => {
                eprintln!(
                    "tapir: token {} ({}, {}) created; it is shown only this once:",
                    record.id,
                    record.name,
                    record.role.name()
                );
                say(&token);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tapir: {e}");
                ExitCode::from(1)
            }
        },
        TokenAction::List => {
            for t in &auth.credentials().tokens {
                say(&format!(
                    "{}\t{}\t{}\t{}",
                    t.id,
                    t.role.name(),
                    t.created,
                    t.name
                ));
            }
            ExitCode::SUCCESS
        }
        TokenAction::Revoke { id } => match auth.revoke_token(&id) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("tapir: there is no token {id} (see `tapir token list`)");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("tapir: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("tapir: {e}");
        ExitCode::from(2)
    })
}

/// Runs the server until SIGTERM/SIGINT.
fn serve_command(
    mode: &'static str,
    base: BaseSource,
    mut config: Config,
    args: ServeArgs,
    default_host: Option<&str>,
) -> ExitCode {
    match (args.host, default_host) {
        (Some(h), _) => config.server.host = h,
        (None, Some(h)) => config.server.host = h.into(),
        (None, None) => {}
    }
    if let Some(p) = args.port {
        config.server.port = p;
    }
    // The demo keeps its database in a temporary directory unless told otherwise.
    let mut scratch = None;
    let db_path = match args.db_path.or_else(|| config.store.db_path.clone()) {
        Some(p) => p,
        None if mode == "demo" => match tempfile::Builder::new().prefix("tapir-demo-").tempdir() {
            Ok(dir) => scratch.insert(dir).path().join("db"),
            Err(e) => {
                eprintln!("tapir: cannot create a temporary database: {e}");
                return ExitCode::from(1);
            }
        },
        None => StoreConfig::default_db_path(),
    };
    let options = ServeOptions {
        mode,
        base,
        config,
        db_path: db_path.clone(),
    };
    let ready = |addr: std::net::SocketAddr, tls: bool| {
        let scheme = if tls { "https" } else { "http" };
        let shown = if addr.ip().is_unspecified() {
            format!("{scheme}://<this host's address>:{}", addr.port())
        } else {
            format!("{scheme}://{addr}")
        };
        say(&format!(
            "tapir {mode}: serving on {shown} (database {})",
            db_path.display()
        ));
    };
    let result = tapir::serve::run(options, ready);
    drop(scratch);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapir: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `line` and a newline to stdout. A reader that has gone away (`tapir … | head`)
/// is not an error: the command finishes its work and ends as it would have, quietly, where
/// `println!` would panic.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Runs one `tapir db` action on the database at `path`.
fn db_command(
    action: DbAction,
    path: &std::path::Path,
    config: &StoreConfig,
) -> Result<ExitCode, StoreError> {
    use std::io::Write;
    // Inspecting must not create a database where there was none.
    if !matches!(action, DbAction::Bench { .. }) && !path.exists() {
        return Err(StoreError::Unavailable(format!(
            "there is no database at {} (give --db-path or set DB_PATH)",
            path.display()
        )));
    }
    let mut store = Store::open(path, config)?;
    match action {
        DbAction::Stats => {
            say(&serde_json::to_string_pretty(&store.stats()).expect("stats serialize"));
        }
        DbAction::Export { kind, out } => {
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let written = match kind {
                ExportKind::Flows => store.export_flows(&mut sink),
                ExportKind::Alerts => store.export_alerts(&mut sink),
                ExportKind::Snapshots => store.snapshots(None, None, usize::MAX).and_then(|all| {
                    for s in &all {
                        serde_json::to_writer(&mut sink, s).map_err(std::io::Error::from)?;
                        sink.write_all(b"\n")?;
                    }
                    Ok(all.len() as u64)
                }),
            }
            .and_then(|n| Ok(sink.flush().map(|()| n)?));
            let n = match written {
                // The reader went away (`tapir db export | head`): done, quietly, as other
                // command-line tools end.
                Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    drop(sink);
                    return Ok(ExitCode::SUCCESS);
                }
                other => other?,
            };
            if out.is_some() {
                eprintln!("tapir: exported {n} records");
            }
        }
        DbAction::Check => match store.verify() {
            Ok(n) => say(&format!("ok: {n} records readable, flow index complete")),
            Err(e) => {
                say(&format!("damaged: {e}"));
                return Ok(ExitCode::from(1));
            }
        },
        DbAction::Bench {
            flows,
            batch,
            alert_every,
            rate,
            progress,
            span_days,
        } => {
            let first = store.stats().flows.records;
            let mut stdout = std::io::stdout();
            let report = load::run(
                &mut store,
                first,
                flows,
                batch,
                alert_every,
                rate,
                span_days,
                |n| {
                    if progress {
                        let _ = writeln!(stdout, "flushed {n}");
                        let _ = stdout.flush();
                    }
                },
            )?;
            say(&serde_json::to_string_pretty(&report).expect("report serializes"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
