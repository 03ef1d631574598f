//! Sessions over a real SQLite store in a temporary directory, on a manual clock.

use super::*;
use crate::amr::Method;
use crate::clock::{Clock, ManualClock};
use std::sync::Mutex;

const ONE: Amr = Amr::PASSWORD;

fn two() -> Amr {
    Amr::PASSWORD.with(Method::Otp)
}

/// Records what the sessions layer told it.
#[derive(Default)]
struct Ended(Mutex<Vec<SessionKey>>);

impl SessionEnded for Ended {
    fn session_ended(&self, key: &SessionKey) {
        self.0.lock().unwrap().push(*key);
    }
    fn all_sessions_ended(&self) {
        self.0.lock().unwrap().push([0xff; 32]);
    }
}

async fn sessions(dir: &std::path::Path, clock: Arc<ManualClock>) -> (Sessions, Arc<Ended>) {
    let store = Store::open(&crate::store::StoreConfig::default(), dir).unwrap();
    let ended = Arc::new(Ended::default());
    let cfg = SessionConfig {
        max_per_user: 2,
        ..SessionConfig::default()
    };
    let s = Sessions::open(
        store,
        cfg,
        clock,
        vec![ended.clone() as Arc<dyn SessionEnded>],
    )
    .await
    .unwrap()
    .with_id_key(&KEY);
    (s, ended)
}

/// The key every gateway of these tests tags IDs under (a real one derives it from the factor
/// key, the same on every start).
const KEY: [u8; 32] = [1; 32];

#[tokio::test]
async fn ids_are_random_and_only_issued_ones_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = sessions(dir.path(), ManualClock::now()).await;
    let (a, _) = s.create("alice", ONE, None).await.unwrap();
    let (b, _) = s.create("alice", ONE, None).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), ID_LEN);
    assert!(s.lookup(&a).await.unwrap().is_some());
    // Well-formed but made up: its tag does not verify.
    let mut forged = a.clone().into_bytes();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(s.lookup(&forged).await.unwrap().is_none());
    assert!(s.lookup("short").await.unwrap().is_none());
}

#[tokio::test]
async fn gateways_with_one_key_know_each_others_ids_and_others_never_ask_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let (a, _) = sessions(dir.path(), clock.clone()).await;
    let (id, _) = a.create("alice", ONE, None).await.unwrap();
    // Another gateway on the same store and key: a cache miss, read from the store.
    let (b, _) = sessions(dir.path(), clock.clone()).await;
    assert!(b.lookup(&id).await.unwrap().is_some());
    // A gateway under another key refuses it before the store, though the store holds it.
    let (c, _) = sessions(dir.path(), clock).await;
    let c = c.with_id_key(&[9; 32]);
    assert!(c.lookup(&id).await.unwrap().is_none());
    assert!(
        a.lookup(&id).await.unwrap().is_some(),
        "and it is not ended"
    );
}

#[tokio::test]
async fn idle_and_absolute_expiry_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let (s, _) = sessions(dir.path(), clock.clone()).await;
    let (id, _) = s.create("bob", ONE, None).await.unwrap();
    clock.advance(Duration::from_secs(29 * 60));
    assert!(
        s.lookup(&id).await.unwrap().is_some(),
        "used within the idle timeout"
    );
    clock.advance(Duration::from_secs(31 * 60));
    assert!(
        s.lookup(&id).await.unwrap().is_none(),
        "idle for 31 minutes"
    );
    let (id, _) = s.create("bob", ONE, None).await.unwrap();
    for _ in 0..25 {
        clock.advance(Duration::from_secs(29 * 60));
        if s.lookup(&id).await.unwrap().is_none() {
            break;
        }
    }
    assert!(
        s.lookup(&id).await.unwrap().is_none(),
        "past the absolute lifetime"
    );
}

#[tokio::test]
async fn step_up_rotates_the_id_and_caps_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ended) = sessions(dir.path(), ManualClock::now()).await;
    let (old, first) = s.create("carol", ONE, None).await.unwrap();
    let old_key = key_of(&old).unwrap();
    let (new, sess) = s.create("carol", two(), Some(&old_key)).await.unwrap();
    assert_ne!(old, new);
    assert!(s.lookup(&old).await.unwrap().is_none());
    assert!(
        ended.0.lock().unwrap().contains(&old_key),
        "followers hear of it"
    );
    assert_eq!(sess.level(), AuthLevel::TwoFactor);
    assert_eq!(
        sess.created_ms, first.created_ms,
        "the sign-in's lifetime carries over"
    );
    s.create("carol", ONE, None).await.unwrap();
    s.create("carol", ONE, None).await.unwrap();
    assert!(
        s.lookup(&new).await.unwrap().is_none(),
        "max_per_user = 2 ended the oldest"
    );
    assert_eq!(
        s.store.sessions().sessions_of("carol").await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn ending_a_users_sessions_keeps_the_one_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ended) = sessions(dir.path(), ManualClock::now()).await;
    let (f, _) = s.create("frank", ONE, None).await.unwrap();
    let keep = key_of(&f).unwrap();
    let (g, _) = s.create("frank", ONE, None).await.unwrap();
    let (e, _) = s.create("erin", ONE, None).await.unwrap();
    assert_eq!(s.end_others("frank", &keep).await.unwrap(), 1);
    assert!(s.lookup(&f).await.unwrap().is_some());
    assert!(s.lookup(&g).await.unwrap().is_none());
    assert!(ended.0.lock().unwrap().contains(&key_of(&g).unwrap()));
    assert_eq!(s.end_user("erin").await.unwrap(), 1);
    assert!(s.lookup(&e).await.unwrap().is_none());
    assert_eq!(s.cached(), 1);
}

#[tokio::test]
async fn sessions_survive_a_reopen_and_a_second_gateway_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let id = {
        let (s, _) = sessions(dir.path(), clock.clone()).await;
        s.create("dave", two(), None).await.unwrap().0
    };
    let (s, _) = sessions(dir.path(), clock.clone()).await;
    let (_, sess) = s.lookup(&id).await.unwrap().expect("restored");
    assert_eq!(sess.user, "dave");
    assert_eq!(sess.amr, two());
    // Ended elsewhere (another process on the same file): seen once the cached copy is stale.
    let (other, _) = sessions(dir.path(), clock.clone()).await;
    other.end(&key_of(&id).unwrap()).await.unwrap();
    assert!(s.lookup(&id).await.unwrap().is_some(), "still cached");
    clock.advance(REVALIDATE);
    assert!(
        s.lookup(&id).await.unwrap().is_none(),
        "read again, and gone"
    );
}

#[tokio::test]
async fn events_from_other_gateways_evict() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ended) = sessions(dir.path(), ManualClock::now()).await;
    let (id, _) = s.create("gina", ONE, None).await.unwrap();
    let key = key_of(&id).unwrap();
    s.apply(SessionEvent::Ended(key));
    assert_eq!(s.cached(), 0);
    assert!(ended.0.lock().unwrap().contains(&key));
    s.apply(SessionEvent::Resync);
    assert!(ended.0.lock().unwrap().contains(&[0xff; 32]));
    assert!(s.lookup(&id).await.unwrap().is_some(), "still in the store");
}

#[tokio::test]
async fn housekeeping_purges_expired_sessions_and_flushes_activity() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let (s, _) = sessions(dir.path(), clock.clone()).await;
    let (old, _) = s.create("hana", ONE, None).await.unwrap();
    clock.advance(Duration::from_secs(20 * 60));
    let (young, _) = s.create("hana", ONE, None).await.unwrap();
    assert!(s.lookup(&young).await.unwrap().is_some());
    clock.advance(Duration::from_secs(15 * 60));
    s.housekeeping().await.unwrap();
    let store = s.store.sessions();
    assert!(
        store
            .session(&key_of(&old).unwrap())
            .await
            .unwrap()
            .is_none(),
        "idle 35 min"
    );
    let kept = store
        .session(&key_of(&young).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.last_seen_ms,
        clock.now_ms() - 15 * 60 * 1000,
        "activity written"
    );
}

#[tokio::test]
async fn a_proof_is_fresh_for_five_minutes_and_only_at_two_factors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let (s, _) = sessions(dir.path(), clock.clone()).await;
    let (_, one) = s.create("gina", ONE, None).await.unwrap();
    assert!(
        !one.has_fresh_proof(clock.now_ms()),
        "a password is not a second factor"
    );
    let (_, two) = s.create("gina", two(), None).await.unwrap();
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
