//! A raw recording upstream on a Unix socket, for tests that check the exact bytes ringfront
//! forwards. It stores every byte of every connection it accepts, in accept order, and answers
//! each request with a fixed `200 OK`. It frames requests by Content-Length only, because
//! ringfront re-frames every forwarded body that way, and it keeps reading after a response until
//! ringfront closes, so bytes sent after the first request are recorded too.
//!
//! [`parse_forwarded`] then checks that one connection carries exactly one well-formed request.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::process::{POLL_INTERVAL, TempDir};

/// Body of every response the recorder sends, so a test can tell it from ringfront's own pages.
pub const RECORDED_BODY: &[u8] = b"recorded upstream\n";

/// Maximum bytes recorded on one connection; reading stops there.
const MAX_CONNECTION_BYTES: usize = 16 * 1024 * 1024;

/// Timeout of each read and write on an accepted connection. A connection idle for this long is
/// recorded as finished.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Maximum time [`RecordingUpstream::take_connections`] waits for connections to arrive and end.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One accepted connection: the bytes received so far, and whether it has ended.
#[derive(Debug, Default)]
struct Recording {
    bytes: Vec<u8>,
    finished: bool,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    connections: Mutex<Vec<Recording>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Recording>> {
        // A panicking connection thread leaves data that is still worth reading.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The recorder's listener and accept thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct RecordingUpstream {
    socket: PathBuf,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl RecordingUpstream {
    /// Binds `upstream.sock` in a new temporary directory and starts accepting.
    ///
    /// # Panics
    /// Panics if the socket cannot be bound.
    pub fn start() -> RecordingUpstream {
        let dir = TempDir::new("rec");
        let socket = dir.join("upstream.sock");
        let listener = super::process::bind_polled_unix_listener(&socket);

        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_until_stopped(&listener, &shared))
        };
        RecordingUpstream {
            socket,
            shared,
            acceptor: Some(acceptor),
            _dir: dir,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Waits up to [`SETTLE_TIMEOUT`] until at least `expected` connections were accepted and
    /// every accepted one has ended, then removes and returns the bytes of all of them in accept
    /// order. After the timeout it returns what it has, so the caller's count check fails with
    /// the evidence.
    pub fn take_connections(&self, expected: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            {
                let mut connections = self.shared.lock();
                let settled = connections.len() >= expected
                    && connections.iter().all(|recording| recording.finished);
                if settled || Instant::now() >= deadline {
                    return connections
                        .drain(..)
                        .map(|recording| recording.bytes)
                        .collect();
                }
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_until_stopped(listener: &UnixListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let index = {
                    let mut connections = shared.lock();
                    connections.push(Recording::default());
                    connections.len() - 1
                };
                let shared = Arc::clone(shared);
                thread::spawn(move || {
                    let _ = record_connection(stream, &shared, index);
                    if let Some(recording) = shared.lock().get_mut(index) {
                        recording.finished = true;
                    }
                });
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Records everything `stream` sends and answers each request, until end of stream, a timeout
/// or [`MAX_CONNECTION_BYTES`].
fn record_connection(mut stream: UnixStream, shared: &Shared, index: usize) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;

    let mut received = Vec::new();
    let mut answered_up_to = 0;
    let mut chunk = [0u8; 16 * 1024];
    while received.len() < MAX_CONNECTION_BYTES {
        let count = stream.read(&mut chunk)?;
        if count == 0 {
            return Ok(());
        }
        let new_bytes = &chunk[..count];
        received.extend_from_slice(new_bytes);
        if let Some(recording) = shared.lock().get_mut(index) {
            recording.bytes.extend_from_slice(new_bytes);
        }

        while let Some(end) = request_end(&received[answered_up_to..]) {
            answered_up_to += end;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                RECORDED_BODY.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(RECORDED_BODY)?;
            stream.flush()?;
        }
    }
    Ok(())
}

/// Returns the length of the first complete request in `bytes`: the head up to its empty line
/// and as many body bytes as the first Content-Length declares (none without one).
fn request_end(bytes: &[u8]) -> Option<usize> {
    let head_end = find(bytes, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let body_length = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let end = head_end.checked_add(body_length)?;
    (end <= bytes.len()).then_some(end)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// One request as the upstream received it, after [`parse_forwarded`] checked its form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    pub method: String,
    pub target: String,
    /// Header fields in the order received, names as spelled, values without surrounding
    /// whitespace.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl ForwardedRequest {
    /// Returns the value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// Returns the number of headers named `name` (ASCII case-insensitive).
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .count()
    }
}

/// A rule of ringfront's upstream requests that the recorded bytes break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The rule, such as "bare LF in the head".
    pub rule: &'static str,
    /// The offending line or value, for the failure message.
    pub detail: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.rule, self.detail)
    }
}

fn malformed(rule: &'static str, detail: impl AsRef<[u8]>) -> Malformed {
    Malformed {
        rule,
        detail: String::from_utf8_lossy(detail.as_ref()).into_owned(),
    }
}

/// Headers that ringfront never forwards from a client: hop-by-hop fields (RFC 9110 §7.6.1) and
/// the framing fields it re-frames. Any `Proxy-*` field is also rejected.
const NEVER_FORWARDED: [&str; 8] = [
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
    "forwarded",
    "x-forwarded-port",
];

/// Headers that ringfront writes exactly once itself.
const WRITTEN_ONCE: [&str; 5] = [
    "host",
    "connection",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Parses the bytes of one upstream connection as exactly one request and checks the form
/// ringfront promises: CRLF line ends, no NUL, CR or LF inside lines, a request line of
/// `token SP target SP HTTP/1.1`, token header names right before the colon, field-value bytes
/// only, no obsolete line folding, at most one Content-Length in canonical decimal with exactly
/// that many body bytes and nothing after them, none of [`NEVER_FORWARDED`], each of
/// [`WRITTEN_ONCE`] exactly once, a Connection of only `close` or `keep-alive`, and no name
/// with `_` that a WSGI server would read as one of those fields.
///
/// # Errors
/// Returns the first rule broken.
pub fn parse_forwarded(bytes: &[u8]) -> Result<ForwardedRequest, Malformed> {
    let head_end = find(bytes, b"\r\n\r\n").ok_or_else(|| malformed("no end of head", bytes))?;
    let head = &bytes[..head_end];
    let rest = &bytes[head_end + 4..];
    if head.contains(&0) {
        return Err(malformed("NUL in the head", head));
    }

    let lines = split_lines(head)?;
    let (request_line, header_lines) = lines
        .split_first()
        .ok_or_else(|| malformed("empty head", head))?;
    let (method, target) = parse_request_line(request_line)?;
    let mut headers = Vec::with_capacity(header_lines.len());
    for line in header_lines {
        headers.push(parse_header_line(line)?);
    }
    let request = ForwardedRequest {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    check_header_set(&request)?;

    let length = content_length(&request)?;
    if rest.len() < length {
        return Err(malformed("body shorter than Content-Length", rest));
    }
    if rest.len() > length {
        return Err(malformed("bytes after the declared body", &rest[length..]));
    }
    Ok(ForwardedRequest {
        body: rest.to_vec(),
        ..request
    })
}

/// Splits a head at CRLF, rejecting any CR or LF that is not part of a CRLF.
fn split_lines(head: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut position = 0;
    while position < head.len() {
        match head[position] {
            b'\r' if head.get(position + 1) == Some(&b'\n') => {
                lines.push(&head[start..position]);
                position += 2;
                start = position;
            }
            b'\r' => return Err(malformed("bare CR in the head", &head[start..])),
            b'\n' => return Err(malformed("bare LF in the head", &head[start..])),
            _ => position += 1,
        }
    }
    lines.push(&head[start..]);
    Ok(lines)
}

fn parse_request_line(line: &[u8]) -> Result<(String, String), Malformed> {
    let parts: Vec<&[u8]> = line.split(|&byte| byte == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(malformed("request line is not three parts", line));
    };
    if method.is_empty() || !method.iter().all(|&byte| is_token_byte(byte)) {
        return Err(malformed("method is not a token", line));
    }
    if target.is_empty() || !target.iter().all(|&byte| (b'!'..=b'~').contains(&byte)) {
        return Err(malformed("target is not visible ASCII", line));
    }
    if *version != b"HTTP/1.1" {
        return Err(malformed("version is not HTTP/1.1", line));
    }
    Ok((
        String::from_utf8_lossy(method).into_owned(),
        String::from_utf8_lossy(target).into_owned(),
    ))
}

fn parse_header_line(line: &[u8]) -> Result<(String, Vec<u8>), Malformed> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(malformed("obsolete line folding", line));
    }
    let colon = line
        .iter()
        .position(|&byte| byte == b':')
        .ok_or_else(|| malformed("header line without a colon", line))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&byte| is_token_byte(byte)) {
        return Err(malformed("header name is not a token", line));
    }
    // RFC 9110 §5.5: field-value is VCHAR, obs-text, SP and HTAB.
    let is_value_byte = |byte: u8| byte == b'\t' || (b' '..=b'~').contains(&byte) || byte >= 0x80;
    if !value.iter().all(|&byte| is_value_byte(byte)) {
        return Err(malformed("header value has a control character", line));
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        value.trim_ascii().to_vec(),
    ))
}

fn check_header_set(request: &ForwardedRequest) -> Result<(), Malformed> {
    for (name, _) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if NEVER_FORWARDED.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(malformed("hop-by-hop or framing header forwarded", name));
        }
        // WSGI servers map `-` to `_` in header names, so `X_Forwarded_For` reads as
        // `X-Forwarded-For` to the application.
        let dashed = lower.replace('_', "-");
        let reserved = NEVER_FORWARDED.contains(&dashed.as_str())
            || WRITTEN_ONCE.contains(&dashed.as_str())
            || dashed == "content-length";
        if lower.contains('_') && reserved {
            return Err(malformed("underscore alias of a reserved header", name));
        }
    }
    for name in WRITTEN_ONCE {
        if request.count(name) != 1 {
            return Err(malformed(
                "header not present exactly once",
                format!("{name} x{}", request.count(name)),
            ));
        }
    }
    let connection = request.header("connection").unwrap_or_default();
    if connection != b"close" && connection != b"keep-alive" {
        return Err(malformed(
            "Connection lists more than close or keep-alive",
            connection,
        ));
    }
    Ok(())
}

/// Returns the one Content-Length as a number, or 0 without one.
fn content_length(request: &ForwardedRequest) -> Result<usize, Malformed> {
    if request.count("content-length") > 1 {
        return Err(malformed("more than one Content-Length", &request.target));
    }
    let Some(value) = request.header("content-length") else {
        return Ok(0);
    };
    let canonical = value.iter().all(u8::is_ascii_digit) && (value == b"0" || value[0] != b'0');
    if value.is_empty() || !canonical {
        return Err(malformed("Content-Length not in canonical decimal", value));
    }
    String::from_utf8_lossy(value)
        .parse()
        .map_err(|_| malformed("Content-Length out of range", value))
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}
