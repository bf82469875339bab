//! The engine: which source feeds the pipeline, and the pipelines themselves, for the server.
//!
//! The base source is what `run`, `replay` or `demo` was started with (an interface, a file,
//! the synthetic scenario). An uploaded capture pauses the base source and replays in a
//! pipeline of its own, because its packet times belong to another day: mixing them into the
//! live pipeline would send its packet-time clock back and forth. Both pipelines write to the
//! same store, so the upload's flows and alerts stay in the history; when the upload ends (or
//! is stopped) the base source resumes, its pipeline's state intact.
//!
//! The decisions (which stage runs, pauses, drains or retries, and what follows from a
//! capture ending, an upload, a stop or a shutdown) are made by the plain `stages::Stages`;
//! the actor carries out the actions it returns: threads, drains, timers and messages.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, ResponseActFuture,
    WrapFuture,
};
use serde::Serialize;

use crate::capture::file::{CheckedCapture, FileSource};
use crate::capture::live::{LiveOptions, LiveSource};
use crate::capture::paced::{FileLoop, Paced};
use crate::capture::{self, BatchConfig, CaptureCounters, CaptureError, PacketSource, StopWhen};
use crate::export::ExportActor;
use crate::pipeline::{Listeners, Pipeline, PipelineAddrs, PipelineChanged, PipelineConfig};
use crate::store::actor::StoreActor;

pub mod stages;

use crate::synth::{Generator, Scenario};
pub use stages::CaptureState;
use stages::{Action, BASE, BaseKind, Refusal, Stages, StopReply};

/// Capture thread → engine: the thread of `stage` ended; here is its source and report.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct CaptureEnded {
    pub stage: u64,
    pub source: Box<dyn crate::capture::PacketSource>,
    pub report: crate::capture::CaptureReport,
}

/// Server → engine: which sources run, for `/debug`.
#[derive(actix::Message)]
#[rtype(result = "EngineStatus")]
pub struct GetEngineStatus;

/// Server → engine: replay an uploaded capture (checked whole by `capture::file::check`) at
/// `speed`× its pace (0 = as fast as possible). The file is deleted when the replay is over.
#[derive(actix::Message)]
#[rtype(result = "Result<String, UploadRejected>")]
pub struct StartUpload {
    pub capture: CheckedCapture,
    pub name: String,
    pub speed: f64,
}

/// Why an upload was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum UploadRejected {
    #[error("a replay is already running ({0}); stop it first with POST /pcap/replay/stop")]
    Busy(String),
    #[error("{0}")]
    NotACapture(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Server → engine: stop the replay (an upload's, else a `replay` file's); false if none ran.
#[derive(actix::Message)]
#[rtype(result = "bool")]
pub struct StopReplay;

/// Stop capture and drain every pipeline into the store; replies when done.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// What the server captures from when no upload is replaying.
#[derive(Clone, Debug)]
pub enum BaseSource {
    /// A network interface (`tapir run`).
    Live { iface: String, options: LiveOptions },
    /// A capture file at `speed`× its pace, 0 = as fast as possible (`tapir replay`).
    File {
        path: PathBuf,
        speed: f64,
        looping: bool,
    },
    /// The synthetic scenario with every attack, at real-time pace (`tapir demo`).
    Demo { seed: u64 },
}

impl BaseSource {
    /// Opens the source; an interface or file that cannot be opened is an error here, so
    /// that `tapir run` fails at start with the reason.
    pub fn open(&self) -> Result<Box<dyn PacketSource>, CaptureError> {
        Ok(match self {
            BaseSource::Live { iface, options } => Box::new(LiveSource::open(iface, options)?),
            BaseSource::File {
                path,
                speed,
                looping,
            } => file_source(path, *speed, *looping)?,
            BaseSource::Demo { seed } => {
                Box::new(Paced::new(Generator::new(Scenario::All, *seed), 1.0, true))
            }
        })
    }
}

impl BaseSource {
    fn kind(&self) -> BaseKind {
        match self {
            BaseSource::Live { .. } => BaseKind::Live,
            BaseSource::File { .. } => BaseKind::File,
            BaseSource::Demo { .. } => BaseKind::Demo,
        }
    }
}

/// A capture file, paced unless `speed` is 0, looping if asked.
pub fn file_source(
    path: &std::path::Path,
    speed: f64,
    looping: bool,
) -> Result<Box<dyn PacketSource>, CaptureError> {
    Ok(match (looping, speed > 0.0) {
        (false, false) => Box::new(FileSource::open(path)?),
        (false, true) => Box::new(Paced::new(FileSource::open(path)?, speed, false)),
        (true, false) => Box::new(FileLoop::open(path)?),
        (true, true) => Box::new(Paced::new(FileLoop::open(path)?, speed, false)),
    })
}

/// One source feeding one pipeline.
struct Stage {
    id: u64,
    pipeline: Pipeline,
    describe: String,
    counters: Arc<CaptureCounters>,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl Stage {
    fn readers(&self) -> Readers {
        (
            self.pipeline.detectors.clone(),
            self.pipeline.devices.clone(),
        )
    }

    fn addrs(&self) -> PipelineAddrs {
        PipelineAddrs {
            stage: self.id,
            flows: self.pipeline.flows.clone(),
            metrics: self.pipeline.metrics.clone(),
            alerts: self.pipeline.alerts.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    fn status(&self, state: CaptureState, error: Option<String>) -> StageStatus {
        StageStatus {
            source: self.describe.clone(),
            state,
            running_secs: self.started.elapsed().as_secs_f64(),
            error,
        }
    }
}

/// A stage as `/debug` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub source: String,
    pub state: CaptureState,
    pub running_secs: f64,
    pub error: Option<String>,
}

/// What `/debug` shows about capture.
#[derive(Clone, Debug, Serialize)]
pub struct EngineStatus {
    pub base: StageStatus,
    pub upload: Option<StageStatus>,
    pub uploads_replayed: u64,
}

/// An upload being replayed: its stage, its source until its capture thread starts, and
/// the file, deleted when the replay is over.
struct Upload {
    stage: Stage,
    source: Option<Box<dyn PacketSource>>,
    file: tempfile::TempPath,
}

/// The engine actor: carries out what its stage machine (`stages`) decides.
pub struct Engine {
    config: PipelineConfig,
    base_spec: BaseSource,
    store: Option<Addr<StoreActor>>,
    /// Flow records and alerts of every pipeline also go here, when export is configured.
    export: Option<Addr<ExportActor>>,
    listeners: Listeners,
    stages: Stages,
    base: Stage,
    /// The base source while it is not being read (paused, finished).
    base_source: Option<Box<dyn PacketSource>>,
    upload: Option<Upload>,
    /// `StopReplay`s waiting for the upload's capture to end (they answer then, so that an
    /// upload right after a stop finds the engine free).
    stop_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    log: Box<dyn Fn(String) + Send>,
    /// The current pipeline, for the HTTP workers (see `pipeline_watch`).
    pipeline: tokio::sync::watch::Sender<PipelineAddrs>,
}

/// The longest a `StopReplay` waits for the upload's capture to end (within the API's
/// actor timeout).
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Seconds between attempts to reopen a failed interface.
const LIVE_RETRY: Duration = Duration::from_secs(5);

impl Engine {
    /// Starts the base pipeline, reading from `source` (opened by the caller so that errors
    /// surface before the server starts). Must run inside an actix system.
    pub fn new(
        config: PipelineConfig,
        base_spec: BaseSource,
        source: Box<dyn PacketSource>,
        store: Option<Addr<StoreActor>>,
        listeners: Listeners,
        export: Option<Addr<ExportActor>>,
        log: Box<dyn Fn(String) + Send>,
    ) -> Engine {
        let base = new_stage(
            BASE,
            &config,
            &store,
            &listeners,
            &export,
            source.describe(),
        );
        let (pipeline, _) = tokio::sync::watch::channel(base.addrs());
        Engine {
            config,
            stages: Stages::new(base_spec.kind()),
            base_spec,
            store,
            export,
            listeners,
            base,
            base_source: Some(source),
            upload: None,
            stop_waiters: Vec::new(),
            log,
            pipeline,
        }
    }

    /// The pipeline the server shows, kept current as uploads come and go: the HTTP
    /// workers read it without asking the engine for each request.
    pub fn pipeline_watch(&self) -> tokio::sync::watch::Receiver<PipelineAddrs> {
        self.pipeline.subscribe()
    }

    fn stage(&self, id: u64) -> Option<&Stage> {
        match &self.upload {
            Some(u) if u.stage.id == id => Some(&u.stage),
            _ if id == BASE => Some(&self.base),
            _ => None,
        }
    }

    /// Carries out what the stage machine decided, in order.
    fn act(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Publish(id) => {
                    if let Some(addrs) = self.stage(id).map(Stage::addrs) {
                        self.pipeline.send_replace(addrs.clone());
                        self.listeners.pipeline.do_send(PipelineChanged(addrs));
                    }
                }
                Action::StartBase => {
                    let source = self.base_source.take().expect("base source at start");
                    self.spawn_capture(ctx, BASE, source);
                }
                Action::ResumeBase => self.resume_base(ctx),
                Action::StartUpload(id) => {
                    if let Some(source) = self.upload.as_mut().and_then(|u| u.source.take()) {
                        self.spawn_capture(ctx, id, source);
                    }
                }
                Action::StopCapture(id) => {
                    if let Some(stage) = self.stage(id) {
                        stage.stop.store(true, Ordering::Relaxed);
                    }
                }
                // Taken from the `CaptureEnded` being handled (see there).
                Action::KeepBaseSource => {}
                Action::DrainBase => {
                    let readers = self.base.readers();
                    ctx.spawn(
                        drain(self.base.addrs(), readers, self.store.clone())
                            .into_actor(self)
                            .map(|_, engine, _| engine.stages.base_drained()),
                    );
                }
                Action::DrainUpload(id) => {
                    let Some(upload) = self.upload.take_if(|u| u.stage.id == id) else {
                        continue;
                    };
                    let addrs = upload.stage.addrs();
                    let readers = upload.stage.readers();
                    // Drain the upload's pipeline into the store, then stop it; the
                    // temporary file goes with `upload`.
                    ctx.spawn(
                        drain(addrs, readers, self.store.clone())
                            .into_actor(self)
                            .map(move |_, _, _| {
                                upload.stage.pipeline.stop();
                                drop(upload.file);
                            }),
                    );
                }
                Action::WakeStopWaiters => {
                    for waiter in self.stop_waiters.drain(..) {
                        let _ = waiter.send(());
                    }
                }
                Action::RetryLater => {
                    ctx.run_later(LIVE_RETRY, |engine, ctx| {
                        let actions = engine.stages.retry_due();
                        engine.act(actions, ctx);
                    });
                }
                // Answered by the `Shutdown` handler, which owns the reply.
                Action::DrainAll(_) => {}
            }
        }
    }

    /// Starts a capture thread reading `source` into stage `id`'s pipeline.
    fn spawn_capture(&self, ctx: &mut Context<Self>, id: u64, source: Box<dyn PacketSource>) {
        let Some(stage) = self.stage(id) else { return };
        let stop = StopWhen {
            flag: Some(Arc::clone(&stage.stop)),
            ..Default::default()
        };
        let engine = ctx.address();
        capture::spawn(
            format!("tapir-capture-{id}"),
            source,
            stage.pipeline.batch_sinks(),
            BatchConfig {
                decode: self.config.decode.clone(),
                hello_streams: self.config.names.as_ref().map(|n| n.hello_streams),
                lan_facts: self.config.devices.is_some(),
                ..BatchConfig::from(&self.config.capture)
            },
            stop,
            Arc::clone(&stage.counters),
            move |source, report| {
                engine.do_send(CaptureEnded {
                    stage: id,
                    source,
                    report,
                })
            },
        )
        .expect("spawning a capture thread");
    }

    /// `ResumeBase`: the kept source, or a fresh open for an interface (frames buffered
    /// while paused are stale) or when none is kept.
    fn resume_base(&mut self, ctx: &mut Context<Self>) {
        let source = match self.base_source.take() {
            Some(_) if matches!(self.base_spec, BaseSource::Live { .. }) => None,
            other => other,
        };
        let source = match source {
            Some(mut s) => {
                s.resume_after_pause();
                Ok(s)
            }
            None => self.base_spec.open(),
        };
        match source {
            Ok(source) => {
                self.base.stop.store(false, Ordering::Relaxed);
                self.stages.base_opened();
                self.spawn_capture(ctx, BASE, source);
            }
            Err(e) => {
                (self.log)(format!("{e}; retrying in {} s", LIVE_RETRY.as_secs()));
                let actions = self.stages.base_open_failed(e.to_string());
                self.act(actions, ctx);
            }
        }
    }
}

/// The actors of a pipeline that read marked batches, which a drain flushes: the detectors
/// and the devices actor.
type Readers = (
    Vec<Addr<crate::detect::actor::DetectorActor>>,
    Option<Addr<crate::devices::actor::DevicesActor>>,
);

fn new_stage(
    id: u64,
    config: &PipelineConfig,
    store: &Option<Addr<StoreActor>>,
    listeners: &Listeners,
    export: &Option<Addr<ExportActor>>,
    describe: String,
) -> Stage {
    let mut alert_sinks = vec![listeners.alerts.clone()];
    alert_sinks.extend(listeners.notify.clone());
    let mut record_sinks = Vec::new();
    if let Some(export) = export {
        alert_sinks.push(export.clone().recipient());
        record_sinks.push(export.clone().recipient());
    }
    let device_sinks = export.iter().map(|e| e.clone().recipient()).collect();
    let pipeline = Pipeline::start(
        config,
        record_sinks,
        store.clone(),
        alert_sinks,
        device_sinks,
    );
    Stage {
        id,
        pipeline,
        describe,
        counters: Arc::new(CaptureCounters::default()),
        stop: Arc::new(AtomicBool::new(false)),
        started: Instant::now(),
    }
}

/// Ends a pipeline's input (`pipeline::drain`); an actor gone meanwhile (a shutdown) ends
/// it early.
async fn drain(addrs: PipelineAddrs, readers: Readers, store: Option<Addr<StoreActor>>) {
    let (detectors, devices) = readers;
    let _ = crate::pipeline::drain(
        &addrs.flows,
        &detectors,
        devices.as_ref(),
        &addrs.metrics,
        store.as_ref(),
    )
    .await;
}

impl Actor for Engine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let actions = self.stages.start();
        self.act(actions, ctx);
    }
}

impl Handler<CaptureEnded> for Engine {
    type Result = ();

    fn handle(&mut self, msg: CaptureEnded, ctx: &mut Self::Context) {
        let error = msg.report.error.as_ref().map(|e| e.to_string());
        if let Some(e) = &error {
            (self.log)(e.clone());
        }
        if let Some(upload) = self.upload.as_ref().filter(|u| u.stage.id == msg.stage) {
            (self.log)(format!(
                "replay of {} ended after {} frames",
                upload.stage.describe, msg.report.frames
            ));
        }
        let actions = self.stages.capture_ended(msg.stage, error);
        if actions.contains(&Action::KeepBaseSource) {
            self.base_source = Some(msg.source);
        }
        self.act(actions, ctx);
    }
}

impl Handler<GetEngineStatus> for Engine {
    type Result = MessageResult<GetEngineStatus>;

    fn handle(&mut self, _: GetEngineStatus, _: &mut Self::Context) -> Self::Result {
        let base = self.base.status(
            self.stages.base_state().clone(),
            self.stages.base_error().map(String::from),
        );
        MessageResult(EngineStatus {
            base,
            upload: self
                .upload
                .as_ref()
                .map(|u| u.stage.status(CaptureState::Running, None)),
            uploads_replayed: self.stages.uploads_replayed(),
        })
    }
}

impl Handler<StartUpload> for Engine {
    type Result = Result<String, UploadRejected>;

    fn handle(&mut self, msg: StartUpload, ctx: &mut Self::Context) -> Self::Result {
        self.stages.may_upload().map_err(|r| self.rejection(r))?;
        let source = file_source(&msg.capture.file, msg.speed, false)
            .map_err(|e| UploadRejected::NotACapture(e.to_string()))?;
        let (id, actions) = self
            .stages
            .upload_started()
            .map_err(|r| self.rejection(r))?;
        let describe = format!("upload {} at {}× pace", msg.name, msg.speed);
        let stage = new_stage(
            id,
            &self.config,
            &self.store,
            &self.listeners,
            &self.export,
            describe.clone(),
        );
        (self.log)(format!("replaying {describe}"));
        self.upload = Some(Upload {
            stage,
            source: Some(source),
            file: msg.capture.file,
        });
        self.act(actions, ctx);
        Ok(describe)
    }
}

impl Engine {
    fn rejection(&self, refusal: Refusal) -> UploadRejected {
        match refusal {
            Refusal::Busy(_) => UploadRejected::Busy(
                self.upload
                    .as_ref()
                    .map_or_else(String::new, |u| u.stage.describe.clone()),
            ),
            Refusal::ShuttingDown => UploadRejected::ShuttingDown,
        }
    }
}

impl Handler<StopReplay> for Engine {
    type Result = actix::ResponseFuture<bool>;

    fn handle(&mut self, _: StopReplay, ctx: &mut Self::Context) -> Self::Result {
        let (reply, actions) = self.stages.stop_replay();
        self.act(actions, ctx);
        match reply {
            StopReply::WaitForUpload => {
                // Answered once the upload's capture has ended and the engine is free.
                let (done, ended) = tokio::sync::oneshot::channel();
                self.stop_waiters.push(done);
                Box::pin(async move {
                    let _ = tokio::time::timeout(STOP_WAIT, ended).await;
                    true
                })
            }
            StopReply::Stopped => Box::pin(async { true }),
            StopReply::NothingToStop => Box::pin(async { false }),
        }
    }
}

impl Handler<Shutdown> for Engine {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops capture, drains every pipeline (the caller flushes the store) and replies.
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let actions = self.stages.shutdown();
        let drains: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::DrainAll(ids) => Some(ids.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|id| self.stage(id))
            .map(|s| (s.addrs(), s.readers()))
            .collect();
        self.act(actions, ctx);
        Box::pin(
            async move {
                // Give the capture threads a moment to hand over their last batches.
                tokio::time::sleep(Duration::from_millis(50)).await;
                for (addrs, readers) in drains {
                    drain(addrs, readers, None).await;
                }
            }
            .into_actor(self),
        )
    }
}
