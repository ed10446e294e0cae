//! Requests proxied to Gunicorn: bodies in both framings, the X-Forwarded-* headers as the app receives them,
//! the body limit, and the gateway errors.

mod common;

use std::collections::BTreeMap;

use common::{
    Config, Connection, Gunicorn, Response, Ringfront, TestCert, chunked, noise_bytes,
    pattern_bytes,
};

/// Gunicorn with the test app, and ringfront in front of it on HTTPS and plain HTTP.
struct Fixture {
    ringfront: Ringfront,
    cert: TestCert,
    gunicorn: Gunicorn,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(|config| config)
    }

    /// Starts with the default config changed by `customize`.
    fn start_with(customize: impl FnOnce(Config) -> Config) -> Fixture {
        let gunicorn = Gunicorn::start("testapp:app", 2, "sync");
        let cert = TestCert::generate(&["localhost"]);
        let config = Config::new().https(&cert).http().upstream(&gunicorn);
        let ringfront = customize(config).start();
        Fixture {
            ringfront,
            cert,
            gunicorn,
        }
    }

    fn https(&self, raw: &[u8]) -> Response {
        common::https_request(self.ringfront.https_port(), &self.cert, raw)
    }

    /// Returns the headers the app saw for `raw`, a request to `/headers` sent over HTTPS.
    fn app_headers(&self, raw: &[u8]) -> BTreeMap<String, String> {
        let response = self.https(raw);
        assert_eq!(
            response.status,
            200,
            "GET /headers failed: {}",
            response.body_text()
        );
        response.json_object()
    }

    fn host(&self) -> String {
        format!("localhost:{}", self.ringfront.https_port())
    }
}

fn post_with_length(target: &str, host: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn post_chunked(target: &str, host: &str, body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&chunked(body, chunk_size));
    request
}

#[test]
fn proxy_get_hello() {
    let fixture = Fixture::start();
    let response = fixture.https(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello from gunicorn\n");
    // Gunicorn names itself in a Server header, which the edge replaces with its own.
    assert_eq!(response.headers_named("server"), vec!["ringfront"]);
}

#[test]
fn proxy_plain_listener() {
    let fixture = Fixture::start();
    let request = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let response = common::plain_request(fixture.ringfront.http_port(), request);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello from gunicorn\n");
}

#[test]
fn proxy_head_no_body() {
    let fixture = Fixture::start();
    let response = fixture.https(b"HEAD /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("20"));
}

#[test]
fn proxy_status_passthrough() {
    let fixture = Fixture::start();
    let response = fixture.https(b"GET /status/418 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 418);
    assert_eq!(response.body, b"status 418\n");
}

#[test]
fn proxy_no_content() {
    let fixture = Fixture::start();
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    let first = connection.request(b"GET /status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let second = connection.request(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(first.status, 204);
    assert_eq!(second.body, b"hello from gunicorn\n");
}

#[test]
fn proxy_big_response() {
    let fixture = Fixture::start();
    let response = fixture.https(b"GET /big?bytes=5000000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert!(
        response.body == pattern_bytes(5_000_000),
        "body differs from the app's pattern"
    );
}

#[test]
fn echo_length_1mib() {
    let fixture = Fixture::start();
    let body = noise_bytes(1024 * 1024);
    let response = fixture.https(&post_with_length("/echo", "localhost", &body));
    assert_eq!(response.status, 200);
    assert!(
        response.body == body,
        "echoed body differs from the body sent"
    );
}

#[test]
fn echo_chunked_1mib() {
    let fixture = Fixture::start();
    let body = noise_bytes(1024 * 1024);
    let response = fixture.https(&post_chunked("/echo", "localhost", &body, 10_000));
    assert_eq!(response.status, 200);
    assert!(
        response.body == body,
        "echoed body differs from the body sent"
    );
}

#[test]
fn echo_chunked_tiny_chunks() {
    let fixture = Fixture::start();
    let body = noise_bytes(5000);
    let response = fixture.https(&post_chunked("/echo", "localhost", &body, 7));
    assert!(
        response.body == body,
        "echoed body differs from the body sent"
    );
}

#[test]
fn echo_chunked_with_extension_and_trailer() {
    let fixture = Fixture::start();
    let request = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n";
    let response = fixture.https(request);
    assert_eq!(response.body, b"hello world");
}

#[test]
fn echo_empty_body() {
    let fixture = Fixture::start();
    let response = fixture.https(&post_with_length("/echo", "localhost", b""));
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
}

#[test]
fn chunked_reaches_app_with_length() {
    let fixture = Fixture::start();
    let headers = fixture.app_headers(&post_chunked("/headers", "localhost", &[b'x'; 3000], 1000));
    assert_eq!(
        headers.get("content-length").map(String::as_str),
        Some("3000")
    );
    assert_eq!(headers.get("transfer-encoding"), None);
}

#[test]
fn forwarded_for_client_address() {
    let fixture = Fixture::start();
    let headers = fixture.app_headers(b"GET /headers HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("127.0.0.1")
    );
}

#[test]
fn forwarded_for_client_value_dropped() {
    let fixture = Fixture::start();
    let request =
        b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n";
    let headers = fixture.app_headers(request);
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("127.0.0.1")
    );
}

#[test]
fn forwarded_proto_https() {
    let fixture = Fixture::start();
    let headers = fixture.app_headers(b"GET /headers HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );
}

#[test]
fn forwarded_proto_client_value_dropped() {
    let fixture = Fixture::start();
    let request = b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: http\r\n\r\n";
    let headers = fixture.app_headers(request);
    assert_eq!(
        headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );
}

#[test]
fn forwarded_proto_plain_http() {
    let fixture = Fixture::start();
    let request = b"GET /headers HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let response = common::plain_request(fixture.ringfront.http_port(), request);
    let headers = response.json_object();
    assert_eq!(
        headers.get("x-forwarded-proto").map(String::as_str),
        Some("http")
    );
}

#[test]
fn forwarded_host() {
    let fixture = Fixture::start();
    let host = fixture.host();
    let request = format!("GET /headers HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let headers = fixture.app_headers(request.as_bytes());
    assert_eq!(headers.get("x-forwarded-host"), Some(&host));
}

#[test]
fn forwarded_host_client_value_dropped() {
    let fixture = Fixture::start();
    let request =
        b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Host: attacker.test\r\n\r\n";
    let headers = fixture.app_headers(request);
    assert_eq!(
        headers.get("x-forwarded-host").map(String::as_str),
        Some("localhost")
    );
}

#[test]
fn host_reaches_app() {
    let fixture = Fixture::start();
    let host = fixture.host();
    let request = format!("GET /headers HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let headers = fixture.app_headers(request.as_bytes());
    assert_eq!(headers.get("host"), Some(&host));
}

#[test]
fn body_over_limit_413() {
    let fixture = Fixture::start_with(|config| config.limit("max_body_bytes", 1024));
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    // The server may respond after the head alone and stop reading, so a failed send is expected.
    let _ = connection.try_send(&post_with_length("/echo", "localhost", &[b'x'; 2048]));
    let response = connection.read_response();
    assert_eq!(response.status, 413);
}

#[test]
fn body_at_limit_accepted() {
    let fixture = Fixture::start_with(|config| config.limit("max_body_bytes", 1024));
    let body = noise_bytes(1024);
    let response = fixture.https(&post_with_length("/echo", "localhost", &body));
    assert_eq!(response.status, 200);
    assert!(
        response.body == body,
        "echoed body differs from the body sent"
    );
}

#[test]
fn chunked_over_limit_413() {
    let fixture = Fixture::start_with(|config| config.limit("max_body_bytes", 1024));
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    let _ = connection.try_send(&post_chunked("/echo", "localhost", &[b'x'; 4096], 512));
    let response = connection.read_response();
    assert_eq!(response.status, 413);
}

#[test]
fn upstream_down_502() {
    let mut fixture = Fixture::start();
    fixture.gunicorn.stop();
    let response = fixture.https(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 502);
}

#[test]
fn upstream_slow_504() {
    let fixture = Fixture::start_with(|config| config.upstream_setting("read_timeout", "\"1s\""));
    let response = fixture.https(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 504);
}

/// RFC 9110 §10.1.1: the edge answers `Expect: 100-continue` itself, then reads the body, and
/// the app never sees the Expect header.
#[test]
fn expect_continue_answered_by_edge() {
    let fixture = Fixture::start();
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    let body = pattern_bytes(64 * 1024);
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    connection.send(head.as_bytes());
    let interim = connection.read_response();
    assert_eq!(interim.status, 100);

    connection.send(&body);
    let response = connection.read_response();
    assert_eq!(response.status, 200);
    assert!(response.body == body, "echoed body differs from the body sent");
}

#[test]
fn expect_header_not_forwarded() {
    let fixture = Fixture::start();
    let headers = fixture.app_headers(
        b"POST /headers HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    );
    assert_eq!(headers.get("content-length").map(String::as_str), Some("2"));
    assert_eq!(headers.get("expect"), None);
}

#[test]
fn forwarded_header_from_client_dropped() {
    let fixture = Fixture::start();
    let headers = fixture.app_headers(
        b"GET /headers HTTP/1.1\r\nHost: localhost\r\nForwarded: for=10.9.9.9;proto=https\r\nX-Forwarded-Port: 1\r\n\r\n",
    );
    assert_eq!(headers.get("forwarded"), None);
    assert_eq!(headers.get("x-forwarded-port"), None);
}
