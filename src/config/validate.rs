//! File -> [`Config`]: checks every value and collects every problem, each with its line.
//!
//! Unknown keys: the mirror does not use `deny_unknown_fields`, because serde stops at the first
//! unknown key. `serde_ignored` reports every key serde skipped instead, and each becomes a
//! problem, so unknown keys are still rejected, all of them at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use toml::Spanned;

mod network;
mod passkeys;
mod store;
mod two_factor;

use super::file::{self, FileConfig, Str};
use super::*;
use crate::access::{Policy, RuleSpec, Subject};
use crate::diagnostics::{key_in_text, unknown_key, KeyPath};
use crate::i18n::Lang;
use crate::routing::HostPattern;

pub(super) fn validate(path: &Path, text: &str) -> Result<Config, Vec<Problem>> {
    let mut unknown = Vec::new();
    let de = toml::Deserializer::new(text);
    let parsed: Result<FileConfig, _> =
        serde_ignored::deserialize(de, |p| unknown.push(KeyPath::of(&p)));
    let mut v = Validator {
        text,
        problems: Vec::new(),
    };
    let file = match parsed {
        Ok(file) => file,
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let message = e.message().trim().replace('\n', ", ");
            let found = e
                .span()
                .and_then(|s| text.get(s))
                .map(|s| format!(" (found `{}`)", s.lines().next().unwrap_or("").trim()))
                .unwrap_or_default();
            v.problems.push(Problem {
                line: v.line_of(offset),
                key: key_in_text(text, offset),
                message: format!("{message}{found}"),
            });
            return Err(v.problems);
        }
    };
    let doc = toml_edit::ImDocument::parse(text.to_owned()).ok();
    for key in unknown {
        let table = doc.as_ref().map(|d| d.as_table());
        v.problems.push(unknown_key(text, table, &key));
    }
    let config = v.config(path, file);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        v.problems.sort_by_key(|p| p.line);
        Err(v.problems)
    }
}

struct Validator<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn line_of(&self, offset: usize) -> usize {
        crate::diagnostics::line_of(self.text, offset)
    }

    fn problem(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: self.line_of(span.start),
            key: key.into(),
            message: message.into(),
        });
    }

    /// A required key: reports it missing (at its table's line) when absent.
    fn required<'s>(
        &mut self,
        v: &'s Option<Str>,
        table: Range<usize>,
        key: &str,
    ) -> Option<&'s Str> {
        if v.is_none() {
            self.problem(table, key, "this key is required (found none)");
        }
        v.as_ref()
    }

    fn config(&mut self, path: &Path, f: FileConfig) -> Config {
        let server = self.server(f.server);
        let log = self.log(f.log);
        let portal = self.portal(f.portal);
        let identity_headers = self.identity_headers(f.identity.headers);
        let users_file = f.users.file.map(|p| {
            // The users file is checked with the config, so `check` finds what `run` would.
            let path = PathBuf::from(p.get_ref());
            let problem = match std::fs::read_to_string(&path) {
                Err(e) => Some(format!("cannot read the users file: {e}")),
                Ok(text) => crate::users::validate_users(&path, &text).err().map(|e| {
                    format!(
                        "the users file has problems: {}",
                        e.to_string().replace('\n', "; ")
                    )
                }),
            };
            if let Some(message) = problem {
                self.problem(
                    p.span(),
                    "users.file",
                    format!("{message} (found \"{}\")", p.get_ref()),
                );
            }
            path
        });
        let session = self.session(f.session);
        let regulation = self.regulation(f.regulation);
        let assertion = self.assertion(f.assertion);
        let two_factor = self.two_factor(f.two_factor, &portal);
        let notify = self.notify(f.notify);
        let (store, redis) = self.store(f.store);
        let passkeys = self.passkeys(f.passkeys, &portal);
        let metrics = f.metrics.map(|m| {
            let listen = m
                .get_ref()
                .listen
                .as_ref()
                .and_then(|a| self.socket_addr(a, "metrics.listen"))
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
            crate::metrics::MetricsConfig { listen }
        });
        let no_listener = f.listener.is_empty();
        let listeners = f
            .listener
            .into_iter()
            .enumerate()
            .filter_map(|(i, l)| self.listener(i, l))
            .collect::<Vec<_>>();
        if no_listener {
            self.problem(
                0..0,
                "listener",
                "at least one [[listener]] is needed (found none)",
            );
        }
        let apps = self.apps(f.app);
        let rules = f
            .rule
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.rule(i, r))
            .collect::<Vec<RuleSpec>>();
        if users_file.is_none()
            && rules
                .iter()
                .any(|r| matches!(r.policy, Policy::OneFactor | Policy::TwoFactor))
        {
            self.problem(
                0..0,
                "users.file",
                "rules ask for sign-in, so a users file is needed (found none)",
            );
        }
        Config {
            source: path.to_path_buf(),
            server,
            log,
            portal,
            identity_headers,
            users_file,
            session,
            regulation,
            assertion,
            two_factor,
            notify,
            store,
            redis,
            passkeys,
            metrics,
            listeners,
            apps,
            rules,
        }
    }

    fn count(
        &mut self,
        v: &Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        match v {
            None => default,
            Some(n) if range.contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                self.problem(
                    n.span(),
                    key,
                    format!(
                        "must be from {} to {} (found {})",
                        range.start(),
                        range.end(),
                        n.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn session(&mut self, s: file::SessionFile) -> crate::session::SessionConfig {
        let d = crate::session::SessionConfig::default();
        let cookie_domain = s
            .cookie_domain
            .and_then(|c| match HostPattern::parse(c.get_ref()) {
                Ok(HostPattern::Exact(name)) if name.contains('.') && !name.starts_with('[') => {
                    Some(name)
                }
                _ => {
                    self.problem(
                        c.span(),
                        "session.cookie_domain",
                        format!(
                            "must be a parent domain such as \"example.com\" (found \"{}\")",
                            c.get_ref()
                        ),
                    );
                    None
                }
            });
        crate::session::SessionConfig {
            idle_timeout: self.duration(
                &s.idle_timeout,
                "session.idle_timeout",
                d.idle_timeout.as_secs(),
            ),
            lifetime: self.duration(&s.lifetime, "session.lifetime", d.lifetime.as_secs()),
            max_per_user: self.count(
                &s.max_per_user,
                "session.max_per_user",
                1..=1000,
                d.max_per_user as i64,
            ) as usize,
            max_sessions: self.count(
                &s.max_sessions,
                "session.max_sessions",
                1..=100_000_000,
                d.max_sessions as i64,
            ) as usize,
            cookie_domain,
            saved_lifetime: self.optional_duration(
                &s.saved_lifetime,
                "session.saved_lifetime",
                d.saved_lifetime,
            ),
            unfamiliar_check: s.unfamiliar_check.unwrap_or(d.unfamiliar_check),
        }
    }

    fn regulation(&mut self, r: file::RegulationFile) -> crate::regulation::RegulationConfig {
        let d = crate::regulation::RegulationConfig::default();
        crate::regulation::RegulationConfig {
            max_failures: self.count(
                &r.max_failures,
                "regulation.max_failures",
                1..=100,
                d.max_failures.into(),
            ) as u32,
            window: self.duration(&r.window, "regulation.window", d.window.as_secs()),
            ban: self.duration(&r.ban, "regulation.ban", d.ban.as_secs()),
            max_ban: self.duration(&r.max_ban, "regulation.max_ban", d.max_ban.as_secs()),
            max_failures_per_address: self.count(
                &r.max_failures_per_address,
                "regulation.max_failures_per_address",
                1..=10_000,
                d.max_failures_per_address.into(),
            ) as u32,
            max_failures_per_user: self.count(
                &r.max_failures_per_user,
                "regulation.max_failures_per_user",
                1..=100,
                d.max_failures_per_user.into(),
            ) as u32,
            form_posts_per_minute: self.count(
                &r.form_posts_per_minute,
                "regulation.form_posts_per_minute",
                1..=100_000,
                d.form_posts_per_minute.into(),
            ) as u32,
            ..d
        }
    }

    fn assertion(&mut self, a: file::AssertionFile) -> crate::assertion::AssertionConfig {
        let d = crate::assertion::AssertionConfig::default();
        let ttl = self.duration(&a.ttl, "assertion.ttl", d.ttl.as_secs());
        let ttl = match &a.ttl {
            Some(t) if ttl > Duration::from_secs(300) || ttl.subsec_nanos() != 0 => {
                self.problem(
                    t.span(),
                    "assertion.ttl",
                    format!(
                        "must be whole seconds, at most 5m (found \"{}\")",
                        t.get_ref()
                    ),
                );
                d.ttl
            }
            _ => ttl,
        };
        let mut rotate_after = self.duration(
            &a.rotate_after,
            "assertion.rotate_after",
            d.rotate_after.as_secs(),
        );
        if let Some(r) = a
            .rotate_after
            .as_ref()
            .filter(|_| rotate_after < Duration::from_secs(60))
        {
            self.problem(
                r.span(),
                "assertion.rotate_after",
                format!("must be at least 1m (found \"{}\")", r.get_ref()),
            );
            rotate_after = d.rotate_after;
        }
        crate::assertion::AssertionConfig {
            issuer: a.issuer.map_or(d.issuer, |i| i.into_inner()),
            ttl,
            rotate_after,
        }
    }

    fn server(&mut self, s: file::ServerFile) -> ServerConfig {
        let threads = match s.threads {
            Some(t) if !(1..=1024).contains(t.get_ref()) => {
                self.problem(
                    t.span(),
                    "server.threads",
                    format!("must be from 1 to 1024 (found {})", t.get_ref()),
                );
                1
            }
            Some(t) => *t.get_ref() as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.network(c, &format!("server.trusted_proxies[{i}]")))
            .collect();
        ServerConfig {
            data_dir: s.data_dir.map_or_else(
                || PathBuf::from("./data"),
                |d| PathBuf::from(d.into_inner()),
            ),
            threads,
            trusted_proxies,
            // Default: one fewer than the cores (at least one), so hashing never takes them all.
            password_hash_concurrency: self.count(
                &s.password_hash_concurrency,
                "server.password_hash_concurrency",
                1..=256,
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
                    as i64,
            ) as usize,
            grace_period: self.duration(&s.grace_period, "server.grace_period", 10),
            shutdown_timeout: self.duration(&s.shutdown_timeout, "server.shutdown_timeout", 5),
            hsts_max_age: self.optional_duration(
                &s.hsts_max_age,
                "server.hsts_max_age",
                Some(Duration::from_secs(365 * 24 * 3600)),
            ),
            header_timeout: self.duration(&s.header_timeout, "server.header_timeout", 10),
            idle_timeout: self.duration(&s.idle_timeout, "server.idle_timeout", 20),
            body_timeout: self.duration(&s.body_timeout, "server.body_timeout", 30),
            max_connections_per_address: self.count(
                &s.max_connections_per_address,
                "server.max_connections_per_address",
                1..=1_000_000,
                256,
            ) as usize,
        }
    }

    fn log(&mut self, l: file::LogFile) -> LogConfig {
        let format = match l.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
            None | Some(("human", _)) => LogFormat::Human,
            Some(("json", _)) => LogFormat::Json,
            Some((other, span)) => {
                self.problem(
                    span,
                    "log.format",
                    format!("must be \"human\" or \"json\" (found \"{other}\")"),
                );
                LogFormat::Human
            }
        };
        let level = l.level.map_or_else(|| "info".to_owned(), |l| {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                self.problem(
                    l.span(),
                    "log.level",
                    format!("not a log filter such as \"info\" or \"info,stepgate=debug\" (found \"{}\")", l.get_ref()),
                );
            }
            l.into_inner()
        });
        LogConfig {
            format,
            level,
            access_log: l.access_log.unwrap_or(true),
        }
    }

    fn portal(&mut self, p: file::PortalFile) -> PortalConfig {
        let prefix = match p.prefix {
            None => "/_stepgate".to_owned(),
            Some(s) => {
                let v = s.get_ref();
                let ok = v.len() > 1
                    && v.starts_with('/')
                    && !v.ends_with('/')
                    && v[1..].split('/').all(|seg| {
                        !seg.is_empty()
                            && seg
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                    });
                if !ok {
                    self.problem(
                        s.span(),
                        "portal.prefix",
                        format!("must be a path like \"/_stepgate\": a leading slash, no trailing slash, letters, digits, - and _ (found \"{v}\")"),
                    );
                }
                s.into_inner()
            }
        };
        let help_url = p.help_url.and_then(|u| match url::Url::parse(u.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(u.into_inner()),
            _ => {
                self.problem(
                    u.span(),
                    "portal.help_url",
                    format!(
                        "must be an absolute http(s) URL (found \"{}\")",
                        u.get_ref()
                    ),
                );
                None
            }
        });
        let default_language = match p.default_language {
            None => Lang::En,
            Some(l) => Lang::from_tag(l.get_ref()).unwrap_or_else(|| {
                self.problem(
                    l.span(),
                    "portal.default_language",
                    format!("must be \"en\" or \"ko\" (found \"{}\")", l.get_ref()),
                );
                Lang::En
            }),
        };
        let default_redirect = match p.default_redirect {
            None => "/".to_owned(),
            Some(d) => {
                let v = d.get_ref();
                let ok = (v.starts_with('/') && !v.starts_with("//") && !v.contains('\\'))
                    || url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    self.problem(d.span(), "portal.default_redirect", format!("must be a path such as \"/\" or an absolute http(s) URL (found \"{v}\")"));
                }
                d.into_inner()
            }
        };
        let allowed_redirect_hosts = p
            .allowed_redirect_hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                self.host_pattern(h, &format!("portal.allowed_redirect_hosts[{i}]"))
            })
            .collect();
        PortalConfig {
            default_redirect,
            allowed_redirect_hosts,
            prefix,
            service_name: p
                .service_name
                .map_or_else(|| "stepgate".to_owned(), |s| s.into_inner()),
            help_url,
            default_language,
        }
    }

    fn identity_headers(&mut self, h: file::IdentityHeadersFile) -> IdentityHeaders {
        let d = IdentityHeaders::default();
        let mut one = |v: Option<Str>, key: &str, default: HeaderName| match v {
            None => default,
            Some(s) => match HeaderName::from_bytes(s.get_ref().as_bytes()) {
                Ok(name) if !is_reserved_header(&name) => name,
                _ => {
                    self.problem(
                        s.span(),
                        format!("identity.headers.{key}"),
                        format!("not a usable header name (found \"{}\")", s.get_ref()),
                    );
                    default
                }
            },
        };
        let headers = IdentityHeaders {
            user: one(h.user, "user", d.user),
            email: one(h.email, "email", d.email),
            groups: one(h.groups, "groups", d.groups),
            name: one(h.name, "name", d.name),
            auth_level: one(h.auth_level, "auth_level", d.auth_level),
            auth_methods: one(h.auth_methods, "auth_methods", d.auth_methods),
            assertion: one(h.assertion, "assertion", d.assertion),
            client_cert_fingerprint: one(
                h.client_cert_fingerprint,
                "client_cert_fingerprint",
                d.client_cert_fingerprint,
            ),
            client_cert_subject: one(
                h.client_cert_subject,
                "client_cert_subject",
                d.client_cert_subject,
            ),
        };
        let distinct: HashSet<String> = headers
            .all()
            .iter()
            .map(|n| n.as_str().replace('_', "-"))
            .collect();
        if distinct.len() != headers.all().len() {
            self.problem(
                0..0,
                "identity.headers",
                "every identity header needs its own name (found the same name twice)",
            );
        }
        headers
    }

    fn rule(&mut self, i: usize, r: Spanned<file::RuleFile>) -> Option<RuleSpec> {
        let span = r.span();
        let r = r.into_inner();
        let key = format!("rule[{i}]");
        let mut ok = true;
        let hosts = r
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(j, h)| {
                let p = self.host_pattern(h, &format!("{key}.hosts[{j}]"));
                ok &= p.is_some();
                p
            })
            .collect();
        let path = r.path.as_ref().map(|p| {
            if let Err(e) = regex::Regex::new(p.get_ref()) {
                ok = false;
                // The last line of regex's message is `error: what is wrong`.
                let last = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                let first = last.strip_prefix("error: ").unwrap_or(&last).to_owned();
                self.problem(
                    p.span(),
                    format!("{key}.path"),
                    format!(
                        "not a valid regular expression: {first} (found \"{}\")",
                        p.get_ref()
                    ),
                );
            }
            p.get_ref().clone()
        });
        let methods = r
            .methods
            .iter()
            .enumerate()
            .filter_map(|(j, m)| {
                let v = m.get_ref();
                match http::Method::from_bytes(v.as_bytes()) {
                    Ok(method) if v.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                    _ => {
                        ok = false;
                        self.problem(
                            m.span(),
                            format!("{key}.methods[{j}]"),
                            format!(
                                "must be an upper-case HTTP method such as \"GET\" (found \"{v}\")"
                            ),
                        );
                        None
                    }
                }
            })
            .collect();
        let networks = r
            .networks
            .iter()
            .enumerate()
            .filter_map(|(j, n)| {
                let net = self.network(n, &format!("{key}.networks[{j}]"));
                ok &= net.is_some();
                net
            })
            .collect();
        let subjects: Vec<Subject> = r
            .subjects
            .iter()
            .enumerate()
            .filter_map(|(j, s)| {
                let v = s.get_ref();
                let subject = Subject::parse(v);
                if subject.is_none() {
                    ok = false;
                    self.problem(
                        s.span(),
                        format!("{key}.subjects[{j}]"),
                        format!("must be \"user:NAME\" or \"group:NAME\" (found \"{v}\")"),
                    );
                }
                subject
            })
            .collect();
        let policy_str = self.required(&r.policy, span.clone(), &format!("{key}.policy"))?;
        let policy = match Policy::parse(policy_str.get_ref()) {
            Some(p) => p,
            None => {
                self.problem(policy_str.span(), format!("{key}.policy"), format!("must be \"bypass\", \"one_factor\", \"two_factor\" or \"deny\" (found \"{}\")", policy_str.get_ref()));
                return None;
            }
        };
        if policy == Policy::Bypass && !subjects.is_empty() {
            self.problem(policy_str.span(), format!("{key}.subjects"), "a bypass rule lets everyone in, so it cannot name subjects; use one_factor or two_factor (found subjects)");
            return None;
        }
        let client_certificate = match &r.client_certificate {
            Some(c) if *c.get_ref() && matches!(policy, Policy::Bypass | Policy::Deny) => {
                self.problem(c.span(), format!("{key}.client_certificate"), format!("only goes with policy \"one_factor\" or \"two_factor\" (found policy \"{}\")", policy.as_str()));
                return None;
            }
            Some(c) => *c.get_ref(),
            None => false,
        };
        ok.then_some(RuleSpec {
            hosts,
            path,
            methods,
            networks,
            subjects,
            policy,
            trusted_browsers: r.trusted_browsers.unwrap_or(true),
            client_certificate,
        })
    }

    fn duration(&mut self, v: &Option<Str>, key: &str, default_secs: u64) -> Duration {
        match v {
            None => Duration::from_secs(default_secs),
            Some(s) => {
                match humantime::parse_duration(s.get_ref()) {
                    Ok(d) if !d.is_zero() => d,
                    _ => {
                        self.problem(s.span(), key, format!("must be a duration such as \"30s\", \"5m\" or \"12h\" (found \"{}\")", s.get_ref()));
                        Duration::from_secs(default_secs)
                    }
                }
            }
        }
    }

    /// A duration, or `"off"` for `None`.
    fn optional_duration(
        &mut self,
        v: &Option<Str>,
        key: &str,
        default: Option<Duration>,
    ) -> Option<Duration> {
        match v {
            Some(s) if s.get_ref() == "off" => None,
            Some(_) => Some(self.duration(v, key, default.map_or(1, |d| d.as_secs()))),
            None => default,
        }
    }

    fn socket_addr(&mut self, v: &Str, key: &str) -> Option<SocketAddr> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(v.span(), key, format!("must be an IP address and port such as \"127.0.0.1:8080\" or \"[::]:443\" (found \"{}\")", v.get_ref()));
                None
            }
        }
    }

    fn network(&mut self, v: &Str, key: &str) -> Option<IpNet> {
        let s = v.get_ref();
        let parsed = s
            .parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        if parsed.is_none() {
            self.problem(
                v.span(),
                key,
                format!(
                    "must be a network such as \"10.0.0.0/8\" or an IP address (found \"{s}\")"
                ),
            );
        }
        parsed.map(|n| n.trunc())
    }

    fn host_pattern(&mut self, v: &Str, key: &str) -> Option<HostPattern> {
        match HostPattern::parse(v.get_ref()) {
            Ok(p) => Some(p),
            Err(why) => {
                self.problem(v.span(), key, format!("{why} (found \"{}\")", v.get_ref()));
                None
            }
        }
    }
}

/// Headers the gateway owns outright; an identity header must not take one of these names.
fn is_reserved_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "content-length"
            | "transfer-encoding"
            | "cookie"
            | "upgrade"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "forwarded"
            | "te"
            | "trailer"
            | "keep-alive"
    )
}
