//! The request header an app receives: the client's (already cleaned by `hygiene`) with the
//! normalised `Host`, `X-Forwarded-*` and, for a signed-in user, the identity headers.
//!
//! These are set on the `http::HeaderMap` itself rather than through pingora's
//! `RequestHeader::insert_header`, which parses every name again and keeps a second map of
//! each name's original spelling; that was most of what a signed-in request cost beyond a bypass
//! route (see README, Performance). Without that second map pingora writes names in lower case
//! (`x-forwarded-for`, `remote-user`, `accept`) except a few it capitalises (`Host`,
//! `Content-Type`, `Content-Length`, `Transfer-Encoding`, `Connection`), much as HTTP/2 does and
//! as Envoy and HAProxy do for HTTP/1.1 by default. Header names are case-insensitive (RFC 9110,
//! section 5.1), and the order of the headers is kept.

use http::header::HOST;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

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
        Err(e) => Err(Error::because(
            ErrorType::InvalidHTTPHeader,
            "too many headers",
            e,
        )),
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

/// Sets `name` to `value`, replacing any earlier value.
pub fn set(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) -> Result<()> {
    headers
        .try_insert(name, value)
        .map(|_| ())
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "too many headers", e))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_target_the_uri_cannot_reproduce_is_kept() {
        let mut r = request(b"http://a.test/x?y", &[]);
        let before = r.raw_path().to_vec();
        edit_headers(&mut r, 2, |h| set_host(h, "a.test")).unwrap();
        assert_eq!(r.raw_path(), before.as_slice());
    }
}
