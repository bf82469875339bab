//! GeoIP: where an address is, from a MaxMind DB file (maxminddb).
//!
//! Two schemas are read: GeoIP2/GeoLite2 City and Country (`country.iso_code`,
//! `country.names.en`, `city.names.en`, `location.latitude`), and the flat one of the
//! ip-location-db packages (`country_code`, `city`, `latitude`, `longitude`). An optional
//! second database gives the autonomous system (GeoLite2-ASN schema). Addresses that are not
//! on the internet (private, loopback, link-local, multicast, documentation, ...) are labelled
//! and never looked up. Answers are cached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hashbrown::HashMap;
use maxminddb::{Mmap, Reader};
use serde::{Deserialize, Serialize};

/// GeoIP settings (the `[geoip]` section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// Turn lookups off entirely.
    pub enabled: bool,
    /// A City or Country database (GeoIP2 or flat schema). Unset: the first of
    /// `DEFAULT_DB_PATHS` that exists.
    pub db: Option<PathBuf>,
    /// An ASN database (GeoLite2-ASN schema), optional.
    pub asn_db: Option<PathBuf>,
    /// ISO 3166-1 country names (Debian's iso-codes JSON), for databases that give only a
    /// country code. Missing: answers carry the code alone.
    pub country_names: PathBuf,
    /// Answers kept in memory.
    pub cache_entries: usize,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            enabled: true,
            db: None,
            asn_db: None,
            country_names: PathBuf::from("/usr/share/iso-codes/json/iso_3166-1.json"),
            cache_entries: 4096,
        }
    }
}

/// Where the database is looked for when none is configured: the package's copy, then the
/// one `scripts/fetch-geoip.sh` puts in a checkout.
pub const DEFAULT_DB_PATHS: [&str; 2] = [
    "/usr/share/tapir/geoip/dbip-country.mmdb",
    "data/geoip/dbip-country.mmdb",
];

/// The published GeoIPInfo shape, plus what tells the user why a field is empty.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeoInfo {
    pub ip: IpAddr,
    #[serde(flatten)]
    pub place: Place,
}

/// What is known about where an address is (the GeoIPInfo fields besides `ip`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Place {
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    /// Set for addresses that are not looked up: `private`, `loopback`, `link-local`, ...
    pub scope: Option<&'static str>,
    /// Why there is no location, when there is none.
    pub reason: Option<String>,
}

/// A database that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open GeoIP database {path}: {detail}; check `[geoip] db` in the config")]
pub struct GeoError {
    pub path: PathBuf,
    pub detail: String,
}

/// One opened database.
struct Db {
    path: PathBuf,
    reader: Reader<Mmap>,
}

impl Db {
    fn open(path: &Path) -> Result<Db, GeoError> {
        // SAFETY: the file is mapped read-only. Updating it in place while tapir runs would be
        // undefined behaviour; updates replace the file (a new inode), which leaves this mapping
        // intact. Mapping rather than reading keeps a 100 MB City database out of RSS.
        let reader = unsafe { Reader::open_mmap(path) }.map_err(|e| GeoError {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Db {
            path: path.to_path_buf(),
            reader,
        })
    }
}

/// What the status endpoints show about GeoIP.
#[derive(Clone, Debug, Serialize)]
pub struct GeoStatus {
    pub database: Option<PathBuf>,
    pub database_type: Option<String>,
    pub build_epoch: Option<u64>,
    pub asn_database: Option<PathBuf>,
    pub cached: usize,
    pub lookups: u64,
    pub cache_hits: u64,
    /// Why there is no database, when there is none.
    pub reason: Option<String>,
}

/// Lookups over the configured databases; shared by the HTTP workers.
pub struct GeoIp {
    db: Option<Db>,
    asn: Option<Db>,
    /// Country code → common name.
    names: HashMap<String, String>,
    /// Why there is no database.
    missing: Option<String>,
    cache_entries: usize,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<IpAddr, GeoInfo>,
    lookups: u64,
    hits: u64,
}

impl GeoIp {
    /// Opens the configured databases. A configured database that cannot be opened is an
    /// error; with none configured and none found, lookups answer with the reason.
    pub fn open(config: &GeoConfig) -> Result<GeoIp, GeoError> {
        let (db, missing) = if !config.enabled {
            (
                None,
                Some("GeoIP is switched off (`[geoip] enabled = false`)".to_string()),
            )
        } else if let Some(path) = &config.db {
            (Some(Db::open(path)?), None)
        } else {
            match DEFAULT_DB_PATHS.iter().map(Path::new).find(|p| p.exists()) {
                Some(path) => (Some(Db::open(path)?), None),
                None => (
                    None,
                    Some(format!(
                        "no GeoIP database: set `[geoip] db` to a MaxMind DB file (GeoLite2 or DB-IP City/Country), or run scripts/fetch-geoip.sh; looked in {}",
                        DEFAULT_DB_PATHS.join(", ")
                    )),
                ),
            }
        };
        let asn = match (&config.asn_db, config.enabled) {
            (Some(path), true) => Some(Db::open(path)?),
            _ => None,
        };
        Ok(GeoIp {
            db,
            asn,
            names: country_names(&config.country_names),
            missing,
            cache_entries: config.cache_entries.max(1),
            cache: Mutex::new(Cache::default()),
        })
    }

    /// No database: every lookup says so.
    pub fn disabled(reason: &str) -> GeoIp {
        GeoIp {
            db: None,
            asn: None,
            names: HashMap::new(),
            missing: Some(reason.to_string()),
            cache_entries: 1,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn status(&self) -> GeoStatus {
        let cache = self.cache.lock().expect("geo cache");
        let meta = self.db.as_ref().map(|d| d.reader.metadata());
        GeoStatus {
            database: self.db.as_ref().map(|d| d.path.clone()),
            database_type: meta.map(|m| m.database_type.clone()),
            build_epoch: meta.map(|m| m.build_epoch),
            asn_database: self.asn.as_ref().map(|d| d.path.clone()),
            cached: cache.map.len(),
            lookups: cache.lookups,
            cache_hits: cache.hits,
            reason: self.missing.clone(),
        }
    }

    /// Where `ip` is (cached).
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        {
            let mut cache = self.cache.lock().expect("geo cache");
            cache.lookups += 1;
            if let Some(hit) = cache.map.get(&ip).cloned() {
                cache.hits += 1;
                return hit;
            }
        }
        let info = self.resolve(ip);
        let mut cache = self.cache.lock().expect("geo cache");
        // Cheap bound: start over when full. The set of talkers on a link is small and
        // stable, so the cache refills with the hot ones at once.
        if cache.map.len() >= self.cache_entries {
            cache.map.clear();
        }
        cache.map.insert(ip, info.clone());
        info
    }

    /// The ISO code of the country `ip` is in, uncached (for callers that cache it).
    pub fn country_code(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let code = self.place(ip).country_code?;
        code.as_bytes().try_into().ok()
    }

    fn resolve(&self, ip: IpAddr) -> GeoInfo {
        let place = self.place(ip);
        GeoInfo { ip, place }
    }

    fn place(&self, ip: IpAddr) -> Place {
        // An IPv4 address in IPv6 clothing is looked up as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mut info = Place::default();
        if let Some(scope) = scope(ip) {
            info.scope = Some(scope);
            info.reason = Some(format!(
                "{scope} address: not on the internet, not looked up"
            ));
            return info;
        }
        let Some(db) = &self.db else {
            info.reason = self.missing.clone();
            return info;
        };
        match db.reader.lookup(ip).and_then(|r| r.decode::<Record>()) {
            Ok(Some(record)) => {
                record.fill(&mut info);
                if info.country.is_none()
                    && let Some(code) = &info.country_code
                {
                    info.country = self.names.get(code).cloned();
                }
            }
            Ok(None) => info.reason = Some("not in the GeoIP database".into()),
            Err(e) => info.reason = Some(format!("GeoIP lookup failed: {e}")),
        }
        if let Some(asn) = &self.asn
            && let Ok(Some(record)) = asn.reader.lookup(ip).and_then(|r| r.decode::<Record>())
        {
            info.asn = record.autonomous_system_number;
            info.as_org = record.autonomous_system_organization;
        }
        info
    }
}

/// Reads ISO 3166-1 names (`{"3166-1": [{"alpha_2", "name", "common_name"?}]}`), preferring
/// the common name ("South Korea" over "Korea, Republic of"); empty if unreadable.
fn country_names(path: &Path) -> HashMap<String, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "3166-1")]
        countries: Vec<Country>,
    }
    #[derive(Deserialize)]
    struct Country {
        alpha_2: String,
        name: String,
        common_name: Option<String>,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    serde_json::from_str::<File>(&text)
        .map(|f| {
            f.countries
                .into_iter()
                .map(|c| (c.alpha_2, c.common_name.unwrap_or(c.name)))
                .collect()
        })
        .unwrap_or_default()
}

/// The scope of an address that is not on the public internet, `None` for public ones.
pub fn scope(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => scope_v4(v4),
            None => scope_v6(v6),
        },
    }
}

fn scope_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        (0, _, _) => "unspecified",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (100, 64..=127, _) => "shared",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn scope_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0xfc00..=0xfdff => "private",
        0xfe80..=0xfebf => "link-local",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        _ => return None,
    })
}

/// Both schemas' fields; serde ignores the rest.
#[derive(Deserialize)]
struct Record {
    // GeoIP2 City/Country.
    country: Option<Area>,
    registered_country: Option<Area>,
    city: Option<CityField>,
    location: Option<Location>,
    // The flat schema.
    country_code: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    // GeoLite2-ASN (and the flat ASN schema, which uses the same names).
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<String>,
}

#[derive(Deserialize)]
struct Area {
    iso_code: Option<String>,
    names: Option<Names>,
}

#[derive(Deserialize)]
struct Names {
    en: Option<String>,
}

/// `city` is a map of names in GeoIP2 and a plain name in the flat schema.
#[derive(Deserialize)]
#[serde(untagged)]
enum CityField {
    Name(String),
    Place { names: Option<Names> },
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Record {
    fn fill(self, info: &mut Place) {
        let place = self.country.or(self.registered_country);
        info.country_code = place
            .as_ref()
            .and_then(|p| p.iso_code.clone())
            .or(self.country_code);
        info.country = place.and_then(|p| p.names).and_then(|n| n.en);
        info.city = match self.city {
            Some(CityField::Name(name)) => Some(name),
            Some(CityField::Place { names }) => names.and_then(|n| n.en),
            None => None,
        };
        let (lat, lon) = match self.location {
            Some(l) => (l.latitude, l.longitude),
            None => (self.latitude, self.longitude),
        };
        info.latitude = lat;
        info.longitude = lon;
        info.asn = self.autonomous_system_number;
        info.as_org = self.autonomous_system_organization;
        if info.country_code.is_none() && info.latitude.is_none() {
            info.reason = Some("the GeoIP database has no location for it".into());
        }
    }
}

#[cfg(test)]
mod tests;
