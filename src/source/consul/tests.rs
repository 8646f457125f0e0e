//! Unit tests of `consul`.

use super::client::is_loopback;
use super::*;

fn consul(address: &str) -> Consul {
    let mut c = crate::config::Config::resolve(
        &<crate::cli::Args as clap::Parser>::parse_from(["x", "--template=in.hbs:out.conf"]),
        &|_| None,
    )
    .unwrap()
    .consul;
    c.address = address.into();
    c
}

#[test]
fn loopback_addresses_are_never_proxied() {
    for a in [
        "127.0.0.1:8500",
        "http://localhost:8500",
        "https://[::1]:8501",
        "127.9.9.9",
    ] {
        assert!(is_loopback(a), "{a}");
    }
    for a in [
        "consul.internal:8500",
        "http://10.0.0.1:8500",
        "https://[2001:db8::1]",
    ] {
        assert!(!is_loopback(a), "{a}");
    }
}

#[test]
fn address_forms() {
    let s = ConsulSource::new(&consul("127.0.0.1:8500")).unwrap();
    assert_eq!(s.base.as_str(), "http://127.0.0.1:8500/");
    let s = ConsulSource::new(&consul("https://consul.example:8501")).unwrap();
    assert_eq!(s.base.scheme(), "https");
    let s = ConsulSource::new(&consul("unix:///tmp/consul.sock")).unwrap();
    assert_eq!(s.base.as_str(), "http://localhost/");
    assert!(ConsulSource::new(&consul("unix://")).is_err());
    assert!(ConsulSource::new(&consul("http://[bad")).is_err());
}

#[test]
fn urls_encode_keys_and_flags() {
    let s = ConsulSource::new(&consul("127.0.0.1:8500")).unwrap();
    let u = s.url(
        &["kv", "a b", "c?d", ""],
        &[
            ("recurse".into(), String::new()),
            ("dc".into(), "dc1".into()),
        ],
    );
    assert_eq!(
        u.as_str(),
        "http://127.0.0.1:8500/v1/kv/a%20b/c%3Fd/?recurse&dc=dc1"
    );
}
