//! CSRF tokens for the portal's forms, on top of `SameSite`: a token is the HMAC-SHA256 of what
//! the form is bound to (the signed-in session's key, or before sign-in a random pre-session
//! cookie), under a secret kept in the data directory. A token from another browser or another
//! session does not verify; comparison is constant-time.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    /// Tokens under a given key (tests, benchmarks).
    pub fn from_key(key: [u8; 32]) -> Csrf {
        Csrf { key }
    }

    /// Loads `<data dir>/csrf.key`, creating it (mode 0600) on first start.
    pub fn open(data_dir: &Path) -> std::io::Result<Csrf> {
        let path = data_dir.join("csrf.key");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a 32-byte key", path.display()),
                    )
                })?;
                Ok(Csrf { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                opts.open(&path)?.write_all(&key)?;
                Ok(Csrf { key })
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, binding: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"stepgate-csrf\0");
        mac.update(binding);
        mac
    }

    pub fn token(&self, binding: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(binding).finalize().into_bytes())
    }

    pub fn verify(&self, binding: &[u8], token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(raw) => self.mac(binding).verify_slice(&raw).is_ok(),
            Err(_) => false,
        }
    }
}

/// A random value for the pre-session cookie a sign-in form is bound to.
pub fn random_binding() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_binding_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = Csrf::open(dir.path()).unwrap();
        let t = c.token(b"session-a");
        assert!(c.verify(b"session-a", &t));
        assert!(!c.verify(b"session-b", &t));
        assert!(!c.verify(b"session-a", "garbage"));
        let again = Csrf::open(dir.path()).unwrap();
        assert!(again.verify(b"session-a", &t), "the key persists");
        let other = tempfile::tempdir().unwrap();
        assert!(!Csrf::open(other.path()).unwrap().verify(b"session-a", &t));
    }
}
