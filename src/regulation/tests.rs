//! The failure limits on a manual clock: no sleeps, no wall-clock assertions.

use super::*;
use crate::clock::{Clock, ManualClock};
use std::sync::Arc;
use Verdict::Allowed;

const MIN: Duration = Duration::from_secs(60);
const DAYS_30: Duration = Duration::from_secs(30 * 24 * 3600);

fn regulator(cfg: RegulationConfig) -> (Regulator, Arc<ManualClock>) {
    let clock = ManualClock::new(1_700_000_000_000);
    (Regulator::new(cfg, clock.clone()), clock)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// 203.0.0.0 + i
fn v4(i: u32) -> IpAddr {
    IpAddr::from((0xCB00_0000 + i).to_be_bytes())
}

/// The ban that starts now and lasts `d`.
fn ban(d: Duration, clock: &ManualClock) -> Verdict {
    Verdict::Banned {
        until_ms: clock.now_ms() + millis(d),
    }
}

fn is_banned(v: Verdict) -> bool {
    matches!(v, Verdict::Banned { .. })
}

fn fail_until_banned(r: &Regulator, user: &str, addr: IpAddr) -> Verdict {
    (0..1000)
        .find_map(|_| r.record_failure(user, addr))
        .expect("a ban")
}

#[test]
fn bans_after_max_failures_refuses_even_the_right_secret_and_expires() {
    let (r, clock) = regulator(RegulationConfig::default());
    let a = v4(1);
    for _ in 0..4 {
        assert_eq!(r.record_failure("alice", a), None);
        assert_eq!(r.check("alice", a), Allowed);
    }
    let banned = ban(5 * MIN, &clock);
    assert_eq!(r.record_failure("alice", a), Some(banned));
    clock.advance(5 * MIN - Duration::from_millis(1));
    // The caller asks before it checks the secret, right or wrong: still banned.
    assert_eq!(r.check("alice", a), banned);
    // Failures during a ban are counted but do not lengthen it.
    assert_eq!(r.record_failure("alice", a), None);
    assert_eq!(r.check("alice", a), banned);
    assert_eq!(r.check("bob", a), Allowed);
    assert_eq!(r.check("alice", v4(2)), Allowed);
    clock.advance(Duration::from_millis(1));
    assert_eq!(r.check("alice", a), Allowed);
}

#[test]
fn repeated_bans_double_up_to_the_cap_and_a_success_or_quiet_resets_them() {
    let (r, clock) = regulator(RegulationConfig::default());
    for minutes in [5, 10, 20, 40, 60, 60] {
        let expected = ban(minutes * MIN, &clock);
        assert_eq!(fail_until_banned(&r, "alice", v4(1)), expected);
        clock.advance(minutes * MIN);
    }
    clock.advance(60 * MIN); // quiet for max_ban after the last ban ended
    assert_eq!(fail_until_banned(&r, "alice", v4(1)), ban(5 * MIN, &clock));
    clock.advance(5 * MIN);
    let _ = fail_until_banned(&r, "alice", v4(1)); // 10 min
    clock.advance(10 * MIN);
    r.record_success("alice", v4(1)); // clears the counter and the ban level
    assert!((0..4).all(|_| r.record_failure("alice", v4(1)).is_none()));
    assert_eq!(r.record_failure("alice", v4(1)), Some(ban(5 * MIN, &clock)));
}

#[test]
fn per_address_ban_covers_all_users_and_a_success_does_not_clear_it() {
    let (r, clock) = regulator(RegulationConfig::default());
    assert!((0..19).all(|i| r.record_failure(&format!("u{i}"), v4(7)).is_none()));
    r.record_success("mallory", v4(7));
    let banned = ban(5 * MIN, &clock);
    assert_eq!(r.record_failure("u19", v4(7)), Some(banned));
    assert_eq!(r.check("someone-else", v4(7)), banned);
    assert_eq!(r.check("someone-else", v4(8)), Allowed);
    // One IPv6 /64 is one address.
    for i in 0..20 {
        let _ = r.record_failure(&format!("v{i}"), ip(&format!("2001:db8:1:2::{i:x}")));
    }
    assert!(is_banned(r.check("x", ip("2001:db8:1:2:ffff::1"))));
    assert_eq!(r.check("x", ip("2001:db8:1:3::1")), Allowed);
}

#[test]
fn per_user_throttle_spares_known_addresses_only() {
    let (r, clock) = regulator(RegulationConfig::default());
    let home = ip("2001:db8:aa:bb::10");
    r.record_success("alice", home);
    clock.advance(MIN);
    let last = (0..100).map(|i| r.record_failure("alice", v4(i))).last();
    let banned = ban(5 * MIN, &clock);
    assert_eq!(last.flatten(), Some(banned)); // the 100th throttles new addresses
    assert_eq!(r.check("alice", v4(500)), banned);
    assert_eq!(r.check("bob", v4(500)), Allowed);
    // Home is spared across its /64, and a failure there does not report the throttle.
    assert_eq!(r.check("alice", home), Allowed);
    assert_eq!(r.check("alice", ip("2001:db8:aa:bb::beef")), Allowed);
    assert_eq!(r.record_failure("alice", home), None);
    // Known addresses expire after 30 days.
    clock.advance(DAYS_30);
    (0..100).for_each(|i| _ = r.record_failure("alice", v4(1000 + i)));
    assert!(is_banned(r.check("alice", home)));
    // Only the 16 most recent addresses are kept.
    (0..20).for_each(|i| r.record_success("carol", v4(i)));
    let now = clock.now_ms();
    assert_eq!(r.known.get("carol").map(|l| l.len()), Some(16));
    assert!(!r.is_known("carol", v4(3), now) && r.is_known("carol", v4(4), now));
    assert!(r.is_known("carol", addr_key(ip("::ffff:203.0.0.19")), now));
}

#[test]
fn cleanup_empties_the_tables_once_time_has_passed() {
    let (r, clock) = regulator(RegulationConfig::default());
    for i in 0..50 {
        let _ = fail_until_banned(&r, &format!("u{i}"), v4(i));
        r.record_success("carol", v4(i));
        assert!(r.allow_form_post(v4(i)));
    }
    let all = 4 * 50 + 1; // pairs, addresses, users, form posts; carol's known addresses
    assert_eq!(r.tracked_keys(), all);
    r.cleanup();
    assert_eq!(r.tracked_keys(), all, "nothing has expired yet");
    clock.advance(2 * 60 * MIN);
    r.cleanup();
    assert_eq!(r.tracked_keys(), 1, "only known addresses remain");
    clock.advance(DAYS_30);
    r.cleanup();
    assert_eq!(r.tracked_keys(), 0);
}

#[test]
fn form_posts_get_429_after_the_budget_and_refill_after_a_minute() {
    let (r, clock) = regulator(RegulationConfig::default());
    assert!((0..30).all(|_| r.allow_form_post(v4(1))));
    assert!(!r.allow_form_post(v4(1)));
    assert!(!r.allow_form_post(ip("::ffff:203.0.0.1")));
    assert!(r.allow_form_post(v4(2)));
    clock.advance(Duration::from_secs(2));
    assert!(r.allow_form_post(v4(1)), "one post refills every 2 s");
    assert!(!r.allow_form_post(v4(1)));
    clock.advance(MIN);
    assert!((0..30).all(|_| r.allow_form_post(v4(1))));
    assert!(!r.allow_form_post(v4(1)));
    let cfg = RegulationConfig {
        form_posts_per_minute: 0,
        ..Default::default()
    };
    assert!(!regulator(cfg).0.allow_form_post(v4(1)));
}

#[test]
fn full_tables_fail_closed_with_a_shared_budget() {
    let cfg = RegulationConfig {
        max_keys: 2,
        max_failures: 3,
        ..Default::default()
    };
    let (r, clock) = regulator(cfg);
    assert_eq!(r.record_failure("u1", v4(1)), None);
    assert_eq!(r.record_failure("u2", v4(2)), None);
    // Every table is full: new keys share one budget instead of being forgotten.
    assert_eq!(r.record_failure("u3", v4(3)), None);
    assert_eq!(r.record_failure("u4", v4(4)), None);
    r.record_success("u5", v4(5)); // does not clear the shared budget
    let banned = ban(5 * MIN, &clock);
    assert_eq!(r.record_failure("u5", v4(5)), Some(banned));
    assert_eq!(r.check("anyone", v4(9)), banned);
    assert_eq!(r.check("u1", v4(1)), Allowed); // tracked keys keep their own
                                               // Form posts from untracked addresses share one bucket of the same size.
    assert!(r.allow_form_post(v4(100)) && r.allow_form_post(v4(101)));
    assert!((0..30).all(|i| r.allow_form_post(v4(200 + i))));
    assert!(!r.allow_form_post(v4(300)));
    assert!(r.allow_form_post(v4(100))); // tracked addresses keep their own
    assert_eq!(r.tracked_keys(), 2 + 2 + 2 + 1 + 2);
    // Cleanup makes room once entries expire; new keys are tracked again.
    clock.advance(3 * 60 * MIN);
    r.cleanup();
    assert_eq!(r.check("anyone", v4(9)), Allowed);
    assert_eq!(r.record_failure("u6", v4(6)), None);
    assert_eq!(r.pairs.map.len(), 1);
}

#[test]
fn odd_input_and_config_do_not_panic() {
    let (d, z) = (Duration::MAX, Duration::ZERO);
    let (mut zero, mut huge) = (RegulationConfig::default(), RegulationConfig::default());
    (zero.window, zero.ban, zero.max_ban, zero.max_keys) = (z, z, z, 0);
    (
        zero.max_failures,
        zero.max_failures_per_address,
        zero.max_failures_per_user,
    ) = (0, 0, 0);
    zero.form_posts_per_minute = 0;
    (
        huge.window,
        huge.ban,
        huge.max_ban,
        huge.form_posts_per_minute,
    ) = (d, d, d, u32::MAX);
    let long = "é".repeat(10_000);
    for cfg in [zero, huge] {
        let (r, clock) = regulator(cfg);
        for now in [u64::MAX, 0, 1] {
            clock.set_ms(now);
            for user in ["", long.as_str(), "a\nb"] {
                let _ = (r.record_failure(user, ip("::")), r.check(user, ip("::1")));
                r.record_success(user, ip("255.255.255.255"));
            }
            let _ = r.allow_form_post(ip("::1"));
            r.cleanup();
        }
    }
    assert_eq!(user_key(&long).len(), MAX_USER_KEY_BYTES);
}

#[test]
fn entries_stay_small() {
    use std::mem::size_of;
    assert_eq!(size_of::<((Box<str>, IpAddr), Strikes)>(), 80); // per (user, address)
    assert_eq!(size_of::<(IpAddr, Strikes)>(), 64); // per address
    assert_eq!(size_of::<(Box<str>, Strikes)>(), 56); // per user
    assert_eq!(size_of::<(Box<str>, Vec<KnownAddr>)>(), 40); // + 32 per known address
    assert_eq!(size_of::<KnownAddr>(), 32);
    assert_eq!(size_of::<(IpAddr, InMemoryState)>(), 32); // form posts
}

#[test]
fn new_bans_go_to_the_ban_log_and_come_back_after_a_restart() {
    let cfg = RegulationConfig::default();
    let clock = ManualClock::new(1_700_000_000_000);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let r = Regulator::new(cfg.clone(), clock.clone()).with_ban_log(tx);
    let addr = ip("192.0.2.7");
    for _ in 0..5 {
        let _ = r.record_failure("alice", addr);
    }
    let Verdict::Banned { until_ms } = r.check("alice", addr) else {
        panic!("five failures ban the pair");
    };
    let kept: Vec<BanRecord> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].scope, "pair");
    assert_eq!(kept[0].until_ms, until_ms);
    assert_eq!(kept[0].level, 1);

    // A new regulator (a restarted gateway) with the kept bans: the same ban, still running.
    let after = Regulator::new(cfg, clock.clone());
    assert_eq!(after.restore(&kept), 1);
    assert_eq!(after.check("alice", addr), Verdict::Banned { until_ms });
    assert_eq!(after.check("bob", addr), Allowed, "only the pair");
    // Its back-off level came back too: the next ban is twice as long.
    clock.advance(Duration::from_millis(until_ms - clock.now_ms()));
    for _ in 0..5 {
        let _ = after.record_failure("alice", addr);
    }
    let Verdict::Banned { until_ms: second } = after.check("alice", addr) else {
        panic!("banned again");
    };
    assert_eq!(second - clock.now_ms(), 2 * cfg_ban_ms());
    // Unreadable or ended records are skipped.
    let odd = BanRecord {
        scope: "pair".into(),
        key: "no separator".into(),
        until_ms: u64::MAX,
        level: 1,
    };
    let ended = BanRecord {
        until_ms: 1,
        ..kept[0].clone()
    };
    assert_eq!(
        Regulator::new(RegulationConfig::default(), clock).restore(&[odd, ended]),
        0
    );
}

fn cfg_ban_ms() -> u64 {
    RegulationConfig::default().ban.as_millis() as u64
}

/// The record the ban log carries for a ban in force on (user, address).
fn pair_record(user: &str, addr: IpAddr, until_ms: u64) -> BanRecord {
    BanRecord {
        scope: "pair".into(),
        key: format!("{user}\u{1f}{addr}"),
        until_ms,
        level: 1,
    }
}

#[test]
fn a_ban_lifted_from_the_store_stops_applying_once_the_store_had_it() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let r = Regulator::new(RegulationConfig::default(), clock.clone()).with_ban_log(tx);
    let addr = ip("192.0.2.7");
    let banned = fail_until_banned(&r, "alice", addr);
    let written: Vec<BanRecord> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(written.len(), 1, "{written:?}");

    // Not yet written (still in the ban log): a read that misses it leaves it alone.
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &[]), 0);
    assert_eq!(r.check("alice", addr), banned);

    // Written while a read was under way: that read may have missed it, so it is kept...
    let read = r.store_read();
    r.ban_kept(&written[0]);
    assert_eq!(r.follow_store(read, &[]), 0);
    assert_eq!(r.check("alice", addr), banned);
    // ...while a read that began after the write and does not find it means it was lifted.
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &[]), 1);
    assert_eq!(r.check("alice", addr), Allowed);
    // The key starts afresh, as after a restart: the next ban is a first one again.
    assert_eq!(
        fail_until_banned(&r, "alice", addr),
        ban(5 * MIN, &clock),
        "level reset"
    );
}

#[test]
fn a_ban_the_store_still_holds_or_never_held_stays() {
    let clock = ManualClock::new(1_700_000_000_000);
    let r = Regulator::new(RegulationConfig::default(), clock.clone());
    let addr = ip("192.0.2.8");
    let banned = fail_until_banned(&r, "bob", addr);
    let Verdict::Banned { until_ms } = banned else {
        unreachable!()
    };
    let record = pair_record("bob", addr, until_ms);
    // A read that finds it confirms it, and the next read that misses it drops it.
    let read = r.store_read();
    assert_eq!(r.follow_store(read, std::slice::from_ref(&record)), 0);
    assert_eq!(r.check("bob", addr), banned);
    // Other keys' records and other scopes do not count for it.
    let others = [
        pair_record("bobby", addr, until_ms),
        BanRecord {
            scope: "user".into(),
            key: format!("bob\u{1f}{addr}"),
            ..record.clone()
        },
    ];
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &others), 1);
    assert_eq!(r.check("bob", addr), Allowed);

    // A ban whose write failed (never confirmed) is never taken for a lifted one.
    clock.advance(Duration::from_secs(1));
    let again = fail_until_banned(&r, "bob", addr);
    for _ in 0..3 {
        let read = r.store_read();
        assert_eq!(r.follow_store(read, &[]), 0);
    }
    assert_eq!(r.check("bob", addr), again);
    // A late confirmation of an earlier, shorter ban of the key does not mark the new one.
    r.ban_kept(&record);
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &[]), 0);
    assert_eq!(r.check("bob", addr), again);
}

#[test]
fn a_shorter_record_from_another_gateway_vanishing_is_not_a_lift() {
    let clock = ManualClock::new(1_700_000_000_000);
    let r = Regulator::new(RegulationConfig::default(), clock.clone());
    let addr = ip("192.0.2.9");
    let banned = fail_until_banned(&r, "carol", addr);
    let Verdict::Banned { until_ms } = banned else {
        unreachable!()
    };
    r.ban_kept(&pair_record("carol", addr, until_ms));
    // Another gateway replaced the record with its own, shorter ban; it ends before ours.
    let read = r.store_read();
    let shorter = pair_record("carol", addr, until_ms - 60_000);
    assert_eq!(r.follow_store(read, &[shorter]), 0);
    clock.advance(Duration::from_secs(4 * 60) + Duration::from_millis(1));
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &[]), 0, "it ended, nobody lifted it");
    assert_eq!(r.check("carol", addr), banned);
}

#[test]
fn restored_bans_of_every_scope_follow_the_store() {
    let clock = ManualClock::new(1_700_000_000_000);
    let r = Regulator::new(RegulationConfig::default(), clock.clone());
    let until_ms = clock.now_ms() + 60_000;
    let addr = ip("2001:db8:1:2::");
    let kept = [
        pair_record("dave", v4(1), until_ms),
        pair_record(&code_key("dave"), v4(2), until_ms),
        BanRecord {
            scope: "address".into(),
            key: addr.to_string(),
            until_ms,
            level: 2,
        },
        BanRecord {
            scope: "user".into(),
            key: code_key("erin"),
            until_ms,
            level: 1,
        },
    ];
    assert_eq!(r.restore(&kept), 4);
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &kept), 0);
    assert!(is_banned(r.check("dave", v4(1))));
    assert!(is_banned(r.check(&code_key("dave"), v4(2))));
    assert!(is_banned(r.check("anyone", ip("2001:db8:1:2::99"))));
    assert!(is_banned(r.check(&code_key("erin"), v4(9))));
    // The operator lifts the address ban and the code bans; the pair's stays.
    let read = r.store_read();
    assert_eq!(r.follow_store(read, &kept[..1]), 3);
    assert!(is_banned(r.check("dave", v4(1))));
    assert_eq!(r.check(&code_key("dave"), v4(2)), Allowed);
    assert_eq!(r.check("anyone", ip("2001:db8:1:2::99")), Allowed);
    assert_eq!(r.check(&code_key("erin"), v4(9)), Allowed);
}

#[test]
fn an_address_the_owner_refused_is_banned_for_every_user_at_once() {
    let (r, clock) = regulator(RegulationConfig::default());
    let a = v4(9);
    let until = r.ban_address(a);
    assert_eq!(
        until,
        clock.now_ms() + millis(5 * MIN),
        "the first ban's length"
    );
    assert_eq!(r.check("alice", a), ban(5 * MIN, &clock));
    assert_eq!(r.check("bob", a), ban(5 * MIN, &clock));
    assert_eq!(
        r.check("alice", v4(10)),
        Allowed,
        "other addresses are not touched"
    );
    // A second refusal during the ban keeps it as it is.
    clock.advance(MIN);
    assert_eq!(r.ban_address(a), until);
    clock.advance(4 * MIN);
    assert_eq!(r.check("alice", a), Allowed);
    // Refused again later: the back-off doubles it.
    let again = r.ban_address(a);
    assert_eq!(again, clock.now_ms() + millis(10 * MIN));
}

#[test]
fn attempts_in_flight_count_so_a_burst_checks_no_more_than_the_limit() {
    let (r, clock) = regulator(RegulationConfig::default());
    let a = v4(20);
    // Twelve attempts at once: five may be checked, the rest wait for them.
    let held: Vec<_> = (0..12).filter_map(|_| r.reserve("alice", a).ok()).collect();
    assert_eq!(held.len(), 5);
    assert!(matches!(r.reserve("alice", a), Err(until) if until > clock.now_ms()));
    // All five fail: the pair is banned, as five failures one after the other would ban it.
    let bans: Vec<_> = held.into_iter().map(|h| h.failed()).collect();
    assert!(bans.last().unwrap().is_some(), "the fifth failure bans");
    assert_eq!(
        r.reserve("alice", a).err(),
        Some(clock.now_ms() + millis(5 * MIN))
    );

    // An attempt given back (never checked) frees its place; a success clears the pair.
    let b = v4(21);
    let first = r.reserve("bob", b).unwrap();
    drop(r.reserve("bob", b).unwrap());
    let more: Vec<_> = (0..10).filter_map(|_| r.reserve("bob", b).ok()).collect();
    assert_eq!(more.len(), 4, "one in flight, four more");
    drop(more);
    first.succeeded();
    assert_eq!(r.check("bob", b), Allowed);
    let after: Vec<_> = (0..10).filter_map(|_| r.reserve("bob", b).ok()).collect();
    assert_eq!(after.len(), 5);
}

#[test]
fn in_flight_attempts_respect_the_address_limit_across_users() {
    let cfg = RegulationConfig {
        max_failures_per_address: 6,
        ..RegulationConfig::default()
    };
    let (r, _clock) = regulator(cfg);
    let a = v4(30);
    let held: Vec<_> = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]
        .iter()
        .filter_map(|u| r.reserve(u, a).ok())
        .collect();
    assert_eq!(
        held.len(),
        6,
        "the address allows six in flight over all users"
    );
}
