//! Credentials and per-user account data on PostgreSQL. A `write` batch is one transaction;
//! `advance_counter` and `consume` are one conditional `UPDATE` each, so that among gateways
//! racing for one use exactly one sees a row changed (under READ COMMITTED a second `UPDATE` of
//! the same row waits for the first to commit, then re-checks its `WHERE` on the new row).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{small, Arg, Postgres};
use crate::store::{from_sql, to_sql, AccountRecord, Credential, CredentialStore, Result, Write};

fn credential_row(row: &Row) -> Result<Credential> {
    Ok(Credential {
        user: row.try_get(0)?,
        kind: row.try_get(1)?,
        id: row.try_get(2)?,
        secret: row.try_get(3)?,
        counter: from_sql(row.try_get(4)?),
        created_ms: from_sql(row.try_get(5)?),
        used_ms: row.try_get::<_, Option<i64>>(6)?.map(from_sql),
        expires_ms: row.try_get::<_, Option<i64>>(7)?.map(from_sql),
        data: row.try_get(8)?,
    })
}

/// Inserts one credential (`$1..$9`), then `$tail` says what a conflict does.
macro_rules! insert_credential {
    ($tail:literal) => {
        concat!(
            r#"INSERT INTO credentials ("user", kind, id, secret, counter, created_ms, used_ms, "#,
            "expires_ms, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ",
            $tail
        )
    };
}

/// Applies one write inside the batch's transaction; `false` abandons the batch.
async fn apply(tx: &deadpool_postgres::Transaction<'_>, w: &Write) -> Result<bool> {
    match w {
        Write::InsertNew(c) | Write::Put(c) | Write::ReplaceExisting(c) => {
            let sql = if matches!(w, Write::InsertNew(_)) {
                insert_credential!("ON CONFLICT DO NOTHING")
            } else if matches!(w, Write::ReplaceExisting(_)) {
                r#"UPDATE credentials SET secret = $4, counter = $5, created_ms = $6, used_ms = $7,
                       expires_ms = $8, data = $9
                   WHERE "user" = $1 AND kind = $2 AND id = $3"#
            } else {
                insert_credential!(
                    r#"ON CONFLICT ("user", kind, id) DO UPDATE SET secret = excluded.secret,
                       counter = excluded.counter, created_ms = excluded.created_ms,
                       used_ms = excluded.used_ms, expires_ms = excluded.expires_ms,
                       data = excluded.data"#
                )
            };
            let statement = tx.prepare_cached(sql).await?;
            let n = tx
                .execute(
                    &statement,
                    &[
                        &c.user,
                        &c.kind,
                        &c.id,
                        &c.secret,
                        &to_sql(c.counter),
                        &to_sql(c.created_ms),
                        &c.used_ms.map(to_sql),
                        &c.expires_ms.map(to_sql),
                        &c.data,
                    ],
                )
                .await?;
            Ok(n == 1)
        }
        Write::DeleteOne { user, kind, id } => {
            let statement = tx
                .prepare_cached(
                    r#"DELETE FROM credentials WHERE "user" = $1 AND kind = $2 AND id = $3"#,
                )
                .await?;
            tx.execute(&statement, &[user, kind, id]).await?;
            Ok(true)
        }
        Write::DeleteKinds { user, kinds } => {
            let statement = tx
                .prepare_cached(r#"DELETE FROM credentials WHERE "user" = $1 AND kind = ANY($2)"#)
                .await?;
            tx.execute(&statement, &[user, kinds]).await?;
            Ok(true)
        }
        Write::SetEmergencyEmail { user, email, at_ms } => {
            let statement = tx
                .prepare_cached(
                    r#"INSERT INTO accounts ("user", emergency_email, emergency_verified_ms)
                       VALUES ($1, $2, $3)
                       ON CONFLICT ("user") DO UPDATE SET emergency_email = excluded.emergency_email,
                           emergency_verified_ms = excluded.emergency_verified_ms"#,
                )
                .await?;
            let verified = email.as_ref().map(|_| to_sql(*at_ms));
            tx.execute(&statement, &[user, email, &verified]).await?;
            Ok(true)
        }
        Write::ClearGuideSkips { user } => {
            let statement = tx
                .prepare_cached(r#"UPDATE accounts SET guide_skips = 0 WHERE "user" = $1"#)
                .await?;
            tx.execute(&statement, &[user]).await?;
            Ok(true)
        }
        Write::SetPassword {
            user,
            hash,
            base,
            at_ms,
        } => {
            let statement = tx
                .prepare_cached(
                    r#"INSERT INTO accounts ("user", password_hash, password_base, password_changed_ms)
                       VALUES ($1, $2, $3, $4)
                       ON CONFLICT ("user") DO UPDATE SET password_hash = excluded.password_hash,
                           password_base = excluded.password_base,
                           password_changed_ms = excluded.password_changed_ms"#,
                )
                .await?;
            tx.execute(&statement, &[user, hash, base, &to_sql(*at_ms)])
                .await?;
            Ok(true)
        }
        Write::SetLocked { user, at_ms } => {
            let statement = tx
                .prepare_cached(
                    r#"INSERT INTO accounts ("user", locked_ms) VALUES ($1, $2)
                       ON CONFLICT ("user") DO UPDATE SET locked_ms = excluded.locked_ms"#,
                )
                .await?;
            tx.execute(&statement, &[user, &at_ms.map(to_sql)]).await?;
            Ok(true)
        }
    }
}

#[async_trait]
impl CredentialStore for Postgres {
    async fn credentials(&self, user: &str, kind: Option<&str>) -> Result<Vec<Credential>> {
        let rows = self
            .query(
                r#"SELECT "user", kind, id, secret, counter, created_ms, used_ms, expires_ms, data
                   FROM credentials WHERE "user" = $1 AND ($2::text IS NULL OR kind = $2)
                   ORDER BY kind, id"#,
                args![user.to_owned(), kind.map(str::to_owned)],
            )
            .await?;
        rows.iter().map(credential_row).collect()
    }

    async fn credentials_by_id(&self, kind: &str, id: &str) -> Result<Vec<Credential>> {
        let rows = self
            .query(
                r#"SELECT "user", kind, id, secret, counter, created_ms, used_ms, expires_ms, data
                   FROM credentials WHERE kind = $1 AND id = $2 ORDER BY "user""#,
                args![kind.to_owned(), id.to_owned()],
            )
            .await?;
        rows.iter().map(credential_row).collect()
    }

    async fn write(&self, batch: Vec<Write>) -> Result<bool> {
        self.call(move |mut c| async move {
            let tx = c.transaction().await?;
            for w in &batch {
                if !apply(&tx, w).await? {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            tx.commit().await?;
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
        let n = self
            .execute(
                r#"UPDATE credentials SET counter = $5
                   WHERE "user" = $1 AND kind = $2 AND id = $3 AND secret = $4 AND counter < $5"#,
                args![
                    user.to_owned(),
                    kind.to_owned(),
                    id.to_owned(),
                    secret.to_vec(),
                    to_sql(new)
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn consume(&self, user: &str, kind: &str, id: &str, now: u64) -> Result<bool> {
        let n = self
            .execute(
                r#"UPDATE credentials SET used_ms = $4
                   WHERE "user" = $1 AND kind = $2 AND id = $3 AND used_ms IS NULL
                     AND (expires_ms IS NULL OR expires_ms > $4)"#,
                args![user.to_owned(), kind.to_owned(), id.to_owned(), to_sql(now)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_credential(&self, user: &str, kind: &str, id: &str) -> Result<bool> {
        let n = self
            .execute(
                r#"DELETE FROM credentials WHERE "user" = $1 AND kind = $2 AND id = $3"#,
                args![user.to_owned(), kind.to_owned(), id.to_owned()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn account(&self, user: &str) -> Result<AccountRecord> {
        let Some(row) = self
            .query_opt(
                r#"SELECT emergency_email, emergency_verified_ms, guide_skips, password_hash,
                          password_base, password_changed_ms, locked_ms
                   FROM accounts WHERE "user" = $1"#,
                args![user.to_owned()],
            )
            .await?
        else {
            return Ok(AccountRecord::default());
        };
        Ok(AccountRecord {
            emergency_email: row.try_get(0)?,
            emergency_verified_ms: row.try_get::<_, Option<i64>>(1)?.map(from_sql),
            guide_skips: small(row.try_get(2)?),
            password_hash: row.try_get(3)?,
            password_base: row.try_get(4)?,
            password_changed_ms: row.try_get::<_, Option<i64>>(5)?.map(from_sql),
            locked_ms: row.try_get::<_, Option<i64>>(6)?.map(from_sql),
        })
    }

    async fn add_guide_skip(&self, user: &str) -> Result<u32> {
        let row = self
            .query_one(
                r#"INSERT INTO accounts ("user", guide_skips) VALUES ($1, 1)
                   ON CONFLICT ("user") DO UPDATE SET guide_skips = accounts.guide_skips + 1
                   RETURNING guide_skips"#,
                args![user.to_owned()],
            )
            .await?;
        Ok(small(row.try_get(0)?))
    }
}
