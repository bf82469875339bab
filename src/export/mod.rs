//! Export to the engines a fleet already runs: flow records as IPFIX over UDP to collectors
//! (nfcapd, ElastiFlow, ntopng, …), flows and alerts as Suricata EVE JSON lines to a rotating
//! file and/or RFC 5424 syslog. Nothing here may hold up the pipeline: UDP sends are
//! non-blocking, syslog over TCP has its own thread behind a bounded queue, and whatever
//! cannot be sent at once is dropped and counted per target.

pub mod eve;
pub mod ipfix;
mod sink;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message};
use serde::{Deserialize, Serialize};

use crate::messages::{AlertsChanged, DevicesChanged, FlowRecordsMsg};
use crate::model::alert::Alert;
use crate::model::device::Device;
use crate::model::flow::FlowRecord;
use sink::{IpfixSocket, RotatingFile, Syslog};

/// The `[export]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    pub ipfix: IpfixConfig,
    pub eve: EveConfig,
}

/// `[export.ipfix]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpfixConfig {
    /// `host:port` of each collector (4739 is IPFIX's port). Empty: no IPFIX.
    pub collectors: Vec<String>,
    /// One RFC 5103 biflow record per flow (reverse counters under PEN 29305), for collectors
    /// that read them (ntopng, ElastiFlow); off: a record per direction, which all read.
    pub biflow: bool,
    /// Largest message (UDP payload): below the path MTU less IP and UDP headers.
    pub max_message_bytes: usize,
    /// Templates are re-sent this often (RFC 7011 §8.4: over UDP they expire).
    pub template_refresh_secs: u64,
    /// Messages a second to each collector at most (bursts of 32), 0 for no limit. UDP has
    /// no flow control: an offline analysis would send hundreds of messages in milliseconds,
    /// more than a collector's socket buffer holds, and the collector would lose them
    /// without anyone knowing. 2,000 (about 2.8 MB/s, some 50,000 records a second) is what
    /// nfcapd on the same machine takes in full with its default buffer.
    pub max_messages_per_sec: u32,
    pub observation_domain: u32,
}

impl Default for IpfixConfig {
    fn default() -> Self {
        IpfixConfig {
            collectors: Vec::new(),
            biflow: false,
            max_message_bytes: 1400,
            template_refresh_secs: 60,
            max_messages_per_sec: 2000,
            observation_domain: 1,
        }
    }
}

/// `[export.eve]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EveConfig {
    /// EVE JSON lines file. Unset: none.
    pub file: Option<PathBuf>,
    /// The file is rotated (`eve.json` → `eve.json.1` …) at this size, in MiB.
    pub rotate_mb: u64,
    /// Rotated files kept.
    pub keep: usize,
    /// `host:port` of a syslog receiver. Unset: none.
    pub syslog: Option<String>,
    /// `udp` or `tcp` (RFC 6587 octet counting).
    pub syslog_protocol: String,
    pub syslog_facility: String,
    /// Which events: flows, alerts, devices (an inventory event when a station is first
    /// seen or its addresses, names or DHCP facts change).
    pub flows: bool,
    pub alerts: bool,
    pub devices: bool,
}

impl Default for EveConfig {
    fn default() -> Self {
        EveConfig {
            file: None,
            rotate_mb: 100,
            keep: 5,
            syslog: None,
            syslog_protocol: "udp".into(),
            syslog_facility: "local5".into(),
            flows: true,
            alerts: true,
            devices: true,
        }
    }
}

impl ExportConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.eve.syslog_protocol.as_str(), "udp" | "tcp") {
            return Err("export.eve.syslog_protocol must be \"udp\" or \"tcp\"".into());
        }
        if eve::facility(&self.eve.syslog_facility).is_none() {
            return Err(format!(
                "export.eve.syslog_facility {:?} is not a syslog facility (e.g. local5, daemon)",
                self.eve.syslog_facility
            ));
        }
        if !(512..=65_000).contains(&self.ipfix.max_message_bytes) {
            return Err("export.ipfix.max_message_bytes must be between 512 and 65000".into());
        }
        if self.ipfix.template_refresh_secs == 0 || self.eve.rotate_mb == 0 {
            return Err(
                "export.ipfix.template_refresh_secs and export.eve.rotate_mb must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        !self.ipfix.collectors.is_empty() || self.eve.file.is_some() || self.eve.syslog.is_some()
    }
}

/// What one export target has done.
#[derive(Debug, Default)]
pub struct TargetStats {
    pub kind: &'static str,
    pub target: String,
    pub records: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
}

impl TargetStats {
    fn new(kind: &'static str, target: String) -> Arc<TargetStats> {
        Arc::new(TargetStats {
            kind,
            target,
            ..Default::default()
        })
    }

    pub fn sent(&self, records: u64, bytes: usize) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn drop_records(&self, records: u64, error: bool) {
        self.dropped.fetch_add(records, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "kind": self.kind, "target": self.target, "records": l(&self.records),
            "messages": l(&self.messages), "bytes": l(&self.bytes),
            "dropped": l(&self.dropped), "errors": l(&self.errors),
        })
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export: {0}")]
    Config(String),
    #[error("export: cannot reach {target}: {source}")]
    Target {
        target: String,
        source: std::io::Error,
    },
}

/// Alerts already sent (an episode's updates are not new events), bounded.
const SEEN_ALERTS: usize = 65_536;

/// Every export target, fed with flow records and alerts.
pub struct Exporter {
    encoder: Option<ipfix::Encoder>,
    collectors: Vec<IpfixSocket>,
    templates_sent: Option<Instant>,
    template_refresh: Duration,
    file: Option<RotatingFile>,
    syslog: Option<Syslog>,
    eve_flows: bool,
    eve_alerts: bool,
    eve_devices: bool,
    host: String,
    seen: HashSet<u64>,
    seen_order: VecDeque<u64>,
    targets: Vec<Arc<TargetStats>>,
}

impl Exporter {
    /// Opens every configured target (`None` when nothing is configured). A collector that is
    /// down is not an error; a name that does not resolve or a file that cannot be created is.
    pub fn open(config: &ExportConfig) -> Result<Option<Exporter>, ExportError> {
        if !config.enabled() {
            return Ok(None);
        }
        config.validate().map_err(ExportError::Config)?;
        let host = hostname();
        let mut targets = Vec::new();
        let collectors = config
            .ipfix
            .collectors
            .iter()
            .map(|c| {
                let stats = TargetStats::new("ipfix", c.clone());
                targets.push(Arc::clone(&stats));
                IpfixSocket::connect(c, config.ipfix.max_messages_per_sec, stats)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let e = &config.eve;
        let file = e
            .file
            .as_ref()
            .map(|path| {
                let stats = TargetStats::new("eve-file", path.display().to_string());
                targets.push(Arc::clone(&stats));
                RotatingFile::create(path, e.rotate_mb * 1024 * 1024, e.keep, stats)
            })
            .transpose()?;
        let syslog = e
            .syslog
            .as_ref()
            .map(|addr| {
                let stats = TargetStats::new("syslog", format!("{}://{addr}", e.syslog_protocol));
                targets.push(Arc::clone(&stats));
                let facility = eve::facility(&e.syslog_facility).unwrap_or(21);
                Syslog::connect(addr, e.syslog_protocol == "tcp", facility, stats)
            })
            .transpose()?;
        Ok(Some(Exporter {
            encoder: (!collectors.is_empty()).then(|| {
                ipfix::Encoder::new(
                    config.ipfix.observation_domain,
                    config.ipfix.biflow,
                    config.ipfix.max_message_bytes,
                )
            }),
            collectors,
            templates_sent: None,
            template_refresh: Duration::from_secs(config.ipfix.template_refresh_secs),
            file,
            syslog,
            eve_flows: e.flows,
            eve_alerts: e.alerts,
            eve_devices: e.devices,
            host,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            targets,
        }))
    }

    /// The targets' counters (for /debug, /metrics and the analysis summary).
    pub fn targets(&self) -> Vec<Arc<TargetStats>> {
        self.targets.clone()
    }

    pub fn flows(&mut self, records: &[FlowRecord]) {
        if let Some(encoder) = &mut self.encoder {
            let now = Instant::now();
            let export_secs = unix_secs();
            if self
                .templates_sent
                .is_none_or(|t| now.duration_since(t) >= self.template_refresh)
            {
                let templates = encoder.templates(export_secs);
                for c in &mut self.collectors {
                    c.send(&templates, 0);
                }
                self.templates_sent = Some(now);
            }
            let collectors = &mut self.collectors;
            for r in records {
                encoder.add(r, export_secs, &mut |message, n| {
                    for c in collectors.iter_mut() {
                        c.send(&message, n);
                    }
                });
            }
        }
        if self.eve_flows && (self.file.is_some() || self.syslog.is_some()) {
            for r in records {
                let event = eve::flow_event(r, &self.host).to_string();
                self.emit(&event, 6, r.last_seen.0, "flow");
            }
        }
    }

    pub fn alerts(&mut self, alerts: &[Alert]) {
        if !self.eve_alerts {
            return;
        }
        for a in alerts {
            if !self.seen.insert(a.id) {
                continue;
            }
            self.seen_order.push_back(a.id);
            if self.seen_order.len() > SEEN_ALERTS
                && let Some(old) = self.seen_order.pop_front()
            {
                self.seen.remove(&old);
            }
            let event = eve::alert_event(a, &self.host).to_string();
            let severity = eve::syslog_severity(a.severity);
            self.emit(&event, severity, (a.timestamp * 1e9) as i64, "alert");
        }
    }

    /// Device events (`event_type: "device"`) for stations first seen or changed.
    pub fn devices(&mut self, devices: &[Device]) {
        if !self.eve_devices {
            return;
        }
        for d in devices {
            let event = eve::device_event(d, &self.host).to_string();
            self.emit(&event, 6, (d.last_seen * 1e9) as i64, "device");
        }
    }

    fn emit(&mut self, event: &str, severity: u8, ns: i64, msgid: &str) {
        if let Some(f) = &mut self.file {
            f.write_line(event);
        }
        if let Some(s) = &mut self.syslog {
            s.send(severity, ns, &self.host, msgid, event);
        }
    }

    /// Sends what is buffered (the IPFIX message being filled, the file's buffer; the TCP
    /// syslog thread flushes by itself when its queue is quiet).
    /// At the end of the input: flushes, and waits (bounded) for the syslog sender to write
    /// what is queued, so that nothing is lost to the process exiting.
    pub fn finish(&mut self) {
        self.flush();
        if let Some(syslog) = &mut self.syslog {
            syslog.drain();
        }
    }

    pub fn flush(&mut self) {
        if let Some(encoder) = &mut self.encoder
            && let Some((message, n)) = encoder.finish()
        {
            for c in &mut self.collectors {
                c.send(&message, n);
            }
        }
        if let Some(f) = &mut self.file {
            f.flush();
        }
    }
}

fn unix_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Sends what is buffered and answers when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushExport;

/// The exporter as an actor: a sink for flow records and alerts, on a thread of its own.
pub struct ExportActor {
    exporter: Exporter,
    flush_every: Duration,
}

impl ExportActor {
    pub fn new(exporter: Exporter) -> Self {
        ExportActor {
            exporter,
            flush_every: Duration::from_secs(1),
        }
    }
}

impl Actor for ExportActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A quiet link still gets its last records out within a second.
        use actix::AsyncContext;
        ctx.run_interval(self.flush_every, |actor, _| actor.exporter.flush());
    }
}

impl Handler<FlowRecordsMsg> for ExportActor {
    type Result = ();
    fn handle(&mut self, msg: FlowRecordsMsg, _: &mut Context<Self>) {
        self.exporter.flows(&msg.0);
    }
}

impl Handler<AlertsChanged> for ExportActor {
    type Result = ();
    fn handle(&mut self, msg: AlertsChanged, _: &mut Context<Self>) {
        self.exporter.alerts(&msg.0);
    }
}

impl Handler<DevicesChanged> for ExportActor {
    type Result = ();
    fn handle(&mut self, msg: DevicesChanged, _: &mut Context<Self>) {
        self.exporter.devices(&msg.0);
    }
}

impl Handler<FlushExport> for ExportActor {
    type Result = ();
    fn handle(&mut self, _: FlushExport, _: &mut Context<Self>) {
        self.exporter.finish();
    }
}

/// The counters of every target as JSON (for /debug and summaries).
pub fn snapshot(targets: &[Arc<TargetStats>]) -> serde_json::Value {
    serde_json::Value::Array(targets.iter().map(|t| t.snapshot()).collect())
}
