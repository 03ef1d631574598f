//! The authenticator app as a second factor: one TOTP secret per user (RFC 6238, `totp`),
//! sealed in the store's `credentials` (kind `totp`), with the last accepted step as its counter.
//!
//! A step is accepted at most once (RFC 6238 §5.2, NIST SP 800-63B §5.1.4.2): the counter moves with one conditional update
//! that also names the sealed secret it was read with, so of two requests (or two gateways)
//! racing with one code exactly one wins, and a code of a secret replaced in the meantime is
//! never recorded against the new one. A secret that does not decrypt is an `Err` (fail closed),
//! never a verdict.

use std::sync::Arc;

use async_trait::async_trait;

use super::totp::{self, TotpCheck, TotpSecret};
use super::{Begun, FactorError, FactorKind, SecondFactor, Shared, Verdict, LOG_TARGET};
use crate::store::Credential;

/// Shortest TOTP secret stored: 128 bits (RFC 4226 §4 R6, ASVS 5.0 6.5.3).
const MIN_SECRET_BYTES: usize = 16;
const KIND: &str = "totp";

pub struct AuthenticatorApp {
    shared: Arc<Shared>,
}

impl AuthenticatorApp {
    pub(crate) fn new(shared: Arc<Shared>) -> AuthenticatorApp {
        AuthenticatorApp { shared }
    }

    /// The stored form of an activated secret: sealed for `user`, `accepted_step` as the last
    /// used step (so the code that proved the activation cannot be replayed). Secrets under 128
    /// bits are refused.
    pub(crate) fn credential(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
    ) -> Result<Credential, FactorError> {
        let bytes = secret.as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(FactorError::SecretTooShort {
                bits: bytes.len() * 8,
            });
        }
        Ok(Credential {
            user: user.to_owned(),
            kind: KIND.to_owned(),
            id: String::new(),
            secret: self.shared.cipher.seal(user, bytes)?,
            counter: accepted_step,
            created_ms: self.shared.clock.now_ms(),
            used_ms: None,
            expires_ms: None,
            data: Vec::new(),
        })
    }

    async fn stored(&self, user: &str) -> Result<Option<Credential>, FactorError> {
        let found = self
            .shared
            .store
            .credentials()
            .credentials(user, Some(KIND))
            .await?;
        Ok(found.into_iter().next())
    }

    /// Swaps in a new secret if the user has one (see `Factors::replace_totp`); `false`, and
    /// nothing written, when the user has none.
    pub(crate) async fn replace(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
    ) -> Result<bool, FactorError> {
        let cred = self.credential(user, secret, accepted_step)?;
        let batch = vec![crate::store::Write::ReplaceExisting(cred)];
        Ok(self.shared.store.credentials().write(batch).await?)
    }
}

#[async_trait]
impl SecondFactor for AuthenticatorApp {
    fn kind(&self) -> FactorKind {
        FactorKind::Totp
    }

    async fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        Ok(self.stored(user).await?.is_some())
    }

    async fn begin(&self, _user: &str) -> Result<Begun, FactorError> {
        Ok(Begun::Ready)
    }

    async fn verify(&self, user: &str, answer: &str) -> Result<Verdict, FactorError> {
        let Some(stored) = self.stored(user).await? else {
            return Ok(Verdict::NotEnrolled);
        };
        let secret = TotpSecret::from_bytes(self.shared.cipher.open(user, &stored.secret)?);
        let now = self.shared.clock.now_secs();
        let step = match totp::check(secret.as_bytes(), answer, now, Some(stored.counter)) {
            TotpCheck::Accepted { step } => step,
            TotpCheck::Replayed { step } => {
                tracing::warn!(target: LOG_TARGET, user, step, "totp code replayed; refused");
                return Ok(Verdict::Replayed);
            }
            TotpCheck::Wrong => return Ok(Verdict::Wrong),
            TotpCheck::Malformed => return Ok(Verdict::Malformed),
        };
        let recorded = self
            .shared
            .store
            .credentials()
            .advance_counter(user, KIND, "", &stored.secret, step)
            .await?;
        if recorded {
            Ok(Verdict::Accepted {
                kind: FactorKind::Totp,
                remaining: None,
            })
        } else {
            tracing::warn!(
                target: LOG_TARGET,
                user,
                step,
                "totp code replayed (lost a race for its step); refused"
            );
            Ok(Verdict::Replayed)
        }
    }

    async fn remove(&self, user: &str) -> Result<bool, FactorError> {
        let removed = self
            .shared
            .store
            .credentials()
            .delete_credential(user, KIND, "")
            .await?;
        if removed {
            tracing::info!(target: LOG_TARGET, user, "totp removed");
        }
        Ok(removed)
    }
}
