//! Tests of the test harness itself, with no ringfront involved: the response parser, the
//! certificates, the TLS client against an in-process rustls server, and the test Flask app
//! under Gunicorn reached directly over its Unix socket.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::response::{Parsed, parse_response, read_response};
use common::{Connection, Gunicorn, Response, TestCert, chunked, noise_bytes, pattern_bytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn parse_complete(input: &[u8]) -> (Response, usize) {
    match parse_response(input, false, false) {
        Ok(Parsed::Complete(response, used)) => (response, used),
        other => panic!("expected a complete response, got {other:?}"),
    }
}

#[test]
fn parser_content_length() {
    let (response, used) = parse_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(response.status, 200);
    assert_eq!(response.reason, "OK");
    assert_eq!(response.body, b"hello");
    assert_eq!(used, 43);
}

#[test]
fn parser_chunked_body() {
    let mut input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend_from_slice(&chunked(b"hello world", 4));
    let (response, used) = parse_complete(&input);
    assert_eq!(response.body, b"hello world");
    assert_eq!(used, input.len());
}

#[test]
fn parser_pipelined_in_order() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\n\
                  Content-Length: 2\r\n\r\nbc";
    let (first, used) = parse_complete(input);
    let (second, _) = parse_complete(&input[used..]);
    assert_eq!(first.body, b"a");
    assert_eq!(second.status, 404);
    assert_eq!(second.body, b"bc");
}

#[test]
fn parser_head_has_no_body() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let parsed = parse_response(input, true, false);
    assert!(matches!(parsed, Ok(Parsed::Complete(ref response, used))
        if response.body.is_empty() && used == input.len()));
}

#[test]
fn parser_not_modified_has_no_body() {
    let (response, _) = parse_complete(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
    assert!(response.body.is_empty());
}

#[test]
fn parser_body_until_close() {
    let input = b"HTTP/1.1 200 OK\r\n\r\nrest of it";
    assert!(matches!(
        parse_response(input, false, false),
        Ok(Parsed::Incomplete)
    ));
    let parsed = parse_response(input, false, true);
    assert!(
        matches!(parsed, Ok(Parsed::Complete(ref response, _)) if response.body == b"rest of it")
    );
}

#[test]
fn parser_incomplete_body() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    assert!(matches!(
        parse_response(input, false, false),
        Ok(Parsed::Incomplete)
    ));
}

#[test]
fn parser_rejects_bare_lf() {
    let input = b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n";
    assert!(parse_response(input, false, false).is_err());
}

#[test]
fn parser_rejects_bad_status() {
    assert!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n", false, false).is_err());
    assert!(parse_response(b"HTTP/2 200 OK\r\n\r\n", false, false).is_err());
}

#[test]
fn parser_reads_split_input() {
    // One byte per read: the reader must keep partial input between reads.
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, output: &mut [u8]) -> std::io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if let Some(slot) = output.first_mut() {
                *slot = first;
                self.0 = rest;
                return Ok(1);
            }
            Ok(0)
        }
    }
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n";
    let mut stream = OneByte(input);
    let mut buffer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = read_response(&mut stream, &mut buffer, false, deadline);
    let second = read_response(&mut stream, &mut buffer, false, deadline);
    assert!(matches!(first, Ok(ref response) if response.body == b"abc"));
    assert!(matches!(second, Ok(ref response) if response.status == 204));
}

#[test]
fn json_object_parses_escapes() {
    let response = Response {
        version: "HTTP/1.1".into(),
        status: 200,
        reason: "OK".into(),
        headers: Vec::new(),
        body: br#"{"a": "x\"y", "b": "\u0041\\"}"#.to_vec(),
    };
    let object = response.json_object();
    assert_eq!(object.get("a").map(String::as_str), Some("x\"y"));
    assert_eq!(object.get("b").map(String::as_str), Some("A\\"));
}

#[test]
fn cert_files_are_pem() {
    let cert = TestCert::generate(&["localhost", "127.0.0.1"]);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert.cert_path())
        .map(|iterator| iterator.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain.first(), Some(cert.cert_der()));
    assert!(PrivateKeyDer::from_pem_file(cert.key_path()).is_ok());
}

/// Serves one TLS connection with `cert`: reads one request head and sends a fixed response.
fn serve_tls_once(cert: &TestCert) -> (u16, thread::JoinHandle<Vec<u8>>) {
    let chain = CertificateDer::pem_file_iter(cert.cert_path())
        .map(|iterator| iterator.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default();
    let Ok(key) = PrivateKeyDer::from_pem_file(cert.key_path()) else {
        panic!("test key is not PEM");
    };
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key);
    let config = match config {
        Ok(config) => Arc::new(config),
        Err(error) => panic!("rustls rejected the test certificate: {error}"),
    };

    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        panic!("failed to bind a loopback listener");
    };
    let port = listener
        .local_addr()
        .map(|address| address.port())
        .unwrap_or_default();
    let server = thread::spawn(move || {
        let Ok((socket, _)) = listener.accept() else {
            return Vec::new();
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(session) = rustls::ServerConnection::new(config) else {
            return Vec::new();
        };
        let mut stream = rustls::StreamOwned::new(session, socket);
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return request,
                Ok(count) => request.extend_from_slice(&chunk[..count]),
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes");
        stream.conn.send_close_notify();
        let _ = stream.flush();
        request
    });
    (port, server)
}

#[test]
fn tls_client_trusts_test_ca() {
    let cert = TestCert::generate(&["localhost"]);
    let (port, server) = serve_tls_once(&cert);
    let response = common::https_request(port, &cert, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let request = server.join().unwrap_or_default();
    assert_eq!(response.body, b"yes");
    assert!(request.starts_with(b"GET / HTTP/1.1\r\n"));
}

#[test]
fn tls_client_rejects_other_ca() {
    let server_cert = TestCert::generate(&["localhost"]);
    let other_cert = TestCert::generate(&["localhost"]);
    let (port, server) = serve_tls_once(&server_cert);
    let mut connection = Connection::https(port, &other_cert);
    assert!(connection.handshake().is_err());
    drop(connection);
    let _ = server.join();
}

#[test]
fn tls_client_rejects_wrong_name() {
    let cert = TestCert::generate(&["localhost"]);
    let (port, server) = serve_tls_once(&cert);
    let mut connection = Connection::https_with_name(port, &cert, "other.test");
    assert!(connection.handshake().is_err());
    drop(connection);
    let _ = server.join();
}

/// Sends `raw` to Gunicorn's socket directly and reads the response.
fn unix_request(gunicorn: &Gunicorn, raw: &[u8]) -> Response {
    let mut stream = match UnixStream::connect(gunicorn.socket_path()) {
        Ok(stream) => stream,
        Err(error) => panic!("failed to connect to gunicorn: {error}"),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    if let Err(error) = stream.write_all(raw) {
        panic!("failed to send to gunicorn: {error}");
    }
    let mut buffer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    match read_response(&mut stream, &mut buffer, false, deadline) {
        Ok(response) => response,
        Err(error) => panic!("no response from gunicorn: {error}\n{}", gunicorn.output()),
    }
}

#[test]
fn testapp_hello() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let response = unix_request(&gunicorn, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello from gunicorn\n");
}

#[test]
fn testapp_echo_identical() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let body = noise_bytes(1024 * 1024);
    let mut raw = format!(
        "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let response = unix_request(&gunicorn, &raw);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        response.body == body,
        "echoed body differs from the body sent"
    );
}

#[test]
fn testapp_headers_json() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let raw = b"POST /headers HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 192.0.2.7\r\n\
                X-Forwarded-Proto: https\r\nContent-Length: 3\r\n\r\nabc";
    let headers = unix_request(&gunicorn, raw).json_object();
    assert_eq!(
        headers.get("host").map(String::as_str),
        Some("example.test")
    );
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("192.0.2.7")
    );
    assert_eq!(
        headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );
    assert_eq!(headers.get("content-length").map(String::as_str), Some("3"));
    assert_eq!(headers.get("transfer-encoding"), None);
}

#[test]
fn testapp_big_pattern() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let response = unix_request(
        &gunicorn,
        b"GET /big?bytes=100000 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    assert!(
        response.body == pattern_bytes(100_000),
        "body differs from the pattern"
    );
}

#[test]
fn testapp_slow_waits() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let started = Instant::now();
    let response = unix_request(&gunicorn, b"GET /slow?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(response.body, b"slept 200 ms\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn testapp_status_code() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let response = unix_request(&gunicorn, b"DELETE /status/418 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(response.status, 418);
    assert_eq!(response.body, b"status 418\n");
}

#[test]
fn gunicorn_stop_closes_socket() {
    let mut gunicorn = Gunicorn::start("testapp:app", 2, "sync");
    let status = gunicorn.stop();
    assert!(status.success(), "gunicorn exited with {status}");
    assert!(UnixStream::connect(gunicorn.socket_path()).is_err());
}

#[test]
fn stub_upstream_responds_404() {
    let stub = common::StubUpstream::start();
    let mut stream = match UnixStream::connect(stub.socket_path()) {
        Ok(stream) => stream,
        Err(error) => panic!("failed to connect to the stub: {error}"),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let mut buffer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let response = read_response(&mut stream, &mut buffer, false, deadline);
    assert!(matches!(response, Ok(ref response)
        if response.status == 404 && response.body == common::STUB_BODY));
}

#[test]
fn config_renders_valid_toml() {
    let cert = TestCert::generate(&["localhost", "app.test"]);
    let config = common::Config::new()
        .redirect()
        .https(&cert)
        .http()
        .limit("max_body_bytes", 1024)
        .static_dir("/static/", "/srv/a \"quoted\" dir")
        .static_dir("/resources/", "/srv/resources")
        .upstream_setting("read_timeout", "\"1s\"")
        .to_toml(std::path::Path::new("/run/app.sock"));
    let table: toml::Table = match config.parse() {
        Ok(table) => table,
        Err(error) => panic!("config is not valid TOML: {error}\n{config}"),
    };
    let https_listen = table["https"]["listen"][0].as_str();
    let names = table["https"]["server_names"].as_array().map(Vec::len);
    let static_dir = table["static"][0]["dir"].as_str();
    assert_eq!(https_listen, Some("127.0.0.1:{https_port}"));
    assert_eq!(names, Some(2));
    assert_eq!(static_dir, Some("/srv/a \"quoted\" dir"));
    assert_eq!(table["limits"]["max_body_bytes"].as_integer(), Some(1024));
    assert_eq!(table["upstream"]["unix"].as_str(), Some("/run/app.sock"));
    assert_eq!(table["upstream"]["read_timeout"].as_str(), Some("1s"));
}
