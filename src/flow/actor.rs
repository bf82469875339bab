//! The flows actor: a thin shell around `FlowTable`.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Recipient};

use super::{FlowConfig, FlowRecord, FlowTable, FlowTableStats};
use crate::messages::{
    FlowRecordsMsg, FlowTableStatus, FlushFlows, GetActiveFlows, GetFlowStats, PacketBatchMsg,
};

/// Owns the flow table; forwards finished flows to the record sinks.
pub struct FlowsActor {
    table: FlowTable,
    record_sinks: Vec<Recipient<FlowRecordsMsg>>,
    status_sinks: Vec<Recipient<FlowTableStatus>>,
    mailbox: usize,
    scratch: Vec<FlowRecord>,
}

impl FlowsActor {
    pub fn new(
        config: FlowConfig,
        record_sinks: Vec<Recipient<FlowRecordsMsg>>,
        status_sinks: Vec<Recipient<FlowTableStatus>>,
        mailbox: usize,
    ) -> Self {
        FlowsActor {
            table: FlowTable::new(config),
            record_sinks,
            status_sinks,
            mailbox,
            scratch: Vec::new(),
        }
    }

    fn publish(&mut self) {
        if !self.scratch.is_empty() {
            let records: Arc<[FlowRecord]> = self.scratch.drain(..).collect();
            for sink in &self.record_sinks {
                // Records must not be lost: do_send queues regardless of mailbox capacity, and
                // the writers drain far faster than flows finish.
                sink.do_send(FlowRecordsMsg(Arc::clone(&records)));
            }
        }
        // Only the latest status matters: if a consumer's mailbox is full, skip it rather than
        // queue an unbounded backlog behind a lagging consumer.
        let status = FlowTableStatus(self.table.stats());
        for sink in &self.status_sinks {
            let _ = sink.try_send(status);
        }
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
        self.table.ingest(&msg.0, &mut self.scratch);
        self.publish();
    }
}

impl Handler<FlushFlows> for FlowsActor {
    type Result = actix::MessageResult<FlushFlows>;

    fn handle(&mut self, _: FlushFlows, _: &mut Self::Context) -> Self::Result {
        let stats: FlowTableStats = self.table.stats();
        self.table.flush_all(&mut self.scratch);
        self.publish();
        actix::MessageResult(stats)
    }
}

impl Handler<GetFlowStats> for FlowsActor {
    type Result = actix::MessageResult<GetFlowStats>;

    fn handle(&mut self, _: GetFlowStats, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.table.stats())
    }
}

impl Handler<GetActiveFlows> for FlowsActor {
    type Result = actix::MessageResult<GetActiveFlows>;

    fn handle(&mut self, msg: GetActiveFlows, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.table.active(msg.0.limit, |r| msg.0.matches(r)))
    }
}
