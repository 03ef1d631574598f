//! `[two_factor]` (the mandatory date and its grace) and `[notify]` (where messages go).

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::file::{self, Str};
use super::super::*;
use super::Validator;
use crate::notify::{Backend, NotifyConfig, SmtpConfig, SmtpTls, WebhookConfig};

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
        let code_ttl = self.duration(&t.code_ttl, "two_factor.code_ttl", d.code_ttl.as_secs());
        let code_ttl = match &t.code_ttl {
            Some(c) if code_ttl > Duration::from_secs(600) => {
                self.problem(
                    c.span(),
                    "two_factor.code_ttl",
                    format!("must be at most 10m (found \"{}\")", c.get_ref()),
                );
                d.code_ttl
            }
            _ => code_ttl,
        };
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
            send_limits: crate::flow::sends::SendLimits {
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

    fn webhook(&mut self, w: Spanned<file::WebhookFile>) -> Option<WebhookConfig> {
        let span = w.span();
        let w = w.into_inner();
        let url = self
            .required(&w.url, span, "notify.webhook.url")
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
            } else {
                headers.push((name.clone(), value.get_ref().clone()));
            }
        }
        if let Some(t) = &w.body_template {
            if let Err(e) = minijinja::Environment::new().template_from_str(t.get_ref()) {
                self.problem(
                    t.span(),
                    "notify.webhook.body_template",
                    format!("the template does not compile: {e} (found a template)"),
                );
            }
        }
        let timeout = self.duration(&w.timeout, "notify.webhook.timeout", 10);
        let retries = self.count(&w.retries, "notify.webhook.retries", 0..=10, 3) as u32;
        let backoff = self.duration(&w.backoff, "notify.webhook.backoff", 1);
        let ca_file = self.readable_file(&w.ca_file, "notify.webhook.ca_file");
        Some(WebhookConfig {
            url: url?,
            headers,
            body_template: w.body_template.map(Spanned::into_inner),
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
