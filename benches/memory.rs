//! Resident memory at scale, through the real session store and failure limiter: creates
//! `STEPGATE_MEM_N` (default 1,000,000) sessions and as many failed sign-ins from distinct users
//! and addresses, and reports resident memory per session and per limiter key, and that the
//! limiter's memory returns after `cleanup`.
//!
//! Run with `cargo bench --bench memory`. Overrides, all optional:
//! - `STEPGATE_MEM_N`: both counts (default 1,000,000);
//! - `STEPGATE_MEM_SESSIONS`, `STEPGATE_MEM_KEYS`: one count each (0 skips that part);
//! - `STEPGATE_MEM_BUDGET_SECS`: the session part stops early, with a message, when its projected
//!   total passes this (default 600).
//!
//! Writes a table to stdout and the figures to `target/bench/memory.json`.
//!
//! **How memory is measured.** Resident set size from `/proc/self/status` (`VmRSS`, and `RssAnon`,
//! the heap alone, without SQLite's mapped WAL index or the binary's pages). Each part starts from
//! a baseline taken after a warm-up and `mi_collect(true)`, and reports the growth over it divided
//! by the count. This is what the operator sees: allocator rounding, hash-table slack and
//! per-entry heap strings included. The allocator is the gateway's own (mimalloc), which returns
//! freed pages to the OS after a short delay; figures are reported at once, a second later, and
//! after `mi_collect(true)`.
//!
//! **Sessions at the full count.** If the projected time of the creates passes the budget, the
//! create loop stops (saying so), the store is topped up to the full count with direct
//! `put_session` calls, and a restart gives the memory held at the full count: `Sessions::open`
//! (which reads nothing but the count) and one lookup of every session, which fills the cache
//! the way returning users would. Both are timed.
//!
//! **Hash-table steps.** A `DashMap` shard doubles its table when 7/8 full, so bytes per key at a
//! given count depend on where the count falls: 1,000,000 keys in 8 shards (2 CPUs) is just past
//! a doubling (114,688 per shard), nearly twice the table per key of 900,000. Progress lines
//! show the steps. `Regulator::cleanup` shrinks every table to fit after dropping entries.
//!
//! **What a limiter key is.** One failed sign-in from a new user at a new address lands in three
//! tables: the (user, address) pair, the address and the user; each is a key that
//! `Regulator::tracked_keys` counts. Both figures are reported: per `record_failure` call and per
//! table entry.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stepgate::amr::{Amr, Method};
use stepgate::clock::{Clock, ManualClock};
use stepgate::regulation::{RegulationConfig, Regulator};
use stepgate::session::{SessionConfig, Sessions};
use stepgate::store::{run_blocking, SessionRecord, Store, StoreConfig};

const DEFAULT_N: usize = 1_000_000;
const DEFAULT_BUDGET_SECS: u64 = 600;
const SESSION_TARGET_BYTES: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
/// Direct `put_session` calls timed on their own, to separate the store's share of a create.
const STORE_ONLY_PUTS: usize = 20_000;

/// Resident memory of this process, in bytes.
#[derive(Debug, Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
}

impl Rss {
    fn now() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        Rss {
            total: field("VmRSS:"),
            anon: field("RssAnon:"),
        }
    }

    fn mib(self) -> f64 {
        self.total as f64 / MIB
    }
}

/// The gateway's allocator (see `src/main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the gateway's housekeeping does after each clean-up: asks the allocator to return the
/// free memory it holds to the OS now.
fn trim() {
    stepgate::app::return_free_memory();
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a count; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// One row of the report.
struct Row {
    phase: String,
    count: usize,
    rss: Rss,
    /// Growth over the part's baseline per item, when the row measures items.
    per_item: Option<(f64, f64)>,
    note: String,
}

struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn row(&mut self, phase: &str, count: usize, rss: Rss, base: Option<Rss>, note: &str) {
        let per_item = base.filter(|_| count > 0).map(|b| {
            let per = |now: u64, then: u64| (now as f64 - then as f64) / count as f64;
            (per(rss.total, b.total), per(rss.anon, b.anon))
        });
        println!(
            "  {phase:<44} {count:>10} {:>9.1} MiB{}",
            rss.mib(),
            per_item.map_or(String::new(), |(t, a)| format!(
                "  {t:>7.1} B/item (heap {a:.1})"
            ))
        );
        self.rows.push(Row {
            phase: phase.to_owned(),
            count,
            rss,
            per_item,
            note: note.to_owned(),
        });
    }

    fn print(&self) {
        println!();
        println!(
            "{:<44} {:>10} {:>10} {:>12} {:>12}  note",
            "phase", "count", "RSS MiB", "B/item RSS", "B/item heap"
        );
        println!("{}", "-".repeat(100));
        for r in &self.rows {
            let (t, a) = r.per_item.map_or((String::new(), String::new()), |(t, a)| {
                (format!("{t:.1}"), format!("{a:.1}"))
            });
            println!(
                "{:<44} {:>10} {:>10.1} {:>12} {:>12}  {}",
                r.phase,
                r.count,
                r.rss.mib(),
                t,
                a,
                r.note
            );
        }
    }
}

/// Where the session part stopped and how fast it went.
struct SessionRun {
    created: usize,
    secs: f64,
    stopped_early: Option<String>,
    checkpoints: Vec<Value>,
}

/// The counts at which progress is printed: 10k and 50k (to show an early slope), then every
/// 100k, and the last.
fn checkpoints(n: usize) -> Vec<usize> {
    let mut at: Vec<usize> = [10_000, 50_000]
        .into_iter()
        .chain((1..).map(|k| k * 100_000).take_while(|&c| c < n))
        .filter(|&c| c < n)
        .collect();
    at.push(n);
    at
}

/// Seconds still needed to reach `n` from `done`, if the cost of one create grows linearly with
/// the number of sessions held (a line through the last two intervals' mean costs), which is
/// what a scan of all sessions per create gives; constant cost when only one interval is known.
fn projected_remaining(intervals: &[(usize, usize, f64)], done: usize, n: usize) -> f64 {
    let cost = |&(from, to, secs): &(usize, usize, f64)| {
        ((from + to) as f64 / 2.0, secs / (to - from).max(1) as f64)
    };
    let (a, b) = match intervals {
        [] => return 0.0,
        [only] => (cost(only).1, 0.0),
        [.., p, q] => {
            let ((x0, y0), (x1, y1)) = (cost(p), cost(q));
            let slope = ((y1 - y0) / (x1 - x0)).max(0.0);
            (y1 - slope * x1, slope)
        }
    };
    let (d, n) = (done as f64, n as f64);
    a * (n - d) + b / 2.0 * (n * n - d * d)
}

fn run_sessions(
    sessions: &Sessions,
    n: usize,
    budget: Duration,
    report: &mut Report,
    base: Rss,
) -> SessionRun {
    let amr = Amr::PASSWORD.with(Method::Otp);
    let start = Instant::now();
    let (mut done, mut last_t, mut intervals) = (0usize, 0.0f64, Vec::new());
    let mut points = Vec::new();
    for target in checkpoints(n) {
        let failed = run_blocking(async {
            for i in done..target {
                let created = sessions.create(&format!("user{i}"), amr, None).await;
                if let Err(e) = created {
                    return Some((i, e));
                }
            }
            None
        });
        if let Some((i, e)) = failed {
            {
                let why = format!("create #{i} failed: {e}");
                println!("  STOPPED: {why}");
                return SessionRun {
                    created: i,
                    secs: start.elapsed().as_secs_f64(),
                    stopped_early: Some(why),
                    checkpoints: points,
                };
            }
        }
        let t = start.elapsed().as_secs_f64();
        intervals.push((done, target, t - last_t));
        let (rate, cumulative) = ((target - done) as f64 / (t - last_t), target as f64 / t);
        let rss = Rss::now();
        let per = (rss.total as f64 - base.total as f64) / target as f64;
        println!(
            "  sessions {target:>9}: {t:>8.1} s  last interval {rate:>9.0}/s ({:>7.1} µs each)  overall {cumulative:>9.0}/s  RSS {:.1} MiB ({per:.0} B/session)",
            1e6 / rate,
            rss.mib()
        );
        points.push(json!({
            "sessions": target, "secs": t, "interval_per_sec": rate,
            "cumulative_per_sec": cumulative, "rss_mib": rss.mib(),
        }));
        report.row(
            &format!("sessions: {target} created"),
            target,
            rss,
            Some(base),
            "",
        );
        done = target;
        last_t = t;
        let projected = t + projected_remaining(&intervals, done, n);
        if done < n && projected > budget.as_secs_f64() {
            let why = format!(
                "projected total {projected:.0} s for {n} sessions passes the {} s budget \
                 (STEPGATE_MEM_BUDGET_SECS); stopped at {done}",
                budget.as_secs()
            );
            println!("  STOPPED EARLY: {why}");
            return SessionRun {
                created: done,
                secs: t,
                stopped_early: Some(why),
                checkpoints: points,
            };
        }
    }
    SessionRun {
        created: done,
        secs: last_t,
        stopped_early: None,
        checkpoints: points,
    }
}

/// Times `put_session` alone (no sessions layer), as a reference for the create rate.
fn store_only_rate() -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&StoreConfig::default(), dir.path())?;
    let start = Instant::now();
    run_blocking(async {
        for i in 0..STORE_ONLY_PUTS {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            let record = SessionRecord {
                user: format!("user{i}"),
                amr: "pwd,otp".into(),
                created_ms: 1,
                auth_ms: 1,
                last_seen_ms: 1,
                deferred: false,
                persistent: false,
                needs_check: false,
                client: String::new(),
                agent: String::new(),
                trusted: String::new(),
            };
            store.sessions().put_session(&key, &record).await?;
        }
        anyhow::Ok(())
    })?;
    Ok(STORE_ONLY_PUTS as f64 / start.elapsed().as_secs_f64())
}

fn session_part(n: usize, budget: Duration, report: &mut Report) -> anyhow::Result<Value> {
    println!("== sessions: {n} creates through Sessions::create (SQLite store, autocommit) ==");
    let put_rate = store_only_rate()?;
    println!("  reference: put_session alone, {STORE_ONLY_PUTS} rows: {put_rate:.0}/s");
    let dir = tempfile::tempdir()?;
    let cfg = SessionConfig {
        max_sessions: 2_000_000,
        max_per_user: 10,
        ..Default::default()
    };
    let clock = ManualClock::now();
    let store = Store::open(&StoreConfig::default(), dir.path())?;
    let sessions = run_blocking(Sessions::open(store, cfg.clone(), clock.clone(), vec![]))?;
    // Warm-up: the connection's page cache, the map's first shards, the formatting machinery.
    run_blocking(async {
        for i in 0..100 {
            let user = format!("warm{i}");
            drop(sessions.create(&user, Amr::PASSWORD, None).await?);
        }
        anyhow::Ok(())
    })?;
    trim();
    let base = Rss::now();
    report.row(
        "sessions: baseline (100 warm-up sessions)",
        0,
        base,
        None,
        "",
    );
    let run = run_sessions(&sessions, n, budget, report, base);
    let end = Rss::now();
    let created = run.created;
    let per = |now: u64, then: u64| (now as f64 - then as f64) / created.max(1) as f64;
    let (bytes, heap) = (per(end.total, base.total), per(end.anon, base.anon));
    let verdict = target_verdict(bytes);
    report.row(
        &format!("sessions: {created} held"),
        created,
        end,
        Some(base),
        verdict,
    );
    let rate = created as f64 / run.secs.max(f64::EPSILON);
    println!(
        "  {created} sessions in {:.1} s: {rate:.0}/s; {bytes:.0} B/session RSS ({heap:.0} heap): {verdict}",
        run.secs
    );
    if let Some(why) = &run.stopped_early {
        println!("  NOTE: stopped early: {why}");
    }
    drop(sessions);
    let restored = restore(n, &cfg, &clock, report)?;
    let db_bytes = std::fs::metadata(dir.path().join("stepgate.db")).map_or(0, |m| m.len());
    let mut out = json!({
        "sessions_requested": n,
        "sessions": created,
        "sessions_stopped_early": run.stopped_early,
        "session_create_secs": run.secs,
        "session_create_per_sec": rate,
        "session_checkpoints": run.checkpoints,
        "sqlite_put_only_per_sec": put_rate,
        "session_baseline_rss_mib": base.mib(),
        "session_rss_mib": end.mib(),
        "bytes_per_session": bytes,
        "bytes_per_session_heap": heap,
        "session_target_bytes": SESSION_TARGET_BYTES,
        "session_target_met": bytes < SESSION_TARGET_BYTES,
        "session_db_bytes": db_bytes,
    });
    merge_into(&mut out, restored);
    Ok(out)
}

fn target_verdict(bytes: f64) -> &'static str {
    if bytes < SESSION_TARGET_BYTES {
        "PASS (< 1 KiB)"
    } else {
        "OVER TARGET (>= 1 KiB)"
    }
}

/// Sessions held at the full count even when creating them one by one was stopped early: a
/// fresh store gets `n` rows by direct `put_session` calls (IDs known to the benchmark), then a
/// restart (`Sessions::open`) looks every session up once, which fills the cache the way
/// returning browsers would. Times both.
fn restore(
    n: usize,
    cfg: &SessionConfig,
    clock: &Arc<ManualClock>,
    report: &mut Report,
) -> anyhow::Result<Value> {
    println!("== sessions: restart with {n} sessions in the store (Sessions::open, lookups) ==");
    let fresh = tempfile::tempdir()?;
    let dir = fresh.path();
    let mut ids = Vec::with_capacity(n);
    {
        let store = Store::open(&StoreConfig::default(), dir)?;
        let now = clock.now_ms();
        let start = Instant::now();
        run_blocking(async {
            for i in 0..n {
                let record = SessionRecord {
                    user: format!("user{i}"),
                    amr: "pwd,otp".into(),
                    created_ms: now,
                    auth_ms: now,
                    last_seen_ms: now,
                    deferred: false,
                    persistent: false,
                    needs_check: false,
                    client: String::new(),
                    agent: String::new(),
                    trusted: String::new(),
                };
                // IDs of the top-up rows, so the restart can look them up like browsers would.
                let id = format!("{:0>43}", i);
                let key = Sha256::digest(id.as_bytes()).into();
                store.sessions().put_session(&key, &record).await?;
                ids.push(id);
                if (i + 1) % 100_000 == 0 {
                    println!(
                        "  store top-up {:>9}: {:>6.1} s",
                        i + 1,
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            anyhow::Ok(())
        })?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  wrote {n} rows with put_session in {secs:.1} s ({:.0}/s)",
            n as f64 / secs
        );
    }
    trim();
    let base = Rss::now();
    report.row("restart: baseline (sessions dropped)", 0, base, None, "");
    let start = Instant::now();
    let store = Store::open(&StoreConfig::default(), dir)?;
    let sessions = run_blocking(Sessions::open(store, cfg.clone(), clock.clone(), vec![]))?;
    run_blocking(async {
        for id in &ids {
            sessions.lookup(id).await?;
        }
        anyhow::Ok(())
    })?;
    let load_secs = start.elapsed().as_secs_f64();
    let held = sessions.cached();
    let loaded = Rss::now();
    report.row(
        "restart: after Sessions::open and a lookup of each",
        held,
        loaded,
        Some(base),
        "rows read, freed, not trimmed",
    );
    trim();
    let trimmed = Rss::now();
    let bytes = (trimmed.total as f64 - base.total as f64) / held.max(1) as f64;
    let heap = (trimmed.anon as f64 - base.anon as f64) / held.max(1) as f64;
    let verdict = target_verdict(bytes);
    report.row(
        &format!("restart: {held} held, after mi_collect(true)"),
        held,
        trimmed,
        Some(base),
        verdict,
    );
    println!(
        "  Sessions::open and lookups cached {held} sessions in {load_secs:.1} s; {bytes:.0} B/session RSS \
         ({heap:.0} heap): {verdict}"
    );
    Ok(json!({
        "sessions_restored": held,
        "session_restore_secs": load_secs,
        "session_restore_baseline_rss_mib": base.mib(),
        "session_restore_rss_mib": loaded.mib(),
        "session_restore_rss_trimmed_mib": trimmed.mib(),
        "bytes_per_session_restored": bytes,
        "bytes_per_session_restored_heap": heap,
        "session_restored_target_met": bytes < SESSION_TARGET_BYTES,
    }))
}

/// A distinct IPv4 address per index: 10.0.0.0 + i (16.7M before it wraps).
fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000u32.wrapping_add(i as u32)))
}

/// Fails once for each of `n` distinct (user, address); returns the rate per second.
fn fill(r: &Regulator, n: usize, tag: &str) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let _ = r.record_failure(&format!("{tag}{i}"), addr(i));
        if (i + 1) % 100_000 == 0 && i + 1 < n {
            println!(
                "  record_failure {:>9}: {:>6.1} s  tracked {}  RSS {:.1} MiB",
                i + 1,
                start.elapsed().as_secs_f64(),
                r.tracked_keys(),
                Rss::now().mib()
            );
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn limiter_part(n: usize, report: &mut Report) -> Value {
    println!("== limiter: {n} record_failure calls, distinct users and addresses ==");
    let cfg = RegulationConfig {
        max_keys: 2_000_000, // per table; above n, so no key goes to the shared overflow budget
        ..Default::default()
    };
    // Dropping an entry needs: its sliding window empty (2 x window: 20 minutes for pairs and
    // addresses, 2 hours for users), no ban in force, and its ban level forgotten (max_ban after
    // the last failure or ban; no bans here: one failure per key is under every limit). Known
    // addresses (30 days) only come from successes, of which there are none.
    let clock = ManualClock::new(1_700_000_000_000);
    let r = Regulator::new(cfg, clock.clone());
    // Warm-up: a few keys, then cleaned away, so the baseline holds the empty tables' shards.
    fill(&r, 1000, "warm");
    clock.advance(Duration::from_secs(3 * 3600));
    r.cleanup();
    trim();
    let base = Rss::now();
    report.row(
        "limiter: baseline (empty, after warm-up)",
        0,
        base,
        None,
        "",
    );

    // As in the gateway: a worker thread records the failures (its heap owns the entries) and
    // keeps handling small allocations, like requests; this thread, like the housekeeping one,
    // cleans up and asks the allocator to return what was freed.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let (r, stop) = (&r, &stop);
        scope.spawn(move || {
            let rate = fill(r, n, "user");
            done_tx.send(rate).expect("main thread waits");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::black_box(vec![0u8; 512]);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let rate = done_rx.recv().expect("worker fills");
        let out = limiter_cleanup(r, &clock, n, rate, base, report);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}

/// The first fill's figures, clean-up, the allocator's return of memory, and a second fill.
fn limiter_cleanup(
    r: &Regulator,
    clock: &ManualClock,
    n: usize,
    rate: f64,
    base: Rss,
    report: &mut Report,
) -> Value {
    let full = Rss::now();
    let tracked = r.tracked_keys();
    let per = |rss: Rss, count: usize| {
        let d = |now: u64, then: u64| (now as f64 - then as f64) / count.max(1) as f64;
        (d(rss.total, base.total), d(rss.anon, base.anon))
    };
    let (per_call, per_call_heap) = per(full, n);
    let (per_key, per_key_heap) = per(full, tracked);
    println!(
        "  {n} calls at {rate:.0}/s; tracked keys {tracked}; {per_call:.0} B/call, {per_key:.0} B/key"
    );
    report.row(
        "limiter: after record_failure (per call)",
        n,
        full,
        Some(base),
        "pair + address + user",
    );
    report.row(
        "limiter: after record_failure (per table entry)",
        tracked,
        full,
        Some(base),
        "tracked_keys()",
    );

    // One second short of the user window's end: nothing may go yet.
    clock.advance(Duration::from_secs(2 * 3600 - 1));
    r.cleanup();
    let early = r.tracked_keys();
    report.row(
        "limiter: cleanup at +2h-1s (user windows live)",
        early,
        Rss::now(),
        None,
        "pairs, addresses dropped",
    );
    clock.advance(Duration::from_secs(60));
    r.cleanup();
    let after = Rss::now();
    let left = r.tracked_keys();
    report.row("limiter: cleanup at +2h+59s", left, after, None, "at once");
    std::thread::sleep(Duration::from_secs(1));
    report.row(
        "limiter: 1 s later, nothing asked of the allocator",
        left,
        Rss::now(),
        None,
        "the worker still running",
    );
    trim();
    let trimmed = Rss::now();
    report.row(
        "limiter: after return_free_memory()",
        left,
        trimmed,
        None,
        "as the gateway's housekeeping does",
    );
    println!(
        "  cleanup: tracked {tracked} -> {early} at +2h-1s -> {left}; RSS {:.1} -> {:.1} MiB, \
         {:.1} MiB after trim (baseline {:.1})",
        full.mib(),
        after.mib(),
        trimmed.mib(),
        base.mib()
    );

    // A second fill of the same size: memory reused, not grown.
    let refill_rate = fill(r, n, "again");
    let refull = Rss::now();
    report.row(
        "limiter: refilled with new keys (per call)",
        n,
        refull,
        Some(base),
        "should match the first fill",
    );
    clock.advance(Duration::from_secs(3 * 3600));
    r.cleanup();
    trim();
    let reclean = Rss::now();
    report.row(
        "limiter: cleaned again, trimmed",
        r.tracked_keys(),
        reclean,
        None,
        "",
    );

    json!({
        "limiter_failures": n,
        "limiter_record_failure_per_sec": rate,
        "limiter_keys": tracked,
        "limiter_tables": "one entry each in user+address, address, user per new (user, address)",
        "limiter_baseline_rss_mib": base.mib(),
        "limiter_rss_full_mib": full.mib(),
        "bytes_per_limiter_key": per_key,
        "bytes_per_limiter_key_heap": per_key_heap,
        "bytes_per_record_failure": per_call,
        "bytes_per_record_failure_heap": per_call_heap,
        "limiter_keys_after_cleanup_before_user_window": early,
        "limiter_keys_after_cleanup": left,
        "limiter_rss_after_cleanup_mib": after.mib(),
        "limiter_rss_after_cleanup_trimmed_mib": trimmed.mib(),
        "limiter_refill_per_sec": refill_rate,
        "limiter_rss_refilled_mib": refull.mib(),
        "limiter_rss_recleaned_trimmed_mib": reclean.mib(),
    })
}

fn merge(out: &mut serde_json::Map<String, Value>, part: Value) {
    if let Value::Object(fields) = part {
        out.extend(fields);
    }
}

fn merge_into(out: &mut Value, part: Value) {
    if let Value::Object(out) = out {
        merge(out, part);
    }
}

fn main() -> anyhow::Result<()> {
    // Criterion-style arguments (`--bench`) are passed by cargo; there is nothing to parse.
    let n = env_count("STEPGATE_MEM_N", DEFAULT_N);
    let n_sessions = env_count("STEPGATE_MEM_SESSIONS", n);
    let n_keys = env_count("STEPGATE_MEM_KEYS", n);
    let budget = Duration::from_secs(env_count(
        "STEPGATE_MEM_BUDGET_SECS",
        DEFAULT_BUDGET_SECS as usize,
    ) as u64);
    let mut report = Report { rows: Vec::new() };
    let mut out = serde_json::Map::new();
    out.insert(
        "rss_source".into(),
        json!("/proc/self/status VmRSS, RssAnon"),
    );
    if n_sessions > 0 {
        merge(&mut out, session_part(n_sessions, budget, &mut report)?);
    }
    // The session part's memory is gone before the limiter's baseline.
    trim();
    if n_keys > 0 {
        merge(&mut out, limiter_part(n_keys, &mut report));
    }
    report.print();

    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")),
        PathBuf::from,
    );
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("memory.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Object(out))? + "\n",
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}
