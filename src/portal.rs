//! The gateway's own pages under the reserved prefix (default `/_stepgate`), and the branded
//! pages for refusals and upstream failures. Pages are rendered from templates compiled into the
//! binary; every response carries `Cache-Control: no-store` and a strict Content-Security-Policy
//! that allows nothing from other sites.

pub mod account;
pub mod approvals;
pub mod authenticator;
pub mod browsers;
pub mod certificates;
pub mod challenge;
pub mod contact;
pub mod csrf;
pub mod devices;
pub mod guide;
pub mod login;
pub mod passkeys;
pub mod password;
pub mod protect;
pub mod reauth;
pub mod return_to;
pub mod setup;
mod text;

use bytes::Bytes;
use http::{Method, StatusCode};
use minijinja::{context, Environment};

use crate::auth::{Auth, Identity};
use crate::flow::{Context, SignedIn};
use crate::i18n::Lang;
use crate::routing::HostPattern;
use crate::routing::HostRouter;
use login::PortalRequest;

/// `[portal]`: the gateway's own pages.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Reserved path prefix of the gateway's own pages on every host, e.g. `/_stepgate`.
    pub prefix: String,
    pub service_name: String,
    pub help_url: Option<String>,
    pub default_language: Lang,
    /// Where sign-in leads when `rd` is missing or not allowed.
    pub default_redirect: String,
    /// Hosts besides the served ones that `rd` may point to.
    pub allowed_redirect_hosts: Vec<HostPattern>,
}

pub const STYLE_CSS: &str = include_str!("portal/style.css");
/// The portal's script: progressive enhancement (copy and print buttons, the approval pages'
/// waiting), never needed.
pub const SCRIPT_JS: &str = include_str!("portal/portal.js");
/// The passkey ceremonies' script (`portal/passkeys.rs`), loaded only where passkeys are offered.
pub const PASSKEYS_JS: &str = include_str!("portal/passkeys.js");

/// The response headers every portal page and error page carries.
pub const PAGE_HEADERS: [(&str, &str); 6] = [
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// A rendered response the proxy layer writes out as it is.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    /// Headers whose names are configured (the identity headers of a forward-auth answer).
    pub named: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        let mut headers: Vec<(&'static str, String)> = PAGE_HEADERS
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        headers.push(("content-type", content_type.to_owned()));
        Reply {
            status,
            headers,
            named: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply::new(status, "application/json", body)
    }

    /// A redirect with a small body for clients that show it.
    pub fn redirect(location: &str) -> Reply {
        let mut r = Reply::new(
            StatusCode::FOUND,
            "text/plain; charset=utf-8",
            format!("Redirecting to {location}\n"),
        );
        r.headers.push(("location", location.to_owned()));
        r
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Says when to try again (`Retry-After`, in seconds; at least 1).
    pub fn retry_after(self, secs: u64) -> Reply {
        self.with_header("retry-after", secs.max(1).to_string())
    }

    /// The page showing `refusal`, with its `Retry-After` if a limit refused.
    pub(crate) fn refused(self, refusal: &Refusal) -> Reply {
        match refusal.retry_after {
            Some(secs) => self.retry_after(secs),
            None => self,
        }
    }
}

/// What a page says of a refused form: the words, the status, and for a limit the seconds
/// until it lifts (said in the words and sent as `Retry-After`, RFC 9110 §10.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub text: String,
    pub status: StatusCode,
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(text: String, status: StatusCode) -> Refusal {
        Refusal {
            text,
            status,
            retry_after: None,
        }
    }

    /// A 429 for a limit that lifts at `until_ms`: `text`, then when to try again.
    pub(crate) fn limited(lang: Lang, text: String, until_ms: u64, now_ms: u64) -> Refusal {
        let secs = until_ms.saturating_sub(now_ms).div_ceil(1000).max(1);
        Refusal {
            text: format!("{text} {}", retry_text(lang, secs)),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(secs),
        }
    }
}

/// "Try again in 5 minutes." (rounded up to whole minutes, seconds under a minute, hours over
/// two hours).
pub(crate) fn retry_text(lang: Lang, secs: u64) -> String {
    if secs < 60 {
        return lang.text_with("retry-in-seconds", &[("seconds", secs.max(1).into())]);
    }
    if secs > 2 * 3600 {
        // A send block lasts a day: hours say it better than 1440 minutes.
        return lang.text_with("retry-in-hours", &[("hours", secs.div_ceil(3600).into())]);
    }
    lang.text_with("retry-in-minutes", &[("minutes", secs.div_ceil(60).into())])
}

/// The title and the message of the branded error page for `status`.
fn error_text(status: StatusCode, lang: Lang) -> (String, String) {
    let text = |title: &str, message: &str| (lang.text(title), lang.text(message));
    match status.as_u16() {
        400 => text("error-400-title", "error-400"),
        401 => text("error-401-title", "error-401"),
        403 => text("error-403-title", "error-403"),
        404 => text("error-404-title", "error-404"),
        405 => text("error-405-title", "error-405"),
        408 => text("error-408-title", "error-408"),
        413 => text("error-413-title", "error-413"),
        429 => text("error-429-title", "error-429"),
        431 => text("error-431-title", "error-431"),
        502 => text("error-502-title", "error-502"),
        503 => text("error-503-title", "error-503"),
        504 => text("error-504-title", "error-504"),
        _ => text("error-other-title", "error-other"),
    }
}

/// A signed-in request: a page (`signed_in_get`) or a form post that passed its CSRF check
/// (`signed_in_post`), with its language and `rd`.
pub(crate) struct SignedInRequest {
    pub who: Identity,
    pub lang: Lang,
    pub rd: String,
}

/// What every signed-in portal page needs besides its own fields.
pub(crate) struct PageContext<'a> {
    pub title: &'a str,
    pub rd: &'a str,
    pub csrf: &'a str,
    /// The page's path below the prefix, for the language switch (`None`: no switch).
    pub switch: Option<&'a str>,
}

/// `a***e@example.test` for `alice@example.test`: the domain and the first and last letters,
/// enough for a user to tell their addresses apart (`a***p@` for `alice.backup@`) while the
/// page spells out neither the name nor its length.
pub(crate) fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return "***".to_owned();
    };
    let chars: Vec<char> = local.chars().collect();
    let name = match chars.as_slice() {
        [] => String::new(),
        [first] | [first, _] => format!("{first}***"),
        [first, .., last] => format!("{first}***{last}"),
    };
    format!("{name}@{domain}")
}

/// `+82 10-****-0001` for `+821000000001`: the country code, the first two digits and the last
/// four, enough to recognise one's own number. Country codes of one digit (1, 7) are told apart;
/// others are shown as two digits, which only shifts where the space falls.
pub(crate) fn mask_phone(e164: &str) -> String {
    let Some(digits) = e164.strip_prefix('+').filter(|d| d.len() >= 8) else {
        return "***".to_owned();
    };
    let cc = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else {
        2
    };
    let (country, national) = digits.split_at(cc);
    let last = &national[national.len().saturating_sub(4)..];
    let first = &national[..2.min(national.len().saturating_sub(4))];
    format!("+{country} {first}-****-{last}")
}

/// A redirect after a form post (303, so the browser follows with a GET).
pub(crate) fn see_other(location: &str) -> Reply {
    let mut r = Reply::redirect(location);
    r.status = StatusCode::SEE_OTHER;
    r
}

/// `(name, source)` of every page template, compiled into the binary.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("portal/templates/base.html")),
    ("fields.html", include_str!("portal/templates/fields.html")),
    ("error.html", include_str!("portal/templates/error.html")),
    ("login.html", include_str!("portal/templates/login.html")),
    (
        "account.html",
        include_str!("portal/templates/account.html"),
    ),
    ("guide.html", include_str!("portal/templates/guide.html")),
    ("setup.html", include_str!("portal/templates/setup.html")),
    (
        "challenge.html",
        include_str!("portal/templates/challenge.html"),
    ),
    ("codes.html", include_str!("portal/templates/codes.html")),
    ("qr.html", include_str!("portal/templates/qr.html")),
    (
        "confirm.html",
        include_str!("portal/templates/confirm.html"),
    ),
    (
        "authenticator.html",
        include_str!("portal/templates/authenticator.html"),
    ),
    (
        "emergency_email.html",
        include_str!("portal/templates/emergency_email.html"),
    ),
    (
        "sessions.html",
        include_str!("portal/templates/sessions.html"),
    ),
    (
        "trusted.html",
        include_str!("portal/templates/trusted.html"),
    ),
    ("check.html", include_str!("portal/templates/check.html")),
    ("lock.html", include_str!("portal/templates/lock.html")),
    (
        "message.html",
        include_str!("portal/templates/message.html"),
    ),
    (
        "password.html",
        include_str!("portal/templates/password.html"),
    ),
    ("reset.html", include_str!("portal/templates/reset.html")),
    ("phone.html", include_str!("portal/templates/phone.html")),
    (
        "approvals.html",
        include_str!("portal/templates/approvals.html"),
    ),
    (
        "devices.html",
        include_str!("portal/templates/devices.html"),
    ),
    (
        "certificates.html",
        include_str!("portal/templates/certificates.html"),
    ),
    (
        "passkeys.html",
        include_str!("portal/templates/passkeys.html"),
    ),
    (
        "passkey_verify.html",
        include_str!("portal/templates/passkey_verify.html"),
    ),
    (
        "passkey_sign_in.html",
        include_str!("portal/templates/passkey_sign_in.html"),
    ),
];

/// The portal: renders its pages, and holds what only the portal uses (CSRF tokens, where
/// `rd` may lead, setups and changes in progress).
pub struct Pages {
    env: Environment<'static>,
    cfg: PortalConfig,
    pub csrf: csrf::Csrf,
    pub return_to: return_to::ReturnTo,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("prefix", &self.cfg.prefix)
            .finish()
    }
}

impl Pages {
    pub fn new(cfg: PortalConfig, csrf: csrf::Csrf, return_to: return_to::ReturnTo) -> Pages {
        // Parse the catalogue now rather than on the first request.
        crate::i18n::Catalogue::compiled();
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        text::register(&mut env);
        for (name, source) in TEMPLATES {
            // Templates are compiled into the binary; a broken one is a build defect.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} is invalid: {e}"));
        }
        Pages {
            env,
            cfg,
            csrf,
            return_to,
        }
    }

    pub fn config(&self) -> &PortalConfig {
        &self.cfg
    }

    /// The language of a request that names none itself: the language cookie (set when the
    /// user chose one with the switch), else `Accept-Language`, else the default.
    pub fn lang_for(&self, headers: &http::HeaderMap) -> Lang {
        let chosen = [
            login::LANG_COOKIE,
            &format!("__Host-{}", login::LANG_COOKIE),
        ]
        .into_iter()
        .find_map(|name| crate::session::cookie::read(headers, name))
        .and_then(Lang::from_tag);
        chosen.unwrap_or_else(|| {
            self.lang(
                headers
                    .get(http::header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
    }

    pub fn lang(&self, accept_language: Option<&str>) -> Lang {
        Lang::negotiate(accept_language, self.cfg.default_language)
    }

    /// A branded page for a refusal or failure, with no internal detail.
    pub fn error(&self, status: StatusCode, lang: Lang) -> Reply {
        self.error_page(status, lang, None)
    }

    /// The branded 429: when to try again, in words and in `Retry-After` (seconds).
    pub fn too_many(&self, lang: Lang, retry_after_secs: u64) -> Reply {
        let retry = retry_text(lang, retry_after_secs);
        self.error_page(StatusCode::TOO_MANY_REQUESTS, lang, Some(&retry))
            .retry_after(retry_after_secs)
    }

    fn error_page(&self, status: StatusCode, lang: Lang, retry: Option<&str>) -> Reply {
        let (title, message) = error_text(status, lang);
        let other = lang.other();
        let ctx = context! {
            lang => lang.tag(),
            title => &title,
            message => message,
            status => status.as_u16(),
            retry,
            // Error pages do not know the URL they answer; `/language` sends the browser back
            // to the page it came from (the Referer this link alone sends).
            switch_url => format!("{}/language?lang={}", self.cfg.prefix, other.tag()),
            switch_lang => other.tag(),
            switch_label => other.native_name(),

        };
        let html = self.render("error.html", ctx).unwrap_or_else(|e| {
            tracing::error!(error = %e, "error page failed to render");
            format!("{} {title}\n", status.as_u16())
        });
        Reply::new(status, "text/html; charset=utf-8", html)
    }

    pub fn health(&self) -> Reply {
        Reply::json(StatusCode::OK, &b"{\"status\":\"ok\"}"[..])
    }

    pub fn stylesheet(&self) -> Reply {
        self.asset("text/css; charset=utf-8", STYLE_CSS)
    }

    pub fn script(&self) -> Reply {
        self.asset("text/javascript; charset=utf-8", SCRIPT_JS)
    }

    fn asset(&self, content_type: &'static str, body: &'static str) -> Reply {
        let mut r = Reply::new(StatusCode::OK, content_type, body);
        for h in r.headers.iter_mut() {
            if h.0 == "cache-control" {
                h.1 = "public, max-age=3600".into();
            }
        }
        r
    }

    /// Renders a template with the fields every page has added.
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        let common = context! {
            service_name => &self.cfg.service_name,
            help_url => &self.cfg.help_url,
            prefix => &self.cfg.prefix,
            home => &self.cfg.default_redirect,
        };
        self.env
            .get_template(name)?
            .render(context! { ..ctx, ..common })
    }

    /// A page of the signed-in portal (guide, setup, challenge, account), with the fields they
    /// all use. A template that fails to render is logged and answered with the branded 500.
    pub(crate) fn page(
        &self,
        template: &str,
        status: StatusCode,
        lang: Lang,
        page: PageContext<'_>,
        ctx: minijinja::Value,
    ) -> Reply {
        let other = lang.other();
        let rd_q: String = url::form_urlencoded::byte_serialize(page.rd.as_bytes()).collect();
        let common = context! {
            lang => lang.tag(),
            title => page.title,
            rd => page.rd,
            csrf => page.csrf,
            // Pages for someone not signed in carry a token bound to a link or a cookie, and
            // no language-switch path of a signed-in page.
            signed_in => !page.csrf.is_empty()
                && page.switch.is_some_and(|s| !matches!(s, "/login" | "/reset")),
            on_account => page.switch == Some("/account"),

            switch_url => page.switch.map(|sub| format!("{}{sub}?rd={rd_q}&lang={}", self.cfg.prefix, other.tag())),
            switch_lang => other.tag(),
            switch_label => other.native_name(),
        };
        match self.render(template, context! { ..ctx, ..common }) {
            Ok(html) => Reply::new(status, "text/html; charset=utf-8", html),
            Err(e) => {
                tracing::error!(error = %e, template, "portal page failed to render");
                self.error(StatusCode::INTERNAL_SERVER_ERROR, lang)
            }
        }
    }

    /// A page with a form: 200, or the status (and `Retry-After`) of `error`, which the page
    /// shows.
    pub(crate) fn form_page(
        &self,
        template: &str,
        lang: Lang,
        page: PageContext<'_>,
        ctx: minijinja::Value,
        error: Option<&Refusal>,
    ) -> Reply {
        let status = error.map_or(StatusCode::OK, |e| e.status);
        let reply = self.page(template, status, lang, page, ctx);
        match error {
            Some(e) => reply.refused(e),
            None => reply,
        }
    }

    /// The signed-in identity, or a redirect to the sign-in page that comes back to `sub` (or
    /// the branded 503 when the store fails: never a page for nobody).
    pub(crate) async fn signed_in(
        &self,
        auth: &Auth,
        req: &PortalRequest<'_>,
        sub: &str,
    ) -> Result<Identity, Reply> {
        match auth.identify(req.headers, req.tls).await {
            // A sign-in from an unfamiliar environment is good for its check and nothing else
            // (not even the account's own pages: its password may be the only thing the
            // attacker has).
            Ok(Some(who))
                if who.session.origin.needs_check && !matches!(sub, "/check" | "/2fa") =>
            {
                let to = if who.second_factor { "/2fa" } else { "/check" };
                let rd = req.param("rd").unwrap_or_default();
                let mut r = Reply::redirect(&self.url_with_rd(to, &rd));
                if *req.method == Method::POST {
                    r.status = StatusCode::SEE_OTHER;
                }
                return Err(r);
            }
            Ok(Some(who)) => return Ok(who),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "stepgate::portal", error = %e, "could not read the session");
                let lang = login::lang_of(self, req, None);
                return Err(self.error(StatusCode::SERVICE_UNAVAILABLE, lang));
            }
        }
        let mut back = format!("{}{}{sub}", req.origin, self.cfg.prefix);
        if let Some(rd) = req.param("rd").filter(|r| !r.is_empty()) {
            back.push_str("?rd=");
            back.extend(url::form_urlencoded::byte_serialize(rd.as_bytes()));
        }
        let back: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
        let mut r = Reply::redirect(&format!("{}/login?rd={back}", self.cfg.prefix));
        if *req.method == Method::POST {
            r.status = StatusCode::SEE_OTHER;
        }
        Err(r)
    }

    /// The start of every signed-in page: its language and `rd` (from the query), and the
    /// identity (or a redirect to sign in that comes back to `sub`).
    pub(crate) async fn signed_in_get(
        &self,
        auth: &Auth,
        req: &PortalRequest<'_>,
        sub: &str,
    ) -> Result<SignedInRequest, Reply> {
        let lang = login::lang_of(self, req, None);
        let rd = req.param("rd").unwrap_or_default();
        let who = self.signed_in(auth, req, sub).await?;
        Ok(SignedInRequest { who, lang, rd })
    }

    /// The start of every signed-in form post: its language and `rd`, the identity (or a redirect
    /// to sign in), and a verified session-bound CSRF token (or a 403).
    pub(crate) async fn signed_in_post(
        &self,
        auth: &Auth,
        req: &PortalRequest<'_>,
        sub: &str,
    ) -> Result<SignedInRequest, Reply> {
        let body = &req.body[..];
        let lang = login::lang_of(self, req, login::form_value(body, "lang"));
        let rd = login::form_value(body, "rd").unwrap_or_default();
        let who = self.signed_in(auth, req, sub).await?;
        let token = login::form_value(body, "csrf").unwrap_or_default();
        if !self.csrf.verify(&who.key, &token) {
            tracing::warn!(target: "stepgate::portal", user = %who.user.name, page = sub, "form refused: missing or invalid CSRF token");
            return Err(self.error(StatusCode::FORBIDDEN, lang));
        }
        Ok(SignedInRequest { who, lang, rd })
    }

    /// Who acts, from where, in which language: what the flow needs of a request.
    pub(crate) fn context<'a>(&'a self, req: &'a PortalRequest<'_>, lang: Lang) -> Context<'a> {
        let cookie = |base: &str| {
            [base.to_owned(), format!("__Host-{base}")]
                .iter()
                .find_map(|name| crate::session::cookie::read(req.headers, name))
        };
        Context {
            client: req.client,
            user_agent: req
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            lang,
            service: &self.cfg.service_name,
            device: cookie(crate::browsers::DEVICE_COOKIE),
            trust: cookie(crate::browsers::TRUST_COOKIE),
            origin: &req.origin,
            prefix: &self.cfg.prefix,
        }
    }

    /// `Set-Cookie` for a long-lived helper cookie of the gateway (device, trusted browser):
    /// host-only, `HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` on HTTPS.
    pub(crate) fn lasting_cookie(
        req: &PortalRequest<'_>,
        base: &str,
        value: &str,
        max_age: u64,
    ) -> String {
        if req.tls {
            format!(
                "__Host-{base}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax; Secure"
            )
        } else {
            format!("{base}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax")
        }
    }

    /// The browser goes on to `target` (303) with the new session's cookie (lasting as long as
    /// the session for a saved sign-in, else until the browser closes).
    pub(crate) fn signed_in_to(
        &self,
        auth: &Auth,
        req: &PortalRequest<'_>,
        signed: &SignedIn,
        target: &str,
    ) -> Reply {
        see_other(target).with_header(
            "set-cookie",
            auth.session_cookie(req.tls, &signed.id, &signed.session),
        )
    }

    /// The branded 503: a fault was logged where it happened; nothing is let through.
    pub(crate) fn fault(&self, lang: Lang) -> Reply {
        self.error(StatusCode::SERVICE_UNAVAILABLE, lang)
    }

    /// The page that shows fresh recovery codes, once.
    pub(crate) fn recovery_codes(
        &self,
        lang: Lang,
        intro: &str,
        codes: &[String],
        continue_url: &str,
    ) -> Reply {
        let page = PageContext {
            title: &lang.text("codes-title"),
            rd: "",
            csrf: "",
            switch: None,
        };
        // The same codes as a text file to download and as text to copy.
        let mut text = format!(
            "{}: {}\n\n",
            self.cfg.service_name,
            lang.text("codes-title")
        );
        for code in codes {
            text.push_str(code);
            text.push('\n');
        }
        let codes_data: String = url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let ctx = context! {
            intro,
            codes,
            continue_url,
            codes_text => codes.join("\n"),
            codes_data,
            file_name => "recovery-codes.txt",
            script => true,
        };
        self.page("codes.html", StatusCode::OK, lang, page, ctx)
    }

    /// A portal URL with `rd` carried along.
    pub(crate) fn url_with_rd(&self, sub: &str, rd: &str) -> String {
        let rd_q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        format!("{}{sub}?rd={rd_q}", self.cfg.prefix)
    }

    /// Serves a request under the portal prefix.
    pub async fn serve(&self, auth: &Auth, router: &HostRouter, req: &PortalRequest<'_>) -> Reply {
        let lang = login::lang_of(self, req, None);
        if *req.method == Method::POST {
            if let Some(wait) = auth.regulator.form_post_wait(req.client) {
                tracing::warn!(target: "stepgate::regulation", client = %req.client, "portal form posts over the limit");
                return self.too_many(lang, wait.as_secs_f64().ceil() as u64);
            }
        }
        let reply = self.route(auth, router, req, lang).await;
        self.remember_lang(req, reply)
    }

    /// A language chosen with the switch (`?lang=`) is remembered in a cookie, so that every
    /// later page (errors included) is in it.
    fn remember_lang(&self, req: &PortalRequest<'_>, reply: Reply) -> Reply {
        let Some(lang) = req.param("lang").and_then(|l| Lang::from_tag(&l)) else {
            return reply;
        };
        let name = if req.tls {
            format!("__Host-{}", login::LANG_COOKIE)
        } else {
            login::LANG_COOKIE.to_owned()
        };
        let secure = if req.tls { "; Secure" } else { "" };
        let cookie = format!(
            "{name}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}",
            lang.tag()
        );
        reply.with_header("set-cookie", cookie)
    }

    /// `GET /language?lang=`: the choice is remembered (by `serve`), and the browser goes back
    /// to the page it came from if that is a place `rd` may lead, else home.
    fn language(&self, router: &HostRouter, req: &PortalRequest<'_>) -> Reply {
        let back = req
            .headers
            .get(http::header::REFERER)
            .and_then(|v| v.to_str().ok());
        Reply::redirect(&self.return_to.resolve(back, &req.origin, router))
    }

    async fn route(
        &self,
        auth: &Auth,
        router: &HostRouter,
        req: &PortalRequest<'_>,
        lang: Lang,
    ) -> Reply {
        let get = *req.method == Method::GET || *req.method == Method::HEAD;
        let post = *req.method == Method::POST;
        match (req.sub, get) {
            ("/health", true) => self.health(),
            ("/language", true) => self.language(router, req),
            ("/assets/style.css", true) => self.stylesheet(),
            ("/assets/portal.js", true) => self.script(),
            ("/assets/passkeys.js", true) => {
                self.asset("text/javascript; charset=utf-8", PASSKEYS_JS)
            }
            ("/jwks.json", true) => {
                let mut r = Reply::json(StatusCode::OK, auth.signer.jwks_json());
                for h in r.headers.iter_mut() {
                    if h.0 == "cache-control" {
                        h.1 = "public, max-age=60".into();
                    }
                }
                r
            }
            ("/login", true) => login::show(auth, self, router, req).await,
            ("/login", false) if *req.method == Method::POST => {
                login::submit(auth, self, router, req).await
            }
            ("/logout", false) if *req.method == Method::POST => {
                login::logout(auth, self, req).await
            }
            ("/guide", true) => guide::show(auth, self, router, req).await,
            ("/guide", false) if post => guide::later(auth, self, router, req).await,
            ("/setup", true) => setup::show(auth, self, req).await,
            ("/setup", false) if post => setup::submit(auth, self, router, req).await,
            ("/2fa", true) => challenge::show(auth, self, router, req).await,
            ("/2fa", false) if post => challenge::submit(auth, self, router, req).await,
            ("/2fa/send", false) if post => challenge::send(auth, self, router, req).await,
            ("/2fa/approval", true) => challenge::approval_state(auth, self, req).await,
            ("/approvals", true) => approvals::show(auth, self, req).await,
            ("/approvals", false) if post => approvals::decide(auth, self, req).await,
            ("/approvals/wait", true) => approvals::wait(auth, self, req).await,
            ("/approvals/lock", false) if post => approvals::lock(auth, self, req).await,
            ("/certificates", true) => certificates::show(auth, self, req).await,
            ("/certificates/upload", false) if post => certificates::upload(auth, self, req).await,
            ("/certificates/register", false) if post => {
                certificates::register(auth, self, req).await
            }
            ("/certificates/remove", false) if post => certificates::remove(auth, self, req).await,
            ("/devices", true) => devices::show(auth, self, req).await,
            ("/devices/add", false) if post => devices::add(auth, self, req).await,
            ("/devices/remove", false) if post => devices::remove(auth, self, req).await,
            ("/devices/code", false) if post => devices::code(auth, self, req).await,
            ("/account", true) => account::show(auth, self, req).await,
            ("/account/recovery-codes" | "/account/remove-authenticator", false) if post => {
                account::change(auth, self, req).await
            }
            ("/account/verify", true) => reauth::show(auth, self, req).await,
            ("/account/verify", false) if post => reauth::verify(auth, self, req).await,
            ("/account/authenticator", true) => authenticator::show(auth, self, req).await,
            ("/account/authenticator", false) if post => {
                authenticator::confirm(auth, self, req).await
            }
            ("/emergency-email", true) => {
                contact::show(auth, self, req, contact::Which::EmergencyEmail).await
            }
            ("/emergency-email", false) if post => {
                contact::submit(auth, self, req, contact::Which::EmergencyEmail).await
            }
            ("/phone", true) => contact::show(auth, self, req, contact::Which::Phone).await,
            ("/phone", false) if post => {
                contact::submit(auth, self, req, contact::Which::Phone).await
            }
            ("/sessions", true) => browsers::sessions(auth, self, req).await,
            ("/sessions/end" | "/sessions/end-others", false) if post => {
                browsers::end(auth, self, req).await
            }
            ("/trusted-browsers", true) => browsers::trusted(auth, self, req).await,
            ("/trusted-browsers/remove" | "/trusted-browsers/remove-all", false) if post => {
                browsers::remove(auth, self, req).await
            }
            ("/check", true) => protect::show(auth, self, router, req).await,
            ("/check" | "/check/send", false) if post => {
                protect::submit(auth, self, router, req).await
            }
            ("/lock", true) => protect::show_lock(auth, self, req).await,
            ("/lock", false) if post => protect::lock(auth, self, req).await,
            ("/password", true) => password::show(auth, self, req).await,
            ("/password", false) if post => password::change(auth, self, req).await,
            ("/reset", true) => password::show_reset(auth, self, req).await,
            ("/reset", false) if post => password::reset(auth, self, router, req).await,
            ("/passkeys", true) => passkeys::show(auth, self, req).await,
            ("/passkeys/add/begin", false) if post => passkeys::add_begin(auth, self, req).await,
            ("/passkeys/add" | "/passkeys/rename" | "/passkeys/remove", false) if post => {
                passkeys::change(auth, self, req).await
            }
            ("/passkeys/verify/begin", false) if post => {
                passkeys::verify_begin(auth, self, req).await
            }
            ("/passkeys/verify", false) if post => passkeys::verify(auth, self, router, req).await,
            ("/passkeys/sign-in", false) if post => {
                passkeys::sign_in(auth, self, router, req).await
            }
            (
                "/login"
                | "/logout"
                | "/guide"
                | "/setup"
                | "/2fa"
                | "/2fa/send"
                | "/2fa/approval"
                | "/approvals"
                | "/approvals/wait"
                | "/approvals/lock"
                | "/devices"
                | "/certificates"
                | "/certificates/upload"
                | "/certificates/register"
                | "/certificates/remove"
                | "/devices/add"
                | "/devices/remove"
                | "/devices/code"
                | "/account"
                | "/account/recovery-codes"
                | "/account/remove-authenticator"
                | "/account/verify"
                | "/account/authenticator"
                | "/emergency-email"
                | "/phone"
                | "/sessions"
                | "/sessions/end"
                | "/sessions/end-others"
                | "/trusted-browsers"
                | "/trusted-browsers/remove"
                | "/trusted-browsers/remove-all"
                | "/check"
                | "/check/send"
                | "/lock"
                | "/password"
                | "/reset"
                | "/passkeys"
                | "/passkeys/add/begin"
                | "/passkeys/add"
                | "/passkeys/rename"
                | "/passkeys/remove"
                | "/passkeys/verify/begin"
                | "/passkeys/verify"
                | "/passkeys/sign-in"
                | "/language",
                _,
            ) => self.error(StatusCode::METHOD_NOT_ALLOWED, lang),
            _ => self.error(StatusCode::NOT_FOUND, lang),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        let cfg = PortalConfig {
            prefix: "/_stepgate".into(),
            service_name: "Acme <Apps>".into(),
            help_url: Some("https://help.example/2fa".into()),
            default_language: Lang::En,
            default_redirect: "/".into(),
            allowed_redirect_hosts: vec![],
        };
        let return_to = return_to::ReturnTo::new("/".into(), vec![]);
        Pages::new(cfg, csrf::Csrf::from_key([1; 32]), return_to)
    }

    #[test]
    fn masked_addresses_tell_two_addresses_apart() {
        assert_eq!(mask_email("alice@example.test"), "a***e@example.test");
        assert_eq!(
            mask_email("alice.backup@example.test"),
            "a***p@example.test"
        );
        assert_eq!(mask_email("bo@example.test"), "b***@example.test");
        assert_eq!(mask_email("김철수@예시.한국"), "김***수@예시.한국");
        assert_eq!(mask_email("nonsense"), "***");
    }

    #[test]
    fn masked_phones_keep_the_country_the_start_and_the_last_four() {
        assert_eq!(mask_phone("+821000000001"), "+82 10-****-0001");
        assert_eq!(mask_phone("+15005550006"), "+1 50-****-0006");
        assert_eq!(mask_phone("12345"), "***");
    }

    fn html(r: Reply) -> String {
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    fn signed_in_page() -> PageContext<'static> {
        PageContext {
            title: "t",
            rd: "/app",
            csrf: "token",
            switch: Some("/setup"),
        }
    }

    #[test]
    fn the_step_indicator_marks_steps_done_and_the_current_one() {
        let p = pages();
        let ctx = context! { stage => "contact", suggested_email => "" };
        let body = html(p.page(
            "setup.html",
            StatusCode::OK,
            Lang::En,
            signed_in_page(),
            ctx,
        ));
        let current = body
            .find(r#"class="current" aria-current="step""#)
            .expect(&body);
        let done = body.find(r#"class="done""#).unwrap();
        assert!(done < current, "the done step comes first: {body}");
        assert_eq!(body.matches("</li>").count(), 3, "{body}");
    }

    #[test]
    fn code_fields_offer_a_keypad_only_where_codes_are_digits() {
        let p = pages();
        for (method, numeric) in [("totp", true), ("recovery", false)] {
            let ctx = context! { method => method, others => Vec::<&str>::new(), rd_q => "" };
            let body = html(p.page(
                "challenge.html",
                StatusCode::OK,
                Lang::En,
                signed_in_page(),
                ctx,
            ));
            let input = body
                .split("<input")
                .find(|i| i.contains(r#"name="code""#))
                .expect(&body);
            assert_eq!(
                input.contains(r#"inputmode="numeric""#),
                numeric,
                "{method}: {input}"
            );
            assert!(input.contains(r#"autocomplete="one-time-code""#), "{input}");
            assert!(body.contains(r#"<label for="code">"#), "{body}");
        }
    }

    #[test]
    fn error_pages_are_branded_escaped_and_localised() {
        let p = pages();
        let en = p.error(StatusCode::FORBIDDEN, Lang::En);
        let body = String::from_utf8(en.body.to_vec()).unwrap();
        assert!(body.contains("Access denied"));
        assert!(body.contains("Acme &lt;Apps&gt;"));
        assert!(body.contains("help.example"), "{body}");
        let ko = p.error(StatusCode::FORBIDDEN, Lang::Ko);
        assert!(String::from_utf8(ko.body.to_vec())
            .unwrap()
            .contains("접근 거부"));
        assert!(en
            .headers
            .iter()
            .any(|(k, v)| *k == "cache-control" && v == "no-store"));
    }
}
