//! Protocol upgrades (WebSocket and other `Upgrade` requests, RFC 9110 §7.8): the request goes to
//! the upstream on a connection of its own; only when the upstream sends 101 does the client
//! get the 101, and from then on bytes are copied both ways until either side closes or both stay
//! silent for `upstream.upgrade_idle_timeout`. Silent means that no read or send completes in
//! either direction and no peer takes bytes already sent to it, so the timeout also ends a relay
//! whose writes are blocked both ways.
//!
//! The two directions run as two futures sharing the client socket and, on HTTPS, the TLS
//! session. Only the upstream-to-client direction writes to the client, so TLS records are never
//! interleaved. Records that reading produced (a session ticket, say) go out with its next write.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::client_io::{ClientIo, RelayTls};
use super::proxy::ProxyError;
use super::tls_session::TlsSessionError;
use super::upstream::{UpstreamStream, Upstreams};
use crate::http::{self, Forwarded, RequestHead, ResponseDecoder, ResponseEvent, ResponseLimits};
use crate::rt::{self, AsyncRead, AsyncWrite, BufResult, IntoInner, IoBuf, Slice, TcpStream};

/// Bytes read per step in each direction of an upgraded connection.
const RELAY_CHUNK: usize = 16 * 1024;

/// Returns the `Upgrade` value when `request` requests a protocol switch: an `Upgrade` header and
/// `upgrade` among the Connection options (RFC 9110 §7.8), on an HTTP/1.1 request without a
/// body. RFC 9110 §7.8 has a server ignore Upgrade in an HTTP/1.0 request, which is then proxied
/// as an ordinary one, without the field.
pub fn requested_upgrade(request: &RequestHead) -> Option<&[u8]> {
    if request.version == http::Version::Http10 {
        return None;
    }
    let upgrade = request.header("upgrade")?;
    let connection_says_upgrade = request.headers_named("connection").any(|value| {
        value.split(|&byte| byte == b',').any(|option| option.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    (connection_says_upgrade && request.framing == http::BodyFraming::Empty).then_some(upgrade)
}

/// Result of an upgrade request.
pub enum UpgradeOutcome {
    /// The upstream switched protocols and the relay ran to its end; the connection is finished.
    Relayed { status: u16, bytes_to_client: u64 },
    /// The upstream declined with an ordinary response, to be sent to the client as usual.
    Declined { head: http::ResponseHead, body: Vec<u8> },
    /// The upstream could not be reached or sent an invalid response. Carries the client's status.
    Failed(u16),
}

/// Sends the upgrade request and, on 101, relays the connection. `pending` contains client bytes
/// already read after the request head, and they go to the upstream first.
pub async fn handle(
    upstreams: &Upstreams,
    io: &mut ClientIo,
    request: &RequestHead,
    upgrade: &[u8],
    forwarded: &Forwarded,
    pending: Vec<u8>,
    date: &[u8],
) -> UpgradeOutcome {
    let settings = upstreams.settings();
    let mut lease = match upstreams.acquire(false).await {
        Ok(lease) => lease,
        Err(err) => {
            tracing::warn!(error = %err, target = %request.target, "upgrade: connecting to the upstream failed");
            return UpgradeOutcome::Failed(ProxyError::Connect(err).status());
        }
    };

    let mut message = Vec::with_capacity(1024);
    http::write_upstream_upgrade_request(request, upgrade, forwarded, &mut message);
    let sent = rt::timeout(settings.send_timeout, lease.stream.write_all(message)).await;
    if !matches!(sent, Some(BufResult(Ok(()), _))) {
        upstreams.discard(lease);
        return UpgradeOutcome::Failed(502);
    }

    // Read the response head; a declined upgrade is an ordinary response with a body.
    let limits = ResponseLimits::default();
    let mut decoder = ResponseDecoder::new(false, limits);
    let mut input: Vec<u8> = Vec::with_capacity(RELAY_CHUNK);
    let mut consumed = 0usize;
    let mut body = Vec::new();
    let mut head = None;
    loop {
        let unread = input.get(consumed..).unwrap_or_default();
        let step = decoder.decode(unread, &mut body);
        let Ok((used, event)) = step else {
            upstreams.discard(lease);
            return UpgradeOutcome::Failed(502);
        };
        consumed += used;
        match event {
            ResponseEvent::Head(parsed) => {
                if parsed.status == 101 {
                    head = Some(parsed);
                    break;
                }
                head = Some(parsed);
            }
            ResponseEvent::Body => {}
            ResponseEvent::Complete => break,
            ResponseEvent::NeedMore => {
                input.drain(..consumed.min(input.len()));
                consumed = 0;
                input.reserve(RELAY_CHUNK);
                let buffer = std::mem::take(&mut input);
                let Some(BufResult(result, buffer)) = rt::timeout(settings.read_timeout, lease.stream.append(buffer)).await else {
                    upstreams.discard(lease);
                    return UpgradeOutcome::Failed(504);
                };
                input = buffer;
                match result {
                    Ok(0) if decoder.finish_on_eof().is_ok() => break,
                    Ok(0) | Err(_) => {
                        upstreams.discard(lease);
                        return UpgradeOutcome::Failed(502);
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    let Some(head) = head else {
        upstreams.discard(lease);
        return UpgradeOutcome::Failed(502);
    };
    if head.status != 101 {
        upstreams.discard(lease);
        return UpgradeOutcome::Declined { head, body };
    }

    // Switched: the client gets the 101, then whatever the upstream sent after it.
    let mut response = Vec::with_capacity(512);
    http::write_client_switching_head(&head, date, &mut response);
    response.extend_from_slice(input.get(consumed..).unwrap_or_default());
    if io.queue(&response).is_err() || io.flush().await.is_err() {
        upstreams.discard(lease);
        return UpgradeOutcome::Relayed { status: 101, bytes_to_client: 0 };
    }

    let (stream, tls) = io.split_for_relay();
    let (bytes_to_client, went_idle) = relay(stream, tls, &lease.stream, pending, settings.upgrade_idle_timeout).await;
    upstreams.discard(lease);
    if went_idle && io.has_unsent_bytes() {
        // The client took nothing for the whole idle timeout. A close_notify would wait behind
        // the bytes it has not taken, and hold the connection for the send timeout.
        io.abandon();
    }
    UpgradeOutcome::Relayed { status: 101, bytes_to_client }
}

/// Copies bytes both ways until a side closes or fails, or the relay is silent for `idle`, also
/// while writes are blocked. Returns the bytes sent to the client, and whether the relay ended
/// because it went silent.
async fn relay(client: &TcpStream, tls: Option<RelayTls<'_>>, upstream: &UpstreamStream, pending: Vec<u8>, idle: Duration) -> (u64, bool) {
    let tls = tls.map(RefCell::new);
    let activity = Activity::new(client, upstream, idle);
    let to_client = Cell::new(0u64);

    let upward = copy_client_to_upstream(client, tls.as_ref(), upstream, pending, &activity);
    let downward = copy_upstream_to_client(client, tls.as_ref(), upstream, &activity, &to_client);
    futures_util::future::select(std::pin::pin!(upward), std::pin::pin!(downward)).await;
    (to_client.get(), activity.went_idle.get())
}

/// Minimum number of idle checks per `upstream.upgrade_idle_timeout`; see
/// [`Activity::until_check`].
const CHECKS_PER_TIMEOUT: u32 = 4;

/// The relay's traffic as both directions see it: when bytes last moved, and how many bytes each
/// socket's peer had not taken yet at the last check.
///
/// Completed reads and sends count as traffic. So does a peer taking bytes out of its socket's
/// send queue, which the unsent count shows (SIOCOUTQ). A client still draining a backlog that
/// ringfront already handed to the kernel thus keeps the relay open. So does a slow reader while
/// a send waits, although the kernel ends the send only once much of the buffer is free.
/// Each completed send takes the count again, so between that and a check only the peer's side
/// changes it. On TCP the count also falls when the peer's kernel acknowledges bytes the
/// application has not read yet, so the first check after a send may credit the peer once for
/// bytes it only buffered. [`Activity::until_check`] keeps that credit small.
struct Activity<'a> {
    last: Cell<Instant>,
    idle: Duration,
    /// Set when an operation gave up because the relay was silent for `idle`.
    went_idle: Cell<bool>,
    client: &'a TcpStream,
    upstream: &'a UpstreamStream,
    /// The unsent count of each socket at the last check or completed send, by [`Peer`].
    client_unsent: Cell<Option<usize>>,
    upstream_unsent: Cell<Option<usize>>,
}

impl<'a> Activity<'a> {
    fn new(client: &'a TcpStream, upstream: &'a UpstreamStream, idle: Duration) -> Activity<'a> {
        let activity = Activity {
            last: Cell::new(Instant::now()),
            idle,
            went_idle: Cell::new(false),
            client,
            upstream,
            client_unsent: Cell::new(None),
            upstream_unsent: Cell::new(None),
        };
        for peer in [Peer::Client, Peer::Upstream] {
            activity.unsent_at_check(peer).set(activity.unsent(peer));
        }
        activity
    }

    /// Returns the bytes that `peer` has not taken yet from its socket.
    fn unsent(&self, peer: Peer) -> Option<usize> {
        match peer {
            Peer::Client => rt::unsent_bytes(rt::raw_fd(self.client)),
            Peer::Upstream => self.upstream.unsent_bytes(),
        }
    }

    /// Returns where the unsent count of `peer`'s socket at the last check is kept.
    fn unsent_at_check(&self, peer: Peer) -> &Cell<Option<usize>> {
        match peer {
            Peer::Client => &self.client_unsent,
            Peer::Upstream => &self.upstream_unsent,
        }
    }

    fn record(&self) {
        self.last.set(Instant::now());
    }

    /// Records a completed send to `peer`, and takes its socket's unsent count afresh.
    fn record_send(&self, peer: Peer) {
        self.record();
        self.unsent_at_check(peer).set(self.unsent(peer));
    }

    /// Returns how long an operation waits before the next check: the rest of the idle timeout
    /// counted from the last traffic, and at most a quarter of the timeout. On TCP the peer's
    /// kernel acknowledges the last bytes sent within moments, and the next check credits that
    /// once as the peer taking bytes. Checking at least four times per timeout places that
    /// credit early, so a silent relay ends within about 1.25 timeouts of its last traffic
    /// instead of two.
    fn until_check(&self) -> Duration {
        self.idle.saturating_sub(self.last.get().elapsed()).min(self.idle / CHECKS_PER_TIMEOUT)
    }

    /// Returns whether the relay has been silent for the idle timeout, after counting what the
    /// peers took from their sockets since the last check.
    fn is_idle(&self) -> bool {
        for peer in [Peer::Client, Peer::Upstream] {
            let now = self.unsent(peer);
            let before = self.unsent_at_check(peer).replace(now);
            if let (Some(now), Some(before)) = (now, before)
                && now < before
            {
                self.record();
            }
        }
        self.last.get().elapsed() >= self.idle
    }
}

/// The side of the relay that a send goes to.
#[derive(Clone, Copy)]
enum Peer {
    Client,
    Upstream,
}

/// Runs a relay read or write to completion, or returns `None` once [`Activity::is_idle`] is
/// true at one of the checks that [`Activity::until_check`] times. After each check the same
/// operation goes on. A write started again would send its first bytes twice, and a read dropped
/// and started again could lose what arrived while its cancellation was under way. Without the
/// check on writes, a client and an upstream that both write and never read would block both
/// directions forever.
async fn unless_idle<F: Future>(operation: F, activity: &Activity<'_>) -> Option<F::Output> {
    let mut operation = std::pin::pin!(operation);
    loop {
        if let Some(output) = rt::timeout(activity.until_check(), operation.as_mut()).await {
            return Some(output);
        }
        if activity.is_idle() {
            activity.went_idle.set(true);
            return None;
        }
    }
}

/// Writes all of `bytes` to `peer` with one `send` after another, each under [`unless_idle`],
/// and records each completed send as traffic. Returns `false` when a send fails or moves
/// nothing, or when the relay went idle while one waited.
async fn write_all_unless_idle<S, F>(mut bytes: Vec<u8>, peer: Peer, activity: &Activity<'_>, mut send: S) -> bool
where
    S: FnMut(Slice<Vec<u8>>) -> F,
    F: Future<Output = BufResult<usize, Slice<Vec<u8>>>>,
{
    let mut written = 0;
    while written < bytes.len() {
        let Some(BufResult(result, piece)) = unless_idle(send(bytes.slice(written..)), activity).await else {
            return false;
        };
        bytes = piece.into_inner();
        match result {
            Ok(0) | Err(_) => return false,
            Ok(count) => {
                written += count;
                activity.record_send(peer);
            }
        }
    }
    true
}

async fn copy_client_to_upstream(
    client: &TcpStream,
    tls: Option<&RefCell<RelayTls<'_>>>,
    upstream: &UpstreamStream,
    pending: Vec<u8>,
    activity: &Activity<'_>,
) {
    if !pending.is_empty() && !write_upstream(upstream, pending, activity).await {
        return;
    }
    // The client's close_notify, or a bad record, may have come with the upgrade request, before
    // the relay began.
    if tls.is_some_and(|session| session.borrow().session.is_peer_closed()) || end_at_deferred_fault(tls) {
        return;
    }
    loop {
        let mut reader = client;
        let Some(BufResult(result, received)) = unless_idle(reader.read(Vec::with_capacity(RELAY_CHUNK)), activity).await else {
            return;
        };
        activity.record();
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (plaintext, client_closed) = match &tls {
            None => (received, false),
            Some(session) => match decrypt(&mut session.borrow_mut(), &received) {
                Ok(decrypted) => decrypted,
                Err(err) => {
                    tracing::debug!(error = %err, "upgraded TLS connection ended");
                    return;
                }
            },
        };
        if !plaintext.is_empty() && !write_upstream(upstream, plaintext, activity).await {
            return;
        }
        // The data that came with the client's close_notify went upstream, and nothing follows.
        if client_closed || end_at_deferred_fault(tls) {
            return;
        }
    }
}

/// Ends the session when a bad record came behind the plaintext relayed so far (see
/// [`TlsSession::has_deferred_fault`](super::tls_session::TlsSession::has_deferred_fault)), and
/// returns whether it did. The record's alert stays in `outgoing`, which goes out when the
/// connection closes.
fn end_at_deferred_fault(tls: Option<&RefCell<RelayTls<'_>>>) -> bool {
    let Some(session) = tls else { return false };
    let mut session = session.borrow_mut();
    if !session.session.has_deferred_fault() {
        return false;
    }
    if let Err(err) = decrypt(&mut session, &[]) {
        tracing::debug!(error = %err, "upgraded TLS connection ended");
    }
    true
}

async fn copy_upstream_to_client(
    client: &TcpStream,
    tls: Option<&RefCell<RelayTls<'_>>>,
    upstream: &UpstreamStream,
    activity: &Activity<'_>,
    sent: &Cell<u64>,
) {
    loop {
        let Some(BufResult(result, received)) = unless_idle(upstream.read_shared(Vec::with_capacity(RELAY_CHUNK)), activity).await else {
            return;
        };
        activity.record();
        let count = match result {
            Ok(0) | Err(_) => return,
            Ok(count) => count,
        };
        sent.set(sent.get() + count as u64);
        let bytes = match &tls {
            None => received,
            Some(session) => match encrypt(&mut session.borrow_mut(), &received) {
                Ok(records) => records,
                Err(_) => return,
            },
        };
        let send = |piece| {
            let mut writer = client;
            async move { writer.write(piece).await }
        };
        if !write_all_unless_idle(bytes, Peer::Client, activity, send).await {
            return;
        }
    }
}

async fn write_upstream(upstream: &UpstreamStream, bytes: Vec<u8>, activity: &Activity<'_>) -> bool {
    write_all_unless_idle(bytes, Peer::Upstream, activity, |piece| upstream.write_shared(piece)).await
}

/// Feeds ciphertext to the session and returns the plaintext it yields, and whether the client
/// sent close_notify. Records the session produces stay in `tls.outgoing` for the next write to
/// the client.
fn decrypt(tls: &mut RelayTls<'_>, ciphertext: &[u8]) -> Result<(Vec<u8>, bool), TlsSessionError> {
    tls.incoming.extend_from_slice(ciphertext);
    let mut plaintext = Vec::new();
    tls.session.process(tls.incoming, &mut plaintext, tls.outgoing)?;
    Ok((plaintext, tls.session.is_peer_closed()))
}

/// Encrypts `plaintext` into TLS records, after any records the session had queued.
fn encrypt(tls: &mut RelayTls<'_>, plaintext: &[u8]) -> Result<Vec<u8>, TlsSessionError> {
    let mut records = std::mem::take(tls.outgoing);
    tls.session.encrypt(tls.incoming, &[plaintext], &mut records)?;
    Ok(records)
}
