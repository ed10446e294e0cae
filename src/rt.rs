//! The one module that uses the async runtime directly: compio on io_uring, with its polling driver as
//! the fallback where io_uring is blocked (for example by Docker's default seccomp profile).
//!
//! Everything else in the crate reaches the runtime through the names re-exported or defined
//! here, so replacing compio means rewriting this file and the socket calls in `server`, not the
//! protocol code. This module owns listener creation (SO_REUSEPORT), task spawning, timers, the
//! blocking pool and the shared-buffer type handed to the kernel.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::waiters::{Event, EventWait};

pub use compio::BufResult;
pub use compio::buf::{IntoInner, IoBuf, IoBufMut, Slice};
pub use compio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
pub use compio::net::{TcpListener, TcpStream, UnixStream};
pub use compio::runtime::Runtime;

/// Size of each buffer in a worker's provided-buffer pool. A receive takes a buffer only when
/// data arrives, so an idle connection keeps none. The data is copied out and the buffer
/// returned at once, so the pool (`server.receive_buffers`) only needs to cover the receives
/// completing in one loop turn.
const RECEIVE_POOL_BUFFER_BYTES: usize = 16 * 1024;

/// Pending submissions the ring holds. Sized for thousands of connections per worker, each with
/// at most one read or write in flight.
const RING_ENTRIES: u32 = 4096;

/// Builds the runtime of one worker thread, on io_uring when the kernel allows it.
///
/// COOP_TASKRUN with the TASKRUN flag lets the kernel skip the inter-processor interrupt that a
/// plain ring uses to run completion work, which matters with one busy thread per core.
/// SINGLE_ISSUER with DEFER_TASKRUN served requests at the same rate, within the noise, but made
/// about 16 % more system calls per request. SQPOLL lost on both counts. BENCHMARKS.md has both
/// measurements ("Ring set-up, crypto provider and zero-copy sends", and "System calls").
///
/// # Errors
/// Fails when neither io_uring nor the polling driver can be set up.
pub fn build_worker_runtime(receive_buffers: u32) -> io::Result<Runtime> {
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor.capacity(RING_ENTRIES).coop_taskrun(true).taskrun_flag(true);
    let count = u16::try_from(receive_buffers).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "receive pool larger than 65535 buffers"))?;
    if let Some(buffers) = std::num::NonZero::new(count) {
        proactor.buffer_pool_size(buffers).buffer_pool_buffer_len(RECEIVE_POOL_BUFFER_BYTES);
    }
    // Debug builds with `RINGFRONT_TEST_POLLING_DRIVER` set use the polling driver, so that
    // tests cover the fallback that a blocked io_uring selects.
    #[cfg(debug_assertions)]
    if std::env::var_os("RINGFRONT_TEST_POLLING_DRIVER").is_some() {
        proactor.driver_type(compio::driver::DriverType::Poll);
    }
    let runtime = Runtime::builder().with_proactor(proactor).build()?;
    // compio sets the pool up at its first use, the worker's first receive, so a pool the
    // kernel rejects would fail every connection. Set up here, it stops the start with its
    // error. Its memory is a fixed cost of the worker, and shows in the worker's size at start.
    if count > 0 {
        runtime
            .buffer_pool()
            .map_err(|err| io::Error::new(err.kind(), format!("cannot set up the pool of {count} receive buffers (server.receive_buffers): {err}; a lower count or a higher locked-memory limit (ulimit -l, systemd LimitMEMLOCK=) may help")))?;
    }
    Ok(runtime)
}

/// Receives from `stream` and appends what arrived to `input`. Returns 0 at end of stream.
///
/// The receive uses the worker's provided-buffer pool, so no memory is tied to a connection
/// while it waits for data. When the pool is empty, it falls back to a receive into `input`
/// itself, reserving `fallback_bytes`.
///
/// # Errors
/// The receive error.
pub async fn receive_into(stream: &mut TcpStream, input: &mut Vec<u8>, fallback_bytes: usize) -> io::Result<usize> {
    use compio::io::AsyncReadManaged;

    match stream.read_managed(0).await {
        Ok(Some(buffer)) => {
            let received = buffer.as_init();
            input.extend_from_slice(received);
            Ok(received.len())
        }
        Ok(None) => Ok(0),
        Err(err) if is_pool_empty(&err) => {
            input.reserve(fallback_bytes);
            let BufResult(result, buffer) = stream.append(std::mem::take(input)).await;
            *input = buffer;
            result
        }
        Err(err) => Err(err),
    }
}

/// Returns whether a receive failed because the provided-buffer pool had no free buffer. The
/// kernel reports ENOBUFS, which compio turns into `ResourceBusy` with a message of its own. Its
/// polling driver reports the same kind.
fn is_pool_empty(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::ResourceBusy || err.raw_os_error() == Some(libc::ENOBUFS)
}

/// A receive that owns its handle to the socket, so that it can be moved while in flight. A
/// keep-alive connection starts one when it goes idle. If the connection stays idle, it hands
/// the receive over to the smaller future that waits in its place (see `server::conn`).
/// Dropping a receive cancels it, and bytes that arrive during the cancellation can be lost, so
/// a receive that must not lose bytes is moved, never dropped and restarted.
///
/// It takes a buffer from the provided-buffer pool like [`receive_into`], and one of
/// `fallback_bytes` of its own when the pool is empty. The pooled receive is compio's operation
/// future itself, so starting one allocates nothing beyond compio's own operation. Only the
/// rare fallback is a boxed future. A boxed `async` block in its place cost about 0.6k
/// instructions per keep-alive request in `scripts/profile.sh`.
pub struct OwnedReceive {
    stream: TcpStream,
    fallback_bytes: usize,
    state: ReceiveState,
}

type PooledReceive = compio::runtime::Submit<compio::driver::op::RecvManaged<compio::driver::SharedFd<Socket>>>;

enum ReceiveState {
    Pooled(PooledReceive),
    Fallback(Pin<Box<dyn Future<Output = io::Result<Received>>>>),
    /// Set when the receive could not start; the error is returned at the first poll.
    Failed(Option<io::Error>),
}

/// The bytes an [`OwnedReceive`] got, none at end of stream.
pub enum Received {
    Pooled(compio::driver::BufferRef),
    Owned(Vec<u8>),
}

impl Received {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Received::Pooled(buffer) => buffer.as_init(),
            Received::Owned(buffer) => buffer,
        }
    }
}

impl OwnedReceive {
    /// Starts a receive for data that is not expected to be there yet, such as the next
    /// request of an idle connection.
    pub fn start(stream: &TcpStream, fallback_bytes: usize) -> OwnedReceive {
        use compio::driver::{PollFirst, ToSharedFd};

        let started = Runtime::with_current(|runtime| {
            let pool = runtime.buffer_pool()?;
            let mut op = compio::driver::op::RecvManaged::new(stream.to_shared_fd(), &pool, 0, compio::driver::op::RecvFlags::empty())?;
            // The next request seldom waits in the socket yet, so the kernel is asked to wait
            // for data before its first attempt (IORING_RECVSEND_POLL_FIRST), which would fail.
            op.poll_first();
            io::Result::Ok(runtime.submit(op))
        });
        let state = match started {
            Ok(submit) => ReceiveState::Pooled(submit),
            Err(err) => ReceiveState::Failed(Some(err)),
        };
        OwnedReceive { stream: stream.clone(), fallback_bytes, state }
    }

    /// Starts a receive into a buffer of its own, for when the pool had none free.
    fn fall_back(&mut self) {
        let mut stream = self.stream.clone();
        let capacity = self.fallback_bytes;
        self.state = ReceiveState::Fallback(Box::pin(async move {
            let BufResult(result, buffer) = stream.read(Vec::with_capacity(capacity)).await;
            result.map(|_| Received::Owned(buffer))
        }));
    }
}

impl Future for OwnedReceive {
    type Output = io::Result<Received>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        use compio::driver::ResultTakeBuffer;

        loop {
            let result = match &mut self.state {
                ReceiveState::Pooled(submit) => std::task::ready!(Pin::new(submit).poll(cx)),
                ReceiveState::Fallback(future) => return future.as_mut().poll(cx),
                ReceiveState::Failed(err) => {
                    return Poll::Ready(Err(err.take().unwrap_or_else(|| io::Error::other("receive polled after it failed"))));
                }
            };
            // SAFETY: the length is the kernel's result for this receive, the count of bytes it
            // wrote into the buffer it selected from the pool.
            match unsafe { result.take_buffer() } {
                Ok(Some(buffer)) => return Poll::Ready(Ok(Received::Pooled(buffer))),
                Ok(None) => return Poll::Ready(Ok(Received::Owned(Vec::new()))),
                Err(err) if is_pool_empty(&err) => self.fall_back(),
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

/// Returns whether the running worker's driver is io_uring, not the polling fallback.
pub fn uses_io_uring() -> bool {
    Runtime::with_current(|runtime| runtime.driver_type().is_iouring())
}

/// Returns "io_uring" or "polling" for the running worker's driver, for the start-up log.
pub fn driver_name() -> &'static str {
    if uses_io_uring() { "io_uring" } else { "polling" }
}

/// Spawns a task on the current worker. A panic inside it ends only that task: the executor
/// catches it and the worker goes on.
pub fn spawn<F: Future + 'static>(future: F) {
    compio::runtime::spawn(future).detach();
}

/// Runs `f` on the runtime's blocking thread pool and waits for it without blocking the worker's
/// other tasks. Returns `None` when `f` panicked.
pub async fn spawn_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    compio::runtime::spawn_blocking(f).await.ok()
}

pub async fn sleep(duration: Duration) {
    compio::time::sleep(duration).await;
}

/// Runs `future` for at most `duration`. Returns `None` on expiry, after the future (and with it
/// any operation it had in the ring) is dropped and so cancelled.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    compio::time::timeout(duration, future).await.ok()
}

/// A connection's timer for the deadlines of its reads and writes.
///
/// [`timeout`] inserts a timer into the runtime's timer map and removes it again for every
/// operation: about 2k instructions per keep-alive request (a read and a write) in a callgrind
/// profile. A connection's deadlines nearly always move forward, so this keeps one timer armed
/// for its earliest deadline and re-arms it only when it fires before the deadline now in force,
/// or when a new deadline comes before the armed one. An idle connection has one armed timer, as
/// with [`timeout`].
#[derive(Default)]
pub struct Timer {
    armed: Option<Pin<Box<dyn Future<Output = ()>>>>,
    fires_at: Option<Instant>,
    /// The waker the armed timer last saw. While it is the caller's and the firing time lies
    /// ahead, polling the timer again (a search of the runtime's timer map) can be skipped.
    registered: Option<Waker>,
}

impl Timer {
    /// Runs `future` until it completes or `deadline` passes. Returns `None` on expiry, after the
    /// future (and with it any operation it had in the ring) is dropped and so cancelled.
    pub fn until<F: Future>(&mut self, deadline: Instant, future: F) -> Until<'_, F> {
        Until { timer: self, deadline, future }
    }

    /// Polls the armed timer for `deadline`, re-arming it where needed. Ready means the deadline
    /// has passed.
    fn poll_deadline(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        // Two rounds at most: an early firing re-arms once for `deadline`, and a timer armed for
        // `deadline` that fires means the deadline has passed.
        for _ in 0..2 {
            let armed = match (&mut self.armed, self.fires_at) {
                (Some(armed), Some(fires_at)) if fires_at <= deadline => {
                    let same_waker = self.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker()));
                    if same_waker && Instant::now() < fires_at {
                        return Poll::Pending;
                    }
                    armed
                }
                _ => {
                    self.fires_at = Some(deadline);
                    self.armed.insert(Box::pin(compio::time::sleep_until(deadline)))
                }
            };
            if armed.as_mut().poll(cx).is_pending() {
                if !self.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                    self.registered = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            self.armed = None;
            self.fires_at = None;
            self.registered = None;
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
        }
        Poll::Ready(())
    }
}

/// The future of [`Timer::until`]. A plain struct rather than an `async fn`, because an
/// `async fn` keeps its argument and the pinned copy of it both in its state, and this future
/// is part of every idle connection's state.
pub struct Until<'a, F> {
    timer: &'a mut Timer,
    deadline: Instant,
    future: F,
}

impl<F: Future> Future for Until<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self` (this type
        // has no other method that touches it and no Drop impl), and it is dropped in place with
        // `self`. `timer` and `deadline` are not pinned, and are only used through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above, `this.future` stays at this address until it is dropped.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        this.timer.poll_deadline(this.deadline, cx).map(|()| None)
    }
}

/// Checks that nothing else listens on `addr`, so that a second server does not silently join
/// ours, or we theirs, through SO_REUSEPORT.
///
/// The probe binds without SO_REUSEPORT: the kernel rejects it while any socket, reuse-port or
/// not, is bound to the address. A TIME_WAIT leftover does not count thanks to SO_REUSEADDR.
///
/// # Errors
/// Returns the bind error, `AddrInUse` when another process has the port.
pub fn probe_address(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())
}

/// Opens one worker's listening socket on `addr` with SO_REUSEPORT, so that every worker has its
/// own accept queue and the kernel spreads connections between them.
///
/// # Errors
/// Returns the socket, bind or listen error.
pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Makes a listening socket refuse new connections at once, and reset those queued but not yet
/// accepted, as nginx does when it closes its listeners at shutdown. Closing the socket is not
/// enough: the cancelled accept keeps it in the ring until the ring is torn down, which the
/// kernel finishes after the process exits, and until then connections were accepted into the
/// queue and reset.
pub fn stop_listening(listener: &impl std::os::fd::AsFd) {
    // Shutting down the read side of a listening socket moves it out of the listening state.
    if let Err(err) = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Read) {
        tracing::debug!(error = %err, "cannot stop the listener");
    }
}

/// Shuts the read side of a connected socket. A receive in flight on it ends at once, with the
/// bytes already in the socket or none, and every later receive gets end of stream once the
/// socket's buffer is empty. Nothing is sent to the peer.
///
/// # Errors
/// The `shutdown` error, such as ENOTCONN when the peer has already reset the connection.
pub fn shut_read(stream: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Read)
}

/// Hands an open file to the runtime for positional reads on the ring.
pub fn runtime_file(file: std::fs::File) -> compio::fs::File {
    use std::os::fd::{FromRawFd, IntoRawFd};

    let fd = file.into_raw_fd();
    // SAFETY: `fd` comes from `into_raw_fd` on an open file, so it is valid and nothing else owns
    // or will close it. The returned File takes over that ownership.
    unsafe { compio::fs::File::from_raw_fd(fd) }
}

/// Raises the soft limit on open file descriptors to the hard limit, as nginx's
/// `worker_rlimit_nofile` lets operators do: every client connection, upstream connection, open
/// large file and temporary body file takes a descriptor, and the common soft default of 1024 is
/// far below what one worker serves. Returns the limit now in force.
///
/// # Errors
/// The `getrlimit` or `setrlimit` error.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit that the call only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// Bytes moved per splice step at most, and the pipe capacities asked for, largest first.
///
/// Each step's splice from the file ran on io_uring's worker threads here, and those threads
/// took most of the CPU time of a large response. Fewer, larger steps thus cost less: with 1 MiB
/// steps a 16 MiB file took about 40 % less CPU time than with 256 KiB steps (BENCHMARKS.md).
///
/// Linux grants an unprivileged process pipes of up to /proc/sys/fs/pipe-max-size (1 MiB by
/// default). Once a user's pipes hold more than /proc/sys/fs/pipe-user-pages-soft pages (64 MiB
/// by default), its new pipes get 8 KiB and cannot grow, so 64 transfers at once get 1 MiB
/// pipes. The smaller capacity is the fallback when the larger one is refused. A pipe that
/// keeps its default 64 KiB only takes more steps.
const SPLICE_CHUNK: usize = 1024 * 1024;
const SPLICE_PIPE_CAPACITIES: [usize; 2] = [SPLICE_CHUNK, 256 * 1024];

/// Sends `len` bytes of `file` from `offset` to `socket` with splice(2) through a pipe, so the
/// bytes go from the page cache to the socket without a copy through user space. `timeout`
/// bounds each step, like a send timeout. Adds each completed step's bytes to `sent`. A step cut
/// short by the timeout counts nothing, because a cancelled splice does not report what it moved.
///
/// # Errors
/// `UnexpectedEof` when the file is shorter than `offset + len` (it shrank since its stat),
/// `TimedOut` when the client stops reading, or the splice error.
pub async fn splice_file_to_socket(
    file: &compio::fs::File,
    offset: u64,
    len: u64,
    socket: &TcpStream,
    timeout: Duration,
    sent: &mut u64,
) -> io::Result<()> {
    let (receiver, sender) = compio::fs::pipe::anonymous().await?;
    for capacity in SPLICE_PIPE_CAPACITIES {
        if set_pipe_capacity(&sender, capacity) {
            break;
        }
    }
    let end = offset.saturating_add(len);
    let mut position = offset;
    while position < end {
        let want = usize::try_from(end - position).unwrap_or(SPLICE_CHUNK).min(SPLICE_CHUNK);
        let start = i64::try_from(position).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let fill = compio::fs::pipe::splice(file, &sender, want).offset_in(start);
        let filled = match crate::rt::timeout(timeout, std::future::IntoFuture::into_future(fill)).await {
            Some(result) => result?,
            None => return Err(io::Error::from(io::ErrorKind::TimedOut)),
        };
        if filled == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while it was sent"));
        }
        let mut drained = 0;
        while drained < filled {
            let drain = compio::fs::pipe::splice(&receiver, socket, filled - drained);
            let moved = match crate::rt::timeout(timeout, std::future::IntoFuture::into_future(drain)).await {
                Some(result) => result?,
                None => return Err(io::Error::from(io::ErrorKind::TimedOut)),
            };
            if moved == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            drained += moved;
            *sent += moved as u64;
        }
        position += filled as u64;
    }
    Ok(())
}

/// Asks for a larger pipe buffer so each splice moves more, and returns whether the kernel
/// granted it.
fn set_pipe_capacity(pipe: &impl std::os::fd::AsRawFd, bytes: usize) -> bool {
    let Ok(bytes) = libc::c_int::try_from(bytes) else { return false };
    // SAFETY: F_SETPIPE_SZ takes an int argument and touches no memory of ours. The descriptor
    // is open for the duration of the call because `pipe` is borrowed.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) >= bytes }
}

/// Returns the file descriptor of a runtime socket, for the few calls compio does not wrap.
pub fn raw_fd(socket: &impl std::os::fd::AsRawFd) -> std::os::fd::RawFd {
    socket.as_raw_fd()
}

/// Returns how many bytes written to the socket `fd` its peer has not taken yet: for TCP the
/// bytes not sent or not acknowledged, for a Unix stream the bytes not read. `None` when the
/// kernel does not report it. A count that falls while a send waits shows that the peer is reading.
pub fn unsent_bytes(fd: std::os::fd::RawFd) -> Option<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ on Linux, `linux/sockios.h`) writes one int through the
    // pointer, which points at `queued`, alive for the whole call.
    let result = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &raw mut queued) };
    if result != 0 {
        return None;
    }
    usize::try_from(queued).ok()
}

/// Peeks at one byte of `fd` without blocking and without consuming it: `Ok(0)` means the peer
/// closed, `Ok(1)` that data is waiting, `WouldBlock` that the socket is idle and open.
///
/// # Errors
/// The `recv` error, `WouldBlock` included.
pub fn peek_nonblocking(fd: std::os::fd::RawFd) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: `byte` is a valid, writable buffer of length 1 for the duration of the call, and
    // `recv` with MSG_PEEK | MSG_DONTWAIT neither blocks nor keeps the pointer.
    let received = unsafe {
        libc::recv(fd, (&raw mut byte).cast::<libc::c_void>(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    };
    usize::try_from(received).map_err(|_| io::Error::last_os_error())
}

/// A byte range of shared, immutable memory that can be handed to the kernel for a write without
/// a copy: a cached file body or its compressed variant.
#[derive(Clone)]
pub struct SharedBytes {
    bytes: Arc<[u8]>,
    range: Range<usize>,
}

impl SharedBytes {
    /// Returns `None` when `range` is not inside `bytes`.
    pub fn new(bytes: Arc<[u8]>, range: Range<usize>) -> Option<SharedBytes> {
        bytes.get(range.clone())?;
        Some(SharedBytes { bytes, range })
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(self.range.clone()).unwrap_or_default()
    }
}

// The Arc keeps the memory alive and unmoved for as long as the kernel may read it, because the
// runtime keeps this value until the operation completes.
impl IoBuf for SharedBytes {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Process-wide shutdown request, set from the signal thread and seen by every worker.
#[derive(Clone, Default)]
pub struct ShutdownTrigger {
    flag: Arc<std::sync::atomic::AtomicBool>,
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// How often a worker looks at the process-wide shutdown flag. It bounds how late a worker starts
/// draining after SIGTERM and costs one timer wake-up per period.
const SHUTDOWN_POLL_PERIOD: Duration = Duration::from_millis(50);

/// One worker's view of shutdown: tasks await [`Shutdown::wait`] without any cross-thread
/// synchronisation; a single watcher task per worker copies the process-wide flag into it.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    /// The process-wide flag a worker's shutdown watches. `None` for a shutdown started only
    /// from its own worker, such as a connection's eviction, which then allocates no flag.
    trigger: Option<ShutdownTrigger>,
    started: Event,
}

impl Shutdown {
    /// Starts the task that watches `trigger` and wakes this worker's waiters when it fires.
    pub fn watch(trigger: ShutdownTrigger) -> Shutdown {
        let shutdown = Shutdown { inner: Rc::new(ShutdownInner { trigger: Some(trigger.clone()), ..ShutdownInner::default() }) };
        let local = shutdown.clone();
        spawn(async move {
            while !trigger.is_triggered() {
                sleep(SHUTDOWN_POLL_PERIOD).await;
            }
            local.start();
        });
        shutdown
    }

    pub fn start(&self) {
        self.inner.started.happen();
    }

    pub fn is_started(&self) -> bool {
        self.inner.started.has_happened()
    }

    /// Returns whether the process has been asked to stop. That can be up to
    /// [`SHUTDOWN_POLL_PERIOD`] before this worker's shutdown starts.
    pub fn is_requested(&self) -> bool {
        self.is_started() || self.inner.trigger.as_ref().is_some_and(ShutdownTrigger::is_triggered)
    }

    /// Completes once shutdown has started.
    pub fn wait(&self) -> EventWait<Shutdown> {
        EventWait::new(self.clone())
    }
}

impl AsRef<Event> for Shutdown {
    fn as_ref(&self) -> &Event {
        &self.inner.started
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Timer;

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        compio::runtime::Runtime::new().expect("a runtime").block_on(future)
    }

    #[test]
    fn shutdown_requested_before_it_starts() {
        run(async {
            let trigger = super::ShutdownTrigger::default();
            let shutdown = super::Shutdown::watch(trigger.clone());
            assert!(!shutdown.is_requested());
            trigger.trigger();
            assert!(shutdown.is_requested());
            assert!(!shutdown.is_started(), "the watcher has not run yet");
            shutdown.start();
            assert!(shutdown.is_started());
        });
    }

    #[test]
    fn timer_returns_output_before_deadline() {
        let output = run(async { Timer::default().until(Instant::now() + Duration::from_secs(5), async { 7 }).await });
        assert_eq!(output, Some(7));
    }

    #[test]
    fn timer_expires_at_deadline() {
        let started = Instant::now();
        let output = run(async { Timer::default().until(started + Duration::from_millis(50), std::future::pending::<()>()).await });
        assert_eq!(output, None);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn early_firing_timer_rearms_for_later_deadline() {
        let started = Instant::now();
        let output = run(async {
            let mut timer = Timer::default();
            let first = timer.until(started + Duration::from_millis(30), super::sleep(Duration::from_millis(5))).await;
            assert_eq!(first, Some(()));
            // The timer armed for 30 ms fires first, and the wait must go on until 120 ms.
            timer.until(started + Duration::from_millis(120), std::future::pending::<()>()).await
        });
        assert_eq!(output, None);
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn earlier_deadline_rearms_at_once() {
        let started = Instant::now();
        let output = run(async {
            let mut timer = Timer::default();
            // Pending at first, so the timer is armed for 10 s.
            let first = timer.until(started + Duration::from_secs(10), super::sleep(Duration::from_millis(5))).await;
            assert_eq!(first, Some(()));
            timer.until(started + Duration::from_millis(40), std::future::pending::<()>()).await
        });
        assert_eq!(output, None);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(40));
        assert!(elapsed < Duration::from_secs(5));
    }
}
