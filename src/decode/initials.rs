//! Putting together the ClientHello a QUIC client sends in its Initial packets. A hello
//! with post-quantum key shares spans two or three Initials, and browsers split and shuffle
//! the CRYPTO frames (Chrome's "chaos protection"), so the CRYPTO stream is rebuilt by
//! offset, up to `MAX_BUFFER` bytes per connection and `streams` connections at once (the
//! least recently fed goes first; one not fed for 10 s of packet time is given up).
//!
//! Decrypting an Initial costs key derivation and AES: at most `DECRYPTS_PER_SEC` datagrams
//! are decrypted per second of packet time, so a flood of forged Initials costs a bounded
//! amount of CPU (those over the budget are counted, not read). A connection whose hello was
//! read is not decrypted again (its later Initials carry only acknowledgements).

use hashbrown::{HashMap, HashSet};

use super::opening::{MAX_BUFFER, StreamKey, least_recent};
use crate::packet::Timestamp;
use crate::wire::quic;
use crate::wire::tls::{self, ClientHello, HelloStatus, Transport};

/// Initials decrypted per second of packet time at most.
pub const DECRYPTS_PER_SEC: u32 = 4000;
const STALE_NANOS: i64 = 10 * Timestamp::NANOS_PER_SEC;
/// Connections remembered as read, per connection that may wait.
const READ_PER_STREAM: usize = 16;

/// One connection's CRYPTO stream so far.
#[derive(Debug)]
struct Crypto {
    bytes: Vec<u8>,
    /// Byte ranges held, `[start, end)`, unordered.
    held: Vec<(usize, usize)>,
    last: Timestamp,
}

impl Crypto {
    fn put(&mut self, offset: u64, data: &[u8]) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start >= MAX_BUFFER {
            return;
        }
        let end = start.saturating_add(data.len()).min(MAX_BUFFER);
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[start..end].copy_from_slice(&data[..end - start]);
        self.held.push((start, end));
    }

    /// How many bytes from offset 0 are held without a gap.
    fn prefix(&mut self) -> usize {
        self.held.sort_unstable();
        let mut reach = 0;
        for &(start, end) in &self.held {
            if start > reach {
                break;
            }
            reach = reach.max(end);
        }
        reach
    }
}

/// The QUIC connections waiting for the rest of their ClientHello.
#[derive(Debug)]
pub struct InitialAssembler {
    streams: usize,
    pending: HashMap<StreamKey, Crypto>,
    read: HashSet<StreamKey>,
    next_sweep: Timestamp,
    /// The packet-time second being budgeted and the decryptions spent in it.
    second: i64,
    spent: u32,
    /// Initials left undecrypted because the second's budget was spent.
    pub over_budget: u64,
}

impl InitialAssembler {
    pub fn new(streams: usize) -> Self {
        InitialAssembler {
            streams: streams.max(1),
            pending: HashMap::new(),
            read: HashSet::new(),
            next_sweep: Timestamp(i64::MIN),
            second: i64::MIN,
            spent: 0,
            over_budget: 0,
        }
    }

    /// Connections waiting now.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Takes a UDP payload from a client; returns the ClientHello it completes.
    pub fn datagram(
        &mut self,
        key: StreamKey,
        payload: &[u8],
        ts: Timestamp,
    ) -> Option<ClientHello> {
        if !quic::looks_like_initial(payload) || self.read.contains(&key) {
            return None;
        }
        if !self.pending.is_empty() && ts >= self.next_sweep {
            let horizon = Timestamp(ts.0.saturating_sub(STALE_NANOS));
            self.pending.retain(|_, p| p.last >= horizon);
            self.next_sweep = Timestamp(ts.0.saturating_add(Timestamp::NANOS_PER_SEC));
        }
        let second = ts.0.div_euclid(Timestamp::NANOS_PER_SEC);
        if second != self.second {
            self.second = second;
            self.spent = 0;
        }
        if self.spent >= DECRYPTS_PER_SEC {
            self.over_budget += 1;
            return None;
        }
        self.spent += 1;
        let initial = quic::decrypt_initial(payload)?;
        let frames = quic::crypto_frames(&initial.payload);
        if frames.is_empty() {
            return None;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= self.streams {
            self.evict_oldest();
        }
        let crypto = self.pending.entry(key).or_insert_with(|| Crypto {
            bytes: Vec::new(),
            held: Vec::new(),
            last: ts,
        });
        crypto.last = ts;
        for (offset, data) in frames {
            crypto.put(offset, data);
        }
        let prefix = crypto.prefix();
        match tls::handshake_message(&crypto.bytes[..prefix], Transport::Quic) {
            HelloStatus::Complete(hello) => {
                self.finish(key);
                Some(hello)
            }
            HelloStatus::Incomplete { need } if need <= MAX_BUFFER => None,
            _ => {
                self.finish(key);
                None
            }
        }
    }

    fn finish(&mut self, key: StreamKey) {
        self.pending.remove(&key);
        if self.read.len() >= self.streams * READ_PER_STREAM {
            self.read.clear();
        }
        self.read.insert(key);
    }

    fn evict_oldest(&mut self) {
        if let Some(key) = least_recent(&self.pending, |c| c.last) {
            self.pending.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> StreamKey {
        let a = "10.0.0.1".parse().unwrap();
        let b = "10.0.0.2".parse().unwrap();
        (a, b, port, 443, 0)
    }

    #[test]
    fn the_rfc_initial_is_read_once() {
        let initial = crate::wire::quic::rfc9001_client_initial();
        let mut a = InitialAssembler::new(8);
        let hello = a.datagram(key(1), &initial, Timestamp(0)).expect("a hello");
        assert_eq!(hello.server_name.as_deref(), Some(&b"example.com"[..]));
        assert!(hello.ja4.starts_with('q'));
        assert!(a.datagram(key(1), &initial, Timestamp(1)).is_none());
        assert_eq!(a.waiting(), 0);
    }

    #[test]
    fn crypto_bytes_are_put_together_by_offset_in_any_order() {
        let mut c = Crypto {
            bytes: Vec::new(),
            held: Vec::new(),
            last: Timestamp(0),
        };
        c.put(10, b"klmnop");
        assert_eq!(c.prefix(), 0);
        c.put(0, b"abcdefgh");
        assert_eq!(c.prefix(), 8);
        c.put(6, b"ghij");
        assert_eq!(c.prefix(), 16);
        assert_eq!(&c.bytes, b"abcdefghijklmnop");
        c.put(u64::MAX, b"x");
        c.put(MAX_BUFFER as u64 - 1, b"yz");
        assert_eq!(c.bytes.len(), MAX_BUFFER);
    }

    #[test]
    fn forged_initials_cost_a_bounded_number_of_decryptions() {
        let mut forged = crate::wire::quic::rfc9001_client_initial();
        forged[700] ^= 0xff;
        let mut a = InitialAssembler::new(8);
        for port in 0..10_000u16 {
            assert!(a.datagram(key(port), &forged, Timestamp(5)).is_none());
        }
        assert_eq!(a.over_budget, 10_000 - u64::from(DECRYPTS_PER_SEC));
        assert_eq!(a.waiting(), 0);
        // The next second has a budget again.
        let next = Timestamp(6 * Timestamp::NANOS_PER_SEC);
        assert!(
            a.datagram(key(1), &crate::wire::quic::rfc9001_client_initial(), next)
                .is_some()
        );
    }
}
