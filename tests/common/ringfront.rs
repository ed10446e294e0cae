//! The `ringfront` binary under test: a builder for its TOML config and a handle on the running
//! process.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::cert::TestCert;
use super::gunicorn::Gunicorn;
use super::process::{self, CapturedOutput, POLL_INTERVAL, TempDir};
use super::stub::StubUpstream;

/// Maximum time from spawning ringfront until every listener accepts. A debug build starts in
/// milliseconds; the margin covers a machine busy with parallel tests.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum time [`Ringfront::terminate`] and [`Ringfront::run_to_exit`] wait for an exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Attempts to start ringfront when it reports a port taken by another process between
/// [`process::free_port`] and its own bind.
const PORT_RACE_ATTEMPTS: usize = 3;

/// Placeholders that [`Ringfront::start`] replaces with free ports, with the listener each names.
const PORT_PLACEHOLDERS: [(&str, Listener); 3] = [
    ("{redirect_port}", Listener::Redirect),
    ("{https_port}", Listener::Https),
    ("{http_port}", Listener::Http),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Redirect,
    Https,
    Http,
}

/// Ports that [`Ringfront::start`] chose, one per configured listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    pub redirect: Option<u16>,
    pub https: Option<u16>,
    pub http: Option<u16>,
}

impl Ports {
    fn set(&mut self, listener: Listener, port: u16) {
        match listener {
            Listener::Redirect => self.redirect = Some(port),
            Listener::Https => self.https = Some(port),
            Listener::Http => self.http = Some(port),
        }
    }

    fn all(&self) -> Vec<u16> {
        [self.redirect, self.https, self.http]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Builder for a ringfront config. Listeners get the placeholders `{redirect_port}`,
/// `{https_port}` and `{http_port}`, which [`Ringfront::start`] replaces with free ports.
///
/// Defaults: 2 workers, access log on stdout, `shutdown_grace = "5s"`, no listeners, default
/// limits, no static directories. Without [`Config::upstream`] the config points at a
/// [`StubUpstream`] that responds 404 to everything, so static-only tests need no Gunicorn.
#[derive(Debug)]
pub struct Config {
    workers: u32,
    server_extra: Vec<(String, String)>,
    redirect: bool,
    https: Option<(PathBuf, PathBuf, Vec<String>)>,
    https_extra: Vec<(String, String)>,
    http: bool,
    limits: Vec<(String, u64)>,
    statics: Vec<(String, PathBuf)>,
    upstream: Option<PathBuf>,
    upstream_extra: Vec<(String, String)>,
    timeouts: Vec<(String, String)>,
    static_cache: Vec<(String, String)>,
    error_pages: Vec<(u16, PathBuf)>,
    environment: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

impl Config {
    pub fn new() -> Config {
        Config {
            workers: 2,
            server_extra: Vec::new(),
            redirect: false,
            https: None,
            https_extra: Vec::new(),
            http: false,
            limits: Vec::new(),
            statics: Vec::new(),
            upstream: None,
            upstream_extra: Vec::new(),
            timeouts: Vec::new(),
            static_cache: Vec::new(),
            error_pages: Vec::new(),
            environment: Vec::new(),
        }
    }

    /// Sets `[server] workers`.
    pub fn workers(mut self, workers: u32) -> Config {
        self.workers = workers;
        self
    }

    /// Sets another `[server]` key; `toml_value` is written as given, so quote strings.
    pub fn server(mut self, key: &str, toml_value: &str) -> Config {
        self.server_extra
            .push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// Adds the `[redirect]` listener.
    pub fn redirect(mut self) -> Config {
        self.redirect = true;
        self
    }

    /// Adds the `[https]` listener with `cert`'s files; its names become `server_names`.
    pub fn https(mut self, cert: &TestCert) -> Config {
        self.https = Some((
            cert.cert_path().clone(),
            cert.key_path().clone(),
            cert.names().to_vec(),
        ));
        self
    }

    /// Adds the `[https]` listener with `cert`'s files and the given `server_names`.
    pub fn https_with_names(mut self, cert: &TestCert, server_names: &[&str]) -> Config {
        let names = server_names.iter().map(|name| name.to_string()).collect();
        self.https = Some((cert.cert_path().clone(), cert.key_path().clone(), names));
        self
    }

    /// Sets another `[https]` key; `toml_value` is written as given, so quote strings.
    pub fn https_setting(mut self, key: &str, toml_value: &str) -> Config {
        self.https_extra.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// Adds the plain `[http]` listener.
    pub fn http(mut self) -> Config {
        self.http = true;
        self
    }

    /// Sets a `[limits]` key, such as `max_body_bytes`.
    pub fn limit(mut self, key: &str, value: u64) -> Config {
        self.limits.push((key.to_owned(), value));
        self
    }

    /// Adds a `[[static]]` entry serving `dir` under `prefix`.
    pub fn static_dir(mut self, prefix: &str, dir: impl AsRef<Path>) -> Config {
        self.statics
            .push((prefix.to_owned(), dir.as_ref().to_path_buf()));
        self
    }

    /// Points `[upstream] unix` at `gunicorn`'s socket.
    pub fn upstream(self, gunicorn: &Gunicorn) -> Config {
        self.upstream_socket(gunicorn.socket_path())
    }

    /// Points `[upstream] unix` at `socket`.
    pub fn upstream_socket(mut self, socket: impl AsRef<Path>) -> Config {
        self.upstream = Some(socket.as_ref().to_path_buf());
        self
    }

    /// Sets another `[upstream]` key, such as `read_timeout`; `toml_value` is written as given.
    pub fn upstream_setting(mut self, key: &str, toml_value: &str) -> Config {
        self.upstream_extra
            .push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// Sets a `[timeouts]` key, such as `request_head`, replacing an earlier value of the same
    /// key. `toml_value` is written as given, so quote durations (`"\"1s\""`).
    pub fn timeout(mut self, key: &str, toml_value: &str) -> Config {
        set_entry(&mut self.timeouts, key, toml_value);
        self
    }

    /// Sets a `[static_cache]` key, such as `max_file_bytes`, replacing an earlier value of the
    /// same key. `toml_value` is written as given.
    pub fn static_cache(mut self, key: &str, toml_value: &str) -> Config {
        set_entry(&mut self.static_cache, key, toml_value);
        self
    }

    /// Sets an environment variable for the ringfront process, such as
    /// `RINGFRONT_TEST_PANIC_ROUTE`. The process inherits the rest of the test's environment.
    pub fn env(mut self, name: &str, value: &str) -> Config {
        self.environment.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `[error_pages] "STATUS" = FILE`, so that ringfront sends the bytes of `file` (read at
    /// startup) as the body of each `status` error it generates itself.
    pub fn error_page(mut self, status: u16, file: impl AsRef<Path>) -> Config {
        self.error_pages.push((status, file.as_ref().to_path_buf()));
        self
    }

    /// Renders the config with port placeholders and `upstream` as the upstream socket.
    pub fn to_toml(&self, upstream: &Path) -> String {
        let mut text = String::new();

        text.push_str("[server]\n");
        let _ = writeln!(text, "workers = {}", self.workers);
        if !self.server_extra.iter().any(|(key, _)| key == "access_log") {
            text.push_str("access_log = \"stdout\"\n");
        }
        if !self
            .server_extra
            .iter()
            .any(|(key, _)| key == "shutdown_grace")
        {
            text.push_str("shutdown_grace = \"5s\"\n");
        }
        for (key, value) in &self.server_extra {
            let _ = writeln!(text, "{key} = {value}");
        }

        if self.redirect {
            text.push_str("\n[redirect]\nlisten = [\"127.0.0.1:{redirect_port}\"]\n");
        }
        if let Some((cert, key, names)) = &self.https {
            text.push_str("\n[https]\nlisten = [\"127.0.0.1:{https_port}\"]\n");
            let _ = writeln!(
                text,
                "certificate = {}",
                toml_string(&cert.to_string_lossy())
            );
            let _ = writeln!(
                text,
                "private_key = {}",
                toml_string(&key.to_string_lossy())
            );
            let quoted: Vec<String> = names.iter().map(|name| toml_string(name)).collect();
            let _ = writeln!(text, "server_names = [{}]", quoted.join(", "));
            for (key, value) in &self.https_extra {
                let _ = writeln!(text, "{key} = {value}");
            }
        }
        if self.http {
            text.push_str("\n[http]\nlisten = [\"127.0.0.1:{http_port}\"]\n");
        }

        if !self.limits.is_empty() {
            text.push_str("\n[limits]\n");
            for (key, value) in &self.limits {
                let _ = writeln!(text, "{key} = {value}");
            }
        }

        if !self.timeouts.is_empty() {
            text.push_str("\n[timeouts]\n");
            for (key, value) in &self.timeouts {
                let _ = writeln!(text, "{key} = {value}");
            }
        }

        if !self.static_cache.is_empty() {
            text.push_str("\n[static_cache]\n");
            for (key, value) in &self.static_cache {
                let _ = writeln!(text, "{key} = {value}");
            }
        }

        for (prefix, dir) in &self.statics {
            text.push_str("\n[[static]]\n");
            let _ = writeln!(text, "prefix = {}", toml_string(prefix));
            let _ = writeln!(text, "dir = {}", toml_string(&dir.to_string_lossy()));
        }

        if !self.error_pages.is_empty() {
            text.push_str("\n[error_pages]\n");
            for (status, file) in &self.error_pages {
                let _ = writeln!(text, "\"{status}\" = {}", toml_string(&file.to_string_lossy()));
            }
        }

        text.push_str("\n[upstream]\n");
        let _ = writeln!(text, "unix = {}", toml_string(&upstream.to_string_lossy()));
        for (key, value) in &self.upstream_extra {
            let _ = writeln!(text, "{key} = {value}");
        }
        text
    }

    /// Starts ringfront with this config; see [`Ringfront::start`].
    pub fn start(self) -> Ringfront {
        let (upstream, stub) = match &self.upstream {
            Some(socket) => (socket.clone(), None),
            None => {
                let stub = StubUpstream::start();
                (stub.socket_path().to_path_buf(), Some(stub))
            }
        };
        let mut ringfront = Ringfront::start_with_env(&self.to_toml(&upstream), &self.environment);
        ringfront.stub_upstream = stub;
        ringfront
    }
}

/// Sets `key` to `value` in `entries`, replacing its earlier value if it has one, because TOML
/// rejects a key written twice in one table.
fn set_entry(entries: &mut Vec<(String, String)>, key: &str, value: &str) {
    entries.retain(|(existing, _)| existing != key);
    entries.push((key.to_owned(), value.to_owned()));
}

/// Quotes `value` as a TOML basic string.
pub fn toml_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for character in value.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            control if control.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(control));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// Environment variable that replaces the binary under test, for running the suite against a
/// release build (`RINGFRONT_TEST_BINARY=target/release/ringfront cargo test`).
pub const BINARY_OVERRIDE_VARIABLE: &str = "RINGFRONT_TEST_BINARY";

/// Returns the path of the binary under test: the value of [`BINARY_OVERRIDE_VARIABLE`] if set,
/// else the debug binary that Cargo builds for integration tests.
pub fn binary_path() -> PathBuf {
    match std::env::var_os(BINARY_OVERRIDE_VARIABLE) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_ringfront")),
    }
}

/// A running `ringfront --config FILE`, killed on drop. Its stdout and stderr are captured and
/// printed if the test is panicking.
#[derive(Debug)]
pub struct Ringfront {
    child: Option<Child>,
    output: CapturedOutput,
    ports: Ports,
    config_path: PathBuf,
    stub_upstream: Option<StubUpstream>,
    dir: TempDir,
}

impl Ringfront {
    /// Replaces each of `{redirect_port}`, `{https_port}` and `{http_port}` in `config` (a TOML
    /// body) with a free loopback port, writes it to `ringfront.toml` in a temporary directory,
    /// runs the binary on it and waits until every chosen port accepts TCP connections.
    ///
    /// If ringfront exits during startup with "in use" in its output, another process probably
    /// took a port first. The start is then retried with new ports, up to 3 attempts in all.
    ///
    /// # Panics
    /// Panics, with the config and ringfront's output, if the process exits or a port does not
    /// accept within [`STARTUP_TIMEOUT`].
    pub fn start(config: &str) -> Ringfront {
        Ringfront::start_with_config_dir(config, None, &[])
    }

    /// Like [`Ringfront::start`], with the `(name, value)` pairs of `environment` added to the
    /// environment the process inherits.
    ///
    /// # Panics
    /// As [`Ringfront::start`].
    pub fn start_with_env(config: &str, environment: &[(String, String)]) -> Ringfront {
        Ringfront::start_with_config_dir(config, None, environment)
    }

    /// Like [`Ringfront::start`], but writes `ringfront.toml` into `config_dir`, so that relative
    /// paths in `config` resolve against it. The process still runs in its own temporary
    /// directory, so a path resolved against the working directory fails.
    ///
    /// # Panics
    /// As [`Ringfront::start`].
    pub fn start_in(config_dir: &Path, config: &str) -> Ringfront {
        Ringfront::start_with_config_dir(config, Some(config_dir), &[])
    }

    fn start_with_config_dir(
        config: &str,
        config_dir: Option<&Path>,
        environment: &[(String, String)],
    ) -> Ringfront {
        let mut attempt = 1;
        loop {
            match Ringfront::try_start(config, config_dir, environment) {
                Ok(ringfront) => return ringfront,
                Err(failure) => {
                    let port_taken = failure.to_ascii_lowercase().contains("in use");
                    if !port_taken || attempt >= PORT_RACE_ATTEMPTS {
                        panic!("{failure}");
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn try_start(
        config: &str,
        config_dir: Option<&Path>,
        environment: &[(String, String)],
    ) -> Result<Ringfront, String> {
        let mut ports = Ports::default();
        let mut text = config.to_owned();
        for (placeholder, listener) in PORT_PLACEHOLDERS {
            if text.contains(placeholder) {
                let port = process::free_port();
                text = text.replace(placeholder, &port.to_string());
                ports.set(listener, port);
            }
        }

        let dir = TempDir::new("ringfront");
        let config_path = match config_dir {
            Some(config_dir) => {
                let path = config_dir.join("ringfront.toml");
                if let Err(error) = std::fs::write(&path, &text) {
                    panic!("failed to write {}: {error}", path.display());
                }
                path
            }
            None => dir.write("ringfront.toml", &text),
        };
        let mut command = Command::new(binary_path());
        command
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .envs(environment.iter().map(|(name, value)| (name, value)));
        let (child, output) = process::spawn_captured(&mut command, "ringfront");
        let mut ringfront = Ringfront {
            child: Some(child),
            output,
            ports,
            config_path,
            stub_upstream: None,
            dir,
        };

        match ringfront.wait_until_listening() {
            Ok(()) => Ok(ringfront),
            Err(reason) => {
                ringfront.kill();
                let output = ringfront.output.finish(Duration::from_secs(1));
                Err(format!(
                    "{reason}\n--- config ---\n{text}\n--- ringfront output ---\n{output}"
                ))
            }
        }
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut pending = self.ports.all();
        while !pending.is_empty() {
            pending.retain(|&port| !accepts(port));
            if pending.is_empty() {
                break;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("ringfront exited with {status} during startup"));
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "ringfront did not accept on ports {pending:?} within {STARTUP_TIMEOUT:?}"
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Runs `ringfront --config FILE` with `config` written as given (no placeholders are
    /// replaced) and waits for it to exit. Returns the exit status and the output. For configs
    /// that must make startup fail.
    ///
    /// # Panics
    /// Panics if the process is still running after [`EXIT_TIMEOUT`]; it is killed first.
    pub fn run_to_exit(config: &str) -> (ExitStatus, String) {
        let dir = TempDir::new("ringfront");
        let config_path = dir.write("ringfront.toml", config);
        Ringfront::run_binary_to_exit(&["--config".as_ref(), config_path.as_os_str()], &dir)
    }

    /// Runs `ringfront check --config FILE` on `config` and returns its exit status and output.
    ///
    /// # Panics
    /// Panics if the check does not finish within [`EXIT_TIMEOUT`].
    pub fn check(config: &str) -> (ExitStatus, String) {
        let dir = TempDir::new("check");
        let config_path = dir.write("ringfront.toml", config);
        let arguments = [
            "check".as_ref(),
            "--config".as_ref(),
            config_path.as_os_str(),
        ];
        Ringfront::run_binary_to_exit(&arguments, &dir)
    }

    fn run_binary_to_exit(arguments: &[&std::ffi::OsStr], dir: &TempDir) -> (ExitStatus, String) {
        let mut command = Command::new(binary_path());
        command.args(arguments).current_dir(dir.path());
        let (mut child, mut output) = process::spawn_captured(&mut command, "ringfront");
        match process::wait_with_timeout(&mut child, EXIT_TIMEOUT) {
            Some(status) => (status, output.finish(Duration::from_secs(2))),
            None => {
                process::kill_and_reap(&mut child);
                panic!(
                    "ringfront {arguments:?} still running after {EXIT_TIMEOUT:?}:\n{}",
                    output.finish(Duration::from_secs(1))
                );
            }
        }
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Port of the `[redirect]` listener.
    ///
    /// # Panics
    /// Panics if the config had no `{redirect_port}`.
    pub fn redirect_port(&self) -> u16 {
        match self.ports.redirect {
            Some(port) => port,
            None => panic!("this ringfront has no redirect listener"),
        }
    }

    /// Port of the `[https]` listener.
    ///
    /// # Panics
    /// Panics if the config had no `{https_port}`.
    pub fn https_port(&self) -> u16 {
        match self.ports.https {
            Some(port) => port,
            None => panic!("this ringfront has no https listener"),
        }
    }

    /// Port of the plain `[http]` listener.
    ///
    /// # Panics
    /// Panics if the config had no `{http_port}`.
    pub fn http_port(&self) -> u16 {
        match self.ports.http {
            Some(port) => port,
            None => panic!("this ringfront has no http listener"),
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Returns ringfront's stdout and stderr so far, interleaved in arrival order.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Waits up to `limit` until ringfront's output contains `needle` at least `count` times,
    /// and returns the output then.
    ///
    /// # Panics
    /// Panics, with the output, if `needle` does not appear `count` times within `limit`.
    pub fn wait_for_output(&self, needle: &str, count: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let output = self.output();
            let found = output.matches(needle).count();
            if found >= count {
                return output;
            }
            assert!(Instant::now() < deadline, "{found} of {count} {needle:?} in the output after {limit:?}:\n{output}");
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns the process id, for signals other than SIGTERM.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits up to [`EXIT_TIMEOUT`] for the process to exit.
    ///
    /// # Panics
    /// Panics, with the output, if the process does not exit in time (it is killed first) or was
    /// already reaped.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_and_wait("TERM")
    }

    /// Sends SIGINT and waits up to [`EXIT_TIMEOUT`] for the process to exit.
    ///
    /// # Panics
    /// As [`Ringfront::terminate`].
    pub fn interrupt(&mut self) -> ExitStatus {
        self.signal_and_wait("INT")
    }

    /// Sends SIGTERM, and a second one once the log shows the first taken, as `timeout` and
    /// impatient operators do. Reaps the process within a millisecond of its exit, so that the
    /// caller sees what the exit left behind. Needs the info level, which logs the stop.
    ///
    /// # Panics
    /// As [`Ringfront::terminate`], and when the first signal's log line does not appear.
    pub fn terminate_twice(&mut self) -> ExitStatus {
        let Some(child) = self.child.as_mut() else {
            panic!("ringfront has already been stopped");
        };
        let pid = i64::from(child.id());
        process::send_signal(pid, "TERM");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while !self.output.text().contains("stopping: no new connections") {
            if Instant::now() >= deadline {
                self.kill();
                panic!("no stop line {EXIT_TIMEOUT:?} after SIGTERM:\n{}", self.output.text());
            }
            thread::sleep(Duration::from_millis(5));
        }
        process::send_signal(pid, "TERM");
        let Some(child) = self.child.as_mut() else {
            panic!("ringfront has already been stopped");
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return status;
                }
                Ok(None) => {}
                Err(error) => panic!("failed to poll ringfront: {error}"),
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("ringfront still running {EXIT_TIMEOUT:?} after two SIGTERMs:\n{}", self.output.text());
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let Some(child) = self.child.as_mut() else {
            panic!("ringfront has already been stopped");
        };
        process::send_signal(i64::from(child.id()), signal);
        match process::wait_with_timeout(child, EXIT_TIMEOUT) {
            Some(status) => {
                self.child = None;
                status
            }
            None => {
                self.kill();
                panic!(
                    "ringfront still running {EXIT_TIMEOUT:?} after SIG{signal}:\n{}",
                    self.output.text()
                );
            }
        }
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            process::kill_and_reap(child);
        }
    }
}

impl Drop for Ringfront {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- ringfront output ---\n{}",
                self.output.finish(Duration::from_secs(1))
            );
        }
    }
}

/// Returns whether a TCP connection to `127.0.0.1:port` succeeds; the connection is closed at
/// once.
fn accepts(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}
