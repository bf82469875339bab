//! A rollup bucket while it is being filled. Its keys are values (an address, a MAC, a name
//! from a fixed set, a country code) rather than text, so that adding a flow formats and
//! allocates nothing; it becomes a [`Bucket`] (text keys, as stored and answered) only when
//! it is written or queried, and is made from one when a stored bucket is read back.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;

use rustc_hash::FxBuildHasher;
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

use super::rollup::{Bucket, Counters, OTHER};
use crate::packet::MacAddr;

/// A key of a bucket's map; its text form (`Display`) is its key on disk.
pub trait Key: Eq + Hash + Ord + Clone + fmt::Display {
    /// `None` for text that is not such a key (it is then counted as `other`).
    fn parse(text: &str) -> Option<Self>;
}

impl Key for IpAddr {
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Key for MacAddr {
    fn parse(text: &str) -> Option<Self> {
        MacAddr::parse(text)
    }
}

/// A protocol, application or category name: borrowed from the program's fixed names when
/// counted, owned when read back from disk (the two compare equal by text).
pub type Name = Cow<'static, str>;

impl Key for Name {
    fn parse(text: &str) -> Option<Self> {
        Some(Cow::Owned(text.to_string()))
    }
}

/// An ISO 3166-1 alpha-2 country code, as GeoIP gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Key for Country {
    fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        (b.len() == 2 && b.iter().all(u8::is_ascii_uppercase)).then(|| Country([b[0], b[1]]))
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("??"))
    }
}

/// How many times a bucket's cap of keys an open map may hold before it is folded early.
const FOLD_AT: usize = 4;

/// Counters by key, with the keys folded away past a bucket's cap summed as `other`.
#[derive(Clone, Debug)]
pub struct Keyed<K> {
    named: hashbrown::HashMap<K, Counters, FxBuildHasher>,
    other: Option<Counters>,
}

impl<K> Default for Keyed<K> {
    fn default() -> Self {
        Keyed {
            named: hashbrown::HashMap::with_hasher(FxBuildHasher),
            other: None,
        }
    }
}

impl<K: Key> Keyed<K> {
    pub fn entry(&mut self, key: K) -> &mut Counters {
        self.named.entry(key).or_default()
    }

    pub fn len(&self) -> usize {
        self.named.len()
    }

    /// Nothing counted, named or folded.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.other.is_none()
    }

    /// Keeps the `max` busiest keys (by bytes, then flows; ties by key, so that the same
    /// input keeps the same keys) and adds the rest to `other`.
    pub fn fold(&mut self, max: usize) {
        if self.named.len() <= max {
            return;
        }
        let mut ranked: Vec<(K, Counters)> = self.named.drain().collect();
        // A partition, not a sort: the hour and day buckets of a busy link hold tens of
        // thousands of hosts between writes.
        ranked.select_nth_unstable_by(max, |a, b| {
            (b.1.bytes, b.1.flows)
                .cmp(&(a.1.bytes, a.1.flows))
                .then_with(|| a.0.cmp(&b.0))
        });
        let other = self.other.get_or_insert_with(Counters::default);
        for (_, c) in ranked.drain(max..) {
            other.add(&c);
        }
        self.named.extend(ranked);
        // Drained, the map kept its table for every key it held (a flood minute's tens of
        // thousands); an open bucket of each tier kept that much until it was dropped. A
        // table of the size `bound` lets it reach is kept: shrinking that too would make
        // every cycle of folding grow it again (a third of `db bench`'s store rate).
        self.named.shrink_to(FOLD_AT * max);
    }

    /// Folds to `max` keys once more than `FOLD_AT` × `max` have gathered, so that a bucket
    /// between writes (when it is folded anyway) holds a bounded number of keys whatever
    /// the input: a spoofed flood names a new address with every packet.
    pub fn bound(&mut self, max: usize) {
        if self.named.len() > FOLD_AT * max {
            self.fold(max);
        }
    }

    /// Adds to `other` what was counted without a key (summed before it got here).
    pub fn add_other(&mut self, c: &Counters) {
        self.other.get_or_insert_with(Counters::default).add(c);
    }

    /// Adds every key of `other`.
    pub fn merge(&mut self, other: &Keyed<K>) {
        for (k, c) in &other.named {
            match self.named.get_mut(k) {
                Some(mine) => mine.add(c),
                None => {
                    self.named.insert(k.clone(), *c);
                }
            }
        }
        if let Some(c) = &other.other {
            self.other.get_or_insert_with(Counters::default).add(c);
        }
    }

    fn to_text(&self) -> BTreeMap<String, Counters> {
        let mut map: BTreeMap<String, Counters> = self
            .named
            .iter()
            .map(|(k, c)| (k.to_string(), *c))
            .collect();
        if let Some(other) = &self.other {
            map.entry(OTHER.to_string()).or_default().add(other);
        }
        map
    }

    fn from_text(map: BTreeMap<String, Counters>) -> Self {
        let mut keyed = Keyed::default();
        for (text, c) in map {
            match (text != OTHER).then(|| K::parse(&text)).flatten() {
                Some(key) => keyed.entry(key).add(&c),
                None => keyed.other.get_or_insert_with(Counters::default).add(&c),
            }
        }
        keyed
    }
}

impl Keyed<Name> {
    /// The counters of a fixed name, allocating only the first time it is seen.
    pub fn named(&mut self, name: &'static str) -> &mut Counters {
        if !self.named.contains_key(name) {
            self.named.insert(Cow::Borrowed(name), Counters::default());
        }
        self.named.get_mut(name).expect("inserted above")
    }
}

/// Written as the map a [`Bucket`] reads (text keys, `other` for the folded ones), without
/// building one.
impl<K: Key> Serialize for Keyed<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct AsText<'a, K>(&'a K);
        impl<K: fmt::Display> Serialize for AsText<'_, K> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self.0)
            }
        }
        let mut map = s.serialize_map(Some(self.named.len() + 1))?;
        for (k, c) in &self.named {
            map.serialize_entry(&AsText(k), c)?;
        }
        if let Some(other) = &self.other {
            map.serialize_entry(OTHER, other)?;
        }
        map.end()
    }
}

/// A bucket of one tier while it is open.
#[derive(Clone, Debug, Default)]
pub struct OpenBucket {
    pub total: Counters,
    pub hosts: Keyed<IpAddr>,
    pub protocols: Keyed<Name>,
    pub apps: Keyed<Name>,
    pub categories: Keyed<Name>,
    pub devices: Keyed<MacAddr>,
    pub countries: Keyed<Country>,
}

impl OpenBucket {
    /// Folds each map that can grow with the traffic (hosts, applications, devices) to
    /// `max` keys.
    pub fn fold(&mut self, max: usize) {
        self.hosts.fold(max);
        self.apps.fold(max);
        self.devices.fold(max);
    }

    /// Folds each map that can grow with the traffic early (see [`Keyed::bound`]).
    pub fn bound(&mut self, max: usize) {
        self.hosts.bound(max);
        self.apps.bound(max);
        self.devices.bound(max);
    }

    /// Keys held, over all maps: what the bucket costs in memory (a few dozen bytes each).
    pub fn keys(&self) -> usize {
        self.hosts.len()
            + self.protocols.len()
            + self.apps.len()
            + self.categories.len()
            + self.devices.len()
            + self.countries.len()
    }

    /// Adds everything counted in `other`.
    pub fn merge(&mut self, other: &OpenBucket) {
        self.total.add(&other.total);
        self.hosts.merge(&other.hosts);
        self.protocols.merge(&other.protocols);
        self.apps.merge(&other.apps);
        self.categories.merge(&other.categories);
        self.devices.merge(&other.devices);
        self.countries.merge(&other.countries);
    }

    /// The bucket as stored.
    pub fn to_bucket(&self) -> Bucket {
        Bucket {
            total: self.total,
            hosts: self.hosts.to_text(),
            protocols: self.protocols.to_text(),
            apps: self.apps.to_text(),
            categories: self.categories.to_text(),
            devices: self.devices.to_text(),
            countries: self.countries.to_text(),
        }
    }

    /// The stored form: a [`Bucket`]'s JSON (its empty optional maps left out).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&AsBucket(self)).expect("buckets serialize")
    }

    /// A stored bucket, opened again to add to it.
    pub fn from_bucket(b: Bucket) -> OpenBucket {
        OpenBucket {
            total: b.total,
            hosts: Keyed::from_text(b.hosts),
            protocols: Keyed::from_text(b.protocols),
            apps: Keyed::from_text(b.apps),
            categories: Keyed::from_text(b.categories),
            devices: Keyed::from_text(b.devices),
            countries: Keyed::from_text(b.countries),
        }
    }
}

/// An open bucket serialized field for field as a [`Bucket`].
struct AsBucket<'a>(&'a OpenBucket);

impl Serialize for AsBucket<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.0;
        let mut st = s.serialize_struct("Bucket", 7)?;
        st.serialize_field("total", &b.total)?;
        st.serialize_field("hosts", &b.hosts)?;
        st.serialize_field("protocols", &b.protocols)?;
        for (name, map) in [("apps", &b.apps), ("categories", &b.categories)] {
            if !map.is_empty() {
                st.serialize_field(name, map)?;
            }
        }
        if !b.devices.is_empty() {
            st.serialize_field("devices", &b.devices)?;
        }
        if !b.countries.is_empty() {
            st.serialize_field("countries", &b.countries)?;
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: u64) -> Counters {
        Counters {
            bytes: n,
            ..Default::default()
        }
    }

    #[test]
    fn text_keys_round_trip_and_unknown_text_counts_as_other() {
        let mut stored = Bucket::default();
        stored.hosts.insert("2001:db8::1".into(), bytes(5));
        stored.hosts.insert("192.0.2.7".into(), bytes(3));
        stored.hosts.insert(OTHER.into(), bytes(11));
        stored.hosts.insert("not an address".into(), bytes(1));
        stored.devices.insert("00:11:22:aa:bb:cc".into(), bytes(4));
        stored.protocols.insert("TCP".into(), bytes(9));
        stored.countries.insert("DE".into(), bytes(2));
        let mut open = OpenBucket::from_bucket(stored);
        // A fixed name counted now adds to the same key as the text read back.
        open.protocols.named("TCP").add(&bytes(1));
        open.hosts
            .entry("192.0.2.7".parse().unwrap())
            .add(&bytes(1));
        let back = open.to_bucket();
        assert_eq!(back.protocols["TCP"].bytes, 10);
        assert_eq!(back.hosts["192.0.2.7"].bytes, 4);
        assert_eq!(back.hosts["2001:db8::1"].bytes, 5);
        assert_eq!(back.hosts[OTHER].bytes, 12);
        assert_eq!(back.hosts.len(), 3);
        assert_eq!(back.devices["00:11:22:aa:bb:cc"].bytes, 4);
        assert_eq!(back.countries["DE"].bytes, 2);
        // Written directly, it reads back as the same bucket.
        let written: Bucket = serde_json::from_slice(&open.to_json()).unwrap();
        assert_eq!(written, back);
        let empty: Bucket = serde_json::from_slice(&OpenBucket::default().to_json()).unwrap();
        assert_eq!(empty, Bucket::default());
    }

    #[test]
    fn folding_gives_back_the_room_of_the_keys_it_folded() {
        let mut a: Keyed<IpAddr> = Keyed::default();
        for i in 0..50_000u32 {
            a.entry(IpAddr::from(std::net::Ipv4Addr::from(i)))
                .add(&bytes(1));
        }
        a.fold(200);
        assert_eq!(a.len(), 200);
        // Kept at what `bound` lets it reach (800 keys: 1,024 buckets, 896 usable), not
        // the 65,536 buckets that held 50,000.
        assert!(a.named.capacity() < 1_000, "{}", a.named.capacity());
        // Bounded early: past four times the cap, the map is folded back to it.
        for i in 0..800u32 {
            a.entry(IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i)))
                .add(&bytes(1));
            a.bound(200);
        }
        assert!(a.len() <= 801, "{}", a.len());
        assert_eq!(a.to_text().values().map(|c| c.bytes).sum::<u64>(), 50_800);
    }

    #[test]
    fn folding_keeps_the_busiest_keys_and_sums_the_rest_as_other() {
        let mut a: Keyed<IpAddr> = Keyed::default();
        for i in 0..300u32 {
            a.entry(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
                .add(&bytes(u64::from(i / 2)));
        }
        a.fold(200);
        let text = a.to_text();
        assert_eq!(text.len(), 201);
        // 100..=299 kept: bytes 50..=149; 0..=99 folded (bytes 0..=49, twice each).
        assert_eq!(text[OTHER].bytes, 2 * (0..50).sum::<u64>());
        assert!(text.contains_key("10.0.0.100"));
        assert!(!text.contains_key("10.0.0.99"));
    }
}
