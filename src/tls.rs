//! TLS for downstream listeners: loading PEM certificates and keys, and picking one by SNI.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::routing::HostPattern;

/// A loaded certificate chain and key, and the host names it is served for.
#[derive(Clone)]
pub struct Certificate {
    pub cert_file: PathBuf,
    pub key: Arc<rustls::sign::CertifiedKey>,
    pub hosts: Vec<HostPattern>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Certificate")
            .field("cert_file", &self.cert_file)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Why a certificate or key file cannot be used: what is wrong, for the caller to add what was
/// found (the file name).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the certificate file: {0}")]
    CertRead(String),
    #[error("no PEM certificate in the file")]
    NoCert,
    #[error("the certificate file is not valid PEM: {0}")]
    BadPem(String),
    #[error("{0}")]
    Key(String),
}

/// An I/O error as a reason: `No such file or directory (os error 2)` -> `no such file or directory`.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.rfind(" (os error ").map_or(s.as_str(), |i| &s[..i]);
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_lowercase().chain(c).collect())
}

/// Loads a PEM chain and its private key; returns the key and the certificate's DNS names.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<(CertifiedKey, Vec<String>), LoadError> {
    let chain = read_certs(cert)?;
    let key_pem = std::fs::read(key)
        .map_err(|e| LoadError::Key(format!("cannot read the key file: {}", io_reason(&e))))?;
    let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| LoadError::Key(format!("the key file is not valid PEM: {e}")))?
        .ok_or_else(|| LoadError::Key("no PEM private key in the key file".into()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| LoadError::Key(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain.clone(), signing);
    if let Err(e) = certified.keys_match() {
        if !matches!(
            e,
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)
        ) {
            return Err(LoadError::Key(format!(
                "the key does not belong to the certificate: {e}"
            )));
        }
    }
    let names = dns_names(&chain[0]);
    Ok((certified, names))
}

/// Loads a PEM bundle of CA certificates (for verifying HTTPS upstreams).
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    read_certs(path)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let pem = std::fs::read(path).map_err(|e| LoadError::CertRead(io_reason(&e)))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| LoadError::BadPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(LoadError::NoCert);
    }
    Ok(certs)
}

fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

/// Picks the certificate for the SNI name: exact host first, then the longest wildcard, then
/// the listener's first certificate (also for clients that send no SNI).
pub struct SniResolver {
    entries: Vec<(HostPattern, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `None` when there are no certificates.
    pub fn new(certs: &[Certificate]) -> Option<SniResolver> {
        let default = certs.first()?.key.clone();
        let mut entries: Vec<_> = certs
            .iter()
            .flat_map(|c| c.hosts.iter().map(|h| (h.clone(), c.key.clone())))
            .collect();
        // Exact names before wildcards, longer wildcards before shorter ones.
        entries.sort_by_key(|(h, _)| match h {
            HostPattern::Exact(_) => 0,
            HostPattern::Wildcard(s) => usize::MAX - s.len(),
        });
        Some(SniResolver { entries, default })
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.entries.len())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        Some(
            self.entries
                .iter()
                .find(|(h, _)| h.matches(name))
                .map_or_else(|| self.default.clone(), |(_, k)| k.clone()),
        )
    }
}
