//! The upstream exchange: one whole, re-framed request written to Gunicorn, and its response
//! read back as fast as Gunicorn sends it, so its workers never wait on a slow client in either
//! direction. The connection drives the phases: [`Exchange::start`] sends the request and reads
//! the response head, [`Exchange::read_body`] reads the body, [`Exchange::finish`] returns the
//! upstream connection to the pool or closes it.

use std::fmt;
use std::io;
use std::net::IpAddr;

use super::spool::{AsyncSink, Spool};
use super::upstream::{ConnectError, Lease, Upstreams};
use crate::config::UpstreamSettings;
use crate::http::{self, Forwarded, RequestHead, ResponseDecoder, ResponseEvent, ResponseHead, ResponseLimits};
use crate::rt::{self, BufResult};

/// Bytes requested from the upstream socket per read.
const UPSTREAM_READ_CHUNK: usize = 64 * 1024;

/// Failure of an upstream exchange. [`ProxyError::status`] maps it to the client's status.
#[derive(Debug)]
pub enum ProxyError {
    /// No upstream server could be connected.
    Connect(ConnectError),
    /// Writing the request failed or timed out, and no response came.
    Send(io::Error),
    /// The upstream sent nothing for the read timeout.
    ReadTimedOut,
    /// Reading the response failed.
    Receive(io::Error),
    /// The response was malformed, truncated or too large.
    Response(http::UpstreamError),
    /// The upstream switched protocols (101) for a request that did not ask to upgrade.
    UnexpectedUpgrade,
    /// A temporary file for the response body could not be written.
    Spool(io::Error),
}

impl ProxyError {
    /// Returns the status sent to the client: 504 when the upstream took the request and did not
    /// respond in time, 502 for everything else, a connect that timed out (a full backlog, say)
    /// included, because the upstream never took the request.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::ReadTimedOut => 504,
            ProxyError::Connect(ConnectError::TimedOut) => 502,
            ProxyError::Connect(ConnectError::Failed(_))
            | ProxyError::Send(_)
            | ProxyError::Receive(_)
            | ProxyError::Response(_)
            | ProxyError::UnexpectedUpgrade
            | ProxyError::Spool(_) => 502,
        }
    }

    /// Returns whether the upstream was too slow rather than gone. A pooled connection that the server
    /// closed fails at once, so a timeout is no reason to send the request again.
    fn is_timeout(&self) -> bool {
        match self {
            ProxyError::ReadTimedOut | ProxyError::Connect(ConnectError::TimedOut) => true,
            ProxyError::Send(err) => err.kind() == io::ErrorKind::TimedOut,
            ProxyError::Connect(ConnectError::Failed(_))
            | ProxyError::Receive(_)
            | ProxyError::Response(_)
            | ProxyError::UnexpectedUpgrade
            | ProxyError::Spool(_) => false,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Connect(err) => write!(f, "connecting to the upstream failed: {err}"),
            ProxyError::Send(err) => write!(f, "sending the request to the upstream failed: {err}"),
            ProxyError::ReadTimedOut => write!(f, "the upstream response timed out"),
            ProxyError::Receive(err) => write!(f, "reading the upstream response failed: {err}"),
            ProxyError::Response(err) => write!(f, "{err}"),
            ProxyError::UnexpectedUpgrade => write!(f, "the upstream sent 101 for a request without Upgrade"),
            ProxyError::Spool(err) => write!(f, "buffering the upstream response in a temporary file failed: {err}"),
        }
    }
}

/// Client facts sent to the upstream in `X-Forwarded-*`.
pub struct ClientFacts<'a> {
    pub ip: IpAddr,
    pub proto: &'static str,
    pub host: &'a str,
}

/// Builds the client facts sent to the upstream. A client inside `trusted_proxies` is itself a
/// proxy, so its X-Forwarded-For is kept and extended. The scheme its X-Forwarded-Proto reports
/// replaces this connection's, because such a proxy may terminate TLS itself. Anyone else's
/// fields are replaced.
pub fn forwarded(settings: &UpstreamSettings, request: &RequestHead, client: &ClientFacts<'_>) -> Forwarded {
    let trusted = settings.trusted_proxies.iter().any(|network| network.contains(client.ip));
    // Repeated field lines form one list (RFC 9110 §5.3), and the nearest proxy's entry is the
    // last, so every line is kept, in order.
    let prior_forwarded_for = trusted
        .then(|| {
            let lines: Vec<_> = request.headers_named("x-forwarded-for").filter(|value| !value.trim_ascii().is_empty()).map(String::from_utf8_lossy).collect();
            (!lines.is_empty()).then(|| lines.join(", "))
        })
        .flatten();
    let proto = trusted.then(|| http::upstream::forwarded_proto(request)).flatten().unwrap_or(client.proto);
    Forwarded {
        client_ip: client.ip,
        proto,
        host: client.host.to_owned(),
        prior_forwarded_for,
        keep_alive: settings.keepalive > 0,
    }
}

/// RFC 9110 §9.2.2: a request with one of these methods may be sent again when a reused
/// connection turns out to be closed, because repeating it has no further effect.
fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
}

/// One request's exchange with an upstream server.
pub struct Exchange {
    lease: Option<Lease>,
    decoder: ResponseDecoder,
    /// Bytes read from the upstream and not yet decoded.
    input: Vec<u8>,
    consumed: usize,
    /// The whole request went out; a connection whose request was cut short is not reused.
    request_sent: bool,
    complete: bool,
}

impl Exchange {
    /// Sends `request` with its whole `body` and reads the response head.
    ///
    /// A request on a pooled connection that the server closed meanwhile is sent again on a new
    /// connection when it is idempotent. Requests that are not idempotent never take a pooled
    /// connection, so they are never sent twice.
    ///
    /// # Errors
    /// A [`ProxyError`] saying which step failed; the connection is already closed then.
    pub async fn start(
        upstreams: &Upstreams,
        limits: ResponseLimits,
        request: &RequestHead,
        body: &Spool,
        client: &ClientFacts<'_>,
    ) -> Result<(Exchange, ResponseHead), ProxyError> {
        let forwarded = forwarded(upstreams.settings(), request, client);
        let body_length = usize::try_from(body.len()).unwrap_or(usize::MAX);
        let mut head = Vec::with_capacity(1024);
        http::write_upstream_request(request, body_length, &forwarded, &mut head);

        let idempotent = is_idempotent(&request.method);
        let mut reuse = idempotent;
        loop {
            let lease = upstreams.acquire(reuse).await.map_err(ProxyError::Connect)?;
            let reused = lease.reused;
            let mut exchange = Exchange {
                lease: Some(lease),
                decoder: ResponseDecoder::new(request.is_head(), limits.clone()),
                input: Vec::with_capacity(UPSTREAM_READ_CHUNK),
                consumed: 0,
                request_sent: false,
                complete: false,
            };
            match exchange.send_and_read_head(upstreams, &head, body).await {
                Ok(response) => return Ok((exchange, response)),
                Err(err) if reused && exchange.nothing_received() && !err.is_timeout() => {
                    tracing::debug!(error = %err, "pooled upstream connection was closed; retrying on a new one");
                    exchange.finish(upstreams);
                    reuse = false;
                }
                Err(err) => {
                    exchange.finish(upstreams);
                    return Err(err);
                }
            }
        }
    }

    fn nothing_received(&self) -> bool {
        self.input.is_empty() && !self.decoder.has_partial_head() && self.decoder.head().is_none()
    }

    fn stream(&mut self) -> Result<&mut super::upstream::UpstreamStream, ProxyError> {
        match self.lease.as_mut() {
            Some(lease) => Ok(&mut lease.stream),
            None => Err(ProxyError::Send(io::Error::from(io::ErrorKind::NotConnected))),
        }
    }

    async fn send_and_read_head(&mut self, upstreams: &Upstreams, head: &[u8], body: &Spool) -> Result<ResponseHead, ProxyError> {
        let timeout = upstreams.settings().send_timeout;
        let sent = rt::timeout(timeout, self.send(head, body)).await;
        let send_error = match sent {
            Some(Ok(())) => {
                self.request_sent = true;
                None
            }
            Some(Err(err)) => Some(err),
            None => Some(io::Error::from(io::ErrorKind::TimedOut)),
        };

        // An upstream may respond before it has read the whole body (a 413 or 401, say) and then
        // close. That response is relayed rather than replaced by a 502.
        let read_timeout = upstreams.settings().read_timeout;
        match self.read_head(read_timeout).await {
            Ok(response) => Ok(response),
            Err(read_error) => match send_error {
                Some(err) => Err(ProxyError::Send(err)),
                None => Err(read_error),
            },
        }
    }

    async fn send(&mut self, head: &[u8], body: &Spool) -> io::Result<()> {
        let stream = self.stream().map_err(|_| io::Error::from(io::ErrorKind::NotConnected))?;
        if !body.is_spilled() {
            let mut message = Vec::with_capacity(head.len() + body.memory.len());
            message.extend_from_slice(head);
            message.extend_from_slice(&body.memory);
            let BufResult(result, _) = stream.write_all(message).await;
            return result;
        }
        let BufResult(result, _) = stream.write_all(head.to_vec()).await;
        result?;
        body.for_each_piece(UpstreamSink { stream }).await
    }

    async fn read_head(&mut self, timeout: std::time::Duration) -> Result<ResponseHead, ProxyError> {
        let mut scratch = Vec::new();
        loop {
            let unread = self.input.get(self.consumed..).unwrap_or_default();
            let (used, event) = self.decoder.decode(unread, &mut scratch).map_err(ProxyError::Response)?;
            self.consumed += used;
            match event {
                ResponseEvent::Head(head) => {
                    if head.status == 101 {
                        return Err(ProxyError::UnexpectedUpgrade);
                    }
                    return Ok(head);
                }
                ResponseEvent::Body | ResponseEvent::Complete => {
                    return Err(ProxyError::Response(http::UpstreamError::Truncated));
                }
                ResponseEvent::NeedMore => {
                    if !self.receive(timeout).await? {
                        self.decoder.finish_on_eof().map_err(ProxyError::Response)?;
                        return Err(ProxyError::Response(http::UpstreamError::Truncated));
                    }
                }
            }
        }
    }

    /// Reads more from the upstream. Returns `false` at its end of stream.
    async fn receive(&mut self, timeout: std::time::Duration) -> Result<bool, ProxyError> {
        if self.consumed > 0 {
            self.input.drain(..self.consumed.min(self.input.len()));
            self.consumed = 0;
        }
        self.input.reserve(UPSTREAM_READ_CHUNK);
        let buffer = std::mem::take(&mut self.input);
        let stream = self.stream()?;
        let Some(BufResult(result, buffer)) = rt::timeout(timeout, stream.append(buffer)).await else {
            return Err(ProxyError::ReadTimedOut);
        };
        self.input = buffer;
        match result {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(err) => Err(ProxyError::Receive(err)),
        }
    }

    /// Appends the next body bytes to `body`. Returns `true` once the body is complete; call it
    /// again while it returns `false`. The read timeout applies between two reads, as nginx's
    /// `proxy_read_timeout` does, so a long response that keeps arriving is not cut off.
    ///
    /// # Errors
    /// A [`ProxyError`] for a timeout, a socket error or a malformed or truncated body.
    pub async fn read_body(&mut self, body: &mut Vec<u8>, timeout: std::time::Duration) -> Result<bool, ProxyError> {
        if self.complete {
            return Ok(true);
        }
        loop {
            let unread = self.input.get(self.consumed..).unwrap_or_default();
            let before = body.len();
            let (used, event) = self.decoder.decode(unread, body).map_err(ProxyError::Response)?;
            self.consumed += used;
            match event {
                ResponseEvent::Complete => {
                    self.complete = true;
                    return Ok(true);
                }
                ResponseEvent::Head(_) => return Err(ProxyError::Response(http::UpstreamError::InvalidStatusLine)),
                ResponseEvent::Body if body.len() > before => return Ok(false),
                ResponseEvent::Body | ResponseEvent::NeedMore => {
                    if !self.receive(timeout).await? {
                        self.decoder.finish_on_eof().map_err(ProxyError::Response)?;
                        self.complete = true;
                        // A body delimited by the close: the connection cannot be reused.
                        self.request_sent = false;
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Hands the upstream connection back: to the pool when the whole exchange finished cleanly
    /// and the server allows keep-alive, otherwise it is closed.
    pub fn finish(mut self, upstreams: &Upstreams) {
        let Some(lease) = self.lease.take() else { return };
        let leftover = self.input.len() > self.consumed;
        let keep_alive = self.decoder.head().is_some_and(|head| head.keep_alive);
        if self.complete && self.request_sent && keep_alive && !leftover {
            upstreams.release(lease, true);
        } else {
            upstreams.discard(lease);
        }
    }
}

struct UpstreamSink<'a> {
    stream: &'a mut super::upstream::UpstreamStream,
}

impl AsyncSink<io::Error> for UpstreamSink<'_> {
    async fn accept(&mut self, piece: Vec<u8>) -> Result<Vec<u8>, io::Error> {
        let BufResult(result, piece) = self.stream.write_all(piece).await;
        result.map(|()| piece)
    }
}

/// Response limits for one exchange, from the configured maximum body size.
pub fn response_limits(max_body_bytes: u64) -> ResponseLimits {
    ResponseLimits { max_body_bytes, ..ResponseLimits::default() }
}

/// Returns whether the upstream requested its response to be streamed to the client as it arrives
/// (nginx's `X-Accel-Buffering: no`, used for server-sent events and long polls).
pub fn wants_streaming(head: &ResponseHead) -> bool {
    head.header("x-accel-buffering").is_some_and(|value| value.eq_ignore_ascii_case(b"no"))
}
