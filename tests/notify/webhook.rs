//! The fake webhook server and the webhook backend against it.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Request {
    /// `POST /path?query HTTP/1.1`
    pub(super) line: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// What the webhook answers to one request.
#[derive(Debug, Clone)]
pub(super) enum Reply {
    Status(u16),
    /// A status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Read the request, never answer.
    Hang,
}

pub(super) struct HookServer {
    pub(super) url: url::Url,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HookServer {
    pub(super) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// How a server answers its n-th request (counting from 0), having read it.
pub(super) type Answer = Arc<dyn Fn(usize, &Request) -> Reply + Send + Sync>;

/// Answers the n-th request with `replies[n]`, and 200 once they run out.
pub(super) async fn hook_server(replies: Vec<Reply>, tls: Option<TlsAcceptor>) -> HookServer {
    let answer: Answer =
        Arc::new(move |n, _| replies.get(n).cloned().unwrap_or(Reply::Status(200)));
    answering_server(answer, tls).await
}

/// A server whose replies are decided by `answer`, e.g. a provider that checks credentials.
pub(super) async fn answering_server(answer: Answer, tls: Option<TlsAcceptor>) -> HookServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{port}/hook?token=t0ken")
        .parse()
        .unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = requests.clone();
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (recorded, answer, next, tls) =
                (recorded.clone(), answer.clone(), next.clone(), tls.clone());
            tokio::spawn(async move {
                let io: Box<dyn Io> = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(stream),
                };
                let _ = hook_session(io, recorded, answer, next).await;
            });
        }
    });
    HookServer { url, requests }
}

async fn hook_session(
    io: Box<dyn Io>,
    recorded: Arc<Mutex<Vec<Request>>>,
    answer: Answer,
    next: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(io);
    let Some(line) = read_line(&mut io).await? else {
        return Ok(());
    };
    let mut headers = Vec::new();
    while let Some(h) = read_line(&mut io).await? {
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    io.read_exact(&mut body).await?;
    let reply = {
        // Record and pick the reply under one lock so the order of attempts is the order here.
        let mut recorded = recorded.lock().unwrap();
        let request = Request {
            line,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let n = next.fetch_add(1, Ordering::SeqCst);
        let reply = answer(n, &request);
        recorded.push(request);
        reply
    };
    let (status, extra) = match reply {
        Reply::Status(s) => (s, String::new()),
        Reply::RetryAfter(s, secs) => (s, format!("retry-after: {secs}\r\n")),
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    };
    let response = format!(
        "HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n{extra}\r\n"
    );
    io.write_all(response.as_bytes()).await?;
    io.flush().await?;
    io.shutdown().await
}

pub(super) fn hook_config(url: url::Url, retries: u32) -> WebhookConfig {
    WebhookConfig {
        headers: vec![("Authorization".into(), "Bearer x".into())],
        timeout: Duration::from_secs(5),
        retries,
        backoff: Duration::from_millis(10),
        ..WebhookConfig::new(url)
    }
}

pub(super) fn sms() -> Message {
    compose(
        &MessageKind::EnrolmentCode { code: CODE },
        "ko",
        Channel::Sms,
        "+821000000001",
        "Acme",
        "앨리스",
        None,
    )
}

// ---------------------------------------------------------------------------------------------
// Webhook tests.

#[tokio::test]
async fn webhook_retries_5xx_until_delivered() {
    let server = hook_server(vec![Reply::Status(503), Reply::Status(503)], None).await;
    let hook = Webhook::new(&hook_config(server.url.clone(), 3)).unwrap();
    within(hook.send(&sms())).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    // Every attempt is the same message: same body (same id) and the same idempotency key.
    let key = requests[0]
        .header("idempotency-key")
        .expect("an idempotency key");
    assert_eq!(key.len(), 32);
    for r in &requests {
        assert_eq!(r.body, requests[0].body);
        assert_eq!(r.header("idempotency-key"), Some(key));
        assert_eq!(r.line, "POST /hook?token=t0ken HTTP/1.1");
    }
    assert_eq!(requests[0].json()["id"], key);
}

#[tokio::test]
async fn webhook_gives_up_after_its_retries() {
    let server = hook_server(vec![Reply::Status(500); 5], None).await;
    let hook = Webhook::new(&hook_config(server.url.clone(), 2)).unwrap();
    let e = within(hook.send(&sms())).await.unwrap_err();
    assert!(
        matches!(
            e,
            NotifyError::WebhookStatus {
                status: 500,
                attempts: 3
            }
        ),
        "{e}"
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn webhook_does_not_retry_a_client_error() {
    let server = hook_server(vec![Reply::Status(400)], None).await;
    let hook = Webhook::new(&hook_config(server.url.clone(), 3)).unwrap();
    let e = within(hook.send(&sms())).await.unwrap_err();
    assert!(
        matches!(
            e,
            NotifyError::WebhookStatus {
                status: 400,
                attempts: 1
            }
        ),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn webhook_retries_429_with_retry_after() {
    let server = hook_server(vec![Reply::RetryAfter(429, 0)], None).await;
    let hook = Webhook::new(&hook_config(server.url.clone(), 1)).unwrap();
    within(hook.send(&sms())).await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn webhook_does_not_follow_redirects() {
    let server = hook_server(vec![Reply::Status(307)], None).await;
    let hook = Webhook::new(&hook_config(server.url.clone(), 3)).unwrap();
    let e = within(hook.send(&sms())).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::WebhookStatus { status: 307, .. }),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn webhook_sends_headers_and_the_default_body() {
    let server = hook_server(vec![], None).await;
    let hook = Webhook::new(&hook_config(server.url.clone(), 0)).unwrap();
    let msg = sms();
    within(hook.send(&msg)).await.unwrap();
    let requests = server.requests();
    let r = &requests[0];
    assert_eq!(r.header("authorization"), Some("Bearer x"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["to"], "+821000000001");
    assert_eq!(body["code"], CODE);
    assert_eq!(body["text"], msg.text.as_str());
    assert_eq!(body["subject"], msg.subject.as_str());
    assert!(body.get("link").is_none(), "{body}");
    assert!(body["ts"].as_str().unwrap().ends_with('Z'), "{body}");
}

#[tokio::test]
async fn webhook_body_template_arrives_rendered() {
    let server = hook_server(vec![], None).await;
    let mut cfg = hook_config(server.url.clone(), 0);
    cfg.body_template = Some(
        r#"{"messages": [{"destinations": [{"to": {{ to|tojson }}}], "text": {{ text|tojson }}}],
            "otp": {{ code|tojson }}, "reference": {{ id|tojson }}, "kind": {{ kind|tojson }}}"#
            .into(),
    );
    let hook = Webhook::new(&cfg).unwrap();
    let mut msg = sms();
    msg.text = "줄 하나 \"따옴표\"\n줄 둘 \\ 끝".into();
    within(hook.send(&msg)).await.unwrap();
    let requests = server.requests();
    let body = requests[0].json();
    assert_eq!(
        body["messages"][0]["destinations"][0]["to"],
        "+821000000001"
    );
    assert_eq!(body["messages"][0]["text"], msg.text.as_str());
    assert_eq!(body["otp"], CODE);
    assert_eq!(body["kind"], "enrolment_code");
    assert_eq!(body["reference"].as_str().map(str::len), Some(32));
}

#[tokio::test]
async fn webhook_timeout_is_an_error() {
    let server = hook_server(vec![Reply::Hang, Reply::Hang], None).await;
    let mut cfg = hook_config(server.url.clone(), 1);
    cfg.timeout = Duration::from_millis(300);
    let hook = Webhook::new(&cfg).unwrap();
    let e = within(hook.send(&sms())).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::WebhookRequest { attempts: 2, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("t0ken"), "{e}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn webhook_connection_refused_is_an_error_without_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook?token=t0ken")
        .parse()
        .unwrap();
    let hook = Webhook::new(&hook_config(url, 1)).unwrap();
    let e = within(hook.send(&sms())).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::WebhookRequest { attempts: 2, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("t0ken"), "{e}");
}

#[tokio::test]
async fn webhook_over_https_trusts_the_ca_file() {
    let tls = test_tls();
    let server = hook_server(vec![], Some(tls.acceptor.clone())).await;
    let mut cfg = hook_config(server.url.clone(), 0);
    let untrusted = Webhook::new(&cfg).unwrap();
    assert!(within(untrusted.send(&sms())).await.is_err());
    assert!(server.requests().is_empty());
    cfg.ca_file = Some(tls.ca_file.clone());
    let trusted = Webhook::new(&cfg).unwrap();
    within(trusted.send(&sms())).await.unwrap();
    assert_eq!(server.requests().len(), 1);
}
