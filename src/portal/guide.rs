//! The two-step verification guide (`/guide`): shown to a signed-in user without a second factor
//! who enters a route that needs one. It explains, leads to setup, and, while the operator's grace
//! allows, offers "later": this one session continues at one factor (the app sees `1fa`).
//!
//! The grace (`[two_factor]`): before `required_from`, "later" is always offered and not
//! counted. From that date, it is offered only while the user has skips left (`grace_skips`)
//! and the deadline (`grace_until`) has not passed; when both are set, both must hold. With
//! neither set, there is no grace after the date. A deferred session stays deferred until it
//! ends (at most the session lifetime), even if the deadline passes meanwhile.

use http::StatusCode;
use minijinja::context;

use super::login::{lang_of, PortalRequest};
use super::{PageContext, Pages, Reply};
use crate::amr::AuthLevel;
use crate::auth::Auth;
use crate::flow::grace::Later;
use crate::i18n::Lang;
use crate::routing::HostRouter;

impl Later {
    fn describe(self, lang: Lang) -> Option<String> {
        let date = |ms: u64| {
            time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
                .map(|t| t.date().to_string())
                .unwrap_or_default()
        };
        let text = match (self, lang) {
            (Later::No, _) => return None,
            (Later::Free, Lang::En) => {
                "You can set it up later, but it will be required from the date above.".to_owned()
            }
            (Later::Free, Lang::Ko) => {
                "지금 설정하지 않아도 되지만, 위 날짜부터는 반드시 설정해야 합니다.".to_owned()
            }
            (Later::Counted { left, until_ms }, Lang::En) => {
                let mut s = String::from("You can postpone this");
                if let Some(n) = left {
                    s.push_str(&format!(
                        " {n} more time{} after this one",
                        if n == 1 { "" } else { "s" }
                    ));
                }
                if let Some(u) = until_ms {
                    s.push_str(&format!(", until {}", date(u)));
                }
                s.push('.');
                s
            }
            (Later::Counted { left, until_ms }, Lang::Ko) => {
                let mut s = String::new();
                if let Some(u) = until_ms {
                    s.push_str(&format!("{}까지 ", date(u)));
                }
                match left {
                    Some(n) => {
                        s.push_str(&format!("이번을 포함해 {}번 더 미룰 수 있습니다.", n + 1))
                    }
                    None => s.push_str("미룰 수 있습니다."),
                }
                s
            }
        };
        Some(text)
    }
}

fn title(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Two-step verification is required",
        Lang::Ko => "2단계 인증 필수 안내",
    }
}

async fn later_for(auth: &Auth, user: &str) -> Result<Later, crate::factor::FactorError> {
    Ok(Later::decide(
        &auth.two_factor,
        auth.clock.now_ms(),
        auth.factors.skips_used(user).await?,
    ))
}

/// `GET /guide?rd=`.
pub async fn show(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let lang = lang_of(pages, req, None);
    let rd = req.param("rd").unwrap_or_default();
    let who = match pages.signed_in(auth, req, "/guide").await {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if who.session.level() == AuthLevel::TwoFactor || who.session.deferred {
        return Reply::redirect(&pages.return_to.resolve(Some(&rd), &req.origin, router));
    }
    if who.second_factor {
        return Reply::redirect(&pages.url_with_rd("/2fa", &rd));
    }
    let later = match later_for(auth, &who.user.name).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "guide: could not read the grace");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    render(auth, pages, &who, lang, &rd, later, None, StatusCode::OK)
}

#[allow(clippy::too_many_arguments)]
fn render(
    auth: &Auth,
    pages: &Pages,
    who: &crate::auth::Identity,
    lang: Lang,
    rd: &str,
    later: Later,
    error: Option<&str>,
    status: StatusCode,
) -> Reply {
    let csrf = pages.csrf.token(&who.key);
    pages.page(
        "guide.html",
        status,
        lang,
        PageContext {
            title: title(lang),
            rd,
            csrf: &csrf,
            switch: Some("/guide"),
        },
        context! {
            user => &who.user.name,
            required_from => &auth.two_factor.required_from_label,
            setup_url => pages.url_with_rd("/setup", rd),
            later => later.describe(lang),
            error,
        },
    )
}

/// `POST /guide`: "later". Within the grace, a new session ID for the same sign-in that
/// two-factor routes let through; otherwise the guide again, without the choice.
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
    if who.session.level() == AuthLevel::TwoFactor || who.second_factor {
        return pages.error(StatusCode::CONFLICT, lang);
    }
    let later = match later_for(auth, &who.user.name).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "guide: could not read the grace");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    if later == Later::No {
        tracing::info!(target: "stepgate::portal", user = %who.user.name, "guide: later refused, no grace left");
        let error = match lang {
            Lang::En => "The grace period is over. Set up two-step verification to continue.",
            Lang::Ko => "유예 기간이 끝났습니다. 계속하려면 2단계 인증을 설정하세요.",
        };
        return render(
            auth,
            pages,
            &who,
            lang,
            &rd,
            later,
            Some(error),
            StatusCode::FORBIDDEN,
        );
    }
    if matches!(later, Later::Counted { .. }) {
        if let Err(e) = auth.factors.record_skip(&who.user.name).await {
            tracing::error!(target: "stepgate::portal", error = %e, "guide: could not record the skip");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    }
    match auth
        .sessions
        .defer_second_factor(&who.key, &who.session)
        .await
    {
        Ok(Some((id, _))) => {
            tracing::info!(target: "stepgate::portal", user = %who.user.name, ?later, "two-step setup postponed for this session");
            let target = pages.return_to.resolve(Some(&rd), &req.origin, router);
            let mut r = Reply::redirect(&target)
                .with_header("set-cookie", auth.jar(req.tls).set_session(&id));
            r.status = StatusCode::SEE_OTHER;
            r
        }
        Ok(None) => pages.error(StatusCode::CONFLICT, lang),
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "could not create a session");
            pages.error(StatusCode::SERVICE_UNAVAILABLE, lang)
        }
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
