use super::*;

#[test]
fn special_purpose_ranges_are_labelled_per_the_iana_registries() {
    // RFC 1918, RFC 6598, RFC 1122, RFC 3927, RFC 5737, RFC 2544, RFC 5771, RFC 4193,
    // RFC 4291 and RFC 3849 ranges, each at an edge.
    let cases = [
        ("10.255.255.255", Some("private")),
        ("172.16.0.0", Some("private")),
        ("172.31.255.255", Some("private")),
        ("172.32.0.0", None),
        ("192.168.1.1", Some("private")),
        ("100.64.0.1", Some("shared")),
        ("100.128.0.1", None),
        ("127.0.0.1", Some("loopback")),
        ("169.254.10.1", Some("link-local")),
        ("192.0.2.7", Some("documentation")),
        ("198.51.100.1", Some("documentation")),
        ("203.0.113.50", Some("documentation")),
        ("198.18.0.1", Some("benchmarking")),
        ("224.0.0.251", Some("multicast")),
        ("239.255.255.250", Some("multicast")),
        ("255.255.255.255", Some("broadcast")),
        ("0.0.0.0", Some("unspecified")),
        ("8.8.8.8", None),
        ("::1", Some("loopback")),
        ("fd00::1", Some("private")),
        ("fe80::1", Some("link-local")),
        ("ff02::fb", Some("multicast")),
        ("2001:db8::1", Some("documentation")),
        ("::ffff:192.168.0.1", Some("private")),
        ("2001:4860:4860::8888", None),
    ];
    for (ip, want) in cases {
        assert_eq!(scope(ip.parse().unwrap()), want, "{ip}");
    }
}

#[test]
fn without_a_database_lookups_say_why() {
    let geo = GeoIp::disabled("no database here");
    let public = geo.lookup("8.8.8.8".parse().unwrap());
    assert_eq!(public.place.country_code, None);
    assert_eq!(public.place.reason.as_deref(), Some("no database here"));
    let private = geo.lookup("10.0.0.1".parse().unwrap());
    assert_eq!(private.place.scope, Some("private"));
    assert!(private.place.reason.unwrap().contains("not looked up"));
}

#[test]
fn a_configured_database_that_is_missing_is_an_error_naming_it() {
    let config = GeoConfig {
        db: Some("/nonexistent/GeoLite2-City.mmdb".into()),
        ..Default::default()
    };
    let err = GeoIp::open(&config).err().expect("missing db is an error");
    assert!(
        err.to_string().contains("/nonexistent/GeoLite2-City.mmdb"),
        "{err}"
    );
}

#[test]
fn the_cache_stays_within_its_bound() {
    let geo = GeoIp::open(&GeoConfig {
        enabled: false,
        cache_entries: 16,
        ..Default::default()
    })
    .unwrap();
    for i in 0..100u32 {
        geo.lookup(IpAddr::V4(Ipv4Addr::from(0x0808_0000 + i)));
    }
    let status = geo.status();
    assert!(status.cached <= 16, "{}", status.cached);
    assert_eq!(status.lookups, 100);
}
