//! The alerts actor: a thin shell around `AlertBook`.

use actix::{Actor, Context, Handler, MessageResult, Recipient};

use super::{Alert, AlertBook, AlertQuery, AlertStats, AlertsConfig};
use crate::messages::{AlertsChanged, FindingsMsg};

/// Alerts newest first matching the query, or every alert oldest first with `None`.
#[derive(actix::Message)]
#[rtype(result = "Vec<Alert>")]
pub struct GetAlerts(pub Option<AlertQuery>);

/// Store → alerts, at a pipeline's start: ids the store knows as acknowledged.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct KnownAcknowledged(pub Vec<u64>);

/// Acknowledge one alert by id; replies with it, or `None` if unknown.
#[derive(actix::Message)]
#[rtype(result = "Option<Alert>")]
pub struct AcknowledgeAlert {
    pub id: u64,
}

/// The published form: acknowledge by first timestamp and source address.
#[derive(actix::Message)]
#[rtype(result = "Vec<Alert>")]
pub struct AcknowledgeMatching {
    pub timestamp: f64,
    pub source_ip: String,
}

/// The alerts actor's counters.
#[derive(actix::Message)]
#[rtype(result = "AlertStats")]
pub struct GetAlertStats;

pub struct AlertsActor {
    book: AlertBook,
    /// Told about every opened, updated or acknowledged alert (the store, later the hub).
    sinks: Vec<Recipient<AlertsChanged>>,
}

impl AlertsActor {
    pub fn new(config: AlertsConfig, sinks: Vec<Recipient<AlertsChanged>>) -> Self {
        AlertsActor {
            book: AlertBook::new(config),
            sinks,
        }
    }

    fn publish(&self, changed: Vec<Alert>) {
        if changed.is_empty() {
            return;
        }
        for sink in &self.sinks {
            // Alert changes are rare and must not be lost.
            sink.do_send(AlertsChanged(changed.clone()));
        }
    }
}

impl Actor for AlertsActor {
    type Context = Context<Self>;
}

impl Handler<FindingsMsg> for AlertsActor {
    type Result = ();

    fn handle(&mut self, msg: FindingsMsg, _: &mut Self::Context) {
        if self.sinks.is_empty() {
            for finding in msg.0 {
                self.book.apply(finding);
            }
            return;
        }
        let mut changed: Vec<Alert> = Vec::new();
        for finding in msg.0 {
            let (_, alert) = self.book.apply(finding);
            match changed.iter_mut().find(|a| a.id == alert.id) {
                Some(seen) => *seen = alert.clone(),
                None => changed.push(alert.clone()),
            }
        }
        self.publish(changed);
    }
}

impl Handler<KnownAcknowledged> for AlertsActor {
    type Result = ();

    fn handle(&mut self, msg: KnownAcknowledged, _: &mut Self::Context) {
        let changed = self.book.remember_acknowledged(msg.0);
        self.publish(changed);
    }
}

impl Handler<GetAlerts> for AlertsActor {
    type Result = MessageResult<GetAlerts>;

    fn handle(&mut self, msg: GetAlerts, _: &mut Self::Context) -> Self::Result {
        MessageResult(match msg.0 {
            Some(q) => self.book.query(&q),
            None => self.book.all(),
        })
    }
}

impl Handler<AcknowledgeAlert> for AlertsActor {
    type Result = MessageResult<AcknowledgeAlert>;

    fn handle(&mut self, msg: AcknowledgeAlert, _: &mut Self::Context) -> Self::Result {
        let acked = self.book.acknowledge(msg.id);
        self.publish(acked.iter().cloned().collect());
        MessageResult(acked)
    }
}

impl Handler<AcknowledgeMatching> for AlertsActor {
    type Result = MessageResult<AcknowledgeMatching>;

    fn handle(&mut self, msg: AcknowledgeMatching, _: &mut Self::Context) -> Self::Result {
        let acked = self
            .book
            .acknowledge_matching(msg.timestamp, &msg.source_ip);
        self.publish(acked.clone());
        MessageResult(acked)
    }
}

impl Handler<GetAlertStats> for AlertsActor {
    type Result = MessageResult<GetAlertStats>;

    fn handle(&mut self, _: GetAlertStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(AlertStats {
            alerts: self.book.len(),
            opened: self.book.opened,
            updated: self.book.updated,
            latency: self.book.latency(),
        })
    }
}
