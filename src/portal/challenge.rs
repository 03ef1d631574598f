//! The second-factor challenge page (`/2fa?rd=&method=`): it asks for one of the user's
//! methods (`method`: `totp`, `sms`, `email`, `recovery`; without it, the first the user has)
//! and offers the others, "verify by email instead" among them. For a code the gateway sends
//! (SMS, email), the page says where it goes, sends it on request (`POST /2fa/send`), says
//! until when it works, offers to resend and what to do when nothing arrives. Checking the
//! answer, the limits and the notices are `flow::pass_second_factor`'s; sending is
//! `flow::codes`'. For approval on a device (`approve`), `POST /2fa/send` makes the request
//! (`flow::approvals::ask`), the page shows the number to type on the device and waits
//! (`GET /2fa/approval`, a long poll the page's script follows; without the script, a button
//! goes on), and `POST /2fa` with the request's secret `request` lets the browser in once it is
//! approved.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::{mask_email, mask_phone, see_other, PageContext, Pages, Refusal, Reply};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::devices::{Request, State};
use crate::factor::FactorKind;
use crate::flow::approvals::{self, AskRefused};
use crate::flow::codes::{self, SendRefused};
use crate::flow::{self, FactorRefused};
use crate::i18n::Lang;
use crate::routing::HostRouter;

/// The factor to ask for: `requested` if the user has it, else the first they have.
fn chosen(requested: Option<&str>, enrolled: &[FactorKind]) -> FactorKind {
    requested
        .and_then(FactorKind::parse)
        .filter(|k| enrolled.contains(k))
        .or_else(|| enrolled.first().copied())
        .unwrap_or(FactorKind::Totp)
}

/// What the page asks for and offers instead.
struct Ask {
    method: FactorKind,
    enrolled: Vec<FactorKind>,
    /// For a sent code: where it goes (masked), and until when the pending one works.
    to: Option<String>,
    pending_until: Option<u64>,
    /// For approval: the request this browser made, if it is still the current one.
    approval: Option<Request>,
    /// For a passkey: the options of the ceremony begun for this page (JSON).
    passkey_options: Option<String>,
}

impl Ask {
    /// The user's methods, the one to ask for, and for a sent code its state.
    async fn of(auth: &Auth, who: &Identity, requested: Option<&str>) -> Option<Ask> {
        let user = &who.user.name;
        let enrolled = auth.factors.enrolled_kinds(user).await.ok()?;
        let method = chosen(requested, &enrolled);
        let (mut to, mut pending_until, mut approval) = (None, None, None);
        if method == FactorKind::Approve {
            approval = approvals::own_request(auth, who).await.ok()?;
        }
        if let Some(factor) = auth.factors.sent(method) {
            let dest = codes::destination(auth, who, method).await.ok()?;
            to = dest.map(|d| match method {
                FactorKind::Sms => mask_phone(&d),
                _ => mask_email(&d),
            });
            pending_until = factor.pending_until(user).await.ok()?;
        }
        Some(Ask {
            method,
            enrolled,
            to,
            pending_until,
            approval,
            passkey_options: None,
        })
    }
}

fn form(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    (lang, rd): (Lang, &str),
    ask: &Ask,
    error: Option<&Refusal>,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let others: Vec<&str> = (ask.enrolled.iter())
        .filter(|k| **k != ask.method)
        .map(|k| k.as_str())
        .collect();
    let rd_q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    let page = PageContext {
        title: &lang.text("challenge-title"),
        rd,
        csrf: &csrf,
        switch: Some("/2fa"),
    };
    let approval = ask.approval.as_ref().map(|r| {
        context! {
            number => r.number,
            id => &r.id,
            until => super::browsers::when(r.expires_ms),
            state => state_name(r.state),
        }
    });
    let ctx = context! {
        error => error.map(|e| e.text.clone()),
        method => ask.method.as_str(),
        sent_kind => ask.method.is_sent(),
        to => ask.to,
        until => ask.pending_until.map(super::browsers::when),
        resend_wait => codes::RESEND_WAIT.as_secs(),
        others,
        rd_q,
        approval,
        script => ask.approval.as_ref().is_some_and(|r| r.state == State::Pending),
        remember_offered => auth.two_factor.trusted_browser_lifetime.is_some(),
        passkey_script => ask.method == FactorKind::Passkey,
        passkey_options => ask.passkey_options,
    };
    pages.form_page("challenge.html", lang, page, ctx, error)
}

/// The challenge for a passkey again, with what went wrong (`/passkeys/verify`'s refusals).
pub(crate) async fn refused(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
    who: &Identity,
    (lang, rd): (Lang, &str),
    error: &Refusal,
) -> Reply {
    if let Some(r) = elsewhere(pages, router, req, who, rd) {
        return r;
    }
    let Some(mut ask) = Ask::of(auth, who, Some(FactorKind::Passkey.as_str())).await else {
        return pages.fault(lang);
    };
    ask.passkey_options = passkey_options(auth, pages, req, who, lang, &ask).await;
    form(auth, pages, who, (lang, rd), &ask, Some(error))
}

/// A passkey ceremony begun for the page (its options go into the page: the page's CSP lets
/// the script connect nowhere), when the page asks for a passkey.
async fn passkey_options(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    lang: Lang,
    ask: &Ask,
) -> Option<String> {
    if ask.method != FactorKind::Passkey {
        return None;
    }
    let ctx = pages.context(req, lang);
    flow::passkeys::begin_verification(auth, &ctx, who)
        .await
        .ok()
}

/// Where a request that should not be at the challenge goes instead, if anywhere.
fn elsewhere(
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
    who: &Identity,
    rd: &str,
) -> Option<Reply> {
    // A browser trusted with "don't ask again" is 2fa, yet a rule may want a code of this
    // sign-in: it is asked here like a one-factor session.
    let remembered = who.session.amr.remembered_only();
    if who.session.level() == AuthLevel::TwoFactor && !remembered {
        return Some(see_other(&pages.return_to.resolve(
            Some(rd),
            &req.origin,
            router,
        )));
    }
    (!who.second_factor && !remembered).then(|| see_other(&pages.url_with_rd("/guide", rd)))
}

/// The start of both posts: who, in which language, back to where, asked for what (the form's
/// `method`); or the answer when the post does not belong here.
async fn posted(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Result<(Identity, Lang, String, Ask), Reply> {
    let p = pages.signed_in_post(auth, req, "/2fa").await?;
    if let Some(r) = elsewhere(pages, router, req, &p.who, &p.rd) {
        return Err(r);
    }
    let requested = form_value(&req.body, "method");
    let Some(ask) = Ask::of(auth, &p.who, requested.as_deref()).await else {
        return Err(pages.fault(p.lang));
    };
    Ok((p.who, p.lang, p.rd, ask))
}

/// `GET /2fa?rd=&method=`.
pub async fn show(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd) = match pages.signed_in_get(auth, req, "/2fa").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if let Some(mut r) = elsewhere(pages, router, req, &who, &rd) {
        r.status = StatusCode::FOUND;
        return r;
    }
    let Some(mut ask) = Ask::of(auth, &who, req.param("method").as_deref()).await else {
        return pages.fault(lang);
    };
    ask.passkey_options = passkey_options(auth, pages, req, &who, lang, &ask).await;
    if auth
        .factors
        .get(ask.method)
        .begin(&who.user.name)
        .await
        .is_err()
    {
        return pages.fault(lang);
    }
    form(auth, pages, &who, (lang, &rd), &ask, None)
}

/// `pending`, `approved`, `denied` (also "this wasn't me"), `none` (used): for the page and its
/// script.
fn state_name(state: State) -> &'static str {
    match state {
        State::Pending => "pending",
        State::Approved => "approved",
        State::Denied | State::NotMe => "denied",
        State::Used => "none",
    }
}

/// The app a sign-in is for: the host of where it goes next.
fn app_of(pages: &Pages, router: &HostRouter, req: &PortalRequest<'_>, rd: &str) -> String {
    let target = pages.return_to.resolve(Some(rd), &req.origin, router);
    url::Url::parse(&target)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// How long `GET /2fa/approval` and `GET /approvals/wait` hold a request open, and how often
/// they look at the store meanwhile (it is shared by every gateway on the database).
pub(crate) const LONG_POLL: std::time::Duration = std::time::Duration::from_secs(25);
pub(crate) const LONG_POLL_STEP: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /2fa/approval`: the state of this browser's approval request, as JSON
/// `{"state": "pending" | "approved" | "denied" | "none"}`; while it is pending, the answer
/// waits (up to [`LONG_POLL`]) for a decision.
pub async fn approval_state(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let who = match pages.signed_in_get(auth, req, "/2fa").await {
        Ok(p) => p.who,
        Err(reply) => return reply,
    };
    let started = std::time::Instant::now();
    loop {
        let state = match approvals::own_request(auth, &who).await {
            Ok(r) => r.map_or("none", |r| state_name(r.state)),
            Err(flow::Fault) => {
                return Reply::json(StatusCode::SERVICE_UNAVAILABLE, r#"{"state":"fault"}"#)
            }
        };
        if state != "pending" || started.elapsed() >= LONG_POLL {
            return Reply::json(StatusCode::OK, format!(r#"{{"state":"{state}"}}"#));
        }
        tokio::time::sleep(LONG_POLL_STEP).await;
    }
}

/// `POST /2fa/send` for approval: a new request to the user's devices, then the page with its
/// number.
async fn ask_approval(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
    (who, lang, rd, ask): (Identity, Lang, String, Ask),
) -> Reply {
    let ctx = pages.context(req, lang);
    let app = app_of(pages, router, req, &rd);
    let refusal = match approvals::ask(auth, &ctx, &who, &app).await {
        Ok(request) => {
            let ask = Ask {
                approval: Some(request),
                ..ask
            };
            return form(auth, pages, &who, (lang, &rd), &ask, None);
        }
        Err(AskRefused::Fault) => return pages.fault(lang),
        Err(AskRefused::NotEnrolled) => return see_other(&pages.url_with_rd("/2fa", &rd)),
        Err(AskRefused::Limited { until_ms }) => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("approval-too-many"), until_ms, now)
        }
    };
    form(auth, pages, &who, (lang, &rd), &ask, Some(&refusal))
}

/// `POST /2fa/send` (`method`: `sms` or `email`): a fresh code, then the page with its field.
pub async fn send(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd, ask) = match posted(auth, pages, router, req).await {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    if ask.method == FactorKind::Approve {
        return ask_approval(auth, pages, router, req, (who, lang, rd, ask)).await;
    }
    if !ask.method.is_sent() {
        return form(auth, pages, &who, (lang, &rd), &ask, None);
    }
    let ctx = pages.context(req, lang);
    let refusal = match codes::send(auth, &ctx, &who, ask.method).await {
        Ok(sent) => {
            let ask = Ask {
                pending_until: Some(sent.until_ms),
                ..ask
            };
            return form(auth, pages, &who, (lang, &rd), &ask, None);
        }
        Err(SendRefused::Fault) => return pages.fault(lang),
        Err(SendRefused::NotEnrolled) => return see_other(&pages.url_with_rd("/2fa", &rd)),
        Err(SendRefused::Blocked { until_ms }) => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("challenge-send-blocked"), until_ms, now)
        }
        Err(SendRefused::TooSoon { until_ms }) => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("challenge-resend-soon"), until_ms, now)
        }
        Err(SendRefused::Failed) => Refusal::new(
            lang.text("challenge-send-failed"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    };
    form(auth, pages, &who, (lang, &rd), &ask, Some(&refusal))
}

/// `POST /2fa`.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd, ask) = match posted(auth, pages, router, req).await {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    // For approval, the answer is the request's secret, which only this browser was given.
    let field = if ask.method == FactorKind::Approve {
        "request"
    } else {
        "code"
    };
    let code = form_value(&req.body, field).unwrap_or_default();
    let ctx = pages.context(req, lang);
    if ask.method == FactorKind::Approve && ask.approval.is_none() {
        // Not a request this browser made (or none is current): nothing to ask the factor.
        let r = Refusal::new(lang.text("approval-expired"), StatusCode::UNAUTHORIZED);
        return form(auth, pages, &who, (lang, &rd), &ask, Some(&r));
    }
    let remember = form_value(&req.body, "remember").is_some_and(|v| !v.is_empty());
    let r = match flow::pass_second_factor(auth, &ctx, &who, ask.method, &code).await {
        Ok(signed) => {
            let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
            let mut reply = pages.signed_in_to(auth, req, &signed, &target);
            if remember {
                // On failure the sign-in stands; the browser is simply not trusted (logged).
                if let Ok(Some((token, max_age))) =
                    flow::browsers::trust_this_browser(auth, &ctx, &who.user.name).await
                {
                    let cookie =
                        Pages::lasting_cookie(req, crate::browsers::TRUST_COOKIE, &token, max_age);
                    reply = reply.with_header("set-cookie", cookie);
                }
            }
            return reply;
        }
        Err(FactorRefused::NotEnrolled) => return see_other(&pages.url_with_rd("/guide", &rd)),
        Err(FactorRefused::Fault) => return pages.fault(lang),
        Err(FactorRefused::Banned { until_ms }) => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("challenge-banned"), until_ms, now)
        }
        Err(FactorRefused::Replayed) => {
            Refusal::new(lang.text("challenge-replayed"), StatusCode::UNAUTHORIZED)
        }
        Err(FactorRefused::Wrong) => {
            Refusal::new(lang.text("challenge-wrong"), StatusCode::UNAUTHORIZED)
        }
        Err(FactorRefused::Expired) if ask.method == FactorKind::Approve => {
            Refusal::new(lang.text("approval-expired"), StatusCode::UNAUTHORIZED)
        }
        Err(FactorRefused::Expired) => {
            Refusal::new(lang.text("challenge-expired"), StatusCode::UNAUTHORIZED)
        }
        Err(FactorRefused::Pending) => {
            Refusal::new(lang.text("approval-still-waiting"), StatusCode::CONFLICT)
        }
        Err(FactorRefused::Denied) => {
            Refusal::new(lang.text("approval-denied"), StatusCode::UNAUTHORIZED)
        }
    };
    // The pending code may have just died (used up by tries): the page reads its state again.
    let ask = Ask::of(auth, &who, Some(ask.method.as_str()))
        .await
        .unwrap_or(ask);
    form(auth, pages, &who, (lang, &rd), &ask, Some(&r))
}
