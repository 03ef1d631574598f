//! Registering and removing a user's client certificates (seed 003): both change what stands
//! in for the second factor, so both need a two-factor session with a fresh proof (like every
//! factor change, `flow::change::allowed`); both are told to the user and audited.
//!
//! A certificate uploaded as a file is kept between the page that shows it and the
//! confirmation in the store, under the session (`certstage:<session>`), for ten minutes; one
//! presented on the connection is registered from the connection itself.

use std::time::Duration;

use super::progress::{self, session_key};
use super::{audit, change, fault, notice, Context, Fault};
use crate::auth::{Auth, Identity};
use crate::certificates::{self, Parsed, Problem, Registered};
use crate::notify::MessageKind;

const LOG: &str = "stepgate::certificates";
const STAGE_TTL: Duration = Duration::from_secs(10 * 60);

/// Why a certificate was not registered or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Refused {
    /// Not a two-factor session: pass the second factor first.
    NotTwoFactor,
    /// The proof is not fresh: confirm it is you first.
    NeedsProof,
    /// The certificate itself is refused.
    Certificate(Problem),
    /// Nothing staged (or it expired): upload it again.
    NotStaged,
    /// No such certificate of this user.
    Unknown,
    Fault,
}

impl From<Fault> for Refused {
    fn from(_: Fault) -> Self {
        Refused::Fault
    }
}

async fn allowed(auth: &Auth, who: &Identity) -> Result<(), Refused> {
    match change::allowed(auth, who).await {
        Ok(()) => Ok(()),
        Err(change::Refused::NeedsProof) => Err(Refused::NeedsProof),
        Err(change::Refused::Fault) => Err(Refused::Fault),
        Err(_) => Err(Refused::NotTwoFactor),
    }
}

/// The user's registered certificates.
pub async fn list(auth: &Auth, who: &Identity) -> Result<Vec<Registered>, Fault> {
    certificates::of_user(&auth.store, &who.user.name)
        .await
        .map_err(|e| fault("could not list client certificates")(&e))
}

/// Reads an uploaded file and keeps it for the confirmation; the certificate is checked now,
/// so the page can say at once what is wrong with it.
pub async fn stage(auth: &Auth, who: &Identity, file: &[u8]) -> Result<Parsed, Refused> {
    allowed(auth, who).await?;
    let parsed = certificates::read_file(file).map_err(Refused::Certificate)?;
    precheck(auth, who, &parsed).await?;
    let expires = auth
        .clock
        .now_ms()
        .saturating_add(STAGE_TTL.as_millis() as u64);
    progress::save(
        &auth.store,
        &session_key("certstage", &who.key),
        &who.user.name,
        "certstage",
        &parsed.der,
        expires,
    )
    .await
    .map_err(|e| fault("could not keep an uploaded certificate")(&e))?;
    Ok(parsed)
}

/// The checks before registration: trusted by a certificate listener now, and nobody's yet.
async fn precheck(auth: &Auth, who: &Identity, cert: &Parsed) -> Result<(), Refused> {
    auth.certificates
        .check_anywhere(cert)
        .map_err(Refused::Certificate)?;
    let owner = certificates::owner(&auth.store, &cert.info.fingerprint)
        .await
        .map_err(|e| fault("could not look a certificate up")(&e))?;
    match owner {
        Some(r) if r.user == who.user.name => Err(Refused::Certificate(Problem::AlreadyYours)),
        Some(_) => Err(Refused::Certificate(Problem::Taken)),
        None => Ok(()),
    }
}

/// What is registered: the certificate staged by an upload, or the one on the connection.
pub enum Source<'a> {
    Staged,
    Presented(&'a [u8]),
}

/// Registers a certificate for `who` (fresh proof; checked again now).
pub async fn register(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    source: Source<'_>,
) -> Result<Parsed, Refused> {
    allowed(auth, who).await?;
    let parsed = match source {
        Source::Presented(der) => certificates::parse_der(der).map_err(Refused::Certificate)?,
        Source::Staged => {
            let key = session_key("certstage", &who.key);
            let now = auth.clock.now_ms();
            let staged = progress::load::<Vec<u8>>(&auth.store, &key, now)
                .await
                .map_err(|e| fault("could not read an uploaded certificate")(&e))?
                .ok_or(Refused::NotStaged)?;
            let _ = progress::delete(&auth.store, &key).await;
            certificates::parse_der(&staged.value).map_err(Refused::Certificate)?
        }
    };
    precheck(auth, who, &parsed).await?;
    let user = &who.user.name;
    let now = auth.clock.now_ms();
    certificates::register(&auth.store, user, &parsed, now)
        .await
        .map_err(|e| fault("could not register a certificate")(&e))?
        .map_err(Refused::Certificate)?;
    auth.certificates.changed(&parsed.info.fingerprint);
    tracing::info!(target: LOG, %user, fingerprint = %parsed.info.fingerprint, "client certificate registered");
    let detail = format!("{} {}", parsed.info.fingerprint, parsed.info.subject);
    audit(auth, ctx, user, "certificate_registered", &detail).await;
    let origin = notice::origin(auth, ctx);
    let note = MessageKind::FactorAdded {
        factor: "certificate",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, note, &[]).await;
    Ok(parsed)
}

/// Removes one of `who`'s certificates (fresh proof), with the user's `reason` in the audit
/// trail. Takes effect on the next request, even over a resumed TLS session.
pub async fn remove(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    fingerprint: &str,
    reason: &str,
) -> Result<(), Refused> {
    allowed(auth, who).await?;
    let user = &who.user.name;
    let removed = certificates::remove(&auth.store, user, fingerprint)
        .await
        .map_err(|e| fault("could not remove a certificate")(&e))?;
    if !removed {
        return Err(Refused::Unknown);
    }
    auth.certificates.changed(fingerprint);
    tracing::info!(target: LOG, %user, %fingerprint, "client certificate removed");
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let detail = format!("{fingerprint} {reason}");
    audit(auth, ctx, user, "certificate_removed", detail.trim()).await;
    let origin = notice::origin(auth, ctx);
    let note = MessageKind::FactorRemoved {
        factor: "certificate",
        origin: &origin,
    };
    notice::tell(auth, ctx, &who.user, note, &[]).await;
    Ok(())
}
