//! Access decisions, as pure functions of the request: which `Host` names this server, whether a
//! request comes from one of its own pages, and whether the principal its credentials name
//! may use a route. The lookup of credentials and the account endpoints are in `account`.

use std::net::IpAddr;

use serde_json::{Value, json};
use tiny_http::Request;

use super::route::{Access, ApiError, Route};
use crate::auth::{Principal, Role, Via, secret};

/// The session cookie's name: with the `__Host-` prefix under TLS, which browsers accept
/// only with `Secure`, `Path=/` and no domain.
pub(super) const COOKIE: &str = "tapir_session";
pub(super) const COOKIE_TLS: &str = "__Host-tapir_session";

/// What the access checks need from a request's headers.
#[derive(Clone, Debug, Default)]
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
    pub(super) fn same_origin(&self) -> bool {
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

    pub(super) fn client(&self) -> IpAddr {
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

pub(super) fn unauthorized(error: &str) -> ApiError {
    let mut e = ApiError::new(
        401,
        error,
        json!({"login": "POST /auth/login", "token": "Authorization: Bearer <token>"}),
    );
    e.headers
        .push(("WWW-Authenticate", "Bearer realm=\"tapir\"".into()));
    e
}

pub(super) fn forbidden(error: &str, detail: Value) -> ApiError {
    ApiError::new(403, error, detail)
}

pub(super) fn auth_off() -> ApiError {
    ApiError::new(
        409,
        "authentication is off on this server",
        json!({"why": "tapir demo on a loopback address runs without a password"}),
    )
}

/// What the account book made of a request's credentials.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Login is off (the demo on loopback): everyone is an admin.
    LoginOff,
    /// The session or token, looked up: whom it names (`None`: nobody, or none was sent) and
    /// whether that user must still replace a one-time password.
    Checked {
        principal: Option<Principal>,
        must_change_password: bool,
    },
}

/// Whether a request may use `route`, and as whom. `Ok(None)`: a public route asked
/// anonymously. The order of the checks is the order of the answers a client sees: a wrong
/// host or another site first, then missing or stale credentials, then a session's CSRF
/// token and one-time password, then the role.
pub fn decide(
    info: &RequestInfo,
    route: &Route,
    hosts: &Hosts,
    credentials: Credentials,
) -> Result<Option<Principal>, ApiError> {
    check_site(info, route, hosts)?;
    let (principal, must_change) = match credentials {
        Credentials::LoginOff => {
            return Ok(Some(Principal {
                user: "anonymous".into(),
                role: Role::Admin,
                via: Via::Open,
            }));
        }
        Credentials::Checked {
            principal,
            must_change_password,
        } => (principal, must_change_password),
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
        if route.changes_state() && !info.csrf.as_deref().is_some_and(|c| secret::equal(c, csrf)) {
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
pub fn check_site(info: &RequestInfo, route: &Route, hosts: &Hosts) -> Result<(), ApiError> {
    if !hosts.allows(info.host.as_deref()) {
        return Err(misdirected(info));
    }
    let browser_stream = matches!(route, Route::WebSocket(_));
    if (route.changes_state() || browser_stream || *route == Route::Login) && !info.same_origin() {
        return Err(forbidden(
            "cross-site request refused",
            json!({"origin": info.origin, "host": info.host}),
        ));
    }
    Ok(())
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

    fn session(role: Role) -> Principal {
        Principal {
            user: "ana".into(),
            role,
            via: Via::Session {
                id: "s".into(),
                csrf: "c".into(),
            },
        }
    }

    fn checked(principal: Option<Principal>, must_change_password: bool) -> Credentials {
        Credentials::Checked {
            principal,
            must_change_password,
        }
    }

    /// The status and error sentence `decide` gives, or the user it lets through.
    fn outcome(info: &RequestInfo, route: Route, credentials: Credentials) -> String {
        let hosts = Hosts::new(None, &[]);
        match decide(info, &route, &hosts, credentials) {
            Ok(Some(p)) => format!("ok {} {}", p.user, p.role.name()),
            Ok(None) => "ok anonymous".into(),
            Err(e) => format!("{} {}", e.status, e.error),
        }
    }

    #[test]
    fn access_decisions_follow_the_published_roles() {
        let local = RequestInfo {
            host: Some("127.0.0.1:8000".into()),
            ..RequestInfo::default()
        };
        let with_session = RequestInfo {
            session: Some("s".into()),
            ..local.clone()
        };
        let with_csrf = RequestInfo {
            csrf: Some("c".into()),
            ..with_session.clone()
        };
        let cross_site = RequestInfo {
            origin: Some("http://evil.example".into()),
            ..with_csrf.clone()
        };
        let rebound = RequestInfo {
            host: Some("evil.example".into()),
            ..local.clone()
        };
        let ack = || Route::Acknowledge(super::super::route::AckTarget::Id(1));
        let table = [
            // Public routes need nobody; everything else needs a login.
            (
                outcome(&local, Route::Health, checked(None, false)),
                "ok anonymous",
            ),
            (
                outcome(&local, Route::Stats, checked(None, false)),
                "401 log in first, or send an API token",
            ),
            (
                outcome(&with_session, Route::Stats, checked(None, false)),
                "401 the session has expired; log in again",
            ),
            // A viewer reads but changes nothing; an admin's session needs its CSRF token.
            (
                outcome(
                    &with_session,
                    Route::Stats,
                    checked(Some(session(Role::Viewer)), false),
                ),
                "ok ana viewer",
            ),
            (
                outcome(
                    &with_csrf,
                    ack(),
                    checked(Some(session(Role::Viewer)), false),
                ),
                "403 this needs an admin; viewers can look but not change anything",
            ),
            (
                outcome(
                    &with_session,
                    ack(),
                    checked(Some(session(Role::Admin)), false),
                ),
                "403 missing or wrong CSRF token",
            ),
            (
                outcome(
                    &with_csrf,
                    ack(),
                    checked(Some(session(Role::Admin)), false),
                ),
                "ok ana admin",
            ),
            // Another site's page is refused, logged in or not, login on or off.
            (
                outcome(
                    &cross_site,
                    ack(),
                    checked(Some(session(Role::Admin)), false),
                ),
                "403 cross-site request refused",
            ),
            (
                outcome(&cross_site, ack(), Credentials::LoginOff),
                "403 cross-site request refused",
            ),
            (
                outcome(&rebound, Route::Stats, Credentials::LoginOff)
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string(),
                "421",
            ),
            // A one-time password must be replaced before anything else.
            (
                outcome(
                    &with_session,
                    Route::Stats,
                    checked(Some(session(Role::Admin)), true),
                ),
                "403 change the one-time password first",
            ),
            (
                outcome(
                    &with_csrf,
                    Route::ChangePassword,
                    checked(Some(session(Role::Admin)), true),
                ),
                "ok ana admin",
            ),
            // Login off (the demo on loopback): everyone is an admin.
            (
                outcome(&local, ack(), Credentials::LoginOff),
                "ok anonymous admin",
            ),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
        }
    }
}
