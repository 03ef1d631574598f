//! `[store]`: where durable state lives.

use std::path::PathBuf;

use super::file::{self, Str};
use super::Validator;
use crate::store::{redact_url, StoreConfig};

impl Validator<'_> {
    pub(super) fn store(&mut self, s: file::StoreFile) -> StoreConfig {
        if let Some(r) = &s.redis_url {
            self.problem(
                r.span(),
                "store.redis_url",
                format!(
                    "Redis is not supported by this version: sessions, bans and challenges are shared through the database; remove the key (found \"{}\")",
                    redact_url(r.get_ref())
                ),
            );
        }
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
