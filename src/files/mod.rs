//! Static files served by the edge from disk: path resolution, a per-worker cache with encoded
//! variants (pre-compressed `.br`, `.zst` and `.gz` siblings, else the server's own gzip),
//! conditional and range requests.
//!
//! The module is split so that the event loop never blocks: [`StaticFiles::respond`] builds
//! responses from memory and returns a [`LoadJob`] when disk work is needed, which the server
//! runs on a blocking thread. Path normalisation, precondition, range and `Accept-Encoding` evaluation are
//! pure functions. Nothing here touches sockets or the HTTP framing.
//!
//! # Layout
//!
//! - `route`: [`StaticRoute`] and [`StaticSettings`].
//! - [`path`]: request path normalisation.
//! - [`conditional`], [`range`], [`encoding`]: header evaluation.
//! - `load`: [`LoadJob`], the blocking side. `load_wait`: [`LoadWait`], for requests that
//!   wait for a load another request runs.
//! - `cache`: the LRU cache. `response`: [`FileResponse`]. `server`: [`StaticFiles`].
//! - `multipart`: `multipart/byteranges` bodies for requests with several ranges.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod cache;
pub mod conditional;
pub mod encoding;
mod load;
mod load_wait;
mod multipart;
pub mod path;
pub mod range;
mod response;
mod route;
mod server;
#[cfg(test)]
mod tests;

pub(crate) use load::CacheKey;
pub use load_wait::LoadWait;
pub use load::{LoadError, LoadJob, Loaded};
pub use response::{FileBody, FileResponse};
pub use route::{RouteError, StaticRoute, StaticSettings};
pub use server::{Outcome, StaticFiles, StaticTarget};
