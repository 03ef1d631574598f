//! The notify backends against servers written here, each test owning its own on a 127.0.0.1
//! ephemeral port: a fake ESMTP server (`smtp.rs`: STARTTLS or implicit TLS via tokio-rustls with
//! an rcgen certificate for `localhost`, AUTH PLAIN/LOGIN), a fake webhook (`webhook.rs`:
//! hand-rolled HTTP/1.1 that answers a programmed sequence of statuses), fake SMS providers on
//! that server which check what real ones check (`provider.rs`: a form body with Basic auth, a
//! signature header, Standard Webhooks signatures verified as a receiver would), and the file
//! outbox under concurrent sends (`outbox.rs`). The TLS material and helpers they share are in this file.
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

mod outbox;
mod provider;
mod smtp;
mod webhook;

use smtp::{enrolment_email, smtp_config, smtp_server, SmtpOptions};
use webhook::{hook_config, hook_server, sms};

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
// Routing: which backend each channel goes to.

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
        operator_email: None,
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
