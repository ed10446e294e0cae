//! Parses arbitrary bytes as a request head. It must never panic, and an accepted head must
//! pass the line-end, Host and framing checks below.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringfront::http::{BodyFraming, Limits, RequestError, Version, parse_request_head};

/// Small limits, so the fuzzer reaches every limit with short inputs.
fn limits() -> Limits {
    Limits {
        max_head_bytes: 2048,
        max_headers: 16,
        max_uri_bytes: 256,
        max_body_bytes: 1 << 20,
        ..Limits::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    match parse_request_head(data, &limits) {
        Ok(Some((head, used))) => {
            let head_bytes = data.get(..used).expect("used is within the input");
            check_accepted(&head, head_bytes, &limits);

            // The same bytes give the same head, and every shorter prefix is incomplete.
            let again = parse_request_head(head_bytes, &limits).expect("accepted head rejected");
            assert_eq!(again, Some((head, used)));
            let prefix = head_bytes.get(..used - 1).unwrap_or_default();
            assert_eq!(parse_request_head(prefix, &limits), Ok(None));
        }
        Ok(None) => {
            let leading = 2 * limits.max_leading_empty_lines;
            assert!(data.len() <= limits.max_head_bytes + leading);
        }
        Err(error) => check_rejected(&error),
    }
});

fn check_accepted(head: &ringfront::http::RequestHead, head_bytes: &[u8], limits: &Limits) {
    assert!(head_bytes.ends_with(b"\r\n\r\n"));
    for (index, &byte) in head_bytes.iter().enumerate() {
        assert_ne!(byte, 0, "NUL accepted");
        if byte == b'\n' {
            assert_eq!(
                index.checked_sub(1).and_then(|at| head_bytes.get(at)),
                Some(&b'\r'),
                "bare LF accepted"
            );
        }
        if byte == b'\r' {
            assert_eq!(head_bytes.get(index + 1), Some(&b'\n'), "bare CR accepted");
        }
    }

    assert!(!head.method.is_empty());
    assert!(head.target.starts_with('/') || (head.target == "*" && head.method == "OPTIONS"));
    assert!(head.target.len() <= limits.max_uri_bytes + 1);
    // An absolute-form target may add a Host header.
    assert!(head.headers.len() <= limits.max_headers + 1);
    for header in &head.headers {
        assert!(!header.name.is_empty());
        assert!(
            !header
                .value
                .iter()
                .any(|&byte| matches!(byte, b'\r' | b'\n' | 0))
        );
        assert!(!header.value.starts_with(b" "));
        assert!(!header.value.ends_with(b" "));
    }

    let hosts = head.headers_named("host").count();
    assert!(hosts <= 1);
    if head.version == Version::Http11 {
        assert_eq!(hosts, 1);
    }
    let has_transfer_encoding = head.header("transfer-encoding").is_some();
    let has_content_length = head.header("content-length").is_some();
    match head.framing {
        BodyFraming::Empty => assert!(!has_transfer_encoding),
        BodyFraming::Length(length) => {
            assert!(length > 0);
            assert!(length <= limits.max_body_bytes);
            assert!(has_content_length);
            assert!(!has_transfer_encoding);
        }
        BodyFraming::Chunked => {
            assert!(has_transfer_encoding);
            assert!(!has_content_length);
            assert_eq!(head.version, Version::Http11);
        }
    }
    if head.expect_continue {
        assert_eq!(head.version, Version::Http11);
    }
}

fn check_rejected(error: &RequestError) {
    assert!(
        matches!(error.status(), 400 | 413 | 414 | 417 | 431 | 501 | 505),
        "{error:?}"
    );
    assert!(!error.reason().is_empty());
}
