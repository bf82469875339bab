//! TLS for the front door (rustls, ring provider): the user's certificate and key, or a
//! self-signed pair generated at first start and kept beside the credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

use super::config::TlsConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls: give both cert and key, or neither (to use a generated certificate)")]
    HalfConfigured,
    #[error("cannot read the TLS certificate {path}: {detail}")]
    Cert { path: PathBuf, detail: String },
    #[error("cannot read the TLS key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("cannot generate a TLS certificate in {path}: {detail}")]
    Generate { path: PathBuf, detail: String },
    #[error("the TLS certificate and key do not fit together: {0}")]
    Mismatch(String),
}

/// A ready server configuration and what to tell the operator about it.
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, colon-separated hex (what browsers show).
    pub fingerprint: String,
    pub generated: bool,
}

impl Tls {
    /// Loads the configured pair, or the generated one in `dir` (making it on first use).
    pub fn setup(config: &TlsConfig, dir: &Path) -> Result<Tls, TlsError> {
        let (cert_path, key_path, generated) = match (&config.cert, &config.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), false),
            (None, None) => {
                let dir = dir.join("tls");
                let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
                let made = if c.exists() && k.exists() {
                    false
                } else {
                    generate(&dir, &c, &k)?;
                    true
                };
                (c, k, made)
            }
            _ => return Err(TlsError::HalfConfigured),
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| TlsError::Cert {
                path: cert_path.clone(),
                detail: e.to_string(),
            })?;
        let Some(leaf) = certs.first() else {
            return Err(TlsError::Cert {
                path: cert_path,
                detail: "no certificate in the file".into(),
            });
        };
        let fingerprint = sha2::Sha256::digest(leaf.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::Key {
            path: key_path.clone(),
            detail: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        Ok(Tls {
            config: Arc::new(server),
            cert_path,
            fingerprint,
            generated,
        })
    }
}

/// Makes a self-signed certificate for this host's names and loopback, key readable by the
/// owner only.
fn generate(dir: &Path, cert: &Path, key: &Path) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |detail: String| TlsError::Generate {
        path: dir.into(),
        detail,
    };
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = hostname() {
        names.push(format!("{host}.local"));
        names.insert(0, host);
    }
    let pair = rcgen::generate_simple_self_signed(names).map_err(|e| err(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key)
        .map_err(|e| err(e.to_string()))?;
    file.write_all(pair.signing_key.serialize_pem().as_bytes())
        .map_err(|e| err(e.to_string()))?;
    std::fs::write(cert, pair.cert.pem()).map_err(|e| err(e.to_string()))
}

/// This machine's host name, if it has a usable one.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Tls::setup(&TlsConfig::default(), dir.path()).unwrap();
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = Tls::setup(&TlsConfig::default(), dir.path()).unwrap();
        assert!(!again.generated);
        assert_eq!(first.fingerprint, again.fingerprint);
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn broken_or_half_configurations_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let half = TlsConfig {
            enabled: true,
            cert: Some(dir.path().join("c.pem")),
            key: None,
        };
        assert!(matches!(
            Tls::setup(&half, dir.path()),
            Err(TlsError::HalfConfigured)
        ));
        std::fs::write(dir.path().join("c.pem"), "not a certificate").unwrap();
        std::fs::write(dir.path().join("k.pem"), "not a key").unwrap();
        let bad = TlsConfig {
            enabled: true,
            cert: Some(dir.path().join("c.pem")),
            key: Some(dir.path().join("k.pem")),
        };
        let e = Tls::setup(&bad, dir.path()).err().unwrap().to_string();
        assert!(e.contains("c.pem"), "{e}");
    }
}
