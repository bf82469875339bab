//! Reading threat lists: plain lines, a CSV column, Spamhaus DROP/EDROP and hosts files, each
//! entry classified as a network, a domain or a JA4 fingerprint. A line that holds nothing
//! usable is counted (with the first such line kept for the error shown) and skipped; it
//! never fails the list.

use std::io::BufRead;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::matcher::{EntryCounts, IndicatorSetBuilder, ListIndex};

/// How a list file is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// One entry per line (address, network, domain or JA4); `#` starts a comment.
    #[default]
    Lines,
    /// Comma-separated values, the entry in column `column` (from 1); `#` lines are
    /// comments. abuse.ch's exports (Feodo Tracker, SSLBL, URLhaus, ThreatFox) are read so:
    /// quotes are removed, a URL counts as its host and `address:port` as the address.
    Csv,
    /// Spamhaus DROP/EDROP: `network ; SBL id` lines, or the JSON-lines edition.
    Drop,
    /// Hosts-file lines: an address, then the names it is pinned to (the names are listed).
    Hosts,
}

/// What reading one list found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParseReport {
    pub entries: EntryCounts,
    /// Lines that held no usable entry.
    pub malformed: u64,
    /// The first of them, with its line number.
    pub first_malformed: Option<String>,
}

/// One classified entry, borrowed from its line (names are matched case-insensitively, so
/// they are not lowercased here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indicator<'a> {
    Net(IpNet),
    Domain(&'a str),
    Ja4(&'a str),
}

/// Reads `input` in `format` into `set` under `list`; `column` is the CSV column (from 1).
pub fn read_list(
    input: impl BufRead,
    format: ListFormat,
    column: usize,
    list: ListIndex,
    set: &mut IndicatorSetBuilder,
) -> std::io::Result<ParseReport> {
    let before = set.counts();
    let mut report = ParseReport::default();
    let mut add = |indicator: Indicator| match indicator {
        Indicator::Net(net) => set.add_net(net, list),
        Indicator::Domain(name) => set.add_domain(name, list),
        Indicator::Ja4(fp) => set.add_ja4(fp, list),
    };
    let malformed = |report: &mut ParseReport, number: usize, line: &str| {
        report.malformed += 1;
        if report.first_malformed.is_none() {
            let shown: String = line.chars().take(80).collect();
            report.first_malformed = Some(format!("line {number}: {shown:?}"));
        }
    };
    // One buffer for every line: a million-line list costs no allocation per line.
    let mut input = input;
    let mut bytes = Vec::new();
    let mut number = 0;
    loop {
        bytes.clear();
        if input.read_until(b'\n', &mut bytes)? == 0 {
            break;
        }
        number += 1;
        // A line that is not UTF-8 is one junk line, not a failed list.
        let Ok(line) = std::str::from_utf8(&bytes) else {
            malformed(&mut report, number, &String::from_utf8_lossy(&bytes));
            continue;
        };
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') || text.starts_with("//") {
            continue;
        }
        match format {
            ListFormat::Lines => {
                let entry = text.split('#').next().unwrap_or("").trim();
                match classify(entry) {
                    Some(i) => add(i),
                    None => malformed(&mut report, number, text),
                }
            }
            ListFormat::Csv => match csv_field(text, column).and_then(classify) {
                Some(i) => add(i),
                None => malformed(&mut report, number, text),
            },
            ListFormat::Drop => {
                let network = if text.starts_with('{') {
                    serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| v.get("cidr")?.as_str().map(str::to_string))
                } else if text.starts_with(';') {
                    continue;
                } else {
                    text.split(';').next().map(|s| s.trim().to_string())
                };
                match network.as_deref().and_then(parse_net) {
                    Some(net) => add(Indicator::Net(net)),
                    // The JSON edition ends with a metadata line that has no cidr.
                    None if text.contains("\"timestamp\"") => {}
                    None => malformed(&mut report, number, text),
                }
            }
            ListFormat::Hosts => {
                let body = text.split('#').next().unwrap_or("");
                let mut words = body.split_whitespace();
                let pinned = words.next().and_then(|w| w.parse::<IpAddr>().ok());
                let mut any = false;
                for word in words {
                    if pinned.is_none() {
                        break;
                    }
                    if is_local_name(word) {
                        any = true;
                        continue;
                    }
                    if let Some(Indicator::Domain(d)) = classify(word) {
                        add(Indicator::Domain(d));
                        any = true;
                    }
                }
                if !any {
                    malformed(&mut report, number, text);
                }
            }
        }
    }
    let after = set.counts();
    report.entries = EntryCounts {
        networks: after.networks - before.networks,
        domains: after.domains - before.domains,
        ja4: after.ja4 - before.ja4,
    };
    Ok(report)
}

/// Names a hosts file pins for the machine itself, not as a block.
fn is_local_name(word: &str) -> bool {
    matches!(
        word,
        "localhost"
            | "localhost.localdomain"
            | "local"
            | "broadcasthost"
            | "ip6-localhost"
            | "ip6-loopback"
            | "ip6-localnet"
            | "ip6-mcastprefix"
            | "ip6-allnodes"
            | "ip6-allrouters"
            | "ip6-allhosts"
            | "0.0.0.0"
    )
}

/// Field `column` (from 1) of a CSV line, quotes removed; quoted commas are kept.
fn csv_field(line: &str, column: usize) -> Option<&str> {
    let mut fields = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    let field = fields.get(column.checked_sub(1)?)?.trim();
    Some(field.trim_matches('"').trim())
}

/// An entry as a network, a domain or a JA4 fingerprint; `None` when it is none of them.
/// URLs count as their host and `address:port` as the address.
pub fn classify(entry: &str) -> Option<Indicator<'_>> {
    let mut entry = entry.trim();
    if let Some(at) = entry.find("://") {
        let rest = &entry[at + 3..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        entry = &rest[..end];
        entry = entry.rsplit('@').next().unwrap_or(entry);
    }
    if entry.is_empty() {
        return None;
    }
    if let Some(net) = parse_net(entry) {
        return Some(Indicator::Net(net));
    }
    // `[v6]:port`, `v4:port`, `host:port`.
    if let Some(inner) = entry.strip_prefix('[') {
        let addr = inner.split(']').next()?;
        return addr
            .parse::<IpAddr>()
            .ok()
            .map(|a| Indicator::Net(IpNet::from(a)));
    }
    if let Some((host, port)) = entry.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
        && !host.contains(':')
    {
        entry = host;
        if let Ok(a) = entry.parse::<IpAddr>() {
            return Some(Indicator::Net(IpNet::from(a)));
        }
    }
    if is_ja4(entry) {
        return Some(Indicator::Ja4(entry));
    }
    let name = entry.trim_end_matches('.');
    is_domain(name).then_some(Indicator::Domain(name))
}

fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if text.contains('/') {
        text.parse::<IpNet>().ok()
    } else {
        text.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

/// JA4's shape: `t13d1516h2_8daaf6152771_e5627efa2ab1` (protocol, version, SNI flag, counts,
/// ALPN, then two 12-digit hex hashes).
fn is_ja4(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && matches!(b[0].to_ascii_lowercase(), b't' | b'q' | b'd')
        && b[10] == b'_'
        && b[23] == b'_'
        && b[1..10].iter().all(u8::is_ascii_alphanumeric)
        && b[11..23].iter().chain(&b[24..]).all(u8::is_ascii_hexdigit)
}

/// A host name of at least two labels: letters, digits, `-` and `_`, labels of 1–63 bytes.
fn is_domain(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // A dotted string of digits only is a malformed address, not a name.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: ListFormat, column: usize) -> (ParseReport, IndicatorSetBuilder) {
        let mut set = IndicatorSetBuilder::default();
        let report = read_list(text.as_bytes(), format, column, 0, &mut set).unwrap();
        (report, set)
    }

    #[test]
    fn plain_lines_take_every_kind_and_count_junk() {
        let text = "# a comment\n\n192.0.2.1\n198.51.100.0/24 # inline\n2001:db8::/32\n\
                    Evil.Example.\nq13d0310h3_55b375c5d22e_cd85d2d88918\nnot an entry\n300.1.2.3\n";
        let (report, _) = read(text, ListFormat::Lines, 0);
        assert_eq!(
            report.entries,
            EntryCounts {
                networks: 3,
                domains: 1,
                ja4: 1
            }
        );
        assert_eq!(report.malformed, 2);
        assert_eq!(
            report.first_malformed.as_deref(),
            Some("line 8: \"not an entry\"")
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_counted_not_fatal() {
        let text = b"192.0.2.1\n\xff\xfe junk\nevil.example\n";
        let mut set = IndicatorSetBuilder::default();
        let report = read_list(&text[..], ListFormat::Lines, 1, 0, &mut set).unwrap();
        assert_eq!((report.entries.total(), report.malformed), (2, 1));
        assert!(report.first_malformed.unwrap().starts_with("line 2:"));
    }

    #[test]
    fn abuse_ch_csv_columns() {
        // Feodo Tracker's ipblocklist.csv layout: the address is column 2.
        let feodo = "################\n# Feodo Tracker\n\
            \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
            \"2021-01-17 07:44:46\",\"51.178.161.32\",\"4643\",\"online\",\"2024-05-01\",\"Dridex\"\n";
        let (report, _) = read(feodo, ListFormat::Csv, 2);
        assert_eq!(report.entries.networks, 1);
        assert_eq!(report.malformed, 1, "the header line");
        // URLhaus: the URL in column 3 counts as its host.
        let urlhaus = "\"3032113\",\"2024-05-01 10:00:00\",\"http://evil.example:8080/a.exe\",\"online\"\n\
                       \"3032114\",\"2024-05-01 10:00:01\",\"https://[2001:db8::5]/x\",\"online\"\n";
        let (report, _) = read(urlhaus, ListFormat::Csv, 3);
        assert_eq!(
            report.entries,
            EntryCounts {
                networks: 1,
                domains: 1,
                ja4: 0
            }
        );
        // ThreatFox: `address:port` in column 3.
        let threatfox = "\"2024-05-01\",\"1\",\"192.0.2.8:443\",\"ip:port\"\n";
        assert_eq!(read(threatfox, ListFormat::Csv, 3).0.entries.networks, 1);
        // A column past the end is malformed, not a panic.
        assert_eq!(read(threatfox, ListFormat::Csv, 9).0.malformed, 1);
        assert_eq!(read(threatfox, ListFormat::Csv, 0).0.malformed, 1);
    }

    #[test]
    fn spamhaus_drop_both_editions() {
        let text = "; Spamhaus DROP List 2024/05/01\n; Expires: ...\n\
                    1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\nbogus ; SBL1\n";
        let (report, _) = read(text, ListFormat::Drop, 0);
        assert_eq!((report.entries.networks, report.malformed), (2, 1));
        let json = "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n\
                    {\"type\":\"metadata\",\"timestamp\":1714550000,\"size\":1,\"records\":1}\n";
        let (report, _) = read(json, ListFormat::Drop, 0);
        assert_eq!((report.entries.networks, report.malformed), (1, 0));
    }

    #[test]
    fn hosts_files_list_the_names_not_the_sink() {
        let text = "127.0.0.1 localhost\n0.0.0.0 ads.example tracker.example # two\n\
                    0.0.0.0\nads.example\n";
        let (report, set) = read(text, ListFormat::Hosts, 0);
        assert_eq!(report.entries.domains, 2);
        assert_eq!(
            report.entries.networks, 0,
            "the sink address is not an entry"
        );
        assert_eq!(report.malformed, 2);
        let set = set.build();
        assert!(set.lookup_name("ads.example").is_some());
        assert!(set.lookup_ip("0.0.0.0".parse().unwrap()).is_none());
    }

    #[test]
    fn classification_edges() {
        assert_eq!(
            classify("192.0.2.1:8080"),
            Some(Indicator::Net("192.0.2.1/32".parse().unwrap()))
        );
        assert_eq!(
            classify("evil.example:443"),
            Some(Indicator::Domain("evil.example"))
        );
        assert_eq!(classify("1.2.3"), None);
        assert_eq!(classify("localhost"), None, "a single label is not listed");
        assert_eq!(classify(&format!("{}.example", "a".repeat(64))), None);
        assert_eq!(classify("ex ample.com"), None);
    }
}
