//! Decodes arbitrary bytes as a chunked body, whole and split into fuzz-chosen pieces. Both
//! must give the same body, the same consumed count and the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringfront::http::{ChunkedDecoder, Limits, RequestError};

/// Number of leading input bytes that choose the piece sizes.
const SPLIT_BYTES: usize = 4;

fn limits() -> Limits {
    Limits {
        max_body_bytes: 4096,
        max_chunk_extension_bytes: 64,
        max_trailer_bytes: 128,
        ..Limits::default()
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    consumed: usize,
    done: bool,
    error: Option<RequestError>,
}

fn decode_whole(input: &[u8]) -> Outcome {
    let mut decoder = ChunkedDecoder::new(&limits());
    let mut body = Vec::new();
    match decoder.decode(input, &mut body) {
        Ok((consumed, done)) => Outcome {
            body,
            consumed,
            done,
            error: None,
        },
        Err(error) => Outcome {
            body,
            consumed: 0,
            done: false,
            error: Some(error),
        },
    }
}

fn decode_split(input: &[u8], sizes: &[u8]) -> Outcome {
    let mut decoder = ChunkedDecoder::new(&limits());
    let mut body = Vec::new();
    let mut consumed = 0;
    let mut offset = 0;
    let mut piece = 0;
    while offset < input.len() {
        let size = usize::from(sizes.get(piece % sizes.len()).copied().unwrap_or(1)).max(1);
        piece += 1;
        let end = offset.saturating_add(size).min(input.len());
        let chunk = input.get(offset..end).unwrap_or_default();
        match decoder.decode(chunk, &mut body) {
            Ok((used, done)) => {
                assert!(used <= chunk.len());
                consumed += used;
                if done {
                    return Outcome {
                        body,
                        consumed,
                        done,
                        error: None,
                    };
                }
                // Before the end of the body, the decoder consumes every byte it is given.
                assert_eq!(used, chunk.len());
            }
            Err(error) => {
                return Outcome {
                    body,
                    consumed: 0,
                    done: false,
                    error: Some(error),
                };
            }
        }
        offset = end;
    }
    Outcome {
        body,
        consumed,
        done: false,
        error: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, input) = data.split_at(data.len().min(SPLIT_BYTES));
    let whole = decode_whole(input);
    let split = decode_split(input, if sizes.is_empty() { &[1] } else { sizes });

    assert!(whole.body.len() as u64 <= limits().max_body_bytes);
    if whole.error.is_some() {
        // Output written before the error may differ in length, the error itself may not.
        assert_eq!(whole.error, split.error);
    } else {
        assert_eq!(whole, split);
    }
});
