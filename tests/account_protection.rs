//! Account protection through the portal, each test with its own gateway: trusted browsers
//! ("don't ask again") and their revocation, sessions and saved sign-ins, the unfamiliar-
//! environment check with its alert, "this wasn't me" (the lock, across a restart), password
//! change and reset.

mod common;

use common::two_factor::*;
use common::*;
use stepgate::clock::{Clock, ManualClock};

fn from(gw: &Gateway, address: &str) -> Browser {
    let mut b = Browser::new(gw.addr);
    b.extra.push(format!("X-Forwarded-For: {address}"));
    b
}

/// The challenge after a password sign-in of `who` with a second factor: passes it with the
/// app's current code, ticking "don't ask again" when `remember`.
fn pass_challenge(b: &mut Browser, clock: &ManualClock, key: &str, remember: bool) -> Response {
    let app = b.get("/app");
    assert_eq!(app.status, 302, "{app:?}");
    let challenge = b.get(&location_target(&app));
    assert_eq!(challenge.status, 200, "{challenge:?}");
    let code = totp_code(key, clock.now_secs());
    let mut values = vec![("code", code.as_str())];
    if remember {
        values.push(("remember", "yes"));
    }
    b.submit(&challenge, "/2fa", &values)
}

fn sign_out(b: &mut Browser) {
    let account = b.get("/_stepgate/account");
    let out = b.submit(&account, "/logout", &[]);
    assert_eq!(out.status, 303, "{out:?}");
}

#[test]
fn a_trusted_browser_skips_the_code_until_it_is_removed() {
    let extra =
        "[[rule]]\npath = \"^/strict/\"\npolicy = \"two_factor\"\ntrusted_browsers = false\n";
    let (up, gw, clock) = start(extra);
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    sign_out(&mut b);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    clock.advance(std::time::Duration::from_millis(30_000));
    let passed = pass_challenge(&mut b, &clock, &key, true);
    assert_eq!(passed.status, 303, "{passed:?}");
    let trust = b
        .cookie("stepgate_trust")
        .expect("a trust cookie")
        .to_owned();
    assert!(passed
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("stepgate_trust=")
            && c.contains("Max-Age=")
            && c.contains("HttpOnly")));

    // Signed out and in again: no code, and the app sees the password plus "remembered".
    sign_out(&mut b);
    assert_eq!(
        b.cookie("stepgate_trust"),
        Some(trust.as_str()),
        "sign-out keeps the trust"
    );
    b.sign_in(ALICE.0, ALICE.1, "/app");
    let app = b.get("/app");
    assert_eq!(app.status, 200, "{app:?}");
    let seen = up.last();
    assert_eq!(seen.header("remote-auth-methods"), Some("pwd,remembered"));
    assert_eq!(seen.header("remote-auth-level"), Some("2fa"));

    // A rule that wants a code of this sign-in asks for one all the same.
    let strict = b.get("/strict/x");
    assert_eq!(strict.status, 302, "{strict:?}");
    assert!(strict
        .header("location")
        .unwrap()
        .starts_with("/_stepgate/2fa?"));

    // Forged, bit-flipped and other users' tokens are worth nothing.
    let mut flipped = trust.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    for token in [
        String::from_utf8(flipped).unwrap(),
        "x".repeat(43),
        "junk".into(),
    ] {
        let mut other = Browser::new(gw.addr);
        other.cookies.push(("stepgate_trust".into(), token));
        other.sign_in(ALICE.0, ALICE.1, "/app");
        assert_eq!(
            other.get("/app").status,
            302,
            "a bad token still asks for the code"
        );
    }
    let mut bob = Browser::new(gw.addr);
    bob.cookies.push(("stepgate_trust".into(), trust.clone()));
    let bob_key = full_enrolment(&mut bob, &gw, &clock, BOB);
    sign_out(&mut bob);
    bob.cookies.push(("stepgate_trust".into(), trust.clone()));
    bob.sign_in(BOB.0, BOB.1, "/app");
    assert_eq!(
        bob.get("/app").status,
        302,
        "alice's token does not skip bob's code"
    );
    let _ = bob_key;

    // Listed on the account's page; "remove all" ends the trust and the session it made.
    let list = b.get("/_stepgate/trusted-browsers");
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("trusted-browsers/remove\""),
        "{}",
        list.body
    );
    let removed = b.submit(&list, "/trusted-browsers/remove-all", &[]);
    assert_eq!(removed.status, 303);
    let mut again = Browser::new(gw.addr);
    again.cookies.push(("stepgate_trust".into(), trust));
    again.sign_in(ALICE.0, ALICE.1, "/app");
    assert_eq!(
        again.get("/app").status,
        302,
        "removed: the code is asked again"
    );
}

#[test]
fn the_trust_expires_with_its_lifetime() {
    let (_up, gw, clock) = start("[two_factor]\ntrusted_browser_lifetime = \"1h\"\n");
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    sign_out(&mut b);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    clock.advance(std::time::Duration::from_millis(30_000));
    assert_eq!(pass_challenge(&mut b, &clock, &key, true).status, 303);
    sign_out(&mut b);
    clock.advance(std::time::Duration::from_millis(3_600_000));
    b.sign_in(ALICE.0, ALICE.1, "/app");
    assert_eq!(
        b.get("/app").status,
        302,
        "expired: the code is asked again"
    );
}

#[test]
fn sessions_are_listed_and_ended_and_a_saved_sign_in_outlives_the_browser() {
    let (_up, gw, _clock) = start("[two_factor]\nrequired_from = \"2099-01-01\"\n");
    let mut laptop = Browser::new(gw.addr);
    laptop.sign_in(ALICE.0, ALICE.1, "/1fa/");
    let mut phone = Browser::new(gw.addr);
    let page = phone.get("/_stepgate/login?rd=%2F1fa%2F");
    let saved = phone.submit(
        &page,
        "/login",
        &[
            ("username", ALICE.0),
            ("password", ALICE.1),
            ("keep", "yes"),
        ],
    );
    assert_eq!(saved.status, 303);
    let cookie = saved
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("stepgate_session="))
        .unwrap();
    assert!(
        cookie.contains("Max-Age="),
        "a saved sign-in lasts: {cookie}"
    );
    let laptop_cookie = laptop.cookie("stepgate_session").unwrap().to_owned();

    // The browser restarts: only persistent cookies survive, and the phone is still in.
    let mut restarted = Browser::new(gw.addr);
    restarted.cookies.push((
        "stepgate_session".into(),
        phone.cookie("stepgate_session").unwrap().into(),
    ));
    assert_eq!(restarted.get("/1fa/").status, 200);

    // The laptop lists both, marks itself, and deletes the phone's saved sign-in.
    let list = laptop.get("/_stepgate/sessions");
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body.matches("<li class=\"entry\">").count(),
        2,
        "{}",
        list.body
    );
    assert!(list.body.contains("this browser"), "{}", list.body);
    assert!(list.body.contains("saved sign-in"), "{}", list.body);
    let ended = laptop.submit(&list, "/sessions/end", &[]);
    assert_eq!(ended.status, 303, "{ended:?}");
    let next = restarted.get("/1fa/");
    assert_eq!(next.status, 302);
    assert!(next
        .header("location")
        .unwrap()
        .starts_with("/_stepgate/login"));
    assert_eq!(
        laptop.cookie("stepgate_session"),
        Some(laptop_cookie.as_str())
    );
    assert_eq!(laptop.get("/1fa/").status, 200);

    // "Sign out everywhere else".
    let mut third = Browser::new(gw.addr);
    third.sign_in(ALICE.0, ALICE.1, "/1fa/");
    let list = laptop.get("/_stepgate/sessions");
    laptop.submit(&list, "/sessions/end-others", &[]);
    assert_eq!(third.get("/1fa/").status, 302);
    assert_eq!(laptop.get("/1fa/").status, 200);
}

#[test]
fn an_unfamiliar_sign_in_is_checked_and_alerted_and_this_wasnt_me_locks_the_account() {
    let (_up, mut gw, _clock) = start_behind_proxy(
        "[two_factor]\nrequired_from = \"2099-01-01\"\n[notify]\noperator_email = \"ops@example.test\"\n",
    );
    // The first sign-in sets the baseline: no check, no alert.
    let mut home = from(&gw, "198.51.100.7");
    home.sign_in(ALICE.0, ALICE.1, "/1fa/");
    assert_eq!(home.get("/1fa/").status, 200);
    assert!(mail_to(&gw, "alice@example.test").is_empty());
    // Another browser on the same network is familiar.
    let mut same_net = from(&gw, "198.51.100.20");
    same_net.sign_in(ALICE.0, ALICE.1, "/1fa/");
    assert_eq!(same_net.get("/1fa/").status, 200);

    // A new browser on a new network: checked before anything, and alerted.
    let mut attacker = from(&gw, "203.0.113.9");
    attacker.extra.push(
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
    );
    attacker.sign_in(ALICE.0, ALICE.1, "http://app.test/1fa/");
    let app = attacker.get("/1fa/");
    assert_eq!(app.status, 302);
    assert!(
        app.header("location")
            .unwrap()
            .starts_with("/_stepgate/check?"),
        "{app:?}"
    );
    let alert = mail_to(&gw, "alice@example.test").pop().expect("an alert");
    let text = alert["text"].as_str().unwrap();
    assert!(
        text.contains("203.0.113.9") && text.contains("Firefox") && text.contains("app.test"),
        "{text}"
    );
    let link = alert["link"].as_str().unwrap().to_owned();
    assert!(link.contains("/_stepgate/lock?token="), "{link}");

    // Until it passes, the account's own pages are out of reach (the attacker may hold only
    // the password, which is all a password change asks of a user without a second factor).
    for page in [
        "/_stepgate/account",
        "/_stepgate/password",
        "/_stepgate/sessions",
        "/_stepgate/setup",
    ] {
        let r = attacker.get(page);
        assert_eq!(r.status, 302, "{page}: {r:?}");
        assert!(
            r.header("location")
                .unwrap()
                .starts_with("/_stepgate/check"),
            "{page}"
        );
    }

    // The check: a code to the account email.
    let check = attacker.get(&location_target(&app));
    assert_eq!(check.status, 200);
    let sent = attacker.submit(&check, "/check/send", &[]);
    let code = last_code_to(&gw, "alice@example.test");
    let wrong = attacker.submit(&sent, "/_stepgate/check", &[("code", "000000")]);
    assert_eq!(wrong.status, 401);
    let passed = attacker.submit(&sent, "/_stepgate/check", &[("code", &code)]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(attacker.get("/1fa/").status, 200);

    // "This wasn't me": GET only shows; POST locks; every session ends, the attacker's too.
    let mut owner = Browser::new(gw.addr);
    let target = location_target(&Response {
        status: 302,
        headers: vec![("location".into(), link.clone())],
        body: String::new(),
    });
    let confirm = owner.get(&target);
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("203.0.113.9"), "{}", confirm.body);
    assert_eq!(attacker.get("/1fa/").status, 200, "looking changes nothing");
    let locked = owner.submit(&confirm, "/lock", &[]);
    assert_eq!(locked.status, 200, "{locked:?}");
    for b in [&mut attacker, &mut home, &mut same_net] {
        assert_eq!(b.get("/1fa/").status, 302, "every session ended");
    }
    // The user and the operator are told; the audit file has it.
    let told = |to: &str| {
        mail_to(&gw, to).iter().any(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("account was locked")
        })
    };
    assert!(told("alice@example.test") && told("ops@example.test"));
    let audit = std::fs::read_to_string(gw.data_dir().join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"event\":\"account_locked\"") && l.contains("\"alice\"")),
        "{audit}"
    );
    assert_eq!(
        owner.submit(&confirm, "/lock", &[]).status,
        404,
        "single use"
    );

    // Locked, even after a restart: the right password fails like a wrong one.
    gw.restart();
    let mut fresh = from(&gw, "198.51.100.7");
    let refused = fresh.sign_in(ALICE.0, ALICE.1, "/1fa/");
    let wrong = from(&gw, "198.51.100.7").sign_in(ALICE.0, "wrong-password", "/1fa/");
    let error = |r: &Response| {
        r.body
            .split("role=\"alert\">")
            .nth(1)
            .map(|s| s[..40].to_owned())
    };
    assert_eq!(
        (refused.status, error(&refused)),
        (wrong.status, error(&wrong))
    );
    assert!(error(&refused).is_some());

    // A reset unlocks (alice has no second factor, so the link alone is enough).
    let ask = fresh.get("/_stepgate/reset");
    fresh.submit(&ask, "/reset", &[("username", "alice@example.test")]);
    let reset_link = mail_to(&gw, "alice@example.test").pop().unwrap()["link"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reset_link.contains("/_stepgate/reset?token="),
        "{reset_link}"
    );
    let form = fresh.get(&reset_link[reset_link.find("/_stepgate").unwrap()..]);
    assert_eq!(form.status, 200);
    let weak = fresh.submit(&form, "/reset", &[("new_password", "password1")]);
    assert_eq!(weak.status, 400, "a common password is refused");
    let done = fresh.submit(
        &form,
        "/reset",
        &[("new_password", "correct horse battery staple 7")],
    );
    assert_eq!(done.status, 200, "{done:?}");
    let back =
        from(&gw, "198.51.100.7").sign_in(ALICE.0, "correct horse battery staple 7", "/1fa/");
    assert_eq!(back.status, 303, "unlocked, with the new password");
    assert_eq!(
        from(&gw, "198.51.100.7")
            .sign_in(ALICE.0, ALICE.1, "/1fa/")
            .status,
        401
    );
}

#[test]
fn a_reset_never_tells_who_exists_and_keeps_two_step_verification() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    let before = outbox(&gw.data_dir()).len();
    let mut anon = Browser::new(gw.addr);
    let ask = anon.get("/_stepgate/reset");
    let unknown = anon.submit(&ask, "/reset", &[("username", "nobody")]);
    let known = anon.submit(&ask, "/reset", &[("username", "alice")]);
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (known.status, known.body.clone())
    );
    let mail = outbox(&gw.data_dir());
    assert_eq!(mail.len(), before + 1, "one message, to alice only");
    let link = mail.last().unwrap()["link"].as_str().unwrap().to_owned();
    let form = anon.get(&link[link.find("/_stepgate").unwrap()..]);
    assert!(
        form.body.contains("name=\"code\""),
        "the second factor is asked: {}",
        form.body
    );
    let new = "a new and long passphrase 42";
    let no_code = anon.submit(&form, "/reset", &[("new_password", new)]);
    assert_eq!(no_code.status, 401);
    clock.advance(std::time::Duration::from_millis(30_000));
    let ok = anon.submit(
        &form,
        "/reset",
        &[
            ("new_password", new),
            ("code", &totp_code(&key, clock.now_secs())),
        ],
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(b.get("/app").status, 302, "the reset ended every session");
    let mut again = Browser::new(gw.addr);
    again.sign_in(ALICE.0, new, "/app");
    let app = again.get("/app");
    assert!(
        app.header("location")
            .unwrap()
            .starts_with("/_stepgate/2fa?"),
        "2FA stays: {app:?}"
    );
}

#[test]
fn a_password_change_needs_the_current_one_and_ends_other_sessions() {
    let (_up, gw, _clock) = start("[two_factor]\nrequired_from = \"2099-01-01\"\n");
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/1fa/");
    let mut other = Browser::new(gw.addr);
    other.sign_in(ALICE.0, ALICE.1, "/1fa/");
    let page = b.get("/_stepgate/password");
    assert_eq!(page.status, 200);
    let wrong = b.submit(
        &page,
        "/password",
        &[
            ("current_password", "nope"),
            ("new_password", "a new and long passphrase 42"),
        ],
    );
    assert_eq!(wrong.status, 401);
    let weak = b.submit(
        &page,
        "/password",
        &[("current_password", ALICE.1), ("new_password", "alice123")],
    );
    assert_eq!(weak.status, 400);
    let done = b.submit(
        &page,
        "/password",
        &[
            ("current_password", ALICE.1),
            ("new_password", "a new and long passphrase 42"),
        ],
    );
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(b.get("/1fa/").status, 200, "this browser stays signed in");
    assert_eq!(
        other.get("/1fa/").status,
        302,
        "the other one is signed out"
    );
    assert!(mail_to(&gw, "alice@example.test")
        .iter()
        .any(|m| m["subject"]
            .as_str()
            .unwrap()
            .contains("password was changed")));
    assert_eq!(
        Browser::new(gw.addr)
            .sign_in(ALICE.0, ALICE.1, "/1fa/")
            .status,
        401
    );
    assert_eq!(
        Browser::new(gw.addr)
            .sign_in(ALICE.0, "a new and long passphrase 42", "/1fa/")
            .status,
        303
    );
}

#[test]
fn a_second_factor_reset_and_disabling_the_user_forget_trusted_browsers() {
    let up = Upstream::start("app");
    let clock = ManualClock::now();
    let users_dir = tempfile::tempdir().unwrap();
    let users = users_dir.path().join("users.toml");
    std::fs::copy(quickstart_users(), &users).unwrap();
    let text = signin_config(up.addr, "").replace(&quickstart_users(), users.to_str().unwrap());
    let gw = Gateway::start_with_clock(&text, clock.clone());
    let trust_browser = |b: &mut Browser, key: &str| {
        sign_out(b);
        b.sign_in(ALICE.0, ALICE.1, "/app");
        clock.advance(std::time::Duration::from_secs(30));
        assert_eq!(pass_challenge(b, &clock, key, true).status, 303);
        assert!(!admin(&gw, &["trusted", "alice"]).contains("no trusted browsers"));
    };

    // The operator resets the second factor (a lost phone): trust goes with it.
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    trust_browser(&mut b, &key);
    admin(&gw, &["reset2fa", "alice"]);
    assert!(admin(&gw, &["trusted", "alice"]).contains("no trusted browsers"));
    // The gateway sees the reset once its caches revalidate (30 s).
    clock.advance(std::time::Duration::from_secs(31));

    // The operator disables the user in the users file: the reload forgets the trust, so that
    // enabling them again does not bring it back.
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    trust_browser(&mut b, &key);
    let original = std::fs::read_to_string(&users).unwrap();
    let disabled = original.replacen(
        "groups = [\"users\"]\n",
        "groups = [\"users\"]\ndisabled = true\n",
        1,
    );
    assert_ne!(disabled, original);
    std::fs::write(&users, disabled).unwrap();
    // The gateway polls the file every second; bounded wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !admin(&gw, &["trusted", "alice"]).contains("no trusted browsers") {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload did not forget the trust"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_password_change_and_a_reset_forget_trusted_browsers_and_resets_are_limited_per_user() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    let trust = |b: &mut Browser| {
        sign_out(b);
        b.sign_in(ALICE.0, ALICE.1, "/app");
        clock.advance(std::time::Duration::from_secs(30));
        assert_eq!(pass_challenge(b, &clock, &key, true).status, 303);
        assert!(!admin(&gw, &["trusted", "alice"]).contains("no trusted browsers"));
    };

    // One removed by itself.
    trust(&mut b);
    let list = b.get("/_stepgate/trusted-browsers");
    assert_eq!(b.submit(&list, "/trusted-browsers/remove", &[]).status, 303);
    assert!(admin(&gw, &["trusted", "alice"]).contains("no trusted browsers"));

    // A password change (the proof of the challenge is fresh: no code asked again).
    trust(&mut b);
    let page = b.get("/_stepgate/password");
    let new = "a new and long passphrase 42";
    let done = b.submit(
        &page,
        "/password",
        &[("current_password", ALICE.1), ("new_password", new)],
    );
    assert_eq!(done.status, 303, "{done:?}");
    assert!(admin(&gw, &["trusted", "alice"]).contains("no trusted browsers"));

    // Reset links: three an hour for one user, then the same answer and no mail.
    let before = mail_to(&gw, "alice@example.test").len();
    let mut anon = Browser::new(gw.addr);
    for _ in 0..4 {
        let ask = anon.get("/_stepgate/reset");
        let sent = anon.submit(&ask, "/reset", &[("username", "alice")]);
        assert_eq!(sent.status, 200);
    }
    let links: Vec<String> = mail_to(&gw, "alice@example.test")[before..]
        .iter()
        .filter_map(|m| m["link"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(links.len(), 3, "{links:?}");
    // Without the form's token the request is refused.
    let forged = anon.request("POST", "/_stepgate/reset", Some("username=alice"));
    assert_eq!(forged.status, 403);
}
