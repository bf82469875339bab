//! Access control: who may see and change what.
//!
//! Accounts (admin or viewer) log in with a password and get a session cookie plus a CSRF
//! token that every state-changing request must carry; scripts and Prometheus use API tokens
//! (`Authorization: Bearer`). `Auth` is a plain struct the HTTP workers share behind a lock;
//! password hashing runs outside it (see `Api::login`). Sessions live in memory: a restart
//! logs everyone out. Credentials live in the file `file` describes.

pub mod file;
pub mod hasher;
pub mod secret;
pub mod throttle;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

pub use file::{ApiToken, Credentials, FileError, Role, User};
use throttle::Throttle;

/// The `[auth]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a login. Unset: on, except for `tapir demo` on a loopback address. Off is
    /// refused on any other address.
    pub enabled: Option<bool>,
    /// The credentials file. Unset: `auth.json` in the directory that holds the database.
    pub file: Option<PathBuf>,
    /// A session ends this long after login.
    pub session_hours: u64,
    /// ... or after this long without a request.
    pub idle_minutes: u64,
    /// Wrong passwords an address may send before it has to wait.
    pub login_free_attempts: u32,
    /// The longest wait (the delay doubles from 1 s per further wrong password).
    pub login_max_delay_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: None,
            file: None,
            session_hours: 12,
            idle_minutes: 60,
            login_free_attempts: 5,
            login_max_delay_secs: 900,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.session_hours == 0 || self.idle_minutes == 0 {
            return Err("auth.session_hours and auth.idle_minutes must be at least 1".into());
        }
        if self.login_max_delay_secs == 0 {
            return Err("auth.login_max_delay_secs must be at least 1".into());
        }
        Ok(())
    }

    /// The credentials file for a database at `db_path`.
    pub fn file_for(&self, db_path: &Path) -> PathBuf {
        self.file.clone().unwrap_or_else(|| {
            db_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("auth.json")
        })
    }
}

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub via: Via,
}

/// How a request was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A browser session: state changes need the CSRF token.
    Session { id: String, csrf: String },
    /// An API token (not sent by browsers on their own, so no CSRF token is needed).
    Token { id: String },
    /// Authentication is off (demo on loopback).
    Open,
}

/// A logged-in browser.
#[derive(Clone, Debug)]
struct Session {
    user: String,
    role: Role,
    csrf: String,
    expires: Instant,
    last_seen: Instant,
}

/// What a successful login hands back.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
    pub user: String,
    pub role: Role,
    pub must_change_password: bool,
    pub lifetime: Duration,
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Too many wrong passwords from this address: try again after this long.
    Throttled(Duration),
    /// Unknown user or wrong password (never said which).
    Invalid { wait: Duration },
}

/// At most this many sessions are kept; the least recently used goes first.
const MAX_SESSIONS: usize = 256;
/// Passwords shorter than this are refused (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;
/// How often the file is checked for changes made by the command line.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Accounts, tokens, sessions and login throttling.
pub struct Auth {
    config: AuthConfig,
    path: PathBuf,
    creds: Credentials,
    loaded: Option<SystemTime>,
    checked: Instant,
    sessions: HashMap<String, Session>,
    throttle: Throttle,
}

impl Auth {
    /// Loads the credentials at `path` (none yet is fine).
    pub fn open(config: AuthConfig, path: PathBuf) -> Result<Auth, FileError> {
        let creds = Credentials::load(&path)?;
        Ok(Auth {
            throttle: Throttle::new(
                config.login_free_attempts,
                Duration::from_secs(config.login_max_delay_secs),
                4096,
            ),
            loaded: file::modified(&path),
            checked: Instant::now(),
            config,
            path,
            creds,
            sessions: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// With no admin account yet, makes one with a fresh one-time password that must be
    /// changed at first login, and returns the password (for the log). Also done again on
    /// each start while that password is still unchanged, since the first may be lost.
    pub fn ensure_admin(&mut self) -> Result<Option<String>, FileError> {
        let pending = self
            .creds
            .users
            .get("admin")
            .is_some_and(|u| u.must_change_password);
        if self.creds.has_admin() && !pending {
            return Ok(None);
        }
        let password = secret::one_time_password();
        self.creds.users.insert(
            "admin".into(),
            User {
                role: Role::Admin,
                password_hash: secret::hash_password(&password),
                must_change_password: true,
            },
        );
        self.save()?;
        Ok(Some(password))
    }

    /// Re-reads the file if `tapir passwd` or `tapir token` changed it (checked every 2 s).
    pub fn refresh(&mut self, now: Instant) {
        if now.saturating_duration_since(self.checked) < RELOAD_EVERY {
            return;
        }
        self.reload_if_changed(now);
    }

    /// Re-reads the file now if it changed (one `stat`): an unknown token or user may have
    /// just been made from the command line.
    fn reload_if_changed(&mut self, now: Instant) {
        self.checked = now;
        let modified = file::modified(&self.path);
        if modified != self.loaded
            && let Ok(creds) = Credentials::load(&self.path)
        {
            self.creds = creds;
            self.loaded = modified;
            // Sessions of removed or demoted users end.
            let users = &self.creds.users;
            self.sessions
                .retain(|_, s| users.get(&s.user).is_some_and(|u| u.role == s.role));
        }
    }

    fn save(&mut self) -> Result<(), FileError> {
        self.creds.save(&self.path)?;
        self.loaded = file::modified(&self.path);
        Ok(())
    }

    /// Step one of a login: whether `client` may try now, and the hash to check against
    /// (checked by the caller without holding the lock: Argon2 takes tens of milliseconds).
    pub fn login_begin(
        &mut self,
        client: IpAddr,
        user: &str,
        now: Instant,
    ) -> Result<Option<String>, LoginError> {
        self.refresh(now);
        self.throttle
            .check(client, now)
            .map_err(LoginError::Throttled)?;
        if !self.creds.users.contains_key(user) {
            self.reload_if_changed(now);
        }
        Ok(self.creds.users.get(user).map(|u| u.password_hash.clone()))
    }

    /// Step two: records the outcome; on success opens a session.
    pub fn login_finish(
        &mut self,
        client: IpAddr,
        user: &str,
        password_ok: bool,
        now: Instant,
    ) -> Result<NewSession, LoginError> {
        let account = self.creds.users.get(user).filter(|_| password_ok).cloned();
        let Some(account) = account else {
            let wait = self.throttle.failure(client, now);
            return Err(LoginError::Invalid { wait });
        };
        self.throttle.success(client);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            self.sessions.remove(&oldest);
        }
        let lifetime = Duration::from_secs(self.config.session_hours * 3600);
        let session = Session {
            user: user.into(),
            role: account.role,
            csrf: secret::random_token(),
            expires: now + lifetime,
            last_seen: now,
        };
        let id = secret::random_token();
        let new = NewSession {
            id: id.clone(),
            csrf: session.csrf.clone(),
            user: user.into(),
            role: account.role,
            must_change_password: account.must_change_password,
            lifetime,
        };
        self.sessions.insert(id, session);
        Ok(new)
    }

    /// The session with this cookie value, if it is still valid (and marks it used).
    pub fn session(&mut self, id: &str, now: Instant) -> Option<Principal> {
        self.refresh(now);
        let idle = Duration::from_secs(self.config.idle_minutes * 60);
        let s = self.sessions.get_mut(id)?;
        if now >= s.expires || now.saturating_duration_since(s.last_seen) >= idle {
            self.sessions.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(Principal {
            user: s.user.clone(),
            role: s.role,
            via: Via::Session {
                id: id.into(),
                csrf: s.csrf.clone(),
            },
        })
    }

    /// Whether a session is still open, without counting as activity (WebSocket streams
    /// check this to end when their session does).
    pub fn session_open(&self, id: &str, now: Instant) -> bool {
        let idle = Duration::from_secs(self.config.idle_minutes * 60);
        self.sessions.get(id).is_some_and(|s| {
            now < s.expires && now.saturating_duration_since(s.last_seen) < idle + idle
        })
    }

    /// The holder of an API token.
    pub fn token(&mut self, token: &str, now: Instant) -> Option<Principal> {
        self.refresh(now);
        let digest = secret::token_digest(token);
        let find = |creds: &Credentials| {
            creds
                .tokens
                .iter()
                .position(|t| secret::equal(&t.digest, &digest))
        };
        let found = find(&self.creds).or_else(|| {
            self.reload_if_changed(now);
            find(&self.creds)
        });
        found.map(|i| &self.creds.tokens[i]).map(|t| Principal {
            user: format!("token:{}", t.name),
            role: t.role,
            via: Via::Token { id: t.id.clone() },
        })
    }

    /// Whether `user` still has to replace a one-time password.
    pub fn must_change_password(&self, user: &str) -> bool {
        self.creds
            .users
            .get(user)
            .is_some_and(|u| u.must_change_password)
    }

    /// The password hash of `user` (to check the current password outside the lock).
    pub fn password_hash(&self, user: &str) -> Option<String> {
        self.creds.users.get(user).map(|u| u.password_hash.clone())
    }

    pub fn logout(&mut self, session_id: &str) {
        self.sessions.remove(session_id);
    }

    /// Sets `user`'s password (creating the account with `role` if new). Other sessions of the
    /// user end; the one given in `keep` stays.
    pub fn set_password(
        &mut self,
        user: &str,
        password: &str,
        role: Option<Role>,
        keep: Option<&str>,
    ) -> Result<(), PasswordError> {
        check_password(user, password)?;
        self.set_password_hash(user, secret::hash_password(password), role, keep)
    }

    /// Like `set_password`, with the password already checked (`check_password`) and hashed
    /// (the server hashes through `hasher`, outside the lock).
    pub fn set_password_hash(
        &mut self,
        user: &str,
        password_hash: String,
        role: Option<Role>,
        keep: Option<&str>,
    ) -> Result<(), PasswordError> {
        let role = role
            .or_else(|| self.creds.users.get(user).map(|u| u.role))
            .unwrap_or(Role::Admin);
        self.creds.users.insert(
            user.into(),
            User {
                role,
                password_hash,
                must_change_password: false,
            },
        );
        self.save().map_err(PasswordError::File)?;
        self.sessions
            .retain(|id, s| s.user != user || Some(id.as_str()) == keep);
        Ok(())
    }

    /// Creates an API token; returns its record and the token itself (shown once).
    pub fn create_token(&mut self, name: &str, role: Role) -> Result<(ApiToken, String), String> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err("a token needs a name of 1 to 64 printable characters".into());
        }
        if self.creds.tokens.len() >= 100 {
            return Err("100 tokens exist already; revoke some first".into());
        }
        let token = format!("tapir_{}", secret::random_token());
        let record = ApiToken {
            id: secret::random_id(),
            name: name.into(),
            role,
            digest: secret::token_digest(&token),
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        self.creds.tokens.push(record.clone());
        self.save().map_err(|e| e.to_string())?;
        Ok((record, token))
    }

    /// Revokes a token by id; false if there is none.
    pub fn revoke_token(&mut self, id: &str) -> Result<bool, FileError> {
        let before = self.creds.tokens.len();
        self.creds.tokens.retain(|t| t.id != id);
        if self.creds.tokens.len() == before {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// Saves the IP-masking switch.
    pub fn set_ip_masking(&mut self, on: bool) -> Result<(), FileError> {
        self.creds.settings.ip_masking = Some(on);
        self.save()
    }

    /// Saves the notification targets added in the dashboard.
    pub fn set_notify_targets(
        &mut self,
        targets: Vec<crate::notify::NotifyTarget>,
    ) -> Result<(), FileError> {
        self.creds.settings.notify = targets;
        self.save()
    }

    /// Open sessions and throttled addresses (for /debug).
    pub fn counts(&self) -> (usize, usize) {
        (self.sessions.len(), self.throttle.tracked())
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }
}

/// A password that cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD} characters")]
    TooShort,
    #[error("the password is too long (at most {MAX_PASSWORD} bytes)")]
    TooLong,
    #[error("the password must not be the user name")]
    SameAsUser,
    #[error("a user name is 1 to 32 letters, digits, '.', '_' or '-'")]
    BadUser,
    #[error(transparent)]
    File(FileError),
}

pub fn check_password(user: &str, password: &str) -> Result<(), PasswordError> {
    let valid_user = !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_user {
        return Err(PasswordError::BadUser);
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD {
        return Err(PasswordError::TooLong);
    }
    if password.eq_ignore_ascii_case(user) {
        return Err(PasswordError::SameAsUser);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open(AuthConfig::default(), dir.path().join("auth.json")).unwrap();
        (dir, auth)
    }

    fn login(
        auth: &mut Auth,
        user: &str,
        password: &str,
        now: Instant,
    ) -> Result<NewSession, LoginError> {
        let hash = auth.login_begin(CLIENT, user, now)?;
        let ok = hash.is_some_and(|h| secret::verify_password(password, &h));
        auth.login_finish(CLIENT, user, ok, now)
    }

    #[test]
    fn first_start_makes_a_one_time_admin_password_that_must_be_changed() {
        let (_dir, mut auth) = auth();
        let now = Instant::now();
        let otp = auth.ensure_admin().unwrap().expect("a one-time password");
        let s = login(&mut auth, "admin", &otp, now).unwrap();
        assert!(s.must_change_password);
        assert!(auth.must_change_password("admin"));
        // Still unchanged at the next start: a new one replaces it.
        let otp2 = auth.ensure_admin().unwrap().expect("replaced");
        assert_ne!(otp, otp2);
        auth.set_password("admin", "a much better one", None, Some(&s.id))
            .unwrap();
        assert!(!auth.must_change_password("admin"));
        assert_eq!(auth.ensure_admin().unwrap(), None);
        // Reopened from the file: the password (not the session) survives.
        let mut again = Auth::open(AuthConfig::default(), auth.path().into()).unwrap();
        assert!(login(&mut again, "admin", "a much better one", now).is_ok());
        assert!(again.session(&s.id, now).is_none());
        let text = std::fs::read_to_string(auth.path()).unwrap();
        assert!(!text.contains("a much better one"));
    }

    #[test]
    fn sessions_expire_absolutely_and_when_idle_and_end_at_logout() {
        let (_dir, mut auth) = auth();
        auth.set_password("ops", "password-123", Some(Role::Viewer), None)
            .unwrap();
        let t0 = Instant::now();
        let s = login(&mut auth, "ops", "password-123", t0).unwrap();
        assert_eq!(s.role, Role::Viewer);
        let p = auth
            .session(&s.id, t0 + Duration::from_secs(59 * 60))
            .unwrap();
        assert_eq!(p.role, Role::Viewer);
        assert!(matches!(p.via, Via::Session { ref csrf, .. } if *csrf == s.csrf));
        // Used within each hour: alive until the 12-hour limit.
        let mut t = t0;
        for _ in 0..11 {
            t += Duration::from_secs(59 * 60);
            assert!(auth.session(&s.id, t).is_some());
        }
        assert!(
            auth.session(&s.id, t0 + Duration::from_secs(12 * 3600))
                .is_none()
        );
        // Idle for an hour: gone.
        let s = login(&mut auth, "ops", "password-123", t0).unwrap();
        assert!(
            auth.session(&s.id, t0 + Duration::from_secs(3600))
                .is_none()
        );
        let s = login(&mut auth, "ops", "password-123", t0).unwrap();
        auth.logout(&s.id);
        assert!(auth.session(&s.id, t0).is_none());
        assert!(auth.session("made-up", t0).is_none());
    }

    #[test]
    fn wrong_passwords_are_throttled_and_the_right_one_works_after_the_wait() {
        let (_dir, mut auth) = auth();
        auth.set_password("admin", "right password", None, None)
            .unwrap();
        let mut now = Instant::now();
        for i in 0..5 {
            assert_eq!(
                login(&mut auth, "admin", "wrong", now).unwrap_err(),
                LoginError::Invalid {
                    wait: Duration::ZERO
                },
                "attempt {i}"
            );
        }
        assert_eq!(
            login(&mut auth, "admin", "wrong", now).unwrap_err(),
            LoginError::Invalid {
                wait: Duration::from_secs(1)
            }
        );
        // Even the right password waits.
        assert!(matches!(
            login(&mut auth, "admin", "right password", now),
            Err(LoginError::Throttled(_))
        ));
        now += Duration::from_secs(1);
        assert!(login(&mut auth, "admin", "right password", now).is_ok());
        // Unknown users look the same as wrong passwords.
        assert!(matches!(
            login(&mut auth, "nobody", "right password", now),
            Err(LoginError::Invalid { .. })
        ));
    }

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_as_digests() {
        let (_dir, mut auth) = auth();
        let now = Instant::now();
        let (record, token) = auth.create_token("prometheus", Role::Viewer).unwrap();
        let p = auth.token(&token, now).unwrap();
        assert_eq!(p.role, Role::Viewer);
        assert_eq!(
            p.via,
            Via::Token {
                id: record.id.clone()
            }
        );
        assert!(auth.token("tapir_guess", now).is_none());
        assert!(
            !std::fs::read_to_string(auth.path())
                .unwrap()
                .contains(&token)
        );
        assert!(auth.revoke_token(&record.id).unwrap());
        assert!(!auth.revoke_token(&record.id).unwrap());
        assert!(auth.token(&token, now).is_none());
        assert!(auth.create_token("  ", Role::Admin).is_err());
    }

    #[test]
    fn passwords_are_checked_and_changes_from_the_command_line_are_picked_up() {
        let (_dir, mut auth) = auth();
        assert!(matches!(
            auth.set_password("admin", "short", None, None),
            Err(PasswordError::TooShort)
        ));
        assert!(matches!(
            auth.set_password("bad user", "long enough", None, None),
            Err(PasswordError::BadUser)
        ));
        // Another process (tapir passwd) writes the file.
        let mut cli = Auth::open(AuthConfig::default(), auth.path().into()).unwrap();
        cli.set_password("admin", "from the cli", None, None)
            .unwrap();
        let later = Instant::now() + RELOAD_EVERY;
        assert!(auth.login_begin(CLIENT, "admin", later).unwrap().is_some());
    }
}
