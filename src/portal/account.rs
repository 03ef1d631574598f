//! The account security page (`/account`): who is signed in, at what level, and the state of
//! two-step verification, with the ways to change it: replace the authenticator app
//! (`authenticator`), change the emergency email (`emergency_email`), make new recovery codes,
//! remove the app. Every change needs a two-factor session with a fresh proof (`reauth`), or a
//! current code from the app or a recovery code in the change's own form; what a change does is
//! `flow::change`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::flow::change;
use crate::i18n::Lang;

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
        "password" => Some(lang.text("account-done-password")),
        "phone" => Some(lang.text("account-done-phone")),
        _ => None,
    }
}

/// An audit-trail event in the user's words.
fn event_text(lang: Lang, event: &str) -> String {
    match event {
        "sign_in" => lang.text("event-sign_in"),
        "sign_out" => lang.text("event-sign_out"),
        "second_factor" => lang.text("event-second_factor"),
        "confirmed" => lang.text("event-confirmed"),
        "factor_added" => lang.text("event-factor_added"),
        "factor_replaced" => lang.text("event-factor_replaced"),
        "factor_removed" => lang.text("event-factor_removed"),
        "emergency_email_changed" => lang.text("event-emergency_email_changed"),
        "recovery_codes_regenerated" => lang.text("event-recovery_codes_regenerated"),
        "later" => lang.text("event-later"),
        "sign_in_failed" | "sign_in_failed_banned" | "sign_in_banned" | "sign_in_locked" => {
            lang.text("event-sign_in_failed")
        }
        "sign_in_alert" => lang.text("event-sign_in_alert"),
        "environment_checked" => lang.text("event-environment_checked"),
        "browser_trusted" => lang.text("event-browser_trusted"),
        "trusted_browser_removed" | "trusted_browsers_removed" => {
            lang.text("event-trusted_browser_removed")
        }
        "session_ended" | "sessions_ended" => lang.text("event-session_ended"),
        "account_locked" => lang.text("event-account_locked"),
        "password_changed" | "password_reset" => lang.text("event-password_changed"),
        "approval_requested" => lang.text("event-approval_requested"),
        "approval_approved" => lang.text("event-approval_approved"),
        "approval_denied" | "approval_wrong_number" => lang.text("event-approval_denied"),
        "approval_not_me" => lang.text("event-approval_not_me"),
        "approvals_blocked" => lang.text("event-approvals_blocked"),
        "approver_added" => lang.text("event-approver_added"),
        "approver_removed" => lang.text("event-approver_removed"),
        "device_code_shown" => lang.text("event-device_code_shown"),
        "certificate_registered" => lang.text("event-certificate_registered"),
        "certificate_removed" => lang.text("event-certificate_removed"),
        _ => lang.text("event-other"),
    }
}

/// The user's latest security events, for the hub.
const EVENTS_SHOWN: usize = 5;

/// A message on the page: an error (`true`) or a notice, and the status to answer with.
type Message = Option<(bool, String, StatusCode)>;

/// `GET /account`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/account").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let notice = done_notice(req.param("done").as_deref(), lang);
    let message = notice.map(|text| (false, text, StatusCode::OK));
    render(auth, pages, req, &who, lang, message).await
}

async fn render(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    lang: Lang,
    message: Message,
) -> Reply {
    let Ok(summary) = auth.factors.summary(&who.user.name).await else {
        return pages.fault(lang);
    };
    let passkeys_on = auth.factors.passkeys().enabled();
    let passkeys = match passkeys_on {
        true => match auth.factors.passkeys().list(&who.user.name).await {
            Ok(list) => list.len(),
            Err(_) => return pages.fault(lang),
        },
        false => 0,
    };
    let Ok(events) = auth
        .store
        .audit()
        .audit_of(&who.user.name, EVENTS_SHOWN)
        .await
    else {
        return pages.fault(lang);
    };
    let events: Vec<minijinja::Value> = events
        .iter()
        .map(|e| {
            context! {
                what => event_text(lang, &e.event),
                when => format!("{} {}", date_of(e.at_ms), time_of(e.at_ms)),
                address => e.client.as_deref().unwrap_or("-"),
            }
        })
        .collect();
    let account_url = format!("{}{}/account", req.origin, pages.config().prefix);
    let account_rd: String = url::form_urlencoded::byte_serialize(account_url.as_bytes()).collect();
    let csrf = pages.csrf.token(&who.key);
    let (error, notice, status) = match message {
        Some((true, text, status)) => (Some(text), None, status),
        Some((false, text, status)) => (None, Some(text), status),
        None => (None, None, StatusCode::OK),
    };
    let page = PageContext {
        title: &lang.text("account-title"),
        rd: "",
        csrf: &csrf,
        switch: Some("/account"),
    };
    let ctx = context! {
        user => &who.user.name,
        name => &who.user.display_name,
        email => &who.user.email,
        level => who.session.level().as_str(),
        totp => summary.totp.map(date_of),
        sms => summary.sms.as_deref().map(super::mask_phone),
        recovery_remaining => summary.recovery_remaining,
        passkeys_on,
        passkeys,
        certificates_on => auth.certificates.offered(),
        emergency_email => summary.emergency_email.as_deref().map(super::mask_email),
        events,
        two_factor_session => who.session.level() == AuthLevel::TwoFactor,
        fresh => who.session.has_fresh_proof(auth.clock.now_ms()),
        fresh_until => time_of(who.session.fresh_until_ms()),
        account_rd,
        error,
        notice,
    };
    pages.page("account.html", status, lang, page, ctx)
}

/// `POST /account/recovery-codes` and `POST /account/remove-authenticator`: with a fresh
/// proof, or with a current code in the form, which is then a confirmation of its own (a new
/// session ID, whose cookie the answer carries).
pub async fn change(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/account").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let refuse = |who: Identity, text: String, status| async move {
        render(auth, pages, req, &who, lang, Some((true, text, status))).await
    };
    if who.session.level() != AuthLevel::TwoFactor {
        return refuse(
            who,
            lang.text("account-second-factor-first"),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let ctx = pages.context(req, lang);
    let code = form_value(&req.body, "code").unwrap_or_default();
    let proof = match code.trim() {
        "" => change::Proof::Fresh,
        code => change::Proof::Code(code),
    };
    let fresh = who.session.has_fresh_proof(auth.clock.now_ms());
    // Both changes are hard to undo: the form's box must be ticked (after the proof question,
    // which a session without one must hear first).
    if (fresh || !code.trim().is_empty())
        && form_value(&req.body, "confirm").as_deref() != Some("yes")
    {
        return refuse(
            who,
            lang.text("account-confirm-box"),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let account_url = format!("{}/account", pages.config().prefix);
    let done = if req.sub == "/account/recovery-codes" {
        change::new_recovery_codes(auth, &ctx, &who, proof)
            .await
            .map(|codes| {
                let intro = lang.text("account-codes-renewed");
                pages.recovery_codes(lang, &intro, &codes, &account_url)
            })
    } else {
        change::remove_authenticator(auth, &ctx, &who, proof)
            .await
            .map(|()| see_other(&account_url))
    };
    let r = match done {
        Ok(reply) => return reply,
        Err(change::Refused::NeedsProof) => {
            tracing::info!(target: "stepgate::portal", user = %who.user.name, change = req.sub, "account change refused: no fresh proof");
            Refusal::new(
                lang.text("account-fresh-proof-needed"),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(change::Refused::Banned { until_ms }) => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("too-many-attempts"), until_ms, now)
        }
        Err(change::Refused::Wrong) => {
            Refusal::new(lang.text("confirm-refused"), StatusCode::UNAUTHORIZED)
        }
        Err(change::Refused::NoFactor) => {
            Refusal::new(lang.text("two-step-not-set-up"), StatusCode::CONFLICT)
        }
        Err(_) => return pages.fault(lang),
    };
    refuse(who, r.text.clone(), r.status).await.refused(&r)
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
