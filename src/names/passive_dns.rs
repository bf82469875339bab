//! Passive DNS: which names the DNS responses on the wire gave for an address, for which
//! client and when. A flow's server is named, when the flow opens, by what *its client* last
//! resolved to that address (a shared CDN address serves many names, so another client's
//! answer is a weaker guess, and says so). Both tables are bounded: past the cap the older
//! half goes.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;
use serde::Serialize;

use crate::model::flow::NameSource;
use crate::packet::{PacketBatch, PacketMeta, Timestamp};
use crate::wire::dns::display_name;

/// Names kept per address, and clients per address (the most recent ones).
const NAMES_PER_ADDRESS: usize = 4;
const CLIENTS_PER_ADDRESS: usize = 8;

/// A name one client was given for one address.
#[derive(Clone, Debug)]
struct Resolution {
    name: Arc<str>,
    at: Timestamp,
}

/// What tapir learned about one address from DNS answers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AddressNames {
    /// The names answered for it, most recent last.
    pub names: Vec<NameSeen>,
    /// Clients that were given it, most recent last.
    pub clients: Vec<IpAddr>,
}

impl AddressNames {
    /// The name answered most recently.
    pub fn best(&self) -> Option<Arc<str>> {
        self.names
            .iter()
            .max_by_key(|n| n.last_seen)
            .map(|n| Arc::clone(&n.name))
    }
}

/// One name an address was given, with when it was first and last answered and its TTL.
#[derive(Clone, Debug, Serialize)]
pub struct NameSeen {
    pub name: Arc<str>,
    #[serde(serialize_with = "secs")]
    pub first_seen: Timestamp,
    #[serde(serialize_with = "secs")]
    pub last_seen: Timestamp,
    pub ttl: u32,
}

fn secs<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.as_secs_f64())
}

/// The passive-DNS table.
pub struct PassiveDns {
    cap: usize,
    by_client: HashMap<(IpAddr, IpAddr), Resolution>,
    by_address: HashMap<IpAddr, AddressNames>,
    /// A bit per hash of every address the tables hold (and some they forgot): most flows
    /// go to addresses no answer gave, and are told so without a lookup.
    answered: Box<[u64; FILTER_WORDS]>,
}

/// Words of the answered-address filter (65,536 bits).
const FILTER_WORDS: usize = 1024;

/// The filter bit of an address.
fn filter_bit(addr: IpAddr) -> usize {
    let folded = match addr {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    // Fibonacci hashing: the top 16 bits of the product.
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as usize
}

impl PassiveDns {
    pub fn new(cap: usize) -> Self {
        PassiveDns {
            cap: cap.max(16),
            by_client: HashMap::new(),
            by_address: HashMap::new(),
            answered: Box::new([0; FILTER_WORDS]),
        }
    }

    fn mark(&mut self, addr: IpAddr) {
        let bit = filter_bit(addr);
        self.answered[bit / 64] |= 1 << (bit % 64);
    }

    fn maybe_answered(&self, addr: IpAddr) -> bool {
        let bit = filter_bit(addr);
        self.answered[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Sets the filter anew from what the tables hold (after they forgot half).
    fn refilter(&mut self) {
        self.answered.fill(0);
        let addrs: Vec<IpAddr> = self
            .by_address
            .keys()
            .copied()
            .chain(self.by_client.keys().map(|k| k.1))
            .collect();
        for a in addrs {
            self.mark(a);
        }
    }

    /// Entries in the two tables.
    pub fn len(&self) -> (usize, usize) {
        (self.by_client.len(), self.by_address.len())
    }

    /// Learns the answers of every DNS response in `batch` (the response's receiver is the
    /// client that asked).
    pub fn learn(&mut self, batch: &PacketBatch) {
        for packet in &batch.packets {
            self.learn_packet(batch, packet);
        }
    }

    /// Learns the answers of `packet` (of `batch`), if it is a DNS response that has some.
    pub fn learn_packet(&mut self, batch: &PacketBatch, packet: &PacketMeta) {
        let answers = batch.answers(packet);
        if answers.is_empty() {
            return;
        }
        let Some(raw) = batch.qname(packet).filter(|n| !n.is_empty()) else {
            return;
        };
        let name: Arc<str> = display_name(raw).to_ascii_lowercase().into();
        for a in answers {
            self.insert(packet.dst, a.addr, &name, a.ttl, packet.ts);
        }
    }

    fn insert(&mut self, client: IpAddr, addr: IpAddr, name: &Arc<str>, ttl: u32, at: Timestamp) {
        let mut forgot = false;
        if self.by_client.len() >= self.cap && !self.by_client.contains_key(&(client, addr)) {
            forget_older_half(&mut self.by_client, |r| r.at);
            forgot = true;
        }
        self.by_client.insert(
            (client, addr),
            Resolution {
                name: Arc::clone(name),
                at,
            },
        );
        if self.by_address.len() >= self.cap && !self.by_address.contains_key(&addr) {
            forget_older_half(&mut self.by_address, |a| {
                a.names.last().map_or(Timestamp(i64::MIN), |n| n.last_seen)
            });
            forgot = true;
        }
        if forgot {
            self.refilter();
        }
        self.mark(addr);
        let entry = self.by_address.entry(addr).or_default();
        match entry.names.iter().position(|n| n.name == *name) {
            Some(i) => {
                let mut seen = entry.names.remove(i);
                seen.last_seen = seen.last_seen.max(at);
                seen.ttl = ttl;
                entry.names.push(seen);
            }
            None => {
                if entry.names.len() >= NAMES_PER_ADDRESS {
                    entry.names.remove(0);
                }
                entry.names.push(NameSeen {
                    name: Arc::clone(name),
                    first_seen: at,
                    last_seen: at,
                    ttl,
                });
            }
        }
        entry.clients.retain(|c| *c != client);
        if entry.clients.len() >= CLIENTS_PER_ADDRESS {
            entry.clients.remove(0);
        }
        entry.clients.push(client);
    }

    /// The name for `server` as `client` sees it now: the answer it was given itself most
    /// recently, else the most recent answer any client was given. Asked when a flow opens,
    /// this is the answer most recently before the flow.
    pub fn name(&self, client: IpAddr, server: IpAddr) -> Option<(Arc<str>, NameSource)> {
        if !self.maybe_answered(server) {
            return None;
        }
        if let Some(r) = self.by_client.get(&(client, server)) {
            return Some((Arc::clone(&r.name), NameSource::Dns));
        }
        let last = self.by_address.get(&server)?.names.last()?;
        Some((Arc::clone(&last.name), NameSource::DnsOtherClient))
    }

    /// What the table knows of `addr`.
    pub fn address(&self, addr: IpAddr) -> Option<&AddressNames> {
        self.by_address.get(&addr)
    }
}

/// Keeps the newer half of `map` by `age` (a selection, not a sort: O(n), and it runs once
/// per n/2 insertions).
fn forget_older_half<K, V>(map: &mut HashMap<K, V>, age: impl Fn(&V) -> Timestamp) {
    let mut ages: Vec<Timestamp> = map.values().map(&age).collect();
    if ages.is_empty() {
        return;
    }
    let mid = ages.len() / 2;
    let (_, median, _) = ages.select_nth_unstable(mid);
    let median = *median;
    map.retain(|_, v| age(v) > median);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::DnsAnswer;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A batch with one response to `client` giving `addrs` for `name` at `secs`.
    fn response(batch: &mut PacketBatch, secs: i64, client: &str, name: &str, addrs: &[&str]) {
        let mut p = PacketMeta::blank(Timestamp::from_parts(secs, 0), 100);
        p.src = ip("192.0.2.53");
        p.dst = ip(client);
        let offset = batch.names.len() as u32;
        batch.names.extend_from_slice(name.as_bytes());
        let start = batch.answers.len() as u32;
        for a in addrs {
            batch.answers.push(DnsAnswer {
                addr: ip(a),
                ttl: 60,
            });
        }
        p.dns = Some(crate::packet::DnsMeta {
            is_response: true,
            answers: addrs.len() as u16,
            qname: crate::packet::NameRef {
                offset,
                len: name.len() as u16,
            },
            addresses: crate::packet::AnswerRef {
                offset: start,
                len: addrs.len() as u16,
            },
            ..Default::default()
        });
        batch.packets.push(p);
    }

    #[test]
    fn a_client_gets_its_own_answer_and_others_a_weaker_guess() {
        let mut batch = PacketBatch::default();
        response(
            &mut batch,
            10,
            "10.0.0.1",
            "Video.Example.com",
            &["203.0.113.7"],
        );
        response(
            &mut batch,
            20,
            "10.0.0.2",
            "static.example.org",
            &["203.0.113.7"],
        );
        let mut dns = PassiveDns::new(100);
        dns.learn(&batch);
        let (name, source) = dns.name(ip("10.0.0.1"), ip("203.0.113.7")).unwrap();
        assert_eq!((&*name, source), ("video.example.com", NameSource::Dns));
        let (name, source) = dns.name(ip("10.0.0.9"), ip("203.0.113.7")).unwrap();
        assert_eq!(
            (&*name, source),
            ("static.example.org", NameSource::DnsOtherClient)
        );
        assert!(dns.name(ip("10.0.0.1"), ip("203.0.113.8")).is_none());
        // The same client later resolves another name to the address: that is its name now.
        let mut later = PacketBatch::default();
        response(
            &mut later,
            40,
            "10.0.0.1",
            "img.example.com",
            &["203.0.113.7"],
        );
        dns.learn(&later);
        let now = dns.name(ip("10.0.0.1"), ip("203.0.113.7")).unwrap();
        assert_eq!(&*now.0, "img.example.com");
        // What is known of the address: its three names and both clients, latest last.
        let known = dns.address(ip("203.0.113.7")).unwrap();
        assert_eq!(known.clients, [ip("10.0.0.2"), ip("10.0.0.1")]);
        let names: Vec<&str> = known.names.iter().map(|n| &*n.name).collect();
        assert_eq!(
            names,
            ["video.example.com", "static.example.org", "img.example.com"]
        );
        assert_eq!(known.names[2].first_seen, Timestamp::from_parts(40, 0));
    }

    #[test]
    fn the_tables_stay_at_their_cap() {
        let mut dns = PassiveDns::new(1000);
        for i in 0..200_000u32 {
            let mut batch = PacketBatch::default();
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            response(
                &mut batch,
                i64::from(i),
                "192.168.1.2",
                &format!("n{i}.example"),
                &[&addr],
            );
            dns.learn(&batch);
            let (clients, addresses) = dns.len();
            assert!(clients <= 1000 && addresses <= 1000);
        }
        // The newest answers are the ones kept.
        let newest = std::net::Ipv4Addr::from(0x0a00_0000 + 199_999u32);
        assert!(dns.name(ip("192.168.1.2"), IpAddr::V4(newest)).is_some());
        assert!(dns.name(ip("192.168.1.2"), ip("10.0.0.0")).is_none());
    }
}
