//! One suite of store tests, run against every backend: the embedded SQLite database, and
//! PostgreSQL when one is reachable (`STEPGATE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; each test gets a database of its own). Outside
//! CI a missing PostgreSQL skips its half with a printed reason; with `CI=true` it fails.

mod common;

use std::sync::Arc;

use common::db;
use stepgate::store::*;

const ALICE: &str = "alice";

fn cred(user: &str, kind: &str, id: &str, secret: &[u8]) -> Credential {
    Credential {
        user: user.into(),
        kind: kind.into(),
        id: id.into(),
        secret: secret.to_vec(),
        counter: 0,
        created_ms: 1_000,
        used_ms: None,
        expires_ms: None,
        data: b"{}".to_vec(),
    }
}

fn session(user: &str, created: u64, seen: u64) -> SessionRecord {
    SessionRecord {
        user: user.into(),
        amr: "pwd,otp".into(),
        created_ms: created,
        auth_ms: created + 1,
        last_seen_ms: seen,
        deferred: false,
        persistent: false,
        needs_check: false,
        client: "192.0.2.1".into(),
        agent: "Firefox (Linux)".into(),
        trusted: String::new(),
    }
}

async fn sessions(store: Store) {
    let s = store.sessions();
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    s.put_session(&a, &session(ALICE, 100, 200)).await.unwrap();
    s.put_session(&b, &session(ALICE, 110, 210)).await.unwrap();
    s.put_session(&c, &session("bob", 120, 220)).await.unwrap();
    assert_eq!(s.session(&a).await.unwrap(), Some(session(ALICE, 100, 200)));
    assert_eq!(s.session(&[9u8; 32]).await.unwrap(), None);
    assert_eq!(s.count_sessions().await.unwrap(), 3);

    // Touching never moves the last use back.
    s.touch_sessions(&[(a, 500), (b, 50)]).await.unwrap();
    assert_eq!(s.session(&a).await.unwrap().unwrap().last_seen_ms, 500);
    assert_eq!(s.session(&b).await.unwrap().unwrap().last_seen_ms, 210);

    let mine: Vec<SessionKey> = s
        .sessions_of(ALICE)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(mine, vec![a, b], "oldest first");
    assert_eq!(
        s.delete_sessions_of(ALICE, Some(&a)).await.unwrap(),
        vec![b]
    );
    assert!(s.session(&a).await.unwrap().is_some());
    assert!(s.delete_session(&a).await.unwrap());
    assert!(!s.delete_session(&a).await.unwrap(), "already gone");

    // Expiry: created before 121 or seen before 100; a saved sign-in only by its own lifetime
    // (created before 90), however idle, and it keeps every field.
    s.put_session(&a, &session(ALICE, 300, 50)).await.unwrap();
    let saved = SessionRecord {
        persistent: true,
        needs_check: true,
        trusted: "tb-1".into(),
        ..session(ALICE, 95, 10)
    };
    s.put_session(&b, &saved).await.unwrap();
    assert_eq!(s.session(&b).await.unwrap(), Some(saved.clone()));
    let mut purged = s.purge_sessions(121, 100, 90).await.unwrap();
    purged.sort();
    assert_eq!(purged, vec![a, c]);
    assert_eq!(s.purge_sessions(121, 100, 96).await.unwrap(), vec![b]);
    assert_eq!(s.count_sessions().await.unwrap(), 0);
    assert!(s
        .delete_sessions_of("nobody", None)
        .await
        .unwrap()
        .is_empty());
}

async fn credentials(store: Store) {
    let c = store.credentials();
    let totp = cred(ALICE, "totp", "", b"sealed-1");
    assert!(c.write(vec![Write::InsertNew(totp.clone())]).await.unwrap());
    // A second first-time enrolment changes nothing at all, not even its other writes.
    let again = vec![
        Write::SetEmergencyEmail {
            user: ALICE.into(),
            email: Some("mallory@evil.test".into()),
            at_ms: 5,
        },
        Write::InsertNew(cred(ALICE, "totp", "", b"sealed-2")),
    ];
    assert!(!c.write(again).await.unwrap());
    assert_eq!(c.account(ALICE).await.unwrap(), AccountRecord::default());
    assert_eq!(
        c.credentials(ALICE, Some("totp")).await.unwrap(),
        vec![totp.clone()]
    );

    // Recovery codes: replaced as a set, each used once.
    let codes: Vec<Write> = ["b", "a", "c"]
        .iter()
        .map(|id| Write::Put(cred(ALICE, "recovery", id, id.as_bytes())))
        .collect();
    let mut batch = vec![Write::DeleteKinds {
        user: ALICE.into(),
        kinds: vec!["recovery".into()],
    }];
    batch.extend(codes);
    assert!(c.write(batch).await.unwrap());
    let ids: Vec<String> = c
        .credentials(ALICE, Some("recovery"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["a", "b", "c"], "ordered by id");
    assert_eq!(c.credentials(ALICE, None).await.unwrap().len(), 4);
    assert!(c.consume(ALICE, "recovery", "a", 10).await.unwrap());
    assert!(
        !c.consume(ALICE, "recovery", "a", 11).await.unwrap(),
        "single use"
    );
    assert!(!c.consume(ALICE, "recovery", "zz", 11).await.unwrap());
    let used = c.credentials(ALICE, Some("recovery")).await.unwrap();
    assert_eq!(used[0].used_ms, Some(10));

    // Expiring credentials cannot be consumed after their time.
    let mut token = cred("bob", "enrolment_token", "", b"h");
    token.expires_ms = Some(100);
    assert!(c.write(vec![Write::Put(token)]).await.unwrap());
    assert!(!c.consume("bob", "enrolment_token", "", 100).await.unwrap());
    assert!(c.consume("bob", "enrolment_token", "", 99).await.unwrap());

    // The counter only moves forward, and only for the secret it was read with.
    assert!(c
        .advance_counter(ALICE, "totp", "", b"sealed-1", 7)
        .await
        .unwrap());
    assert!(!c
        .advance_counter(ALICE, "totp", "", b"sealed-1", 7)
        .await
        .unwrap());
    assert!(!c
        .advance_counter(ALICE, "totp", "", b"sealed-1", 6)
        .await
        .unwrap());
    assert!(!c
        .advance_counter(ALICE, "totp", "", b"other", 8)
        .await
        .unwrap());
    assert_eq!(
        c.credentials(ALICE, Some("totp")).await.unwrap()[0].counter,
        7
    );

    // Replacing needs the credential to be there; otherwise nothing of the batch is written.
    let mut newer = cred(ALICE, "totp", "", b"sealed-3");
    newer.counter = 3;
    assert!(c
        .write(vec![Write::ReplaceExisting(newer.clone())])
        .await
        .unwrap());
    assert_eq!(
        c.credentials(ALICE, Some("totp")).await.unwrap(),
        vec![newer]
    );
    let absent = vec![
        Write::DeleteKinds {
            user: ALICE.into(),
            kinds: vec!["recovery".into()],
        },
        Write::ReplaceExisting(cred(ALICE, "passkey", "k1", b"x")),
    ];
    assert!(!c.write(absent).await.unwrap());
    assert_eq!(
        c.credentials(ALICE, Some("recovery")).await.unwrap().len(),
        3,
        "rolled back"
    );

    assert!(c.delete_credential(ALICE, "totp", "").await.unwrap());
    assert!(!c.delete_credential(ALICE, "totp", "").await.unwrap());
    assert!(c
        .write(vec![Write::DeleteKinds {
            user: ALICE.into(),
            kinds: vec!["recovery".into(), "totp".into()],
        }])
        .await
        .unwrap());
    assert!(c.credentials(ALICE, None).await.unwrap().is_empty());
    assert_eq!(
        c.credentials("bob", None).await.unwrap().len(),
        1,
        "other users untouched"
    );

    // Found by kind and ID, whoever holds them.
    let fp = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for user in ["carol", ALICE] {
        let w = Write::Put(cred(user, "certificate", fp, b"der"));
        assert!(c.write(vec![w]).await.unwrap());
    }
    let found = c.credentials_by_id("certificate", fp).await.unwrap();
    let holders: Vec<&str> = found.iter().map(|c| c.user.as_str()).collect();
    assert_eq!(holders, vec![ALICE, "carol"], "in user order");
    assert!(c
        .credentials_by_id("certificate", "0")
        .await
        .unwrap()
        .is_empty());
    assert!(c.credentials_by_id("totp", fp).await.unwrap().is_empty());
}

async fn accounts(store: Store) {
    let c = store.credentials();
    assert_eq!(c.account(ALICE).await.unwrap(), AccountRecord::default());
    assert_eq!(c.add_guide_skip(ALICE).await.unwrap(), 1);
    assert_eq!(c.add_guide_skip(ALICE).await.unwrap(), 2);
    let set = Write::SetEmergencyEmail {
        user: ALICE.into(),
        email: Some("a@b.test".into()),
        at_ms: 42,
    };
    assert!(c.write(vec![set]).await.unwrap());
    assert_eq!(
        c.account(ALICE).await.unwrap(),
        AccountRecord {
            emergency_email: Some("a@b.test".into()),
            emergency_verified_ms: Some(42),
            guide_skips: 2,
            ..AccountRecord::default()
        }
    );
    // A user-set password and the lock live beside the rest and leave it alone.
    let own = vec![
        Write::SetPassword {
            user: ALICE.into(),
            hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
            base: "file-fp".into(),
            at_ms: 50,
        },
        Write::SetLocked {
            user: ALICE.into(),
            at_ms: Some(60),
        },
    ];
    assert!(c.write(own).await.unwrap());
    let account = c.account(ALICE).await.unwrap();
    assert_eq!(account.password_base.as_deref(), Some("file-fp"));
    assert!(account.password_hash.is_some());
    assert_eq!(
        (
            account.password_changed_ms,
            account.locked_ms,
            account.guide_skips
        ),
        (Some(50), Some(60), 2)
    );
    let unlock = Write::SetLocked {
        user: ALICE.into(),
        at_ms: None,
    };
    assert!(c.write(vec![unlock]).await.unwrap());
    assert_eq!(c.account(ALICE).await.unwrap().locked_ms, None);
    assert!(c
        .write(vec![Write::DeleteOne {
            user: ALICE.into(),
            kind: "none".into(),
            id: "x".into(),
        }])
        .await
        .unwrap());
    let clear = vec![
        Write::SetEmergencyEmail {
            user: ALICE.into(),
            email: None,
            at_ms: 43,
        },
        Write::ClearGuideSkips { user: ALICE.into() },
    ];
    assert!(c.write(clear).await.unwrap());
    let after = c.account(ALICE).await.unwrap();
    assert_eq!(
        (after.emergency_email, after.guide_skips),
        (None, 0),
        "the contact and the count are cleared"
    );
}

fn challenge(data: &[u8], expires_ms: u64) -> Challenge {
    Challenge {
        user: ALICE.into(),
        kind: "setup".into(),
        data: data.to_vec(),
        expires_ms,
        version: 0,
    }
}

async fn challenges(store: Store) {
    let ch = store.challenges();
    assert_eq!(
        ch.put_challenge("setup:1", &challenge(b"a", 1_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ch.put_challenge("setup:1", &challenge(b"b", 1_000))
            .await
            .unwrap(),
        2
    );
    let got = ch.challenge("setup:1", 10).await.unwrap().unwrap();
    assert_eq!((got.data.as_slice(), got.version), (&b"b"[..], 2));
    assert!(!ch
        .replace_challenge("setup:1", 1, &challenge(b"x", 1_000))
        .await
        .unwrap());
    assert!(ch
        .replace_challenge("setup:1", 2, &challenge(b"c", 1_000))
        .await
        .unwrap());
    assert_eq!(
        ch.challenge("setup:1", 10).await.unwrap().unwrap().version,
        3
    );
    assert!(
        !ch.replace_challenge("nothing", 0, &challenge(b"x", 1_000))
            .await
            .unwrap(),
        "replace never creates"
    );
    assert_eq!(
        ch.challenge("setup:1", 1_000).await.unwrap(),
        None,
        "expired"
    );

    ch.put_challenge("sends:alice", &challenge(b"", 2_000))
        .await
        .unwrap();
    ch.put_challenge("sends:bob", &challenge(b"", 500))
        .await
        .unwrap();
    ch.put_challenge("setup:2", &challenge(b"", 2_000))
        .await
        .unwrap();
    assert_eq!(ch.count_challenges("sends:", 100).await.unwrap(), 2);
    assert_eq!(ch.count_challenges("sends:", 600).await.unwrap(), 1);
    assert_eq!(ch.count_challenges("setup:", 100).await.unwrap(), 2);
    assert_eq!(ch.purge_challenges(1_000).await.unwrap(), 2);
    ch.delete_challenge("setup:2").await.unwrap();
    assert_eq!(ch.challenge("setup:2", 0).await.unwrap(), None);
    assert_eq!(ch.count_challenges("", 0).await.unwrap(), 1);

    // Taking is single use, and an expired one is taken (gone) but not given.
    ch.put_challenge("link:1", &challenge(b"t", 2_000))
        .await
        .unwrap();
    assert_eq!(
        ch.take_challenge("link:1", 10)
            .await
            .unwrap()
            .map(|c| c.data),
        Some(b"t".to_vec())
    );
    assert_eq!(ch.take_challenge("link:1", 10).await.unwrap(), None);
    ch.put_challenge("link:2", &challenge(b"t", 2_000))
        .await
        .unwrap();
    assert_eq!(ch.take_challenge("link:2", 2_000).await.unwrap(), None);
    assert_eq!(ch.challenge("link:2", 0).await.unwrap(), None);

    // A user's challenges go together (the challenge helper's user is alice).
    ch.put_challenge("link:3", &challenge(b"", 2_000))
        .await
        .unwrap();
    assert!(ch.delete_challenges_of(ALICE).await.unwrap() >= 1);
    assert_eq!(ch.challenge("link:3", 0).await.unwrap(), None);
}

async fn bans(store: Store) {
    let b = store.bans();
    let ban = |scope: &str, key: &str, until_ms| BanRecord {
        scope: scope.into(),
        key: key.into(),
        until_ms,
        level: 1,
    };
    b.put_ban(&ban("pair", "alice\u{1f}192.0.2.1", 500))
        .await
        .unwrap();
    b.put_ban(&ban("address", "192.0.2.1", 100)).await.unwrap();
    let mut longer = ban("address", "192.0.2.1", 900);
    longer.level = 2;
    b.put_ban(&longer).await.unwrap();
    assert_eq!(
        b.active_bans(600).await.unwrap(),
        vec![longer.clone()],
        "the pair's ended; the address's was replaced"
    );
    assert!(b.delete_ban("address", "192.0.2.1").await.unwrap());
    assert!(!b.delete_ban("address", "192.0.2.1").await.unwrap());
    assert!(b.active_bans(0).await.unwrap().len() == 1);
    assert_eq!(b.purge_bans(500).await.unwrap(), 1);
    assert!(b.active_bans(0).await.unwrap().is_empty());
}

async fn audit(store: Store) {
    let a = store.audit();
    for (at, event) in [(1, "sign_in"), (3, "factor_added"), (2, "sign_in")] {
        a.append_audit(&AuditEvent {
            at_ms: at,
            user: ALICE.into(),
            event: event.into(),
            client: Some("192.0.2.1".into()),
            detail: String::new(),
        })
        .await
        .unwrap();
    }
    let events: Vec<u64> = a
        .audit_of(ALICE, 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(events, vec![3, 2], "newest first, at most the limit");
    assert!(a.audit_of("bob", 10).await.unwrap().is_empty());
    assert_eq!(a.purge_audit(3).await.unwrap(), 2);
    assert_eq!(a.audit_of(ALICE, 10).await.unwrap().len(), 1);
}

/// Many callers racing for one use: exactly one wins, whatever the backend.
async fn races(store: Store) {
    let c = store.credentials();
    assert!(c
        .write(vec![Write::Put(cred(ALICE, "recovery", "x", b"x"))])
        .await
        .unwrap());
    assert!(c
        .write(vec![Write::Put(cred(ALICE, "totp", "", b"s"))])
        .await
        .unwrap());
    store
        .challenges()
        .put_challenge("code", &challenge(b"", u64::MAX / 2))
        .await
        .unwrap();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let consumed = s
                .credentials()
                .consume(ALICE, "recovery", "x", 5)
                .await
                .unwrap();
            let advanced = s
                .credentials()
                .advance_counter(ALICE, "totp", "", b"s", 9)
                .await
                .unwrap();
            let replaced = s
                .challenges()
                .replace_challenge("code", 1, &challenge(b"used", u64::MAX / 2))
                .await
                .unwrap();
            (consumed, advanced, replaced)
        }));
    }
    let mut wins = (0, 0, 0);
    for t in tasks {
        let (a, b, c) = t.await.unwrap();
        wins.0 += usize::from(a);
        wins.1 += usize::from(b);
        wins.2 += usize::from(c);
    }
    assert_eq!(wins, (1, 1, 1));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::db::sqlite(dir.path());
                    super::$name(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::db::Postgres::create(stringify!($name)) else { return };
                    super::$name(db.store()).await;
                }
            )*
        }
    };
}

suite!(
    sessions,
    credentials,
    accounts,
    challenges,
    bans,
    audit,
    races
);

/// What only PostgreSQL does: several gateways on one database.
mod postgres_only {
    use std::path::Path;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use tokio::sync::broadcast::Receiver;
    use tokio::time::timeout;

    use super::{db, session, ALICE};
    use stepgate::store::*;

    /// Long enough for a loaded machine; every wait ends as soon as the event arrives.
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn next(events: &mut Receiver<SessionEvent>) -> SessionEvent {
        match timeout(PATIENCE, events.recv()).await {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => panic!("the session feed failed: {e}"),
            Err(_) => panic!("no session event within {PATIENCE:?}"),
        }
    }

    /// Waits until every key in `keys` was announced ended; resyncs are skipped.
    async fn await_ended(events: &mut Receiver<SessionEvent>, keys: &[SessionKey]) {
        let mut missing = keys.to_vec();
        while !missing.is_empty() {
            if let SessionEvent::Ended(key) = next(events).await {
                missing.retain(|k| *k != key);
            }
        }
    }

    /// Two gateways' stores on one database, and the second one's session feed (which ends
    /// with that store).
    type Gateways = (db::Postgres, Store, Store, Receiver<SessionEvent>);

    fn two_gateways(test: &str) -> Option<Gateways> {
        let db = db::Postgres::create(test)?;
        let (one, two) = (db.store(), db.store());
        let events = two.backend().session_events().expect("postgres has a feed");
        Some((db, one, two, events))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ending_sessions_reaches_the_other_gateway() {
        let Some((_db, one, _two, mut events)) =
            two_gateways("ending_sessions_reaches_the_other_gateway")
        else {
            return;
        };
        let s = one.sessions();
        let keys: Vec<SessionKey> = (1..=5u8).map(|i| [i; 32]).collect();
        for (i, key) in keys.iter().enumerate() {
            let user = if i < 3 { ALICE } else { "bob" };
            s.put_session(key, &session(user, 100, 200)).await.unwrap();
        }

        assert!(s.delete_session(&keys[0]).await.unwrap());
        await_ended(&mut events, &keys[..1]).await;
        assert_eq!(
            s.delete_sessions_of(ALICE, Some(&keys[1])).await.unwrap(),
            vec![keys[2]]
        );
        await_ended(&mut events, &keys[2..3]).await;
        let mut purged = s.purge_sessions(u64::MAX, 0, u64::MAX).await.unwrap();
        purged.sort();
        assert_eq!(purged, vec![keys[1], keys[3], keys[4]]);
        await_ended(&mut events, &purged).await;

        // Deleting nothing announces nothing: the next end announced is the next real one
        // (notifications arrive in commit order).
        assert!(!s.delete_session(&keys[0]).await.unwrap());
        let marker = [9u8; 32];
        s.put_session(&marker, &session(ALICE, 1, 2)).await.unwrap();
        assert!(s.delete_session(&marker).await.unwrap());
        let announced = loop {
            if let SessionEvent::Ended(key) = next(&mut events).await {
                break key;
            }
        };
        assert_eq!(announced, marker);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_listener_reconnects_and_says_resync() {
        let Some((db, one, _two, mut events)) =
            two_gateways("a_lost_listener_reconnects_and_says_resync")
        else {
            return;
        };
        let cut = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'stepgate-listener'",
        );
        assert_eq!(cut, 2, "one listener per store");
        while next(&mut events).await != SessionEvent::Resync {}

        let key = [7u8; 32];
        let s = one.sessions();
        s.put_session(&key, &session(ALICE, 1, 2)).await.unwrap();
        assert!(s.delete_session(&key).await.unwrap());
        await_ended(&mut events, &[key]).await;
    }

    #[test]
    fn gateways_starting_together_migrate_once() {
        let Some(db) = db::Postgres::create("gateways_starting_together_migrate_once") else {
            return;
        };
        let start = Arc::new(Barrier::new(3));
        let opening: Vec<_> = (0..3)
            .map(|_| {
                let (url, start) = (db.url.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    Store::open(&StoreConfig::Postgres { url }, Path::new(".")).map(|_| ())
                })
            })
            .collect();
        for t in opening {
            t.join().unwrap().unwrap();
        }
        assert_eq!(db.execute("SELECT version FROM stepgate_schema"), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let Some(db) = db::Postgres::create("a_newer_schema_is_refused") else {
            return;
        };
        drop(db.store());
        assert_eq!(db.execute("UPDATE stepgate_schema SET version = 99"), 1);
        let opened = Store::open(
            &StoreConfig::Postgres {
                url: db.url.clone(),
            },
            Path::new("."),
        );
        assert!(
            matches!(
                opened,
                Err(StoreError::TooNew {
                    found: 99,
                    known: 4
                })
            ),
            "{opened:?}"
        );
    }
}

#[test]
fn sqlite_has_no_feed_of_other_gateways() {
    let dir = tempfile::tempdir().unwrap();
    assert!(db::sqlite(dir.path()).backend().session_events().is_none());
}
