//! Setting up two-step verification (`/setup`), in three steps on one page:
//!
//! 1. **Confirm it is you.** A stolen password alone must not attach an attacker's
//!    authenticator, so a one-factor session first proves control of the registered email with
//!    a one-time code, or redeems an enrolment token from the operator (`stepgate admin
//!    enrolment-token`). A two-factor session has proved more already and skips this step.
//! 2. **Emergency contact email** (mandatory, as in the seed): the registered address, once
//!    proven, or the address already on file, is accepted as it is; any other gets a code.
//! 3. **Authenticator app**: a fresh 160-bit secret as a QR code (SVG), an `otpauth://` link
//!    and the key as text; it is stored (encrypted) only once a code from the app checks out.
//!    Then ten recovery codes are shown once, the user is told by email, and the session steps
//!    up to `2fa` with a new ID.
//!
//! Progress lives in memory, per session, for 30 minutes: a failed send keeps it (the user sees
//! "could not send, try again" and loses nothing), a restart loses it (the user starts again).
//! Codes are the `factor::code` kind: 6 digits, hashed, single use, 5 tries, at most 10 minutes,
//! replaced on resend. Wrong codes also count against the account in the failure limits. Sends
//! are capped per user ([`SENDS_PER_HOUR`]) so the gateway cannot be made to spam an inbox.

use std::time::Duration;

use dashmap::DashMap;
use http::StatusCode;
use minijinja::context;

use super::login::{form_value, lang_of, PortalRequest};
use super::{mask_email, notice_addresses, origin_of, tell, PageContext, Pages, Reply};
use crate::access::AuthLevel;
use crate::auth::{Auth, Identity};
use crate::factor::code::{CodeCheck, PendingCode};
use crate::factor::totp::{self, TotpCheck, TotpSecret};
use crate::i18n::Lang;
use crate::notify::{compose, Channel, MessageKind};
use crate::regulation::{code_key, Verdict};
use crate::routing::HostRouter;
use crate::session::SessionKey;

/// How long a setup may stay unfinished.
const SETUP_TTL_MS: u64 = 30 * 60 * 1000;
/// Codes the gateway sends one user in an hour during setup.
pub const SENDS_PER_HOUR: u32 = 5;
/// Setups in progress the gateway holds at once; more are refused until some finish or expire.
const MAX_SETUPS: usize = 100_000;

/// One user's setup in progress.
pub struct Enrolment {
    started_ms: u64,
    proof: Proof,
    contact: Contact,
    secret: Option<TotpSecret>,
}

enum Proof {
    Needed {
        code: Option<PendingCode>,
    },
    /// `email_proven`: the registered email was proven by a code (not by a token).
    Done {
        email_proven: bool,
    },
}

enum Contact {
    Needed,
    Pending { email: String, code: PendingCode },
    Verified(String),
}

/// A change of an enrolled user's factors in progress, begun with a fresh proof.
pub(crate) enum Change {
    /// A new authenticator app, shown but not yet confirmed by one of its codes.
    Authenticator { started_ms: u64, secret: TotpSecret },
    /// A new emergency email waiting for the code sent to it.
    EmergencyEmail {
        started_ms: u64,
        email: String,
        code: PendingCode,
    },
}

impl Change {
    fn started_ms(&self) -> u64 {
        match self {
            Change::Authenticator { started_ms, .. }
            | Change::EmergencyEmail { started_ms, .. } => *started_ms,
        }
    }
}

/// Setups and changes in progress, by session, and the per-user send budget. Bounded; swept
/// periodically.
#[derive(Default)]
pub struct Enrolments {
    map: DashMap<SessionKey, Enrolment>,
    /// At most one change per session; starting another replaces it.
    pub(crate) changes: DashMap<SessionKey, Change>,
    /// (window start ms, sends in it) per user.
    sends: DashMap<String, (u64, u32)>,
}

impl Enrolments {
    /// Drops setups and changes older than 30 minutes and send windows older than an hour.
    pub fn housekeeping(&self, now_ms: u64) {
        self.map
            .retain(|_, e| now_ms.saturating_sub(e.started_ms) < SETUP_TTL_MS);
        self.changes
            .retain(|_, c| now_ms.saturating_sub(c.started_ms()) < SETUP_TTL_MS);
        self.sends
            .retain(|_, (start, _)| now_ms.saturating_sub(*start) < 3_600_000);
    }

    /// Starts (or restarts) a change for a session; `false` when too many are in progress.
    pub(crate) fn begin_change(&self, key: SessionKey, change: Change) -> bool {
        if self.changes.len() >= MAX_SETUPS && !self.changes.contains_key(&key) {
            return false;
        }
        self.changes.insert(key, change);
        true
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Takes one send from the user's hourly budget; false when it is spent.
    fn take_send(&self, user: &str, now_ms: u64) -> bool {
        if self.sends.len() >= MAX_SETUPS && !self.sends.contains_key(user) {
            return false;
        }
        let mut entry = self.sends.entry(user.to_owned()).or_insert((now_ms, 0));
        let (start, count) = entry.value_mut();
        if now_ms.saturating_sub(*start) >= 3_600_000 {
            *start = now_ms;
            *count = 0;
        }
        if *count >= SENDS_PER_HOUR {
            return false;
        }
        *count += 1;
        true
    }

    /// Returns a spent send when it could not be delivered.
    fn refund_send(&self, user: &str) {
        if let Some(mut e) = self.sends.get_mut(user) {
            e.1 = e.1.saturating_sub(1);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prove,
    Contact,
    ContactCode,
    Totp,
}

impl Stage {
    fn of(e: &Enrolment) -> Stage {
        match (&e.proof, &e.contact) {
            (Proof::Needed { .. }, _) => Stage::Prove,
            (_, Contact::Needed) => Stage::Contact,
            (_, Contact::Pending { .. }) => Stage::ContactCode,
            (_, Contact::Verified(_)) => Stage::Totp,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Prove => "prove",
            Stage::Contact => "contact",
            Stage::ContactCode => "contact_code",
            Stage::Totp => "totp",
        }
    }
}

/// Where a signed-in user who should not be setting up goes instead, if anywhere. Setup is for
/// a first factor only: a user who has one changes it on the account page, behind a fresh
/// proof with it (a one-factor session proves it at the challenge first). Read from the store,
/// not the cache, and a fault refuses (503).
fn elsewhere(auth: &Auth, pages: &Pages, who: &Identity, rd: &str, lang: Lang) -> Option<Reply> {
    match auth.factors.totp_enrolled(&who.user.name) {
        Ok(false) => None,
        Ok(true) => {
            tracing::info!(target: "stepgate::portal", user = %who.user.name, level = who.session.level_str(), "setup refused: the user has a second factor already");
            let account = format!("{}/account", pages.config().prefix);
            Some(Reply::redirect(
                &if who.session.level == AuthLevel::TwoFactor {
                    account
                } else {
                    pages.url_with_rd("/2fa", rd)
                },
            ))
        }
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "setup: could not read the user's second factors");
            Some(pages.error(StatusCode::SERVICE_UNAVAILABLE, lang))
        }
    }
}

fn start(auth: &Auth, who: &Identity) -> Option<()> {
    if auth.enrolments.map.contains_key(&who.key) {
        return Some(());
    }
    if auth.enrolments.map.len() >= MAX_SETUPS {
        return None;
    }
    // Only a second factor proven in this session minutes ago stands in for the emailed code
    // (a user who just removed their app and sets up another); an older two-factor session
    // proves it again, like a one-factor one.
    let proof = if who.session.has_fresh_proof(auth.clock.now_ms()) {
        Proof::Done {
            email_proven: false,
        }
    } else {
        Proof::Needed { code: None }
    };
    auth.enrolments.map.insert(
        who.key,
        Enrolment {
            started_ms: auth.clock.now_ms(),
            proof,
            contact: Contact::Needed,
            secret: None,
        },
    );
    Some(())
}

/// `GET /setup?rd=`: the current step.
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let lang = lang_of(pages, req, None);
    let rd = req.param("rd").unwrap_or_default();
    let who = match pages.signed_in(auth, req, "/setup") {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if let Some(r) = elsewhere(auth, pages, &who, &rd, lang) {
        return r;
    }
    if start(auth, &who).is_none() {
        tracing::warn!(target: "stepgate::portal", "setup refused: too many setups in progress");
        return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
    }
    render(auth, pages, &who, lang, &rd, None, None, StatusCode::OK)
}

#[allow(clippy::too_many_arguments)]
fn render(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    rd: &str,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Reply {
    let Some(mut e) = auth.enrolments.map.get_mut(&who.key) else {
        // Expired between steps: start again.
        return Reply::redirect(&pages.url_with_rd("/setup", rd));
    };
    let stage = Stage::of(&e);
    let mut ctx = context! {
        stage => stage.name(),
        masked_email => who.user.email.as_deref().map(mask_email),
        code_sent => matches!(e.proof, Proof::Needed { code: Some(_) }),
    };
    match stage {
        Stage::Prove => {}
        Stage::Contact => {
            let on_file = auth.factors.emergency_email(&who.user.name).ok().flatten();
            let suggested = on_file
                .or_else(|| who.user.email.clone())
                .unwrap_or_default();
            ctx = context! { ..ctx, ..context! { suggested_email => suggested } };
        }
        Stage::ContactCode => {
            if let Contact::Pending { email, .. } = &e.contact {
                ctx = context! { ..ctx, ..context! { masked_contact => mask_email(email) } };
            }
        }
        Stage::Totp => {
            let secret = e.secret.get_or_insert_with(TotpSecret::generate);
            ctx = context! { ..ctx, ..qr_context(auth, &who.user.name, secret) };
        }
    }
    drop(e);
    let csrf = auth.csrf.token(&who.key);
    pages.page(
        "setup.html",
        status,
        lang,
        PageContext {
            title: &lang.text("setup-title"),
            rd,
            csrf: &csrf,
            switch: Some("/setup"),
        },
        context! { ..ctx, ..context! { error, notice } },
    )
}

/// What `qr.html` shows of a new secret: the QR code (SVG), the key as text and the
/// `otpauth://` link.
pub(crate) fn qr_context(auth: &Auth, user: &str, secret: &TotpSecret) -> minijinja::Value {
    let uri = totp::otpauth_uri(&auth.two_factor.issuer, user, secret);
    let qr = match totp::qr_svg(&uri) {
        Ok(svg) => svg,
        Err(err) => {
            tracing::error!(target: "stepgate::portal", error = %err, "could not draw the QR code");
            String::new()
        }
    };
    context! {
        qr_svg => qr,
        secret => secret.base32_grouped(),
        otpauth_uri => uri,
    }
}

/// Shape of an operator's enrolment token (`XXXX-XXXX-XXXX-XXXX-XXXX`), as opposed to a
/// 6-digit code: decides which one a `code` field is checked as, so a token never costs a code
/// attempt and a code is never looked up as a token.
fn looks_like_token(input: &str) -> bool {
    input.chars().filter(|c| c.is_ascii_alphanumeric()).count() >= 16
}

/// `POST /setup`: one step, named by the hidden `step`.
pub async fn submit(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
) -> Reply {
    let body = &req.body[..];
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/setup") {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if let Some(mut r) = elsewhere(auth, pages, &who, &rd, lang) {
        if r.status == StatusCode::FOUND {
            r.status = StatusCode::SEE_OTHER;
        }
        return r;
    }
    if !auth.enrolments.map.contains_key(&who.key) {
        // Expired or never started (or the gateway restarted): begin again.
        let mut r = Reply::redirect(&pages.url_with_rd("/setup", &rd));
        r.status = StatusCode::SEE_OTHER;
        return r;
    }
    let step = form_value(body, "step").unwrap_or_default();
    let code = form_value(body, "code").unwrap_or_default();
    let again = |error: Option<&str>, notice: Option<&str>, status: StatusCode| {
        render(auth, pages, &who, lang, &rd, error, notice, status)
    };
    // Every step that checks a code is under the account's failure limits.
    if matches!(step.as_str(), "prove" | "contact_code" | "activate") {
        if let Verdict::Banned { .. } = auth.regulator.check(&code_key(&who.user.name), req.client)
        {
            let text = lang.text("too-many-attempts");
            return again(Some(&text), None, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let stage = match auth.enrolments.map.get(&who.key) {
        Some(e) => Stage::of(&e),
        None => return again(None, None, StatusCode::OK),
    };
    match (step.as_str(), stage) {
        ("send", Stage::Prove) => {
            let Some(email) = who.user.email.clone() else {
                return again(None, None, StatusCode::CONFLICT);
            };
            match send_code(auth, pages, &who, lang, &email, true).await {
                Ok(pending) => {
                    if let Some(mut e) = auth.enrolments.map.get_mut(&who.key) {
                        e.proof = Proof::Needed {
                            code: Some(pending),
                        };
                    }
                    again(None, Some(&lang.text("setup-sent")), StatusCode::OK)
                }
                Err((text, status)) => again(Some(&text), None, status),
            }
        }
        ("prove", Stage::Prove) => {
            let verdict = if looks_like_token(&code) {
                match auth.factors.redeem_enrolment_token(&who.user.name, &code) {
                    Ok(true) => Some(Proof::Done {
                        email_proven: false,
                    }),
                    Ok(false) => None,
                    Err(e) => {
                        tracing::error!(target: "stepgate::portal", error = %e, "setup: could not check an enrolment token");
                        let text = lang.text("setup-fault");
                        return again(Some(&text), None, StatusCode::SERVICE_UNAVAILABLE);
                    }
                }
            } else {
                let now = auth.clock.now_ms();
                let mut e = match auth.enrolments.map.get_mut(&who.key) {
                    Some(e) => e,
                    None => return again(None, None, StatusCode::OK),
                };
                match &mut e.proof {
                    Proof::Needed {
                        code: Some(pending),
                    } => match pending.check(&code, now) {
                        CodeCheck::Accepted => Some(Proof::Done { email_proven: true }),
                        CodeCheck::Expired | CodeCheck::Exhausted => {
                            e.proof = Proof::Needed { code: None };
                            drop(e);
                            auth.regulator
                                .record_failure(&code_key(&who.user.name), req.client);
                            let text = lang.text("setup-expired");
                            return again(Some(&text), None, StatusCode::UNAUTHORIZED);
                        }
                        CodeCheck::Wrong { .. } | CodeCheck::Malformed => None,
                    },
                    _ => None,
                }
            };
            match verdict {
                Some(proof) => {
                    if let Some(mut e) = auth.enrolments.map.get_mut(&who.key) {
                        e.proof = proof;
                    }
                    tracing::info!(target: "stepgate::portal", user = %who.user.name, "setup: identity confirmed");
                    again(None, None, StatusCode::OK)
                }
                None => {
                    auth.regulator
                        .record_failure(&code_key(&who.user.name), req.client);
                    tracing::info!(target: "stepgate::portal", user = %who.user.name, client = %req.client, "setup: wrong code or token");
                    again(
                        Some(&lang.text("code-wrong")),
                        None,
                        StatusCode::UNAUTHORIZED,
                    )
                }
            }
        }
        ("contact", Stage::Contact) => {
            let email = form_value(body, "email")
                .unwrap_or_default()
                .trim()
                .to_owned();
            if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
                let text = lang.text("email-invalid");
                return again(Some(&text), None, StatusCode::BAD_REQUEST);
            }
            let proven = auth
                .enrolments
                .map
                .get(&who.key)
                .is_some_and(|e| matches!(e.proof, Proof::Done { email_proven: true }));
            let registered = who
                .user
                .email
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(&email));
            let on_file = auth
                .factors
                .emergency_email(&who.user.name)
                .ok()
                .flatten()
                .is_some_and(|f| f.eq_ignore_ascii_case(&email));
            if (proven && registered) || on_file {
                if let Some(mut e) = auth.enrolments.map.get_mut(&who.key) {
                    e.contact = Contact::Verified(email);
                }
                return again(None, None, StatusCode::OK);
            }
            match send_code(auth, pages, &who, lang, &email, false).await {
                Ok(code) => {
                    if let Some(mut e) = auth.enrolments.map.get_mut(&who.key) {
                        e.contact = Contact::Pending { email, code };
                    }
                    again(None, Some(&lang.text("setup-sent")), StatusCode::OK)
                }
                Err((text, status)) => again(Some(&text), None, status),
            }
        }
        ("contact_change", Stage::ContactCode) => {
            if let Some(mut e) = auth.enrolments.map.get_mut(&who.key) {
                e.contact = Contact::Needed;
            }
            again(None, None, StatusCode::OK)
        }
        ("contact_code", Stage::ContactCode) => {
            let now = auth.clock.now_ms();
            let Some(mut e) = auth.enrolments.map.get_mut(&who.key) else {
                return again(None, None, StatusCode::OK);
            };
            let Contact::Pending {
                email,
                code: pending,
            } = &mut e.contact
            else {
                drop(e);
                return again(None, None, StatusCode::OK);
            };
            match pending.check(&code, now) {
                CodeCheck::Accepted => {
                    e.contact = Contact::Verified(email.clone());
                    drop(e);
                    again(None, None, StatusCode::OK)
                }
                CodeCheck::Expired | CodeCheck::Exhausted => {
                    e.contact = Contact::Needed;
                    drop(e);
                    auth.regulator
                        .record_failure(&code_key(&who.user.name), req.client);
                    let text = lang.text("setup-expired");
                    again(Some(&text), None, StatusCode::UNAUTHORIZED)
                }
                CodeCheck::Wrong { .. } | CodeCheck::Malformed => {
                    drop(e);
                    auth.regulator
                        .record_failure(&code_key(&who.user.name), req.client);
                    again(
                        Some(&lang.text("code-wrong")),
                        None,
                        StatusCode::UNAUTHORIZED,
                    )
                }
            }
        }
        ("activate", Stage::Totp) => {
            activate(auth, pages, router, req, &who, lang, &rd, &code).await
        }
        // A step that does not match where the setup is (a stale tab, a double submit): show
        // where it is now.
        _ => again(None, None, StatusCode::OK),
    }
}

/// Sends a one-time code to `to`; the pending code on success, or the text that says why not.
/// On failure the caller keeps the setup as it was, so the user can simply try again.
pub(crate) async fn send_code(
    auth: &Auth,
    pages: &Pages,
    who: &Identity,
    lang: Lang,
    to: &str,
    enrolment: bool,
) -> Result<PendingCode, (String, StatusCode)> {
    let now = auth.clock.now_ms();
    if !auth.enrolments.take_send(&who.user.name, now) {
        tracing::warn!(target: "stepgate::portal", user = %who.user.name, "setup: code sends over the hourly limit");
        let text = lang.text("code-send-limit");
        return Err((text, StatusCode::TOO_MANY_REQUESTS));
    }
    let ttl = Duration::min(auth.two_factor.code_ttl, Duration::from_secs(600));
    let (code, pending) = PendingCode::issue(now, ttl);
    let kind = if enrolment {
        MessageKind::EnrolmentCode { code: &code }
    } else {
        MessageKind::EmergencyEmailCode { code: &code }
    };
    let msg = compose(
        &kind,
        lang.tag(),
        Channel::Email,
        to,
        &pages.config().service_name,
        &who.user.display_name,
        None,
    );
    match auth.notifiers.send(&msg).await {
        Ok(()) => Ok(pending),
        Err(e) => {
            auth.enrolments.refund_send(&who.user.name);
            tracing::error!(target: "stepgate::portal", user = %who.user.name, error = %e, "setup: could not send a code");
            let text = lang.text("code-send-failed");
            Err((text, StatusCode::SERVICE_UNAVAILABLE))
        }
    }
}

/// The last step: the app's code checks out, so the factor is stored, recovery codes made, the
/// user told, and the session stepped up with a new ID.
#[allow(clippy::too_many_arguments)]
async fn activate(
    auth: &Auth,
    pages: &Pages,
    router: &HostRouter,
    req: &PortalRequest<'_>,
    who: &Identity,
    lang: Lang,
    rd: &str,
    code: &str,
) -> Reply {
    let again = |error: &str, status| render(auth, pages, who, lang, rd, Some(error), None, status);
    let (secret, contact) = match auth.enrolments.map.get(&who.key) {
        Some(e) => match (&e.secret, &e.contact) {
            (Some(s), Contact::Verified(c)) => {
                (TotpSecret::from_bytes(s.as_bytes().to_vec()), c.clone())
            }
            _ => {
                drop(e);
                return render(auth, pages, who, lang, rd, None, None, StatusCode::OK);
            }
        },
        None => return render(auth, pages, who, lang, rd, None, None, StatusCode::OK),
    };
    let step = match totp::check(secret.as_bytes(), code, auth.clock.now_secs(), None) {
        TotpCheck::Accepted { step } => step,
        TotpCheck::Replayed { .. } | TotpCheck::Wrong | TotpCheck::Malformed => {
            auth.regulator
                .record_failure(&code_key(&who.user.name), req.client);
            tracing::info!(target: "stepgate::portal", user = %who.user.name, "setup: the app's code did not match");
            return again(&lang.text("setup-not-yet"), StatusCode::UNAUTHORIZED);
        }
    };
    let before = notice_addresses(auth, &who.user);
    let codes = match auth
        .factors
        .enrol_totp(&who.user.name, &secret, step, &contact)
    {
        Ok(Some(codes)) => codes,
        Ok(None) => {
            // Set up meanwhile in another session: this one changes nothing.
            auth.enrolments.map.remove(&who.key);
            tracing::warn!(target: "stepgate::portal", user = %who.user.name, "setup refused at the last step: a second factor was set up meanwhile");
            let mut r = Reply::redirect(&format!("{}/account", pages.config().prefix));
            r.status = StatusCode::SEE_OTHER;
            return r;
        }
        Err(e) => {
            tracing::error!(target: "stepgate::portal", user = %who.user.name, error = %e, "setup: could not store the factor");
            return again(&lang.text("setup-fault"), StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    auth.enrolments.map.remove(&who.key);
    auth.regulator
        .record_success(&code_key(&who.user.name), req.client);
    tracing::info!(target: "stepgate::portal", user = %who.user.name, "two-step verification turned on (authenticator app)");
    let origin = origin_of(auth, req);
    let kind = MessageKind::FactorAdded {
        factor: "totp",
        origin: &origin,
    };
    tell(auth, pages, &who.user, kind, lang, &before).await;
    auth.assertions.forget_session(&who.key);
    let session = auth.sessions.create(
        &who.user.name,
        AuthLevel::TwoFactor,
        vec!["pwd".to_owned(), "otp".to_owned()],
        Some(&who.key),
    );
    let id = match session {
        Ok((id, _)) => id,
        Err(e) => {
            tracing::error!(target: "stepgate::portal", error = %e, "could not create a session");
            return pages.error(StatusCode::SERVICE_UNAVAILABLE, lang);
        }
    };
    let continue_url = auth.return_to.resolve(Some(rd), &req.origin, router);
    let intro = lang.text("setup-done");
    codes_page(pages, lang, &intro, &codes, &continue_url)
        .with_header("set-cookie", auth.jar(req.tls).set_session(&id))
}

/// The page that shows fresh recovery codes, once.
pub(crate) fn codes_page(
    pages: &Pages,
    lang: Lang,
    intro: &str,
    codes: &[String],
    continue_url: &str,
) -> Reply {
    pages.page(
        "codes.html",
        StatusCode::OK,
        lang,
        PageContext {
            title: &lang.text("codes-title"),
            rd: "",
            csrf: "",
            switch: None,
        },
        context! { intro, codes, continue_url },
    )
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

    #[test]
    fn sends_are_capped_per_user_per_hour_and_refunded_on_failure() {
        let e = Enrolments::default();
        for _ in 0..SENDS_PER_HOUR {
            assert!(e.take_send("alice", 0));
        }
        assert!(!e.take_send("alice", 1000));
        assert!(
            e.take_send("bob", 1000),
            "another user has a budget of their own"
        );
        e.refund_send("alice");
        assert!(e.take_send("alice", 2000));
        assert!(e.take_send("alice", 3_600_000), "a new hour");
        e.housekeeping(2 * 3_600_000 + 1);
        assert!(e.sends.is_empty());
    }
}
