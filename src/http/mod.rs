//! The sans-I/O HTTP/1.1 core: bytes and the clock go in, parsed events and bytes to write come
//! out. Nothing in here performs I/O, so tests and fuzz targets drive it without a ring.

pub mod request;

pub use request::{BodyFraming, Header, RequestHead, Version};
