//! The built-in `whoami` app: answers every request with JSON describing the request it
//! received (`method`, `path`, `query`, `headers` as `[name, value]` pairs in arrival order,
//! `host`). It serves the quickstart and the tests, and listens on a loopback port of its own so
//! that requests reach it through the real proxy path, identity headers and all.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

pub struct Whoami {
    listener: Mutex<Option<StdListener>>,
    addr: SocketAddr,
}

impl Whoami {
    /// Binds a loopback port now, so its address is known before the server runs.
    pub fn bind() -> std::io::Result<Whoami> {
        let listener = StdListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Whoami {
            listener: Mutex::new(Some(listener)),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[async_trait]
impl BackgroundService for Whoami {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let std_listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let Some(listener) = std_listener.and_then(|l| TcpListener::from_std(l).ok()) else {
            tracing::error!("whoami: listener unavailable");
            return;
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve(stream));
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, String)>,
    host: Option<String>,
}

async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let head_len = loop {
            if let Some(pos) = find_head_end(&buf) {
                break pos;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(75), stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = req.parse(&buf[..head_len]) else {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            return;
        };
        let target = req.path.unwrap_or("/");
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let header_pairs: Vec<(&str, String)> = req
            .headers
            .iter()
            .map(|h| (h.name, String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let content_length = header_pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let chunked = header_pairs.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let close = header_pairs
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        let echo = Echo {
            method: req.method.unwrap_or(""),
            path,
            query,
            host: header_pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.clone()),
            headers: header_pairs.clone(),
        };
        let body = serde_json::to_vec_pretty(&echo).unwrap_or_default();
        let is_head = echo.method == "HEAD";
        if chunked || content_length > MAX_BODY {
            // The echo does not need request bodies; it does not keep a connection it cannot frame.
            let _ = respond(&mut stream, &body, is_head, true).await;
            return;
        }
        let total = head_len + content_length;
        while buf.len() < total {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..total);
        if respond(&mut stream, &body, is_head, close).await.is_err() || close {
            return;
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    body: &[u8],
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    Ok(())
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}
