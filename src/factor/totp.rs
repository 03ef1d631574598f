//! Time-based one-time passwords: RFC 4226 HOTP and RFC 6238 TOTP, the secret that feeds them,
//! its `otpauth://` enrolment URI and QR code, and the check of a user-entered code (drift window
//! and replay refusal). Pure functions only: durable state (the sealed secret, the last accepted
//! step) lives in `factor::Factors`.

use std::fmt;

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::rngs::OsRng;
use rand::RngCore;
use ring::hmac;
use subtle::ConstantTimeEq;

use super::FactorError;

/// The HMAC behind an OTP. Authenticator apps mostly honour only SHA-1 (Google Authenticator
/// ignores the `algorithm` parameter), so enrolment always uses `Sha1`; the others exist for the
/// RFC 6238 vectors and for importing secrets from elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The name used in the `algorithm` parameter of an `otpauth://` URI.
    pub fn uri_name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

/// The time step X of RFC 6238 (T0 is 0).
pub const STEP_SECS: u64 = 30;
/// Digits of the codes stepgate issues and accepts.
pub const DIGITS: u32 = 6;
/// Length of a generated secret: 160 bits, the RFC 4226 §4 R6 recommendation (RFC 4226 §4 R6, ASVS 5.0 6.5.3).
pub const SECRET_BYTES: usize = 20;
/// Steps accepted either side of the current one (RFC 6238 §5.2, NIST SP 800-63B §5.1.4.2: at most ±1).
pub const DRIFT_STEPS: u64 = 1;

/// RFC 4226 HOTP: HMAC over the 8-byte big-endian counter, dynamic truncation, modulo 10^digits.
/// `digits` is clamped to 1..=9 (10^10 does not fit the 31-bit truncated value's type).
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> u32 {
    let key = hmac::Key::new(alg.hmac(), secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Every HMAC here is at least 20 bytes long, so offset + 3 <= 15 + 3 is always in range.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    binary % 10u32.pow(digits.clamp(1, 9))
}

/// RFC 6238 TOTP with T0 = 0 and a 30 s step. The counter is 64-bit, so times past 2038
/// (and the RFC's t = 20000000000 vector) work.
pub fn totp(secret: &[u8], unix_secs: u64, digits: u32, alg: Algorithm) -> u32 {
    hotp(secret, unix_secs / STEP_SECS, digits, alg)
}

/// A 160-bit TOTP secret. `Debug` is redacted and the bytes are overwritten on drop
/// (best effort: copies made by the caller, e.g. the base32 strings, are the caller's to drop).
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// 160 bits from the operating system's CSPRNG (`getrandom`). `OsRng` panics only if the OS
    /// cannot supply randomness at all, in which case no secret could be made anyway.
    pub fn generate() -> TotpSecret {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> TotpSecret {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, upper case, without padding (what authenticator apps expect).
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The base32 form in groups of four separated by spaces, for typing by hand.
    pub fn base32_grouped(&self) -> String {
        let plain = self.base32();
        let mut out = String::with_capacity(plain.len() + plain.len() / 4);
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

impl Clone for TotpSecret {
    fn clone(&self) -> Self {
        TotpSecret(self.0.clone())
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TotpSecret(<{} bytes redacted>)", self.0.len())
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        super::wipe(&mut self.0);
    }
}

/// The Key Uri Format of the Google Authenticator wiki:
/// `otpauth://totp/ISSUER:ACCOUNT?secret=..&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
/// Issuer and account are percent-encoded separately (a space is `%20`, never `+`; a `:` inside
/// either is `%3A`, so only the separator is a literal colon). An empty issuer leaves out both the
/// prefix and the parameter.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    let mut uri = String::from("otpauth://totp/");
    if !issuer.is_empty() {
        uri.push_str(&percent_encode(issuer));
        uri.push(':');
    }
    uri.push_str(&percent_encode(account));
    uri.push_str("?secret=");
    uri.push_str(&secret.base32());
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        uri.push_str(&percent_encode(issuer));
    }
    uri.push_str(&format!(
        "&algorithm={}&digits={DIGITS}&period={STEP_SECS}",
        Algorithm::Sha1.uri_name()
    ));
    uri
}

/// Percent-encodes every byte outside RFC 3986 `unreserved` (ALPHA / DIGIT / "-" / "." / "_" /
/// "~"), UTF-8 first. Stricter than needed for a path or a query value, which is always safe.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Longest input accepted by `qr_svg`: the byte capacity of a version 40 QR code at level M.
/// Checked up front so an absurd input costs nothing.
const QR_MAX_BYTES: usize = 2331;

/// The QR code of `uri` as an SVG document (error correction M, quiet zone, at least 200 px,
/// black on white). A URI too long for a QR code is an `Err`, never a panic.
pub fn qr_svg(uri: &str) -> Result<String, FactorError> {
    if uri.len() > QR_MAX_BYTES {
        return Err(FactorError::Qr(format!(
            "expected at most {QR_MAX_BYTES} bytes of data, found {}",
            uri.len()
        )));
    }
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| FactorError::Qr(e.to_string()))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build())
}

/// The outcome of checking a user-entered TOTP code.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code matches `step`, which is later than the last accepted one: record `step`.
    Accepted {
        step: u64,
    },
    /// The code matches `step`, but that step was already used (or an earlier one than the last
    /// accepted): a replay, to be logged and refused (RFC 6238 §5.2, NIST SP 800-63B §5.1.4.2).
    Replayed {
        step: u64,
    },
    Wrong,
    /// Not six digits once spaces are removed. Nothing was compared.
    Malformed,
}

/// Longest raw input looked at; anything longer is `Malformed` without further work.
const MAX_INPUT: usize = 64;

/// Parses a code as typed: whitespace removed, then exactly `DIGITS` ASCII digits.
fn parse_code(code: &str) -> Option<u32> {
    if code.len() > MAX_INPUT {
        return None;
    }
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks `code` against the steps around `unix_secs` (current, and one either way).
///
/// Every candidate step is computed and compared in constant time, without stopping at the first
/// match, so the timing does not say which step (if any) matched. If the code matches more than
/// one step (a 1-in-a-million coincidence), the earliest not-yet-used step wins, which burns the
/// fewest future steps. Steps at or before `last_step` are never accepted (RFC 6238 §5.2).
pub fn check(secret: &[u8], code: &str, unix_secs: u64, last_step: Option<u64>) -> TotpCheck {
    let Some(entered) = parse_code(code) else {
        return TotpCheck::Malformed;
    };
    let current = unix_secs / STEP_SECS;
    let first = current.saturating_sub(DRIFT_STEPS);
    let last = current + DRIFT_STEPS;
    let mut accepted: Option<u64> = None;
    let mut replayed: Option<u64> = None;
    for step in first..=last {
        let expected = hotp(secret, step, DIGITS, Algorithm::Sha1);
        let matches: bool = expected.to_be_bytes().ct_eq(&entered.to_be_bytes()).into();
        if !matches {
            continue;
        }
        let used = last_step.is_some_and(|last| step <= last);
        if used {
            replayed.get_or_insert(step);
        } else {
            accepted.get_or_insert(step);
        }
    }
    match (accepted, replayed) {
        (Some(step), _) => TotpCheck::Accepted { step },
        (None, Some(step)) => TotpCheck::Replayed { step },
        (None, None) => TotpCheck::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B (RFC 6238 Appendix B): time, SHA1, SHA256, SHA512, 8 digits.
    const VECTORS: [(u64, u32, u32, u32); 6] = [
        (59, 94287082, 46119246, 90693936),
        (1111111109, 7081804, 68084774, 25091201),
        (1111111111, 14050471, 67062674, 99943326),
        (1234567890, 89005924, 91819424, 93441116),
        (2000000000, 69279037, 90698825, 38618901),
        (20000000000, 65353130, 77737706, 47863826),
    ];

    #[test]
    fn rfc6238_appendix_b_all_eighteen_vectors() {
        let mut checked = 0;
        for (t, sha1, sha256, sha512) in VECTORS {
            assert_eq!(totp(SEED_SHA1, t, 8, Algorithm::Sha1), sha1, "sha1 t={t}");
            assert_eq!(
                totp(SEED_SHA256, t, 8, Algorithm::Sha256),
                sha256,
                "sha256 t={t}"
            );
            assert_eq!(
                totp(SEED_SHA512, t, 8, Algorithm::Sha512),
                sha512,
                "sha512 t={t}"
            );
            checked += 3;
        }
        assert_eq!(checked, 18);
    }

    #[test]
    fn rfc6238_last_vector_needs_a_64_bit_counter() {
        // The time itself does not fit 32 bits; the counter (T) is 0x27BC86AA.
        assert!(20_000_000_000u64 > u64::from(u32::MAX));
        assert_eq!(20_000_000_000u64 / STEP_SECS, 0x27BC86AA);
        assert_eq!(
            totp(SEED_SHA1, 20_000_000_000, 8, Algorithm::Sha1),
            65353130
        );
    }

    #[test]
    fn wrong_seed_gives_the_errata_values() {
        // The RFC prose's single 20-byte seed used with SHA256/512 (the known erratum).
        assert_eq!(totp(SEED_SHA1, 59, 8, Algorithm::Sha256), 32247374);
        assert_eq!(totp(SEED_SHA1, 59, 8, Algorithm::Sha512), 69342147);
    }

    #[test]
    fn six_digit_truncations_keep_leading_zeros() {
        assert_eq!(totp(SEED_SHA1, 59, DIGITS, Algorithm::Sha1), 287082);
        let code = totp(SEED_SHA1, 1111111109, DIGITS, Algorithm::Sha1);
        assert_eq!(code, 81804);
        assert_eq!(format!("{code:06}"), "081804");
        assert!(matches!(
            check(SEED_SHA1, "081804", 1111111109, None),
            TotpCheck::Accepted { .. }
        ));
    }

    #[test]
    fn rfc4226_appendix_d_hotp_counters_0_to_9() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(SEED_SHA1, counter as u64, 6, Algorithm::Sha1),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn digits_are_clamped_not_overflowed() {
        assert!(hotp(SEED_SHA1, 0, 12, Algorithm::Sha1) < 1_000_000_000);
        assert!(hotp(SEED_SHA1, 0, 0, Algorithm::Sha1) < 10);
    }

    fn code_at(secret: &[u8], t: u64) -> String {
        format!("{:06}", totp(secret, t, DIGITS, Algorithm::Sha1))
    }

    #[test]
    fn drift_of_one_step_either_way_is_accepted_two_is_refused() {
        let secret = SEED_SHA1;
        let now = 1_700_000_010u64;
        let step = now / STEP_SECS;
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (now as i64 + offset * STEP_SECS as i64) as u64;
            let code = code_at(secret, at);
            // Guard against a coincidental match with a neighbouring step.
            let result = check(secret, &code, now, None);
            if ok {
                assert_eq!(
                    result,
                    TotpCheck::Accepted {
                        step: (step as i64 + offset) as u64
                    },
                    "offset {offset}"
                );
            } else {
                assert_eq!(result, TotpCheck::Wrong, "offset {offset}");
            }
        }
    }

    #[test]
    fn same_step_is_replayed() {
        let now = 1_700_000_010u64;
        let code = code_at(SEED_SHA1, now);
        let TotpCheck::Accepted { step } = check(SEED_SHA1, &code, now, None) else {
            panic!("fresh code refused");
        };
        assert_eq!(
            check(SEED_SHA1, &code, now, Some(step)),
            TotpCheck::Replayed { step }
        );
    }

    #[test]
    fn earlier_step_is_refused_after_a_later_one() {
        let now = 1_700_000_010u64;
        let step = now / STEP_SECS;
        let earlier = code_at(SEED_SHA1, now - STEP_SECS);
        // The current step was accepted: the previous step's code, though inside the window, is
        // now a replay.
        assert_eq!(
            check(SEED_SHA1, &earlier, now, Some(step)),
            TotpCheck::Replayed { step: step - 1 }
        );
        // The next step is still fine.
        let next = code_at(SEED_SHA1, now + STEP_SECS);
        assert_eq!(
            check(SEED_SHA1, &next, now, Some(step)),
            TotpCheck::Accepted { step: step + 1 }
        );
    }

    #[test]
    fn spaces_are_stripped() {
        let now = 1_700_000_010u64;
        let code = code_at(SEED_SHA1, now);
        let spaced = format!(" {} {} ", &code[..3], &code[3..]);
        assert!(matches!(
            check(SEED_SHA1, &spaced, now, None),
            TotpCheck::Accepted { .. }
        ));
    }

    #[test]
    fn malformed_input_never_panics() {
        let long = "1".repeat(100_000);
        let inputs = [
            "",
            " ",
            "abcdef",
            "12345",
            "1234567",
            "12a456",
            "１２３４５６",
            "-12345",
            "+12345",
            "123456\0",
            "0x1234",
            long.as_str(),
            "٣٣٣٣٣٣",
        ];
        for input in inputs {
            assert_eq!(
                check(SEED_SHA1, input, 59, None),
                TotpCheck::Malformed,
                "{input:?}"
            );
        }
    }

    #[test]
    fn time_zero_does_not_underflow() {
        let code = code_at(SEED_SHA1, 0);
        assert_eq!(
            check(SEED_SHA1, &code, 0, None),
            TotpCheck::Accepted { step: 0 }
        );
        assert!(matches!(
            check(SEED_SHA1, "000000", u64::MAX, None),
            TotpCheck::Accepted { .. } | TotpCheck::Wrong
        ));
    }

    #[test]
    fn generated_secrets_are_160_bits_and_distinct() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.base32().len(), 32);
        assert!(!a.base32().contains('='));
    }

    #[test]
    fn base32_forms() {
        let s = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        assert_eq!(s.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            s.base32_grouped(),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("49"), "{shown}");
        assert!(!shown.contains("GEZD"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn otpauth_uri_escapes_issuer_and_account() {
        let s = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        let uri = otpauth_uri("회사 VPN", "kim@example.com", &s);
        assert_eq!(
            uri,
            "otpauth://totp/%ED%9A%8C%EC%82%AC%20VPN:kim%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=%ED%9A%8C%EC%82%AC%20VPN\
             &algorithm=SHA1&digits=6&period=30"
        );
        let colon = otpauth_uri("A:B & C", "x", &s);
        assert!(
            colon.starts_with("otpauth://totp/A%3AB%20%26%20C:x?"),
            "{colon}"
        );
        assert!(colon.contains("&issuer=A%3AB%20%26%20C&"), "{colon}");
    }

    #[test]
    fn otpauth_uri_without_issuer() {
        let s = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        let uri = otpauth_uri("", "alice", &s);
        assert!(uri.starts_with("otpauth://totp/alice?secret="), "{uri}");
        assert!(!uri.contains("issuer="));
    }

    #[test]
    fn qr_svg_is_an_svg_document() {
        let s = TotpSecret::generate();
        let svg = qr_svg(&otpauth_uri("Example Co", "alice@example.com", &s)).expect("fits");
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(svg.contains("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("#000") && svg.contains("#fff"));
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("a width attribute");
        assert!(width >= 200, "width {width}");
    }

    #[test]
    fn qr_svg_refuses_too_long_input() {
        assert!(qr_svg(&"x".repeat(QR_MAX_BYTES + 1)).is_err());
        assert!(qr_svg(&"x".repeat(100_000)).is_err());
        // Just under the cap may still not fit (binary mode at level M): an error, not a panic.
        let _ = qr_svg(&"\u{00e9}".repeat(QR_MAX_BYTES / 2));
    }
}
