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

use std::thread;
use std::time::{Duration, Instant};

use common::client::EndKind;
use common::{Config, Connection, Gunicorn, Ringfront, TestCert};

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
/// before the next, and a close; returns the close frame the server answered with.
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

#[test]
fn websocket_echo_over_plain() {
    let fixture = start();
    let received = echo_session(Connection::plain(fixture.ringfront.http_port()));
    assert_clean_end(&received);
}

/// Gunicorn answers an upgrade request for a route without WebSocket support with its own
/// 400; that answer reaches the client instead of a 502 of ours.
#[test]
fn upgrade_declined_is_relayed() {
    let fixture = start();
    let mut connection = Connection::plain(fixture.ringfront.http_port());
    connection.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    let response = connection.read_response();
    assert_eq!(response.status, 400);
    assert_eq!(response.header("server"), Some("gunicorn"));
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
/// also log the request as a 101 that lasted at least the timeout, with no bytes relayed.
fn assert_idle_session_closed(ringfront: &Ringfront, mut connection: Connection) {
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
