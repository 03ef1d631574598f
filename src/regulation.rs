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
//! **Attempts in flight** ([`Regulator::reserve`]): a sign-in or code check reserves its
//! attempt under each key before the secret is checked (hashing a password takes a while), and
//! settles it after. While a key's failures plus its attempts in flight reach its limit, a new
//! attempt is refused as during a ban. So N attempts made at once cost what N made one after the
//! other do; without this, a burst would have every password checked before the first failure
//! was recorded.
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
//!
//! **Bans outlive a restart.** Each new ban is sent to a ban log (a bounded channel the gateway
//! drains into the store, see [`Regulator::with_ban_log`]), and [`Regulator::restore`] puts back
//! the bans still running when a gateway starts, with their back-off level. Counters below a ban
//! and known addresses are not kept: after a restart a key starts counting afresh, which at most
//! gives a guesser one more window of tries, never an early end to a ban.
//!
//! **Bans an operator lifts** (`stepgate admin bans lift` deletes the stored ban) stop applying
//! at the next [`Regulator::follow_store`], which the gateway's housekeeping runs every 30 s
//! with the bans the store holds. A ban missing from the store is dropped only when the store is
//! known to have held it (see [`Regulator::follow_store`] for why a ban still on its way through
//! the ban log, or one the store failed to take, is never mistaken for a lifted one). Dropping
//! forgets the key's entry, counters and back-off level included, as a restart after the lift
//! would. A ban held by a full table's shared budget has no key of its own and is not followed.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::clock::SharedClock;
use crate::store::BanRecord;
use counted::CountedMap;

mod counted;
pub mod shared;

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
    /// Where new bans go to be kept (the store); `None`: kept in memory only.
    ban_log: Option<tokio::sync::mpsc::Sender<BanRecord>>,
    /// Counts reads of the store's bans (see [`Regulator::follow_store`]); starts at 1, so 0
    /// can mean "never seen in the store".
    store_reads: AtomicU32,
}

/// A read of the store's bans under way: taken with [`Regulator::store_read`] *before* the read
/// starts, handed to [`Regulator::follow_store`] with what it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct StoreRead(u32);

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
            ban_log: None,
            store_reads: AtomicU32::new(1),
        }
    }

    /// Sends every new ban to `log` (the gateway writes them to the store). A full log drops
    /// the record with a warning: the ban itself holds in memory all the same.
    pub fn with_ban_log(mut self, log: tokio::sync::mpsc::Sender<BanRecord>) -> Regulator {
        self.ban_log = Some(log);
        self
    }

    /// Puts back bans kept from before a restart (those still running); returns how many.
    /// Records this build cannot read are skipped with a warning.
    pub fn restore(&self, bans: &[BanRecord]) -> usize {
        let now = self.clock.now_ms();
        // They came from the store, so they were there before any later read began.
        let seen = self.store_reads.load(Ordering::SeqCst);
        let mut restored = 0;
        for ban in bans.iter().filter(|b| b.until_ms > now) {
            let strikes = Strikes {
                window_start_ms: now,
                last_failure_ms: now,
                ban_until_ms: ban.until_ms,
                prev: 0,
                cur: 0,
                bans: u8::try_from(ban.level).unwrap_or(u8::MAX),
                pending: 0,
                kept_in: seen,
            };
            let max = self.max_keys;
            let put = match ban.scope.as_str() {
                // The address is after the last separator (a code limit's user has one too).
                "pair" => ban.key.rsplit_once('\u{1f}').and_then(|(user, addr)| {
                    let addr = addr.parse::<IpAddr>().ok()?;
                    self.pairs.restore((Box::from(user), addr), strikes, max)
                }),
                "address" => ban
                    .key
                    .parse::<IpAddr>()
                    .ok()
                    .and_then(|a| self.addrs.restore(a, strikes, max)),
                "user" => self
                    .users
                    .restore(Box::from(ban.key.as_str()), strikes, max),
                _ => None,
            };
            match put {
                Some(()) => restored += 1,
                None => {
                    tracing::warn!(target: "stepgate::regulation", scope = %ban.scope, "a kept ban could not be restored")
                }
            }
        }
        restored
    }

    /// Tells the regulator that the store now holds `ban` (the gateway calls it once the ban
    /// log's record is written). From then on, the ban missing from the store means it was lifted
    /// (see [`Regulator::follow_store`]). A record of an earlier ban of the same key, or one
    /// shorter than the ban in force, changes nothing.
    pub fn ban_kept(&self, ban: &BanRecord) {
        let now = self.clock.now_ms();
        let read = self.store_reads.load(Ordering::SeqCst);
        let mark = |s: &mut Strikes| {
            if s.ban_until_ms > now && ban.until_ms >= s.ban_until_ms {
                s.kept_in = read;
            }
        };
        match ban.scope.as_str() {
            "pair" => {
                // The address is after the last separator (a code limit's user has one too).
                let Some((user, addr)) = ban.key.rsplit_once('\u{1f}') else {
                    return;
                };
                let Ok(addr) = addr.parse::<IpAddr>() else {
                    return;
                };
                if let Some(mut s) = self.pairs.map.get_mut(&(Box::<str>::from(user), addr)) {
                    mark(&mut s);
                }
            }
            "address" => {
                if let Some(mut s) = ban
                    .key
                    .parse()
                    .ok()
                    .and_then(|a| self.addrs.map.get_mut(&a))
                {
                    mark(&mut s);
                }
            }
            "user" => {
                if let Some(mut s) = self.users.map.get_mut(ban.key.as_str()) {
                    mark(&mut s);
                }
            }
            _ => {}
        }
    }

    /// Begins a read of the store's bans for [`Regulator::follow_store`]: call it before the
    /// read starts.
    pub fn store_read(&self) -> StoreRead {
        StoreRead(self.store_reads.fetch_add(1, Ordering::SeqCst))
    }

    /// Drops the bans in force here that an operator lifted from the store, given `stored`, the
    /// store's running bans (`active_bans(now)`) as read after `read` was taken. Returns how
    /// many it dropped.
    ///
    /// A ban missing from `stored` is not necessarily lifted: it may still be in the ban log on
    /// its way to the store (bans are written a moment after they start, by another task), or
    /// its write may have failed. So each ban carries the number of the store read that is
    /// known to come after the store held it (0: not known to be there), and only such a ban is
    /// dropped when a read misses it:
    ///
    /// - [`Regulator::ban_kept`] (after the write) marks the ban with the number of the next
    ///   read to begin; a read that began before the write, and so may have missed it, has a
    ///   smaller number and leaves it alone.
    /// - a read that finds the key with a ban at least as long as the one in force confirms it
    ///   with its own number; [`Regulator::restore`] marks what it puts back likewise.
    /// - a read that finds a shorter ban under the key (another gateway on the same database
    ///   replaced the record) clears the mark: that record may end, and vanish, before the ban
    ///   here does, which is not a lift. Such a ban keeps running until it ends.
    /// - a ban that starts anew (the key was banned again) is unmarked until it is written.
    ///
    /// So a marked ban is dropped only when the store held, before the read, a record of the key
    /// that would still be running, and the read did not find it: someone deleted it. (Another
    /// gateway with a clock running ahead could purge a record early; keep clocks in sync.)
    pub fn follow_store(&self, read: StoreRead, stored: &[BanRecord]) -> usize {
        let now = self.clock.now_ms();
        let until: HashMap<(&str, &str), u64> = stored
            .iter()
            .map(|b| ((b.scope.as_str(), b.key.as_str()), b.until_ms))
            .collect();
        let lifted = [
            self.pairs.follow_store(now, read, |(user, addr)| {
                until
                    .get(&("pair", format!("{user}\u{1f}{addr}").as_str()))
                    .copied()
            }),
            self.addrs.follow_store(now, read, |addr| {
                until.get(&("address", addr.to_string().as_str())).copied()
            }),
            self.users
                .follow_store(now, read, |user| until.get(&("user", &**user)).copied()),
        ];
        let lifted: usize = lifted.iter().sum();
        if lifted > 0 {
            tracing::info!(target: "stepgate::regulation", lifted, "bans lifted from the store no longer apply");
        }
        lifted
    }

    /// Sends a new ban to the ban log, if there is one.
    fn log_ban(&self, scope: &str, key: String, until_ms: u64, level: u8) {
        crate::metrics::ban(match scope {
            "pair" => "pair",
            "address" => "address",
            "user" => "user",
            _ => "other",
        });
        let Some(log) = &self.ban_log else { return };
        let record = BanRecord {
            scope: scope.to_owned(),
            key,
            until_ms,
            level: u32::from(level),
        };
        if log.try_send(record).is_err() {
            tracing::warn!(target: "stepgate::regulation", scope, "ban log full or closed; this ban is not kept across a restart");
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
            (
                "user+address",
                "pair",
                by_pair,
                format!("{user}\u{1f}{key}"),
            ),
            ("address", "address", by_addr, key.to_string()),
            ("user", "user", by_user, user.to_owned()),
        ];
        for (scope, kept_as, ban, kept_key) in scopes {
            if let Some((until_ms, level)) = ban {
                let ban_secs = until_ms.saturating_sub(now) / 1000;
                tracing::warn!(target: "stepgate::regulation", scope, user = ?user, %addr,
                    until_ms, ban_secs, "too many failed sign-in attempts; banned");
                self.log_ban(kept_as, kept_key, until_ms, level);
            }
        }
        let (by_pair, by_addr, by_user) = (
            by_pair.map(|b| b.0),
            by_addr.map(|b| b.0),
            by_user.map(|b| b.0),
        );
        let by_user = by_user.filter(|_| !self.is_known(user, key, now));
        verdict([by_pair, by_addr, by_user])
    }

    /// Bans `addr` for every user at once, as if it had run out of tries (the owner said "this
    /// wasn't me" to a request from it); returns the end of the ban. Logged and kept like any
    /// ban; a ban running already is kept, not shortened.
    pub fn ban_address(&self, addr: IpAddr) -> u64 {
        let (now, max, b) = (self.clock.now_ms(), self.max_keys, &self.backoff);
        let key = addr_key(addr);
        let ban = self.addrs.ban(key, now, b, max);
        if let Some((until_ms, level)) = ban {
            tracing::warn!(target: "stepgate::regulation", scope = "address", %addr, until_ms, "address banned by the account owner");
            self.log_ban("address", key.to_string(), until_ms, level);
        }
        self.addrs.banned_until(&key, now, max).unwrap_or(now)
    }

    /// Reserves one attempt of `user` from `addr` before its secret is checked: refused (a
    /// `Banned` verdict) during a ban, and while the failures so far plus the attempts already
    /// in flight reach a limit (`Err` says until when to wait). So N attempts made at once cost
    /// what N made one after the other do: a burst cannot have more secrets checked than the
    /// limit allows. Settle the reservation with [`Reservation::failed`] or
    /// [`Reservation::succeeded`]; dropping it unsettled gives the attempt back.
    pub fn reserve(&self, user: &str, addr: IpAddr) -> Result<Reservation<'_>, u64> {
        if let Verdict::Banned { until_ms } = self.check(user, addr) {
            return Err(until_ms);
        }
        let (now, max) = (self.clock.now_ms(), self.max_keys);
        let (user, key) = (Box::<str>::from(user_key(user)), addr_key(addr));
        let mut r = Reservation {
            reg: self,
            user: user.clone(),
            addr,
            held: [false; 3],
        };
        // The per-user throttle does not apply at the user's known addresses (see `check`).
        let known = self.is_known(&user, key, now);
        r.held[0] = self.pairs.reserve((user.clone(), key), now, max);
        r.held[1] = r.held[0] && self.addrs.reserve(key, now, max);
        r.held[2] = r.held[1] && !known && self.users.reserve(user.clone(), now, max);
        if r.held[0] && r.held[1] && (known || r.held[2]) {
            return Ok(r);
        }
        // Refused while attempts are in flight: try again in a moment (the reservation's drop
        // gives back what it took).
        Err(now.saturating_add(1000))
    }

    /// Whether `user` signed in from `addr` in the last 30 days (one of their known addresses,
    /// at which the per-user throttle does not apply).
    pub fn is_known_address(&self, user: &str, addr: IpAddr) -> bool {
        self.is_known(user_key(user), addr_key(addr), self.clock.now_ms())
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
        self.form_post_wait(addr).is_none()
    }

    /// Takes one portal form post from the address's budget: `None` when it may go on, else how
    /// long until the next one would be let through (for `Retry-After`). With a rate of 0 every
    /// post waits a minute.
    pub fn form_post_wait(&self, addr: IpAddr) -> Option<Duration> {
        let Some(limiter) = &self.form_posts else {
            return Some(Duration::from_secs(60));
        };
        match limiter.check_key(&addr_key(addr)) {
            Ok(()) => None,
            Err(not_until) => {
                let now = governor::clock::Clock::now(&GovernorClock(self.clock.clone()));
                Some(not_until.wait_time_from(now))
            }
        }
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

/// Why [`Regulator::reserve_everywhere`] refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Banned, or too many attempts in flight, until this time (ms).
    Until(u64),
    /// The shared limits could not answer (Redis down or slow): fail closed.
    Fault,
}

/// An attempt reserved in memory and, with `store.redis_url`, in Redis too ([`shared`]):
/// settle it with [`Attempt::failed`] or [`Attempt::succeeded`], or drop it to give it back.
#[must_use]
#[derive(Debug)]
pub struct Attempt<'a> {
    local: Reservation<'a>,
    shared: Option<shared::SharedAttempt>,
}

impl Regulator {
    /// [`Regulator::reserve`], then the same in the limits every gateway shares (`shared`,
    /// when configured): the attempt goes on only if both have room.
    pub async fn reserve_everywhere<'a>(
        &'a self,
        shared: Option<&shared::SharedLimits>,
        user: &str,
        addr: IpAddr,
    ) -> Result<Attempt<'a>, Refusal> {
        let local = self.reserve(user, addr).map_err(Refusal::Until)?;
        let shared = match shared {
            Some(limits) => Some(limits.reserve(user, addr).await.map_err(|r| match r {
                shared::Refused::Until(until) => Refusal::Until(until),
                shared::Refused::Fault => Refusal::Fault,
            })?),
            None => None,
        };
        Ok(Attempt { local, shared })
    }
}

impl Attempt<'_> {
    /// The attempt failed: counted here and, when shared, on every gateway. The end of a ban
    /// it caused that applies to this (user, address), if any.
    pub async fn failed(self) -> Option<u64> {
        let reg = self.local.reg;
        let here = match self.local.failed() {
            Some(Verdict::Banned { until_ms }) => Some(until_ms),
            _ => None,
        };
        let Some(shared) = self.shared else {
            return here;
        };
        let failed = shared.failed().await;
        // Kept in the store like this gateway's own, so `admin bans` lists them and a restart
        // keeps them (a gateway whose own count banned the key logged it already; the store
        // keeps one row per key).
        for ban in failed.new_bans {
            tracing::warn!(target: "stepgate::regulation", scope = ban.scope, until_ms = ban.until_ms,
                "too many failed attempts across the gateways; banned");
            reg.log_ban(ban.scope, ban.key, ban.until_ms, ban.level);
        }
        here.max(failed.until_ms)
    }

    /// The attempt succeeded.
    pub async fn succeeded(self) {
        self.local.succeeded();
        if let Some(a) = self.shared {
            a.succeeded().await;
        }
    }
}

/// An attempt reserved by [`Regulator::reserve`]: settle it, or drop it to give it back.
#[must_use]
pub struct Reservation<'a> {
    reg: &'a Regulator,
    user: Box<str>,
    addr: IpAddr,
    /// Which tables it holds an attempt in: pairs, addresses, users.
    held: [bool; 3],
}

impl std::fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("user", &self.user)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Reservation<'_> {
    fn release(&mut self) {
        let key = addr_key(self.addr);
        let reg = self.reg;
        if std::mem::take(&mut self.held[0]) {
            reg.pairs.release(&(self.user.clone(), key));
        }
        if std::mem::take(&mut self.held[1]) {
            reg.addrs.release(&key);
        }
        if std::mem::take(&mut self.held[2]) {
            reg.users.release(&self.user);
        }
    }

    /// The attempt failed: counted as [`Regulator::record_failure`] counts it.
    pub fn failed(mut self) -> Option<Verdict> {
        self.release();
        self.reg.record_failure(&self.user, self.addr)
    }

    /// The attempt succeeded: as [`Regulator::record_success`].
    pub fn succeeded(mut self) {
        self.release();
        self.reg.record_success(&self.user, self.addr);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.release();
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
    /// Attempts reserved and not settled yet (checked in parallel): counted as failures to
    /// come when deciding whether one more may be checked. Fits in `bans`' padding.
    pending: u16,
    /// The ban in force is known to be in the store for every read of the store numbered this
    /// or higher; 0: not known (see [`Regulator::follow_store`]). Fits in `bans`' padding.
    kept_in: u32,
}

impl Strikes {
    fn banned_until(&self, now: u64) -> Option<u64> {
        (self.ban_until_ms > now).then_some(self.ban_until_ms)
    }

    fn quiet_since(&self) -> u64 {
        self.last_failure_ms.max(self.ban_until_ms)
    }

    /// The failures in the sliding window at `now`, scaled by `window_ms` (see `fail`),
    /// without changing anything.
    fn weighted(&self, now: u64, window_ms: u64) -> u128 {
        let elapsed = now.saturating_sub(self.window_start_ms);
        let (prev, cur, start) = if elapsed >= window_ms.saturating_mul(2) {
            (0, 0, now)
        } else if elapsed >= window_ms {
            (self.cur, 0, self.window_start_ms.saturating_add(window_ms))
        } else {
            (self.prev, self.cur, self.window_start_ms)
        };
        let in_cur = now.saturating_sub(start).min(window_ms);
        u128::from(prev) * u128::from(window_ms - in_cur) + u128::from(cur) * u128::from(window_ms)
    }

    /// Reserves one attempt: allowed while no ban runs and the failures so far plus the
    /// attempts in flight stay under the limit (as if every attempt in flight will fail, which
    /// is what checking them one after the other would have found out first). With nothing in
    /// flight an attempt is always allowed outside a ban: after a ban ends, the count may still
    /// be over the limit, and then its first failure bans again (as one at a time would).
    fn reserve(&mut self, now: u64, limit: u32, window_ms: u64) -> bool {
        let in_flight = u128::from(self.pending) * u128::from(window_ms);
        let full =
            self.weighted(now, window_ms) + in_flight >= u128::from(limit) * u128::from(window_ms);
        if self.ban_until_ms > now || (self.pending > 0 && full) {
            return false;
        }
        self.pending = self.pending.saturating_add(1);
        true
    }

    /// Starts a ban now (unless one is running); returns its end and level if it started one.
    fn ban_now(&mut self, now: u64, backoff: &Backoff) -> Option<(u64, u8)> {
        self.last_failure_ms = now;
        if self.ban_until_ms > now {
            return None;
        }
        self.bans = self.bans.saturating_add(1);
        self.ban_until_ms = now.saturating_add(backoff.duration_ms(self.bans));
        self.kept_in = 0;
        self.banned_until(now).map(|until| (until, self.bans))
    }

    /// Counts one failure; returns the end of the ban it starts and its level, if it starts one.
    fn fail(
        &mut self,
        now: u64,
        limit: u32,
        window_ms: u64,
        backoff: &Backoff,
    ) -> Option<(u64, u8)> {
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
        self.kept_in = 0; // a new ban: not in the store until written
        self.banned_until(now).map(|until| (until, self.bans))
    }

    /// True when dropping the entry changes no future decision.
    fn expired(&self, now: u64, window_ms: u64, backoff: &Backoff) -> bool {
        let counted = now.saturating_sub(self.window_start_ms) < window_ms.saturating_mul(2);
        let window_empty = (self.prev == 0 && self.cur == 0) || !counted;
        let level_gone =
            self.bans == 0 || now.saturating_sub(self.quiet_since()) >= backoff.max_ban_ms;
        window_empty && level_gone && self.ban_until_ms <= now && self.pending == 0
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

    fn fail(&self, key: K, now: u64, b: &Backoff, max_keys: usize) -> Option<(u64, u8)> {
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

    /// Reserves an attempt of `key` (see [`Strikes::reserve`]); `false`: refuse it now.
    fn reserve(&self, key: K, now: u64, max_keys: usize) -> bool {
        let (limit, window_ms) = (self.limit, self.window_ms);
        if let Some(mut s) = self.map.get_mut(&key) {
            return s.reserve(now, limit, window_ms);
        }
        if self.map.len() >= max_keys {
            return self.overflow().reserve(now, limit, window_ms);
        }
        self.map.get_or_default(key).reserve(now, limit, window_ms)
    }

    /// Gives a reserved attempt of `key` back (it was settled, or never checked).
    fn release(&self, key: &K) {
        if let Some(mut s) = self.map.get_mut(key) {
            s.pending = s.pending.saturating_sub(1);
            return;
        }
        let mut o = self.overflow();
        o.pending = o.pending.saturating_sub(1);
    }

    fn ban(&self, key: K, now: u64, b: &Backoff, max_keys: usize) -> Option<(u64, u8)> {
        if self.map.len() >= max_keys && self.map.get(&key).is_none() {
            return self.overflow().ban_now(now, b);
        }
        let mut s = self.map.get_or_default(key);
        s.ban_now(now, b)
    }

    /// Puts a kept ban back; `None` when the table is full (the key stays unknown).
    fn restore(&self, key: K, strikes: Strikes, max_keys: usize) -> Option<()> {
        if self.map.len() >= max_keys {
            return None;
        }
        *self.map.get_or_default(key) = strikes;
        Some(())
    }

    /// See [`Regulator::follow_store`]; `stored` gives the end of the store's ban of a key.
    /// Returns how many bans it dropped.
    fn follow_store(&self, now: u64, read: StoreRead, stored: impl Fn(&K) -> Option<u64>) -> usize {
        let mut lifted = 0;
        self.map.retain(|key, s| {
            if s.ban_until_ms <= now {
                return true;
            }
            match stored(key) {
                Some(until) if until >= s.ban_until_ms => s.kept_in = read.0,
                Some(_) => s.kept_in = 0,
                None if s.kept_in != 0 && s.kept_in <= read.0 => {
                    lifted += 1;
                    return false;
                }
                None => {}
            }
            true
        });
        lifted
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
mod tests;
