//! Notifications: alerts pushed to people (`[[notify]]` targets: a generic webhook, Slack or
//! Mattermost, Discord, ntfy, Gotify, Telegram, email over SMTP).
//!
//! The pipeline's alert changes reach the notify actor (`actor`), which asks each target's
//! `policy::Policy` what to send: one message when an episode opens, one when its severity
//! rises, nothing for ordinary updates, and one digest instead of everything past the
//! target's rate. `render` turns a message into the request each service documents, and
//! `deliver` sends it from the target's own thread behind a bounded queue, with retries and
//! back-off (honouring `Retry-After`). Nothing here waits on the pipeline or makes it wait:
//! a full queue drops the message and counts it.
//!
//! Secrets (URLs that carry tokens, tokens, SMTP passwords, header values) are never logged
//! or returned: errors are scrubbed of them and views show them as set or unset.

pub mod actor;
pub mod control;
pub mod deliver;
pub mod policy;
pub mod render;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::finding::Severity;

/// Targets at most (each has a thread).
pub const MAX_TARGETS: usize = 32;

/// Which service a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A JSON POST of the alert to `url`, with `headers`.
    Webhook,
    /// A Slack (or Mattermost) incoming webhook `url`.
    Slack,
    /// A Discord webhook `url`.
    Discord,
    /// An ntfy topic `url` (`https://ntfy.sh/topic`), `token` for a protected topic.
    Ntfy,
    /// A Gotify server `url` with an application `token`.
    Gotify,
    /// A Telegram bot (`token`) writing to `chat_id`; `url` replaces the Bot API's address.
    Telegram,
    /// Mail over SMTP.
    Email,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Slack => "slack",
            Kind::Discord => "discord",
            Kind::Ntfy => "ntfy",
            Kind::Gotify => "gotify",
            Kind::Telegram => "telegram",
            Kind::Email => "email",
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587), which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test sink.
    None,
}

/// One `[[notify]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyTarget {
    /// Unique; shown in counters and used by `POST /notify/test`.
    pub name: String,
    pub kind: Kind,
    pub enabled: bool,
    /// The service's address (a secret for Slack, Discord and webhooks with a key in it).
    pub url: Option<String>,
    /// Gotify application token, Telegram bot token, ntfy access token.
    pub token: Option<String>,
    /// Telegram chat to write to.
    pub chat_id: Option<String>,
    /// Extra request headers of a webhook (`Authorization = "Bearer …"`); values are secret.
    pub headers: BTreeMap<String, String>,
    /// Alerts below this severity are not sent.
    pub min_severity: Severity,
    /// Rules sent (empty: all); a rule written `!rule` is left out.
    pub rules: Vec<String>,
    /// Messages a minute at most; past this, one digest at the end of the minute.
    pub rate_per_minute: u32,
    /// Send attempts per message (the first and the retries).
    pub attempts: u32,
    /// Seconds a request may take.
    pub timeout_secs: u64,
    /// Messages waiting to be sent; past this they are dropped and counted.
    pub queue: usize,
    pub smtp_host: Option<String>,
    /// 587 for STARTTLS, 465 for TLS when unset.
    pub smtp_port: Option<u16>,
    pub smtp_security: SmtpSecurity,
    pub smtp_user: Option<String>,
    pub smtp_password: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
}

impl Default for NotifyTarget {
    fn default() -> Self {
        NotifyTarget {
            name: String::new(),
            kind: Kind::Webhook,
            enabled: true,
            url: None,
            token: None,
            chat_id: None,
            headers: BTreeMap::new(),
            min_severity: Severity::Medium,
            rules: Vec::new(),
            rate_per_minute: 10,
            attempts: 4,
            timeout_secs: 10,
            queue: 64,
            smtp_host: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_user: None,
            smtp_password: None,
            from: None,
            to: Vec::new(),
        }
    }
}

/// Debug output shows the secrets as set or unset, like the API.
impl std::fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NotifyTarget({})", self.view())
    }
}

impl NotifyTarget {
    /// The `[[notify]]` name, or its kind when it has none.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            self.kind.name()
        } else {
            &self.name
        }
    }

    /// Every secret the target holds, for scrubbing errors.
    pub fn secrets(&self) -> Vec<&str> {
        let mut all: Vec<&str> = [&self.token, &self.smtp_password]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        all.extend(self.headers.values().map(String::as_str));
        if let Some(url) = &self.url
            && self.url_is_secret()
        {
            all.push(url);
        }
        all.retain(|s| s.len() >= 4);
        all
    }

    /// Slack, Discord and webhook URLs are keys in themselves; ntfy, Gotify and Telegram
    /// URLs are plain addresses (their secrets are tokens).
    fn url_is_secret(&self) -> bool {
        matches!(self.kind, Kind::Webhook | Kind::Slack | Kind::Discord)
    }

    /// What the API shows: everything but the secrets, which read as set or unset.
    pub fn view(&self) -> Value {
        let set = |v: bool| if v { "set" } else { "unset" };
        let url = match &self.url {
            Some(_) if self.url_is_secret() => json!("set"),
            Some(u) => json!(u),
            None => json!("unset"),
        };
        json!({
            "name": self.label(),
            "kind": self.kind.name(),
            "enabled": self.enabled,
            "url": url,
            "token": set(self.token.is_some()),
            "chat_id": self.chat_id,
            "headers": self.headers.keys().map(|k| (k.clone(), json!("set"))).collect::<serde_json::Map<_, _>>(),
            "min_severity": self.min_severity,
            "rules": self.rules,
            "rate_per_minute": self.rate_per_minute,
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "smtp_security": self.smtp_security,
            "smtp_user": self.smtp_user,
            "smtp_password": set(self.smtp_password.is_some()),
            "from": self.from,
            "to": self.to,
        })
    }

    /// Whether `rule` is sent by this target.
    pub fn wants_rule(&self, rule: &str) -> bool {
        let excluded = self.rules.iter().any(|r| r.strip_prefix('!') == Some(rule));
        let included: Vec<&String> = self.rules.iter().filter(|r| !r.starts_with('!')).collect();
        !excluded && (included.is_empty() || included.iter().any(|r| *r == rule))
    }

    pub fn validate(&self) -> Result<(), String> {
        let at = format!("notify {:?}", self.label());
        if self.name.chars().count() > 64 || self.name.chars().any(char::is_control) {
            return Err(format!("{at}: a name is at most 64 printable characters"));
        }
        let need = |what: &str, v: bool| {
            if v {
                Ok(())
            } else {
                Err(format!("{at}: a {} target needs {what}", self.kind.name()))
            }
        };
        match self.kind {
            Kind::Webhook | Kind::Slack | Kind::Discord | Kind::Ntfy => {
                need("a url", self.url.is_some())?
            }
            Kind::Gotify => {
                need("a url", self.url.is_some())?;
                need("a token", self.token.is_some())?;
            }
            Kind::Telegram => {
                need("a token", self.token.is_some())?;
                need("a chat_id", self.chat_id.is_some())?;
            }
            Kind::Email => {
                need("smtp_host", self.smtp_host.is_some())?;
                need("from", self.from.is_some())?;
                need("at least one address in to", !self.to.is_empty())?;
                if self.smtp_user.is_some() != self.smtp_password.is_some() {
                    return Err(format!(
                        "{at}: give both smtp_user and smtp_password, or neither"
                    ));
                }
                for address in self.from.iter().chain(&self.to) {
                    address
                        .parse::<lettre::message::Mailbox>()
                        .map_err(|e| format!("{at}: {address:?} is not a mail address: {e}"))?;
                }
            }
        }
        if let Some(url) = &self.url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(format!("{at}: url must start with https:// or http://"));
        }
        for rule in &self.rules {
            let name = rule.trim_start_matches('!');
            if !crate::model::finding::Rule::ALL
                .iter()
                .any(|r| r.name() == name)
            {
                return Err(format!(
                    "{at}: {name:?} is not a rule (e.g. port_scan, threat_intel)"
                ));
            }
        }
        if self.rate_per_minute == 0 {
            return Err(format!("{at}: rate_per_minute must be at least 1"));
        }
        if !(1..=10).contains(&self.attempts) {
            return Err(format!("{at}: attempts must be between 1 and 10"));
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(format!("{at}: timeout_secs must be between 1 and 120"));
        }
        if !(1..=10_000).contains(&self.queue) {
            return Err(format!("{at}: queue must be between 1 and 10000"));
        }
        Ok(())
    }
}

impl NotifyTarget {
    /// Secrets this target shows as `set` (as an edit form sends them back) or leaves out
    /// take `old`'s values: an admin edits a target without typing its secrets again.
    pub fn keep_secrets_of(&mut self, old: &NotifyTarget) {
        let kept = |new: &mut Option<String>, old: &Option<String>| {
            if new.as_deref().is_none_or(|v| v == "set") {
                new.clone_from(old);
            }
        };
        if self.url_is_secret() || self.url.as_deref() == Some("set") {
            kept(&mut self.url, &old.url);
        }
        kept(&mut self.token, &old.token);
        kept(&mut self.smtp_password, &old.smtp_password);
        for (name, value) in &mut self.headers {
            if value == "set"
                && let Some(previous) = old.headers.get(name)
            {
                value.clone_from(previous);
            }
        }
    }
}

/// Checks the `[[notify]]` entries together: each valid, names unique, not too many.
pub fn validate(targets: &[NotifyTarget]) -> Result<(), String> {
    if targets.len() > MAX_TARGETS {
        return Err(format!("at most {MAX_TARGETS} [[notify]] targets"));
    }
    let mut names = std::collections::HashSet::new();
    for t in targets {
        t.validate()?;
        if !names.insert(t.label()) {
            return Err(format!(
                "notify {:?}: two targets have this name; give each a name",
                t.label()
            ));
        }
    }
    Ok(())
}

/// `text` with every secret of `target` replaced by `***`.
pub fn scrub(text: &str, target: &NotifyTarget) -> String {
    let mut out = text.to_string();
    for secret in target.secrets() {
        out = out.replace(secret, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack() -> NotifyTarget {
        NotifyTarget {
            name: "team".into(),
            kind: Kind::Slack,
            url: Some("https://hooks.slack.com/services/T000/B000/XXXXsecret".into()),
            ..NotifyTarget::default()
        }
    }

    #[test]
    fn views_and_errors_never_show_secrets() {
        let mut t = slack();
        t.headers
            .insert("Authorization".into(), "Bearer hunter22".into());
        let view = t.view().to_string();
        assert!(
            !view.contains("XXXXsecret") && !view.contains("hunter22"),
            "{view}"
        );
        assert!(!format!("{t:?}").contains("XXXXsecret"));
        let error = "request to https://hooks.slack.com/services/T000/B000/XXXXsecret failed";
        assert!(!scrub(error, &t).contains("XXXXsecret"));
    }

    #[test]
    fn rules_include_and_exclude() {
        let mut t = slack();
        assert!(t.wants_rule("port_scan"));
        t.rules = vec!["!new_device".into()];
        assert!(t.wants_rule("port_scan") && !t.wants_rule("new_device"));
        t.rules = vec!["threat_intel".into()];
        assert!(t.wants_rule("threat_intel") && !t.wants_rule("port_scan"));
    }

    #[test]
    fn each_kind_needs_its_settings() {
        assert!(validate(&[slack()]).is_ok());
        let telegram = NotifyTarget {
            kind: Kind::Telegram,
            token: Some("123:abc".into()),
            ..NotifyTarget::default()
        };
        assert!(validate(&[telegram]).unwrap_err().contains("chat_id"));
        let email = NotifyTarget {
            kind: Kind::Email,
            smtp_host: Some("smtp.example".into()),
            from: Some("tapir <tapir@example.org>".into()),
            to: vec!["not an address".into()],
            ..NotifyTarget::default()
        };
        assert!(
            validate(&[email])
                .unwrap_err()
                .contains("not a mail address")
        );
        let bad_rule = NotifyTarget {
            rules: vec!["portscan".into()],
            ..slack()
        };
        assert!(validate(&[bad_rule]).unwrap_err().contains("not a rule"));
        assert!(
            validate(&[slack(), slack()])
                .unwrap_err()
                .contains("two targets")
        );
    }
}
