//! The parsed request head shared by the HTTP core, the static file server and the proxy.

/// HTTP version of a request line. Only HTTP/1.0 and HTTP/1.1 are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// Returns the version as a request line writes it, such as `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither Content-Length nor Transfer-Encoding was sent.
    Empty,
    /// `Content-Length: N` with N > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One header field as received. The name keeps the client's spelling; compare it
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// A request head that passed every framing check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token exactly as sent (methods are case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// The request target exactly as sent, in origin form (`/path?query`) or `*` for OPTIONS.
    /// An absolute-form target (`http://host/path`) is stored in origin form, and its authority
    /// replaces the Host header (RFC 9112 §3.2.2).
    pub target: String,
    pub version: Version,
    pub headers: Vec<Header>,
    pub framing: BodyFraming,
    /// Whether the connection may stay open after this exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (RFC 9110 §10.1.1).
    pub expect_continue: bool,
}

impl RequestHead {
    /// Returns the value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_slice())
    }

    /// Returns the values of every header named `name`, in the order received.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_slice())
    }

    /// Returns the path part of the target, without the query.
    pub fn path(&self) -> &str {
        match self.target.split_once('?') {
            Some((path, _)) => path,
            None => &self.target,
        }
    }

    /// Returns the query part of the target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}
