//! Client certificates (seed 003, a bank's certificate management): a user registers a
//! certificate issued elsewhere, it is checked on every request that presents it, and it can
//! stand in for the second factor or be required by a rule.
//!
//! - **On the wire**: an HTTPS listener with `[listener.client_certificates]` asks for an
//!   *optional* certificate. Its [`Trust`] decides the handshake: `trust = "ca"` accepts only
//!   certificates that chain to the configured CAs and are not revoked by the configured CRLs
//!   (rustls' WebPKI verifier); `trust = "registered"` accepts any certificate whose handshake
//!   signature checks out, and leaves the rest to registration. Either way the leaf goes into
//!   the connection's TLS digest ([`Presented`]), so the HTTP layer sees it.
//! - **Per request** ([`Certificates::on_request`]): TLS session resumption skips the
//!   verifier, so what was true at the handshake is not trusted later. Every request looks the
//!   leaf's SHA-256 fingerprint up in the store (cached for [`CACHE_TTL`], dropped at once on a
//!   local change), then checks the validity dates now, the revocation lists loaded now, and in
//!   `ca` mode the chain under the CAs loaded now.
//! - **Registration** ([`read_file`], [`Trust::check`], [`register`]): a certificate is a
//!   credential of kind `certificate` whose ID is its fingerprint (so one certificate belongs
//!   to one user); the record keeps the DER and what the page shows. A private key uploaded by
//!   mistake is refused and never kept.
//!
//! CA and CRL files are read at start and again when they change ([`Trust::reload_if_changed`],
//! run by the gateway's housekeeping).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use dashmap::DashMap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::store::{Credential, Store, StoreError, Write};

pub const KIND: &str = "certificate";
/// How long a lookup of a fingerprint is trusted; a change made through this gateway is seen at
/// once, one made elsewhere (another gateway, `stepgate admin`) within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 100_000;
/// Certificates one user may register.
pub const MAX_PER_USER: usize = 10;
/// The largest certificate file accepted.
pub const MAX_FILE: usize = 64 * 1024;

/// What a person and the checks see of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    pub subject: String,
    pub issuer: String,
    /// The serial number, lowercase hex.
    pub serial: String,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
}

/// A certificate read from a file or a connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Parsed {
    pub info: CertInfo,
    pub der: Vec<u8>,
    /// The issuer name and serial as encoded, for revocation lists.
    issuer_raw: Vec<u8>,
    serial_raw: Vec<u8>,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parsed").field("info", &self.info).finish()
    }
}

/// Why a certificate is refused, each with its own message on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not a certificate (or a PKCS#12 bundle, which holds the key too).
    Malformed,
    /// A private key: never kept, never needed.
    PrivateKey,
    Expired,
    NotYetValid,
    /// Not issued by a CA the listener trusts.
    UntrustedIssuer,
    Revoked,
    /// Registered to another user.
    Taken,
    /// Registered to this user already.
    AlreadyYours,
    /// The user has [`MAX_PER_USER`] already.
    TooMany,
    /// No listener takes client certificates.
    NotOffered,
}

impl Problem {
    /// snake_case, for logs, the audit trail and `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Malformed => "malformed",
            Problem::PrivateKey => "private_key",
            Problem::Expired => "expired",
            Problem::NotYetValid => "not_yet_valid",
            Problem::UntrustedIssuer => "untrusted_issuer",
            Problem::Revoked => "revoked",
            Problem::Taken => "registered_to_another_user",
            Problem::AlreadyYours => "already_registered",
            Problem::TooMany => "too_many",
            Problem::NotOffered => "not_offered",
        }
    }
}

impl CertInfo {
    /// The fingerprint as its 32 bytes (zeros for a record that does not hold one: never a
    /// match for a real certificate).
    pub fn sha256(&self) -> [u8; 32] {
        data_encoding::HEXLOWER
            .decode(self.fingerprint.as_bytes())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .unwrap_or([0; 32])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 fingerprint of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

fn ms_of(t: x509_parser::time::ASN1Time) -> u64 {
    u64::try_from(t.timestamp())
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// Parses one DER certificate (nothing may follow it).
pub fn parse_der(der: &[u8]) -> Result<Parsed, Problem> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| Problem::Malformed)?;
    if !rest.is_empty() {
        return Err(Problem::Malformed);
    }
    let v = cert.validity();
    Ok(Parsed {
        info: CertInfo {
            fingerprint: fingerprint(der),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: hex(cert.raw_serial()),
            not_before_ms: ms_of(v.not_before),
            not_after_ms: ms_of(v.not_after),
        },
        der: der.to_vec(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
        serial_raw: cert.raw_serial().to_vec(),
    })
}

/// Reads an uploaded certificate file: PEM (the first certificate in it) or DER. A file with a
/// private key in it is refused whole, so that a key sent by mistake is never kept.
pub fn read_file(bytes: &[u8]) -> Result<Parsed, Problem> {
    if bytes.is_empty() || bytes.len() > MAX_FILE {
        return Err(Problem::Malformed);
    }
    if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(Problem::PrivateKey);
    }
    let text_start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if bytes[text_start..].starts_with(b"-----BEGIN") {
        let mut reader = bytes;
        let mut first = None;
        for item in rustls_pemfile::read_all(&mut reader) {
            match item.map_err(|_| Problem::Malformed)? {
                rustls_pemfile::Item::X509Certificate(c) if first.is_none() => first = Some(c),
                rustls_pemfile::Item::Pkcs1Key(_)
                | rustls_pemfile::Item::Pkcs8Key(_)
                | rustls_pemfile::Item::Sec1Key(_) => return Err(Problem::PrivateKey),
                _ => {}
            }
        }
        return parse_der(&first.ok_or(Problem::Malformed)?);
    }
    match parse_der(bytes) {
        Ok(p) => Ok(p),
        Err(_) if rustls::pki_types::PrivateKeyDer::try_from(bytes).is_ok() => {
            Err(Problem::PrivateKey)
        }
        Err(e) => Err(e),
    }
}

/// How a listener trusts client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMode {
    /// Any certificate the user registered (its handshake signature still checked).
    Registered,
    /// Certificates that chain to the configured CAs.
    Ca,
}

/// `[listener.client_certificates]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    pub mode: TrustMode,
    pub ca_files: Vec<PathBuf>,
    pub crl_files: Vec<PathBuf>,
}

/// What the CA and CRL files said when last read.
struct Loaded {
    /// The WebPKI verifier over the CAs and CRLs (`ca` mode).
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    /// (issuer name, serial) of every revoked certificate, as encoded.
    revoked: HashSet<(Vec<u8>, Vec<u8>)>,
    /// The files' modification times when read.
    stamps: Vec<Option<SystemTime>>,
}

/// A listener's trust: the handshake verifier, and the same rules for requests and uploads.
pub struct Trust {
    cfg: TrustConfig,
    loaded: ArcSwap<Loaded>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    reload: Mutex<()>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust").field("cfg", &self.cfg).finish()
    }
}

fn stamps(cfg: &TrustConfig) -> Vec<Option<SystemTime>> {
    cfg.ca_files
        .iter()
        .chain(&cfg.crl_files)
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The CRLs in a file, PEM or DER.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let crls: Vec<_> = rustls_pemfile::crls(&mut bytes.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if crls.is_empty() {
            return Err(format!("{}: no X509 CRL in the file", path.display()));
        }
        return Ok(crls);
    }
    Ok(vec![CertificateRevocationListDer::from(bytes)])
}

fn load(
    cfg: &TrustConfig,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Loaded, String> {
    let stamps = stamps(cfg);
    let mut crls = Vec::new();
    let mut revoked = HashSet::new();
    for path in &cfg.crl_files {
        for crl in read_crls(path)? {
            let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref())
                .map_err(|e| format!("{}: not a CRL: {e}", path.display()))?;
            let issuer = parsed.issuer().as_raw().to_vec();
            for r in parsed.iter_revoked_certificates() {
                revoked.insert((issuer.clone(), r.raw_serial().to_vec()));
            }
            crls.push(crl);
        }
    }
    let webpki = match cfg.mode {
        TrustMode::Registered => None,
        TrustMode::Ca => {
            let mut roots = RootCertStore::empty();
            for path in &cfg.ca_files {
                let certs = crate::tls::load_ca(path).map_err(|e| e.to_string())?;
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .with_crls(crls)
                    .only_check_end_entity_revocation()
                    .allow_unknown_revocation_status()
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("client certificate CAs: {e}"))?;
            Some(verifier)
        }
    };
    Ok(Loaded {
        webpki,
        revoked,
        stamps,
    })
}

impl Trust {
    /// Reads the CA and CRL files; `Err` says which file is wrong and how.
    pub fn load(cfg: TrustConfig) -> Result<Trust, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&cfg, &provider)?;
        Ok(Trust {
            cfg,
            loaded: ArcSwap::from_pointee(loaded),
            provider,
            reload: Mutex::new(()),
        })
    }

    pub fn mode(&self) -> TrustMode {
        self.cfg.mode
    }

    /// Reads the files again if one changed; a file that no longer reads keeps the old state
    /// (logged). `true` when it reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let _one = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        if stamps(&self.cfg) == self.loaded.load().stamps {
            return false;
        }
        match load(&self.cfg, &self.provider) {
            Ok(l) => {
                self.loaded.store(Arc::new(l));
                tracing::info!(target: "stepgate::certificates", "client certificate CAs and CRLs reloaded");
                true
            }
            Err(e) => {
                tracing::error!(target: "stepgate::certificates", error = %e, "client certificate CAs or CRLs do not read; the previous ones stay");
                false
            }
        }
    }

    /// Whether `cert` may be used at `now_ms` under this trust: dates, revocation, and in `ca`
    /// mode the chain to the CAs.
    pub fn check(&self, cert: &Parsed, now_ms: u64) -> Result<(), Problem> {
        if now_ms < cert.info.not_before_ms {
            return Err(Problem::NotYetValid);
        }
        if now_ms > cert.info.not_after_ms {
            return Err(Problem::Expired);
        }
        let loaded = self.loaded.load();
        let key = (cert.issuer_raw.clone(), cert.serial_raw.clone());
        if loaded.revoked.contains(&key) {
            return Err(Problem::Revoked);
        }
        if let Some(webpki) = &loaded.webpki {
            let now = UnixTime::since_unix_epoch(Duration::from_millis(now_ms));
            let der = CertificateDer::from(cert.der.as_slice());
            if let Err(e) = webpki.verify_client_cert(&der, &[], now) {
                return Err(match e {
                    rustls::Error::InvalidCertificate(CertificateError::Revoked) => {
                        Problem::Revoked
                    }
                    rustls::Error::InvalidCertificate(CertificateError::Expired) => {
                        Problem::Expired
                    }
                    rustls::Error::InvalidCertificate(CertificateError::NotValidYet) => {
                        Problem::NotYetValid
                    }
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
                        Problem::Malformed
                    }
                    _ => Problem::UntrustedIssuer,
                });
            }
        }
        Ok(())
    }

    /// The verifier for the listener's handshakes (follows reloads).
    pub fn verifier(self: &Arc<Self>) -> Arc<dyn ClientCertVerifier> {
        Arc::new(Handshake(Arc::clone(self)))
    }
}

/// The handshake side of a [`Trust`]: the current WebPKI verifier in `ca` mode; in
/// `registered` mode any certificate, whose handshake signature is still verified (so nobody
/// presents a certificate without its private key).
#[derive(Debug)]
struct Handshake(Arc<Trust>);

impl ClientCertVerifier for Handshake {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match &self.0.loaded.load().webpki {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            // Registration is checked on every request; a certificate that does not even parse
            // is refused here already.
            None => parse_der(end_entity.as_ref())
                .map(|_| ClientCertVerified::assertion())
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The leaf certificate a connection presented, kept in its TLS digest by the listener.
#[derive(Debug, Clone)]
pub struct Presented {
    pub der: Vec<u8>,
    pub fingerprint: String,
}

/// Puts the presented leaf into the connection's TLS digest after every handshake (resumed
/// ones included).
#[derive(Debug)]
pub struct KeepPresented;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for KeepPresented {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        Some(Arc::new(Presented {
            fingerprint: fingerprint(der),
            der: der.to_vec(),
        }))
    }
}

/// A registered certificate as the store keeps it (`data` of its credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    info: CertInfo,
    /// Base64 of the issuer name and serial as encoded.
    issuer_raw: String,
    serial_raw: String,
}

/// One registered certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub user: String,
    pub added_ms: u64,
    pub cert: Parsed,
}

fn registered_of(c: Credential) -> Result<Registered, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        what: "a client certificate",
        why,
    };
    let r: Record = serde_json::from_slice(&c.data).map_err(|e| corrupt(e.to_string()))?;
    let raw = |s: &str| B64.decode(s).map_err(|e| corrupt(e.to_string()));
    Ok(Registered {
        user: c.user,
        added_ms: c.created_ms,
        cert: Parsed {
            issuer_raw: raw(&r.issuer_raw)?,
            serial_raw: raw(&r.serial_raw)?,
            info: r.info,
            der: c.secret,
        },
    })
}

/// The user's registered certificates, newest first.
pub async fn of_user(store: &Store, user: &str) -> Result<Vec<Registered>, StoreError> {
    let mut list = store
        .credentials()
        .credentials(user, Some(KIND))
        .await?
        .into_iter()
        .map(registered_of)
        .collect::<Result<Vec<_>, _>>()?;
    list.sort_by_key(|r| std::cmp::Reverse(r.added_ms));
    Ok(list)
}

/// Who registered the certificate with this fingerprint, if anyone.
pub async fn owner(store: &Store, fingerprint: &str) -> Result<Option<Registered>, StoreError> {
    let found = store
        .credentials()
        .credentials_by_id(KIND, fingerprint)
        .await?;
    found.into_iter().next().map(registered_of).transpose()
}

/// Registers `cert` for `user` at `now`: refused when it belongs to someone (this user
/// included) or the user has [`MAX_PER_USER`]. The caller checked it under a [`Trust`].
pub async fn register(
    store: &Store,
    user: &str,
    cert: &Parsed,
    now: u64,
) -> Result<Result<(), Problem>, StoreError> {
    if let Some(r) = owner(store, &cert.info.fingerprint).await? {
        return Ok(Err(if r.user == user {
            Problem::AlreadyYours
        } else {
            Problem::Taken
        }));
    }
    if of_user(store, user).await?.len() >= MAX_PER_USER {
        return Ok(Err(Problem::TooMany));
    }
    let record = Record {
        info: cert.info.clone(),
        issuer_raw: B64.encode(&cert.issuer_raw),
        serial_raw: B64.encode(&cert.serial_raw),
    };
    let cred = Credential {
        user: user.to_owned(),
        kind: KIND.to_owned(),
        id: cert.info.fingerprint.clone(),
        secret: cert.der.clone(),
        counter: 0,
        created_ms: now,
        used_ms: None,
        expires_ms: None,
        data: serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt {
            what: "a client certificate",
            why: e.to_string(),
        })?,
    };
    // Two users racing for one certificate: the second insert still finds the first's row on
    // the next request (`owner` takes the first by user name, and both are told on the page).
    Ok(
        match store
            .credentials()
            .write(vec![Write::InsertNew(cred)])
            .await?
        {
            true => Ok(()),
            false => Err(Problem::AlreadyYours),
        },
    )
}

/// Removes one of `user`'s certificates; `true` when it was there.
pub async fn remove(store: &Store, user: &str, fingerprint: &str) -> Result<bool, StoreError> {
    store
        .credentials()
        .delete_credential(user, KIND, fingerprint)
        .await
}

/// What a request's connection presents, for the decision.
#[derive(Debug, Clone)]
pub enum OnRequest {
    /// No certificate, or a listener that does not ask for one.
    None,
    /// A registered certificate that is valid now.
    Valid(Arc<Registered>),
    /// A certificate nobody registered (the certificates page offers to register it).
    Unregistered(Arc<Parsed>),
    /// A registered certificate refused now (expired, revoked, its CA gone).
    Refused(Problem),
}

struct Cached {
    found: Option<Arc<Registered>>,
    fetched_ms: u64,
}

/// The certificate listeners' trusts, and the per-request check over the store.
pub struct Certificates {
    store: Store,
    clock: SharedClock,
    listeners: Vec<(SocketAddr, Arc<Trust>)>,
    cache: DashMap<String, Cached>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

impl Certificates {
    pub fn new(
        store: Store,
        clock: SharedClock,
        listeners: Vec<(SocketAddr, Arc<Trust>)>,
    ) -> Certificates {
        Certificates {
            store,
            clock,
            listeners,
            cache: DashMap::new(),
        }
    }

    /// Whether any listener takes client certificates (the pages offer them only then).
    pub fn offered(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// The trust of the listener a connection came in on (by its local address: the exact
    /// address, or the port of a listener on an unspecified address).
    pub fn trust_at(&self, local: SocketAddr) -> Option<&Arc<Trust>> {
        let exact = self.listeners.iter().find(|(a, _)| *a == local);
        exact
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|(a, _)| a.ip().is_unspecified() && a.port() == local.port())
            })
            .map(|(_, t)| t)
    }

    /// A certificate is acceptable if a certificate listener would take it.
    pub fn check_anywhere(&self, cert: &Parsed) -> Result<(), Problem> {
        let now = self.clock.now_ms();
        let mut worst = Problem::NotOffered;
        for (_, trust) in &self.listeners {
            match trust.check(cert, now) {
                Ok(()) => return Ok(()),
                Err(p) => worst = p,
            }
        }
        Err(worst)
    }

    /// Forgets what is cached for `fingerprint` (after a local change).
    pub fn changed(&self, fingerprint: &str) {
        self.cache.remove(fingerprint);
    }

    async fn lookup(&self, fingerprint: &str) -> Result<Option<Arc<Registered>>, StoreError> {
        let now = self.clock.now_ms();
        if let Some(hit) = self.cache.get(fingerprint) {
            let age = now.saturating_sub(hit.fetched_ms);
            if now >= hit.fetched_ms && u128::from(age) < CACHE_TTL.as_millis() {
                return Ok(hit.found.clone());
            }
        }
        let found = owner(&self.store, fingerprint).await?.map(Arc::new);
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(
            fingerprint.to_owned(),
            Cached {
                found: found.clone(),
                fetched_ms: now,
            },
        );
        Ok(found)
    }

    /// What the connection presents now (see the module docs); `Err` only for a store fault.
    pub async fn on_request(
        &self,
        local: Option<SocketAddr>,
        presented: Option<&Presented>,
    ) -> Result<OnRequest, StoreError> {
        let (Some(presented), Some(trust)) = (presented, local.and_then(|l| self.trust_at(l)))
        else {
            return Ok(OnRequest::None);
        };
        let Some(reg) = self.lookup(&presented.fingerprint).await? else {
            return Ok(match parse_der(&presented.der) {
                Ok(p) => OnRequest::Unregistered(Arc::new(p)),
                Err(p) => OnRequest::Refused(p),
            });
        };
        Ok(match trust.check(&reg.cert, self.clock.now_ms()) {
            Ok(()) => OnRequest::Valid(reg),
            Err(p) => OnRequest::Refused(p),
        })
    }

    /// Reloads the listeners' CA and CRL files that changed (housekeeping).
    pub fn reload_if_changed(&self) {
        for (_, trust) in &self.listeners {
            trust.reload_if_changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str, days: (i64, i64)) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days.0);
        params.not_after = now + time::Duration::days(days.1);
        params.serial_number = Some(rcgen::SerialNumber::from(7u64));
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn files_are_read_as_pem_or_der_and_a_key_is_never_taken() {
        let (cert, key) = self_signed("alice", (-1, 30));
        let pem = read_file(cert.pem().as_bytes()).unwrap();
        let der = read_file(cert.der()).unwrap();
        assert_eq!(pem, der);
        assert_eq!(pem.info.fingerprint, fingerprint(cert.der()));
        assert_eq!(pem.info.subject, "CN=alice");
        assert_eq!(pem.info.serial, "07");
        assert_eq!(
            pem.info.sha256().to_vec(),
            Sha256::digest(cert.der()).to_vec()
        );
        let both = format!("{}{}", cert.pem(), key.serialize_pem());
        assert_eq!(read_file(both.as_bytes()), Err(Problem::PrivateKey));
        assert_eq!(read_file(&key.serialize_der()), Err(Problem::PrivateKey));
        assert_eq!(
            read_file(key.serialize_pem().as_bytes()),
            Err(Problem::PrivateKey)
        );
        let mut trailing = cert.der().to_vec();
        trailing.push(0);
        assert_eq!(read_file(&trailing), Err(Problem::Malformed));
        assert_eq!(read_file(b""), Err(Problem::Malformed));
        assert_eq!(
            read_file(&vec![b'x'; MAX_FILE + 1]),
            Err(Problem::Malformed)
        );
    }

    #[test]
    fn dates_are_checked_at_the_time_asked() {
        let trust = Trust::load(TrustConfig {
            mode: TrustMode::Registered,
            ca_files: vec![],
            crl_files: vec![],
        })
        .unwrap();
        let (cert, _) = self_signed("alice", (-1, 30));
        let c = parse_der(cert.der()).unwrap();
        assert_eq!(
            trust.check(&c, c.info.not_before_ms - 1),
            Err(Problem::NotYetValid)
        );
        assert_eq!(trust.check(&c, c.info.not_before_ms), Ok(()));
        assert_eq!(
            trust.check(&c, c.info.not_after_ms + 1),
            Err(Problem::Expired)
        );
    }

    #[test]
    fn a_changed_crl_file_is_read_again_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec![]).unwrap();
        leaf.serial_number = Some(rcgen::SerialNumber::from(42u64));
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let crl_with = |serials: &[u64]| {
            let now = time::OffsetDateTime::now_utc();
            rcgen::CertificateRevocationListParams {
                this_update: now,
                next_update: now + time::Duration::days(1),
                crl_number: rcgen::SerialNumber::from(serials.len() as u64 + 1),
                issuing_distribution_point: None,
                revoked_certs: serials
                    .iter()
                    .map(|s| rcgen::RevokedCertParams {
                        serial_number: rcgen::SerialNumber::from(*s),
                        revocation_time: now,
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            }
            .signed_by(&ca, &ca_key)
            .unwrap()
            .pem()
            .unwrap()
        };
        let crl_file = dir.path().join("ca.crl");
        let set = |text: String, secs: u64| {
            std::fs::write(&crl_file, text).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(&crl_file)
                .unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs))
                .unwrap();
        };
        set(crl_with(&[]), 0);
        let trust = Trust::load(TrustConfig {
            mode: TrustMode::Registered,
            ca_files: vec![],
            crl_files: vec![crl_file.clone()],
        })
        .unwrap();
        let c = parse_der(leaf.der()).unwrap();
        let now = c.info.not_before_ms + 1000;
        assert_eq!(trust.check(&c, now), Ok(()));
        assert!(!trust.reload_if_changed(), "nothing changed");
        set(crl_with(&[42]), 1);
        assert!(trust.reload_if_changed());
        assert_eq!(trust.check(&c, now), Err(Problem::Revoked));
        set("not a crl".into(), 2);
        assert!(!trust.reload_if_changed(), "a broken file is not taken");
        assert_eq!(
            trust.check(&c, now),
            Err(Problem::Revoked),
            "the old list stays"
        );
    }
}
