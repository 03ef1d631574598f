//! "Confirm it is you" before a change to the account's second factors or emergency email
//! (SECURITY 7 and 42): a two-factor session may make such a change only while its proof is
//! fresh (`session::FRESH_PROOF`, 5 minutes after the second factor was last proven in it).
//! Otherwise the user enters a current code from the authenticator app or a recovery code on
//! the confirmation page (`POST /account/verify`), which gives the browser a new session ID with
//! a fresh proof and sends it on to the page it came from.
//!
//! A code sent to an address the request supplies is never a proof: whoever holds a stolen
//! session cookie can receive mail at their own address.

use http::StatusCode;
use minijinja::context;

use super::challenge::{self, Outcome};
use super::login::{form_value, PortalRequest};
use super::{step_up, tell, PageContext, Pages, Reply};
use crate::access::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};

/// The pages a confirmation may lead back to (below the prefix). Anything else goes to the
/// account page: `next` comes from the form, so it is never used as given.
const NEXT_PAGES: [&str; 3] = ["/account", "/account/authenticator", "/emergency-email"];

fn next_page(requested: Option<&str>) -> &'static str {
    NEXT_PAGES
        .into_iter()
        .find(|p| Some(*p) == requested)
        .unwrap_or("/account")
}

/// Gate of the change pages: `Ok` for a two-factor session with a fresh proof; otherwise the
/// reply to send instead: the challenge for a one-factor session, the confirmation page for a
/// proof that is no longer fresh.
pub(crate) fn require_fresh(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    sub: &'static str,
    lang: Lang,
) -> Result<(), Reply> {
    if who.session.level != AuthLevel::TwoFactor {
        let back = format!("{}{}{sub}", req.origin, pages.config().prefix);
        return Err(Reply::redirect(&pages.url_with_rd("/2fa", &back)));
    }
    if who.session.has_fresh_proof(auth.clock.now_ms()) {
        return Ok(());
    }
    Err(confirm_page(
        auth,
        pages,
        who,
        lang,
        sub,
        None,
        StatusCode::OK,
    ))
}

/// The confirmation page: one code field, posting to `/account/verify`, then on to `next`.
pub(crate) fn confirm_page(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Reply {
    let csrf = auth.csrf.token(&who.key);
    pages.page(
        "confirm.html",
        status,
        lang,
        PageContext {
            title: &lang.text("confirm-title"),
            rd: "",
            csrf: &csrf,
            switch: Some(next_page(Some(next))),
        },
        context! { next => next_page(Some(next)), error },
    )
}

/// Why a code was not accepted as a proof, or that it could not be checked.
#[must_use]
pub(crate) enum Refusal {
    /// The text to show and the status to answer with.
    Shown(String, StatusCode),
    /// The factor store failed: answer with the branded 503.
    Fault,
}

/// Checks `code` (the app's current code or a recovery code) as a proof by `who`, under the
/// account's failure limits, with the same notices as the challenge: a replay, a used recovery
/// code, and the ban a run of failures earns are reported to the user.
pub(crate) async fn prove(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    code: &str,
    lang: Lang,
) -> Result<(), Refusal> {
    let user = &who.user.name;
    if let Verdict::Banned { .. } = auth.regulator.check(&code_key(user), req.client) {
        return Err(Refusal::Shown(
            lang.text("too-many-attempts"),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let outcome = challenge::check(auth, user, code).map_err(|e| {
        tracing::error!(target: "stepgate::portal", %user, error = %e, "confirmation: could not check the code");
        Refusal::Fault
    })?;
    let replayed = matches!(outcome, Outcome::Replayed);
    match outcome {
        Outcome::Passed { recovery_left } => {
            auth.regulator.record_success(&code_key(user), req.client);
            tracing::info!(target: "stepgate::portal", %user, "confirmed it is them with a second factor");
            if let Some(remaining) = recovery_left {
                let kind = MessageKind::RecoveryCodeUsed { remaining };
                tell(auth, pages, &who.user, kind, lang, &[]).await;
            }
            Ok(())
        }
        Outcome::NotEnrolled => Err(Refusal::Shown(
            lang.text("two-step-not-set-up"),
            StatusCode::CONFLICT,
        )),
        Outcome::Replayed | Outcome::Wrong => {
            let ban = auth.regulator.record_failure(&code_key(user), req.client);
            tracing::info!(target: "stepgate::portal", %user, client = %req.client, replayed, "confirmation refused: the code did not check out");
            if replayed {
                tell(auth, pages, &who.user, MessageKind::CodeReplayed, lang, &[]).await;
            }
            if ban.is_some() {
                let kind = MessageKind::SecondFactorFailed;
                tell(auth, pages, &who.user, kind, lang, &[]).await;
            }
            Err(Refusal::Shown(
                lang.text("confirm-refused"),
                StatusCode::UNAUTHORIZED,
            ))
        }
    }
}

/// `POST /account/verify`: a code from the confirmation page. Right: a new session ID with a
/// fresh proof, and on to `next`. Wrong: the page again, with the reason.
pub async fn verify(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let body = &req.body[..];
    let (who, lang) = match pages.signed_in_post(auth, req, "/account") {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let next = next_page(form_value(body, "next").as_deref());
    if who.session.level != AuthLevel::TwoFactor {
        let back = format!("{}{}{next}", req.origin, pages.config().prefix);
        let mut r = Reply::redirect(&pages.url_with_rd("/2fa", &back));
        r.status = StatusCode::SEE_OTHER;
        return r;
    }
    let code = form_value(body, "code").unwrap_or_default();
    match prove(auth, pages, req, &who, &code, lang).await {
        Ok(()) => {
            let target = format!("{}{next}", pages.config().prefix);
            step_up(auth, pages, req, &who, &target, lang)
        }
        Err(Refusal::Shown(text, status)) => {
            confirm_page(auth, pages, &who, lang, next, Some(&text), status)
        }
        Err(Refusal::Fault) => pages.error(StatusCode::SERVICE_UNAVAILABLE, lang),
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
