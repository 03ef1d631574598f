//! The languages users see (choosing one from `Accept-Language` or an explicit switch) and every
//! text they read in them: portal pages, refusals and messages, from one catalogue of Project
//! Fluent resources compiled into the binary (`i18n/<lang>/*.ftl`).
//!
//! The catalogue is parsed once per process and never changes, so one copy serves every gateway.
//! Looking a text up never fails the caller: a missing id or a formatting error is logged (target
//! `stepgate::i18n`) and the id itself is shown, which the unit tests below keep from happening
//! for every id the code and the templates use.

pub mod josa;

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use unic_langid::LanguageIdentifier;

/// A value put into a text: a string, or a number (which plural selectors can choose on).
pub use fluent_bundle::FluentValue as Arg;

const LOG_TARGET: &str = "stepgate::i18n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// The language the switch offers from this one.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ko,
            Lang::Ko => Lang::En,
        }
    }

    /// The language's name in itself, for the language switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ko => "한국어",
        }
    }

    /// The supported language with the highest `q` in an `Accept-Language` value.
    pub fn negotiate(accept_language: Option<&str>, default: Lang) -> Lang {
        let Some(value) = accept_language else {
            return default;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in value.split(',').take(16) {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let q = parts
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(default, |(_, l)| l)
    }

    /// The text `id` in this language (see `text_with`).
    pub fn text(self, id: &str) -> String {
        self.text_with(id, &[])
    }

    /// The text `id` in this language with its variables filled in, e.g.
    /// `lang.text_with("account-fresh", &[("until", until.into())])`. A missing id or a
    /// formatting error is logged and gives the id itself.
    pub fn text_with(self, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        Catalogue::compiled()
            .text(self, id, args)
            .unwrap_or_else(|e| {
                tracing::error!(target: LOG_TARGET, error = %e, "text not available; showing its id");
                id.to_owned()
            })
    }
}

/// Why a text could not be formatted.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("no text {id:?} in {lang}")]
    Missing { id: String, lang: &'static str },
    #[error("text {id:?} in {lang} did not format: {problems}")]
    Format {
        id: String,
        lang: &'static str,
        problems: String,
    },
}

type Bundle = FluentBundle<FluentResource>;

/// The Fluent resources of one language, compiled into the binary.
const ENGLISH: &[&str] = &[
    include_str!("i18n/en/portal.ftl"),
    include_str!("i18n/en/messages.ftl"),
];
const KOREAN: &[&str] = &[
    include_str!("i18n/ko/portal.ftl"),
    include_str!("i18n/ko/messages.ftl"),
];

/// Every text in every language: one immutable Fluent bundle per language.
pub struct Catalogue {
    en: Bundle,
    ko: Bundle,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").finish_non_exhaustive()
    }
}

impl Catalogue {
    /// The catalogue compiled into the binary, parsed on first use. `Pages::new` uses it at
    /// start-up, so a defect in the resources (which the unit tests rule out) stops the gateway
    /// before it serves anything.
    pub fn compiled() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| Catalogue {
            en: bundle(Lang::En, ENGLISH)
                .expect("the English texts compiled into the binary parse"),
            ko: bundle(Lang::Ko, KOREAN).expect("the Korean texts compiled into the binary parse"),
        })
    }

    /// A catalogue without a single text, for tests of what happens when texts are missing.
    #[cfg(test)]
    pub(crate) fn empty() -> Catalogue {
        Catalogue {
            en: new_bundle(Lang::En),
            ko: new_bundle(Lang::Ko),
        }
    }

    fn bundle(&self, lang: Lang) -> &Bundle {
        match lang {
            Lang::En => &self.en,
            Lang::Ko => &self.ko,
        }
    }

    /// Whether the text `id` exists in `lang`.
    pub fn has(&self, lang: Lang, id: &str) -> bool {
        self.bundle(lang).has_message(id)
    }

    /// The text `id` in `lang` with `args` filled in.
    pub fn text(
        &self,
        lang: Lang,
        id: &str,
        args: &[(&str, Arg<'_>)],
    ) -> Result<String, TextError> {
        let bundle = self.bundle(lang);
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            return Err(TextError::Missing {
                id: id.to_owned(),
                lang: lang.tag(),
            });
        };
        let mut fluent_args = FluentArgs::with_capacity(args.len());
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if errors.is_empty() {
            Ok(text.into_owned())
        } else {
            Err(TextError::Format {
                id: id.to_owned(),
                lang: lang.tag(),
                problems: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    }
}

fn new_bundle(lang: Lang) -> Bundle {
    let id: LanguageIdentifier = match lang {
        Lang::En => unic_langid::langid!("en"),
        Lang::Ko => unic_langid::langid!("ko"),
    };
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Without this, Fluent wraps every placeable in U+2068/U+2069 (bidi isolation), which
    // neither Korean nor English needs and which would end up in subjects and SMS.
    bundle.set_use_isolating(false);
    bundle
}

/// A bundle of `sources`; the first problem (a syntax error, an id defined twice) fails it.
fn bundle(lang: Lang, sources: &[&str]) -> Result<Bundle, String> {
    let mut bundle = new_bundle(lang);
    for source in sources {
        let resource = FluentResource::try_new((*source).to_owned())
            .map_err(|(_, errors)| format!("{}: {errors:?}", lang.tag()))?;
        bundle
            .add_resource(resource)
            .map_err(|errors| format!("{}: {errors:?}", lang.tag()))?;
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests;
