//! Countries of addresses for the rollups by country. The store is handed a lookup (the
//! server's GeoIP) and puts a small direct-mapped cache in front of it, so that a busy minute
//! looks each of its addresses up about once whatever its flow count.

use std::net::IpAddr;
use std::sync::Arc;

use super::open_bucket::Country;

/// Where an address is: an ISO 3166-1 alpha-2 code, `None` when unknown or not public.
pub type Locate = Arc<dyn Fn(IpAddr) -> Option<[u8; 2]> + Send + Sync>;

/// Cache slots (a few hundred KB at most).
const SLOTS: usize = 4096;

/// A lookup and its cache; without a lookup, no address has a country.
#[derive(Default)]
pub struct Places {
    locate: Option<Locate>,
    cache: Vec<Option<(IpAddr, Option<Country>)>>,
}

impl Places {
    pub fn new(locate: Locate) -> Places {
        Places {
            locate: Some(locate),
            cache: vec![None; SLOTS],
        }
    }

    pub fn country(&mut self, ip: IpAddr) -> Option<Country> {
        let locate = self.locate.as_ref()?;
        let slot = crate::hash::stable_hash(&ip) as usize % SLOTS;
        if let Some((cached, country)) = self.cache[slot]
            && cached == ip
        {
            return country;
        }
        let country = locate(ip).filter(|c| c.iter().all(u8::is_ascii_uppercase));
        let country = country.map(Country);
        self.cache[slot] = Some((ip, country));
        country
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn each_address_is_looked_up_once_while_cached_and_junk_codes_are_refused() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let mut places = Places::new(Arc::new(move |ip: IpAddr| {
            counted.fetch_add(1, Ordering::Relaxed);
            match ip.to_string().as_str() {
                "192.0.2.1" => Some(*b"DE"),
                "192.0.2.2" => Some(*b"d\0"),
                _ => None,
            }
        }));
        for _ in 0..10 {
            assert_eq!(
                places.country("192.0.2.1".parse().unwrap()),
                Some(Country(*b"DE"))
            );
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(places.country("192.0.2.2".parse().unwrap()), None);
        assert_eq!(places.country("10.0.0.1".parse().unwrap()), None);
        assert!(
            Places::default()
                .country("192.0.2.1".parse().unwrap())
                .is_none()
        );
    }
}
