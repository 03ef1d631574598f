//! The email notifier: one plain-text UTF-8 email per message over SMTP, with lettre on rustls.
//!
//! Security trade-offs, as configured by `SmtpTls`:
//! - `Starttls` is *required* STARTTLS: lettre refuses to go on (no AUTH, no MAIL) when the
//!   server does not offer it, so an attacker who strips the offer gets nothing. Opportunistic
//!   STARTTLS is deliberately not offered.
//! - `Implicit` does TLS from the first byte (SMTPS).
//! - `None` sends credentials and one-time codes in clear text; it is accepted only for a loopback
//!   host (a local relay), checked by config validation and again in `Smtp::new`.
//!
//! Certificates are checked against the web PKI roots plus the optional `ca_file`; there is no
//! switch to skip verification.
//!
//! One connection per message (no pool): messages are rare, and a fresh connection never hits a
//! server-side idle timeout. The configured timeout bounds the whole delivery, not only the
//! connect (lettre's own timeout covers the connect alone).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{error_chain, read_ca_file, Message, Notifier, NotifyError, SmtpConfig, SmtpTls};

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // lettre's own Debug would print the credentials.
        f.debug_struct("Smtp")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> NotifyError {
    NotifyError::Config {
        backend: "smtp",
        reason: reason.into(),
    }
}

/// `localhost` or a loopback IP address (`127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Smtp {
    /// Builds the transport once: parses `from`, loads `ca_file`, sets TLS, AUTH and timeout.
    pub fn new(cfg: &SmtpConfig) -> Result<Smtp, NotifyError> {
        let from: Mailbox = cfg.from.parse().map_err(|_| {
            invalid(format!(
                "from must be an address such as \"Acme <no-reply@acme.test>\" (found \"{}\")",
                cfg.from
            ))
        })?;
        let tls_parameters = || -> Result<TlsParameters, NotifyError> {
            let mut builder = TlsParameters::builder(cfg.host.clone());
            if let Some(path) = &cfg.ca_file {
                let pem = read_ca_file(path)?;
                let cert = Certificate::from_pem(&pem).map_err(|e| NotifyError::CaFile {
                    path: path.clone(),
                    reason: error_chain(&e),
                })?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .build_rustls()
                .map_err(|e| invalid(format!("cannot set up TLS: {}", error_chain(&e))))
        };
        let tls = match cfg.tls {
            SmtpTls::Starttls => Tls::Required(tls_parameters()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters()?),
            SmtpTls::None if is_loopback(&cfg.host) => Tls::None,
            SmtpTls::None => {
                return Err(invalid(format!(
                    "tls = \"none\" is allowed only for a loopback host (found \"{}\")",
                    cfg.host
                )))
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
                .port(cfg.port)
                .tls(tls)
                .timeout(Some(cfg.timeout));
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.clone()))
                    .authentication(vec![Mechanism::Plain, Mechanism::Login]);
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "username and password go together (found only one)",
                ))
            }
        }
        Ok(Smtp {
            transport: builder.build(),
            from,
            timeout: cfg.timeout,
        })
    }

    /// The RFC 5322 message for `msg`: text/plain; charset=utf-8, subject encoded by lettre.
    fn email(&self, msg: &Message) -> Result<lettre::Message, NotifyError> {
        let to: Mailbox = msg.to.trim().parse().map_err(|_| NotifyError::Recipient)?;
        // compose() already makes subjects one line; this guards messages built elsewhere.
        let subject: String = msg
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(msg.text.clone())
            .map_err(|e| NotifyError::Email(error_chain(&e)))
    }
}

#[async_trait::async_trait]
impl Notifier for Smtp {
    async fn send(&self, msg: &Message) -> Result<(), NotifyError> {
        let email = self.email(msg)?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_response)) => Ok(()),
            // lettre's errors carry the server's reply and the I/O cause, never the credentials.
            Ok(Err(e)) => Err(NotifyError::Smtp(error_chain(&e))),
            Err(_elapsed) => Err(NotifyError::SmtpTimeout(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{compose, Channel, MessageKind};

    fn config(tls: SmtpTls, host: &str) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: 2525,
            tls,
            username: Some("mailer".into()),
            password: Some("hunter2-secret".into()),
            from: "Acme 보안 <no-reply@example.test>".into(),
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }

    #[test]
    fn plain_smtp_only_on_loopback() {
        assert!(Smtp::new(&config(SmtpTls::None, "127.0.0.1")).is_ok());
        assert!(Smtp::new(&config(SmtpTls::None, "localhost")).is_ok());
        assert!(Smtp::new(&config(SmtpTls::None, "::1")).is_ok());
        let e = Smtp::new(&config(SmtpTls::None, "smtp.example.test")).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(Smtp::new(&config(SmtpTls::Starttls, "smtp.example.test")).is_ok());
        assert!(Smtp::new(&config(SmtpTls::Implicit, "smtp.example.test")).is_ok());
    }

    #[test]
    fn bad_settings_are_errors() {
        let mut cfg = config(SmtpTls::Starttls, "smtp.example.test");
        cfg.from = "not an address".into();
        assert!(Smtp::new(&cfg)
            .unwrap_err()
            .to_string()
            .contains("from must be"));
        let mut cfg = config(SmtpTls::Starttls, "smtp.example.test");
        cfg.password = None;
        assert!(Smtp::new(&cfg)
            .unwrap_err()
            .to_string()
            .contains("go together"));
        let mut cfg = config(SmtpTls::Starttls, "smtp.example.test");
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(Smtp::new(&cfg), Err(NotifyError::CaFile { .. })));
    }

    #[test]
    fn debug_hides_credentials() {
        let smtp = Smtp::new(&config(SmtpTls::Starttls, "smtp.example.test")).unwrap();
        let s = format!("{smtp:?}");
        assert!(
            !s.contains("hunter2-secret") && !s.contains("mailer"),
            "{s}"
        );
    }

    #[test]
    fn email_is_utf8_text_with_encoded_subject() {
        let smtp = Smtp::new(&config(SmtpTls::Starttls, "smtp.example.test")).unwrap();
        let msg = compose(
            &MessageKind::EnrolmentCode { code: "123456" },
            "ko",
            Channel::Email,
            "alice@example.test",
            "Acme",
            "앨리스",
            None,
        );
        let raw = String::from_utf8(smtp.email(&msg).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("To: alice@example.test"), "{raw}");
        assert!(raw.contains("Subject: [Acme] =?utf-8?b?"), "{raw}");
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(raw.is_ascii(), "{raw}");
    }

    #[test]
    fn a_bad_recipient_is_an_error() {
        let smtp = Smtp::new(&config(SmtpTls::Starttls, "smtp.example.test")).unwrap();
        for to in ["not an address", "a@b.test\r\nBcc: evil@example.test", ""] {
            let msg = compose(
                &MessageKind::CodeReplayed,
                "en",
                Channel::Email,
                to,
                "Acme",
                "A",
                None,
            );
            assert!(
                matches!(smtp.email(&msg), Err(NotifyError::Recipient)),
                "{to:?}"
            );
        }
    }
}
