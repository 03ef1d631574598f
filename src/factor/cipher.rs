//! Second-factor secrets at rest (RFC 4226 §4 R6, ASVS 5.0 6.5.3): AES-256-GCM under a key kept in a file outside the
//! database, plus the pepper for hashing recovery codes and enrolment tokens, derived from the
//! same key. A copy of `stepgate.db` alone yields neither TOTP seeds nor anything to test
//! recovery-code guesses against.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::FactorError;

/// Bytes of key material in the key file.
pub const KEY_LEN: usize = 32;

/// Labels that separate what is derived from the one key file, so the raw key itself is never
/// used directly and the AES key and the pepper are independent.
const LABEL_AEAD: &[u8] = b"stepgate factor secret aes-256-gcm v1";
const LABEL_PEPPER: &[u8] = b"stepgate factor hash pepper v1";
const LABEL_CODE: &[u8] = b"stepgate one-time code mac v1";
const LABEL_SESSION_ID: &[u8] = b"stepgate session id tag v1";

/// Seals and opens factor secrets. `Debug` is redacted.
///
/// Nonces are 96 random bits per encryption. With random nonces, GCM stays within its bounds for
/// about 2^32 encryptions under one key; a secret is sealed once per enrolment, so that is far
/// out of reach. The user name is the associated data: a sealed secret copied into another
/// user's row does not open.
pub struct SecretCipher {
    key: LessSafeKey,
    pepper: [u8; 32],
    code_key: super::code::CodeKey,
    session_id_key: [u8; 32],
    rng: SystemRandom,
}

/// HMAC-SHA256(key, label): a one-block HKDF-Expand-style derivation, enough for a uniformly
/// random 32-byte input key.
fn derive(key: &[u8; KEY_LEN], label: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), label);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

impl SecretCipher {
    /// A cipher from raw key material (tests, or a key from somewhere other than a file).
    pub fn from_key(mut key: [u8; KEY_LEN]) -> SecretCipher {
        let mut aead_key = derive(&key, LABEL_AEAD);
        let pepper = derive(&key, LABEL_PEPPER);
        let session_id_key = derive(&key, LABEL_SESSION_ID);
        let mut code_key = derive(&key, LABEL_CODE);
        let code_key_hmac = super::code::CodeKey::new(&code_key);
        super::wipe(&mut code_key);
        super::wipe(&mut key);
        // AES-256 takes any 32 bytes, so this cannot fail; the fallback is unreachable.
        let unbound = UnboundKey::new(&AES_256_GCM, &aead_key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM accepts every 32-byte key"));
        super::wipe(&mut aead_key);
        SecretCipher {
            key: LessSafeKey::new(unbound),
            pepper,
            code_key: code_key_hmac,
            session_id_key,
            rng: SystemRandom::new(),
        }
    }

    /// Reads the key file, or creates it from the CSPRNG if it does not exist.
    ///
    /// The file holds exactly 32 raw bytes, or 64 hex characters (surrounding whitespace allowed,
    /// for operators who write keys with `openssl rand -hex 32 > factor.key`). A missing file is
    /// created with mode 0600, its parent directory (if missing) with 0700. Creation is atomic:
    /// the key goes to a temporary file that is then hard-linked into place, so two processes
    /// starting at once agree on one key and nobody reads a half-written file. A key file that
    /// others can read is used but warned about: it may be managed by a secrets system with its
    /// own idea of permissions.
    pub fn load_or_create(path: &Path) -> Result<SecretCipher, FactorError> {
        match read_bounded(path) {
            Ok(bytes) => {
                warn_if_exposed(path);
                let key = parse_key(path, &bytes)?;
                Ok(SecretCipher::from_key(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(path),
            Err(source) => Err(key_io(path, source)),
        }
    }

    /// Encrypts `plaintext` for `user`: nonce || ciphertext || tag.
    pub fn seal(&self, user: &str, plaintext: &[u8]) -> Result<Vec<u8>, FactorError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| FactorError::Crypto("the operating system's random source failed"))?;
        // Capacity for the whole result up front: the plaintext is encrypted where it lies and
        // never left behind in a reallocated buffer.
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user.as_bytes()),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| FactorError::Crypto("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts what `seal` made for the same `user` under the same key. Any other key, user,
    /// or a changed byte is `FactorError::Undecryptable`.
    pub fn open(&self, user: &str, sealed: &[u8]) -> Result<Vec<u8>, FactorError> {
        let undecryptable = || FactorError::Undecryptable {
            user: user.to_string(),
        };
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(undecryptable());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut in_out = body.to_vec();
        let len = self
            .key
            .open_in_place(nonce, Aad::from(user.as_bytes()), &mut in_out)
            .map_err(|_| undecryptable())?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }

    /// A 32-byte secret for keyed hashes of recovery codes and enrolment tokens. Derived from the
    /// key file, never stored in the database.
    pub fn pepper(&self) -> &[u8; 32] {
        &self.pepper
    }

    /// The key one-time codes (emailed, later SMS) are hashed under while they wait.
    pub fn code_key(&self) -> &super::code::CodeKey {
        &self.code_key
    }

    /// The key session IDs are tagged under (see `session`): every gateway with this key file
    /// recognises the IDs every other one issued.
    pub fn session_id_key(&self) -> &[u8; 32] {
        &self.session_id_key
    }
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCipher(<redacted>)")
    }
}

impl Drop for SecretCipher {
    fn drop(&mut self) {
        super::wipe(&mut self.pepper);
        super::wipe(&mut self.session_id_key);
    }
}

/// Reads at most a little more than any valid key file can hold, so a key path pointed at
/// something huge (or endless, like a device) fails fast with a size in the message.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(2 * KEY_LEN + 2);
    fs::File::open(path)?
        .take(MAX_KEY_FILE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Longest key file read: 64 hex characters with generous surrounding whitespace.
const MAX_KEY_FILE_BYTES: u64 = 1024;

fn key_io(path: &Path, source: io::Error) -> FactorError {
    FactorError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    }
}

/// 32 raw bytes, or 64 hex characters with optional surrounding whitespace. The error names the
/// path and the shape found, never the content.
fn parse_key(path: &Path, bytes: &[u8]) -> Result<[u8; KEY_LEN], FactorError> {
    if bytes.len() == KEY_LEN {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    let trimmed = bytes.trim_ascii();
    if trimmed.len() == 2 * KEY_LEN {
        if let Ok(decoded) = data_encoding::HEXLOWER_PERMISSIVE.decode(trimmed) {
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(&decoded);
            let mut decoded = decoded;
            super::wipe(&mut decoded);
            return Ok(key);
        }
    }
    let found = if trimmed.len() == 2 * KEY_LEN {
        "64 characters that are not all hex digits".to_string()
    } else if bytes.len() as u64 >= MAX_KEY_FILE_BYTES {
        format!("{MAX_KEY_FILE_BYTES} bytes or more")
    } else {
        format!("{} bytes", bytes.len())
    };
    Err(FactorError::KeyFile {
        path: path.to_path_buf(),
        problem: format!(
            "expected exactly {KEY_LEN} raw bytes or {} hex characters, found {found}",
            2 * KEY_LEN
        ),
    })
}

fn warn_if_exposed(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                target: "stepgate::factor",
                path = %path.display(),
                mode = format_args!("{mode:03o}"),
                "factor key file is readable by other users; chmod 600 it"
            );
        }
    }
}

fn create(path: &Path) -> Result<SecretCipher, FactorError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| key_io(&dir, e))?;
    }
    let mut key = [0u8; KEY_LEN];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|_| FactorError::Crypto("the operating system's random source failed"))?;

    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(
        ".factor-key-{}-{}.tmp",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&suffix)
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&key)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(key_io(&tmp, e));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(
                target: "stepgate::factor",
                path = %path.display(),
                "created a new factor key file; back it up with the database, which is unreadable without it"
            );
            Ok(SecretCipher::from_key(key))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            super::wipe(&mut key);
            let bytes = read_bounded(path).map_err(|e| key_io(path, e))?;
            Ok(SecretCipher::from_key(parse_key(path, &bytes)?))
        }
        Err(e) => {
            super::wipe(&mut key);
            Err(key_io(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> SecretCipher {
        SecretCipher::from_key([7u8; KEY_LEN])
    }

    #[test]
    fn round_trip() {
        let c = cipher();
        let sealed = c.seal("alice", b"a totp seed").expect("seal");
        assert_eq!(sealed.len(), NONCE_LEN + 11 + 16);
        assert_eq!(c.open("alice", &sealed).expect("open"), b"a totp seed");
        let empty = c.seal("alice", b"").expect("seal");
        assert_eq!(c.open("alice", &empty).expect("open"), b"");
    }

    #[test]
    fn another_users_row_does_not_open() {
        let c = cipher();
        let sealed = c.seal("alice", b"seed").expect("seal");
        assert!(matches!(
            c.open("bob", &sealed),
            Err(FactorError::Undecryptable { .. })
        ));
    }

    #[test]
    fn any_changed_byte_fails() {
        let c = cipher();
        let sealed = c.seal("alice", b"seed bytes").expect("seal");
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(c.open("alice", &tampered).is_err(), "byte {i}");
        }
        assert!(c.open("alice", &sealed[..sealed.len() - 1]).is_err());
        assert!(c.open("alice", &[]).is_err());
    }

    #[test]
    fn another_key_fails() {
        let sealed = cipher().seal("alice", b"seed").expect("seal");
        let other = SecretCipher::from_key([8u8; KEY_LEN]);
        assert!(other.open("alice", &sealed).is_err());
    }

    #[test]
    fn two_seals_differ() {
        let c = cipher();
        let a = c.seal("alice", b"seed").expect("seal");
        let b = c.seal("alice", b"seed").expect("seal");
        assert_ne!(a, b);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    }

    #[test]
    fn pepper_is_derived_not_the_key() {
        let key = [7u8; KEY_LEN];
        let c = SecretCipher::from_key(key);
        assert_ne!(c.pepper(), &key);
        assert_eq!(c.pepper(), SecretCipher::from_key(key).pepper());
        assert_ne!(c.pepper(), SecretCipher::from_key([8u8; KEY_LEN]).pepper());
    }

    #[test]
    fn key_file_is_created_private_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join("keys").join("factor.key");
        let first = SecretCipher::load_or_create(&path).expect("create");
        let meta = fs::metadata(&path).expect("key file exists");
        assert_eq!(meta.len(), KEY_LEN as u64);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let parent = fs::metadata(path.parent().expect("parent")).expect("dir");
        assert_eq!(parent.permissions().mode() & 0o777, 0o700);
        let sealed = first.seal("alice", b"seed").expect("seal");

        let second = SecretCipher::load_or_create(&path).expect("reload");
        assert_eq!(second.open("alice", &sealed).expect("open"), b"seed");
        assert_eq!(first.pepper(), second.pepper());
        // No temporary files left behind.
        let entries = fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .count();
        assert_eq!(entries, 1);
    }

    #[test]
    fn hex_key_file_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("factor.key");
        fs::write(&path, format!("{}\n", "ab".repeat(KEY_LEN))).expect("write");
        let from_file = SecretCipher::load_or_create(&path).expect("hex key");
        let direct = SecretCipher::from_key([0xab; KEY_LEN]);
        let sealed = direct.seal("alice", b"seed").expect("seal");
        assert_eq!(from_file.open("alice", &sealed).expect("open"), b"seed");
    }

    #[test]
    fn bad_key_file_error_names_the_path_and_shape_not_the_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("factor.key");
        fs::write(&path, "hunter2-secret-ish").expect("write");
        let err = SecretCipher::load_or_create(&path).expect_err("too short");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("expected exactly 32 raw bytes or 64 hex characters"),
            "{text}"
        );
        assert!(text.contains("found 18 bytes"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        fs::write(&path, "zz".repeat(KEY_LEN)).expect("write");
        let text = SecretCipher::load_or_create(&path)
            .expect_err("not hex")
            .to_string();
        assert!(text.contains("not all hex digits"), "{text}");
        assert!(!text.contains("zzzz"), "{text}");
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", cipher());
        assert_eq!(shown, "SecretCipher(<redacted>)");
    }
}
