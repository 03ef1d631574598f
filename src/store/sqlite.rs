//! The embedded default: one SQLite file (`<data dir>/stepgate.db`) in WAL mode, owned by one
//! thread of the store's own. Callers send it a closure and await the answer, so no SQLite call
//! ever blocks a pingora worker, and statements never interleave (SQLite serialises writes
//! anyway; one connection also makes every read see every committed write).
//!
//! The file and its `-wal`/`-shm` companions are created owner-only (0600), and an existing file
//! is tightened to that: it holds session keys, sealed secrets and hashes.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{
    from_sql, session_key, to_sql, AccountRecord, AuditEvent, AuditLog, Backend, BanRecord,
    BanStore, Challenge, ChallengeStore, Credential, CredentialStore, Result, SessionKey,
    SessionRecord, SessionStore, StoreError, Write,
};

pub(crate) mod schema;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Jobs waiting for the database thread; senders wait (asynchronously) beyond this.
const QUEUE: usize = 4096;

pub struct Sqlite {
    jobs: mpsc::Sender<Job>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend {
            backend: "sqlite",
            message: e.to_string(),
        }
    }
}

/// Owner read/write only, for the database and its companions; a missing file is skipped.
fn tighten(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(StoreError::Files {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl Sqlite {
    /// Opens (creating, owner-only) the database file and migrates it; starts its thread.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|cause| StoreError::Files {
                    path: path.to_path_buf(),
                    cause,
                })?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        // SQLite makes its companions with the main file's mode, but older ones may be looser.
        for p in [
            path.to_path_buf(),
            companion(path, "-wal"),
            companion(path, "-shm"),
        ] {
            tighten(&p)?;
        }
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("stepgate-sqlite".into())
            .spawn(move || {
                // Ends when every sender (every clone of the store) is gone.
                while let Some(job) = queue.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|cause| StoreError::Files {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(Sqlite { jobs })
    }

    /// Runs `f` on the database thread and waits for its answer without blocking the caller's
    /// thread. A panic in `f` is contained to that job (the caller sees `Closed`).
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            let _ = tx.send(out.unwrap_or_else(|_| {
                tracing::error!(target: "stepgate::store", "a database job panicked");
                Err(StoreError::Closed)
            }));
        });
        let started = std::time::Instant::now();
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        let out = rx.await.map_err(|_| StoreError::Closed)?;
        crate::metrics::store_call("sqlite", started.elapsed(), out.is_err());
        out
    }
}

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
}

fn session_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        user: row.get(at)?,
        amr: row.get(at + 1)?,
        created_ms: from_sql(row.get(at + 2)?),
        auth_ms: from_sql(row.get(at + 3)?),
        last_seen_ms: from_sql(row.get(at + 4)?),
        deferred: row.get::<_, i64>(at + 5)? != 0,
        persistent: row.get::<_, i64>(at + 6)? != 0,
        needs_check: row.get::<_, i64>(at + 7)? != 0,
        client: row.get(at + 8)?,
        agent: row.get(at + 9)?,
        trusted: row.get(at + 10)?,
    })
}

const SESSION_COLUMNS: &str =
    "user, amr, created_ms, auth_ms, last_seen_ms, deferred, persistent, needs_check, client, agent, trusted";

fn keys_of(rows: Vec<Vec<u8>>) -> Result<Vec<SessionKey>> {
    rows.iter().map(|k| session_key(k)).collect()
}

#[async_trait]
impl SessionStore for Sqlite {
    async fn put_session(&self, key: &SessionKey, r: &SessionRecord) -> Result<()> {
        let (key, r) = (*key, r.clone());
        self.call(move |c| {
            c.execute(
                &format!(
                    "INSERT OR REPLACE INTO sessions (key, {SESSION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    &key[..],
                    r.user,
                    r.amr,
                    to_sql(r.created_ms),
                    to_sql(r.auth_ms),
                    to_sql(r.last_seen_ms),
                    i64::from(r.deferred),
                    i64::from(r.persistent),
                    i64::from(r.needs_check),
                    r.client,
                    r.agent,
                    r.trusted
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, key: &SessionKey) -> Result<Option<SessionRecord>> {
        let key = *key;
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?1"),
                params![&key[..]],
                |row| session_row(row, 0),
            )
            .optional()?)
        })
        .await
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool> {
        let key = *key;
        self.call(move |c| {
            Ok(c.execute("DELETE FROM sessions WHERE key = ?1", params![&key[..]])? > 0)
        })
        .await
    }

    async fn sessions_of(&self, user: &str) -> Result<Vec<(SessionKey, SessionRecord)>> {
        let user = user.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT key, {SESSION_COLUMNS} FROM sessions WHERE user = ?1 ORDER BY created_ms"
            ))?;
            let rows = stmt.query_map(params![user], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, session_row(row, 1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (key, record) = row?;
                out.push((session_key(&key)?, record));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_sessions_of(
        &self,
        user: &str,
        except: Option<&SessionKey>,
    ) -> Result<Vec<SessionKey>> {
        let (user, except) = (user.to_owned(), except.copied());
        self.call(move |c| {
            let keep = except.map(|k| k.to_vec()).unwrap_or_default();
            let mut stmt =
                c.prepare("DELETE FROM sessions WHERE user = ?1 AND key != ?2 RETURNING key")?;
            let rows = stmt
                .query_map(params![user, keep], |row| row.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            keys_of(rows)
        })
        .await
    }

    async fn touch_sessions(&self, seen: &[(SessionKey, u64)]) -> Result<()> {
        let seen = seen.to_vec();
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare(
                    "UPDATE sessions SET last_seen_ms = ?2 WHERE key = ?1 AND last_seen_ms < ?2",
                )?;
                for (key, ms) in &seen {
                    stmt.execute(params![&key[..], to_sql(*ms)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn purge_sessions(
        &self,
        created_before: u64,
        seen_before: u64,
        saved_before: u64,
    ) -> Result<Vec<SessionKey>> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "DELETE FROM sessions
                 WHERE (persistent = 0 AND (created_ms < ?1 OR last_seen_ms < ?2))
                    OR (persistent = 1 AND created_ms < ?3)
                 RETURNING key",
            )?;
            let rows = stmt
                .query_map(
                    params![
                        to_sql(created_before),
                        to_sql(seen_before),
                        to_sql(saved_before)
                    ],
                    |row| row.get::<_, Vec<u8>>(0),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            keys_of(rows)
        })
        .await
    }

    async fn count_sessions(&self) -> Result<u64> {
        self.call(|c| {
            Ok(from_sql(c.query_row(
                "SELECT COUNT(*) FROM sessions",
                [],
                |r| r.get(0),
            )?))
        })
        .await
    }
}

fn credential_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Credential> {
    Ok(Credential {
        user: row.get(0)?,
        kind: row.get(1)?,
        id: row.get(2)?,
        secret: row.get(3)?,
        counter: from_sql(row.get(4)?),
        created_ms: from_sql(row.get(5)?),
        used_ms: row.get::<_, Option<i64>>(6)?.map(from_sql),
        expires_ms: row.get::<_, Option<i64>>(7)?.map(from_sql),
        data: row.get(8)?,
    })
}

/// Applies one write inside the batch's transaction; `false` abandons the batch.
fn apply(tx: &rusqlite::Transaction<'_>, w: &Write) -> Result<bool> {
    let cred_params = |c: &Credential| {
        (
            c.user.clone(),
            c.kind.clone(),
            c.id.clone(),
            c.secret.clone(),
            to_sql(c.counter),
            to_sql(c.created_ms),
            c.used_ms.map(to_sql),
            c.expires_ms.map(to_sql),
            c.data.clone(),
        )
    };
    match w {
        Write::InsertNew(c) => {
            let p = cred_params(c);
            let n = tx.execute(
                "INSERT INTO credentials (user, kind, id, secret, counter, created_ms, used_ms, expires_ms, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                params![p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8],
            )?;
            Ok(n == 1)
        }
        Write::Put(c) => {
            let p = cred_params(c);
            tx.execute(
                "INSERT OR REPLACE INTO credentials (user, kind, id, secret, counter, created_ms, used_ms, expires_ms, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8],
            )?;
            Ok(true)
        }
        Write::ReplaceExisting(c) => {
            let p = cred_params(c);
            let n = tx.execute(
                "UPDATE credentials SET secret = ?4, counter = ?5, created_ms = ?6, used_ms = ?7,
                     expires_ms = ?8, data = ?9
                 WHERE user = ?1 AND kind = ?2 AND id = ?3",
                params![p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8],
            )?;
            Ok(n == 1)
        }
        Write::DeleteOne { user, kind, id } => {
            tx.execute(
                "DELETE FROM credentials WHERE user = ?1 AND kind = ?2 AND id = ?3",
                params![user, kind, id],
            )?;
            Ok(true)
        }
        Write::DeleteKinds { user, kinds } => {
            let mut stmt = tx.prepare("DELETE FROM credentials WHERE user = ?1 AND kind = ?2")?;
            for kind in kinds {
                stmt.execute(params![user, kind])?;
            }
            Ok(true)
        }
        Write::SetEmergencyEmail { user, email, at_ms } => {
            tx.execute(
                "INSERT INTO accounts (user, emergency_email, emergency_verified_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(user) DO UPDATE SET emergency_email = excluded.emergency_email,
                                                 emergency_verified_ms = excluded.emergency_verified_ms",
                params![user, email, email.as_ref().map(|_| to_sql(*at_ms))],
            )?;
            Ok(true)
        }
        Write::ClearGuideSkips { user } => {
            tx.execute(
                "UPDATE accounts SET guide_skips = 0 WHERE user = ?1",
                params![user],
            )?;
            Ok(true)
        }
        Write::SetPassword {
            user,
            hash,
            base,
            at_ms,
        } => {
            tx.execute(
                "INSERT INTO accounts (user, password_hash, password_base, password_changed_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(user) DO UPDATE SET password_hash = excluded.password_hash,
                     password_base = excluded.password_base,
                     password_changed_ms = excluded.password_changed_ms",
                params![user, hash, base, to_sql(*at_ms)],
            )?;
            Ok(true)
        }
        Write::SetLocked { user, at_ms } => {
            tx.execute(
                "INSERT INTO accounts (user, locked_ms) VALUES (?1, ?2)
                 ON CONFLICT(user) DO UPDATE SET locked_ms = excluded.locked_ms",
                params![user, at_ms.map(to_sql)],
            )?;
            Ok(true)
        }
    }
}

#[async_trait]
impl CredentialStore for Sqlite {
    async fn credentials(&self, user: &str, kind: Option<&str>) -> Result<Vec<Credential>> {
        let (user, kind) = (user.to_owned(), kind.map(str::to_owned));
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT user, kind, id, secret, counter, created_ms, used_ms, expires_ms, data
                 FROM credentials WHERE user = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY kind, id",
            )?;
            let rows = stmt.query_map(params![user, kind], credential_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn credentials_by_id(&self, kind: &str, id: &str) -> Result<Vec<Credential>> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT user, kind, id, secret, counter, created_ms, used_ms, expires_ms, data
                 FROM credentials WHERE kind = ?1 AND id = ?2 ORDER BY user",
            )?;
            let rows = stmt.query_map(params![kind, id], credential_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn write(&self, batch: Vec<Write>) -> Result<bool> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for w in &batch {
                if !apply(&tx, w)? {
                    return Ok(false); // dropping `tx` rolls back
                }
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn advance_counter(
        &self,
        user: &str,
        kind: &str,
        id: &str,
        secret: &[u8],
        new: u64,
    ) -> Result<bool> {
        let (user, kind, id, secret) = (
            user.to_owned(),
            kind.to_owned(),
            id.to_owned(),
            secret.to_vec(),
        );
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE credentials SET counter = ?5
                 WHERE user = ?1 AND kind = ?2 AND id = ?3 AND secret = ?4 AND counter < ?5",
                params![user, kind, id, secret, to_sql(new)],
            )? == 1)
        })
        .await
    }

    async fn consume(&self, user: &str, kind: &str, id: &str, now: u64) -> Result<bool> {
        let (user, kind, id) = (user.to_owned(), kind.to_owned(), id.to_owned());
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE credentials SET used_ms = ?4
                 WHERE user = ?1 AND kind = ?2 AND id = ?3 AND used_ms IS NULL
                   AND (expires_ms IS NULL OR expires_ms > ?4)",
                params![user, kind, id, to_sql(now)],
            )? == 1)
        })
        .await
    }

    async fn delete_credential(&self, user: &str, kind: &str, id: &str) -> Result<bool> {
        let (user, kind, id) = (user.to_owned(), kind.to_owned(), id.to_owned());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM credentials WHERE user = ?1 AND kind = ?2 AND id = ?3",
                params![user, kind, id],
            )? == 1)
        })
        .await
    }

    async fn account(&self, user: &str) -> Result<AccountRecord> {
        let user = user.to_owned();
        self.call(move |c| {
            let found = c
                .query_row(
                    "SELECT emergency_email, emergency_verified_ms, guide_skips, password_hash,
                            password_base, password_changed_ms, locked_ms
                     FROM accounts WHERE user = ?1",
                    params![user],
                    |row| {
                        Ok(AccountRecord {
                            emergency_email: row.get(0)?,
                            emergency_verified_ms: row.get::<_, Option<i64>>(1)?.map(from_sql),
                            guide_skips: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                            password_hash: row.get(3)?,
                            password_base: row.get(4)?,
                            password_changed_ms: row.get::<_, Option<i64>>(5)?.map(from_sql),
                            locked_ms: row.get::<_, Option<i64>>(6)?.map(from_sql),
                        })
                    },
                )
                .optional()?;
            Ok(found.unwrap_or_default())
        })
        .await
    }

    async fn add_guide_skip(&self, user: &str) -> Result<u32> {
        let user = user.to_owned();
        self.call(move |c| {
            let n: i64 = c.query_row(
                "INSERT INTO accounts (user, guide_skips) VALUES (?1, 1)
                 ON CONFLICT(user) DO UPDATE SET guide_skips = guide_skips + 1
                 RETURNING guide_skips",
                params![user],
                |row| row.get(0),
            )?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .await
    }
}

#[async_trait]
impl ChallengeStore for Sqlite {
    async fn challenge(&self, key: &str, now: u64) -> Result<Option<Challenge>> {
        let key = key.to_owned();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT user, kind, data, expires_ms, version FROM challenges
                 WHERE key = ?1 AND expires_ms > ?2",
                params![key, to_sql(now)],
                |row| {
                    Ok(Challenge {
                        user: row.get(0)?,
                        kind: row.get(1)?,
                        data: row.get(2)?,
                        expires_ms: from_sql(row.get(3)?),
                        version: from_sql(row.get(4)?),
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn put_challenge(&self, key: &str, ch: &Challenge) -> Result<u64> {
        let (key, ch) = (key.to_owned(), ch.clone());
        self.call(move |c| {
            let v: i64 = c.query_row(
                "INSERT INTO challenges (key, user, kind, data, expires_ms, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1)
                 ON CONFLICT(key) DO UPDATE SET user = excluded.user, kind = excluded.kind,
                     data = excluded.data, expires_ms = excluded.expires_ms,
                     version = challenges.version + 1
                 RETURNING version",
                params![key, ch.user, ch.kind, ch.data, to_sql(ch.expires_ms)],
                |row| row.get(0),
            )?;
            Ok(from_sql(v))
        })
        .await
    }

    async fn replace_challenge(&self, key: &str, expected: u64, ch: &Challenge) -> Result<bool> {
        let (key, ch) = (key.to_owned(), ch.clone());
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE challenges SET user = ?3, kind = ?4, data = ?5, expires_ms = ?6,
                     version = version + 1
                 WHERE key = ?1 AND version = ?2",
                params![
                    key,
                    to_sql(expected),
                    ch.user,
                    ch.kind,
                    ch.data,
                    to_sql(ch.expires_ms)
                ],
            )? == 1)
        })
        .await
    }

    async fn delete_challenge(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM challenges WHERE key = ?1", params![key])?;
            Ok(())
        })
        .await
    }

    async fn take_challenge(&self, key: &str, now: u64) -> Result<Option<Challenge>> {
        let key = key.to_owned();
        self.call(move |c| {
            let taken = c
                .query_row(
                    "DELETE FROM challenges WHERE key = ?1
                     RETURNING user, kind, data, expires_ms, version",
                    params![key],
                    |row| {
                        Ok(Challenge {
                            user: row.get(0)?,
                            kind: row.get(1)?,
                            data: row.get(2)?,
                            expires_ms: from_sql(row.get(3)?),
                            version: from_sql(row.get(4)?),
                        })
                    },
                )
                .optional()?;
            Ok(taken.filter(|ch| ch.expires_ms > now))
        })
        .await
    }

    async fn delete_challenges_of(&self, user: &str) -> Result<u64> {
        let user = user.to_owned();
        self.call(move |c| {
            Ok(c.execute("DELETE FROM challenges WHERE user = ?1", params![user])? as u64)
        })
        .await
    }

    async fn count_challenges(&self, prefix: &str, now: u64) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.call(move |c| {
            Ok(from_sql(c.query_row(
                "SELECT COUNT(*) FROM challenges WHERE substr(key, 1, length(?1)) = ?1 AND expires_ms > ?2",
                params![prefix, to_sql(now)],
                |row| row.get(0),
            )?))
        })
        .await
    }

    async fn purge_challenges(&self, now: u64) -> Result<u64> {
        self.call(move |c| {
            let n = c.execute(
                "DELETE FROM challenges WHERE expires_ms <= ?1",
                params![to_sql(now)],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl BanStore for Sqlite {
    async fn put_ban(&self, ban: &BanRecord) -> Result<()> {
        let ban = ban.clone();
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO bans (scope, key, until_ms, level) VALUES (?1, ?2, ?3, ?4)",
                params![
                    ban.scope,
                    ban.key,
                    to_sql(ban.until_ms),
                    i64::from(ban.level)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_ban(&self, scope: &str, key: &str) -> Result<bool> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM bans WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )? == 1)
        })
        .await
    }

    async fn active_bans(&self, now: u64) -> Result<Vec<BanRecord>> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT scope, key, until_ms, level FROM bans WHERE until_ms > ?1 ORDER BY scope, key",
            )?;
            let rows = stmt.query_map(params![to_sql(now)], |row| {
                Ok(BanRecord {
                    scope: row.get(0)?,
                    key: row.get(1)?,
                    until_ms: from_sql(row.get(2)?),
                    level: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn purge_bans(&self, now: u64) -> Result<u64> {
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM bans WHERE until_ms <= ?1",
                params![to_sql(now)],
            )? as u64)
        })
        .await
    }
}

#[async_trait]
impl AuditLog for Sqlite {
    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        let e = e.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO audit (at_ms, user, event, client, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![to_sql(e.at_ms), e.user, e.event, e.client, e.detail],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit_of(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>> {
        let user = user.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT at_ms, user, event, client, detail FROM audit WHERE user = ?1
                 ORDER BY at_ms DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user, limit], |row| {
                Ok(AuditEvent {
                    at_ms: from_sql(row.get(0)?),
                    user: row.get(1)?,
                    event: row.get(2)?,
                    client: row.get(3)?,
                    detail: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn purge_audit(&self, before: u64) -> Result<u64> {
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM audit WHERE at_ms < ?1",
                params![to_sql(before)],
            )? as u64)
        })
        .await
    }
}
