//! TLS set-up: reads the certificate chain and key and builds the rustls server configuration
//! shared by every worker. The per-connection record layer is driven in `server::tls_session`.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;

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

/// Reads a PEM certificate chain, leaf first.
///
/// # Errors
/// Fails when the file cannot be read, is not PEM, or contains no certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let invalid = |reason: String| TlsSetupError::Certificate { path: path.to_owned(), reason };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|err| invalid(err.to_string()))?
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
/// Fails when the file cannot be read or contains no key.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|err| TlsSetupError::PrivateKey { path: path.to_owned(), reason: err.to_string() })
}

/// Builds the server configuration: TLS 1.2 and 1.3 only, ALPN `http/1.1`, resumption by
/// stateless tickets and by a shared session cache.
///
/// # Errors
/// Fails when a file is unreadable or the key does not match the certificate.
pub fn server_config(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let chain = load_certificates(certificate)?;
    let key = load_private_key(private_key)?;

    let mut config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsSetupError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsSetupError::Rejected)?;

    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = provider::Ticketer::new().map_err(TlsSetupError::Rejected)?;
    // One ticket is enough for a browser's next connection; the default of two doubles the
    // handshake's ticket-encryption work.
    config.send_tls13_tickets = 1;
    // `max_early_data_size` stays 0: the session rejects 0-RTT data, which can be replayed.
    // `ServerConnection::set_buffer_limit` has no counterpart in the unbuffered API that
    // connections use, because rustls then keeps no send buffer at all.
    Ok(Arc::new(config))
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
