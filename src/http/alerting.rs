//! The endpoints of notifications and threat lists: `GET /notify`, `POST /notify/test`
//! (admin), `GET /intel`, and the sections they add to `/debug`, `/metrics` and the
//! settings view. Secrets are never in a reply: targets show them as set or unset.

use serde::Deserialize;
use serde_json::{Value, json};

use super::api::Api;
use super::reply::Reply;
use super::route::ApiError;
use crate::http::access::RequestInfo;

impl Api {
    /// The targets and their counters (`[]` without targets).
    pub(super) fn notify_view(&self) -> Value {
        json!({
            "targets": self.notify.as_ref().map_or(json!([]), |n| n.view()),
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
        let Some(notifier) = &self.notify else {
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
}
