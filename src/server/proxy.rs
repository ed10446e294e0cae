//! The upstream exchange: one whole, re-framed request written to Gunicorn's Unix socket, and its
//! whole response read back before the client sees a byte of it. Gunicorn's sync workers thus
//! never wait on a slow client in either direction.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::{LimitSettings, UpstreamSettings};
use crate::http::{self, Forwarded, RequestHead, ResponseDecoder, ResponseEvent, ResponseHead, ResponseLimits};
use crate::rt::{self, AsyncReadExt, AsyncWriteExt, BufResult, UnixStream};

/// Pause between connection attempts while the upstream's listen backlog is full (EAGAIN).
const BACKLOG_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Bytes requested from the upstream socket per read.
const UPSTREAM_READ_CHUNK: usize = 64 * 1024;

/// Why an upstream exchange failed. Each maps to the status the client gets in [`ProxyError::status`].
#[derive(Debug)]
pub enum ProxyError {
    /// The socket could not be connected: Gunicorn is not running, or the path is wrong.
    Connect(io::Error),
    /// The backlog stayed full, or the connect did not finish, within the connect timeout.
    ConnectTimedOut,
    /// Writing the request failed or timed out.
    Send(io::Error),
    /// The whole response did not arrive within the read timeout.
    ReadTimedOut,
    /// Reading the response failed.
    Receive(io::Error),
    /// The response was malformed, truncated or too large.
    Response(http::UpstreamError),
}

impl ProxyError {
    /// The status sent to the client: 504 for a read timeout, 502 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::ReadTimedOut => 504,
            ProxyError::Connect(_)
            | ProxyError::ConnectTimedOut
            | ProxyError::Send(_)
            | ProxyError::Receive(_)
            | ProxyError::Response(_) => 502,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Connect(err) => write!(f, "connecting to the upstream failed: {err}"),
            ProxyError::ConnectTimedOut => write!(f, "connecting to the upstream timed out"),
            ProxyError::Send(err) => write!(f, "sending the request to the upstream failed: {err}"),
            ProxyError::ReadTimedOut => write!(f, "the upstream response timed out"),
            ProxyError::Receive(err) => write!(f, "reading the upstream response failed: {err}"),
            ProxyError::Response(err) => write!(f, "invalid upstream response: {err:?}"),
        }
    }
}

/// A whole upstream response.
pub struct UpstreamResponse {
    pub head: ResponseHead,
    pub body: Vec<u8>,
}

/// The client-side facts the upstream is told through `X-Forwarded-*`.
pub struct ClientFacts<'a> {
    pub ip: IpAddr,
    pub proto: &'static str,
    pub host: &'a str,
}

/// Sends `request` with its whole `body` to the upstream and reads the whole response.
///
/// # Errors
/// A [`ProxyError`] saying which step failed.
pub async fn exchange(
    upstream: &UpstreamSettings,
    limits: &LimitSettings,
    request: &RequestHead,
    body: &[u8],
    client: &ClientFacts<'_>,
) -> Result<UpstreamResponse, ProxyError> {
    let mut stream = connect(upstream).await?;

    let forwarded = Forwarded {
        client_ip: client.ip,
        proto: client.proto,
        host: client.host.to_owned(),
        prior_forwarded_for: None,
        keep_alive: false,
    };
    let mut message = Vec::with_capacity(512 + body.len());
    http::write_upstream_request(request, body.len(), &forwarded, &mut message);
    message.extend_from_slice(body);
    match rt::timeout(upstream.send_timeout, stream.write_all(message)).await {
        Some(BufResult(Ok(()), _)) => {}
        Some(BufResult(Err(err), _)) => return Err(ProxyError::Send(err)),
        None => return Err(ProxyError::Send(io::Error::from(io::ErrorKind::TimedOut))),
    }

    let deadline = Instant::now() + upstream.read_timeout;
    let response_limits = ResponseLimits { max_body_bytes: limits.max_response_bytes, ..ResponseLimits::default() };
    let mut decoder = ResponseDecoder::new(request.is_head(), response_limits);
    read_response(&mut stream, &mut decoder, deadline).await
}

async fn read_response(
    stream: &mut UnixStream,
    decoder: &mut ResponseDecoder,
    deadline: Instant,
) -> Result<UpstreamResponse, ProxyError> {
    let mut input: Vec<u8> = Vec::with_capacity(UPSTREAM_READ_CHUNK);
    let mut consumed = 0usize;
    let mut body = Vec::new();
    let mut head = None;
    loop {
        let unread = input.get(consumed..).unwrap_or_default();
        let (used, event) = decoder.decode(unread, &mut body).map_err(ProxyError::Response)?;
        consumed += used;
        match event {
            ResponseEvent::Head(parsed) => head = Some(parsed),
            ResponseEvent::Body => {}
            ResponseEvent::Complete => break,
            ResponseEvent::NeedMore => {
                input.drain(..consumed.min(input.len()));
                consumed = 0;
                input.reserve(UPSTREAM_READ_CHUNK);
                let left = deadline.saturating_duration_since(Instant::now());
                let buffer = std::mem::take(&mut input);
                let Some(BufResult(result, buffer)) = rt::timeout(left, stream.append(buffer)).await else {
                    return Err(ProxyError::ReadTimedOut);
                };
                input = buffer;
                match result {
                    Ok(0) => {
                        decoder.finish_on_eof().map_err(ProxyError::Response)?;
                        break;
                    }
                    Ok(_) => {}
                    Err(err) => return Err(ProxyError::Receive(err)),
                }
            }
        }
    }
    let head = head.ok_or(ProxyError::Response(http::UpstreamError::Truncated))?;
    Ok(UpstreamResponse { head, body })
}

/// Connects to the upstream socket, retrying while its listen backlog is full.
///
/// A Unix socket whose backlog is full answers a non-blocking connect with EAGAIN instead of
/// queueing it as TCP would; Gunicorn under a burst hits this, and a short retry usually gets in.
async fn connect(upstream: &UpstreamSettings) -> Result<UnixStream, ProxyError> {
    let deadline = Instant::now() + upstream.connect_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rt::timeout(left, UnixStream::connect(&upstream.unix)).await {
            None => return Err(ProxyError::ConnectTimedOut),
            Some(Ok(stream)) => return Ok(stream),
            Some(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() + BACKLOG_RETRY_PAUSE >= deadline {
                    return Err(ProxyError::ConnectTimedOut);
                }
                rt::sleep(BACKLOG_RETRY_PAUSE).await;
            }
            Some(Err(err)) => return Err(ProxyError::Connect(err)),
        }
    }
}
