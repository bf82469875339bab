//! The flows actor: a thin shell around `FlowTable`.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Recipient};

use super::{FlowConfig, FlowMark, FlowQuery, FlowRecord, FlowTable, FlowTableStats};
use crate::credit::{Backlog, Credit};
use crate::messages::{
    FlowRecordsMsg, FlowTableStatus, MarkedBatchMsg, PacketBatchMsg, RecordsHold,
};
use crate::names::usage::{Usage, UsageSummary};
use crate::names::{AddressNames, Naming};
use crate::packet::PacketBatch;

/// Where finished flows go.
#[derive(Default)]
pub struct RecordSinks {
    /// Readers that keep capture's pace (the detectors, whose thread also reads every
    /// packet): their messages hold the finishing batch's capture credit.
    pub paced: Vec<Recipient<FlowRecordsMsg>>,
    /// Readers that bound what they hold themselves (the store's pending buffer, export's
    /// queue, an output file) and must never slow live capture down (reading a file, they
    /// are paced as well).
    pub buffered: Vec<BufferedSink>,
}

/// A reader that buffers records on its own terms.
pub struct BufferedSink {
    pub to: Recipient<FlowRecordsMsg>,
    /// Bounds its mailbox during live capture, for a reader that can stall (the store
    /// while it syncs); `None` for one that never does.
    pub backlog: Option<Backlog>,
}

impl BufferedSink {
    /// A reader whose mailbox needs no bound.
    pub fn unbounded(to: Recipient<FlowRecordsMsg>) -> Self {
        BufferedSink { to, backlog: None }
    }
}

/// End of input: emit every flow as a record and reply with the table's counters.
#[derive(actix::Message)]
#[rtype(result = "FlowTableStats")]
pub struct FlushFlows;

/// The flow table's counters.
#[derive(actix::Message)]
#[rtype(result = "FlowTableStats")]
pub struct GetFlowStats;

/// Active flows matching the query, most recent first.
#[derive(actix::Message)]
#[rtype(result = "Vec<FlowRecord>")]
pub struct GetActiveFlows(pub FlowQuery);

/// Owns the flow table; forwards finished flows to the record sinks and marked batches to
/// the detectors that read packets.
pub struct FlowsActor {
    table: FlowTable,
    record_sinks: RecordSinks,
    status_sinks: Vec<Recipient<FlowTableStatus>>,
    packet_sinks: Vec<Recipient<MarkedBatchMsg>>,
    mailbox: usize,
    /// Applications and names of the flows reported (absent when names are off).
    usage: Option<Usage>,
    scratch: Vec<FlowRecord>,
    marks: Vec<FlowMark>,
}

impl FlowsActor {
    pub fn new(
        config: FlowConfig,
        record_sinks: RecordSinks,
        status_sinks: Vec<Recipient<FlowTableStatus>>,
        packet_sinks: Vec<Recipient<MarkedBatchMsg>>,
        mailbox: usize,
        names: Option<Naming>,
    ) -> Self {
        let (table, usage) = match names {
            Some(n) => (
                FlowTable::new(config).with_names(n.dns, n.apps),
                Some(n.usage),
            ),
            None => (FlowTable::new(config), None),
        };
        FlowsActor {
            table,
            record_sinks,
            status_sinks,
            packet_sinks,
            mailbox,
            usage,
            scratch: Vec::new(),
            marks: Vec::new(),
        }
    }

    fn stats(&self) -> FlowTableStats {
        self.table.stats()
    }

    /// Sends the finished flows on; `batch` is the batch that finished them, if any.
    fn publish(&mut self, batch: Option<&Arc<PacketBatch>>) {
        if !self.scratch.is_empty() {
            if let Some(usage) = &mut self.usage {
                for r in &self.scratch {
                    usage.record(r);
                }
            }
            let records: Arc<[FlowRecord]> = self.scratch.drain(..).collect();
            // do_send queues regardless of mailbox capacity, so each message carries what
            // bounds it: paced sinks hold the batch's credit; the others hold it too while a
            // file is read (a store busy for a moment queued records without bound), and
            // during live capture a place in their backlog, if they have one, or are dropped
            // and counted when it is full (`buffered_hold`).
            let paced = batch.map_or(RecordsHold::Nothing, |b| RecordsHold::Batch(Arc::clone(b)));
            for sink in &self.record_sinks.paced {
                sink.do_send(FlowRecordsMsg(Arc::clone(&records), paced.clone()));
            }
            for sink in &self.record_sinks.buffered {
                if let Some(hold) = buffered_hold(batch, sink.backlog.as_ref(), records.len()) {
                    sink.to.do_send(FlowRecordsMsg(Arc::clone(&records), hold));
                }
            }
        }
        // Only the latest status matters: if a consumer's mailbox is full, skip it rather than
        // queue an unbounded backlog behind a lagging consumer.
        let status = FlowTableStatus(self.stats());
        for sink in &self.status_sinks {
            let _ = sink.try_send(status);
        }
    }
}

/// What `records` finished by `batch` hold on their way to a buffered sink: the batch (and
/// its credit) while a file is read; during live capture, a place in the sink's backlog if
/// it has one, or `None` when that is full (the backlog counts them dropped); nothing for
/// the records of a final flush.
fn buffered_hold(
    batch: Option<&Arc<PacketBatch>>,
    backlog: Option<&Backlog>,
    records: usize,
) -> Option<RecordsHold> {
    match (batch, backlog) {
        (None, _) => Some(RecordsHold::Nothing),
        (Some(b), _) if b.credit.as_ref().is_some_and(Credit::waited_for) => {
            Some(RecordsHold::Batch(Arc::clone(b)))
        }
        (Some(_), Some(backlog)) => backlog
            .admit(records)
            .map(|ticket| RecordsHold::Backlog(Arc::new(ticket))),
        (Some(_), None) => Some(RecordsHold::Nothing),
    }
}

impl Actor for FlowsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<PacketBatchMsg> for FlowsActor {
    type Result = ();

    fn handle(&mut self, msg: PacketBatchMsg, _: &mut Self::Context) {
        if self.packet_sinks.is_empty() {
            self.table.ingest(&msg.0, &mut self.scratch);
            self.publish(Some(&msg.0));
            return;
        }
        self.table
            .ingest_marked(&msg.0, &mut self.scratch, &mut self.marks);
        // Records first: a detector that reads both sees a connection's end after its packets.
        self.publish(Some(&msg.0));
        let marks: Arc<[FlowMark]> = self.marks.as_slice().into();
        for sink in &self.packet_sinks {
            // The batch keeps its capture credit while the detectors hold it, so their
            // mailboxes are bounded by the credits, as the flows mailbox is.
            sink.do_send(MarkedBatchMsg {
                batch: Arc::clone(&msg.0),
                marks: Arc::clone(&marks),
            });
        }
    }
}

impl Handler<FlushFlows> for FlowsActor {
    type Result = actix::MessageResult<FlushFlows>;

    fn handle(&mut self, _: FlushFlows, _: &mut Self::Context) -> Self::Result {
        let stats: FlowTableStats = self.stats();
        self.table.flush_all(&mut self.scratch);
        self.publish(None);
        actix::MessageResult(stats)
    }
}

impl Handler<GetFlowStats> for FlowsActor {
    type Result = actix::MessageResult<GetFlowStats>;

    fn handle(&mut self, _: GetFlowStats, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.stats())
    }
}

impl Handler<GetActiveFlows> for FlowsActor {
    type Result = actix::MessageResult<GetActiveFlows>;

    fn handle(&mut self, msg: GetActiveFlows, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.table.active(msg.0.limit, |r| msg.0.matches(r)))
    }
}

/// HTTP → flows: what the passive-DNS table knows of an address (`None` when names are
/// off or nothing is known).
#[derive(actix::Message)]
#[rtype(result = "Option<AddressNames>")]
pub struct GetAddressNames(pub std::net::IpAddr);

impl Handler<GetAddressNames> for FlowsActor {
    type Result = Option<AddressNames>;

    fn handle(&mut self, msg: GetAddressNames, _: &mut Self::Context) -> Self::Result {
        self.table.names()?.address(msg.0).cloned()
    }
}

/// HTTP or analyze → flows: bytes, flows and hosts per application, category and server
/// name over the live window (finished flows and those still in the table), and what named
/// them (`None` when names are off).
#[derive(actix::Message)]
#[rtype(result = "Option<UsageSummary>")]
pub struct GetUsage;

impl Handler<GetUsage> for FlowsActor {
    type Result = Option<UsageSummary>;

    fn handle(&mut self, _: GetUsage, _: &mut Self::Context) -> Self::Result {
        let usage = self.usage.as_ref()?;
        let now = self.table.clock().0.div_euclid(1_000_000_000);
        let mut window = usage.window(Some(now));
        self.table.visit_active(|r| window.add(r));
        Some(window.summary())
    }
}

/// HTTP → flows: the best name known for each address (the server name its flows were
/// last seen with, else the newest name a DNS answer gave it), in the order asked.
#[derive(actix::Message)]
#[rtype(result = "Vec<Option<Arc<str>>>")]
pub struct GetBestNames(pub Vec<std::net::IpAddr>);

impl Handler<GetBestNames> for FlowsActor {
    type Result = actix::MessageResult<GetBestNames>;

    fn handle(&mut self, msg: GetBestNames, _: &mut Self::Context) -> Self::Result {
        let names = msg
            .0
            .iter()
            .map(|ip| {
                self.usage
                    .as_ref()
                    .and_then(|u| u.name_of(*ip))
                    .or_else(|| self.table.names()?.address(*ip)?.best())
            })
            .collect();
        actix::MessageResult(names)
    }
}

/// Puts the best names the flows stage knows on `talkers`.
pub async fn name_talkers(
    flows: &actix::Addr<FlowsActor>,
    talkers: &mut [crate::model::traffic::TopTalker],
) -> Result<(), actix::MailboxError> {
    if talkers.is_empty() {
        return Ok(());
    }
    let ips = talkers.iter().map(|t| t.ip).collect();
    let names = flows.clone().send(GetBestNames(ips)).await?;
    for (t, name) in talkers.iter_mut().zip(names) {
        t.name = name;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::Credits;

    fn batch(credit: Option<crate::credit::Credit>) -> Arc<PacketBatch> {
        let mut b = PacketBatch::with_capacity(1);
        b.credit = credit;
        Arc::new(b)
    }

    #[test]
    fn buffered_sinks_hold_a_files_credit_until_they_drop_the_records_but_never_a_live_one() {
        let credits = Credits::new(2);
        let file = batch(credits.take(|| false));
        let hold = buffered_hold(Some(&file), None, 10).unwrap();
        assert!(
            hold.is_paced(),
            "reading a file, the store keeps capture's pace"
        );
        drop(file);
        assert_eq!(
            credits.free(),
            1,
            "the records waiting for the store hold the credit"
        );
        drop(hold);
        assert_eq!(
            credits.free(),
            2,
            "taken by the store, the credit comes back"
        );

        let live = batch(credits.try_take());
        let hold = buffered_hold(Some(&live), None, 10).unwrap();
        assert!(
            matches!(hold, RecordsHold::Nothing),
            "live capture never waits for the store"
        );
        assert!(matches!(
            buffered_hold(None, None, 10),
            Some(RecordsHold::Nothing)
        ));
    }

    #[test]
    fn live_records_take_a_place_in_the_sinks_backlog_or_are_dropped_and_counted() {
        let credits = Credits::new(4);
        let backlog = Backlog::new(100);
        let live = batch(credits.try_take());
        let first = buffered_hold(Some(&live), Some(&backlog), 80).unwrap();
        assert!(matches!(first, RecordsHold::Backlog(_)));
        assert!(
            buffered_hold(Some(&live), Some(&backlog), 30).is_none(),
            "a store stalled on 80 records has no room for 30 more"
        );
        assert_eq!(backlog.dropped(), 30);
        drop(first);
        let _second = buffered_hold(Some(&live), Some(&backlog), 30).unwrap();
        // A file's records wait instead, and a final flush's always go.
        let file = batch(credits.take(|| false));
        let full = backlog.admit(100);
        assert!(full.is_none(), "30 still queued, so 100 more do not fit");
        assert!(
            buffered_hold(Some(&file), Some(&backlog), 1_000)
                .unwrap()
                .is_paced()
        );
        assert!(buffered_hold(None, Some(&backlog), 1_000).is_some());
    }
}
