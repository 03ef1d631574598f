//! Changing the emergency contact email (`/emergency-email`), for a user with two-step
//! verification. Needs a two-factor session with a fresh proof (`reauth`): the code sent to the
//! new address only shows that the address receives mail, never who asks. The new address gets
//! a code; once it checks out, the address is changed and the addresses registered before the
//! change are told (SECURITY 42).

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::reauth::require_fresh;
use super::setup::{send_code, Change};
use super::{mask_email, notice_addresses, origin_of, tell, PageContext, Pages, Reply};
use crate::auth::{Auth, Identity};
use crate::factor::code::CodeCheck;
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};

const PAGE: &str = "/emergency-email";

/// The address on file, if the user has two-step verification; `Err` is the reply to send
/// instead (without it, the address is set during setup; a store fault is a 503).
fn current(auth: &Auth, pages: &Pages, who: &Identity, lang: Lang) -> Result<String, Reply> {
    let fault = |e: crate::factor::FactorError| {
        tracing::error!(target: "stepgate::portal", error = %e, "could not read the user's second factors");
        pages.error(StatusCode::SERVICE_UNAVAILABLE, lang)
    };
    if !auth.factors.totp_enrolled(&who.user.name).map_err(fault)? {
        let account = format!("{}/account", pages.config().prefix);
        return Err(Reply::redirect(&pages.url_with_rd("/setup", &account)));
    }
    Ok(auth
        .factors
        .emergency_email(&who.user.name)
        .map_err(fault)?
        .unwrap_or_default())
}

/// `GET /emergency-email`.
pub fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let who = match pages.signed_in(auth, req, PAGE) {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    match require_fresh(auth, pages, req, &who, PAGE, lang)
        .and_then(|()| current(auth, pages, &who, lang))
    {
        Ok(on_file) => render(auth, pages, &who, lang, &on_file, None, StatusCode::OK),
        Err(r) => r,
    }
}

/// A message shown on the page: `(is_error, text)`.
type Said = Option<(bool, String)>;

fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    on_file: &str,
    said: Said,
    status: StatusCode,
) -> Reply {
    let pending = match auth.enrolments.changes.get(&who.key).as_deref() {
        Some(Change::EmergencyEmail { email, .. }) => Some(mask_email(email)),
        _ => None,
    };
    let csrf = auth.csrf.token(&who.key);
    pages.page(
        "emergency_email.html",
        status,
        lang,
        PageContext {
            title: &lang.text("emergency-email-title"),
            rd: "",
            csrf: &csrf,
            switch: Some(PAGE),
        },
        context! {
            current => mask_email(on_file),
            pending,
            error => said.as_ref().filter(|s| s.0).map(|s| &s.1),
            notice => said.as_ref().filter(|s| !s.0).map(|s| &s.1),
        },
    )
}

/// `POST /emergency-email`: `step` is `email` (send a code to a new address; needs a fresh
/// proof), `code` (the code from the new address) or `restart` (enter another address).
pub async fn submit(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let body = &req.body[..];
    let (who, lang) = match pages.signed_in_post(auth, req, PAGE) {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let on_file = match current(auth, pages, &who, lang) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let again = |said: Said, status| render(auth, pages, &who, lang, &on_file, said, status);
    match form_value(body, "step").as_deref() {
        Some("email") => {
            if let Err(r) = require_fresh(auth, pages, req, &who, PAGE, lang) {
                return r;
            }
            let email = form_value(body, "email")
                .unwrap_or_default()
                .trim()
                .to_owned();
            if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
                let text = lang.text("email-invalid");
                return again(Some((true, text)), StatusCode::BAD_REQUEST);
            }
            if email.eq_ignore_ascii_case(&on_file) {
                let text = lang.text("emergency-email-same");
                return again(Some((true, text)), StatusCode::CONFLICT);
            }
            match send_code(auth, pages, &who, lang, &email, false).await {
                Ok(code) => {
                    let change = Change::EmergencyEmail {
                        started_ms: auth.clock.now_ms(),
                        email,
                        code,
                    };
                    if !auth.enrolments.begin_change(who.key, change) {
                        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
                    }
                    let text = lang.text("emergency-email-sent");
                    again(Some((false, text)), StatusCode::OK)
                }
                Err((text, status)) => again(Some((true, text)), status),
            }
        }
        Some("code") => confirm(auth, pages, req, &who, lang, &on_file).await,
        Some("restart") => {
            auth.enrolments.changes.remove(&who.key);
            again(None, StatusCode::OK)
        }
        _ => again(None, StatusCode::OK),
    }
}

/// The code from the new address: right, the change; wrong, the page again.
async fn confirm(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    lang: Lang,
    on_file: &str,
) -> Reply {
    let user = &who.user.name;
    let again = |said: Said, status| render(auth, pages, who, lang, on_file, said, status);
    if let Verdict::Banned { .. } = auth.regulator.check(&code_key(user), req.client) {
        let text = lang.text("too-many-attempts");
        return again(Some((true, text)), StatusCode::TOO_MANY_REQUESTS);
    }
    let code = form_value(&req.body, "code").unwrap_or_default();
    let now = auth.clock.now_ms();
    let checked = match auth.enrolments.changes.get_mut(&who.key).as_deref_mut() {
        Some(Change::EmergencyEmail {
            email,
            code: pending,
            ..
        }) => Some((pending.check(&code, now), email.clone())),
        _ => None,
    };
    let email = match checked {
        Some((CodeCheck::Accepted, email)) => email,
        Some((CodeCheck::Wrong { .. } | CodeCheck::Malformed, _)) => {
            auth.regulator.record_failure(&code_key(user), req.client);
            let text = lang.text("code-wrong");
            return again(Some((true, text)), StatusCode::UNAUTHORIZED);
        }
        Some((CodeCheck::Expired | CodeCheck::Exhausted, _)) => {
            auth.enrolments.changes.remove(&who.key);
            auth.regulator.record_failure(&code_key(user), req.client);
            let text = lang.text("emergency-email-expired");
            return again(Some((true, text)), StatusCode::UNAUTHORIZED);
        }
        None => return again(None, StatusCode::OK),
    };
    let before = notice_addresses(auth, &who.user);
    if let Err(e) = auth.factors.set_emergency_email(user, &email) {
        tracing::error!(target: "stepgate::portal", %user, error = %e, "could not change the emergency email");
        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
    }
    auth.enrolments.changes.remove(&who.key);
    auth.regulator.record_success(&code_key(user), req.client);
    tracing::info!(target: "stepgate::portal", %user, "emergency email changed");
    let origin = origin_of(auth, req);
    let masked = mask_email(&email);
    let kind = MessageKind::EmergencyEmailChanged {
        new: &masked,
        origin: &origin,
    };
    tell(auth, pages, &who.user, kind, lang, &before).await;
    let mut r = Reply::redirect(&format!(
        "{}/account?done=emergency-email",
        pages.config().prefix
    ));
    r.status = StatusCode::SEE_OTHER;
    r
}
