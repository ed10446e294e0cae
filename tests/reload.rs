//! Configuration reload on SIGHUP: new connections get the new configuration, connections
//! accepted before finish their current request and close, and a configuration that cannot be
//! used leaves the running one in place with an error that names the problem.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Config, Connection, Gunicorn, Ringfront, TempDir, plain_request, ringfront::toml_string};

/// How long a test waits for a log line after SIGHUP.
const OUTPUT_WAIT: Duration = Duration::from_secs(10);

/// The log line of a successful reload.
const RELOADED: &str = "SIGHUP: configuration reloaded";

/// The log line of a rejected reload.
const KEPT: &str = "SIGHUP: the running configuration stays in use";

const GET_PAGE: &[u8] = b"GET /files/page.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Replaces ringfront's configuration file with `edit` applied to its text, by renaming a new
/// file over it, as editors and deployment tools do.
fn rewrite_config(ringfront: &Ringfront, edit: impl FnOnce(&str) -> String) {
    let path = ringfront.config_path();
    let text = std::fs::read_to_string(path).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changed nothing");
    let staged = path.with_extension("staged");
    std::fs::write(&staged, edited).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// Sends SIGHUP and waits until the output has `count` lines containing `needle`. Returns the
/// output.
fn send_hup(ringfront: &Ringfront, needle: &str, count: usize) -> String {
    let pid = i64::from(ringfront.pid().expect("ringfront is running"));
    assert!(common::process::send_signal(pid, "HUP"));
    ringfront.wait_for_output(needle, count, OUTPUT_WAIT)
}

/// Two directories with a `page.txt` each, served in turn under `/files/`.
fn two_sites() -> (TempDir, TempDir) {
    let first = TempDir::new("reload-first");
    first.write("page.txt", "first\n");
    let second = TempDir::new("reload-second");
    second.write("page.txt", "second\n");
    (first, second)
}

fn dir_value(dir: &TempDir) -> String {
    toml_string(&dir.path().to_string_lossy())
}

#[test]
fn reload_serves_new_connections() {
    let (first, second) = two_sites();
    let ringfront = Config::new().http().static_dir("/files/", first.path()).start();
    let port = ringfront.http_port();
    let mut idle = Connection::plain(port);
    assert_eq!(idle.request(GET_PAGE).body, b"first\n");

    rewrite_config(&ringfront, |text| text.replace(&dir_value(&first), &dir_value(&second)));
    let output = send_hup(&ringfront, RELOADED, 1);
    assert!(output.contains("generation=1"), "{output}");

    assert_eq!(plain_request(port, GET_PAGE).body, b"second\n");
    // An idle connection accepted before the reload is closed, as nginx's old workers close
    // theirs, so no client keeps the old configuration.
    assert!(idle.is_closed_by_peer(), "the idle connection from before the reload stays open");
}

/// A request in flight during the reload gets its whole response under the configuration it
/// started with, and its connection closes after it.
#[test]
fn busy_connection_finishes_then_closes() {
    let gunicorn = Gunicorn::start("testapp:app", 2, "sync");
    let ringfront = Config::new().http().upstream(&gunicorn).start();
    let port = ringfront.http_port();
    let mut busy = Connection::plain(port);
    busy.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    thread::sleep(Duration::from_millis(300));

    rewrite_config(&ringfront, |text| text.replace("[upstream]\n", "[upstream]\nread_timeout = \"1s\"\n"));
    send_hup(&ringfront, RELOADED, 1);
    let response = busy.read_response();

    assert_eq!(response.status, 200);
    assert!(response.header_has_token("connection", "close"), "{:?}", response.header("connection"));
    assert!(busy.is_closed_by_peer());
    // The new read timeout applies to new connections: the same request now takes too long.
    let late = plain_request(port, b"GET /slow?ms=1500 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(late.status, 504);
}

/// A response that started with keep-alive before the reload is sent whole, and the connection
/// then closes instead of waiting for another request under the old configuration.
#[test]
fn long_response_then_close() {
    const FILE_BYTES: usize = 32 * 1024 * 1024;
    let (first, second) = two_sites();
    first.write("large.bin", common::pattern_bytes(FILE_BYTES));
    // One worker, so that the request below moves the downloading connection's worker to the
    // new configuration while the response is still being sent.
    let ringfront = Config::new().workers(1).http().static_dir("/files/", first.path()).start();
    let mut downloading = Connection::plain(ringfront.http_port());
    downloading.send(b"GET /files/large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // The client reads a little and stops, so the rest waits in the server's send.
    let head = downloading.read_bytes(4096);
    assert!(head.starts_with(b"HTTP/1.1 200 "));
    assert!(!common::contains_bytes(&head, b"Connection: close"));

    rewrite_config(&ringfront, |text| text.replace(&dir_value(&first), &dir_value(&second)));
    send_hup(&ringfront, RELOADED, 1);
    assert_eq!(plain_request(ringfront.http_port(), GET_PAGE).body, b"second\n");
    let end = downloading.wait_for_end(OUTPUT_WAIT);

    assert!(matches!(end.kind, common::client::EndKind::EndOfFile), "{:?} after {} more bytes", end.kind, end.received.len());
    assert!(head.len() + end.received.len() > FILE_BYTES);
}

/// A connection accepted before the reload that has not sent its first request yet may still
/// send it, as with nginx, and gets its response under the configuration it was accepted with.
/// The cases: a plain connection, and a TLS one that has not finished its handshake.
#[test]
fn first_request_after_reload_served() {
    let (first, second) = two_sites();
    let cert = common::TestCert::generate(&["localhost"]);
    // One worker, so that the request below moves the worker of both connections.
    let ringfront = Config::new().workers(1).http().https(&cert).static_dir("/files/", first.path()).start();
    let pid = ringfront.pid().expect("ringfront is running");
    // Compared by socket, not by count: the connections that checked ringfront was up may close
    // meanwhile.
    let sockets = open_sockets(pid);
    let plain = Connection::plain(ringfront.http_port());
    let mut tls = Connection::https(ringfront.https_port(), &cert);
    // Both must be accepted before the reload, not only queued.
    let deadline = Instant::now() + OUTPUT_WAIT;
    while open_sockets(pid).iter().filter(|socket| !sockets.contains(socket)).count() < 2 {
        assert!(Instant::now() < deadline, "the two connections were not accepted");
        thread::sleep(Duration::from_millis(10));
    }

    rewrite_config(&ringfront, |text| text.replace(&dir_value(&first), &dir_value(&second)));
    send_hup(&ringfront, RELOADED, 1);
    assert_eq!(plain_request(ringfront.http_port(), GET_PAGE).body, b"second\n");

    // The handshake ends after the reload, and the request comes a little later, as from a
    // client whose request waits for a round trip after the handshake.
    tls.handshake().unwrap();
    thread::sleep(Duration::from_millis(200));
    for (name, mut connection) in [("plain", plain), ("TLS", tls)] {
        let response = connection.request(GET_PAGE);
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.body, b"first\n", "{name}");
        assert!(response.header_has_token("connection", "close"), "{name}: {:?}", response.header("connection"));
    }
}

/// Returns the sockets that process `pid` has open, as their `/proc` link targets
/// (`socket:[inode]`).
fn open_sockets(pid: u32) -> Vec<String> {
    let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let targets = descriptors.filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok());
    targets.map(|target| target.display().to_string()).filter(|target| target.starts_with("socket:")).collect()
}

/// Counts the open file descriptors of process `pid`.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// A connection accepted before the reload keeps the old configuration alive, but not the old
/// configuration's pooled upstream connections.
#[test]
fn replaced_pool_closed() {
    let gunicorn = Gunicorn::start("testapp:app", 1, "gthread");
    let ringfront = Config::new().workers(1).http().upstream(&gunicorn).upstream_setting("keepalive_timeout", "\"60s\"").start();
    let port = ringfront.http_port();
    let pid = ringfront.pid().expect("ringfront is running");
    // Waiting for its first request, it is left open by the reload.
    let mut pinning = Connection::plain(port);
    let response = plain_request(port, b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 200);
    thread::sleep(Duration::from_millis(200));
    let before = open_descriptors(pid);

    rewrite_config(&ringfront, |text| text.replace("[upstream]\n", "[upstream]\nread_timeout = \"5s\"\n"));
    send_hup(&ringfront, RELOADED, 1);
    // The worker moves to the new configuration within a second, and closes the pool then.
    thread::sleep(Duration::from_millis(1500));
    let after = open_descriptors(pid);

    assert_eq!(after + 1, before, "descriptors before the reload: {before}, after: {after}");
    assert_eq!(pinning.request(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
}

/// Each kind of unusable configuration is rejected with its reason, and the running one keeps
/// serving. A valid file after them is taken.
#[test]
fn invalid_reload_keeps_configuration() {
    let (first, second) = two_sites();
    let ringfront = Config::new().http().static_dir("/files/", first.path()).start();
    let port = ringfront.http_port();
    let original = std::fs::read_to_string(ringfront.config_path()).unwrap();

    let missing = dir_value(&first).replace("reload-first", "reload-missing");
    let cases = [
        ("a syntax error", original.replacen("[server]", "[server", 1), "ringfront.toml:1:"),
        ("an unknown key", original.replacen("[server]\n", "[server]\nworker = 3\n", 1), "server.worker"),
        ("more workers", original.replacen("workers = 2", "workers = 3", 1), "changed=\"server.workers\""),
        ("another listener", original.replacen("[http]\nlisten = [", "[http]\nlisten = [\"127.0.0.1:1\", ", 1), "the listen addresses"),
        ("a missing directory", original.replace(&dir_value(&first), &missing), "static[0].dir"),
    ];
    for (index, (name, edited, reason)) in cases.into_iter().enumerate() {
        std::fs::write(ringfront.config_path(), &original).unwrap();
        rewrite_config(&ringfront, |_| edited);
        let output = send_hup(&ringfront, KEPT, index + 1);
        let line = output.lines().filter(|line| line.contains(KEPT)).nth(index).unwrap_or_default();
        assert!(line.contains(reason), "{name}: {line}");
        assert_eq!(plain_request(port, GET_PAGE).body, b"first\n", "{name}");
    }

    std::fs::write(ringfront.config_path(), &original).unwrap();
    rewrite_config(&ringfront, |text| text.replace(&dir_value(&first), &dir_value(&second)));
    let output = send_hup(&ringfront, RELOADED, 1);
    assert!(output.contains("generation=1"), "{output}");
    assert_eq!(plain_request(port, GET_PAGE).body, b"second\n");
}

/// The access log moves to the file the reloaded configuration names.
#[test]
fn reload_moves_access_log() {
    let (site, _) = two_sites();
    let logs = TempDir::new("reload-logs");
    let before = logs.join("before.log");
    let after = logs.join("after.log");
    let ringfront = Config::new()
        .workers(1)
        .http()
        .static_dir("/files/", site.path())
        .server("access_log", &toml_string(&before.to_string_lossy()))
        .start();
    let port = ringfront.http_port();
    plain_request(port, b"GET /files/page.txt?before HTTP/1.1\r\nHost: localhost\r\n\r\n");

    rewrite_config(&ringfront, |text| text.replace("before.log", "after.log"));
    send_hup(&ringfront, RELOADED, 1);
    plain_request(port, b"GET /files/page.txt?after HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // A log moved away before a reload that keeps its path is not written to any more.
    let moved = logs.join("moved.log");
    wait_for_line(&after, "?after");
    std::fs::rename(&after, &moved).unwrap();
    rewrite_config(&ringfront, |text| text.replace("[server]\n", "[server]\nmax_connections = 1000\n"));
    send_hup(&ringfront, RELOADED, 2);
    plain_request(port, b"GET /files/page.txt?renamed HTTP/1.1\r\nHost: localhost\r\n\r\n");
    wait_for_line(&after, "?renamed");

    let before_text = std::fs::read_to_string(&before).unwrap();
    let moved_text = std::fs::read_to_string(&moved).unwrap();
    assert!(before_text.contains("?before"), "{before_text}");
    assert!(!before_text.contains("?after"), "{before_text}");
    assert!(moved_text.contains("?after"), "{moved_text}");
    assert!(!moved_text.contains("?renamed"), "{moved_text}");
}

/// Waits until the file at `path` has a line containing `needle`. Access log lines are written
/// out once a second.
fn wait_for_line(path: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + OUTPUT_WAIT;
    while !std::fs::read_to_string(path).unwrap_or_default().contains(needle) {
        assert!(Instant::now() < deadline, "no line with {needle} in {}", path.display());
        thread::sleep(Duration::from_millis(50));
    }
}

/// Requests on new connections all succeed while reloads come one after another.
#[test]
fn requests_succeed_during_reloads() {
    const RELOADS: usize = 10;
    let (first, second) = two_sites();
    let ringfront = Config::new().http().static_dir("/files/", first.path()).start();
    let port = ringfront.http_port();
    let first_text = std::fs::read_to_string(ringfront.config_path()).unwrap();
    let second_text = first_text.replace(&dir_value(&first), &dir_value(&second));

    let deadline = Instant::now() + Duration::from_secs(30);
    let bodies = thread::scope(|scope| {
        let client = scope.spawn(|| {
            let mut bodies = Vec::new();
            while bodies.len() < 2000 && Instant::now() < deadline {
                bodies.push(plain_request(port, GET_PAGE).body);
                if ringfront.output().matches(RELOADED).count() == RELOADS && bodies.len() >= 200 {
                    break;
                }
            }
            bodies
        });
        for reload in 0..RELOADS {
            let text = if reload % 2 == 0 { &second_text } else { &first_text };
            rewrite_config(&ringfront, |_| text.clone());
            send_hup(&ringfront, RELOADED, reload + 1);
            thread::sleep(Duration::from_millis(50));
        }
        client.join().unwrap()
    });

    assert!(bodies.len() >= 200, "{} requests", bodies.len());
    let unexpected: Vec<_> = bodies.iter().filter(|body| body.as_slice() != b"first\n" && body.as_slice() != b"second\n").collect();
    assert!(unexpected.is_empty(), "{} of {} responses unexpected, first: {:?}", unexpected.len(), bodies.len(), unexpected.first());
    assert!(bodies.iter().any(|body| body.as_slice() == b"second\n"), "no response came from the reloaded configuration");
}
