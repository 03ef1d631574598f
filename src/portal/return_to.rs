//! Where to send the browser after sign-in: `rd`, if it is safe, else the default.
//!
//! `rd` is parsed with a WHATWG URL parser (`url`) against the request's own origin. It is
//! followed only when it is an http(s) URL on a host the gateway serves (or on the explicit
//! allowlist), with no user info. Anything else (other hosts, `javascript:`, protocol-relative
//! `//evil`, backslash tricks the parser normalises to another host) falls back to the default.

use url::Url;

use crate::routing::{HostPattern, HostRouter};

pub struct ReturnTo {
    default: String,
    allowed: Vec<HostPattern>,
}

impl ReturnTo {
    pub fn new(default: String, allowed: Vec<HostPattern>) -> ReturnTo {
        ReturnTo { default, allowed }
    }

    /// The safe target for `rd`, as an absolute URL or a path. `origin` is the request's own
    /// `scheme://authority`.
    pub fn resolve(&self, rd: Option<&str>, origin: &str, router: &HostRouter) -> String {
        rd.and_then(|rd| self.check(rd, origin, router))
            .unwrap_or_else(|| self.default.clone())
    }

    fn check(&self, rd: &str, origin: &str, router: &HostRouter) -> Option<String> {
        if rd.is_empty() || rd.len() > 4096 {
            return None;
        }
        let base = Url::parse(origin).ok()?;
        let url = base.join(rd).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => format!("[{a}]"),
        };
        let served = router.route(&host).is_some() || self.allowed.iter().any(|p| p.matches(&host));
        served.then(|| url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> HostRouter {
        let hosts = [
            HostPattern::parse("app.test").unwrap(),
            HostPattern::parse("*.corp.test").unwrap(),
        ];
        HostRouter::new([(0, &hosts[..])])
    }

    #[test]
    fn only_served_or_allowed_hosts_are_followed() {
        let r = ReturnTo::new(
            "/".into(),
            vec![HostPattern::parse("sso.partner.test").unwrap()],
        );
        let o = "https://app.test";
        let router = router();
        assert_eq!(
            r.resolve(Some("/1fa/x?y=1"), o, &router),
            "https://app.test/1fa/x?y=1"
        );
        assert_eq!(
            r.resolve(Some("https://wiki.corp.test/a"), o, &router),
            "https://wiki.corp.test/a"
        );
        assert_eq!(
            r.resolve(Some("https://sso.partner.test/"), o, &router),
            "https://sso.partner.test/"
        );
        for bad in [
            "https://evil.test/",
            "//evil.test/x",
            "/\\evil.test/x",
            "\\\\evil.test",
            "javascript:alert(1)",
            "https://app.test@evil.test/",
            "https://user:pw@app.test/",
            "ftp://app.test/",
            "https://app.test.evil.test/",
            "",
        ] {
            assert_eq!(r.resolve(Some(bad), o, &router), "/", "{bad}");
        }
        assert_eq!(r.resolve(None, o, &router), "/");
    }
}
