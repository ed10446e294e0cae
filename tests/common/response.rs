//! A small HTTP/1.1 response parser for the tests, written apart from the server's parser so
//! that a shared mistake cannot hide itself. It reads pipelined responses one after another from
//! the same buffer and frames each body by the rules of RFC 9112 §6.3.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::time::Instant;

/// Maximum bytes of one response that the reader buffers, so that a server stuck in a loop
/// fails the test instead of filling memory. The largest body a test requests is 10 MiB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// One parsed response. Header names keep the server's spelling; look them up with
/// [`Response::header`], which ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The version from the status line, such as `HTTP/1.1`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Header fields in the order received, values decoded as UTF-8 with replacement.
    pub headers: Vec<(String, String)>,
    /// The body after removing any chunked transfer coding.
    pub body: Vec<u8>,
}

impl Response {
    /// Returns the value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the values of every header named `name`, in the order received.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Returns whether the comma-separated header `name` lists `token` (ASCII case-insensitive),
    /// as in `Connection: close` or `Vary: Accept-Encoding`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .iter()
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }

    /// Returns the body decoded as UTF-8 with replacement, for messages and text checks.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses the body as a flat JSON object whose values are strings, the shape that the test
    /// app's `/headers` endpoint returns.
    ///
    /// # Panics
    /// Panics with the body in the message if it is not such an object.
    pub fn json_object(&self) -> BTreeMap<String, String> {
        match parse_flat_json_object(&self.body) {
            Some(object) => object,
            None => panic!(
                "body is not a flat JSON object of strings: {}",
                self.body_text()
            ),
        }
    }
}

/// Why no complete response could be read.
#[derive(Debug)]
pub enum ResponseError {
    /// The bytes do not form an HTTP/1.1 response; the text names the part that failed.
    Malformed(&'static str),
    /// The peer closed the connection before a complete response arrived.
    Closed { received: Vec<u8> },
    /// No complete response arrived before the deadline.
    TimedOut { received: Vec<u8> },
    /// The response exceeded [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// Reading from the socket failed.
    Io(io::Error),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(part) => write!(formatter, "malformed response: {part}"),
            ResponseError::Closed { received } => write!(
                formatter,
                "connection closed after {} bytes, before a complete response: {:?}",
                received.len(),
                String::from_utf8_lossy(&received[..received.len().min(512)])
            ),
            ResponseError::TimedOut { received } => write!(
                formatter,
                "timed out after {} bytes, before a complete response: {:?}",
                received.len(),
                String::from_utf8_lossy(&received[..received.len().min(512)])
            ),
            ResponseError::TooLarge => {
                write!(formatter, "response larger than {MAX_RESPONSE_BYTES} bytes")
            }
            ResponseError::Io(error) => write!(formatter, "read failed: {error}"),
        }
    }
}

/// Result of parsing the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole response and the number of bytes it took from the buffer.
    Complete(Response, usize),
    /// More bytes are needed.
    Incomplete,
}

/// Parses one response from the start of `buffer`.
///
/// Set `head_request` when the response is to a HEAD request, which makes it bodiless whatever
/// its headers state. Set `at_eof` when no more bytes will arrive, which completes a body that is
/// delimited by the end of the connection.
///
/// # Errors
/// Returns [`ResponseError::Malformed`] if the status line, a header line, the Content-Length or
/// the chunked coding is invalid.
pub fn parse_response(
    buffer: &[u8],
    head_request: bool,
    at_eof: bool,
) -> Result<Parsed, ResponseError> {
    let Some(head_end) = find(buffer, b"\r\n\r\n") else {
        return Ok(Parsed::Incomplete);
    };
    let head = &buffer[..head_end];
    let body_start = head_end + 4;

    if !crlf_only(head) {
        return Err(ResponseError::Malformed(
            "bare CR or LF in the response head",
        ));
    }
    let mut lines = split_crlf(head).into_iter();
    let Some(status_line) = lines.next() else {
        return Err(ResponseError::Malformed("missing status line"));
    };
    let (version, status, reason) = parse_status_line(status_line)?;

    let mut headers = Vec::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            return Err(ResponseError::Malformed("header line without a colon"));
        };
        let name = String::from_utf8_lossy(&line[..colon]).into_owned();
        if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_whitespace()) {
            return Err(ResponseError::Malformed(
                "empty header name or whitespace in it",
            ));
        }
        let value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_owned();
        headers.push((name, value));
    }

    let mut response = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    let rest = &buffer[body_start..];

    // RFC 9112 §6.3 rules 1 and 2: HEAD responses, 1xx, 204 and 304 have no body.
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Parsed::Complete(response, body_start));
    }

    // RFC 9112 §6.3 rule 4: chunked as the final transfer coding.
    if response.header_has_token("transfer-encoding", "chunked") {
        return match decode_chunked(rest)? {
            Some((body, used)) => {
                response.body = body;
                Ok(Parsed::Complete(response, body_start + used))
            }
            None => Ok(Parsed::Incomplete),
        };
    }

    // RFC 9112 §6.3 rule 6: Content-Length.
    let lengths = response.headers_named("content-length");
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|length| length != first) {
            return Err(ResponseError::Malformed("differing Content-Length values"));
        }
        let Ok(length) = first.parse::<usize>() else {
            return Err(ResponseError::Malformed("invalid Content-Length"));
        };
        if rest.len() < length {
            return Ok(Parsed::Incomplete);
        }
        response.body = rest[..length].to_vec();
        return Ok(Parsed::Complete(response, body_start + length));
    }

    // RFC 9112 §6.3 rule 8: otherwise the body runs until the server closes the connection.
    if !at_eof {
        return Ok(Parsed::Incomplete);
    }
    response.body = rest.to_vec();
    Ok(Parsed::Complete(response, buffer.len()))
}

fn parse_status_line(line: &[u8]) -> Result<(String, u16, String), ResponseError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| ResponseError::Malformed("status line is not UTF-8"))?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ResponseError::Malformed(
            "status line without HTTP/1.x version",
        ));
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 {
        return Err(ResponseError::Malformed("status code is not three digits"));
    }
    let Ok(status) = code.parse::<u16>() else {
        return Err(ResponseError::Malformed("status code is not three digits"));
    };
    let reason = parts.next().unwrap_or_default().to_owned();
    Ok((version.to_owned(), status, reason))
}

/// Decodes a chunked body (RFC 9112 §7.1) at the start of `input`. Returns the body and the
/// bytes used, including the trailer section, or `None` if the input ends early.
fn decode_chunked(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ResponseError> {
    let mut body = Vec::new();
    let mut position = 0;
    loop {
        let Some(line_length) = find(&input[position..], b"\r\n") else {
            return Ok(None);
        };
        let line = &input[position..position + line_length];
        position += line_length + 2;

        // Chunk extensions after `;` carry nothing the tests check.
        let size_text = line.split(|&byte| byte == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_text)
            .map_err(|_| ResponseError::Malformed("chunk size is not ASCII"))?
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ResponseError::Malformed("chunk size is not hexadecimal"))?;

        if size == 0 {
            // Trailer fields end with an empty line.
            loop {
                let Some(trailer_length) = find(&input[position..], b"\r\n") else {
                    return Ok(None);
                };
                position += trailer_length + 2;
                if trailer_length == 0 {
                    return Ok(Some((body, position)));
                }
            }
        }

        let Some(chunk_end) = position.checked_add(size) else {
            return Err(ResponseError::Malformed("chunk size overflows"));
        };
        if input.len() < chunk_end + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&input[position..chunk_end]);
        if &input[chunk_end..chunk_end + 2] != b"\r\n" {
            return Err(ResponseError::Malformed("chunk data not followed by CRLF"));
        }
        position = chunk_end + 2;
    }
}

/// Reads from `stream` into `buffer` until one complete response is at its start, removes that
/// response's bytes from `buffer` and returns it. Bytes after it stay in `buffer` for the next
/// call, which is how pipelined responses are read in order.
///
/// The stream must have a read timeout set; `deadline` bounds the whole call.
///
/// # Errors
/// Returns [`ResponseError`] if the peer closes early, the deadline passes, the response is
/// malformed or larger than [`MAX_RESPONSE_BYTES`], or a read fails. A TLS stream that ends
/// without close_notify counts as closed.
pub fn read_response(
    stream: &mut impl Read,
    buffer: &mut Vec<u8>,
    head_request: bool,
    deadline: Instant,
) -> Result<Response, ResponseError> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Parsed::Complete(response, used) = parse_response(buffer, head_request, false)? {
            buffer.drain(..used);
            return Ok(response);
        }
        if buffer.len() > MAX_RESPONSE_BYTES {
            return Err(ResponseError::TooLarge);
        }
        if Instant::now() >= deadline {
            return Err(ResponseError::TimedOut {
                received: std::mem::take(buffer),
            });
        }

        match stream.read(&mut chunk) {
            Ok(0) => return finish_at_eof(buffer, head_request),
            Ok(count) => buffer.extend_from_slice(&chunk[..count]),
            Err(error) if is_timeout(&error) => {
                return Err(ResponseError::TimedOut {
                    received: std::mem::take(buffer),
                });
            }
            Err(error) if is_closed(&error) => return finish_at_eof(buffer, head_request),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(ResponseError::Io(error)),
        }
    }
}

fn finish_at_eof(buffer: &mut Vec<u8>, head_request: bool) -> Result<Response, ResponseError> {
    match parse_response(buffer, head_request, true)? {
        Parsed::Complete(response, used) => {
            buffer.drain(..used);
            Ok(response)
        }
        Parsed::Incomplete => Err(ResponseError::Closed {
            received: std::mem::take(buffer),
        }),
    }
}

/// Returns whether `error` is what a read with a timeout returns when the timeout passes.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Returns whether `error` means that the peer closed the connection: a reset, or a TLS stream
/// that ended without close_notify.
pub fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Returns whether every CR and LF in `head` belongs to a CRLF pair.
fn crlf_only(head: &[u8]) -> bool {
    let mut index = 0;
    while let Some(&byte) = head.get(index) {
        match byte {
            b'\r' if head.get(index + 1) == Some(&b'\n') => index += 2,
            b'\r' | b'\n' => return false,
            _ => index += 1,
        }
    }
    true
}

fn split_crlf(head: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = head;
    while let Some(end) = find(rest, b"\r\n") {
        lines.push(&rest[..end]);
        rest = &rest[end + 2..];
    }
    lines.push(rest);
    lines
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Parses `{"name": "value", ...}` with string values only; returns `None` on anything else.
fn parse_flat_json_object(input: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(input).ok()?;
    let mut chars = text.trim().chars().peekable();
    let mut object = BTreeMap::new();

    if chars.next()? != '{' {
        return None;
    }
    skip_whitespace(&mut chars);
    if chars.peek() == Some(&'}') {
        chars.next();
        return chars.next().is_none().then_some(object);
    }
    loop {
        skip_whitespace(&mut chars);
        let key = parse_json_string(&mut chars)?;
        skip_whitespace(&mut chars);
        if chars.next()? != ':' {
            return None;
        }
        skip_whitespace(&mut chars);
        let value = parse_json_string(&mut chars)?;
        object.insert(key, value);
        skip_whitespace(&mut chars);
        match chars.next()? {
            ',' => continue,
            '}' => return chars.next().is_none().then_some(object),
            _ => return None,
        }
    }
}

fn skip_whitespace(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|next| next.is_whitespace()) {
        chars.next();
    }
}

fn parse_json_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    if chars.next()? != '"' {
        return None;
    }
    let mut text = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(text),
            '\\' => match chars.next()? {
                '"' => text.push('"'),
                '\\' => text.push('\\'),
                '/' => text.push('/'),
                'b' => text.push('\u{8}'),
                'f' => text.push('\u{c}'),
                'n' => text.push('\n'),
                'r' => text.push('\r'),
                't' => text.push('\t'),
                'u' => {
                    let digits: String = (0..4).filter_map(|_| chars.next()).collect();
                    let code = u32::from_str_radix(&digits, 16).ok()?;
                    // Surrogate pairs never occur in the ASCII header values the app returns.
                    text.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                _ => return None,
            },
            other => text.push(other),
        }
    }
}
