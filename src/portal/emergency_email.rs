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

fn tr(lang: Lang, en: &'static str, ko: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Ko => ko,
    }
}

/// The address on file, if the user has two-step verification; `Err` is the reply to send
/// instead (without it, the address is set during setup; a store fault is a 503).
async fn current(auth: &Auth, pages: &Pages, who: &Identity, lang: Lang) -> Result<String, Reply> {
    let fault = |e: crate::factor::FactorError| {
        tracing::error!(target: "stepgate::portal", error = %e, "could not read the user's second factors");
        pages.error(StatusCode::SERVICE_UNAVAILABLE, lang)
    };
    if !auth
        .factors
        .totp_enrolled(&who.user.name)
        .await
        .map_err(fault)?
    {
        let account = format!("{}/account", pages.config().prefix);
        return Err(Reply::redirect(&pages.url_with_rd("/setup", &account)));
    }
    Ok(auth
        .factors
        .emergency_email(&who.user.name)
        .await
        .map_err(fault)?
        .unwrap_or_default())
}

/// `GET /emergency-email`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let who = match pages.signed_in(auth, req, PAGE).await {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if let Err(r) = require_fresh(auth, pages, req, &who, PAGE, lang) {
        return r;
    }
    match current(auth, pages, &who, lang).await {
        Ok(on_file) => render(pages, &who, lang, &on_file, None, StatusCode::OK),
        Err(r) => r,
    }
}

/// A message shown on the page: `(is_error, text)`.
type Said = Option<(bool, &'static str)>;

fn render(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    on_file: &str,
    said: Said,
    status: StatusCode,
) -> Reply {
    let pending = match pages.enrolments.changes.get(&who.key).as_deref() {
        Some(Change::EmergencyEmail { email, .. }) => Some(mask_email(email)),
        _ => None,
    };
    let csrf = pages.csrf.token(&who.key);
    pages.page(
        "emergency_email.html",
        status,
        lang,
        PageContext {
            title: tr(lang, "Change the emergency email", "비상연락용 이메일 변경"),
            rd: "",
            csrf: &csrf,
            switch: Some(PAGE),
        },
        context! {
            current => mask_email(on_file),
            pending,
            error => said.filter(|s| s.0).map(|s| s.1),
            notice => said.filter(|s| !s.0).map(|s| s.1),
        },
    )
}

/// `POST /emergency-email`: `step` is `email` (send a code to a new address; needs a fresh
/// proof), `code` (the code from the new address) or `restart` (enter another address).
pub async fn submit(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let body = &req.body[..];
    let (who, lang) = match pages.signed_in_post(auth, req, PAGE).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let on_file = match current(auth, pages, &who, lang).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let again = |said: Said, status| render(pages, &who, lang, &on_file, said, status);
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
                let text = tr(
                    lang,
                    "Enter a valid email address.",
                    "올바른 이메일 주소를 입력하세요.",
                );
                return again(Some((true, text)), StatusCode::BAD_REQUEST);
            }
            if email.eq_ignore_ascii_case(&on_file) {
                let text = tr(
                    lang,
                    "That is already your emergency email.",
                    "이미 등록된 비상연락용 이메일입니다.",
                );
                return again(Some((true, text)), StatusCode::CONFLICT);
            }
            match send_code(auth, pages, &who, lang, &email, false).await {
                Ok(code) => {
                    let change = Change::EmergencyEmail {
                        started_ms: auth.clock.now_ms(),
                        email,
                        code,
                    };
                    if !pages.enrolments.begin_change(who.key, change) {
                        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
                    }
                    let text = tr(
                        lang,
                        "We sent a code to the new address. Check its inbox.",
                        "새 주소로 인증 코드를 보냈습니다. 메일함을 확인하세요.",
                    );
                    again(Some((false, text)), StatusCode::OK)
                }
                Err((what, status)) => {
                    let text = match what {
                        "send_limit" => tr(
                            lang,
                            "Too many codes were requested. Try again in an hour.",
                            "인증 코드 요청 횟수를 초과했습니다. 1시간 후에 다시 시도해 주세요.",
                        ),
                        _ => tr(
                            lang,
                            "We could not send the code. Try again in a moment.",
                            "코드를 보내지 못했습니다. 잠시 후 다시 시도해 주세요.",
                        ),
                    };
                    again(Some((true, text)), status)
                }
            }
        }
        Some("code") => confirm(auth, pages, req, &who, lang, &on_file).await,
        Some("restart") => {
            pages.enrolments.changes.remove(&who.key);
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
    let again = |said: Said, status| render(pages, who, lang, on_file, said, status);
    if let Verdict::Banned { .. } = auth.regulator.check(&code_key(user), req.client) {
        let text = tr(
            lang,
            "Too many attempts. Wait a while and try again.",
            "시도 횟수가 너무 많습니다. 잠시 후 다시 시도해 주세요.",
        );
        return again(Some((true, text)), StatusCode::TOO_MANY_REQUESTS);
    }
    let code = form_value(&req.body, "code").unwrap_or_default();
    let now = auth.clock.now_ms();
    let checked = match pages.enrolments.changes.get_mut(&who.key).as_deref_mut() {
        Some(Change::EmergencyEmail {
            email,
            code: pending,
            ..
        }) => Some((
            pending.check(auth.factors.code_key(), &code, now),
            email.clone(),
        )),
        _ => None,
    };
    let email = match checked {
        Some((CodeCheck::Accepted, email)) => email,
        Some((CodeCheck::Wrong { .. } | CodeCheck::Malformed, _)) => {
            auth.regulator.record_failure(&code_key(user), req.client);
            let text = tr(
                lang,
                "The code is incorrect. Check it and try again.",
                "코드가 올바르지 않습니다. 확인 후 다시 입력해 주세요.",
            );
            return again(Some((true, text)), StatusCode::UNAUTHORIZED);
        }
        Some((CodeCheck::Expired | CodeCheck::Exhausted, _)) => {
            pages.enrolments.changes.remove(&who.key);
            auth.regulator.record_failure(&code_key(user), req.client);
            let text = tr(
                lang,
                "The code has expired or was tried too many times. Start again.",
                "코드가 만료되었거나 입력 횟수를 초과했습니다. 처음부터 다시 시도하세요.",
            );
            return again(Some((true, text)), StatusCode::UNAUTHORIZED);
        }
        None => return again(None, StatusCode::OK),
    };
    let before = notice_addresses(auth, &who.user).await;
    if let Err(e) = auth.factors.set_emergency_email(user, &email).await {
        tracing::error!(target: "stepgate::portal", %user, error = %e, "could not change the emergency email");
        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
    }
    pages.enrolments.changes.remove(&who.key);
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
