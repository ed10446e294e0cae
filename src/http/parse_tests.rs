use super::*;

fn parse_with(input: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, RequestError> {
    parse_request_head(input, limits)
}

fn parse_ok(input: &[u8]) -> (RequestHead, usize) {
    match parse_with(input, &Limits::default()) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn parse_err(input: &[u8]) -> RequestError {
    parse_err_with(input, &Limits::default())
}

fn parse_err_with(input: &[u8], limits: &Limits) -> RequestError {
    match parse_with(input, limits) {
        Err(error) => error,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Builds a request with the given headers, each given without its CRLF.
fn request(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut out = format!("{line}\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[test]
fn simple_get_fields() {
    let input = b"GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let (head, used) = parse_ok(input);
    assert_eq!(used, input.len());
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/index.html?a=1");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.framing, BodyFraming::Empty);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
    assert_eq!(head.headers.len(), 2);
    assert_eq!(head.header("host"), Some(&b"example.com"[..]));
    assert_eq!(head.header("ACCEPT"), Some(&b"*/*"[..]));
}

#[test]
fn head_leaves_body_unconsumed() {
    let input = b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET";
    let (head, used) = parse_ok(input);
    assert_eq!(head.framing, BodyFraming::Length(5));
    assert_eq!(input.get(used..), Some(&b"helloGET"[..]));
}

#[test]
fn header_value_whitespace_trimmed() {
    let (head, _) = parse_ok(b"GET / HTTP/1.1\r\nHost:   a.example \t\r\nX-Empty:\r\n\r\n");
    assert_eq!(head.header("host"), Some(&b"a.example"[..]));
    assert_eq!(head.header("x-empty"), Some(&b""[..]));
}

#[test]
fn header_name_keeps_spelling() {
    let (head, _) = parse_ok(b"GET / HTTP/1.1\r\nhOsT: a\r\nX-Custom-Name: v\r\n\r\n");
    assert_eq!(head.headers.first().map(|h| h.name.as_str()), Some("hOsT"));
    assert_eq!(
        head.headers.get(1).map(|h| h.name.as_str()),
        Some("X-Custom-Name")
    );
}

#[test]
fn obs_text_in_value_accepted() {
    let (head, _) = parse_ok(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n");
    assert_eq!(head.header("x-name"), Some(&b"caf\xc3\xa9"[..]));
}

#[test]
fn keep_alive_by_version_and_connection() {
    let cases: &[(&str, &[&str], bool)] = &[
        ("GET / HTTP/1.1", &["Host: a"], true),
        ("GET / HTTP/1.1", &["Host: a", "Connection: close"], false),
        (
            "GET / HTTP/1.1",
            &["Host: a", "Connection: Keep-Alive, CLOSE"],
            false,
        ),
        (
            "GET / HTTP/1.1",
            &["Host: a", "Connection: upgrade", "Connection: close"],
            false,
        ),
        ("GET / HTTP/1.1", &["Host: a", "Connection: closed"], true),
        ("GET / HTTP/1.0", &[], false),
        ("GET / HTTP/1.0", &["Connection: keep-alive"], true),
        ("GET / HTTP/1.0", &["Connection: KEEP-ALIVE"], true),
        ("GET / HTTP/1.0", &["Connection: keep-alive, close"], false),
    ];
    for (line, headers, expected) in cases {
        let (head, _) = parse_ok(&request(line, headers));
        assert_eq!(head.keep_alive, *expected, "{line} {headers:?}");
    }
}

#[test]
fn expect_continue_cases() {
    let cases: &[(&str, &[&str], bool)] = &[
        (
            "POST / HTTP/1.1",
            &["Host: a", "Content-Length: 1", "Expect: 100-continue"],
            true,
        ),
        (
            "POST / HTTP/1.1",
            &["Host: a", "Content-Length: 1", "Expect: 100-Continue"],
            true,
        ),
        ("POST / HTTP/1.1", &["Host: a", "Content-Length: 1"], false),
        ("POST / HTTP/1.1", &["Host: a", "Expect:"], false),
        (
            "POST / HTTP/1.0",
            &["Content-Length: 1", "Expect: 100-continue"],
            false,
        ),
    ];
    for (line, headers, expected) in cases {
        let (head, _) = parse_ok(&request(line, headers));
        assert_eq!(head.expect_continue, *expected, "{line} {headers:?}");
    }
}

#[test]
fn expect_other_rejected() {
    let error = parse_err(&request("GET / HTTP/1.1", &["Host: a", "Expect: 200-ok"]));
    assert_eq!(error, RequestError::UnsupportedExpectation);
    assert_eq!(error.status(), 417);
}

#[test]
fn framing_accepted_cases() {
    let cases: &[(&[&str], BodyFraming)] = &[
        (&[], BodyFraming::Empty),
        (&["Content-Length: 0"], BodyFraming::Empty),
        (&["Content-Length: 000"], BodyFraming::Empty),
        (&["Content-Length: 42"], BodyFraming::Length(42)),
        (&["Content-Length: 042"], BodyFraming::Length(42)),
        (&["Content-Length: 42, 42"], BodyFraming::Length(42)),
        (&["Content-Length: 42,42"], BodyFraming::Length(42)),
        (
            &["Content-Length: 42", "Content-Length: 42"],
            BodyFraming::Length(42),
        ),
        (&["Transfer-Encoding: chunked"], BodyFraming::Chunked),
        (&["Transfer-Encoding: Chunked"], BodyFraming::Chunked),
        (&["Transfer-Encoding: chunked "], BodyFraming::Chunked),
        (&["Transfer-Encoding: , chunked"], BodyFraming::Chunked),
    ];
    for (headers, expected) in cases {
        let mut all = vec!["Host: a"];
        all.extend_from_slice(headers);
        let (head, _) = parse_ok(&request("POST /upload HTTP/1.1", &all));
        assert_eq!(head.framing, *expected, "{headers:?}");
    }
}

#[test]
fn framing_rejected_cases() {
    let cases: &[(&[&str], RequestError)] = &[
        (
            &["Content-Length: 5", "Transfer-Encoding: chunked"],
            RequestError::ContentLengthWithTransferEncoding,
        ),
        (
            &["Transfer-Encoding: chunked", "Content-Length: 5"],
            RequestError::ContentLengthWithTransferEncoding,
        ),
        (
            &["Content-Length: 5, 6"],
            RequestError::DifferingContentLengths,
        ),
        (
            &["Content-Length: 5", "Content-Length: 6"],
            RequestError::DifferingContentLengths,
        ),
        (&["Content-Length: abc"], RequestError::InvalidContentLength),
        (&["Content-Length:"], RequestError::InvalidContentLength),
        (&["Content-Length: 5,"], RequestError::InvalidContentLength),
        (&["Content-Length: 5 5"], RequestError::InvalidContentLength),
        (
            &["Content-Length: 0x10"],
            RequestError::InvalidContentLength,
        ),
        (&["Content-Length: 1.0"], RequestError::InvalidContentLength),
        (&["Content-Length: +5"], RequestError::SignedContentLength),
        (&["Content-Length: -1"], RequestError::SignedContentLength),
        (
            &["Content-Length: 18446744073709551616"],
            RequestError::ContentLengthOverflow,
        ),
        (
            &["Content-Length: 99999999999999999999999"],
            RequestError::ContentLengthOverflow,
        ),
        (&["Transfer-Encoding: gzip"], RequestError::ChunkedNotFinal),
        (
            &["Transfer-Encoding: chunked, gzip"],
            RequestError::ChunkedNotFinal,
        ),
        (
            &["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"],
            RequestError::ChunkedNotFinal,
        ),
        (
            &["Transfer-Encoding: chunked, chunked"],
            RequestError::ChunkedTwice,
        ),
        (
            &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            RequestError::ChunkedTwice,
        ),
        (
            &["Transfer-Encoding: gzip, chunked"],
            RequestError::UnsupportedTransferCoding,
        ),
        (
            &["Transfer-Encoding: x-custom, chunked"],
            RequestError::UnsupportedTransferCoding,
        ),
        (
            &["Transfer-Encoding:"],
            RequestError::InvalidTransferEncoding,
        ),
        (
            &["Transfer-Encoding: ,"],
            RequestError::InvalidTransferEncoding,
        ),
        (
            &["Transfer-Encoding: chunked;q=1"],
            RequestError::InvalidTransferEncoding,
        ),
        (
            &["Transfer-Encoding: chun ked"],
            RequestError::InvalidTransferEncoding,
        ),
        (
            &["Transfer-Encoding: \"chunked\""],
            RequestError::InvalidTransferEncoding,
        ),
    ];
    for (headers, expected) in cases {
        let mut all = vec!["Host: a"];
        all.extend_from_slice(headers);
        let error = parse_err(&request("POST / HTTP/1.1", &all));
        assert_eq!(error, *expected, "{headers:?}");
    }
}

#[test]
fn transfer_encoding_empty_field_rejected() {
    // A recipient that reads only the last field would see no transfer coding at all.
    let cases: &[&[&str]] = &[
        &["Transfer-Encoding: chunked", "Transfer-Encoding:"],
        &["Transfer-Encoding:", "Transfer-Encoding: chunked"],
        &["Transfer-Encoding: chunked", "Transfer-Encoding: ,"],
    ];
    for headers in cases {
        let mut all = vec!["Host: a"];
        all.extend_from_slice(headers);
        let error = parse_err(&request("POST / HTTP/1.1", &all));
        assert_eq!(error, RequestError::InvalidTransferEncoding, "{headers:?}");
    }
}

#[test]
fn transfer_encoding_http10_rejected() {
    let error = parse_err(&request("POST / HTTP/1.0", &["Transfer-Encoding: chunked"]));
    assert_eq!(error, RequestError::TransferEncodingWithHttp10);
}

#[test]
fn unsupported_coding_is_501() {
    let error = parse_err(&request(
        "POST / HTTP/1.1",
        &["Host: a", "Transfer-Encoding: gzip, chunked"],
    ));
    assert_eq!(error.status(), 501);
}

#[test]
fn content_length_over_limit_413() {
    let limits = Limits {
        max_body_bytes: 100,
        ..Limits::default()
    };
    let input = request("POST / HTTP/1.1", &["Host: a", "Content-Length: 101"]);
    let error = parse_err_with(&input, &limits);
    assert_eq!(
        error,
        RequestError::ContentLengthTooLarge {
            length: 101,
            max: 100
        }
    );
    assert_eq!(error.status(), 413);
}

#[test]
fn content_length_at_limit_accepted() {
    let limits = Limits {
        max_body_bytes: 100,
        ..Limits::default()
    };
    let input = request("POST / HTTP/1.1", &["Host: a", "Content-Length: 100"]);
    let parsed = parse_with(&input, &limits);
    assert!(matches!(parsed, Ok(Some((ref head, _))) if head.framing == BodyFraming::Length(100)));
}

#[test]
fn host_count_rules() {
    assert_eq!(
        parse_err(&request("GET / HTTP/1.1", &[])),
        RequestError::MissingHost
    );
    assert_eq!(
        parse_err(&request("GET / HTTP/1.1", &["Host: a", "Host: a"])),
        RequestError::DuplicateHost
    );
    assert_eq!(
        parse_err(&request("GET / HTTP/1.0", &["Host: a", "Host: b"])),
        RequestError::DuplicateHost
    );
    let (head, _) = parse_ok(&request("GET / HTTP/1.0", &[]));
    assert_eq!(head.header("host"), None);
}

#[test]
fn host_value_validity() {
    let cases: &[(&str, bool)] = &[
        ("example.com", true),
        ("example.com:8080", true),
        ("example.com:", true),
        ("127.0.0.1", true),
        ("[::1]", true),
        ("[::1]:443", true),
        ("[2001:db8::7]:80", true),
        ("xn--caf-dma.example", true),
        ("a%2Db", true),
        ("", false),
        (":80", false),
        ("a b", false),
        ("a/b", false),
        ("a@b", false),
        ("a:b", false),
        ("a:123456", false),
        ("[::1", false),
        ("[]", false),
        ("[::1]x", false),
        ("[zz]", false),
        ("a%2", false),
        ("a%zz", false),
    ];
    for (host, valid) in cases {
        assert_eq!(is_valid_host(host.as_bytes()), *valid, "{host:?}");
    }
}

#[test]
fn invalid_host_rejected() {
    let error = parse_err(&request("GET / HTTP/1.1", &["Host: a b"]));
    assert_eq!(error, RequestError::InvalidHost);
}

#[test]
fn absolute_form_replaces_host() {
    let (head, _) = parse_ok(&request(
        "GET http://origin.example:8080/a/b?c=d HTTP/1.1",
        &["Host: other"],
    ));
    assert_eq!(head.target, "/a/b?c=d");
    assert_eq!(head.header("host"), Some(&b"origin.example:8080"[..]));
    assert_eq!(head.headers.len(), 1);
}

#[test]
fn absolute_form_target_cases() {
    let cases: &[(&str, &str)] = &[
        ("http://a.example", "/"),
        ("http://a.example/", "/"),
        ("http://a.example?q=1", "/?q=1"),
        ("HTTPS://a.example/x", "/x"),
    ];
    for (target, origin_form) in cases {
        let (head, _) = parse_ok(&request(
            &format!("GET {target} HTTP/1.1"),
            &["Host: a.example"],
        ));
        assert_eq!(head.target, *origin_form, "{target}");
    }
}

#[test]
fn absolute_form_http10_adds_host() {
    let (head, _) = parse_ok(&request("GET http://a.example/x HTTP/1.0", &[]));
    assert_eq!(head.header("host"), Some(&b"a.example"[..]));
}

#[test]
fn absolute_form_still_needs_host() {
    let error = parse_err(&request("GET http://a.example/x HTTP/1.1", &[]));
    assert_eq!(error, RequestError::MissingHost);
}

#[test]
fn target_form_cases() {
    let cases: &[(&str, Result<&str, RequestError>)] = &[
        ("OPTIONS * HTTP/1.1", Ok("*")),
        ("GET * HTTP/1.1", Err(RequestError::InvalidTarget)),
        ("GET /a|b{c}^ HTTP/1.1", Ok("/a|b{c}^")),
        ("GET /%20 HTTP/1.1", Ok("/%20")),
        ("GET index.html HTTP/1.1", Err(RequestError::InvalidTarget)),
        (
            "CONNECT a.example:443 HTTP/1.1",
            Err(RequestError::InvalidTarget),
        ),
        (
            "GET ftp://a.example/ HTTP/1.1",
            Err(RequestError::InvalidTarget),
        ),
        ("GET /a#frag HTTP/1.1", Err(RequestError::InvalidTarget)),
        (
            "GET http://user@a.example/ HTTP/1.1",
            Err(RequestError::InvalidHost),
        ),
        ("GET http:///x HTTP/1.1", Err(RequestError::InvalidHost)),
        (
            "GET http://a b/ HTTP/1.1",
            Err(RequestError::MalformedRequestLine),
        ),
    ];
    for (line, expected) in cases {
        let parsed = parse_with(&request(line, &["Host: a"]), &Limits::default());
        match expected {
            Ok(target) => {
                assert!(
                    matches!(&parsed, Ok(Some((head, _))) if head.target == *target),
                    "{line}: {parsed:?}"
                );
            }
            Err(error) => assert_eq!(parsed.as_ref().err(), Some(error), "{line}"),
        }
    }
}

#[test]
fn non_ascii_target_rejected() {
    let error = parse_err(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(error, RequestError::InvalidTarget);
}

#[test]
fn request_line_rejected_cases() {
    let cases: &[(&[u8], RequestError)] = &[
        (b"GET  / HTTP/1.1", RequestError::MalformedRequestLine),
        (b"GET / HTTP/1.1 ", RequestError::MalformedRequestLine),
        (b" GET / HTTP/1.1", RequestError::MalformedRequestLine),
        (b"GET /", RequestError::MalformedRequestLine),
        (b"GET", RequestError::MalformedRequestLine),
        (b"GET / http/1.1", RequestError::MalformedRequestLine),
        (b"GET / HTTP/1.10", RequestError::MalformedRequestLine),
        (b"GET / HTTP/1", RequestError::MalformedRequestLine),
        (b"GET\t/ HTTP/1.1", RequestError::MalformedRequestLine),
        (b"GET / HTTP/2.0", RequestError::UnsupportedVersion),
        (b"GET / HTTP/1.2", RequestError::UnsupportedVersion),
        (b"GET / HTTP/0.9", RequestError::UnsupportedVersion),
        (b"G(T / HTTP/1.1", RequestError::InvalidMethod),
        (b"G\xc3\xa9T / HTTP/1.1", RequestError::InvalidMethod),
        (b"GET /\x7f HTTP/1.1", RequestError::InvalidTarget),
    ];
    for (line, expected) in cases {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\nHost: a\r\n\r\n");
        assert_eq!(
            parse_err(&input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn unsupported_version_is_505() {
    assert_eq!(parse_err(b"GET / HTTP/2.0\r\n\r\n").status(), 505);
}

#[test]
fn line_end_rejected_cases() {
    let cases: &[(&[u8], RequestError)] = &[
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", RequestError::BareLf),
        (b"GET / HTTP/1.1\r\nHost: a\n\r\n", RequestError::BareLf),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", RequestError::BareLf),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n",
            RequestError::BareLf,
        ),
        (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::BareLf),
        (b"GET / HTTP/1.1\rHost: a\r\n\r\n", RequestError::BareCr),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            RequestError::BareCr,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\r", RequestError::BareCr),
        (b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::BareCr),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            RequestError::NulByte,
        ),
        (
            b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n",
            RequestError::NulByte,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse_err(input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn bare_lf_rejected_before_head_ends() {
    assert_eq!(parse_err(b"GET / HTTP/1.1\nHost"), RequestError::BareLf);
}

#[test]
fn header_line_rejected_cases() {
    let cases: &[(&[u8], RequestError)] = &[
        (b"Host : a", RequestError::WhitespaceBeforeColon),
        (b"Host\t: a", RequestError::WhitespaceBeforeColon),
        (b"X-A: 1\r\n folded", RequestError::ObsoleteLineFolding),
        (b"X-A: 1\r\n\tfolded", RequestError::ObsoleteLineFolding),
        (b"X(A): 1", RequestError::InvalidHeaderName),
        (b"X A: 1", RequestError::InvalidHeaderName),
        (b": 1", RequestError::InvalidHeaderName),
        (b"no-colon", RequestError::InvalidHeaderName),
        (b"X\xc3\xa9: 1", RequestError::InvalidHeaderName),
        (b"X-A: a\x01b", RequestError::InvalidHeaderValue),
        (b"X-A: a\x7fb", RequestError::InvalidHeaderValue),
        (b"X-A: a\x1bb", RequestError::InvalidHeaderValue),
    ];
    for (line, expected) in cases {
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        input.extend_from_slice(line);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_err(&input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn whitespace_after_request_line_rejected() {
    let error = parse_err(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n");
    assert_eq!(error, RequestError::ObsoleteLineFolding);
}

#[test]
fn leading_empty_lines_allowed_up_to_limit() {
    for count in 0..=4 {
        let mut input = b"\r\n".repeat(count);
        input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (head, used) = parse_ok(&input);
        assert_eq!(used, input.len(), "{count} empty lines");
        assert_eq!(head.target, "/", "{count} empty lines");
    }
}

#[test]
fn leading_empty_lines_over_limit() {
    let mut input = b"\r\n".repeat(5);
    input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        parse_err(&input),
        RequestError::TooManyEmptyLines { max: 4 }
    );
}

#[test]
fn header_count_limit() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let at_limit = request("GET / HTTP/1.1", &["Host: a", "B: 1", "C: 2"]);
    assert!(matches!(parse_with(&at_limit, &limits), Ok(Some(_))));
    let over = request("GET / HTTP/1.1", &["Host: a", "B: 1", "C: 2", "D: 3"]);
    assert_eq!(
        parse_err_with(&over, &limits),
        RequestError::TooManyHeaders { max: 3 }
    );
}

#[test]
fn header_count_limit_before_head_ends() {
    let limits = Limits {
        max_headers: 1,
        ..Limits::default()
    };
    let error = parse_err_with(b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\n", &limits);
    assert_eq!(error, RequestError::TooManyHeaders { max: 1 });
    assert_eq!(error.status(), 431);
}

#[test]
fn head_size_limit_exact() {
    let input = request("GET / HTTP/1.1", &["Host: a"]);
    let exact = Limits {
        max_head_bytes: input.len(),
        ..Limits::default()
    };
    assert!(matches!(parse_with(&input, &exact), Ok(Some(_))));
    let short = Limits {
        max_head_bytes: input.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_err_with(&input, &short),
        RequestError::HeadTooLarge {
            max: input.len() - 1
        }
    );
}

#[test]
fn head_size_limit_excludes_empty_lines() {
    let head = request("GET / HTTP/1.1", &["Host: a"]);
    let mut input = b"\r\n\r\n".to_vec();
    input.extend_from_slice(&head);
    let limits = Limits {
        max_head_bytes: head.len(),
        ..Limits::default()
    };
    assert!(matches!(parse_with(&input, &limits), Ok(Some(_))));
}

#[test]
fn head_size_limit_on_incomplete_head() {
    let limits = Limits {
        max_head_bytes: 64,
        ..Limits::default()
    };
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
    input.resize(63, b'a');
    assert_eq!(parse_with(&input, &limits), Ok(None));
    // 64 bytes without the final CRLF cannot end within 64 bytes.
    input.push(b'a');
    let error = parse_err_with(&input, &limits);
    assert_eq!(error, RequestError::HeadTooLarge { max: 64 });
    assert_eq!(error.status(), 431);
}

#[test]
fn head_size_limit_cr_on_boundary() {
    // The final CRLF would end one byte past the limit.
    let input = request("GET / HTTP/1.1", &["Host: a"]);
    let limits = Limits {
        max_head_bytes: input.len() - 1,
        ..Limits::default()
    };
    let without_last = input.get(..input.len() - 1).unwrap_or_default();
    assert_eq!(parse_with(without_last, &limits), Ok(None));
    assert_eq!(
        parse_err_with(&input, &limits),
        RequestError::HeadTooLarge {
            max: input.len() - 1
        }
    );
}

#[test]
fn uri_limit_exact() {
    let limits = Limits {
        max_uri_bytes: 10,
        ..Limits::default()
    };
    let at_limit = request("GET /123456789 HTTP/1.1", &["Host: a"]);
    assert!(matches!(parse_with(&at_limit, &limits), Ok(Some(_))));
    let over = request("GET /1234567890 HTTP/1.1", &["Host: a"]);
    let error = parse_err_with(&over, &limits);
    assert_eq!(error, RequestError::UriTooLong { max: 10 });
    assert_eq!(error.status(), 414);
}

#[test]
fn uri_limit_on_incomplete_request_line() {
    let limits = Limits {
        max_uri_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(parse_with(b"GET /123456789", &limits), Ok(None));
    assert_eq!(
        parse_err_with(b"GET /1234567890", &limits),
        RequestError::UriTooLong { max: 10 }
    );
}

#[test]
fn uri_limit_before_head_size_limit() {
    let limits = Limits::default();
    let mut input = b"GET /".to_vec();
    input.resize(limits.max_head_bytes + 100, b'a');
    assert_eq!(
        parse_err(&input),
        RequestError::UriTooLong {
            max: limits.max_uri_bytes
        }
    );
}

#[test]
fn every_prefix_is_incomplete() {
    let input = b"\r\nPOST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    for end in 0..input.len() {
        let prefix = input.get(..end).unwrap_or_default();
        assert_eq!(
            parse_with(prefix, &Limits::default()),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    let (head, used) = parse_ok(input);
    assert_eq!(used, input.len());
    assert_eq!(head.framing, BodyFraming::Length(3));
}

#[test]
fn resumed_scan_matches_whole_parse() {
    let input =
        b"\r\nGET /a?b HTTP/1.1\r\nHost: a\r\nCookie: x=1; y=2\r\nConnection: close\r\n\r\nrest";
    let whole = parse_ok(input);
    for step in 1..=7 {
        let mut scanner = HeadScanner::default();
        let mut end = 0;
        let result = loop {
            end = (end + step).min(input.len());
            let prefix = input.get(..end).unwrap_or_default();
            match scanner.parse(prefix, &Limits::default()) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => assert!(end < input.len(), "step {step}: no head at end of input"),
                Err(error) => panic!("step {step}: {error:?}"),
            }
        };
        assert_eq!(result, whole, "step {step}");
    }
}

#[test]
fn resumed_scan_reports_bare_lf() {
    let input = b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n";
    let mut scanner = HeadScanner::default();
    let mut error = None;
    for end in 0..=input.len() {
        if let Err(found) = scanner.parse(input.get(..end).unwrap_or_default(), &Limits::default())
        {
            error = Some((end, found));
            break;
        }
    }
    assert_eq!(error, Some((24, RequestError::BareLf)));
}

#[test]
fn trim_whitespace_cases() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", b""),
        (b" ", b""),
        (b" \t a \t", b"a"),
        (b"a b", b"a b"),
    ];
    for (input, expected) in cases {
        assert_eq!(trim_whitespace(input), *expected);
    }
}

#[test]
fn list_elements_skips_empty() {
    let elements: Vec<&[u8]> = list_elements(b" a, ,b ,, c").collect();
    assert_eq!(elements, vec![&b"a"[..], &b"b"[..], &b"c"[..]]);
}

#[test]
fn uri_limit_error_independent_of_split() {
    // The target passes the limit before the NUL, so every split reports the long target.
    let limits = Limits {
        max_uri_bytes: 10,
        ..Limits::default()
    };
    let input = b"GET /12345678901234\0 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(
        parse_err_with(input, &limits),
        RequestError::UriTooLong { max: 10 }
    );
    for end in 0..input.len() {
        let mut scanner = HeadScanner::default();
        let prefix = input.get(..end).unwrap_or_default();
        let expected = Err(RequestError::UriTooLong { max: 10 });
        let first = scanner.parse(prefix, &limits);
        if first.is_err() {
            assert_eq!(first, expected, "split at {end}");
            continue;
        }
        assert_eq!(scanner.parse(input, &limits), expected, "split at {end}");
    }
}

#[test]
fn rejected_request_line_table() {
    let found = |method: &str, target: &str, version: &str| {
        Some(RejectedRequestLine { method: method.to_owned(), target: target.to_owned(), version: version.to_owned() })
    };
    let cases: [(&[u8], Option<RejectedRequestLine>); 12] = [
        (b"GET /a HTTP/1.0\r\nContent-Length: x\r\n\r\n", found("GET", "/a", "HTTP/1.0")),
        (b"POST /b?c=d HTTP/1.1\r\n", found("POST", "/b?c=d", "HTTP/1.1")),
        (b"\r\n\r\nGET / HTTP/1.1\r\n", found("GET", "/", "HTTP/1.1")),
        (b"GET /a HTTP/1.1", None),
        (b"GET /a HTTP/1.1\n", None),
        (b"GET  /a HTTP/1.1\r\n", None),
        (b"GET /a b HTTP/1.1\r\n", None),
        // A version this server does not support gets a 505, whose log line names it.
        (b"GET /a HTTP/2.0\r\n", found("GET", "/a", "HTTP/2.0")),
        (b"GET /a HTTP/1.2\r\n", found("GET", "/a", "HTTP/1.2")),
        (b"GET /a HTTP/10.0\r\n", None),
        (b"G\x01T /a HTTP/1.1\r\n", None),
        (b"GET /\xff HTTP/1.1\r\n", None),
    ];
    for (input, expected) in cases {
        assert_eq!(rejected_request_line(input, 64), expected, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn rejected_request_line_bounded() {
    let line = b"GET /0123456789 HTTP/1.1\r\n";
    let length = line.len() - 2;
    assert!(rejected_request_line(line, length).is_some(), "a line of exactly the bound");
    assert!(rejected_request_line(line, length - 1).is_none(), "a line one byte over the bound");
}
