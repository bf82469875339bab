//! Putting together a client's first bytes until what opens its stream is whole: a TLS
//! ClientHello (modern browsers send hellos larger than one segment: post-quantum key shares
//! make them ~1.8 kB, and small MTUs split even short ones) or an HTTP/1.x request head.
//! Only streams that begin like one of the two are kept, in order, up to `MAX_BUFFER` bytes
//! each and `streams` streams in all (the least recently fed goes first); a stream is
//! dropped as soon as its opening is read, turns out not to be one, or skips ahead (a lost
//! segment).

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::packet::Timestamp;
use crate::wire::http::{self, RequestHead, RequestStatus};
use crate::wire::tls::{self, ClientHello, HelloStatus};

/// Bytes kept per stream at most.
pub const MAX_BUFFER: usize = 16 * 1024;
/// A stream not fed for this long (packet time) is given up: its rest is not coming.
const STALE_NANOS: i64 = 10 * Timestamp::NANOS_PER_SEC;

/// A client's direction of one connection: source, destination, ports, tunnel identity.
pub type StreamKey = (IpAddr, IpAddr, u16, u16, u64);

/// One stream waiting for the rest of its hello.
#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    /// The sequence number of the next byte expected.
    next_seq: u32,
    last: Timestamp,
}

/// What opened a client's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opening {
    Tls(ClientHello),
    Http(RequestHead),
}

/// How far the bytes held so far go.
enum Read {
    Done(Opening),
    More,
    Neither,
}

/// Reads the opening at the start of `stream`.
fn read(stream: &[u8]) -> Read {
    if stream.first() == Some(&22) {
        return match tls::client_hello(stream) {
            HelloStatus::Complete(hello) => Read::Done(Opening::Tls(hello)),
            HelloStatus::Incomplete { need } if need <= MAX_BUFFER => Read::More,
            _ => Read::Neither,
        };
    }
    match http::request_head(stream) {
        RequestStatus::Complete(head) => Read::Done(Opening::Http(head)),
        RequestStatus::Incomplete if stream.len() < MAX_BUFFER => Read::More,
        _ => Read::Neither,
    }
}

/// Whether a stream's first payload can begin an opening worth waiting for.
fn begins_opening(payload: &[u8]) -> bool {
    (payload.len() >= 3 && payload[0] == 22 && payload[1] == 3)
        || (payload.len() >= 4 && http::starts_like_request(payload))
}

/// The key of the entry fed least recently (`last` says when each was).
pub(super) fn least_recent<V>(
    map: &HashMap<StreamKey, V>,
    last: impl Fn(&V) -> Timestamp,
) -> Option<StreamKey> {
    map.iter().min_by_key(|(_, v)| last(v)).map(|(k, _)| *k)
}

/// The streams waiting for the rest of their opening.
#[derive(Debug)]
pub struct OpeningAssembler {
    streams: usize,
    pending: HashMap<StreamKey, Pending>,
    /// Streams waiting, counted by a hash of their ports: a segment whose count is zero is
    /// not waited for, without a lookup in `pending` (most segments are data of streams
    /// whose opening was read long ago).
    waiting_ports: Box<[u32; PORT_SLOTS]>,
    /// Streams whose opening was read: their later requests (HTTP keep-alive) and handshake
    /// records are not read again. Forgotten by a stream's SYN (a reused port) and, all at
    /// once, when `READ_PER_STREAM` times `streams` have gathered.
    read: HashSet<StreamKey>,
    /// When stale streams are next looked for.
    next_sweep: Timestamp,
}

/// Streams remembered as read, per stream that may wait.
const READ_PER_STREAM: usize = 16;
/// Slots of the waiting-ports filter.
const PORT_SLOTS: usize = 4096;

fn port_slot(key: &StreamKey) -> usize {
    port_slot_of(key.2, key.3)
}

fn port_slot_of(src_port: u16, dst_port: u16) -> usize {
    usize::from(src_port.rotate_left(5) ^ dst_port) % PORT_SLOTS
}

impl OpeningAssembler {
    pub fn new(streams: usize) -> Self {
        OpeningAssembler {
            streams: streams.max(1),
            pending: HashMap::new(),
            waiting_ports: Box::new([0; PORT_SLOTS]),
            read: HashSet::new(),
            next_sweep: Timestamp(i64::MIN),
        }
    }

    /// Whether any stream is remembered as read (a SYN then needs a look).
    pub fn remembers_read(&self) -> bool {
        !self.read.is_empty()
    }

    /// Whether a segment between these ports with this payload may matter: a stream between
    /// them may be waiting, or the payload begins like an opening. Asked before a stream key
    /// is made.
    pub fn may_want(&self, src_port: u16, dst_port: u16, payload: &[u8]) -> bool {
        self.waiting_ports[port_slot_of(src_port, dst_port)] > 0 || begins_opening(payload)
    }

    /// A stream starts (its SYN): what opens it is to be read, even on a reused port.
    pub fn starts(&mut self, key: &StreamKey) {
        if !self.read.is_empty() {
            self.read.remove(key);
        }
    }

    fn done(&mut self, key: StreamKey, opening: Opening) -> Option<Opening> {
        if self.read.len() >= self.streams * READ_PER_STREAM {
            self.read.clear();
        }
        self.read.insert(key);
        Some(opening)
    }

    /// Streams waiting now.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Takes a segment (`seq`, its payload); returns the opening it completes.
    pub fn segment(
        &mut self,
        key: StreamKey,
        seq: u32,
        payload: &[u8],
        ts: Timestamp,
    ) -> Option<Opening> {
        if payload.is_empty() {
            return None;
        }
        // Streams whose rest never came go, so that most segments find the table empty and
        // cost no lookup.
        if !self.pending.is_empty() && ts >= self.next_sweep {
            let horizon = Timestamp(ts.0.saturating_sub(STALE_NANOS));
            let counts = &mut self.waiting_ports;
            self.pending.retain(|k, p| {
                let keep = p.last >= horizon;
                if !keep {
                    counts[port_slot(k)] -= 1;
                }
                keep
            });
            self.next_sweep = Timestamp(ts.0.saturating_add(Timestamp::NANOS_PER_SEC));
        }
        let maybe_waiting = self.waiting_ports[port_slot(&key)] > 0;
        if !maybe_waiting && !begins_opening(payload) {
            return None;
        }
        if let Some(p) = maybe_waiting.then(|| self.pending.get_mut(&key)).flatten() {
            let ahead = seq.wrapping_sub(p.next_seq);
            if ahead != 0 {
                // A retransmission of bytes already held is ignored; a gap ends the wait.
                if ahead > u32::MAX / 2 && payload.len() <= p.next_seq.wrapping_sub(seq) as usize {
                    return None;
                }
                self.forget(&key);
                return None;
            }
            let room = MAX_BUFFER.saturating_sub(p.bytes.len());
            p.bytes
                .extend_from_slice(&payload[..payload.len().min(room)]);
            p.next_seq = seq.wrapping_add(payload.len() as u32);
            p.last = ts;
            let status = read(&p.bytes);
            let full = p.bytes.len() >= MAX_BUFFER;
            return match status {
                Read::Done(opening) => {
                    self.forget(&key);
                    self.done(key, opening)
                }
                Read::More if !full => None,
                _ => {
                    self.forget(&key);
                    None
                }
            };
        }
        // A stream is looked at only where it begins like a TLS handshake record or an
        // HTTP request.
        if !begins_opening(payload) || self.read.contains(&key) {
            return None;
        }
        match read(payload) {
            Read::Done(opening) => self.done(key, opening),
            Read::More => {
                if self.pending.len() >= self.streams {
                    self.evict_oldest();
                }
                self.waiting_ports[port_slot(&key)] += 1;
                self.pending.insert(
                    key,
                    Pending {
                        bytes: payload[..payload.len().min(MAX_BUFFER)].to_vec(),
                        next_seq: seq.wrapping_add(payload.len() as u32),
                        last: ts,
                    },
                );
                None
            }
            _ => None,
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(key) = least_recent(&self.pending, |p| p.last) {
            self.forget(&key);
        }
    }

    /// Stops waiting for a stream.
    fn forget(&mut self, key: &StreamKey) {
        if self.pending.remove(key).is_some() {
            self.waiting_ports[port_slot(key)] -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> StreamKey {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        (a, b, port, 443, 0)
    }

    fn hello(sni: &str, pad: usize) -> Vec<u8> {
        crate::wire::tls::sample_hello(sni, pad)
    }

    #[test]
    fn a_hello_split_over_segments_is_read_once_whole() {
        let h = hello("big.example.com", 1800);
        let mut a = OpeningAssembler::new(8);
        let mut seq = 1000u32;
        let mut got = None;
        for (i, part) in h.chunks(300).enumerate() {
            // Every segment also arrives twice (a retransmission).
            for _ in 0..2 {
                let r = a.segment(key(1), seq, part, Timestamp(i as i64));
                if r.is_some() {
                    assert!(got.is_none(), "named twice");
                    got = r;
                }
            }
            seq = seq.wrapping_add(part.len() as u32);
        }
        let Some(Opening::Tls(hello)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(hello.server_name.as_deref(), Some(&b"big.example.com"[..]));
        assert_eq!(a.waiting(), 0);
    }

    #[test]
    fn a_gap_ends_the_wait_and_the_table_stays_at_its_cap() {
        let h = hello("gap.example.com", 1800);
        let mut a = OpeningAssembler::new(8);
        assert!(a.segment(key(1), 0, &h[..300], Timestamp(0)).is_none());
        assert_eq!(a.waiting(), 1);
        assert!(a.segment(key(1), 600, &h[600..900], Timestamp(1)).is_none());
        assert_eq!(a.waiting(), 0);
        // Hellos whose rest never comes: at most 8 wait, and none for longer than 10 s.
        for port in 0..10_000u16 {
            a.segment(key(port), 0, &h[..300], Timestamp(i64::from(port)));
            assert!(a.waiting() <= 8);
            // The ports filter counts exactly the streams waiting.
            assert_eq!(a.waiting_ports.iter().sum::<u32>() as usize, a.waiting());
        }
        let later = Timestamp(11 * Timestamp::NANOS_PER_SEC);
        a.segment(key(1), 0, b"SSH-2.0-x", later);
        assert_eq!(a.waiting(), 0);
        assert_eq!(a.waiting_ports.iter().sum::<u32>(), 0);
        // Neither TLS nor HTTP: nothing kept.
        let mut b = OpeningAssembler::new(8);
        let ssh = b"SSH-2.0-OpenSSH_9.6\r\n";
        assert!(b.segment(key(1), 0, ssh, Timestamp(0)).is_none());
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn a_stream_is_read_once_until_its_port_is_reused() {
        let req = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
        let mut a = OpeningAssembler::new(8);
        assert!(a.segment(key(3), 1, req, Timestamp(0)).is_some());
        // The next request on the kept-alive connection is not read again.
        assert!(a.segment(key(3), 40, req, Timestamp(1)).is_none());
        // A new connection on the same ports is.
        a.starts(&key(3));
        assert!(a.segment(key(3), 9, req, Timestamp(2)).is_some());
        // The memory of read streams stays bounded.
        for port in 0..5_000u16 {
            a.segment(key(port), 1, req, Timestamp(3));
            assert!(a.read.len() <= 8 * READ_PER_STREAM);
        }
    }

    #[test]
    fn a_request_head_split_over_two_segments_is_read() {
        let req = b"GET / HTTP/1.1\r\nHost: split.example\r\nUser-Agent: Like-Android\r\n\r\n";
        let mut a = OpeningAssembler::new(8);
        assert!(a.segment(key(2), 7, &req[..30], Timestamp(0)).is_none());
        assert_eq!(a.waiting(), 1);
        let Some(Opening::Http(head)) = a.segment(key(2), 37, &req[30..], Timestamp(1)) else {
            panic!()
        };
        assert_eq!(head.host.as_deref(), Some(&b"split.example"[..]));
        assert_eq!(head.user_agent.as_deref(), Some(&b"Like-Android"[..]));
        assert_eq!(a.waiting(), 0);
    }
}
