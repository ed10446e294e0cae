//! TLS records after the handshake, without I/O: protecting the server's records and opening the
//! client's (RFC 8446 §5 for TLS 1.3; RFC 5246 §6.2 with RFC 5288 and RFC 7905 for TLS 1.2).
//! rustls makes the handshake. Once it is complete, rustls hands over the traffic keys and
//! sequence numbers through the interface it offers for kernel TLS (`rustls::kernel`), and this
//! module seals and opens records with aws-lc's AEADs. The TLS 1.3 application traffic secrets,
//! from which key updates derive the next keys (RFC 8446 §7.2), come from rustls's key log (see
//! [`crate::tls::collect_application_secrets`]), so no rustls state stays with the connection.
//! This module must not use sockets or the async runtime.
//!
//! Why not rustls's own record layer: an idle keep-alive connection would keep rustls's
//! connection state (about 2 KiB in a heap profile) and two AEAD key contexts (about 1.2 KiB) for
//! as long as it stays open. Here it keeps the secrets and the sequence numbers.
//! [`Records::release_keys`] drops the key contexts of a connection that waits, and the next
//! record builds them again from the secrets. Records are also sealed in place in the output
//! buffer, where rustls 0.23 seals into a new allocation per record and copies it out.
//!
//! The client's post-handshake messages: a TLS 1.3 KeyUpdate (RFC 8446 §4.6.3) switches the
//! receiving key, and one that requests an update also switches the sending key before the next
//! data. A TLS 1.2 ClientHello (renegotiation) gets the no_renegotiation warning, as from
//! rustls. Every other handshake message ends the session.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use rustls::crypto::hash::HashAlgorithm;
#[cfg(test)]
use rustls::ProtocolVersion;
use rustls::{AlertDescription, ConnectionTrafficSecrets, ContentType, Error, ExtractedSecrets, HandshakeType, InvalidMessage, PeerMisbehaved, SupportedCipherSuite};
use zeroize::Zeroize;

use crate::tls::{ApplicationSecret, ApplicationSecrets};

/// RFC 8446 §5.1 and RFC 5246 §6.2.1: the largest plaintext of one record, 2^14 bytes.
pub const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// RFC 8446 §5.2: the largest `TLSCiphertext.length` in TLS 1.3, 2^14 + 256.
const MAX_CIPHERTEXT_TLS13: usize = MAX_RECORD_PLAINTEXT + 256;

/// RFC 5246 §6.2.3: the largest `TLSCiphertext.length` in TLS 1.2, 2^14 + 2048.
const MAX_CIPHERTEXT_TLS12: usize = MAX_RECORD_PLAINTEXT + 2048;

/// Content type, version and length.
const HEADER_LEN: usize = 5;

/// The authentication tag of every AEAD that rustls negotiates.
const TAG_LEN: usize = 16;

/// RFC 5288 §3: the part of an AES-GCM nonce that a TLS 1.2 record carries.
const EXPLICIT_NONCE_LEN: usize = 8;

/// RFC 8446 §5.1: the `legacy_record_version` of every TLS 1.3 record, and TLS 1.2's version.
const RECORD_VERSION: [u8; 2] = [3, 3];

/// Handshake message header: type and a 24-bit length (RFC 8446 §4).
const HANDSHAKE_HEADER_LEN: usize = 4;

/// Alert levels (RFC 5246 §7.2; TLS 1.3 keeps the field).
const ALERT_WARNING: u8 = 1;
const ALERT_FATAL: u8 = 2;

/// RFC 8446 §4.6.3: `KeyUpdateRequest` values.
const UPDATE_NOT_REQUESTED: u8 = 0;
const UPDATE_REQUESTED: u8 = 1;

/// TLS 1.2 warning alerts other than close_notify that a client may send before the session
/// ends. They carry nothing this server acts on, and each one costs a decryption.
const MAX_WARNING_ALERTS: u8 = 4;

/// TLS 1.2 renegotiation requests refused with a warning; the next one ends the session.
const MAX_RENEGOTIATION_REQUESTS: u8 = 1;

/// KeyUpdate messages accepted between two records of application data. Each one costs a key
/// derivation, so a client sending nothing else is cut off. Empty records do not count as
/// data, so they cannot reset the count.
const MAX_KEY_UPDATES_BETWEEN_DATA: u8 = 32;

/// Empty application data records accepted in a row. RFC 8446 §5.1 allows them as a traffic
/// analysis countermeasure, but each one costs a decryption and carries nothing, so a client
/// sending only these is cut off. `openssl s_server` (OpenSSL 3.0) rejects the 33rd too.
const MAX_EMPTY_RECORDS_IN_A_ROW: u8 = 32;

/// The record protection of one session after its handshake.
pub struct Records {
    tls13: bool,
    /// Records sealed under one key before TLS 1.3 updates it and TLS 1.2 refuses to seal more
    /// (the cipher suite's confidentiality limit, RFC 8446 §5.5).
    confidentiality_limit: u64,
    send: TrafficKeys,
    receive: TrafficKeys,
    /// A handshake message split over records, which must follow without other records between
    /// them (RFC 8446 §5.1).
    handshake: PartialHandshake,
    /// RFC 8446 §4.6.3: the client asked for an update of the keys this side sends with. The
    /// KeyUpdate goes out before the next application data record, as the RFC allows, so that
    /// many requests from a client that reads nothing produce one KeyUpdate and use no memory.
    update_requested: bool,
    peer_closed: bool,
    /// close_notify was sealed, after which this side sends nothing more (RFC 8446 §6.1).
    close_notify_sent: bool,
    warning_alerts: u8,
    renegotiation_requests: u8,
    key_updates: u8,
    empty_records: u8,
    /// A fault found behind records whose plaintext has not been read yet. The next
    /// [`Records::open`] reports it, so that requests that arrived before the bad record are
    /// still served, as with a TLS library that hands over one record at a time. Boxed because
    /// it is rare, and every idle connection keeps this struct.
    deferred: Option<Box<Fault>>,
}

/// The keys of one direction.
struct TrafficKeys {
    secret: TrafficSecret,
    /// TLS 1.3: the application traffic secret that `secret` was derived from, and the suite's
    /// HKDF, for the next key (RFC 8446 §7.2).
    update: Option<(ApplicationSecret, hkdf::Algorithm)>,
    /// Sequence number of the next record (RFC 8446 §5.3, RFC 5246 §6.1).
    sequence: u64,
    /// aws-lc's key context, built from `secret` when a record needs it.
    key: Option<LessSafeKey>,
}

/// An AEAD key and IV, wiped when dropped.
struct TrafficSecret {
    algorithm: &'static aead::Algorithm,
    key: [u8; 32],
    key_len: usize,
    iv: [u8; aead::NONCE_LEN],
}

/// The part of a handshake message received so far.
#[derive(Default)]
struct PartialHandshake {
    header: [u8; HANDSHAKE_HEADER_LEN],
    header_len: usize,
    /// Body bytes still to come once the header is complete.
    body_left: usize,
    /// The first body byte: a KeyUpdate's request.
    first_body_byte: Option<u8>,
}

/// An error that ends the session, with the fatal alert to send (none when the client sent one).
struct Fault {
    alert: Option<AlertDescription>,
    error: Error,
}

impl Fault {
    fn new(alert: AlertDescription, error: impl Into<Error>) -> Fault {
        Fault { alert: Some(alert), error: error.into() }
    }

    fn unexpected(error: impl Into<Error>) -> Fault {
        Fault::new(AlertDescription::UnexpectedMessage, error)
    }

    /// Returns a fault to end the session with no alert: the client sent a fatal one, or the
    /// alert could not be sealed.
    fn silent(error: Error) -> Fault {
        Fault { alert: None, error }
    }

    /// Returns a fault of this server's own, such as aws-lc rejecting a derived key.
    fn internal(error: Error) -> Fault {
        Fault::new(AlertDescription::InternalError, error)
    }
}

impl Records {
    /// Takes over a session whose handshake rustls completed with `suite`. TLS 1.3 sessions need
    /// the application traffic secrets too.
    ///
    /// # Errors
    /// `Error::General` when the secrets are for an AEAD that aws-lc rejects, or when TLS 1.3
    /// application traffic secrets are missing or do not give the keys rustls handed over.
    pub fn new(secrets: ExtractedSecrets, suite: SupportedCipherSuite, application: ApplicationSecrets) -> Result<Records, Error> {
        let (send_sequence, send) = secrets.tx;
        let (receive_sequence, receive) = secrets.rx;
        let mut send = TrafficKeys::new(send, send_sequence)?;
        let mut receive = TrafficKeys::new(receive, receive_sequence)?;
        let (tls13, confidentiality_limit) = match suite {
            SupportedCipherSuite::Tls13(suite) => {
                let hkdf = match suite.common.hash_provider.algorithm() {
                    HashAlgorithm::SHA256 => hkdf::HKDF_SHA256,
                    HashAlgorithm::SHA384 => hkdf::HKDF_SHA384,
                    _ => return Err(Error::General("TLS 1.3 suite with a hash this server does not derive keys with".into())),
                };
                let (Some(client), Some(server)) = (application.client, application.server) else {
                    return Err(Error::General("rustls logged no TLS 1.3 application traffic secrets".into()));
                };
                send.set_application_secret(server, hkdf)?;
                receive.set_application_secret(client, hkdf)?;
                (true, suite.common.confidentiality_limit)
            }
            SupportedCipherSuite::Tls12(suite) => (false, suite.common.confidentiality_limit),
        };
        Ok(Records::from_keys(tls13, confidentiality_limit, send, receive))
    }

    fn from_keys(tls13: bool, confidentiality_limit: u64, send: TrafficKeys, receive: TrafficKeys) -> Records {
        Records {
            tls13,
            confidentiality_limit,
            send,
            receive,
            handshake: PartialHandshake::default(),
            update_requested: false,
            peer_closed: false,
            close_notify_sent: false,
            warning_alerts: 0,
            renegotiation_requests: 0,
            key_updates: 0,
            empty_records: 0,
            deferred: None,
        }
    }

    /// Returns whether the client sent close_notify. Records after it are ignored (RFC 8446 §6.1).
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed
    }

    #[cfg(test)]
    pub fn protocol_version(&self) -> ProtocolVersion {
        if self.tls13 { ProtocolVersion::TLSv1_3 } else { ProtocolVersion::TLSv1_2 }
    }

    /// Lets `records` more records be sealed under the current key.
    #[cfg(test)]
    pub fn set_confidentiality_limit(&mut self, records: u64) {
        self.confidentiality_limit = self.send.sequence.saturating_add(records);
    }

    /// Drops the AEAD key contexts, for a connection that may wait long for its next record. The
    /// next record builds them again from the secrets.
    pub fn release_keys(&mut self) {
        self.send.key = None;
        self.receive.key = None;
    }

    /// Returns whether a fault waits to be reported by the next [`Records::open`].
    pub fn has_deferred_fault(&self) -> bool {
        self.deferred.is_some()
    }

    /// Opens every complete record at the front of `incoming`, removes it, and appends its
    /// application data to `plaintext`. A no_renegotiation warning or a fatal alert to send is
    /// appended to `outgoing`. When a record is bad after others added plaintext in this call,
    /// the call succeeds, and the next one reports the fault (see
    /// [`Records::has_deferred_fault`]).
    ///
    /// # Errors
    /// The client's fault that ended the session, after the fatal alert for it was appended to
    /// `outgoing`; `Error::AlertReceived` when the client sent a fatal alert.
    pub fn open(&mut self, incoming: &mut Vec<u8>, plaintext: &mut Vec<u8>, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        if let Some(fault) = self.deferred.take() {
            return Err(self.reject(*fault, outgoing));
        }
        let plaintext_before = plaintext.len();
        let mut consumed = 0usize;
        let mut result = Ok(());
        while !self.peer_closed {
            let Some(rest) = incoming.get_mut(consumed..) else { break };
            match self.open_record(rest, plaintext, outgoing) {
                Ok(Some(length)) => consumed = consumed.saturating_add(length),
                Ok(None) => break,
                // RFC 8446 §6.2: after the client's fatal alert nothing more is sent, so the
                // requests before it get no response.
                Err(fault) if plaintext.len() > plaintext_before && fault.alert.is_some() => {
                    self.deferred = Some(Box::new(fault));
                    break;
                }
                Err(fault) => {
                    result = Err(fault);
                    break;
                }
            }
        }
        if self.peer_closed {
            consumed = incoming.len();
        }
        incoming.drain(..consumed.min(incoming.len()));
        result.map_err(|fault| self.reject(fault, outgoing))
    }

    /// Seals the concatenation of `parts` into application data records of at most
    /// `record_plaintext` bytes, appended to `outgoing`. A record spans part boundaries, so a
    /// response head and a short body share one.
    ///
    /// # Errors
    /// `Error::EncryptError` when a TLS 1.2 key reached its confidentiality limit (TLS 1.3
    /// updates the key instead), or when aws-lc fails.
    pub fn seal(&mut self, parts: &[&[u8]], record_plaintext: usize, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        let record_plaintext = record_plaintext.clamp(1, MAX_RECORD_PLAINTEXT);
        let total = parts.iter().fold(0usize, |sum, part| sum.saturating_add(part.len()));
        let records = total.div_ceil(record_plaintext);
        outgoing.reserve(total.saturating_add(records.saturating_mul(HEADER_LEN + EXPLICIT_NONCE_LEN + 1 + TAG_LEN)));

        let mut parts = parts.iter().copied();
        let mut current: &[u8] = &[];
        let mut left = total;
        while left > 0 {
            self.refresh_send_key(outgoing)?;
            let length = left.min(record_plaintext);
            let start = self.send.start_record(self.tls13, outgoing);
            let mut missing = length;
            while missing > 0 {
                if current.is_empty() {
                    match parts.next() {
                        Some(part) => current = part,
                        None => break,
                    }
                }
                let (taken, rest) = current.split_at(missing.min(current.len()));
                outgoing.extend_from_slice(taken);
                current = rest;
                missing = missing.saturating_sub(taken.len());
            }
            self.send.seal_record(self.tls13, ContentType::ApplicationData, start, outgoing)?;
            left = left.saturating_sub(length);
        }
        Ok(())
    }

    /// Appends a close_notify alert (RFC 8446 §6.1) to `outgoing`.
    ///
    /// # Errors
    /// As [`Records::seal`].
    pub fn close_notify(&mut self, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        self.seal_alert(ALERT_WARNING, AlertDescription::CloseNotify, outgoing)?;
        self.close_notify_sent = true;
        Ok(())
    }

    /// Opens the record at the front of `buffer`. Returns its length, or `None` when it is not
    /// complete yet.
    fn open_record(&mut self, buffer: &mut [u8], plaintext: &mut Vec<u8>, outgoing: &mut Vec<u8>) -> Result<Option<usize>, Fault> {
        let Some(&[outer_type, major, minor, length_high, length_low]) = buffer.get(..HEADER_LEN) else { return Ok(None) };
        let length = usize::from(u16::from_be_bytes([length_high, length_low]));
        let limit = if self.tls13 { MAX_CIPHERTEXT_TLS13 } else { MAX_CIPHERTEXT_TLS12 };
        if length > limit {
            return Err(Fault::new(AlertDescription::RecordOverflow, Error::PeerSentOversizedRecord));
        }
        let Some(record) = buffer.get_mut(..HEADER_LEN.saturating_add(length)) else { return Ok(None) };
        let (header, payload) = record.split_at_mut(HEADER_LEN);

        let outer_type = ContentType::from(outer_type);
        if self.tls13 && outer_type != ContentType::ApplicationData {
            // RFC 8446 §5: after the handshake every record is protected, and a change_cipher_spec
            // is an unexpected record type.
            return Err(Fault::unexpected(Error::InappropriateMessage { expect_types: vec![ContentType::ApplicationData], got_type: outer_type }));
        }
        if !self.tls13 {
            if !matches!(outer_type, ContentType::ApplicationData | ContentType::Alert | ContentType::Handshake) {
                return Err(Fault::unexpected(Error::InappropriateMessage { expect_types: vec![ContentType::ApplicationData], got_type: outer_type }));
            }
            if [major, minor] != RECORD_VERSION {
                return Err(Fault::new(AlertDescription::ProtocolVersion, InvalidMessage::UnknownProtocolVersion));
            }
        }

        let (content_type, content) = self.receive.open(self.tls13, outer_type, header, payload)?;
        if self.handshake.is_started() && content_type != ContentType::Handshake {
            return Err(Fault::unexpected(PeerMisbehaved::MessageInterleavedWithHandshakeMessage));
        }
        match content_type {
            ContentType::ApplicationData if content.is_empty() => {
                self.empty_records = self.empty_records.saturating_add(1);
                if self.empty_records > MAX_EMPTY_RECORDS_IN_A_ROW {
                    return Err(Fault::unexpected(PeerMisbehaved::TooManyEmptyFragments));
                }
            }
            ContentType::ApplicationData => {
                plaintext.extend_from_slice(content);
                self.key_updates = 0;
                self.empty_records = 0;
            }
            ContentType::Alert => self.on_alert(content)?,
            ContentType::Handshake => self.on_handshake(content, outgoing)?,
            other => return Err(Fault::unexpected(Error::InappropriateMessage { expect_types: vec![ContentType::ApplicationData], got_type: other })),
        }
        Ok(Some(HEADER_LEN.saturating_add(length)))
    }

    /// Handles an alert from the client.
    fn on_alert(&mut self, content: &[u8]) -> Result<(), Fault> {
        // RFC 8446 §5.1: alerts are never fragmented nor coalesced.
        let &[level, description] = content else {
            return Err(Fault::new(AlertDescription::DecodeError, InvalidMessage::MessageTooShort));
        };
        let description = AlertDescription::from(description);
        if level != ALERT_WARNING && level != ALERT_FATAL {
            return Err(Fault::new(AlertDescription::IllegalParameter, Error::AlertReceived(description)));
        }
        if description == AlertDescription::CloseNotify {
            self.peer_closed = true;
            return Ok(());
        }
        if level == ALERT_FATAL {
            return Err(Fault::silent(Error::AlertReceived(description)));
        }
        // RFC 8446 §6: in TLS 1.3 every alert but close_notify and user_canceled is fatal,
        // whatever its level field contains.
        if self.tls13 && description != AlertDescription::UserCanceled {
            return Err(Fault::new(AlertDescription::DecodeError, Error::AlertReceived(description)));
        }
        self.warning_alerts = self.warning_alerts.saturating_add(1);
        if self.warning_alerts > MAX_WARNING_ALERTS {
            return Err(Fault::unexpected(PeerMisbehaved::TooManyWarningAlertsReceived));
        }
        tracing::debug!(alert = ?description, "TLS warning alert from the client");
        Ok(())
    }

    /// Takes the bytes of handshake messages from one record's content.
    fn on_handshake(&mut self, mut content: &[u8], outgoing: &mut Vec<u8>) -> Result<(), Fault> {
        if content.is_empty() {
            // RFC 8446 §5.4: a handshake record never has empty content.
            return Err(Fault::unexpected(InvalidMessage::InvalidEmptyPayload));
        }
        while !content.is_empty() {
            if self.handshake.header_len < HANDSHAKE_HEADER_LEN {
                content = self.handshake.take_header(content);
                if self.handshake.header_len < HANDSHAKE_HEADER_LEN {
                    break;
                }
                self.check_handshake_header()?;
            }
            content = self.handshake.take_body(content);
            if self.handshake.body_left > 0 {
                break;
            }

            let PartialHandshake { header: [kind, ..], first_body_byte, .. } = std::mem::take(&mut self.handshake);
            match HandshakeType::from(kind) {
                HandshakeType::KeyUpdate => self.on_key_update(first_body_byte, content.is_empty())?,
                _ => self.on_renegotiation_request(outgoing)?,
            }
        }
        Ok(())
    }

    /// Accepts the one handshake message of each version that the client may send now.
    fn check_handshake_header(&mut self) -> Result<(), Fault> {
        let [kind, ..] = self.handshake.header;
        let kind = HandshakeType::from(kind);
        let length = self.handshake.body_left;
        match (self.tls13, kind) {
            (true, HandshakeType::KeyUpdate) if length == 1 => Ok(()),
            (true, HandshakeType::KeyUpdate) => Err(Fault::new(AlertDescription::DecodeError, InvalidMessage::InvalidKeyUpdate)),
            (false, HandshakeType::ClientHello) => Ok(()),
            (true, _) => Err(Fault::unexpected(Error::InappropriateHandshakeMessage { expect_types: vec![HandshakeType::KeyUpdate], got_type: kind })),
            (false, _) => Err(Fault::unexpected(Error::InappropriateHandshakeMessage { expect_types: vec![HandshakeType::ClientHello], got_type: kind })),
        }
    }

    /// RFC 8446 §4.6.3: the client's following records use its next keys.
    fn on_key_update(&mut self, request: Option<u8>, ends_record: bool) -> Result<(), Fault> {
        // RFC 8446 §5.1: a message that precedes a key change ends its record.
        if !ends_record {
            return Err(Fault::unexpected(PeerMisbehaved::KeyEpochWithPendingFragment));
        }
        match request {
            Some(UPDATE_NOT_REQUESTED) => {}
            Some(UPDATE_REQUESTED) => self.update_requested = true,
            _ => return Err(Fault::new(AlertDescription::IllegalParameter, InvalidMessage::InvalidKeyUpdate)),
        }
        self.key_updates = self.key_updates.saturating_add(1);
        if self.key_updates > MAX_KEY_UPDATES_BETWEEN_DATA {
            return Err(Fault::unexpected(PeerMisbehaved::TooManyKeyUpdateRequests));
        }
        self.receive.update().map_err(Fault::internal)
    }

    /// RFC 5746 §4.4 and RFC 5246 §7.2.2: this server does not renegotiate. It sends a
    /// no_renegotiation warning, after which the client may go on.
    fn on_renegotiation_request(&mut self, outgoing: &mut Vec<u8>) -> Result<(), Fault> {
        self.renegotiation_requests = self.renegotiation_requests.saturating_add(1);
        if self.renegotiation_requests > MAX_RENEGOTIATION_REQUESTS {
            return Err(Fault::unexpected(PeerMisbehaved::TooManyRenegotiationRequests));
        }
        tracing::debug!("TLS 1.2 renegotiation request rejected");
        self.seal_alert(ALERT_WARNING, AlertDescription::NoRenegotiation, outgoing).map_err(Fault::silent)
    }

    /// Updates the sending key when the client asked for it, or when it has sealed as many
    /// records as its cipher suite allows, which TLS 1.3 does with a KeyUpdate (RFC 8446 §5.5).
    fn refresh_send_key(&mut self, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        if self.update_requested {
            return self.send_key_update(outgoing);
        }
        if self.send.sequence < self.confidentiality_limit {
            return Ok(());
        }
        if !self.tls13 {
            return Err(Error::EncryptError);
        }
        self.send_key_update(outgoing)
    }

    /// Sends a KeyUpdate with `update_not_requested`, then seals with the next key.
    fn send_key_update(&mut self, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        self.update_requested = false;
        let start = self.send.start_record(self.tls13, outgoing);
        outgoing.extend_from_slice(&[u8::from(HandshakeType::KeyUpdate), 0, 0, 1, UPDATE_NOT_REQUESTED]);
        self.send.seal_record(self.tls13, ContentType::Handshake, start, outgoing)?;
        self.send.update()
    }

    /// Appends the fatal alert for `fault` when there is one, and returns its error.
    fn reject(&mut self, fault: Fault, outgoing: &mut Vec<u8>) -> Error {
        if let Some(alert) = fault.alert {
            // The session ends either way; a failure here only loses the alert.
            self.seal_alert(ALERT_FATAL, alert, outgoing).ok();
        }
        fault.error
    }

    fn seal_alert(&mut self, level: u8, description: AlertDescription, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        if self.close_notify_sent {
            return Ok(());
        }
        let start = self.send.start_record(self.tls13, outgoing);
        outgoing.extend_from_slice(&[level, u8::from(description)]);
        self.send.seal_record(self.tls13, ContentType::Alert, start, outgoing)
    }
}

impl TrafficKeys {
    fn new(secret: ConnectionTrafficSecrets, sequence: u64) -> Result<TrafficKeys, Error> {
        let (algorithm, key, iv) = match &secret {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
            _ => return Err(Error::General("rustls negotiated an AEAD this server does not seal".into())),
        };
        let Ok(iv) = <[u8; aead::NONCE_LEN]>::try_from(iv.as_ref()) else {
            return Err(Error::General("AEAD IV of an unexpected length".into()));
        };
        let mut secret = TrafficSecret { algorithm, key: [0; 32], key_len: key.as_ref().len(), iv };
        let Some(key_room) = secret.key.get_mut(..secret.key_len) else {
            return Err(Error::General("AEAD key longer than 32 bytes".into()));
        };
        key_room.copy_from_slice(key.as_ref());
        Ok(TrafficKeys { secret, update: None, sequence, key: None })
    }

    /// Keeps the TLS 1.3 application traffic secret these keys were derived from, after checking
    /// that it gives them.
    fn set_application_secret(&mut self, application: ApplicationSecret, hkdf: hkdf::Algorithm) -> Result<(), Error> {
        let derived = TrafficSecret::derive(self.secret.algorithm, hkdf, application.as_bytes())?;
        if derived.key != self.secret.key || derived.iv != self.secret.iv {
            return Err(Error::General("the logged application traffic secret does not give the session's keys".into()));
        }
        self.update = Some((application, hkdf));
        Ok(())
    }

    /// RFC 8446 §7.2: moves to the next application traffic secret and its keys, from sequence
    /// number 0.
    fn update(&mut self) -> Result<(), Error> {
        let Some((current, hkdf)) = &self.update else {
            return Err(Error::General("no application traffic secret to update".into()));
        };
        let mut next = [0u8; 48];
        let next = next.get_mut(..current.as_bytes().len()).unwrap_or_default();
        expand_label(*hkdf, current.as_bytes(), b"traffic upd", next)?;
        let next_secret = ApplicationSecret::new(next).ok_or(Error::EncryptError)?;
        next.zeroize();
        self.secret = TrafficSecret::derive(self.secret.algorithm, *hkdf, next_secret.as_bytes())?;
        self.update = Some((next_secret, *hkdf));
        self.sequence = 0;
        self.key = None;
        Ok(())
    }

    /// Returns aws-lc's key context, building it when it was released.
    fn key(&mut self) -> Result<&LessSafeKey, Error> {
        if self.key.is_none() {
            let bytes = self.secret.key.get(..self.secret.key_len).unwrap_or_default();
            let unbound = UnboundKey::new(self.secret.algorithm, bytes).map_err(|_| Error::General("aws-lc rejected a traffic key".into()))?;
            self.key = Some(LessSafeKey::new(unbound));
        }
        self.key.as_ref().ok_or(Error::EncryptError)
    }

    /// Decrypts one record's payload in place and returns its content type and content.
    fn open<'a>(&mut self, tls13: bool, outer_type: ContentType, header: &[u8], payload: &'a mut [u8]) -> Result<(ContentType, &'a [u8]), Fault> {
        let bad_mac = || Fault::new(AlertDescription::BadRecordMac, Error::DecryptError);
        let sequence = self.sequence;
        self.sequence = sequence.checked_add(1).ok_or_else(bad_mac)?;

        if tls13 {
            let nonce = self.secret.nonce(sequence);
            // RFC 8446 §5.2: the additional data is the record header.
            let opened = self.key().map_err(Fault::internal)?.open_in_place(nonce, Aad::from(header), payload).map_err(|_| bad_mac())?;
            // RFC 8446 §5.4: the full TLSInnerPlaintext is at most 2^14 + 1 bytes.
            if opened.len() > MAX_RECORD_PLAINTEXT.saturating_add(1) {
                return Err(Fault::new(AlertDescription::RecordOverflow, Error::PeerSentOversizedRecord));
            }
            // The content type is the last byte that is not padding.
            let Some(type_at) = opened.iter().rposition(|&byte| byte != 0) else {
                return Err(Fault::unexpected(PeerMisbehaved::IllegalTlsInnerPlaintext));
            };
            let (content, inner_type) = opened.split_at(type_at);
            let content_type = ContentType::from(inner_type.first().copied().unwrap_or_default());
            return Ok((content_type, content));
        }

        let (nonce, sealed) = if self.secret.algorithm == &aead::CHACHA20_POLY1305 {
            // RFC 7905 §2: the IV with the sequence number mixed in, as in TLS 1.3.
            if payload.len() < TAG_LEN {
                return Err(bad_mac());
            }
            (self.secret.nonce(sequence), payload)
        } else {
            // RFC 5288 §3: the salt from the key block, then the explicit part from the record.
            if payload.len() < EXPLICIT_NONCE_LEN.saturating_add(TAG_LEN) {
                return Err(bad_mac());
            }
            let (explicit, sealed) = payload.split_at_mut(EXPLICIT_NONCE_LEN);
            let mut nonce = self.secret.iv;
            if let Some(nonce_tail) = nonce.get_mut(aead::NONCE_LEN - EXPLICIT_NONCE_LEN..) {
                nonce_tail.copy_from_slice(explicit);
            }
            (Nonce::assume_unique_for_key(nonce), sealed)
        };
        let content_length = sealed.len().saturating_sub(TAG_LEN);
        let aad = tls12_additional_data(sequence, outer_type, content_length);
        let opened = self.key().map_err(Fault::internal)?.open_in_place(nonce, Aad::from(aad), sealed).map_err(|_| bad_mac())?;
        if opened.len() > MAX_RECORD_PLAINTEXT {
            return Err(Fault::new(AlertDescription::RecordOverflow, Error::PeerSentOversizedRecord));
        }
        Ok((outer_type, opened))
    }

    /// Appends a record header to fill in later, and the room for TLS 1.2 AES-GCM's explicit
    /// nonce. Returns where the record starts.
    fn start_record(&self, tls13: bool, outgoing: &mut Vec<u8>) -> usize {
        let start = outgoing.len();
        let prefix = if self.carries_explicit_nonce(tls13) { HEADER_LEN + EXPLICIT_NONCE_LEN } else { HEADER_LEN };
        outgoing.resize(start.saturating_add(prefix), 0);
        start
    }

    /// Seals the content appended since [`TrafficKeys::start_record`] returned `start`.
    fn seal_record(&mut self, tls13: bool, content_type: ContentType, start: usize, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        let sequence = self.sequence;
        self.sequence = sequence.checked_add(1).ok_or(Error::EncryptError)?;
        let gcm12 = self.carries_explicit_nonce(tls13);
        let nonce = self.secret.nonce(sequence);
        let explicit: [u8; EXPLICIT_NONCE_LEN] = nonce.as_ref().get(aead::NONCE_LEN - EXPLICIT_NONCE_LEN..).and_then(|tail| tail.try_into().ok()).unwrap_or_default();
        let key = self.key()?;

        let outer_type = if tls13 {
            // RFC 8446 §5.2: the real type goes inside, and the outer type is application data.
            outgoing.push(u8::from(content_type));
            ContentType::ApplicationData
        } else {
            content_type
        };
        let Some(record) = outgoing.get_mut(start..) else { return Err(Error::EncryptError) };
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let record_length = body.len().saturating_add(TAG_LEN);
        let Ok(record_length) = u16::try_from(record_length) else { return Err(Error::EncryptError) };
        let [length_high, length_low] = record_length.to_be_bytes();
        header.copy_from_slice(&[u8::from(outer_type), RECORD_VERSION[0], RECORD_VERSION[1], length_high, length_low]);

        let tag = if tls13 {
            key.seal_in_place_separate_tag(nonce, Aad::from(&*header), body)
        } else {
            let sealed = if gcm12 {
                let (explicit_room, sealed) = body.split_at_mut(EXPLICIT_NONCE_LEN);
                explicit_room.copy_from_slice(&explicit);
                sealed
            } else {
                body
            };
            let aad = tls12_additional_data(sequence, content_type, sealed.len());
            key.seal_in_place_separate_tag(nonce, Aad::from(aad), sealed)
        };
        let tag = tag.map_err(|_| Error::EncryptError)?;
        outgoing.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// TLS 1.2 with AES-GCM, whose records carry part of their nonce.
    fn carries_explicit_nonce(&self, tls13: bool) -> bool {
        !tls13 && self.secret.algorithm != &aead::CHACHA20_POLY1305
    }
}

impl TrafficSecret {
    /// RFC 8446 §7.3: the key and IV of an application traffic secret.
    fn derive(algorithm: &'static aead::Algorithm, hkdf: hkdf::Algorithm, application: &[u8]) -> Result<TrafficSecret, Error> {
        let mut secret = TrafficSecret { algorithm, key: [0; 32], key_len: algorithm.key_len(), iv: [0; aead::NONCE_LEN] };
        let key = secret.key.get_mut(..secret.key_len).ok_or(Error::EncryptError)?;
        expand_label(hkdf, application, b"key", key)?;
        expand_label(hkdf, application, b"iv", &mut secret.iv)?;
        Ok(secret)
    }

    /// RFC 8446 §5.3 (and RFC 7905 §2 for TLS 1.2 ChaCha20-Poly1305): the IV with the record's
    /// 64-bit sequence number XORed into its last eight bytes. TLS 1.2 AES-GCM's explicit nonce
    /// is made the same way, as rustls does, so that it never repeats under one key.
    fn nonce(&self, sequence: u64) -> Nonce {
        let mut nonce = self.iv;
        for (byte, mixed) in nonce.iter_mut().skip(aead::NONCE_LEN - 8).zip(sequence.to_be_bytes()) {
            *byte ^= mixed;
        }
        Nonce::assume_unique_for_key(nonce)
    }
}

impl Drop for TrafficSecret {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

impl PartialHandshake {
    fn is_started(&self) -> bool {
        self.header_len > 0
    }

    /// Copies header bytes from `content` and returns the rest.
    fn take_header<'a>(&mut self, content: &'a [u8]) -> &'a [u8] {
        let room = self.header.get_mut(self.header_len..).unwrap_or_default();
        let count = room.len().min(content.len());
        let (taken, rest) = content.split_at(count);
        if let Some(room) = room.get_mut(..count) {
            room.copy_from_slice(taken);
        }
        self.header_len = self.header_len.saturating_add(count);
        if self.header_len == HANDSHAKE_HEADER_LEN {
            let [_, high, middle, low] = self.header;
            self.body_left = usize::try_from(u32::from_be_bytes([0, high, middle, low])).unwrap_or(usize::MAX);
        }
        rest
    }

    /// Skips body bytes from `content`, keeping the first, and returns the rest.
    fn take_body<'a>(&mut self, content: &'a [u8]) -> &'a [u8] {
        let count = self.body_left.min(content.len());
        let (taken, rest) = content.split_at(count);
        if self.first_body_byte.is_none() {
            self.first_body_byte = taken.first().copied();
        }
        self.body_left = self.body_left.saturating_sub(count);
        rest
    }
}

/// An HKDF output length, as aws-lc's interface takes it.
struct OutputLength(usize);

impl hkdf::KeyType for OutputLength {
    fn len(&self) -> usize {
        self.0
    }
}

/// RFC 8446 §7.1: HKDF-Expand-Label with an empty context, filling `output`.
fn expand_label(hkdf: hkdf::Algorithm, secret: &[u8], label: &[u8], output: &mut [u8]) -> Result<(), Error> {
    let failed = |_| Error::General("HKDF-Expand-Label failed".into());
    let length = u16::try_from(output.len()).map_err(|_| Error::EncryptError)?.to_be_bytes();
    let label_length = [u8::try_from(b"tls13 ".len().saturating_add(label.len())).map_err(|_| Error::EncryptError)?];
    let info: [&[u8]; 5] = [&length, &label_length, b"tls13 ", label, &[0]];
    let prk = hkdf::Prk::new_less_safe(hkdf, secret);
    prk.expand(&info, OutputLength(output.len())).map_err(failed)?.fill(output).map_err(failed)
}

/// RFC 5246 §6.2.3.3: sequence number, type, version and plaintext length.
fn tls12_additional_data(sequence: u64, content_type: ContentType, content_length: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    let [length_high, length_low] = u16::try_from(content_length).unwrap_or(u16::MAX).to_be_bytes();
    let (sequence_room, rest) = aad.split_at_mut(8);
    sequence_room.copy_from_slice(&sequence.to_be_bytes());
    rest.copy_from_slice(&[u8::from(content_type), RECORD_VERSION[0], RECORD_VERSION[1], length_high, length_low]);
    aad
}

/// The client's side of a session's record protection, for tests that send records a TLS
/// library would not send. It follows the server's KeyUpdates when its keys carry their
/// application traffic secret (the fuzz harness's do, and those taken from rustls's client do
/// not).
#[cfg(any(test, fuzzing))]
pub(super) struct TestPeer {
    tls13: bool,
    send: TrafficKeys,
    receive: TrafficKeys,
}

#[cfg(any(test, fuzzing))]
impl TestPeer {
    /// Takes the client's secrets; `tx` are the keys it sends with.
    #[cfg(test)]
    pub(super) fn new(secrets: ExtractedSecrets, version: ProtocolVersion) -> TestPeer {
        let (send_sequence, send) = secrets.tx;
        let (receive_sequence, receive) = secrets.rx;
        TestPeer {
            tls13: version == ProtocolVersion::TLSv1_3,
            send: TrafficKeys::new(send, send_sequence).unwrap(),
            receive: TrafficKeys::new(receive, receive_sequence).unwrap(),
        }
    }

    /// Seals one record of `content_type` holding `content`.
    pub(super) fn seal(&mut self, content_type: ContentType, content: &[u8]) -> Vec<u8> {
        let mut record = Vec::new();
        let start = self.send.start_record(self.tls13, &mut record);
        record.extend_from_slice(content);
        self.send.seal_record(self.tls13, content_type, start, &mut record).unwrap();
        record
    }

    /// Opens the records in `bytes` and returns each one's content type and content.
    ///
    /// # Panics
    /// Panics when `bytes` ends inside a record or a record does not open.
    pub(super) fn open(&mut self, mut bytes: &[u8]) -> Vec<(ContentType, Vec<u8>)> {
        let mut opened = Vec::new();
        while !bytes.is_empty() {
            assert!(bytes.len() >= HEADER_LEN, "the server sent part of a record header");
            let length = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
            assert!(bytes.len() >= HEADER_LEN + length, "the server sent part of a record");
            let (record, rest) = bytes.split_at(HEADER_LEN + length);
            bytes = rest;
            let (header, payload) = record.split_at(HEADER_LEN);
            let mut payload = payload.to_vec();
            let outer_type = ContentType::from(header[0]);
            let (content_type, content) = match self.receive.open(self.tls13, outer_type, header, &mut payload) {
                Ok(opened) => opened,
                Err(fault) => panic!("the server's record did not open: {}", fault.error),
            };
            let key_update = content_type == ContentType::Handshake && content.starts_with(&[u8::from(HandshakeType::KeyUpdate)]);
            opened.push((content_type, content.to_vec()));
            if key_update && self.receive.update.is_some() {
                self.receive.update().unwrap();
            }
        }
        opened
    }
}

/// Runs a session's records on fuzz input and panics when an invariant fails; for
/// `fuzz/fuzz_targets/tls_records.rs`. A client with fixed keys seals records of fuzz-chosen
/// types and contents (so that the input reaches what follows decryption), and follows its own
/// KeyUpdates and the server's. The input also injects raw bytes, splits the delivery, and calls
/// the server's sealing, key release and close_notify.
///
/// Invariants: every record the server sends opens on the client, in order. Without raw bytes,
/// a failure or the client's close_notify, the server's plaintext is the client's data.
#[cfg(any(test, fuzzing))]
pub fn fuzz_session(data: &[u8]) {
    let Some((&choice, mut data)) = data.split_first() else { return };
    let suites: [(&'static aead::Algorithm, Option<hkdf::Algorithm>); 6] = [
        (&aead::AES_128_GCM, Some(hkdf::HKDF_SHA256)),
        (&aead::AES_256_GCM, Some(hkdf::HKDF_SHA384)),
        (&aead::CHACHA20_POLY1305, Some(hkdf::HKDF_SHA256)),
        (&aead::AES_128_GCM, None),
        (&aead::AES_256_GCM, None),
        (&aead::CHACHA20_POLY1305, None),
    ];
    let (algorithm, hkdf) = suites[usize::from(choice) % suites.len()];
    let tls13 = hkdf.is_some();
    let keys = |seed: u8| -> TrafficKeys {
        match hkdf {
            Some(hkdf) => {
                let application = ApplicationSecret::new(&vec![seed; hkdf.hmac_algorithm().digest_algorithm().output_len()]).unwrap();
                let secret = TrafficSecret::derive(algorithm, hkdf, application.as_bytes()).unwrap();
                TrafficKeys { secret, update: Some((application, hkdf)), sequence: 0, key: None }
            }
            None => {
                let mut secret = TrafficSecret { algorithm, key: [seed; 32], key_len: algorithm.key_len(), iv: [seed; aead::NONCE_LEN] };
                secret.iv[0] ^= 0x55;
                TrafficKeys { secret, update: None, sequence: 1, key: None }
            }
        }
    };
    // The server receives with the client's sending keys, and the other way round.
    let mut server = Records::from_keys(tls13, 64, keys(2), keys(1));
    let mut client = TestPeer { tls13, send: keys(1), receive: keys(2) };

    let mut pending = Vec::new();
    let (mut incoming, mut plaintext, mut outgoing) = (Vec::new(), Vec::new(), Vec::new());
    let mut sent_data = Vec::new();
    let mut raw = false;
    let mut failed = false;
    let mut closed = false;
    fn take(count: usize, data: &mut &[u8]) -> Vec<u8> {
        let (taken, rest) = data.split_at(count.min(data.len()));
        *data = rest;
        taken.to_vec()
    }
    while let Some((&operation, rest)) = data.split_first() {
        data = rest;
        let argument = take(1, &mut data).first().copied().unwrap_or_default();
        match operation % 7 {
            0 => {
                let content_type = ContentType::from(argument % 25);
                let length = usize::from(take(1, &mut data).first().copied().unwrap_or_default());
                let content = take(length, &mut data);
                pending.extend(client.seal(content_type, &content));
                // In TLS 1.3 a type byte of 0 is padding: the last other byte is the type.
                let (content_type, content) = match (tls13, u8::from(content_type)) {
                    (true, 0) => match content.iter().rposition(|&byte| byte != 0) {
                        Some(at) => (ContentType::from(content[at]), &content[..at]),
                        None => (content_type, &content[..]),
                    },
                    _ => (content_type, &content[..]),
                };
                if content_type == ContentType::ApplicationData {
                    sent_data.extend_from_slice(content);
                }
                if tls13 && content_type == ContentType::Handshake && content.len() == 5 && content.starts_with(&[24, 0, 0, 1]) && content[4] < 2 {
                    client.send.update().unwrap();
                }
            }
            1 => {
                raw = true;
                pending.extend(take(usize::from(argument), &mut data));
            }
            2 => {
                let count = usize::from(argument).min(pending.len());
                incoming.extend(pending.drain(..count));
                if !failed && server.open(&mut incoming, &mut plaintext, &mut outgoing).is_err() {
                    failed = true;
                }
            }
            3 if !failed && !closed => {
                let body = vec![argument; usize::from(argument) * 100];
                if server.seal(&[b"head", &body], 1 + usize::from(argument) * 64, &mut outgoing).is_err() {
                    failed = true;
                }
            }
            4 => server.release_keys(),
            5 if !failed && !closed => {
                server.close_notify(&mut outgoing).unwrap();
                closed = true;
            }
            _ => {}
        }

        // Everything the server sent opens on the client, which follows the server's KeyUpdates.
        for (content_type, content) in client.open(&std::mem::take(&mut outgoing)) {
            if content_type == ContentType::Handshake {
                assert_eq!(content, [24, 0, 0, 1, 0], "the server sends no handshake message but KeyUpdate");
            }
        }
    }
    if !raw && !failed && !server.is_peer_closed() {
        assert_eq!(plaintext, sent_data.get(..plaintext.len()).unwrap_or_default(), "plaintext differs from the client's data");
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{aead, hkdf};
    use rustls::ContentType;

    use super::{ApplicationSecret, MAX_EMPTY_RECORDS_IN_A_ROW, MAX_KEY_UPDATES_BETWEEN_DATA, Records, TestPeer, TrafficKeys, TrafficSecret, fuzz_session};

    /// TLS 1.3 keys with AES-128-GCM that follow KeyUpdates, from an application secret of
    /// `seed` bytes.
    fn updating_keys(seed: u8) -> TrafficKeys {
        let application = ApplicationSecret::new(&[seed; 32]).unwrap();
        let secret = TrafficSecret::derive(&aead::AES_128_GCM, hkdf::HKDF_SHA256, application.as_bytes()).unwrap();
        TrafficKeys { secret, update: Some((application, hkdf::HKDF_SHA256)), sequence: 0, key: None }
    }

    /// Empty application data records are accepted up to the limit in a row, and a record with
    /// data starts the count again.
    #[test]
    fn empty_record_limit() {
        for data_first in [false, true] {
            let mut server = Records::from_keys(true, 64, updating_keys(2), updating_keys(1));
            let mut client = TestPeer { tls13: true, send: updating_keys(1), receive: updating_keys(2) };
            let (mut incoming, mut plaintext, mut outgoing) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..MAX_EMPTY_RECORDS_IN_A_ROW {
                incoming.extend(client.seal(ContentType::ApplicationData, b""));
            }
            server.open(&mut incoming, &mut plaintext, &mut outgoing).expect("records up to the limit");
            if data_first {
                incoming.extend(client.seal(ContentType::ApplicationData, b"x"));
            }
            incoming.extend(client.seal(ContentType::ApplicationData, b""));
            let result = server.open(&mut incoming, &mut plaintext, &mut outgoing);
            assert_eq!(result.is_ok(), data_first, "one more empty record, data before it: {data_first}");
        }
    }

    /// KeyUpdates between records of application data are limited, and an empty record between
    /// them does not reset the count.
    #[test]
    fn key_update_limit_with_empty_records() {
        for data in [&b""[..], b"x"] {
            let mut server = Records::from_keys(true, 64, updating_keys(2), updating_keys(1));
            let mut client = TestPeer { tls13: true, send: updating_keys(1), receive: updating_keys(2) };
            let (mut incoming, mut plaintext, mut outgoing) = (Vec::new(), Vec::new(), Vec::new());
            let mut accepted = 0;
            for _ in 0..=MAX_KEY_UPDATES_BETWEEN_DATA {
                incoming.extend(client.seal(ContentType::Handshake, &[24, 0, 0, 1, 0]));
                client.send.update().unwrap();
                incoming.extend(client.seal(ContentType::ApplicationData, data));
                if server.open(&mut incoming, &mut plaintext, &mut outgoing).is_err() {
                    break;
                }
                accepted += 1;
            }
            let expected = if data.is_empty() { MAX_KEY_UPDATES_BETWEEN_DATA } else { MAX_KEY_UPDATES_BETWEEN_DATA + 1 };
            assert_eq!(accepted, expected, "KeyUpdates accepted with {data:?} between them");
        }
    }

    /// The fuzz harness on inputs that reach its paths: data both ways with KeyUpdates, deliveries
    /// in pieces, parked keys, close_notify, and a few thousand pseudo-random inputs for each
    /// suite.
    #[test]
    fn fuzz_harness_inputs() {
        for suite in 0..6u8 {
            // Client data, a KeyUpdate with update_requested, more data in two deliveries,
            // server data (preceded by the server's KeyUpdate), keys released, more data both
            // ways, close_notify.
            let mut input = vec![suite, 0, 23, 3, b'a', b'b', b'c', 0, 22, 5, 24, 0, 0, 1, 1, 0, 23, 2, b'd', b'e'];
            input.extend_from_slice(&[2, 30, 2, 255, 3, 3, 4, 0, 0, 23, 1, b'f', 2, 255, 3, 1, 5, 0]);
            fuzz_session(&input);
        }

        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let mut input = Vec::new();
            let length = 1 + (state % 96) as usize;
            for _ in 0..length {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                input.push((state >> 24) as u8);
            }
            fuzz_session(&input);
        }
    }
}

