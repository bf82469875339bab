//! Wiring: starts the consumer actors and lists the recipients capture feeds.
//!
//! The flows actor runs on its own arbiter (thread) so that flow tracking, metrics and
//! capture/decoding use both cores; everything else shares the system arbiter.

use actix::{Actor, Addr, Arbiter, Recipient};

use crate::config::Config;
use crate::flow::actor::FlowsActor;
use crate::messages::{FlowRecordsMsg, PacketBatchMsg};
use crate::metrics::actor::MetricsActor;

/// The running consumer actors of one pipeline.
pub struct Pipeline {
    pub flows: Addr<FlowsActor>,
    pub metrics: Addr<MetricsActor>,
    flows_arbiter: Arbiter,
}

impl Pipeline {
    /// Starts the actors; finished flows go to `record_sinks`. Must run inside an actix system.
    pub fn start(config: &Config, record_sinks: Vec<Recipient<FlowRecordsMsg>>) -> Pipeline {
        let queue = config.capture.queue_batches;
        let metrics = MetricsActor::new(config.metrics.clone(), queue).start();
        let status = vec![metrics.clone().recipient()];
        let flow_config = config.flows.clone();
        let flows_arbiter = Arbiter::new();
        let flows = FlowsActor::start_in_arbiter(&flows_arbiter.handle(), move |_| {
            FlowsActor::new(flow_config, record_sinks, status, queue)
        });
        Pipeline {
            flows,
            metrics,
            flows_arbiter,
        }
    }

    /// Every actor that consumes packet batches.
    pub fn batch_sinks(&self) -> Vec<Recipient<PacketBatchMsg>> {
        vec![
            self.flows.clone().recipient(),
            self.metrics.clone().recipient(),
        ]
    }

    /// Stops the flows arbiter's thread.
    pub fn stop(self) {
        self.flows_arbiter.stop();
    }
}
