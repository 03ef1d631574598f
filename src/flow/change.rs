//! Changes to an enrolled account's second factors and emergency email (ASVS 5.0 7.5.1 and 6.4.5; NIST SP 800-63B §6.1.2.3): each
//! needs a two-factor session with a fresh proof (`flow::confirm`, or the proof of the sign-in
//! itself when it is minutes old) — never only a code sent to an address the request names,
//! since whoever holds a stolen session cookie can read mail at their own address.
//!
//! - **Replacing the authenticator app**: a new secret is shown (kept sealed with the session's
//!   change in flight); the old app keeps working until a code from the new one checks out; then
//!   the secret is swapped, the user's other sessions end, and this browser gets a new ID.
//! - **The emergency email**: a code goes to the new address; once it checks out, the address
//!   changes.
//! - **The 2FA phone** (SMS): a code goes to the new number; once it checks out, SMS codes go
//!   there (for a user who had none, SMS is added as a method). The old number is told by SMS.
//! - **New recovery codes**, and **removing the app** (which ends the other sessions).
//!
//! Each change is reported to the addresses registered before it (and the new ones), with when,
//! from where and on which browser.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::progress::{self, session_key};
use super::setup::{send_code, CodePurpose, Refused as SetupRefused, Secret};
use super::{audit, finish, notice, Context, Fault, SignedIn};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::code::{CodeCheck, PendingCode};
use crate::factor::totp::{self, TotpCheck, TotpSecret};
use crate::notify::MessageKind;
use crate::regulation::{code_key, Verdict};

const LOG: &str = "stepgate::flow";
/// How long a change may stay unfinished.
const CHANGE_TTL: Duration = Duration::from_secs(30 * 60);

/// A change in flight, one per session: beginning another replaces it.
#[derive(Serialize, Deserialize)]
enum Pending {
    /// A new app's secret (sealed), shown but not yet confirmed.
    Authenticator { secret: Vec<u8> },
    /// A new emergency email waiting for the code sent to it.
    EmergencyEmail { email: String, code: PendingCode },
    /// A new 2FA phone waiting for the code sent to it.
    Phone { phone: String, code: PendingCode },
}

/// Why a change was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Refused {
    /// Not a two-factor session: pass the second factor first.
    NotTwoFactor,
    /// The session's proof is not fresh: confirm it is you first.
    NeedsProof,
    /// The user has no authenticator app (to change, or to change the email of).
    NoFactor,
    /// Nothing was begun in this session (or it expired): start from the page.
    NotBegun,
    /// Codes are banned for the account until `until_ms`.
    Banned {
        until_ms: u64,
    },
    Wrong,
    Expired,
    /// Not a phone number in E.164 form.
    BadPhone,
    /// The same address as now.
    Unchanged,
    BadEmail,
    /// The hour's codes are spent until `until_ms`.
    SendLimit {
        until_ms: u64,
    },
    SendFailed,
    Fault,
}

/// A code that could not be sent (setup's send, shared by the changes).
impl From<SetupRefused> for Refused {
    fn from(e: SetupRefused) -> Self {
        match e {
            SetupRefused::SendLimit { until_ms } => Refused::SendLimit { until_ms },
            SetupRefused::SendFailed => Refused::SendFailed,
            _ => Refused::Fault,
        }
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(target: LOG, error = %e, "change: the store failed");
        Refused::Fault
    }
}

impl From<crate::factor::FactorError> for Refused {
    fn from(e: crate::factor::FactorError) -> Self {
        tracing::error!(target: LOG, error = %e, "change: the factors failed");
        Refused::Fault
    }
}

fn key(who: &Identity) -> String {
    session_key("change", &who.key)
}

/// What stands behind a change made in one request.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// The session's own fresh proof.
    Fresh,
    /// A current code from the app or a recovery code, entered with the change itself.
    Code(&'a str),
}

/// Checks `proof` for a change: a fresh session, or a right code (under the failure limits,
/// as at the challenge). The session keeps its ID: the code proves this one change.
async fn proven(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    proof: Proof<'_>,
) -> Result<(), Refused> {
    let Proof::Code(code) = proof else {
        return allowed(auth, who).await;
    };
    if who.session.level() != AuthLevel::TwoFactor {
        return Err(Refused::NotTwoFactor);
    }
    let kind = super::primary_kind(auth, &who.user.name)
        .await
        .map_err(|_| Refused::Fault)?;
    match super::check_factor(auth, ctx, who, kind, code).await {
        Ok(_) => Ok(()),
        Err(super::FactorRefused::Banned { until_ms }) => Err(Refused::Banned { until_ms }),
        Err(super::FactorRefused::NotEnrolled) => Err(Refused::NoFactor),
        Err(
            super::FactorRefused::Wrong
            | super::FactorRefused::Replayed
            | super::FactorRefused::Expired
            | super::FactorRefused::Pending
            | super::FactorRefused::Denied,
        ) => Err(Refused::Wrong),
        Err(super::FactorRefused::Fault) => Err(Refused::Fault),
    }
}

/// A two-factor session with a fresh proof, of a user who has two-step verification.
pub async fn allowed(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    if who.session.level() != AuthLevel::TwoFactor {
        return Err(Refused::NotTwoFactor);
    }
    if !who.session.has_fresh_proof(auth.clock.now_ms()) {
        return Err(Refused::NeedsProof);
    }
    if !auth.factors.has_second_factor(&who.user.name).await? {
        return Err(Refused::NoFactor);
    }
    Ok(())
}

async fn begin(auth: &Auth, who: &Identity, pending: &Pending) -> Result<(), Refused> {
    let expires = auth.clock.now_ms() + CHANGE_TTL.as_millis() as u64;
    progress::save(
        &auth.store,
        &key(who),
        &who.user.name,
        "change",
        pending,
        expires,
    )
    .await?;
    Ok(())
}

async fn pending(auth: &Auth, who: &Identity) -> Result<Option<Pending>, Refused> {
    let loaded = progress::load(&auth.store, &key(who), auth.clock.now_ms()).await?;
    Ok(loaded.map(|l| l.value))
}

fn not_banned(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<(), Refused> {
    match auth.regulator.check(&code_key(&who.user.name), ctx.client) {
        Verdict::Banned { until_ms } => Err(Refused::Banned { until_ms }),
        Verdict::Allowed => Ok(()),
    }
}

fn failed(auth: &Auth, ctx: &Context<'_>, who: &Identity, why: Refused) -> Refused {
    let _ = auth
        .regulator
        .record_failure(&code_key(&who.user.name), ctx.client);
    tracing::info!(target: LOG, user = %who.user.name, client = %ctx.client, ?why, "change: a code did not check out");
    why
}

/// The new app's secret to show, made now unless this session has one waiting.
pub async fn new_authenticator(auth: &Auth, who: &Identity) -> Result<Secret, Refused> {
    allowed(auth, who).await?;
    let user = &who.user.name;
    if let Some(Pending::Authenticator { secret }) = pending(auth, who).await? {
        return Ok(Secret(auth.factors.open_sealed(user, &secret)?));
    }
    let secret = TotpSecret::generate();
    let sealed = auth.factors.seal(user, secret.as_bytes())?;
    begin(auth, who, &Pending::Authenticator { secret: sealed }).await?;
    Ok(Secret(secret.as_bytes().to_vec()))
}

/// A code from the new app: the swap. The other sessions end; this browser gets a new ID.
pub async fn confirm_authenticator(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<SignedIn, Refused> {
    let Some(Pending::Authenticator { secret }) = pending(auth, who).await? else {
        return Err(Refused::NotBegun);
    };
    not_banned(auth, ctx, who)?;
    let user = &who.user.name;
    let secret = TotpSecret::from_bytes(auth.factors.open_sealed(user, &secret)?);
    let step = match totp::check(secret.as_bytes(), code, auth.clock.now_secs(), None) {
        TotpCheck::Accepted { step } => step,
        _ => return Err(failed(auth, ctx, who, Refused::Wrong)),
    };
    let before = notice::addresses(auth, &who.user).await;
    if !auth.factors.replace_totp(user, &secret, step).await? {
        // Removed meanwhile: there is nothing to replace.
        progress::delete(&auth.store, &key(who)).await?;
        tracing::info!(target: LOG, %user, "replacing the app refused: it was removed meanwhile");
        return Err(Refused::NoFactor);
    }
    progress::delete(&auth.store, &key(who)).await?;
    auth.regulator.record_success(&code_key(user), ctx.client);
    let ended = auth.sessions.end_others(user, &who.key).await?;
    tracing::info!(target: LOG, %user, other_sessions_ended = ended, "authenticator app replaced");
    let origin = notice::origin(auth, ctx);
    let kind = MessageKind::FactorReplaced {
        factor: "totp",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, kind, &before).await;
    audit(auth, ctx, user, "factor_replaced", "totp").await;
    finish(auth, user, who.session.amr, Some(&who.key))
        .await
        .map_err(|Fault| Refused::Fault)
}

/// The emergency email on file, and the new address waiting for its code, if any.
pub async fn emergency_email(
    auth: &Auth,
    who: &Identity,
) -> Result<(String, Option<String>), Refused> {
    let on_file = auth.factors.emergency_email(&who.user.name).await?;
    let waiting = match pending(auth, who).await? {
        Some(Pending::EmergencyEmail { email, .. }) => Some(email),
        _ => None,
    };
    Ok((on_file.unwrap_or_default(), waiting))
}

/// Sends a code to a new emergency email (needs a fresh proof).
pub async fn send_emergency_email_code(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    email: &str,
) -> Result<(), Refused> {
    allowed(auth, who).await?;
    let email = email.trim();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(Refused::BadEmail);
    }
    let (on_file, _) = emergency_email(auth, who).await?;
    if email.eq_ignore_ascii_case(&on_file) {
        return Err(Refused::Unchanged);
    }
    let code = send_code(auth, ctx, who, email, CodePurpose::EmergencyEmail).await?;
    let email = email.to_owned();
    begin(auth, who, &Pending::EmergencyEmail { email, code }).await
}

/// Forgets the new address waiting for its code.
pub async fn restart_emergency_email(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    if let Some(Pending::EmergencyEmail { .. }) = pending(auth, who).await? {
        progress::delete(&auth.store, &key(who)).await?;
    }
    Ok(())
}

/// Checks `code` against the new value (email or phone) waiting in this session's change, as
/// `value_of` finds it there; the value once the code checks out. A wrong code counts in the
/// failure limits; a dead one ends the change.
async fn confirm_new_value(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
    value_of: fn(&mut Pending) -> Option<(&mut PendingCode, &String)>,
) -> Result<String, Refused> {
    not_banned(auth, ctx, who)?;
    let (key_, now, user) = (key(who), auth.clock.now_ms(), &who.user.name);
    let checked = progress::update(
        &auth.store,
        &key_,
        user,
        "change",
        now,
        |p: &mut Pending| {
            let Some((pending, value)) = value_of(p) else {
                return (None, true);
            };
            let value = value.clone();
            let check = pending.check(auth.factors.code_key(), code, now);
            let keep = matches!(check, CodeCheck::Wrong { .. } | CodeCheck::Malformed);
            (Some((check, value)), keep)
        },
    )
    .await?;
    match checked.flatten() {
        None => Err(Refused::NotBegun),
        Some((CodeCheck::Accepted, value)) => {
            auth.regulator.record_success(&code_key(user), ctx.client);
            Ok(value)
        }
        Some((CodeCheck::Wrong { .. } | CodeCheck::Malformed, _)) => {
            Err(failed(auth, ctx, who, Refused::Wrong))
        }
        Some((CodeCheck::Expired | CodeCheck::Exhausted, _)) => {
            Err(failed(auth, ctx, who, Refused::Expired))
        }
    }
}

/// The code sent to the new emergency email: the change.
pub async fn confirm_emergency_email(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<(), Refused> {
    let email = confirm_new_value(auth, ctx, who, code, |p| match p {
        Pending::EmergencyEmail { email, code } => Some((code, &*email)),
        _ => None,
    })
    .await?;
    let user = &who.user.name;
    let before = notice::addresses(auth, &who.user).await;
    auth.factors.set_emergency_email(user, &email).await?;
    tracing::info!(target: LOG, %user, "emergency email changed");
    let origin = notice::origin(auth, ctx);
    let masked = crate::notify::mask_recipient(&email);
    let kind = MessageKind::EmergencyEmailChanged {
        new: &masked,
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, kind, &before).await;
    audit(auth, ctx, user, "emergency_email_changed", "").await;
    Ok(())
}

/// The 2FA phone on file and a new one waiting for its code, if any.
pub async fn phone(
    auth: &Auth,
    who: &Identity,
) -> Result<(Option<String>, Option<String>), Refused> {
    let on_file = auth.factors.sms_phone(&who.user.name).await?;
    let waiting = match pending(auth, who).await? {
        Some(Pending::Phone { phone, .. }) => Some(phone),
        _ => None,
    };
    Ok((on_file, waiting))
}

/// Sends a code to a new 2FA phone (needs a fresh proof).
pub async fn send_phone_code(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    phone: &str,
) -> Result<(), Refused> {
    allowed(auth, who).await?;
    let phone: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if !crate::users::is_e164(&phone) {
        return Err(Refused::BadPhone);
    }
    if auth.factors.sms_phone(&who.user.name).await?.as_deref() == Some(phone.as_str()) {
        return Err(Refused::Unchanged);
    }
    let code = send_code(auth, ctx, who, &phone, CodePurpose::Phone).await?;
    begin(auth, who, &Pending::Phone { phone, code }).await
}

/// Forgets the new phone waiting for its code.
pub async fn restart_phone(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    if let Some(Pending::Phone { .. }) = pending(auth, who).await? {
        progress::delete(&auth.store, &key(who)).await?;
    }
    Ok(())
}

/// The code sent to the new phone: the change. The old number (by SMS) and the addresses on
/// file are told.
pub async fn confirm_phone(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<(), Refused> {
    let phone = confirm_new_value(auth, ctx, who, code, |p| match p {
        Pending::Phone { phone, code } => Some((code, &*phone)),
        _ => None,
    })
    .await?;
    let user = &who.user.name;
    let old = auth.factors.sms_phone(user).await?;
    auth.factors.set_sms_phone(user, &phone).await?;
    tracing::info!(target: LOG, %user, "2fa phone changed");
    let origin = notice::origin(auth, ctx);
    let masked = crate::notify::mask_recipient(&phone);
    let kind = MessageKind::PhoneChanged {
        new: &masked,
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, kind, &[]).await;
    if let Some(old) = old {
        notice::text(auth, ctx, &who.user, kind, &old).await;
    }
    audit(auth, ctx, user, "phone_changed", "").await;
    Ok(())
}

/// New recovery codes (the old ones stop working), to show once.
pub async fn new_recovery_codes(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    proof: Proof<'_>,
) -> Result<Vec<String>, Refused> {
    proven(auth, ctx, who, proof).await?;
    let user = &who.user.name;
    let before = notice::addresses(auth, &who.user).await;
    let codes = auth.factors.new_recovery_codes(user).await?;
    tracing::info!(target: LOG, %user, "recovery codes replaced");
    let origin = notice::origin(auth, ctx);
    let kind = MessageKind::RecoveryCodesRegenerated { origin: &origin };
    notice::tell(auth, ctx, &who.user, kind, &before).await;
    audit(auth, ctx, user, "recovery_codes_regenerated", "").await;
    Ok(codes)
}

/// Turns the authenticator app off; the user's other sessions end.
pub async fn remove_authenticator(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    proof: Proof<'_>,
) -> Result<(), Refused> {
    proven(auth, ctx, who, proof).await?;
    let user = &who.user.name;
    let before = notice::addresses(auth, &who.user).await;
    auth.factors.turn_off(user).await?;
    let ended = auth.sessions.end_others(user, &who.key).await?;
    tracing::info!(target: LOG, %user, other_sessions_ended = ended, "authenticator app removed");
    let origin = notice::origin(auth, ctx);
    let kind = MessageKind::FactorRemoved {
        factor: "totp",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, kind, &before).await;
    audit(auth, ctx, user, "factor_removed", "totp").await;
    Ok(())
}
