//! One TLS server session, without I/O: the handshake driven through rustls's unbuffered API
//! (rustls 0.23), then the records through [`Records`]. The caller owns every buffer: the
//! ciphertext read from the socket, the plaintext for the HTTP decoder and the records to send.
//! Neither keeps a buffer of its own between calls, so a caller can free its buffers while a
//! connection is idle, and [`TlsSession::release_keys`] frees the AEAD key contexts too. This
//! module must not use sockets or the async runtime.
//!
//! Order of calls: append what the socket delivered to the ciphertext buffer and call
//! [`TlsSession::process`], then send what it appended to the output buffer. Once
//! [`TlsSession::is_handshake_complete`] returns true, [`TlsSession::encrypt`] turns plaintext
//! into records and [`TlsSession::queue_close_notify`] ends the session. Every call takes the
//! ciphertext buffer, because records are decrypted in place and rustls's handshake deframer
//! keeps offsets into that buffer between calls. The caller may append to it or replace it when
//! it is empty, and must not change it in any other way.
//!
//! 0-RTT early data is rejected: the server configuration leaves `max_early_data_size` at 0, so
//! rustls never offers it, and a `ReadEarlyData` state is reported as
//! [`TlsSessionError::EarlyData`] rather than skipped. Early data can be replayed by an attacker
//! (RFC 8446 §8), and skipping it would drop request bytes without telling the client.

use std::fmt;
use std::sync::Arc;

use rustls::{HandshakeKind, ServerConfig};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncodeTlsData, UnbufferedStatus};

use super::tls_records::{MAX_RECORD_PLAINTEXT, Records};
use crate::tls::ApplicationSecrets;

/// Bytes reserved for a handshake record before encoding it, when the output buffer has less
/// spare capacity. A certificate chain is larger; rustls then reports the exact size.
const HANDSHAKE_RECORD_ESTIMATE: usize = 4 * 1024;

/// Attempts at encoding one handshake record: the first with an estimated size, the second with
/// the size rustls reported as required.
const SIZE_ATTEMPTS: usize = 2;

/// rustls states handled in one call beyond one per ciphertext byte. Each state either consumes a
/// record of at least 5 bytes or hands out a message rustls queued, and a handshake flight is a
/// handful of messages, so a call that needs more has stopped making progress.
const STEP_ALLOWANCE: usize = 256;

/// Failure of a TLS session.
#[derive(Debug)]
pub enum TlsSessionError {
    /// rustls rejected the peer's records. When rustls produced an alert for the failure, the alert
    /// is already appended to the output buffer. Later calls return the same error.
    Protocol(rustls::Error),
    /// Application data cannot be encrypted before the handshake is complete.
    HandshakeIncomplete,
    /// close_notify was already queued, so no more application data can be sent.
    Closed,
    /// The keys of the session allow no more records: a TLS 1.2 key reached its cipher suite's
    /// confidentiality limit, or aws-lc failed to seal.
    EncryptExhausted,
    /// The client sent 0-RTT early data, which the configuration does not accept.
    EarlyData,
    /// rustls required more output space than it reported in its previous attempt.
    OutputSize { required: usize },
    /// rustls returned a state this driver does not know (added after rustls 0.23.48) or does not
    /// expect during the handshake, or returned a handshake record that was already encoded.
    UnexpectedState,
    /// rustls returned more states in one call than the input can explain.
    NoProgress,
    /// rustls did not hand over the keys of a completed handshake.
    HandOver(rustls::Error),
}

impl fmt::Display for TlsSessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSessionError::Protocol(err) => write!(f, "{err}"),
            TlsSessionError::HandshakeIncomplete => write!(f, "TLS handshake not complete"),
            TlsSessionError::Closed => write!(f, "close_notify already sent"),
            TlsSessionError::EncryptExhausted => write!(f, "TLS keys exhausted"),
            TlsSessionError::EarlyData => write!(f, "TLS early data rejected"),
            TlsSessionError::OutputSize { required } => write!(f, "rustls required {required} output bytes again"),
            TlsSessionError::UnexpectedState => write!(f, "unexpected rustls connection state"),
            TlsSessionError::NoProgress => write!(f, "rustls made no progress"),
            TlsSessionError::HandOver(err) => write!(f, "rustls kept the session's keys: {err}"),
        }
    }
}

impl std::error::Error for TlsSessionError {}

/// The goal of one call.
enum Goal<'a> {
    /// Take in all complete records and append their plaintext.
    Process { plaintext: &'a mut Vec<u8> },
    /// Encrypt the concatenation of the slices.
    Encrypt { parts: &'a [&'a [u8]] },
    /// Queue close_notify.
    CloseNotify,
}

/// Outcome of handling one rustls state.
enum Step {
    /// Call `process_tls_records` again.
    Continue,
    /// The goal is reached.
    Done,
    /// The handshake is complete: the records go to [`Records`], which reaches the goal.
    HandshakeDone,
    /// rustls took in everything it was shown and waits for another record.
    Starved,
    Failed(TlsSessionError),
}

/// The part of the session that handles its records.
// The traffic variant is the larger one and the one a session spends its life in; its owner
// boxes the whole session.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// rustls, until the handshake is complete. Boxed, so that a session past its handshake
    /// keeps only the small [`Records`].
    Handshake(Box<Handshake>),
    Traffic(Records),
    /// rustls failed to hand over the keys.
    Ended,
}

/// A session in its handshake.
struct Handshake {
    connection: UnbufferedServerConnection,
    /// The TLS 1.3 application traffic secrets, once rustls derived them.
    secrets: ApplicationSecrets,
    /// Bytes at the front of the ciphertext buffer that rustls was shown and has not discarded:
    /// whole records, which it may have rewritten in place (it joins a handshake message split
    /// over records where the later records' headers were).
    bytes_shown: usize,
}

/// A server-side TLS session whose buffers the caller owns.
pub struct TlsSession {
    phase: Phase,
    /// Plaintext bytes per record, from `ServerConfig::max_fragment_size`.
    record_plaintext: usize,
    /// The client sent close_notify during the handshake.
    peer_closed: bool,
    close_notify_queued: bool,
    /// The error rustls returned, kept because rustls must not be driven after it.
    failure: Option<rustls::Error>,
    /// The stamp of the stored session this handshake resumes, for the ticket that replaces it;
    /// see [`crate::tls::handshake_step`].
    session_origin: Option<u64>,
    /// Full or resumed, once the handshake is complete.
    handshake_kind: Option<HandshakeKind>,
}

impl TlsSession {
    /// Creates a session for one accepted connection.
    ///
    /// # Errors
    /// As `UnbufferedServerConnection::new`, for example when the configuration has no usable
    /// protocol version.
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, rustls::Error> {
        // rustls subtracts the 5-byte record header from `max_fragment_size`.
        let record_plaintext = config
            .max_fragment_size
            .map_or(MAX_RECORD_PLAINTEXT, |size| size.saturating_sub(5).clamp(1, MAX_RECORD_PLAINTEXT));
        let connection = UnbufferedServerConnection::new(config)?;
        Ok(TlsSession {
            phase: Phase::Handshake(Box::new(Handshake { connection, secrets: ApplicationSecrets::default(), bytes_shown: 0 })),
            record_plaintext,
            peer_closed: false,
            close_notify_queued: false,
            failure: None,
            session_origin: None,
            handshake_kind: None,
        })
    }

    /// Returns whether the handshake is complete, so application data can be encrypted.
    pub fn is_handshake_complete(&self) -> bool {
        matches!(self.phase, Phase::Traffic(_))
    }

    /// Returns whether the peer sent close_notify. No plaintext follows it.
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed || matches!(&self.phase, Phase::Traffic(records) if records.is_peer_closed())
    }

    /// Returns whether a bad record waits behind plaintext already handed over. The next
    /// [`TlsSession::process`] reports it.
    pub fn has_deferred_fault(&self) -> bool {
        matches!(&self.phase, Phase::Traffic(records) if records.has_deferred_fault())
    }

    /// Lets `records` more records be sealed under the current key before it must change, in
    /// place of the cipher suite's limit of millions.
    #[cfg(test)]
    fn set_confidentiality_limit(&mut self, records: u64) {
        if let Phase::Traffic(traffic) = &mut self.phase {
            traffic.set_confidentiality_limit(records);
        }
    }

    /// The negotiated protocol version, once the handshake is complete.
    #[cfg(test)]
    fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.phase {
            Phase::Traffic(records) => Some(records.protocol_version()),
            _ => None,
        }
    }

    /// Drops the AEAD key contexts of a session past its handshake, for a connection that may
    /// wait long for its next request; see [`Records::release_keys`].
    pub fn release_keys(&mut self) {
        if let Phase::Traffic(records) = &mut self.phase {
            records.release_keys();
        }
    }

    /// Takes every complete record from `incoming` and removes the bytes rustls consumed. Appends
    /// decrypted application data to `plaintext` and records to send (handshake messages, session
    /// tickets, KeyUpdate responses, alerts) to `outgoing`. An incomplete record stays in `incoming`
    /// until more bytes arrive.
    ///
    /// # Errors
    /// `Protocol` when rustls rejects the records, after its alert was appended to `outgoing`.
    /// `EarlyData` when the client sent 0-RTT data. The other variants for states this driver
    /// does not expect.
    pub fn process(&mut self, incoming: &mut Vec<u8>, plaintext: &mut Vec<u8>, outgoing: &mut Vec<u8>) -> Result<(), TlsSessionError> {
        if let Some(err) = &self.failure {
            return Err(TlsSessionError::Protocol(err.clone()));
        }
        let Phase::Traffic(records) = &mut self.phase else { return self.drive(incoming, outgoing, Goal::Process { plaintext }) };
        let result = records.open(incoming, plaintext, outgoing);
        result.map_err(|err| {
            self.failure = Some(err.clone());
            TlsSessionError::Protocol(err)
        })
    }

    /// Encrypts the concatenation of `parts` into records appended to `outgoing`. A record spans
    /// part boundaries, so a response head and a short body share one record.
    ///
    /// # Errors
    /// `HandshakeIncomplete` before the handshake ends, `Closed` after close_notify, and
    /// `EncryptExhausted` when the keys allow no more records.
    pub fn encrypt(&mut self, incoming: &mut Vec<u8>, parts: &[&[u8]], outgoing: &mut Vec<u8>) -> Result<(), TlsSessionError> {
        if self.close_notify_queued {
            return Err(TlsSessionError::Closed);
        }
        if parts.iter().all(|part| part.is_empty()) {
            return Ok(());
        }
        if let Some(err) = &self.failure {
            return Err(TlsSessionError::Protocol(err.clone()));
        }
        let Phase::Traffic(records) = &mut self.phase else { return self.drive(incoming, outgoing, Goal::Encrypt { parts }) };
        records.seal(parts, self.record_plaintext, outgoing).map_err(|err| match err {
            rustls::Error::EncryptError => TlsSessionError::EncryptExhausted,
            other => TlsSessionError::Protocol(other),
        })
    }

    /// Appends a close_notify alert (RFC 8446 §6.1) to `outgoing`. Does nothing when it was
    /// already queued or when rustls rejected the peer, because an error alert was sent then.
    ///
    /// # Errors
    /// As [`TlsSession::encrypt`], except that it succeeds during the handshake without queuing.
    pub fn queue_close_notify(&mut self, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>) -> Result<(), TlsSessionError> {
        if self.close_notify_queued || self.failure.is_some() {
            return Ok(());
        }
        let Phase::Traffic(records) = &mut self.phase else { return self.drive(incoming, outgoing, Goal::CloseNotify) };
        records.close_notify(outgoing).map_err(|_| TlsSessionError::EncryptExhausted)?;
        self.close_notify_queued = true;
        Ok(())
    }

    /// Calls `process_tls_records` until `goal` is reached, handling every state on the way.
    fn drive(&mut self, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>, goal: Goal<'_>) -> Result<(), TlsSessionError> {
        let Phase::Handshake(handshake) = &self.phase else { return Err(TlsSessionError::UnexpectedState) };
        // When rustls found a stored session but made a full handshake (also one after a
        // HelloRetryRequest), the next ticket starts a new session.
        let mut origin = match handshake.connection.handshake_kind() {
            Some(HandshakeKind::Resumed) | None => self.session_origin,
            Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => None,
        };
        let result = crate::tls::handshake_step(&mut origin, || self.drive_handshake(incoming, outgoing, goal));
        self.session_origin = origin;
        // Secrets rustls derived in this step stay with this session, and none with the thread.
        // After a hand-over, `hand_over` took them already.
        if let Phase::Handshake(handshake) = &mut self.phase {
            crate::tls::collect_application_secrets(&mut handshake.secrets);
        }
        result
    }

    /// Does the work of [`TlsSession::drive`] once the session's origin is in place.
    ///
    /// rustls is shown one more whole record only when it has taken in all it was shown, and the
    /// session takes over as soon as the handshake is complete. So rustls never opens a record
    /// that follows the client's Finished, even one that arrived with it: it would act on a
    /// KeyUpdate or close_notify there in ways the hand-over loses (rustls queues its own
    /// KeyUpdate for its next write).
    fn drive_handshake(&mut self, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>, goal: Goal<'_>) -> Result<(), TlsSessionError> {
        let max_steps = STEP_ALLOWANCE.saturating_add(incoming.len());
        // Whether the incomplete record after the shown ones was shown too, once, so that rustls
        // rejects a bad header before the record is complete.
        let mut partial_shown = false;
        for _ in 0..max_steps {
            let Phase::Handshake(handshake) = &mut self.phase else { return Err(TlsSessionError::UnexpectedState) };
            let connection = &mut handshake.connection;
            if !connection.is_handshaking() && !connection.wants_write() {
                return self.hand_over(incoming, outgoing, goal);
            }
            let visible = if partial_shown { incoming.len() } else { handshake.bytes_shown.min(incoming.len()) };
            let Some(visible_part) = incoming.get_mut(..visible) else { return Err(TlsSessionError::UnexpectedState) };
            let UnbufferedStatus { discard, state } = connection.process_tls_records(visible_part);
            let step = match state {
                Err(err) => {
                    discard_front(incoming, discard);
                    return Err(self.fail(err, incoming, outgoing));
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => match encode_into(&mut data, outgoing) {
                    Ok(()) => Step::Continue,
                    Err(err) => Step::Failed(err),
                },
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // Everything encoded so far is at the end of `outgoing`, ahead of any later
                    // record, and the caller sends that buffer in order.
                    transmit.done();
                    Step::Continue
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Step::Continue
                }
                Ok(ConnectionState::BlockedHandshake) if !partial_shown => Step::Starved,
                Ok(ConnectionState::BlockedHandshake) => blocked(&goal),
                // rustls reports the end of the handshake once it has handed out every record it
                // queued, which the hand-over to `Records` requires.
                Ok(ConnectionState::WriteTraffic(_)) => Step::HandshakeDone,
                Ok(ConnectionState::Closed) => match goal {
                    Goal::Process { .. } | Goal::CloseNotify => Step::Done,
                    Goal::Encrypt { .. } => Step::Failed(TlsSessionError::Closed),
                },
                Ok(ConnectionState::ReadEarlyData(_)) => Step::Failed(TlsSessionError::EarlyData),
                // Also `ReadTraffic`: application data comes only after the client's Finished,
                // which `Records` opens.
                Ok(_) => Step::Failed(TlsSessionError::UnexpectedState),
            };
            let Phase::Handshake(handshake) = &mut self.phase else { return Err(TlsSessionError::UnexpectedState) };
            handshake.bytes_shown = handshake.bytes_shown.saturating_sub(discard);
            discard_front(incoming, discard);

            let step = match step {
                Step::Starved => match next_record_end(incoming, handshake.bytes_shown) {
                    Some(end) => {
                        handshake.bytes_shown = end;
                        Step::Continue
                    }
                    None if incoming.len() > handshake.bytes_shown => {
                        partial_shown = true;
                        Step::Continue
                    }
                    None => blocked(&goal),
                },
                step => step,
            };
            match step {
                Step::Continue => {}
                Step::Done => return Ok(()),
                Step::HandshakeDone => return self.hand_over(incoming, outgoing, goal),
                Step::Failed(err) => return Err(err),
                Step::Starved => return Err(TlsSessionError::UnexpectedState),
            }
        }
        Err(TlsSessionError::NoProgress)
    }

    /// Takes the keys of the completed handshake from rustls and reaches `goal` with them.
    fn hand_over(&mut self, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>, goal: Goal<'_>) -> Result<(), TlsSessionError> {
        let Phase::Handshake(handshake) = std::mem::replace(&mut self.phase, Phase::Ended) else { return Err(TlsSessionError::UnexpectedState) };
        let Handshake { connection, mut secrets, .. } = *handshake;
        self.handshake_kind = connection.handshake_kind();
        crate::tls::collect_application_secrets(&mut secrets);
        let suite = connection.negotiated_cipher_suite().ok_or(rustls::Error::HandshakeNotComplete);
        // rustls's remaining state (`KernelConnection`) would only derive the secrets of key
        // updates, which `Records` derives itself.
        let records = suite.and_then(|suite| {
            let (traffic, _kernel) = connection.dangerous_into_kernel_connection()?;
            Records::new(traffic, suite, secrets)
        });
        match records {
            Ok(records) => self.phase = Phase::Traffic(records),
            Err(err) => {
                self.failure = Some(err.clone());
                return Err(TlsSessionError::HandOver(err));
            }
        }
        match goal {
            Goal::Process { plaintext } => self.process(incoming, plaintext, outgoing),
            Goal::Encrypt { parts } => self.encrypt(incoming, parts, outgoing),
            Goal::CloseNotify => self.queue_close_notify(incoming, outgoing),
        }
    }

    /// Appends the alert rustls queued for `err` to `outgoing` and marks the session failed.
    ///
    /// rustls returns a queued message as `EncodeTlsData` before it looks at new input. It must
    /// not be called once the queue is empty: it would deframe the rejected record again and queue
    /// a second fatal alert, which `CommonState::send_fatal_alert` asserts against in debug builds
    /// (rustls 0.23.48 `common_state.rs`). `wants_write` reports whether the queue has a message.
    fn fail(&mut self, err: rustls::Error, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>) -> TlsSessionError {
        self.failure = Some(err.clone());
        let Phase::Handshake(handshake) = &mut self.phase else { return TlsSessionError::Protocol(err) };
        let connection = &mut handshake.connection;
        for _ in 0..STEP_ALLOWANCE {
            if !connection.wants_write() {
                break;
            }
            let UnbufferedStatus { discard, state } = connection.process_tls_records(incoming);
            let encoded = match state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => encode_into(&mut data, outgoing).is_ok(),
                _ => false,
            };
            discard_front(incoming, discard);
            if !encoded {
                break;
            }
        }
        TlsSessionError::Protocol(err)
    }
}

/// Returns where the record that starts at `start` in `buffer` ends, when it is complete.
fn next_record_end(buffer: &[u8], start: usize) -> Option<usize> {
    // RFC 8446 §5.1: a record is a 5-byte header, whose last two bytes give the length of what
    // follows.
    let &[_, _, _, high, low] = buffer.get(start..start.saturating_add(5))? else { return None };
    let end = start.saturating_add(5).saturating_add(usize::from(u16::from_be_bytes([high, low])));
    (end <= buffer.len()).then_some(end)
}

/// Returns the step for a handshake that waits for the client's next record, by goal.
fn blocked(goal: &Goal<'_>) -> Step {
    match goal {
        Goal::Process { .. } => Step::Done,
        Goal::Encrypt { .. } => Step::Failed(TlsSessionError::HandshakeIncomplete),
        // NOTE: rustls 0.23's unbuffered API hands out close_notify only through
        // `WriteTraffic`, so a session closed during the handshake sends none.
        Goal::CloseNotify => Step::Done,
    }
}

/// Removes the first `count` bytes of `buffer`, as `UnbufferedStatus::discard` requires.
fn discard_front(buffer: &mut Vec<u8>, count: usize) {
    if count > 0 {
        buffer.drain(..count.min(buffer.len()));
    }
}

/// Appends one handshake record or alert rustls queued to `outgoing`.
fn encode_into(data: &mut EncodeTlsData<'_, ServerConnectionData>, outgoing: &mut Vec<u8>) -> Result<(), TlsSessionError> {
    let size = outgoing.capacity().saturating_sub(outgoing.len()).max(HANDSHAKE_RECORD_ESTIMATE);
    write_with_retry(outgoing, size, |space| match data.encode(space) {
        Ok(written) => Ok(written),
        Err(EncodeError::InsufficientSize(needed)) => Err(Attempt::Grow(needed.required_size)),
        Err(EncodeError::AlreadyEncoded) => Err(Attempt::Fail(TlsSessionError::UnexpectedState)),
    })
}

/// The reason one attempt of [`write_with_retry`] wrote nothing.
enum Attempt {
    /// The space was short: this many bytes are required.
    Grow(usize),
    /// A failure that another size would not fix.
    Fail(TlsSessionError),
}

/// Appends what `write` puts into spare space at the end of `outgoing`: first `size` bytes of it,
/// then once more with the size rustls reported as required. rustls writes into initialised
/// memory only, so the space is zeroed first.
fn write_with_retry(
    outgoing: &mut Vec<u8>,
    mut size: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Attempt>,
) -> Result<(), TlsSessionError> {
    let start = outgoing.len();
    for _ in 0..SIZE_ATTEMPTS {
        outgoing.resize(start.saturating_add(size), 0);
        let Some(space) = outgoing.get_mut(start..) else { break };
        match write(space) {
            Ok(written) => {
                outgoing.truncate(start.saturating_add(written));
                return Ok(());
            }
            Err(Attempt::Grow(required)) => size = required,
            Err(Attempt::Fail(err)) => {
                outgoing.truncate(start);
                return Err(err);
            }
        }
    }
    outgoing.truncate(start);
    Err(TlsSessionError::OutputSize { required: size })
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::client::Resumption;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{AlertDescription, ClientConfig, ClientConnection, ContentType, HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig, SupportedProtocolVersion};

    use super::super::tls_records::TestPeer;
    use super::{TlsSession, TlsSessionError};

    /// Rounds of client and server flights allowed for one handshake; a full one needs two.
    const HANDSHAKE_ROUNDS: usize = 8;

    /// Server and client configurations sharing one self-signed certificate for `localhost`.
    pub(in crate::server) fn configs(version: &'static SupportedProtocolVersion) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        configs_with_client_provider(version, rustls::crypto::aws_lc_rs::default_provider())
    }

    /// As [`configs`], with the client's crypto provider given.
    fn configs_with_client_provider(version: &'static SupportedProtocolVersion, provider: rustls::crypto::CryptoProvider) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        static DIRECTORY_COUNTER: AtomicUsize = AtomicUsize::new(0);
        let certified = match rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]) {
            Ok(certified) => certified,
            Err(err) => panic!("failed to generate a certificate: {err}"),
        };
        let directory = std::env::temp_dir().join(format!(
            "ringfront-tls-session-{}-{}",
            std::process::id(),
            DIRECTORY_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&directory).unwrap();
        let certificate = directory.join("cert.pem");
        let key = directory.join("key.pem");
        std::fs::write(&certificate, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let server = crate::tls::server_config(&certificate, &key, std::time::Duration::from_secs(60), None).unwrap().config;
        std::fs::remove_dir_all(&directory).unwrap();

        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(certified.cert.der().to_vec())).unwrap();
        let mut client = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // For `crafted_pair`, which seals the client's records itself.
        client.enable_secret_extraction = true;
        (server, Arc::new(client))
    }

    /// A server session and a rustls client joined in memory. Ciphertext crosses in pieces of
    /// `piece` bytes, each followed by a call on the receiving side.
    struct Pair {
        session: TlsSession,
        client: ClientConnection,
        incoming: Vec<u8>,
        plaintext: Vec<u8>,
        outgoing: Vec<u8>,
        /// Plaintext the client decrypted and has not yet been checked.
        client_received: Vec<u8>,
        piece: usize,
    }

    impl Pair {
        fn new(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>, piece: usize) -> Pair {
            let name = ServerName::try_from("localhost").unwrap();
            Pair {
                session: TlsSession::new(Arc::clone(server)).unwrap(),
                client: ClientConnection::new(Arc::clone(client), name).unwrap(),
                incoming: Vec::new(),
                plaintext: Vec::new(),
                outgoing: Vec::new(),
                client_received: Vec::new(),
                piece,
            }
        }

        /// Moves what the client has to send into the session, piece by piece.
        fn client_to_server(&mut self) -> Result<(), TlsSessionError> {
            let mut bytes = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut bytes).unwrap();
            }
            self.deliver(&bytes)
        }

        /// Hands raw bytes to the session, piece by piece.
        fn deliver(&mut self, bytes: &[u8]) -> Result<(), TlsSessionError> {
            for piece in bytes.chunks(self.piece) {
                self.incoming.extend_from_slice(piece);
                self.session.process(&mut self.incoming, &mut self.plaintext, &mut self.outgoing)?;
            }
            Ok(())
        }

        /// Moves what the session queued into the client, piece by piece.
        fn server_to_client(&mut self) -> Result<(), rustls::Error> {
            let bytes = std::mem::take(&mut self.outgoing);
            for piece in bytes.chunks(self.piece) {
                let mut unread = piece;
                while !unread.is_empty() {
                    self.client.read_tls(&mut unread).unwrap();
                    self.client.process_new_packets()?;
                    self.read_client_plaintext();
                }
            }
            Ok(())
        }

        fn handshake(&mut self) {
            for _ in 0..HANDSHAKE_ROUNDS {
                if !self.client.is_handshaking() && self.session.is_handshake_complete() && self.outgoing.is_empty() {
                    return;
                }
                self.client_to_server().unwrap();
                self.server_to_client().unwrap();
            }
            panic!("handshake not complete after {HANDSHAKE_ROUNDS} rounds");
        }

        /// Moves what the client has decrypted into `client_received`.
        fn read_client_plaintext(&mut self) {
            let mut chunk = [0u8; 4096];
            loop {
                match self.client.reader().read(&mut chunk) {
                    Ok(0) => return,
                    Ok(count) => self.client_received.extend_from_slice(&chunk[..count]),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(err) => panic!("client read failed: {err}"),
                }
            }
        }

        /// Returns what the client decrypted since the last call.
        fn client_plaintext(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.client_received)
        }
    }

    const VERSIONS: [(&SupportedProtocolVersion, ProtocolVersion); 2] =
        [(&rustls::version::TLS13, ProtocolVersion::TLSv1_3), (&rustls::version::TLS12, ProtocolVersion::TLSv1_2)];

    /// Piece sizes: one byte at a time, and whole flights at once.
    const PIECES: [usize; 2] = [1, 64 * 1024];

    /// Runs `check` on a pair that completed its handshake, for every version and piece size.
    /// `check` gets the negotiated version and a label for its assertion messages.
    fn for_each_connected_pair(mut check: impl FnMut(&mut Pair, ProtocolVersion, &str)) {
        for (version, expected) in VERSIONS {
            let (server, client) = configs(version);
            for piece in PIECES {
                let mut pair = Pair::new(&server, &client, piece);
                pair.handshake();
                check(&mut pair, expected, &format!("{expected:?} piece {piece}"));
            }
        }
    }

    #[test]
    fn handshake_versions_and_pieces() {
        for_each_connected_pair(|pair, expected, label| {
            assert!(pair.session.is_handshake_complete(), "{label}");
            assert_eq!(pair.client.protocol_version(), Some(expected), "{label}");
            assert_eq!(pair.session.protocol_version(), Some(expected), "{label}");
            assert_eq!(pair.client.alpn_protocol(), None, "client offered no ALPN");
            assert!(pair.incoming.is_empty(), "{label}");
        });
    }

    #[test]
    fn app_data_both_ways() {
        for_each_connected_pair(|pair, _, label| {
            let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
            pair.client.writer().write_all(request).unwrap();
            pair.client_to_server().unwrap();
            assert_eq!(pair.plaintext, request, "{label}");
            assert!(pair.incoming.is_empty(), "{label}");

            let body = vec![b'x'; 40_000];
            pair.session.encrypt(&mut pair.incoming, &[&body], &mut pair.outgoing).unwrap();
            pair.server_to_client().unwrap();
            assert_eq!(pair.client_plaintext(), body, "{label}");
        });
    }

    #[test]
    fn head_and_body_share_record() {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.handshake();

        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        pair.session.encrypt(&mut pair.incoming, &[head, b"hello"], &mut pair.outgoing).unwrap();
        // RFC 8446 §5.2: a record is a 5-byte header and a payload whose length it gives.
        let length = usize::from(u16::from_be_bytes([pair.outgoing[3], pair.outgoing[4]]));
        assert_eq!(pair.outgoing.len(), 5 + length, "one record");
        pair.server_to_client().unwrap();
        let mut expected = head.to_vec();
        expected.extend_from_slice(b"hello");
        assert_eq!(pair.client_plaintext(), expected);
    }

    #[test]
    fn parts_fill_whole_records() {
        let (server, client) = configs(&rustls::version::TLS13);
        // Part sizes around the 16 KiB record size, so records span part boundaries.
        let cases: [&[usize]; 5] = [&[100, 40_000], &[16_384, 1], &[16_383, 2, 16_384], &[0, 5, 0], &[20_000, 20_000, 7]];
        for sizes in cases {
            let mut pair = Pair::new(&server, &client, 64 * 1024);
            pair.handshake();
            let parts: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(index, &size)| vec![b'a' + index as u8; size]).collect();
            let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            pair.session.encrypt(&mut pair.incoming, &slices, &mut pair.outgoing).unwrap();

            let total: usize = sizes.iter().sum();
            let mut records = 0;
            let mut rest = pair.outgoing.as_slice();
            while rest.len() >= 5 {
                let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
                rest = &rest[5 + length..];
                records += 1;
            }
            assert_eq!(records, total.div_ceil(16 * 1024), "{sizes:?}");
            pair.server_to_client().unwrap();
            assert_eq!(pair.client_plaintext(), parts.concat(), "{sizes:?}");
        }
    }

    #[test]
    fn close_notify_from_client() {
        for_each_connected_pair(|pair, _, label| {
            pair.client.writer().write_all(b"last").unwrap();
            pair.client.send_close_notify();
            pair.client_to_server().unwrap();
            assert_eq!(pair.plaintext, b"last", "{label}");
            assert!(pair.session.is_peer_closed(), "{label}");

            // A response may still go out after the client's close_notify, then ours.
            pair.session.encrypt(&mut pair.incoming, &[b"bye"], &mut pair.outgoing).unwrap();
            pair.session.queue_close_notify(&mut pair.incoming, &mut pair.outgoing).unwrap();
            pair.server_to_client().unwrap();
            assert_eq!(pair.client_plaintext(), b"bye", "{label}");
        });
    }

    #[test]
    fn close_notify_from_server() {
        for (version, expected) in VERSIONS {
            let (server, client) = configs(version);
            let mut pair = Pair::new(&server, &client, 1);
            pair.handshake();
            pair.session.queue_close_notify(&mut pair.incoming, &mut pair.outgoing).unwrap();
            pair.server_to_client().unwrap();
            let mut chunk = [0u8; 16];
            assert_eq!(pair.client.reader().read(&mut chunk).unwrap(), 0, "{expected:?} clean end");

            let again = pair.session.encrypt(&mut pair.incoming, &[b"late"], &mut pair.outgoing);
            assert!(matches!(again, Err(TlsSessionError::Closed)), "{expected:?} {again:?}");
            pair.session.queue_close_notify(&mut pair.incoming, &mut pair.outgoing).unwrap();
            assert!(pair.outgoing.is_empty(), "{expected:?} second close_notify queued nothing");
        }
    }

    #[test]
    fn garbage_gets_alert() {
        // (bytes sent after the handshake or instead of it, alert the client must receive)
        let cases: [(bool, &[u8], rustls::AlertDescription); 3] = [
            (true, b"\x17\x03\x03\x00\x20abcdefghijklmnopqrstuvwxyz012345", rustls::AlertDescription::BadRecordMac),
            // RFC 8446 §5: an unexpected record type.
            (true, b"\x63\x03\x03\x00\x01x", rustls::AlertDescription::UnexpectedMessage),
            (false, b"\x63\x03\x01\x00\x01x", rustls::AlertDescription::DecodeError),
        ];
        for (after_handshake, garbage, alert) in cases {
            for piece in PIECES {
                let (server, client) = configs(&rustls::version::TLS13);
                let mut pair = Pair::new(&server, &client, piece);
                if after_handshake {
                    pair.handshake();
                }
                let result = pair.deliver(garbage);
                assert!(matches!(result, Err(TlsSessionError::Protocol(_))), "{garbage:?} piece {piece}: {result:?}");
                assert!(!pair.outgoing.is_empty(), "{garbage:?} piece {piece}: no alert");

                if after_handshake {
                    let received = pair.server_to_client();
                    assert_eq!(received, Err(rustls::Error::AlertReceived(alert)), "{garbage:?} piece {piece}");
                } else {
                    // Before the handshake the alert is a plaintext record (RFC 8446 §6).
                    let expected = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, u8::from(alert)];
                    assert_eq!(pair.outgoing, expected, "{garbage:?} piece {piece}");
                }

                let again = pair.session.process(&mut pair.incoming, &mut pair.plaintext, &mut pair.outgoing);
                assert!(matches!(again, Err(TlsSessionError::Protocol(_))), "{garbage:?} piece {piece}: {again:?}");
            }
        }
    }

    #[test]
    fn resumed_with_ticket() {
        for (version, expected) in VERSIONS {
            for piece in PIECES {
                // A new client per case, so the first handshake of each case is a full one.
                let (server, client) = configs(version);
                let client = {
                    let mut config = (*client).clone();
                    config.resumption = Resumption::in_memory_sessions(8).tls12_resumption(rustls::client::Tls12Resumption::SessionIdOrTickets);
                    Arc::new(config)
                };
                let mut first = Pair::new(&server, &client, piece);
                first.handshake();
                first.client.writer().write_all(b"ping").unwrap();
                first.client_to_server().unwrap();
                first.server_to_client().unwrap();
                assert_eq!(first.client.handshake_kind(), Some(HandshakeKind::Full), "{expected:?} piece {piece}");

                let mut second = Pair::new(&server, &client, piece);
                second.handshake();
                assert_eq!(second.client.handshake_kind(), Some(HandshakeKind::Resumed), "{expected:?} piece {piece}");
                assert_eq!(second.session.handshake_kind, Some(HandshakeKind::Resumed), "{expected:?} piece {piece}");
            }
        }
    }

    #[test]
    fn idle_session_keeps_no_buffer() {
        for_each_connected_pair(|pair, _, label| {
            pair.client.writer().write_all(b"one").unwrap();
            pair.client_to_server().unwrap();
            assert!(pair.incoming.is_empty(), "{label}");

            // Every buffer and the key contexts are freed while idle, and the session works on
            // with new ones.
            pair.session.release_keys();
            pair.incoming = Vec::new();
            pair.plaintext = Vec::new();
            pair.outgoing = Vec::new();
            pair.client.writer().write_all(b"two").unwrap();
            pair.client_to_server().unwrap();
            assert_eq!(pair.plaintext, b"two", "{label}");
            pair.session.encrypt(&mut pair.incoming, &[b"three"], &mut pair.outgoing).unwrap();
            pair.server_to_client().unwrap();
            assert_eq!(pair.client_plaintext(), b"three", "{label}");
        });
    }

    #[test]
    fn encrypt_before_handshake() {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.client_to_server().unwrap();
        let result = pair.session.encrypt(&mut pair.incoming, &[b"early"], &mut pair.outgoing);
        assert!(matches!(result, Err(TlsSessionError::HandshakeIncomplete)), "{result:?}");
    }

    #[test]
    fn key_update_answered() {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 1);
        pair.handshake();
        pair.client.refresh_traffic_keys().unwrap();
        pair.client.writer().write_all(b"after update").unwrap();
        pair.client_to_server().unwrap();
        assert_eq!(pair.plaintext, b"after update");
        pair.session.encrypt(&mut pair.incoming, &[b"reply"], &mut pair.outgoing).unwrap();
        pair.server_to_client().unwrap();
        assert_eq!(pair.client_plaintext(), b"reply");
    }

    /// Returns a session past its handshake, and the client's keys, for records rustls's client
    /// would not send.
    fn crafted_pair(version: &'static SupportedProtocolVersion) -> (Pair, TestPeer) {
        let (server, client) = configs(version);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.handshake();
        let name = ServerName::try_from("localhost").unwrap();
        let spent = std::mem::replace(&mut pair.client, ClientConnection::new(client, name).unwrap());
        let negotiated = spent.protocol_version().unwrap();
        let peer = TestPeer::new(spent.dangerous_extract_secrets().unwrap(), negotiated);
        (pair, peer)
    }

    const ALERT: ContentType = ContentType::Alert;
    const HANDSHAKE: ContentType = ContentType::Handshake;
    const DATA: ContentType = ContentType::ApplicationData;

    /// Returns the fatal alert the session sent for the client's last records.
    fn fatal_alert_sent(pair: &mut Pair, peer: &mut TestPeer) -> Option<AlertDescription> {
        match peer.open(&std::mem::take(&mut pair.outgoing)).as_slice() {
            [(ContentType::Alert, alert)] if alert[0] == 2 => Some(AlertDescription::from(alert[1])),
            _ => None,
        }
    }

    /// Records the client may not send after the handshake, each rejected with a fatal alert
    /// (RFC 8446 §5, §5.1, §5.4, §6; RFC 5246 §7.2).
    #[test]
    fn forbidden_records_get_fatal_alerts() {
        // (label, TLS 1.3, records as (content type, content), expected alert)
        let oversized = vec![b'x'; super::MAX_RECORD_PLAINTEXT + 1];
        type Case<'a> = (&'a str, bool, Vec<(ContentType, &'a [u8])>, AlertDescription);
        let cases: [Case<'_>; 13] = [
            ("empty handshake record", true, vec![(HANDSHAKE, b"")], AlertDescription::UnexpectedMessage),
            ("plaintext over 2^14 bytes", true, vec![(DATA, &oversized)], AlertDescription::RecordOverflow),
            ("plaintext over 2^14 bytes", false, vec![(DATA, &oversized)], AlertDescription::RecordOverflow),
            ("inner plaintext of padding only", true, vec![(ContentType::from(0), b"")], AlertDescription::UnexpectedMessage),
            ("warning alert in TLS 1.3", true, vec![(ALERT, b"\x01\x2a")], AlertDescription::DecodeError),
            ("alert of three bytes", true, vec![(ALERT, b"\x01\x00\x00")], AlertDescription::DecodeError),
            ("alert of an unknown level", false, vec![(ALERT, b"\x03\x2a")], AlertDescription::IllegalParameter),
            ("KeyUpdate not ending its record", true, vec![(HANDSHAKE, b"\x18\x00\x00\x01\x00\x18")], AlertDescription::UnexpectedMessage),
            ("KeyUpdate of two bytes", true, vec![(HANDSHAKE, b"\x18\x00\x00\x02\x00\x00")], AlertDescription::DecodeError),
            ("KeyUpdate request of 2", true, vec![(HANDSHAKE, b"\x18\x00\x00\x01\x02")], AlertDescription::IllegalParameter),
            ("data inside a split KeyUpdate", true, vec![(HANDSHAKE, b"\x18\x00"), (DATA, b"x")], AlertDescription::UnexpectedMessage),
            ("post-handshake client Finished", true, vec![(HANDSHAKE, b"\x14\x00\x00\x00")], AlertDescription::UnexpectedMessage),
            ("TLS 1.2 Finished after the handshake", false, vec![(HANDSHAKE, b"\x14\x00\x00\x00")], AlertDescription::UnexpectedMessage),
        ];
        for (label, tls13, records, expected) in cases {
            let version = if tls13 { &rustls::version::TLS13 } else { &rustls::version::TLS12 };
            let (mut pair, mut peer) = crafted_pair(version);
            let bytes: Vec<u8> = records.iter().flat_map(|(content_type, content)| peer.seal(*content_type, content)).collect();
            let result = pair.deliver(&bytes);
            assert!(matches!(result, Err(TlsSessionError::Protocol(_))), "{label}: {result:?}");
            assert_eq!(fatal_alert_sent(&mut pair, &mut peer), Some(expected), "{label}");
            // The session stays failed.
            assert!(pair.session.encrypt(&mut pair.incoming, &[b"late"], &mut pair.outgoing).is_err(), "{label}");
        }
    }

    /// Records that fail before decryption: a bad tag, an oversized length, a record type TLS 1.3
    /// no longer sends, a TLS 1.2 record of another version.
    #[test]
    fn damaged_records_get_fatal_alerts() {
        for (version, expected) in VERSIONS {
            let tls13 = expected == ProtocolVersion::TLSv1_3;
            type Case = (&'static str, Box<dyn Fn(&mut TestPeer) -> Vec<u8>>, AlertDescription);
            let mut cases: Vec<Case> = vec![
                (
                    "flipped tag byte",
                    Box::new(|peer: &mut TestPeer| {
                        let mut record = peer.seal(DATA, b"hello");
                        *record.last_mut().unwrap() ^= 1;
                        record
                    }),
                    AlertDescription::BadRecordMac,
                ),
                ("record too short for a tag", Box::new(|_: &mut TestPeer| b"\x17\x03\x03\x00\x03abc".to_vec()), AlertDescription::BadRecordMac),
                ("length over the limit", Box::new(move |_: &mut TestPeer| if tls13 { b"\x17\x03\x03\x41\x01".to_vec() } else { b"\x17\x03\x03\x48\x01".to_vec() }), AlertDescription::RecordOverflow),
            ];
            if tls13 {
                cases.push(("change_cipher_spec after the handshake", Box::new(|_: &mut TestPeer| b"\x14\x03\x03\x00\x01\x01".to_vec()), AlertDescription::UnexpectedMessage));
                cases.push(("unprotected alert", Box::new(|_: &mut TestPeer| b"\x15\x03\x03\x00\x02\x02\x28".to_vec()), AlertDescription::UnexpectedMessage));
            } else {
                cases.push((
                    "TLS 1.0 record version",
                    Box::new(|peer: &mut TestPeer| {
                        let mut record = peer.seal(DATA, b"hello");
                        record[2] = 1;
                        record
                    }),
                    AlertDescription::ProtocolVersion,
                ));
                cases.push(("change_cipher_spec after the handshake", Box::new(|_: &mut TestPeer| b"\x14\x03\x03\x00\x01\x01".to_vec()), AlertDescription::UnexpectedMessage));
            }
            for (label, make, alert) in cases {
                let (mut pair, mut peer) = crafted_pair(version);
                let bytes = make(&mut peer);
                let result = pair.deliver(&bytes);
                assert!(matches!(result, Err(TlsSessionError::Protocol(_))), "{expected:?} {label}: {result:?}");
                assert_eq!(fatal_alert_sent(&mut pair, &mut peer), Some(alert), "{expected:?} {label}");
            }
        }
    }

    /// Plaintext decrypted before a bad record in the same delivery is handed over, and a reply
    /// to it can still be sealed. The fault ends the session at the next call, with its alert
    /// after the reply.
    #[test]
    fn fault_after_data_is_deferred() {
        for (version, expected) in VERSIONS {
            let (mut pair, mut peer) = crafted_pair(version);
            let mut bytes = [peer.seal(DATA, b"first "), peer.seal(DATA, b"second")].concat();
            let mut damaged = peer.seal(DATA, b"lost");
            *damaged.last_mut().unwrap() ^= 1;
            bytes.extend([damaged, peer.seal(DATA, b"after")].concat());
            pair.deliver(&bytes).unwrap_or_else(|err| panic!("{expected:?}: {err:?}"));
            assert_eq!(pair.plaintext, b"first second", "{expected:?}");
            assert!(pair.session.has_deferred_fault(), "{expected:?}");
            assert!(pair.outgoing.is_empty(), "{expected:?}: no alert before the reply");
            pair.session.encrypt(&mut pair.incoming, &[b"reply"], &mut pair.outgoing).unwrap();
            let result = pair.session.process(&mut pair.incoming, &mut pair.plaintext, &mut pair.outgoing);
            assert!(matches!(result, Err(TlsSessionError::Protocol(rustls::Error::DecryptError))), "{expected:?}: {result:?}");
            let opened = peer.open(&std::mem::take(&mut pair.outgoing));
            assert_eq!(opened, [(DATA, b"reply".to_vec()), (ALERT, vec![2, u8::from(AlertDescription::BadRecordMac)])], "{expected:?}");
            assert_eq!(pair.plaintext, b"first second", "{expected:?}: nothing after the bad record");
        }

        // The client's fatal alert ends the session at once, data before it or not (RFC 8446
        // §6.2).
        let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS12);
        let bytes = [peer.seal(DATA, b"request"), peer.seal(ALERT, b"\x02\x28")].concat();
        let result = pair.deliver(&bytes);
        assert!(matches!(result, Err(TlsSessionError::Protocol(rustls::Error::AlertReceived(_)))), "{result:?}");
        assert!(pair.outgoing.is_empty(), "no alert back");

        // A bad record with no plaintext before it in the delivery ends the session at once.
        let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS13);
        pair.deliver(&peer.seal(DATA, b"earlier")).unwrap();
        let result = pair.deliver(&peer.seal(HANDSHAKE, b""));
        assert!(matches!(result, Err(TlsSessionError::Protocol(_))), "{result:?}");
        assert_eq!(fatal_alert_sent(&mut pair, &mut peer), Some(AlertDescription::UnexpectedMessage));
    }

    /// Client alerts that the session ignores, and those that end it with no alert back.
    #[test]
    fn client_alerts() {
        // TLS 1.3 user_canceled and TLS 1.2 warnings are ignored, up to four of them.
        let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS13);
        pair.deliver(&[peer.seal(ALERT, b"\x01\x5a"), peer.seal(DATA, b"on")].concat()).unwrap();
        assert_eq!(pair.plaintext, b"on");
        let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS12);
        for _ in 0..4 {
            pair.deliver(&peer.seal(ALERT, b"\x01\x2a")).unwrap();
        }
        assert!(pair.deliver(&peer.seal(ALERT, b"\x01\x2a")).is_err(), "a fifth warning ends the session");
        assert_eq!(fatal_alert_sent(&mut pair, &mut peer), Some(AlertDescription::UnexpectedMessage));

        for (version, expected) in VERSIONS {
            // A fatal alert ends the session with no alert back.
            let (mut pair, mut peer) = crafted_pair(version);
            let result = pair.deliver(&peer.seal(ALERT, b"\x02\x28"));
            assert!(matches!(result, Err(TlsSessionError::Protocol(rustls::Error::AlertReceived(AlertDescription::HandshakeFailure)))), "{expected:?} {result:?}");
            assert!(pair.outgoing.is_empty(), "{expected:?}");

            // RFC 8446 §6.1: whatever follows close_notify is ignored, even bytes that are not a
            // record.
            let (mut pair, mut peer) = crafted_pair(version);
            let bytes = [peer.seal(DATA, b"last"), peer.seal(ALERT, b"\x01\x00"), peer.seal(DATA, b"ignored"), b"junk".to_vec()].concat();
            pair.deliver(&bytes).unwrap();
            assert_eq!(pair.plaintext, b"last", "{expected:?}");
            assert!(pair.session.is_peer_closed(), "{expected:?}");
            assert!(pair.incoming.is_empty(), "{expected:?}");
        }
    }

    /// Splits `bytes` into whole records.
    fn split_records(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut records = Vec::new();
        while bytes.len() >= 5 {
            let (record, rest) = bytes.split_at(5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]])));
            records.push(record);
            bytes = rest;
        }
        records
    }

    /// RFC 8446 §5.1: a KeyUpdate may be split over records. After it the client's old key no
    /// longer opens records. For a requested update the server sends its own KeyUpdate before its
    /// next data, under its old key (RFC 8446 §4.6.3), so the peer cannot open the data after it.
    #[test]
    fn key_update_split_over_records() {
        for request in [0u8, 1] {
            let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS13);
            pair.deliver(&[peer.seal(HANDSHAKE, b"\x18\x00"), peer.seal(HANDSHAKE, &[0, 1, request])].concat()).unwrap();
            assert!(pair.outgoing.is_empty(), "nothing is sent before the next data");
            pair.session.encrypt(&mut pair.incoming, &[b"reply"], &mut pair.outgoing).unwrap();
            let records = split_records(&pair.outgoing);
            if request == 1 {
                assert_eq!(records.len(), 2);
                assert_eq!(peer.open(records[0]), vec![(HANDSHAKE, b"\x18\x00\x00\x01\x00".to_vec())], "the server's own update asks for none");
            } else {
                assert_eq!(peer.open(&pair.outgoing), vec![(DATA, b"reply".to_vec())]);
            }
            let result = pair.deliver(&peer.seal(DATA, b"old key"));
            assert!(matches!(result, Err(TlsSessionError::Protocol(rustls::Error::DecryptError))), "{result:?}");
        }
    }

    /// rustls's client sends KeyUpdates with `update_requested`. The session follows each and
    /// updates its own keys, but more than 32 without application data between them end it.
    #[test]
    fn key_updates_limited_between_data() {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.handshake();
        for round in 0..2 {
            for _ in 0..32 {
                pair.client.refresh_traffic_keys().unwrap();
                pair.client_to_server().unwrap();
                pair.server_to_client().unwrap();
            }
            pair.client.writer().write_all(b"data").unwrap();
            pair.client_to_server().unwrap();
            assert_eq!(std::mem::take(&mut pair.plaintext), b"data", "round {round}");
            // rustls's client limits the server's KeyUpdates the same way.
            pair.session.encrypt(&mut pair.incoming, &[b"data"], &mut pair.outgoing).unwrap();
            pair.server_to_client().unwrap();
            assert_eq!(pair.client_plaintext(), b"data", "round {round}");
        }
        for _ in 0..33 {
            pair.client.refresh_traffic_keys().unwrap();
        }
        let result = pair.client_to_server();
        assert!(matches!(result, Err(TlsSessionError::Protocol(rustls::Error::PeerMisbehaved(_)))), "{result:?}");
    }

    /// TLS 1.2 renegotiation: the first ClientHello (split over records here) gets a
    /// no_renegotiation warning and the session goes on; a second one ends it.
    #[test]
    fn renegotiation_refused() {
        let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS12);
        let hello = b"\x01\x00\x00\x06\x03\x03abcd";
        pair.deliver(&[peer.seal(HANDSHAKE, &hello[..3]), peer.seal(HANDSHAKE, &hello[3..]), peer.seal(DATA, b"on")].concat()).unwrap();
        assert_eq!(pair.plaintext, b"on");
        assert_eq!(peer.open(&std::mem::take(&mut pair.outgoing)), vec![(ALERT, b"\x01\x64".to_vec())]);
        assert!(pair.deliver(&peer.seal(HANDSHAKE, hello)).is_err());
        assert_eq!(fatal_alert_sent(&mut pair, &mut peer), Some(AlertDescription::UnexpectedMessage));
    }

    /// Every cipher suite the provider offers, with each version: data both ways, and in TLS 1.3
    /// a KeyUpdate each way.
    #[test]
    fn every_cipher_suite() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        // The test certificate is ECDSA, so TLS 1.2's RSA suites cannot be negotiated.
        for suite in provider.cipher_suites.iter().copied().filter(|suite| !format!("{:?}", suite.suite()).contains("_RSA_")) {
            let version = suite.version();
            let only_suite = rustls::crypto::CryptoProvider { cipher_suites: vec![suite], ..rustls::crypto::aws_lc_rs::default_provider() };
            let (server, client) = configs_with_client_provider(version, only_suite);
            let mut pair = Pair::new(&server, &client, 64 * 1024);
            pair.handshake();
            assert_eq!(pair.client.negotiated_cipher_suite(), Some(suite));
            for round in 0..2 {
                pair.client.writer().write_all(b"ping").unwrap();
                pair.client_to_server().unwrap();
                assert_eq!(std::mem::take(&mut pair.plaintext), b"ping", "{suite:?} round {round}");
                pair.session.encrypt(&mut pair.incoming, &[b"pong"], &mut pair.outgoing).unwrap();
                pair.server_to_client().unwrap();
                assert_eq!(pair.client_plaintext(), b"pong", "{suite:?} round {round}");
                if version == &rustls::version::TLS13 {
                    pair.client.refresh_traffic_keys().unwrap();
                }
            }
        }
    }

    /// A TLS 1.3 key that reached its confidentiality limit is updated before the next record;
    /// TLS 1.2 has no KeyUpdate and refuses to seal more.
    #[test]
    fn confidentiality_limit() {
        for (version, expected) in VERSIONS {
            let (server, client) = configs(version);
            let mut pair = Pair::new(&server, &client, 64 * 1024);
            pair.handshake();
            pair.session.set_confidentiality_limit(3);
            for index in 0..6u8 {
                let result = pair.session.encrypt(&mut pair.incoming, &[&[b'a' + index]], &mut pair.outgoing);
                if expected == ProtocolVersion::TLSv1_2 && index >= 3 {
                    assert!(matches!(result, Err(TlsSessionError::EncryptExhausted)), "{index}: {result:?}");
                } else {
                    result.unwrap_or_else(|err| panic!("{expected:?} record {index}: {err}"));
                }
            }
            pair.server_to_client().unwrap();
            let sent = if expected == ProtocolVersion::TLSv1_3 { &b"abcdef"[..] } else { b"abc" };
            assert_eq!(pair.client_plaintext(), sent, "{expected:?}");
        }
    }

    /// RFC 8446 §6.1: after its close_notify the server sends nothing, not even a KeyUpdate the
    /// client requested or the alert for a bad record.
    #[test]
    fn nothing_sent_after_close_notify() {
        let (mut pair, mut peer) = crafted_pair(&rustls::version::TLS13);
        pair.session.queue_close_notify(&mut pair.incoming, &mut pair.outgoing).unwrap();
        assert_eq!(peer.open(&std::mem::take(&mut pair.outgoing)), vec![(ALERT, b"\x01\x00".to_vec())]);

        pair.deliver(&peer.seal(HANDSHAKE, b"\x18\x00\x00\x01\x01")).unwrap();
        assert!(pair.outgoing.is_empty(), "no KeyUpdate after close_notify");
        assert!(pair.deliver(b"\x17\x03\x03\x00\x20abcdefghijklmnopqrstuvwxyz012345").is_err());
        assert!(pair.outgoing.is_empty(), "no alert after close_notify");
    }

    /// Returns a TLS 1.3 session whose client has sent its Finished, which the server has not
    /// taken yet, the client's keys, and the Finished flight.
    fn pair_before_finished() -> (Pair, TestPeer, Vec<u8>) {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.client_to_server().unwrap();
        pair.server_to_client().unwrap();
        let mut finished = Vec::new();
        while pair.client.wants_write() {
            pair.client.write_tls(&mut finished).unwrap();
        }
        let name = ServerName::try_from("localhost").unwrap();
        let spent = std::mem::replace(&mut pair.client, ClientConnection::new(client, name).unwrap());
        let peer = TestPeer::new(spent.dangerous_extract_secrets().unwrap(), ProtocolVersion::TLSv1_3);
        (pair, peer, finished)
    }

    /// Records that arrive together with the client's Finished are opened as those that come
    /// after it: rustls must not take any of them.
    #[test]
    fn records_with_finished() {
        // Data after close_notify is ignored.
        let (mut pair, mut peer, finished) = pair_before_finished();
        pair.deliver(&[finished, peer.seal(DATA, b"first"), peer.seal(ALERT, b"\x01\x00"), peer.seal(DATA, b"after")].concat()).unwrap();
        assert_eq!(pair.plaintext, b"first");
        assert!(pair.session.is_peer_closed());

        // For a requested KeyUpdate the server sends its own before the next data, under the old
        // key.
        let (mut pair, mut peer, finished) = pair_before_finished();
        pair.deliver(&[finished, peer.seal(HANDSHAKE, b"\x18\x00\x00\x01\x01")].concat()).unwrap();
        pair.session.encrypt(&mut pair.incoming, &[b"reply"], &mut pair.outgoing).unwrap();
        // The session ticket, the KeyUpdate, then the reply under the next key, which the peer
        // cannot open.
        let records = split_records(&pair.outgoing);
        let opened = peer.open(&records[..records.len() - 1].concat());
        let kinds: Vec<(ContentType, u8)> = opened.iter().map(|(content_type, content)| (*content_type, content[0])).collect();
        assert_eq!(kinds, [(HANDSHAKE, 4), (HANDSHAKE, 24)], "NewSessionTicket, then KeyUpdate");
        assert_eq!(opened[1].1, b"\x18\x00\x00\x01\x00");

        // A KeyUpdate split over records, its first part with the Finished.
        let (mut pair, mut peer, finished) = pair_before_finished();
        pair.deliver(&[finished, peer.seal(HANDSHAKE, b"\x18\x00")].concat()).unwrap();
        pair.deliver(&peer.seal(HANDSHAKE, b"\x00\x01\x00")).unwrap();
        let result = pair.deliver(&peer.seal(DATA, b"old key"));
        assert!(matches!(result, Err(TlsSessionError::Protocol(rustls::Error::DecryptError))), "{result:?}");
    }

    /// Requested KeyUpdates that arrive while the server sends nothing produce one KeyUpdate,
    /// before its next data, so a client that never reads cannot make the server queue records.
    #[test]
    fn key_update_requests_answered_once() {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.handshake();
        for _ in 0..10 {
            pair.client.refresh_traffic_keys().unwrap();
            pair.client.writer().write_all(b"x").unwrap();
            pair.client_to_server().unwrap();
        }
        assert_eq!(pair.plaintext, b"xxxxxxxxxx");
        assert!(pair.outgoing.is_empty(), "no KeyUpdate queued while the server is silent");

        pair.session.encrypt(&mut pair.incoming, &[b"reply"], &mut pair.outgoing).unwrap();
        assert_eq!(split_records(&pair.outgoing).len(), 2, "one KeyUpdate, then the reply");
        pair.server_to_client().unwrap();
        assert_eq!(pair.client_plaintext(), b"reply");
    }

    /// A ClientHello split over four records and delivered in groups of records or byte by
    /// byte. rustls joins the fragments in place, overwriting the headers of the records it
    /// was shown, so the session must keep count of what it showed rather than read it again.
    #[test]
    fn client_hello_split_over_records() {
        let groupings: [&[usize]; 5] = [&[2, 2], &[3, 1], &[1, 3], &[1, 1, 1, 1], &[4]];
        for (version, expected) in VERSIONS {
            let (server, client) = configs(version);
            for piece in PIECES {
                for groups in groupings {
                    let label = format!("{expected:?} piece {piece} groups {groups:?}");
                    let mut pair = Pair::new(&server, &client, piece);
                    let mut hello = Vec::new();
                    while pair.client.wants_write() {
                        pair.client.write_tls(&mut hello).unwrap();
                    }
                    let (header, payload) = hello.split_at(5);
                    assert_eq!(usize::from(u16::from_be_bytes([header[3], header[4]])), payload.len(), "one record");
                    let mut records = payload.chunks(payload.len().div_ceil(4)).map(|fragment| {
                        let mut record = header[..3].to_vec();
                        record.extend_from_slice(&u16::try_from(fragment.len()).unwrap().to_be_bytes());
                        record.extend_from_slice(fragment);
                        record
                    });
                    for &count in groups {
                        let group: Vec<u8> = records.by_ref().take(count).flatten().collect();
                        pair.deliver(&group).unwrap_or_else(|err| panic!("{label}: {err}"));
                    }
                    pair.server_to_client().unwrap();
                    pair.handshake();
                    pair.client.writer().write_all(b"ping").unwrap();
                    pair.client_to_server().unwrap();
                    assert_eq!(pair.plaintext, b"ping", "{label}");
                }
            }
        }
    }
}
