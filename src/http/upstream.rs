//! The proxy's sans-I/O parts: the request written to Gunicorn, the decoder of its response and
//! the response head relayed to the client.
//!
//! Requests and responses are buffered whole, so both directions are re-framed with
//! Content-Length and every hop-by-hop header is dropped (RFC 9110 §7.6.1). The upstream is this
//! server's own application, but its responses are still checked, because a malformed one must
//! become a 502 and never reach the client as ambiguous framing.

use std::fmt;
use std::net::IpAddr;

use super::chunked::{ChunkedDecoder, copy_body_bytes};
use super::error::RequestError;
use super::limits::Limits;
use super::parse::{TransferEncoding, list_elements, merge_content_length};
use super::request::{Header, RequestHead};
use super::response::{
    SERVER_NAME, push_decimal, reason_phrase, status_has_no_body, write_header, write_status_line,
};

/// The client connection details the proxy sends to the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// Address of the client's TCP connection. IPv4-mapped IPv6 addresses are written as IPv4.
    pub client_ip: IpAddr,
    /// Scheme the client used: `"http"` or `"https"`. Sent as X-Forwarded-Proto.
    pub proto: &'static str,
    /// Host the client addressed, sent as X-Forwarded-Host, and as Host when the request has
    /// none (HTTP/1.0).
    pub host: String,
    /// X-Forwarded-For received from a trusted proxy in front of this server. When set, the
    /// header sent is this value, `", "` and the client address. Leave it `None` for untrusted
    /// clients, whose X-Forwarded-For is dropped.
    pub prior_forwarded_for: Option<String>,
    /// Whether to ask the upstream to keep the connection open after the response.
    pub keep_alive: bool,
}

/// Writes the request sent to the upstream: the client's method and target, its end-to-end
/// headers, then Host, Content-Length, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and
/// Connection set by this server.
///
/// Dropped from the client's headers: Connection and every header it names, Keep-Alive, TE,
/// Trailer, Transfer-Encoding, Upgrade, every `Proxy-*` header, Content-Length, Expect, Host and
/// every Forwarded, X-Forwarded-For, -Proto, -Host, -Port, -Ssl, -Protocol and -Scheme,
/// X-Url-Scheme, Front-End-Https, and every name containing `_`. Names are compared with `_` equal
/// to `-`, so an underscore spelling of any of them is dropped too.
/// Content-Length is sent when `body_len > 0` or the method is POST, PUT or PATCH, because some
/// applications expect it on those methods even for an empty body.
pub fn write_upstream_request(
    head: &RequestHead,
    body_len: usize,
    forwarded: &Forwarded,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let connection_options = connection_options(&head.headers);
    for header in &head.headers {
        if !is_dropped_from_request(&header.name, &connection_options) {
            write_header(out, &header.name, &header.value);
        }
    }

    let host = head.header("host").unwrap_or(forwarded.host.as_bytes());
    write_header(out, "Host", host);
    let method_has_body = matches!(head.method.as_str(), "POST" | "PUT" | "PATCH");
    if body_len > 0 || method_has_body {
        let mut length = Vec::with_capacity(20);
        push_decimal(&mut length, body_len as u64);
        write_header(out, "Content-Length", &length);
    }
    write_header(out, "X-Forwarded-For", &forwarded_for(forwarded));
    write_header(out, "X-Forwarded-Proto", forwarded.proto.as_bytes());
    write_header(out, "X-Forwarded-Host", forwarded.host.as_bytes());
    let connection: &[u8] = if forwarded.keep_alive {
        b"keep-alive"
    } else {
        b"close"
    };
    write_header(out, "Connection", connection);
    out.extend_from_slice(b"\r\n");
}

/// Returns the scheme, `"http"` or `"https"`, that a proxy in front of this server reports in
/// X-Forwarded-Proto. The nearest proxy adds the last element of the last such field, so that
/// element is read. Returns `None` when the field is missing or names another scheme. Call it
/// only for a peer inside `trusted_proxies`, because any client can send the field.
pub fn forwarded_proto(head: &RequestHead) -> Option<&'static str> {
    let field = head.headers.iter().rev().find(|header| header.name.eq_ignore_ascii_case("x-forwarded-proto"))?;
    let scheme = list_elements(&field.value).last()?;
    if scheme.eq_ignore_ascii_case(b"https") {
        Some("https")
    } else if scheme.eq_ignore_ascii_case(b"http") {
        Some("http")
    } else {
        None
    }
}

fn forwarded_for(forwarded: &Forwarded) -> Vec<u8> {
    let client = forwarded.client_ip.to_canonical().to_string();
    match &forwarded.prior_forwarded_for {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client}").into_bytes(),
        _ => client.into_bytes(),
    }
}

/// Returns the header names listed in every Connection header (RFC 9110 §7.6.1).
fn connection_options(headers: &[Header]) -> Vec<&[u8]> {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("connection"))
        .flat_map(|header| list_elements(&header.value))
        .collect()
}

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the framing headers this server rewrites.
fn is_hop_by_hop(name: &str, connection_options: &[&[u8]]) -> bool {
    const HOP_BY_HOP: [&str; 6] = [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP_BY_HOP
        .iter()
        .any(|hop| same_field_name(name.as_bytes(), hop.as_bytes()))
        || name
            .as_bytes()
            .get(.."proxy-".len())
            .is_some_and(|start| same_field_name(start, b"proxy-"))
        || connection_options
            .iter()
            .any(|option| same_field_name(name.as_bytes(), option))
}

fn is_dropped_from_request(name: &str, connection_options: &[&[u8]]) -> bool {
    // Forwarded (RFC 7239) carries the same claims as X-Forwarded-*; a client could forge it just
    // as well, and this server does not write its own, so it is dropped too.
    const REWRITTEN: [&str; 8] = [
        "content-length",
        "expect",
        "forwarded",
        "host",
        "x-forwarded-port",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ];
    // Other fields that frameworks and WSGI servers read as the client's scheme. Gunicorn's
    // default `secure_scheme_headers` (27.0) reads the first two beside X-Forwarded-Proto. A
    // client's value could make the application take a plain request for HTTPS, or make
    // Gunicorn reject the request for contradicting ours, so each is dropped.
    // X-Forwarded-Proto alone carries the scheme.
    const OTHER_SCHEME_FIELDS: [&str; 5] = [
        "x-forwarded-ssl",
        "x-forwarded-protocol",
        "x-forwarded-scheme",
        "x-url-scheme",
        "front-end-https",
    ];
    // A name with `_` reaches a WSGI application under the same environ key as its `-`
    // spelling, so it could shadow any header, ours included. nginx drops such names by default
    // (`underscores_in_headers off`), and so does Gunicorn from version 22.
    name.contains('_')
        || is_hop_by_hop(name, connection_options)
        || REWRITTEN
            .iter()
            .chain(OTHER_SCHEME_FIELDS.iter())
            .any(|rewritten| same_field_name(name.as_bytes(), rewritten.as_bytes()))
}

/// Compares two field names ignoring ASCII case and treating `_` as `-`. WSGI servers map `-`
/// to `_` in the environ key, so `X_Forwarded_For` reaches the application as X-Forwarded-For
/// unless the server drops names with `_`, which Gunicorn does by default only from version 22.
fn same_field_name(name: &[u8], reference: &[u8]) -> bool {
    let fold = |byte: u8| match byte {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
    };
    name.len() == reference.len()
        && name
            .iter()
            .zip(reference)
            .all(|(&left, &right)| fold(left) == fold(right))
}

/// Bounds on a response read from the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Maximum size in bytes of one response head, status line to final CRLF. Default 64 KiB:
    /// applications set more and larger cookies than clients send, but a head past this is a
    /// fault. Exceeding it gives a 502.
    pub max_head_bytes: usize,
    /// Maximum number of header lines in one response head. Default 100. Exceeding it gives a
    /// 502.
    pub max_headers: usize,
    /// Maximum size in bytes of a response body. Default 64 MiB. The proxy buffers the whole
    /// response in memory before relaying it, so this bounds memory per connection. Exceeding it
    /// gives a 502.
    pub max_body_bytes: u64,
    /// Maximum length in bytes of one chunk-size line, extensions included, in a chunked
    /// response. Default 1 KiB, as for requests.
    pub max_chunk_extension_bytes: usize,
    /// Maximum size in bytes of the trailer section of a chunked response. Default 8 KiB, as for
    /// requests. Trailers are discarded.
    pub max_trailer_bytes: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: 64 * 1024 * 1024,
            max_chunk_extension_bytes: 1024,
            max_trailer_bytes: 8 * 1024,
        }
    }
}

impl ResponseLimits {
    /// Converts to the request limits that bound the chunked decoder of a response body.
    fn chunked_limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_chunk_extension_bytes: self.max_chunk_extension_bytes,
            max_trailer_bytes: self.max_trailer_bytes,
            ..Limits::default()
        }
    }
}

/// A fault in the upstream's response. The server sends 502 Bad Gateway to the client and
/// closes the upstream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The response head did not end within `max_head_bytes`.
    HeadTooLarge { max: usize },
    /// The response head has more than `max_headers` header lines.
    TooManyHeaders { max: usize },
    /// The status line is malformed, the version is not HTTP/1.0 or HTTP/1.1, or the status
    /// code is below 100.
    InvalidStatusLine,
    /// A header line is malformed.
    InvalidHeader,
    /// Content-Length and Transfer-Encoding do not give one body length. The cause is named as
    /// for a request.
    InvalidFraming(RequestError),
    /// The chunked body is malformed. The cause is named as for a request.
    InvalidChunkedBody(RequestError),
    /// The body is larger than `max_body_bytes`.
    BodyTooLarge { max: u64 },
    /// The upstream closed the connection before the response was complete.
    Truncated,
}

impl UpstreamError {
    /// Returns the status code the client receives: always 502 Bad Gateway.
    pub fn status(&self) -> u16 {
        502
    }

    /// Returns a short phrase naming the fault, for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HeadTooLarge { .. } => "upstream response head too large",
            Self::TooManyHeaders { .. } => "too many upstream response header fields",
            Self::InvalidStatusLine => "invalid upstream status line",
            Self::InvalidHeader => "invalid upstream response header",
            Self::InvalidFraming(_) => "invalid upstream response framing",
            Self::InvalidChunkedBody(_) => "invalid upstream chunked body",
            Self::BodyTooLarge { .. } => "upstream response body too large",
            Self::Truncated => "upstream closed the connection inside a response",
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        match self {
            Self::HeadTooLarge { max } | Self::TooManyHeaders { max } => {
                write!(f, " (limit {max})")
            }
            Self::BodyTooLarge { max } => write!(f, " (limit {max} bytes)"),
            Self::InvalidFraming(cause) | Self::InvalidChunkedBody(cause) => write!(f, ": {cause}"),
            Self::InvalidStatusLine | Self::InvalidHeader | Self::Truncated => Ok(()),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidFraming(cause) | Self::InvalidChunkedBody(cause) => Some(cause),
            _ => None,
        }
    }
}

/// The delimitation of a response body (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, a 1xx, 204 or 304 response, or `Content-Length: 0`.
    Empty,
    /// `Content-Length: N` with N > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither header: the body ends when the upstream closes the connection.
    UntilClose,
}

/// A parsed upstream response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase as sent, possibly empty.
    pub reason: String,
    pub headers: Vec<Header>,
    pub framing: ResponseFraming,
    /// Whether the upstream connection may carry another request after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// Returns the value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_slice())
    }

    /// Returns the Content-Length the upstream sent, if it sent a valid one. For a response to
    /// HEAD this is the length of the body a GET would have returned.
    pub fn content_length(&self) -> Option<u64> {
        let mut merged = None;
        for header in &self.headers {
            if header.name.eq_ignore_ascii_case("content-length") {
                merge_content_length(&mut merged, &header.value).ok()?;
            }
        }
        merged
    }
}

/// The outcome of one call to [`ResponseDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEvent {
    /// More input is needed. Interim 1xx responses may have been consumed.
    NeedMore,
    /// The final response head was parsed. The decoder keeps a copy.
    Head(ResponseHead),
    /// Body bytes were consumed, but the body is not complete yet.
    Body,
    /// The response is complete.
    Complete,
}

#[derive(Debug, Clone)]
enum ResponseState {
    /// Waiting for a head. `scanned` bytes of the input hold no end of head.
    Head {
        scanned: usize,
    },
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    UntilClose {
        received: u64,
    },
    Done,
    Failed(UpstreamError),
}

/// Decodes one upstream response, skipping interim 1xx responses.
///
/// The call order matches [`RequestDecoder`](super::RequestDecoder): pass the unconsumed bytes
/// to [`decode`](Self::decode) and drop the consumed prefix, read more on
/// [`ResponseEvent::NeedMore`], and call again after [`ResponseEvent::Head`] even without new
/// bytes. At end of stream call [`finish_on_eof`](Self::finish_on_eof), which completes a body
/// delimited by the close. Use a new decoder for each response.
///
/// A 101 Switching Protocols response is returned as a final head with no body and
/// `keep_alive` false. The proxy never forwards Upgrade, so the caller treats it as a fault.
#[derive(Debug, Clone)]
pub struct ResponseDecoder {
    request_was_head: bool,
    limits: ResponseLimits,
    state: ResponseState,
    head: Option<ResponseHead>,
    /// Whether the last call in the head state saw bytes of an incomplete head.
    partial_head: bool,
}

impl ResponseDecoder {
    /// Creates a decoder for the response to one request. `request_was_head` means that the
    /// response has no body, whatever its headers declare (RFC 9110 §9.3.2).
    pub fn new(request_was_head: bool, limits: ResponseLimits) -> Self {
        Self {
            request_was_head,
            limits,
            state: ResponseState::Head { scanned: 0 },
            head: None,
            partial_head: false,
        }
    }

    /// Returns the final response head once [`ResponseEvent::Head`] was returned.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Consumes from `input`, appending body bytes to `body`.
    ///
    /// # Errors
    ///
    /// Returns the [`UpstreamError`] of a malformed or oversized response. After an error the
    /// decoder returns the same error on every call.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(usize, ResponseEvent), UpstreamError> {
        let result = match &mut self.state {
            ResponseState::Head { .. } => self.decode_head(input),
            ResponseState::Length { remaining } => {
                let remaining = *remaining;
                Ok(self.decode_length(remaining, input, body))
            }
            ResponseState::Chunked(chunked) => decode_chunked(chunked, input, body),
            ResponseState::UntilClose { received } => {
                let received = *received;
                self.decode_until_close(received, input, body)
            }
            ResponseState::Done => return Ok((0, ResponseEvent::Complete)),
            ResponseState::Failed(error) => return Err(error.clone()),
        };

        match result {
            Ok((consumed, event)) => {
                if event == ResponseEvent::Complete {
                    self.state = ResponseState::Done;
                }
                Ok((consumed, event))
            }
            Err(error) => {
                self.state = ResponseState::Failed(error.clone());
                Err(error)
            }
        }
    }

    /// Handles the end of the upstream's stream.
    ///
    /// # Errors
    ///
    /// Returns [`UpstreamError::Truncated`] unless the response is complete or its body is
    /// delimited by the close, or the earlier error if decoding already failed.
    pub fn finish_on_eof(&mut self) -> Result<(), UpstreamError> {
        match &self.state {
            ResponseState::Done => Ok(()),
            ResponseState::UntilClose { .. } => {
                self.state = ResponseState::Done;
                Ok(())
            }
            ResponseState::Failed(error) => Err(error.clone()),
            ResponseState::Head { .. }
            | ResponseState::Length { .. }
            | ResponseState::Chunked(_) => Err(UpstreamError::Truncated),
        }
    }

    /// Returns whether the response is complete.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ResponseState::Done)
    }

    /// Returns whether the last call saw bytes of a response head that is not complete yet.
    pub fn has_partial_head(&self) -> bool {
        self.partial_head
    }

    fn decode_head(&mut self, input: &[u8]) -> Result<(usize, ResponseEvent), UpstreamError> {
        let mut offset = 0;
        // Each pass consumes one interim response, which is at least one byte.
        loop {
            let rest = input.get(offset..).unwrap_or_default();
            let ResponseState::Head { scanned } = &mut self.state else {
                return Ok((offset, ResponseEvent::NeedMore));
            };
            let Some((head, used)) =
                parse_response_head(rest, scanned, self.request_was_head, &self.limits)?
            else {
                self.partial_head = !rest.is_empty();
                return Ok((offset, ResponseEvent::NeedMore));
            };
            offset += used;

            // RFC 9110 §15.2: interim responses precede the final one and are not relayed.
            if (100..200).contains(&head.status) && head.status != 101 {
                self.state = ResponseState::Head { scanned: 0 };
                continue;
            }

            self.partial_head = false;
            self.state = match head.framing {
                ResponseFraming::Empty => ResponseState::Length { remaining: 0 },
                ResponseFraming::Length(length) => ResponseState::Length { remaining: length },
                ResponseFraming::Chunked => {
                    ResponseState::Chunked(ChunkedDecoder::new(&self.limits.chunked_limits()))
                }
                ResponseFraming::UntilClose => ResponseState::UntilClose { received: 0 },
            };
            self.head = Some(head.clone());
            return Ok((offset, ResponseEvent::Head(head)));
        }
    }

    fn decode_length(
        &mut self,
        remaining: u64,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> (usize, ResponseEvent) {
        if remaining == 0 {
            return (0, ResponseEvent::Complete);
        }
        if input.is_empty() {
            return (0, ResponseEvent::NeedMore);
        }

        let (take, remaining) = copy_body_bytes(remaining, input, body);
        self.state = ResponseState::Length { remaining };
        if remaining == 0 {
            (take, ResponseEvent::Complete)
        } else {
            (take, ResponseEvent::Body)
        }
    }

    fn decode_until_close(
        &mut self,
        received: u64,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(usize, ResponseEvent), UpstreamError> {
        if input.is_empty() {
            return Ok((0, ResponseEvent::NeedMore));
        }
        let received = received.saturating_add(input.len() as u64);
        if received > self.limits.max_body_bytes {
            return Err(UpstreamError::BodyTooLarge {
                max: self.limits.max_body_bytes,
            });
        }
        body.extend_from_slice(input);
        self.state = ResponseState::UntilClose { received };
        Ok((input.len(), ResponseEvent::Body))
    }
}

fn decode_chunked(
    chunked: &mut ChunkedDecoder,
    input: &[u8],
    body: &mut Vec<u8>,
) -> Result<(usize, ResponseEvent), UpstreamError> {
    let (consumed, done) = chunked.decode(input, body).map_err(|error| match error {
        RequestError::BodyTooLarge { max } => UpstreamError::BodyTooLarge { max },
        other => UpstreamError::InvalidChunkedBody(other),
    })?;
    let event = if done {
        ResponseEvent::Complete
    } else if consumed > 0 {
        ResponseEvent::Body
    } else {
        ResponseEvent::NeedMore
    };
    Ok((consumed, event))
}

/// Parses one response head from the start of `buf` once its end is present.
///
/// `scanned` is the number of leading bytes already known to hold no end of head, so a head
/// arriving in small reads is searched once, and httparse runs only on a complete head. The end
/// is searched only within `max_head_bytes`, so the result is the same however the bytes were
/// split into reads.
fn parse_response_head(
    buf: &[u8],
    scanned: &mut usize,
    request_was_head: bool,
    limits: &ResponseLimits,
) -> Result<Option<(ResponseHead, usize)>, UpstreamError> {
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let Some(end) = find_response_head_end(window, scanned) else {
        if buf.len() > limits.max_head_bytes {
            return Err(UpstreamError::HeadTooLarge {
                max: limits.max_head_bytes,
            });
        }
        return Ok(None);
    };

    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut response = httparse::Response::new(&mut slots);
    let used = match response.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        // The empty line found ends the head, so httparse cannot need more bytes.
        Ok(httparse::Status::Partial) => return Err(UpstreamError::InvalidStatusLine),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(UpstreamError::TooManyHeaders {
                max: limits.max_headers,
            });
        }
        Err(
            httparse::Error::HeaderName | httparse::Error::HeaderValue | httparse::Error::NewLine,
        ) => {
            return Err(UpstreamError::InvalidHeader);
        }
        Err(_) => return Err(UpstreamError::InvalidStatusLine),
    };
    debug_assert_eq!(used, end, "httparse ended the head elsewhere");

    let status = response.code.unwrap_or(0);
    if status < 100 {
        return Err(UpstreamError::InvalidStatusLine);
    }
    let http11 = response.version == Some(1);
    let headers: Vec<Header> = response
        .headers
        .iter()
        .map(|header| Header {
            name: header.name.to_owned(),
            value: header.value.to_vec(),
        })
        .collect();
    let framing = response_framing(status, &headers, http11, request_was_head, limits)?;
    let keep_alive = response_keep_alive(status, &headers, http11, framing);

    let head = ResponseHead {
        status,
        reason: response.reason.unwrap_or_default().to_owned(),
        headers,
        framing,
        keep_alive,
    };
    Ok(Some((head, used)))
}

/// Returns the offset just past the empty line that ends a response head in `window`, and
/// records in `scanned` how far the search got. Empty lines before the status line are skipped,
/// as httparse skips them. An empty line ends with LF alone or with CRLF, because httparse
/// accepts both in responses.
fn find_response_head_end(window: &[u8], scanned: &mut usize) -> Option<usize> {
    let status_line_start = window
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')?;
    let from = scanned.saturating_sub(2).max(status_line_start);
    let mut at = from;
    while let Some(&byte) = window.get(at) {
        if byte == b'\n' {
            match (window.get(at + 1), window.get(at + 2)) {
                (Some(b'\n'), _) => return Some(at + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(at + 3),
                // The LF may start the final empty line: search from it again.
                (None, _) | (Some(b'\r'), None) => break,
                _ => {}
            }
        }
        at += 1;
    }
    *scanned = at;
    None
}

/// Decides the body length of a response (RFC 9112 §6.3).
fn response_framing(
    status: u16,
    headers: &[Header],
    http11: bool,
    request_was_head: bool,
    limits: &ResponseLimits,
) -> Result<ResponseFraming, UpstreamError> {
    let mut content_length = None;
    let mut transfer_encoding = TransferEncoding::default();
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            merge_content_length(&mut content_length, &header.value)
                .map_err(UpstreamError::InvalidFraming)?;
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding
                .add(&header.value)
                .map_err(UpstreamError::InvalidFraming)?;
        }
    }

    // RFC 9112 §6.3 rule 1: these responses end at the head, whatever their headers declare.
    if request_was_head || status_has_no_body(status) {
        return Ok(ResponseFraming::Empty);
    }

    if transfer_encoding.present {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 and Transfer-Encoding with
        // Content-Length both mean faulty framing. A coding other than chunked would have to
        // reach the client undecoded, which the re-framed relay cannot do.
        if !http11 {
            return Err(UpstreamError::InvalidFraming(
                RequestError::TransferEncodingWithHttp10,
            ));
        }
        if content_length.is_some() {
            return Err(UpstreamError::InvalidFraming(
                RequestError::ContentLengthWithTransferEncoding,
            ));
        }
        transfer_encoding
            .check()
            .map_err(UpstreamError::InvalidFraming)?;
        return Ok(ResponseFraming::Chunked);
    }

    match content_length {
        None => Ok(ResponseFraming::UntilClose),
        Some(0) => Ok(ResponseFraming::Empty),
        Some(length) if length > limits.max_body_bytes => Err(UpstreamError::BodyTooLarge {
            max: limits.max_body_bytes,
        }),
        Some(length) => Ok(ResponseFraming::Length(length)),
    }
}

/// Decides whether the upstream connection persists (RFC 9112 §9.3). A body delimited by the
/// close and a 101 both end the connection.
fn response_keep_alive(
    status: u16,
    headers: &[Header],
    http11: bool,
    framing: ResponseFraming,
) -> bool {
    if status == 101 || framing == ResponseFraming::UntilClose {
        return false;
    }
    let options = connection_options(headers);
    let close = options
        .iter()
        .any(|option| option.eq_ignore_ascii_case(b"close"));
    let keep_alive = options
        .iter()
        .any(|option| option.eq_ignore_ascii_case(b"keep-alive"));
    if http11 { !close } else { keep_alive && !close }
}

/// Writes the response head relayed to the client.
///
/// The status line uses this server's reason phrase for known codes and the upstream's
/// otherwise. The upstream's headers follow, minus hop-by-hop ones (Connection and the headers
/// it names, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade, `Proxy-*`), Content-Length,
/// Date, Server and `X-Accel-*`. Then come `Date: date`, `Server: ringfront`, `Content-Length: body_len` when `body_len` is
/// `Some`, and `Connection: keep-alive` or `Connection: close`. The explicit keep-alive lets an
/// HTTP/1.0 client that sent `Connection: keep-alive` reuse the connection.
///
/// Pass the buffered body's length as `body_len`. For a response to HEAD, pass
/// [`ResponseHead::content_length`], or `None` to send no Content-Length. A 1xx or 204 response
/// never gets Content-Length (RFC 9110 §8.6).
pub fn write_client_response_head(
    head: &ResponseHead,
    body_len: Option<u64>,
    keep_alive: bool,
    date: &[u8],
    out: &mut Vec<u8>,
) {
    let known_reason = reason_phrase(head.status);
    let reason = if known_reason.is_empty() {
        head.reason.as_str()
    } else {
        known_reason
    };
    write_status_line(out, head.status, reason.as_bytes());

    let connection_options = connection_options(&head.headers);
    for header in &head.headers {
        let rewritten = header.name.eq_ignore_ascii_case("content-length")
            || header.name.eq_ignore_ascii_case("date")
            || header.name.eq_ignore_ascii_case("server");
        // `X-Accel-*` fields instruct the proxy (`X-Accel-Buffering: no` asks for streaming), so
        // like nginx this server does not pass them on to the client.
        let for_proxy = header
            .name
            .as_bytes()
            .get(.."x-accel-".len())
            .is_some_and(|start| start.eq_ignore_ascii_case(b"x-accel-"));
        if !rewritten && !for_proxy && !is_hop_by_hop(&header.name, &connection_options) {
            write_header(out, &header.name, &header.value);
        }
    }

    write_header(out, "Date", date);
    write_header(out, "Server", SERVER_NAME);
    let forbids_length = (100..200).contains(&head.status) || head.status == 204;
    if let Some(length) = body_len.filter(|_| !forbids_length) {
        let mut digits = Vec::with_capacity(20);
        push_decimal(&mut digits, length);
        write_header(out, "Content-Length", &digits);
    }
    let connection: &[u8] = if keep_alive { b"keep-alive" } else { b"close" };
    write_header(out, "Connection", connection);
    out.extend_from_slice(b"\r\n");
}

/// Writes a protocol-upgrade request (RFC 9110 §7.8), such as a WebSocket handshake: the request
/// of [`write_upstream_request`] without a body, with the client's `Upgrade` value and
/// `Connection: upgrade` in place of `Connection: close`.
pub fn write_upstream_upgrade_request(head: &RequestHead, upgrade: &[u8], forwarded: &Forwarded, out: &mut Vec<u8>) {
    let forwarded = Forwarded { keep_alive: false, ..forwarded.clone() };
    let start = out.len();
    write_upstream_request(head, 0, &forwarded, out);
    let ending: &[u8] = b"Connection: close\r\n\r\n";
    if out.get(start..).is_some_and(|written| written.ends_with(ending)) {
        out.truncate(out.len() - ending.len());
    }
    write_header(out, "Upgrade", upgrade);
    write_header(out, "Connection", b"upgrade");
    out.extend_from_slice(b"\r\n");
}

/// Writes the head of a `101 Switching Protocols` response for the client: the upstream's
/// headers minus Content-Length, Transfer-Encoding, Date and Server, with its Upgrade and
/// `Connection: upgrade` kept, since they are the point of the response.
pub fn write_client_switching_head(head: &ResponseHead, date: &[u8], out: &mut Vec<u8>) {
    write_status_line(out, 101, reason_phrase(101).as_bytes());
    for header in &head.headers {
        let dropped = ["content-length", "transfer-encoding", "date", "server", "connection", "keep-alive"]
            .iter()
            .any(|name| header.name.eq_ignore_ascii_case(name));
        if !dropped {
            write_header(out, &header.name, &header.value);
        }
    }
    write_header(out, "Date", date);
    write_header(out, "Server", SERVER_NAME);
    write_header(out, "Connection", b"upgrade");
    out.extend_from_slice(b"\r\n");
}

/// Writes the head of a response relayed as it arrives, with `Transfer-Encoding: chunked`
/// because its length is not known. The rest is as in [`write_client_response_head`].
pub fn write_client_response_head_chunked(head: &ResponseHead, keep_alive: bool, date: &[u8], out: &mut Vec<u8>) {
    write_client_response_head(head, None, keep_alive, date, out);
    // Replace the blank line that ends the head with one more field and the blank line.
    out.truncate(out.len().saturating_sub(2));
    write_header(out, "Transfer-Encoding", b"chunked");
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
