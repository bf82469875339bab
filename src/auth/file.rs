//! The credentials file (`auth.json` beside the database): users with Argon2id password
//! hashes, API tokens as SHA-256 digests, and the privacy settings changed from the
//! dashboard. Written whole to a temporary file and renamed into place, mode 0600.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What an account or token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: acknowledge alerts, upload captures, change settings, manage tokens.
    Admin,
    /// Reads everything the dashboard shows; changes nothing.
    Viewer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// One account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub role: Role,
    /// PHC string (`$argon2id$...`).
    pub password_hash: String,
    /// Set for a generated one-time password: the account can do nothing else until it is
    /// changed.
    #[serde(default)]
    pub must_change_password: bool,
}

/// One API token; the token itself is shown once, at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// Unix seconds.
    pub created: u64,
}

/// Settings an admin changes at run time (they override the config file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_masking: Option<bool>,
    /// Notification targets an admin added in the dashboard, secrets included (which is
    /// why they live in this file, mode 0600, and not in the config).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify::NotifyTarget>,
}

/// The file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    #[serde(default)]
    pub settings: SavedSettings,
}

/// Why the credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged ({detail}); fix it, or move it away and set a new password with `tapir passwd`"
    )]
    Invalid { path: PathBuf, detail: String },
    #[error("cannot write {path}: {source} (is its directory writable?)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Credentials {
    /// Reads `path`; a missing file is empty credentials.
    pub fn load(path: &Path) -> Result<Credentials, FileError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| FileError::Invalid {
                path: path.into(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::default()),
            Err(source) => Err(FileError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    /// Writes the file atomically, readable by its owner only. When run as root (`sudo tapir
    /// passwd`), the file is given to the owner of its directory: the service's own user.
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        let err = |source| FileError::Write {
            path: path.into(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        let text = serde_json::to_vec_pretty(self).expect("credentials serialize");
        file.write_all(&text).map_err(err)?;
        file.sync_all().map_err(err)?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let owner = std::fs::metadata(&dir).map_err(err)?;
            std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Whether any account can log in as admin.
    pub fn has_admin(&self) -> bool {
        self.users.values().any(|u| u.role == Role::Admin)
    }
}

/// The file's modification time, to notice changes made by `tapir passwd` or `tapir token`.
pub fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_credentials_read_back_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/auth.json");
        assert_eq!(Credentials::load(&path).unwrap(), Credentials::default());
        let mut c = Credentials::default();
        c.users.insert(
            "admin".into(),
            User {
                role: Role::Admin,
                password_hash: "$argon2id$x".into(),
                must_change_password: true,
            },
        );
        c.settings.ip_masking = Some(true);
        c.save(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), c);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "{not json").unwrap();
        let e = Credentials::load(&path).unwrap_err().to_string();
        assert!(e.contains("tapir passwd"), "{e}");
    }
}
