//! Passkeys (WebAuthn) as a second factor, over webauthn-rs (pure Rust, no OpenSSL).
//!
//! Each passkey is one credential of kind `passkey` in the store: `id` is the credential ID
//! (base64url), `data` JSON with the name the user gave it, the serialized `Passkey` (public key,
//! counter, backup state) and when it was last used. A passkey is a primary factor: a user whose
//! only method is passkeys has two-step verification, and a pass adds `hwk` to the session.
//!
//! Ceremonies (registration, authentication) keep their state in the store's challenges under a
//! key the caller binds to the browser's session, for [`CEREMONY_TTL`]; finishing *takes* the
//! state (one caller gets it), so a replayed response, or one for an expired ceremony, fails.
//! webauthn-rs checks the origin against `origins`, the RP ID hash, user presence and user
//! verification (required: the authenticator's PIN or biometric), the signature, and that the
//! signature counter never goes backwards (a cloned authenticator).
//!
//! Credential IDs are unique per user here (a second registration of one ID is refused), not
//! across users: every lookup starts from the signed-in user, so an ID registered under another
//! account can never answer for this one.
//!
//! The user handle is a UUID derived from the user name under the factor key's pepper: stable
//! for a user, and it names nobody to whoever reads the authenticator.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ring::hmac;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::{Begun, FactorError, FactorKind, SecondFactor, Shared, Verdict};
use crate::store::{Challenge, Credential, Write};

const LOG: &str = "stepgate::factor";
const KIND: &str = "passkey";
/// How long a ceremony may take between its options and the authenticator's answer.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest name a user may give a passkey (characters).
pub const NAME_MAX: usize = 64;
/// The most passkeys one user may register (bounded rows, and a bounded `allowCredentials`).
pub const MAX_PER_USER: usize = 20;

/// `[passkeys]`: the relying party, as browsers check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyConfig {
    /// The RP ID: the host passkeys are bound to; every origin is this host or under it.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// The origins (`https://host[:port]`) ceremonies may come from.
    pub origins: Vec<Url>,
    /// Whether a passkey may sign in without the password (a discoverable credential with
    /// user verification); registrations then ask for discoverable credentials.
    pub passwordless: bool,
}

/// The Webauthn relying party for `cfg`; an error names what does not fit.
pub fn relying_party(cfg: &PasskeyConfig) -> Result<Webauthn, FactorError> {
    let (first, rest) = cfg
        .origins
        .split_first()
        .ok_or_else(|| FactorError::Passkey("no origin configured".into()))?;
    let mut builder = WebauthnBuilder::new(&cfg.rp_id, first)
        .map_err(|e| FactorError::Passkey(format!("rp_id and origin {first}: {e}")))?
        .rp_name(&cfg.rp_name)
        .timeout(CEREMONY_TTL);
    for origin in rest {
        builder = builder.append_allowed_origin(origin);
    }
    builder
        .build()
        .map_err(|e| FactorError::Passkey(format!("relying party: {e}")))
}

/// Whether `host` is `rp_id` or a name under it (what browsers require of an origin).
pub fn host_fits(host: &str, rp_id: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let rp_id = rp_id.to_ascii_lowercase();
    host == rp_id || host.ends_with(&format!(".{rp_id}"))
}

/// What the store keeps of one passkey.
#[derive(Serialize, Deserialize)]
struct Stored {
    name: String,
    passkey: Passkey,
    #[serde(default)]
    last_used_ms: Option<u64>,
}

/// One passkey as the user's list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeyInfo {
    /// The credential ID, base64url: what rename and remove name.
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
}

/// A ceremony's state in the store.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    Register { state: PasskeyRegistration },
    Authenticate { state: PasskeyAuthentication },
    SignIn { state: DiscoverableAuthentication },
}

/// Why a registration was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Registered {
    Added,
    /// No ceremony was begun under the key, or it expired, or it was used.
    Expired,
    /// The response does not parse, or does not verify (origin, challenge, UV, signature).
    Rejected,
    /// This passkey is registered already.
    Duplicate,
    /// The user has `MAX_PER_USER` passkeys.
    TooMany,
}

/// The passkey factor. Disabled (no relying party) unless `[passkeys]` is configured.
pub struct Passkeys {
    shared: Arc<Shared>,
    webauthn: Option<Webauthn>,
    passwordless: bool,
}

/// The base64url (no padding) form of a credential ID.
fn id_text(id: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(id)
}

/// A name as kept: trimmed, control characters dropped, at most [`NAME_MAX`] characters;
/// `None` when nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(NAME_MAX)
        .collect();
    let name = name.trim().to_owned();
    (!name.is_empty()).then_some(name)
}

impl Passkeys {
    pub(crate) fn new(shared: Arc<Shared>) -> Passkeys {
        Passkeys {
            shared,
            webauthn: None,
            passwordless: false,
        }
    }

    /// Turns passkeys on with the relying party of `cfg`.
    pub(crate) fn configure(&mut self, cfg: &PasskeyConfig) -> Result<(), FactorError> {
        self.webauthn = Some(relying_party(cfg)?);
        self.passwordless = cfg.passwordless;
        Ok(())
    }

    /// Whether passkeys may sign in without the password (`passkeys.passwordless`).
    pub fn passwordless(&self) -> bool {
        self.enabled() && self.passwordless
    }

    /// Whether the operator configured passkeys.
    pub fn enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    fn rp(&self) -> Result<&Webauthn, FactorError> {
        self.webauthn
            .as_ref()
            .ok_or_else(|| FactorError::Passkey("passkeys are not configured".into()))
    }

    /// The user handle of `user`: 16 bytes of an HMAC of the name under the pepper.
    pub fn handle(&self, user: &str) -> Uuid {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.shared.cipher.pepper());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(b"passkey-user-handle\0");
        ctx.update(user.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&ctx.sign().as_ref()[..16]);
        Uuid::from_bytes(bytes)
    }

    async fn stored(&self, user: &str) -> Result<Vec<(Credential, Stored)>, FactorError> {
        let creds = self
            .shared
            .store
            .credentials()
            .credentials(user, Some(KIND))
            .await?;
        creds
            .into_iter()
            .map(|c| {
                let s = serde_json::from_slice::<Stored>(&c.data).map_err(|e| {
                    FactorError::Passkey(format!("stored passkey of user {user:?}: {e}"))
                })?;
                Ok((c, s))
            })
            .collect()
    }

    /// The user's passkeys, oldest first.
    pub async fn list(&self, user: &str) -> Result<Vec<PasskeyInfo>, FactorError> {
        let mut list: Vec<PasskeyInfo> = self
            .stored(user)
            .await?
            .into_iter()
            .map(|(c, s)| PasskeyInfo {
                id: c.id,
                name: s.name,
                created_ms: c.created_ms,
                last_used_ms: s.last_used_ms,
            })
            .collect();
        list.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(list)
    }

    async fn put_ceremony(
        &self,
        key: &str,
        user: &str,
        ceremony: &Ceremony,
    ) -> Result<(), FactorError> {
        let data = serde_json::to_vec(ceremony)
            .map_err(|e| FactorError::Passkey(format!("ceremony state: {e}")))?;
        let ttl = u64::try_from(CEREMONY_TTL.as_millis()).unwrap_or(u64::MAX);
        let ch = Challenge {
            user: user.to_owned(),
            kind: "passkey".to_owned(),
            data,
            expires_ms: self.shared.clock.now_ms().saturating_add(ttl),
            version: 0,
        };
        self.shared
            .store
            .challenges()
            .put_challenge(key, &ch)
            .await?;
        Ok(())
    }

    /// Takes the ceremony under `key` (one caller gets it), if it is `user`'s and unexpired.
    async fn take_ceremony(&self, key: &str, user: &str) -> Result<Option<Ceremony>, FactorError> {
        let now = self.shared.clock.now_ms();
        let Some(ch) = self
            .shared
            .store
            .challenges()
            .take_challenge(key, now)
            .await?
        else {
            return Ok(None);
        };
        if ch.user != user {
            return Ok(None);
        }
        let ceremony = serde_json::from_slice(&ch.data)
            .map_err(|e| FactorError::Passkey(format!("ceremony state: {e}")))?;
        Ok(Some(ceremony))
    }

    /// Begins registering a new passkey for `user` (`display`: the name the authenticator
    /// shows); the options for `navigator.credentials.create`, as JSON. The state waits under
    /// `key`. `Ok(None)` when the user has [`MAX_PER_USER`] passkeys.
    pub async fn begin_registration(
        &self,
        key: &str,
        user: &str,
        display: &str,
    ) -> Result<Option<String>, FactorError> {
        let rp = self.rp()?;
        let existing = self.stored(user).await?;
        if existing.len() >= MAX_PER_USER {
            return Ok(None);
        }
        let exclude = existing
            .iter()
            .map(|(_, s)| s.passkey.cred_id().clone())
            .collect::<Vec<_>>();
        let (options, state) = rp
            .start_passkey_registration(self.handle(user), user, display, Some(exclude))
            .map_err(|e| FactorError::Passkey(format!("registration options: {e}")))?;
        self.put_ceremony(key, user, &Ceremony::Register { state })
            .await?;
        let mut json = serde_json::to_value(&options)
            .map_err(|e| FactorError::Passkey(format!("registration options: {e}")))?;
        if self.passwordless {
            // A discoverable credential where the authenticator can keep one (the state does
            // not depend on it: webauthn-rs checks no resident-key policy at the finish).
            json["publicKey"]["authenticatorSelection"]["residentKey"] = "preferred".into();
        }
        Ok(Some(json.to_string()))
    }

    /// Finishes the registration under `key` with the browser's `response` (JSON), and keeps the
    /// passkey as `name`.
    pub async fn finish_registration(
        &self,
        key: &str,
        user: &str,
        name: &str,
        response: &str,
    ) -> Result<Registered, FactorError> {
        let rp = self.rp()?;
        let Some(Ceremony::Register { state }) = self.take_ceremony(key, user).await? else {
            return Ok(Registered::Expired);
        };
        let Ok(reg) = serde_json::from_str::<RegisterPublicKeyCredential>(response) else {
            tracing::info!(target: LOG, user, "passkey registration refused: the response does not parse");
            return Ok(Registered::Rejected);
        };
        let passkey = match rp.finish_passkey_registration(&reg, &state) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(target: LOG, user, error = %e, "passkey registration refused");
                return Ok(Registered::Rejected);
            }
        };
        if self.stored(user).await?.len() >= MAX_PER_USER {
            return Ok(Registered::TooMany);
        }
        let id = id_text(passkey.cred_id());
        let stored = Stored {
            name: name.to_owned(),
            passkey,
            last_used_ms: None,
        };
        let cred = Credential {
            user: user.to_owned(),
            kind: KIND.to_owned(),
            id,
            secret: Vec::new(),
            counter: 0,
            created_ms: self.shared.clock.now_ms(),
            used_ms: None,
            expires_ms: None,
            data: encode(&stored)?,
        };
        let added = self
            .shared
            .store
            .credentials()
            .write(vec![Write::InsertNew(cred)])
            .await?;
        Ok(if added {
            tracing::info!(target: LOG, user, "passkey registered");
            Registered::Added
        } else {
            Registered::Duplicate
        })
    }

    /// Begins an authentication with the user's passkeys: the options for
    /// `navigator.credentials.get`, as JSON; the state waits under `key`. `Ok(None)` when the
    /// user has no passkey.
    pub async fn begin_authentication(
        &self,
        key: &str,
        user: &str,
    ) -> Result<Option<String>, FactorError> {
        let rp = self.rp()?;
        let passkeys: Vec<Passkey> = self
            .stored(user)
            .await?
            .into_iter()
            .map(|(_, s)| s.passkey)
            .collect();
        if passkeys.is_empty() {
            return Ok(None);
        }
        let (options, state) = rp
            .start_passkey_authentication(&passkeys)
            .map_err(|e| FactorError::Passkey(format!("authentication options: {e}")))?;
        self.put_ceremony(key, user, &Ceremony::Authenticate { state })
            .await?;
        let json = serde_json::to_string(&options)
            .map_err(|e| FactorError::Passkey(format!("authentication options: {e}")))?;
        Ok(Some(json))
    }

    /// Finishes the authentication under `key` with the browser's `response` (JSON). On
    /// success the passkey's counter, backup state and last use are kept.
    pub async fn finish_authentication(
        &self,
        key: &str,
        user: &str,
        response: &str,
    ) -> Result<Verdict, FactorError> {
        let rp = self.rp()?;
        let Some(Ceremony::Authenticate { state }) = self.take_ceremony(key, user).await? else {
            return Ok(Verdict::Expired);
        };
        let Ok(cred) = serde_json::from_str::<PublicKeyCredential>(response) else {
            tracing::info!(target: LOG, user, "passkey refused: the response does not parse");
            return Ok(Verdict::Wrong);
        };
        let result = match rp.finish_passkey_authentication(&cred, &state) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(target: LOG, user, error = %e, "passkey refused");
                return Ok(Verdict::Wrong);
            }
        };
        let id = id_text(result.cred_id());
        let Some((row, mut stored)) = self
            .stored(user)
            .await?
            .into_iter()
            .find(|(c, _)| c.id == id)
        else {
            // Removed between the options and the answer.
            return Ok(Verdict::NotEnrolled);
        };
        let _ = stored.passkey.update_credential(&result);
        stored.last_used_ms = Some(self.shared.clock.now_ms());
        let updated = Credential {
            data: encode(&stored)?,
            ..row
        };
        let kept = self
            .shared
            .store
            .credentials()
            .write(vec![Write::ReplaceExisting(updated)])
            .await?;
        if !kept {
            return Ok(Verdict::NotEnrolled);
        }
        Ok(Verdict::Accepted {
            kind: FactorKind::Passkey,
            remaining: None,
        })
    }

    /// Begins a sign-in with any discoverable passkey (no user named yet): the options for
    /// `navigator.credentials.get`, as JSON; the state waits under `key`.
    pub async fn begin_sign_in(&self, key: &str) -> Result<String, FactorError> {
        let rp = self.rp()?;
        let (options, state) = rp
            .start_discoverable_authentication()
            .map_err(|e| FactorError::Passkey(format!("sign-in options: {e}")))?;
        self.put_ceremony(key, "", &Ceremony::SignIn { state })
            .await?;
        let mut json = serde_json::to_value(&options)
            .map_err(|e| FactorError::Passkey(format!("sign-in options: {e}")))?;
        // A button press asks, not the autofill of a field (the page has no passkey field).
        if let Some(o) = json.as_object_mut() {
            o.remove("mediation");
        }
        Ok(json.to_string())
    }

    /// The user handle a sign-in `response` claims (unverified: it only says whose passkeys
    /// to check it against); `None` when it does not parse or carries none.
    pub fn claimed_handle(&self, response: &str) -> Option<Uuid> {
        let rp = self.webauthn.as_ref()?;
        let cred = serde_json::from_str::<PublicKeyCredential>(response).ok()?;
        rp.identify_discoverable_authentication(&cred)
            .ok()
            .map(|(handle, _)| handle)
    }

    /// Finishes the sign-in under `key` with `response`, as `user` (found by the claimed
    /// handle). The ceremony is taken whoever the user is, so it answers once. On success the
    /// passkey's counter and last use are kept.
    pub async fn finish_sign_in(
        &self,
        key: &str,
        user: Option<&str>,
        response: &str,
    ) -> Result<Verdict, FactorError> {
        let rp = self.rp()?;
        let Some(Ceremony::SignIn { state }) = self.take_ceremony(key, "").await? else {
            return Ok(Verdict::Expired);
        };
        let Some(user) = user else {
            return Ok(Verdict::NotEnrolled);
        };
        let Ok(cred) = serde_json::from_str::<PublicKeyCredential>(response) else {
            return Ok(Verdict::Wrong);
        };
        let id = id_text(cred.get_credential_id());
        let Some((row, mut stored)) = self
            .stored(user)
            .await?
            .into_iter()
            .find(|(c, _)| c.id == id)
        else {
            return Ok(Verdict::NotEnrolled);
        };
        let result = match rp.finish_discoverable_authentication_v2(&cred, state, &stored.passkey) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(target: LOG, user, error = %e, "passkey sign-in refused");
                return Ok(Verdict::Wrong);
            }
        };
        let _ = stored.passkey.update_credential(&result);
        stored.last_used_ms = Some(self.shared.clock.now_ms());
        let updated = Credential {
            data: encode(&stored)?,
            ..row
        };
        let kept = self
            .shared
            .store
            .credentials()
            .write(vec![Write::ReplaceExisting(updated)])
            .await?;
        if !kept {
            return Ok(Verdict::NotEnrolled);
        }
        Ok(Verdict::Accepted {
            kind: FactorKind::Passkey,
            remaining: None,
        })
    }

    /// Renames one passkey; `false` when the user has no passkey `id`.
    pub async fn rename(&self, user: &str, id: &str, name: &str) -> Result<bool, FactorError> {
        let Some((row, mut stored)) = self
            .stored(user)
            .await?
            .into_iter()
            .find(|(c, _)| c.id == id)
        else {
            return Ok(false);
        };
        stored.name = name.to_owned();
        let updated = Credential {
            data: encode(&stored)?,
            ..row
        };
        Ok(self
            .shared
            .store
            .credentials()
            .write(vec![Write::ReplaceExisting(updated)])
            .await?)
    }

    /// Removes one passkey; `false` when the user has no passkey `id`.
    pub async fn remove_one(&self, user: &str, id: &str) -> Result<bool, FactorError> {
        Ok(self
            .shared
            .store
            .credentials()
            .delete_credential(user, KIND, id)
            .await?)
    }
}

fn encode(stored: &Stored) -> Result<Vec<u8>, FactorError> {
    serde_json::to_vec(stored).map_err(|e| FactorError::Passkey(format!("passkey record: {e}")))
}

#[async_trait]
impl SecondFactor for Passkeys {
    fn kind(&self) -> FactorKind {
        FactorKind::Passkey
    }

    async fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        Ok(!self
            .shared
            .store
            .credentials()
            .credentials(user, Some(KIND))
            .await?
            .is_empty())
    }

    /// The ceremony begins from the page's script (`flow::passkeys`): nothing to do here.
    async fn begin(&self, _user: &str) -> Result<Begun, FactorError> {
        Ok(Begun::Ready)
    }

    /// A passkey answers a ceremony, never a typed code: a code is not this factor's shape
    /// (so a recovery code typed instead is taken as one, as everywhere).
    async fn verify(&self, _user: &str, _answer: &str) -> Result<Verdict, FactorError> {
        Ok(Verdict::Malformed)
    }

    async fn remove(&self, user: &str) -> Result<bool, FactorError> {
        let store = self.shared.store.credentials();
        let had = !store.credentials(user, Some(KIND)).await?.is_empty();
        store
            .write(vec![Write::DeleteKinds {
                user: user.to_owned(),
                kinds: vec![KIND.to_owned()],
            }])
            .await?;
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_fit_the_rp_id_or_a_name_under_it() {
        assert!(host_fits("example.com", "example.com"));
        assert!(host_fits("login.example.com", "example.com"));
        assert!(host_fits("Login.Example.com", "example.com"));
        assert!(!host_fits("badexample.com", "example.com"));
        assert!(!host_fits("example.com.evil.test", "example.com"));
    }

    #[test]
    fn names_are_trimmed_cleaned_and_bounded() {
        assert_eq!(clean_name("  My phone \n"), Some("My phone".into()));
        assert_eq!(clean_name("a\u{7}b"), Some("ab".into()));
        assert_eq!(clean_name("   "), None);
        assert_eq!(
            clean_name(&"키".repeat(100)).unwrap().chars().count(),
            NAME_MAX
        );
    }

    #[test]
    fn the_relying_party_refuses_an_origin_outside_the_rp_id() {
        let cfg = PasskeyConfig {
            rp_id: "example.com".into(),
            rp_name: "Example".into(),
            origins: vec![Url::parse("https://login.example.com").unwrap()],
            passwordless: false,
        };
        assert!(relying_party(&cfg).is_ok());
        let bad = PasskeyConfig {
            origins: vec![Url::parse("https://example.org").unwrap()],
            ..cfg
        };
        assert!(relying_party(&bad).is_err());
    }
}
