//! Replacing the authenticator app (`/account/authenticator`), for a user who has one: a new
//! phone, or an app that was reinstalled. Needs a two-factor session with a fresh proof
//! (`reauth`). The page shows a new secret; the old one keeps working until a code from the new
//! app checks out here. Then the secret is swapped, the user's other sessions end, this browser
//! gets a new session ID, and the addresses registered before the change are told.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::reauth::require_fresh;
use super::setup::{qr_context, Change};
use super::{notice_addresses, origin_of, step_up, tell, PageContext, Pages, Reply};
use crate::auth::{Auth, Identity};
use crate::factor::totp::{self, TotpCheck, TotpSecret};
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};

const PAGE: &str = "/account/authenticator";

/// Whether the user has an app to replace; `Err` is the reply to send instead (a user without
/// one sets it up; a store fault is a 503).
fn has_app(auth: &Auth, pages: &Pages, who: &Identity, lang: Lang) -> Result<(), Reply> {
    match auth.factors.totp_enrolled(&who.user.name) {
        Ok(true) => Ok(()),
        Ok(false) => {
            let account = format!("{}/account", pages.config().prefix);
            Err(Reply::redirect(&pages.url_with_rd("/setup", &account)))
        }
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "could not read the user's second factors");
            Err(pages.error(StatusCode::SERVICE_UNAVAILABLE, lang))
        }
    }
}

/// `GET /account/authenticator`: a new secret to scan (kept for this session until confirmed).
pub fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let who = match pages.signed_in(auth, req, PAGE) {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if let Err(r) = require_fresh(auth, pages, req, &who, PAGE, lang)
        .and_then(|()| has_app(auth, pages, &who, lang))
    {
        return r;
    }
    let pending = matches!(
        auth.enrolments.changes.get(&who.key).as_deref(),
        Some(Change::Authenticator { .. })
    );
    if !pending {
        let change = Change::Authenticator {
            started_ms: auth.clock.now_ms(),
            secret: TotpSecret::generate(),
        };
        if !auth.enrolments.begin_change(who.key, change) {
            tracing::warn!(target: "stepgate::portal", "change refused: too many in progress");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    }
    render(auth, pages, &who, lang, None, StatusCode::OK)
}

fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    error: Option<&str>,
    status: StatusCode,
) -> Reply {
    let qr = match auth.enrolments.changes.get(&who.key).as_deref() {
        Some(Change::Authenticator { secret, .. }) => qr_context(auth, &who.user.name, secret),
        _ => return Reply::redirect(&format!("{}{PAGE}", pages.config().prefix)),
    };
    let csrf = auth.csrf.token(&who.key);
    pages.page(
        "authenticator.html",
        status,
        lang,
        PageContext {
            title: &lang.text("authenticator-title"),
            rd: "",
            csrf: &csrf,
            switch: Some(PAGE),
        },
        context! { ..qr, ..context! { error } },
    )
}

/// `POST /account/authenticator`: a code from the new app. Right: the swap. Wrong: the page
/// again (the code counts in the failure limits).
pub async fn confirm(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, PAGE) {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let user = &who.user.name;
    let secret = match auth.enrolments.changes.get(&who.key).as_deref() {
        Some(Change::Authenticator { secret, .. }) => {
            TotpSecret::from_bytes(secret.as_bytes().to_vec())
        }
        // Nothing begun (or expired, or begun in another session): start from the page.
        _ => {
            let mut r = Reply::redirect(&format!("{}{PAGE}", pages.config().prefix));
            r.status = StatusCode::SEE_OTHER;
            return r;
        }
    };
    if let Verdict::Banned { .. } = auth.regulator.check(&code_key(user), req.client) {
        let text = lang.text("too-many-attempts");
        return render(
            auth,
            pages,
            &who,
            lang,
            Some(&text),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let code = form_value(&req.body, "code").unwrap_or_default();
    let step = match totp::check(secret.as_bytes(), &code, auth.clock.now_secs(), None) {
        TotpCheck::Accepted { step } => step,
        TotpCheck::Replayed { .. } | TotpCheck::Wrong | TotpCheck::Malformed => {
            auth.regulator.record_failure(&code_key(user), req.client);
            tracing::info!(target: "stepgate::portal", %user, "replacing the app: the new app's code did not match");
            let text = lang.text("authenticator-not-valid");
            return render(
                auth,
                pages,
                &who,
                lang,
                Some(&text),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let before = notice_addresses(auth, &who.user);
    match auth.factors.replace_totp(user, &secret, step) {
        Ok(true) => {}
        Ok(false) => {
            // Removed meanwhile: there is nothing to replace.
            auth.enrolments.changes.remove(&who.key);
            tracing::info!(target: "stepgate::portal", %user, "replacing the app refused: it was removed meanwhile");
            return pages.error(StatusCode::CONFLICT, lang);
        }
        Err(e) => {
            tracing::error!(target: "stepgate::portal", %user, error = %e, "could not replace the authenticator");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    }
    auth.enrolments.changes.remove(&who.key);
    auth.regulator.record_success(&code_key(user), req.client);
    let ended = auth.sessions.destroy_others(user, &who.key);
    tracing::info!(target: "stepgate::portal", %user, other_sessions_ended = ended, "authenticator app replaced");
    let origin = origin_of(auth, req);
    let kind = MessageKind::FactorReplaced {
        factor: "totp",
        origin: &origin,
    };
    tell(auth, pages, &who.user, kind, lang, &before).await;
    let target = format!("{}/account?done=authenticator", pages.config().prefix);
    step_up(auth, pages, req, &who, &target, lang)
}
