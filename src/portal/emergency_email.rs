//! The page for changing the emergency contact email (`/emergency-email`): a new address, then
//! the code sent to it. Allowed only with a fresh proof (`reauth`); what the change does is
//! `flow::change`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::reauth::unless_allowed;
use super::{mask_email, see_other, PageContext, Pages, Reply};
use crate::auth::{Auth, Identity};
use crate::flow::change::{self, Refused};
use crate::i18n::Lang;

const PAGE: &str = "/emergency-email";

/// A message shown on the page: `(is_error, text)`.
type Said = Option<(bool, String)>;

async fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    said: Said,
    status: StatusCode,
) -> Reply {
    let Ok((on_file, waiting)) = change::emergency_email(auth, who).await else {
        return pages.fault(lang);
    };
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("emergency-email-title"),
        rd: "",
        csrf: &csrf,
        switch: Some(PAGE),
    };
    let (error, notice) = match said {
        Some((true, text)) => (Some(text), None),
        Some((false, text)) => (None, Some(text)),
        None => (None, None),
    };
    let ctx = context! {
        current => mask_email(&on_file),
        pending => waiting.as_deref().map(mask_email),
        error,
        notice,
    };
    pages.page("emergency_email.html", status, lang, page, ctx)
}

/// `GET /emergency-email`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let who = match pages.signed_in(auth, req, PAGE).await {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if let Some(r) = unless_allowed(auth, pages, req, &who, PAGE, lang).await {
        return r;
    }
    render(auth, pages, &who, lang, None, StatusCode::OK).await
}

/// `POST /emergency-email`: `step` is `email` (send a code to a new address; needs a fresh
/// proof), `code` (the code from the new address) or `restart` (enter another address).
pub async fn submit(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, PAGE).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let ctx = pages.context(req, lang);
    let field = |name| form_value(&req.body, name).unwrap_or_default();
    let done = match field("step").as_str() {
        "email" => change::send_emergency_email_code(auth, &ctx, &who, &field("email"))
            .await
            .map(|()| Some(lang.text("emergency-email-sent"))),
        "code" => match change::confirm_emergency_email(auth, &ctx, &who, &field("code")).await {
            Ok(()) => {
                return see_other(&format!(
                    "{}/account?done=emergency-email",
                    pages.config().prefix
                ))
            }
            Err(e) => Err(e),
        },
        "restart" => change::restart_emergency_email(auth, &who)
            .await
            .map(|()| None),
        _ => Ok(None),
    };
    let (said, status) = match done {
        Ok(notice) => (notice.map(|text| (false, text)), StatusCode::OK),
        // A stale tab: the page shows where the change is.
        Err(Refused::NotBegun) => (None, StatusCode::OK),
        Err(Refused::NotTwoFactor | Refused::NeedsProof | Refused::NoFactor) => {
            return unless_allowed(auth, pages, req, &who, PAGE, lang)
                .await
                .unwrap_or_else(|| pages.fault(lang))
        }
        Err(refused) => match refusal(refused, lang) {
            Some((text, status)) => (Some((true, text)), status),
            None => return pages.fault(lang),
        },
    };
    render(auth, pages, &who, lang, said, status).await
}

/// The text and status for a refused step (`None`: a fault).
fn refusal(refused: Refused, lang: Lang) -> Option<(String, StatusCode)> {
    Some(match refused {
        Refused::BadEmail => (lang.text("email-invalid"), StatusCode::BAD_REQUEST),
        Refused::Unchanged => (lang.text("emergency-email-same"), StatusCode::CONFLICT),
        Refused::SendLimit => (lang.text("code-send-limit"), StatusCode::TOO_MANY_REQUESTS),
        Refused::SendFailed => (
            lang.text("code-send-failed"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Refused::Banned => (
            lang.text("too-many-attempts"),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Refused::Wrong => (lang.text("code-wrong"), StatusCode::UNAUTHORIZED),
        Refused::Expired => (
            lang.text("emergency-email-expired"),
            StatusCode::UNAUTHORIZED,
        ),
        _ => return None,
    })
}
