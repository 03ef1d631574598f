//! Databases for tests: a SQLite store in a temporary directory, and a PostgreSQL database of
//! the test's own when a server is reachable.

use std::path::Path;

use stepgate::store::{Store, StoreConfig};

/// The embedded store under `dir`.
pub fn sqlite(dir: &Path) -> Store {
    Store::open(&StoreConfig::default(), dir).expect("the SQLite store opens")
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct Postgres {
    pub url: String,
}

impl Postgres {
    /// A fresh database for `test`, or `None` (the test skips, with the reason printed) when no
    /// PostgreSQL server is reachable and this is not CI. With `CI=true` a missing server fails.
    pub fn create(test: &str) -> Option<Postgres> {
        let reason = "the PostgreSQL backend is not built yet";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the PostgreSQL tests: {reason}"
        );
        eprintln!("skipping {test} on PostgreSQL: {reason}");
        None
    }

    pub fn store(&self) -> Store {
        Store::open(
            &StoreConfig::Postgres {
                url: self.url.clone(),
            },
            Path::new("."),
        )
        .expect("the PostgreSQL store opens")
    }
}
