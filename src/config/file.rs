//! The serde mirror of the TOML file: what an operator may write, and nothing else.
//!
//! Leaves that need checking beyond their TOML type (durations, addresses, CIDRs, regexes) are
//! read as spanned strings so that `validate` can report every bad value at once, each with its
//! line, instead of stopping at the first one as serde would. Unknown keys are collected by
//! `serde_ignored` in `config::load` for the same reason (see the note there), and required keys
//! are `Option`s so that a missing one is one problem among the others, not the end of the check.

use serde::Deserialize;
use toml::Spanned;

pub type Str = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub portal: PortalFile,
    #[serde(default)]
    pub identity: IdentityFile,
    #[serde(default)]
    pub users: UsersFile,
    #[serde(default)]
    pub session: SessionFile,
    #[serde(default)]
    pub regulation: RegulationFile,
    #[serde(default)]
    pub assertion: AssertionFile,
    #[serde(default)]
    pub two_factor: TwoFactorFile,
    #[serde(default)]
    pub notify: NotifyFile,
    #[serde(default)]
    pub store: StoreFile,
    pub passkeys: Option<Spanned<PasskeysFile>>,
    pub metrics: Option<Spanned<MetricsFile>>,
    #[serde(default)]
    pub listener: Vec<Spanned<ListenerFile>>,
    #[serde(default)]
    pub app: Vec<Spanned<AppFile>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RuleFile>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ServerFile {
    pub data_dir: Option<Str>,
    pub threads: Option<Spanned<i64>>,
    #[serde(default)]
    pub trusted_proxies: Vec<Str>,
    pub grace_period: Option<Str>,
    pub shutdown_timeout: Option<Str>,
    pub password_hash_concurrency: Option<Spanned<i64>>,
    pub hsts_max_age: Option<Str>,
    pub header_timeout: Option<Str>,
    pub idle_timeout: Option<Str>,
    pub body_timeout: Option<Str>,
    pub max_connections_per_address: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StoreFile {
    pub url: Option<Str>,
    pub url_file: Option<Str>,
    pub redis_url: Option<Str>,
    pub redis_prefix: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UsersFile {
    pub file: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionFile {
    pub idle_timeout: Option<Str>,
    pub lifetime: Option<Str>,
    pub max_per_user: Option<Spanned<i64>>,
    pub max_sessions: Option<Spanned<i64>>,
    pub cookie_domain: Option<Str>,
    pub saved_lifetime: Option<Str>,
    pub unfamiliar_check: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RegulationFile {
    pub max_failures: Option<Spanned<i64>>,
    pub window: Option<Str>,
    pub ban: Option<Str>,
    pub max_ban: Option<Str>,
    pub max_failures_per_address: Option<Spanned<i64>>,
    pub max_failures_per_user: Option<Spanned<i64>>,
    pub form_posts_per_minute: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AssertionFile {
    pub issuer: Option<Str>,
    pub ttl: Option<Str>,
    pub rotate_after: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct MetricsFile {
    pub listen: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LogFile {
    pub format: Option<Str>,
    pub level: Option<Str>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PortalFile {
    pub prefix: Option<Str>,
    pub service_name: Option<Str>,
    pub help_url: Option<Str>,
    pub default_language: Option<Str>,
    pub default_redirect: Option<Str>,
    #[serde(default)]
    pub allowed_redirect_hosts: Vec<Str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct IdentityFile {
    #[serde(default)]
    pub headers: IdentityHeadersFile,
}

#[derive(Debug, Default, Deserialize)]
pub struct IdentityHeadersFile {
    pub user: Option<Str>,
    pub email: Option<Str>,
    pub groups: Option<Str>,
    pub name: Option<Str>,
    pub auth_level: Option<Str>,
    pub auth_methods: Option<Str>,
    pub assertion: Option<Str>,
    pub client_cert_fingerprint: Option<Str>,
    pub client_cert_subject: Option<Str>,
}

#[derive(Debug, Deserialize)]
pub struct ListenerFile {
    pub address: Option<Str>,
    pub protocol: Option<Str>,
    pub http2: Option<bool>,
    pub redirect_port: Option<Spanned<i64>>,
    #[serde(default)]
    pub certificate: Vec<Spanned<CertificateFile>>,
    pub client_certificates: Option<Spanned<ClientCertificatesFile>>,
}

#[derive(Debug, Deserialize)]
pub struct ClientCertificatesFile {
    pub trust: Option<Str>,
    #[serde(default)]
    pub ca_files: Vec<Str>,
    #[serde(default)]
    pub crl_files: Vec<Str>,
}

#[derive(Debug, Deserialize)]
pub struct CertificateFile {
    pub cert_file: Option<Str>,
    pub key_file: Option<Str>,
    pub hosts: Option<Vec<Str>>,
}

#[derive(Debug, Deserialize)]
pub struct AppFile {
    pub id: Option<Str>,
    #[serde(default)]
    pub hosts: Vec<Str>,
    pub builtin: Option<Str>,
    pub forward_auth: Option<Spanned<bool>>,
    #[serde(default)]
    pub upstreams: Vec<Str>,
    pub connect_timeout: Option<Str>,
    pub read_timeout: Option<Str>,
    pub tls: Option<UpstreamTlsFile>,
    pub health_check: Option<Spanned<HealthCheckFile>>,
}

#[derive(Debug, Deserialize)]
pub struct UpstreamTlsFile {
    pub sni: Option<Str>,
    pub verify_cert: Option<bool>,
    pub verify_hostname: Option<bool>,
    pub ca_file: Option<Str>,
}

#[derive(Debug, Deserialize)]
pub struct HealthCheckFile {
    pub path: Option<Str>,
    pub interval: Option<Str>,
    pub timeout: Option<Str>,
    pub host: Option<Str>,
}

#[derive(Debug, Deserialize)]
pub struct RuleFile {
    #[serde(default)]
    pub hosts: Vec<Str>,
    pub path: Option<Str>,
    #[serde(default)]
    pub methods: Vec<Str>,
    #[serde(default)]
    pub networks: Vec<Str>,
    #[serde(default)]
    pub subjects: Vec<Str>,
    pub policy: Option<Str>,
    pub trusted_browsers: Option<bool>,
    pub client_certificate: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TwoFactorFile {
    pub required_from: Option<Str>,
    pub grace_skips: Option<Spanned<i64>>,
    pub grace_until: Option<Str>,
    pub issuer: Option<Str>,
    pub secret_key_file: Option<Str>,
    pub code_ttl: Option<Str>,
    pub enrolment_token_ttl: Option<Str>,
    pub trusted_browser_lifetime: Option<Str>,
    pub code_sends_per_window: Option<Spanned<i64>>,
    pub code_send_window: Option<Str>,
    pub code_send_block: Option<Str>,
    pub methods: Option<Vec<Str>>,
    pub approval_ttl: Option<Str>,
    pub approvals_per_window: Option<Spanned<i64>>,
    pub approval_window: Option<Str>,
    pub approval_block: Option<Str>,
    pub approver_max_age: Option<Str>,
    pub device_code_ttl: Option<Str>,
}

/// `[passkeys]`: WebAuthn (see docs/passkeys.md).
#[derive(Debug, Default, Deserialize)]
pub struct PasskeysFile {
    pub enabled: Option<bool>,
    pub rp_id: Option<Str>,
    pub rp_name: Option<Str>,
    pub origins: Option<Vec<Str>>,
    pub passwordless: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NotifyFile {
    pub email: Option<Str>,
    pub sms: Option<Str>,
    pub smtp: Option<Spanned<SmtpFile>>,
    pub webhook: Option<Spanned<WebhookFile>>,
    pub operator_email: Option<Str>,
}

#[derive(Debug, Deserialize)]
pub struct SmtpFile {
    pub host: Option<Str>,
    pub port: Option<Spanned<i64>>,
    pub tls: Option<Str>,
    pub username: Option<Str>,
    pub password_file: Option<Str>,
    pub from: Option<Str>,
    pub timeout: Option<Str>,
    pub ca_file: Option<Str>,
}

#[derive(Debug, Deserialize)]
pub struct WebhookFile {
    pub url: Option<Str>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Str>,
    pub body_format: Option<Str>,
    pub body_template: Option<Str>,
    pub form_fields: Option<Spanned<std::collections::BTreeMap<String, Str>>>,
    pub basic_auth_user: Option<Str>,
    pub basic_auth_password: Option<Str>,
    pub basic_auth_password_file: Option<Str>,
    /// `NAME = value` or `NAME_file = path`.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, Str>,
    pub signing_secret: Option<Str>,
    pub signing_secret_file: Option<Str>,
    pub timeout: Option<Str>,
    pub retries: Option<Spanned<i64>>,
    pub backoff: Option<Str>,
    pub ca_file: Option<Str>,
}
