//! The account's factor state that is not one factor: enrolment tokens, the guide's "later"
//! count, the emergency email, resets and the account page's summary.

use super::*;

#[tokio::test]
async fn enrolment_token_works_once() {
    let f = fixture();
    let token = f
        .factors
        .issue_enrolment_token("alice", Duration::from_secs(3600))
        .await
        .expect("issue");
    assert_eq!(token.len(), 24, "{token}");
    assert_eq!(token.matches('-').count(), 4, "{token}");
    assert!(!f
        .factors
        .redeem_enrolment_token("bob", &token)
        .await
        .expect("other user"));
    assert!(f
        .factors
        .redeem_enrolment_token("alice", &token.to_lowercase())
        .await
        .expect("redeem"));
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &token)
        .await
        .expect("again"));
}

#[tokio::test]
async fn enrolment_token_expires_and_is_replaced() {
    let f = fixture();
    let ttl = Duration::from_secs(600);
    let first = f
        .factors
        .issue_enrolment_token("alice", ttl)
        .await
        .expect("issue");
    let second = f
        .factors
        .issue_enrolment_token("alice", ttl)
        .await
        .expect("issue");
    assert_ne!(first, second);
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &first)
        .await
        .expect("replaced"));
    f.clock.advance(ttl);
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &second)
        .await
        .expect("expired"));

    let third = f
        .factors
        .issue_enrolment_token("alice", ttl)
        .await
        .expect("issue");
    f.clock.advance(ttl - Duration::from_millis(1));
    for bad in ["", "nonsense", "AAAA-AAAA-AAAA-AAAA-AAA0"] {
        assert!(!f
            .factors
            .redeem_enrolment_token("alice", bad)
            .await
            .expect("bad"));
    }
    assert!(f
        .factors
        .redeem_enrolment_token("alice", &third)
        .await
        .expect("just in time"));
}

#[tokio::test]
async fn skips_are_counted_per_user() {
    let f = fixture();
    assert_eq!(f.factors.skips_used("alice").await.expect("count"), 0);
    assert_eq!(f.factors.record_skip("alice").await.expect("skip"), 1);
    assert_eq!(f.factors.record_skip("alice").await.expect("skip"), 2);
    assert_eq!(f.factors.record_skip("bob").await.expect("skip"), 1);
    assert_eq!(f.factors.skips_used("alice").await.expect("count"), 2);
}

#[tokio::test]
async fn emergency_email() {
    let f = fixture();
    assert_eq!(f.factors.emergency_email("alice").await.expect("get"), None);
    f.factors
        .set_emergency_email("alice", "alice@example.org")
        .await
        .expect("set");
    f.factors
        .set_emergency_email("alice", "a.lice@example.net")
        .await
        .expect("replace");
    assert_eq!(
        f.factors
            .emergency_email("alice")
            .await
            .expect("get")
            .as_deref(),
        Some("a.lice@example.net")
    );
    for bad in [
        "",
        "alice",
        "@example.org",
        "alice@",
        "a@b@c",
        "a lice@x.org",
        "a@x.org\r\nBcc: y",
    ] {
        assert!(
            matches!(
                f.factors.set_emergency_email("alice", bad).await,
                Err(FactorError::InvalidEmail(_))
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn reset_removes_everything_but_the_contact_when_asked() {
    let f = fixture();
    f.enrol("alice").await;
    f.factors.new_recovery_codes("alice").await.expect("codes");
    f.factors
        .issue_enrolment_token("alice", Duration::from_secs(60))
        .await
        .expect("token");
    f.factors.record_skip("alice").await.expect("skip");
    f.factors
        .set_emergency_email("alice", "alice@example.org")
        .await
        .expect("email");
    f.enrol("bob").await;
    assert!(f.factors.enrolled("alice").await.expect("enrolled"));

    f.factors.reset("alice", true).await.expect("reset");
    assert!(
        !f.factors.enrolled("alice").await.expect("enrolled"),
        "cache invalidated at once"
    );
    assert_eq!(
        f.factors.recovery_remaining("alice").await.expect("count"),
        0
    );
    assert_eq!(f.factors.skips_used("alice").await.expect("skips"), 0);
    let summary = f.factors.summary("alice").await.expect("summary");
    assert_eq!(
        summary,
        FactorSummary {
            totp: None,
            sms: None,
            recovery_remaining: 0,
            emergency_email: Some("alice@example.org".into()),
        }
    );
    assert!(f.factors.enrolled("bob").await.expect("bob untouched"));

    f.factors.reset("alice", false).await.expect("reset");
    assert_eq!(
        f.factors.emergency_email("alice").await.expect("email"),
        None
    );
}

#[tokio::test]
async fn reset_consumes_the_enrolment_token() {
    let f = fixture();
    let token = f
        .factors
        .issue_enrolment_token("alice", Duration::from_secs(60))
        .await
        .expect("token");
    f.factors.reset("alice", true).await.expect("reset");
    assert!(!f
        .factors
        .redeem_enrolment_token("alice", &token)
        .await
        .expect("redeem"));
}

#[tokio::test]
async fn summary_for_the_account_page() {
    let f = fixture();
    f.enrol("alice").await;
    f.factors.new_recovery_codes("alice").await.expect("codes");
    let summary = f.factors.summary("alice").await.expect("summary");
    assert_eq!(summary.totp, Some(T0_MS));
    assert_eq!(summary.recovery_remaining, 10);
    assert_eq!(summary.emergency_email, None);
}
