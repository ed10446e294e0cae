//! Process lifecycle: a clean exit on SIGTERM and SIGINT that lets requests in flight finish, a
//! startup error when the port is taken, ports that refuse connections once the process has
//! exited, and `ringfront check`.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::client::EndKind;
use common::{
    Config, Connection, Gunicorn, Ringfront, STUB_BODY, Site, StubUpstream, TempDir, TestCert, https_request,
};

/// Time for a request sent from another thread to reach Gunicorn before the test signals
/// ringfront. The request itself takes 1.5 s, so any value well below that works.
const REQUEST_START_DELAY: Duration = Duration::from_millis(300);

#[test]
fn sigterm_idle_exits_zero() {
    let cert = TestCert::generate(&["localhost"]);
    let mut ringfront = Config::new().https(&cert).http().start();
    let status = ringfront.terminate();
    assert!(status.success(), "exit status {status}");
    // A clean stop raises nothing that log alerts would pick up.
    let output = ringfront.output();
    assert!(!output.contains("WARN"), "{output}");
    assert!(!output.contains("ERROR"), "{output}");
}

#[test]
fn sigint_idle_exits_zero() {
    let cert = TestCert::generate(&["localhost"]);
    let mut ringfront = Config::new().https(&cert).start();
    let status = ringfront.interrupt();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_finishes_request_in_flight() {
    let gunicorn = Gunicorn::start("testapp:app", 2, "sync");
    let cert = TestCert::generate(&["localhost"]);
    let mut ringfront = Config::new().https(&cert).upstream(&gunicorn).start();
    let port = ringfront.https_port();

    let (response, status) = thread::scope(|scope| {
        let client = scope.spawn(|| {
            https_request(
                port,
                &cert,
                b"GET /slow?ms=1500 HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
        });
        thread::sleep(REQUEST_START_DELAY);
        let status = ringfront.terminate();
        (client.join(), status)
    });

    let Ok(response) = response else {
        panic!("the request in flight got no response");
    };
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"slept 1500 ms\n");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn second_instance_same_port_fails() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new().https(&cert).start();
    let config = match std::fs::read_to_string(ringfront.config_path()) {
        Ok(text) => text,
        Err(error) => panic!("failed to read the first instance's config: {error}"),
    };

    let (status, output) = Ringfront::run_to_exit(&config);
    let request = b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let first_still_serves = https_request(ringfront.https_port(), &cert, request);
    assert!(
        !status.success(),
        "second instance exited with {status}:\n{output}"
    );
    assert!(
        !output.trim().is_empty(),
        "second instance failed without a message"
    );
    assert_eq!(first_still_serves.body, STUB_BODY);
}

#[test]
fn unknown_key_fails_start() {
    let cert = TestCert::generate(&["localhost"]);
    let config = Config::new()
        .https(&cert)
        .server("workerz", "2")
        .to_toml("/nonexistent.sock".as_ref());
    let config = config.replace("{https_port}", &common::process::free_port().to_string());
    let (status, output) = Ringfront::run_to_exit(&config);
    assert!(
        !status.success(),
        "ringfront started with an unknown key:\n{output}"
    );
    assert!(
        output.contains("workerz"),
        "error does not name the key:\n{output}"
    );
}

#[test]
fn check_accepts_valid_config() {
    let cert = TestCert::generate(&["localhost"]);
    let config = Config::new()
        .https(&cert)
        .redirect()
        .http()
        .to_toml("/run/app.sock".as_ref());
    let config = config
        .replace("{https_port}", "8443")
        .replace("{redirect_port}", "8080")
        .replace("{http_port}", "8081");
    let (status, output) = Ringfront::check(&config);
    assert!(
        status.success(),
        "check rejected a valid config:\n{output}\n{config}"
    );
}

#[test]
fn check_rejects_unknown_key() {
    let cert = TestCert::generate(&["localhost"]);
    let config = Config::new().https(&cert).to_toml("/run/app.sock".as_ref());
    let config = config
        .replace("{https_port}", "8443")
        .replace("[upstream]", "[upstream]\nsocket = \"x\"");
    let (status, output) = Ringfront::check(&config);
    assert!(!status.success(), "check accepted an unknown key");
    assert!(
        output.contains("socket"),
        "error does not name the key:\n{output}"
    );
}

#[test]
fn check_rejects_invalid_duration() {
    let cert = TestCert::generate(&["localhost"]);
    let config = Config::new()
        .https(&cert)
        .server("shutdown_grace", "\"ten seconds\"")
        .to_toml("/run/app.sock".as_ref())
        .replace("{https_port}", "8443");
    let (status, output) = Ringfront::check(&config);
    assert!(
        !status.success(),
        "check accepted an invalid duration:\n{output}"
    );
}

#[test]
fn relative_paths_resolve() {
    let cert = TestCert::generate(&["localhost"]);
    let config_dir = TempDir::new("relative");
    config_dir.write("tls/cert.pem", read(cert.cert_path()));
    config_dir.write("tls/key.pem", read(cert.key_path()));
    config_dir.write("files/hello.txt", "served through a relative path\n");
    let _stub = StubUpstream::start_at(&config_dir.join("app.sock"));
    let config = r#"
[server]
workers = 1

[https]
listen = ["127.0.0.1:{https_port}"]
certificate = "tls/cert.pem"
private_key = "tls/key.pem"
server_names = ["localhost"]

[[static]]
prefix = "/files/"
dir = "files"

[upstream]
unix = "app.sock"
"#;
    let ringfront = Ringfront::start_in(config_dir.path(), config);
    let port = ringfront.https_port();
    let file = https_request(
        port,
        &cert,
        b"GET /files/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let proxied = https_request(
        port,
        &cert,
        b"GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(file.body, b"served through a relative path\n");
    assert_eq!(proxied.body, STUB_BODY);
}

fn read(path: &std::path::Path) -> Vec<u8> {
    match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => panic!("failed to read {}: {error}", path.display()),
    }
}

/// SIGHUP reloads only the certificate (tests/tls.rs), and the process must neither die nor stop
/// serving.
#[test]
fn sighup_keeps_serving() {
    let cert = TestCert::generate(&["localhost"]);
    let ringfront = Config::new().https(&cert).http().start();
    let pid = ringfront.pid().expect("ringfront is running");
    assert!(common::process::send_signal(i64::from(pid), "HUP"));
    thread::sleep(Duration::from_millis(200));
    let response = common::plain_request(ringfront.http_port(), b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 404);
}

/// ringfront started with its configuration file on a FIFO that has no writer yet, so the
/// test decides when the read of the configuration ends.
struct WaitingForConfig {
    _dir: TempDir,
    config_path: std::path::PathBuf,
    child: std::process::Child,
    output: common::process::CapturedOutput,
}

impl WaitingForConfig {
    /// Starts ringfront and waits until it handles every signal in `caught_mask` (bit N-1 for
    /// signal N), which shows that its `main` has started.
    fn start(label: &str, caught_mask: u64) -> WaitingForConfig {
        let dir = TempDir::new(label);
        let config_path = dir.join("ringfront.toml");
        let mkfifo = std::process::Command::new("mkfifo").arg(&config_path).status().unwrap();
        assert!(mkfifo.success());
        let mut command = std::process::Command::new(common::ringfront::binary_path());
        command.arg("--config").arg(&config_path);
        let (mut child, output) = common::process::spawn_captured(&mut command, "ringfront");

        let deadline = Instant::now() + Duration::from_secs(10);
        while common::procfs::caught_signals(child.id()) & caught_mask != caught_mask {
            if Instant::now() >= deadline {
                common::process::kill_and_reap(&mut child);
                panic!("signal mask {caught_mask:#x} not caught while the configuration was read:\n{}", output.text());
            }
            thread::sleep(Duration::from_millis(10));
        }
        WaitingForConfig { _dir: dir, config_path, child, output }
    }

    fn signal(&self, signal: &str) {
        assert!(common::process::send_signal(i64::from(self.child.id()), signal));
    }
}

/// A reload or a log rotation that comes while the configuration is still being read must not
/// end the process, as the default action of SIGHUP and SIGUSR1 would.
#[test]
fn signals_during_startup_handled() {
    // SIGHUP is signal 1 and SIGUSR1 is 10.
    let mut starting = WaitingForConfig::start("startup-signals", 1u64 | (1u64 << 9));
    starting.signal("HUP");
    starting.signal("USR1");

    let port = common::process::free_port();
    let config = Config::new().http().to_toml("/nonexistent/app.sock".as_ref()).replace("{http_port}", &port.to_string());
    std::fs::write(&starting.config_path, config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline || !matches!(starting.child.try_wait(), Ok(None)) {
            common::process::kill_and_reap(&mut starting.child);
            panic!("ringfront did not start listening:\n{}", starting.output.text());
        }
        thread::sleep(Duration::from_millis(10));
    }
    let response = common::plain_request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    starting.signal("TERM");
    let status = common::process::wait_with_timeout(&mut starting.child, Duration::from_secs(10));
    common::process::kill_and_reap(&mut starting.child);

    assert_eq!(response.status, 502);
    assert!(status.is_some_and(|status| status.success()), "exit status {status:?}");
    let text = starting.output.text();
    // The reload reads the configuration again, which the test gave through a FIFO.
    assert!(text.contains("the configuration file is not a regular file"), "{text}");
    assert!(text.contains("reopening the access log"), "{text}");
}

/// A stop signal that comes while the configuration is still being read ends the process at
/// once, by the signal's default action, rather than waiting for the read to finish.
#[test]
fn sigterm_during_config_read_stops() {
    use std::os::unix::process::ExitStatusExt;

    let mut starting = WaitingForConfig::start("startup-stop", 1);
    starting.signal("TERM");
    let status = common::process::wait_with_timeout(&mut starting.child, Duration::from_secs(5));
    common::process::kill_and_reap(&mut starting.child);

    assert_eq!(status.and_then(|status| status.signal()), Some(15), "exit status {status:?}\n{}", starting.output.text());
}

/// logrotate moves the file and sends SIGUSR1; new lines must go to a new file at the old path.
#[test]
fn sigusr1_reopens_access_log() {
    let cert = TestCert::generate(&["localhost"]);
    let dir = common::TempDir::new("access-log");
    let log = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let ringfront = start_logging_to(&log, &cert);
    let request = b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n";
    common::plain_request(ringfront.http_port(), request);
    wait_for_file_containing(&log, "/before");

    std::fs::rename(&log, &rotated).unwrap();
    let pid = ringfront.pid().expect("ringfront is running");
    assert!(common::process::send_signal(i64::from(pid), "USR1"));
    // The worker reopens on its next housekeeping tick, at most a second later.
    thread::sleep(Duration::from_millis(1500));
    common::plain_request(ringfront.http_port(), b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n");
    wait_for_file_containing(&log, "/after");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("/after"), "the rotated file got a new line: {old}");
}

/// The logged request time runs from the request's first bytes, as nginx's `$request_time`
/// does, so a client that trickles its head shows up as slow. A pipelined request's time starts
/// when the previous response is done, not at the earlier read that brought its bytes.
#[test]
fn access_log_times_from_first_byte() {
    let cert = TestCert::generate(&["localhost"]);
    let dir = common::TempDir::new("request-time");
    let log = dir.join("access.log");
    let ringfront = start_logging_to(&log, &cert);
    let pause = Duration::from_millis(500);
    let mut connection = common::Connection::plain(ringfront.http_port());
    connection.send(b"GET /trickled HTTP/1.1\r\n");
    thread::sleep(pause);
    connection.send(b"Host: localhost\r\n\r\nGET /pipelined HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(connection.read_response().status, 404);
    assert_eq!(connection.read_response().status, 404);
    wait_for_file_containing(&log, "/pipelined");

    let contents = std::fs::read_to_string(&log).unwrap();
    let request_time = |target: &str| -> f64 {
        let line = contents.lines().find(|line| line.contains(target)).unwrap_or_else(|| panic!("no line for {target}: {contents}"));
        let last = line.rsplit(' ').next().unwrap_or_default();
        last.parse().unwrap_or_else(|err| panic!("no request time at the end of {line:?}: {err}"))
    };
    // The server may read the first bytes late on a busy machine, so half the pause is the bound.
    let trickled = request_time("/trickled");
    assert!(trickled >= pause.as_secs_f64() / 2.0, "trickled head logged {trickled} s");
    let pipelined = request_time("/pipelined");
    assert!(pipelined < pause.as_secs_f64() / 2.0, "pipelined request logged {pipelined} s");
}

/// An error response sent before a head was parsed is logged with its body's length, as every
/// other line is, not with the length of the whole response. When the request line arrived
/// whole, the line gives its method, target and version, also an unsupported version;
/// otherwise a dash for each.
#[test]
fn access_log_error_counts_body() {
    let cert = TestCert::generate(&["localhost"]);
    let dir = common::TempDir::new("error-bytes");
    let log = dir.join("access.log");
    let ringfront = start_logging_to(&log, &cert);
    let malformed = common::plain_request(ringfront.http_port(), b"GET /a b c HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(malformed.status, 400);
    let bad_field = b"POST /bad-length HTTP/1.0\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n";
    let bad_length = common::plain_request(ringfront.http_port(), bad_field);
    assert_eq!(bad_length.status, 400);
    let unsupported = common::plain_request(ringfront.http_port(), b"GET /two HTTP/2.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(unsupported.status, 505);
    // A byte that is invalid in a method hides the whole line, so no field is guessed.
    let unreadable = common::plain_request(ringfront.http_port(), b"G\x01T /three HTTP/2.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(unreadable.status, 505);
    wait_for_file_containing(&log, "/bad-length");
    wait_for_file_containing(&log, "/two");
    wait_for_file_containing(&log, "\"- - -\" 505");

    let contents = std::fs::read_to_string(&log).unwrap();
    let malformed_line = format!("\"- - -\" 400 {} ", malformed.body.len());
    assert!(contents.contains(&malformed_line), "no line with {malformed_line:?}: {contents}");
    let bad_length_line = format!("\"POST /bad-length HTTP/1.0\" 400 {} ", bad_length.body.len());
    assert!(contents.contains(&bad_length_line), "no line with {bad_length_line:?}: {contents}");
    // The version that caused a 505 is logged as sent.
    let unsupported_line = format!("\"GET /two HTTP/2.0\" 505 {} ", unsupported.body.len());
    assert!(contents.contains(&unsupported_line), "no line with {unsupported_line:?}: {contents}");
    let unreadable_line = format!("\"- - -\" 505 {} ", unreadable.body.len());
    assert!(contents.contains(&unreadable_line), "no line with {unreadable_line:?}: {contents}");
}

/// A large body is logged once it is sent, with the body bytes the kernel took, as nginx's
/// `$body_bytes_sent`. A client that resets part-way through shows with no fewer bytes than it
/// read and fewer than the body. The cases: a file served from the cache, a file streamed from
/// disk, an upstream response held in memory and one spilled to a temporary file, over plain
/// TCP and TLS.
#[test]
fn access_log_counts_bytes_sent() {
    const CACHED_BYTES: usize = 24 << 20;
    const STREAMED_BYTES: usize = 40 << 20;
    const UPSTREAM_BUFFER_BYTES: usize = 16 << 20;
    const IN_MEMORY_BYTES: usize = 12 << 20;
    const SPILLED_BYTES: usize = 24 << 20;
    let cert = TestCert::generate(&["localhost"]);
    let dir = TempDir::new("bytes-sent");
    let log = dir.join("access.log");
    let pattern = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    dir.write("files/cached.bin", pattern(CACHED_BYTES));
    dir.write("files/streamed.bin", pattern(STREAMED_BYTES));
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = logging_config(&log)
        .https(&cert)
        .static_dir("/files/", dir.join("files"))
        .static_cache("max_file_bytes", &(32u64 << 20).to_string())
        .upstream(&gunicorn)
        .upstream_setting("buffer_bytes", &UPSTREAM_BUFFER_BYTES.to_string())
        .start();

    // Each target names its transport, so that each download has its own log line.
    let mut downloads = Vec::new();
    for (transport, port, tls) in [("plain", ringfront.http_port(), None), ("tls", ringfront.https_port(), Some(cert.client_config()))] {
        for (target, size) in [
            (format!("/files/cached.bin?{transport}"), CACHED_BYTES),
            (format!("/files/streamed.bin?{transport}"), STREAMED_BYTES),
            (format!("/big?bytes={IN_MEMORY_BYTES}&{transport}"), IN_MEMORY_BYTES),
            (format!("/big?bytes={SPILLED_BYTES}&{transport}"), SPILLED_BYTES),
        ] {
            let received = abandon_download(port, tls.clone(), &target);
            downloads.push((target, size, received));
        }
    }
    for (target, _, _) in &downloads {
        wait_for_file_containing(&log, &format!("\"GET {target} HTTP/1.1\""));
    }

    let contents = std::fs::read_to_string(&log).unwrap();
    for (target, size, received) in &downloads {
        let (status, sent) = logged_status_and_bytes(&contents, target);
        assert_eq!(status, 200, "{target}");
        assert!(sent >= *received, "{target}: logged {sent} bytes, but the client read {received}");
        assert!(sent < *size, "{target}: logged {sent} bytes of {size}, but the client reset the connection");
    }
}

/// A response streamed from the upstream as it arrives is logged also when the upstream fails
/// part-way, with the bytes relayed until then.
#[test]
fn access_log_streamed_upstream_failure() {
    let dir = TempDir::new("streamed-failure");
    let log = dir.join("access.log");
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = logging_config(&log).upstream(&gunicorn).start();

    let target = "/die?length=100000&sent=50000&unbuffered=1";
    let mut connection = Connection::plain(ringfront.http_port());
    connection.send(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    let received = connection.read_until_close();
    assert!(received.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&received));
    wait_for_file_containing(&log, target);

    let contents = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged_status_and_bytes(&contents, target), (200, 50_000), "{contents}");
}

/// A streamed upstream response cut off by the send timeout, because the client stopped
/// reading, counts every write the kernel took, also the one the timeout cut short: the line
/// shows at least what the client read.
#[test]
fn access_log_streamed_stall_counts_writes() {
    const SENT_BYTES: usize = 39_000_000;
    let dir = TempDir::new("streamed-stall");
    let log = dir.join("access.log");
    let gunicorn = Gunicorn::start("testapp:app", 1, "sync");
    let ringfront = logging_config(&log).upstream(&gunicorn).timeout("send", "\"1s\"").start();

    let target = format!("/die?length={}&sent={SENT_BYTES}&unbuffered=1", SENT_BYTES + 1);
    let mut stream = small_window_connection(ringfront.http_port());
    let received = read_part_of_download(&mut stream, &target);
    // Well past the send timeout, so that the server gives up on the stalled client.
    thread::sleep(Duration::from_millis(2500));
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
    let received = received + rest.len();
    assert!(received < SENT_BYTES, "the client got the whole body; the send never stalled");
    wait_for_file_containing(&log, &target);

    let contents = std::fs::read_to_string(&log).unwrap();
    let (status, logged) = logged_status_and_bytes(&contents, &target);
    assert_eq!(status, 200);
    assert!(logged >= received, "logged {logged} bytes, but the client read {received}");
}

/// A line is written when its response ends, so a large download's line carries the time its
/// send ended: lines stay in time order behind shorter requests served meanwhile, as in nginx.
#[test]
fn access_log_lines_in_time_order() {
    const FILE_BYTES: usize = 16 << 20;
    let dir = TempDir::new("log-order");
    let log = dir.join("access.log");
    dir.write("files/large.bin", vec![7u8; FILE_BYTES]);
    let ringfront = logging_config(&log).static_dir("/files/", dir.join("files")).start();

    let mut download = Connection::plain(ringfront.http_port());
    // The client reads nothing yet, so the send waits once the socket buffers are full.
    download.send(b"GET /files/large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // Past the next whole second, so that the two ends of the download fall in different seconds.
    thread::sleep(Duration::from_millis(1200));
    let quick = common::plain_request(ringfront.http_port(), b"GET /files/missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(quick.status, 404);
    let response = download.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), FILE_BYTES);
    wait_for_file_containing(&log, "/files/large.bin");

    let contents = std::fs::read_to_string(&log).unwrap();
    let times: Vec<std::time::SystemTime> = contents
        .lines()
        .map(|line| {
            let date = line.split_once('[').and_then(|(_, rest)| rest.split_once(']')).map(|(date, _)| date);
            let date = date.unwrap_or_else(|| panic!("no date in {line:?}"));
            httpdate::parse_http_date(date).unwrap_or_else(|err| panic!("invalid date in {line:?}: {err}"))
        })
        .collect();
    assert_eq!(times.len(), 2, "{contents}");
    assert!(contents.lines().next().is_some_and(|line| line.contains("/files/missing")), "{contents}");
    assert!(times[0] <= times[1], "lines out of time order: {contents}");
}

/// Returns the status and the body byte count of the log line for a GET of `target`.
fn logged_status_and_bytes(contents: &str, target: &str) -> (u16, usize) {
    let request = format!("\"GET {target} HTTP/1.1\" ");
    let line = contents.lines().find(|line| line.contains(&request)).unwrap_or_else(|| panic!("no line for {target}: {contents}"));
    let after = &line[line.find(&request).unwrap_or_default() + request.len()..];
    let mut fields = after.split(' ');
    let status = fields.next().and_then(|field| field.parse().ok()).unwrap_or_else(|| panic!("no status in {line:?}"));
    let sent = fields.next().and_then(|field| field.parse().ok()).unwrap_or_else(|| panic!("no byte count in {line:?}"));
    (status, sent)
}

/// Requests `target` over a connection with a 4 KiB receive buffer, over TLS when `tls` is
/// set, reads the response head and [`ABANDONED_READ_BYTES`] of the body, and closes with the
/// rest unread. The kernel then resets the connection while the server is still sending.
/// Returns the body bytes read.
fn abandon_download(port: u16, tls: Option<std::sync::Arc<rustls::ClientConfig>>, target: &str) -> usize {
    let stream = small_window_connection(port);
    match tls {
        None => read_part_of_download(stream, target),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let session = rustls::ClientConnection::new(config, name).unwrap();
            read_part_of_download(rustls::StreamOwned::new(session, stream), target)
        }
    }
}

/// Connects to `port` on 127.0.0.1 with a 4 KiB receive buffer, so that a server sending a
/// large body soon waits for the client to read.
fn small_window_connection(port: u16) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let stream = std::net::TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Body bytes a client reads before it abandons a download.
const ABANDONED_READ_BYTES: usize = 100_000;

/// Sends a GET for `target` on `stream`, reads the response head and [`ABANDONED_READ_BYTES`]
/// of the body, waits for the server to fill the socket buffers, and drops the stream.
fn read_part_of_download(mut stream: impl std::io::Read + std::io::Write, target: &str) -> usize {
    stream.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).unwrap();
        assert_eq!(read, 1, "{target}: connection ended inside the response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{target}: {}", String::from_utf8_lossy(&head));
    let mut body = vec![0u8; ABANDONED_READ_BYTES];
    stream.read_exact(&mut body).unwrap();
    thread::sleep(Duration::from_millis(300));
    body.len()
}

/// Starts one worker with a plain listener that writes its access log to `log`.
fn start_logging_to(log: &std::path::Path, cert: &TestCert) -> Ringfront {
    logging_config(log).https(cert).start()
}

/// Returns the configuration of one worker with a plain listener that writes its access log to
/// `log`.
fn logging_config(log: &std::path::Path) -> Config {
    Config::new().http().workers(1).server("access_log", &common::ringfront::toml_string(&log.to_string_lossy()))
}

/// Waits, bounded, until `path` exists and contains `text`.
fn wait_for_file_containing(path: &std::path::Path, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|contents| contents.contains(text)) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not get a line with {text} within 5 s", path.display());
}

/// After SIGTERM, the listening ports refuse connections. A listener that was only closed
/// stayed open in the kernel while its cancelled accept was in the ring, until after the
/// process exited, and connections made then were accepted and reset. Several runs, because
/// that happened in about one exit in three.
#[test]
fn exited_server_refuses_connections() {
    const RUNS: usize = 8;
    const PROBE_TIME: Duration = Duration::from_millis(300);
    for run in 0..RUNS {
        let mut ringfront = Config::new().http().start();
        let port = ringfront.http_port();
        let status = ringfront.terminate();
        assert!(status.success(), "run {run}: exit status {status}");

        let started = Instant::now();
        while started.elapsed() < PROBE_TIME {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
                Ok(_) => panic!("run {run}: a connection was accepted {:?} after exit", started.elapsed()),
                Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "run {run}"),
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A client that connected to the TLS port and sent nothing, or only part of its ClientHello,
/// has no request in flight: SIGTERM closes it at once instead of waiting for the grace period.
#[test]
fn sigterm_closes_handshaking_connections() {
    let cert = TestCert::generate(&["localhost"]);
    let mut ringfront = Config::new()
        .https(&cert)
        .server("shutdown_grace", "\"30s\"")
        .timeout("handshake", "\"60s\"")
        .start();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], ringfront.https_port()));
    let silent = std::net::TcpStream::connect(address).expect("connect to the TLS port");
    let mut partial = std::net::TcpStream::connect(address).expect("connect to the TLS port");
    // The first bytes of a TLS handshake record: content type 22, version 3.1, a length.
    std::io::Write::write_all(&mut partial, &[22, 3, 1, 0, 200]).expect("send a partial record");
    thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let status = ringfront.terminate();

    assert!(status.success(), "exit status {status}");
    // Without closing them, the exit would wait for the 30 s grace period.
    assert!(started.elapsed() < Duration::from_secs(10), "exit took {:?}", started.elapsed());
    drop((silent, partial));
}

/// Clients that keep opening connections and sending a request on each while the server stops
/// each get a whole response, a refused connection or a reset. None gets an end of stream with
/// no response and no reset: that would be a request read and then dropped, or one left unread
/// with nothing to tell the client. Before a new connection's first request was read at the
/// stop, and a handshake in progress could finish, about half of such stops had one or two.
#[test]
fn requests_during_stop_served_or_refused() {
    const ROUNDS: usize = 5;
    let site = Site::create();
    let cert = TestCert::generate(&["localhost"]);
    for round in 0..ROUNDS {
        let (answered, reset, lost) = stop_under_requests(&site, &cert);
        assert!(answered > 0, "round {round}: no request answered before the stop");
        assert_eq!(lost, 0, "round {round}: requests with neither a response nor a reset; {answered} answered, {reset} reset");
    }
}

/// Stops a server while six clients, half of them on TLS, open connections and send one request
/// on each. Returns the counts of requests served, reset, and ended with neither.
fn stop_under_requests(site: &Site, cert: &TestCert) -> (usize, usize, usize) {
    const CLIENTS: usize = 6;
    const RUN_LIMIT: Duration = Duration::from_secs(5);
    const REQUEST: &[u8] = b"GET /static/sub/page.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut ringfront = Config::new().workers(2).http().https(cert).static_dir("/static/", site.static_dir()).start();
    let page = site.read("static/sub/page.txt");

    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (port, tls) = if index % 2 == 0 { (ringfront.http_port(), None) } else { (ringfront.https_port(), Some(cert.client_config())) };
            let page = page.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let (mut answered, mut ended) = (0, Vec::new());
                while started.elapsed() < RUN_LIMIT {
                    // The stop closes the port, which ends the run.
                    let Ok(mut connection) = Connection::try_connect(port, tls.clone()) else { break };
                    // A TLS connection closed in its handshake fails here, before any request.
                    if connection.try_send(REQUEST).is_err() {
                        continue;
                    }
                    let end = connection.wait_for_end(Duration::from_secs(5));
                    if !end.received.is_empty() {
                        let whole = end.received.starts_with(b"HTTP/1.1 200 ") && end.received.ends_with(&page);
                        assert!(whole, "a partial response: {:?}", String::from_utf8_lossy(&end.received));
                        answered += 1;
                        continue;
                    }
                    ended.push((end.kind, connection));
                }
                (answered, ended)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let status = ringfront.terminate();
    assert!(status.success(), "exit status {status}");

    // A reset for an unread request comes right behind the end of stream.
    thread::sleep(Duration::from_millis(50));
    let (mut answered, mut reset, mut lost) = (0, 0, 0);
    for client in clients {
        let (client_answered, ended) = client.join().expect("a client thread");
        answered += client_answered;
        for (kind, connection) in ended {
            match kind {
                EndKind::Error(std::io::ErrorKind::ConnectionReset) => reset += 1,
                EndKind::EndOfFile | EndKind::Error(_) if connection.take_socket_error().is_some() => reset += 1,
                EndKind::EndOfFile | EndKind::Error(_) => lost += 1,
                EndKind::Open => panic!("a connection still open 5 s after its request"),
            }
        }
    }
    (answered, reset, lost)
}

/// A second stop signal ends the process at once, with status 1, and its ports must be free for
/// the next start right away. Before the listeners stopped at the first signal, the exit left
/// them listening for 5 to 16 ms while the kernel tore the workers' rings down.
#[test]
fn second_signal_leaves_ports_free() {
    const RUNS: usize = 5;
    for run in 0..RUNS {
        let cert = TestCert::generate(&["localhost"]);
        let mut ringfront = Config::new().https(&cert).http().start();
        let ports = [ringfront.https_port(), ringfront.http_port()];
        // A request head in progress keeps the first signal's drain waiting.
        let mut pending = std::net::TcpStream::connect(("127.0.0.1", ringfront.http_port())).expect("connect");
        std::io::Write::write_all(&mut pending, b"GET / HTTP/1.1\r\n").expect("send part of a head");
        thread::sleep(Duration::from_millis(100));

        let status = ringfront.terminate_twice();

        assert_eq!(status.code(), Some(1), "run {run}: exit status {status}");
        for port in ports {
            // std sets SO_REUSEADDR, as ringfront's own start-up probe does.
            let bound = std::net::TcpListener::bind(("127.0.0.1", port));
            assert!(bound.is_ok(), "run {run}: port {port} still taken: {:?}", bound.err());
        }
        drop(pending);
    }
}

/// Connections still open when the grace period ends are logged by name up to a bound per
/// worker, and the rest in one line, so that many stalled clients do not flood the log.
#[test]
fn grace_end_log_is_bounded() {
    const STALLED: usize = 30;
    let mut ringfront = Config::new()
        .workers(1)
        .http()
        .server("shutdown_grace", "\"1s\"")
        .timeout("request_head", "\"60s\"")
        .start();
    let port = ringfront.http_port();
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std::io::Write::write_all(&mut stream, b"GET / HTTP/1.1\r\n").expect("send part of a head");
        stalled.push(stream);
    }
    thread::sleep(Duration::from_millis(300));

    let status = ringfront.terminate();

    assert!(status.success(), "exit status {status}");
    let output = ringfront.output();
    let named = output.matches("closing a connection still open").count();
    assert_eq!(named, 10, "{output}");
    assert!(output.contains("connections=20"), "{output}");
    drop(stalled);
}

/// `access_log = "stderr"` writes to the process's own stderr also when that is a socket, as
/// under systemd's journal, where the path /dev/stderr cannot be opened.
#[test]
fn stderr_access_log_on_a_socket() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::OwnedFd;

    let dir = TempDir::new("stderr-access-log");
    let port = common::process::free_port();
    let config = dir.write(
        "ringfront.toml",
        format!("[server]\nworkers = 1\naccess_log = \"stderr\"\nlog_level = \"warn\"\n[http]\nlisten = [\"127.0.0.1:{port}\"]\n"),
    );
    let (reader, writer) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    let mut child = std::process::Command::new(common::ringfront::binary_path())
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(OwnedFd::from(writer))
        .spawn()
        .expect("ringfront started");
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        if let Ok(mut connection) = Connection::try_connect(port, None) {
            connection.send(b"GET /nothing-here HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            break connection.read_response();
        }
        assert!(child.try_wait().expect("a status").is_none(), "ringfront exited at start");
        assert!(Instant::now() < deadline, "ringfront did not listen within 10 s");
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(response.status, 404);

    assert!(common::process::send_signal(i64::from(child.id()), "TERM"), "SIGTERM not sent");
    let status = common::process::wait_with_timeout(&mut child, Duration::from_secs(10)).expect("an exit");
    assert!(status.success(), "exit status {status}");
    reader.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    let lines: Vec<String> = BufReader::new(reader).lines().map_while(Result::ok).collect();
    assert!(lines.iter().any(|line| line.contains("\"GET /nothing-here HTTP/1.1\" 404")), "{lines:?}");
    // The keyword names the stream, not a file to create in the working directory.
    assert!(!std::path::Path::new("stderr").exists(), "a file named stderr was created");
}
