//! The webhook notifier: one JSON `POST` per message to an operator's endpoint (an SMS or push
//! provider, or a bridge to one), with retries.
//!
//! Body: by default `{"id", "ts", "channel", "to", "subject", "text", "code"?, "link"?}` (the
//! outbox fields plus `id`). With `body_template`, a minijinja template rendered with `id, ts,
//! kind, channel, to, subject, text, code, link` (`code`/`link` are `none` when absent); a
//! `tojson` filter JSON-encodes a value, quotes included (`{"msg": {{ text|tojson }}}`). The output
//! must parse as JSON. The template is compiled, and rendered once with a sample message, in
//! `Webhook::new`, so a template that does not compile, or produces invalid JSON because it forgot
//! `tojson`, fails at start-up rather than at the first message.
//!
//! Retries: connection errors, timeouts, 429 and 5xx are retried up to `retries` more times, with
//! a back-off starting at `backoff` and doubling, each wait capped at 30 s; a `Retry-After` in
//! seconds on 429/503 replaces the back-off for that wait (same cap). Other 4xx (and 3xx:
//! redirects are not followed, so a code cannot be sent on to another host) fail at once.
//! Trade-off: a retry after a timeout can deliver a message twice (the first request may have
//! arrived). Every attempt of one message carries the same `id` in the default body and in an
//! `Idempotency-Key` header, so a receiver can drop duplicates; a custom template should include
//! `{{ id|tojson }}` for the same reason.
//!
//! The URL and header values are secrets (tokens); errors and logs carry neither.

use std::time::Duration;

use minijinja::{context, Environment, UndefinedBehavior, Value};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use super::outbox::rfc3339;
use super::{error_chain, read_ca_file, Channel, Message, Notifier, NotifyError, WebhookConfig};
use crate::clock::{self, SharedClock};

/// The longest single wait between attempts, from back-off or `Retry-After`.
const MAX_WAIT: Duration = Duration::from_secs(30);

const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    headers: HeaderMap,
    template: Option<Environment<'static>>,
    retries: u32,
    backoff: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &super::redacted_url(&self.url))
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> NotifyError {
    NotifyError::Config {
        backend: "webhook",
        reason: reason.into(),
    }
}

/// The template's name inside its environment.
const BODY: &str = "body";

/// JSON-encodes a value: the `tojson` filter (minijinja's own needs its `json` feature).
/// An undefined value (a misspelt name) is an error rather than `null`.
fn tojson(value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError));
    }
    serde_json::to_string(value)
        .map(Value::from_safe_string)
        .map_err(|e| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "cannot encode as JSON",
            )
            .with_source(e)
        })
}

/// Compiles a body template into its own environment.
fn compile(source: &str) -> Result<Environment<'static>, NotifyError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // A misspelt variable is an error, not an empty string silently sent.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("tojson", tojson);
    env.add_template_owned(BODY, source.to_owned())
        .map_err(|e| invalid(format!("the body template does not compile: {e}")))?;
    Ok(env)
}

/// The default JSON body.
#[derive(serde::Serialize)]
struct DefaultBody<'a> {
    id: &'a str,
    ts: &'a str,
    channel: Channel,
    to: &'a str,
    subject: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
}

/// The body for one message; Err if a template fails or its output is not JSON.
fn body(
    template: Option<&Environment<'static>>,
    msg: &Message,
    id: &str,
    ts: &str,
) -> Result<String, NotifyError> {
    let Some(env) = template else {
        let body = DefaultBody {
            id,
            ts,
            channel: msg.channel,
            to: &msg.to,
            subject: &msg.subject,
            text: &msg.text,
            code: msg.code.as_deref(),
            link: msg.link.as_deref(),
        };
        return serde_json::to_string(&body).map_err(|e| NotifyError::Template(e.to_string()));
    };
    let rendered = env
        .get_template(BODY)
        .and_then(|t| {
            t.render(context! {
                id,
                ts,
                kind => msg.kind,
                channel => msg.channel.as_str(),
                to => &msg.to,
                subject => &msg.subject,
                text => &msg.text,
                code => &msg.code,
                link => &msg.link,
            })
        })
        // minijinja's Display names the template and line, not the values.
        .map_err(|e| NotifyError::Template(e.to_string()))?;
    // serde_json's messages give line and column only, never the offending text.
    serde_json::from_str::<serde::de::IgnoredAny>(&rendered)
        .map_err(|e| NotifyError::BodyNotJson(e.to_string()))?;
    Ok(rendered)
}

/// A 128-bit random id as 32 hex digits.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether a status is worth another attempt.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The wait before the next attempt: `Retry-After` (429/503 only) or the back-off, capped.
fn wait_before_retry(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or(backoff).min(MAX_WAIT)
}

/// `Retry-After: <seconds>` on 429/503; the HTTP-date form is ignored (the back-off applies).
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

impl Webhook {
    /// Builds the client once (rustls, timeout, extra root, no redirects) and checks the template.
    pub fn new(cfg: &WebhookConfig) -> Result<Webhook, NotifyError> {
        Webhook::with_clock(cfg, clock::system())
    }

    /// Like `new`, with `ts` taken from `clock`.
    pub fn with_clock(cfg: &WebhookConfig, clock: SharedClock) -> Result<Webhook, NotifyError> {
        if !matches!(cfg.url.scheme(), "http" | "https") {
            return Err(invalid("the url must be http or https"));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stepgate/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = read_ca_file(path)?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| NotifyError::CaFile {
                    path: path.clone(),
                    reason: error_chain(&e),
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("cannot build the http client: {}", error_chain(&e))))?;

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &cfg.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("not a valid header name (found \"{name}\")")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header {name} is not valid")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }

        let template = cfg.body_template.as_deref().map(compile).transpose()?;
        if let Some(env) = &template {
            let sample = sample_message();
            body(Some(env), &sample, &new_id(), &rfc3339(0)).map_err(|e| {
                invalid(format!(
                    "the body template must produce JSON for every message ({e}); \
                     encode values with the tojson filter, e.g. {{\"text\": {{{{ text|tojson }}}}}}"
                ))
            })?;
        }

        Ok(Webhook {
            client,
            url: cfg.url.clone(),
            headers,
            template,
            retries: cfg.retries,
            backoff: cfg.backoff,
            clock,
        })
    }
}

/// A message with the characters a careless template breaks on: quotes, a backslash, newlines.
fn sample_message() -> Message {
    Message {
        channel: Channel::Sms,
        to: "+821000000000".into(),
        subject: "[Sample] \"subject\"".into(),
        text: "Line \"one\" \\\nline two\n한국어".into(),
        code: Some("000000".into()),
        link: Some("https://example.test/?a=1&b=\"2\"".into()),
        kind: "sample",
    }
}

#[async_trait::async_trait]
impl Notifier for Webhook {
    async fn send(&self, msg: &Message) -> Result<(), NotifyError> {
        let id = new_id();
        let body = body(
            self.template.as_ref(),
            msg,
            &id,
            &rfc3339(self.clock.now_ms()),
        )?;
        let mut headers = self.headers.clone();
        if !headers.contains_key(IDEMPOTENCY_KEY) {
            if let Ok(v) = HeaderValue::from_str(&id) {
                headers.insert(IDEMPOTENCY_KEY, v);
            }
        }
        let mut backoff = self.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = self
                .client
                .post(self.url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            let (failure, retry_after) = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let failure = NotifyError::WebhookStatus {
                        status: status.as_u16(),
                        attempts,
                    };
                    if !retryable(status) {
                        return Err(failure);
                    }
                    (failure, retry_after(status, response.headers()))
                }
                Err(e) => {
                    // Without the URL: it often carries the provider's token.
                    let e = e.without_url();
                    let failure = NotifyError::WebhookRequest {
                        attempts,
                        reason: error_chain(&e),
                    };
                    if e.is_builder() {
                        return Err(failure);
                    }
                    (failure, None)
                }
            };
            if attempts > self.retries {
                return Err(failure);
            }
            let wait = wait_before_retry(backoff, retry_after);
            tracing::debug!(
                target: super::LOG_TARGET,
                attempt = attempts,
                error = %failure,
                wait_ms = wait.as_millis() as u64,
                "webhook attempt failed; retrying"
            );
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2).min(MAX_WAIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{compose, MessageKind};

    fn cfg(template: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            url: "https://hooks.example.test/send".parse().unwrap(),
            headers: vec![("Authorization".into(), "Bearer x".into())],
            body_template: template.map(str::to_owned),
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(10),
            ca_file: None,
        }
    }

    fn tricky() -> Message {
        let mut msg = compose(
            &MessageKind::EnrolmentCode { code: "123456" },
            "ko",
            Channel::Sms,
            "+821000000001",
            "Acme",
            "Alice",
            None,
        );
        msg.text = "He said \"hi\"\nthen \\left\t안녕하세요 </script>".into();
        msg
    }

    #[test]
    fn default_body_is_the_message_with_id_and_ts() {
        let msg = tricky();
        let out = body(None, &msg, "00ff", "2025-01-02T03:04:05Z").unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["id"], "00ff");
        assert_eq!(v["ts"], "2025-01-02T03:04:05Z");
        assert_eq!(v["channel"], "sms");
        assert_eq!(v["to"], "+821000000001");
        assert_eq!(v["text"], msg.text.as_str());
        assert_eq!(v["code"], "123456");
        assert!(v.get("link").is_none(), "{v}");
    }

    #[test]
    fn template_output_is_escaped_json() {
        let template = r#"{"id": {{ id|tojson }}, "kind": {{ kind|tojson }}, "to": {{ to|tojson }},
            "message": {{ text|tojson }}, "code": {{ code|tojson }}, "link": {{ link|tojson }}}"#;
        let hook = Webhook::new(&cfg(Some(template))).unwrap();
        let msg = tricky();
        let out = body(hook.template.as_ref(), &msg, "abc", "2025-01-02T03:04:05Z").unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["message"], msg.text.as_str());
        assert_eq!(v["code"], "123456");
        assert_eq!(v["link"], serde_json::Value::Null);
        assert_eq!(v["kind"], "enrolment_code");
        assert_eq!(v["id"], "abc");
    }

    #[test]
    fn a_template_that_does_not_compile_fails_at_build() {
        let e = Webhook::new(&cfg(Some(r#"{"text": {{ text "#))).unwrap_err();
        assert!(e.to_string().contains("does not compile"), "{e}");
    }

    #[test]
    fn a_template_without_tojson_fails_at_build() {
        let e = Webhook::new(&cfg(Some(r#"{"text": "{{ text }}"}"#))).unwrap_err();
        assert!(e.to_string().contains("tojson"), "{e}");
        let e = Webhook::new(&cfg(Some(r#"{"text": {{ txet|tojson }}}"#))).unwrap_err();
        assert!(e.to_string().contains("must produce JSON"), "{e}");
    }

    #[test]
    fn output_that_is_not_json_is_an_error_at_send_time() {
        // Valid for the sample (which has a code), not for a message without one.
        let env = compile(r#"{"code": {{ code }}}"#).unwrap();
        let msg = compose(
            &MessageKind::CodeReplayed,
            "en",
            Channel::Sms,
            "+8210",
            "A",
            "B",
            None,
        );
        assert!(matches!(
            body(Some(&env), &msg, "id", "ts"),
            Err(NotifyError::BodyNotJson(_))
        ));
    }

    #[test]
    fn ids_are_128_bit_hex() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn retry_policy() {
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::UNAUTHORIZED));
        assert!(!retryable(StatusCode::FOUND));

        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &h),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(StatusCode::SERVICE_UNAVAILABLE, &h),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(StatusCode::BAD_GATEWAY, &h), None);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &h), None);

        let ms = Duration::from_millis;
        assert_eq!(wait_before_retry(ms(10), None), ms(10));
        assert_eq!(
            wait_before_retry(ms(10), Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            wait_before_retry(ms(10), Some(Duration::from_secs(3600))),
            MAX_WAIT
        );
        assert_eq!(wait_before_retry(Duration::from_secs(600), None), MAX_WAIT);
    }

    #[test]
    fn bad_headers_and_ca_file_fail_at_build() {
        let mut c = cfg(None);
        c.headers = vec![("Bad Header".into(), "x".into())];
        assert!(Webhook::new(&c).is_err());
        let mut c = cfg(None);
        c.headers = vec![("X-Token".into(), "line\nbreak".into())];
        let e = Webhook::new(&c).unwrap_err();
        assert!(!e.to_string().contains("line"), "{e}");
        let mut c = cfg(None);
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(Webhook::new(&c), Err(NotifyError::CaFile { .. })));
    }

    #[test]
    fn debug_hides_url_path_and_headers() {
        let mut c = cfg(None);
        c.url = "https://hooks.example.test/T0/s3cret".parse().unwrap();
        let s = format!("{:?}", Webhook::new(&c).unwrap());
        assert!(!s.contains("s3cret") && !s.contains("Bearer"), "{s}");
    }
}
