//! HTTPS upstreams: the gateway sends the configured SNI name, verifies the upstream's
//! certificate against `ca_file` (or the system roots), and `verify_cert` / `verify_hostname`
//! relax exactly what they say: a failed verification is a plain 502 with no detail.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The name on the upstream's certificate.
const UPSTREAM_NAME: &str = "app.internal";

/// A test CA and a leaf for [`UPSTREAM_NAME`] signed by it.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "stepgate test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec![UPSTREAM_NAME.to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, UPSTREAM_NAME);
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    Pki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key_der: leaf_key.serialize_der(),
    }
}

/// What the TLS upstream observed.
#[derive(Default)]
struct Record {
    /// TCP connections accepted (counted before the TLS handshake starts).
    connections: AtomicUsize,
    /// The SNI name of each completed handshake (`None`: the client sent none).
    snis: Mutex<Vec<Option<String>>>,
    /// HTTP requests answered.
    requests: AtomicUsize,
}

/// A real HTTPS/1.1 server on its own thread and runtime, presenting the [`Pki`] leaf.
struct TlsUpstream {
    addr: SocketAddr,
    record: Arc<Record>,
    _runtime: tokio::runtime::Runtime,
}

impl TlsUpstream {
    fn start(pki: &Pki) -> TlsUpstream {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Record::default());
        let r = record.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                r.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, acceptor.clone(), r.clone()));
            }
        });
        TlsUpstream {
            addr,
            record,
            _runtime: runtime,
        }
    }

    fn connections(&self) -> usize {
        self.record.connections.load(Ordering::SeqCst)
    }

    fn snis(&self) -> Vec<Option<String>> {
        self.record.snis.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.record.requests.load(Ordering::SeqCst)
    }
}

/// Completes the handshake, records the SNI name, then answers every request head (GETs, no
/// body) with `200 secure`, keeping the connection alive.
async fn serve(tcp: tokio::net::TcpStream, acceptor: tokio_rustls::TlsAcceptor, r: Arc<Record>) {
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    let sni = tls.get_ref().1.server_name().map(str::to_owned);
    r.snis.lock().unwrap().push(sni);
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..end);
        r.requests.fetch_add(1, Ordering::SeqCst);
        let body = "secure";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if tls.write_all(resp.as_bytes()).await.is_err() || tls.flush().await.is_err() {
            return;
        }
    }
}

/// One bypassed app for `app.test` on the HTTPS upstream, with `tls` as its `[app.tls]` table.
fn config(upstream: &TlsUpstream, tls: &str) -> String {
    format!(
        "[server]\ndata_dir = \"{{data}}\"\nthreads = 2\ngrace_period = \"2s\"\nshutdown_timeout = \"1s\"\n\n\
         [log]\naccess_log = false\n\n\
         [[listener]]\naddress = \"127.0.0.1:{{port}}\"\n\n\
         [[app]]\nid = \"app\"\nhosts = [\"app.test\"]\nupstreams = [\"https://{}\"]\n\
         connect_timeout = \"2s\"\nread_timeout = \"3s\"\n\n\
         [app.tls]\n{tls}\n\n\
         [[rule]]\npolicy = \"bypass\"\n",
        upstream.addr
    )
}

/// The CA's PEM in a file of its own tempdir (kept alive by the returned guard).
fn ca_file(pki: &Pki) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream-ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    (dir, path)
}

/// A GET for `app.test` through the gateway: the status and the body.
fn fetch(gw: &Gateway) -> (u16, String, String) {
    let resp = common::get(gw.addr, "/x", &["Host: app.test"]);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (common::status(&resp), body, resp)
}

/// A failed verification: 502, the upstream was dialled but answered no request, and the
/// response says nothing about why (no TLS error, address, name or library).
fn assert_rejected(gw: &Gateway, upstream: &TlsUpstream) {
    let (status, body, resp) = fetch(gw);
    assert_eq!(status, 502, "{resp}");
    assert!(
        upstream.connections() >= 1,
        "the gateway dialled the upstream (a TLS failure, not a refused connection)"
    );
    assert_eq!(
        upstream.requests(),
        0,
        "no request crosses an unverified connection"
    );
    let lower = body.to_ascii_lowercase();
    let port = upstream.addr.port().to_string();
    for leak in [
        "tls",
        "certificate",
        "cert",
        "issuer",
        "handshake",
        "sni",
        "rustls",
        "pingora",
        "127.0.0.1",
        port.as_str(),
        UPSTREAM_NAME,
        "other.internal",
    ] {
        assert!(
            !lower.contains(leak),
            "the 502 body must not mention {leak:?}:\n{body}"
        );
    }
}

#[test]
fn ca_file_and_sni_verify_the_upstream_and_send_the_name() {
    let pki = pki();
    let (_dir, ca) = ca_file(&pki);
    let upstream = TlsUpstream::start(&pki);
    let tls = format!("sni = \"{UPSTREAM_NAME}\"\nca_file = '{}'", ca.display());
    let gw = Gateway::start(&config(&upstream, &tls));

    let (status, body, resp) = fetch(&gw);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(body, "secure");
    assert_eq!(upstream.requests(), 1);
    let snis = upstream.snis();
    assert!(!snis.is_empty());
    assert!(
        snis.iter().all(|s| s.as_deref() == Some(UPSTREAM_NAME)),
        "every handshake carried SNI {UPSTREAM_NAME}: {snis:?}"
    );
}

#[test]
fn unknown_ca_without_ca_file_is_a_bare_502() {
    let pki = pki();
    let upstream = TlsUpstream::start(&pki);
    // Verified against the system roots, which do not know the test CA.
    let tls = format!("sni = \"{UPSTREAM_NAME}\"");
    let gw = Gateway::start(&config(&upstream, &tls));

    assert_rejected(&gw, &upstream);
}

#[test]
fn verify_cert_false_accepts_an_unknown_ca() {
    let pki = pki();
    let upstream = TlsUpstream::start(&pki);
    let tls = format!("sni = \"{UPSTREAM_NAME}\"\nverify_cert = false");
    let gw = Gateway::start(&config(&upstream, &tls));

    let (status, body, resp) = fetch(&gw);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(body, "secure");
    assert!(upstream
        .snis()
        .iter()
        .all(|s| s.as_deref() == Some(UPSTREAM_NAME)));
}

#[test]
fn sni_not_on_the_certificate_fails_unless_verify_hostname_is_off() {
    let pki = pki();
    let (_dir, ca) = ca_file(&pki);

    // Hostname verification on (the default, spelled out): the CA is trusted but the name is
    // not on the certificate.
    let upstream = TlsUpstream::start(&pki);
    let tls = format!(
        "sni = \"other.internal\"\nverify_hostname = true\nca_file = '{}'",
        ca.display()
    );
    let gw = Gateway::start(&config(&upstream, &tls));
    assert_rejected(&gw, &upstream);
    drop(gw);

    // Hostname verification off: the chain still verifies against the CA, so it is accepted,
    // and the configured name is still what is sent.
    let upstream = TlsUpstream::start(&pki);
    let tls = format!(
        "sni = \"other.internal\"\nverify_hostname = false\nca_file = '{}'",
        ca.display()
    );
    let gw = Gateway::start(&config(&upstream, &tls));
    let (status, body, resp) = fetch(&gw);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(body, "secure");
    assert!(upstream
        .snis()
        .iter()
        .all(|s| s.as_deref() == Some("other.internal")));
}

#[test]
fn verify_hostname_false_still_verifies_the_chain() {
    // Turning off the name check must not turn off certificate verification: without the CA,
    // a certificate is still rejected whatever name it carries.
    let pki = pki();
    let upstream = TlsUpstream::start(&pki);
    let tls = "sni = \"other.internal\"\nverify_hostname = false";
    let gw = Gateway::start(&config(&upstream, tls));

    assert_rejected(&gw, &upstream);
}

#[test]
fn without_sni_an_ip_upstream_is_verified_against_its_ip() {
    // The default SNI is the upstream's host, here an IP address: no SNI extension is sent and
    // the certificate (for app.internal only) must carry that IP, which it does not.
    let pki = pki();
    let (_dir, ca) = ca_file(&pki);
    let upstream = TlsUpstream::start(&pki);
    let tls = format!("ca_file = '{}'", ca.display());
    let gw = Gateway::start(&config(&upstream, &tls));

    assert_rejected(&gw, &upstream);
}

/// pingora's connection-reuse key covers SNI and the verify flags but not the CA: without the
/// gateway's own group key, app `b` (which does not trust the upstream's CA) could reuse the
/// connection app `a` verified and so skip its own verification.
#[test]
fn an_app_never_reuses_a_connection_another_app_verified_with_a_different_ca() {
    let (trusted, other) = (pki(), pki());
    let (_dir, ca) = ca_file(&trusted);
    let (_other_dir, other_ca) = ca_file(&other);
    let upstream = TlsUpstream::start(&trusted);
    let app = |id: &str, host: &str, ca: &std::path::Path| {
        format!(
            "[[app]]\nid = \"{id}\"\nhosts = [\"{host}\"]\nupstreams = [\"https://{}\"]\n\
             [app.tls]\nsni = \"{UPSTREAM_NAME}\"\nca_file = '{}'\n\n",
            upstream.addr,
            ca.display()
        )
    };
    let text = format!(
        "[server]\ndata_dir = \"{{data}}\"\nthreads = 1\n\n[log]\naccess_log = false\n\n\
         [[listener]]\naddress = \"127.0.0.1:{{port}}\"\n\n{}{}[[rule]]\npolicy = \"bypass\"\n",
        app("a", "a.test", &ca),
        app("b", "b.test", &other_ca)
    );
    let gw = Gateway::start(&text);
    let status_for =
        |host: &str| common::status(&common::get(gw.addr, "/x", &[&format!("Host: {host}")]));
    assert_eq!(status_for("b.test"), 502);
    assert_eq!(status_for("a.test"), 200);
    assert_eq!(
        status_for("b.test"),
        502,
        "b reused a connection verified with a's CA"
    );
    assert_eq!(upstream.requests(), 1);
}
