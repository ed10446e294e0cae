//! Process plumbing for the harness: unique temporary directories, free loopback ports, capture of
//! a child's output, signals and bounded waits.

use std::collections::HashSet;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Interval between two polls of a condition that has no event to wait on.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A directory under [`std::env::temp_dir`] that is unique within the machine and removed, with
/// everything in it, on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `rf-LABEL-PID-N` under the system temporary directory. The name stays short
    /// because a Unix socket path inside it must fit in `sun_path` (108 bytes on Linux).
    ///
    /// # Panics
    /// Panics if the directory cannot be created.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rf-{label}-{}-{serial}", std::process::id()));

        // A directory left behind by an earlier run whose process had the same id.
        if path.exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
        if let Err(error) = std::fs::create_dir_all(&path) {
            panic!(
                "failed to create temporary directory {}: {error}",
                path.display()
            );
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the path of `relative` inside this directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path.join(relative)
    }

    /// Writes `contents` to `relative`, creating parent directories as needed.
    ///
    /// # Panics
    /// Panics if a directory or the file cannot be written.
    pub fn write(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(relative);
        if let Some(parent) = path.parent()
            && let Err(error) = std::fs::create_dir_all(parent)
        {
            panic!("failed to create directory {}: {error}", parent.display());
        }
        if let Err(error) = std::fs::write(&path, contents) {
            panic!("failed to write {}: {error}", path.display());
        }
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Returns a loopback TCP port that was free a moment ago: the kernel picks it for a listener
/// bound to port 0, which is then closed.
///
/// Another process can take the port before the caller binds it, so [`super::Ringfront`]
/// retries its start when the server reports the address in use. Within this process no port is
/// handed out twice.
///
/// # Panics
/// Panics if no loopback listener can be bound.
pub fn free_port() -> u16 {
    static ISSUED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

    for _ in 0..100 {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(error) => panic!("failed to bind a loopback listener to find a free port: {error}"),
        };
        let port = match listener.local_addr() {
            Ok(address) => address.port(),
            Err(error) => panic!("failed to read the address of a loopback listener: {error}"),
        };
        drop(listener);

        let mut issued = ISSUED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if issued.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("the kernel returned only ports already issued in this process, 100 times in a row");
}

/// The stdout and stderr of a child, collected by two reader threads into one shared buffer in
/// the order the chunks arrived.
#[derive(Debug, Default)]
pub struct CapturedOutput {
    buffer: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl CapturedOutput {
    /// Takes the piped stdout and stderr out of `child` and starts copying them into the buffer.
    pub fn capture(child: &mut Child) -> CapturedOutput {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(spawn_copier(stdout, Arc::clone(&buffer)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(spawn_copier(stderr, Arc::clone(&buffer)));
        }
        CapturedOutput { buffer, readers }
    }

    /// Returns everything captured so far, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        let buffer = self
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Waits up to `timeout` for both pipes to reach end of file, which happens once the child
    /// and every process that inherited the pipes have exited, then returns the text.
    pub fn finish(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while self.readers.iter().any(|reader| !reader.is_finished()) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        for reader in std::mem::take(&mut self.readers) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        self.text()
    }
}

fn spawn_copier(
    mut pipe: impl Read + Send + 'static,
    buffer: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(count) => {
                    let mut buffer = buffer
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    buffer.extend_from_slice(&chunk[..count]);
                }
            }
        }
    })
}

/// Spawns `command` with piped stdout and stderr and null stdin, and starts capturing its output.
///
/// # Panics
/// Panics if the program cannot be started; `what` names it in the message.
pub fn spawn_captured(command: &mut Command, what: &str) -> (Child, CapturedOutput) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => panic!("failed to start {what} ({command:?}): {error}"),
    };
    let output = CapturedOutput::capture(&mut child);
    (child, output)
}

/// Sends `signal` (a name such as `TERM` or `KILL`) to `target`, a process id or, when negative,
/// a process group, through the `kill` program so that the harness needs no `unsafe`.
///
/// Returns whether `kill` reported success; it fails when the target has already exited.
pub fn send_signal(target: i64, signal: &str) -> bool {
    let mut command = Command::new("kill");
    command
        .arg("-s")
        .arg(signal)
        .arg("--")
        .arg(target.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match command.status() {
        Ok(status) => status.success(),
        Err(error) => panic!("failed to run `kill` to send SIG{signal} to {target}: {error}"),
    }
}

/// Polls `child` until it exits or `timeout` passes; returns its status if it exited.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(error) => panic!("failed to poll child process {}: {error}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Kills `child` with SIGKILL if it is still running and reaps it.
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Binds a Unix listener at `socket` with non-blocking accepts, so that the thread accepting on
/// it can stop, or give up, between polls.
///
/// # Panics
/// Panics if the socket cannot be bound or made non-blocking.
pub fn bind_polled_unix_listener(socket: &Path) -> UnixListener {
    let listener = match UnixListener::bind(socket) {
        Ok(listener) => listener,
        Err(error) => panic!("failed to bind {}: {error}", socket.display()),
    };
    if let Err(error) = listener.set_nonblocking(true) {
        panic!("failed to make {} non-blocking: {error}", socket.display());
    }
    listener
}
