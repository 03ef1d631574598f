//! Two gateways on one PostgreSQL database (and one data directory for their keys): a session
//! made on one is good on the other at once, and a sign-out on one ends it on the other.
//! Skips with a printed reason when no PostgreSQL server is reachable outside CI.

mod common;

use std::time::{Duration, Instant};

use common::db::Postgres;
use common::two_factor::ALICE;
use common::*;

#[test]
fn a_session_is_shared_and_a_sign_out_reaches_the_other_gateway() {
    let Some(db) = Postgres::create("shared_session") else {
        return;
    };
    let up = Upstream::start("app");
    let keys = tempfile::tempdir().unwrap();
    let toml = signin_config(up.addr, &format!("[store]\nurl = \"{}\"\n", db.url))
        .replace("{data}", &keys.path().join("data").display().to_string());
    let a = Gateway::start(&toml);
    let b = Gateway::start(&toml);

    let mut on_a = Browser::new(a.addr);
    assert_eq!(on_a.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    assert_eq!(on_a.get("/1fa/").status, 200);
    // The same browser (cookie), sent to the other gateway: signed in there at once.
    let mut on_b = Browser::new(b.addr);
    on_b.cookies = on_a.cookies.clone();
    assert_eq!(
        on_b.get("/1fa/").status,
        200,
        "a session made on A is good on B"
    );
    assert_eq!(up.last().header("remote-user"), Some("alice"));

    // Signing out on A ends the session on B too (B has it cached; A's NOTIFY evicts it).
    let account = on_a.get("/_stepgate/account");
    assert_eq!(on_a.submit(&account, "/logout", &[]).status, 303);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = on_b.get("/1fa/").status;
        if status == 302 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "B still lets the signed-out session in after 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
