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
use super::policy::{Names, Outgoing, Policy};
use crate::devices::SharedDevices;
use crate::messages::AlertsChanged;

/// Every enabled target's sender.
pub struct Notifier {
    senders: Vec<Arc<TargetSender>>,
    public_url: Option<String>,
}

impl Notifier {
    /// Starts a thread per enabled target; `None` when there is none.
    pub fn start(
        targets: &[NotifyTarget],
        public_url: Option<String>,
    ) -> std::io::Result<Option<Arc<Notifier>>> {
        Notifier::start_reusing(targets, public_url, None)
    }

    /// Like `start`, keeping the threads (and counters) of `previous`'s targets whose
    /// settings did not change.
    pub fn start_reusing(
        targets: &[NotifyTarget],
        public_url: Option<String>,
        previous: Option<&Notifier>,
    ) -> std::io::Result<Option<Arc<Notifier>>> {
        let mut senders = Vec::new();
        for t in targets.iter().filter(|t| t.enabled) {
            let kept = previous
                .into_iter()
                .flat_map(|p| &p.senders)
                .find(|s| *s.target == *t);
            senders.push(match kept {
                Some(s) => s.clone(),
                None => Arc::new(TargetSender::start(t.clone(), public_url.clone())?),
            });
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
        // The counter alone: a whole view sorts the latency samples.
        self.senders
            .iter()
            .map(|s| {
                s.counters
                    .pending
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
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

/// Puts another set of targets in place (an admin changed them); `None`: no targets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetNotifier(pub Option<Arc<Notifier>>);

/// The actor: each target's sender with its policy.
pub struct NotifyActor {
    targets: Vec<(Arc<TargetSender>, Policy)>,
    /// Where local hosts' names come from.
    devices: Option<SharedDevices>,
}

impl NotifyActor {
    pub fn new(notifier: Option<Arc<Notifier>>) -> Self {
        let mut actor = NotifyActor {
            targets: Vec::new(),
            devices: None,
        };
        actor.set(notifier);
        actor
    }

    /// Names the source and target of alerts from the device inventory.
    pub fn with_devices(mut self, devices: Option<SharedDevices>) -> Self {
        self.devices = devices;
        self
    }

    /// `who` is an address, or `address:port` (a service).
    fn name(&self, who: &str) -> Option<String> {
        let ip = who
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| who.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
        self.devices.as_ref()?.name_of(ip)
    }

    /// Takes the notifier's targets; a target kept from before keeps its policy (what it
    /// has sent, its minute), so an episode under way is not announced again.
    fn set(&mut self, notifier: Option<Arc<Notifier>>) {
        let mut old = std::mem::take(&mut self.targets);
        for sender in notifier.iter().flat_map(|n| &n.senders) {
            let policy = match old.iter().position(|(s, _)| Arc::ptr_eq(s, sender)) {
                Some(at) => old.swap_remove(at).1,
                None => Policy::new((*sender.target).clone()),
            };
            self.targets.push((sender.clone(), policy));
        }
    }
}

impl Handler<SetNotifier> for NotifyActor {
    type Result = ();

    fn handle(&mut self, msg: SetNotifier, _: &mut Self::Context) {
        self.set(msg.0);
    }
}

impl Actor for NotifyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(Duration::from_secs(1), |actor, _| {
            let now = Instant::now();
            for (sender, policy) in &mut actor.targets {
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
            let mut names = None;
            for i in 0..self.targets.len() {
                let Some(mut out) = self.targets[i].1.offer(alert, now) else {
                    continue;
                };
                if let Outgoing::Alert { names: slot, .. } = &mut out {
                    *slot = names
                        .get_or_insert_with(|| Names {
                            source: self.name(&alert.source_ip),
                            target: self.name(&alert.target),
                        })
                        .clone();
                }
                self.targets[i].0.offer(out);
            }
        }
    }
}

impl Handler<FlushNotify> for NotifyActor {
    type Result = ();

    fn handle(&mut self, _: FlushNotify, _: &mut Self::Context) {
        for (sender, policy) in &mut self.targets {
            if let Some(digest) = policy.flush() {
                sender.offer(digest);
            }
        }
    }
}
