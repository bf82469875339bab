//! The account endpoints: login, logout, session, password, API tokens and settings, and the
//! lookup of a request's credentials that `access::decide` judges.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{
    self, COOKIE, COOKIE_TLS, Credentials, RequestInfo, auth_off, forbidden, unauthorized,
};
use super::api::Api;
use super::reply::Reply;
use super::route::{ApiError, Route};
use crate::auth::{LoginError, Principal, Role, Via, hasher};

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

pub(super) fn parse_body<T: for<'de> Deserialize<'de>>(
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
    /// Who is asking, and whether they may use `route` (`access::decide` on what the
    /// account book knows of the request's credentials). `Ok(None)`: a public route asked
    /// anonymously.
    pub(super) fn authorize(
        &self,
        info: &RequestInfo,
        route: &Route,
    ) -> Result<Option<Principal>, ApiError> {
        let credentials = match &self.auth {
            None => Credentials::LoginOff,
            Some(auth) => {
                let now = Instant::now();
                let mut auth = auth.lock().expect("auth lock");
                let principal = match (&info.bearer, &info.session) {
                    (Some(token), _) => auth.token(token, now),
                    (None, Some(id)) => auth.session(id, now),
                    (None, None) => None,
                };
                let must_change_password = principal
                    .as_ref()
                    .is_some_and(|p| auth.must_change_password(&p.user));
                Credentials::Checked {
                    principal,
                    must_change_password,
                }
            }
        };
        access::decide(info, route, &self.hosts, credentials)
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
    fn settings_view(&self) -> Value {
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
                "payload_note": "tapir reads packet headers, DNS questions and answers, TLS and QUIC ClientHellos, the ServerHello's version and cipher, and HTTP requests' Host and User-Agent; no other payload bytes are kept or shown",
                "names_note": "IP masking hides addresses, not names: server names, applications and User-Agents stay visible ([privacy] names = false turns naming off)",
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
            "notify": self.notify_view()["targets"],
            "intel": self.intel_view()["lists"],
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
