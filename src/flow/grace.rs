//! The operator's grace for two-step verification (`[two_factor]`), and "later" on the guide.
//!
//! Before `required_from`, "later" is always offered and not counted. From that date, it is
//! offered only while the user has skips left (`grace_skips`) and the deadline (`grace_until`)
//! has not passed; when both are set, both must hold. With neither set, there is no grace after
//! the date. "Later" gives a new session ID for the same sign-in that two-factor routes let
//! through at `1fa`; it lasts for that session only (at most its lifetime, even if the deadline
//! passes meanwhile).

use super::{audit, Context, Fault, SignedIn};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::TwoFactorConfig;

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
}

/// What "later" is on offer for `user` now.
pub async fn offer(auth: &Auth, user: &str) -> Result<Later, Fault> {
    let used = auth
        .factors
        .skips_used(user)
        .await
        .map_err(|e| super::fault("could not read the grace")(&e))?;
    Ok(Later::decide(&auth.two_factor, auth.clock.now_ms(), used))
}

/// Why "later" was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Refused {
    /// A two-factor session, or a user who has a factor: there is nothing to postpone.
    NotApplicable,
    /// The grace is over.
    NoGrace,
    Fault,
}

/// "Later": within the grace, a new session ID for the same sign-in that two-factor routes let
/// through (the skip is counted when the grace counts it).
pub async fn defer(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<SignedIn, Refused> {
    if who.session.level() == AuthLevel::TwoFactor || who.second_factor {
        return Err(Refused::NotApplicable);
    }
    let user = &who.user.name;
    let later = offer(auth, user).await.map_err(|Fault| Refused::Fault)?;
    if later == Later::No {
        tracing::info!(target: "stepgate::flow", %user, "later refused: no grace left");
        return Err(Refused::NoGrace);
    }
    if matches!(later, Later::Counted { .. }) {
        if let Err(e) = auth.factors.record_skip(user).await {
            return Err(super::fault("could not record the skip")(&e))
                .map_err(|Fault| Refused::Fault);
        }
    }
    match auth
        .sessions
        .defer_second_factor(&who.key, &who.session)
        .await
    {
        Ok(Some((id, session))) => {
            tracing::info!(target: "stepgate::flow", %user, ?later, "two-step setup postponed for this session");
            audit(auth, ctx, user, "later", "").await;
            Ok(SignedIn { id, session })
        }
        Ok(None) => Err(Refused::NotApplicable),
        Err(e) => {
            Err(super::fault("could not create a session")(&e)).map_err(|Fault| Refused::Fault)
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
}
