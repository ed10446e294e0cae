//! Upstream servers from one worker's point of view: which to use next, which are resting after failures,
//! and the idle keep-alive connections to each.
//!
//! State is per worker and unsynchronised: least-connections counts only this worker's requests
//! in flight, and a server marked failed by one worker is still tried by the others until they
//! fail on it too.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, Instant};

use crate::config::{Balance, UpstreamAddress, UpstreamSettings};
use crate::rt::{self, AsyncReadExt, AsyncWriteExt, BufResult, IoBuf, IoBufMut, TcpStream, UnixStream};

/// Pause between connection attempts while a Unix socket's listen backlog is full (EAGAIN).
const BACKLOG_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// A connection to an upstream server.
pub enum UpstreamStream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl UpstreamStream {
    pub async fn write_all<B: IoBuf>(&mut self, buffer: B) -> BufResult<(), B> {
        match self {
            UpstreamStream::Unix(stream) => stream.write_all(buffer).await,
            UpstreamStream::Tcp(stream) => stream.write_all(buffer).await,
        }
    }

    /// Reads into the spare capacity of `buffer`, after its current contents.
    pub async fn append<B: IoBufMut>(&mut self, buffer: B) -> BufResult<usize, B> {
        match self {
            UpstreamStream::Unix(stream) => stream.append(buffer).await,
            UpstreamStream::Tcp(stream) => stream.append(buffer).await,
        }
    }

    /// Reads into `buffer` through a shared reference, so another task may write meanwhile.
    pub async fn read_shared<B: IoBufMut>(&self, buffer: B) -> BufResult<usize, B> {
        match self {
            UpstreamStream::Unix(stream) => {
                let mut reader = stream;
                crate::rt::AsyncRead::read(&mut reader, buffer).await
            }
            UpstreamStream::Tcp(stream) => {
                let mut reader = stream;
                crate::rt::AsyncRead::read(&mut reader, buffer).await
            }
        }
    }

    /// Writes some of `buffer` with one send, through a shared reference, so another task may
    /// read meanwhile.
    pub async fn write_shared<B: IoBuf>(&self, buffer: B) -> BufResult<usize, B> {
        match self {
            UpstreamStream::Unix(stream) => {
                let mut writer = stream;
                crate::rt::AsyncWrite::write(&mut writer, buffer).await
            }
            UpstreamStream::Tcp(stream) => {
                let mut writer = stream;
                crate::rt::AsyncWrite::write(&mut writer, buffer).await
            }
        }
    }

    /// Returns the bytes written to this connection that the upstream has not read yet.
    pub fn unsent_bytes(&self) -> Option<usize> {
        match self {
            UpstreamStream::Unix(stream) => crate::rt::unsent_bytes(crate::rt::raw_fd(stream)),
            UpstreamStream::Tcp(stream) => crate::rt::unsent_bytes(crate::rt::raw_fd(stream)),
        }
    }

    /// Returns whether an idle pooled connection still looks usable: the peer has neither closed it nor
    /// sent unexpected bytes. A non-blocking peek, so it costs one system call and no wait.
    fn looks_reusable(&self) -> bool {
        let fd = match self {
            UpstreamStream::Unix(stream) => rt::raw_fd(stream),
            UpstreamStream::Tcp(stream) => rt::raw_fd(stream),
        };
        matches!(rt::peek_nonblocking(fd), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Failure to connect to any upstream server.
#[derive(Debug)]
pub enum ConnectError {
    /// The last server tried refused or was not found (Gunicorn not running, a wrong path).
    Failed(io::Error),
    /// Connecting, or waiting out a full backlog, took longer than the connect timeout.
    TimedOut,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Failed(err) => write!(f, "{err}"),
            ConnectError::TimedOut => write!(f, "timed out"),
        }
    }
}

struct Server {
    address: UpstreamAddress,
    /// Requests this worker has in flight to the server.
    active: usize,
    /// Connection failures in a row.
    failures: u32,
    resting_until: Option<Instant>,
    /// Idle keep-alive connections, most recently used last.
    idle: Vec<(UpstreamStream, Instant)>,
}

/// One worker's view of the upstream servers.
pub struct Upstreams {
    settings: UpstreamSettings,
    servers: RefCell<Vec<Server>>,
    next: std::cell::Cell<usize>,
    /// Set when a reload replaced the configuration these belong to: connections given back
    /// are closed instead of pooled, because nothing prunes a replaced pool.
    retired: std::cell::Cell<bool>,
}

/// A connection lent to one request. Give it back with [`Upstreams::release`].
pub struct Lease {
    pub stream: UpstreamStream,
    pub server: usize,
    /// The connection came from the idle pool, so the server may have closed it meanwhile.
    pub reused: bool,
}

impl Upstreams {
    pub fn new(settings: UpstreamSettings) -> Upstreams {
        let servers = settings
            .servers
            .iter()
            .map(|address| Server { address: address.clone(), active: 0, failures: 0, resting_until: None, idle: Vec::new() })
            .collect();
        Upstreams { settings, servers: RefCell::new(servers), next: std::cell::Cell::new(0), retired: std::cell::Cell::new(false) }
    }

    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// Returns the server to try next, skipping resting servers and those in `tried`. When every
    /// server is resting, the one that rests shortest is tried anyway rather than failing outright.
    fn pick(&self, tried: &[usize], now: Instant) -> Option<usize> {
        let servers = self.servers.borrow();
        let candidates: Vec<usize> = (0..servers.len()).filter(|index| !tried.contains(index)).collect();
        let awake: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&index| servers.get(index).is_some_and(|server| server.resting_until.is_none_or(|until| until <= now)))
            .collect();
        let pool = if awake.is_empty() { candidates } else { awake };
        if pool.is_empty() {
            return None;
        }
        match self.settings.balance {
            Balance::RoundRobin => {
                let start = self.next.get();
                self.next.set(start.wrapping_add(1));
                pool.get(start % pool.len()).copied()
            }
            Balance::LeastConnections => {
                pool.iter().copied().min_by_key(|&index| servers.get(index).map_or(usize::MAX, |server| server.active))
            }
        }
    }

    /// Lends a connection: a pooled idle one when `reuse` allows, else a new one. A server that
    /// refuses is marked failed and the next one is tried; the error of the last attempt is
    /// returned when all fail.
    ///
    /// # Errors
    /// A [`ConnectError`] when no server could be reached within the connect timeout.
    pub async fn acquire(&self, reuse: bool) -> Result<Lease, ConnectError> {
        let deadline = Instant::now() + self.settings.connect_timeout;
        let mut tried = Vec::new();
        let mut last_error = ConnectError::TimedOut;
        while let Some(index) = self.pick(&tried, Instant::now()) {
            tried.push(index);
            if reuse && let Some(stream) = self.take_idle(index) {
                self.begin(index);
                return Ok(Lease { stream, server: index, reused: true });
            }
            let Some(address) = self.servers.borrow().get(index).map(|server| server.address.clone()) else { break };
            match connect(&address, deadline).await {
                Ok(stream) => {
                    self.begin(index);
                    return Ok(Lease { stream, server: index, reused: false });
                }
                Err(err) => {
                    tracing::warn!(upstream = %address, error = %err, "connecting to the upstream failed");
                    self.record_failure(index);
                    last_error = err;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// Takes back a lent connection. With `reusable`, it joins the idle pool if there is room.
    pub fn release(&self, lease: Lease, reusable: bool) {
        let mut servers = self.servers.borrow_mut();
        let Some(server) = servers.get_mut(lease.server) else { return };
        server.active = server.active.saturating_sub(1);
        server.failures = 0;
        server.resting_until = None;
        if reusable && self.settings.keepalive > 0 && !self.retired.get() {
            if server.idle.len() >= self.settings.keepalive {
                server.idle.remove(0);
            }
            server.idle.push((lease.stream, Instant::now()));
        }
    }

    /// Takes back a connection whose exchange failed; it is closed.
    pub fn discard(&self, lease: Lease) {
        let mut servers = self.servers.borrow_mut();
        if let Some(server) = servers.get_mut(lease.server) {
            server.active = server.active.saturating_sub(1);
        }
    }

    fn begin(&self, index: usize) {
        if let Some(server) = self.servers.borrow_mut().get_mut(index) {
            server.active += 1;
        }
    }

    fn take_idle(&self, index: usize) -> Option<UpstreamStream> {
        let mut servers = self.servers.borrow_mut();
        let server = servers.get_mut(index)?;
        let now = Instant::now();
        while let Some((stream, since)) = server.idle.pop() {
            if now.duration_since(since) < self.settings.keepalive_timeout && stream.looks_reusable() {
                return Some(stream);
            }
        }
        None
    }

    fn record_failure(&self, index: usize) {
        let mut servers = self.servers.borrow_mut();
        let Some(server) = servers.get_mut(index) else { return };
        server.failures = server.failures.saturating_add(1);
        if server.failures >= self.settings.max_fails {
            server.resting_until = Some(Instant::now() + self.settings.fail_timeout);
            server.idle.clear();
        }
    }

    /// Closes the pooled connections and pools no more, for a configuration a reload replaced.
    pub fn retire(&self) {
        self.retired.set(true);
        for server in self.servers.borrow_mut().iter_mut() {
            server.idle.clear();
        }
    }

    /// Closes pooled connections that waited longer than the keep-alive timeout.
    pub fn prune_idle(&self) {
        let now = Instant::now();
        for server in self.servers.borrow_mut().iter_mut() {
            server.idle.retain(|(_, since)| now.duration_since(*since) < self.settings.keepalive_timeout);
        }
    }
}

/// Connects to one server before `deadline`, retrying while a Unix socket's backlog is full.
///
/// A Unix socket whose backlog is full fails a non-blocking connect with EAGAIN instead of
/// queueing it as TCP does; Gunicorn under a burst hits this, and a short retry usually gets in.
async fn connect(address: &UpstreamAddress, deadline: Instant) -> Result<UpstreamStream, ConnectError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = match address {
            UpstreamAddress::Unix(path) => rt::timeout(left, UnixStream::connect(path)).await.map(|result| result.map(UpstreamStream::Unix)),
            UpstreamAddress::Tcp(socket) => rt::timeout(left, TcpStream::connect(*socket)).await.map(|result| {
                result.map(|stream| {
                    let _ = stream.set_nodelay(true);
                    UpstreamStream::Tcp(stream)
                })
            }),
        };
        match attempt {
            None => return Err(ConnectError::TimedOut),
            Some(Ok(stream)) => return Ok(stream),
            Some(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() + BACKLOG_RETRY_PAUSE >= deadline {
                    return Err(ConnectError::TimedOut);
                }
                rt::sleep(BACKLOG_RETRY_PAUSE).await;
            }
            Some(Err(err)) => return Err(ConnectError::Failed(err)),
        }
    }
}
