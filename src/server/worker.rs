//! One worker thread: its runtime, its listeners, its connection table and the per-worker state
//! (static file cache, Date header, access log) that its connections share without locks.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{Published, Shared};
use super::access_log::{self, AccessLog};
use super::client_io::SpareBuffers;
use super::conn;
use super::upstream::Upstreams;
use crate::files::StaticFiles;
use crate::http::DateCache;
use crate::rt::{self, Shutdown, ShutdownTrigger, TcpListener};

/// Role of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain HTTP that sends a 301 to the HTTPS site for every request.
    Redirect,
    /// TLS, serving static files and the upstream.
    Https,
    /// Plain HTTP serving the same routes as HTTPS.
    Http,
}

impl ListenerKind {
    pub fn scheme(self) -> &'static str {
        match self {
            ListenerKind::Https => "https",
            ListenerKind::Redirect | ListenerKind::Http => "http",
        }
    }
}

/// A listening socket made on the main thread, handed to one worker.
pub struct WorkerListener {
    pub kind: ListenerKind,
    pub address: SocketAddr,
    pub socket: std::net::TcpListener,
}

/// State shared by the connections of one worker that were accepted under one configuration.
/// A reload gives the worker a new context for the connections it accepts from then on. The
/// worker-wide parts (the Date header, the access log, the connection table, the spare buffers,
/// shutdown) are shared by all of them. Borrow its cells only between awaits.
pub struct WorkerContext {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// The reload generation `shared` was published as.
    generation: u64,
    pub files: RefCell<StaticFiles>,
    /// The upstream servers and their idle connections, when `[upstream]` is configured.
    pub upstreams: Option<Upstreams>,
    /// Set when a reload replaced this configuration: its connections close after the request
    /// they are serving, as nginx's old workers do after a reload. A connection whose response
    /// started with keep-alive before that closes at its next idle wait.
    pub retired: Cell<bool>,
    pub date: Rc<RefCell<DateCache>>,
    pub access_log: Rc<RefCell<AccessLog>>,
    pub shutdown: Shutdown,
    /// Open connections, keyed by the slab index each connection task holds.
    pub connections: Rc<RefCell<slab::Slab<ConnectionInfo>>>,
    /// Output buffers of idle connections, lent to busy ones.
    pub spare_buffers: Rc<SpareBuffers>,
    /// Started when the last connection closes during shutdown, so that the drain ends then
    /// instead of at its next look at the table.
    pub drained: Shutdown,
}

/// Worker-side record of one open connection.
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub opened: Instant,
    pub handle: ConnectionHandle,
    /// The reload generation of the configuration it was accepted under.
    pub generation: u64,
}

/// The part of a connection the worker can reach from outside its task: what it is doing, and
/// a signal asking it to close at its next idle wait. The worker sends the signal when it runs
/// out of connection slots and after a reload.
#[derive(Clone, Default)]
pub struct ConnectionHandle {
    pub activity: Rc<Activity>,
    pub evict: Shutdown,
}

/// The state of a connection that its task records for the worker.
#[derive(Default)]
pub struct Activity {
    /// When the connection started waiting for a request, while it waits.
    pub idle_since: Cell<Option<Instant>>,
    /// Whether it has sent a response.
    pub served: Cell<bool>,
}

impl WorkerContext {
    /// Returns a context for `shared`, published as `generation`, that shares this one's
    /// worker-wide parts. Its static file cache and upstream connections start empty.
    fn next(&self, generation: u64, shared: Arc<Shared>) -> WorkerContext {
        let (files, upstreams) = empty_caches(&shared);
        WorkerContext {
            id: self.id,
            files,
            upstreams,
            shared,
            generation,
            retired: Cell::new(false),
            date: Rc::clone(&self.date),
            access_log: Rc::clone(&self.access_log),
            shutdown: self.shutdown.clone(),
            connections: Rc::clone(&self.connections),
            spare_buffers: Rc::clone(&self.spare_buffers),
            drained: self.drained.clone(),
        }
    }

    /// Returns the current IMF-fixdate for `Date` headers and log lines.
    pub fn date(&self) -> [u8; 29] {
        let mut cache = self.date.borrow_mut();
        let value = cache.header_value(std::time::SystemTime::now());
        let mut date = [b' '; 29];
        for (slot, byte) in date.iter_mut().zip(value) {
            *slot = *byte;
        }
        date
    }
}

/// Returns an empty static file cache and upstream pool for `shared`'s configuration.
fn empty_caches(shared: &Shared) -> (RefCell<StaticFiles>, Option<Upstreams>) {
    let files = StaticFiles::new(shared.static_routes.clone(), shared.static_settings.clone());
    (RefCell::new(files), shared.config.upstream.clone().map(Upstreams::new))
}

/// The context a worker gives the connections it accepts now, and the configuration that the
/// main thread publishes.
pub struct Current {
    context: RefCell<Rc<WorkerContext>>,
    published: Arc<Published>,
}

impl Current {
    /// Returns the context for a connection accepted now. When a reload published a newer
    /// configuration, the worker moves to it first.
    pub fn context(&self) -> Rc<WorkerContext> {
        let context = Rc::clone(&self.context.borrow());
        if self.published.generation() == context.generation {
            return context;
        }

        let (generation, shared) = self.published.current();
        let next = Rc::new(context.next(generation, shared));
        // Opened again also when the path is the same, as nginx's new workers do, so a log moved
        // away before the reload is not written to any more.
        reopen_access_log(&next);

        context.retired.set(true);
        // The replaced configuration's cache and pool would otherwise live as long as its last
        // connection, such as a WebSocket.
        if let Ok(mut files) = context.files.try_borrow_mut() {
            files.clear_cache();
        }
        if let Some(upstreams) = context.upstreams.as_ref() {
            upstreams.retire();
        }
        // Connections of older configurations that wait for another request close now. The
        // others close at their next idle wait, after the response they are sending, even one
        // that started with keep-alive before the reload (see `retired`). A connection that has
        // sent no response yet, such as one in its TLS handshake, is left to send its first
        // request, as nginx's old workers serve theirs.
        for (_, connection) in next.connections.borrow().iter() {
            let activity = &connection.handle.activity;
            if connection.generation != generation && activity.idle_since.get().is_some() && activity.served.get() {
                connection.handle.evict.start();
            }
        }
        tracing::debug!(worker = next.id, generation, "worker uses the reloaded configuration");
        *self.context.borrow_mut() = Rc::clone(&next);
        next
    }
}

/// Runs one worker until shutdown has drained its connections or the grace period ended.
// Called once per thread, so never inlining it costs nothing, and it keeps a symbol by which
// `scripts/profile.sh` finds the worker's instructions in a callgrind profile.
#[inline(never)]
pub fn run(id: usize, published: Arc<Published>, listeners: Vec<WorkerListener>, trigger: ShutdownTrigger) {
    let (generation, shared) = published.current();
    let runtime = match rt::build_worker_runtime(shared.config.server.receive_buffers) {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(worker = id, error = %err, "cannot create the worker's runtime");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let access_log = match AccessLog::open(&shared.config.server.access_log) {
            Ok(log) => log,
            Err(err) => {
                tracing::error!(worker = id, error = %err, path = %shared.config.server.access_log, "cannot open the access log");
                std::process::exit(1);
            }
        };
        let (files, upstreams) = empty_caches(&shared);
        let context = Rc::new(WorkerContext {
            id,
            upstreams,
            shared,
            generation,
            files,
            retired: Cell::new(false),
            date: Rc::default(),
            access_log: Rc::new(RefCell::new(access_log)),
            shutdown: Shutdown::watch(trigger),
            connections: Rc::default(),
            spare_buffers: Rc::default(),
            drained: Shutdown::default(),
        });
        let current = Rc::new(Current { context: RefCell::new(Rc::clone(&context)), published });
        let driver = rt::driver_name();
        tracing::debug!(worker = id, driver, "worker started");
        if !rt::uses_io_uring() {
            // compio logs its fallback only when built with its `enable_log` feature, which
            // ringfront does not enable. Seccomp filters and the locked-memory limit are the
            // usual reasons for it.
            tracing::warn!(worker = id, driver, "io_uring is not available, so the worker uses the slower polling driver; check the seccomp profile and the locked-memory limit (ulimit -l, systemd LimitMEMLOCK=)");
        }

        for listener in listeners {
            let socket = match TcpListener::from_std(listener.socket) {
                Ok(socket) => socket,
                Err(err) => {
                    tracing::error!(worker = id, address = %listener.address, error = %err, "cannot register the listener");
                    std::process::exit(1);
                }
            };
            rt::spawn(accept_loop(Rc::clone(&current), socket, listener.kind, listener.address));
        }
        rt::spawn(housekeeping(Rc::clone(&current)));
        drop(context);

        let shutdown = current.context().shutdown.clone();
        shutdown.wait().await;
        let context = current.context();
        drain(&context).await;
        context.access_log.borrow_mut().flush();
        tracing::debug!(worker = id, "worker stopped");
    });
}

/// Opens the access log that `context`'s configuration names in place of the worker's current
/// one, after writing out the lines buffered for the old one. On failure the old file stays.
fn reopen_access_log(context: &WorkerContext) {
    let destination = &context.shared.config.server.access_log;
    match AccessLog::open(destination) {
        Ok(log) => {
            let mut current = context.access_log.borrow_mut();
            current.flush();
            *current = log;
        }
        Err(err) => tracing::error!(worker = context.id, error = %err, path = %destination, "cannot open the access log; keeping the old file"),
    }
}

/// Waits until every connection closed or the grace period is over.
async fn drain(context: &WorkerContext) {
    let grace = context.shared.config.server.shutdown_grace;
    if !context.connections.borrow().is_empty() {
        // The last connection to close starts `drained`.
        let _ = rt::timeout(grace, context.drained.wait()).await;
    }
    let connections = context.connections.borrow();
    for (_, connection) in connections.iter().take(GRACE_LINES_PER_WORKER) {
        tracing::warn!(
            worker = context.id,
            peer = %connection.peer,
            open_for = ?connection.opened.elapsed(),
            "grace period over; closing a connection still open"
        );
    }
    let unlisted = connections.len().saturating_sub(GRACE_LINES_PER_WORKER);
    if unlisted > 0 {
        tracing::warn!(worker = context.id, connections = unlisted, "grace period over; closing more connections still open");
    }
}

/// Connections still open at the end of the grace period that each worker names in a log line
/// of its own. The rest are counted in one more line, so that thousands of stalled clients do
/// not flood the log at every stop.
const GRACE_LINES_PER_WORKER: usize = 10;

/// Does the worker's work of each second. It moves the worker to a reloaded configuration when
/// no new connection did, which closes the old one's idle connections. It writes buffered
/// access log lines, reopens the access log after SIGUSR1, and closes pooled upstream
/// connections that waited too long.
async fn housekeeping(current: Rc<Current>) {
    let mut log_generation = 0;
    loop {
        rt::sleep(access_log::FLUSH_PERIOD).await;
        let context = current.context();
        if context.shutdown.is_started() {
            break;
        }
        context.access_log.borrow_mut().flush();
        let requested = current.published.log_generation.load(std::sync::atomic::Ordering::Acquire);
        if requested != log_generation {
            log_generation = requested;
            reopen_access_log(&context);
        }
        if let Some(upstreams) = context.upstreams.as_ref() {
            upstreams.prune_idle();
        }
    }
}

/// Pause after an accept error such as EMFILE, so a full descriptor table does not turn the loop
/// into a busy spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

async fn accept_loop(current: Rc<Current>, listener: TcpListener, kind: ListenerKind, address: SocketAddr) {
    let mut accept_errors = 0u64;
    let mut last_accept_warning: Option<Instant> = None;
    // The worker-wide shutdown, so that the wait for a connection keeps no configuration alive.
    let shutdown = current.context().shutdown.clone();
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            let stop = std::pin::pin!(shutdown.wait());
            match futures_util::future::select(accept, stop).await {
                futures_util::future::Either::Left((accepted, _)) => accepted,
                futures_util::future::Either::Right(_) => break,
            }
        };
        let context = current.context();
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // The main thread stops every listener at the first stop signal, before this worker
            // notices the stop (`rt::stop_listening`). A socket that no longer listens gives EINVAL.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                if context.shutdown.is_requested() {
                    tracing::debug!(worker = context.id, %address, "listener stopped");
                    // Drain now instead of at the watcher's next look at the flag.
                    context.shutdown.start();
                } else {
                    tracing::error!(worker = context.id, %address, error = %err, "accept failed: the socket no longer listens, so this worker accepts no more connections on this address until a restart");
                }
                break;
            }
            Err(err) => {
                accept_errors += 1;
                // One line per second at most; EMFILE under attack would otherwise flood the log.
                if last_accept_warning.is_none_or(|at: Instant| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(worker = context.id, %address, error = %err, failures = accept_errors, "accept failed");
                    last_accept_warning = Some(Instant::now());
                    accept_errors = 0;
                }
                rt::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);

        if !make_room(&context) {
            tracing::warn!(worker = context.id, %peer, limit = context.shared.config.server.max_connections, "connection limit reached; closing the new connection");
            let _ = stream.close().await;
            continue;
        }

        let handle = ConnectionHandle::default();
        let info = ConnectionInfo { peer, opened: Instant::now(), handle: handle.clone(), generation: context.generation };
        let key = context.connections.borrow_mut().insert(info);
        let span = tracing::info_span!("conn", worker = context.id, %peer, listener = ?kind);
        let task_context = Rc::clone(&context);
        rt::spawn(
            async move {
                let guard = ConnectionGuard { context: Rc::clone(&task_context), key };
                conn::serve(task_context, stream, peer, kind, handle).await;
                drop(guard);
            }
            .instrument(span),
        );
    }
    rt::stop_listening(&listener);
    let _ = listener.close().await;
}

/// Makes room for one more connection under `server.max_connections`: when the table is full,
/// the connection idle the longest is asked to close. Returns `false` when no connection is idle,
/// so the new one must be refused.
fn make_room(context: &WorkerContext) -> bool {
    let connections = context.connections.borrow();
    if connections.len() < context.shared.config.server.max_connections {
        return true;
    }
    let oldest_idle = connections
        .iter()
        .filter(|(_, info)| !info.handle.evict.is_started())
        .filter_map(|(_, info)| info.handle.activity.idle_since.get().map(|since| (since, &info.handle)))
        .min_by_key(|(since, _)| *since);
    match oldest_idle {
        Some((_, handle)) => {
            handle.evict.start();
            true
        }
        None => false,
    }
}

/// Removes a connection from the worker's table when its task ends, also when the task panicked.
struct ConnectionGuard {
    context: Rc<WorkerContext>,
    key: usize,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Ok(mut connections) = self.context.connections.try_borrow_mut() {
            connections.try_remove(self.key);
            if connections.is_empty() && self.context.shutdown.is_started() {
                self.context.drained.start();
            }
        }
    }
}
