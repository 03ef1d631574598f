//! The file outbox under concurrent sends.

use super::*;

#[tokio::test]
async fn outbox_concurrent_sends_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::in_data_dir(dir.path()));
    let mut tasks = Vec::new();
    for task in 0..2 {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let code = format!("{task}{i:05}");
                let mut msg = compose(
                    &MessageKind::EnrolmentCode { code: &code },
                    if task == 0 { "ko" } else { "en" },
                    Channel::Email,
                    "alice@example.test",
                    "Acme",
                    "Alice",
                    Some("https://acme.test/_stepgate/guide"),
                );
                // Long lines make torn writes likely if they could happen.
                msg.text = msg.text.repeat(20);
                outbox.send(&msg).await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let content = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 400);
    let mut codes = std::collections::BTreeSet::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a well-formed line");
        for key in ["ts", "channel", "to", "subject", "text", "code", "link"] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        codes.insert(v["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(codes.len(), 400);
}
