//! Size limits applied while reading a request from a client. Every bound the parser and the
//! body decoders enforce on peer input is a field here, so no buffer grows without one.

/// Bounds on what a client may send in one request.
///
/// Build it with struct update syntax to change a few fields:
/// `Limits { max_body_bytes: 1 << 20, ..Limits::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of a request head in bytes: the request line, the header lines and the final
    /// CRLF, not counting the empty lines allowed before the request line. Default 16 KiB, which
    /// fits browser requests with large cookies. A head that grows past it is rejected with 431.
    pub max_head_bytes: usize,
    /// Maximum number of header lines in one request. Default 100. Each header costs an
    /// allocation and a linear lookup, so a bound keeps one request cheap. Exceeding it gives 431.
    pub max_headers: usize,
    /// Maximum length of the request target in bytes. Default 8 KiB, which matches common
    /// servers and leaves room for long query strings. A longer target is rejected with 414.
    pub max_uri_bytes: usize,
    /// Maximum size of a request body in bytes, whether framed by Content-Length or chunked.
    /// Default 10 MiB. The proxy buffers whole bodies in memory, so this bounds memory per
    /// connection. A larger body is rejected with 413.
    pub max_body_bytes: u64,
    /// Maximum length in bytes of one chunk-size line (the hex size and its chunk extensions,
    /// without the CRLF). Default 1 KiB. Extensions carry no meaning for this server and are
    /// discarded, so a small bound stops a client from streaming bytes that never reach the body.
    pub max_chunk_extension_bytes: usize,
    /// Maximum total size in bytes of the trailer section of a chunked body, including its line
    /// ends and the final empty line. Default 8 KiB. Trailers are parsed and discarded. A larger
    /// section is rejected with 431.
    pub max_trailer_bytes: usize,
    /// Maximum number of empty lines (CRLF) accepted before the request line. Default 4.
    /// RFC 9112 §2.2 recommends that servers ignore at least one. More than a few does not come
    /// from a real client, so the request is rejected with 400.
    pub max_leading_empty_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            max_chunk_extension_bytes: 1024,
            max_trailer_bytes: 8 * 1024,
            max_leading_empty_lines: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_documentation() {
        let limits = Limits::default();
        assert_eq!(limits.max_head_bytes, 16_384);
        assert_eq!(limits.max_headers, 100);
        assert_eq!(limits.max_uri_bytes, 8_192);
        assert_eq!(limits.max_body_bytes, 10_485_760);
        assert_eq!(limits.max_chunk_extension_bytes, 1_024);
        assert_eq!(limits.max_trailer_bytes, 8_192);
        assert_eq!(limits.max_leading_empty_lines, 4);
    }

    #[test]
    fn uri_limit_fits_in_head_limit() {
        let limits = Limits::default();
        assert!(limits.max_uri_bytes < limits.max_head_bytes);
    }
}
