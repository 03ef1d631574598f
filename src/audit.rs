//! The audit trail: every security event (sign-ins and their failures, bans, factor changes,
//! trusted-browser and session revocations, locks, password changes and resets) goes to the
//! store's audit table, which the account page and `stepgate admin audit` read, and as one JSON
//! object per line to `<data dir>/audit.jsonl` (mode 0600), for log shippers.
//!
//! Best effort: the step an event reports has already happened, so a failure to record it is
//! logged and does not undo the step. Events never carry a secret.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::store::{AuditEvent, Store};

const LOG: &str = "stepgate::audit";
pub const FILE_NAME: &str = "audit.jsonl";

/// Where events are recorded.
pub struct AuditTrail {
    store: Store,
    file: Option<Arc<Mutex<std::fs::File>>>,
    path: Option<PathBuf>,
}

/// One line of `audit.jsonl`.
#[derive(serde::Serialize)]
struct Line<'a> {
    ts: String,
    user: &'a str,
    event: &'a str,
    client: Option<&'a str>,
    detail: &'a str,
}

impl AuditTrail {
    /// Records to `store` and to `<data_dir>/audit.jsonl` (created if missing).
    pub fn open(store: Store, data_dir: &Path) -> std::io::Result<AuditTrail> {
        let path = data_dir.join(FILE_NAME);
        let mut open = std::fs::OpenOptions::new();
        open.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let file = open.open(&path)?;
        Ok(AuditTrail {
            store,
            file: Some(Arc::new(Mutex::new(file))),
            path: Some(path),
        })
    }

    /// Records to `store` and, if the gateway has created it, to `<data_dir>/audit.jsonl` (the
    /// admin CLI: a file it created could carry the wrong owner for the gateway).
    pub fn open_existing(store: Store, data_dir: &Path) -> std::io::Result<AuditTrail> {
        let path = data_dir.join(FILE_NAME);
        match std::fs::OpenOptions::new().append(true).open(&path) {
            Ok(file) => Ok(AuditTrail {
                store,
                file: Some(Arc::new(Mutex::new(file))),
                path: Some(path),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuditTrail::store_only(store)),
            Err(e) => Err(e),
        }
    }

    /// Records to the store only (for tests of other parts).
    pub fn store_only(store: Store) -> AuditTrail {
        AuditTrail {
            store,
            file: None,
            path: None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub async fn record(&self, event: AuditEvent) {
        let name = event.event.clone();
        if let Err(e) = self.record_checked(event).await {
            tracing::error!(target: LOG, error = %e, event = %name, "could not write the audit table");
        }
    }

    /// [`AuditTrail::record`], returning the store's fault instead of logging it (the admin CLI
    /// tells the operator). The file gets the event either way.
    pub async fn record_checked(&self, event: AuditEvent) -> crate::store::Result<()> {
        let stored = self.store.audit().append_audit(&event).await;
        self.append_to_file(&event).await;
        stored
    }

    async fn append_to_file(&self, event: &AuditEvent) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let line = Line {
            ts: rfc3339(event.at_ms),
            user: &event.user,
            event: &event.event,
            client: event.client.as_deref(),
            detail: &event.detail,
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        let written = tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&bytes)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(target: LOG, error = %e, "could not append to the audit file")
            }
            Err(e) => tracing::error!(target: LOG, error = %e, "the audit file task failed"),
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-12-01T08:30:00.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_go_to_the_table_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Default::default(), dir.path()).unwrap();
        let trail = AuditTrail::open(store.clone(), dir.path()).unwrap();
        trail
            .record(AuditEvent {
                at_ms: 1_764_577_800_000,
                user: "alice".into(),
                event: "sign_in".into(),
                client: Some("192.0.2.1".into()),
                detail: "password".into(),
            })
            .await;
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["event"], "sign_in");
        assert_eq!(v["ts"], "2025-12-01T08:30:00Z");
        assert_eq!(store.audit().audit_of("alice", 5).await.unwrap().len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
