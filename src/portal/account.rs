//! The account security page (`/account`): who is signed in, at what level, and the state of
//! two-step verification, with the ways to change it: replace the authenticator app
//! (`authenticator`), change the emergency email (`emergency_email`), make new recovery codes,
//! remove the app. Every change needs a two-factor session with a fresh proof (`reauth`), or a
//! current code from the app or a recovery code in the change's own form; a wrong code counts in
//! the failure limits like any other. Removing the app ends the user's other sessions. Each
//! change is reported to the addresses registered before it, with when and from where.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::reauth::{self, Refusal};
use super::setup::codes_page;
use super::{notice_addresses, origin_of, tell, PageContext, Pages, Reply};
use crate::access::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::i18n::Lang;
use crate::notify::MessageKind;

fn date_of(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// `08:35 UTC`.
fn time_of(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute()))
        .unwrap_or_default()
}

/// The notice for `?done=` after a change made on another page (post, redirect, get).
fn done_notice(done: Option<&str>, lang: Lang) -> Option<String> {
    match done? {
        "authenticator" => Some(lang.text("account-done-authenticator")),
        "emergency-email" => Some(lang.text("account-done-emergency-email")),
        _ => None,
    }
}

/// `GET /account`, and the page again after a change (`message`: error or notice).
pub fn show(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    message: Option<(bool, &str, StatusCode)>,
) -> Reply {
    let lang = lang_of(pages, req, form_value(&req.body, "lang"));
    let who = match pages.signed_in(auth, req, "/account") {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    let done = req.param("done");
    let notice = done_notice(done.as_deref(), lang);
    let message = message.or(notice.as_deref().map(|text| (false, text, StatusCode::OK)));
    render(auth, pages, req, &who, lang, message)
}

fn render(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    lang: Lang,
    message: Option<(bool, &str, StatusCode)>,
) -> Reply {
    let summary = match auth.factors.summary(&who.user.name) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "account: could not read second factors");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    let account_url = format!("{}{}/account", req.origin, pages.config().prefix);
    let account_rd: String = url::form_urlencoded::byte_serialize(account_url.as_bytes()).collect();
    let csrf = auth.csrf.token(&who.key);
    let (error, notice, status) = match message {
        Some((true, text, status)) => (Some(text), None, status),
        Some((false, text, status)) => (None, Some(text), status),
        None => (None, None, StatusCode::OK),
    };
    pages.page(
        "account.html",
        status,
        lang,
        PageContext {
            title: &lang.text("account-title"),
            rd: "",
            csrf: &csrf,
            switch: Some("/account"),
        },
        context! {
            user => &who.user.name,
            name => &who.user.display_name,
            email => &who.user.email,
            level => who.session.level_str(),
            totp => summary.totp.map(date_of),
            recovery_remaining => summary.recovery_remaining,
            emergency_email => summary.emergency_email,
            two_factor_session => who.session.level == AuthLevel::TwoFactor,
            fresh => who.session.has_fresh_proof(auth.clock.now_ms()),
            fresh_until => time_of(who.session.fresh_until_ms()),
            account_rd,
            error,
            notice,
        },
    )
}

/// `POST /account/recovery-codes` and `POST /account/remove-authenticator`: with a fresh
/// proof, or with a current code in the form (which must then be right).
pub async fn change(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let body = &req.body[..];
    let (who, lang) = match pages.signed_in_post(auth, req, "/account") {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let user = &who.user.name;
    let refuse = |text: &str, status: StatusCode| {
        render(auth, pages, req, &who, lang, Some((true, text, status)))
    };
    if who.session.level != AuthLevel::TwoFactor {
        let text = lang.text("account-second-factor-first");
        return refuse(&text, StatusCode::FORBIDDEN);
    }
    let code = form_value(body, "code").unwrap_or_default();
    if !code.trim().is_empty() {
        match reauth::prove(auth, pages, req, &who, &code, lang).await {
            Ok(()) => {}
            Err(Refusal::Shown(text, status)) => return refuse(&text, status),
            Err(Refusal::Fault) => return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang),
        }
    } else if !who.session.has_fresh_proof(auth.clock.now_ms()) {
        tracing::info!(target: "stepgate::portal", %user, change = req.sub, "account change refused: no fresh proof");
        let text = lang.text("account-fresh-proof-needed");
        return refuse(&text, StatusCode::UNAUTHORIZED);
    }
    let account_url = format!("{}/account", pages.config().prefix);
    let before = notice_addresses(auth, &who.user);
    let origin = origin_of(auth, req);
    if req.sub == "/account/recovery-codes" {
        let codes = match auth.factors.new_recovery_codes(user) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(target: "stepgate::portal", error = %e, "could not make recovery codes");
                return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
            }
        };
        tracing::info!(target: "stepgate::portal", %user, "recovery codes replaced");
        let kind = MessageKind::RecoveryCodesRegenerated { origin: &origin };
        tell(auth, pages, &who.user, kind, lang, &before).await;
        let intro = lang.text("account-codes-renewed");
        return codes_page(pages, lang, &intro, &codes, &account_url);
    }
    if let Err(e) = auth.factors.reset(user, true) {
        tracing::error!(target: "stepgate::portal", error = %e, "could not remove the authenticator");
        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
    }
    let ended = auth.sessions.destroy_others(user, &who.key);
    tracing::info!(target: "stepgate::portal", %user, other_sessions_ended = ended, "authenticator app removed");
    let kind = MessageKind::FactorRemoved {
        factor: "totp",
        origin: &origin,
    };
    tell(auth, pages, &who.user, kind, lang, &before).await;
    let mut r = Reply::redirect(&account_url);
    r.status = StatusCode::SEE_OTHER;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_changes_have_a_notice() {
        assert!(done_notice(Some("authenticator"), Lang::En).is_some());
        assert!(done_notice(Some("emergency-email"), Lang::Ko).is_some());
        assert_eq!(done_notice(Some("<script>"), Lang::En), None);
        assert_eq!(done_notice(None, Lang::En), None);
    }
}
