//! ringfront: an HTTP/1.1 and TLS edge server for Flask applications run by Gunicorn.
//!
//! # Layout
//! - [`http`]: the sans-I/O HTTP/1.1 core: request parsing and framing checks, chunked decoding,
//!   response heads, and the proxy's request and response rewriting. No I/O.
//! - [`files`]: static files: path resolution, the content cache with pre-compressed variants,
//!   conditional and range requests. Disk work runs in jobs the server puts on a blocking pool.
//! - [`config`]: the TOML configuration and its checks.
//! - [`tls`]: certificate loading and the rustls server configuration.
//! - [`rt`]: the only module that uses the async runtime (compio) directly.
//! - [`server`]: worker threads, connections, and the upstream exchange.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod files;
pub mod http;
pub mod rt;
pub mod server;
pub mod tls;
mod waiters;
