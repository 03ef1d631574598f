//! Databases for tests: a SQLite store in a temporary directory, and a PostgreSQL database of
//! the test's own when a server is reachable (`STEPGATE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends.
//!
//! The set-up talks to the server with tokio-postgres, as the store does, on a thread and a
//! small runtime of its own: tests call it from inside their runtime, where blocking on another
//! runtime would panic.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use stepgate::store::{redact_url, Store, StoreConfig};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The embedded store under `dir`.
pub fn sqlite(dir: &Path) -> Store {
    Store::open(&StoreConfig::default(), dir).expect("the SQLite store opens")
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct Postgres {
    pub url: String,
    server: String,
    name: String,
}

impl Postgres {
    /// A fresh database for `test`, or `None` (the test skips, with the reason printed) when no
    /// PostgreSQL server is reachable and this is not CI. With `CI=true` a missing server fails.
    pub fn create(test: &str) -> Option<Postgres> {
        let server =
            std::env::var("STEPGATE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.into());
        // At most 63 bytes, PostgreSQL's limit for a name.
        let test_part: String = test.chars().take(40).collect();
        let name = format!("stepgate_{test_part}_{:08x}", rand::random::<u32>());
        let mut url = url::Url::parse(&server)
            .unwrap_or_else(|e| panic!("STEPGATE_TEST_POSTGRES must be a postgres:// URL: {e}"));
        url.set_path(&format!("/{name}"));

        let (admin, created) = (server.clone(), name.clone());
        let outcome = on_the_side(async move {
            let client = connect(&admin).await.map_err(Unreachable)?;
            client
                .batch_execute(&format!("CREATE DATABASE \"{created}\""))
                .await
                .map_err(|e| Failed(format!("cannot create database {created}: {}", chain(e))))
        });
        match outcome {
            Ok(()) => Some(Postgres {
                url: url.to_string(),
                server,
                name,
            }),
            Err(Unreachable(reason)) => {
                assert!(!super::ci(), "CI must run {test} on PostgreSQL: {reason}");
                // Straight to stderr, past the test harness's capture: a skip must show in a
                // plain `cargo test`, or a green run would hide that PostgreSQL went untested.
                let _ = writeln!(std::io::stderr(), "skipping {test} on PostgreSQL: {reason}");
                None
            }
            Err(Failed(reason)) => panic!("{reason}"),
        }
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

    /// Cuts the test's database off (`true`: no new connections, every open one ended) or lets
    /// it take connections again (`false`): PostgreSQL down and back, for this database only.
    pub fn cut_off(&self, cut: bool) {
        let (server, name) = (self.server.clone(), self.name.clone());
        on_the_side(async move {
            let client = connect(&server).await?;
            client
                .batch_execute(&format!(
                    "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {}",
                    !cut
                ))
                .await
                .map_err(chain)?;
            if cut {
                client
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ))
                    .await
                    .map_err(chain)?;
            }
            Ok::<_, String>(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs one statement in the test's database; the number of rows it changed or returned.
    pub fn execute(&self, sql: &str) -> u64 {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_the_side(async move {
            let client = connect(&url).await?;
            client.execute(sql.as_str(), &[]).await.map_err(chain)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A table locked by another session until this is dropped: every statement on it waits.
pub struct Locked {
    release: Option<tokio::sync::oneshot::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl Postgres {
    /// Takes `table` in ACCESS EXCLUSIVE mode in an open transaction: PostgreSQL slow to the
    /// point of hanging, for the statements that need that table. Returns once it holds it.
    pub fn lock(&self, table: &str) -> Locked {
        let (url, table) = (self.url.clone(), table.to_owned());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let holder = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the lock")
                .block_on(async move {
                    let client = connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
                    client
                        .batch_execute(&format!(
                            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("{}", chain(e)));
                    let _ = held_tx.send(());
                    let _ = released.await;
                    let _ = client.batch_execute("ROLLBACK").await;
                })
        });
        held_rx.recv().expect("the lock is taken");
        Locked {
            release: Some(release),
            holder: Some(holder),
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = on_the_side(async move {
            let client = connect(&server).await?;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .map_err(chain)
        });
        // Never panic here: the test may be unwinding already.
        if let Err(e) = dropped {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

enum Problem {
    /// No server to talk to: the test may skip.
    Unreachable(String),
    /// A server that answered wrongly: the test fails.
    Failed(String),
}
use Problem::{Failed, Unreachable};

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let shown = redact_url(url);
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| format!("no answer from {shown} within 5 s"))?
        .map_err(|e| format!("cannot connect to {shown}: {}", chain(e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// An error and its causes on one line (tokio-postgres puts the server's words in a cause).
fn chain(e: tokio_postgres::Error) -> String {
    format!("{:#}", anyhow::Error::new(e))
}

/// Runs `work` to its end on a thread and runtime of its own.
fn on_the_side<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test's database work")
            .block_on(work)
    })
    .join()
    .expect("the test's database work does not panic")
}
