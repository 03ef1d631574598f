//! Passkeys in a real browser: headless chromium with chromedriver's virtual authenticator
//! (WebAuthn extension commands: CTAP2, internal transport, resident keys, user verification).
//! Alice, with two-step verification set up, adds a passkey on `/passkeys` through the page's
//! script, signs out, signs in with her password and passes the challenge with the passkey; the
//! app receives `Remote-Auth-Methods: pwd,hwk`. Then, signed out, she signs in with the passkey
//! alone (passwordless): the app receives `hwk`. Every page passes the suite's checks (no
//! overflow, no console error or CSP violation, contrast, labels, language), in English at 390 px
//! dark and in Korean at 1280 px light.
//!
//! A test binary of its own, so that it does not disturb the four journeys of `browser.rs`.
//! Without chromium and chromedriver it skips, saying so on stderr; under `CI=true` it fails.

mod common;

/// The browser suite's own modules, in `tests/browser/`.
#[allow(dead_code)]
mod browser {
    pub mod checks;
    pub mod driver;
}

use std::sync::Arc;

use browser::checks::{self, Condition, Lang, Report, Scheme};
use browser::driver::{self, Browser, Options, Tools};
use common::two_factor::{full_enrolment, ALICE};
use common::{config_with, Gateway, Upstream, RULES};
use stepgate::clock::{Clock, ManualClock};

const PREFIX: &str = "/_stepgate";

/// The quickstart's rules, the app on `127.0.0.1` and `localhost`, and passkeys for
/// `http://localhost:<port>` (browsers treat localhost as a secure context and refuse an IP
/// address as an RP ID).
fn gateway() -> (Upstream, Gateway, Arc<ManualClock>) {
    let up = Upstream::start("app");
    let passkeys = "[passkeys]\nenabled = true\nrp_id = \"localhost\"\norigins = [\"http://localhost:{port}\"]\npasswordless = true\n";
    let text = config_with(
        &["127.0.0.1", "localhost"],
        &[up.addr],
        &format!("{passkeys}\n{RULES}"),
    );
    let clock = ManualClock::now();
    let now = clock.now_ms();
    clock.set_ms(now - now % 30_000 + 10_000);
    let gw = Gateway::start_with_clock(&text, clock.clone());
    (up, gw, clock)
}

#[test]
fn a_passkey_is_added_passes_the_challenge_and_signs_in_en_390_dark() {
    journey(Condition {
        lang: Lang::En,
        width: 390,
        scheme: Scheme::Dark,
    });
}

#[test]
fn a_passkey_is_added_passes_the_challenge_and_signs_in_ko_1280_light() {
    journey(Condition {
        lang: Lang::Ko,
        width: 1280,
        scheme: Scheme::Light,
    });
}

fn journey(cond: Condition) {
    let Some(tools) = driver::tools_or_skip() else {
        return;
    };
    let (up, gw, clock) = gateway();
    // Two-step verification set up over HTTP: this test is about passkeys.
    let mut helper = common::Browser::new(gw.addr);
    full_enrolment(&mut helper, &gw, &clock, ALICE);
    let session = helper
        .cookie("stepgate_session")
        .expect("a session after setup")
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the WebDriver client");
    runtime.block_on(run(&tools, cond, &gw, &up, &session));
}

/// What the app received with its latest page (not the icon the browser asks for after it):
/// the level and the methods.
fn app_saw(up: &Upstream) -> (String, String) {
    let seen = up
        .requests()
        .into_iter()
        .rfind(|r| r.target() == "/app")
        .expect("the app was reached");
    let h = |n: &str| seen.header(n).unwrap_or_default().to_owned();
    (h("remote-auth-level"), h("remote-auth-methods"))
}

async fn run(tools: &Tools, cond: Condition, gw: &Gateway, up: &Upstream, session: &str) {
    let options = Options {
        language: cond.lang.tag(),
        width: cond.width,
        dark: cond.scheme == Scheme::Dark,
    };
    let b = Browser::start(tools, &options).await;
    let mut report = Report::new(&format!("passkeys-{cond}"));
    let other = if cond.width < 600 { 1280 } else { 390 };
    let base = format!("http://localhost:{}", gw.addr.port());
    let url = |path: &str| format!("{base}{path}");
    b.add_virtual_authenticator().await;

    // The two-factor session from setup, in the browser (through DevTools: WebDriver's
    // add-cookie refuses the host `localhost`).
    let set = b
        .cdp(
            "Network.setCookie",
            serde_json::json!({
                "name": "stepgate_session",
                "value": session,
                "url": base,
                "path": "/",
                "httpOnly": true,
                "sameSite": "Lax",
            }),
        )
        .await;
    assert_eq!(set["success"], true, "cookie set: {set}");

    // The account page links to the passkeys page, which lists none yet.
    b.goto(&url(&format!("{PREFIX}/account"))).await;
    b.wait_path(&format!("{PREFIX}/account")).await;
    checks::page(&b, &mut report, "account", cond, [cond.width, other]).await;
    b.click_to_load(&format!("a.button[href$=\"{PREFIX}/passkeys\"]"))
        .await;
    b.wait_path(&format!("{PREFIX}/passkeys")).await;
    b.wait_for(
        "the script to show the add button",
        "!document.querySelector('[data-passkey-button]').hidden",
    )
    .await;
    checks::page(&b, &mut report, "passkeys", cond, [cond.width, other]).await;

    // Add one: the script asks the virtual authenticator and submits the form.
    b.fill(&format!("{PREFIX}/passkeys/add"), "name", "Test laptop")
        .await;
    b.submit(&format!("{PREFIX}/passkeys/add"), None).await;
    b.wait_for(
        "the list with the new passkey",
        "location.search.includes('done=added') && document.body.textContent.includes('Test laptop')",
    )
    .await;
    checks::page(&b, &mut report, "passkeys-added", cond, [cond.width, other]).await;

    // Sign out, and in again with the password: the challenge offers the passkey.
    b.submit(&format!("{PREFIX}/logout"), None).await;
    b.goto(&url("/app")).await;
    b.wait_path(&format!("{PREFIX}/login")).await;
    let login = format!("{PREFIX}/login");
    b.fill(&login, "username", ALICE.0).await;
    b.fill(&login, "password", ALICE.1).await;
    b.submit(&login, None).await;
    b.wait_path(&format!("{PREFIX}/2fa")).await;
    b.click_to_load("a[href*=\"method=passkey\"]").await;
    b.wait_for(
        "the script to show the passkey button",
        "!document.querySelector('[data-passkey-button]').hidden",
    )
    .await;
    checks::page(
        &b,
        &mut report,
        "challenge-passkey",
        cond,
        [cond.width, other],
    )
    .await;
    b.submit(&format!("{PREFIX}/passkeys/verify"), None).await;
    let app = "location.pathname === '/app' && document.body && document.body.textContent.includes('upstream app')";
    b.wait_for("the app", app).await;
    assert_eq!(app_saw(up), ("2fa".into(), "pwd,hwk".into()));

    // The passkey now shows when it was last used.
    b.goto(&url(&format!("{PREFIX}/passkeys"))).await;
    b.wait_path(&format!("{PREFIX}/passkeys")).await;
    let facts = b
        .js("return document.querySelector('.entry .status').textContent;")
        .await;
    assert!(
        facts.as_str().unwrap_or_default().matches("UTC").count() == 2,
        "added and last used: {facts}"
    );

    // Passwordless: signed out, the sign-in page offers the passkey instead of the password.
    b.submit(&format!("{PREFIX}/logout"), None).await;
    b.goto(&url("/app")).await;
    b.wait_path(&login).await;
    b.wait_for(
        "the script to show the passkey button",
        "!document.querySelector('[data-passkey-button]').hidden",
    )
    .await;
    checks::page(&b, &mut report, "login-passkey", cond, [cond.width, other]).await;
    b.submit(&format!("{PREFIX}/passkeys/sign-in"), None).await;
    b.wait_for("the app", app).await;
    assert_eq!(app_saw(up), ("2fa".into(), "hwk".into()));
    b.close().await;
    report.finish();
}
