//! Test harness: each test starts its own gateway and its own recording upstreams on ephemeral
//! loopback ports, and asserts what the upstream received on the wire.
#![allow(dead_code)]

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

    pub fn with(name: &str, mut behaviour: Behaviour) -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
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
        buf.drain(..total);
        let record = Seen { line, headers };
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
}

impl Gateway {
    /// Starts a gateway from `toml`; `{port}` in it is replaced by a free port (the first
    /// listener's), `{data}` by a fresh data directory.
    pub fn start(toml: &str) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let text = toml
            .replace("{port}", &port.to_string())
            .replace("{data}", &dir.path().join("data").display().to_string());
        let path = dir.path().join("stepgate.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let running = app::start(&cfg).expect("gateway builds");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_ready(addr);
        Gateway {
            addr,
            dir,
            running: Some(running),
        }
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

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
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
    format!(
        "[server]\ndata_dir = \"{{data}}\"\nthreads = 2\ngrace_period = \"2s\"\nshutdown_timeout = \"1s\"\n\n[log]\naccess_log = false\n\n[[listener]]\naddress = \"127.0.0.1:{{port}}\"\n\n[[app]]\nid = \"app\"\nhosts = [{hosts}]\nupstreams = [{ups}]\nconnect_timeout = \"2s\"\nread_timeout = \"3s\"\n\n{extra}\n"
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
