//! Raw TCP clients that misbehave on purpose: they send a byte at a time, stop reading, or keep
//! a tiny receive window. Each call waits a bounded time for the server to respond or close.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::client::{CONNECT_TIMEOUT, IO_TIMEOUT};
use super::response::{self, Parsed, Response};

/// Bytes of the server's output that an [`Ending`] keeps; the rest is only counted.
pub const KEPT_BYTES: usize = 64 * 1024;

/// Maximum duration of one read inside [`wait_for_close`], so the deadline is checked often.
const READ_STEP: Duration = Duration::from_millis(50);

/// How a raw connection ended from the client's side.
#[derive(Debug)]
pub struct Ending {
    /// The first [`KEPT_BYTES`] bytes the server sent.
    pub received: Vec<u8>,
    /// Every byte the server sent, including those not kept.
    pub received_count: usize,
    /// Whether the server closed the connection (end of file or reset) within the time limit.
    pub closed: bool,
    /// Time from the start of the call to the close, or to the time limit.
    pub elapsed: Duration,
}

impl Ending {
    /// Parses the kept bytes as one response, or returns `None` if they are not a complete
    /// one.
    pub fn response(&self) -> Option<Response> {
        match response::parse_response(&self.received, false, true) {
            Ok(Parsed::Complete(response, _)) => Some(response),
            _ => None,
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = KEPT_BYTES.saturating_sub(self.received.len());
        self.received
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.received_count += bytes.len();
    }
}

/// Connects to `127.0.0.1:port` over plain TCP with Nagle's algorithm off, so that each
/// one-byte write leaves at once.
///
/// # Panics
/// Panics if the connection fails within [`CONNECT_TIMEOUT`].
pub fn connect(port: u16) -> TcpStream {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
        Ok(stream) => stream,
        Err(error) => panic!("failed to connect to {address}: {error}"),
    };
    configure(&stream, address);
    stream
}

/// Connects like [`connect`] with `SO_RCVBUF` set to `bytes` before the handshake, so the
/// advertised window stays small and a client that stops reading stalls the server's writes
/// after little data. Linux doubles the value and enforces a minimum of a few KiB.
///
/// # Panics
/// Panics if the socket cannot be created, configured or connected.
pub fn connect_with_receive_buffer(port: u16, bytes: usize) -> TcpStream {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let socket = match Socket::new(Domain::IPV4, Type::STREAM, None) {
        Ok(socket) => socket,
        Err(error) => panic!("failed to create a TCP socket: {error}"),
    };
    if let Err(error) = socket.set_recv_buffer_size(bytes) {
        panic!("failed to set SO_RCVBUF to {bytes}: {error}");
    }
    if let Err(error) = socket.connect_timeout(&address.into(), CONNECT_TIMEOUT) {
        panic!("failed to connect to {address}: {error}");
    }
    let stream = TcpStream::from(socket);
    configure(&stream, address);
    stream
}

fn configure(stream: &TcpStream, address: SocketAddr) {
    let configured = stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| stream.set_nodelay(true));
    if let Err(error) = configured {
        panic!("failed to configure the connection to {address}: {error}");
    }
}

/// Reads until the server closes the connection or `limit` passes, keeping what arrives.
pub fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> Ending {
    let started = Instant::now();
    let mut ending = Ending {
        received: Vec::new(),
        received_count: 0,
        closed: false,
        elapsed: Duration::ZERO,
    };
    read_until_close(stream, started, started + limit, &mut ending);
    ending
}

/// Sends `bytes` one at a time, `interval` apart, reading between sends. Stops sending when the
/// server sends anything, closes, or a write fails, then reads until the server closes or
/// `limit` (counted from the call) passes.
///
/// # Panics
/// Panics if the read timeout cannot be set.
pub fn trickle(
    stream: &mut TcpStream,
    bytes: &[u8],
    interval: Duration,
    limit: Duration,
) -> Ending {
    let started = Instant::now();
    let deadline = started + limit;
    let mut ending = Ending {
        received: Vec::new(),
        received_count: 0,
        closed: false,
        elapsed: Duration::ZERO,
    };
    let mut chunk = [0u8; 4096];

    for byte in bytes {
        if Instant::now() >= deadline {
            break;
        }
        // A reset while writing means the server has already closed.
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            break;
        }
        set_read_timeout(stream, interval);
        match stream.read(&mut chunk) {
            Ok(0) => {
                ending.closed = true;
                ending.elapsed = started.elapsed();
                return ending;
            }
            Ok(count) => {
                ending.keep(&chunk[..count]);
                break;
            }
            Err(error) if response::is_timeout(&error) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                ending.closed = true;
                ending.elapsed = started.elapsed();
                return ending;
            }
        }
    }

    read_until_close(stream, started, deadline, &mut ending);
    ending
}

fn read_until_close(
    stream: &mut TcpStream,
    started: Instant,
    deadline: Instant,
    ending: &mut Ending,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            ending.elapsed = now.duration_since(started);
            return;
        }
        set_read_timeout(stream, deadline.duration_since(now).min(READ_STEP));
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => ending.keep(&chunk[..count]),
            Err(error) if response::is_timeout(&error) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    ending.closed = true;
    ending.elapsed = started.elapsed();
}

fn set_read_timeout(stream: &TcpStream, timeout: Duration) {
    // A zero timeout is an error for `set_read_timeout`.
    let timeout = timeout.max(Duration::from_millis(1));
    if let Err(error) = stream.set_read_timeout(Some(timeout)) {
        panic!("failed to set the read timeout: {error}");
    }
}
