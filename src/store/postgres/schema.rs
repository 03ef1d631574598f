//! The PostgreSQL schema, versioned like SQLite's: `stepgate_schema` holds the version, and each
//! migration runs in one transaction with the version bump. Version 2 creates directly the tables
//! SQLite reaches at version 2 (PostgreSQL has no pre-versioning databases to adopt), so both
//! backends report the same version for the same tables.
//!
//! Two gateways starting at once on an empty database would race to create the same tables;
//! each migration step first takes a transaction-scoped advisory lock, so the second one waits,
//! then reads the version the first one committed and has nothing left to do.
//!
//! Types: keys and sealed data are `BYTEA`, times, steps and counters `BIGINT` (see
//! `store::to_sql`). Text that the store orders by (`kind`, `id`, ban `scope` and `key`) uses
//! the `"C"` collation so that the order is bytewise, as in SQLite, whatever the database's
//! locale. `user` is a reserved word here and is quoted everywhere.

use deadpool_postgres::Object;

use super::super::{Result, StoreError};

/// The newest version this build knows; the same as SQLite's (the same tables).
pub const VERSION: i64 = 4;
const _: () = assert!(VERSION == super::super::sqlite::schema::VERSION);

/// The advisory lock key every stepgate takes while migrating ("stepgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_6570_6761_7465;

const V2: &str = r#"
CREATE TABLE sessions (
    key BYTEA PRIMARY KEY,
    "user" TEXT NOT NULL,
    amr TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    auth_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    deferred BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX sessions_user ON sessions ("user");
CREATE TABLE credentials (
    "user" TEXT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    secret BYTEA NOT NULL,
    counter BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    used_ms BIGINT,
    expires_ms BIGINT,
    data BYTEA NOT NULL DEFAULT ''::bytea,
    PRIMARY KEY ("user", kind, id)
);
CREATE TABLE accounts (
    "user" TEXT PRIMARY KEY,
    emergency_email TEXT,
    emergency_verified_ms BIGINT,
    guide_skips BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE challenges (
    key TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    kind TEXT NOT NULL,
    data BYTEA NOT NULL,
    expires_ms BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX challenges_expiry ON challenges (expires_ms);
CREATE TABLE bans (
    scope TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    until_ms BIGINT NOT NULL,
    level BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    "user" TEXT NOT NULL,
    event TEXT NOT NULL,
    client TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_user ON audit ("user", at_ms);
"#;

/// Version 3: account protection (see the SQLite schema).
const V3: &str = r#"
ALTER TABLE sessions ADD COLUMN persistent BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE sessions ADD COLUMN needs_check BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE sessions ADD COLUMN client TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN trusted TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN password_hash TEXT;
ALTER TABLE accounts ADD COLUMN password_base TEXT;
ALTER TABLE accounts ADD COLUMN password_changed_ms BIGINT;
ALTER TABLE accounts ADD COLUMN locked_ms BIGINT;
CREATE INDEX challenges_user ON challenges ("user");
"#;

/// Version 4: credentials found by kind and ID (see the SQLite schema).
const V4: &str = r#"CREATE INDEX credentials_kind_id ON credentials (kind, id);"#;

/// Each step: the version it brings the database to, and its DDL.
const STEPS: [(i64, &str); 3] = [(2, V2), (3, V3), (4, V4)];
const _: () = assert!(STEPS[STEPS.len() - 1].0 == VERSION);

/// Brings the database to [`VERSION`]; refuses a database from a newer stepgate.
pub async fn migrate(client: &mut Object) -> Result<()> {
    for (to, ddl) in STEPS {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS stepgate_schema (version BIGINT NOT NULL)")
            .await?;
        let found: i64 = match tx
            .query_opt("SELECT version FROM stepgate_schema", &[])
            .await?
        {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if found > VERSION {
            return Err(StoreError::TooNew {
                found,
                known: VERSION,
            });
        }
        if found >= to {
            tx.commit().await?;
            continue;
        }
        tx.batch_execute(ddl).await?;
        tx.execute("DELETE FROM stepgate_schema", &[]).await?;
        tx.execute("INSERT INTO stepgate_schema (version) VALUES ($1)", &[&to])
            .await?;
        tx.commit().await?;
        tracing::info!(target: "stepgate::store", backend = "postgres", version = to, "database schema migrated");
    }
    Ok(())
}
