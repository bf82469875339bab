//! A message as each service documents it: the generic webhook's JSON, Slack's `text`
//! (Mattermost reads the same), Discord's `content`, ntfy's body with `Title`, `Priority`,
//! `Tags` and `Click` headers, Gotify's `/message` JSON with a priority, Telegram's
//! `sendMessage`, and a plain-text mail. Plain functions of the message and the target.

use serde_json::{Value, json};

use super::policy::{DIGEST_LINES, Digest, Names, Outgoing};
use super::{Kind, NotifyTarget};
use crate::model::alert::Alert;
use crate::model::finding::Severity;

/// A request ready to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Http {
        url: String,
        headers: Vec<(String, String)>,
        content_type: &'static str,
        body: Vec<u8>,
    },
    Mail {
        subject: String,
        body: String,
    },
}

/// The words of a message, before a service's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub title: String,
    pub body: String,
    pub severity: Severity,
    /// The alert in the dashboard (with `[server] public_url`).
    pub link: Option<String>,
    /// `alert_opened`, `severity_raised`, `digest` or `test`.
    pub event: &'static str,
}

/// The title, body and link of `message`.
pub fn text(message: &Outgoing, public_url: Option<&str>) -> Text {
    let base = public_url.map(|u| u.trim_end_matches('/').to_string());
    match message {
        Outgoing::Alert {
            alert,
            raised,
            names,
        } => {
            let verb = if *raised { "rose to" } else { "" };
            let title = if *raised {
                format!(
                    "tapir: {} {verb} {} ({})",
                    alert.alert_type.name(),
                    alert.severity.name(),
                    alert.source_ip
                )
            } else {
                format!(
                    "tapir: {} {} from {}",
                    alert.severity.name(),
                    alert.alert_type.name(),
                    alert.source_ip
                )
            };
            let link = base.map(|b| format!("{b}/#/alerts?id={}", alert.id));
            Text {
                title,
                body: alert_lines(alert, names, link.as_deref()),
                severity: alert.severity,
                link,
                event: if *raised {
                    "severity_raised"
                } else {
                    "alert_opened"
                },
            }
        }
        Outgoing::Digest(d) => {
            let link = base.map(|b| format!("{b}/#/alerts"));
            Text {
                title: format!("tapir: {} new alerts: {}", d.count, rule_counts(d)),
                body: digest_lines(d, link.as_deref()),
                severity: d.worst.unwrap_or(Severity::Low),
                link,
                event: "digest",
            }
        }
        Outgoing::Test => Text {
            title: "tapir: test message".into(),
            body: "This is a test from tapir: notifications to this target work.".into(),
            severity: Severity::Low,
            link: base.map(|b| format!("{b}/#/settings")),
            event: "test",
        },
    }
}

fn rule_counts(d: &Digest) -> String {
    let mut counts: Vec<(&str, u64)> = d.by_rule.iter().map(|(r, n)| (*r, *n)).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn alert_lines(a: &Alert, names: &Names, link: Option<&str>) -> String {
    let named = |what: &str, name: &Option<String>| match name {
        Some(n) => format!("{what} ({n})"),
        None => what.to_string(),
    };
    let mut out = format!(
        "{}\nSeverity: {}\nSource: {}\nTarget: {}\nTime: {}\n",
        a.description,
        a.severity.name(),
        named(&a.source_ip, &names.source),
        named(&a.target, &names.target),
        time(a.timestamp),
    );
    if let Some(link) = link {
        out.push_str(&format!("Open: {link}\n"));
    }
    out
}

fn digest_lines(d: &Digest, link: Option<&str>) -> String {
    let mut out = format!(
        "{} alerts opened past this target's rate limit in one minute: {}.\n",
        d.count,
        rule_counts(d)
    );
    for a in &d.first {
        out.push_str(&format!(
            "- {} {} {} -> {} at {}\n",
            a.severity.name(),
            a.alert_type.name(),
            a.source_ip,
            a.target,
            time(a.timestamp)
        ));
    }
    if d.count > DIGEST_LINES as u64 {
        out.push_str(&format!("… and {} more\n", d.count - d.first.len() as u64));
    }
    if let Some(link) = link {
        out.push_str(&format!("Open: {link}\n"));
    }
    out
}

/// Unix seconds as `2024-05-01 10:00:00 UTC`.
fn time(unix: f64) -> String {
    let ts = crate::export::eve::timestamp((unix * 1e9) as i64);
    format!("{} {} UTC", &ts[..10], &ts[11..19])
}

/// The request `target` documents for `message`.
pub fn request(target: &NotifyTarget, message: &Outgoing, public_url: Option<&str>) -> Request {
    let t = text(message, public_url);
    let url = target.url.clone().unwrap_or_default();
    let json_body = |v: Value| v.to_string().into_bytes();
    match target.kind {
        Kind::Webhook => {
            let mut body = json!({
                "event": t.event,
                "title": t.title,
                "text": t.body,
                "severity": t.severity,
                "link": t.link,
            });
            match message {
                Outgoing::Alert { alert, .. } => body["alert"] = json!(alert),
                Outgoing::Digest(d) => {
                    body["count"] = json!(d.count);
                    body["by_rule"] = json!(d.by_rule);
                    body["alerts"] = json!(d.first);
                }
                Outgoing::Test => {}
            }
            Request::Http {
                url,
                headers: target
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                content_type: "application/json",
                body: json_body(body),
            }
        }
        Kind::Slack => Request::Http {
            url,
            headers: Vec::new(),
            content_type: "application/json",
            body: json_body(json!({ "text": format!("*{}*\n{}", t.title, t.body) })),
        },
        Kind::Discord => {
            // Discord refuses content over 2,000 characters.
            let content: String = format!("**{}**\n{}", t.title, t.body)
                .chars()
                .take(2000)
                .collect();
            Request::Http {
                url,
                headers: Vec::new(),
                content_type: "application/json",
                body: json_body(json!({ "content": content, "username": "tapir" })),
            }
        }
        Kind::Ntfy => {
            let priority = match t.severity {
                Severity::Low => "2",
                Severity::Medium => "3",
                Severity::High => "4",
                Severity::Critical => "5",
            };
            let mut headers = vec![
                ("Title".into(), ascii_header(&t.title)),
                ("Priority".into(), priority.into()),
                ("Tags".into(), format!("warning,{}", t.severity.name())),
            ];
            if let Some(link) = &t.link {
                headers.push(("Click".into(), link.clone()));
            }
            if let Some(token) = &target.token {
                headers.push(("Authorization".into(), format!("Bearer {token}")));
            }
            Request::Http {
                url,
                headers,
                content_type: "text/plain; charset=utf-8",
                body: t.body.into_bytes(),
            }
        }
        Kind::Gotify => {
            let priority = match t.severity {
                Severity::Low => 2,
                Severity::Medium => 5,
                Severity::High => 8,
                Severity::Critical => 10,
            };
            let mut body = json!({
                "title": t.title,
                "message": t.body,
                "priority": priority,
            });
            if let Some(link) = &t.link {
                body["extras"] = json!({ "client::notification": { "click": { "url": link } } });
            }
            Request::Http {
                url: format!("{}/message", url.trim_end_matches('/')),
                headers: vec![(
                    "X-Gotify-Key".into(),
                    target.token.clone().unwrap_or_default(),
                )],
                content_type: "application/json",
                body: json_body(body),
            }
        }
        Kind::Telegram => {
            let base = target
                .url
                .as_deref()
                .unwrap_or("https://api.telegram.org")
                .trim_end_matches('/');
            let token = target.token.as_deref().unwrap_or_default();
            Request::Http {
                url: format!("{base}/bot{token}/sendMessage"),
                headers: Vec::new(),
                content_type: "application/json",
                body: json_body(json!({
                    "chat_id": target.chat_id,
                    "text": format!("{}\n{}", t.title, t.body),
                    "disable_web_page_preview": true,
                })),
            }
        }
        Kind::Email => Request::Mail {
            subject: t.title,
            body: t.body,
        },
    }
}

/// HTTP header values are bytes; ntfy reads UTF-8 titles only when encoded, so the title is
/// kept to printable ASCII.
fn ascii_header(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::finding::Rule;

    fn alert() -> Alert {
        Alert {
            id: 1_714_557_600_000 * 1024,
            timestamp: 1_714_557_600.0,
            last_seen: 1_714_557_601.0,
            alert_type: Rule::PortScan,
            severity: Severity::High,
            source_ip: "192.168.1.10".into(),
            target: "192.168.1.25".into(),
            description: "192.168.1.10 probed 1000 ports on 192.168.1.25".into(),
            evidence: json!({}).into(),
            count: 1000,
            acknowledged: false,
            community_id: None,
        }
    }

    fn target(kind: Kind) -> NotifyTarget {
        NotifyTarget {
            kind,
            url: Some("https://svc.example/hook".into()),
            token: Some("tok123".into()),
            chat_id: Some("-100200".into()),
            ..NotifyTarget::default()
        }
    }

    fn opened() -> Outgoing {
        Outgoing::Alert {
            alert: alert(),
            raised: false,
            names: Names {
                source: Some("kali".into()),
                target: None,
            },
        }
    }

    fn http(r: Request) -> (String, Vec<(String, String)>, Value) {
        match r {
            Request::Http {
                url, headers, body, ..
            } => (
                url,
                headers,
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ),
            Request::Mail { .. } => panic!("mail"),
        }
    }

    #[test]
    fn the_text_names_what_when_and_where_to_look() {
        let t = text(&opened(), Some("https://tapir.lan/"));
        assert_eq!(t.title, "tapir: high port_scan from 192.168.1.10");
        assert!(
            t.body.contains("Time: 2024-05-01 10:00:00 UTC"),
            "{}",
            t.body
        );
        assert!(
            t.body
                .contains("Source: 192.168.1.10 (kali)\nTarget: 192.168.1.25\n")
        );
        let link = format!("https://tapir.lan/#/alerts?id={}", alert().id);
        assert_eq!(t.link.as_deref(), Some(link.as_str()));
    }

    #[test]
    fn telegram_and_gotify_follow_their_apis() {
        let (url, _, body) = http(request(&target(Kind::Telegram), &opened(), None));
        assert_eq!(url, "https://svc.example/hook/bottok123/sendMessage");
        assert_eq!(body["chat_id"], "-100200");
        let (url, headers, body) = http(request(&target(Kind::Gotify), &opened(), None));
        assert_eq!(url, "https://svc.example/hook/message");
        assert_eq!(headers, vec![("X-Gotify-Key".into(), "tok123".into())]);
        assert_eq!(body["priority"], 8);
    }

    #[test]
    fn ntfy_priority_follows_severity() {
        let Request::Http { headers, .. } = request(&target(Kind::Ntfy), &opened(), None) else {
            panic!()
        };
        assert!(headers.contains(&("Priority".into(), "4".into())));
        assert!(headers.contains(&("Authorization".into(), "Bearer tok123".into())));
    }

    #[test]
    fn a_digest_counts_by_rule() {
        let mut d = Digest::default();
        for (i, rule) in [Rule::PortScan, Rule::PortScan, Rule::NewDevice]
            .into_iter()
            .enumerate()
        {
            let mut a = alert();
            a.id += i as u64;
            a.alert_type = rule;
            d.count += 1;
            *d.by_rule.entry(rule.name()).or_default() += 1;
            d.first.push(a);
        }
        let t = text(&Outgoing::Digest(d), None);
        assert_eq!(t.title, "tapir: 3 new alerts: 2 port_scan, 1 new_device");
        assert_eq!(t.body.lines().filter(|l| l.starts_with("- ")).count(), 3);
    }
}
