//! Recovery codes: ten single-use look-up secrets a user keeps on paper for when the
//! authenticator is lost. This module makes, normalises and hashes them, and [`RecoveryCodes`]
//! is the second factor over the store: one credential (kind `recovery`) per code, identified by
//! its keyed hash, marked used by the one request that used it. The same alphabet serves the
//! operator's enrolment tokens.
//!
//! A code is looked up by its keyed hash (the pepper is not in the database), so the lookup's
//! timing can tell an attacker nothing they could not compute without the key file.

use std::sync::Arc;

use async_trait::async_trait;
use rand::rngs::OsRng;
use rand::Rng;
use ring::hmac;

use super::{Begun, FactorError, FactorKind, SecondFactor, Shared, Verdict, LOG_TARGET};
use crate::store::{Credential, Write};

const KIND: &str = "recovery";

/// Recovery codes as a second factor.
pub struct RecoveryCodes {
    shared: Arc<Shared>,
}

impl RecoveryCodes {
    pub(crate) fn new(shared: Arc<Shared>) -> RecoveryCodes {
        RecoveryCodes { shared }
    }

    /// Adds to `batch` the writes that replace the user's codes with a fresh set, and returns
    /// the codes (for showing once).
    pub(crate) fn fresh_batch(&self, user: &str, batch: &mut Vec<Write>) -> Vec<String> {
        let codes = generate();
        let now = self.shared.clock.now_ms();
        batch.push(Write::DeleteKinds {
            user: user.to_owned(),
            kinds: vec![KIND.to_owned()],
        });
        for code in &codes {
            // `generate` makes XXXXX-XXXXX from alphabet characters: without the dash it is
            // exactly the normalised form.
            let digest = hash(self.shared.cipher.pepper(), user, &code.replace('-', ""));
            batch.push(Write::Put(Credential {
                user: user.to_owned(),
                kind: KIND.to_owned(),
                id: hex(&digest),
                secret: digest.to_vec(),
                counter: 0,
                created_ms: now,
                used_ms: None,
                expires_ms: None,
                data: Vec::new(),
            }));
        }
        codes
    }

    /// Unused codes of the user.
    pub async fn remaining(&self, user: &str) -> Result<usize, FactorError> {
        let codes = self
            .shared
            .store
            .credentials()
            .credentials(user, Some(KIND))
            .await?;
        Ok(codes.iter().filter(|c| c.used_ms.is_none()).count())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl SecondFactor for RecoveryCodes {
    fn kind(&self) -> FactorKind {
        FactorKind::Recovery
    }

    async fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        Ok(self.remaining(user).await? > 0)
    }

    async fn begin(&self, _user: &str) -> Result<Begun, FactorError> {
        Ok(Begun::Ready)
    }

    /// Uses a code: single use, marked used by one conditional update. Attempts must be
    /// rate-limited by the caller, like every second-factor attempt.
    async fn verify(&self, user: &str, answer: &str) -> Result<Verdict, FactorError> {
        let Some(normalized) = normalize(answer) else {
            return Ok(Verdict::Malformed);
        };
        let id = hex(&hash(self.shared.cipher.pepper(), user, &normalized));
        let store = self.shared.store.credentials();
        let now = self.shared.clock.now_ms();
        if !store.consume(user, KIND, &id, now).await? {
            // Not one of the user's unused codes (a code used already included).
            return Ok(if self.remaining(user).await? == 0 {
                Verdict::NotEnrolled
            } else {
                Verdict::Wrong
            });
        }
        let remaining = self.remaining(user).await?;
        tracing::info!(target: LOG_TARGET, user, remaining, "recovery code used");
        Ok(Verdict::Accepted {
            kind: FactorKind::Recovery,
            remaining: Some(remaining),
        })
    }

    async fn remove(&self, user: &str) -> Result<bool, FactorError> {
        let had = self.remaining(user).await? > 0;
        let batch = vec![Write::DeleteKinds {
            user: user.to_owned(),
            kinds: vec![KIND.to_owned()],
        }];
        self.shared.store.credentials().write(batch).await?;
        Ok(had)
    }
}

/// Codes per set.
pub const COUNT: usize = 10;
/// Characters per code (shown as two groups of five).
pub const CODE_CHARS: usize = 10;

/// Upper-case letters and digits without the look-alikes 0/O, 1/I/L: 31 symbols.
///
/// Trade-off, stated plainly: 31 is one short of a full base32 alphabet, so a 10-character code
/// carries 10 * log2(31) = 49.5 bits, not 50. Keeping the XXXXX-XXXXX shape and dropping the
/// ambiguous characters were judged worth the half bit: NIST SP 800-63B §5.1.2 asks only 20 bits
/// of a rate-limited look-up secret (64 without rate limiting), and stepgate rate-limits every
/// second-factor attempt. An eleventh character would restore 54.5 bits if 50 is ever a hard floor.
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// `n` characters drawn uniformly (no modulo bias: `gen_range` rejects) from `ALPHABET` with the
/// operating system's CSPRNG.
pub(crate) fn random_chars(n: usize) -> String {
    (0..n)
        .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Splits `s` into groups of `size` joined by dashes (`ABCDE-FGHJK`).
pub(crate) fn grouped(s: &str, size: usize) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / size.max(1));
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % size.max(1) == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Normalises typed input to exactly `n` alphabet characters: case-insensitive, spaces and dashes
/// ignored. Anything else (a look-alike, a wrong length, absurdly long input) is `None`.
pub(crate) fn normalize_chars(input: &str, n: usize) -> Option<String> {
    if input.len() > 4 * n + 16 {
        return None;
    }
    let mut out = String::with_capacity(n);
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let upper = c.to_ascii_uppercase();
        if !upper.is_ascii() || !ALPHABET.contains(&(upper as u8)) {
            return None;
        }
        out.push(upper);
    }
    (out.len() == n).then_some(out)
}

/// A fresh set of `COUNT` codes, formatted `XXXXX-XXXXX`, to be shown once.
pub fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| grouped(&random_chars(CODE_CHARS), CODE_CHARS / 2))
        .collect()
}

/// A typed code in canonical form (ten upper-case alphabet characters), or `None` if it cannot
/// be one of ours.
pub fn normalize(input: &str) -> Option<String> {
    normalize_chars(input, CODE_CHARS)
}

/// The stored form of a code: HMAC-SHA256(pepper, user || 0x00 || normalized).
///
/// A keyed fast hash, not a password hash, on purpose. The codes are random with ~50 bits each
/// and every attempt is rate-limited, so slowing the hash adds nothing against online guessing;
/// and checking one attempt means hashing it once per stored code set, so argon2 here would hand
/// anyone who can submit a form a CPU-exhaustion lever. Offline, the pepper (derived from the
/// factor key file, not stored in the database) means a stolen database alone cannot be tested
/// against at all. The user name in the input binds each hash to its owner.
pub fn hash(pepper: &[u8], user: &str, normalized: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, pepper);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(user.as_bytes());
    ctx.update(&[0]);
    ctx.update(normalized.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn alphabet_has_no_look_alikes_and_no_repeats() {
        for c in b"0O1IL" {
            assert!(!ALPHABET.contains(c), "{}", char::from(*c));
        }
        let distinct: HashSet<_> = ALPHABET.iter().collect();
        assert_eq!(distinct.len(), ALPHABET.len());
        // 10 * log2(31) bits per code.
        let bits = CODE_CHARS as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits > 49.5, "{bits}");
    }

    #[test]
    fn ten_codes_in_xxxxx_xxxxx_shape() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let distinct: HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(&code[5..6], "-", "{code}");
            assert!(code
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b)));
            assert_eq!(normalize(code).map(|n| n.len()), Some(CODE_CHARS));
        }
    }

    #[test]
    fn normalisation_ignores_case_spaces_and_dashes() {
        let canonical = Some("ABCDE23456".to_string());
        assert_eq!(normalize("ABCDE-23456"), canonical);
        assert_eq!(normalize("abcde-23456"), canonical);
        assert_eq!(normalize(" ab cde 234 56 "), canonical);
        assert_eq!(normalize("a-b-c-d-e-2-3-4-5-6"), canonical);
    }

    #[test]
    fn normalisation_refuses_what_cannot_be_a_code() {
        let long = "A".repeat(100_000);
        for bad in [
            "",
            "ABCDE-2345",
            "ABCDE-234567",
            "ABCDE-2345O",
            "ABCDE-23451",
            "ABCDE-2345I",
            "ABCDE-2345L",
            "ABCDE_23456",
            "ÄBCDE-23456",
            long.as_str(),
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hash_is_keyed_and_bound_to_the_user() {
        let code = "ABCDE23456";
        let a = hash(b"pepper-one", "alice", code);
        assert_eq!(a, hash(b"pepper-one", "alice", code));
        assert_ne!(a, hash(b"pepper-two", "alice", code));
        assert_ne!(a, hash(b"pepper-one", "bob", code));
        // The separator keeps ("ab", "c...") and ("a", "bc...") apart.
        assert_ne!(hash(b"p", "ab", "CDE"), hash(b"p", "a", "BCDE"));
    }

    #[test]
    fn grouping() {
        assert_eq!(
            grouped("ABCDEFGHJKMNPQRSTUVW", 4),
            "ABCD-EFGH-JKMN-PQRS-TUVW"
        );
        assert_eq!(grouped("", 4), "");
    }
}
