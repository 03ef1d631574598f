//! The validated configuration: every value typed and checked, ready to build a gateway from.
//!
//! Pipeline: read the file -> `toml` into the serde mirror (`config::file`) -> `config::validate`
//! turns it into [`Config`], collecting every problem with its line. `stepgate check` prints the
//! whole list; `stepgate run` refuses to start with any of them.

mod file;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::access::RuleSpec;
use crate::routing::HostPattern;

/// Everything the gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (for messages).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub portal: PortalConfig,
    pub identity_headers: IdentityHeaders,
    /// The users file (`None`: nobody can sign in).
    pub users_file: Option<PathBuf>,
    pub session: crate::session::SessionConfig,
    pub regulation: crate::regulation::RegulationConfig,
    pub assertion: crate::assertion::AssertionConfig,
    pub two_factor: TwoFactorConfig,
    pub notify: crate::notify::NotifyConfig,
    pub store: crate::store::StoreConfig,
    /// `store.redis_url`: the failure limits shared by several gateways; `None`: in memory only.
    pub redis: Option<RedisConfig>,
    /// `[passkeys]`; `None`: passkeys are off.
    pub passkeys: Option<crate::factor::PasskeyConfig>,
    /// `[metrics]`; `None`: no metrics are recorded or served.
    pub metrics: Option<crate::metrics::MetricsConfig>,
    pub listeners: Vec<ListenerConfig>,
    pub apps: Vec<AppConfig>,
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// All state: database, keys, outbox, audit log.
    pub data_dir: PathBuf,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Peers whose `X-Forwarded-*` headers are believed. Empty by default.
    pub trusted_proxies: Vec<IpNet>,
    /// After SIGTERM/SIGINT: how long in-flight requests may take to finish.
    pub grace_period: Duration,
    /// After the grace period: how long the runtimes get to wind down.
    pub shutdown_timeout: Duration,
    /// Password hashes computed at once (each takes ~19 MiB and one core for tens of ms).
    pub password_hash_concurrency: usize,
    /// `Strict-Transport-Security: max-age` on every answer over HTTPS; `None`: not sent.
    pub hsts_max_age: Option<Duration>,
    /// From a request's first byte to its complete header (`proxy::connections`).
    pub header_timeout: Duration,
    /// From an answer to the next request's first byte on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Each read of a request body and each write of an answer.
    pub body_timeout: Duration,
    /// Open connections per client address (trusted proxies exempt).
    pub max_connections_per_address: usize,
}

/// `store.redis_url` and `store.redis_prefix`. The URL may hold a password, so `Debug` hides it.
#[derive(Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Put before every key, so several deployments can share one Redis.
    pub prefix: String,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &crate::store::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub kind: ListenerKind,
}

#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// Plain HTTP: for local try-outs or behind a TLS-terminating proxy.
    Http,
    /// HTTPS with certificates chosen by SNI; the first one is the default.
    Https {
        certificates: Vec<Certificate>,
        http2: bool,
        /// Asks for an optional client certificate, trusted this way (`[listener.client_certificates]`).
        client_certificates: Option<std::sync::Arc<crate::certificates::Trust>>,
    },
    /// Plain HTTP that answers every request with a redirect to HTTPS on `https_port`.
    Redirect { https_port: u16 },
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Stable id: the `aud` of the identity assertion.
    pub id: String,
    pub hosts: Vec<HostPattern>,
    pub upstream: UpstreamConfig,
}

#[derive(Debug, Clone)]
pub enum UpstreamConfig {
    /// The gateway's own echo app (see the contract).
    Whoami,
    /// Served by the operator's own proxy, which asks the gateway through forward-auth
    /// (`forward_auth = true`): the gateway decides for it but never proxies to it.
    ForwardAuthOnly,
    Servers(UpstreamServers),
}

#[derive(Debug, Clone)]
pub struct UpstreamServers {
    pub servers: Vec<UpstreamServer>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub tls: UpstreamTls,
    pub health_check: Option<HealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// Host name or IP literal, as written.
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// SNI to send; defaults to the server's host name.
    pub sni: Option<String>,
    pub verify_cert: bool,
    pub verify_hostname: bool,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub path: String,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
}

pub use crate::diagnostics::{ConfigError, Problem};
pub use crate::factor::TwoFactorConfig;
pub use crate::identity::IdentityHeaders;
pub use crate::portal::PortalConfig;
pub use crate::telemetry::{LogConfig, LogFormat};
pub use crate::tls::Certificate;

impl Config {
    /// The listeners that ask for client certificates, with their trust.
    pub fn certificate_listeners(
        &self,
    ) -> Vec<(SocketAddr, std::sync::Arc<crate::certificates::Trust>)> {
        self.listeners
            .iter()
            .filter_map(|l| match &l.kind {
                ListenerKind::Https {
                    client_certificates: Some(trust),
                    ..
                } => Some((l.address, std::sync::Arc::clone(trust))),
                _ => None,
            })
            .collect()
    }

    /// Read and validate a file; relative paths in it are taken from the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            problems: vec![Problem {
                line: 0,
                key: "(file)".into(),
                message: format!("cannot read the file ({e})"),
            }],
        })?;
        Self::from_toml(path, &text)
    }

    /// Validate TOML text; `path` names it in messages.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        validate::validate(path, text).map_err(|problems| ConfigError {
            file: path.to_path_buf(),
            problems,
        })
    }

    /// `--listen`: replace the address of the first plain-HTTP listener (or add one).
    pub fn override_listen(&mut self, address: SocketAddr) {
        match self
            .listeners
            .iter_mut()
            .find(|l| matches!(l.kind, ListenerKind::Http))
        {
            Some(l) => l.address = address,
            None => self.listeners.push(ListenerConfig {
                address,
                kind: ListenerKind::Http,
            }),
        }
    }
}
