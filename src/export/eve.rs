//! Flows and alerts as Suricata EVE JSON events, and RFC 5424 syslog framing of them, so that
//! the Suricata ingest pipelines of Filebeat, Vector, Logstash or Wazuh take them unchanged.

use std::net::IpAddr;

use crate::model::device::Device;
use serde_json::{Value, json};

use crate::model::alert::Alert;
use crate::model::finding::{Rule, Severity};
use crate::model::flow::{
    EndReason, FlowRecord, FlowState, NameSource, TunnelView, tls_version_name,
};

/// Suricata's timestamp form: `2026-01-01T00:00:05.250000+0000` (UTC).
pub fn timestamp(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let micros = unix_ns.rem_euclid(1_000_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Suricata's protocol names.
fn proto(ip_proto: u8) -> Value {
    match ip_proto {
        1 => json!("ICMP"),
        6 => json!("TCP"),
        17 => json!("UDP"),
        58 => json!("IPv6-ICMP"),
        132 => json!("SCTP"),
        n => json!(n.to_string()),
    }
}

/// A flow record as an EVE `flow` event (timestamped at the flow's end).
pub fn flow_event(r: &FlowRecord, host: &str) -> Value {
    let state = match r.state {
        FlowState::Handshake => "new",
        FlowState::Established | FlowState::Closing | FlowState::Active => "established",
        FlowState::Closed | FlowState::Reset => "closed",
    };
    let reason = match r.end {
        EndReason::IdleTimeout | EndReason::ActiveTimeout | EndReason::Active => "timeout",
        EndReason::Closed | EndReason::Evicted => "forced",
        EndReason::Shutdown => "shutdown",
    };
    let mut event = json!({
        "timestamp": timestamp(r.last_seen.0),
        "flow_id": r.id,
        "event_type": "flow",
        "src_ip": r.src.to_string(),
        "src_port": r.src_port,
        "dest_ip": r.dst.to_string(),
        "dest_port": r.dst_port,
        "proto": proto(r.ip_proto),
        "community_id": r.community_id,
        "host": host,
        "flow": {
            "pkts_toserver": r.src_packets,
            "pkts_toclient": r.dst_packets,
            "bytes_toserver": r.src_bytes,
            "bytes_toclient": r.dst_bytes,
            "start": timestamp(r.first_seen.0),
            "end": timestamp(r.last_seen.0),
            "age": r.last_seen.0.saturating_sub(r.first_seen.0).max(0) / 1_000_000_000,
            "state": state,
            "reason": reason,
            "alerted": false,
        },
    });
    if let Some(vlan) = r.vlan {
        event["vlan"] = json!([vlan]);
    }
    // Suricata's `tunnel` object (the outer header: addresses, ports, protocol, depth), with
    // the tunnel's type and number besides.
    if let Some(t) = &r.tunnel {
        event["tunnel"] = json!(TunnelView(t));
    }
    if let Some(kind) = r.carries {
        event["carries"] = json!(kind.name());
    }
    // What named the flow, in Suricata's own fields, so that existing pipelines show it.
    match (r.name_source, &r.server_name, &r.tls) {
        (_, _, Some(tls)) => {
            // Suricata logs QUIC's hello under `quic`, TLS's under `tls`.
            let proto = if r.name_source == Some(NameSource::Quic) || r.ip_proto == 17 {
                "quic"
            } else {
                "tls"
            };
            let mut hello = json!({ "ja4": &*tls.ja4 });
            // Suricata's `quic.version` is QUIC's own version, which is not kept.
            if proto == "tls" {
                hello["version"] = json!(tls_version_name(tls.version));
            }
            if let (Some(NameSource::Sni | NameSource::Quic), Some(name)) =
                (r.name_source, &r.server_name)
            {
                hello["sni"] = json!(&**name);
            }
            if let Some(alpn) = &tls.alpn {
                hello["alpn"] = json!([&**alpn]);
            }
            event["app_proto"] = json!(proto);
            event[proto] = hello;
        }
        (_, _, None) if r.http_host.is_some() => {
            event["app_proto"] = json!("http");
            event["http"] = json!({
                "hostname": r.http_host.as_deref(),
                "http_user_agent": r.http_user_agent.as_deref(),
            });
        }
        _ => {}
    }
    if r.ip_proto == 6 {
        event["tcp"] = json!({
            "tcp_flags_ts": format!("{:02x}", r.src_flags.0),
            "tcp_flags_tc": format!("{:02x}", r.dst_flags.0),
        });
    }
    event
}

/// A station of the segment as an EVE `device` event, for SIEMs that keep an asset
/// inventory: sent when it is first seen and when its addresses, names, DHCP facts or label
/// change. `device.first_seen`/`last_seen` are EVE timestamps; `src_ip` is its most recent
/// address.
pub fn device_event(d: &Device, host: &str) -> Value {
    let secs_ns = |s: f64| (s * 1e9) as i64;
    let latest = d
        .addresses
        .iter()
        .max_by(|a, b| a.last_seen.total_cmp(&b.last_seen));
    let mut event = json!({
        "timestamp": timestamp(secs_ns(d.last_seen)),
        "event_type": "device",
        "host": host,
        "device": {
            "mac": d.mac.to_string(),
            "vendor": crate::devices::vendor::vendor(d.mac),
            "randomized": d.mac.is_local_admin(),
            "name": d.display_name(),
            "label": d.label,
            "known": d.known,
            "addresses": d.addresses.iter().map(|a| a.ip.to_string()).collect::<Vec<_>>(),
            "names": d.names.iter().map(|n| json!({"name": n.name, "source": n.source})).collect::<Vec<_>>(),
            "dhcp_fingerprint": d.dhcp_fingerprint,
            "vendor_class": d.vendor_class,
            "client_id": d.client_id,
            "duid": d.duid,
            "dhcp_server": d.dhcp_server,
            "router": d.router,
            "first_seen": timestamp(secs_ns(d.first_seen)),
            "last_seen": timestamp(secs_ns(d.last_seen)),
        },
    });
    if let Some(a) = latest {
        event["src_ip"] = json!(a.ip.to_string());
    }
    event
}

/// Suricata's severity: 1 is the most severe.
fn eve_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical | Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
    }
}

/// The classification (Suricata's `classification.config` names) and a signature id per rule.
fn classify(rule: Rule) -> (&'static str, u32) {
    match rule {
        Rule::PortScan => ("Detection of a Network Scan", 9_000_001),
        Rule::BruteForce => ("Attempted User Privilege Gain", 9_000_002),
        Rule::SynFlood => ("Detection of a Denial of Service Attack", 9_000_003),
        Rule::DnsTunneling => ("Potential Corporate Privacy Violation", 9_000_004),
        Rule::TrafficSpike => ("Potentially Bad Traffic", 9_000_005),
        Rule::NewDevice => ("Misc activity", 9_000_006),
        Rule::ArpSpoofing => ("Attempted Information Leak", 9_000_007),
        Rule::RogueDhcp => ("Potentially Bad Traffic", 9_000_008),
        Rule::ThreatIntel => ("A Network Trojan was detected", 9_000_009),
    }
}

/// An alert as an EVE `alert` event. The target (`ip`, `ip:port`, `*:port/proto`, `link`)
/// gives `dest_ip`/`dest_port` where it names them.
pub fn alert_event(a: &Alert, host: &str) -> Value {
    let (category, sid) = classify(a.alert_type);
    let ns = (a.timestamp * 1e9) as i64;
    let mut event = json!({
        "timestamp": timestamp(ns),
        "event_type": "alert",
        "host": host,
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": sid,
            "rev": 1,
            "signature": format!("TAPIR {} {}", a.alert_type.name(), a.description),
            "category": category,
            "severity": eve_severity(a.severity),
            "metadata": {"tapir_severity": [a.severity.name()], "tapir_rule": [a.alert_type.name()]},
        },
        "tapir": {
            "alert_id": a.id,
            "count": a.count,
            "last_seen": timestamp((a.last_seen * 1e9) as i64),
            "target": a.target,
            "evidence": a.evidence,
        },
    });
    if let Ok(ip) = a.source_ip.parse::<IpAddr>() {
        event["src_ip"] = json!(ip.to_string());
    }
    let target = a.target.split('/').next().unwrap_or("");
    if let Ok(sa) = target.parse::<std::net::SocketAddr>() {
        event["dest_ip"] = json!(sa.ip().to_string());
        event["dest_port"] = json!(sa.port());
    } else if let Ok(ip) = target.parse::<IpAddr>() {
        event["dest_ip"] = json!(ip.to_string());
    } else if let Some(port) = target
        .strip_prefix("*:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        event["dest_port"] = json!(port);
    }
    if let Some(proto_name) = a.target.split('/').nth(1) {
        event["proto"] = json!(proto_name.to_ascii_uppercase());
    } else if a.alert_type == Rule::DnsTunneling {
        event["proto"] = json!("UDP");
    } else if matches!(
        a.alert_type,
        Rule::PortScan | Rule::BruteForce | Rule::SynFlood
    ) {
        event["proto"] = json!("TCP");
    }
    if let Some(id) = &a.community_id {
        event["community_id"] = json!(id);
    }
    event
}

/// Syslog facilities by name (RFC 5424 §6.2.1).
pub fn facility(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// An RFC 5424 message: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`, the timestamp in
/// RFC 3339 with microseconds. `severity` is the syslog severity (0 emergency … 7 debug).
pub fn syslog_line(
    facility: u8,
    severity: u8,
    unix_ns: i64,
    host: &str,
    msgid: &str,
    msg: &str,
) -> String {
    let ts = timestamp(unix_ns);
    // Suricata's "+0000" is not RFC 3339; syslog wants "Z".
    let ts = ts.trim_end_matches("+0000");
    format!(
        "<{}>1 {ts}Z {} tapir {} {msgid} - {msg}",
        u16::from(facility) * 8 + u16::from(severity),
        if host.is_empty() { "-" } else { host },
        std::process::id()
    )
}

/// The syslog severity of an alert (critical 2 … low 5); flows are informational (6).
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_suricatas_and_dates_are_right() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // 2000-02-29 12:34:56.789012 UTC = 951827696.789012 (a leap day).
        assert_eq!(
            timestamp(951_827_696_789_012_000),
            "2000-02-29T12:34:56.789012+0000"
        );
        assert_eq!(
            timestamp(1_767_225_605_250_000_000),
            "2026-01-01T00:00:05.250000+0000"
        );
    }

    #[test]
    fn syslog_lines_follow_rfc_5424() {
        let line = syslog_line(
            facility("local5").unwrap(),
            4,
            1_767_225_605_250_000_000,
            "tap1",
            "alert",
            "{}",
        );
        assert!(
            line.starts_with("<172>1 2026-01-01T00:00:05.250000Z tap1 tapir "),
            "{line}"
        );
        assert!(line.ends_with(" alert - {}"), "{line}");
        assert_eq!(facility("kern"), Some(0));
        assert_eq!(facility("local7"), Some(23));
        assert_eq!(facility("nope"), None);
    }
}
