//! Second factors and their durable state: TOTP secrets (sealed), recovery codes (hashed), the
//! emergency contact address, operator enrolment tokens (hashed) and the setup guide's "later"
//! count, all in `<data dir>/stepgate.db` next to the sessions, in tables of their own.
//!
//! `Factors` is the façade the portal and the admin CLI use. Every call is one or a few short
//! SQLite statements on one connection behind a mutex, held for the statement only; callers run
//! them inline. Auth outcomes are verdict enums; `Err` is only for faults (store, key file,
//! a secret that does not decrypt), and callers fail closed on it.
//!
//! The pure parts live in submodules: `totp` (RFC 4226/6238, URI, QR), `code` (email/SMS
//! one-time codes), `recovery` (recovery-code format and hashing), `cipher` (encryption at rest).

pub mod cipher;
pub mod code;
pub mod recovery;
pub mod totp;

pub use cipher::SecretCipher;
pub use code::{CodeCheck, PendingCode};
pub use totp::{TotpCheck, TotpSecret};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use ring::hmac;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use subtle::ConstantTimeEq;

use crate::clock::SharedClock;

const LOG_TARGET: &str = "stepgate::factor";

/// How long `enrolled` trusts its cache; a change made by another process (`stepgate admin`) is
/// seen within this time, a change made through this `Factors` at once.
pub const ENROLLED_CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept before the cache is simply cleared (bounded memory, SECURITY 38).
const ENROLLED_CACHE_MAX: usize = 100_000;
/// Shortest TOTP secret stored: 128 bits (SECURITY 22).
const MIN_SECRET_BYTES: usize = 16;
/// Characters of an enrolment token, shown in groups of four.
const TOKEN_CHARS: usize = 20;

/// Faults of the factor store. Messages are lowercase and never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error("factor store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("factor store: connection lock poisoned by a panic in another thread")]
    Poisoned,
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
}

/// The outcome of `Factors::verify_totp`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpVerdict {
    Accepted,
    /// A code for a step already used (logged at warn; the caller should notify the user).
    Replayed,
    Wrong,
    Malformed,
    NotEnrolled,
}

/// The outcome of `Factors::use_recovery_code`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryVerdict {
    Accepted {
        remaining: usize,
    },
    /// Not one of the user's unused codes (including malformed input and a code used already).
    Wrong,
}

/// What the account page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorSummary {
    /// When TOTP was activated (ms since the epoch), if it is.
    pub totp: Option<u64>,
    pub recovery_remaining: usize,
    pub emergency_email: Option<String>,
}

#[derive(Clone, Copy)]
struct CachedFlag {
    enrolled: bool,
    fetched_ms: u64,
}

/// Second factors of all users, durable in SQLite. `Debug` shows no secret.
pub struct Factors {
    conn: Mutex<Connection>,
    cipher: SecretCipher,
    enrolled_cache: DashMap<String, CachedFlag>,
    /// Bumped on every local change, so a cache fill that raced a change is thrown away.
    generation: AtomicU64,
    clock: SharedClock,
}

impl fmt::Debug for Factors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Factors")
            .field("cached_users", &self.enrolled_cache.len())
            .finish_non_exhaustive()
    }
}

/// Overwrites secret bytes before their memory is released. Best effort without a zeroize
/// crate: `black_box` keeps the compiler from dropping the writes as dead stores.
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

/// SQLite stores signed 64-bit integers; our times and steps are far below `i64::MAX`, and the
/// saturation only ever makes a stored step or expiry larger (stricter).
fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql_int(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS factor_totp (
    user TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    last_step INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS factor_recovery (
    user TEXT NOT NULL,
    hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    used_ms INTEGER,
    PRIMARY KEY (user, hash)
);
CREATE TABLE IF NOT EXISTS factor_contact (
    user TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    verified_ms INTEGER
);
CREATE TABLE IF NOT EXISTS factor_token (
    user TEXT PRIMARY KEY,
    hash BLOB NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS factor_skip (
    user TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);";

impl Factors {
    /// Opens (creating if missing) the factor tables in `<data_dir>/stepgate.db` and the key
    /// file (`<data_dir>/keys/factor.key` unless given). The database is useless without the key
    /// file: back them up together, store them apart.
    pub fn open(
        data_dir: &Path,
        key_file: Option<&Path>,
        clock: SharedClock,
    ) -> Result<Factors, FactorError> {
        let default_key = data_dir.join("keys").join("factor.key");
        let cipher = SecretCipher::load_or_create(key_file.unwrap_or(&default_key))?;
        let conn = Connection::open(data_dir.join("stepgate.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Factors {
            conn: Mutex::new(conn),
            cipher,
            enrolled_cache: DashMap::new(),
            generation: AtomicU64::new(0),
            clock,
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, FactorError> {
        self.conn.lock().map_err(|_| FactorError::Poisoned)
    }

    /// Drops the cached `enrolled` flag of `user` after a local change. The generation bump comes
    /// first, so a concurrent fill that read the old state discards itself (see `enrolled`).
    fn changed(&self, user: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.enrolled_cache.remove(user);
    }

    /// Whether the user has an active second factor (today: TOTP).
    ///
    /// Cached per user for `ENROLLED_CACHE_TTL` because this is asked on every request that
    /// needs a second factor. The approximation: a change made by another process (the admin
    /// CLI, or a second gateway on the same database) shows here up to 10 s late; changes made
    /// through this `Factors` show at once. A stale `true` after an operator reset makes the
    /// user face a challenge they cannot pass for those seconds; a stale `false` after an
    /// enrolment elsewhere sends them to the setup guide again. Neither grants access.
    pub fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        let now = self.clock.now_ms();
        let ttl = duration_ms(ENROLLED_CACHE_TTL);
        if let Some(hit) = self.enrolled_cache.get(user).map(|e| *e) {
            // A clock that went backwards counts as stale.
            if now >= hit.fetched_ms && now - hit.fetched_ms < ttl {
                return Ok(hit.enrolled);
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let enrolled = self.totp_enrolled(user)?;
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

    /// Whether the user has an activated TOTP secret (uncached).
    pub fn totp_enrolled(&self, user: &str) -> Result<bool, FactorError> {
        let found = self
            .conn()?
            .query_row(
                "SELECT 1 FROM factor_totp WHERE user = ?1",
                params![user],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Stores (sealed) an activated TOTP secret, replacing any previous one, with
    /// `accepted_step` as the last used step, so the code that proved the activation cannot be
    /// replayed at the challenge. Secrets under 128 bits are refused.
    pub fn activate_totp(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
    ) -> Result<(), FactorError> {
        let sealed = self.seal_secret(user, secret)?;
        let now = self.clock.now_ms();
        self.conn()?.execute(
            "INSERT OR REPLACE INTO factor_totp (user, secret, last_step, created_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![user, sealed, sql_int(accepted_step), sql_int(now)],
        )?;
        self.changed(user);
        tracing::info!(target: LOG_TARGET, user, "totp activated");
        Ok(())
    }

    /// First-time enrolment with an authenticator app, in one transaction: the activated TOTP
    /// secret (with `accepted_step` as its last used step), the emergency contact email and ten
    /// new recovery codes, returned for showing once. `Ok(None)` when the user has a TOTP secret
    /// already (set up meanwhile in another session): nothing changes, so a first-time setup can
    /// never replace a factor (that takes `replace_totp`, behind a fresh proof).
    pub fn enrol_totp(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
        emergency_email: &str,
    ) -> Result<Option<Vec<String>>, FactorError> {
        check_email(emergency_email)?;
        let sealed = self.seal_secret(user, secret)?;
        let now = sql_int(self.clock.now_ms());
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let added = tx.execute(
            "INSERT INTO factor_totp (user, secret, last_step, created_ms)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT(user) DO NOTHING",
            params![user, sealed, sql_int(accepted_step), now],
        )?;
        if added == 0 {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO factor_contact (user, email, verified_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(user) DO UPDATE SET email = excluded.email,
                                             verified_ms = excluded.verified_ms",
            params![user, emergency_email, now],
        )?;
        let codes = self.replace_recovery_codes(&tx, user)?;
        tx.commit()?;
        drop(conn);
        self.changed(user);
        tracing::info!(target: LOG_TARGET, user, "totp activated; emergency email and recovery codes set");
        Ok(Some(codes))
    }

    /// Replaces the user's TOTP secret with a new one whose code was just accepted at
    /// `accepted_step`; recovery codes and the emergency email stay. Until this call the old
    /// secret keeps working. `Ok(false)` when the user has no TOTP secret (removed meanwhile):
    /// nothing changes.
    pub fn replace_totp(
        &self,
        user: &str,
        secret: &TotpSecret,
        accepted_step: u64,
    ) -> Result<bool, FactorError> {
        let sealed = self.seal_secret(user, secret)?;
        let now = sql_int(self.clock.now_ms());
        let replaced = self.conn()?.execute(
            "UPDATE factor_totp SET secret = ?2, last_step = ?3, created_ms = ?4 WHERE user = ?1",
            params![user, sealed, sql_int(accepted_step), now],
        )?;
        self.changed(user);
        if replaced == 1 {
            tracing::info!(target: LOG_TARGET, user, "totp replaced");
        }
        Ok(replaced == 1)
    }

    fn seal_secret(&self, user: &str, secret: &TotpSecret) -> Result<Vec<u8>, FactorError> {
        let bytes = secret.as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(FactorError::SecretTooShort {
                bits: bytes.len() * 8,
            });
        }
        self.cipher.seal(user, bytes)
    }

    /// Verifies a code against the user's TOTP at the clock's time.
    ///
    /// The step is recorded with `UPDATE .. WHERE last_step < step AND secret = sealed`: of two
    /// requests (or two gateways sharing the database) racing with one code, exactly one changes
    /// the row and is `Accepted`; the other is `Replayed`. Matching the sealed blob as well means
    /// a code of a secret replaced in the meantime cannot be recorded against the new one. A
    /// secret that does not decrypt is an `Err` (fail closed), never a verdict.
    pub fn verify_totp(&self, user: &str, code: &str) -> Result<TotpVerdict, FactorError> {
        let row = self
            .conn()?
            .query_row(
                "SELECT secret, last_step FROM factor_totp WHERE user = ?1",
                params![user],
                |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()?;
        let Some((sealed, last_step)) = row else {
            return Ok(TotpVerdict::NotEnrolled);
        };
        let secret = TotpSecret::from_bytes(self.cipher.open(user, &sealed)?);
        let now = self.clock.now_secs();
        let step = match totp::check(secret.as_bytes(), code, now, Some(from_sql_int(last_step))) {
            TotpCheck::Accepted { step } => step,
            TotpCheck::Replayed { step } => {
                tracing::warn!(target: LOG_TARGET, user, step, "totp code replayed; refused");
                return Ok(TotpVerdict::Replayed);
            }
            TotpCheck::Wrong => return Ok(TotpVerdict::Wrong),
            TotpCheck::Malformed => return Ok(TotpVerdict::Malformed),
        };
        let recorded = self.conn()?.execute(
            "UPDATE factor_totp SET last_step = ?2
             WHERE user = ?1 AND last_step < ?2 AND secret = ?3",
            params![user, sql_int(step), sealed],
        )?;
        if recorded == 1 {
            Ok(TotpVerdict::Accepted)
        } else {
            tracing::warn!(
                target: LOG_TARGET,
                user,
                step,
                "totp code replayed (lost a race for its step); refused"
            );
            Ok(TotpVerdict::Replayed)
        }
    }

    /// Removes the user's TOTP secret; `false` if there was none.
    pub fn remove_totp(&self, user: &str) -> Result<bool, FactorError> {
        let removed = self
            .conn()?
            .execute("DELETE FROM factor_totp WHERE user = ?1", params![user])?;
        self.changed(user);
        if removed > 0 {
            tracing::info!(target: LOG_TARGET, user, "totp removed");
        }
        Ok(removed > 0)
    }

    /// Replaces all of the user's recovery codes with `recovery::COUNT` new ones and returns them
    /// for showing once; only their keyed hashes are stored.
    pub fn new_recovery_codes(&self, user: &str) -> Result<Vec<String>, FactorError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let codes = self.replace_recovery_codes(&tx, user)?;
        tx.commit()?;
        drop(conn);
        tracing::info!(target: LOG_TARGET, user, "recovery codes replaced");
        Ok(codes)
    }

    fn replace_recovery_codes(
        &self,
        tx: &rusqlite::Transaction<'_>,
        user: &str,
    ) -> Result<Vec<String>, FactorError> {
        let codes = recovery::generate();
        let now = sql_int(self.clock.now_ms());
        tx.execute("DELETE FROM factor_recovery WHERE user = ?1", params![user])?;
        let mut insert = tx.prepare(
            "INSERT OR REPLACE INTO factor_recovery (user, hash, created_ms, used_ms)
             VALUES (?1, ?2, ?3, NULL)",
        )?;
        for code in &codes {
            // `generate` makes XXXXX-XXXXX from alphabet characters: without the dash it is
            // exactly the normalised form.
            let hash = recovery::hash(self.cipher.pepper(), user, &code.replace('-', ""));
            insert.execute(params![user, &hash[..], now])?;
        }
        Ok(codes)
    }

    /// Uses a recovery code: single use, marked used in the same transaction that finds it. The
    /// entered code's hash is compared in constant time against every unused hash of the user.
    /// Attempts must be rate-limited by the caller, like every second-factor attempt.
    pub fn use_recovery_code(
        &self,
        user: &str,
        code: &str,
    ) -> Result<RecoveryVerdict, FactorError> {
        let Some(normalized) = recovery::normalize(code) else {
            return Ok(RecoveryVerdict::Wrong);
        };
        let entered = recovery::hash(self.cipher.pepper(), user, &normalized);
        let now = sql_int(self.clock.now_ms());
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored: Vec<Vec<u8>> = {
            let mut select =
                tx.prepare("SELECT hash FROM factor_recovery WHERE user = ?1 AND used_ms IS NULL")?;
            let rows = select.query_map(params![user], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut found = subtle::Choice::from(0);
        for hash in &stored {
            found |= hash.as_slice().ct_eq(&entered[..]);
        }
        if !bool::from(found) {
            return Ok(RecoveryVerdict::Wrong);
        }
        let marked = tx.execute(
            "UPDATE factor_recovery SET used_ms = ?3
             WHERE user = ?1 AND hash = ?2 AND used_ms IS NULL",
            params![user, &entered[..], now],
        )?;
        if marked != 1 {
            return Ok(RecoveryVerdict::Wrong);
        }
        let remaining = count_unused(&tx, user)?;
        tx.commit()?;
        drop(conn);
        tracing::info!(target: LOG_TARGET, user, remaining, "recovery code used");
        Ok(RecoveryVerdict::Accepted { remaining })
    }

    /// Unused recovery codes of the user.
    pub fn recovery_remaining(&self, user: &str) -> Result<usize, FactorError> {
        let conn = self.conn()?;
        count_unused(&conn, user)
    }

    pub fn emergency_email(&self, user: &str) -> Result<Option<String>, FactorError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT email FROM factor_contact WHERE user = ?1",
                params![user],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Sets the emergency contact address. The caller proves the user controls it (a
    /// `PendingCode` sent there) before calling; the time of the call is kept as `verified_ms`.
    /// Only the shape is checked here: one `@`, at most 254 bytes, no whitespace or control
    /// characters (which keeps header injection out of whatever later sends mail to it).
    pub fn set_emergency_email(&self, user: &str, email: &str) -> Result<(), FactorError> {
        check_email(email)?;
        let now = sql_int(self.clock.now_ms());
        self.conn()?.execute(
            "INSERT INTO factor_contact (user, email, verified_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(user) DO UPDATE SET email = excluded.email,
                                             verified_ms = excluded.verified_ms",
            params![user, email, now],
        )?;
        tracing::info!(target: LOG_TARGET, user, "emergency email set");
        Ok(())
    }

    fn token_hash(&self, user: &str, normalized: &str) -> [u8; 32] {
        // Domain-separated from recovery-code hashes, though both use the pepper.
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.cipher.pepper());
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
    pub fn issue_enrolment_token(&self, user: &str, ttl: Duration) -> Result<String, FactorError> {
        let token = recovery::random_chars(TOKEN_CHARS);
        let hash = self.token_hash(user, &token);
        let expires = self.clock.now_ms().saturating_add(duration_ms(ttl));
        self.conn()?.execute(
            "INSERT OR REPLACE INTO factor_token (user, hash, expires_ms) VALUES (?1, ?2, ?3)",
            params![user, &hash[..], sql_int(expires)],
        )?;
        tracing::info!(target: LOG_TARGET, user, expires_ms = expires, "enrolment token issued");
        Ok(recovery::grouped(&token, 4))
    }

    /// `true` once for the user's valid, unexpired token, which is consumed; `false` otherwise
    /// (wrong, expired, another user's, already used, or not a token at all).
    pub fn redeem_enrolment_token(&self, user: &str, token: &str) -> Result<bool, FactorError> {
        let Some(normalized) = recovery::normalize_chars(token, TOKEN_CHARS) else {
            return Ok(false);
        };
        let entered = self.token_hash(user, &normalized);
        let now = self.clock.now_ms();
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                "SELECT hash, expires_ms FROM factor_token WHERE user = ?1",
                params![user],
                |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()?;
        let Some((stored, expires_ms)) = row else {
            return Ok(false);
        };
        let matches = bool::from(stored.as_slice().ct_eq(&entered[..]));
        if !matches || now >= from_sql_int(expires_ms) {
            return Ok(false);
        }
        let consumed = tx.execute(
            "DELETE FROM factor_token WHERE user = ?1 AND hash = ?2",
            params![user, &entered[..]],
        )?;
        tx.commit()?;
        drop(conn);
        if consumed == 1 {
            tracing::info!(target: LOG_TARGET, user, "enrolment token redeemed");
        }
        Ok(consumed == 1)
    }

    /// How many times the user chose "later" in the setup guide.
    pub fn skips_used(&self, user: &str) -> Result<u32, FactorError> {
        let count = self
            .conn()?
            .query_row(
                "SELECT count FROM factor_skip WHERE user = ?1",
                params![user],
                |row| row.get::<_, i64>(0),
            )
            .optional()?;
        Ok(count.map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    /// Records one more "later" and returns the new count (atomic increment).
    pub fn record_skip(&self, user: &str) -> Result<u32, FactorError> {
        let count = self.conn()?.query_row(
            "INSERT INTO factor_skip (user, count) VALUES (?1, 1)
             ON CONFLICT(user) DO UPDATE SET count = count + 1
             RETURNING count",
            params![user],
            |row| row.get::<_, i64>(0),
        )?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Operator reset: removes the user's TOTP secret, recovery codes, enrolment token and skip
    /// count, and the emergency email unless `keep_contact`. One transaction.
    pub fn reset(&self, user: &str, keep_contact: bool) -> Result<(), FactorError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for table in [
            "factor_totp",
            "factor_recovery",
            "factor_token",
            "factor_skip",
        ] {
            // Table names are constants of this module, never input.
            tx.execute(
                &format!("DELETE FROM {table} WHERE user = ?1"),
                params![user],
            )?;
        }
        if !keep_contact {
            tx.execute("DELETE FROM factor_contact WHERE user = ?1", params![user])?;
        }
        tx.commit()?;
        drop(conn);
        self.changed(user);
        tracing::info!(target: LOG_TARGET, user, keep_contact, "second factors reset");
        Ok(())
    }

    /// A summary for the account page.
    pub fn summary(&self, user: &str) -> Result<FactorSummary, FactorError> {
        let conn = self.conn()?;
        let totp = conn
            .query_row(
                "SELECT created_ms FROM factor_totp WHERE user = ?1",
                params![user],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map(from_sql_int);
        let recovery_remaining = count_unused(&conn, user)?;
        let emergency_email = conn
            .query_row(
                "SELECT email FROM factor_contact WHERE user = ?1",
                params![user],
                |row| row.get(0),
            )
            .optional()?;
        Ok(FactorSummary {
            totp,
            recovery_remaining,
            emergency_email,
        })
    }
}

fn count_unused(conn: &Connection, user: &str) -> Result<usize, FactorError> {
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM factor_recovery WHERE user = ?1 AND used_ms IS NULL",
        params![user],
        |row| row.get(0),
    )?;
    Ok(usize::try_from(count).unwrap_or(0))
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
