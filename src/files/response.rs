//! Responses of the static file server and how a cached file becomes one.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use super::conditional::{self, Conditions, Precondition, Validators};
use super::encoding::{self, ContentCoding};
use super::load::{FileEntry, IdentityBody};
use super::multipart;
use super::range::{self, RangeLimits, RangeOutcome};
use crate::http::RequestHead;
use crate::http::response::{reason_phrase, write_header, write_status_line};

/// A complete response for the server to write. It carries no Date, Server or Connection
/// fields, because the server adds those.
///
/// Its header fields are a block of lines prebuilt when the file was loaded, shared with the
/// cache entry, followed by fields built for this response. A 200 for a cached file has only
/// the prebuilt block, so building and writing it allocates nothing.
#[derive(Debug)]
pub struct FileResponse {
    pub status: u16,
    prebuilt: PrebuiltFields,
    headers: Vec<(&'static str, String)>,
    pub body: FileBody,
}

impl FileResponse {
    fn new(status: u16, headers: Vec<(&'static str, String)>, body: FileBody) -> Self {
        FileResponse {
            status,
            prebuilt: PrebuiltFields::default(),
            headers,
            body,
        }
    }

    /// Returns the value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Returns the header fields as name and value, prebuilt fields first.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let prebuilt = self.prebuilt.as_str().split_terminator("\r\n").map(|line| {
            // Every prebuilt line was written as `name: value`.
            line.split_once(": ").unwrap_or((line, ""))
        });
        let built = self
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()));
        prebuilt.chain(built)
    }

    /// Writes the response head: the status line, the `common` fields such as Date and Server,
    /// the response's own fields, a Connection field with the value `connection` when there is
    /// one (see `http::connection_field`), and the empty line.
    /// With `out` reused across requests, a 200 for a cached file allocates nothing here.
    ///
    /// # Panics
    ///
    /// In debug builds, if a `common` name is not a token or a value contains CR, LF or NUL, as
    /// [`write_head`](crate::http::write_head) does.
    pub fn write_head(&self, out: &mut Vec<u8>, common: &[(&str, &[u8])], connection: Option<&[u8]>) {
        write_status_line(out, self.status, reason_phrase(self.status).as_bytes());
        for (name, value) in common {
            write_header(out, name, value);
        }
        out.extend_from_slice(self.prebuilt.as_str().as_bytes());
        for (name, value) in &self.headers {
            write_header(out, name, value.as_bytes());
        }
        if let Some(connection) = connection {
            write_header(out, "Connection", connection);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The header lines (`name: value\r\n` each) a 200 carries for one representation of a cached
/// file, built once at load time.
///
/// The lines start with the fields that describe the representation and its caching (ETag,
/// Last-Modified, Cache-Control, Vary), which a 304 repeats (RFC 9110 §15.4.5), so other
/// statuses share that prefix.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadLines {
    text: Arc<str>,
    /// The length of the prefix that ends after the validator and caching fields.
    validators_end: usize,
}

impl HeadLines {
    /// Returns the length of the prebuilt text in bytes.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Returns every field of a 200.
    fn full(&self) -> PrebuiltFields {
        PrebuiltFields {
            text: Arc::clone(&self.text),
            end: self.text.len(),
        }
    }

    /// Returns the validator and caching fields only.
    fn validators(&self) -> PrebuiltFields {
        PrebuiltFields {
            text: Arc::clone(&self.text),
            end: self.validators_end,
        }
    }
}

/// The prefix of a [`HeadLines`] block that one response carries.
#[derive(Debug, Clone, Default)]
struct PrebuiltFields {
    text: Arc<str>,
    end: usize,
}

impl PrebuiltFields {
    fn as_str(&self) -> &str {
        self.text.get(..self.end).unwrap_or_default()
    }
}

/// The facts about one representation that [`build_head_lines`] writes.
pub(crate) struct Representation<'a> {
    pub etag: &'a str,
    pub content_length: u64,
    /// None for the identity representation.
    pub coding: Option<ContentCoding>,
}

/// Builds the header lines a 200 carries for `representation` of `entry`, whose other
/// variants must all be loaded, because they decide whether Vary is sent.
pub(crate) fn build_head_lines(
    entry: &FileEntry,
    representation: &Representation<'_>,
    max_age: Option<u32>,
) -> HeadLines {
    let mut text = String::with_capacity(256);
    push_line(&mut text, "ETag", representation.etag);
    push_line(&mut text, "Last-Modified", &entry.last_modified_text);
    if let Some(max_age) = max_age {
        push_line(&mut text, "Cache-Control", &format!("public, max-age={max_age}"));
    }
    // RFC 9110 §12.5.5: the choice of representation depends on Accept-Encoding whenever the
    // file has an encoded variant, or could have one after the next load.
    if entry.compressible || !entry.variants.is_empty() {
        push_line(&mut text, "Vary", "Accept-Encoding");
    }
    let validators_end = text.len();

    push_line(&mut text, "Accept-Ranges", "bytes");
    push_line(&mut text, "Content-Type", &entry.content_type);
    let content_length = representation.content_length.to_string();
    push_line(&mut text, "Content-Length", &content_length);
    if let Some(coding) = representation.coding {
        push_line(&mut text, "Content-Encoding", coding.token());
    }
    HeadLines {
        text: Arc::from(text),
        validators_end,
    }
}

fn push_line(text: &mut String, name: &str, value: &str) {
    text.push_str(name);
    text.push_str(": ");
    text.push_str(value);
    text.push_str("\r\n");
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
        412 => b"<html><body><h1>412 Precondition Failed</h1></body></html>\n",
        416 => b"<html><body><h1>416 Range Not Satisfiable</h1></body></html>\n",
        _ => b"<html><body><h1>500 Internal Server Error</h1></body></html>\n",
    }
}

/// Builds an error response with a short HTML page. `status` is one of 400, 403, 404, 405 or 500;
/// a status without a page of its own gets the 500 page.
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
    let body = if head_only {
        FileBody::Empty
    } else {
        FileBody::Static(page)
    };
    FileResponse::new(status, headers, body)
}

/// Builds a 301 to `location`.
pub(crate) fn redirect(location: String, head_only: bool) -> FileResponse {
    let page = status_page(301);
    let headers = vec![
        ("Location", location),
        ("Content-Type", TEXT_HTML.to_owned()),
        ("Content-Length", page.len().to_string()),
    ];
    let body = if head_only {
        FileBody::Empty
    } else {
        FileBody::Static(page)
    };
    FileResponse::new(301, headers, body)
}

/// Route options that shape a file response.
pub(crate) struct ServeOptions {
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
            let accept = head.headers_named("accept-encoding");
            encoding::choose(accept, |coding| entry.variant(coding).is_some())
                .and_then(|coding| entry.variant(coding))
        }
        _ => None,
    };
    let (validators, lines) = match variant {
        Some(variant) => {
            let validators = Validators {
                etag: &variant.etag,
                last_modified: entry.last_modified,
            };
            (validators, &variant.head)
        }
        None => (identity, &entry.identity.head),
    };

    // RFC 9110 §15.4.5: a 304 repeats the fields a 200 would carry that describe the
    // representation or its caching, which are the prefix `validators` of the prebuilt lines.
    let with_validators = |status: u16, headers: Vec<(&'static str, String)>| FileResponse {
        status,
        prebuilt: lines.validators(),
        headers,
        body: FileBody::Empty,
    };
    // A 412 or 416 keeps the validators too, and gets a short page like the other errors.
    let failed = |status: u16, mut headers: Vec<(&'static str, String)>| {
        let page = status_page(status);
        headers.push(("Content-Type", TEXT_HTML.to_owned()));
        headers.push(("Content-Length", page.len().to_string()));
        let body = if head_only { FileBody::Empty } else { FileBody::Static(page) };
        FileResponse { body, ..with_validators(status, headers) }
    };
    match conditional::evaluate(&Conditions::from_head(head), &validators, true) {
        Precondition::Proceed => {}
        Precondition::NotModified => return with_validators(304, Vec::new()),
        Precondition::Failed => return failed(412, Vec::new()),
    }

    let (body, content_range, content_type) = match range {
        RangeOutcome::Full => {
            let body = match variant {
                Some(variant) => Some(memory_body(&variant.bytes)),
                None => identity_body(&entry.identity.body, 0..identity_len),
            };
            let Some(body) = body else {
                return range_invariant_broken(entry, head_only);
            };
            return FileResponse {
                status: 200,
                prebuilt: lines.full(),
                headers: Vec::new(),
                body: if head_only { FileBody::Empty } else { body },
            };
        }
        RangeOutcome::Unsatisfiable => {
            let headers = vec![("Accept-Ranges", String::from("bytes")), ("Content-Range", range::unsatisfied_range(identity_len))];
            return failed(416, headers);
        }
        RangeOutcome::Partial(part) => {
            let content_range = range::content_range(&part, identity_len);
            let body = identity_body(&entry.identity.body, part);
            (body, Some(content_range), entry.content_type.clone())
        }
        RangeOutcome::Multipart(parts) => {
            let boundary = multipart::boundary(&entry.identity.etag);
            let body = match &entry.identity.body {
                IdentityBody::Memory(bytes) => {
                    multipart::body(bytes, &parts, &entry.content_type, &boundary)
                }
                IdentityBody::File { .. } => None,
            };
            let body = body.map(|body| memory_body(&Arc::from(body)));
            (body, None, multipart::content_type(&boundary))
        }
    };
    let Some(body) = body else {
        return range_invariant_broken(entry, head_only);
    };

    let mut headers = vec![("Accept-Ranges", String::from("bytes"))];
    if let Some(content_range) = content_range {
        headers.push(("Content-Range", content_range));
    }
    headers.push(("Content-Type", content_type));
    headers.push(("Content-Length", body.len().to_string()));
    FileResponse {
        status: 206,
        prebuilt: lines.validators(),
        headers,
        body: if head_only { FileBody::Empty } else { body },
    }
}

/// Builds the 500 for a body range outside its buffer. Unreachable: `range::evaluate` returns
/// ranges within the representation, memory bodies fit in `usize`, and several ranges of a
/// streamed file became `Full` in [`serve`]. A broken invariant gets a 500 instead of a panic.
fn range_invariant_broken(entry: &FileEntry, head_only: bool) -> FileResponse {
    tracing::error!(path = ?entry.stat_path, "static file range outside its body");
    error(500, head_only)
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
