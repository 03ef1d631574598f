//! What the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with `cargo fuzz`) check of each
//! parser the gateway runs on input it does not control, kept here so that the targets and the
//! replay of their corpus (`tests/fuzz_corpus.rs`, part of `cargo test`) check exactly the same.
//! Each function takes arbitrary bytes and panics only when a property fails: never on bad
//! input, which must be refused, not crash.

use std::sync::OnceLock;

use crate::routing::{HostPattern, HostRouter};

/// Request targets: normalising never panics; a normalised target normalises to itself
/// (idempotence); its lenient reading is a fixed point too, and never climbs above `/`.
pub fn target(data: &[u8]) {
    let Ok(t) = crate::hygiene::target::normalize_target(data) else {
        return;
    };
    let again = crate::hygiene::target::normalize_target(t.to_uri_string().as_bytes())
        .unwrap_or_else(|e| panic!("{:?} normalised to {t:?}, which is refused: {e}", data));
    assert_eq!(again, t, "normalising twice changed {data:?}");
    assert!(t.path.starts_with('/'), "{t:?}");
    assert!(
        !t.path.contains("/../") && !t.path.ends_with("/.."),
        "{t:?}"
    );
    if let Some(lenient) = crate::hygiene::target::lenient_reading(&t.path) {
        assert!(lenient.starts_with('/'), "{lenient}");
        assert_eq!(
            crate::hygiene::target::lenient_reading(&lenient),
            None,
            "the lenient reading of {:?} is not a fixed point",
            t.path
        );
    }
}

/// Host headers: normalising never panics, and a normalised host normalises to itself.
pub fn host(data: &[u8]) {
    let (tls, value) = match data.split_first() {
        Some((first, rest)) => (first & 1 == 1, rest),
        None => (false, data),
    };
    let Ok(h) = crate::hygiene::host::normalize_host(&[value], tls) else {
        return;
    };
    let authority = h.authority();
    let again = crate::hygiene::host::normalize_host(&[authority.as_bytes()], tls)
        .unwrap_or_else(|e| panic!("{value:?} normalised to {authority:?}, which is refused: {e}"));
    assert_eq!(again, h, "normalising twice changed {value:?}");
}

/// `Cookie` headers: reading the session cookie never panics, and what it finds is part of the
/// header.
pub fn cookie(data: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, value);
    for name in ["stepgate_session", "__Host-stepgate_session"] {
        for v in crate::session::cookie::read_all(&headers, name) {
            let raw = headers[http::header::COOKIE].to_str().unwrap_or_default();
            assert!(raw.contains(v), "{v:?} is not in {raw:?}");
        }
    }
}

/// Form bodies: reading a field never panics.
pub fn form(data: &[u8]) {
    for name in ["csrf", "username", "password", "rd", "code"] {
        let _ = crate::portal::login::form_value(data, name);
    }
}

/// `rd`: the target is the default or an http(s) URL on a served or allowed host, with no
/// user info, whatever the input.
pub fn rd(data: &[u8]) {
    static SETUP: OnceLock<(crate::portal::return_to::ReturnTo, HostRouter)> = OnceLock::new();
    let (return_to, router) = SETUP.get_or_init(|| {
        let served = vec![HostPattern::parse("app.test").expect("a host")];
        let router = HostRouter::new([(0usize, served.as_slice())]);
        (
            crate::portal::return_to::ReturnTo::new("/".into(), vec![]),
            router,
        )
    });
    let Ok(rd) = std::str::from_utf8(data) else {
        return;
    };
    let out = return_to.resolve(Some(rd), "https://app.test", router);
    if out == "/" {
        return;
    }
    let url = url::Url::parse(&out).unwrap_or_else(|e| panic!("{rd:?} gave {out:?}: {e}"));
    assert!(
        matches!(url.scheme(), "http" | "https"),
        "{rd:?} gave {out:?}"
    );
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{rd:?} gave {out:?}"
    );
    assert_eq!(url.host_str(), Some("app.test"), "{rd:?} gave {out:?}");
}

/// Certificate files: reading one never panics; a key is never taken for a certificate.
pub fn certificate(data: &[u8]) {
    if let Ok(c) = crate::certificates::read_file(data) {
        assert_eq!(c.info.fingerprint.len(), 64);
        assert!(!data.windows(11).any(|w| w == b"PRIVATE KEY"));
    }
}

/// Configuration text: validating it never panics (every problem is reported instead).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::Config::from_toml(std::path::Path::new("fuzz.toml"), text);
}

/// A property over arbitrary bytes.
pub type Property = fn(&[u8]);

/// Every property, by the name of its fuzz target.
pub const TARGETS: [(&str, Property); 7] = [
    ("target", target),
    ("host", host),
    ("cookie", cookie),
    ("form", form),
    ("rd", rd),
    ("certificate", certificate),
    ("config", config),
];
