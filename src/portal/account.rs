//! The account security page (`/account`): who is signed in, at what level, and the state of
//! two-step verification. Changes (new recovery codes, removing the authenticator app) need a
//! two-factor session *and* a current code from the app (re-authentication before a 2FA change,
//! SECURITY 7); a wrong code counts in the failure limits like any other. Removing the app ends
//! the user's other sessions and tells the user by email.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::setup::codes_page;
use super::{tell, PageContext, Pages, Reply};
use crate::access::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::TotpVerdict;
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};

struct Texts {
    title: &'static str,
    user: &'static str,
    name: &'static str,
    email: &'static str,
    level: &'static str,
    logout: &'static str,
}

fn texts(lang: Lang) -> Texts {
    match lang {
        Lang::En => Texts {
            title: "Account security",
            user: "User name",
            name: "Name",
            email: "Email",
            level: "Sign-in level",
            logout: "Sign out",
        },
        Lang::Ko => Texts {
            title: "계정 보안",
            user: "아이디",
            name: "이름",
            email: "이메일",
            level: "인증 단계",
            logout: "로그아웃",
        },
    }
}

fn date_of(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
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
    let t = texts(lang);
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
            title: t.title,
            rd: "",
            csrf: &csrf,
            switch: Some("/account"),
        },
        context! {
            t => context! { user => t.user, name => t.name, email => t.email, level => t.level, logout => t.logout, help => super::help_label(lang) },
            user => &who.user.name,
            name => &who.user.display_name,
            email => &who.user.email,
            level => who.session.level_str(),
            totp => summary.totp.map(date_of),
            recovery_remaining => summary.recovery_remaining,
            emergency_email => summary.emergency_email,
            two_factor_session => who.session.level == AuthLevel::TwoFactor,
            account_rd,
            error,
            notice,
        },
    )
}

/// `POST /account/recovery-codes` and `POST /account/remove-authenticator`.
pub async fn change(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let body = &req.body[..];
    let (who, lang) = match pages.signed_in_post(auth, req, "/account") {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let user = &who.user.name;
    let tr = |en: &'static str, ko: &'static str| if lang == Lang::Ko { ko } else { en };
    let refuse = |en: &'static str, ko: &'static str, status: StatusCode| {
        render(
            auth,
            pages,
            req,
            &who,
            lang,
            Some((true, tr(en, ko), status)),
        )
    };
    if who.session.level != AuthLevel::TwoFactor {
        return refuse(
            "Verify with your second factor first.",
            "먼저 2단계 인증을 완료하세요.",
            StatusCode::FORBIDDEN,
        );
    }
    if let Verdict::Banned { .. } = auth.regulator.check(&code_key(user), req.client) {
        return refuse(
            "Too many attempts. Wait a while and try again.",
            "시도 횟수가 너무 많습니다. 잠시 후 다시 시도해 주세요.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let code = form_value(body, "code").unwrap_or_default();
    match auth.factors.verify_totp(user, &code) {
        Ok(TotpVerdict::Accepted) => auth.regulator.record_success(&code_key(user), req.client),
        Ok(TotpVerdict::NotEnrolled) => {
            return refuse(
                "Two-step verification is not set up.",
                "2단계 인증이 설정되어 있지 않습니다.",
                StatusCode::CONFLICT,
            );
        }
        Ok(verdict) => {
            let _ = auth.regulator.record_failure(&code_key(user), req.client);
            tracing::info!(target: "stepgate::portal", %user, ?verdict, "account change refused: code did not check out");
            return refuse(
                "The code is incorrect, or was already used. Wait for a new code and try again.",
                "코드가 올바르지 않거나 이미 사용되었습니다. 새 코드가 표시되면 다시 시도하세요.",
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "account change: could not check the code");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    }
    let account_url = format!("{}/account", pages.config().prefix);
    if req.sub == "/account/recovery-codes" {
        let codes = match auth.factors.new_recovery_codes(user) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(target: "stepgate::portal", error = %e, "could not make recovery codes");
                return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
            }
        };
        tracing::info!(target: "stepgate::portal", %user, "recovery codes replaced");
        tell(
            auth,
            pages,
            &who.user,
            MessageKind::RecoveryCodesRegenerated,
            lang,
        )
        .await;
        let intro = tr(
            "New recovery codes were made; the old ones no longer work.",
            "새 복구 코드를 만들었습니다. 이전 코드는 더 이상 사용할 수 없습니다.",
        );
        return codes_page(pages, lang, intro, &codes, &account_url);
    }
    if let Err(e) = auth.factors.reset(user, true) {
        tracing::error!(target: "stepgate::portal", error = %e, "could not remove the authenticator");
        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
    }
    let ended = auth.sessions.destroy_others(user, &who.key);
    tracing::info!(target: "stepgate::portal", %user, other_sessions_ended = ended, "authenticator app removed");
    tell(
        auth,
        pages,
        &who.user,
        MessageKind::FactorRemoved { factor: "totp" },
        lang,
    )
    .await;
    let mut r = Reply::redirect(&account_url);
    r.status = StatusCode::SEE_OTHER;
    r
}
