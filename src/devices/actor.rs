//! The devices actor of a pipeline: a thin shell that feeds the pipeline's marked batches to
//! the shared device book and sends the rules' findings to the pipeline's alerts actor. Every
//! few seconds (and when the pipeline drains) it hands the store the devices' closed minutes
//! of usage (history) and what changed (records), and the export the device events.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Recipient};

use super::SharedDevices;
use crate::messages::{DeviceMinutes, DevicesChanged, FindingsMsg, MarkedBatchMsg, StoreDevices};

/// How often closed minutes and changed devices are written, and changes announced.
const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// End of input (or a shutdown): publish what changed now; replies when sent.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct FlushDevices;

pub struct DevicesActor {
    book: SharedDevices,
    alerts: Recipient<FindingsMsg>,
    store: Option<StoreSinks>,
    events: Vec<Recipient<DevicesChanged>>,
    mailbox: usize,
}

/// Where the store takes the device records and the devices' minutes.
pub struct StoreSinks {
    pub devices: Recipient<StoreDevices>,
    pub minutes: Recipient<DeviceMinutes>,
}

impl DevicesActor {
    pub fn new(
        book: SharedDevices,
        alerts: Recipient<FindingsMsg>,
        store: Option<StoreSinks>,
        events: Vec<Recipient<DevicesChanged>>,
        mailbox: usize,
    ) -> Self {
        DevicesActor {
            book,
            alerts,
            store,
            events,
            mailbox,
        }
    }

    /// Sends the minutes the inventory closed to the store's history.
    fn send_minutes(&self, minutes: Vec<crate::model::device::DeviceMinute>) {
        if let Some(store) = &self.store
            && !minutes.is_empty()
        {
            store.minutes.do_send(DeviceMinutes(minutes));
        }
    }

    /// Hands the store the minutes closed and the devices changed since the last call, and
    /// announces the changes.
    fn publish(&self) {
        let (changes, minutes) = {
            let mut book = self.book.lock();
            (book.inventory.take_changes(), book.inventory.take_minutes())
        };
        self.send_minutes(minutes);
        if !changes.changed.is_empty() && !self.events.is_empty() {
            let changed: Arc<[_]> = changes
                .devices
                .iter()
                .filter(|d| changes.changed.contains(&d.mac))
                .cloned()
                .collect();
            for sink in &self.events {
                sink.do_send(DevicesChanged(Arc::clone(&changed)));
            }
        }
        if let Some(store) = &self.store
            && (!changes.devices.is_empty() || !changes.removed.is_empty())
        {
            store.devices.do_send(StoreDevices {
                devices: changes.devices,
                removed: changes.removed,
                state: changes.state,
            });
        }
    }
}

impl Actor for DevicesActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
        ctx.run_interval(PUBLISH_EVERY, |actor, _| actor.publish());
    }
}

impl Handler<MarkedBatchMsg> for DevicesActor {
    type Result = ();

    fn handle(&mut self, msg: MarkedBatchMsg, _: &mut Self::Context) {
        let mut findings = Vec::new();
        {
            let mut book = self.book.lock();
            let book = &mut *book;
            book.inventory.observe(&msg.batch, &msg.marks);
            book.rules
                .check(&msg.batch, &mut book.inventory, &mut findings);
        }
        if !findings.is_empty() {
            let observed = msg.batch.started;
            for f in &mut findings {
                f.observed = observed;
            }
            self.alerts.do_send(FindingsMsg(findings));
        }
    }
}

impl Handler<FlushDevices> for DevicesActor {
    type Result = ();

    fn handle(&mut self, _: FlushDevices, _: &mut Self::Context) {
        let minutes = {
            let mut book = self.book.lock();
            book.inventory.close_minute();
            book.inventory.take_minutes()
        };
        self.send_minutes(minutes);
        self.publish();
    }
}
