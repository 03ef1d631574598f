//! The file notifier: appends each message as one JSON line to `<data dir>/outbox.jsonl`, in the
//! format the outside contract fixes (`ts`, `channel`, `to`, `subject`, `text`, and `code`/`link`
//! when present; nothing else).
//!
//! It is for local try-outs and tests: the file holds live one-time codes in clear text, so it is
//! created with mode 0600 (its directory, if created here, 0700), and anyone who can read it can
//! complete a sign-in for the users in it. Lines are never rotated or pruned.
//!
//! Concurrency: the whole line goes out in one `write_all` on a file opened for append, under a
//! lock shared by every clone of the notifier, so concurrent sends never interleave. `Notifiers`
//! builds one `Outbox` for all channels; two separate `Outbox` values on the same file would each
//! have their own lock and rely on `O_APPEND` alone. The file is reopened for every message, so an
//! operator may move it away at any time and the next message starts a new one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{io_reason, Channel, Message, Notifier, NotifyError};
use crate::clock::{self, SharedClock};

/// The outbox's file name inside the data directory.
pub const FILE_NAME: &str = "outbox.jsonl";

#[derive(Clone)]
pub struct Outbox {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
    clock: SharedClock,
}

impl Outbox {
    /// An outbox writing to the file `path` (created with its directory on the first message).
    pub fn new(path: impl Into<PathBuf>) -> Outbox {
        Outbox::with_clock(path, clock::system())
    }

    /// `<data_dir>/outbox.jsonl`.
    pub fn in_data_dir(data_dir: &Path) -> Outbox {
        Outbox::new(data_dir.join(FILE_NAME))
    }

    /// Like `new`, with `ts` taken from `clock`.
    pub fn with_clock(path: impl Into<PathBuf>, clock: SharedClock) -> Outbox {
        Outbox {
            path: path.into(),
            lock: Arc::new(Mutex::new(())),
            clock,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish()
    }
}

/// One outbox line, exactly the contract's fields.
#[derive(serde::Serialize)]
struct Line<'a> {
    ts: &'a str,
    channel: Channel,
    to: &'a str,
    subject: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
}

/// The JSON line (with its `\n`) for one message.
fn line(msg: &Message, ts: &str) -> String {
    let line = Line {
        ts,
        channel: msg.channel,
        to: &msg.to,
        subject: &msg.subject,
        text: &msg.text,
        code: msg.code.as_deref(),
        link: msg.link.as_deref(),
    };
    // Serializing borrowed strings and a unit enum into a String cannot fail.
    let mut out = serde_json::to_string(&line).unwrap_or_default();
    out.push('\n');
    out
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC, e.g. `2025-01-02T03:04:05.678Z`.
pub(crate) fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        open.mode(0o600);
    }
    #[cfg(not(unix))]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    open.open(path)?.write_all(bytes)
}

#[async_trait::async_trait]
impl Notifier for Outbox {
    async fn send(&self, msg: &Message) -> Result<(), NotifyError> {
        let line = line(msg, &rfc3339(self.clock.now_ms()));
        let path = self.path.clone();
        let lock = self.lock.clone();
        let written = tokio::task::spawn_blocking(move || {
            // A panic elsewhere while holding the lock leaves nothing half-done here: the lock
            // guards no data, only the order of whole-line writes.
            let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            append(&path, line.as_bytes())
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NotifyError::Outbox {
                path: self.path.clone(),
                reason: io_reason(&e),
            }),
            Err(e) => Err(NotifyError::Outbox {
                path: self.path.clone(),
                reason: format!("the writing task failed: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::notify::{compose, MessageKind};

    fn parse(line: &str) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(line).unwrap() {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn line_has_exactly_the_contract_fields() {
        let msg = compose(
            &MessageKind::EnrolmentCode { code: "123456" },
            "ko",
            Channel::Email,
            "alice@example.test",
            "Acme \"Portal\"",
            "앨리스",
            Some("https://acme.test/_stepgate/guide"),
        );
        let text = line(&msg, "2025-01-02T03:04:05Z");
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text:?}"
        );
        let map = parse(&text);
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["channel", "code", "link", "subject", "text", "to", "ts"]
        );
        assert_eq!(map["channel"], "email");
        assert_eq!(map["to"], "alice@example.test");
        assert_eq!(map["code"], "123456");
        assert_eq!(map["link"], "https://acme.test/_stepgate/guide");
        assert_eq!(map["subject"], msg.subject.as_str());
        assert_eq!(map["text"], msg.text.as_str());
    }

    #[test]
    fn optional_fields_are_omitted() {
        let msg = compose(
            &MessageKind::CodeReplayed,
            "en",
            Channel::Sms,
            "+821000000001",
            "Acme",
            "Alice",
            None,
        );
        let map = parse(&line(&msg, "2025-01-02T03:04:05Z"));
        assert!(
            !map.contains_key("code") && !map.contains_key("link"),
            "{map:?}"
        );
        assert_eq!(map["channel"], "sms");
        assert_eq!(map.len(), 5);
    }

    #[test]
    fn ts_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_735_787_045_678), "2025-01-02T03:04:05.678Z");
        let parsed = OffsetDateTime::parse(&rfc3339(1_735_787_045_000), &Rfc3339).unwrap();
        assert_eq!(parsed.unix_timestamp(), 1_735_787_045);
    }

    #[tokio::test]
    async fn send_appends_lines_to_a_new_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(FILE_NAME);
        let outbox = Outbox::with_clock(&path, ManualClock::new(1_735_787_045_000));
        for code in ["111111", "222222"] {
            let msg = compose(
                &MessageKind::EmergencyEmailCode { code },
                "en",
                Channel::Email,
                "bob@example.test",
                "Acme",
                "Bob",
                None,
            );
            outbox.send(&msg).await.unwrap();
        }
        let content = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = content.lines().map(parse).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["ts"], "2025-01-02T03:04:05Z");
        assert_eq!(lines[0]["code"], "111111");
        assert_eq!(lines[1]["code"], "222222");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }

    #[tokio::test]
    async fn an_unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let outbox = Outbox::new(dir.path());
        let msg = compose(
            &MessageKind::CodeReplayed,
            "en",
            Channel::Push,
            "device",
            "Acme",
            "A",
            None,
        );
        let e = outbox.send(&msg).await.unwrap_err();
        assert!(
            e.to_string().starts_with("cannot append to the outbox"),
            "{e}"
        );
    }
}
