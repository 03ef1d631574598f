//! Messages to users: the `Notifier` capability, the validated `[notify]` settings, and
//! `Notifiers`, which sends each message to the backend configured for its channel and logs the
//! outcome.
//!
//! What a message says lives in `notify/message.rs` (its texts in `crate::i18n`); how it
//! travels in `notify/outbox.rs` (a local file), `notify/smtp.rs` (email) and `notify/webhook.rs`
//! (an HTTP endpoint, e.g. an SMS or push provider's bridge).
//!
//! Logging: a message carries live one-time codes and sign-in links. The log line names the
//! channel, the kind of message, the backend and a masked recipient (`a***@example.test`), never
//! the code, the text or the link. Errors are built so that their `Display` carries none of them
//! either (nor passwords, header values or webhook URLs, which often embed a token).

pub mod message;
pub mod outbox;
pub mod smtp;
pub mod webhook;

pub use message::{compose, Channel, Message, MessageKind, Origin};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Tracing target of every notify log line.
pub const LOG_TARGET: &str = "stepgate::notify";

/// Something that can deliver a message to a user.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers one message; Err when it could not be delivered (after this backend's own retries).
    async fn send(&self, msg: &Message) -> Result<(), NotifyError>;
}

/// Why a message could not be delivered, or a backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("invalid {backend} settings: {reason}")]
    Config {
        backend: &'static str,
        reason: String,
    },
    #[error("{channel} messages go to the {backend} backend, but [notify.{backend}] is missing")]
    NotConfigured { channel: Channel, backend: Backend },
    #[error("cannot append to the outbox {path}: {reason}")]
    Outbox { path: PathBuf, reason: String },
    #[error("the recipient is not a valid email address")]
    Recipient,
    #[error("cannot build the email: {0}")]
    Email(String),
    #[error("smtp delivery failed: {0}")]
    Smtp(String),
    #[error("smtp delivery did not finish within {0:?}")]
    SmtpTimeout(Duration),
    #[error("the webhook body template failed: {0}")]
    Template(String),
    #[error("the webhook body template did not produce JSON: {0}")]
    BodyNotJson(String),
    #[error("a webhook header template failed: {0}")]
    HeaderTemplate(String),
    #[error("the webhook answered {status} after {attempts} attempt(s)")]
    WebhookStatus { status: u16, attempts: u32 },
    #[error("the webhook request failed after {attempts} attempt(s): {reason}")]
    WebhookRequest { attempts: u32, reason: String },
}

/// Where the messages of one channel go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `<data dir>/outbox.jsonl`, for local try-outs and tests.
    Outbox,
    /// Email over SMTP (email channel only).
    Smtp,
    /// An HTTP POST per message.
    Webhook,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Outbox => "outbox",
            Backend::Smtp => "smtp",
            Backend::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validated `[notify]` settings (built by config validation).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub email: Backend,
    /// `Outbox` or `Webhook`; push messages go where SMS messages go.
    pub sms: Backend,
    pub smtp: Option<SmtpConfig>,
    pub webhook: Option<WebhookConfig>,
    /// Where notices meant for the operator go (an account locked by "this wasn't me").
    pub operator_email: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            email: Backend::Outbox,
            sms: Backend::Outbox,
            smtp: None,
            webhook: None,
            operator_email: None,
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connect, then STARTTLS, which is required: a server that does not offer it (or an
    /// attacker who strips the offer) gets no credentials and no message.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS at all: credentials and codes travel in clear text, so it is allowed only for a
    /// loopback host (validation enforces it, and `Smtp::new` checks again).
    None,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `Name <addr>` or `addr`.
    pub from: String,
    /// The whole delivery (connect, TLS, AUTH, DATA) must finish within it.
    pub timeout: Duration,
    /// Extra PEM root certificate(s), trusted in addition to the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How the webhook body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// `application/json`: the default body or `body_template`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: one field per `form_fields` entry.
    Form,
}

impl BodyFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Form => "form",
        }
    }
}

/// HTTP Basic credentials (RFC 7617); the user name has no `:`.
#[derive(Clone)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &REDACTED)
            .finish()
    }
}

#[derive(Clone)]
pub struct WebhookConfig {
    pub url: url::Url,
    /// Sent with every request, e.g. `Authorization: Bearer ...`; values are secrets. A value
    /// with `{{` is a template rendered for each attempt (see `webhook`).
    pub headers: Vec<(String, String)>,
    /// JSON (the default body or `body_template`) or a form (`form_fields`).
    pub body_format: BodyFormat,
    /// A minijinja template for the JSON body; `None` = the default body (see `webhook`).
    pub body_template: Option<String>,
    /// With `BodyFormat::Form`: field name and minijinja template, in this order.
    pub form_fields: Vec<(String, String)>,
    /// `Authorization: Basic ...` on every request.
    pub basic_auth: Option<BasicAuth>,
    /// Values templates read as `secrets.NAME` (signing keys, API keys); never logged.
    pub secrets: Vec<(String, String)>,
    /// `whsec_<base64>`: every attempt is signed the Standard Webhooks way.
    pub signing_secret: Option<String>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first one, on connection errors, timeouts, 429 and 5xx.
    pub retries: u32,
    /// The first back-off; it doubles on each retry.
    pub backoff: Duration,
    /// Extra PEM root certificate(s), trusted in addition to the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
}

impl WebhookConfig {
    /// The defaults of `[notify.webhook]` for `url`: the default JSON body, no extra headers,
    /// 10 s per attempt, 3 retries from 1 s.
    pub fn new(url: url::Url) -> WebhookConfig {
        WebhookConfig {
            url,
            headers: Vec::new(),
            body_format: BodyFormat::Json,
            body_template: None,
            form_fields: Vec::new(),
            basic_auth: None,
            secrets: Vec::new(),
            signing_secret: None,
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_secs(1),
            ca_file: None,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn names(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
            pairs
                .iter()
                .map(|(name, _)| (name.as_str(), REDACTED))
                .collect()
        }
        f.debug_struct("WebhookConfig")
            .field("url", &redacted_url(&self.url))
            .field("headers", &names(&self.headers))
            .field("body_format", &self.body_format)
            .field(
                "body_template",
                &self
                    .body_template
                    .as_ref()
                    .map(|t| format!("<{} bytes>", t.len())),
            )
            .field("form_fields", &names(&self.form_fields))
            .field("basic_auth", &self.basic_auth)
            .field("secrets", &names(&self.secrets))
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| REDACTED),
            )
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

const REDACTED: &str = "<redacted>";

/// A webhook URL for logs and `Debug`: scheme, host and port only. Providers put tokens in the
/// path (`/services/T0/B0/secret`) or the query (`?key=...`).
pub(crate) fn redacted_url(url: &url::Url) -> String {
    let origin = url.origin().ascii_serialization();
    if url.path() == "/" && url.query().is_none() {
        origin
    } else {
        format!("{origin}/{REDACTED}")
    }
}

/// A recipient for logs: enough to tell messages apart, not enough to identify the person.
/// `alice@example.test` -> `a***@example.test`, `+821000000001` -> `+82********01`, anything
/// else -> its first two characters and `***`.
pub fn mask_recipient(to: &str) -> String {
    let to = to.trim();
    if let Some((local, domain)) = to.rsplit_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = to.chars().collect();
    let phone = chars.len() >= 7
        && chars
            .iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && *c == '+'));
    if phone {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 2..].iter().collect();
        return format!("{head}{}{tail}", "*".repeat(chars.len() - 5));
    }
    let head: String = chars.iter().take(2).collect();
    format!("{head}***")
}

/// Reads a PEM file of extra root certificates; fails unless it holds at least one certificate.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<u8>, NotifyError> {
    let fail = |reason: String| NotifyError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(io_reason(&e)))?;
    let mut count = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        cert.map_err(|e| fail(format!("not valid PEM: {}", io_reason(&e))))?;
        count += 1;
    }
    if count == 0 {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(pem)
}

/// An I/O error as a reason: `No such file or directory (os error 2)` -> `no such file or directory`.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.rfind(" (os error ").map_or(s.as_str(), |i| &s[..i]);
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_lowercase().chain(c).collect())
}

/// An error and its sources, joined with `: ` (for reasons kept in `NotifyError`).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Routes each message to the backend configured for its channel (push goes where SMS goes).
pub struct Notifiers {
    email: Arc<dyn Notifier>,
    email_backend: &'static str,
    sms: Arc<dyn Notifier>,
    sms_backend: &'static str,
    operator: Option<String>,
}

impl Notifiers {
    /// Where notices for the operator go (`notify.operator_email`), if anywhere.
    pub fn operator(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    /// Builds the backends the configuration uses (each once, so email and SMS sharing the outbox
    /// share its lock); fails on an unreadable `ca_file`, an invalid body template and the like.
    pub fn build(cfg: &NotifyConfig, data_dir: &Path) -> Result<Notifiers, NotifyError> {
        if cfg.sms == Backend::Smtp {
            return Err(NotifyError::Config {
                backend: "notify",
                reason: "sms messages cannot go to the smtp backend".into(),
            });
        }
        let mut outbox: Option<Arc<dyn Notifier>> = None;
        let mut smtp: Option<Arc<dyn Notifier>> = None;
        let mut webhook: Option<Arc<dyn Notifier>> = None;
        let mut get = |backend: Backend,
                       channel: Channel|
         -> Result<Arc<dyn Notifier>, NotifyError> {
            let missing = NotifyError::NotConfigured { channel, backend };
            Ok(match backend {
                Backend::Outbox => outbox
                    .get_or_insert_with(|| Arc::new(outbox::Outbox::in_data_dir(data_dir)))
                    .clone(),
                Backend::Smtp => match &smtp {
                    Some(n) => n.clone(),
                    None => {
                        let n: Arc<dyn Notifier> =
                            Arc::new(smtp::Smtp::new(cfg.smtp.as_ref().ok_or(missing)?)?);
                        smtp.insert(n).clone()
                    }
                },
                Backend::Webhook => match &webhook {
                    Some(n) => n.clone(),
                    None => {
                        let n: Arc<dyn Notifier> =
                            Arc::new(webhook::Webhook::new(cfg.webhook.as_ref().ok_or(missing)?)?);
                        webhook.insert(n).clone()
                    }
                },
            })
        };
        Ok(Notifiers {
            email: get(cfg.email, Channel::Email)?,
            email_backend: cfg.email.as_str(),
            sms: get(cfg.sms, Channel::Sms)?,
            sms_backend: cfg.sms.as_str(),
            operator: cfg.operator_email.clone(),
        })
    }

    /// Routes to notifiers given by the caller (tests use recording ones).
    pub fn from_parts(email: Arc<dyn Notifier>, sms: Arc<dyn Notifier>) -> Notifiers {
        Notifiers {
            email,
            email_backend: "custom",
            sms,
            sms_backend: "custom",
            operator: None,
        }
    }

    /// Sends through the channel's backend and logs the outcome (never the code, text or link).
    pub async fn send(&self, msg: &Message) -> Result<(), NotifyError> {
        let (notifier, backend) = match msg.channel {
            Channel::Email => (&self.email, self.email_backend),
            Channel::Sms | Channel::Push => (&self.sms, self.sms_backend),
        };
        let result = notifier.send(msg).await;
        crate::metrics::notify(msg.channel.as_str(), result.is_ok());
        let to = mask_recipient(&msg.to);
        match &result {
            Ok(()) => tracing::info!(
                target: LOG_TARGET,
                channel = %msg.channel,
                kind = msg.kind,
                to = %to,
                backend,
                "message sent"
            ),
            Err(e) => tracing::warn!(
                target: LOG_TARGET,
                channel = %msg.channel,
                kind = msg.kind,
                to = %to,
                backend,
                error = %e,
                "message not delivered"
            ),
        }
        result
    }
}

#[async_trait::async_trait]
impl Notifier for Notifiers {
    async fn send(&self, msg: &Message) -> Result<(), NotifyError> {
        Notifiers::send(self, msg).await
    }
}

impl fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifiers")
            .field("email", &self.email_backend)
            .field("sms", &self.sms_backend)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn recipients_are_masked() {
        assert_eq!(mask_recipient("alice@example.test"), "a***@example.test");
        assert_eq!(mask_recipient("+821000000001"), "+82********01");
        assert_eq!(mask_recipient("김철수@예시.한국"), "김***@예시.한국");
        assert_eq!(mask_recipient("device-token-abc"), "de***");
        assert_eq!(mask_recipient(""), "***");
    }

    #[test]
    fn config_debug_hides_secrets() {
        let smtp = SmtpConfig {
            host: "smtp.example.test".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: Some("mailer".into()),
            password: Some("hunter2-secret".into()),
            from: "Acme <no-reply@example.test>".into(),
            timeout: Duration::from_secs(10),
            ca_file: None,
        };
        let s = format!("{smtp:?}");
        assert!(!s.contains("hunter2-secret"), "{s}");
        assert!(s.contains("mailer") && s.contains("<redacted>"), "{s}");

        let hook = WebhookConfig {
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            body_template: Some(r#"{"api_key": "t3mplate-secret"}"#.into()),
            form_fields: vec![("ApiKey".into(), "f0rm-secret".into())],
            basic_auth: Some(BasicAuth {
                user: "AC0001".into(),
                password: "b4sic-secret".into(),
            }),
            secrets: vec![("ncp_key".into(), "n4med-secret".into())],
            signing_secret: Some("whsec_c2lnbmluZy1zZWNyZXQtc2lnbmluZy1zZWNyZXQ=".into()),
            ..WebhookConfig::new(
                "https://hooks.example.test/services/T0/B0/tok3n?key=k3y"
                    .parse()
                    .unwrap(),
            )
        };
        let s = format!("{hook:?}");
        for secret in [
            "s3cret",
            "tok3n",
            "k3y",
            "t3mplate-secret",
            "f0rm-secret",
            "b4sic-secret",
            "n4med-secret",
            "whsec_",
        ] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert!(
            s.contains("Authorization") && s.contains("https://hooks.example.test"),
            "{s}"
        );
        for name in ["ApiKey", "AC0001", "ncp_key"] {
            assert!(s.contains(name), "{name} not in {s}");
        }
    }

    #[test]
    fn error_messages_are_lowercase() {
        let errors = [
            NotifyError::Recipient,
            NotifyError::SmtpTimeout(Duration::from_secs(1)),
            NotifyError::WebhookStatus {
                status: 400,
                attempts: 1,
            },
            NotifyError::NotConfigured {
                channel: Channel::Sms,
                backend: Backend::Webhook,
            },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(s.starts_with(|c: char| c.is_lowercase()), "{s}");
        }
    }

    #[test]
    fn unreadable_or_empty_ca_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = read_ca_file(&missing).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = read_ca_file(&empty).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn build_fails_when_a_backend_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NotifyConfig {
            sms: Backend::Webhook,
            ..NotifyConfig::default()
        };
        let e = Notifiers::build(&cfg, dir.path()).unwrap_err();
        assert!(matches!(e, NotifyError::NotConfigured { .. }), "{e}");
        let ok = Notifiers::build(&NotifyConfig::default(), dir.path()).unwrap();
        assert_eq!(
            format!("{ok:?}"),
            r#"Notifiers { email: "outbox", sms: "outbox" }"#
        );
    }

    /// A notifier that accepts everything.
    struct Accept;

    #[async_trait::async_trait]
    impl Notifier for Accept {
        async fn send(&self, _msg: &Message) -> Result<(), NotifyError> {
            Ok(())
        }
    }

    /// Captures log output in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn send_logs_kind_and_masked_recipient_but_no_code() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let notifiers = Notifiers::from_parts(Arc::new(Accept), Arc::new(Accept));
        let msg = compose(
            &MessageKind::EnrolmentCode { code: "928374" },
            "ko",
            Channel::Email,
            "alice@example.test",
            "Acme",
            "Alice",
            Some("https://acme.test/_stepgate/guide"),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || rt.block_on(notifiers.send(&msg)))
            .unwrap();
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("stepgate::notify"), "{log}");
        assert!(log.contains("enrolment_code"), "{log}");
        assert!(log.contains("a***@example.test"), "{log}");
        assert!(!log.contains("928374"), "{log}");
        assert!(!log.contains("alice@"), "{log}");
        assert!(!log.contains("https://acme.test"), "{log}");
    }
}
