//! Two-step verification end to end, through the contract: the guide, proof by an emailed code
//! from the outbox, enrolment of an authenticator app with codes computed here independently,
//! the challenge, replays, recovery codes, the failure limits, the grace rules on an injected
//! clock, a notifier that is down, and the operator's enrolment token.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::two_factor::*;
use common::*;
use stepgate::clock::{Clock, ManualClock};

#[test]
fn alice_sets_up_an_authenticator_and_then_passes_the_challenge() {
    let (up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    let guide = signed_in_at_guide(&mut b, ALICE);
    assert!(
        guide.body.contains("two-step verification"),
        "{}",
        guide.body
    );
    assert!(
        !guide.body.contains("action=\"/_stepgate/guide\""),
        "no grace configured: no way past"
    );
    // The guide leads to setup; the app is still out of reach meanwhile.
    let setup = b.get("/_stepgate/setup?rd=http%3A%2F%2F127.0.0.1%2Fapp");
    assert_eq!(setup.status, 200);
    assert!(setup.body.contains("a***e@example.test"), "{}", setup.body);

    // Step 1: an emailed code proves the registered address.
    let sent = b.submit(&setup, "/setup", &[]);
    assert_eq!(sent.status, 200, "{sent:?}");
    let code = last_code_to(&gw, "alice@example.test");
    assert_eq!(code.len(), 6);
    let other = if code == "999999" { "999998" } else { "999999" };
    let wrong = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", other)],
    );
    assert_eq!(wrong.status, 401, "a wrong code is refused");
    let proved = b.submit(
        &wrong,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &code)],
    );
    assert_eq!(proved.status, 200, "{proved:?}");

    // Step 2: the emergency contact email; the proven registered address needs no second code.
    assert!(proved.body.contains("name=\"email\""), "{}", proved.body);
    let totp_page = b.submit(&proved, "/setup", &[("email", "alice@example.test")]);
    assert_eq!(totp_page.status, 200);
    assert!(totp_page.body.contains("<svg"), "a QR code is drawn");
    assert!(unescape(&totp_page.body).contains("otpauth://totp/"));
    let key = key_on(&totp_page);
    assert_eq!(
        key.replace(' ', "").len(),
        32,
        "160-bit key in base32: {key}"
    );

    // Step 3: a code from the app (computed here) turns it on.
    let now = clock.now_secs();
    let bad = b.submit(
        &totp_page,
        "/setup",
        &[("code", &totp_code(&key, now + 300))],
    );
    assert_eq!(bad.status, 401, "a code from another time is refused");
    let done = b.submit(&bad, "/setup", &[("code", &totp_code(&key, now))]);
    assert_eq!(done.status, 200, "{done:?}");
    let codes = recovery_codes_on(&done);
    assert_eq!(codes.len(), 10, "{}", done.body);
    assert!(
        done.set_cookies()
            .iter()
            .any(|c| c.starts_with("stepgate_session=")),
        "a new session ID at 2fa"
    );
    let added = mail_to(&gw, "alice@example.test");
    assert!(
        added.len() >= 2,
        "a notice that a factor was added: {added:?}"
    );
    assert!(added.last().unwrap()["code"].is_null());

    assert_eq!(b.get("/app").status, 200);
    let seen = up.last();
    assert_eq!(seen.header("remote-user"), Some("alice"));
    assert_eq!(seen.header("remote-auth-level"), Some("2fa"));
    assert_eq!(seen.header("remote-auth-methods"), Some("pwd,otp"));

    // Next sign-in: the challenge, not the guide.
    let mut b2 = Browser::new(gw.addr);
    b2.sign_in(ALICE.0, ALICE.1, "http://127.0.0.1/app");
    let app = b2.get("/app");
    assert_eq!(
        app.header("location"),
        Some("/_stepgate/2fa?rd=http%3A%2F%2F127.0.0.1%2Fapp")
    );
    assert_eq!(b2.request("GET", "/app", None).status, 302);
    let challenge = b2.get(&location_target(&app));
    assert_eq!(challenge.status, 200);
    assert!(challenge.body.contains("name=\"code\""));
    // The code used to turn the app on cannot be used again in the same step.
    let replay = b2.submit(&challenge, "/2fa", &[("code", &totp_code(&key, now))]);
    assert_eq!(replay.status, 401, "a replayed code is refused");
    assert!(replay.body.contains("already used"), "{}", replay.body);
    clock.advance(Duration::from_secs(30));
    let next = totp_code(&key, clock.now_secs());
    let passed = b2.submit(&replay, "/2fa", &[("code", &next)]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(passed.header("location"), Some("http://127.0.0.1/app"));
    assert_eq!(b2.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-level"), Some("2fa"));

    // The same code in a third browser: the step was used, so it is a replay.
    let mut b3 = Browser::new(gw.addr);
    b3.sign_in(ALICE.0, ALICE.1, "/");
    let c3 = b3.get("/_stepgate/2fa?rd=%2Fapp");
    let before_replay = mail_to(&gw, "alice@example.test").len();
    assert_eq!(b3.submit(&c3, "/2fa", &[("code", &next)]).status, 401);
    let warned = mail_to(&gw, "alice@example.test");
    assert_eq!(
        warned.len(),
        before_replay + 1,
        "replays are reported to the user"
    );
    assert!(
        warned.last().unwrap()["code"].is_null(),
        "a notice, not a code"
    );

    // A recovery code works once, and its use is reported.
    let before = mail_to(&gw, "alice@example.test").len();
    let used = b3.submit(&c3, "/2fa", &[("code", &codes[0].to_lowercase())]);
    assert_eq!(
        used.status, 303,
        "recovery codes are case-insensitive: {used:?}"
    );
    assert!(
        mail_to(&gw, "alice@example.test").len() > before,
        "recovery use reported"
    );
    let mut b4 = Browser::new(gw.addr);
    b4.sign_in(ALICE.0, ALICE.1, "/");
    let c4 = b4.get("/_stepgate/2fa?rd=%2Fapp");
    assert_eq!(
        b4.submit(&c4, "/2fa", &[("code", &codes[0])]).status,
        401,
        "single use"
    );
    assert_eq!(b4.submit(&c4, "/2fa", &[("code", &codes[1])]).status, 303);
}

#[test]
fn wrong_codes_are_counted_per_account_across_sessions() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    clock.advance(Duration::from_secs(60));
    // Five wrong codes spread over two sign-ins (sessions) earn a ban on the account.
    for round in 0..2 {
        let mut s = Browser::new(gw.addr);
        s.sign_in(ALICE.0, ALICE.1, "/");
        let page = s.get("/_stepgate/2fa?rd=%2F");
        let tries = if round == 0 { 3 } else { 2 };
        for _ in 0..tries {
            let r = s.submit(&page, "/2fa", &[("code", "12345x")]);
            assert_eq!(r.status, 401);
        }
    }
    let mut s = Browser::new(gw.addr);
    s.sign_in(ALICE.0, ALICE.1, "/");
    let page = s.get("/_stepgate/2fa?rd=%2F");
    let right = totp_code(&key, clock.now_secs());
    let refused = s.submit(&page, "/2fa", &[("code", &right)]);
    assert_eq!(
        refused.status, 429,
        "banned: even the right code is refused"
    );
    // The page and the header both say when to try again (the ban is 5 minutes).
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    assert!(refused.body.contains("Try again in"), "{}", refused.body);
    // The user is told their password worked but the second step kept failing.
    assert!(mail_to(&gw, "alice@example.test").len() >= 3);
    // After the ban, the right code works.
    clock.advance(Duration::from_secs(6 * 60));
    let right = totp_code(&key, clock.now_secs());
    assert_eq!(s.submit(&page, "/2fa", &[("code", &right)]).status, 303);
}

#[test]
fn too_many_code_requests_block_sends_for_a_day_and_the_page_says_until_when() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    for n in 0..5 {
        let sent = b.submit(&setup, "/setup", &[("step", "send")]);
        assert_eq!(sent.status, 200, "send {n}: {}", sent.body);
    }
    clock.advance(Duration::from_secs(10 * 60));
    // The sixth in the hour: sends stop for a day (seed 002), and the page says so.
    let refused = b.submit(&setup, "/setup", &[("step", "send")]);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("86400"));
    assert!(
        refused.body.contains("Try again in 24 hours."),
        "{}",
        refused.body
    );
    assert_eq!(
        mail_to(&gw, "alice@example.test").len(),
        5,
        "no sixth message"
    );
    // In Korean too, with the same wait.
    let ko = b.submit(&setup, "/setup", &[("step", "send"), ("lang", "ko")]);
    assert!(
        ko.body.contains("24시간 후에 다시 시도해 주세요."),
        "{}",
        ko.body
    );
    // The block is the account's, not the session's, and outlasts the hour; a day lifts it
    // (the idle session ended meanwhile, so sign in again).
    clock.advance(Duration::from_secs(60 * 60));
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    assert_eq!(b.submit(&setup, "/setup", &[("step", "send")]).status, 429);
    clock.advance(Duration::from_secs(24 * 60 * 60));
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    assert_eq!(b.submit(&setup, "/setup", &[("step", "send")]).status, 200);
}

#[test]
fn bob_reaches_admin_only_after_two_step_verification() {
    let (up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    full_enrolment(&mut b, &gw, &clock, BOB);
    assert_eq!(b.get("/admin/").status, 200);
    let seen = up.last();
    assert_eq!(seen.header("remote-user"), Some("bob"));
    assert_eq!(seen.header("remote-auth-level"), Some("2fa"));
}

#[test]
fn a_one_factor_session_cannot_attach_an_authenticator_without_proof() {
    let (_up, gw, _clock) = start("");
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2F");
    // Skipping straight to the app step is answered with the proof step again.
    let skipped = b.submit(
        &setup,
        "/_stepgate/setup",
        &[("step", "activate"), ("code", "123456")],
    );
    assert!(skipped.body.contains("value=\"prove\""), "{}", skipped.body);
    assert!(!skipped.body.contains("otpauth://"));
    let guessed = b.submit(
        &setup,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", "123456")],
    );
    assert_eq!(guessed.status, 401, "no code was sent, so none can match");
}

#[test]
fn the_grace_allows_later_before_the_date_and_for_the_configured_skips() {
    // Mandatory from one day ahead: "later" is free until then.
    let clock_probe = ManualClock::now();
    let tomorrow =
        time::OffsetDateTime::from_unix_timestamp((clock_probe.now_secs() + 86_400) as i64)
            .unwrap()
            .date();
    let (up, gw, clock) = start(&format!(
        "[two_factor]\nrequired_from = \"{tomorrow}\"\ngrace_skips = 1\n"
    ));
    let mut b = Browser::new(gw.addr);
    let guide = signed_in_at_guide(&mut b, ALICE);
    assert!(
        guide.body.contains(&tomorrow.to_string()),
        "the guide names the date"
    );
    let later = b.submit(&guide, "/guide", &[]);
    assert_eq!(later.status, 303, "{later:?}");
    assert_eq!(
        b.get("/app").status,
        200,
        "continues this once at one factor"
    );
    assert_eq!(up.last().header("remote-auth-level"), Some("1fa"));
    assert_eq!(b.get("/admin/").status, 403, "subject rules still apply");

    // Past the date: one counted skip, then no way past.
    clock.advance(Duration::from_secs(2 * 86_400));
    let mut b2 = Browser::new(gw.addr);
    let guide = signed_in_at_guide(&mut b2, ALICE);
    assert_eq!(b2.submit(&guide, "/guide", &[]).status, 303);
    let mut b3 = Browser::new(gw.addr);
    let guide = signed_in_at_guide(&mut b3, ALICE);
    assert!(
        !guide.body.contains("action=\"/_stepgate/guide\""),
        "skips used up"
    );
    // A hand-made "later" post is refused too.
    let forged = b3.request(
        "POST",
        "/_stepgate/guide",
        Some(&format!(
            "csrf={}&rd=%2Fapp",
            forms(&guide.body)
                .iter()
                .flat_map(|f| f.fields.clone())
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v)
                .unwrap_or_default()
        )),
    );
    assert_eq!(forged.status, 403);
    assert_eq!(b3.get("/app").status, 302);
}

#[test]
fn the_grace_ends_at_its_deadline() {
    let probe = ManualClock::now();
    let in_two_days =
        time::OffsetDateTime::from_unix_timestamp((probe.now_secs() + 2 * 86_400) as i64)
            .unwrap()
            .date();
    let (_up, gw, clock) = start(&format!("[two_factor]\ngrace_until = \"{in_two_days}\"\n"));
    let mut b = Browser::new(gw.addr);
    let guide = signed_in_at_guide(&mut b, ALICE);
    assert!(
        guide.body.contains(&in_two_days.to_string()),
        "{}",
        guide.body
    );
    assert_eq!(b.submit(&guide, "/guide", &[]).status, 303);
    clock.advance(Duration::from_secs(3 * 86_400));
    let mut b2 = Browser::new(gw.addr);
    let guide = signed_in_at_guide(&mut b2, ALICE);
    assert!(
        !guide.body.contains("action=\"/_stepgate/guide\""),
        "deadline passed"
    );
}

#[test]
fn an_operator_token_replaces_the_emailed_code_and_another_contact_is_verified() {
    let (_up, gw, clock) = start("");
    let token = admin(&gw, &["enrolment-token", "Alice"]).trim().to_owned();
    assert_eq!(token.len(), 24, "XXXX-XXXX-XXXX-XXXX-XXXX: {token}");

    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    let proved = b.submit(
        &setup,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &token)],
    );
    assert_eq!(proved.status, 200);
    assert!(proved.body.contains("name=\"email\""), "{}", proved.body);
    // Proof by token did not prove the registered email, and a new address gets a code.
    let pending = b.submit(&proved, "/setup", &[("email", "alice.backup@example.test")]);
    assert!(
        pending.body.contains("a***p@example.test"),
        "{}",
        pending.body
    );
    let code = last_code_to(&gw, "alice.backup@example.test");
    let totp_page = b.submit(
        &pending,
        "/_stepgate/setup",
        &[("step", "contact_code"), ("code", &code)],
    );
    let key = key_on(&totp_page);
    let done = b.submit(
        &totp_page,
        "/setup",
        &[("code", &totp_code(&key, clock.now_secs()))],
    );
    assert_eq!(done.status, 200);
    // Security notices go to both addresses.
    assert!(!mail_to(&gw, "alice.backup@example.test")
        .iter()
        .all(|m| !m["code"].is_null()));

    let text = admin(&gw, &["status", "alice"]);
    assert!(text.contains("authenticator app: on"), "{text}");
    assert!(text.contains("recovery codes left: 10"), "{text}");
    assert!(
        text.contains("factor_added totp from 127.0.0.1"),
        "the audit trail: {text}"
    );
    assert!(text.contains("alice.backup@example.test"), "{text}");
}

/// A webhook receiver on loopback that answers `statuses` in turn (then 200) and keeps bodies.
fn webhook(statuses: Vec<u16>) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (addr, bodies)
}

#[test]
fn a_notifier_that_is_down_loses_no_progress_and_lets_nobody_past() {
    let (hook, bodies) = webhook(vec![503]);
    let (_up, gw, _clock) = start(&format!(
        "[notify]\nemail = \"webhook\"\n\n[notify.webhook]\nurl = \"http://{hook}/send\"\nretries = 0\ntimeout = \"2s\"\n"
    ));
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    let failed = b.submit(&setup, "/setup", &[]);
    assert_eq!(failed.status, 503, "{failed:?}");
    assert!(
        failed.body.contains("could not send the code"),
        "{}",
        failed.body
    );
    assert_eq!(
        b.get("/app").status,
        302,
        "nobody gets past while it is down"
    );
    // The next try goes through, and the setup carries on from where it was.
    let sent = b.submit(&failed, "/setup", &[]);
    assert_eq!(sent.status, 200, "{sent:?}");
    let body = bodies.lock().unwrap().last().cloned().unwrap();
    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["to"], "alice@example.test");
    let code = message["code"].as_str().unwrap().to_owned();
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &code)],
    );
    assert!(proved.body.contains("name=\"email\""), "{}", proved.body);
}

#[test]
fn account_changes_need_a_current_code_and_removal_ends_other_sessions() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    let key = full_enrolment(&mut b, &gw, &clock, ALICE);
    // A second browser at 2fa, which removal must sign out.
    let mut other = Browser::new(gw.addr);
    other.sign_in(ALICE.0, ALICE.1, "/");
    clock.advance(Duration::from_secs(30));
    let c = other.get("/_stepgate/2fa?rd=%2Fapp");
    assert_eq!(
        other
            .submit(&c, "/2fa", &[("code", &totp_code(&key, clock.now_secs()))])
            .status,
        303
    );
    assert_eq!(other.get("/app").status, 200);

    let account = b.get("/_stepgate/account");
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains("Recovery codes left"),
        "{}",
        account.body
    );
    let refused = b.submit(
        &account,
        "/account/recovery-codes",
        &[("code", "000000"), ("confirm", "yes")],
    );
    assert_eq!(refused.status, 401, "a wrong code changes nothing");
    clock.advance(Duration::from_secs(30));
    let fresh = b.submit(
        &account,
        "/account/recovery-codes",
        &[
            ("code", &totp_code(&key, clock.now_secs())),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(fresh.status, 200, "{fresh:?}");
    assert_eq!(recovery_codes_on(&fresh).len(), 10);

    clock.advance(Duration::from_secs(30));
    let before = mail_to(&gw, "alice@example.test").len();
    let removed = b.submit(
        &account,
        "/account/remove-authenticator",
        &[
            ("code", &totp_code(&key, clock.now_secs())),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(removed.status, 303, "{removed:?}");
    assert!(
        mail_to(&gw, "alice@example.test").len() > before,
        "removal is reported"
    );
    assert_eq!(other.get("/app").status, 302, "the other session was ended");
    let page = b.get("/_stepgate/account");
    assert!(page.body.contains("not set up"), "{}", page.body);
    // In Korean, too.
    b.extra.push("Accept-Language: ko-KR,ko;q=0.9".into());
    let ko = b.get("/_stepgate/account");
    assert!(
        ko.body.contains("2단계 인증이 설정되어 있지 않습니다"),
        "{}",
        ko.body
    );
}

#[test]
fn an_operator_reset_of_a_lost_phone_also_ends_the_users_sessions() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    full_enrolment(&mut b, &gw, &clock, ALICE);
    assert_eq!(b.get("/app").status, 200);
    let said = admin(&gw, &["reset2fa", "alice"]);
    assert!(said.contains("1 session(s) ended"), "{said}");
    // The gateway reads its cached session again within 30 s and finds it gone.
    clock.advance(Duration::from_secs(31));
    let after = b.get("/app");
    assert_eq!(after.status, 302, "{after:?}");
    assert!(
        location_target(&after).starts_with("/_stepgate/login"),
        "{after:?}"
    );
}
