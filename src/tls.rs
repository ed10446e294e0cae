//! TLS set-up: reads the certificate chain and key and builds the rustls server configuration
//! shared by every worker, and reads the pair again when asked to (SIGHUP). The per-connection
//! record layer is driven in `server::tls_session`.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

/// Server-side sessions kept for TLS 1.2 session-ID resumption and TLS 1.3 stateful resumption,
/// shared by all workers. Each entry is a few hundred bytes.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

/// Failure to build the TLS configuration.
#[derive(Debug)]
pub enum TlsSetupError {
    /// The certificate file has no readable PEM certificate.
    Certificate { path: PathBuf, reason: String },
    /// The key file has no readable PEM private key.
    PrivateKey { path: PathBuf, reason: String },
    /// rustls refused the pair, for example because the key does not match the certificate.
    Rejected(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Certificate { path, reason } => {
                write!(f, "invalid certificate file {}: {reason}", path.display())
            }
            TlsSetupError::PrivateKey { path, reason } => {
                write!(f, "invalid private key file {}: {reason}", path.display())
            }
            TlsSetupError::Rejected(err) => write!(f, "certificate and key rejected: {err}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// Largest certificate or key file read. A chain with its intermediates is a few KiB, and the
/// limit keeps a path that now leads to a huge file from stalling a reload.
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a whole PEM file of at most [`MAX_PEM_FILE_BYTES`], which must be a regular file.
fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK makes opening a FIFO return at once, so that it is rejected below. A regular
    // file ignores the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| err.to_string())?;
    let metadata = file.metadata().map_err(|err| err.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_PEM_FILE_BYTES + 1), &mut bytes)
        .map_err(|err| err.to_string())?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(format!("larger than {MAX_PEM_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}

/// Reads a PEM certificate chain, leaf first.
///
/// # Errors
/// Fails when the file cannot be read, is not a regular file, is larger than
/// [`MAX_PEM_FILE_BYTES`], is not PEM, or contains no certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let invalid = |reason: String| TlsSetupError::Certificate { path: path.to_owned(), reason };
    let pem = read_pem_file(path).map_err(invalid)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(err.to_string()))?;
    if chain.is_empty() {
        return Err(invalid("no CERTIFICATE block found".to_owned()));
    }
    Ok(chain)
}

/// Reads the first PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
///
/// # Errors
/// Fails when the file cannot be read, is not a regular file, is larger than
/// [`MAX_PEM_FILE_BYTES`], or contains no key.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let invalid = |reason: String| TlsSetupError::PrivateKey { path: path.to_owned(), reason };
    let pem = read_pem_file(path).map_err(invalid)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| invalid(err.to_string()))
}

/// The certificate chain and private key offered in full handshakes. They are read from their
/// files at start and again by [`reload`](Self::reload), so a renewed certificate is served
/// without a restart. A connection keeps the pair it was given, and resumed sessions present no
/// certificate, so a reload only changes what later full handshakes get.
#[derive(Debug)]
pub struct CertificateFiles {
    certificate: PathBuf,
    private_key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// Read once per full handshake by any worker, written only by a reload. The read lock is
    /// uncontended but for the moment of a reload.
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateFiles {
    /// Reads and checks the pair.
    ///
    /// # Errors
    /// As [`reload`](Self::reload).
    fn load(certificate: &Path, private_key: &Path, provider: Arc<CryptoProvider>) -> Result<CertificateFiles, TlsSetupError> {
        let pair = read_pair(certificate, private_key, &provider)?;
        Ok(CertificateFiles {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
        })
    }

    /// Reads both files again and, when they hold a usable pair, serves it from the next full
    /// handshake on. On failure the pair served so far stays.
    ///
    /// # Errors
    /// Fails when a file is unreadable, is not a regular file, is too large, or contains no PEM
    /// certificate or key, or when the key does not match the certificate.
    pub fn reload(&self) -> Result<(), TlsSetupError> {
        let pair = Arc::new(read_pair(&self.certificate, &self.private_key, &self.provider)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Returns the certificate file's path, as the configuration names it.
    pub fn certificate_path(&self) -> &Path {
        &self.certificate
    }

    /// Returns the private key file's path, as the configuration names it.
    pub fn private_key_path(&self) -> &Path {
        &self.private_key
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

/// Reads a certificate chain and its key, and checks that the key belongs to the chain's first
/// certificate.
fn read_pair(certificate: &Path, private_key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsSetupError> {
    let chain = load_certificates(certificate)?;
    let key = load_private_key(private_key)?;
    CertifiedKey::from_der(chain, key, provider).map_err(TlsSetupError::Rejected)
}

/// The TLS configuration for the HTTPS listeners and the handle that reloads its certificate.
pub struct TlsSetup {
    pub config: Arc<ServerConfig>,
    pub certificate: Arc<CertificateFiles>,
}

/// Builds the server configuration: TLS 1.2 and 1.3 only, ALPN `http/1.1`, resumption by
/// stateless tickets and by a shared session cache.
///
/// # Errors
/// Fails when a file is unreadable or the key does not match the certificate.
pub fn server_config(certificate: &Path, private_key: &Path) -> Result<TlsSetup, TlsSetupError> {
    let provider = Arc::new(provider::default_provider());
    let files = Arc::new(CertificateFiles::load(certificate, private_key, Arc::clone(&provider))?);

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsSetupError::Rejected)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&files) as Arc<dyn ResolvesServerCert>);

    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = provider::Ticketer::new().map_err(TlsSetupError::Rejected)?;
    // One ticket is enough for a browser's next connection; the default of two doubles the
    // handshake's ticket-encryption work.
    config.send_tls13_tickets = 1;
    // `max_early_data_size` stays 0: the session rejects 0-RTT data, which can be replayed.
    // `ServerConnection::set_buffer_limit` has no counterpart in the unbuffered API that
    // connections use, because rustls then keeps no send buffer at all.
    Ok(TlsSetup { config: Arc::new(config), certificate: files })
}

/// Loads the TLS files named by `config`, without serving, for `ringfront check`.
///
/// # Errors
/// As [`server_config`].
pub fn check_files(config: &crate::config::Config) -> Result<(), TlsSetupError> {
    match &config.https {
        Some(https) => server_config(&https.certificate, &https.private_key).map(|_| ()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_PEM_FILE_BYTES, read_pem_file};

    #[test]
    fn pem_file_size_limit() {
        let path = std::env::temp_dir().join(format!("ringfront-pem-limit-{}.pem", std::process::id()));
        let limit = usize::try_from(MAX_PEM_FILE_BYTES).unwrap();
        std::fs::write(&path, vec![b'A'; limit]).unwrap();
        let at_limit = read_pem_file(&path);
        std::fs::write(&path, vec![b'A'; limit + 1]).unwrap();
        let over_limit = read_pem_file(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(at_limit.map(|bytes| bytes.len()), Ok(limit));
        assert_eq!(over_limit, Err(format!("larger than {MAX_PEM_FILE_BYTES} bytes")));
    }
}
