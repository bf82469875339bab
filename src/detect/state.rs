//! Bounded, expiring state shared by the detectors. Nothing here grows without a cap, and
//! every time is packet time.

use std::hash::Hash;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::packet::Timestamp;

pub use crate::hash::stable_hash;

/// An address as part of a map key, hashed as one integer: several times cheaper than
/// `IpAddr`'s own `Hash` (a discriminant, a length and a byte slice) on the per-packet path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

impl Hash for Ip {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self.0 {
            IpAddr::V4(a) => state.write_u32(a.to_bits()),
            IpAddr::V6(a) => state.write_u128(a.to_bits()),
        }
    }
}

/// Packet-time clock of one detector: never goes backwards, so a capture with reversed
/// segments cannot reopen windows or underflow durations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    now: Option<Timestamp>,
}

impl Clock {
    /// Advances to `ts` if it is later and returns the current time.
    #[inline]
    pub fn advance(&mut self, ts: Timestamp) -> Timestamp {
        let now = match self.now {
            Some(now) if now.0 >= ts.0 => now,
            _ => ts,
        };
        self.now = Some(now);
        now
    }

    pub fn now(&self) -> Option<Timestamp> {
        self.now
    }
}

struct Slot<V> {
    last: Timestamp,
    value: V,
}

/// A map with a hard cap whose entries expire after `idle` of packet time without a touch.
/// When full, new keys are refused (and counted) until a sweep makes room: memory stays
/// flat under a flood of random sources, at the price of not tracking newcomers meanwhile.
pub struct Tracker<K, V> {
    /// Values are boxed: a table is up to half empty after it doubles, and an empty bucket
    /// then costs a key and a pointer rather than a whole detector record.
    map: HashMap<K, Box<Slot<V>>>,
    cap: usize,
    idle: i64,
    next_sweep: Option<Timestamp>,
    pub refused: u64,
}

impl<K: Hash + Eq + Copy, V> Tracker<K, V> {
    pub fn new(cap: usize, idle_ns: i64) -> Self {
        Tracker {
            map: HashMap::new(),
            cap: cap.max(1),
            idle: idle_ns.max(1),
            next_sweep: None,
            refused: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value for `key` without marking it used.
    #[inline]
    pub fn peek_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|slot| &mut slot.value)
    }

    /// The value for `key`, created with `make` if absent; `None` when the map is full.
    #[inline]
    pub fn entry(&mut self, key: K, now: Timestamp, make: impl FnOnce() -> V) -> Option<&mut V> {
        let full = self.map.len() >= self.cap;
        match self.map.entry(key) {
            hashbrown::hash_map::Entry::Occupied(e) => {
                let slot = e.into_mut();
                slot.last = now;
                Some(&mut slot.value)
            }
            hashbrown::hash_map::Entry::Vacant(_) if full => {
                self.refused += 1;
                None
            }
            hashbrown::hash_map::Entry::Vacant(e) => Some(
                &mut e
                    .insert(Box::new(Slot {
                        last: now,
                        value: make(),
                    }))
                    .value,
            ),
        }
    }

    /// The state of `key` if it has any, or if this event is the key's second distinct one
    /// within `window` (created with `make`, the first event replayed into it with `replay`,
    /// which is told how many times it was seen). A first event and its repeats (as
    /// `repeats(item, earlier)` judges them) are only remembered in `first`, so keys seen
    /// once (a spoofed source, one scanned port) never cost a map entry. One hash of the map
    /// per call.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn second_sight<T: Copy>(
        &mut self,
        first: &mut FirstSight<K, T>,
        key: K,
        item: T,
        now: Timestamp,
        window: i64,
        repeats: impl FnOnce(&T, &T) -> bool,
        make: impl FnOnce() -> V,
        replay: impl FnOnce(&mut V, Sight<T>),
    ) -> Option<&mut V> {
        let full = self.map.len() >= self.cap;
        match self.map.entry(key) {
            hashbrown::hash_map::Entry::Occupied(e) => {
                let slot = e.into_mut();
                slot.last = now;
                Some(&mut slot.value)
            }
            hashbrown::hash_map::Entry::Vacant(e) => {
                let earlier = first.take_or_put(e.key(), item, now, window, repeats)?;
                if full {
                    self.refused += 1;
                    return None;
                }
                let slot = e.insert(Box::new(Slot {
                    last: now,
                    value: make(),
                }));
                replay(&mut slot.value, earlier);
                Some(&mut slot.value)
            }
        }
    }

    /// Drops entries idle longer than the expiry, calling `on_expire` with each one's last
    /// use first. Runs at most four times per expiry period, so calling it for every batch
    /// is cheap.
    pub fn maintain(&mut self, now: Timestamp, mut on_expire: impl FnMut(&K, Timestamp, &mut V)) {
        if self.next_sweep.is_some_and(|next| now.0 < next.0) {
            return;
        }
        let step = (self.idle / 4).max(Timestamp::NANOS_PER_SEC);
        self.next_sweep = Some(Timestamp(now.0.saturating_add(step)));
        let horizon = now.0.saturating_sub(self.idle);
        self.map.retain(|key, slot| {
            if slot.last.0 < horizon {
                on_expire(key, slot.last, &mut slot.value);
                false
            } else {
                true
            }
        });
    }

    /// Every entry with its last use, for end-of-input reports.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, Timestamp, &mut V)> {
        self.map
            .iter_mut()
            .map(|(k, slot)| (k, slot.last, &mut slot.value))
    }
}

/// Distinct items (ports, hosts, subdomains) touched recently, each with its last touch.
/// Holds at most `cap` items; only whether a threshold is crossed matters, so the oldest
/// items make room for new ones.
#[derive(Clone, Debug, Default)]
pub struct Spread<T> {
    items: Vec<(T, Timestamp)>,
    cap: usize,
}

impl<T: PartialEq + Copy> Spread<T> {
    pub fn new(cap: usize) -> Self {
        Spread {
            items: Vec::new(),
            cap: cap.max(1),
        }
    }

    /// Records `item` at `now` and returns how many distinct items were touched within
    /// `window` ns before `now`, and whether `item` was new.
    pub fn touch(&mut self, item: T, now: Timestamp, window: i64) -> (usize, bool) {
        let new = match self.items.iter_mut().find(|(i, _)| *i == item) {
            Some(entry) => {
                entry.1 = now;
                false
            }
            None => {
                if self.items.len() >= self.cap {
                    let horizon = now.0.saturating_sub(window);
                    self.items.retain(|(_, t)| t.0 >= horizon);
                    if self.items.len() >= self.cap
                        && let Some(oldest) = (0..self.items.len()).min_by_key(|&i| self.items[i].1)
                    {
                        self.items.swap_remove(oldest);
                    }
                }
                self.items.push((item, now));
                true
            }
        };
        (self.count(now, window), new)
    }

    /// Forgets `item` (it turned out not to count, e.g. the host answered).
    pub fn forget(&mut self, item: T) {
        if let Some(i) = self.items.iter().position(|(x, _)| *x == item) {
            self.items.swap_remove(i);
        }
    }

    pub fn count(&self, now: Timestamp, window: i64) -> usize {
        let horizon = now.0.saturating_sub(window);
        self.items.iter().filter(|(_, t)| t.0 >= horizon).count()
    }

    /// The items touched within `window`, for evidence.
    pub fn recent(&self, now: Timestamp, window: i64) -> impl Iterator<Item = T> + '_ {
        let horizon = now.0.saturating_sub(window);
        self.items
            .iter()
            .filter(move |(_, t)| t.0 >= horizon)
            .map(|(i, _)| *i)
    }
}

/// An exact distinct count up to a cap (then it says "at least").
#[derive(Clone, Debug)]
pub struct Distinct<T> {
    set: HashSet<T>,
    cap: usize,
}

impl<T: Hash + Eq> Distinct<T> {
    pub fn new(cap: usize) -> Self {
        Distinct {
            set: HashSet::new(),
            cap,
        }
    }

    pub fn insert(&mut self, item: T) -> bool {
        self.set.len() < self.cap && self.set.insert(item)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn saturated(&self) -> bool {
        self.set.len() >= self.cap
    }

    pub fn raise_cap(&mut self, cap: usize) {
        self.cap = self.cap.max(cap);
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.set.iter()
    }
}

/// `Distinct` for addresses, with IPv4 kept as 4 bytes: a spoofed flood puts every source
/// in here, and the smaller table stays in cache.
#[derive(Clone, Debug)]
pub struct DistinctAddrs {
    v4: HashSet<u32>,
    /// Allocated on the first IPv6 address (most targets only ever see IPv4 sources).
    v6: Option<Box<HashSet<u128>>>,
    cap: usize,
}

impl DistinctAddrs {
    pub fn new(cap: usize) -> Self {
        DistinctAddrs {
            v4: HashSet::new(),
            v6: None,
            cap,
        }
    }

    #[inline]
    pub fn insert(&mut self, ip: IpAddr) -> bool {
        self.len() < self.cap
            && match ip {
                IpAddr::V4(a) => self.v4.insert(a.to_bits()),
                IpAddr::V6(a) => self.v6.get_or_insert_default().insert(a.to_bits()),
            }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.as_ref().map_or(0, |v6| v6.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn saturated(&self) -> bool {
        self.len() >= self.cap
    }

    pub fn raise_cap(&mut self, cap: usize) {
        self.cap = self.cap.max(cap);
    }
}

/// Conversations seen recently, as 64-bit hashes in two generations: a key is "seen" for
/// between one and two periods, and each generation holds at most `cap` keys.
pub struct Conversations {
    current: HashSet<u64>,
    previous: HashSet<u64>,
    cap: usize,
    period: i64,
    rotated: Option<Timestamp>,
}

impl Conversations {
    pub fn new(cap: usize, period_ns: i64) -> Self {
        Conversations {
            current: HashSet::new(),
            previous: HashSet::new(),
            cap: cap.max(1),
            period: period_ns.max(1),
            rotated: None,
        }
    }

    /// Records `key`; true if it was not seen recently.
    pub fn first_sight(&mut self, key: u64, now: Timestamp) -> bool {
        let rotated = *self.rotated.get_or_insert(now);
        if now.0.saturating_sub(rotated.0) >= self.period || self.current.len() >= self.cap {
            self.previous = std::mem::take(&mut self.current);
            self.rotated = Some(now);
        }
        let known = self.previous.contains(&key);
        self.current.insert(key) && !known
    }

    /// Whether `key` was recorded recently.
    pub fn contains(&self, key: u64) -> bool {
        self.current.contains(&key) || self.previous.contains(&key)
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fixed-size, direct-mapped memory of each key's first event. Keys with a single event
/// (every source of a spoofed flood), or with one event repeated (a retransmitted SYN, a
/// client reconnecting to the same port), never get full state; a colliding key overwrites
/// the slot, which at worst delays detection by one event. Slots hold a 64-bit fingerprint of
/// the key rather than the key, which keeps them small enough to stay in cache under a flood
/// (a false match needs a 64-bit collision and costs one replayed event). No allocation after
/// creation. The hash is fixed (not seeded per process) so that a capture gives the same
/// result on every run and architecture.
///
/// The detectors keep it small (a thirty-second or sixteenth of their map's cap, about 2,000
/// slots): it is an admission filter, not a record. An attack repeats its key within a few
/// events, well before other keys overwrite its slot, while the many keys of ordinary traffic
/// that recur only now and then keep overwriting each other and never cost a map entry.
pub struct FirstSight<K, T> {
    slots: Vec<Option<Sight<T>>>,
    key: std::marker::PhantomData<fn(&K)>,
}

/// A key's first event: the item, when it was last seen, and how many times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sight<T> {
    hash: u64,
    pub item: T,
    pub at: Timestamp,
    pub times: u32,
}

impl<K: Hash, T: Copy> FirstSight<K, T> {
    /// Repeats of a first item beyond which the key gets state anyway (a flood from one
    /// fixed port must still be counted).
    pub const MAX_REPEATS: u32 = 16;

    /// `slots` is rounded up to a power of two.
    pub fn new(slots: usize) -> Self {
        FirstSight {
            slots: vec![None; slots.max(1).next_power_of_two()],
            key: std::marker::PhantomData,
        }
    }

    /// `key`'s first event if it was seen within `window` of `now` and `item` tells
    /// something new (`repeats(item, earlier)` is false, or the first item has been repeated
    /// `MAX_REPEATS` times); the event is then forgotten. Otherwise a repeat is counted (and
    /// dated `now`), or `item` becomes the key's first event, and the answer is `None`.
    #[inline]
    pub fn take_or_put(
        &mut self,
        key: &K,
        item: T,
        now: Timestamp,
        window: i64,
        repeats: impl FnOnce(&T, &T) -> bool,
    ) -> Option<Sight<T>> {
        let hash = stable_hash(key);
        let mask = self.slots.len() - 1;
        let slot = &mut self.slots[(hash as usize) & mask];
        match slot {
            Some(sight) if sight.hash == hash && now.0.saturating_sub(sight.at.0) <= window => {
                if sight.times < Self::MAX_REPEATS && repeats(&item, &sight.item) {
                    sight.times += 1;
                    sight.at = now;
                    return None;
                }
                slot.take()
            }
            _ => {
                *slot = Some(Sight {
                    hash,
                    item,
                    at: now,
                    times: 1,
                });
                None
            }
        }
    }
}

/// Counts over a sliding window of packet time, kept inline in ten buckets (no allocation per
/// key): one second each for windows up to ten seconds, `window / 10` seconds each, rounded
/// up, for longer ones. The window is whole buckets: an event counts those of its own bucket
/// and the nine before, so two events of a 10 s window count together when they are less
/// than 9 s apart, never when they are 10 s or more apart, and in between depending on where
/// in its second each falls (a 60 s window of 6 s buckets: 54 to 60 s).
#[derive(Clone, Debug)]
pub struct SecondCounts<const N: usize> {
    /// Seconds per bucket.
    width: i64,
    /// Buckets in the window.
    span: i64,
    /// Index (second / width) of the newest bucket written.
    head: i64,
    buckets: [[u32; N]; BUCKETS],
    /// Sums of the buckets in the window that ends at `head`, so that the usual question
    /// (the totals right after an event) costs no loop.
    in_window: [u64; N],
}

const BUCKETS: usize = 10;

impl<const N: usize> SecondCounts<N> {
    pub fn new(window_secs: u64) -> Self {
        let window = window_secs.clamp(1, 3600);
        let width = window.div_ceil(BUCKETS as u64);
        SecondCounts {
            width: width as i64,
            span: window.div_ceil(width) as i64,
            head: i64::MIN / 2,
            buckets: [[0; N]; BUCKETS],
            in_window: [0; N],
        }
    }

    #[inline]
    fn bucket(&self, now: Timestamp) -> i64 {
        // A division by a variable costs tens of cycles, paid twice per SYN in a flood.
        if self.width == 1 {
            now.secs()
        } else {
            now.secs().div_euclid(self.width)
        }
    }

    #[inline]
    pub fn add(&mut self, now: Timestamp, counter: usize, n: u32) {
        let b = self.bucket(now);
        if b > self.head {
            self.advance(b);
        } else if self.head - b >= self.span {
            return;
        }
        let slot = &mut self.buckets[b.rem_euclid(BUCKETS as i64) as usize][counter];
        let before = *slot;
        *slot = slot.saturating_add(n);
        self.in_window[counter] += u64::from(*slot - before);
    }

    /// Moves the window's end to bucket `b` (later than `head`).
    fn advance(&mut self, b: i64) {
        if b - self.head >= self.span {
            self.in_window = [0; N];
        } else {
            // Buckets head - span + 1 ..= b - span leave the window.
            for index in self.head - self.span + 1..=b - self.span {
                let counts = &self.buckets[index.rem_euclid(BUCKETS as i64) as usize];
                for (sum, c) in self.in_window.iter_mut().zip(counts) {
                    *sum -= u64::from(*c);
                }
            }
        }
        // The slots the new buckets reuse hold buckets long out of the window: clear them.
        for index in (self.head + 1).max(b - BUCKETS as i64 + 1)..=b {
            self.buckets[index.rem_euclid(BUCKETS as i64) as usize] = [0; N];
        }
        self.head = b;
    }

    /// Sums over the window that ends at `now`.
    #[inline]
    pub fn totals(&self, now: Timestamp) -> [u64; N] {
        let b = self.bucket(now);
        if b == self.head {
            return self.in_window;
        }
        let mut sums = [0u64; N];
        for age in 0..self.span {
            let index = self.head - age;
            if index <= b && index > b - self.span {
                let counts = &self.buckets[index.rem_euclid(BUCKETS as i64) as usize];
                for (sum, c) in sums.iter_mut().zip(counts) {
                    *sum += u64::from(*c);
                }
            }
        }
        sums
    }
}

/// Rate-limits the findings of one key: at most one per second of packet time, each carrying
/// the events gathered since the previous one.
#[derive(Clone, Copy, Debug)]
pub struct Reporter {
    /// When the last finding was reported (`i64::MIN`: never).
    last: i64,
    pending: u32,
    /// The condition held at the last evaluation (so flush knows what to report).
    holding: bool,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter {
            last: i64::MIN,
            pending: 0,
            holding: false,
        }
    }
}

impl Reporter {
    /// Counts `events` towards the next finding (saturating: a finding says "at least").
    #[inline]
    pub fn note(&mut self, events: u64) {
        let events = u32::try_from(events).unwrap_or(u32::MAX);
        self.pending = self.pending.saturating_add(events);
    }

    /// Whether a finding is due now, given whether the rule's condition holds. When it is,
    /// returns the events to report and resets the tally.
    #[inline]
    pub fn due(&mut self, now: Timestamp, holds: bool) -> Option<u64> {
        self.holding = holds;
        if !holds || self.pending == 0 {
            return None;
        }
        if self.reported() && now.0.saturating_sub(self.last) < Timestamp::NANOS_PER_SEC {
            return None;
        }
        self.last = now.0;
        Some(u64::from(std::mem::take(&mut self.pending)))
    }

    /// Events still unreported for a key whose condition held (end of input or expiry).
    pub fn take_final(&mut self) -> Option<u64> {
        (self.holding && self.pending > 0 && self.reported())
            .then(|| u64::from(std::mem::take(&mut self.pending)))
    }

    pub fn reported(&self) -> bool {
        self.last != i64::MIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = Timestamp::NANOS_PER_SEC;

    #[test]
    fn clock_ignores_time_going_backwards() {
        let mut c = Clock::default();
        assert_eq!(c.advance(Timestamp(10 * S)), Timestamp(10 * S));
        assert_eq!(c.advance(Timestamp(3 * S)), Timestamp(10 * S));
        assert_eq!(c.advance(Timestamp(11 * S)), Timestamp(11 * S));
    }

    #[test]
    fn tracker_refuses_when_full_and_sweeps_idle_entries() {
        let mut t: Tracker<u32, u32> = Tracker::new(2, 10 * S);
        assert!(t.entry(1, Timestamp(0), || 0).is_some());
        assert!(t.entry(2, Timestamp(S), || 0).is_some());
        assert!(t.entry(3, Timestamp(2 * S), || 0).is_none());
        assert_eq!(t.refused, 1);
        // Key 1 was last used at 0 s: idle for more than 10 s at 10.5 s; key 2 is not.
        let mut expired = Vec::new();
        t.maintain(Timestamp(10 * S + S / 2), |k, last, _| {
            expired.push((*k, last))
        });
        assert_eq!(expired, [(1, Timestamp(0))]);
        assert!(t.entry(3, Timestamp(11 * S), || 0).is_some());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn spread_counts_only_the_window_and_stays_capped() {
        let mut s = Spread::new(4);
        for port in 0..4u16 {
            s.touch(port, Timestamp(i64::from(port) * S), 60 * S);
        }
        // 10 ports at 100 s: the first four fell out of the 60 s window.
        let (n, new) = s.touch(99, Timestamp(100 * S), 60 * S);
        assert_eq!((n, new), (1, true));
        for port in 100..110u16 {
            s.touch(port, Timestamp(101 * S), 60 * S);
        }
        assert_eq!(s.count(Timestamp(101 * S), 60 * S), 4, "capped at 4 items");
        // Touching again is not new.
        assert!(!s.touch(109, Timestamp(101 * S), 60 * S).1);
    }

    #[test]
    fn spread_window_edge_is_inclusive() {
        let mut s = Spread::new(8);
        s.touch(1u16, Timestamp(0), 60 * S);
        assert_eq!(s.count(Timestamp(60 * S), 60 * S), 1);
        assert_eq!(s.count(Timestamp(60 * S + 1), 60 * S), 0);
    }

    #[test]
    fn second_counts_slide_and_skip_stale_slots() {
        let mut c: SecondCounts<2> = SecondCounts::new(10);
        for sec in 0..10 {
            c.add(Timestamp(sec * S), 0, 10);
        }
        c.add(Timestamp(9 * S), 1, 3);
        assert_eq!(c.totals(Timestamp(9 * S)), [100, 3]);
        // At 15 s, seconds 6..=15 are in the window: 6, 7, 8, 9 remain.
        assert_eq!(c.totals(Timestamp(15 * S)), [40, 3]);
        // A jump far ahead leaves nothing.
        assert_eq!(c.totals(Timestamp(1000 * S)), [0, 0]);
        c.add(Timestamp(1000 * S), 0, 1);
        assert_eq!(
            c.totals(Timestamp(1000 * S)),
            [1, 0],
            "stale buckets cleared"
        );
    }

    #[test]
    fn second_counts_agree_with_counting_every_event() {
        // Events at random times (never backwards, as the detectors' clock), checked against
        // the definition: the sum of events in the last `window` seconds, whole seconds.
        for window in [1u64, 3, 7, 10] {
            let mut c: SecondCounts<2> = SecondCounts::new(window);
            let mut events: Vec<(i64, usize, u32)> = Vec::new();
            let (mut now, mut seed) = (0i64, window.wrapping_mul(0x9e37_79b9));
            for _ in 0..2_000 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                now += [0, 0, 0, 1, 1, 2, 5, 13][(seed >> 60) as usize % 8] * S / 2;
                let (counter, n) = ((seed >> 40) as usize % 2, (seed >> 20) as u32 % 4);
                c.add(Timestamp(now), counter, n);
                events.push((now / S, counter, n));
                // Right after the event, and a little later without one.
                for ask in [now, now + 2 * S] {
                    let sec = ask / S;
                    let mut want = [0u64; 2];
                    for &(at, counter, n) in &events {
                        if at > sec - window as i64 {
                            want[counter] += u64::from(n);
                        }
                    }
                    assert_eq!(c.totals(Timestamp(ask)), want, "window {window} at {ask}");
                }
            }
        }
    }

    #[test]
    fn second_counts_of_a_long_window_use_coarser_buckets() {
        // 60 s in ten buckets of 6 s.
        let mut c: SecondCounts<1> = SecondCounts::new(60);
        c.add(Timestamp(0), 0, 1);
        c.add(Timestamp(59 * S), 0, 1);
        assert_eq!(c.totals(Timestamp(59 * S)), [2]);
        // At 65 s the window is 6..=65 s in bucket terms: the event at 0 s has left it.
        c.add(Timestamp(65 * S), 0, 1);
        assert_eq!(c.totals(Timestamp(65 * S)), [2]);
        assert_eq!(c.totals(Timestamp(200 * S)), [0]);
    }

    #[test]
    fn reporter_limits_findings_to_one_per_second() {
        let mut r = Reporter::default();
        r.note(5);
        assert_eq!(r.due(Timestamp(0), false), None);
        assert_eq!(r.due(Timestamp(0), true), Some(5));
        r.note(1);
        assert_eq!(r.due(Timestamp(S / 2), true), None);
        r.note(1);
        assert_eq!(r.due(Timestamp(S), true), Some(2));
        r.note(4);
        assert_eq!(r.take_final(), Some(4));
        assert_eq!(r.take_final(), None);
    }

    #[test]
    fn conversations_are_remembered_for_one_to_two_periods() {
        let mut c = Conversations::new(100, 60 * S);
        assert!(c.first_sight(7, Timestamp(0)));
        assert!(!c.first_sight(7, Timestamp(59 * S)));
        // Rotated at 60 s: still known from the previous generation (and carried over).
        assert!(!c.first_sight(7, Timestamp(61 * S)));
        assert!(c.first_sight(8, Timestamp(61 * S)));
        // Two rotations without a sighting of 8 forget it.
        assert!(!c.first_sight(7, Timestamp(121 * S)));
        assert!(c.first_sight(8, Timestamp(181 * S)));
    }

    fn same(a: &u16, b: &u16) -> bool {
        a == b
    }

    #[test]
    fn first_sight_remembers_one_event_per_key_within_the_window() {
        let mut f: FirstSight<u32, u16> = FirstSight::new(64);
        let mut see = |key, item, at| {
            f.take_or_put(&key, item, Timestamp(at), 10 * S, same)
                .map(|s| (s.item, s.at, s.times))
        };
        assert_eq!(see(1, 80, 0), None);
        assert_eq!(see(1, 81, 11 * S), None, "too old: replaced");
        assert_eq!(see(1, 82, 21 * S), Some((81, Timestamp(11 * S), 1)));
        assert_eq!(see(1, 83, 21 * S), None, "taken");
        assert_eq!(see(2, 90, 22 * S), None, "another key");
    }

    #[test]
    fn first_sight_counts_repeats_until_something_new_or_too_many() {
        let mut f: FirstSight<u32, u16> = FirstSight::new(64);
        let mut see = |item, at| {
            f.take_or_put(&1, item, Timestamp(at), 10 * S, same)
                .map(|s| (s.item, s.at, s.times))
        };
        assert_eq!(see(443, 0), None);
        assert_eq!(see(443, 5 * S), None, "a repeat is counted");
        // Dated by its latest repeat: still within the window 14 s after the first.
        assert_eq!(see(22, 14 * S), Some((443, Timestamp(5 * S), 2)));
        // A fixed-port flood gets state once its first item repeats MAX_REPEATS times.
        let max = FirstSight::<u32, u16>::MAX_REPEATS;
        for i in 0..max {
            assert_eq!(see(80, 20 * S + i64::from(i)), None);
        }
        assert_eq!(
            see(80, 30 * S),
            Some((80, Timestamp(20 * S + i64::from(max) - 1), max))
        );
    }

    #[test]
    fn second_sight_keeps_state_only_for_keys_with_two_distinct_events_in_the_window() {
        let mut t: Tracker<u32, Vec<u16>> = Tracker::new(8, 60 * S);
        let mut first: FirstSight<u32, u16> = FirstSight::new(64);
        let mut see = |t: &mut Tracker<u32, Vec<u16>>, key, port, at| {
            t.second_sight(
                &mut first,
                key,
                port,
                Timestamp(at),
                10 * S,
                same,
                Vec::new,
                |v, first| v.extend(std::iter::repeat_n(first.item, first.times as usize)),
            )
            .map(|v| {
                v.push(port);
                v.clone()
            })
        };
        assert_eq!(see(&mut t, 1, 22, 0), None, "first event: remembered only");
        assert_eq!(see(&mut t, 1, 22, S / 2), None, "a repeat: remembered only");
        assert!(t.is_empty());
        assert_eq!(
            see(&mut t, 1, 23, S),
            Some(vec![22, 22, 23]),
            "first and its repeat replayed"
        );
        assert_eq!(see(&mut t, 1, 23, 2 * S), Some(vec![22, 22, 23, 23]));
        // A first event older than the window is not replayed.
        assert_eq!(see(&mut t, 2, 80, 0), None);
        assert_eq!(see(&mut t, 2, 81, 11 * S), None);
        assert_eq!(see(&mut t, 2, 82, 12 * S), Some(vec![81, 82]));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn distinct_addresses_count_both_families_up_to_the_cap() {
        let mut d = DistinctAddrs::new(3);
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(d.insert(v4));
        assert!(!d.insert(v4));
        assert!(d.insert(v6));
        assert!(d.insert("192.0.2.2".parse().unwrap()));
        assert!(!d.insert("192.0.2.3".parse().unwrap()), "at the cap");
        assert_eq!(d.len(), 3);
        assert!(d.saturated());
        d.raise_cap(4);
        assert!(d.insert("192.0.2.3".parse().unwrap()));
    }

    #[test]
    fn distinct_stops_at_its_cap() {
        let mut d = Distinct::new(3);
        for i in 0..10 {
            d.insert(i);
        }
        assert_eq!(d.len(), 3);
        assert!(d.saturated());
        d.raise_cap(5);
        d.insert(42);
        assert_eq!(d.len(), 4);
    }
}
