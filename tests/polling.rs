//! The polling driver, which compio selects where io_uring is blocked (by a seccomp filter such
//! as Docker's default, or by the locked-memory limit). Debug builds use it when
//! `RINGFRONT_TEST_POLLING_DRIVER` is set. On it the server logs a warning at start, serves
//! static files over plain HTTP and TLS, proxies request bodies to Gunicorn, serves parked
//! connections, and stops cleanly.

mod common;

use std::thread;
use std::time::Duration;

use common::{Config, Connection, Gunicorn, Site, TestCert, pattern_bytes};

/// The warning of a worker on the polling driver.
const POLLING_LINE: &str = "the worker uses the slower polling driver";

#[test]
fn polling_driver_serves() {
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let mut ringfront = Config::new()
        .workers(2)
        .http()
        .https(&cert)
        .static_dir("/static/", site.static_dir())
        .upstream(&gunicorn)
        .env("RINGFRONT_TEST_POLLING_DRIVER", "1")
        .start();
    ringfront.wait_for_output(POLLING_LINE, 2, Duration::from_secs(10));
    let style = site.read("static/style.css");
    let body = pattern_bytes(300_000);
    let mut post = format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    post.extend_from_slice(&body);

    for (transport, mut connection) in [
        ("plain", Connection::plain(ringfront.http_port())),
        ("TLS", Connection::https(ringfront.https_port(), &cert)),
    ] {
        let response = connection.request(b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(response.status, 200, "{transport}: static file");
        assert!(response.body == style, "{transport}: static file: body differs");

        // Past the one second after which an idle connection parks.
        thread::sleep(Duration::from_millis(1500));
        let response = connection.request(&post);
        assert_eq!(response.status, 200, "{transport}: proxied request: {}", response.body_text());
        assert!(response.body == body, "{transport}: proxied request: body differs");
    }

    let status = ringfront.terminate();
    assert!(status.success(), "exit status {status:?}:\n{}", ringfront.output());
}
