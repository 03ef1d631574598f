//! The notify backends against servers written here, each test owning its own on a 127.0.0.1
//! ephemeral port: a fake ESMTP server (STARTTLS or implicit TLS via tokio-rustls with an rcgen
//! certificate for `localhost`, AUTH PLAIN/LOGIN), a fake webhook (hand-rolled HTTP/1.1 that
//! answers a programmed sequence of statuses), and the file outbox under concurrent sends.
//!
//! Nothing waits on a clock for correctness: a send returns only after the server has recorded
//! what it received. Every await that could hang is bounded by `DEADLINE`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use stepgate::notify::outbox::Outbox;
use stepgate::notify::smtp::Smtp;
use stepgate::notify::webhook::Webhook;
use stepgate::notify::{
    compose, Backend, Channel, Message, MessageKind, Notifier, Notifiers, NotifyConfig,
    NotifyError, SmtpConfig, SmtpTls, WebhookConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Upper bound for anything that could hang; never reached when the code works.
const DEADLINE: Duration = Duration::from_secs(10);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("did not finish within the deadline")
}

const USER: &str = "mailer";
const PASSWORD: &str = "s3cret-pass";
const CODE: &str = "739164";

// ---------------------------------------------------------------------------------------------
// TLS material: a self-signed certificate for "localhost", trusted by the client via ca_file.

struct TestTls {
    acceptor: TlsAcceptor,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn test_tls() -> TestTls {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    TestTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_file,
        _dir: dir,
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One CRLF-terminated line without its terminator; None at end of stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn b64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Fake SMTP server.

#[derive(Clone, Copy)]
struct SmtpOptions {
    /// Advertise and accept STARTTLS.
    starttls: bool,
    /// TLS from the first byte.
    implicit: bool,
    /// What `AUTH` advertises.
    mechanisms: &'static str,
    /// Accept the connection but never say anything.
    silent: bool,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            starttls: true,
            implicit: false,
            mechanisms: "PLAIN LOGIN",
            silent: false,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct SmtpLog {
    /// Each command's verb, and whether the connection was encrypted when it arrived.
    commands: Vec<(String, bool)>,
    /// The credentials of each AUTH, and whether the connection was encrypted.
    auth: Vec<(String, String, bool)>,
    mail_from: Vec<String>,
    rcpt_to: Vec<String>,
    /// Each message's DATA, dot-unstuffed, lines joined with CRLF.
    data: Vec<String>,
}

impl SmtpLog {
    fn verbs(&self) -> Vec<&str> {
        self.commands.iter().map(|(v, _)| v.as_str()).collect()
    }
}

struct SmtpServer {
    port: u16,
    log: Arc<Mutex<SmtpLog>>,
}

impl SmtpServer {
    fn log(&self) -> SmtpLog {
        self.log.lock().unwrap().clone()
    }
}

async fn smtp_server(opts: SmtpOptions, acceptor: TlsAcceptor) -> SmtpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(SmtpLog::default()));
    let session_log = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, acceptor) = (session_log.clone(), acceptor.clone());
            tokio::spawn(async move {
                let _ = smtp_session(stream, opts, acceptor, log).await;
            });
        }
    });
    SmtpServer { port, log }
}

async fn smtp_session(
    stream: TcpStream,
    opts: SmtpOptions,
    acceptor: TlsAcceptor,
    log: Arc<Mutex<SmtpLog>>,
) -> std::io::Result<()> {
    if opts.silent {
        let mut stream = stream;
        let mut sink = Vec::new();
        // Hold the connection open, reading whatever comes, until the client gives up.
        let _ = stream.read_to_end(&mut sink).await;
        return Ok(());
    }
    let mut tls = opts.implicit;
    let io: Box<dyn Io> = if opts.implicit {
        Box::new(acceptor.accept(stream).await?)
    } else {
        Box::new(stream)
    };
    let mut io = BufReader::new(io);
    io.write_all(b"220 localhost ESMTP fake\r\n").await?;
    while let Some(line) = read_line(&mut io).await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let verb = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        log.lock().unwrap().commands.push((verb.clone(), tls));
        match verb.as_str() {
            "EHLO" => {
                let mut reply = String::from("250-localhost greets you\r\n");
                if opts.starttls && !tls {
                    reply.push_str("250-STARTTLS\r\n");
                }
                reply.push_str(&format!("250-AUTH {}\r\n", opts.mechanisms));
                reply.push_str("250-8BITMIME\r\n250 SMTPUTF8\r\n");
                io.write_all(reply.as_bytes()).await?;
            }
            "STARTTLS" if opts.starttls && !tls => {
                io.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                io.flush().await?;
                let plain = io.into_inner();
                io = BufReader::new(Box::new(acceptor.accept(plain).await?));
                tls = true;
            }
            "AUTH" => {
                let mechanism = words
                    .get(1)
                    .map(|m| m.to_ascii_uppercase())
                    .unwrap_or_default();
                let (user, password) = match mechanism.as_str() {
                    "PLAIN" if opts.mechanisms.contains("PLAIN") => {
                        let initial = match words.get(2) {
                            Some(initial) => initial.to_string(),
                            None => {
                                io.write_all(b"334 \r\n").await?;
                                read_line(&mut io).await?.unwrap_or_default()
                            }
                        };
                        // authzid \0 authcid \0 password
                        let decoded = b64(&initial);
                        let mut parts = decoded.split('\0').skip(1);
                        (
                            parts.next().unwrap_or_default().to_owned(),
                            parts.next().unwrap_or_default().to_owned(),
                        )
                    }
                    "LOGIN" if opts.mechanisms.contains("LOGIN") => {
                        let user = match words.get(2) {
                            Some(initial) => b64(initial),
                            None => {
                                io.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                                b64(&read_line(&mut io).await?.unwrap_or_default())
                            }
                        };
                        io.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let password = b64(&read_line(&mut io).await?.unwrap_or_default());
                        (user, password)
                    }
                    _ => {
                        io.write_all(b"504 5.5.4 unrecognized authentication type\r\n")
                            .await?;
                        continue;
                    }
                };
                let ok = user == USER && password == PASSWORD;
                log.lock().unwrap().auth.push((user, password, tls));
                let reply: &[u8] = if ok {
                    b"235 2.7.0 authentication successful\r\n"
                } else {
                    b"535 5.7.8 authentication credentials invalid\r\n"
                };
                io.write_all(reply).await?;
            }
            "MAIL" | "RCPT" => {
                let address = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(a, _)| a.to_owned())
                    .unwrap_or_default();
                {
                    let mut log = log.lock().unwrap();
                    if verb == "MAIL" {
                        log.mail_from.push(address);
                    } else {
                        log.rcpt_to.push(address);
                    }
                }
                io.write_all(b"250 2.1.0 ok\r\n").await?;
            }
            "DATA" => {
                io.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut lines = Vec::new();
                loop {
                    let Some(line) = read_line(&mut io).await? else {
                        return Ok(());
                    };
                    if line == "." {
                        break;
                    }
                    lines.push(line.strip_prefix('.').map_or(line.clone(), str::to_owned));
                }
                log.lock().unwrap().data.push(lines.join("\r\n"));
                io.write_all(b"250 2.0.0 queued\r\n").await?;
            }
            "RSET" | "NOOP" => io.write_all(b"250 2.0.0 ok\r\n").await?,
            "QUIT" => {
                io.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => {
                io.write_all(b"502 5.5.2 command not recognized\r\n")
                    .await?
            }
        }
        io.flush().await?;
    }
    Ok(())
}

/// A received email, decoded: header values (RFC 2047 words decoded) and the body.
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn parse(data: &str) -> Received {
        let (head, body) = data.split_once("\r\n\r\n").expect("headers and body");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        let headers: Vec<(String, String)> = unfolded
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), decode_words(v.trim())))
            .collect();
        let encoding = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Transfer-Encoding"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let body = match encoding.as_str() {
            "base64" => b64(&body.replace("\r\n", "")),
            "quoted-printable" => decode_quoted_printable(body),
            _ => body.to_owned(),
        };
        Received { headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes RFC 2047 `=?utf-8?b?...?=` words (whitespace between two encoded words is dropped).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut last_encoded = false;
    for token in value.split(' ') {
        let encoded = token
            .strip_prefix("=?")
            .and_then(|t| t.strip_suffix("?="))
            .and_then(|t| {
                let mut parts = t.splitn(3, '?');
                let (_charset, enc, text) = (parts.next()?, parts.next()?, parts.next()?);
                enc.eq_ignore_ascii_case("b").then(|| b64(text))
            });
        match encoded {
            Some(text) => {
                if !out.is_empty() && !last_encoded {
                    out.push(' ');
                }
                out.push_str(&text);
                last_encoded = true;
            }
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(token);
                last_encoded = false;
            }
        }
    }
    out
}

fn decode_quoted_printable(body: &str) -> String {
    let soft = body.replace("=\r\n", "");
    let bytes = soft.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn smtp_config(port: u16, tls: SmtpTls, ca_file: Option<PathBuf>) -> SmtpConfig {
    SmtpConfig {
        host: "localhost".into(),
        port,
        tls,
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        from: "Acme 보안센터 <no-reply@example.test>".into(),
        timeout: Duration::from_secs(5),
        ca_file,
    }
}

fn enrolment_email(to: &str) -> Message {
    compose(
        &MessageKind::EnrolmentCode { code: CODE },
        "ko",
        Channel::Email,
        to,
        "Acme",
        "앨리스",
        Some("https://acme.test/_stepgate/guide"),
    )
}

// ---------------------------------------------------------------------------------------------
// SMTP tests.

#[tokio::test]
async fn smtp_starttls_and_auth_deliver_a_korean_message() {
    let tls = test_tls();
    let server = smtp_server(SmtpOptions::default(), tls.acceptor.clone()).await;
    let smtp = Smtp::new(&smtp_config(
        server.port,
        SmtpTls::Starttls,
        Some(tls.ca_file.clone()),
    ))
    .unwrap();

    within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap();

    let log = server.log();
    let verbs = log.verbs();
    let starttls = verbs
        .iter()
        .position(|v| *v == "STARTTLS")
        .expect("STARTTLS sent");
    let first_auth = verbs.iter().position(|v| *v == "AUTH").expect("AUTH sent");
    assert!(starttls < first_auth, "{verbs:?}");
    for (verb, encrypted) in &log.commands {
        if matches!(verb.as_str(), "AUTH" | "MAIL" | "RCPT" | "DATA") {
            assert!(encrypted, "{verb} before TLS: {:?}", log.commands);
        }
    }
    assert_eq!(log.auth, [(USER.to_owned(), PASSWORD.to_owned(), true)]);
    assert_eq!(log.mail_from, ["no-reply@example.test"]);
    assert_eq!(log.rcpt_to, ["alice@example.test"]);
    assert_eq!(log.data.len(), 1);

    let email = Received::parse(&log.data[0]);
    assert_eq!(
        email.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(email.header("To"), Some("alice@example.test"));
    assert!(
        email.header("From").unwrap().contains("Acme 보안센터"),
        "{:?}",
        email.header("From")
    );
    assert_eq!(
        email.header("Subject"),
        Some("[Acme] 이메일 인증 코드 안내")
    );
    assert!(email.body.contains(CODE), "{}", email.body);
    assert!(
        email.body.contains("안녕하세요, 앨리스님."),
        "{}",
        email.body
    );
    assert!(email.body.contains("10분"), "{}", email.body);
}

#[tokio::test]
async fn smtp_auth_login_works_when_plain_is_not_offered() {
    let tls = test_tls();
    let opts = SmtpOptions {
        mechanisms: "LOGIN",
        ..SmtpOptions::default()
    };
    let server = smtp_server(opts, tls.acceptor.clone()).await;
    let smtp = Smtp::new(&smtp_config(
        server.port,
        SmtpTls::Starttls,
        Some(tls.ca_file.clone()),
    ))
    .unwrap();
    within(smtp.send(&enrolment_email("bob@example.test")))
        .await
        .unwrap();
    let log = server.log();
    assert_eq!(log.auth, [(USER.to_owned(), PASSWORD.to_owned(), true)]);
    assert_eq!(log.data.len(), 1);
}

#[tokio::test]
async fn smtp_refuses_to_go_on_without_starttls() {
    let tls = test_tls();
    let opts = SmtpOptions {
        starttls: false,
        ..SmtpOptions::default()
    };
    let server = smtp_server(opts, tls.acceptor.clone()).await;
    let smtp = Smtp::new(&smtp_config(
        server.port,
        SmtpTls::Starttls,
        Some(tls.ca_file.clone()),
    ))
    .unwrap();
    let e = within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::Smtp(_)), "{e}");
    let log = server.log();
    assert!(log.auth.is_empty(), "{log:?}");
    assert!(
        !log.verbs()
            .iter()
            .any(|v| matches!(*v, "AUTH" | "MAIL" | "RCPT" | "DATA")),
        "{log:?}"
    );
}

#[tokio::test]
async fn smtp_implicit_tls_delivers() {
    let tls = test_tls();
    let opts = SmtpOptions {
        starttls: false,
        implicit: true,
        ..SmtpOptions::default()
    };
    let server = smtp_server(opts, tls.acceptor.clone()).await;
    let smtp = Smtp::new(&smtp_config(
        server.port,
        SmtpTls::Implicit,
        Some(tls.ca_file.clone()),
    ))
    .unwrap();
    within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap();
    let log = server.log();
    assert!(
        log.commands.iter().all(|(_, encrypted)| *encrypted),
        "{log:?}"
    );
    assert_eq!(log.auth.len(), 1);
    assert!(Received::parse(&log.data[0]).body.contains(CODE));
}

#[tokio::test]
async fn smtp_rejects_an_untrusted_certificate() {
    let tls = test_tls();
    let server = smtp_server(SmtpOptions::default(), tls.acceptor.clone()).await;
    // No ca_file: the self-signed certificate is not trusted.
    let smtp = Smtp::new(&smtp_config(server.port, SmtpTls::Starttls, None)).unwrap();
    let e = within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::Smtp(_)), "{e}");
    assert!(server.log().auth.is_empty());
}

#[tokio::test]
async fn smtp_wrong_password_is_an_error() {
    let tls = test_tls();
    let server = smtp_server(SmtpOptions::default(), tls.acceptor.clone()).await;
    let mut cfg = smtp_config(server.port, SmtpTls::Starttls, Some(tls.ca_file.clone()));
    cfg.password = Some("wrong-password".into());
    let smtp = Smtp::new(&cfg).unwrap();
    let e = within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap_err();
    match &e {
        NotifyError::Smtp(reason) => assert!(reason.contains("535"), "{reason}"),
        other => panic!("expected an smtp error, got {other}"),
    }
    assert!(!e.to_string().contains("wrong-password"), "{e}");
    let log = server.log();
    assert!(log.mail_from.is_empty() && log.data.is_empty(), "{log:?}");
}

#[tokio::test]
async fn smtp_server_down_is_an_error_within_the_timeout() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut cfg = smtp_config(port, SmtpTls::None, None);
    cfg.host = "127.0.0.1".into();
    let smtp = Smtp::new(&cfg).unwrap();
    let sent = tokio::time::timeout(
        cfg.timeout + Duration::from_secs(1),
        smtp.send(&enrolment_email("alice@example.test")),
    )
    .await
    .expect("the error came within the timeout");
    assert!(matches!(sent, Err(NotifyError::Smtp(_))), "{sent:?}");
}

#[tokio::test]
async fn smtp_silent_server_times_out() {
    let tls = test_tls();
    let opts = SmtpOptions {
        silent: true,
        ..SmtpOptions::default()
    };
    let server = smtp_server(opts, tls.acceptor.clone()).await;
    let mut cfg = smtp_config(server.port, SmtpTls::Starttls, Some(tls.ca_file.clone()));
    cfg.timeout = Duration::from_millis(300);
    let smtp = Smtp::new(&cfg).unwrap();
    let e = within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::SmtpTimeout(_)), "{e}");
}

#[tokio::test]
async fn smtp_plain_on_loopback_delivers() {
    let tls = test_tls();
    let opts = SmtpOptions {
        starttls: false,
        ..SmtpOptions::default()
    };
    let server = smtp_server(opts, tls.acceptor.clone()).await;
    let mut cfg = smtp_config(server.port, SmtpTls::None, None);
    cfg.username = None;
    cfg.password = None;
    let smtp = Smtp::new(&cfg).unwrap();
    within(smtp.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap();
    let log = server.log();
    assert!(log.auth.is_empty());
    assert_eq!(log.data.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Fake webhook server.

#[derive(Debug, Clone)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// What the webhook answers to one request.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    /// A status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Read the request, never answer.
    Hang,
}

struct HookServer {
    url: url::Url,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HookServer {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Answers the n-th request with `replies[n]`, and 200 once they run out.
async fn hook_server(replies: Vec<Reply>, tls: Option<TlsAcceptor>) -> HookServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{port}/hook?token=t0ken")
        .parse()
        .unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = requests.clone();
    let replies = Arc::new(replies);
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (recorded, replies, next, tls) =
                (recorded.clone(), replies.clone(), next.clone(), tls.clone());
            tokio::spawn(async move {
                let io: Box<dyn Io> = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(stream),
                };
                let _ = hook_session(io, recorded, replies, next).await;
            });
        }
    });
    HookServer { url, requests }
}

async fn hook_session(
    io: Box<dyn Io>,
    recorded: Arc<Mutex<Vec<Request>>>,
    replies: Arc<Vec<Reply>>,
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
        recorded.push(Request {
            line,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let n = next.fetch_add(1, Ordering::SeqCst);
        replies.get(n).cloned().unwrap_or(Reply::Status(200))
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

fn hook_config(url: url::Url, retries: u32) -> WebhookConfig {
    WebhookConfig {
        url,
        headers: vec![("Authorization".into(), "Bearer x".into())],
        body_template: None,
        timeout: Duration::from_secs(5),
        retries,
        backoff: Duration::from_millis(10),
        ca_file: None,
    }
}

fn sms() -> Message {
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

// ---------------------------------------------------------------------------------------------
// Outbox and routing.

#[tokio::test]
async fn outbox_concurrent_sends_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::in_data_dir(dir.path()));
    let mut tasks = Vec::new();
    for task in 0..2 {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let code = format!("{task}{i:05}");
                let mut msg = compose(
                    &MessageKind::EnrolmentCode { code: &code },
                    if task == 0 { "ko" } else { "en" },
                    Channel::Email,
                    "alice@example.test",
                    "Acme",
                    "Alice",
                    Some("https://acme.test/_stepgate/guide"),
                );
                // Long lines make torn writes likely if they could happen.
                msg.text = msg.text.repeat(20);
                outbox.send(&msg).await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let content = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 400);
    let mut codes = std::collections::BTreeSet::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a well-formed line");
        for key in ["ts", "channel", "to", "subject", "text", "code", "link"] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        codes.insert(v["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(codes.len(), 400);
}

#[tokio::test]
async fn notifiers_route_email_to_smtp_and_sms_to_the_webhook() {
    let tls = test_tls();
    let smtp = smtp_server(SmtpOptions::default(), tls.acceptor.clone()).await;
    let hook = hook_server(vec![], None).await;
    let data_dir = tempfile::tempdir().unwrap();
    let cfg = NotifyConfig {
        email: Backend::Smtp,
        sms: Backend::Webhook,
        smtp: Some(smtp_config(
            smtp.port,
            SmtpTls::Starttls,
            Some(tls.ca_file.clone()),
        )),
        webhook: Some(hook_config(hook.url.clone(), 0)),
    };
    let notifiers = Notifiers::build(&cfg, data_dir.path()).unwrap();

    within(notifiers.send(&enrolment_email("alice@example.test")))
        .await
        .unwrap();
    within(notifiers.send(&sms())).await.unwrap();
    let push = compose(
        &MessageKind::SecondFactorFailed,
        "en",
        Channel::Push,
        "device-1",
        "Acme",
        "Alice",
        None,
    );
    within(notifiers.send(&push)).await.unwrap();

    let log = smtp.log();
    assert_eq!(log.rcpt_to, ["alice@example.test"]);
    assert_eq!(log.data.len(), 1);
    let requests = hook.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].json()["channel"], "sms");
    assert_eq!(requests[1].json()["channel"], "push");
    assert!(!data_dir.path().join("outbox.jsonl").exists());
}

#[tokio::test]
async fn notifiers_build_fails_on_an_unreadable_ca_file() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut smtp = smtp_config(25, SmtpTls::Starttls, None);
    smtp.ca_file = Some(data_dir.path().join("missing.pem"));
    let cfg = NotifyConfig {
        email: Backend::Smtp,
        smtp: Some(smtp),
        ..NotifyConfig::default()
    };
    let e = Notifiers::build(&cfg, data_dir.path()).unwrap_err();
    assert!(matches!(e, NotifyError::CaFile { .. }), "{e}");
}
