//! Codes the gateway sends at the challenge: "verify by email instead", resending, the send
//! block of seed 002 (a day, across a restart), and a provider that is down. Each test owns its
//! gateway, its outbox and a manual clock.

mod common;

use std::time::Duration;

use common::two_factor::*;
use common::*;

/// Alice with an authenticator app (her emergency email is her registered one), signed in
/// again with her password: returns her browser, at the challenge.
fn at_the_challenge(gw: &Gateway, clock: &stepgate::clock::ManualClock) -> Browser {
    let mut b = Browser::new(gw.addr);
    full_enrolment(&mut b, gw, clock, ALICE);
    let account = b.get("/_stepgate/account");
    b.submit(&account, "/logout", &[]);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    b
}

fn email_page(b: &mut Browser) -> Response {
    let challenge = b.get("/_stepgate/2fa?rd=%2Fapp");
    assert!(
        challenge.body.contains("method=email"),
        "every challenge offers email: {}",
        challenge.body
    );
    let page = b.get("/_stepgate/2fa?rd=%2Fapp&method=email");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("a***e@example.test"), "{}", page.body);
    assert!(
        !page.body.contains("name=\"code\""),
        "no field before a code is sent"
    );
    page
}

fn codes_to(gw: &Gateway, to: &str) -> Vec<String> {
    mail_to(gw, to)
        .iter()
        .filter_map(|m| m["code"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn verify_by_email_instead_passes_the_challenge_and_a_resend_kills_the_old_code() {
    let (up, gw, clock) = start("");
    let mut b = at_the_challenge(&gw, &clock);
    let page = email_page(&mut b);
    let before = codes_to(&gw, "alice@example.test").len();
    let sent = b.submit(&page, "/2fa/send", &[]);
    assert_eq!(sent.status, 200, "{sent:?}");
    assert!(sent.body.contains("name=\"code\""), "{}", sent.body);
    let first = codes_to(&gw, "alice@example.test")[before].clone();
    // A new code only after the wait, which the page states.
    assert!(sent.body.contains("30 seconds"), "{}", sent.body);
    let soon = b.submit(&sent, "/2fa/send", &[]);
    assert_eq!(soon.status, 429, "{soon:?}");
    assert_eq!(codes_to(&gw, "alice@example.test").len(), before + 1);
    clock.advance(Duration::from_secs(30));
    let resent = b.submit(&sent, "/2fa/send", &[]);
    let second = codes_to(&gw, "alice@example.test").last().unwrap().clone();
    assert_eq!(codes_to(&gw, "alice@example.test").len(), before + 2);
    if first != second {
        let old = b.submit(&resent, "/_stepgate/2fa", &[("code", &first)]);
        assert_eq!(old.status, 401, "the resend killed the first code");
    }
    let passed = b.submit(&resent, "/_stepgate/2fa", &[("code", &second)]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(b.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,email"));
    // Used once.
    let mut again = Browser::new(gw.addr);
    again.sign_in(ALICE.0, ALICE.1, "/app");
    let page = again.get("/_stepgate/2fa?rd=%2Fapp&method=email");
    let sent = again.submit(&page, "/2fa/send", &[]);
    let replay = again.submit(&sent, "/_stepgate/2fa", &[("code", &second)]);
    assert_eq!(replay.status, 401);
}

#[test]
fn too_many_code_requests_block_sending_for_a_day_even_across_a_restart() {
    let (_up, mut gw, clock) = start("");
    let mut b = at_the_challenge(&gw, &clock);
    let mut page = email_page(&mut b);
    // Setup sent one code to the same address already, within the hour: five in all.
    let already = codes_to(&gw, "alice@example.test").len();
    for _ in already..5 {
        clock.advance(Duration::from_secs(31));
        page = b.submit(&page, "/2fa/send", &[]);
        assert_eq!(page.status, 200, "{page:?}");
    }
    let sent = codes_to(&gw, "alice@example.test").len();
    clock.advance(Duration::from_secs(31));
    let blocked = b.submit(&page, "/2fa/send", &[]);
    assert_eq!(blocked.status, 429, "{blocked:?}");
    let wait: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&wait), "{wait}");
    assert!(blocked.body.contains("24 hours"), "{}", blocked.body);
    assert_eq!(
        codes_to(&gw, "alice@example.test").len(),
        sent,
        "nothing reached the provider"
    );

    // A restart keeps the block; a day lifts it.
    gw.restart();
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    let page = b.get("/_stepgate/2fa?rd=%2Fapp&method=email");
    assert_eq!(b.submit(&page, "/2fa/send", &[]).status, 429);
    clock.advance(Duration::from_secs(24 * 3600));
    let mut b = Browser::new(gw.addr);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    let page = b.get("/_stepgate/2fa?rd=%2Fapp&method=email");
    assert_eq!(b.submit(&page, "/2fa/send", &[]).status, 200);
    assert_eq!(codes_to(&gw, "alice@example.test").len(), sent + 1);
}

#[test]
fn a_provider_that_is_down_lets_nothing_past_and_keeps_the_users_place() {
    let (_up, mut gw, clock) = start("");
    let mut b = at_the_challenge(&gw, &clock);
    // The operator moves email to a webhook on a port nobody listens on.
    let dead = free_port();
    let config = gw.data_dir().parent().unwrap().join("stepgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[notify]\nemail = \"webhook\"\n[notify.webhook]\nurl = \"http://127.0.0.1:{dead}/send\"\nretries = 0\ntimeout = \"1s\"\n"
        ),
    )
    .unwrap();
    gw.restart();

    let page = b.get("/_stepgate/2fa?rd=%2Fapp&method=email");
    let failed = b.submit(&page, "/2fa/send", &[]);
    assert_eq!(failed.status, 503, "{failed:?}");
    assert!(failed.body.contains("could not be sent"), "{}", failed.body);
    assert!(
        failed.body.contains("2fa/send"),
        "the user can try again from here"
    );
    assert!(!failed.body.contains("name=\"code\""), "no code is pending");
    assert_eq!(b.get("/app").status, 302, "nothing let past");
    // A failed send is not counted: five more tries each fail the same way, not with a block.
    for _ in 0..5 {
        assert_eq!(b.submit(&page, "/2fa/send", &[]).status, 503);
    }
}

/// Alice through setup to the method choice, with SMS offered.
fn at_the_method_choice(gw: &Gateway) -> (Browser, Response) {
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    let sent = b.submit(&setup, "/setup", &[]);
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[
            ("step", "prove"),
            ("code", &last_code_to(gw, "alice@example.test")),
        ],
    );
    let choice = b.submit(&proved, "/setup", &[("email", "alice@example.test")]);
    assert_eq!(choice.status, 200, "{choice:?}");
    assert!(
        choice.body.contains("value=\"+821000000001\""),
        "the users file's phone is suggested: {}",
        choice.body
    );
    (b, choice)
}

#[test]
fn sms_is_set_up_with_a_code_to_the_phone_and_then_used_at_sign_in() {
    let (up, gw, _clock) = start("[two_factor]\nmethods = [\"totp\", \"sms\"]\n");
    let phone = "+821000000001";
    let (mut b, choice) = at_the_method_choice(&gw);
    // Not a number: refused, nothing sent.
    let bad = b.submit(
        &choice,
        "/setup",
        &[("method", "sms"), ("phone", "010-1234")],
    );
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(mail_to(&gw, phone).is_empty());
    // Spaces and dashes are fine.
    let sent = b.submit(
        &bad,
        "/setup",
        &[("method", "sms"), ("phone", "+82 10-0000-0001")],
    );
    assert!(sent.body.contains("+82 10-****-0001"), "{}", sent.body);
    let sms = mail_to(&gw, phone).pop().expect("a text message");
    assert_eq!(sms["channel"], "sms");
    let code = sms["code"].as_str().unwrap().to_owned();
    let wrong = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "phone_code"), ("code", "000000")],
    );
    assert_eq!(wrong.status, 401);
    let done = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "phone_code"), ("code", &code)],
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(recovery_codes_on(&done).len(), 10);
    assert_eq!(b.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,sms"));
    let account = b.get("/_stepgate/account");
    assert!(
        account.body.contains("+82 10-****-0001"),
        "{}",
        account.body
    );

    // The next sign-in asks for an SMS code by default, sent when asked for.
    b.submit(&account, "/logout", &[]);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    let challenge = b.get("/_stepgate/2fa?rd=%2Fapp");
    assert!(
        challenge.body.contains("+82 10-****-0001"),
        "{}",
        challenge.body
    );
    assert!(
        challenge.body.contains("method=email"),
        "email instead is offered"
    );
    let before = mail_to(&gw, phone).len();
    let sent = b.submit(&challenge, "/2fa/send", &[]);
    assert_eq!(mail_to(&gw, phone).len(), before + 1);
    let code = mail_to(&gw, phone).pop().unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let passed = b.submit(&sent, "/_stepgate/2fa", &[("code", &code)]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(b.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,sms"));
}

#[test]
fn without_sms_offered_setup_goes_straight_to_the_app() {
    let (_up, gw, _clock) = start("");
    let mut b = Browser::new(gw.addr);
    signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    let sent = b.submit(&setup, "/setup", &[]);
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[
            ("step", "prove"),
            ("code", &last_code_to(&gw, "alice@example.test")),
        ],
    );
    let app = b.submit(&proved, "/setup", &[("email", "alice@example.test")]);
    assert!(app.body.contains("<code class=\"key\">"), "{}", app.body);
    assert!(!app.body.contains("name=\"phone\""));
}

#[test]
fn the_sms_phone_is_changed_behind_a_fresh_proof_and_the_old_number_is_told() {
    let (_up, gw, clock) = start("[two_factor]\nmethods = [\"totp\", \"sms\"]\n");
    let (old, new) = ("+821000000001", "+821099998888");
    let (mut b, choice) = at_the_method_choice(&gw);
    let sent = b.submit(&choice, "/setup", &[("method", "sms"), ("phone", old)]);
    let code = mail_to(&gw, old).pop().unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "phone_code"), ("code", &code)],
    );
    assert_eq!(done.status, 200);

    // Minutes later the proof is stale: the page asks to confirm, by a code to the phone.
    clock.advance(Duration::from_secs(6 * 60));
    let confirm = b.get("/_stepgate/phone");
    assert!(confirm.body.contains("account/verify"), "{}", confirm.body);
    let texted = b.submit(&confirm, "/account/verify", &[("send", "sms")]);
    assert_eq!(texted.status, 200, "{texted:?}");
    let code = mail_to(&gw, old).pop().unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    // The page's second form takes the code (the first one sends).
    let form = forms(&texted.body)
        .into_iter()
        .find(|f| {
            f.action.ends_with("/account/verify") && !f.fields.iter().any(|(n, _)| n == "send")
        })
        .expect("the code form");
    let mut fields = form.fields.clone();
    fields.retain(|(n, _)| n != "code");
    fields.push(("code".into(), code.clone()));
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    let proved = b.request("POST", &form.action, Some(&body));
    assert_eq!(proved.status, 303, "{proved:?}");

    // The new number gets a code; only that code changes the phone.
    let page = b.get("/_stepgate/phone");
    assert!(page.body.contains("+82 10-****-0001"), "{}", page.body);
    let bad = b.submit(&page, "/phone", &[("phone", "12345")]);
    assert_eq!(bad.status, 400);
    let waiting = b.submit(&page, "/phone", &[("phone", new)]);
    assert!(
        waiting.body.contains("+82 10-****-8888"),
        "{}",
        waiting.body
    );
    let code = mail_to(&gw, new).pop().unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = b.submit(
        &waiting,
        "/_stepgate/phone",
        &[("step", "code"), ("code", "000000")],
    );
    assert_eq!(wrong.status, 401);
    let changed = b.submit(
        &waiting,
        "/_stepgate/phone",
        &[("step", "code"), ("code", &code)],
    );
    assert_eq!(changed.status, 303, "{changed:?}");
    // The old number and the addresses on file are told.
    let to_old = mail_to(&gw, old).pop().unwrap();
    assert_eq!(to_old["channel"], "sms");
    assert!(
        to_old["text"].as_str().unwrap().contains("changed"),
        "{to_old}"
    );
    assert!(mail_to(&gw, "alice@example.test")
        .iter()
        .any(|m| m["subject"].as_str().unwrap().contains("phone was changed")));

    // The next challenge texts the new number.
    let account = b.get("/_stepgate/account");
    b.submit(&account, "/logout", &[]);
    b.sign_in(ALICE.0, ALICE.1, "/app");
    let challenge = b.get("/_stepgate/2fa?rd=%2Fapp");
    let before = mail_to(&gw, new).len();
    b.submit(&challenge, "/2fa/send", &[]);
    assert_eq!(mail_to(&gw, new).len(), before + 1);
}

/// The forms a fake provider took, each as its fields.
type Taken = std::sync::Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>;

/// A fake SMS provider on loopback, Twilio-style: it takes form posts with Basic auth, refuses
/// a wrong password with 401, and keeps the forms it took.
struct Provider {
    addr: std::net::SocketAddr,
    taken: Taken,
}

impl Provider {
    fn start(user: &str, password: &str) -> Provider {
        use base64::Engine;
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let taken: Taken = Default::default();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let kept = taken.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut len, mut auth, mut form) = (0usize, String::new(), false);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        auth = line["authorization:".len()..].trim().to_owned();
                    }
                    if lower.starts_with("content-type:")
                        && lower.contains("application/x-www-form-urlencoded")
                    {
                        form = true;
                    }
                    line.clear();
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let status = if auth == expected && form {
                    let fields = url::form_urlencoded::parse(&body).into_owned().collect();
                    kept.lock().unwrap().push(fields);
                    "200 OK"
                } else {
                    "401 Unauthorized"
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Provider { addr, taken }
    }

    fn codes_to(&self, phone: &str) -> Vec<String> {
        self.taken
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.iter().any(|(k, v)| k == "To" && v == phone))
            .filter_map(|f| f.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()))
            .filter_map(|body| {
                body.split_whitespace()
                    .find(|w| {
                        w.trim_end_matches('.').len() == 6
                            && w.trim_end_matches('.').chars().all(|c| c.is_ascii_digit())
                    })
                    .map(|w| w.trim_end_matches('.').to_owned())
            })
            .collect()
    }
}

#[test]
fn sms_through_a_real_provider_on_loopback_with_form_bodies_and_basic_auth() {
    let provider = Provider::start("AC0001", "token-1");
    let extra = format!(
        "[two_factor]\nmethods = [\"totp\", \"sms\"]\n[notify]\nsms = \"webhook\"\n[notify.webhook]\nurl = \"http://{}/Messages\"\nbody_format = \"form\"\nbasic_auth_user = \"AC0001\"\nbasic_auth_password = \"token-1\"\nretries = 0\n[notify.webhook.form_fields]\nTo = \"{{{{ to }}}}\"\nFrom = \"+15005550006\"\nBody = \"{{{{ text }}}}\"\n",
        provider.addr
    );
    let (up, gw, _clock) = start(&extra);
    let phone = "+821000000001";
    let (mut b, choice) = at_the_method_choice(&gw);
    let sent = b.submit(&choice, "/setup", &[("method", "sms"), ("phone", phone)]);
    assert_eq!(sent.status, 200, "{sent:?}");
    let code = provider
        .codes_to(phone)
        .pop()
        .expect("the provider took a form with the code");
    assert!(
        mail_to(&gw, phone).is_empty(),
        "SMS went to the provider, not the outbox"
    );
    let done = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "phone_code"), ("code", &code)],
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(b.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,sms"));
}
