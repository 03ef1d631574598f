//! Which app serves a host: exact names first, then the longest matching wildcard.

use std::collections::HashMap;
use std::fmt;

/// A host name as written in the config: `app.example.com` or `*.example.com`.
///
/// A wildcard matches any name that ends in `.example.com` (one label or more in front), never
/// `example.com` itself. Names are compared without port: an app serves its hosts on every port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// Stored with its leading dot: `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_owned();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower.clone()),
        };
        let ipv6 = !wild
            && name.starts_with('[')
            && name.ends_with(']')
            && name[1..name.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok();
        let valid = ipv6
            || (!name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }));
        if !valid {
            return Err("must be a host name such as \"app.example.com\" or \"*.example.com\", without port".into());
        }
        Ok(if wild {
            HostPattern::Wildcard(format!(".{name}"))
        } else if ipv6 {
            let addr: std::net::Ipv6Addr = name[1..name.len() - 1]
                .parse()
                .map_err(|_| "invalid IPv6")?;
            HostPattern::Exact(format!("[{addr}]"))
        } else {
            HostPattern::Exact(name)
        })
    }

    /// `host` must already be normalised (lower case, no trailing dot, no port).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Wildcard(s) => write!(f, "*{s}"),
        }
    }
}

/// Host -> index of the app that serves it.
#[derive(Debug, Default)]
pub struct HostRouter {
    exact: HashMap<String, usize>,
    /// Longest suffix first, so the most specific wildcard wins.
    wildcards: Vec<(String, usize)>,
}

impl HostRouter {
    pub fn new<'a>(apps: impl IntoIterator<Item = (usize, &'a [HostPattern])>) -> Self {
        let mut router = HostRouter::default();
        for (index, hosts) in apps {
            for h in hosts {
                match h {
                    HostPattern::Exact(n) => {
                        router.exact.insert(n.clone(), index);
                    }
                    HostPattern::Wildcard(s) => router.wildcards.push((s.clone(), index)),
                }
            }
        }
        router
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        router
    }

    pub fn route(&self, host: &str) -> Option<usize> {
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let w = HostPattern::parse("*.Example.com.").unwrap();
        assert_eq!(w, HostPattern::Wildcard(".example.com".into()));
        assert!(w.matches("a.example.com"));
        assert!(w.matches("b.a.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
        assert_eq!(
            HostPattern::parse("[::1]").unwrap(),
            HostPattern::Exact("[::1]".into())
        );
        assert!(HostPattern::parse("a.com:80").is_err());
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("a..b").is_err());
    }

    #[test]
    fn router_prefers_exact_then_longest_wildcard() {
        let a = [HostPattern::parse("*.example.com").unwrap()];
        let b = [HostPattern::parse("*.b.example.com").unwrap()];
        let c = [HostPattern::parse("x.b.example.com").unwrap()];
        let r = HostRouter::new([(0, &a[..]), (1, &b[..]), (2, &c[..])]);
        assert_eq!(r.route("q.example.com"), Some(0));
        assert_eq!(r.route("y.b.example.com"), Some(1));
        assert_eq!(r.route("x.b.example.com"), Some(2));
        assert_eq!(r.route("example.com"), None);
        assert_eq!(r.route("other.test"), None);
    }
}
