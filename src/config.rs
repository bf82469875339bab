//! Configuration: one TOML file, overridden by environment and command line.
//!
//! Precedence: command line > environment (`NET_IFACE`, `DB_PATH`, ...) > file > defaults.
//! Unknown keys are errors, so a typo never silently falls back to a default.

pub use crate::capture::CaptureConfig;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::alert::AlertsConfig;
use crate::auth::AuthConfig;
use crate::decode::DecodeConfig;
use crate::detect::DetectorsConfig;
use crate::devices::{DevicesConfig, SharedDevices};
use crate::export::ExportConfig;
use crate::flow::FlowConfig;
use crate::geo::GeoConfig;
use crate::http::ServerConfig;
use crate::intel::{IntelConfig, SharedIntel};
use crate::metrics::MetricsConfig;
use crate::names::NamesConfig;
use crate::pipeline::PipelineConfig;
use crate::privacy::PrivacyConfig;
use crate::store::StoreConfig;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureConfig,
    pub decode: DecodeConfig,
    pub names: NamesConfig,
    pub flows: FlowConfig,
    pub metrics: MetricsConfig,
    pub detectors: DetectorsConfig,
    pub devices: DevicesConfig,
    pub alerts: AlertsConfig,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub geoip: GeoConfig,
    pub auth: AuthConfig,
    pub privacy: PrivacyConfig,
    pub export: ExportConfig,
    pub intel: IntelConfig,
    /// `[[notify]]` targets.
    pub notify: Vec<crate::notify::NotifyTarget>,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

impl Config {
    /// The settings a pipeline is built from. Every pipeline built from the result shares
    /// one device book (a fresh one per call): call it once per process.
    pub fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            capture: self.capture.clone(),
            decode: self.decode.clone(),
            names: self.privacy.names.then(|| self.names.clone()),
            usage_window_secs: Some(crate::names::LIVE_WINDOW_SECS),
            flows: self.flows.clone(),
            metrics: self.metrics.clone(),
            detectors: self.detectors.clone(),
            devices: self
                .devices
                .enabled
                .then(|| SharedDevices::new(&self.devices)),
            alerts: self.alerts.clone(),
            intel: self
                .intel
                .lists
                .iter()
                .any(|l| l.enabled)
                .then(SharedIntel::default),
            store_intake: None,
        }
    }

    /// Reads `path`, or returns the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|detail| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Parses TOML text; the error names the line and the reason.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| {
                text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.capture.batch_packets == 0 || self.capture.batch_packets > 65_536 {
            return Err("capture.batch_packets must be between 1 and 65536".into());
        }
        if self.capture.queue_batches == 0 {
            return Err("capture.queue_batches must be at least 1".into());
        }
        if self.flows.max_flows == 0 {
            return Err("flows.max_flows must be at least 1".into());
        }
        if self.metrics.bandwidth_window_secs < 2 {
            return Err("metrics.bandwidth_window_secs must be at least 2".into());
        }
        if self.alerts.max_alerts == 0 {
            return Err("alerts.max_alerts must be at least 1".into());
        }
        self.decode.validate()?;
        self.names.validate()?;
        self.devices.validate()?;
        self.store.validate()?;
        self.server.validate()?;
        self.auth.validate()?;
        self.export.validate()?;
        self.intel.validate()?;
        crate::notify::validate(&self.notify)?;
        self.detectors.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_keep_defaults_elsewhere() {
        let c = Config::parse("[flows]\nudp_timeout = 5\n").unwrap();
        assert_eq!(c.flows.udp_timeout, 5);
        assert_eq!(c.flows.tcp_established_timeout, 300);
        assert_eq!(c.capture, CaptureConfig::default());
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let err = Config::parse("[flows]\nudp_timeout = 5\nudp_timout = 6\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("udp_timout"), "{err}");
    }

    #[test]
    fn wrong_types_and_bad_values_are_rejected() {
        assert!(
            Config::parse("[capture]\nsnaplen = \"big\"\n")
                .unwrap_err()
                .starts_with("line 2")
        );
        assert!(
            Config::parse("[flows]\nmax_flows = 0\n")
                .unwrap_err()
                .contains("max_flows")
        );
    }

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let text = include_str!("../tapir.example.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }
}
