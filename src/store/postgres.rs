//! PostgreSQL, for several gateways sharing one database. It owns a small tokio runtime of its
//! own (threads `stepgate-postgres`): the pool's connection tasks and the session listener live
//! there, and every trait method runs its database work there while the caller only awaits the
//! answer. pingora runs each worker on its own runtime, and tests start and stop gateways, so a
//! connection tied to a caller's runtime would die with it; this one outlives every caller.
//!
//! Trade-offs, written down:
//! - Pool: at most [`POOL_SIZE`] connections per gateway, opened on demand. Checking one out
//!   only checks that it is not closed ("fast" recycling): after the server restarts, the first
//!   statement on each stale connection fails, and its caller fails closed, rather than every
//!   request paying a round trip to test its connection first.
//! - Timeouts: connecting gives up after [`CONNECT_TIMEOUT`]; waiting for a free connection too;
//!   a whole call (checkout and statements) after [`CALL_TIMEOUT`], and the caller gets an
//!   error. A statement abandoned that way may still finish on the server: a timeout says "not
//!   known", never "not done", so callers fail closed and never take it as a refusal. There is
//!   no server-side `statement_timeout`; an operator may set one on the role.
//! - Races: `advance_counter`, `consume` and `replace_challenge` are one conditional `UPDATE`
//!   each, so among gateways racing for one use exactly one sees a row changed. `write` is one
//!   transaction; an `InsertNew` that finds its row rolls the whole batch back.
//! - Session events: the statements that end sessions also `NOTIFY stepgate_sessions` with
//!   each key, in the same statement (so in the same transaction): a notification is delivered
//!   only if the delete committed. Delivery is at most once; see `events` for how a listener that
//!   was away says so.
//! - TLS: not built in. A URL asking for `sslmode` other than `disable` is refused, rather than
//!   silently talking plain text to a server the operator meant to reach over TLS; reach a
//!   remote database over a tunnel or a local socket.
//! - Errors never contain the URL's password (see `redact_url`).

mod events;
mod schema;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::sync::broadcast;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    from_sql, redact_url, session_key, to_sql, AuditEvent, AuditLog, Backend, BanRecord, BanStore,
    Challenge, ChallengeStore, OwnedRuntime, Result, SessionEvent, SessionKey, SessionRecord,
    SessionStore, StoreError,
};

/// Connections per gateway. Statements are short; a handful serve a busy gateway, and several
/// gateways together stay far below PostgreSQL's default of 100 connections.
pub const POOL_SIZE: usize = 8;
/// For one new connection (unless the URL sets `connect_timeout`), and for a free pooled one.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// For one whole call: checkout and statements.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening also migrates, which may wait for another gateway's migration.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Session events buffered per receiver before it lags.
const EVENTS: usize = 1024;

pub struct Postgres {
    pool: Pool,
    events: broadcast::Sender<SessionEvent>,
    // Last, so that it is dropped after the pool.
    runtime: OwnedRuntime,
}

fn fault(message: impl Into<String>) -> StoreError {
    StoreError::Backend {
        backend: "postgres",
        message: message.into(),
    }
}

/// An error and its causes on one line (tokio-postgres puts the server's message in a cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        fault(chain(&e))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => e.into(),
        e => fault(chain(&e)),
    }
}

/// The URL as tokio-postgres reads it, with stepgate's defaults; refuses TLS it cannot do.
fn config_of(url: &str) -> Result<tokio_postgres::Config> {
    let shown = redact_url(url);
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| fault(format!("cannot read {shown}: {}", chain(&e))))?;
    let asked = url::Url::parse(url).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned())
    });
    if config.get_ssl_mode() == SslMode::Require || asked.is_some_and(|mode| mode != "disable") {
        return Err(fault(format!(
            "{shown} asks for TLS (sslmode), which this stepgate does not build in; \
             use sslmode=disable over a tunnel or a local socket"
        )));
    }
    config.ssl_mode(SslMode::Disable);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("stepgate");
    }
    Ok(config)
}

impl Postgres {
    /// Connects, migrates and starts the session listener; blocks the calling thread until
    /// done. Call it at start-up (or from the admin CLI), never on a request path. It works
    /// from inside a runtime too: the work runs on the store's own runtime while this thread
    /// waits on a plain channel (`Runtime::block_on` would panic there).
    pub fn open(url: &str) -> Result<Postgres> {
        let config = config_of(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stepgate-postgres")
            .enable_all()
            .build()
            .map_err(|e| fault(format!("cannot start the store's runtime: {e}")))?;
        let runtime = OwnedRuntime(Some(runtime));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| fault(format!("cannot build the connection pool: {e}")))?;
        let (events, _) = broadcast::channel(EVENTS);

        let (done, answer) = std::sync::mpsc::channel();
        let setup = {
            let (pool, events) = (pool.clone(), events.clone());
            let mut listener = config;
            listener.application_name(events::APPLICATION_NAME);
            async move {
                let mut client = pool.get().await.map_err(pool_error)?;
                schema::migrate(&mut client).await?;
                let first = events::subscribe(&listener, &events).await?;
                tokio::spawn(events::run(listener, events, first));
                Ok(())
            }
        };
        runtime
            .handle()
            .ok_or(StoreError::Closed)?
            .spawn(async move {
                let out = tokio::time::timeout(OPEN_TIMEOUT, setup)
                    .await
                    .unwrap_or_else(|_| {
                        Err(fault(format!(
                            "no answer within {OPEN_TIMEOUT:?} while connecting and migrating"
                        )))
                    });
                let _ = done.send(out);
            });
        answer
            .recv()
            .map_err(|_| StoreError::Closed)?
            .map_err(|e| match e {
                StoreError::Backend { message, .. } => {
                    fault(format!("opening {}: {message}", redact_url(url)))
                }
                e => e,
            })?;
        Ok(Postgres {
            pool,
            events,
            runtime,
        })
    }

    /// Runs `job` with a pooled connection on the store's runtime, within [`CALL_TIMEOUT`].
    /// If the caller stops waiting, the job still runs to its end (a transaction is never left
    /// half done by a cancelled request).
    async fn call<T, F, Fut>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let work = async move {
            let client = pool.get().await.map_err(pool_error)?;
            job(client).await
        };
        let started = std::time::Instant::now();
        let task = self
            .runtime
            .handle()
            .ok_or(StoreError::Closed)?
            .spawn(async move {
                tokio::time::timeout(CALL_TIMEOUT, work)
                    .await
                    .unwrap_or_else(|_| Err(fault(format!("no answer within {CALL_TIMEOUT:?}"))))
            });
        let out = task.await.map_err(|e| {
            if e.is_panic() {
                tracing::error!(target: "stepgate::store", "a database job panicked");
            }
            StoreError::Closed
        });
        let out = out.and_then(|inner| inner);
        crate::metrics::store_call("postgres", started.elapsed(), out.is_err());
        out
    }

    /// One statement; the number of rows it changed.
    async fn execute(&self, sql: &'static str, args: Vec<Arg>) -> Result<u64> {
        self.call(move |c| async move {
            let statement = c.prepare_cached(sql).await?;
            Ok(c.execute(&statement, &refs(&args)).await?)
        })
        .await
    }

    /// One statement; the rows it returned.
    async fn query(&self, sql: &'static str, args: Vec<Arg>) -> Result<Vec<Row>> {
        self.call(move |c| async move {
            let statement = c.prepare_cached(sql).await?;
            Ok(c.query(&statement, &refs(&args)).await?)
        })
        .await
    }

    async fn query_opt(&self, sql: &'static str, args: Vec<Arg>) -> Result<Option<Row>> {
        let mut rows = self.query(sql, args).await?;
        Ok(rows.pop())
    }

    async fn query_one(&self, sql: &'static str, args: Vec<Arg>) -> Result<Row> {
        self.query_opt(sql, args)
            .await?
            .ok_or_else(|| fault("a statement that always returns a row returned none"))
    }
}

/// A statement argument that can travel to the store's runtime.
type Arg = Box<dyn ToSql + Sync + Send>;

macro_rules! args {
    ($($arg:expr),* $(,)?) => { vec![$(Box::new($arg) as Arg),*] };
}

// After `args!`, which it uses.
mod credentials;
pub mod import;

fn refs(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn session_events(&self) -> Option<broadcast::Receiver<SessionEvent>> {
        Some(self.events.subscribe())
    }
}

/// Deletes the sessions `$filter` selects and announces each one's key, in one statement: the
/// notifications go out only if the delete commits.
macro_rules! end_sessions {
    ($filter:literal) => {
        concat!(
            "WITH gone AS (DELETE FROM sessions WHERE ",
            $filter,
            " RETURNING key) SELECT gone.key FROM gone, pg_notify('",
            events::channel!(),
            "', encode(gone.key, 'hex'))"
        )
    };
}

/// What `session_row` reads, in its order.
macro_rules! session_columns {
    () => {
        r#""user", amr, created_ms, auth_ms, last_seen_ms, deferred, persistent, needs_check, client, agent, trusted"#
    };
}

fn session_row(row: &Row, at: usize) -> Result<SessionRecord> {
    Ok(SessionRecord {
        user: row.try_get(at)?,
        amr: row.try_get(at + 1)?,
        created_ms: from_sql(row.try_get(at + 2)?),
        auth_ms: from_sql(row.try_get(at + 3)?),
        last_seen_ms: from_sql(row.try_get(at + 4)?),
        deferred: row.try_get(at + 5)?,
        persistent: row.try_get(at + 6)?,
        needs_check: row.try_get(at + 7)?,
        client: row.try_get(at + 8)?,
        agent: row.try_get(at + 9)?,
        trusted: row.try_get(at + 10)?,
    })
}

fn keys_of(rows: &[Row]) -> Result<Vec<SessionKey>> {
    rows.iter()
        .map(|row| session_key(row.try_get::<_, &[u8]>(0)?))
        .collect()
}

fn count(row: &Row) -> Result<u64> {
    Ok(from_sql(row.try_get(0)?))
}

fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[async_trait]
impl SessionStore for Postgres {
    async fn put_session(&self, key: &SessionKey, r: &SessionRecord) -> Result<()> {
        const SQL: &str = concat!(
            "INSERT INTO sessions (key, ",
            session_columns!(),
            r#") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (key) DO UPDATE SET "user" = excluded."user", amr = excluded.amr,
                   created_ms = excluded.created_ms, auth_ms = excluded.auth_ms,
                   last_seen_ms = excluded.last_seen_ms, deferred = excluded.deferred,
                   persistent = excluded.persistent, needs_check = excluded.needs_check,
                   client = excluded.client, agent = excluded.agent,
                   trusted = excluded.trusted"#
        );
        self.execute(
            SQL,
            args![
                key.to_vec(),
                r.user.clone(),
                r.amr.clone(),
                to_sql(r.created_ms),
                to_sql(r.auth_ms),
                to_sql(r.last_seen_ms),
                r.deferred,
                r.persistent,
                r.needs_check,
                r.client.clone(),
                r.agent.clone(),
                r.trusted.clone()
            ],
        )
        .await?;
        Ok(())
    }

    async fn session(&self, key: &SessionKey) -> Result<Option<SessionRecord>> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE key = $1"
        );
        self.query_opt(SQL, args![key.to_vec()])
            .await?
            .map(|row| session_row(&row, 0))
            .transpose()
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool> {
        let rows = self
            .query(end_sessions!("key = $1"), args![key.to_vec()])
            .await?;
        Ok(!rows.is_empty())
    }

    async fn sessions_of(&self, user: &str) -> Result<Vec<(SessionKey, SessionRecord)>> {
        const SQL: &str = concat!(
            "SELECT key, ",
            session_columns!(),
            r#" FROM sessions WHERE "user" = $1 ORDER BY created_ms, key"#
        );
        let rows = self.query(SQL, args![user.to_owned()]).await?;
        rows.iter()
            .map(|row| Ok((session_key(row.try_get(0)?)?, session_row(row, 1)?)))
            .collect()
    }

    async fn delete_sessions_of(
        &self,
        user: &str,
        except: Option<&SessionKey>,
    ) -> Result<Vec<SessionKey>> {
        let keep = except.map(|k| k.to_vec()).unwrap_or_default();
        let rows = self
            .query(
                end_sessions!(r#""user" = $1 AND key <> $2"#),
                args![user.to_owned(), keep],
            )
            .await?;
        keys_of(&rows)
    }

    async fn touch_sessions(&self, seen: &[(SessionKey, u64)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = seen.iter().map(|(k, _)| k.to_vec()).collect();
        let times: Vec<i64> = seen.iter().map(|(_, ms)| to_sql(*ms)).collect();
        // One statement for the batch; a key given twice counts with its largest time.
        self.execute(
            "UPDATE sessions SET last_seen_ms = t.ms
             FROM (SELECT key, max(ms) AS ms FROM unnest($1::bytea[], $2::bigint[]) AS u(key, ms)
                   GROUP BY key) AS t
             WHERE sessions.key = t.key AND sessions.last_seen_ms < t.ms",
            args![keys, times],
        )
        .await?;
        Ok(())
    }

    async fn purge_sessions(
        &self,
        created_before: u64,
        seen_before: u64,
        saved_before: u64,
    ) -> Result<Vec<SessionKey>> {
        let rows = self
            .query(
                end_sessions!(
                    "(NOT persistent AND (created_ms < $1 OR last_seen_ms < $2))
                     OR (persistent AND created_ms < $3)"
                ),
                args![
                    to_sql(created_before),
                    to_sql(seen_before),
                    to_sql(saved_before)
                ],
            )
            .await?;
        keys_of(&rows)
    }

    async fn count_sessions(&self) -> Result<u64> {
        count(
            &self
                .query_one("SELECT COUNT(*) FROM sessions", args![])
                .await?,
        )
    }
}

#[async_trait]
impl ChallengeStore for Postgres {
    async fn challenge(&self, key: &str, now: u64) -> Result<Option<Challenge>> {
        let Some(row) = self
            .query_opt(
                r#"SELECT "user", kind, data, expires_ms, version FROM challenges
                   WHERE key = $1 AND expires_ms > $2"#,
                args![key.to_owned(), to_sql(now)],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Challenge {
            user: row.try_get(0)?,
            kind: row.try_get(1)?,
            data: row.try_get(2)?,
            expires_ms: from_sql(row.try_get(3)?),
            version: from_sql(row.try_get(4)?),
        }))
    }

    async fn put_challenge(&self, key: &str, ch: &Challenge) -> Result<u64> {
        let row = self
            .query_one(
                r#"INSERT INTO challenges (key, "user", kind, data, expires_ms, version)
                   VALUES ($1, $2, $3, $4, $5, 1)
                   ON CONFLICT (key) DO UPDATE SET "user" = excluded."user", kind = excluded.kind,
                       data = excluded.data, expires_ms = excluded.expires_ms,
                       version = challenges.version + 1
                   RETURNING version"#,
                args![
                    key.to_owned(),
                    ch.user.clone(),
                    ch.kind.clone(),
                    ch.data.clone(),
                    to_sql(ch.expires_ms)
                ],
            )
            .await?;
        count(&row)
    }

    async fn replace_challenge(&self, key: &str, expected: u64, ch: &Challenge) -> Result<bool> {
        let n = self
            .execute(
                r#"UPDATE challenges SET "user" = $3, kind = $4, data = $5, expires_ms = $6,
                       version = version + 1
                   WHERE key = $1 AND version = $2"#,
                args![
                    key.to_owned(),
                    to_sql(expected),
                    ch.user.clone(),
                    ch.kind.clone(),
                    ch.data.clone(),
                    to_sql(ch.expires_ms)
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_challenge(&self, key: &str) -> Result<()> {
        self.execute(
            "DELETE FROM challenges WHERE key = $1",
            args![key.to_owned()],
        )
        .await?;
        Ok(())
    }

    async fn take_challenge(&self, key: &str, now: u64) -> Result<Option<Challenge>> {
        let Some(row) = self
            .query_opt(
                r#"DELETE FROM challenges WHERE key = $1
                   RETURNING "user", kind, data, expires_ms, version"#,
                args![key.to_owned()],
            )
            .await?
        else {
            return Ok(None);
        };
        let taken = Challenge {
            user: row.try_get(0)?,
            kind: row.try_get(1)?,
            data: row.try_get(2)?,
            expires_ms: from_sql(row.try_get(3)?),
            version: from_sql(row.try_get(4)?),
        };
        Ok(Some(taken).filter(|ch| ch.expires_ms > now))
    }

    async fn delete_challenges_of(&self, user: &str) -> Result<u64> {
        self.execute(
            r#"DELETE FROM challenges WHERE "user" = $1"#,
            args![user.to_owned()],
        )
        .await
    }

    async fn count_challenges(&self, prefix: &str, now: u64) -> Result<u64> {
        let row = self
            .query_one(
                "SELECT COUNT(*) FROM challenges WHERE starts_with(key, $1) AND expires_ms > $2",
                args![prefix.to_owned(), to_sql(now)],
            )
            .await?;
        count(&row)
    }

    async fn purge_challenges(&self, now: u64) -> Result<u64> {
        self.execute(
            "DELETE FROM challenges WHERE expires_ms <= $1",
            args![to_sql(now)],
        )
        .await
    }
}

#[async_trait]
impl BanStore for Postgres {
    async fn put_ban(&self, ban: &BanRecord) -> Result<()> {
        self.execute(
            "INSERT INTO bans (scope, key, until_ms, level) VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, key) DO UPDATE SET until_ms = excluded.until_ms,
                 level = excluded.level",
            args![
                ban.scope.clone(),
                ban.key.clone(),
                to_sql(ban.until_ms),
                i64::from(ban.level)
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_ban(&self, scope: &str, key: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM bans WHERE scope = $1 AND key = $2",
                args![scope.to_owned(), key.to_owned()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn active_bans(&self, now: u64) -> Result<Vec<BanRecord>> {
        let rows = self
            .query(
                "SELECT scope, key, until_ms, level FROM bans WHERE until_ms > $1
                 ORDER BY scope, key",
                args![to_sql(now)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(BanRecord {
                    scope: row.try_get(0)?,
                    key: row.try_get(1)?,
                    until_ms: from_sql(row.try_get(2)?),
                    level: small(row.try_get(3)?),
                })
            })
            .collect()
    }

    async fn purge_bans(&self, now: u64) -> Result<u64> {
        self.execute("DELETE FROM bans WHERE until_ms <= $1", args![to_sql(now)])
            .await
    }
}

#[async_trait]
impl AuditLog for Postgres {
    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        self.execute(
            r#"INSERT INTO audit (at_ms, "user", event, client, detail) VALUES ($1, $2, $3, $4, $5)"#,
            args![
                to_sql(e.at_ms),
                e.user.clone(),
                e.event.clone(),
                e.client.clone(),
                e.detail.clone()
            ],
        )
        .await?;
        Ok(())
    }

    async fn audit_of(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                r#"SELECT at_ms, "user", event, client, detail FROM audit WHERE "user" = $1
                   ORDER BY at_ms DESC, id DESC LIMIT $2"#,
                args![user.to_owned(), limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    at_ms: from_sql(row.try_get(0)?),
                    user: row.try_get(1)?,
                    event: row.try_get(2)?,
                    client: row.try_get(3)?,
                    detail: row.try_get(4)?,
                })
            })
            .collect()
    }

    async fn purge_audit(&self, before: u64) -> Result<u64> {
        self.execute("DELETE FROM audit WHERE at_ms < $1", args![to_sql(before)])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        match Postgres::open(url) {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_failure_to_connect_never_shows_the_password() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let shown = refused("postgres://stepgate:s3cret@127.0.0.1:1/stepgate");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
    }

    #[test]
    fn tls_is_refused_rather_than_skipped() {
        for mode in ["require", "prefer"] {
            let shown = refused(&format!(
                "postgres://stepgate:s3cret@db.internal/stepgate?sslmode={mode}"
            ));
            assert!(shown.contains("sslmode"), "{shown}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }
}
