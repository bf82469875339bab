//! Privacy: the IP-masking mode. When it is on, every address the API and the WebSockets show
//! is cut to its network (IPv4 /24, IPv6 /48, written in CIDR form), in values, keys and free
//! text alike (alert descriptions name addresses too). Detection, storage and export keep the
//! full addresses: masking is about what people see on screen. Values derived from the full
//! addresses are left out too: a Community ID hashes both addresses and ports, so trying the
//! 65,536 address pairs of two masked /24s recovers the exact addresses in seconds.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `[privacy]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Show addresses as their /24 (IPv4) or /48 (IPv6) network. An admin can switch this in
    /// the dashboard's settings; that choice is saved and wins over this default.
    pub ip_masking: bool,
    /// Name servers from the headers on the wire (DNS answers so far). Names are not
    /// masked by `ip_masking`: they are what a person recognises.
    pub names: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            ip_masking: false,
            names: true,
        }
    }
}

/// An address cut to its network, in CIDR form.
pub fn mask_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => mask_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}

/// `text` with every address in it masked (an IPv4 address followed by `:port` keeps the
/// port).
pub fn mask_text(text: &str) -> Cow<'_, str> {
    let is_part = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut rest = text.char_indices().peekable();
    while let Some((start, c)) = rest.next() {
        if !is_part(c) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = rest.peek() {
            if !is_part(c) {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        if let Some(masked) = mask_token(&text[start..end]) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
            out.push_str(&text[last..start]);
            out.push_str(&masked);
            last = end;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[last..]);
            Cow::Owned(out)
        }
    }
}

/// A run of address-like characters masked, if it is an address (or IPv4 address and port).
fn mask_token(token: &str) -> Option<String> {
    let token = token.trim_end_matches(['.', ':']);
    if let Ok(ip) = token.parse::<IpAddr>() {
        // A bare number or "::" alone is not worth touching, and a time like 12:30 is no address.
        return (token.len() > 2).then(|| mask_ip(ip));
    }
    let (host, port) = token.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = host.parse().ok()?;
    port.parse::<u16>().ok()?;
    Some(format!("{}:{port}", mask_ip(IpAddr::V4(ip))))
}

/// Masks every address in a JSON value, in place.
pub fn mask_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(masked) = mask_text(s) {
                *s = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        Value::Object(map) => {
            map.remove("community_id");
            let renamed: Vec<(String, String)> = map
                .keys()
                .filter_map(|k| match mask_text(k) {
                    Cow::Owned(m) => Some((k.clone(), m)),
                    Cow::Borrowed(_) => None,
                })
                .collect();
            for (old, new) in renamed {
                if let Some(v) = map.remove(&old) {
                    map.insert(new, v);
                }
            }
            map.values_mut().for_each(mask_value);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_are_cut_to_their_networks_wherever_they_appear() {
        assert_eq!(mask_ip("192.168.1.77".parse().unwrap()), "192.168.1.0/24");
        assert_eq!(
            mask_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap()),
            "2001:db8:85a3::/48"
        );
        assert_eq!(mask_ip("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.0/24");
        assert_eq!(
            mask_text("Port scan from 45.33.32.156 against 10.0.0.5:22 and [2001:db8::1]:443."),
            "Port scan from 45.33.32.0/24 against 10.0.0.0/24:22 and [2001:db8::/48]:443."
        );
        for untouched in [
            "12:30:00",
            "deadbeef",
            "1:Xh7Q/abc=",
            "v1.2.3",
            "ports 22, 80",
            "3.5 Mpps",
        ] {
            assert_eq!(mask_text(untouched), untouched);
        }
        let mut v = json!({
            "src_ip": "192.0.2.10",
            "evidence": {"sources": ["198.51.100.1", "198.51.100.2"], "ports": [22, 80]},
            "by_host": {"203.0.113.9": 4},
            "protocol": "TCP",
            "community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        });
        mask_value(&mut v);
        assert_eq!(
            v,
            json!({
                "src_ip": "192.0.2.0/24",
                "evidence": {"sources": ["198.51.100.0/24", "198.51.100.0/24"], "ports": [22, 80]},
                "by_host": {"203.0.113.0/24": 4},
                "protocol": "TCP"
            })
        );
    }
}
