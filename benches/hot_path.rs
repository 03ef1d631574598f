//! Criterion benchmarks of per-request pieces: target and host normalisation, rule matching
//! with 10 and 1,000 rules, session lookup, identity headers, and the failure limiter's check
//! from several threads at once. Run with `cargo bench --bench hot_path`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt;
use http::Method;
use stepgate::access::{AccessRules, Policy, Request, RuleSpec};
use stepgate::amr::{Amr, Method as AuthMethod};
use stepgate::assertion::{AssertionCache, AssertionConfig, Signer};
use stepgate::auth::Identity;
use stepgate::config::IdentityHeaders;
use stepgate::hygiene::host::normalize_host;
use stepgate::hygiene::target::normalize_target;
use stepgate::identity::{self, IdentityCache};
use stepgate::proxy::forward;
use stepgate::regulation::{RegulationConfig, Regulator};
use stepgate::session::{cookie, SessionConfig, Sessions};
use stepgate::store::{run_blocking, Store, StoreConfig};
use stepgate::users::{FileDirectory, UserDirectory};

fn rules(n: usize) -> AccessRules {
    let mut specs: Vec<RuleSpec> = (0..n - 1)
        .map(|i| RuleSpec {
            hosts: vec![],
            path: Some(format!("^/app{i}/")),
            methods: vec![],
            networks: vec![],
            subjects: vec![],
            policy: Policy::OneFactor,
            trusted_browsers: true,
            client_certificate: false,
        })
        .collect();
    specs.push(RuleSpec {
        hosts: vec![],
        path: None,
        methods: vec![],
        networks: vec![],
        subjects: vec![],
        policy: Policy::TwoFactor,
        trusted_browsers: true,
        client_certificate: false,
    });
    AccessRules::compile(specs).expect("rules compile")
}

fn bench_rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("rule_match");
    let get = Method::GET;
    for n in [10, 1000] {
        let r = rules(n);
        let req = Request {
            host: "app.example.com",
            path: "/nothing/matches/until/the/last",
            method: &get,
            client: [10, 0, 0, 1].into(),
        };
        group.bench_with_input(BenchmarkId::new("last_rule", n), &r, |b, r| {
            b.iter(|| r.first_match(black_box(&req)))
        });
    }
    group.finish();
}

fn bench_normalise(c: &mut Criterion) {
    c.bench_function("normalize_target", |b| {
        b.iter(|| normalize_target(black_box(b"/public/a/./b/../c//d%7e?x=1&y=%2F")))
    });
    c.bench_function("normalize_host", |b| {
        b.iter(|| normalize_host(black_box(&[b"App.Example.COM.:443".as_slice()]), true))
    });
}

/// Cookie header -> live session, among 10,000 sessions.
fn bench_session(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&StoreConfig::default(), dir.path()).expect("store");
    let clock = stepgate::clock::system();
    let sessions = run_blocking(Sessions::open(
        store,
        SessionConfig::default(),
        clock,
        vec![],
    ))
    .expect("sessions");
    let ids: Vec<String> = run_blocking(async {
        let mut ids = Vec::new();
        for i in 0..10_000 {
            let user = format!("user{i}");
            let created = sessions.create(&user, Amr::PASSWORD, None).await;
            ids.push(created.expect("create").0);
        }
        ids
    });
    let mut headers = http::HeaderMap::new();
    let value = format!(
        "_ga=GA1.2.3; theme=dark; stepgate_session={}; lang=ko",
        ids[5_000]
    );
    headers.insert(http::header::COOKIE, value.parse().expect("header"));
    c.bench_function("session_from_cookie_header", |b| {
        b.iter(|| {
            let id = cookie::read(black_box(&headers), cookie::PLAIN).expect("cookie");
            // A cache hit completes without waiting on anything.
            let found = sessions
                .lookup(id)
                .now_or_never()
                .expect("a cache hit is immediate");
            found.expect("no store fault").expect("live")
        })
    });
}

/// Identity headers and the assertion onto an upstream request: with the signed assertion
/// reused (the steady state) and freshly signed (once per session, app and ~4 minutes).
fn bench_identity(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = stepgate::clock::system();
    let store = Store::open(&StoreConfig::default(), dir.path()).expect("store");
    let sessions = run_blocking(Sessions::open(
        store,
        SessionConfig::default(),
        clock.clone(),
        vec![],
    ))
    .expect("sessions");
    let amr = Amr::PASSWORD.with(AuthMethod::Otp);
    let (key, session) = run_blocking(async {
        let (id, _) = sessions.create("bob", amr, None).await.expect("create");
        sessions.lookup(&id).await.expect("store").expect("live")
    });
    let users = FileDirectory::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/quickstart-users.toml"
    )))
    .expect("users");
    let who = Identity {
        key,
        session,
        user: users.get("bob").expect("bob"),
        second_factor: true,
        certificate: None,
    };
    let signer =
        Signer::open(dir.path(), AssertionConfig::default(), clock.clone()).expect("signer");
    let cache: IdentityCache = AssertionCache::new(clock);
    let names = IdentityHeaders::default();
    // The headers of a typical browser request, as the upstream request starts out.
    let mut base = http::HeaderMap::new();
    for (name, value) in [
        ("host", "app.example"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "ko-KR,ko;q=0.9,en;q=0.8"),
    ] {
        base.insert(name, http::HeaderValue::from_static(value));
    }
    // The request path: the cached headers of (session, app), set on the upstream request.
    c.bench_function("identity_headers_reused_assertion", |b| {
        b.iter(|| {
            let mut req = base.clone();
            let ready = identity::prepared(&cache, &signer, &names, &who, (0, "app"));
            forward::set_all(&mut req, ready.expect("sign").headers()).expect("set");
            req
        })
    });
    // A miss: signing the assertion and building the header values, then setting them.
    c.bench_function("identity_headers_fresh_assertion", |b| {
        b.iter(|| {
            let mut req = base.clone();
            cache.forget_session(&who.key);
            let ready = identity::prepared(&cache, &signer, &names, &who, (0, "app"));
            forward::set_all(&mut req, ready.expect("sign").headers()).expect("set");
            req
        })
    });
}

/// Keys the contention benchmarks pre-fill the limiter with (one failure each).
const PREFILLED: usize = 100_000;

/// Which (user, address) each thread asks about.
#[derive(Debug, Clone, Copy)]
enum Keys {
    /// Each thread cycles through its own slice of the pre-filled keys: entries spread over the
    /// maps' shards, read-locked by one thread at a time for the most part.
    Distinct,
    /// Every thread asks about one pre-filled (user, address): the same shard of each table.
    Same,
    /// Keys with no entry (the common case: most sign-ins follow no failure). A miss also reads
    /// each table's size (an atomic, not a lock on every shard).
    Untracked,
    /// The reference: `Distinct`'s keys, but each thread asks its own limiter (pre-filled the
    /// same way), so nothing is shared. What this machine's cores give without contention;
    /// compare the other rows with it rather than with a perfect 1/threads.
    Private,
}

fn keys(range: std::ops::Range<usize>) -> Vec<(String, IpAddr)> {
    range
        .map(|i| {
            let addr = Ipv4Addr::from(0x0A00_0000u32 + i as u32);
            (format!("user{i}"), IpAddr::V4(addr))
        })
        .collect()
}

/// Runs `op` `iters` times on each of `threads` threads at once, cycling through that thread's
/// keys (`op` gets the thread's index), and returns the wall time from the moment all threads
/// are released (a barrier, so thread start-up is not timed) to the moment the last one
/// finishes.
///
/// Criterion divides the returned time by `iters`, so the figure it reports is the wall time
/// per operation *as each thread sees it* while `threads` threads run together: flat across
/// thread counts means perfect scaling, growing means contention (or, past the machine's cores,
/// time-slicing). The group's `Throughput::Elements(threads)` makes criterion also report the
/// aggregate rate, `threads` operations per reported time.
fn concurrent<F>(threads: usize, iters: u64, key_sets: &[Vec<(String, IpAddr)>], op: F) -> Duration
where
    F: Fn(usize, &str, IpAddr) + Sync,
{
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = key_sets[..threads]
            .iter()
            .enumerate()
            .map(|(thread, mine)| {
                let (barrier, op) = (&barrier, &op);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for (user, addr) in mine.iter().cycle().take(iters as usize) {
                        op(thread, user, *addr);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread"))
            .collect()
    });
    let first = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("one thread at least");
    let last = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("one thread at least");
    last - first
}

/// A limiter with one failure recorded for each of the first `PREFILLED` keys. The system
/// clock, as in the gateway.
fn prefilled() -> Regulator {
    let limiter = Regulator::new(RegulationConfig::default(), stepgate::clock::system());
    for (user, addr) in keys(0..PREFILLED) {
        let _ = limiter.record_failure(&user, addr);
    }
    limiter
}

/// `Regulator::check` (and a failed sign-in: `check` then `record_failure`) from 1, 2 and 4
/// threads on one limiter pre-filled with 100,000 keys, and the same on private limiters for
/// reference. With more threads than cores the figures include time-slicing.
fn bench_regulation(c: &mut Criterion) {
    let thread_counts = [1usize, 2, 4];
    let max_threads = thread_counts.iter().copied().max().unwrap_or(1);
    let limiter = prefilled();
    let private: Vec<Regulator> = (0..max_threads).map(|_| prefilled()).collect();
    let per_thread = PREFILLED / max_threads;
    let sets = |which: Keys| -> Vec<Vec<(String, IpAddr)>> {
        (0..max_threads)
            .map(|t| match which {
                Keys::Distinct | Keys::Private => keys(t * per_thread..(t + 1) * per_thread),
                Keys::Same => keys(7..8),
                Keys::Untracked => {
                    let from = PREFILLED * 2 + t * per_thread;
                    keys(from..from + per_thread)
                }
            })
            .collect()
    };

    let mut group = c.benchmark_group("regulation_check");
    for which in [Keys::Private, Keys::Distinct, Keys::Same, Keys::Untracked] {
        let key_sets = sets(which);
        let limiter_of = |thread: usize| match which {
            Keys::Private => &private[thread],
            _ => &limiter,
        };
        for &threads in &thread_counts {
            group.throughput(Throughput::Elements(threads as u64));
            let id = BenchmarkId::new(format!("{which:?}").to_lowercase(), threads);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    concurrent(threads, iters, &key_sets, |thread, user, addr| {
                        let limiter = limiter_of(thread);
                        let _ = black_box(limiter.check(black_box(user), black_box(addr)));
                    })
                })
            });
        }
    }
    group.finish();

    // A failed sign-in as the portal does it. `Same` bans the pair after five failures (and
    // keeps it banned: failures during a ban count but do not lengthen it); the ban changes no
    // work done here, only the verdict.
    let mut group = c.benchmark_group("regulation_failed_sign_in");
    for which in [Keys::Private, Keys::Distinct, Keys::Same] {
        let key_sets = sets(which);
        let limiter_of = |thread: usize| match which {
            Keys::Private => &private[thread],
            _ => &limiter,
        };
        for &threads in &thread_counts {
            group.throughput(Throughput::Elements(threads as u64));
            let id = BenchmarkId::new(format!("{which:?}").to_lowercase(), threads);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    concurrent(threads, iters, &key_sets, |thread, user, addr| {
                        let limiter = limiter_of(thread);
                        let _ = black_box(limiter.check(black_box(user), black_box(addr)));
                        let _ = black_box(limiter.record_failure(black_box(user), black_box(addr)));
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_rules,
    bench_normalise,
    bench_session,
    bench_identity,
    bench_regulation
);
criterion_main!(benches);
