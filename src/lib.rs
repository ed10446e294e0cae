//! ringfront: an HTTP/1.1 and TLS edge server for Flask applications run by Gunicorn.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod files;
pub mod http;
