//! The engine's stage machine, without actors or threads: which source feeds which pipeline,
//! and what the engine must do when capture ends, an upload arrives, a replay is stopped, a
//! retry is due or the server shuts down. Each transition returns the actions the actor
//! carries out, in order; the actor reports back what those actions produced (a source
//! opened or not, a drain done).

use serde::Serialize;

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

/// What kind of base source the server runs: it decides what a failure and a stop mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseKind {
    /// An interface: a failure is retried, a stop does not apply.
    Live,
    /// A capture file: it ends, drains and can be stopped.
    File,
    /// The synthetic scenario: it never ends by itself.
    Demo,
}

/// The id of the base stage; uploads get the ids after it.
pub const BASE: u64 = 1;

/// What the actor must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Tell the listeners (hub, HTTP workers) that this stage's pipeline is current.
    Publish(u64),
    /// Start the base's first capture thread, on the source the engine was given.
    StartBase,
    /// Start a capture thread reading the base source into the base pipeline again: the
    /// source kept from its last thread if there is one (and it is not an interface, whose
    /// buffered frames are stale by now), else a fresh open. Report the outcome with
    /// `base_opened` or `base_open_failed`.
    ResumeBase,
    /// Start the upload's capture thread (the actor opened its file already).
    StartUpload(u64),
    /// Ask this stage's capture thread to end (it reports back with `capture_ended`).
    StopCapture(u64),
    /// Keep the source the base's capture thread handed back, for a later resume.
    KeepBaseSource,
    /// Drain the base pipeline into the store; report with `base_drained`.
    DrainBase,
    /// Drain the upload's pipeline into the store, then stop it and delete its file.
    DrainUpload(u64),
    /// Answer the stop requests that wait for the upload's capture to end.
    WakeStopWaiters,
    /// Call `retry_due` after the retry interval.
    RetryLater,
    /// Drain every pipeline without the store (it is flushed by the caller) and reply.
    DrainAll(Vec<u64>),
}

/// Why an upload cannot start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An upload is replaying (its stage id).
    Busy(u64),
    ShuttingDown,
}

/// What `stop_replay` decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReply {
    /// The upload's capture was asked to end: answer once it has (`WakeStopWaiters`).
    WaitForUpload,
    /// The base file's capture was asked to end.
    Stopped,
    /// Nothing that a stop applies to is replaying.
    NothingToStop,
}

/// The state of the base stage and of the upload, if one replays.
#[derive(Debug)]
pub struct Stages {
    kind: BaseKind,
    base: CaptureState,
    base_error: Option<String>,
    /// A capture thread reads into the base pipeline.
    base_capturing: bool,
    /// The base should resume once its capture thread has handed its source back.
    resume_pending: bool,
    upload: Option<u64>,
    next_id: u64,
    uploads_replayed: u64,
    shutting_down: bool,
}

impl Stages {
    pub fn new(kind: BaseKind) -> Stages {
        Stages {
            kind,
            base: CaptureState::Running,
            base_error: None,
            base_capturing: false,
            resume_pending: false,
            upload: None,
            next_id: BASE + 1,
            uploads_replayed: 0,
            shutting_down: false,
        }
    }

    pub fn base_state(&self) -> &CaptureState {
        &self.base
    }

    pub fn base_error(&self) -> Option<&str> {
        self.base_error.as_deref()
    }

    /// The upload replaying now, if any.
    pub fn upload(&self) -> Option<u64> {
        self.upload
    }

    /// The stage whose pipeline the server shows.
    pub fn current(&self) -> u64 {
        self.upload.unwrap_or(BASE)
    }

    pub fn uploads_replayed(&self) -> u64 {
        self.uploads_replayed
    }

    /// The engine started: the base source (opened by the caller) starts reading.
    pub fn start(&mut self) -> Vec<Action> {
        self.base_capturing = true;
        vec![Action::Publish(BASE), Action::StartBase]
    }

    /// The base source opened after `ResumeBase`; its capture thread runs.
    pub fn base_opened(&mut self) {
        self.base = CaptureState::Running;
        self.base_error = None;
        self.base_capturing = true;
    }

    /// The base source could not be opened after `ResumeBase`.
    pub fn base_open_failed(&mut self, error: String) -> Vec<Action> {
        self.base_capturing = false;
        self.base = CaptureState::Retrying;
        self.base_error = Some(error);
        vec![Action::RetryLater]
    }

    /// Whether an upload could start now (asked before its file is opened).
    pub fn may_upload(&self) -> Result<(), Refusal> {
        if self.shutting_down {
            return Err(Refusal::ShuttingDown);
        }
        match self.upload {
            Some(id) => Err(Refusal::Busy(id)),
            None => Ok(()),
        }
    }

    /// An upload's file opened: it gets a stage of its own and the base pauses. Returns the
    /// new stage's id.
    pub fn upload_started(&mut self) -> Result<(u64, Vec<Action>), Refusal> {
        self.may_upload()?;
        let id = self.next_id;
        self.next_id += 1;
        self.upload = Some(id);
        if self.base == CaptureState::Running {
            self.base = CaptureState::Paused;
        }
        // The base's thread (if one runs) reports back and keeps its source.
        Ok((
            id,
            vec![
                Action::StopCapture(BASE),
                Action::StartUpload(id),
                Action::Publish(id),
            ],
        ))
    }

    /// The capture thread of `stage` ended, with `error` if its source failed.
    pub fn capture_ended(&mut self, stage: u64, error: Option<String>) -> Vec<Action> {
        if self.upload == Some(stage) {
            self.upload = None;
            self.uploads_replayed += 1;
            let mut actions = vec![
                Action::Publish(BASE),
                Action::WakeStopWaiters,
                Action::DrainUpload(stage),
            ];
            actions.extend(self.resume_base());
            return actions;
        }
        if stage != BASE {
            return Vec::new();
        }
        self.base_capturing = false;
        if self.upload.is_some() {
            // Paused for an upload.
            self.base = CaptureState::Paused;
            return vec![Action::KeepBaseSource];
        }
        if self.shutting_down {
            return Vec::new();
        }
        if std::mem::take(&mut self.resume_pending) {
            // Paused for an upload that has already ended.
            let mut actions = vec![Action::KeepBaseSource];
            actions.extend(self.resume_base());
            return actions;
        }
        match (self.kind, error) {
            (BaseKind::Live, Some(e)) => {
                self.base = CaptureState::Retrying;
                self.base_error = Some(e);
                vec![Action::RetryLater]
            }
            (_, error) => {
                // A file ended (or was stopped): its flows are over; store them, and only
                // then call the replay finished.
                self.base = CaptureState::Draining;
                self.base_error = error;
                vec![Action::KeepBaseSource, Action::DrainBase]
            }
        }
    }

    /// The base pipeline has been drained after its file ended.
    pub fn base_drained(&mut self) {
        if self.base == CaptureState::Draining {
            self.base = CaptureState::Finished;
        }
    }

    /// The retry interval after a failure has passed.
    pub fn retry_due(&mut self) -> Vec<Action> {
        // A retry planned before an upload (which resumed the base itself) is stale.
        if self.base != CaptureState::Retrying || self.base_capturing {
            return Vec::new();
        }
        self.resume_base()
    }

    /// The base source resumes after an upload or a failure, unless it has nothing left to
    /// read or the server is going.
    fn resume_base(&mut self) -> Vec<Action> {
        if self.shutting_down
            || self.upload.is_some()
            || matches!(self.base, CaptureState::Finished | CaptureState::Draining)
        {
            return Vec::new();
        }
        if self.base_capturing {
            // Its thread has not handed the source back yet (a short upload ended first).
            self.resume_pending = true;
            return Vec::new();
        }
        self.base_capturing = true;
        vec![Action::ResumeBase]
    }

    /// `POST /pcap/replay/stop`: the upload's replay, else the base file's.
    pub fn stop_replay(&mut self) -> (StopReply, Vec<Action>) {
        if let Some(id) = self.upload {
            return (StopReply::WaitForUpload, vec![Action::StopCapture(id)]);
        }
        if self.kind == BaseKind::File && self.base == CaptureState::Running {
            return (StopReply::Stopped, vec![Action::StopCapture(BASE)]);
        }
        (StopReply::NothingToStop, Vec::new())
    }

    /// The server is going: every capture stops and every pipeline drains.
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.shutting_down = true;
        let mut actions = vec![Action::StopCapture(BASE)];
        let mut drains = vec![BASE];
        if let Some(id) = self.upload {
            actions.push(Action::StopCapture(id));
            drains.push(id);
        }
        actions.push(Action::DrainAll(drains));
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn running(kind: BaseKind) -> Stages {
        let mut s = Stages::new(kind);
        assert_eq!(s.start(), [Publish(BASE), StartBase]);
        s.base_opened();
        s
    }

    #[test]
    fn a_file_that_ends_drains_then_finishes() {
        let mut s = running(BaseKind::File);
        assert_eq!(s.capture_ended(BASE, None), [KeepBaseSource, DrainBase]);
        assert_eq!(s.base_state(), &CaptureState::Draining);
        s.base_drained();
        assert_eq!(s.base_state(), &CaptureState::Finished);
        // Nothing is left to stop.
        assert_eq!(s.stop_replay().0, StopReply::NothingToStop);
    }

    #[test]
    fn a_file_that_fails_keeps_its_error_and_drains() {
        let mut s = running(BaseKind::File);
        let actions = s.capture_ended(BASE, Some("truncated".into()));
        assert_eq!(actions, [KeepBaseSource, DrainBase]);
        assert_eq!(s.base_error(), Some("truncated"));
    }

    #[test]
    fn a_live_failure_retries_until_the_interface_opens() {
        let mut s = running(BaseKind::Live);
        assert_eq!(s.capture_ended(BASE, Some("down".into())), [RetryLater]);
        assert_eq!(s.base_state(), &CaptureState::Retrying);
        assert_eq!(s.retry_due(), [ResumeBase]);
        assert_eq!(s.base_open_failed("still down".into()), [RetryLater]);
        assert_eq!(s.base_error(), Some("still down"));
        assert_eq!(s.retry_due(), [ResumeBase]);
        s.base_opened();
        assert_eq!(s.base_state(), &CaptureState::Running);
        assert_eq!(s.base_error(), None);
        // A retry that fires late does nothing.
        assert!(s.retry_due().is_empty());
    }

    #[test]
    fn an_upload_pauses_the_base_and_resumes_it_when_it_ends() {
        let mut s = running(BaseKind::Demo);
        let (id, actions) = s.upload_started().unwrap();
        assert_eq!(id, BASE + 1);
        assert_eq!(actions, [StopCapture(BASE), StartUpload(id), Publish(id)]);
        assert_eq!(s.base_state(), &CaptureState::Paused);
        assert_eq!(s.current(), id);
        // The base's thread hands its source back.
        assert_eq!(s.capture_ended(BASE, None), [KeepBaseSource]);
        assert_eq!(
            s.capture_ended(id, None),
            [Publish(BASE), WakeStopWaiters, DrainUpload(id), ResumeBase]
        );
        assert_eq!(s.current(), BASE);
        assert_eq!(s.uploads_replayed(), 1);
        s.base_opened();
        assert_eq!(s.base_state(), &CaptureState::Running);
        // The next upload gets the next id.
        assert_eq!(s.upload_started().unwrap().0, BASE + 2);
    }

    #[test]
    fn a_short_upload_that_ends_before_the_base_pauses_resumes_it_afterwards() {
        let mut s = running(BaseKind::Live);
        let (id, _) = s.upload_started().unwrap();
        // The upload ends first: the base's thread still holds the source.
        let actions = s.capture_ended(id, None);
        assert_eq!(actions, [Publish(BASE), WakeStopWaiters, DrainUpload(id)]);
        assert_eq!(s.capture_ended(BASE, None), [KeepBaseSource, ResumeBase]);
    }

    #[test]
    fn a_second_upload_is_refused_while_one_replays() {
        let mut s = running(BaseKind::Demo);
        let (id, _) = s.upload_started().unwrap();
        assert_eq!(s.may_upload(), Err(Refusal::Busy(id)));
        assert_eq!(s.upload_started(), Err(Refusal::Busy(id)));
    }

    #[test]
    fn an_upload_arriving_while_the_base_drains_leaves_the_drain_alone() {
        let mut s = running(BaseKind::File);
        assert_eq!(s.capture_ended(BASE, None), [KeepBaseSource, DrainBase]);
        let (id, actions) = s.upload_started().unwrap();
        assert_eq!(actions, [StopCapture(BASE), StartUpload(id), Publish(id)]);
        assert_eq!(s.base_state(), &CaptureState::Draining);
        // The drain ends during the upload; the upload's end does not reopen the file.
        s.base_drained();
        assert_eq!(
            s.capture_ended(id, None),
            [Publish(BASE), WakeStopWaiters, DrainUpload(id)]
        );
        assert_eq!(s.base_state(), &CaptureState::Finished);
    }

    #[test]
    fn an_upload_during_a_retry_resumes_the_interface_when_it_ends() {
        let mut s = running(BaseKind::Live);
        s.capture_ended(BASE, Some("down".into()));
        let (id, _) = s.upload_started().unwrap();
        assert_eq!(s.base_state(), &CaptureState::Retrying);
        // The retry planned before the upload fires during it: nothing happens.
        assert!(s.retry_due().is_empty());
        let actions = s.capture_ended(id, None);
        assert_eq!(actions.last(), Some(&ResumeBase));
        s.base_opened();
        // And a stale retry after the resume does nothing either.
        assert!(s.retry_due().is_empty());
    }

    #[test]
    fn stop_replay_stops_the_upload_else_a_running_file_else_nothing() {
        let mut s = running(BaseKind::File);
        let (id, _) = s.upload_started().unwrap();
        assert_eq!(
            s.stop_replay(),
            (StopReply::WaitForUpload, vec![StopCapture(id)])
        );
        s.capture_ended(BASE, None);
        s.capture_ended(id, None);
        s.base_opened();
        assert_eq!(
            s.stop_replay(),
            (StopReply::Stopped, vec![StopCapture(BASE)])
        );
        let mut live = running(BaseKind::Live);
        assert_eq!(live.stop_replay(), (StopReply::NothingToStop, vec![]));
        let mut demo = running(BaseKind::Demo);
        assert_eq!(demo.stop_replay(), (StopReply::NothingToStop, vec![]));
    }

    #[test]
    fn a_stop_during_a_retry_stops_nothing_and_the_retry_goes_on() {
        let mut s = running(BaseKind::Live);
        s.capture_ended(BASE, Some("down".into()));
        assert_eq!(s.stop_replay(), (StopReply::NothingToStop, vec![]));
        assert_eq!(s.retry_due(), [ResumeBase]);
    }

    #[test]
    fn a_shutdown_during_a_retry_cancels_it() {
        let mut s = running(BaseKind::Live);
        s.capture_ended(BASE, Some("down".into()));
        assert_eq!(s.shutdown(), [StopCapture(BASE), DrainAll(vec![BASE])]);
        assert!(s.retry_due().is_empty());
        assert_eq!(s.may_upload(), Err(Refusal::ShuttingDown));
    }

    #[test]
    fn a_shutdown_during_an_upload_stops_and_drains_both_and_resumes_nothing() {
        let mut s = running(BaseKind::Demo);
        let (id, _) = s.upload_started().unwrap();
        assert_eq!(
            s.shutdown(),
            [StopCapture(BASE), StopCapture(id), DrainAll(vec![BASE, id])]
        );
        assert_eq!(s.capture_ended(BASE, None), [KeepBaseSource]);
        // The upload's end still drains its pipeline and answers waiting stops, but the
        // base does not resume.
        assert_eq!(
            s.capture_ended(id, None),
            [Publish(BASE), WakeStopWaiters, DrainUpload(id)]
        );
        assert!(s.capture_ended(BASE, None).is_empty());
    }

    #[test]
    fn a_stale_capture_report_changes_nothing() {
        let mut s = running(BaseKind::Demo);
        assert!(s.capture_ended(7, None).is_empty());
        assert_eq!(s.base_state(), &CaptureState::Running);
    }
}
