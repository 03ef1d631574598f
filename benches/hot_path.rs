//! Criterion benchmarks of per-request pieces: target and host normalisation, and rule matching
//! with 10 and 1,000 rules. Run with `cargo bench --bench hot_path`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use stepgate::access::{AccessRules, Policy, Request, RuleSpec};
use stepgate::hygiene::host::normalize_host;
use stepgate::hygiene::target::normalize_target;

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

criterion_group!(benches, bench_rules, bench_normalise);
criterion_main!(benches);
