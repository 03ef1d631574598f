//! "Approve a sign-in" (`/approvals`), on an approver device: the request waiting, if any (the
//! app, when, from which address and browser), the number field and the three decisions
//! (`decision` = `approve`, `deny`, `not_me`). The page follows new requests through
//! `GET /approvals/wait` (a long poll its script follows; without the script, a reload). After
//! "this wasn't me" it offers to lock the account (`POST /approvals/lock`). The rules are
//! `flow::approvals`'.

use http::StatusCode;
use minijinja::context;

use super::browsers::{browser_name, when};
use super::challenge::{LONG_POLL, LONG_POLL_STEP};
use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::devices::Request;
use crate::flow::approvals::{self, DecideRefused, Decision, NotApprover};
use crate::flow::{self, protect};
use crate::i18n::Lang;

/// What the page says instead of a request when this browser may not approve.
fn not_approver_text(lang: Lang, why: NotApprover) -> String {
    lang.text(match why {
        NotApprover::NotTwoFactor => "approvals-not-two-factor",
        NotApprover::NotRecent => "approvals-not-recent",
        NotApprover::Unknown => "approvals-not-approver",
        NotApprover::Changed => "approvals-changed",
        NotApprover::Fault => "approvals-not-approver",
    })
}

fn page(
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    ctx: minijinja::Value,
    error: Option<&Refusal>,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("approvals-title"),
        rd: "",
        csrf: &csrf,
        switch: Some("/approvals"),
    };
    pages.form_page("approvals.html", lang, page, ctx, error)
}

fn request_view(lang: Lang, r: &Request) -> minijinja::Value {
    context! {
        reference => &r.reference,
        app => if r.app.is_empty() { "-" } else { r.app.as_str() },
        when => when(r.created_ms),
        address => &r.client,
        browser => browser_name(lang, &r.browser),
        until => when(r.expires_ms),
    }
}

/// The page as it stands for `who`: the request waiting, or why there is none to decide.
async fn current(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    (who, lang): (&Identity, Lang),
    (done, error): (Option<String>, Option<&Refusal>),
) -> Reply {
    let ctx = pages.context(req, lang);
    let refused = match approvals::approver(auth, &ctx, who).await {
        Ok(_) => None,
        Err(NotApprover::Fault) => return pages.fault(lang),
        Err(why) => Some(not_approver_text(lang, why)),
    };
    let request = match refused {
        None => match approvals::pending(auth, who).await {
            Ok(r) => r,
            Err(flow::Fault) => return pages.fault(lang),
        },
        Some(_) => None,
    };
    let seen = request
        .as_ref()
        .map(|r| r.reference.clone())
        .unwrap_or_default();
    let ctx = context! {
        refused,
        done,
        request => request.as_ref().map(|r| request_view(lang, r)),
        seen,
        script => true,
        error => error.map(|e| e.text.clone()),
    };
    page(pages, who, lang, ctx, error)
}

/// `GET /approvals`.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_get(auth, req, "/approvals").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let done = match req.param("done").as_deref() {
        Some("approve") => Some(lang.text("approvals-approved")),
        Some("deny") => Some(lang.text("approvals-denied")),
        _ => None,
    };
    current(auth, pages, req, (&who, lang), (done, None)).await
}

/// `GET /approvals/wait?seen=REF`: JSON `{"reference": REF}` of the request waiting for this
/// approver (`null` for none), as soon as it differs from `seen`, or after [`LONG_POLL`].
pub async fn wait(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let who = match pages.signed_in_get(auth, req, "/approvals").await {
        Ok(p) => p.who,
        Err(reply) => return reply,
    };
    let seen = req.param("seen").unwrap_or_default();
    let started = std::time::Instant::now();
    loop {
        let reference = match approvals::pending(auth, &who).await {
            Ok(r) => r.map(|r| r.reference),
            Err(flow::Fault) => {
                return Reply::json(StatusCode::SERVICE_UNAVAILABLE, r#"{"reference":null}"#)
            }
        };
        if reference.as_deref().unwrap_or("") != seen || started.elapsed() >= LONG_POLL {
            let body = match reference {
                // A reference is 16 base64url characters: nothing to escape.
                Some(r) => format!(r#"{{"reference":"{r}"}}"#),
                None => r#"{"reference":null}"#.to_owned(),
            };
            return Reply::json(StatusCode::OK, body);
        }
        tokio::time::sleep(LONG_POLL_STEP).await;
    }
}

/// `POST /approvals` (`request`, `number`, `decision`).
pub async fn decide(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/approvals").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let body = &req.body[..];
    let Some(decision) = form_value(body, "decision")
        .as_deref()
        .and_then(Decision::parse)
    else {
        let r = Refusal::new(lang.text("approvals-choose"), StatusCode::BAD_REQUEST);
        return current(auth, pages, req, (&who, lang), (None, Some(&r))).await;
    };
    let reference = form_value(body, "request").unwrap_or_default();
    let number = form_value(body, "number").unwrap_or_default();
    let ctx = pages.context(req, lang);
    let refusal = match approvals::decide(auth, &ctx, &who, &reference, &number, decision).await {
        Ok(Decision::NotMe) => return not_me_page(pages, &who, lang),
        Ok(d) => {
            let done = if d == Decision::Approve {
                "approve"
            } else {
                "deny"
            };
            let prefix = &pages.config().prefix;
            return see_other(&format!("{prefix}/approvals?done={done}"));
        }
        Err(DecideRefused::Fault) => return pages.fault(lang),
        Err(DecideRefused::NotApprover(why)) => {
            Refusal::new(not_approver_text(lang, why), StatusCode::FORBIDDEN)
        }
        Err(DecideRefused::Gone) => Refusal::new(lang.text("approvals-gone"), StatusCode::CONFLICT),
        Err(DecideRefused::WrongNumber) => Refusal::new(
            lang.text("approvals-wrong-number"),
            StatusCode::UNAUTHORIZED,
        ),
    };
    current(auth, pages, req, (&who, lang), (None, Some(&refusal))).await
}

/// After "this wasn't me": what happened, and the offer to lock the account.
fn not_me_page(pages: &Pages, who: &Identity, lang: Lang) -> Reply {
    let ctx = context! { not_me => true, script => false };
    page(pages, who, lang, ctx, None)
}

/// `POST /approvals/lock`: locks the account from the approver device ("this wasn't me", then
/// "lock my account"); every session ends, this one included.
pub async fn lock(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/approvals").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    let ctx = pages.context(req, lang);
    match protect::lock(auth, &ctx, &who.user.name, "approval").await {
        Ok(()) => {
            let title = lang.text("lock-title");
            let text = lang.text("lock-done");
            super::protect::message(pages, lang, StatusCode::OK, &title, &text, "/approvals")
                .with_header("set-cookie", auth.jar(req.tls).clear_session())
        }
        Err(flow::Fault) => pages.fault(lang),
    }
}
