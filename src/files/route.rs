//! Configuration of static routes and of the per-worker file cache.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `[[static]]` table of the configuration: a URL prefix served from a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// URL prefix such as `/static/`, starting and ending with `/`. It is matched against the
    /// normalized request path (see `StaticFiles::route_for`).
    pub prefix: String,
    /// The directory served, canonical (absolute, no symlinks). A root that is not canonical makes
    /// the under-the-root check fail for every file, so the route responds 404 to everything.
    ///
    /// NOTE: because the root is resolved once, a deploy that re-points a symlinked release
    /// directory is not seen until the routes are built again.
    pub dir: PathBuf,
    /// File served for a request naming a directory, such as `index.html`. A single file name.
    pub index: String,
    /// `Cache-Control: public, max-age=N` in seconds on successful responses. None sends no
    /// Cache-Control field.
    pub max_age: Option<u32>,
    /// Serve paths with a segment starting with `.`. When false, such a path gets 404, and so
    /// does a symlink that resolves to one.
    pub serve_dotfiles: bool,
    /// Serve files whose real path, after resolving symlinks, lies outside `dir`. When false,
    /// they get 404.
    pub follow_symlinks_outside: bool,
}

impl StaticRoute {
    /// Builds a route with the default options, canonicalizing `dir`.
    ///
    /// # Errors
    ///
    /// Returns [`RouteError`] when the prefix does not start and end with `/` or when `dir` cannot
    /// be resolved or is not a directory.
    pub fn new(prefix: impl Into<String>, dir: impl AsRef<Path>) -> Result<Self, RouteError> {
        let prefix = prefix.into();
        let dir = dir.as_ref();
        let canonical = dir.canonicalize().map_err(|source| RouteError::Directory {
            dir: dir.to_path_buf(),
            kind: source.kind(),
        })?;
        if !canonical.is_dir() {
            return Err(RouteError::NotADirectory { dir: canonical });
        }

        let route = StaticRoute {
            prefix,
            dir: canonical,
            index: String::from("index.html"),
            max_age: None,
            serve_dotfiles: false,
            follow_symlinks_outside: false,
        };
        route.validate()?;
        Ok(route)
    }

    /// Checks the prefix and the index name, for routes built field by field.
    ///
    /// # Errors
    ///
    /// Returns [`RouteError::InvalidPrefix`] or [`RouteError::InvalidIndex`].
    pub fn validate(&self) -> Result<(), RouteError> {
        let prefix_ok = self.prefix.starts_with('/') && self.prefix.ends_with('/');
        if !prefix_ok {
            return Err(RouteError::InvalidPrefix {
                prefix: self.prefix.clone(),
            });
        }
        if !is_plain_file_name(&self.index) {
            return Err(RouteError::InvalidIndex {
                index: self.index.clone(),
            });
        }
        Ok(())
    }
}

/// Checks that `name` is one path segment naming a file inside its directory.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// A static route that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The prefix does not start and end with `/`.
    InvalidPrefix { prefix: String },
    /// The index is not a single file name.
    InvalidIndex { index: String },
    /// The directory could not be resolved.
    Directory { dir: PathBuf, kind: io::ErrorKind },
    /// The path resolves to something other than a directory.
    NotADirectory { dir: PathBuf },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::InvalidPrefix { prefix } => {
                write!(
                    f,
                    "invalid static prefix {prefix:?}: it must start and end with '/'"
                )
            }
            RouteError::InvalidIndex { index } => {
                write!(f, "invalid index {index:?}: it must be a single file name")
            }
            RouteError::Directory { dir, kind } => {
                write!(
                    f,
                    "static directory {} cannot be resolved: {kind}",
                    dir.display()
                )
            }
            RouteError::NotADirectory { dir } => {
                write!(f, "static directory {} is not a directory", dir.display())
            }
        }
    }
}

impl std::error::Error for RouteError {}

/// Settings of the per-worker static file cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSettings {
    /// Memory budget of one worker's cache in bytes, default 256 MiB. It counts the identity and
    /// gzip bodies plus an estimated bookkeeping size per entry; the least recently used entries
    /// are evicted to stay within it.
    pub cache_bytes: usize,
    /// Largest file in bytes held in memory, default 8 MiB. Larger files are streamed from an
    /// open file handle and never gzipped. It is lowered to half of `cache_bytes` when larger, so
    /// a file and its gzip variant always fit the budget.
    pub max_cached_file_bytes: u64,
    /// libdeflate compression level, 1 to 12, default 9. A value outside that range means 9.
    pub gzip_level: i32,
    /// Smallest file in bytes worth compressing, default 256: below that the gzip header and
    /// trailer (18 bytes) eat most of the gain.
    pub gzip_min_bytes: u64,
    /// Time between two freshness checks (`stat`) of one cached entry, default 1 s. A change on
    /// disk becomes visible after at most this long.
    pub revalidate_interval: Duration,
    /// Files larger than `max_cached_file_bytes` kept open by one worker's cache, default 64.
    /// Each keeps a file descriptor open, so this bounds descriptor use per worker.
    pub max_open_files: usize,
    /// Longest `Range` field value in bytes that is parsed, default 1024. A longer one is
    /// ignored and the whole file is sent. One range with 20-digit positions takes 47 bytes.
    pub max_range_header_bytes: usize,
    /// Maximum number of ranges in one `Range` field, default 16. A request for more gets the
    /// whole file with 200, because every range costs a part header and a copy of its bytes.
    pub max_ranges: usize,
}

impl Default for StaticSettings {
    fn default() -> Self {
        StaticSettings {
            cache_bytes: 256 * 1024 * 1024,
            max_cached_file_bytes: 8 * 1024 * 1024,
            gzip_level: 9,
            gzip_min_bytes: 256,
            revalidate_interval: Duration::from_secs(1),
            max_open_files: 64,
            max_range_header_bytes: 1024,
            max_ranges: 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_prefix_table() {
        let cases = [
            ("/static/", true),
            ("/", true),
            ("/static", false),
            ("static/", false),
            ("", false),
        ];
        for (prefix, ok) in cases {
            let route = StaticRoute {
                prefix: prefix.to_owned(),
                dir: PathBuf::from("/"),
                index: String::from("index.html"),
                max_age: None,
                serve_dotfiles: false,
                follow_symlinks_outside: false,
            };
            assert_eq!(route.validate().is_ok(), ok, "prefix {prefix:?}");
        }
    }

    #[test]
    fn plain_file_name_table() {
        let cases = [
            ("index.html", true),
            (".index", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a/index.html", false),
            ("a\0", false),
        ];
        for (name, ok) in cases {
            assert_eq!(is_plain_file_name(name), ok, "name {name:?}");
        }
    }

    #[test]
    fn new_canonicalizes_dir() {
        let temp = std::env::temp_dir();
        let route = StaticRoute::new("/static/", temp.join("."));
        assert_eq!(route.ok().map(|route| route.dir), temp.canonicalize().ok());
    }

    #[test]
    fn new_rejects_missing_dir() {
        let missing = std::env::temp_dir().join("ringfront-no-such-dir-0");
        let route = StaticRoute::new("/static/", missing);
        assert!(matches!(route, Err(RouteError::Directory { .. })));
    }
}
