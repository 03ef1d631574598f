//! Limits on sending one-time codes (seed 002: "too many requests: blocked for 24 hours"), so
//! the gateway can be made neither to flood an inbox or a phone nor to run up an SMS bill.
//!
//! Every send counts against three keys: the user, the destination (a phone number or an email
//! address) and the client address (IPv4, or the IPv6 /64). Each key may have
//! [`SendLimits::per_window`](crate::factor::SendLimits) sends in a [`SendLimits::window`]; the request that goes over
//! blocks that key for [`SendLimits::block`] (24 hours by default). A blocked key refuses every
//! send, the blocked request included, before anything reaches a provider; the page says until
//! when. Counts and blocks are challenges in the store, so a restart keeps them and gateways
//! on one database share them. A send the provider refused is given back.

use std::net::IpAddr;
use std::time::Duration;

use super::progress;
use crate::auth::Auth;
use crate::store::StoreError;

pub use crate::factor::SendLimits;

const LOG: &str = "stepgate::sends";

/// The keys one send counts against.
fn keys(user: &str, to: &str, client: IpAddr) -> [String; 3] {
    let address = match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    };
    [
        format!("user:{user}"),
        format!("to:{}", to.to_lowercase()),
        format!("address:{address}"),
    ]
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A send that was counted: give it back with [`refund`] if the message did not go out.
#[must_use]
#[derive(Debug)]
pub struct Taken {
    keys: Vec<String>,
    user: String,
}

/// What counting one send found.
#[derive(Debug)]
pub(crate) enum Counted {
    Go(Taken),
    /// A key is blocked until then; `started`: this send started the block (tell the user once).
    Blocked {
        until_ms: u64,
        started: bool,
    },
}

/// Counts one send by `user` to `to` from `client`: `Ok(Ok(..))` to go ahead, `Ok(Err(until))`
/// when a key is blocked (until then), `Err` for a store fault.
pub async fn take(
    auth: &Auth,
    user: &str,
    to: &str,
    client: IpAddr,
) -> Result<Result<Taken, u64>, StoreError> {
    let limits = auth.two_factor.send_limits;
    Ok(
        match count(auth, limits, keys(user, to, client).into(), user, client).await? {
            Counted::Go(taken) => Ok(taken),
            Counted::Blocked { until_ms, .. } => Err(until_ms),
        },
    )
}

/// Counts one send against each of `keys` under `limits` (the approval requests of
/// `flow::approvals` count under limits of their own).
pub(crate) async fn count(
    auth: &Auth,
    limits: SendLimits,
    keys: Vec<String>,
    user: &str,
    client: IpAddr,
) -> Result<Counted, StoreError> {
    let now = auth.clock.now_ms();
    let mut blocked_until = None::<u64>;
    for key in &keys {
        if let Some(b) = progress::load::<u8>(&auth.store, &format!("sendblock:{key}"), now).await?
        {
            blocked_until = Some(blocked_until.unwrap_or(0).max(b.expires_ms));
        }
    }
    if let Some(until_ms) = blocked_until {
        tracing::info!(target: LOG, %user, client = %client, until_ms, "send refused: blocked");
        return Ok(Counted::Blocked {
            until_ms,
            started: false,
        });
    }
    for key in &keys {
        let count_key = format!("sendcount:{key}");
        let counted = progress::update(
            &auth.store,
            &count_key,
            user,
            "sendcount",
            now,
            |n: &mut u32| {
                *n += 1;
                (*n, true)
            },
        )
        .await?;
        let n = match counted {
            Some(n) => n,
            None => {
                let until = now.saturating_add(ms(limits.window));
                progress::save(&auth.store, &count_key, user, "sendcount", &1u32, until).await?;
                1
            }
        };
        if n > limits.per_window {
            let until = now.saturating_add(ms(limits.block));
            progress::save(
                &auth.store,
                &format!("sendblock:{key}"),
                user,
                "sendblock",
                &1u8,
                until,
            )
            .await?;
            tracing::warn!(target: LOG, %user, client = %client, scope = key.split(':').next().unwrap_or(""), until_ms = until, "too many sends: blocked");
            blocked_until = Some(blocked_until.unwrap_or(0).max(until));
        }
    }
    if let Some(until_ms) = blocked_until {
        return Ok(Counted::Blocked {
            until_ms,
            started: true,
        });
    }
    Ok(Counted::Go(Taken {
        keys,
        user: user.to_owned(),
    }))
}

/// Gives a send back (the provider did not take the message). Best effort.
pub async fn refund(auth: &Auth, taken: Taken) {
    let now = auth.clock.now_ms();
    for key in &taken.keys {
        let back = |n: &mut u32| {
            *n = n.saturating_sub(1);
            ((), true)
        };
        let count_key = format!("sendcount:{key}");
        if let Err(e) =
            progress::update(&auth.store, &count_key, &taken.user, "sendcount", now, back).await
        {
            tracing::error!(target: LOG, error = %e, "could not give a send back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn too_many_sends_block_for_a_day_per_user_destination_and_address() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, clock) = crate::flow::tests::auth(dir.path()).await;
        let home = ip("198.51.100.7");
        for _ in 0..5 {
            let t = take(&auth, "alice", "+821000000001", home).await.unwrap();
            assert!(t.is_ok());
        }
        let now = clock.now_ms();
        let until = take(&auth, "alice", "+821000000001", home)
            .await
            .unwrap()
            .expect_err("the sixth in the hour is blocked");
        assert_eq!(until, now + 24 * 3_600_000);
        // Blocked for the user whatever the destination and address...
        assert!(take(&auth, "alice", "a@example.test", ip("203.0.113.1"))
            .await
            .unwrap()
            .is_err());
        // ...for the destination whoever asks...
        assert!(take(&auth, "bob", "+821000000001", ip("203.0.113.2"))
            .await
            .unwrap()
            .is_err());
        // ...and for the address.
        assert!(take(&auth, "bob", "b@example.test", home)
            .await
            .unwrap()
            .is_err());
        assert!(take(&auth, "bob", "b@example.test", ip("203.0.113.3"))
            .await
            .unwrap()
            .is_ok());
        // The window passing does not lift a block; the day does.
        clock.advance(Duration::from_secs(2 * 3600));
        assert!(take(&auth, "alice", "a@example.test", ip("203.0.113.4"))
            .await
            .unwrap()
            .is_err());
        clock.advance(Duration::from_secs(22 * 3600));
        assert!(take(&auth, "alice", "a@example.test", ip("203.0.113.4"))
            .await
            .unwrap()
            .is_ok());
    }

    #[tokio::test]
    async fn a_send_the_provider_refused_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _clock) = crate::flow::tests::auth(dir.path()).await;
        let home = ip("198.51.100.7");
        for _ in 0..20 {
            let t = take(&auth, "alice", "+821000000001", home)
                .await
                .unwrap()
                .unwrap();
            refund(&auth, t).await;
        }
        assert!(take(&auth, "alice", "+821000000001", home)
            .await
            .unwrap()
            .is_ok());
    }
}
