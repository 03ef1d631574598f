//! Helpers for two-step verification scenarios: a gateway on a manual clock, the outbox by
//! recipient, and the setup journey through the real forms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stepgate::clock::{Clock, ManualClock};

use super::*;

pub const ALICE: (&str, &str) = ("alice", "alice-password-1");

/// Alice signed in on `gw` as soon as it lets her again after a fault (within 30 s), and served
/// on a sign-in route; `what` names what came back, for the failure message.
pub fn signed_in_once_back(gw: std::net::SocketAddr, what: &str) -> Browser {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut b = Browser::new(gw);
        if b.sign_in(ALICE.0, ALICE.1, "/").status == 303 {
            assert_eq!(b.get("/1fa/x").status, 200);
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "sign-ins did not come back with {what} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
pub const BOB: (&str, &str) = ("bob", "bob-password-1");

/// A gateway with the quickstart's rules and users plus `extra`, on a manual clock that starts
/// mid-step, so that "the same step" and "the next step" are unambiguous.
pub fn start(extra: &str) -> (Upstream, Gateway, Arc<ManualClock>) {
    start_with(&signin_config_for_clock(extra))
}

/// [`start`], with the client address taken from `X-Forwarded-For` sent by the test (loopback
/// is a trusted proxy), so that a test can come from other networks.
pub fn start_behind_proxy(extra: &str) -> (Upstream, Gateway, Arc<ManualClock>) {
    let text = signin_config_for_clock(extra).replacen(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        1,
    );
    start_with(&text)
}

/// The sign-in config with `{upstream}` standing for the upstream's address.
fn signin_config_for_clock(extra: &str) -> String {
    let placeholder: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
    signin_config(placeholder, extra).replace("http://127.0.0.1:1", "http://{upstream}")
}

fn start_with(text: &str) -> (Upstream, Gateway, Arc<ManualClock>) {
    let up = Upstream::start("app");
    let clock = ManualClock::now();
    let now = clock.now_ms();
    clock.set_ms(now - now % 30_000 + 10_000);
    let text = text.replace("{upstream}", &up.addr.to_string());
    let gw = Gateway::start_with_clock(&text, clock.clone());
    (up, gw, clock)
}

/// The messages the outbox holds for `to`.
pub fn mail_to(gw: &Gateway, to: &str) -> Vec<serde_json::Value> {
    outbox(&gw.data_dir())
        .into_iter()
        .filter(|m| m["to"] == to)
        .collect()
}

pub fn last_code_to(gw: &Gateway, to: &str) -> String {
    let mail = mail_to(gw, to);
    let m = mail.last().unwrap_or_else(|| panic!("no message to {to}"));
    assert_eq!(m["channel"], "email");
    m["code"]
        .as_str()
        .expect("the message carries a code")
        .to_owned()
}

/// The base32 key the setup page shows as text.
pub fn key_on(page: &Response) -> String {
    let start = page
        .body
        .find("<code class=\"key\">")
        .expect("key on the page")
        + 18;
    let end = page.body[start..].find("</code>").unwrap() + start;
    page.body[start..end].to_owned()
}

pub fn recovery_codes_on(page: &Response) -> Vec<String> {
    page.body
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split("</code>").next().unwrap().to_owned())
        .collect()
}

/// Signs `who` in and follows the gateway to the guide for `/app`; returns the guide page.
pub fn signed_in_at_guide(b: &mut Browser, who: (&str, &str)) -> Response {
    let done = b.sign_in(who.0, who.1, "http://127.0.0.1/app");
    assert_eq!(done.status, 303, "{done:?}");
    let app = b.get("/app");
    assert_eq!(app.status, 302, "{app:?}");
    assert_eq!(
        app.header("location"),
        Some("/_stepgate/guide?rd=http%3A%2F%2F127.0.0.1%2Fapp")
    );
    let guide = b.get(&location_target(&app));
    assert_eq!(guide.status, 200, "{guide:?}");
    guide
}

/// Sets up the authenticator for `who` from a fresh sign-in, with the registered email as the
/// emergency email; returns the key.
pub fn full_enrolment(
    b: &mut Browser,
    gw: &Gateway,
    clock: &ManualClock,
    who: (&str, &str),
) -> String {
    enrolment_with_contact(b, gw, clock, who, &format!("{}@example.test", who.0))
}

/// Sets up the authenticator for `who` from a fresh sign-in, with `contact` as the emergency
/// email (verified by the code sent to it when it is not the registered one); returns the key.
pub fn enrolment_with_contact(
    b: &mut Browser,
    gw: &Gateway,
    clock: &ManualClock,
    who: (&str, &str),
    contact: &str,
) -> String {
    let email = format!("{}@example.test", who.0);
    signed_in_at_guide(b, who);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    let sent = b.submit(&setup, "/setup", &[]);
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &last_code_to(gw, &email))],
    );
    let mut totp_page = b.submit(&proved, "/setup", &[("email", contact)]);
    if contact != email {
        totp_page = b.submit(
            &totp_page,
            "/_stepgate/setup",
            &[
                ("step", "contact_code"),
                ("code", &last_code_to(gw, contact)),
            ],
        );
    }
    let key = key_on(&totp_page);
    let done = b.submit(
        &totp_page,
        "/setup",
        &[("code", &totp_code(&key, clock.now_secs()))],
    );
    assert_eq!(done.status, 200, "{done:?}");
    key
}

/// Runs `stepgate admin --config <the gateway's file> ARGS` and returns what it printed on
/// standard output; panics with its standard error when it fails.
pub fn admin(gw: &Gateway, args: &[&str]) -> String {
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
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
