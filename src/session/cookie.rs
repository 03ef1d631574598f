//! The session cookie: its name per listener, its attributes, and reading it from requests.
//!
//! HTTPS: `__Host-stepgate_session=ID; Path=/; Secure; HttpOnly; SameSite=Lax` (host-only, no
//! `Domain`, no expiry: the server enforces timeouts). With `session.cookie_domain` set (single
//! sign-on across subdomains) it is `__Secure-stepgate_session` with `Domain=`. A plain-HTTP
//! listener (local try-outs) drops `Secure` and the prefix, so every client keeps the cookie.

use http::HeaderMap;

pub const PLAIN: &str = "stepgate_session";
pub const HOST: &str = "__Host-stepgate_session";
pub const SECURE: &str = "__Secure-stepgate_session";

/// Cookie naming for one request: depends on the listener's scheme and the config.
#[derive(Debug, Clone, Copy)]
pub struct CookieJar<'a> {
    pub tls: bool,
    pub domain: Option<&'a str>,
}

impl CookieJar<'_> {
    pub fn session_name(&self) -> &'static str {
        match (self.tls, self.domain) {
            (false, _) => PLAIN,
            (true, None) => HOST,
            (true, Some(_)) => SECURE,
        }
    }

    fn attributes(&self) -> String {
        let mut a = String::from("Path=/; HttpOnly; SameSite=Lax");
        if self.tls {
            a.push_str("; Secure");
            if let Some(d) = self.domain {
                a.push_str("; Domain=");
                a.push_str(d);
            }
        }
        a
    }

    /// `Set-Cookie` value carrying a session ID.
    pub fn set_session(&self, id: &str) -> String {
        format!("{}={id}; {}", self.session_name(), self.attributes())
    }

    /// `Set-Cookie` value that removes the session cookie.
    pub fn clear_session(&self) -> String {
        format!("{}=; Max-Age=0; {}", self.session_name(), self.attributes())
    }

    /// A named helper cookie (e.g. the sign-in form's CSRF binding), host-only, `SameSite=Strict`.
    pub fn set_other(&self, base: &str, value: &str) -> String {
        if self.tls {
            format!("__Host-{base}={value}; Path=/; HttpOnly; SameSite=Strict; Secure")
        } else {
            format!("{base}={value}; Path=/; HttpOnly; SameSite=Strict")
        }
    }

    pub fn other_name(&self, base: &str) -> String {
        if self.tls {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    read_all(headers, name).next()
}

/// Every value of cookie `name` in the request's `Cookie` headers, in the order sent (browsers
/// send the more specific path, then the older cookie, first).
pub fn read_all<'h, 'n>(
    headers: &'h HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_per_listener() {
        let https = CookieJar {
            tls: true,
            domain: None,
        };
        assert_eq!(
            https.set_session("abc"),
            "__Host-stepgate_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let sso = CookieJar {
            tls: true,
            domain: Some("example.com"),
        };
        assert_eq!(sso.set_session("abc"), "__Secure-stepgate_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure; Domain=example.com");
        let plain = CookieJar {
            tls: false,
            domain: None,
        };
        assert_eq!(
            plain.set_session("abc"),
            "stepgate_session=abc; Path=/; HttpOnly; SameSite=Lax"
        );
        assert!(plain.clear_session().contains("Max-Age=0"));
    }

    #[test]
    fn reads_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; stepgate_session=xyz".parse().unwrap(),
        );
        h.append(
            http::header::COOKIE,
            "stepgate_session=second".parse().unwrap(),
        );
        assert_eq!(read(&h, "stepgate_session"), Some("xyz"));
        assert_eq!(read(&h, "missing"), None);
        let all: Vec<&str> = read_all(&h, "stepgate_session").collect();
        assert_eq!(all, vec!["xyz", "second"]);
    }
}
