//! One client connection: reads requests through the sans-I/O decoder, routes each whole request
//! to the redirect, the static files or the upstream, and writes the responses in request order.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client_io::{ClientIo, StreamError};
use super::proxy::{self, Exchange};
use super::spool::Spool;
use super::tls_session::{TlsSession, TlsSessionError};
use super::upgrade::{self, UpgradeOutcome};
use super::worker::{ConnectionHandle, ListenerKind, WorkerContext};
use crate::files::{CacheKey, FileBody, Outcome, StaticTarget};
use crate::http::{self, BodyFraming, Event, RequestDecoder, RequestHead, ResponseFraming, ResponseHead, Version};
use crate::rt::{self, SharedBytes, TcpStream};

use super::access_log::Entry;

/// Request body bytes kept in memory when no upstream is configured (such bodies are read and
/// dropped: the redirect and static routes do not use them).
const DEFAULT_BODY_BUFFER_BYTES: usize = 64 * 1024;

/// Path of the panicking route of debug builds, enabled by the `RINGFRONT_TEST_PANIC_ROUTE`
/// environment variable.
#[cfg(debug_assertions)]
const TEST_PANIC_PATH: &str = "/__ringfront_test/panic";

/// Body of the redirect listener's 301, for clients that show it.
const REDIRECT_BODY: &str = "<html><head><title>301 Moved Permanently</title></head><body><h1>301 Moved Permanently</h1></body></html>\n";
const REDIRECT_BODY_LENGTH: &str = "106";

/// How long a TLS handshake still in progress when the server stops may go on (within its own
/// `timeouts.handshake`).
const HANDSHAKE_AT_STOP: Duration = Duration::from_secs(1);

/// Output bytes queued before the connection flushes instead of handling more pipelined requests.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Serves one accepted connection until it closes.
pub async fn serve(context: Rc<WorkerContext>, stream: TcpStream, peer: SocketAddr, kind: ListenerKind, handle: ConnectionHandle) {
    let Some(mut parked) = Parked::open(context, stream, peer, kind, handle) else { return };
    if parked.io.is_tls() {
        // Boxed, like the other rare paths, so that the future every idle connection keeps is
        // not sized by the handshake.
        let deadline = Instant::now() + parked.context.shared.config.timeouts.handshake;
        match Box::pin(handshake_until_stop(&mut parked.io, &parked.context, deadline)).await {
            Some(Ok(())) => {}
            Some(Err(err)) => {
                Box::pin(close_failed_handshake(parked.io, &parked.context, err)).await;
                return;
            }
            None => {
                tracing::debug!("closing a connection in its TLS handshake: the server stops");
                Box::pin(parked.io.close(false)).await;
                return;
            }
        }
    }
    let mut woken = None;
    loop {
        // Boxed: the request loop's future is most of a busy connection's memory, and a
        // parked connection frees it.
        let Some((idle_parts, mut idle)) = Box::pin(Connection::resume(parked, woken.take()).run()).await else { return };
        parked = idle_parts;
        match parked.wait(&mut idle).await {
            Some(received) => woken = Some((received, idle.deadline)),
            None => {
                // The receive goes first, so that the close does not race it for the socket.
                drop(idle);
                Box::pin(parked.io.close(false)).await;
                return;
            }
        }
    }
}

/// Runs the TLS handshake until `deadline`. `None` when the server stopped first and the
/// handshake did not finish within [`HANDSHAKE_AT_STOP`] after that. A client still in the
/// handshake has sent no request yet, and the extra time lets a request sent right behind the
/// handshake be served. A silent client still does not hold the exit for the grace period.
async fn handshake_until_stop(io: &mut ClientIo, context: &WorkerContext, deadline: Instant) -> Option<Result<(), StreamError>> {
    let mut handshake = std::pin::pin!(io.handshake(deadline));
    let stop = std::pin::pin!(context.shutdown.wait());
    match futures_util::future::select(handshake.as_mut(), stop).await {
        futures_util::future::Either::Left((result, _)) => Some(result),
        futures_util::future::Either::Right(_) => rt::timeout(HANDSHAKE_AT_STOP, handshake).await,
    }
}

/// Ends an idle wait's receive with [`ClientIo::end_idle_receive`]. Debug builds first pause for
/// `RINGFRONT_TEST_IDLE_END_DELAY_MS` when it is set, so that tests can send a request into the
/// receive that is about to end.
async fn end_idle_receive(context: &WorkerContext, io: &mut ClientIo, receive: &mut rt::OwnedReceive) -> Option<rt::Received> {
    #[cfg(debug_assertions)]
    if let Some(delay) = context.shared.test_idle_end_delay {
        Box::pin(rt::sleep(delay)).await;
    }
    #[cfg(not(debug_assertions))]
    let _ = context;
    io.end_idle_receive(receive).await
}

/// How long a keep-alive connection waits for its next request in the request loop before it
/// parks: it gives up the request loop's future (3 KiB, see `connection_futures_stay_small`)
/// and its request decoder, and waits in the small future of [`serve`], with its socket, TLS
/// session and in-flight receive. Waking from there costs one allocation of that future and a
/// new decoder, so the wait is long enough that a client sending requests back to back never
/// parks.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// A keep-alive connection waiting for its next request outside the request loop (see
/// [`PARK_AFTER`]). Holds what the connection keeps between requests.
struct Parked {
    context: Rc<WorkerContext>,
    io: ClientIo,
    peer: SocketAddr,
    local: SocketAddr,
    kind: ListenerKind,
    handle: ConnectionHandle,
}

impl Parked {
    /// Sets up a new connection, with a TLS session on the HTTPS listener. `None` when rustls
    /// cannot make a session.
    fn open(context: Rc<WorkerContext>, stream: TcpStream, peer: SocketAddr, kind: ListenerKind, handle: ConnectionHandle) -> Option<Parked> {
        let tls = match kind {
            ListenerKind::Https => match TlsSession::new(Arc::clone(context.shared.tls())) {
                Ok(session) => Some(session),
                Err(err) => {
                    tracing::error!(error = %err, "cannot create a TLS session");
                    return None;
                }
            },
            ListenerKind::Redirect | ListenerKind::Http => None,
        };
        let local = stream.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let io = ClientIo::new(stream, tls, context.shared.config.timeouts.send, Rc::clone(&context.spare_buffers));
        Some(Parked { context, io, peer, local, kind, handle })
    }

    /// Waits for the first bytes of the next request. `None` when the idle time ends, the
    /// worker stops, the connection is evicted or the receive fails: the connection is then
    /// closed, as from the request loop's idle wait. A request that arrives just as the wait
    /// ends is still returned, to be served with `Connection: close` (see
    /// [`ClientIo::end_idle_receive`]).
    async fn wait(&mut self, idle: &mut IdleWait) -> Option<rt::Received> {
        self.io.release_tls_keys();
        {
            let received = std::pin::pin!(self.io.wait_for(&mut idle.receive, idle.deadline));
            let stop = std::pin::pin!(futures_util::future::select(self.context.shutdown.wait(), self.handle.evict.wait()));
            match futures_util::future::select(received, stop).await {
                futures_util::future::Either::Left((Some(Ok(received)), _)) => return Some(received),
                futures_util::future::Either::Left((Some(Err(_)), _)) => return None,
                futures_util::future::Either::Left((None, _)) | futures_util::future::Either::Right(_) => {}
            }
        }
        end_idle_receive(&self.context, &mut self.io, &mut idle.receive).await
    }
}

/// The wait of a parked connection.
struct IdleWait {
    /// The receive started when the connection went idle, still in flight.
    receive: rt::OwnedReceive,
    /// When the connection's idle time ends.
    deadline: Instant,
}

/// Closes a connection whose TLS handshake failed. A client that spoke plain HTTP to the TLS port
/// gets a 400 first. Boxed by the caller, like the handshake, so that these rare awaits do not
/// size the future that every connection keeps.
async fn close_failed_handshake(mut io: ClientIo, context: &WorkerContext, err: StreamError) {
    match err {
        StreamError::PlainHttpOnTls => {
            tracing::debug!("plain HTTP on the TLS port");
            io.downgrade_to_plain();
            let mut out = Vec::with_capacity(256);
            let date = context.date();
            http::error_response(400, true, &date, &mut out);
            if io.queue(&out).is_ok() && io.flush().await.is_ok() {
                io.close(true).await;
            }
        }
        StreamError::TimedOut => {
            tracing::debug!("TLS handshake timed out");
            io.close(false).await;
        }
        // Not the client's fault: rustls completed the handshake but its keys could not be used.
        StreamError::Tls(err @ TlsSessionError::HandOver(_)) => {
            tracing::error!(error = %err, "TLS session setup failed after the handshake");
            io.close(false).await;
        }
        err => {
            tracing::debug!(error = %err, "TLS handshake failed");
            io.close(false).await;
        }
    }
}

/// Runs the load that [`StaticFiles::respond`](crate::files::StaticFiles::respond) requested,
/// or waits for the load of the same path that another request runs, and returns the outcome
/// of `respond` after it (`respond_after_wait` after a wait). `None` when the load panicked.
/// Boxed by the caller: a cache miss is rare, and its state would otherwise enlarge every
/// connection's request loop.
async fn load_static(context: &Rc<WorkerContext>, target: &StaticTarget<'_>, request: &RequestHead, mut outcome: Outcome) -> Option<Outcome> {
    loop {
        match outcome {
            Outcome::Response(_) => return Some(outcome),
            Outcome::Wait(wait) => {
                wait.wait().await;
                outcome = context.files.borrow_mut().respond_after_wait(target, request, Instant::now());
            }
            Outcome::Load(job) => {
                let mut in_flight = LoadInFlight { context: Rc::clone(context), key: Some(job.key.clone()) };
                // The load's log lines belong to the connection's span, which names the worker.
                let span = tracing::Span::current();
                let loaded = rt::spawn_blocking(move || span.in_scope(|| job.run())).await?;
                let mut files = context.files.borrow_mut();
                files.insert(loaded);
                in_flight.key = None;
                return Some(files.respond(target, request, Instant::now()));
            }
        }
    }
}

/// A static file load in flight. It may be dropped before its result is stored, because the job
/// panicked or the connection ended while it ran. The drop then ends the load without a result
/// and wakes the requests waiting for it, so that one of them loads the path.
struct LoadInFlight {
    context: Rc<WorkerContext>,
    key: Option<CacheKey>,
}

impl Drop for LoadInFlight {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        if let Ok(mut files) = self.context.files.try_borrow_mut() {
            files.abandon_load(&key);
        }
    }
}

struct Connection {
    context: Rc<WorkerContext>,
    io: ClientIo,
    peer: SocketAddr,
    /// The address the connection came in on.
    local: SocketAddr,
    kind: ListenerKind,
    /// Plaintext received and not yet consumed by the decoder.
    input: Vec<u8>,
    decoder: RequestDecoder,
    /// Body of the request being read, after chunked decoding.
    body: Spool,
    handle: ConnectionHandle,
    /// When the current request head or body must be complete.
    deadline: Option<Instant>,
    /// A buffer reused for response heads.
    scratch: Vec<u8>,
    /// The bytes that woke a parked connection.
    woken: Option<rt::Received>,
    /// When the idle wait in progress ends. It stays while the client sends TLS records without
    /// request bytes (a key update, an empty record), so that these do not lengthen the wait.
    idle_deadline: Option<Instant>,
    /// The idle wait the request loop hands over when the connection parks.
    parking: Option<IdleWait>,
}

/// Where the connection is between requests, which decides the read timeout and how an end of
/// stream is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPhase {
    /// Between requests: an end of stream is a normal close.
    Idle,
    /// Inside a request head.
    Head,
    /// Inside a request body.
    Body,
}

/// The way the request loop ends.
enum Close {
    /// Close now; the client is not expected to send more.
    Quiet,
    /// Close after draining what the client may still be sending, so our last response is not
    /// destroyed by a reset.
    Linger,
    /// Stay open, parked: idle for [`PARK_AFTER`] with time left before the idle timeout.
    Park,
}

impl Connection {
    fn limits(&self) -> http::Limits {
        let limits = &self.context.shared.config.limits;
        http::Limits {
            max_head_bytes: limits.max_head_bytes,
            max_headers: limits.max_headers,
            max_uri_bytes: limits.max_uri_bytes,
            max_body_bytes: limits.max_body_bytes,
            ..http::Limits::default()
        }
    }

    /// Builds the request loop's state around what a connection keeps between requests, and
    /// the bytes that woke it with the end of its idle wait.
    fn resume(parked: Parked, woken: Option<(rt::Received, Instant)>) -> Connection {
        let (woken, idle_deadline) = woken.unzip();
        let Parked { context, io, peer, local, kind, handle } = parked;
        let body_buffer_bytes = context.shared.config.upstream.as_ref().map_or(DEFAULT_BODY_BUFFER_BYTES, |upstream| upstream.buffer_bytes);
        let mut connection = Connection {
            context,
            io,
            peer,
            local,
            kind,
            input: Vec::new(),
            decoder: RequestDecoder::new(http::Limits::default()),
            body: Spool::new(body_buffer_bytes),
            handle,
            deadline: None,
            scratch: Vec::new(),
            woken,
            idle_deadline,
            parking: None,
        };
        connection.decoder = RequestDecoder::new(connection.limits());
        connection
    }

    /// Runs the request loop. Closes the connection and returns `None` when it ends, or returns
    /// what the connection keeps, with its idle wait, when it parks.
    async fn run(mut self) -> Option<(Parked, IdleWait)> {
        let linger = match self.request_loop().await {
            Ok(Close::Quiet) => false,
            Ok(Close::Linger) => true,
            Ok(Close::Park) => {
                let Connection { context, io, peer, local, kind, handle, parking, .. } = self;
                let wait = parking?;
                return Some((Parked { context, io, peer, local, kind, handle }, wait));
            }
            Err(err) => {
                tracing::debug!(error = %err, "connection ended");
                // A bad TLS record can arrive behind requests that were served, with more
                // bytes after it. Closing with those unread would reset the connection and
                // destroy the responses the client has not read yet.
                matches!(err, StreamError::Tls(_))
            }
        };
        self.parking = None;
        Box::pin(self.io.close(linger)).await;
        None
    }

    async fn request_loop(&mut self) -> Result<Close, StreamError> {
        let mut consumed = 0usize;
        let mut head: Option<RequestHead> = None;
        // When the current request's first bytes were read, or when it began to be decoded if
        // it was pipelined: the start of the access log's request time, as in nginx.
        let mut started = Instant::now();

        loop {
            let unread = self.input.get(consumed..).unwrap_or_default();
            let (used, event) = match self.decoder.decode(unread, &mut self.body.memory) {
                Ok(step) => step,
                Err(err) => {
                    tracing::debug!(reason = err.reason(), status = err.status(), "request rejected");
                    let rejected = self.rejected_line(head.as_ref(), unread);
                    Box::pin(self.send_error(err.status(), head.as_ref(), rejected, started)).await?;
                    return Ok(Close::Linger);
                }
            };
            consumed += used;

            match event {
                Event::Head(parsed) => {
                    // The body's own deadline starts now.
                    self.deadline = None;
                    // With the read side shut, only a body already in the socket could be read,
                    // so the client is not invited to send one.
                    if parsed.expect_continue && parsed.framing != BodyFraming::Empty && consumed >= self.input.len() && !self.io.is_read_shut() {
                        // RFC 9110 §10.1.1: the client waits for this before sending the body.
                        self.io.queue(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                        self.io.flush().await?;
                    }
                    head = Some(parsed);
                }
                Event::Body => {
                    if let Err(err) = self.body.spill_if_full(&self.temp_dir()).await {
                        tracing::error!(error = %err, "cannot buffer a request body in a temporary file");
                        Box::pin(self.send_error(500, head.as_ref(), None, started)).await?;
                        return Ok(Close::Linger);
                    }
                }
                Event::Complete => {
                    let Some(request) = head.take() else {
                        tracing::error!("decoder completed a request without a head");
                        return Ok(Close::Quiet);
                    };
                    if self.kind != ListenerKind::Redirect
                        && upgrade::requested_upgrade(&request).is_some()
                        && self.context.files.borrow().route_for(request.path()).is_none()
                    {
                        if self.io.is_read_shut() {
                            // The relay could not read from the client, so the upgrade is rejected.
                            Box::pin(self.send_error(503, Some(&request), None, started)).await?;
                            return Ok(Close::Linger);
                        }
                        let pending = self.input.get(consumed..).unwrap_or_default().to_vec();
                        return match Box::pin(self.serve_upgrade(&request, pending, started)).await? {
                            true => Ok(Close::Quiet),
                            false => Ok(Close::Linger),
                        };
                    }
                    let keep_alive = self.respond(&request, started).await?;
                    self.handle.activity.served.set(true);
                    self.decoder.recycle(request);
                    self.decoder.reset();
                    self.body.clear();
                    self.deadline = None;
                    if !keep_alive {
                        self.io.flush().await?;
                        return Ok(Close::Linger);
                    }
                    if consumed < self.input.len() {
                        // A pipelined request starts now; one read from idle sets `started` below.
                        started = Instant::now();
                    }
                    if self.io.pending() >= FLUSH_THRESHOLD {
                        self.io.flush().await?;
                    }
                }
                Event::NeedMore => {
                    self.input.drain(..consumed.min(self.input.len()));
                    consumed = 0;
                    self.io.flush().await?;

                    let phase = match (&head, self.input.is_empty()) {
                        (Some(_), _) => ReadPhase::Body,
                        (None, true) => ReadPhase::Idle,
                        (None, false) => ReadPhase::Head,
                    };
                    // During shutdown an idle connection closes, but a request already in its
                    // socket is served first, as one that woke a parked connection is: a new
                    // connection may have sent its first request just as the server stopped.
                    if phase == ReadPhase::Idle && self.context.shutdown.is_started() && self.woken.is_none() && !self.io.has_buffered_input() {
                        let mut receive = self.io.start_idle_receive();
                        match self.io.end_idle_receive(&mut receive).await {
                            Some(received) => self.woken = Some(received),
                            None => return Ok(Close::Quiet),
                        }
                    }
                    if phase == ReadPhase::Idle {
                        self.release_idle_memory();
                    }
                    match self.read_more(phase).await {
                        ReadOutcome::Data => {
                            if phase == ReadPhase::Idle {
                                started = Instant::now();
                                self.idle_deadline = None;
                            }
                        }
                        ReadOutcome::End if self.io.is_read_shut() && (phase != ReadPhase::Idle || self.io.has_partial_record()) => {
                            // The read side was shut with only part of this request in, perhaps
                            // part of its TLS record (see `ClientIo::end_idle_receive`), so the
                            // rest cannot arrive any more.
                            let rejected = self.rejected_line(head.as_ref(), &self.input);
                            Box::pin(self.send_error(408, head.as_ref(), rejected, started)).await?;
                            return Ok(Close::Linger);
                        }
                        // Bytes the client sent after its close_notify are ignored and may still
                        // be in the socket, where they would make the close a reset.
                        ReadOutcome::End if self.io.is_tls_peer_closed() => return Ok(Close::Linger),
                        ReadOutcome::End => return Ok(Close::Quiet),
                        ReadOutcome::Park => return Ok(Close::Park),
                        ReadOutcome::TimedOut => {
                            if phase == ReadPhase::Idle {
                                return Ok(Close::Quiet);
                            }
                            // RFC 9110 §15.5.9: tell the client why the connection goes away.
                            let rejected = self.rejected_line(head.as_ref(), &self.input);
                            Box::pin(self.send_error(408, head.as_ref(), rejected, started)).await?;
                            return Ok(Close::Linger);
                        }
                        ReadOutcome::Failed(err) => return Err(err),
                    }
                }
            }
        }
    }

    async fn read_more(&mut self, phase: ReadPhase) -> ReadOutcome {
        let timeouts = &self.context.shared.config.timeouts;
        let now = Instant::now();
        // The head has one deadline, counted from its first byte. The body has one counted from
        // the end of the head, and each read of it also has `body_read`.
        let limit = match phase {
            // A new connection gets `request_head` for its first request, as nginx's
            // client_header_timeout, so a client that connects and sends nothing is not kept for
            // the whole keep-alive time.
            ReadPhase::Idle if !self.handle.activity.served.get() => {
                self.deadline = None;
                timeouts.request_head
            }
            ReadPhase::Idle => {
                self.deadline = None;
                timeouts.keepalive
            }
            ReadPhase::Head => {
                let deadline = *self.deadline.get_or_insert(now + timeouts.request_head);
                deadline.saturating_duration_since(now)
            }
            ReadPhase::Body => {
                let deadline = *self.deadline.get_or_insert(now + timeouts.request_body);
                deadline.saturating_duration_since(now).min(timeouts.body_read)
            }
        };

        let read = if phase == ReadPhase::Idle && !self.io.has_buffered_input() {
            let idle_deadline = *self.idle_deadline.get_or_insert(now + limit);
            let mut wait_start = now;
            loop {
                match self.wait_idle(wait_start, idle_deadline).await {
                    // Bytes are here. When they start a request, the rest of its head, including
                    // the rest of a TLS record, has `request_head` from now.
                    Ok(received) => {
                        // The head's deadline starts now, and the reads of the head's later
                        // parts keep it (`ReadPhase::Head` above).
                        let deadline = Instant::now() + self.context.shared.config.timeouts.request_head;
                        self.deadline = Some(deadline);
                        match self.io.read_received(received, &mut self.input, deadline).await {
                            Ok(Some(read)) => break Ok(read),
                            Ok(None) => {
                                self.deadline = None;
                                self.release_idle_memory();
                                wait_start = Instant::now();
                            }
                            Err(err) => break Err(err),
                        }
                    }
                    Err(outcome) => return outcome,
                }
            }
        } else {
            self.io.read(&mut self.input, now + limit).await
        };
        match read {
            Ok(0) => ReadOutcome::End,
            Ok(_) => ReadOutcome::Data,
            Err(StreamError::TimedOut) => ReadOutcome::TimedOut,
            Err(StreamError::Closed) => ReadOutcome::End,
            Err(err) => ReadOutcome::Failed(err),
        }
    }

    /// Waits for the first bytes of the next request, at most until `deadline`, and returns
    /// them. Ends with `Park` when [`PARK_AFTER`] passes first, leaving the receive in flight in
    /// `self.parking`. A connection resumed from parking gets the bytes that woke it. When the
    /// wait ends without parking, a request that arrived just then is still returned (see
    /// [`ClientIo::end_idle_receive`]).
    async fn wait_idle(&mut self, now: Instant, deadline: Instant) -> Result<rt::Received, ReadOutcome> {
        if let Some(woken) = self.woken.take() {
            self.handle.activity.idle_since.set(None);
            return Ok(woken);
        }
        // A reload retired this connection's configuration while it sent a response with
        // keep-alive. The wait then ends as for an eviction, which still serves a request
        // already on its way.
        if self.context.retired.get() && self.handle.activity.served.get() {
            self.handle.evict.start();
        }
        self.handle.activity.idle_since.set(Some(now));
        let mut receive = self.io.start_idle_receive();
        let park_at = now + PARK_AFTER;
        let parks = park_at < deadline;
        let ended = {
            let wait = std::pin::pin!(self.io.wait_for(&mut receive, if parks { park_at } else { deadline }));
            let stop = std::pin::pin!(futures_util::future::select(self.context.shutdown.wait(), self.handle.evict.wait()));
            match futures_util::future::select(wait, stop).await {
                futures_util::future::Either::Left((Some(Ok(received)), _)) => {
                    self.handle.activity.idle_since.set(None);
                    return Ok(received);
                }
                futures_util::future::Either::Left((Some(Err(err)), _)) => return Err(ReadOutcome::Failed(StreamError::Io(err))),
                futures_util::future::Either::Left((None, _)) if parks => None,
                futures_util::future::Either::Left((None, _)) => Some(ReadOutcome::TimedOut),
                futures_util::future::Either::Right(_) => Some(ReadOutcome::End),
            }
        };
        let Some(ended) = ended else {
            tracing::debug!("idle; parking the connection");
            self.parking = Some(IdleWait { receive, deadline });
            return Err(ReadOutcome::Park);
        };
        match end_idle_receive(&self.context, &mut self.io, &mut receive).await {
            Some(received) => {
                self.handle.activity.idle_since.set(None);
                Ok(received)
            }
            None => Err(ended),
        }
    }

    /// Sends the response to one whole request. Returns whether the connection stays open.
    async fn respond(&mut self, request: &RequestHead, started: Instant) -> Result<bool, StreamError> {
        let keep_alive = request.keep_alive && !self.context.shutdown.is_started() && !self.context.retired.get() && !self.io.is_read_shut();
        // Debug builds only, and only when the environment variable is set: proves that a panic in
        // one connection's task is logged with its span and leaves the worker serving.
        #[cfg(debug_assertions)]
        if self.context.shared.test_panic_route && request.path() == TEST_PANIC_PATH {
            panic!("deliberate panic for {TEST_PANIC_PATH}");
        }
        if self.kind == ListenerKind::Redirect {
            return self.send_redirect(request, keep_alive, started);
        }
        let route = self.context.files.borrow().route_for(request.path());
        match route {
            Some(route) => self.serve_static(route, request, keep_alive, started).await,
            None => Box::pin(self.serve_proxy(request, keep_alive, started)).await,
        }
    }

    /// Queues the 301 of the redirect listener, written straight into the output buffer: this
    /// listener serves nothing else, so its one response is kept free of allocations.
    fn send_redirect(&mut self, request: &RequestHead, keep_alive: bool, started: Instant) -> Result<bool, StreamError> {
        let date = self.context.date();
        let head = &mut self.scratch;
        head.clear();
        head.extend_from_slice(b"HTTP/1.1 301 Moved Permanently\r\nDate: ");
        head.extend_from_slice(&date);
        head.extend_from_slice(b"\r\nServer: ringfront\r\nLocation: ");
        self.context.shared.write_redirect_location(request, head);
        head.extend_from_slice(b"\r\nContent-Type: text/html\r\nContent-Length: ");
        head.extend_from_slice(REDIRECT_BODY_LENGTH.as_bytes());
        if let Some(connection) = http::connection_field(keep_alive, request.version) {
            head.extend_from_slice(b"\r\nConnection: ");
            head.extend_from_slice(connection);
        }
        head.extend_from_slice(b"\r\n\r\n");
        let body_bytes = if request.is_head() { 0 } else { REDIRECT_BODY.len() };
        if body_bytes > 0 {
            head.extend_from_slice(REDIRECT_BODY.as_bytes());
        }
        let head = std::mem::take(&mut self.scratch);
        let queued = self.io.queue(&head);
        self.scratch = head;
        queued?;
        self.log(request, 301, body_bytes as u64, &date, started);
        Ok(keep_alive)
    }

    /// Returns the host the client addressed: its Host header, or for an HTTP/1.0 request without one
    /// the first configured server name, else the address the connection came in on.
    fn request_host(&self, request: &RequestHead) -> String {
        if let Some(host) = request.header("host").filter(|host| !host.is_empty()) {
            return String::from_utf8_lossy(host).into_owned();
        }
        let names = self.context.shared.config.https.as_ref().map(|https| https.server_names.as_slice());
        match names.and_then(<[String]>::first) {
            Some(name) => name.clone(),
            None => self.local.to_string(),
        }
    }

    /// Gives the buffers of the last request to the worker's spare list, or frees them when they
    /// grew large, before the connection waits for the next request. The input is empty here.
    fn release_idle_memory(&mut self) {
        self.io.spare_buffers().give(std::mem::take(&mut self.input));
        self.body.clear();
        self.io.shrink_idle_buffers();
    }

    fn temp_dir(&self) -> std::path::PathBuf {
        self.context.shared.config.upstream.as_ref().map_or_else(std::env::temp_dir, |upstream| upstream.temp_dir.clone())
    }

    async fn serve_proxy(&mut self, request: &RequestHead, keep_alive: bool, started: Instant) -> Result<bool, StreamError> {
        let context = Rc::clone(&self.context);
        let Some(upstreams) = context.upstreams.as_ref() else {
            return self.send_reply(request, self.error_reply(404), keep_alive, started).await;
        };
        let host = self.request_host(request);
        let client = proxy::ClientFacts { ip: self.peer.ip(), proto: self.kind.scheme(), host: &host };
        let limits = proxy::response_limits(context.shared.config.limits.max_response_bytes);
        let (mut exchange, head) = match Exchange::start(upstreams, limits, request, &self.body, &client).await {
            Ok(started_exchange) => started_exchange,
            Err(err) => {
                tracing::warn!(error = %err, target = %request.target, "upstream request failed");
                return self.send_reply(request, self.error_reply(err.status()), keep_alive, started).await;
            }
        };

        let read_timeout = upstreams.settings().read_timeout;
        if proxy::wants_streaming(&head) && !request.is_head() {
            let result = self.stream_response(&mut exchange, &head, keep_alive, read_timeout, request, started).await;
            exchange.finish(upstreams);
            return result;
        }

        // Read the whole body before the client gets a byte, spilling to a file past the buffer.
        let mut body = Spool::new(upstreams.settings().buffer_bytes);
        let temp_dir = upstreams.settings().temp_dir.clone();
        loop {
            match exchange.read_body(&mut body.memory, read_timeout).await {
                Ok(true) => break,
                Ok(false) => {
                    if let Err(err) = body.spill_if_full(&temp_dir).await {
                        let err = proxy::ProxyError::Spool(err);
                        tracing::error!(error = %err, target = %request.target, "upstream response not buffered");
                        exchange.finish(upstreams);
                        return self.send_reply(request, self.error_reply(err.status()), keep_alive, started).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, target = %request.target, status = head.status, "upstream response failed");
                    exchange.finish(upstreams);
                    return self.send_reply(request, self.error_reply(err.status()), keep_alive, started).await;
                }
            }
        }
        exchange.finish(upstreams);

        // Shutdown may have started while the upstream worked, so this response must close.
        let keep_alive = keep_alive && !self.context.shutdown.is_started() && !self.context.retired.get();
        let date = self.context.date();
        // A response to HEAD keeps the length the upstream declared for the GET it stands for.
        // A 304 gets none, because its length would describe a representation not sent
        // (RFC 9110 §8.6).
        let body_length = if head.status == 304 {
            None
        } else if request.is_head() {
            head.content_length()
        } else {
            Some(body.len())
        };
        let mut out = Vec::with_capacity(512);
        http::write_client_response_head(&head, body_length, keep_alive, &date, &mut out);
        if request.is_head() || body.is_empty() {
            self.log(request, head.status, 0, &date, started);
            self.io.queue(&out)?;
        } else if !body.is_spilled() && body.memory.len() <= FLUSH_THRESHOLD {
            // A small body goes out with the head, in one TLS record where it fits.
            self.log(request, head.status, body.len(), &date, started);
            self.io.queue_head_and_body(&out, &body.memory)?;
        } else {
            // A large body is logged once sent, with the body bytes the kernel took, as nginx's
            // `$body_bytes_sent`: a client that leaves part-way shows with less than the body.
            self.io.queue(&out)?;
            let mut sent = 0;
            let result = body.send_to_client(&mut self.io, &mut sent).await;
            self.log_sent(request, head.status, sent, started);
            result?;
        }
        Ok(keep_alive)
    }

    /// Passes an `Upgrade` request to the upstream; on 101 the connection becomes a relay and
    /// ends with it. Returns whether the relay ran. Otherwise a response was sent and the
    /// connection closes after it.
    async fn serve_upgrade(&mut self, request: &RequestHead, pending: Vec<u8>, started: Instant) -> Result<bool, StreamError> {
        let context = Rc::clone(&self.context);
        let Some(upstreams) = context.upstreams.as_ref() else {
            self.send_reply(request, self.error_reply(404), false, started).await?;
            return Ok(false);
        };
        let Some(upgrade) = upgrade::requested_upgrade(request) else { return Ok(false) };
        let host = self.request_host(request);
        let client = proxy::ClientFacts { ip: self.peer.ip(), proto: self.kind.scheme(), host: &host };
        let forwarded = proxy::forwarded(upstreams.settings(), request, &client);
        let date = self.context.date();
        let outcome = upgrade::handle(upstreams, &mut self.io, request, upgrade, &forwarded, pending, &date).await;
        match outcome {
            UpgradeOutcome::Relayed { status, bytes_to_client } => {
                // Logged when the relay ends, with that time as nginx does, so that the file's
                // lines stay in time order however long a session lasts.
                self.log(request, status, bytes_to_client, &self.context.date(), started);
                Ok(true)
            }
            UpgradeOutcome::Declined { head, body } => {
                let mut out = Vec::with_capacity(512);
                http::write_client_response_head(&head, Some(body.len() as u64), false, &date, &mut out);
                self.io.queue(&out)?;
                self.io.queue(&body)?;
                self.io.flush().await?;
                self.log(request, head.status, body.len() as u64, &date, started);
                Ok(false)
            }
            UpgradeOutcome::Failed(status) => {
                self.send_reply(request, self.error_reply(status), false, started).await?;
                self.io.flush().await?;
                Ok(false)
            }
        }
    }

    /// Relays a response as it arrives. Without a length from the upstream, an HTTP/1.1 client
    /// gets it chunked and an HTTP/1.0 client gets it delimited by the close.
    async fn stream_response(
        &mut self,
        exchange: &mut Exchange,
        head: &ResponseHead,
        keep_alive: bool,
        read_timeout: std::time::Duration,
        request: &RequestHead,
        started: Instant,
    ) -> Result<bool, StreamError> {
        let date = self.context.date();
        let length = head.content_length().filter(|_| head.framing != ResponseFraming::Chunked);
        let chunked = length.is_none() && request.version == Version::Http11;
        let keep_alive = keep_alive && (length.is_some() || chunked);
        let mut out = Vec::with_capacity(512);
        if chunked {
            http::write_client_response_head_chunked(head, keep_alive, &date, &mut out);
        } else {
            http::write_client_response_head(head, length, keep_alive, &date, &mut out);
        }
        self.io.queue(&out)?;

        // Logged once the relay ends, whether it completed or failed, with the bytes sent.
        let mut sent = 0u64;
        let relayed = self.relay_streamed_body(exchange, chunked, read_timeout, request, &mut sent).await;
        self.log_sent(request, head.status, sent, started);
        // The head is out, so an upstream failure can only end the connection.
        let completed = relayed?;
        Ok(keep_alive && completed)
    }

    /// Sends the queued head, then each piece of the streamed body as it arrives, counting the
    /// body bytes sent into `sent`. Returns false when the upstream failed part-way.
    async fn relay_streamed_body(
        &mut self,
        exchange: &mut Exchange,
        chunked: bool,
        read_timeout: std::time::Duration,
        request: &RequestHead,
        sent: &mut u64,
    ) -> Result<bool, StreamError> {
        self.io.flush().await?;
        let mut piece = Vec::with_capacity(16 * 1024);
        loop {
            piece.clear();
            let done = match exchange.read_body(&mut piece, read_timeout).await {
                Ok(done) => done,
                Err(err) => {
                    tracing::warn!(error = %err, target = %request.target, "streamed upstream response failed");
                    return Ok(false);
                }
            };
            if !piece.is_empty() {
                // Each chunk goes out whole, with its closing CRLF, so that the CRLF never waits
                // for the next chunk.
                if chunked {
                    self.io.queue(format!("{:x}\r\n", piece.len()).as_bytes())?;
                }
                let suffix: &[u8] = if chunked { b"\r\n" } else { b"" };
                self.io.send_body(&piece, suffix, sent).await?;
            }
            if done {
                break;
            }
        }
        if chunked {
            self.io.queue(b"0\r\n\r\n")?;
        }
        Ok(true)
    }

    /// Builds the response for an error status: the configured error page, or a short built-in one.
    fn error_reply(&self, status: u16) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", b"text/html; charset=utf-8".to_vec())],
            body: self.error_page(status).map_or_else(|| html_body(status), <[u8]>::to_vec),
        }
    }

    /// Returns the page `[error_pages]` sets for `status`, if any.
    fn error_page(&self, status: u16) -> Option<&[u8]> {
        self.context.shared.config.error_pages.iter().find(|(code, _)| *code == status).map(|(_, page)| page.as_slice())
    }

    async fn send_reply(&mut self, request: &RequestHead, reply: Reply, keep_alive: bool, started: Instant) -> Result<bool, StreamError> {
        let date = self.context.date();
        let content_length = reply.body.len().to_string();

        let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(reply.headers.len() + 4);
        headers.push(("Date", &date));
        headers.push(("Server", http::SERVER_NAME));
        for (name, value) in &reply.headers {
            headers.push((name, value));
        }
        if !reply.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-length")) && reply.status != 304 && reply.status >= 200 && reply.status != 204 {
            headers.push(("Content-Length", content_length.as_bytes()));
        }
        if let Some(connection) = http::connection_field(keep_alive, request.version) {
            headers.push(("Connection", connection));
        }
        let mut head = Vec::with_capacity(256);
        http::write_head(&mut head, reply.status, &headers);
        let send_body = !request.is_head() && reply.status != 304 && reply.status != 204;
        let body: &[u8] = if send_body { &reply.body } else { &[] };
        self.io.queue_head_and_body(&head, body)?;
        let body_bytes = if send_body { reply.body.len() as u64 } else { 0 };
        self.log(request, reply.status, body_bytes, &date, started);
        Ok(keep_alive)
    }

    async fn serve_static(&mut self, target: StaticTarget<'_>, request: &RequestHead, keep_alive: bool, started: Instant) -> Result<bool, StreamError> {
        // The request's start is used as the current time, which saves a clock read per
        // request: it only delays a revalidation that falls due while the request arrived.
        let mut outcome = self.context.files.borrow_mut().respond(&target, request, started);
        if !matches!(outcome, Outcome::Response(_)) {
            let Some(after) = Box::pin(load_static(&self.context, &target, request, outcome)).await else {
                tracing::error!(target = %request.target, "loading a static file panicked");
                return self.send_reply(request, self.error_reply(500), keep_alive, started).await;
            };
            outcome = after;
        }
        let response = match outcome {
            Outcome::Response(response) => response,
            Outcome::Load(_) | Outcome::Wait(_) => {
                tracing::error!(target = %request.target, "static file still not cached after loading");
                return self.send_reply(request, self.error_reply(500), keep_alive, started).await;
            }
        };
        // A page from `[error_pages]` replaces the built-in body of the static server's own
        // errors, and a 405 keeps its Allow field. 412 and 416 keep their built-in body, because
        // a configured page would drop their fields (validators, Content-Range).
        if matches!(response.status, 400 | 403 | 404 | 405 | 500) && self.error_page(response.status).is_some() {
            let mut reply = self.error_reply(response.status);
            if let Some(allow) = response.header("allow") {
                reply.headers.push(("Allow", allow.as_bytes().to_vec()));
            }
            return self.send_reply(request, reply, keep_alive, started).await;
        }

        let date = self.context.date();
        let mut head = std::mem::take(&mut self.scratch);
        head.clear();
        let connection = http::connection_field(keep_alive, request.version);
        response.write_head(&mut head, &[("Date", &date), ("Server", http::SERVER_NAME)], connection);
        // A small body goes out with the head, in one TLS record where it fits.
        let small_body = match &response.body {
            _ if request.is_head() => Some(&[][..]),
            FileBody::Empty => Some(&[][..]),
            FileBody::Static(bytes) => Some(*bytes),
            FileBody::Memory { bytes, range } if range.len() <= FLUSH_THRESHOLD => bytes.get(range.clone()),
            FileBody::Memory { .. } | FileBody::File { .. } => None,
        };
        let queued = self.io.queue_head_and_body(&head, small_body.unwrap_or_default());
        self.scratch = head;
        queued?;

        let mut sent = small_body.map_or(0, |body| body.len() as u64);
        if !request.is_head() && small_body.is_none() {
            match response.body {
                FileBody::Empty | FileBody::Static(_) => {}
                // A large body is logged once sent, with the body bytes the kernel took.
                FileBody::Memory { bytes, range } => {
                    if let Some(shared) = SharedBytes::new(bytes, range) {
                        let result = Box::pin(self.io.send_with_body(shared, &mut sent)).await;
                        self.log_sent(request, response.status, sent, started);
                        result?;
                        return Ok(keep_alive);
                    }
                }
                FileBody::File { file, offset, len } => {
                    let result = Box::pin(self.io.send_file(&file, offset, len, &mut sent)).await;
                    self.log_sent(request, response.status, sent, started);
                    if let Err(err) = result {
                        // A client that left is routine, but a file that shrank after its stat
                        // is a fault on this side, which the access log's 200 does not show.
                        if matches!(&err, StreamError::Io(io_err) if io_err.kind() == std::io::ErrorKind::UnexpectedEof) {
                            tracing::warn!(target = %request.target, sent, expected = len, "static file shrank while it was sent, so the response was cut short. Replace files by renaming a new file over them, not by writing in place");
                        }
                        // The head promised `len` bytes: a short file can only end the connection.
                        return Ok(false);
                    }
                    return Ok(keep_alive);
                }
            }
        }
        self.log(request, response.status, sent, &date, started);
        Ok(keep_alive)
    }

    /// Returns the request line at the start of `unread` for the log of an error response, when no
    /// head was parsed but its first line arrived.
    fn rejected_line(&self, head: Option<&RequestHead>, unread: &[u8]) -> Option<http::RejectedRequestLine> {
        if head.is_some() {
            return None;
        }
        http::rejected_request_line(unread, self.context.shared.config.limits.max_head_bytes)
    }

    /// Sends an error response, with the status's page from `[error_pages]` when one is set,
    /// and closes. `request` is the parsed head if there is one, and `rejected` the request line
    /// of a head rejected before it was parsed, for the log line.
    async fn send_error(&mut self, status: u16, request: Option<&RequestHead>, rejected: Option<http::RejectedRequestLine>, started: Instant) -> Result<(), StreamError> {
        let date = self.context.date();
        let mut out = Vec::with_capacity(256);
        let body_start = match self.error_page(status) {
            Some(page) => http::error_response_with_body(status, true, &date, page, &mut out),
            None => http::error_response(status, true, &date, &mut out),
        };
        let (method, target, version) = match (request, &rejected) {
            (Some(request), _) => (request.method.as_str(), request.target.as_str(), request.version.as_str()),
            (None, Some(line)) => (line.method.as_str(), line.target.as_str(), line.version.as_str()),
            // Nothing of the request line could be read, not even its version.
            (None, None) => ("-", "-", "-"),
        };
        // RFC 9110 §9.3.2: the response to HEAD has the head that GET would get and no body.
        if method == "HEAD" {
            out.truncate(body_start);
        }
        self.io.queue(&out)?;
        self.io.flush().await?;
        let mut log = self.context.access_log.borrow_mut();
        log.record(&Entry {
            client: self.peer.ip(),
            date: &date,
            method,
            target,
            version,
            status,
            // The body alone, as on every other line and in nginx's `$body_bytes_sent`.
            body_bytes: out.len().saturating_sub(body_start) as u64,
            referer: None,
            user_agent: None,
            duration: started.elapsed(),
        });
        Ok(())
    }

    /// Logs a response whose body went out after its head was queued, stamped with the time the
    /// send ended, so that a worker's lines stay in time order, as nginx's do.
    fn log_sent(&self, request: &RequestHead, status: u16, body_bytes: u64, started: Instant) {
        self.log(request, status, body_bytes, &self.context.date(), started);
    }

    fn log(&self, request: &RequestHead, status: u16, body_bytes: u64, date: &[u8], started: Instant) {
        let mut log = self.context.access_log.borrow_mut();
        if !log.is_enabled() {
            return;
        }
        log.record(&Entry {
            client: self.peer.ip(),
            date,
            method: &request.method,
            target: &request.target,
            version: request.version.as_str(),
            status,
            body_bytes,
            referer: request.header("referer"),
            user_agent: request.header("user-agent"),
            duration: started.elapsed(),
        });
    }
}

enum ReadOutcome {
    Data,
    End,
    TimedOut,
    /// Idle for [`PARK_AFTER`]: the connection parks.
    Park,
    Failed(StreamError),
}

/// A response built in memory.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

fn html_body(status: u16) -> Vec<u8> {
    let reason = http::reason_phrase(status);
    format!("<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>\n").into_bytes()
}


#[cfg(test)]
mod tests {
    use super::{REDIRECT_BODY, REDIRECT_BODY_LENGTH};

    /// The bound on the future every connection keeps, also while parked: 840 bytes with rustc
    /// 1.95. Before connections parked, it held the request loop too, and was 2,288 bytes.
    const MAX_CONNECTION_FUTURE_BYTES: usize = 1024;

    /// The bound on the request loop's future, which a connection keeps while busy and for
    /// `PARK_AFTER` once idle: 3,064 bytes with rustc 1.95.
    const MAX_REQUEST_LOOP_FUTURE_BYTES: usize = 4 * 1024;

    /// Every open connection keeps its task's future, and a busy one also the request loop's,
    /// so their sizes are part of each connection's memory. Rare paths are boxed to keep them
    /// small, and this catches a change that puts a large future back inline.
    #[test]
    fn connection_futures_stay_small() {
        fn serve_size<A, B, C, D, E, F>(_: fn(A, B, C, D, E) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        fn run_size<A, F>(_: fn(A) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let connection = serve_size(super::serve);
        let request_loop = run_size(super::Connection::run);
        eprintln!("connection future: {connection} bytes, request loop future: {request_loop} bytes");
        assert!(connection <= MAX_CONNECTION_FUTURE_BYTES, "connection future: {connection} bytes");
        assert!(request_loop <= MAX_REQUEST_LOOP_FUTURE_BYTES, "request loop future: {request_loop} bytes");
    }

    #[test]
    fn redirect_body_length_matches() {
        assert_eq!(REDIRECT_BODY.len().to_string(), REDIRECT_BODY_LENGTH);
    }
}
