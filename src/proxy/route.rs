//! From a downstream request to an outcome: normalise, find the app, clean the headers, read who
//! is asking, then let the decision core (`crate::decision`) decide and answer. Every refusal
//! here is a reply the gateway writes itself; nothing refused is proxied.

use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use pingora::prelude::Session;

use super::State;
use crate::access::Principal;
use crate::auth::Identity;
use crate::certificates::{OnRequest, Presented};
use crate::decision::{self, Answer, Decision};
use crate::hygiene::host::{normalize_host, NormalHost};
use crate::hygiene::target::{normalize_target, NormalTarget};
use crate::portal::Reply;

/// The leaf certificate the connection presented (kept in its TLS digest by a listener that
/// asks for one), with the listener's local address.
fn presented(session: &Session) -> (Option<&Presented>, Option<std::net::SocketAddr>) {
    let presented = session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|s| s.extension.get::<Presented>());
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    (presented, local)
}

/// The most header bytes a request may carry (names, values and their separators).
pub const MAX_REQUEST_HEADERS: usize = 32 * 1024;

/// A request on its way to an upstream.
#[derive(Debug)]
pub struct Route {
    pub app: usize,
    /// Normalised `host[:port]` the client asked for.
    pub authority: String,
    pub path: String,
    pub tls: bool,
    /// The TCP peer.
    pub peer: IpAddr,
    /// The client address rules and limits use (the peer, or from trusted proxies).
    pub client: IpAddr,
    pub decision: Decision,
    /// Who is signed in, when the request carries a live session.
    pub identity: Option<Identity>,
    pub retries: u8,
}

#[must_use]
pub enum Outcome {
    Proxy(Route),
    Reply {
        reply: Reply,
        decision: &'static str,
    },
    /// A request for the gateway's own pages: served by `portal` (it may need the body).
    Portal {
        sub: String,
        tls: bool,
        client: IpAddr,
        origin: String,
        /// The client certificate the connection presented, on a listener that asks for one.
        presented: Option<Arc<Presented>>,
    },
}

/// What the access line shows for a request that was answered before it had a route.
#[derive(Debug, Default)]
pub struct Seen {
    pub authority: String,
    pub path: String,
}

fn refuse(state: &State, session: &Session, status: StatusCode, decision: &'static str) -> Outcome {
    Outcome::Reply {
        reply: state.pages.error(status, lang(state, session)),
        decision,
    }
}

fn lang(state: &State, session: &Session) -> crate::i18n::Lang {
    state.pages.lang_for(&session.req_header().headers)
}

pub async fn route(state: &State, session: &mut Session, seen: &mut Seen) -> Outcome {
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());

    // Headers are capped in total (pingora reads up to about a megabyte): an app behind may
    // take more than it can handle, and the gateway would forward it all.
    let header_bytes: usize = session
        .req_header()
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_REQUEST_HEADERS {
        tracing::info!(target: "stepgate::hygiene", %peer, header_bytes, "request refused: headers too large");
        return refuse(
            state,
            session,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
        );
    }
    // TRACE echoes the request, cookies and the gateway's own headers included, back to
    // whoever can read the answer (cross-site tracing); no app behind a gateway needs it.
    let method = &session.req_header().method;
    if *method == http::Method::TRACE || method.as_str().eq_ignore_ascii_case("TRACK") {
        tracing::info!(target: "stepgate::hygiene", %peer, method = %method, "request refused");
        return refuse(state, session, StatusCode::METHOD_NOT_ALLOWED, "bad_method");
    }
    let (host, target) = match parse_request(session, tls) {
        Ok(parsed) => parsed,
        Err(why) => {
            tracing::info!(target: "stepgate::hygiene", %peer, reason = why, "request refused");
            return refuse(state, session, StatusCode::BAD_REQUEST, "bad_request");
        }
    };

    seen.authority = host.authority();
    seen.path.clone_from(&target.path);
    let prefix = state.pages.config().prefix.as_str();
    if let Some(sub) = target
        .path
        .strip_prefix(prefix)
        .filter(|s| s.is_empty() || s.starts_with('/'))
    {
        if let Some(flavour) = super::authz::Flavour::of(sub) {
            let (reply, decision) = super::authz::answer(state, session, flavour, peer, tls).await;
            return Outcome::Reply { reply, decision };
        }
        let client = state.hygiene.client_ip(session.req_header(), peer);
        let scheme = if tls { "https" } else { "http" };
        return Outcome::Portal {
            sub: sub.to_owned(),
            tls,
            client,
            origin: format!("{scheme}://{}", seen.authority),
            presented: presented(session).0.map(|p| Arc::new(p.clone())),
        };
    }

    let Some(app) = state.router.route(&host.name) else {
        return refuse(state, session, StatusCode::NOT_FOUND, "unknown_host");
    };
    if matches!(state.apps[app].upstream, super::Upstream::ForwardAuthOnly) {
        // The operator's proxy serves this host and asks through forward-auth; a request that
        // came here instead has nothing to be proxied to.
        return refuse(state, session, StatusCode::NOT_FOUND, "not_proxied");
    }

    // Who is signed in is read before hygiene removes the gateway's cookies from the request.
    // A store fault is answered, never guessed past (fail closed).
    let mut identity = match state
        .auth
        .identify(&session.req_header().headers, tls)
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            tracing::error!(target: "stepgate::session", error = %e, "could not read the session");
            return refuse(
                state,
                session,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
            );
        }
    };
    // A client certificate counts for the signed-in user it is registered to, checked again on
    // every request (resumed TLS sessions skip the handshake's checks).
    if let (Some(who), (Some(cert), local)) = (identity.as_mut(), presented(session)) {
        match state.auth.certificates.on_request(local, Some(cert)).await {
            Ok(OnRequest::Valid(reg)) if reg.user == who.user.name => who.certificate = Some(reg),
            Ok(OnRequest::Valid(reg)) => {
                tracing::warn!(target: "stepgate::certificates", user = %who.user.name, owner = %reg.user, "a certificate of another user on this session's connection: not counted");
            }
            Ok(OnRequest::Refused(why)) => {
                tracing::info!(target: "stepgate::certificates", user = %who.user.name, why = why.as_str(), "client certificate not counted");
            }
            Ok(OnRequest::None | OnRequest::Unregistered(_)) => {}
            Err(e) => {
                tracing::error!(target: "stepgate::certificates", error = %e, "could not check a client certificate");
                return refuse(
                    state,
                    session,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_error",
                );
            }
        }
    }
    let req = session.req_header_mut();
    state.hygiene.clean(req);
    let client = state.hygiene.client_ip(req, peer);
    // Built once; the request is rewritten only when normalisation changed the target.
    let forwarded = target.to_uri_string();
    if req.raw_path() != forwarded.as_bytes() {
        match http::Uri::try_from(forwarded) {
            Ok(uri) => req.set_uri(uri),
            Err(_) => return refuse(state, session, StatusCode::BAD_REQUEST, "bad_request"),
        }
    }

    let method = session.req_header().method.clone();
    let who = identity.as_ref().map(|i| i as &dyn Principal);
    let decision = super::decide::decide(state, &host.name, &target.path, &method, client, who);
    let scheme = if tls { "https" } else { "http" };
    let authority = seen.authority.clone();
    let original = || format!("{scheme}://{authority}{}", target.to_uri_string());
    let answer = match decision {
        // Only a refusal or a redirect needs the rest; the proxied path does not compute it.
        Decision::Allow => Answer::Proxy,
        _ => {
            let browser = decision::is_browser(&method, &session.req_header().headers);
            decision::answer(decision, browser, &original(), prefix)
        }
    };
    match answer {
        Answer::Proxy => Outcome::Proxy(Route {
            app,
            authority,
            path: target.path,
            tls,
            peer,
            client,
            decision,
            identity,
            retries: 0,
        }),
        Answer::Redirect(location) => Outcome::Reply {
            reply: Reply::redirect(&location),
            decision: decision.as_str(),
        },
        Answer::Refuse(status) => {
            if let (Decision::Deny, Some(who)) = (decision, &identity) {
                tracing::info!(target: "stepgate::access", user = %who.user.name, host = %host.name, path = %target.path, "refused by rule");
            }
            refuse(state, session, status, decision.as_str())
        }
    }
}

/// Host and target, normalised; `Err` names why the request is refused with 400.
fn parse_request(session: &Session, tls: bool) -> Result<(NormalHost, NormalTarget), String> {
    let req = session.req_header();
    crate::hygiene::check_framing(req).map_err(str::to_owned)?;
    let host_headers: Vec<&[u8]> = req
        .headers
        .get_all(http::header::HOST)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let (host, raw_target): (NormalHost, Vec<u8>) = match req.uri.authority() {
        // HTTP/2 `:authority`, or an HTTP/1.1 absolute-form target.
        Some(authority) => {
            let host =
                normalize_host(&[authority.as_str().as_bytes()], tls).map_err(|e| e.to_string())?;
            if !host_headers.is_empty() {
                let header_host = normalize_host(&host_headers, tls).map_err(|e| e.to_string())?;
                if header_host != host {
                    return Err("host header differs from the request target's authority".into());
                }
            }
            let scheme_ok = req
                .uri
                .scheme_str()
                .is_none_or(|s| s == "http" || s == "https");
            if !scheme_ok {
                return Err("unsupported scheme in request target".into());
            }
            let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
            (host, pq.as_bytes().to_vec())
        }
        // An HTTP/1.1 absolute-form target the parser left whole (RFC 9112 §3.2.2).
        None => match crate::hygiene::target::absolute_form(req.raw_path()) {
            Some((authority, path_and_query)) => {
                let host = normalize_host(&[authority], tls).map_err(|e| e.to_string())?;
                if !host_headers.is_empty() {
                    let header_host =
                        normalize_host(&host_headers, tls).map_err(|e| e.to_string())?;
                    if header_host != host {
                        return Err(
                            "host header differs from the request target's authority".into()
                        );
                    }
                }
                (host, path_and_query)
            }
            None => (
                normalize_host(&host_headers, tls).map_err(|e| e.to_string())?,
                req.raw_path().to_vec(),
            ),
        },
    };
    let target = normalize_target(&raw_target).map_err(|e| e.to_string())?;
    Ok((host, target))
}
