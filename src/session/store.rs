//! Durable session state behind a trait: SQLite under the data directory by default; a Redis or
//! PostgreSQL backend implements the same trait for several instances.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::SessionKey;

/// What is persisted of a session. The ID itself never is: only its SHA-256 (the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: String,
    /// `1fa` or `2fa`.
    pub level: String,
    /// RFC 8176 `amr` values, comma-separated.
    pub amr: String,
    pub created_ms: u64,
    pub auth_ms: u64,
    pub last_seen_ms: u64,
    /// The user chose "later" on the setup guide for this session (see `two_factor` grace).
    pub deferred: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

pub trait SessionStore: Send + Sync {
    fn load_all(&self) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError>;
    fn put(&self, key: &SessionKey, record: &SessionRecord) -> Result<(), StoreError>;
    fn delete(&self, key: &SessionKey) -> Result<(), StoreError>;
    /// Records when sessions were last used (batched by the caller).
    fn touch(&self, seen: &[(SessionKey, u64)]) -> Result<(), StoreError>;
    fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError>;
}

/// The embedded default: one SQLite file, `<data dir>/stepgate.db`, in WAL mode.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(data_dir.join("stepgate.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                key BLOB PRIMARY KEY,
                user TEXT NOT NULL,
                level TEXT NOT NULL,
                amr TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                auth_ms INTEGER NOT NULL,
                last_seen_ms INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);",
        )?;
        // Added with two-step verification; databases made before it gain the column.
        let has_deferred = conn
            .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'deferred'")?
            .exists([])?;
        if !has_deferred {
            conn.execute_batch(
                "ALTER TABLE sessions ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError("connection lock poisoned".into()))
    }
}

fn record(row: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        user: row.get(offset)?,
        level: row.get(offset + 1)?,
        amr: row.get(offset + 2)?,
        created_ms: row.get::<_, i64>(offset + 3)? as u64,
        auth_ms: row.get::<_, i64>(offset + 4)? as u64,
        last_seen_ms: row.get::<_, i64>(offset + 5)? as u64,
        deferred: row.get::<_, i64>(offset + 6)? != 0,
    })
}

impl SessionStore for SqliteStore {
    fn load_all(&self) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT key, user, level, amr, created_ms, auth_ms, last_seen_ms, deferred FROM sessions",
        )?;
        let rows = stmt.query_map([], |row| {
            let key: Vec<u8> = row.get(0)?;
            Ok((key, record(row, 1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, rec) = row?;
            if let Ok(key) = <SessionKey>::try_from(key.as_slice()) {
                out.push((key, rec));
            }
        }
        Ok(out)
    }

    fn put(&self, key: &SessionKey, r: &SessionRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT OR REPLACE INTO sessions (key, user, level, amr, created_ms, auth_ms, last_seen_ms, deferred) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![&key[..], r.user, r.level, r.amr, r.created_ms as i64, r.auth_ms as i64, r.last_seen_ms as i64, i64::from(r.deferred)],
        )?;
        Ok(())
    }

    fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM sessions WHERE key = ?1", params![&key[..]])?;
        Ok(())
    }

    fn touch(&self, seen: &[(SessionKey, u64)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare("UPDATE sessions SET last_seen_ms = ?2 WHERE key = ?1")?;
            for (key, ms) in seen {
                stmt.execute(params![&key[..], *ms as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT user, level, amr, created_ms, auth_ms, last_seen_ms, deferred FROM sessions WHERE key = ?1",
                params![&key[..]],
                |row| record(row, 0),
            )
            .optional()?)
    }
}
