//! The user's signed-in devices as a second factor, through the portal with two cookie jars:
//! the approver (a phone signed in with two-step verification that became an approver device)
//! and the requester (a PC after its password). Approval with number matching, denial, a wrong
//! number, expiry, a replayed or stolen approval, approval fatigue, who may approve, "this
//! wasn't me", the security code for another device, and re-verification after the device's
//! identity changed.

mod common;

use std::time::Duration;

use common::two_factor::*;
use common::*;
use stepgate::clock::{Clock, ManualClock};

const PHONE_UA: &str =
    "User-Agent: Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36";

/// Alice's phone: enrolled with the app, then made an approver device. Returns it and the key.
fn phone(gw: &Gateway, clock: &ManualClock) -> (Browser, String) {
    let mut phone = Browser::new(gw.addr);
    phone.extra.push(PHONE_UA.into());
    let key = full_enrolment(&mut phone, gw, clock, ALICE);
    let devices = phone.get("/_stepgate/devices");
    assert_eq!(devices.status, 200, "{devices:?}");
    assert!(devices.body.contains("/devices/add"), "{}", devices.body);
    let added = phone.submit(&devices, "/devices/add", &[]);
    assert_eq!(added.status, 303, "{added:?}");
    assert_eq!(
        added.header("location"),
        Some("/_stepgate/devices?done=added")
    );
    let devices = phone.get("/_stepgate/devices");
    assert!(devices.body.contains("/devices/code"), "{}", devices.body);
    (phone, key)
}

/// A browser that signed in as alice with her password and is at the approval challenge.
fn requester(gw: &Gateway) -> (Browser, Response) {
    let mut pc = Browser::new(gw.addr);
    let done = pc.sign_in(ALICE.0, ALICE.1, "/app");
    assert_eq!(done.status, 303, "{done:?}");
    let app = pc.get("/app");
    assert_eq!(app.status, 302, "{app:?}");
    let challenge = pc.get(&location_target(&app));
    assert_eq!(challenge.status, 200, "{challenge:?}");
    assert!(
        challenge.body.contains("value=\"approve\""),
        "approval is offered first: {}",
        challenge.body
    );
    (pc, challenge)
}

/// Sends the request; returns the page with the number, and the number.
fn ask(pc: &mut Browser, challenge: &Response) -> (Response, String) {
    let asked = pc.submit(challenge, "/2fa/send", &[]);
    assert_eq!(asked.status, 200, "{asked:?}");
    let number = number_on(&asked);
    (asked, number)
}

/// The number (or code) a page shows in large type.
fn number_on(page: &Response) -> String {
    let start = page
        .body
        .find("class=\"number\"")
        .unwrap_or_else(|| panic!("no number on the page: {}", page.body));
    let rest = &page.body[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</p>").unwrap();
    rest[open..close].trim().to_owned()
}

fn decide(phone: &mut Browser, number: &str, decision: &str) -> Response {
    let page = phone.get("/_stepgate/approvals");
    assert_eq!(page.status, 200, "{page:?}");
    phone.submit(
        &page,
        "/_stepgate/approvals",
        &[("number", number), ("decision", decision)],
    )
}

fn csrf_on(page: &Response) -> String {
    forms(&page.body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v)
        .expect("a form with a CSRF token")
}

fn other(number: &str) -> String {
    let n: u8 = number.parse().unwrap();
    (if n == 99 { 10 } else { n + 1 }).to_string()
}

#[test]
fn a_sign_in_approved_on_the_phone_with_the_number_lets_the_pc_in_once() {
    let (up, gw, clock) = start("");
    let (mut phone, _) = phone(&gw, &clock);
    let notices = mail_to(&gw, "alice@example.test");
    assert!(
        notices.iter().any(|m| m["subject"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("added")
            && m["text"].as_str().unwrap_or("").contains("approver device")),
        "the user is told a device was added: {notices:?}"
    );
    let waiting = phone.get("/_stepgate/approvals");
    assert!(
        waiting.body.contains("data-approvals-wait"),
        "{}",
        waiting.body
    );

    let (mut pc, challenge) = requester(&gw);
    let (asked, number) = ask(&mut pc, &challenge);
    assert!(
        (10..=99).contains(&number.parse::<u8>().unwrap()),
        "{number}"
    );
    assert!(asked.body.contains("data-approval-wait"), "{}", asked.body);

    // Not approved yet: the continue button says so, and counts nothing.
    let early = pc.submit(&asked, "/_stepgate/2fa", &[]);
    assert_eq!(early.status, 409, "{early:?}");

    // The phone's page learns of the request at once (the long poll answers as soon as the
    // request differs from what the page shows).
    let woke = phone.get("/_stepgate/approvals/wait?seen=");
    assert_eq!(woke.status, 200, "{woke:?}");
    assert!(woke.body.starts_with("{\"reference\":\""), "{}", woke.body);
    assert_eq!(woke.header("cache-control"), Some("no-store"));

    // The phone sees where the request comes from, and the number is not on its page.
    let page = phone.get("/_stepgate/approvals");
    assert!(page.body.contains("127.0.0.1"), "{}", page.body);
    assert!(!page.body.contains(&format!(">{number}<")), "{}", page.body);
    let approved = decide(&mut phone, &number, "approve");
    assert_eq!(approved.status, 303, "{approved:?}");

    let state = pc.get("/_stepgate/2fa/approval");
    assert_eq!(state.body, "{\"state\":\"approved\"}");

    // A stolen request ID is worth nothing to another browser of the same user.
    let stolen_id = forms(&asked.body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == "request")
        .map(|(_, v)| v)
        .expect("the request's ID is in the page");
    let (mut thief, thief_page) = requester(&gw);
    let body = format!(
        "csrf={}&rd=%2Fapp&method=approve&request={stolen_id}",
        csrf_on(&thief_page)
    );
    let stolen = thief.request("POST", "/_stepgate/2fa", Some(&body));
    assert_eq!(stolen.status, 401, "{stolen:?}");

    // The PC goes on: a new session at 2fa, the app sees the method.
    let stale = pc.cookies.clone();
    let passed = pc.submit(&asked, "/_stepgate/2fa", &[]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_ne!(pc.cookies, stale, "a new session ID");
    let app = pc.get("/app");
    assert_eq!(app.status, 200, "{app:?}");
    let seen = up.last();
    assert_eq!(seen.header("remote-auth-methods"), Some("pwd,mca"));
    assert_eq!(seen.header("remote-auth-level"), Some("2fa"));

    // The approval lets one browser in once: the old session cannot use it again.
    let mut replay = Browser::new(gw.addr);
    replay.cookies = stale;
    let again = replay.submit(&asked, "/_stepgate/2fa", &[]);
    assert!(
        again
            .header("location")
            .is_some_and(|l| l.starts_with("/_stepgate/login")),
        "the replaced session signs in again: {again:?}"
    );
    assert_eq!(replay.get("/app").status, 302);
}

#[test]
fn denied_a_wrong_number_and_expiry_refuse_and_too_many_requests_cool_down() {
    let (_up, gw, clock) = start("");
    let (mut phone, _) = phone(&gw, &clock);
    let (mut pc, challenge) = requester(&gw);

    // Denied.
    let (asked, _) = ask(&mut pc, &challenge);
    assert_eq!(decide(&mut phone, "", "deny").status, 303);
    let refused = pc.submit(&asked, "/_stepgate/2fa", &[]);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(refused.body.contains("denied"), "{}", refused.body);

    // A wrong number denies, and says so on the phone.
    let (asked, number) = ask(&mut pc, &challenge);
    let wrong = decide(&mut phone, &other(&number), "approve");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.body.contains("did not match"), "{}", wrong.body);
    assert_eq!(pc.submit(&asked, "/_stepgate/2fa", &[]).status, 401);

    // Unanswered for two minutes: gone from the phone, refused on the PC.
    let (asked, _) = ask(&mut pc, &challenge);
    clock.advance(Duration::from_secs(121));
    let page = phone.get("/_stepgate/approvals");
    assert!(page.body.contains("data-approvals-wait"), "{}", page.body);
    let late = pc.submit(&asked, "/_stepgate/2fa", &[]);
    assert_eq!(late.status, 401, "{late:?}");
    assert!(late.body.contains("ran out"), "{}", late.body);

    // A fourth request in ten minutes starts the cool-down, and the user is told once.
    let before = mail_to(&gw, "alice@example.test").len();
    let tired = pc.submit(&challenge, "/2fa/send", &[]);
    assert_eq!(tired.status, 429, "{tired:?}");
    assert!(tired.header("retry-after").is_some());
    let again = pc.submit(&challenge, "/2fa/send", &[]);
    assert_eq!(again.status, 429);
    let told: Vec<_> = mail_to(&gw, "alice@example.test")
        .into_iter()
        .skip(before)
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("Too many sign-in approval requests")
        })
        .collect();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    // The other methods still work during the cool-down.
    assert!(
        tired.body.contains("method=totp"),
        "other methods are offered: {}",
        tired.body
    );
}

#[test]
fn only_a_recent_two_factor_approver_device_decides_and_a_changed_one_verifies_again() {
    let (_up, gw, clock) = start("[two_factor]\napprover_max_age = \"20m\"\n");
    let (mut phone, key) = phone(&gw, &clock);
    let (mut pc, challenge) = requester(&gw);
    let (asked, number) = ask(&mut pc, &challenge);

    // The requesting (one-factor) session cannot approve itself.
    let own = pc.get("/_stepgate/approvals");
    assert_eq!(own.status, 200);
    assert!(own.body.contains("two-step verification"), "{}", own.body);
    let csrf = forms(&asked.body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v)
        .unwrap();
    let body = format!("csrf={csrf}&request=x&number={number}&decision=approve");
    let forged = pc.request("POST", "/_stepgate/approvals", Some(&body));
    assert_eq!(forged.status, 403, "{forged:?}");

    // The phone's device cookie in another browser: not an approver until verified again.
    let device = phone
        .cookie("stepgate_device")
        .expect("a device cookie")
        .to_owned();
    let mut copied = Browser::new(gw.addr);
    copied.cookies = phone.cookies.clone();
    copied.extra.push("User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0".into());
    let page = copied.get("/_stepgate/approvals");
    assert!(page.body.contains("changed"), "{}", page.body);
    assert!(!page.body.contains("name=\"number\""), "{}", page.body);
    let reference = forms(&phone.get("/_stepgate/approvals").body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == "request")
        .map(|(_, v)| v)
        .expect("the phone sees the request");
    let body = format!(
        "csrf={csrf_of_phone}&request={reference}&number={number}&decision=approve",
        csrf_of_phone = csrf_on(&phone.get("/_stepgate/devices"))
    );
    let refused = copied.request("POST", "/_stepgate/approvals", Some(&body));
    assert_eq!(refused.status, 403, "{refused:?}");

    // The phone lost its device cookie: not an approver either.
    phone.cookies.retain(|(n, _)| n != "stepgate_device");
    let lost = phone.get("/_stepgate/approvals");
    assert!(lost.body.contains("not an approver"), "{}", lost.body);
    phone.cookies.push(("stepgate_device".into(), device));

    // A phone whose proof is older than `approver_max_age` must sign in again first.
    clock.advance(Duration::from_secs(15 * 60));
    phone.get("/_stepgate/account"); // still in use: not idle
    clock.advance(Duration::from_secs(10 * 60));
    let old = phone.get("/_stepgate/approvals");
    assert!(old.body.contains("too long ago"), "{}", old.body);

    // The copy verifies again (a fresh proof first) and becomes an approver of its own.
    copied.get("/_stepgate/account");
    let devices = copied.get("/_stepgate/devices");
    let confirm = copied.submit(&devices, "/devices/add", &[]);
    assert_eq!(confirm.status, 200, "the confirmation page: {confirm:?}");
    let confirmed = copied.submit(
        &confirm,
        "/account/verify",
        &[("code", &totp_code(&key, clock.now_secs() + 30))],
    );
    assert_eq!(confirmed.status, 303, "{confirmed:?}");
    let devices = copied.get("/_stepgate/devices");
    let added = copied.submit(&devices, "/devices/add", &[]);
    assert_eq!(added.status, 303, "{added:?}");
    let (asked, number) = ask(&mut pc, &challenge);
    assert_eq!(decide(&mut copied, &number, "approve").status, 303);
    assert_eq!(pc.submit(&asked, "/_stepgate/2fa", &[]).status, 303);
}

#[test]
fn this_wasnt_me_signs_the_requester_out_bans_its_address_and_offers_the_lock() {
    let (_up, gw, clock) = start_behind_proxy("");
    let (mut phone, _) = phone(&gw, &clock);
    let mut pc = Browser::new(gw.addr);
    pc.extra.push("X-Forwarded-For: 203.0.113.9".into());
    assert_eq!(pc.sign_in(ALICE.0, ALICE.1, "/app").status, 303);
    let app = pc.get("/app");
    let challenge = pc.get(&location_target(&app));
    let (_asked, _) = ask(&mut pc, &challenge);

    let not_me = decide(&mut phone, "", "not_me");
    assert_eq!(not_me.status, 200, "{not_me:?}");
    assert!(not_me.body.contains("/approvals/lock"), "{}", not_me.body);
    // The requesting session is over, and its address may not try again for now.
    let out = pc.get("/app");
    assert_eq!(out.status, 302);
    assert!(out
        .header("location")
        .unwrap()
        .starts_with("/_stepgate/login"));
    assert_eq!(pc.sign_in(ALICE.0, ALICE.1, "/app").status, 401);
    let mut elsewhere = Browser::new(gw.addr);
    elsewhere.extra.push("X-Forwarded-For: 198.51.100.4".into());
    assert_eq!(elsewhere.sign_in(BOB.0, BOB.1, "/app").status, 303);

    // The owner locks the account from the phone: every session ends, sign-in fails.
    let locked = phone.submit(&not_me, "/approvals/lock", &[]);
    assert_eq!(locked.status, 200, "{locked:?}");
    assert_eq!(phone.get("/app").status, 302);
    let mut owner = Browser::new(gw.addr);
    owner.extra.push("X-Forwarded-For: 198.51.100.5".into());
    assert_eq!(owner.sign_in(ALICE.0, ALICE.1, "/app").status, 401);
    let audit = admin(&gw, &["audit", "alice"]);
    assert!(audit.contains("approval_not_me"), "{audit}");
    assert!(audit.contains("account_locked"), "{audit}");
}

#[test]
fn a_security_code_from_the_phone_signs_the_pc_in_once() {
    let (up, gw, clock) = start("");
    let (mut phone, _) = phone(&gw, &clock);
    let devices = phone.get("/_stepgate/devices");
    let shown = phone.submit(&devices, "/devices/code", &[]);
    assert_eq!(shown.status, 200, "{shown:?}");
    let code = number_on(&shown);
    assert_eq!(code.len(), 6, "{code}");

    let (mut pc, _) = requester(&gw);
    let page = pc.get("/_stepgate/2fa?rd=%2Fapp&method=device-code");
    assert!(page.body.contains("security code"), "{}", page.body);
    let wrong = pc.submit(&page, "/_stepgate/2fa", &[("code", "000000")]);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let passed = pc.submit(&page, "/_stepgate/2fa", &[("code", &code)]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(pc.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,mca"));

    // Used once; a one-factor session cannot show one.
    let (mut again, _) = requester(&gw);
    let page = again.get("/_stepgate/2fa?rd=%2Fapp&method=device-code");
    assert_eq!(
        again
            .submit(&page, "/_stepgate/2fa", &[("code", &code)])
            .status,
        401
    );
    let devices = again.get("/_stepgate/devices");
    assert!(!devices.body.contains("/devices/code"), "{}", devices.body);
    let csrf = forms(&page.body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v)
        .unwrap();
    let forced = again.request(
        "POST",
        "/_stepgate/devices/code",
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(forced.status, 403, "{forced:?}");

    // Removing the device takes approval and codes away.
    let devices = phone.get("/_stepgate/devices");
    let removed = phone.submit(&devices, "/devices/remove", &[]);
    assert_eq!(removed.status, 303);
    let (_, challenge) = {
        let mut b = Browser::new(gw.addr);
        b.sign_in(ALICE.0, ALICE.1, "/app");
        let app = b.get("/app");
        let c = b.get(&location_target(&app));
        (b, c)
    };
    assert!(
        !challenge.body.contains("method=approve"),
        "{}",
        challenge.body
    );
    assert!(
        !challenge.body.contains("value=\"approve\""),
        "{}",
        challenge.body
    );
}

#[test]
fn an_operator_lists_and_removes_a_users_approver_devices() {
    let (_up, gw, clock) = start("");
    let _phone = phone(&gw, &clock);
    let listed: serde_json::Value =
        serde_json::from_str(&admin(&gw, &["devices", "alice", "--json"])).unwrap();
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{listed}");
    assert!(
        devices[0]["browser"].as_str().unwrap().contains("Android"),
        "{listed}"
    );
    let id = devices[0]["id"].as_str().unwrap().to_owned();
    let table = admin(&gw, &["devices", "alice"]);
    assert!(table.contains(&id), "{table}");

    let removed = admin(&gw, &["devices", "alice", "--remove-all"]);
    assert!(removed.contains("removed 1 approver device"), "{removed}");
    assert!(admin(&gw, &["audit", "alice"]).contains("approver_removed_by_operator"));
    let (mut pc, _) = {
        let mut b = Browser::new(gw.addr);
        b.sign_in(ALICE.0, ALICE.1, "/app");
        let app = b.get("/app");
        let c = b.get(&location_target(&app));
        (b, c)
    };
    let challenge = pc.get("/_stepgate/2fa?rd=%2Fapp");
    assert!(
        !challenge.body.contains("value=\"approve\""),
        "{}",
        challenge.body
    );
}
