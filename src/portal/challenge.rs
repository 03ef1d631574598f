//! The second-factor challenge page (`/2fa?rd=&method=`): it asks for one of the user's
//! enrolled factors (`method`: `totp`, `recovery`; without it, the first the user has) and offers
//! the others. Checking the answer, the limits and the notices are `flow::pass_second_factor`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::FactorKind;
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
struct Ask<'a> {
    method: FactorKind,
    enrolled: &'a [FactorKind],
}

#[allow(clippy::too_many_arguments)]
fn form(
    pages: &Pages,
    remember_offered: bool,
    who: &Identity,
    lang: Lang,
    rd: &str,
    ask: &Ask<'_>,
    error: Option<String>,
    status: StatusCode,
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
    let ctx = context! {
        error,
        method => ask.method.as_str(),
        others,
        rd_q,
        remember_offered => remember_offered,
    };
    pages.page("challenge.html", status, lang, page, ctx)
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
    let Ok(enrolled) = auth.factors.enrolled_kinds(&who.user.name).await else {
        return pages.fault(lang);
    };
    let method = chosen(req.param("method").as_deref(), &enrolled);
    if auth
        .factors
        .get(method)
        .begin(&who.user.name)
        .await
        .is_err()
    {
        return pages.fault(lang);
    }
    let ask = Ask {
        method,
        enrolled: &enrolled,
    };
    let remember = auth.two_factor.trusted_browser_lifetime.is_some();
    form(pages, remember, &who, lang, &rd, &ask, None, StatusCode::OK)
}

/// `POST /2fa`.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/2fa").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if let Some(r) = elsewhere(pages, router, req, &who, &rd) {
        return r;
    }
    let Ok(enrolled) = auth.factors.enrolled_kinds(&who.user.name).await else {
        return pages.fault(lang);
    };
    let ask = Ask {
        method: chosen(form_value(&req.body, "method").as_deref(), &enrolled),
        enrolled: &enrolled,
    };
    let code = form_value(&req.body, "code").unwrap_or_default();
    let ctx = pages.context(req, lang);
    let remember = form_value(&req.body, "remember").is_some_and(|v| !v.is_empty());
    let r = match flow::pass_second_factor(auth, &ctx, &who, ask.method, &code).await {
        Ok(signed) => {
            let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
            let mut reply = pages.signed_in_to(auth, req, &signed, &target);
            if remember {
                match flow::browsers::trust_this_browser(auth, &ctx, &who.user.name).await {
                    Ok(Some((token, max_age))) => {
                        let cookie = Pages::lasting_cookie(
                            req,
                            crate::browsers::TRUST_COOKIE,
                            &token,
                            max_age,
                        );
                        reply = reply.with_header("set-cookie", cookie);
                    }
                    Ok(None) => {}
                    // The sign-in stands; the browser is simply not trusted (logged).
                    Err(_) => {}
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
    };
    let offered = auth.two_factor.trusted_browser_lifetime.is_some();
    form(
        pages,
        offered,
        &who,
        lang,
        &rd,
        &ask,
        Some(r.text.clone()),
        r.status,
    )
    .refused(&r)
}
