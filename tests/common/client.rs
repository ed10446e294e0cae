//! Clients for the tests: one connection over plain TCP or TLS (the rustls client over a std
//! `TcpStream`) that sends raw bytes and reads responses in order.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::cert::TestCert;
use super::response::{self, Response, ResponseError};

/// Maximum time to establish a TCP connection to the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Timeout of each socket read and write, so that no call blocks forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum time to read one whole response, across many reads.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Time [`Connection::is_closed_by_peer`] waits for the server to close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the server ended a connection, as seen by [`Connection::wait_for_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// End of file. Over TLS, rustls reports it only after the server's close_notify.
    EndOfFile,
    /// A read error that ends the stream, such as a reset or a TLS stream that ended without
    /// close_notify.
    Error(io::ErrorKind),
    /// Still open when the call returned: the time limit passed, or more than
    /// [`response::MAX_RESPONSE_BYTES`] arrived.
    Open,
}

/// The result of [`Connection::wait_for_end`].
#[derive(Debug)]
pub struct StreamEnd {
    pub kind: EndKind,
    /// Bytes the server sent before the end, including bytes buffered by earlier calls.
    pub received: Vec<u8>,
    /// Time from the call to the end, or to the return if the connection stayed open.
    pub elapsed: Duration,
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(stream) => &stream.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, output: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(output),
            Transport::Tls(stream) => stream.read(output),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, input: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.write(input),
            Transport::Tls(stream) => stream.write(input),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.flush(),
            Transport::Tls(stream) => stream.flush(),
        }
    }
}

/// One client connection to `127.0.0.1:PORT`, plain or TLS, with bytes received but not yet
/// parsed kept for the next response.
pub struct Connection {
    transport: Transport,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects over plain TCP.
    ///
    /// # Panics
    /// Panics if the connection fails within [`CONNECT_TIMEOUT`].
    pub fn plain(port: u16) -> Connection {
        Connection {
            transport: Transport::Plain(connect(port)),
            buffer: Vec::new(),
        }
    }

    /// Connects over plain TCP, or over TLS to `localhost` with `tls` as the client
    /// configuration (see [`TestCert::client_config`]).
    ///
    /// # Errors
    /// The connect error, for example when the server no longer listens.
    pub fn try_connect(port: u16, tls: Option<Arc<rustls::ClientConfig>>) -> io::Result<Connection> {
        let stream = try_connect(port)?;
        let transport = match tls {
            None => Transport::Plain(stream),
            Some(config) => {
                let name = match ServerName::try_from("localhost") {
                    Ok(name) => name,
                    Err(error) => panic!("invalid TLS server name: {error}"),
                };
                let session = match rustls::ClientConnection::new(config, name) {
                    Ok(session) => session,
                    Err(error) => panic!("failed to create a rustls client session: {error}"),
                };
                Transport::Tls(Box::new(rustls::StreamOwned::new(session, stream)))
            }
        };
        Ok(Connection { transport, buffer: Vec::new() })
    }

    /// Connects over TLS with SNI set to the certificate's first name, trusting only `cert`'s CA.
    /// The handshake runs on the first send or read; call [`Connection::handshake`] to run it
    /// now.
    ///
    /// # Panics
    /// Panics if the TCP connection fails within [`CONNECT_TIMEOUT`].
    pub fn https(port: u16, cert: &TestCert) -> Connection {
        let Some(name) = cert.names().first() else {
            panic!("the test certificate has no names");
        };
        Connection::https_with_name(port, cert, name)
    }

    /// Connects over TLS with SNI and certificate verification for `server_name` (a DNS name, or
    /// an IP address, for which rustls sends no SNI).
    ///
    /// # Panics
    /// Panics if `server_name` is invalid or the TCP connection fails.
    pub fn https_with_name(port: u16, cert: &TestCert, server_name: &str) -> Connection {
        Connection::https_with_config(port, cert.client_config(), server_name)
    }

    /// Connects over TLS with the given client configuration, for tests that change how the
    /// client speaks TLS (record size, versions, cipher suites).
    ///
    /// # Panics
    /// Panics if `server_name` is invalid or the TCP connection fails.
    pub fn https_with_config(
        port: u16,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Connection {
        let name = match ServerName::try_from(server_name.to_owned()) {
            Ok(name) => name,
            Err(error) => panic!("invalid TLS server name {server_name:?}: {error}"),
        };
        let session = match rustls::ClientConnection::new(config, name) {
            Ok(session) => session,
            Err(error) => panic!("failed to create a rustls client session: {error}"),
        };
        let stream = rustls::StreamOwned::new(session, connect(port));
        Connection {
            transport: Transport::Tls(Box::new(stream)),
            buffer: Vec::new(),
        }
    }

    /// Returns the client's own address, which the server logs as the peer.
    ///
    /// # Panics
    /// Panics if the socket has no local address.
    pub fn local_address(&self) -> SocketAddr {
        match self.transport.tcp().local_addr() {
            Ok(address) => address,
            Err(error) => panic!("failed to read the local address: {error}"),
        }
    }

    /// Takes the socket's pending error (SO_ERROR), such as a reset that arrived after an end of
    /// stream was read.
    ///
    /// # Panics
    /// Panics if the error cannot be read.
    pub fn take_socket_error(&self) -> Option<io::Error> {
        match self.transport.tcp().take_error() {
            Ok(error) => error,
            Err(error) => panic!("failed to read the socket error: {error}"),
        }
    }

    /// Completes the TLS handshake; does nothing on a plain connection.
    ///
    /// # Errors
    /// Returns the I/O or TLS error (wrapped in `io::Error` by rustls) if the handshake fails,
    /// for example because the server's certificate is not trusted.
    pub fn handshake(&mut self) -> io::Result<()> {
        let Transport::Tls(stream) = &mut self.transport else {
            return Ok(());
        };
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        while stream.conn.is_handshaking() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(())
    }

    /// Returns the ALPN protocol that the server selected, if any (after the handshake).
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        match &self.transport {
            Transport::Plain(_) => None,
            Transport::Tls(stream) => stream.conn.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    /// Writes all of `bytes`.
    ///
    /// # Errors
    /// Returns the write error, for example a reset when the server has already closed.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.transport.write_all(bytes)?;
        self.transport.flush()
    }

    /// Writes only the first `count` bytes of what `bytes` become on the wire: over TLS, part of
    /// the record that carries them.
    ///
    /// # Panics
    /// Panics if the write fails.
    pub fn send_prefix(&mut self, bytes: &[u8], count: usize) {
        let wire = self.wire_bytes(bytes);
        let prefix = wire.get(..count).unwrap_or(&wire);
        let mut socket = self.transport.tcp();
        socket.write_all(prefix).unwrap_or_else(|error| panic!("failed to send {count} bytes: {error}"));
    }

    /// Returns what `bytes` become on the wire: themselves, or the TLS record that carries them.
    fn wire_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        match &mut self.transport {
            Transport::Plain(_) => bytes.to_vec(),
            Transport::Tls(stream) => {
                let mut wire = Vec::new();
                let written = stream.conn.writer().write_all(bytes);
                written.unwrap_or_else(|error| panic!("rustls did not take the bytes: {error}"));
                while stream.conn.wants_write() {
                    let encrypted = stream.conn.write_tls(&mut wire);
                    encrypted.unwrap_or_else(|error| panic!("rustls did not encrypt: {error}"));
                }
                wire
            }
        }
    }

    /// Writes `bytes` in two writes with `pause` between them. Over TLS, `bytes` go into one
    /// record and the split falls inside it, so the server first receives part of a record.
    ///
    /// # Panics
    /// Panics if a write fails.
    pub fn send_split(&mut self, bytes: &[u8], pause: Duration) {
        let wire = self.wire_bytes(bytes);
        let (first, second) = wire.split_at(wire.len() / 2);
        let mut socket = self.transport.tcp();
        socket.write_all(first).unwrap_or_else(|error| panic!("failed to send the first part: {error}"));
        std::thread::sleep(pause);
        socket.write_all(second).unwrap_or_else(|error| panic!("failed to send the second part: {error}"));
    }

    /// Writes all of `bytes`.
    ///
    /// # Panics
    /// Panics if the write fails or takes longer than [`IO_TIMEOUT`] per call.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(error) = self.try_send(bytes) {
            panic!("failed to send {} bytes: {error}", bytes.len());
        }
    }

    /// Reads the next response. Set `head_request` when it is the response to a HEAD request.
    ///
    /// # Errors
    /// See [`response::read_response`].
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Response, ResponseError> {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        response::read_response(
            &mut self.transport,
            &mut self.buffer,
            head_request,
            deadline,
        )
    }

    /// Reads the next response to a request other than HEAD.
    ///
    /// # Panics
    /// Panics with the reason and any bytes received if no complete response arrives.
    pub fn read_response(&mut self) -> Response {
        match self.try_read_response(false) {
            Ok(response) => response,
            Err(error) => panic!("no response: {error}"),
        }
    }

    /// Reads the next response to a HEAD request, which has no body.
    ///
    /// # Panics
    /// Panics with the reason and any bytes received if no complete response arrives.
    pub fn read_head_response(&mut self) -> Response {
        match self.try_read_response(true) {
            Ok(response) => response,
            Err(error) => panic!("no response to HEAD: {error}"),
        }
    }

    /// Sends `raw` and reads one response, treating it as the response to HEAD when `raw` starts
    /// with `HEAD `.
    ///
    /// # Panics
    /// Panics if sending fails or no complete response arrives.
    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        if raw.starts_with(b"HEAD ") {
            self.read_head_response()
        } else {
            self.read_response()
        }
    }

    /// Waits up to [`CLOSE_TIMEOUT`] for the server to close the connection. Returns `true` on
    /// end of file or a reset, `false` if bytes arrive or the time passes. Bytes that arrive are
    /// kept for the next response.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        if let Err(error) = self.transport.tcp().set_read_timeout(Some(CLOSE_TIMEOUT)) {
            panic!("failed to set the read timeout: {error}");
        }
        let mut chunk = [0u8; 4096];
        let closed = loop {
            match self.transport.read(&mut chunk) {
                Ok(0) => break true,
                Ok(count) => {
                    self.buffer.extend_from_slice(&chunk[..count]);
                    break false;
                }
                Err(error) if response::is_closed(&error) => break true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if response::is_timeout(&error) => break false,
                // A TLS alert or protocol error also ends the connection.
                Err(error) if error.kind() == io::ErrorKind::InvalidData => break true,
                Err(error) => panic!("read failed while waiting for the server to close: {error}"),
            }
            if Instant::now() >= deadline {
                break false;
            }
        };
        let _ = self.transport.tcp().set_read_timeout(Some(IO_TIMEOUT));
        closed
    }

    /// Reads until the server closes the connection or [`CLOSE_TIMEOUT`] passes and returns every
    /// byte received, including bytes buffered by earlier calls.
    pub fn read_until_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut chunk = vec![0u8; 64 * 1024];
        while Instant::now() < deadline && self.buffer.len() <= response::MAX_RESPONSE_BYTES {
            match self.transport.read(&mut chunk) {
                Ok(0) => break,
                Ok(count) => self.buffer.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    eprintln!("read_until_close stopped: {error}");
                    break;
                }
            }
        }
        std::mem::take(&mut self.buffer)
    }

    /// Reads until the server ends the connection or `limit` passes, and reports how it ended.
    /// Unlike [`Connection::is_closed_by_peer`], it distinguishes an end of file from a reset, and
    /// it keeps reading past bytes that arrive first.
    ///
    /// # Panics
    /// Panics if the socket's read timeout cannot be set.
    pub fn wait_for_end(&mut self, limit: Duration) -> StreamEnd {
        let started = Instant::now();
        let deadline = started + limit;
        let mut received = std::mem::take(&mut self.buffer);
        let mut chunk = [0u8; 4096];
        let kind = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || received.len() > response::MAX_RESPONSE_BYTES {
                break EndKind::Open;
            }
            self.set_read_timeout(left);
            match self.transport.read(&mut chunk) {
                Ok(0) => break EndKind::EndOfFile,
                Ok(count) => received.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if response::is_timeout(&error) => {}
                Err(error) => break EndKind::Error(error.kind()),
            }
        };
        let elapsed = started.elapsed();
        self.set_read_timeout(IO_TIMEOUT);
        StreamEnd {
            kind,
            received,
            elapsed,
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        // A zero timeout is an error for `set_read_timeout`.
        let timeout = timeout.max(Duration::from_millis(1));
        if let Err(error) = self.transport.tcp().set_read_timeout(Some(timeout)) {
            panic!("failed to set the read timeout: {error}");
        }
    }

    /// Reads exactly `count` bytes (after any already buffered) within [`IO_TIMEOUT`] per read.
    ///
    /// # Panics
    /// Panics if the connection closes or times out first.
    pub fn read_bytes(&mut self, count: usize) -> Vec<u8> {
        let mut chunk = vec![0u8; 16 * 1024];
        while self.buffer.len() < count {
            match self.transport.read(&mut chunk) {
                Ok(0) => panic!("connection closed after {} of {count} bytes", self.buffer.len()),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => panic!("read failed after {} of {count} bytes: {error}", self.buffer.len()),
            }
        }
        self.buffer.drain(..count).collect()
    }

    /// Sends `bytes` and then TLS close_notify in one write, so the server reads both at once.
    /// The handshake must be complete: rustls sends close_notify at once but keeps data back until then.
    ///
    /// # Panics
    /// Panics on a plain connection, or if the write fails.
    pub fn send_with_close_notify(&mut self, bytes: &[u8]) {
        self.send_with_raw_after(bytes, true, &[]);
    }

    /// Sends `bytes` as TLS records, close_notify when `close_notify` is set, and then `raw` as
    /// it is, in one write, so the server reads them at once. The handshake must be complete,
    /// as for [`Connection::send_with_close_notify`].
    ///
    /// # Panics
    /// Panics on a plain connection, or if the write fails.
    pub fn send_with_raw_after(&mut self, bytes: &[u8], close_notify: bool, raw: &[u8]) {
        let Transport::Tls(stream) = &mut self.transport else { panic!("records need a TLS connection") };
        if let Err(error) = stream.conn.writer().write_all(bytes) {
            panic!("failed to queue {} bytes: {error}", bytes.len());
        }
        if close_notify {
            stream.conn.send_close_notify();
        }
        let mut records = queued_records(&mut stream.conn);
        records.extend_from_slice(raw);
        if let Err(error) = stream.sock.write_all(&records) {
            panic!("failed to send {} bytes: {error}", records.len());
        }
    }

    /// Reads the TLS records the server sends until it closes the connection, and opens them one
    /// at a time, as a TLS library that reads one record per call does. (rustls's stream reports
    /// an alert before the plaintext of records that arrived in the same read.) Returns the
    /// plaintext of the records before the first one that ended the session, and that record's
    /// error.
    ///
    /// # Panics
    /// Panics on a plain connection, or if the server sends part of a record.
    pub fn open_records_until_close(&mut self) -> (Vec<u8>, Option<rustls::Error>) {
        let Transport::Tls(stream) = &mut self.transport else { panic!("records need a TLS connection") };
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        while Instant::now() < deadline {
            match stream.sock.read(&mut chunk) {
                Ok(0) => break,
                Ok(count) => raw.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if response::is_timeout(&error) => panic!("still open {IO_TIMEOUT:?} after the last of {} bytes of records", raw.len()),
                Err(error) => panic!("read failed after {} bytes of records: {error}", raw.len()),
            }
        }
        let mut plaintext = std::mem::take(&mut self.buffer);
        let mut rest = &raw[..];
        while !rest.is_empty() {
            assert!(rest.len() >= 5, "the server sent part of a record header");
            let length = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            assert!(rest.len() >= length, "the server sent part of a record");
            let (mut record, after) = rest.split_at(length);
            rest = after;
            // rustls takes a long record in several calls.
            while !record.is_empty() {
                if let Err(error) = stream.conn.read_tls(&mut record) {
                    panic!("rustls did not take a record: {error}");
                }
            }
            if let Err(error) = stream.conn.process_new_packets() {
                return (plaintext, Some(error));
            }
            // Ends with WouldBlock once the record's plaintext is taken.
            let _ = stream.conn.reader().read_to_end(&mut plaintext);
        }
        (plaintext, None)
    }

    /// Sends a TLS 1.3 KeyUpdate record and nothing else: a record without request bytes. With
    /// `split`, the record goes out in two writes that far apart, the first of 3 bytes.
    ///
    /// # Panics
    /// Panics on a plain connection, if rustls cannot update its keys, or if a write fails.
    pub fn send_key_update(&mut self, split: Option<Duration>) {
        let Transport::Tls(stream) = &mut self.transport else { panic!("a key update needs a TLS connection") };
        if let Err(error) = stream.conn.refresh_traffic_keys() {
            panic!("rustls did not update its keys: {error}");
        }
        let records = queued_records(&mut stream.conn);
        assert!(!records.is_empty(), "rustls encoded no key update");
        let (first, second) = match split {
            Some(_) => records.split_at(3),
            None => (&records[..], &[][..]),
        };
        if let Err(error) = stream.sock.write_all(first) {
            panic!("failed to send {} bytes of records: {error}", first.len());
        }
        if let Some(pause) = split {
            std::thread::sleep(pause);
            if let Err(error) = stream.sock.write_all(second) {
                panic!("failed to send the last {} bytes of the record: {error}", second.len());
            }
        }
    }

    /// Closes the sending half of the TCP connection, so the server reads end of file.
    pub fn shutdown_write(&self) {
        let _ = self.transport.tcp().shutdown(std::net::Shutdown::Write);
    }
}

/// Returns the records rustls has queued to send.
///
/// # Panics
/// Panics if rustls cannot encode them.
fn queued_records(conn: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut records = Vec::new();
    while conn.wants_write() {
        if let Err(error) = conn.write_tls(&mut records) {
            panic!("failed to encode the records: {error}");
        }
    }
    records
}

/// Returns a TLS application data record whose tag cannot match, for the server to reject
/// with bad_record_mac.
pub fn forged_record() -> Vec<u8> {
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    record.extend_from_slice(&[0xAB; 0x20]);
    record
}

fn connect(port: u16) -> TcpStream {
    match try_connect(port) {
        Ok(stream) => stream,
        Err(error) => panic!("failed to connect to port {port}: {error}"),
    }
}

/// Connects to `127.0.0.1:port` with the harness's timeouts and `TCP_NODELAY`.
fn try_connect(port: u16) -> io::Result<TcpStream> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `raw` over a new TLS connection to `port`, trusting `cert`, and returns the one response.
///
/// # Panics
/// Panics if the connection, the handshake, the send or the read fails.
pub fn https_request(port: u16, cert: &TestCert, raw_request: &[u8]) -> Response {
    Connection::https(port, cert).request(raw_request)
}

/// Sends `raw` over a new plain TCP connection to `port` and returns the one response.
///
/// # Panics
/// Panics if the connection, the send or the read fails.
pub fn plain_request(port: u16, raw: &[u8]) -> Response {
    Connection::plain(port).request(raw)
}

/// Sends `raw` over a new plain TCP connection and returns every byte the server sends until it
/// closes the connection or [`CLOSE_TIMEOUT`] passes. For input that may not get a well-formed
/// response at all.
///
/// # Panics
/// Panics if the connection fails.
pub fn raw_exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut connection = Connection::plain(port);
    // The server may close before reading everything, which is a valid reaction to bad input.
    let _ = connection.try_send(raw);
    connection.read_until_close()
}
