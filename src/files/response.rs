//! Responses of the static file server and how a cached file becomes one.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use super::conditional::{self, Conditions, Precondition, Validators};
use super::encoding;
use super::load::{FileEntry, IdentityBody};
use super::multipart;
use super::range::{self, RangeLimits, RangeOutcome};
use crate::http::RequestHead;

/// A complete response for the server to write. It carries no Date, Server or Connection
/// fields, because the server adds those.
#[derive(Debug)]
pub struct FileResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: FileBody,
}

impl FileResponse {
    /// Returns the value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The body of a [`FileResponse`]. Its length always equals the Content-Length header, except
/// that a HEAD response or a 304 has no body.
#[derive(Debug, Clone)]
pub enum FileBody {
    Empty,
    /// A slice of a cached buffer.
    Memory {
        bytes: Arc<[u8]>,
        range: Range<usize>,
    },
    /// A large file for the server to stream in bounded chunks with positional reads. The file
    /// may have shrunk since it was opened: a short read must end the connection, because the
    /// Content-Length already sent can no longer be met.
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
    /// A short HTML error page.
    Static(&'static [u8]),
}

impl FileBody {
    /// Returns the body length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            FileBody::Empty => 0,
            FileBody::Memory { range, .. } => u64::try_from(range.len()).unwrap_or(u64::MAX),
            FileBody::File { len, .. } => *len,
            FileBody::Static(bytes) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const TEXT_HTML: &str = "text/html; charset=utf-8";

/// Returns a short HTML page for an error or redirect status.
fn status_page(status: u16) -> &'static [u8] {
    match status {
        301 => b"<html><body><h1>301 Moved Permanently</h1></body></html>\n",
        400 => b"<html><body><h1>400 Bad Request</h1></body></html>\n",
        403 => b"<html><body><h1>403 Forbidden</h1></body></html>\n",
        404 => b"<html><body><h1>404 Not Found</h1></body></html>\n",
        405 => b"<html><body><h1>405 Method Not Allowed</h1></body></html>\n",
        _ => b"<html><body><h1>500 Internal Server Error</h1></body></html>\n",
    }
}

/// Builds an error response with a short HTML page. `status` is one of 400, 403, 404, 405 or 500;
/// any other value gets the 500 page.
pub(crate) fn error(status: u16, head_only: bool) -> FileResponse {
    let page = status_page(status);
    let mut headers = vec![
        ("Content-Type", TEXT_HTML.to_owned()),
        ("Content-Length", page.len().to_string()),
    ];
    if status == 405 {
        // RFC 9110 §15.5.6: a 405 lists the methods the resource supports.
        headers.push(("Allow", String::from("GET, HEAD")));
    }
    FileResponse {
        status,
        headers,
        body: if head_only {
            FileBody::Empty
        } else {
            FileBody::Static(page)
        },
    }
}

/// Builds a 301 to `location`.
pub(crate) fn redirect(location: String, head_only: bool) -> FileResponse {
    let page = status_page(301);
    FileResponse {
        status: 301,
        headers: vec![
            ("Location", location),
            ("Content-Type", TEXT_HTML.to_owned()),
            ("Content-Length", page.len().to_string()),
        ],
        body: if head_only {
            FileBody::Empty
        } else {
            FileBody::Static(page)
        },
    }
}

/// Route options that shape a file response.
pub(crate) struct ServeOptions {
    pub max_age: Option<u32>,
    pub range_limits: RangeLimits,
}

/// Builds the response to a GET or HEAD for a cached file: representation choice, then
/// preconditions, then range.
///
/// A GET whose Range applies (206 or 416) gets the identity representation, since a
/// range of compressed bytes is useless to most clients. Otherwise the encoded variant that
/// `Accept-Encoding` prefers is sent (see [`encoding::choose`]). Preconditions compare against
/// the representation being sent.
///
/// Several ranges of a file streamed from disk (above `max_cached_file_bytes`) get the whole
/// file with 200, which RFC 9110 §14.2 allows: the server writes a streamed body as one slice
/// of the file, and a multipart body would need part headers between slices.
pub(crate) fn serve(entry: &FileEntry, head: &RequestHead, options: &ServeOptions) -> FileResponse {
    let head_only = head.is_head();
    let identity_len = entry.identity.body.len();
    let identity = Validators {
        etag: &entry.identity.etag,
        last_modified: entry.last_modified,
    };

    // RFC 9110 §14.2: Range is only defined for GET, so HEAD ignores it.
    let mut range = if head.method == "GET" {
        let range_lines: Vec<&[u8]> = head.headers_named("range").collect();
        let if_range_lines: Vec<&[u8]> = head.headers_named("if-range").collect();
        range::evaluate(
            &range_lines,
            &if_range_lines,
            &identity,
            identity_len,
            &options.range_limits,
        )
    } else {
        RangeOutcome::Full
    };
    let streamed = matches!(entry.identity.body, IdentityBody::File { .. });
    if streamed && matches!(range, RangeOutcome::Multipart(_)) {
        range = RangeOutcome::Full;
    }

    let variant = match range {
        RangeOutcome::Full if !entry.variants.is_empty() => {
            let accept: Vec<&[u8]> = head.headers_named("accept-encoding").collect();
            encoding::choose(&accept, &entry.codings()).and_then(|coding| entry.variant(coding))
        }
        _ => None,
    };
    let validators = match variant {
        Some(variant) => Validators {
            etag: &variant.etag,
            last_modified: entry.last_modified,
        },
        None => identity,
    };

    // RFC 9110 §15.4.5: a 304 repeats the fields a 200 would carry that describe the
    // representation or its caching.
    let mut headers = vec![
        ("ETag", validators.etag.to_owned()),
        ("Last-Modified", entry.last_modified_text.clone()),
    ];
    if let Some(max_age) = options.max_age {
        headers.push(("Cache-Control", format!("public, max-age={max_age}")));
    }
    // RFC 9110 §12.5.5: the choice of representation depends on Accept-Encoding whenever the
    // file has an encoded variant, or could have one after the next load.
    if entry.compressible || !entry.variants.is_empty() {
        headers.push(("Vary", String::from("Accept-Encoding")));
    }

    match conditional::evaluate(&Conditions::from_head(head), &validators, true) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return FileResponse {
                status: 304,
                headers,
                body: FileBody::Empty,
            };
        }
        Precondition::Failed => {
            headers.push(("Content-Length", String::from("0")));
            return FileResponse {
                status: 412,
                headers,
                body: FileBody::Empty,
            };
        }
    }

    headers.push(("Accept-Ranges", String::from("bytes")));
    let mut content_type = entry.content_type.clone();
    let (status, body) = match range {
        RangeOutcome::Unsatisfiable => {
            headers.push(("Content-Range", range::unsatisfied_range(identity_len)));
            headers.push(("Content-Length", String::from("0")));
            return FileResponse {
                status: 416,
                headers,
                body: FileBody::Empty,
            };
        }
        RangeOutcome::Partial(part) => {
            headers.push(("Content-Range", range::content_range(&part, identity_len)));
            (206, identity_body(&entry.identity.body, part))
        }
        RangeOutcome::Multipart(parts) => {
            let boundary = multipart::boundary(&entry.identity.etag);
            let body = match &entry.identity.body {
                IdentityBody::Memory(bytes) => {
                    multipart::body(bytes, &parts, &entry.content_type, &boundary)
                }
                IdentityBody::File { .. } => None,
            };
            content_type = multipart::content_type(&boundary);
            (206, body.map(|body| memory_body(&Arc::from(body))))
        }
        RangeOutcome::Full => match variant {
            Some(variant) => {
                headers.push(("Content-Encoding", variant.coding.token().to_owned()));
                (200, Some(memory_body(&variant.bytes)))
            }
            None => (200, identity_body(&entry.identity.body, 0..identity_len)),
        },
    };
    let Some(body) = body else {
        // Unreachable: `range::evaluate` returns ranges within the representation, memory
        // bodies fit in `usize`, and several ranges of a streamed file became `Full` above. A
        // broken invariant gets a 500 instead of a panic.
        tracing::error!(path = ?entry.stat_path, "static file range outside its body");
        return error(500, head_only);
    };

    headers.push(("Content-Type", content_type));
    headers.push(("Content-Length", body.len().to_string()));
    FileResponse {
        status,
        headers,
        body: if head_only { FileBody::Empty } else { body },
    }
}

fn memory_body(bytes: &Arc<[u8]>) -> FileBody {
    FileBody::Memory {
        bytes: Arc::clone(bytes),
        range: 0..bytes.len(),
    }
}

/// Returns the body for `part` of the identity representation, or None if it lies outside.
fn identity_body(body: &IdentityBody, part: Range<u64>) -> Option<FileBody> {
    match body {
        IdentityBody::Memory(bytes) => {
            let start = usize::try_from(part.start).ok()?;
            let end = usize::try_from(part.end).ok()?;
            if start > end || end > bytes.len() {
                return None;
            }
            Some(FileBody::Memory {
                bytes: Arc::clone(bytes),
                range: start..end,
            })
        }
        IdentityBody::File { file, len } => {
            if part.start > part.end || part.end > *len {
                return None;
            }
            Some(FileBody::File {
                file: Arc::clone(file),
                offset: part.start,
                len: part.end - part.start,
            })
        }
    }
}
