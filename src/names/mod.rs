//! Names: what the traffic says its addresses are called, learned passively from headers.
//! So far the DNS answers clients receive (`PassiveDns`); the flows actor asks it for the
//! name of each flow's server.

pub mod passive_dns;

use serde::{Deserialize, Serialize};

pub use passive_dns::{AddressNames, PassiveDns};

/// The `[names]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamesConfig {
    /// (client, address) pairs and addresses remembered from DNS answers, each; beyond this
    /// the oldest half is forgotten.
    pub passive_dns_entries: usize,
}

impl Default for NamesConfig {
    fn default() -> Self {
        NamesConfig {
            passive_dns_entries: 50_000,
        }
    }
}

impl NamesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=5_000_000).contains(&self.passive_dns_entries) {
            return Err("names.passive_dns_entries must be between 16 and 5000000".into());
        }
        Ok(())
    }
}
