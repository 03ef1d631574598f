//! Typed records of steps in flight, kept in the store's challenges: a setup's progress, a
//! change begun, a send budget. Each is JSON under a key of its own (`setup:<session>`,
//! `change:<session>`, `sends:<user>`), with an expiry; secrets in them are sealed by the
//! caller. Updates are optimistic: read a version, write only if it is still that version, so
//! two requests racing on one record (a double submit, two gateways) never both count one code.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{Challenge, Store, StoreError};

/// How many times an update is retried when another request changed the record meanwhile.
const RETRIES: usize = 8;

/// A record read from the store, with the version it was read at.
pub(crate) struct Loaded<T> {
    pub value: T,
    pub version: u64,
    pub expires_ms: u64,
}

/// The key of a session's record of `purpose` (the session key in hex: never the session ID).
pub(crate) fn session_key(purpose: &str, key: &[u8; 32]) -> String {
    let mut out = String::with_capacity(purpose.len() + 1 + 64);
    out.push_str(purpose);
    out.push(':');
    for b in key {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "a step in flight",
        why: e.to_string(),
    }
}

pub(crate) async fn load<T: DeserializeOwned>(
    store: &Store,
    key: &str,
    now: u64,
) -> Result<Option<Loaded<T>>, StoreError> {
    let Some(ch) = store.challenges().challenge(key, now).await? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&ch.data).map_err(corrupt)?;
    Ok(Some(Loaded {
        value,
        version: ch.version,
        expires_ms: ch.expires_ms,
    }))
}

fn challenge<T: Serialize>(
    user: &str,
    kind: &str,
    value: &T,
    expires_ms: u64,
) -> Result<Challenge, StoreError> {
    Ok(Challenge {
        user: user.to_owned(),
        kind: kind.to_owned(),
        data: serde_json::to_vec(value).map_err(corrupt)?,
        expires_ms,
        version: 0,
    })
}

/// Creates or overwrites a record.
pub(crate) async fn save<T: Serialize>(
    store: &Store,
    key: &str,
    user: &str,
    kind: &str,
    value: &T,
    expires_ms: u64,
) -> Result<(), StoreError> {
    let ch = challenge(user, kind, value, expires_ms)?;
    store.challenges().put_challenge(key, &ch).await?;
    Ok(())
}

pub(crate) async fn delete(store: &Store, key: &str) -> Result<(), StoreError> {
    store.challenges().delete_challenge(key).await
}

/// Reads the record, lets `change` edit it and say what it found, and writes it back if no one
/// else wrote it meanwhile (else reads again and retries). `change` returns the outcome and
/// whether to keep the record (`false` deletes it). `None` when there is no record.
pub(crate) async fn update<T, R>(
    store: &Store,
    key: &str,
    user: &str,
    kind: &str,
    now: u64,
    mut change: impl FnMut(&mut T) -> (R, bool),
) -> Result<Option<R>, StoreError>
where
    T: Serialize + DeserializeOwned,
{
    for _ in 0..RETRIES {
        let Some(mut loaded) = load::<T>(store, key, now).await? else {
            return Ok(None);
        };
        let (outcome, keep) = change(&mut loaded.value);
        if !keep {
            delete(store, key).await?;
            return Ok(Some(outcome));
        }
        let ch = challenge(user, kind, &loaded.value, loaded.expires_ms)?;
        if store
            .challenges()
            .replace_challenge(key, loaded.version, &ch)
            .await?
        {
            return Ok(Some(outcome));
        }
    }
    Err(StoreError::Backend {
        backend: "flow",
        message: format!("a step in flight kept changing under this request ({RETRIES} tries)"),
    })
}
