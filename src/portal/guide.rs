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
use crate::access::AuthLevel;
use crate::auth::Auth;
use crate::config::TwoFactorConfig;
use crate::i18n::Lang;
use crate::routing::HostRouter;

/// Whether "later" is on offer, and on what terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Later {
    /// Before the mandatory date: not counted.
    Free,
    /// After it, within the grace: `left` skips remain after this one (`None`: unlimited until
    /// the deadline), and the deadline (ms) if there is one.
    Counted {
        left: Option<u32>,
        until_ms: Option<u64>,
    },
    /// No way past: set up now.
    No,
}

impl Later {
    pub fn decide(cfg: &TwoFactorConfig, now_ms: u64, skips_used: u32) -> Later {
        if cfg.required_from.is_some_and(|from| now_ms < from) {
            return Later::Free;
        }
        if cfg.grace_skips.is_none() && cfg.grace_until.is_none() {
            return Later::No;
        }
        let skips_ok = cfg.grace_skips.is_none_or(|n| skips_used < n);
        let deadline_ok = cfg.grace_until.is_none_or(|until| now_ms < until);
        if skips_ok && deadline_ok {
            Later::Counted {
                left: cfg.grace_skips.map(|n| n - skips_used - 1),
                until_ms: cfg.grace_until,
            }
        } else {
            Later::No
        }
    }

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

fn later_for(auth: &Auth, user: &str) -> Result<Later, crate::factor::FactorError> {
    Ok(Later::decide(
        &auth.two_factor,
        auth.clock.now_ms(),
        auth.factors.skips_used(user)?,
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
    let who = match pages.signed_in(auth, req, "/guide") {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if who.session.level == AuthLevel::TwoFactor || who.session.deferred {
        return Reply::redirect(&auth.return_to.resolve(Some(&rd), &req.origin, router));
    }
    if who.second_factor {
        return Reply::redirect(&pages.url_with_rd("/2fa", &rd));
    }
    let later = match later_for(auth, &who.user.name) {
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
    let csrf = auth.csrf.token(&who.key);
    pages.page(
        "guide.html",
        status,
        lang,
        PageContext {
            title: &lang.text("guide-title"),
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
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/guide") {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if who.session.level == AuthLevel::TwoFactor || who.second_factor {
        return pages.error(StatusCode::CONFLICT, lang);
    }
    let later = match later_for(auth, &who.user.name) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "guide: could not read the grace");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    if later == Later::No {
        tracing::info!(target: "stepgate::portal", user = %who.user.name, "guide: later refused, no grace left");
        let error = lang.text("guide-grace-over");
        return render(
            auth,
            pages,
            &who,
            lang,
            &rd,
            later,
            Some(&error),
            StatusCode::FORBIDDEN,
        );
    }
    if matches!(later, Later::Counted { .. }) {
        if let Err(e) = auth.factors.record_skip(&who.user.name) {
            tracing::error!(target: "stepgate::portal", error = %e, "guide: could not record the skip");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    }
    auth.assertions.forget_session(&who.key);
    match auth.sessions.defer_second_factor(&who.key) {
        Ok(Some((id, _))) => {
            tracing::info!(target: "stepgate::portal", user = %who.user.name, ?later, "two-step setup postponed for this session");
            let target = auth.return_to.resolve(Some(&rd), &req.origin, router);
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

    fn cfg(from: Option<u64>, skips: Option<u32>, until: Option<u64>) -> TwoFactorConfig {
        TwoFactorConfig {
            required_from: from,
            grace_skips: skips,
            grace_until: until,
            ..TwoFactorConfig::default()
        }
    }

    #[test]
    fn before_the_date_later_is_free() {
        let c = cfg(Some(10 * DAY), Some(0), None);
        assert_eq!(Later::decide(&c, 9 * DAY, 99), Later::Free);
        assert_eq!(
            Later::decide(&c, 10 * DAY, 0),
            Later::No,
            "from the date, 0 skips"
        );
    }

    #[test]
    fn skips_and_deadline_each_limit_and_both_must_hold() {
        let skips = cfg(Some(0), Some(2), None);
        assert_eq!(
            Later::decide(&skips, DAY, 0),
            Later::Counted {
                left: Some(1),
                until_ms: None
            }
        );
        assert_eq!(
            Later::decide(&skips, DAY, 1),
            Later::Counted {
                left: Some(0),
                until_ms: None
            }
        );
        assert_eq!(Later::decide(&skips, DAY, 2), Later::No);
        let deadline = cfg(None, None, Some(5 * DAY));
        assert_eq!(
            Later::decide(&deadline, 4 * DAY, 50),
            Later::Counted {
                left: None,
                until_ms: Some(5 * DAY)
            }
        );
        assert_eq!(Later::decide(&deadline, 5 * DAY, 0), Later::No);
        let both = cfg(None, Some(1), Some(5 * DAY));
        assert_eq!(
            Later::decide(&both, 6 * DAY, 0),
            Later::No,
            "deadline passed"
        );
        assert_eq!(Later::decide(&both, DAY, 1), Later::No, "skips used up");
        assert_eq!(
            Later::decide(&cfg(None, None, None), 0, 0),
            Later::No,
            "no grace configured"
        );
    }

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
