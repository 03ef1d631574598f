//! The two-step verification guide page (`/guide`): shown to a signed-in user without a second
//! factor who enters a route that needs one. It explains, leads to setup, and, while the
//! operator's grace allows, offers "later" (`flow::grace`: the terms and the new session).

use http::StatusCode;
use minijinja::context;

use super::login::PortalRequest;
use super::{PageContext, Pages, Reply};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::flow::grace::{self, Later, Refused};
use crate::i18n::Lang;
use crate::routing::HostRouter;

impl Later {
    /// The terms in words, for under the "later" button (`None`: no button).
    fn describe(self, lang: Lang) -> Option<String> {
        let date = |ms: u64| {
            time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
                .map(|t| t.date().to_string())
                .unwrap_or_default()
        };
        let text = match self {
            Later::No => return None,
            Later::Free => lang.text("guide-later-free"),
            // `left` counts the skips after this one, `times` this one too: languages say
            // either.
            Later::Counted { left, until_ms } => match (left, until_ms.map(date)) {
                (None, None) => lang.text("guide-later"),
                (Some(n), None) => lang.text_with(
                    "guide-later-left",
                    &[("left", n.into()), ("times", (n + 1).into())],
                ),
                (None, Some(until)) => {
                    lang.text_with("guide-later-until", &[("until", until.into())])
                }
                (Some(n), Some(until)) => lang.text_with(
                    "guide-later-left-until",
                    &[
                        ("left", n.into()),
                        ("times", (n + 1).into()),
                        ("until", until.into()),
                    ],
                ),
            },
        };
        Some(text)
    }
}

/// `GET /guide?rd=`.
pub async fn show(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd) = match pages.signed_in_get(auth, req, "/guide").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if who.session.level() == AuthLevel::TwoFactor || who.session.deferred {
        return Reply::redirect(&pages.return_to.resolve(Some(&rd), &req.origin, router));
    }
    if who.second_factor {
        return Reply::redirect(&pages.url_with_rd("/2fa", &rd));
    }
    match grace::offer(auth, &who.user.name).await {
        Ok(later) => render(auth, pages, &who, lang, &rd, later, None, StatusCode::OK),
        Err(_) => pages.fault(lang),
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    rd: &str,
    later: Later,
    error: Option<String>,
    status: StatusCode,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    let page = PageContext {
        title: &lang.text("guide-title"),
        rd,
        csrf: &csrf,
        switch: Some("/guide"),
    };
    let ctx = context! {
        user => &who.user.name,
        eul => crate::i18n::josa::particle(&pages.config().service_name, "을", "를"),
        required_from => &auth.two_factor.required_from_label,
        setup_url => pages.url_with_rd("/setup", rd),
        later => later.describe(lang),
        error,
    };
    pages.page("guide.html", status, lang, page, ctx)
}

/// `POST /guide`: "later". Within the grace, on to `rd` with a new session ID that two-factor
/// routes let through; otherwise the guide again, without the choice.
pub async fn later(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/guide").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    match grace::defer(auth, &pages.context(req, lang), &who).await {
        Ok(signed) => {
            let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
            pages.signed_in_to(auth, req, &signed, &target)
        }
        Err(Refused::NoGrace) => {
            let error = Some(lang.text("guide-grace-over"));
            render(
                auth,
                pages,
                &who,
                lang,
                &rd,
                Later::No,
                error,
                StatusCode::FORBIDDEN,
            )
        }
        Err(Refused::NotApplicable) => pages.error(StatusCode::CONFLICT, lang),
        Err(Refused::Fault) => pages.fault(lang),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn the_terms_are_described_in_both_languages() {
        let l = Later::Counted {
            left: Some(2),
            until_ms: Some(DAY),
        };
        assert_eq!(
            l.describe(Lang::En).unwrap(),
            "You can postpone this 2 more times after this one, until 1970-01-02."
        );
        assert!(l.describe(Lang::Ko).unwrap().contains("3번"));
        assert_eq!(Later::No.describe(Lang::En), None);
    }
}
