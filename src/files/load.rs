//! The blocking half of the static file server: resolving a normalized path on disk, reading,
//! hashing and compressing a file. [`LoadJob::run`] runs on a blocking thread pool, never on a
//! worker's event loop.
//!
//! Files are read with `read(2)` and never memory-mapped. A mapping of a file that someone
//! truncates later raises SIGBUS on access, which would kill the whole worker, and creating one
//! needs `unsafe`. So a file of at most `max_cached_file_bytes` is copied into an owned buffer
//! that serves every later request, and a larger one is served from its open [`File`] with
//! positional reads. If it shrinks meanwhile, the server gets a short read and ends the
//! connection instead of crashing.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libdeflater::{CompressionLvl, Compressor};
use sha2::{Digest, Sha256};

use super::encoding::ContentCoding;
use super::path::NormalizedPath;
use super::response::{HeadLines, Representation, build_head_lines};
use super::route::is_plain_file_name;

/// Identifies a cache entry: a route and a normalized path under its root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub route: usize,
    pub path: NormalizedPath<'static>,
}

/// Work for a blocking thread: resolve one request path and load the file it names.
/// Run it with [`LoadJob::run`] and hand the result to `StaticFiles::insert`.
#[derive(Debug)]
pub struct LoadJob {
    pub(crate) key: CacheKey,
    pub(crate) options: LoadOptions,
}

/// The route and cache settings a load needs, copied so the job owns everything it uses.
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    pub root: PathBuf,
    pub index: String,
    pub serve_dotfiles: bool,
    pub follow_symlinks_outside: bool,
    pub max_cached_file_bytes: u64,
    pub gzip_level: CompressionLvl,
    pub gzip_min_bytes: u64,
    /// The route's `max_age`, written into the prebuilt response fields.
    pub max_age: Option<u32>,
}

/// The result of a [`LoadJob`], to be stored with `StaticFiles::insert`.
#[derive(Debug)]
pub struct Loaded {
    pub(crate) key: CacheKey,
    pub(crate) result: LoadResult,
}

#[derive(Debug)]
pub(crate) enum LoadResult {
    File(Box<FileEntry>),
    /// The path names a directory but the request had no trailing slash.
    Redirect,
    Failed(LoadError),
}

/// A reason a load produced no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// No such file, or a path component is not a directory.
    NotFound,
    /// The real path lies outside the route's root and the route does not follow such symlinks.
    OutsideRoot,
    /// The real path has a segment starting with `.` and the route does not serve dotfiles.
    Dotfile,
    /// A directory requested without an index file, or a file requested with a trailing slash.
    NotAFile,
    /// Not a regular file (a FIFO, socket or device): opening or reading it could block forever.
    NotRegularFile,
    /// The server process may not read the file.
    PermissionDenied,
    /// Any other I/O failure.
    Io(io::ErrorKind),
}

impl LoadError {
    /// Returns the response status: 403 for a permission error, 500 for an unexpected I/O
    /// failure, 404 for everything else so that nothing reveals what exists outside the root.
    pub fn status(self) -> u16 {
        match self {
            LoadError::PermissionDenied => 403,
            LoadError::Io(_) => 500,
            LoadError::NotFound
            | LoadError::OutsideRoot
            | LoadError::Dotfile
            | LoadError::NotAFile
            | LoadError::NotRegularFile => 404,
        }
    }

    fn from_io(error: &io::Error) -> Self {
        // ELOOP (too many symlinks) has no stable `io::ErrorKind` yet.
        if error.raw_os_error() == Some(libc::ELOOP) {
            return LoadError::NotFound;
        }
        match error.kind() {
            io::ErrorKind::NotFound
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::InvalidFilename => LoadError::NotFound,
            io::ErrorKind::PermissionDenied => LoadError::PermissionDenied,
            kind => LoadError::Io(kind),
        }
    }
}

/// File identity and version as seen by `stat`: a change of any field means new content.
/// ctime is included because tools that restore mtime (`cp -p`, `touch -d`) cannot set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl FileStamp {
    pub fn of(metadata: &Metadata) -> Self {
        FileStamp {
            len: metadata.len(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
            ino: metadata.ino(),
            dev: metadata.dev(),
        }
    }

    /// Checks whether this file was modified at the same time as `other` or later, at the
    /// nanosecond resolution `stat` gives.
    pub fn is_not_older_than(&self, other: &FileStamp) -> bool {
        self.mtime >= other.mtime
    }

    /// Returns the modification time in whole seconds, clamped to what an HTTP-date can show:
    /// 1970-01-01 to 9999-12-31 (httpdate panics outside that range).
    pub fn last_modified(&self) -> SystemTime {
        const LAST_HTTP_DATE_SECS: i64 = 253_402_300_799;
        let seconds = self.mtime.0.clamp(0, LAST_HTTP_DATE_SECS);
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    }
}

/// A loaded file with everything needed to respond from memory.
#[derive(Debug)]
pub(crate) struct FileEntry {
    /// The unresolved path whose `stat` revalidates the entry. Following the symlinks again on
    /// every check notices a symlink that was re-pointed.
    pub stat_path: PathBuf,
    pub stamp: FileStamp,
    pub content_type: String,
    /// The type is one that compresses, so responses carry `Vary: Accept-Encoding`.
    pub compressible: bool,
    pub last_modified: SystemTime,
    /// `last_modified` as an IMF-fixdate.
    pub last_modified_text: String,
    pub identity: Identity,
    /// Encoded representations: pre-compressed siblings and the server's own gzip, at most one
    /// per coding.
    pub variants: Vec<EncodedVariant>,
    /// The `stat` result of each sibling name at load time. A sibling created, changed or
    /// removed later makes the entry stale, as a change of the file itself does.
    pub siblings: Vec<SiblingStamp>,
}

impl FileEntry {
    /// Returns the bytes of memory the entry holds for bodies.
    pub fn body_bytes(&self) -> usize {
        let identity = match &self.identity.body {
            IdentityBody::Memory(bytes) => bytes.len(),
            IdentityBody::File { .. } => 0,
        };
        self.variants.iter().fold(identity, |total, variant| {
            total.saturating_add(variant.bytes.len())
        })
    }

    /// Returns the bytes of memory the entry holds for its prebuilt response fields.
    pub fn head_bytes(&self) -> usize {
        self.variants.iter().fold(self.identity.head.len(), |total, variant| {
            total.saturating_add(variant.head.len())
        })
    }

    /// Returns the variant for `coding`, if the file has one.
    pub fn variant(&self, coding: ContentCoding) -> Option<&EncodedVariant> {
        self.variants
            .iter()
            .find(|variant| variant.coding == coding)
    }

    /// Builds the prebuilt 200 fields of the identity and of every variant. Call it once the
    /// bodies and variants are final, because they give Content-Length and Vary.
    fn build_heads(&mut self, max_age: Option<u32>) {
        let identity = Representation {
            etag: &self.identity.etag,
            content_length: self.identity.body.len(),
            coding: None,
        };
        let identity_head = build_head_lines(self, &identity, max_age);
        let variant_heads: Vec<HeadLines> = self
            .variants
            .iter()
            .map(|variant| {
                let representation = Representation {
                    etag: &variant.etag,
                    content_length: u64::try_from(variant.bytes.len()).unwrap_or(u64::MAX),
                    coding: Some(variant.coding),
                };
                build_head_lines(self, &representation, max_age)
            })
            .collect();

        self.identity.head = identity_head;
        for (variant, head) in self.variants.iter_mut().zip(variant_heads) {
            variant.head = head;
        }
    }

    /// Checks each sibling name with `stat` and returns whether all look as they did at load
    /// time: same stamp, or still absent.
    pub fn siblings_unchanged(&self) -> bool {
        self.siblings.iter().all(|sibling| {
            let now = std::fs::metadata(&sibling.path)
                .ok()
                .map(|metadata| FileStamp::of(&metadata));
            now == sibling.stamp
        })
    }
}

/// One possible pre-compressed sibling (`FILE.br`, `FILE.zst`, `FILE.gz`) and its `stat`.
#[derive(Debug, Clone)]
pub(crate) struct SiblingStamp {
    pub path: PathBuf,
    /// None when the name did not exist or could not be checked.
    pub stamp: Option<FileStamp>,
}

/// The uncompressed representation.
#[derive(Debug)]
pub(crate) struct Identity {
    pub etag: String,
    /// The fields of a 200, built by [`FileEntry::build_heads`].
    pub head: HeadLines,
    pub body: IdentityBody,
}

#[derive(Debug)]
pub(crate) enum IdentityBody {
    Memory(Arc<[u8]>),
    /// A file above `max_cached_file_bytes`, with the length its `stat` gave at load time.
    File {
        file: Arc<File>,
        len: u64,
    },
}

impl IdentityBody {
    pub fn len(&self) -> u64 {
        match self {
            IdentityBody::Memory(bytes) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            IdentityBody::File { len, .. } => *len,
        }
    }
}

/// An encoded representation held in memory, with its own entity tag (RFC 9110 §8.8.3: a
/// different content coding is a different representation).
///
/// The tag of a sibling file is derived from the sibling's own bytes plus a per-coding suffix
/// (`"<hash>-br"`), so a sibling recompressed without a change to the file still gets a new
/// tag. The tag of the server's own gzip is the identity tag plus `-gz`: its bytes follow from
/// the identity bytes and the compression level alone.
#[derive(Debug)]
pub(crate) struct EncodedVariant {
    pub coding: ContentCoding,
    pub etag: String,
    pub bytes: Arc<[u8]>,
    /// The fields of a 200, built by [`FileEntry::build_heads`].
    pub head: HeadLines,
}

impl LoadJob {
    /// Resolves the path, opens and reads the file, hashes it, and loads its pre-compressed
    /// siblings or builds its gzip variant.
    /// Failures are part of the result: they become cached error responses.
    pub fn run(self) -> Loaded {
        let result = match self.load() {
            Ok(result) => {
                tracing::debug!(path = ?self.key.path.as_path(), "static file loaded");
                result
            }
            Err(error) => {
                match error {
                    LoadError::Io(kind) => {
                        tracing::warn!(path = ?self.key.path.as_path(), ?kind, "static file load failed");
                    }
                    _ => {
                        tracing::debug!(path = ?self.key.path.as_path(), ?error, "static file not served")
                    }
                }
                LoadResult::Failed(error)
            }
        };
        Loaded {
            key: self.key,
            result,
        }
    }

    fn load(&self) -> Result<LoadResult, LoadError> {
        let options = &self.options;
        let requested = options.root.join(self.key.path.as_path());

        // Resolve the request path. A directory is served through its index file.
        let real = self.resolve(&requested)?;
        let is_dir = std::fs::metadata(&real)
            .map_err(|error| LoadError::from_io(&error))?
            .is_dir();
        let (stat_path, real, name) = match (is_dir, self.key.path.trailing_slash()) {
            (true, false) => return Ok(LoadResult::Redirect),
            (true, true) => {
                if !is_plain_file_name(&options.index) {
                    return Err(LoadError::NotAFile);
                }
                let index = requested.join(&options.index);
                let real = self.resolve(&index)?;
                (index, real, options.index.as_str())
            }
            (false, true) => return Err(LoadError::NotAFile),
            (false, false) => {
                let name = requested
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or("");
                (requested.clone(), real, name)
            }
        };

        // O_NONBLOCK keeps open(2) from waiting for a writer if a FIFO was swapped in after the
        // stat above. The fstat below rejects anything but a regular file.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&real)
            .map_err(|error| LoadError::from_io(&error))?;
        let metadata = file
            .metadata()
            .map_err(|error| LoadError::from_io(&error))?;
        if !metadata.is_file() {
            return Err(LoadError::NotRegularFile);
        }
        let stamp = FileStamp::of(&metadata);

        let (content_type, compressible) = content_type(name);
        let last_modified = stamp.last_modified();
        let mut entry = FileEntry {
            stat_path,
            stamp,
            content_type,
            compressible,
            last_modified,
            last_modified_text: httpdate::fmt_http_date(last_modified),
            identity: Identity {
                etag: String::new(),
                head: HeadLines::default(),
                body: IdentityBody::Memory(Arc::from(Vec::new())),
            },
            variants: Vec::new(),
            siblings: Vec::new(),
        };
        self.load_siblings(&mut entry);

        // Small files: one owned copy serves every request. The stamp was taken before the read,
        // so a file changed during the read fails the next freshness check and is loaded again.
        if stamp.len <= options.max_cached_file_bytes {
            let bytes =
                read_prefix(&file, stamp.len).map_err(|error| LoadError::from_io(&error))?;
            entry.identity.etag = entity_tag(&Sha256::digest(&bytes), "");
            let long_enough =
                u64::try_from(bytes.len()).is_ok_and(|len| len >= options.gzip_min_bytes);
            let has_gzip = entry.variant(ContentCoding::Gzip).is_some();
            if compressible && long_enough && !has_gzip {
                let gzip = gzip_variant(&bytes, options.gzip_level, &entry.identity.etag);
                entry.variants.extend(gzip);
            }
            entry.identity.body = IdentityBody::Memory(Arc::from(bytes));
            entry.build_heads(options.max_age);
            return Ok(LoadResult::File(Box::new(entry)));
        }

        // Large files: hash in bounded chunks, keep the handle for positional reads.
        let digest = hash_prefix(&file, stamp.len).map_err(|error| LoadError::from_io(&error))?;
        entry.identity.etag = entity_tag(&digest, "");
        entry.identity.body = IdentityBody::File {
            file: Arc::new(file),
            len: stamp.len,
        };
        entry.build_heads(options.max_age);
        Ok(LoadResult::File(Box::new(entry)))
    }

    /// Records the `stat` of each sibling name of `entry.stat_path` and loads the usable ones.
    fn load_siblings(&self, entry: &mut FileEntry) {
        for coding in ContentCoding::PREFERENCE {
            let path = sibling_path(&entry.stat_path, coding);
            let stamp = std::fs::metadata(&path)
                .ok()
                .map(|metadata| FileStamp::of(&metadata));
            if stamp.is_some()
                && let Some(variant) = self.load_sibling(&path, coding, &entry.stamp)
            {
                entry.variants.push(variant);
            }
            entry.siblings.push(SiblingStamp { path, stamp });
        }
    }

    /// Reads a pre-compressed sibling, or returns None when it may not be served: outside the
    /// route's rules, not a regular file, older than the file, larger than
    /// `max_cached_file_bytes`, or not smaller than the file (then it saves nothing).
    fn load_sibling(
        &self,
        path: &Path,
        coding: ContentCoding,
        file: &FileStamp,
    ) -> Option<EncodedVariant> {
        let real = self.resolve(path).ok()?;
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(real)
            .ok()?;
        let metadata = handle.metadata().ok()?;
        let stamp = FileStamp::of(&metadata);
        let usable = metadata.is_file()
            && stamp.is_not_older_than(file)
            && stamp.len <= self.options.max_cached_file_bytes
            && stamp.len < file.len;
        if !usable {
            tracing::debug!(path = ?path, ?coding, "pre-compressed sibling skipped");
            return None;
        }

        let bytes = match read_prefix(&handle, stamp.len) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(path = ?path, %error, "pre-compressed sibling read failed");
                return None;
            }
        };
        let suffix = format!("-{}", coding.extension());
        Some(EncodedVariant {
            coding,
            etag: entity_tag(&Sha256::digest(&bytes), &suffix),
            bytes: Arc::from(bytes),
            head: HeadLines::default(),
        })
    }

    /// Canonicalizes `path` and applies the route's symlink and dotfile rules to the real path.
    fn resolve(&self, path: &Path) -> Result<PathBuf, LoadError> {
        let options = &self.options;
        let real = path
            .canonicalize()
            .map_err(|error| LoadError::from_io(&error))?;

        match real.strip_prefix(&options.root) {
            Ok(inside) => {
                if !options.serve_dotfiles && has_dot_segment(inside) {
                    return Err(LoadError::Dotfile);
                }
            }
            Err(_) if options.follow_symlinks_outside => {}
            Err(_) => return Err(LoadError::OutsideRoot),
        }
        Ok(real)
    }
}

/// Returns `path` with `.br`, `.zst` or `.gz` appended to its file name.
fn sibling_path(path: &Path, coding: ContentCoding) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".");
    name.push(coding.extension());
    PathBuf::from(name)
}

fn has_dot_segment(path: &Path) -> bool {
    path.components().any(|component| match component {
        Component::Normal(name) => name.as_encoded_bytes().first() == Some(&b'.'),
        _ => false,
    })
}

/// Reads at most `len` bytes: a file that grew since its `stat` is cut at the size the stamp
/// records, and one that shrank gives fewer bytes.
fn read_prefix(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let capacity = usize::try_from(len).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Hashes at most `len` bytes of `file` through a fixed 64 KiB buffer.
fn hash_prefix(file: &File, len: u64) -> io::Result<sha2::digest::Output<Sha256>> {
    let mut hasher = Sha256::new();
    let mut reader = file.take(len);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(buffer.get(..read).unwrap_or_default());
    }
    Ok(hasher.finalize())
}

/// Builds a strong entity tag from the first 8 bytes of a SHA-256 digest as 16 hex digits, so
/// a rebuilt file with identical content keeps its tag. `suffix` marks another representation.
fn entity_tag(digest: &[u8], suffix: &str) -> String {
    let mut tag = String::with_capacity(18 + suffix.len());
    tag.push('"');
    for byte in digest.iter().take(8) {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push_str(suffix);
    tag.push('"');
    tag
}

/// Compresses `bytes` and keeps the result only when it is smaller.
fn gzip_variant(
    bytes: &[u8],
    level: CompressionLvl,
    identity_etag: &str,
) -> Option<EncodedVariant> {
    thread_local! {
        /// A compressor per blocking thread, because libdeflate allocates its match finder per
        /// compressor: 0.2 MB at level 1, 0.65 MB at levels 6 and 9, and 9 MB at level 12
        /// (heap growth measured with glibc's mallinfo2, libdeflate 1.26).
        static COMPRESSOR: RefCell<Option<(CompressionLvl, Compressor)>> = const { RefCell::new(None) };
    }

    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some((cached, compressor)) if *cached == level => compressor,
            _ => &mut slot.insert((level, Compressor::new(level))).1,
        };
        let mut gzip = vec![0u8; compressor.gzip_compress_bound(bytes.len())];
        let written = compressor.gzip_compress(bytes, &mut gzip).ok()?;
        if written >= bytes.len() {
            return None;
        }
        gzip.truncate(written);

        let opaque = identity_etag.trim_matches('"');
        Some(EncodedVariant {
            coding: ContentCoding::Gzip,
            etag: format!("\"{opaque}-gz\""),
            bytes: Arc::from(gzip),
            head: HeadLines::default(),
        })
    })
}

/// Returns the `Content-Type` for a file name and whether that type is worth compressing.
///
/// Text types and JavaScript/JSON get `; charset=utf-8`. Compressible types are text, JSON,
/// XML (including SVG), JavaScript, wasm and uncompressed fonts (TTF, OTF). Images, WOFF and
/// WOFF2 fonts, archives and media are already compressed.
pub(crate) fn content_type(name: &str) -> (String, bool) {
    // mime_guess 2.0 maps neither extension. `application/zstd` is registered by RFC 8878,
    // but no media type is registered for a bare Brotli stream.
    let extension = name.rsplit_once('.').map(|(_, extension)| extension);
    let known = match extension {
        Some(extension) if extension.eq_ignore_ascii_case("zst") => Some("application/zstd"),
        Some(extension) if extension.eq_ignore_ascii_case("br") => Some("application/octet-stream"),
        _ => None,
    };
    let essence = known
        .or_else(|| mime_guess::from_path(name).first_raw())
        .unwrap_or("application/octet-stream");
    let (kind, subtype) = essence.split_once('/').unwrap_or((essence, ""));

    let textual = kind == "text"
        || matches!(essence, "application/javascript" | "application/json")
        || subtype.ends_with("+json");
    let compressible = textual
        || subtype.ends_with("+xml")
        || matches!(
            essence,
            "application/xml"
                | "application/wasm"
                | "application/font-sfnt"
                | "application/x-font-ttf"
                | "font/ttf"
                | "font/otf"
                | "application/vnd.ms-fontobject"
        );

    let content_type = if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    };
    (content_type, compressible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_table() {
        let cases = [
            ("index.html", "text/html; charset=utf-8", true),
            ("app.css", "text/css; charset=utf-8", true),
            ("app.js", "text/javascript; charset=utf-8", true),
            ("app.mjs", "application/javascript; charset=utf-8", true),
            ("data.json", "application/json; charset=utf-8", true),
            (
                "site.webmanifest",
                "application/manifest+json; charset=utf-8",
                true,
            ),
            ("logo.svg", "image/svg+xml", true),
            ("feed.xml", "text/xml; charset=utf-8", true),
            ("app.wasm", "application/wasm", true),
            ("font.ttf", "font/ttf", true),
            ("font.woff", "application/font-woff", false),
            ("font.woff2", "font/woff2", false),
            ("photo.jpg", "image/jpeg", false),
            ("photo.png", "image/png", false),
            ("archive.gz", "application/gzip", false),
            ("app.css.gz", "application/gzip", false),
            ("app.css.zst", "application/zstd", false),
            ("app.css.br", "application/octet-stream", false),
            ("archive.zip", "application/zip", false),
            ("movie.mp4", "video/mp4", false),
            ("README", "application/octet-stream", false),
            ("file.unknownext", "application/octet-stream", false),
        ];
        for (name, expected_type, expected_compressible) in cases {
            let (actual_type, actual_compressible) = content_type(name);
            assert_eq!(actual_type, expected_type, "type of {name}");
            assert_eq!(
                actual_compressible, expected_compressible,
                "compressible {name}"
            );
        }
    }

    #[test]
    fn entity_tag_format() {
        let digest = Sha256::digest(b"hello");
        assert_eq!(entity_tag(&digest, ""), "\"2cf24dba5fb0a30e\"");
        assert_eq!(entity_tag(&digest, "-gz"), "\"2cf24dba5fb0a30e-gz\"");
    }

    #[test]
    fn dot_segment_table() {
        let cases = [
            ("a/b.css", false),
            (".git/config", true),
            ("a/.env", true),
            ("a..b/c", false),
            ("", false),
        ];
        for (path, expected) in cases {
            assert_eq!(has_dot_segment(Path::new(path)), expected, "path {path:?}");
        }
    }

    #[test]
    fn last_modified_clamps_table() {
        let stamp = |seconds: i64| FileStamp {
            len: 0,
            mtime: (seconds, 0),
            ctime: (0, 0),
            ino: 0,
            dev: 0,
        };
        let cases = [
            (-5, 0),
            (0, 0),
            (784_111_777, 784_111_777),
            (i64::MAX, 253_402_300_799),
        ];
        for (seconds, expected) in cases {
            let actual = stamp(seconds).last_modified();
            assert_eq!(
                actual,
                UNIX_EPOCH + Duration::from_secs(expected),
                "mtime {seconds}"
            );
        }
    }

    #[test]
    fn gzip_variant_skips_incompressible() {
        let level = CompressionLvl::default();
        let random: Vec<u8> = (0u32..64)
            .map(|value| (value.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(gzip_variant(&random, level, "\"x\"").is_none());
        let text = b"body { color: red; }\n".repeat(50);
        let gzip = gzip_variant(&text, level, "\"x\"");
        assert_eq!(gzip.map(|gzip| gzip.etag), Some(String::from("\"x-gz\"")));
    }
}
