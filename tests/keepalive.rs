//! Keep-alive connections idle past the point where the server parks them: after one second
//! without a request, a connection leaves the request loop and waits in a smaller future, with
//! its receive still in flight. A parked connection serves its next request whole, plain and
//! over TLS, also when that request arrives in pieces or with a second one behind it. It closes
//! at its keep-alive timeout, gives way to a new connection at `server.max_connections`, and
//! ends when the server shuts down. The first bytes of a request after an idle wait start its
//! `request_head`, also on TLS when they are part of a record. A TLS record without request
//! bytes, such as a key update, neither ends the idle wait nor lengthens it.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::client::EndKind;
use common::{Config, Connection, Ringfront, Site, TestCert};

/// Idle time after which the connection has parked: the server parks after one second.
const PARK_WAIT: Duration = Duration::from_millis(1500);

/// Pause between the two parts of a split request.
const SPLIT_PAUSE: Duration = Duration::from_millis(200);

const STYLE_REQUEST: &[u8] = b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n";
const PAGE_REQUEST: &[u8] = b"GET /static/sub/page.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// The debug line of a connection that parks.
const PARK_LINE: &str = "parking the connection";

/// ringfront with one worker, plain and TLS listeners serving `site`, `keepalive`, and debug
/// logging for [`PARK_LINE`].
fn start(site: &Site, cert: &TestCert, keepalive: &str) -> Ringfront {
    Config::new()
        .workers(1)
        .http()
        .https(cert)
        .static_dir("/static/", site.static_dir())
        .timeout("keepalive", keepalive)
        .server("log_level", "\"ringfront=debug,info\"")
        .start()
}

/// Opens a plain and a TLS connection to `ringfront`, each with its name for messages.
fn both_transports(ringfront: &Ringfront, cert: &TestCert) -> [(&'static str, Connection); 2] {
    [
        ("plain", Connection::plain(ringfront.http_port())),
        ("TLS", Connection::https(ringfront.https_port(), cert)),
    ]
}

#[test]
fn parked_connection_serves_next_request() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&site, &cert, "\"10s\"");
    let style = site.read("static/style.css");
    let page = site.read("static/sub/page.txt");

    for (transport, mut connection) in both_transports(&ringfront, &cert) {
        assert_eq!(connection.request(STYLE_REQUEST).status, 200, "{transport}: first request");

        thread::sleep(PARK_WAIT);
        let response = connection.request(PAGE_REQUEST);
        assert_eq!(response.status, 200, "{transport}: whole request");
        assert!(response.body == page, "{transport}: whole request: body differs");

        thread::sleep(PARK_WAIT);
        connection.send_split(STYLE_REQUEST, SPLIT_PAUSE);
        let response = connection.read_response();
        assert_eq!(response.status, 200, "{transport}: split request");
        assert!(response.body == style, "{transport}: split request: body differs");

        thread::sleep(PARK_WAIT);
        connection.send(&[STYLE_REQUEST, PAGE_REQUEST].concat());
        let first = connection.read_response();
        let second = connection.read_response();
        assert_eq!(first.status, 200, "{transport}: first pipelined request");
        assert!(first.body == style, "{transport}: first pipelined request: body differs");
        assert_eq!(second.status, 200, "{transport}: second pipelined request");
        assert!(second.body == page, "{transport}: second pipelined request: body differs");
    }
    let parked = ringfront.output().matches(PARK_LINE).count();
    assert!(parked >= 6, "{parked} parking lines, expected 3 per connection");
}

#[test]
fn parked_connection_closes_at_keepalive() {
    const KEEPALIVE: Duration = Duration::from_secs(3);
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start(&site, &cert, "\"3s\"");

    for (transport, mut connection) in both_transports(&ringfront, &cert) {
        assert_eq!(connection.request(STYLE_REQUEST).status, 200, "{transport}");

        let end = connection.wait_for_end(KEEPALIVE * 3);

        assert_eq!(end.kind, EndKind::EndOfFile, "{transport}: ended by {:?}", end.kind);
        assert!(end.received.is_empty(), "{transport}: {:?}", String::from_utf8_lossy(&end.received));
        // The client's clock starts after the response, a little after the server's.
        assert!(
            end.elapsed + Duration::from_millis(300) >= KEEPALIVE,
            "{transport}: closed after {:?}",
            end.elapsed
        );
    }
}

#[test]
fn parked_connection_evicted_for_new_one() {
    let site = Site::create();
    let ringfront = Config::new()
        .workers(1)
        .http()
        .static_dir("/static/", site.static_dir())
        .timeout("keepalive", "\"10s\"")
        .server("max_connections", "2")
        .start();
    let port = ringfront.http_port();

    let mut oldest = Connection::plain(port);
    assert_eq!(oldest.request(STYLE_REQUEST).status, 200, "oldest");
    thread::sleep(Duration::from_millis(100));
    let mut newer = Connection::plain(port);
    assert_eq!(newer.request(STYLE_REQUEST).status, 200, "newer");
    thread::sleep(PARK_WAIT);

    let mut third = Connection::plain(port);
    assert_eq!(third.request(STYLE_REQUEST).status, 200, "third");
    assert!(oldest.is_closed_by_peer(), "the connection idle the longest stayed open");
    assert_eq!(newer.request(STYLE_REQUEST).status, 200, "newer, after the eviction");
}

#[test]
fn shutdown_closes_parked_connection() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let mut ringfront = Config::new()
        .workers(1)
        .https(&cert)
        .static_dir("/static/", site.static_dir())
        .timeout("keepalive", "\"60s\"")
        .server("shutdown_grace", "\"30s\"")
        .start();
    let mut connection = Connection::https(ringfront.https_port(), &cert);
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    thread::sleep(PARK_WAIT);

    let started = Instant::now();
    let status = ringfront.terminate();

    assert!(status.success(), "exit status {status}");
    // Without the parked connection closing, the exit would wait for the 30 s grace period.
    assert!(started.elapsed() < Duration::from_secs(10), "exit took {:?}", started.elapsed());
    let end = connection.wait_for_end(Duration::from_secs(5));
    assert_eq!(end.kind, EndKind::EndOfFile, "ended by {:?}", end.kind);
}

/// What debug builds wait between the end of an idle wait and the end of its receive
/// (`RINGFRONT_TEST_IDLE_END_DELAY_MS`). A request sent then meets the receive that is about to
/// end, as one can by chance when a connection's idle time runs out.
const IDLE_END_DELAY_MS: &str = "600";

/// How long a client of [`start_idle_end_delay`] waits after a response: past the 2 s keep-alive
/// time, and within the delay that follows it.
const INTO_IDLE_END: Duration = Duration::from_millis(2300);

/// Starts ringfront with one worker, plain and TLS listeners serving `site`, a 2 s keep-alive
/// time and [`IDLE_END_DELAY_MS`].
fn start_idle_end_delay(site: &Site, cert: &TestCert) -> Ringfront {
    Config::new()
        .workers(1)
        .http()
        .https(cert)
        .static_dir("/static/", site.static_dir())
        .timeout("keepalive", "\"2s\"")
        .env("RINGFRONT_TEST_IDLE_END_DELAY_MS", IDLE_END_DELAY_MS)
        .start()
}

/// A request that arrives as a parked connection's keep-alive time runs out is served, with
/// `Connection: close`, and the connection then closes.
#[test]
fn request_at_idle_end_served_then_closed() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start_idle_end_delay(&site, &cert);
    for mut connection in [Connection::plain(ringfront.http_port()), Connection::https(ringfront.https_port(), &cert)] {
        assert_eq!(connection.request(STYLE_REQUEST).status, 200);
        thread::sleep(INTO_IDLE_END);

        let response = connection.request(PAGE_REQUEST);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("close"));
        assert!(connection.is_closed_by_peer(), "the connection stayed open");
    }
}

/// A request of which only part arrived before the read side was shut cannot be completed:
/// the client gets a 408, not a silent close, and no invitation to send a body.
#[test]
fn partial_request_at_idle_end_gets_408() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start_idle_end_delay(&site, &cert);
    let partial_requests: [&[u8]; 2] = [
        b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n",
        b"PUT /static/upload.txt HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    ];
    for partial in partial_requests {
        let mut connection = Connection::plain(ringfront.http_port());
        assert_eq!(connection.request(STYLE_REQUEST).status, 200);
        thread::sleep(INTO_IDLE_END);

        connection.send(partial);
        let response = connection.read_response();
        assert_eq!(response.status, 408, "{}", String::from_utf8_lossy(partial));
        assert_eq!(response.header("connection"), Some("close"));
    }

    // Over TLS, part of the record that carries a whole request: nothing of it can be decrypted.
    let mut connection = Connection::https(ringfront.https_port(), &cert);
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    thread::sleep(INTO_IDLE_END);
    connection.send_prefix(PAGE_REQUEST, 10);
    let response = connection.read_response();
    assert_eq!(response.status, 408, "part of a TLS record");
    assert_eq!(response.header("connection"), Some("close"));
}

/// An upgrade request that arrives as the idle time runs out is rejected with a 503: the relay
/// could not read from the client once the read side is shut.
#[test]
fn upgrade_at_idle_end_gets_503() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start_idle_end_delay(&site, &cert);
    let mut connection = Connection::plain(ringfront.http_port());
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    thread::sleep(INTO_IDLE_END);

    let response = connection.request(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(response.status, 503);
    assert_eq!(response.header("connection"), Some("close"));
}

/// A TLS record without request bytes (here a key update) on an idle connection neither ends
/// its idle time nor lengthens it. The connection closes at its keep-alive time, not at the
/// longer `request_head`, and still serves a request sent after the record. Both hold before
/// and after the connection parks, and for a record that arrives in two parts.
#[test]
fn key_update_keeps_idle_time() {
    const KEEPALIVE: Duration = Duration::from_secs(3);
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new()
        .workers(1)
        .https(&cert)
        .static_dir("/static/", site.static_dir())
        .timeout("keepalive", "\"3s\"")
        .timeout("request_head", "\"30s\"")
        .start();
    let page = site.read("static/sub/page.txt");

    let split = Some(Duration::from_millis(300));
    for (idle, split) in [(Duration::from_millis(300), None), (PARK_WAIT, None), (Duration::from_millis(300), split)] {
        let mut connection = Connection::https(ringfront.https_port(), &cert);
        assert_eq!(connection.request(STYLE_REQUEST).status, 200, "idle {idle:?}");
        thread::sleep(idle);
        connection.send_key_update(split);
        thread::sleep(Duration::from_millis(300));
        let response = connection.request(PAGE_REQUEST);
        assert_eq!(response.status, 200, "idle {idle:?}, split {split:?}: request after the key update");
        assert!(response.body == page, "idle {idle:?}, split {split:?}: request after the key update: body differs");

        let mut connection = Connection::https(ringfront.https_port(), &cert);
        assert_eq!(connection.request(STYLE_REQUEST).status, 200, "idle {idle:?}");
        thread::sleep(idle);
        connection.send_key_update(split);
        let end = connection.wait_for_end(KEEPALIVE * 3);
        let since_response = idle + split.unwrap_or_default() + end.elapsed;
        assert_eq!(end.kind, EndKind::EndOfFile, "idle {idle:?}, split {split:?}: ended by {:?} {since_response:?} after the response", end.kind);
        assert!(end.received.is_empty(), "idle {idle:?}, split {split:?}: {:?}", String::from_utf8_lossy(&end.received));
        // The client's clock starts after the response, a little after the server's.
        assert!(since_response + Duration::from_millis(300) >= KEEPALIVE, "idle {idle:?}, split {split:?}: closed {since_response:?} after the response");
        assert!(since_response < KEEPALIVE + Duration::from_secs(2), "idle {idle:?}, split {split:?}: closed {since_response:?} after the response");
    }
}

/// `[timeouts] request_head` of [`start_tls_short_head`], far below its keep-alive time.
const REQUEST_HEAD: Duration = Duration::from_secs(2);

/// Starts ringfront with one worker, a TLS listener serving `site`, a 30 s keep-alive time and
/// [`REQUEST_HEAD`].
fn start_tls_short_head(site: &Site, cert: &TestCert) -> Ringfront {
    Config::new()
        .workers(1)
        .https(cert)
        .static_dir("/static/", site.static_dir())
        .timeout("keepalive", "\"30s\"")
        .timeout("request_head", "\"2s\"")
        .start()
}

/// The first bytes of a request end the idle time: the rest of the head has `request_head`,
/// also when the bytes are only part of a TLS record, which the server cannot decrypt yet.
#[test]
fn partial_record_after_idle_gets_request_head() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start_tls_short_head(&site, &cert);

    for idle in [Duration::from_millis(300), PARK_WAIT] {
        let mut connection = Connection::https(ringfront.https_port(), &cert);
        assert_eq!(connection.request(STYLE_REQUEST).status, 200, "idle {idle:?}");
        thread::sleep(idle);

        connection.send_prefix(STYLE_REQUEST, 3);
        let end = connection.wait_for_end(Duration::from_secs(15));

        assert_ne!(end.kind, EndKind::Open, "idle {idle:?}: still open after {:?}", end.elapsed);
        assert!(end.elapsed + Duration::from_millis(300) >= REQUEST_HEAD, "idle {idle:?}: closed after {:?}", end.elapsed);
        assert!(end.elapsed < REQUEST_HEAD * 3, "idle {idle:?}: closed after {:?}", end.elapsed);
    }
}

/// `request_head` runs from the first byte of a request's head, also when that byte comes
/// in a TLS record that arrives in parts: the rest of the head does not get a fresh period.
#[test]
fn tls_head_bounded_from_first_byte() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = start_tls_short_head(&site, &cert);
    let mut connection = Connection::https(ringfront.https_port(), &cert);
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    thread::sleep(Duration::from_millis(300));

    // The head's first byte in a record sent in two parts 1.5 s apart, then one byte about
    // every 300 ms, each in its own record, which would take 4 s more for the whole head.
    let started = Instant::now();
    connection.send_split(b"G", Duration::from_millis(1500));
    let mut answer = None;
    for byte in &STYLE_REQUEST[1..] {
        connection.send(std::slice::from_ref(byte));
        let end = connection.wait_for_end(Duration::from_millis(300));
        if end.kind != EndKind::Open || !end.received.is_empty() {
            answer = Some((started.elapsed(), end));
            break;
        }
    }

    let Some((elapsed, end)) = answer else { panic!("no answer after {:?}", started.elapsed()) };
    let received = String::from_utf8_lossy(&end.received);
    assert!(received.contains(" 408 "), "no 408: {received:?}");
    assert!(elapsed < REQUEST_HEAD + Duration::from_millis(600), "answered {elapsed:?} after the first byte");
}
