//! The access log: one line per request, in nginx's "combined" format followed by the request
//! time in seconds:
//!
//! `127.0.0.1 - - [Fri, 04 Dec 2026 20:39:01 GMT] "GET /static/app.css HTTP/1.1" 200 1234 "-" "curl/8.5" 0.001`
//!
//! The time is the IMF-fixdate already formatted for the `Date` header, in UTC, so parsers that
//! match nginx's `[04/Dec/2026:20:39:01 +0000]` need another pattern for that field. Each worker
//! keeps its own buffer and file descriptor, so logging takes no lock. Lines reach the file at
//! least once a second and whenever the buffer passes [`FLUSH_BYTES`].

use std::fs::File;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

/// Buffered log bytes that trigger an immediate write.
const FLUSH_BYTES: usize = 32 * 1024;

/// How long a line may wait in the buffer.
pub const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// Maximum bytes of a method, target, referer or user agent copied into a line. Longer values
/// are cut, so one request cannot write megabytes of log.
const MAX_FIELD_BYTES: usize = 2048;

/// One request's facts for its log line.
pub struct Entry<'a> {
    pub client: IpAddr,
    pub date: &'a [u8],
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub body_bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub duration: Duration,
}

pub struct AccessLog {
    file: Option<File>,
    buffer: Vec<u8>,
}

impl AccessLog {
    /// Opens the destination named by the `server.access_log` setting.
    ///
    /// # Errors
    /// Fails when a log file cannot be opened for appending.
    pub fn open(destination: &str) -> io::Result<AccessLog> {
        let file = match destination {
            "off" => None,
            "stdout" => Some(File::from(io::stdout().as_fd().try_clone_to_owned()?)),
            // The descriptor itself, not the path /dev/stderr. That path cannot be opened when
            // stderr is a socket (the systemd journal). And a file opened by it has its own
            // offset, so log lines and the diagnostics on stderr would overwrite each other.
            "stderr" => Some(File::from(io::stderr().as_fd().try_clone_to_owned()?)),
            path => Some(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        Ok(AccessLog { file, buffer: Vec::new() })
    }

    pub fn is_enabled(&self) -> bool {
        self.file.is_some()
    }

    pub fn record(&mut self, entry: &Entry<'_>) {
        if self.file.is_none() {
            return;
        }
        let line = &mut self.buffer;
        let _ = write!(line, "{} - - [", entry.client);
        line.extend_from_slice(entry.date);
        line.extend_from_slice(b"] \"");
        push_escaped(line, entry.method.as_bytes());
        line.push(b' ');
        push_escaped(line, entry.target.as_bytes());
        line.push(b' ');
        line.extend_from_slice(entry.version.as_bytes());
        let _ = write!(line, "\" {} {} \"", entry.status, entry.body_bytes);
        push_escaped(line, entry.referer.unwrap_or(b"-"));
        line.extend_from_slice(b"\" \"");
        push_escaped(line, entry.user_agent.unwrap_or(b"-"));
        let _ = writeln!(line, "\" {:.3}", entry.duration.as_secs_f64());

        if self.buffer.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        let Some(file) = self.file.as_mut() else { return };
        if self.buffer.is_empty() {
            return;
        }
        if let Err(err) = file.write_all(&self.buffer) {
            tracing::warn!(error = %err, lost_bytes = self.buffer.len(), "access log write failed");
        }
        self.buffer.clear();
    }
}

use std::os::fd::AsFd;

/// Copies a peer-supplied value into the line with quotes, backslashes, control bytes and
/// non-ASCII bytes written as `\xHH`, as nginx does, so a line cannot be forged or split.
fn push_escaped(line: &mut Vec<u8>, value: &[u8]) {
    for &byte in value.iter().take(MAX_FIELD_BYTES) {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            let _ = write!(line, "\\x{byte:02X}");
        } else {
            line.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_value_cannot_split_line() {
        let mut line = Vec::new();
        push_escaped(&mut line, b"a\"b\\c\nd\x7f\xc3");
        assert_eq!(line, b"a\\x22b\\x5Cc\\x0Ad\\x7F\\xC3".to_vec());
    }

    #[test]
    fn line_has_combined_format() {
        let mut log = AccessLog { file: None, buffer: Vec::new() };
        // A disabled log records nothing.
        let entry = Entry {
            client: "127.0.0.1".parse().unwrap(),
            date: b"Fri, 04 Dec 2026 20:39:01 GMT",
            method: "GET",
            target: "/a b",
            version: "HTTP/1.1",
            status: 200,
            body_bytes: 12,
            referer: None,
            user_agent: Some(b"curl/8"),
            duration: Duration::from_millis(3),
        };
        log.record(&entry);
        assert!(log.buffer.is_empty());

        log.file = Some(File::open("/dev/null").unwrap());
        log.record(&entry);
        let line = String::from_utf8(log.buffer.clone()).unwrap();
        assert_eq!(
            line,
            "127.0.0.1 - - [Fri, 04 Dec 2026 20:39:01 GMT] \"GET /a b HTTP/1.1\" 200 12 \"-\" \"curl/8\" 0.003\n"
        );
    }
}
