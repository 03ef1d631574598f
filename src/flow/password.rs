//! Password change and reset. The users file declares users and their first password; a
//! password a user sets lives in the store (`AccountRecord::password_hash`), kept with a
//! fingerprint of the file hash it replaced, so that an operator who writes a new hash into the
//! file takes precedence again (see `flow::sign_in`).
//!
//! **Policy** (NIST SP 800-63B §3.1.1.2, ASVS 5.0 6.2): at least [`MIN_LENGTH`] characters, at
//! most the gateway's limit, no composition rules, and not guessable: zxcvbn's estimate (its
//! lists of common and breached passwords, words, names, keyboard patterns and dates, plus the
//! user's own name and email) must need more than 10^6 guesses (score 2 or more).
//!
//! **Change** needs the current password and, when the user has a second factor, a fresh proof
//! (a code now, or one in this session in the last five minutes); it ends the user's other
//! sessions and trusted browsers. **Reset** starts from a link mailed to the account email
//! (the same answer whether or not the user exists; limited per user and per address), works
//! once within [`RESET_TTL`], asks for the second factor when the user has one (a reset never
//! drops two-step verification), then sets the password, unlocks a locked account, ends every
//! session and forgets trusted browsers. Both send a notice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{audit, check_factor, fault, finish, notice, Context, FactorRefused, Fault, SignedIn};
use crate::auth::{Auth, Identity};
use crate::factor::FactorKind;
use crate::notify::MessageKind;
use crate::regulation::Verdict as Limit;
use crate::store::Write;
use crate::users::{normalize_username, User, VerifyError, MAX_PASSWORD_BYTES};

const LOG: &str = "stepgate::password";
pub const MIN_LENGTH: usize = 8;
/// How long a reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(30 * 60);
/// Reset links one user may be sent per hour.
const RESETS_PER_HOUR: u32 = 3;

/// Why a new password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weak {
    TooShort,
    TooLong,
    /// Common, breached, or easy to guess from patterns or the user's own name.
    Guessable,
}

/// Checks a new password against the policy (see the module docs).
pub fn check_policy(user: &User, password: &str) -> Result<(), Weak> {
    if password.chars().count() < MIN_LENGTH {
        return Err(Weak::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Weak::TooLong);
    }
    let mut inputs: Vec<&str> = vec![&user.name, &user.display_name];
    if let Some(e) = &user.email {
        inputs.push(e);
        inputs.extend(e.split('@').next());
    }
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    if (entropy.score() as u8) < 2 {
        return Err(Weak::Guessable);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ChangeRefused {
    /// The current password is wrong (counted by the failure limits).
    WrongPassword,
    /// The account's limits are banning tries until then.
    Banned {
        until_ms: u64,
    },
    /// A second-factor code is needed (none given, or no fresh proof).
    CodeNeeded,
    Factor(FactorRefused),
    Weak(Weak),
    Busy,
    Fault,
}

impl From<Fault> for ChangeRefused {
    fn from(_: Fault) -> Self {
        ChangeRefused::Fault
    }
}

/// Whether a change by `who` must include a second-factor code now.
pub async fn change_needs_code(auth: &Auth, who: &Identity) -> Result<bool, Fault> {
    let enrolled = auth
        .factors
        .enrolled(&who.user.name)
        .await
        .map_err(|e| fault("could not read the user's second factors")(&e))?;
    Ok(enrolled && !who.session.has_fresh_proof(auth.clock.now_ms()))
}

/// Changes `who`'s password; a new session (new ID) for this browser, every other one ended.
pub async fn change(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    current: &str,
    new: &str,
    code: &str,
) -> Result<SignedIn, ChangeRefused> {
    let user = &who.user;
    if let Limit::Banned { until_ms } = auth.regulator.check(&user.name, ctx.client) {
        return Err(ChangeRefused::Banned { until_ms });
    }
    let account = auth
        .store
        .credentials()
        .account(&user.name)
        .await
        .map_err(|e| fault("could not read the account")(&e))?;
    let own = super::own_password(Some(user), &account);
    // A signed-in user changing their password: the lane of known sign-ins.
    let lane = crate::users::Lane::Known;
    match auth
        .verifier
        .verify_with(Some(user), own, current, lane)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            let _ = auth.regulator.record_failure(&user.name, ctx.client);
            audit(
                auth,
                ctx,
                &user.name,
                "password_change_failed",
                "current password",
            )
            .await;
            return Err(ChangeRefused::WrongPassword);
        }
        Err(VerifyError::Busy(_)) => return Err(ChangeRefused::Busy),
        Err(e) => return Err(fault("password verification failed")(&e).into()),
    }
    check_policy(user, new).map_err(ChangeRefused::Weak)?;
    if change_needs_code(auth, who).await? {
        if code.trim().is_empty() {
            return Err(ChangeRefused::CodeNeeded);
        }
        check_factor(auth, ctx, who, FactorKind::Totp, code)
            .await
            .map_err(ChangeRefused::Factor)?;
    }
    set_password(auth, user, new).await?;
    let signed = finish(auth, &user.name, who.session.amr, Some(&who.key)).await?;
    let keep = crate::session::key_of(&signed.id);
    auth.sessions
        .end_others(&user.name, keep.as_ref().unwrap_or(&who.key))
        .await
        .map_err(|e| fault("could not end sessions")(&e))?;
    super::browsers::revoke_trust(auth, &user.name, keep.as_ref()).await?;
    tracing::info!(target: LOG, user = %user.name, "password changed");
    audit(auth, ctx, &user.name, "password_changed", "").await;
    let origin = notice::origin(auth, ctx);
    notice::tell(
        auth,
        ctx,
        user,
        MessageKind::PasswordChanged { origin: &origin },
        &[],
    )
    .await;
    Ok(signed)
}

async fn set_password(auth: &Auth, user: &User, new: &str) -> Result<(), ChangeRefused> {
    let hash = match auth.verifier.hash(new).await {
        Ok(h) => h,
        Err(VerifyError::Busy(_)) => return Err(ChangeRefused::Busy),
        Err(e) => return Err(fault("could not hash a password")(&e).into()),
    };
    auth.store
        .credentials()
        .write(vec![Write::SetPassword {
            user: user.name.clone(),
            hash,
            base: user.file_hash_fingerprint(),
            at_ms: auth.clock.now_ms(),
        }])
        .await
        .map_err(|e| fault("could not store a password")(&e))?;
    Ok(())
}

/// What a reset link's record holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResetLink {
    user: String,
}

fn reset_key(token: &str) -> Option<String> {
    use base64::Engine;
    use sha2::Digest;
    crate::browsers::token_key(token)?;
    let digest = sha2::Sha256::digest(token.as_bytes());
    Some(format!(
        "reset:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    ))
}

/// Asks for a reset link for `name` (a user name or email). The caller answers the same
/// whatever happens here (no user enumeration); only a store fault is an error. Limited per
/// user ([`RESETS_PER_HOUR`] links) here, and per address by the portal's form-post limit
/// (`regulation.form_posts_per_minute`), which every form post passes first.
pub async fn request_reset(auth: &Auth, ctx: &Context<'_>, name: &str) -> Result<(), Fault> {
    let Some(user) = normalize_username(name).and_then(|n| auth.users.find(&n)) else {
        return Ok(());
    };
    if user.disabled {
        return Ok(());
    }
    let Some(email) = user.email.clone() else {
        tracing::info!(target: LOG, user = %user.name, "reset asked for a user without an email");
        return Ok(());
    };
    let now = auth.clock.now_ms();
    let budget = format!("resets:{}", user.name);
    let hour = now.saturating_add(3_600_000);
    let ok = match super::progress::load::<u32>(&auth.store, &budget, now)
        .await
        .map_err(|e| fault("could not read the reset budget")(&e))?
    {
        Some(l) if l.value >= RESETS_PER_HOUR => false,
        Some(l) => {
            super::progress::save(
                &auth.store,
                &budget,
                &user.name,
                "resets",
                &(l.value + 1),
                l.expires_ms,
            )
            .await
            .map_err(|e| fault("could not count a reset")(&e))?;
            true
        }
        None => {
            super::progress::save(&auth.store, &budget, &user.name, "resets", &1u32, hour)
                .await
                .map_err(|e| fault("could not count a reset")(&e))?;
            true
        }
    };
    if !ok {
        tracing::warn!(target: LOG, user = %user.name, "reset links over the hourly limit");
        return Ok(());
    }
    let token = crate::browsers::new_token();
    let key = reset_key(&token).expect("a new token has the token format");
    let record = ResetLink {
        user: user.name.clone(),
    };
    let expires = now.saturating_add(RESET_TTL.as_millis() as u64);
    super::progress::save(&auth.store, &key, &user.name, "reset", &record, expires)
        .await
        .map_err(|e| fault("could not keep a reset link")(&e))?;
    let link = format!("{}/reset?token={token}", ctx.portal_url());
    let msg = crate::notify::compose(
        &MessageKind::PasswordReset,
        ctx.lang.tag(),
        crate::notify::Channel::Email,
        &email,
        ctx.service,
        &user.display_name,
        Some(&link),
    );
    if let Err(e) = auth.notifiers.send(&msg).await {
        tracing::error!(target: LOG, user = %user.name, error = %e, "could not send a reset link");
    }
    audit(auth, ctx, &user.name, "password_reset_requested", "").await;
    Ok(())
}

/// The user a live reset link is for (it is not used up by looking).
pub async fn reset_user(auth: &Auth, token: &str) -> Result<Option<std::sync::Arc<User>>, Fault> {
    let Some(key) = reset_key(token) else {
        return Ok(None);
    };
    let loaded = super::progress::load::<ResetLink>(&auth.store, &key, auth.clock.now_ms())
        .await
        .map_err(|e| fault("could not read a reset link")(&e))?;
    Ok(loaded.and_then(|l| auth.users.get(&l.value.user)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ResetRefused {
    /// Unknown, used or expired link.
    BadLink,
    CodeNeeded,
    Factor(FactorRefused),
    Weak(Weak),
    Busy,
    Fault,
}

impl From<Fault> for ResetRefused {
    fn from(_: Fault) -> Self {
        ResetRefused::Fault
    }
}

/// Whether resetting `user` asks for a second-factor code.
pub async fn reset_needs_code(auth: &Auth, user: &User) -> Result<bool, Fault> {
    auth.factors
        .enrolled(&user.name)
        .await
        .map_err(|e| fault("could not read the user's second factors")(&e))
}

/// Completes a reset: the code (when the user has a second factor), the policy, then the
/// link is used up and the password set; the account is unlocked, every session ends and
/// trusted browsers are forgotten.
pub async fn reset(
    auth: &Auth,
    ctx: &Context<'_>,
    token: &str,
    new: &str,
    code: &str,
) -> Result<std::sync::Arc<User>, ResetRefused> {
    let Some(user) = reset_user(auth, token).await? else {
        return Err(ResetRefused::BadLink);
    };
    check_policy(&user, new).map_err(ResetRefused::Weak)?;
    if reset_needs_code(auth, &user).await? {
        if code.trim().is_empty() {
            return Err(ResetRefused::CodeNeeded);
        }
        super::check_factor_of(auth, ctx, &user, FactorKind::Totp, code)
            .await
            .map_err(ResetRefused::Factor)?;
    }
    let key = reset_key(token).ok_or(ResetRefused::BadLink)?;
    let taken = auth
        .store
        .challenges()
        .take_challenge(&key, auth.clock.now_ms())
        .await
        .map_err(|e| fault("could not take a reset link")(&e))?;
    if taken.is_none() {
        return Err(ResetRefused::BadLink);
    }
    set_password(auth, &user, new).await.map_err(|e| match e {
        ChangeRefused::Busy => ResetRefused::Busy,
        _ => ResetRefused::Fault,
    })?;
    crate::lockout::unlock(&auth.store, &user.name)
        .await
        .map_err(|e| fault("could not unlock an account")(&e))?;
    auth.sessions
        .end_user(&user.name)
        .await
        .map_err(|e| fault("could not end sessions")(&e))?;
    super::browsers::revoke_trust(auth, &user.name, None).await?;
    tracing::info!(target: LOG, user = %user.name, "password reset");
    audit(auth, ctx, &user.name, "password_reset", "").await;
    let origin = notice::origin(auth, ctx);
    notice::tell(
        auth,
        ctx,
        &user,
        MessageKind::PasswordChanged { origin: &origin },
        &[],
    )
    .await;
    Ok(user)
}
