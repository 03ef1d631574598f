//! The pages for changing where codes and notices go: the emergency email (`/emergency-email`)
//! and the 2FA phone (`/phone`, which also registers a first one). One shape for both: a new
//! value, then the code sent to it. Allowed only with a fresh proof (`reauth`); what a change
//! does is `flow::change`'s.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::reauth::unless_allowed;
use super::{mask_email, mask_phone, see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::flow::change::{self, Refused};
use crate::i18n::Lang;

/// Which value the page changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    EmergencyEmail,
    Phone,
}

impl Which {
    fn page(self) -> &'static str {
        match self {
            Which::EmergencyEmail => "/emergency-email",
            Which::Phone => "/phone",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Which::EmergencyEmail => "emergency_email.html",
            Which::Phone => "phone.html",
        }
    }

    fn mask(self, value: &str) -> String {
        match self {
            Which::EmergencyEmail => mask_email(value),
            Which::Phone => mask_phone(value),
        }
    }

    /// The value on file and a new one waiting for its code.
    async fn state(
        self,
        auth: &Auth,
        who: &Identity,
    ) -> Result<(Option<String>, Option<String>), Refused> {
        match self {
            Which::EmergencyEmail => {
                let (on_file, waiting) = change::emergency_email(auth, who).await?;
                Ok((Some(on_file).filter(|f| !f.is_empty()), waiting))
            }
            Which::Phone => change::phone(auth, who).await,
        }
    }
}

/// A message shown on the page: `(is_error, text)`.
type Said = Option<(bool, String)>;

async fn render(
    auth: &Auth,
    pages: &Pages,
    (who, which): (&Identity, Which),
    lang: Lang,
    said: Said,
    status: StatusCode,
) -> Reply {
    let Ok((on_file, waiting)) = which.state(auth, who).await else {
        return pages.fault(lang);
    };
    let csrf = pages.csrf.token(&who.key);
    let title = match which {
        Which::EmergencyEmail => lang.text("emergency-email-title"),
        Which::Phone => lang.text("phone-title"),
    };
    let page = PageContext {
        title: &title,
        rd: "",
        csrf: &csrf,
        switch: Some(which.page()),
    };
    let (error, notice) = match said {
        Some((true, text)) => (Some(text), None),
        Some((false, text)) => (None, Some(text)),
        None => (None, None),
    };
    // A first phone: the users file's number is offered.
    let suggested = (which == Which::Phone && on_file.is_none())
        .then(|| who.user.phone.clone())
        .flatten();
    let ctx = context! {
        current => on_file.as_deref().map(|v| which.mask(v)),
        pending => waiting.as_deref().map(|v| which.mask(v)),
        suggested,
        error,
        notice,
    };
    pages.page(which.template(), status, lang, page, ctx)
}

/// `GET /emergency-email`, `GET /phone`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>, which: Which) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, which.page()).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    if let Some(r) = unless_allowed(auth, pages, req, &who, which.page(), lang).await {
        return r;
    }
    render(auth, pages, (&who, which), lang, None, StatusCode::OK).await
}

/// `POST /emergency-email` and `POST /phone`: `step` is `email`/`phone` (send a code to a new
/// value; needs a fresh proof), `code` (the code sent to it: the change) or `restart` (enter
/// another).
pub async fn submit(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>, which: Which) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, which.page()).await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let ctx = pages.context(req, lang);
    let field = |name| form_value(&req.body, name).unwrap_or_default();
    let done = match (field("step").as_str(), which) {
        ("email", Which::EmergencyEmail) => {
            change::send_emergency_email_code(auth, &ctx, &who, &field("email"))
                .await
                .map(|()| Some(lang.text("emergency-email-sent")))
        }
        ("phone", Which::Phone) => change::send_phone_code(auth, &ctx, &who, &field("phone"))
            .await
            .map(|()| Some(lang.text("phone-sent"))),
        ("code", _) => {
            let changed = match which {
                Which::EmergencyEmail => {
                    change::confirm_emergency_email(auth, &ctx, &who, &field("code")).await
                }
                Which::Phone => change::confirm_phone(auth, &ctx, &who, &field("code")).await,
            };
            match changed {
                Ok(()) => {
                    let done = which.page().trim_start_matches('/');
                    let prefix = &pages.config().prefix;
                    return see_other(&format!("{prefix}/account?done={done}"));
                }
                Err(e) => Err(e),
            }
        }
        ("restart", Which::EmergencyEmail) => change::restart_emergency_email(auth, &who)
            .await
            .map(|()| None),
        ("restart", Which::Phone) => change::restart_phone(auth, &who).await.map(|()| None),
        _ => Ok(None),
    };
    let refused = match done {
        Ok(notice) => {
            let said = notice.map(|text| (false, text));
            return render(auth, pages, (&who, which), lang, said, StatusCode::OK).await;
        }
        // A stale tab: the page shows where the change is.
        Err(Refused::NotBegun) => {
            return render(auth, pages, (&who, which), lang, None, StatusCode::OK).await
        }
        Err(Refused::NotTwoFactor | Refused::NeedsProof | Refused::NoFactor) => {
            return unless_allowed(auth, pages, req, &who, which.page(), lang)
                .await
                .unwrap_or_else(|| pages.fault(lang))
        }
        Err(refused) => refused,
    };
    let Some(r) = refusal(refused, which, lang, auth.clock.now_ms()) else {
        return pages.fault(lang);
    };
    let said = Some((true, r.text.clone()));
    render(auth, pages, (&who, which), lang, said, r.status)
        .await
        .refused(&r)
}

/// What the page says of a refused step (`None`: a fault).
fn refusal(refused: Refused, which: Which, lang: Lang, now_ms: u64) -> Option<Refusal> {
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
        Refused::Unchanged if which == Which::Phone => {
            said(lang.text("phone-same"), StatusCode::CONFLICT)
        }
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
