//! Failed-attempt limits and bans, held in memory.
//!
//! The portal asks [`Regulator::check`] before it verifies a password or a second-factor code,
//! then reports the outcome with [`Regulator::record_failure`] or [`Regulator::record_success`].
//! While a ban applies, even the right secret gets the same generic failure as a wrong one. Three
//! counters can each cause a ban:
//!
//! - **Per user and address**: `max_failures` (default 5) within `window` (default 10 minutes)
//!   bans the pair. A success from the pair clears its counter and its ban history.
//! - **Per address**, over all user names: `max_failures_per_address` (default 20) within
//!   `window` bans the address for every user. This stops one password being sprayed across
//!   many accounts. A success does not clear it, so one valid account cannot reset the budget.
//! - **Per user**, over all addresses: `max_failures_per_user` (default 100) within one hour
//!   throttles the account (ASVS 4.0.3 2.2.1, NIST SP 800-63B §5.2.2). The throttle applies only
//!   at addresses that are not *known* for the user: addresses the user signed in from in the
//!   last 30 days, up to the 16 most recent.
//!
//! A ban first lasts `ban` (default 5 minutes) and doubles on each repeated ban of the same key,
//! up to `max_ban` (default 1 hour). The ban level resets after the key has gone `max_ban` with no
//! failure once its last ban ended. Counters keep running through a ban. If failures continue
//! after it ends, a ban twice as long soon follows, which keeps the per-user rate near 100 an
//! hour. Failures reported during a ban count but do not lengthen it. `check` returns the longest
//! ban that applies.
//!
//! **A stranger cannot keep the owner locked out.** A stranger's failures land on the
//! stranger's own (user, address) pair and the stranger's own address. The per-user throttle,
//! which anyone anywhere can trip, does not apply at the owner's known addresses. So the owner
//! can still sign in from their usual places. A stranger can delay the owner only at an address
//! where the owner has not signed in for 30 days, or at a shared address (the same NAT or IPv6
//! /64). Each such ban is capped at `max_ban`. Meanwhile, distributed guessing from new addresses
//! stays near 100 failures an hour per account.
//!
//! **Counting** uses a sliding-window counter: the count in the current fixed window, plus the
//! previous window's count weighted by how much of that window the sliding window still covers.
//! It approximates a sliding log of failure times in 16 bytes per key. It is exact for evenly
//! spread failures and otherwise off by less than the previous window's count.
//!
//! **Keys.** The caller passes the address from the socket or trusted proxies. IPv4 is keyed
//! exactly and IPv6 by its /64, since one subscriber's low 64 bits rotate freely. IPv4-mapped
//! IPv6 counts as IPv4. User names arrive normalised, and only their first 256 bytes are used.
//! Longer names that share those bytes share counters (the stricter outcome). They never clear a
//! counter and never make an address known.
//!
//! **Form posts.** [`Regulator::allow_form_post`] allows each address a burst of
//! `form_posts_per_minute` portal posts, refilled evenly over a minute, through a governor GCRA
//! keyed limiter. A rate of 0 refuses every post.
//!
//! **Bounded memory, failing closed.** Each table (pairs, addresses, users, known addresses, form
//! posts) tracks about `max_keys` keys; concurrent inserts may overshoot by a few. When a table
//! is full, a new key is not tracked on its own. Its failures and posts go to one overflow budget
//! shared by all such keys, with the same limits, and `check` applies that budget to every key
//! the table does not hold. So a flood of new keys is throttled together rather than forgotten.
//! The price is that new users and addresses may be refused while an attacker keeps a table full.
//! A success never clears the overflow budget, and a full known-address table learns nothing
//! new. [`Regulator::cleanup`] runs periodically. It drops entries that can no longer change a
//! decision, governor's stale keys included, and frees their room.
//!
//! **Time** comes only from the injected [`crate::clock::Clock`]; governor reads it through an
//! adapter. If the clock steps back, elapsed times saturate at zero, so limits last longer.
//! Nothing is persisted: a restart forgets counters, bans and known addresses.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::clock::SharedClock;
use counted::CountedMap;

mod counted;

const USER_WINDOW_MS: u64 = 60 * 60 * 1000; // ASVS 2.2.1 says "per hour"
const KNOWN_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;
const MAX_KNOWN_PER_USER: usize = 16;
const MAX_USER_KEY_BYTES: usize = 256;

/// Limits on failed sign-in attempts and portal form posts (see the module docs).
#[derive(Debug, Clone)]
pub struct RegulationConfig {
    /// Failures per (user, address) within `window` before the pair is banned.
    pub max_failures: u32,
    /// The sliding window of the per-pair and per-address counters.
    pub window: Duration,
    /// The first ban; it doubles on each repeated ban of the same key.
    pub ban: Duration,
    /// The longest ban, and how long a key must stay quiet before its ban level resets.
    pub max_ban: Duration,
    /// Failures per address, over all users, within `window` before the address is banned.
    pub max_failures_per_address: u32,
    /// Failures per user, over all addresses, within one hour before the account is throttled
    /// at addresses that are not known for the user.
    pub max_failures_per_user: u32,
    /// Portal form posts per address per minute (a burst of this size, refilled evenly).
    pub form_posts_per_minute: u32,
    /// The most keys each table tracks one by one; beyond it, new keys share one budget.
    pub max_keys: usize,
}

impl Default for RegulationConfig {
    fn default() -> Self {
        RegulationConfig {
            max_failures: 5,
            window: Duration::from_secs(10 * 60),
            ban: Duration::from_secs(5 * 60),
            max_ban: Duration::from_secs(60 * 60),
            max_failures_per_address: 20,
            max_failures_per_user: 100,
            form_posts_per_minute: 30,
            max_keys: 1_000_000,
        }
    }
}

/// Whether a sign-in attempt may have its secret checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// No ban applies: check the secret.
    Allowed,
    /// Banned until this time (ms since the Unix epoch): answer with the generic failure,
    /// whether or not the secret is right.
    Banned { until_ms: u64 },
}

/// Counts failed sign-ins, hands out bans and rate-limits portal form posts, all in bounded
/// memory. A gateway shares one behind an `Arc`.
pub struct Regulator {
    clock: SharedClock,
    max_keys: usize,
    backoff: Backoff,
    pairs: Ledger<(Box<str>, IpAddr)>,
    addrs: Ledger<IpAddr>,
    users: Ledger<Box<str>>,
    known: CountedMap<Box<str>, Vec<KnownAddr>>,
    known_full_logged: AtomicBool,
    /// `None` when `form_posts_per_minute` is 0: every post is refused.
    form_posts: Option<FormLimiter>,
}

impl Regulator {
    /// Builds a regulator that reads time only from `clock`.
    pub fn new(cfg: RegulationConfig, clock: SharedClock) -> Regulator {
        let window_ms = millis(cfg.window).max(1);
        let form_posts = NonZeroU32::new(cfg.form_posts_per_minute).map(|n| {
            let store = FormPostStore {
                map: CountedMap::default(),
                overflow: InMemoryState::default(),
                max_keys: cfg.max_keys,
            };
            RateLimiter::new(Quota::per_minute(n), store, GovernorClock(clock.clone()))
        });
        Regulator {
            max_keys: cfg.max_keys,
            backoff: Backoff {
                ban_ms: millis(cfg.ban),
                max_ban_ms: millis(cfg.max_ban),
            },
            pairs: Ledger::new("user+address", cfg.max_failures, window_ms),
            addrs: Ledger::new("address", cfg.max_failures_per_address, window_ms),
            users: Ledger::new("user", cfg.max_failures_per_user, USER_WINDOW_MS),
            known: CountedMap::default(),
            known_full_logged: AtomicBool::new(false),
            form_posts,
            clock,
        }
    }

    /// Call before a password or code is checked. During a ban even the right secret must fail
    /// the same generic way (the caller does that).
    pub fn check(&self, user: &str, addr: IpAddr) -> Verdict {
        let (now, max) = (self.clock.now_ms(), self.max_keys);
        let (user, key) = (user_key(user), addr_key(addr));
        let pair = self.pairs.banned_until(&(Box::from(user), key), now, max);
        let address = self.addrs.banned_until(&key, now, max);
        let account = self.users.banned_until(&Box::from(user), now, max);
        let account = account.filter(|_| !self.is_known(user, key, now));
        verdict([pair, address, account]).unwrap_or(Verdict::Allowed)
    }

    /// Call after a failed attempt. Returns the ban it caused that applies to this (user,
    /// address), if any. Every new ban is logged with `tracing::warn!` (target
    /// `stepgate::regulation`) with the user and address, never secrets.
    pub fn record_failure(&self, user: &str, addr: IpAddr) -> Option<Verdict> {
        let (now, max, b) = (self.clock.now_ms(), self.max_keys, &self.backoff);
        let (user, key) = (user_key(user), addr_key(addr));
        let by_pair = self.pairs.fail((Box::from(user), key), now, b, max);
        let by_addr = self.addrs.fail(key, now, b, max);
        let by_user = self.users.fail(Box::from(user), now, b, max);
        let scopes = [
            ("user+address", by_pair),
            ("address", by_addr),
            ("user", by_user),
        ];
        for (scope, until_ms) in scopes {
            if let Some(until_ms) = until_ms {
                let ban_secs = until_ms.saturating_sub(now) / 1000;
                tracing::warn!(target: "stepgate::regulation", scope, user = ?user, %addr,
                    until_ms, ban_secs, "too many failed sign-in attempts; banned");
            }
        }
        let by_user = by_user.filter(|_| !self.is_known(user, key, now));
        verdict([by_pair, by_addr, by_user])
    }

    /// Call after a success. Clears the (user, address) counter and ban history, and remembers
    /// `addr` as a known address of `user` (for 30 days; the 16 most recent per user).
    pub fn record_success(&self, user: &str, addr: IpAddr) {
        let (now, key) = (self.clock.now_ms(), addr_key(addr));
        if user.len() >= MAX_USER_KEY_BYTES {
            return; // the key would be a shared prefix: clear nothing, learn nothing
        }
        self.pairs.map.remove(&(Box::<str>::from(user), key));
        if let Some(mut list) = self.known.get_mut(user) {
            return remember(&mut list, key, now);
        }
        if self.known.len() >= self.max_keys {
            return log_full_once(&self.known_full_logged, "known addresses", self.max_keys);
        }
        let mut list = self.known.get_or_default(Box::from(user));
        remember(&mut list, key, now);
    }

    /// Rate limit on portal form posts per address (governor keyed limiter); `false` means
    /// answer 429.
    pub fn allow_form_post(&self, addr: IpAddr) -> bool {
        let key = addr_key(addr);
        self.form_posts
            .as_ref()
            .is_some_and(|l| l.check_key(&key).is_ok())
    }

    /// Drops expired counters, bans and known-address entries, and governor's stale keys
    /// (`retain_recent` + `shrink_to_fit`). The gateway calls this periodically.
    pub fn cleanup(&self) {
        let now = self.clock.now_ms();
        self.pairs.cleanup(now, &self.backoff);
        self.addrs.cleanup(now, &self.backoff);
        self.users.cleanup(now, &self.backoff);
        self.known.retain_and_shrink(|_, list| {
            list.retain(|k| k.fresh(now));
            !list.is_empty()
        });
        self.known_full_logged.store(false, Ordering::Relaxed);
        if let Some(limiter) = &self.form_posts {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The number of keys currently held across all tables (for memory benchmarks and tests).
    pub fn tracked_keys(&self) -> usize {
        let forms = self.form_posts.as_ref().map_or(0, |l| l.len());
        let failures = [
            self.pairs.map.len(),
            self.addrs.map.len(),
            self.users.map.len(),
        ];
        failures.iter().sum::<usize>() + self.known.len() + forms
    }

    fn is_known(&self, user: &str, key: IpAddr, now: u64) -> bool {
        let list = self.known.get(user);
        list.is_some_and(|l| l.iter().any(|k| k.addr == key && k.fresh(now)))
    }
}

/// Warns once per cleanup period that a table is full (its new keys share one budget).
fn log_full_once(logged: &AtomicBool, table: &'static str, max_keys: usize) {
    if !logged.swap(true, Ordering::Relaxed) {
        tracing::warn!(target: "stepgate::regulation", table, max_keys,
            "table full; new keys share one budget (or stay unknown) until cleanup");
    }
}

/// The longest of the bans, if any.
fn verdict(bans: [Option<u64>; 3]) -> Option<Verdict> {
    let until_ms = bans.into_iter().flatten().max()?;
    Some(Verdict::Banned { until_ms })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// IPv4 exactly; IPv4-mapped IPv6 as IPv4; other IPv6 by its /64.
fn addr_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// At most the first `MAX_USER_KEY_BYTES` bytes, cut on a character boundary.
/// The key one-time codes (second factor, setup codes) are limited under: the user's name in a
/// namespace of its own. A correct password clears the password counters of its (user,
/// address), so if codes shared them, signing in again would buy an attacker who holds the
/// password fresh guesses at the second factor. User names cannot hold control characters, so
/// this key never collides with a real name, and the per-user throttle's known addresses for it
/// are learned only from a passed second factor.
pub fn code_key(user: &str) -> String {
    format!("otp\u{1f}{user}")
}

fn user_key(user: &str) -> &str {
    let mut end = user.len().min(MAX_USER_KEY_BYTES);
    while !user.is_char_boundary(end) {
        end -= 1; // stops: 0 is always a boundary
    }
    user.get(..end).unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
struct KnownAddr {
    addr: IpAddr,
    seen_ms: u64,
}

impl KnownAddr {
    fn fresh(&self, now: u64) -> bool {
        now.saturating_sub(self.seen_ms) < KNOWN_TTL_MS
    }
}

/// Marks `addr` seen now, dropping stale entries and, beyond the cap, the least recently seen.
fn remember(list: &mut Vec<KnownAddr>, addr: IpAddr, now: u64) {
    list.retain(|k| k.addr != addr && k.fresh(now));
    list.push(KnownAddr { addr, seen_ms: now });
    if list.len() > MAX_KNOWN_PER_USER {
        list.remove(0);
    }
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    ban_ms: u64,
    max_ban_ms: u64,
}

impl Backoff {
    /// The length of ban number `bans` (1-based): `ban` doubled per repeat, capped.
    fn duration_ms(&self, bans: u8) -> u64 {
        let doubling = 1u64.checked_shl(u32::from(bans.saturating_sub(1)));
        let d = self.ban_ms.saturating_mul(doubling.unwrap_or(u64::MAX));
        d.min(self.max_ban_ms)
    }
}

/// The failure count, ban and ban level of one key.
#[derive(Debug, Clone, Copy, Default)]
struct Strikes {
    window_start_ms: u64,
    last_failure_ms: u64,
    ban_until_ms: u64,
    prev: u32,
    cur: u32,
    /// Bans so far; 0 when never banned or forgotten.
    bans: u8,
}

impl Strikes {
    fn banned_until(&self, now: u64) -> Option<u64> {
        (self.ban_until_ms > now).then_some(self.ban_until_ms)
    }

    fn quiet_since(&self) -> u64 {
        self.last_failure_ms.max(self.ban_until_ms)
    }

    /// Counts one failure; returns the end of the ban it starts, if it starts one.
    fn fail(&mut self, now: u64, limit: u32, window_ms: u64, backoff: &Backoff) -> Option<u64> {
        if self.bans > 0 && now.saturating_sub(self.quiet_since()) >= backoff.max_ban_ms {
            self.bans = 0;
        }
        self.last_failure_ms = now;
        let elapsed = now.saturating_sub(self.window_start_ms);
        if elapsed >= window_ms.saturating_mul(2) {
            (self.prev, self.cur, self.window_start_ms) = (0, 0, now);
        } else if elapsed >= window_ms {
            (self.prev, self.cur) = (self.cur, 0);
            self.window_start_ms = self.window_start_ms.saturating_add(window_ms);
        }
        self.cur = self.cur.saturating_add(1);
        // prev * (share of the previous window still inside the sliding one) + cur >= limit
        let in_cur = now.saturating_sub(self.window_start_ms).min(window_ms);
        let weighted = u128::from(self.prev) * u128::from(window_ms - in_cur)
            + u128::from(self.cur) * u128::from(window_ms);
        if self.ban_until_ms > now || weighted < u128::from(limit) * u128::from(window_ms) {
            return None;
        }
        self.bans = self.bans.saturating_add(1);
        self.ban_until_ms = now.saturating_add(backoff.duration_ms(self.bans));
        self.banned_until(now)
    }

    /// True when dropping the entry changes no future decision.
    fn expired(&self, now: u64, window_ms: u64, backoff: &Backoff) -> bool {
        let counted = now.saturating_sub(self.window_start_ms) < window_ms.saturating_mul(2);
        let window_empty = (self.prev == 0 && self.cur == 0) || !counted;
        let level_gone =
            self.bans == 0 || now.saturating_sub(self.quiet_since()) >= backoff.max_ban_ms;
        window_empty && level_gone && self.ban_until_ms <= now
    }
}

/// One failure table: the tracked keys, plus the budget shared by keys it has no room for.
struct Ledger<K> {
    scope: &'static str,
    limit: u32,
    window_ms: u64,
    map: CountedMap<K, Strikes>,
    overflow: Mutex<Strikes>,
    overflow_logged: AtomicBool,
}

impl<K: Hash + Eq> Ledger<K> {
    fn new(scope: &'static str, limit: u32, window_ms: u64) -> Ledger<K> {
        let (map, overflow) = (CountedMap::default(), Mutex::default());
        Ledger {
            scope,
            limit,
            window_ms,
            map,
            overflow,
            overflow_logged: AtomicBool::new(false),
        }
    }

    fn overflow(&self) -> MutexGuard<'_, Strikes> {
        self.overflow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn banned_until(&self, key: &K, now: u64, max_keys: usize) -> Option<u64> {
        if let Some(s) = self.map.get(key) {
            return s.banned_until(now);
        }
        (self.map.len() >= max_keys)
            .then(|| self.overflow().banned_until(now))
            .flatten()
    }

    fn fail(&self, key: K, now: u64, b: &Backoff, max_keys: usize) -> Option<u64> {
        let (limit, window_ms) = (self.limit, self.window_ms);
        if let Some(mut s) = self.map.get_mut(&key) {
            return s.fail(now, limit, window_ms, b);
        }
        if self.map.len() >= max_keys {
            log_full_once(&self.overflow_logged, self.scope, max_keys);
            return self.overflow().fail(now, limit, window_ms, b);
        }
        // A default entry's window starts at 0, so its first failure starts a fresh one.
        let mut s = self.map.get_or_default(key);
        s.fail(now, limit, window_ms, b)
    }

    fn cleanup(&self, now: u64, b: &Backoff) {
        self.map
            .retain_and_shrink(|_, s| !s.expired(now, self.window_ms, b));
        let mut overflow = self.overflow();
        if overflow.expired(now, self.window_ms, b) {
            *overflow = Strikes::default();
        }
        self.overflow_logged.store(false, Ordering::Relaxed);
    }
}

/// governor's view of our clock: nanoseconds since the Unix epoch.
#[derive(Clone)]
struct GovernorClock(SharedClock);

impl governor::clock::Clock for GovernorClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        // Capped at half the range (year 2262) so governor's unchecked additions cannot overflow.
        Nanos::new(self.0.now_ms().saturating_mul(1_000_000).min(u64::MAX / 2))
    }
}

type FormLimiter = RateLimiter<IpAddr, FormPostStore, GovernorClock, NoOpMiddleware<Nanos>>;

/// A bounded keyed state store for governor: addresses beyond `max_keys` share one GCRA state.
struct FormPostStore {
    map: CountedMap<IpAddr, InMemoryState>,
    overflow: InMemoryState,
    max_keys: usize,
}

impl StateStore for FormPostStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.map.len() >= self.max_keys {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        self.map
            .get_or_default(*key)
            .measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for FormPostStore {
    fn retain_recent(&self, drop_below: Nanos) {
        // Reads each state's theoretical arrival time; the closure declines, so nothing changes.
        let arrival = |s: &InMemoryState| {
            let read = s.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>);
            read.err().flatten()
        };
        self.map
            .retain_and_shrink(|_, s| arrival(s).is_some_and(|t| t > drop_below));
    }

    fn shrink_to_fit(&self) {
        // retain_recent already gave the freed capacity back.
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

#[cfg(test)]
mod tests {
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
}
