//! The second-factor challenge (`/2fa?method=`): it asks for one of the user's enrolled
//! factors (`method`: `totp`, `recovery`; without it, the first the user has) through the factor
//! seam, and offers the others. A recovery code is taken wherever a code is asked for.
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
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::{FactorKind, Verdict as FactorVerdict};
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};
use crate::routing::HostRouter;

fn title(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Two-step verification",
        Lang::Ko => "2단계 인증",
    }
}

/// The factor to ask for: `requested` if the user has it, else the first they have.
fn chosen(requested: Option<&str>, enrolled: &[FactorKind]) -> FactorKind {
    requested
        .and_then(FactorKind::parse)
        .filter(|k| enrolled.contains(k))
        .or_else(|| enrolled.first().copied())
        .unwrap_or(FactorKind::Totp)
}

#[allow(clippy::too_many_arguments)]
fn form(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    rd: &str,
    method: FactorKind,
    enrolled: &[FactorKind],
    error: Option<&str>,
    status: StatusCode,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let others: Vec<&str> = enrolled
        .iter()
        .filter(|k| **k != method)
        .map(|k| k.as_str())
        .collect();
    let rd_q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    pages.page(
        "challenge.html",
        status,
        lang,
        PageContext {
            title: title(lang),
            rd,
            csrf: &csrf,
            switch: Some("/2fa"),
        },
        context! { error, method => method.as_str(), others, rd_q },
    )
}

/// `GET /2fa?rd=&method=`.
pub async fn show(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let lang = lang_of(pages, req, None);
    let rd = req.param("rd").unwrap_or_default();
    let who = match pages.signed_in(auth, req, "/2fa").await {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if who.session.level() == AuthLevel::TwoFactor {
        return Reply::redirect(&pages.return_to.resolve(Some(&rd), &req.origin, router));
    }
    if !who.second_factor {
        return Reply::redirect(&pages.url_with_rd("/guide", &rd));
    }
    let user = &who.user.name;
    let enrolled = match auth.factors.enrolled_kinds(user).await {
        Ok(kinds) => kinds,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", %user, error = %e, "challenge: could not read the factors");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    let method = chosen(req.param("method").as_deref(), &enrolled);
    if let Err(e) = auth.factors.get(method).begin(user).await {
        tracing::error!(target: "stepgate::portal", %user, error = %e, "challenge: could not begin");
        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
    }
    form(
        pages,
        &who,
        lang,
        &rd,
        method,
        &enrolled,
        None,
        StatusCode::OK,
    )
}

/// `POST /2fa`.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let body = &req.body[..];
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/2fa").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if who.session.level() == AuthLevel::TwoFactor {
        let mut r = Reply::redirect(&pages.return_to.resolve(Some(&rd), &req.origin, router));
        r.status = StatusCode::SEE_OTHER;
        return r;
    }
    let user = &who.user.name;
    let enrolled = match auth.factors.enrolled_kinds(user).await {
        Ok(kinds) => kinds,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", %user, error = %e, "challenge: could not read the factors");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    let method = chosen(form_value(body, "method").as_deref(), &enrolled);
    let form = |error: Option<&str>, status| {
        form(pages, &who, lang, &rd, method, &enrolled, error, status)
    };
    let tr = |en: &'static str, ko: &'static str| if lang == Lang::Ko { ko } else { en };
    if let Verdict::Banned { until_ms } = auth.regulator.check(&code_key(user), req.client) {
        tracing::info!(target: "stepgate::regulation", %user, client = %req.client, until_ms, "second factor refused during a ban");
        let text = tr(
            "Too many wrong codes. Wait a while and try again.",
            "잘못된 코드를 너무 많이 입력했습니다. 잠시 후 다시 시도해 주세요.",
        );
        return form(Some(text), StatusCode::TOO_MANY_REQUESTS);
    }
    let code = form_value(body, "code").unwrap_or_default();
    let verdict = match auth.factors.verify(method, user, &code).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", %user, error = %e, "challenge: could not check the code");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    let who_ref = &who;
    let failed = |replayed: bool| async move {
        let who = who_ref;
        let ban = auth.regulator.record_failure(&code_key(user), req.client);
        tracing::info!(target: "stepgate::portal", %user, client = %req.client, replayed, "challenge: wrong or replayed code");
        if replayed {
            tell(auth, pages, &who.user, MessageKind::CodeReplayed, lang, &[]).await;
        }
        if ban.is_some() {
            let kind = MessageKind::SecondFactorFailed;
            tell(auth, pages, &who.user, kind, lang, &[]).await;
        }
    };
    match verdict {
        FactorVerdict::NotEnrolled => {
            let mut r = Reply::redirect(&pages.url_with_rd("/guide", &rd));
            r.status = StatusCode::SEE_OTHER;
            r
        }
        FactorVerdict::Replayed => {
            failed(true).await;
            let text = tr(
                "That code was already used. Wait for the app to show a new code.",
                "이미 사용된 코드입니다. 앱에 새 코드가 표시되면 입력하세요.",
            );
            form(Some(text), StatusCode::UNAUTHORIZED)
        }
        FactorVerdict::Wrong | FactorVerdict::Malformed => {
            failed(false).await;
            let text = tr(
                "The code is incorrect. Check the app and try again.",
                "코드가 올바르지 않습니다. 앱을 확인한 뒤 다시 입력해 주세요.",
            );
            form(Some(text), StatusCode::UNAUTHORIZED)
        }
        FactorVerdict::Accepted { kind, remaining } => {
            auth.regulator.record_success(&code_key(user), req.client);
            tracing::info!(target: "stepgate::portal", %user, factor = kind.as_str(), "second factor passed");
            if let Some(remaining) = remaining {
                let kind = MessageKind::RecoveryCodeUsed { remaining };
                tell(auth, pages, &who.user, kind, lang, &[]).await;
            }
            let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
            step_up(auth, pages, req, &who, &target, lang).await
        }
    }
}
