//! Feeds arbitrary bytes, split at fuzz-chosen points, through the upstream response decoder.
//! The result must match decoding the whole input at once, and no body may exceed its
//! declared length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringfront::http::{
    ResponseDecoder, ResponseEvent, ResponseFraming, ResponseHead, ResponseLimits, UpstreamError,
};

/// Number of leading input bytes that choose the piece sizes and the request method.
const CONTROL_BYTES: usize = 5;

fn limits() -> ResponseLimits {
    ResponseLimits {
        max_head_bytes: 1024,
        max_headers: 16,
        max_body_bytes: 2048,
        max_chunk_extension_bytes: 64,
        max_trailer_bytes: 128,
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    head: Option<ResponseHead>,
    body: Vec<u8>,
    consumed: usize,
    result: Result<(), UpstreamError>,
}

fn run(input: &[u8], sizes: &[usize], request_was_head: bool) -> Outcome {
    let mut decoder = ResponseDecoder::new(request_was_head, limits());
    let mut buffer = Vec::new();
    let mut body = Vec::new();
    let mut head = None;
    let mut consumed_total = 0;
    let mut offset = 0;
    let mut piece = 0;

    for _ in 0..input.len() * 3 + 8 {
        let (consumed, event) = match decoder.decode(&buffer, &mut body) {
            Ok(result) => result,
            Err(error) => {
                return Outcome {
                    head,
                    body: Vec::new(),
                    consumed: 0,
                    result: Err(error),
                };
            }
        };
        assert!(consumed <= buffer.len());
        buffer.drain(..consumed);
        consumed_total += consumed;

        match event {
            ResponseEvent::NeedMore => {
                if offset >= input.len() {
                    let result = decoder.finish_on_eof();
                    if result.is_ok() {
                        check_body_length(
                            head.as_ref().expect("complete without a head"),
                            &body,
                            true,
                        );
                    }
                    return Outcome {
                        head,
                        body,
                        consumed: consumed_total,
                        result,
                    };
                }
                let size = sizes.get(piece % sizes.len()).copied().unwrap_or(1).max(1);
                piece += 1;
                let end = offset.saturating_add(size).min(input.len());
                buffer.extend_from_slice(input.get(offset..end).unwrap_or_default());
                offset = end;
            }
            ResponseEvent::Head(parsed) => {
                assert!(head.is_none(), "second final head");
                assert!(!(100..200).contains(&parsed.status) || parsed.status == 101);
                head = Some(parsed);
            }
            ResponseEvent::Body => {
                check_body_length(head.as_ref().expect("body before head"), &body, false);
            }
            ResponseEvent::Complete => {
                check_body_length(head.as_ref().expect("complete before head"), &body, true);
                return Outcome {
                    head,
                    body,
                    consumed: consumed_total,
                    result: Ok(()),
                };
            }
        }
    }
    panic!("decoder made no progress");
}

fn check_body_length(head: &ResponseHead, body: &[u8], complete: bool) {
    let length = body.len() as u64;
    assert!(length <= limits().max_body_bytes);
    match head.framing {
        ResponseFraming::Empty => assert_eq!(length, 0),
        ResponseFraming::Length(declared) if complete => assert_eq!(length, declared),
        ResponseFraming::Length(declared) => assert!(length < declared),
        ResponseFraming::Chunked | ResponseFraming::UntilClose => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (control, input) = data.split_at(data.len().min(CONTROL_BYTES));
    let request_was_head = control.first().is_some_and(|byte| byte & 1 == 1);
    let mut sizes: Vec<usize> = control
        .iter()
        .skip(1)
        .map(|&size| usize::from(size))
        .collect();
    if sizes.is_empty() {
        sizes.push(1);
    }

    let whole = run(input, &[usize::MAX], request_was_head);
    let split = run(input, &sizes, request_was_head);
    let byte_by_byte = run(input, &[1], request_was_head);
    assert_eq!(split, whole);
    assert_eq!(byte_by_byte, whole);
});
