//! Harness shared by the integration tests. It runs Gunicorn with the test Flask app on a Unix
//! socket and generates TLS certificates. It starts the `ringfront` binary on free loopback ports
//! and talks to it as a client over TLS, plain TCP or raw bytes.
//!
//! Every process it starts dies with the value that owns it, every temporary directory is removed
//! on drop, and every wait and read is bounded in time, so a hung server fails a test instead of
//! hanging the suite. It never touches an address other than 127.0.0.1 and Unix sockets in its own
//! temporary directories.
//!
//! # Layout
//! - [`process`]: temporary directories, free ports, output capture, signals and bounded waits.
//! - [`gunicorn`]: [`Gunicorn`], the upstream application server.
//! - [`cert`]: [`TestCert`], a CA and a leaf certificate written as PEM files.
//! - [`ringfront`]: [`Config`] builds a TOML config, [`Ringfront`] runs the binary.
//! - [`client`]: [`Connection`], [`https_request`], [`plain_request`] and [`raw_exchange`].
//! - [`response`]: a small HTTP/1.1 response parser, independent of the server's own parser.
//! - [`procfs`]: resident memory and open descriptor counts of a process, from `/proc`.
//! - [`site`]: [`Site`], a static site on disk with secret files around it.
//! - [`slow`]: raw TCP clients that send a byte at a time, stop reading or keep a small
//!   receive window, and bounded waits for the server to close.
//! - [`stub`]: [`StubUpstream`], a Unix socket upstream that responds 404 to everything.
//! - [`recorder`]: [`RecordingUpstream`], a Unix socket upstream that records the exact bytes of
//!   each connection, and [`parse_forwarded`], which checks them as one well-formed request.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod cert;
pub mod client;
pub mod gunicorn;
pub mod process;
pub mod procfs;
pub mod recorder;
pub mod response;
pub mod ringfront;
pub mod site;
pub mod slow;
pub mod stub;

pub use cert::TestCert;
pub use client::{Connection, https_request, plain_request, raw_exchange};
pub use gunicorn::Gunicorn;
pub use process::TempDir;
pub use recorder::{ForwardedRequest, RECORDED_BODY, RecordingUpstream, parse_forwarded};
pub use response::{Response, ResponseError};
pub use ringfront::{Config, Ringfront};
pub use site::{SECRET_MARKER, Site};
pub use stub::{STUB_BODY, StubUpstream};

/// Returns `count` bytes of the repeating sequence 0, 1, ..., 255, the body that the test app's
/// `/big?bytes=N` endpoint sends.
pub fn pattern_bytes(count: usize) -> Vec<u8> {
    (0..count).map(|index| (index % 256) as u8).collect()
}

/// Returns `count` bytes that do not repeat in any short period, for bodies that must survive a
/// round trip unchanged (a xorshift sequence, so every run sends the same bytes).
pub fn noise_bytes(count: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Encodes `body` with chunked transfer coding (RFC 9112 §7.1) in chunks of at most `chunk_size`
/// bytes, ending with the last chunk and an empty trailer section.
pub fn chunked(body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(body.len() + body.len() / chunk_size.max(1) * 8 + 8);
    for chunk in body.chunks(chunk_size.max(1)) {
        encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    encoded
}

/// Returns whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
