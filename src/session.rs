//! Server-side sessions: IDs of 256 random bits handed out in a cookie, state kept in a
//! `DashMap` keyed by the SHA-256 of the ID (so neither memory dumps of the map nor the database
//! hold a usable ID), and written through to a durable store so sessions survive a restart.
//!
//! Enforced on the server: idle timeout and absolute lifetime (an expired session is removed when
//! seen and by the periodic purge), a new ID at every change of authentication level (the old
//! one is destroyed), no ID the server did not issue is ever accepted (lookups only find IDs the
//! map holds), a cap per user (the oldest session is ended) and a cap overall (new sign-ins are
//! refused while the gateway holds that many).

pub mod cookie;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::access::AuthLevel;
use crate::clock::SharedClock;
use store::{SessionRecord, SessionStore, StoreError};

/// SHA-256 of a session ID: how sessions are looked up and stored.
pub type SessionKey = [u8; 32];

/// Length of an encoded ID: 32 random bytes in unpadded base64url.
const ID_LEN: usize = 43;

/// How long after a second-factor proof in a session that session may change the account's
/// second factors or emergency email (SECURITY 7 and 42). Later, the user proves again.
pub const FRESH_PROOF: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub max_per_user: usize,
    pub max_sessions: usize,
    /// Parent domain for a single-sign-on cookie across subdomains (HTTPS only).
    pub cookie_domain: Option<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
            max_per_user: 10,
            max_sessions: 1_000_000,
            cookie_domain: None,
        }
    }
}

/// One signed-in browser.
#[derive(Debug)]
pub struct Session {
    pub user: String,
    pub level: AuthLevel,
    /// RFC 8176 `amr` values of the steps behind this session, e.g. `pwd`, `otp`.
    pub amr: Vec<String>,
    pub created_ms: u64,
    /// When the last authentication step happened.
    pub auth_ms: u64,
    /// The user chose "later" on the two-step setup guide: two-factor routes let this one-factor
    /// session through (the app still sees `1fa`). Only ever set on a new session.
    pub deferred: bool,
    last_seen_ms: AtomicU64,
    /// Seen since the last flush of `last_seen_ms` to the store.
    dirty: AtomicBool,
}

impl Session {
    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// Whether this session's second factor was proven less than `FRESH_PROOF` before `now_ms`
    /// (every proof makes a new two-factor session, so `auth_ms` is the time of the last one).
    pub fn has_fresh_proof(&self, now_ms: u64) -> bool {
        self.level == AuthLevel::TwoFactor
            && now_ms >= self.auth_ms
            && now_ms - self.auth_ms < FRESH_PROOF.as_millis() as u64
    }

    /// When the fresh proof of this session runs out (ms since the epoch).
    pub fn fresh_until_ms(&self) -> u64 {
        self.auth_ms.saturating_add(FRESH_PROOF.as_millis() as u64)
    }

    pub fn level_str(&self) -> &'static str {
        match self.level {
            AuthLevel::OneFactor => "1fa",
            AuthLevel::TwoFactor => "2fa",
        }
    }

    fn record(&self) -> SessionRecord {
        SessionRecord {
            user: self.user.clone(),
            level: self.level_str().to_owned(),
            amr: self.amr.join(","),
            created_ms: self.created_ms,
            auth_ms: self.auth_ms,
            last_seen_ms: self.last_seen_ms(),
            deferred: self.deferred,
        }
    }

    fn from_record(r: SessionRecord) -> Option<Session> {
        let level = match r.level.as_str() {
            "1fa" => AuthLevel::OneFactor,
            "2fa" => AuthLevel::TwoFactor,
            _ => return None,
        };
        Some(Session {
            user: r.user,
            level,
            amr: r
                .amr
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            created_ms: r.created_ms,
            auth_ms: r.auth_ms,
            deferred: r.deferred,
            last_seen_ms: AtomicU64::new(r.last_seen_ms),
            dirty: AtomicBool::new(false),
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

/// All sessions of this gateway.
pub struct Sessions {
    map: DashMap<SessionKey, Arc<Session>>,
    /// Each user's sessions, so that the per-user cap and "sign out everywhere" look at one
    /// user's sessions instead of scanning them all.
    by_user: DashMap<String, Vec<SessionKey>>,
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    cfg: SessionConfig,
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

fn new_id() -> (String, SessionKey) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let id = URL_SAFE_NO_PAD.encode(bytes);
    let key = Sha256::digest(id.as_bytes()).into();
    (id, key)
}

impl Sessions {
    /// Loads the sessions the store holds that have not expired.
    pub fn open(
        store: Arc<dyn SessionStore>,
        cfg: SessionConfig,
        clock: SharedClock,
    ) -> Result<Sessions, StoreError> {
        let sessions = Sessions {
            map: DashMap::new(),
            by_user: DashMap::new(),
            store,
            clock,
            cfg,
        };
        let now = sessions.clock.now_ms();
        for (key, record) in sessions.store.load_all()? {
            match Session::from_record(record) {
                Some(s) if !sessions.expired(&s, now) => {
                    sessions.index(&s.user, key);
                    sessions.map.insert(key, Arc::new(s));
                }
                _ => sessions.store.delete(&key)?,
            }
        }
        Ok(sessions)
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    fn expired(&self, s: &Session, now: u64) -> bool {
        now >= s
            .created_ms
            .saturating_add(self.cfg.lifetime.as_millis() as u64)
            || now
                >= s.last_seen_ms()
                    .saturating_add(self.cfg.idle_timeout.as_millis() as u64)
    }

    /// The live session for a cookie value; touches it. Expired sessions are removed.
    pub fn lookup(&self, id: &str) -> Option<(SessionKey, Arc<Session>)> {
        let key = key_of(id)?;
        let session = self.map.get(&key).map(|s| Arc::clone(s.value()))?;
        let now = self.clock.now_ms();
        if self.expired(&session, now) {
            self.destroy(&key);
            return None;
        }
        session.last_seen_ms.store(now, Ordering::Relaxed);
        session.dirty.store(true, Ordering::Relaxed);
        Some((key, session))
    }

    /// A new session after an authentication step. `replaces` (the previous session of this
    /// browser, if any) is destroyed: a new ID at every change of authentication level.
    pub fn create(
        &self,
        user: &str,
        level: AuthLevel,
        amr: Vec<String>,
        replaces: Option<&SessionKey>,
    ) -> Result<(String, Arc<Session>), SessionError> {
        self.create_inner(user, level, amr, replaces, false)
    }

    /// A new one-factor session for `old`'s user that two-factor routes let through, after the
    /// user chose "later" on the setup guide. The old session is destroyed (a new ID); the
    /// absolute lifetime of the sign-in carries over.
    pub fn defer_second_factor(
        &self,
        old: &SessionKey,
    ) -> Result<Option<(String, Arc<Session>)>, SessionError> {
        let Some(current) = self.map.get(old).map(|s| Arc::clone(s.value())) else {
            return Ok(None);
        };
        if current.level != AuthLevel::OneFactor {
            return Ok(None);
        }
        self.create_inner(
            &current.user,
            AuthLevel::OneFactor,
            current.amr.clone(),
            Some(old),
            true,
        )
        .map(Some)
    }

    fn create_inner(
        &self,
        user: &str,
        level: AuthLevel,
        amr: Vec<String>,
        replaces: Option<&SessionKey>,
        deferred: bool,
    ) -> Result<(String, Arc<Session>), SessionError> {
        let now = self.clock.now_ms();
        let created_ms = match replaces.and_then(|k| self.map.get(k).map(|s| s.created_ms)) {
            // Stepping up (or deferring) keeps the absolute lifetime of the sign-in it continues.
            Some(created) if level == AuthLevel::TwoFactor || deferred => created,
            _ => now,
        };
        if let Some(old) = replaces {
            self.destroy(old);
        }
        if self.map.len() >= self.cfg.max_sessions {
            return Err(SessionError::Full(self.cfg.max_sessions));
        }
        self.enforce_user_cap(user);
        let session = Arc::new(Session {
            user: user.to_owned(),
            level,
            amr,
            created_ms,
            auth_ms: now,
            deferred,
            last_seen_ms: AtomicU64::new(now),
            dirty: AtomicBool::new(false),
        });
        let (id, key) = new_id();
        self.store.put(&key, &session.record())?;
        self.index(user, key);
        self.map.insert(key, Arc::clone(&session));
        Ok((id, session))
    }

    fn index(&self, user: &str, key: SessionKey) {
        self.by_user.entry(user.to_owned()).or_default().push(key);
    }

    /// The keys of `user`'s sessions.
    fn keys_of(&self, user: &str) -> Vec<SessionKey> {
        self.by_user
            .get(user)
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// Ends the oldest sessions of `user` so that one more fits under `max_per_user`.
    fn enforce_user_cap(&self, user: &str) {
        let mut mine: Vec<(SessionKey, u64)> = self
            .keys_of(user)
            .into_iter()
            .filter_map(|k| self.map.get(&k).map(|s| (k, s.created_ms)))
            .collect();
        if mine.len() < self.cfg.max_per_user {
            return;
        }
        mine.sort_by_key(|(_, created)| *created);
        let excess = mine.len() + 1 - self.cfg.max_per_user;
        for (key, _) in mine.into_iter().take(excess) {
            tracing::info!(target: "stepgate::session", user, "oldest session ended: per-user session cap");
            self.destroy(&key);
        }
    }

    pub fn destroy(&self, key: &SessionKey) {
        if let Some((_, session)) = self.map.remove(key) {
            let user = session.user.as_str();
            let emptied = self.by_user.get_mut(user).is_some_and(|mut keys| {
                keys.retain(|k| k != key);
                keys.is_empty()
            });
            if emptied {
                // Only if still empty: a create for the user may have raced in meanwhile.
                self.by_user.remove_if(user, |_, keys| keys.is_empty());
            }
        }
        if let Err(e) = self.store.delete(key) {
            tracing::error!(target: "stepgate::session", error = %e, "could not delete a session from the store");
        }
    }

    /// Signs a user out everywhere.
    pub fn destroy_user(&self, user: &str) -> usize {
        let keys = self.keys_of(user);
        for k in &keys {
            self.destroy(k);
        }
        keys.len()
    }

    /// Ends every session of `user` but `keep` (after a second-factor change).
    pub fn destroy_others(&self, user: &str, keep: &SessionKey) -> usize {
        let keys: Vec<SessionKey> = self
            .keys_of(user)
            .into_iter()
            .filter(|k| k != keep)
            .collect();
        for k in &keys {
            self.destroy(k);
        }
        keys.len()
    }

    /// Removes expired sessions and writes recent activity to the store. Periodic.
    pub fn housekeeping(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let expired: Vec<SessionKey> = self
            .map
            .iter()
            .filter(|e| self.expired(e.value(), now))
            .map(|e| *e.key())
            .collect();
        for k in &expired {
            self.destroy(k);
        }
        let seen: Vec<(SessionKey, u64)> = self
            .map
            .iter()
            .filter(|e| e.value().dirty.swap(false, Ordering::Relaxed))
            .map(|e| (*e.key(), e.value().last_seen_ms()))
            .collect();
        if !seen.is_empty() {
            self.store.touch(&seen)?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn sessions(dir: &std::path::Path, clock: Arc<ManualClock>) -> Sessions {
        let store = Arc::new(store::SqliteStore::open(dir).unwrap());
        Sessions::open(
            store,
            SessionConfig {
                max_per_user: 2,
                ..SessionConfig::default()
            },
            clock,
        )
        .unwrap()
    }

    #[test]
    fn ids_are_random_and_only_issued_ones_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = sessions(dir.path(), ManualClock::now());
        let (a, _) = s
            .create("alice", AuthLevel::OneFactor, vec!["pwd".into()], None)
            .unwrap();
        let (b, _) = s
            .create("alice", AuthLevel::OneFactor, vec!["pwd".into()], None)
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), ID_LEN);
        assert!(s.lookup(&a).is_some());
        let (forged, _) = new_id();
        assert!(s.lookup(&forged).is_none());
        assert!(s.lookup("short").is_none());
    }

    #[test]
    fn idle_and_absolute_expiry_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::now();
        let s = sessions(dir.path(), clock.clone());
        let (id, _) = s.create("bob", AuthLevel::OneFactor, vec![], None).unwrap();
        clock.advance(Duration::from_secs(29 * 60));
        assert!(s.lookup(&id).is_some(), "used within the idle timeout");
        clock.advance(Duration::from_secs(31 * 60));
        assert!(s.lookup(&id).is_none(), "idle for 31 minutes");
        let (id, _) = s.create("bob", AuthLevel::OneFactor, vec![], None).unwrap();
        for _ in 0..25 {
            clock.advance(Duration::from_secs(29 * 60));
            if s.lookup(&id).is_none() {
                break;
            }
        }
        assert!(s.lookup(&id).is_none(), "past the absolute lifetime");
    }

    #[test]
    fn step_up_rotates_the_id_and_caps_apply() {
        let dir = tempfile::tempdir().unwrap();
        let s = sessions(dir.path(), ManualClock::now());
        let (old, _) = s
            .create("carol", AuthLevel::OneFactor, vec!["pwd".into()], None)
            .unwrap();
        let old_key = key_of(&old).unwrap();
        let (new, sess) = s
            .create(
                "carol",
                AuthLevel::TwoFactor,
                vec!["pwd".into(), "otp".into()],
                Some(&old_key),
            )
            .unwrap();
        assert_ne!(old, new);
        assert!(s.lookup(&old).is_none());
        assert_eq!(sess.level, AuthLevel::TwoFactor);
        s.create("carol", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        s.create("carol", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        assert_eq!(s.len(), 2, "max_per_user = 2");
    }

    #[test]
    fn the_per_user_index_follows_creates_and_destroys() {
        let dir = tempfile::tempdir().unwrap();
        let s = sessions(dir.path(), ManualClock::now());
        let (a, _) = s
            .create("erin", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        s.create("erin", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        s.create("erin", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        assert_eq!(s.keys_of("erin").len(), 2, "the cap ended the oldest");
        assert!(s.lookup(&a).is_none(), "and it was the oldest");
        let (f, _) = s
            .create("frank", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        let keep = key_of(&f).unwrap();
        s.create("frank", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        assert_eq!(s.destroy_others("frank", &keep), 1);
        assert!(s.lookup(&f).is_some());
        assert_eq!(s.destroy_user("erin"), 2);
        assert!(s.keys_of("erin").is_empty() && !s.by_user.contains_key("erin"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_proof_is_fresh_for_five_minutes_and_only_at_two_factors() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::now();
        let s = sessions(dir.path(), clock.clone());
        let (_, one) = s
            .create("gina", AuthLevel::OneFactor, vec![], None)
            .unwrap();
        assert!(
            !one.has_fresh_proof(clock.now_ms()),
            "a password is not a second factor"
        );
        let (_, two) = s
            .create("gina", AuthLevel::TwoFactor, vec![], None)
            .unwrap();
        assert!(two.has_fresh_proof(clock.now_ms()));
        clock.advance(FRESH_PROOF - Duration::from_millis(1));
        assert!(two.has_fresh_proof(clock.now_ms()));
        clock.advance(Duration::from_millis(1));
        assert!(!two.has_fresh_proof(clock.now_ms()));
        assert!(
            !two.has_fresh_proof(two.auth_ms - 1),
            "a clock behind the proof is not fresh"
        );
    }

    #[test]
    fn sessions_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::now();
        let id = {
            let s = sessions(dir.path(), clock.clone());
            s.create("dave", AuthLevel::OneFactor, vec!["pwd".into()], None)
                .unwrap()
                .0
        };
        let s = sessions(dir.path(), clock);
        let (_, sess) = s.lookup(&id).expect("restored");
        assert_eq!(sess.user, "dave");
        assert_eq!(sess.amr, vec!["pwd".to_owned()]);
    }
}
