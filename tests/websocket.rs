//! WebSocket through the proxy: the handshake reaches Gunicorn (a threaded worker running
//! flask-sock), its 101 reaches the client, and frames then flow both ways over HTTPS and plain
//! HTTP until the client closes, or until `upstream.upgrade_idle_timeout` passes with neither side
//! sending.
//!
//! The idle tests use a timeout of one second, so each finishes in a few seconds. Their lower
//! bounds on elapsed time need no tolerance because the client starts its clock before it sends
//! what restarts ringfront's idle clock. Their upper bounds allow [`SLACK`] for a machine busy
//! with other tests.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::client::EndKind;
use common::process::POLL_INTERVAL;
use common::response;
use common::{Config, Connection, Gunicorn, Ringfront, TempDir, TestCert, slow};

/// The sample key of RFC 6455 §1.3 and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

struct Fixture {
    ringfront: Ringfront,
    cert: TestCert,
    _gunicorn: Gunicorn,
}

fn start() -> Fixture {
    start_with(Config::new())
}

/// Starts Gunicorn, then ringfront with `config` plus an HTTPS and a plain HTTP listener in front
/// of it.
fn start_with(config: Config) -> Fixture {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = config.https(&cert).http().upstream(&gunicorn).start();
    Fixture { ringfront, cert, _gunicorn: gunicorn }
}

fn handshake() -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A client frame (RFC 6455 §5.2): FIN set, masked as clients must, payload under 126 bytes.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(index, byte)| byte ^ mask[index % 4]));
    frame
}

/// Sends the handshake on `connection` and checks the 101 that switches it to WebSocket.
fn switch_protocols(connection: &mut Connection) {
    connection.send(&handshake());
    let switching = connection.read_head_response();
    assert_eq!(switching.status, 101);
    assert_eq!(switching.header("sec-websocket-accept"), Some(ACCEPT));
    assert!(switching.header_has_token("connection", "upgrade"));
    assert_eq!(switching.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
}

/// Sends `message` in a text frame and checks that the app echoes it in an unmasked text frame.
fn assert_echoed(connection: &mut Connection, message: &[u8]) {
    connection.send(&client_frame(0x1, message));
    let echo = connection.read_bytes(2 + message.len());
    assert_eq!(echo[..2], [0x81, message.len() as u8]);
    assert_eq!(&echo[2..], message);
}

/// Runs the handshake on `connection`, then sends text messages one at a time, each echoed
/// before the next, and a close; returns the close frame the server sent back.
fn echo_session(mut connection: Connection) -> Vec<u8> {
    switch_protocols(&mut connection);
    for message in [&b"hello"[..], b"again", &[b'x'; 100]] {
        assert_echoed(&mut connection, message);
    }
    connection.send(&client_frame(0x8, &[0x03, 0xe8]));
    connection.read_until_close()
}

/// A server close frame with status 1000 (RFC 6455 §5.5.1).
const CLOSE_FRAME: [u8; 4] = [0x88, 0x02, 0x03, 0xe8];

/// simple-websocket 1.1 (flask-sock's engine) sometimes closes the socket without answering a
/// close frame, also when a client talks to Gunicorn directly, so either ending is accepted.
fn assert_clean_end(received: &[u8]) {
    assert!(received.is_empty() || received == CLOSE_FRAME, "unexpected bytes after close: {received:?}");
}

#[test]
fn websocket_echo_over_tls() {
    let fixture = start();
    let received = echo_session(Connection::https(fixture.ringfront.https_port(), &fixture.cert));
    assert_clean_end(&received);
}

/// A last frame and close_notify that arrive in one read: the frame reaches the app and the relay
/// ends at once, as when close_notify comes alone, not after `upgrade_idle_timeout`.
#[test]
fn websocket_close_notify_with_last_frame() {
    let fixture = start_with(Config::new().upstream_setting("upgrade_idle_timeout", "\"30s\""));
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    switch_protocols(&mut connection);
    assert_echoed(&mut connection, b"hello");
    connection.send_with_close_notify(&client_frame(0x1, b"bye"));
    let end = connection.wait_for_end(Duration::from_secs(10));
    assert_eq!(end.kind, EndKind::EndOfFile, "{end:?}");
    assert!(end.elapsed < Duration::from_secs(5), "the relay ended after {:?}", end.elapsed);
}

/// The same when close_notify comes with the upgrade request and a first frame, before the relay
/// begins.
#[test]
fn websocket_close_notify_with_upgrade() {
    let fixture = start_with(Config::new().upstream_setting("upgrade_idle_timeout", "\"30s\""));
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    connection.handshake().expect("a TLS handshake");
    connection.send_with_close_notify(&[handshake(), client_frame(0x1, b"bye")].concat());
    assert_eq!(connection.read_head_response().status, 101);
    let end = connection.wait_for_end(Duration::from_secs(10));
    assert_eq!(end.kind, EndKind::EndOfFile, "{end:?}");
    assert!(end.elapsed < Duration::from_secs(5), "the relay ended after {:?}", end.elapsed);
}

/// A frame and a record that fails to decrypt in one read: the frame reaches the app, and the
/// relay ends at once with the record's alert, not after `upgrade_idle_timeout`.
#[test]
fn websocket_bad_record_after_frame() {
    let fixture = start_with(Config::new().upstream_setting("upgrade_idle_timeout", "\"30s\""));
    // (whether the upgrade request comes in the same write as the frame and the record)
    for with_upgrade in [false, true] {
        let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
        let mut frames = client_frame(0x1, b"bye");
        if with_upgrade {
            // A whole exchange first, so that the records read below start at a record boundary.
            assert_eq!(connection.request(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
            frames = [handshake(), frames].concat();
        } else {
            switch_protocols(&mut connection);
            assert_echoed(&mut connection, b"hello");
        }
        let started = Instant::now();
        connection.send_with_raw_after(&frames, false, &common::client::forged_record());
        let (plaintext, error) = connection.open_records_until_close();
        assert!(started.elapsed() < Duration::from_secs(5), "with the upgrade {with_upgrade}: ended after {:?}", started.elapsed());
        assert!(
            matches!(error, Some(rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac))),
            "with the upgrade {with_upgrade}: {error:?}"
        );
        if with_upgrade {
            assert!(plaintext.starts_with(b"HTTP/1.1 101 "), "{:?}", String::from_utf8_lossy(&plaintext));
        }
    }
}

#[test]
fn websocket_echo_over_plain() {
    let fixture = start();
    let received = echo_session(Connection::plain(fixture.ringfront.http_port()));
    assert_clean_end(&received);
}

/// The application rejects an upgrade request for a route without WebSocket support with its
/// own 400, which reaches the client in place of ringfront's 502.
/// RFC 9110 §7.8: a server ignores Upgrade in an HTTP/1.0 request. The request reaches the app
/// as an ordinary GET, and the client gets its response, never a 101.
#[test]
fn http10_upgrade_ignored() {
    let fixture = start();
    let request = format!(
        "GET /ws HTTP/1.0\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let response = common::plain_request(fixture.ringfront.http_port(), request.as_bytes());
    assert_ne!(response.status, 101);
    assert!(response.header("upgrade").is_none(), "{:?}", response.headers);
}

#[test]
fn upgrade_declined_is_relayed() {
    let fixture = start();
    let mut connection = Connection::plain(fixture.ringfront.http_port());
    connection.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    let response = connection.read_response();
    assert_eq!(response.status, 400);
    // Werkzeug's page, not ringfront's, which has "<h1>400 Bad Request</h1>".
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.contains("<h1>Bad Request</h1>"), "{body}");
}

/// `upstream.upgrade_idle_timeout` in the idle tests.
const UPGRADE_IDLE: Duration = Duration::from_secs(1);

/// Time past the idle timeout within which ringfront must have closed the relay.
const SLACK: Duration = Duration::from_secs(3);

/// Pause between two frames of a busy session: a fifth of [`UPGRADE_IDLE`], so that a loaded
/// machine does not stretch a gap to the timeout.
const FRAME_INTERVAL: Duration = Duration::from_millis(200);

/// Number of frames a busy session sends, [`FRAME_INTERVAL`] apart, which span more than twice
/// [`UPGRADE_IDLE`].
const BUSY_FRAMES: usize = 13;

/// Maximum wait for an access log line: ringfront writes its buffered lines once a second, and
/// the rest is margin for a busy machine.
const LOG_WAIT: Duration = Duration::from_secs(4);

fn start_idle() -> Fixture {
    let timeout = format!("\"{}ms\"", UPGRADE_IDLE.as_millis());
    start_with(Config::new().upstream_setting("upgrade_idle_timeout", &timeout))
}

/// Waits up to [`LOG_WAIT`] for a line of ringfront's output that contains `needle` and returns
/// it.
fn wait_for_log_line(ringfront: &Ringfront, needle: &str) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let output = ringfront.output();
        if let Some(line) = output.lines().find(|line| line.contains(needle)) {
            return line.to_owned();
        }
        if Instant::now() >= deadline {
            panic!("no output line contains {needle:?} after {LOG_WAIT:?}:\n{output}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Returns the request time in seconds, the last field of an access log line.
fn request_seconds(line: &str) -> f64 {
    let field = line.rsplit(' ').next().unwrap_or_default();
    match field.parse() {
        Ok(seconds) => seconds,
        Err(error) => panic!("invalid request time {field:?} in {line:?}: {error}"),
    }
}

/// Opens a WebSocket on `connection` and sends nothing. Ringfront must end the stream after the
/// idle timeout without sending a byte, because it relays frames and never makes one. It must
/// also log the request as a 101 that lasted at least the timeout, with no bytes relayed, and
/// with the time the relay ended, as nginx logs the time a request ends.
fn assert_idle_session_closed(ringfront: &Ringfront, mut connection: Connection) {
    let opened_second = unix_second(std::time::SystemTime::now());
    let opened = Instant::now();
    switch_protocols(&mut connection);
    let switched_after = opened.elapsed();

    let end = connection.wait_for_end(UPGRADE_IDLE + SLACK);
    let lifetime = switched_after + end.elapsed;

    assert_eq!(end.kind, EndKind::EndOfFile, "ended after {lifetime:?}");
    assert!(
        end.received.is_empty(),
        "bytes before the end: {:?}",
        end.received
    );
    assert!(
        lifetime >= UPGRADE_IDLE,
        "closed after {lifetime:?}, before the {UPGRADE_IDLE:?} timeout"
    );
    assert!(lifetime < UPGRADE_IDLE + SLACK, "closed after {lifetime:?}");

    let line = wait_for_log_line(ringfront, "\"GET /ws HTTP/1.1\" 101 0 ");
    let logged = request_seconds(&line);
    assert!(
        logged >= UPGRADE_IDLE.as_secs_f64(),
        "request time {logged} s in {line:?}"
    );
    let date = line.split(['[', ']']).nth(1).unwrap_or_default();
    let logged_at = match httpdate::parse_http_date(date) {
        Ok(time) => unix_second(time),
        Err(error) => panic!("invalid date {date:?} in {line:?}: {error}"),
    };
    assert!(
        logged_at >= opened_second + UPGRADE_IDLE.as_secs(),
        "logged at {date}, less than the timeout after the session opened"
    );
}

fn unix_second(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[test]
fn websocket_idle_closed_over_plain() {
    let fixture = start_idle();
    let connection = Connection::plain(fixture.ringfront.http_port());
    assert_idle_session_closed(&fixture.ringfront, connection);
}

/// Over TLS, an end of file reaches the client only after ringfront's close_notify.
#[test]
fn websocket_idle_closed_over_tls() {
    let fixture = start_idle();
    let connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    assert_idle_session_closed(&fixture.ringfront, connection);
}

/// Exchanges a text message every [`FRAME_INTERVAL`] for more than twice the idle timeout, and
/// each is echoed. Once the client stops, the relay closes no earlier than the timeout after the
/// last message, so each exchange restarted the idle clock.
fn assert_traffic_resets_idle(mut connection: Connection) {
    switch_protocols(&mut connection);
    let started = Instant::now();
    let mut last_sent = started;
    for index in 0..BUSY_FRAMES {
        thread::sleep(FRAME_INTERVAL);
        last_sent = Instant::now();
        assert_echoed(&mut connection, format!("message {index}").as_bytes());
    }
    let busy_for = started.elapsed();
    assert!(busy_for > 2 * UPGRADE_IDLE, "busy for only {busy_for:?}");

    let waited_before = last_sent.elapsed();
    let end = connection.wait_for_end(UPGRADE_IDLE + SLACK);
    let quiet_for = waited_before + end.elapsed;
    assert_eq!(
        end.kind,
        EndKind::EndOfFile,
        "ended {quiet_for:?} after the last message"
    );
    assert!(
        end.received.is_empty(),
        "bytes before the end: {:?}",
        end.received
    );
    assert!(
        quiet_for >= UPGRADE_IDLE,
        "closed {quiet_for:?} after the last message"
    );
    assert!(
        quiet_for < UPGRADE_IDLE + SLACK,
        "closed {quiet_for:?} after the last message"
    );
}

#[test]
fn websocket_traffic_resets_idle_over_plain() {
    let fixture = start_idle();
    assert_traffic_resets_idle(Connection::plain(fixture.ringfront.http_port()));
}

#[test]
fn websocket_traffic_resets_idle_over_tls() {
    let fixture = start_idle();
    assert_traffic_resets_idle(Connection::https(
        fixture.ringfront.https_port(),
        &fixture.cert,
    ));
}

/// The timeout needs silence both ways. The client alone sends unsolicited pongs for more than
/// twice the timeout, and the app sends nothing back (RFC 6455 §5.5.3: a pong may serve as a
/// one-way heartbeat and gets no response). The relay stays open and still echoes a message.
#[test]
fn websocket_client_pongs_reset_idle() {
    let fixture = start_idle();
    let mut connection = Connection::plain(fixture.ringfront.http_port());
    switch_protocols(&mut connection);

    let started = Instant::now();
    for index in 0..BUSY_FRAMES {
        thread::sleep(FRAME_INTERVAL);
        connection.send(&client_frame(0xA, format!("beat {index}").as_bytes()));
    }
    let busy_for = started.elapsed();
    assert!(busy_for > 2 * UPGRADE_IDLE, "busy for only {busy_for:?}");

    assert_echoed(&mut connection, b"still open");
}

/// Maximum bytes each side writes into a relay that it never reads from. Ringfront's socket
/// buffers fill after a few MiB on loopback, so the writes block long before this.
const FLOOD_LIMIT: usize = 64 * 1024 * 1024;

/// Timeout of each write into a full relay. A write that times out shows the buffers are full.
const FLOOD_WRITE_TIMEOUT: Duration = Duration::from_millis(300);

/// Maximum time the stalled upstream waits for ringfront's connection, and then keeps it open.
const STALL_LIMIT: Duration = Duration::from_secs(15);

/// The stalled upstream's response to the upgrade request.
const STALLED_SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

/// An upstream on a Unix socket that responds to one upgrade request with a 101, then writes
/// until its writes block and never reads again. It keeps the connection open until it is
/// dropped, so ringfront gets neither an end of file nor a write error from it.
struct StalledUpstream {
    _dir: TempDir,
    socket: PathBuf,
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StalledUpstream {
    fn start() -> StalledUpstream {
        let dir = TempDir::new("stall");
        let socket = dir.join("upstream.sock");
        let listener = common::process::bind_polled_unix_listener(&socket);

        let (release, released) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Some(stream) = accept_within(&listener, STALL_LIMIT) {
                let _ = switch_and_flood(&stream);
                // Keeps the connection open, without reading, until the test drops the sender.
                let _ = released.recv_timeout(STALL_LIMIT);
            }
        });
        StalledUpstream {
            _dir: dir,
            socket,
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for StalledUpstream {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_within(listener: &UnixListener, limit: Duration) -> Option<UnixStream> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
    None
}

/// Reads the request head, responds with [`STALLED_SWITCH`] and floods the connection.
fn switch_and_flood(mut stream: &UnixStream) -> io::Result<()> {
    if !switch_protocols_upstream(stream)? {
        return Ok(());
    }
    stream.set_write_timeout(Some(FLOOD_WRITE_TIMEOUT))?;
    flood(&mut stream);
    Ok(())
}

/// Reads the request head on a test upstream's `stream` and responds with [`STALLED_SWITCH`].
/// Returns `false` when the head did not arrive whole.
fn switch_protocols_upstream(mut stream: &UnixStream) -> io::Result<bool> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STALL_LIMIT))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !common::contains_bytes(&head, b"\r\n\r\n") {
        let count = stream.read(&mut chunk)?;
        if count == 0 || head.len() > 64 * 1024 {
            return Ok(false);
        }
        head.extend_from_slice(&chunk[..count]);
    }
    stream.write_all(STALLED_SWITCH)?;
    Ok(true)
}

/// Writes to `writer` until a write fails or times out, at most [`FLOOD_LIMIT`] bytes. Returns
/// whether a write failed before the limit, which means the peer's buffers are full.
fn flood(writer: &mut impl Write) -> bool {
    let block = [0x5a; 64 * 1024];
    let mut written = 0;
    while written < FLOOD_LIMIT {
        match writer.write(&block) {
            Ok(count) => written += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

/// Waits up to `limit` for ringfront to drop `stream` without reading from or writing to it: a
/// read would let ringfront's blocked write proceed, and a write that ringfront reads counts as
/// traffic. Ringfront's close sends a reset, because the client's bytes are still unread, and
/// the socket then reports the error. Returns the time to the close, or `None` if it stayed open.
fn wait_for_reset_without_reading(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        match stream.take_error() {
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Ok(Some(_)) | Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Starts one worker with a plain listener in front of the test upstream at `socket`, with the
/// idle timeout of the idle tests.
fn start_relay_to(socket: &std::path::Path) -> Ringfront {
    let timeout = format!("\"{}ms\"", UPGRADE_IDLE.as_millis());
    Config::new()
        .workers(1)
        .http()
        .upstream_socket(socket)
        .upstream_setting("upgrade_idle_timeout", &timeout)
        .start()
}

/// Both peers write into the relay and neither reads, so ringfront blocks writing each way and
/// no byte moves in either direction. The idle timeout must still end the relay.
#[test]
fn websocket_blocked_writes_idle_closed() {
    let upstream = StalledUpstream::start();
    let ringfront = start_relay_to(&upstream.socket);

    let mut stream = slow::connect_with_receive_buffer(ringfront.http_port(), 4096);
    if let Err(error) = stream.write_all(&handshake()) {
        panic!("failed to send the handshake: {error}");
    }
    let mut buffer = Vec::new();
    let deadline = Instant::now() + SLACK;
    let switching = match response::read_response(&mut stream, &mut buffer, true, deadline) {
        Ok(switching) => switching,
        Err(error) => panic!("no 101: {error}"),
    };
    assert_eq!(switching.status, 101);

    let flood_started = Instant::now();
    if let Err(error) = stream.set_write_timeout(Some(FLOOD_WRITE_TIMEOUT)) {
        panic!("failed to set the write timeout: {error}");
    }
    let blocked = flood(&mut stream);
    let blocked_after = flood_started.elapsed();
    assert!(
        blocked,
        "ringfront took {FLOOD_LIMIT} bytes without blocking"
    );

    let limit = UPGRADE_IDLE + SLACK;
    let Some(closed_after) = wait_for_reset_without_reading(&mut stream, limit) else {
        panic!("relay still open {limit:?} after both directions blocked");
    };
    let lifetime = blocked_after + closed_after;
    assert!(
        lifetime >= UPGRADE_IDLE,
        "closed {lifetime:?} after the flood began"
    );
}

/// Bytes the sending upstream relays to the slow reader: more than loopback socket buffers hold,
/// so ringfront's write to the client waits on the client's reads.
const SLOW_READ_TOTAL: usize = 16 * 1024 * 1024;

/// The slow reader's pace: [`SLOW_READ_PIECE`] bytes every [`SLOW_READ_PAUSE`], about 200 KB/s,
/// for [`SLOW_READ_TIME`], three times the idle timeout.
const SLOW_READ_PIECE: usize = 20 * 1024;
const SLOW_READ_PAUSE: Duration = Duration::from_millis(100);
const SLOW_READ_TIME: Duration = Duration::from_secs(3);

/// An upstream on a Unix socket that responds to one upgrade request with a 101, then writes
/// each of its parts after the pause given with it, and closes.
struct SendingUpstream {
    _dir: TempDir,
    socket: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl SendingUpstream {
    fn start(parts: Vec<(Duration, Vec<u8>)>) -> SendingUpstream {
        let dir = TempDir::new("sending");
        let socket = dir.join("upstream.sock");
        let listener = common::process::bind_polled_unix_listener(&socket);
        let thread = thread::spawn(move || {
            if let Some(mut stream) = accept_within(&listener, STALL_LIMIT) {
                let switched = switch_protocols_upstream(&stream).unwrap_or(false);
                if !switched || stream.set_write_timeout(Some(STALL_LIMIT)).is_err() {
                    return;
                }
                for (pause, bytes) in parts {
                    thread::sleep(pause);
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
            }
        });
        SendingUpstream { _dir: dir, socket, thread: Some(thread) }
    }
}

impl Drop for SendingUpstream {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens a plain connection to `ringfront`, sends the upgrade request and checks its 101.
/// Returns the connection and the relayed bytes that arrived with the 101.
fn open_relayed(ringfront: &Ringfront) -> (TcpStream, Vec<u8>) {
    let mut stream = slow::connect(ringfront.http_port());
    if let Err(error) = stream.write_all(&handshake()) {
        panic!("failed to send the handshake: {error}");
    }
    let mut received = Vec::new();
    let switching = match response::read_response(&mut stream, &mut received, true, Instant::now() + SLACK) {
        Ok(switching) => switching,
        Err(error) => panic!("no 101: {error}"),
    };
    assert_eq!(switching.status, 101);
    (stream, received)
}

/// A client that reads slowly but steadily keeps the relay open, although ringfront's write to
/// it waits for room in the socket buffer longer than the idle timeout. Every byte arrives.
#[test]
fn websocket_slow_reader_kept_open() {
    let sent = common::noise_bytes(SLOW_READ_TOTAL);
    let upstream = SendingUpstream::start(vec![(Duration::ZERO, sent.clone())]);
    let ringfront = start_relay_to(&upstream.socket);

    let (mut stream, mut received) = open_relayed(&ringfront);

    let mut piece = vec![0u8; SLOW_READ_PIECE];
    let slow_started = Instant::now();
    let mut ended = false;
    while slow_started.elapsed() < SLOW_READ_TIME && !ended {
        match stream.read(&mut piece) {
            Ok(0) => ended = true,
            Ok(count) => received.extend_from_slice(&piece[..count]),
            Err(error) => panic!("read failed after {} bytes: {error}", received.len()),
        }
        thread::sleep(SLOW_READ_PAUSE);
    }
    assert!(!ended, "the relay ended after {} of {SLOW_READ_TOTAL} bytes, while the client read", received.len());

    let deadline = Instant::now() + SLACK * 5;
    while !ended && Instant::now() < deadline {
        match stream.read(&mut piece) {
            Ok(0) => ended = true,
            Ok(count) => received.extend_from_slice(&piece[..count]),
            Err(error) => panic!("read failed after {} bytes: {error}", received.len()),
        }
    }
    assert!(ended, "no end of stream after {} bytes", received.len());
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the relayed bytes differ from the upstream's");
}

/// A client draining a backlog that ringfront already handed to the kernel keeps the relay open
/// while neither peer sends: the upstream pauses longer than the idle timeout, and its later
/// bytes still arrive.
#[test]
fn websocket_draining_client_kept_open() {
    let backlog = common::noise_bytes(1024 * 1024);
    let late = common::pattern_bytes(1000);
    let pause = UPGRADE_IDLE + UPGRADE_IDLE / 2;
    let upstream = SendingUpstream::start(vec![(Duration::ZERO, backlog.clone()), (pause, late.clone())]);
    let ringfront = start_relay_to(&upstream.socket);

    let (mut stream, mut received) = open_relayed(&ringfront);

    // About 400 KB/s, so the 1 MiB backlog takes longer than the pause to drain.
    let mut piece = vec![0u8; 2 * SLOW_READ_PIECE];
    let deadline = Instant::now() + SLACK * 5;
    let mut ended = false;
    while !ended && Instant::now() < deadline {
        match stream.read(&mut piece) {
            Ok(0) => ended = true,
            Ok(count) => received.extend_from_slice(&piece[..count]),
            Err(error) => panic!("read failed after {} bytes: {error}", received.len()),
        }
        thread::sleep(SLOW_READ_PAUSE);
    }
    assert!(ended, "no end of stream after {} bytes", received.len());
    assert_eq!(received.len(), backlog.len() + late.len());
    assert!(received[..backlog.len()] == backlog[..], "the backlog differs from the upstream's");
    assert!(received[backlog.len()..] == late[..], "the late bytes differ from the upstream's");
}
