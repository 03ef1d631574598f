//! HTTPS listeners: the certificate is picked by SNI, HTTP/2 is negotiated by ALPN (or not,
//! with `http2 = false`), upstreams learn the request came over TLS, and the redirect listener
//! sends plain-HTTP clients to HTTPS without proxying anything.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, Gateway, Upstream};
use reqwest::tls::TlsInfo;
use reqwest::{Client, StatusCode, Version};

/// A self-signed leaf certificate for one DNS name, written as PEM files into `dir`.
struct Leaf {
    pem: String,
    der: Vec<u8>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

fn leaf(dir: &Path, host: &str) -> Leaf {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_file = dir.join(format!("{host}.crt"));
    let key_file = dir.join(format!("{host}.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    Leaf {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        cert_file,
        key_file,
    }
}

/// An `[[listener]]` block for HTTPS on `port` serving `leafs` (each for its own SAN).
fn https_listener(port: u16, http2: bool, leafs: &[&Leaf]) -> String {
    let mut s = format!(
        "[[listener]]\naddress = \"127.0.0.1:{port}\"\nprotocol = \"https\"\nhttp2 = {http2}\n"
    );
    for l in leafs {
        s += &format!(
            "\n[[listener.certificate]]\ncert_file = '{}'\nkey_file = '{}'\n",
            l.cert_file.display(),
            l.key_file.display()
        );
    }
    s
}

/// A client that trusts only `trusted`, resolves `a.test`/`b.test`/`c.test` to the gateway's
/// HTTPS address (so SNI carries the name) and exposes the peer certificate.
fn client(trusted: &Leaf, https: SocketAddr) -> Client {
    Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trusted.pem.as_bytes()).unwrap())
        .resolve("a.test", https)
        .resolve("b.test", https)
        .resolve("c.test", https)
        .tls_info(true)
        .build()
        .unwrap()
}

fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    let info = resp
        .extensions()
        .get::<TlsInfo>()
        .expect("tls_info enabled");
    info.peer_certificate()
        .expect("the server presented a certificate")
        .to_vec()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One app for `a.test` and `b.test` on `upstream`, plain HTTP first (the harness polls it),
/// then `listeners`, with `^/public/` bypassed.
fn config(upstream: &Upstream, listeners: &str) -> String {
    let rules = "[[rule]]\npath = \"^/public/\"\npolicy = \"bypass\"\n";
    common::config_with(
        &["a.test", "b.test"],
        &[upstream.addr],
        &format!("{listeners}\n{rules}"),
    )
}

#[test]
fn sni_picks_the_certificate_for_each_host_and_upstream_sees_https() {
    let certs = tempfile::tempdir().unwrap();
    let (a, b) = (leaf(certs.path(), "a.test"), leaf(certs.path(), "b.test"));
    let upstream = Upstream::start("a");
    let port = free_port();
    let _gw = Gateway::start(&config(&upstream, &https_listener(port, true, &[&a, &b])));
    let https: SocketAddr = ([127, 0, 0, 1], port).into();
    let (trusts_a, trusts_b) = (client(&a, https), client(&b, https));

    runtime().block_on(async {
        // Each name gets its own certificate, which its own client accepts.
        let resp = trusts_a
            .get(format!("https://a.test:{port}/public/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            peer_cert(&resp),
            a.der,
            "a.test must be served a.test's certificate"
        );
        assert_eq!(resp.text().await.unwrap(), "upstream a");

        let resp = trusts_b
            .get(format!("https://b.test:{port}/public/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            peer_cert(&resp),
            b.der,
            "b.test must be served b.test's certificate"
        );

        // The other name's certificate is not accepted by a client that trusts only one leaf.
        let err = trusts_a
            .get(format!("https://b.test:{port}/public/x"))
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("InvalidCertificate"),
            "a TLS certificate error, got {err:?}"
        );
        let err = trusts_b
            .get(format!("https://a.test:{port}/public/x"))
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("InvalidCertificate"),
            "a TLS certificate error, got {err:?}"
        );
    });

    let seen = upstream.requests();
    assert_eq!(
        seen.len(),
        2,
        "only the two verified requests reach the upstream: {seen:?}"
    );
    for (req, host) in seen.iter().zip(["a.test", "b.test"]) {
        assert_eq!(req.target(), "/public/x");
        assert_eq!(req.all("host"), [format!("{host}:{port}")]);
        assert_eq!(req.all("x-forwarded-proto"), ["https"]);
        assert_eq!(req.all("x-forwarded-host"), [format!("{host}:{port}")]);
    }
}

#[test]
fn unknown_sni_name_gets_the_first_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (a, b) = (leaf(certs.path(), "a.test"), leaf(certs.path(), "b.test"));
    let upstream = Upstream::start("a");
    let port = free_port();
    let _gw = Gateway::start(&config(&upstream, &https_listener(port, true, &[&a, &b])));
    let https: SocketAddr = ([127, 0, 0, 1], port).into();
    // This client accepts any certificate so that we can look at what c.test is given.
    let any = Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .resolve("c.test", https)
        .tls_info(true)
        .build()
        .unwrap();

    runtime().block_on(async {
        let resp = any
            .get(format!("https://c.test:{port}/public/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            peer_cert(&resp),
            a.der,
            "the listener's first certificate is the default"
        );
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "no app serves c.test");
    });
    assert!(upstream.requests().is_empty());
}

#[test]
fn http2_is_negotiated_by_alpn_and_forwarded_as_http1() {
    let certs = tempfile::tempdir().unwrap();
    let a = leaf(certs.path(), "a.test");
    let upstream = Upstream::start("a");
    let port = free_port();
    let _gw = Gateway::start(&config(&upstream, &https_listener(port, true, &[&a])));
    let client = client(&a, ([127, 0, 0, 1], port).into());

    runtime().block_on(async {
        let resp = client
            .get(format!("https://a.test:{port}/public/h2?q=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.text().await.unwrap(), "upstream a");
    });

    let seen = upstream.last();
    assert_eq!(
        seen.line, "GET /public/h2?q=1 HTTP/1.1",
        "the upstream speaks HTTP/1.1 with an origin-form target"
    );
    assert_eq!(seen.all("host"), [format!("a.test:{port}")]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
}

#[test]
fn http2_false_keeps_clients_on_http1() {
    let certs = tempfile::tempdir().unwrap();
    let a = leaf(certs.path(), "a.test");
    let upstream = Upstream::start("a");
    let port = free_port();
    let _gw = Gateway::start(&config(&upstream, &https_listener(port, false, &[&a])));
    let client = client(&a, ([127, 0, 0, 1], port).into());

    runtime().block_on(async {
        let resp = client
            .get(format!("https://a.test:{port}/public/h1"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), Version::HTTP_11);
        assert_eq!(resp.status(), StatusCode::OK);
    });
    assert_eq!(upstream.last().target(), "/public/h1");
}

/// Polls until something accepts TCP connections on `addr` (a service that starts on its own).
fn wait_accepting(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listening on {addr} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redirect_listener_answers_308_to_https_and_proxies_nothing() {
    let certs = tempfile::tempdir().unwrap();
    let a = leaf(certs.path(), "a.test");
    let upstream = Upstream::start("a");
    let (https_port, redirect_port) = (free_port(), free_port());
    let listeners = format!(
        "{}\n[[listener]]\naddress = \"127.0.0.1:{redirect_port}\"\nprotocol = \"redirect\"\nredirect_port = {https_port}\n",
        https_listener(https_port, true, &[&a])
    );
    let _gw = Gateway::start(&config(&upstream, &listeners));
    let redirect: SocketAddr = ([127, 0, 0, 1], redirect_port).into();
    wait_accepting(redirect);

    let expected = format!("https://a.test:{https_port}/public/x?y=1");
    for host in ["a.test", "a.test:8080", "A.Test"] {
        let resp = common::get(redirect, "/public/x?y=1", &[&format!("Host: {host}")]);
        assert_eq!(common::status(&resp), 308, "{resp}");
        let location = resp.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim())
        });
        assert_eq!(location, Some(expected.as_str()), "Host: {host} -> {resp}");
    }
    assert!(
        upstream.requests().is_empty(),
        "the redirect listener proxies nothing"
    );

    // The Location is usable: following it over HTTPS reaches the app.
    let client = client(&a, ([127, 0, 0, 1], https_port).into());
    let status = runtime().block_on(async { client.get(&expected).send().await.unwrap().status() });
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.last().target(), "/public/x?y=1");
}

#[test]
fn https_answers_carry_hsts_and_plain_http_never_does() {
    let certs = tempfile::tempdir().unwrap();
    let a = leaf(certs.path(), "a.test");
    let upstream = Upstream::start("a");
    let hsts = |server: &str| {
        let port = free_port();
        let text = config(&upstream, &https_listener(port, true, &[&a])).replacen(
            "[server]\n",
            &format!("[server]\n{server}"),
            1,
        );
        let gw = Gateway::start(&text);
        (port, gw)
    };
    let (port, gw) = hsts("");
    let https: SocketAddr = ([127, 0, 0, 1], port).into();
    let c = client(&a, https);
    runtime().block_on(async {
        for path in [
            "/public/x",
            "/_stepgate/login",
            "/_stepgate/no-such-page",
            "/private",
        ] {
            let resp = c
                .get(format!("https://a.test:{port}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.headers()["strict-transport-security"],
                "max-age=31536000",
                "{path}"
            );
        }
    });
    let plain = common::get(gw.addr, "/public/x", &["Host: a.test"]);
    assert!(
        !plain
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=3"),
        "{plain}"
    );
    let (port, _off) = hsts("hsts_max_age = \"off\"\n");
    let c = client(&a, ([127, 0, 0, 1], port).into());
    runtime().block_on(async {
        let resp = c
            .get(format!("https://a.test:{port}/_stepgate/login"))
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("strict-transport-security").is_none());
    });
}

/// A TLS connection to `port` offering `alpn`, trusting `trusted`.
async fn tls_connect(
    trusted: &Leaf,
    port: u16,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(trusted.der.clone()))
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect("a.test".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes; how long that took, or `None` after `wait`.
async fn closed_after(
    s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    wait: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[test]
fn idle_and_silent_tls_connections_are_closed_on_http1_and_http2() {
    let certs = tempfile::tempdir().unwrap();
    let a = leaf(certs.path(), "a.test");
    let upstream = Upstream::start("a");
    let port = free_port();
    let toml = config(&upstream, &https_listener(port, true, &[&a])).replacen(
        "threads = 2\n",
        "threads = 2\nidle_timeout = \"1s\"\nheader_timeout = \"1s\"\n",
        1,
    );
    let _gw = Gateway::start(&toml);
    runtime().block_on(async {
        use tokio::io::AsyncWriteExt;
        // HTTP/2: the client preface and its settings, then nothing: closed when idle.
        let mut h2 = tls_connect(&a, port, b"h2").await;
        assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        let took = closed_after(&mut h2, Duration::from_secs(8)).await;
        assert!(
            took.is_some_and(|t| t >= Duration::from_millis(900)),
            "idle HTTP/2: {took:?}"
        );
        // HTTP/1.1 over TLS: a handshake and no request is closed after the header timeout.
        let mut h1 = tls_connect(&a, port, b"http/1.1").await;
        let took = closed_after(&mut h1, Duration::from_secs(8)).await;
        assert!(
            took.is_some_and(|t| t >= Duration::from_millis(900)),
            "silent HTTP/1.1: {took:?}"
        );
    });
}
