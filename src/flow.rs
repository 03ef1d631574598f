//! The sign-in flow: one state machine that the portal's pages (and later forward-auth,
//! approval and upstream-login callbacks) call. Handlers parse a request, call one function here,
//! and render what it returns; what happens, in what order, under which limits, with which
//! notices, is decided here.
//!
//! ```text
//!   no session ──sign_in (password)──▶ 1fa ──┬─ has a second factor ──pass_second_factor──▶ 2fa
//!                                             └─ has none ──▶ guide ─┬─ defer ("later") ──▶ 1fa, deferred
//!                                                                    └─ setup::activate ──▶ 2fa
//!   2fa ──confirm (a current code)──▶ 2fa with a fresh proof ──▶ change::* (replace, remove...)
//!   any ──sign_out──▶ no session
//! ```
//!
//! Every arrow that authenticates ends the same way ([`finish`]): the browser's old session
//! ends and a new one starts with the methods proven so far (a new ID at every step, ASVS 4.0.3 3.2.1).
//! Second-factor answers are checked in one place ([`check_factor`]): under the account's
//! failure limits, replays and bans reported to the user. Setup progress and changes in flight
//! live in the store (`flow::progress`), so they survive a restart and are seen by every
//! gateway on the same database.

pub mod approvals;
pub mod browsers;
pub mod certificates;
pub mod change;
pub mod codes;
pub mod grace;
pub mod notice;
pub mod passkeys;
pub mod password;
pub(crate) mod progress;
pub mod protect;
pub mod sends;
pub mod setup;

use std::net::IpAddr;
use std::sync::Arc;

use crate::amr::{Amr, AuthLevel};
use crate::auth::{Auth, Identity};
use crate::factor::{FactorKind, Verdict};
use crate::i18n::Lang;
use crate::notify::MessageKind;
use crate::regulation::{code_key, Refusal};
use crate::session::{Origin, Session, SessionKey};
use crate::store::{AccountRecord, AuditEvent};
use crate::users::{normalize_username, User, VerifyError};

const LOG: &str = "stepgate::flow";

/// Who is acting, from where, in which language: what every step needs besides its input.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The client address (socket or trusted proxy).
    pub client: IpAddr,
    pub user_agent: Option<&'a str>,
    /// The language of the page, and so of the messages the step sends.
    pub lang: Lang,
    /// The operator's service name, for messages.
    pub service: &'a str,
    /// The browser's device cookie and trusted-browser cookie, if it sent them.
    pub device: Option<&'a str>,
    pub trust: Option<&'a str>,
    /// `scheme://host[:port]` of the request and the portal prefix: where links in messages
    /// lead.
    pub origin: &'a str,
    pub prefix: &'a str,
}

impl Context<'_> {
    /// The portal's address as this request reached it (`https://host/_stepgate`).
    pub fn portal_url(&self) -> String {
        format!("{}{}", self.origin, self.prefix)
    }
}

/// A new session for the browser: the ID goes into its cookie.
#[derive(Debug)]
#[must_use]
pub struct SignedIn {
    pub id: String,
    pub session: Arc<Session>,
}

impl SignedIn {
    /// `who`, now in this new session (for a step that goes on in the same request).
    pub fn identity(&self, who: &Identity) -> Identity {
        Identity {
            key: crate::session::key_of(&self.id).unwrap_or(who.key),
            session: Arc::clone(&self.session),
            user: Arc::clone(&who.user),
            second_factor: who.second_factor,
            certificate: who.certificate.clone(),
        }
    }
}

/// A store, session or factor fault: the caller answers 503 (fail closed). The cause is logged
/// where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault;

/// Logs a fault with its cause and turns it into [`Fault`].
pub(crate) fn fault(what: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> Fault {
    move |cause| {
        tracing::error!(target: LOG, error = %cause, "{what}");
        Fault
    }
}

/// The ending of every authentication step: `replaces` (the browser's session, if any) ends and
/// a new session for `user` starts with the methods `amr` (a new ID).
pub async fn finish(
    auth: &Auth,
    user: &str,
    amr: Amr,
    replaces: Option<&SessionKey>,
) -> Result<SignedIn, Fault> {
    let (id, session) = auth
        .sessions
        .create(user, amr, replaces)
        .await
        .map_err(|e| fault("could not create a session")(&e))?;
    Ok(SignedIn { id, session })
}

/// Appends to the audit trail; best effort (a failure is logged, the step stands).
pub async fn audit(auth: &Auth, ctx: &Context<'_>, user: &str, event: &str, detail: &str) {
    let e = AuditEvent {
        at_ms: auth.clock.now_ms(),
        user: user.to_owned(),
        event: event.to_owned(),
        client: Some(ctx.client.to_string()),
        detail: detail.to_owned(),
    };
    auth.audit.record(e).await;
}

/// Why a password sign-in did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SignInRefused {
    /// Unknown user, wrong password, disabled user or a ban: one generic failure (ASVS 5.0 6.3.8).
    Failed,
    /// Too many password checks waiting: shed (503), not a fault.
    Busy,
    Fault,
}

/// What the sign-in form carries besides the credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignInChoices<'a> {
    /// "Keep me signed in": a saved sign-in, if the operator offers them.
    pub keep: bool,
    /// The app the user is signing in to (the host of `rd`), for the sign-in alert.
    pub app: &'a str,
}

/// A sign-in that happened.
#[derive(Debug)]
pub struct SignInDone {
    pub signed: SignedIn,
    pub user: Arc<User>,
    /// A device cookie to give the browser (it had none).
    pub new_device: Option<String>,
}

/// Signs in with a password. One generic failure for an unknown user, a wrong password, a
/// disabled or locked user and a ban; unknown and disabled users still cost one password hash
/// (against a dummy), so timing does not tell them apart; a ban is answered without hashing.
/// `previous` (the browser's session, if any) ends.
///
/// The password is the user's own (set with change or reset, kept in the store) while the
/// users file still has the hash it replaced, else the file's. A trusted browser of this user
/// stands in for the second factor (`amr` gets `remembered`). A sign-in from an environment the
/// account does not know is marked for a check and alerts the user (`flow::protect`).
pub async fn sign_in(
    auth: &Auth,
    ctx: &Context<'_>,
    raw_name: &str,
    password: &str,
    choices: SignInChoices<'_>,
    previous: Option<&SessionKey>,
) -> Result<SignInDone, SignInRefused> {
    let out = password_sign_in(auth, ctx, raw_name, password, choices, previous).await;
    crate::metrics::sign_in(match &out {
        Ok(_) => "success",
        Err(SignInRefused::Failed) => "failure",
        Err(SignInRefused::Busy) => "busy",
        Err(SignInRefused::Fault) => "error",
    });
    out
}

async fn password_sign_in(
    auth: &Auth,
    ctx: &Context<'_>,
    raw_name: &str,
    password: &str,
    choices: SignInChoices<'_>,
    previous: Option<&SessionKey>,
) -> Result<SignInDone, SignInRefused> {
    let Some(name) = normalize_username(raw_name) else {
        // Not a possible user name: the same answer as a wrong password, after the same work.
        let _ = auth.verifier.verify(None, password).await;
        return Err(SignInRefused::Failed);
    };
    // The user name or the account's email: one account, one failure counter either way.
    let user = auth.users.find(&name);
    let name = user.as_ref().map_or(name, |u| u.name.clone());
    // The attempt is reserved before the password is hashed, so a burst of attempts in
    // parallel has no more passwords checked than the same attempts one after the other.
    let shared = auth.shared_limits.as_ref();
    let attempt = match auth
        .regulator
        .reserve_everywhere(shared, &name, ctx.client)
        .await
    {
        Ok(attempt) => attempt,
        Err(Refusal::Until(until_ms)) => {
            tracing::info!(target: "stepgate::regulation", user = %name, client = %ctx.client, until_ms, "sign-in refused during a ban");
            audit(auth, ctx, &name, "sign_in_banned", "").await;
            return Err(SignInRefused::Failed);
        }
        Err(Refusal::Fault) => return Err(SignInRefused::Fault),
    };
    let account = match &user {
        Some(u) => Some(
            auth.store
                .credentials()
                .account(&u.name)
                .await
                .map_err(|e| {
                    tracing::error!(target: LOG, error = %e, "could not read the account");
                    SignInRefused::Fault
                })?,
        ),
        None => None,
    };
    let own = account
        .as_ref()
        .and_then(|a| own_password(user.as_deref(), a));
    let lane = hashing_lane(auth, ctx, user.as_deref()).await;
    let ok = match auth
        .verifier
        .verify_with(user.as_deref(), own, password, lane)
        .await
    {
        Ok(ok) => ok,
        Err(VerifyError::Busy(waiting)) => {
            // Load shedding, not a fault: under a flood this happens per post, so it is not
            // logged at a level that would make the log part of the cost.
            tracing::debug!(target: LOG, waiting, "sign-in refused: password checks busy");
            return Err(SignInRefused::Busy);
        }
        Err(e) => {
            tracing::error!(target: LOG, error = %e, "password verification failed");
            return Err(SignInRefused::Fault);
        }
    };
    let locked = account.as_ref().is_some_and(|a| a.locked_ms.is_some());
    let Some(user) = user.filter(|u| ok && !u.disabled && !locked) else {
        if ok && locked {
            // The right password of a locked account: the same answer, no failure counted.
            tracing::info!(target: LOG, user = %name, client = %ctx.client, "sign-in refused: account locked");
            audit(auth, ctx, &name, "sign_in_locked", "").await;
            return Err(SignInRefused::Failed);
        }
        let banned = attempt.failed().await;
        tracing::info!(target: LOG, user = %name, client = %ctx.client, "sign-in failed");
        let event = if banned.is_some() {
            "sign_in_failed_banned"
        } else {
            "sign_in_failed"
        };
        audit(auth, ctx, &name, event, "").await;
        return Err(SignInRefused::Failed);
    };
    attempt.succeeded().await;
    let checked = protect::assess(auth, ctx, &user)
        .await
        .map_err(|Fault| SignInRefused::Fault)?;
    let mut amr = Amr::PASSWORD;
    if checked.trusted.is_some() {
        amr = amr.with(crate::amr::Method::Remembered);
    }
    let origin = Origin {
        client: ctx.client.to_string(),
        agent: crate::user_agent::describe(ctx.user_agent),
        persistent: choices.keep && auth.sessions.config().saved_lifetime.is_some(),
        needs_check: checked.needs_check,
        trusted: checked.trusted.clone().unwrap_or_default(),
    };
    let (id, session) = auth
        .sessions
        .start(&user.name, amr, previous, origin)
        .await
        .map_err(|e| fault("could not create a session")(&e))
        .map_err(|Fault| SignInRefused::Fault)?;
    let signed = SignedIn { id, session };
    let new_device = protect::after_sign_in(auth, ctx, &user, &signed, &checked, choices.app).await;
    let detail = match (&checked.trusted, checked.needs_check) {
        (Some(_), _) => "password, trusted browser",
        (None, true) => "password, unfamiliar environment",
        (None, false) => "password",
    };
    tracing::info!(target: LOG, user = %user.name, client = %ctx.client, detail, "signed in");
    audit(auth, ctx, &user.name, "sign_in", detail).await;
    Ok(SignInDone {
        signed,
        user,
        new_device,
    })
}

/// The hashing lane of a sign-in: [`Lane::Known`](crate::users::Lane) when the user signed in
/// from this address lately (the failure limits' known addresses) or from this browser before
/// (its device cookie), so that a flood of attempts from elsewhere leaves the owner a way in.
/// A store fault reading the browsers gives the general lane (the check itself still runs).
async fn hashing_lane(auth: &Auth, ctx: &Context<'_>, user: Option<&User>) -> crate::users::Lane {
    use crate::users::Lane;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Lane::General;
    };
    if auth.regulator.is_known_address(&user.name, ctx.client) {
        return Lane::Known;
    }
    match ctx.device {
        Some(device) => {
            match crate::browsers::knows_device(&auth.store, &user.name, device).await {
                Ok(true) => Lane::Known,
                _ => Lane::General,
            }
        }
        None => Lane::General,
    }
}

/// The user's own password hash, if they set one and the users file still has the hash it
/// replaced (an operator who writes a new hash into the file overrides it).
fn own_password<'a>(user: Option<&User>, account: &'a AccountRecord) -> Option<&'a str> {
    let user = user?;
    let base = account.password_base.as_deref()?;
    (base == user.file_hash_fingerprint())
        .then_some(account.password_hash.as_deref())
        .flatten()
}

/// Ends the browser's session.
pub async fn sign_out(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<(), Fault> {
    auth.sessions
        .end(&who.key)
        .await
        .map_err(|e| fault("could not end a session")(&e))?;
    tracing::info!(target: LOG, user = %who.user.name, "signed out");
    audit(auth, ctx, &who.user.name, "sign_out", "").await;
    Ok(())
}

/// Why a second-factor answer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum FactorRefused {
    /// A ban on the account's codes is running: even a right answer is refused.
    Banned {
        until_ms: u64,
    },
    Wrong,
    /// A one-time value already used (reported to the user: someone may have watched it).
    Replayed,
    /// The user has no such factor (removed meanwhile).
    NotEnrolled,
    /// No code pending (never sent, ran out, used, or tried too often): send a new one.
    Expired,
    /// An approval not decided yet: wait (not a try).
    Pending,
    /// The approver denied it (counted when they decided).
    Denied,
    Fault,
}

/// Checks `answer` with `who`'s factor of `kind` under the account's failure limits (by user,
/// and by user and address, in a namespace of their own: a correct password does not buy more
/// tries). A wrong or replayed answer counts; a replay, a ban it earns and a used recovery code
/// are reported to the user (ASVS 5.0 6.3.5; RFC 6238 §5.2).
pub async fn check_factor(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    kind: FactorKind,
    answer: &str,
) -> Result<FactorKind, FactorRefused> {
    check_factor_of(auth, ctx, &who.user, kind, answer).await
}

/// [`check_factor`] for a user who is not signed in (a password reset).
pub async fn check_factor_of(
    auth: &Auth,
    ctx: &Context<'_>,
    account: &User,
    kind: FactorKind,
    answer: &str,
) -> Result<FactorKind, FactorRefused> {
    let user = &account.name;
    let key = code_key(user);
    // Reserved before the answer is checked, as for passwords (see `sign_in`).
    let shared = auth.shared_limits.as_ref();
    let attempt = match auth
        .regulator
        .reserve_everywhere(shared, &key, ctx.client)
        .await
    {
        Ok(attempt) => attempt,
        Err(Refusal::Until(until_ms)) => {
            tracing::info!(target: "stepgate::regulation", %user, client = %ctx.client, until_ms, "second factor refused during a ban");
            crate::metrics::second_factor(kind.as_str(), "banned");
            return Err(FactorRefused::Banned { until_ms });
        }
        Err(Refusal::Fault) => return Err(FactorRefused::Fault),
    };
    let verdict = auth.factors.verify(kind, user, answer).await;
    count_verdict(auth, ctx, account, kind, verdict, Some(attempt)).await
}

/// The accounting of [`check_factor_of`] for a verdict reached elsewhere (a passkey
/// ceremony): a success clears the account's failures, a wrong or replayed answer counts, a
/// fault fails closed. The caller checked the ban first, or reserved the attempt (`attempt`,
/// settled here).
pub(crate) async fn count_verdict(
    auth: &Auth,
    ctx: &Context<'_>,
    account: &User,
    tried: FactorKind,
    verdict: Result<Verdict, crate::factor::FactorError>,
    attempt: Option<crate::regulation::Attempt<'_>>,
) -> Result<FactorKind, FactorRefused> {
    let user = &account.name;
    let key = code_key(user);
    let verdict = verdict.map_err(|e| {
        tracing::error!(target: LOG, %user, error = %e, "could not check a second factor");
        crate::metrics::second_factor(tried.as_str(), "error");
        FactorRefused::Fault
    })?;
    let refused = match verdict {
        Verdict::Accepted { kind, remaining } => {
            match attempt {
                Some(a) => a.succeeded().await,
                None => auth.regulator.record_success(&key, ctx.client),
            }
            tracing::info!(target: LOG, %user, factor = kind.as_str(), "second factor passed");
            crate::metrics::second_factor(kind.as_str(), "passed");
            if let Some(remaining) = remaining {
                let note = MessageKind::RecoveryCodeUsed { remaining };
                notice::tell(auth, ctx, account, note, &[]).await;
            }
            return Ok(kind);
        }
        Verdict::NotEnrolled => return Err(FactorRefused::NotEnrolled),
        // Waiting for, or told of, a decision made on the approver device: no try of this
        // browser's (a wrong number was counted when it was typed).
        Verdict::Pending => return Err(FactorRefused::Pending),
        Verdict::Denied => {
            crate::metrics::second_factor(tried.as_str(), "denied");
            return Err(FactorRefused::Denied);
        }
        Verdict::Expired => FactorRefused::Expired,
        Verdict::Replayed => FactorRefused::Replayed,
        Verdict::Wrong | Verdict::Malformed => FactorRefused::Wrong,
    };
    crate::metrics::second_factor(
        tried.as_str(),
        match refused {
            FactorRefused::Expired => "expired",
            FactorRefused::Replayed => "replayed",
            _ => "wrong",
        },
    );
    let ban = match attempt {
        Some(a) => a.failed().await,
        None => match auth.regulator.record_failure(&key, ctx.client) {
            Some(crate::regulation::Verdict::Banned { until_ms }) => Some(until_ms),
            _ => None,
        },
    };
    tracing::info!(target: LOG, %user, client = %ctx.client, ?refused, "second factor refused");
    if refused == FactorRefused::Replayed {
        notice::tell(auth, ctx, account, MessageKind::CodeReplayed, &[]).await;
    }
    if ban.is_some() {
        let note = MessageKind::SecondFactorFailed;
        notice::tell(auth, ctx, account, note, &[]).await;
    }
    Err(refused)
}

/// Passes the second factor: a new session with the factor's method added (`2fa`).
pub async fn pass_second_factor(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    kind: FactorKind,
    answer: &str,
) -> Result<SignedIn, FactorRefused> {
    let passed = check_factor(auth, ctx, who, kind, answer).await?;
    second_factor_passed(auth, ctx, who, passed).await
}

/// The ending of a passed second factor: a new session with its method added (`2fa`).
pub(crate) async fn second_factor_passed(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    passed: FactorKind,
) -> Result<SignedIn, FactorRefused> {
    let amr = who.session.amr.with(passed.method());
    let signed = finish(auth, &who.user.name, amr, Some(&who.key))
        .await
        .map_err(|Fault| FactorRefused::Fault)?;
    audit(auth, ctx, &who.user.name, "second_factor", passed.as_str()).await;
    if who.session.origin.needs_check {
        protect::environment_checked(auth, ctx, who).await;
    }
    Ok(signed)
}

/// The method a proof is asked with: the authenticator app if the user has one, else SMS (a
/// recovery code is taken in either case).
pub(crate) async fn primary_kind(auth: &Auth, user: &str) -> Result<FactorKind, FactorRefused> {
    let kinds = auth.factors.enrolled_kinds(user).await.map_err(|e| {
        tracing::error!(target: LOG, %user, error = %e, "could not read the user's factors");
        FactorRefused::Fault
    })?;
    Ok(kinds
        .into_iter()
        .find(|k| k.is_primary())
        .unwrap_or(FactorKind::Totp))
}

/// "Confirm it is you" before a change (ASVS 5.0 7.5.1 and 6.4.5; NIST SP 800-63B §6.1.2.3): a current code from the app or a
/// recovery code; a new session whose proof is fresh (see `Session::has_fresh_proof`).
pub async fn confirm(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    answer: &str,
) -> Result<SignedIn, FactorRefused> {
    if who.session.level() != AuthLevel::TwoFactor {
        return Err(FactorRefused::NotEnrolled);
    }
    let kind = primary_kind(auth, &who.user.name).await?;
    let passed = check_factor(auth, ctx, who, kind, answer).await?;
    let amr = who.session.amr.with(passed.method());
    let signed = finish(auth, &who.user.name, amr, Some(&who.key))
        .await
        .map_err(|Fault| FactorRefused::Fault)?;
    audit(auth, ctx, &who.user.name, "confirmed", passed.as_str()).await;
    Ok(signed)
}

#[cfg(test)]
pub(crate) mod tests {
    //! An `Auth` over a real SQLite store in a temporary directory, on a manual clock, with the
    //! quickstart's users and the file outbox: for the flow's own unit tests.

    use std::path::Path;
    use std::sync::Arc;

    use crate::auth::Auth;
    use crate::clock::ManualClock;
    use crate::factor::Factors;
    use crate::notify::{Notifiers, NotifyConfig};
    use crate::regulation::{RegulationConfig, Regulator};
    use crate::session::{SessionConfig, Sessions};
    use crate::store::{Store, StoreConfig};
    use crate::users::{FileDirectory, PasswordVerifier};

    pub(crate) async fn auth(dir: &Path) -> (Auth, Arc<ManualClock>) {
        let clock = ManualClock::new(1_700_000_000_000);
        let store = Store::open(&StoreConfig::default(), dir).expect("store");
        let users = FileDirectory::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/quickstart-users.toml"),
        )
        .expect("users");
        let sessions = Sessions::open(
            store.clone(),
            SessionConfig::default(),
            clock.clone(),
            vec![],
        )
        .await
        .expect("sessions");
        let auth = Auth {
            audit: crate::audit::AuditTrail::store_only(store.clone()),
            sessions,
            users: Arc::new(users),
            verifier: PasswordVerifier::new(1),
            shared_limits: None,
            regulator: Regulator::new(RegulationConfig::default(), clock.clone()),
            signer: crate::assertion::Signer::open(dir, Default::default(), clock.clone())
                .expect("signer"),
            factors: Factors::open(store.clone(), dir, None, clock.clone()).expect("factors"),
            notifiers: Notifiers::build(&NotifyConfig::default(), dir).expect("notifiers"),
            two_factor: Default::default(),
            certificates: crate::certificates::Certificates::new(
                store.clone(),
                clock.clone(),
                vec![],
            ),
            clock: clock.clone(),
            store,
        };
        (auth, clock)
    }
}
