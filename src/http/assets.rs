//! The dashboard's files, embedded at build time (see build.rs): looked up by exact path only,
//! so no request can reach anything outside the embedded set.

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Content hash, quoted, for `ETag` / `If-None-Match`.
    pub etag: &'static str,
    pub body: &'static [u8],
    pub gzip: &'static [u8],
}

static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset served at `path` (`/` is `/index.html`).
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// Every embedded asset (for the size report and tests).
pub fn all() -> &'static [Asset] {
    ASSETS
}

/// The Content-Security-Policy of every response: nothing from outside the appliance.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_stays_within_its_size_budget() {
        let (map, rest): (Vec<&Asset>, Vec<&Asset>) =
            all().iter().partition(|a| a.path.starts_with("/vendor/"));
        let app: usize = rest.iter().map(|a| a.body.len()).sum();
        assert!(
            app <= 300 * 1024,
            "the dashboard is {app} bytes (budget 300 KB)"
        );
        let shapes = map
            .iter()
            .find(|a| a.path == "/vendor/countries-110m.json")
            .expect("map data embedded (scripts/fetch-web-deps.sh fetches it)");
        assert!(
            shapes.body.len() <= 200 * 1024,
            "{} bytes of map data",
            shapes.body.len()
        );
    }

    #[test]
    fn lookups_are_exact_and_bodies_round_trip_through_gzip() {
        let index = find("/").expect("index.html is embedded");
        assert!(index.content_type.starts_with("text/html"));
        for bad in [
            "/../Cargo.toml",
            "/index.html/..",
            "//etc/passwd",
            "/%2e%2e/src/main.rs",
        ] {
            assert!(find(bad).is_none(), "{bad}");
        }
        for asset in all() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(asset.gzip), &mut out)
                .unwrap();
            assert_eq!(out, asset.body, "{}", asset.path);
        }
    }
}
