//! Byte range requests (RFC 9110 §14): pure parsing of `Range` and `If-Range` against the length
//! and validators of the identity representation.
//!
//! A request for one range gets a single-part 206. Several ranges get a `multipart/byteranges`
//! 206 (RFC 9110 §14.6) whose parts follow the request order, except that a range that starts
//! right where the previous one ends is merged into it (RFC 9110 §14.3 allows coalescing). A
//! field with more than [`RangeLimits::max_ranges`] ranges, or with two ranges that share a
//! byte, is ignored and the whole representation is sent with 200. RFC 9110 §14.3 names both as
//! signs of a broken client or a denial-of-service attempt, and §14.2 lets a server ignore
//! Range. Since the ranges served are disjoint, their total length never exceeds the
//! representation, so a multipart body is at most the file plus one part header per range.

use std::ops::Range;

use super::conditional::{Comparison, EntityTag, Validators, parse_date, unix_seconds};

/// Limits on the `Range` field of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeLimits {
    /// Longest `Range` field value in bytes that is parsed, default 1024. A longer one is
    /// ignored and the whole file is sent. One range with 20-digit positions takes 47 bytes.
    pub max_header_bytes: usize,
    /// Maximum number of ranges in one `Range` field, default 16. A field with more is ignored
    /// and the whole file is sent, because every range costs a part header and a copy.
    pub max_ranges: usize,
}

impl Default for RangeLimits {
    fn default() -> Self {
        RangeLimits {
            max_header_bytes: 1024,
            max_ranges: 16,
        }
    }
}

/// The response kind for a GET with the given Range and If-Range fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole representation: no Range, an ignored one, or a failed If-Range.
    Full,
    /// 206 with these bytes of the representation; never empty.
    Partial(Range<u64>),
    /// 206 `multipart/byteranges` with these parts in this order: at least two and at most
    /// `max_ranges`, each non-empty, inside the representation, and sharing no byte with another.
    Multipart(Vec<Range<u64>>),
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
    limits: &RangeLimits,
) -> RangeOutcome {
    let [range] = range_lines else {
        return RangeOutcome::Full;
    };
    if range.len() > limits.max_header_bytes || len == 0 {
        return RangeOutcome::Full;
    }
    if !if_range_lines.is_empty() && !if_range_holds(if_range_lines, validators) {
        return RangeOutcome::Full;
    }
    parse_range(range, len, limits)
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
/// gives [`RangeOutcome::Full`]. `limits.max_header_bytes` is not checked here.
///
/// Ranges that start past the end are dropped. When none is left, the outcome is
/// [`RangeOutcome::Unsatisfiable`] (RFC 9110 §14.1.1: a range set is satisfiable when any of
/// its ranges is).
pub fn parse_range(value: &[u8], len: u64, limits: &RangeLimits) -> RangeOutcome {
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
    let members = specs
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|member| !member.is_empty());
    let mut parts: Vec<Range<u64>> = Vec::new();
    let mut count = 0usize;
    for member in members {
        count = count.saturating_add(1);
        if count > limits.max_ranges {
            return RangeOutcome::Full;
        }
        let Some(spec) = parse_spec(member) else {
            return RangeOutcome::Full;
        };
        parts.extend(spec.resolve(len));
    }
    if count == 0 {
        return RangeOutcome::Full;
    }

    if parts.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    if has_overlap(&parts) {
        return RangeOutcome::Full;
    }
    let mut parts = coalesce_adjacent(parts);
    match (parts.pop(), parts.is_empty()) {
        (Some(only), true) => RangeOutcome::Partial(only),
        (Some(last), false) => {
            parts.push(last);
            RangeOutcome::Multipart(parts)
        }
        (None, _) => RangeOutcome::Unsatisfiable,
    }
}

/// Checks whether any two ranges share a byte. Quadratic, which is fine for at most
/// `max_ranges` ranges.
fn has_overlap(parts: &[Range<u64>]) -> bool {
    parts.iter().enumerate().any(|(index, part)| {
        parts
            .iter()
            .skip(index + 1)
            .any(|other| part.start < other.end && other.start < part.end)
    })
}

/// Merges each range into the previous one when it starts exactly where that one ends.
fn coalesce_adjacent(parts: Vec<Range<u64>>) -> Vec<Range<u64>> {
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(parts.len());
    for part in parts {
        match merged.last_mut() {
            Some(previous) if previous.end == part.start => previous.end = part.end,
            _ => merged.push(part),
        }
    }
    merged
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
    /// Returns the bytes this spec selects in a representation of `len` bytes, clamped to the
    /// end, or None when it selects nothing. `len` must not be zero.
    fn resolve(self, len: u64) -> Option<Range<u64>> {
        let last_position = len.checked_sub(1)?;
        match self {
            RangeSpec::FromTo { first, .. } if first >= len => None,
            RangeSpec::FromTo { first, last } => {
                let last = last.map_or(last_position, |last| last.min(last_position));
                Some(first..last.checked_add(1)?)
            }
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(suffix) => Some(len.saturating_sub(suffix)..len),
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

    use RangeOutcome::{Full, Multipart, Partial, Unsatisfiable};

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
            // Several ranges: multipart in request order.
            ("bytes=0-1,5-6", Multipart(vec![0..2, 5..7])),
            ("bytes=0-1, -1", Multipart(vec![0..2, 999..1000])),
            ("bytes=900-,0-9", Multipart(vec![900..1000, 0..10])),
            ("bytes=0-1,,5-6", Multipart(vec![0..2, 5..7])),
            // Unsatisfiable members are dropped; none left means 416.
            ("bytes=0-1,5000-", Partial(0..2)),
            ("bytes=5000-,0-1,10-19", Multipart(vec![0..2, 10..20])),
            ("bytes=1000-,2000-", Unsatisfiable),
            ("bytes=-0,1000-", Unsatisfiable),
            // Ascending ranges that touch are merged.
            ("bytes=0-4,5-9", Partial(0..10)),
            ("bytes=0-4,5-9,20-29", Multipart(vec![0..10, 20..30])),
            ("bytes=0-4,10-19,20-", Multipart(vec![0..5, 10..1000])),
            // Touching in descending order is not merged.
            ("bytes=5-9,0-4", Multipart(vec![5..10, 0..5])),
            // Overlapping ranges get the whole file.
            ("bytes=0-5,5-9", Full),
            ("bytes=0-499,-600", Full),
            ("bytes=0-,0-", Full),
            ("bytes=10-19,0-999", Full),
            // One invalid member voids the field.
            ("bytes=0-1,x", Full),
            ("bytes=0-1,5-4", Full),
        ];
        for (value, expected) in cases {
            assert_eq!(
                &parse_range(value.as_bytes(), LEN, &RangeLimits::default()),
                expected,
                "Range {value:?}"
            );
        }
    }

    #[test]
    fn parse_range_count_limit() {
        let limits = RangeLimits {
            max_ranges: 3,
            ..RangeLimits::default()
        };
        let three = parse_range(b"bytes=0-0,2-2,4-4", LEN, &limits);
        assert_eq!(three, Multipart(vec![0..1, 2..3, 4..5]));
        let four = parse_range(b"bytes=0-0,2-2,4-4,6-6", LEN, &limits);
        assert_eq!(four, Full);
        // Unsatisfiable members count too, so they cannot be used to pad a field cheaply.
        let padded = parse_range(b"bytes=0-0,2000-,3000-,4000-", LEN, &limits);
        assert_eq!(padded, Full);
    }

    #[test]
    fn parse_range_default_limit_sixteen() {
        let specs: Vec<String> = (0..17).map(|index| format!("{0}-{0}", index * 2)).collect();
        let sixteen = format!("bytes={}", specs.get(..16).unwrap().join(","));
        let seventeen = format!("bytes={}", specs.join(","));
        let limits = RangeLimits::default();
        assert!(matches!(
            parse_range(sixteen.as_bytes(), LEN, &limits),
            Multipart(parts) if parts.len() == 16
        ));
        assert_eq!(parse_range(seventeen.as_bytes(), LEN, &limits), Full);
    }

    #[test]
    fn parse_range_single_byte_file() {
        let limits = RangeLimits::default();
        assert_eq!(parse_range(b"bytes=0-", 1, &limits), Partial(0..1));
        assert_eq!(parse_range(b"bytes=-5", 1, &limits), Partial(0..1));
        assert_eq!(parse_range(b"bytes=1-", 1, &limits), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-0,-1", 1, &limits), Full);
    }

    #[test]
    fn parse_range_max_length_file() {
        let limits = RangeLimits::default();
        let outcome = parse_range(b"bytes=18446744073709551614-", u64::MAX, &limits);
        assert_eq!(outcome, Partial(u64::MAX - 1..u64::MAX));
        let last = parse_range(b"bytes=0-18446744073709551615", u64::MAX, &limits);
        assert_eq!(last, Partial(0..u64::MAX));
        let suffix = parse_range(b"bytes=-18446744073709551615", u64::MAX, &limits);
        assert_eq!(suffix, Partial(0..u64::MAX));
        let two = parse_range(b"bytes=0-0,-1", u64::MAX, &limits);
        assert_eq!(two, Multipart(vec![0..1, u64::MAX - 1..u64::MAX]));
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
            // If-Range applies to multipart requests too.
            (
                &["bytes=0-1,5-6"],
                &["\"abc\""],
                LEN,
                Multipart(vec![0..2, 5..7]),
            ),
            (&["bytes=0-1,5-6"], &["\"other\""], LEN, Full),
            // If-Range without Range changes nothing.
            (&[], &["\"abc\""], LEN, Full),
            // A failed If-Range also hides an unsatisfiable range.
            (&["bytes=5000-"], &["\"other\""], LEN, Full),
            (&["bytes=5000-"], &["\"abc\""], LEN, Unsatisfiable),
        ];
        for (range, if_range, len, expected) in cases {
            let range: Vec<&[u8]> = range.iter().map(|line| line.as_bytes()).collect();
            let if_range: Vec<&[u8]> = if_range.iter().map(|line| line.as_bytes()).collect();
            let limits = RangeLimits {
                max_header_bytes: 64,
                ..RangeLimits::default()
            };
            let actual = evaluate(&range, &if_range, &validators, *len, &limits);
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
