//! Fake SMS providers on the fake webhook server. Each checks a request the way its real
//! counterpart would and refuses what does not check out (401 for credentials and signatures,
//! 4xx for a malformed message). Every credential and signature is recomputed here with ring and
//! base64, from the provider's documentation or the Standard Webhooks spec
//! (https://www.standardwebhooks.com/), never through stepgate's own code.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac};

use super::webhook::{answering_server, Answer, HookServer, Reply, Request};
use super::*;

/// Why a provider refuses a request: its status and, for the test's messages, the reason.
type Refusal = (u16, String);

fn refuse<T>(status: u16, reason: impl Into<String>) -> Result<T, Refusal> {
    Err((status, reason.into()))
}

struct Provider {
    server: HookServer,
    verdicts: Arc<Mutex<Vec<Result<(), Refusal>>>>,
}

impl Provider {
    fn verdicts(&self) -> Vec<Result<(), Refusal>> {
        self.verdicts.lock().unwrap().clone()
    }

    /// The provider's URL with another path (the server answers on any path).
    fn url(&self, path: &str) -> url::Url {
        self.server.url.join(path).unwrap()
    }
}

/// A provider that runs `check` on every request: a refusal is answered with its status, a
/// request that checks out with `statuses[n]` for the n-th request (then 200), so a test can
/// make a good request fail with a 503 and see the retry checked again.
async fn provider(
    check: impl Fn(&Request) -> Result<(), Refusal> + Send + Sync + 'static,
    statuses: Vec<u16>,
) -> Provider {
    let verdicts = Arc::new(Mutex::new(Vec::new()));
    let recorded = verdicts.clone();
    let answer: Answer = Arc::new(move |n, request| {
        let verdict = check(request);
        let status = match &verdict {
            Ok(()) => statuses.get(n).copied().unwrap_or(200),
            Err((status, _)) => *status,
        };
        recorded.lock().unwrap().push(verdict);
        Reply::Status(status)
    });
    Provider {
        server: answering_server(answer, None).await,
        verdicts,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Whether a timestamp (in `unit`s of a millisecond) is within five minutes of now, as the
/// providers here and the Standard Webhooks spec ask of a receiver.
fn fresh(timestamp: u64, unit: u64) -> bool {
    now_ms().abs_diff(timestamp * unit) <= 5 * 60 * 1000
}

fn form(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The method and path of the request line (`POST /a/b?c HTTP/1.1`).
fn method_and_path(r: &Request) -> (&str, &str) {
    let mut parts = r.line.split(' ');
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

// ---------------------------------------------------------------------------------------------
// A Twilio-style provider: a form body, HTTP Basic auth with the account SID and auth token.

const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
const AUTH_TOKEN: &str = "tw1lio-auth-t0ken";
const FROM: &str = "+15005550006";

fn twilio_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

/// `Authorization: Basic base64(user:password)` (RFC 7617), decoded.
fn basic_credentials(r: &Request) -> Option<(String, String)> {
    let encoded = r.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn twilio(r: &Request) -> Result<(), Refusal> {
    match basic_credentials(r) {
        Some((user, password)) if user == ACCOUNT_SID && password == AUTH_TOKEN => {}
        other => return refuse(401, format!("bad Basic credentials: {other:?}")),
    }
    if method_and_path(r) != ("POST", twilio_path().as_str()) {
        return refuse(404, format!("no such resource: {}", r.line));
    }
    if r.header("content-type") != Some("application/x-www-form-urlencoded") {
        return refuse(415, format!("not a form: {:?}", r.header("content-type")));
    }
    let fields = form(&r.body);
    for name in ["To", "From", "Body"] {
        if fields.iter().filter(|(n, _)| n == name).count() != 1 {
            return refuse(400, format!("{name} missing or repeated in {fields:?}"));
        }
    }
    Ok(())
}

fn twilio_config(provider: &Provider, token: &str) -> WebhookConfig {
    WebhookConfig {
        body_format: stepgate::notify::BodyFormat::Form,
        form_fields: pairs(&[("To", "{{ to }}"), ("From", FROM), ("Body", "{{ text }}")]),
        basic_auth: Some(stepgate::notify::BasicAuth {
            user: ACCOUNT_SID.into(),
            password: token.into(),
        }),
        retries: 0,
        timeout: Duration::from_secs(5),
        ..WebhookConfig::new(provider.url(&twilio_path()))
    }
}

#[tokio::test]
async fn a_form_provider_with_basic_auth_gets_its_fields() {
    let provider = provider(twilio, vec![201]).await;
    let hook = Webhook::new(&twilio_config(&provider, AUTH_TOKEN)).unwrap();
    let mut msg = sms();
    // Characters a form encoder must escape: & = + % and a newline, and Korean.
    msg.text = "[Acme] 인증 코드 739164 & \"따옴표\" a+b=100%\n끝".into();
    within(hook.send(&msg)).await.unwrap();
    assert_eq!(provider.verdicts(), [Ok(())]);
    let requests = provider.server.requests();
    assert_eq!(
        form(&requests[0].body),
        pairs(&[
            ("To", "+821000000001"),
            ("From", FROM),
            ("Body", msg.text.as_str())
        ])
    );
    assert!(requests[0].header("idempotency-key").is_some());

    // The provider refuses another token, and the error does not show it.
    let wrong = Webhook::new(&twilio_config(&provider, "wr0ng-token")).unwrap();
    let e = within(wrong.send(&msg)).await.unwrap_err();
    assert!(
        matches!(
            e,
            NotifyError::WebhookStatus {
                status: 401,
                attempts: 1
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("wr0ng"), "{e}");
    assert!(provider.verdicts()[1].is_err());
}

// ---------------------------------------------------------------------------------------------
// An NCP SENS-style provider: a JSON body, and a signature header over the method, the path, a
// millisecond timestamp and the access key: base64(HMAC-SHA256(secret key, "POST /path\n{ts}\n{key}")).

const NCP_SERVICE: &str = "ncp:sms:kr:260000000001:stepgate";
const NCP_ACCESS_KEY: &str = "NCPACCESSKEY0000001";
const NCP_SECRET_KEY: &str = "ncp-s3cret-key-0001";

fn ncp_path() -> String {
    format!("/sms/v2/services/{NCP_SERVICE}/messages")
}

fn ncp(r: &Request) -> Result<(), Refusal> {
    let (method, path) = method_and_path(r);
    let Some(timestamp) = r.header("x-ncp-apigw-timestamp") else {
        return refuse(401, "no timestamp");
    };
    match timestamp.parse() {
        Ok(ms) if fresh(ms, 1) => {}
        _ => return refuse(401, format!("stale or malformed timestamp {timestamp}")),
    }
    if r.header("x-ncp-iam-access-key") != Some(NCP_ACCESS_KEY) {
        return refuse(401, "unknown access key");
    }
    let signature = r
        .header("x-ncp-apigw-signature-v2")
        .and_then(|s| STANDARD.decode(s).ok())
        .unwrap_or_default();
    let signed = format!("{method} {path}\n{timestamp}\n{NCP_ACCESS_KEY}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, NCP_SECRET_KEY.as_bytes());
    if hmac::verify(&key, signed.as_bytes(), &signature).is_err() {
        return refuse(401, "signature mismatch");
    }
    if path != ncp_path() {
        return refuse(404, format!("no such service: {path}"));
    }
    let body: serde_json::Value =
        serde_json::from_str(&r.body).map_err(|e| (400, format!("not JSON: {e}")))?;
    if body["type"] != "SMS" || body["messages"][0]["to"] != "01000000001" {
        return refuse(400, format!("unexpected message {body}"));
    }
    Ok(())
}

fn ncp_config(provider: &Provider, secret_key: &str) -> WebhookConfig {
    WebhookConfig {
        headers: pairs(&[
            ("x-ncp-apigw-timestamp", "{{ timestamp_ms }}"),
            ("x-ncp-iam-access-key", "{{ secrets.access_key }}"),
            (
                "x-ncp-apigw-signature-v2",
                r#"{{ ("POST /sms/v2/services/" ~ secrets.service_id ~ "/messages\n" ~ timestamp_ms ~ "\n" ~ secrets.access_key)|hmac_sha256_base64(secrets.secret_key) }}"#,
            ),
        ]),
        body_template: Some(
            r#"{"type": "SMS", "countryCode": "82", "from": "0200000000",
                "content": {{ text|tojson }},
                "messages": [{"to": {{ to|replace("+82", "0")|tojson }}}]}"#
                .into(),
        ),
        secrets: pairs(&[
            ("access_key", NCP_ACCESS_KEY),
            ("secret_key", secret_key),
            ("service_id", NCP_SERVICE),
        ]),
        retries: 1,
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        ..WebhookConfig::new(provider.url(&ncp_path()))
    }
}

#[tokio::test]
async fn a_signature_header_checks_out_on_every_attempt() {
    // The first, good, request is answered 503: the retry is signed (and checked) afresh.
    let provider = provider(ncp, vec![503, 202]).await;
    let hook = Webhook::new(&ncp_config(&provider, NCP_SECRET_KEY)).unwrap();
    within(hook.send(&sms())).await.unwrap();
    assert_eq!(provider.verdicts(), [Ok(()), Ok(())]);
    let requests = provider.server.requests();
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[0].json()["content"], sms().text.as_str());

    let wrong = Webhook::new(&ncp_config(&provider, "another-secret-key")).unwrap();
    let e = within(wrong.send(&sms())).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::WebhookStatus { status: 401, .. }),
        "{e}"
    );
    assert_eq!(
        provider.verdicts()[2],
        Err((401, "signature mismatch".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// A provider that signs the body: a hex SHA-256 of it, and a hex HMAC over timestamp, nonce and
// body, with a nonce it has not seen before.

const HOOK_KEY: &str = "b0dy-signing-key";
const API_KEY: &str = "api-key-0001";

fn body_signing(seen: Arc<Mutex<Vec<String>>>) -> impl Fn(&Request) -> Result<(), Refusal> {
    move |r| {
        let timestamp = r.header("x-timestamp").unwrap_or("");
        match timestamp.parse() {
            Ok(secs) if fresh(secs, 1000) => {}
            _ => return refuse(401, format!("stale or malformed timestamp {timestamp}")),
        }
        let nonce = r.header("x-nonce").unwrap_or("");
        if nonce.len() != 32 || !nonce.chars().all(|c| c.is_ascii_hexdigit()) {
            return refuse(401, format!("malformed nonce {nonce}"));
        }
        if seen.lock().unwrap().iter().any(|n| n == nonce) {
            return refuse(401, "replayed nonce");
        }
        seen.lock().unwrap().push(nonce.to_owned());
        let digest = digest::digest(&digest::SHA256, r.body.as_bytes());
        if r.header("x-content-sha256")
            != Some(data_encoding::HEXLOWER.encode(digest.as_ref()).as_str())
        {
            return refuse(400, "body hash mismatch");
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, HOOK_KEY.as_bytes());
        let signature = r
            .header("x-signature")
            .and_then(|s| data_encoding::HEXLOWER.decode(s.as_bytes()).ok())
            .unwrap_or_default();
        let signed = format!("{timestamp}.{nonce}.{}", r.body);
        if hmac::verify(&key, signed.as_bytes(), &signature).is_err() {
            return refuse(401, "signature mismatch");
        }
        if r.header("x-api-key").and_then(|k| STANDARD.decode(k).ok()) != Some(API_KEY.into()) {
            return refuse(401, "bad api key");
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_body_signature_uses_a_fresh_nonce_per_attempt() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let provider = provider(body_signing(seen.clone()), vec![503]).await;
    let cfg = WebhookConfig {
        headers: pairs(&[
            ("X-Timestamp", "{{ timestamp }}"),
            ("X-Nonce", "{{ nonce }}"),
            ("X-Content-SHA256", "{{ body|sha256 }}"),
            (
                "X-Signature",
                "{{ (timestamp ~ '.' ~ nonce ~ '.' ~ body)|hmac_sha256(secrets.hook_key) }}",
            ),
            ("X-Api-Key", "{{ secrets.api_key|base64 }}"),
        ]),
        secrets: pairs(&[("hook_key", HOOK_KEY), ("api_key", API_KEY)]),
        ..hook_config(provider.server.url.clone(), 1)
    };
    let hook = Webhook::new(&cfg).unwrap();
    within(hook.send(&sms())).await.unwrap();
    assert_eq!(provider.verdicts(), [Ok(()), Ok(())]);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks: a receiver's verification, written from the spec.

/// `whsec_` and the base64 of 32 bytes.
const WHSEC: &str = "whsec_c3RlcGdhdGUtdGVzdC1zaWduaW5nLXNlY3JldC0zMmI=";
const OTHER_WHSEC: &str = "whsec_YW5vdGhlci1zZWNyZXQtZm9yLWEtd3Jvbmctc2VuZGVy";

/// Verifies `webhook-id`, `webhook-timestamp` and `webhook-signature` over the raw body with the
/// secret, as the spec tells a receiver to: the key is the base64-decoded part after `whsec_`,
/// the signed content `{id}.{timestamp}.{body}`, the header a space-separated list of
/// `v1,<base64>` of which one must match (compared in constant time), and the timestamp within
/// five minutes of now.
fn verify_standard(
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &str,
    secret: &str,
) -> Result<(), String> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err("a webhook-* header is missing".into());
    };
    let secs: u64 = timestamp
        .parse()
        .map_err(|_| format!("the timestamp is not an integer: {timestamp}"))?;
    if !fresh(secs, 1000) {
        return Err(format!("the timestamp is too old or too new: {timestamp}"));
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("not a whsec_ secret")?)
        .map_err(|e| e.to_string())?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let signed = format!("{id}.{timestamp}.{body}");
    let matches = signatures.split(' ').any(|entry| {
        entry
            .split_once(',')
            .filter(|(version, _)| *version == "v1")
            .and_then(|(_, sig)| STANDARD.decode(sig).ok())
            .is_some_and(|sig| hmac::verify(&key, signed.as_bytes(), &sig).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err("no signature matches".into())
    }
}

fn verify_request(r: &Request, secret: &str) -> Result<(), String> {
    verify_standard(
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
        &r.body,
        secret,
    )
}

#[tokio::test]
async fn standard_webhooks_signatures_verify_as_a_receiver_would() {
    let provider = provider(
        |r| verify_request(r, WHSEC).map_err(|e| (401, e)),
        vec![503],
    )
    .await;
    let cfg = WebhookConfig {
        signing_secret: Some(WHSEC.into()),
        ..hook_config(provider.server.url.clone(), 1)
    };
    let hook = Webhook::new(&cfg).unwrap();
    within(hook.send(&sms())).await.unwrap();
    assert_eq!(provider.verdicts(), [Ok(()), Ok(())]);

    let requests = provider.server.requests();
    let id = requests[0].header("webhook-id").unwrap();
    for r in &requests {
        // The message id: the same across retries, and the idempotency key and body id too.
        assert_eq!(r.header("webhook-id"), Some(id));
        assert_eq!(r.header("idempotency-key"), Some(id));
        assert_eq!(r.json()["id"], id);
        let signatures = r.header("webhook-signature").unwrap();
        assert!(signatures.starts_with("v1,"), "{signatures}");
    }

    // What the receiver must reject: another secret, a changed body, id or timestamp.
    let r = &requests[0];
    let (ts, sig) = (r.header("webhook-timestamp"), r.header("webhook-signature"));
    assert!(verify_standard(Some(id), ts, sig, &r.body, WHSEC).is_ok());
    assert!(verify_standard(Some(id), ts, sig, &r.body, OTHER_WHSEC).is_err());
    let tampered = r.body.replace(CODE, "000000");
    assert_ne!(tampered, r.body);
    assert!(verify_standard(Some(id), ts, sig, &tampered, WHSEC).is_err());
    assert!(verify_standard(Some("msg_other"), ts, sig, &r.body, WHSEC).is_err());
    let later = ts.unwrap().parse::<u64>().unwrap() + 1;
    assert!(verify_standard(Some(id), Some(&later.to_string()), sig, &r.body, WHSEC).is_err());

    // A sender with the wrong secret is refused by the receiver.
    let wrong = Webhook::new(&WebhookConfig {
        signing_secret: Some(OTHER_WHSEC.into()),
        ..hook_config(provider.server.url.clone(), 1)
    })
    .unwrap();
    let e = within(wrong.send(&sms())).await.unwrap_err();
    assert!(
        matches!(
            e,
            NotifyError::WebhookStatus {
                status: 401,
                attempts: 1
            }
        ),
        "{e}"
    );
    assert_eq!(
        provider.verdicts()[2],
        Err((401, "no signature matches".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// From a configuration file: secrets in files (trailing newlines trimmed) reach the provider.

#[tokio::test]
async fn a_config_file_with_secret_files_signs_and_authenticates() {
    let provider = provider(
        |r| {
            twilio(r)?;
            verify_request(r, WHSEC).map_err(|e| (401, e))?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, HOOK_KEY.as_bytes());
            let signature = r
                .header("x-signature")
                .and_then(|s| data_encoding::HEXLOWER.decode(s.as_bytes()).ok())
                .unwrap_or_default();
            hmac::verify(&key, r.body.as_bytes(), &signature)
                .map_err(|_| (401, "x-signature mismatch".to_owned()))
        },
        vec![],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let token = file("auth-token", &format!("{AUTH_TOKEN}\n"));
    let whsec = file("signing-secret", &format!("{WHSEC}\r\n"));
    let hook_key = file("hook-key", &format!("{HOOK_KEY}\n"));
    let text = format!(
        r#"[[listener]]
address = "127.0.0.1:8080"

[notify]
sms = "webhook"

[notify.webhook]
url = "{url}"
body_format = "form"
basic_auth_user = "{ACCOUNT_SID}"
basic_auth_password_file = "{token}"
signing_secret_file = "{whsec}"
retries = 0
headers = {{ X-Signature = '{{{{ body|hmac_sha256(secrets.hook_key) }}}}' }}

[notify.webhook.secrets]
hook_key_file = "{hook_key}"

[notify.webhook.form_fields]
To = "{{{{ to }}}}"
From = "{FROM}"
Body = "{{{{ text }}}}"
"#,
        url = provider.url(&twilio_path()),
    );
    let config = stepgate::config::Config::from_toml(std::path::Path::new("stepgate.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let shown = format!("{:?}", config.notify);
    for secret in [AUTH_TOKEN, WHSEC, HOOK_KEY] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let notifiers = Notifiers::build(&config.notify, dir.path()).unwrap();
    within(notifiers.send(&sms())).await.unwrap();
    assert_eq!(provider.verdicts(), [Ok(())]);
    // Form fields go in the table's (sorted) order.
    let names: Vec<String> = form(&provider.server.requests()[0].body)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["Body", "From", "To"]);
}
