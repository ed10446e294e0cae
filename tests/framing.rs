//! Request framing on the plain listener: every ambiguous or malformed message gets `400` and a
//! closed connection (RFC 9112 §6.3 and §2.2), oversized heads and targets get `431` and `414`,
//! and pipelined requests get their responses in order.

mod common;

use std::thread;
use std::time::Duration;

use common::{Config, Connection, Gunicorn, Ringfront, Site, TestCert, noise_bytes, pattern_bytes};

/// ringfront with only the plain listener and the stub upstream, for requests that must be
/// rejected before any upstream receives them.
fn start_plain() -> Ringfront {
    Config::new().http().start()
}

/// Sends `raw` and checks for a `400` response followed by the server closing the connection.
fn assert_rejected(raw: &[u8]) {
    let ringfront = start_plain();
    let mut connection = Connection::plain(ringfront.http_port());
    let _ = connection.try_send(raw);
    let response = connection.read_response();
    assert_eq!(
        response.status,
        400,
        "request {:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(
        connection.is_closed_by_peer(),
        "connection still open after 400"
    );
}

#[test]
fn length_and_chunked() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn chunked_and_length() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
          Content-Length: 5\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn differing_lengths() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n\
          hello!",
    );
}

#[test]
fn differing_lengths_in_one_field() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!",
    );
}

#[test]
fn invalid_length_negative() {
    assert_rejected(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n");
}

#[test]
fn invalid_length_plus_sign() {
    assert_rejected(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello");
}

#[test]
fn invalid_length_hex() {
    assert_rejected(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\nhello");
}

#[test]
fn transfer_encoding_only_gzip() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    );
}

#[test]
fn transfer_encoding_chunked_not_last() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n\
          0\r\n\r\n",
    );
}

#[test]
fn transfer_encoding_unknown() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_size_not_hex() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_size_overflow() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          1000000000000000000000005\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_data_without_crlf() {
    assert_rejected(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhelloXX0\r\n\r\n",
    );
}

/// RFC 9112 §7.1.1: chunk extensions that break the `chunk-ext` grammar get 400, and well-formed
/// ones are discarded while the body still reaches the application.
#[test]
fn chunk_extension_grammar() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = Config::new().http().upstream(&gunicorn).start();
    let head = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";

    let well_formed = [
        head.as_slice(),
        b"5 ; name = \"v\\\"al\" ;flag\r\nhello\r\n0;last=1\r\n\r\n",
    ]
    .concat();
    let mut connection = Connection::plain(ringfront.http_port());
    let response = connection.request(&well_formed);
    assert_eq!(response.status, 200, "well-formed extensions");
    assert_eq!(response.body, b"hello", "well-formed extensions");

    let empty_name = [head.as_slice(), b"5;\r\nhello\r\n0\r\n\r\n"].concat();
    let mut connection = Connection::plain(ringfront.http_port());
    let _ = connection.try_send(&empty_name);
    let response = connection.read_response();
    assert_eq!(response.status, 400, "empty extension name");
    assert!(
        connection.is_closed_by_peer(),
        "connection still open after 400"
    );
}

#[test]
fn bare_lf_line_ends() {
    assert_rejected(b"GET /hello HTTP/1.1\nHost: localhost\n\n");
}

#[test]
fn bare_lf_after_header() {
    assert_rejected(b"GET /hello HTTP/1.1\r\nHost: localhost\nX-Test: 1\r\n\r\n");
}

#[test]
fn bare_cr_in_header() {
    assert_rejected(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Test: a\rb\r\n\r\n");
}

#[test]
fn bare_cr_line_end() {
    assert_rejected(b"GET /hello HTTP/1.1\rHost: localhost\r\n\r\n");
}

#[test]
fn huge_head_431() {
    let ringfront = start_plain();
    let mut request = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for index in 0..20 {
        request.extend_from_slice(format!("X-Filler-{index}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let mut connection = Connection::plain(ringfront.http_port());
    let _ = connection.try_send(&request);
    let response = connection.read_response();
    assert_eq!(response.status, 431);
}

#[test]
fn head_below_limit_accepted() {
    let ringfront = start_plain();
    let mut request = b"GET /static-missing HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for index in 0..10 {
        request.extend_from_slice(format!("X-Filler-{index}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let response = common::plain_request(ringfront.http_port(), &request);
    assert_eq!(response.body, common::STUB_BODY);
}

#[test]
fn huge_uri_414() {
    let ringfront = start_plain();
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(9000)
    );
    let mut connection = Connection::plain(ringfront.http_port());
    let _ = connection.try_send(request.as_bytes());
    let response = connection.read_response();
    assert_eq!(response.status, 414);
}

#[test]
fn split_across_writes() {
    let ringfront = start_plain();
    let request =
        b"POST /anything HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n0\r\n\r\n";
    let mut connection = Connection::plain(ringfront.http_port());
    for piece in request.chunks(3) {
        connection.send(piece);
        thread::sleep(Duration::from_millis(2));
    }
    let response = connection.read_response();
    assert_eq!(response.body, common::STUB_BODY);
}

/// Gunicorn, the test site and ringfront with both on HTTPS and plain HTTP.
struct MixedFixture {
    ringfront: Ringfront,
    cert: TestCert,
    site: Site,
    _gunicorn: Gunicorn,
}

impl MixedFixture {
    fn start() -> MixedFixture {
        let gunicorn = Gunicorn::start("testapp:app", 2, "sync");
        let site = Site::create();
        let cert = TestCert::generate(&["localhost"]);
        let ringfront = Config::new()
            .https(&cert)
            .http()
            .static_dir("/static/", site.static_dir())
            .upstream(&gunicorn)
            .start();
        MixedFixture {
            ringfront,
            cert,
            site,
            _gunicorn: gunicorn,
        }
    }
}

/// Returns five requests, static and proxied mixed, in one buffer, and the bodies expected back
/// in order.
fn pipelined_batch(site: &Site) -> (Vec<u8>, Vec<Vec<u8>>) {
    let echo_body = noise_bytes(70_000);
    let mut batch = Vec::new();
    batch.extend_from_slice(b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n");
    batch.extend_from_slice(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    batch.extend_from_slice(b"GET /static/app.js HTTP/1.1\r\nHost: localhost\r\n\r\n");
    batch.extend_from_slice(
        format!(
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            echo_body.len()
        )
        .as_bytes(),
    );
    batch.extend_from_slice(&echo_body);
    batch.extend_from_slice(b"GET /big?bytes=200000 HTTP/1.1\r\nHost: localhost\r\n\r\n");

    let expected = vec![
        site.read("static/style.css"),
        b"hello from gunicorn\n".to_vec(),
        site.read("static/app.js"),
        echo_body,
        pattern_bytes(200_000),
    ];
    (batch, expected)
}

#[test]
fn pipelined_in_order_plain() {
    let fixture = MixedFixture::start();
    let (batch, expected) = pipelined_batch(&fixture.site);
    let mut connection = Connection::plain(fixture.ringfront.http_port());
    connection.send(&batch);
    for (index, body) in expected.iter().enumerate() {
        let response = connection.read_response();
        assert!(
            response.body == *body,
            "response {index} is not the one for request {index}"
        );
    }
}

#[test]
fn pipelined_in_order_tls() {
    let fixture = MixedFixture::start();
    let (batch, expected) = pipelined_batch(&fixture.site);
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    connection.send(&batch);
    for (index, body) in expected.iter().enumerate() {
        let response = connection.read_response();
        assert!(
            response.body == *body,
            "response {index} is not the one for request {index}"
        );
    }
}

#[test]
fn pipelined_after_error_closes() {
    let ringfront = start_plain();
    let mut connection = Connection::plain(ringfront.http_port());
    connection.send(
        b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n\
          POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy\
          GET /c HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let first = connection.read_response();
    let second = connection.read_response();
    assert_eq!(first.body, common::STUB_BODY);
    assert_eq!(second.status, 400);
    assert!(
        connection.is_closed_by_peer(),
        "connection still open after 400"
    );
}

/// RFC 9112 §9.3: an HTTP/1.0 client keeps a connection open only when the response carries
/// `Connection: keep-alive`, so every response to a keep-alive request from such a client must say
/// so, and the connection must then serve the next request.
#[test]
fn http10_keep_alive_echoed() {
    let site = Site::create();
    let ringfront = Config::new().http().static_dir("/static/", site.static_dir()).start();
    let mut connection = Connection::plain(ringfront.http_port());

    // (case, request, expected status)
    let cases: [(&str, &[u8], u16); 3] = [
        ("file", b"GET /static/style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
        ("missing file", b"GET /static/none.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 404),
        ("directory", b"GET /static/sub HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 301),
    ];
    for (case, request, status) in cases {
        let response = connection.request(request);
        assert_eq!(response.status, status, "{case}");
        assert!(response.header_has_token("connection", "keep-alive"), "{case}: {:?}", response.headers);
    }
}

#[test]
fn http10_keep_alive_echoed_on_redirect_listener() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new().redirect().https(&cert).start();
    let mut connection = Connection::plain(ringfront.redirect_port());
    for path in ["/one", "/two"] {
        let request = format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = connection.request(request.as_bytes());
        assert_eq!(response.status, 301, "{path}");
        assert!(response.header_has_token("connection", "keep-alive"), "{path}: {:?}", response.headers);
    }
}
