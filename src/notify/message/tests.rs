//! What messages say, in both languages, on every channel, and what happens when a text fails.

use std::sync::OnceLock;

use super::*;

const CODE: &str = "482913";
const LINK: &str = "https://acme.test/_stepgate/account";

fn origin() -> &'static Origin {
    static ORIGIN: OnceLock<Origin> = OnceLock::new();
    ORIGIN.get_or_init(|| Origin {
        at_ms: 1_796_113_800_000,
        address: "203.0.113.7".into(),
        browser: "Chrome on Android".into(),
    })
}

fn all_kinds() -> Vec<MessageKind<'static>> {
    let origin = origin();
    vec![
        MessageKind::EnrolmentCode { code: CODE },
        MessageKind::EmergencyEmailCode { code: CODE },
        MessageKind::FactorAdded {
            factor: "totp",
            origin,
        },
        MessageKind::FactorRemoved {
            factor: "webauthn",
            origin,
        },
        MessageKind::FactorReplaced {
            factor: "totp",
            origin,
        },
        MessageKind::EmergencyEmailChanged {
            new: "n***@example.test",
            origin,
        },
        MessageKind::RecoveryCodeUsed { remaining: 3 },
        MessageKind::RecoveryCodesRegenerated { origin },
        MessageKind::CodeReplayed,
        MessageKind::SecondFactorFailed,
    ]
}

fn has_hangul(s: &str) -> bool {
    s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

#[test]
fn every_kind_has_its_texts() {
    let catalogue = Catalogue::compiled();
    for kind in all_kinds() {
        for part in ["title", "body", "line"] {
            let id = format!("{}-{part}", kind.name());
            for lang in [Lang::En, Lang::Ko] {
                assert!(catalogue.has(lang, &id), "{id} ({})", lang.tag());
            }
        }
    }
}

#[test]
fn every_factor_key_has_a_label() {
    let keys = [
        "totp",
        "webauthn",
        "passkey",
        "sms",
        "email",
        "recovery_codes",
    ];
    for key in keys {
        let id = factor_id(key).unwrap_or_else(|| panic!("{key}"));
        for lang in [Lang::En, Lang::Ko] {
            assert!(Catalogue::compiled().has(lang, id), "{id}");
        }
    }
    assert_eq!(factor_id("Authenticator App"), Some("factor-totp"));
    assert_eq!(factor_id("YubiKey 5"), None);
}

#[test]
fn every_kind_renders_in_both_languages_on_every_channel() {
    for kind in all_kinds() {
        for lang in [Lang::En, Lang::Ko] {
            for channel in [Channel::Email, Channel::Sms, Channel::Push] {
                for link in [None, Some(LINK)] {
                    let what = format!("{} {} {channel} link={link:?}", kind.name(), lang.tag());
                    let (subject, text) = render(
                        Catalogue::compiled(),
                        &kind,
                        lang,
                        channel,
                        "Acme",
                        "Alice",
                        link,
                    )
                    .unwrap_or_else(|e| panic!("{what}: {e:#}"));
                    assert!(
                        subject.starts_with("[Acme] ") && subject.len() > 8,
                        "{what}: {subject}"
                    );
                    assert!(!subject.contains('\n'), "{what}: {subject}");
                    if let Some(code) = kind.code() {
                        assert!(text.contains(code), "{what}: {text}");
                    }
                    if link.is_some() {
                        assert!(text.contains(LINK), "{what}: {text}");
                    }
                    assert_eq!(has_hangul(&text), lang == Lang::Ko, "{what}: {text}");
                    assert_eq!(has_hangul(&subject), lang == Lang::Ko, "{what}: {subject}");
                    assert!(
                        !text.contains("{{") && !text.contains("{%"),
                        "{what}: {text}"
                    );
                    match channel {
                        Channel::Email => {
                            assert!(text.lines().count() >= 5, "{what}: {text}");
                            assert!(!text.contains("\n\n\n"), "{what}: {text}");
                            assert!(text.contains("Acme"), "{what}: {text}");
                        }
                        Channel::Sms | Channel::Push => {
                            assert!(!text.contains('\n'), "{what}: {text}");
                            assert!(text.starts_with("[Acme] "), "{what}: {text}");
                            let limit = if link.is_some() {
                                200 + LINK.len()
                            } else {
                                200
                            };
                            assert!(
                                text.chars().count() <= limit,
                                "{what}: {} chars: {text}",
                                text.chars().count()
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn compose_fills_code_link_kind() {
    let msg = compose(
        &MessageKind::EnrolmentCode { code: CODE },
        "ko-KR",
        Channel::Email,
        "alice@example.test",
        "Acme",
        "앨리스",
        Some(LINK),
    );
    assert_eq!(msg.code.as_deref(), Some(CODE));
    assert_eq!(msg.link.as_deref(), Some(LINK));
    assert_eq!(msg.kind, "enrolment_code");
    assert_eq!(msg.to, "alice@example.test");
    assert!(
        msg.text.starts_with("안녕하세요, 앨리스님."),
        "{}",
        msg.text
    );
    assert!(msg.text.contains("10분"), "{}", msg.text);

    let notice = compose(
        &MessageKind::SecondFactorFailed,
        "fr",
        Channel::Sms,
        "+821000000001",
        "Acme",
        "Alice",
        None,
    );
    assert_eq!(notice.code, None);
    assert_eq!(notice.link, None);
    assert!(notice.text.contains("password"), "{}", notice.text);
}

#[test]
fn codes_state_validity_and_what_to_do() {
    for kind in [
        MessageKind::EnrolmentCode { code: CODE },
        MessageKind::EmergencyEmailCode { code: CODE },
    ] {
        let en = compose(
            &kind,
            "en",
            Channel::Email,
            "a@b.test",
            "Acme",
            "Alice",
            None,
        );
        assert!(en.text.contains("10 minutes"), "{}", en.text);
        let lower = en.text.to_lowercase();
        // What to do is something that exists: the user cannot change a password in stepgate
        // (yet), so they are sent to their administrator.
        assert!(
            lower.contains("ignore") && lower.contains("tell your administrator"),
            "{}",
            en.text
        );
        assert!(!lower.contains("and change your password"), "{}", en.text);
        let ko = compose(
            &kind,
            "ko",
            Channel::Email,
            "a@b.test",
            "Acme",
            "Alice",
            None,
        );
        assert!(ko.text.contains("10분"), "{}", ko.text);
        assert!(
            ko.text.contains("무시") && ko.text.contains("관리자에게 알려"),
            "{}",
            ko.text
        );
        assert!(!ko.text.contains("비밀번호를 변경"), "{}", ko.text);
    }
}

#[test]
fn notices_say_when_and_what_to_do() {
    for kind in all_kinds().into_iter().filter(|k| k.code().is_none()) {
        for channel in [Channel::Email, Channel::Sms] {
            let en = compose(&kind, "en", channel, "a@b.test", "Acme", "Alice", None);
            let lower = en.text.to_lowercase();
            assert!(lower.contains("just"), "{}: {}", kind.name(), en.text);
            assert!(
                lower.contains("tell your administrator"),
                "{}: {}",
                kind.name(),
                en.text
            );
            assert!(
                !lower.contains("change your password right away"),
                "a step that does not exist: {}: {}",
                kind.name(),
                en.text
            );
            let ko = compose(&kind, "ko", channel, "a@b.test", "Acme", "Alice", None);
            assert!(ko.text.contains("방금"), "{}: {}", kind.name(), ko.text);
            assert!(
                ko.text.contains("관리자에게 알려"),
                "{}: {}",
                kind.name(),
                ko.text
            );
            assert!(
                !ko.text.contains("비밀번호를 변경"),
                "a step that does not exist: {}: {}",
                kind.name(),
                ko.text
            );
        }
    }
}

#[test]
fn change_notices_say_when_from_where_and_on_which_browser() {
    for kind in all_kinds().into_iter().filter(|k| k.origin().is_some()) {
        let en = compose(
            &kind,
            "en",
            Channel::Email,
            "a@b.test",
            "Acme",
            "Alice",
            None,
        );
        for part in [
            "When: 2026-12-01 08:30 UTC",
            "203.0.113.7",
            "Chrome on Android",
        ] {
            assert!(en.text.contains(part), "{}: {}", kind.name(), en.text);
        }
        let ko = compose(
            &kind,
            "ko",
            Channel::Email,
            "a@b.test",
            "Acme",
            "Alice",
            None,
        );
        assert!(
            ko.text.contains("일시: 2026-12-01 08:30 UTC") && ko.text.contains("접속 IP"),
            "{}: {}",
            kind.name(),
            ko.text
        );
    }
    let plain = compose(
        &MessageKind::CodeReplayed,
        "en",
        Channel::Email,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(!plain.text.contains("When:"), "{}", plain.text);
    let changed = compose(
        &MessageKind::EmergencyEmailChanged {
            new: "n***@example.test",
            origin: origin(),
        },
        "en",
        Channel::Sms,
        "+821000000001",
        "Acme",
        "Alice",
        None,
    );
    assert!(
        changed.text.contains("n***@example.test"),
        "{}",
        changed.text
    );
}

#[test]
fn factors_are_localized() {
    let ko = compose(
        &MessageKind::FactorAdded {
            factor: "totp",
            origin: origin(),
        },
        "ko",
        Channel::Email,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(ko.text.contains("인증 앱"), "{}", ko.text);
    let en = compose(
        &MessageKind::FactorRemoved {
            factor: "passkey",
            origin: origin(),
        },
        "en",
        Channel::Sms,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(en.text.contains("passkey"), "{}", en.text);
    let custom = compose(
        &MessageKind::FactorAdded {
            factor: "YubiKey 5",
            origin: origin(),
        },
        "en",
        Channel::Email,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(custom.text.contains("YubiKey 5"), "{}", custom.text);
}

#[test]
fn recovery_code_count_reads_well() {
    let one = compose(
        &MessageKind::RecoveryCodeUsed { remaining: 1 },
        "en",
        Channel::Email,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(one.text.contains("1 recovery code left"), "{}", one.text);
    let none = compose(
        &MessageKind::RecoveryCodeUsed { remaining: 0 },
        "ko",
        Channel::Email,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(
        none.text.contains("남은 복구 코드가 없습니다"),
        "{}",
        none.text
    );
    let many = compose(
        &MessageKind::RecoveryCodeUsed { remaining: 8 },
        "ko",
        Channel::Sms,
        "a@b.test",
        "Acme",
        "Alice",
        None,
    );
    assert!(many.text.contains("8개"), "{}", many.text);
}

#[test]
fn names_cannot_break_lines() {
    let msg = compose(
        &MessageKind::CodeReplayed,
        "en",
        Channel::Email,
        "a@b.test",
        "Acme\r\nBcc: evil@example.test",
        "Alice",
        None,
    );
    assert!(!msg.subject.contains(['\r', '\n']), "{}", msg.subject);
}

#[test]
fn a_broken_template_falls_back_to_fixed_text() {
    let empty = Catalogue::empty();
    for kind in all_kinds() {
        for lang in [Lang::En, Lang::Ko] {
            assert!(render(&empty, &kind, lang, Channel::Email, "Acme", "Alice", None).is_err());
            let (subject, text) = fallback(&kind, lang, "Acme", Some(LINK));
            assert!(subject.starts_with("[Acme] "));
            assert!(text.contains(LINK));
            if let Some(code) = kind.code() {
                assert!(text.contains(code));
            }
            assert_eq!(has_hangul(&text), lang == Lang::Ko);
        }
    }
}

#[test]
fn debug_hides_code_text_and_link() {
    let msg = compose(
        &MessageKind::EmergencyEmailCode { code: CODE },
        "en",
        Channel::Email,
        "bob@example.test",
        "Acme",
        "Bob",
        Some(LINK),
    );
    let s = format!("{msg:?}");
    assert!(!s.contains(CODE), "{s}");
    assert!(!s.contains(LINK), "{s}");
    assert!(!s.contains("valid for 10 minutes"), "{s}");
    assert!(!s.contains("bob@"), "{s}");
    assert!(s.contains("emergency_email_code"), "{s}");
}
