//! The account lock ("this wasn't me", or an operator's `stepgate admin lock`): what a lock does
//! to the stored state, in one place for the gateway and the CLI.
//!
//! Locking ends every session of the user (saved sign-ins included; the store tells other
//! gateways), forgets every trusted browser and approver device, cancels everything in flight (codes, setups, reset
//! links) and records the lock, which survives a restart. While locked, sign-in fails with the
//! generic failure whatever the password. A password reset that passes the second factor, or
//! an operator, unlocks.

use crate::browsers;
use crate::store::{Result, SessionKey, Store, Write};

/// What a lock ended.
#[derive(Debug, Default)]
pub struct Locked {
    /// The sessions it ended (the gateway drops them from its cache too).
    pub sessions: Vec<SessionKey>,
    /// Challenges in flight it cancelled.
    pub cancelled: u64,
}

/// Locks `user`'s account at `now`.
pub async fn lock(store: &Store, user: &str, now: u64) -> Result<Locked> {
    store
        .credentials()
        .write(vec![Write::SetLocked {
            user: user.to_owned(),
            at_ms: Some(now),
        }])
        .await?;
    let sessions = store.sessions().delete_sessions_of(user, None).await?;
    browsers::forget_all(store, user).await?;
    crate::devices::remove_all(store, user).await?;
    let cancelled = store.challenges().delete_challenges_of(user).await?;
    Ok(Locked {
        sessions,
        cancelled,
    })
}

/// Lifts the lock; `true` when the account was locked.
pub async fn unlock(store: &Store, user: &str) -> Result<bool> {
    let was = locked_since(store, user).await?.is_some();
    store
        .credentials()
        .write(vec![Write::SetLocked {
            user: user.to_owned(),
            at_ms: None,
        }])
        .await?;
    Ok(was)
}

/// When the account was locked, if it is.
pub async fn locked_since(store: &Store, user: &str) -> Result<Option<u64>> {
    Ok(store.credentials().account(user).await?.locked_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Challenge, SessionRecord};

    #[tokio::test]
    async fn a_lock_ends_sessions_trust_and_codes_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Default::default(), dir.path()).unwrap();
        let record = SessionRecord {
            user: "alice".into(),
            amr: "pwd".into(),
            created_ms: 1,
            auth_ms: 1,
            last_seen_ms: 1,
            deferred: false,
            persistent: true,
            needs_check: false,
            client: "192.0.2.1".into(),
            agent: "Firefox (Linux)".into(),
            trusted: String::new(),
        };
        store
            .sessions()
            .put_session(&[7; 32], &record)
            .await
            .unwrap();
        let place = browsers::Place::default();
        let (token, _) = browsers::trust(&store, "alice", &place, 1, 10_000)
            .await
            .unwrap();
        let code = Challenge {
            user: "alice".into(),
            kind: "reset".into(),
            data: vec![],
            expires_ms: 10_000,
            version: 0,
        };
        store
            .challenges()
            .put_challenge("reset:x", &code)
            .await
            .unwrap();

        let locked = lock(&store, "alice", 5).await.unwrap();
        assert_eq!(locked.sessions, vec![[7; 32]]);
        assert_eq!(locked.cancelled, 1);
        assert_eq!(
            browsers::check(&store, "alice", &token, 2).await.unwrap(),
            None
        );
        drop(store);
        let store = Store::open(&Default::default(), dir.path()).unwrap();
        assert_eq!(locked_since(&store, "alice").await.unwrap(), Some(5));
        assert!(unlock(&store, "alice").await.unwrap());
        assert_eq!(locked_since(&store, "alice").await.unwrap(), None);
        assert!(!unlock(&store, "alice").await.unwrap());
    }
}
