//! Request hygiene: what is decided on is exactly what is forwarded, and nothing a client sends
//! can pass for something the gateway vouches for.
//!
//! - `target`: the normalised path (and verbatim query) that rules see and the upstream gets;
//! - `host`: the normalised host; missing, duplicated or invalid hosts are refused;
//! - the rest of this file: headers. Identity headers and the gateway's own cookies are removed
//!   from every request, `Connection` may not nominate a header the gateway sets, and
//!   `X-Forwarded-*` is believed only from trusted proxies.

pub mod host;
pub mod target;

use std::collections::HashSet;
use std::net::IpAddr;

use http::header::{CONNECTION, COOKIE, FORWARDED, HOST};
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::http::RequestHeader;

use crate::identity::IdentityHeaders;

// Statics, not consts: `from_static` then runs once, at compile time, and a clone is a copy.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Refuses HTTP/1 framing a front end and a back end could read differently (RFC 9112 §6):
/// `Content-Length` with `Transfer-Encoding`, several or malformed `Content-Length`s, and any
/// transfer coding other than a lone `chunked`. (Obsolete line folding and a space before the
/// colon are already refused by pingora's parser.)
pub fn check_framing(req: &RequestHeader) -> Result<(), &'static str> {
    let lengths: Vec<&[u8]> = req
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let codings: Vec<&[u8]> = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !lengths.is_empty() && !codings.is_empty() {
        return Err("both content-length and transfer-encoding");
    }
    if lengths.len() > 1 {
        return Err("more than one content-length");
    }
    if let Some(len) = lengths.first() {
        if len.is_empty() || !len.iter().all(u8::is_ascii_digit) {
            return Err("malformed content-length");
        }
    }
    if codings.len() > 1
        || codings
            .first()
            .is_some_and(|c| !c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
    {
        return Err("unsupported transfer-encoding");
    }
    Ok(())
}

/// Header rules, built once from the config.
#[derive(Debug)]
pub struct HeaderHygiene {
    /// Identity header names, lower case with `-` (a client's `_` is read as `-`).
    identity: HashSet<String>,
    /// Headers a client's `Connection` may not nominate: the identity headers and forwarding.
    protected: HashSet<String>,
    /// Cookie names that belong to the gateway and never reach an upstream.
    gateway_cookies: Vec<String>,
    trusted_proxies: Vec<IpNet>,
}

/// Headers some frameworks read as the request's real URL or method (IIS/ASP.NET's
/// `X-Original-URL` and `X-Rewrite-URL`, a proxy's `X-Forwarded-Uri`/`-Path`, the method
/// overrides of Rails, Express, Symfony and others): a client's copy would let the app act on
/// another path or method than the one the rules decided on, so it is removed like the
/// identity headers.
pub const OVERRIDE_HEADERS: [&str; 7] = [
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl HeaderHygiene {
    pub fn new(
        identity: &IdentityHeaders,
        trusted_proxies: &[IpNet],
        gateway_cookies: Vec<String>,
    ) -> Self {
        let identity: HashSet<String> = identity
            .all()
            .iter()
            .map(|n| n.as_str().replace('_', "-"))
            .chain(OVERRIDE_HEADERS.iter().map(|h| (*h).to_owned()))
            .collect();
        let mut protected = identity.clone();
        for h in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &FORWARDED,
            &X_REAL_IP,
            &HOST,
        ] {
            protected.insert(h.as_str().to_owned());
        }
        HeaderHygiene {
            identity,
            protected,
            gateway_cookies,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }

    /// Whether `peer` is one of `server.trusted_proxies`.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }

    /// The address failure limits and rules should use: the peer, or, behind trusted proxies,
    /// the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, req: &RequestHeader, peer: IpAddr) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut chain: Vec<IpAddr> = req
            .headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        chain.push(peer);
        chain
            .into_iter()
            .rev()
            .find(|ip| !self.is_trusted(*ip))
            .unwrap_or(peer)
    }

    /// Removes client-sent identity headers (any case, `_` for `-`) and the gateway's cookies,
    /// and drops `Connection` tokens that nominate a protected header.
    pub fn clean(&self, req: &mut RequestHeader) {
        let doomed: Vec<String> = req
            .headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| {
                k.contains('_') && self.identity.contains(&k.replace('_', "-"))
                    || self.identity.contains(*k)
            })
            .map(str::to_owned)
            .collect();
        for name in doomed {
            req.remove_header(&name);
        }
        self.clean_connection(req);
        self.clean_cookies(req);
    }

    fn clean_connection(&self, req: &mut RequestHeader) {
        if !req.headers.contains_key(CONNECTION) {
            return;
        }
        let tokens: Vec<String> = req
            .headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let kept: Vec<&str> = tokens
            .iter()
            .map(String::as_str)
            .filter(|t| !self.protected.contains(&t.replace('_', "-")))
            .collect();
        if kept.len() == tokens.len() {
            return;
        }
        req.remove_header(&CONNECTION);
        if !kept.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
                let _ = req.insert_header(CONNECTION, v);
            }
        }
    }

    fn clean_cookies(&self, req: &mut RequestHeader) {
        if self.gateway_cookies.is_empty() || !req.headers.contains_key(COOKIE) {
            return;
        }
        let mut changed = false;
        let mut kept = Vec::new();
        for value in req.headers.get_all(COOKIE) {
            for pair in value.as_bytes().split(|b| *b == b';') {
                let text = String::from_utf8_lossy(pair);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let name = text.split('=').next().unwrap_or("").trim();
                if self.gateway_cookies.iter().any(|c| c == name) {
                    changed = true;
                } else {
                    kept.push(text.to_owned());
                }
            }
        }
        if !changed {
            return;
        }
        req.remove_header(&COOKIE);
        if !kept.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                let _ = req.insert_header(COOKIE, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hygiene(trusted: &[&str]) -> HeaderHygiene {
        let nets: Vec<IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        HeaderHygiene::new(
            &IdentityHeaders::default(),
            &nets,
            vec!["stepgate_session".into()],
        )
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn strips_identity_in_any_spelling() {
        let mut r = req(&[
            ("Remote-User", "a"),
            ("remote_user", "b"),
            ("REMOTE-GROUPS", "x"),
            ("X-Stepgate-Assertion", "j"),
            ("Other", "1"),
        ]);
        hygiene(&[]).clean(&mut r);
        let names: Vec<_> = r.headers.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, vec!["other"]);
    }

    #[test]
    fn connection_cannot_nominate_protected_headers() {
        let mut r = req(&[(
            "Connection",
            "keep-alive, Remote-User, x_forwarded_for, X-Custom",
        )]);
        hygiene(&[]).clean(&mut r);
        assert_eq!(r.headers.get("connection").unwrap(), "keep-alive, x-custom");
        let mut only = req(&[("Connection", "x-forwarded-host")]);
        hygiene(&[]).clean(&mut only);
        assert!(only.headers.get("connection").is_none());
    }

    #[test]
    fn gateway_cookies_are_removed() {
        let mut r = req(&[("Cookie", "a=1; stepgate_session=zzz"), ("Cookie", "b=2")]);
        hygiene(&[]).clean(&mut r);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
        let mut only = req(&[("Cookie", "stepgate_session=zzz")]);
        hygiene(&[]).clean(&mut only);
        assert!(only.headers.get("cookie").is_none());
    }
}
