//! The browser under test: Debian's headless chromium, driven through its chromedriver with
//! WebDriver (fantoccini, plain HTTP on loopback), plus the two Chrome-only endpoints the checks
//! need: DevTools commands (`POST /session/{id}/goog/cdp/execute`: viewport, colour scheme,
//! full-page screenshots) and the browser log (`POST /session/{id}/se/log`).
//!
//! Each test starts its own chromedriver on a free loopback port with a fresh profile. The
//! driver runs in a process group of its own, so the browser it starts goes with it: dropping
//! [`Browser`] (a pass or a panic alike) ends the session, then that group.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common;

/// How long one wait (a page load, a condition, the driver's start) may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// The viewport height used with each width: a phone's, or a laptop's.
fn height_for(width: u32) -> u32 {
    if width < 600 {
        844
    } else {
        900
    }
}

/// Chrome's switches: headless, and nothing that reaches for the network or changes between
/// runs (the machines have no outside network).
const CHROME_FLAGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--hide-scrollbars",
];

/// The browser and its driver, as found on this machine.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver from the system's packages (`apt-get install chromium
/// chromium-driver`), or why they cannot be used.
pub fn tools() -> Result<Tools, String> {
    let chromium = on_path(&["chromium", "chromium-browser"]);
    let chromedriver = on_path(&["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Ok(Tools {
            chromium,
            chromedriver,
        }),
        (c, d) => Err(format!(
            "not found on PATH:{}{} (apt-get install chromium chromium-driver)",
            if c.is_none() { " chromium" } else { "" },
            if d.is_none() { " chromedriver" } else { "" },
        )),
    }
}

/// [`tools`], or `None` after saying why the suite skips. With `CI=true` a missing browser is a
/// failure: CI installs it (`.ci/run`), so its absence there is a broken setup, not a skip.
pub fn tools_or_skip() -> Option<Tools> {
    match tools() {
        Ok(t) => Some(t),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the browser tests: {why}"
            );
            // Past the harness's capture: a skip must show in a plain `cargo test`.
            let _ = writeln!(std::io::stderr(), "skipping browser tests: {why}");
            None
        }
    }
}

/// The browser's preferences for one run.
pub struct Options<'a> {
    /// `Accept-Language` and the UI language, e.g. `en` or `ko`.
    pub language: &'a str,
    pub width: u32,
    pub dark: bool,
}

/// One entry of the browser log (console messages, network failures, CSP reports).
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub source: String,
    pub message: String,
}

/// A Chrome-only endpoint of the session, reached through fantoccini's command interface.
#[derive(Debug)]
struct ChromeCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// A chromedriver process of this test's own, in its own process group.
struct DriverProcess {
    child: Child,
    port: u16,
    session: Option<String>,
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // Ask the driver to close the browser; then end the group we started (the driver and
        // any browser process left), by its id.
        if let Some(id) = &self.session {
            let req = format!(
                "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let _ = common::raw(([127, 0, 0, 1], self.port).into(), req.as_bytes());
        }
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with the negated id of the process group this test created.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A chromedriver on a free port, ready to take a session (polled under [`WAIT`]).
fn start_driver(tools: &Tools, log: &Path) -> DriverProcess {
    use std::os::unix::process::CommandExt;
    let port = common::free_port();
    let child = Command::new(&tools.chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", tools.chromedriver.display()));
    let driver = DriverProcess {
        child,
        port,
        session: None,
    };
    let deadline = Instant::now() + WAIT;
    let status = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    loop {
        let answer = common::raw(([127, 0, 0, 1], port).into(), status).unwrap_or_default();
        if answer.contains("\"ready\":true") {
            return driver;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver not ready on port {port} within {WAIT:?}; its log: {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One headless browser window with the options it was started with.
pub struct Browser {
    pub client: Client,
    /// Dropped after the client: ends the session and the processes.
    _driver: DriverProcess,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a driver and a browser with a fresh profile, at `options`' width and colour scheme.
    pub async fn start(tools: &Tools, options: &Options<'_>) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut driver = start_driver(tools, &profile.path().join("chromedriver.log"));
        let mut args: Vec<String> = CHROME_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("chrome").display()
        ));
        args.push(format!("--lang={}", options.language));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
                "prefs": { "intl.accept_languages": options.language },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}/", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no browser session from chromedriver: {e}; its log: {}",
                    profile.path().join("chromedriver.log").display()
                )
            });
        driver.session = client.session_id().await.expect("a session id");
        let b = Browser {
            client,
            _driver: driver,
            _profile: profile,
        };
        b.set_width(options.width).await;
        b.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{
                "name": "prefers-color-scheme",
                "value": if options.dark { "dark" } else { "light" },
            }] }),
        )
        .await;
        b
    }

    /// Ends the session cleanly (dropping does it too, less politely).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    async fn chrome(&self, path: &'static str, body: Value) -> Value {
        self.client
            .issue_cmd(ChromeCommand { path, body })
            .await
            .unwrap_or_else(|e| panic!("chromedriver {path}: {e}"))
    }

    /// A DevTools protocol command on the current tab.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.chrome("goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
    }

    /// Adds a virtual authenticator (chromedriver's WebAuthn extension): a platform authenticator
    /// speaking CTAP2 that keeps discoverable credentials and verifies its user every time.
    /// Returns its id.
    #[allow(dead_code)] // used by browser_passkeys.rs, not browser.rs
    pub async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .chrome(
                "webauthn/authenticator",
                json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                }),
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The viewport, in CSS pixels (the window itself cannot be narrower than 500 px).
    pub async fn set_width(&self, width: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height_for(width), "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    /// The browser log since the last call.
    pub async fn log(&self) -> Vec<LogEntry> {
        let entries = self.chrome("se/log", json!({ "type": "browser" })).await;
        let text = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_owned();
        entries
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| LogEntry {
                        level: text(e, "level"),
                        source: text(e, "source"),
                        message: text(e, "message"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The whole page, beyond the viewport, as a PNG file.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Runs `body` (a function body that `return`s) in the page.
    pub async fn js(&self, body: &str) -> Value {
        match self.client.execute(body, vec![]).await {
            Ok(v) => v,
            Err(e) => panic!("script failed at {}: {e}", self.url_text().await),
        }
    }

    async fn url_text(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(no URL: {e})"),
        }
    }

    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("the current URL")
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("navigation to {url}: {e}"));
    }

    /// Waits until the JS expression `condition` is true in the page (under [`WAIT`]).
    pub async fn wait_for(&self, what: &str, condition: &str) {
        let script = format!("return !!({condition});");
        let deadline = Instant::now() + WAIT;
        loop {
            // A script run while a page unloads fails; that is "not yet".
            if let Ok(Value::Bool(true)) = self.client.execute(&script, vec![]).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; the browser is at {}",
                self.url_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the browser shows a loaded page whose path is `path`.
    pub async fn wait_path(&self, path: &str) {
        let cond = format!(
            "location.pathname === {} && document.readyState === 'complete'",
            json!(path)
        );
        self.wait_for(&format!("a page at {path}"), &cond).await;
    }

    /// Whether the page has an element matching the CSS `selector`.
    pub async fn has(&self, selector: &str) -> bool {
        let q = format!(
            "return document.querySelector({}) !== null;",
            json!(selector)
        );
        self.js(&q).await == Value::Bool(true)
    }

    /// Clicks the element matching `selector` and waits for the next page to load: the old
    /// document is marked first, so a page that looks alike cannot pass for the new one.
    pub async fn click_to_load(&self, selector: &str) {
        self.js("window.__stepgateOld = true; return null;").await;
        let el = self
            .client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {selector}: {e}"));
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click on {selector}: {e}"));
        self.wait_for(
            &format!("the page after clicking {selector}"),
            "!window.__stepgateOld && document.readyState === 'complete'",
        )
        .await;
    }

    /// Types `value` into the field `name` of the form posting to `action` (replacing what it
    /// held), as a person would.
    pub async fn fill(&self, action: &str, name: &str, value: &str) {
        let selector = format!("form[action$=\"{action}\"] [name=\"{name}\"]");
        let el = self
            .client
            .find(Locator::Css(&selector))
            .await
            .unwrap_or_else(|e| panic!("no field {name} in a form for {action}: {e}"));
        el.clear().await.expect("field cleared");
        el.send_keys(value).await.expect("field typed into");
    }

    /// Submits the form posting to `action` (the one holding the field `with`, when given) with
    /// its submit button, and waits for the answer to load.
    pub async fn submit(&self, action: &str, with: Option<&str>) {
        let form = match with {
            Some(field) => format!("form[action$=\"{action}\"]:has([name=\"{field}\"])"),
            None => format!("form[action$=\"{action}\"]"),
        };
        let button = format!(
            "{form} button:not([type=button]):not([type=reset]), {form} input[type=submit]"
        );
        self.click_to_load(&button).await;
    }
}
