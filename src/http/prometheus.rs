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
