//! Wiring, stated once: a pipeline's actors (`Pipeline::start`, from its `PipelineConfig`), the
//! services that outlive pipelines (`StoreService`, `ExportService`), and the drain at the end
//! of an input (`drain`). `analyze` and the engine (`run`, `replay`, `demo`, uploads) both use
//! these; the engine tells its `Listeners` about each pipeline.
//!
//! Capture feeds the flows and metrics actors; the flows actor passes each batch, marked
//! with what each packet meant to its flow, on to the detectors that read packets and the
//! devices actor (which feeds the one device book every pipeline shares).
//!
//! The flows actor runs on its own arbiter (thread), the detectors, the devices actor and the
//! alerts actor on another, so that flow tracking, detection, metrics and capture/decoding spread over the
//! cores; metrics share the system arbiter. The store, which blocks on the disk, has its own
//! and outlives pipelines: the server starts a fresh pipeline for each capture source.

use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, Recipient};

use crate::alert::AlertQuery;
use crate::alert::AlertsConfig;
use crate::alert::actor::AlertsActor;
use crate::alert::actor::KnownAcknowledged;
use crate::capture::CaptureConfig;
use crate::credit::Backlog;
use crate::decode::DecodeConfig;
use crate::detect::DetectorStats;
use crate::detect::DetectorsConfig;
use crate::detect::actor::DetectorActor;
use crate::detect::actor::FlushDetectors;
use crate::devices::SharedDevices;
use crate::devices::actor::{DevicesActor, FlushDevices, StoreSinks};
use crate::export::{ExportActor, Exporter, FlushExport};
use crate::flow::FlowConfig;
use crate::flow::FlowTableStats;
use crate::flow::actor::FlushFlows;
use crate::flow::actor::{BufferedSink, FlowsActor, RecordSinks};
use crate::intel::{IntelDetector, SharedIntel};
use crate::messages::{AlertsChanged, DevicesChanged, FlowRecordsMsg, PacketBatchMsg};
use crate::metrics::MetricsConfig;
use crate::metrics::actor::FinishMinute;
use crate::metrics::actor::MetricsActor;
use crate::names::usage::Usage;
use crate::names::{NamesConfig, Naming, PassiveDns, apps};
use crate::store::StoreStatus;
use crate::store::actor::StoreActor;
use crate::store::actor::{FlushStore, QueryAlerts};

/// The actors of the pipeline the server currently shows (an upload's while it replays).
#[derive(Clone)]
pub struct PipelineAddrs {
    /// Changes whenever the engine switches pipelines.
    pub stage: u64,
    pub flows: Addr<FlowsActor>,
    pub metrics: Addr<MetricsActor>,
    pub alerts: Addr<AlertsActor>,
    pub counters: std::sync::Arc<crate::capture::CaptureCounters>,
}

/// What a pipeline is built from: the settings of its parts (`Config::pipeline`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineConfig {
    /// Batching and mailbox depth.
    pub capture: CaptureConfig,
    pub decode: DecodeConfig,
    pub flows: FlowConfig,
    /// Naming (absent when `[privacy] names = false`).
    pub names: Option<NamesConfig>,
    /// Seconds of finished flows the application tallies keep (`None`: all of them, as
    /// `analyze` reports a whole capture).
    pub usage_window_secs: Option<i64>,
    pub metrics: MetricsConfig,
    pub detectors: DetectorsConfig,
    /// The device book every pipeline feeds (absent when `[devices] enabled = false`).
    pub devices: Option<SharedDevices>,
    pub alerts: AlertsConfig,
    /// The threat lists to match (absent when no `[[intel.list]]` is enabled).
    pub intel: Option<SharedIntel>,
    /// The store's backlog of live records, shared by every pipeline that feeds it
    /// (`StoreActor::intake`; absent: unbounded, as for a store that is not live).
    pub store_intake: Option<Backlog>,
}

/// Engine → whoever shows the current pipeline (the WebSocket hub): the pipeline changed,
/// as an upload started or ended.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct PipelineChanged(pub PipelineAddrs);

/// Who hears from every pipeline the engine starts: the alert changes of each, and which
/// one is current.
#[derive(Clone)]
pub struct Listeners {
    pub alerts: actix::Recipient<AlertsChanged>,
    pub pipeline: actix::Recipient<PipelineChanged>,
    /// The notify actor (the server always has one: an admin may add targets at run time).
    pub notify: Option<actix::Recipient<AlertsChanged>>,
}

/// What ending a pipeline's input reported.
pub struct Drained {
    pub flows: FlowTableStats,
    /// Each detector's counters, by rule name.
    pub detectors: std::collections::BTreeMap<&'static str, DetectorStats>,
    /// The store's status after the last write, when the pipeline keeps a database.
    pub store: Option<StoreStatus>,
}

/// Ends a pipeline's input, in the one order that loses nothing: every open flow becomes a
/// record (to the detectors that judge connections, the sinks and the store), each detector
/// reports what is pending (the alerts actor gets those findings before the detector
/// answers), the last, partial minute is closed, and the store writes and syncs it all. The
/// actors stay up for queries. `analyze`, the server's pipelines and uploads all end here.
pub async fn drain(
    flows: &Addr<FlowsActor>,
    detectors: &[Addr<DetectorActor>],
    devices: Option<&Addr<DevicesActor>>,
    metrics: &Addr<MetricsActor>,
    store: Option<&Addr<StoreActor>>,
) -> Result<Drained, actix::MailboxError> {
    // Each on a fresh sender: actix parks a sender whose message found a mailbox over
    // capacity (a busy pipeline's), and a shared parked sender would hold up the rest.
    let flows = flows.clone().send(FlushFlows).await?;
    let mut by_rule = std::collections::BTreeMap::new();
    for d in detectors {
        let (rule, stats) = d.clone().send(FlushDetectors).await?;
        by_rule.insert(rule.name(), stats);
    }
    // The flows actor has passed on every batch: the devices actor has them queued.
    if let Some(devices) = devices {
        devices.clone().send(FlushDevices).await?;
    }
    metrics.clone().send(FinishMinute).await?;
    let store = match store {
        Some(store) => Some(store.clone().send(FlushStore).await?),
        None => None,
    };
    Ok(Drained {
        flows,
        detectors: by_rule,
        store,
    })
}

/// The running consumer actors of one pipeline.
pub struct Pipeline {
    pub flows: Addr<FlowsActor>,
    pub metrics: Addr<MetricsActor>,
    pub detectors: Vec<Addr<DetectorActor>>,
    /// Present when devices are on.
    pub devices: Option<Addr<DevicesActor>>,
    pub alerts: Addr<AlertsActor>,
    /// Present when the pipeline keeps a database.
    pub store: Option<Addr<StoreActor>>,
    flows_arbiter: Arbiter,
    detect_arbiter: Arbiter,
}

/// The store actor on a thread of its own (sled blocks on the disk); it outlives pipelines.
pub struct StoreService {
    pub addr: Addr<StoreActor>,
    /// The store's backlog of live records, for the pipelines that feed it.
    pub intake: Backlog,
    arbiter: Arbiter,
}

impl StoreService {
    /// Starts `actor` on a new arbiter. Must run inside an actix system.
    pub fn start(actor: StoreActor) -> StoreService {
        let arbiter = Arbiter::new();
        let intake = actor.intake();
        let addr = StoreActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        StoreService {
            addr,
            intake,
            arbiter,
        }
    }

    /// Stops the store's thread (after a `FlushStore`, nothing is lost).
    pub fn stop(self) {
        self.arbiter.stop();
    }
}

/// The export actor on its own thread (its UDP and file writes must not hold up the
/// pipeline); outlives pipelines like the store.
pub struct ExportService {
    pub addr: Addr<ExportActor>,
    arbiter: Arbiter,
}

impl ExportService {
    /// Starts an exporter's actor on a new arbiter. Must run inside an actix system.
    pub fn start(exporter: Exporter) -> ExportService {
        let arbiter = Arbiter::new();
        let addr =
            ExportActor::start_in_arbiter(&arbiter.handle(), move |_| ExportActor::new(exporter));
        ExportService { addr, arbiter }
    }

    /// Sends what is buffered and stops the exporter's thread.
    pub async fn stop(self) -> Result<(), actix::MailboxError> {
        let flushed = self.addr.send(FlushExport).await;
        self.arbiter.stop();
        flushed
    }
}

impl Pipeline {
    /// Starts the actors; finished flows go to `record_sinks` (and to the detectors that
    /// judge connections, and to `store` if given, which then also keeps alerts and minute
    /// snapshots); opened and updated alerts also go to `alert_sinks`. Must run inside an
    /// actix system.
    pub fn start(
        config: &PipelineConfig,
        record_sinks: Vec<Recipient<FlowRecordsMsg>>,
        store: Option<Addr<StoreActor>>,
        mut alert_sinks: Vec<Recipient<AlertsChanged>>,
        device_sinks: Vec<Recipient<DevicesChanged>>,
    ) -> Pipeline {
        // Capture's credits bound the batches in every mailbox; sized to match, a mailbox
        // rarely looks over capacity to a query (`send`) because of batches alone.
        let queue = config.capture.queue_batches;
        let mut record_sinks: Vec<BufferedSink> = record_sinks
            .into_iter()
            .map(BufferedSink::unbounded)
            .collect();
        if let Some(store) = &store {
            record_sinks.push(BufferedSink {
                to: store.clone().recipient(),
                backlog: config.store_intake.clone(),
            });
            alert_sinks.push(store.clone().recipient());
        }
        let minute_sink = store.as_ref().map(|s| s.clone().recipient());
        let metrics = MetricsActor::new(config.metrics.clone(), queue, minute_sink).start();

        let detect_arbiter = Arbiter::new();
        let alerts_config = config.alerts.clone();
        let alerts = AlertsActor::start_in_arbiter(&detect_arbiter.handle(), move |_| {
            AlertsActor::new(alerts_config, alert_sinks)
        });
        if let Some(store) = &store {
            // The book starts from what the store knows: an alert acknowledged before a
            // restart stays acknowledged when a replay opens it again.
            let (store, alerts) = (store.clone(), alerts.clone());
            actix::spawn(async move {
                let query = AlertQuery {
                    limit: crate::alert::KNOWN_ACKNOWLEDGED,
                    ..AlertQuery::default()
                };
                if let Ok(Ok(stored)) = store.send(QueryAlerts(query)).await {
                    let ids = stored.iter().filter(|a| a.acknowledged).map(|a| a.id);
                    alerts.do_send(KnownAcknowledged(ids.collect()));
                }
            });
        }
        let (mut detectors, mut packet_sinks, mut paced_record_sinks) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut built = crate::detect::build(&config.detectors, config.flows.community_id_seed);
        if let Some(intel) = &config.intel {
            built.push(Box::new(IntelDetector::new(intel.clone())));
        }
        for detector in built {
            let (wants_flows, wants_packets) = (detector.wants_flows(), detector.wants_packets());
            let sink = alerts.clone().recipient();
            let addr = DetectorActor::start_in_arbiter(&detect_arbiter.handle(), move |_| {
                DetectorActor::new(detector, sink, queue)
            });
            if wants_flows {
                paced_record_sinks.push(addr.clone().recipient());
            }
            if wants_packets {
                packet_sinks.push(addr.clone().recipient());
            }
            detectors.push(addr);
        }
        let devices = config.devices.as_ref().map(|book| {
            let (book, sink) = (book.clone(), alerts.clone().recipient());
            let store = store.as_ref().map(|s| StoreSinks {
                devices: s.clone().recipient(),
                minutes: s.clone().recipient(),
            });
            let addr = DevicesActor::start_in_arbiter(&detect_arbiter.handle(), move |_| {
                DevicesActor::new(book, sink, store, device_sinks, queue)
            });
            packet_sinks.push(addr.clone().recipient());
            addr
        });

        let status = vec![metrics.clone().recipient()];
        let flow_config = config.flows.clone();
        let names = config.names.as_ref().map(|n| {
            // The file was read when the config was checked; should it have gone since, the
            // built-in catalogue serves.
            let apps = apps::load(n.apps_file.as_deref()).unwrap_or_else(|e| {
                eprintln!("tapir: {e}; using the built-in application catalogue");
                apps::Catalogue::builtin()
            });
            Naming {
                dns: PassiveDns::new(n.passive_dns_entries),
                apps: Arc::new(apps),
                usage: Usage::new(config.usage_window_secs),
            }
        });
        let flows_arbiter = Arbiter::new();
        let flows = FlowsActor::start_in_arbiter(&flows_arbiter.handle(), move |_| {
            FlowsActor::new(
                flow_config,
                RecordSinks {
                    paced: paced_record_sinks,
                    buffered: record_sinks,
                },
                status,
                packet_sinks,
                queue,
                names,
            )
        });
        Pipeline {
            flows,
            metrics,
            detectors,
            devices,
            alerts,
            store,
            flows_arbiter,
            detect_arbiter,
        }
    }

    /// The actors capture feeds (the flows actor passes marked batches on to the detectors).
    pub fn batch_sinks(&self) -> Vec<Recipient<PacketBatchMsg>> {
        vec![
            self.flows.clone().recipient(),
            self.metrics.clone().recipient(),
        ]
    }

    /// Stops the arbiters' threads (the store's is its owner's to stop).
    pub fn stop(self) {
        self.flows_arbiter.stop();
        self.detect_arbiter.stop();
    }
}
