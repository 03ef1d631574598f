//! The portal in a real browser (headless chromium through chromedriver): a new user's whole
//! journey — sign-in from a two-factor route, the guide, setting up the authenticator app, the
//! recovery codes, the app, sign-out, sign-in with the challenge, the account page, "confirm it is
//! you", the replace-app and emergency-email pages, the sessions, trusted-browser and password
//! pages, the reset request, a sign-in alert's "this wasn't me" page and the check of an
//! unfamiliar sign-in, a 404 and a 429 — with the checks of `browser/checks.rs` on every page.
//!
//! Pages are found by what the contract fixes (form actions, input names, `a[lang]` for the
//! language switch), never by their wording, so the suite outlives a redesign of the pages.
//!
//! The matrix: four journeys, one per language × colour scheme, each at its own width (ko/390/dark
//! and en/1280/light as the brief's pair, ko/1280/light and en/390/dark as the rest), and every
//! page checked again at the other width by resizing the viewport in place, so that each page is
//! seen in all eight combinations. Korean is chosen with the page's language switch in one
//! journey and with the browser's language (`Accept-Language`) in the other.
//!
//! Without chromium and chromedriver the tests skip, saying so on stderr; under `CI=true` they
//! fail instead.

mod common;

/// The suite's own modules, in `tests/browser/`.
mod browser {
    pub mod checks;
    pub mod driver;
}

use std::time::Duration;

use browser::checks::{self, Check, Condition, Lang, Report, Scheme};
use browser::driver::{self, Browser, Options, Tools};
use common::two_factor::{self, ALICE, BOB};
use common::{signin_config, totp_code, Gateway, Upstream};
use serde_json::json;
use stepgate::clock::{Clock, ManualClock};

const PREFIX: &str = "/_stepgate";

/// How a journey comes to be in its language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The browser's own language (`--lang`, `intl.accept_languages`).
    Browser,
    /// The browser in English; the page's language switch (`a[lang=..]`) on the first page.
    Switch,
}

/// One journey: its language, width and colour scheme, and how the language is chosen.
#[derive(Debug, Clone, Copy)]
struct Setting {
    cond: Condition,
    via: Via,
}

fn setting(lang: Lang, width: u32, scheme: Scheme, via: Via) -> Setting {
    Setting {
        cond: Condition {
            lang,
            width,
            scheme,
        },
        via,
    }
}

#[test]
fn journey_ko_390_dark_by_the_language_switch() {
    journey(setting(Lang::Ko, 390, Scheme::Dark, Via::Switch));
}

#[test]
fn journey_en_1280_light() {
    journey(setting(Lang::En, 1280, Scheme::Light, Via::Browser));
}

#[test]
fn journey_ko_1280_light_by_the_browser_language() {
    journey(setting(Lang::Ko, 1280, Scheme::Light, Via::Browser));
}

#[test]
fn journey_en_390_dark() {
    journey(setting(Lang::En, 390, Scheme::Dark, Via::Browser));
}

/// Approval between two browsers: alice's phone (Korean, 390 px, dark) signs in with the app's
/// code and becomes an approver device; her PC (English, 1280 px, light) asks for approval; the
/// phone's waiting page shows the request by itself (its script's long poll), the number is
/// typed and approved there, and the PC's page goes on to the app by itself.
#[test]
fn approval_between_a_phone_and_a_pc() {
    let Some(tools) = driver::tools_or_skip() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the WebDriver client");
    let (_up, gw, clock) = two_factor::start("");
    let mut http = common::Browser::new(gw.addr);
    let key = two_factor::full_enrolment(&mut http, &gw, &clock, ALICE);
    // The phone's code must come from a step the enrolment did not use.
    clock.advance(Duration::from_secs(30));
    runtime.block_on(approval(&tools, &gw, &clock, &key));
}

async fn approval(tools: &Tools, gw: &Gateway, clock: &ManualClock, key: &str) {
    let phone_cond = Condition {
        lang: Lang::Ko,
        width: 390,
        scheme: Scheme::Dark,
    };
    let pc_cond = Condition {
        lang: Lang::En,
        width: 1280,
        scheme: Scheme::Light,
    };
    let start = |c: Condition| Options {
        language: c.lang.tag(),
        width: c.width,
        dark: c.scheme == Scheme::Dark,
    };
    let phone = Browser::start(tools, &start(phone_cond)).await;
    let pc = Browser::start(tools, &start(pc_cond)).await;
    let mut report = Report::new("approval");
    let login = format!("{PREFIX}/login");
    let challenge = format!("{PREFIX}/2fa");

    // The phone: password, the app's code, then "use this browser to approve sign-ins".
    phone.goto(&gw.url("/app")).await;
    phone.wait_path(&login).await;
    phone.fill(&login, "username", ALICE.0).await;
    phone.fill(&login, "password", ALICE.1).await;
    phone.submit(&login, None).await;
    phone.wait_path(&challenge).await;
    let code = totp_code(key, clock.now_secs());
    phone.fill(&challenge, "code", &code).await;
    phone.submit(&challenge, Some("code")).await;
    wait_app(&phone).await;
    phone.goto(&gw.url(&format!("{PREFIX}/devices"))).await;
    phone.submit(&format!("{PREFIX}/devices/add"), None).await;
    checks::page(
        &phone,
        &mut report,
        "devices-approver",
        phone_cond,
        [390, 1280],
    )
    .await;
    phone.goto(&gw.url(&format!("{PREFIX}/approvals"))).await;
    checks::page(
        &phone,
        &mut report,
        "approvals-waiting",
        phone_cond,
        [390, 1280],
    )
    .await;
    assert!(phone.has("[data-approvals-wait]").await, "the phone waits");

    // The PC: password, then approval is the method offered first.
    pc.goto(&gw.url("/app")).await;
    pc.wait_path(&login).await;
    pc.fill(&login, "username", ALICE.0).await;
    pc.fill(&login, "password", ALICE.1).await;
    pc.submit(&login, None).await;
    pc.wait_path(&challenge).await;
    checks::page(&pc, &mut report, "challenge-approve", pc_cond, [1280, 390]).await;
    pc.submit(&format!("{challenge}/send"), None).await;
    let number = pc
        .js("const n = document.querySelector('.number'); return n ? n.textContent.trim() : null;")
        .await;
    let number = number.as_str().expect("the PC shows a number").to_owned();
    checks::page(
        &pc,
        &mut report,
        "challenge-approve-waiting",
        pc_cond,
        [1280, 390],
    )
    .await;

    // The phone's page shows the request without anyone reloading it.
    phone
        .wait_for(
            "the request on the phone",
            "document.querySelector('input[name=number]') !== null",
        )
        .await;
    checks::page(
        &phone,
        &mut report,
        "approvals-request",
        phone_cond,
        [390, 1280],
    )
    .await;
    let approvals = format!("{PREFIX}/approvals");
    phone.fill(&approvals, "number", &number).await;
    phone
        .click_to_load(&format!(
            "form[action$=\"{approvals}\"] button[value=approve]"
        ))
        .await;
    checks::page(
        &phone,
        &mut report,
        "approvals-approved",
        phone_cond,
        [390, 1280],
    )
    .await;

    // The PC goes on by itself.
    wait_app(&pc).await;
    phone.close().await;
    pc.close().await;
    report.finish();
}

/// An HTTPS listener (its own certificate) that asks for client certificates, and a
/// certificate file of alice's to register; returns the TOML and the file.
fn certificate_listener(dir: &std::path::Path) -> (String, String) {
    let make = |name: &str, sans: Vec<String>| {
        let mut params = rcgen::CertificateParams::new(sans).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = params.self_signed(&key).expect("a certificate");
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("written");
        std::fs::write(&k, key.serialize_pem()).expect("written");
        (c.display().to_string(), k.display().to_string())
    };
    let (server_cert, server_key) = make("certs.app.test", vec!["certs.app.test".into()]);
    let (alice_cert, _) = make("Alice Kim, Example Bank customer 0042", vec![]);
    let port = common::free_port();
    let toml = format!(
        "[[listener]]\naddress = \"127.0.0.1:{port}\"\nprotocol = \"https\"\n\n\
         [[listener.certificate]]\ncert_file = '{server_cert}'\nkey_file = '{server_key}'\n\n\
         [listener.client_certificates]\ntrust = \"registered\"\n"
    );
    (toml, alice_cert)
}

fn journey(s: Setting) {
    let Some(tools) = driver::tools_or_skip() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the WebDriver client");
    // The gateways run on threads and runtimes of their own: started before this one.
    // Behind a "proxy" (loopback), so that helper clients can sign in from other networks.
    // SMS offered too, so that setup shows the choice of method.
    // A listener that takes client certificates, so that the certificates page is offered,
    // and one certificate of alice's to list on it.
    let certs = tempfile::tempdir().expect("a directory for certificates");
    let (listener, alices) = certificate_listener(certs.path());
    let (_up, gw, clock) = two_factor::start_behind_proxy(&format!(
        "[two_factor]\nmethods = [\"totp\", \"sms\"]\n\n{listener}"
    ));
    two_factor::admin(&gw, &["certificates", "alice", "--register", &alices]);
    let limited_up = Upstream::start("app");
    let limited = Gateway::start(&signin_config(
        limited_up.addr,
        "[regulation]\nform_posts_per_minute = 1\n",
    ));
    runtime.block_on(run(&tools, s, &gw, &clock, &limited));
}

/// One journey's browser, gateway and report.
struct Journey {
    b: Browser,
    report: Report,
    s: Setting,
    /// Whether a page has been seen yet (the switch is expected on the first one only).
    first: bool,
}

impl Journey {
    /// Arrives at a page: in the journey's language (through the switch when the page offers
    /// one), then every check, at both widths.
    async fn visit(&mut self, page: &str) {
        let want = self.s.cond.lang.tag();
        let lang = checks::page_lang(&self.b).await;
        if !lang.starts_with(want) {
            if !(self.first && self.s.via == Via::Switch) {
                let how = match self.s.via {
                    Via::Browser => "the browser asks for",
                    Via::Switch => "the language switch chose",
                };
                let detail = format!("the page is in {lang:?}; {how} {want:?}");
                self.report.add(page, self.s.cond, Check::Lang, detail);
            }
            self.switch_language().await;
        }
        self.first = false;
        let other = if self.s.cond.width < 600 { 1280 } else { 390 };
        let cond = self.s.cond;
        checks::page(&self.b, &mut self.report, page, cond, [cond.width, other]).await;
    }

    /// Follows the page's language switch to the journey's language, when the page is in
    /// another and offers one.
    async fn switch_language(&mut self) {
        let want = self.s.cond.lang.tag();
        let switch = format!("a[lang=\"{want}\"]");
        if checks::page_lang(&self.b).await.starts_with(want) || !self.b.has(&switch).await {
            return;
        }
        self.b.click_to_load(&switch).await;
        let now = checks::page_lang(&self.b).await;
        assert!(
            now.starts_with(want),
            "the switch to {want} led to a page in {now:?}"
        );
    }

    /// Signs alice in through the form the browser is on.
    async fn sign_in(&mut self, password: &str) {
        let login = format!("{PREFIX}/login");
        self.b.fill(&login, "username", ALICE.0).await;
        self.b.fill(&login, "password", password).await;
        self.b.submit(&login, None).await;
    }
}

/// The journey through `gw` (on `clock`), and the refusals on `limited` (one post a minute).
async fn run(tools: &Tools, s: Setting, gw: &Gateway, clock: &ManualClock, limited: &Gateway) {
    let cond = s.cond;
    let language = match s.via {
        Via::Browser => cond.lang.tag(),
        Via::Switch => "en",
    };
    let options = Options {
        language,
        width: cond.width,
        dark: cond.scheme == Scheme::Dark,
    };
    let b = Browser::start(tools, &options).await;
    let name = format!(
        "{cond}{}",
        if s.via == Via::Switch { "-switch" } else { "" }
    );
    let mut j = Journey {
        b,
        report: Report::new(&name),
        s,
        first: true,
    };
    let key = first_visit(&mut j, gw, clock).await;
    second_visit(&mut j, gw, clock, &key).await;
    third_visit(&mut j, gw).await;
    refusals(&mut j, limited).await;
    let Journey { b, report, .. } = j;
    b.close().await;
    report.finish();
}

/// The messages with a code sent to `to` so far.
fn codes_to(gw: &Gateway, to: &str) -> usize {
    two_factor::mail_to(gw, to)
        .iter()
        .filter(|m| m["code"].is_string())
        .count()
}

/// The newest code sent to `to`, once there are more than `before` (the notifier may write
/// the outbox a moment after the page answers).
async fn code_after(gw: &Gateway, to: &str, before: usize) -> String {
    let deadline = std::time::Instant::now() + driver::WAIT;
    while codes_to(gw, to) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no new code to {to} in the outbox within {:?}",
            driver::WAIT
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    two_factor::last_code_to(gw, to)
}

/// The authenticator key the page shows: as text (`code.key` today), else from the `otpauth:`
/// link it offers; `None` when the page shows none.
async fn key_on_page(b: &Browser) -> Option<String> {
    let v = b
        .js("const k = document.querySelector('code.key');
             if (k && k.textContent.trim()) return k.textContent.trim();
             const a = document.querySelector('a[href^=\"otpauth:\"]');
             return a ? new URL(a.href).searchParams.get('secret') : null;")
        .await;
    v.as_str().map(str::to_owned)
}

/// Waits for the app behind the gateway (the test upstream answers `upstream app`).
async fn wait_app(b: &Browser) {
    b.wait_for(
        "the app",
        "location.pathname === '/app' && document.body && document.body.textContent.includes('upstream app')",
    )
    .await;
}

/// A new user: sign-in, the guide, setup, the recovery codes, the app, sign-out. Returns the
/// authenticator key.
async fn first_visit(j: &mut Journey, gw: &Gateway, clock: &ManualClock) -> String {
    let email = "alice@example.test";
    let setup = format!("{PREFIX}/setup");
    j.b.goto(&gw.url("/app")).await;
    j.b.wait_path(&format!("{PREFIX}/login")).await;
    j.visit("login").await;
    j.sign_in(ALICE.1).await;
    j.b.wait_path(&format!("{PREFIX}/guide")).await;
    j.visit("guide").await;
    j.b.click_to_load(&format!("a[href*=\"{setup}\"]")).await;

    // Setup, in whatever order its steps come: each page is recognised by the fields it asks
    // for, and answered; the recovery codes are the page with no setup form left.
    let mut key = None;
    for _ in 0..8 {
        if !j.b.has(&format!("form[action$=\"{setup}\"]")).await {
            break;
        }
        let has = |field: &str| format!("form[action$=\"{setup}\"] [name=\"{field}\"]");
        if let Some(k) = key_on_page(&j.b).await {
            j.visit("setup-app").await;
            let code = totp_code(&k, clock.now_secs());
            j.b.fill(&setup, "code", &code).await;
            j.b.submit(&setup, Some("code")).await;
            key = Some(k);
        } else if j.b.has(&has("email")).await {
            j.visit("setup-contact").await;
            let field = json!(has("email"));
            let filled =
                j.b.js(&format!("return document.querySelector({field}).value;"))
                    .await;
            if filled.as_str().unwrap_or_default().is_empty() {
                j.b.fill(&setup, "email", email).await;
            }
            j.b.submit(&setup, Some("email")).await;
        } else if j.b.has(&has("phone")).await {
            j.visit("setup-method").await;
            let app =
                format!("form[action$=\"{setup}\"]:has(input[name=method][value=app]) button");
            j.b.click_to_load(&app).await;
        } else if j.b.has(&has("code")).await {
            // A form for the step with no field of its own sends the code, unless one was sent.
            let send = format!("form[action$=\"{setup}\"]:not(:has(input:not([type=hidden])))");
            if codes_to(gw, email) == 0 && j.b.has(&send).await {
                j.visit("setup-start").await;
                j.b.click_to_load(&format!("{send} button")).await;
            }
            j.visit("setup-prove").await;
            let code = code_after(gw, email, 0).await;
            j.b.fill(&setup, "code", &code).await;
            j.b.submit(&setup, Some("code")).await;
        } else {
            panic!(
                "a setup page with nothing to fill in at {}",
                j.b.url().await
            );
        }
    }
    let key = key.expect("setup showed an authenticator key");
    j.visit("recovery-codes").await;

    j.b.goto(&gw.url("/app")).await;
    wait_app(&j.b).await;
    j.b.goto(&gw.url(&format!("{PREFIX}/account"))).await;
    j.visit("account-new").await;
    j.b.submit(&format!("{PREFIX}/logout"), None).await;
    j.b.wait_path(&format!("{PREFIX}/login")).await;
    key
}

/// The returning user: the challenge, the account page, "confirm it is you", replacing the app,
/// the emergency email, and a page that does not exist.
async fn second_visit(j: &mut Journey, gw: &Gateway, clock: &ManualClock, key: &str) {
    j.b.goto(&gw.url("/app")).await;
    j.b.wait_path(&format!("{PREFIX}/login")).await;
    j.sign_in(ALICE.1).await;
    let challenge = format!("{PREFIX}/2fa");
    j.b.wait_path(&challenge).await;
    j.visit("challenge").await;
    // "Verify by email instead": the page before and after the code is sent.
    let here = j.b.url().await;
    let email_instead = format!(
        "{}?{}&method=email",
        here.path(),
        here.query().unwrap_or("")
    );
    j.b.goto(&gw.url(&email_instead)).await;
    j.visit("challenge-email").await;
    j.b.submit(&format!("{challenge}/send"), None).await;
    j.visit("challenge-email-sent").await;
    let by_app = format!("{}?{}&method=totp", here.path(), here.query().unwrap_or(""));
    j.b.goto(&gw.url(&by_app)).await;
    j.b.wait_path(&challenge).await;
    clock.advance(Duration::from_secs(30));
    j.b.fill(&challenge, "code", &totp_code(key, clock.now_secs()))
        .await;
    // "Don't ask again on this browser", for the trusted-browser page later.
    j.b.js("document.querySelector('[name=remember]').click()")
        .await;
    j.b.submit(&challenge, Some("code")).await;
    wait_app(&j.b).await;

    // Past the freshness of the proof: the account page asks to confirm before any change.
    clock.advance(Duration::from_secs(6 * 60));
    j.b.goto(&gw.url(&format!("{PREFIX}/account"))).await;
    j.visit("account").await;
    let replace = format!("{PREFIX}/account/authenticator");
    let verify = format!("{PREFIX}/account/verify");
    j.b.goto(&gw.url(&replace)).await;
    j.b.wait_for(
        "the confirmation form",
        &format!("document.querySelector('form[action$=\"{verify}\"]')"),
    )
    .await;
    j.visit("confirm").await;
    j.b.fill(&verify, "code", &totp_code(key, clock.now_secs()))
        .await;
    j.b.submit(&verify, Some("code")).await;
    j.b.wait_for(
        "the replace-app form",
        &format!("document.querySelector('form[action$=\"{replace}\"] [name=code]')"),
    )
    .await;
    j.visit("replace-app").await;

    let emergency = format!("{PREFIX}/emergency-email");
    let backup = "alice.backup@example.test";
    j.b.goto(&gw.url(&emergency)).await;
    j.visit("emergency-email").await;
    let before = codes_to(gw, backup);
    j.b.fill(&emergency, "email", backup).await;
    j.b.submit(&emergency, Some("email")).await;
    j.visit("emergency-email-code").await;
    let code = code_after(gw, backup, before).await;
    j.b.fill(&emergency, "code", &code).await;
    j.b.submit(&emergency, Some("code")).await;
    j.visit("emergency-email-changed").await;

    j.b.goto(&gw.url(&format!("{PREFIX}/no-such-page"))).await;
    j.visit("error-404").await;
}

/// Account protection: the sessions, trusted browsers and password pages; signed out, the
/// reset request and its answer; then bob, whose password is used from another network: the
/// alert's "this wasn't me" page, and the check of a sign-in from this (unfamiliar) browser.
async fn third_visit(j: &mut Journey, gw: &Gateway) {
    for page in [
        "sessions",
        "trusted-browsers",
        "password",
        "phone",
        "devices",
        "approvals",
        "certificates",
    ] {
        j.b.goto(&gw.url(&format!("{PREFIX}/{page}"))).await;
        j.visit(page).await;
    }
    j.b.goto(&gw.url(&format!("{PREFIX}/account"))).await;
    j.b.submit(&format!("{PREFIX}/logout"), None).await;
    let reset = format!("{PREFIX}/reset");
    j.b.goto(&gw.url(&reset)).await;
    j.visit("reset").await;
    j.b.fill(&reset, "username", ALICE.0).await;
    j.b.submit(&reset, Some("username")).await;
    j.visit("reset-sent").await;

    // Bob signs in at home (his baseline), then someone with his password elsewhere.
    for address in ["198.51.100.7", "203.0.113.9"] {
        let mut other = common::Browser::new(gw.addr);
        other.extra.push(format!("X-Forwarded-For: {address}"));
        let done = other.sign_in(BOB.0, BOB.1, "/1fa/");
        assert_eq!(done.status, 303, "{done:?}");
    }
    let link = two_factor::mail_to(gw, "bob@example.test")
        .into_iter()
        .rev()
        .find_map(|m| m["link"].as_str().map(str::to_owned))
        .expect("a sign-in alert with a link");
    let lock = &link[link.find(PREFIX).expect("a portal link")..];
    assert!(lock.starts_with(&format!("{PREFIX}/lock?token=")), "{lock}");

    // Bob on this browser: its network and device are new to him, so he is checked first.
    let login = format!("{PREFIX}/login");
    j.b.goto(&gw.url(&format!("{login}?rd=%2F1fa%2F"))).await;
    j.b.fill(&login, "username", BOB.0).await;
    j.b.fill(&login, "password", BOB.1).await;
    j.b.submit(&login, None).await;
    let check = format!("{PREFIX}/check");
    j.b.wait_path(&check).await;
    j.visit("check").await;
    j.b.submit(&format!("{check}/send"), None).await;
    j.visit("check-sent").await;

    j.b.goto(&gw.url(lock)).await;
    j.visit("lock").await;
    j.b.submit(&format!("{PREFIX}/lock"), None).await;
    j.visit("lock-done").await;
}

/// A refused sign-in and the form-post limit, on a gateway that allows one post a minute.
async fn refusals(j: &mut Journey, gw: &Gateway) {
    let rd: String = url::form_urlencoded::byte_serialize(gw.url("/app").as_bytes()).collect();
    let login = format!("{PREFIX}/login");
    j.b.goto(&gw.url(&format!("{login}?rd={rd}"))).await;
    j.b.wait_path(&login).await;
    // Another site: a person picks the language again before signing in.
    j.switch_language().await;
    j.sign_in("not-the-password").await;
    j.visit("login-refused").await;
    j.sign_in("not-the-password").await;
    j.visit("error-429").await;
}
