//! Static files over TLS: bytes identical to the files on disk, gzip that decompresses to them,
//! revalidation with the ETag, 404, requests that try to reach files outside the static
//! directory, and one load for a burst of requests for a file not yet cached.

mod common;

use common::{
    Config, Connection, Response, Ringfront, SECRET_MARKER, Site, TestCert, contains_bytes,
    https_request,
};

/// ringfront serving `site` under `/static/` and `/resources/` over HTTPS, with the stub
/// upstream behind it.
struct Fixture {
    ringfront: Ringfront,
    cert: TestCert,
    site: Site,
}

impl Fixture {
    fn start() -> Fixture {
        let site = Site::create();
        let cert = TestCert::generate(&["localhost"]);
        let ringfront = Config::new()
            .https(&cert)
            .static_dir("/static/", site.static_dir())
            .static_dir("/resources/", site.resources_dir())
            .start();
        Fixture {
            ringfront,
            cert,
            site,
        }
    }

    /// Sends `GET target` with `extra_headers` (each line ending in CRLF) over a new connection.
    fn get(&self, target: &str, extra_headers: &str) -> Response {
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}\r\n");
        https_request(self.ringfront.https_port(), &self.cert, request.as_bytes())
    }

    /// Requests `target` and checks that the response is an error without secret bytes. A closed
    /// connection without a response also keeps the secret.
    fn assert_secret_kept(&self, target: &str) {
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut connection = Connection::https(self.ringfront.https_port(), &self.cert);
        let _ = connection.try_send(request.as_bytes());
        let Ok(response) = connection.try_read_response(false) else {
            return;
        };
        assert!(
            !contains_bytes(&response.body, SECRET_MARKER),
            "{target} returned the secret with status {}",
            response.status
        );
        assert!(
            response.status >= 400,
            "{target} returned status {} instead of an error",
            response.status
        );
    }
}

fn gunzip(compressed: &[u8], expected_length: usize) -> Vec<u8> {
    let mut decompressor = libdeflater::Decompressor::new();
    let mut output = vec![0u8; expected_length];
    match decompressor.gzip_decompress(compressed, &mut output) {
        Ok(length) => {
            output.truncate(length);
            output
        }
        Err(error) => panic!("body is not valid gzip of {expected_length} bytes: {error:?}"),
    }
}

/// Requests that miss the cache while another request on the worker loads the same file wait
/// for that load, so a burst of requests for a file not yet cached reads and compresses it
/// once. The file is large and compressed at the slowest level, so that every request of the
/// burst arrives during the load.
#[test]
fn burst_for_uncached_file_loads_it_once() {
    const CONNECTIONS: usize = 12;
    let site = Site::create();
    let css: Vec<u8> = (0..120_000u32).flat_map(|rule| format!(".rule-{rule} {{ margin: {}px; }}\n", rule % 97).into_bytes()).collect();
    std::fs::write(site.static_dir().join("burst.css"), &css).unwrap();
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new()
        .workers(1)
        .https(&cert)
        .static_dir("/static/", site.static_dir())
        .static_cache("gzip_level", "12")
        .server("log_level", "\"ringfront=debug,info\"")
        .start();

    let mut connections: Vec<Connection> = (0..CONNECTIONS).map(|_| Connection::https(ringfront.https_port(), &cert)).collect();
    for connection in &mut connections {
        connection.handshake().expect("a TLS handshake");
    }
    for connection in &mut connections {
        connection.send(b"GET /static/burst.css HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n");
    }
    for (index, connection) in connections.iter_mut().enumerate() {
        let response = connection.read_response();
        assert_eq!(response.status, 200, "request {index}");
        assert_eq!(response.header("content-encoding"), Some("gzip"), "request {index}");
        assert!(gunzip(&response.body, css.len()) == css, "request {index}: the body differs");
    }

    // The line is written before the first response, but read from the process by another thread.
    let output = ringfront.wait_for_output("static file loaded", 1, std::time::Duration::from_secs(10));
    let loads = output.matches("static file loaded").count();
    assert_eq!(loads, 1, "{CONNECTIONS} requests for one file loaded it {loads} times");
    // The line is logged in the span of the connection that ran the load, which names its worker.
    let line = output.lines().find(|line| line.contains("static file loaded")).unwrap_or_default();
    assert!(line.contains("worker=0"), "{line}");
}

#[test]
fn static_css_identical() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/style.css", "");
    assert_eq!(response.status, 200);
    assert!(
        response.body == fixture.site.read("static/style.css"),
        "body differs from the file"
    );
}

#[test]
fn static_binary_identical() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/noise.bin", "");
    assert_eq!(response.status, 200);
    assert!(
        response.body == fixture.site.read("static/noise.bin"),
        "body differs from the file"
    );
}

#[test]
fn static_subdirectory() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/sub/page.txt", "");
    assert_eq!(response.body, fixture.site.read("static/sub/page.txt"));
}

#[test]
fn static_second_prefix() {
    let fixture = Fixture::start();
    let response = fixture.get("/resources/readme.txt", "");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, fixture.site.read("resources/readme.txt"));
}

#[test]
fn static_content_type() {
    let fixture = Fixture::start();
    let css = fixture.get("/static/style.css", "");
    let svg = fixture.get("/static/logo.svg", "");
    assert!(
        css.header("content-type")
            .is_some_and(|value| value.starts_with("text/css"))
    );
    assert!(
        svg.header("content-type")
            .is_some_and(|value| value.starts_with("image/svg+xml"))
    );
}

#[test]
fn static_head_no_body() {
    let fixture = Fixture::start();
    let file = fixture.site.read("static/style.css");
    let request = b"HEAD /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let response = https_request(fixture.ringfront.https_port(), &fixture.cert, request);
    let expected_length = file.len().to_string();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-length"),
        Some(expected_length.as_str())
    );
}

#[test]
fn static_gzip_decompresses() {
    let fixture = Fixture::start();
    let file = fixture.site.read("static/style.css");
    let response = fixture.get("/static/style.css", "Accept-Encoding: gzip\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert!(
        response.body.len() < file.len(),
        "gzip body is not smaller than the file"
    );
    assert!(
        gunzip(&response.body, file.len()) == file,
        "gunzipped body differs from the file"
    );
}

#[test]
fn static_gzip_vary() {
    let fixture = Fixture::start();
    let response = fixture.get(
        "/static/style.css",
        "Accept-Encoding: gzip, deflate, br\r\n",
    );
    assert!(response.header_has_token("vary", "accept-encoding"));
}

#[test]
fn static_identity_vary() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/style.css", "");
    assert_eq!(response.header("content-encoding"), None);
    assert!(response.header_has_token("vary", "accept-encoding"));
}

#[test]
fn static_gzip_refused_by_q0() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/style.css", "Accept-Encoding: gzip;q=0\r\n");
    assert_eq!(response.header("content-encoding"), None);
    assert!(
        response.body == fixture.site.read("static/style.css"),
        "body differs from the file"
    );
}

#[test]
fn static_etag_304() {
    let fixture = Fixture::start();
    let first = fixture.get("/static/app.js", "");
    let Some(etag) = first.header("etag") else {
        panic!("no ETag on {first:?}");
    };
    let second = fixture.get("/static/app.js", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(second.status, 304);
    assert!(second.body.is_empty());
}

#[test]
fn static_etag_mismatch_200() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/app.js", "If-None-Match: \"not-the-etag\"\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, fixture.site.read("static/app.js"));
}

#[test]
fn static_gzip_etag_304() {
    let fixture = Fixture::start();
    let first = fixture.get("/static/style.css", "Accept-Encoding: gzip\r\n");
    let Some(etag) = first.header("etag") else {
        panic!("no ETag on the gzip response");
    };
    let headers = format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n");
    let second = fixture.get("/static/style.css", &headers);
    assert_eq!(second.status, 304);
}

#[test]
fn static_missing_404() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/missing.css", "");
    assert_eq!(response.status, 404);
}

#[test]
fn static_keep_alive() {
    let fixture = Fixture::start();
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    let first = connection.request(b"GET /static/app.js HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let second = connection.request(b"GET /static/logo.svg HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(first.body, fixture.site.read("static/app.js"));
    assert_eq!(second.body, fixture.site.read("static/logo.svg"));
}

#[test]
fn traversal_dot_dot() {
    let fixture = Fixture::start();
    for target in [
        "/static/../Cargo.toml",
        "/static/../secret",
        "/static/sub/../../secret",
    ] {
        fixture.assert_secret_kept(target);
    }
}

#[test]
fn traversal_encoded_dots() {
    let fixture = Fixture::start();
    for target in [
        "/static/%2e%2e/secret",
        "/static/%2E%2E/Cargo.toml",
        "/static/.%2e/secret",
    ] {
        fixture.assert_secret_kept(target);
    }
}

#[test]
fn traversal_encoded_slash() {
    let fixture = Fixture::start();
    for target in [
        "/static/..%2fsecret",
        "/static/%2e%2e%2f%2e%2e%2fsecret",
        "/static/..%2Fsecret",
    ] {
        fixture.assert_secret_kept(target);
    }
}

#[test]
fn traversal_double_encoded() {
    let fixture = Fixture::start();
    for target in ["/static/%252e%252e/secret", "/static/%252e%252e%252fsecret"] {
        fixture.assert_secret_kept(target);
    }
}

#[test]
fn traversal_backslash() {
    let fixture = Fixture::start();
    for target in [
        "/static/..\\secret",
        "/static/..%5csecret",
        "/static/%5c..%5csecret",
    ] {
        fixture.assert_secret_kept(target);
    }
}

#[test]
fn traversal_nul_byte() {
    let fixture = Fixture::start();
    for target in [
        "/static/../secret%00",
        "/static/%00/../secret",
        "/static/secret%00.css",
    ] {
        fixture.assert_secret_kept(target);
    }
}

#[test]
fn traversal_symlink_file() {
    let fixture = Fixture::start();
    fixture.assert_secret_kept("/static/escape.txt");
}

#[test]
fn traversal_symlink_dir() {
    let fixture = Fixture::start();
    fixture.assert_secret_kept("/static/escape-dir/secret");
}

#[test]
fn tls_handshake_trusted() {
    let fixture = Fixture::start();
    let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
    let handshake = connection.handshake();
    assert!(handshake.is_ok(), "TLS handshake failed: {handshake:?}");
}
