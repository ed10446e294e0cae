//! The `[redirect]` listener: every request gets `301` to the same path and query on the HTTPS
//! listener, at the request's host if it is a configured server name, else at the first one.

mod common;

use common::{Config, Response, Ringfront, TestCert, plain_request};

/// Starts ringfront with the redirect and HTTPS listeners and server names `localhost` and
/// `app.test`.
fn start() -> Ringfront {
    let cert = TestCert::generate(&["localhost", "app.test"]);
    Config::new().redirect().https(&cert).start()
}

fn get(ringfront: &Ringfront, target: &str, host: &str) -> Response {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    plain_request(ringfront.redirect_port(), request.as_bytes())
}

#[test]
fn redirect_status_301() {
    let ringfront = start();
    let response = get(&ringfront, "/", "localhost");
    assert_eq!(response.status, 301);
}

#[test]
fn redirect_known_host() {
    let ringfront = start();
    let host = format!("localhost:{}", ringfront.redirect_port());
    let response = get(&ringfront, "/account/login", &host);
    let expected = format!("https://localhost:{}/account/login", ringfront.https_port());
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_second_server_name() {
    let ringfront = start();
    let response = get(&ringfront, "/", "app.test");
    let expected = format!("https://app.test:{}/", ringfront.https_port());
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_forged_host() {
    let ringfront = start();
    let response = get(&ringfront, "/pay", "attacker.test");
    let expected = format!("https://localhost:{}/pay", ringfront.https_port());
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_forged_host_with_port() {
    let ringfront = start();
    let response = get(&ringfront, "/", "attacker.test:443");
    let expected = format!("https://localhost:{}/", ringfront.https_port());
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_query_kept() {
    let ringfront = start();
    let response = get(&ringfront, "/search?q=ring+front&page=2", "localhost");
    let expected = format!(
        "https://localhost:{}/search?q=ring+front&page=2",
        ringfront.https_port()
    );
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_path_verbatim() {
    let ringfront = start();
    let response = get(&ringfront, "/a%20b/%C3%A9t%C3%A9", "localhost");
    let expected = format!(
        "https://localhost:{}/a%20b/%C3%A9t%C3%A9",
        ringfront.https_port()
    );
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_post() {
    let ringfront = start();
    let request = b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello";
    let response = plain_request(ringfront.redirect_port(), request);
    let expected = format!("https://localhost:{}/form", ringfront.https_port());
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_http10_without_host() {
    let ringfront = start();
    let response = plain_request(ringfront.redirect_port(), b"GET /old HTTP/1.0\r\n\r\n");
    let expected = format!("https://localhost:{}/old", ringfront.https_port());
    assert_eq!(response.header("location"), Some(expected.as_str()));
}

#[test]
fn redirect_keep_alive() {
    let ringfront = start();
    let mut connection = common::Connection::plain(ringfront.redirect_port());
    let first = connection.request(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let second = connection.request(b"GET /two HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let expected = format!("https://localhost:{}/two", ringfront.https_port());
    assert_eq!(first.status, 301);
    assert_eq!(second.header("location"), Some(expected.as_str()));
}
