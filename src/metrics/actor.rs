//! The metrics actor: a thin shell around `MetricsAggregator`.

use actix::{Actor, Context, Handler, MessageResult, Recipient};

use super::{MetricsAggregator, MetricsConfig, PacketView, StatsSnapshot};
use crate::messages::{FlowTableStatus, MinuteSnapshots, PacketBatchMsg};

/// The published statistics snapshot.
#[derive(actix::Message)]
#[rtype(result = "StatsSnapshot")]
pub struct GetStats {
    pub top_talkers: usize,
}

/// The most recent packets, newest first.
#[derive(actix::Message)]
#[rtype(result = "Vec<PacketView>")]
pub struct GetPackets {
    pub limit: usize,
}

/// One recent packet by id.
#[derive(actix::Message)]
#[rtype(result = "Option<PacketView>")]
pub struct GetPacket {
    pub id: u64,
}

/// End of input: close the current minute and send it on; replies when sent.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct FinishMinute;

pub struct MetricsActor {
    metrics: MetricsAggregator,
    mailbox: usize,
    /// Gets each minute's snapshot when the minute ends (the store).
    minute_sink: Option<Recipient<MinuteSnapshots>>,
}

impl MetricsActor {
    pub fn new(
        config: MetricsConfig,
        mailbox: usize,
        minute_sink: Option<Recipient<MinuteSnapshots>>,
    ) -> Self {
        MetricsActor {
            metrics: MetricsAggregator::new(config),
            mailbox,
            minute_sink,
        }
    }

    fn publish_minutes(&mut self) {
        let minutes = self.metrics.take_finished_minutes();
        if let Some(sink) = &self.minute_sink
            && !minutes.is_empty()
        {
            sink.do_send(MinuteSnapshots(minutes));
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
        self.publish_minutes();
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

impl Handler<FinishMinute> for MetricsActor {
    type Result = ();

    fn handle(&mut self, _: FinishMinute, _: &mut Self::Context) {
        self.metrics.finish_minute();
        self.publish_minutes();
    }
}
