//! The signed identity assertion apps receive (`X-Stepgate-Assertion`), the Ed25519 keys that sign
//! it, the JWKS that publishes them, and a cache that keeps signing off most requests.
//!
//! Tokens follow RFC 8725 §3.1: `alg` is pinned to `EdDSA`, the header is exactly
//! `{"typ":"JWT","alg":"EdDSA","kid":..}` (never `jku`, `x5u`, `jwk` or `crit`), `aud` is one app
//! id, and `exp` is at most five minutes after `iat`.
//!
//! Keys live in `<data_dir>/keys/` (0700): one `key-<kid>.pk8` per key (PKCS#8 v2 DER, 0600) and
//! `index.json` (0600), a list of `{kid, created_at, retired_at}` (unix seconds). Files are written
//! to a temporary name, synced and renamed. A damaged or inconsistent file makes [`Signer::open`]
//! fail naming it: regenerating over it would silently invalidate every token apps hold and would
//! hide tampering.
//!
//! Rotation makes a new key current at once; the old key stays in the JWKS while tokens it signed
//! can be valid (`retired_at + ttl > now`). Apps that cache the JWKS must refetch it on an unknown
//! `kid`. A token signed in the very instant of a rotation may outlive its key's publication by
//! under a second; verification then fails closed.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::SharedClock;

const KEYS_DIR: &str = "keys";
const INDEX_FILE: &str = "index.json";
const MAX_TTL: Duration = Duration::from_secs(5 * 60);
/// A cached token is reused only while it has more than this many seconds left.
const REUSE_MARGIN_SECS: u64 = 60;
/// Past this many app indices, `forget_session` scans the cache instead of looking keys up.
const MAX_APP_LOOKUPS: usize = 1024;

#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// The `iss` claim.
    pub issuer: String,
    /// Token lifetime: whole seconds, 1 s to 5 min.
    pub ttl: Duration,
    /// A current key older than this is replaced at `open()` or `rotate_if_due()`.
    pub rotate_after: Duration,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        let (issuer, rotate_after) = ("stepgate".into(), Duration::from_secs(30 * 86_400));
        AssertionConfig {
            issuer,
            ttl: MAX_TTL,
            rotate_after,
        }
    }
}

/// The facts about a signed-in session that go into the assertion.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityFacts {
    pub user: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub name: String,
    /// `"1fa"` or `"2fa"`.
    pub auth_level: &'static str,
    /// RFC 8176 method values, e.g. `["pwd", "otp"]`.
    pub amr: Vec<String>,
    /// The client certificate that counted for this request: its SHA-256 (raw) and subject.
    pub certificate: Option<([u8; 32], String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("assertion ttl must be whole seconds from 1 s to 5 min (found {0:?})")]
    InvalidTtl(Duration),
    #[error("assertion key rotate_after must be at least 1 s (found {0:?})")]
    InvalidRotateAfter(Duration),
    /// What was being done, to which file, and the OS error.
    #[error("cannot {0} {path}", path = .1.display())]
    Io(&'static str, PathBuf, #[source] io::Error),
    #[error("corrupt assertion key store file {path}: {why}", path = .0.display(), why = .1)]
    Corrupt(PathBuf, String),
    #[error("the system random source failed while {0}")]
    Random(&'static str),
    #[error("cannot sign the identity assertion for app {0:?}: {1}")]
    InvalidFacts(String, &'static str),
    #[error("cannot sign the identity assertion for app {0:?}")]
    Sign(String, #[source] jsonwebtoken::errors::Error),
}

type Result<T, E = AssertionError> = std::result::Result<T, E>;

/// One signing key in memory; `encoding` holds the private PKCS#8 bytes, `x` the public key.
#[derive(Clone)]
struct Key {
    kid: String,
    created_at: u64,
    retired_at: Option<u64>,
    encoding: EncodingKey,
    x: String,
}

#[derive(Clone)]
struct KeyRing {
    current: Key,
    /// Newest first.
    retired: Vec<Key>,
}

/// One line of `index.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexEntry {
    kid: String,
    created_at: u64,
    retired_at: Option<u64>,
}

/// Signs assertions and owns the key directory. `sign` and `jwks_json` never block: key changes
/// are serialized by `writer` and published by swapping the whole ring.
pub struct Signer {
    dir: PathBuf,
    cfg: AssertionConfig,
    ttl_secs: u64,
    clock: SharedClock,
    ring: ArcSwap<KeyRing>,
    writer: Mutex<()>,
    rng: SystemRandom,
}

impl Signer {
    /// Loads keys from `<data_dir>/keys/`, creating the directory (0700) and a first key when there
    /// is none, dropping retired keys no longer published, and rotating if the current key is
    /// older than `rotate_after`.
    pub fn open(data_dir: &Path, cfg: AssertionConfig, clock: SharedClock) -> Result<Signer> {
        if cfg.ttl.is_zero() || cfg.ttl > MAX_TTL || cfg.ttl.subsec_nanos() != 0 {
            return Err(AssertionError::InvalidTtl(cfg.ttl));
        }
        if cfg.rotate_after < Duration::from_secs(1) {
            return Err(AssertionError::InvalidRotateAfter(cfg.rotate_after));
        }
        let dir = data_dir.join(KEYS_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)))
            .map_err(io_err("create the key directory", &dir))?;
        let rng = SystemRandom::new();
        let index_path = dir.join(INDEX_FILE);
        let ring = match fs::read(&index_path) {
            Ok(bytes) => load_ring(&dir, &index_path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => first_ring(&dir, &rng, &clock)?,
            Err(e) => return Err(io_err("read", &index_path)(e)),
        };
        let signer = Signer {
            ttl_secs: cfg.ttl.as_secs(),
            dir,
            cfg,
            clock,
            ring: ArcSwap::from_pointee(ring),
            writer: Mutex::new(()),
            rng,
        };
        signer.rotate_if_due()?;
        Ok(signer)
    }

    /// Signs a fresh assertion for `audience` (the app id). Returns the compact JWT and its `exp`
    /// (unix seconds).
    pub fn sign(&self, facts: &IdentityFacts, audience: &str) -> Result<(String, u64)> {
        let invalid = |why| AssertionError::InvalidFacts(audience.to_owned(), why);
        if audience.is_empty() || facts.user.is_empty() {
            return Err(invalid(
                "the app id (aud) and the user (sub) must be non-empty",
            ));
        }
        if !matches!(facts.auth_level, "1fa" | "2fa") {
            return Err(invalid("auth_level must be \"1fa\" or \"2fa\""));
        }
        let mut jti = [0u8; 16];
        let random = self.rng.fill(&mut jti);
        random.map_err(|_| AssertionError::Random("drawing a jti"))?;
        let ring = self.ring.load();
        let iat = self.clock.now_secs();
        let exp = iat.saturating_add(self.ttl_secs);
        let mut claims = json!({
            "iss": self.cfg.issuer, "sub": facts.user, "aud": audience,
            "iat": iat, "nbf": iat, "exp": exp, "jti": B64URL.encode(jti),
            "groups": facts.groups, "name": facts.name, "amr": facts.amr,
            "auth_level": facts.auth_level,
        });
        if let Some(email) = &facts.email {
            claims["email"] = json!(email);
        }
        if let Some((sha256, subject)) = &facts.certificate {
            // RFC 8705 §3.1: the certificate the request was made with.
            claims["cnf"] = json!({ "x5t#S256": B64URL.encode(sha256) });
            claims["client_cert_subject"] = json!(subject);
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ring.current.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &ring.current.encoding);
        let token = token.map_err(|e| AssertionError::Sign(audience.to_owned(), e))?;
        Ok((token, exp))
    }

    /// The JWKS document: the current key and every retired key whose tokens may not have expired.
    pub fn jwks_json(&self) -> String {
        let ring = self.ring.load();
        let now = self.clock.now_secs();
        let keys: Vec<serde_json::Value> = std::iter::once(&ring.current)
            .chain(ring.retired.iter().filter(|k| self.published(k, now)))
            .map(|k| {
                json!({"kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid,
                    "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// Makes a new key current now; the old one stays published for `ttl`, then is dropped (and
    /// its file deleted) by a later rotate, open or prune.
    pub fn rotate(&self) -> Result<()> {
        self.update(|_| true).map(drop)
    }

    /// Rotates when the current key is older than `rotate_after`, and prunes either way.
    pub fn rotate_if_due(&self) -> Result<bool> {
        let rotate_after = self.cfg.rotate_after.as_secs();
        self.update(|age| age >= rotate_after)
    }

    /// Drops retired keys that are no longer published and deletes their files.
    pub fn prune(&self) -> Result<()> {
        self.update(|_| false).map(drop)
    }

    pub fn current_kid(&self) -> String {
        self.ring.load().current.kid.clone()
    }

    fn published(&self, key: &Key, now: u64) -> bool {
        let until = key.retired_at.map(|at| at.saturating_add(self.ttl_secs));
        until.is_none_or(|until| until > now)
    }

    /// Rotates if `rotate(age of the current key)` says so, prunes, and returns whether it rotated.
    /// Disk goes before memory, so a failed write leaves the old ring in force; a new key file is
    /// written before the index names it, and dropped key files are deleted only after the index
    /// stops naming them.
    fn update(&self, rotate: impl FnOnce(u64) -> bool) -> Result<bool> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.ring.load_full();
        let now = self.clock.now_secs();
        let rotating = rotate(now.saturating_sub(old.current.created_at));
        let mut next = (*old).clone();
        let mut new_file = None;
        if rotating {
            let (key, pkcs8) = generate_key(&self.rng, now)?;
            let name = key_file_name(&key.kid);
            write_atomic(&self.dir, &name, &pkcs8)?;
            new_file = Some(self.dir.join(name));
            let mut retiring = std::mem::replace(&mut next.current, key);
            retiring.retired_at = Some(now);
            next.retired.insert(0, retiring);
        }
        let (kept, dropped): (Vec<Key>, Vec<Key>) =
            next.retired.drain(..).partition(|k| self.published(k, now));
        next.retired = kept;
        if !rotating && dropped.is_empty() {
            return Ok(false);
        }
        if let Err(e) = write_index(&self.dir, &next) {
            if let Some(path) = new_file {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
        let new_kid = next.current.kid.clone();
        self.ring.store(Arc::new(next));
        if rotating {
            tracing::info!(old_kid = %old.current.kid, %new_kid, "rotated the assertion key");
        }
        for key in dropped {
            let path = self.dir.join(key_file_name(&key.kid));
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete a dropped key")
                }
                _ => tracing::info!(kid = %key.kid, "dropped a retired assertion key"),
            }
        }
        Ok(rotating)
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> AssertionError {
    AssertionError::Corrupt(path.to_owned(), reason.into())
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> AssertionError + 'a {
    move |e| AssertionError::Io(action, path.to_owned(), e)
}

fn key_file_name(kid: &str) -> String {
    format!("key-{kid}.pk8")
}

/// A new key store: refused when key files exist without an index, which is damage, not a start.
fn first_ring(dir: &Path, rng: &SystemRandom, clock: &SharedClock) -> Result<KeyRing> {
    let listing = fs::read_dir(dir).map_err(io_err("list", dir))?;
    let mut paths = listing.filter_map(|e| e.ok().map(|e| e.path()));
    if let Some(stray) = paths.find(|p| p.extension().is_some_and(|x| x == "pk8")) {
        let reason = format!("missing while {} exists", stray.display());
        return Err(corrupt(&dir.join(INDEX_FILE), reason));
    }
    let (current, pkcs8) = generate_key(rng, clock.now_secs())?;
    write_atomic(dir, &key_file_name(&current.kid), &pkcs8)?;
    let ring = KeyRing {
        current,
        retired: Vec::new(),
    };
    write_index(dir, &ring)?;
    tracing::info!(kid = %ring.current.kid, "created the first assertion key");
    Ok(ring)
}

/// Parses the index and loads every key it names, checking each file against its kid.
fn load_ring(dir: &Path, index_path: &Path, bytes: &[u8]) -> Result<KeyRing> {
    let entries: Vec<IndexEntry> =
        serde_json::from_slice(bytes).map_err(|e| corrupt(index_path, e.to_string()))?;
    let (mut current, mut retired) = (None, Vec::new());
    for e in entries {
        // kids name files: only the 16-character base64url form may reach a path.
        let kid_chars = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if e.kid.len() != 16 || !e.kid.bytes().all(kid_chars) {
            return Err(corrupt(index_path, format!("malformed kid {:?}", e.kid)));
        }
        let path = dir.join(key_file_name(&e.kid));
        let pkcs8 = fs::read(&path).map_err(io_err("read", &path))?;
        let key = key_from_pkcs8(&pkcs8, e.created_at, e.retired_at)
            .ok_or_else(|| corrupt(&path, "not an Ed25519 PKCS#8 v2 key"))?;
        if key.kid != e.kid {
            let reason = format!("holds key {}, the index says {}", key.kid, e.kid);
            return Err(corrupt(&path, reason));
        }
        match (key.retired_at, &current) {
            (Some(_), _) => retired.push(key),
            (None, None) => current = Some(key),
            (None, Some(_)) => return Err(corrupt(index_path, "more than one current key")),
        }
    }
    let current = current.ok_or_else(|| corrupt(index_path, "no current key"))?;
    retired.sort_by_key(|k| std::cmp::Reverse(k.retired_at));
    Ok(KeyRing { current, retired })
}

/// The key in a PKCS#8 v2 Ed25519 document, or `None` if it is not one. The kid is base64url of
/// the first 12 bytes of SHA-256 over the raw public key.
fn key_from_pkcs8(pkcs8: &[u8], created_at: u64, retired_at: Option<u64>) -> Option<Key> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
    let public = pair.public_key().as_ref();
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    Some(Key {
        kid: B64URL.encode(&digest.as_ref()[..12]),
        created_at,
        retired_at,
        encoding: EncodingKey::from_ed_der(pkcs8),
        x: B64URL.encode(public),
    })
}

fn generate_key(rng: &SystemRandom, now: u64) -> Result<(Key, Vec<u8>)> {
    let doc = Ed25519KeyPair::generate_pkcs8(rng);
    let pkcs8 = doc
        .map_err(|_| AssertionError::Random("generating a key"))?
        .as_ref()
        .to_vec();
    let key = key_from_pkcs8(&pkcs8, now, None);
    Ok((
        key.ok_or(AssertionError::Random("checking a new key"))?,
        pkcs8,
    ))
}

fn write_index(dir: &Path, ring: &KeyRing) -> Result<()> {
    let entries: Vec<IndexEntry> = std::iter::once(&ring.current)
        .chain(&ring.retired)
        .map(|k| IndexEntry {
            kid: k.kid.clone(),
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
        .collect();
    let json = serde_json::to_vec_pretty(&entries)
        .map_err(|e| corrupt(&dir.join(INDEX_FILE), e.to_string()))?;
    write_atomic(dir, INDEX_FILE, &json)
}

/// Writes `dir/name` with mode 0600 via a synced temporary file and a rename, then syncs `dir`.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &tmp)(e)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    written.map_err(io_err("write", &tmp))?;
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))?;
    let synced = File::open(dir).and_then(|d| d.sync_all());
    synced.map_err(io_err("sync", dir))
}

pub use crate::store::SessionKey;

/// The session layer tells the cache when a session ends (logout, expiry, rotation, another
/// gateway's sign-out), so a kept assertion never outlives its session.
impl<V: Clone + Send + Sync> crate::session::SessionEnded for AssertionCache<V> {
    fn session_ended(&self, key: &SessionKey) {
        self.forget_session(key);
    }

    fn all_sessions_ended(&self) {
        self.clear();
    }
}

/// Reuse of signed assertions, so signing is not on every request's hot path. `V` is what is
/// kept per (session, app): the token, or (in the proxy) the ready header values built with it.
///
/// Entries live until `purge_expired`, `forget_session` or `clear`, so the map is bounded by live
/// sessions times apps. Two concurrent misses for one key both sign; the later insert wins,
/// harmlessly.
pub struct AssertionCache<V> {
    entries: DashMap<(SessionKey, usize), (V, u64)>,
    clock: SharedClock,
    /// The highest app index cached (an index into the configured apps), so `forget_session`
    /// looks keys up instead of scanning.
    max_app: AtomicUsize,
}

impl<V: Clone> AssertionCache<V> {
    pub fn new(clock: SharedClock) -> Self {
        let (entries, max_app) = (DashMap::new(), AtomicUsize::new(0));
        AssertionCache {
            entries,
            clock,
            max_app,
        }
    }

    /// The cached value for (session, app) if its token still has more than 60 s to live, else
    /// `sign()` a new one (value and token expiry) and cache it. No map lock is held while `sign`
    /// runs.
    pub fn get_or_sign(
        &self,
        session: &SessionKey,
        app: usize,
        sign: impl FnOnce() -> Result<(V, u64)>,
    ) -> Result<V> {
        let key = (*session, app);
        let fresh_until = self.clock.now_secs().saturating_add(REUSE_MARGIN_SECS);
        if let Some(hit) = self.entries.get(&key).filter(|hit| hit.1 > fresh_until) {
            return Ok(hit.0.clone());
        }
        let (value, exp) = sign()?;
        self.max_app.fetch_max(app, Ordering::Relaxed);
        self.entries.insert(key, (value.clone(), exp));
        Ok(value)
    }

    /// Drops every cached token of a session (on logout or session ID rotation).
    pub fn forget_session(&self, session: &SessionKey) {
        let max_app = self.max_app.load(Ordering::Relaxed);
        if max_app > MAX_APP_LOOKUPS {
            return self.entries.retain(|(s, _), _| s != session);
        }
        for app in 0..=max_app {
            self.entries.remove(&(*session, app));
        }
    }

    /// Drops tokens that have expired.
    pub fn purge_expired(&self) {
        let now = self.clock.now_secs();
        self.entries.retain(|_, (_, exp)| *exp > now);
    }

    /// Drops everything: the facts behind the cached values changed (the users file was reloaded).
    pub fn clear(&self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use ed25519_dalek::{Signature, VerifyingKey};
    use serde_json::{json, Value};

    const START_MS: u64 = 1_700_000_000_000;

    fn setup() -> (tempfile::TempDir, Arc<ManualClock>, SharedClock) {
        let manual = ManualClock::new(START_MS);
        (tempfile::tempdir().unwrap(), manual.clone(), manual)
    }

    fn open(dir: &tempfile::TempDir, clock: &SharedClock) -> Result<Signer> {
        Signer::open(dir.path(), AssertionConfig::default(), clock.clone())
    }

    fn facts(email: Option<&str>) -> IdentityFacts {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        IdentityFacts {
            user: "alice".into(),
            email: email.map(Into::into),
            groups: strings(&["users", "admins"]),
            name: "Alice A.".into(),
            auth_level: "2fa",
            amr: strings(&["pwd", "otp"]),
            certificate: None,
        }
    }

    fn b64_json(part: &str) -> Value {
        serde_json::from_slice(&B64URL.decode(part).unwrap()).unwrap()
    }

    /// Verifies with ed25519-dalek against the JWKS alone; returns (header, claims).
    fn verify(token: &str, jwks: &str) -> Result<(Value, Value), String> {
        let parts: Vec<&str> = token.split('.').collect();
        let header = b64_json(parts[0]);
        let jwks: Value = serde_json::from_str(jwks).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        let jwk = keys
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .ok_or("kid not published")?;
        let expected = json!({"kty": "OKP", "crv": "Ed25519", "x": jwk["x"], "kid": header["kid"],
            "alg": "EdDSA", "use": "sig"});
        assert_eq!(jwk, &expected);
        let x: [u8; 32] = B64URL
            .decode(jwk["x"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let sig = Signature::from_slice(&B64URL.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        let key = VerifyingKey::from_bytes(&x).unwrap();
        key.verify_strict(signed.as_bytes(), &sig)
            .map_err(|e| e.to_string())?;
        Ok((header, b64_json(parts[1])))
    }

    fn kids(signer: &Signer) -> Vec<String> {
        let jwks: Value = serde_json::from_str(&signer.jwks_json()).unwrap();
        let keys = jwks["keys"].as_array().unwrap().iter();
        keys.map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn signed_token_verifies_independently_and_carries_every_claim() {
        let (dir, _manual, clock) = setup();
        let signer = open(&dir, &clock).unwrap();
        fn shared<T: Send + Sync>(_: &T) {}
        shared(&signer);
        let (token, exp) = signer.sign(&facts(Some("a@example.test")), "wiki").unwrap();
        let (header, claims) = verify(&token, &signer.jwks_json()).unwrap();
        let kid = signer.current_kid();
        assert_eq!(header, json!({"typ": "JWT", "alg": "EdDSA", "kid": kid}));
        assert_eq!(kid.len(), 16);
        let iat = START_MS / 1000;
        assert_eq!(exp, iat + 300);
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert_eq!(B64URL.decode(&jti).unwrap().len(), 16);
        let expected = json!({"iss": "stepgate", "sub": "alice", "aud": "wiki", "iat": iat,
            "nbf": iat, "exp": exp, "jti": jti, "email": "a@example.test",
            "groups": ["users", "admins"], "name": "Alice A.", "amr": ["pwd", "otp"],
            "auth_level": "2fa"});
        assert_eq!(claims, expected);

        let (other, _) = signer.sign(&facts(None), "wiki").unwrap();
        let (_, claims) = verify(&other, &signer.jwks_json()).unwrap();
        assert_ne!(claims["jti"], jti.as_str(), "fresh jti per token");
        assert!(claims.get("email").is_none(), "email omitted when None");

        let parts: Vec<&str> = token.split('.').collect();
        let forged = B64URL.encode(json!({"sub": "bob"}).to_string());
        let forged = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert!(verify(&forged, &signer.jwks_json()).is_err());
        let odd = IdentityFacts {
            auth_level: "3fa",
            ..facts(None)
        };
        assert!(matches!(
            signer.sign(&odd, "wiki"),
            Err(AssertionError::InvalidFacts { .. })
        ));
        assert!(signer.sign(&facts(None), "").is_err());
    }

    #[test]
    fn ttl_is_bounded_to_five_minutes_and_sets_exp() {
        let (dir, _manual, clock) = setup();
        let with = |secs: f64, rotate_after| {
            let (ttl, issuer) = (Duration::from_secs_f64(secs), "gw".into());
            Signer::open(
                dir.path(),
                AssertionConfig {
                    issuer,
                    ttl,
                    rotate_after,
                },
                clock.clone(),
            )
        };
        let day = Duration::from_secs(86_400);
        for bad in [301.0, 0.0, 1.5] {
            assert!(
                matches!(with(bad, day), Err(AssertionError::InvalidTtl(_))),
                "{bad}"
            );
        }
        let zero = Duration::ZERO;
        assert!(matches!(
            with(300.0, zero),
            Err(AssertionError::InvalidRotateAfter(_))
        ));
        let signer = with(90.0, day).unwrap();
        let (token, exp) = signer.sign(&facts(None), "app").unwrap();
        let (_, claims) = verify(&token, &signer.jwks_json()).unwrap();
        assert_eq!(exp - claims["iat"].as_u64().unwrap(), 90);
        assert_eq!(claims["iss"], "gw");
    }

    #[test]
    fn keys_persist_across_open_in_private_files() {
        let (dir, _manual, clock) = setup();
        let kid = open(&dir, &clock).unwrap().current_kid();
        assert_eq!(open(&dir, &clock).unwrap().current_kid(), kid);

        let keys = dir.path().join(KEYS_DIR);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&keys.join(key_file_name(&kid))), 0o600);
        assert_eq!(mode(&keys.join(INDEX_FILE)), 0o600);
        let listing = fs::read_dir(&keys).unwrap().map(|e| e.unwrap().file_name());
        let mut names: Vec<String> = listing.map(|n| n.into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [INDEX_FILE.to_owned(), key_file_name(&kid)]);
    }

    #[test]
    fn rotation_publishes_the_old_key_for_ttl_then_drops_it() {
        let (dir, manual, clock) = setup();
        let signer = open(&dir, &clock).unwrap();
        let old = signer.current_kid();
        let (before, _) = signer.sign(&facts(None), "wiki").unwrap();
        assert!(!signer.rotate_if_due().unwrap());

        manual.advance(Duration::from_secs(10));
        signer.rotate().unwrap();
        let new = signer.current_kid();
        assert_ne!(new, old);
        assert_eq!(kids(&signer), [new.clone(), old.clone()]);
        assert_eq!(verify(&before, &signer.jwks_json()).unwrap().0["kid"], old);
        let (after, _) = signer.sign(&facts(None), "wiki").unwrap();
        assert_eq!(verify(&after, &signer.jwks_json()).unwrap().0["kid"], new);

        manual.advance(Duration::from_secs(299));
        assert!(verify(&before, &signer.jwks_json()).is_ok());
        manual.advance(Duration::from_secs(1));
        assert_eq!(kids(&signer), [new.as_str()]);
        assert!(verify(&before, &signer.jwks_json()).is_err());

        let old_file = dir.path().join(KEYS_DIR).join(key_file_name(&old));
        assert!(old_file.exists());
        signer.prune().unwrap();
        assert!(!old_file.exists());
        let reopened = open(&dir, &clock).unwrap();
        assert_eq!(kids(&reopened), [new]);
    }

    #[test]
    fn an_old_key_is_replaced_when_due_including_at_open() {
        let (dir, manual, clock) = setup();
        let signer = open(&dir, &clock).unwrap();
        let first = signer.current_kid();
        manual.advance(Duration::from_secs(30 * 86_400));
        assert!(signer.rotate_if_due().unwrap());
        let second = signer.current_kid();
        drop(signer);
        manual.advance(Duration::from_secs(30 * 86_400));
        let reopened = open(&dir, &clock).unwrap();
        let third = reopened.current_kid();
        assert!(first != second && second != third);
        assert_eq!(kids(&reopened), [third, second]);
        assert!(!dir
            .path()
            .join(KEYS_DIR)
            .join(key_file_name(&first))
            .exists());
    }

    #[test]
    fn corrupt_or_missing_files_fail_open_naming_the_file() {
        let (dir, _manual, clock) = setup();
        let kid = open(&dir, &clock).unwrap().current_kid();
        let keys = dir.path().join(KEYS_DIR);
        let (key_file, index) = (keys.join(key_file_name(&kid)), keys.join(INDEX_FILE));
        let good = fs::read(&key_file).unwrap();
        let open_err = || open(&dir, &clock).err().unwrap().to_string();

        fs::write(&key_file, b"not a key").unwrap();
        let err = open_err();
        assert!(err.contains(&*key_file.to_string_lossy()), "{err}");
        assert_eq!(
            fs::read(&key_file).unwrap(),
            b"not a key",
            "never regenerated over"
        );

        fs::write(&key_file, &good).unwrap();
        fs::write(&index, b"{").unwrap();
        assert!(open_err().contains(&*index.to_string_lossy()));
        fs::remove_file(&index).unwrap();
        assert!(open_err().contains("missing while"));
    }

    #[test]
    fn cache_reuses_a_token_until_sixty_seconds_before_exp() {
        let (_dir, manual, clock) = setup();
        let cache: AssertionCache<Arc<str>> = AssertionCache::new(clock.clone());
        let calls = std::cell::Cell::new(0);
        let sign = || {
            calls.set(calls.get() + 1);
            Ok((
                Arc::from(format!("token-{}", calls.get())),
                clock.now_secs() + 300,
            ))
        };
        let (alice, bob) = ([1u8; 32], [2u8; 32]);

        let first = cache.get_or_sign(&alice, 0, sign).unwrap();
        assert_eq!(cache.get_or_sign(&alice, 0, sign).unwrap(), first);
        manual.advance(Duration::from_secs(239)); // 61 s left: reused
        assert_eq!(cache.get_or_sign(&alice, 0, sign).unwrap(), first);
        assert_eq!(calls.get(), 1);
        manual.advance(Duration::from_secs(1)); // 60 s left: signed again
        assert_eq!(&*cache.get_or_sign(&alice, 0, sign).unwrap(), "token-2");

        cache.get_or_sign(&alice, 3, sign).unwrap();
        cache.get_or_sign(&bob, 0, sign).unwrap();
        assert_eq!((cache.len(), calls.get()), (3, 4));
        cache.forget_session(&alice);
        assert_eq!(cache.len(), 1);
        assert_eq!(&*cache.get_or_sign(&alice, 0, sign).unwrap(), "token-5");
        cache
            .get_or_sign(&alice, MAX_APP_LOOKUPS + 1, sign)
            .unwrap();
        cache.forget_session(&alice); // past MAX_APP_LOOKUPS: the scanning path
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
        cache.get_or_sign(&bob, 0, sign).unwrap();

        let failing = || Err(AssertionError::Random("testing"));
        assert!(cache.get_or_sign(&[3u8; 32], 0, failing).is_err());
        manual.advance(Duration::from_secs(300));
        cache.purge_expired();
        assert!(cache.is_empty());
    }
}
