//! The flows actor: a thin shell around `FlowTable`.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Recipient};

use super::{FlowConfig, FlowMark, FlowQuery, FlowRecord, FlowTable, FlowTableStats};
use crate::credit::Credit;
use crate::messages::{FlowRecordsMsg, FlowTableStatus, MarkedBatchMsg, PacketBatchMsg};
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
    pub buffered: Vec<Recipient<FlowRecordsMsg>>,
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
            // Records must not be lost: do_send queues regardless of mailbox capacity. Paced
            // sinks are bounded by the batch's credit. The others buffer on their own terms
            // while capture is live; reading a file, they are paced too, or a store busy
            // for a moment (writing a burst of rollups) queued records without bound.
            for sink in &self.record_sinks.paced {
                sink.do_send(FlowRecordsMsg(Arc::clone(&records), batch.cloned()));
            }
            let pace = buffered_pace(batch);
            for sink in &self.record_sinks.buffered {
                sink.do_send(FlowRecordsMsg(Arc::clone(&records), pace.clone()));
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

/// What records finished by `batch` carry to a buffered sink: the batch (and its credit)
/// while a file is read, nothing during live capture.
fn buffered_pace(batch: Option<&Arc<PacketBatch>>) -> Option<Arc<PacketBatch>> {
    batch
        .filter(|b| b.credit.as_ref().is_some_and(Credit::waited_for))
        .cloned()
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
        let pace = buffered_pace(Some(&file));
        assert!(
            pace.is_some(),
            "reading a file, the store keeps capture's pace"
        );
        drop(file);
        assert_eq!(
            credits.free(),
            1,
            "the records waiting for the store hold the credit"
        );
        drop(pace);
        assert_eq!(
            credits.free(),
            2,
            "taken by the store, the credit comes back"
        );

        let live = batch(credits.try_take());
        assert!(
            buffered_pace(Some(&live)).is_none(),
            "live capture never waits for the store"
        );
        assert!(buffered_pace(Some(&batch(None))).is_none());
        assert!(buffered_pace(None).is_none(), "records of a final flush");
    }
}
