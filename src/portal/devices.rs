//! "Devices" (`/devices`), the seed's device connection management: this browser (an approver
//! device or not, or one whose identity changed and must be verified again), "use this browser
//! to approve sign-ins" (`POST /devices/add`, behind a fresh proof), "sign in on another device"
//! (`POST /devices/code`: a short security code shown here, typed on the other device), the
//! approver devices with their removal forms (`POST /devices/remove`), the passkeys (managed on
//! `/passkeys`) and the trusted browsers. The rules are `flow::approvals`'.

use http::StatusCode;
use minijinja::context;

use super::browsers::{browser_name, when};
use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::browsers::{DEVICE_COOKIE, DEVICE_COOKIE_SECS};
use crate::flow::approvals::{self, AddRefused, CodeRefused, NotApprover};
use crate::flow::{self, browsers as trusted};
use crate::i18n::Lang;

/// What the page shows besides the lists: a notice, a security code, or a refusal.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    code: Option<(String, u64)>,
    error: Option<Refusal>,
}

async fn render(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    (who, lang): (&Identity, Lang),
    shown: Shown,
) -> Reply {
    let ctx = pages.context(req, lang);
    let this = approvals::approver(auth, &ctx, who).await;
    let Ok(list) = crate::devices::approvers(&auth.store, &who.user.name).await else {
        return pages.fault(lang);
    };
    let Ok(browsers) = trusted::trusted(auth, who).await else {
        return pages.fault(lang);
    };
    // Passkeys, when the operator offers them (listed here, managed on their own page).
    let passkeys_on = auth.factors.passkeys().enabled();
    let passkeys: Vec<minijinja::Value> = if passkeys_on {
        let Ok(list) = auth.factors.passkeys().list(&who.user.name).await else {
            return pages.fault(lang);
        };
        list.iter()
            .map(|p| {
                context! {
                    name => &p.name,
                    created => when(p.created_ms),
                    last_used => p.last_used_ms.map(when),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let this_id = this.as_ref().ok().cloned().unwrap_or_default();
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|d| {
            context! {
                id => &d.id,
                this => d.id == this_id,
                browser => browser_name(lang, &d.browser),
                address => &d.address,
                added => when(d.added_ms),
                last_used => when(d.last_used_ms),
            }
        })
        .collect();
    let status = match &this {
        Ok(_) => "approver",
        Err(NotApprover::Changed) => "changed",
        Err(NotApprover::NotRecent) => "not_recent",
        Err(NotApprover::NotTwoFactor) => "not_two_factor",
        Err(NotApprover::Unknown) => "unknown",
        Err(NotApprover::Fault) => return pages.fault(lang),
    };
    let csrf = pages.csrf.token(&who.key);
    let title = lang.text("devices-title");
    let page = PageContext {
        title: &title,
        rd: "",
        csrf: &csrf,
        switch: Some("/devices"),
    };
    let ctx = context! {
        status,
        rows,
        trusted => browsers.len(),
        passkeys_on,
        passkeys,
        notice => shown.notice,
        code => shown.code.as_ref().map(|(c, _)| c),
        code_until => shown.code.as_ref().map(|(_, until)| when(*until)),
        error => shown.error.as_ref().map(|e| e.text.clone()),
    };
    pages.form_page("devices.html", lang, page, ctx, shown.error.as_ref())
}

/// `GET /devices`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/devices").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let notice = match req.param("done").as_deref() {
        Some("added") => Some(lang.text("devices-added")),
        Some("removed") => Some(lang.text("devices-removed")),
        _ => None,
    };
    let shown = Shown {
        notice,
        ..Shown::default()
    };
    render(auth, pages, req, (&who, lang), shown).await
}

/// `POST /devices/add`: this browser becomes an approver device (again), behind a fresh proof
/// (the confirmation page comes first when the proof is not fresh).
pub async fn add(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/devices").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    if let Some(r) = super::reauth::unless_allowed(auth, pages, req, &who, "/devices", lang).await {
        return r;
    }
    let ctx = pages.context(req, lang);
    let prefix = &pages.config().prefix;
    match approvals::add_this_device(auth, &ctx, &who).await {
        Ok(token) => {
            let reply = see_other(&format!("{prefix}/devices?done=added"));
            match token {
                Some(t) => reply.with_header(
                    "set-cookie",
                    Pages::lasting_cookie(req, DEVICE_COOKIE, &t, DEVICE_COOKIE_SECS),
                ),
                None => reply,
            }
        }
        Err(AddRefused::NotTwoFactor | AddRefused::NeedsProof) => {
            see_other(&format!("{prefix}/devices"))
        }
        Err(AddRefused::Fault) => pages.fault(lang),
    }
}

/// `POST /devices/remove` (`device` = an ID).
pub async fn remove(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/devices").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let id = form_value(&req.body, "device").unwrap_or_default();
    let ctx = pages.context(req, lang);
    match approvals::remove_device(auth, &ctx, &who, &id).await {
        Ok(_) => {
            let prefix = &pages.config().prefix;
            see_other(&format!("{prefix}/devices?done=removed"))
        }
        Err(flow::Fault) => pages.fault(lang),
    }
}

/// `POST /devices/code`: a security code for signing in on another device, shown on this page.
pub async fn code(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/devices").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let ctx = pages.context(req, lang);
    let shown = match approvals::device_code(auth, &ctx, &who).await {
        Ok(code) => Shown {
            code: Some(code),
            ..Shown::default()
        },
        Err(CodeRefused::Fault) => return pages.fault(lang),
        Err(CodeRefused::Limited { until_ms }) => Shown {
            error: Some(Refusal::limited(
                lang,
                lang.text("challenge-send-blocked"),
                until_ms,
                auth.clock.now_ms(),
            )),
            ..Shown::default()
        },
        Err(CodeRefused::NotApprover(_)) => Shown {
            error: Some(Refusal::new(
                lang.text("devices-code-not-approver"),
                StatusCode::FORBIDDEN,
            )),
            ..Shown::default()
        },
    };
    render(auth, pages, req, (&who, lang), shown).await
}
