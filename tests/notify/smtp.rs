//! The fake ESMTP server and the SMTP backend against it.

use super::*;

#[derive(Clone, Copy)]
pub(super) struct SmtpOptions {
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
pub(super) struct SmtpLog {
    /// Each command's verb, and whether the connection was encrypted when it arrived.
    commands: Vec<(String, bool)>,
    /// The credentials of each AUTH, and whether the connection was encrypted.
    auth: Vec<(String, String, bool)>,
    mail_from: Vec<String>,
    pub(super) rcpt_to: Vec<String>,
    /// Each message's DATA, dot-unstuffed, lines joined with CRLF.
    pub(super) data: Vec<String>,
}

impl SmtpLog {
    fn verbs(&self) -> Vec<&str> {
        self.commands.iter().map(|(v, _)| v.as_str()).collect()
    }
}

pub(super) struct SmtpServer {
    pub(super) port: u16,
    log: Arc<Mutex<SmtpLog>>,
}

impl SmtpServer {
    pub(super) fn log(&self) -> SmtpLog {
        self.log.lock().unwrap().clone()
    }
}

pub(super) async fn smtp_server(opts: SmtpOptions, acceptor: TlsAcceptor) -> SmtpServer {
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

pub(super) fn smtp_config(port: u16, tls: SmtpTls, ca_file: Option<PathBuf>) -> SmtpConfig {
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

pub(super) fn enrolment_email(to: &str) -> Message {
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
