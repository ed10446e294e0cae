//! The running server: the start-up sequence on the main thread, the worker threads, and the
//! wait for a stop signal.
//!
//! Start-up checks everything that can fail before a worker starts (the TLS files, that each
//! address is free, each bind), so a bad deployment fails at once with one clear message.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod access_log;
mod client_io;
mod conn;
mod proxy;
mod spool;
mod tls_records;
#[cfg(fuzzing)]
pub use tls_records::fuzz_session as fuzz_tls_records;
mod tls_session;
mod upgrade;
mod upstream;
mod worker;

pub(crate) use spool::create_unnamed_file;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::config::Config;
use crate::files::{RouteError, StaticRoute, StaticSettings};
use crate::http::RequestHead;
use crate::rt::{self, ShutdownTrigger};
use crate::tls::{self, TlsSetupError};

use worker::{ListenerKind, WorkerListener};

/// Connections the kernel queues per listening socket before the worker accepts them.
const LISTEN_BACKLOG: i32 = 4096;

/// Read-only state shared by every worker.
pub struct Shared {
    pub config: Config,
    tls: Option<Arc<rustls::ServerConfig>>,
    pub static_routes: Vec<StaticRoute>,
    pub static_settings: StaticSettings,
    /// `:PORT` appended to redirect targets, empty when the HTTPS port is 443.
    https_port_suffix: String,
    /// Debug builds with `RINGFRONT_TEST_PANIC_ROUTE` set panic on one path, for tests.
    #[cfg(debug_assertions)]
    test_panic_route: bool,
    /// Debug builds with `RINGFRONT_TEST_IDLE_END_DELAY_MS` set wait that long between the end
    /// of an idle wait and the end of its receive, so that tests can send a request into the
    /// receive at that moment, which is otherwise a race.
    #[cfg(debug_assertions)]
    test_idle_end_delay: Option<std::time::Duration>,
}

impl Shared {
    /// Returns the TLS configuration. Only HTTPS listeners call this, and they exist only with one.
    fn tls(&self) -> &Arc<rustls::ServerConfig> {
        match &self.tls {
            Some(tls) => tls,
            None => unreachable!("an HTTPS listener exists only when [https] is configured"),
        }
    }

    /// Writes the `Location` of a redirect to HTTPS. The host is the request's own only when it
    /// is one of the configured server names, so a forged Host cannot send a client elsewhere.
    fn write_redirect_location(&self, request: &RequestHead, out: &mut Vec<u8>) {
        let names = self.config.https.as_ref().map(|https| https.server_names.as_slice()).unwrap_or_default();
        let requested = request.header("host").map(host_without_port).unwrap_or_default();
        let host = names
            .iter()
            .find(|name| name.as_bytes().eq_ignore_ascii_case(requested))
            .or_else(|| names.first())
            .map_or("localhost", String::as_str);
        let target = if request.target.starts_with('/') { request.target.as_str() } else { "/" };
        out.extend_from_slice(b"https://");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(self.https_port_suffix.as_bytes());
        out.extend_from_slice(target.as_bytes());
    }
}

/// The configuration the workers serve new connections with, which a reload replaces, and the
/// other process-wide counters the signal thread raises.
pub struct Published {
    /// Raised by each reload. A worker compares it with its own for each connection it accepts,
    /// one atomic load, and takes the lock only when they differ.
    generation: AtomicU64,
    current: Mutex<Arc<Shared>>,
    /// Raised by SIGUSR1: workers reopen their access log file when it changes (logrotate).
    pub log_generation: AtomicU64,
}

impl Published {
    fn new(shared: Arc<Shared>) -> Published {
        Published { generation: AtomicU64::new(0), current: Mutex::new(shared), log_generation: AtomicU64::new(0) }
    }

    /// Returns the generation of the configuration published last.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Returns the configuration published last, with its generation.
    pub fn current(&self) -> (u64, Arc<Shared>) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (self.generation.load(Ordering::Acquire), Arc::clone(&current))
    }

    /// Replaces the configuration for the connections accepted from now on.
    fn publish(&self, shared: Arc<Shared>) -> u64 {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        *current = shared;
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// Strips a `:port` from a Host header value (RFC 9110 §7.2), keeping IPv6 literals whole.
fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => host.get(..colon).unwrap_or(host),
        None => host,
    }
}

/// A failure that makes the server exit with an error: at start, or a worker that panicked.
#[derive(Debug)]
pub enum ServerError {
    Tls(TlsSetupError),
    /// An address is taken by another process, or cannot be bound.
    Bind { address: SocketAddr, error: io::Error },
    AccessLog { path: String, error: io::Error },
    Static(RouteError),
    Signals(io::Error),
    Thread(io::Error),
    /// Worker threads that panicked, after the others stopped. Panics inside a connection's task
    /// end only that task; these came from outside any task.
    WorkerPanicked { count: usize },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Tls(err) => write!(f, "{err}"),
            ServerError::Bind { address, error } if error.kind() == io::ErrorKind::AddrInUse => write!(
                f,
                "cannot listen on {address}: the address is already in use by another process; stop it or change the listen address"
            ),
            ServerError::Bind { address, error } => write!(f, "cannot listen on {address}: {error}"),
            ServerError::AccessLog { path, error } => write!(f, "cannot open the access log {path}: {error}"),
            ServerError::Signals(err) => write!(f, "cannot install the signal handlers: {err}"),
            ServerError::Thread(err) => write!(f, "cannot start a worker thread: {err}"),
            ServerError::Static(err) => write!(f, "invalid static route: {err}"),
            ServerError::WorkerPanicked { count } => write!(f, "{count} worker thread(s) panicked; the log has the panic message"),
        }
    }
}

impl std::error::Error for ServerError {}

/// Resolves `server.workers`: 0 means one per CPU the process may run on.
pub fn worker_count(config: &Config) -> usize {
    match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |count| count.get()),
        count => count,
    }
}

/// The handlers of the signals the server acts on. The default action of SIGHUP and SIGUSR1 ends
/// the process, and a reload or log rotation that comes during start-up must not stop the
/// server, so those two are installed before the configuration is read. The stop signals keep
/// their default action until [`run`] starts, so that a stop requested while the configuration
/// is read (from a pipe that never ends, say) takes effect at once.
pub struct SignalHandlers(signal_hook::iterator::Signals);

/// Installs the handlers for SIGHUP and SIGUSR1. Signals that arrive before [`run`] waits for
/// them are kept and acted on then.
///
/// # Errors
/// `Signals` when the handlers cannot be installed.
pub fn install_signal_handlers() -> Result<SignalHandlers, ServerError> {
    use signal_hook::consts::{SIGHUP, SIGUSR1};
    let signals = signal_hook::iterator::Signals::new([SIGHUP, SIGUSR1]).map_err(ServerError::Signals)?;
    Ok(SignalHandlers(signals))
}

/// Runs the server until SIGTERM or SIGINT, then drains it. Returns once every worker stopped.
/// SIGHUP reads the configuration at `config_path` again (see [`reload`]).
///
/// # Errors
/// Returns a [`ServerError`] when anything needed to serve is missing, and nothing is served
/// then, or `WorkerPanicked` after the stop when a worker thread panicked.
pub fn run(config: Config, config_path: &Path, signals: SignalHandlers) -> Result<(), ServerError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
    let SignalHandlers(mut signals) = signals;
    // The stop signals are taken over before any port listens: a client, or a test, may see the
    // port and send SIGTERM at once, and the default action would end the process without a
    // drain.
    for signal in [SIGTERM, SIGINT, SIGQUIT] {
        signals.add_signal(signal).map_err(ServerError::Signals)?;
    }
    let mut tls = match &config.https {
        Some(https) => Some(tls::server_config(&https.certificate, &https.private_key, https.session_timeout, None).map_err(ServerError::Tls)?),
        None => None,
    };
    check_access_log(&config)?;

    let addresses = listener_addresses(&config);
    for &(_, address) in &addresses {
        rt::probe_address(address).map_err(|error| ServerError::Bind { address, error })?;
    }

    let workers = worker_count(&config);
    match rt::raise_open_file_limit() {
        Ok(limit) => {
            // One descriptor per client connection at the very least; upstream connections,
            // large files and temporary bodies need more, but only some requests use them.
            let wanted = workers.saturating_mul(config.server.max_connections);
            if (limit as usize) < wanted {
                tracing::warn!(
                    limit,
                    wanted,
                    "the open file limit is below one descriptor per allowed connection; raise the hard limit (ulimit -Hn) or lower server.max_connections"
                );
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot raise the open file limit"),
    }
    let mut per_worker: Vec<Vec<WorkerListener>> = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut listeners = Vec::with_capacity(addresses.len());
        for &(kind, address) in &addresses {
            let socket = rt::bind_reuseport(address, LISTEN_BACKLOG).map_err(|error| ServerError::Bind { address, error })?;
            listeners.push(WorkerListener { kind, address, socket });
        }
        per_worker.push(listeners);
    }
    // Copies of the listening sockets, so that the stop signal closes every port at once,
    // before the workers notice it and also when a second signal ends the process early.
    let mut listener_copies = Vec::new();
    for listener in per_worker.iter().flatten() {
        match listener.socket.try_clone() {
            Ok(copy) => listener_copies.push(copy),
            Err(err) => tracing::warn!(address = %listener.address, error = %err, "cannot keep a copy of a listener; it stops when its worker does"),
        }
    }

    let shared = build_shared(config, tls.as_ref().map(|setup| Arc::clone(&setup.config)))?;
    let published = Arc::new(Published::new(Arc::new(shared)));

    let trigger = ShutdownTrigger::default();

    let mut threads = Vec::with_capacity(workers);
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let published = Arc::clone(&published);
        let trigger = trigger.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ringfront-worker-{id}"))
            .spawn(move || worker::run(id, published, listeners, trigger))
            .map_err(ServerError::Thread)?;
        threads.push(thread);
    }
    for &(kind, address) in &addresses {
        tracing::info!(%address, listener = ?kind, workers, "listening");
    }

    // nginx's signals: TERM, INT and QUIT stop gracefully, USR1 reopens the log file after
    // rotation, HUP reloads the configuration.
    for signal in signals.forever() {
        match signal {
            SIGUSR1 => {
                published.log_generation.fetch_add(1, Ordering::Release);
                tracing::info!("reopening the access log");
            }
            SIGHUP => reload(config_path, &published, &mut tls, &addresses, workers),
            _ => {
                let grace = published.current().1.config.server.shutdown_grace;
                tracing::info!(signal = signal_name(signal), ?grace, "stopping: no new connections, finishing requests in flight");
                break;
            }
        }
    }
    // The flag goes first: a worker whose accept fails because its listener stopped checks it
    // to tell the stop from a fault.
    trigger.trigger();
    for listener in &listener_copies {
        rt::stop_listening(listener);
    }
    // A second signal during the grace period means the operator does not want to wait.
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if matches!(signal, SIGTERM | SIGINT | SIGQUIT) {
                tracing::warn!(signal = signal_name(signal), "second stop signal: exiting without waiting for requests in flight");
                std::process::exit(1);
            }
            tracing::info!(signal = signal_name(signal), "signal ignored: the server is stopping");
        }
    });
    let started = Instant::now();
    let mut panicked = 0;
    for thread in threads {
        if thread.join().is_err() {
            tracing::error!("a worker thread panicked");
            panicked += 1;
        }
    }
    tracing::info!(elapsed = ?started.elapsed(), "stopped");
    if panicked > 0 {
        return Err(ServerError::WorkerPanicked { count: panicked });
    }
    Ok(())
}

/// Returns the name of one of the signals the server handles, for log lines.
fn signal_name(signal: i32) -> &'static str {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
    match signal {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGTERM => "SIGTERM",
        SIGUSR1 => "SIGUSR1",
        _ => "another signal",
    }
}

/// Fails when the access log is a file that cannot be opened for appending.
fn check_access_log(config: &Config) -> Result<(), ServerError> {
    if !matches!(config.server.access_log.as_str(), "stdout" | "stderr" | "off") {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.server.access_log)
            .map_err(|error| ServerError::AccessLog { path: config.server.access_log.clone(), error })?;
    }
    Ok(())
}

/// Lists every listening address of `config` with its role.
fn listener_addresses(config: &Config) -> Vec<(ListenerKind, SocketAddr)> {
    let mut addresses: Vec<(ListenerKind, SocketAddr)> = Vec::new();
    if let Some(redirect) = &config.redirect {
        addresses.extend(redirect.listen.iter().map(|&address| (ListenerKind::Redirect, address)));
    }
    if let Some(https) = &config.https {
        addresses.extend(https.listen.iter().map(|&address| (ListenerKind::Https, address)));
    }
    if let Some(http) = &config.http {
        addresses.extend(http.listen.iter().map(|&address| (ListenerKind::Http, address)));
    }
    addresses
}

/// Builds the state the workers share from a checked configuration and its TLS configuration.
///
/// # Errors
/// `Static` when a static directory cannot be used.
fn build_shared(config: Config, tls: Option<Arc<rustls::ServerConfig>>) -> Result<Shared, ServerError> {
    let https_port = config.https.as_ref().and_then(|https| https.listen.first()).map_or(443, SocketAddr::port);
    let https_port_suffix = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let mut static_routes = Vec::with_capacity(config.statics.len());
    for settings in &config.statics {
        let mut route = StaticRoute::new(settings.prefix.clone(), &settings.dir).map_err(ServerError::Static)?;
        route.index = settings.index.clone();
        route.max_age = settings.max_age;
        route.serve_dotfiles = settings.dotfiles;
        route.follow_symlinks_outside = settings.symlinks_outside;
        route.validate().map_err(ServerError::Static)?;
        static_routes.push(route);
    }
    let cache = &config.static_cache;
    let static_settings = StaticSettings {
        cache_bytes: cache.max_bytes,
        max_cached_file_bytes: cache.max_file_bytes,
        gzip_level: cache.gzip_level,
        gzip_min_bytes: cache.gzip_min_bytes,
        revalidate_interval: cache.revalidate,
        max_open_files: cache.max_open_files,
        ..StaticSettings::default()
    };
    Ok(Shared {
        config,
        tls,
        static_routes,
        static_settings,
        https_port_suffix,
        #[cfg(debug_assertions)]
        test_panic_route: std::env::var_os("RINGFRONT_TEST_PANIC_ROUTE").is_some(),
        #[cfg(debug_assertions)]
        test_idle_end_delay: std::env::var("RINGFRONT_TEST_IDLE_END_DELAY_MS")
            .ok()
            .and_then(|millis| millis.parse().ok())
            .map(std::time::Duration::from_millis),
    })
}

/// Returns the settings that differ between `running` and `loaded` and that only a restart
/// applies: the listeners and the workers are made at start, each worker's ring is sized by
/// `server.receive_buffers`, and the log filter is installed once.
// NOTE: values are compared as written, so `log_level = "INFO"` against `"info"` counts as a
// change, and the reload is rejected although it would change nothing.
fn restart_only_changes(running: &Config, loaded: &Config, addresses: &[(ListenerKind, SocketAddr)], workers: usize) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut running_addresses = addresses.to_vec();
    let mut loaded_addresses = listener_addresses(loaded);
    running_addresses.sort_unstable_by_key(|&(kind, address)| (kind as u8, address));
    loaded_addresses.sort_unstable_by_key(|&(kind, address)| (kind as u8, address));
    if running_addresses != loaded_addresses {
        changed.push("the listen addresses");
    }
    if worker_count(loaded) != workers {
        changed.push("server.workers");
    }
    if loaded.server.receive_buffers != running.server.receive_buffers {
        changed.push("server.receive_buffers");
    }
    if loaded.server.log_level != running.server.log_level {
        changed.push("server.log_level");
    }
    changed
}

/// Reads the configuration file again on SIGHUP and, when it is valid, publishes it: each worker
/// serves the connections it accepts from then on with it, and its connections accepted before
/// close after their current request. A file that fails `ringfront check`, or that changes a
/// setting only a restart applies, is logged as an error and the running configuration stays.
///
/// The TLS session cache and ticket keys carry over, so sessions made before the reload can
/// still resume.
fn reload(config_path: &Path, published: &Published, tls: &mut Option<tls::TlsSetup>, addresses: &[(ListenerKind, SocketAddr)], workers: usize) {
    const KEPT: &str = "SIGHUP: the running configuration stays in use";
    let config = match Config::reload(config_path) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "{KEPT}: the configuration file is invalid. Fix it (`ringfront check` shows the problem) and send SIGHUP again");
            return;
        }
    };
    let running = published.current().1;
    let changed = restart_only_changes(&running.config, &config, addresses, workers);
    if !changed.is_empty() {
        tracing::error!(changed = changed.join(", "), "{KEPT}: the new configuration changes settings that only a restart applies. Restart, or undo those changes and send SIGHUP again");
        return;
    }
    let reloaded_tls = match &config.https {
        Some(https) => match tls::server_config(&https.certificate, &https.private_key, https.session_timeout, tls.as_ref()) {
            Ok(setup) => Some(setup),
            Err(err) => {
                tracing::error!(error = %err, "{KEPT}: the TLS files cannot be used. Fix them and send SIGHUP again");
                return;
            }
        },
        None => None,
    };
    if let Err(err) = check_access_log(&config) {
        tracing::error!(error = %err, "{KEPT}. Fix the access log setting and send SIGHUP again");
        return;
    }
    let shared = match build_shared(config, reloaded_tls.as_ref().map(|setup| Arc::clone(&setup.config))) {
        Ok(shared) => shared,
        Err(err) => {
            tracing::error!(error = %err, "{KEPT}. Fix the configuration and send SIGHUP again");
            return;
        }
    };
    let certificate = match (tls.as_ref(), reloaded_tls.as_ref()) {
        (Some(before), Some(after)) if before.chain() == after.chain() => "unchanged",
        (_, Some(_)) => "changed",
        (_, None) => "none",
    };
    let generation = published.publish(Arc::new(shared));
    *tls = reloaded_tls;
    tracing::info!(
        generation,
        certificate,
        "SIGHUP: configuration reloaded. New connections use it, and connections accepted before close after their current request"
    );
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn host_port_is_stripped() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"example.org", b"example.org"),
            (b"example.org:8443", b"example.org"),
            (b"[::1]:8443", b"[::1]"),
            (b"[::1]", b"[::1]"),
            (b"", b""),
        ];
        for (input, expected) in cases {
            assert_eq!(host_without_port(input), expected);
        }
    }
}
