//! The portal's languages: choosing one from `Accept-Language` or an explicit switch.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_quality() {
        assert_eq!(
            Lang::negotiate(Some("ko-KR,ko;q=0.9,en;q=0.8"), Lang::En),
            Lang::Ko
        );
        assert_eq!(
            Lang::negotiate(Some("fr, en;q=0.5, ko;q=0.4"), Lang::Ko),
            Lang::En
        );
        assert_eq!(Lang::negotiate(Some("fr"), Lang::Ko), Lang::Ko);
        assert_eq!(Lang::negotiate(None, Lang::En), Lang::En);
        assert_eq!(Lang::negotiate(Some("ko;q=0"), Lang::En), Lang::En);
    }
}
