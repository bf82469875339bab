//! The indicator set every new flow and DNS question is checked against: networks by prefix
//! length (a sorted vector per family, searched once per length present), and domain names
//! and JA4 fingerprints as sorted 64-bit FNV-1a hashes. A million entries cost about 8 bytes
//! each for IPv4 networks, 24 for IPv6 and 10 for names, and a lookup is a handful of binary
//! searches: no per-entry allocation, no pointer chasing.
//!
//! Hashes stand in for the names so that a million domains do not need a million strings.
//! A false match needs a 64-bit collision between a looked-up name and a listed one: with a
//! million entries, about one lookup in 10^13.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Index of a list in the set (its order in the config).
pub type ListIndex = u16;

/// What a lookup found: the list, and the entry as the list wrote it (normalised).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub list: ListIndex,
    pub entry: String,
}

/// A frozen, searchable set of indicators from any number of lists.
#[derive(Debug, Default)]
pub struct IndicatorSet {
    /// (network address, prefix length, list), sorted; the first list wins a duplicate.
    v4: Vec<(u32, u8, ListIndex)>,
    /// Bit `n` set when some IPv4 entry has prefix length `n`.
    v4_lengths: u64,
    v6: Vec<(u128, u8, ListIndex)>,
    v6_lengths: [u64; 3],
    names: Vec<(u64, ListIndex)>,
    ja4: Vec<(u64, ListIndex)>,
}

/// Collects indicators, then sorts them once (`build`).
#[derive(Debug, Default)]
pub struct IndicatorSetBuilder {
    set: IndicatorSet,
}

/// The kinds of entries, for counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EntryCounts {
    pub networks: usize,
    pub domains: usize,
    pub ja4: usize,
}

impl EntryCounts {
    pub fn total(&self) -> usize {
        self.networks + self.domains + self.ja4
    }
}

impl IndicatorSetBuilder {
    /// Adds an address or network (host bits are cleared).
    pub fn add_net(&mut self, net: IpNet, list: ListIndex) {
        match net.trunc() {
            IpNet::V4(n) => {
                self.set
                    .v4
                    .push((u32::from(n.network()), n.prefix_len(), list));
                self.set.v4_lengths |= 1 << n.prefix_len();
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                self.set.v6.push((u128::from(n.network()), len, list));
                self.set.v6_lengths[usize::from(len / 64)] |= 1 << (len % 64);
            }
        }
    }

    /// Adds a domain name (matched as itself and as the parent of any name under it).
    pub fn add_domain(&mut self, name: &str, list: ListIndex) {
        self.set.names.push((name_hash(name), list));
    }

    /// Adds a JA4 fingerprint (matched exactly, case-insensitively).
    pub fn add_ja4(&mut self, fingerprint: &str, list: ListIndex) {
        self.set.ja4.push((name_hash(fingerprint), list));
    }

    pub fn counts(&self) -> EntryCounts {
        self.set.counts()
    }

    /// Sorts and de-duplicates (keeping the first list of a duplicate).
    pub fn build(mut self) -> IndicatorSet {
        let s = &mut self.set;
        s.v4.sort_unstable();
        s.v4.dedup_by_key(|e| (e.0, e.1));
        s.v6.sort_unstable();
        s.v6.dedup_by_key(|e| (e.0, e.1));
        for v in [&mut s.names, &mut s.ja4] {
            v.sort_unstable();
            v.dedup_by_key(|e| e.0);
            v.shrink_to_fit();
        }
        s.v4.shrink_to_fit();
        s.v6.shrink_to_fit();
        self.set
    }
}

impl IndicatorSet {
    pub fn counts(&self) -> EntryCounts {
        EntryCounts {
            networks: self.v4.len() + self.v6.len(),
            domains: self.names.len(),
            ja4: self.ja4.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts().total() == 0
    }

    /// Bytes the set holds (its vectors' capacity).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of_val;
        self.v4.capacity() * size_of_val(&(0u32, 0u8, 0u16))
            + self.v6.capacity() * size_of_val(&(0u128, 0u8, 0u16))
            + (self.names.capacity() + self.ja4.capacity()) * size_of_val(&(0u64, 0u16))
    }

    /// The most specific listed network holding `ip`.
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<Hit> {
        let (net, len, list, full) = match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let has = |len: u8| self.v4_lengths & (1 << len) != 0;
                // No bits of the address under a zero-length prefix (a full shift overflows).
                let net = |len: u8| {
                    u32::MAX
                        .checked_shl(u32::from(32 - len))
                        .map_or(0, |mask| a & mask)
                };
                let (net, len, list) = longest_prefix(&self.v4, 32, has, net)?;
                (IpAddr::V4(Ipv4Addr::from(net)), len, list, 32)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                let has = |len: u8| self.v6_lengths[usize::from(len / 64)] & (1 << (len % 64)) != 0;
                // No bits of the address under a zero-length prefix (a full shift overflows).
                let net = |len: u8| {
                    u128::MAX
                        .checked_shl(u32::from(128 - len))
                        .map_or(0, |mask| a & mask)
                };
                let (net, len, list) = longest_prefix(&self.v6, 128, has, net)?;
                (IpAddr::V6(Ipv6Addr::from(net)), len, list, 128)
            }
        };
        Some(Hit {
            list,
            entry: format_net(net, len, full),
        })
    }

    /// `name` or the nearest listed domain it lies under (label by label, from the name
    /// itself up to its last label).
    pub fn lookup_name(&self, name: &str) -> Option<Hit> {
        if self.names.is_empty() {
            return None;
        }
        let name = name.trim_end_matches('.');
        let mut rest = name;
        loop {
            if !rest.is_empty()
                && let Some(list) = find_hash(&self.names, name_hash(rest))
            {
                return Some(Hit {
                    list,
                    entry: rest.to_ascii_lowercase(),
                });
            }
            match rest.find('.') {
                Some(dot) => rest = &rest[dot + 1..],
                None => return None,
            }
        }
    }

    /// A listed JA4 fingerprint equal to `fingerprint`.
    pub fn lookup_ja4(&self, fingerprint: &str) -> Option<Hit> {
        let list = find_hash(&self.ja4, name_hash(fingerprint))?;
        Some(Hit {
            list,
            entry: fingerprint.to_ascii_lowercase(),
        })
    }
}

/// The longest of the prefix lengths present (`has`) under which `network(len)` is
/// listed in `entries`: one binary search per length present.
fn longest_prefix<T: Ord + Copy>(
    entries: &[(T, u8, ListIndex)],
    bits: u8,
    has: impl Fn(u8) -> bool,
    network: impl Fn(u8) -> T,
) -> Option<(T, u8, ListIndex)> {
    if entries.is_empty() {
        return None;
    }
    (0..=bits).rev().filter(|&len| has(len)).find_map(|len| {
        let net = network(len);
        find(entries, (net, len)).map(|list| (net, len, list))
    })
}

fn find<T: Ord + Copy>(entries: &[(T, u8, ListIndex)], key: (T, u8)) -> Option<ListIndex> {
    let at = entries.partition_point(|e| (e.0, e.1) < key);
    entries.get(at).filter(|e| (e.0, e.1) == key).map(|e| e.2)
}

fn find_hash(entries: &[(u64, ListIndex)], hash: u64) -> Option<ListIndex> {
    let at = entries.partition_point(|e| e.0 < hash);
    entries.get(at).filter(|e| e.0 == hash).map(|e| e.1)
}

/// An address alone for a full-length prefix, else `network/len`.
fn format_net(net: IpAddr, len: u8, full: u8) -> String {
    if len == full {
        net.to_string()
    } else {
        format!("{net}/{len}")
    }
}

/// 64-bit FNV-1a of the ASCII-lowercased bytes: fixed by its specification, so the set
/// means the same on every build.
pub fn name_hash(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes().fold(OFFSET, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> IndicatorSet {
        let mut b = IndicatorSetBuilder::default();
        b.add_net("203.0.113.0/24".parse().unwrap(), 0);
        b.add_net("203.0.113.7/32".parse().unwrap(), 1);
        b.add_net("2001:db8:1::/48".parse().unwrap(), 0);
        b.add_net("198.51.100.9/16".parse().unwrap(), 2);
        b.add_domain("Evil.Example", 1);
        b.add_ja4("t13d1516h2_8daaf6152771_e5627efa2ab1", 2);
        b.build()
    }

    #[test]
    fn fnv1a_matches_the_specification_vectors() {
        // Test vectors of the FNV reference (draft-eastlake-fnv, FNV-1a 64).
        assert_eq!(name_hash(""), 0xcbf29ce484222325);
        assert_eq!(name_hash("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(name_hash("foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn the_most_specific_network_answers() {
        let s = set();
        let hit = s.lookup_ip("203.0.113.7".parse().unwrap()).unwrap();
        assert_eq!((hit.list, hit.entry.as_str()), (1, "203.0.113.7"));
        let hit = s.lookup_ip("203.0.113.8".parse().unwrap()).unwrap();
        assert_eq!((hit.list, hit.entry.as_str()), (0, "203.0.113.0/24"));
        let hit = s.lookup_ip("198.51.3.4".parse().unwrap()).unwrap();
        assert_eq!(
            hit.entry, "198.51.0.0/16",
            "host bits of an entry are cleared"
        );
        assert_eq!(s.lookup_ip("203.0.114.1".parse().unwrap()), None);
        let hit = s.lookup_ip("2001:db8:1:2::5".parse().unwrap()).unwrap();
        assert_eq!(hit.entry, "2001:db8:1::/48");
        assert_eq!(s.lookup_ip("2001:db8:2::5".parse().unwrap()), None);
    }

    #[test]
    fn names_match_themselves_and_what_lies_under_them() {
        let s = set();
        assert_eq!(s.lookup_name("evil.example").unwrap().entry, "evil.example");
        assert_eq!(
            s.lookup_name("cdn.EVIL.example.").unwrap().entry,
            "evil.example"
        );
        assert_eq!(s.lookup_name("notevil.example"), None);
        assert_eq!(s.lookup_name("example"), None);
        assert_eq!(s.lookup_name(""), None);
        assert!(
            s.lookup_ja4("T13D1516H2_8daaf6152771_e5627efa2ab1")
                .is_some()
        );
        assert_eq!(s.lookup_ja4("t13d1516h2_8daaf6152771_e5627efa2ab2"), None);
    }

    #[test]
    fn a_zero_length_prefix_holds_every_address_of_its_family() {
        let mut b = IndicatorSetBuilder::default();
        b.add_net("0.0.0.0/0".parse().unwrap(), 0);
        let s = b.build();
        assert_eq!(
            s.lookup_ip("198.51.100.7".parse().unwrap()).unwrap().entry,
            "0.0.0.0/0"
        );
        assert_eq!(s.lookup_ip("2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn duplicates_keep_the_first_list() {
        let mut b = IndicatorSetBuilder::default();
        b.add_net("192.0.2.1/32".parse().unwrap(), 0);
        b.add_net("192.0.2.1/32".parse().unwrap(), 1);
        b.add_domain("a.example", 0);
        b.add_domain("A.example", 1);
        let s = b.build();
        assert_eq!(s.counts().total(), 2);
        assert_eq!(s.lookup_ip("192.0.2.1".parse().unwrap()).unwrap().list, 0);
        assert_eq!(s.lookup_name("a.example").unwrap().list, 0);
    }
}
