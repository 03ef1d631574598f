//! `stepgate admin` against a real gateway: the real binary on the gateway's config and data
//! directory, with browsers signing in through the real forms (all on loopback).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::two_factor::{admin, start, ALICE, BOB};
use common::*;
use serde_json::Value;
use stepgate::audit::rfc3339;

/// Runs `stepgate admin ARGS` on the gateway's config and expects it to fail with exit status
/// 1; returns its standard error.
fn admin_fails(gw: &Gateway, args: &[&str]) -> String {
    admin_exits(gw, args, 1)
}

/// Runs `stepgate admin ARGS` and expects it to fail with `code` and print nothing on standard
/// output; returns its standard error.
fn admin_exits(gw: &Gateway, args: &[&str], code: i32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["admin", "--config"])
        .arg(gw.dir.path().join("stepgate.toml"))
        .args(args)
        .output()
        .expect("stepgate admin runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?} should fail: {stderr}"
    );
    assert!(out.stdout.is_empty(), "errors go to stderr only: {out:?}");
    stderr
}

/// `stepgate admin ARGS --json`, parsed.
fn admin_json(gw: &Gateway, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let text = admin(gw, &args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{text}"))
}

/// The IDs of `user`'s sessions as `sessions list --json` shows them.
fn session_ids(gw: &Gateway, user: &str) -> Vec<String> {
    admin_json(gw, &["sessions", "list", user])["sessions"]
        .as_array()
        .expect("a list of sessions")
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Signs `who` in with the password and checks the browser reaches a one-factor page.
fn signed_in(gw: &Gateway, who: (&str, &str)) -> Browser {
    let mut b = Browser::new(gw.addr);
    let done = b.sign_in(who.0, who.1, "/1fa/x");
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(b.get("/1fa/x").status, 200);
    b
}

/// Whether the browser's next request goes to sign-in.
fn sent_to_sign_in(b: &mut Browser) -> bool {
    let resp = b.get("/1fa/x");
    resp.status == 302 && location_target(&resp).starts_with("/_stepgate/login")
}

/// The events of `user`'s audit trail, newest first.
fn events(gw: &Gateway, user: &str) -> Vec<String> {
    admin_json(gw, &["audit", user])["events"]
        .as_array()
        .expect("a list of events")
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sessions_are_listed_and_one_ended_by_its_id_is_refused_by_the_gateway() {
    let (_up, gw, clock) = start("");
    assert!(admin(&gw, &["sessions", "list", "alice"]).contains("alice has no sessions"));
    let mut first = signed_in(&gw, ALICE);
    let mut second = signed_in(&gw, ALICE);

    let table = admin(&gw, &["sessions", "list", "Alice"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two sessions:\n{table}");
    for column in [
        "ID",
        "STARTED",
        "LAST SEEN",
        "LEVEL",
        "SAVED SIGN-IN",
        "ADDRESS",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(
        lines[1].contains("  1fa  ") && lines[1].contains("  no"),
        "{table}"
    );

    let doc = admin_json(&gw, &["sessions", "list", "alice"]);
    assert_eq!(doc["user"], "alice");
    let listed = doc["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{doc:#}");
    let s = &listed[0];
    assert_eq!(s["level"], "1fa");
    assert_eq!(s["amr"], "pwd");
    assert_eq!(s["saved"], false);
    assert_eq!(s["needs_check"], false);
    // Where it signed in from is the sign-in's to record (`session::Origin`); its display is
    // checked below with a stored record.
    assert!(s["address"].is_string() && s["browser"].is_string(), "{s}");
    assert!(s["started"].as_str().unwrap().ends_with('Z'), "{s}");
    assert!(s["started_ms"].as_u64().unwrap() > 0);
    let ids = session_ids(&gw, "alice");
    for id in &ids {
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(table.contains(id.as_str()), "{table}");
    }

    // Nothing matches: an ID no session starts with, and text that is no ID at all.
    let other = ["0", "1", "2"]
        .into_iter()
        .find(|d| !ids.iter().any(|id| id.starts_with(d)))
        .expect("two IDs cannot start with three digits");
    let unknown = admin_fails(&gw, &["sessions", "end", "alice", other]);
    assert!(unknown.contains("no session with the ID"), "{unknown}");
    let junk = admin_fails(&gw, &["sessions", "end", "alice", "not-an-id"]);
    assert!(junk.contains("is not a session ID"), "{junk}");
    assert_eq!(session_ids(&gw, "alice").len(), 2, "nothing ended");

    // End the first browser's session (the oldest, listed first) by the start of its ID.
    let said = admin(&gw, &["sessions", "end", "alice", &ids[0][..8]]);
    assert!(
        said.contains(&format!("ended 1 session(s) of alice: {}", ids[0])),
        "{said}"
    );
    assert_eq!(session_ids(&gw, "alice"), vec![ids[1].clone()]);
    // The gateway checks its cached sessions against the store within 30 s.
    clock.advance(Duration::from_secs(31));
    assert!(sent_to_sign_in(&mut first), "the ended session is refused");
    assert_eq!(
        second.get("/1fa/x").status,
        200,
        "the other one still works"
    );

    let ended = admin_json(&gw, &["sessions", "end", "alice", "--all"]);
    assert_eq!(ended["ended"], serde_json::json!([ids[1]]));
    clock.advance(Duration::from_secs(31));
    assert!(sent_to_sign_in(&mut second));
    assert!(admin(&gw, &["sessions", "end", "alice", "--all"]).contains("alice had no sessions"));

    let trail = events(&gw, "alice");
    assert_eq!(
        trail
            .iter()
            .filter(|e| *e == "sessions_ended_by_operator")
            .count(),
        2,
        "{trail:?}"
    );
    assert_eq!(
        trail.iter().filter(|e| *e == "sign_in").count(),
        2,
        "{trail:?}"
    );
    // A saved sign-in that passed the second factor, as the store keeps it.
    // Recent times, whole seconds: the gateway's housekeeping purges expired sessions.
    let store = stepgate::store::Store::open(&Default::default(), &gw.data_dir()).unwrap();
    let now = stepgate::clock::Clock::now_ms(&*clock) / 1000 * 1000;
    let (started, seen) = (now - 120_000, now - 60_000);
    let record = stepgate::store::SessionRecord {
        user: "alice".into(),
        amr: "pwd,otp".into(),
        created_ms: started,
        auth_ms: started,
        last_seen_ms: seen,
        deferred: false,
        persistent: true,
        needs_check: false,
        client: "192.0.2.1".into(),
        agent: "Firefox (Linux)".into(),
        trusted: String::new(),
    };
    stepgate::store::run_blocking(store.sessions().put_session(&[0xab; 32], &record)).unwrap();
    let table = admin(&gw, &["sessions", "list", "alice"]);
    let (started, seen) = (rfc3339(started), rfc3339(seen));
    assert_eq!(
        table.lines().nth(1).unwrap(),
        format!(
            "abababababababab  {started}  {seen}  2fa    yes            192.0.2.1  Firefox (Linux)"
        ),
        "{table}"
    );
    let doc = admin_json(&gw, &["sessions", "list", "alice"]);
    assert_eq!(doc["sessions"][0]["last_seen"], seen.as_str());
    assert_eq!(doc["sessions"][0]["saved"], true);
    assert!(admin(&gw, &["sessions", "end", "alice", "ABAB"]).contains("abababababababab"));

    // ID or --all, not both and not neither (a usage error: exit status 2); an unknown user is
    // refused.
    admin_exits(&gw, &["sessions", "end", "alice"], 2);
    admin_exits(&gw, &["sessions", "end", "alice", "abab", "--all"], 2);
    let typo = admin_fails(&gw, &["sessions", "list", "alise"]);
    assert!(
        typo.contains("no user \"alise\" in the users file"),
        "{typo}"
    );
}

#[test]
fn a_locked_account_loses_its_sessions_until_it_is_unlocked() {
    let (_up, gw, clock) = start("");
    let mut b = signed_in(&gw, ALICE);
    let bob = signed_in(&gw, BOB);
    assert!(admin(&gw, &["status", "alice"]).contains("account: not locked"));

    let said = admin(&gw, &["lock", "alice"]);
    assert!(said.contains("alice locked: 1 session(s) ended"), "{said}");
    let status = admin(&gw, &["status", "alice"]);
    assert!(status.contains("account: locked since 20"), "{status}");
    let again = admin_json(&gw, &["lock", "alice"]);
    assert_eq!(again["changed"], false, "{again:#}");
    assert_eq!(again["locked"], true);
    assert!(session_ids(&gw, "alice").is_empty());
    assert_eq!(session_ids(&gw, "bob").len(), 1, "only alice's account");
    clock.advance(Duration::from_secs(31));
    assert!(sent_to_sign_in(&mut b), "the session ended with the lock");
    // While locked, the right password fails like a wrong one.
    let refused = Browser::new(gw.addr).sign_in(ALICE.0, ALICE.1, "/app");
    assert_eq!(refused.status, 401, "{refused:?}");
    drop(bob);

    let unlocked = admin_json(&gw, &["unlock", "alice"]);
    assert_eq!(unlocked["changed"], true, "{unlocked:#}");
    assert!(admin(&gw, &["status", "alice"]).contains("account: not locked"));
    assert!(admin(&gw, &["unlock", "alice"]).contains("alice was not locked"));
    signed_in(&gw, ALICE);

    // Newest first. (The gateway's events carry its manual clock's time, the operator's the
    // real time, so only the operator's are compared with each other.)
    let trail = events(&gw, "alice");
    let operator: Vec<&String> = trail
        .iter()
        .filter(|e| e.ends_with("_by_operator"))
        .collect();
    assert_eq!(
        operator,
        ["unlocked_by_operator", "locked_by_operator"],
        "one event per change: {trail:?}"
    );
    let doc = admin_json(&gw, &["audit", "alice"]);
    let times: Vec<u64> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{doc:#}");
    let locked = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "locked_by_operator")
        .unwrap();
    assert_eq!(
        locked["detail"],
        "1 session(s) ended, 0 code(s) or link(s) cancelled"
    );
    assert!(locked["at"].as_str().unwrap().ends_with('Z'), "{locked}");
    let table = admin(&gw, &["audit", "alice", "--limit", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two events:\n{table}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("EVENT"),
        "{table}"
    );
    assert!(
        lines[0].contains("DETAIL") && lines[0].contains("FROM"),
        "{table}"
    );
}

#[test]
fn a_ban_is_listed_and_lifted_and_the_running_gateway_follows() {
    let (_up, gw, _clock) = start(
        "[regulation]\nmax_failures = 3\nwindow = \"10m\"\nban = \"5m\"\nform_posts_per_minute = 1000\n",
    );
    assert!(admin(&gw, &["bans", "list"]).contains("no bans in force"));
    let mut b = Browser::new(gw.addr);
    for _ in 0..3 {
        assert_eq!(b.sign_in(ALICE.0, "wrong", "/").status, 401);
    }
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 401, "banned");

    // The gateway writes a new ban to the store a moment after it starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let doc = loop {
        let doc = admin_json(&gw, &["bans", "list"]);
        if !doc["bans"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break doc;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let bans = doc["bans"].as_array().unwrap();
    assert_eq!(bans.len(), 1, "{doc:#}");
    assert_eq!(bans[0]["scope"], "pair");
    assert_eq!(bans[0]["shown"], "alice/127.0.0.1");
    assert_eq!(bans[0]["user"], "alice");
    assert_eq!(bans[0]["address"], "127.0.0.1");
    assert_eq!(bans[0]["level"], 1);
    let table = admin(&gw, &["bans", "list"]);
    assert!(table.starts_with("SCOPE"), "{table}");
    assert!(
        table.contains("alice/127.0.0.1") && table.contains("sign-in of alice from 127.0.0.1"),
        "{table}"
    );

    let wrong = admin_fails(&gw, &["bans", "lift", "pair", "bob/127.0.0.1"]);
    assert!(wrong.contains("nothing was lifted"), "{wrong}");
    let said = admin(&gw, &["bans", "lift", "pair", "alice/127.0.0.1"]);
    assert!(
        said.contains("lifted the pair ban on alice/127.0.0.1"),
        "{said}"
    );
    assert!(admin(&gw, &["bans", "list"]).contains("no bans in force"));
    let twice = admin_fails(&gw, &["bans", "lift", "pair", "alice/127.0.0.1"]);
    assert!(twice.contains("no pair ban"), "{twice}");
    assert!(events(&gw, "alice").contains(&"ban_lifted_by_operator".to_owned()));

    // The running gateway drops the lifted ban at its next housekeeping sweep, which runs every
    // 30 s of real time (not the test's manual clock), so this waits for it: up to three sweeps.
    // While banned, a refused attempt is not counted, so the waiting does not prolong the ban.
    let deadline = Instant::now() + Duration::from_secs(95);
    loop {
        let attempt = b.sign_in(ALICE.0, ALICE.1, "/");
        if attempt.status == 303 {
            break;
        }
        assert_eq!(attempt.status, 401, "{attempt:?}");
        assert!(
            Instant::now() < deadline,
            "the gateway still applies the lifted ban"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn trusted_browsers_are_listed_and_forgotten() {
    let (_up, gw, clock) = start("");
    assert!(admin(&gw, &["trusted", "alice"]).contains("alice has no trusted browsers"));
    assert_eq!(
        admin_json(&gw, &["trusted", "alice"])["trusted"],
        serde_json::json!([])
    );
    // The gateway's portal trusts a browser through `browsers::trust`; the test does the same
    // on the gateway's own store (SQLite in WAL mode, safe to share).
    let store = stepgate::store::Store::open(&Default::default(), &gw.data_dir()).unwrap();
    let place = stepgate::browsers::Place {
        browser: "Firefox (Linux)".into(),
        address: "127.0.0.1".into(),
    };
    let now = stepgate::clock::Clock::now_ms(&*clock);
    let (_, id) = stepgate::store::run_blocking(stepgate::browsers::trust(
        &store,
        "alice",
        &place,
        now,
        now + 30 * 86_400_000,
    ))
    .unwrap();

    let table = admin(&gw, &["trusted", "alice"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains("Firefox (Linux)"),
        "{table}"
    );
    let listed = admin_json(&gw, &["trusted", "alice"]);
    assert_eq!(listed["trusted"][0]["id"], id.as_str(), "{listed:#}");
    assert_eq!(listed["trusted"][0]["first_used_ms"], now);
    assert!(listed["trusted"][0]["expires"].is_string());

    let removed = admin(&gw, &["trusted", "alice", "--remove-all"]);
    assert!(
        removed.contains("forgot 1 trusted browser(s) of alice"),
        "{removed}"
    );
    assert!(admin(&gw, &["trusted", "alice"]).contains("alice has no trusted browsers"));
    assert_eq!(
        events(&gw, "alice"),
        ["trusted_browsers_removed_by_operator"]
    );
}
