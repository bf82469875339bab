//! The server's targets: those of the config file (read-only at run time) and those an admin
//! adds in the dashboard (kept in the credentials file with their secrets). A change builds
//! a new `Notifier` (unchanged targets keep their threads and counters) and hands it to the
//! notify actor.

use std::sync::{Arc, RwLock};

use actix::{Actor, Addr, Recipient};
use serde_json::{Value, json};

use super::NotifyTarget;
use super::actor::{Notifier, NotifyActor, SetNotifier};
use crate::messages::AlertsChanged;

/// Where a target is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Config,
    Dashboard,
}

/// The server's notification targets and the actor that sends to them.
pub struct NotifyControl {
    config: Vec<NotifyTarget>,
    saved: RwLock<Vec<NotifyTarget>>,
    public_url: Option<String>,
    current: RwLock<Option<Arc<Notifier>>>,
    actor: Addr<NotifyActor>,
}

impl NotifyControl {
    /// Starts the actor and the targets. Must run inside an actix system.
    pub fn start(
        config: Vec<NotifyTarget>,
        saved: Vec<NotifyTarget>,
        public_url: Option<String>,
        devices: Option<crate::devices::SharedDevices>,
    ) -> std::io::Result<Arc<NotifyControl>> {
        let all: Vec<NotifyTarget> = config.iter().chain(&saved).cloned().collect();
        let notifier = Notifier::start(&all, public_url.clone())?;
        let actor = NotifyActor::new(notifier.clone())
            .with_devices(devices)
            .start();
        Ok(Arc::new(NotifyControl {
            config,
            saved: RwLock::new(saved),
            public_url,
            current: RwLock::new(notifier),
            actor,
        }))
    }

    /// Where the pipelines send their alert changes.
    pub fn recipient(&self) -> Recipient<AlertsChanged> {
        self.actor.clone().recipient()
    }

    /// The targets sending now.
    pub fn current(&self) -> Option<Arc<Notifier>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The targets added in the dashboard, secrets included (for saving).
    pub fn saved(&self) -> Vec<NotifyTarget> {
        self.saved
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Where target `name` is defined, if anywhere.
    pub fn origin(&self, name: &str) -> Option<Origin> {
        if self.config.iter().any(|t| t.label() == name) {
            Some(Origin::Config)
        } else if self.saved().iter().any(|t| t.label() == name) {
            Some(Origin::Dashboard)
        } else {
            None
        }
    }

    /// Every target (disabled ones too), its origin, and the counters of those sending.
    pub fn view(&self) -> Value {
        let counters: Vec<Value> = self.current().map_or_else(Vec::new, |n| {
            n.view().as_array().cloned().unwrap_or_default()
        });
        let shown = |t: &NotifyTarget, origin: &str| {
            let mut v = t.view();
            v["origin"] = json!(origin);
            v["counters"] = counters
                .iter()
                .find(|c| c["name"] == t.label())
                .map_or(Value::Null, |c| c["counters"].clone());
            v
        };
        let saved = self.saved();
        Value::Array(
            self.config
                .iter()
                .map(|t| shown(t, "config"))
                .chain(saved.iter().map(|t| shown(t, "dashboard")))
                .collect(),
        )
    }

    /// Sends the digests held now and waits up to `limit` for every queued message to be
    /// sent or to fail (shutdown).
    pub async fn flush(&self, limit: std::time::Duration) {
        let _ = self.actor.send(super::actor::FlushNotify).await;
        if let Some(notifier) = self.current() {
            notifier.settle(limit).await;
        }
    }

    /// Validates `saved` with the config's targets and puts them in place; the caller saves
    /// them. The error says what is wrong.
    pub fn replace_saved(&self, saved: Vec<NotifyTarget>) -> Result<(), String> {
        let all: Vec<NotifyTarget> = self.config.iter().chain(&saved).cloned().collect();
        super::validate(&all)?;
        let previous = self.current();
        let notifier = Notifier::start_reusing(&all, self.public_url.clone(), previous.as_deref())
            .map_err(|e| format!("cannot start a notification thread: {e}"))?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = notifier.clone();
        *self
            .saved
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = saved;
        self.actor.do_send(SetNotifier(notifier));
        Ok(())
    }
}
