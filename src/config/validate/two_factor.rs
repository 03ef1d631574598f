//! `[two_factor]` (the mandatory date and its grace) and `[notify]` (where messages go).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::file::{self, Str};
use super::super::*;
use super::Validator;
use crate::notify::webhook::{self, TemplateAt, TemplateSources};
use crate::notify::{
    Backend, BasicAuth, BodyFormat, NotifyConfig, SmtpConfig, SmtpTls, WebhookConfig,
};

/// A secret as configured: its value, and the key and span it came from (for problems with it).
struct Secret {
    value: String,
    key: String,
    span: Range<usize>,
}

/// A name templates can write as `secrets.NAME`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `YYYY-MM-DD` (midnight UTC) or a full RFC 3339 instant, as milliseconds since the epoch.
fn parse_instant(s: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let at = match time::OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(s, &format).ok()?.midnight().assume_utc()
        }
    };
    u64::try_from(at.unix_timestamp()).ok().map(|s| s * 1000)
}

impl Validator<'_> {
    fn instant(&mut self, v: &Option<Str>, key: &str) -> Option<u64> {
        let s = v.as_ref()?;
        let parsed = parse_instant(s.get_ref());
        if parsed.is_none() {
            self.problem(
                s.span(),
                key,
                format!(
                    "must be a date such as \"2026-12-01\" or an RFC 3339 time such as \"2026-12-01T09:00:00+09:00\" (found \"{}\")",
                    s.get_ref()
                ),
            );
        }
        parsed
    }

    fn readable_file(&mut self, v: &Option<Str>, key: &str) -> Option<PathBuf> {
        let f = v.as_ref()?;
        let path = PathBuf::from(f.get_ref());
        if let Err(e) = std::fs::metadata(&path) {
            self.problem(
                f.span(),
                key,
                format!("cannot read the file: {e} (found \"{}\")", f.get_ref()),
            );
        }
        Some(path)
    }

    /// `two_factor.methods`: the methods setup offers, `"totp"` and `"sms"`, at least one.
    fn methods(
        &mut self,
        v: &Option<Vec<Str>>,
        default: &[crate::factor::FactorKind],
    ) -> Vec<crate::factor::FactorKind> {
        use crate::factor::FactorKind;
        let Some(list) = v else {
            return default.to_vec();
        };
        let mut out = Vec::new();
        for (i, m) in list.iter().enumerate() {
            match FactorKind::parse(m.get_ref()).filter(|k| k.is_primary()) {
                Some(k) if !out.contains(&k) => out.push(k),
                Some(_) => {}
                None => self.problem(
                    m.span(),
                    format!("two_factor.methods[{i}]"),
                    format!("must be \"totp\" or \"sms\" (found \"{}\")", m.get_ref()),
                ),
            }
        }
        if out.is_empty() && list.is_empty() {
            self.problem(
                0..0,
                "two_factor.methods",
                "must name at least one method (found an empty list)",
            );
        }
        if out.is_empty() {
            return default.to_vec();
        }
        out
    }

    /// A duration of at most ten minutes (a one-time code, a request waiting for approval).
    fn at_most_10m(&mut self, v: &Option<Str>, key: &str, default: Duration) -> Duration {
        let d = self.duration(v, key, default.as_secs());
        match v {
            Some(c) if d > Duration::from_secs(600) => {
                self.problem(
                    c.span(),
                    key,
                    format!("must be at most 10m (found \"{}\")", c.get_ref()),
                );
                default
            }
            _ => d,
        }
    }

    /// Approval on a device and security codes for another device.
    fn devices(
        &mut self,
        t: &file::TwoFactorFile,
        d: crate::factor::DeviceSettings,
    ) -> crate::factor::DeviceSettings {
        let limits = d.approval_limits;
        crate::factor::DeviceSettings {
            approval_ttl: self.at_most_10m(
                &t.approval_ttl,
                "two_factor.approval_ttl",
                d.approval_ttl,
            ),
            approval_limits: crate::factor::SendLimits {
                per_window: self.count(
                    &t.approvals_per_window,
                    "two_factor.approvals_per_window",
                    1..=100,
                    limits.per_window.into(),
                ) as u32,
                window: self.duration(
                    &t.approval_window,
                    "two_factor.approval_window",
                    limits.window.as_secs(),
                ),
                block: self.duration(
                    &t.approval_block,
                    "two_factor.approval_block",
                    limits.block.as_secs(),
                ),
            },
            approver_max_age: self.duration(
                &t.approver_max_age,
                "two_factor.approver_max_age",
                d.approver_max_age.as_secs(),
            ),
            device_code_ttl: self.at_most_10m(
                &t.device_code_ttl,
                "two_factor.device_code_ttl",
                d.device_code_ttl,
            ),
        }
    }

    pub(super) fn two_factor(
        &mut self,
        t: file::TwoFactorFile,
        portal: &PortalConfig,
    ) -> TwoFactorConfig {
        let d = TwoFactorConfig::default();
        let required_from = self.instant(&t.required_from, "two_factor.required_from");
        let grace_until = self.instant(&t.grace_until, "two_factor.grace_until");
        if let (Some(from), Some(until), Some(u)) = (required_from, grace_until, &t.grace_until) {
            if until <= from {
                self.problem(
                    u.span(),
                    "two_factor.grace_until",
                    format!(
                        "must be after two_factor.required_from (found \"{}\")",
                        u.get_ref()
                    ),
                );
            }
        }
        let grace_skips = t
            .grace_skips
            .as_ref()
            .map(|_| self.count(&t.grace_skips, "two_factor.grace_skips", 0..=1000, 0) as u32);
        let code_ttl = self.at_most_10m(&t.code_ttl, "two_factor.code_ttl", d.code_ttl);
        let devices = self.devices(&t, d.devices);
        let issuer = match t.issuer {
            Some(i) if i.get_ref().trim().is_empty() || i.get_ref().contains(':') => {
                self.problem(
                    i.span(),
                    "two_factor.issuer",
                    format!(
                        "must be a non-empty name without ':' (found \"{}\")",
                        i.get_ref()
                    ),
                );
                d.issuer
            }
            Some(i) => i.into_inner(),
            None => portal.service_name.replace(':', " "),
        };
        TwoFactorConfig {
            required_from,
            required_from_label: t
                .required_from
                .as_ref()
                .map(|s| s.get_ref().chars().take(10).collect()),
            grace_skips,
            grace_until,
            issuer,
            secret_key_file: t.secret_key_file.map(|f| PathBuf::from(f.into_inner())),
            code_ttl,
            enrolment_token_ttl: self.duration(
                &t.enrolment_token_ttl,
                "two_factor.enrolment_token_ttl",
                d.enrolment_token_ttl.as_secs(),
            ),
            trusted_browser_lifetime: self.optional_duration(
                &t.trusted_browser_lifetime,
                "two_factor.trusted_browser_lifetime",
                d.trusted_browser_lifetime,
            ),
            methods: self.methods(&t.methods, &d.methods),
            devices,
            send_limits: crate::factor::SendLimits {
                per_window: self.count(
                    &t.code_sends_per_window,
                    "two_factor.code_sends_per_window",
                    1..=1000,
                    d.send_limits.per_window.into(),
                ) as u32,
                window: self.duration(
                    &t.code_send_window,
                    "two_factor.code_send_window",
                    d.send_limits.window.as_secs(),
                ),
                block: self.duration(
                    &t.code_send_block,
                    "two_factor.code_send_block",
                    d.send_limits.block.as_secs(),
                ),
            },
        }
    }

    fn backend(&mut self, v: &Option<Str>, key: &str, allowed: &[(&str, Backend)]) -> Backend {
        let Some(s) = v else {
            return Backend::Outbox;
        };
        if let Some((_, b)) = allowed.iter().find(|(name, _)| name == s.get_ref()) {
            return *b;
        }
        let names: Vec<String> = allowed.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.problem(
            s.span(),
            key,
            format!(
                "must be one of {} (found \"{}\")",
                names.join(", "),
                s.get_ref()
            ),
        );
        Backend::Outbox
    }

    pub(super) fn notify(&mut self, n: file::NotifyFile) -> NotifyConfig {
        let email = self.backend(
            &n.email,
            "notify.email",
            &[
                ("outbox", Backend::Outbox),
                ("smtp", Backend::Smtp),
                ("webhook", Backend::Webhook),
            ],
        );
        let sms = self.backend(
            &n.sms,
            "notify.sms",
            &[("outbox", Backend::Outbox), ("webhook", Backend::Webhook)],
        );
        let smtp = n.smtp.map(|s| self.smtp(s));
        let webhook = n.webhook.map(|w| self.webhook(w));
        for (used, key, missing) in [
            (email == Backend::Smtp, "notify.email", smtp.is_none()),
            (
                email == Backend::Webhook || sms == Backend::Webhook,
                "notify",
                webhook.is_none(),
            ),
        ] {
            if used && missing {
                let (value, table) = if key == "notify.email" {
                    (n.email.as_ref(), "[notify.smtp]")
                } else {
                    (n.email.as_ref().or(n.sms.as_ref()), "[notify.webhook]")
                };
                let span = value.map_or(0..0, Spanned::span);
                self.problem(
                    span,
                    key,
                    format!("this backend needs a {table} table (found none)"),
                );
            }
        }
        let operator_email = n.operator_email.and_then(|e| {
            if e.get_ref().parse::<lettre::Address>().is_ok() {
                Some(e.into_inner())
            } else {
                self.problem(
                    e.span(),
                    "notify.operator_email",
                    format!("must be an email address (found \"{}\")", e.get_ref()),
                );
                None
            }
        });
        NotifyConfig {
            email,
            sms,
            smtp: smtp.flatten(),
            webhook: webhook.flatten(),
            operator_email,
        }
    }

    fn smtp(&mut self, s: Spanned<file::SmtpFile>) -> Option<SmtpConfig> {
        let span = s.span();
        let s = s.into_inner();
        let host = self
            .required(&s.host, span.clone(), "notify.smtp.host")
            .map(|h| h.get_ref().clone());
        let from = self.required(&s.from, span.clone(), "notify.smtp.from");
        let from = from.and_then(|f| match f.get_ref().parse::<lettre::message::Mailbox>() {
            Ok(_) => Some(f.get_ref().clone()),
            Err(_) => {
                self.problem(
                    f.span(),
                    "notify.smtp.from",
                    format!(
                        "must be an address such as \"Acme <no-reply@acme.test>\" (found \"{}\")",
                        f.get_ref()
                    ),
                );
                None
            }
        });
        let tls = match s.tls.as_ref().map(|t| (t.get_ref().as_str(), t.span())) {
            None | Some(("starttls", _)) => SmtpTls::Starttls,
            Some(("implicit", _)) => SmtpTls::Implicit,
            Some(("none", span)) => {
                // Credentials and codes in clear text are acceptable only on this machine.
                let loopback = host.as_deref().is_some_and(|h| {
                    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
                });
                if !loopback {
                    self.problem(
                        span,
                        "notify.smtp.tls",
                        format!(
                            "\"none\" is allowed only for a loopback host; use \"starttls\" or \"implicit\" (found host \"{}\")",
                            host.as_deref().unwrap_or("")
                        ),
                    );
                }
                SmtpTls::None
            }
            Some((other, span)) => {
                self.problem(
                    span,
                    "notify.smtp.tls",
                    format!("must be \"starttls\", \"implicit\" or \"none\" (found \"{other}\")"),
                );
                SmtpTls::Starttls
            }
        };
        let default_port = match tls {
            SmtpTls::Implicit => 465,
            _ => 587,
        };
        let port = self.count(&s.port, "notify.smtp.port", 1..=65535, default_port) as u16;
        let password =
            s.password_file
                .as_ref()
                .and_then(|f| match std::fs::read_to_string(f.get_ref()) {
                    Ok(p) => Some(p.trim_end_matches(['\r', '\n']).to_owned()),
                    Err(e) => {
                        self.problem(
                            f.span(),
                            "notify.smtp.password_file",
                            format!("cannot read the file: {e} (found \"{}\")", f.get_ref()),
                        );
                        None
                    }
                });
        if s.username.is_some() != s.password_file.is_some() {
            self.problem(
                span.clone(),
                "notify.smtp",
                "username and password_file go together (found only one)",
            );
        }
        let timeout = self.duration(&s.timeout, "notify.smtp.timeout", 10);
        let ca_file = self.readable_file(&s.ca_file, "notify.smtp.ca_file");
        Some(SmtpConfig {
            host: host?,
            port,
            tls,
            username: s.username.map(Spanned::into_inner),
            password,
            from: from?,
            timeout,
            ca_file,
        })
    }

    /// A secret kept in a file: read now (so that `check` finds an unreadable one), without its
    /// trailing newline.
    fn secret_file(&mut self, f: &Str, key: &str) -> Option<String> {
        match std::fs::read_to_string(f.get_ref()) {
            Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) => {
                self.problem(
                    f.span(),
                    key,
                    format!("cannot read the file: {e} (found \"{}\")", f.get_ref()),
                );
                None
            }
        }
    }

    /// A secret given as `key = "value"` or `key_file = "path"` (not both).
    fn secret(&mut self, value: &Option<Str>, file: &Option<Str>, key: &str) -> Option<Secret> {
        let file_key = format!("{key}_file");
        let leaf = key.rsplit('.').next().unwrap_or(key);
        match (value, file) {
            (Some(_), Some(f)) => {
                self.problem(
                    f.span(),
                    file_key,
                    format!("give either {leaf} or {leaf}_file, not both (found both)"),
                );
                None
            }
            (Some(v), None) => Some(Secret {
                value: v.get_ref().clone(),
                key: key.to_owned(),
                span: v.span(),
            }),
            (None, Some(f)) => self.secret_file(f, &file_key).map(|value| Secret {
                value,
                key: file_key,
                span: f.span(),
            }),
            (None, None) => None,
        }
    }

    fn webhook(&mut self, w: Spanned<file::WebhookFile>) -> Option<WebhookConfig> {
        let span = w.span();
        let w = w.into_inner();
        let url = self
            .required(&w.url, span.clone(), "notify.webhook.url")
            .and_then(|u| match url::Url::parse(u.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    self.problem(
                        u.span(),
                        "notify.webhook.url",
                        format!(
                            "must be an absolute http(s) URL (found \"{}\")",
                            u.get_ref()
                        ),
                    );
                    None
                }
            });

        // Basic auth and Standard Webhooks signing; the headers they set are theirs alone.
        let password = self.secret(
            &w.basic_auth_password,
            &w.basic_auth_password_file,
            "notify.webhook.basic_auth_password",
        );
        // Where the password was given, for a problem about it.
        let password_given = match (&w.basic_auth_password, &w.basic_auth_password_file) {
            (Some(p), _) => Some(("notify.webhook.basic_auth_password", p.span())),
            (None, Some(f)) => Some(("notify.webhook.basic_auth_password_file", f.span())),
            (None, None) => None,
        };
        let basic_auth = match (&w.basic_auth_user, password_given) {
            (Some(u), _) if u.get_ref().contains(':') => {
                self.problem(
                    u.span(),
                    "notify.webhook.basic_auth_user",
                    format!(
                        "must not contain ':', which separates the user from the password (found \"{}\")",
                        u.get_ref()
                    ),
                );
                None
            }
            (Some(u), Some(_)) => password.map(|p| BasicAuth {
                user: u.get_ref().clone(),
                password: p.value,
            }),
            (Some(u), None) => {
                self.problem(
                    u.span(),
                    "notify.webhook.basic_auth_user",
                    "needs basic_auth_password or basic_auth_password_file (found neither)",
                );
                None
            }
            (None, Some((key, span))) => {
                self.problem(
                    span,
                    key,
                    "goes with basic_auth_user (found no basic_auth_user)",
                );
                None
            }
            (None, None) => None,
        };
        let signing_given = w.signing_secret.is_some() || w.signing_secret_file.is_some();
        let signing_secret = self
            .secret(
                &w.signing_secret,
                &w.signing_secret_file,
                "notify.webhook.signing_secret",
            )
            .and_then(|s| match webhook::signing_key(&s.value) {
                Ok(_) => Some(s.value),
                Err(message) => {
                    self.problem(s.span, s.key, message);
                    None
                }
            });

        let mut headers = Vec::new();
        for (name, value) in &w.headers {
            let key = format!("notify.webhook.headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.problem(
                    value.span(),
                    key,
                    format!("not a valid header name (found \"{name}\")"),
                );
            } else if http::HeaderValue::from_str(value.get_ref()).is_err() {
                self.problem(
                    value.span(),
                    key,
                    "not a valid header value (found a control character or non-ASCII text)",
                );
            } else if w.basic_auth_user.is_some() && name.eq_ignore_ascii_case("authorization") {
                self.problem(
                    value.span(),
                    key,
                    "is set by basic_auth_user; keep either the header or the basic_auth keys (found both)",
                );
            } else if signing_given
                && webhook::SIGNING_HEADERS
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h))
            {
                self.problem(
                    value.span(),
                    key,
                    "is set by signing_secret (Standard Webhooks); keep either the header or the secret (found both)",
                );
            } else {
                headers.push((name.clone(), value.get_ref().clone()));
            }
        }

        // The body: JSON (default or body_template) or a form (form_fields), never a mix.
        let body_format = match &w.body_format {
            None => Some(BodyFormat::Json),
            Some(f) => match f.get_ref().as_str() {
                "json" => Some(BodyFormat::Json),
                "form" => Some(BodyFormat::Form),
                other => {
                    self.problem(
                        f.span(),
                        "notify.webhook.body_format",
                        format!("must be \"json\" or \"form\" (found \"{other}\")"),
                    );
                    None
                }
            },
        };
        match body_format {
            Some(BodyFormat::Json) => {
                if let Some(f) = &w.form_fields {
                    let found = match &w.body_format {
                        Some(_) => "body_format = \"json\"".to_owned(),
                        None => "no body_format, so JSON".to_owned(),
                    };
                    self.problem(
                        f.span(),
                        "notify.webhook.form_fields",
                        format!("go with body_format = \"form\" (found {found})"),
                    );
                }
            }
            Some(BodyFormat::Form) => {
                if let Some(t) = &w.body_template {
                    self.problem(
                        t.span(),
                        "notify.webhook.body_template",
                        "makes a JSON body, so it goes with body_format = \"json\"; a form body is made of form_fields (found body_format = \"form\")",
                    );
                }
                if w.form_fields
                    .as_ref()
                    .is_none_or(|f| f.get_ref().is_empty())
                {
                    let at = w
                        .form_fields
                        .as_ref()
                        .map(Spanned::span)
                        .or(w.body_format.as_ref().map(Spanned::span))
                        .unwrap_or(span.clone());
                    self.problem(
                        at,
                        "notify.webhook.form_fields",
                        "body_format = \"form\" needs a form_fields table with at least one field (found none)",
                    );
                }
            }
            None => {}
        }
        let mut form_fields = Vec::new();
        for (name, value) in w
            .form_fields
            .as_ref()
            .map(|f| f.get_ref())
            .into_iter()
            .flatten()
        {
            if name.is_empty() {
                self.problem(
                    value.span(),
                    "notify.webhook.form_fields",
                    "every field needs a name (found an empty name)",
                );
            } else {
                form_fields.push((name.clone(), value.get_ref().clone()));
            }
        }

        // Secrets for templates: `NAME = "value"` or `NAME_file = "path"`.
        let mut secrets = BTreeMap::new();
        for (key, value) in &w.secrets {
            let path = format!("notify.webhook.secrets.{key}");
            let (name, in_file) = match key.strip_suffix("_file") {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            if !is_identifier(name) {
                self.problem(
                    value.span(),
                    path,
                    format!(
                        "must be a name of ASCII letters, digits and _, not starting with a digit, so that templates can say secrets.NAME (found \"{key}\")"
                    ),
                );
                continue;
            }
            if in_file && w.secrets.contains_key(name) {
                self.problem(
                    value.span(),
                    path,
                    format!("give either {name} or {name}_file, not both (found both)"),
                );
                continue;
            }
            let secret = if in_file {
                // Unreadable: a problem already; an empty stand-in keeps templates from failing too.
                self.secret_file(value, &path).unwrap_or_default()
            } else {
                value.get_ref().clone()
            };
            secrets.insert(name.to_owned(), secret);
        }
        let secrets: Vec<(String, String)> = secrets.into_iter().collect();

        // Every template, compiled and tried with a sample message, as the notifier will.
        let format = body_format.unwrap_or_default();
        let body_template = match format {
            BodyFormat::Json => w.body_template.as_ref().map(|t| t.get_ref().clone()),
            BodyFormat::Form => None,
        };
        if format == BodyFormat::Json {
            form_fields.clear();
        }
        let problems = webhook::template_problems(&TemplateSources {
            body_format: format,
            body_template: body_template.as_deref(),
            form_fields: &form_fields,
            headers: &headers,
            secrets: &secrets,
        });
        for p in problems {
            let at = match &p.at {
                TemplateAt::BodyTemplate => w.body_template.as_ref().map(Spanned::span),
                TemplateAt::FormField(f) => w
                    .form_fields
                    .as_ref()
                    .and_then(|t| t.get_ref().get(f))
                    .map(Spanned::span),
                TemplateAt::Header(h) => w.headers.get(h).map(Spanned::span),
            };
            self.problem(at.unwrap_or(span.clone()), p.at.key(), p.message);
        }

        let timeout = self.duration(&w.timeout, "notify.webhook.timeout", 10);
        let retries = self.count(&w.retries, "notify.webhook.retries", 0..=10, 3) as u32;
        let backoff = self.duration(&w.backoff, "notify.webhook.backoff", 1);
        let ca_file = self.readable_file(&w.ca_file, "notify.webhook.ca_file");
        Some(WebhookConfig {
            url: url?,
            headers,
            body_format: format,
            body_template,
            form_fields,
            basic_auth,
            secrets,
            signing_secret,
            timeout,
            retries,
            backoff,
            ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn dates_and_instants_parse() {
        assert_eq!(parse_instant("1970-01-02"), Some(86_400_000));
        assert_eq!(
            parse_instant("1970-01-01T09:00:00+09:00"),
            Some(0),
            "an offset is honoured"
        );
        assert_eq!(parse_instant("2026-13-01"), None);
        assert_eq!(parse_instant("tomorrow"), None);
    }
}
