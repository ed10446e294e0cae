use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::http::{BodyFraming, Version};

fn request_head(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: Version::Http11,
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: (*name).to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
        framing: BodyFraming::Empty,
        keep_alive: true,
        expect_continue: false,
    }
}

fn forwarded() -> Forwarded {
    Forwarded {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        proto: "https",
        host: "app.example".to_owned(),
        prior_forwarded_for: None,
        keep_alive: true,
    }
}

fn upstream_request(head: &RequestHead, body_len: usize, forwarded: &Forwarded) -> String {
    let mut out = Vec::new();
    write_upstream_request(head, body_len, forwarded, &mut out);
    String::from_utf8(out).unwrap()
}

/// Returns the header lines of a written head, without the start line and the final CRLF.
fn header_lines(text: &str) -> Vec<&str> {
    text.split("\r\n")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect()
}

#[test]
fn upstream_request_exact() {
    let head = request_head(
        "GET",
        "/a?b=1",
        &[("Host", "app.example"), ("Accept", "*/*")],
    );
    let text = upstream_request(&head, 0, &forwarded());
    assert_eq!(
        text,
        "GET /a?b=1 HTTP/1.1\r\n\
         Accept: */*\r\n\
         Host: app.example\r\n\
         X-Forwarded-For: 192.0.2.7\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: app.example\r\n\
         Connection: keep-alive\r\n\r\n"
    );
}

#[test]
fn upstream_request_drops_hop_by_hop() {
    let head = request_head(
        "POST",
        "/",
        &[
            ("Host", "app.example"),
            ("Connection", "keep-alive, X-Secret, Upgrade"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-T"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "websocket"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authorization", "Basic x"),
            ("Content-Length", "99"),
            ("Expect", "100-continue"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "for=203.0.113.9"),
            ("X-Forwarded-Ssl", "on"),
            ("X-Forwarded-Protocol", "ssl"),
            ("X-Forwarded-Scheme", "https"),
            ("X-Url-Scheme", "https"),
            ("Front-End-Https", "on"),
            ("Cookie", "a=b"),
        ],
    );
    let text = upstream_request(&head, 3, &forwarded());
    let lines = header_lines(&text);
    assert_eq!(
        lines,
        vec![
            "Cookie: a=b",
            "Host: app.example",
            "Content-Length: 3",
            "X-Forwarded-For: 192.0.2.7",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: app.example",
            "Connection: keep-alive",
        ]
    );
}

#[test]
fn upstream_request_connection_cannot_remove_ours() {
    let head = request_head(
        "GET",
        "/",
        &[
            ("Host", "app.example"),
            (
                "Connection",
                "Host, X-Forwarded-For, x-forwarded-proto, X-Forwarded-Host",
            ),
        ],
    );
    let text = upstream_request(&head, 0, &forwarded());
    let lines = header_lines(&text);
    assert!(lines.contains(&"Host: app.example"), "{text}");
    assert!(lines.contains(&"X-Forwarded-For: 192.0.2.7"), "{text}");
    assert!(lines.contains(&"X-Forwarded-Proto: https"), "{text}");
    assert!(lines.contains(&"X-Forwarded-Host: app.example"), "{text}");
}

#[test]
fn upstream_request_drops_underscore_aliases() {
    // WSGI servers map `-` in header names to `_`, so each of these would reach the
    // application as the field it imitates.
    let aliases = [
        ("Content_Length", "99"),
        ("Transfer_Encoding", "chunked"),
        ("X_Forwarded_For", "203.0.113.9"),
        ("x_forwarded_proto", "http"),
        ("X-Forwarded_Host", "evil.example"),
        ("X_Forwarded_Port", "1"),
        ("Proxy_Authorization", "Basic x"),
        ("Keep_Alive", "timeout=5"),
    ];
    for (name, value) in aliases {
        let head = request_head("POST", "/", &[("Host", "app.example"), (name, value)]);
        let text = upstream_request(&head, 3, &forwarded());
        let lines = header_lines(&text);
        assert!(
            !lines.iter().any(|line| line.starts_with(name)),
            "{name}: {text}"
        );
    }
}

#[test]
fn upstream_request_connection_option_underscore_alias() {
    let head = request_head(
        "GET",
        "/",
        &[
            ("Host", "app.example"),
            ("Connection", "X-Secret"),
            ("X_Secret", "1"),
        ],
    );
    let text = upstream_request(&head, 0, &forwarded());
    assert!(!text.contains("X_Secret"), "{text}");
}

#[test]
fn upstream_request_drops_every_underscore_name() {
    let head = request_head("GET", "/", &[("Host", "app.example"), ("X_Trace_Id", "7"), ("X-Trace-Id", "8")]);
    let text = upstream_request(&head, 0, &forwarded());
    let lines = header_lines(&text);
    assert!(!lines.contains(&"X_Trace_Id: 7"), "{text}");
    assert!(lines.contains(&"X-Trace-Id: 8"), "{text}");
}

#[test]
fn upstream_request_content_length_rules() {
    let cases: &[(&str, usize, Option<&str>)] = &[
        ("GET", 0, None),
        ("HEAD", 0, None),
        ("DELETE", 0, None),
        ("GET", 4, Some("Content-Length: 4")),
        ("POST", 0, Some("Content-Length: 0")),
        ("PUT", 0, Some("Content-Length: 0")),
        ("PATCH", 0, Some("Content-Length: 0")),
        ("POST", 1_048_576, Some("Content-Length: 1048576")),
    ];
    for (method, body_len, expected) in cases {
        let head = request_head(method, "/", &[("Host", "a")]);
        let text = upstream_request(&head, *body_len, &forwarded());
        let found = header_lines(&text)
            .into_iter()
            .find(|line| line.starts_with("Content-Length"));
        assert_eq!(found, *expected, "{method} {body_len}");
    }
}

#[test]
fn upstream_request_forwarded_for_cases() {
    let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped());
    let cases: &[(IpAddr, Option<&str>, &str)] = &[
        (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), None, "192.0.2.7"),
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            None,
            "2001:db8::1",
        ),
        (mapped, None, "198.51.100.1"),
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            Some("203.0.113.9"),
            "203.0.113.9, 192.0.2.7",
        ),
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            Some("203.0.113.9, 10.0.0.1"),
            "203.0.113.9, 10.0.0.1, 192.0.2.7",
        ),
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            Some("  "),
            "192.0.2.7",
        ),
    ];
    for (client_ip, prior, expected) in cases {
        let forwarded = Forwarded {
            client_ip: *client_ip,
            prior_forwarded_for: prior.map(str::to_owned),
            ..forwarded()
        };
        let head = request_head("GET", "/", &[("Host", "a")]);
        let text = upstream_request(&head, 0, &forwarded);
        let expected_line = format!("X-Forwarded-For: {expected}");
        assert!(
            header_lines(&text).contains(&expected_line.as_str()),
            "{text}"
        );
    }
}

#[test]
fn upstream_request_close_and_host_fallback() {
    let mut head = request_head("GET", "/", &[]);
    head.version = Version::Http10;
    let forwarded = Forwarded {
        keep_alive: false,
        ..forwarded()
    };
    let text = upstream_request(&head, 0, &forwarded);
    let lines = header_lines(&text);
    assert!(lines.contains(&"Host: app.example"), "{text}");
    assert!(lines.contains(&"Connection: close"), "{text}");
    assert!(text.starts_with("GET / HTTP/1.1\r\n"), "{text}");
}

#[test]
fn upstream_request_keeps_client_host() {
    let head = request_head("GET", "/", &[("host", "client.example:8443")]);
    let text = upstream_request(&head, 0, &forwarded());
    let lines = header_lines(&text);
    assert!(lines.contains(&"Host: client.example:8443"), "{text}");
    assert!(lines.contains(&"X-Forwarded-Host: app.example"), "{text}");
}

// Response decoding.

fn decode_response(
    input: &[u8],
    request_was_head: bool,
    piece: usize,
    limits: &ResponseLimits,
) -> Result<(ResponseHead, Vec<u8>, usize), UpstreamError> {
    let mut decoder = ResponseDecoder::new(request_was_head, limits.clone());
    let mut buffer = Vec::new();
    let mut body = Vec::new();
    let mut consumed_total = 0;
    let mut chunks = input.chunks(piece.max(1));
    let mut head = None;
    for _ in 0..input.len() * 4 + 16 {
        let (consumed, event) = decoder.decode(&buffer, &mut body)?;
        buffer.drain(..consumed);
        consumed_total += consumed;
        match event {
            ResponseEvent::NeedMore => match chunks.next() {
                Some(chunk) => buffer.extend_from_slice(chunk),
                None => {
                    decoder.finish_on_eof()?;
                    break;
                }
            },
            ResponseEvent::Head(parsed) => {
                assert!(head.is_none(), "second head");
                head = Some(parsed);
            }
            ResponseEvent::Body => assert!(head.is_some(), "body before head"),
            ResponseEvent::Complete => break,
        }
    }
    assert!(decoder.is_complete());
    Ok((head.unwrap(), body, consumed_total))
}

fn decode_ok(input: &[u8], request_was_head: bool) -> (ResponseHead, Vec<u8>, usize) {
    decode_response(
        input,
        request_was_head,
        input.len(),
        &ResponseLimits::default(),
    )
    .unwrap()
}

#[test]
fn response_with_length() {
    let input =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    let (head, body, consumed) = decode_ok(input, false);
    assert_eq!(head.status, 200);
    assert_eq!(head.reason, "OK");
    assert_eq!(head.framing, ResponseFraming::Length(5));
    assert!(head.keep_alive);
    assert_eq!(head.header("content-type"), Some(&b"text/plain"[..]));
    assert_eq!(body, b"hello");
    assert_eq!(consumed, input.len() - 5);
}

#[test]
fn response_chunked() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (head, body, consumed) = decode_ok(input, false);
    assert_eq!(head.framing, ResponseFraming::Chunked);
    assert_eq!(body, b"hello world");
    assert_eq!(consumed, input.len());
}

#[test]
fn response_until_close() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
    let (head, body, _) = decode_ok(input, false);
    assert_eq!(head.framing, ResponseFraming::UntilClose);
    assert!(!head.keep_alive);
    assert_eq!(body, b"all of it");
}

#[test]
fn response_split_at_every_piece_size() {
    let inputs: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x\r\n world\r\n0\r\nT: v\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        b"HTTP/1.0 200 OK\r\n\r\nhello world",
    ];
    for input in inputs {
        let (whole_head, whole_body, _) = decode_ok(input, false);
        assert_eq!(whole_body, b"hello world");
        for piece in 1..input.len() {
            let (head, body, _) =
                decode_response(input, false, piece, &ResponseLimits::default()).unwrap();
            assert_eq!(head, whole_head, "piece {piece}");
            assert_eq!(body, whole_body, "piece {piece}");
        }
    }
}

#[test]
fn response_interim_skipped() {
    let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let (head, body, consumed) = decode_ok(input, false);
    assert_eq!(head.status, 201);
    assert_eq!(head.framing, ResponseFraming::Empty);
    assert!(body.is_empty());
    assert_eq!(consumed, input.len());
}

#[test]
fn response_interim_consumed_before_more() {
    let mut decoder = ResponseDecoder::new(false, ResponseLimits::default());
    let mut body = Vec::new();
    let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2";
    assert_eq!(
        decoder.decode(input, &mut body),
        Ok((25, ResponseEvent::NeedMore))
    );
    assert!(decoder.has_partial_head());
}

#[test]
fn response_switching_protocols_returned() {
    let input =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let (head, body, _) = decode_ok(input, false);
    assert_eq!(head.status, 101);
    assert_eq!(head.framing, ResponseFraming::Empty);
    assert!(!head.keep_alive);
    assert!(body.is_empty());
}

#[test]
fn response_without_body_cases() {
    let cases: &[(&[u8], bool)] = &[
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", true),
    ];
    for (input, request_was_head) in cases {
        let (head, body, consumed) = decode_ok(input, *request_was_head);
        assert_eq!(
            head.framing,
            ResponseFraming::Empty,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert!(body.is_empty());
        assert_eq!(consumed, input.len());
    }
}

#[test]
fn response_head_keeps_content_length() {
    let (head, _, _) = decode_ok(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true);
    assert_eq!(head.content_length(), Some(1234));
}

#[test]
fn response_keep_alive_cases() {
    let cases: &[(&[u8], bool)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", false),
    ];
    for (input, expected) in cases {
        let (head, _, _) = decode_ok(input, false);
        assert_eq!(
            head.keep_alive,
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn response_rejected_cases() {
    let cases: &[(&[u8], UpstreamError)] = &[
        (b"HTTP/2.0 200 OK\r\n\r\n", UpstreamError::InvalidStatusLine),
        (b"HTTX/1.1 200 OK\r\n\r\n", UpstreamError::InvalidStatusLine),
        (b"HTTP/1.1 20 OK\r\n\r\n", UpstreamError::InvalidStatusLine),
        (
            b"HTTP/1.1 099 Low\r\n\r\n",
            UpstreamError::InvalidStatusLine,
        ),
        (
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            UpstreamError::InvalidHeader,
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
            UpstreamError::InvalidHeader,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            UpstreamError::InvalidFraming(RequestError::DifferingContentLengths),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            UpstreamError::InvalidFraming(RequestError::InvalidContentLength),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            UpstreamError::InvalidFraming(RequestError::ContentLengthWithTransferEncoding),
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            UpstreamError::InvalidFraming(RequestError::TransferEncodingWithHttp10),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            UpstreamError::InvalidFraming(RequestError::ChunkedNotFinal),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            UpstreamError::InvalidFraming(RequestError::UnsupportedTransferCoding),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            UpstreamError::InvalidChunkedBody(RequestError::InvalidChunkSize),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            UpstreamError::Truncated,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            UpstreamError::Truncated,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-", UpstreamError::Truncated),
        (b"", UpstreamError::Truncated),
    ];
    for (input, expected) in cases {
        let result = decode_response(input, false, 7, &ResponseLimits::default());
        assert_eq!(
            result.err().as_ref(),
            Some(expected),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn response_size_limits() {
    let limits = ResponseLimits {
        max_head_bytes: 64,
        max_headers: 2,
        max_body_bytes: 10,
        ..ResponseLimits::default()
    };
    let mut long_head = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
    long_head.resize(100, b'a');
    let cases: &[(&[u8], UpstreamError)] = &[
        (&long_head, UpstreamError::HeadTooLarge { max: 64 }),
        (
            b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            UpstreamError::TooManyHeaders { max: 2 },
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
            UpstreamError::BodyTooLarge { max: 10 },
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n",
            UpstreamError::BodyTooLarge { max: 10 },
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n0123456789A",
            UpstreamError::BodyTooLarge { max: 10 },
        ),
    ];
    for (input, expected) in cases {
        for piece in [1, 5, input.len()] {
            let result = decode_response(input, false, piece, &limits);
            assert_eq!(
                result.err().as_ref(),
                Some(expected),
                "piece {piece}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn response_head_at_size_limit() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let limits = ResponseLimits {
        max_head_bytes: input.len(),
        ..ResponseLimits::default()
    };
    assert!(decode_response(input, false, 3, &limits).is_ok());
}

#[test]
fn response_error_repeats() {
    let mut decoder = ResponseDecoder::new(false, ResponseLimits::default());
    let mut body = Vec::new();
    let error = decoder
        .decode(b"HTTP/9.9 200 OK\r\n\r\n", &mut body)
        .unwrap_err();
    assert_eq!(error, UpstreamError::InvalidStatusLine);
    assert_eq!(
        decoder.decode(b"", &mut body),
        Err(UpstreamError::InvalidStatusLine)
    );
    assert_eq!(
        decoder.finish_on_eof(),
        Err(UpstreamError::InvalidStatusLine)
    );
}

#[test]
fn upstream_error_status_and_source() {
    let error = UpstreamError::InvalidFraming(RequestError::DifferingContentLengths);
    assert_eq!(error.status(), 502);
    assert_eq!(
        error.to_string(),
        "invalid upstream response framing: differing Content-Length values"
    );
    assert!(std::error::Error::source(&error).is_some());
    assert!(std::error::Error::source(&UpstreamError::Truncated).is_none());
}

// Relaying to the client.

fn response_head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        status,
        reason: "Custom".to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: (*name).to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
        framing: ResponseFraming::Length(5),
        keep_alive: true,
    }
}

fn client_head(head: &ResponseHead, body_len: Option<u64>, keep_alive: bool) -> String {
    let mut out = Vec::new();
    write_client_response_head(
        head,
        body_len,
        keep_alive,
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        &mut out,
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn client_head_exact() {
    let head = response_head(200, &[("Content-Type", "text/html"), ("Set-Cookie", "a=b")]);
    assert_eq!(
        client_head(&head, Some(5), true),
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/html\r\n\
         Set-Cookie: a=b\r\n\
         Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         Server: ringfront\r\n\
         Content-Length: 5\r\n\
         Connection: keep-alive\r\n\r\n"
    );
}

#[test]
fn client_head_drops_hop_by_hop() {
    let head = response_head(
        200,
        &[
            ("Connection", "close, X-Internal"),
            ("X-Internal", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Trailer", "X-T"),
            ("Upgrade", "h2c"),
            ("Proxy-Authenticate", "Basic"),
            ("Content-Length", "99"),
            ("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ("Server", "gunicorn"),
        ],
    );
    let text = client_head(&head, Some(5), false);
    assert_eq!(
        header_lines(&text),
        vec![
            "Date: Sun, 06 Nov 1994 08:49:37 GMT",
            "Server: ringfront",
            "Content-Length: 5",
            "Connection: close",
        ]
    );
}

#[test]
fn switching_head_replaces_server() {
    let head = response_head(
        101,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("Server", "gunicorn"),
        ],
    );
    let mut out = Vec::new();
    write_client_switching_head(&head, b"Sun, 06 Nov 1994 08:49:37 GMT", &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        header_lines(&text),
        vec![
            "Upgrade: websocket",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "Date: Sun, 06 Nov 1994 08:49:37 GMT",
            "Server: ringfront",
            "Connection: upgrade",
        ]
    );
}

#[test]
fn client_head_drops_accel_fields() {
    let head = response_head(
        200,
        &[
            ("X-Accel-Buffering", "no"),
            ("x-accel-redirect", "/internal/file"),
            ("X-Accelerated", "kept"),
        ],
    );
    let text = client_head(&head, None, true);
    assert_eq!(
        header_lines(&text),
        vec![
            "X-Accelerated: kept",
            "Date: Sun, 06 Nov 1994 08:49:37 GMT",
            "Server: ringfront",
            "Connection: keep-alive",
        ]
    );
}

#[test]
fn client_head_content_length_cases() {
    let cases: &[(u16, Option<u64>, Option<&str>)] = &[
        (200, Some(0), Some("Content-Length: 0")),
        (200, None, None),
        (204, Some(0), None),
        (101, Some(0), None),
        (304, Some(120), Some("Content-Length: 120")),
        (304, None, None),
    ];
    for (status, body_len, expected) in cases {
        let head = response_head(*status, &[]);
        let text = client_head(&head, *body_len, true);
        let found = header_lines(&text)
            .into_iter()
            .find(|line| line.starts_with("Content-Length"));
        assert_eq!(found, *expected, "{status} {body_len:?}");
    }
}

#[test]
fn client_head_reason_phrase() {
    assert!(
        client_head(&response_head(404, &[]), None, true).starts_with("HTTP/1.1 404 Not Found\r\n")
    );
    assert!(
        client_head(&response_head(299, &[]), None, true).starts_with("HTTP/1.1 299 Custom\r\n")
    );
}

#[test]
fn response_empty_lines_before_status() {
    let input = b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for piece in 1..=input.len() {
        let (head, body, consumed) =
            decode_response(input, false, piece, &ResponseLimits::default()).unwrap();
        assert_eq!(head.status, 200, "piece {piece}");
        assert_eq!(body, b"ok", "piece {piece}");
        assert_eq!(consumed, input.len(), "piece {piece}");
    }
}

#[test]
fn response_bare_lf_line_ends_accepted() {
    let (head, body, _) = decode_ok(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false);
    assert_eq!(head.framing, ResponseFraming::Length(2));
    assert_eq!(body, b"ok");
}

#[test]
fn response_head_limit_independent_of_split() {
    // The invalid header comes early, but the head only ends past the limit.
    let limits = ResponseLimits {
        max_head_bytes: 64,
        ..ResponseLimits::default()
    };
    let mut input = b"HTTP/1.1 200 OK\r\nBad Name: x\r\nX-Long: ".to_vec();
    input.resize(100, b'a');
    input.extend_from_slice(b"\r\n\r\n");
    for piece in [1, 7, input.len()] {
        let result = decode_response(&input, false, piece, &limits);
        assert_eq!(
            result.err(),
            Some(UpstreamError::HeadTooLarge { max: 64 }),
            "piece {piece}"
        );
    }
}

/// Request header fields, and the scheme `forwarded_proto` should read from them.
type ForwardedProtoCase = (&'static [(&'static str, &'static str)], Option<&'static str>);

#[test]
fn forwarded_proto_cases() {
    let cases: &[ForwardedProtoCase] = &[
        (&[("X-Forwarded-Proto", "https")], Some("https")),
        (&[("x-forwarded-proto", "HTTP")], Some("http")),
        (&[("X-Forwarded-Proto", " https ")], Some("https")),
        // The nearest proxy appends its own element, and a later field line comes after.
        (&[("X-Forwarded-Proto", "http, https")], Some("https")),
        (&[("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")], Some("http")),
        (&[("X-Forwarded-Proto", "https, ")], Some("https")),
        (&[("X-Forwarded-Proto", "wss")], None),
        (&[("X-Forwarded-Proto", "https, ftp")], None),
        (&[("X-Forwarded-Proto", "")], None),
        (&[("X_Forwarded_Proto", "https")], None),
        (&[("Forwarded", "proto=https")], None),
        (&[], None),
    ];
    for (headers, expected) in cases {
        let head = request_head("GET", "/", headers);
        assert_eq!(forwarded_proto(&head), *expected, "{headers:?}");
    }
}
