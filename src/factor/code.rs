//! One-time codes sent by email or SMS (NIST SP 800-63B §5.1.3.2): six CSPRNG digits, held only as a keyed
//! hash, expiring after at most ten minutes, dead after one use or `MAX_ATTEMPTS` wrong tries.
//!
//! A `PendingCode` is plain data with no storage of its own: the caller keeps it with the login
//! attempt that asked for it (which is what binds the code to that attempt) and replaces it on
//! resend. Sending is `notify`'s business.

use std::fmt;
use std::time::Duration;

use rand::rngs::OsRng;
use rand::Rng;
use ring::hmac;
use subtle::ConstantTimeEq;

/// Wrong tries allowed before the code is dead.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest lifetime a code may have (NIST SP 800-63B §5.1.3.2); longer requests are cut to this.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 60);
/// Digits per code: 10^6 possibilities, about 20 bits.
pub const CODE_DIGITS: usize = 6;

/// The key codes are hashed under, derived from the factor key file
/// ([`super::SecretCipher::code_key`]), so a code sent before a restart, or by another gateway
/// on the same database, still checks out.
///
/// What the hash buys is modest and worth saying plainly: with 10^6 possible codes, anyone who
/// holds the key can search the code space; the point is that the code never sits in the
/// database, `Debug` output or a core dump in clear, and that comparison is constant-time.
pub struct CodeKey(hmac::Key);

impl CodeKey {
    pub fn new(bytes: &[u8; 32]) -> CodeKey {
        CodeKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn mac(&self, code: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.0, code.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(<redacted>)")
    }
}

/// A one-time code waiting to be entered. `Debug` shows the state, never the hash. It is plain
/// data: the caller keeps it (in the store's challenges) with the attempt that asked for it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingCode {
    mac: [u8; 32],
    expires_ms: u64,
    wrong: u32,
    used: bool,
}

/// The outcome of checking an entered code.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code, in time. The code is now dead.
    Accepted,
    /// Wrong code. `attempts_left: 0` means that was the last try: the code is now dead and later
    /// checks say `Exhausted`.
    Wrong { attempts_left: u32 },
    /// Past its expiry, or already used once.
    Expired,
    /// `MAX_ATTEMPTS` wrong tries were made; even the right code is refused now.
    Exhausted,
    /// Not six digits once spaces are removed. Does not count as a try (it cannot be right).
    Malformed,
}

impl PendingCode {
    /// Issues a fresh code: returns it (six digits, leading zeros kept) for sending, and the
    /// pending state to keep. `ttl` is capped at `MAX_TTL`.
    pub fn issue(key: &CodeKey, now_ms: u64, ttl: Duration) -> (String, PendingCode) {
        // `gen_range` samples without modulo bias.
        let value: u32 = OsRng.gen_range(0..1_000_000);
        let code = format!("{value:06}");
        let ttl_ms = u64::try_from(ttl.min(MAX_TTL).as_millis()).unwrap_or(u64::MAX);
        let pending = PendingCode {
            mac: key.mac(&code),
            expires_ms: now_ms.saturating_add(ttl_ms),
            wrong: 0,
            used: false,
        };
        (code, pending)
    }

    /// Checks an entered code at `now_ms`. A code is accepted at most once.
    pub fn check(&mut self, key: &CodeKey, code: &str, now_ms: u64) -> CodeCheck {
        if self.used || now_ms >= self.expires_ms {
            return CodeCheck::Expired;
        }
        if self.wrong >= MAX_ATTEMPTS {
            return CodeCheck::Exhausted;
        }
        let Some(entered) = normalize(code) else {
            return CodeCheck::Malformed;
        };
        if bool::from(key.mac(&entered).ct_eq(&self.mac)) {
            self.used = true;
            return CodeCheck::Accepted;
        }
        self.wrong += 1;
        CodeCheck::Wrong {
            attempts_left: MAX_ATTEMPTS - self.wrong,
        }
    }

    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }

    /// Wrong tries left before the code is dead (0 once used or exhausted).
    pub fn attempts_left(&self) -> u32 {
        if self.used {
            0
        } else {
            MAX_ATTEMPTS.saturating_sub(self.wrong)
        }
    }
}

impl fmt::Debug for PendingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCode")
            .field("expires_ms", &self.expires_ms)
            .field("wrong", &self.wrong)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// Whitespace removed, then exactly six ASCII digits; `None` otherwise (and for absurdly long
/// input, without looking at it).
pub(crate) fn normalize(code: &str) -> Option<String> {
    if code.len() > 64 {
        return None;
    }
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const T0: u64 = 1_700_000_000_000;
    const TTL: Duration = Duration::from_secs(300);

    fn key() -> &'static CodeKey {
        static KEY: OnceLock<CodeKey> = OnceLock::new();
        KEY.get_or_init(|| CodeKey::new(&[7; 32]))
    }

    #[test]
    fn another_key_does_not_check_out() {
        let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
        let other = CodeKey::new(&[8; 32]);
        assert!(matches!(
            pending.check(&other, &code, T0),
            CodeCheck::Wrong { .. }
        ));
    }

    /// A code that is certainly not `code`.
    fn other(code: &str) -> String {
        let n: u32 = code.parse().expect("digits");
        format!("{:06}", (n + 1) % 1_000_000)
    }

    #[test]
    fn accepted_once_then_dead() {
        let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
        assert_eq!(pending.check(key(), &code, T0 + 1_000), CodeCheck::Accepted);
        assert_eq!(pending.check(key(), &code, T0 + 2_000), CodeCheck::Expired);
        assert_eq!(pending.attempts_left(), 0);
    }

    #[test]
    fn five_wrong_tries_exhaust_even_the_right_code() {
        let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
        let wrong = other(&code);
        for left in (0..MAX_ATTEMPTS).rev() {
            assert_eq!(
                pending.check(key(), &wrong, T0),
                CodeCheck::Wrong {
                    attempts_left: left
                }
            );
        }
        assert_eq!(pending.check(key(), &code, T0), CodeCheck::Exhausted);
        assert_eq!(pending.check(key(), &wrong, T0), CodeCheck::Exhausted);
    }

    #[test]
    fn expires_at_ttl() {
        let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
        assert_eq!(pending.expires_ms(), T0 + 300_000);
        assert_eq!(
            pending.check(key(), &code, T0 + 300_000),
            CodeCheck::Expired
        );
        let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
        assert_eq!(
            pending.check(key(), &code, T0 + 299_999),
            CodeCheck::Accepted
        );
    }

    #[test]
    fn ttl_is_capped_at_ten_minutes() {
        let (_, pending) = PendingCode::issue(key(), T0, Duration::from_secs(3600));
        assert_eq!(pending.expires_ms(), T0 + 600_000);
    }

    #[test]
    fn malformed_does_not_count_as_a_try() {
        let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
        let long = "9".repeat(10_000);
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "12 34 5",
            long.as_str(),
            "１２３４５６",
        ] {
            assert_eq!(
                pending.check(key(), bad, T0),
                CodeCheck::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(pending.attempts_left(), MAX_ATTEMPTS);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(pending.check(key(), &spaced, T0), CodeCheck::Accepted);
    }

    #[test]
    fn leading_zero_codes_work() {
        // Issue until a code with a leading zero turns up (p = 0.1 per draw).
        for _ in 0..1_000 {
            let (code, mut pending) = PendingCode::issue(key(), T0, TTL);
            if code.starts_with('0') {
                assert_eq!(code.len(), 6);
                let trimmed = code.trim_start_matches('0');
                if trimmed.len() < 6 {
                    assert_eq!(pending.check(key(), trimmed, T0), CodeCheck::Malformed);
                }
                assert_eq!(pending.check(key(), &code, T0), CodeCheck::Accepted);
                return;
            }
        }
        panic!("no leading-zero code in 1000 draws");
    }

    #[test]
    fn codes_are_always_six_digits() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let (code, _) = PendingCode::issue(key(), T0, TTL);
            assert_eq!(code.len(), 6, "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
            seen.insert(code);
        }
        // 1000 draws from 10^6: a handful of collisions at most.
        assert!(seen.len() > 980, "{}", seen.len());
    }

    #[test]
    fn debug_shows_no_hash() {
        let (code, pending) = PendingCode::issue(key(), T0, TTL);
        let shown = format!("{pending:?}");
        assert!(!shown.contains("mac"), "{shown}");
        // The expiry time is shown; only a code that happens to be a substring of it may appear.
        if !pending.expires_ms().to_string().contains(&code) {
            assert!(!shown.contains(&code), "{shown}");
        }
    }
}
