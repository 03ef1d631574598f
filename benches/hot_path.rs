//! Criterion benchmarks of per-request pieces: target and host normalisation, and rule matching
//! with 10 and 1,000 rules. Run with `cargo bench --bench hot_path`.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use stepgate::access::{AccessRules, AuthLevel, Policy, Request, RuleSpec};
use stepgate::assertion::{AssertionCache, AssertionConfig, Signer};
use stepgate::auth::Identity;
use stepgate::config::IdentityHeaders;
use stepgate::hygiene::host::normalize_host;
use stepgate::hygiene::target::normalize_target;
use stepgate::session::store::SqliteStore;
use stepgate::session::{cookie, SessionConfig, Sessions};
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
        })
        .collect();
    specs.push(RuleSpec {
        hosts: vec![],
        path: None,
        methods: vec![],
        networks: vec![],
        subjects: vec![],
        policy: Policy::TwoFactor,
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
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let sessions = Sessions::open(store, SessionConfig::default(), stepgate::clock::system())
        .expect("sessions");
    let ids: Vec<String> = (0..10_000)
        .map(|i| {
            sessions
                .create(
                    &format!("user{i}"),
                    AuthLevel::OneFactor,
                    vec!["pwd".into()],
                    None,
                )
                .expect("create")
                .0
        })
        .collect();
    let mut headers = http::HeaderMap::new();
    let value = format!(
        "_ga=GA1.2.3; theme=dark; stepgate_session={}; lang=ko",
        ids[5_000]
    );
    headers.insert(http::header::COOKIE, value.parse().expect("header"));
    c.bench_function("session_from_cookie_header", |b| {
        b.iter(|| {
            let id = cookie::read(black_box(&headers), cookie::PLAIN).expect("cookie");
            sessions.lookup(id).expect("live")
        })
    });
}

/// Identity headers and the assertion onto an upstream request: with the signed assertion
/// reused (the steady state) and freshly signed (once per session, app and ~4 minutes).
fn bench_identity(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = stepgate::clock::system();
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let sessions =
        Sessions::open(store, SessionConfig::default(), clock.clone()).expect("sessions");
    let (id, _) = sessions
        .create(
            "bob",
            AuthLevel::TwoFactor,
            vec!["pwd".into(), "otp".into()],
            None,
        )
        .expect("create");
    let (key, session) = sessions.lookup(&id).expect("live");
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
    };
    let signer =
        Signer::open(dir.path(), AssertionConfig::default(), clock.clone()).expect("signer");
    let cache = AssertionCache::new(clock);
    let names = IdentityHeaders::default();
    let facts = who.facts();
    let base = pingora::http::RequestHeader::build("GET", b"/app/page", None).expect("request");
    c.bench_function("identity_headers_reused_assertion", |b| {
        b.iter(|| {
            let mut req = base.clone();
            let jwt = cache
                .get_or_sign(&who.key, 0, || signer.sign(&facts, "app"))
                .expect("sign");
            stepgate::proxy::identity::inject(&mut req, &names, &who, &jwt).expect("inject");
            req
        })
    });
    c.bench_function("identity_headers_fresh_assertion", |b| {
        b.iter(|| {
            let mut req = base.clone();
            let (jwt, _) = signer.sign(&facts, "app").expect("sign");
            stepgate::proxy::identity::inject(&mut req, &names, &who, &jwt).expect("inject");
            req
        })
    });
}

criterion_group!(
    benches,
    bench_rules,
    bench_normalise,
    bench_session,
    bench_identity
);
criterion_main!(benches);
