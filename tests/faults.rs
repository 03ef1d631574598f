//! Faults: the store going away under a running gateway. Every request that needs a decision
//! from it fails closed (503, never proxied, never a sign-in page that pretends nothing is
//! wrong), routes that need nothing keep working, and service comes back by itself.
//! Skips with a printed reason when no PostgreSQL server is reachable outside CI.

mod common;

use std::time::{Duration, Instant};

use common::db::Postgres;
use common::two_factor::ALICE;
use common::*;

#[test]
fn postgresql_down_fails_closed_and_the_gateway_recovers_by_itself() {
    let Some(db) = Postgres::create("faults_down") else {
        return;
    };
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(
        up.addr,
        &format!("[store]\nurl = \"{}\"\n", db.url),
    ));
    let mut alice = Browser::new(gw.addr);
    assert_eq!(alice.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    assert_eq!(alice.get("/1fa/x").status, 200);
    let before = up.requests().len();

    db.cut_off(true);
    // Needs nothing from the store: still served.
    assert_eq!(
        status(&get(gw.addr, "/public/x", &["Host: 127.0.0.1"])),
        200
    );
    // A session the gateway has not seen must be read from the store: 503, not the app, and
    // not a sign-in page either.
    let mut stranger = Browser::new(gw.addr);
    stranger
        .cookies
        .push(("stepgate_session".into(), "A".repeat(43)));
    let refused = stranger.get("/1fa/x");
    assert_eq!(refused.status, 503, "{refused:?}");
    // A sign-in needs the account: 503 (the password is not even checked).
    let mut b = Browser::new(gw.addr);
    let signing = b.sign_in(ALICE.0, ALICE.1, "/");
    assert_eq!(signing.status, 503, "{signing:?}");
    assert!(b.cookie("stepgate_session").is_none());
    assert_eq!(
        up.requests().len(),
        before + 1,
        "only the bypass route reached the app"
    );

    db.cut_off(false);
    // Back by itself: the pool reconnects, no restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut b = Browser::new(gw.addr);
        if b.sign_in(ALICE.0, ALICE.1, "/").status == 303 {
            assert_eq!(b.get("/1fa/x").status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not recover within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
