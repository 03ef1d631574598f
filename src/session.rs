//! Server-side sessions: IDs of 192 random bits and a 64-bit tag handed out in a cookie, kept in
//! the store under the SHA-256 of the ID (so neither memory dumps nor the database hold a usable
//! ID), looked up through a bounded in-memory cache in front of the store.
//!
//! **The tag** is HMAC-SHA256 of the random part under a key derived from the factor key
//! ([`crate::factor::Factors::session_id_key`]), which every gateway on one database shares. It
//! grants nothing (a session exists only if the store holds it); it lets a gateway refuse a
//! forged or stale-format cookie that is not in its cache without a store round trip, so a flood
//! of made-up cookies costs a hash each, never a database query.
//!
//! Enforced on the server: idle timeout and absolute lifetime (an expired session is ended when
//! seen and by the periodic purge), a new ID at every authentication step (the old one is
//! ended), no ID the server did not issue is ever accepted (only IDs the store holds are
//! found), a cap per user (the oldest session is ended) and a cap overall (new sign-ins are
//! refused while that many sessions live).
//!
//! **The cache.** A hit costs no store round trip. A miss reads the store, so a session created
//! by another gateway on the same database is usable at once. Ending a session is one operation
//! of this module: the store forgets it, the cache forgets it, every [`SessionEnded`] follower
//! (the identity headers kept per session) forgets it, and the store tells other gateways
//! ([`crate::store::SessionEvent`], PostgreSQL `NOTIFY`), which do the same. As a backstop for an
//! event that never arrived (a change made by `stepgate admin`, a lost notification), a cached
//! session is read again from the store when it was last read more than [`REVALIDATE`] ago. When
//! the cache holds `max_sessions` entries, further sessions are served from the store each time.
//!
//! **Last use** is kept in memory and written to the store by `housekeeping` (every 30 s), so
//! gateways sharing a database see each other's activity that late; the idle timeout can thus be
//! up to that much longer across gateways.

pub mod cookie;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::amr::{Amr, AuthLevel};
use crate::clock::SharedClock;
use crate::store::{SessionEvent, SessionRecord, Store, StoreError};

pub use crate::store::SessionKey;

/// Length of an encoded ID: 32 bytes (random part, then tag) in unpadded base64url.
const ID_LEN: usize = 43;
/// Random bytes at the start of an ID; the rest is the tag.
const RANDOM_LEN: usize = 24;

/// How long after a second-factor proof in a session that session may change the account's
/// second factors or emergency email (ASVS 5.0 7.5.1 and 6.4.5; NIST SP 800-63B §6.1.2.3). Later, the user proves again.
pub const FRESH_PROOF: Duration = Duration::from_secs(5 * 60);

/// How long a cached session is trusted before it is read from the store again.
pub const REVALIDATE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub max_per_user: usize,
    pub max_sessions: usize,
    /// Parent domain for a single-sign-on cookie across subdomains (HTTPS only).
    pub cookie_domain: Option<String>,
    /// How long a saved sign-in ("keep me signed in") lasts, used or not; `None`: the choice is
    /// not offered.
    pub saved_lifetime: Option<Duration>,
    /// Whether a sign-in from a browser and network the account has not used needs a check
    /// (see `flow::environment`).
    pub unfamiliar_check: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
            max_per_user: 10,
            max_sessions: 1_000_000,
            cookie_domain: None,
            saved_lifetime: Some(Duration::from_secs(30 * 24 * 3600)),
            unfamiliar_check: true,
        }
    }
}

/// Where and how a browser signs in: kept with its session, carried over by every step up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client address at sign-in.
    pub client: String,
    /// A short description of the browser ("Chrome on Android").
    pub agent: String,
    /// "Keep me signed in": a saved sign-in.
    pub persistent: bool,
    /// From an unfamiliar environment: usable for nothing but the check until it passes.
    pub needs_check: bool,
    /// The trusted browser (its credential ID) that stood in for the second factor, or `""`.
    pub trusted: String,
}

/// One signed-in browser.
#[derive(Debug)]
pub struct Session {
    pub user: String,
    /// The methods behind this session; its level derives from them.
    pub amr: Amr,
    pub created_ms: u64,
    /// When the last authentication step happened.
    pub auth_ms: u64,
    /// The user chose "later" on the two-step setup guide: two-factor routes let this one-factor
    /// session through (the app still sees `1fa`). Only ever set on a new session.
    pub deferred: bool,
    pub origin: Origin,
    last_seen_ms: AtomicU64,
    /// Seen since the last flush of `last_seen_ms` to the store.
    dirty: AtomicBool,
    /// When this copy was read from (or written to) the store.
    checked_ms: AtomicU64,
}

impl Session {
    pub fn level(&self) -> AuthLevel {
        self.amr.level()
    }

    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// Whether this session's second factor was proven less than `FRESH_PROOF` before `now_ms`
    /// (every proof makes a new two-factor session, so `auth_ms` is the time of the last one).
    /// A trusted browser ("don't ask again") is no proof.
    pub fn has_fresh_proof(&self, now_ms: u64) -> bool {
        self.level() == AuthLevel::TwoFactor
            && !self.amr.remembered_only()
            && now_ms >= self.auth_ms
            && now_ms - self.auth_ms < millis(FRESH_PROOF)
    }

    /// When the fresh proof of this session runs out (ms since the epoch).
    pub fn fresh_until_ms(&self) -> u64 {
        self.auth_ms.saturating_add(millis(FRESH_PROOF))
    }

    fn record(&self) -> SessionRecord {
        SessionRecord {
            user: self.user.clone(),
            amr: self.amr.to_string(),
            created_ms: self.created_ms,
            auth_ms: self.auth_ms,
            last_seen_ms: self.last_seen_ms(),
            deferred: self.deferred,
            persistent: self.origin.persistent,
            needs_check: self.origin.needs_check,
            client: self.origin.client.clone(),
            agent: self.origin.agent.clone(),
            trusted: self.origin.trusted.clone(),
        }
    }

    fn from_record(r: SessionRecord, now_ms: u64) -> Result<Session, StoreError> {
        let amr = Amr::parse(&r.amr).map_err(|why| StoreError::Corrupt {
            what: "a session's methods",
            why,
        })?;
        Ok(Session {
            user: r.user,
            amr,
            created_ms: r.created_ms,
            auth_ms: r.auth_ms,
            deferred: r.deferred,
            origin: Origin {
                client: r.client,
                agent: r.agent,
                persistent: r.persistent,
                needs_check: r.needs_check,
                trusted: r.trusted,
            },
            last_seen_ms: AtomicU64::new(r.last_seen_ms),
            dirty: AtomicBool::new(false),
            checked_ms: AtomicU64::new(now_ms),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the gateway holds its maximum of {0} sessions")]
    Full(usize),
}

/// Something that keeps data per session and must drop it when the session ends.
pub trait SessionEnded: Send + Sync {
    fn session_ended(&self, key: &SessionKey);
    /// Every session may have ended (events were missed): drop everything.
    fn all_sessions_ended(&self);
}

/// All sessions, as this gateway sees them.
pub struct Sessions {
    cache: DashMap<SessionKey, Arc<Session>>,
    store: Store,
    clock: SharedClock,
    cfg: SessionConfig,
    /// Live sessions in the store (approximately, between `housekeeping` recounts).
    live: AtomicUsize,
    followers: Vec<Arc<dyn SessionEnded>>,
    /// The key IDs are tagged under (see the module docs).
    id_key: [u8; 32],
}

/// The key of an ID (its SHA-256), or `None` when the value cannot be an ID this server issued.
pub fn key_of(id: &str) -> Option<SessionKey> {
    if id.len() != ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(Sha256::digest(id.as_bytes()).into())
}

fn id_tag(key: &[u8; 32], random: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"stepgate-session-id\0");
    mac.update(random);
    mac
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sessions {
    /// Sessions in `store`; `followers` are told whenever a session ends.
    pub async fn open(
        store: Store,
        cfg: SessionConfig,
        clock: SharedClock,
        followers: Vec<Arc<dyn SessionEnded>>,
    ) -> Result<Sessions, StoreError> {
        let live = store.sessions().count_sessions().await?;
        crate::metrics::sessions(0, 0, usize::try_from(live).unwrap_or(usize::MAX));
        Ok(Sessions {
            cache: DashMap::new(),
            store,
            clock,
            cfg,
            live: AtomicUsize::new(usize::try_from(live).unwrap_or(usize::MAX)),
            followers,
            id_key: {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                key
            },
        })
    }

    /// Tags IDs under `key` (the gateway's, shared with every gateway on its database) instead
    /// of a key of this instance's own.
    pub fn with_id_key(mut self, key: &[u8; 32]) -> Sessions {
        self.id_key = *key;
        self
    }

    /// A new ID (random part and tag) and its key.
    fn new_id(&self) -> (String, SessionKey) {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes[..RANDOM_LEN]);
        let tag = id_tag(&self.id_key, &bytes[..RANDOM_LEN])
            .finalize()
            .into_bytes();
        bytes[RANDOM_LEN..].copy_from_slice(&tag[..32 - RANDOM_LEN]);
        let id = URL_SAFE_NO_PAD.encode(bytes);
        let key = Sha256::digest(id.as_bytes()).into();
        (id, key)
    }

    /// Whether `id` carries the tag of an ID issued under this key (constant time).
    fn tagged(&self, id: &str) -> bool {
        let mut bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(id, &mut bytes) {
            Ok(32) => id_tag(&self.id_key, &bytes[..RANDOM_LEN])
                .verify_truncated_left(&bytes[RANDOM_LEN..])
                .is_ok(),
            _ => false,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// A saved sign-in lasts `saved_lifetime` from sign-in however idle; any other session
    /// ends after `lifetime`, or `idle_timeout` without use.
    fn expired(&self, s: &Session, now: u64) -> bool {
        match (s.origin.persistent, self.cfg.saved_lifetime) {
            (true, Some(saved)) => now >= s.created_ms.saturating_add(millis(saved)),
            _ => {
                now >= s.created_ms.saturating_add(millis(self.cfg.lifetime))
                    || now
                        >= s.last_seen_ms()
                            .saturating_add(millis(self.cfg.idle_timeout))
            }
        }
    }

    /// Seconds the cookie of a saved sign-in should live (`Max-Age`); `None` for a session
    /// whose cookie dies with the browser.
    pub fn cookie_max_age(&self, s: &Session) -> Option<u64> {
        let saved = self.cfg.saved_lifetime.filter(|_| s.origin.persistent)?;
        let end = s.created_ms.saturating_add(millis(saved));
        Some(end.saturating_sub(self.clock.now_ms()) / 1000)
    }

    /// The live session for a cookie value, touched; `None` for an unknown, forged or expired
    /// one (an expired one is ended). `Err` only for a store fault: the caller fails closed.
    pub async fn lookup(&self, id: &str) -> Result<Option<(SessionKey, Arc<Session>)>, StoreError> {
        let Some(key) = key_of(id) else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let cached = self.cache.get(&key).map(|s| Arc::clone(s.value()));
        let session = match cached {
            Some(s)
                if now.saturating_sub(s.checked_ms.load(Ordering::Relaxed))
                    < millis(REVALIDATE) =>
            {
                s
            }
            // Not cached and not tagged under our key: made up, or from before tags; the store
            // is not asked.
            None if !self.tagged(id) => return Ok(None),
            cached => match self.fetch(&key, cached.as_deref(), now).await? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        if self.expired(&session, now) {
            self.end(&key).await?;
            return Ok(None);
        }
        session.last_seen_ms.fetch_max(now, Ordering::Relaxed);
        session.dirty.store(true, Ordering::Relaxed);
        Ok(Some((key, session)))
    }

    /// Reads a session from the store into the cache (keeping the later last use of a stale
    /// cached copy); `None`, and nothing cached, when the store does not have it.
    async fn fetch(
        &self,
        key: &SessionKey,
        stale: Option<&Session>,
        now: u64,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let Some(record) = self.store.sessions().session(key).await? else {
            if self.cache.remove(key).is_some() {
                self.tell_ended(key);
            }
            return Ok(None);
        };
        let session = Session::from_record(record, now)?;
        if let Some(old) = stale {
            session
                .last_seen_ms
                .fetch_max(old.last_seen_ms(), Ordering::Relaxed);
        }
        let session = Arc::new(session);
        if self.cache.len() < self.cfg.max_sessions || self.cache.contains_key(key) {
            self.cache.insert(*key, Arc::clone(&session));
        }
        Ok(Some(session))
    }

    /// A new session after a sign-in, from `origin`. `replaces` (the previous session of this
    /// browser, if any) is ended.
    pub async fn start(
        &self,
        user: &str,
        amr: Amr,
        replaces: Option<&SessionKey>,
        origin: Origin,
    ) -> Result<(String, Arc<Session>), SessionError> {
        self.create_inner(user, amr, replaces, false, Some(origin))
            .await
    }

    /// A new session after a step up, with the methods `amr` (its level follows from them).
    /// `replaces` (the previous session of this browser) is ended: a new ID at every
    /// authentication step. A step up continues the sign-in: it keeps its absolute lifetime and
    /// origin, and a pending environment check is passed.
    pub async fn create(
        &self,
        user: &str,
        amr: Amr,
        replaces: Option<&SessionKey>,
    ) -> Result<(String, Arc<Session>), SessionError> {
        self.create_inner(user, amr, replaces, false, None).await
    }

    /// A new one-factor session for `old`'s user that two-factor routes let through, after the
    /// user chose "later" on the setup guide. The old session is ended (a new ID); the absolute
    /// lifetime of the sign-in carries over. `None` when `old` is gone or not at one factor.
    pub async fn defer_second_factor(
        &self,
        old: &SessionKey,
        current: &Session,
    ) -> Result<Option<(String, Arc<Session>)>, SessionError> {
        if current.level() != AuthLevel::OneFactor {
            return Ok(None);
        }
        let created = self
            .create_inner(&current.user, current.amr, Some(old), true, None)
            .await?;
        Ok(Some(created))
    }

    async fn create_inner(
        &self,
        user: &str,
        amr: Amr,
        replaces: Option<&SessionKey>,
        deferred: bool,
        origin: Option<Origin>,
    ) -> Result<(String, Arc<Session>), SessionError> {
        let now = self.clock.now_ms();
        let mut created_ms = now;
        let step_up = origin.is_none();
        let mut origin = origin.unwrap_or_default();
        if let Some(old) = replaces {
            let previous = match self
                .cache
                .get(old)
                .map(|s| (s.created_ms, s.origin.clone()))
            {
                Some(found) => Some(found),
                None => self
                    .store
                    .sessions()
                    .session(old)
                    .await?
                    .map(|r| Session::from_record(r, now))
                    .transpose()?
                    .map(|s| (s.created_ms, s.origin)),
            };
            if let Some((created, before)) = previous.filter(|_| step_up) {
                if amr.level() == AuthLevel::TwoFactor || deferred {
                    created_ms = created;
                }
                origin = Origin {
                    needs_check: false,
                    trusted: String::new(),
                    ..before
                };
            }
            self.end(old).await?;
        }
        if self.live.load(Ordering::Relaxed) >= self.cfg.max_sessions {
            return Err(SessionError::Full(self.cfg.max_sessions));
        }
        self.enforce_user_cap(user).await?;
        let session = Arc::new(Session {
            user: user.to_owned(),
            amr,
            created_ms,
            auth_ms: now,
            deferred,
            origin,
            last_seen_ms: AtomicU64::new(now),
            dirty: AtomicBool::new(false),
            checked_ms: AtomicU64::new(now),
        });
        let (id, key) = self.new_id();
        self.store
            .sessions()
            .put_session(&key, &session.record())
            .await?;
        self.live.fetch_add(1, Ordering::Relaxed);
        if self.cache.len() < self.cfg.max_sessions {
            self.cache.insert(key, Arc::clone(&session));
        }
        Ok((id, session))
    }

    /// Ends the oldest sessions of `user` so that one more fits under `max_per_user`.
    async fn enforce_user_cap(&self, user: &str) -> Result<(), StoreError> {
        let mine = self.store.sessions().sessions_of(user).await?;
        if mine.len() < self.cfg.max_per_user {
            return Ok(());
        }
        let excess = mine.len() + 1 - self.cfg.max_per_user;
        // `sessions_of` lists the oldest first.
        for (key, _) in mine.into_iter().take(excess) {
            tracing::info!(target: "stepgate::session", user, "oldest session ended: per-user session cap");
            self.end(&key).await?;
        }
        Ok(())
    }

    /// Ends one session: in the store (which tells other gateways), in the cache, and in every
    /// follower.
    pub async fn end(&self, key: &SessionKey) -> Result<(), StoreError> {
        let deleted = self.store.sessions().delete_session(key).await?;
        if deleted {
            let _ = self
                .live
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        self.forget(key);
        Ok(())
    }

    /// Signs a user out everywhere; returns how many sessions ended.
    pub async fn end_user(&self, user: &str) -> Result<usize, StoreError> {
        self.end_all_of(user, None).await
    }

    /// The user's sessions, oldest first, as the store has them (for the user's list and the
    /// operator's); the last use this gateway saw but did not write yet counts.
    pub async fn of_user(
        &self,
        user: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        let mut mine = self.store.sessions().sessions_of(user).await?;
        for (key, record) in &mut mine {
            if let Some(s) = self.cache.get(key) {
                record.last_seen_ms = record.last_seen_ms.max(s.last_seen_ms());
            }
        }
        Ok(mine)
    }

    /// Ends every session of `user` but `keep` (after a second-factor change).
    pub async fn end_others(&self, user: &str, keep: &SessionKey) -> Result<usize, StoreError> {
        self.end_all_of(user, Some(keep)).await
    }

    async fn end_all_of(&self, user: &str, keep: Option<&SessionKey>) -> Result<usize, StoreError> {
        let ended = self.store.sessions().delete_sessions_of(user, keep).await?;
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(ended.len()))
            });
        for key in &ended {
            self.forget(key);
        }
        // Copies this gateway cached under keys the store no longer had.
        let stale: Vec<SessionKey> = self
            .cache
            .iter()
            .filter(|e| e.value().user == user && Some(e.key()) != keep)
            .map(|e| *e.key())
            .collect();
        for key in &stale {
            self.forget(key);
        }
        Ok(ended.len())
    }

    /// Drops a session from this gateway's memory (cache and followers) only.
    fn forget(&self, key: &SessionKey) {
        self.cache.remove(key);
        self.tell_ended(key);
    }

    fn tell_ended(&self, key: &SessionKey) {
        for f in &self.followers {
            f.session_ended(key);
        }
    }

    /// Follows what another gateway did (see the module docs).
    pub fn apply(&self, event: SessionEvent) {
        match event {
            SessionEvent::Ended(key) => self.forget(&key),
            SessionEvent::Resync => {
                self.cache.clear();
                for f in &self.followers {
                    f.all_sessions_ended();
                }
            }
        }
    }

    /// Ends expired sessions, writes recent activity to the store, drops cache entries that can
    /// no longer be used, and recounts the live sessions. Periodic.
    pub async fn housekeeping(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let seen: Vec<(SessionKey, u64)> = self
            .cache
            .iter()
            .filter(|e| e.value().dirty.swap(false, Ordering::Relaxed))
            .map(|e| (*e.key(), e.value().last_seen_ms()))
            .collect();
        if !seen.is_empty() {
            self.store.sessions().touch_sessions(&seen).await?;
        }
        let created_before = now.saturating_sub(millis(self.cfg.lifetime));
        let seen_before = now.saturating_sub(millis(self.cfg.idle_timeout));
        let saved_before = match self.cfg.saved_lifetime {
            Some(saved) => now.saturating_sub(millis(saved)),
            // Saved sign-ins no longer offered: the ones made before end like any other.
            None => created_before,
        };
        let purged = self
            .store
            .sessions()
            .purge_sessions(
                created_before.saturating_add(1),
                seen_before.saturating_add(1),
                saved_before.saturating_add(1),
            )
            .await?;
        for key in &purged {
            self.forget(key);
        }
        let expired: Vec<SessionKey> = self
            .cache
            .iter()
            .filter(|e| self.expired(e.value(), now))
            .map(|e| *e.key())
            .collect();
        for key in &expired {
            self.forget(key);
        }
        let live = self.store.sessions().count_sessions().await?;
        let live = usize::try_from(live).unwrap_or(usize::MAX);
        self.live.store(live, Ordering::Relaxed);
        if crate::metrics::enabled() {
            let two = self
                .cache
                .iter()
                .filter(|e| e.value().level() == AuthLevel::TwoFactor)
                .count();
            crate::metrics::sessions(self.cache.len().saturating_sub(two), two, live);
        }
        Ok(())
    }

    /// Sessions this gateway holds in memory.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests;
