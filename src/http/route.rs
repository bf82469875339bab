//! Requests as values: the method and URL of a request parsed into a `Route` with typed,
//! checked parameters, or an `ApiError` that says what was wrong. No I/O here.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Value, json};

use crate::alert::AlertQuery;
use crate::devices::view::{DeviceQuery, DeviceSort};
use crate::flow::FlowQuery;
use crate::packet::MacAddr;
use crate::store::rollup::{By, HistoryQuery, Metric, OTHER};

/// The published limits' defaults and the largest accepted values.
pub const DEFAULT_LIMIT: usize = 100;
pub const DEFAULT_TALKERS: usize = 50;
pub const MAX_LIMIT: usize = 10_000;
pub const MAX_TALKERS: usize = 1_000;

/// Which WebSocket stream a client wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Metrics,
    Alerts,
    Flows,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Metrics, Stream::Alerts, Stream::Flows];

    pub fn name(self) -> &'static str {
        match self {
            Stream::Metrics => "metrics",
            Stream::Alerts => "alerts",
            Stream::Flows => "flows",
        }
    }
}

/// How an alert to acknowledge is named.
#[derive(Clone, Debug, PartialEq)]
pub enum AckTarget {
    Id(u64),
    /// The published form: first timestamp and source address.
    Matching {
        timestamp: f64,
        source_ip: String,
    },
}

/// Every endpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Stats,
    TopTalkers {
        limit: usize,
        with_geo: bool,
    },
    /// `/flows`: its parameters parse straight into the store's (and flow table's) query.
    Flows(FlowQuery),
    History(HistoryQuery),
    /// One host over a range: its history, peers and protocols (`from`/`to` as in history).
    Host {
        ip: IpAddr,
        from: Option<i64>,
        to: Option<i64>,
    },
    /// What the traffic's DNS answers named an address (`/names?ip=`).
    Names {
        ip: IpAddr,
    },
    /// Bytes, flows and hosts per application and category over the live window.
    Apps,
    /// The device inventory, as a query selects it.
    Devices(DeviceQuery),
    /// One device, with its recent flows and alerts.
    Device {
        mac: MacAddr,
    },
    /// An admin's label and "known" mark for a device (JSON body).
    AnnotateDevice {
        mac: MacAddr,
    },
    /// `/alerts`, likewise.
    Alerts(AlertQuery),
    Acknowledge(AckTarget),
    Packets {
        limit: usize,
    },
    Packet {
        id: u64,
    },
    Geo {
        ip: IpAddr,
    },
    Upload,
    StopReplay,
    Debug,
    Metrics,
    Health,
    WebSocket(Stream),
    Login,
    Logout,
    Session,
    ChangePassword,
    ListTokens,
    CreateToken,
    RevokeToken {
        id: String,
    },
    Settings,
    UpdateSettings,
    /// The threat lists: source, entries, age, errors.
    Intel,
    /// Read every list again now.
    ReloadIntel,
    /// The notification targets (secrets as set/unset) and their counters.
    Notify,
    /// Send a test message to one target (`{"target": name}`) and report its answer.
    NotifyTest,
    /// Add or change a target kept in the credentials file (JSON body: the target).
    SaveNotifyTarget,
    /// Remove a target added in the dashboard.
    DeleteNotifyTarget {
        name: String,
    },
}

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the health check, logging in, asking whether one is logged in.
    Public,
    /// Any logged-in user or token, even one whose password must still be changed.
    Account,
    /// Any logged-in user or token (admin or viewer).
    Read,
    /// Admins only.
    Admin,
}

impl Route {
    /// Who may use this route. Exhaustive on purpose: a new route must say.
    pub fn access(&self) -> Access {
        match self {
            Route::Health | Route::Login | Route::Session => Access::Public,
            Route::Logout | Route::ChangePassword => Access::Account,
            Route::Stats
            | Route::TopTalkers { .. }
            | Route::Flows(_)
            | Route::History(_)
            | Route::Host { .. }
            | Route::Names { .. }
            | Route::Apps
            | Route::Devices(_)
            | Route::Device { .. }
            | Route::Alerts(_)
            | Route::Packets { .. }
            | Route::Packet { .. }
            | Route::Geo { .. }
            | Route::Debug
            | Route::Metrics
            | Route::WebSocket(_)
            | Route::Settings
            | Route::Intel
            | Route::Notify => Access::Read,
            Route::Acknowledge(_)
            | Route::Upload
            | Route::StopReplay
            | Route::ListTokens
            | Route::CreateToken
            | Route::RevokeToken { .. }
            | Route::AnnotateDevice { .. }
            | Route::UpdateSettings
            | Route::ReloadIntel
            | Route::NotifyTest
            | Route::SaveNotifyTarget
            | Route::DeleteNotifyTarget { .. } => Access::Admin,
        }
    }

    /// Whether the route changes state (and so, from a browser, needs the CSRF token).
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Route::Acknowledge(_)
                | Route::Upload
                | Route::StopReplay
                | Route::Logout
                | Route::ChangePassword
                | Route::CreateToken
                | Route::RevokeToken { .. }
                | Route::AnnotateDevice { .. }
                | Route::UpdateSettings
                | Route::ReloadIntel
                | Route::NotifyTest
                | Route::SaveNotifyTarget
                | Route::DeleteNotifyTarget { .. }
        )
    }

    /// Whether the route reads a JSON request body.
    pub fn takes_json(&self) -> bool {
        matches!(
            self,
            Route::Login
                | Route::ChangePassword
                | Route::CreateToken
                | Route::UpdateSettings
                | Route::AnnotateDevice { .. }
                | Route::NotifyTest
                | Route::SaveNotifyTarget
        )
    }

    /// Whether the reply holds network data (addresses masked when IP masking is on).
    pub fn shows_traffic(&self) -> bool {
        matches!(
            self,
            Route::Stats
                | Route::TopTalkers { .. }
                | Route::Flows(_)
                | Route::History(_)
                | Route::Host { .. }
                | Route::Names { .. }
                | Route::Apps
                | Route::Devices(_)
                | Route::Device { .. }
                | Route::AnnotateDevice { .. }
                | Route::Alerts(_)
                | Route::Packets { .. }
                | Route::Packet { .. }
                | Route::Geo { .. }
                | Route::WebSocket(_)
        )
    }
}

/// Every endpoint: method and an example request of it (the 404 answer lists them; the
/// access tests walk them).
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/stats"),
    ("GET", "/top-talkers"),
    ("GET", "/flows"),
    ("GET", "/history?metric=bytes&by=host"),
    ("GET", "/hosts/192.0.2.1"),
    ("GET", "/names?ip=192.0.2.1"),
    ("GET", "/apps"),
    ("GET", "/devices"),
    ("GET", "/devices/00:0c:29:59:fd:21"),
    ("POST", "/devices/00:0c:29:59:fd:21"),
    ("GET", "/alerts"),
    ("POST", "/alerts/1/acknowledge"),
    ("GET", "/packets"),
    ("GET", "/packets/1"),
    ("GET", "/geo?ip=8.8.8.8"),
    ("POST", "/pcap/upload"),
    ("POST", "/pcap/replay/stop"),
    ("GET", "/debug"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/ws/metrics"),
    ("GET", "/ws/alerts"),
    ("GET", "/ws/flows"),
    ("POST", "/auth/login"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/session"),
    ("POST", "/auth/password"),
    ("GET", "/auth/tokens"),
    ("POST", "/auth/tokens"),
    ("DELETE", "/auth/tokens/0a1b2c3d4e5f"),
    ("GET", "/settings"),
    ("POST", "/settings"),
    ("GET", "/intel"),
    ("POST", "/intel/reload"),
    ("GET", "/notify"),
    ("POST", "/notify/test"),
    ("POST", "/notify/targets"),
    ("DELETE", "/notify/targets/phone"),
];

/// A request that cannot be served: the status and the JSON body `{"error", "detail"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub error: String,
    pub detail: Value,
    /// For 405: the methods the path accepts.
    pub allow: Option<&'static str>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>, detail: Value) -> Self {
        ApiError {
            status,
            error: error.into(),
            detail,
            allow: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(error: impl Into<String>, detail: Value) -> Self {
        Self::new(400, error, detail)
    }

    pub fn body(&self) -> Value {
        json!({"error": self.error, "detail": self.detail})
    }
}

/// Parsed query parameters; each is taken once, and whatever is left over is an error.
struct Query {
    pairs: Vec<(String, String)>,
    allowed: &'static [&'static str],
}

impl Query {
    fn parse(query: &str, allowed: &'static [&'static str]) -> Result<Query, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(ApiError::bad_request(
                    format!("unknown parameter {k:?}"),
                    json!({"parameter": k, "allowed": allowed}),
                ));
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(ApiError::bad_request(
                    format!("parameter {k:?} given twice"),
                    json!({"parameter": k}),
                ));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Query { pairs, allowed })
    }

    fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(self.allowed.contains(&name));
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn limit(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let bad = |why: &str| {
            ApiError::bad_request(
                format!("{name} must be a whole number from 1 to {max}"),
                json!({"parameter": name, "value": raw, "reason": why}),
            )
        };
        let n: i128 = raw.trim().parse().map_err(|_| bad("not a whole number"))?;
        if n < 1 {
            return Err(bad("too small"));
        }
        if n > max as i128 {
            return Err(bad("too large"));
        }
        Ok(n as usize)
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ApiError::bad_request(
                format!("{name} must be true or false"),
                json!({"parameter": name, "value": other}),
            )),
        }
    }

    fn ip(&self, name: &str) -> Result<Option<IpAddr>, ApiError> {
        self.get(name)
            .map(|raw| {
                raw.trim().parse().map_err(|_| {
                    ApiError::bad_request(
                        format!("{name} is not an IP address"),
                        json!({"parameter": name, "value": raw}),
                    )
                })
            })
            .transpose()
    }

    fn time(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.get(name)
            .map(|raw| match raw.trim().parse::<f64>() {
                Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
                _ => Err(ApiError::bad_request(
                    format!("{name} must be a Unix timestamp in seconds"),
                    json!({"parameter": name, "value": raw}),
                )),
            })
            .transpose()
    }

    fn time_range(&self) -> Result<(Option<f64>, Option<f64>), ApiError> {
        let (start, end) = (self.time("start_time")?, self.time("end_time")?);
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(ApiError::bad_request(
                "start_time is after end_time",
                json!({"start_time": s, "end_time": e}),
            ));
        }
        Ok((start, end))
    }
}

const PROTOCOLS: [&str; 5] = ["TCP", "UDP", "ICMP", "ICMPV6", "OTHER"];

/// Parses a request line into a route.
pub fn parse(method: &str, url: &str) -> Result<Route, ApiError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (allow, route): (&'static str, Result<Route, ApiError>) = match segments.as_slice() {
        ["stats"] => ("GET", Query::parse(query, &[]).map(|_| Route::Stats)),
        ["top-talkers"] => ("GET", top_talkers(query)),
        ["flows"] => ("GET", flows(query)),
        ["history"] => ("GET", history(query)),
        ["hosts", ip] => ("GET", host(ip, query)),
        ["names"] => (
            "GET",
            Query::parse(query, &["ip"]).and_then(|q| match q.ip("ip")? {
                Some(ip) => Ok(Route::Names { ip }),
                None => Err(ApiError::bad_request(
                    "names needs an address: /names?ip=192.0.2.1",
                    json!({"parameter": "ip"}),
                )),
            }),
        ),
        ["apps"] => ("GET", Query::parse(query, &[]).map(|_| Route::Apps)),
        ["devices"] => ("GET", devices(query)),
        ["devices", mac] => (
            "GET, POST",
            device_mac(mac, query).map(|mac| {
                if method == "POST" {
                    Route::AnnotateDevice { mac }
                } else {
                    Route::Device { mac }
                }
            }),
        ),
        ["alerts"] => ("GET", alerts(query)),
        ["alerts", key, "acknowledge"] => ("POST", acknowledge(key, query)),
        ["packets"] => (
            "GET",
            Query::parse(query, &["limit"]).and_then(|q| {
                Ok(Route::Packets {
                    limit: q.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
                })
            }),
        ),
        ["packets", id] => ("GET", packet(id, query)),
        ["geo"] => ("GET", geo(query)),
        ["pcap", "upload"] => ("POST", Query::parse(query, &[]).map(|_| Route::Upload)),
        ["pcap", "replay", "stop"] => ("POST", Query::parse(query, &[]).map(|_| Route::StopReplay)),
        ["debug"] => ("GET", Query::parse(query, &[]).map(|_| Route::Debug)),
        ["metrics"] => ("GET", Query::parse(query, &[]).map(|_| Route::Metrics)),
        ["healthz"] => ("GET", Query::parse(query, &[]).map(|_| Route::Health)),
        ["auth", "login"] => ("POST", no_query(query, Route::Login)),
        ["auth", "logout"] => ("POST", no_query(query, Route::Logout)),
        ["auth", "session"] => ("GET", no_query(query, Route::Session)),
        ["auth", "password"] => ("POST", no_query(query, Route::ChangePassword)),
        ["auth", "tokens"] => (
            "GET, POST",
            no_query(
                query,
                if method == "POST" {
                    Route::CreateToken
                } else {
                    Route::ListTokens
                },
            ),
        ),
        ["auth", "tokens", id] => ("DELETE", token_id(id, query)),
        ["settings"] => (
            "GET, POST",
            no_query(
                query,
                if method == "POST" {
                    Route::UpdateSettings
                } else {
                    Route::Settings
                },
            ),
        ),
        ["intel"] => ("GET", no_query(query, Route::Intel)),
        ["intel", "reload"] => ("POST", no_query(query, Route::ReloadIntel)),
        ["notify"] => ("GET", no_query(query, Route::Notify)),
        ["notify", "test"] => ("POST", no_query(query, Route::NotifyTest)),
        ["notify", "targets"] => ("POST", no_query(query, Route::SaveNotifyTarget)),
        ["notify", "targets", name] => ("DELETE", target_name(name, query)),
        ["ws", name] => {
            let stream = Stream::ALL.into_iter().find(|s| s.name() == *name);
            match stream {
                Some(s) => ("GET", Ok(Route::WebSocket(s))),
                None => return Err(not_found(path)),
            }
        }
        _ => return Err(not_found(path)),
    };
    let method_ok = allow
        .split(", ")
        .any(|m| m == method || (m == "GET" && method == "HEAD"));
    if !method_ok {
        let allowed: Vec<&str> = allow.split(", ").collect();
        let mut e = ApiError::new(
            405,
            format!("{path} does not accept {method}"),
            json!({ "allowed": allowed }),
        );
        e.allow = Some(allow);
        return Err(e);
    }
    route
}

/// `/devices?q=&vendor=&state=new|known&active_secs=&sort=&limit=`.
fn devices(query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(
        query,
        &["q", "vendor", "state", "active_secs", "sort", "limit"],
    )?;
    let text = |name: &str| q.get(name).map(str::trim).filter(|t| !t.is_empty());
    let new = match q.get("state") {
        None | Some("all") => None,
        Some("new") => Some(true),
        Some("known") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                "state must be new, known or all",
                json!({"parameter": "state", "value": other}),
            ));
        }
    };
    let sort = match q.get("sort") {
        None => DeviceSort::default(),
        Some(s) => DeviceSort::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "sort must be last_seen, first_seen, name, vendor, bytes or mac",
                json!({"parameter": "sort", "value": s}),
            )
        })?,
    };
    let active_secs = match q.get("active_secs") {
        None => None,
        Some(_) => Some(q.limit("active_secs", 0, 10 * 365 * 86_400)? as u64),
    };
    Ok(Route::Devices(DeviceQuery {
        text: text("q").map(str::to_string),
        vendor: text("vendor").map(str::to_string),
        new,
        active_secs,
        sort,
        limit: q.limit("limit", 1_000, MAX_LIMIT)?,
    }))
}

fn device_mac(raw: &str, query: &str) -> Result<MacAddr, ApiError> {
    Query::parse(query, &[])?;
    let text = percent_decoded(raw);
    MacAddr::parse(&text).ok_or_else(|| {
        ApiError::bad_request(
            "not a MAC address: write it as aa:bb:cc:dd:ee:ff",
            json!({"mac": text}),
        )
    })
}

/// A path segment with its `%3A`-style escapes undone (a MAC's colons may arrive escaped).
fn percent_decoded(raw: &str) -> String {
    form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        404,
        format!("no such endpoint: {path}"),
        json!({"endpoints": ENDPOINTS
            .iter()
            .map(|(m, p)| format!("{m} {}", p.split('?').next().unwrap_or(p)))
            .collect::<Vec<_>>()}),
    )
}

fn no_query(query: &str, route: Route) -> Result<Route, ApiError> {
    Query::parse(query, &[]).map(|_| route)
}

fn target_name(name: &str, query: &str) -> Result<Route, ApiError> {
    Query::parse(query, &[])?;
    let name = percent_decoded(name);
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "a target name is 1 to 64 printable characters, as GET /notify lists them",
            json!({"value": name}),
        ));
    }
    Ok(Route::DeleteNotifyTarget { name })
}

fn token_id(id: &str, query: &str) -> Result<Route, ApiError> {
    Query::parse(query, &[])?;
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "a token id is the hex id shown by GET /auth/tokens",
            json!({"value": id}),
        ));
    }
    Ok(Route::RevokeToken { id: id.into() })
}

fn top_talkers(query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(query, &["limit", "with_geo"])?;
    Ok(Route::TopTalkers {
        limit: q.limit("limit", DEFAULT_TALKERS, MAX_TALKERS)?,
        with_geo: q.flag("with_geo")?,
    })
}

fn flows(query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(
        query,
        &[
            "limit",
            "protocol",
            "src_ip",
            "ip",
            "start_time",
            "end_time",
            "name",
            "app",
        ],
    )?;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match q.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.len() <= 253 && v.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(Some(v.trim_end_matches('.').to_ascii_lowercase()))
            }
            Some(v) => Err(ApiError::bad_request(
                format!("{key} must be a name of at most 253 printable characters"),
                json!({"parameter": key, "value": v}),
            )),
        }
    };
    let protocol = match q.get("protocol") {
        None | Some("") => None,
        Some(p) if PROTOCOLS.contains(&p.to_ascii_uppercase().as_str()) => {
            Some(p.to_ascii_uppercase())
        }
        Some(p) => {
            return Err(ApiError::bad_request(
                "unknown protocol",
                json!({"parameter": "protocol", "value": p, "allowed": PROTOCOLS}),
            ));
        }
    };
    let (start_time, end_time) = q.time_range()?;
    Ok(Route::Flows(FlowQuery {
        limit: q.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        protocol,
        src_ip: q.ip("src_ip")?,
        ip: q.ip("ip")?,
        start: start_time,
        end: end_time,
        name: text("name")?,
        app: text("app")?,
    }))
}

fn history(query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(query, &["metric", "by", "key", "from", "to", "step"])?;
    let choice = |name: &str, allowed: &[&str], default: &str| -> Result<String, ApiError> {
        let v = q.get(name).unwrap_or(default).to_ascii_lowercase();
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(ApiError::bad_request(
                format!("unknown {name}"),
                json!({"parameter": name, "value": v, "allowed": allowed}),
            ))
        }
    };
    let metric = match choice("metric", &["bytes", "packets", "flows"], "bytes")?.as_str() {
        "packets" => Metric::Packets,
        "flows" => Metric::Flows,
        _ => Metric::Bytes,
    };
    let by = match choice(
        "by",
        &[
            "total", "host", "protocol", "app", "category", "device", "country",
        ],
        "total",
    )?
    .as_str()
    {
        "device" => By::Device,
        "country" => By::Country,
        "host" => By::Host,
        "protocol" => By::Protocol,
        "app" => By::App,
        "category" => By::Category,
        _ => By::Total,
    };
    let key = match (by, q.get("key")) {
        (_, None | Some("")) | (By::Total, _) => None,
        (By::Host, Some(k)) if k == OTHER => Some(k.to_string()),
        (By::Host, Some(_)) => q.ip("key")?.map(|ip| ip.to_string()),
        (By::Protocol, Some(p)) if PROTOCOLS.contains(&p.to_ascii_uppercase().as_str()) => {
            Some(p.to_ascii_uppercase())
        }
        (By::Protocol, Some(p)) => {
            return Err(ApiError::bad_request(
                "unknown protocol",
                json!({"parameter": "key", "value": p, "allowed": PROTOCOLS}),
            ));
        }
        // Applications and categories are lowercase words of the catalogue.
        (By::App | By::Category, Some(k))
            if k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(k.to_ascii_lowercase())
        }
        (By::App | By::Category, Some(k)) => {
            return Err(ApiError::bad_request(
                "an application or category is letters, digits and '-'",
                json!({"parameter": "key", "value": k}),
            ));
        }
        // Countries are ISO 3166-1 alpha-2 codes, as GeoIP gives them.
        (By::Country, Some(k)) if k.len() == 2 && k.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(k.to_ascii_uppercase())
        }
        (By::Country, Some(k)) => {
            return Err(ApiError::bad_request(
                "a country is its two-letter ISO code (DE, US, ...)",
                json!({"parameter": "key", "value": k}),
            ));
        }
        (By::Device, Some(k)) if k == OTHER => Some(k.to_string()),
        (By::Device, Some(k)) => match MacAddr::parse(k) {
            Some(mac) => Some(mac.to_string()),
            None => {
                return Err(ApiError::bad_request(
                    "a device is its MAC address: aa:bb:cc:dd:ee:ff",
                    json!({"parameter": "key", "value": k}),
                ));
            }
        },
    };
    let secs = |name: &str| -> Result<Option<i64>, ApiError> {
        Ok(q.time(name)?.map(|t| t.floor() as i64))
    };
    let (from, to) = (secs("from")?, secs("to")?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request(
            "from is after to",
            json!({"from": f, "to": t}),
        ));
    }
    let step = match q.get("step") {
        None => None,
        Some(_) => Some(q.limit("step", 60, 366 * 86_400)? as i64),
    };
    Ok(Route::History(HistoryQuery {
        metric,
        by,
        key,
        from,
        to,
        step,
    }))
}

fn host(ip: &str, query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(query, &["from", "to"])?;
    let ip = ip.parse().map_err(|_| {
        ApiError::bad_request("not an IP address", json!({"path": format!("/hosts/{ip}")}))
    })?;
    let secs = |name: &str| -> Result<Option<i64>, ApiError> {
        Ok(q.time(name)?.map(|t| t.floor() as i64))
    };
    Ok(Route::Host {
        ip,
        from: secs("from")?,
        to: secs("to")?,
    })
}

fn alerts(query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(
        query,
        &["limit", "unacknowledged_only", "start_time", "end_time"],
    )?;
    let (start_time, end_time) = q.time_range()?;
    Ok(Route::Alerts(AlertQuery {
        limit: q.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        unacknowledged_only: q.flag("unacknowledged_only")?,
        start: start_time,
        end: end_time,
    }))
}

fn acknowledge(key: &str, query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(query, &["source_ip"])?;
    match q.get("source_ip") {
        // The published form: the key is the alert's timestamp.
        Some(source) => {
            let timestamp = key
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "with source_ip, the path must hold the alert's timestamp (Unix seconds)",
                        json!({"value": key}),
                    )
                })?;
            let source_ip = q
                .ip("source_ip")
                .map(|ip| ip.map(|ip| ip.to_string()))
                // `*` names spoofed floods that came from many sources.
                .or_else(|e| {
                    if source == "*" {
                        Ok(Some("*".into()))
                    } else {
                        Err(e)
                    }
                })?
                .expect("present");
            Ok(Route::Acknowledge(AckTarget::Matching {
                timestamp,
                source_ip,
            }))
        }
        None => key
            .parse::<u64>()
            .map(|id| Route::Acknowledge(AckTarget::Id(id)))
            .map_err(|_| {
                ApiError::bad_request(
                    "the path must hold an alert id (or a timestamp with ?source_ip=)",
                    json!({"value": key}),
                )
            }),
    }
}

fn packet(id: &str, query: &str) -> Result<Route, ApiError> {
    Query::parse(query, &[])?;
    id.parse::<u64>()
        .map(|id| Route::Packet { id })
        .map_err(|_| {
            ApiError::bad_request("packet id must be a whole number", json!({"value": id}))
        })
}

fn geo(query: &str) -> Result<Route, ApiError> {
    let q = Query::parse(query, &["ip"])?;
    match q.ip("ip")? {
        Some(ip) => Ok(Route::Geo { ip }),
        None => Err(ApiError::bad_request(
            "ip is required",
            json!({"example": "/geo?ip=8.8.8.8"}),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_paths_parse_with_their_defaults() {
        assert_eq!(parse("GET", "/stats"), Ok(Route::Stats));
        assert_eq!(
            parse("GET", "/top-talkers?limit=50&with_geo=true"),
            Ok(Route::TopTalkers {
                limit: 50,
                with_geo: true
            })
        );
        assert_eq!(
            parse("GET", "/flows"),
            Ok(Route::Flows(FlowQuery {
                limit: 100,
                ..Default::default()
            }))
        );
        assert_eq!(
            parse(
                "GET",
                "/flows?limit=5&protocol=tcp&src_ip=192.168.1.1&start_time=1.5&end_time=2"
            ),
            Ok(Route::Flows(FlowQuery {
                limit: 5,
                protocol: Some("TCP".into()),
                src_ip: Some("192.168.1.1".parse().unwrap()),
                ip: None,
                start: Some(1.5),
                end: Some(2.0),
                name: None,
                app: None,
            }))
        );
        assert_eq!(
            parse("GET", "/alerts?unacknowledged_only=true"),
            Ok(Route::Alerts(AlertQuery {
                limit: 100,
                unacknowledged_only: true,
                ..Default::default()
            }))
        );
        assert_eq!(
            parse(
                "POST",
                "/alerts/1767225605.25/acknowledge?source_ip=45.33.32.156"
            ),
            Ok(Route::Acknowledge(AckTarget::Matching {
                timestamp: 1767225605.25,
                source_ip: "45.33.32.156".into()
            }))
        );
        assert_eq!(
            parse("POST", "/alerts/1809639302144/acknowledge"),
            Ok(Route::Acknowledge(AckTarget::Id(1809639302144)))
        );
        assert_eq!(parse("GET", "/packets/7"), Ok(Route::Packet { id: 7 }));
        assert_eq!(
            parse("GET", "/geo?ip=2001%3A4860%3A4860%3A%3A8888"),
            Ok(Route::Geo {
                ip: "2001:4860:4860::8888".parse().unwrap()
            })
        );
        assert_eq!(
            parse("GET", "/ws/alerts"),
            Ok(Route::WebSocket(Stream::Alerts))
        );
        assert_eq!(parse("HEAD", "/healthz"), Ok(Route::Health));
        assert_eq!(parse("GET", "/stats/"), Ok(Route::Stats));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let status = |m: &str, u: &str| parse(m, u).unwrap_err().status;
        assert_eq!(status("GET", "/nope"), 404);
        assert_eq!(status("GET", "/ws/nope"), 404);
        assert_eq!(status("POST", "/stats"), 405);
        assert_eq!(parse("DELETE", "/flows").unwrap_err().allow, Some("GET"));
        assert_eq!(status("GET", "/pcap/upload"), 405);
        for url in [
            "/flows?limit=abc",
            "/flows?limit=-1",
            "/flows?limit=0",
            "/flows?limit=99999999999999999999999",
            "/flows?src_ip=300.1.1.1",
            "/flows?protocol=SCTPX",
            "/flows?start_time=10&end_time=5",
            "/flows?start_time=NaN",
            "/flows?colour=red",
            "/flows?limit=1&limit=2",
            "/alerts?unacknowledged_only=maybe",
            "/geo",
            "/geo?ip=not-an-ip",
            "/packets/x",
            "/stats?x=1",
        ] {
            let e = parse("GET", url).unwrap_err();
            assert_eq!(e.status, 400, "{url}");
            assert!(!e.error.is_empty());
        }
        assert_eq!(status("POST", "/alerts/abc/acknowledge"), 400);
        assert_eq!(
            status("POST", "/alerts/abc/acknowledge?source_ip=1.2.3.4"),
            400
        );
        assert_eq!(status("POST", "/alerts/12/acknowledge?source_ip=x"), 400);
    }

    #[test]
    fn every_listed_endpoint_parses_and_multi_method_paths_say_which() {
        for (method, url) in ENDPOINTS {
            assert!(parse(method, url).is_ok(), "{method} {url}");
        }
        assert_eq!(parse("POST", "/auth/tokens"), Ok(Route::CreateToken));
        assert_eq!(parse("GET", "/auth/tokens"), Ok(Route::ListTokens));
        let e = parse("PUT", "/settings").unwrap_err();
        assert_eq!((e.status, e.allow), (405, Some("GET, POST")));
        assert_eq!(
            parse("DELETE", "/auth/tokens/../x").unwrap_err().status,
            404
        );
        assert_eq!(parse("DELETE", "/auth/tokens/zz").unwrap_err().status, 400);
        // State changes are never open to viewers.
        for (method, url) in ENDPOINTS {
            let route = parse(method, url).unwrap();
            if route.changes_state() && !matches!(route, Route::Logout | Route::ChangePassword) {
                assert_eq!(route.access(), Access::Admin, "{method} {url}");
            }
        }
    }

    #[test]
    fn the_error_body_has_the_published_keys() {
        let body = parse("GET", "/flows?limit=x").unwrap_err().body();
        assert!(body["error"].is_string());
        assert_eq!(body["detail"]["parameter"], "limit");
    }

    #[test]
    fn history_queries_parse_into_the_store_query_and_bad_ones_are_named() {
        assert_eq!(
            parse("GET", "/history"),
            Ok(Route::History(HistoryQuery {
                metric: Metric::Bytes,
                by: By::Total,
                key: None,
                from: None,
                to: None,
                step: None,
            }))
        );
        assert_eq!(
            parse(
                "GET",
                "/history?metric=Flows&by=host&key=2001:db8::1&from=100.7&to=7300&step=3600"
            ),
            Ok(Route::History(HistoryQuery {
                metric: Metric::Flows,
                by: By::Host,
                key: Some("2001:db8::1".into()),
                from: Some(100),
                to: Some(7300),
                step: Some(3600),
            }))
        );
        assert_eq!(
            parse("GET", "/history?by=protocol&key=udp"),
            Ok(Route::History(HistoryQuery {
                metric: Metric::Bytes,
                by: By::Protocol,
                key: Some("UDP".into()),
                from: None,
                to: None,
                step: None,
            }))
        );
        assert_eq!(
            parse("GET", "/history?by=country&key=de"),
            Ok(Route::History(HistoryQuery {
                metric: Metric::Bytes,
                by: By::Country,
                key: Some("DE".into()),
                from: None,
                to: None,
                step: None,
            }))
        );
        assert_eq!(
            parse("GET", "/hosts/10.0.0.7?from=60"),
            Ok(Route::Host {
                ip: "10.0.0.7".parse().unwrap(),
                from: Some(60),
                to: None,
            })
        );
        for (url, error) in [
            ("/hosts/printer", "not an IP address"),
            ("/history?metric=octets", "unknown metric"),
            ("/history?by=planet", "unknown by"),
            (
                "/history?by=country&key=Germany",
                "a country is its two-letter ISO code (DE, US, ...)",
            ),
            ("/history?by=host&key=printer", "key is not an IP address"),
            ("/history?by=protocol&key=SMTP", "unknown protocol"),
            ("/history?from=50&to=10", "from is after to"),
            (
                "/history?step=0",
                "step must be a whole number from 1 to 31622400",
            ),
            ("/history?window=1", "unknown parameter \"window\""),
        ] {
            let e = parse("GET", url).unwrap_err();
            assert_eq!((e.status, e.error.as_str()), (400, error), "{url}");
        }
    }

    #[test]
    fn notification_and_intel_routes() {
        assert_eq!(
            parse("DELETE", "/notify/targets/my%20phone").unwrap(),
            Route::DeleteNotifyTarget {
                name: "my phone".into()
            }
        );
        assert_eq!(
            parse("DELETE", "/notify/targets/%00").unwrap_err().status,
            400
        );
        assert_eq!(parse("GET", "/notify/test").unwrap_err().status, 405);
        assert_eq!(parse("POST", "/intel/reload").unwrap(), Route::ReloadIntel);
        assert_eq!(parse("GET", "/intel?x=1").unwrap_err().status, 400);
        assert!(Route::NotifyTest.changes_state() && Route::NotifyTest.takes_json());
        assert_eq!(Route::Notify.access(), Access::Read);
        assert_eq!(Route::SaveNotifyTarget.access(), Access::Admin);
    }
}
