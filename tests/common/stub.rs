//! A stand-in upstream on a Unix socket that responds `404 Not Found` to every request, for tests
//! that need no Gunicorn. A request that ringfront proxies instead of serving itself then gets a
//! quick, recognisable response instead of waiting for a read timeout.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::process::{POLL_INTERVAL, TempDir};

/// Body of every stub response, so a test can tell it apart from ringfront's own 404.
pub const STUB_BODY: &[u8] = b"stub upstream\n";

/// Maximum bytes of one request that the stub reads before it responds anyway.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Timeout of each read and write on an accepted connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The stub's listener and accept thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct StubUpstream {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    dir: Option<TempDir>,
}

impl StubUpstream {
    /// Binds `stub.sock` in a new temporary directory and starts accepting.
    ///
    /// # Panics
    /// Panics if the socket cannot be bound.
    pub fn start() -> StubUpstream {
        let dir = TempDir::new("stub");
        let socket = dir.join("stub.sock");
        StubUpstream::bind(socket, Some(dir))
    }

    /// Binds the stub to `socket`, a path in a directory that the caller owns and removes.
    ///
    /// # Panics
    /// Panics if the socket cannot be bound.
    pub fn start_at(socket: &Path) -> StubUpstream {
        StubUpstream::bind(socket.to_path_buf(), None)
    }

    fn bind(socket: PathBuf, dir: Option<TempDir>) -> StubUpstream {
        let listener = super::process::bind_polled_unix_listener(&socket);

        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || accept_until_stopped(&listener, &stop))
        };
        StubUpstream {
            socket,
            stop,
            acceptor: Some(acceptor),
            dir,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }
}

impl Drop for StubUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_until_stopped(listener: &UnixListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                thread::spawn(move || {
                    let _ = respond_not_found(stream);
                });
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL_INTERVAL),
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Reads one request head and its Content-Length body, then writes the 404 response and closes.
fn respond_not_found(mut stream: UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;

    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let count = stream.read(&mut chunk)?;
        if count == 0 || received.len() > MAX_REQUEST_BYTES {
            return Ok(());
        }
        received.extend_from_slice(&chunk[..count]);
    };

    // Read the body so that closing the socket does not reset the connection (RFC 9112 §9.6).
    let body_length = content_length(&received[..head_end])
        .unwrap_or(0)
        .min(MAX_REQUEST_BYTES);
    while received.len() < head_end + body_length {
        let count = stream.read(&mut chunk)?;
        if count == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..count]);
    }

    let head = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        STUB_BODY.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(STUB_BODY)?;
    stream.flush()
}

fn content_length(head: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}
