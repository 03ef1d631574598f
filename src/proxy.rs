//! `Gateway`: pingora's `ProxyHttp`, kept thin. Each phase delegates:
//! `request_filter` -> `proxy::route` (hygiene, app, decision), portal replies written by
//! `proxy::respond`; `upstream_peer` -> `proxy::upstream`; `upstream_request_filter` sets the
//! forwarding headers; `logging` writes the access line.

pub mod authz;
pub mod connections;
pub mod decide;
pub mod forward;
pub mod respond;
pub mod route;
pub mod upstream;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

use crate::access::AccessRules;
use crate::auth::Auth;
use crate::hygiene::HeaderHygiene;
use crate::identity::{self, IdentityHeaders};
use crate::portal::login::PortalRequest;
use crate::portal::Pages;
use crate::routing::HostRouter;
use route::Route;
use upstream::Upstream;

/// One app at run time.
pub struct AppRuntime {
    pub id: String,
    pub upstream: Upstream,
}

/// Everything a request needs, shared by all worker threads.
pub struct State {
    pub router: HostRouter,
    pub apps: Vec<AppRuntime>,
    /// The access rules in force; `SIGHUP` swaps in the file's new ones (`app::Housekeeping`).
    pub rules: arc_swap::ArcSwap<AccessRules>,
    pub hygiene: HeaderHygiene,
    pub pages: Pages,
    pub auth: Auth,
    /// The identity headers and assertion kept per (session, app); the session layer evicts.
    pub identities: Arc<crate::identity::IdentityCache>,
    pub identity_headers: IdentityHeaders,
    pub access_log: bool,
    /// `[metrics]` is on: each request is counted (and timed).
    pub metrics: bool,
    /// `Strict-Transport-Security` for answers over HTTPS (`server.hsts_max_age`), if sent.
    pub hsts: Option<http::HeaderValue>,
    /// Each read of a request body and write of an answer (`server.body_timeout`); a portal
    /// form must arrive whole within it.
    pub body_timeout: Duration,
}

/// Largest portal form body read (sign-in and other forms are far smaller).
const MAX_FORM_BODY: usize = 16 * 1024;

pub struct Gateway {
    pub state: Arc<State>,
}

/// Per-request state across phases.
#[derive(Debug, Default)]
pub struct Ctx {
    started: Option<Instant>,
    route: Option<Route>,
    seen: route::Seen,
    /// What was decided, for the access line.
    decision: &'static str,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
}

/// Reads a portal request's body, up to `limit` bytes and within `deadline` as a whole;
/// otherwise the status to answer: 413 when it is larger, 408 when it is late or broken off
/// (each read also has `server.body_timeout`).
async fn read_form(
    session: &mut Session,
    limit: usize,
    deadline: Duration,
) -> std::result::Result<bytes::Bytes, http::StatusCode> {
    if session.req_header().method != http::Method::POST {
        return Ok(bytes::Bytes::new());
    }
    let read = async {
        let mut body = bytes::BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(http::StatusCode::PAYLOAD_TOO_LARGE);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(e) => {
                    tracing::debug!(error = %e, "could not read a portal form body");
                    return Err(http::StatusCode::REQUEST_TIMEOUT);
                }
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(http::StatusCode::REQUEST_TIMEOUT))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            // Timings only feed the access line: no clock reads when it is off.
            started: (self.state.access_log || self.state.metrics).then(Instant::now),
            decision: "-",
            ..Ctx::default()
        }
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        connections::begin_request(session, self.state.body_timeout);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        match route::route(&self.state, session, &mut ctx.seen).await {
            route::Outcome::Proxy(r) => {
                ctx.decision = r.decision.as_str();
                ctx.route = Some(r);
                Ok(false)
            }
            route::Outcome::Portal {
                sub,
                tls,
                client,
                origin,
                presented,
            } => {
                ctx.decision = "portal";
                // A certificate upload may be larger than a form.
                let limit = if sub == "/certificates/upload" {
                    crate::certificates::MAX_FILE + MAX_FORM_BODY
                } else {
                    MAX_FORM_BODY
                };
                let reply = match read_form(session, limit, self.state.body_timeout).await {
                    Ok(body) => {
                        let req_header = session.req_header();
                        let req = PortalRequest {
                            method: &req_header.method,
                            sub: &sub,
                            query: req_header.uri.query(),
                            headers: &req_header.headers,
                            body,
                            tls,
                            client,
                            origin,
                            presented,
                        };
                        self.state
                            .pages
                            .serve(&self.state.auth, &self.state.router, &req)
                            .await
                    }
                    Err(status) => {
                        // The rest of the body is not waited for: closed after the answer.
                        session.set_keepalive(None);
                        let lang = self.state.pages.lang_for(&session.req_header().headers);
                        self.state.pages.error(status, lang)
                    }
                };
                respond::write(session, reply, self.state.hsts.as_ref()).await?;
                Ok(true)
            }
            route::Outcome::Reply { reply, decision } => {
                ctx.decision = decision;
                respond::write(session, reply, self.state.hsts.as_ref()).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.as_ref() else {
            // request_filter always routes before this phase; fail closed if it did not.
            return Error::e_explain(ErrorType::HTTPStatus(500), "no route for request");
        };
        if ctx.started.is_some() {
            ctx.upstream_started = Some(Instant::now());
        }
        match &self.state.apps[route.app].upstream {
            Upstream::Whoami(addr) => Ok(Box::new(HttpPeer::new(*addr, false, String::new()))),
            Upstream::Pool(pool) => pool
                .select()
                .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy upstream")),
            // `route` answers such an app's requests itself; fail closed if one got here.
            Upstream::ForwardAuthOnly => Error::e_explain(
                ErrorType::HTTPStatus(404),
                "a forward-auth app is not proxied",
            ),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // One retry on another server of the pool: a connection that never opened did not
        // reach the app, so retrying cannot repeat a request.
        if let Some(route) = ctx.route.as_mut() {
            if route.retries == 0 {
                route.retries += 1;
                e.set_retry(true);
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(route) = ctx.route.as_ref() else {
            return Error::e_explain(ErrorType::HTTPStatus(500), "no route for request");
        };
        let identity = match &route.identity {
            None => None,
            Some(who) => {
                let (auth, app) = (&self.state.auth, &self.state.apps[route.app]);
                let names = &self.state.identity_headers;
                let app = (route.app, app.id.as_str());
                let cache = &self.state.identities;
                let prepared = identity::prepared(cache, &auth.signer, names, who, app);
                Some(prepared.map_err(|e| {
                    Error::because(
                        ErrorType::HTTPStatus(500),
                        "cannot sign the identity assertion",
                        e,
                    )
                })?)
            }
        };
        // Host, the three X-Forwarded-* and the identity headers.
        let adding = 4 + identity.as_ref().map_or(0, |ready| ready.headers().len());
        forward::edit_headers(upstream, adding, |headers| {
            forward::set_host(headers, &route.authority)?;
            let (peer, tls) = (route.peer, route.tls);
            forward::set_forwarded(headers, &self.state.hygiene, peer, tls, &route.authority)?;
            identity.map_or(Ok(()), |ready| forward::set_all(headers, ready.headers()))
        })
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        // The gateway terminates TLS, so its policy is the one that holds: an app's own
        // header (or its `max-age=0`) is replaced.
        if let (Some(hsts), Some(true)) = (&self.state.hsts, ctx.route.as_ref().map(|r| r.tls)) {
            upstream.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = respond::status_for_error(e);
        if code > 0 {
            ctx.decision = if ctx.route.is_some() {
                "upstream_error"
            } else {
                "error"
            };
            let lang = self.state.pages.lang_for(&session.req_header().headers);
            let status = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
            if let Err(write_err) = respond::write(
                session,
                self.state.pages.error(status, lang),
                self.state.hsts.as_ref(),
            )
            .await
            {
                tracing::debug!(error = %write_err, "could not write the error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        connections::end_request(session);
        if self.state.metrics {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            let app = ctx
                .route
                .as_ref()
                .map_or("-", |r| self.state.apps[r.app].id.as_str());
            crate::metrics::request(app, ctx.decision, status, ctx.upstream_time);
        }
        if !self.state.access_log
            || !tracing::enabled!(target: "stepgate::access", tracing::Level::INFO)
        {
            return;
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let (host, path) = match &ctx.route {
            Some(r) => (r.authority.as_str(), r.path.as_str()),
            None if !ctx.seen.authority.is_empty() => {
                (ctx.seen.authority.as_str(), ctx.seen.path.as_str())
            }
            None => ("-", "-"),
        };
        let peer: Option<IpAddr> = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        tracing::info!(
            target: "stepgate::access",
            method = %session.req_header().method,
            host,
            path,
            decision = ctx.decision,
            user = ctx
                .route
                .as_ref()
                .and_then(|r| r.identity.as_ref())
                .map_or("-", |i| i.user.name.as_str()),
            status,
            client = %peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
            total_ms = ctx.started.map(|t| t.elapsed().as_secs_f64() * 1000.0),
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }
}
