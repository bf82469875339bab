//! Access control in the API: who is asking (session cookie or bearer token), whether they
//! may, and the login, password, token and settings endpoints.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tiny_http::Request;

use super::api::{Api, Reply};
use super::route::{Access, ApiError, Route};
use crate::auth::{LoginError, Principal, Role, Via, hasher, secret};

/// The session cookie's name: with the `__Host-` prefix under TLS, which browsers accept
/// only with `Secure`, `Path=/` and no domain.
const COOKIE: &str = "tapir_session";
const COOKIE_TLS: &str = "__Host-tapir_session";

/// What the access checks need from a request's headers.
#[derive(Debug, Default)]
pub struct RequestInfo {
    /// The client's address, as the gate saw it.
    pub peer: Option<IpAddr>,
    pub tls: bool,
    pub session: Option<String>,
    pub bearer: Option<String>,
    pub csrf: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    /// `Sec-Fetch-Site`: browsers say whether a request comes from another site.
    pub fetch_site: Option<String>,
    pub json_body: bool,
    /// The gate asks whether an upload may start (before reading its body).
    pub preflight: bool,
    /// The file the gate spooled an upload's body to (a name in the upload directory).
    pub spool: Option<String>,
}

impl RequestInfo {
    pub fn of(request: &Request) -> RequestInfo {
        let mut info = RequestInfo::default();
        for h in request.headers() {
            let value = h.value.as_str();
            if h.field.equiv("X-Tapir-Peer") {
                info.peer = value.parse().ok();
            } else if h.field.equiv("X-Tapir-Tls") {
                info.tls = value == "1";
            } else if h.field.equiv("Authorization") {
                let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
                if scheme.eq_ignore_ascii_case("bearer") {
                    info.bearer = Some(token.trim().to_string());
                }
            } else if h.field.equiv("Cookie") {
                for pair in value.split(';') {
                    if let Some((name, v)) = pair.trim().split_once('=')
                        && (name == COOKIE || name == COOKIE_TLS)
                    {
                        info.session = Some(v.to_string());
                    }
                }
            } else if h.field.equiv("X-CSRF-Token") {
                info.csrf = Some(value.to_string());
            } else if h.field.equiv("Origin") {
                info.origin = Some(value.to_string());
            } else if h.field.equiv("Host") {
                info.host = Some(value.to_string());
            } else if h.field.equiv("Sec-Fetch-Site") {
                info.fetch_site = Some(value.to_ascii_lowercase());
            } else if h.field.equiv("X-Tapir-Preflight") {
                info.preflight = value == "1";
            } else if h.field.equiv("X-Tapir-Spool") {
                info.spool = Some(value.to_string());
            } else if h.field.equiv("Content-Type") {
                info.json_body = value
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
            }
        }
        info
    }

    /// A browser's request from a page of this server (or no browser at all: no `Origin`
    /// and no `Sec-Fetch-Site`).
    fn same_origin(&self) -> bool {
        if self
            .fetch_site
            .as_deref()
            .is_some_and(|s| s == "cross-site" || s == "same-site")
        {
            return false;
        }
        let Some(origin) = &self.origin else {
            return true;
        };
        let origin = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        self.host
            .as_deref()
            .is_some_and(|host| host.eq_ignore_ascii_case(origin))
    }

    fn client(&self) -> IpAddr {
        // Requests come through the gate, which always says; the fallback is only for a
        // request that did not (it then shares one throttle with every such request).
        self.peer
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }
}

/// The names this server answers to in `Host`. A browser page on another name that resolves
/// to this server (DNS rebinding) sends its own name, and is refused: only IP addresses,
/// `localhost`, this machine's host name (and `<name>.local`), the host of `public_url` and
/// `allowed_hosts` pass.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    pub fn new(public_url: Option<&str>, allowed: &[String]) -> Hosts {
        let mut names: Vec<String> = vec!["localhost".into()];
        if let Some(host) = machine_name() {
            names.push(format!("{host}.local"));
            names.push(host);
        }
        names.extend(public_url.and_then(url_host));
        names.extend(allowed.iter().cloned());
        for n in &mut names {
            n.make_ascii_lowercase();
            n.truncate(n.trim_end_matches('.').len());
        }
        Hosts { names }
    }

    /// Whether a `Host` header names this server (no header: not a browser, allowed).
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = strip_port(host);
        if name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
        {
            return true;
        }
        let name = name.trim_end_matches('.');
        let localhost = name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost");
        localhost || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The host of an `http://` or `https://` URL, lowercase, without port or path.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = strip_port(authority.rsplit('@').next()?);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `name:port` → `name`; `[v6]:port` → `[v6]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// This machine's host name.
fn machine_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are passed together.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// A `Host` this server does not answer to.
pub(super) fn misdirected(info: &RequestInfo) -> ApiError {
    ApiError::new(
        421,
        "this server does not answer to that host name",
        json!({"host": info.host, "fix": "add the name to [server] allowed_hosts or public_url"}),
    )
}

fn unauthorized(error: &str) -> ApiError {
    let mut e = ApiError::new(
        401,
        error,
        json!({"login": "POST /auth/login", "token": "Authorization: Bearer <token>"}),
    );
    e.headers
        .push(("WWW-Authenticate", "Bearer realm=\"tapir\"".into()));
    e
}

fn forbidden(error: &str, detail: Value) -> ApiError {
    ApiError::new(403, error, detail)
}

fn auth_off() -> ApiError {
    ApiError::new(
        409,
        "authentication is off on this server",
        json!({"why": "tapir demo on a loopback address runs without a password"}),
    )
}

/// A request's turn to hash a password. At most one fewer than the HTTP workers hold one at
/// once, so that a flood of logins (each waits for its hash on a worker) always leaves a
/// worker for everything else; past that a login is refused at once.
struct HashingSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for HashingSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Api {
    fn hashing_slot(&self) -> Result<HashingSlot<'_>, ApiError> {
        let most = self.config.workers.saturating_sub(1).max(1);
        let taken = self.hashing.fetch_add(1, Ordering::Relaxed);
        let slot = HashingSlot(&self.hashing);
        if taken >= most {
            return Err(hashing_busy());
        }
        Ok(slot)
    }
}

/// Every password-hashing thread is busy and its queue is full.
fn hashing_busy() -> ApiError {
    retry_after(
        ApiError::new(
            503,
            "too many logins at once; try again in a moment",
            json!({"hashing_threads": hasher::THREADS}),
        ),
        Duration::from_secs(1),
    )
}

fn parse_body<T: for<'de> Deserialize<'de>>(
    info: &RequestInfo,
    body: &[u8],
) -> Result<T, ApiError> {
    if !info.json_body {
        // Also keeps other sites' plain HTML forms out: they cannot send this type.
        return Err(ApiError::new(
            415,
            "send the request body as JSON (Content-Type: application/json)",
            Value::Null,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "the request body is not the expected JSON",
            json!(e.to_string()),
        )
    })
}

fn retry_after(mut e: ApiError, wait: Duration) -> ApiError {
    e.headers.push((
        "Retry-After",
        wait.as_secs_f64().ceil().max(1.0).to_string(),
    ));
    e
}

impl Api {
    /// Who is asking, and whether they may use `route`. `Ok(None)`: a public route asked
    /// anonymously.
    pub(super) fn authorize(
        &self,
        info: &RequestInfo,
        route: &Route,
    ) -> Result<Option<Principal>, ApiError> {
        self.check_site(info, route)?;
        let Some(auth) = &self.auth else {
            return Ok(Some(Principal {
                user: "anonymous".into(),
                role: Role::Admin,
                via: Via::Open,
            }));
        };
        let now = Instant::now();
        let (principal, must_change) = {
            let mut auth = auth.lock().expect("auth lock");
            let p = match (&info.bearer, &info.session) {
                (Some(token), _) => auth.token(token, now),
                (None, Some(id)) => auth.session(id, now),
                (None, None) => None,
            };
            let must_change = p
                .as_ref()
                .is_some_and(|p| auth.must_change_password(&p.user));
            (p, must_change)
        };
        let access = route.access();
        let Some(p) = principal else {
            return match (access, &info.bearer, &info.session) {
                (Access::Public, _, _) => Ok(None),
                (_, Some(_), _) => Err(unauthorized("the API token is not valid (revoked?)")),
                (_, None, Some(_)) => Err(unauthorized("the session has expired; log in again")),
                _ => Err(unauthorized("log in first, or send an API token")),
            };
        };
        if let Via::Session { csrf, .. } = &p.via {
            // A browser session reads nothing for another site's page either.
            if !info.same_origin() {
                return Err(forbidden(
                    "cross-site request refused",
                    json!({"origin": info.origin, "host": info.host}),
                ));
            }
            if route.changes_state()
                && !info.csrf.as_deref().is_some_and(|c| secret::equal(c, csrf))
            {
                return Err(forbidden(
                    "missing or wrong CSRF token",
                    json!({"header": "X-CSRF-Token", "from": "GET /auth/session"}),
                ));
            }
            if must_change && matches!(access, Access::Read | Access::Admin) {
                return Err(forbidden(
                    "change the one-time password first",
                    json!({"endpoint": "POST /auth/password"}),
                ));
            }
        }
        if access == Access::Admin && p.role != Role::Admin {
            return Err(forbidden(
                "this needs an admin; viewers can look but not change anything",
                json!({"role": p.role.name()}),
            ));
        }
        Ok(Some(p))
    }

    /// Refuses a `Host` this server does not answer to (DNS rebinding) and, for requests that
    /// change something, a page of another site (with login on or off).
    pub(super) fn check_site(&self, info: &RequestInfo, route: &Route) -> Result<(), ApiError> {
        if !self.hosts.allows(info.host.as_deref()) {
            return Err(misdirected(info));
        }
        let browser_stream = matches!(route, Route::WebSocket(_));
        if (route.changes_state() || browser_stream || *route == Route::Login)
            && !info.same_origin()
        {
            return Err(forbidden(
                "cross-site request refused",
                json!({"origin": info.origin, "host": info.host}),
            ));
        }
        Ok(())
    }

    /// Whether a WebSocket opened by `principal` may go on (its session still open).
    pub(super) fn stream_allowed(
        &self,
        principal: &Principal,
    ) -> impl Fn() -> bool + Send + 'static {
        let session = match (&principal.via, &self.auth) {
            (Via::Session { id, .. }, Some(_)) => Some(id.clone()),
            _ => None,
        };
        let auth = self.auth.clone();
        move || match (&session, &auth) {
            (Some(id), Some(auth)) => auth
                .lock()
                .expect("auth lock")
                .session_open(id, Instant::now()),
            _ => true,
        }
    }

    /// The access endpoints.
    pub(super) fn access_route(
        &self,
        route: &Route,
        info: &RequestInfo,
        principal: Option<&Principal>,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        match route {
            Route::Login => self.login(info, body),
            Route::Logout => {
                if let (
                    Some(auth),
                    Some(Principal {
                        via: Via::Session { id, .. },
                        ..
                    }),
                ) = (&self.auth, principal)
                {
                    auth.lock().expect("auth lock").logout(id);
                }
                let mut reply = Reply::ok(json!({"success": true}))?;
                reply.headers.push(("Set-Cookie", self.cookie(info, "", 0)));
                Ok(reply)
            }
            Route::Session => Reply::ok(self.session_view(principal)),
            Route::ChangePassword => self.change_password(info, principal, body),
            Route::ListTokens => {
                let auth = self.auth.as_ref().ok_or_else(auth_off)?;
                let auth = auth.lock().expect("auth lock");
                let tokens: Vec<Value> = auth
                    .credentials()
                    .tokens
                    .iter()
                    .map(|t| json!({"id": t.id, "name": t.name, "role": t.role, "created": t.created}))
                    .collect();
                Reply::ok(json!({ "tokens": tokens }))
            }
            Route::CreateToken => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Create {
                    name: String,
                    #[serde(default = "viewer")]
                    role: Role,
                }
                fn viewer() -> Role {
                    Role::Viewer
                }
                let auth = self.auth.as_ref().ok_or_else(auth_off)?;
                let c: Create = parse_body(info, body)?;
                let (record, token) = auth
                    .lock()
                    .expect("auth lock")
                    .create_token(&c.name, c.role)
                    .map_err(|e| ApiError::bad_request(e, Value::Null))?;
                let mut reply = Reply::ok(json!({
                    "id": record.id, "name": record.name, "role": record.role,
                    "created": record.created, "token": token,
                    "note": "shown once: store it now",
                }))?;
                reply.status = 201;
                Ok(reply)
            }
            Route::RevokeToken { id } => {
                let auth = self.auth.as_ref().ok_or_else(auth_off)?;
                let revoked = auth
                    .lock()
                    .expect("auth lock")
                    .revoke_token(id)
                    .map_err(|e| {
                        ApiError::new(500, "the token could not be revoked", json!(e.to_string()))
                    })?;
                if revoked {
                    Reply::ok(json!({"success": true}))
                } else {
                    Err(ApiError::new(
                        404,
                        "no token with this id",
                        json!({"id": id}),
                    ))
                }
            }
            Route::Settings => Reply::ok(self.settings_view()),
            Route::UpdateSettings => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Update {
                    ip_masking: bool,
                }
                let u: Update = parse_body(info, body)?;
                if let Some(auth) = &self.auth {
                    auth.lock()
                        .expect("auth lock")
                        .set_ip_masking(u.ip_masking)
                        .map_err(|e| {
                            ApiError::new(
                                500,
                                "the setting could not be saved",
                                json!(e.to_string()),
                            )
                        })?;
                }
                self.ip_masking.store(u.ip_masking, Ordering::Relaxed);
                Reply::ok(self.settings_view())
            }
            _ => unreachable!("not an access route"),
        }
    }

    fn cookie(&self, info: &RequestInfo, value: &str, max_age: u64) -> String {
        if info.tls {
            format!(
                "{COOKIE_TLS}={value}; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age={max_age}"
            )
        } else {
            format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}")
        }
    }

    fn login(&self, info: &RequestInfo, body: &[u8]) -> Result<Reply, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Login {
            #[serde(default = "admin")]
            username: String,
            password: String,
        }
        fn admin() -> String {
            "admin".into()
        }
        let auth = self.auth.as_ref().ok_or_else(auth_off)?;
        if !info.same_origin() {
            return Err(forbidden(
                "cross-site login refused",
                json!({"origin": info.origin}),
            ));
        }
        let l: Login = parse_body(info, body)?;
        let client = info.client();
        let hash =
            match auth
                .lock()
                .expect("auth lock")
                .login_begin(client, &l.username, Instant::now())
            {
                Ok(h) => h,
                Err(LoginError::Throttled(wait)) => return Err(throttled(wait)),
                Err(LoginError::Invalid { .. }) => unreachable!("begin only throttles"),
            };
        // Argon2 runs outside the lock, on the hashing threads (an unknown user is checked
        // against a decoy, so that it takes as long as a wrong password).
        let slot = self.hashing_slot()?;
        let ok = hasher::global()
            .verify(&l.password, hash.as_deref())
            .map_err(|_| hashing_busy())?;
        drop(slot);
        let outcome =
            auth.lock()
                .expect("auth lock")
                .login_finish(client, &l.username, ok, Instant::now());
        match outcome {
            Ok(s) => {
                let mut reply = Reply::ok(json!({
                    "user": s.user,
                    "role": s.role,
                    "csrf_token": s.csrf,
                    "must_change_password": s.must_change_password,
                    "expires_in": s.lifetime.as_secs(),
                }))?;
                reply
                    .headers
                    .push(("Set-Cookie", self.cookie(info, &s.id, s.lifetime.as_secs())));
                Ok(reply)
            }
            Err(LoginError::Invalid { wait }) => {
                let e = unauthorized("wrong user name or password");
                Err(if wait.is_zero() {
                    e
                } else {
                    retry_after(e, wait)
                })
            }
            Err(LoginError::Throttled(wait)) => Err(throttled(wait)),
        }
    }

    fn change_password(
        &self,
        info: &RequestInfo,
        principal: Option<&Principal>,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Change {
            current_password: String,
            new_password: String,
        }
        let auth = self.auth.as_ref().ok_or_else(auth_off)?;
        let Some(Principal {
            user,
            via: Via::Session { id, .. },
            ..
        }) = principal
        else {
            return Err(ApiError::bad_request(
                "passwords are changed from a logged-in session (tokens have none)",
                Value::Null,
            ));
        };
        let c: Change = parse_body(info, body)?;
        let client = info.client();
        let hash = match auth
            .lock()
            .expect("auth lock")
            .login_begin(client, user, Instant::now())
        {
            Ok(h) => h,
            Err(LoginError::Throttled(wait)) => return Err(throttled(wait)),
            Err(LoginError::Invalid { .. }) => unreachable!("begin only throttles"),
        };
        let slot = self.hashing_slot()?;
        let ok = hasher::global()
            .verify(&c.current_password, hash.as_deref())
            .map_err(|_| hashing_busy())?;
        if !ok {
            let _ =
                auth.lock()
                    .expect("auth lock")
                    .login_finish(client, user, false, Instant::now());
            return Err(forbidden("the current password is wrong", Value::Null));
        }
        if c.new_password == c.current_password {
            return Err(ApiError::bad_request(
                "choose a password different from the current one",
                Value::Null,
            ));
        }
        let weak = |e: crate::auth::PasswordError| {
            ApiError::bad_request(
                e.to_string(),
                json!({"min_length": crate::auth::MIN_PASSWORD}),
            )
        };
        crate::auth::check_password(user, &c.new_password).map_err(weak)?;
        let new_hash = hasher::global()
            .hash(&c.new_password)
            .map_err(|_| hashing_busy())?;
        drop(slot);
        auth.lock()
            .expect("auth lock")
            .set_password_hash(user, new_hash, None, Some(id))
            .map_err(weak)?;
        Reply::ok(json!({"success": true}))
    }

    fn session_view(&self, principal: Option<&Principal>) -> Value {
        let Some(p) = principal else {
            return json!({"auth_enabled": true, "authenticated": false});
        };
        let (via, csrf) = match &p.via {
            Via::Session { csrf, .. } => ("session", Some(csrf.clone())),
            Via::Token { .. } => ("token", None),
            Via::Open => ("open", None),
        };
        let must_change = self
            .auth
            .as_ref()
            .is_some_and(|a| a.lock().expect("auth lock").must_change_password(&p.user));
        json!({
            "auth_enabled": self.auth.is_some(),
            "authenticated": true,
            "user": p.user,
            "role": p.role,
            "via": via,
            "csrf_token": csrf,
            "must_change_password": must_change && via == "session",
        })
    }

    /// What the settings page shows: privacy, retention, access and TLS.
    pub(super) fn settings_view(&self) -> Value {
        let s = &self.store_config;
        let auth = self.auth.as_ref().map(|a| {
            let a = a.lock().expect("auth lock");
            let c = a.config();
            let (sessions, throttled) = a.counts();
            json!({
                "session_hours": c.session_hours,
                "idle_minutes": c.idle_minutes,
                "login_free_attempts": c.login_free_attempts,
                "login_max_delay_secs": c.login_max_delay_secs,
                "users": a.credentials().users.iter().map(|(name, u)| json!({"name": name, "role": u.role})).collect::<Vec<_>>(),
                "tokens": a.credentials().tokens.len(),
                "open_sessions": sessions,
                "throttled_addresses": throttled,
            })
        });
        json!({
            "privacy": {
                "ip_masking": self.ip_masking.load(Ordering::Relaxed),
                "payload_inspection": false,
                "payload_note": "tapir reads packet headers and DNS question names only; no other payload bytes are kept or shown",
            },
            "retention": {
                "flows_days": s.flows_retention_days,
                "alerts_days": s.alerts_retention_days,
                "snapshots_days": s.snapshots_retention_days,
                "max_disk_mb": s.max_disk_mb,
                "note": "older records are deleted first; the oldest flows also go when the database reaches max_disk_mb",
            },
            "auth": auth,
            "tls": self.tls_fingerprint.as_ref().map(|f| json!({"fingerprint_sha256": f})),
        })
    }
}

fn throttled(wait: Duration) -> ApiError {
    retry_after(
        ApiError::new(
            429,
            "too many wrong passwords from this address; wait and try again",
            json!({"retry_after_secs": wait.as_secs_f64().ceil()}),
        ),
        wait,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_this_server_pass_as_host() {
        let hosts = Hosts::new(
            Some("https://Tapir.Example.net:8443/dashboard"),
            &["tap.lan".into()],
        );
        for ok in [
            "127.0.0.1:8000",
            "192.0.2.7",
            "[::1]:8000",
            "[fe80::1]",
            "localhost:8000",
            "app.localhost",
            "tapir.example.net",
            "TAPIR.example.NET:443",
            "tap.lan.",
        ] {
            assert!(hosts.allows(Some(ok)), "{ok}");
        }
        for rebound in [
            "evil.example",
            "evil.example:8000",
            "tapir.example.net.evil.example",
            "127.0.0.1.nip.io",
            "lan",
            "",
        ] {
            assert!(!hosts.allows(Some(rebound)), "{rebound}");
        }
        // No Host at all: not a browser (HTTP/1.0 tools), allowed.
        assert!(hosts.allows(None));
        if let Some(name) = machine_name() {
            assert!(hosts.allows(Some(&format!("{name}:8000"))));
            assert!(hosts.allows(Some(&format!("{name}.local"))));
        }
    }

    #[test]
    fn public_urls_give_their_host() {
        assert_eq!(url_host("https://a.b:1/x?y").as_deref(), Some("a.b"));
        assert_eq!(
            url_host("http://user@[::1]:8000/").as_deref(),
            Some("[::1]")
        );
        assert_eq!(url_host("ftp://a.b"), None);
        assert_eq!(url_host("https://"), None);
    }

    #[test]
    fn requests_from_other_sites_are_told_apart_from_our_own_pages() {
        let info = |origin: Option<&str>, site: Option<&str>| RequestInfo {
            host: Some("127.0.0.1:8000".into()),
            origin: origin.map(Into::into),
            fetch_site: site.map(Into::into),
            ..RequestInfo::default()
        };
        assert!(info(None, None).same_origin());
        assert!(info(Some("http://127.0.0.1:8000"), Some("same-origin")).same_origin());
        assert!(!info(Some("http://evil.example"), None).same_origin());
        assert!(!info(Some("http://127.0.0.1:9000"), None).same_origin());
        assert!(!info(None, Some("cross-site")).same_origin());
        assert!(!info(None, Some("same-site")).same_origin());
        assert!(info(None, Some("none")).same_origin());
    }
}
