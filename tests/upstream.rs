//! The upstream side of the proxy against real Gunicorn: whole responses buffered so that a slow
//! client never occupies a worker, bodies spilled to unnamed temporary files, the keep-alive pool,
//! upstream failures, a full listen backlog, several servers, trusted proxies, error pages,
//! streamed responses and the read timeout.
//!
//! Tests assert the order of events that the test controls (a file the app waits for, a read the
//! client has not made yet) rather than elapsed time.

mod common;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use common::client::{CONNECT_TIMEOUT, IO_TIMEOUT, RESPONSE_TIMEOUT};
use common::response::read_response;
use common::ringfront::toml_string;
use common::{
    Config, Connection, Gunicorn, Response, Ringfront, TempDir, chunked, noise_bytes,
    pattern_bytes,
};

/// Body size of the response a stalled client requests. It is far more than the socket buffers
/// between Gunicorn, ringfront and the client take in, so Gunicorn would block on it if ringfront
/// relayed it instead of buffering it.
const STALLED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Receive buffer of the stalled client's socket, kept small so that the kernel takes little of
/// the response off ringfront's hands.
const STALLED_RECEIVE_BUFFER: usize = 16 * 1024;

/// Bytes the stalled client reads before it pauses.
const STALLED_READ_BYTES: usize = 4096;

/// Size of the request bodies that must pass through a temporary file.
const SPILLED_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `[upstream] buffer_bytes` for the tests that make bodies spill: far below the bodies sent.
const SMALL_BUFFER: &str = "65536";

/// Maximum time to wait for a condition outside ringfront, such as Gunicorn closing an idle
/// connection or the app reaching a point in a route.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between two checks of such a condition.
const CONDITION_POLL: Duration = Duration::from_millis(20);

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

fn post_with_length(target: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn post_chunked(target: &str, body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&chunked(body, chunk_size));
    request
}

/// Ringfront with one worker (so that one pool and one balancer see every request) and a plain
/// HTTP listener, in front of `gunicorn`, with the config changed by `customize`.
fn ringfront_for(gunicorn: &Gunicorn, customize: impl FnOnce(Config) -> Config) -> Ringfront {
    let config = Config::new().workers(1).http().upstream(gunicorn);
    customize(config).start()
}

/// Sends `raw` on a new plain connection to `ringfront` and returns the response.
fn request(ringfront: &Ringfront, raw: &[u8]) -> Response {
    common::plain_request(ringfront.http_port(), raw)
}

/// The `/conn` identity of the request: Gunicorn master pid, worker pid and the serial number
/// the worker gave the upstream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectionIdentity {
    master: u32,
    worker: u32,
    connection: u64,
}

impl ConnectionIdentity {
    fn from_response(response: &Response) -> ConnectionIdentity {
        assert_eq!(
            response.status,
            200,
            "the app's identity route failed: {}",
            response.body_text()
        );
        let object = response.json_object();
        ConnectionIdentity {
            master: parse_field(&object, "master"),
            worker: parse_field(&object, "worker"),
            connection: parse_field(&object, "connection"),
        }
    }
}

fn parse_field<T: std::str::FromStr>(object: &BTreeMap<String, String>, name: &str) -> T {
    match object.get(name).map(|value| value.parse::<T>()) {
        Some(Ok(value)) => value,
        _ => panic!("identity field {name:?} missing or not a number in {object:?}"),
    }
}

/// A plain client that reads a response in steps, so a test can act between two reads.
struct SteppedClient {
    stream: TcpStream,
    received: Vec<u8>,
}

impl SteppedClient {
    /// Connects to `port`, with the socket's receive buffer set to `receive_buffer` bytes when
    /// given (the kernel may round it up).
    fn connect(port: u16, receive_buffer: Option<usize>) -> SteppedClient {
        let address = SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        let socket = match Socket::new(Domain::IPV4, Type::STREAM, None) {
            Ok(socket) => socket,
            Err(error) => panic!("failed to create a TCP socket: {error}"),
        };
        if let Some(bytes) = receive_buffer
            && let Err(error) = socket.set_recv_buffer_size(bytes)
        {
            panic!("failed to set the receive buffer to {bytes} bytes: {error}");
        }
        if let Err(error) = socket.connect_timeout(&address, CONNECT_TIMEOUT) {
            panic!("failed to connect to port {port}: {error}");
        }
        let stream = TcpStream::from(socket);
        let configured = stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
        if let Err(error) = configured {
            panic!("failed to set socket timeouts: {error}");
        }
        SteppedClient {
            stream,
            received: Vec::new(),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        if let Err(error) = self.stream.write_all(raw) {
            panic!("failed to send {} bytes: {error}", raw.len());
        }
    }

    /// Reads until `done` holds for the bytes received so far.
    ///
    /// # Panics
    /// Panics if the connection ends or [`RESPONSE_TIMEOUT`] passes first.
    fn read_until(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        let mut chunk = [0u8; 4096];
        while !done(&self.received) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {} bytes",
                self.received.len()
            );
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "connection closed before {what}; received {:?}",
                    String::from_utf8_lossy(&self.received)
                ),
                Ok(count) => self.received.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => panic!("read failed while waiting for {what}: {error}"),
            }
        }
    }

    /// Reads until the server closes the connection. Returns `false` if a read times out first.
    fn read_to_close(&mut self) -> bool {
        match self.stream.read_to_end(&mut self.received) {
            Ok(_) => true,
            Err(error) => common::response::is_closed(&error),
        }
    }

    /// Returns the number of body bytes received, counted from the end of the response head.
    fn body_bytes_received(&self) -> usize {
        match self.received.windows(4).position(|window| window == b"\r\n\r\n") {
            Some(end) => self.received.len() - (end + 4),
            None => 0,
        }
    }

    /// Reads the rest of the response and parses it together with the bytes already received.
    fn finish(mut self) -> Response {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        match read_response(&mut self.stream, &mut self.received, false, deadline) {
            Ok(response) => response,
            Err(error) => panic!("no complete response: {error}"),
        }
    }
}

fn has_head(received: &[u8]) -> bool {
    received.windows(4).any(|window| window == b"\r\n\r\n")
}

fn contains(received: &[u8], needle: &[u8]) -> bool {
    common::contains_bytes(received, needle)
}

/// Returns the names of the directory entries in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(error) => panic!("failed to list {}: {error}", dir.display()),
    }
}

/// Returns the targets of the open file descriptors of process `pid`, as `/proc` shows them.
/// An unnamed temporary file shows as `DIR/#INODE (deleted)`.
fn open_files(pid: u32) -> Vec<String> {
    let dir = format!("/proc/{pid}/fd");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_link(entry.path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .collect(),
        Err(error) => panic!("failed to list {dir}: {error}"),
    }
}

fn socket_count(pid: u32) -> usize {
    open_files(pid)
        .iter()
        .filter(|target| target.starts_with("socket:"))
        .count()
}

/// Polls `condition` until it is true or [`CONDITION_TIMEOUT`] passes. Returns whether it became
/// true.
fn wait_for(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(CONDITION_POLL);
    }
}

#[test]
fn stalled_client_frees_worker() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let spool_dir = TempDir::new("spool");
    let ringfront = ringfront_for(&gunicorn, |config| {
        config
            .upstream_setting("buffer_bytes", SMALL_BUFFER)
            .upstream_setting("temp_dir", &toml_string(&spool_dir.path().to_string_lossy()))
    });
    let Some(ringfront_pid) = ringfront.pid() else {
        panic!("ringfront is not running");
    };

    let mut stalled = SteppedClient::connect(ringfront.http_port(), Some(STALLED_RECEIVE_BUFFER));
    stalled.send(&get(&format!("/big?bytes={STALLED_BODY_BYTES}")));
    stalled.read_until("the first body bytes", |received| {
        has_head(received) && received.len() > STALLED_READ_BYTES
    });

    // Gunicorn's only worker is free again only if ringfront took the whole response from it.
    let hello = request(&ringfront, &get("/hello"));
    assert_eq!(hello.status, 200);
    assert_eq!(hello.body, b"hello from gunicorn\n");
    assert!(
        stalled.body_bytes_received() < STALLED_BODY_BYTES / 10,
        "the stalled client read {} bytes",
        stalled.body_bytes_received()
    );

    let spool_prefix = spool_dir.path().to_string_lossy().into_owned();
    let spilled: Vec<String> = open_files(ringfront_pid)
        .into_iter()
        .filter(|target| target.starts_with(&spool_prefix))
        .collect();
    assert_eq!(spilled.len(), 1, "open files in the spool directory: {spilled:?}");
    assert!(spilled[0].ends_with("(deleted)"), "spool file has a name: {spilled:?}");
    assert_eq!(entries(spool_dir.path()), Vec::<String>::new());

    let response = stalled.finish();
    assert_eq!(response.status, 200);
    assert!(
        response.body == pattern_bytes(STALLED_BODY_BYTES),
        "body differs from the app's pattern ({} bytes)",
        response.body.len()
    );
    assert_eq!(entries(spool_dir.path()), Vec::<String>::new());
}

/// Ringfront with a small buffer and its own spool directory, in front of a sync Gunicorn.
struct SpillFixture {
    ringfront: Ringfront,
    spool_dir: TempDir,
    _gunicorn: Gunicorn,
}

impl SpillFixture {
    fn start() -> SpillFixture {
        let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
        let spool_dir = TempDir::new("spool");
        let ringfront = ringfront_for(&gunicorn, |config| {
            config
                .upstream_setting("buffer_bytes", SMALL_BUFFER)
                .upstream_setting("temp_dir", &toml_string(&spool_dir.path().to_string_lossy()))
        });
        SpillFixture {
            ringfront,
            spool_dir,
            _gunicorn: gunicorn,
        }
    }
}

#[test]
fn spilled_body_length_echoed() {
    let fixture = SpillFixture::start();
    let body = noise_bytes(SPILLED_BODY_BYTES);
    let response = request(&fixture.ringfront, &post_with_length("/echo", &body));
    assert_eq!(response.status, 200);
    assert!(response.body == body, "echoed body differs from the body sent");
    assert_eq!(entries(fixture.spool_dir.path()), Vec::<String>::new());
}

#[test]
fn spilled_body_chunked_echoed() {
    let fixture = SpillFixture::start();
    let body = noise_bytes(SPILLED_BODY_BYTES);
    let response = request(&fixture.ringfront, &post_chunked("/echo", &body, 100_000));
    assert_eq!(response.status, 200);
    assert!(response.body == body, "echoed body differs from the body sent");
    assert_eq!(entries(fixture.spool_dir.path()), Vec::<String>::new());
}

#[test]
fn pool_reuses_connection() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let first = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));
    let second = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));
    assert_eq!(first.worker, second.worker);
    assert_eq!(first.connection, second.connection);
}

#[test]
fn pool_disabled_new_connection() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let ringfront = ringfront_for(&gunicorn, |config| config.upstream_setting("keepalive", "0"));
    let first = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));
    let second = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));
    assert_eq!(first.worker, second.worker);
    assert_ne!(first.connection, second.connection);
}

/// RFC 9110 §9.2.2: a request that is not idempotent must not go out on a pooled connection,
/// which the server may close just as the request arrives.
#[test]
fn pool_skipped_for_post() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let first = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));
    let post = ConnectionIdentity::from_response(&request(
        &ringfront,
        &post_with_length("/conn", b"data"),
    ));
    assert_eq!(first.worker, post.worker);
    assert_ne!(first.connection, post.connection);
}

#[test]
fn pool_connection_closed_by_upstream() {
    let gunicorn = Gunicorn::start_with_args("testapp:app", 1, "gthread", &["--keep-alive", "1"]);
    let ringfront =
        ringfront_for(&gunicorn, |config| config.upstream_setting("keepalive_timeout", "\"10s\""));
    let first = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));

    // Gunicorn closes the pooled connection after its 1 s keep-alive; ringfront keeps it in its pool.
    let sockets_with_connection = socket_count(first.worker);
    assert!(
        wait_for(|| socket_count(first.worker) < sockets_with_connection),
        "gunicorn worker {} kept the idle connection open",
        first.worker
    );

    let second = ConnectionIdentity::from_response(&request(&ringfront, &get("/conn")));
    assert_eq!(first.worker, second.worker);
    assert_ne!(first.connection, second.connection);
}

/// A read timeout on a pooled connection means a slow app, not a connection closed while idle,
/// so the request is not sent a second time.
#[test]
fn pool_timeout_not_retried() {
    let gunicorn = Gunicorn::start_with_args("testapp:app", 1, "gthread", &["--threads", "2"]);
    let ringfront =
        ringfront_for(&gunicorn, |config| config.upstream_setting("read_timeout", "\"1s\""));
    let dir = TempDir::new("hold");
    let mark = dir.join("entered");
    let release = dir.join("release");
    let mut connection = Connection::plain(ringfront.http_port());
    let first = connection.request(&get("/hello"));
    assert_eq!(first.status, 200);

    let held = connection.request(&get(&format!(
        "/hold?mark={}&release={}",
        mark.display(),
        release.display()
    )));
    let marks = std::fs::read_to_string(&mark).unwrap_or_default();
    dir.write("release", "");
    assert_eq!(held.status, 504);
    assert_eq!(marks.lines().count(), 1, "requests that reached the app: {marks:?}");
}

#[test]
fn upstream_dies_mid_response_502() {
    let gunicorn = Gunicorn::start("testapp:app", 2, "sync");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let mut connection = Connection::plain(ringfront.http_port());

    let broken = connection.request(&get("/die?length=100000&sent=1000"));
    assert_eq!(broken.status, 502);

    let next = connection.request(&get("/hello"));
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"hello from gunicorn\n");
}

/// Once a streamed response's head is out, a failed upstream can only end the connection: the
/// client must see a short body and a close, never a complete-looking response.
#[test]
fn upstream_dies_mid_stream_closes() {
    let gunicorn = Gunicorn::start("testapp:app", 2, "sync");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let mut client = SteppedClient::connect(ringfront.http_port(), None);
    client.send(&get("/die?length=100000&sent=1000&unbuffered=1"));
    client.read_until("the head", has_head);

    let closed = client.read_to_close();
    assert!(closed, "ringfront kept the connection open after the upstream failed");
    assert!(client.received.starts_with(b"HTTP/1.1 200 "));
    assert!(
        client.body_bytes_received() < 100_000,
        "received {} body bytes",
        client.body_bytes_received()
    );

    let next = request(&ringfront, &get("/hello"));
    assert_eq!(next.status, 200);
}

/// An app may respond before reading the body, as Flask does for a failed authorization check.
#[test]
fn early_response_relayed() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront =
        ringfront_for(&gunicorn, |config| config.upstream_setting("buffer_bytes", SMALL_BUFFER));
    let body = noise_bytes(SPILLED_BODY_BYTES);
    let response = request(&ringfront, &post_with_length("/status/401", &body));
    assert_eq!(response.status, 401);
    assert_eq!(response.body, b"status 401\n");
}

/// The same with a gthread worker, which keeps connections alive: the early response must
/// not leave the rest of the body on a connection that goes back to the pool.
#[test]
fn early_response_relayed_gthread() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let ringfront =
        ringfront_for(&gunicorn, |config| config.upstream_setting("buffer_bytes", SMALL_BUFFER));
    let body = noise_bytes(SPILLED_BODY_BYTES);
    let response = request(&ringfront, &post_with_length("/status/401", &body));
    assert_eq!(response.status, 401);
    assert_eq!(response.body, b"status 401\n");

    let next = request(&ringfront, &get("/hello"));
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"hello from gunicorn\n");
}

#[test]
fn pool_reused_after_bodiless() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let mut connection = Connection::plain(ringfront.http_port());
    let first = ConnectionIdentity::from_response(&connection.request(&get("/conn")));

    let head = connection.request(b"HEAD /conn HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(head.status, 200);
    let no_content = connection.request(&get("/status/204"));
    assert_eq!(no_content.status, 204);
    let not_modified = connection.request(&get("/status/304"));
    assert_eq!(not_modified.status, 304);

    let last = ConnectionIdentity::from_response(&connection.request(&get("/conn")));
    assert_eq!(first.connection, last.connection);
}

/// Connections the test queues on a listener with backlog 1 before anything accepts: at most
/// this many tries, which is far more than the kernel queues.
const BACKLOG_FILL_ATTEMPTS: usize = 16;

/// Delay before the raw server starts accepting, during which ringfront finds the backlog full.
const ACCEPT_DELAY: Duration = Duration::from_millis(300);

/// Body of the raw backlog server's responses.
const RAW_SERVER_BODY: &[u8] = b"raw server\n";

/// Accepts every connection on `listener` until `stop` is set, and responds to each one that
/// sends a request head with a 200 and [`RAW_SERVER_BODY`].
fn serve_raw(listener: &Socket, stop: &AtomicBool) {
    if let Err(error) = listener.set_nonblocking(true) {
        panic!("failed to make the raw listener non-blocking: {error}");
    }
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((socket, _)) => {
                thread::spawn(move || answer_raw(UnixStream::from(socket)));
            }
            Err(_) => thread::sleep(CONDITION_POLL),
        }
    }
}

fn answer_raw(mut stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while !has_head(&received) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(count) => received.extend_from_slice(&chunk[..count]),
        }
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        RAW_SERVER_BODY.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(RAW_SERVER_BODY);
}

/// A Unix listener with backlog 1 whose queue the test has filled, so that the next connect
/// finds it full until something accepts.
struct FullBacklog {
    listener: Socket,
    path: PathBuf,
    /// Connections waiting in the queue; they must stay open to keep it full.
    queued: Vec<Socket>,
    _dir: TempDir,
}

impl FullBacklog {
    fn new() -> FullBacklog {
        let dir = TempDir::new("backlog");
        let path = dir.join("raw.sock");
        let address = match SockAddr::unix(&path) {
            Ok(address) => address,
            Err(error) => panic!("invalid socket path {}: {error}", path.display()),
        };
        let listener = match Socket::new(Domain::UNIX, Type::STREAM, None) {
            Ok(socket) => socket,
            Err(error) => panic!("failed to create a Unix socket: {error}"),
        };
        if let Err(error) = listener.bind(&address).and_then(|()| listener.listen(1)) {
            panic!("failed to listen on {}: {error}", path.display());
        }

        let mut queued = Vec::new();
        let mut full = false;
        for _ in 0..BACKLOG_FILL_ATTEMPTS {
            let client = match Socket::new(Domain::UNIX, Type::STREAM, None) {
                Ok(socket) => socket,
                Err(error) => panic!("failed to create a Unix socket: {error}"),
            };
            if let Err(error) = client.set_nonblocking(true) {
                panic!("failed to make a Unix socket non-blocking: {error}");
            }
            match client.connect(&address) {
                Ok(()) => queued.push(client),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    full = true;
                    break;
                }
                Err(error) => panic!("queueing a connection failed: {error}"),
            }
        }
        assert!(full, "the backlog took {} connections without filling", queued.len());
        FullBacklog {
            listener,
            path,
            queued,
            _dir: dir,
        }
    }
}

/// The request waits out a full backlog and reaches the server once it accepts, within the
/// connect timeout.
///
/// NOTE: with the io_uring driver the kernel completes the connect itself once the queue has
/// room, so ringfront never gets the EAGAIN that its retry loop handles. This test then checks
/// the outcome, not that loop, which only the polling driver reaches.
#[test]
fn full_backlog_waited_out() {
    let backlog = FullBacklog::new();
    let ringfront = Config::new()
        .workers(1)
        .http()
        .upstream_socket(&backlog.path)
        .upstream_setting("connect_timeout", "\"5s\"")
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let FullBacklog {
        listener, queued, ..
    } = backlog;
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            thread::sleep(ACCEPT_DELAY);
            serve_raw(&listener, &stop);
        })
    };

    let response = request(&ringfront, &get("/hello"));
    stop.store(true, Ordering::Relaxed);
    drop(queued);
    let _ = server.join();
    assert_eq!(response.status, 200, "ringfront output:\n{}", ringfront.output());
    assert_eq!(response.body, RAW_SERVER_BODY);
}

/// A backlog that stays full for longer than the connect timeout gives a 502 (the upstream could
/// not take the request), and the worker goes on serving.
#[test]
fn full_backlog_past_timeout_502() {
    let backlog = FullBacklog::new();
    let ringfront = Config::new()
        .workers(1)
        .http()
        .upstream_socket(&backlog.path)
        .upstream_setting("connect_timeout", "\"300ms\"")
        .start();
    let mut connection = Connection::plain(ringfront.http_port());

    let first = connection.request(&get("/hello"));
    assert_eq!(first.status, 502);

    let second = connection.request(&get("/hello"));
    assert_eq!(second.status, 502);
    drop(backlog);
}

/// Two Gunicorns with one sync worker each, and ringfront balancing over both.
struct PairFixture {
    ringfront: Ringfront,
    first: Gunicorn,
    second: Gunicorn,
}

impl PairFixture {
    fn start(balance: &str) -> PairFixture {
        let first = Gunicorn::start("testapp:app", 1, "sync");
        let second = Gunicorn::start("testapp:app", 1, "sync");
        let servers = format!(
            "[{}]",
            toml_string(&format!("unix:{}", second.socket_path().display()))
        );
        let ringfront = ringfront_for(&first, |config| {
            config
                .upstream_setting("servers", &servers)
                .upstream_setting("balance", &toml_string(balance))
        });
        PairFixture {
            ringfront,
            first,
            second,
        }
    }

    /// Sends `count` sequential GET /conn requests and returns the master pid of each.
    fn masters(&self, count: usize) -> Vec<u32> {
        (0..count)
            .map(|_| ConnectionIdentity::from_response(&request(&self.ringfront, &get("/conn"))).master)
            .collect()
    }
}

#[test]
fn round_robin_alternates() {
    let fixture = PairFixture::start("round_robin");
    let masters = fixture.masters(4);
    let first = masters.iter().filter(|&&pid| pid == fixture.first.pid()).count();
    let second = masters.iter().filter(|&&pid| pid == fixture.second.pid()).count();
    assert_eq!(first, 2, "masters: {masters:?}");
    assert_eq!(second, 2, "masters: {masters:?}");
}

#[test]
fn round_robin_fails_over() {
    let mut fixture = PairFixture::start("round_robin");
    fixture.second.stop();
    let masters = fixture.masters(4);
    assert_eq!(masters, vec![fixture.first.pid(); 4]);
}

#[test]
fn least_connections_avoids_busy() {
    let fixture = PairFixture::start("least_connections");
    let dir = TempDir::new("hold");
    let mark = dir.join("entered");
    let release = dir.join("release");
    let target = format!(
        "/hold?mark={}&release={}",
        mark.display(),
        release.display()
    );
    let port = fixture.ringfront.http_port();
    let held = thread::spawn(move || common::plain_request(port, &get(&target)));

    assert!(wait_for(|| mark.exists()), "the held request never reached the app");
    let other = ConnectionIdentity::from_response(&request(&fixture.ringfront, &get("/conn")));
    dir.write("release", "");
    let held = match held.join() {
        Ok(response) => ConnectionIdentity::from_response(&response),
        Err(_) => panic!("the held request's thread panicked"),
    };
    assert_ne!(held.master, other.master);
}

#[test]
fn trusted_proxy_extends_forwarded_for() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = ringfront_for(&gunicorn, |config| {
        config.upstream_setting("trusted_proxies", "[\"127.0.0.1\"]")
    });
    let response = request(
        &ringfront,
        b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    );
    let headers = response.json_object();
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("203.0.113.7, 127.0.0.1")
    );
}

/// Repeated X-Forwarded-For lines from a trusted proxy form one list (RFC 9110 §5.3): every
/// entry is kept in order, the nearest proxy's last, and the peer is appended.
#[test]
fn trusted_proxy_forwarded_for_lines_joined() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = ringfront_for(&gunicorn, |config| config.upstream_setting("trusted_proxies", "[\"127.0.0.1\"]"));
    let response = request(
        &ringfront,
        b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For:\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n",
    );
    let headers = response.json_object();
    assert_eq!(headers.get("x-forwarded-for").map(String::as_str), Some("192.0.2.1, 198.51.100.7, 127.0.0.1"));
}

#[test]
fn untrusted_peer_forwarded_for_replaced() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let response = request(
        &ringfront,
        b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    );
    let headers = response.json_object();
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("127.0.0.1")
    );
}

/// A trusted proxy may terminate TLS itself, so the scheme it reports is passed on. An
/// untrusted peer's claim is replaced by the scheme of its own connection.
#[test]
fn trusted_proxy_sets_forwarded_proto() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let request_line = b"GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https\r\n\r\n";
    let trusted = ringfront_for(&gunicorn, |config| config.upstream_setting("trusted_proxies", "[\"127.0.0.1\"]"));
    let headers = request(&trusted, request_line).json_object();
    assert_eq!(headers.get("x-forwarded-proto").map(String::as_str), Some("https"));

    let untrusted = ringfront_for(&gunicorn, |config| config);
    let headers = request(&untrusted, request_line).json_object();
    assert_eq!(headers.get("x-forwarded-proto").map(String::as_str), Some("http"));
}

#[test]
fn error_page_for_502() {
    let mut gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let pages = TempDir::new("pages");
    let page = b"<html><body>the app is down for a moment</body></html>\n";
    let page_path = pages.write("502.html", page);
    let ringfront = ringfront_for(&gunicorn, |config| config.error_page(502, &page_path));
    gunicorn.stop();

    let response = request(&ringfront, &get("/hello"));
    assert_eq!(response.status, 502);
    assert_eq!(response.body, page);
}

#[test]
fn unbuffered_response_streamed() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = ringfront_for(&gunicorn, |config| config);
    let dir = TempDir::new("stream");
    let release = dir.join("release");

    let mut client = SteppedClient::connect(ringfront.http_port(), None);
    client.send(&get(&format!("/stream?release={}", release.display())));
    client.read_until("the first chunk", |received| contains(received, b"first chunk\n"));
    assert!(!contains(&client.received, b"last chunk"));

    // The app sends its last chunk only after this file exists.
    dir.write("release", "");
    let response = client.finish();
    assert_eq!(response.status, 200);
    assert!(response.header_has_token("transfer-encoding", "chunked"));
    assert_eq!(response.header("x-accel-buffering"), None);
    assert_eq!(response.body, b"first chunk\nsecond chunk\nlast chunk\n");
}

/// nginx's `proxy_read_timeout` semantics: the timeout runs between two reads, so a response
/// that keeps arriving takes as long as it needs.
#[test]
fn read_timeout_between_reads() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront =
        ringfront_for(&gunicorn, |config| config.upstream_setting("read_timeout", "\"1s\""));
    let response = request(&ringfront, &get("/drip?count=7&interval_ms=300"));
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b".......");
}

#[test]
fn read_timeout_before_head_504() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront =
        ringfront_for(&gunicorn, |config| config.upstream_setting("read_timeout", "\"1s\""));
    let response = request(&ringfront, &get("/slow?ms=2000"));
    assert_eq!(response.status, 504);
}
