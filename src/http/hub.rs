//! The WebSocket hub: fans the live streams out to subscribed clients.
//!
//! Each client has a writer thread fed through a small bounded queue. The hub never waits for
//! a client: a client whose queue is full is dropped (and counted), so one slow browser cannot
//! slow the others or the pipeline. Payloads are built once per tick and shared.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, MessageResult, WrapFuture};
use serde::Serialize;
use serde_json::json;
use tungstenite::Message;

use super::route::Stream;
use crate::alert::Alert;
use crate::flow::actor::{GetActiveFlows, name_talkers};
use crate::messages::AlertsChanged;
use crate::metrics::actor::GetStats;
use crate::pipeline::{PipelineAddrs, PipelineChanged};

use crate::flow::FlowQuery;

/// Server → hub: a WebSocket client wants `stream`; frames go to `tx`. Replies false when
/// the client cap is reached.
#[derive(actix::Message)]
#[rtype(result = "bool")]
pub struct Subscribe {
    pub stream: Stream,
    pub tx: std::sync::mpsc::SyncSender<tungstenite::Message>,
    /// Set by the client's writer thread when it ends.
    pub closed: Arc<std::sync::atomic::AtomicBool>,
}

/// Close every WebSocket (shutdown).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct CloseAll;

/// The hub's counters.
#[derive(actix::Message)]
#[rtype(result = "HubStatus")]
pub struct GetHubStatus;

use super::config::HubConfig;

/// Client counts and what was sent, for `/debug` and `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HubStatus {
    pub clients: BTreeMap<&'static str, usize>,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    /// Clients dropped because their queue was full.
    pub dropped_slow: u64,
    /// Clients turned away at the cap.
    pub rejected: u64,
    /// Size of the last message of each stream, in bytes.
    pub last_message_bytes: BTreeMap<&'static str, usize>,
}

struct Client {
    stream: Stream,
    tx: SyncSender<Message>,
    /// Set by the writer thread when it has ended.
    closed: Arc<AtomicBool>,
}

/// The hub actor.
pub struct HubActor {
    config: HubConfig,
    clients: Vec<Client>,
    pipeline: Option<PipelineAddrs>,
    /// Alerts changed since the last alert message, by id.
    pending_alerts: BTreeMap<u64, Alert>,
    /// A query for the stream's next message is under way: a busy pipeline answers late,
    /// and ticks must not pile up queries behind it.
    metrics_pending: bool,
    flows_pending: bool,
    status: HubStatus,
    /// IP masking on: payloads are masked before they go out.
    mask: Arc<AtomicBool>,
}

/// Alert changes are gathered for this long, so a flood that updates its alert on every
/// batch costs one message, not hundreds.
const ALERT_COALESCE: Duration = Duration::from_millis(250);

impl HubActor {
    pub fn new(config: HubConfig) -> Self {
        HubActor {
            config,
            clients: Vec::new(),
            pipeline: None,
            pending_alerts: BTreeMap::new(),
            metrics_pending: false,
            flows_pending: false,
            status: HubStatus::default(),
            mask: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Shares the IP-masking switch with the API.
    pub fn with_mask(mut self, mask: Arc<AtomicBool>) -> Self {
        self.mask = mask;
        self
    }

    fn has_clients(&self, stream: Stream) -> bool {
        self.clients.iter().any(|c| c.stream == stream)
    }

    fn broadcast(&mut self, stream: Stream, mut payload: serde_json::Value) {
        if self.mask.load(Ordering::Relaxed) {
            crate::privacy::mask_value(&mut payload);
        }
        let text = payload.to_string();
        let len = text.len();
        self.status.last_message_bytes.insert(stream.name(), len);
        let message = Message::text(text);
        let status = &mut self.status;
        self.clients.retain(|c| {
            if c.stream != stream {
                return true;
            }
            match c.tx.try_send(message.clone()) {
                Ok(()) => {
                    status.messages_sent += 1;
                    status.bytes_sent += len as u64;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    status.dropped_slow += 1;
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }

    fn tick_metrics(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = self.pipeline.clone() else {
            return;
        };
        if !self.has_clients(Stream::Metrics) || self.metrics_pending {
            return;
        }
        self.metrics_pending = true;
        let (talkers, points) = (self.config.talkers, self.config.series_points);
        let fut = async move {
            let mut stats = p
                .metrics
                .send(GetStats {
                    top_talkers: talkers,
                })
                .await?;
            name_talkers(&p.flows, &mut stats.top_talkers).await?;
            Ok::<_, actix::MailboxError>(stats)
        };
        ctx.spawn(fut.into_actor(self).map(move |stats, hub, _| {
            hub.metrics_pending = false;
            if let Ok(mut stats) = stats {
                let skip = stats.bandwidth_series.len().saturating_sub(points);
                stats.bandwidth_series.drain(..skip);
                let text = json!({
                    "protocol_counts": stats.protocol_counts,
                    "bandwidth_series": stats.bandwidth_series,
                    "top_talkers": stats.top_talkers,
                    "packets_per_sec": stats.packets_per_sec,
                    "bytes_per_sec": stats.bytes_per_sec,
                    "active_sessions": stats.active_sessions,
                    "total_packets": stats.total_packets,
                    "total_bytes": stats.total_bytes,
                    "timestamp": stats.timestamp,
                });
                hub.broadcast(Stream::Metrics, text);
            }
        }));
    }

    fn tick_flows(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = self.pipeline.clone() else {
            return;
        };
        if !self.has_clients(Stream::Flows) || self.flows_pending {
            return;
        }
        self.flows_pending = true;
        let limit = self.config.flows;
        let fut = async move {
            let flows = p
                .flows
                .clone()
                .send(GetActiveFlows(FlowQuery {
                    limit,
                    ..Default::default()
                }))
                .await?;
            let stats = p.metrics.clone().send(GetStats { top_talkers: 0 }).await?;
            Ok::<_, actix::MailboxError>((flows, stats))
        };
        ctx.spawn(fut.into_actor(self).map(|result, hub, _| {
            hub.flows_pending = false;
            if let Ok((flows, stats)) = result {
                let text = json!({
                    "flows": flows,
                    "stats": {
                        "active_sessions": stats.active_sessions,
                        "packets_per_sec": stats.packets_per_sec,
                        "bytes_per_sec": stats.bytes_per_sec,
                        "total_packets": stats.total_packets,
                        "total_bytes": stats.total_bytes,
                    },
                });
                hub.broadcast(Stream::Flows, text);
            }
        }));
    }

    fn flush_alerts(&mut self) {
        if self.pending_alerts.is_empty() {
            return;
        }
        let alerts: Vec<Alert> = std::mem::take(&mut self.pending_alerts)
            .into_values()
            .collect();
        if self.has_clients(Stream::Alerts) {
            let text = json!({ "alerts": alerts });
            self.broadcast(Stream::Alerts, text);
        }
    }
}

impl Actor for HubActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |hub, ctx| hub.tick_metrics(ctx));
        ctx.run_interval(Duration::from_secs(2), |hub, ctx| hub.tick_flows(ctx));
        ctx.run_interval(ALERT_COALESCE, |hub, _| hub.flush_alerts());
    }
}

impl Handler<Subscribe> for HubActor {
    type Result = bool;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) -> bool {
        // Forget clients whose writer has ended before counting.
        self.clients.retain(|c| !c.closed.load(Ordering::Relaxed));
        if self.clients.len() >= self.config.max_clients {
            self.status.rejected += 1;
            return false;
        }
        let stream = msg.stream;
        self.clients.push(Client {
            stream,
            tx: msg.tx,
            closed: msg.closed,
        });
        // A new client gets its first message at once rather than after a tick.
        match stream {
            Stream::Metrics => self.tick_metrics(ctx),
            Stream::Flows => self.tick_flows(ctx),
            Stream::Alerts => {}
        }
        true
    }
}

impl Handler<PipelineChanged> for HubActor {
    type Result = ();

    fn handle(&mut self, msg: PipelineChanged, _: &mut Self::Context) {
        self.pipeline = Some(msg.0);
    }
}

impl Handler<AlertsChanged> for HubActor {
    type Result = ();

    fn handle(&mut self, msg: AlertsChanged, _: &mut Self::Context) {
        for alert in msg.0 {
            self.pending_alerts.insert(alert.id, alert);
        }
    }
}

impl Handler<CloseAll> for HubActor {
    type Result = ();

    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) {
        // Dropping the senders makes every writer send a Close frame and end.
        self.clients.clear();
    }
}

impl Handler<GetHubStatus> for HubActor {
    type Result = MessageResult<GetHubStatus>;

    fn handle(&mut self, _: GetHubStatus, _: &mut Self::Context) -> Self::Result {
        let mut status = self.status.clone();
        for s in Stream::ALL {
            let open = |c: &&Client| c.stream == s && !c.closed.load(Ordering::Relaxed);
            status
                .clients
                .insert(s.name(), self.clients.iter().filter(open).count());
        }
        MessageResult(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn client(
        hub: &mut HubActor,
        stream: Stream,
        queue: usize,
    ) -> std::sync::mpsc::Receiver<Message> {
        let (tx, rx) = sync_channel(queue);
        hub.clients.push(Client {
            stream,
            tx,
            closed: Arc::new(AtomicBool::new(false)),
        });
        rx
    }

    #[test]
    fn a_client_that_falls_behind_is_dropped_and_the_others_keep_their_stream() {
        let mut hub = HubActor::new(HubConfig::default());
        let slow = client(&mut hub, Stream::Metrics, 2);
        let fast = client(&mut hub, Stream::Metrics, 2);
        let other = client(&mut hub, Stream::Alerts, 2);
        for i in 0..5 {
            hub.broadcast(Stream::Metrics, json!({"n": i}));
            assert_eq!(
                fast.try_recv().unwrap(),
                Message::text(format!("{{\"n\":{i}}}"))
            );
        }
        assert_eq!(hub.status.dropped_slow, 1);
        assert_eq!(hub.clients.len(), 2, "the slow client is gone");
        // It got what fitted in its queue, then its queue was closed.
        assert_eq!(slow.try_iter().count(), 2);
        assert!(matches!(slow.recv(), Err(std::sync::mpsc::RecvError)));
        assert!(other.try_recv().is_err(), "other streams get nothing");
        assert_eq!(hub.status.messages_sent, 5 + 2);
    }

    #[test]
    fn a_gone_client_is_forgotten() {
        let mut hub = HubActor::new(HubConfig::default());
        drop(client(&mut hub, Stream::Flows, 4));
        hub.broadcast(Stream::Flows, json!({}));
        assert!(hub.clients.is_empty());
        assert_eq!(hub.status.dropped_slow, 0);
    }
}
