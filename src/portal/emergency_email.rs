//! The page for changing the emergency contact email (`/emergency-email`): a new address, then
//! the code sent to it. Allowed only with a fresh proof (`reauth`); what the change does is
//! `flow::change`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::reauth::unless_allowed;
use super::{mask_email, see_other, PageContext, Pages, Refusal, Reply};
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
    let (who, lang) = match pages.signed_in_get(auth, req, PAGE).await {
        Ok(p) => (p.who, p.lang),
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
    let refused = match done {
        Ok(notice) => {
            let said = notice.map(|text| (false, text));
            return render(auth, pages, &who, lang, said, StatusCode::OK).await;
        }
        // A stale tab: the page shows where the change is.
        Err(Refused::NotBegun) => {
            return render(auth, pages, &who, lang, None, StatusCode::OK).await
        }
        Err(Refused::NotTwoFactor | Refused::NeedsProof | Refused::NoFactor) => {
            return unless_allowed(auth, pages, req, &who, PAGE, lang)
                .await
                .unwrap_or_else(|| pages.fault(lang))
        }
        Err(refused) => refused,
    };
    let Some(r) = refusal(refused, lang, auth.clock.now_ms()) else {
        return pages.fault(lang);
    };
    let said = Some((true, r.text.clone()));
    render(auth, pages, &who, lang, said, r.status)
        .await
        .refused(&r)
}

/// What the page says of a refused step (`None`: a fault); the phone page's too.
pub(crate) fn refusal(refused: Refused, lang: Lang, now_ms: u64) -> Option<Refusal> {
    let said = |text: String, status| Some(Refusal::new(text, status));
    match refused {
        Refused::Banned { until_ms } => Some(Refusal::limited(
            lang,
            lang.text("too-many-attempts"),
            until_ms,
            now_ms,
        )),
        Refused::SendLimit { until_ms } => Some(Refusal::limited(
            lang,
            lang.text("code-send-limit"),
            until_ms,
            now_ms,
        )),
        Refused::BadEmail => said(lang.text("email-invalid"), StatusCode::BAD_REQUEST),
        Refused::BadPhone => said(lang.text("phone-invalid"), StatusCode::BAD_REQUEST),
        Refused::Unchanged => said(lang.text("emergency-email-same"), StatusCode::CONFLICT),
        Refused::SendFailed => said(
            lang.text("code-send-failed"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Refused::Wrong => said(lang.text("code-wrong"), StatusCode::UNAUTHORIZED),
        Refused::Expired => said(
            lang.text("emergency-email-expired"),
            StatusCode::UNAUTHORIZED,
        ),
        _ => None,
    }
}
