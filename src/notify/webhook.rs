//! The webhook notifier: one `POST` per message to an operator's endpoint (an SMS or push
//! provider, or a bridge to one), with retries.
//!
//! Body, by `body_format`:
//! - `json` (the default): `{"id", "ts", "channel", "to", "subject", "text", "code"?, "link"?}`
//!   (the outbox fields plus `id`), or with `body_template` a minijinja template whose output must
//!   parse as JSON; a `tojson` filter JSON-encodes a value, quotes included
//!   (`{"msg": {{ text|tojson }}}`).
//! - `form`: `application/x-www-form-urlencoded`, one field per `form_fields` entry (name ->
//!   template), in the table's order (TOML tables are sorted by name), each value encoded here.
//!
//! Templates (the body template, form fields, and header values containing `{{`) see the message
//! as `id, ts, kind, channel, to, subject, text, code, link` (`code`/`link` are `none` when
//! absent) and the `secrets` table as `secrets.NAME`. Header templates are rendered again for
//! every attempt and also see `body` (the exact body sent, as a string), `timestamp` (unix
//! seconds of the attempt), `timestamp_ms` (the same in milliseconds) and `nonce` (32 random hex
//! digits, new per attempt), so a header can carry a provider's signature. Filters for that:
//! `sha256` (hex), `hmac_sha256(key)` (hex), `hmac_sha256_base64(key)` and `base64`, each over
//! the UTF-8 bytes of a string (or the digits of a number), the key a string too. Undefined
//! values are errors, not empty strings: a misspelt variable or secret name fails.
//! `template_problems` compiles every template and renders it once with a sample message full
//! of characters that break careless templates (quotes, a backslash, newlines); config validation
//! reports each problem at its key and `Webhook::new` refuses to start on the first, so a template
//! that does not compile, names an unknown secret, or produces invalid JSON because it forgot
//! `tojson`, fails at start-up rather than at the first message.
//!
//! Authentication: `basic_auth` sends `Authorization: Basic`. `signing_secret` (`whsec_` and
//! base64, as in the Standard Webhooks spec, https://www.standardwebhooks.com/) signs every
//! attempt: `webhook-id` (the message id, the same across retries), `webhook-timestamp` (unix
//! seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, keyed with the base64-decoded bytes after `whsec_`.
//!
//! Retries: connection errors, timeouts, 429 and 5xx are retried up to `retries` more times, with
//! a back-off starting at `backoff` and doubling, each wait capped at 30 s; a `Retry-After` in
//! seconds on 429/503 replaces the back-off for that wait (same cap). Other 4xx (and 3xx:
//! redirects are not followed, so a code cannot be sent on to another host) fail at once.
//! Trade-off: a retry after a timeout can deliver a message twice (the first request may have
//! arrived). Every attempt of one message carries the same `id` in the default body, in an
//! `Idempotency-Key` header (and `webhook-id` when signing), so a receiver can drop duplicates; a
//! custom template should include `{{ id|tojson }}` for the same reason. The body is rendered
//! once per message, so every attempt sends the same bytes.
//!
//! The URL, header values, form values, the Basic password, the secrets and the signing secret
//! are secrets; errors and logs carry none of them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use minijinja::{context, Environment, ErrorKind, UndefinedBehavior, Value};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER,
};
use reqwest::StatusCode;
use ring::{digest, hmac};

use super::outbox::rfc3339;
use super::{
    error_chain, read_ca_file, BodyFormat, Channel, Message, Notifier, NotifyError, WebhookConfig,
};
use crate::clock::{self, SharedClock};

/// The longest single wait between attempts, from back-off or `Retry-After`.
const MAX_WAIT: Duration = Duration::from_secs(30);

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The Standard Webhooks headers.
const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The headers `signing_secret` sets, which `headers` may not set as well.
pub const SIGNING_HEADERS: [&str; 3] = [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE];

pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    /// The headers every attempt carries: Content-Type, literal `headers`, Basic auth.
    headers: HeaderMap,
    templates: Templates,
    /// Headers whose values are templates, with their template names, rendered per attempt.
    header_templates: Vec<(HeaderName, String)>,
    /// The Standard Webhooks key, when signing.
    signing_key: Option<hmac::Key>,
    retries: u32,
    backoff: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &super::redacted_url(&self.url))
            .field("body_format", &self.templates.format)
            .field("signed", &self.signing_key.is_some())
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

// ---------------------------------------------------------------------------------------------
// Filters.

/// JSON-encodes a value: the `tojson` filter (minijinja's own needs its `json` feature).
/// An undefined value (a misspelt name) is an error rather than `null`.
fn tojson(value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::from(ErrorKind::UndefinedError));
    }
    serde_json::to_string(value)
        .map(Value::from_safe_string)
        .map_err(|e| {
            minijinja::Error::new(ErrorKind::InvalidOperation, "cannot encode as JSON")
                .with_source(e)
        })
}

/// The bytes a hashing filter works on: a string's UTF-8, or a number's decimal digits.
/// Errors name the filter and the argument, never the value.
fn filter_bytes<'v>(
    filter: &str,
    what: &str,
    value: &'v Value,
) -> Result<Cow<'v, [u8]>, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            format!("{filter}: the {what} is undefined (a misspelt variable or secret name?)"),
        ));
    }
    if let Some(bytes) = value.as_bytes() {
        return Ok(Cow::Borrowed(bytes));
    }
    if value.is_number() {
        return Ok(Cow::Owned(value.to_string().into_bytes()));
    }
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "{filter}: the {what} must be a string or a number (found {})",
            value.kind()
        ),
    ))
}

/// `value|sha256`: the SHA-256 digest of the value, in lowercase hex.
fn sha256(value: &Value) -> Result<String, minijinja::Error> {
    let bytes = filter_bytes("sha256", "value", value)?;
    Ok(data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, &bytes).as_ref()))
}

fn hmac_tag(filter: &str, value: &Value, key: &Value) -> Result<hmac::Tag, minijinja::Error> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &filter_bytes(filter, "key", key)?);
    Ok(hmac::sign(&key, &filter_bytes(filter, "value", value)?))
}

/// `value|hmac_sha256(key)`: HMAC-SHA256 of the value under `key`, in lowercase hex.
fn hmac_sha256(value: &Value, key: &Value) -> Result<String, minijinja::Error> {
    let tag = hmac_tag("hmac_sha256", value, key)?;
    Ok(data_encoding::HEXLOWER.encode(tag.as_ref()))
}

/// `value|hmac_sha256_base64(key)`: HMAC-SHA256 of the value under `key`, in base64 (with padding).
fn hmac_sha256_base64(value: &Value, key: &Value) -> Result<String, minijinja::Error> {
    let tag = hmac_tag("hmac_sha256_base64", value, key)?;
    Ok(STANDARD.encode(tag.as_ref()))
}

/// `value|base64`: the value's bytes in base64 (standard alphabet, with padding).
fn base64(value: &Value) -> Result<String, minijinja::Error> {
    Ok(STANDARD.encode(filter_bytes("base64", "value", value)?))
}

/// An environment with the filters and the strict undefined behaviour every template gets.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // No debug info in errors: it would carry the template's variables, secrets included.
    env.set_debug(false);
    // A misspelt variable is an error, not an empty string silently sent.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("tojson", tojson);
    env.add_filter("sha256", sha256);
    env.add_filter("hmac_sha256", hmac_sha256);
    env.add_filter("hmac_sha256_base64", hmac_sha256_base64);
    env.add_filter("base64", base64);
    env
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks.

/// Base64 as the spec's secrets are written: standard alphabet, padding optional.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The HMAC key of a Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes
/// (the spec's "at least 24 bytes, 512 bits maximum"). Err says what is expected and what was
/// found, never the secret.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    const EXPECTED: &str = "must be \"whsec_\" followed by the base64 of 24 to 64 random bytes";
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return Err(format!(
            "{EXPECTED} (found a value without the \"whsec_\" prefix)"
        ));
    };
    let key = SECRET_BASE64
        .decode(encoded)
        .map_err(|_| format!("{EXPECTED} (found text after \"whsec_\" that is not base64)"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("{EXPECTED} (found {} bytes)", key.len()));
    }
    Ok(key)
}

/// `v1,` and the base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}").
fn standard_signature(key: &hmac::Key, id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = hmac::Context::with_key(key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.sign().as_ref()))
}

// ---------------------------------------------------------------------------------------------
// Templates.

/// Template names inside the environment: the keys they come from, so that minijinja's
/// messages (`... (in headers.X-Signature:1)`) point at the right one.
const BODY: &str = "body_template";

fn form_template(field: &str) -> String {
    format!("form_fields.{field}")
}

fn header_template(name: &str) -> String {
    format!("headers.{name}")
}

/// Whether a header value is a template (rendered per attempt) rather than literal text.
pub fn is_template(value: &str) -> bool {
    value.contains("{{")
}

/// Where a template lives in `[notify.webhook]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateAt {
    BodyTemplate,
    FormField(String),
    Header(String),
}

impl TemplateAt {
    /// Its config key, e.g. `notify.webhook.form_fields.To`.
    pub fn key(&self) -> String {
        match self {
            TemplateAt::BodyTemplate => "notify.webhook.body_template".into(),
            TemplateAt::FormField(f) => format!("notify.webhook.form_fields.{f}"),
            TemplateAt::Header(h) => format!("notify.webhook.headers.{h}"),
        }
    }
}

/// A template that does not compile, or fails with the sample message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    pub at: TemplateAt,
    /// What is expected and what was found; never a secret.
    pub message: String,
}

/// The templated parts of a webhook configuration (config validation checks them before it
/// has a whole `WebhookConfig`).
#[derive(Debug, Clone, Copy)]
pub struct TemplateSources<'a> {
    pub body_format: BodyFormat,
    /// Used with `BodyFormat::Json` only.
    pub body_template: Option<&'a str>,
    /// Used with `BodyFormat::Form` only.
    pub form_fields: &'a [(String, String)],
    /// Only values with `{{` are templates.
    pub headers: &'a [(String, String)],
    pub secrets: &'a [(String, String)],
}

impl<'a> TemplateSources<'a> {
    pub fn of(cfg: &'a WebhookConfig) -> TemplateSources<'a> {
        TemplateSources {
            body_format: cfg.body_format,
            body_template: cfg.body_template.as_deref(),
            form_fields: &cfg.form_fields,
            headers: &cfg.headers,
            secrets: &cfg.secrets,
        }
    }
}

/// Every problem of a webhook's templates: each is compiled, then rendered with a sample message
/// as a send would render it (the body, then the header templates with that body).
pub fn template_problems(sources: &TemplateSources<'_>) -> Vec<TemplateProblem> {
    let (templates, mut problems) = Templates::compile(sources);
    problems.extend(templates.try_sample());
    problems
}

/// The compiled templates of one webhook, in one environment, and the secrets they may read.
struct Templates {
    env: Environment<'static>,
    format: BodyFormat,
    /// Whether `BODY` holds a JSON body template (otherwise the default body is sent).
    body_template: bool,
    /// Form field names; each one's template is `form_template(name)`.
    form_fields: Vec<String>,
    /// Header names (as configured) whose values are templates, `header_template(name)`.
    headers: Vec<String>,
    secrets: Value,
}

fn json_problem(found: String) -> TemplateProblem {
    TemplateProblem {
        at: TemplateAt::BodyTemplate,
        message: format!(
            "must produce JSON for every message; encode values with the tojson filter, e.g. \
             {{\"text\": {{{{ text|tojson }}}}}} (found {found} with a sample message)"
        ),
    }
}

fn render_problem(at: TemplateAt, e: &minijinja::Error) -> TemplateProblem {
    TemplateProblem {
        at,
        message: format!(
            "must render for every message (found the error \"{e}\" with a sample message)"
        ),
    }
}

impl Templates {
    fn compile(sources: &TemplateSources<'_>) -> (Templates, Vec<TemplateProblem>) {
        let mut env = environment();
        let mut problems = Vec::new();
        let mut add =
            |env: &mut Environment<'static>, at: TemplateAt, name: String, source: &str| match env
                .add_template_owned(name, source.to_owned())
            {
                Ok(()) => true,
                Err(e) => {
                    problems.push(TemplateProblem {
                        at,
                        message: format!("the template does not compile: {e} (found a template)"),
                    });
                    false
                }
            };
        let mut templates = Templates {
            env: Environment::new(),
            format: sources.body_format,
            body_template: false,
            form_fields: Vec::new(),
            headers: Vec::new(),
            secrets: Value::from_serialize(
                sources.secrets.iter().cloned().collect::<BTreeMap<_, _>>(),
            ),
        };
        match sources.body_format {
            BodyFormat::Json => {
                if let Some(source) = sources.body_template {
                    templates.body_template =
                        add(&mut env, TemplateAt::BodyTemplate, BODY.into(), source);
                }
            }
            BodyFormat::Form => {
                for (field, source) in sources.form_fields {
                    let at = TemplateAt::FormField(field.clone());
                    // A field that does not compile is left out; the problem stops the start.
                    add(&mut env, at, form_template(field), source);
                    templates.form_fields.push(field.clone());
                }
            }
        }
        for (name, value) in sources.headers {
            if is_template(value)
                && add(
                    &mut env,
                    TemplateAt::Header(name.clone()),
                    header_template(name),
                    value,
                )
            {
                templates.headers.push(name.clone());
            }
        }
        templates.env = env;
        (templates, problems)
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    /// What body and form templates see.
    fn message_context(&self, msg: &Message, id: &str, ts: &str) -> Value {
        context! {
            id,
            ts,
            kind => msg.kind,
            channel => msg.channel.as_str(),
            to => &msg.to,
            subject => &msg.subject,
            text => &msg.text,
            code => &msg.code,
            link => &msg.link,
            secrets => self.secrets.clone(),
        }
    }

    /// The body of one message; Err if a template fails or the JSON template's output is not JSON.
    fn body(&self, msg: &Message, ctx: &Value, id: &str, ts: &str) -> Result<String, NotifyError> {
        match self.format {
            BodyFormat::Json if !self.body_template => default_body(msg, id, ts),
            BodyFormat::Json => {
                // minijinja's Display names the template and line, not the values.
                let rendered = self
                    .render(BODY, ctx)
                    .map_err(|e| NotifyError::Template(e.to_string()))?;
                // serde_json's messages give line and column only, never the offending text.
                serde_json::from_str::<serde::de::IgnoredAny>(&rendered)
                    .map_err(|e| NotifyError::BodyNotJson(e.to_string()))?;
                Ok(rendered)
            }
            BodyFormat::Form => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for field in &self.form_fields {
                    let value = self
                        .render(&form_template(field), ctx)
                        .map_err(|e| NotifyError::Template(e.to_string()))?;
                    form.append_pair(field, &value);
                }
                Ok(form.finish())
            }
        }
    }

    /// Renders every template with the sample message, as `send` would, and says what fails.
    fn try_sample(&self) -> Vec<TemplateProblem> {
        let msg = sample_message();
        let id = new_id();
        let ts = rfc3339(SAMPLE_MS);
        let ctx = self.message_context(&msg, &id, &ts);
        let mut problems = Vec::new();
        match self.format {
            BodyFormat::Json if self.body_template => match self.render(BODY, &ctx) {
                Err(e) => problems.push(json_problem(format!("the error \"{e}\""))),
                Ok(out) => {
                    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&out) {
                        problems.push(json_problem(format!("output that is not JSON ({e})")));
                    }
                }
            },
            BodyFormat::Json => {}
            BodyFormat::Form => {
                for field in &self.form_fields {
                    let name = form_template(field);
                    if self.env.get_template(&name).is_err() {
                        continue; // did not compile: already a problem
                    }
                    if let Err(e) = self.render(&name, &ctx) {
                        problems.push(render_problem(TemplateAt::FormField(field.clone()), &e));
                    }
                }
            }
        }
        let body = self.body(&msg, &ctx, &id, &ts).unwrap_or_default();
        let ctx = attempt_context(&ctx, &body, SAMPLE_MS, &new_id());
        for name in &self.headers {
            let at = TemplateAt::Header(name.clone());
            match self.render(&header_template(name), &ctx) {
                Err(e) => problems.push(render_problem(at, &e)),
                Ok(value) if HeaderValue::from_str(&value).is_err() => {
                    problems.push(TemplateProblem {
                        at,
                        message: "must render to a valid header value (found a control \
                                  character or non-ASCII text with a sample message)"
                            .into(),
                    })
                }
                Ok(_) => {}
            }
        }
        problems
    }
}

/// What header templates see for one attempt: the message, and the request's body and time.
fn attempt_context(message: &Value, body: &str, now_ms: u64, nonce: &str) -> Value {
    context! {
        body,
        timestamp => now_ms / 1000,
        timestamp_ms => now_ms,
        nonce,
        ..message.clone()
    }
}

/// The sample message's time: 2023-11-14T22:13:20Z.
const SAMPLE_MS: u64 = 1_700_000_000_000;

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

fn default_body(msg: &Message, id: &str, ts: &str) -> Result<String, NotifyError> {
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
    serde_json::to_string(&body).map_err(|e| NotifyError::Template(e.to_string()))
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
    /// Builds the client once (rustls, timeout, extra root, no redirects) and checks the templates.
    pub fn new(cfg: &WebhookConfig) -> Result<Webhook, NotifyError> {
        Webhook::with_clock(cfg, clock::system())
    }

    /// Like `new`, with `ts` and the attempts' timestamps taken from `clock`.
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
        let content_type = match cfg.body_format {
            BodyFormat::Json => "application/json",
            BodyFormat::Form => "application/x-www-form-urlencoded",
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(auth) = &cfg.basic_auth {
            if auth.user.contains(':') {
                return Err(invalid("the basic_auth_user must not contain ':'"));
            }
            let credentials = STANDARD.encode(format!("{}:{}", auth.user, auth.password));
            let mut value = HeaderValue::from_str(&format!("Basic {credentials}"))
                .map_err(|_| invalid("the basic auth credentials are not a valid header"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut header_templates = Vec::new();
        for (name, value) in &cfg.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("not a valid header name (found \"{name}\")")))?;
            if is_template(value) {
                header_templates.push((header, header_template(name)));
                continue;
            }
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header {header} is not valid")))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        if cfg.body_format == BodyFormat::Form && cfg.form_fields.is_empty() {
            return Err(invalid(
                "body_format = \"form\" needs at least one form field",
            ));
        }

        let signing_key = cfg
            .signing_secret
            .as_deref()
            .map(signing_key)
            .transpose()
            .map_err(|reason| invalid(format!("signing_secret: {reason}")))?
            .map(|key| hmac::Key::new(hmac::HMAC_SHA256, &key));

        let sources = TemplateSources::of(cfg);
        let (templates, mut problems) = Templates::compile(&sources);
        problems.extend(templates.try_sample());
        if let Some(p) = problems.first() {
            return Err(invalid(format!("{}: {}", p.at.key(), p.message)));
        }

        Ok(Webhook {
            client,
            url: cfg.url.clone(),
            headers,
            templates,
            header_templates,
            signing_key,
            retries: cfg.retries,
            backoff: cfg.backoff,
            clock,
        })
    }

    /// The headers of one attempt: the fixed ones, the header templates rendered for this
    /// attempt's time and nonce, and the Standard Webhooks signature.
    fn attempt_headers(
        &self,
        base: &HeaderMap,
        message: &Value,
        id: &str,
        body: &str,
    ) -> Result<HeaderMap, NotifyError> {
        let now_ms = self.clock.now_ms();
        let mut headers = base.clone();
        if !self.header_templates.is_empty() {
            let ctx = attempt_context(message, body, now_ms, &new_id());
            for (name, template) in &self.header_templates {
                let rendered = self
                    .templates
                    .render(template, &ctx)
                    .map_err(|e| NotifyError::HeaderTemplate(e.to_string()))?;
                let mut value = HeaderValue::from_str(&rendered).map_err(|_| {
                    NotifyError::HeaderTemplate(format!(
                        "{template} did not produce a valid header value"
                    ))
                })?;
                value.set_sensitive(true);
                headers.insert(name.clone(), value);
            }
        }
        if let Some(key) = &self.signing_key {
            let timestamp = now_ms / 1000;
            let id_value = HeaderValue::from_str(id).map_err(|_| {
                NotifyError::HeaderTemplate("the message id is not a header".into())
            })?;
            headers.insert(WEBHOOK_ID, id_value);
            headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
            let signature = standard_signature(key, id, timestamp, body);
            // Base64 and "v1,": always a valid header value.
            if let Ok(mut value) = HeaderValue::from_str(&signature) {
                value.set_sensitive(true);
                headers.insert(WEBHOOK_SIGNATURE, value);
            }
        }
        Ok(headers)
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
        let ts = rfc3339(self.clock.now_ms());
        let message = self.templates.message_context(msg, &id, &ts);
        let body = self.templates.body(msg, &message, &id, &ts)?;
        let mut base = self.headers.clone();
        if !base.contains_key(IDEMPOTENCY_KEY) {
            if let Ok(v) = HeaderValue::from_str(&id) {
                base.insert(IDEMPOTENCY_KEY, v);
            }
        }
        let mut backoff = self.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let headers = self.attempt_headers(&base, &message, &id, &body)?;
            let sent = self
                .client
                .post(self.url.clone())
                .headers(headers)
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
    use crate::clock::ManualClock;
    use crate::notify::{compose, BasicAuth, MessageKind};

    fn cfg(template: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            headers: vec![("Authorization".into(), "Bearer x".into())],
            body_template: template.map(str::to_owned),
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(10),
            ..WebhookConfig::new("https://hooks.example.test/send".parse().unwrap())
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// Renders `source` with `vars` in the webhook environment.
    fn render(source: &str, vars: Value) -> Result<String, minijinja::Error> {
        environment().render_str(source, vars)
    }

    /// The body a webhook would send for `msg`.
    fn body_of(hook: &Webhook, msg: &Message, id: &str, ts: &str) -> Result<String, NotifyError> {
        let ctx = hook.templates.message_context(msg, id, ts);
        hook.templates.body(msg, &ctx, id, ts)
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
        let out = default_body(&msg, "00ff", "2025-01-02T03:04:05Z").unwrap();
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
        let out = body_of(&hook, &msg, "abc", "2025-01-02T03:04:05Z").unwrap();
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
        // Valid for a message with a code (a JSON number), not for one without.
        let (templates, problems) = Templates::compile(&TemplateSources {
            body_template: Some(r#"{"code": {{ code }}}"#),
            ..TemplateSources::of(&cfg(None))
        });
        assert!(problems.is_empty(), "{problems:?}");
        let msg = compose(
            &MessageKind::CodeReplayed,
            "en",
            Channel::Sms,
            "+8210",
            "A",
            "B",
            None,
        );
        let ctx = templates.message_context(&msg, "id", "ts");
        assert!(matches!(
            templates.body(&msg, &ctx, "id", "ts"),
            Err(NotifyError::BodyNotJson(_))
        ));
        let mut coded = msg.clone();
        coded.code = Some("123456".into());
        let ctx = templates.message_context(&coded, "id", "ts");
        assert_eq!(
            templates.body(&coded, &ctx, "id", "ts").unwrap(),
            r#"{"code": 123456}"#
        );
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

    #[test]
    fn filters_match_published_test_vectors() {
        // RFC 4231, test case 2.
        let out = render(
            r#"{{ "what do ya want for nothing?"|hmac_sha256("Jefe") }}"#,
            context! {},
        )
        .unwrap();
        assert_eq!(
            out,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let out = render(
            r#"{{ "what do ya want for nothing?"|hmac_sha256_base64(key) }}"#,
            context! { key => "Jefe" },
        )
        .unwrap();
        assert_eq!(out, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        // FIPS 180-2, "abc".
        let out = render(r#"{{ "abc"|sha256 }}"#, context! {}).unwrap();
        assert_eq!(
            out,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            render(r#"{{ "hello"|base64 }}"#, context! {}).unwrap(),
            "aGVsbG8="
        );
        assert_eq!(
            render("{{ text|base64 }}", context! { text => "안녕" }).unwrap(),
            "7JWI64WV"
        );
    }

    #[test]
    fn filters_take_numbers_and_concatenations() {
        let vars = context! { timestamp => 1_700_000_000u64, body => "body", secrets => context! { k => "key" } };
        let out = render(
            r#"{{ (timestamp ~ "." ~ body)|hmac_sha256(secrets.k) }}"#,
            vars.clone(),
        )
        .unwrap();
        assert_eq!(
            out,
            "47b6ce0fca59474308e2921c247cb2493dce6b8101d90ac05bd0c6a37d0e046e"
        );
        // A number is its decimal digits.
        assert_eq!(
            render("{{ timestamp|base64 }}", vars).unwrap(),
            STANDARD.encode("1700000000")
        );
    }

    #[test]
    fn filters_refuse_undefined_and_unsuitable_values_without_showing_them() {
        let vars = context! { body => "s3cret-body", secrets => context! { k => "s3cret-key" } };
        let e = render("{{ body|hmac_sha256(secrets.missing) }}", vars.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
        let e = render("{{ nothing|sha256 }}", vars.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
        let e = render("{{ [1, 2]|base64 }}", vars.clone()).unwrap_err();
        assert!(e.to_string().contains("string or a number"), "{e}");
        let e = render("{{ none|hmac_sha256_base64(secrets.k) }}", vars.clone()).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let e = render("{{ body|hmac_sha256 }}", vars).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn standard_webhooks_signature_matches_the_reference_vector() {
        // The example the Standard Webhooks reference libraries test against.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(key.len(), 24);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
        assert_eq!(
            standard_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signing_secrets_must_be_whsec_base64_of_24_to_64_bytes() {
        let b64 = |n: usize| STANDARD.encode(vec![7u8; n]);
        assert!(signing_key(&format!("whsec_{}", b64(24))).is_ok());
        assert!(signing_key(&format!("whsec_{}", b64(64))).is_ok());
        // Padding is optional, as in the reference libraries.
        let unpadded = format!("whsec_{}", b64(32).trim_end_matches('='));
        assert_eq!(signing_key(&unpadded).unwrap().len(), 32);

        let e = signing_key(&b64(32)).unwrap_err();
        assert!(e.contains("without the \"whsec_\" prefix"), "{e}");
        assert!(!e.contains(&b64(32)), "{e}");
        let e = signing_key("whsec_not base64!").unwrap_err();
        assert!(e.contains("not base64") && !e.contains("base64!"), "{e}");
        let e = signing_key(&format!("whsec_{}", b64(16))).unwrap_err();
        assert!(
            e.contains("24 to 64") && e.contains("found 16 bytes"),
            "{e}"
        );
        let e = signing_key(&format!("whsec_{}", b64(65))).unwrap_err();
        assert!(e.contains("found 65 bytes"), "{e}");
    }

    #[test]
    fn a_form_body_encodes_each_field() {
        let mut c = cfg(None);
        c.body_format = BodyFormat::Form;
        c.form_fields = pairs(&[
            ("To", "{{ to }}"),
            ("From", "+15005550006"),
            ("Body", "{{ text }}"),
            ("Key", "{{ secrets.api_key }}"),
        ]);
        c.secrets = pairs(&[("api_key", "k&y=1")]);
        let hook = Webhook::new(&c).unwrap();
        let msg = tricky();
        let out = body_of(&hook, &msg, "id", "ts").unwrap();
        assert!(
            out.starts_with("To=%2B821000000001&From=%2B15005550006&Body="),
            "{out}"
        );
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(out.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            fields,
            vec![
                ("To".into(), "+821000000001".into()),
                ("From".into(), "+15005550006".into()),
                ("Body".into(), msg.text.clone()),
                ("Key".into(), "k&y=1".into()),
            ]
        );
        assert_eq!(
            hook.headers[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn basic_auth_is_one_sensitive_header() {
        let mut c = cfg(None);
        c.headers.clear();
        c.basic_auth = Some(BasicAuth {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        });
        let hook = Webhook::new(&c).unwrap();
        let value = &hook.headers[AUTHORIZATION];
        // RFC 7617's example.
        assert_eq!(value, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(value.is_sensitive());
        c.basic_auth = Some(BasicAuth {
            user: "a:b".into(),
            password: "p".into(),
        });
        assert!(Webhook::new(&c).is_err());
    }

    #[test]
    fn header_templates_are_rendered_for_each_attempt() {
        let clock = ManualClock::new(1_700_000_000_123);
        let mut c = cfg(None);
        c.headers = pairs(&[
            ("X-Literal", "{ not a template } {%"),
            ("X-Timestamp", "{{ timestamp_ms }}"),
            ("X-Nonce", "{{ nonce }}"),
            ("X-Body-Hash", "{{ body|sha256 }}"),
            (
                "X-Signature",
                "{{ (timestamp ~ '.' ~ body)|hmac_sha256(secrets.key) }}",
            ),
        ]);
        c.secrets = pairs(&[("key", "key")]);
        c.signing_secret = Some(format!("whsec_{}", STANDARD.encode([1u8; 32])));
        let hook = Webhook::with_clock(&c, clock.clone()).unwrap();
        let msg = tricky();
        let ctx = hook.templates.message_context(&msg, "abc", "ts");
        let first = hook
            .attempt_headers(&hook.headers, &ctx, "abc", "body")
            .unwrap();
        assert_eq!(first["x-literal"], "{ not a template } {%");
        assert_eq!(first["x-timestamp"], "1700000000123");
        assert_eq!(first["x-nonce"].len(), 32);
        assert_eq!(
            first["x-body-hash"],
            data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, b"body").as_ref())
        );
        assert_eq!(
            first["x-signature"],
            "47b6ce0fca59474308e2921c247cb2493dce6b8101d90ac05bd0c6a37d0e046e"
        );
        assert!(first["x-signature"].is_sensitive());
        assert_eq!(first[WEBHOOK_ID], "abc");
        assert_eq!(first[WEBHOOK_TIMESTAMP], "1700000000");

        clock.advance(Duration::from_secs(5));
        let second = hook
            .attempt_headers(&hook.headers, &ctx, "abc", "body")
            .unwrap();
        assert_eq!(second["x-timestamp"], "1700000005123");
        assert_ne!(second["x-nonce"], first["x-nonce"]);
        assert_ne!(second["x-signature"], first["x-signature"]);
        assert_eq!(second[WEBHOOK_ID], "abc");
        assert_eq!(second[WEBHOOK_TIMESTAMP], "1700000005");
        assert_ne!(second[WEBHOOK_SIGNATURE], first[WEBHOOK_SIGNATURE]);
    }

    #[test]
    fn template_problems_name_their_key() {
        let headers = pairs(&[
            ("X-Sig", "{{ body|hmac_sha256(secrets.mispelt) }}"),
            ("X-Text", "{{ text }}"),
            ("X-Broken", "{{ body|sha256 "),
            ("X-Plain", "literal {% not rendered"),
        ]);
        let form = pairs(&[("To", "{{ too }}"), ("Body", "{{ text }}")]);
        let secrets = pairs(&[("key", "s3cret")]);
        let problems = template_problems(&TemplateSources {
            body_format: BodyFormat::Form,
            body_template: None,
            form_fields: &form,
            headers: &headers,
            secrets: &secrets,
        });
        let at: Vec<String> = problems.iter().map(|p| p.at.key()).collect();
        assert_eq!(
            at,
            [
                "notify.webhook.headers.X-Broken",
                "notify.webhook.form_fields.To",
                "notify.webhook.headers.X-Sig",
                "notify.webhook.headers.X-Text",
            ],
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("does not compile"),
            "{problems:?}"
        );
        assert!(problems[1].message.contains("undefined"), "{problems:?}");
        assert!(problems[2].message.contains("undefined"), "{problems:?}");
        assert!(
            problems[3].message.contains("valid header value"),
            "{problems:?}"
        );
        assert!(!format!("{problems:?}").contains("s3cret"));

        // With a JSON body, form fields are not templates of this webhook (validation says so).
        let problems = template_problems(&TemplateSources {
            body_format: BodyFormat::Json,
            body_template: Some(r#"{"to": {{ to }}}"#),
            form_fields: &form,
            headers: &[],
            secrets: &[],
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].at, TemplateAt::BodyTemplate);
        assert!(problems[0].message.contains("not JSON"), "{problems:?}");
    }
}
