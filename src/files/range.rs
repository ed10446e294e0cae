//! Byte range requests (RFC 9110 §14): pure parsing of `Range` and `If-Range` against the length
//! and validators of the identity representation.
//!
//! Only a single range is served. A request for several ranges gets the whole representation
//! with 200, which RFC 9110 §14.2 allows because a server may ignore Range, and it saves building
//! `multipart/byteranges` bodies that browsers and download tools rarely ask for.

use std::ops::Range;

use super::conditional::{Comparison, EntityTag, Validators, parse_date, unix_seconds};

/// The response kind for a GET with the given Range and If-Range fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole representation: no Range, an ignored one, or a failed If-Range.
    Full,
    /// 206 with these bytes of the representation; never empty.
    Partial(Range<u64>),
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// Evaluates the `Range` and `If-Range` field lines of a GET request.
///
/// A Range field that is absent, repeated, longer than `max_header_bytes`, in another unit or
/// syntactically invalid is ignored (RFC 9110 §14.2). So is every range of an empty
/// representation, because no `Content-Range` can describe a part of zero bytes.
pub fn evaluate(
    range_lines: &[&[u8]],
    if_range_lines: &[&[u8]],
    validators: &Validators<'_>,
    len: u64,
    max_header_bytes: usize,
) -> RangeOutcome {
    let [range] = range_lines else {
        return RangeOutcome::Full;
    };
    if range.len() > max_header_bytes || len == 0 {
        return RangeOutcome::Full;
    }
    if !if_range_lines.is_empty() && !if_range_holds(if_range_lines, validators) {
        return RangeOutcome::Full;
    }
    parse_range(range, len)
}

/// Evaluates If-Range (RFC 9110 §13.1.5): an entity tag must match strongly, a date must equal
/// Last-Modified. Anything else, including a repeated field, is false.
fn if_range_holds(lines: &[&[u8]], validators: &Validators<'_>) -> bool {
    let [value] = lines else {
        return false;
    };
    let value = value.trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return EntityTag::parse_single(value)
            .is_some_and(|tag| tag.matches(validators.etag, Comparison::Strong));
    }
    parse_date(value) == Some(unix_seconds(validators.last_modified))
}

/// Parses one `Range` field value for a representation of `len` bytes. An empty representation
/// gives [`RangeOutcome::Full`].
pub fn parse_range(value: &[u8], len: u64) -> RangeOutcome {
    if len == 0 {
        return RangeOutcome::Full;
    }
    let value = value.trim_ascii();
    let Some(equals) = value.iter().position(|&byte| byte == b'=') else {
        return RangeOutcome::Full;
    };
    let (unit, specs) = value.split_at(equals);
    // RFC 9110 §14.1: range units compare case-insensitively.
    if !unit.trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return RangeOutcome::Full;
    }
    let specs = specs.get(1..).unwrap_or_default();

    // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
    let mut members = specs
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|member| !member.is_empty());
    let (Some(spec), None) = (members.next(), members.next()) else {
        return RangeOutcome::Full;
    };

    match parse_spec(spec) {
        Some(spec) => spec.resolve(len),
        None => RangeOutcome::Full,
    }
}

/// One `range-spec` of RFC 9110 §14.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last` or `first-` (last = None).
    FromTo { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    fn resolve(self, len: u64) -> RangeOutcome {
        match self {
            RangeSpec::FromTo { first, .. } if first >= len => RangeOutcome::Unsatisfiable,
            RangeSpec::FromTo { first, last } => {
                let last = last.map_or(len - 1, |last| last.min(len - 1));
                RangeOutcome::Partial(first..last + 1)
            }
            RangeSpec::Suffix(0) => RangeOutcome::Unsatisfiable,
            RangeSpec::Suffix(suffix) => RangeOutcome::Partial(len.saturating_sub(suffix)..len),
        }
    }
}

/// Parses `first-last`, `first-` or `-suffix`. A last position before the first makes the spec
/// invalid (RFC 9110 §14.1.1).
fn parse_spec(spec: &[u8]) -> Option<RangeSpec> {
    let dash = spec.iter().position(|&byte| byte == b'-')?;
    let first = spec.get(..dash)?;
    let last = spec.get(dash + 1..)?;

    if first.is_empty() {
        return parse_position(last).map(RangeSpec::Suffix);
    }
    let first = parse_position(first)?;
    if last.is_empty() {
        return Some(RangeSpec::FromTo { first, last: None });
    }
    let last = parse_position(last)?;
    if last < first {
        return None;
    }
    Some(RangeSpec::FromTo {
        first,
        last: Some(last),
    })
}

/// Parses a non-empty run of ASCII digits, saturating at `u64::MAX`. Saturation keeps the
/// meaning of a huge position: past the end for a first position, the end for a last one and the
/// whole representation for a suffix.
fn parse_position(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().fold(0u64, |value, &digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(value)
}

/// Formats `Content-Range` for a 206 response (RFC 9110 §14.4).
pub fn content_range(range: &Range<u64>, len: u64) -> String {
    format!(
        "bytes {}-{}/{}",
        range.start,
        range.end.saturating_sub(1),
        len
    )
}

/// Formats `Content-Range` for a 416 response (RFC 9110 §15.5.17).
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    use RangeOutcome::{Full, Partial, Unsatisfiable};

    const LEN: u64 = 1000;

    #[test]
    fn parse_range_case_table() {
        let cases: &[(&str, RangeOutcome)] = &[
            // The three forms.
            ("bytes=0-499", Partial(0..500)),
            ("bytes=500-999", Partial(500..1000)),
            ("bytes=500-", Partial(500..1000)),
            ("bytes=-200", Partial(800..1000)),
            ("bytes=0-0", Partial(0..1)),
            ("bytes=999-999", Partial(999..1000)),
            ("bytes=-1", Partial(999..1000)),
            // Clamping to the representation.
            ("bytes=500-5000", Partial(500..1000)),
            ("bytes=-5000", Partial(0..1000)),
            ("bytes=0-18446744073709551615", Partial(0..1000)),
            ("bytes=0-99999999999999999999999", Partial(0..1000)),
            ("bytes=-99999999999999999999999", Partial(0..1000)),
            // Unsatisfiable.
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-2000", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=99999999999999999999999-", Unsatisfiable),
            // Unit and whitespace.
            ("BYTES=0-1", Partial(0..2)),
            (" bytes=0-1 ", Partial(0..2)),
            ("bytes= 0-1", Partial(0..2)),
            ("bytes=0-1,", Partial(0..2)),
            ("bytes=,0-1", Partial(0..2)),
            ("items=0-1", Full),
            ("bytes 0-1", Full),
            ("=0-1", Full),
            // Invalid syntax is ignored.
            ("bytes=", Full),
            ("bytes=-", Full),
            ("bytes=5-4", Full),
            ("bytes=a-1", Full),
            ("bytes=1-b", Full),
            ("bytes=+1-2", Full),
            ("bytes=0x1-2", Full),
            ("bytes=1--2", Full),
            ("bytes=1 - 2", Full),
            ("bytes=1", Full),
            // Several ranges get the whole file.
            ("bytes=0-1,5-6", Full),
            ("bytes=0-1, -1", Full),
            ("bytes=1000-,2000-", Full),
        ];
        for (value, expected) in cases {
            assert_eq!(
                &parse_range(value.as_bytes(), LEN),
                expected,
                "Range {value:?}"
            );
        }
    }

    #[test]
    fn parse_range_single_byte_file() {
        assert_eq!(parse_range(b"bytes=0-", 1), Partial(0..1));
        assert_eq!(parse_range(b"bytes=-5", 1), Partial(0..1));
        assert_eq!(parse_range(b"bytes=1-", 1), Unsatisfiable);
    }

    #[test]
    fn parse_range_max_length_file() {
        let outcome = parse_range(b"bytes=18446744073709551614-", u64::MAX);
        assert_eq!(outcome, Partial(u64::MAX - 1..u64::MAX));
    }

    #[test]
    fn evaluate_case_table() {
        const TAG: &str = "\"abc\"";
        const AT: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
        let validators = Validators {
            etag: TAG,
            last_modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
        };
        let long = format!("bytes=0-1{}", " ".repeat(100));

        let cases: &[(&[&str], &[&str], u64, RangeOutcome)] = &[
            (&[], &[], LEN, Full),
            (&["bytes=0-1"], &[], LEN, Partial(0..2)),
            (&["bytes=0-1", "bytes=0-1"], &[], LEN, Full),
            (&["bytes=0-1"], &[], 0, Full),
            (&["bytes=-1"], &[], 0, Full),
            (&[&long], &[], LEN, Full),
            // If-Range with an entity tag: strong comparison only.
            (&["bytes=0-1"], &["\"abc\""], LEN, Partial(0..2)),
            (&["bytes=0-1"], &["W/\"abc\""], LEN, Full),
            (&["bytes=0-1"], &["\"other\""], LEN, Full),
            (&["bytes=0-1"], &["\"abc\", \"x\""], LEN, Full),
            // If-Range with a date: exact match only.
            (&["bytes=0-1"], &[AT], LEN, Partial(0..2)),
            (&["bytes=0-1"], &[AFTER], LEN, Full),
            (&["bytes=0-1"], &["garbage"], LEN, Full),
            (&["bytes=0-1"], &[AT, AT], LEN, Full),
            // If-Range without Range changes nothing.
            (&[], &["\"abc\""], LEN, Full),
            // A failed If-Range also hides an unsatisfiable range.
            (&["bytes=5000-"], &["\"other\""], LEN, Full),
            (&["bytes=5000-"], &["\"abc\""], LEN, Unsatisfiable),
        ];
        for (range, if_range, len, expected) in cases {
            let range: Vec<&[u8]> = range.iter().map(|line| line.as_bytes()).collect();
            let if_range: Vec<&[u8]> = if_range.iter().map(|line| line.as_bytes()).collect();
            let actual = evaluate(&range, &if_range, &validators, *len, 64);
            assert_eq!(
                &actual, expected,
                "Range {range:?} If-Range {if_range:?} len {len}"
            );
        }
    }

    #[test]
    fn content_range_format() {
        assert_eq!(content_range(&(0..500), 1000), "bytes 0-499/1000");
        assert_eq!(content_range(&(999..1000), 1000), "bytes 999-999/1000");
        assert_eq!(unsatisfied_range(1000), "bytes */1000");
    }
}
