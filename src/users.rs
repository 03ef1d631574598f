//! The user directory: who may sign in, their argon2id password hash, profile and groups.
//!
//! - [`UserDirectory`] is the capability the portal needs; [`FileDirectory`] implements it from a
//!   TOML users file (`[users.NAME]` tables), reloaded when the file changes on disk.
//! - [`validate_users`] checks that file and reports every problem at once with its line, in the
//!   same `FILE:LINE: key: message` form as the gateway configuration.
//! - [`PasswordVerifier`] runs argon2 off the proxy's hot path, on tokio's blocking pool, with
//!   bounded concurrency (ASVS 5.0 2.4.1), and spends the same work on unknown and disabled
//!   accounts as on real ones (ASVS 5.0 6.3.8).
//!
//! Names are matched after [`normalize_username`], so one person is one account and one failure
//! counter however they type their name.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use argon2::password_hash::PasswordVerifier as _;
use argon2::password_hash::{self, PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use tokio::sync::Semaphore;
use toml::Spanned;
use unicode_normalization::UnicodeNormalization;

use crate::diagnostics::{key_in_doc, line_of, unknown_key, ConfigError, KeyPath, Problem};

/// Longest accepted user name, in characters after normalisation.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest password that is hashed at all; longer ones fail without hashing (ASVS 4.0.3 2.1.2:
/// at least 64 characters must be allowed; the cap stops hashing megabytes per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Raw input longer than this is refused before normalising (NFKC can expand a character up to
/// 18 times, and this runs on every sign-in attempt with untrusted input).
const MAX_RAW_NAME_BYTES: usize = 4096;
const LOG_TARGET: &str = "stepgate::users";
/// Used only if hashing a fresh dummy at start-up fails; any argon2id hash with the default
/// parameters will do, since a dummy check always ends in `false`.
const FALLBACK_DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$pqL2ud8we/QSYV1jNed9KQ$a+BUztkXLv7fI9I4I1GMpo2p6Juo5PMBmFRQXjR1Bo4";

/// A user as the directory knows them. `Debug` never prints the password hash.
#[derive(Clone)]
pub struct User {
    /// Normalised with [`normalize_username`]: the account's identity everywhere.
    pub name: String,
    pub display_name: String,
    pub email: Option<String>,
    /// E.164, e.g. `+821000000001`.
    pub phone: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    password_hash: String,
}

impl User {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// A fingerprint of the users file's hash for this user (never the hash): a password the
    /// user set is kept with the fingerprint of the file hash it replaced, and counts only while
    /// the file still has that hash. An operator who writes a new hash into the file resets the
    /// password that way.
    pub fn file_hash_fingerprint(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.password_hash.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("groups", &self.groups)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Where users come from; LDAP or an upstream identity provider can implement this later.
pub trait UserDirectory: Send + Sync {
    /// `name` must already be normalised with [`normalize_username`].
    fn get(&self, name: &str) -> Option<Arc<User>>;

    /// The one user whose email is `email` (compared without regard to case), so that a user
    /// can sign in with it; `None` when no user, or more than one, has it.
    fn by_email(&self, _email: &str) -> Option<Arc<User>> {
        None
    }

    /// The first user `matches` picks (a reverse lookup, such as a passkey's user handle);
    /// `None` from a directory that cannot list its users.
    fn user_where(&self, _matches: &dyn Fn(&User) -> bool) -> Option<Arc<User>> {
        None
    }

    /// The account a typed sign-in name means: the user of that name, else, for a name with an
    /// `@`, the one user with that email. `name` is normalised.
    fn find(&self, name: &str) -> Option<Arc<User>> {
        self.get(name)
            .or_else(|| name.contains('@').then(|| self.by_email(name)).flatten())
    }
}

/// Case, width, compatibility characters and surrounding whitespace do not make a new account:
/// `"  ＡＬＩＣＥ "`, `"ALICE"` and `"alice"` are one account (and one failure counter).
///
/// NFKC, then `to_lowercase`, then NFKC again (lower-casing can un-normalise), then trim. Returns
/// `None` for names that are empty, longer than [`MAX_NAME_CHARS`] characters, or contain control
/// characters or invisible format characters (zero-width, bidi overrides, BOM), which would let
/// two names look the same on screen.
///
/// This is Unicode lower-casing, not full case folding, and not locale-aware: `"ß"` stays `"ß"`
/// (not `"ss"`), and the Turkish `"ı"` (dotless) and `"İ"` (becomes `"i̇"`, i plus a combining dot)
/// stay distinct from `"i"`. That is the safe direction: it never merges two names an operator
/// wrote as different, it only fails to merge some a user might think equal.
pub fn normalize_username(raw: &str) -> Option<String> {
    if raw.len() > MAX_RAW_NAME_BYTES {
        return None;
    }
    let lowered = raw.nfkc().collect::<String>().to_lowercase();
    let folded: String = lowered.nfkc().collect();
    let name = folded.trim();
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(hidden_or_control);
    valid.then(|| name.to_owned())
}

fn hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// True when `text` is TOML whose top level is a users file (a `users` table and no gateway
/// `listener` or `app` keys); `stepgate check` uses this to pick the validator.
pub fn looks_like_users_file(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| {
        t.get("users").is_some_and(toml::Value::is_table)
            && !t.contains_key("listener")
            && !t.contains_key("app")
    })
}

/// What the file changes were detected by. Two writes of the same length within the file
/// system's timestamp resolution (nanoseconds on ext4, xfs, tmpfs) would look like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

fn read_error(path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            line: 0,
            key: "(file)".into(),
            message: format!("cannot read the users file ({e})"),
        }],
    }
}

/// The users file, reloaded when it changes on disk. Readers see either the old or the new
/// set of users, never a mix (`ArcSwap`).
pub struct FileDirectory {
    path: PathBuf,
    users: ArcSwap<HashMap<String, Arc<User>>>,
    /// The file as last read (`None` while it cannot be read), and a new version seen once
    /// and not read yet. Locked for a whole reload, so concurrent reloads do not read the file
    /// twice.
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
}

impl FileDirectory {
    pub fn load(path: &Path) -> Result<FileDirectory, ConfigError> {
        // The stamp is taken before reading, so a write during the read is seen next time.
        let seen = stamp(path).map_err(|e| read_error(path, &e))?;
        let text = std::fs::read_to_string(path).map_err(|e| read_error(path, &e))?;
        let users = validate_users(path, &text)?;
        Ok(FileDirectory {
            path: path.to_path_buf(),
            users: ArcSwap::from_pointee(users),
            seen: Mutex::new((Some(seen), None)),
        })
    }

    /// Re-reads the file when its mtime or length changed and then stayed the same for one
    /// more call (one poll): an editor or `cp` that truncates and rewrites the file in place is
    /// never read half-written (a torn read could drop users, whose sessions would then end).
    /// On a bad or unreadable file it keeps the old users, logs every problem and returns
    /// `Err`, once per change of the file (the broken version counts as seen, so a poll loop
    /// does not repeat the same errors). `Ok(true)`: the new users are live.
    pub fn reload_if_changed(&self) -> Result<bool, ConfigError> {
        let mut guard = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, settling) = &mut *guard;
        let result = match stamp(&self.path) {
            Err(_) if seen.is_none() => return Ok(false),
            Err(e) => {
                *seen = None;
                *settling = None;
                Err(read_error(&self.path, &e))
            }
            Ok(now) if *seen == Some(now) => return Ok(false),
            Ok(now) if *settling != Some(now) => {
                // Changed since the last look: read it once it has stopped changing.
                *settling = Some(now);
                return Ok(false);
            }
            Ok(now) => {
                *seen = Some(now);
                *settling = None;
                std::fs::read_to_string(&self.path)
                    .map_err(|e| read_error(&self.path, &e))
                    .and_then(|text| validate_users(&self.path, &text))
            }
        };
        match result {
            Ok(users) => {
                tracing::info!(target: LOG_TARGET, file = %self.path.display(), users = users.len(), "users file reloaded");
                self.users.store(Arc::new(users));
                Ok(true)
            }
            Err(e) => {
                for p in &e.problems {
                    tracing::error!(target: LOG_TARGET, file = %e.file.display(), line = p.line,
                        key = %p.key, "users file not reloaded, keeping the previous users: {}", p.message);
                }
                Err(e)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.users.load().len()
    }

    /// The users the file marks `disabled`.
    pub fn disabled(&self) -> Vec<String> {
        let users = self.users.load();
        let mut names: Vec<String> = users
            .values()
            .filter(|u| u.disabled)
            .map(|u| u.name.clone())
            .collect();
        names.sort();
        names
    }

    pub fn is_empty(&self) -> bool {
        self.users.load().is_empty()
    }
}

impl UserDirectory for FileDirectory {
    fn get(&self, name: &str) -> Option<Arc<User>> {
        self.users.load().get(name).cloned()
    }

    fn by_email(&self, email: &str) -> Option<Arc<User>> {
        let users = self.users.load();
        let mut found = users.values().filter(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.to_lowercase() == email.to_lowercase())
        });
        match (found.next(), found.next()) {
            (Some(user), None) => Some(Arc::clone(user)),
            _ => None,
        }
    }

    fn user_where(&self, matches: &dyn Fn(&User) -> bool) -> Option<Arc<User>> {
        self.users.load().values().find(|u| matches(u)).cloned()
    }
}

/// A fault while checking a password; a wrong password is `Ok(false)`, not an error.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the password check task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("password checks are shut down (semaphore closed)")]
    Closed,
    #[error("too many password checks are waiting ({0}); refused without hashing")]
    Busy(usize),
    #[error("a stored password hash cannot be used: {0}")]
    Hash(password_hash::Error),
}

/// How many password checks may wait per hashing slot before more are refused.
pub const WAITING_PER_PERMIT: usize = 16;

/// Which hashing slots a password check may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Everyone: `password_hash_concurrency` slots, and a bounded queue behind them.
    General,
    /// A sign-in of a user from an address they signed in from lately, or from a browser they
    /// used before: slots of its own (a quarter of the general ones, at least one) and a queue
    /// of its own, so a flood of attempts from elsewhere cannot refuse the owner.
    Known,
}

/// The slots of [`Lane::Known`] for `general` general slots.
fn reserved_slots(general: usize) -> usize {
    (general / 4).max(1)
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Password verification off the proxy's hot path with bounded concurrency.
///
/// Memory is bounded by `max_concurrent` × the hashes' `m` cost (19 MiB each with the defaults
/// of `stepgate hash-password`). Callers beyond the limit wait for a permit, at most
/// [`WAITING_PER_PERMIT`] per permit; beyond that a check is refused at once with
/// [`VerifyError::Busy`] (the sign-in page answers 503), so a sign-in flood from sources the
/// per-address and per-user limits do not catch cannot pile up waiting requests, and their
/// memory and connections, without bound. What is refused is a busy server, not an account: the
/// answer does not depend on the user name.
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
    /// Callers waiting for a permit, and how many may.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// The lane kept for sign-ins from where the user is known ([`Lane::Known`]): its own
    /// slots and queue, so a flood of strangers' attempts cannot shut the owner out.
    reserved: Arc<Semaphore>,
    reserved_waiting: Arc<AtomicUsize>,
    reserved_max_waiting: usize,
    /// Checked instead of the real hash for unknown and disabled users. It has the default
    /// parameters of `stepgate hash-password`, so the timing matches users hashed with them;
    /// a user whose hash has other costs takes a different time than an unknown name.
    dummy_hash: Arc<str>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl PasswordVerifier {
    pub fn new(max_concurrent: usize) -> PasswordVerifier {
        // What the dummy hides is irrelevant: a match against it still answers `false`.
        let salt = SaltString::generate(&mut rand::thread_rng());
        let dummy_hash = match Argon2::default().hash_password(b"stepgate-dummy", &salt) {
            Ok(hash) => hash.to_string(),
            Err(_) => FALLBACK_DUMMY.to_owned(),
        };
        let permits = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        PasswordVerifier {
            permits: Arc::new(Semaphore::new(permits)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: permits.saturating_mul(WAITING_PER_PERMIT),
            reserved: Arc::new(Semaphore::new(reserved_slots(permits))),
            reserved_waiting: Arc::new(AtomicUsize::new(0)),
            reserved_max_waiting: reserved_slots(permits) * WAITING_PER_PERMIT,
            dummy_hash: dummy_hash.into(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hashes running right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// `true` only for an enabled user and their password. Runs on the blocking pool holding a
    /// semaphore permit; the permit moves into the blocking task, so a caller that gives up
    /// (client gone) does not free a slot while its hash still runs. For an unknown or disabled
    /// user the password is checked against the dummy hash and the answer is `false`, so timing
    /// does not tell them apart. Passwords over [`MAX_PASSWORD_BYTES`] are `false` without hashing
    /// (that reveals only the length the caller sent). The final comparison inside argon2's
    /// `password-hash` is constant-time.
    pub async fn verify(&self, user: Option<&User>, password: &str) -> Result<bool, VerifyError> {
        self.verify_with(user, None, password, Lane::General).await
    }

    /// As [`verify`](Self::verify), against `own` (a password the user set, kept in the store)
    /// instead of the users file's hash when there is one.
    pub async fn verify_with(
        &self,
        user: Option<&User>,
        own: Option<&str>,
        password: &str,
        lane: Lane,
    ) -> Result<bool, VerifyError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let (hash, real) = match user {
            Some(u) if !u.disabled => (own.unwrap_or(&u.password_hash).to_owned(), true),
            _ => (self.dummy_hash.to_string(), false),
        };
        let password = password.to_owned();
        let matched = self
            .run(lane, move || check_hash(&hash, password.as_bytes()))
            .await?;
        Ok(real && matched)
    }

    /// An argon2id hash (PHC string, the parameters of `stepgate hash-password`) of a new
    /// password, under the same slots and limits as checks.
    pub async fn hash(&self, password: &str) -> Result<String, VerifyError> {
        let password = password.to_owned();
        self.run(Lane::General, move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(VerifyError::Hash)
        })
        .await
    }

    /// Runs one hashing job on the blocking pool under a permit (see the type's docs).
    async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        job: impl FnOnce() -> Result<T, VerifyError> + Send + 'static,
    ) -> Result<T, VerifyError> {
        let (permits, waiting, max_waiting) = match lane {
            Lane::General => (&self.permits, &self.waiting, self.max_waiting),
            Lane::Known => (
                &self.reserved,
                &self.reserved_waiting,
                self.reserved_max_waiting,
            ),
        };
        let permit = match Arc::clone(permits).try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(VerifyError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let now_waiting = waiting.fetch_add(1, Ordering::SeqCst);
                // Decremented however the wait ends, the caller's cancellation included.
                let _queued = Queued(waiting);
                if now_waiting >= max_waiting {
                    return Err(VerifyError::Busy(now_waiting));
                }
                Arc::clone(permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| VerifyError::Closed)?
            }
        };
        let (in_flight, peak) = (Arc::clone(&self.in_flight), Arc::clone(&self.peak));
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_below_proxy_priority();
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = job();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            out
        })
        .await?
    }
}

/// Lowers the calling (blocking-pool) thread's CPU priority to nice 10, once per thread.
///
/// A password hash is ~20 ms of one core. On a small machine under a sign-in flood, hashing at
/// the proxy's priority would take a core's worth of time slices from proxied requests; at nice
/// 10 the scheduler gives a runnable proxy thread about nine times the share, so hashing uses
/// what the proxy leaves and sign-ins slow down (or are shed, see [`WAITING_PER_PERMIT`])
/// before proxied traffic does. Linux only (elsewhere a no-op); on Linux nice is per thread.
fn run_below_proxy_priority() {
    #[cfg(target_os = "linux")]
    {
        thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        LOWERED.with(|lowered| {
            if !lowered.replace(true) {
                // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
                let rc = unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10)
                };
                if rc != 0 {
                    tracing::debug!("could not lower the hashing thread's priority");
                }
            }
        });
    }
}

fn check_hash(hash: &str, password: &[u8]) -> Result<bool, VerifyError> {
    let parsed = PasswordHash::new(hash).map_err(VerifyError::Hash)?;
    match Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(VerifyError::Hash(e)),
    }
}

/// The serde mirror of the users file. Unknown keys are collected by `serde_ignored`, as in
/// `config::validate`, so that all of them are reported at once.
#[derive(Deserialize)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<String, UserEntry>,
}

#[derive(Deserialize)]
struct UserEntry {
    display_name: Option<Str>,
    email: Option<Str>,
    phone: Option<Str>,
    #[serde(default)]
    groups: Vec<Str>,
    password: Option<Str>,
    #[serde(default)]
    disabled: bool,
}

/// Validates users-file text: every problem at once, each with its line, or the users by
/// normalised name. Values are echoed in messages except passwords, which may be plaintext
/// pasted by mistake.
pub fn validate_users(path: &Path, text: &str) -> Result<HashMap<String, Arc<User>>, ConfigError> {
    let mut unknown = Vec::new();
    let parsed: Result<UsersFile, _> =
        serde_ignored::deserialize(toml::Deserializer::new(text), |p| {
            unknown.push(KeyPath::of(&p))
        });
    let doc = toml_edit::ImDocument::parse(text.to_owned()).ok();
    let mut v = Checker {
        text,
        doc,
        problems: Vec::new(),
    };
    match parsed {
        Ok(file) => v.users(file, unknown),
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let key = v
                .doc
                .as_ref()
                .and_then(|d| key_in_doc(d.as_table(), offset));
            let key = key.unwrap_or_else(|| "(syntax)".to_owned());
            // serde quotes the value it rejected; a plaintext password must not reach the log.
            let message = match key.ends_with("password") {
                true => "must be a quoted argon2 PHC string (value not shown)".to_owned(),
                false => e.message().trim().replace('\n', ", "),
            };
            v.push(v.line_of(offset), key, message);
            None
        }
    }
    .filter(|_| v.problems.is_empty())
    .ok_or_else(|| {
        v.problems.sort_by_key(|p| p.line);
        let (file, problems) = (path.to_path_buf(), v.problems);
        ConfigError { file, problems }
    })
}

struct Checker<'a> {
    text: &'a str,
    doc: Option<toml_edit::ImDocument<String>>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    fn push(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        let (key, message) = (key.into(), message.into());
        self.problems.push(Problem { line, key, message });
    }

    /// The line of a key given by its path; 0 if not found.
    fn line_at(&self, path: &KeyPath) -> usize {
        let doc = self.doc.as_ref().map(|d| d.as_table());
        doc.and_then(|d| path.span_in(d))
            .map_or(0, |s| self.line_of(s.start))
    }

    fn users(&mut self, file: UsersFile, unknown: Vec<KeyPath>) -> Option<UserMap> {
        for path in unknown {
            let doc = self.doc.as_ref().map(|d| d.as_table());
            self.problems.push(unknown_key(self.text, doc, &path));
        }
        let mut entries: Vec<_> = (file.users.into_iter())
            .map(|(raw, e)| (self.line_at(&KeyPath::keys(&["users", &raw])), raw, e))
            .collect();
        entries.sort_by_key(|(line, _, _)| *line);
        let mut users = UserMap::new();
        let mut first: HashMap<String, (String, usize)> = HashMap::new();
        for (line, raw, entry) in entries {
            let key = KeyPath::keys(&["users", &raw]).to_string();
            let name = normalize_username(&raw);
            if let Some((other, other_line)) = name.as_ref().and_then(|n| first.get(n)) {
                let message = format!("`{raw}` is the same user as `{other}` on line {other_line} once case, width and compatibility characters are folded; remove one");
                self.push(line, &key, message);
            } else if let Some(name) = name {
                first.insert(name, (raw.clone(), line));
            }
            if let Some(user) = self.user(&key, line, &raw, entry) {
                users
                    .entry(user.name.clone())
                    .or_insert_with(|| Arc::new(user));
            }
        }
        Some(users)
    }

    /// Checks one `[users.NAME]` table; `None` when there is no user to build.
    fn user(&mut self, key: &str, line: usize, raw: &str, e: UserEntry) -> Option<User> {
        let name = normalize_username(raw);
        if name.is_none() {
            let message = format!("not a usable user name: 1 to {MAX_NAME_CHARS} characters, no control or invisible characters (found {raw:?})");
            self.push(line, key, message);
        }
        let display_name = self.field(format!("{key}.display_name"), &e.display_name, text_rule);
        let email = self.field(format!("{key}.email"), &e.email, email_rule);
        let phone = self.field(format!("{key}.phone"), &e.phone, e164_rule);
        let mut groups: Vec<String> = Vec::new();
        for (i, g) in e.groups.iter().enumerate() {
            let (group, line) = (g.get_ref(), self.line_of(g.span().start));
            let valid = group
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
            let message = if !valid || !(1..=64).contains(&group.len()) {
                format!("must be 1 to 64 of a-z, 0-9, `_` and `-` (found {group:?})")
            } else if groups.contains(group) {
                format!("group {group:?} is listed twice")
            } else {
                groups.push(group.clone());
                continue;
            };
            self.push(line, format!("{key}.groups[{i}]"), message);
        }
        let Some(password) = &e.password else {
            let message =
                "this key is required (found none); make one with `stepgate hash-password`";
            self.push(line, format!("{key}.password"), message);
            return None;
        };
        if let Err(why) = check_phc(password.get_ref()) {
            let message = format!("not a usable argon2 PHC string such as \"$argon2id$v=19$m=19456,t=2,p=1$...\" ({why}; value not shown); make one with `stepgate hash-password`");
            self.push(
                self.line_of(password.span().start),
                format!("{key}.password"),
                message,
            );
        }
        Some(User {
            display_name: display_name.unwrap_or_else(|| raw.trim().to_owned()),
            name: name?,
            email,
            phone,
            groups,
            disabled: e.disabled,
            password_hash: password.get_ref().clone(),
        })
    }

    /// An optional string checked by `rule`; the value (trimmed) is kept either way.
    fn field(&mut self, key: String, value: &Option<Str>, rule: Rule) -> Option<String> {
        let value = value.as_ref()?;
        let found = value.get_ref();
        if let Err(expected) = rule(found) {
            let message = format!("must be {expected} (found {found:?})");
            self.push(self.line_of(value.span().start), key, message);
        }
        Some(found.trim().to_owned())
    }
}

type UserMap = HashMap<String, Arc<User>>;
type Str = Spanned<String>;
/// `Err` carries what was expected, for the message.
type Rule = fn(&str) -> Result<(), &'static str>;

fn rule(ok: bool, expected: &'static str) -> Result<(), &'static str> {
    ok.then_some(()).ok_or(expected)
}

/// Free text for pages and headers (display names).
fn text_rule(s: &str) -> Result<(), &'static str> {
    let s = s.trim();
    let ok = !s.is_empty() && s.chars().count() <= 256 && !s.chars().any(hidden_or_control);
    rule(
        ok,
        "1 to 256 characters, no control or invisible characters",
    )
}

/// Deliberately loose (one `@` with something on both sides, no spaces); delivery proves the
/// rest. Two `@` are refused: mail systems disagree on which one splits the address.
fn email_rule(s: &str) -> Result<(), &'static str> {
    let parts = s
        .split_once('@')
        .filter(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    let clean = !s.chars().any(|c| c.is_whitespace() || c.is_control());
    rule(
        parts.is_some() && s.len() <= 254 && clean,
        "an email address such as \"alice@example.com\"",
    )
}

/// Whether `s` is a phone number in E.164 form (`+821000000001`).
pub fn is_e164(s: &str) -> bool {
    e164_rule(s).is_ok()
}

/// `+`, then 8 to 15 digits; country codes never start with 0.
fn e164_rule(s: &str) -> Result<(), &'static str> {
    let digits = s.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len()) && !digits.starts_with('0');
    let expected = "an E.164 number: `+`, then 8 to 15 digits, e.g. \"+821000000001\"";
    rule(ok && digits.bytes().all(|b| b.is_ascii_digit()), expected)
}

/// Checks that `phc` can be verified against: an Argon2 variant, a known version, valid
/// parameters, a salt of at least 8 bytes and an output.
fn check_phc(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    argon2::Algorithm::try_from(hash.algorithm).map_err(|_| "not an argon2 algorithm")?;
    if let Some(version) = hash.version {
        argon2::Version::try_from(version).map_err(|e| e.to_string())?;
    }
    argon2::Params::try_from(&hash).map_err(|e| e.to_string())?;
    let salt = hash.salt.ok_or("no salt")?;
    let mut buf = [0u8; 64];
    let salt_len = salt.decode_b64(&mut buf).map_err(|e| e.to_string())?.len();
    if salt_len < argon2::MIN_SALT_LEN {
        return Err(format!("a salt of {salt_len} bytes, 8 needed"));
    }
    hash.hash
        .map(drop)
        .ok_or_else(|| "no hash output".to_owned())
}

#[cfg(test)]
mod tests;
