//! The catalogue's own checks: it parses, both languages say the same things, every id the code
//! and the templates ask for is there, and every text formats cleanly.

use std::collections::{BTreeMap, BTreeSet};

use fluent_syntax::ast;

use super::*;

const LANGS: [Lang; 2] = [Lang::En, Lang::Ko];

fn sources(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::En => ENGLISH,
        Lang::Ko => KOREAN,
    }
}

/// Every message and term of a language, with its attributes' names.
fn entries(lang: Lang) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for source in sources(lang) {
        let resource = fluent_syntax::parser::parse(*source)
            .unwrap_or_else(|(_, errors)| panic!("{}: {errors:?}", lang.tag()));
        for entry in resource.body {
            let (id, attributes) = match entry {
                ast::Entry::Message(m) => (m.id.name.to_owned(), m.attributes),
                ast::Entry::Term(t) => (format!("-{}", t.id.name), t.attributes),
                _ => continue,
            };
            let attributes = attributes.iter().map(|a| a.id.name.to_owned()).collect();
            assert!(
                out.insert(id.clone(), attributes).is_none(),
                "{}: {id} is defined twice",
                lang.tag()
            );
        }
    }
    out
}

/// The ids of the messages (not terms) of a language.
fn message_ids(lang: Lang) -> Vec<String> {
    entries(lang)
        .into_keys()
        .filter(|id| !id.starts_with('-'))
        .collect()
}

/// Values for every variable any text uses, so that each formats completely.
fn sample_args(remaining: u32) -> Vec<(&'static str, Arg<'static>)> {
    vec![
        ("service", "Acme".into()),
        ("user", "Alice".into()),
        ("has_user", "yes".into()),
        ("code", "482913".into()),
        ("factor", "passkey".into()),
        ("remaining", remaining.into()),
        ("new_address", "n***@example.test".into()),
        ("link", "https://acme.test/x".into()),
        ("when", "2026-12-01 08:30 UTC".into()),
        ("address", "203.0.113.7".into()),
        ("browser", "Firefox on Linux".into()),
        ("email", "a***@example.test".into()),
        ("date", "2026-12-01".into()),
        ("until", "2026-12-31".into()),
        ("left", remaining.into()),
        ("times", (remaining + 1).into()),
        ("eul", "를".into()),
        ("seconds", remaining.into()),
        ("minutes", remaining.into()),
        ("hours", (remaining + 2).into()),
        ("to", "a***e@example.test".into()),
        ("phone", "+82 10-****-0001".into()),
        ("app", "app.example.test".into()),
        ("min", 8u32.into()),
        ("started", "2026-12-01 08:30 UTC".into()),
        ("last_seen", "2026-12-01 09:30 UTC".into()),
        ("first_used", "2026-12-01 08:30 UTC".into()),
        ("last_used", "2026-12-01 09:30 UTC".into()),
        ("added", "2026-12-01 08:30 UTC".into()),
        ("count", remaining.into()),
        ("from", "2026-12-01 08:30 UTC".into()),
        ("max", 10u32.into()),
        ("expires", "2026-12-31 08:30 UTC".into()),
        ("created", "2026-12-01 08:30 UTC".into()),
        ("n", 2u32.into()),
        ("name", "My phone".into()),
    ]
}

fn has_hangul(s: &str) -> bool {
    s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

#[test]
fn the_compiled_texts_parse() {
    for lang in LANGS {
        if let Err(e) = bundle(lang, sources(lang)) {
            panic!("{e}");
        }
    }
    assert!(Catalogue::compiled().has(Lang::Ko, "login-title"));
}

#[test]
fn both_languages_have_the_same_ids_and_attributes() {
    let en = entries(Lang::En);
    let ko = entries(Lang::Ko);
    let only = |a: &BTreeMap<String, BTreeSet<String>>, b: &BTreeMap<String, BTreeSet<String>>| {
        a.iter()
            .filter(|(id, attrs)| b.get(*id) != Some(*attrs))
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        only(&en, &ko),
        Vec::<String>::new(),
        "in English, not so in Korean"
    );
    assert_eq!(
        only(&ko, &en),
        Vec::<String>::new(),
        "in Korean, not so in English"
    );
}

#[test]
fn every_id_the_templates_and_the_code_use_exists() {
    // `t("id"`, `t_html("id"`, `text("id"`, `text_with("id"`, and `text(lang, "id"` on a
    // catalogue.
    let calls =
        regex::Regex::new(r#"\b(?:t|t_html|text|text_with)\(\s*(?:\w+,\s*)?"([^"]+)""#).unwrap();
    let rust: &[(&str, &str)] = &[
        ("portal.rs", include_str!("../portal.rs")),
        ("portal/account.rs", include_str!("../portal/account.rs")),
        (
            "portal/authenticator.rs",
            include_str!("../portal/authenticator.rs"),
        ),
        (
            "portal/challenge.rs",
            include_str!("../portal/challenge.rs"),
        ),
        ("portal/contact.rs", include_str!("../portal/contact.rs")),
        ("portal/browsers.rs", include_str!("../portal/browsers.rs")),
        ("portal/protect.rs", include_str!("../portal/protect.rs")),
        ("portal/password.rs", include_str!("../portal/password.rs")),
        ("portal/guide.rs", include_str!("../portal/guide.rs")),
        ("portal/login.rs", include_str!("../portal/login.rs")),
        ("portal/reauth.rs", include_str!("../portal/reauth.rs")),
        ("portal/setup.rs", include_str!("../portal/setup.rs")),
        (
            "portal/approvals.rs",
            include_str!("../portal/approvals.rs"),
        ),
        ("portal/devices.rs", include_str!("../portal/devices.rs")),
        (
            "portal/certificates.rs",
            include_str!("../portal/certificates.rs"),
        ),
        ("portal/passkeys.rs", include_str!("../portal/passkeys.rs")),
        ("notify/message.rs", include_str!("../notify/message.rs")),
    ];
    let catalogue = Catalogue::compiled();
    let mut used = 0;
    let mut missing = Vec::new();
    for (file, source) in crate::portal::TEMPLATES.iter().chain(rust) {
        for id in calls.captures_iter(source).map(|c| c[1].to_owned()) {
            used += 1;
            for lang in LANGS {
                if !catalogue.has(lang, &id) {
                    missing.push(format!("{file}: {id} ({})", lang.tag()));
                }
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
    assert!(
        used > 100,
        "only {used} uses found: is the pattern still right?"
    );
}

#[test]
fn every_text_formats_without_braces_and_in_its_own_script() {
    let catalogue = Catalogue::compiled();
    for lang in LANGS {
        for id in message_ids(lang) {
            for remaining in [0, 1, 2, 3, 8] {
                let text = catalogue
                    .text(lang, &id, &sample_args(remaining))
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(!text.contains(['{', '}']), "{id} ({}): {text}", lang.tag());
                assert!(
                    !text.contains(['\u{2068}', '\u{2069}']),
                    "{id} ({}): isolation marks",
                    lang.tag()
                );
                assert_eq!(
                    has_hangul(&text),
                    lang == Lang::Ko,
                    "{id} ({}): {text}",
                    lang.tag()
                );
            }
        }
    }
}

#[test]
fn markup_is_only_in_texts_marked_html() {
    let catalogue = Catalogue::compiled();
    for lang in LANGS {
        for id in message_ids(lang) {
            let text = catalogue
                .text(lang, &id, &sample_args(1))
                .unwrap_or_default();
            assert_eq!(
                text.contains(['<', '>', '&']),
                id.ends_with("-html"),
                "{id} ({}): {text}",
                lang.tag()
            );
        }
    }
}

#[test]
fn plurals_and_selectors_choose_by_value() {
    let left = |n: u32| {
        Lang::En.text_with(
            "guide-later-left",
            &[("left", n.into()), ("times", (n + 1).into())],
        )
    };
    assert_eq!(left(1), "You can postpone this 1 more time after this one.");
    assert_eq!(
        left(2),
        "You can postpone this 2 more times after this one."
    );
    let greeting = |has_user: &'static str| {
        Lang::Ko.text_with(
            "message-greeting",
            &[("has_user", has_user.into()), ("user", "앨리스".into())],
        )
    };
    assert_eq!(greeting("yes"), "안녕하세요, 앨리스님.");
    assert_eq!(greeting("no"), "안녕하세요.");
}

#[test]
fn a_missing_id_or_variable_gives_the_id_and_never_panics() {
    assert_eq!(Lang::En.text("no-such-text"), "no-such-text");
    assert_eq!(Lang::Ko.text("account-fresh"), "account-fresh");
    assert!(matches!(
        Catalogue::compiled().text(Lang::En, "account-fresh", &[]),
        Err(TextError::Format { .. })
    ));
    assert!(matches!(
        Catalogue::empty().text(Lang::Ko, "login-title", &[]),
        Err(TextError::Missing { .. })
    ));
}
