//! TLS set-up: reads the certificate chain and key and builds the rustls server configuration
//! shared by every worker, at start and at each configuration reload (SIGHUP). The
//! per-connection handshake is driven in `server::tls_session`, and the records after it in
//! `server::tls_records`.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::{KeyLog, ServerConfig};
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use zeroize::Zeroize;

/// Server-side sessions kept for TLS 1.2 session-ID resumption and TLS 1.3 stateful resumption,
/// shared by all workers. Each entry is a few hundred bytes.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

/// Failure to build the TLS configuration.
#[derive(Debug)]
pub enum TlsSetupError {
    /// A certificate or key file cannot be opened or read, is not a regular file, or is larger
    /// than [`MAX_PEM_FILE_BYTES`].
    Unreadable { kind: PemFileKind, path: PathBuf, reason: String },
    /// The certificate file has no PEM certificate chain, or a damaged certificate in it.
    Certificate { path: PathBuf, reason: String },
    /// The key file has no PEM private key that the crypto provider accepts.
    PrivateKey { path: PathBuf, reason: String },
    /// The private key does not belong to the chain's first certificate.
    KeyMismatch { certificate: PathBuf, private_key: PathBuf },
    /// rustls rejected the rest of the configuration.
    Rejected(rustls::Error),
}

/// The two PEM files of the `[https]` section, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFileKind {
    Certificate,
    PrivateKey,
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Unreadable { kind, path, reason } => {
                let kind = match kind {
                    PemFileKind::Certificate => "certificate",
                    PemFileKind::PrivateKey => "private key",
                };
                write!(f, "cannot read the {kind} file {}: {reason}", path.display())
            }
            TlsSetupError::Certificate { path, reason } => {
                write!(f, "invalid certificate file {}: {reason}", path.display())
            }
            TlsSetupError::PrivateKey { path, reason } => {
                write!(f, "invalid private key file {}: {reason}", path.display())
            }
            TlsSetupError::KeyMismatch { certificate, private_key } => write!(
                f,
                "private key {} rejected: it does not belong to the first certificate in {}",
                private_key.display(),
                certificate.display()
            ),
            TlsSetupError::Rejected(err) => write!(f, "TLS configuration rejected: {err}"),
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
    Ok(remove_byte_order_marks(bytes))
}

/// The UTF-8 byte order mark that some Windows editors write at the start of a text file.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Removes a byte order mark at the start of the file or of any line. A PEM parser reads a line
/// that starts with one as text outside any block, so a mark before the leaf would hide the
/// whole chain, and a mark where two files were joined would hide the second file's blocks.
fn remove_byte_order_marks(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.windows(BYTE_ORDER_MARK.len()).any(|window| window == BYTE_ORDER_MARK) {
        return bytes;
    }
    let mut cleaned = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&byte| byte == b'\n') {
        cleaned.extend_from_slice(line.strip_prefix(BYTE_ORDER_MARK).unwrap_or(line));
    }
    cleaned
}

/// Returns a next step for a file without PEM blocks that starts like DER (an ASN.1 SEQUENCE),
/// the binary form that some tools write instead of PEM.
fn der_hint(pem: &[u8], kind: PemFileKind) -> &'static str {
    match (pem.first(), kind) {
        (Some(0x30), PemFileKind::Certificate) => {
            ". The file looks like binary DER: convert it with `openssl x509 -inform DER -in FILE -out NEW_FILE`"
        }
        (Some(0x30), PemFileKind::PrivateKey) => {
            ". The file looks like binary DER: convert it with `openssl pkey -inform DER -in FILE -out NEW_FILE`"
        }
        _ => "",
    }
}

/// Returns the first line inside a PEM block that has a character base64 does not use, with
/// that character, counting lines from 1.
fn first_non_base64_line(pem: &[u8]) -> Option<(usize, char)> {
    let mut inside = false;
    for (index, line) in pem.split(|&byte| byte == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.starts_with(b"-----BEGIN ") {
            inside = true;
        } else if line.starts_with(b"-----END ") {
            inside = false;
        } else if inside
            && let Some(&byte) = line.iter().find(|&&byte| !(byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=')))
        {
            return Some((index + 1, char::from(byte)));
        }
    }
    None
}

/// Reads a PEM certificate chain, leaf first.
///
/// # Errors
/// Fails when the file cannot be read, is not a regular file, is larger than
/// [`MAX_PEM_FILE_BYTES`], is not PEM, or contains no certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let invalid = |reason: String| TlsSetupError::Certificate { path: path.to_owned(), reason };
    let pem = read_pem_file(path).map_err(|reason| TlsSetupError::Unreadable { kind: PemFileKind::Certificate, path: path.to_owned(), reason })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(describe_pem_error(&err, &pem)))?;
    if chain.is_empty() {
        return Err(invalid(format!("no CERTIFICATE block found{}", der_hint(&pem, PemFileKind::Certificate))));
    }
    // rustls parses only the first certificate, and clients reject a chain whose later
    // certificate is damaged, so every one is checked here. The first must suit rustls's X.509
    // parser (webpki). The others are only passed on, so the parser's rules that are not about
    // damage (version 1 roots, critical policy extensions, the size limit) do not apply to them.
    for (index, certificate) in chain.iter().enumerate() {
        let position = format!("certificate {} of {} in the chain", index + 1, chain.len());
        if let Err(reason) = check_certificate_structure(certificate.as_ref()) {
            return Err(invalid(format!("{position} is not a DER-encoded X.509 certificate: {reason}")));
        }
        let Err(err) = ParsedCertificate::try_from(certificate) else {
            continue;
        };
        let unsupported = unsupported_reason(&err, certificate.as_ref().len());
        if index == 0 {
            let reason = unsupported.map_or_else(|| format!("it is damaged ({})", describe_rustls_error(&err)), str::to_owned);
            return Err(invalid(format!("{position}, the server's own, cannot be used by rustls: {reason}")));
        }
        if unsupported.is_none() {
            return Err(invalid(format!("{position} is damaged: {}", describe_rustls_error(&err))));
        }
    }
    Ok(chain)
}

/// Largest certificate that webpki parses, because it limits DER lengths inside a certificate
/// to two bytes.
const MAX_PARSED_CERTIFICATE_BYTES: usize = 0xffff;

/// Returns why webpki rejected a certificate that is not damaged but unsupported, or `None`
/// when the error points at damage.
fn unsupported_reason(error: &rustls::Error, certificate_bytes: usize) -> Option<&'static str> {
    let webpki_error = match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.0.downcast_ref::<webpki::Error>(),
        _ => None,
    };
    match webpki_error {
        Some(webpki::Error::UnsupportedCertVersion) => Some("it is not an X.509 version 3 certificate"),
        Some(webpki::Error::UnsupportedCriticalExtension) => Some(
            "it has a critical extension that rustls does not support (it supports key usage, extended key usage, subject alternative name, basic constraints, name constraints and CRL distribution points)",
        ),
        _ if certificate_bytes > MAX_PARSED_CERTIFICATE_BYTES => Some("it is larger than rustls's limit of about 64 KiB"),
        _ => None,
    }
}

/// Deepest nesting of DER elements accepted in a certificate. X.509 structures nest about ten
/// levels deep, and the limit bounds the recursion of the check.
const MAX_DER_DEPTH: usize = 32;

/// DER identifier bytes (X.690 §8.1.2) of the elements the certificate check looks for.
const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;
const DER_SEQUENCE: u8 = 0x30;
/// The certificate version field, `[0] EXPLICIT`.
const DER_VERSION: u8 = 0xa0;
/// The bit of an identifier byte set on constructed elements, whose contents are elements.
const DER_CONSTRUCTED: u8 = 0x20;

/// Checks that `der` is well-formed DER with the shape of an X.509 certificate (RFC 5280 §4.1).
/// That is a SEQUENCE of the signed part, the signature algorithm (a SEQUENCE) and the
/// signature (a BIT STRING), with the signed part's mandatory elements in place. Every element
/// inside must have a definite length in its shortest form that fits its parent, and nothing
/// may follow. A lost or changed byte nearly always breaks one of these, so this finds a
/// damaged certificate without judging its contents, which is the client's business.
fn check_certificate_structure(der: &[u8]) -> Result<(), String> {
    let (certificate, rest) = split_der_element(der)?;
    if certificate.identifier != DER_SEQUENCE {
        return Err(format!("it starts with tag 0x{:02x}, not a SEQUENCE", certificate.identifier));
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the certificate", rest.len()));
    }
    check_der_contents(certificate.contents, 1)?;

    let (signed, rest) = split_der_element(certificate.contents)?;
    let (algorithm, rest) = split_der_element(rest)?;
    let (signature, rest) = split_der_element(rest)?;
    let shape = [signed.identifier, algorithm.identifier, signature.identifier];
    if shape != [DER_SEQUENCE, DER_SEQUENCE, DER_BIT_STRING] || !rest.is_empty() {
        return Err("it is not a SEQUENCE of a SEQUENCE, a SEQUENCE and a BIT STRING".to_owned());
    }
    check_signed_part_tags(signed.contents)?;
    if algorithm.contents.is_empty() || signature.contents.is_empty() {
        return Err("the signature or its algorithm is empty".to_owned());
    }
    Ok(())
}

/// Checks the tags of the signed part's mandatory elements (RFC 5280 §4.1): an optional version,
/// then the serial number (INTEGER) and five SEQUENCEs (signature algorithm, issuer, validity,
/// subject, public key). Their contents were checked for DER structure already.
fn check_signed_part_tags(signed: &[u8]) -> Result<(), String> {
    let expected = [DER_INTEGER, DER_SEQUENCE, DER_SEQUENCE, DER_SEQUENCE, DER_SEQUENCE, DER_SEQUENCE];
    let mut rest = signed;
    let mut identifiers = Vec::with_capacity(expected.len() + 1);
    while identifiers.len() <= expected.len() && !rest.is_empty() {
        let (element, after) = split_der_element(rest)?;
        identifiers.push(element.identifier);
        rest = after;
    }
    let mandatory = match identifiers.split_first() {
        Some((&DER_VERSION, mandatory)) => mandatory,
        _ => identifiers.as_slice(),
    };
    if mandatory.get(..expected.len()) != Some(&expected[..]) {
        return Err("the signed part does not start with a serial number and five SEQUENCEs".to_owned());
    }
    Ok(())
}

/// One DER element: its first identifier byte (class, constructed bit and tag number) and its
/// contents.
struct DerElement<'a> {
    identifier: u8,
    contents: &'a [u8],
}

/// Checks every element in `contents`, descending into constructed ones.
fn check_der_contents(contents: &[u8], depth: usize) -> Result<(), String> {
    if depth > MAX_DER_DEPTH {
        return Err(format!("elements are nested more than {MAX_DER_DEPTH} levels deep"));
    }
    let mut rest = contents;
    while !rest.is_empty() {
        let (element, after) = split_der_element(rest)?;
        if element.identifier & DER_CONSTRUCTED != 0 {
            check_der_contents(element.contents, depth + 1)?;
        }
        rest = after;
    }
    Ok(())
}

/// Splits one DER element off the front of `bytes` and returns it with the bytes after it.
/// Lengths must be definite and in their shortest form (X.690 §10.1).
fn split_der_element(bytes: &[u8]) -> Result<(DerElement<'_>, &[u8]), String> {
    let (&identifier, mut rest) = bytes.split_first().ok_or("an element is missing")?;
    // Tag numbers of 31 and above continue in base-128 bytes, the last without the top bit.
    if identifier & 0x1f == 0x1f {
        let tag_bytes = rest.iter().position(|byte| byte & 0x80 == 0).ok_or("a tag number is cut short")? + 1;
        if tag_bytes > 4 || rest.first() == Some(&0x80) {
            return Err("invalid tag number".to_owned());
        }
        rest = rest.get(tag_bytes..).unwrap_or_default();
    }
    let (&first, mut rest) = rest.split_first().ok_or("a length is missing")?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        // 0x80 is the indefinite length, which DER forbids. Four length bytes cover 4 GiB.
        if count == 0 || count > 4 {
            return Err(format!("invalid length byte 0x{first:02x}"));
        }
        let (length_bytes, after) = rest.split_at_checked(count).ok_or("a length is cut short")?;
        rest = after;
        let length = length_bytes.iter().fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        let shortest = if count == 1 { length >= 0x80 } else { length_bytes.first() != Some(&0) };
        if !shortest {
            return Err("a length is not in its shortest form".to_owned());
        }
        length
    };
    let (contents, after) =
        rest.split_at_checked(length).ok_or_else(|| format!("an element claims {length} bytes, but only {} follow", rest.len()))?;
    Ok((DerElement { identifier, contents }, after))
}

/// Describes an error from rustls without its Rust type names.
fn describe_rustls_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding) => "it is not well-formed".to_owned(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.to_string(),
        rustls::Error::General(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Reads the first PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
///
/// # Errors
/// Fails when the file cannot be read, is not a regular file, is larger than
/// [`MAX_PEM_FILE_BYTES`], or contains no key.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let invalid = |reason: String| TlsSetupError::PrivateKey { path: path.to_owned(), reason };
    let pem = read_pem_file(path).map_err(|reason| TlsSetupError::Unreadable { kind: PemFileKind::PrivateKey, path: path.to_owned(), reason })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| {
        // PKCS#8 and the older OpenSSL format mark an encrypted key in these two ways.
        let encrypted = [&b"-----BEGIN ENCRYPTED PRIVATE KEY-----"[..], &b"Proc-Type: 4,ENCRYPTED"[..]]
            .iter()
            .any(|marker| pem.windows(marker.len()).any(|window| window == *marker));
        if encrypted {
            return invalid(
                "the key is encrypted, and ringfront cannot ask for a passphrase. Decrypt it first, for example with `openssl pkey -in FILE -out NEW_FILE`".to_owned(),
            );
        }
        match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                invalid(format!("no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found{}", der_hint(&pem, PemFileKind::PrivateKey)))
            }
            other => invalid(describe_pem_error(&other, &pem)),
        }
    })
}

/// Describes a PEM syntax error with the block's label as text, where the library's message
/// shows it as a list of byte values, and bad base64 by its line in `pem`.
fn describe_pem_error(error: &rustls::pki_types::pem::Error, pem: &[u8]) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => {
            format!("a PEM block has no \"-----END {}-----\" line", String::from_utf8_lossy(end_marker))
        }
        Error::IllegalSectionStart { line } => format!("invalid PEM BEGIN line {:?}", String::from_utf8_lossy(line)),
        Error::Base64Decode(reason) => match first_non_base64_line(pem) {
            Some((line, character)) => format!("invalid base64 in a PEM block: line {line} has the character {character:?}"),
            None => format!("invalid base64 in a PEM block: characters are missing or extra ({reason})"),
        },
        other => other.to_string(),
    }
}

/// The certificate chain and private key offered in full handshakes, read from their files when
/// the configuration is loaded. A reload builds a new one, and a connection keeps the pair it
/// was given.
#[derive(Debug)]
struct CertificatePair(Arc<CertifiedKey>);

impl ResolvesServerCert for CertificatePair {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Reads a certificate chain and its key, and checks that the key belongs to the chain's first
/// certificate.
fn read_pair(certificate: &Path, private_key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsSetupError> {
    let chain = load_certificates(certificate)?;
    let key = load_private_key(private_key)?;
    let signing_key = provider.key_provider.load_private_key(key).map_err(|err| TlsSetupError::PrivateKey {
        path: private_key.to_owned(),
        reason: format!("{}. Supported keys are RSA of at least 2048 bits, ECDSA P-256, P-384 and P-521, and Ed25519", describe_rustls_error(&err)),
    })?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        // rustls also accepts a key whose public half it cannot derive.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(TlsSetupError::KeyMismatch { certificate: certificate.to_owned(), private_key: private_key.to_owned() })
        }
        Err(err) => Err(TlsSetupError::Certificate { path: certificate.to_owned(), reason: err.to_string() }),
    }
}

/// The TLS configuration for the HTTPS listeners, with what a reload carries over to the next.
pub struct TlsSetup {
    pub config: Arc<ServerConfig>,
    /// The certificate chain served, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The session cache and ticket keys inside the configuration's expiring wrappers, so that
    /// sessions made before a reload still resume after it.
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
}

impl TlsSetup {
    /// Returns the certificate chain served, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// Builds the server configuration: TLS 1.2 and 1.3 only, ALPN `http/1.1`, resumption by
/// stateless tickets and by a shared session cache, for at most `session_timeout` after the
/// session's full handshake. With `previous`, its session cache and ticket keys are kept, so
/// that its sessions can resume under the new configuration.
///
/// # Errors
/// Fails when a file is unreadable, is not a regular file, is too large, or contains no PEM
/// certificate or key. Also fails when a certificate is damaged, when the first one does not
/// suit rustls, or when the key does not match it.
pub fn server_config(certificate: &Path, private_key: &Path, session_timeout: Duration, previous: Option<&TlsSetup>) -> Result<TlsSetup, TlsSetupError> {
    let provider = Arc::new(provider::default_provider());
    let pair = Arc::new(read_pair(certificate, private_key, &provider)?);
    let chain = pair.cert.clone();
    let (sessions, tickets) = match previous {
        Some(previous) => (Arc::clone(&previous.sessions), Arc::clone(&previous.tickets)),
        None => (
            ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES) as Arc<dyn StoresServerSessions>,
            provider::Ticketer::new().map_err(TlsSetupError::Rejected)?,
        ),
    };

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsSetupError::Rejected)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CertificatePair(pair)));

    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = Arc::new(ExpiringSessions { inner: Arc::clone(&sessions), lifetime: session_timeout });
    config.ticketer = Arc::new(ExpiringTickets { inner: Arc::clone(&tickets), lifetime: session_timeout });
    // One ticket is enough for a browser's next connection; the default of two doubles the
    // handshake's ticket-encryption work.
    config.send_tls13_tickets = 1;
    // `max_early_data_size` stays 0: the session rejects 0-RTT data, which can be replayed.
    // Connections take the traffic secrets from rustls once the handshake is complete and
    // protect their records themselves (see `server::tls_records`). For TLS 1.3 key updates
    // they also need the application traffic secrets, which rustls passes only to a key log.
    config.enable_secret_extraction = true;
    config.key_log = Arc::new(ApplicationSecretLog);
    // `ServerConnection::set_buffer_limit` has no counterpart in the unbuffered API that
    // connections use, because rustls then keeps no send buffer at all.
    Ok(TlsSetup { config: Arc::new(config), chain, sessions, tickets })
}

/// Returns the clock for session stamps. A stamp is the time of a session's full handshake,
/// written before its encoded state in the session cache and inside the encrypted part of a
/// ticket. rustls checks no session's age when it resumes one: its cache keeps a session until
/// newer ones push it out, and a ticket stays valid as long as its key.
///
/// The clock is the time since this process first read it, in milliseconds: monotonic, so a
/// step of the wall clock neither revives old sessions nor ends new ones. Sessions and ticket
/// keys live only in this process, so no stamp outlives its clock.
fn session_clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Bytes of the stamp before each session's state: milliseconds, big-endian.
const STAMP_BYTES: usize = 8;

/// Returns `state` behind its stamp.
fn stamp_session(stamp: u64, state: &[u8]) -> Vec<u8> {
    let mut stamped = Vec::with_capacity(STAMP_BYTES + state.len());
    stamped.extend_from_slice(&stamp.to_be_bytes());
    stamped.extend_from_slice(state);
    stamped
}

/// Returns the stamp and the state from `stamped` when the stamp is at most `lifetime` before
/// `now`. A stamp after `now` or a value too short for a stamp gives `None` too.
fn unstamp_session(now: u64, lifetime: Duration, mut stamped: Vec<u8>) -> Option<(u64, Vec<u8>)> {
    let (stamp, _) = stamped.split_first_chunk::<STAMP_BYTES>()?;
    let stamp = u64::from_be_bytes(*stamp);
    let age = now.checked_sub(stamp)?;
    if u128::from(age) > lifetime.as_millis() {
        return None;
    }
    stamped.drain(..STAMP_BYTES);
    Some((stamp, stamped))
}

thread_local! {
    /// The stamp of the session that the handshake step running on this thread resumes; see
    /// [`handshake_step`].
    static SESSION_ORIGIN: Cell<Option<u64>> = const { Cell::new(None) };

    /// The TLS 1.3 application traffic secrets that the handshake step running on this thread
    /// derived; see [`collect_application_secrets`].
    static APPLICATION_SECRETS: RefCell<ApplicationSecrets> = RefCell::new(ApplicationSecrets::default());
}

/// Key log labels of the first TLS 1.3 application traffic secrets (RFC 8446 §7.1; the labels
/// are those of the NSS key log format that rustls uses).
const CLIENT_APPLICATION_SECRET: &str = "CLIENT_TRAFFIC_SECRET_0";
const SERVER_APPLICATION_SECRET: &str = "SERVER_TRAFFIC_SECRET_0";

/// A TLS 1.3 application traffic secret (RFC 8446 §7.1): as long as the suite's hash, at most
/// 48 bytes. Wiped when dropped.
pub struct ApplicationSecret {
    bytes: [u8; 48],
    len: usize,
}

impl ApplicationSecret {
    /// Copies `secret`; `None` when it is longer than 48 bytes.
    pub fn new(secret: &[u8]) -> Option<ApplicationSecret> {
        let mut copy = ApplicationSecret { bytes: [0; 48], len: secret.len() };
        copy.bytes.get_mut(..secret.len())?.copy_from_slice(secret);
        Some(copy)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Drop for ApplicationSecret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The client's and the server's first application traffic secrets of one TLS 1.3 handshake.
#[derive(Default)]
pub struct ApplicationSecrets {
    pub client: Option<ApplicationSecret>,
    pub server: Option<ApplicationSecret>,
}

/// Moves the application traffic secrets that rustls derived on this thread since the last call
/// into `secrets`.
///
/// rustls hands a connection's traffic keys over at the end of the handshake, but not the
/// secrets that TLS 1.3 key updates derive the next keys from (RFC 8446 §7.2). It passes them
/// only to the configuration's key log, which has no connection parameter. So they pass through
/// this thread: each call into rustls for a connection runs to its end on the worker's thread,
/// and the session collects them after each call.
pub fn collect_application_secrets(secrets: &mut ApplicationSecrets) {
    let captured = APPLICATION_SECRETS.take();
    if captured.client.is_some() {
        secrets.client = captured.client;
    }
    if captured.server.is_some() {
        secrets.server = captured.server;
    }
}

/// The key log that keeps the application traffic secrets for [`collect_application_secrets`].
/// It writes nothing anywhere.
#[derive(Debug)]
struct ApplicationSecretLog;

impl KeyLog for ApplicationSecretLog {
    fn will_log(&self, label: &str) -> bool {
        label == CLIENT_APPLICATION_SECRET || label == SERVER_APPLICATION_SECRET
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        APPLICATION_SECRETS.with_borrow_mut(|secrets| match label {
            CLIENT_APPLICATION_SECRET => secrets.client = ApplicationSecret::new(secret),
            SERVER_APPLICATION_SECRET => secrets.server = ApplicationSecret::new(secret),
            _ => {}
        });
    }
}

/// Runs one step of a connection's handshake with `origin`, the stamp of the session it
/// resumes, where the session stores can read it, and stores the stamp of a session that the
/// step resumed back into `origin`.
///
/// A resumed session gets a new ticket (TLS 1.3 always, TLS 1.2 when the client requests one),
/// and a TLS 1.2 renewal keeps the first handshake's master secret. A ticket stamped at its own
/// issue would let a client that returns often enough use keys from one full handshake for
/// ever, where RFC 8446 §4.6.1 recommends limiting their total lifetime. So each new ticket
/// carries its session's first stamp.
///
/// rustls's ticket interface has no connection parameter, and the unbuffered connection does
/// not expose its resumption data. So the stamp passes through this thread. Each call into
/// rustls for a connection runs to its end on the worker's thread, and tickets are decrypted
/// and encrypted only inside such calls.
pub fn handshake_step<T>(origin: &mut Option<u64>, step: impl FnOnce() -> T) -> T {
    SESSION_ORIGIN.set(*origin);
    let result = step();
    *origin = SESSION_ORIGIN.take();
    result
}

/// The shared session cache (TLS 1.2 session IDs), ending each session `lifetime` after its
/// first handshake.
#[derive(Debug)]
struct ExpiringSessions {
    inner: Arc<dyn StoresServerSessions>,
    lifetime: Duration,
}

impl ExpiringSessions {
    fn unstamp(&self, stamped: Vec<u8>) -> Option<Vec<u8>> {
        let (stamp, state) = unstamp_session(session_clock(), self.lifetime, stamped)?;
        SESSION_ORIGIN.set(Some(stamp));
        Some(state)
    }
}

impl StoresServerSessions for ExpiringSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let stamp = SESSION_ORIGIN.get().unwrap_or_else(session_clock);
        self.inner.put(key, stamp_session(stamp, &value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let state = self.unstamp(self.inner.get(key)?);
        if state.is_none() {
            // Frees the entry now instead of when newer sessions push it out.
            self.inner.take(key);
        }
        state
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.unstamp(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// rustls's ticket keys, ending each ticket `lifetime` after its session's first handshake.
/// The stamp is inside the ticket's encrypted and authenticated part, so a client cannot
/// change it.
#[derive(Debug)]
struct ExpiringTickets {
    inner: Arc<dyn ProducesTickets>,
    lifetime: Duration,
}

impl ProducesTickets for ExpiringTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    /// Returns the lifetime sent with a ticket: what is left of its session's, rounded up to whole
    /// seconds, or the key's own when that is shorter. rustls reads it right after encrypting.
    fn lifetime(&self) -> u32 {
        let used = SESSION_ORIGIN.get().map_or(0, |origin| session_clock().saturating_sub(origin));
        let left = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX).saturating_sub(used);
        let seconds = u32::try_from(left.div_ceil(1000).max(1)).unwrap_or(u32::MAX);
        self.inner.lifetime().min(seconds)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let stamp = SESSION_ORIGIN.get().unwrap_or_else(|| {
            let now = session_clock();
            SESSION_ORIGIN.set(Some(now));
            now
        });
        self.inner.encrypt(&stamp_session(stamp, plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (stamp, state) = unstamp_session(session_clock(), self.lifetime, self.inner.decrypt(cipher)?)?;
        SESSION_ORIGIN.set(Some(stamp));
        Some(state)
    }
}

/// Loads the TLS files named by `config`, without serving, for `ringfront check`.
///
/// # Errors
/// As [`server_config`].
pub fn check_files(config: &crate::config::Config) -> Result<(), TlsSetupError> {
    match &config.https {
        Some(https) => server_config(&https.certificate, &https.private_key, https.session_timeout, None).map(|_| ()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        MAX_DER_DEPTH, MAX_PEM_FILE_BYTES, TlsSetupError, check_certificate_structure, load_certificates, load_private_key,
        read_pem_file, stamp_session, unstamp_session,
    };

    /// Returns a new key and a certificate for `name` signed by it.
    fn self_signed(name: &str) -> (rcgen::KeyPair, rcgen::Certificate) {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
        (key, certificate)
    }

    #[test]
    fn session_ends_after_lifetime() {
        let lifetime = Duration::from_secs(60);
        let stamped = stamp_session(5_000, b"state");
        assert_eq!(stamped.len(), 13);
        for (now, expected) in [(5_000, true), (65_000, true), (65_001, false), (4_999, false), (u64::MAX, false)] {
            let unstamped = unstamp_session(now, lifetime, stamped.clone());
            assert_eq!(unstamped.is_some(), expected, "at {now}");
            if let Some((stamp, state)) = unstamped {
                assert_eq!((stamp, state.as_slice()), (5_000, &b"state"[..]));
            }
        }
        assert_eq!(unstamp_session(0, lifetime, stamp_session(0, b"")), Some((0, Vec::new())));
        assert_eq!(unstamp_session(0, lifetime, vec![0; 7]), None);
    }

    /// Removes the second base64 line of a PEM block. The rest still decodes, because each full
    /// line is 48 bytes, but the DER inside no longer parses.
    fn drop_second_base64_line(pem: &str) -> String {
        let mut lines: Vec<&str> = pem.lines().collect();
        lines.remove(2);
        lines.join("\n") + "\n"
    }

    #[test]
    fn byte_order_marks_removed() {
        let (key, certificate) = self_signed("localhost");
        let (_, other) = self_signed("other.test");
        let path = std::env::temp_dir().join(format!("ringfront-bom-{}.pem", std::process::id()));
        let mark = "\u{feff}";

        // Two files joined, each saved with a mark.
        std::fs::write(&path, format!("{mark}{}{mark}{}", certificate.pem(), other.pem())).unwrap();
        let chain = load_certificates(&path);
        std::fs::write(&path, format!("{mark}{}", key.serialize_pem())).unwrap();
        let private_key = load_private_key(&path);
        std::fs::remove_file(&path).unwrap();

        assert_eq!(chain.map(|chain| chain.len()).ok(), Some(2));
        assert!(private_key.is_ok(), "{private_key:?}");
        let inside = b"a\xEF\xBB\xBFb\n".to_vec();
        assert_eq!(super::remove_byte_order_marks(inside.clone()), inside);
    }

    #[test]
    fn pem_mistakes_explained() {
        let (key, certificate) = self_signed("localhost");
        let path = std::env::temp_dir().join(format!("ringfront-pem-mistakes-{}.pem", std::process::id()));
        let mut lines: Vec<String> = certificate.pem().lines().map(str::to_owned).collect();
        lines[2].replace_range(4..5, "-");

        std::fs::write(&path, lines.join("\n")).unwrap();
        let bad_character = load_certificates(&path);
        std::fs::write(&path, certificate.der()).unwrap();
        let der_certificate = load_certificates(&path);
        std::fs::write(&path, key.serialize_der()).unwrap();
        let der_key = load_private_key(&path);
        std::fs::remove_file(&path).unwrap();

        let reason = |result: Result<(), TlsSetupError>| match result {
            Err(TlsSetupError::Certificate { reason, .. } | TlsSetupError::PrivateKey { reason, .. }) => reason,
            other => panic!("expected an invalid file, got {other:?}"),
        };
        let bad_character = reason(bad_character.map(drop));
        assert!(bad_character.ends_with("line 3 has the character '-'"), "{bad_character}");
        let der_certificate = reason(der_certificate.map(drop));
        assert!(der_certificate.contains("`openssl x509 -inform DER"), "{der_certificate}");
        let der_key = reason(der_key.map(drop));
        assert!(der_key.contains("`openssl pkey -inform DER"), "{der_key}");
    }

    #[test]
    fn chain_certificates_all_parsed() {
        let (_, certificate) = self_signed("localhost");
        let (_, other) = self_signed("other.test");
        let path = std::env::temp_dir().join(format!("ringfront-chain-{}.pem", std::process::id()));

        std::fs::write(&path, certificate.pem() + &other.pem()).unwrap();
        let whole = load_certificates(&path);
        std::fs::write(&path, certificate.pem() + &drop_second_base64_line(&other.pem())).unwrap();
        let damaged = load_certificates(&path);
        std::fs::remove_file(&path).unwrap();

        assert_eq!(whole.map(|chain| chain.len()).ok(), Some(2));
        let reason = match damaged {
            Err(TlsSetupError::Certificate { reason, .. }) => reason,
            other => panic!("expected an invalid certificate file, got {other:?}"),
        };
        assert!(reason.starts_with("certificate 2 of 2 in the chain is not a DER-encoded X.509 certificate"), "{reason}");
    }

    /// The DER structure is checked at every level, and the content of the elements is not.
    #[test]
    fn certificate_structure_cases() {
        let key = rcgen::KeyPair::generate().unwrap();
        let real = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap().der().to_vec();
        let mut trailing = real.clone();
        trailing.push(0);

        // The version field, [0] EXPLICIT INTEGER 2, made to claim one byte more than it holds.
        let version = [0xa0, 0x03, 0x02, 0x01, 0x02];
        let at = real.windows(version.len()).position(|window| window == version).unwrap();
        let mut inner_length = real.clone();
        inner_length[at + 1] = 0x04;

        // A SEQUENCE with short contents (under 128 bytes).
        let sequence = |contents: &[u8]| [&[0x30, u8::try_from(contents.len()).unwrap()][..], contents].concat();
        let algorithm_and_signature = [0x30, 0x02, 5, 0, 0x03, 0x01, 0x00];
        // A serial number and five empty SEQUENCEs as the signed part: the right shape with
        // meaningless contents.
        let shape_only = sequence(&[&sequence(&[2, 1, 0, 0x30, 0, 0x30, 0, 0x30, 0, 0x30, 0, 0x30, 0])[..], &algorithm_and_signature].concat());
        let six_nulls = sequence(&[&sequence(&[5, 0, 5, 0, 5, 0, 5, 0, 5, 0, 5, 0])[..], &algorithm_and_signature].concat());

        // The right shape again, but with the public key nested past the limit.
        let mut nested = vec![5, 0];
        for _ in 0..MAX_DER_DEPTH {
            nested = sequence(&nested);
        }
        let signed = sequence(&[&[2, 1, 0, 0x30, 0, 0x30, 0, 0x30, 0, 0x30, 0][..], &nested].concat());
        let deep = sequence(&[&signed[..], &algorithm_and_signature].concat());

        let cases: [(&str, &[u8], bool); 12] = [
            ("a real certificate", &real, true),
            ("contents not judged", &shape_only, true),
            ("six NULLs as the signed part", &six_nulls, false),
            ("a byte after the certificate", &trailing, false),
            ("cut short", real.get(..real.len() - 1).unwrap(), false),
            ("an inner length too long", &inner_length, false),
            ("empty", &[], false),
            ("an empty signed part", &[0x30, 0x06, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00], false),
            ("indefinite length", &[0x30, 0x80, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00, 0x00, 0x00], false),
            ("length not in its shortest form", &[0x30, 0x81, 0x06, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00], false),
            ("a fourth part", &[0x30, 0x08, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00, 0x05, 0x00], false),
            ("nested too deeply", &deep, false),
        ];
        for (name, der, valid) in cases {
            assert_eq!(check_certificate_structure(der).is_ok(), valid, "{name}: {:?}", check_certificate_structure(der));
        }
    }

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
