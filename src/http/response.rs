//! Writing response heads, error responses and the Date header value into caller-owned buffers.
//! Nothing here decides which status to send or writes to a socket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::request::Version;

/// Returns the reason phrase of `status` as named in RFC 9110 §15, or an empty string for a
/// code it does not name (RFC 9112 §4 allows an empty reason phrase).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Returns the Connection field value a response to a request of `version` carries, or `None`
/// when it needs none. A closing response says `close`. An HTTP/1.0 client keeps the connection
/// only when the response says `keep-alive`, while HTTP/1.1 persists by default (RFC 9112 §9.3).
pub fn connection_field(keep_alive: bool, version: Version) -> Option<&'static [u8]> {
    match (keep_alive, version) {
        (false, _) => Some(b"close"),
        (true, Version::Http10) => Some(b"keep-alive"),
        (true, Version::Http11) => None,
    }
}

/// Returns whether a response with `status` never has a body (RFC 9110 §6.4.1).
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Writes `HTTP/1.1 {status} {reason}`, the given header lines and the empty line that ends the
/// head. The caller supplies every header, including Date, Server and the framing headers.
///
/// # Panics
///
/// In debug builds, if `status` is not three digits, a name is not a token, or a value contains
/// CR, LF or NUL. Release builds write them as given, so callers must pass only checked values.
pub fn write_head(out: &mut Vec<u8>, status: u16, headers: &[(&str, &[u8])]) {
    write_status_line(out, status, reason_phrase(status).as_bytes());
    for (name, value) in headers {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `HTTP/1.1 {status} {reason}\r\n`.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    debug_assert!(
        (100..=999).contains(&status),
        "status {status} is not three digits"
    );
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// Writes one `name: value\r\n` header line.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    debug_assert!(
        !name.is_empty() && name.bytes().all(super::parse::is_token_byte),
        "header name {name:?} is not a token"
    );
    debug_assert!(
        !value.iter().any(|&byte| matches!(byte, b'\r' | b'\n' | 0)),
        "value of header {name} contains CR, LF or NUL"
    );
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `value` without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            // `rest % 10` is below 10, so the cast cannot truncate.
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// The value of the Date header (IMF-fixdate, RFC 9110 §5.6.7), formatted at most once per
/// second.
///
/// Each worker thread keeps its own, because reading it takes `&mut self`.
#[derive(Debug, Clone)]
pub struct DateCache {
    /// The second since the Unix epoch that `value` shows.
    second: Option<u64>,
    value: [u8; DATE_LEN],
}

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_LEN: usize = 29;

/// The last second httpdate can format (9999-12-31T23:59:59Z). Later clocks are clamped to it
/// because httpdate 1.0 panics past year 9999.
const MAX_DATE_SECOND: u64 = 253_402_300_799;

impl DateCache {
    /// Creates an empty cache. The first call to [`header_value`](Self::header_value) fills it.
    pub fn new() -> Self {
        Self {
            second: None,
            value: *b"Thu, 01 Jan 1970 00:00:00 GMT",
        }
    }

    /// Returns the 29-byte IMF-fixdate for `now`, formatting it only when the second changed.
    /// A clock before 1970 is shown as the epoch, and one after 9999 as the last second of 9999.
    pub fn header_value(&mut self, now: SystemTime) -> &[u8] {
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since_epoch| since_epoch.as_secs())
            .min(MAX_DATE_SECOND);
        if self.second != Some(second) {
            let formatted = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            if let Ok(value) = <[u8; DATE_LEN]>::try_from(formatted.as_bytes()) {
                self.value = value;
                self.second = Some(second);
            }
        }
        &self.value
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Value of the `Server` header of every response. A proxied response carries it in place of
/// the upstream's own, as nginx does by default, so the application server's name and version
/// stay private.
pub const SERVER_NAME: &[u8] = b"ringfront";

/// Writes a complete error response with a short HTML body naming the status, such as
/// `400 Bad Request`. Adds `Connection: close` when `close` is set. `date` is the Date value,
/// usually from [`DateCache::header_value`].
///
/// Returns the offset in `out` where the body starts, so a response to a HEAD request can be cut
/// there. Statuses that never have a body (1xx, 204, 304) get neither a body nor
/// Content-Length, and the offset is then the end of `out`.
pub fn error_response(status: u16, close: bool, date: &[u8], out: &mut Vec<u8>) -> usize {
    let reason = reason_phrase(status);
    if status_has_no_body(status) {
        let mut headers: Vec<(&str, &[u8])> = vec![("Date", date), ("Server", SERVER_NAME)];
        if close {
            headers.push(("Connection", b"close"));
        }
        write_head(out, status, &headers);
        return out.len();
    }

    let mut body = Vec::with_capacity(128);
    body.extend_from_slice(b"<!DOCTYPE html>\n<html><head><title>");
    push_status_and_reason(&mut body, status, reason);
    body.extend_from_slice(b"</title></head><body><h1>");
    push_status_and_reason(&mut body, status, reason);
    body.extend_from_slice(b"</h1></body></html>\n");
    error_response_with_body(status, close, date, &body, out)
}

/// Writes a complete error response as [`error_response`] does, with `body`, an HTML page such
/// as one from `[error_pages]`, in place of the built-in one. Returns the offset in `out` where
/// the body starts.
pub fn error_response_with_body(status: u16, close: bool, date: &[u8], body: &[u8], out: &mut Vec<u8>) -> usize {
    let mut length = Vec::with_capacity(8);
    push_decimal(&mut length, body.len() as u64);
    let mut headers: Vec<(&str, &[u8])> = vec![("Date", date), ("Server", SERVER_NAME)];
    if close {
        headers.push(("Connection", b"close"));
    }
    headers.push(("Content-Type", b"text/html; charset=utf-8"));
    headers.push(("Content-Length", &length));
    write_head(out, status, &headers);
    let body_start = out.len();
    out.extend_from_slice(body);
    body_start
}

fn push_status_and_reason(out: &mut Vec<u8>, status: u16, reason: &str) {
    push_decimal(out, u64::from(status));
    if !reason.is_empty() {
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_field_table() {
        // (keep_alive, version, expected field value)
        let cases: [(bool, Version, Option<&[u8]>); 4] = [
            (false, Version::Http11, Some(b"close")),
            (false, Version::Http10, Some(b"close")),
            (true, Version::Http10, Some(b"keep-alive")),
            (true, Version::Http11, None),
        ];
        for (keep_alive, version, expected) in cases {
            assert_eq!(connection_field(keep_alive, version), expected, "{keep_alive} {version:?}");
        }
    }

    #[test]
    fn reason_phrase_cases() {
        let cases = [
            (100, "Continue"),
            (200, "OK"),
            (204, "No Content"),
            (301, "Moved Permanently"),
            (304, "Not Modified"),
            (400, "Bad Request"),
            (404, "Not Found"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (417, "Expectation Failed"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (505, "HTTP Version Not Supported"),
            (599, ""),
        ];
        for (status, reason) in cases {
            assert_eq!(reason_phrase(status), reason, "{status}");
        }
    }

    #[test]
    fn every_request_error_status_has_reason() {
        for status in [400, 413, 414, 417, 431, 501, 502, 504, 505] {
            assert!(!reason_phrase(status).is_empty(), "{status}");
        }
    }

    #[test]
    fn write_head_layout() {
        let mut out = Vec::new();
        write_head(&mut out, 200, &[("Content-Length", b"5"), ("X-A", b"")]);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: \r\n\r\n"
        );
    }

    #[test]
    fn write_head_appends() {
        let mut out = b"previous".to_vec();
        write_head(&mut out, 404, &[]);
        assert_eq!(out, b"previousHTTP/1.1 404 Not Found\r\n\r\n");
    }

    #[test]
    fn write_head_unknown_status() {
        let mut out = Vec::new();
        write_head(&mut out, 599, &[]);
        assert_eq!(out, b"HTTP/1.1 599 \r\n\r\n");
    }

    #[test]
    fn push_decimal_cases() {
        for value in [0u64, 7, 10, 99, 100, 65_535, 10_485_760, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes(), "{value}");
        }
    }

    #[test]
    fn date_known_instant() {
        let mut cache = DateCache::new();
        let instant = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            cache.header_value(instant),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn date_is_29_bytes() {
        let mut cache = DateCache::new();
        assert_eq!(cache.header_value(SystemTime::now()).len(), 29);
    }

    #[test]
    fn date_changes_with_second() {
        let mut cache = DateCache::new();
        let first = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let same_second = first + Duration::from_millis(999);
        let next_second = first + Duration::from_secs(1);
        let formatted = cache.header_value(first).to_vec();
        assert_eq!(cache.header_value(same_second), formatted.as_slice());
        assert_ne!(cache.header_value(next_second), formatted.as_slice());
    }

    #[test]
    fn date_follows_clock_backwards() {
        let mut cache = DateCache::new();
        let later = UNIX_EPOCH + Duration::from_secs(1_700_000_010);
        let earlier = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        cache.header_value(later);
        assert_eq!(
            cache.header_value(earlier),
            b"Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn date_before_epoch_clamped() {
        let mut cache = DateCache::new();
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(cache.header_value(before), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn date_after_year_9999_clamped() {
        let mut cache = DateCache::new();
        let far = UNIX_EPOCH + Duration::from_secs(MAX_DATE_SECOND + 1_000_000);
        assert_eq!(cache.header_value(far), b"Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn error_response_with_page_body() {
        let mut out = Vec::new();
        let page = b"<p>try again later</p>\n";
        let body_start = error_response_with_body(503, true, b"date", page, &mut out);
        let (head, body) = out.split_at(body_start);
        let head = String::from_utf8_lossy(head);
        assert_eq!(body, page);
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("\r\nServer: ringfront\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", page.len())), "{head}");
    }

    #[test]
    fn error_response_layout() {
        let mut out = Vec::new();
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        let body_start = error_response(400, true, date, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        let (head, body) = text.split_at(body_start);
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nServer: ringfront\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(
            head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        assert!(body.contains("<h1>400 Bad Request</h1>"), "{body}");
        assert!(body.contains("<title>400 Bad Request</title>"), "{body}");
    }

    #[test]
    fn error_response_keep_alive() {
        let mut out = Vec::new();
        error_response(404, false, b"date", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Connection:"), "{text}");
    }

    #[test]
    fn error_response_offset_after_existing_bytes() {
        let mut out = b"earlier".to_vec();
        let body_start = error_response(413, true, b"date", &mut out);
        assert!(
            out.get(body_start..)
                .unwrap()
                .starts_with(b"<!DOCTYPE html>")
        );
        assert!(out.starts_with(b"earlierHTTP/1.1 413 Content Too Large\r\n"));
    }

    #[test]
    fn error_response_without_body_statuses() {
        for status in [100, 204, 304] {
            let mut out = Vec::new();
            let body_start = error_response(status, false, b"date", &mut out);
            let text = String::from_utf8(out.clone()).unwrap();
            assert_eq!(body_start, out.len(), "{status}");
            assert!(!text.contains("Content-Length"), "{status}: {text}");
            assert!(text.ends_with("\r\n\r\n"), "{status}: {text}");
        }
    }

    #[test]
    fn no_body_statuses() {
        let cases = [
            (100, true),
            (101, true),
            (199, true),
            (200, false),
            (204, true),
            (304, true),
            (404, false),
        ];
        for (status, expected) in cases {
            assert_eq!(status_has_no_body(status), expected, "{status}");
        }
    }
}
