//! Request head parsing and the body framing decision (RFC 9112 §2–§6).
//!
//! httparse tokenizes the header lines, but it accepts input this server must reject, such as
//! bare LF line ends and any number of empty lines before the request line. So a resumable scan
//! runs first. It finds the line ends with `memchr`, checks line ends, NUL bytes and limits on
//! the way, and records the two spaces that split the request line. The request line and the
//! framing headers are checked here once the head is complete. The module owns no buffer, so the
//! caller keeps the bytes and hands the growing head back on each call.

use memchr::{memchr, memchr3};

use super::error::RequestError;
use super::head_buffers::HeadBuffers;
use super::limits::Limits;
use super::request::{BodyFraming, Header, RequestHead, Version};

/// Parses one request head from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a head and more bytes are needed, or the
/// head and the number of bytes of `buf` it used, including any empty lines before the request
/// line. The bytes after that are the body or the next request.
///
/// # Errors
///
/// Returns the [`RequestError`] of the first fault found. Errors that show in an incomplete
/// head (a bare LF, a request line or target already over its limit, a head past
/// `max_head_bytes`) are reported before the head ends.
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    HeadScanner::default().parse(buf, limits)
}

/// A scan of a request head that may arrive over several reads.
///
/// Every call must see the same leading bytes as the call before, plus any new ones, so the scan
/// resumes where it stopped instead of reading the whole head again on each read.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeadScanner {
    /// Offset of the request line, once the empty lines before it are skipped.
    start: Option<usize>,
    empty_lines: usize,
    /// Offset of the next byte to examine.
    pos: usize,
    line_start: usize,
    /// Offset of the first space of the request line, which ends the method.
    method_end: Option<usize>,
    /// Offset of the second space of the request line, which ends the target.
    target_end: Option<usize>,
    request_line_end: Option<usize>,
    header_lines: usize,
}

impl HeadScanner {
    /// Continues the scan over `buf` and parses the head once it is complete.
    ///
    /// # Errors
    ///
    /// As for [`parse_request_head`].
    pub(crate) fn parse(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        self.parse_into(buf, limits, &mut HeadBuffers::default())
    }

    /// Continues the scan as [`parse`](Self::parse) does, but builds a complete head from the
    /// buffers in `buffers` instead of allocating new ones.
    pub(crate) fn parse_into(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        buffers: &mut HeadBuffers,
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        let Some(start) = self.skip_empty_lines(buf, limits)? else {
            return Ok(None);
        };
        let Some(end) = self.find_head_end(buf, start, limits)? else {
            return Ok(None);
        };

        let request_line_end = self.request_line_end.unwrap_or(start);
        let request_line = self.split_request_line(buf, request_line_end);
        let header_block = buf
            .get(request_line_end.saturating_add(2)..end)
            .unwrap_or_default();
        let head = parse_head(request_line, header_block, self.header_lines, limits, buffers)?;
        Ok(Some((head, end)))
    }

    /// Skips the CRLFs allowed before the request line (RFC 9112 §2.2) and returns the offset of
    /// the request line, or `None` if `buf` ends first.
    fn skip_empty_lines(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<usize>, RequestError> {
        if let Some(start) = self.start {
            return Ok(Some(start));
        }
        loop {
            match buf.get(self.pos) {
                None => return Ok(None),
                Some(b'\r') => match buf.get(self.pos + 1) {
                    None => return Ok(None),
                    Some(b'\n') => {
                        self.empty_lines += 1;
                        if self.empty_lines > limits.max_leading_empty_lines {
                            return Err(RequestError::TooManyEmptyLines {
                                max: limits.max_leading_empty_lines,
                            });
                        }
                        self.pos += 2;
                    }
                    Some(_) => return Err(RequestError::BareCr),
                },
                Some(b'\n') => return Err(RequestError::BareLf),
                Some(_) => {
                    self.start = Some(self.pos);
                    self.line_start = self.pos;
                    return Ok(Some(self.pos));
                }
            }
        }
    }

    /// Scans for the empty line that ends the head and returns the offset just past it.
    ///
    /// Every byte is checked on the way, and the first fault in byte order is reported, so the
    /// error is the same however the request was split into reads. Line ends must be CRLF, NUL
    /// is rejected, a line after the request line may not start with whitespace, and the target,
    /// header count and head size stay within their limits.
    fn find_head_end(
        &mut self,
        buf: &[u8],
        start: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, RequestError> {
        let scan_end = buf.len().min(start.saturating_add(limits.max_head_bytes));
        while self.pos < scan_end {
            if self.pos == self.line_start && matches!(buf.get(self.pos), Some(b' ' | b'\t')) {
                if self.request_line_end.is_none() {
                    return Err(RequestError::MalformedRequestLine);
                }
                return Err(RequestError::ObsoleteLineFolding);
            }

            // Only CR, LF and NUL need a closer look. The bytes before the first of them are
            // the rest of the current line.
            let rest = buf.get(self.pos..scan_end).unwrap_or_default();
            let special = memchr3(b'\r', b'\n', 0, rest).map(|offset| self.pos + offset);
            let stop = special.unwrap_or(scan_end);
            if self.request_line_end.is_none() {
                self.scan_request_line(buf, stop, limits)?;
            }
            self.pos = stop;
            let Some(at) = special else {
                break;
            };

            match buf.get(at) {
                Some(b'\r') => match buf.get(at + 1) {
                    // The CR is examined again once its LF arrives.
                    None => return Ok(None),
                    Some(b'\n') => {
                        if let Some(end) = self.on_line_end(start, limits)? {
                            return Ok(Some(end));
                        }
                    }
                    Some(_) => return Err(RequestError::BareCr),
                },
                Some(b'\n') => return Err(RequestError::BareLf),
                _ => return Err(RequestError::NulByte),
            }
        }

        if self.pos >= start.saturating_add(limits.max_head_bytes) {
            return Err(RequestError::HeadTooLarge {
                max: limits.max_head_bytes,
            });
        }
        Ok(None)
    }

    /// Records the spaces of the request line in `buf[self.pos..stop]` and checks the target
    /// length against the bytes scanned so far.
    fn scan_request_line(
        &mut self,
        buf: &[u8],
        stop: usize,
        limits: &Limits,
    ) -> Result<(), RequestError> {
        if self.method_end.is_none() {
            let rest = buf.get(self.pos..stop).unwrap_or_default();
            self.method_end = memchr(b' ', rest).map(|offset| self.pos + offset);
        }
        let Some(method_end) = self.method_end else {
            return Ok(());
        };
        let target_start = method_end + 1;
        if self.target_end.is_none() {
            let from = self.pos.max(target_start);
            let rest = buf.get(from..stop).unwrap_or_default();
            self.target_end = memchr(b' ', rest).map(|offset| from + offset);
        }

        // The target scanned so far ends at the second space or at `stop`. Checking it on every
        // call, instead of once the line is complete, reports a long target before the head
        // size limit and before any later fault in the line.
        let target_scanned = self.target_end.unwrap_or(stop).saturating_sub(target_start);
        if target_scanned > limits.max_uri_bytes {
            return Err(RequestError::UriTooLong {
                max: limits.max_uri_bytes,
            });
        }
        Ok(())
    }

    /// Handles the CRLF at `self.pos` and returns the head's end if that CRLF ends an empty line.
    fn on_line_end(
        &mut self,
        start: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, RequestError> {
        let line_end = self.pos;
        self.pos += 2;
        if line_end == self.line_start {
            if self.pos - start > limits.max_head_bytes {
                return Err(RequestError::HeadTooLarge {
                    max: limits.max_head_bytes,
                });
            }
            return Ok(Some(self.pos));
        }

        if self.request_line_end.is_none() {
            self.request_line_end = Some(line_end);
        } else {
            self.header_lines += 1;
            if self.header_lines > limits.max_headers {
                return Err(RequestError::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
        }
        self.line_start = self.pos;
        Ok(None)
    }

    /// Splits the complete request line at the spaces the scan found. Returns `None` unless
    /// exactly two spaces separate three parts.
    fn split_request_line<'a>(
        &self,
        buf: &'a [u8],
        request_line_end: usize,
    ) -> Option<RequestLineParts<'a>> {
        let start = self.start?;
        let method_end = self.method_end?;
        let target_end = self.target_end?;
        let version = buf.get(target_end + 1..request_line_end)?;
        if memchr(b' ', version).is_some() {
            return None;
        }
        Some(RequestLineParts {
            method: buf.get(start..method_end)?,
            target: buf.get(method_end + 1..target_end)?,
            version,
        })
    }
}

/// The request line split at its two spaces.
struct RequestLineParts<'a> {
    method: &'a [u8],
    target: &'a [u8],
    version: &'a [u8],
}

/// Parses a complete head: the request line split into its parts (`None` if it has not exactly
/// two spaces), and the header lines including the CRLF of the final empty line.
fn parse_head(
    request_line: Option<RequestLineParts<'_>>,
    header_block: &[u8],
    header_lines: usize,
    limits: &Limits,
    buffers: &mut HeadBuffers,
) -> Result<RequestHead, RequestError> {
    let line = parse_request_line(request_line, limits)?;
    let mut headers = std::mem::take(&mut buffers.headers);
    parse_header_lines(
        header_block,
        header_lines,
        limits,
        &mut headers,
        &mut buffers.entries,
    )?;
    let framing = decide_framing(&headers, line.version, limits)?;

    let mut method = std::mem::take(&mut buffers.method);
    method.push_str(line.method);
    let mut target = std::mem::take(&mut buffers.target);
    match line.absolute {
        Some(absolute) => {
            if !absolute.path_and_query.starts_with('/') {
                target.push('/');
            }
            target.push_str(absolute.path_and_query);
            replace_host(&mut headers, absolute.authority, &mut buffers.entries);
        }
        None => target.push_str(line.target),
    }

    Ok(RequestHead {
        method,
        target,
        version: line.version,
        headers,
        framing: framing.body,
        keep_alive: framing.keep_alive,
        expect_continue: framing.expect_continue,
    })
}

struct RequestLine<'a> {
    method: &'a str,
    target: &'a str,
    version: Version,
    absolute: Option<AbsoluteTarget<'a>>,
}

/// An absolute-form target split into the authority and the rest, which is empty or starts with
/// `/` or `?`.
#[derive(Debug, PartialEq, Eq)]
struct AbsoluteTarget<'a> {
    authority: &'a str,
    path_and_query: &'a str,
}

/// Parses `method SP request-target SP HTTP-version` (RFC 9112 §3). Exactly one space must
/// separate the parts, as in the grammar, because lenient splitting is where parsers disagree.
fn parse_request_line<'a>(
    parts: Option<RequestLineParts<'a>>,
    limits: &Limits,
) -> Result<RequestLine<'a>, RequestError> {
    let Some(RequestLineParts {
        method,
        target,
        version,
    }) = parts
    else {
        return Err(RequestError::MalformedRequestLine);
    };
    if target.len() > limits.max_uri_bytes {
        return Err(RequestError::UriTooLong {
            max: limits.max_uri_bytes,
        });
    }

    let version = parse_version(version)?;
    if method.is_empty() || !method.iter().all(|&byte| is_token_byte(byte)) {
        return Err(RequestError::InvalidMethod);
    }
    let method = ascii_str(method, RequestError::InvalidMethod)?;
    let (target, absolute) = parse_target(method, target)?;

    Ok(RequestLine {
        method,
        target,
        version,
        absolute,
    })
}

/// Parses `HTTP/1.0` or `HTTP/1.1`. The name is case-sensitive (RFC 9112 §2.3).
fn parse_version(version: &[u8]) -> Result<Version, RequestError> {
    match version {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(RequestError::UnsupportedVersion)
        }
        _ => Err(RequestError::MalformedRequestLine),
    }
}

/// Checks the request target form (RFC 9112 §3.2) and returns it as sent, plus its parts when it
/// is in absolute form.
fn parse_target<'a>(
    method: &str,
    target: &'a [u8],
) -> Result<(&'a str, Option<AbsoluteTarget<'a>>), RequestError> {
    if target.is_empty() || !target.iter().all(|&byte| is_target_byte(byte)) {
        return Err(RequestError::InvalidTarget);
    }
    let text = ascii_str(target, RequestError::InvalidTarget)?;

    if text.starts_with('/') {
        return Ok((text, None));
    }
    if text == "*" {
        // RFC 9112 §3.2.4: asterisk form is only for a server-wide OPTIONS.
        if method == "OPTIONS" {
            return Ok((text, None));
        }
        return Err(RequestError::InvalidTarget);
    }
    let absolute = parse_absolute_target(text)?;
    Ok((text, Some(absolute)))
}

/// Splits an `http` or `https` absolute-form target (RFC 9112 §3.2.2). Other forms, such as the
/// authority form that CONNECT uses, are rejected: this server is not a forward proxy.
fn parse_absolute_target(target: &str) -> Result<AbsoluteTarget<'_>, RequestError> {
    let (scheme, rest) = target
        .split_once("://")
        .ok_or(RequestError::InvalidTarget)?;
    // RFC 3986 §3.1: schemes are case-insensitive.
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(RequestError::InvalidTarget);
    }

    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at_checked(authority_end).unwrap_or((rest, ""));
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is treated as an error.
    if authority.contains('@') || !is_valid_host(authority.as_bytes()) {
        return Err(RequestError::InvalidHost);
    }

    Ok(AbsoluteTarget {
        authority,
        path_and_query,
    })
}

/// Number of httparse slots on the stack for a head with few fields, as curl and most API
/// clients send them. Such a head then zeroes 512 bytes of slots instead of 3.2 KiB.
const FEW_HEADER_SLOTS: usize = 16;

/// Number of httparse slots on the stack for larger heads. It covers the default
/// `max_headers`, so only a server configured for more fields allocates slots on the heap.
const MANY_HEADER_SLOTS: usize = 100;

/// Tokenizes the `count` header lines of `block` with httparse and appends them to `headers`,
/// taking name and value buffers from `entries` first.
fn parse_header_lines(
    block: &[u8],
    count: usize,
    limits: &Limits,
    headers: &mut Vec<Header>,
    entries: &mut Vec<Header>,
) -> Result<(), RequestError> {
    if count <= FEW_HEADER_SLOTS {
        let mut slots = [httparse::EMPTY_HEADER; FEW_HEADER_SLOTS];
        tokenize_header_lines(block, count, &mut slots, limits, headers, entries)
    } else if count <= MANY_HEADER_SLOTS {
        let mut slots = [httparse::EMPTY_HEADER; MANY_HEADER_SLOTS];
        tokenize_header_lines(block, count, &mut slots, limits, headers, entries)
    } else {
        let mut slots = vec![httparse::EMPTY_HEADER; count];
        tokenize_header_lines(block, count, &mut slots, limits, headers, entries)
    }
}

/// Runs httparse over `block` with exactly `count` of `slots` and copies the fields out.
fn tokenize_header_lines<'b>(
    block: &'b [u8],
    count: usize,
    slots: &mut [httparse::Header<'b>],
    limits: &Limits,
    headers: &mut Vec<Header>,
    entries: &mut Vec<Header>,
) -> Result<(), RequestError> {
    // As many slots as header lines, so httparse reports too many fields exactly when the scan
    // and httparse disagree about where the lines end.
    let used = count.min(slots.len());
    let slots = slots.get_mut(..used).unwrap_or_default();
    let parsed = match httparse::parse_headers(block, slots) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        other => return Err(header_lines_error(block, other, limits)),
    };

    headers.reserve(parsed.len());
    let mut reused = entries.drain(..parsed.len().min(entries.len()));
    for field in parsed {
        let mut header = reused.next().unwrap_or_else(empty_header);
        header.name.push_str(field.name);
        header.value.extend_from_slice(field.value);
        headers.push(header);
    }
    Ok(())
}

/// Returns the error for a header block that httparse did not accept.
///
/// Whitespace before a colon, and a line without one, are reported first, for the first line
/// that has them, even when httparse stopped at an earlier line. httparse accepts neither, so
/// this check runs only on a block it rejected.
fn header_lines_error(
    block: &[u8],
    result: httparse::Result<(usize, &[httparse::Header<'_>])>,
    limits: &Limits,
) -> RequestError {
    if let Err(error) = check_header_colons(block) {
        return error;
    }
    match result {
        // The block ends with CRLF CRLF and the scan saw no bare CR or LF, so httparse has the
        // whole block. An incomplete result would be a disagreement about line ends.
        Ok(_) => RequestError::MalformedRequestLine,
        Err(httparse::Error::HeaderValue) => RequestError::InvalidHeaderValue,
        Err(httparse::Error::TooManyHeaders) => RequestError::TooManyHeaders {
            max: limits.max_headers,
        },
        Err(_) => RequestError::InvalidHeaderName,
    }
}

/// Checks that every header line has a colon without whitespace before it (RFC 9112 §5.1),
/// which httparse reports only as an invalid name.
fn check_header_colons(block: &[u8]) -> Result<(), RequestError> {
    for line in block.split(|&byte| byte == b'\n') {
        let Some(colon) = memchr(b':', line) else {
            // The last piece after the final LF is empty, and the empty line is just "\r".
            if line.is_empty() || line == b"\r" {
                continue;
            }
            return Err(RequestError::InvalidHeaderName);
        };
        let before_colon = colon.checked_sub(1).and_then(|at| line.get(at));
        if matches!(before_colon, Some(b' ' | b'\t')) {
            return Err(RequestError::WhitespaceBeforeColon);
        }
    }
    Ok(())
}

fn empty_header() -> Header {
    Header {
        name: String::new(),
        value: Vec::new(),
    }
}

/// The framing and connection decisions taken from the headers.
struct Framing {
    body: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

/// Decides how the body is delimited and whether the connection persists (RFC 9112 §6, §9.3).
fn decide_framing(
    headers: &[Header],
    version: Version,
    limits: &Limits,
) -> Result<Framing, RequestError> {
    let mut hosts = 0usize;
    let mut content_length = None;
    let mut transfer_encoding = TransferEncoding::default();
    let mut connection = ConnectionOptions::default();
    let mut expect_continue = false;

    for header in headers {
        let name = header.name.as_str();
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !is_valid_host(&header.value) {
                return Err(RequestError::InvalidHost);
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            merge_content_length(&mut content_length, &header.value)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding.add(&header.value)?;
        } else if name.eq_ignore_ascii_case("connection") {
            connection.add(&header.value);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |= parse_expect(&header.value)?;
        }
    }

    // RFC 9112 §3.2: exactly one Host in HTTP/1.1; more than one is an error in any version.
    if hosts > 1 {
        return Err(RequestError::DuplicateHost);
    }
    if hosts == 0 && version == Version::Http11 {
        return Err(RequestError::MissingHost);
    }

    let body = body_framing(content_length, &transfer_encoding, version, limits)?;
    let keep_alive = match version {
        Version::Http11 => !connection.close,
        Version::Http10 => connection.keep_alive && !connection.close,
    };
    // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
    let expect_continue = expect_continue && version == Version::Http11;
    Ok(Framing {
        body,
        keep_alive,
        expect_continue,
    })
}

/// Applies RFC 9112 §6.1 and §6.3 to the collected Content-Length and Transfer-Encoding.
fn body_framing(
    content_length: Option<u64>,
    transfer_encoding: &TransferEncoding,
    version: Version,
    limits: &Limits,
) -> Result<BodyFraming, RequestError> {
    if transfer_encoding.present {
        if version == Version::Http10 {
            return Err(RequestError::TransferEncodingWithHttp10);
        }
        if content_length.is_some() {
            return Err(RequestError::ContentLengthWithTransferEncoding);
        }
        transfer_encoding.check()?;
        return Ok(BodyFraming::Chunked);
    }

    match content_length {
        None | Some(0) => Ok(BodyFraming::Empty),
        Some(length) if length > limits.max_body_bytes => {
            Err(RequestError::ContentLengthTooLarge {
                length,
                max: limits.max_body_bytes,
            })
        }
        Some(length) => Ok(BodyFraming::Length(length)),
    }
}

/// Adds one Content-Length field value to `merged`. A list of identical values, in one field or
/// several, collapses into one (RFC 9110 §8.6); differing values are an error.
pub(crate) fn merge_content_length(
    merged: &mut Option<u64>,
    value: &[u8],
) -> Result<(), RequestError> {
    for element in value.split(|&byte| byte == b',') {
        let length = parse_content_length(trim_whitespace(element))?;
        match merged {
            Some(previous) if *previous != length => {
                return Err(RequestError::DifferingContentLengths);
            }
            _ => *merged = Some(length),
        }
    }
    Ok(())
}

/// Parses `1*DIGIT` with checked arithmetic.
fn parse_content_length(digits: &[u8]) -> Result<u64, RequestError> {
    match digits.first() {
        None => return Err(RequestError::InvalidContentLength),
        Some(b'+' | b'-') => return Err(RequestError::SignedContentLength),
        Some(_) => {}
    }

    let mut length: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(RequestError::InvalidContentLength);
        }
        length = length
            .checked_mul(10)
            .and_then(|length| length.checked_add(u64::from(byte - b'0')))
            .ok_or(RequestError::ContentLengthOverflow)?;
    }
    Ok(length)
}

/// The transfer codings of every Transfer-Encoding field, in order.
#[derive(Default)]
pub(crate) struct TransferEncoding {
    pub(crate) present: bool,
    codings: usize,
    chunked: usize,
    last_is_chunked: bool,
    other: bool,
}

impl TransferEncoding {
    /// Adds the codings listed in one field value.
    ///
    /// # Errors
    ///
    /// Returns [`RequestError::InvalidTransferEncoding`] for an element that is not a coding
    /// token, parameters on `chunked`, or a field that lists no coding. The grammar allows an
    /// empty list, but a recipient that reads only the last field would then find no transfer
    /// coding where this server reads `chunked`.
    pub(crate) fn add(&mut self, value: &[u8]) -> Result<(), RequestError> {
        self.present = true;
        if list_elements(value).next().is_none() {
            return Err(RequestError::InvalidTransferEncoding);
        }
        for element in list_elements(value) {
            // RFC 9112 §7: transfer-coding = token *( OWS ";" OWS transfer-parameter )
            let mut name_and_parameters = element.splitn(2, |&byte| byte == b';');
            let name = trim_whitespace(name_and_parameters.next().unwrap_or_default());
            let has_parameters = name_and_parameters.next().is_some();
            if name.is_empty() || !name.iter().all(|&byte| is_token_byte(byte)) {
                return Err(RequestError::InvalidTransferEncoding);
            }

            self.codings += 1;
            self.last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                // chunked defines no parameters.
                if has_parameters {
                    return Err(RequestError::InvalidTransferEncoding);
                }
                self.chunked += 1;
            } else {
                self.other = true;
            }
        }
        Ok(())
    }

    /// Accepts exactly `chunked`, once and last (RFC 9112 §6.1, §6.3, §7).
    pub(crate) fn check(&self) -> Result<(), RequestError> {
        if self.codings == 0 {
            return Err(RequestError::InvalidTransferEncoding);
        }
        if !self.last_is_chunked {
            return Err(RequestError::ChunkedNotFinal);
        }
        if self.chunked > 1 {
            return Err(RequestError::ChunkedTwice);
        }
        // Codings before chunked would have to be undone before the body reaches the
        // application, and this server decodes none of them.
        if self.other {
            return Err(RequestError::UnsupportedTransferCoding);
        }
        Ok(())
    }
}

/// The `close` and `keep-alive` options of every Connection field (RFC 9112 §9.3, §9.6).
#[derive(Default)]
struct ConnectionOptions {
    close: bool,
    keep_alive: bool,
}

impl ConnectionOptions {
    fn add(&mut self, value: &[u8]) {
        for option in list_elements(value) {
            self.close |= option.eq_ignore_ascii_case(b"close");
            self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
}

/// Returns whether an Expect value requests 100 Continue (RFC 9110 §10.1.1).
fn parse_expect(value: &[u8]) -> Result<bool, RequestError> {
    let mut expect_continue = false;
    for expectation in list_elements(value) {
        if !expectation.eq_ignore_ascii_case(b"100-continue") {
            return Err(RequestError::UnsupportedExpectation);
        }
        expect_continue = true;
    }
    Ok(expect_continue)
}

/// Sets the Host header to the authority of an absolute-form target (RFC 9112 §3.2.2), adding
/// one when an HTTP/1.0 request sent none.
fn replace_host(headers: &mut Vec<Header>, authority: &str, entries: &mut Vec<Header>) {
    if let Some(host) = headers
        .iter_mut()
        .find(|header| header.name.eq_ignore_ascii_case("host"))
    {
        host.value.clear();
        host.value.extend_from_slice(authority.as_bytes());
        return;
    }

    let mut host = entries.pop().unwrap_or_else(empty_header);
    host.name.push_str("Host");
    host.value.extend_from_slice(authority.as_bytes());
    headers.push(host);
}

/// Checks `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2). The host may not be empty
/// because http and https URIs require one (RFC 9110 §4.2.1).
pub(crate) fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|&byte| byte == b']') else {
            return false;
        };
        let (literal, rest) = value.split_at(close + 1);
        let inside = literal.get(1..close).unwrap_or_default();
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.')
        {
            return false;
        }
        match rest {
            [] => (literal, None),
            [b':', port @ ..] => (literal, Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|&byte| byte == b':') {
            Some(colon) => {
                let (host, port) = value.split_at(colon);
                (host, port.get(1..))
            }
            None => (value, None),
        }
    };

    let host_ok = host.first() == Some(&b'[') || is_reg_name(host);
    let port_ok = port.is_none_or(|port| port.len() <= 5 && port.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// Checks a non-empty reg-name or IPv4 address: unreserved, sub-delims and percent-encodings.
fn is_reg_name(host: &[u8]) -> bool {
    if host.is_empty() {
        return false;
    }
    let mut bytes = host.iter();
    while let Some(&byte) = bytes.next() {
        let ok = match byte {
            b'%' => {
                let high = bytes.next().is_some_and(u8::is_ascii_hexdigit);
                let low = bytes.next().is_some_and(u8::is_ascii_hexdigit);
                high && low
            }
            b'-' | b'.' | b'_' | b'~' => true,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => true,
            _ => byte.is_ascii_alphanumeric(),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Returns the non-empty elements of a comma-separated list with surrounding whitespace removed
/// (RFC 9110 §5.6.1: empty elements are ignored).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim_whitespace)
        .filter(|element| !element.is_empty())
}

/// Removes leading and trailing SP and HT (OWS, RFC 9110 §5.6.3).
pub(crate) fn trim_whitespace(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Bytes accepted in a request target: visible ASCII without `#`, because a fragment is never
/// part of a request target (RFC 9112 §3.2). Characters that RFC 3986 leaves out but browsers
/// send unencoded in query strings, such as `|` and `{`, are accepted as common servers do.
fn is_target_byte(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~') && byte != b'#'
}

/// The request line of a rejected request, for its access log line.
#[derive(Debug, PartialEq, Eq)]
pub struct RejectedRequestLine {
    pub method: String,
    pub target: String,
    /// The protocol version as sent, also one this server does not support (`HTTP/2.0`), so that
    /// the log line of a 505 shows the version that caused it.
    pub version: String,
}

/// Returns the request line at the start of `buf` when it is complete within `max_line_bytes`
/// and well formed (`token SP target SP HTTP/d.d`), after the empty lines RFC 9112
/// §2.2 allows before it. For the access log of a request whose head was rejected after its
/// first line arrived, such as a 400 for a bad field or a 431, which the decoder reports before
/// it returns a head.
pub fn rejected_request_line(buf: &[u8], max_line_bytes: usize) -> Option<RejectedRequestLine> {
    let mut rest = buf;
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        rest = after;
    }
    let window = rest.get(..rest.len().min(max_line_bytes.saturating_add(2)))?;
    let line_end = memchr(b'\n', window)?;
    let line = window.get(..line_end)?.strip_suffix(b"\r")?;

    let mut parts = line.splitn(3, |&byte| byte == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if matches!(parse_version(version), Err(RequestError::MalformedRequestLine)) {
        return None;
    }
    let method_ok = !method.is_empty() && method.iter().all(|&byte| is_token_byte(byte));
    let target_ok = !target.is_empty() && target.iter().all(|&byte| matches!(byte, b'!'..=b'~'));
    if !method_ok || !target_ok {
        return None;
    }
    Some(RejectedRequestLine {
        method: std::str::from_utf8(method).ok()?.to_owned(),
        target: std::str::from_utf8(target).ok()?.to_owned(),
        version: std::str::from_utf8(version).ok()?.to_owned(),
    })
}

fn ascii_str(bytes: &[u8], error: RequestError) -> Result<&str, RequestError> {
    std::str::from_utf8(bytes).map_err(|_| error)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
