//! Applications: which service a server's name belongs to (`youtube`, `streaming`), from a
//! catalogue of names shipped in the binary (`apps.txt`) that a file in the config can extend
//! or override; a flow with no catalogued name gets the IANA service name of its port,
//! marked as a guess. Names are matched at label boundaries, most specific first, down to
//! the registrable domain (the public suffix list, through the `psl` crate): `co.uk` or
//! `github.io` never match a whole suffix's worth of unrelated sites.

use crate::model::flow::{AppLabel, intern};
use crate::packet::ip_proto;
use hashbrown::HashMap;
use std::path::Path;

/// The catalogue that ships in the binary.
const BUILTIN: &str = include_str!("apps.txt");

/// Names of services and their categories.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Service by name (a registrable domain or a more specific name).
    by_name: HashMap<Box<str>, u32>,
    /// (service, category), interned.
    services: Vec<(&'static str, &'static str)>,
}

/// A line of a catalogue file that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct CatalogueError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl Catalogue {
    /// The built-in catalogue.
    pub fn builtin() -> Catalogue {
        let mut c = Catalogue::default();
        // The built-in text is checked by a test: it always parses.
        let _ = c.add_text(BUILTIN);
        c
    }

    /// The built-in catalogue with the services of `path` added (a name in both goes to the
    /// file's service).
    pub fn with_file(path: &Path) -> Result<Catalogue, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read names.apps_file {}: {e} (fix the path or remove the setting)",
                path.display()
            )
        })?;
        let mut c = Catalogue::builtin();
        c.add_text(&text)
            .map_err(|e| format!("names.apps_file {}: {e}", path.display()))?;
        Ok(c)
    }

    /// Services catalogued.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Adds the lines of a catalogue text: `service category name...`.
    pub fn add_text(&mut self, text: &str) -> Result<(), CatalogueError> {
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(service) = words.next() else {
                continue;
            };
            let err = |reason: String| CatalogueError {
                line: line_no,
                reason,
            };
            let category = words
                .next()
                .ok_or_else(|| err(format!("{service} has no category")))?;
            for word in [service, category] {
                if !word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(err(format!(
                        "{word:?}: services and categories are lowercase letters, digits and '-'"
                    )));
                }
            }
            let names: Vec<&str> = words.collect();
            if names.is_empty() {
                return Err(err(format!("{service} lists no names")));
            }
            let index = self.service(service, category);
            for name in names {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let valid = !name.is_empty()
                    && name.contains('.')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !valid {
                    return Err(err(format!("{name:?} is not a host name")));
                }
                self.by_name.insert(name.into(), index);
            }
        }
        Ok(())
    }

    fn service(&mut self, service: &str, category: &str) -> u32 {
        let category = intern(category);
        if let Some(i) = self.services.iter().position(|(s, _)| *s == service) {
            self.services[i].1 = category;
            return i as u32;
        }
        self.services.push((intern(service), category));
        (self.services.len() - 1) as u32
    }

    /// The service a server's name belongs to: the most specific catalogued name that is the
    /// name itself or a parent of it, no higher than its registrable domain; under a private
    /// suffix (a hosting platform's: `googleapis.com`, `cloudfront.net`, `github.io`), the
    /// suffix itself may match, since its tenants are the platform's sites.
    pub fn by_name(&self, name: &str) -> Option<AppLabel> {
        let name = name.trim_end_matches('.');
        let floor = match psl::suffix(name.as_bytes()) {
            Some(s) if s.typ() == Some(psl::Type::Private) => s.as_bytes().len(),
            _ => psl::domain(name.as_bytes()).map_or(name.len(), |d| d.as_bytes().len()),
        };
        let mut candidate = name;
        loop {
            if let Some(&i) = self.by_name.get(candidate) {
                let (app, category) = self.services[i as usize];
                return Some(AppLabel {
                    app,
                    category,
                    by_port: false,
                });
            }
            if candidate.len() <= floor {
                return None;
            }
            candidate = candidate.split_once('.')?.1;
        }
    }

    /// A flow's application: by its server's name, else (a guess) by the service of the
    /// responder's port, else of the initiator's.
    pub fn label(
        &self,
        server_name: Option<&str>,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Option<AppLabel> {
        if let Some(label) = server_name.and_then(|n| self.by_name(n)) {
            return Some(label);
        }
        let (app, category) =
            port_service(proto, dst_port).or_else(|| port_service(proto, src_port))?;
        Some(AppLabel {
            app,
            category,
            by_port: true,
        })
    }
}

/// The IANA service name (RFC 6335 registry) of a well-known or common registered port, and
/// its category: what a flow on that port most likely is.
pub fn port_service(proto: u8, port: u16) -> Option<(&'static str, &'static str)> {
    let tcp = proto == ip_proto::TCP;
    let udp = proto == ip_proto::UDP;
    if !tcp && !udp {
        return None;
    }
    Some(match (port, tcp) {
        (20 | 21, true) => ("ftp", "file-transfer"),
        (22, true) => ("ssh", "remote-access"),
        (23, true) => ("telnet", "remote-access"),
        (25 | 465 | 587, true) => ("smtp", "email"),
        (53, _) => ("domain", "network"),
        (67 | 68, false) => ("dhcp", "network"),
        (69, false) => ("tftp", "file-transfer"),
        (80 | 8080, true) => ("http", "web"),
        (110 | 995, true) => ("pop3", "email"),
        (123, false) => ("ntp", "network"),
        (137, false) => ("netbios-ns", "network"),
        (138, false) => ("netbios-dgm", "network"),
        (139, true) => ("netbios-ssn", "file-transfer"),
        (143 | 993, true) => ("imap", "email"),
        (161 | 162, false) => ("snmp", "network"),
        (179, true) => ("bgp", "network"),
        (389 | 636, _) => ("ldap", "directory"),
        (443 | 8443, true) => ("https", "web"),
        (443, false) => ("quic", "web"),
        (445, true) => ("microsoft-ds", "file-transfer"),
        (500 | 4500, false) => ("isakmp", "vpn"),
        (514, false) => ("syslog", "network"),
        (546 | 547, false) => ("dhcpv6", "network"),
        (853, _) => ("domain-s", "network"),
        (873, true) => ("rsync", "file-transfer"),
        (1194, _) => ("openvpn", "vpn"),
        (1883 | 8883, true) => ("mqtt", "iot"),
        (1900, false) => ("ssdp", "network"),
        (3306, true) => ("mysql", "database"),
        (3389, _) => ("ms-wbt-server", "remote-access"),
        (3478 | 3479, _) => ("stun", "conferencing"),
        (5060 | 5061, _) => ("sip", "conferencing"),
        (5222 | 5223, true) => ("xmpp-client", "messaging"),
        (5228, true) => ("google-play-services", "os-services"),
        (5353, false) => ("mdns", "network"),
        (5355, false) => ("llmnr", "network"),
        (5432, true) => ("postgresql", "database"),
        (5900, true) => ("vnc", "remote-access"),
        (6379, true) => ("redis", "database"),
        (51820, false) => ("wireguard", "vpn"),
        _ => return None,
    })
}

/// Loads the catalogue for `[names] apps_file` (the built-in one when unset).
pub fn load(apps_file: Option<&Path>) -> Result<Catalogue, String> {
    match apps_file {
        Some(path) => Catalogue::with_file(path),
        None => Ok(Catalogue::builtin()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_parses_and_covers_150_services() {
        let mut c = Catalogue::default();
        c.add_text(BUILTIN).expect("apps.txt parses");
        assert!(c.len() >= 150, "{}", c.len());
        // No name belongs to two services in the built-in list.
        let mut seen = std::collections::HashSet::new();
        for line in BUILTIN.lines().filter(|l| !l.starts_with('#')) {
            for name in line.split_whitespace().skip(2) {
                assert!(seen.insert(name), "{name} listed twice");
            }
        }
    }

    fn app(c: &Catalogue, name: &str) -> Option<(String, String)> {
        c.by_name(name)
            .map(|l| (l.app.to_string(), l.category.to_string()))
    }

    #[test]
    fn names_match_at_label_boundaries_most_specific_first() {
        let c = Catalogue::builtin();
        let yt = Some(("youtube".to_string(), "streaming".to_string()));
        assert_eq!(app(&c, "rr3---sn-4g5e6nzz.googlevideo.com"), yt);
        assert_eq!(app(&c, "youtubei.googleapis.com"), yt);
        assert_eq!(app(&c, "www.youtube.com."), yt);
        assert_eq!(
            app(&c, "fonts.googleapis.com").map(|a| a.0),
            Some("google-cloud".into())
        );
        assert_eq!(
            app(&c, "securepubads.g.doubleclick.net").map(|a| a.1),
            Some("ads".into())
        );
        // Not a label boundary, and not under a catalogued name.
        assert_eq!(app(&c, "notyoutube.com"), None);
        assert_eq!(app(&c, "example.org"), None);
        // A hosting platform's private suffix matches its tenants.
        assert_eq!(
            app(&c, "someone.github.io").map(|a| a.0),
            Some("github".into())
        );
    }

    #[test]
    fn a_file_adds_services_and_takes_names_over() {
        let mut c = Catalogue::builtin();
        c.add_text("# ours\nintranet  productivity  corp.example  wiki.corp.example\nmy-tube streaming youtube.com\n")
            .unwrap();
        assert_eq!(
            app(&c, "mail.corp.example"),
            Some(("intranet".into(), "productivity".into()))
        );
        assert_eq!(app(&c, "www.youtube.com").unwrap().0, "my-tube");
        assert_eq!(app(&c, "i.ytimg.com").unwrap().0, "youtube");
        // An ICANN public suffix is never matched as a whole, even when a file lists it.
        c.add_text("uk-sites web co.uk\n").unwrap();
        assert_eq!(app(&c, "www.example.co.uk"), None);
        assert_eq!(app(&c, "www.bbc.co.uk").unwrap().0, "bbc-iplayer");
        for (bad, line) in [
            ("ok productivity a.example\n\nx", 3),
            ("svc cat\n", 1),
            ("Svc cat a.example\n", 1),
            ("svc cat http://a.example/\n", 1),
        ] {
            let err = Catalogue::default().add_text(bad).unwrap_err();
            assert_eq!(err.line, line, "{bad:?}: {err}");
        }
    }

    #[test]
    fn unnamed_flows_get_their_port_s_service_as_a_guess() {
        let c = Catalogue::builtin();
        let l = c.label(None, ip_proto::TCP, 51000, 22).unwrap();
        assert_eq!(
            (l.app, l.category, l.by_port),
            ("ssh", "remote-access", true)
        );
        // A reply seen first: the initiator's port is the service's.
        let l = c.label(None, ip_proto::UDP, 123, 40000).unwrap();
        assert_eq!(l.app, "ntp");
        assert_eq!(c.label(None, ip_proto::TCP, 40000, 40001), None);
        assert_eq!(c.label(None, ip_proto::ICMP, 0, 0), None);
        // A catalogued name wins over the port.
        let l = c
            .label(Some("www.netflix.com"), ip_proto::TCP, 40000, 443)
            .unwrap();
        assert_eq!((l.app, l.by_port), ("netflix", false));
    }
}
