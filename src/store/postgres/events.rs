//! The session-event feed: one connection of its own that `LISTEN`s on `stepgate_sessions` and
//! turns each notification (a hex session key, sent by whichever gateway ended the session) into
//! [`SessionEvent::Ended`] on a broadcast channel.
//!
//! `NOTIFY` is at most once: a notification sent while this connection is down is lost. So the
//! feed reconnects with back-off when the connection drops (or stops answering the heartbeat),
//! and after every connect sends [`SessionEvent::Resync`], telling every cache to forget what it
//! holds. A receiver that falls more than [`super::EVENTS`] events behind gets `Lagged` from
//! the channel and must treat it as a resync too.

use std::future::poll_fn;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use super::super::{session_key, Result, SessionEvent};

/// The notification channel; `super::end_sessions!` sends on it.
macro_rules! channel {
    () => {
        "stepgate_sessions"
    };
}
pub(super) use channel;

/// How `pg_stat_activity` names the listening connection.
pub(super) const APPLICATION_NAME: &str = "stepgate-listener";

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(30);
/// A connection that lasted this long starts its successor's back-off from the beginning.
const STABLE: Duration = Duration::from_secs(60);
/// How often an idle listener checks that the server still answers, and how long it waits.
const HEARTBEAT: Duration = Duration::from_secs(30);
const HEARTBEAT_ANSWER: Duration = Duration::from_secs(5);

type Events = broadcast::Sender<SessionEvent>;

/// A listening connection: the client (dropping it closes the connection) and the task that
/// drives the connection and forwards its notifications.
pub(super) struct Listening {
    client: Client,
    driver: JoinHandle<()>,
}

/// Connects, starts forwarding notifications, `LISTEN`s, then announces a resync (whatever
/// ended while no connection listened is unknown). Runs on the store's runtime.
pub(super) async fn subscribe(config: &Config, events: &Events) -> Result<Listening> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let forward = events.clone();
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => match decode(n.payload()) {
                    Some(key) => {
                        // No receiver is not a fault: no gateway caches sessions yet.
                        let _ = forward.send(SessionEvent::Ended(key));
                    }
                    None => tracing::warn!(
                        target: "stepgate::store",
                        length = n.payload().len(),
                        "ignored a session notification that is not a hex session key"
                    ),
                },
                Some(Ok(_)) => {} // notices
                Some(Err(e)) => {
                    tracing::warn!(target: "stepgate::store", error = %super::chain(&e), "the session listener's connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    if let Err(e) = client.batch_execute(concat!("LISTEN ", channel!())).await {
        driver.abort();
        return Err(e.into());
    }
    let _ = events.send(SessionEvent::Resync);
    Ok(Listening { client, driver })
}

/// Keeps a listener connected for as long as the store's runtime runs, starting with `first`.
pub(super) async fn run(config: Config, events: Events, first: Listening) {
    let mut current = Some(first);
    let mut retry = FIRST_RETRY;
    loop {
        if let Some(listening) = current.take() {
            let since = tokio::time::Instant::now();
            watch(listening).await;
            if since.elapsed() >= STABLE {
                retry = FIRST_RETRY;
            }
            tracing::warn!(target: "stepgate::store", retry_in = ?retry, "the session listener lost its connection; reconnecting");
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
        match subscribe(&config, &events).await {
            Ok(listening) => {
                tracing::info!(target: "stepgate::store", "the session listener is connected again");
                current = Some(listening);
            }
            Err(e) => {
                tracing::warn!(target: "stepgate::store", error = %e, retry_in = ?retry, "the session listener cannot reconnect");
            }
        }
    }
}

/// Returns when the connection ends or stops answering.
async fn watch(mut listening: Listening) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = &mut listening.driver => return,
            _ = beat.tick() => {
                let answer = tokio::time::timeout(
                    HEARTBEAT_ANSWER,
                    listening.client.simple_query("SELECT 1"),
                );
                if !matches!(answer.await, Ok(Ok(_))) {
                    listening.driver.abort();
                    return;
                }
            }
        }
    }
}

fn decode(payload: &str) -> Option<super::super::SessionKey> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(payload.as_bytes())
        .ok()?;
    session_key(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_hex_session_keys() {
        let key = [0xabu8; 32];
        assert_eq!(decode(&"ab".repeat(32)), Some(key));
        assert_eq!(decode(&"AB".repeat(32)), Some(key));
        assert_eq!(decode("abab"), None, "too short");
        assert_eq!(decode(&"zz".repeat(32)), None);
    }
}
