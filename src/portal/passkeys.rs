//! Passkeys in the portal: the list page (`/passkeys`: name, added, last used; rename and
//! remove forms; "add a passkey"), and the ceremonies' endpoints the same-origin script
//! (`/assets/passkeys.js`) runs. Every post carries the session-bound CSRF token in its form
//! body. A ceremony begins with the page that offers it (`/passkeys` with a fresh proof, the
//! challenge with `method=passkey`): its options (JSON) are in the form's `data-options`,
//! because the pages' CSP (`default-src 'none'`, no `connect-src`) lets the script fetch
//! nothing. The script puts the authenticator's answer into the form (`credential`) and submits
//! it, so success and failure are ordinary form answers (a redirect, or the page with its error
//! and a new ceremony).
//!
//! - `POST /passkeys/add` (`name`, `credential`): add one.
//! - `POST /passkeys/rename` (`id`, `name`), `POST /passkeys/remove` (`id`).
//! - `POST /passkeys/verify` (`credential`, `rd`, `remember`): the second factor with a
//!   passkey, from the challenge page (`/2fa?method=passkey`).
//! - `POST /passkeys/add/begin`, `POST /passkeys/verify/begin` (CSRF token only): a new
//!   ceremony's options as JSON, for clients other than the pages (the tests' authenticator).
//!
//! Without JavaScript the page lists and names passkeys, and the challenge offers the user's
//! other methods.

use http::StatusCode;
use minijinja::context;

use super::browsers::when;
use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::factor::passkey::NAME_MAX;
use crate::flow::passkeys::{self as flow, Refused};
use crate::flow::{self as signin, FactorRefused, SignInRefused};
use crate::i18n::Lang;
use crate::routing::HostRouter;

/// The text of a refusal on the list page, and its status.
fn refusal(lang: Lang, why: Refused) -> Refusal {
    let (id, status) = match why {
        Refused::Expired => ("passkey-expired", StatusCode::BAD_REQUEST),
        Refused::Rejected => ("passkey-rejected", StatusCode::BAD_REQUEST),
        Refused::Duplicate => ("passkey-duplicate", StatusCode::CONFLICT),
        Refused::TooMany => ("passkey-too-many", StatusCode::CONFLICT),
        Refused::NotFound => ("passkey-not-found", StatusCode::NOT_FOUND),
        Refused::BadName => ("passkey-bad-name", StatusCode::BAD_REQUEST),
        Refused::LastMethod => ("passkey-last-method", StatusCode::CONFLICT),
        Refused::NeedsProof => ("passkey-needs-proof", StatusCode::FORBIDDEN),
        Refused::NotTwoFactor | Refused::NoFactor => ("passkey-not-allowed", StatusCode::FORBIDDEN),
        Refused::Disabled => ("error-404", StatusCode::NOT_FOUND),
        Refused::Fault => ("error-503", StatusCode::SERVICE_UNAVAILABLE),
    };
    Refusal::new(lang.text(id), status)
}

/// The list page, with `message` (an error, or a notice).
async fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    notice: Option<String>,
    error: Option<&Refusal>,
) -> Reply {
    let list = match flow::list(auth, who).await {
        Ok(l) => l,
        Err(Refused::Disabled) => return pages.error(StatusCode::NOT_FOUND, lang),
        Err(_) => return pages.fault(lang),
    };
    let fresh = who.session.has_fresh_proof(auth.clock.now_ms());
    // The ceremony begins with the page: its options go into the page, since the page's CSP
    // lets the script connect nowhere (`/passkeys/add/begin` gives them to other clients).
    let options = match fresh {
        true => match flow::begin_registration(auth, who).await {
            Ok(o) => Some(o),
            Err(Refused::TooMany) => None,
            Err(_) => return pages.fault(lang),
        },
        false => None,
    };
    let rows: Vec<minijinja::Value> = list
        .iter()
        .enumerate()
        .map(|(i, p)| {
            context! {
                n => i,
                id => &p.id,
                name => &p.name,
                created => when(p.created_ms),
                last_used => p.last_used_ms.map(when),
            }
        })
        .collect();
    let csrf = pages.csrf.token(&who.key);
    let title = lang.text("passkey-title");
    let page = PageContext {
        title: &title,
        rd: "",
        csrf: &csrf,
        switch: Some("/passkeys"),
    };
    let ctx = context! {
        rows,
        fresh,
        notice,
        error => error.map(|e| e.text.clone()),
        name_max => NAME_MAX,
        options,
        suggested => lang.text_with("passkey-default-name", &[("n", (list.len() + 1).into())]),
        passkey_script => true,
    };
    pages.form_page("passkeys.html", lang, page, ctx, error)
}

/// `GET /passkeys`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let p = match pages.signed_in_get(auth, req, "/passkeys").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !auth.factors.passkeys().enabled() {
        return pages.error(StatusCode::NOT_FOUND, p.lang);
    }
    if p.who.session.level() != crate::amr::AuthLevel::TwoFactor {
        let back = format!("{}{}/passkeys", req.origin, pages.config().prefix);
        return Reply::redirect(&pages.url_with_rd("/2fa", &back));
    }
    let notice = match req.param("done").as_deref() {
        Some("added") => Some(p.lang.text("passkey-added")),
        Some("renamed") => Some(p.lang.text("passkey-renamed")),
        Some("removed") => Some(p.lang.text("passkey-removed")),
        _ => None,
    };
    render(auth, pages, &p.who, p.lang, notice, None).await
}

/// A JSON answer of a ceremony's beginning: the options, or `{"error": text}`.
fn json_error(status: StatusCode, text: &str) -> Reply {
    let body = serde_json::json!({ "error": text }).to_string();
    Reply::json(status, body)
}

/// `POST /passkeys/add/begin`: the options for `navigator.credentials.create`.
pub async fn add_begin(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let p = match pages.signed_in_post(auth, req, "/passkeys").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match flow::begin_registration(auth, &p.who).await {
        Ok(options) => Reply::json(StatusCode::OK, options),
        Err(why) => {
            let r = refusal(p.lang, why);
            json_error(r.status, &r.text)
        }
    }
}

/// `POST /passkeys/add`, `/passkeys/rename`, `/passkeys/remove`.
pub async fn change(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let p = match pages.signed_in_post(auth, req, "/passkeys").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = pages.context(req, p.lang);
    let field = |name: &str| form_value(&req.body, name).unwrap_or_default();
    let done = match req.sub {
        "/passkeys/add" => {
            flow::finish_registration(auth, &ctx, &p.who, &field("name"), &field("credential"))
                .await
                .map(|()| "added")
        }
        "/passkeys/rename" => flow::rename(auth, &ctx, &p.who, &field("id"), &field("name"))
            .await
            .map(|()| "renamed"),
        _ => flow::remove(auth, &ctx, &p.who, &field("id"))
            .await
            .map(|()| "removed"),
    };
    match done {
        Ok(done) => see_other(&format!("{}/passkeys?done={done}", pages.config().prefix)),
        Err(Refused::Fault) => pages.fault(p.lang),
        Err(Refused::Disabled) => pages.error(StatusCode::NOT_FOUND, p.lang),
        // No list to show a one-factor session.
        Err(Refused::NotTwoFactor) => pages.error(StatusCode::FORBIDDEN, p.lang),
        Err(why) => {
            let r = refusal(p.lang, why);
            render(auth, pages, &p.who, p.lang, None, Some(&r)).await
        }
    }
}

/// `POST /passkeys/verify/begin`: the options for `navigator.credentials.get`.
pub async fn verify_begin(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let p = match pages.signed_in_post(auth, req, "/2fa").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = pages.context(req, p.lang);
    match flow::begin_verification(auth, &ctx, &p.who).await {
        Ok(options) => Reply::json(StatusCode::OK, options),
        Err(why) => {
            let r = verify_refusal(auth, p.lang, why);
            json_error(r.status, &r.text).refused(&r)
        }
    }
}

fn verify_refusal(auth: &Auth, lang: Lang, why: FactorRefused) -> Refusal {
    match why {
        FactorRefused::Banned { until_ms } => {
            let now = auth.clock.now_ms();
            Refusal::limited(lang, lang.text("challenge-banned"), until_ms, now)
        }
        FactorRefused::Expired => {
            Refusal::new(lang.text("passkey-expired"), StatusCode::UNAUTHORIZED)
        }
        // Pending and denied belong to approval, never to a passkey ceremony.
        FactorRefused::Wrong
        | FactorRefused::Replayed
        | FactorRefused::Pending
        | FactorRefused::Denied => {
            Refusal::new(lang.text("passkey-not-verified"), StatusCode::UNAUTHORIZED)
        }
        FactorRefused::NotEnrolled => {
            Refusal::new(lang.text("passkey-none"), StatusCode::BAD_REQUEST)
        }
        FactorRefused::Fault => {
            Refusal::new(lang.text("error-503"), StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// `POST /passkeys/verify`: the second factor with a passkey; on to `rd` with a new session,
/// or back to the challenge with what went wrong.
pub async fn verify(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let p = match pages.signed_in_post(auth, req, "/2fa").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = pages.context(req, p.lang);
    let response = form_value(&req.body, "credential").unwrap_or_default();
    let remember = form_value(&req.body, "remember").is_some_and(|v| !v.is_empty());
    match flow::pass(auth, &ctx, &p.who, &response).await {
        Ok(signed) => {
            let target = pages.return_to.resolve(Some(&p.rd), &req.origin, router);
            let mut reply = pages.signed_in_to(auth, req, &signed, &target);
            if remember {
                if let Ok(Some((token, max_age))) =
                    signin::browsers::trust_this_browser(auth, &ctx, &p.who.user.name).await
                {
                    let cookie =
                        Pages::lasting_cookie(req, crate::browsers::TRUST_COOKIE, &token, max_age);
                    reply = reply.with_header("set-cookie", cookie);
                }
            }
            reply
        }
        Err(FactorRefused::Fault) => pages.fault(p.lang),
        Err(why) => {
            let r = verify_refusal(auth, p.lang, why);
            super::challenge::refused(auth, pages, router, req, &p.who, (p.lang, &p.rd), &r).await
        }
    }
}

/// `POST /passkeys/sign-in` (`passkeys.passwordless`): a passkey in place of the password,
/// from the sign-in page. The form's CSRF token (bound to the browser's form cookie) names the
/// ceremony. On to `rd` with a new session at `2fa` (`amr` `hwk`), or the sign-in page again
/// with the one generic failure.
pub async fn sign_in(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let body = &req.body[..];
    let lang = super::login::lang_of(pages, req, form_value(body, "lang"));
    if !auth.factors.passkeys().passwordless() {
        return pages.error(StatusCode::NOT_FOUND, lang);
    }
    let rd = form_value(body, "rd").unwrap_or_default();
    if !super::login::form_token_ok(auth, pages, req) {
        tracing::warn!(target: "stepgate::portal", client = %req.client, "passkey sign-in refused: missing or invalid CSRF token");
        return pages.error(StatusCode::FORBIDDEN, lang);
    }
    let token = form_value(body, "csrf").unwrap_or_default();
    let response = form_value(body, "credential").unwrap_or_default();
    let Ok(previous) = auth.identify(req.headers, req.tls).await else {
        return pages.fault(lang);
    };
    let previous = previous.map(|who| who.key);
    let ctx = pages.context(req, lang);
    let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
    let app = url::Url::parse(&target)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| req.origin.clone());
    match flow::sign_in(auth, &ctx, &token, &response, &app, previous.as_ref()).await {
        Ok(done) => {
            let mut reply = pages.signed_in_to(auth, req, &done.signed, &target);
            if let Some(device) = &done.new_device {
                let cookie = Pages::lasting_cookie(
                    req,
                    crate::browsers::DEVICE_COOKIE,
                    device,
                    crate::browsers::DEVICE_COOKIE_SECS,
                );
                reply = reply.with_header("set-cookie", cookie);
            }
            reply
        }
        Err(SignInRefused::Failed) => {
            super::login::form(
                auth,
                pages,
                req,
                lang,
                &rd,
                "",
                true,
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(SignInRefused::Busy | SignInRefused::Fault) => pages.fault(lang),
    }
}
