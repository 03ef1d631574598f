//! Passkeys in the flow: registering, naming and removing them (changes behind a fresh proof,
//! as in `flow::change`), and passing the second factor with one.
//!
//! A ceremony's state waits in the store under a key bound to the browser's session
//! (`passkey-register:<session>`, `passkey-verify:<session>`) for five minutes and is taken by
//! the answer that finishes it: a response replayed, sent for another session's ceremony, or sent
//! after the five minutes fails. Passing the second factor with a passkey counts like a code
//! (`flow::count_verdict`): under the account's failure limits, the ban checked first, and a new
//! session with `hwk` added.

use super::change::{self, Refused as ChangeRefused};
use super::progress::session_key;
use super::{audit, notice, Context, FactorRefused, SignedIn};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::passkey::{clean_name, PasskeyInfo, Registered};
use crate::factor::{FactorError, FactorKind, Verdict};
use crate::notify::MessageKind;
use crate::regulation::{code_key, Refusal, Verdict as Limit};

const LOG: &str = "stepgate::flow";

/// Why a passkey step did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Refused {
    /// The operator has not configured passkeys.
    Disabled,
    /// Not a two-factor session: pass the second factor first.
    NotTwoFactor,
    /// The session's proof is not fresh: confirm it is you first.
    NeedsProof,
    /// The user has no two-step verification to add a passkey to (set it up first).
    NoFactor,
    /// No ceremony was begun in this session, or it ran out, or it was used.
    Expired,
    /// The authenticator's answer does not verify or does not parse.
    Rejected,
    /// This passkey is registered already.
    Duplicate,
    /// The user has the most passkeys allowed.
    TooMany,
    /// No such passkey of this user.
    NotFound,
    /// Empty name.
    BadName,
    /// The last way to pass the second factor: add another method or recovery codes first.
    LastMethod,
    Fault,
}

impl From<FactorError> for Refused {
    fn from(e: FactorError) -> Self {
        tracing::error!(target: LOG, error = %e, "passkeys: the factors failed");
        Refused::Fault
    }
}

impl From<ChangeRefused> for Refused {
    fn from(e: ChangeRefused) -> Self {
        match e {
            ChangeRefused::NotTwoFactor => Refused::NotTwoFactor,
            ChangeRefused::NeedsProof => Refused::NeedsProof,
            ChangeRefused::NoFactor => Refused::NoFactor,
            _ => Refused::Fault,
        }
    }
}

fn register_key(who: &Identity) -> String {
    session_key("passkey-register", &who.key)
}

fn verify_key(who: &Identity) -> String {
    session_key("passkey-verify", &who.key)
}

fn enabled(auth: &Auth) -> Result<(), Refused> {
    if auth.factors.passkeys().enabled() {
        Ok(())
    } else {
        Err(Refused::Disabled)
    }
}

/// The user's passkeys (a two-factor session).
pub async fn list(auth: &Auth, who: &Identity) -> Result<Vec<PasskeyInfo>, Refused> {
    enabled(auth)?;
    if who.session.level() != AuthLevel::TwoFactor {
        return Err(Refused::NotTwoFactor);
    }
    Ok(auth.factors.passkeys().list(&who.user.name).await?)
}

/// Begins adding a passkey (a fresh proof): the options for the browser, as JSON.
pub async fn begin_registration(auth: &Auth, who: &Identity) -> Result<String, Refused> {
    enabled(auth)?;
    change::allowed(auth, who).await?;
    let user = &who.user;
    auth.factors
        .passkeys()
        .begin_registration(&register_key(who), &user.name, &user.display_name)
        .await?
        .ok_or(Refused::TooMany)
}

/// Finishes adding a passkey with the authenticator's `response` (JSON), named `name`; the
/// addresses on file are told.
pub async fn finish_registration(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    name: &str,
    response: &str,
) -> Result<(), Refused> {
    enabled(auth)?;
    change::allowed(auth, who).await?;
    let name = clean_name(name).ok_or(Refused::BadName)?;
    let user = &who.user.name;
    let before = notice::addresses(auth, &who.user).await;
    let outcome = auth
        .factors
        .passkeys()
        .finish_registration(&register_key(who), user, &name, response)
        .await?;
    match outcome {
        Registered::Added => {}
        Registered::Expired => return Err(Refused::Expired),
        Registered::Rejected => return Err(Refused::Rejected),
        Registered::Duplicate => return Err(Refused::Duplicate),
        Registered::TooMany => return Err(Refused::TooMany),
    }
    auth.factors.forget_cached(user);
    tracing::info!(target: LOG, %user, "passkey added");
    let origin = notice::origin(auth, ctx);
    let kind = MessageKind::FactorAdded {
        factor: "passkey",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, kind, &before).await;
    audit(auth, ctx, user, "factor_added", "passkey").await;
    Ok(())
}

/// Renames one of the user's passkeys (a two-factor session: a name changes no security).
pub async fn rename(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    id: &str,
    name: &str,
) -> Result<(), Refused> {
    enabled(auth)?;
    if who.session.level() != AuthLevel::TwoFactor {
        return Err(Refused::NotTwoFactor);
    }
    let name = clean_name(name).ok_or(Refused::BadName)?;
    let user = &who.user.name;
    if !auth.factors.passkeys().rename(user, id, &name).await? {
        return Err(Refused::NotFound);
    }
    audit(auth, ctx, user, "passkey_renamed", "").await;
    Ok(())
}

/// Removes one of the user's passkeys (a fresh proof). The last way to pass the second factor
/// is kept unless the user has another primary method or unused recovery codes.
pub async fn remove(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    id: &str,
) -> Result<(), Refused> {
    enabled(auth)?;
    change::allowed(auth, who).await?;
    let user = &who.user.name;
    let passkeys = auth.factors.passkeys().list(user).await?;
    if !passkeys.iter().any(|p| p.id == id) {
        return Err(Refused::NotFound);
    }
    let kinds = auth.factors.enrolled_kinds(user).await?;
    let other_primary = kinds
        .iter()
        .any(|k| k.is_primary() && *k != FactorKind::Passkey);
    let recovery = auth.factors.recovery_remaining(user).await? > 0;
    if !keeps_a_way_in(passkeys.len() - 1, other_primary, recovery) {
        return Err(Refused::LastMethod);
    }
    let before = notice::addresses(auth, &who.user).await;
    if !auth.factors.passkeys().remove_one(user, id).await? {
        return Err(Refused::NotFound);
    }
    auth.factors.forget_cached(user);
    tracing::info!(target: LOG, %user, "passkey removed");
    let origin = notice::origin(auth, ctx);
    let kind = MessageKind::FactorRemoved {
        factor: "passkey",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, kind, &before).await;
    audit(auth, ctx, user, "factor_removed", "passkey").await;
    Ok(())
}

/// Whether removing a passkey leaves a way to pass the second factor: another passkey,
/// another primary method (app, SMS), or unused recovery codes.
fn keeps_a_way_in(passkeys_left: usize, other_primary: bool, recovery_codes: bool) -> bool {
    passkeys_left > 0 || other_primary || recovery_codes
}

/// Whether `who` is at the second factor: a one-factor session (or one only a trusted browser
/// made two-factor) of a user with passkeys on.
fn at_challenge(auth: &Auth, who: &Identity) -> Result<(), FactorRefused> {
    if !auth.factors.passkeys().enabled() {
        return Err(FactorRefused::NotEnrolled);
    }
    let remembered = who.session.amr.remembered_only();
    if who.session.level() == AuthLevel::TwoFactor && !remembered {
        // Nothing to pass: treat as not asked.
        return Err(FactorRefused::NotEnrolled);
    }
    Ok(())
}

fn not_banned(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<(), FactorRefused> {
    match auth.regulator.check(&code_key(&who.user.name), ctx.client) {
        Limit::Banned { until_ms } => Err(FactorRefused::Banned { until_ms }),
        Limit::Allowed => Ok(()),
    }
}

/// Begins passing the second factor with a passkey: the options for the browser, as JSON.
pub async fn begin_verification(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
) -> Result<String, FactorRefused> {
    at_challenge(auth, who)?;
    not_banned(auth, ctx, who)?;
    let user = &who.user.name;
    match auth
        .factors
        .passkeys()
        .begin_authentication(&verify_key(who), user)
        .await
    {
        Ok(Some(options)) => Ok(options),
        Ok(None) => Err(FactorRefused::NotEnrolled),
        Err(e) => {
            tracing::error!(target: LOG, %user, error = %e, "could not begin a passkey check");
            Err(FactorRefused::Fault)
        }
    }
}

/// Passes the second factor with the authenticator's `response` (JSON) to this session's
/// ceremony: a new session with `hwk` added. A response that does not verify counts as a
/// wrong code; one without a ceremony (replayed, expired) is `Expired` and counts too.
pub async fn pass(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    response: &str,
) -> Result<SignedIn, FactorRefused> {
    at_challenge(auth, who)?;
    // Reserved before the answer is checked, as for codes (`flow::check_factor_of`).
    let key = code_key(&who.user.name);
    let shared = auth.shared_limits.as_ref();
    let attempt = match auth
        .regulator
        .reserve_everywhere(shared, &key, ctx.client)
        .await
    {
        Ok(a) => a,
        Err(Refusal::Until(until_ms)) => return Err(FactorRefused::Banned { until_ms }),
        Err(Refusal::Fault) => return Err(FactorRefused::Fault),
    };
    let verdict = auth
        .factors
        .passkeys()
        .finish_authentication(&verify_key(who), &who.user.name, response)
        .await;
    let passed = super::count_verdict(
        auth,
        ctx,
        &who.user,
        FactorKind::Passkey,
        verdict,
        Some(attempt),
    )
    .await?;
    let signed = super::second_factor_passed(auth, ctx, who, passed).await?;
    Ok(signed)
}

/// The store key of a passwordless sign-in ceremony, bound to the browser's sign-in form (the
/// CSRF token of its form cookie): a hash, never the token itself.
pub fn sign_in_key(form_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, form_token.as_bytes());
    let mut key = String::from("passkey-signin:");
    for b in digest.as_ref() {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// Passwordless ceremonies in flight at most (each view of the sign-in page, by anyone, begins
/// one and keeps it for five minutes): past this, the page offers only the password until some
/// run out, so a flood of page views cannot grow the store without bound. Approximate: views
/// at the same moment may pass the count together.
const MAX_SIGN_IN_CEREMONIES: u64 = 10_000;

/// Begins a passwordless sign-in for the sign-in page: the options for the browser, as JSON;
/// `None` when passwordless sign-in is off, too many are in flight, or the store failed (the
/// page then offers only the password).
pub async fn begin_sign_in(auth: &Auth, form_token: &str) -> Option<String> {
    if !auth.factors.passkeys().passwordless() {
        return None;
    }
    let now = auth.clock.now_ms();
    match auth
        .store
        .challenges()
        .count_challenges("passkey-signin:", now)
        .await
    {
        Ok(n) if n < MAX_SIGN_IN_CEREMONIES => {}
        Ok(n) => {
            tracing::warn!(target: LOG, in_flight = n, "passkey sign-in not offered: too many ceremonies in flight");
            return None;
        }
        Err(e) => {
            tracing::error!(target: LOG, error = %e, "could not count passkey sign-ins in flight");
            return None;
        }
    }
    match auth
        .factors
        .passkeys()
        .begin_sign_in(&sign_in_key(form_token))
        .await
    {
        Ok(options) => Some(options),
        Err(e) => {
            tracing::error!(target: LOG, error = %e, "could not begin a passkey sign-in");
            None
        }
    }
}

/// Signs in with a passkey and no password (`passkeys.passwordless`): a discoverable
/// credential with user verification, which proves possession of the key and, through the
/// verification, something the user knows or is (NIST SP 800-63B: a multi-factor
/// cryptographic authenticator), so the session's `amr` is `hwk` alone, at `2fa`. The same
/// answers as a password sign-in: one generic failure for an unknown credential, a wrong answer,
/// a disabled or locked account and a ban (by user name, and on the account's codes); a
/// failure counts against the user name like a wrong password. `previous` ends.
pub async fn sign_in(
    auth: &Auth,
    ctx: &Context<'_>,
    form_token: &str,
    response: &str,
    app: &str,
    previous: Option<&crate::session::SessionKey>,
) -> Result<super::SignInDone, super::SignInRefused> {
    use super::SignInRefused as Refused;
    let passkeys = auth.factors.passkeys();
    if !passkeys.passwordless() {
        return Err(Refused::Failed);
    }
    let key = sign_in_key(form_token);
    let handle = passkeys.claimed_handle(response);
    let user = handle.and_then(|h| auth.users.user_where(&|u| passkeys.handle(&u.name) == h));
    if let Some(u) = &user {
        let banned = [u.name.clone(), code_key(&u.name)]
            .iter()
            .any(|k| matches!(auth.regulator.check(k, ctx.client), Limit::Banned { .. }));
        if banned {
            tracing::info!(target: "stepgate::regulation", user = %u.name, client = %ctx.client, "passkey sign-in refused during a ban");
            audit(auth, ctx, &u.name, "sign_in_banned", "passkey").await;
            let _ = passkeys.finish_sign_in(&key, None, response).await;
            return Err(Refused::Failed);
        }
    }
    let verdict = passkeys
        .finish_sign_in(&key, user.as_deref().map(|u| u.name.as_str()), response)
        .await
        .map_err(|e| {
            tracing::error!(target: LOG, error = %e, "could not check a passkey sign-in");
            Refused::Fault
        })?;
    let Some(user) = user else {
        tracing::info!(target: LOG, client = %ctx.client, "passkey sign-in failed: no such passkey");
        return Err(Refused::Failed);
    };
    let name = user.name.clone();
    if !matches!(verdict, Verdict::Accepted { .. }) {
        let banned = auth.regulator.record_failure(&name, ctx.client);
        tracing::info!(target: LOG, user = %name, client = %ctx.client, ?verdict, "passkey sign-in failed");
        let event = if banned.is_some() {
            "sign_in_failed_banned"
        } else {
            "sign_in_failed"
        };
        audit(auth, ctx, &name, event, "passkey").await;
        return Err(Refused::Failed);
    }
    let account = auth.store.credentials().account(&name).await.map_err(|e| {
        tracing::error!(target: LOG, error = %e, "could not read the account");
        Refused::Fault
    })?;
    if user.disabled || account.locked_ms.is_some() {
        tracing::info!(target: LOG, user = %name, client = %ctx.client, "passkey sign-in refused: account disabled or locked");
        audit(auth, ctx, &name, "sign_in_locked", "passkey").await;
        return Err(Refused::Failed);
    }
    auth.regulator.record_success(&name, ctx.client);
    let mut checked = super::protect::assess(auth, ctx, &user)
        .await
        .map_err(|super::Fault| Refused::Fault)?;
    // The passkey is the strongest proof there is: an unfamiliar environment is still told to
    // the user (the alert), but asks for no further check.
    checked.needs_check = false;
    let origin = crate::session::Origin {
        client: ctx.client.to_string(),
        agent: crate::user_agent::describe(ctx.user_agent),
        persistent: false,
        needs_check: false,
        trusted: String::new(),
    };
    let amr = crate::amr::Amr::default().with(crate::amr::Method::Hwk);
    let (id, session) = auth
        .sessions
        .start(&name, amr, previous, origin)
        .await
        .map_err(|e| super::fault("could not create a session")(&e))
        .map_err(|super::Fault| Refused::Fault)?;
    let signed = SignedIn { id, session };
    let new_device = super::protect::after_sign_in(auth, ctx, &user, &signed, &checked, app).await;
    tracing::info!(target: LOG, user = %name, client = %ctx.client, "signed in with a passkey");
    audit(auth, ctx, &name, "sign_in", "passkey").await;
    Ok(super::SignInDone {
        signed,
        user,
        new_device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_way_in_is_kept() {
        assert!(
            !keeps_a_way_in(0, false, false),
            "the last passkey, nothing else"
        );
        assert!(keeps_a_way_in(1, false, false), "another passkey");
        assert!(keeps_a_way_in(0, true, false), "the app or SMS");
        assert!(keeps_a_way_in(0, false, true), "recovery codes");
    }

    #[test]
    fn the_sign_in_key_is_a_hash_of_the_form_token() {
        let key = sign_in_key("token");
        assert!(key.starts_with("passkey-signin:"));
        assert!(!key.contains("token"));
        assert_eq!(key.len(), "passkey-signin:".len() + 64);
        assert_ne!(key, sign_in_key("other"));
    }
}
