//! The request header an app receives: the client's (already cleaned by `hygiene`) with the
//! normalised `Host`, `X-Forwarded-*` and, for a signed-in user, the identity headers.
//!
//! These are set on the `http::HeaderMap` itself rather than through pingora's
//! `RequestHeader::insert_header`, which parses every name again and keeps a second map of
//! each name's original spelling; that was most of what a signed-in request cost beyond a bypass
//! route (see benches/README.md). Without that second map pingora writes names in lower case
//! (`x-forwarded-for`, `remote-user`, `accept`) except a few it capitalises (`Host`,
//! `Content-Type`, `Content-Length`, `Transfer-Encoding`, `Connection`), much as HTTP/2 does and
//! as Envoy and HAProxy do for HTTP/1.1 by default. Header names are case-insensitive (RFC 9110,
//! section 5.1), and the order of the headers is kept.

use std::net::IpAddr;

use http::header::{FORWARDED, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

use crate::hygiene::{
    HeaderHygiene, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REAL_IP,
};

/// Rewrites `req`'s headers with `edit`, working on the header map directly, with room made
/// first for `adding` more headers (so the map does not grow while they are set).
pub fn edit_headers(
    req: &mut RequestHeader,
    adding: usize,
    edit: impl FnOnce(&mut HeaderMap) -> Result<()>,
) -> Result<()> {
    // The request target is serialised from the URI once the header is rebuilt; `route` has
    // already made it the normalised origin-form target, so this copy is only a safeguard.
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let verbatim = (req.raw_path() != pq.as_bytes()).then(|| req.raw_path().to_vec());
    let end_stream = req.send_end_stream();
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: Parts = std::mem::replace(req, placeholder).into();
    let edited = match parts.headers.try_reserve(adding) {
        Ok(()) => edit(&mut parts.headers),
        Err(e) => Err(too_many(e)),
    };
    let mut rebuilt = RequestHeader::from(parts);
    if let Some(raw) = verbatim {
        rebuilt.set_raw_path(&raw)?;
    }
    if let Some(end_stream) = end_stream {
        rebuilt.set_send_end_stream(end_stream);
    }
    *req = rebuilt;
    edited
}

fn too_many(e: http::header::MaxSizeReached) -> Box<Error> {
    Error::because(ErrorType::InvalidHTTPHeader, "too many headers", e)
}

/// Sets `name` to `value`, replacing any earlier value.
pub fn set(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) -> Result<()> {
    headers
        .try_insert(name, value)
        .map(|_| ())
        .map_err(too_many)
}

/// Sets each of `pairs` (the identity headers), replacing earlier values.
pub fn set_all(headers: &mut HeaderMap, pairs: &[(HeaderName, HeaderValue)]) -> Result<()> {
    for (name, value) in pairs {
        set(headers, name.clone(), value.clone())?;
    }
    Ok(())
}

/// Sets `name` to a text value (a host or an address list), which must be a valid header value.
pub fn set_str(headers: &mut HeaderMap, name: HeaderName, value: &str) -> Result<()> {
    let value = HeaderValue::from_str(value)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "invalid header value", e))?;
    set(headers, name, value)
}

/// `Host` becomes the normalised authority; the client's is kept when it already is that.
pub fn set_host(headers: &mut HeaderMap, authority: &str) -> Result<()> {
    let mut hosts = headers.get_all(HOST).iter();
    let same = hosts
        .next()
        .is_some_and(|h| h.as_bytes() == authority.as_bytes())
        && hosts.next().is_none();
    if same {
        return Ok(());
    }
    set_str(headers, HOST, authority)
}

/// Sets `X-Forwarded-For/-Proto/-Host`. A client's own values (and `Forwarded`, `X-Real-IP`) are
/// kept, and `X-Forwarded-For` extended with the peer, only when the peer is a trusted proxy.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    hygiene: &HeaderHygiene,
    peer: IpAddr,
    tls: bool,
    authority: &str,
) -> Result<()> {
    let (xff, xfp, xfh) = (&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST);
    let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    if hygiene.is_trusted(peer) {
        let prior: Vec<&str> = headers
            .get_all(xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let chain = if prior.is_empty() {
            peer.to_string()
        } else {
            format!("{}, {peer}", prior.join(", "))
        };
        set_str(headers, xff.clone(), &chain)?;
        if !headers.contains_key(xfp) {
            set(headers, xfp.clone(), proto)?;
        }
        if !headers.contains_key(xfh) {
            set_str(headers, xfh.clone(), authority)?;
        }
    } else {
        headers.remove(&FORWARDED);
        headers.remove(&X_REAL_IP);
        set_str(headers, xff.clone(), &peer.to_string())?;
        set(headers, xfp.clone(), proto)?;
        set_str(headers, xfh.clone(), authority)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IdentityHeaders;

    fn request(target: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn wire(r: &RequestHeader) -> String {
        let mut buf = bytes::BytesMut::new();
        r.header_to_h1_wire(&mut buf);
        String::from_utf8(buf.to_vec()).unwrap()
    }

    #[test]
    fn edits_keep_order_method_and_target() {
        let mut r = request(
            b"/a/b?x=1",
            &[("Host", "app.test"), ("X-Custom", "1"), ("Accept", "*/*")],
        );
        r.set_method(http::Method::POST);
        edit_headers(&mut r, 2, |h| {
            set_host(h, "app.test")?;
            set_str(h, HeaderName::from_static("remote-user"), "alice")
        })
        .unwrap();
        assert_eq!(r.method, http::Method::POST);
        assert_eq!(r.raw_path(), b"/a/b?x=1");
        assert_eq!(
            wire(&r),
            "Host: app.test\r\nx-custom: 1\r\naccept: */*\r\nremote-user: alice\r\n"
        );
    }

    #[test]
    fn host_is_replaced_only_when_it_differs() {
        let mut r = request(b"/", &[("Host", "A.TEST.:80")]);
        edit_headers(&mut r, 2, |h| set_host(h, "a.test")).unwrap();
        assert_eq!(r.headers.get_all(HOST).iter().count(), 1);
        assert_eq!(r.headers.get(HOST).unwrap(), "a.test");
        let mut none = request(b"/", &[]);
        edit_headers(&mut none, 1, |h| set_host(h, "a.test")).unwrap();
        assert_eq!(none.headers.get(HOST).unwrap(), "a.test");
    }

    #[test]
    fn an_invalid_value_is_an_error_and_the_request_survives() {
        let mut r = request(b"/x", &[("Host", "a.test")]);
        let err = edit_headers(&mut r, 2, |h| set_str(h, HOST, "a\r\nb")).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
        assert_eq!(r.headers.get(HOST).unwrap(), "a.test");
        assert_eq!(r.raw_path(), b"/x");
    }

    #[test]
    fn the_http2_end_of_stream_choice_is_kept() {
        let mut r = request(b"/x", &[]);
        r.set_version(http::Version::HTTP_2);
        r.set_send_end_stream(false);
        edit_headers(&mut r, 1, |h| set_host(h, "a.test")).unwrap();
        assert_eq!(r.send_end_stream(), Some(false));
        assert_eq!(r.version, http::Version::HTTP_2);
    }

    #[test]
    fn a_target_the_uri_cannot_reproduce_is_kept() {
        let mut r = request(b"http://a.test/x?y", &[]);
        let before = r.raw_path().to_vec();
        edit_headers(&mut r, 2, |h| set_host(h, "a.test")).unwrap();
        assert_eq!(r.raw_path(), before.as_slice());
    }

    fn hygiene(trusted: &[&str]) -> HeaderHygiene {
        let nets: Vec<ipnet::IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        HeaderHygiene::new(&IdentityHeaders::default(), &nets, vec![])
    }

    #[test]
    fn forwarded_headers_from_untrusted_peers_are_replaced() {
        let mut r = request(
            b"/",
            &[
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Forwarded-Proto", "https"),
                ("Forwarded", "for=1.2.3.4"),
                ("X-Real-IP", "1.2.3.4"),
            ],
        );
        let h = hygiene(&[]);
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(h.client_ip(&r, peer), peer);
        edit_headers(&mut r, 3, |hd| {
            set_forwarded(hd, &h, peer, false, "app.test")
        })
        .unwrap();
        assert_eq!(r.headers.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.9");
        assert_eq!(r.headers.get(&X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(r.headers.get(&X_FORWARDED_HOST).unwrap(), "app.test");
        assert!(r.headers.get(FORWARDED).is_none());
        assert!(r.headers.get(&X_REAL_IP).is_none());
    }

    #[test]
    fn trusted_proxies_extend_the_chain() {
        let mut r = request(
            b"/",
            &[
                ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
                ("X-Forwarded-Proto", "https"),
            ],
        );
        let h = hygiene(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(h.client_ip(&r, peer), client);
        edit_headers(&mut r, 3, |hd| {
            set_forwarded(hd, &h, peer, false, "app.test")
        })
        .unwrap();
        assert_eq!(
            r.headers.get(&X_FORWARDED_FOR).unwrap(),
            "203.0.113.7, 10.0.0.2, 10.0.0.1"
        );
        assert_eq!(r.headers.get(&X_FORWARDED_PROTO).unwrap(), "https");
        assert_eq!(r.headers.get(&X_FORWARDED_HOST).unwrap(), "app.test");
    }
}
