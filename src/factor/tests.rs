//! Tests of the `Factors` store (kept beside `factor.rs` rather than in it, to keep that file
//! well under the ~800-line limit of STYLE.md). Each test gets its own temporary data directory
//! and a manual clock: no sleeps, no wall-clock assertions.

use std::sync::Arc;

use rusqlite::Connection;

use super::totp::{self, Algorithm, STEP_SECS};
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::store::StoreConfig;

/// The verdicts of the authenticator app as these tests were first written against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TotpVerdict {
    Accepted,
    Replayed,
    Wrong,
    Malformed,
    NotEnrolled,
}

/// The verdicts of recovery codes as these tests were first written against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecoveryVerdict {
    Accepted { remaining: usize },
    Wrong,
}

impl Factors {
    async fn verify_totp(&self, user: &str, code: &str) -> Result<TotpVerdict, FactorError> {
        Ok(match self.app().verify(user, code).await? {
            Verdict::Accepted { .. } => TotpVerdict::Accepted,
            Verdict::Replayed => TotpVerdict::Replayed,
            Verdict::Wrong | Verdict::Expired | Verdict::Pending | Verdict::Denied => {
                TotpVerdict::Wrong
            }
            Verdict::Malformed => TotpVerdict::Malformed,
            Verdict::NotEnrolled => TotpVerdict::NotEnrolled,
        })
    }

    async fn use_recovery_code(
        &self,
        user: &str,
        code: &str,
    ) -> Result<RecoveryVerdict, FactorError> {
        Ok(match self.recovery().verify(user, code).await? {
            Verdict::Accepted {
                remaining: Some(remaining),
                ..
            } => RecoveryVerdict::Accepted { remaining },
            _ => RecoveryVerdict::Wrong,
        })
    }
}

/// 2023-11-14T22:13:20Z, in the middle of a 30 s step.
const T0_MS: u64 = 1_700_000_000_000;

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    factors: Factors,
}

/// `Factors` over its own SQLite store in `dir` (a second call: another process, as far as the
/// store knows).
fn open(dir: &std::path::Path, key: Option<&std::path::Path>, clock: Arc<ManualClock>) -> Factors {
    let store = Store::open(&StoreConfig::default(), dir).expect("store");
    Factors::open(store, dir, key, clock).expect("open")
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_MS);
    let factors = open(dir.path(), None, clock.clone());
    Fixture {
        dir,
        clock,
        factors,
    }
}

impl Fixture {
    /// A second `Factors` on the same data directory (another process, as far as it knows).
    fn second(&self) -> Factors {
        open(self.dir.path(), None, self.clock.clone())
    }

    fn code_now(&self, secret: &TotpSecret) -> String {
        let t = self.clock.now_secs();
        format!(
            "{:06}",
            totp::totp(secret.as_bytes(), t, 6, Algorithm::Sha1)
        )
    }

    fn step_now(&self) -> u64 {
        self.clock.now_secs() / STEP_SECS
    }

    fn next_step(&self) {
        self.clock.advance(Duration::from_secs(STEP_SECS));
    }

    /// Enrols `user` with a fresh secret, activated one step before now (as if the activation
    /// code was entered in the previous step).
    async fn enrol(&self, user: &str) -> TotpSecret {
        let secret = TotpSecret::generate();
        self.factors
            .activate_totp(user, &secret, self.step_now() - 1)
            .await
            .expect("activate");
        secret
    }
}

#[tokio::test]
async fn activate_then_verify_at_the_clocks_time() {
    let f = fixture();
    let secret = f.enrol("alice").await;
    assert!(f.factors.totp_enrolled("alice").await.expect("query"));
    let code = f.code_now(&secret);
    assert_eq!(
        f.factors.verify_totp("alice", &code).await.expect("verify"),
        TotpVerdict::Accepted
    );
}

#[tokio::test]
async fn activation_step_cannot_be_replayed_and_next_step_is_accepted() {
    let f = fixture();
    let secret = TotpSecret::generate();
    let code = f.code_now(&secret);
    let TotpCheck::Accepted { step } =
        totp::check(secret.as_bytes(), &code, f.clock.now_secs(), None)
    else {
        panic!("activation code refused");
    };
    f.factors
        .activate_totp("alice", &secret, step)
        .await
        .expect("activate");
    assert_eq!(
        f.factors.verify_totp("alice", &code).await.expect("verify"),
        TotpVerdict::Replayed
    );

    f.next_step();
    let next = f.code_now(&secret);
    assert_eq!(
        f.factors.verify_totp("alice", &next).await.expect("verify"),
        TotpVerdict::Accepted
    );
    assert_eq!(
        f.factors.verify_totp("alice", &next).await.expect("verify"),
        TotpVerdict::Replayed
    );
    // The old activation code is inside the drift window but before the last step.
    assert_eq!(
        f.factors.verify_totp("alice", &code).await.expect("verify"),
        TotpVerdict::Replayed
    );
}

#[tokio::test]
async fn replay_is_refused_and_an_earlier_step_after_a_later_one_too() {
    let f = fixture();
    let secret = f.enrol("alice").await;
    let earlier = f.code_now(&secret);
    f.next_step();
    let later = f.code_now(&secret);
    assert_eq!(
        f.factors
            .verify_totp("alice", &later)
            .await
            .expect("verify"),
        TotpVerdict::Accepted
    );
    assert_eq!(
        f.factors
            .verify_totp("alice", &later)
            .await
            .expect("verify"),
        TotpVerdict::Replayed
    );
    assert_eq!(
        f.factors
            .verify_totp("alice", &earlier)
            .await
            .expect("verify"),
        TotpVerdict::Replayed
    );
}

#[tokio::test]
async fn wrong_malformed_and_not_enrolled() {
    let f = fixture();
    let secret = f.enrol("alice").await;
    let code = f.code_now(&secret);
    // A code that matches none of the three steps in the window.
    let t = f.clock.now_secs();
    let window: Vec<u32> = [t - STEP_SECS, t, t + STEP_SECS]
        .iter()
        .map(|&at| totp::totp(secret.as_bytes(), at, 6, Algorithm::Sha1))
        .collect();
    let wrong = (0..4u32)
        .find(|c| !window.contains(c))
        .expect("a non-matching code");
    assert_eq!(
        f.factors
            .verify_totp("alice", &format!("{wrong:06}"))
            .await
            .expect("verify"),
        TotpVerdict::Wrong
    );
    assert_eq!(
        f.factors
            .verify_totp("alice", "12a456")
            .await
            .expect("verify"),
        TotpVerdict::Malformed
    );
    assert_eq!(
        f.factors.verify_totp("bob", &code).await.expect("verify"),
        TotpVerdict::NotEnrolled
    );
}

#[tokio::test]
async fn short_secrets_are_refused() {
    let f = fixture();
    let short = TotpSecret::from_bytes(vec![1; 10]);
    assert!(matches!(
        f.factors.activate_totp("alice", &short, 0).await,
        Err(FactorError::SecretTooShort { bits: 80 })
    ));
}

#[tokio::test]
async fn secret_is_not_stored_in_clear() {
    let f = fixture();
    let secret = f.enrol("alice").await;
    let conn = Connection::open(f.dir.path().join("stepgate.db")).expect("raw open");
    let blob: Vec<u8> = conn
        .query_row(
            "SELECT secret FROM credentials WHERE user = 'alice' AND kind = 'totp'",
            [],
            |r| r.get(0),
        )
        .expect("row");
    let raw = secret.as_bytes();
    assert!(!blob.windows(raw.len()).any(|w| w == raw));
    let b32 = secret.base32();
    assert!(!blob.windows(b32.len()).any(|w| w == b32.as_bytes()));
    // And the whole file does not contain it either (WAL included).
    for name in ["stepgate.db", "stepgate.db-wal"] {
        if let Ok(file) = std::fs::read(f.dir.path().join(name)) {
            assert!(!file.windows(raw.len()).any(|w| w == raw), "{name}");
        }
    }
}

#[tokio::test]
async fn another_key_cannot_read_the_secret() {
    let f = fixture();
    let secret = f.enrol("alice").await;
    let other_key = f.dir.path().join("other.key");
    let other = open(f.dir.path(), Some(&other_key), f.clock.clone());
    let code = f.code_now(&secret);
    match other.verify_totp("alice", &code).await {
        Err(FactorError::Undecryptable { user }) => assert_eq!(user, "alice"),
        other => panic!("expected an undecryptable error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_row_moved_to_another_user_does_not_decrypt() {
    let f = fixture();
    let secret = f.enrol("alice").await;
    f.enrol("mallory").await;
    let conn = Connection::open(f.dir.path().join("stepgate.db")).expect("raw open");
    conn.execute(
        "UPDATE credentials SET secret =
             (SELECT secret FROM credentials WHERE user = 'alice' AND kind = 'totp')
         WHERE user = 'mallory' AND kind = 'totp'",
        [],
    )
    .expect("copy row");
    let code = f.code_now(&secret);
    assert!(matches!(
        f.factors.verify_totp("mallory", &code).await,
        Err(FactorError::Undecryptable { .. })
    ));
}

#[tokio::test]
async fn remove_totp() {
    let f = fixture();
    f.enrol("alice").await;
    assert!(f.factors.enrolled("alice").await.expect("enrolled"));
    assert!(f.factors.remove_totp("alice").await.expect("remove"));
    assert!(!f.factors.remove_totp("alice").await.expect("remove again"));
    assert!(!f.factors.enrolled("alice").await.expect("enrolled"));
}

#[tokio::test]
async fn recovery_codes_each_work_once() {
    let f = fixture();
    let codes = f.factors.new_recovery_codes("alice").await.expect("codes");
    assert_eq!(codes.len(), recovery::COUNT);
    assert_eq!(
        f.factors.recovery_remaining("alice").await.expect("count"),
        10
    );
    for (i, code) in codes.iter().enumerate() {
        // Typed in lower case with spaces: still the same code.
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(
            f.factors
                .use_recovery_code("alice", &typed)
                .await
                .expect("use"),
            RecoveryVerdict::Accepted {
                remaining: recovery::COUNT - i - 1
            }
        );
        assert_eq!(
            f.factors
                .use_recovery_code("alice", code)
                .await
                .expect("reuse"),
            RecoveryVerdict::Wrong
        );
    }
    assert_eq!(
        f.factors.recovery_remaining("alice").await.expect("count"),
        0
    );
}

#[tokio::test]
async fn recovery_wrong_code_other_user_and_regeneration() {
    let f = fixture();
    let old = f.factors.new_recovery_codes("alice").await.expect("codes");
    for bad in ["", "ABCDE-FGHJK", "not a code at all", "0000000000"] {
        assert_eq!(
            f.factors
                .use_recovery_code("alice", bad)
                .await
                .expect("use"),
            RecoveryVerdict::Wrong,
            "{bad}"
        );
    }
    // Alice's code is not Bob's.
    f.factors.new_recovery_codes("bob").await.expect("codes");
    assert_eq!(
        f.factors
            .use_recovery_code("bob", &old[0])
            .await
            .expect("use"),
        RecoveryVerdict::Wrong
    );
    assert_eq!(
        f.factors
            .use_recovery_code("alice", &old[0])
            .await
            .expect("use"),
        RecoveryVerdict::Accepted { remaining: 9 }
    );
    let new = f
        .factors
        .new_recovery_codes("alice")
        .await
        .expect("regenerate");
    assert_eq!(
        f.factors.recovery_remaining("alice").await.expect("count"),
        10
    );
    assert_eq!(
        f.factors
            .use_recovery_code("alice", &old[1])
            .await
            .expect("use"),
        RecoveryVerdict::Wrong
    );
    assert_eq!(
        f.factors
            .use_recovery_code("alice", &new[1])
            .await
            .expect("use"),
        RecoveryVerdict::Accepted { remaining: 9 }
    );
    assert_eq!(
        f.factors.recovery_remaining("bob").await.expect("count"),
        10
    );
}

#[tokio::test]
async fn recovery_codes_are_stored_hashed() {
    let f = fixture();
    let codes = f.factors.new_recovery_codes("alice").await.expect("codes");
    let file = std::fs::read(f.dir.path().join("stepgate.db-wal"))
        .or_else(|_| std::fs::read(f.dir.path().join("stepgate.db")))
        .expect("db bytes");
    for code in &codes {
        let plain = recovery::normalize(code).expect("normal");
        assert!(!file.windows(plain.len()).any(|w| w == plain.as_bytes()));
    }
}

#[tokio::test]
async fn enrolled_cache_sees_another_process_after_ten_seconds() {
    let f = fixture();
    let other = f.second();
    assert!(!f.factors.enrolled("alice").await.expect("enrolled"));
    other
        .activate_totp("alice", &TotpSecret::generate(), 0)
        .await
        .expect("activate elsewhere");
    f.clock.advance(Duration::from_millis(9_999));
    assert!(!f.factors.enrolled("alice").await.expect("still cached"));
    f.clock.advance(Duration::from_millis(1));
    assert!(f.factors.enrolled("alice").await.expect("refreshed"));

    other.reset("alice", true).await.expect("reset elsewhere");
    assert!(f.factors.enrolled("alice").await.expect("still cached"));
    f.clock.advance(ENROLLED_CACHE_TTL);
    assert!(!f.factors.enrolled("alice").await.expect("refreshed"));
}

#[tokio::test]
async fn enrolled_cache_sees_local_changes_at_once() {
    let f = fixture();
    assert!(!f.factors.enrolled("alice").await.expect("enrolled"));
    let secret = TotpSecret::generate();
    f.factors
        .activate_totp("alice", &secret, 0)
        .await
        .expect("activate");
    assert!(f.factors.enrolled("alice").await.expect("enrolled"));
    f.factors.remove_totp("alice").await.expect("remove");
    assert!(!f.factors.enrolled("alice").await.expect("enrolled"));
}

#[tokio::test]
async fn enrolled_cache_treats_a_backwards_clock_as_stale() {
    let f = fixture();
    assert!(!f.factors.enrolled("alice").await.expect("enrolled"));
    f.second()
        .activate_totp("alice", &TotpSecret::generate(), 0)
        .await
        .expect("activate elsewhere");
    f.clock.set_ms(T0_MS - 1);
    assert!(f.factors.enrolled("alice").await.expect("re-read"));
}

/// Races two verifications of one fresh code, `rounds` times (a new step each round), through
/// `a` and `b`; exactly one of each pair must be accepted.
async fn race(fx: &Fixture, a: Arc<Factors>, b: Arc<Factors>, secret: &TotpSecret, rounds: usize) {
    for round in 0..rounds {
        fx.next_step();
        let code = fx.code_now(secret);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let handles: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|factors| {
                let barrier = barrier.clone();
                let code = code.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    factors.verify_totp("alice", &code).await.expect("verify")
                })
            })
            .collect();
        let mut verdicts: Vec<TotpVerdict> = Vec::new();
        for h in handles {
            verdicts.push(h.await.expect("task"));
        }
        let accepted = verdicts
            .iter()
            .filter(|v| **v == TotpVerdict::Accepted)
            .count();
        let replayed = verdicts
            .iter()
            .filter(|v| **v == TotpVerdict::Replayed)
            .count();
        assert_eq!((accepted, replayed), (1, 1), "round {round}: {verdicts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_accept_a_code_once_in_one_process() {
    let fx = fixture();
    let secret = fx.enrol("alice").await;
    let shared = Arc::new(fx.second());
    race(&fx, shared.clone(), shared, &secret, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_accept_a_code_once_across_two_connections() {
    let fx = fixture();
    let secret = fx.enrol("alice").await;
    race(
        &fx,
        Arc::new(fx.second()),
        Arc::new(fx.second()),
        &secret,
        20,
    )
    .await;
}

#[tokio::test]
async fn a_store_that_is_gone_is_an_error_not_a_panic() {
    let f = fixture();
    // The raw database changed under the store (a table dropped by hand): every call is an
    // `Err` the caller fails closed on.
    let conn = Connection::open(f.dir.path().join("stepgate.db")).expect("raw open");
    conn.execute_batch("DROP TABLE credentials").expect("drop");
    assert!(matches!(
        f.factors.totp_enrolled("alice").await,
        Err(FactorError::Store(_))
    ));
}

#[tokio::test]
async fn debug_shows_no_secrets() {
    let f = fixture();
    f.enrol("alice").await;
    f.factors.enrolled("alice").await.expect("enrolled");
    let shown = format!("{:?}", f.factors);
    assert!(shown.starts_with("Factors {"), "{shown}");
    assert!(!shown.contains("alice"), "{shown}");
}

#[tokio::test]
async fn error_messages_are_lowercase() {
    let errors = [
        FactorError::Store(StoreError::Closed).to_string(),
        FactorError::SecretTooShort { bits: 80 }.to_string(),
        FactorError::Undecryptable { user: "a".into() }.to_string(),
        FactorError::InvalidEmail("x").to_string(),
        FactorError::Qr("x".into()).to_string(),
    ];
    for e in errors {
        let first = e.chars().next().expect("non-empty");
        assert!(first.is_lowercase(), "{e}");
    }
}

#[tokio::test]
async fn open_creates_the_default_key_file_and_reopens_with_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let key = f.dir.path().join("keys").join("factor.key");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = f.enrol("alice").await;
    drop(f.factors);
    let reopened = open(f.dir.path(), None, f.clock.clone());
    let code = format!(
        "{:06}",
        totp::totp(secret.as_bytes(), f.clock.now_secs(), 6, Algorithm::Sha1)
    );
    assert_eq!(
        reopened.verify_totp("alice", &code).await.expect("verify"),
        TotpVerdict::Accepted
    );
}

#[tokio::test]
async fn first_time_enrolment_never_replaces_a_factor() {
    let f = fixture();
    let first = TotpSecret::generate();
    let codes = f
        .factors
        .enrol_totp("alice", &first, f.step_now() - 1, "alice@example.test")
        .await
        .expect("enrol")
        .expect("nothing there yet");
    assert_eq!(codes.len(), 10);
    assert_eq!(
        f.factors.emergency_email("alice").await.unwrap().as_deref(),
        Some("alice@example.test")
    );
    // A second first-time setup (another session, or an attacker's) changes nothing.
    let second = TotpSecret::generate();
    assert_eq!(
        f.factors
            .enrol_totp("alice", &second, f.step_now() - 1, "mallory@example.test")
            .await
            .expect("enrol"),
        None
    );
    assert_eq!(
        f.factors.emergency_email("alice").await.unwrap().as_deref(),
        Some("alice@example.test"),
        "the contact is untouched"
    );
    assert_eq!(f.factors.recovery_remaining("alice").await.unwrap(), 10);
    assert!(matches!(
        f.factors
            .use_recovery_code("alice", &codes[0])
            .await
            .unwrap(),
        RecoveryVerdict::Accepted { .. }
    ));
    assert_eq!(
        f.factors
            .verify_totp("alice", &f.code_now(&first))
            .await
            .unwrap(),
        TotpVerdict::Accepted,
        "the first secret still works"
    );
}

#[tokio::test]
async fn replacing_swaps_the_secret_and_keeps_recovery_codes() {
    let f = fixture();
    assert!(!f
        .factors
        .replace_totp("alice", &TotpSecret::generate(), 0)
        .await
        .unwrap());
    assert!(
        !f.factors.totp_enrolled("alice").await.unwrap(),
        "nothing to replace"
    );
    let old = f.enrol("alice").await;
    let codes = f.factors.new_recovery_codes("alice").await.unwrap();
    let new = TotpSecret::generate();
    assert!(f
        .factors
        .replace_totp("alice", &new, f.step_now())
        .await
        .unwrap());
    f.next_step();
    assert_eq!(
        f.factors
            .verify_totp("alice", &f.code_now(&old))
            .await
            .unwrap(),
        TotpVerdict::Wrong,
        "the old app's codes stop working"
    );
    assert_eq!(
        f.factors
            .verify_totp("alice", &f.code_now(&new))
            .await
            .unwrap(),
        TotpVerdict::Accepted
    );
    assert!(matches!(
        f.factors
            .use_recovery_code("alice", &codes[0])
            .await
            .unwrap(),
        RecoveryVerdict::Accepted { remaining: 9 }
    ));
}

mod account;

#[tokio::test]
async fn turning_it_off_keeps_the_later_count_an_operator_reset_clears_it() {
    let f = fixture();
    f.enrol("alice").await;
    assert_eq!(f.factors.record_skip("alice").await.unwrap(), 1);
    assert_eq!(f.factors.record_skip("alice").await.unwrap(), 2);
    f.factors.turn_off("alice").await.unwrap();
    assert!(!f.factors.has_second_factor("alice").await.unwrap());
    assert_eq!(
        f.factors.record_skip("alice").await.unwrap(),
        3,
        "turning two-step off does not give the grace back"
    );
    f.factors.reset("alice", true).await.unwrap();
    assert_eq!(
        f.factors.record_skip("alice").await.unwrap(),
        1,
        "an operator reset does"
    );
}
