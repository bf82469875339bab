//! The engine: which source feeds the pipeline, and the pipelines themselves, for the server.
//!
//! The base source is what `run`, `replay` or `demo` was started with (an interface, a file,
//! the synthetic scenario). An uploaded capture pauses the base source and replays in a
//! pipeline of its own, because its packet times belong to another day: mixing them into the
//! live pipeline would send its packet-time clock back and forth. Both pipelines write to the
//! same store, so the upload's flows and alerts stay in the history; when the upload ends (or
//! is stopped) the base source resumes, its pipeline's state intact.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, ResponseActFuture,
    WrapFuture,
};
use serde::Serialize;

use crate::capture::file::FileSource;
use crate::capture::live::{LiveOptions, LiveSource};
use crate::capture::paced::{FileLoop, Paced};
use crate::capture::{self, BatchConfig, CaptureCounters, CaptureError, PacketSource, StopWhen};
use crate::export::ExportActor;
use crate::pipeline::{Listeners, Pipeline, PipelineAddrs, PipelineChanged, PipelineConfig};
use crate::store::actor::StoreActor;
use crate::synth::{Generator, Scenario};

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

/// Server → engine: replay an uploaded capture (already checked to be one) at `speed`× its
/// pace (0 = as fast as possible). The file is deleted when the replay is over.
#[derive(actix::Message)]
#[rtype(result = "Result<String, UploadRejected>")]
pub struct StartUpload {
    pub file: tempfile::TempPath,
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

/// Where a stage's capture is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureState {
    Running,
    /// The base source waits for an upload's replay to end.
    Paused,
    /// The source ended (a file); its flows are being written to the store.
    Draining,
    /// The source ended (a file) or failed; `error` says why, if it failed.
    Finished,
    /// A live interface failed; it is reopened every few seconds.
    Retrying,
}

/// One source feeding one pipeline.
struct Stage {
    id: u64,
    pipeline: Pipeline,
    describe: String,
    counters: Arc<CaptureCounters>,
    stop: Arc<AtomicBool>,
    state: CaptureState,
    started: Instant,
    error: Option<String>,
    /// A capture thread is reading into this stage.
    capturing: bool,
}

impl Stage {
    fn addrs(&self) -> PipelineAddrs {
        PipelineAddrs {
            stage: self.id,
            flows: self.pipeline.flows.clone(),
            metrics: self.pipeline.metrics.clone(),
            alerts: self.pipeline.alerts.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    fn status(&self) -> StageStatus {
        StageStatus {
            source: self.describe.clone(),
            state: self.state.clone(),
            running_secs: self.started.elapsed().as_secs_f64(),
            error: self.error.clone(),
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

/// An upload being replayed: its stage and the file, deleted when the replay is over.
struct Upload {
    stage: Stage,
    file: tempfile::TempPath,
}

/// The engine actor.
pub struct Engine {
    config: PipelineConfig,
    base_spec: BaseSource,
    store: Option<Addr<StoreActor>>,
    /// Flow records and alerts of every pipeline also go here, when export is configured.
    export: Option<Addr<ExportActor>>,
    listeners: Listeners,
    base: Stage,
    /// The base source while it is not being read (paused, finished).
    base_source: Option<Box<dyn PacketSource>>,
    upload: Option<Upload>,
    next_stage: u64,
    uploads_replayed: u64,
    /// The base source should resume once its capture thread has ended.
    resume_pending: bool,
    shutting_down: bool,
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
        let base = new_stage(1, &config, &store, &listeners, &export, source.describe());
        let (pipeline, _) = tokio::sync::watch::channel(base.addrs());
        Engine {
            config,
            base_spec,
            store,
            export,
            listeners,
            base,
            base_source: Some(source),
            upload: None,
            next_stage: 2,
            uploads_replayed: 0,
            resume_pending: false,
            shutting_down: false,
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

    /// Tells the watchers which pipeline is current now.
    fn publish(&self) {
        self.pipeline.send_replace(self.current().addrs());
    }

    fn current(&self) -> &Stage {
        self.upload.as_ref().map_or(&self.base, |u| &u.stage)
    }

    fn batch_config(&self) -> BatchConfig {
        BatchConfig::from(&self.config.capture)
    }

    /// Starts a capture thread reading `source` into `stage`'s pipeline.
    fn spawn_capture(
        &self,
        ctx: &mut Context<Self>,
        stage: &Stage,
        mut source: Box<dyn PacketSource>,
    ) {
        let sinks = stage.pipeline.batch_sinks();
        let batch = self.batch_config();
        let stop = StopWhen {
            flag: Some(Arc::clone(&stage.stop)),
            ..Default::default()
        };
        let counters = Arc::clone(&stage.counters);
        let engine = ctx.address();
        let id = stage.id;
        std::thread::Builder::new()
            .name(format!("tapir-capture-{id}"))
            .spawn(move || {
                let report = capture::run(source.as_mut(), &sinks, batch, &stop, &counters);
                engine.do_send(CaptureEnded {
                    stage: id,
                    source,
                    report,
                });
            })
            .expect("spawning a capture thread");
    }

    fn resume_base(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down || self.upload.is_some() {
            return;
        }
        self.listeners
            .pipeline
            .do_send(PipelineChanged(self.base.addrs()));
        if matches!(
            self.base.state,
            CaptureState::Finished | CaptureState::Draining
        ) {
            return;
        }
        if self.base.capturing {
            // Its thread has not handed the source back yet (a short upload ended first).
            self.resume_pending = true;
            return;
        }
        let source = match self.base_source.take() {
            // An interface is reopened: frames buffered while paused are stale.
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
                self.base.state = CaptureState::Running;
                self.base.error = None;
                self.base.capturing = true;
                self.spawn_capture(ctx, &self.base, source);
            }
            Err(e) => {
                (self.log)(format!("{e}; retrying in {} s", LIVE_RETRY.as_secs()));
                self.base.state = CaptureState::Retrying;
                self.base.error = Some(e.to_string());
                ctx.run_later(LIVE_RETRY, |engine, ctx| engine.resume_base(ctx));
            }
        }
    }
}

fn new_stage(
    id: u64,
    config: &PipelineConfig,
    store: &Option<Addr<StoreActor>>,
    listeners: &Listeners,
    export: &Option<Addr<ExportActor>>,
    describe: String,
) -> Stage {
    let mut alert_sinks = vec![listeners.alerts.clone()];
    let mut record_sinks = Vec::new();
    if let Some(export) = export {
        alert_sinks.push(export.clone().recipient());
        record_sinks.push(export.clone().recipient());
    }
    let pipeline = Pipeline::start(config, record_sinks, store.clone(), alert_sinks);
    Stage {
        id,
        pipeline,
        describe,
        counters: Arc::new(CaptureCounters::default()),
        stop: Arc::new(AtomicBool::new(false)),
        state: CaptureState::Running,
        started: Instant::now(),
        error: None,
        capturing: false,
    }
}

/// Ends a pipeline's input (`pipeline::drain`); an actor gone meanwhile (a shutdown) ends
/// it early.
async fn drain(
    addrs: PipelineAddrs,
    detectors: Vec<Addr<crate::detect::actor::DetectorActor>>,
    store: Option<Addr<StoreActor>>,
) {
    let _ = crate::pipeline::drain(&addrs.flows, &detectors, &addrs.metrics, store.as_ref()).await;
}

impl Actor for Engine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.listeners
            .pipeline
            .do_send(PipelineChanged(self.base.addrs()));
        let source = self.base_source.take().expect("base source at start");
        self.base.capturing = true;
        self.spawn_capture(ctx, &self.base, source);
    }
}

impl Handler<CaptureEnded> for Engine {
    type Result = ();

    fn handle(&mut self, msg: CaptureEnded, ctx: &mut Self::Context) {
        let error = msg.report.error.as_ref().map(|e| e.to_string());
        if let Some(e) = &error {
            (self.log)(e.clone());
        }
        if self
            .upload
            .as_ref()
            .is_some_and(|u| u.stage.id == msg.stage)
        {
            let upload = self.upload.take().expect("upload");
            self.publish();
            for waiter in self.stop_waiters.drain(..) {
                let _ = waiter.send(());
            }
            self.uploads_replayed += 1;
            (self.log)(format!(
                "replay of {} ended after {} frames",
                upload.stage.describe, msg.report.frames
            ));
            let addrs = upload.stage.addrs();
            let detectors = upload.stage.pipeline.detectors.clone();
            // Drain the upload's pipeline into the store, then stop it; the temporary file
            // goes with `upload`.
            ctx.spawn(
                drain(addrs, detectors, self.store.clone())
                    .into_actor(self)
                    .map(move |_, _, _| {
                        upload.stage.pipeline.stop();
                        drop(upload.file);
                    }),
            );
            self.resume_base(ctx);
            return;
        }
        if msg.stage != self.base.id {
            return;
        }
        self.base.capturing = false;
        if self.upload.is_some() {
            // Paused for an upload.
            self.base.state = CaptureState::Paused;
            self.base_source = Some(msg.source);
            return;
        }
        if self.shutting_down {
            return;
        }
        if std::mem::take(&mut self.resume_pending) {
            // Paused for an upload that has already ended.
            self.base_source = Some(msg.source);
            self.resume_base(ctx);
            return;
        }
        match (&self.base_spec, error) {
            (BaseSource::Live { .. }, Some(e)) => {
                self.base.state = CaptureState::Retrying;
                self.base.error = Some(e);
                ctx.run_later(LIVE_RETRY, |engine, ctx| engine.resume_base(ctx));
            }
            (_, error) => {
                // A file ended (or was stopped): its flows are over; store them, and only then
                // call the replay finished.
                self.base.state = CaptureState::Draining;
                self.base.error = error;
                self.base_source = Some(msg.source);
                let detectors = self.base.pipeline.detectors.clone();
                let store = self.store.clone();
                ctx.spawn(
                    drain(self.base.addrs(), detectors, store)
                        .into_actor(self)
                        .map(|_, engine, _| engine.base.state = CaptureState::Finished),
                );
            }
        }
    }
}

impl Handler<GetEngineStatus> for Engine {
    type Result = MessageResult<GetEngineStatus>;

    fn handle(&mut self, _: GetEngineStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(EngineStatus {
            base: self.base.status(),
            upload: self.upload.as_ref().map(|u| u.stage.status()),
            uploads_replayed: self.uploads_replayed,
        })
    }
}

impl Handler<StartUpload> for Engine {
    type Result = Result<String, UploadRejected>;

    fn handle(&mut self, msg: StartUpload, ctx: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            return Err(UploadRejected::ShuttingDown);
        }
        if let Some(u) = &self.upload {
            return Err(UploadRejected::Busy(u.stage.describe.clone()));
        }
        let source = file_source(&msg.file, msg.speed, false)
            .map_err(|e| UploadRejected::NotACapture(e.to_string()))?;
        let describe = format!("upload {} at {}× pace", msg.name, msg.speed);
        let id = self.next_stage;
        self.next_stage += 1;
        let stage = new_stage(
            id,
            &self.config,
            &self.store,
            &self.listeners,
            &self.export,
            describe.clone(),
        );
        // Pause the base source; its capture thread reports back and keeps the source.
        self.base.stop.store(true, Ordering::Relaxed);
        if self.base.state == CaptureState::Running {
            self.base.state = CaptureState::Paused;
        }
        let mut stage = stage;
        stage.capturing = true;
        self.spawn_capture(ctx, &stage, source);
        self.listeners
            .pipeline
            .do_send(PipelineChanged(stage.addrs()));
        (self.log)(format!("replaying {describe}"));
        self.upload = Some(Upload {
            stage,
            file: msg.file,
        });
        self.publish();
        Ok(describe)
    }
}

impl Handler<StopReplay> for Engine {
    type Result = actix::ResponseFuture<bool>;

    fn handle(&mut self, _: StopReplay, _: &mut Self::Context) -> Self::Result {
        if let Some(u) = &self.upload {
            u.stage.stop.store(true, Ordering::Relaxed);
            // Answered once the upload's capture has ended and the engine is free.
            let (done, ended) = tokio::sync::oneshot::channel();
            self.stop_waiters.push(done);
            return Box::pin(async move {
                let _ = tokio::time::timeout(STOP_WAIT, ended).await;
                true
            });
        }
        let stopped = matches!(self.base_spec, BaseSource::File { .. })
            && self.base.state == CaptureState::Running;
        if stopped {
            self.base.stop.store(true, Ordering::Relaxed);
        }
        Box::pin(async move { stopped })
    }
}

impl Handler<Shutdown> for Engine {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops capture, drains every pipeline into the store and stops them.
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        self.base.stop.store(true, Ordering::Relaxed);
        let mut drains = vec![(self.base.addrs(), self.base.pipeline.detectors.clone())];
        if let Some(u) = &self.upload {
            u.stage.stop.store(true, Ordering::Relaxed);
            drains.push((u.stage.addrs(), u.stage.pipeline.detectors.clone()));
        }
        Box::pin(
            async move {
                // Give the capture threads a moment to hand over their last batches.
                tokio::time::sleep(Duration::from_millis(50)).await;
                for (addrs, detectors) in drains {
                    drain(addrs, detectors, None).await;
                }
            }
            .into_actor(self),
        )
    }
}
