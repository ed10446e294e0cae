//! One TLS server session driven through rustls's unbuffered API (rustls 0.23), without I/O. The
//! caller owns every buffer: the ciphertext read from the socket, the plaintext for the HTTP
//! decoder and the records to send. rustls keeps no buffer of its own between calls, so a caller
//! can free its buffers while a connection is idle. This module must not use sockets or the async
//! runtime.
//!
//! Order of calls: append what the socket delivered to the ciphertext buffer and call
//! [`TlsSession::process`], then send what it appended to the output buffer. Once
//! [`TlsSession::is_handshake_complete`] returns true, [`TlsSession::encrypt`] turns plaintext
//! into records and [`TlsSession::queue_close_notify`] ends the session. Every call takes the
//! ciphertext buffer, because rustls decrypts records in place and its handshake deframer keeps
//! offsets into that buffer between calls. The caller may append to it or replace it when it is
//! empty, and must not change it in any other way.
//!
//! 0-RTT early data is rejected: the server configuration leaves `max_early_data_size` at 0, so
//! rustls never offers it, and a `ReadEarlyData` state is reported as
//! [`TlsSessionError::EarlyData`] rather than skipped. Early data can be replayed by an attacker
//! (RFC 8446 §8), and skipping it would drop request bytes without telling the client.

use std::fmt;
use std::sync::Arc;

use rustls::{HandshakeKind, ServerConfig};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus, WriteTraffic};

/// Largest plaintext of one record when `ServerConfig::max_fragment_size` is unset
/// (RFC 8446 §5.1: 2^14 bytes).
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// Bytes of record header and overhead (5-byte header, explicit nonce, tag, inner content type)
/// reserved per record before encrypting. An estimate: a short reservation costs one retry with
/// the exact size rustls reports.
const RECORD_OVERHEAD_ESTIMATE: usize = 64;

/// Bytes reserved for a handshake record before encoding it, when the output buffer has less
/// spare capacity. A certificate chain is larger; rustls then reports the exact size.
const HANDSHAKE_RECORD_ESTIMATE: usize = 4 * 1024;

/// Attempts at encoding or encrypting one piece: the first with an estimated size, the second
/// with the size rustls reported as required.
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
    /// The keys of the session allow no more records (rustls `EncryptError::EncryptExhausted`).
    EncryptExhausted,
    /// The client sent 0-RTT early data, which the configuration does not accept.
    EarlyData,
    /// Decrypted application data was still waiting when data was to be encrypted, because the
    /// caller appended ciphertext without calling [`TlsSession::process`].
    UnprocessedPlaintext,
    /// rustls required more output space than it reported in its previous attempt.
    OutputSize { required: usize },
    /// rustls returned a state this driver does not know, added after rustls 0.23.48, or returned
    /// a handshake record that was already encoded.
    UnexpectedState,
    /// rustls returned more states in one call than the input can explain.
    NoProgress,
}

impl fmt::Display for TlsSessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSessionError::Protocol(err) => write!(f, "{err}"),
            TlsSessionError::HandshakeIncomplete => write!(f, "TLS handshake not complete"),
            TlsSessionError::Closed => write!(f, "close_notify already sent"),
            TlsSessionError::EncryptExhausted => write!(f, "TLS keys exhausted"),
            TlsSessionError::EarlyData => write!(f, "TLS early data rejected"),
            TlsSessionError::UnprocessedPlaintext => write!(f, "decrypted data not yet processed"),
            TlsSessionError::OutputSize { required } => write!(f, "rustls required {required} output bytes again"),
            TlsSessionError::UnexpectedState => write!(f, "unexpected rustls connection state"),
            TlsSessionError::NoProgress => write!(f, "rustls made no progress"),
        }
    }
}

impl std::error::Error for TlsSessionError {}

/// The goal of one call.
enum Goal<'a> {
    /// Take in all complete records and append their plaintext.
    Process { plaintext: &'a mut Vec<u8> },
    /// Encrypt the concatenation of the slices, joining a record that spans them in `scratch`.
    Encrypt { parts: &'a [&'a [u8]], scratch: &'a mut Vec<u8> },
    /// Queue close_notify.
    CloseNotify,
}

/// Outcome of handling one rustls state.
enum Step {
    /// Call `process_tls_records` again.
    Continue,
    /// The goal is reached.
    Done,
    Failed(TlsSessionError),
}

/// A server-side TLS session whose buffers the caller owns.
pub struct TlsSession {
    connection: UnbufferedServerConnection,
    /// Plaintext bytes per record, from `ServerConfig::max_fragment_size`.
    record_plaintext: usize,
    handshake_complete: bool,
    peer_closed: bool,
    close_notify_queued: bool,
    /// The error rustls returned, kept because rustls must not be driven after it.
    failure: Option<rustls::Error>,
    /// The stamp of the stored session this handshake resumes, for the ticket that replaces it;
    /// see [`crate::tls::handshake_step`].
    session_origin: Option<u64>,
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
            connection,
            record_plaintext,
            handshake_complete: false,
            peer_closed: false,
            close_notify_queued: false,
            failure: None,
            session_origin: None,
        })
    }

    /// Returns whether the handshake is complete, so application data can be encrypted.
    pub fn is_handshake_complete(&self) -> bool {
        self.handshake_complete
    }

    /// Returns whether the peer sent close_notify. No plaintext follows it.
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed
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
        self.drive(incoming, outgoing, Goal::Process { plaintext })
    }

    /// Encrypts the concatenation of `parts` into records appended to `outgoing`, together with
    /// any records rustls queued before them. A record spans part boundaries, so a response head
    /// and a short body share one record. Such a record's plaintext is joined in `scratch`, which
    /// is left empty with its capacity, so that a caller can reuse it instead of allocating.
    ///
    /// # Errors
    /// `HandshakeIncomplete` before the handshake ends, `Closed` after close_notify,
    /// `EncryptExhausted` when the keys allow no more records, and `UnprocessedPlaintext` when
    /// `incoming` has data that [`TlsSession::process`] has not taken.
    pub fn encrypt(&mut self, incoming: &mut Vec<u8>, parts: &[&[u8]], outgoing: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), TlsSessionError> {
        if self.close_notify_queued {
            return Err(TlsSessionError::Closed);
        }
        if parts.iter().all(|part| part.is_empty()) {
            return Ok(());
        }
        self.drive(incoming, outgoing, Goal::Encrypt { parts, scratch })
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
        self.drive(incoming, outgoing, Goal::CloseNotify)
    }

    /// Calls `process_tls_records` until `goal` is reached, handling every state on the way.
    fn drive(&mut self, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>, goal: Goal<'_>) -> Result<(), TlsSessionError> {
        if let Some(err) = &self.failure {
            return Err(TlsSessionError::Protocol(err.clone()));
        }
        if self.handshake_complete {
            return self.drive_records(incoming, outgoing, goal);
        }
        // When rustls found a stored session but made a full handshake (also one after a
        // HelloRetryRequest), the next ticket starts a new session.
        let mut origin = match self.connection.handshake_kind() {
            Some(HandshakeKind::Resumed) | None => self.session_origin,
            Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => None,
        };
        let result = crate::tls::handshake_step(&mut origin, || self.drive_records(incoming, outgoing, goal));
        self.session_origin = origin;
        result
    }

    /// Does the work of [`TlsSession::drive`] once the session's origin is in place.
    fn drive_records(&mut self, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>, mut goal: Goal<'_>) -> Result<(), TlsSessionError> {
        let max_steps = STEP_ALLOWANCE.saturating_add(incoming.len());
        for _ in 0..max_steps {
            let UnbufferedStatus { mut discard, state } = self.connection.process_tls_records(incoming);
            let step = match state {
                Err(err) => {
                    discard_front(incoming, discard);
                    return Err(self.fail(err, incoming, outgoing));
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => match &mut goal {
                    Goal::Process { plaintext } => {
                        let mut step = Step::Continue;
                        while let Some(record) = traffic.next_record() {
                            match record {
                                Ok(record) => {
                                    plaintext.extend_from_slice(record.payload);
                                    discard = discard.saturating_add(record.discard);
                                }
                                Err(err) => {
                                    step = Step::Failed(TlsSessionError::Protocol(err));
                                    break;
                                }
                            }
                        }
                        step
                    }
                    Goal::Encrypt { .. } | Goal::CloseNotify => Step::Failed(TlsSessionError::UnprocessedPlaintext),
                },
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
                Ok(ConnectionState::BlockedHandshake) => match goal {
                    Goal::Process { .. } => Step::Done,
                    Goal::Encrypt { .. } => Step::Failed(TlsSessionError::HandshakeIncomplete),
                    // NOTE: rustls 0.23's unbuffered API hands out close_notify only through
                    // `WriteTraffic`, so a session closed during the handshake sends none.
                    Goal::CloseNotify => Step::Done,
                },
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    self.handshake_complete = true;
                    match &mut goal {
                        Goal::Process { .. } => Step::Done,
                        Goal::Encrypt { parts, scratch } => match encrypt_parts(&mut traffic, parts, self.record_plaintext, outgoing, scratch) {
                            Ok(()) => Step::Done,
                            Err(err) => Step::Failed(err),
                        },
                        Goal::CloseNotify => match close_notify_into(&mut traffic, outgoing) {
                            Ok(()) => {
                                self.close_notify_queued = true;
                                Step::Done
                            }
                            Err(err) => Step::Failed(err),
                        },
                    }
                }
                Ok(ConnectionState::Closed) => match goal {
                    Goal::Process { .. } | Goal::CloseNotify => Step::Done,
                    Goal::Encrypt { .. } => Step::Failed(TlsSessionError::Closed),
                },
                Ok(ConnectionState::ReadEarlyData(_)) => Step::Failed(TlsSessionError::EarlyData),
                Ok(_) => Step::Failed(TlsSessionError::UnexpectedState),
            };
            discard_front(incoming, discard);

            match step {
                Step::Continue => {}
                Step::Done => return Ok(()),
                Step::Failed(err) => return Err(err),
            }
        }
        Err(TlsSessionError::NoProgress)
    }

    /// Appends the alert rustls queued for `err` to `outgoing` and marks the session failed.
    ///
    /// rustls returns a queued message as `EncodeTlsData` before it looks at new input. It must
    /// not be called once the queue is empty: it would deframe the rejected record again and queue
    /// a second fatal alert, which `CommonState::send_fatal_alert` asserts against in debug builds
    /// (rustls 0.23.48 `common_state.rs`). `wants_write` reports whether the queue has a message.
    fn fail(&mut self, err: rustls::Error, incoming: &mut Vec<u8>, outgoing: &mut Vec<u8>) -> TlsSessionError {
        self.failure = Some(err.clone());
        for _ in 0..STEP_ALLOWANCE {
            if !self.connection.wants_write() {
                break;
            }
            let UnbufferedStatus { discard, state } = self.connection.process_tls_records(incoming);
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

/// Encrypts the concatenation of `parts` into `outgoing`, `record_plaintext` bytes per record.
/// Bytes of a record that spans parts are copied into `joined`, and the rest is encrypted
/// straight from the caller's slices. `joined` is left empty.
fn encrypt_parts(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    parts: &[&[u8]],
    record_plaintext: usize,
    outgoing: &mut Vec<u8>,
    joined: &mut Vec<u8>,
) -> Result<(), TlsSessionError> {
    joined.clear();
    let last = parts.len().saturating_sub(1);
    for (index, part) in parts.iter().enumerate() {
        let mut rest: &[u8] = part;

        if !joined.is_empty() {
            let take = rest.len().min(record_plaintext.saturating_sub(joined.len()));
            let (head, tail) = rest.split_at(take);
            joined.extend_from_slice(head);
            rest = tail;
            if joined.len() < record_plaintext {
                continue;
            }
            encrypt_into(traffic, joined, record_plaintext, outgoing)?;
            joined.clear();
        }

        if index == last {
            encrypt_into(traffic, rest, record_plaintext, outgoing)?;
            return Ok(());
        }
        let whole = rest.len() - rest.len() % record_plaintext;
        let (records, tail) = rest.split_at(whole);
        encrypt_into(traffic, records, record_plaintext, outgoing)?;
        if !tail.is_empty() {
            // Enough for the record this tail starts, which for a small response is all of it.
            // `joined` is empty here, so this reserves only when its capacity is short.
            let remaining: usize = parts.iter().skip(index + 1).map(|part| part.len()).sum();
            joined.reserve_exact(record_plaintext.min(tail.len().saturating_add(remaining)));
        }
        joined.extend_from_slice(tail);
    }
    let result = encrypt_into(traffic, joined, record_plaintext, outgoing);
    joined.clear();
    result
}

/// Encrypts `plaintext` into records appended to `outgoing`, growing it when rustls reports that
/// the estimate was short.
fn encrypt_into(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    plaintext: &[u8],
    record_plaintext: usize,
    outgoing: &mut Vec<u8>,
) -> Result<(), TlsSessionError> {
    if plaintext.is_empty() {
        return Ok(());
    }
    let records = plaintext.len().div_ceil(record_plaintext.max(1));
    let size = plaintext.len().saturating_add(records.saturating_mul(RECORD_OVERHEAD_ESTIMATE));
    write_with_retry(outgoing, size, |space| match traffic.encrypt(plaintext, space) {
        Ok(written) => Ok(written),
        Err(EncryptError::InsufficientSize(needed)) => Err(Attempt::Grow(needed.required_size)),
        Err(EncryptError::EncryptExhausted) => Err(Attempt::Fail(TlsSessionError::EncryptExhausted)),
    })
}

/// Appends an encrypted close_notify alert to `outgoing`.
fn close_notify_into(traffic: &mut WriteTraffic<'_, ServerConnectionData>, outgoing: &mut Vec<u8>) -> Result<(), TlsSessionError> {
    write_with_retry(outgoing, RECORD_OVERHEAD_ESTIMATE, |space| match traffic.queue_close_notify(space) {
        Ok(written) => Ok(written),
        Err(EncryptError::InsufficientSize(needed)) => Err(Attempt::Grow(needed.required_size)),
        Err(EncryptError::EncryptExhausted) => Err(Attempt::Fail(TlsSessionError::EncryptExhausted)),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::client::Resumption;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig, SupportedProtocolVersion};

    use super::{TlsSession, TlsSessionError};

    /// Rounds of client and server flights allowed for one handshake; a full one needs two.
    const HANDSHAKE_ROUNDS: usize = 8;

    /// Server and client configurations sharing one self-signed certificate for `localhost`.
    pub(in crate::server) fn configs(version: &'static SupportedProtocolVersion) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
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
        let client = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
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
        /// Reused across calls, as the server reuses its spare buffers.
        scratch: Vec<u8>,
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
                scratch: Vec::new(),
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
            assert_eq!(pair.session.connection.protocol_version(), Some(expected), "{label}");
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
            pair.session.encrypt(&mut pair.incoming, &[&body], &mut pair.outgoing, &mut pair.scratch).unwrap();
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
        // A reused scratch buffer may hold bytes from elsewhere; none of them may be sent.
        pair.scratch.extend_from_slice(b"stale");
        pair.session.encrypt(&mut pair.incoming, &[head, b"hello"], &mut pair.outgoing, &mut pair.scratch).unwrap();
        assert!(pair.scratch.is_empty(), "the scratch buffer is left empty");
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
            pair.session.encrypt(&mut pair.incoming, &slices, &mut pair.outgoing, &mut pair.scratch).unwrap();

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
            pair.session.encrypt(&mut pair.incoming, &[b"bye"], &mut pair.outgoing, &mut pair.scratch).unwrap();
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

            let again = pair.session.encrypt(&mut pair.incoming, &[b"late"], &mut pair.outgoing, &mut pair.scratch);
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
            (true, b"\x63\x03\x03\x00\x01x", rustls::AlertDescription::DecodeError),
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
                assert_eq!(second.session.connection.handshake_kind(), Some(HandshakeKind::Resumed), "{expected:?} piece {piece}");
            }
        }
    }

    #[test]
    fn idle_session_keeps_no_buffer() {
        for_each_connected_pair(|pair, _, label| {
            pair.client.writer().write_all(b"one").unwrap();
            pair.client_to_server().unwrap();
            assert!(pair.incoming.is_empty(), "{label}");

            // Every buffer is freed while idle, and the session works on with new ones.
            pair.incoming = Vec::new();
            pair.plaintext = Vec::new();
            pair.outgoing = Vec::new();
            pair.client.writer().write_all(b"two").unwrap();
            pair.client_to_server().unwrap();
            assert_eq!(pair.plaintext, b"two", "{label}");
            pair.session.encrypt(&mut pair.incoming, &[b"three"], &mut pair.outgoing, &mut pair.scratch).unwrap();
            pair.server_to_client().unwrap();
            assert_eq!(pair.client_plaintext(), b"three", "{label}");
        });
    }

    #[test]
    fn encrypt_before_handshake() {
        let (server, client) = configs(&rustls::version::TLS13);
        let mut pair = Pair::new(&server, &client, 64 * 1024);
        pair.client_to_server().unwrap();
        let result = pair.session.encrypt(&mut pair.incoming, &[b"early"], &mut pair.outgoing, &mut pair.scratch);
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
        pair.session.encrypt(&mut pair.incoming, &[b"reply"], &mut pair.outgoing, &mut pair.scratch).unwrap();
        pair.server_to_client().unwrap();
        assert_eq!(pair.client_plaintext(), b"reply");
    }
}
