//! A client connection's byte stream, plain or TLS. TLS goes through a [`TlsSession`] over buffers
//! this type owns: ciphertext read from the socket, and records to send, which rustls encrypts
//! straight into the outgoing buffer. No TLS stream wrapper and no second runtime are involved,
//! and an idle connection keeps no TLS buffer.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::tls_session::{TlsSession, TlsSessionError};
use crate::rt::{self, AsyncRead, AsyncWrite, BufResult, IntoInner, IoBuf, SharedBytes, TcpStream};

/// Bytes requested from the socket per read. A full TLS record (16 KiB of plaintext plus
/// overhead) fits, so one read usually yields whole records.
const READ_CHUNK: usize = 17 * 1024;

/// Plaintext handed to rustls per step when a large body is encrypted, so the ciphertext buffer
/// stays bounded.
const TLS_WRITE_CHUNK: usize = 64 * 1024;

/// Largest capacity of a buffer kept in the spare list. A larger buffer is freed when its
/// connection goes idle, so one large request or response does not pin its memory.
const IDLE_BUFFER_BYTES: usize = 4 * 1024;

/// Byte buffers a worker keeps for its connections' next requests. Each is at most
/// [`IDLE_BUFFER_BYTES`], so the list takes at most 512 KiB per worker.
const MAX_SPARE_BUFFERS: usize = 128;

/// How long a closing connection keeps reading what the client still sends.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// How many bytes a closing connection reads and discards at most.
const LINGER_BYTES: usize = 256 * 1024;

/// How often [`ClientIo::close`] checks whether the client has acknowledged the whole response,
/// on the rare connection whose read side is shut. No completion reports that moment.
const ACKNOWLEDGE_POLL: Duration = Duration::from_millis(5);

/// How long [`ClientIo::end_idle_receive`] waits for the receive it ended. The kernel ends it
/// at the shut, so this bound only guards against a receive that does not end.
const SHUT_RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// End or failure of a connection's byte stream.
#[derive(Debug)]
pub enum StreamError {
    /// The peer closed the connection (or sent a TLS close_notify) between messages or during one.
    Closed,
    /// A read or write did not finish by its deadline.
    TimedOut,
    /// The socket failed, for example with a reset or a broken pipe.
    Io(io::Error),
    /// The peer sent TLS that rustls rejected (the alert has already been queued), or the session
    /// failed in another way.
    Tls(TlsSessionError),
    /// The peer spoke plain HTTP to the TLS port.
    PlainHttpOnTls,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Closed => write!(f, "closed by the client"),
            StreamError::TimedOut => write!(f, "read or write timed out"),
            StreamError::Io(err) => write!(f, "socket error: {err}"),
            StreamError::Tls(err) => write!(f, "TLS error: {err}"),
            StreamError::PlainHttpOnTls => write!(f, "plain HTTP sent to the TLS port"),
        }
    }
}

impl From<TlsSessionError> for StreamError {
    fn from(err: TlsSessionError) -> Self {
        StreamError::Tls(err)
    }
}

impl From<io::Error> for StreamError {
    fn from(err: io::Error) -> Self {
        StreamError::Io(err)
    }
}

/// Byte buffers that connections gave back on going idle, for the next requests of the same
/// worker: the request input, the output, and on TLS the decrypted plaintext. An idle
/// connection then keeps none of them. A request takes spare ones when the list has them, and
/// allocates only when the list is empty or its bytes outgrow the buffer. A
/// 1 KiB response's buffer is larger than glibc's per-thread cache takes (1,032 bytes), and
/// allocating it cost about 0.5k instructions per request in callgrind. The TLS buffers cost
/// another 0.7k.
#[derive(Default)]
pub struct SpareBuffers {
    buffers: RefCell<Vec<Vec<u8>>>,
}

impl SpareBuffers {
    /// Returns an empty buffer, with capacity when the list had one.
    pub fn take(&self) -> Vec<u8> {
        self.buffers.borrow_mut().pop().unwrap_or_default()
    }

    /// Keeps `buffer` for a later request unless it is large or the list is full.
    pub fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > IDLE_BUFFER_BYTES {
            return;
        }
        let mut buffers = self.buffers.borrow_mut();
        if buffers.len() < MAX_SPARE_BUFFERS {
            buffer.clear();
            buffers.push(buffer);
        }
    }
}

pub struct ClientIo {
    stream: TcpStream,
    tls: Option<Box<TlsSession>>,
    /// Ciphertext read from the socket and not yet taken by rustls (TLS only).
    tls_in: Vec<u8>,
    /// Plaintext decrypted and not yet handed to [`ClientIo::read`] (TLS only).
    tls_plaintext: Vec<u8>,
    /// Bytes ready for the socket: plaintext on a plain connection, TLS records otherwise.
    out: Vec<u8>,
    /// The worker's spare buffers, which this connection's buffers join at idle and are taken
    /// from when they have no capacity.
    spare: Rc<SpareBuffers>,
    send_timeout: Duration,
    /// Bounds every read by the caller's deadline and every write by `send_timeout`.
    timer: rt::Timer,
    /// Set by [`ClientIo::abandon`]: close without sending anything more.
    abandoned: bool,
    /// Set by [`ClientIo::end_idle_receive`]: the socket's read side is shut.
    read_shut: bool,
}

impl ClientIo {
    pub fn new(stream: TcpStream, tls: Option<TlsSession>, send_timeout: Duration, spare: Rc<SpareBuffers>) -> ClientIo {
        ClientIo {
            stream,
            tls: tls.map(Box::new),
            tls_in: Vec::new(),
            tls_plaintext: Vec::new(),
            out: Vec::new(),
            spare,
            send_timeout,
            timer: rt::Timer::default(),
            abandoned: false,
            read_shut: false,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs the TLS handshake to its end, reading until `deadline` at the latest. A no-op on a
    /// plain connection.
    ///
    /// # Errors
    /// `Closed` when the client leaves during the handshake, `Tls` when its messages are invalid,
    /// `TimedOut` when the deadline passes first.
    pub async fn handshake(&mut self, deadline: Instant) -> Result<(), StreamError> {
        // Only a connection's first bytes are checked for plain HTTP: once rustls has taken a
        // record, whatever follows is TLS, and bad bytes get a TLS alert.
        let mut first_bytes = true;
        loop {
            let Some(tls) = self.tls.as_ref() else { return Ok(()) };
            if !self.out.is_empty() {
                self.flush().await?;
                continue;
            }
            if tls.is_handshake_complete() {
                return Ok(());
            }
            let received = self.receive_ciphertext(deadline).await?;
            if received == 0 {
                return Err(StreamError::Closed);
            }
            if first_bytes {
                match classify_first_bytes(&self.tls_in) {
                    FirstBytes::PlainHttp => return Err(StreamError::PlainHttpOnTls),
                    // A method token sent in pieces: wait for the rest, up to the deadline.
                    FirstBytes::Undecided => continue,
                    FirstBytes::Tls => first_bytes = false,
                }
            }
            self.process_ciphertext().await?;
        }
    }

    /// Gives up TLS on a connection whose client spoke plain HTTP, so that a plain response can be
    /// queued with [`ClientIo::queue`].
    pub fn downgrade_to_plain(&mut self) {
        self.tls = None;
        self.tls_in = Vec::new();
        self.tls_plaintext = Vec::new();
        self.out.clear();
    }

    /// Appends at least one byte of plaintext to `input`, or returns `Ok(0)` at a clean end of
    /// stream (TCP FIN on a plain connection, close_notify on TLS).
    ///
    /// # Errors
    /// `TimedOut` when no plaintext arrived by `deadline`, `Closed` for a TLS connection cut
    /// without close_notify, and `Io` and `Tls` as they come.
    pub async fn read(&mut self, input: &mut Vec<u8>, deadline: Instant) -> Result<usize, StreamError> {
        if self.tls.is_none() {
            if input.capacity() == 0 {
                *input = self.spare.take();
            }
            return receive_until(&mut self.stream, &mut self.timer, input, deadline).await;
        }
        loop {
            if let Some(read) = self.take_plaintext(input)? {
                return Ok(read);
            }
            if !self.out.is_empty() {
                Box::pin(self.flush()).await?;
            }
            if self.tls.as_ref().is_some_and(|tls| tls.has_deferred_fault()) {
                // The responses to the requests before the bad record went out above, and the
                // alert for it follows.
                self.process_ciphertext().await?;
                continue;
            }
            let received = self.receive_ciphertext(deadline).await?;
            if received == 0 {
                // RFC 8446 §6.1: a peer that closes without close_notify may have been cut short.
                return Err(StreamError::Closed);
            }
            self.process_ciphertext().await?;
        }
    }

    /// Returns whether a read can return without receiving: decrypted bytes, the client's
    /// close_notify or a bad record wait in the TLS session.
    pub fn has_buffered_input(&self) -> bool {
        !self.tls_plaintext.is_empty() || self.is_tls_peer_closed() || self.tls.as_ref().is_some_and(|tls| tls.has_deferred_fault())
    }

    /// Returns whether the client ended its TLS session with close_notify. Records after it are
    /// ignored (RFC 8446 §6.1).
    pub fn is_tls_peer_closed(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_peer_closed())
    }

    /// Starts the receive that waits for the next request on an idle connection. Unlike
    /// [`ClientIo::read`], it can be moved to another future while it waits; see
    /// [`rt::OwnedReceive`]. Pass what it gets to [`ClientIo::read_received`].
    pub fn start_idle_receive(&self) -> rt::OwnedReceive {
        rt::OwnedReceive::start(&self.stream, READ_CHUNK)
    }

    /// Waits for `receive` until `deadline`. `None` means the deadline passed, with the receive
    /// still in flight.
    pub async fn wait_for(&mut self, receive: &mut rt::OwnedReceive, deadline: Instant) -> Option<io::Result<rt::Received>> {
        self.timer.until(deadline, receive).await
    }

    /// Ends the receive of an idle connection that is to close (its idle time is over, the
    /// worker stops or the connection is evicted) and returns what it got. A request can arrive
    /// just as the wait ends, and the receive in flight may already have taken it off the
    /// socket: dropping the receive would then lose the request without a word to the client.
    /// So the socket's read side is shut first, which ends the receive at once with the bytes
    /// already there. `None` when there were none: the connection is then closed, and a request
    /// that arrives after the shut gets a reset, the sign that it was not read (RFC 9112 §9.3.1
    /// on retrying it).
    ///
    /// A request returned here is served with `Connection: close` (see
    /// [`ClientIo::is_read_shut`]). Later reads get only what is already in the socket, then end
    /// of stream, so a request whose rest is still on its way cannot be completed. The close
    /// then waits for the response to be acknowledged instead of lingering (see
    /// [`ClientIo::close`]).
    pub async fn end_idle_receive(&mut self, receive: &mut rt::OwnedReceive) -> Option<rt::Received> {
        if let Err(err) = rt::shut_read(&self.stream) {
            tracing::debug!(error = %err, "cannot shut the read side of an idle connection");
            return None;
        }
        self.read_shut = true;
        match self.timer.until(Instant::now() + SHUT_RECEIVE_WAIT, receive).await {
            Some(Ok(received)) if !received.as_slice().is_empty() => Some(received),
            Some(Ok(_)) => None,
            Some(Err(err)) => {
                tracing::debug!(error = %err, "the receive of an idle connection failed at its end");
                None
            }
            None => {
                tracing::warn!("an idle receive did not end after its socket's read side was shut");
                None
            }
        }
    }

    /// Returns whether [`ClientIo::end_idle_receive`] shut the socket's read side, so that the
    /// connection must close after the response it is writing.
    pub fn is_read_shut(&self) -> bool {
        self.read_shut
    }

    /// Takes the bytes of a finished [`ClientIo::start_idle_receive`], then reads on as
    /// [`ClientIo::read`] does until plaintext arrives. `Ok(None)` when their TLS records carried
    /// no application data, such as a key update or an empty record. A record they left
    /// incomplete is read to its end first. The connection is then still between requests.
    ///
    /// # Errors
    /// As [`ClientIo::read`].
    pub async fn read_received(&mut self, received: rt::Received, input: &mut Vec<u8>, deadline: Instant) -> Result<Option<usize>, StreamError> {
        let bytes = received.as_slice();
        if self.tls.is_none() {
            if input.capacity() == 0 {
                *input = self.spare.take();
            }
            input.extend_from_slice(bytes);
            return Ok(Some(bytes.len()));
        }
        if bytes.is_empty() {
            // As in `read`: RFC 8446 §6.1, an end without close_notify.
            return Err(StreamError::Closed);
        }
        self.tls_in.extend_from_slice(bytes);
        drop(received);
        loop {
            self.process_ciphertext().await?;
            if self.has_buffered_input() {
                return self.read(input, deadline).await.map(Some);
            }
            // A reply to the records, such as the no_renegotiation warning sent for a TLS 1.2
            // ClientHello, goes out now, as `read` sends it before it waits.
            if !self.out.is_empty() {
                Box::pin(self.flush()).await?;
            }
            if !self.has_partial_record() {
                return Ok(None);
            }
            // The rest of a record has until `deadline`, like the rest of a request head.
            if self.receive_ciphertext(deadline).await? == 0 {
                return Err(StreamError::Closed);
            }
        }
    }

    /// Moves decrypted bytes into `input`. `Ok(None)` means rustls needs more ciphertext, and
    /// `Ok(Some(0))` that the client sent close_notify.
    fn take_plaintext(&mut self, input: &mut Vec<u8>) -> Result<Option<usize>, StreamError> {
        let peer_closed = match self.tls.as_ref() {
            Some(tls) => tls.is_peer_closed(),
            None => return Ok(None),
        };
        if !self.tls_plaintext.is_empty() {
            let length = self.tls_plaintext.len();
            if input.as_slice().is_empty() {
                // Hand over the whole buffer instead of copying it.
                std::mem::swap(input, &mut self.tls_plaintext);
            } else {
                input.append(&mut self.tls_plaintext);
            }
            return Ok(Some(length));
        }
        Ok(peer_closed.then_some(0))
    }

    async fn receive_ciphertext(&mut self, deadline: Instant) -> Result<usize, StreamError> {
        receive_until(&mut self.stream, &mut self.timer, &mut self.tls_in, deadline).await
    }

    /// Releases buffer memory a connection kept from its last request, so an idle keep-alive
    /// connection costs little more than its socket and TLS session. The wait may last the whole
    /// keep-alive time, and keeping the output buffer alone cost about 1.5 KiB of an idle TLS
    /// connection's 11 KiB in one measurement.
    ///
    /// The empty plaintext and output buffers go to the worker's spare list. The empty
    /// ciphertext buffer is freed instead, because the session keeps no offsets into an empty
    /// buffer and its next read allocates one of exactly the received size.
    // NOTE: recycling the ciphertext buffer too saved about 0.1k instructions per TLS request,
    // but raised the idle memory of `scripts/bench.sh` from 8.8 to 10.4 KiB per connection, in
    // three runs each. malloc_trim returned none of the difference, and the cause was not found.
    pub fn shrink_idle_buffers(&mut self) {
        if self.tls_in.is_empty() {
            self.tls_in = Vec::new();
        }
        for buffer in [&mut self.tls_plaintext, &mut self.out] {
            // `Vec::` because compio's `IoBuf` also has an `is_empty`, for `&'static mut` buffers.
            if Vec::is_empty(buffer) {
                self.spare.give(std::mem::take(buffer));
            }
        }
    }

    /// Frees the TLS session's AEAD key contexts (about 1.2 KiB), because the wait may last the
    /// whole keep-alive time. The next record builds them again. A no-op on a plain connection.
    pub fn release_tls_keys(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.release_keys();
        }
    }

    /// Returns the worker's spare buffers, for the connection buffers that the caller owns.
    pub fn spare_buffers(&self) -> &SpareBuffers {
        &self.spare
    }

    /// Feeds buffered ciphertext to rustls, sending any alert it produces when it rejects it.
    async fn process_ciphertext(&mut self) -> Result<(), StreamError> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        if self.tls_plaintext.capacity() == 0 {
            self.tls_plaintext = self.spare.take();
        }
        if let Err(err) = tls.process(&mut self.tls_in, &mut self.tls_plaintext, &mut self.out) {
            // The alert describing the failure is at the end of `out`; send it before closing.
            Box::pin(self.flush()).await.ok();
            return Err(StreamError::Tls(err));
        }
        Ok(())
    }

    /// Queues bytes for the client. Call [`ClientIo::flush`] to send them.
    pub fn queue(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.queue_parts(&[bytes])
    }

    /// Queues a response head and the body that follows it. On TLS both go into one record where
    /// they fit, because each record costs its own encryption and a header and tag on the wire
    /// (22 bytes with TLS 1.3 and AES-GCM).
    pub fn queue_head_and_body(&mut self, head: &[u8], body: &[u8]) -> Result<(), StreamError> {
        self.queue_parts(&[head, body])
    }

    /// Queues the concatenation of `parts`. TLS records are encrypted at once, so that `pending`
    /// counts these bytes and the caller's flush threshold bounds TLS connections as it does
    /// plain ones.
    fn queue_parts(&mut self, parts: &[&[u8]]) -> Result<(), StreamError> {
        if self.out.capacity() == 0 {
            self.out = self.spare.take();
        }
        match self.tls.as_mut() {
            None => parts.iter().for_each(|part| self.out.extend_from_slice(part)),
            Some(tls) => tls.encrypt(&mut self.tls_in, parts, &mut self.out)?,
        }
        Ok(())
    }

    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Sends everything queued.
    ///
    /// # Errors
    /// `TimedOut` when the client takes no byte for the whole send timeout.
    pub async fn flush(&mut self) -> Result<(), StreamError> {
        self.flush_counting(&mut 0).await
    }

    /// Like [`ClientIo::flush`], adding the bytes each write sent to `written`, also when a
    /// later write fails.
    async fn flush_counting(&mut self, written: &mut u64) -> Result<(), StreamError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let mut out = send_all(&mut self.stream, &mut self.timer, out, self.send_timeout, written).await?;
        out.clear();
        self.out = out;
        Ok(())
    }

    /// Sends what is queued, then `body`, then `suffix` (framing such as a chunk's closing CRLF).
    /// Adds the body bytes sent to `sent` as they go, so that after a failure `sent` is what the
    /// access log reports. On a plain connection every write counts. On TLS the body is encrypted
    /// in steps of [`TLS_WRITE_CHUNK`], so the output stays bounded, and a step counts once all
    /// its records are sent.
    ///
    /// # Errors
    /// As [`ClientIo::flush`].
    pub async fn send_body(&mut self, body: &[u8], suffix: &[u8], sent: &mut u64) -> Result<(), StreamError> {
        if self.tls.is_some() {
            let mut pieces = body.chunks(TLS_WRITE_CHUNK).peekable();
            while let Some(piece) = pieces.next() {
                self.queue(piece)?;
                if pieces.peek().is_none() {
                    self.queue(suffix)?;
                }
                self.flush().await?;
                *sent += piece.len() as u64;
            }
            if body.is_empty() {
                self.queue(suffix)?;
            }
            // An empty body has no pieces, and what was queued before it still waits.
            return self.flush().await;
        }

        let queued_before = self.out.len() as u64;
        self.queue(body)?;
        self.queue(suffix)?;
        let mut written = 0;
        let result = self.flush_counting(&mut written).await;
        *sent += written.saturating_sub(queued_before).min(body.len() as u64);
        result
    }

    /// Sends the queued head followed by `body`, counting into `sent` as [`ClientIo::send_body`]
    /// does. On a plain connection the body goes to the kernel from the shared buffer without a
    /// copy.
    ///
    /// # Errors
    /// As [`ClientIo::flush`].
    pub async fn send_with_body(&mut self, body: SharedBytes, sent: &mut u64) -> Result<(), StreamError> {
        if self.tls.is_some() {
            return self.send_body(body.as_slice(), &[], sent).await;
        }

        self.flush().await?;
        send_all(&mut self.stream, &mut self.timer, body, self.send_timeout, sent).await?;
        Ok(())
    }

    /// Sends part of a file: by splice on a plain connection (no copy through user space), by
    /// positional reads and encryption on TLS. Flushes what was queued first. Adds the file
    /// bytes sent to `sent` as it goes, as [`ClientIo::send_with_body`] does.
    ///
    /// # Errors
    /// `Io` with `UnexpectedEof` when the file shrank, `TimedOut`, or a socket error.
    pub async fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64, sent: &mut u64) -> Result<(), StreamError> {
        self.flush().await?;
        let runtime_file = rt::runtime_file(file.try_clone()?);
        if self.tls.is_none() {
            return match rt::splice_file_to_socket(&runtime_file, offset, len, &self.stream, self.send_timeout, sent).await {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == io::ErrorKind::TimedOut => Err(StreamError::TimedOut),
                Err(err) => Err(StreamError::Io(err)),
            };
        }

        let end = offset.saturating_add(len);
        let mut position = offset;
        let mut buffer = Vec::with_capacity(TLS_WRITE_CHUNK);
        while position < end {
            let want = usize::try_from(end - position).unwrap_or(TLS_WRITE_CHUNK).min(TLS_WRITE_CHUNK);
            buffer.clear();
            let BufResult(result, returned) = compio::io::AsyncReadAt::read_at(&runtime_file, buffer, position).await;
            buffer = returned;
            let read = result?;
            if read == 0 {
                return Err(StreamError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while it was sent")));
            }
            buffer.truncate(read.min(want));
            position += buffer.len() as u64;
            self.send_body(&buffer, &[], sent).await?;
        }
        Ok(())
    }

    /// Lends the socket and the TLS session, with its unprocessed ciphertext, to a relay that
    /// drives both directions itself. Call only after [`ClientIo::flush`], and close the
    /// connection after the relay.
    pub fn split_for_relay(&mut self) -> (&TcpStream, Option<RelayTls<'_>>) {
        let tls = self.tls.as_deref_mut().map(|session| RelayTls { session, incoming: &mut self.tls_in, outgoing: &mut self.out });
        (&self.stream, tls)
    }

    /// Returns whether bytes already sent still wait in the socket for the client, or wait in
    /// the output buffer: the client is not keeping up. Unknown counts as waiting.
    pub fn has_unsent_bytes(&self) -> bool {
        !self.out.is_empty() || rt::unsent_bytes(rt::raw_fd(&self.stream)).is_none_or(|count| count > 0)
    }

    /// Drops what is queued, and makes [`ClientIo::close`] close the socket without a
    /// close_notify and without waiting: for a client that stopped taking bytes, whom a last
    /// flush would keep open for the whole send timeout.
    pub fn abandon(&mut self) {
        self.out.clear();
        self.abandoned = true;
    }

    /// Sends a TLS close_notify (RFC 8446 §6.1) when the connection is TLS, flushes, and shuts the
    /// socket's write side so the client sees the end of the stream. With `linger`, unread client
    /// bytes are drained first: use it when the client may still be sending a request. After
    /// [`ClientIo::abandon`] it only closes the socket.
    pub async fn close(mut self, linger: bool) {
        if self.abandoned {
            let _ = self.stream.close().await;
            return;
        }
        if let Some(tls) = self.tls.as_mut() {
            // A failure here only means no close_notify goes out; the socket closes anyway.
            tls.queue_close_notify(&mut self.tls_in, &mut self.out).ok();
        }
        if self.flush().await.is_ok() {
            if self.read_shut {
                self.wait_until_acknowledged().await;
            }
            let _ = rt::timeout(self.send_timeout, self.stream.shutdown()).await;
            // A client still sending past the drain's bounds gets a reset at the close, which
            // discards what is not delivered yet, so the close first waits until the client
            // has acknowledged it.
            if linger && !self.read_shut && !self.drain_before_close().await {
                self.wait_until_acknowledged().await;
            }
        }
        let _ = self.stream.close().await;
    }

    /// Waits, for at most [`LINGER_TIME`], until the client has acknowledged every byte sent,
    /// for a socket whose read side is shut. Once such a socket has sent its FIN, Linux resets it
    /// when any data from the client arrives, which discards what it has not sent yet. The
    /// lingering close cannot prevent that, as its reads get end of stream at once. So the FIN
    /// waits until nothing of the response is left to lose. A lingering close that reached its
    /// bounds with the client still sending waits the same way before the close's reset.
    async fn wait_until_acknowledged(&self) {
        let deadline = Instant::now() + LINGER_TIME;
        while Instant::now() < deadline {
            // A reset socket keeps its count of unacknowledged bytes, which nothing will clear
            // any more, so the reset ends the wait.
            let reset = socket2::SockRef::from(&self.stream).take_error().map_or(true, |error| error.is_some());
            if reset || rt::unsent_bytes(rt::raw_fd(&self.stream)).is_none_or(|count| count == 0) {
                return;
            }
            rt::sleep(ACKNOWLEDGE_POLL).await;
        }
    }

    /// Returns whether TLS bytes wait that do not yet form a whole record, such as the start of
    /// a request whose rest has not arrived.
    pub fn has_partial_record(&self) -> bool {
        !self.tls_in.is_empty()
    }

    /// Reads and discards what the client still sends, for a bounded time and amount. Closing a
    /// socket with unread bytes makes the kernel send RST, which can destroy the response the
    /// client has not read yet (nginx calls this a lingering close). Returns whether the client
    /// ended its side (or the socket failed) within the bounds.
    async fn drain_before_close(&mut self) -> bool {
        let deadline = std::time::Instant::now() + LINGER_TIME;
        let mut discarded = 0usize;
        let mut buffer = Vec::with_capacity(4096);
        while discarded < LINGER_BYTES {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            buffer.clear();
            let Some(BufResult(result, returned)) = rt::timeout(left, self.stream.read(buffer)).await else { return false };
            buffer = returned;
            match result {
                Ok(0) | Err(_) => return true,
                Ok(read) => discarded += read,
            }
        }
        false
    }
}

/// A TLS session lent to the WebSocket relay, with the ciphertext buffer every session call
/// takes.
pub struct RelayTls<'a> {
    pub session: &'a mut TlsSession,
    /// Ciphertext read from the client and not yet taken by rustls.
    pub incoming: &'a mut Vec<u8>,
    /// Records to send ahead of the next relayed bytes, such as a session ticket. Whatever is
    /// left here after the relay (an alert) goes out when the connection closes.
    pub outgoing: &'a mut Vec<u8>,
}

/// Receives into `buffer` until `deadline`, through the worker's provided-buffer pool.
///
/// # Errors
/// `TimedOut` when nothing arrived by `deadline`, and `Io` as it comes.
async fn receive_until(stream: &mut TcpStream, timer: &mut rt::Timer, buffer: &mut Vec<u8>, deadline: Instant) -> Result<usize, StreamError> {
    let received = timer.until(deadline, rt::receive_into(stream, buffer, READ_CHUNK)).await;
    Ok(received.ok_or(StreamError::TimedOut)??)
}

/// Writes all of `buffer` and hands it back, adding each write's bytes to `sent_total`. The
/// timeout applies to each write, so a client that reads slowly but steadily is served, and one
/// that stops reading is cut off after `timeout` without progress (nginx's `send_timeout` works
/// the same way). On failure the buffer is dropped, because the connection is finished.
async fn send_all<B: IoBuf>(stream: &mut TcpStream, timer: &mut rt::Timer, buffer: B, timeout: Duration, sent_total: &mut u64) -> Result<B, StreamError> {
    let total = buffer.buf_len();
    let mut sent = 0usize;
    let mut buffer = buffer.slice(..);
    while sent < total {
        let Some(BufResult(result, returned)) = timer.until(Instant::now() + timeout, stream.write(buffer)).await else {
            return Err(StreamError::TimedOut);
        };
        match result {
            Ok(0) => return Err(StreamError::Io(io::Error::from(io::ErrorKind::WriteZero))),
            Ok(written) => {
                sent += written;
                *sent_total += written as u64;
                buffer = returned.into_inner().slice(sent..);
            }
            Err(err) => return Err(StreamError::Io(err)),
        }
    }
    Ok(buffer.into_inner())
}

/// Bytes of a connection's start searched for the space that ends a request line's method.
const METHOD_PREFIX_BYTES: usize = 16;

/// The kind of a connection's first bytes on the TLS port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstBytes {
    /// An HTTP request line: an uppercase method token and a space. nginx also responds to these
    /// with a 400.
    PlainHttp,
    /// Uppercase letters without a space yet: a request line sent in pieces, or too little to
    /// tell.
    Undecided,
    /// Anything else. A TLS record starts with a content type from 20 to 23 (RFC 8446 §5.1),
    /// never an uppercase letter, so a real handshake is decided at its first byte.
    Tls,
}

/// Classifies the bytes received so far at the start of a connection to the TLS port.
fn classify_first_bytes(received: &[u8]) -> FirstBytes {
    let prefix = received.get(..METHOD_PREFIX_BYTES).unwrap_or(received);
    let method_length = prefix.iter().take_while(|byte| byte.is_ascii_uppercase()).count();
    match prefix.get(method_length) {
        Some(b' ') if method_length > 0 => FirstBytes::PlainHttp,
        None if prefix.len() < METHOD_PREFIX_BYTES => FirstBytes::Undecided,
        _ => FirstBytes::Tls,
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use super::{ClientIo, FirstBytes, IDLE_BUFFER_BYTES, MAX_SPARE_BUFFERS, SpareBuffers, TlsSession, classify_first_bytes};
    use crate::rt::{AsyncRead, BufResult, TcpListener, TcpStream};

    /// Returns a connected loopback pair: the client's end and the server's.
    async fn socket_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let address = listener.local_addr().expect("a bound address");
        let (client, accepted) = futures_util::future::join(TcpStream::connect(address), listener.accept()).await;
        (client.expect("a connection"), accepted.expect("an accepted connection").0)
    }

    /// Reads from `stream` until the peer closes it.
    async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
        let mut received = Vec::new();
        for _ in 0..1000 {
            let BufResult(result, chunk) = stream.read(Vec::with_capacity(4096)).await;
            if result.expect("a read") == 0 {
                break;
            }
            received.extend_from_slice(&chunk);
        }
        received
    }

    #[test]
    fn spare_buffer_leaks_nothing_across_connections() {
        let runtime = crate::rt::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let spare = Rc::new(SpareBuffers::default());
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let timeout = Duration::from_secs(5);

            let (mut first_client, first_server) = socket_pair(&listener).await;
            let mut first = ClientIo::new(first_server, None, timeout, Rc::clone(&spare));
            first.queue(&[b'A'; 2000]).expect("queued");
            first.flush().await.expect("sent");
            first.shrink_idle_buffers();
            assert_eq!(spare.buffers.borrow().len(), 1, "the idle connection gave its buffer back");

            let (mut second_client, second_server) = socket_pair(&listener).await;
            let mut second = ClientIo::new(second_server, None, timeout, Rc::clone(&spare));
            second.queue(b"second response").expect("queued");
            assert_eq!(spare.buffers.borrow().len(), 0, "the response took the spare buffer");
            second.close(false).await;
            first.close(false).await;

            assert_eq!(read_to_end(&mut second_client).await, b"second response");
            assert_eq!(read_to_end(&mut first_client).await, vec![b'A'; 2000]);
        });
    }

    /// A TLS connection's buffers (request input, plaintext, output) go to the spare list at
    /// idle, and its next requests take them back instead of allocating others. The handshake's
    /// output buffer is larger than the list keeps, so the count settles from the second request
    /// on.
    #[test]
    fn tls_buffers_return_to_spare_list() {
        use std::io::{Read, Write};

        let (server_config, client_config) = crate::server::tls_session::tests::configs(&rustls::version::TLS13);
        let runtime = crate::rt::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let spare = Rc::new(SpareBuffers::default());
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let address = listener.local_addr().expect("a bound address");
            let timeout = Duration::from_secs(5);
            let client = std::thread::spawn(move || {
                let mut socket = std::net::TcpStream::connect(address).expect("a connection");
                socket.set_read_timeout(Some(timeout)).expect("a read timeout");
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
                let mut session = rustls::ClientConnection::new(client_config, name).expect("a client session");
                let mut stream = rustls::Stream::new(&mut session, &mut socket);
                let mut replies = Vec::new();
                for _ in 0..3 {
                    stream.write_all(b"ping").expect("a request sent");
                    let mut reply = [0; 4];
                    stream.read_exact(&mut reply).expect("a reply");
                    replies.push(reply);
                }
                replies
            });

            let (accepted, _) = listener.accept().await.expect("an accepted connection");
            let session = TlsSession::new(server_config).expect("a server session");
            let mut io = ClientIo::new(accepted, Some(session), timeout, Rc::clone(&spare));
            io.handshake(Instant::now() + timeout).await.expect("a handshake");
            let mut input = Vec::new();
            let mut idle_counts = Vec::new();
            for _ in 0..3 {
                io.read(&mut input, Instant::now() + timeout).await.expect("a request");
                assert_eq!(input, b"ping");
                input.clear();
                io.queue_head_and_body(b"po", b"ng").expect("queued");
                io.flush().await.expect("sent");
                spare.give(std::mem::take(&mut input));
                io.shrink_idle_buffers();
                idle_counts.push(spare.buffers.borrow().len());
            }
            assert_eq!(client.join().expect("the client thread"), [*b"pong"; 3]);
            assert_eq!(idle_counts[1], 2, "the second idle gave back its two small buffers");
            assert_eq!(idle_counts[2], idle_counts[1], "the third request took its buffers from the list");
        });
    }

    /// A request that the idle receive took off the socket just as the idle wait ended is
    /// returned by `end_idle_receive`, not lost with the receive.
    #[test]
    fn idle_receive_end_keeps_taken_request() {
        use crate::rt::AsyncWriteExt;

        let runtime = crate::rt::build_worker_runtime(4).expect("a runtime");
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let (mut client, server) = socket_pair(&listener).await;
            let mut io = ClientIo::new(server, None, Duration::from_secs(5), Rc::new(SpareBuffers::default()));
            let mut receive = io.start_idle_receive();
            assert!(io.wait_for(&mut receive, Instant::now() + Duration::from_millis(20)).await.is_none(), "no request yet");

            let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
            let BufResult(sent, _) = client.write_all(request.to_vec()).await;
            sent.expect("a request sent");
            // The kernel completes the receive meanwhile; the connection has not looked at it.
            crate::rt::sleep(Duration::from_millis(50)).await;
            let received = io.end_idle_receive(&mut receive).await.expect("the request that was taken");
            assert_eq!(received.as_slice(), request);
            assert!(io.is_read_shut(), "the response to it must close the connection");
        });
    }

    /// With no request in the socket, `end_idle_receive` ends the receive at once (the read side
    /// is shut) instead of waiting for a request that may never come.
    #[test]
    fn idle_receive_end_is_prompt() {
        let runtime = crate::rt::build_worker_runtime(4).expect("a runtime");
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let (_client, server) = socket_pair(&listener).await;
            let mut io = ClientIo::new(server, None, Duration::from_secs(5), Rc::new(SpareBuffers::default()));
            let mut receive = io.start_idle_receive();
            assert!(io.wait_for(&mut receive, Instant::now() + Duration::from_millis(20)).await.is_none(), "no request yet");

            let started = Instant::now();
            assert!(io.end_idle_receive(&mut receive).await.is_none(), "no request was sent");
            let waited = started.elapsed();
            assert!(waited < super::SHUT_RECEIVE_WAIT / 4, "the receive ended after {waited:?}");
        });
    }

    /// Connects a client with a 4 KiB receive buffer, so that most of a large response waits in
    /// the server's send buffer.
    fn small_window_client(address: std::net::SocketAddr) -> socket2::Socket {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
        socket.set_recv_buffer_size(4096).expect("a receive buffer size");
        socket.connect(&address.into()).expect("a connection");
        socket
    }

    /// Accepts a client on `listener` and takes its first request through `end_idle_receive`, as
    /// for a request that raced an idle connection's close, so the returned connection's read
    /// side is shut. A message on `release` lets the client send the request once the receive
    /// waits.
    async fn rescue_first_request(listener: &TcpListener, release: &std::sync::mpsc::Sender<()>) -> ClientIo {
        let (accepted, _) = listener.accept().await.expect("an accepted connection");
        // Room for a whole response, so that the flush does not wait for the client.
        socket2::SockRef::from(&accepted).set_send_buffer_size(1 << 20).expect("a send buffer size");
        let mut io = ClientIo::new(accepted, None, Duration::from_secs(5), Rc::new(SpareBuffers::default()));
        let mut receive = io.start_idle_receive();
        assert!(io.wait_for(&mut receive, Instant::now() + Duration::from_millis(20)).await.is_none(), "no request yet");
        release.send(()).expect("the client waits");
        crate::rt::sleep(Duration::from_millis(50)).await;
        assert!(io.end_idle_receive(&mut receive).await.is_some(), "the request was taken");
        io
    }

    /// A connection whose read side is shut sends its FIN only once the client has acknowledged
    /// the whole response. Linux resets such a socket as soon as the client sends anything after
    /// the FIN, and the reset discards what the socket had not sent yet.
    #[test]
    fn read_shut_close_keeps_response_whole() {
        use std::io::{Read, Write};

        const RESPONSE_BYTES: usize = 300_000;
        let runtime = crate::rt::build_worker_runtime(4).expect("a runtime");
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let address = listener.local_addr().expect("a bound address");
            let (release, released) = std::sync::mpsc::channel::<()>();
            let client = std::thread::spawn(move || {
                let mut socket = std::net::TcpStream::from(small_window_client(address));
                socket.set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
                let _ = released.recv_timeout(Duration::from_secs(10));
                socket.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("a request sent");
                // The server has read that request and is closing; the client sends again.
                std::thread::sleep(Duration::from_millis(300));
                socket.write_all(b"GET /next HTTP/1.1\r\n\r\n").expect("a second request sent");
                let mut received = 0;
                let mut chunk = [0; 16 * 1024];
                // A reset after the whole response ends the loop like an end of stream.
                while let Ok(count @ 1..) = socket.read(&mut chunk) {
                    received += count;
                }
                received
            });

            let mut io = rescue_first_request(&listener, &release).await;
            io.queue(&vec![b'x'; RESPONSE_BYTES]).expect("queued");
            io.close(true).await;
            assert_eq!(client.join().expect("the client thread"), RESPONSE_BYTES);
        });
    }

    /// A client that resets its connection while a response to a request rescued at the read
    /// shut waits unacknowledged ends the close's wait at once, instead of the linger time.
    #[test]
    fn read_shut_close_ends_at_reset() {
        use std::io::Write;

        let runtime = crate::rt::build_worker_runtime(4).expect("a runtime");
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let address = listener.local_addr().expect("a bound address");
            let (release, released) = std::sync::mpsc::channel::<()>();
            let client = std::thread::spawn(move || {
                let socket = small_window_client(address);
                let _ = released.recv_timeout(Duration::from_secs(10));
                (&socket).write_all(b"GET / HTTP/1.1\r\n\r\n").expect("a request sent");
                std::thread::sleep(Duration::from_millis(300));
                // Closing with a zero linger time sends a reset.
                socket.set_linger(Some(Duration::ZERO)).expect("a zero linger time");
            });

            let mut io = rescue_first_request(&listener, &release).await;
            io.queue(&vec![b'x'; 300_000]).expect("queued");
            let started = Instant::now();
            io.close(true).await;
            let waited = started.elapsed();
            client.join().expect("the client thread");
            assert!(waited < super::LINGER_TIME / 2, "the close waited {waited:?}");
        });
    }

    /// A TLS connection whose client stopped reading closes at once after `abandon`. A plain
    /// close would queue a close_notify behind the backlog and wait the send timeout to flush it.
    #[test]
    fn abandon_closes_without_flush() {
        let (server_config, client_config) = crate::server::tls_session::tests::configs(&rustls::version::TLS13);
        let runtime = crate::rt::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
            let address = listener.local_addr().expect("a bound address");
            let (release, released) = std::sync::mpsc::channel::<()>();
            let client = std::thread::spawn(move || {
                // Small buffers at both ends, so that the backlog below fills them for certain.
                let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
                socket.set_recv_buffer_size(4096).expect("a receive buffer size");
                socket.connect(&address.into()).expect("a connection");
                let mut socket = std::net::TcpStream::from(socket);
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
                let mut session = rustls::ClientConnection::new(client_config, name).expect("a client session");
                while session.is_handshaking() {
                    session.complete_io(&mut socket).expect("a handshake");
                }
                // Reads nothing more until the test is done.
                let _ = released.recv_timeout(Duration::from_secs(20));
            });

            let send_timeout = Duration::from_secs(3);
            let (accepted, _) = listener.accept().await.expect("an accepted connection");
            socket2::SockRef::from(&accepted).set_send_buffer_size(16 * 1024).expect("a send buffer size");
            let session = TlsSession::new(server_config).expect("a server session");
            let mut io = ClientIo::new(accepted, Some(session), send_timeout, Rc::new(SpareBuffers::default()));
            io.handshake(Instant::now() + send_timeout).await.expect("a handshake");
            // More than both buffers hold, so the client's silence blocks the send.
            io.queue(&vec![b'x'; 1024 * 1024]).expect("queued");
            let flushed = crate::rt::timeout(Duration::from_millis(500), io.flush()).await;
            assert!(flushed.is_none(), "the kernel took the whole backlog");
            assert!(io.has_unsent_bytes(), "the client took nothing, so bytes wait");
            // The cancelled send may have left a little room, which a close_notify would fit
            // into. Filling it makes the test not depend on that timing.
            let socket = socket2::SockRef::from(&io.stream);
            for _ in 0..100_000 {
                if socket.send_with_flags(&[0; 64], libc::MSG_DONTWAIT).is_err() {
                    break;
                }
            }

            io.abandon();
            let started = Instant::now();
            io.close(false).await;
            let waited = started.elapsed();
            drop(release);
            client.join().expect("the client thread");
            assert!(waited < send_timeout / 3, "close waited {waited:?}");
        });
    }

    #[test]
    fn spare_buffer_reused_empty() {
        let spare = SpareBuffers::default();
        let mut buffer = Vec::with_capacity(2048);
        buffer.extend_from_slice(b"sent bytes");
        spare.give(buffer);
        let reused = spare.take();
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), 2048);
        assert_eq!(spare.take().capacity(), 0, "the list is empty again");
    }

    #[test]
    fn spare_buffers_reject_unfit_buffers() {
        let spare = SpareBuffers::default();
        spare.give(Vec::with_capacity(IDLE_BUFFER_BYTES + 1));
        spare.give(Vec::new());
        assert_eq!(spare.buffers.borrow().len(), 0);
        for _ in 0..MAX_SPARE_BUFFERS + 5 {
            spare.give(Vec::with_capacity(64));
        }
        assert_eq!(spare.buffers.borrow().len(), MAX_SPARE_BUFFERS);
    }

    #[test]
    fn first_bytes_table() {
        let cases: [(&[u8], FirstBytes); 11] = [
            (b"GET / HTTP/1.1\r\n", FirstBytes::PlainHttp),
            (b"OPTIONS * HTTP/1.1", FirstBytes::PlainHttp),
            (b"GET ", FirstBytes::PlainHttp),
            (b"\x16\x03\x01\x02\x00", FirstBytes::Tls),
            (b"\x16", FirstBytes::Tls),
            (b"", FirstBytes::Undecided),
            (b"G", FirstBytes::Undecided),
            (b"PATCH", FirstBytes::Undecided),
            (b"ABCDEFGHIJKLMNOPQRST", FirstBytes::Tls),
            (b" GET /", FirstBytes::Tls),
            (b"get / HTTP/1.1", FirstBytes::Tls),
        ];
        for (bytes, expected) in cases {
            assert_eq!(classify_first_bytes(bytes), expected, "{bytes:?}");
        }
    }
}
