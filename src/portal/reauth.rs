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
use crate::factor::FactorKind;
use crate::flow::{self, change, FactorRefused};
use crate::i18n::Lang;

/// The pages a confirmation may lead back to (below the prefix). Anything else goes to the
/// account page: `next` comes from the form, so it is never used as given.
const NEXT_PAGES: [&str; 7] = [
    "/account",
    "/account/authenticator",
    "/emergency-email",
    "/phone",
    "/devices",
    "/passkeys",
    "/certificates",
];

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
            let sms = BySms::of(auth, who).await;
            Some(confirm_page(
                pages,
                who,
                lang,
                (sub, &sms),
                None,
                StatusCode::OK,
            ))
        }
        Err(change::Refused::NoFactor) => {
            let account = format!("{}/account", pages.config().prefix);
            Some(Reply::redirect(&pages.url_with_rd("/setup", &account)))
        }
        Err(_) => Some(pages.fault(lang)),
    }
}

/// The confirmation page: one code field, posting to `/account/verify`, then on to `next`.
/// How the user can confirm: for a user whose method is SMS, the masked phone and whether a
/// code was just sent to it.
#[derive(Default)]
pub(crate) struct BySms {
    pub phone: Option<String>,
    pub sent: bool,
}

impl BySms {
    /// The SMS way for `who`, when SMS is their method (no authenticator app).
    pub(crate) async fn of(auth: &Auth, who: &Identity) -> BySms {
        let user = &who.user.name;
        let kinds = auth.factors.enrolled_kinds(user).await.unwrap_or_default();
        if kinds.contains(&FactorKind::Totp) || !kinds.contains(&FactorKind::Sms) {
            return BySms::default();
        }
        let phone = auth.factors.sms_phone(user).await.ok().flatten();
        BySms {
            phone: phone.as_deref().map(super::mask_phone),
            sent: false,
        }
    }
}

pub(crate) fn confirm_page(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    (next, sms): (&str, &BySms),
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
    let ctx = context! {
        next => next_page(Some(next)),
        error,
        sms_phone => sms.phone,
        sms_sent => sms.sent,
    };
    pages.page("confirm.html", status, lang, page, ctx)
}

/// `GET /account/verify?next=`: the confirmation page on its own (the account page links here
/// for a user whose method is SMS: a code is sent only when they ask).
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/account").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let next = next_page(req.param("next").as_deref());
    let sms = BySms::of(auth, &who).await;
    confirm_page(pages, &who, lang, (next, &sms), None, StatusCode::OK)
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
        FactorRefused::Wrong
        | FactorRefused::Replayed
        | FactorRefused::Expired
        | FactorRefused::Pending
        | FactorRefused::Denied => {
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
    let ctx = pages.context(req, lang);
    if form_value(&req.body, "send").as_deref() == Some("sms") {
        let mut sms = BySms::of(auth, &who).await;
        let error = match flow::codes::send(auth, &ctx, &who, FactorKind::Sms).await {
            Ok(_) => {
                sms.sent = true;
                None
            }
            Err(
                flow::codes::SendRefused::Blocked { until_ms }
                | flow::codes::SendRefused::TooSoon { until_ms },
            ) => {
                let now = auth.clock.now_ms();
                let r = Refusal::limited(lang, lang.text("challenge-send-blocked"), until_ms, now);
                return confirm_page(
                    pages,
                    &who,
                    lang,
                    (next, &sms),
                    Some(r.text.clone()),
                    r.status,
                )
                .refused(&r);
            }
            Err(flow::codes::SendRefused::Failed) => Some(lang.text("challenge-send-failed")),
            Err(_) => return pages.fault(lang),
        };
        let status = if error.is_some() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        return confirm_page(pages, &who, lang, (next, &sms), error, status);
    }
    let code = form_value(&req.body, "code").unwrap_or_default();
    match flow::confirm(auth, &ctx, &who, &code).await {
        Ok(signed) => {
            let target = format!("{}{next}", pages.config().prefix);
            pages.signed_in_to(auth, req, &signed, &target)
        }
        Err(refused) => match refusal(refused, lang, auth.clock.now_ms()) {
            Some(r) => {
                let sms = BySms::of(auth, &who).await;
                confirm_page(
                    pages,
                    &who,
                    lang,
                    (next, &sms),
                    Some(r.text.clone()),
                    r.status,
                )
                .refused(&r)
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
