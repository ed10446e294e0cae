//! Request smuggling and malformed requests, sent over real sockets to ringfront in front of a
//! recording upstream. Each case checks both sides. The client must get the expected statuses in
//! order, and the connection must close after an error. The upstream must receive one
//! well-formed request, framed by Content-Length, per accepted client request, and nothing for a
//! rejected one, so a request hidden inside another can never reach the application.
//!
//! The same table runs over the plain listener, over TLS, and over the plain listener with every
//! request split across many small writes.

mod common;

use std::thread;
use std::time::Duration;

use common::{
    Config, Connection, ForwardedRequest, RECORDED_BODY, RecordingUpstream, Ringfront, TestCert,
    parse_forwarded,
};

/// Body limit of the ringfront under test, small so that a 413 needs only a few KiB.
const MAX_BODY_BYTES: u64 = 1024;

/// Number of pieces a request is cut into when it is sent split.
const SPLIT_PIECES: usize = 40;

/// Pause between two pieces of a split request, so that ringfront reads them separately.
const SPLIT_PAUSE: Duration = Duration::from_millis(1);

/// Head of a chunked POST to `/a`; the body follows.
const CHUNKED_POST: &[u8] =
    b"POST /a HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A GET that is valid on its own, appended after other requests.
const NEXT_GET: &[u8] = b"GET /next HTTP/1.1\r\nHost: h.test\r\n\r\n";

/// Chunk data that looks like the end of a chunked body followed by another request.
const HIDDEN_IN_CHUNK: &[u8] = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n";

/// Method, target and body of one request that the upstream must receive.
struct Expected {
    method: &'static str,
    target: &'static str,
    body: Vec<u8>,
}

fn expect(method: &'static str, target: &'static str, body: &[u8]) -> Expected {
    Expected {
        method,
        target,
        body: body.to_vec(),
    }
}

/// A check of the forwarded requests beyond method, target and body. Returns the rule broken.
type Check = Box<dyn Fn(&[ForwardedRequest]) -> Result<(), String>>;

/// One row of the table: the bytes the client sends and what both sides must see.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    /// Status of each response the client must get, in order.
    statuses: Vec<u16>,
    /// Whether ringfront must close the connection after the last response.
    closes: bool,
    /// Requests the upstream must receive, one connection each, in order.
    upstream: Vec<Expected>,
    check: Option<Check>,
}

impl Case {
    /// A request rejected with `status` and a closed connection, with nothing sent upstream.
    fn rejected(name: &'static str, request: impl AsRef<[u8]>, status: u16) -> Case {
        Case {
            name,
            request: request.as_ref().to_vec(),
            statuses: vec![status],
            closes: true,
            upstream: Vec::new(),
            check: None,
        }
    }

    /// Requests that each reach the upstream and get its `200`.
    fn forwarded(name: &'static str, request: impl AsRef<[u8]>, upstream: Vec<Expected>) -> Case {
        Case {
            name,
            request: request.as_ref().to_vec(),
            statuses: vec![200; upstream.len()],
            closes: false,
            upstream,
            check: None,
        }
    }

    /// Expects a last response with `status` after the forwarded ones, and then a close.
    fn then_rejected(mut self, status: u16) -> Case {
        self.statuses.push(status);
        self.closes = true;
        self
    }

    /// Expects ringfront to close the connection after the last response.
    fn then_closes(mut self) -> Case {
        self.closes = true;
        self
    }

    fn check(mut self, check: Check) -> Case {
        self.check = Some(check);
        self
    }
}

/// Checks that the first forwarded request has `name` with exactly `value`.
fn header_is(name: &'static str, value: &'static [u8]) -> Check {
    Box::new(move |requests| {
        let actual = requests.first().and_then(|request| request.header(name));
        if actual == Some(value) {
            return Ok(());
        }
        Err(format!(
            "{name} is {:?}, expected {:?}",
            actual.map(String::from_utf8_lossy),
            String::from_utf8_lossy(value)
        ))
    })
}

/// Checks that no forwarded request has a header named `name`.
fn header_absent(name: &'static str) -> Check {
    Box::new(
        move |requests| match requests.iter().find(|request| request.count(name) > 0) {
            Some(request) => Err(format!("{name} forwarded to {}", request.target)),
            None => Ok(()),
        },
    )
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Builds a chunked POST to `/a` with `body` as the raw chunked body.
fn chunked_post(body: &[u8]) -> Vec<u8> {
    concat(&[CHUNKED_POST, body])
}

/// Builds a POST to `/a` with the header line `field` (without CRLF) and the raw `body`.
fn post_with(field: &str, body: &[u8]) -> Vec<u8> {
    let head = format!("POST /a HTTP/1.1\r\nHost: h.test\r\n{field}\r\n\r\n");
    concat(&[head.as_bytes(), body])
}

/// Builds a GET of `/a` with the raw header line `field` (without CRLF).
fn get_with(field: &[u8]) -> Vec<u8> {
    concat(&[b"GET /a HTTP/1.1\r\nHost: h.test\r\n", field, b"\r\n\r\n"])
}

fn framing_cases() -> Vec<Case> {
    let hello = || vec![expect("POST", "/a", b"hello")];
    vec![
        Case::rejected(
            "cl_then_te",
            b"POST /a HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        Case::rejected(
            "te_then_cl",
            b"POST /a HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 5\r\n\r\n0\r\n\r\n",
            400,
        ),
        Case::rejected(
            "te_then_cl_zero",
            b"POST /a HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        Case::rejected(
            "te_http10",
            b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        Case::rejected(
            "te_and_cl_http10",
            b"POST /a HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
            400,
        ),
        Case::rejected(
            "cl_duplicate_differing",
            post_with("Content-Length: 5\r\nContent-Length: 6", b"hello!"),
            400,
        ),
        Case::forwarded(
            "cl_duplicate_identical",
            post_with("Content-Length: 5\r\nContent-Length: 5", b"hello"),
            hello(),
        ),
        Case::forwarded(
            "cl_comma_identical",
            post_with("Content-Length: 5, 5", b"hello"),
            hello(),
        ),
        Case::rejected(
            "cl_comma_differing",
            post_with("Content-Length: 5, 6", b"hello!"),
            400,
        ),
        Case::rejected(
            "cl_comma_trailing",
            post_with("Content-Length: 5,", b"hello"),
            400,
        ),
        Case::rejected(
            "cl_plus_sign",
            post_with("Content-Length: +5", b"hello"),
            400,
        ),
        Case::rejected(
            "cl_minus_sign",
            post_with("Content-Length: -5", b"hello"),
            400,
        ),
        Case::rejected(
            "cl_space_inside",
            post_with("Content-Length: 1 0", b"helloworld"),
            400,
        ),
        Case::rejected("cl_hex", post_with("Content-Length: 0x5", b"hello"), 400),
        Case::rejected(
            "cl_decimal_point",
            post_with("Content-Length: 5.0", b"hello"),
            400,
        ),
        Case::forwarded(
            "cl_leading_zeros",
            post_with("Content-Length: 0005", b"hello"),
            hello(),
        ),
        Case::rejected(
            "cl_overflow",
            post_with("Content-Length: 184467440737095516160005", b"hello"),
            400,
        ),
        Case::rejected(
            "cl_u64_max",
            post_with("Content-Length: 18446744073709551615", b"hello"),
            413,
        ),
        Case::rejected("cl_empty", post_with("Content-Length: ", b""), 400),
        Case::rejected(
            "cl_name_space",
            post_with("Content-Length : 5", b"hello"),
            400,
        ),
        Case::forwarded(
            "cl_on_get",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nhello",
            vec![expect("GET", "/a", b"hello")],
        ),
        Case::rejected(
            "te_chunked_twice",
            post_with("Transfer-Encoding: chunked, chunked", b"0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "te_chunked_two_fields",
            post_with(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                b"0\r\n\r\n",
            ),
            400,
        ),
        Case::rejected(
            "te_chunked_identity",
            post_with("Transfer-Encoding: chunked, identity", b"0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "te_chunked_then_identity_field",
            post_with(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
                b"0\r\n\r\n",
            ),
            400,
        ),
        Case::rejected(
            "te_identity",
            post_with("Transfer-Encoding: identity", b"hello"),
            400,
        ),
        Case::rejected(
            "te_gzip",
            post_with("Transfer-Encoding: gzip", b"hello"),
            400,
        ),
        Case::rejected(
            "te_gzip_chunked",
            post_with("Transfer-Encoding: gzip, chunked", b"0\r\n\r\n"),
            501,
        ),
        Case::rejected(
            "te_xchunked",
            post_with("Transfer-Encoding: xchunked", b"0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "te_chunked_parameter",
            post_with("Transfer-Encoding: chunked;q=1", b"0\r\n\r\n"),
            400,
        ),
        Case::rejected("te_empty", post_with("Transfer-Encoding: ", b"hello"), 400),
        Case::rejected(
            "te_empty_second_field",
            post_with(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: ",
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        Case::forwarded(
            "te_chunked_trailing_space",
            post_with("Transfer-Encoding: chunked \t", b"5\r\nhello\r\n0\r\n\r\n"),
            hello(),
        ),
        Case::forwarded(
            "te_chunked_uppercase",
            post_with("Transfer-Encoding: CHUNKED", b"5\r\nhello\r\n0\r\n\r\n"),
            hello(),
        ),
        Case::forwarded(
            "te_empty_list_element",
            post_with("Transfer-Encoding: , chunked", b"5\r\nhello\r\n0\r\n\r\n"),
            hello(),
        ),
        Case::rejected(
            "te_obs_fold",
            post_with("Transfer-Encoding:\r\n chunked", b"5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "te_obs_fold_after_value",
            post_with(
                "Transfer-Encoding: identity\r\n\tchunked",
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        Case::rejected(
            "te_name_trailing_space",
            post_with("Transfer-Encoding : chunked", b"5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "te_name_trailing_tab",
            post_with("Transfer-Encoding\t: chunked", b"5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "te_vertical_tab",
            post_with("Transfer-Encoding: \x0bchunked", b"5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::forwarded(
            "te_in_trailer",
            chunked_post(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            hello(),
        ),
        Case::forwarded(
            "cl_in_trailer",
            chunked_post(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
            hello(),
        ),
        Case::forwarded(
            "underscore_cl_dropped",
            post_with("Content-Length: 5\r\nContent_Length: 50", b"hello"),
            hello(),
        )
        .check(header_absent("content_length")),
        Case::forwarded(
            "underscore_te_dropped",
            post_with("Content-Length: 5\r\nTransfer_Encoding: chunked", b"hello"),
            hello(),
        )
        .check(header_absent("transfer_encoding")),
    ]
}

fn chunked_cases() -> Vec<Case> {
    let hello = || vec![expect("POST", "/a", b"hello")];
    vec![
        Case::forwarded(
            "chunk_plain",
            chunked_post(b"5\r\nhello\r\n0\r\n\r\n"),
            hello(),
        ),
        Case::forwarded(
            "chunk_size_leading_zeros",
            chunked_post(b"0005\r\nhello\r\n0000\r\n\r\n"),
            hello(),
        ),
        Case::forwarded(
            "chunk_size_uppercase_hex",
            chunked_post(b"A\r\nhelloworld\r\n0\r\n\r\n"),
            vec![expect("POST", "/a", b"helloworld")],
        ),
        Case::forwarded(
            "chunk_extension",
            chunked_post(b"5;name=\"va;lue\"\r\nhello\r\n0;last\r\n\r\n"),
            hello(),
        ),
        Case::rejected(
            "chunk_size_overflow",
            chunked_post(b"1000000000000000000000005\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_negative",
            chunked_post(b"-5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_plus",
            chunked_post(b"+5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_0x",
            chunked_post(b"0x5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_junk",
            chunked_post(b"5junk\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_space_junk",
            chunked_post(b"5 junk\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_trailing_space",
            chunked_post(b"5 \r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_missing",
            chunked_post(b"\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_bare_lf",
            chunked_post(b"5\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_size_bare_cr",
            chunked_post(b"5\rhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_data_no_crlf",
            chunked_post(b"5\r\nhelloXX0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_data_bare_lf",
            chunked_post(b"5\r\nhello\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_data_longer_than_size",
            chunked_post(b"5\r\nhelloGET /x HTTP/1.1\r\nHost: h.test\r\n\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_extension_too_long",
            chunked_post(&concat(&[
                b"5;",
                "e".repeat(2000).as_bytes(),
                b"\r\nhello\r\n0\r\n\r\n",
            ])),
            400,
        ),
        Case::rejected(
            "chunk_extension_control",
            chunked_post(b"5;a\x01b\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "chunk_over_body_limit",
            chunked_post(&concat(&[
                b"800\r\n",
                &vec![b'a'; 0x800],
                b"\r\n0\r\n\r\n",
                NEXT_GET,
            ])),
            413,
        ),
        Case::rejected(
            "chunks_sum_over_body_limit",
            chunked_post(&concat(&[
                b"200\r\n",
                &[b'a'; 0x200],
                b"\r\n200\r\n",
                &[b'b'; 0x200],
                b"\r\n1\r\nc\r\n0\r\n\r\n",
            ])),
            413,
        ),
        Case::rejected(
            "trailer_too_long",
            chunked_post(&concat(&[
                b"5\r\nhello\r\n0\r\nX-Pad: ",
                "a".repeat(9000).as_bytes(),
                b"\r\n\r\n",
            ])),
            431,
        ),
        Case::rejected(
            "trailer_obs_fold",
            chunked_post(b"5\r\nhello\r\n0\r\nX-A: 1\r\n folded\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "trailer_space_before_colon",
            chunked_post(b"5\r\nhello\r\n0\r\nX-A : 1\r\n\r\n"),
            400,
        ),
        Case::rejected(
            "last_chunk_without_final_crlf",
            chunked_post(&concat(&[b"5\r\nhello\r\n0\r\n", NEXT_GET])),
            400,
        ),
        Case::forwarded(
            "last_chunk_then_request",
            chunked_post(&concat(&[b"0\r\n\r\n", NEXT_GET])),
            vec![expect("POST", "/a", b""), expect("GET", "/next", b"")],
        ),
        Case::forwarded(
            "request_inside_chunk_data",
            chunked_post(&concat(&[
                format!("{:x}\r\n", HIDDEN_IN_CHUNK.len()).as_bytes(),
                HIDDEN_IN_CHUNK,
                b"\r\n0\r\n\r\n",
            ])),
            vec![expect("POST", "/a", HIDDEN_IN_CHUNK)],
        ),
    ]
}

fn head_cases() -> Vec<Case> {
    let get = || vec![expect("GET", "/a", b"")];
    vec![
        Case::forwarded("get_plain", get_with(b"X-Test: 1"), get()),
        Case::rejected("space_before_colon", get_with(b"X-Test : 1"), 400),
        Case::rejected("nul_in_value", get_with(b"X-Test: a\0b"), 400),
        Case::rejected("nul_in_name", get_with(b"X-Te\0st: 1"), 400),
        Case::rejected(
            "nul_in_target",
            b"GET /a\0b HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected("del_in_value", get_with(b"X-Test: a\x7fb"), 400),
        Case::rejected("control_in_value", get_with(b"X-Test: a\x01b"), 400),
        Case::rejected("bare_cr_in_value", get_with(b"X-Test: a\rb"), 400),
        Case::rejected(
            "bare_cr_line_end",
            b"GET /a HTTP/1.1\rHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "bare_lf_line_ends",
            b"GET /a HTTP/1.1\nHost: h.test\n\n",
            400,
        ),
        Case::rejected(
            "bare_lf_one_header",
            b"GET /a HTTP/1.1\r\nHost: h.test\nX-Test: 1\r\n\r\n",
            400,
        ),
        Case::rejected(
            "bare_lf_head_end",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\n\n",
            400,
        ),
        Case::rejected("obs_fold", get_with(b"X-Test: a\r\n b"), 400),
        Case::rejected(
            "whitespace_after_request_line",
            b"GET /a HTTP/1.1\r\n Host: h.test\r\n\r\n",
            400,
        ),
        Case::rejected("header_without_colon", get_with(b"X-Test"), 400),
        Case::rejected("header_name_empty", get_with(b": 1"), 400),
        Case::rejected("header_name_not_token", get_with(b"X@Test: 1"), 400),
        Case::rejected("header_name_utf8", get_with("X-Tést: 1".as_bytes()), 400),
        Case::rejected(
            "header_name_too_long",
            get_with(format!("X-{}: 1", "n".repeat(17_000)).as_bytes()),
            431,
        ),
        Case::forwarded(
            "header_name_long",
            get_with(format!("X-{}: 1", "n".repeat(4_000)).as_bytes()),
            get(),
        )
        .check(Box::new(|requests| {
            let long = requests
                .first()
                .is_some_and(|request| request.headers.iter().any(|(name, _)| name.len() == 4_002));
            long.then_some(())
                .ok_or_else(|| "the long header was not forwarded".to_owned())
        })),
        Case::rejected("missing_host", b"GET /a HTTP/1.1\r\nX-Test: 1\r\n\r\n", 400),
        Case::forwarded(
            "missing_host_http10",
            b"GET /a HTTP/1.0\r\nX-Test: 1\r\n\r\n",
            get(),
        )
        .then_closes(),
        Case::rejected(
            "two_hosts",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nHost: evil.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "two_hosts_identical",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "host_with_space",
            b"GET /a HTTP/1.1\r\nHost: h test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "host_with_path",
            b"GET /a HTTP/1.1\r\nHost: h.test/x\r\n\r\n",
            400,
        ),
        Case::rejected("host_empty", b"GET /a HTTP/1.1\r\nHost: \r\n\r\n", 400),
        Case::forwarded(
            "absolute_form_other_host",
            b"GET http://target.test/a HTTP/1.1\r\nHost: header.test\r\n\r\n",
            get(),
        )
        .check(header_is("host", b"target.test")),
        Case::forwarded(
            "absolute_form_sets_forwarded_host",
            b"GET http://target.test/a HTTP/1.1\r\nHost: header.test\r\n\r\n",
            get(),
        )
        .check(header_is("x-forwarded-host", b"target.test")),
        Case::forwarded(
            "absolute_form_https_port_query",
            b"GET HTTPS://target.test:8443/a?q=1 HTTP/1.1\r\nHost: header.test\r\n\r\n",
            vec![expect("GET", "/a?q=1", b"")],
        )
        .check(header_is("host", b"target.test:8443")),
        Case::rejected(
            "absolute_form_userinfo",
            b"GET http://user@target.test/a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "absolute_form_other_scheme",
            b"GET ftp://target.test/a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "authority_form",
            b"CONNECT target.test:443 HTTP/1.1\r\nHost: target.test:443\r\n\r\n",
            400,
        ),
        Case::rejected(
            "asterisk_form_get",
            b"GET * HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::forwarded(
            "asterisk_form_options",
            b"OPTIONS * HTTP/1.1\r\nHost: h.test\r\n\r\n",
            vec![expect("OPTIONS", "*", b"")],
        ),
        Case::rejected(
            "target_fragment",
            b"GET /a#b HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::forwarded(
            "connection_close_host",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nConnection: close, Host\r\n\r\n",
            get(),
        )
        .then_closes()
        .check(header_is("host", b"h.test")),
        Case::forwarded(
            "connection_lists_xff",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nConnection: X-Forwarded-For\r\n\
              X-Forwarded-For: 192.0.2.66\r\n\r\n",
            get(),
        )
        .check(header_is("x-forwarded-for", b"127.0.0.1")),
        Case::forwarded(
            "connection_lists_proto",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nConnection: X-Forwarded-Proto\r\n\r\n",
            get(),
        )
        .check(Box::new(|requests| {
            match requests
                .first()
                .and_then(|request| request.header("x-forwarded-proto"))
            {
                Some(b"http" | b"https") => Ok(()),
                other => Err(format!(
                    "X-Forwarded-Proto is {:?}",
                    other.map(String::from_utf8_lossy)
                )),
            }
        })),
        Case::forwarded(
            "connection_lists_content_length",
            b"POST /a HTTP/1.1\r\nHost: h.test\r\nConnection: Content-Length\r\n\
              Content-Length: 5\r\n\r\nhello",
            vec![expect("POST", "/a", b"hello")],
        ),
        Case::forwarded(
            "connection_lists_custom",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n",
            get(),
        )
        .check(header_absent("x-secret")),
        Case::forwarded(
            "hop_by_hop_dropped",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nKeep-Alive: timeout=5\r\nUpgrade: websocket\r\n\
              TE: trailers\r\nTrailer: X-A\r\nProxy-Authorization: secret\r\n\
              Proxy-Connection: keep-alive\r\n\r\n",
            get(),
        ),
        Case::forwarded(
            "forwarded_headers_replaced",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nForwarded: for=192.0.2.66\r\n\
              X-Forwarded-For: 192.0.2.66\r\nX-Forwarded-Host: evil.test\r\n\
              X-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\n\r\n",
            get(),
        )
        .check(header_is("x-forwarded-for", b"127.0.0.1")),
        Case::forwarded(
            "underscore_xff_dropped",
            get_with(b"X_Forwarded_For: 192.0.2.66"),
            get(),
        )
        .check(header_absent("x_forwarded_for")),
        Case::forwarded(
            "underscore_host_dropped",
            get_with(b"X_Forwarded_Host: evil.test"),
            get(),
        )
        .check(header_absent("x_forwarded_host")),
        Case::forwarded(
            "expect_continue_get",
            get_with(b"Expect: 100-continue"),
            get(),
        ),
        Case::rejected("expect_other", get_with(b"Expect: 200-ok"), 417),
        Case::rejected(
            "expect_continue_over_limit",
            post_with("Content-Length: 2000\r\nExpect: 100-continue", b""),
            413,
        ),
        Case::rejected(
            "too_many_headers",
            get_with(
                (0..101)
                    .map(|index| format!("X-{index}: 1"))
                    .collect::<Vec<_>>()
                    .join("\r\n")
                    .as_bytes(),
            ),
            431,
        ),
        Case::rejected(
            "target_too_long",
            format!("GET /{} HTTP/1.1\r\nHost: h.test\r\n\r\n", "t".repeat(9000)),
            414,
        ),
        Case::forwarded(
            "leading_empty_lines",
            b"\r\n\r\nGET /a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            get(),
        ),
        Case::rejected(
            "too_many_empty_lines",
            b"\r\n\r\n\r\n\r\n\r\nGET /a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
    ]
}

fn request_line_cases() -> Vec<Case> {
    vec![
        Case::rejected(
            "two_spaces",
            b"GET  /a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "two_spaces_before_version",
            b"GET /a  HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "tab_separator",
            b"GET\t/a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "trailing_space",
            b"GET /a HTTP/1.1 \r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "version_lowercase",
            b"GET /a http/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "version_1_2",
            b"GET /a HTTP/1.2\r\nHost: h.test\r\n\r\n",
            505,
        ),
        Case::rejected(
            "version_2_0",
            b"GET /a HTTP/2.0\r\nHost: h.test\r\n\r\n",
            505,
        ),
        Case::rejected("version_missing", b"GET /a\r\nHost: h.test\r\n\r\n", 400),
        Case::rejected(
            "method_not_token",
            b"GE(T /a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "method_with_slash",
            b"G/ET /a HTTP/1.1\r\nHost: h.test\r\n\r\n",
            400,
        ),
        Case::rejected(
            "method_utf8",
            "GÉT /a HTTP/1.1\r\nHost: h.test\r\n\r\n".as_bytes(),
            400,
        ),
    ]
}

fn pipelining_cases() -> Vec<Case> {
    // A 2000-byte body of pipelined requests, declared but over the body limit.
    let mut hidden = Vec::new();
    while hidden.len() < 2000 {
        hidden.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n");
    }
    hidden.truncate(2000);

    vec![
        Case::forwarded(
            "pipelined_after_exact_body",
            concat(&[&post_with("Content-Length: 5", b"hello"), NEXT_GET]),
            vec![expect("POST", "/a", b"hello"), expect("GET", "/next", b"")],
        ),
        Case::forwarded(
            "request_after_short_length",
            post_with(
                "Content-Length: 5",
                b"helloGET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n",
            ),
            vec![
                expect("POST", "/a", b"hello"),
                expect("GET", "/smuggled", b""),
            ],
        ),
        Case::forwarded(
            "invalid_request_after_short_length",
            post_with(
                "Content-Length: 5",
                b"helloGET /smuggled HTTP/1.1\r\nHost: h.test\r\n\
                  Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            ),
            vec![expect("POST", "/a", b"hello")],
        )
        .then_rejected(400),
        Case::rejected(
            "early_413_leftover",
            post_with("Content-Length: 2000", &hidden),
            413,
        ),
        Case::forwarded(
            "pipelined_after_400",
            concat(&[
                NEXT_GET,
                b"GET /bad HTTP/1.1\r\nHost: h.test\r\nHost: evil.test\r\n\r\n",
                b"GET /after HTTP/1.1\r\nHost: h.test\r\n\r\n",
            ]),
            vec![expect("GET", "/next", b"")],
        )
        .then_rejected(400),
        Case::forwarded(
            "pipelined_after_connection_close",
            concat(&[
                b"GET /a HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n",
                NEXT_GET,
            ]),
            vec![expect("GET", "/a", b"")],
        )
        .then_closes(),
        Case::forwarded(
            "pipelined_http10_without_keep_alive",
            concat(&[b"GET /a HTTP/1.0\r\nHost: h.test\r\n\r\n", NEXT_GET]),
            vec![expect("GET", "/a", b"")],
        )
        .then_closes(),
        Case::forwarded(
            "pipelined_three_chunked",
            concat(&[
                &chunked_post(b"1\r\na\r\n0\r\n\r\n"),
                &chunked_post(b"2\r\nbb\r\n0\r\n\r\n"),
                &chunked_post(b"3\r\nccc\r\n0\r\n\r\n"),
            ]),
            vec![
                expect("POST", "/a", b"a"),
                expect("POST", "/a", b"bb"),
                expect("POST", "/a", b"ccc"),
            ],
        ),
    ]
}

fn all_cases() -> Vec<Case> {
    let mut cases = framing_cases();
    cases.extend(chunked_cases());
    cases.extend(head_cases());
    cases.extend(request_line_cases());
    cases.extend(pipelining_cases());
    cases
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// The whole request in one write.
    Whole,
    /// The request in [`SPLIT_PIECES`] writes with [`SPLIT_PAUSE`] between them.
    Split,
}

/// ringfront on plain HTTP and HTTPS in front of a recording upstream.
struct Fixture {
    ringfront: Ringfront,
    cert: TestCert,
    recorder: RecordingUpstream,
}

impl Fixture {
    fn start() -> Fixture {
        let recorder = RecordingUpstream::start();
        let cert = TestCert::generate(&["localhost"]);
        let ringfront = Config::new()
            .https(&cert)
            .http()
            .limit("max_body_bytes", MAX_BODY_BYTES)
            .upstream_socket(recorder.socket_path())
            // One upstream connection per request, so each recorded connection holds exactly the
            // request the checker expects; pooling is covered in tests/upstream.rs.
            .upstream_setting("keepalive", "0")
            .start();
        Fixture {
            ringfront,
            cert,
            recorder,
        }
    }

    fn connect(&self, transport: Transport) -> Connection {
        match transport {
            Transport::Plain => Connection::plain(self.ringfront.http_port()),
            Transport::Tls => Connection::https(self.ringfront.https_port(), &self.cert),
        }
    }

    /// Runs every case and returns one line per failed condition.
    fn run_all(&self, transport: Transport, delivery: Delivery) -> Vec<String> {
        let cases = all_cases();
        let mut failures = Vec::new();
        for case in &cases {
            for failure in self.run(case, transport, delivery) {
                failures.push(format!("{}: {failure}", case.name));
            }
        }
        failures
    }

    /// Runs one case on a new connection and returns the conditions it broke.
    fn run(&self, case: &Case, transport: Transport, delivery: Delivery) -> Vec<String> {
        let mut failures = Vec::new();
        let mut connection = self.connect(transport);
        send(&mut connection, &case.request, delivery);

        for (index, &status) in case.statuses.iter().enumerate() {
            let response = match connection.try_read_response(false) {
                Ok(response) => response,
                Err(error) => {
                    failures.push(format!("response {index}: {error}"));
                    break;
                }
            };
            if response.status != status {
                failures.push(format!(
                    "response {index}: status {}, expected {status}",
                    response.status
                ));
            }
            if status == 200 && response.body != RECORDED_BODY {
                failures.push(format!(
                    "response {index}: body {:?} is not the upstream's",
                    response.body_text()
                ));
            }
            if status >= 400 && !response.header_has_token("connection", "close") {
                failures.push(format!("response {index}: error without Connection: close"));
            }
        }
        if case.closes && !connection.is_closed_by_peer() {
            failures.push("connection not closed after the last response".to_owned());
        }

        let recorded = self.recorder.take_connections(case.upstream.len());
        if recorded.len() != case.upstream.len() {
            let received_text: Vec<_> = recorded
                .iter()
                .map(|bytes| String::from_utf8_lossy(bytes))
                .collect();
            failures.push(format!(
                "upstream got {} connections, expected {}: {received_text:?}",
                recorded.len(),
                case.upstream.len()
            ));
            return failures;
        }
        let mut forwarded = Vec::new();
        for (index, (bytes, expected)) in recorded.iter().zip(&case.upstream).enumerate() {
            match parse_forwarded(bytes) {
                Ok(request) => {
                    failures.extend(compare(index, &request, expected));
                    forwarded.push(request);
                }
                Err(malformed) => failures.push(format!("upstream request {index}: {malformed}")),
            }
        }
        if let Some(check) = &case.check
            && forwarded.len() == case.upstream.len()
            && let Err(failure) = check(&forwarded)
        {
            failures.push(failure);
        }
        failures
    }
}

fn send(connection: &mut Connection, request: &[u8], delivery: Delivery) {
    // ringfront may close early on bad input, which is a valid reaction. A write error therefore
    // ends the send without failing the case, and the response checks judge the outcome.
    match delivery {
        Delivery::Whole => {
            let _ = connection.try_send(request);
        }
        Delivery::Split => {
            let piece = request.len().div_ceil(SPLIT_PIECES).max(1);
            for bytes in request.chunks(piece) {
                if connection.try_send(bytes).is_err() {
                    break;
                }
                thread::sleep(SPLIT_PAUSE);
            }
        }
    }
}

fn compare(index: usize, request: &ForwardedRequest, expected: &Expected) -> Vec<String> {
    let mut failures = Vec::new();
    if request.method != expected.method {
        failures.push(format!(
            "upstream request {index}: method {}, expected {}",
            request.method, expected.method
        ));
    }
    if request.target != expected.target {
        failures.push(format!(
            "upstream request {index}: target {}, expected {}",
            request.target, expected.target
        ));
    }
    if request.body != expected.body {
        failures.push(format!(
            "upstream request {index}: body {:?}, expected {:?}",
            String::from_utf8_lossy(&request.body),
            String::from_utf8_lossy(&expected.body)
        ));
    }
    failures
}

#[test]
fn case_table_size() {
    let cases = all_cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
}

#[test]
fn case_names_unique() {
    let cases = all_cases();
    let mut names: Vec<&str> = cases.iter().map(|case| case.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before);
}

#[test]
fn smuggling_plain() {
    let fixture = Fixture::start();
    let failures = fixture.run_all(Transport::Plain, Delivery::Whole);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn smuggling_tls() {
    let fixture = Fixture::start();
    let failures = fixture.run_all(Transport::Tls, Delivery::Whole);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn smuggling_split_writes() {
    let fixture = Fixture::start();
    let failures = fixture.run_all(Transport::Plain, Delivery::Split);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Builds a request as ringfront writes it upstream, with `extra` header lines and `tail` after
/// the head.
fn upstream_bytes(extra: &str, tail: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST /a HTTP/1.1\r\nHost: h.test\r\n{extra}X-Forwarded-For: 127.0.0.1\r\n\
         X-Forwarded-Proto: http\r\nX-Forwarded-Host: h.test\r\nConnection: close\r\n\r\n"
    );
    concat(&[head.as_bytes(), tail])
}

#[test]
fn forwarded_check_accepts_good() {
    let request = parse_forwarded(&upstream_bytes("Content-Length: 5\r\n", b"hello"));
    assert_eq!(request.map(|request| request.body), Ok(b"hello".to_vec()));
}

#[test]
fn forwarded_check_rejects_faults() {
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "second_request",
            upstream_bytes("Content-Length: 5\r\n", b"helloGET / HTTP/1.1\r\n\r\n"),
            "bytes after the declared body",
        ),
        (
            "short_body",
            upstream_bytes("Content-Length: 5\r\n", b"hell"),
            "body shorter than Content-Length",
        ),
        (
            "two_lengths",
            upstream_bytes("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
            "more than one Content-Length",
        ),
        (
            "leading_zero",
            upstream_bytes("Content-Length: 05\r\n", b"hello"),
            "Content-Length not in canonical decimal",
        ),
        (
            "transfer_encoding",
            upstream_bytes("Transfer-Encoding: chunked\r\n", b""),
            "hop-by-hop or framing header forwarded",
        ),
        (
            "obs_fold",
            upstream_bytes("X-A: 1\r\n 2\r\n", b""),
            "obsolete line folding",
        ),
        (
            "bare_lf",
            upstream_bytes("X-A: 1\nX-B: 2\r\n", b""),
            "bare LF in the head",
        ),
        (
            "space_before_colon",
            upstream_bytes("X-A : 1\r\n", b""),
            "header name is not a token",
        ),
        (
            "control_in_value",
            upstream_bytes("X-A: 1\x01\r\n", b""),
            "header value has a control character",
        ),
        (
            "underscore_alias",
            upstream_bytes("X_Forwarded_For: 1\r\n", b""),
            "underscore alias of a reserved header",
        ),
        (
            "connection_option",
            b"GET /a HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-For: 127.0.0.1\r\n\
              X-Forwarded-Proto: http\r\nX-Forwarded-Host: h.test\r\n\
              Connection: close, X-A\r\n\r\n"
                .to_vec(),
            "Connection lists more than close or keep-alive",
        ),
    ];
    for (name, bytes, rule) in cases {
        let result = parse_forwarded(bytes).map_err(|malformed| malformed.rule);
        assert_eq!(result.err(), Some(*rule), "{name}");
    }
}
