//! Sending the code of a challenge by SMS or email (`POST /2fa/send`): where it goes, under the
//! send limits (`flow::sends`), in the user's language, through the notifier. Checking it is the
//! challenge's, through the factor seam like any other answer.

use std::time::Duration;

use super::{audit, sends, Context};
use crate::auth::{Auth, Identity};
use crate::factor::FactorKind;
use crate::notify::{compose, Channel, MessageKind};

const LOG: &str = "stepgate::codes";
/// The wait before a new code may be asked for ("resend"): a message can take a moment.
pub const RESEND_WAIT: Duration = Duration::from_secs(30);

/// A code that went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The phone number or address it went to (the page masks it).
    pub to: String,
    /// When it runs out.
    pub until_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SendRefused {
    /// Too many sends: blocked until then (seed 002). Nothing reached the provider.
    Blocked {
        until_ms: u64,
    },
    /// The last code went out less than [`RESEND_WAIT`] ago: a new one from then.
    TooSoon {
        until_ms: u64,
    },
    /// The user has no such method (no phone, no emergency email).
    NotEnrolled,
    /// The provider did not take the message; nothing changed, the user may try again.
    Failed,
    Fault,
}

/// Where a code of `kind` for `who` goes: the registered phone, or the emergency email.
pub async fn destination(
    auth: &Auth,
    who: &Identity,
    kind: FactorKind,
) -> Result<Option<String>, SendRefused> {
    let user = &who.user.name;
    let found = match kind {
        FactorKind::Sms => auth.factors.sms_phone(user).await,
        FactorKind::Email => auth.factors.emergency_email(user).await,
        _ => return Ok(None),
    };
    found.map_err(|e| {
        tracing::error!(target: LOG, %user, error = %e, "could not read where codes go");
        SendRefused::Fault
    })
}

/// When a new code of `kind` may be sent to `user` (now, or [`RESEND_WAIT`] after the pending
/// one was).
pub async fn resend_at(auth: &Auth, user: &str, kind: FactorKind) -> Result<u64, SendRefused> {
    let now = auth.clock.now_ms();
    let Some(factor) = auth.factors.sent(kind) else {
        return Ok(now);
    };
    let pending = factor.pending_until(user).await.map_err(|e| {
        tracing::error!(target: LOG, %user, error = %e, "could not read a pending code");
        SendRefused::Fault
    })?;
    let ttl = Duration::min(auth.two_factor.code_ttl, Duration::from_secs(600));
    Ok(pending.map_or(now, |until| {
        let sent = until.saturating_sub(ttl.as_millis() as u64);
        sent.saturating_add(RESEND_WAIT.as_millis() as u64)
    }))
}

/// Sends a fresh code of `kind` (replacing a pending one) to `who`'s phone or emergency email.
pub async fn send(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    kind: FactorKind,
) -> Result<Sent, SendRefused> {
    let user = &who.user.name;
    let (Some(factor), Some(to)) = (auth.factors.sent(kind), destination(auth, who, kind).await?)
    else {
        return Err(SendRefused::NotEnrolled);
    };
    let ready = resend_at(auth, user, kind).await?;
    if ready > auth.clock.now_ms() {
        return Err(SendRefused::TooSoon { until_ms: ready });
    }
    let taken = match sends::take(auth, user, &to, ctx.client).await {
        Ok(Ok(taken)) => taken,
        Ok(Err(until_ms)) => return Err(SendRefused::Blocked { until_ms }),
        Err(e) => {
            tracing::error!(target: LOG, %user, error = %e, "could not count a code send");
            return Err(SendRefused::Fault);
        }
    };
    let ttl = Duration::min(auth.two_factor.code_ttl, Duration::from_secs(600));
    let code = factor.issue(user, ttl).await.map_err(|e| {
        tracing::error!(target: LOG, %user, error = %e, "could not keep a code");
        SendRefused::Fault
    })?;
    let channel = if kind == FactorKind::Sms {
        Channel::Sms
    } else {
        Channel::Email
    };
    let msg = compose(
        &MessageKind::ChallengeCode { code: &code },
        ctx.lang.tag(),
        channel,
        &to,
        ctx.service,
        &who.user.display_name,
        None,
    );
    if let Err(e) = auth.notifiers.send(&msg).await {
        tracing::error!(target: LOG, %user, kind = kind.as_str(), error = %e, "could not send a code");
        let _ = factor.discard(user).await;
        sends::refund(auth, taken).await;
        return Err(SendRefused::Failed);
    }
    audit(auth, ctx, user, "code_sent", kind.as_str()).await;
    let until_ms = auth.clock.now_ms().saturating_add(ttl.as_millis() as u64);
    Ok(Sent { to, until_ms })
}
