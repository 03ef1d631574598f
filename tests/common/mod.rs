//! Test harness: each test starts its own gateway and its own recording upstreams on ephemeral
//! loopback ports, and asserts what the upstream received on the wire.
#![allow(dead_code)]

pub mod db;
pub mod smtp;
pub mod two_factor;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stepgate::app::{self, RunningGateway, Stop};
use stepgate::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// A free loopback port (bound and released; the gateway binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line, e.g. `GET /a?b HTTP/1.1`.
    pub line: String,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (a chunked one as it came, chunk sizes included).
    pub body: String,
}

impl Seen {
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// All values of a header (case-insensitive name).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Header names normalised like the gateway does for identity headers (lower case, `_` as `-`).
    pub fn has_header_like(&self, name: &str) -> bool {
        let want = name.to_ascii_lowercase().replace('_', "-");
        self.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().replace('_', "-") == want)
    }
}

/// How a recording upstream answers.
#[derive(Clone)]
pub struct Behaviour {
    pub status: u16,
    /// Status for requests to `/healthz`.
    pub health_status: u16,
    /// When set, requests to `/slow` wait until the test calls [`Upstream::release`].
    pub gate: Option<Arc<Notify>>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            health_status: 200,
            gate: None,
        }
    }
}

/// A real HTTP/1.1 server on its own thread and runtime that records every request.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<Notify>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::with(name, Behaviour::default())
    }

    pub fn with(name: &str, behaviour: Behaviour) -> Upstream {
        Upstream::at(name, behaviour, ([127, 0, 0, 1], 0).into())
    }

    /// [`Upstream::with`] on a given address (a server coming back on the port it had).
    pub fn at(name: &str, mut behaviour: Behaviour, addr: SocketAddr) -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = behaviour
            .gate
            .get_or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        let (s, n) = (seen.clone(), name.to_owned());
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, s.clone(), n.clone(), behaviour.clone()));
            }
        });
        Upstream {
            addr,
            name: name.to_owned(),
            seen,
            gate,
            _runtime: runtime,
        }
    }

    /// Every request so far, health checks excluded.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target() != "/healthz")
            .cloned()
            .collect()
    }

    pub fn health_checks(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target() == "/healthz")
            .count()
    }

    pub fn last(&self) -> Seen {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }

    /// Lets waiting `/slow` requests answer.
    pub fn release(&self) {
        self.gate.notify_waiters();
        self.gate.notify_one();
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    name: String,
    b: Behaviour,
) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        // A chunked body is read up to its last chunk (enough for the small bodies tests send).
        let body_end = |buf: &Vec<u8>| -> Option<usize> {
            if chunked {
                buf[end..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|p| end + p + 5)
            } else {
                (buf.len() >= end + len).then_some(end + len)
            }
        };
        let total = loop {
            if let Some(total) = body_end(&buf) {
                break total;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let body = String::from_utf8_lossy(&buf[end..total]).into_owned();
        buf.drain(..total);
        let record = Seen {
            line,
            headers,
            body,
        };
        let target = record.target().to_owned();
        seen.lock().unwrap().push(record);
        let status = if target == "/healthz" {
            b.health_status
        } else {
            b.status
        };
        if target.starts_with("/slow") {
            if let Some(g) = &b.gate {
                g.notified().await;
            }
        }
        let body = format!("upstream {name}");
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Upstream: {name}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A gateway on its own thread, from TOML text; stopped when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    running: Option<RunningGateway>,
    clock: stepgate::clock::SharedClock,
}

impl Gateway {
    /// Starts a gateway from `toml`; `{port}` in it is replaced by a free port (the first
    /// listener's), `{data}` by a fresh data directory.
    pub fn start(toml: &str) -> Gateway {
        Gateway::start_with_clock(toml, stepgate::clock::system())
    }

    /// [`Gateway::start`] with time from `clock` (a `ManualClock` in tests that move time).
    pub fn start_with_clock(toml: &str, clock: stepgate::clock::SharedClock) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let text = toml
            .replace("{port}", &port.to_string())
            .replace("{data}", &dir.path().join("data").display().to_string());
        let path = dir.path().join("stepgate.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let running = app::start_with_clock(&cfg, clock.clone()).expect("gateway builds");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_ready(addr);
        Gateway {
            addr,
            dir,
            running: Some(running),
            clock,
        }
    }

    /// Stops the gateway and starts it again on the same config, port and data directory.
    pub fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop(Stop::Fast);
        }
        let cfg = Config::load(&self.dir.path().join("stepgate.toml")).expect("config still valid");
        let deadline = Instant::now() + Duration::from_secs(10);
        let running = loop {
            match app::start_with_clock(&cfg, self.clock.clone()) {
                Ok(r) => break r,
                // The old listener may take a moment to be released.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("gateway did not restart: {e}"),
            }
        };
        self.running = Some(running);
        wait_ready(self.addr);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks for a graceful stop without waiting for it.
    pub fn signal(&self, how: Stop) {
        if let Some(r) = &self.running {
            r.signal(how);
        }
    }

    pub fn stop(mut self, how: Stop) {
        if let Some(r) = self.running.take() {
            r.stop(how);
        }
    }

    /// The data directory the gateway runs with: its own, or the one the test's TOML named.
    pub fn data_dir(&self) -> PathBuf {
        let text = std::fs::read_to_string(self.dir.path().join("stepgate.toml")).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("data_dir = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.path().join("data"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop(Stop::Fast);
        }
    }
}

/// Polls `/_stepgate/health` until it answers 200 (10 s deadline).
pub fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(resp) = raw(
            addr,
            b"GET /_stepgate/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        ) {
            if resp.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("gateway on {addr} not ready within 10 s");
}

/// Sends raw bytes, reads until the server closes (or 5 s), returns the response text.
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A `GET` with the given target and extra header lines, `Connection: close`.
pub fn get(addr: SocketAddr, target: &str, headers: &[&str]) -> String {
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        req.push_str("Host: 127.0.0.1\r\n");
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    raw(addr, req.as_bytes()).expect("gateway answers")
}

/// The status code of a raw response.
pub fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A config with one app for `hosts` on `upstreams`, plus extra TOML (rules etc.).
pub fn config_with(app_hosts: &[&str], upstreams: &[SocketAddr], extra: &str) -> String {
    let hosts = app_hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let ups = upstreams
        .iter()
        .map(|u| format!("\"http://{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let users = quickstart_users();
    format!(
        "[server]\ndata_dir = \"{{data}}\"\nthreads = 2\ngrace_period = \"2s\"\nshutdown_timeout = \"1s\"\n\n[log]\naccess_log = false\n\n[users]\nfile = '{users}'\n\n[[listener]]\naddress = \"127.0.0.1:{{port}}\"\n\n[[app]]\nid = \"app\"\nhosts = [{hosts}]\nupstreams = [{ups}]\nconnect_timeout = \"2s\"\nread_timeout = \"3s\"\n\n{extra}\n"
    )
}

/// The quickstart's rules.
pub const RULES: &str = r#"
[[rule]]
path = "^/public/"
policy = "bypass"

[[rule]]
path = "^/1fa/"
policy = "one_factor"

[[rule]]
path = "^/admin/"
subjects = ["group:admins"]
policy = "two_factor"

[[rule]]
path = "^/deny/"
policy = "deny"

[[rule]]
policy = "two_factor"
"#;

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn parse(raw: &str) -> Response {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `name=value` cookies this response sets (raw `Set-Cookie` values).
    pub fn set_cookies(&self) -> Vec<&str> {
        self.all("set-cookie")
    }
}

/// Undoes the HTML escaping of attribute values.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A form on a page: its action, method and every input with a value (hidden ones included).
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

/// The forms of an HTML page, found the way a browser would submit them.
pub fn forms(html: &str) -> Vec<Form> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let start = tag.find(&key)? + key.len();
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let mut out = Vec::new();
    for part in html.split("<form").skip(1) {
        let (open, rest) = part.split_once('>').unwrap_or((part, ""));
        let body = rest.split("</form>").next().unwrap_or("");
        let mut fields = Vec::new();
        for input in body.split("<input").skip(1) {
            let tag = input.split('>').next().unwrap_or("");
            // An unticked checkbox is not sent.
            if tag.contains("type=\"checkbox\"") && !tag.contains(" checked") {
                continue;
            }
            if let Some(name) = attr(tag, "name") {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
        }
        out.push(Form {
            action: attr(open, "action").unwrap_or_default(),
            method: attr(open, "method").unwrap_or_else(|| "get".into()),
            fields,
        });
    }
    out
}

/// A browser: keeps cookies, sends `Accept: text/html`, does not follow redirects by itself.
#[derive(Clone)]
pub struct Browser {
    pub addr: SocketAddr,
    pub host: String,
    pub cookies: Vec<(String, String)>,
    pub extra: Vec<String>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            host: "127.0.0.1".into(),
            cookies: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&mut self, resp: &Response) {
        for sc in resp.set_cookies() {
            let pair = sc.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(n, _)| n != name);
            if !sc.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn request(&mut self, method: &str, target: &str, body: Option<&str>) -> Response {
        self.try_request(method, target, body)
            .expect("gateway answers")
    }

    /// [`Browser::request`], with a gateway that is gone (or went away mid-answer) as an error.
    pub fn try_request(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nConnection: close\r\n",
            self.host
        );
        if let Some(c) = self.cookie_header() {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        for h in &self.extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        let resp = Response::parse(&raw(self.addr, req.as_bytes())?);
        if resp.status == 0 {
            return Err(std::io::Error::other("no complete answer"));
        }
        self.keep_cookies(&resp);
        Ok(resp)
    }

    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, None)
    }

    /// Submits the page's first form whose action ends with `action`: every field it carries,
    /// with `values` filled in or replaced — what a browser does.
    pub fn submit(&mut self, page: &Response, action: &str, values: &[(&str, &str)]) -> Response {
        let form = forms(&page.body)
            .into_iter()
            .find(|f| f.action.ends_with(action))
            .unwrap_or_else(|| panic!("no form for {action} on the page:\n{}", page.body));
        let mut fields = form.fields.clone();
        for (k, v) in values {
            match fields.iter_mut().find(|(n, _)| n == k) {
                Some(f) => f.1 = (*v).to_owned(),
                None => fields.push(((*k).to_owned(), (*v).to_owned())),
            }
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter())
            .finish();
        self.request(&form.method.to_ascii_uppercase(), &form.action, Some(&body))
    }

    /// Signs in through the real form; returns the final response of the POST.
    pub fn sign_in(&mut self, user: &str, password: &str, rd: &str) -> Response {
        let rd_q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let page = self.get(&format!("/_stepgate/login?rd={rd_q}"));
        assert_eq!(page.status, 200, "{page:?}");
        self.submit(
            &page,
            "/login",
            &[("username", user), ("password", password)],
        )
    }
}

/// Whether this run is CI (`CI=true`), where a test that needs a missing service fails rather
/// than skips.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The quickstart users file (the contract's users), as an absolute path.
pub fn quickstart_users() -> String {
    format!(
        "{}/config/quickstart-users.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A gateway with the quickstart's rules and users in front of `upstream`, plus `extra` TOML.
pub fn signin_config(upstream: SocketAddr, extra: &str) -> String {
    config_with(
        &["127.0.0.1", "app.test"],
        &[upstream],
        &format!("{extra}\n{RULES}"),
    )
}

/// The messages the file notifier wrote, oldest first.
pub fn outbox(data_dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data_dir.join("outbox.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("outbox lines are JSON"))
        .collect()
}

/// The path and query of a `Location` (absolute or relative), for the next request.
pub fn location_target(resp: &Response) -> String {
    let loc = resp.header("location").expect("a Location header");
    match url::Url::parse(loc) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
        Err(_) => loc.to_owned(),
    }
}

/// An RFC 6238 code (SHA-1, 30 s, 6 digits) for a base32 key as shown to the user, computed
/// here independently of the gateway's own implementation.
pub fn totp_code(base32_key: &str, unix_secs: u64) -> String {
    let key: String = base32_key.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = data_encoding::BASE32_NOPAD
        .decode(key.as_bytes())
        .expect("the key is base32");
    let counter = (unix_secs / 30).to_be_bytes();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret),
        &counter,
    );
    let mac = tag.as_ref();
    let offset = (mac[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}
