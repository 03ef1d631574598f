//! The page for replacing the authenticator app (`/account/authenticator`): shows the new app's
//! secret, then takes a code from it. Allowed only with a fresh proof (`reauth`); what the swap
//! does is `flow::change`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::reauth::unless_allowed;
use super::setup::qr_context;
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::flow::change::{self, Refused};
use crate::flow::setup::Secret;
use crate::i18n::Lang;

const PAGE: &str = "/account/authenticator";

fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    secret: &Secret,
    error: Option<String>,
    status: StatusCode,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("authenticator-title"),
        rd: "",
        csrf: &csrf,
        switch: Some(PAGE),
    };
    let qr = qr_context(auth, &who.user.name, &secret.totp());
    pages.page(
        "authenticator.html",
        status,
        lang,
        page,
        context! { ..qr, ..context! { error } },
    )
}

/// `GET /account/authenticator`: the new secret to scan (kept for this session until confirmed).
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, PAGE).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    if let Some(r) = unless_allowed(auth, pages, req, &who, PAGE, lang).await {
        return r;
    }
    match change::new_authenticator(auth, &who).await {
        Ok(secret) => render(auth, pages, &who, lang, &secret, None, StatusCode::OK),
        Err(_) => pages.fault(lang),
    }
}

/// `POST /account/authenticator`: a code from the new app. Right: the swap, and on to the
/// account page with a new session ID. Wrong: the page again.
pub async fn confirm(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, PAGE).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let code = form_value(&req.body, "code").unwrap_or_default();
    let ctx = pages.context(req, lang);
    let r = match change::confirm_authenticator(auth, &ctx, &who, &code).await {
        Ok(signed) => {
            let target = format!("{}/account?done=authenticator", pages.config().prefix);
            return pages.signed_in_to(auth, req, &signed, &target);
        }
        // Nothing begun (or expired, or begun in another session): start from the page.
        Err(Refused::NotBegun) => return see_other(&format!("{}{PAGE}", pages.config().prefix)),
        Err(Refused::NoFactor) => return pages.error(StatusCode::CONFLICT, lang),
        Err(Refused::Banned { until_ms }) => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("too-many-attempts"), until_ms, now)
        }
        Err(Refused::Wrong) => Refusal::new(
            lang.text("authenticator-not-valid"),
            StatusCode::UNAUTHORIZED,
        ),
        Err(_) => return pages.fault(lang),
    };
    match change::new_authenticator(auth, &who).await {
        Ok(secret) => render(
            auth,
            pages,
            &who,
            lang,
            &secret,
            Some(r.text.clone()),
            r.status,
        )
        .refused(&r),
        Err(_) => pages.fault(lang),
    }
}
