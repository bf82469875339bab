//! Sending: each target has one thread and a bounded queue. A message is rendered, sent, and
//! on a network error, a 429 or a 5xx tried again after 1, 2, 4 … seconds (or what
//! `Retry-After` asks, up to five minutes), `attempts` times in all; any other answer fails
//! it at once. A queue that is full drops the message and counts it, so a target that never
//! answers costs drops, never a stalled pipeline.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::policy::Outgoing;
use super::render::{self, Request};
use super::{NotifyTarget, SmtpSecurity, scrub};

/// A target's counters, shown in `/debug`, `/metrics` and the settings view.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
    /// Queued or being sent.
    pub pending: AtomicU64,
    /// Microseconds from queueing to the service's answer, of the last messages sent.
    pub latencies_us: Mutex<std::collections::VecDeque<u64>>,
    pub last_error: Mutex<Option<String>>,
}

/// Latencies kept for the median.
const LATENCY_SAMPLES: usize = 256;

/// A snapshot of `Counters`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CounterView {
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
    pub retries: u64,
    pub pending: u64,
    /// Median and largest microseconds from an alert's arrival to the service's answer,
    /// over the last 256 messages sent.
    pub latency_median_us: Option<u64>,
    pub latency_max_us: Option<u64>,
    pub last_error: Option<String>,
}

impl Counters {
    pub fn view(&self) -> CounterView {
        let mut latencies: Vec<u64> = self
            .latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        latencies.sort_unstable();
        CounterView {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            latency_median_us: latencies.get(latencies.len() / 2).copied(),
            latency_max_us: latencies.last().copied(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The service's answer to one attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// HTTP status, or the SMTP reply code.
    pub status: u16,
    /// The first kilobyte of the answer.
    pub text: String,
}

/// Why an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt, after `after` if the service said so.
    Transient {
        error: String,
        after: Option<Duration>,
        answer: Option<Answer>,
    },
    Permanent {
        error: String,
        answer: Option<Answer>,
    },
}

/// One target's sender: its queue and counters; the thread ends when this is dropped.
pub struct TargetSender {
    pub target: Arc<NotifyTarget>,
    pub counters: Arc<Counters>,
    queue: SyncSender<(Outgoing, Instant)>,
}

impl TargetSender {
    /// Starts the target's thread.
    pub fn start(target: NotifyTarget, public_url: Option<String>) -> std::io::Result<Self> {
        let target = Arc::new(target);
        let counters = Arc::new(Counters::default());
        let (queue, receiver) = std::sync::mpsc::sync_channel(target.queue);
        let (t, c) = (target.clone(), counters.clone());
        std::thread::Builder::new()
            .name(format!("notify-{}", target.kind.name()))
            .spawn(move || run(t, c, public_url, receiver))?;
        Ok(TargetSender {
            target,
            counters,
            queue,
        })
    }

    /// Queues `message`; false (and counted) when the queue is full.
    pub fn offer(&self, message: Outgoing) -> bool {
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send((message, Instant::now())) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

fn run(
    target: Arc<NotifyTarget>,
    counters: Arc<Counters>,
    public_url: Option<String>,
    queue: Receiver<(Outgoing, Instant)>,
) {
    let client = Client::new(&target);
    while let Ok((message, queued)) = queue.recv() {
        let request = render::request(&target, &message, public_url.as_deref());
        let mut attempt = 1;
        loop {
            match client.send(&target, &request) {
                Ok(_) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    let mut latencies = counters
                        .latencies_us
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if latencies.len() == LATENCY_SAMPLES {
                        latencies.pop_front();
                    }
                    latencies.push_back(queued.elapsed().as_micros() as u64);
                    break;
                }
                Err(Failure::Transient { error, after, .. }) if attempt < target.attempts => {
                    set_error(&counters, &target, &error);
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    let backoff = Duration::from_secs(1 << (attempt - 1).min(6));
                    std::thread::sleep(after.unwrap_or(backoff).min(Duration::from_secs(300)));
                    attempt += 1;
                }
                Err(Failure::Transient { error, .. } | Failure::Permanent { error, .. }) => {
                    set_error(&counters, &target, &error);
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "tapir: notification to {} failed: {}",
                        target.label(),
                        scrub(&error, &target)
                    );
                    break;
                }
            }
        }
        counters.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

fn set_error(counters: &Counters, target: &NotifyTarget, error: &str) {
    *counters
        .last_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(scrub(error, target));
}

/// Sends one test message now and reports the service's answer (`POST /notify/test`).
pub fn send_test(target: &NotifyTarget, public_url: Option<&str>) -> Result<Answer, String> {
    let request = render::request(target, &Outgoing::Test, public_url);
    let scrubbed = |e: String, a: Option<Answer>| {
        let e = scrub(&e, target);
        match a {
            Some(a) => format!("{e}; the service answered: {}", scrub(&a.text, target)),
            None => e,
        }
    };
    Client::new(target)
        .send(target, &request)
        .map(|a| Answer {
            text: scrub(&a.text, target),
            ..a
        })
        .map_err(|f| match f {
            Failure::Transient { error, answer, .. } | Failure::Permanent { error, answer } => {
                scrubbed(error, answer)
            }
        })
}

/// What a target sends with: an HTTP agent or an SMTP transport.
enum Client {
    Http(ureq::Agent),
    Smtp(Result<lettre::SmtpTransport, String>),
}

impl Client {
    fn new(target: &NotifyTarget) -> Client {
        let timeout = Duration::from_secs(target.timeout_secs);
        match target.kind {
            super::Kind::Email => Client::Smtp(smtp(target, timeout)),
            _ => Client::Http(
                ureq::Agent::config_builder()
                    .timeout_global(Some(timeout))
                    .http_status_as_error(false)
                    .user_agent(concat!("tapir/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .new_agent(),
            ),
        }
    }

    fn send(&self, target: &NotifyTarget, request: &Request) -> Result<Answer, Failure> {
        match (self, request) {
            (
                Client::Http(agent),
                Request::Http {
                    url,
                    headers,
                    content_type,
                    body,
                },
            ) => {
                let mut req = agent.post(url).header("Content-Type", *content_type);
                for (name, value) in headers {
                    req = req.header(name.as_str(), value.as_str());
                }
                let mut response = req.send(&body[..]).map_err(|e| Failure::Transient {
                    error: format!("cannot reach {}: {e}", target.kind.name()),
                    after: None,
                    answer: None,
                })?;
                let status = response.status().as_u16();
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let mut text = String::new();
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(1024)
                    .read_to_string(&mut text);
                let answer = Answer { status, text };
                match status {
                    200..=299 => Ok(answer),
                    429 | 500..=599 => Err(Failure::Transient {
                        error: format!("{} answered {status}", target.kind.name()),
                        after,
                        answer: Some(answer),
                    }),
                    _ => Err(Failure::Permanent {
                        error: format!("{} answered {status}", target.kind.name()),
                        answer: Some(answer),
                    }),
                }
            }
            (Client::Smtp(transport), Request::Mail { subject, body }) => {
                let transport = transport.as_ref().map_err(|e| Failure::Permanent {
                    error: e.clone(),
                    answer: None,
                })?;
                let mail = mail(target, subject, body).map_err(|error| Failure::Permanent {
                    error,
                    answer: None,
                })?;
                use lettre::Transport;
                match transport.send(&mail) {
                    Ok(response) => Ok(Answer {
                        status: u16::from(response.code()),
                        text: response.message().collect::<Vec<_>>().join(" "),
                    }),
                    Err(e) if e.is_permanent() => Err(Failure::Permanent {
                        error: format!("the mail server refused the message: {e}"),
                        answer: None,
                    }),
                    Err(e) => Err(Failure::Transient {
                        error: format!("cannot send mail: {e}"),
                        after: None,
                        answer: None,
                    }),
                }
            }
            _ => Err(Failure::Permanent {
                error: "the message does not suit the target".into(),
                answer: None,
            }),
        }
    }
}

fn smtp(target: &NotifyTarget, timeout: Duration) -> Result<lettre::SmtpTransport, String> {
    use lettre::SmtpTransport;
    let host = target.smtp_host.as_deref().unwrap_or_default();
    let builder = match target.smtp_security {
        SmtpSecurity::Starttls => SmtpTransport::starttls_relay(host)
            .map_err(|e| format!("cannot use {host} for STARTTLS: {e}"))?
            .port(target.smtp_port.unwrap_or(587)),
        SmtpSecurity::Tls => SmtpTransport::relay(host)
            .map_err(|e| format!("cannot use {host} for TLS: {e}"))?
            .port(target.smtp_port.unwrap_or(465)),
        SmtpSecurity::None => {
            SmtpTransport::builder_dangerous(host).port(target.smtp_port.unwrap_or(25))
        }
    };
    let builder = match (&target.smtp_user, &target.smtp_password) {
        (Some(user), Some(password)) => {
            builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                user.clone(),
                password.clone(),
            ))
        }
        _ => builder,
    };
    Ok(builder.timeout(Some(timeout)).build())
}

fn mail(target: &NotifyTarget, subject: &str, body: &str) -> Result<lettre::Message, String> {
    let parse = |a: &str| {
        a.parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("{a:?} is not a mail address: {e}"))
    };
    let mut builder = lettre::Message::builder()
        .from(parse(target.from.as_deref().unwrap_or_default())?)
        .subject(subject);
    for to in &target.to {
        builder = builder.to(parse(to)?);
    }
    builder
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| format!("cannot build the mail: {e}"))
}
