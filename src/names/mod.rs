//! Names: what the traffic says its addresses are called, learned passively from headers:
//! the DNS answers clients receive (`PassiveDns`), and the server names of TLS and QUIC
//! ClientHellos and the hosts of HTTP requests (read by the decoder); the flow table names
//! each flow's server from them, and the application catalogue (`apps::Catalogue`) says which
//! service a name belongs to.

pub mod apps;
pub mod passive_dns;
pub mod usage;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use passive_dns::{AddressNames, PassiveDns};

/// Everything naming needs in the flows stage: the passive-DNS table, the application
/// catalogue, and the usage tallies.
pub struct Naming {
    pub dns: PassiveDns,
    pub apps: std::sync::Arc<apps::Catalogue>,
    pub usage: usage::Usage,
}

/// Seconds of finished flows `/apps` adds up (besides the flows still in the table).
pub const LIVE_WINDOW_SECS: i64 = 300;

/// The `[names]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamesConfig {
    /// (client, address) pairs and addresses remembered from DNS answers, each; beyond this
    /// the oldest half is forgotten.
    pub passive_dns_entries: usize,
    /// TLS ClientHellos and HTTP request heads split over several segments waited for at
    /// once (each holds at most 16 KiB); past this the stream fed least recently is given up.
    pub hello_streams: usize,
    /// A catalogue file of services (`service category name...` per line) that adds to and
    /// overrides the built-in one.
    pub apps_file: Option<PathBuf>,
}

impl Default for NamesConfig {
    fn default() -> Self {
        NamesConfig {
            passive_dns_entries: 50_000,
            hello_streams: 512,
            apps_file: None,
        }
    }
}

impl NamesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=5_000_000).contains(&self.passive_dns_entries) {
            return Err("names.passive_dns_entries must be between 16 and 5000000".into());
        }
        if !(1..=65_536).contains(&self.hello_streams) {
            return Err("names.hello_streams must be between 1 and 65536".into());
        }
        apps::load(self.apps_file.as_deref())?;
        Ok(())
    }
}
