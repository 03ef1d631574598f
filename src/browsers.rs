//! What an account knows about the browsers it is used from: **trusted browsers** ("don't ask
//! again on this browser") and **known environments** (for the unfamiliar-sign-in check).
//!
//! Both are credentials in the store, so they survive a restart and are seen by every gateway
//! on the same database:
//!
//! - `trusted_browser`: the browser holds a random 256-bit token in its own cookie (separate
//!   from the session); the store keeps only its SHA-256 (`secret`), under an ID that is the
//!   first 128 bits of it in base64url. `counter` is the last use, `expires_ms` the end of the
//!   operator's lifetime, `data` where it was made (browser and address, JSON). A token is
//!   looked up under the signing-in user only, so another user's token, a forged or bit-flipped
//!   one, and an expired one all read as absent.
//! - `device` and `network`: a browser that completed a sign-in (its long-lived device cookie,
//!   stored as a hash) and the address prefix it came from (IPv4 /24, IPv6 /48). A sign-in is
//!   *unfamiliar* when both the browser and the network are new to the account (see
//!   [`Familiarity`]). Each list keeps the most recently used [`MAX_KNOWN`].

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{Credential, Result, Store, Write};

pub const TRUSTED: &str = "trusted_browser";
pub const DEVICE: &str = "device";
pub const NETWORK: &str = "network";

/// The cookie (base name) of a trusted browser's token.
pub const TRUST_COOKIE: &str = "stepgate_trust";
/// The cookie (base name) that tells a browser apart, kept for two years.
pub const DEVICE_COOKIE: &str = "stepgate_device";
pub const DEVICE_COOKIE_SECS: u64 = 2 * 365 * 24 * 3600;

/// Known browsers and networks kept per account (the least recently used go first).
pub const MAX_KNOWN: usize = 20;
/// Trusted browsers per account; trusting one more forgets the least recently used.
pub const MAX_TRUSTED: usize = 20;

/// A new random token for a cookie (256 bits, base64url).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `(id, hash)` of a cookie token: what the store keeps. `None` for a value that cannot be a
/// token this server made.
pub fn token_key(token: &str) -> Option<(String, Vec<u8>)> {
    if token.len() != 43
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let hash = Sha256::digest(token.as_bytes());
    Some((URL_SAFE_NO_PAD.encode(&hash[..16]), hash.to_vec()))
}

/// Where a trusted browser or known device was first used (display only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub browser: String,
    pub address: String,
}

impl Place {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(data: &[u8]) -> Place {
        serde_json::from_slice(data).unwrap_or_default()
    }
}

/// One trusted browser, as the account page and `stepgate admin` list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trusted {
    pub id: String,
    pub browser: String,
    pub address: String,
    pub first_used_ms: u64,
    pub last_used_ms: u64,
    pub expires_ms: u64,
}

/// The user's trusted browsers that have not expired, most recently used first.
pub async fn trusted(store: &Store, user: &str, now: u64) -> Result<Vec<Trusted>> {
    let mut list: Vec<Trusted> = store
        .credentials()
        .credentials(user, Some(TRUSTED))
        .await?
        .into_iter()
        .filter(|c| c.expires_ms.is_some_and(|e| e > now))
        .map(|c| {
            let place = Place::decode(&c.data);
            Trusted {
                id: c.id,
                browser: place.browser,
                address: place.address,
                first_used_ms: c.created_ms,
                last_used_ms: c.counter.max(c.created_ms),
                expires_ms: c.expires_ms.unwrap_or(0),
            }
        })
        .collect();
    list.sort_by_key(|t| std::cmp::Reverse(t.last_used_ms));
    Ok(list)
}

/// Trusts this browser for `user` until `expires_ms`; returns the token for its cookie and
/// the credential ID. The least recently used trusted browsers beyond [`MAX_TRUSTED`] go.
pub async fn trust(
    store: &Store,
    user: &str,
    place: &Place,
    now: u64,
    expires_ms: u64,
) -> Result<(String, String)> {
    let token = new_token();
    let (id, hash) = token_key(&token).expect("a new token has the token format");
    let mut batch = vec![Write::Put(Credential {
        user: user.to_owned(),
        kind: TRUSTED.to_owned(),
        id: id.clone(),
        secret: hash,
        counter: now,
        created_ms: now,
        used_ms: None,
        expires_ms: Some(expires_ms),
        data: place.encode(),
    })];
    let existing = trusted(store, user, now).await?;
    for old in existing.iter().skip(MAX_TRUSTED - 1) {
        batch.push(delete_one(user, TRUSTED, &old.id));
    }
    store.credentials().write(batch).await?;
    Ok((token, id))
}

fn delete_one(user: &str, kind: &str, id: &str) -> Write {
    // One credential of a kind: `Put` of an already expired copy would leave rows behind, so
    // removal is a `DeleteKinds` only when all go; here the store's delete is used instead.
    Write::DeleteOne {
        user: user.to_owned(),
        kind: kind.to_owned(),
        id: id.to_owned(),
    }
}

/// The credential ID of the trusted browser behind `token`, if `token` is one of `user`'s and
/// has not expired; its last use becomes `now`.
pub async fn check(store: &Store, user: &str, token: &str, now: u64) -> Result<Option<String>> {
    let Some((id, hash)) = token_key(token) else {
        return Ok(None);
    };
    let found = store
        .credentials()
        .credentials(user, Some(TRUSTED))
        .await?
        .into_iter()
        .find(|c| c.id == id);
    let Some(c) = found else {
        return Ok(None);
    };
    // The ID is a prefix of the hash: compare all of it, in constant time.
    let same: bool = subtle::ConstantTimeEq::ct_eq(&c.secret[..], &hash[..]).into();
    if !same || c.expires_ms.is_none_or(|e| e <= now) {
        return Ok(None);
    }
    store
        .credentials()
        .advance_counter(user, TRUSTED, &id, &c.secret, now)
        .await?;
    Ok(Some(id))
}

/// Forgets one trusted browser; `true` when it was there.
pub async fn forget(store: &Store, user: &str, id: &str) -> Result<bool> {
    store
        .credentials()
        .delete_credential(user, TRUSTED, id)
        .await
}

/// Forgets every trusted browser of `user`.
pub async fn forget_all(store: &Store, user: &str) -> Result<()> {
    store
        .credentials()
        .write(vec![Write::DeleteKinds {
            user: user.to_owned(),
            kinds: vec![TRUSTED.to_owned()],
        }])
        .await?;
    Ok(())
}

/// The network an address belongs to, as the familiarity check sees it: the IPv4 /24 or the
/// IPv6 /48 (what one household, office or mobile operator's pool typically shares).
pub fn network_of(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

/// How well the account knows where a sign-in comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Familiarity {
    /// The account has no history yet: its first sign-in sets the baseline.
    FirstSignIn,
    /// The browser (device cookie) or the network is one the account has signed in from.
    Known,
    /// Both are new to the account.
    Unfamiliar,
}

/// Whether `device` (the device cookie, if the browser sent one) or the network of `client`
/// is known to `user`.
pub async fn familiarity(
    store: &Store,
    user: &str,
    device: Option<&str>,
    client: IpAddr,
) -> Result<Familiarity> {
    let known = store.credentials().credentials(user, None).await?;
    let devices = known.iter().filter(|c| c.kind == DEVICE);
    let networks = known.iter().filter(|c| c.kind == NETWORK);
    if devices.clone().count() == 0 && networks.clone().count() == 0 {
        return Ok(Familiarity::FirstSignIn);
    }
    let device_id = device.and_then(token_key).map(|(id, _)| id);
    let net = network_of(client);
    let seen = devices.clone().any(|c| Some(&c.id) == device_id.as_ref())
        || networks.clone().any(|c| c.id == net);
    Ok(if seen {
        Familiarity::Known
    } else {
        Familiarity::Unfamiliar
    })
}

/// Whether the browser with device cookie `token` completed a sign-in of `user` before (its
/// hash is among the account's known devices; the ID alone is never enough).
pub async fn knows_device(store: &Store, user: &str, token: &str) -> Result<bool> {
    let Some((id, hash)) = token_key(token) else {
        return Ok(false);
    };
    let known = store.credentials().credentials(user, Some(DEVICE)).await?;
    Ok(known
        .iter()
        .any(|c| c.id == id && bool::from(subtle::ConstantTimeEq::ct_eq(&c.secret[..], &hash[..]))))
}

/// Remembers that `user` completed a sign-in from `device` and the network of `client` (the
/// least recently used beyond [`MAX_KNOWN`] are forgotten).
pub async fn remember_environment(
    store: &Store,
    user: &str,
    device: &str,
    client: IpAddr,
    place: &Place,
    now: u64,
) -> Result<()> {
    let known = store.credentials().credentials(user, None).await?;
    let mut batch = Vec::new();
    let device_id = token_key(device);
    for (kind, id, secret) in [
        (
            DEVICE,
            device_id.as_ref().map(|(id, _)| id.clone()),
            device_id.as_ref().map(|(_, h)| h.clone()),
        ),
        (NETWORK, Some(network_of(client)), Some(Vec::new())),
    ] {
        let (Some(id), Some(secret)) = (id, secret) else {
            continue;
        };
        let mut mine: Vec<&Credential> = known.iter().filter(|c| c.kind == kind).collect();
        let created_ms = mine
            .iter()
            .find(|c| c.id == id)
            .map_or(now, |c| c.created_ms);
        batch.push(Write::Put(Credential {
            user: user.to_owned(),
            kind: kind.to_owned(),
            id: id.clone(),
            secret,
            counter: now,
            created_ms,
            used_ms: None,
            expires_ms: None,
            data: place.encode(),
        }));
        mine.retain(|c| c.id != id);
        mine.sort_by_key(|c| std::cmp::Reverse(c.counter));
        for old in mine.iter().skip(MAX_KNOWN - 1) {
            batch.push(delete_one(user, kind, &old.id));
        }
    }
    store.credentials().write(batch).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        assert_eq!(network_of("203.0.113.7".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(
            network_of("2001:db8:aa:bb::1".parse().unwrap()),
            "2001:db8:aa::/48"
        );
        assert_eq!(
            network_of("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn only_well_formed_tokens_have_a_key() {
        let t = new_token();
        let (id, hash) = token_key(&t).unwrap();
        assert_eq!(id.len(), 22);
        assert_eq!(hash.len(), 32);
        assert!(token_key("short").is_none());
        assert!(token_key(&format!("{}!", &t[..42])).is_none());
    }

    #[tokio::test]
    async fn a_trusted_token_counts_only_for_its_user_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Default::default(), dir.path()).unwrap();
        let place = Place {
            browser: "Firefox (Linux)".into(),
            address: "192.0.2.1".into(),
        };
        let (token, id) = trust(&store, "alice", &place, 1_000, 5_000).await.unwrap();
        assert_eq!(
            check(&store, "alice", &token, 2_000).await.unwrap(),
            Some(id.clone())
        );
        assert_eq!(check(&store, "bob", &token, 2_000).await.unwrap(), None);
        // One bit flipped in the last character.
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(check(&store, "alice", &flipped, 2_000).await.unwrap(), None);
        assert_eq!(check(&store, "alice", &token, 5_000).await.unwrap(), None);
        let listed = trusted(&store, "alice", 2_500).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_used_ms, 2_000);
        assert!(forget(&store, "alice", &id).await.unwrap());
        assert_eq!(check(&store, "alice", &token, 2_000).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_environment_is_unfamiliar_when_browser_and_network_are_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Default::default(), dir.path()).unwrap();
        let home: IpAddr = "198.51.100.7".parse().unwrap();
        let device = new_token();
        assert_eq!(
            familiarity(&store, "alice", None, home).await.unwrap(),
            Familiarity::FirstSignIn
        );
        remember_environment(&store, "alice", &device, home, &Place::default(), 1)
            .await
            .unwrap();
        let elsewhere: IpAddr = "203.0.113.9".parse().unwrap();
        let same_net: IpAddr = "198.51.100.200".parse().unwrap();
        let fam = |d: Option<&str>, ip| {
            let store = store.clone();
            let d = d.map(str::to_owned);
            async move {
                familiarity(&store, "alice", d.as_deref(), ip)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(fam(None, same_net).await, Familiarity::Known);
        assert_eq!(fam(Some(&device), elsewhere).await, Familiarity::Known);
        assert_eq!(fam(None, elsewhere).await, Familiarity::Unfamiliar);
        assert_eq!(
            fam(Some(&new_token()), elsewhere).await,
            Familiarity::Unfamiliar
        );
        assert_eq!(
            familiarity(&store, "bob", Some(&device), home)
                .await
                .unwrap(),
            Familiarity::FirstSignIn
        );
    }
}
