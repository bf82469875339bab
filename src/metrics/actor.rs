//! The metrics actor: a thin shell around `MetricsAggregator`.

use actix::{Actor, Context, Handler, MessageResult};

use super::{MetricsAggregator, MetricsConfig};
use crate::messages::{FlowTableStatus, GetPacket, GetPackets, GetStats, PacketBatchMsg};

pub struct MetricsActor {
    metrics: MetricsAggregator,
    mailbox: usize,
}

impl MetricsActor {
    pub fn new(config: MetricsConfig, mailbox: usize) -> Self {
        MetricsActor {
            metrics: MetricsAggregator::new(config),
            mailbox,
        }
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<PacketBatchMsg> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: PacketBatchMsg, _: &mut Self::Context) {
        self.metrics.ingest(&msg.0);
    }
}

impl Handler<FlowTableStatus> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: FlowTableStatus, _: &mut Self::Context) {
        self.metrics.set_active_sessions(msg.0.active);
    }
}

impl Handler<GetStats> for MetricsActor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, msg: GetStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.metrics.snapshot(msg.top_talkers))
    }
}

impl Handler<GetPackets> for MetricsActor {
    type Result = MessageResult<GetPackets>;

    fn handle(&mut self, msg: GetPackets, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.metrics.packets().latest(msg.limit))
    }
}

impl Handler<GetPacket> for MetricsActor {
    type Result = MessageResult<GetPacket>;

    fn handle(&mut self, msg: GetPacket, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.metrics.packets().get(msg.id))
    }
}
