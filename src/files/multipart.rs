//! `multipart/byteranges` bodies (RFC 9110 §14.6) for a request with several ranges, built in
//! one buffer from a file held in memory. The ranges come from `range::parse_range`, which
//! guarantees that they are disjoint, so the buffer is at most the file plus the part headers.

use std::fmt::Write as _;
use std::ops::Range;

use super::range::content_range;

/// Bytes of the part header beyond the boundary, the content type and the Content-Range value:
/// `\r\n--`, `\r\nContent-Type: `, `\r\nContent-Range: ` and the blank line.
const PART_HEADER_BYTES: usize = 4 + 16 + 17 + 4;

/// Returns the boundary for a representation with entity tag `etag`: `ringfront-` and the
/// letters and digits of the tag.
///
/// RFC 2046 §5.1.1 requires that the boundary delimiter never occurs inside a part. The body is
/// not scanned for it, because our tags are a SHA-256 prefix of the file's bytes: a file that
/// contains 64 bits of its own hash takes about 2^64 attempts to construct.
pub(crate) fn boundary(etag: &str) -> String {
    let mut boundary = String::from("ringfront-");
    boundary.extend(
        etag.chars()
            .filter(char::is_ascii_alphanumeric)
            // RFC 2046 §5.1.1: a boundary has at most 70 characters.
            .take(60),
    );
    boundary
}

/// Returns the `Content-Type` field value of a multipart response with `boundary`.
pub(crate) fn content_type(boundary: &str) -> String {
    format!("multipart/byteranges; boundary={boundary}")
}

/// Builds the multipart body for `parts` of `bytes`, each part carrying `content_type` and its
/// Content-Range. Returns None when a part lies outside `bytes`.
pub(crate) fn body(
    bytes: &[u8],
    parts: &[Range<u64>],
    content_type: &str,
    boundary: &str,
) -> Option<Vec<u8>> {
    let total_len = u64::try_from(bytes.len()).ok()?;
    let mut slices = Vec::with_capacity(parts.len());
    let mut capacity = boundary.len().saturating_add(8);
    for part in parts {
        let start = usize::try_from(part.start).ok()?;
        let end = usize::try_from(part.end).ok()?;
        let slice = bytes.get(start..end)?;
        let header = PART_HEADER_BYTES
            .saturating_add(boundary.len())
            .saturating_add(content_type.len())
            .saturating_add(64);
        capacity = capacity.saturating_add(slice.len()).saturating_add(header);
        slices.push((part, slice));
    }

    // RFC 2046 §5.1.1: every delimiter starts with CRLF, which for the first part makes an
    // empty preamble, and the close delimiter ends with `--`.
    let mut out = Vec::with_capacity(capacity);
    let mut header = String::with_capacity(128);
    for (part, slice) in slices {
        header.clear();
        let _ = write!(
            header,
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            content_range(part, total_len)
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(slice);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_from_etag() {
        assert_eq!(boundary("\"0123abcd\""), "ringfront-0123abcd");
        assert_eq!(boundary("\"a-b_c\""), "ringfront-abc");
        assert!(boundary(&"x".repeat(200)).len() <= 70);
    }

    #[test]
    fn body_two_parts_exact() {
        let bytes = b"0123456789";
        let body = body(bytes, &[0..2, 5..10], "text/plain", "B").unwrap();
        let expected = "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
                        \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-9/10\r\n\r\n56789\
                        \r\n--B--\r\n";
        assert_eq!(String::from_utf8_lossy(&body), expected);
    }

    #[test]
    fn body_part_outside_is_none() {
        assert!(body(b"0123", &[0..2, 3..5], "text/plain", "B").is_none());
        let reversed = Range { start: 3, end: 2 };
        assert!(body(b"0123", &[reversed], "text/plain", "B").is_none());
    }

    #[test]
    fn body_size_bounded_by_headers() {
        let bytes = vec![b'x'; 1000];
        let parts: Vec<Range<u64>> = (0..16).map(|index| index * 50..index * 50 + 10).collect();
        let boundary = boundary("\"0123456789abcdef\"");
        let body = body(&bytes, &parts, "text/css; charset=utf-8", &boundary).unwrap();
        assert!(body.len() <= bytes.len() + 16 * 160);
    }
}
