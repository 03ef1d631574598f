//! The environment check (`/check`: a code mailed to the account email, for a user without a
//! second factor signing in from an unfamiliar browser and network) and "this wasn't me"
//! (`/lock?token=`: a confirmation page whose form locks the account). The work is
//! `flow::protect`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::{mask_email, see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::flow::protect;
use crate::flow::setup::Refused;
use crate::i18n::Lang;
use crate::routing::HostRouter;

fn check_form(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    rd: &str,
    sent: bool,
    error: Option<&Refusal>,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("check-title"),
        rd,
        csrf: &csrf,
        switch: Some("/check"),
    };
    let to = who.user.email.as_deref().map(mask_email);
    let ctx = context! { sent, to, error => error.map(|e| e.text.clone()) };
    pages.form_page("check.html", lang, page, ctx, error)
}

fn refusal(auth: &Auth, lang: Lang, r: Refused) -> Refusal {
    let now = auth.clock.now_ms();
    match r {
        Refused::Banned { until_ms } => {
            Refusal::limited(lang, lang.text("challenge-banned"), until_ms, now)
        }
        Refused::SendLimit { until_ms } => {
            Refusal::limited(lang, lang.text("check-send-limit"), until_ms, now)
        }
        Refused::Expired => Refusal::new(lang.text("check-expired"), StatusCode::UNAUTHORIZED),
        Refused::SendFailed => Refusal::new(
            lang.text("check-send-failed"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        _ => Refusal::new(lang.text("check-wrong"), StatusCode::UNAUTHORIZED),
    }
}

/// Where a session that needs no emailed check goes instead.
fn elsewhere(
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
    who: &Identity,
    rd: &str,
) -> Option<Reply> {
    if !who.session.origin.needs_check {
        return Some(see_other(&pages.return_to.resolve(
            Some(rd),
            &req.origin,
            router,
        )));
    }
    who.second_factor
        .then(|| see_other(&pages.url_with_rd("/2fa", rd)))
}

/// `GET /check?rd=`.
pub async fn show(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd) = match pages.signed_in_get(auth, req, "/check").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if let Some(mut r) = elsewhere(pages, router, req, &who, &rd) {
        r.status = StatusCode::FOUND;
        return r;
    }
    let Ok(sent) = protect::check_code_sent(auth, &who).await else {
        return pages.fault(lang);
    };
    check_form(pages, &who, lang, &rd, sent, None)
}

/// `POST /check/send` and `POST /check` (`code`).
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let post = match pages.signed_in_post(auth, req, "/check").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (who, lang, rd) = (post.who, post.lang, post.rd);
    if let Some(r) = elsewhere(pages, router, req, &who, &rd) {
        return r;
    }
    let ctx = pages.context(req, lang);
    if req.sub == "/check/send" {
        return match protect::send_check_code(auth, &ctx, &who).await {
            Ok(()) => check_form(pages, &who, lang, &rd, true, None),
            Err(Refused::Fault) => pages.fault(lang),
            Err(r) => check_form(pages, &who, lang, &rd, false, Some(&refusal(auth, lang, r))),
        };
    }
    let code = form_value(&req.body, "code").unwrap_or_default();
    match protect::pass_check(auth, &ctx, &who, &code).await {
        Ok(signed) => {
            let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
            pages.signed_in_to(auth, req, &signed, &target)
        }
        Err(Refused::Fault) => pages.fault(lang),
        Err(r) => {
            let sent = !matches!(r, Refused::Expired);
            check_form(pages, &who, lang, &rd, sent, Some(&refusal(auth, lang, r)))
        }
    }
}

/// A page with a title and a message and no form (results of public steps).
pub(crate) fn message(
    pages: &Pages,
    lang: Lang,
    status: StatusCode,
    title: &str,
    message: &str,
    sub: &str,
) -> Reply {
    let page = PageContext {
        title,
        rd: "",
        csrf: "",
        switch: Some(sub),
    };
    pages.page("message.html", status, lang, page, context! { message })
}

/// `GET /lock?token=`: what the link is about, and the form that locks. Looking changes
/// nothing (mail scanners fetch links).
pub async fn show_lock(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let token = req.param("token").unwrap_or_default();
    let link = match protect::lock_link(auth, &token).await {
        Ok(l) => l,
        Err(_) => return pages.fault(lang),
    };
    let title = lang.text("lock-title");
    let Some(link) = link else {
        return message(
            pages,
            lang,
            StatusCode::NOT_FOUND,
            &title,
            &lang.text("lock-bad-link"),
            "/lock",
        );
    };
    let csrf = pages.csrf.token(token.as_bytes());
    let page = PageContext {
        title: &title,
        rd: "",
        csrf: &csrf,
        switch: None,
    };
    let ctx = context! {
        token,
        when => super::browsers::when(link.at_ms),
        address => link.address,
        browser => super::browsers::browser_name(lang, &link.browser),
        app => link.app,
    };
    pages.page("lock.html", StatusCode::OK, lang, page, ctx)
}

/// `POST /lock` (`token`, `csrf` bound to the token).
pub async fn lock(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let body = &req.body[..];
    let lang = lang_of(pages, req, form_value(body, "lang"));
    let token = form_value(body, "token").unwrap_or_default();
    let csrf = form_value(body, "csrf").unwrap_or_default();
    if token.is_empty() || !pages.csrf.verify(token.as_bytes(), &csrf) {
        return pages.error(StatusCode::FORBIDDEN, lang);
    }
    let ctx = pages.context(req, lang);
    let title = lang.text("lock-title");
    match protect::lock_by_link(auth, &ctx, &token).await {
        Ok(Some(_)) => {
            let reply = message(
                pages,
                lang,
                StatusCode::OK,
                &title,
                &lang.text("lock-done"),
                "/lock",
            );
            reply.with_header("set-cookie", auth.jar(req.tls).clear_session())
        }
        Ok(None) => message(
            pages,
            lang,
            StatusCode::NOT_FOUND,
            &title,
            &lang.text("lock-bad-link"),
            "/lock",
        ),
        Err(_) => pages.fault(lang),
    }
}
