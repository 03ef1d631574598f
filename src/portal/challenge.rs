//! The second-factor challenge (`/2fa`): one `code` field that takes the authenticator app's
//! 6-digit code or a recovery code.
//!
//! Wrong codes count against the account in the failure limits (per user and address, per
//! address, per user), not against the session, so signing in again does not buy more tries.
//! While a ban is on, even a right code is refused. A replayed app code (a step already
//! accepted) is refused, logged and reported to the user: someone may have watched it. When the
//! failures earn a ban, the user is told that their password was right but the second step
//! failed (SECURITY 20). Success gives a new session ID at `2fa` and returns to `rd`.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::{step_up, tell, PageContext, Pages, Reply};
use crate::access::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::{RecoveryVerdict, TotpVerdict};
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};
use crate::routing::HostRouter;

fn form(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    rd: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Reply {
    let csrf = auth.csrf.token(&who.key);
    pages.page(
        "challenge.html",
        status,
        lang,
        PageContext {
            title: &lang.text("challenge-title"),
            rd,
            csrf: &csrf,
            switch: Some("/2fa"),
        },
        context! { error },
    )
}

/// `GET /2fa?rd=`.
pub fn show(auth: &Auth, pages: &Pages, router: &HostRouter, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let rd = req.param("rd").unwrap_or_default();
    let who = match pages.signed_in(auth, req, "/2fa") {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if who.session.level == AuthLevel::TwoFactor {
        return Reply::redirect(&auth.return_to.resolve(Some(&rd), &req.origin, router));
    }
    if !who.second_factor {
        return Reply::redirect(&pages.url_with_rd("/guide", &rd));
    }
    form(auth, pages, &who, lang, &rd, None, StatusCode::OK)
}

/// What a submitted code turned out to be.
pub(crate) enum Outcome {
    Passed { recovery_left: Option<usize> },
    Replayed,
    Wrong,
    NotEnrolled,
}

/// Checks a code as the app's 6 digits or as a recovery code, by its shape.
pub(crate) fn check(
    auth: &Auth,
    user: &str,
    code: &str,
) -> Result<Outcome, crate::factor::FactorError> {
    let digits = code.chars().filter(|c| !c.is_whitespace()).count();
    let looks_totp = digits == 6
        && code
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_whitespace());
    if looks_totp {
        return Ok(match auth.factors.verify_totp(user, code)? {
            TotpVerdict::Accepted => Outcome::Passed {
                recovery_left: None,
            },
            TotpVerdict::Replayed => Outcome::Replayed,
            TotpVerdict::Wrong | TotpVerdict::Malformed => Outcome::Wrong,
            TotpVerdict::NotEnrolled => Outcome::NotEnrolled,
        });
    }
    if !auth.factors.enrolled(user)? {
        return Ok(Outcome::NotEnrolled);
    }
    Ok(match auth.factors.use_recovery_code(user, code)? {
        RecoveryVerdict::Accepted { remaining } => Outcome::Passed {
            recovery_left: Some(remaining),
        },
        RecoveryVerdict::Wrong => Outcome::Wrong,
    })
}

/// `POST /2fa`.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let body = &req.body[..];
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/2fa") {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if who.session.level == AuthLevel::TwoFactor {
        let mut r = Reply::redirect(&auth.return_to.resolve(Some(&rd), &req.origin, router));
        r.status = StatusCode::SEE_OTHER;
        return r;
    }
    let user = &who.user.name;
    if let Verdict::Banned { until_ms } = auth.regulator.check(&code_key(user), req.client) {
        tracing::info!(target: "stepgate::regulation", %user, client = %req.client, until_ms, "second factor refused during a ban");
        let text = lang.text("challenge-banned");
        return form(
            auth,
            pages,
            &who,
            lang,
            &rd,
            Some(&text),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let code = form_value(body, "code").unwrap_or_default();
    let outcome = match check(auth, user, &code) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", %user, error = %e, "challenge: could not check the code");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    let wrong = |text: String| {
        form(
            auth,
            pages,
            &who,
            lang,
            &rd,
            Some(&text),
            StatusCode::UNAUTHORIZED,
        )
    };
    match outcome {
        Outcome::NotEnrolled => {
            let mut r = Reply::redirect(&pages.url_with_rd("/guide", &rd));
            r.status = StatusCode::SEE_OTHER;
            r
        }
        Outcome::Replayed => {
            let ban = auth.regulator.record_failure(&code_key(user), req.client);
            tracing::warn!(target: "stepgate::portal", %user, client = %req.client, "challenge: an authenticator code was replayed");
            tell(auth, pages, &who.user, MessageKind::CodeReplayed, lang, &[]).await;
            if ban.is_some() {
                tell(
                    auth,
                    pages,
                    &who.user,
                    MessageKind::SecondFactorFailed,
                    lang,
                    &[],
                )
                .await;
            }
            wrong(lang.text("challenge-replayed"))
        }
        Outcome::Wrong => {
            let ban = auth.regulator.record_failure(&code_key(user), req.client);
            tracing::info!(target: "stepgate::portal", %user, client = %req.client, "challenge: wrong code");
            if ban.is_some() {
                tell(
                    auth,
                    pages,
                    &who.user,
                    MessageKind::SecondFactorFailed,
                    lang,
                    &[],
                )
                .await;
            }
            wrong(lang.text("challenge-wrong"))
        }
        Outcome::Passed { recovery_left } => {
            auth.regulator.record_success(&code_key(user), req.client);
            if let Some(remaining) = recovery_left {
                tracing::info!(target: "stepgate::portal", %user, remaining, "second factor passed with a recovery code");
                tell(
                    auth,
                    pages,
                    &who.user,
                    MessageKind::RecoveryCodeUsed { remaining },
                    lang,
                    &[],
                )
                .await;
            } else {
                tracing::info!(target: "stepgate::portal", %user, "second factor passed (authenticator app)");
            }
            let target = auth.return_to.resolve(Some(&rd), &req.origin, router);
            step_up(auth, pages, req, &who, &target, lang)
        }
    }
}
