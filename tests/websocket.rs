//! WebSocket through the proxy: the handshake reaches Gunicorn (a threaded worker running
//! flask-sock), its 101 reaches the client, and frames then flow both ways over HTTPS and plain
//! HTTP until the client closes.

mod common;

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
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new().https(&cert).http().upstream(&gunicorn).start();
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

/// Runs the handshake on `connection`, then sends text messages one at a time, each echoed
/// before the next, and a close; returns the close frame the server answered with.
fn echo_session(mut connection: Connection) -> Vec<u8> {
    connection.send(&handshake());
    let switching = connection.read_head_response();
    assert_eq!(switching.status, 101);
    assert_eq!(switching.header("sec-websocket-accept"), Some(ACCEPT));
    assert!(switching.header_has_token("connection", "upgrade"));
    assert_eq!(switching.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));

    for message in [&b"hello"[..], b"again", &[b'x'; 100]] {
        connection.send(&client_frame(0x1, message));
        let echo = connection.read_bytes(2 + message.len());
        assert_eq!(echo[..2], [0x81, message.len() as u8]);
        assert_eq!(&echo[2..], message);
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
