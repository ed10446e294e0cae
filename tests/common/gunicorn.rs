//! Gunicorn running an app from `tests/apps` on a Unix socket in a temporary directory.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{self, CapturedOutput, POLL_INTERVAL, TempDir};

/// Maximum time from spawning Gunicorn until its socket accepts connections. Importing Flask
/// takes about a second on a loaded 2-core machine, so this leaves a wide margin.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum time [`Gunicorn::stop`] waits after SIGTERM. Gunicorn's own `--graceful-timeout` is
/// set below it so that workers finish or are killed first.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Graceful timeout passed to Gunicorn, in seconds.
const GRACEFUL_TIMEOUT_SECONDS: u32 = 5;

/// A Gunicorn master and its workers, in their own process group so that dropping this value
/// kills all of them.
#[derive(Debug)]
pub struct Gunicorn {
    child: Option<Child>,
    output: CapturedOutput,
    socket: PathBuf,
    exit_status: Option<ExitStatus>,
    // Declared last so the socket's directory outlives the processes that use it.
    dir: TempDir,
}

impl Gunicorn {
    /// Starts `.venv/bin/gunicorn` from the crate root with `--chdir tests/apps`, bound to
    /// `unix:<temporary directory>/gunicorn.sock`, and waits until the socket accepts.
    ///
    /// `app_module` is Gunicorn's `MODULE:VARIABLE` (for example `testapp:app`), `workers` its
    /// `--workers` and `worker_class` its `--worker-class` (for example `sync` or `gthread`).
    ///
    /// # Panics
    /// Panics if the virtual environment is missing (run `scripts/setup-python.sh`), if Gunicorn
    /// cannot be spawned, exits early, or its socket does not accept within [`STARTUP_TIMEOUT`].
    /// The message includes Gunicorn's output.
    pub fn start(app_module: &str, workers: u32, worker_class: &str) -> Gunicorn {
        Gunicorn::start_with_args(app_module, workers, worker_class, &[])
    }

    /// Like [`Gunicorn::start`], with `extra_args` added to the command line before the app
    /// module (for example `["--keep-alive", "1"]`).
    ///
    /// # Panics
    /// As [`Gunicorn::start`].
    pub fn start_with_args(
        app_module: &str,
        workers: u32,
        worker_class: &str,
        extra_args: &[&str],
    ) -> Gunicorn {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let program = manifest_dir.join(".venv/bin/gunicorn");
        if !program.is_file() {
            panic!(
                "{} not found: run scripts/setup-python.sh to create the virtual environment \
                 with Gunicorn and Flask",
                program.display()
            );
        }

        let dir = TempDir::new("gunicorn");
        let socket = dir.join("gunicorn.sock");
        let mut command = Command::new(&program);
        command
            .current_dir(dir.path())
            .arg("--chdir")
            .arg(manifest_dir.join("tests/apps"))
            .arg("--bind")
            .arg(format!("unix:{}", socket.display()))
            .arg("--workers")
            .arg(workers.to_string())
            .arg("--worker-class")
            .arg(worker_class)
            .arg("--graceful-timeout")
            .arg(GRACEFUL_TIMEOUT_SECONDS.to_string())
            .arg("--access-logfile")
            .arg("-")
            // Every instance would otherwise share the control socket ~/.gunicorn/gunicorn.ctl.
            .arg("--no-control-socket")
            .args(extra_args)
            .arg(app_module)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .process_group(0);
        let (child, output) = process::spawn_captured(&mut command, "gunicorn");

        let mut gunicorn = Gunicorn {
            child: Some(child),
            output,
            socket,
            exit_status: None,
            dir,
        };
        gunicorn.wait_until_accepting();
        gunicorn
    }

    /// Waits until a request through the socket gets a response. The master listens before
    /// its workers have imported the app, and a request queued meanwhile can wait longer than
    /// a test's short upstream timeouts on a loaded machine.
    fn wait_until_accepting(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = UnixStream::connect(&self.socket) {
                let left = STARTUP_TIMEOUT.saturating_sub(started.elapsed()).max(POLL_INTERVAL);
                let mut response = Vec::new();
                let answered = stream.set_read_timeout(Some(left)).is_ok()
                    && stream.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_ok()
                    && stream.read_to_end(&mut response).is_ok();
                if answered && response.starts_with(b"HTTP/1.1 200 ") {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let output = self.output.finish(Duration::from_secs(1));
                panic!("gunicorn exited with {status} before accepting connections:\n{output}");
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                panic!(
                    "gunicorn did not accept on {} within {STARTUP_TIMEOUT:?}:\n{}",
                    self.socket.display(),
                    self.output.text()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns the process id of the Gunicorn master, which its workers see as their parent.
    ///
    /// # Panics
    /// Panics if Gunicorn was never started.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("gunicorn was never started"),
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Returns Gunicorn's output so far: its error log and access log.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Sends SIGTERM to the master, waits for it to exit and returns its status. Gunicorn then
    /// stops its workers and removes the socket, so later connections fail. A second call returns
    /// the first call's status.
    ///
    /// # Panics
    /// Panics if Gunicorn is still running after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.exit_status {
            return status;
        }
        let Some(child) = self.child.as_mut() else {
            panic!("gunicorn was never started");
        };

        process::send_signal(i64::from(child.id()), "TERM");
        let Some(status) = process::wait_with_timeout(child, STOP_TIMEOUT) else {
            panic!(
                "gunicorn still running {STOP_TIMEOUT:?} after SIGTERM:\n{}",
                self.output.text()
            );
        };
        self.exit_status = Some(status);
        status
    }
}

impl Drop for Gunicorn {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };

        // The group id is the master's pid because of `process_group(0)`, and the negative target
        // reaches the workers too, which would otherwise outlive a killed master. After a clean
        // stop the group is gone and its id may already belong to another process.
        if self.exit_status.is_none() {
            process::send_signal(-i64::from(child.id()), "KILL");
        }
        process::kill_and_reap(&mut child);

        if thread::panicking() {
            eprintln!(
                "--- gunicorn output ---\n{}",
                self.output.finish(Duration::from_secs(1))
            );
        }
    }
}
