//! Every reason this server rejects a request from a client, and the status code of the
//! response. The parser and the body decoders return these. The connection layer logs them at
//! debug, writes the error response and closes the connection.

use std::fmt;

/// A request that this server rejects. After any of these the connection is closed, because the
/// end of the rejected message in the byte stream is not known reliably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The head did not end within `max_head_bytes`.
    HeadTooLarge { max: usize },
    /// The request target is longer than `max_uri_bytes`.
    UriTooLong { max: usize },
    /// The head has more than `max_headers` header lines.
    TooManyHeaders { max: usize },
    /// More than `max_leading_empty_lines` empty lines came before the request line.
    TooManyEmptyLines { max: usize },
    /// The request line is not `method SP request-target SP HTTP-version` (RFC 9112 §3).
    MalformedRequestLine,
    /// The method is not a token (RFC 9110 §9.1).
    InvalidMethod,
    /// The request target is not in origin form, asterisk form with OPTIONS, or absolute form
    /// with an `http` or `https` scheme (RFC 9112 §3.2).
    InvalidTarget,
    /// A CR not followed by LF (RFC 9112 §2.2).
    BareCr,
    /// An LF not preceded by CR. This server accepts only CRLF line ends.
    BareLf,
    /// A NUL byte inside the head.
    NulByte,
    /// A header name is empty or contains a byte outside the token set (RFC 9110 §5.1).
    InvalidHeaderName,
    /// A header value contains a control character (RFC 9110 §5.5).
    InvalidHeaderValue,
    /// Whitespace between a header name and the colon (RFC 9112 §5.1).
    WhitespaceBeforeColon,
    /// A header line starts with whitespace: obsolete line folding (RFC 9112 §5.2) or whitespace
    /// right after the request line (RFC 9112 §2.2).
    ObsoleteLineFolding,
    /// The version is well formed but neither HTTP/1.0 nor HTTP/1.1.
    UnsupportedVersion,
    /// An HTTP/1.1 request without a Host header (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host header (RFC 9112 §3.2).
    DuplicateHost,
    /// The Host header or the authority of an absolute-form target is not `host[:port]`.
    InvalidHost,
    /// Both Content-Length and Transfer-Encoding were sent (RFC 9112 §6.1).
    ContentLengthWithTransferEncoding,
    /// Content-Length values that differ from each other (RFC 9112 §6.3).
    DifferingContentLengths,
    /// A Content-Length value that is empty or contains a byte other than a decimal digit.
    InvalidContentLength,
    /// A Content-Length value with a `+` or `-` sign.
    SignedContentLength,
    /// A Content-Length value larger than `u64::MAX`.
    ContentLengthOverflow,
    /// The declared Content-Length exceeds `max_body_bytes`. It is reported before any body byte
    /// is read, so the server can send 413 instead of 100 Continue.
    ContentLengthTooLarge { length: u64, max: u64 },
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1).
    TransferEncodingWithHttp10,
    /// Transfer-Encoding whose final coding is not `chunked` (RFC 9112 §6.3).
    ChunkedNotFinal,
    /// `chunked` listed more than once (RFC 9112 §6.1).
    ChunkedTwice,
    /// A Transfer-Encoding value that is empty or not a list of tokens.
    InvalidTransferEncoding,
    /// A transfer coding other than `chunked`, which this server does not decode (RFC 9112 §6.1).
    UnsupportedTransferCoding,
    /// An Expect header with an expectation other than `100-continue` (RFC 9110 §10.1.1).
    UnsupportedExpectation,
    /// A chunk-size line without hex digits, or with a byte that is not a digit, an extension or
    /// the CRLF (RFC 9112 §7.1).
    InvalidChunkSize,
    /// A chunk size larger than `u64::MAX`.
    ChunkSizeOverflow,
    /// Chunk data not followed by CRLF (RFC 9112 §7.1).
    ChunkNotTerminated,
    /// Chunk extensions that do not match the `chunk-ext` grammar of RFC 9112 §7.1.1, such as
    /// an empty name, a space inside a token, a control byte or an unterminated quoted string.
    InvalidChunkExtension,
    /// A chunk-size line longer than `max_chunk_extension_bytes`.
    ChunkExtensionTooLong { max: usize },
    /// A trailer section larger than `max_trailer_bytes`.
    TrailersTooLarge { max: usize },
    /// The body grew past `max_body_bytes`.
    BodyTooLarge { max: u64 },
    /// The connection ended inside a request head or body.
    UnexpectedEof,
}

impl RequestError {
    /// Returns the status code of the error response.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::TrailersTooLarge { .. } => 431,
            Self::UriTooLong { .. } => 414,
            Self::ContentLengthTooLarge { .. } | Self::BodyTooLarge { .. } => 413,
            Self::UnsupportedVersion => 505,
            Self::UnsupportedTransferCoding => 501,
            Self::UnsupportedExpectation => 417,
            Self::TooManyEmptyLines { .. }
            | Self::MalformedRequestLine
            | Self::InvalidMethod
            | Self::InvalidTarget
            | Self::BareCr
            | Self::BareLf
            | Self::NulByte
            | Self::InvalidHeaderName
            | Self::InvalidHeaderValue
            | Self::WhitespaceBeforeColon
            | Self::ObsoleteLineFolding
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::InvalidHost
            | Self::ContentLengthWithTransferEncoding
            | Self::DifferingContentLengths
            | Self::InvalidContentLength
            | Self::SignedContentLength
            | Self::ContentLengthOverflow
            | Self::TransferEncodingWithHttp10
            | Self::ChunkedNotFinal
            | Self::ChunkedTwice
            | Self::InvalidTransferEncoding
            | Self::InvalidChunkSize
            | Self::ChunkSizeOverflow
            | Self::ChunkNotTerminated
            | Self::InvalidChunkExtension
            | Self::ChunkExtensionTooLong { .. }
            | Self::UnexpectedEof => 400,
        }
    }

    /// Returns a short phrase naming the fault, for logs and error pages.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HeadTooLarge { .. } => "request head too large",
            Self::UriTooLong { .. } => "request target too long",
            Self::TooManyHeaders { .. } => "too many header fields",
            Self::TooManyEmptyLines { .. } => "too many empty lines before the request line",
            Self::MalformedRequestLine => "malformed request line",
            Self::InvalidMethod => "invalid method",
            Self::InvalidTarget => "invalid request target",
            Self::BareCr => "CR not followed by LF",
            Self::BareLf => "LF not preceded by CR",
            Self::NulByte => "NUL byte in request head",
            Self::InvalidHeaderName => "invalid header name",
            Self::InvalidHeaderValue => "invalid header value",
            Self::WhitespaceBeforeColon => "whitespace between header name and colon",
            Self::ObsoleteLineFolding => "header line starts with whitespace",
            Self::UnsupportedVersion => "HTTP version not supported",
            Self::MissingHost => "missing Host header",
            Self::DuplicateHost => "more than one Host header",
            Self::InvalidHost => "invalid Host header",
            Self::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding present"
            }
            Self::DifferingContentLengths => "differing Content-Length values",
            Self::InvalidContentLength => "invalid Content-Length",
            Self::SignedContentLength => "signed Content-Length",
            Self::ContentLengthOverflow => "Content-Length too large to represent",
            Self::ContentLengthTooLarge { .. } => "Content-Length exceeds the body limit",
            Self::TransferEncodingWithHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Self::ChunkedNotFinal => "chunked is not the final transfer coding",
            Self::ChunkedTwice => "chunked applied more than once",
            Self::InvalidTransferEncoding => "invalid Transfer-Encoding",
            Self::UnsupportedTransferCoding => "transfer coding not supported",
            Self::UnsupportedExpectation => "expectation not supported",
            Self::InvalidChunkSize => "invalid chunk size",
            Self::ChunkSizeOverflow => "chunk size too large to represent",
            Self::ChunkNotTerminated => "chunk data not followed by CRLF",
            Self::InvalidChunkExtension => "invalid chunk extension",
            Self::ChunkExtensionTooLong { .. } => "chunk extension too long",
            Self::TrailersTooLarge { .. } => "trailer section too large",
            Self::BodyTooLarge { .. } => "request body too large",
            Self::UnexpectedEof => "connection closed inside a request",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        match self {
            Self::HeadTooLarge { max }
            | Self::UriTooLong { max }
            | Self::TooManyHeaders { max }
            | Self::TooManyEmptyLines { max }
            | Self::ChunkExtensionTooLong { max }
            | Self::TrailersTooLarge { max } => write!(f, " (limit {max})"),
            Self::ContentLengthTooLarge { length, max } => {
                write!(f, " ({length} bytes, limit {max})")
            }
            Self::BodyTooLarge { max } => write!(f, " (limit {max} bytes)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_by_variant() {
        let cases: &[(RequestError, u16)] = &[
            (RequestError::HeadTooLarge { max: 1 }, 431),
            (RequestError::TooManyHeaders { max: 1 }, 431),
            (RequestError::TrailersTooLarge { max: 1 }, 431),
            (RequestError::UriTooLong { max: 1 }, 414),
            (
                RequestError::ContentLengthTooLarge { length: 2, max: 1 },
                413,
            ),
            (RequestError::BodyTooLarge { max: 1 }, 413),
            (RequestError::UnsupportedVersion, 505),
            (RequestError::UnsupportedTransferCoding, 501),
            (RequestError::UnsupportedExpectation, 417),
            (RequestError::BareLf, 400),
            (RequestError::MissingHost, 400),
            (RequestError::ContentLengthWithTransferEncoding, 400),
            (RequestError::UnexpectedEof, 400),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), *status, "{error:?}");
        }
    }

    #[test]
    fn display_includes_limit() {
        let error = RequestError::HeadTooLarge { max: 16 };
        assert_eq!(error.to_string(), "request head too large (limit 16)");
    }

    #[test]
    fn display_without_limit_is_reason() {
        let error = RequestError::BareCr;
        assert_eq!(error.to_string(), error.reason());
    }
}
