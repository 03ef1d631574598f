//! `[metrics]`: the Prometheus page on its own listener, scraped after a scripted journey, shows
//! what happened: requests by app, decision and status, upstream time, sign-ins, second-factor
//! results by method, bans, messages sent, store calls; and never a user name or an address.
//! One test: the recorder is global to the process.

mod common;

use std::time::Duration;

use common::two_factor::{full_enrolment, start, ALICE, BOB};
use common::*;
use stepgate::clock::Clock;

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_metrics_page_counts_a_journey() {
    let port = free_port();
    let (up, gw, clock) = start(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    // Routes: a bypass (proxied), a sign-in redirect, a refusal.
    assert_eq!(status(&get(gw.addr, "/public/x", &[])), 200);
    assert_eq!(status(&get(gw.addr, "/public/y", &[])), 200);
    assert_eq!(status(&get(gw.addr, "/deny/x", &[])), 403);
    // Two wrong passwords, then alice sets up her authenticator (an emailed code on the way).
    for _ in 0..2 {
        let r = Browser::new(gw.addr).sign_in(ALICE.0, "not-her-password", "/");
        assert_eq!(r.status, 401);
    }
    let mut setup = Browser::new(gw.addr);
    let key = full_enrolment(&mut setup, &gw, &clock, ALICE);
    // A new browser: one wrong code, then the right one.
    let mut b = Browser::new(gw.addr);
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/app").status, 303);
    let challenge = b.get("/_stepgate/2fa?rd=%2Fapp");
    assert_eq!(
        b.submit(&challenge, "/2fa", &[("code", "000000")]).status,
        401
    );
    clock.advance(Duration::from_secs(30));
    let right = totp_code(&key, clock.now_secs());
    assert_eq!(
        b.submit(&challenge, "/2fa", &[("code", &right)]).status,
        303
    );
    assert_eq!(b.get("/app").status, 200);
    // Five wrong passwords for bob: a ban of the pair.
    for _ in 0..5 {
        Browser::new(gw.addr).sign_in(BOB.0, "wrong", "/");
    }

    let page = Response::parse(&get(metrics, "/metrics", &[]));
    assert_eq!(page.status, 200, "{page:?}");
    let page = page.body;
    let at_least = |name: &str, labels: &[(&str, &str)], want: f64| {
        let got = sample(&page, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{page}"));
        assert!(got >= want, "{name} {labels:?}: {got} < {want}\n{page}");
    };
    let exactly = |name: &str, labels: &[(&str, &str)], want: f64| {
        assert_eq!(
            sample(&page, name, labels),
            Some(want),
            "{name} {labels:?}\n{page}"
        );
    };
    // Two bypass requests and the signed-in one reached the app.
    at_least(
        "stepgate_requests_total",
        &[("app", "app"), ("decision", "allow"), ("status", "200")],
        3.0,
    );
    exactly(
        "stepgate_requests_total",
        &[("decision", "deny"), ("status", "403")],
        1.0,
    );
    at_least("stepgate_upstream_seconds_count", &[("app", "app")], 3.0);
    exactly("stepgate_sign_ins_total", &[("result", "failure")], 7.0);
    exactly("stepgate_sign_ins_total", &[("result", "success")], 2.0);
    exactly(
        "stepgate_second_factor_total",
        &[("method", "totp"), ("result", "wrong")],
        1.0,
    );
    exactly(
        "stepgate_second_factor_total",
        &[("method", "totp"), ("result", "passed")],
        1.0,
    );
    exactly("stepgate_bans_total", &[("scope", "pair")], 1.0);
    at_least(
        "stepgate_notify_total",
        &[("channel", "email"), ("result", "sent")],
        1.0,
    );
    at_least(
        "stepgate_store_seconds_count",
        &[("backend", "sqlite")],
        1.0,
    );
    assert!(
        sample(&page, "stepgate_sessions_live", &[]).is_some(),
        "{page}"
    );
    // Low cardinality: no user, no address, no path in any label.
    for never in ["alice", "bob", "127.0.0.1", "/public"] {
        assert!(!page.contains(never), "{never} in:\n{page}");
    }
    drop(up);
}
