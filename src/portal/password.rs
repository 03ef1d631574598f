//! Change password (`/password`, signed in) and reset (`/reset`: ask for a link by user name or
//! email; `/reset?token=`: the form the link opens). The work is `flow::password`'s; every
//! answer to "send me a link" is the same, whether or not the account exists.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::protect::message;
use super::{PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::flow::password::{self, ChangeRefused, ResetRefused, Weak};
use crate::flow::FactorRefused;
use crate::i18n::Lang;
use crate::routing::HostRouter;

fn weak_text(lang: Lang, w: Weak) -> String {
    match w {
        Weak::TooShort => lang.text_with(
            "password-too-short",
            &[("min", password::MIN_LENGTH.into())],
        ),
        Weak::TooLong => lang.text("password-too-long"),
        Weak::Guessable => lang.text("password-guessable"),
    }
}

fn factor_text(auth: &Auth, lang: Lang, f: FactorRefused) -> Refusal {
    match f {
        FactorRefused::Banned { until_ms } => Refusal::limited(
            lang,
            lang.text("challenge-banned"),
            until_ms,
            auth.clock.now_ms(),
        ),
        FactorRefused::Replayed => {
            Refusal::new(lang.text("challenge-replayed"), StatusCode::UNAUTHORIZED)
        }
        _ => Refusal::new(lang.text("challenge-wrong"), StatusCode::UNAUTHORIZED),
    }
}

fn change_form(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    needs_code: bool,
    error: Option<&Refusal>,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let title = lang.text("password-title");
    let page = PageContext {
        title: &title,
        rd: "",
        csrf: &csrf,
        switch: Some("/password"),
    };
    let ctx = context! {
        needs_code,
        min => password::MIN_LENGTH,
        error => error.map(|e| e.text.clone()),
        action => "/password",
        current => true,
    };
    pages.form_page("password.html", lang, page, ctx, error)
}

/// `GET /password`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/password").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let Ok(needs_code) = password::change_needs_code(auth, &who).await else {
        return pages.fault(lang);
    };
    change_form(pages, &who, lang, needs_code, None)
}

/// `POST /password`.
pub async fn change(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let post = match pages.signed_in_post(auth, req, "/password").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (who, lang) = (post.who, post.lang);
    let field = |name| form_value(&req.body, name).unwrap_or_default();
    let ctx = pages.context(req, lang);
    let now = auth.clock.now_ms();
    let refused = match password::change(
        auth,
        &ctx,
        &who,
        &field("current_password"),
        &field("new_password"),
        &field("code"),
    )
    .await
    {
        Ok(signed) => {
            let prefix = &pages.config().prefix;
            return pages.signed_in_to(
                auth,
                req,
                &signed,
                &format!("{prefix}/account?done=password"),
            );
        }
        Err(ChangeRefused::Fault | ChangeRefused::Busy) => return pages.fault(lang),
        Err(ChangeRefused::WrongPassword) => Refusal::new(
            lang.text("password-wrong-current"),
            StatusCode::UNAUTHORIZED,
        ),
        Err(ChangeRefused::Banned { until_ms }) => {
            Refusal::limited(lang, lang.text("password-banned"), until_ms, now)
        }
        Err(ChangeRefused::CodeNeeded) => {
            Refusal::new(lang.text("password-code-needed"), StatusCode::UNAUTHORIZED)
        }
        Err(ChangeRefused::Factor(f)) => factor_text(auth, lang, f),
        Err(ChangeRefused::Weak(w)) => Refusal::new(weak_text(lang, w), StatusCode::BAD_REQUEST),
    };
    let needs_code = password::change_needs_code(auth, &who)
        .await
        .unwrap_or(true);
    change_form(pages, &who, lang, needs_code, Some(&refused))
}

fn reset_form(
    pages: &Pages,
    lang: Lang,
    token: &str,
    needs_code: bool,
    error: Option<&Refusal>,
) -> Reply {
    let csrf = pages.csrf.token(token.as_bytes());
    let title = lang.text("reset-title");
    let page = PageContext {
        title: &title,
        rd: "",
        csrf: &csrf,
        switch: None,
    };
    let ctx = context! {
        needs_code,
        token,
        min => password::MIN_LENGTH,
        error => error.map(|e| e.text.clone()),
        action => "/reset",
        current => false,
    };
    pages.form_page("password.html", lang, page, ctx, error)
}

/// `GET /reset` (ask for a link) and `GET /reset?token=` (the new password form).
pub async fn show_reset(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let Some(token) = req.param("token") else {
        let (csrf, set_binding) = super::login::form_token(auth, pages, req);
        let page = PageContext {
            title: &lang.text("reset-title"),
            rd: "",
            csrf: &csrf,
            switch: Some("/reset"),
        };
        let reply = pages.page("reset.html", StatusCode::OK, lang, page, context! {});
        return match set_binding {
            Some(cookie) => reply.with_header("set-cookie", cookie),
            None => reply,
        };
    };
    let user = match password::reset_user(auth, &token).await {
        Ok(u) => u,
        Err(_) => return pages.fault(lang),
    };
    let Some(user) = user else {
        let title = lang.text("reset-title");
        return message(
            pages,
            lang,
            StatusCode::NOT_FOUND,
            &title,
            &lang.text("reset-bad-link"),
            "/reset",
        );
    };
    let Ok(needs_code) = password::reset_needs_code(auth, &user).await else {
        return pages.fault(lang);
    };
    reset_form(pages, lang, &token, needs_code, None)
}

/// `POST /reset`: with `username`, sends a link (the same answer for every name); with
/// `token`, completes the reset.
pub async fn reset(
    auth: &Auth,
    pages: &Pages,
    _router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let body = &req.body[..];
    let lang = lang_of(pages, req, form_value(body, "lang"));
    let ctx = pages.context(req, lang);
    let title = lang.text("reset-title");
    let Some(token) = form_value(body, "token") else {
        if !super::login::form_token_ok(auth, pages, req) {
            return pages.error(StatusCode::FORBIDDEN, lang);
        }
        let name = form_value(body, "username").unwrap_or_default();
        if password::request_reset(auth, &ctx, &name).await.is_err() {
            return pages.fault(lang);
        }
        return message(
            pages,
            lang,
            StatusCode::OK,
            &title,
            &lang.text("reset-sent"),
            "/reset",
        );
    };
    let csrf = form_value(body, "csrf").unwrap_or_default();
    if !pages.csrf.verify(token.as_bytes(), &csrf) {
        return pages.error(StatusCode::FORBIDDEN, lang);
    }
    let field = |name| form_value(body, name).unwrap_or_default();
    let refused =
        match password::reset(auth, &ctx, &token, &field("new_password"), &field("code")).await {
            Ok(_) => {
                return message(
                    pages,
                    lang,
                    StatusCode::OK,
                    &title,
                    &lang.text("reset-done"),
                    "/reset",
                )
                .with_header("set-cookie", auth.jar(req.tls).clear_session())
            }
            Err(ResetRefused::Fault | ResetRefused::Busy) => return pages.fault(lang),
            Err(ResetRefused::BadLink) => {
                return message(
                    pages,
                    lang,
                    StatusCode::NOT_FOUND,
                    &title,
                    &lang.text("reset-bad-link"),
                    "/reset",
                )
            }
            Err(ResetRefused::CodeNeeded) => {
                Refusal::new(lang.text("password-code-needed"), StatusCode::UNAUTHORIZED)
            }
            Err(ResetRefused::Factor(f)) => factor_text(auth, lang, f),
            Err(ResetRefused::Weak(w)) => Refusal::new(weak_text(lang, w), StatusCode::BAD_REQUEST),
        };
    reset_form(pages, lang, &token, true, Some(&refused))
}
