//! Request-target hygiene: normalises an origin-form HTTP request-target so the
//! access decision is made on exactly the path that is forwarded upstream.
//!
//! Percent-decoding happens once (unreserved characters only), then repeated
//! slashes are merged and dot segments resolved (RFC 3986 §5.2.4). Anything
//! ambiguous (encoded slashes, backslashes, NULs, control or non-ASCII bytes,
//! `..;` path-parameter tricks, an encoded `%` that a second decoding would turn into something
//! else, escapes that are not UTF-8) is refused rather than guessed at. How a lenient app may
//! still read the path differently ([`lenient_reading`]) is given to the rules as well.

use std::fmt;

/// Longest request-target accepted, in bytes.
const MAX_TARGET_LEN: usize = 8192;

/// Why a request target was refused (each maps to HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    NotOriginForm,
    BadPercentEncoding,
    EncodedSlash,
    Backslash,
    Nul,
    ControlOrNonAscii,
    PathParameterDotSegment,
    TooLong,
    /// `%25`: an app that decodes twice would read another path than the rules did.
    EncodedPercent,
    /// Escapes that are not UTF-8 (overlong forms such as `%C0%AE` for `.` included).
    InvalidUtf8,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetError::NotOriginForm => "request target is not in origin form",
            TargetError::BadPercentEncoding => "malformed percent-encoding in path",
            TargetError::EncodedSlash => "encoded slash (%2F) in path",
            TargetError::Backslash => "backslash in path",
            TargetError::Nul => "nul byte in request target",
            TargetError::ControlOrNonAscii => {
                "control, space, fragment or non-ascii byte in request target"
            }
            TargetError::PathParameterDotSegment => "dot segment with path parameter (..;) in path",
            TargetError::TooLong => "request target too long",
            TargetError::EncodedPercent => "encoded percent sign (%25, double encoding) in path",
            TargetError::InvalidUtf8 => "escapes in path that are not UTF-8 (overlong or broken)",
        })
    }
}

/// A normalised origin-form target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalTarget {
    pub path: String,
    pub query: Option<String>,
}

impl NormalTarget {
    /// path + "?" + query when there is one
    pub fn to_uri_string(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes that may never appear raw anywhere in the target.
fn check_raw_byte(b: u8) -> Result<(), TargetError> {
    match b {
        0 => Err(TargetError::Nul),
        b if b < 0x20 || b == 0x7f || b >= 0x80 => Err(TargetError::ControlOrNonAscii),
        b' ' | b'#' => Err(TargetError::ControlOrNonAscii),
        _ => Ok(()),
    }
}

/// Decode unreserved `%XX` once; keep other escapes with uppercase hex.
fn decode_path(path: &[u8]) -> Result<Vec<u8>, TargetError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let hi = path.get(i + 1).copied().and_then(hex_val);
            let lo = path.get(i + 2).copied().and_then(hex_val);
            let (hi, lo) = match (hi, lo) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(TargetError::BadPercentEncoding),
            };
            let d = (hi << 4) | lo;
            match d {
                b'%' => return Err(TargetError::EncodedPercent),
                b'/' => return Err(TargetError::EncodedSlash),
                b'\\' => return Err(TargetError::Backslash),
                0 => return Err(TargetError::Nul),
                d if is_unreserved(d) => out.push(d),
                _ => out.extend_from_slice(&[b'%', HEX[hi as usize], HEX[lo as usize]]),
            }
            i += 3;
        } else {
            if b == b'\\' {
                return Err(TargetError::Backslash);
            }
            check_raw_byte(b)?;
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// The escaped bytes of a decoded path (`%XX`, uppercase) must spell UTF-8 where they are not
/// ASCII: Rust's decoder refuses overlong forms, which lenient ones read as `.` or `/`.
fn check_utf8_escapes(path: &[u8]) -> Result<(), TargetError> {
    let mut run = Vec::new();
    let mut i = 0;
    loop {
        let escaped = path.get(i) == Some(&b'%');
        let byte = escaped
            .then(|| Some((hex_val(*path.get(i + 1)?)? << 4) | hex_val(*path.get(i + 2)?)?))
            .flatten();
        match byte {
            Some(b) if b >= 0x80 => {
                run.push(b);
                i += 3;
                continue;
            }
            _ => {
                if !run.is_empty() && std::str::from_utf8(&run).is_err() {
                    return Err(TargetError::InvalidUtf8);
                }
                run.clear();
            }
        }
        if i >= path.len() {
            return Ok(());
        }
        i += if escaped { 3 } else { 1 };
    }
}

/// How a lenient app may read a normalised `path`, when that differs from the path itself:
/// case folded to lower case, path parameters (`;x=1`) cut from each segment, and trailing
/// dots and spaces (`%20`) cut from each segment (as Windows servers and some frameworks do).
/// The rules are also asked about this reading, and the stricter answer holds.
pub fn lenient_reading(path: &str) -> Option<String> {
    // The common path has none of it: answered without allocating (this runs per request).
    let b = path.as_bytes();
    let plain = !b.iter().any(|c| c.is_ascii_uppercase() || *c == b';')
        && !path.contains("./")
        && !path.ends_with('.')
        && !path.contains("%20");
    if plain {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').skip(1) {
        let mut seg = seg.to_ascii_lowercase();
        if let Some(cut) = seg.find(';') {
            seg.truncate(cut);
        }
        if seg != "." && seg != ".." {
            loop {
                let before = seg.len();
                while seg.ends_with('.') {
                    seg.pop();
                }
                while seg.ends_with("%20") {
                    seg.truncate(seg.len() - 3);
                }
                if seg.len() == before {
                    break;
                }
            }
        }
        out.push('/');
        out.push_str(&seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    let resolved = resolve(out.as_bytes()).ok().map(|r| ascii_string(&r))?;
    (resolved != path).then_some(resolved)
}

/// `.;x`, `..;x` (and the still-encoded `%3B` spelling) after decoding.
fn is_param_dot_segment(seg: &[u8]) -> bool {
    let rest = if let Some(r) = seg.strip_prefix(b"..") {
        r
    } else if let Some(r) = seg.strip_prefix(b".") {
        r
    } else {
        return false;
    };
    rest.starts_with(b";") || rest.starts_with(b"%3B")
}

/// Merge repeated slashes and resolve dot segments. `path` starts with `/`.
fn resolve(path: &[u8]) -> Result<Vec<u8>, TargetError> {
    let body = path.get(1..).unwrap_or(&[]);
    let parts: Vec<&[u8]> = body.split(|&b| b == b'/').collect();
    let last = parts.len().saturating_sub(1);
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for (i, seg) in parts.iter().copied().enumerate() {
        if is_param_dot_segment(seg) {
            return Err(TargetError::PathParameterDotSegment);
        }
        let is_last = i == last;
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            _ => {
                stack.push(seg);
                trailing_slash = false;
                continue;
            }
        }
        if is_last {
            trailing_slash = true;
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for seg in &stack {
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push(b'/');
    }
    Ok(out)
}

/// All bytes have been checked to be ASCII by the time this is called.
fn ascii_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// Normalise a raw origin-form request-target, or say why it is refused.
pub fn normalize_target(raw: &[u8]) -> Result<NormalTarget, TargetError> {
    if raw.len() > MAX_TARGET_LEN {
        return Err(TargetError::TooLong);
    }
    if raw.first() != Some(&b'/') {
        return Err(TargetError::NotOriginForm);
    }
    let (path, query) = match raw.iter().position(|&b| b == b'?') {
        Some(q) => (&raw[..q], Some(&raw[q + 1..])),
        None => (raw, None),
    };
    let decoded = decode_path(path)?;
    check_utf8_escapes(&decoded)?;
    let resolved = resolve(&decoded)?;
    let query = match query {
        Some(q) => {
            for &b in q {
                check_raw_byte(b).map_err(|_| TargetError::ControlOrNonAscii)?;
            }
            Some(ascii_string(q))
        }
        None => None,
    };
    Ok(NormalTarget {
        path: ascii_string(&resolved),
        query,
    })
}

/// `(authority, path and query)` of an `http://` or `https://` absolute-form target (the path
/// `/` when it has none); `None` for any other target.
pub fn absolute_form(raw: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let lower = |n: usize| raw.get(..n).map(|p| p.to_ascii_lowercase());
    let rest = if lower(7).as_deref() == Some(b"http://") {
        &raw[7..]
    } else if lower(8).as_deref() == Some(b"https://") {
        &raw[8..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut target = Vec::with_capacity(tail.len() + 1);
    if !tail.starts_with(b"/") {
        target.push(b'/');
    }
    target.extend_from_slice(tail);
    Some((authority, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> String {
        match normalize_target(s.as_bytes()) {
            Ok(t) => t.path,
            Err(e) => panic!("{s:?} refused: {e}"),
        }
    }
    fn err(s: &[u8]) -> TargetError {
        match normalize_target(s) {
            Ok(t) => panic!("{s:?} accepted as {t:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn basic_and_dot_segments() {
        assert_eq!(path("/"), "/");
        assert_eq!(path("/a/./b/../c"), "/a/c");
        assert_eq!(path("/a/b/.."), "/a/");
        assert_eq!(path("/a/b/."), "/a/b/");
        assert_eq!(path("/../a"), "/a");
        assert_eq!(path("/../../.."), "/");
        assert_eq!(path("/a/b/"), "/a/b/");
        assert_eq!(path("/./"), "/");
        assert_eq!(path("/."), "/");
        assert_eq!(path("/..."), "/...");
        assert_eq!(path("/a/..b/c.."), "/a/..b/c..");
    }

    #[test]
    fn slashes_merged() {
        assert_eq!(path("//"), "/");
        assert_eq!(path("//a///b"), "/a/b");
        assert_eq!(path("/a//"), "/a/");
        assert_eq!(path("/a//../b"), "/b");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(path("/%61dmin"), "/admin");
        assert_eq!(path("/%41%7e%2D%5f"), "/A~-_");
        assert_eq!(path("/%2e%2e/admin"), "/admin");
        assert_eq!(path("/public/%2e%2e/admin"), "/admin");
        assert_eq!(path("/public/%2E./admin"), "/admin");
        assert_eq!(path("/x%3a"), "/x%3A");
        assert_eq!(path("/x%3a%20y"), "/x%3A%20y");
        // decoded once; an encoded % is refused (see `double_encoding_...`)
        assert_eq!(path("/a%3f%23"), "/a%3F%23");
    }

    #[test]
    fn percent_errors() {
        assert_eq!(err(b"/a%2fb"), TargetError::EncodedSlash);
        assert_eq!(err(b"/a%2Fb"), TargetError::EncodedSlash);
        assert_eq!(err(b"/a%5cb"), TargetError::Backslash);
        assert_eq!(err(b"/a%00"), TargetError::Nul);
        assert_eq!(err(b"/a%zz"), TargetError::BadPercentEncoding);
        assert_eq!(err(b"/a%2"), TargetError::BadPercentEncoding);
        assert_eq!(err(b"/a%"), TargetError::BadPercentEncoding);
        assert_eq!(err(b"/a%g0"), TargetError::BadPercentEncoding);
        assert_eq!(err(b"/a%2?x"), TargetError::BadPercentEncoding);
    }

    #[test]
    fn raw_byte_errors() {
        assert_eq!(err(b"/a\\b"), TargetError::Backslash);
        assert_eq!(err(b"/a\0b"), TargetError::Nul);
        assert_eq!(err("/é".as_bytes()), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a b"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a\tb"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a\r\nb"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a\x7f"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a#frag"), TargetError::ControlOrNonAscii);
    }

    #[test]
    fn query_kept_verbatim_but_checked() {
        let t = normalize_target(b"/a//b?x=//..").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.path, "/a/b");
        assert_eq!(t.query.as_deref(), Some("x=//.."));
        assert_eq!(t.to_uri_string(), "/a/b?x=//..");
        let t = normalize_target(b"/a?").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.query.as_deref(), Some(""));
        assert_eq!(t.to_uri_string(), "/a?");
        let t = normalize_target(b"/a?q=%2f%zz\\?").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.query.as_deref(), Some("q=%2f%zz\\?"));
        let t = normalize_target(b"/a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.query, None);
        assert_eq!(t.to_uri_string(), "/a");
        assert_eq!(err(b"/a?x\0"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a?x\n"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a?x\x7f"), TargetError::ControlOrNonAscii);
        assert_eq!(err("/a?é".as_bytes()), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a?x#y"), TargetError::ControlOrNonAscii);
        assert_eq!(err(b"/a?x y"), TargetError::ControlOrNonAscii);
    }

    #[test]
    fn path_parameter_dot_segments() {
        assert_eq!(err(b"/..;/admin"), TargetError::PathParameterDotSegment);
        assert_eq!(
            err(b"/public/..;/admin"),
            TargetError::PathParameterDotSegment
        );
        assert_eq!(
            err(b"/public/..;jsessionid=1/admin"),
            TargetError::PathParameterDotSegment
        );
        assert_eq!(
            err(b"/public/.;/admin"),
            TargetError::PathParameterDotSegment
        );
        assert_eq!(
            err(b"/public/%2e%2e;/admin"),
            TargetError::PathParameterDotSegment
        );
        assert_eq!(
            err(b"/public/..%3b/admin"),
            TargetError::PathParameterDotSegment
        );
        assert_eq!(path("/a;b/c"), "/a;b/c");
        assert_eq!(path("/x..;/c"), "/x..;/c");
    }

    #[test]
    fn not_origin_form_and_length() {
        assert_eq!(err(b"*"), TargetError::NotOriginForm);
        assert_eq!(err(b"http://x/"), TargetError::NotOriginForm);
        assert_eq!(err(b""), TargetError::NotOriginForm);
        assert_eq!(err(b"?a"), TargetError::NotOriginForm);
        let mut long = vec![b'/'];
        long.extend(std::iter::repeat_n(b'a', MAX_TARGET_LEN));
        assert_eq!(err(&long), TargetError::TooLong);
        long.pop();
        assert_eq!(path(&String::from_utf8_lossy(&long)).len(), MAX_TARGET_LEN);
    }

    #[test]
    fn display_is_lowercase() {
        assert_eq!(
            TargetError::EncodedSlash.to_string(),
            "encoded slash (%2F) in path"
        );
        assert_eq!(TargetError::TooLong.to_string(), "request target too long");
    }

    #[test]
    fn double_encoding_and_overlong_escapes_are_refused() {
        assert_eq!(err(b"/a/%252e%252e/b"), TargetError::EncodedPercent);
        assert_eq!(err(b"/a/%25"), TargetError::EncodedPercent);
        assert_eq!(err(b"/%C0%AE%C0%AE/x"), TargetError::InvalidUtf8);
        assert_eq!(err(b"/%E0%80%AF"), TargetError::InvalidUtf8);
        assert_eq!(err(b"/%ED%95"), TargetError::InvalidUtf8, "a cut character");
        assert_eq!(path("/%ED%95%9C/%EA%B8%80"), "/%ED%95%9C/%EA%B8%80");
        assert_eq!(path("/a%2Db"), "/a-b");
    }

    #[test]
    fn the_lenient_reading_folds_case_and_cuts_parameters_dots_and_spaces() {
        assert_eq!(
            lenient_reading("/admin/x"),
            None,
            "nothing to read differently"
        );
        assert_eq!(lenient_reading("/ADMIN/x").as_deref(), Some("/admin/x"));
        assert_eq!(lenient_reading("/admin;x=1/x").as_deref(), Some("/admin/x"));
        assert_eq!(lenient_reading("/admin./x").as_deref(), Some("/admin/x"));
        assert_eq!(lenient_reading("/admin%20/x").as_deref(), Some("/admin/x"));
        assert_eq!(
            lenient_reading("/admin.%20.%20/x").as_deref(),
            Some("/admin/x")
        );
        assert_eq!(lenient_reading("/a;b/../c").as_deref(), Some("/c"));
        assert_eq!(lenient_reading("/").as_deref(), None);
        // Idempotent: reading a lenient reading again changes nothing.
        for p in ["/ADMIN/x", "/admin;x=1/x", "/A./B%20/c"] {
            let once = lenient_reading(p).unwrap();
            assert_eq!(lenient_reading(&once), None, "{p}");
        }
    }
}
