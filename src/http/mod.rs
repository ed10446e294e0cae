//! The sans-I/O HTTP/1.1 core: bytes and the clock go in, parsed events and bytes to write come
//! out. Nothing in here performs I/O, so tests and fuzz targets drive it without a ring.
//!
//! # Layout
//!
//! - `limits`: the bounds on client input.
//! - `error`: every rejection of a request and the status it maps to.
//! - `parse`: request head parsing and the body framing decision.
//! - `head_buffers`: buffers of finished request heads, reused by the next parse.
//! - `chunked`: the chunked body decoder.
//! - `decoder`: one request after another on a connection.
//! - `response`: status lines, error pages and the Date header.
//! - `upstream`: the request written to Gunicorn and the decoder of its response.
//! - `request`: the parsed request head shared with the rest of the crate.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod chunked;
pub mod decoder;
pub mod error;
mod head_buffers;
pub mod limits;
pub mod parse;
pub mod request;
pub mod response;
pub mod upstream;

pub use chunked::ChunkedDecoder;
pub use decoder::{Event, RequestDecoder};
pub use error::RequestError;
pub use head_buffers::MAX_RECYCLED_HEAD_BYTES;
pub use limits::Limits;
pub use parse::{RejectedRequestLine, parse_request_head, rejected_request_line};
pub use request::{BodyFraming, Header, RequestHead, Version};
pub use response::{DateCache, SERVER_NAME, connection_field, error_response, error_response_with_body, reason_phrase, status_has_no_body, write_head};
pub use upstream::{
    Forwarded, ResponseDecoder, ResponseEvent, ResponseFraming, ResponseHead, ResponseLimits,
    UpstreamError, write_client_response_head, write_client_response_head_chunked, write_client_switching_head,
    write_upstream_request, write_upstream_upgrade_request,
};
