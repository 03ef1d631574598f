//! The setup page (`/setup`): the three steps of first-time setup on one page, at the step the
//! user is at. What each step does is `flow::setup`'s; this page reads the form, calls it, and
//! shows the setup where it is, with what happened.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::{mask_email, see_other, PageContext, Pages, Refusal, Reply};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::totp::{self, TotpSecret};
use crate::flow::setup::{self, Refused, Stage};
use crate::i18n::Lang;
use crate::routing::HostRouter;

/// What `qr.html` shows of a new secret: the QR code (SVG), the key as text and the
/// `otpauth://` link.
pub(crate) fn qr_context(auth: &Auth, user: &str, secret: &TotpSecret) -> minijinja::Value {
    let uri = totp::otpauth_uri(&auth.two_factor.issuer, user, secret);
    let qr = totp::qr_svg(&uri).unwrap_or_else(|err| {
        tracing::error!(target: "stepgate::portal", error = %err, "could not draw the QR code");
        String::new()
    });
    context! { qr_svg => qr, secret => secret.base32_grouped(), otpauth_uri => uri }
}

/// A message on the page: an error (`true`) or a notice.
type Said = Option<(bool, String)>;

/// The page at the setup's current step; a user who should not be here goes elsewhere.
async fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    rd: &str,
    said: Said,
    status: StatusCode,
) -> Reply {
    let stage = match setup::stage(auth, who).await {
        Ok(stage) => stage,
        Err(refused) => return elsewhere(pages, who, rd, lang, refused, false),
    };
    let mut ctx = context! { masked_email => who.user.email.as_deref().map(mask_email) };
    let name = match &stage {
        Stage::Prove { code_sent } => {
            ctx = context! { ..ctx, ..context! { code_sent } };
            "prove"
        }
        Stage::Contact { suggested } => {
            ctx = context! { ..ctx, ..context! { suggested_email => suggested } };
            "contact"
        }
        Stage::ContactCode { to } => {
            ctx = context! { ..ctx, ..context! { masked_contact => mask_email(to) } };
            "contact_code"
        }
        Stage::Method { suggested_phone } => {
            ctx = context! { ..ctx, ..context! { suggested_phone } };
            "method"
        }
        Stage::PhoneCode { to } => {
            ctx = context! { ..ctx, ..context! { masked_phone => super::mask_phone(to) } };
            "phone_code"
        }
        Stage::App { secret } => {
            ctx = context! { ..ctx, ..qr_context(auth, &who.user.name, &secret.totp()) };
            "totp"
        }
    };
    let (error, notice) = match said {
        Some((true, text)) => (Some(text), None),
        Some((false, text)) => (None, Some(text)),
        None => (None, None),
    };
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("setup-title"),
        rd,
        csrf: &csrf,
        switch: Some("/setup"),
    };
    let sms_offered = auth
        .two_factor
        .methods
        .contains(&crate::factor::FactorKind::Sms);
    let ctx = context! { ..ctx, ..context! { stage => name, error, notice, sms_offered } };
    pages.page("setup.html", status, lang, page, ctx)
}

/// Where a setup refused outright sends the browser (303 after a post): a user with a second
/// factor to the account page (two-factor session) or the challenge; too many setups or a fault
/// to the 503 page.
fn elsewhere(
    pages: &Pages,
    who: &Identity,
    rd: &str,
    lang: Lang,
    refused: Refused,
    post: bool,
) -> Reply {
    let go = |to: &str| {
        if post {
            see_other(to)
        } else {
            Reply::redirect(to)
        }
    };
    match refused {
        Refused::HasFactor if who.session.level() == AuthLevel::TwoFactor => {
            go(&format!("{}/account", pages.config().prefix))
        }
        Refused::HasFactor => go(&pages.url_with_rd("/2fa", rd)),
        _ => pages.fault(lang),
    }
}

/// `GET /setup?rd=`: the current step.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (lang, rd) = (
        lang_of(pages, req, None),
        req.param("rd").unwrap_or_default(),
    );
    match pages.signed_in(auth, req, "/setup").await {
        Ok(who) => render(auth, pages, &who, lang, &rd, None, StatusCode::OK).await,
        Err(reply) => reply,
    }
}

/// What the page says of a refused step.
fn refusal(refused: Refused, lang: Lang, now_ms: u64) -> Refusal {
    let said = |id: String, status| Refusal::new(id, status);
    match refused {
        Refused::Banned { until_ms } => {
            Refusal::limited(lang, lang.text("too-many-attempts"), until_ms, now_ms)
        }
        Refused::SendLimit { until_ms } => {
            Refusal::limited(lang, lang.text("code-send-limit"), until_ms, now_ms)
        }
        Refused::Wrong => said(lang.text("code-wrong"), StatusCode::UNAUTHORIZED),
        Refused::Expired => said(lang.text("setup-expired"), StatusCode::UNAUTHORIZED),
        Refused::NotYet => said(lang.text("setup-not-yet"), StatusCode::UNAUTHORIZED),
        Refused::SendFailed => said(
            lang.text("code-send-failed"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Refused::BadEmail => said(lang.text("email-invalid"), StatusCode::BAD_REQUEST),
        Refused::BadPhone => said(lang.text("phone-invalid"), StatusCode::BAD_REQUEST),
        Refused::NoEmail => said(lang.text("setup-no-email"), StatusCode::CONFLICT),
        Refused::HasFactor | Refused::Busy | Refused::Fault => {
            said(lang.text("setup-fault"), StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// `POST /setup`: one step, named by the hidden `step`. A step that does not match where the
/// setup is (a stale tab, a double submit) changes nothing: the page shows where it is.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/setup").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    let ctx = pages.context(req, lang);
    let field = |name| form_value(&req.body, name).unwrap_or_default();
    let done = match field("step").as_str() {
        "send" => setup::send_proof(auth, &ctx, &who)
            .await
            .map(|()| Some(lang.text("setup-sent"))),
        "prove" => setup::prove(auth, &ctx, &who, &field("code"))
            .await
            .map(|()| None),
        "contact" => setup::contact(auth, &ctx, &who, &field("email"))
            .await
            .map(|()| None),
        "contact_change" => setup::change_contact(auth, &who).await.map(|()| None),
        "contact_code" => setup::confirm_contact(auth, &ctx, &who, &field("code"))
            .await
            .map(|()| None),
        "method" => setup::choose(auth, &ctx, &who, &field("method"), &field("phone"))
            .await
            .map(|()| None),
        "method_change" => setup::change_method(auth, &who).await.map(|()| None),
        "activate" | "phone_code" => match if field("step") == "phone_code" {
            setup::activate_sms(auth, &ctx, &who, &field("code")).await
        } else {
            setup::activate(auth, &ctx, &who, &field("code")).await
        } {
            Ok(Some(done)) => {
                let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
                let intro = lang.text("setup-done");
                return pages
                    .recovery_codes(lang, &intro, &done.recovery_codes, &target)
                    .with_header(
                        "set-cookie",
                        auth.session_cookie(req.tls, &done.signed_in.id, &done.signed_in.session),
                    );
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(None),
    };
    match done {
        Ok(notice) => {
            let said = notice.map(|text| (false, text));
            render(auth, pages, &who, lang, &rd, said, StatusCode::OK).await
        }
        Err(refused @ (Refused::HasFactor | Refused::Busy | Refused::Fault)) => {
            elsewhere(pages, &who, &rd, lang, refused, true)
        }
        Err(refused) => {
            let r = refusal(refused, lang, auth.clock.now_ms());
            let said = Some((true, r.text.clone()));
            render(auth, pages, &who, lang, &rd, said, r.status)
                .await
                .refused(&r)
        }
    }
}
