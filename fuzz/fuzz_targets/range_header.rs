//! Evaluates arbitrary `Range` and `If-Range` values against a fuzz-chosen length. Every range
//! returned must lie inside the representation, multipart parts must be disjoint and within
//! the count limit, and their total must not exceed the representation length.
#![no_main]

use std::ops::Range;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ringfront::files::conditional::Validators;
use ringfront::files::range::{RangeLimits, RangeOutcome, evaluate, parse_range};

/// Leading input bytes: eight for the length, one for its scale and one for `max_ranges`.
const HEADER_BYTES: usize = 10;

fuzz_target!(|data: &[u8]| {
    let Some((header, value)) = data.split_at_checked(HEADER_BYTES) else {
        return;
    };
    let mut length_bytes = [0u8; 8];
    length_bytes.copy_from_slice(&header[..8]);
    let mut len = u64::from_le_bytes(length_bytes);
    // Mostly small lengths, so that ranges often fall inside, end at, or pass the end.
    if header[8] & 1 == 0 {
        len %= 4096;
    }
    let limits = RangeLimits {
        max_header_bytes: 1024,
        max_ranges: usize::from(header[9] % 32),
    };

    // A newline splits the Range value from an If-Range value.
    let (range, if_range) = match value.iter().position(|&byte| byte == b'\n') {
        Some(newline) => (&value[..newline], Some(&value[newline + 1..])),
        None => (value, None),
    };

    let parsed = parse_range(range, len, &limits);
    check(&parsed, len, &limits);

    let validators = Validators {
        etag: "\"0123456789abcdef\"",
        last_modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
    };
    let if_range_lines: Vec<&[u8]> = if_range.into_iter().collect();
    let evaluated = evaluate(&[range], &if_range_lines, &validators, len, &limits);
    check(&evaluated, len, &limits);
    if range.len() > limits.max_header_bytes {
        assert_eq!(evaluated, RangeOutcome::Full);
    }
    if if_range.is_none() && range.len() <= limits.max_header_bytes {
        assert_eq!(evaluated, parsed);
    }
});

fn check(outcome: &RangeOutcome, len: u64, limits: &RangeLimits) {
    match outcome {
        RangeOutcome::Full => {}
        RangeOutcome::Unsatisfiable => assert!(len > 0, "416 for an empty representation"),
        RangeOutcome::Partial(part) => check_part(part, len),
        RangeOutcome::Multipart(parts) => {
            assert!(parts.len() >= 2, "multipart with {} parts", parts.len());
            assert!(parts.len() <= limits.max_ranges, "{} parts", parts.len());
            let mut total: u64 = 0;
            for (index, part) in parts.iter().enumerate() {
                check_part(part, len);
                total = total
                    .checked_add(part.end - part.start)
                    .expect("total length overflows");
                for other in &parts[index + 1..] {
                    let disjoint = part.end <= other.start || other.end <= part.start;
                    assert!(disjoint, "{part:?} overlaps {other:?}");
                }
            }
            assert!(total <= len, "parts total {total} of {len}");
        }
    }
}

fn check_part(part: &Range<u64>, len: u64) {
    assert!(part.start < part.end, "empty part {part:?}");
    assert!(part.end <= len, "{part:?} past {len}");
}
