//! The sign-in form and sign-out, and how the portal reads a request (`PortalRequest`).
//!
//! One generic failure for an unknown user, a wrong password, a disabled user and a user under a
//! ban: the same status, body and cookies (the timing rules are `flow::sign_in`'s).

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use super::csrf;
use super::{see_other, Pages, Reply};
use crate::auth::Auth;
use crate::flow::{self, SignInRefused};
use crate::i18n::Lang;
use crate::routing::HostRouter;

/// Base name of the cookie a sign-in form's CSRF token is bound to.
pub const FORM_COOKIE: &str = "stepgate_csrf";
/// Base name of the cookie that remembers the language a user chose with the switch.
pub const LANG_COOKIE: &str = "stepgate_lang";

/// A request to the portal, as the proxy layer read it.
pub struct PortalRequest<'a> {
    pub method: &'a Method,
    /// The path after the portal prefix, e.g. `/login`.
    pub sub: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub tls: bool,
    pub client: IpAddr,
    /// `scheme://host[:port]` of the request.
    pub origin: String,
    /// The client certificate the connection presented, on a listener that asks for one.
    pub presented: Option<std::sync::Arc<crate::certificates::Presented>>,
}

impl PortalRequest<'_> {
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.and_then(|q| form_value(q.as_bytes(), name))
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body or query.
pub fn form_value(form: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(form)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub struct LoginPage<'a> {
    pub lang: Lang,
    pub rd: &'a str,
    pub username: &'a str,
    pub error: bool,
    pub csrf: &'a str,
    /// "Keep me signed in" is offered (saved sign-ins are on).
    pub keep_offered: bool,
    /// A passwordless passkey sign-in begun for this page: its options (JSON).
    pub passkey_options: Option<&'a str>,
}

impl Pages {
    pub fn login(&self, p: &LoginPage<'_>) -> Result<String, minijinja::Error> {
        let other = match p.lang {
            Lang::En => Lang::Ko,
            Lang::Ko => Lang::En,
        };
        let rd_q: String = url::form_urlencoded::byte_serialize(p.rd.as_bytes()).collect();
        self.render(
            "login.html",
            minijinja::context! {
                lang => p.lang.tag(),
                title => p.lang.text("login-title"),
                keep_offered => p.keep_offered,
                passkey_options => p.passkey_options,
                passkey_script => p.passkey_options.is_some(),
                reset_url => format!("{}/reset", self.config().prefix),
                error => p.error.then(|| p.lang.text("login-failed")),
                rd => p.rd,
                username => p.username,
                csrf => p.csrf,
                switch_url => format!("{}/login?rd={rd_q}&lang={}", self.config().prefix, other.tag()),
                switch_lang => other.tag(),
                switch_label => other.native_name(),
            },
        )
    }
}

/// The page's language: the form's `lang`, the query's `lang` (the language switch), the
/// language cookie, `Accept-Language`, the default; in that order.
pub(crate) fn lang_of(pages: &Pages, req: &PortalRequest<'_>, form_lang: Option<String>) -> Lang {
    form_lang
        .or_else(|| req.param("lang"))
        .and_then(|l| Lang::from_tag(&l))
        .unwrap_or_else(|| pages.lang_for(req.headers))
}

/// `GET /login`: the form, or straight on to `rd` when already signed in.
pub async fn show(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let rd = req.param("rd").unwrap_or_default();
    let lang = lang_of(pages, req, None);
    match auth.identify(req.headers, req.tls).await {
        Ok(Some(_)) => {
            return Reply::redirect(&pages.return_to.resolve(Some(&rd), &req.origin, router))
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "could not read the session");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    }
    form(auth, pages, req, lang, &rd, "", false, StatusCode::OK).await
}

/// The sign-in form (and, when passwordless passkeys are on, the passkey button with a
/// ceremony begun for this browser's form cookie).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn form(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    lang: Lang,
    rd: &str,
    username: &str,
    error: bool,
    status: StatusCode,
) -> Reply {
    let (token, set_binding) = form_token(auth, pages, req);
    let passkey_options = flow::passkeys::begin_sign_in(auth, &token).await;
    let page = LoginPage {
        passkey_options: passkey_options.as_deref(),
        lang,
        rd,
        username,
        error,
        csrf: &token,
        keep_offered: auth.sessions.config().saved_lifetime.is_some(),
    };
    let mut reply = match pages.login(&page) {
        Ok(html) => Reply::new(status, "text/html; charset=utf-8", html),
        Err(e) => {
            tracing::error!(error = %e, "sign-in page failed to render");
            return pages.error(StatusCode::INTERNAL_SERVER_ERROR, lang);
        }
    };
    if let Some(cookie) = set_binding {
        reply = reply.with_header("set-cookie", cookie);
    }
    reply
}

/// The CSRF token of a form shown to someone who is not signed in (sign-in, password reset),
/// bound to a random cookie of the browser; and the `Set-Cookie` for that cookie when the
/// browser has none yet (an existing one is reused, so two open tabs both work).
pub(crate) fn form_token(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
) -> (String, Option<String>) {
    let jar = auth.jar(req.tls);
    let existing = crate::session::cookie::read(req.headers, &jar.other_name(FORM_COOKIE))
        .filter(|v| v.len() == 22);
    let binding = existing.map_or_else(csrf::random_binding, str::to_owned);
    let token = pages.csrf.token(binding.as_bytes());
    let set = existing
        .is_none()
        .then(|| jar.set_other(FORM_COOKIE, &binding));
    (token, set)
}

/// Whether a form post from someone not signed in carries the token of its browser's binding.
pub(crate) fn form_token_ok(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> bool {
    let jar = auth.jar(req.tls);
    let binding =
        crate::session::cookie::read(req.headers, &jar.other_name(FORM_COOKIE)).unwrap_or("");
    let token = form_value(&req.body, "csrf").unwrap_or_default();
    !binding.is_empty() && pages.csrf.verify(binding.as_bytes(), &token)
}

/// `POST /login`: the form's CSRF binding, then `flow::sign_in`; on to `rd` with the new
/// session, or the form again with the one generic failure.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let body = &req.body[..];
    let lang = lang_of(pages, req, form_value(body, "lang"));
    let rd = form_value(body, "rd").unwrap_or_default();
    if !form_token_ok(auth, pages, req) {
        tracing::warn!(target: "stepgate::portal", client = %req.client, "sign-in refused: missing or invalid CSRF token");
        return pages.error(StatusCode::FORBIDDEN, lang);
    }
    let raw_name = form_value(body, "username").unwrap_or_default();
    let password = form_value(body, "password").unwrap_or_default();
    let Ok(previous) = auth.identify(req.headers, req.tls).await else {
        return pages.fault(lang);
    };
    let ctx = pages.context(req, lang);
    let previous = previous.map(|who| who.key);
    let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
    let app = url::Url::parse(&target)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| req.origin.clone());
    let choices = flow::SignInChoices {
        keep: form_value(body, "keep").is_some_and(|v| !v.is_empty()),
        app: &app,
    };
    match flow::sign_in(auth, &ctx, &raw_name, &password, choices, previous.as_ref()).await {
        Ok(done) => {
            let mut reply = pages.signed_in_to(auth, req, &done.signed, &target);
            if let Some(device) = &done.new_device {
                reply = reply.with_header(
                    "set-cookie",
                    Pages::lasting_cookie(
                        req,
                        crate::browsers::DEVICE_COOKIE,
                        device,
                        crate::browsers::DEVICE_COOKIE_SECS,
                    ),
                );
            }
            reply
        }
        Err(SignInRefused::Failed) => {
            form(
                auth,
                pages,
                req,
                lang,
                &rd,
                &raw_name,
                true,
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(SignInRefused::Busy | SignInRefused::Fault) => pages.fault(lang),
    }
}

/// `POST /logout`: ends the session (server-side), clears the cookie and site data.
pub async fn logout(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, form_value(&req.body, "lang"));
    let jar = auth.jar(req.tls);
    // The sign-in page is in the language of this one.
    let sign_in = format!("{}/login?lang={}", pages.config().prefix, lang.tag());
    let Ok(who) = auth.identify(req.headers, req.tls).await else {
        return pages.fault(lang);
    };
    let Some(who) = who else {
        return see_other(&sign_in).with_header("set-cookie", jar.clear_session());
    };
    let token = form_value(&req.body, "csrf").unwrap_or_default();
    if !pages.csrf.verify(&who.key, &token) {
        tracing::warn!(target: "stepgate::portal", user = %who.user.name, "sign-out refused: missing or invalid CSRF token");
        return pages.error(StatusCode::FORBIDDEN, lang);
    }
    if flow::sign_out(auth, &pages.context(req, lang), &who)
        .await
        .is_err()
    {
        return pages.fault(lang);
    }
    // Not `Clear-Site-Data: "cookies"`: it would also forget that this browser is trusted
    // ("don't ask again") and known, which signing out must not undo.
    see_other(&sign_in)
        .with_header("set-cookie", jar.clear_session())
        .with_header("clear-site-data", "\"cache\"")
}
