//! Moving a gateway from the embedded store to PostgreSQL (`stepgate admin migrate`): every
//! row of a SQLite database copied into an empty PostgreSQL database, in one transaction, so
//! that the copy is all there or not there at all.
//!
//! Both backends hold the same tables at the same schema version (each is migrated first), so
//! the copy goes column by column under PostgreSQL's names and types: a column one side lacks,
//! or a value of the wrong kind, stops it with a message rather than dropping data. Audit
//! entries keep their IDs (and the identity sequence goes on after them). Rows travel in chunks
//! from a reading thread, so a large database is never held in memory at once; after the commit
//! each table is counted on both sides.

use std::path::Path;

use rusqlite::types::Value;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use super::{fault, pool_error, Arg, Postgres, Result, StoreError};

/// Every table, in the order they are copied.
pub const TABLES: [&str; 6] = [
    "accounts",
    "credentials",
    "sessions",
    "challenges",
    "bans",
    "audit",
];

/// Rows per `INSERT` (PostgreSQL takes at most 65,535 parameters per statement; the widest
/// table has 12 columns).
const CHUNK: usize = 1000;

/// What was copied: each table and its row count, in [`TABLES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied(pub Vec<(&'static str, u64)>);

/// A column's PostgreSQL type, as far as the copy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BigInt,
    Boolean,
    Text,
    Bytes,
}

#[derive(Clone)]
struct Column {
    name: String,
    kind: Kind,
}

/// One batch of rows of one table, in the order of that table's columns.
struct Chunk {
    table: usize,
    rows: Vec<Vec<Value>>,
}

fn corrupt(why: String) -> StoreError {
    StoreError::Corrupt {
        what: "a SQLite table being copied",
        why,
    }
}

/// A SQLite value as a parameter of PostgreSQL type `kind`.
fn param(table: &str, column: &Column, value: Value) -> Result<Arg> {
    let wrong = |found: &str| {
        corrupt(format!(
            "{table}.{} holds {found} where PostgreSQL expects {:?}",
            column.name, column.kind
        ))
    };
    Ok(match (column.kind, value) {
        (Kind::BigInt, Value::Null) => Box::new(None::<i64>),
        (Kind::BigInt, Value::Integer(v)) => Box::new(v),
        (Kind::Boolean, Value::Null) => Box::new(None::<bool>),
        (Kind::Boolean, Value::Integer(v)) => Box::new(v != 0),
        (Kind::Text, Value::Null) => Box::new(None::<String>),
        (Kind::Text, Value::Text(v)) => Box::new(v),
        (Kind::Bytes, Value::Null) => Box::new(None::<Vec<u8>>),
        (Kind::Bytes, Value::Blob(v)) => Box::new(v),
        (Kind::Bytes, Value::Text(v)) => Box::new(v.into_bytes()),
        (_, Value::Integer(_)) => return Err(wrong("an integer")),
        (_, Value::Real(_)) => return Err(wrong("a real number")),
        (_, Value::Text(_)) => return Err(wrong("text")),
        (_, Value::Blob(_)) => return Err(wrong("bytes")),
    })
}

/// `INSERT INTO table (columns) VALUES ($1, ...), ...` for `rows` rows.
fn insert_sql(table: &str, columns: &[Column], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let mut sql = format!("INSERT INTO {table} ({}) ", names.join(", "));
    if table == "audit" {
        sql.push_str("OVERRIDING SYSTEM VALUE ");
    }
    sql.push_str("VALUES ");
    let width = columns.len();
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let marks: Vec<String> = (1..=width)
            .map(|i| format!("${}", row * width + i))
            .collect();
        sql.push('(');
        sql.push_str(&marks.join(", "));
        sql.push(')');
    }
    sql
}

impl Postgres {
    /// Copies every row of the SQLite database at `path` into this database, which must hold
    /// no stepgate rows yet. Blocks the calling thread (start-up or the admin CLI only).
    pub fn import_sqlite(&self, path: &Path) -> Result<Copied> {
        // Bring the file to the current schema first (it is the gateway's own file, which it
        // would migrate at its next start anyway), then read it on a connection of our own.
        if !path.is_file() {
            return Err(corrupt(format!(
                "there is no database at {}",
                path.display()
            )));
        }
        drop(super::super::sqlite::Sqlite::open(path)?);
        let sqlite = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;

        let pool = self.pool.clone();
        let (columns_tx, columns_rx) = std::sync::mpsc::channel::<Result<Vec<Vec<Column>>>>();
        let (chunks_tx, mut chunks_rx) = mpsc::channel::<Result<Chunk>>(4);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<Vec<u64>>>();
        let job = async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await?;
            let mut columns = Vec::new();
            for table in TABLES {
                let rows = tx
                    .query(
                        "SELECT column_name::text, data_type::text FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = $1 \
                         ORDER BY ordinal_position",
                        &[&table],
                    )
                    .await?;
                let mut these = Vec::new();
                for row in rows {
                    let (name, kind): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                    let kind = match kind.as_str() {
                        "bigint" => Kind::BigInt,
                        "boolean" => Kind::Boolean,
                        "text" => Kind::Text,
                        "bytea" => Kind::Bytes,
                        other => {
                            return Err(fault(format!(
                                "{table}.{name} has type {other}, which the copy does not know"
                            )))
                        }
                    };
                    these.push(Column { name, kind });
                }
                let held: i64 = tx
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await?
                    .try_get(0)?;
                if held > 0 {
                    return Err(fault(format!(
                        "the database already holds stepgate data ({held} rows in {table}); \
                         migrate into an empty database"
                    )));
                }
                columns.push(these);
            }
            let _ = columns_tx.send(Ok(columns.clone()));

            let mut counts = vec![0u64; TABLES.len()];
            while let Some(chunk) = chunks_rx.recv().await {
                let Chunk { table, rows } = chunk?;
                let name = TABLES[table];
                let cols = &columns[table];
                let sql = insert_sql(name, cols, rows.len());
                counts[table] += rows.len() as u64;
                let mut args = Vec::with_capacity(rows.len() * cols.len());
                for row in rows {
                    for (column, value) in cols.iter().zip(row) {
                        args.push(param(name, column, value)?);
                    }
                }
                let refs: Vec<&(dyn ToSql + Sync)> = args
                    .iter()
                    .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&sql, &refs).await?;
            }
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('audit', 'id'), max(id)) FROM audit \
                 HAVING max(id) IS NOT NULL",
                &[],
            )
            .await?;
            tx.commit().await?;

            // Counted again after the commit, as another session sees them.
            for (i, table) in TABLES.iter().enumerate() {
                let held: i64 = client
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await?
                    .try_get(0)?;
                if u64::try_from(held).ok() != Some(counts[i]) {
                    return Err(fault(format!(
                        "{table}: {} rows copied but {held} found after the commit",
                        counts[i]
                    )));
                }
            }
            Ok(counts)
        };
        self.runtime
            .handle()
            .ok_or(StoreError::Closed)?
            .spawn(async move {
                let _ = done_tx.send(job.await);
            });

        // The reading side, on this thread. An error here is sent to the writer, which then
        // rolls back; an error there ends the reading (its channel closes).
        let columns = match columns_rx.recv() {
            Ok(Ok(columns)) => columns,
            Ok(Err(e)) => return Err(e),
            // The writer stopped before it knew the columns: its answer says why.
            Err(_) => {
                return Err(match done_rx.recv() {
                    Ok(Err(e)) => e,
                    _ => StoreError::Closed,
                })
            }
        };
        let read = read_tables(&sqlite, &columns, &chunks_tx);
        if let Err(e) = read {
            let _ = chunks_tx.blocking_send(Err(e));
        }
        drop(chunks_tx);
        let counts = done_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(Copied(TABLES.iter().copied().zip(counts).collect()))
    }
}

/// Sends every row of every table, in chunks; stops early if the writer is gone.
fn read_tables(
    sqlite: &rusqlite::Connection,
    columns: &[Vec<Column>],
    out: &mpsc::Sender<Result<Chunk>>,
) -> Result<()> {
    for (table, (name, cols)) in TABLES.iter().zip(columns).enumerate() {
        // Every SQLite column must have a place on the other side, or its data would be lost.
        let mut held = sqlite.prepare(&format!("SELECT name FROM pragma_table_info('{name}')"))?;
        let held: Vec<String> = held
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if held.is_empty() {
            return Err(corrupt(format!("it has no table {name}")));
        }
        for h in &held {
            if !cols.iter().any(|c| &c.name == h) {
                return Err(corrupt(format!(
                    "{name}.{h} has no column to go to in PostgreSQL"
                )));
            }
        }
        for c in cols {
            if !held.contains(&c.name) {
                return Err(corrupt(format!("it has no column {name}.{}", c.name)));
            }
        }
        let list: Vec<String> = cols.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let order = if *name == "audit" { " ORDER BY id" } else { "" };
        let mut select =
            sqlite.prepare(&format!("SELECT {} FROM {name}{order}", list.join(", ")))?;
        let mut rows = select.query([])?;
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                values.push(row.get::<_, Value>(i)?);
            }
            chunk.push(values);
            if chunk.len() == CHUNK {
                let rows = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if out.blocking_send(Ok(Chunk { table, rows })).is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() && out.blocking_send(Ok(Chunk { table, rows: chunk })).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_numbers_every_parameter_once() {
        let cols = vec![
            Column {
                name: "a".into(),
                kind: Kind::Text,
            },
            Column {
                name: "b".into(),
                kind: Kind::BigInt,
            },
        ];
        assert_eq!(
            insert_sql("bans", &cols, 2),
            "INSERT INTO bans (\"a\", \"b\") VALUES ($1, $2), ($3, $4)"
        );
        assert!(insert_sql("audit", &cols, 1).contains("OVERRIDING SYSTEM VALUE"));
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused_not_dropped() {
        let col = Column {
            name: "until_ms".into(),
            kind: Kind::BigInt,
        };
        let e = param("bans", &col, Value::Text("soon".into()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("bans.until_ms holds text"), "{e}");
        assert!(param("bans", &col, Value::Null).is_ok());
    }
}
