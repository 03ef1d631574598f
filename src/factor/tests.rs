//! Tests of the `Factors` store (kept beside `factor.rs` rather than in it, to keep that file
//! well under the ~800-line limit of STYLE.md). Each test gets its own temporary data directory
//! and a manual clock: no sleeps, no wall-clock assertions.

use std::sync::{Arc, Barrier};

use super::totp::{self, Algorithm, STEP_SECS};
use super::*;
use crate::clock::{Clock, ManualClock};

/// 2023-11-14T22:13:20Z, in the middle of a 30 s step.
const T0_MS: u64 = 1_700_000_000_000;

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    factors: Factors,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_MS);
    let factors = Factors::open(dir.path(), None, clock.clone()).expect("open");
    Fixture {
        dir,
        clock,
        factors,
    }
}

impl Fixture {
    /// A second `Factors` on the same data directory (another process, as far as it knows).
    fn second(&self) -> Factors {
        Factors::open(self.dir.path(), None, self.clock.clone()).expect("open second")
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
    fn enrol(&self, user: &str) -> TotpSecret {
        let secret = TotpSecret::generate();
        self.factors
            .activate_totp(user, &secret, self.step_now() - 1)
            .expect("activate");
        secret
    }
}

#[test]
fn activate_then_verify_at_the_clocks_time() {
    let f = fixture();
    let secret = f.enrol("alice");
    assert!(f.factors.totp_enrolled("alice").expect("query"));
    let code = f.code_now(&secret);
    assert_eq!(
        f.factors.verify_totp("alice", &code).expect("verify"),
        TotpVerdict::Accepted
    );
}

#[test]
fn activation_step_cannot_be_replayed_and_next_step_is_accepted() {
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
        .expect("activate");
    assert_eq!(
        f.factors.verify_totp("alice", &code).expect("verify"),
        TotpVerdict::Replayed
    );

    f.next_step();
    let next = f.code_now(&secret);
    assert_eq!(
        f.factors.verify_totp("alice", &next).expect("verify"),
        TotpVerdict::Accepted
    );
    assert_eq!(
        f.factors.verify_totp("alice", &next).expect("verify"),
        TotpVerdict::Replayed
    );
    // The old activation code is inside the drift window but before the last step.
    assert_eq!(
        f.factors.verify_totp("alice", &code).expect("verify"),
        TotpVerdict::Replayed
    );
}

#[test]
fn replay_is_refused_and_an_earlier_step_after_a_later_one_too() {
    let f = fixture();
    let secret = f.enrol("alice");
    let earlier = f.code_now(&secret);
    f.next_step();
    let later = f.code_now(&secret);
    assert_eq!(
        f.factors.verify_totp("alice", &later).expect("verify"),
        TotpVerdict::Accepted
    );
    assert_eq!(
        f.factors.verify_totp("alice", &later).expect("verify"),
        TotpVerdict::Replayed
    );
    assert_eq!(
        f.factors.verify_totp("alice", &earlier).expect("verify"),
        TotpVerdict::Replayed
    );
}

#[test]
fn wrong_malformed_and_not_enrolled() {
    let f = fixture();
    let secret = f.enrol("alice");
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
            .expect("verify"),
        TotpVerdict::Wrong
    );
    assert_eq!(
        f.factors.verify_totp("alice", "12a456").expect("verify"),
        TotpVerdict::Malformed
    );
    assert_eq!(
        f.factors.verify_totp("bob", &code).expect("verify"),
        TotpVerdict::NotEnrolled
    );
}

#[test]
fn short_secrets_are_refused() {
    let f = fixture();
    let short = TotpSecret::from_bytes(vec![1; 10]);
    assert!(matches!(
        f.factors.activate_totp("alice", &short, 0),
        Err(FactorError::SecretTooShort { bits: 80 })
    ));
}

#[test]
fn secret_is_not_stored_in_clear() {
    let f = fixture();
    let secret = f.enrol("alice");
    let conn = Connection::open(f.dir.path().join("stepgate.db")).expect("raw open");
    let blob: Vec<u8> = conn
        .query_row(
            "SELECT secret FROM factor_totp WHERE user = 'alice'",
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

#[test]
fn another_key_cannot_read_the_secret() {
    let f = fixture();
    let secret = f.enrol("alice");
    let other_key = f.dir.path().join("other.key");
    let other = Factors::open(f.dir.path(), Some(&other_key), f.clock.clone()).expect("open");
    let code = f.code_now(&secret);
    match other.verify_totp("alice", &code) {
        Err(FactorError::Undecryptable { user }) => assert_eq!(user, "alice"),
        other => panic!("expected an undecryptable error, got {other:?}"),
    }
}

#[test]
fn a_row_moved_to_another_user_does_not_decrypt() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.enrol("mallory");
    let conn = Connection::open(f.dir.path().join("stepgate.db")).expect("raw open");
    conn.execute(
        "UPDATE factor_totp SET secret = (SELECT secret FROM factor_totp WHERE user = 'alice')
         WHERE user = 'mallory'",
        [],
    )
    .expect("copy row");
    let code = f.code_now(&secret);
    assert!(matches!(
        f.factors.verify_totp("mallory", &code),
        Err(FactorError::Undecryptable { .. })
    ));
}

#[test]
fn remove_totp() {
    let f = fixture();
    f.enrol("alice");
    assert!(f.factors.enrolled("alice").expect("enrolled"));
    assert!(f.factors.remove_totp("alice").expect("remove"));
    assert!(!f.factors.remove_totp("alice").expect("remove again"));
    assert!(!f.factors.enrolled("alice").expect("enrolled"));
}

#[test]
fn recovery_codes_each_work_once() {
    let f = fixture();
    let codes = f.factors.new_recovery_codes("alice").expect("codes");
    assert_eq!(codes.len(), recovery::COUNT);
    assert_eq!(f.factors.recovery_remaining("alice").expect("count"), 10);
    for (i, code) in codes.iter().enumerate() {
        // Typed in lower case with spaces: still the same code.
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(
            f.factors.use_recovery_code("alice", &typed).expect("use"),
            RecoveryVerdict::Accepted {
                remaining: recovery::COUNT - i - 1
            }
        );
        assert_eq!(
            f.factors.use_recovery_code("alice", code).expect("reuse"),
            RecoveryVerdict::Wrong
        );
    }
    assert_eq!(f.factors.recovery_remaining("alice").expect("count"), 0);
}

#[test]
fn recovery_wrong_code_other_user_and_regeneration() {
    let f = fixture();
    let old = f.factors.new_recovery_codes("alice").expect("codes");
    for bad in ["", "ABCDE-FGHJK", "not a code at all", "0000000000"] {
        assert_eq!(
            f.factors.use_recovery_code("alice", bad).expect("use"),
            RecoveryVerdict::Wrong,
            "{bad}"
        );
    }
    // Alice's code is not Bob's.
    f.factors.new_recovery_codes("bob").expect("codes");
    assert_eq!(
        f.factors.use_recovery_code("bob", &old[0]).expect("use"),
        RecoveryVerdict::Wrong
    );
    assert_eq!(
        f.factors.use_recovery_code("alice", &old[0]).expect("use"),
        RecoveryVerdict::Accepted { remaining: 9 }
    );
    let new = f.factors.new_recovery_codes("alice").expect("regenerate");
    assert_eq!(f.factors.recovery_remaining("alice").expect("count"), 10);
    assert_eq!(
        f.factors.use_recovery_code("alice", &old[1]).expect("use"),
        RecoveryVerdict::Wrong
    );
    assert_eq!(
        f.factors.use_recovery_code("alice", &new[1]).expect("use"),
        RecoveryVerdict::Accepted { remaining: 9 }
    );
    assert_eq!(f.factors.recovery_remaining("bob").expect("count"), 10);
}

#[test]
fn recovery_codes_are_stored_hashed() {
    let f = fixture();
    let codes = f.factors.new_recovery_codes("alice").expect("codes");
    let file = std::fs::read(f.dir.path().join("stepgate.db-wal"))
        .or_else(|_| std::fs::read(f.dir.path().join("stepgate.db")))
        .expect("db bytes");
    for code in &codes {
        let plain = recovery::normalize(code).expect("normal");
        assert!(!file.windows(plain.len()).any(|w| w == plain.as_bytes()));
    }
}

#[test]
fn enrolment_token_works_once() {
    let f = fixture();
    let token = f
        .factors
        .issue_enrolment_token("alice", Duration::from_secs(3600))
        .expect("issue");
    assert_eq!(token.len(), 24, "{token}");
    assert_eq!(token.matches('-').count(), 4, "{token}");
    assert!(!f
        .factors
        .redeem_enrolment_token("bob", &token)
        .expect("other user"));
    assert!(f
        .factors
        .redeem_enrolment_token("alice", &token.to_lowercase())
        .expect("redeem"));
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &token)
        .expect("again"));
}

#[test]
fn enrolment_token_expires_and_is_replaced() {
    let f = fixture();
    let ttl = Duration::from_secs(600);
    let first = f
        .factors
        .issue_enrolment_token("alice", ttl)
        .expect("issue");
    let second = f
        .factors
        .issue_enrolment_token("alice", ttl)
        .expect("issue");
    assert_ne!(first, second);
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &first)
        .expect("replaced"));
    f.clock.advance(ttl);
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &second)
        .expect("expired"));

    let third = f
        .factors
        .issue_enrolment_token("alice", ttl)
        .expect("issue");
    f.clock.advance(ttl - Duration::from_millis(1));
    for bad in ["", "nonsense", "AAAA-AAAA-AAAA-AAAA-AAA0"] {
        assert!(!f.factors.redeem_enrolment_token("alice", bad).expect("bad"));
    }
    assert!(f
        .factors
        .redeem_enrolment_token("alice", &third)
        .expect("just in time"));
}

#[test]
fn skips_are_counted_per_user() {
    let f = fixture();
    assert_eq!(f.factors.skips_used("alice").expect("count"), 0);
    assert_eq!(f.factors.record_skip("alice").expect("skip"), 1);
    assert_eq!(f.factors.record_skip("alice").expect("skip"), 2);
    assert_eq!(f.factors.record_skip("bob").expect("skip"), 1);
    assert_eq!(f.factors.skips_used("alice").expect("count"), 2);
}

#[test]
fn emergency_email() {
    let f = fixture();
    assert_eq!(f.factors.emergency_email("alice").expect("get"), None);
    f.factors
        .set_emergency_email("alice", "alice@example.org")
        .expect("set");
    f.factors
        .set_emergency_email("alice", "a.lice@example.net")
        .expect("replace");
    assert_eq!(
        f.factors.emergency_email("alice").expect("get").as_deref(),
        Some("a.lice@example.net")
    );
    for bad in [
        "",
        "alice",
        "@example.org",
        "alice@",
        "a@b@c",
        "a lice@x.org",
        "a@x.org\r\nBcc: y",
    ] {
        assert!(
            matches!(
                f.factors.set_emergency_email("alice", bad),
                Err(FactorError::InvalidEmail(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn reset_removes_everything_but_the_contact_when_asked() {
    let f = fixture();
    f.enrol("alice");
    f.factors.new_recovery_codes("alice").expect("codes");
    f.factors
        .issue_enrolment_token("alice", Duration::from_secs(60))
        .expect("token");
    f.factors.record_skip("alice").expect("skip");
    f.factors
        .set_emergency_email("alice", "alice@example.org")
        .expect("email");
    f.enrol("bob");
    assert!(f.factors.enrolled("alice").expect("enrolled"));

    f.factors.reset("alice", true).expect("reset");
    assert!(
        !f.factors.enrolled("alice").expect("enrolled"),
        "cache invalidated at once"
    );
    assert_eq!(f.factors.recovery_remaining("alice").expect("count"), 0);
    assert_eq!(f.factors.skips_used("alice").expect("skips"), 0);
    let summary = f.factors.summary("alice").expect("summary");
    assert_eq!(
        summary,
        FactorSummary {
            totp: None,
            recovery_remaining: 0,
            emergency_email: Some("alice@example.org".into()),
        }
    );
    assert!(f.factors.enrolled("bob").expect("bob untouched"));

    f.factors.reset("alice", false).expect("reset");
    assert_eq!(f.factors.emergency_email("alice").expect("email"), None);
}

#[test]
fn reset_consumes_the_enrolment_token() {
    let f = fixture();
    let token = f
        .factors
        .issue_enrolment_token("alice", Duration::from_secs(60))
        .expect("token");
    f.factors.reset("alice", true).expect("reset");
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &token)
        .expect("redeem"));
}

#[test]
fn summary_for_the_account_page() {
    let f = fixture();
    f.enrol("alice");
    f.factors.new_recovery_codes("alice").expect("codes");
    let summary = f.factors.summary("alice").expect("summary");
    assert_eq!(summary.totp, Some(T0_MS));
    assert_eq!(summary.recovery_remaining, 10);
    assert_eq!(summary.emergency_email, None);
}

#[test]
fn enrolled_cache_sees_another_process_after_ten_seconds() {
    let f = fixture();
    let other = f.second();
    assert!(!f.factors.enrolled("alice").expect("enrolled"));
    other
        .activate_totp("alice", &TotpSecret::generate(), 0)
        .expect("activate elsewhere");
    f.clock.advance(Duration::from_millis(9_999));
    assert!(!f.factors.enrolled("alice").expect("still cached"));
    f.clock.advance(Duration::from_millis(1));
    assert!(f.factors.enrolled("alice").expect("refreshed"));

    other.reset("alice", true).expect("reset elsewhere");
    assert!(f.factors.enrolled("alice").expect("still cached"));
    f.clock.advance(ENROLLED_CACHE_TTL);
    assert!(!f.factors.enrolled("alice").expect("refreshed"));
}

#[test]
fn enrolled_cache_sees_local_changes_at_once() {
    let f = fixture();
    assert!(!f.factors.enrolled("alice").expect("enrolled"));
    let secret = TotpSecret::generate();
    f.factors
        .activate_totp("alice", &secret, 0)
        .expect("activate");
    assert!(f.factors.enrolled("alice").expect("enrolled"));
    f.factors.remove_totp("alice").expect("remove");
    assert!(!f.factors.enrolled("alice").expect("enrolled"));
}

#[test]
fn enrolled_cache_treats_a_backwards_clock_as_stale() {
    let f = fixture();
    assert!(!f.factors.enrolled("alice").expect("enrolled"));
    f.second()
        .activate_totp("alice", &TotpSecret::generate(), 0)
        .expect("activate elsewhere");
    f.clock.set_ms(T0_MS - 1);
    assert!(f.factors.enrolled("alice").expect("re-read"));
}

/// Races two verifications of one fresh code, `rounds` times (a new step each round), through
/// `a` and `b`; exactly one of each pair must be accepted.
fn race(fx: &Fixture, a: Arc<Factors>, b: Arc<Factors>, secret: &TotpSecret, rounds: usize) {
    for round in 0..rounds {
        fx.next_step();
        let code = fx.code_now(secret);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|factors| {
                let barrier = barrier.clone();
                let code = code.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    factors.verify_totp("alice", &code).expect("verify")
                })
            })
            .collect();
        let verdicts: Vec<TotpVerdict> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
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

#[test]
fn concurrent_verifications_accept_a_code_once_in_one_process() {
    let fx = fixture();
    let secret = fx.enrol("alice");
    let shared = Arc::new(fx.second());
    race(&fx, shared.clone(), shared, &secret, 20);
}

#[test]
fn concurrent_verifications_accept_a_code_once_across_two_connections() {
    let fx = fixture();
    let secret = fx.enrol("alice");
    race(
        &fx,
        Arc::new(fx.second()),
        Arc::new(fx.second()),
        &secret,
        20,
    );
}

#[test]
fn a_poisoned_lock_is_an_error_not_a_panic() {
    let f = fixture();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = f.factors.conn.lock();
        panic!("poison the connection lock (expected in this test)");
    }));
    assert!(matches!(
        f.factors.totp_enrolled("alice"),
        Err(FactorError::Poisoned)
    ));
}

#[test]
fn debug_shows_no_secrets() {
    let f = fixture();
    f.enrol("alice");
    f.factors.enrolled("alice").expect("enrolled");
    let shown = format!("{:?}", f.factors);
    assert!(shown.starts_with("Factors {"), "{shown}");
    assert!(!shown.contains("alice"), "{shown}");
}

#[test]
fn error_messages_are_lowercase() {
    let errors = [
        FactorError::Poisoned.to_string(),
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

#[test]
fn open_creates_the_default_key_file_and_reopens_with_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let key = f.dir.path().join("keys").join("factor.key");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = f.enrol("alice");
    drop(f.factors);
    let reopened = Factors::open(f.dir.path(), None, f.clock.clone()).expect("reopen");
    let code = format!(
        "{:06}",
        totp::totp(secret.as_bytes(), f.clock.now_secs(), 6, Algorithm::Sha1)
    );
    assert_eq!(
        reopened.verify_totp("alice", &code).expect("verify"),
        TotpVerdict::Accepted
    );
}

#[test]
fn first_time_enrolment_never_replaces_a_factor() {
    let f = fixture();
    let first = TotpSecret::generate();
    let codes = f
        .factors
        .enrol_totp("alice", &first, f.step_now() - 1, "alice@example.test")
        .expect("enrol")
        .expect("nothing there yet");
    assert_eq!(codes.len(), 10);
    assert_eq!(
        f.factors.emergency_email("alice").unwrap().as_deref(),
        Some("alice@example.test")
    );
    // A second first-time setup (another session, or an attacker's) changes nothing.
    let second = TotpSecret::generate();
    assert_eq!(
        f.factors
            .enrol_totp("alice", &second, f.step_now() - 1, "mallory@example.test")
            .expect("enrol"),
        None
    );
    assert_eq!(
        f.factors.emergency_email("alice").unwrap().as_deref(),
        Some("alice@example.test"),
        "the contact is untouched"
    );
    assert_eq!(f.factors.recovery_remaining("alice").unwrap(), 10);
    assert!(matches!(
        f.factors.use_recovery_code("alice", &codes[0]).unwrap(),
        RecoveryVerdict::Accepted { .. }
    ));
    assert_eq!(
        f.factors.verify_totp("alice", &f.code_now(&first)).unwrap(),
        TotpVerdict::Accepted,
        "the first secret still works"
    );
}

#[test]
fn replacing_swaps_the_secret_and_keeps_recovery_codes() {
    let f = fixture();
    assert!(!f
        .factors
        .replace_totp("alice", &TotpSecret::generate(), 0)
        .unwrap());
    assert!(
        !f.factors.totp_enrolled("alice").unwrap(),
        "nothing to replace"
    );
    let old = f.enrol("alice");
    let codes = f.factors.new_recovery_codes("alice").unwrap();
    let new = TotpSecret::generate();
    assert!(f.factors.replace_totp("alice", &new, f.step_now()).unwrap());
    f.next_step();
    assert_eq!(
        f.factors.verify_totp("alice", &f.code_now(&old)).unwrap(),
        TotpVerdict::Wrong,
        "the old app's codes stop working"
    );
    assert_eq!(
        f.factors.verify_totp("alice", &f.code_now(&new)).unwrap(),
        TotpVerdict::Accepted
    );
    assert!(matches!(
        f.factors.use_recovery_code("alice", &codes[0]).unwrap(),
        RecoveryVerdict::Accepted { remaining: 9 }
    ));
}
