//! Second factors, behind one seam: every kind implements [`SecondFactor`] (its kind, whether a
//! user has it, beginning a challenge, checking an answer, removing it). Today: the
//! authenticator app (`authenticator`, RFC 6238) and recovery codes (`recovery`). SMS and email
//! codes, approval on a device, passkeys and certificates are further implementations; the
//! challenge and the sign-in flow only ever talk to the seam.
//!
//! [`Factors`] holds them, and the account's factor state that is not one factor: the emergency
//! contact email, operator enrolment tokens, the setup guide's "later" count, first-time
//! enrolment (which never replaces a factor) and resets. Everything durable lives in the store
//! (`credentials` and `accounts`), secrets sealed by [`SecretCipher`] or hashed under its pepper.
//! Auth outcomes are verdict enums; `Err` is only for faults (store, key file, a secret that does
//! not decrypt), and callers fail closed on it.
//!
//! The pure parts live in submodules: `totp` (RFC 4226/6238, URI, QR), `code` (email/SMS
//! one-time codes), `recovery` (recovery-code format and hashing), `cipher` (encryption at rest).

pub mod approval;
pub mod authenticator;
pub mod cipher;
pub mod code;
pub mod passkey;
pub mod recovery;
pub mod sent;
pub mod totp;

pub use approval::Approval;
pub use authenticator::AuthenticatorApp;
pub use cipher::SecretCipher;
pub use code::{CodeCheck, PendingCode};
pub use passkey::{PasskeyConfig, Passkeys};
pub use recovery::RecoveryCodes;
pub use sent::SentCodes;
pub use totp::{TotpCheck, TotpSecret};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::amr::Method;
use crate::clock::SharedClock;
use crate::store::{Credential, Store, StoreError, Write};

/// When two-step verification becomes mandatory, and the grace users get after that.
#[derive(Debug, Clone)]
pub struct TwoFactorConfig {
    /// From this instant (ms since the epoch) the guide counts "later" choices against the
    /// grace; before it, "later" is always offered. `None`: mandatory already.
    pub required_from: Option<u64>,
    /// The date as the operator wrote it (`YYYY-MM-DD`), for the guide page.
    pub required_from_label: Option<String>,
    /// After the date, how many times each user may choose "later".
    pub grace_skips: Option<u32>,
    /// After this instant "later" is never offered.
    pub grace_until: Option<u64>,
    /// The name authenticator apps show for the account.
    pub issuer: String,
    /// Key that encrypts second-factor secrets at rest (default `<data dir>/keys/factor.key`).
    pub secret_key_file: Option<PathBuf>,
    /// How long an emailed one-time code is valid (at most 10 minutes).
    pub code_ttl: Duration,
    /// Default validity of an operator-issued enrolment token.
    pub enrolment_token_ttl: Duration,
    /// How long "don't ask again on this browser" lasts; `None`: not offered.
    pub trusted_browser_lifetime: Option<Duration>,
    /// How many codes may be sent, and the block after too many (seed 002).
    pub send_limits: SendLimits,
    /// The methods setup offers (`totp`, `sms`), in the order shown.
    pub methods: Vec<FactorKind>,
    /// Approval on a device and security codes for another device.
    pub devices: DeviceSettings,
}

/// Approval on an approver device and the security code it shows for another device
/// (`flow::approvals`): `[two_factor]` `approval_ttl`, `approvals_per_window`,
/// `approval_window`, `approval_block`, `approver_max_age`, `device_code_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSettings {
    /// How long a request waits for a decision.
    pub approval_ttl: Duration,
    /// Requests per user in a window, and the cool-down after too many (approval fatigue).
    pub approval_limits: SendLimits,
    /// How recently the approver's own session must have passed the second factor.
    pub approver_max_age: Duration,
    /// How long a security code for another device works.
    pub device_code_ttl: Duration,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            approval_ttl: Duration::from_secs(120),
            approval_limits: SendLimits {
                per_window: 3,
                window: Duration::from_secs(600),
                block: Duration::from_secs(1800),
            },
            approver_max_age: Duration::from_secs(7 * 24 * 3600),
            device_code_ttl: Duration::from_secs(180),
        }
    }
}

/// How many one-time codes may be sent (`flow::sends` applies it): `[two_factor]`
/// `code_sends_per_window`, `code_send_window`, `code_send_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    pub per_window: u32,
    pub window: Duration,
    pub block: Duration,
}

impl Default for SendLimits {
    fn default() -> Self {
        SendLimits {
            per_window: 5,
            window: Duration::from_secs(3600),
            block: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for TwoFactorConfig {
    fn default() -> Self {
        TwoFactorConfig {
            required_from: None,
            required_from_label: None,
            grace_skips: None,
            grace_until: None,
            issuer: "stepgate".into(),
            secret_key_file: None,
            code_ttl: Duration::from_secs(600),
            enrolment_token_ttl: Duration::from_secs(72 * 3600),
            trusted_browser_lifetime: Some(Duration::from_secs(30 * 24 * 3600)),
            send_limits: Default::default(),
            methods: vec![FactorKind::Totp],
            devices: Default::default(),
        }
    }
}

const LOG_TARGET: &str = "stepgate::factor";

/// How long `enrolled` trusts its cache; a change made by another process (`stepgate admin`,
/// another gateway) is seen within this time, a change made through this `Factors` at once.
pub const ENROLLED_CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept before the cache is simply cleared (bounded memory, ASVS 5.0 2.4.1).
const ENROLLED_CACHE_MAX: usize = 100_000;
/// Characters of an enrolment token, shown in groups of four.
const TOKEN_CHARS: usize = 20;
const TOKEN_KIND: &str = "enrolment_token";

/// Faults of the factors. Messages are lowercase and never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("factor key file {path}: {problem}")]
    KeyFile { path: PathBuf, problem: String },
    #[error("factor key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "factor secret of user {user:?} does not decrypt: sealed under another key file, or the row was altered"
    )]
    Undecryptable { user: String },
    #[error("factor secret: {0}")]
    Crypto(&'static str),
    #[error("totp secret: expected at least 128 bits, found {bits}")]
    SecretTooShort { bits: usize },
    #[error("qr code: {0}")]
    Qr(String),
    #[error("emergency email: expected one address like name@example.org, found {0}")]
    InvalidEmail(&'static str),
    #[error("passkeys: {0}")]
    Passkey(String),
}

/// The kinds of second factor, by the names the challenge's `method` parameter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorKind {
    /// Approval on one of the user's approver devices, with number matching (`devices`).
    Approve,
    /// An authenticator app (TOTP).
    Totp,
    /// A code sent by SMS to the registered phone.
    Sms,
    /// A security code shown on one of the user's approver devices ("sign in on another
    /// device"), typed on the new one.
    DeviceCode,
    /// A code sent to the emergency email ("verify by email instead").
    Email,
    /// A passkey (WebAuthn): a ceremony in the browser, not a typed code.
    Passkey,
    /// A single-use recovery code.
    Recovery,
}

impl FactorKind {
    /// In the order a challenge offers them.
    /// Approval first, as the seeds' services ask: the user's own phone, nothing to type.
    pub const ALL: [FactorKind; 7] = [
        FactorKind::Approve,
        FactorKind::Totp,
        FactorKind::Sms,
        FactorKind::DeviceCode,
        FactorKind::Email,
        FactorKind::Passkey,
        FactorKind::Recovery,
    ];

    /// `approve`, `totp`, `sms`, `device-code`, `email`, `passkey`, `recovery`: the contract's
    /// method names (and, for `totp`, `sms`, `passkey` and `recovery`, the store's credential
    /// kinds).
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Approve => "approve",
            FactorKind::Totp => "totp",
            FactorKind::Sms => "sms",
            FactorKind::DeviceCode => "device-code",
            FactorKind::Email => "email",
            FactorKind::Passkey => "passkey",
            FactorKind::Recovery => "recovery",
        }
    }

    /// Whether the answer is a code the gateway sends (and the challenge offers to send).
    pub fn is_sent(self) -> bool {
        matches!(self, FactorKind::Sms | FactorKind::Email)
    }

    pub fn parse(s: &str) -> Option<FactorKind> {
        FactorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The RFC 8176 method a pass with this factor adds to the session.
    pub fn method(self) -> Method {
        match self {
            // A recovery code is a one-time password in RFC 8176's terms.
            FactorKind::Totp | FactorKind::Recovery => Method::Otp,
            FactorKind::Sms => Method::Sms,
            FactorKind::Email => Method::Email,
            FactorKind::Approve | FactorKind::DeviceCode => Method::Mca,
            FactorKind::Passkey => Method::Hwk,
        }
    }

    /// Whether having only this factor counts as having two-step verification (recovery codes
    /// and the emergency email are backups of another factor, not factors to set up alone; an
    /// approver device is a signed-in browser, which exists only after another factor).
    pub fn is_primary(self) -> bool {
        matches!(
            self,
            FactorKind::Totp | FactorKind::Sms | FactorKind::Passkey
        )
    }
}

/// The outcome of checking an answer with one factor.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Right. `remaining`: single-use credentials of this kind left afterwards (recovery codes).
    Accepted {
        kind: FactorKind,
        remaining: Option<usize>,
    },
    /// A one-time value already used (logged at warn; the caller should notify the user).
    Replayed,
    Wrong,
    /// Not the shape this factor's answers have (does not count as a try).
    Malformed,
    /// No code pending: none was sent, it ran out, it was used, or it was tried too often.
    Expired,
    NotEnrolled,
    /// An approval not decided yet (not a try: the browser waits).
    Pending,
    /// The approver denied it (counted when the approver decided, not again here).
    Denied,
}

/// What beginning a challenge did.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begun {
    /// Nothing to send: the user reads the answer off their own device or paper.
    Ready,
}

/// One kind of second factor. Implementations keep their state in the store.
#[async_trait]
pub trait SecondFactor: Send + Sync {
    fn kind(&self) -> FactorKind;
    /// Whether `user` has this factor (uncached).
    async fn enrolled(&self, user: &str) -> Result<bool, FactorError>;
    /// Prepares a challenge for `user` (sends a code, creates an approval...).
    async fn begin(&self, user: &str) -> Result<Begun, FactorError>;
    /// Checks `answer`. Single-use answers are used up by an `Accepted` verdict, exactly once
    /// even when two gateways race.
    async fn verify(&self, user: &str, answer: &str) -> Result<Verdict, FactorError>;
    /// Removes the factor; `false` when the user had none.
    async fn remove(&self, user: &str) -> Result<bool, FactorError>;
}

/// What the account page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorSummary {
    /// When TOTP was activated (ms since the epoch), if it is.
    pub totp: Option<u64>,
    /// The phone SMS codes go to, if the user has SMS.
    pub sms: Option<String>,
    pub recovery_remaining: usize,
    pub emergency_email: Option<String>,
}

#[derive(Clone, Copy)]
struct CachedFlag {
    enrolled: bool,
    fetched_ms: u64,
}

/// What every factor implementation shares: the store, the key and the clock.
pub(crate) struct Shared {
    pub store: Store,
    pub cipher: SecretCipher,
    pub clock: SharedClock,
}

/// Overwrites secret bytes before their memory is released. Best effort without a zeroize
/// crate: `black_box` keeps the compiler from dropping the writes as dead stores.
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// All second factors, and the factor state of accounts. `Debug` shows no secret.
pub struct Factors {
    shared: Arc<Shared>,
    app: AuthenticatorApp,
    sms: SentCodes,
    email: SentCodes,
    device_code: SentCodes,
    approval: Approval,
    recovery: RecoveryCodes,
    passkeys: Passkeys,
    enrolled_cache: DashMap<String, CachedFlag>,
    /// Bumped on every local change, so a cache fill that raced a change is thrown away.
    generation: AtomicU64,
}

impl fmt::Debug for Factors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Factors")
            .field("cached_users", &self.enrolled_cache.len())
            .finish_non_exhaustive()
    }
}

impl Factors {
    /// The key session IDs are tagged under, derived from the factor key (shared by every
    /// gateway on one database).
    pub fn session_id_key(&self) -> &[u8; 32] {
        self.shared.cipher.session_id_key()
    }

    /// The factors over `store`, with the key file (`<data_dir>/keys/factor.key` unless given,
    /// created if missing). The database is useless without the key file: back them up
    /// together, store them apart.
    pub fn open(
        store: Store,
        data_dir: &Path,
        key_file: Option<&Path>,
        clock: SharedClock,
    ) -> Result<Factors, FactorError> {
        let default_key = data_dir.join("keys").join("factor.key");
        let cipher = SecretCipher::load_or_create(key_file.unwrap_or(&default_key))?;
        let shared = Arc::new(Shared {
            store,
            cipher,
            clock,
        });
        Ok(Factors {
            app: AuthenticatorApp::new(Arc::clone(&shared)),
            sms: SentCodes::new(FactorKind::Sms, Arc::clone(&shared)),
            email: SentCodes::new(FactorKind::Email, Arc::clone(&shared)),
            device_code: SentCodes::new(FactorKind::DeviceCode, Arc::clone(&shared)),
            approval: Approval::new(Arc::clone(&shared)),
            recovery: RecoveryCodes::new(Arc::clone(&shared)),
            passkeys: Passkeys::new(Arc::clone(&shared)),
            shared,
            enrolled_cache: DashMap::new(),
            generation: AtomicU64::new(0),
        })
    }

    /// The factor of `kind`.
    pub fn get(&self, kind: FactorKind) -> &dyn SecondFactor {
        match kind {
            FactorKind::Approve => &self.approval,
            FactorKind::Totp => &self.app,
            FactorKind::Sms => &self.sms,
            FactorKind::DeviceCode => &self.device_code,
            FactorKind::Email => &self.email,
            FactorKind::Recovery => &self.recovery,
            FactorKind::Passkey => &self.passkeys,
        }
    }

    /// Turns passkeys on (`[passkeys]`); without this call they are off.
    pub fn with_passkeys(mut self, cfg: Option<&PasskeyConfig>) -> Result<Factors, FactorError> {
        if let Some(cfg) = cfg {
            self.passkeys.configure(cfg)?;
        }
        Ok(self)
    }

    pub fn passkeys(&self) -> &Passkeys {
        &self.passkeys
    }

    /// Drops the cached `enrolled` flag of `user` after a change made outside `Factors`'
    /// own methods (a passkey added or removed).
    pub fn forget_cached(&self, user: &str) {
        self.changed(user);
    }

    /// The factor that sends codes of `kind` (SMS or email); `None` for another kind.
    pub fn sent(&self, kind: FactorKind) -> Option<&SentCodes> {
        match kind {
            FactorKind::Sms => Some(&self.sms),
            FactorKind::Email => Some(&self.email),
            _ => None,
        }
    }

    /// The security codes approver devices show for another device.
    pub fn device_codes(&self) -> &SentCodes {
        &self.device_code
    }

    /// The phone the user's SMS factor sends to, if they have one.
    pub async fn sms_phone(&self, user: &str) -> Result<Option<String>, FactorError> {
        let creds = self
            .shared
            .store
            .credentials()
            .credentials(user, Some("sms"))
            .await?;
        Ok(creds.first().and_then(|c| sent::phone_of(&c.data)))
    }

    pub fn app(&self) -> &AuthenticatorApp {
        &self.app
    }

    pub fn recovery(&self) -> &RecoveryCodes {
        &self.recovery
    }

    /// The key pending one-time codes are hashed under.
    pub fn code_key(&self) -> &code::CodeKey {
        self.shared.cipher.code_key()
    }

    /// Seals a secret for `user` (for a challenge that must keep one between requests).
    pub fn seal(&self, user: &str, secret: &[u8]) -> Result<Vec<u8>, FactorError> {
        self.shared.cipher.seal(user, secret)
    }

    /// Opens what `seal` sealed for `user`.
    pub fn open_sealed(&self, user: &str, sealed: &[u8]) -> Result<Vec<u8>, FactorError> {
        self.shared.cipher.open(user, sealed)
    }

    /// Drops the cached `enrolled` flag of `user` after a local change. The generation bump comes
    /// first, so a concurrent fill that read the old state discards itself (see `enrolled`).
    fn changed(&self, user: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.enrolled_cache.remove(user);
    }

    /// The kinds the user has, in the order the challenge offers them (one store read).
    pub async fn enrolled_kinds(&self, user: &str) -> Result<Vec<FactorKind>, FactorError> {
        let store = self.shared.store.credentials();
        let creds = store.credentials(user, None).await?;
        let has = |k: FactorKind| {
            // Passkeys the operator turned off cannot be used, so they do not count.
            (k != FactorKind::Passkey || self.passkeys.enabled())
                && creds
                    .iter()
                    .any(|c| c.kind == k.as_str() && c.used_ms.is_none())
        };
        let primary = FactorKind::ALL
            .into_iter()
            .any(|k| k.is_primary() && has(k));
        // The emergency email backs up a primary factor; alone it is not two-step verification.
        let email = primary && store.account(user).await?.emergency_email.is_some();
        // So does an approver device: it approves, or shows a security code, for a user who has
        // two-step verification.
        let approver = primary && creds.iter().any(|c| c.kind == crate::devices::APPROVER);
        Ok(FactorKind::ALL
            .into_iter()
            .filter(|k| match k {
                FactorKind::Email => email,
                FactorKind::Approve | FactorKind::DeviceCode => approver,
                k => has(*k),
            })
            .collect())
    }

    /// Whether the user has two-step verification: a primary factor (uncached).
    pub async fn has_second_factor(&self, user: &str) -> Result<bool, FactorError> {
        Ok(self
            .enrolled_kinds(user)
            .await?
            .into_iter()
            .any(FactorKind::is_primary))
    }

    /// Whether the user has two-step verification, cached per user for `ENROLLED_CACHE_TTL`
    /// because this is asked on every request of a one-factor session that needs a second
    /// factor. The approximation: a change made by another process shows here up to 10 s late;
    /// changes made through this `Factors` show at once. A stale `true` after an operator reset
    /// makes the user face a challenge they cannot pass for those seconds; a stale `false` after
    /// an enrolment elsewhere sends them to the setup guide again. Neither grants access.
    pub async fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        let now = self.shared.clock.now_ms();
        let ttl = duration_ms(ENROLLED_CACHE_TTL);
        if let Some(hit) = self.enrolled_cache.get(user).map(|e| *e) {
            // A clock that went backwards counts as stale.
            if now >= hit.fetched_ms && now - hit.fetched_ms < ttl {
                return Ok(hit.enrolled);
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let enrolled = self.has_second_factor(user).await?;
        if self.enrolled_cache.len() >= ENROLLED_CACHE_MAX {
            self.enrolled_cache.clear();
        }
        self.enrolled_cache.insert(
            user.to_string(),
            CachedFlag {
                enrolled,
                fetched_ms: now,
            },
        );
        // Insert first, then validate: if a local change happened since the read, this entry
        // may be stale, so take it out again (the change's own removal may have come first).
        if self.generation.load(Ordering::SeqCst) != generation {
            self.enrolled_cache.remove(user);
        }
        Ok(enrolled)
    }

    /// Whether the user has an authenticator app (uncached).
    pub async fn totp_enrolled(&self, user: &str) -> Result<bool, FactorError> {
        self.app.enrolled(user).await
    }

    /// Checks `answer` with the factor of `kind`. An answer that is not that factor's shape but
    /// is a recovery code is taken as one: recovery codes are accepted wherever a code is asked
    /// for (each factor knows its own shape; nobody guesses the kind from the input).
    pub async fn verify(
        &self,
        kind: FactorKind,
        user: &str,
        answer: &str,
    ) -> Result<Verdict, FactorError> {
        let verdict = self.get(kind).verify(user, answer).await?;
        if verdict == Verdict::Malformed && kind != FactorKind::Recovery {
            let fallback = self.recovery.verify(user, answer).await?;
            if fallback != Verdict::Malformed && fallback != Verdict::NotEnrolled {
                return Ok(fallback);
            }
        }
        Ok(verdict)
    }

    /// Stores (sealed) an activated TOTP secret, replacing any previous one, with
    /// `accepted_step` as the last used step. For the admin and tests; setup uses `enrol_totp`.
    pub async fn activate_totp(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
    ) -> Result<(), FactorError> {
        let cred = self.app.credential(user, secret, accepted_step)?;
        self.shared
            .store
            .credentials()
            .write(vec![Write::Put(cred)])
            .await?;
        self.changed(user);
        tracing::info!(target: LOG_TARGET, user, "totp activated");
        Ok(())
    }

    /// First-time enrolment with an authenticator app, in one transaction: the activated TOTP
    /// secret (with `accepted_step` as its last used step), the emergency contact email and ten
    /// new recovery codes, returned for showing once. `Ok(None)` when the user has a TOTP secret
    /// already (set up meanwhile in another session): nothing changes, so a first-time setup can
    /// never replace a factor (that takes `replace_totp`, behind a fresh proof).
    pub async fn enrol_totp(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
        emergency_email: &str,
    ) -> Result<Option<Vec<String>>, FactorError> {
        let factor = self.app.credential(user, secret, accepted_step)?;
        self.enrol(factor, emergency_email).await
    }

    /// First-time enrolment with SMS to `phone` (verified by a code sent to it), like
    /// [`enrol_totp`](Self::enrol_totp); `Ok(None)` when the user has an SMS factor already.
    pub async fn enrol_sms(
        &self,
        user: &str,
        phone: &str,
        emergency_email: &str,
    ) -> Result<Option<Vec<String>>, FactorError> {
        self.enrol(self.sms_credential(user, phone, None), emergency_email)
            .await
    }

    /// The one transaction of a first-time enrolment: `factor` (only if the user has none of its
    /// kind), the emergency email and ten new recovery codes (returned for showing once).
    async fn enrol(
        &self,
        factor: Credential,
        emergency_email: &str,
    ) -> Result<Option<Vec<String>>, FactorError> {
        check_email(emergency_email)?;
        let user = factor.user.clone();
        let kind = factor.kind.clone();
        let mut batch = vec![
            Write::InsertNew(factor),
            Write::SetEmergencyEmail {
                user: user.clone(),
                email: Some(emergency_email.to_owned()),
                at_ms: self.shared.clock.now_ms(),
            },
        ];
        let codes = self.recovery.fresh_batch(&user, &mut batch);
        let added = self.shared.store.credentials().write(batch).await?;
        self.changed(&user);
        if !added {
            return Ok(None);
        }
        tracing::info!(target: LOG_TARGET, user, kind, "second factor activated; emergency email and recovery codes set");
        Ok(Some(codes))
    }

    /// The credential of an SMS factor sending to `phone` (created at `created_ms`, or now).
    fn sms_credential(&self, user: &str, phone: &str, created_ms: Option<u64>) -> Credential {
        Credential {
            user: user.to_owned(),
            kind: FactorKind::Sms.as_str().to_owned(),
            id: String::new(),
            secret: Vec::new(),
            counter: 0,
            created_ms: created_ms.unwrap_or_else(|| self.shared.clock.now_ms()),
            used_ms: None,
            expires_ms: None,
            data: sent::phone_data(phone),
        }
    }

    /// Sets the phone of the user's SMS factor (adding the factor if they had none). The caller
    /// proved the user controls the number (a code sent to it).
    pub async fn set_sms_phone(&self, user: &str, phone: &str) -> Result<(), FactorError> {
        let store = self.shared.store.credentials();
        let existing = store
            .credentials(user, Some(FactorKind::Sms.as_str()))
            .await?;
        let created_ms = existing.first().map(|c| c.created_ms);
        let cred = self.sms_credential(user, phone, created_ms);
        store.write(vec![Write::Put(cred)]).await?;
        self.changed(user);
        tracing::info!(target: LOG_TARGET, user, "sms phone set");
        Ok(())
    }

    /// Replaces the user's TOTP secret with a new one whose code was just accepted at
    /// `accepted_step`; recovery codes and the emergency email stay. Until this call the old
    /// secret keeps working. `Ok(false)` when the user has no TOTP secret (removed meanwhile):
    /// nothing changes.
    pub async fn replace_totp(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
    ) -> Result<bool, FactorError> {
        let replaced = self.app.replace(user, secret, accepted_step).await?;
        self.changed(user);
        if replaced {
            tracing::info!(target: LOG_TARGET, user, "totp replaced");
        }
        Ok(replaced)
    }

    /// Removes the user's TOTP secret; `false` if there was none.
    pub async fn remove_totp(&self, user: &str) -> Result<bool, FactorError> {
        let removed = self.app.remove(user).await?;
        self.changed(user);
        Ok(removed)
    }

    /// Replaces all of the user's recovery codes with new ones and returns them for showing
    /// once; only their keyed hashes are stored.
    pub async fn new_recovery_codes(&self, user: &str) -> Result<Vec<String>, FactorError> {
        let mut batch = Vec::new();
        let codes = self.recovery.fresh_batch(user, &mut batch);
        self.shared.store.credentials().write(batch).await?;
        tracing::info!(target: LOG_TARGET, user, "recovery codes replaced");
        Ok(codes)
    }

    /// Unused recovery codes of the user.
    pub async fn recovery_remaining(&self, user: &str) -> Result<usize, FactorError> {
        self.recovery.remaining(user).await
    }

    pub async fn emergency_email(&self, user: &str) -> Result<Option<String>, FactorError> {
        Ok(self
            .shared
            .store
            .credentials()
            .account(user)
            .await?
            .emergency_email)
    }

    /// Sets the emergency contact address. The caller proves the user controls it (a
    /// `PendingCode` sent there) before calling; the time of the call is kept as when it was
    /// verified. Only the shape is checked here: one `@`, at most 254 bytes, no whitespace or
    /// control characters (which keeps header injection out of whatever later sends mail to it).
    pub async fn set_emergency_email(&self, user: &str, email: &str) -> Result<(), FactorError> {
        check_email(email)?;
        let write = Write::SetEmergencyEmail {
            user: user.to_owned(),
            email: Some(email.to_owned()),
            at_ms: self.shared.clock.now_ms(),
        };
        self.shared.store.credentials().write(vec![write]).await?;
        tracing::info!(target: LOG_TARGET, user, "emergency email set");
        Ok(())
    }

    fn token_hash(&self, user: &str, normalized: &str) -> [u8; 32] {
        // Domain-separated from recovery-code hashes, though both use the pepper.
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.shared.cipher.pepper());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(b"enrolment-token\0");
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(normalized.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Issues an operator enrolment token (`XXXX-XXXX-XXXX-XXXX-XXXX`, 20 characters of the
    /// recovery alphabet, about 99 bits), replacing any earlier one. Stored hashed; single use;
    /// dead after `ttl`.
    pub async fn issue_enrolment_token(
        &self,
        user: &str,
        ttl: Duration,
    ) -> Result<String, FactorError> {
        let token = recovery::random_chars(TOKEN_CHARS);
        let now = self.shared.clock.now_ms();
        let expires = now.saturating_add(duration_ms(ttl));
        let cred = Credential {
            user: user.to_owned(),
            kind: TOKEN_KIND.to_owned(),
            id: String::new(),
            secret: self.token_hash(user, &token).to_vec(),
            counter: 0,
            created_ms: now,
            used_ms: None,
            expires_ms: Some(expires),
            data: Vec::new(),
        };
        self.shared
            .store
            .credentials()
            .write(vec![Write::Put(cred)])
            .await?;
        tracing::info!(target: LOG_TARGET, user, expires_ms = expires, "enrolment token issued");
        Ok(recovery::grouped(&token, 4))
    }

    /// `true` once for the user's valid, unexpired token, which is consumed; `false` otherwise
    /// (wrong, expired, another user's, already used, or not a token at all).
    pub async fn redeem_enrolment_token(
        &self,
        user: &str,
        token: &str,
    ) -> Result<bool, FactorError> {
        let Some(normalized) = recovery::normalize_chars(token, TOKEN_CHARS) else {
            return Ok(false);
        };
        let entered = self.token_hash(user, &normalized);
        let store = self.shared.store.credentials();
        let found = store.credentials(user, Some(TOKEN_KIND)).await?;
        let matches = found
            .iter()
            .any(|c| c.used_ms.is_none() && bool::from(c.secret.as_slice().ct_eq(&entered[..])));
        if !matches {
            return Ok(false);
        }
        // Used up by exactly one caller; an expired token cannot be.
        let now = self.shared.clock.now_ms();
        let consumed = store.consume(user, TOKEN_KIND, "", now).await?;
        if consumed {
            store.delete_credential(user, TOKEN_KIND, "").await?;
            tracing::info!(target: LOG_TARGET, user, "enrolment token redeemed");
        }
        Ok(consumed)
    }

    /// How many times the user chose "later" in the setup guide.
    pub async fn skips_used(&self, user: &str) -> Result<u32, FactorError> {
        Ok(self
            .shared
            .store
            .credentials()
            .account(user)
            .await?
            .guide_skips)
    }

    /// Records one more "later" and returns the new count (atomic increment).
    pub async fn record_skip(&self, user: &str) -> Result<u32, FactorError> {
        Ok(self.shared.store.credentials().add_guide_skip(user).await?)
    }

    /// Operator reset: removes the user's TOTP secret, SMS phone, passkeys, recovery codes,
    /// approver devices, enrolment token and skip count, and the emergency email unless
    /// `keep_contact`. One transaction. The user sets up again, with the grace anew.
    pub async fn reset(&self, user: &str, keep_contact: bool) -> Result<(), FactorError> {
        self.remove_all(user, keep_contact, true).await
    }

    /// The user turns two-step verification off themselves: every factor goes, as in
    /// [`reset`](Self::reset), but the emergency email and the "later" count stay (turning it
    /// off and on again must not give back the grace the operator allowed).
    pub async fn turn_off(&self, user: &str) -> Result<(), FactorError> {
        self.remove_all(user, true, false).await
    }

    async fn remove_all(
        &self,
        user: &str,
        keep_contact: bool,
        clear_skips: bool,
    ) -> Result<(), FactorError> {
        let mut batch = vec![Write::DeleteKinds {
            user: user.to_owned(),
            kinds: [
                FactorKind::Totp.as_str(),
                FactorKind::Sms.as_str(),
                FactorKind::Passkey.as_str(),
                FactorKind::Recovery.as_str(),
                crate::devices::APPROVER,
                TOKEN_KIND,
            ]
            .map(str::to_owned)
            .to_vec(),
        }];
        if clear_skips {
            batch.push(Write::ClearGuideSkips {
                user: user.to_owned(),
            });
        }
        if !keep_contact {
            batch.push(Write::SetEmergencyEmail {
                user: user.to_owned(),
                email: None,
                at_ms: self.shared.clock.now_ms(),
            });
        }
        self.shared.store.credentials().write(batch).await?;
        self.changed(user);
        tracing::info!(target: LOG_TARGET, user, keep_contact, clear_skips, "second factors removed");
        Ok(())
    }

    /// A summary for the account page (two store reads).
    pub async fn summary(&self, user: &str) -> Result<FactorSummary, FactorError> {
        let store = self.shared.store.credentials();
        let creds = store.credentials(user, None).await?;
        let totp = creds
            .iter()
            .find(|c| c.kind == FactorKind::Totp.as_str())
            .map(|c| c.created_ms);
        let recovery_remaining = creds
            .iter()
            .filter(|c| c.kind == FactorKind::Recovery.as_str() && c.used_ms.is_none())
            .count();
        let emergency_email = store.account(user).await?.emergency_email;
        let sms = creds
            .iter()
            .find(|c| c.kind == FactorKind::Sms.as_str())
            .and_then(|c| sent::phone_of(&c.data));
        Ok(FactorSummary {
            totp,
            sms,
            recovery_remaining,
            emergency_email,
        })
    }
}

fn check_email(email: &str) -> Result<(), FactorError> {
    if email.is_empty() || email.len() > 254 {
        return Err(FactorError::InvalidEmail("an empty or over-long value"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FactorError::InvalidEmail(
            "whitespace or control characters",
        ));
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(FactorError::InvalidEmail(
            "no single @ between a name and a domain",
        )),
    }
}

#[cfg(test)]
mod tests;
