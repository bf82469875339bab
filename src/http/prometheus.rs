//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

/// One sample: metric name, labels, value.
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// A metric family: its help text, type and samples.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(name: &'static str, kind: &'static str, help: &'static str, value: f64) -> Self {
        Family::new(name, kind, help).with(&[], value)
    }

    /// One sample per entry of `values`, labelled `label = key`.
    pub fn per_label<K: AsRef<str>>(
        self,
        label: &'static str,
        values: impl IntoIterator<Item = (K, f64)>,
    ) -> Self {
        values
            .into_iter()
            .fold(self, |f, (k, v)| f.with(&[(label, k.as_ref())], v))
    }

    pub fn with(mut self, labels: &[(&'static str, &str)], value: f64) -> Self {
        self.samples.push(Sample {
            name: self.name,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        });
        self
    }
}

/// Renders families in the text format.
pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(4096);
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for s in &f.samples {
            out.push_str(s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(s.value));
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

use std::sync::atomic::Ordering;

use super::api::Api;
use super::reply::{Body, Reply};
use super::route::ApiError;
use crate::alert::actor::GetAlerts;
use crate::flow::actor::GetFlowStats;
use crate::http::hub::GetHubStatus;
use crate::metrics::actor::GetStats;
use crate::store::actor::GetStoreStatus;
use std::collections::BTreeMap;

impl Api {
    pub(super) fn metrics(&self, rt: &tokio::runtime::Runtime) -> Result<Reply, ApiError> {
        let p = self.pipeline();
        let flows = self.ask(rt, "flows", &p.flows, GetFlowStats)?;
        let stats = self.ask(rt, "metrics", &p.metrics, GetStats { top_talkers: 0 })?;
        let alerts = self.ask(rt, "alerts", &p.alerts, GetAlerts(None))?;
        let hub = self.ask(rt, "the WebSocket hub", &self.hub, GetHubStatus)?;
        let store = match &self.store {
            Some(s) => Some(self.ask(rt, "the store", s, GetStoreStatus)?),
            None => None,
        };
        let c = &p.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut by_rule: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for a in &alerts {
            *by_rule
                .entry((a.alert_type.name(), a.severity.name()))
                .or_default() += 1;
        }
        let mut alert_family = Family::new(
            "tapir_alerts",
            "gauge",
            "Alerts held by the current pipeline, by rule and severity.",
        );
        for ((rule, severity), n) in by_rule {
            alert_family = alert_family.with(&[("rule", rule), ("severity", severity)], n as f64);
        }
        let protocols = Family::new(
            "tapir_protocol_packets_total",
            "counter",
            "Packets by protocol.",
        )
        .per_label(
            "protocol",
            stats.protocol_counts.iter().map(|(p, n)| (p, *n as f64)),
        );
        let ws = Family::new(
            "tapir_websocket_clients",
            "gauge",
            "Connected WebSocket clients by stream.",
        )
        .per_label("stream", hub.clients.iter().map(|(s, n)| (s, *n as f64)));
        let export_families = {
            let mut records = Family::new(
                "tapir_export_records_total",
                "counter",
                "Records (IPFIX data records, EVE events) sent, by target.",
            );
            let mut bytes = Family::new(
                "tapir_export_bytes_total",
                "counter",
                "Bytes sent, by target.",
            );
            let mut dropped = Family::new(
                "tapir_export_dropped_total",
                "counter",
                "Records that could not be sent (target down, buffer full), by target.",
            );
            for t in &self.export {
                let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
                let labels = [("kind", t.kind), ("target", t.target.as_str())];
                records = records.with(&labels, l(&t.records));
                bytes = bytes.with(&labels, l(&t.bytes));
                dropped = dropped.with(&labels, l(&t.dropped));
            }
            [records, bytes, dropped]
        };
        let notify_families = {
            let mut families = [
                (
                    "tapir_notify_sent_total",
                    "Notifications delivered, by target.",
                ),
                (
                    "tapir_notify_failed_total",
                    "Notifications that failed after their retries, by target.",
                ),
                (
                    "tapir_notify_dropped_total",
                    "Notifications dropped because the target's queue was full, by target.",
                ),
            ]
            .map(|(name, help)| Family::new(name, "counter", help));
            let current = self.notify.as_ref().and_then(|n| n.current());
            for (name, kind, c) in current.iter().flat_map(|n| n.counters()) {
                let labels = [("kind", kind), ("target", name.as_str())];
                for (family, value) in families.iter_mut().zip([c.sent, c.failed, c.dropped]) {
                    *family = std::mem::replace(family, Family::new("", "", ""))
                        .with(&labels, value as f64);
                }
            }
            families
        };
        let intel_entries = Family::new(
            "tapir_intel_entries",
            "gauge",
            "Entries of each threat list as loaded.",
        )
        .per_label(
            "list",
            self.intel
                .iter()
                .flat_map(|(i, _)| i.status(0))
                .map(|l| (l.name, l.entries.total() as f64)),
        );
        let mut families = vec![
            Family::single(
                "tapir_uptime_seconds",
                "gauge",
                "Seconds since start.",
                self.started.elapsed().as_secs_f64(),
            ),
            Family::new(
                "tapir_build_info",
                "gauge",
                "Version of the running binary.",
            )
            .with(
                &[("version", env!("CARGO_PKG_VERSION")), ("mode", self.mode)],
                1.0,
            ),
            Family::single(
                "tapir_packets_total",
                "counter",
                "Frames captured by the current source.",
                load(&c.frames),
            ),
            Family::single(
                "tapir_bytes_total",
                "counter",
                "Bytes captured by the current source.",
                load(&c.bytes),
            ),
            Family::single(
                "tapir_packets_decoded_total",
                "counter",
                "Frames decoded to IP packets.",
                load(&c.decoded),
            ),
            Family::new(
                "tapir_packets_dropped_total",
                "counter",
                "Packets lost, by where they were lost.",
            )
            .with(&[("reason", "queue_full")], load(&c.packets_dropped))
            .with(&[("reason", "kernel")], load(&c.libpcap_dropped))
            .with(&[("reason", "interface")], load(&c.libpcap_if_dropped)),
            protocols,
            Family::single(
                "tapir_flows_active",
                "gauge",
                "Flows in the flow table.",
                flows.active as f64,
            ),
            Family::single(
                "tapir_flows_created_total",
                "counter",
                "Flows created.",
                flows.created as f64,
            ),
            Family::single(
                "tapir_flows_evicted_total",
                "counter",
                "Flows evicted because the table was full.",
                flows.evicted as f64,
            ),
            Family::single(
                "tapir_queue_backlog_batches",
                "gauge",
                "Packet batches handed to the flow table but not yet processed.",
                c.backlog(flows.batches) as f64,
            ),
            alert_family,
            ws,
            Family::single(
                "tapir_websocket_dropped_slow_total",
                "counter",
                "WebSocket clients dropped for being too slow.",
                hub.dropped_slow as f64,
            ),
            {
                let g = self.gate.counts();
                Family::new(
                    "tapir_http_rejected_total",
                    "counter",
                    "Connections and requests the front door refused or closed, by reason.",
                )
                .with(&[("reason", "connection_limit")], g.refused as f64)
                .with(&[("reason", "evicted_idle")], g.evicted as f64)
                .with(&[("reason", "header_timeout")], g.header_timeouts as f64)
                .with(&[("reason", "header_too_large")], g.header_too_large as f64)
                .with(&[("reason", "body_timeout")], g.body_timeouts as f64)
                .with(&[("reason", "body_too_large")], g.body_too_large as f64)
                .with(&[("reason", "upstream_busy")], g.upstream_busy as f64)
                .with(&[("reason", "bad_request")], g.bad_requests as f64)
                .with(&[("reason", "tls_handshake")], g.tls_failures as f64)
            },
            Family::single(
                "tapir_http_connections",
                "gauge",
                "Open client connections.",
                self.gate.counts().open as f64,
            ),
            Family::single(
                "tapir_rss_bytes",
                "gauge",
                "Resident memory.",
                crate::process::rss_bytes() as f64,
            ),
        ];
        families.extend(export_families);
        families.extend(notify_families);
        families.push(intel_entries);
        if let Some(s) = store {
            families.push(Family::single(
                "tapir_store_available",
                "gauge",
                "1 if the database is writable.",
                f64::from(u8::from(s.available)),
            ));
            families.push(Family::single(
                "tapir_store_pending_records",
                "gauge",
                "Records waiting for the next write.",
                s.pending as f64,
            ));
            families.push(Family::single(
                "tapir_store_dropped_total",
                "counter",
                "Records dropped while the disk was unavailable.",
                s.dropped as f64,
            ));
            families.push(Family::single(
                "tapir_store_errors_total",
                "counter",
                "Failed database writes.",
                s.errors as f64,
            ));
            if let Some(db) = s.database {
                families.push(Family::single(
                    "tapir_store_size_bytes",
                    "gauge",
                    "Database size on disk.",
                    db.size_on_disk as f64,
                ));
                families.push(
                    Family::new("tapir_store_records", "gauge", "Stored records by kind.")
                        .with(&[("kind", "flows")], db.flows.records as f64)
                        .with(&[("kind", "alerts")], db.alerts.records as f64)
                        .with(&[("kind", "snapshots")], db.snapshots.records as f64),
                );
            }
        }
        Ok(Reply {
            status: 200,
            body: Body::Text(
                render(&families),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            headers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let text = render(&[
            Family::single("tapir_packets_total", "counter", "Packets captured.", 42.0),
            Family::new("tapir_alerts", "gauge", "Alerts by rule.")
                .with(&[("rule", "port_scan"), ("severity", "high")], 2.0)
                .with(&[("rule", "odd\"name")], 0.5),
        ]);
        assert_eq!(
            text,
            "# HELP tapir_packets_total Packets captured.\n# TYPE tapir_packets_total counter\ntapir_packets_total 42\n\
             # HELP tapir_alerts Alerts by rule.\n# TYPE tapir_alerts gauge\n\
             tapir_alerts{rule=\"port_scan\",severity=\"high\"} 2\ntapir_alerts{rule=\"odd\\\"name\"} 0.5\n"
        );
    }
}
