//! Changing a second factor or the emergency email: only with a fresh proof by a factor the
//! account already has, never through first-time setup, the old app working until the new one
//! is confirmed, and the notice going to the addresses registered before the change.

mod common;

use std::time::Duration;

use common::two_factor::*;
use common::*;
use stepgate::clock::Clock;

/// The value of the first field `name` in the page's forms.
fn field(page: &Response, name: &str) -> String {
    forms(&page.body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name} on the page:\n{}", page.body))
}

fn post(b: &mut Browser, path: &str, form: &[(&str, &str)]) -> Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    b.request("POST", path, Some(&body))
}

/// Subjects of the messages to `to`, oldest first.
fn subjects_to(gw: &Gateway, to: &str) -> Vec<String> {
    mail_to(gw, to)
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn text_of_last(gw: &Gateway, to: &str) -> String {
    mail_to(gw, to).last().expect("a message")["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_stolen_two_factor_session_cannot_replace_the_factor_or_the_email() {
    let (_up, gw, clock) = start("");
    let mut owner = Browser::new(gw.addr);
    let key = full_enrolment(&mut owner, &gw, &clock, ALICE);
    // A copy of the owner's two-factor session cookie, used minutes later.
    let mut thief = Browser::new(gw.addr);
    thief.cookies = owner.cookies.clone();
    clock.advance(Duration::from_secs(10 * 60));
    assert_eq!(thief.get("/app").status, 200, "the session itself works");

    // First-time setup is not on offer to an account that has a second factor.
    let setup = thief.get("/_stepgate/setup?rd=%2Fapp");
    assert_eq!(setup.status, 302, "{setup:?}");
    assert_eq!(setup.header("location"), Some("/_stepgate/account"));
    let account = thief.get("/_stepgate/account");
    assert_eq!(account.status, 200);
    assert!(
        !account.body.contains("/account/remove-authenticator")
            && !account.body.contains("/account/authenticator\""),
        "no change without a fresh proof: {}",
        account.body
    );
    assert!(account.body.contains("/account/verify"), "{}", account.body);
    let csrf = field(&account, "csrf");
    // Posting setup's steps anyway changes nothing.
    for (step, name, value) in [
        ("contact", "email", "mallory@evil.test"),
        ("send", "x", ""),
        ("activate", "code", "123456"),
    ] {
        let r = post(
            &mut thief,
            "/_stepgate/setup",
            &[("csrf", &csrf), ("step", step), (name, value)],
        );
        assert_eq!(r.status, 303, "{step}: {r:?}");
        assert_eq!(r.header("location"), Some("/_stepgate/account"), "{step}");
    }
    // The change pages ask for a factor the thief does not have.
    for page in [
        "/_stepgate/account/authenticator",
        "/_stepgate/emergency-email",
    ] {
        let r = thief.get(page);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.body.contains("/account/verify"), "{page}: {}", r.body);
        assert!(!r.body.contains("otpauth://"), "{page}");
    }
    let r = post(
        &mut thief,
        "/_stepgate/emergency-email",
        &[
            ("csrf", &csrf),
            ("step", "email"),
            ("email", "mallory@evil.test"),
        ],
    );
    assert!(r.body.contains("/account/verify"), "{}", r.body);
    let r = post(
        &mut thief,
        "/_stepgate/account/authenticator",
        &[("csrf", &csrf), ("code", "123456")],
    );
    assert_eq!(r.status, 303, "nothing begun: {r:?}");
    for change in ["recovery-codes", "remove-authenticator"] {
        let r = post(
            &mut thief,
            &format!("/_stepgate/account/{change}"),
            &[("csrf", &csrf)],
        );
        assert_eq!(r.status, 401, "{change}: {r:?}");
    }
    let r = post(
        &mut thief,
        "/_stepgate/account/verify",
        &[("csrf", &csrf), ("code", "000000"), ("next", "/account")],
    );
    assert_eq!(r.status, 401, "a guessed code is refused");
    assert!(mail_to(&gw, "mallory@evil.test").is_empty());
    thief.extra.push("Accept-Language: ko".into());
    let ko = thief.get("/_stepgate/emergency-email");
    assert!(
        ko.body.contains("본인 확인") && ko.body.contains("복구 코드"),
        "{}",
        ko.body
    );

    // The owner's app still works.
    let mut again = Browser::new(gw.addr);
    again.sign_in(ALICE.0, ALICE.1, "/app");
    clock.advance(Duration::from_secs(30));
    let c = again.get("/_stepgate/2fa?rd=%2Fapp");
    let code = totp_code(&key, clock.now_secs());
    assert_eq!(again.submit(&c, "/2fa", &[("code", &code)]).status, 303);
    assert_eq!(again.get("/app").status, 200);
}

#[test]
fn after_a_fresh_proof_the_email_and_the_app_change_and_the_old_addresses_are_told() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    let old_key = enrolment_with_contact(&mut b, &gw, &clock, ALICE, "alice.backup@example.test");

    // Minutes later, the owner confirms with the app.
    clock.advance(Duration::from_secs(10 * 60));
    let account = b.get("/_stepgate/account");
    assert!(!account.body.contains("/account/remove-authenticator"));
    let confirmed = b.submit(
        &account,
        "/account/verify",
        &[("code", &totp_code(&old_key, clock.now_secs()))],
    );
    assert_eq!(confirmed.status, 303, "{confirmed:?}");
    assert_eq!(confirmed.header("location"), Some("/_stepgate/account"));
    assert!(
        confirmed
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("stepgate_session=")),
        "a new session ID after the proof"
    );
    let account = b.get("/_stepgate/account");
    assert!(
        account.body.contains("/account/authenticator"),
        "{}",
        account.body
    );

    // The emergency email: a code to the new address, then the change, told to the old ones.
    let page = b.get("/_stepgate/emergency-email");
    assert_eq!(page.status, 200);
    let sent = b.submit(
        &page,
        "/emergency-email",
        &[("email", "alice.new@example.test")],
    );
    assert_eq!(sent.status, 200, "{sent:?}");
    let code = last_code_to(&gw, "alice.new@example.test");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(
        b.submit(&sent, "/emergency-email", &[("code", wrong)])
            .status,
        401
    );
    let changed = b.submit(&sent, "/emergency-email", &[("code", &code)]);
    assert_eq!(changed.status, 303, "{changed:?}");
    assert_eq!(
        changed.header("location"),
        Some("/_stepgate/account?done=emergency-email")
    );
    for old in ["alice@example.test", "alice.backup@example.test"] {
        let subjects = subjects_to(&gw, old);
        assert!(
            subjects
                .last()
                .unwrap()
                .contains("emergency contact email was changed"),
            "{old}: {subjects:?}"
        );
        let text = text_of_last(&gw, old);
        assert!(
            text.contains("When: ") && text.contains("From: 127.0.0.1"),
            "when and from where: {text}"
        );
    }

    // The app: a new secret, the old app working until the new one is confirmed.
    let page = b.get("/_stepgate/account/authenticator");
    assert_eq!(page.status, 200, "{page:?}");
    let new_key = key_on(&page);
    assert_ne!(new_key, old_key);
    let mut other = Browser::new(gw.addr);
    other.sign_in(ALICE.0, ALICE.1, "/app");
    clock.advance(Duration::from_secs(30));
    let c = other.get("/_stepgate/2fa?rd=%2Fapp");
    let old_code = totp_code(&old_key, clock.now_secs());
    assert_eq!(
        other.submit(&c, "/2fa", &[("code", &old_code)]).status,
        303,
        "the old app works while the new one is unconfirmed"
    );
    assert_eq!(other.get("/app").status, 200);
    clock.advance(Duration::from_secs(30));
    let refused = b.submit(
        &page,
        "/account/authenticator",
        &[("code", &totp_code(&old_key, clock.now_secs()))],
    );
    assert_eq!(
        refused.status, 401,
        "the old app's code does not confirm the new one"
    );
    let switched = b.submit(
        &page,
        "/account/authenticator",
        &[("code", &totp_code(&new_key, clock.now_secs()))],
    );
    assert_eq!(switched.status, 303, "{switched:?}");
    assert_eq!(
        switched.header("location"),
        Some("/_stepgate/account?done=authenticator")
    );
    assert_eq!(other.get("/app").status, 302, "other sessions end");
    for told in ["alice@example.test", "alice.new@example.test"] {
        assert!(
            subjects_to(&gw, told)
                .last()
                .unwrap()
                .contains("method was replaced"),
            "{told}"
        );
    }
    let done = b.get("/_stepgate/account?done=authenticator");
    assert!(
        done.body.contains("new authenticator app is in use"),
        "{}",
        done.body
    );

    // Next sign-in: the old app is refused, the new one works.
    let mut next = Browser::new(gw.addr);
    next.sign_in(ALICE.0, ALICE.1, "/app");
    clock.advance(Duration::from_secs(30));
    let c = next.get("/_stepgate/2fa?rd=%2Fapp");
    let now = clock.now_secs();
    assert_eq!(
        next.submit(&c, "/2fa", &[("code", &totp_code(&old_key, now))])
            .status,
        401
    );
    assert_eq!(
        next.submit(&c, "/2fa", &[("code", &totp_code(&new_key, now))])
            .status,
        303
    );
}

#[test]
fn after_removing_the_app_a_later_setup_proves_it_is_you_again() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    full_enrolment(&mut b, &gw, &clock, ALICE);
    let account = b.get("/_stepgate/account");
    let removed = b.submit(
        &account,
        "/account/remove-authenticator",
        &[("confirm", "yes")],
    );
    assert_eq!(removed.status, 303, "fresh from setup: {removed:?}");
    // Minutes later, the old two-factor session no longer stands in for the emailed code.
    clock.advance(Duration::from_secs(10 * 60));
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    assert_eq!(setup.status, 200);
    assert!(setup.body.contains("value=\"prove\""), "{}", setup.body);
}

#[test]
fn a_one_factor_session_of_an_enrolled_user_cannot_reach_setup() {
    let (_up, gw, clock) = start("");
    let mut owner = Browser::new(gw.addr);
    full_enrolment(&mut owner, &gw, &clock, ALICE);
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    for page in ["/_stepgate/setup?rd=%2Fapp", "/_stepgate/guide?rd=%2Fapp"] {
        let r = b.get(page);
        assert_eq!(r.status, 302, "{page}: {r:?}");
        assert_eq!(
            r.header("location"),
            Some("/_stepgate/2fa?rd=%2Fapp"),
            "{page}"
        );
    }
    let challenge = b.get("/_stepgate/2fa?rd=%2Fapp");
    let csrf = field(&challenge, "csrf");
    let before = mail_to(&gw, "alice@example.test").len();
    for step in ["send", "prove", "activate"] {
        let r = post(
            &mut b,
            "/_stepgate/setup",
            &[("csrf", &csrf), ("step", step), ("code", "123456")],
        );
        assert_eq!(r.status, 303, "{step}: {r:?}");
        assert_eq!(r.header("location"), Some("/_stepgate/2fa?rd="), "{step}");
    }
    assert_eq!(
        mail_to(&gw, "alice@example.test").len(),
        before,
        "no code was sent"
    );
    let r = b.get("/_stepgate/account/authenticator");
    assert_eq!(
        r.status, 302,
        "the change pages send a one-factor session to the challenge"
    );
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/_stepgate/2fa?rd="));
}
