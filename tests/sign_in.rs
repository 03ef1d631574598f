//! Sign-in, sessions and sign-out through the real portal forms, with a cookie-keeping client,
//! against a real gateway and a recording upstream.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use common::*;
use stepgate::clock::ManualClock;

const ALICE: (&str, &str) = ("alice", "alice-password-1");

#[test]
fn sign_in_reaches_the_app_with_identity_and_sign_out_ends_the_session() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);

    let first = b.get("/1fa/x?q=1");
    assert_eq!(first.status, 302);
    assert_eq!(
        first.header("location"),
        Some("/_stepgate/login?rd=http%3A%2F%2F127.0.0.1%2F1fa%2Fx%3Fq%3D1")
    );

    let done = b.sign_in(ALICE.0, ALICE.1, "http://127.0.0.1/1fa/x?q=1");
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(done.header("location"), Some("http://127.0.0.1/1fa/x?q=1"));
    let set = done
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("stepgate_session="))
        .expect("session cookie");
    assert!(
        set.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "plain-HTTP listener: no Secure, no prefix: {set}"
    );
    assert_eq!(
        b.cookie("stepgate_session").map(str::len),
        Some(43),
        "256-bit ID in base64url"
    );

    let page = b.get("/1fa/x?q=1");
    assert_eq!(page.status, 200, "{page:?}");
    let seen = up.last();
    assert_eq!(seen.all("remote-user"), vec!["alice"]);
    assert_eq!(seen.header("remote-email"), Some("alice@example.test"));
    assert_eq!(seen.header("remote-groups"), Some("users"));
    assert_eq!(seen.header("remote-auth-level"), Some("1fa"));
    assert_eq!(seen.header("remote-auth-methods"), Some("pwd"));
    assert!(seen
        .header("x-stepgate-assertion")
        .is_some_and(|j| j.split('.').count() == 3));
    assert!(
        seen.header("cookie")
            .is_none_or(|c| !c.contains("stepgate")),
        "gateway cookies reached the app: {seen:?}"
    );

    // Two-factor routes send a user without a second factor to the guide.
    let guide = b.get("/wiki/");
    assert_eq!(guide.status, 302);
    assert!(guide
        .header("location")
        .unwrap()
        .starts_with("/_stepgate/guide?rd="));

    // Sign out through the account page's form.
    let account = b.get("/_stepgate/account");
    assert_eq!(account.status, 200);
    assert!(account.body.contains("alice@example.test"));
    let old = b.cookie("stepgate_session").unwrap().to_owned();
    let out = b.submit(&account, "/logout", &[]);
    assert_eq!(out.status, 303);
    assert_eq!(out.header("clear-site-data"), Some("\"cache\""));
    // The sign-in page it leads to sets the language again (the header cleared its cookie).
    assert_eq!(out.header("location"), Some("/_stepgate/login?lang=en"));
    assert!(out
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("stepgate_session=;") && c.contains("Max-Age=0")));
    assert_eq!(b.get("/1fa/x").status, 302);

    // The old ID is dead on the server, not just forgotten by the browser.
    b.cookies.push(("stepgate_session".into(), old));
    assert_eq!(b.get("/1fa/x").status, 302);
    assert_eq!(up.requests().len(), 1);
}

#[test]
fn client_identity_headers_never_override_the_session() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/");
    b.extra = vec![
        "Remote-User: bob".into(),
        "remote_groups: admins".into(),
        "Connection: Remote-User, Remote-Groups".into(),
    ];
    assert_eq!(b.get("/1fa/").status, 200);
    let seen = up.last();
    assert_eq!(seen.all("remote-user"), vec!["alice"]);
    assert_eq!(seen.all("remote-groups"), vec!["users"]);
    assert!(!seen.headers.iter().any(|(n, _)| n.contains('_')));
}

fn failed_body(resp: &Response, typed: &str) -> String {
    resp.body
        .replace(&format!("value=\"{typed}\""), "value=\"…\"")
}

#[test]
fn every_failure_looks_the_same() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    let page = b.get("/_stepgate/login?rd=%2F");
    let attempts = [
        ("nobody", "whatever-1"),
        ("alice", "wrong-password"),
        ("carol", "carol-password-1"),
        ("ALICE ", "wrong-again"),
    ];
    let answers: Vec<Response> = attempts
        .iter()
        .map(|(u, p)| b.submit(&page, "/login", &[("username", u), ("password", p)]))
        .collect();
    for (a, (typed, _)) in answers.iter().zip(attempts) {
        assert_eq!(a.status, 401, "{typed}");
        assert!(a.set_cookies().is_empty(), "{typed}: {:?}", a.set_cookies());
        assert_eq!(
            failed_body(a, typed),
            failed_body(&answers[0], attempts[0].0),
            "{typed}: the page differs"
        );
    }
    assert!(b.cookie("stepgate_session").is_none());
    assert!(up.requests().is_empty());
}

#[test]
fn user_names_are_normalised() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    let done = b.sign_in("  ＡＬＩＣＥ ", ALICE.1, "/1fa/");
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(b.get("/1fa/").status, 200);
    assert_eq!(up.last().header("remote-user"), Some("alice"));
}

#[test]
fn forms_need_a_valid_csrf_token() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    let page = b.get("/_stepgate/login");
    let no_token = b.submit(
        &page,
        "/login",
        &[("username", ALICE.0), ("password", ALICE.1), ("csrf", "")],
    );
    assert_eq!(no_token.status, 403);
    // A token from another browser's form does not work with this browser's binding.
    let mut other = Browser::new(gw.addr);
    let other_page = other.get("/_stepgate/login");
    let foreign = b.submit(
        &other_page,
        "/login",
        &[("username", ALICE.0), ("password", ALICE.1)],
    );
    assert_eq!(foreign.status, 403);
    assert!(b.cookie("stepgate_session").is_none());
    // Sign-out needs the session's own token.
    b.sign_in(ALICE.0, ALICE.1, "/");
    let out = b.request("POST", "/_stepgate/logout", Some("csrf=forged"));
    assert_eq!(out.status, 403);
    assert_eq!(b.get("/1fa/").status, 200, "still signed in");
}

#[test]
fn a_new_session_id_at_every_sign_in() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    let page = b.get("/_stepgate/login");
    b.submit(
        &page,
        "/login",
        &[("username", ALICE.0), ("password", ALICE.1)],
    );
    let first = b.cookie("stepgate_session").unwrap().to_owned();
    // Signed in, the sign-in page sends the browser on; a form still open in another tab
    // signs in again, and that gets a new ID too.
    assert_eq!(b.get("/_stepgate/login").status, 302);
    b.submit(
        &page,
        "/login",
        &[("username", ALICE.0), ("password", ALICE.1)],
    );
    let second = b.cookie("stepgate_session").unwrap().to_owned();
    assert_ne!(first, second);
    let mut replay = Browser::new(gw.addr);
    replay.cookies.push(("stepgate_session".into(), first));
    assert_eq!(
        replay.get("/1fa/").status,
        302,
        "the replaced ID still worked"
    );
    // An ID the server never issued is not accepted either.
    let mut forged = Browser::new(gw.addr);
    forged
        .cookies
        .push(("stepgate_session".into(), "A".repeat(43)));
    assert_eq!(forged.get("/1fa/").status, 302);
}

#[test]
fn idle_timeout_and_absolute_lifetime_are_enforced_by_the_server() {
    let up = Upstream::start("app");
    let clock = ManualClock::now();
    let gw = Gateway::start_with_clock(
        &signin_config(
            up.addr,
            "[session]\nidle_timeout = \"30m\"\nlifetime = \"2h\"\n",
        ),
        clock.clone(),
    );
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/");
    clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(b.get("/1fa/").status, 200);
    clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(b.get("/1fa/").status, 302, "idle for 31 minutes");

    b.sign_in(ALICE.0, ALICE.1, "/");
    for _ in 0..4 {
        clock.advance(Duration::from_secs(25 * 60));
        assert_eq!(b.get("/1fa/").status, 200);
    }
    clock.advance(Duration::from_secs(25 * 60));
    assert_eq!(
        b.get("/1fa/").status,
        302,
        "past the 2 h lifetime although active"
    );
}

#[test]
fn sessions_survive_a_restart() {
    let up = Upstream::start("app");
    let mut gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/");
    gw.restart();
    assert_eq!(b.get("/1fa/").status, 200);
    assert_eq!(up.last().header("remote-user"), Some("alice"));
}

#[test]
fn repeated_failures_ban_even_the_right_password_until_the_ban_ends() {
    let up = Upstream::start("app");
    let clock = ManualClock::now();
    let gw = Gateway::start_with_clock(
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
    let banned = b.sign_in(ALICE.0, ALICE.1, "/");
    assert_eq!(banned.status, 401, "the right password during a ban");
    let wrong = b.sign_in(ALICE.0, "wrong", "/");
    assert_eq!(
        failed_body(&banned, ALICE.0),
        failed_body(&wrong, ALICE.0),
        "a ban looks like a wrong password"
    );
    assert!(b.cookie("stepgate_session").is_none());
    // Another address is not affected by this pair's ban... (all tests run from 127.0.0.1, so
    // this is covered by the unit tests of `regulation`); here: the ban ends.
    clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 303);
}

#[test]
fn portal_form_posts_are_rate_limited_per_address() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(
        up.addr,
        "[regulation]\nform_posts_per_minute = 3\n",
    ));
    let mut b = Browser::new(gw.addr);
    let page = b.get("/_stepgate/login");
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            b.submit(&page, "/login", &[("username", "x"), ("password", "y")])
                .status
        })
        .collect();
    assert_eq!(&statuses[..3], &[401, 401, 401]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = b.submit(&page, "/login", &[("username", "x"), ("password", "y")]);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(refused.body.contains("Try again in"), "{}", refused.body);
    assert!(
        unescape(&refused.body).contains("/_stepgate/assets/style.css"),
        "branded"
    );
}

#[test]
fn only_safe_redirect_targets_are_followed() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    for (rd, expect) in [
        ("http://app.test/1fa/a?b=c", "http://app.test/1fa/a?b=c"),
        ("/1fa/local", "http://127.0.0.1/1fa/local"),
        ("https://evil.test/", "/"),
        ("//evil.test/x", "/"),
        ("/\\evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("http://app.test@evil.test/", "/"),
    ] {
        let mut b = Browser::new(gw.addr);
        let done = b.sign_in(ALICE.0, ALICE.1, rd);
        assert_eq!(done.header("location"), Some(expect), "rd={rd}");
    }
}

#[test]
fn subject_rules_refuse_users_outside_them() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut alice = Browser::new(gw.addr);
    alice.sign_in(ALICE.0, ALICE.1, "/");
    assert_eq!(alice.get("/admin/").status, 403);
    let mut bob = Browser::new(gw.addr);
    bob.sign_in("bob", "bob-password-1", "/");
    let r = bob.get("/admin/");
    assert_eq!(
        r.status, 302,
        "bob may, but needs two-step verification first"
    );
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/_stepgate/guide?rd="));
    assert!(up.requests().is_empty());
}

#[test]
fn the_sign_in_page_speaks_korean_and_english() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    b.extra = vec!["Accept-Language: ko-KR,ko;q=0.9".into()];
    let ko = b.get("/_stepgate/login");
    assert!(ko.body.contains("로그인") && ko.body.contains("lang=\"ko\""));
    assert_eq!(ko.header("cache-control"), Some("no-store"));
    assert!(ko
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let en = b.get("/_stepgate/login?lang=en");
    assert!(en.body.contains("Sign in") && en.body.contains("lang=\"en\""));
    let failed = b.submit(&ko, "/login", &[("username", "x"), ("password", "y")]);
    assert!(failed
        .body
        .contains("아이디 또는 비밀번호가 올바르지 않거나"));
}

#[test]
fn the_users_file_is_reloaded_when_it_changes() {
    let up = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let original = std::fs::read_to_string(quickstart_users()).unwrap();
    std::fs::write(&users, &original).unwrap();
    let cfg = signin_config(up.addr, "").replace(&quickstart_users(), &users.display().to_string());
    let gw = Gateway::start(&cfg);
    let mut b = Browser::new(gw.addr);
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    assert_eq!(b.get("/1fa/").status, 200);
    assert_eq!(up.last().header("remote-email"), Some("alice@example.test"));

    // A new email reaches the app in the header and in the assertion alike: the identity kept
    // per session is dropped when the file is reloaded.
    std::fs::write(
        &users,
        original.replacen("alice@example.test", "alice@new.test", 1),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(b.get("/1fa/").status, 200);
        if up.last().header("remote-email") == Some("alice@new.test") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "email not updated");
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = up.last().header("x-stepgate-assertion").unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["email"], "alice@new.test");

    // Disable alice in the file: her session ends and she cannot sign in again, no restart.
    std::fs::write(
        &users,
        original.replacen("[users.alice]", "[users.alice]\ndisabled = true", 1),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.get("/1fa/").status != 302 {
        assert!(
            std::time::Instant::now() < deadline,
            "the change was not picked up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 401);
}

#[test]
fn the_chosen_language_is_remembered_on_every_page_errors_included() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(up.addr, ""));
    let mut b = Browser::new(gw.addr);
    let login = b.get("/_stepgate/login?lang=ko");
    assert!(login.body.contains("<html lang=\"ko\">"), "{}", login.body);
    assert_eq!(b.cookie("stepgate_lang"), Some("ko"));
    // A later page without `lang=`, and an error page, are in Korean too.
    let again = b.get("/_stepgate/login");
    assert!(again.body.contains("<html lang=\"ko\">"), "{}", again.body);
    let missing = b.get("/_stepgate/nowhere");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("<html lang=\"ko\">"),
        "{}",
        missing.body
    );
    // The error page offers English, which brings the browser back to where it was.
    assert!(
        unescape(&missing.body).contains("href=\"/_stepgate/language?lang=en\""),
        "{}",
        missing.body
    );
    b.extra = vec!["Referer: http://127.0.0.1/_stepgate/nowhere".into()];
    let switched = b.get("/_stepgate/language?lang=en");
    assert_eq!(switched.status, 302);
    assert_eq!(
        switched.header("location"),
        Some("http://127.0.0.1/_stepgate/nowhere")
    );
    assert_eq!(b.cookie("stepgate_lang"), Some("en"));
    b.extra.clear();
    assert!(b
        .get("/_stepgate/nowhere")
        .body
        .contains("<html lang=\"en\">"));
    // A Referer from elsewhere is not followed.
    b.extra = vec!["Referer: https://evil.test/x".into()];
    let elsewhere = b.get("/_stepgate/language?lang=ko");
    assert_eq!(elsewhere.header("location"), Some("/"));
}

#[test]
fn the_account_email_signs_in_as_the_user_and_shares_the_failure_counter() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(
        up.addr,
        "[regulation]\nmax_failures = 3\nwindow = \"10m\"\nban = \"5m\"\n",
    ));
    let mut b = Browser::new(gw.addr);
    // Case does not matter in an email either.
    assert_eq!(b.sign_in("Alice@Example.test", ALICE.1, "/").status, 303);
    assert_eq!(b.get("/1fa/").status, 200);
    assert_eq!(up.last().header("remote-user"), Some("alice"));

    // Failures by email and by name count against one account.
    let mut b = Browser::new(gw.addr);
    for typed in ["alice@example.test", "alice", "alice@example.test"] {
        assert_eq!(b.sign_in(typed, "wrong", "/").status, 401);
    }
    assert_eq!(
        b.sign_in(ALICE.0, ALICE.1, "/").status,
        401,
        "banned by failures under both names"
    );
    // An email no user has fails like a wrong password.
    let nobody = b.sign_in("nobody@example.test", "whatever", "/");
    assert_eq!(nobody.status, 401);
}

/// A burst of wrong passwords sent at once has no more of them checked than the limit (the
/// attempts are reserved before hashing), and the right password after it is refused, as it
/// would be after the same failures one at a time.
#[test]
fn a_burst_of_parallel_wrong_passwords_checks_no_more_than_the_limit() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(
        up.addr,
        "[regulation]\nmax_failures = 5\nform_posts_per_minute = 100\n",
    ));
    // Every browser holds its form first; then all post at once.
    let pages: Vec<(Browser, Response)> = (0..12)
        .map(|_| {
            let mut b = Browser::new(gw.addr);
            let page = b.get("/_stepgate/login?rd=%2F");
            (b, page)
        })
        .collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(pages.len()));
    let posts: Vec<_> = pages
        .into_iter()
        .map(|(mut b, page)| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                b.submit(
                    &page,
                    "/login",
                    &[("username", ALICE.0), ("password", "wrong")],
                )
                .status
            })
        })
        .collect();
    for p in posts {
        assert_eq!(p.join().unwrap(), 401);
    }
    let audit = stepgate_admin(&gw, &["audit", "alice", "--limit", "100"]);
    let checked = audit
        .lines()
        .filter(|l| l.contains("sign_in_failed"))
        .count();
    assert!(
        checked <= 5,
        "{checked} passwords checked in a burst of 12:\n{audit}"
    );
    assert!(checked >= 1, "{audit}");
    let mut b = Browser::new(gw.addr);
    let right = b.sign_in(ALICE.0, ALICE.1, "/");
    if checked == 5 {
        assert_eq!(right.status, 401, "banned after five failures");
    }
}

fn stepgate_admin(gw: &Gateway, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["admin", "--config"])
        .arg(gw.dir.path().join("stepgate.toml"))
        .args(args)
        .output()
        .expect("stepgate admin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A flood of wrong passwords from many addresses fills the hashing queue (the strangers get
/// 503), yet the owner, from an address they signed in from before, gets in: known sign-ins
/// have hashing slots of their own.
#[test]
fn a_flood_of_strangers_leaves_the_owner_a_way_in() {
    let up = Upstream::start("app");
    let text = signin_config(up.addr, "").replacen(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\npassword_hash_concurrency = 1\n",
        1,
    );
    let gw = Gateway::start(&text);
    let home = "X-Forwarded-For: 198.51.100.7";
    let mut owner = Browser::new(gw.addr);
    owner.extra.push(home.into());
    assert_eq!(owner.sign_in(ALICE.0, ALICE.1, "/").status, 303);

    let strangers: Vec<(Browser, Response)> = (0..60)
        .map(|i| {
            let mut b = Browser::new(gw.addr);
            b.extra.push(format!("X-Forwarded-For: 203.0.113.{i}"));
            let page = b.get("/_stepgate/login?rd=%2F");
            (b, page)
        })
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let start = std::sync::Arc::new(std::sync::Barrier::new(strangers.len()));
    let flood: Vec<_> = strangers
        .into_iter()
        .enumerate()
        .map(|(i, (mut b, page))| {
            let (start, tx) = (start.clone(), tx.clone());
            std::thread::spawn(move || {
                start.wait();
                let name = format!("nobody{i}");
                let r = b.submit(
                    &page,
                    "/login",
                    &[("username", &name), ("password", "wrong")],
                );
                let _ = tx.send(r.status);
            })
        })
        .collect();
    // Once a stranger is refused for a full queue, the queue is full: now the owner comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(503) => break,
            Ok(_) => continue,
            Err(e) => panic!("the flood never filled the queue: {e}"),
        }
    }
    let mut again = Browser::new(gw.addr);
    again.extra.push(home.into());
    let signed = again.sign_in(ALICE.0, ALICE.1, "/");
    assert_eq!(signed.status, 303, "the owner is shut out: {signed:?}");
    for t in flood {
        t.join().unwrap();
    }
}
