//! Downloading a list over HTTPS with a conditional request: the last download's `ETag`
//! and `Last-Modified` go back as `If-None-Match` and `If-Modified-Since`, and a 304 keeps
//! the list as it is. The body is streamed to a file next to the cache (then renamed into
//! place), never held whole in memory, and refused past the size cap.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// What a fetch brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The server sent the list: it is now in the file; with its validators.
    New {
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// 304: the copy we have is current.
    NotModified,
}

/// An HTTP(S) client for list downloads: 30-second deadline, Mozilla's roots, or the CAs in
/// `ca_file`.
pub fn agent(ca_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .user_agent(concat!("tapir/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("ca_file {} holds no certificate", path.display()));
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().new_agent())
}

/// Fetches `url` into `dest` unless the server says the copy validated by `etag` /
/// `last_modified` is current; `max_bytes` caps the body.
pub fn fetch(
    agent: &ureq::Agent,
    url: &str,
    etag: Option<&str>,
    last_modified: Option<&str>,
    dest: &Path,
    max_bytes: u64,
) -> Result<Fetched, String> {
    let mut request = agent.get(url);
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    if let Some(since) = last_modified {
        request = request.header("If-Modified-Since", since);
    }
    let response = request.call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    if status == 304 {
        return Ok(Fetched::NotModified);
    }
    if status != 200 {
        return Err(format!("{url} answered {status}"));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    let partial = dest.with_extension("part");
    let written = (|| -> Result<(), String> {
        let mut file = std::fs::File::create(&partial)
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        let mut body = response
            .into_body()
            .into_with_config()
            .limit(max_bytes)
            .reader();
        std::io::copy(&mut body, &mut file).map_err(|e| {
            if e.to_string().contains("limit") {
                format!("{url}: the list is larger than intel.max_list_mb")
            } else {
                format!("{url}: {e}")
            }
        })?;
        file.flush().map_err(|e| e.to_string())?;
        std::fs::rename(&partial, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| Fetched::New {
        etag,
        last_modified,
    })
}
