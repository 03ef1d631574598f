//! A name a person recognises for the browser behind a `User-Agent` ("Chrome (Android)"), for
//! security notices and lists of where an account is signed in. Display only: a `User-Agent` is
//! whatever the client says, so nothing is ever decided on it.

use woothee::parser::Parser;

/// Longest `User-Agent` looked at; real ones are a few hundred bytes.
const MAX_LEN: usize = 512;

/// `"Chrome (Android)"`, `"Firefox (Windows 10)"`; `"unknown browser"` when nothing is
/// recognised. Always one line of printable text.
pub fn describe(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("").trim();
    let ua = match ua.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => &ua[..cut],
        None => ua,
    };
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
    let described = Parser::new()
        .parse(ua)
        .map(|r| match (known(r.name), known(r.os)) {
            (true, true) => format!("{} ({})", r.name, r.os),
            (true, false) => r.name.to_owned(),
            (false, true) => format!("? ({})", r.os),
            (false, false) => String::new(),
        });
    match described.filter(|d| !d.is_empty()) {
        Some(d) => d.chars().filter(|c| !c.is_control()).collect(),
        None => "unknown browser".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named_with_their_system() {
        let chrome_android = "Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
        assert_eq!(describe(Some(chrome_android)), "Chrome (Android)");
        let firefox =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert!(describe(Some(firefox)).starts_with("Firefox (Windows"));
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
        assert_eq!(describe(Some(safari)), "Safari (iPhone)");
    }

    #[test]
    fn nothing_or_nonsense_is_an_unknown_browser() {
        assert_eq!(describe(None), "unknown browser");
        assert_eq!(describe(Some("")), "unknown browser");
        assert_eq!(describe(Some("curl/8.5.0")), "HTTP Library");
        let long = "x".repeat(100_000);
        assert_eq!(describe(Some(&long)), "unknown browser");
    }
}
