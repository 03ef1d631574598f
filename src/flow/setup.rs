//! First-time setup of two-step verification, in three steps:
//!
//! 1. **Confirm it is you.** A stolen password alone must not attach an attacker's
//!    authenticator, so a one-factor session first proves control of the registered email with
//!    a one-time code, or redeems an enrolment token from the operator (`stepgate admin
//!    enrolment-token`). Only a second factor proven in this session minutes ago (a user who
//!    just removed their app and sets up another) stands in for it.
//! 2. **Emergency contact email** (mandatory, as in the seed): the registered address, once
//!    proven, or the address already on file, is accepted as it is; any other gets a code.
//! 3. **The method**, among those the operator offers (`two_factor.methods`): an
//!    **authenticator app** (a fresh 160-bit secret, shown as a QR code by the page, stored only
//!    once a code from the app checks out), or **SMS** (a phone number in E.164, the one in the
//!    users file suggested, stored only once a code sent to it checks out). Then ten recovery
//!    codes are made, the user is told, and the session steps up to `2fa` with a new ID.
//!
//! Setup is for a first factor only: a user who has one is refused (`HasFactor`) and changes it
//! behind a fresh proof instead (`flow::change`); storing it (`Factors::enrol_totp`) never
//! replaces one, even when two setups race.
//!
//! Progress is kept in the store per session for 30 minutes (`flow::progress`): a restart or
//! another gateway carries on from the same step, and a failed send keeps it (the user tries
//! again and loses nothing). The secret shown in step 3 is kept sealed. Codes are the
//! `factor::code` kind: 6 digits, hashed, single use, 5 tries, at most 10 minutes, replaced on
//! resend. Wrong codes also count against the account in the failure limits. Sends are capped
//! per user, destination and address (`flow::sends`), so the gateway cannot be made to spam an
//! inbox.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::progress::{self, session_key};
use super::{audit, finish, notice, Context, SignedIn};
use crate::auth::{Auth, Identity};
use crate::factor::code::{CodeCheck, PendingCode};
use crate::factor::totp::{self, TotpCheck, TotpSecret};
use crate::factor::FactorKind;
use crate::notify::{compose, Channel, MessageKind};
use crate::regulation::{code_key, Verdict};
use crate::store::StoreError;

const LOG: &str = "stepgate::flow";
/// How long a setup may stay unfinished.
pub const SETUP_TTL: Duration = Duration::from_secs(30 * 60);
/// Setups in progress at once; more are refused until some finish or expire.
const MAX_SETUPS: u64 = 100_000;

#[derive(Serialize, Deserialize)]
struct Enrolment {
    proof: Proof,
    contact: Contact,
    /// The secret shown for the app, sealed for the user.
    secret: Option<Vec<u8>>,
    /// The method chosen at step 3 (setups begun before SMS existed read as undecided).
    #[serde(default)]
    method: Chosen,
}

#[derive(Serialize, Deserialize, Default)]
enum Chosen {
    #[default]
    Undecided,
    App,
    /// A code went to this phone; it becomes the factor once the code checks out.
    Phone {
        phone: String,
        code: PendingCode,
    },
}

#[derive(Serialize, Deserialize)]
enum Proof {
    Needed {
        code: Option<PendingCode>,
    },
    /// `email_proven`: the registered email was proven by a code (not by a token).
    Done {
        email_proven: bool,
    },
}

#[derive(Serialize, Deserialize)]
enum Contact {
    Needed,
    Pending { email: String, code: PendingCode },
    Verified(String),
}

/// Where a setup is, for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Confirm it is you; `code_sent`: a code went to the registered email.
    Prove { code_sent: bool },
    /// Enter the emergency email; `suggested`: the address on file, or the registered one.
    Contact { suggested: String },
    /// Enter the code sent to `to`.
    ContactCode { to: String },
    /// Choose a method; `suggested_phone`: the users file's phone, if any.
    Method { suggested_phone: String },
    /// Enter the code sent by SMS to `to`.
    PhoneCode { to: String },
    /// Scan this secret and enter a code from the app.
    App { secret: Secret },
}

/// A new authenticator secret, for the page to show as a QR code, a link and text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn totp(&self) -> TotpSecret {
        TotpSecret::from_bytes(self.0.clone())
    }
}

/// Why a step was not taken. The page shows the setup where it is, with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Refused {
    /// The user has a second factor: setup is not for them.
    HasFactor,
    /// Too many setups in progress on the gateway.
    Busy,
    /// The account's failure limits are banning codes now, until `until_ms`.
    Banned {
        until_ms: u64,
    },
    Wrong,
    /// The code expired or was tried too often: a new one is needed.
    Expired,
    /// The app's code did not match (wrong, or from another time).
    NotYet,
    /// The hour's codes are spent; the next one can be sent at `until_ms`.
    SendLimit {
        until_ms: u64,
    },
    SendFailed,
    BadEmail,
    /// No registered email to send a code to (an enrolment token is the way).
    NoEmail,
    /// Not a phone number in E.164 form.
    BadPhone,
    Fault,
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        tracing::error!(target: LOG, error = %e, "setup: the store failed");
        Refused::Fault
    }
}

impl From<crate::factor::FactorError> for Refused {
    fn from(e: crate::factor::FactorError) -> Self {
        tracing::error!(target: LOG, error = %e, "setup: the factors failed");
        Refused::Fault
    }
}

fn key(who: &Identity) -> String {
    session_key("setup", &who.key)
}

/// Refuses a user who has a second factor (read from the store, not a cache).
async fn first_factor_only(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    if auth.factors.has_second_factor(&who.user.name).await? {
        tracing::info!(target: LOG, user = %who.user.name, "setup refused: the user has a second factor already");
        return Err(Refused::HasFactor);
    }
    Ok(())
}

async fn load(auth: &Auth, who: &Identity) -> Result<Option<Enrolment>, Refused> {
    let now = auth.clock.now_ms();
    Ok(progress::load(&auth.store, &key(who), now)
        .await?
        .map(|l| l.value))
}

/// Applies `change` to the setup (begun if there is none) and returns its outcome.
async fn update<R>(
    auth: &Auth,
    who: &Identity,
    change: impl FnMut(&mut Enrolment) -> R,
) -> Result<R, Refused> {
    let mut change = change;
    let now = auth.clock.now_ms();
    let user = &who.user.name;
    let updated = progress::update(&auth.store, &key(who), user, "setup", now, |e| {
        (change(e), true)
    })
    .await?;
    match updated {
        Some(r) => Ok(r),
        // Expired or never begun (or begun before a restart of a gateway that kept nothing).
        None => {
            begin(auth, who).await?;
            let key = key(who);
            let again =
                progress::update(&auth.store, &key, user, "setup", now, |e| (change(e), true));
            again.await?.ok_or(Refused::Fault)
        }
    }
}

async fn begin(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    let now = auth.clock.now_ms();
    if auth
        .store
        .challenges()
        .count_challenges("setup:", now)
        .await?
        >= MAX_SETUPS
    {
        tracing::warn!(target: LOG, "setup refused: too many setups in progress");
        return Err(Refused::Busy);
    }
    let proof = if who.session.has_fresh_proof(now) {
        Proof::Done {
            email_proven: false,
        }
    } else {
        Proof::Needed { code: None }
    };
    let e = Enrolment {
        proof,
        contact: Contact::Needed,
        secret: None,
        method: Chosen::Undecided,
    };
    let expires = now.saturating_add(SETUP_TTL.as_millis() as u64);
    progress::save(&auth.store, &key(who), &who.user.name, "setup", &e, expires).await?;
    Ok(())
}

/// Where the user's setup is (begun if there is none); makes the app's secret when it is due.
pub async fn stage(auth: &Auth, who: &Identity) -> Result<Stage, Refused> {
    first_factor_only(auth, who).await?;
    let needs_secret = match load(auth, who).await? {
        None => {
            begin(auth, who).await?;
            false
        }
        Some(e) => {
            matches!(e.contact, Contact::Verified(_))
                && e.secret.is_none()
                && (matches!(e.method, Chosen::App) || !offers_sms(auth))
        }
    };
    if needs_secret {
        let sealed = auth
            .factors
            .seal(&who.user.name, TotpSecret::generate().as_bytes())?;
        // Kept only if no other request made one meanwhile (one secret per setup).
        update(auth, who, |e| {
            e.secret.get_or_insert_with(|| sealed.clone());
        })
        .await?;
    }
    let e = load(auth, who).await?.ok_or(Refused::Fault)?;
    describe(auth, who, e).await
}

/// Whether setup offers SMS besides the app (then step 3 begins with a choice).
fn offers_sms(auth: &Auth) -> bool {
    auth.two_factor.methods.contains(&FactorKind::Sms)
}

async fn describe(auth: &Auth, who: &Identity, e: Enrolment) -> Result<Stage, Refused> {
    Ok(match (e.proof, e.contact) {
        (Proof::Needed { code }, _) => Stage::Prove {
            code_sent: code.is_some(),
        },
        (_, Contact::Needed) => {
            let on_file = auth.factors.emergency_email(&who.user.name).await?;
            let suggested = on_file.or_else(|| who.user.email.clone());
            Stage::Contact {
                suggested: suggested.unwrap_or_default(),
            }
        }
        (_, Contact::Pending { email, .. }) => Stage::ContactCode { to: email },
        (_, Contact::Verified(_)) if matches!(e.method, Chosen::Undecided) && offers_sms(auth) => {
            Stage::Method {
                suggested_phone: who.user.phone.clone().unwrap_or_default(),
            }
        }
        (_, Contact::Verified(_)) if matches!(e.method, Chosen::Phone { .. }) => match e.method {
            Chosen::Phone { phone, .. } => Stage::PhoneCode { to: phone },
            _ => return Err(Refused::Fault),
        },
        (_, Contact::Verified(_)) => match e.secret {
            Some(sealed) => Stage::App {
                secret: Secret(auth.factors.open_sealed(&who.user.name, &sealed)?),
            },
            // `stage` makes the secret before it describes; a setup without one is broken.
            None => return Err(Refused::Fault),
        },
    })
}

/// What a one-time code is for: it decides the wording of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodePurpose {
    Enrolment,
    EmergencyEmail,
    /// The check of a sign-in from an unfamiliar environment (`flow::protect`).
    SignIn,
    /// A phone being registered for SMS (sent by SMS).
    Phone,
}

/// Sends a one-time code to `to` for `purpose`; the pending code to keep. On failure nothing
/// changes, so the user can simply try again.
pub(crate) async fn send_code(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    to: &str,
    purpose: CodePurpose,
) -> Result<PendingCode, Refused> {
    let user = &who.user.name;
    let taken = match super::sends::take(auth, user, to, ctx.client).await? {
        Ok(taken) => taken,
        Err(until_ms) => return Err(Refused::SendLimit { until_ms }),
    };
    let ttl = Duration::min(auth.two_factor.code_ttl, Duration::from_secs(600));
    let now = auth.clock.now_ms();
    let (code, pending) = PendingCode::issue(auth.factors.code_key(), now, ttl);
    let kind = match purpose {
        CodePurpose::Enrolment => MessageKind::EnrolmentCode { code: &code },
        CodePurpose::EmergencyEmail => MessageKind::EmergencyEmailCode { code: &code },
        CodePurpose::SignIn => MessageKind::SignInCode { code: &code },
        CodePurpose::Phone => MessageKind::PhoneCode { code: &code },
    };
    let channel = if purpose == CodePurpose::Phone {
        Channel::Sms
    } else {
        Channel::Email
    };
    let lang = ctx.lang.tag();
    let msg = compose(
        &kind,
        lang,
        channel,
        to,
        ctx.service,
        &who.user.display_name,
        None,
    );
    match auth.notifiers.send(&msg).await {
        Ok(()) => Ok(pending),
        Err(e) => {
            super::sends::refund(auth, taken).await;
            tracing::error!(target: LOG, %user, error = %e, "could not send a code");
            Err(Refused::SendFailed)
        }
    }
}

/// Refuses a code while the account's codes are banned.
pub(crate) fn not_banned(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<(), Refused> {
    match auth.regulator.check(&code_key(&who.user.name), ctx.client) {
        Verdict::Banned { until_ms } => Err(Refused::Banned { until_ms }),
        Verdict::Allowed => Ok(()),
    }
}

/// Counts a wrong code against the account and says so.
pub(crate) fn failed(auth: &Auth, ctx: &Context<'_>, who: &Identity, why: Refused) -> Refused {
    let _ = auth
        .regulator
        .record_failure(&code_key(&who.user.name), ctx.client);
    tracing::info!(target: LOG, user = %who.user.name, client = %ctx.client, ?why, "setup: a code did not check out");
    why
}

/// Step 1: sends a code to the registered email.
pub async fn send_proof(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    if !matches!(stage(auth, who).await?, Stage::Prove { .. }) {
        return Ok(()); // a stale tab: the page shows where the setup is
    }
    let Some(email) = who.user.email.clone() else {
        return Err(Refused::NoEmail);
    };
    let pending = send_code(auth, ctx, who, &email, CodePurpose::Enrolment).await?;
    update(auth, who, |e| {
        if matches!(e.proof, Proof::Needed { .. }) {
            e.proof = Proof::Needed {
                code: Some(pending.clone()),
            };
        }
    })
    .await
}

/// Shape of an operator's enrolment token (`XXXX-XXXX-XXXX-XXXX-XXXX`), as opposed to a
/// 6-digit code: decides which one an input is checked as, so a token never costs a code
/// attempt and a code is never looked up as a token.
fn looks_like_token(input: &str) -> bool {
    input.chars().filter(|c| c.is_ascii_alphanumeric()).count() >= 16
}

/// Step 1: the emailed code, or an operator's enrolment token.
pub async fn prove(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    input: &str,
) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    if !matches!(stage(auth, who).await?, Stage::Prove { .. }) {
        return Ok(());
    }
    not_banned(auth, ctx, who)?;
    let proven = if looks_like_token(input) {
        auth.factors
            .redeem_enrolment_token(&who.user.name, input)
            .await?
            .then_some(false)
    } else {
        let (key, now) = (auth.factors.code_key(), auth.clock.now_ms());
        let checked = update(auth, who, |e| match &mut e.proof {
            Proof::Needed {
                code: Some(pending),
            } => {
                let check = pending.check(key, input, now);
                if matches!(check, CodeCheck::Expired | CodeCheck::Exhausted) {
                    e.proof = Proof::Needed { code: None };
                }
                Some(check)
            }
            _ => None,
        })
        .await?;
        match checked {
            Some(CodeCheck::Accepted) => Some(true),
            Some(CodeCheck::Expired | CodeCheck::Exhausted) => {
                return Err(failed(auth, ctx, who, Refused::Expired))
            }
            _ => None,
        }
    };
    let Some(email_proven) = proven else {
        return Err(failed(auth, ctx, who, Refused::Wrong));
    };
    update(auth, who, |e| e.proof = Proof::Done { email_proven }).await?;
    tracing::info!(target: LOG, user = %who.user.name, "setup: identity confirmed");
    Ok(())
}

/// Step 2: the emergency email. The proven registered address, or the one on file, is taken as
/// it is; another gets a code.
pub async fn contact(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    email: &str,
) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    if !matches!(stage(auth, who).await?, Stage::Contact { .. }) {
        return Ok(());
    }
    let email = email.trim();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(Refused::BadEmail);
    }
    let Some(e) = load(auth, who).await? else {
        return Err(Refused::Fault);
    };
    let proven = matches!(e.proof, Proof::Done { email_proven: true });
    let registered = (who.user.email.as_deref()).is_some_and(|r| r.eq_ignore_ascii_case(email));
    let on_file = (auth.factors.emergency_email(&who.user.name).await?)
        .is_some_and(|f| f.eq_ignore_ascii_case(email));
    let contact = if (proven && registered) || on_file {
        Contact::Verified(email.to_owned())
    } else {
        let code = send_code(auth, ctx, who, email, CodePurpose::EmergencyEmail).await?;
        Contact::Pending {
            email: email.to_owned(),
            code,
        }
    };
    let mut contact = Some(contact);
    update(auth, who, |e| {
        if let Some(c) = contact.take() {
            e.contact = c;
        }
    })
    .await
}

/// Step 2: another address instead of the one waiting for its code.
pub async fn change_contact(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    update(auth, who, |e| {
        if matches!(e.contact, Contact::Pending { .. }) {
            e.contact = Contact::Needed;
        }
    })
    .await
}

/// Step 2: the code sent to a new emergency email.
pub async fn confirm_contact(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    not_banned(auth, ctx, who)?;
    let (key, now) = (auth.factors.code_key(), auth.clock.now_ms());
    let checked = update(auth, who, |e| match &mut e.contact {
        Contact::Pending {
            email,
            code: pending,
        } => {
            let check = pending.check(key, code, now);
            match check {
                CodeCheck::Accepted => e.contact = Contact::Verified(email.clone()),
                CodeCheck::Expired | CodeCheck::Exhausted => e.contact = Contact::Needed,
                CodeCheck::Wrong { .. } | CodeCheck::Malformed => {}
            }
            Some(check)
        }
        _ => None,
    })
    .await?;
    match checked {
        None | Some(CodeCheck::Accepted) => Ok(()),
        Some(CodeCheck::Expired | CodeCheck::Exhausted) => {
            Err(failed(auth, ctx, who, Refused::Expired))
        }
        Some(CodeCheck::Wrong { .. } | CodeCheck::Malformed) => {
            Err(failed(auth, ctx, who, Refused::Wrong))
        }
    }
}

/// Step 3: the method. `app` goes on to the app's secret; `sms` sends a code to `phone`.
pub async fn choose(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    method: &str,
    phone: &str,
) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    if !matches!(stage(auth, who).await?, Stage::Method { .. }) {
        return Ok(());
    }
    let chosen = match method {
        "sms" if offers_sms(auth) => {
            let phone: String = phone
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
                .collect();
            if !crate::users::is_e164(&phone) {
                return Err(Refused::BadPhone);
            }
            let code = send_code(auth, ctx, who, &phone, CodePurpose::Phone).await?;
            Chosen::Phone { phone, code }
        }
        _ => Chosen::App,
    };
    let mut chosen = Some(chosen);
    update(auth, who, |e| {
        if let (Chosen::Undecided, Some(c)) = (&e.method, chosen.take()) {
            e.method = c;
        }
    })
    .await
}

/// Step 3: back to the choice (another number, or the app after all).
pub async fn change_method(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    first_factor_only(auth, who).await?;
    update(auth, who, |e| {
        if matches!(e.method, Chosen::Phone { .. }) {
            e.method = Chosen::Undecided;
        }
    })
    .await
}

/// Step 3 by SMS: the code sent to the phone turns SMS on, like [`activate`] for the app.
pub async fn activate_sms(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<Option<Activated>, Refused> {
    first_factor_only(auth, who).await?;
    not_banned(auth, ctx, who)?;
    let (code_key_, now) = (auth.factors.code_key(), auth.clock.now_ms());
    let checked = update(auth, who, |e| match &mut e.method {
        Chosen::Phone {
            phone,
            code: pending,
        } => {
            let check = pending.check(code_key_, code, now);
            let phone = phone.clone();
            if matches!(check, CodeCheck::Expired | CodeCheck::Exhausted) {
                e.method = Chosen::Undecided;
            }
            Some((check, phone))
        }
        _ => None,
    })
    .await?;
    let phone = match checked {
        None => return Ok(None),
        Some((CodeCheck::Accepted, phone)) => phone,
        Some((CodeCheck::Expired | CodeCheck::Exhausted, _)) => {
            return Err(failed(auth, ctx, who, Refused::Expired))
        }
        Some(_) => return Err(failed(auth, ctx, who, Refused::Wrong)),
    };
    let Some(Enrolment {
        contact: Contact::Verified(contact),
        ..
    }) = load(auth, who).await?
    else {
        return Ok(None);
    };
    let user = &who.user.name;
    let before = notice::addresses(auth, &who.user).await;
    let enrolled = auth.factors.enrol_sms(user, &phone, &contact).await?;
    turned_on(auth, ctx, who, FactorKind::Sms, &before, enrolled).await
}

/// The end of setup once the factor's transaction ran (`enrolled`: the recovery codes, or
/// `None` when a second factor was set up meanwhile in another session, and this one changed
/// nothing). The setup is over, the limits are told of the success, the user is told at the
/// addresses from `before` the change as well, the audit trail records it, and the session
/// steps up with a new ID.
async fn turned_on(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    kind: FactorKind,
    before: &[String],
    enrolled: Option<Vec<String>>,
) -> Result<Option<Activated>, Refused> {
    let user = &who.user.name;
    if let Err(e) = progress::delete(&auth.store, &key(who)).await {
        // The factor is stored either way; a leftover setup expires by itself.
        tracing::error!(target: LOG, error = %e, "could not end a finished setup");
    }
    let Some(recovery_codes) = enrolled else {
        tracing::warn!(target: LOG, %user, "setup refused at the last step: a second factor was set up meanwhile");
        return Err(Refused::HasFactor);
    };
    auth.regulator.record_success(&code_key(user), ctx.client);
    let factor = kind.as_str();
    tracing::info!(target: LOG, %user, factor, "two-step verification turned on");
    let origin = notice::origin(auth, ctx);
    let notice = MessageKind::FactorAdded {
        factor,
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, notice, before).await;
    audit(auth, ctx, user, "factor_added", factor).await;
    let amr = who.session.amr.with(kind.method());
    let signed_in = finish(auth, user, amr, Some(&who.key))
        .await
        .map_err(|_| Refused::Fault)?;
    Ok(Some(Activated {
        signed_in,
        recovery_codes,
    }))
}

/// What finishing the setup gives the user: a new session at `2fa` and the recovery codes to
/// show once.
#[derive(Debug)]
pub struct Activated {
    pub signed_in: SignedIn,
    pub recovery_codes: Vec<String>,
}

/// Step 3: a code from the app turns it on. The factor, the emergency email and ten recovery
/// codes are stored in one transaction, the user is told (at the addresses from before as
/// well), and the session steps up with a new ID.
pub async fn activate(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    code: &str,
) -> Result<Option<Activated>, Refused> {
    first_factor_only(auth, who).await?;
    not_banned(auth, ctx, who)?;
    let Some(e) = load(auth, who).await? else {
        return Ok(None);
    };
    let (Contact::Verified(contact), Some(sealed)) = (&e.contact, &e.secret) else {
        return Ok(None); // not at the last step: the page shows where the setup is
    };
    let user = &who.user.name;
    let secret = TotpSecret::from_bytes(auth.factors.open_sealed(user, sealed)?);
    let step = match totp::check(secret.as_bytes(), code, auth.clock.now_secs(), None) {
        TotpCheck::Accepted { step } => step,
        TotpCheck::Replayed { .. } | TotpCheck::Wrong | TotpCheck::Malformed => {
            return Err(failed(auth, ctx, who, Refused::NotYet))
        }
    };
    let before = notice::addresses(auth, &who.user).await;
    let enrolled = auth
        .factors
        .enrol_totp(user, &secret, step, contact)
        .await?;
    turned_on(auth, ctx, who, FactorKind::Totp, &before, enrolled).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_codes_are_told_apart() {
        assert!(looks_like_token("ABCD-EFGH-JKMN-PQRS-TUVW"));
        assert!(!looks_like_token("123456"));
        assert!(!looks_like_token(" 123 456 "));
    }
}
