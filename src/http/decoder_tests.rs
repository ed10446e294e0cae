use super::*;

/// One request as a connection loop receives it.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    head: RequestHead,
    body: Vec<u8>,
}

/// Drives a decoder the way a connection loop does: bytes arrive in pieces of `piece` bytes,
/// unconsumed bytes stay buffered, and the decoder is reset after each complete request.
/// Checks the event order on the way and returns the requests and the bytes left over.
fn drive(
    input: &[u8],
    piece: usize,
    limits: &Limits,
) -> Result<(Vec<Received>, Vec<u8>), RequestError> {
    let mut decoder = RequestDecoder::new(limits.clone());
    let mut buffer = Vec::new();
    let mut body = Vec::new();
    let mut received = Vec::new();
    let mut head: Option<RequestHead> = None;
    let mut chunks = input.chunks(piece.max(1));

    // Each iteration consumes bytes, reads a piece or completes a request.
    for _ in 0..input.len() * 4 + 16 {
        let (consumed, event) = decoder.decode(&buffer, &mut body)?;
        assert!(consumed <= buffer.len());
        buffer.drain(..consumed);
        match event {
            Event::NeedMore => {
                assert_eq!(consumed, 0);
                match chunks.next() {
                    Some(chunk) => buffer.extend_from_slice(chunk),
                    None => return Ok((received, buffer)),
                }
            }
            Event::Head(parsed) => {
                assert!(head.is_none(), "second head before Complete");
                assert!(decoder.has_head());
                head = Some(parsed);
            }
            Event::Body => assert!(head.is_some(), "body before head"),
            Event::Complete => {
                let Some(parsed) = head.take() else {
                    panic!("Complete before head")
                };
                if let BodyFraming::Length(length) = parsed.framing {
                    assert_eq!(body.len() as u64, length);
                }
                received.push(Received {
                    head: parsed,
                    body: std::mem::take(&mut body),
                });
                decoder.reset();
            }
        }
    }
    panic!("decoder made no progress");
}

const PIPELINE: &[u8] = b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n\
\r\nGET /four HTTP/1.0\r\n\r\n";

fn pipeline_summary(received: &[Received]) -> Vec<(&str, &[u8])> {
    received
        .iter()
        .map(|request| (request.head.target.as_str(), request.body.as_slice()))
        .collect()
}

#[test]
fn pipeline_whole() {
    let (received, left) = drive(PIPELINE, PIPELINE.len(), &Limits::default()).unwrap();
    let expected: Vec<(&str, &[u8])> = vec![
        ("/one", b""),
        ("/two", b"hello"),
        ("/three", b"abcde"),
        ("/four", b""),
    ];
    assert_eq!(pipeline_summary(&received), expected);
    assert!(left.is_empty());
}

#[test]
fn pipeline_split_every_piece_size() {
    let (whole, _) = drive(PIPELINE, PIPELINE.len(), &Limits::default()).unwrap();
    for piece in 1..=PIPELINE.len() {
        let (received, left) = drive(PIPELINE, piece, &Limits::default()).unwrap();
        assert_eq!(received, whole, "piece {piece}");
        assert!(left.is_empty(), "piece {piece}");
    }
}

#[test]
fn pipeline_split_at_every_byte() {
    let (whole, _) = drive(PIPELINE, PIPELINE.len(), &Limits::default()).unwrap();
    for split in 1..PIPELINE.len() {
        let mut decoder = RequestDecoder::new(Limits::default());
        let (first, second) = PIPELINE.split_at(split);
        let mut buffer = first.to_vec();
        let mut pending = Some(second);
        let mut body = Vec::new();
        let mut received = Vec::new();
        let mut head = None;
        for _ in 0..64 {
            let (consumed, event) = decoder.decode(&buffer, &mut body).unwrap();
            buffer.drain(..consumed);
            match event {
                Event::NeedMore => match pending.take() {
                    Some(rest) => buffer.extend_from_slice(rest),
                    None => break,
                },
                Event::Head(parsed) => head = Some(parsed),
                Event::Body => {}
                Event::Complete => {
                    received.push(Received {
                        head: head.take().unwrap(),
                        body: std::mem::take(&mut body),
                    });
                    decoder.reset();
                }
            }
        }
        assert_eq!(received, whole, "split {split}");
    }
}

#[test]
fn length_body_never_overread() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    let (used, event) = decoder.decode(input, &mut body).unwrap();
    assert!(matches!(event, Event::Head(_)));
    let rest = input.get(used..).unwrap();
    assert_eq!(decoder.decode(rest, &mut body), Ok((5, Event::Complete)));
    assert_eq!(body, b"hello");
}

#[test]
fn length_body_in_pieces() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    let head = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n";
    let (used, _) = decoder.decode(head, &mut body).unwrap();
    assert_eq!(used, head.len());
    assert_eq!(decoder.decode(b"", &mut body), Ok((0, Event::NeedMore)));
    assert_eq!(decoder.decode(b"ab", &mut body), Ok((2, Event::Body)));
    assert_eq!(decoder.decode(b"cd", &mut body), Ok((2, Event::Body)));
    assert_eq!(decoder.decode(b"efgh", &mut body), Ok((2, Event::Complete)));
    assert_eq!(body, b"abcdef");
}

#[test]
fn empty_body_completes_without_input() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let (used, event) = decoder.decode(input, &mut body).unwrap();
    assert_eq!(used, input.len());
    assert!(matches!(event, Event::Head(_)));
    assert_eq!(decoder.decode(b"", &mut body), Ok((0, Event::Complete)));
}

#[test]
fn complete_repeats_until_reset() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    decoder
        .decode(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut body)
        .unwrap();
    assert_eq!(decoder.decode(b"", &mut body), Ok((0, Event::Complete)));
    assert_eq!(
        decoder.decode(b"GET /", &mut body),
        Ok((0, Event::Complete))
    );
    assert!(decoder.has_head());
    decoder.reset();
    assert!(!decoder.has_head());
    assert_eq!(
        decoder.decode(b"GET /", &mut body),
        Ok((0, Event::NeedMore))
    );
}

#[test]
fn chunked_needs_more() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    decoder
        .decode(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            &mut body,
        )
        .unwrap();
    assert_eq!(decoder.decode(b"", &mut body), Ok((0, Event::NeedMore)));
    assert_eq!(decoder.decode(b"3\r", &mut body), Ok((2, Event::Body)));
    assert_eq!(decoder.decode(b"\nab", &mut body), Ok((3, Event::Body)));
    assert_eq!(
        decoder.decode(b"c\r\n0\r\n\r\nNEXT", &mut body),
        Ok((8, Event::Complete))
    );
    assert_eq!(body, b"abc");
}

#[test]
fn error_repeats_on_later_calls() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    assert_eq!(
        decoder.decode(b"GET / HTTP/1.1\n", &mut body),
        Err(RequestError::BareLf)
    );
    assert_eq!(
        decoder.decode(b"GET / HTTP/1.1\r\n", &mut body),
        Err(RequestError::BareLf)
    );
    assert_eq!(decoder.finish_on_eof(), Err(RequestError::BareLf));
}

#[test]
fn errors_reported_through_decoder() {
    let limits = Limits {
        max_body_bytes: 4,
        ..Limits::default()
    };
    let cases: &[(&[u8], RequestError)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            RequestError::ContentLengthTooLarge { length: 5, max: 4 },
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n",
            RequestError::BodyTooLarge { max: 4 },
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            RequestError::ChunkNotTerminated,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", RequestError::MissingHost),
    ];
    for (input, expected) in cases {
        let result = drive(input, 3, &limits);
        assert_eq!(
            result.err().as_ref(),
            Some(expected),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn eof_classification() {
    let cases: &[(&[u8], Result<(), RequestError>)] = &[
        (b"", Ok(())),
        (b"GET / HT", Err(RequestError::UnexpectedEof)),
        (b"\r\n", Err(RequestError::UnexpectedEof)),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
            Err(RequestError::UnexpectedEof),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            Err(RequestError::UnexpectedEof),
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
            Ok(()),
        ),
    ];
    for (input, expected) in cases {
        let mut decoder = RequestDecoder::new(Limits::default());
        let mut body = Vec::new();
        let mut buffer = input.to_vec();
        for _ in 0..8 {
            let (consumed, event) = decoder.decode(&buffer, &mut body).unwrap();
            buffer.drain(..consumed);
            if matches!(event, Event::NeedMore) {
                break;
            }
            if event == Event::Complete {
                decoder.reset();
            }
        }
        assert_eq!(
            decoder.finish_on_eof(),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn idle_only_between_requests() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    assert!(decoder.is_idle());
    decoder.decode(b"GET", &mut body).unwrap();
    assert!(!decoder.is_idle());
    decoder
        .decode(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut body)
        .unwrap();
    assert!(!decoder.is_idle());
    decoder.decode(b"", &mut body).unwrap();
    decoder.reset();
    assert!(decoder.is_idle());
}

#[test]
fn head_event_marks_head_seen() {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    let (_, event) = decoder
        .decode(b"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", &mut body)
        .unwrap();
    let Event::Head(head) = event else {
        panic!("expected a head, got {event:?}")
    };
    assert_eq!(head.method, "DELETE");
    assert!(decoder.has_head());
}

/// Decodes one head after a reset, with the input arriving in pieces of `piece` bytes.
fn decode_head_in_pieces(decoder: &mut RequestDecoder, input: &[u8], piece: usize) -> RequestHead {
    decoder.reset();
    let mut body = Vec::new();
    let mut end = 0;
    while end < input.len() {
        end = (end + piece).min(input.len());
        let prefix = input.get(..end).unwrap_or_default();
        match decoder.decode(prefix, &mut body) {
            Ok((_, Event::Head(head))) => return head,
            Ok((0, Event::NeedMore)) => {}
            other => panic!("piece {piece}, {end} bytes: {other:?}"),
        }
    }
    panic!("piece {piece}: no head in {:?}", String::from_utf8_lossy(input));
}

#[test]
fn recycled_heads_match_fresh_parse() {
    // Each head refills the buffers of one with another shape: more fields, fewer fields, an
    // absolute-form target that adds a Host field, a value longer than the buffer it gets.
    let heads: &[&[u8]] = &[
        b"GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-One: 1\r\nX-Two: 2\r\n\r\n",
        b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n",
        b"GET http://b.example/p HTTP/1.0\r\n\r\n",
        b"GET http://c.example HTTP/1.1\r\nHost: ignored\r\nAccept: text/html\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
    ];
    let limits = Limits::default();
    let mut decoder = RequestDecoder::new(limits.clone());
    for piece in [1, 3, 64] {
        for input in heads {
            let Ok(Some((expected, _))) = crate::http::parse_request_head(input, &limits) else {
                panic!("{:?} must parse", String::from_utf8_lossy(input));
            };
            let head = decode_head_in_pieces(&mut decoder, input, piece);
            assert_eq!(head, expected, "piece {piece}");
            decoder.recycle(head);
        }
    }
}

#[test]
fn recycle_reuses_allocations() {
    let input = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let mut decoder = RequestDecoder::new(Limits::default());
    let first = decode_head_in_pieces(&mut decoder, input, input.len());
    let method = first.method.as_ptr();
    let target = first.target.as_ptr();
    let list = first.headers.as_ptr();
    let names: Vec<*const u8> = first.headers.iter().map(|header| header.name.as_ptr()).collect();
    let values: Vec<*const u8> = first.headers.iter().map(|header| header.value.as_ptr()).collect();
    decoder.recycle(first);

    let second = decode_head_in_pieces(&mut decoder, input, input.len());
    assert_eq!(second.method.as_ptr(), method);
    assert_eq!(second.target.as_ptr(), target);
    assert_eq!(second.headers.as_ptr(), list);
    let second_names: Vec<*const u8> = second.headers.iter().map(|header| header.name.as_ptr()).collect();
    assert_eq!(second_names, names);
    let second_values: Vec<*const u8> =
        second.headers.iter().map(|header| header.value.as_ptr()).collect();
    assert_eq!(second_values, values);
}
