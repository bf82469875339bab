//! The alerts actor: a thin shell around `AlertBook`.

use actix::{Actor, Context, Handler, MessageResult};

use super::{AlertBook, AlertsConfig};
use crate::messages::{
    AcknowledgeAlert, AcknowledgeMatching, AlertStats, FindingsMsg, GetAlertStats, GetAlerts,
};

pub struct AlertsActor {
    book: AlertBook,
}

impl AlertsActor {
    pub fn new(config: AlertsConfig) -> Self {
        AlertsActor {
            book: AlertBook::new(config),
        }
    }
}

impl Actor for AlertsActor {
    type Context = Context<Self>;
}

impl Handler<FindingsMsg> for AlertsActor {
    type Result = ();

    fn handle(&mut self, msg: FindingsMsg, _: &mut Self::Context) {
        for finding in msg.0 {
            self.book.apply(finding);
        }
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
        MessageResult(self.book.acknowledge(msg.id))
    }
}

impl Handler<AcknowledgeMatching> for AlertsActor {
    type Result = MessageResult<AcknowledgeMatching>;

    fn handle(&mut self, msg: AcknowledgeMatching, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.book
                .acknowledge_matching(msg.timestamp, &msg.source_ip),
        )
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
