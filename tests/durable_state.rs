//! What must outlive a restart and how it is kept: bans, the files' modes, and the session
//! cookie a browser sends twice.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::two_factor::ALICE;
use common::*;
use stepgate::clock::ManualClock;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Waits (bounded) until the store holds a ban: bans are written by the gateway's background
/// task right after the request that earned them.
fn wait_for_kept_ban(data: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kept = rusqlite::Connection::open(data.join("stepgate.db"))
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0);
        if kept > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the ban never reached the store");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_ban_survives_a_restart() {
    let up = Upstream::start("app");
    let clock = ManualClock::now();
    let mut gw = Gateway::start_with_clock(
        &signin_config(
            up.addr,
            "[regulation]\nmax_failures = 3\nwindow = \"10m\"\nban = \"5m\"\n",
        ),
        clock.clone(),
    );
    let mut b = Browser::new(gw.addr);
    for _ in 0..3 {
        assert_eq!(b.sign_in(ALICE.0, "wrong", "/").status, 401);
    }
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 401, "banned");
    wait_for_kept_ban(&gw.data_dir());
    gw.restart();
    assert_eq!(
        b.sign_in(ALICE.0, ALICE.1, "/").status,
        401,
        "still banned after the restart"
    );
    clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(
        b.sign_in(ALICE.0, ALICE.1, "/").status,
        303,
        "the ban ends on time"
    );
}

#[test]
fn with_two_session_cookies_the_live_one_is_used() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    let live = b
        .cookie("stepgate_session")
        .expect("session cookie")
        .to_owned();
    // A stale cookie of the same name (say, a domain cookie from before `cookie_domain`
    // changed) is sent first, then the live one: the browser must not loop at sign-in.
    let stale = "A".repeat(43);
    for order in [
        [stale.as_str(), live.as_str()],
        [live.as_str(), stale.as_str()],
    ] {
        let mut two = Browser::new(gw.addr);
        two.extra.push(format!(
            "Cookie: stepgate_session={}; stepgate_session={}",
            order[0], order[1]
        ));
        let r = two.get("/1fa/");
        assert_eq!(r.status, 200, "{order:?}: {r:?}");
        assert_eq!(up.last().header("remote-user"), Some("alice"));
    }
    // Two stale ones: sign in, as before.
    let mut neither = Browser::new(gw.addr);
    neither.extra.push(format!(
        "Cookie: stepgate_session={stale}; stepgate_session={}",
        "B".repeat(43)
    ));
    assert_eq!(neither.get("/1fa/").status, 302);
}

#[test]
fn the_data_directory_and_the_database_are_owner_only() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/");
    let data = gw.data_dir();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("stepgate.db")), 0o600);
    for companion in ["stepgate.db-wal", "stepgate.db-shm"] {
        if data.join(companion).exists() {
            assert_eq!(mode(&data.join(companion)), 0o600, "{companion}");
        }
    }
}

#[test]
fn a_loose_data_directory_from_before_is_tightened() {
    let up = Upstream::start("app");
    let old = tempfile::tempdir().unwrap();
    let data = old.path().join("state");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // An empty file is an empty SQLite database; made world-readable as older releases did.
    std::fs::write(data.join("stepgate.db"), b"").unwrap();
    std::fs::set_permissions(
        data.join("stepgate.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let toml = signin_config(up.addr, "").replace("{data}", &data.display().to_string());
    let _gw = Gateway::start(&toml);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("stepgate.db")), 0o600);
}

#[test]
fn a_setup_begun_before_a_restart_is_finished_after_it() {
    use common::two_factor::*;
    use stepgate::clock::Clock;
    let (_up, mut gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    let sent = b.submit(&setup, "/setup", &[]);
    assert_eq!(sent.status, 200, "{sent:?}");
    let code = last_code_to(&gw, "alice@example.test");

    // The code sent before the restart checks out after it, at the same step.
    gw.restart();
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &code)],
    );
    assert_eq!(proved.status, 200, "{proved:?}");
    assert!(proved.body.contains("name=\"email\""), "{}", proved.body);
    let app_page = b.submit(&proved, "/setup", &[("email", "alice@example.test")]);
    let key = key_on(&app_page);

    // The secret shown before the next restart is the one that turns on after it.
    gw.restart();
    let again = b.get("/_stepgate/setup?rd=%2Fapp");
    assert_eq!(
        key_on(&again),
        key,
        "the same secret, kept (sealed) in the store"
    );
    let done = b.submit(
        &again,
        "/setup",
        &[("code", &totp_code(&key, clock.now_secs()))],
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(recovery_codes_on(&done).len(), 10);
    assert_eq!(b.get("/app").status, 200);
}
