//! Forward-auth: the gateway decides for a proxy in front of it (nginx `auth_request`, Traefik's
//! and Caddy's `forward_auth`, Envoy's `ext_authz`), which then serves or refuses the request
//! itself. The decision is the proxy path's own (`proxy::decide::decide`: the same rules,
//! sessions and lenient readings); only the answer differs:
//!
//! - allowed: 200 with every identity header (an empty value for what the user lacks, so that
//!   the proxy overwrites whatever the client sent) and the signed assertion;
//! - a browser that must sign in, pass its second factor, set it up or be checked: for nginx,
//!   401 with `Location` (nginx passes only 2xx, 401 and 403 on; its `error_page` turns the 401
//!   into the redirect), for Traefik, Caddy and Envoy 302 to the same place;
//! - any other client that must sign in: 401; refused: 403.
//!
//! The original request comes in headers, honoured only from `server.trusted_proxies`: from any
//! other peer the answer is 403, and a missing or malformed original is 400, never a 2xx. Every
//! answer carries `Cache-Control: no-store` and `Vary: Cookie`.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use pingora::prelude::Session;

use super::State;
use crate::access::Principal;
use crate::decision::{self, Answer, Decision};
use crate::hygiene::host::normalize_host;
use crate::hygiene::target::normalize_target;
use crate::portal::Reply;

const LOG: &str = "stepgate::authz";
const EXT_AUTHZ: &str = "/authz/ext-authz";

/// Which proxy asks, and so how the original request is described and how to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `GET /authz/auth-request`: nginx `auth_request`, with `X-Original-URL` and
    /// `X-Original-Method`.
    AuthRequest,
    /// `GET /authz/forward-auth`: Traefik and Caddy, with `X-Forwarded-Method`, `-Proto`,
    /// `-Host` and `-Uri`.
    ForwardAuth,
    /// `* /authz/ext-authz/PATH`: Envoy's `ext_authz` HTTP service, which sends the original
    /// method, `/authz/ext-authz` + the original path and query, the original `Host`, and
    /// `X-Forwarded-Proto`.
    ExtAuthz,
}

impl Flavour {
    /// The flavour a portal sub-path asks for, if it is a forward-auth endpoint.
    pub fn of(sub: &str) -> Option<Flavour> {
        match sub {
            "/authz/auth-request" => Some(Flavour::AuthRequest),
            "/authz/forward-auth" => Some(Flavour::ForwardAuth),
            _ if sub == EXT_AUTHZ || sub.starts_with("/authz/ext-authz/") => {
                Some(Flavour::ExtAuthz)
            }
            _ => None,
        }
    }
}

/// The request the proxy in front is asking about.
#[derive(Debug, PartialEq, Eq)]
struct Original {
    method: Method,
    https: bool,
    /// `host[:port]` as sent.
    authority: Vec<u8>,
    /// Path and query as sent.
    target: Vec<u8>,
}

fn one<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h [u8], String> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if !v.is_empty() => Ok(v.as_bytes()),
        (None, _) => Err(format!("no {name}")),
        (Some(_), Some(_)) => Err(format!("more than one {name}")),
        (Some(_), None) => Err(format!("an empty {name}")),
    }
}

fn method_of(raw: &[u8]) -> Result<Method, String> {
    // A method is a token (RFC 9110 §9.1); lower case is kept, as on the proxy path, where the
    // rules are also asked about its upper-case reading.
    Method::from_bytes(raw).map_err(|_| "a malformed method".to_owned())
}

fn https_of(proto: &[u8]) -> Result<bool, String> {
    match proto {
        p if p.eq_ignore_ascii_case(b"https") => Ok(true),
        p if p.eq_ignore_ascii_case(b"http") => Ok(false),
        _ => Err("an X-Forwarded-Proto other than http or https".into()),
    }
}

/// The original request `req` describes for `flavour`; `prefix`: the portal's.
fn original(
    flavour: Flavour,
    req: &http::request::Parts,
    prefix: &str,
) -> Result<Original, String> {
    let headers = &req.headers;
    match flavour {
        Flavour::AuthRequest => {
            let url = one(headers, "x-original-url")?;
            let https = url.len() >= 8 && url[..8].eq_ignore_ascii_case(b"https://");
            let (authority, target) = crate::hygiene::target::absolute_form(url)
                .ok_or("an X-Original-URL that is not an absolute http(s) URL")?;
            Ok(Original {
                method: method_of(one(headers, "x-original-method")?)?,
                https,
                authority: authority.to_vec(),
                target,
            })
        }
        Flavour::ExtAuthz => {
            let raw = req.uri.path_and_query().map_or("", |p| p.as_str());
            let rest = raw
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(EXT_AUTHZ))
                .ok_or("a path that does not start with the ext-authz endpoint as sent")?;
            let target = match rest.as_bytes().first() {
                Some(b'/') => rest.as_bytes().to_vec(),
                None | Some(b'?') => [b"/", rest.as_bytes()].concat(),
                Some(_) => return Err("a path that does not start with /".into()),
            };
            let authority = match req.uri.authority() {
                Some(a) => a.as_str().as_bytes().to_vec(),
                None => one(headers, "host")?.to_vec(),
            };
            Ok(Original {
                method: req.method.clone(),
                https: https_of(one(headers, "x-forwarded-proto")?)?,
                authority,
                target,
            })
        }
        Flavour::ForwardAuth => {
            let https = https_of(one(headers, "x-forwarded-proto")?)?;
            let target = one(headers, "x-forwarded-uri")?;
            if !target.starts_with(b"/") {
                return Err("an X-Forwarded-Uri that does not start with /".into());
            }
            Ok(Original {
                method: method_of(one(headers, "x-forwarded-method")?)?,
                https,
                authority: one(headers, "x-forwarded-host")?.to_vec(),
                target: target.to_vec(),
            })
        }
    }
}

/// A bodyless answer with the headers every forward-auth answer carries.
fn bare(status: StatusCode) -> Reply {
    Reply::new(status, "text/plain; charset=utf-8", "").with_header("vary", "Cookie")
}

/// An answer and the decision the access line shows for it.
type Answered = (Reply, &'static str);

fn reply(reply: Reply, decision: &'static str) -> Answered {
    (reply, decision)
}

/// Answers `GET {prefix}/authz/...` for the proxy at `peer`; `tls`: whether that proxy reached
/// the gateway over TLS (which session cookie the browser holds follows from the listener, as
/// on the portal the proxy passes on).
pub async fn answer(
    state: &State,
    session: &Session,
    flavour: Flavour,
    peer: IpAddr,
    tls: bool,
) -> Answered {
    if !state.hygiene.is_trusted(peer) {
        tracing::warn!(target: LOG, %peer, "forward-auth asked by a peer that is not a trusted proxy");
        return reply(bare(StatusCode::FORBIDDEN), "authz_untrusted");
    }
    let headers = &session.req_header().headers;
    let prefix = state.pages.config().prefix.as_str();
    let parsed = original(flavour, session.req_header(), prefix).and_then(|o| {
        let host = normalize_host(&[&o.authority], o.https).map_err(|e| e.to_string())?;
        let target = normalize_target(&o.target).map_err(|e| e.to_string())?;
        Ok((o, host, target))
    });
    let (original, host, target) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => {
            tracing::info!(target: LOG, %peer, reason = %why, "forward-auth refused: no valid original request");
            return reply(bare(StatusCode::BAD_REQUEST), "authz_bad_request");
        }
    };
    let Some(app) = state.router.route(&host.name) else {
        tracing::info!(target: LOG, host = %host.name, "forward-auth for a host no app serves: refused");
        return reply(bare(StatusCode::FORBIDDEN), "unknown_host");
    };
    let identity = match state.auth.identify(headers, tls).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::error!(target: "stepgate::session", error = %e, "could not read the session");
            return reply(bare(StatusCode::SERVICE_UNAVAILABLE), "store_error");
        }
    };
    let client = state.hygiene.client_ip(session.req_header(), peer);
    let who = identity.as_ref().map(|i| i as &dyn Principal);
    let decision = super::decide::decide(
        state,
        &host.name,
        &target.path,
        &original.method,
        client,
        who,
    );
    if decision == Decision::Allow {
        return allowed(state, app, identity.as_ref());
    }
    let scheme = if original.https { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", host.authority(), target.to_uri_string());
    let browser = decision::is_browser(&original.method, headers);
    match decision::answer(decision, browser, &url, prefix) {
        // Unreachable (Allow was answered above); refused rather than let through.
        Answer::Proxy => reply(bare(StatusCode::FORBIDDEN), decision.as_str()),
        Answer::Redirect(location) => {
            let status = match flavour {
                Flavour::AuthRequest => StatusCode::UNAUTHORIZED,
                Flavour::ForwardAuth | Flavour::ExtAuthz => StatusCode::FOUND,
            };
            reply(
                bare(status).with_header("location", location),
                decision.as_str(),
            )
        }
        Answer::Refuse(status) => {
            if let (Decision::Deny, Some(who)) = (decision, &identity) {
                tracing::info!(target: "stepgate::access", user = %who.user.name, host = %host.name, path = %target.path, "refused by rule");
            }
            reply(bare(status), decision.as_str())
        }
    }
}

/// 200 with every identity header: the user's, or all empty for a bypass route without one.
fn allowed(state: &State, app: usize, identity: Option<&crate::auth::Identity>) -> Answered {
    let names = &state.identity_headers;
    let mut set: Vec<(http::HeaderName, HeaderValue)> = Vec::with_capacity(9);
    if let Some(who) = identity {
        let runtime = &state.apps[app];
        let prepared = match crate::identity::prepared(
            &state.identities,
            &state.auth.signer,
            names,
            who,
            (app, runtime.id.as_str()),
        ) {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::error!(target: LOG, error = %e, "cannot sign the identity assertion");
                return reply(bare(StatusCode::INTERNAL_SERVER_ERROR), "assertion_error");
            }
        };
        set.extend(prepared.headers().iter().cloned());
    }
    for name in names.all() {
        if !set.iter().any(|(n, _)| n == name) {
            set.push((name.clone(), HeaderValue::from_static("")));
        }
    }
    let mut ok = bare(StatusCode::OK);
    ok.named = set;
    reply(ok, "allow")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, pairs: &[(&str, &str)]) -> http::request::Parts {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (n, v) in pairs {
            req = req.header(*n, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn headers(pairs: &[(&str, &str)]) -> http::request::Parts {
        parts("GET", "/_stepgate/authz/x", pairs)
    }

    const PREFIX: &str = "/_stepgate";

    /// `POST https://AUTHORITY/a/b?c=d`, as the tests describe it.
    fn post_to_a_b(authority: &str) -> Original {
        Original {
            method: Method::POST,
            https: true,
            authority: authority.as_bytes().to_vec(),
            target: b"/a/b?c=d".to_vec(),
        }
    }

    #[test]
    fn nginx_describes_the_original_in_two_headers() {
        let o = original(
            Flavour::AuthRequest,
            &headers(&[
                ("x-original-url", "https://wiki.test:8443/a/b?c=d"),
                ("x-original-method", "POST"),
            ]),
            PREFIX,
        )
        .unwrap();
        assert_eq!(o, post_to_a_b("wiki.test:8443"));
        for bad in [
            vec![("x-original-method", "GET")],
            vec![
                ("x-original-url", "/relative"),
                ("x-original-method", "GET"),
            ],
            vec![("x-original-url", "ftp://h/"), ("x-original-method", "GET")],
            vec![("x-original-url", "http://h/")],
            vec![("x-original-url", "http://h/"), ("x-original-method", "")],
            vec![
                ("x-original-url", "http://h/"),
                ("x-original-url", "http://other/"),
                ("x-original-method", "GET"),
            ],
        ] {
            assert!(
                original(Flavour::AuthRequest, &headers(&bad), PREFIX).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn traefik_and_caddy_describe_it_in_four() {
        let all = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "wiki.test"),
            ("x-forwarded-uri", "/x?y=1"),
        ];
        let o = original(Flavour::ForwardAuth, &headers(&all), PREFIX).unwrap();
        assert_eq!(o.target, b"/x?y=1");
        assert!(!o.https);
        for missing in 0..all.len() {
            let some: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, p)| *p)
                .collect();
            assert!(original(Flavour::ForwardAuth, &headers(&some), PREFIX).is_err());
        }
        let mut odd = all;
        odd[1] = ("x-forwarded-proto", "gopher");
        assert!(original(Flavour::ForwardAuth, &headers(&odd), PREFIX).is_err());
        odd = all;
        odd[3] = ("x-forwarded-uri", "x");
        assert!(original(Flavour::ForwardAuth, &headers(&odd), PREFIX).is_err());
    }

    #[test]
    fn envoy_sends_the_original_method_path_and_host_under_the_endpoint() {
        let proto = [("host", "wiki.test"), ("x-forwarded-proto", "https")];
        let o = original(
            Flavour::ExtAuthz,
            &parts("POST", "/_stepgate/authz/ext-authz/a/b?c=d", &proto),
            PREFIX,
        )
        .unwrap();
        assert_eq!(o, post_to_a_b("wiki.test"));
        for (uri, want) in [
            ("/_stepgate/authz/ext-authz", "/"),
            ("/_stepgate/authz/ext-authz?q=1", "/?q=1"),
        ] {
            let o = original(Flavour::ExtAuthz, &parts("GET", uri, &proto), PREFIX).unwrap();
            assert_eq!(o.target, want.as_bytes());
        }
        assert_eq!(Flavour::of("/authz/ext-authz/x/y"), Some(Flavour::ExtAuthz));
        assert_eq!(Flavour::of("/authz/ext-authzx"), None);
        // Without X-Forwarded-Proto, or the endpoint spelt otherwise on the wire: refused.
        let no_proto = parts(
            "GET",
            "/_stepgate/authz/ext-authz/a",
            &[("host", "wiki.test")],
        );
        assert!(original(Flavour::ExtAuthz, &no_proto, PREFIX).is_err());
        let encoded = parts("GET", "/_stepgate/authz/ext%2Dauthz/a", &proto);
        assert!(original(Flavour::ExtAuthz, &encoded, PREFIX).is_err());
    }
}
