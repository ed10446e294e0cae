//! Feeds arbitrary bytes, split at fuzz-chosen points, through the request decoder the way a
//! connection does. Events must come in order, no body may exceed its declared length, and the
//! requests must match those decoded from the whole input by a decoder that recycles no heads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringfront::http::{BodyFraming, Event, Limits, RequestDecoder, RequestError, RequestHead};

const SPLIT_BYTES: usize = 4;

fn limits() -> Limits {
    Limits {
        max_head_bytes: 1024,
        max_headers: 16,
        max_uri_bytes: 256,
        max_body_bytes: 2048,
        max_chunk_extension_bytes: 64,
        max_trailer_bytes: 128,
        ..Limits::default()
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<(RequestHead, Vec<u8>)>,
    error: Option<RequestError>,
}

/// Decodes `input` read in pieces of `sizes` bytes. With `recycle`, a copy of each head goes back
/// to the decoder, so later heads are parsed into reused buffers.
fn run(input: &[u8], sizes: &[usize], recycle: bool) -> Outcome {
    let mut decoder = RequestDecoder::new(limits());
    let mut buffer = Vec::new();
    let mut body = Vec::new();
    let mut requests = Vec::new();
    let mut head: Option<RequestHead> = None;
    let mut offset = 0;
    let mut piece = 0;

    // Every iteration consumes input, completes a request or appends a piece, so the bound is
    // never reached by a correct decoder.
    for _ in 0..input.len() * 3 + 8 {
        let (consumed, event) = match decoder.decode(&buffer, &mut body) {
            Ok(result) => result,
            Err(error) => {
                return Outcome {
                    requests,
                    error: Some(error),
                };
            }
        };
        assert!(consumed <= buffer.len());
        buffer.drain(..consumed);

        match event {
            Event::NeedMore => {
                assert_eq!(consumed, 0);
                if offset >= input.len() {
                    return Outcome {
                        requests,
                        error: None,
                    };
                }
                let size = sizes.get(piece % sizes.len()).copied().unwrap_or(1).max(1);
                piece += 1;
                let end = offset.saturating_add(size).min(input.len());
                buffer.extend_from_slice(input.get(offset..end).unwrap_or_default());
                offset = end;
            }
            Event::Head(parsed) => {
                assert!(head.is_none(), "head before the previous request completed");
                assert!(body.is_empty(), "body bytes before the head");
                head = Some(parsed);
            }
            Event::Body => {
                let current = head.as_ref().expect("body before head");
                check_body_length(current, &body, false);
            }
            Event::Complete => {
                let current = head.take().expect("complete before head");
                check_body_length(&current, &body, true);
                if recycle {
                    decoder.recycle(current.clone());
                }
                requests.push((current, std::mem::take(&mut body)));
                decoder.reset();
            }
        }
    }
    panic!("decoder made no progress");
}

/// Checks that the body never exceeds its declared length, and matches it once complete.
fn check_body_length(head: &RequestHead, body: &[u8], complete: bool) {
    let length = body.len() as u64;
    match head.framing {
        BodyFraming::Empty => assert_eq!(length, 0),
        BodyFraming::Length(declared) if complete => assert_eq!(length, declared),
        BodyFraming::Length(declared) => assert!(length < declared),
        BodyFraming::Chunked => assert!(length <= limits().max_body_bytes),
    }
}

fuzz_target!(|data: &[u8]| {
    let (size_bytes, input) = data.split_at(data.len().min(SPLIT_BYTES));
    let mut sizes: Vec<usize> = size_bytes.iter().map(|&size| usize::from(size)).collect();
    if sizes.is_empty() {
        sizes.push(1);
    }
    let split = run(input, &sizes, true);
    let whole = run(input, &[usize::MAX], false);
    let byte_by_byte = run(input, &[1], true);
    assert_eq!(split, whole);
    assert_eq!(byte_by_byte, whole);
});
