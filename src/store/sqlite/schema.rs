//! The SQLite schema, versioned. `stepgate_schema` holds the version; each migration runs in
//! one transaction with the version bump, so a crash leaves either the old or the new schema.
//!
//! Version 1 is what databases written before versioning already hold (sessions and the
//! `factor_*` tables; made idempotently, so it also adopts such a database). Version 2 moves the
//! factor tables into the generic `credentials` and `accounts` tables, derives the session level
//! from its methods (the `level` column goes), and adds challenges, bans and the audit trail.

use rusqlite::{params, Connection, OptionalExtension};

use super::super::{Result, StoreError};

/// The newest version this build knows.
pub const VERSION: i64 = 4;

const V1: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    key BLOB PRIMARY KEY,
    user TEXT NOT NULL,
    level TEXT NOT NULL,
    amr TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    auth_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
CREATE TABLE IF NOT EXISTS factor_totp (
    user TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    last_step INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS factor_recovery (
    user TEXT NOT NULL,
    hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    used_ms INTEGER,
    PRIMARY KEY (user, hash)
);
CREATE TABLE IF NOT EXISTS factor_contact (
    user TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    verified_ms INTEGER
);
CREATE TABLE IF NOT EXISTS factor_token (
    user TEXT PRIMARY KEY,
    hash BLOB NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS factor_skip (
    user TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);";

const V2: &str = "
CREATE TABLE credentials (
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    secret BLOB NOT NULL,
    counter INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    used_ms INTEGER,
    expires_ms INTEGER,
    data BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (user, kind, id)
);
INSERT INTO credentials (user, kind, id, secret, counter, created_ms)
    SELECT user, 'totp', '', secret, last_step, created_ms FROM factor_totp;
INSERT INTO credentials (user, kind, id, secret, created_ms, used_ms)
    SELECT user, 'recovery', lower(hex(hash)), hash, created_ms, used_ms FROM factor_recovery;
INSERT INTO credentials (user, kind, id, secret, created_ms, expires_ms)
    SELECT user, 'enrolment_token', '', hash, 0, expires_ms FROM factor_token;
CREATE TABLE accounts (
    user TEXT PRIMARY KEY,
    emergency_email TEXT,
    emergency_verified_ms INTEGER,
    guide_skips INTEGER NOT NULL DEFAULT 0
);
INSERT INTO accounts (user, emergency_email, emergency_verified_ms)
    SELECT user, email, verified_ms FROM factor_contact;
INSERT INTO accounts (user, guide_skips) SELECT user, count FROM factor_skip WHERE true
    ON CONFLICT(user) DO UPDATE SET guide_skips = excluded.guide_skips;
DROP TABLE factor_totp;
DROP TABLE factor_recovery;
DROP TABLE factor_contact;
DROP TABLE factor_token;
DROP TABLE factor_skip;
ALTER TABLE sessions DROP COLUMN level;
CREATE TABLE challenges (
    key TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX challenges_expiry ON challenges(expires_ms);
CREATE TABLE bans (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    level INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    user TEXT NOT NULL,
    event TEXT NOT NULL,
    client TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_user ON audit(user, at_ms);";

const V3: &str = "
ALTER TABLE sessions ADD COLUMN persistent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN needs_check INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN client TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN trusted TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN password_hash TEXT;
ALTER TABLE accounts ADD COLUMN password_base TEXT;
ALTER TABLE accounts ADD COLUMN password_changed_ms INTEGER;
ALTER TABLE accounts ADD COLUMN locked_ms INTEGER;
CREATE INDEX challenges_user ON challenges(user);";

/// Version 4: credentials found by kind and ID whoever holds them (a client certificate's
/// fingerprint names its user).
const V4: &str = "CREATE INDEX credentials_kind_id ON credentials(kind, id);";

fn version(conn: &Connection) -> Result<i64> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS stepgate_schema (version INTEGER NOT NULL)")?;
    Ok(conn
        .query_row("SELECT version FROM stepgate_schema", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Brings the database to [`VERSION`]; refuses a database from a newer stepgate.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found = version(conn)?;
    if found > VERSION {
        return Err(StoreError::TooNew {
            found,
            known: VERSION,
        });
    }
    for (to, step) in [
        (1, v1 as fn(&Connection) -> Result<()>),
        (2, v2),
        (3, v3),
        (4, v4),
    ] {
        if found >= to {
            continue;
        }
        let tx = conn.transaction()?;
        step(&tx)?;
        tx.execute("DELETE FROM stepgate_schema", [])?;
        tx.execute(
            "INSERT INTO stepgate_schema (version) VALUES (?1)",
            params![to],
        )?;
        tx.commit()?;
        tracing::info!(target: "stepgate::store", version = to, "database schema migrated");
    }
    Ok(())
}

fn v1(conn: &Connection) -> Result<()> {
    conn.execute_batch(V1)?;
    // Added with two-step verification; databases made before it gain the column.
    let has_deferred = conn
        .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'deferred'")?
        .exists([])?;
    if !has_deferred {
        conn.execute_batch("ALTER TABLE sessions ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

fn v2(conn: &Connection) -> Result<()> {
    Ok(conn.execute_batch(V2)?)
}

fn v3(conn: &Connection) -> Result<()> {
    Ok(conn.execute_batch(V3)?)
}

fn v4(conn: &Connection) -> Result<()> {
    Ok(conn.execute_batch(V4)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_versioning_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepgate.db");
        {
            // As the previous release left it: v1 tables without a version, one of each row.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.execute_batch(
                "INSERT INTO sessions VALUES (x'00', 'alice', '2fa', 'pwd,otp', 1, 2, 3);
                 INSERT INTO factor_totp VALUES ('alice', x'0102', 41, 5);
                 INSERT INTO factor_recovery VALUES ('alice', x'abcd', 6, NULL);
                 INSERT INTO factor_contact VALUES ('alice', 'a@b.test', 7);
                 INSERT INTO factor_token VALUES ('bob', x'ee', 8);
                 INSERT INTO factor_skip VALUES ('bob', 2);",
            )
            .unwrap();
        }
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap(); // idempotent
        assert_eq!(version(&conn).unwrap(), VERSION);
        let (amr, deferred): (String, i64) = conn
            .query_row("SELECT amr, deferred FROM sessions", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((amr.as_str(), deferred), ("pwd,otp", 0));
        let creds: Vec<(String, String, String, i64)> = conn
            .prepare("SELECT user, kind, id, counter FROM credentials ORDER BY user, kind")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            creds,
            vec![
                ("alice".into(), "recovery".into(), "abcd".into(), 0),
                ("alice".into(), "totp".into(), "".into(), 41),
                ("bob".into(), "enrolment_token".into(), "".into(), 0),
            ]
        );
        let accounts: Vec<(String, Option<String>, i64)> = conn
            .prepare("SELECT user, emergency_email, guide_skips FROM accounts ORDER BY user")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            accounts,
            vec![
                ("alice".into(), Some("a@b.test".into()), 0),
                ("bob".into(), None, 2)
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute("UPDATE stepgate_schema SET version = 99", [])
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
