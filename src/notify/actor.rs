//! The notify actor: a thin shell that hands each alert change to every target's policy and
//! queues what the policy says to send; a one-second tick sends the digests of minutes that
//! ended. `Notifier` holds the targets' senders, for the actor and for the API (views,
//! counters, test messages).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message};
use serde_json::{Value, json};

use super::NotifyTarget;
use super::deliver::{Answer, CounterView, TargetSender, send_test};
use super::policy::Policy;
use crate::messages::AlertsChanged;

/// Every enabled target's sender.
pub struct Notifier {
    senders: Vec<TargetSender>,
    public_url: Option<String>,
}

impl Notifier {
    /// Starts a thread per enabled target; `None` when there is none.
    pub fn start(
        targets: &[NotifyTarget],
        public_url: Option<String>,
    ) -> std::io::Result<Option<Arc<Notifier>>> {
        let mut senders = Vec::new();
        for t in targets.iter().filter(|t| t.enabled) {
            senders.push(TargetSender::start(t.clone(), public_url.clone())?);
        }
        Ok((!senders.is_empty()).then(|| {
            Arc::new(Notifier {
                senders,
                public_url,
            })
        }))
    }

    /// Each target's settings (secrets as set/unset) and counters.
    pub fn view(&self) -> Value {
        Value::Array(
            self.senders
                .iter()
                .map(|s| {
                    let mut v = s.target.view();
                    v["counters"] = json!(s.counters.view());
                    v
                })
                .collect(),
        )
    }

    /// Counters by target name.
    pub fn counters(&self) -> Vec<(String, &'static str, CounterView)> {
        self.senders
            .iter()
            .map(|s| {
                (
                    s.target.label().to_string(),
                    s.target.kind.name(),
                    s.counters.view(),
                )
            })
            .collect()
    }

    /// Sends a test message to target `name` now; `None` if there is no such target.
    pub fn test(&self, name: &str) -> Option<Result<Answer, String>> {
        let sender = self.senders.iter().find(|s| s.target.label() == name)?;
        Some(send_test(&sender.target, self.public_url.as_deref()))
    }

    /// Target names.
    pub fn names(&self) -> Vec<String> {
        self.senders
            .iter()
            .map(|s| s.target.label().to_string())
            .collect()
    }

    /// Messages queued or being sent, over all targets.
    pub fn pending(&self) -> u64 {
        self.senders.iter().map(|s| s.counters.view().pending).sum()
    }

    /// Waits until every queued message is sent or has failed, or `limit` passed; true
    /// when nothing is left.
    pub async fn settle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.pending() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// Sends the digests of whatever is held now (the end of an input).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushNotify;

/// The actor: one policy per target, in the notifier's order.
pub struct NotifyActor {
    notifier: Arc<Notifier>,
    policies: Vec<Policy>,
}

impl NotifyActor {
    pub fn new(notifier: Arc<Notifier>) -> Self {
        let policies = notifier
            .senders
            .iter()
            .map(|s| Policy::new((*s.target).clone()))
            .collect();
        NotifyActor { notifier, policies }
    }
}

impl Actor for NotifyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(Duration::from_secs(1), |actor, _| {
            let now = Instant::now();
            for (policy, sender) in actor.policies.iter_mut().zip(&actor.notifier.senders) {
                if let Some(digest) = policy.tick(now) {
                    sender.offer(digest);
                }
            }
        });
    }
}

impl Handler<AlertsChanged> for NotifyActor {
    type Result = ();

    fn handle(&mut self, msg: AlertsChanged, _: &mut Self::Context) {
        let now = Instant::now();
        for alert in &msg.0 {
            for (policy, sender) in self.policies.iter_mut().zip(&self.notifier.senders) {
                if let Some(out) = policy.offer(alert, now) {
                    sender.offer(out);
                }
            }
        }
    }
}

impl Handler<FlushNotify> for NotifyActor {
    type Result = ();

    fn handle(&mut self, _: FlushNotify, _: &mut Self::Context) {
        for (policy, sender) in self.policies.iter_mut().zip(&self.notifier.senders) {
            if let Some(digest) = policy.flush() {
                sender.offer(digest);
            }
        }
    }
}
