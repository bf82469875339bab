//! Login throttling per client address: a few free attempts, then an exponential back-off
//! capped at a maximum, so that guessing is slow but nobody can lock the admin out for good
//! (the block is per address and ends by itself; a right password from elsewhere always works).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed attempts from one address (IPv6 clients are grouped by /64, which one host controls).
#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// The back-off state of every recently failing address, bounded in size.
#[derive(Debug)]
pub struct Throttle {
    entries: HashMap<IpAddr, Entry>,
    free_attempts: u32,
    max_delay: Duration,
    capacity: usize,
}

/// The first delay after the free attempts; each later failure doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);

impl Throttle {
    pub fn new(free_attempts: u32, max_delay: Duration, capacity: usize) -> Self {
        Throttle {
            entries: HashMap::new(),
            free_attempts,
            max_delay,
            capacity: capacity.max(1),
        }
    }

    /// `Err(wait)` while `client` must wait before its next attempt.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.entries.get(&group(client)) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong password; returns how long the client must now wait (zero while it
    /// still has free attempts).
    pub fn failure(&mut self, client: IpAddr, now: Instant) -> Duration {
        self.forget_stale(now);
        let key = group(client);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            // Full: the address that failed longest ago makes room.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let over = entry.failures.saturating_sub(self.free_attempts);
        let delay = if over == 0 {
            Duration::ZERO
        } else {
            FIRST_DELAY
                .saturating_mul(1u32.checked_shl(over - 1).unwrap_or(u32::MAX))
                .min(self.max_delay)
        };
        entry.blocked_until = now + delay;
        delay
    }

    /// A right password clears the address's record.
    pub fn success(&mut self, client: IpAddr) {
        self.entries.remove(&group(client));
    }

    /// Addresses being tracked (for /debug).
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Addresses quiet for twice the longest delay start afresh.
    fn forget_stale(&mut self, now: Instant) {
        let keep = self
            .max_delay
            .saturating_mul(2)
            .max(Duration::from_secs(60));
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) < keep);
    }
}

/// The key an address is throttled under: itself (IPv4) or its /64 (IPv6).
fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));

    #[test]
    fn free_attempts_then_doubling_delays_up_to_the_cap() {
        let t0 = Instant::now();
        let mut t = Throttle::new(5, Duration::from_secs(900), 100);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..16 {
            assert_eq!(t.check(A, now), Ok(()));
            let d = t.failure(A, now);
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
        );
        // Blocked mid-delay, free once it has passed; another address is not affected.
        let d = t.failure(A, now);
        assert_eq!(d, Duration::from_secs(900));
        assert_eq!(
            t.check(A, now + Duration::from_secs(100)),
            Err(Duration::from_secs(800))
        );
        assert_eq!(t.check(B, now), Ok(()));
        assert_eq!(t.check(A, now + d), Ok(()));
        t.success(A);
        assert_eq!(t.check(A, now), Ok(()));
    }

    #[test]
    fn ipv6_hosts_are_grouped_by_their_64_and_memory_is_bounded() {
        let now = Instant::now();
        let mut t = Throttle::new(0, Duration::from_secs(60), 3);
        t.failure("2001:db8:1:2::1".parse().unwrap(), now);
        assert!(t.check("2001:db8:1:2::ffff".parse().unwrap(), now).is_err());
        assert!(t.check("2001:db8:1:3::1".parse().unwrap(), now).is_ok());
        for i in 0..10u8 {
            t.failure(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)), now);
        }
        assert_eq!(t.tracked(), 3);
        // Quiet addresses are forgotten.
        t.failure(B, now + Duration::from_secs(3600));
        assert_eq!(t.tracked(), 1);
    }
}
