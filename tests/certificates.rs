//! Client certificates with certificates made in the test (rcgen): registering one by upload
//! and by presenting it, what apps see, a rule that requires one, removal taking effect on the
//! next request over the same connection, and every refusal: expired, not yet valid, a private
//! key, a malformed file, another user's, an untrusted CA, revoked by a CRL, a certificate
//! presented without its private key.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::two_factor::*;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};

/// A certificate and its key, as PEM, DER and files.
struct Made {
    pem: String,
    key_pem: String,
    der: Vec<u8>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Made {
    fn fingerprint(&self) -> String {
        stepgate::certificates::fingerprint(&self.der)
    }
}

fn write(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Made {
    let cert_file = dir.join(format!("{name}.crt"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    Made {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
        cert_file,
        key_file,
    }
}

/// A CA that signs users' certificates and its revocation list.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    made: Made,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let mut params = CertificateParams::new(vec![]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let made = write(dir, name, &cert, &key);
    Ca { cert, key, made }
}

/// A user's certificate: self-signed without `ca`, valid from `from` to `until` days from now.
fn user_cert(
    dir: &Path,
    name: &str,
    ca: Option<&Ca>,
    (from, until): (i64, i64),
    serial: u64,
) -> Made {
    let mut params = CertificateParams::new(vec![]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(SerialNumber::from(serial));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(until);
    let key = KeyPair::generate().unwrap();
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &ca.cert, &ca.key).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    write(dir, name, &cert, &key)
}

/// A CRL of `ca` revoking `serials`, written to `file`.
fn crl(ca: &Ca, serials: &[u64], file: &Path) {
    let now = time::OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now - time::Duration::minutes(5),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let list = params.signed_by(&ca.cert, &ca.key).unwrap();
    std::fs::write(file, list.pem().unwrap()).unwrap();
}

/// The gateway's own HTTPS certificate for `app.test`.
fn server_cert(dir: &Path) -> Made {
    let mut params = CertificateParams::new(vec!["app.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "app.test");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    write(dir, "server", &cert, &key)
}

/// TOML for an HTTPS listener on `port` asking for client certificates (`trust` block), and a
/// route that requires one.
fn listener(port: u16, server: &Made, trust: &str) -> String {
    format!(
        "[[rule]]\npath = \"^/transfer/\"\npolicy = \"two_factor\"\nclient_certificate = true\n\n\
         [[listener]]\naddress = \"127.0.0.1:{port}\"\nprotocol = \"https\"\n\n\
         [[listener.certificate]]\ncert_file = '{}'\nkey_file = '{}'\n\n\
         [listener.client_certificates]\n{trust}\n",
        server.cert_file.display(),
        server.key_file.display()
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTPS client of `app.test` at `addr` that trusts `server`, presents `identity` if
/// given, keeps cookies and does not follow redirects.
fn client(addr: SocketAddr, server: &Made, identity: Option<&Made>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.pem.as_bytes()).unwrap())
        .resolve("app.test", addr)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(id) = identity {
        let pem = format!("{}{}", id.pem, id.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn hidden(body: &str, name: &str) -> String {
    let at = body
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {body}"));
    let rest = &body[at + name.len() + 15..];
    unescape(&rest[..rest.find('"').unwrap()])
}

/// Signs alice in with her password over HTTPS (one factor).
async fn sign_in(c: &reqwest::Client, port: u16) {
    let base = format!("https://app.test:{port}");
    let page = c
        .get(format!("{base}/_stepgate/login?rd=%2F"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("rd", "/".to_owned()),
        ("username", ALICE.0.to_owned()),
        ("password", ALICE.1.to_owned()),
    ];
    let done = c
        .post(format!("{base}/_stepgate/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
}

/// A multipart upload of `file` through the plain-HTTP browser `b` (signed in, fresh proof).
fn upload(b: &mut Browser, file: &[u8]) -> Response {
    let page = b.get("/_stepgate/certificates");
    assert_eq!(page.status, 200, "{page:?}");
    let csrf = hidden(&page.body, "csrf");
    let boundary = "----stepgate-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"certificate\"; filename=\"mine.pem\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let cookies: Vec<String> = b.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let mut req = format!(
        "POST /_stepgate/certificates/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nConnection: close\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        cookies.join("; "),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    Response::parse(&raw(b.addr, &req).expect("gateway answers"))
}

/// Alice enrolled with the app (so her session has a fresh proof) through plain HTTP.
fn alice(gw: &Gateway, clock: &stepgate::clock::ManualClock) -> Browser {
    let mut b = Browser::new(gw.addr);
    full_enrolment(&mut b, gw, clock, ALICE);
    b
}

#[test]
fn a_registered_certificate_stands_in_for_the_code_until_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_cert(dir.path());
    let mine = user_cert(dir.path(), "alice-laptop", None, (-1, 365), 7);
    let port = free_port();
    let (up, gw, clock) = start(&listener(port, &server, "trust = \"registered\""));
    let mut b = alice(&gw, &clock);

    // Upload: the page shows the certificate and asks to confirm; then it is registered.
    let shown = upload(&mut b, mine.pem.as_bytes());
    assert_eq!(shown.status, 200, "{shown:?}");
    assert!(shown.body.contains(&mine.fingerprint()), "{}", shown.body);
    assert!(shown.body.contains("CN=alice-laptop"), "{}", shown.body);
    let registered = b.submit(&shown, "/certificates/register", &[]);
    assert_eq!(registered.status, 303, "{registered:?}");
    let told = mail_to(&gw, "alice@example.test");
    assert!(
        told.iter().any(|m| m["text"]
            .as_str()
            .unwrap_or("")
            .contains("client certificate")),
        "the user is told: {told:?}"
    );

    let rt = runtime();
    rt.block_on(async {
        let base = format!("https://app.test:{port}");
        // With the certificate and the password: the code is not asked; the app sees it.
        let with = client(([127, 0, 0, 1], port).into(), &server, Some(&mine));
        sign_in(&with, port).await;
        let app = with.get(format!("{base}/app")).send().await.unwrap();
        assert_eq!(app.status(), 200);
        let seen = up.last();
        assert_eq!(seen.header("remote-auth-methods"), Some("pwd,swk"));
        assert_eq!(seen.header("remote-auth-level"), Some("2fa"));
        assert_eq!(
            seen.header("remote-client-cert-fingerprint"),
            Some(mine.fingerprint().as_str())
        );
        assert_eq!(
            seen.header("remote-client-cert-subject"),
            Some("CN=alice-laptop")
        );
        let token = seen.header("x-stepgate-assertion").unwrap().to_owned();
        let claims = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .unwrap(),
        )
        .unwrap();
        let sha = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            stepgate::certificates::parse_der(&mine.der)
                .unwrap()
                .info
                .sha256(),
        );
        assert_eq!(claims["cnf"]["x5t#S256"], sha.as_str());
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "swk"]));
        // A route that requires a certificate lets it through.
        let transfer = with.get(format!("{base}/transfer/1")).send().await.unwrap();
        assert_eq!(transfer.status(), 200);

        // Without a certificate: the code is asked, and the transfer route explains itself.
        let without = client(([127, 0, 0, 1], port).into(), &server, None);
        sign_in(&without, port).await;
        let app = without.get(format!("{base}/app")).send().await.unwrap();
        assert_eq!(app.status(), 401, "not a browser: 401");
        let page = without
            .get(format!("{base}/transfer/1"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 302);
        let location = page.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with("/_stepgate/certificates?rd="),
            "{location}"
        );
        let api = without
            .get(format!("{base}/transfer/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 403);

        // Removed with a reason: refused on the next request of the same client (its pooled
        // connection, whose handshake was checked long ago).
        let page = b.get("/_stepgate/certificates");
        let removed = b.submit(
            &page,
            "/certificates/remove",
            &[("reason", "laptop stolen"), ("confirm", "yes")],
        );
        assert_eq!(removed.status, 303, "{removed:?}");
        let after = with.get(format!("{base}/app")).send().await.unwrap();
        assert_eq!(after.status(), 401, "the certificate no longer counts");
        let transfer = with.get(format!("{base}/transfer/1")).send().await.unwrap();
        assert_eq!(transfer.status(), 403);
    });
    let audit = admin(&gw, &["audit", "alice"]);
    assert!(audit.contains("certificate_removed"), "{audit}");
    assert!(audit.contains("laptop stolen"), "{audit}");
}

#[test]
fn a_certificate_presented_on_the_connection_is_registered_from_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_cert(dir.path());
    let mine = user_cert(dir.path(), "alice-card", None, (-1, 30), 9);
    let port = free_port();
    let (_up, gw, clock) = start(&listener(port, &server, ""));
    let b = alice(&gw, &clock);
    let session = b.cookie("stepgate_session").expect("a session").to_owned();
    runtime().block_on(async {
        let base = format!("https://app.test:{port}");
        let c = client(([127, 0, 0, 1], port).into(), &server, Some(&mine));
        // The same (fresh, two-factor) session, over the certificate listener.
        let url = reqwest::Url::parse(&base).unwrap();
        let jar = reqwest::cookie::Jar::default();
        jar.add_cookie_str(&format!("__Host-stepgate_session={session}"), &url);
        let c2 = reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(server.pem.as_bytes()).unwrap())
            .resolve("app.test", ([127, 0, 0, 1], port).into())
            .cookie_provider(Arc::new(jar))
            .identity(
                reqwest::Identity::from_pem(format!("{}{}", mine.pem, mine.key_pem).as_bytes())
                    .unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        drop(c);
        let page = c2
            .get(format!("{base}/_stepgate/certificates"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        assert!(
            body.contains("name=\"source\" value=\"presented\""),
            "{body}"
        );
        assert!(body.contains(&mine.fingerprint()), "{body}");
        let form = [
            ("csrf", hidden(&body, "csrf")),
            ("source", "presented".to_owned()),
        ];
        let done = c2
            .post(format!("{base}/_stepgate/certificates/register"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 303);
        let page = c2
            .get(format!("{base}/_stepgate/certificates"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("registered to your account"), "{page}");
    });
    let listed: serde_json::Value =
        serde_json::from_str(&admin(&gw, &["certificates", "alice", "--json"])).unwrap();
    assert_eq!(listed["certificates"][0]["fingerprint"], mine.fingerprint());
}

#[test]
fn bad_files_and_certificates_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_cert(dir.path());
    let authority = ca(dir.path(), "Test Bank CA");
    let other = ca(dir.path(), "Other CA");
    let crl_file = dir.path().join("bank.crl");
    crl(&authority, &[66], &crl_file);
    let trust = format!(
        "trust = \"ca\"\nca_files = ['{}']\ncrl_files = ['{}']",
        authority.made.cert_file.display(),
        crl_file.display()
    );
    let port = free_port();
    let (_up, gw, clock) = start(&listener(port, &server, &trust));
    let mut b = alice(&gw, &clock);
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "expired",
            user_cert(d, "old", Some(&authority), (-30, -1), 2)
                .pem
                .into_bytes(),
            422,
            "expired",
        ),
        (
            "not yet valid",
            user_cert(d, "future", Some(&authority), (2, 30), 3)
                .pem
                .into_bytes(),
            422,
            "not valid yet",
        ),
        (
            "revoked",
            user_cert(d, "revoked", Some(&authority), (-1, 30), 66)
                .pem
                .into_bytes(),
            422,
            "revoked",
        ),
        (
            "another CA",
            user_cert(d, "stranger", Some(&other), (-1, 30), 4)
                .pem
                .into_bytes(),
            422,
            "not issued by an authority",
        ),
        (
            "self-signed",
            user_cert(d, "selfie", None, (-1, 30), 5).pem.into_bytes(),
            422,
            "not issued by an authority",
        ),
        (
            "a private key",
            user_cert(d, "keyed", Some(&authority), (-1, 30), 6)
                .key_pem
                .into_bytes(),
            422,
            "private key",
        ),
        (
            "certificate and key in one file",
            {
                let m = user_cert(d, "both", Some(&authority), (-1, 30), 8);
                format!("{}{}", m.pem, m.key_pem).into_bytes()
            },
            422,
            "private key",
        ),
        (
            "garbage",
            b"not a certificate at all".to_vec(),
            422,
            "not a certificate",
        ),
        ("empty", Vec::new(), 422, "not a certificate"),
    ];
    for (what, file, status, says) in cases {
        let r = upload(&mut b, &file);
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert!(r.body.contains(says), "{what}: {}", r.body);
        assert!(
            !r.body.contains("name=\"source\" value=\"staged\""),
            "{what}"
        );
    }
    // The key was never kept: nothing is registered, nothing staged.
    assert!(admin(&gw, &["certificates", "alice"]).contains("has no certificates"));

    // A good one is taken once: not by bob as well.
    let good = user_cert(d, "alice-card", Some(&authority), (-1, 30), 10);
    let out = admin(
        &gw,
        &[
            "certificates",
            "alice",
            "--register",
            good.cert_file.to_str().unwrap(),
        ],
    );
    assert!(out.contains(&good.fingerprint()), "{out}");
    let mut bob = Browser::new(gw.addr);
    full_enrolment(&mut bob, &gw, &clock, BOB);
    let r = upload(&mut bob, good.pem.as_bytes());
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body.contains("registered to another account"),
        "{}",
        r.body
    );
    let r = upload(&mut b, good.pem.as_bytes());
    assert_eq!(r.status, 409);
    assert!(
        r.body.contains("already registered to your account"),
        "{}",
        r.body
    );

    // Minutes later the proof is stale: the page asks to confirm it is you first.
    clock.advance(Duration::from_secs(6 * 60));
    b.get("/_stepgate/account");
    let stale = upload(&mut b, good.pem.as_bytes());
    assert_eq!(stale.status, 200, "{stale:?}");
    assert!(stale.body.contains("/account/verify\""), "{}", stale.body);
    assert!(
        stale
            .body
            .contains("name=\"next\" value=\"&#x2f;certificates\""),
        "{}",
        stale.body
    );
}

#[test]
fn the_handshake_refuses_what_the_listener_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_cert(dir.path());
    let authority = ca(dir.path(), "Test Bank CA");
    let other = ca(dir.path(), "Other CA");
    let crl_file = dir.path().join("bank.crl");
    crl(&authority, &[5], &crl_file);
    let trust = format!(
        "trust = \"ca\"\nca_files = ['{}']\ncrl_files = ['{}']",
        authority.made.cert_file.display(),
        crl_file.display()
    );
    let port = free_port();
    let (_up, _gw, _clock) = start(&listener(port, &server, &trust));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = dir.path();
    runtime().block_on(async {
        let health = format!("https://app.test:{port}/_stepgate/health");
        let good = user_cert(d, "good", Some(&authority), (-1, 30), 2);
        let ok = client(addr, &server, Some(&good)).get(&health).send().await;
        assert_eq!(ok.unwrap().status(), 200);
        let none = client(addr, &server, None).get(&health).send().await;
        assert_eq!(none.unwrap().status(), 200, "the certificate is optional");
        for bad in [
            user_cert(d, "stranger", Some(&other), (-1, 30), 3),
            user_cert(d, "expired", Some(&authority), (-30, -1), 4),
            user_cert(d, "revoked", Some(&authority), (-1, 30), 5),
        ] {
            let r = client(addr, &server, Some(&bad)).get(&health).send().await;
            assert!(r.is_err(), "{}: {r:?}", bad.cert_file.display());
        }
        // A certificate presented without its private key: the handshake's signature fails.
        let thief = forged_client(addr, &server, &good);
        let r = thief.get(&health).send().await;
        assert!(r.is_err(), "a certificate without its key: {r:?}");
    });
}

/// A client that presents `victim`'s certificate but signs with a key of its own.
fn forged_client(addr: SocketAddr, server: &Made, victim: &Made) -> reqwest::Client {
    use rustls::client::ResolvesClientCert;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::sign::CertifiedKey;

    #[derive(Debug)]
    struct Forged(Arc<CertifiedKey>);
    impl ResolvesClientCert for Forged {
        fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
        fn has_certs(&self) -> bool {
            true
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let own_key = KeyPair::generate().unwrap();
    let key_der = PrivateKeyDer::try_from(own_key.serialize_der()).unwrap();
    let signer = provider.key_provider.load_private_key(key_der).unwrap();
    let forged = CertifiedKey::new(vec![CertificateDer::from(victim.der.clone())], signer);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server.der.clone())).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Forged(Arc::new(forged))));
    reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(tls)
        .resolve("app.test", addr)
        .build()
        .unwrap()
}

#[test]
fn a_crl_that_revokes_a_registered_certificate_refuses_it_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_cert(dir.path());
    let authority = ca(dir.path(), "Test Bank CA");
    let crl_file = dir.path().join("bank.crl");
    crl(&authority, &[], &crl_file);
    let mine = user_cert(dir.path(), "alice-card", Some(&authority), (-1, 30), 21);
    // Registered trust: the handshake takes any certificate, so only the per-request check
    // stands between a revoked certificate and the route.
    let trust = format!("crl_files = ['{}']", crl_file.display());
    let port = free_port();
    let (_up, mut gw, clock) = start(&listener(port, &server, &trust));
    let _b = alice(&gw, &clock);
    admin(
        &gw,
        &[
            "certificates",
            "alice",
            "--register",
            mine.cert_file.to_str().unwrap(),
        ],
    );
    let rt = runtime();
    let base = format!("https://app.test:{port}");
    let transfer = |c: reqwest::Client| {
        let url = format!("{base}/transfer/1");
        async move { c.get(url).send().await.unwrap().status() }
    };
    let c = client(([127, 0, 0, 1], port).into(), &server, Some(&mine));
    rt.block_on(async {
        sign_in(&c, port).await;
        assert_eq!(transfer(c.clone()).await, 200);
    });
    // The bank revokes it; the gateway reads the new list (at a restart here; a running
    // gateway reads a changed file within 30 s, see the unit test of `Trust`).
    crl(&authority, &[21], &crl_file);
    gw.restart();
    rt.block_on(async {
        let c = client(([127, 0, 0, 1], port).into(), &server, Some(&mine));
        sign_in(&c, port).await;
        assert_eq!(transfer(c).await, 403, "revoked: refused on the request");
    });
    let _ = Duration::ZERO;
}
