//! Host hygiene: turns the request's Host header(s) / HTTP/2 `:authority` into a
//! single normalised host (lowercase DNS name, IPv4 literal or bracketed
//! canonical IPv6) plus a non-default port, refusing anything ambiguous.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    Missing,
    Duplicate,
    Invalid,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Missing => "missing host",
            HostError::Duplicate => "more than one host",
            HostError::Invalid => "invalid host",
        })
    }
}

/// A normalised host: lowercase name (or IP literal; IPv6 kept in brackets), no trailing dot, and the port if it was given and is not the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalHost {
    pub name: String,
    pub port: Option<u16>,
}

impl NormalHost {
    /// "name" or "name:port"
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.name, p),
            None => self.name.clone(),
        }
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Digits only, 1..=65535.
fn parse_port(p: &[u8]) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return Err(HostError::Invalid);
    }
    let n = p
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    match u16::try_from(n) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(HostError::Invalid),
    }
}

/// A last label that is all digits or `0x…` would be read as a number by
/// inet_aton-style resolvers; if it did not parse as IPv4 it is refused.
fn looks_numeric(label: &str) -> bool {
    let hex = label.strip_prefix("0x");
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Lowercase DNS-ish name or IPv4 literal; `raw` is ASCII without `:`.
fn normalize_name(raw: &[u8]) -> Result<String, HostError> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > 253 {
        return Err(HostError::Invalid);
    }
    let name: String = raw.iter().map(|b| b.to_ascii_lowercase() as char).collect();
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_');
    if !name.chars().all(ok_char) {
        return Err(HostError::Invalid);
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(HostError::Invalid);
        }
        last = label;
    }
    if looks_numeric(last) {
        return Err(HostError::Invalid);
    }
    Ok(name)
}

/// `values`: every Host header value the request carried (HTTP/1.1), or the :authority (HTTP/2) as a single value. `tls`: whether the listener is HTTPS (default port 443, else 80).
pub fn normalize_host(values: &[&[u8]], tls: bool) -> Result<NormalHost, HostError> {
    let raw = match values {
        [] => return Err(HostError::Missing),
        [one] => trim_ows(one),
        _ => return Err(HostError::Duplicate),
    };
    if raw.is_empty() {
        return Err(HostError::Invalid);
    }
    if raw.contains(&b',') {
        return Err(HostError::Duplicate);
    }
    let bad =
        |b: &u8| *b <= 0x20 || *b >= 0x7f || matches!(*b, b'@' | b'/' | b'\\' | b'?' | b'#' | b'%');
    if raw.iter().any(bad) {
        return Err(HostError::Invalid);
    }

    let (name, port_raw) = if let Some(rest) = raw.strip_prefix(b"[") {
        let close = rest
            .iter()
            .position(|&b| b == b']')
            .ok_or(HostError::Invalid)?;
        let inner = std::str::from_utf8(&rest[..close]).map_err(|_| HostError::Invalid)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| HostError::Invalid)?;
        let after = &rest[close + 1..];
        let port_raw = match after {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return Err(HostError::Invalid),
        };
        (format!("[{ip}]"), port_raw)
    } else {
        let mut it = raw.splitn(2, |&b| b == b':');
        let host = it.next().unwrap_or(&[]);
        let port_raw = it.next();
        (normalize_name(host)?, port_raw)
    };

    let default = if tls { 443 } else { 80 };
    let port = match port_raw {
        None => None,
        Some(p) => Some(parse_port(p)?).filter(|&p| p != default),
    };
    Ok(NormalHost { name, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str, tls: bool) -> NormalHost {
        match normalize_host(&[v.as_bytes()], tls) {
            Ok(h) => h,
            Err(e) => panic!("{v:?} refused: {e}"),
        }
    }
    fn err(v: &[u8]) -> HostError {
        match normalize_host(&[v], false) {
            Ok(h) => panic!("{v:?} accepted as {h:?}"),
            Err(e) => e,
        }
    }
    fn h(name: &str, port: Option<u16>) -> NormalHost {
        NormalHost {
            name: name.to_string(),
            port,
        }
    }

    #[test]
    fn count_of_values() {
        assert_eq!(normalize_host(&[], false), Err(HostError::Missing));
        let two: [&[u8]; 2] = [b"a.com", b"a.com"];
        assert_eq!(normalize_host(&two, false), Err(HostError::Duplicate));
        let two: [&[u8]; 2] = [b"a.com", b"b.com"];
        assert_eq!(normalize_host(&two, true), Err(HostError::Duplicate));
        assert_eq!(err(b"a.com,b.com"), HostError::Duplicate);
        assert_eq!(err(b"a.com, a.com"), HostError::Duplicate);
        assert_eq!(err(b""), HostError::Invalid);
        assert_eq!(err(b" \t "), HostError::Invalid);
    }

    #[test]
    fn names_and_case() {
        assert_eq!(ok("example.com", false), h("example.com", None));
        assert_eq!(ok(" Example.com\t", false), h("example.com", None));
        assert_eq!(ok("ExAmple.COM.:443", true), h("example.com", None));
        assert_eq!(ok("a.com.", false), h("a.com", None));
        assert_eq!(ok("localhost", false), h("localhost", None));
        assert_eq!(
            ok("my_host-1.internal", false),
            h("my_host-1.internal", None)
        );
        assert_eq!(ok("1a.example", false), h("1a.example", None));
        assert_eq!(err(b"a..b"), HostError::Invalid);
        assert_eq!(err(b"a.com.."), HostError::Invalid);
        assert_eq!(err(b".a.com"), HostError::Invalid);
        assert_eq!(err(b"."), HostError::Invalid);
        assert_eq!(err(b".:80"), HostError::Invalid);
        assert_eq!(err(b":80"), HostError::Invalid);
        assert_eq!(err(b"a!b.com"), HostError::Invalid);
        assert_eq!(err(b"a*.com"), HostError::Invalid);
    }

    #[test]
    fn length_limits() {
        let l63 = "a".repeat(63);
        assert_eq!(ok(&format!("{l63}.com"), false).name, format!("{l63}.com"));
        assert_eq!(
            err(format!("{}.com", "a".repeat(64)).as_bytes()),
            HostError::Invalid
        );
        let n253 = format!("{l63}.{l63}.{l63}.{}", "a".repeat(61));
        assert_eq!(n253.len(), 253);
        assert_eq!(ok(&format!("{n253}."), false).name, n253);
        assert_eq!(err(format!("{n253}a").as_bytes()), HostError::Invalid);
    }

    #[test]
    fn forbidden_bytes() {
        assert_eq!(err(b"user@a.com"), HostError::Invalid);
        assert_eq!(err(b"a .com"), HostError::Invalid);
        assert_eq!(err(b"a\t.com"), HostError::Invalid);
        assert_eq!(err(b"a.com\r\n"), HostError::Invalid);
        assert_eq!(err(b"a.com\0"), HostError::Invalid);
        assert_eq!(err(b"a.com\x7f"), HostError::Invalid);
        assert_eq!(err("é.com".as_bytes()), HostError::Invalid);
        for b in ["a.com/x", "a\\b.com", "a.com?x", "a.com#x", "a%2ecom"] {
            assert_eq!(err(b.as_bytes()), HostError::Invalid, "{b}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(ok("a.com:8080", false), h("a.com", Some(8080)));
        assert_eq!(ok("a.com:80", false), h("a.com", None));
        assert_eq!(ok("a.com:80", true), h("a.com", Some(80)));
        assert_eq!(ok("a.com:443", true), h("a.com", None));
        assert_eq!(ok("a.com:443", false), h("a.com", Some(443)));
        assert_eq!(ok("a.com:65535", false), h("a.com", Some(65535)));
        assert_eq!(err(b"a.com:99999"), HostError::Invalid);
        assert_eq!(err(b"a.com:65536"), HostError::Invalid);
        assert_eq!(err(b"a.com:0"), HostError::Invalid);
        assert_eq!(err(b"a.com:"), HostError::Invalid);
        assert_eq!(err(b"a.com:+80"), HostError::Invalid);
        assert_eq!(err(b"a.com:-1"), HostError::Invalid);
        assert_eq!(err(b"a.com:8a"), HostError::Invalid);
        assert_eq!(err(b"a.com:80:80"), HostError::Invalid);
        assert_eq!(err(b"a.com:0000080"), HostError::Invalid);
    }

    #[test]
    fn ipv4() {
        assert_eq!(ok("127.0.0.1", false), h("127.0.0.1", None));
        assert_eq!(ok("127.0.0.1:80", false), h("127.0.0.1", None));
        assert_eq!(ok("127.0.0.1:80", true), h("127.0.0.1", Some(80)));
        assert_eq!(ok("10.0.0.1.", false), h("10.0.0.1", None));
        // numeric spellings that resolvers may read as addresses are refused
        assert_eq!(err(b"127.1"), HostError::Invalid);
        assert_eq!(err(b"2130706433"), HostError::Invalid);
        assert_eq!(err(b"0x7f.0.0.1"), HostError::Invalid);
        assert_eq!(err(b"1.2.3.999"), HostError::Invalid);
        assert_eq!(err(b"1.2.3.0x1"), HostError::Invalid);
    }

    #[test]
    fn ipv6() {
        assert_eq!(ok("[::1]:8080", false), h("[::1]", Some(8080)));
        assert_eq!(ok("[::1]", false), h("[::1]", None));
        assert_eq!(ok("[::1]:443", true), h("[::1]", None));
        assert_eq!(ok("[2001:DB8:0:0:0:0:0:1]", true), h("[2001:db8::1]", None));
        assert_eq!(ok("[::ffff:1.2.3.4]", false).name, "[::ffff:1.2.3.4]");
        assert_eq!(err(b"::1"), HostError::Invalid);
        assert_eq!(err(b"[::1"), HostError::Invalid);
        assert_eq!(err(b"[]"), HostError::Invalid);
        assert_eq!(err(b"[::1]x"), HostError::Invalid);
        assert_eq!(err(b"[::1]:"), HostError::Invalid);
        assert_eq!(err(b"[::1]."), HostError::Invalid);
        assert_eq!(err(b"[fe80::1%25eth0]"), HostError::Invalid);
        assert_eq!(err(b"[1.2.3.4]"), HostError::Invalid);
        assert_eq!(err(b"[a.com]"), HostError::Invalid);
    }

    #[test]
    fn authority_and_display() {
        assert_eq!(ok("A.com:8443", true).authority(), "a.com:8443");
        assert_eq!(ok("a.com:443", true).authority(), "a.com");
        assert_eq!(ok("[::1]:81", false).authority(), "[::1]:81");
        assert_eq!(HostError::Missing.to_string(), "missing host");
        assert_eq!(HostError::Duplicate.to_string(), "more than one host");
        assert_eq!(HostError::Invalid.to_string(), "invalid host");
    }
}
