//! Codes sent to the user, by SMS to their registered phone or by email to their emergency
//! address ("verify by email instead"), and the security code an approver device shows for
//! another device ("sign in on another device"): three second factors over one mechanism.
//!
//! The pending code (`factor::code`: six CSPRNG digits, kept as a keyed hash, single use, five
//! tries, at most ten minutes) is a challenge in the store under `code:<kind>:<user>`, so a new
//! request replaces the previous code, and a restart or another gateway checks the same one.
//! Which address the code went to is the flow's business (it composes the message in the
//! user's language); this module issues and checks.
//!
//! Enrolment: SMS is a credential of kind `sms` (its data the E.164 number, set once verified
//! by a code sent to it); email is the emergency address every setup makes mandatory. Email is
//! a fallback, not a primary factor: having only an emergency email is not two-step
//! verification.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::code::{CodeCheck, PendingCode};
use super::{Begun, FactorError, FactorKind, SecondFactor, Shared, Verdict, LOG_TARGET};
use crate::store::{Challenge, StoreError, Write};

/// The registered phone of an SMS factor, as its credential's data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PhoneData {
    phone: String,
}

/// SMS or email codes as a second factor.
pub struct SentCodes {
    kind: FactorKind,
    shared: Arc<Shared>,
}

fn corrupt(e: serde_json::Error) -> FactorError {
    FactorError::Store(StoreError::Corrupt {
        what: "a pending code",
        why: e.to_string(),
    })
}

/// Tries a compare-and-swap this many times when two requests check one code at once.
const RETRIES: usize = 8;

impl SentCodes {
    pub(crate) fn new(kind: FactorKind, shared: Arc<Shared>) -> SentCodes {
        SentCodes { kind, shared }
    }

    fn key(&self, user: &str) -> String {
        format!("code:{}:{user}", self.kind.as_str())
    }

    /// A fresh code for `user`, replacing any pending one; returns it for sending.
    pub async fn issue(&self, user: &str, ttl: Duration) -> Result<String, FactorError> {
        let now = self.shared.clock.now_ms();
        let (code, pending) = PendingCode::issue(self.shared.cipher.code_key(), now, ttl);
        let ch = Challenge {
            user: user.to_owned(),
            kind: "code".to_owned(),
            data: serde_json::to_vec(&pending).map_err(corrupt)?,
            expires_ms: pending.expires_ms(),
            version: 0,
        };
        self.shared
            .store
            .challenges()
            .put_challenge(&self.key(user), &ch)
            .await?;
        Ok(code)
    }

    /// Forgets the pending code (it could not be sent).
    pub async fn discard(&self, user: &str) -> Result<(), FactorError> {
        Ok(self
            .shared
            .store
            .challenges()
            .delete_challenge(&self.key(user))
            .await?)
    }

    /// When the pending code runs out, if one is pending.
    pub async fn pending_until(&self, user: &str) -> Result<Option<u64>, FactorError> {
        let now = self.shared.clock.now_ms();
        let ch = self
            .shared
            .store
            .challenges()
            .challenge(&self.key(user), now)
            .await?;
        Ok(ch.map(|c| c.expires_ms))
    }
}

#[async_trait]
impl SecondFactor for SentCodes {
    fn kind(&self) -> FactorKind {
        self.kind
    }

    async fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        let store = self.shared.store.credentials();
        Ok(match self.kind {
            FactorKind::Email => store.account(user).await?.emergency_email.is_some(),
            FactorKind::DeviceCode => !store
                .credentials(user, Some(crate::devices::APPROVER))
                .await?
                .is_empty(),
            _ => !store
                .credentials(user, Some(self.kind.as_str()))
                .await?
                .is_empty(),
        })
    }

    async fn begin(&self, _user: &str) -> Result<Begun, FactorError> {
        // Sending needs the user's language and an address: `flow::codes` does it.
        Ok(Begun::Ready)
    }

    async fn verify(&self, user: &str, answer: &str) -> Result<Verdict, FactorError> {
        if super::code::normalize(answer).is_none() {
            return Ok(Verdict::Malformed);
        }
        let challenges = self.shared.store.challenges();
        let key = self.key(user);
        for _ in 0..RETRIES {
            let now = self.shared.clock.now_ms();
            let Some(ch) = challenges.challenge(&key, now).await? else {
                return Ok(Verdict::Expired);
            };
            let mut pending: PendingCode = serde_json::from_slice(&ch.data).map_err(corrupt)?;
            let check = pending.check(self.shared.cipher.code_key(), answer, now);
            let updated = Challenge {
                data: serde_json::to_vec(&pending).map_err(corrupt)?,
                ..ch.clone()
            };
            // Counted (a wrong try, or the one use) exactly once, even when requests race.
            if !challenges
                .replace_challenge(&key, ch.version, &updated)
                .await?
            {
                continue;
            }
            return Ok(match check {
                CodeCheck::Accepted => {
                    challenges.delete_challenge(&key).await?;
                    tracing::info!(target: LOG_TARGET, user, kind = self.kind.as_str(), "sent code accepted");
                    Verdict::Accepted {
                        kind: self.kind,
                        remaining: None,
                    }
                }
                CodeCheck::Wrong { .. } => Verdict::Wrong,
                CodeCheck::Malformed => Verdict::Malformed,
                CodeCheck::Expired | CodeCheck::Exhausted => Verdict::Expired,
            });
        }
        Err(FactorError::Store(StoreError::Backend {
            backend: "factor",
            message: format!("a pending code kept changing under this request ({RETRIES} tries)"),
        }))
    }

    async fn remove(&self, user: &str) -> Result<bool, FactorError> {
        if matches!(self.kind, FactorKind::Email | FactorKind::DeviceCode) {
            // The emergency email is changed, never removed (every method needs it); security
            // codes go with the approver devices that show them (`devices::remove`).
            return Ok(false);
        }
        let store = self.shared.store.credentials();
        let had = !store
            .credentials(user, Some(self.kind.as_str()))
            .await?
            .is_empty();
        store
            .write(vec![Write::DeleteKinds {
                user: user.to_owned(),
                kinds: vec![self.kind.as_str().to_owned()],
            }])
            .await?;
        Ok(had)
    }
}

/// The credential data of an SMS factor for `phone`.
pub(crate) fn phone_data(phone: &str) -> Vec<u8> {
    serde_json::to_vec(&PhoneData {
        phone: phone.to_owned(),
    })
    .unwrap_or_default()
}

/// The phone an SMS credential's data names.
pub(crate) fn phone_of(data: &[u8]) -> Option<String> {
    serde_json::from_slice::<PhoneData>(data)
        .ok()
        .map(|d| d.phone)
}
