//! The endpoints of notifications and threat lists: `GET /notify`, `POST /notify/test`
//! (admin), `GET /intel`, and the sections they add to `/debug`, `/metrics` and the
//! settings view. Secrets are never in a reply: targets show them as set or unset.

use serde::Deserialize;
use serde_json::{Value, json};

use super::api::Api;
use super::reply::Reply;
use super::route::ApiError;
use crate::http::access::RequestInfo;
use crate::notify::NotifyTarget;
use crate::notify::control::{NotifyControl, Origin};

impl Api {
    /// The targets, where each is defined, and their counters (`[]` without targets).
    pub(super) fn notify_view(&self) -> Value {
        json!({
            "targets": self.notify.as_ref().map_or(json!([]), |n| n.view()),
            "editable": self.notify.is_some() && self.auth.is_some(),
        })
    }

    /// The lists and their status (`[]` without lists).
    pub(super) fn intel_view(&self) -> Value {
        match &self.intel {
            Some((shared, _)) => {
                let lists = shared.status(crate::intel::unix_now());
                json!({
                    "entries": shared.snapshot().entries(),
                    "bytes": lists.iter().map(|l| l.bytes).sum::<usize>(),
                    "reloads": shared.reloads(),
                    "lists": lists,
                })
            }
            None => json!({"entries": 0, "bytes": 0, "reloads": 0, "lists": []}),
        }
    }

    /// `POST /notify/test`: `{"target": name}`; the target's answer, or why it failed.
    pub(super) fn notify_test(&self, info: &RequestInfo, body: &[u8]) -> Result<Reply, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Test {
            target: String,
        }
        let t: Test = super::account::parse_body(info, body)?;
        let Some(notifier) = self.notify.as_ref().and_then(|n| n.current()) else {
            return Err(ApiError::new(
                409,
                "no notification targets are configured; add [[notify]] entries to the config",
                Value::Null,
            ));
        };
        match notifier.test(&t.target) {
            None => Err(ApiError::new(
                404,
                format!("there is no notification target {:?}", t.target),
                json!({"targets": notifier.names()}),
            )),
            Some(Ok(answer)) => Reply::ok(json!({
                "target": t.target,
                "ok": true,
                "status": answer.status,
                "answer": answer.text,
            })),
            Some(Err(error)) => Reply::ok(json!({
                "target": t.target,
                "ok": false,
                "error": error,
            })),
        }
    }

    /// `POST /notify/targets`: adds or changes a target kept in the credentials file. Its
    /// secrets sent back as `set` (or left out) keep their saved values.
    pub(super) fn save_notify_target(
        &self,
        info: &RequestInfo,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let (control, auth) = self.editable_targets()?;
        let mut target: NotifyTarget = super::account::parse_body(info, body)?;
        if target.name.is_empty() {
            return Err(ApiError::bad_request("a target needs a name", Value::Null));
        }
        if control.origin(&target.name) == Some(Origin::Config) {
            return Err(ApiError::new(
                409,
                format!(
                    "target {:?} is defined in the config file; change it there",
                    target.name
                ),
                Value::Null,
            ));
        }
        let mut saved = control.saved();
        match saved.iter_mut().find(|t| t.name == target.name) {
            Some(old) => {
                target.keep_secrets_of(old);
                *old = target;
            }
            None => saved.push(target),
        }
        self.put_targets(control, auth, saved)
    }

    /// `DELETE /notify/targets/{name}`: removes a target added in the dashboard.
    pub(super) fn delete_notify_target(&self, name: &str) -> Result<Reply, ApiError> {
        let (control, auth) = self.editable_targets()?;
        match control.origin(name) {
            Some(Origin::Dashboard) => {}
            Some(Origin::Config) => {
                return Err(ApiError::new(
                    409,
                    format!("target {name:?} is defined in the config file; remove it there"),
                    Value::Null,
                ));
            }
            None => {
                return Err(ApiError::new(
                    404,
                    format!("there is no notification target {name:?}"),
                    Value::Null,
                ));
            }
        }
        let saved = control
            .saved()
            .into_iter()
            .filter(|t| t.name != name)
            .collect();
        self.put_targets(control, auth, saved)
    }

    fn editable_targets(
        &self,
    ) -> Result<(&NotifyControl, &std::sync::Mutex<crate::auth::Auth>), ApiError> {
        match (&self.notify, &self.auth) {
            (Some(control), Some(auth)) => Ok((control, auth)),
            _ => Err(ApiError::new(
                409,
                "targets added here are kept in the credentials file, which is not used while authentication is off; add [[notify]] entries to the config instead",
                Value::Null,
            )),
        }
    }

    fn put_targets(
        &self,
        control: &NotifyControl,
        auth: &std::sync::Mutex<crate::auth::Auth>,
        saved: Vec<NotifyTarget>,
    ) -> Result<Reply, ApiError> {
        control
            .replace_saved(saved.clone())
            .map_err(|e| ApiError::bad_request(e, Value::Null))?;
        auth.lock()
            .expect("auth lock")
            .set_notify_targets(saved)
            .map_err(|e| ApiError::new(500, e.to_string(), Value::Null))?;
        Reply::ok(self.notify_view())
    }
}
