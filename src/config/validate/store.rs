//! `[store]`: where durable state lives.

use std::path::PathBuf;

use super::file::{self, Str};
use super::Validator;
use crate::config::RedisConfig;
use crate::store::{redact_url, StoreConfig};

impl Validator<'_> {
    pub(super) fn store(&mut self, s: file::StoreFile) -> (StoreConfig, Option<RedisConfig>) {
        let store = self.durable_store(&s);
        let redis = s.redis_url.as_ref().and_then(|r| self.redis(r, &s, &store));
        (store, redis)
    }

    /// `redis://[user:password@]host[:port][/db]`, beside a PostgreSQL store (SQLite is one
    /// gateway's own, so there is nothing to share with).
    fn redis(&mut self, r: &Str, s: &file::StoreFile, store: &StoreConfig) -> Option<RedisConfig> {
        let url = r.get_ref();
        let parsed = url::Url::parse(url).ok().filter(|u| u.host_str().is_some());
        let Some(parsed) = parsed else {
            self.problem(
                r.span(),
                "store.redis_url",
                format!(
                    "must be a URL such as \"redis://127.0.0.1:6379\" (found \"{}\")",
                    redact_url(url)
                ),
            );
            return None;
        };
        if parsed.scheme() != "redis" {
            self.problem(r.span(), "store.redis_url", format!("must start with redis:// (TLS to Redis is not built in: reach a remote Redis over a tunnel) (found \"{}\")", redact_url(url)));
            return None;
        }
        if matches!(store, StoreConfig::Sqlite { .. }) {
            self.problem(r.span(), "store.redis_url", "needs a PostgreSQL store.url: Redis shares the failure limits of several gateways, and SQLite is one gateway's own (found store.url = sqlite)");
            return None;
        }
        let prefix = match &s.redis_prefix {
            None => "stepgate:".to_owned(),
            Some(p)
                if !p.get_ref().is_empty() && p.get_ref().chars().all(|c| c.is_ascii_graphic()) =>
            {
                p.get_ref().clone()
            }
            Some(p) => {
                self.problem(p.span(), "store.redis_prefix", format!("must be printable ASCII without spaces, such as \"stepgate:\" (found \"{}\")", p.get_ref()));
                return None;
            }
        };
        Some(RedisConfig {
            url: url.clone(),
            prefix,
        })
    }

    /// `store.url` or `store.url_file`.
    fn durable_store(&mut self, s: &file::StoreFile) -> StoreConfig {
        if let (Some(_), Some(f)) = (&s.url, &s.url_file) {
            self.problem(
                f.span(),
                "store.url_file",
                "give either url or url_file, not both (found both)",
            );
            return StoreConfig::default();
        }
        if let Some(f) = &s.url_file {
            return match std::fs::read_to_string(f.get_ref()) {
                Ok(text) => self.store_url(f, "store.url_file", text.trim()),
                Err(e) => {
                    self.problem(
                        f.span(),
                        "store.url_file",
                        format!("cannot read the file: {e} (found \"{}\")", f.get_ref()),
                    );
                    StoreConfig::default()
                }
            };
        }
        match &s.url {
            Some(u) => self.store_url(u, "store.url", u.get_ref()),
            None => StoreConfig::default(),
        }
    }

    /// `sqlite`, `sqlite:PATH`, or a `postgres://` / `postgresql://` URL with a host.
    fn store_url(&mut self, at: &Str, key: &str, url: &str) -> StoreConfig {
        if url == "sqlite" {
            return StoreConfig::Sqlite { path: None };
        }
        if let Some(path) = url.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
            return StoreConfig::Sqlite {
                path: Some(PathBuf::from(path)),
            };
        }
        let postgres = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "postgres" | "postgresql") && u.host_str().is_some());
        if postgres.is_some() {
            return StoreConfig::Postgres {
                url: url.to_owned(),
            };
        }
        self.problem(
            at.span(),
            key,
            format!(
                "must be \"sqlite\", \"sqlite:PATH\" or a PostgreSQL URL such as \"postgres://stepgate@db.internal/stepgate\" (found \"{}\")",
                redact_url(url)
            ),
        );
        StoreConfig::default()
    }
}
