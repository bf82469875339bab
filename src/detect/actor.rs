//! The detector actor: a thin shell around one `Detector`; findings go to the alerts actor.

use actix::{Actor, Context, Handler, MessageResult, Recipient};

use super::{Detector, DetectorStats, Rule};
use crate::messages::{FindingsMsg, FlowRecordsMsg, MarkedBatchMsg};

/// End of input: a detector reports what is pending (to the alerts actor, before replying)
/// and replies with its counters.
#[derive(actix::Message)]
#[rtype(result = "(Rule, DetectorStats)")]
pub struct FlushDetectors;

pub struct DetectorActor {
    detector: Box<dyn Detector>,
    alerts: Recipient<FindingsMsg>,
    mailbox: usize,
}

impl DetectorActor {
    pub fn new(
        detector: Box<dyn Detector>,
        alerts: Recipient<FindingsMsg>,
        mailbox: usize,
    ) -> Self {
        DetectorActor {
            detector,
            alerts,
            mailbox,
        }
    }

    fn send(&self, mut findings: Vec<super::Finding>) {
        if !findings.is_empty() {
            // Expiry and end-of-input reports come out of hash maps in no particular order;
            // sorting makes alert ids the same on every run.
            findings.sort_by_cached_key(|f| (f.ts, f.source, f.target.to_string()));
            // Findings are rate-limited per key by the detectors, so this stays small.
            self.alerts.do_send(FindingsMsg(findings));
        }
    }
}

impl Actor for DetectorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<MarkedBatchMsg> for DetectorActor {
    type Result = ();

    fn handle(&mut self, msg: MarkedBatchMsg, _: &mut Self::Context) {
        let mut out = Vec::new();
        self.detector.on_packets(&msg.batch, &msg.marks, &mut out);
        self.send(out);
    }
}

impl Handler<FlowRecordsMsg> for DetectorActor {
    type Result = ();

    fn handle(&mut self, msg: FlowRecordsMsg, _: &mut Self::Context) {
        let mut out = Vec::new();
        self.detector.on_flows(&msg.0, &mut out);
        self.send(out);
    }
}

impl Handler<FlushDetectors> for DetectorActor {
    type Result = MessageResult<FlushDetectors>;

    fn handle(&mut self, _: FlushDetectors, _: &mut Self::Context) -> Self::Result {
        let mut out = Vec::new();
        self.detector.flush(&mut out);
        self.send(out);
        MessageResult((self.detector.rule(), self.detector.stats()))
    }
}
