//! The page for registering or changing the 2FA phone (`/phone`): a number, then the code sent
//! to it by SMS. Allowed only with a fresh proof (`reauth`); what the change does is
//! `flow::change`'s. Its shape is the emergency-email page's, whose refusals it shares.

use http::StatusCode;
use minijinja::context;

use super::emergency_email::refusal;
use super::login::{form_value, PortalRequest};
use super::reauth::unless_allowed;
use super::{mask_phone, see_other, PageContext, Pages, Reply};
use crate::auth::{Auth, Identity};
use crate::flow::change::{self, Refused};
use crate::i18n::Lang;

const PAGE: &str = "/phone";

async fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    said: Option<(bool, String)>,
    status: StatusCode,
) -> Reply {
    let Ok((on_file, waiting)) = change::phone(auth, who).await else {
        return pages.fault(lang);
    };
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("phone-title"),
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
        current => on_file.as_deref().map(mask_phone),
        pending => waiting.as_deref().map(mask_phone),
        suggested => if on_file.is_none() { who.user.phone.clone() } else { None },
        error,
        notice,
    };
    pages.page("phone.html", status, lang, page, ctx)
}

/// `GET /phone`.
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

/// `POST /phone`: `step` is `phone` (send a code to a new number; needs a fresh proof), `code`
/// (the code from it) or `restart` (enter another number).
pub async fn submit(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, PAGE).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let ctx = pages.context(req, lang);
    let field = |name| form_value(&req.body, name).unwrap_or_default();
    let done = match field("step").as_str() {
        "phone" => change::send_phone_code(auth, &ctx, &who, &field("phone"))
            .await
            .map(|()| Some(lang.text("phone-sent"))),
        "code" => match change::confirm_phone(auth, &ctx, &who, &field("code")).await {
            Ok(()) => return see_other(&format!("{}/account?done=phone", pages.config().prefix)),
            Err(e) => Err(e),
        },
        "restart" => change::restart_phone(auth, &who).await.map(|()| None),
        _ => Ok(None),
    };
    let refused = match done {
        Ok(notice) => {
            let said = notice.map(|text| (false, text));
            return render(auth, pages, &who, lang, said, StatusCode::OK).await;
        }
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
    let r = if refused == Refused::Unchanged {
        super::Refusal::new(lang.text("phone-same"), StatusCode::CONFLICT)
    } else {
        let Some(r) = refusal(refused, lang, auth.clock.now_ms()) else {
            return pages.fault(lang);
        };
        r
    };
    let said = Some((true, r.text.clone()));
    render(auth, pages, &who, lang, said, r.status)
        .await
        .refused(&r)
}
