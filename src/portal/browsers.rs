//! "Your sessions" (`/sessions`) and "Trusted browsers" (`/trusted-browsers`): what the user is
//! signed in on and which browsers skip the second factor, each with its removal forms. The
//! work is `flow::browsers`'.

use http::StatusCode;
use minijinja::context;

use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Reply};
use crate::audit::rfc3339;
use crate::auth::{Auth, Identity};
use crate::flow::browsers as flow;
use crate::i18n::Lang;

/// The browser as `user_agent::describe` named it, with its "unknown" in the page's language.
pub(crate) fn browser_name(lang: Lang, described: &str) -> String {
    if described.is_empty() || described == "unknown browser" {
        lang.text("unknown-browser")
    } else {
        described.to_owned()
    }
}

/// `2026-12-01 08:30 UTC` for lists.
pub(crate) fn when(ms: u64) -> String {
    let t = rfc3339(ms);
    match (t.get(..10), t.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => t,
    }
}

fn page(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    template: &str,
    title: &str,
    sub: &str,
    ctx: minijinja::Value,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title,
        rd: "",
        csrf: &csrf,
        switch: Some(sub),
    };
    pages.page(template, StatusCode::OK, lang, page, ctx)
}

/// `GET /sessions`.
pub async fn sessions(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/sessions").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let Ok(list) = flow::sessions(auth, &who).await else {
        return pages.fault(lang);
    };
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|v| {
            context! {
                handle => &v.handle,
                this => v.this,
                browser => browser_name(lang, &v.record.agent),
                address => &v.record.client,
                started => when(v.record.created_ms),
                last_seen => when(v.record.last_seen_ms),
                level => v.level,
                saved => v.record.persistent,
            }
        })
        .collect();
    let notice = match req.param("done").as_deref() {
        Some("one") => Some(lang.text("sessions-ended-one")),
        Some("others") => Some(lang.text("sessions-ended-others")),
        _ => None,
    };
    let title = lang.text("sessions-title");
    let others = list.iter().any(|v| !v.this);
    page(
        pages,
        &who,
        lang,
        "sessions.html",
        &title,
        "/sessions",
        context! { rows, notice, others },
    )
}

/// `POST /sessions/end` (`session` = a handle) and `POST /sessions/end-others`.
pub async fn end(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let post = match pages.signed_in_post(auth, req, req.sub).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = pages.context(req, post.lang);
    let done = if req.sub == "/sessions/end-others" {
        flow::end_others(auth, &ctx, &post.who)
            .await
            .map(|_| "others")
    } else {
        let handle = form_value(&req.body, "session").unwrap_or_default();
        flow::end_session(auth, &ctx, &post.who, &handle)
            .await
            .map(|_| "one")
    };
    match done {
        Ok(done) => {
            let prefix = &pages.config().prefix;
            see_other(&format!("{prefix}/sessions?done={done}"))
        }
        Err(_) => pages.fault(post.lang),
    }
}

/// `GET /trusted-browsers`.
pub async fn trusted(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/trusted-browsers").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let Ok(list) = flow::trusted(auth, &who).await else {
        return pages.fault(lang);
    };
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|t| {
            context! {
                id => &t.id,
                browser => browser_name(lang, &t.browser),
                address => &t.address,
                first_used => when(t.first_used_ms),
                last_used => when(t.last_used_ms),
                expires => when(t.expires_ms),
            }
        })
        .collect();
    let notice = match req.param("done").as_deref() {
        Some("one") => Some(lang.text("trusted-removed-one")),
        Some("all") => Some(lang.text("trusted-removed-all")),
        _ => None,
    };
    let title = lang.text("trusted-title");
    let offered = auth.two_factor.trusted_browser_lifetime.is_some();
    page(
        pages,
        &who,
        lang,
        "trusted.html",
        &title,
        "/trusted-browsers",
        context! { rows, notice, offered },
    )
}

/// `POST /trusted-browsers/remove` (`browser` = an ID) and `POST /trusted-browsers/remove-all`.
pub async fn remove(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let post = match pages.signed_in_post(auth, req, req.sub).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = pages.context(req, post.lang);
    let done = if req.sub == "/trusted-browsers/remove-all" {
        flow::forget_all_trusted(auth, &ctx, &post.who)
            .await
            .map(|_| "all")
    } else {
        let id = form_value(&req.body, "browser").unwrap_or_default();
        flow::forget_trusted(auth, &ctx, &post.who, &id)
            .await
            .map(|_| "one")
    };
    match done {
        Ok(done) => {
            let prefix = &pages.config().prefix;
            see_other(&format!("{prefix}/trusted-browsers?done={done}"))
        }
        Err(_) => pages.fault(post.lang),
    }
}
