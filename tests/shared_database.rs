//! Two gateways on one PostgreSQL database (and one data directory for their keys): a session
//! made on one is good on the other at once, and a sign-out on one ends it on the other; `stepgate
//! admin migrate` moves a gateway on SQLite to such a database with everything it held.
//! Skips with a printed reason when no PostgreSQL server is reachable outside CI.

mod common;

use std::time::{Duration, Instant};

use common::db::Postgres;
use common::two_factor::ALICE;
use common::*;
use stepgate::app::Stop;

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

/// Approval across gateways: the phone is an approver through A, the PC asks through B, the
/// phone approves through A, and B lets the PC in, because the request lives in the store.
#[test]
fn a_sign_in_asked_on_one_gateway_is_approved_through_the_other() {
    use common::two_factor::{full_enrolment, ALICE};
    use stepgate::clock::ManualClock;
    let Some(db) = Postgres::create("shared_approval") else {
        return;
    };
    let up = Upstream::start("app");
    let keys = tempfile::tempdir().unwrap();
    let toml = signin_config(up.addr, &format!("[store]\nurl = \"{}\"\n", db.url))
        .replace("{data}", &keys.path().join("data").display().to_string());
    let clock = ManualClock::now();
    let a = Gateway::start_with_clock(&toml, clock.clone());
    let b = Gateway::start_with_clock(&toml, clock.clone());

    let mut phone = Browser::new(a.addr);
    full_enrolment(&mut phone, &a, &clock, ALICE);
    let devices = phone.get("/_stepgate/devices");
    assert_eq!(phone.submit(&devices, "/devices/add", &[]).status, 303);

    let mut pc = Browser::new(b.addr);
    assert_eq!(pc.sign_in(ALICE.0, ALICE.1, "/app").status, 303);
    let challenge = pc.get("/_stepgate/2fa?rd=%2Fapp&method=approve");
    let asked = pc.submit(&challenge, "/2fa/send", &[]);
    assert_eq!(asked.status, 200, "{asked:?}");
    let start = asked.body.find("class=\"number\"").expect("a number");
    let rest = &asked.body[start..];
    let number = rest[rest.find('>').unwrap() + 1..rest.find("</p>").unwrap()].trim();

    let page = phone.get("/_stepgate/approvals");
    let approved = phone.submit(
        &page,
        "/_stepgate/approvals",
        &[("number", number), ("decision", "approve")],
    );
    assert_eq!(approved.status, 303, "{approved:?}");
    let passed = pc.submit(&asked, "/_stepgate/2fa", &[]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(pc.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,mca"));
}

/// `stepgate admin migrate`: a gateway on the embedded store, with a two-factor session, an
/// authenticator, a ban and an audit trail, moves to PostgreSQL; the new gateway on the same
/// data directory keeps all of it, and a second copy into the same database is refused.
#[test]
fn a_sqlite_gateway_moves_to_postgres_and_keeps_everything() {
    use common::two_factor::{full_enrolment, BOB};
    use stepgate::clock::{Clock, ManualClock};
    let Some(db) = Postgres::create("migrate") else {
        return;
    };
    let up = Upstream::start("app");
    let keys = tempfile::tempdir().unwrap();
    let data = keys.path().join("data").display().to_string();
    let clock = ManualClock::now();
    let on_sqlite = Gateway::start_with_clock(
        &signin_config(up.addr, "").replace("{data}", &data),
        clock.clone(),
    );
    let mut alice = Browser::new(on_sqlite.addr);
    let key = full_enrolment(&mut alice, &on_sqlite, &clock, ALICE);
    assert_eq!(alice.get("/app").status, 200);
    for _ in 0..5 {
        let wrong = Browser::new(on_sqlite.addr).sign_in(BOB.0, "wrong-password", "/");
        assert_eq!(wrong.status, 401);
    }
    let config = keys.path().join("sqlite.toml");
    std::fs::copy(on_sqlite.dir.path().join("stepgate.toml"), &config).unwrap();
    on_sqlite.stop(Stop::Graceful);

    let migrate = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(["admin", "--config"])
            .arg(&config)
            .arg("migrate")
            .args(args)
            .output()
            .expect("stepgate admin runs")
    };
    let url_file = keys.path().join("db.url");
    std::fs::write(&url_file, format!("{}\n", db.url)).unwrap();
    let out = migrate(&["--to-file", url_file.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for table in ["accounts", "credentials", "sessions", "bans", "audit"] {
        assert!(
            report["rows"][table].as_u64().unwrap() > 0,
            "nothing in {table}: {report}"
        );
    }

    // Into a database that holds stepgate data already: refused, and nothing doubled.
    let again = migrate(&["--to", &db.url]);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already holds stepgate data"), "{said}");

    let on_postgres = Gateway::start_with_clock(
        &signin_config(up.addr, &format!("[store]\nurl = \"{}\"\n", db.url))
            .replace("{data}", &data),
        clock.clone(),
    );
    // The two-factor session goes on, on the new store.
    let mut same = Browser::new(on_postgres.addr);
    same.cookies = alice.cookies.clone();
    assert_eq!(same.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-level"), Some("2fa"));
    // The authenticator (sealed with the data directory's key) still proves a new sign-in.
    let mut fresh = Browser::new(on_postgres.addr);
    assert_eq!(fresh.sign_in(ALICE.0, ALICE.1, "/app").status, 303);
    let challenge = fresh.get("/_stepgate/2fa?rd=%2Fapp");
    clock.advance(Duration::from_secs(30));
    let code = totp_code(&key, clock.now_secs());
    assert_eq!(
        fresh.submit(&challenge, "/2fa", &[("code", &code)]).status,
        303
    );
    // Bob's ban and Alice's history came along.
    let bans = common::two_factor::admin(&on_postgres, &["bans", "list", "--json"]);
    assert!(bans.contains("bob/127.0.0.1"), "{bans}");
    assert_eq!(
        Browser::new(on_postgres.addr)
            .sign_in(BOB.0, BOB.1, "/")
            .status,
        401,
        "the ban holds on the new store"
    );
    let audit = common::two_factor::admin(&on_postgres, &["audit", "alice", "--json"]);
    assert!(audit.contains("factor_added"), "{audit}");
}
