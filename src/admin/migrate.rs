//! `stepgate admin migrate`: a gateway's embedded store (SQLite) copied into an empty
//! PostgreSQL database, for moving from one gateway to several (see docs/deployment.md).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use stepgate::config::Config;
use stepgate::store::postgres::Postgres;
use stepgate::store::{redact_url, StoreConfig};

use super::Output;

#[derive(Serialize)]
struct Report {
    from: String,
    to: String,
    rows: std::collections::BTreeMap<&'static str, u64>,
}

/// Copies the store `cfg` names (which must be SQLite) into the database at `to` (or the URL
/// in the file `to_file`).
pub fn run(cfg: &Config, to: Option<String>, to_file: Option<PathBuf>, out: Output) -> Result<()> {
    let from = match &cfg.store {
        StoreConfig::Sqlite { path } => path
            .clone()
            .unwrap_or_else(|| cfg.server.data_dir.join("stepgate.db")),
        StoreConfig::Postgres { .. } => bail!(
            "the configuration's store is already PostgreSQL; migrate copies the embedded \
             SQLite store, so run it with the configuration the gateway had before"
        ),
    };
    if !from.is_file() {
        bail!(
            "there is no SQLite store at {}: nothing to migrate",
            from.display()
        );
    }
    let to = match (to, to_file) {
        (Some(url), None) => url,
        (None, Some(file)) => std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_owned(),
        _ => bail!("give --to URL or --to-file FILE"),
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!(
            "{} is not a PostgreSQL URL (postgres://USER@HOST[:PORT]/DATABASE)",
            redact_url(&to)
        );
    }
    let shown = redact_url(&to);
    let db = Postgres::open(&to)?;
    let copied = db
        .import_sqlite(&from)
        .with_context(|| format!("nothing was copied into {shown}"))?;
    let mut text = format!("copied {} into {shown}:\n", from.display());
    for (table, rows) in &copied.0 {
        text.push_str(&format!("  {table:<12} {rows}\n"));
    }
    text.push_str(
        "next: set [store] url (or url_file) to this database, give every gateway the data \
         directory's keys (the keys/ directory and csrf.key), and start them\n",
    );
    out.print(
        &text,
        &Report {
            from: from.display().to_string(),
            to: shown,
            rows: copied.0.into_iter().collect(),
        },
    )
}
