//! Hostile and slow clients. Each `[timeouts]` setting closes the connection that outstays it,
//! and `server.max_connections` makes room or rejects. Bad bytes on the TLS port and a panic end
//! only their own connection. A crowd of slow clients neither starves a normal client nor leaves
//! memory or descriptors behind.
//!
//! The timeouts here are one or two seconds, so every test finishes in a few seconds. Lower
//! bounds on elapsed time allow [`EARLY_TOLERANCE`] because the server starts its clock a little
//! after the client's first byte; upper bounds allow [`SLACK`] for a machine busy with other
//! tests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::response::{Parsed, parse_response};
use common::slow::{self, Ending};
use common::{Config, Connection, Ringfront, Site, TestCert, pattern_bytes, plain_request, procfs};
use rustls::pki_types::ServerName;

/// `[timeouts] handshake` in these tests.
const HANDSHAKE: Duration = Duration::from_secs(1);
/// `[timeouts] request_head` in these tests.
const REQUEST_HEAD: Duration = Duration::from_secs(1);
/// `[timeouts] body_read` in these tests.
const BODY_READ: Duration = Duration::from_secs(1);
/// `[timeouts] request_body` in these tests, longer than `body_read` so that a test can tell
/// which of the two closed the connection.
const REQUEST_BODY: Duration = Duration::from_secs(2);
/// `[timeouts] keepalive` in these tests.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// `[timeouts] send` in these tests.
const SEND: Duration = Duration::from_secs(1);

/// Time past a timeout within which the server must have closed the connection.
const SLACK: Duration = Duration::from_secs(3);

/// How much earlier than its timeout, measured by the client, a close may come.
const EARLY_TOLERANCE: Duration = Duration::from_millis(150);

/// Pause between two bytes of a trickled head or body, well below every timeout.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(200);

/// Size of `static/big.bin`: larger than what the kernel buffers for a client that does not read,
/// and cached in memory (below `static_cache.max_file_bytes`).
const BIG_FILE_BYTES: usize = 4 * 1024 * 1024;

/// `SO_RCVBUF` of clients that never read, so the server's writes stall after little data.
const NON_READER_RECEIVE_BUFFER: usize = 4096;

const STYLE_REQUEST: &[u8] = b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n";
const BIG_REQUEST: &[u8] = b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Writes the test site with `static/big.bin` added.
fn site() -> Site {
    let site = Site::create();
    let path = site.static_dir().join("big.bin");
    if let Err(error) = std::fs::write(&path, pattern_bytes(BIG_FILE_BYTES)) {
        panic!("failed to write {}: {error}", path.display());
    }
    site
}

/// Builds a config with one worker, a plain HTTP listener serving `site`, and the short
/// timeouts above.
fn config(site: &Site) -> Config {
    Config::new()
        .workers(1)
        .http()
        .static_dir("/static/", site.static_dir())
        .timeout("handshake", &toml_duration(HANDSHAKE))
        .timeout("request_head", &toml_duration(REQUEST_HEAD))
        .timeout("body_read", &toml_duration(BODY_READ))
        .timeout("request_body", &toml_duration(REQUEST_BODY))
        .timeout("keepalive", &toml_duration(KEEPALIVE))
        .timeout("send", &toml_duration(SEND))
}

fn toml_duration(duration: Duration) -> String {
    format!("\"{}ms\"", duration.as_millis())
}

/// Asserts that the server responded with `status` and `Connection: close`, then closed.
fn assert_answered_and_closed(ending: &Ending, status: u16) {
    assert!(ending.closed, "still open after {:?}", ending.elapsed);
    let Some(response) = ending.response() else {
        panic!(
            "no complete response before the close: {:?}",
            String::from_utf8_lossy(&ending.received)
        );
    };
    assert_eq!(response.status, status);
    assert!(
        response.header_has_token("connection", "close"),
        "{:?}",
        response.headers
    );
}

fn assert_not_before(ending: &Ending, timeout: Duration) {
    assert!(
        ending.elapsed + EARLY_TOLERANCE >= timeout,
        "closed after {:?}, before the {timeout:?} timeout",
        ending.elapsed
    );
}

/// Waits up to `limit` for ringfront's open descriptor count to fall to `target` or below and
/// returns the last count seen.
fn wait_for_fd_count(pid: u32, target: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let count = procfs::open_fd_count(pid);
        if count <= target || Instant::now() >= deadline {
            return count;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Serves one request, then returns ringfront's open descriptor count once that connection has
/// closed. The first request makes the server open descriptors that it keeps, such as its copy
/// of stdout for the access log.
fn idle_fd_count(ringfront: &Ringfront) -> usize {
    let pid = pid_of(ringfront);
    let response = plain_request(ringfront.http_port(), STYLE_REQUEST);
    assert_eq!(response.status, 200, "warm-up request");
    // The warm-up connection is closed by now on the client side; give the server time to see it.
    thread::sleep(Duration::from_millis(300));
    procfs::open_fd_count(pid)
}

fn pid_of(ringfront: &Ringfront) -> u32 {
    match ringfront.pid() {
        Some(pid) => pid,
        None => panic!("ringfront is not running"),
    }
}

#[test]
fn head_trickle_gets_408() {
    let site = site();
    let ringfront = config(&site).start();
    let mut stream = slow::connect(ringfront.http_port());

    // The head never ends: the client sends one byte of it every 200 ms.
    let head =
        b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let ending = slow::trickle(&mut stream, head, TRICKLE_INTERVAL, REQUEST_HEAD + SLACK);

    assert_answered_and_closed(&ending, 408);
    assert_not_before(&ending, REQUEST_HEAD);
}

#[test]
fn body_stall_gets_408() {
    let site = site();
    let ringfront = config(&site).start();
    let mut stream = slow::connect(ringfront.http_port());

    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .unwrap_or_else(|error| panic!("failed to send the request: {error}"));
    let ending = slow::wait_for_close(&mut stream, BODY_READ + SLACK);

    assert_answered_and_closed(&ending, 408);
    assert_not_before(&ending, BODY_READ);
}

#[test]
fn body_trickle_cut_at_request_body() {
    let site = site();
    let ringfront = config(&site).start();
    let mut stream = slow::connect(ringfront.http_port());

    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
        .unwrap_or_else(|error| panic!("failed to send the head: {error}"));
    // Each byte comes well within `body_read`, so only `request_body` can end the body.
    let body = [b'x'; 100];
    let ending = slow::trickle(&mut stream, &body, TRICKLE_INTERVAL, REQUEST_BODY + SLACK);

    assert_answered_and_closed(&ending, 408);
    assert_not_before(&ending, REQUEST_BODY);
}

#[test]
fn idle_keepalive_closed_silently() {
    let site = site();
    let ringfront = config(&site).start();

    // (case, whether the connection served a request before going idle)
    let cases = [("after a response", true), ("before any request", false)];
    for (case, served) in cases {
        let mut stream = slow::connect(ringfront.http_port());
        if served {
            stream
                .write_all(STYLE_REQUEST)
                .unwrap_or_else(|error| panic!("{case}: failed to send the request: {error}"));
            let mut buffer = Vec::new();
            let deadline = Instant::now() + SLACK;
            let response =
                common::response::read_response(&mut stream, &mut buffer, false, deadline)
                    .unwrap_or_else(|error| panic!("{case}: no response: {error}"));
            assert_eq!(response.status, 200, "{case}");
        }

        let ending = slow::wait_for_close(&mut stream, KEEPALIVE + SLACK);

        assert!(
            ending.closed,
            "{case}: still open after {:?}",
            ending.elapsed
        );
        assert_eq!(
            ending.received_count,
            0,
            "{case}: {:?}",
            String::from_utf8_lossy(&ending.received)
        );
        assert!(
            ending.elapsed + EARLY_TOLERANCE >= KEEPALIVE,
            "{case}: closed after {:?}",
            ending.elapsed
        );
    }
}

#[test]
fn non_reader_cut_after_send_timeout() {
    let site = site();
    let ringfront = config(&site).start();
    let port = ringfront.http_port();
    let pid = pid_of(&ringfront);
    let idle_fds = idle_fd_count(&ringfront);

    let mut stalled = slow::connect_with_receive_buffer(port, NON_READER_RECEIVE_BUFFER);
    stalled
        .write_all(BIG_REQUEST)
        .unwrap_or_else(|error| panic!("failed to send the request: {error}"));
    thread::sleep(Duration::from_millis(200));
    let meanwhile = plain_request(port, STYLE_REQUEST);

    // Only the server can close the stalled connection, because its client never reads. Once it
    // has, ringfront has no more descriptors open than before.
    let fds_after = wait_for_fd_count(pid, idle_fds, SEND + SLACK);
    let ending = slow::wait_for_close(&mut stalled, SLACK);
    let after = plain_request(port, STYLE_REQUEST);

    assert_eq!(meanwhile.status, 200);
    assert_eq!(fds_after, idle_fds, "{:#?}", procfs::open_fd_targets(pid));
    assert!(ending.closed, "the stalled connection stayed open");
    assert!(
        ending.received_count < BIG_FILE_BYTES,
        "the whole file arrived ({} bytes), so the send was never cut",
        ending.received_count
    );
    assert_eq!(after.status, 200);
}

/// Bound on the growth of ringfront's resident memory while one client pipelines requests and
/// reads none of the responses. The server stops reading once its output stalls, so the growth
/// stays near one read buffer and one flush threshold (64 KiB) of queued responses.
const PIPELINE_RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;

#[test]
fn pipelined_non_reader_cut_after_send_timeout() {
    let site = site();
    let ringfront = config(&site).start();
    let port = ringfront.http_port();
    let pid = pid_of(&ringfront);
    let idle_fds = idle_fd_count(&ringfront);
    let idle_rss_kib = procfs::rss_kib(pid);

    // Send requests until the server stops reading them, or for at most 2 s.
    let mut flooding = slow::connect_with_receive_buffer(port, NON_READER_RECEIVE_BUFFER);
    flooding
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|error| panic!("failed to set the write timeout: {error}"));
    let batch = STYLE_REQUEST.repeat(100);
    let started = Instant::now();
    let mut sent_requests = 0usize;
    while started.elapsed() < Duration::from_secs(2) && flooding.write_all(&batch).is_ok() {
        sent_requests += 100;
    }
    let rss_kib = procfs::rss_kib(pid);
    let fds_after = wait_for_fd_count(pid, idle_fds, SEND + SLACK);
    let after = plain_request(port, STYLE_REQUEST);

    assert!(sent_requests > 0, "the server read no request at all");
    assert!(
        rss_kib < idle_rss_kib + PIPELINE_RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {idle_rss_kib} KiB to {rss_kib} KiB after {sent_requests} requests"
    );
    assert_eq!(fds_after, idle_fds, "{:#?}", procfs::open_fd_targets(pid));
    assert_eq!(after.status, 200);
}

/// A connection that never sends its first request is closed after `request_head`, as nginx's
/// client_header_timeout does, even when the keep-alive time is much longer.
#[test]
fn silent_new_connection_closed_after_request_head() {
    let site = site();
    let keepalive = Duration::from_secs(20);
    let ringfront = config(&site).timeout("keepalive", &toml_duration(keepalive)).start();

    let mut stream = slow::connect(ringfront.http_port());
    let ending = slow::wait_for_close(&mut stream, REQUEST_HEAD + SLACK);

    assert!(ending.closed, "still open after {:?}", ending.elapsed);
    assert_eq!(ending.received_count, 0, "{:?}", String::from_utf8_lossy(&ending.received));
    assert!(ending.elapsed + EARLY_TOLERANCE >= REQUEST_HEAD, "closed after {:?}", ending.elapsed);
    assert!(ending.elapsed < keepalive, "closed after {:?}", ending.elapsed);
}

#[test]
fn max_connections_evicts_longest_idle() {
    let site = site();
    let ringfront = config(&site)
        .server("max_connections", "4")
        .timeout("keepalive", "\"10s\"")
        .start();
    let port = ringfront.http_port();

    let mut idle: Vec<Connection> = Vec::new();
    for _ in 0..4 {
        let mut connection = Connection::plain(port);
        assert_eq!(connection.request(STYLE_REQUEST).status, 200);
        idle.push(connection);
        // Distinct idle times, so the first connection is the one idle the longest.
        thread::sleep(Duration::from_millis(50));
    }
    let fifth = plain_request(port, STYLE_REQUEST);

    assert_eq!(fifth.status, 200);
    assert!(
        idle[0].is_closed_by_peer(),
        "the longest idle connection stayed open"
    );
    for (index, connection) in idle.iter_mut().enumerate().skip(1) {
        let response = connection.request(STYLE_REQUEST);
        assert_eq!(response.status, 200, "connection {index}");
    }
}

#[test]
fn max_connections_busy_rejects_new() {
    let site = site();
    let ringfront = config(&site)
        .server("max_connections", "4")
        .timeout("request_head", "\"10s\"")
        .start();
    let port = ringfront.http_port();

    let mut busy: Vec<TcpStream> = Vec::new();
    for index in 0..4 {
        let mut stream = slow::connect(port);
        stream
            .write_all(b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n")
            .unwrap_or_else(|error| panic!("connection {index}: failed to send: {error}"));
        busy.push(stream);
    }
    // Time for the server to read each partial head, after which none of them is idle.
    thread::sleep(Duration::from_millis(300));

    let mut fifth = slow::connect(port);
    // The server may close before this write, which is the behaviour under test.
    let _ = fifth.write_all(STYLE_REQUEST);
    let rejected = slow::wait_for_close(&mut fifth, SLACK);

    assert!(rejected.closed, "the fifth connection stayed open");
    assert_eq!(
        rejected.received_count,
        0,
        "{:?}",
        String::from_utf8_lossy(&rejected.received)
    );
    assert!(
        rejected.elapsed < Duration::from_secs(1),
        "closed only after {:?}",
        rejected.elapsed
    );
    for (index, stream) in busy.iter_mut().enumerate() {
        stream.write_all(b"\r\n").unwrap_or_else(|error| {
            panic!("connection {index}: failed to finish the head: {error}")
        });
        let mut buffer = Vec::new();
        let deadline = Instant::now() + SLACK;
        let response = common::response::read_response(stream, &mut buffer, false, deadline)
            .unwrap_or_else(|error| panic!("connection {index}: no response: {error}"));
        assert_eq!(response.status, 200, "connection {index}");
    }
}

/// Returns the records that a rustls client sends first (its ClientHello) with `config`.
fn client_hello(config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let name =
        ServerName::try_from("localhost").unwrap_or_else(|error| panic!("invalid name: {error}"));
    let mut session = rustls::ClientConnection::new(config, name)
        .unwrap_or_else(|error| panic!("failed to create a rustls client session: {error}"));
    let mut records = Vec::new();
    while session.wants_write() {
        session
            .write_tls(&mut records)
            .unwrap_or_else(|error| panic!("failed to write the ClientHello: {error}"));
    }
    records
}

/// Returns the length field of each TLS record in `bytes` (RFC 8446 §5.1: type, version, length).
fn record_lengths(bytes: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut rest = bytes;
    while let Some(header) = rest.get(..5) {
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        lengths.push(length);
        rest = rest.get(5 + length..).unwrap_or_default();
    }
    lengths
}

fn tls_config(site: &Site, cert: &TestCert) -> Config {
    config(site).https(cert)
}

#[test]
fn plain_http_on_tls_port_gets_400() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let mut stream = slow::connect(ringfront.https_port());

    stream
        .write_all(STYLE_REQUEST)
        .unwrap_or_else(|error| panic!("failed to send the request: {error}"));
    let ending = slow::wait_for_close(&mut stream, SLACK);

    assert_answered_and_closed(&ending, 400);
}

#[test]
fn plain_http_trickled_to_tls_port() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let mut stream = slow::connect(ringfront.https_port());

    // The method arrives before its space, so the first bytes alone cannot tell plain HTTP
    // from TLS.
    let ending = slow::trickle(&mut stream, STYLE_REQUEST, Duration::from_millis(20), SLACK);

    assert_answered_and_closed(&ending, 400);
}

#[test]
fn tls_garbage_closes_connection() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let port = ringfront.https_port();

    let mut oversized_record = vec![0x16, 0x03, 0x01, 0xFF, 0xFF];
    oversized_record.extend_from_slice(&common::noise_bytes(64));
    let mut early_application_data = vec![0x17, 0x03, 0x03, 0x00, 0x10];
    early_application_data.extend_from_slice(&[0xAB; 16]);
    let cases: [(&str, Vec<u8>); 5] = [
        ("noise", common::noise_bytes(1024)),
        ("ChangeCipherSpec before the ClientHello", vec![0x14, 0x03, 0x03, 0x00, 0x01, 0x01]),
        ("zero bytes", vec![0; 64]),
        ("handshake record over the size limit", oversized_record),
        (
            "application data before the handshake",
            early_application_data,
        ),
    ];
    for (case, bytes) in &cases {
        let mut stream = slow::connect(port);
        // The server may close before reading everything, which is a valid reaction.
        let _ = stream.write_all(bytes);
        let ending = slow::wait_for_close(&mut stream, HANDSHAKE + SLACK);
        assert!(
            ending.closed,
            "{case}: still open after {:?}",
            ending.elapsed
        );
    }

    let mut after = Connection::https(port, &cert);
    assert_eq!(after.request(STYLE_REQUEST).status, 200);
    // A client's protocol faults must not reach the log at warn: any client could fill it.
    let output = ringfront.output();
    let warnings: Vec<&str> = output.lines().filter(|line| line.contains("WARN") && line.contains("rustls")).collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// Requests that arrive in the same read as a record that fails to decrypt are served before
/// the session ends with the record's alert, as a server that reads one record at a time serves
/// them.
#[test]
fn requests_before_bad_record_served() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let style = site.read("static/style.css");

    let mut connection = Connection::https(ringfront.https_port(), &cert);
    // A whole exchange first, so that the client has taken every record the server sent so far
    // (its session tickets) and the records read below start at a record boundary.
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    connection.send_with_raw_after(&[STYLE_REQUEST, STYLE_REQUEST].concat(), false, &common::client::forged_record());
    let (mut plaintext, error) = connection.open_records_until_close();
    assert!(
        matches!(error, Some(rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac))),
        "{error:?}"
    );
    for position in ["first", "second"] {
        let Ok(Parsed::Complete(response, length)) = parse_response(&plaintext, false, false) else {
            panic!("{position} response missing: {:?}", String::from_utf8_lossy(&plaintext));
        };
        assert_eq!(response.status, 200, "{position} request");
        assert!(response.body == style, "{position} request: body differs");
        plaintext.drain(..length);
    }
    assert!(plaintext.is_empty(), "{:?}", String::from_utf8_lossy(&plaintext));

    // A large response, with more bytes behind the bad record that the server never reads: a
    // close with those unread would reset the connection and destroy what the client has not
    // read yet.
    let mut connection = Connection::https(ringfront.https_port(), &cert);
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    let trailing = [common::client::forged_record(), vec![0x17; 300 * 1024]].concat();
    connection.send_with_raw_after(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n", false, &trailing);
    thread::sleep(Duration::from_millis(300));
    let (plaintext, error) = connection.open_records_until_close();
    assert!(
        matches!(error, Some(rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac))),
        "{error:?}"
    );
    let Ok(Parsed::Complete(response, _)) = parse_response(&plaintext, false, false) else {
        panic!("response missing: {} bytes", plaintext.len());
    };
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), BIG_FILE_BYTES);
}

/// Bytes a client sends after its close_notify are ignored. They must not turn the close into
/// a reset, which would destroy the responses the client has not read yet.
#[test]
fn bytes_after_close_notify_keep_responses() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();

    let mut connection = Connection::https(ringfront.https_port(), &cert);
    assert_eq!(connection.request(STYLE_REQUEST).status, 200);
    let requests = b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(4);
    connection.send_with_raw_after(&requests, true, &vec![0x17; 300 * 1024]);
    thread::sleep(Duration::from_millis(300));
    let (mut plaintext, error) = connection.open_records_until_close();
    assert!(error.is_none(), "{error:?}");
    for position in 0..4 {
        let Ok(Parsed::Complete(response, length)) = parse_response(&plaintext, false, false) else {
            panic!("response {position} missing: {} bytes left", plaintext.len());
        };
        assert_eq!(response.status, 200, "response {position}");
        assert_eq!(response.body.len(), BIG_FILE_BYTES, "response {position}");
        plaintext.drain(..length);
    }
}

#[test]
fn truncated_client_hello_closes() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let port = ringfront.https_port();
    let hello = client_hello(cert.client_config());
    let half = hello.get(..hello.len() / 2).unwrap_or_default();

    // (case, whether the client then closes its sending side, earliest expected close)
    let cases = [
        ("half then silence", false, HANDSHAKE),
        ("half then end of stream", true, Duration::ZERO),
    ];
    for (case, shutdown, earliest) in cases {
        let mut stream = slow::connect(port);
        stream
            .write_all(half)
            .unwrap_or_else(|error| panic!("{case}: failed to send: {error}"));
        if shutdown {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        let ending = slow::wait_for_close(&mut stream, HANDSHAKE + SLACK);
        assert!(
            ending.closed,
            "{case}: still open after {:?}",
            ending.elapsed
        );
        assert!(
            ending.elapsed + EARLY_TOLERANCE >= earliest,
            "{case}: closed after {:?}",
            ending.elapsed
        );
    }

    let mut after = Connection::https(port, &cert);
    assert_eq!(after.request(STYLE_REQUEST).status, 200);
}

#[test]
fn tls_handshake_trickle_cut_at_handshake() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let hello = client_hello(cert.client_config());
    let mut stream = slow::connect(ringfront.https_port());

    // A whole ClientHello, one byte every 200 ms: `handshake` counts from the accept, so the
    // server gives up long before the last byte.
    let ending = slow::trickle(&mut stream, &hello, TRICKLE_INTERVAL, HANDSHAKE + SLACK);
    let mut after = Connection::https(ringfront.https_port(), &cert);

    assert!(ending.closed, "still open after {:?}", ending.elapsed);
    assert_not_before(&ending, HANDSHAKE);
    assert_eq!(after.request(STYLE_REQUEST).status, 200);
}

#[test]
fn client_hello_in_small_records() {
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert).start();
    let mut config = (*cert.client_config()).clone();
    // The smallest fragment size rustls allows.
    config.max_fragment_size = Some(32);
    let config = Arc::new(config);

    let lengths = record_lengths(&client_hello(Arc::clone(&config)));
    let mut connection = Connection::https_with_config(ringfront.https_port(), config, "localhost");
    let response = connection.request(STYLE_REQUEST);

    assert!(
        lengths.len() > 4,
        "the ClientHello took {} records",
        lengths.len()
    );
    assert!(lengths.iter().all(|&length| length <= 32), "{lengths:?}");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, site.read("static/style.css"));
}

#[test]
fn panic_ends_only_its_connection() {
    if std::env::var_os(common::ringfront::BINARY_OVERRIDE_VARIABLE).is_some() {
        eprintln!("skipped: the panic route exists only in the debug build that Cargo builds");
        return;
    }
    let site = site();
    let ringfront = config(&site)
        .timeout("keepalive", "\"10s\"")
        .env("RINGFRONT_TEST_PANIC_ROUTE", "1")
        .start();
    let port = ringfront.http_port();

    let mut neighbour = Connection::plain(port);
    let before = neighbour.request(STYLE_REQUEST);
    let mut panicking = slow::connect(port);
    let panicking_address = panicking
        .local_addr()
        .unwrap_or_else(|error| panic!("failed to read the local address: {error}"));
    panicking
        .write_all(b"GET /__ringfront_test/panic HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap_or_else(|error| panic!("failed to send the request: {error}"));
    let ending = slow::wait_for_close(&mut panicking, SLACK);
    let after = neighbour.request(STYLE_REQUEST);
    let new_connection = plain_request(port, STYLE_REQUEST);

    assert!(ending.closed, "the panicking connection stayed open");
    assert_eq!(
        ending.received_count,
        0,
        "{:?}",
        String::from_utf8_lossy(&ending.received)
    );
    assert_eq!(before.status, 200);
    assert_eq!(after.status, 200);
    assert_eq!(new_connection.status, 200);

    // The panic is logged inside the connection's span, whose fields name the peer. The log
    // line reaches the captured stderr through a pipe, so it may arrive a little later.
    let peer_field = format!("peer={panicking_address}");
    let deadline = Instant::now() + SLACK;
    let panic_line = loop {
        let output = ringfront.output();
        let found = output
            .lines()
            .find(|line| line.contains("panic") && line.contains("deliberate"))
            .map(str::to_owned);
        match found {
            Some(line) => break line,
            None if Instant::now() >= deadline => panic!("no panic logged:\n{output}"),
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(panic_line.contains("ERROR"), "{panic_line}");
    assert!(panic_line.contains(&peer_field), "{panic_line}");
}

/// Connections of each kind in [`slow_client_crowd`], small enough for a 1024 descriptor limit.
const CROWD_HEAD_TRICKLERS: usize = 300;
const CROWD_BODY_TRICKLERS: usize = 60;
const CROWD_NON_READERS: usize = 60;
/// Sequential requests of the normal client in [`slow_client_crowd`].
const CROWD_NORMAL_REQUESTS: usize = 50;
/// Pause between two bytes of a trickled head or body in [`slow_client_crowd`].
const CROWD_HEAD_INTERVAL: Duration = Duration::from_millis(200);
const CROWD_BODY_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on ringfront's resident memory during the crowd. The debug build measured about
/// 15 MiB idle with `big.bin` cached and 26 MiB at the crowd's peak (x86-64 Linux), which is
/// about 26 KiB per slow connection. The bound leaves room for other allocators and kernels.
const CROWD_RSS_LIMIT_KIB: u64 = 64 * 1024;
/// Descriptors above the idle count that may still be open once the crowd is gone.
const CROWD_FD_SLACK: usize = 4;
/// Maximum time the crowd's driver runs, a bound on the whole test.
const CROWD_DRIVE_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlowKind {
    HeadTrickler,
    BodyTrickler,
    NonReader,
}

struct SlowClient {
    kind: SlowKind,
    stream: TcpStream,
    next_send: Instant,
    /// The first bytes the server sent, read by the driver (never for a non-reader).
    answer: Vec<u8>,
    /// Whether the server sent something or closed, so the driver stops writing.
    ended: bool,
}

impl SlowClient {
    fn interval(&self) -> Duration {
        match self.kind {
            SlowKind::HeadTrickler => CROWD_HEAD_INTERVAL,
            SlowKind::BodyTrickler => CROWD_BODY_INTERVAL,
            SlowKind::NonReader => Duration::MAX,
        }
    }

    /// Sends the next byte when it is due and reads what the server sent. Returns whether the
    /// client still waits for the server.
    fn drive(&mut self, now: Instant) -> bool {
        if self.ended || self.kind == SlowKind::NonReader {
            return false;
        }
        let mut chunk = [0u8; 512];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.ended = true,
            Ok(count) => {
                self.answer.extend_from_slice(&chunk[..count]);
                self.ended = true;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.ended = true,
        }
        if !self.ended && now >= self.next_send {
            self.next_send = now + self.interval();
            if self.stream.write_all(b"a").is_err() {
                self.ended = true;
            }
        }
        !self.ended
    }
}

fn open_crowd(port: u16) -> Vec<SlowClient> {
    let mut crowd =
        Vec::with_capacity(CROWD_HEAD_TRICKLERS + CROWD_BODY_TRICKLERS + CROWD_NON_READERS);
    let plan = [
        (SlowKind::HeadTrickler, CROWD_HEAD_TRICKLERS),
        (SlowKind::BodyTrickler, CROWD_BODY_TRICKLERS),
        (SlowKind::NonReader, CROWD_NON_READERS),
    ];
    for (kind, count) in plan {
        for _ in 0..count {
            let (mut stream, opening): (TcpStream, &[u8]) = match kind {
                SlowKind::HeadTrickler => (
                    slow::connect(port),
                    b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
                ),
                SlowKind::BodyTrickler => (
                    slow::connect(port),
                    b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n",
                ),
                SlowKind::NonReader => (
                    slow::connect_with_receive_buffer(port, NON_READER_RECEIVE_BUFFER),
                    BIG_REQUEST,
                ),
            };
            stream
                .write_all(opening)
                .unwrap_or_else(|error| panic!("failed to start a {kind:?}: {error}"));
            stream
                .set_nonblocking(true)
                .unwrap_or_else(|error| panic!("failed to make a socket non-blocking: {error}"));
            crowd.push(SlowClient {
                kind,
                stream,
                next_send: Instant::now(),
                answer: Vec::new(),
                ended: false,
            });
        }
    }
    crowd
}

/// Returns the value at `percent` of `sorted` by the nearest-rank method.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// Figures sampled from ringfront while the crowd runs.
#[derive(Debug, Default)]
struct Peak {
    rss_kib: u64,
    open_fds: usize,
}

/// A scaled-down slow-client attack on one worker: trickled heads, trickled bodies and clients
/// that never read a large response, all at once, while a normal client makes sequential
/// requests. Speed is measured by `scripts/stress.sh`; this test prints the normal client's
/// latency and asserts only that its requests succeed.
#[test]
fn slow_client_crowd() {
    let site = site();
    let ringfront = config(&site)
        .timeout("request_head", "\"2s\"")
        .timeout("request_body", "\"3s\"")
        .start();
    let port = ringfront.http_port();
    let pid = pid_of(&ringfront);

    // Load big.bin into the cache first, so the idle figures include it.
    let warm_up = plain_request(port, BIG_REQUEST);
    assert_eq!(warm_up.body.len(), BIG_FILE_BYTES);
    thread::sleep(Duration::from_millis(200));
    let idle_fds = procfs::open_fd_count(pid);
    let idle_rss_kib = procfs::rss_kib(pid);

    let mut crowd = open_crowd(port);
    let started = Instant::now();
    let (latencies, peak, mut crowd) = thread::scope(|scope| {
        let driver = scope.spawn(move || {
            let mut peak = Peak::default();
            let mut last_sample = Instant::now() - Duration::from_secs(1);
            while started.elapsed() < CROWD_DRIVE_LIMIT {
                let now = Instant::now();
                let mut waiting = 0usize;
                for client in crowd.iter_mut() {
                    waiting += usize::from(client.drive(now));
                }
                if now.duration_since(last_sample) >= Duration::from_millis(100) {
                    last_sample = now;
                    peak.rss_kib = peak.rss_kib.max(procfs::rss_kib(pid));
                    peak.open_fds = peak.open_fds.max(procfs::open_fd_count(pid));
                }
                if waiting == 0 {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            (peak, crowd)
        });

        let mut latencies = Vec::with_capacity(CROWD_NORMAL_REQUESTS);
        for index in 0..CROWD_NORMAL_REQUESTS {
            let sent = Instant::now();
            let response = plain_request(port, STYLE_REQUEST);
            latencies.push(sent.elapsed());
            assert_eq!(response.status, 200, "normal request {index}");
        }
        let Ok((peak, crowd)) = driver.join() else {
            panic!("the crowd's driver thread panicked");
        };
        (latencies, peak, crowd)
    });
    let driven_for = started.elapsed();

    // Every slow connection must be gone on the server's side while the clients still hold
    // theirs open, so only the server's timeouts can have closed them.
    let fds_after = wait_for_fd_count(pid, idle_fds + CROWD_FD_SLACK, Duration::from_secs(10));
    let rss_after_kib = procfs::rss_kib(pid);
    let answered_408 = |kind: SlowKind| {
        crowd
            .iter()
            .filter(|client| client.kind == kind && client.answer.starts_with(b"HTTP/1.1 408 "))
            .count()
    };
    let heads_408 = answered_408(SlowKind::HeadTrickler);
    let bodies_408 = answered_408(SlowKind::BodyTrickler);
    crowd.clear();

    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "normal client, {CROWD_NORMAL_REQUESTS} requests: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&sorted, 50),
        percentile(&sorted, 99),
        sorted.last().copied().unwrap_or_default()
    );
    println!(
        "ringfront RSS: idle {idle_rss_kib} KiB, peak {} KiB, after {rss_after_kib} KiB; \
         open fds: idle {idle_fds}, peak {}, after {fds_after}; crowd driven for {driven_for:?}",
        peak.rss_kib, peak.open_fds
    );

    assert_eq!(heads_408, CROWD_HEAD_TRICKLERS);
    assert_eq!(bodies_408, CROWD_BODY_TRICKLERS);
    assert!(
        peak.rss_kib < CROWD_RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        peak.rss_kib
    );
    assert!(
        peak.open_fds >= idle_fds + CROWD_HEAD_TRICKLERS,
        "the crowd never got in: peak {} descriptors",
        peak.open_fds
    );
    assert!(
        fds_after <= idle_fds + CROWD_FD_SLACK,
        "{fds_after} descriptors open, {idle_fds} when idle"
    );
}

/// With a receive pool of one buffer, requests arriving together find the pool empty, and each
/// receive must fall back to a buffer of its own instead of failing the connection. Handshakes
/// and requests both go through the pool.
#[test]
fn empty_receive_pool_falls_back() {
    const CONNECTIONS: usize = 32;
    let site = site();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = tls_config(&site, &cert)
        .server("receive_buffers", "1")
        .start();
    let expected = site.read("static/style.css");

    // Handshakes in parallel, so that their records also arrive together.
    let port = ringfront.https_port();
    let mut connections: Vec<Connection> = thread::scope(|scope| {
        let handshakes: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                scope.spawn(|| {
                    let mut connection = Connection::https(port, &cert);
                    connection.handshake().map(|()| connection)
                })
            })
            .collect();
        handshakes
            .into_iter()
            .enumerate()
            .map(|(index, handshake)| match handshake.join().expect("handshake thread") {
                Ok(connection) => connection,
                Err(error) => panic!("TLS connection {index}: handshake failed: {error}"),
            })
            .collect()
    });
    connections.extend((0..CONNECTIONS).map(|_| Connection::plain(ringfront.http_port())));

    for round in 0..3 {
        for connection in &mut connections {
            connection.send(STYLE_REQUEST);
        }
        for (index, connection) in connections.iter_mut().enumerate() {
            let response = connection.read_response();
            assert_eq!(response.status, 200, "round {round}, connection {index}");
            assert!(response.body == expected, "round {round}, connection {index}: body differs");
        }
    }
}

/// A page set in `[error_pages]` is also the body of the errors in a request itself, as with
/// nginx's `error_page`. A status without one keeps the built-in page.
#[test]
fn error_pages_for_request_errors() {
    let pages = common::TempDir::new("request-error-pages");
    let bad_request = b"<html><body>that request was not understood</body></html>\n";
    let too_long = b"<html><body>that address is too long</body></html>\n";
    let ringfront = Config::new()
        .http()
        .error_page(400, pages.write("400.html", bad_request))
        .error_page(414, pages.write("414.html", too_long))
        .limit("max_uri_bytes", 64)
        .start();
    let port = ringfront.http_port();

    let response = plain_request(port, b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 400);
    assert_eq!(response.body, bad_request);
    assert_eq!(response.header("server"), Some("ringfront"));
    assert_eq!(response.header("connection"), Some("close"));

    let long_target = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(100));
    let response = plain_request(port, long_target.as_bytes());
    assert_eq!(response.status, 414);
    assert_eq!(response.body, too_long);

    let response = plain_request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(response.status, 400);
    assert_eq!(response.body, bad_request, "a framing error is a 400 too");
    let response = plain_request(port, b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 505);
    assert!(String::from_utf8_lossy(&response.body).contains("505"), "the built-in page");

    // RFC 9110 §9.3.2: the response to HEAD has GET's head and no body.
    let mut connection = Connection::plain(port);
    connection.send(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    let response = connection.read_head_response();
    let length = bad_request.len().to_string();
    assert_eq!(response.status, 400);
    assert_eq!(response.header("content-length"), Some(length.as_str()));
    let end = connection.wait_for_end(Duration::from_secs(5));
    assert!(end.received.is_empty(), "bytes after the head of a HEAD response: {:?}", String::from_utf8_lossy(&end.received));
}

/// A page set in `[error_pages]` replaces the static server's built-in body too, and a 405 keeps
/// its Allow field. A HEAD request gets the page's length and no body.
#[test]
fn error_pages_for_static_errors() {
    let site = Site::create();
    let pages = common::TempDir::new("static-error-pages");
    let not_found = b"<html><body>no such page here</body></html>\n";
    let not_allowed = b"<html><body>only reading is allowed</body></html>\n";
    let ringfront = Config::new()
        .http()
        .static_dir("/static/", site.static_dir())
        .error_page(404, pages.write("404.html", not_found))
        .error_page(405, pages.write("405.html", not_allowed))
        .start();
    let port = ringfront.http_port();

    let response = plain_request(port, b"GET /static/missing.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 404);
    assert_eq!(response.body, not_found);
    assert_eq!(response.header("server"), Some("ringfront"));

    let length = not_found.len().to_string();
    let mut connection = Connection::plain(port);
    connection.send(b"HEAD /static/missing.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = connection.read_head_response();
    assert_eq!(response.status, 404);
    assert_eq!(response.header("content-length"), Some(length.as_str()));
    assert!(response.body.is_empty());

    let response = plain_request(port, b"DELETE /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 405);
    assert_eq!(response.body, not_allowed);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}
