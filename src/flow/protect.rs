//! Protection around sign-in: trusted browsers standing in for the second factor, the check of
//! a sign-in from an unfamiliar environment and its alert, and "this wasn't me".
//!
//! **Unfamiliar environment** (the signal, documented in `docs/account-protection.md`): the
//! browser's device cookie (`stepgate_device`, random, two years) has never completed a sign-in
//! to this account, *and* the client's network (IPv4 /24, IPv6 /48) has not either. The user
//! agent is never part of it (anyone can send any). An account's first sign-in sets the
//! baseline. Such a sign-in gets a session marked `needs_check`, which the decision core sends
//! to the second factor (a user who has one) or to a one-time code mailed to the account email
//! ([`send_check_code`], [`pass_check`]); nothing else is let through until it passes. The
//! account email is sent a **sign-in alert** (time, address, browser, app) with a "this
//! wasn't me" link.
//!
//! **"This wasn't me"**: the link carries a 256-bit token, kept in the store as its SHA-256
//! with the facts of that sign-in, for [`LOCK_LINK_TTL`]. Opening it shows a confirmation only
//! (mail scanners fetch links); the form's POST ([`lock_by_link`]) takes the token once and
//! locks the account (`lockout`): every session ends, trusted browsers are forgotten, codes in
//! flight are cancelled, the user and the operator are told. Sign-in then fails generically
//! until a password reset that passes the second factor, or `stepgate admin unlock`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::progress::{self, session_key};
use super::setup::{self, send_code, CodePurpose, Refused};
use super::{audit, fault, finish, notice, Context, Fault, SignedIn};
use crate::auth::{Auth, Identity};
use crate::browsers::{self, Familiarity, Place};
use crate::factor::code::{CodeCheck, PendingCode};
use crate::notify::MessageKind;
use crate::users::User;

const LOG: &str = "stepgate::protect";
/// How long the "this wasn't me" link of a sign-in alert works.
pub const LOCK_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What sign-in found out about where it comes from.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The trusted browser (credential ID) that stands in for the second factor.
    pub trusted: Option<String>,
    pub familiarity: Familiarity,
    /// The session must pass a check first.
    pub needs_check: bool,
}

/// Looks at the browser's cookies and address for `user`, after the right password.
pub async fn assess(auth: &Auth, ctx: &Context<'_>, user: &User) -> Result<Assessment, Fault> {
    let now = auth.clock.now_ms();
    let enrolled = auth
        .factors
        .enrolled(&user.name)
        .await
        .map_err(|e| fault("could not read the user's second factors")(&e))?;
    let trusted = match ctx.trust {
        Some(token) if enrolled && auth.two_factor.trusted_browser_lifetime.is_some() => {
            browsers::check(&auth.store, &user.name, token, now)
                .await
                .map_err(|e| fault("could not check a trusted browser")(&e))?
        }
        _ => None,
    };
    let familiarity = if !auth.sessions.config().unfamiliar_check || trusted.is_some() {
        Familiarity::Known
    } else {
        browsers::familiarity(&auth.store, &user.name, ctx.device, ctx.client)
            .await
            .map_err(|e| fault("could not read the known environments")(&e))?
    };
    let mut needs_check = familiarity == Familiarity::Unfamiliar;
    if needs_check && !enrolled && user.email.is_none() {
        // Nothing to check with: no second factor and no address for a code. Said in the log
        // (the operator can give the user an email or a second factor); the alert cannot go
        // either.
        tracing::warn!(target: LOG, user = %user.name, "unfamiliar sign-in not checked: the user has neither a second factor nor an email");
        needs_check = false;
    }
    Ok(Assessment {
        trusted,
        familiarity,
        needs_check,
    })
}

/// After the session exists: remembers a familiar environment, or alerts the user of an
/// unfamiliar one. Returns a device cookie for a browser that has none.
pub async fn after_sign_in(
    auth: &Auth,
    ctx: &Context<'_>,
    user: &User,
    signed: &SignedIn,
    assessment: &Assessment,
    app: &str,
) -> Option<String> {
    let given = ctx.device.filter(|d| browsers::token_key(d).is_some());
    let new_device = given.is_none().then(browsers::new_token);
    let device = given.map_or_else(|| new_device.clone().unwrap_or_default(), str::to_owned);
    match assessment.familiarity {
        Familiarity::Unfamiliar => alert(auth, ctx, user, signed, app).await,
        Familiarity::FirstSignIn | Familiarity::Known if !assessment.needs_check => {
            remember(auth, ctx, &user.name, &device).await
        }
        _ => {}
    }
    new_device
}

/// Remembers the browser and network of a sign-in that passed every check. Best effort.
async fn remember(auth: &Auth, ctx: &Context<'_>, user: &str, device: &str) {
    let place = place(ctx);
    let now = auth.clock.now_ms();
    if let Err(e) =
        browsers::remember_environment(&auth.store, user, device, ctx.client, &place, now).await
    {
        tracing::error!(target: LOG, %user, error = %e, "could not remember a sign-in environment");
    }
}

fn place(ctx: &Context<'_>) -> Place {
    Place {
        browser: crate::user_agent::describe(ctx.user_agent),
        address: ctx.client.to_string(),
    }
}

/// The session passed its environment check (by a second factor or an emailed code): the
/// browser and network become known.
pub async fn environment_checked(auth: &Auth, ctx: &Context<'_>, who: &Identity) {
    if let Some(device) = ctx.device {
        remember(auth, ctx, &who.user.name, device).await;
    }
    audit(auth, ctx, &who.user.name, "environment_checked", "").await;
}

/// What a "this wasn't me" link knows of the sign-in it came with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockLink {
    pub user: String,
    pub at_ms: u64,
    pub address: String,
    pub browser: String,
    pub app: String,
    /// The session of that sign-in (its store key, base64url).
    pub session: String,
}

fn lock_key(token: &str) -> Option<String> {
    browsers::token_key(token)?;
    Some(format!(
        "lock:{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
    ))
}

/// Sends the sign-in alert with a fresh "this wasn't me" link. Best effort (logged).
async fn alert(auth: &Auth, ctx: &Context<'_>, user: &User, signed: &SignedIn, app: &str) {
    let now = auth.clock.now_ms();
    let token = browsers::new_token();
    let Some(key) = lock_key(&token) else {
        return;
    };
    let session = crate::session::key_of(&signed.id).unwrap_or_default();
    let link = LockLink {
        user: user.name.clone(),
        at_ms: now,
        address: ctx.client.to_string(),
        browser: crate::user_agent::describe(ctx.user_agent),
        app: app.to_owned(),
        session: URL_SAFE_NO_PAD.encode(session),
    };
    let expires = now.saturating_add(LOCK_LINK_TTL.as_millis() as u64);
    if let Err(e) = progress::save(&auth.store, &key, &user.name, "lock", &link, expires).await {
        tracing::error!(target: LOG, user = %user.name, error = %e, "could not keep a lock link; the alert goes without it");
    }
    let url = format!("{}/lock?token={token}", ctx.portal_url());
    let origin = notice::origin(auth, ctx);
    let kind = MessageKind::SignInAlert {
        origin: &origin,
        app,
    };
    notice::tell_with_link(auth, ctx, user, kind, &url).await;
    audit(auth, ctx, &user.name, "sign_in_alert", app).await;
}

/// The sign-in a "this wasn't me" token was sent for, if the token is live (not consumed).
pub async fn lock_link(auth: &Auth, token: &str) -> Result<Option<LockLink>, Fault> {
    let Some(key) = lock_key(token) else {
        return Ok(None);
    };
    let loaded = progress::load::<LockLink>(&auth.store, &key, auth.clock.now_ms())
        .await
        .map_err(|e| fault("could not read a lock link")(&e))?;
    Ok(loaded.map(|l| l.value))
}

/// "This wasn't me": takes the token once and locks the account. `None` for a token that is
/// unknown, used or expired.
pub async fn lock_by_link(
    auth: &Auth,
    ctx: &Context<'_>,
    token: &str,
) -> Result<Option<LockLink>, Fault> {
    let Some(key) = lock_key(token) else {
        return Ok(None);
    };
    let now = auth.clock.now_ms();
    let taken = auth
        .store
        .challenges()
        .take_challenge(&key, now)
        .await
        .map_err(|e| fault("could not take a lock link")(&e))?;
    let Some(link) = taken.and_then(|ch| serde_json::from_slice::<LockLink>(&ch.data).ok()) else {
        return Ok(None);
    };
    lock(auth, ctx, &link.user, "link").await?;
    Ok(Some(link))
}

/// Locks `user`'s account (see `lockout`), drops the sessions from this gateway's memory and
/// tells the user and the operator.
pub async fn lock(
    auth: &Auth,
    ctx: &Context<'_>,
    user: &str,
    how: &'static str,
) -> Result<(), Fault> {
    let now = auth.clock.now_ms();
    let locked = crate::lockout::lock(&auth.store, user, now)
        .await
        .map_err(|e| fault("could not lock an account")(&e))?;
    auth.sessions
        .end_user(user)
        .await
        .map_err(|e| fault("could not end the sessions of a locked account")(&e))?;
    tracing::warn!(target: LOG, %user, client = %ctx.client, sessions = locked.sessions.len(), cancelled = locked.cancelled, how, "account locked");
    crate::metrics::lock(how);
    audit(auth, ctx, user, "account_locked", how).await;
    if let Some(u) = auth.users.get(user) {
        let origin = notice::origin(auth, ctx);
        let reset = format!("{}/reset", ctx.portal_url());
        notice::tell_with_link(
            auth,
            ctx,
            &u,
            MessageKind::AccountLocked { origin: &origin },
            &reset,
        )
        .await;
        notice::tell_operator(
            auth,
            ctx,
            &u,
            MessageKind::AccountLocked { origin: &origin },
        )
        .await;
    }
    Ok(())
}

/// Sends the code for the environment check to the account email.
pub async fn send_check_code(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
) -> Result<(), Refused> {
    if !who.session.origin.needs_check {
        return Ok(());
    }
    let Some(email) = who.user.email.clone() else {
        return Err(Refused::NoEmail);
    };
    let pending = send_code(auth, ctx, who, &email, CodePurpose::SignIn).await?;
    let expires = pending.expires_ms();
    progress::save(
        &auth.store,
        &check_key(who),
        &who.user.name,
        "check",
        &pending,
        expires,
    )
    .await?;
    Ok(())
}

fn check_key(who: &Identity) -> String {
    session_key("check", &who.key)
}

/// Whether a check code was sent to this session and can still be entered.
pub async fn check_code_sent(auth: &Auth, who: &Identity) -> Result<bool, Refused> {
    let now = auth.clock.now_ms();
    Ok(
        progress::load::<PendingCode>(&auth.store, &check_key(who), now)
            .await?
            .is_some(),
    )
}

/// Passes the environment check with the emailed code: a new session without the mark.
pub async fn pass_check(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<SignedIn, Refused> {
    setup::not_banned(auth, ctx, who)?;
    let (key, now) = (auth.factors.code_key(), auth.clock.now_ms());
    let checked = progress::update(
        &auth.store,
        &check_key(who),
        &who.user.name,
        "check",
        now,
        |p: &mut PendingCode| {
            let c = p.check(key, code, now);
            (
                c,
                !matches!(
                    c,
                    CodeCheck::Accepted | CodeCheck::Expired | CodeCheck::Exhausted
                ),
            )
        },
    )
    .await?;
    match checked {
        Some(CodeCheck::Accepted) => {}
        Some(CodeCheck::Expired | CodeCheck::Exhausted) | None => {
            return Err(setup::failed(auth, ctx, who, Refused::Expired))
        }
        Some(_) => return Err(setup::failed(auth, ctx, who, Refused::Wrong)),
    }
    let signed = finish(auth, &who.user.name, who.session.amr, Some(&who.key))
        .await
        .map_err(|Fault| Refused::Fault)?;
    environment_checked(auth, ctx, who).await;
    Ok(signed)
}
