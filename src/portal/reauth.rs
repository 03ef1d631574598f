//! The "confirm it is you" page, and its form (`POST /account/verify`): a current code from the
//! authenticator app or a recovery code gives the browser a new session ID whose proof is fresh
//! (`flow::confirm`), then sends it on to the page it came from. Every change of a second factor
//! or of the emergency email needs that fresh proof (`flow::change`).

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::flow::{self, change, FactorRefused};
use crate::i18n::Lang;

/// The pages a confirmation may lead back to (below the prefix). Anything else goes to the
/// account page: `next` comes from the form, so it is never used as given.
const NEXT_PAGES: [&str; 3] = ["/account", "/account/authenticator", "/emergency-email"];

fn next_page(requested: Option<&str>) -> &'static str {
    NEXT_PAGES
        .into_iter()
        .find(|p| Some(*p) == requested)
        .unwrap_or("/account")
}

/// What a change page shows instead of itself when the change is not allowed now: the
/// challenge for a one-factor session, the confirmation page for a proof that is not fresh,
/// setup for a user without an app; `None` when it is allowed.
pub(crate) async fn unless_allowed(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    sub: &'static str,
    lang: Lang,
) -> Option<Reply> {
    let back = format!("{}{}{sub}", req.origin, pages.config().prefix);
    match change::allowed(auth, who).await {
        Ok(()) => None,
        Err(change::Refused::NotTwoFactor) => {
            Some(Reply::redirect(&pages.url_with_rd("/2fa", &back)))
        }
        Err(change::Refused::NeedsProof) => {
            Some(confirm_page(pages, who, lang, sub, None, StatusCode::OK))
        }
        Err(change::Refused::NoFactor) => {
            let account = format!("{}/account", pages.config().prefix);
            Some(Reply::redirect(&pages.url_with_rd("/setup", &account)))
        }
        Err(_) => Some(pages.fault(lang)),
    }
}

/// The confirmation page: one code field, posting to `/account/verify`, then on to `next`.
pub(crate) fn confirm_page(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    next: &str,
    error: Option<String>,
    status: StatusCode,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("confirm-title"),
        rd: "",
        csrf: &csrf,
        switch: Some(next_page(Some(next))),
    };
    let ctx = context! { next => next_page(Some(next)), error };
    pages.page("confirm.html", status, lang, page, ctx)
}

/// What the page says of a refused answer (`None`: a fault, answered with the 503 page).
pub(crate) fn refusal(refused: FactorRefused, lang: Lang, now_ms: u64) -> Option<Refusal> {
    Some(match refused {
        FactorRefused::Banned { until_ms } => {
            Refusal::limited(lang, lang.text("too-many-attempts"), until_ms, now_ms)
        }
        FactorRefused::NotEnrolled => {
            Refusal::new(lang.text("two-step-not-set-up"), StatusCode::CONFLICT)
        }
        FactorRefused::Wrong | FactorRefused::Replayed | FactorRefused::Expired => {
            Refusal::new(lang.text("confirm-refused"), StatusCode::UNAUTHORIZED)
        }
        FactorRefused::Fault => return None,
    })
}

/// `POST /account/verify`: right, a new session ID with a fresh proof, and on to `next`; wrong,
/// the page again with the reason.
pub async fn verify(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/account").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let next = next_page(form_value(&req.body, "next").as_deref());
    if who.session.level() != AuthLevel::TwoFactor {
        let back = format!("{}{}{next}", req.origin, pages.config().prefix);
        return see_other(&pages.url_with_rd("/2fa", &back));
    }
    let code = form_value(&req.body, "code").unwrap_or_default();
    let ctx = pages.context(req, lang);
    match flow::confirm(auth, &ctx, &who, &code).await {
        Ok(signed) => {
            let target = format!("{}{next}", pages.config().prefix);
            pages.signed_in_to(auth, req, &signed, &target)
        }
        Err(refused) => match refusal(refused, lang, auth.clock.now_ms()) {
            Some(r) => {
                confirm_page(pages, &who, lang, next, Some(r.text.clone()), r.status).refused(&r)
            }
            None => pages.fault(lang),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_one_of_the_change_pages_or_the_account() {
        assert_eq!(next_page(Some("/emergency-email")), "/emergency-email");
        assert_eq!(
            next_page(Some("/account/authenticator")),
            "/account/authenticator"
        );
        assert_eq!(next_page(Some("https://evil.test/")), "/account");
        assert_eq!(next_page(Some("//evil.test")), "/account");
        assert_eq!(next_page(None), "/account");
    }
}
