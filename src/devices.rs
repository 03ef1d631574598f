//! The user's own signed-in browsers and phones as a second factor (seeds 000 and 002: a sign-in
//! is approved on the phone where the account is already signed in; the PC signs in with a
//! security code shown on that phone; a device whose identity changed verifies again).
//!
//! - **Approver devices** are credentials of kind `approver`: the browser's long-lived device
//!   cookie (`browsers::DEVICE_COOKIE`), kept as its SHA-256 under an ID that is the first 128
//!   bits of it, like a trusted browser. `data` says which browser it was and where it was
//!   added; `counter` is its last use. A browser is *this* approver only while it sends the same
//!   device cookie **and** says it is the same browser: a lost or replaced cookie, or the cookie
//!   in another browser, reads as [`Recognised::Changed`] or [`Recognised::Unknown`], and the
//!   device must be verified again (added anew, behind a fresh proof) before it approves.
//! - **One approval request per user**, a challenge under `approval:<user>` (so every gateway on
//!   the same database sees it): the newest replaces an older one. It holds a secret ID that
//!   only the requesting browser is given (its answer when it asks to be let in), a public
//!   reference the approver's form names, the two-digit number the approver must type, where the
//!   request came from, and its [`State`]. Every transition is a compare-and-swap on the
//!   challenge's version, so a double submit or two gateways racing decide once, and an approved
//!   request lets one browser in once ([`use_approval`]).
//!
//! Who may decide, the limits and the notices are the flow's (`flow::approvals`); this module
//! keeps the records.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::browsers::{new_token, token_key};
use crate::store::{Challenge, Credential, Result, Store, StoreError, Write};

pub const APPROVER: &str = "approver";
/// Approver devices kept per account; adding one more forgets the least recently used.
pub const MAX_APPROVERS: usize = 10;

/// Where and on what an approver device was added (display, and the browser check).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ApproverData {
    browser: String,
    address: String,
}

/// One approver device, as the devices page and `stepgate admin` list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approver {
    pub id: String,
    pub browser: String,
    pub address: String,
    pub added_ms: u64,
    pub last_used_ms: u64,
}

fn approver_of(c: Credential) -> Approver {
    let data: ApproverData = serde_json::from_slice(&c.data).unwrap_or_default();
    Approver {
        id: c.id,
        browser: data.browser,
        address: data.address,
        added_ms: c.created_ms,
        last_used_ms: c.counter.max(c.created_ms),
    }
}

/// The user's approver devices, most recently used first.
pub async fn approvers(store: &Store, user: &str) -> Result<Vec<Approver>> {
    let mut list: Vec<Approver> = store
        .credentials()
        .credentials(user, Some(APPROVER))
        .await?
        .into_iter()
        .map(approver_of)
        .collect();
    list.sort_by_key(|a| std::cmp::Reverse(a.last_used_ms));
    Ok(list)
}

/// What a browser is to the user's approver devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognised {
    /// One of them (its ID).
    Approver(String),
    /// Its device cookie names an approver, but another browser now presents it (or the record
    /// does not match): it must be verified again.
    Changed,
    /// Not an approver (no device cookie, or one no approver has: a lost cookie looks like this).
    Unknown,
}

/// Whether the browser with device cookie `token`, describing itself as `browser`, is one of
/// `user`'s approver devices.
pub async fn recognise(
    store: &Store,
    user: &str,
    token: Option<&str>,
    browser: &str,
) -> Result<Recognised> {
    let Some((id, hash)) = token.and_then(token_key) else {
        return Ok(Recognised::Unknown);
    };
    let found = store
        .credentials()
        .credentials(user, Some(APPROVER))
        .await?
        .into_iter()
        .find(|c| c.id == id);
    let Some(c) = found else {
        return Ok(Recognised::Unknown);
    };
    let same: bool = subtle::ConstantTimeEq::ct_eq(&c.secret[..], &hash[..]).into();
    let data: ApproverData = serde_json::from_slice(&c.data).unwrap_or_default();
    Ok(if same && data.browser == browser {
        Recognised::Approver(c.id)
    } else {
        Recognised::Changed
    })
}

/// Makes the browser with device cookie `token` (a new one when it has none: the caller sets
/// the returned token as its cookie) an approver device of `user`, replacing what that cookie
/// was registered as before. Returns the device and the token.
pub async fn add(
    store: &Store,
    user: &str,
    token: Option<&str>,
    (browser, address): (&str, &str),
    now: u64,
) -> Result<(Approver, String)> {
    let token = match token.filter(|t| token_key(t).is_some()) {
        Some(t) => t.to_owned(),
        None => new_token(),
    };
    let (id, hash) = token_key(&token).expect("a checked or new token has the token format");
    let data = ApproverData {
        browser: browser.to_owned(),
        address: address.to_owned(),
    };
    let cred = Credential {
        user: user.to_owned(),
        kind: APPROVER.to_owned(),
        id: id.clone(),
        secret: hash,
        counter: now,
        created_ms: now,
        used_ms: None,
        expires_ms: None,
        data: serde_json::to_vec(&data).unwrap_or_default(),
    };
    let mut batch = vec![Write::Put(cred.clone())];
    let existing = approvers(store, user).await?;
    let others = existing.iter().filter(|a| a.id != id);
    for old in others.skip(MAX_APPROVERS - 1) {
        batch.push(Write::DeleteOne {
            user: user.to_owned(),
            kind: APPROVER.to_owned(),
            id: old.id.clone(),
        });
    }
    store.credentials().write(batch).await?;
    Ok((approver_of(cred), token))
}

/// Removes one approver device; `true` when it was there.
pub async fn remove(store: &Store, user: &str, id: &str) -> Result<bool> {
    store
        .credentials()
        .delete_credential(user, APPROVER, id)
        .await
}

/// Removes every approver device of `user` (an account lock, a 2FA reset).
pub async fn remove_all(store: &Store, user: &str) -> Result<()> {
    store
        .credentials()
        .write(vec![Write::DeleteKinds {
            user: user.to_owned(),
            kinds: vec![APPROVER.to_owned()],
        }])
        .await?;
    Ok(())
}

/// Records that approver `id` was used at `now` (for the list). Best effort for the caller.
pub async fn touch(store: &Store, user: &str, id: &str, now: u64) -> Result<()> {
    let creds = store.credentials();
    if let Some(c) = creds
        .credentials(user, Some(APPROVER))
        .await?
        .into_iter()
        .find(|c| c.id == id)
    {
        creds
            .advance_counter(user, APPROVER, id, &c.secret, now)
            .await?;
    }
    Ok(())
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    /// Denied with "this wasn't me".
    NotMe,
    /// Approved, and the requesting browser was let in: never again.
    Used,
}

/// A sign-in waiting for approval on one of the user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Secret: only the requesting browser is given it.
    pub id: String,
    /// Public: what the approver's form names, so a decision never lands on a newer request.
    pub reference: String,
    /// 10 to 99, shown on the requesting page, typed on the approver.
    pub number: u8,
    /// The requesting session's key in hex (never the session ID).
    pub requester: String,
    /// The app the sign-in is for, its address and browser.
    pub app: String,
    pub client: String,
    pub browser: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub state: State,
}

/// The store key of `user`'s request.
fn request_key(user: &str) -> String {
    format!("approval:{user}")
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "an approval request",
        why: e.to_string(),
    }
}

/// What a new request is about.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    pub requester: &'a str,
    pub app: &'a str,
    pub client: &'a str,
    pub browser: &'a str,
}

/// Creates `user`'s request (replacing any older one) and returns it.
pub async fn request(
    store: &Store,
    user: &str,
    asked: Asked<'_>,
    now: u64,
    expires_ms: u64,
) -> Result<Request> {
    let request = Request {
        id: new_token(),
        reference: new_token()[..16].to_owned(),
        number: rand::rngs::OsRng.gen_range(10..=99),
        requester: asked.requester.to_owned(),
        app: asked.app.to_owned(),
        client: asked.client.to_owned(),
        browser: asked.browser.to_owned(),
        created_ms: now,
        expires_ms,
        state: State::Pending,
    };
    let ch = Challenge {
        user: user.to_owned(),
        kind: "approval".to_owned(),
        data: serde_json::to_vec(&request).map_err(corrupt)?,
        expires_ms,
        version: 0,
    };
    store
        .challenges()
        .put_challenge(&request_key(user), &ch)
        .await?;
    Ok(request)
}

/// `user`'s request, unless it expired, with its version.
pub async fn current(store: &Store, user: &str, now: u64) -> Result<Option<(Request, u64)>> {
    let Some(ch) = store
        .challenges()
        .challenge(&request_key(user), now)
        .await?
    else {
        return Ok(None);
    };
    let r: Request = serde_json::from_slice(&ch.data).map_err(corrupt)?;
    Ok(Some((r, ch.version)))
}

/// Moves `user`'s request from `from` to `to` if it is still the version read: `Some(request)`
/// for the one caller that did, `None` when it is gone, expired or moved on meanwhile.
pub async fn transition(
    store: &Store,
    user: &str,
    (request, version): (&Request, u64),
    to: State,
) -> Result<Option<Request>> {
    let next = Request {
        state: to,
        ..request.clone()
    };
    let ch = Challenge {
        user: user.to_owned(),
        kind: "approval".to_owned(),
        data: serde_json::to_vec(&next).map_err(corrupt)?,
        expires_ms: request.expires_ms,
        version: 0,
    };
    let moved = store
        .challenges()
        .replace_challenge(&request_key(user), version, &ch)
        .await?;
    Ok(moved.then_some(next))
}

/// What the requesting browser's answer (the request's secret ID) finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Approved, and now used: this caller lets the browser in.
    Approved,
    Pending,
    Denied,
    /// No such request: never made, replaced by a newer one, expired or already used.
    Gone,
}

/// The requesting browser asks whether its request (`id`) was approved; an approved one is
/// used up by this call (once, even when two requests race).
pub async fn use_approval(store: &Store, user: &str, id: &str, now: u64) -> Result<Outcome> {
    for _ in 0..8 {
        let Some((r, version)) = current(store, user, now).await? else {
            return Ok(Outcome::Gone);
        };
        let same: bool = subtle::ConstantTimeEq::ct_eq(r.id.as_bytes(), id.as_bytes()).into();
        if !same {
            return Ok(Outcome::Gone);
        }
        return Ok(match r.state {
            State::Pending => Outcome::Pending,
            State::Denied | State::NotMe => Outcome::Denied,
            State::Used => Outcome::Gone,
            State::Approved => match transition(store, user, (&r, version), State::Used).await? {
                Some(_) => Outcome::Approved,
                None => continue,
            },
        });
    }
    Err(StoreError::Backend {
        backend: "devices",
        message: "an approval request kept changing under this request".into(),
    })
}

/// Cancels `user`'s request, if any.
pub async fn cancel(store: &Store, user: &str) -> Result<()> {
    store
        .challenges()
        .delete_challenge(&request_key(user))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(&StoreConfig::default(), dir).expect("store")
    }

    #[tokio::test]
    async fn an_approver_is_its_cookie_in_the_same_browser() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (a, token) = add(&s, "alice", None, ("Firefox on Linux", "192.0.2.1"), 1)
            .await
            .unwrap();
        let is = |t: Option<String>, b: &'static str| {
            let s = s.clone();
            async move { recognise(&s, "alice", t.as_deref(), b).await.unwrap() }
        };
        assert_eq!(
            is(Some(token.clone()), "Firefox on Linux").await,
            Recognised::Approver(a.id.clone())
        );
        assert_eq!(
            is(Some(token.clone()), "Chrome on Windows").await,
            Recognised::Changed
        );
        assert_eq!(is(None, "Firefox on Linux").await, Recognised::Unknown);
        assert_eq!(
            is(Some(new_token()), "Firefox on Linux").await,
            Recognised::Unknown
        );
        // Another user's device cookie is nothing to alice.
        assert_eq!(
            recognise(&s, "bob", Some(&token), "Firefox on Linux")
                .await
                .unwrap(),
            Recognised::Unknown
        );
        // Added again from the same browser: one device, not two.
        add(
            &s,
            "alice",
            Some(&token),
            ("Firefox on Linux", "192.0.2.9"),
            2,
        )
        .await
        .unwrap();
        assert_eq!(approvers(&s, "alice").await.unwrap().len(), 1);
        assert!(remove(&s, "alice", &a.id).await.unwrap());
        assert_eq!(
            is(Some(token), "Firefox on Linux").await,
            Recognised::Unknown
        );
    }

    #[tokio::test]
    async fn an_approved_request_lets_one_browser_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let asked = Asked {
            requester: "ab",
            app: "app.test",
            client: "192.0.2.7",
            browser: "Chrome on Windows",
        };
        let r = request(&s, "alice", asked.clone(), 1_000, 121_000)
            .await
            .unwrap();
        assert!((10..=99).contains(&r.number));
        assert_eq!(
            use_approval(&s, "alice", &r.id, 2_000).await.unwrap(),
            Outcome::Pending
        );
        assert_eq!(
            use_approval(&s, "alice", "not-the-id", 2_000)
                .await
                .unwrap(),
            Outcome::Gone
        );
        let (cur, v) = current(&s, "alice", 2_000).await.unwrap().unwrap();
        assert!(transition(&s, "alice", (&cur, v), State::Approved)
            .await
            .unwrap()
            .is_some());
        // A decision on the version already decided does nothing.
        assert!(transition(&s, "alice", (&cur, v), State::Denied)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            use_approval(&s, "alice", &r.id, 3_000).await.unwrap(),
            Outcome::Approved
        );
        assert_eq!(
            use_approval(&s, "alice", &r.id, 3_000).await.unwrap(),
            Outcome::Gone,
            "an approval lets a browser in once"
        );
        // A newer request replaces an older one; an expired one is gone.
        let old = request(&s, "alice", asked.clone(), 4_000, 124_000)
            .await
            .unwrap();
        let new = request(&s, "alice", asked, 5_000, 125_000).await.unwrap();
        assert_eq!(
            use_approval(&s, "alice", &old.id, 6_000).await.unwrap(),
            Outcome::Gone
        );
        assert_eq!(
            use_approval(&s, "alice", &new.id, 125_001).await.unwrap(),
            Outcome::Gone
        );
    }
}
