//! The user's signed-in devices as a second factor (seeds 000 and 002): approval with number
//! matching, the security code for another device, and adding and removing approver devices.
//!
//! ```text
//!  requesting browser (1fa)                      approver device (2fa, recent, recognised)
//!  ask ──▶ request (number 47, 2 min) ─────────▶ pending: app, time, address, browser
//!  waits (long poll)                             decide: types 47 + approve │ deny │ this wasn't me
//!  pass_second_factor(approve, request id) ◀──── approved (once) ──────────┘
//! ```
//!
//! Rules, in one place:
//! - **Who may decide**: a session at `2fa` by a proof of its own (a trusted browser is none),
//!   whose last proof is younger than `approver_max_age`, on a browser [`devices::recognise`]s
//!   as an approver device *now* (same device cookie, same browser), and never the requesting
//!   session itself. A device whose identity changed must be added again, behind a fresh proof.
//! - **Number matching**: approving needs the number the requesting page shows; a wrong number
//!   denies the request and counts as a failed second factor at the requester's address.
//! - **Approval fatigue**: `approvals_per_window` requests per user per `approval_window`; the
//!   one over starts a cool-down (`approval_block`) and tells the user.
//! - **"This wasn't me"** denies, ends the requesting session, bans its address for every user
//!   and offers to lock the account (`flow::protect::lock`).
//! - **Security code for another device**: shown on an approver device under the same rules,
//!   counted like a sent code (`flow::sends`), checked by the challenge like any code.
//!
//! Every state lives in the store (`devices`), so gateways sharing a database see the same
//! request, decision and device.

use std::net::IpAddr;

use super::{audit, fault, notice, sends, Context, Fault};
use crate::amr::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::devices::{self, Asked, Recognised, Request, State};
use crate::factor::FactorKind;
use crate::notify::MessageKind;
use crate::regulation::code_key;

const LOG: &str = "stepgate::flow";

/// The session key in hex: how a request names the session that made it.
fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a request for approval was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum AskRefused {
    /// The user has no approver device.
    NotEnrolled,
    /// Too many requests: none until then.
    Limited {
        until_ms: u64,
    },
    Fault,
}

/// A fault of the store or the factors, on any of this module's refusals.
macro_rules! from_fault {
    ($($t:ty),*) => {$(
        impl From<Fault> for $t {
            fn from(_: Fault) -> Self {
                <$t>::Fault
            }
        }
    )*};
}
from_fault!(AskRefused, DecideRefused, CodeRefused, AddRefused);

/// The requesting browser asks for approval on the user's devices: a new request replaces any
/// older one. `app` is the host the sign-in is for.
pub async fn ask(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    app: &str,
) -> Result<Request, AskRefused> {
    let user = &who.user.name;
    let kinds = auth.factors.enrolled_kinds(user).await.map_err(|e| {
        tracing::error!(target: LOG, %user, error = %e, "could not read the user's factors");
        AskRefused::Fault
    })?;
    if !kinds.contains(&FactorKind::Approve) {
        return Err(AskRefused::NotEnrolled);
    }
    let settings = auth.two_factor.devices;
    let keys = vec![format!("approve:{user}")];
    let counted = sends::count(auth, settings.approval_limits, keys, user, ctx.client)
        .await
        .map_err(|e| fault("could not count an approval request")(&e))?;
    if let sends::Counted::Blocked { until_ms, started } = counted {
        if started {
            tracing::warn!(target: LOG, %user, client = %ctx.client, "too many approval requests: cool-down");
            audit(auth, ctx, user, "approvals_blocked", "").await;
            notice::tell(auth, ctx, &who.user, MessageKind::ApprovalsBlocked, &[]).await;
        }
        return Err(AskRefused::Limited { until_ms });
    }
    let now = auth.clock.now_ms();
    let requester = hex(&who.key);
    let client = ctx.client.to_string();
    let browser = crate::user_agent::describe(ctx.user_agent);
    let asked = Asked {
        requester: &requester,
        app,
        client: &client,
        browser: &browser,
    };
    let until = now.saturating_add(ms(settings.approval_ttl));
    let request = devices::request(&auth.store, user, asked, now, until)
        .await
        .map_err(|e| fault("could not store an approval request")(&e))?;
    tracing::info!(target: LOG, %user, client = %ctx.client, "approval requested");
    audit(auth, ctx, user, "approval_requested", app).await;
    Ok(request)
}

/// The request the browser of `who` made, if it is still the user's current one.
pub async fn own_request(auth: &Auth, who: &Identity) -> Result<Option<Request>, Fault> {
    let now = auth.clock.now_ms();
    let current = devices::current(&auth.store, &who.user.name, now)
        .await
        .map_err(|e| fault("could not read an approval request")(&e))?;
    Ok(current
        .map(|(r, _)| r)
        .filter(|r| r.requester == hex(&who.key)))
}

/// Why a browser may not act as an approver device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum NotApprover {
    /// The session is not at `2fa` by a proof of its own.
    NotTwoFactor,
    /// Its last proof is older than `approver_max_age`: confirm it is you first.
    NotRecent,
    /// This browser is not one of the user's approver devices.
    Unknown,
    /// It was one, but its identity changed: add it again.
    Changed,
    Fault,
}

/// The approver device `who`'s browser is (its ID), under the rules of the module docs.
pub async fn approver(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
) -> Result<String, NotApprover> {
    let s = &who.session;
    if s.level() != AuthLevel::TwoFactor || s.amr.remembered_only() || s.origin.needs_check {
        return Err(NotApprover::NotTwoFactor);
    }
    let now = auth.clock.now_ms();
    let max_age = ms(auth.two_factor.devices.approver_max_age);
    if now.saturating_sub(s.auth_ms) > max_age {
        return Err(NotApprover::NotRecent);
    }
    let browser = crate::user_agent::describe(ctx.user_agent);
    match devices::recognise(&auth.store, &who.user.name, ctx.device, &browser).await {
        Ok(Recognised::Approver(id)) => Ok(id),
        Ok(Recognised::Changed) => Err(NotApprover::Changed),
        Ok(Recognised::Unknown) => Err(NotApprover::Unknown),
        Err(e) => {
            tracing::error!(target: LOG, error = %e, "could not read the approver devices");
            Err(NotApprover::Fault)
        }
    }
}

/// What an approver device is shown: the pending request, if there is one it may decide.
pub async fn pending(auth: &Auth, who: &Identity) -> Result<Option<Request>, Fault> {
    let now = auth.clock.now_ms();
    let current = devices::current(&auth.store, &who.user.name, now)
        .await
        .map_err(|e| fault("could not read an approval request")(&e))?;
    Ok(current
        .map(|(r, _)| r)
        .filter(|r| r.state == State::Pending && r.requester != hex(&who.key)))
}

/// What the approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    NotMe,
}

impl Decision {
    /// `approve`, `deny`, `not_me`: the form's `decision` values.
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "deny" => Some(Decision::Deny),
            "not_me" => Some(Decision::NotMe),
            _ => None,
        }
    }
}

/// Why a decision was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum DecideRefused {
    NotApprover(NotApprover),
    /// No such request pending (decided, replaced, expired), or it is this session's own.
    Gone,
    /// The number did not match: the request is denied and the failure counted.
    WrongNumber,
    Fault,
}

/// The approver device `who` decides the request `reference` (typing `number` to approve).
pub async fn decide(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    reference: &str,
    number: &str,
    decision: Decision,
) -> Result<Decision, DecideRefused> {
    let approver_id = approver(auth, ctx, who)
        .await
        .map_err(DecideRefused::NotApprover)?;
    let user = &who.user.name;
    let now = auth.clock.now_ms();
    let current = devices::current(&auth.store, user, now)
        .await
        .map_err(|e| fault("could not read an approval request")(&e))?;
    let Some((request, version)) = current.filter(|(r, _)| {
        r.state == State::Pending && r.reference == reference && r.requester != hex(&who.key)
    }) else {
        return Err(DecideRefused::Gone);
    };
    let right_number = number.trim().parse::<u8>().ok() == Some(request.number);
    let to = match decision {
        Decision::Approve if right_number => State::Approved,
        Decision::Approve | Decision::Deny => State::Denied,
        Decision::NotMe => State::NotMe,
    };
    let moved = devices::transition(&auth.store, user, (&request, version), to)
        .await
        .map_err(|e| fault("could not decide an approval request")(&e))?;
    if moved.is_none() {
        return Err(DecideRefused::Gone);
    }
    if let Err(e) = devices::touch(&auth.store, user, &approver_id, now).await {
        tracing::warn!(target: LOG, error = %e, "could not record an approver device's use");
    }
    let requester_addr = request.client.parse::<IpAddr>().ok();
    match (decision, to) {
        (Decision::Approve, State::Denied) => {
            // Typed a number the requesting page did not show: someone else's sign-in, or a
            // guess. It counts against the account's codes at the requester's address.
            if let Some(addr) = requester_addr {
                let _ = auth.regulator.record_failure(&code_key(user), addr);
            }
            tracing::info!(target: LOG, %user, "approval denied: wrong number");
            audit(auth, ctx, user, "approval_wrong_number", &request.client).await;
            Err(DecideRefused::WrongNumber)
        }
        (Decision::NotMe, _) => {
            not_me(auth, ctx, user, &request, requester_addr).await;
            Ok(Decision::NotMe)
        }
        (d, _) => {
            let event = if d == Decision::Approve {
                "approval_approved"
            } else {
                "approval_denied"
            };
            tracing::info!(target: LOG, %user, event, "approval decided");
            audit(auth, ctx, user, event, &request.client).await;
            Ok(d)
        }
    }
}

/// "This wasn't me": the requesting session ends and its address is banned for everyone.
async fn not_me(
    auth: &Auth,
    ctx: &Context<'_>,
    user: &str,
    request: &Request,
    addr: Option<IpAddr>,
) {
    let key = (0..32)
        .map(|i| u8::from_str_radix(request.requester.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .and_then(|v| <[u8; 32]>::try_from(v).ok());
    if let Some(key) = key {
        if let Err(e) = auth.sessions.end(&key).await {
            tracing::error!(target: LOG, error = %e, "could not end a refused requester's session");
        }
    }
    let until = addr.map(|a| auth.regulator.ban_address(a));
    // On every gateway, when they share their limits.
    if let (Some(shared), Some(a)) = (&auth.shared_limits, addr) {
        if shared.ban_address(a).await.is_err() {
            tracing::error!(target: LOG, %user, "could not ban the requester's address on the other gateways (Redis)");
        }
    }
    tracing::warn!(target: LOG, %user, requester = %request.client, ?until, "approval refused: this wasn't me");
    audit(auth, ctx, user, "approval_not_me", &request.client).await;
}

/// Why a security code for another device was not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CodeRefused {
    NotApprover(NotApprover),
    /// Too many codes: none until then.
    Limited {
        until_ms: u64,
    },
    Fault,
}

/// A security code for another device ("sign in on another device"), shown on the approver
/// device `who`, with the time it stops working. A new one replaces the previous one.
pub async fn device_code(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
) -> Result<(String, u64), CodeRefused> {
    approver(auth, ctx, who)
        .await
        .map_err(CodeRefused::NotApprover)?;
    let user = &who.user.name;
    let taken = sends::take(auth, user, "device", ctx.client)
        .await
        .map_err(|e| fault("could not count a security code")(&e))?;
    if let Err(until_ms) = taken {
        return Err(CodeRefused::Limited { until_ms });
    }
    let ttl = auth.two_factor.devices.device_code_ttl;
    let code = auth
        .factors
        .device_codes()
        .issue(user, ttl)
        .await
        .map_err(|e| fault("could not issue a security code")(&e))?;
    audit(auth, ctx, user, "device_code_shown", "").await;
    Ok((code, auth.clock.now_ms().saturating_add(ms(ttl))))
}

/// Why this browser was not made an approver device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum AddRefused {
    /// Not a two-factor session: pass the second factor first.
    NotTwoFactor,
    /// The proof is not fresh: confirm it is you first.
    NeedsProof,
    Fault,
}

/// Makes `who`'s browser an approver device (or verifies it again after its identity changed),
/// behind a fresh proof; tells the user a device was added. Returns the device cookie to set
/// when the browser had none.
pub async fn add_this_device(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
) -> Result<Option<String>, AddRefused> {
    match super::change::allowed(auth, who).await {
        Ok(()) => {}
        Err(super::change::Refused::NeedsProof) => return Err(AddRefused::NeedsProof),
        Err(super::change::Refused::Fault) => return Err(AddRefused::Fault),
        Err(_) => return Err(AddRefused::NotTwoFactor),
    }
    let user = &who.user.name;
    let browser = crate::user_agent::describe(ctx.user_agent);
    let address = ctx.client.to_string();
    let now = auth.clock.now_ms();
    let (device, token) = devices::add(&auth.store, user, ctx.device, (&browser, &address), now)
        .await
        .map_err(|e| fault("could not add an approver device")(&e))?;
    tracing::info!(target: LOG, %user, device = %device.id, "approver device added");
    audit(auth, ctx, user, "approver_added", &browser).await;
    let origin = notice::origin(auth, ctx);
    let note = MessageKind::FactorAdded {
        factor: "approver",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, note, &[]).await;
    Ok((ctx.device != Some(token.as_str())).then_some(token))
}

/// Removes one of `who`'s approver devices (a two-factor session suffices: removing a device
/// weakens nothing an attacker could use); `false` when it was not there.
pub async fn remove_device(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    id: &str,
) -> Result<bool, Fault> {
    let user = &who.user.name;
    let removed = devices::remove(&auth.store, user, id)
        .await
        .map_err(|e| fault("could not remove an approver device")(&e))?;
    if removed {
        audit(auth, ctx, user, "approver_removed", id).await;
        let origin = notice::origin(auth, ctx);
        let note = MessageKind::FactorRemoved {
            factor: "approver",
            origin: &origin,
        };
        notice::tell(auth, ctx, &who.user, note, &[]).await;
    }
    Ok(removed)
}
