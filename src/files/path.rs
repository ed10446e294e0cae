//! Request path normalisation for static routes.
//!
//! [`normalize_path`] is a pure function from the part of a request path after a route prefix to a
//! relative path under the route's root. It touches no file system: symlinks are checked later, on
//! the blocking side, against the canonical root.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A request path reduced to plain segments under a route's root.
///
/// It borrows the request's bytes when normalization changed nothing, which is the common case,
/// and owns them otherwise. [`into_owned`](Self::into_owned) detaches it from the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath<'a> {
    /// Decoded segments joined with `/`, without a leading or trailing `/`. Empty means the root.
    /// No segment is empty, `.`, `..`, or contains `/`, `\` or NUL.
    relative: Cow<'a, [u8]>,
    /// The request names a directory: its path ends with `/`, `/.` or `/..`, or it is the root.
    trailing_slash: bool,
}

impl<'a> NormalizedPath<'a> {
    /// Returns the relative path as file system bytes (Unix paths are bytes, not UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.relative
    }

    /// Returns the relative path for joining onto the route's root.
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.relative))
    }

    /// Returns true when the request names a directory, so only a directory's index file can
    /// be served.
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Returns true when the path borrows the request's bytes instead of owning a copy.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.relative, Cow::Borrowed(_))
    }

    /// Converts into a path that owns its bytes, copying them only when borrowed.
    pub fn into_owned(self) -> NormalizedPath<'static> {
        NormalizedPath {
            relative: Cow::Owned(self.relative.into_owned()),
            trailing_slash: self.trailing_slash,
        }
    }

    /// Returns the relative path percent-encoded for use in a URL, with `/` between segments.
    pub fn to_url_path(&self) -> String {
        encode_path(&self.relative)
    }

    /// Checks whether this path lies below `prefix`, a normalized route prefix, by the rule of
    /// [`strip_prefix`](Self::strip_prefix).
    pub fn is_below(&self, prefix: &NormalizedPath<'_>) -> bool {
        self.rest_start(prefix).is_some()
    }

    /// Returns the part of this path below `prefix`, a normalized route prefix, or None when
    /// the path is not below it. A path equal to the prefix is below it only with a trailing
    /// slash, as `/static/` is below the prefix `/static/` and `/static` is not. A borrowed path
    /// gives a borrowed rest, and an owned one is shortened in place, so neither allocates.
    pub fn strip_prefix(self, prefix: &NormalizedPath<'_>) -> Option<NormalizedPath<'a>> {
        let start = self.rest_start(prefix)?;
        let relative = match self.relative {
            Cow::Borrowed(bytes) => Cow::Borrowed(bytes.get(start..)?),
            Cow::Owned(mut bytes) => {
                bytes.drain(..start.min(bytes.len()));
                Cow::Owned(bytes)
            }
        };
        let trailing_slash = self.trailing_slash || relative.is_empty();
        Some(NormalizedPath {
            relative,
            trailing_slash,
        })
    }

    /// Returns the index in `as_bytes()` where the part below `prefix` starts.
    fn rest_start(&self, prefix: &NormalizedPath<'_>) -> Option<usize> {
        let prefix_len = prefix.relative.len();
        if prefix_len == 0 {
            return Some(0);
        }
        if self.relative == prefix.relative {
            return self.trailing_slash.then_some(prefix_len);
        }
        let after = self.relative.strip_prefix(prefix.relative.as_ref())?;
        after.strip_prefix(b"/")?;
        prefix_len.checked_add(1)
    }

    /// Returns true when a segment starts with `.`.
    pub fn has_dot_segment(&self) -> bool {
        self.relative
            .split(|&byte| byte == b'/')
            .any(|segment| segment.first() == Some(&b'.'))
    }
}

/// Normalizes a whole request path such as `/st%61tic//a/../b.css` for route matching, with
/// dotfiles allowed because the route decides about those. A path not starting with `/` (an
/// asterisk-form or absolute-form target) gets [`PathError::AboveRoot`], as it names no file.
///
/// # Errors
///
/// Returns the first [`PathError`] met, as [`normalize_path`] does.
pub fn normalize_request_path(path: &str) -> Result<NormalizedPath<'_>, PathError> {
    let relative = path.strip_prefix('/').ok_or(PathError::AboveRoot)?;
    normalize_path(relative, true)
}

/// A reason a request path names no file under the route's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits (RFC 3986 §2.1).
    InvalidEscape,
    /// A NUL byte, raw or as `%00`: no Unix file name contains one.
    NulByte,
    /// A backslash, raw or as `%5C`. Rejected so that a Windows-style separator never reaches the
    /// file system, which means a file whose name contains `\` cannot be served.
    Backslash,
    /// `%2F` inside a segment: a file name cannot contain `/`, and decoding it into a separator
    /// would let a path slip past segment checks.
    EncodedSlash,
    /// A `..` segment that would climb above the route's root.
    AboveRoot,
    /// A segment starting with `.` while the route does not serve dotfiles.
    Dotfile,
}

impl PathError {
    /// Returns the response status: 400 for a path that is malformed as a URL or as a Unix path
    /// (bad escape, NUL), 404 for a well-formed path naming something this server never serves.
    pub fn status(self) -> u16 {
        match self {
            PathError::InvalidEscape | PathError::NulByte => 400,
            PathError::Backslash
            | PathError::EncodedSlash
            | PathError::AboveRoot
            | PathError::Dotfile => 404,
        }
    }
}

/// Normalizes `raw`, the undecoded request path after the route prefix, into a relative path.
///
/// Each `/`-separated segment is percent-decoded on its own, so `%2F` can never become a
/// separator. Empty segments (`//`) and `.` are dropped and `..` removes the previous segment, as
/// RFC 3986 §5.2.4 does, except that `..` at the root is an error instead of being ignored. A
/// decoded `%2e%2e` counts as `..` (RFC 3986 §6.2.2.2 makes them equivalent), so it is bounded by
/// the root too.
///
/// The result borrows `raw` when `raw` is already normal (see [`is_normal`]), so the common
/// request path costs no allocation.
///
/// # Errors
///
/// Returns the first [`PathError`] met, scanning segments left to right.
pub fn normalize_path(raw: &str, serve_dotfiles: bool) -> Result<NormalizedPath<'_>, PathError> {
    if is_normal(raw, serve_dotfiles) {
        let relative = raw.strip_suffix('/').unwrap_or(raw);
        return Ok(NormalizedPath {
            relative: Cow::Borrowed(relative.as_bytes()),
            trailing_slash: relative.is_empty() || raw.ends_with('/'),
        });
    }
    normalize_segments(raw, serve_dotfiles)
}

/// Normalizes `raw` segment by segment into an owned path, the general case of [`normalize_path`].
fn normalize_segments(raw: &str, serve_dotfiles: bool) -> Result<NormalizedPath<'static>, PathError> {
    let mut relative: Vec<u8> = Vec::with_capacity(raw.len());
    let mut ends_in_dot_segment = false;

    for raw_segment in raw.split('/') {
        let segment = decode_segment(raw_segment.as_bytes())?;
        ends_in_dot_segment = false;
        match segment.as_slice() {
            b"" => {}
            b"." => ends_in_dot_segment = true,
            b".." => {
                pop_segment(&mut relative)?;
                ends_in_dot_segment = true;
            }
            name => {
                if !serve_dotfiles && name.first() == Some(&b'.') {
                    return Err(PathError::Dotfile);
                }
                if !relative.is_empty() {
                    relative.push(b'/');
                }
                relative.extend_from_slice(name);
            }
        }
    }

    let trailing_slash = relative.is_empty() || raw.ends_with('/') || ends_in_dot_segment;
    Ok(NormalizedPath {
        relative: Cow::Owned(relative),
        trailing_slash,
    })
}

/// Checks whether normalizing `raw` would return it unchanged apart from one trailing `/`: no
/// escape, backslash or NUL, no empty segment before the last, no `.` or `..` segment, and no
/// dotfile segment unless `serve_dotfiles`. Any other path takes the full scan, which then
/// reports errors in their usual order.
fn is_normal(raw: &str, serve_dotfiles: bool) -> bool {
    let body = raw.strip_suffix('/').unwrap_or(raw);
    if body.is_empty() {
        // The root, as `` or `/`. A lone `/` is an empty segment, which the full scan drops.
        return !raw.starts_with('/');
    }
    if body.bytes().any(|byte| matches!(byte, b'%' | b'\\' | 0)) {
        return false;
    }
    body.split('/').all(|segment| match segment.as_bytes() {
        [] | [b'.'] | [b'.', b'.'] => false,
        [b'.', ..] => serve_dotfiles,
        _ => true,
    })
}

/// Removes the last segment of `relative`.
fn pop_segment(relative: &mut Vec<u8>) -> Result<(), PathError> {
    if relative.is_empty() {
        return Err(PathError::AboveRoot);
    }
    let keep = relative.iter().rposition(|&byte| byte == b'/').unwrap_or(0);
    relative.truncate(keep);
    Ok(())
}

/// Percent-decodes one segment and rejects bytes no served file name may contain.
fn decode_segment(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();

    while let Some(&byte) = bytes.next() {
        let value = if byte == b'%' {
            let high = bytes.next().and_then(|&digit| hex_value(digit));
            let low = bytes.next().and_then(|&digit| hex_value(digit));
            match (high, low) {
                (Some(high), Some(low)) => high << 4 | low,
                _ => return Err(PathError::InvalidEscape),
            }
        } else {
            byte
        };
        match value {
            0 => return Err(PathError::NulByte),
            b'\\' => return Err(PathError::Backslash),
            b'/' => return Err(PathError::EncodedSlash),
            _ => decoded.push(value),
        }
    }
    Ok(decoded)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a `/`-separated path, keeping RFC 3986 `pchar` characters other than `%` as
/// they are.
pub fn encode_path(path: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";

    let mut encoded = String::with_capacity(path.len());
    for &byte in path {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte);
        if keep {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            for nibble in [byte >> 4, byte & 0x0f] {
                let digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                encoded.push(char::from(digit));
            }
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected result of one case: the relative path and the trailing-slash flag, or an error.
    type Expected = Result<(&'static str, bool), PathError>;

    const CASES: &[(&str, bool, Expected)] = &[
        // Plain paths.
        ("", false, Ok(("", true))),
        ("a.css", false, Ok(("a.css", false))),
        ("css/a.css", false, Ok(("css/a.css", false))),
        ("css/", false, Ok(("css", true))),
        ("css", false, Ok(("css", false))),
        // Repeated separators collapse.
        ("css//a.css", false, Ok(("css/a.css", false))),
        ("//css///a.css", false, Ok(("css/a.css", false))),
        ("css//", false, Ok(("css", true))),
        // `.` and `..` inside the root.
        ("./a.css", false, Ok(("a.css", false))),
        ("css/./a.css", false, Ok(("css/a.css", false))),
        ("css/../a.css", false, Ok(("a.css", false))),
        ("css/img/../../a.css", false, Ok(("a.css", false))),
        ("css/.", false, Ok(("css", true))),
        ("css/..", false, Ok(("", true))),
        (".", false, Ok(("", true))),
        // Climbing above the root.
        ("..", false, Err(PathError::AboveRoot)),
        ("../a.css", false, Err(PathError::AboveRoot)),
        ("css/../../a.css", false, Err(PathError::AboveRoot)),
        ("%2e%2e/a.css", false, Err(PathError::AboveRoot)),
        ("%2E%2E/%2e%2E/etc/passwd", false, Err(PathError::AboveRoot)),
        (".%2e/a.css", false, Err(PathError::AboveRoot)),
        ("css/%2e%2e/%2e%2e/a", false, Err(PathError::AboveRoot)),
        // Decoded `.` and `..` inside the root behave like their raw forms.
        ("css/%2e%2e/a.css", false, Ok(("a.css", false))),
        ("%2e/a.css", false, Ok(("a.css", false))),
        // Percent-decoding.
        ("a%20b.txt", false, Ok(("a b.txt", false))),
        ("%61.css", false, Ok(("a.css", false))),
        ("%c3%a9.txt", false, Ok(("é.txt", false))),
        ("a%", false, Err(PathError::InvalidEscape)),
        ("a%2", false, Err(PathError::InvalidEscape)),
        ("a%zz", false, Err(PathError::InvalidEscape)),
        ("a%2g", false, Err(PathError::InvalidEscape)),
        ("%%41", false, Err(PathError::InvalidEscape)),
        // Bytes no served name may contain.
        ("a%00.css", false, Err(PathError::NulByte)),
        ("a\0.css", false, Err(PathError::NulByte)),
        ("a\\b.css", false, Err(PathError::Backslash)),
        ("..\\a.css", false, Err(PathError::Backslash)),
        ("a%5cb.css", false, Err(PathError::Backslash)),
        ("%5C..%5Ca.css", false, Err(PathError::Backslash)),
        ("css%2fa.css", false, Err(PathError::EncodedSlash)),
        ("..%2fa.css", false, Err(PathError::EncodedSlash)),
        ("%2F", false, Err(PathError::EncodedSlash)),
        // Dotfiles.
        (".env", false, Err(PathError::Dotfile)),
        (".git/config", false, Err(PathError::Dotfile)),
        ("a/.hidden/b", false, Err(PathError::Dotfile)),
        ("%2egit/config", false, Err(PathError::Dotfile)),
        ("...", false, Err(PathError::Dotfile)),
        (".env", true, Ok((".env", false))),
        (".well-known/x", true, Ok((".well-known/x", false))),
        ("a/.hidden/../b", true, Ok(("a/b", false))),
        // A name that merely contains dots is not a dot segment.
        ("a..b", false, Ok(("a..b", false))),
        ("a./b.", false, Ok(("a./b.", false))),
        // The first error met wins.
        ("a%zz/..%2f", false, Err(PathError::InvalidEscape)),
        ("../a%zz", false, Err(PathError::AboveRoot)),
    ];

    #[test]
    fn normalize_case_table() {
        for &(raw, serve_dotfiles, expected) in CASES {
            let actual = normalize_path(raw, serve_dotfiles).map(|path| {
                let relative = String::from_utf8_lossy(path.as_bytes()).into_owned();
                (relative, path.trailing_slash())
            });
            let expected = expected.map(|(relative, slash)| (relative.to_owned(), slash));
            assert_eq!(
                actual, expected,
                "raw path {raw:?}, dotfiles {serve_dotfiles}"
            );
        }
    }

    #[test]
    fn normalize_output_has_no_bad_segment() {
        for &(raw, serve_dotfiles, _) in CASES {
            let Ok(path) = normalize_path(raw, serve_dotfiles) else {
                continue;
            };
            for segment in path.as_bytes().split(|&byte| byte == b'/') {
                if path.as_bytes().is_empty() {
                    break;
                }
                assert!(!segment.is_empty(), "empty segment from {raw:?}");
                assert_ne!(segment, b".", "dot segment from {raw:?}");
                assert_ne!(segment, b"..", "dot-dot segment from {raw:?}");
                assert!(!segment.contains(&0), "NUL from {raw:?}");
                assert!(!segment.contains(&b'\\'), "backslash from {raw:?}");
            }
        }
    }

    #[test]
    fn normalize_keeps_non_utf8_bytes() {
        let path = normalize_path("a%ff.bin", false);
        assert_eq!(
            path.as_ref().map(NormalizedPath::as_bytes),
            Ok(&b"a\xff.bin"[..])
        );
    }

    #[test]
    fn normalize_borrow_table() {
        // Raw path, `serve_dotfiles`, expected: whether the result borrows `raw`.
        let cases: &[(&str, bool, Result<bool, PathError>)] = &[
            ("", false, Ok(true)),
            ("a.css", false, Ok(true)),
            ("css/a.css", false, Ok(true)),
            ("css/", false, Ok(true)),
            ("a.b/c.d", false, Ok(true)),
            (".well-known/x", true, Ok(true)),
            (".well-known/x", false, Err(PathError::Dotfile)),
            ("/", false, Ok(false)),
            ("/a", false, Ok(false)),
            ("css//a.css", false, Ok(false)),
            ("css//", false, Ok(false)),
            ("./a", false, Ok(false)),
            ("a/..", false, Ok(false)),
            ("a%20b", false, Ok(false)),
        ];
        for &(raw, serve_dotfiles, expected) in cases {
            let actual = normalize_path(raw, serve_dotfiles).map(|path| path.is_borrowed());
            assert_eq!(actual, expected, "{raw:?} with dotfiles {serve_dotfiles}");
        }
    }

    #[test]
    fn normal_path_matches_full_scan() {
        let extra = ["a/b/", ".a", "a/.b/", "x..y/z.", "...", "a/b/c/d.e"];
        let raws = CASES.iter().map(|&(raw, _, _)| raw).chain(extra);
        for raw in raws {
            for serve_dotfiles in [false, true] {
                if !is_normal(raw, serve_dotfiles) {
                    continue;
                }
                let fast = normalize_path(raw, serve_dotfiles);
                let full = normalize_segments(raw, serve_dotfiles);
                assert_eq!(fast, full, "{raw:?} with dotfiles {serve_dotfiles}");
            }
        }
    }

    #[test]
    fn strip_prefix_borrows() {
        let path = normalize_request_path("/static/css/a.css").unwrap();
        let prefix = normalize_request_path("/static/").unwrap();
        let rest = path.strip_prefix(&prefix).unwrap();
        assert!(rest.is_borrowed());
        assert_eq!(rest.as_bytes(), b"css/a.css");
    }

    #[test]
    fn strip_prefix_owned_in_place() {
        let path = normalize_request_path("/static//css/a.css").unwrap();
        let prefix = normalize_request_path("/static/").unwrap();
        let rest = path.strip_prefix(&prefix).unwrap();
        assert!(!rest.is_borrowed());
        assert_eq!(rest.as_bytes(), b"css/a.css");
    }

    #[test]
    fn strip_prefix_table() {
        /// Request path, route prefix, expected rest and trailing-slash flag.
        type Case = (&'static str, &'static str, Option<(&'static str, bool)>);
        let cases: &[Case] = &[
            ("/static/a.css", "/static/", Some(("a.css", false))),
            ("/static/css/", "/static/", Some(("css", true))),
            ("/static/", "/static/", Some(("", true))),
            ("/static", "/static/", None),
            ("/staticx/a.css", "/static/", None),
            ("/api/a", "/static/", None),
            ("/a/b/c", "/a/b/", Some(("c", false))),
            ("/a/bc", "/a/b/", None),
            ("/a.css", "/", Some(("a.css", false))),
            ("/", "/", Some(("", true))),
        ];
        for &(path, prefix, expected) in cases {
            let path = normalize_request_path(path).unwrap();
            let prefix = normalize_request_path(prefix).unwrap();
            let actual = path.clone().strip_prefix(&prefix).map(|rest| {
                let relative = String::from_utf8_lossy(rest.as_bytes()).into_owned();
                (relative, rest.trailing_slash())
            });
            let expected = expected.map(|(relative, slash)| (relative.to_owned(), slash));
            assert_eq!(actual, expected, "{path:?} under {prefix:?}");
        }
    }

    #[test]
    fn request_path_table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/st%61tic/x", Ok("static/x")),
            ("//static///x", Ok("static/x")),
            ("/api/../static/x", Ok("static/x")),
            ("/static/.env", Ok("static/.env")),
            ("/../static/x", Err(PathError::AboveRoot)),
            ("*", Err(PathError::AboveRoot)),
            ("http://host/static/x", Err(PathError::AboveRoot)),
            ("/static/%zz", Err(PathError::InvalidEscape)),
        ];
        for &(path, expected) in cases {
            let actual = normalize_request_path(path)
                .map(|normalized| String::from_utf8_lossy(normalized.as_bytes()).into_owned());
            assert_eq!(actual, expected.map(str::to_owned), "path {path:?}");
        }
    }

    #[test]
    fn dot_segment_table() {
        let cases = [
            ("a/b", false),
            (".a/b", true),
            ("a/.b", true),
            ("a.b/c.", false),
        ];
        for (path, expected) in cases {
            let normalized = normalize_path(path, true).unwrap();
            assert_eq!(normalized.has_dot_segment(), expected, "path {path:?}");
        }
    }

    #[test]
    fn error_status_table() {
        let cases = [
            (PathError::InvalidEscape, 400),
            (PathError::NulByte, 400),
            (PathError::Backslash, 404),
            (PathError::EncodedSlash, 404),
            (PathError::AboveRoot, 404),
            (PathError::Dotfile, 404),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
        }
    }

    #[test]
    fn encode_path_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"css/a.css", "css/a.css"),
            (b"a b", "a%20b"),
            (b"a?b#c%d", "a%3Fb%23c%25d"),
            ("é".as_bytes(), "%C3%A9"),
            (b"\xff", "%FF"),
            (b"a:b@c~d", "a:b@c~d"),
        ];
        for &(path, expected) in cases {
            assert_eq!(encode_path(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn encode_then_normalize_round_trips() {
        let names: &[&[u8]] = &[b"a b/c?d", "é/x".as_bytes(), b"a%b", b"\x01\xfe"];
        for &name in names {
            let encoded = encode_path(name);
            let normalized = normalize_path(&encoded, false);
            assert_eq!(
                normalized.as_ref().map(NormalizedPath::as_bytes),
                Ok(name),
                "{encoded}"
            );
        }
    }
}
