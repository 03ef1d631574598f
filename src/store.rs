//! Durable state, behind async traits cut by domain: sessions, credentials (second factors and
//! what proves them), per-user account data, challenges in flight (setup progress, one-time
//! codes, pending changes), bans, and an audit trail. Everything that must outlive a restart, or
//! be seen by a second gateway on the same database, lives here.
//!
//! Two backends implement every trait: the embedded default, SQLite in `<data dir>/stepgate.db`
//! (`store::sqlite`), and PostgreSQL (`store::postgres`) for several gateways sharing state.
//! [`Store`] is the one owner of the database connections; no other module opens the database.
//! Blocking work never runs on a pingora worker: SQLite statements run on a thread of the
//! store's own, PostgreSQL connections live on a small runtime of the store's own, and callers
//! only await the answer. Schema migrations are versioned and applied when the store opens.
//!
//! The store keeps records as given and decides nothing: what a record means (a session's
//! level, whether a code is right) is the business of the domain that owns it. Secrets reach
//! it sealed or hashed, never in clear. A fault is an `Err`, and every caller on an
//! authentication path fails closed on it.

pub mod postgres;
pub mod sqlite;

/// The schema version this build reads and writes (the same on both backends).
pub const SCHEMA_VERSION: i64 = sqlite::schema::VERSION;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

/// SHA-256 of a session ID: how sessions are stored (the ID itself never is).
pub type SessionKey = [u8; 32];

/// Where durable state lives (`[store]`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `url = "sqlite"` (the default): `<data dir>/stepgate.db`; `sqlite:PATH` names a file.
    Sqlite { path: Option<PathBuf> },
    /// `url = "postgres://..."` or `url_file`: the URL may hold a password, so `Debug` hides it.
    Postgres { url: String },
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sqlite { path: None }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            StoreConfig::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .finish(),
        }
    }
}

/// A database URL with its password replaced by `***`, for logs and `Debug`. Text that is not a
/// URL with a host but holds an `@` could be anything, so none of it is shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.has_host() => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        _ if url.contains('@') => "(unparsable url)".to_owned(),
        _ => url.to_owned(),
    }
}

/// Faults of the store. Messages are lowercase and never contain a secret or a URL password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store ({backend}): {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    #[error("store: the database is closed (the gateway is stopping)")]
    Closed,
    #[error("store: {what} in the database is not valid: {why}")]
    Corrupt { what: &'static str, why: String },
    #[error(
        "store: the database schema is at version {found}, newer than this stepgate knows \
         ({known}); run the newer stepgate or restore a backup"
    )]
    TooNew { found: i64, known: i64 },
    #[error("store: cannot prepare {path}: {cause}")]
    Files {
        path: PathBuf,
        cause: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A session as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: String,
    /// RFC 8176 `amr` values, comma-separated; the level is derived from them.
    pub amr: String,
    pub created_ms: u64,
    /// When the last authentication step happened.
    pub auth_ms: u64,
    pub last_seen_ms: u64,
    /// The user chose "later" on the setup guide for this session.
    pub deferred: bool,
    /// A saved sign-in ("keep me signed in"): its cookie outlives the browser.
    pub persistent: bool,
    /// Signed in from an unfamiliar environment and not yet checked: usable for nothing but
    /// the check.
    pub needs_check: bool,
    /// The address it signed in from, and the browser it said it was (for the user's list).
    pub client: String,
    pub agent: String,
    /// The trusted browser that stood in for the second factor (its credential ID), or `""`.
    pub trusted: String,
}

/// Sessions. Ending sessions tells other gateways on the same database (see
/// [`Backend::session_events`]).
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn put_session(&self, key: &SessionKey, record: &SessionRecord) -> Result<()>;
    async fn session(&self, key: &SessionKey) -> Result<Option<SessionRecord>>;
    /// `true` when there was such a session.
    async fn delete_session(&self, key: &SessionKey) -> Result<bool>;
    async fn sessions_of(&self, user: &str) -> Result<Vec<(SessionKey, SessionRecord)>>;
    /// Ends every session of `user` but `except`; returns the keys it ended.
    async fn delete_sessions_of(
        &self,
        user: &str,
        except: Option<&SessionKey>,
    ) -> Result<Vec<SessionKey>>;
    /// Records when sessions were last used (batched by the caller); never moves one back.
    async fn touch_sessions(&self, seen: &[(SessionKey, u64)]) -> Result<()>;
    /// Deletes sessions created before `created_before` or last seen before `seen_before`, and
    /// saved sign-ins (`persistent`) created before `saved_before`; returns their keys.
    async fn purge_sessions(
        &self,
        created_before: u64,
        seen_before: u64,
        saved_before: u64,
    ) -> Result<Vec<SessionKey>>;
    async fn count_sessions(&self) -> Result<u64>;
}

/// One credential of a user: a second factor's secret, one recovery code, an enrolment token.
/// `(user, kind, id)` is unique. `secret` is sealed or a keyed hash, never the secret in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    /// The factor's kind as the factor module names it (`totp`, `recovery`, ...).
    pub kind: String,
    /// Which one of the user's credentials of this kind (`""` when there is only one).
    pub id: String,
    pub secret: Vec<u8>,
    /// A number the factor advances (TOTP: the last accepted step).
    pub counter: u64,
    pub created_ms: u64,
    /// When it was used up (single-use credentials).
    pub used_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    /// Kind-specific data the factor module encodes (a label, a public key...).
    pub data: Vec<u8>,
}

/// Per-user account data that is not a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRecord {
    /// The emergency contact email and when it was verified.
    pub emergency_email: Option<String>,
    pub emergency_verified_ms: Option<u64>,
    /// How many times the user chose "later" on the setup guide.
    pub guide_skips: u32,
    /// A password the user set (argon2id PHC string), and the users-file hash it replaced
    /// (a fingerprint): when the operator puts a different hash in the file, the file wins.
    pub password_hash: Option<String>,
    pub password_base: Option<String>,
    pub password_changed_ms: Option<u64>,
    /// When "this wasn't me" locked the account; `None` when it is not locked.
    pub locked_ms: Option<u64>,
}

/// One write of a [`Store::write`] batch. A batch is all or nothing.
#[derive(Debug, Clone)]
pub enum Write {
    /// Adds a credential; if `(user, kind, id)` exists already, the whole batch is abandoned
    /// and `write` returns `false`.
    InsertNew(Credential),
    /// Adds or replaces a credential.
    Put(Credential),
    /// Replaces a credential that exists; if it does not, the whole batch is abandoned and
    /// `write` returns `false`.
    ReplaceExisting(Credential),
    /// Removes one credential, if it is there.
    DeleteOne {
        user: String,
        kind: String,
        id: String,
    },
    /// Removes every credential of `user` of these kinds.
    DeleteKinds { user: String, kinds: Vec<String> },
    /// Sets (or with `None` removes) the emergency email, verified at `at_ms`.
    SetEmergencyEmail {
        user: String,
        email: Option<String>,
        at_ms: u64,
    },
    /// Forgets the user's "later" count.
    ClearGuideSkips { user: String },
    /// Sets the user's own password (`hash`, replacing the users-file hash fingerprinted by
    /// `base`) at `at_ms`.
    SetPassword {
        user: String,
        hash: String,
        base: String,
        at_ms: u64,
    },
    /// Locks the account (at `Some(ms)`) or unlocks it (`None`).
    SetLocked { user: String, at_ms: Option<u64> },
}

/// Credentials and account data.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The user's credentials of `kind` (all kinds with `None`), in `(kind, id)` order.
    async fn credentials(&self, user: &str, kind: Option<&str>) -> Result<Vec<Credential>>;
    /// The credentials of `kind` with this `id`, whoever holds them (a client certificate's
    /// fingerprint: which user registered it).
    async fn credentials_by_id(&self, kind: &str, id: &str) -> Result<Vec<Credential>>;
    /// Applies the writes in one transaction; `false` when an `InsertNew` found its credential
    /// there already or a `ReplaceExisting` did not (then nothing was written).
    async fn write(&self, batch: Vec<Write>) -> Result<bool>;
    /// Sets `counter` to `new` only if it is below `new` and the secret is still `secret`
    /// (TOTP: a step is accepted once, even by two gateways racing; a code of a replaced secret
    /// is never recorded against the new one). `true` when it changed the credential.
    async fn advance_counter(
        &self,
        user: &str,
        kind: &str,
        id: &str,
        secret: &[u8],
        new: u64,
    ) -> Result<bool>;
    /// Marks an unused, unexpired credential used at `now`; `true` for the one caller that did.
    async fn consume(&self, user: &str, kind: &str, id: &str, now: u64) -> Result<bool>;
    /// Deletes one credential; `true` when it existed.
    async fn delete_credential(&self, user: &str, kind: &str, id: &str) -> Result<bool>;
    async fn account(&self, user: &str) -> Result<AccountRecord>;
    /// Counts one more "later" and returns the new count (atomically).
    async fn add_guide_skip(&self, user: &str) -> Result<u32>;
}

/// Something in flight between two requests: a setup's progress, a code sent and not yet
/// entered, a change begun. Expired ones read as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub user: String,
    pub kind: String,
    /// What the owning module encodes; secrets in it are sealed.
    pub data: Vec<u8>,
    pub expires_ms: u64,
    /// Set by the store: 1 on the first put, one more on each replace.
    pub version: u64,
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// The challenge under `key`, unless it expired before `now`.
    async fn challenge(&self, key: &str, now: u64) -> Result<Option<Challenge>>;
    /// Creates or overwrites; returns the new version.
    async fn put_challenge(&self, key: &str, challenge: &Challenge) -> Result<u64>;
    /// Overwrites only if the stored version is still `expected` (optimistic concurrency: two
    /// requests checking one code cannot both count as its one use). `true` when it did.
    async fn replace_challenge(
        &self,
        key: &str,
        expected: u64,
        challenge: &Challenge,
    ) -> Result<bool>;
    async fn delete_challenge(&self, key: &str) -> Result<()>;
    /// Deletes the challenge under `key` and returns it, unless it expired before `now`: one
    /// caller gets it (a single-use link used twice at once works once).
    async fn take_challenge(&self, key: &str, now: u64) -> Result<Option<Challenge>>;
    /// Deletes every challenge of `user` (an account lock cancels what was in flight); returns
    /// how many.
    async fn delete_challenges_of(&self, user: &str) -> Result<u64>;
    /// Unexpired challenges whose key starts with `prefix`.
    async fn count_challenges(&self, prefix: &str, now: u64) -> Result<u64>;
    /// Deletes every challenge that expired before `now`; returns how many.
    async fn purge_challenges(&self, now: u64) -> Result<u64>;
}

/// A ban the failure limits handed out, kept so that a restart does not lift it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// Which counter banned: `pair`, `address` or `user`.
    pub scope: String,
    /// The counter's key as text (user, address or both).
    pub key: String,
    pub until_ms: u64,
    /// How many bans in a row this key has had (the back-off level).
    pub level: u32,
}

#[async_trait]
pub trait BanStore: Send + Sync {
    async fn put_ban(&self, ban: &BanRecord) -> Result<()>;
    /// `true` when there was such a ban.
    async fn delete_ban(&self, scope: &str, key: &str) -> Result<bool>;
    /// Bans still running at `now`.
    async fn active_bans(&self, now: u64) -> Result<Vec<BanRecord>>;
    /// Deletes bans that ended before `now`.
    async fn purge_bans(&self, now: u64) -> Result<u64>;
}

/// One line of the audit trail: who, what, when, from where. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at_ms: u64,
    pub user: String,
    /// What happened, snake_case (`sign_in`, `factor_added`, `emergency_email_changed`...).
    pub event: String,
    pub client: Option<String>,
    /// More about it, free text.
    pub detail: String,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;
    /// The user's newest events first, at most `limit`.
    async fn audit_of(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>>;
    /// Deletes events older than `before`.
    async fn purge_audit(&self, before: u64) -> Result<u64>;
}

/// What another gateway did that this one's caches must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// The session with this key was ended.
    Ended(SessionKey),
    /// Events may have been missed (the listener reconnected): forget every cached session.
    Resync,
}

/// A database: every domain's trait, and the feed of other gateways' session events.
pub trait Backend:
    SessionStore + CredentialStore + ChallengeStore + BanStore + AuditLog + Send + Sync
{
    /// `sqlite` or `postgres`, for logs.
    fn name(&self) -> &'static str;

    /// Session events of every gateway on the same database (this one's own included: ending
    /// a session twice is harmless), if the backend can tell (PostgreSQL `LISTEN`); `None` for a
    /// database one gateway owns. The receiver closes when the store is dropped; a receiver
    /// that lagged (`RecvError::Lagged`) missed events and must treat that as `Resync`.
    fn session_events(&self) -> Option<tokio::sync::broadcast::Receiver<SessionEvent>> {
        None
    }
}

/// The handle every domain holds: cheap to clone, one set of connections behind it.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.0.name()).finish()
    }
}

impl Store {
    /// Opens the configured database, creating it and applying migrations as needed. Blocks
    /// until the database answers; call it at start-up, never on a request path.
    pub fn open(cfg: &StoreConfig, data_dir: &Path) -> Result<Store> {
        let backend: Arc<dyn Backend> = match cfg {
            StoreConfig::Sqlite { path } => {
                let path = path.clone().unwrap_or_else(|| data_dir.join("stepgate.db"));
                Arc::new(sqlite::Sqlite::open(&path)?)
            }
            StoreConfig::Postgres { url } => Arc::new(postgres::Postgres::open(url)?),
        };
        tracing::info!(target: "stepgate::store", backend = backend.name(), "store open");
        Ok(Store(backend))
    }

    pub fn from_backend(backend: Arc<dyn Backend>) -> Store {
        Store(backend)
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.0
    }

    pub fn sessions(&self) -> &dyn SessionStore {
        &*self.0
    }

    pub fn credentials(&self) -> &dyn CredentialStore {
        &*self.0
    }

    pub fn challenges(&self) -> &dyn ChallengeStore {
        &*self.0
    }

    pub fn bans(&self) -> &dyn BanStore {
        &*self.0
    }

    pub fn audit(&self) -> &dyn AuditLog {
        &*self.0
    }
}

/// A runtime of a backend's own (its connection tasks must outlive pingora's per-thread
/// runtimes and a test's), shut down without waiting: it may be dropped on a pingora worker or
/// inside a test's runtime, where blocking (or dropping a runtime) would panic.
pub(crate) struct OwnedRuntime(pub(crate) Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl OwnedRuntime {
    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

/// Runs a store future to completion from synchronous code (start-up, the admin CLI). It runs on
/// a thread of its own with a small runtime, so it works whether or not the caller is inside a
/// tokio runtime. Never for a request path.
pub fn run_blocking<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime can be built at start-up")
                .block_on(future)
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// SQL integers are signed 64-bit; our times, steps and counts are far below `i64::MAX`, and
/// saturating only ever makes a stored time or step larger (stricter).
pub(crate) fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A stored session key back to its 32 bytes.
pub(crate) fn session_key(bytes: &[u8]) -> Result<SessionKey> {
    SessionKey::try_from(bytes).map_err(|_| StoreError::Corrupt {
        what: "a session key",
        why: format!("expected 32 bytes, found {}", bytes.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_database_password() {
        let cfg = StoreConfig::Postgres {
            url: "postgres://stepgate:s3cret@db.internal:5432/stepgate".into(),
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("junk:@:secret@"), "(unparsable url)");
    }
}
