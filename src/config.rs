//! The TOML configuration: its schema, defaults, and the checks that turn a file into a
//! [`Config`] or a [`ConfigError`] naming the file, line and key at fault.
//!
//! Relative paths in the file are resolved against the directory that contains it, so a config
//! and its certificate can move together.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

/// A configuration that passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub timeouts: TimeoutSettings,
    pub redirect: Option<RedirectSettings>,
    pub https: Option<HttpsSettings>,
    pub http: Option<HttpSettings>,
    pub statics: Vec<StaticSettings>,
    pub static_cache: StaticCacheSettings,
    pub upstream: Option<UpstreamSettings>,
    /// Custom bodies for error statuses, read at start-up: status → HTML bytes.
    pub error_pages: Vec<(u16, Vec<u8>)>,
}

/// Largest `server.workers`. Each worker is a thread with its own ring, listeners and caches;
/// far more than the machine has cores only costs memory and descriptors.
pub const MAX_WORKERS: usize = 1024;

/// Largest `server.receive_buffers`: io_uring numbers a pool's buffers with 16 bits and needs
/// a power of two, so 32768 is the largest pool it can hold.
pub const MAX_RECEIVE_BUFFERS: u32 = 32_768;

/// `[server]`: process-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Worker threads, each with its own ring and listeners. 0 means one per online CPU.
    pub workers: usize,
    /// Access log destination: `"stdout"`, `"off"`, or a file path (appended to).
    pub access_log: String,
    /// How long in-flight requests may run after SIGTERM or SIGINT before the process exits.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// The `tracing` filter for error and diagnostic logs on stderr, in `RUST_LOG` syntax.
    /// `RUST_LOG`, when set, takes precedence.
    pub log_level: String,
    /// Open client connections per worker. At the limit the longest idle keep-alive connection is
    /// closed to make room; with none idle, new connections are closed at once.
    pub max_connections: usize,
    /// Buffers in each worker's receive pool, rounded up to a power of two. Receives take one
    /// only when data arrives, and when all are taken, a receive uses a buffer of its own. Wider
    /// than the pool's 16-bit count, so that a value past the range gets the range error.
    pub receive_buffers: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            workers: 0,
            access_log: "stdout".to_owned(),
            shutdown_grace: Duration::from_secs(10),
            log_level: "info".to_owned(),
            max_connections: 10_000,
            receive_buffers: 512,
        }
    }
}

/// `[limits]`: sizes past which a request is rejected with a status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Request line plus headers, in bytes. Above it: 431.
    pub max_head_bytes: usize,
    /// Request target, in bytes. Above it: 414.
    pub max_uri_bytes: usize,
    /// Header fields per request. Above it: 431.
    pub max_headers: usize,
    /// Request body, in bytes, after chunked decoding. Above it: 413 (nginx's
    /// `client_max_body_size`, whose default is 1 MiB; ours is 10 MiB).
    pub max_body_bytes: u64,
    /// Upstream response body, in bytes, held in memory and then in a temporary file (nginx's
    /// `proxy_max_temp_file_size` has the same 1 GiB default). Above it the client gets 502.
    pub max_response_bytes: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_head_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            max_headers: 100,
            max_body_bytes: 10 * 1024 * 1024,
            max_response_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// `[timeouts]`: how long a client may take at each stage before its connection is closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSettings {
    /// From accept to the end of the TLS handshake.
    #[serde(deserialize_with = "timeout")]
    pub handshake: Duration,
    /// From the first byte of a request to the end of its head, however the bytes trickle in.
    #[serde(deserialize_with = "timeout")]
    pub request_head: Duration,
    /// Between two reads of a request body.
    #[serde(deserialize_with = "timeout")]
    pub body_read: Duration,
    /// From the end of the head to the end of the body, so a body sent a byte at a time cannot
    /// hold a connection for ever.
    #[serde(deserialize_with = "timeout")]
    pub request_body: Duration,
    /// An idle keep-alive connection waiting for its next request.
    #[serde(deserialize_with = "timeout")]
    pub keepalive: Duration,
    /// One write to a client that stopped reading.
    #[serde(deserialize_with = "timeout")]
    pub send: Duration,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        TimeoutSettings {
            handshake: Duration::from_secs(10),
            request_head: Duration::from_secs(30),
            body_read: Duration::from_secs(30),
            request_body: Duration::from_secs(300),
            keepalive: Duration::from_secs(75),
            send: Duration::from_secs(30),
        }
    }
}

/// `[redirect]`: listeners that send a 301 to the HTTPS site for every request.
#[derive(Debug, Clone)]
pub struct RedirectSettings {
    pub listen: Vec<SocketAddr>,
}

/// `[https]`: TLS listeners.
#[derive(Debug, Clone)]
pub struct HttpsSettings {
    pub listen: Vec<SocketAddr>,
    /// PEM file with the certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub private_key: PathBuf,
    /// Host names of this site. The first is the canonical one for redirects.
    pub server_names: Vec<String>,
    /// How long after its full handshake a TLS session may be resumed, by ticket or by session
    /// ID. A resumed connection skips the certificate, so this also bounds how long a session
    /// made before a reload stays usable.
    pub session_timeout: Duration,
}

/// `[http]`: plain listeners serving the same routes as `[https]`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: Vec<SocketAddr>,
}

/// One `[[static]]` table: a URL prefix served from a directory.
#[derive(Debug, Clone)]
pub struct StaticSettings {
    /// URL prefix, starting and ending with `/`.
    pub prefix: String,
    pub dir: PathBuf,
    /// File served for a directory request.
    pub index: String,
    /// `Cache-Control: public, max-age=N` in seconds, when set.
    pub max_age: Option<u32>,
    /// Serve paths with a segment starting with `.`. Default false.
    pub dotfiles: bool,
    /// Follow symlinks that resolve outside `dir`. Default false.
    pub symlinks_outside: bool,
}

/// `[static_cache]`: the per-worker cache of file contents and their compressed variants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticCacheSettings {
    /// Byte budget of each worker's cache; least recently used entries leave first.
    pub max_bytes: usize,
    /// Files larger than this many bytes are streamed from disk instead of held in memory.
    pub max_file_bytes: u64,
    /// libdeflater compression level, 1 to 12.
    pub gzip_level: i32,
    /// Files smaller than this many bytes are not compressed.
    pub gzip_min_bytes: u64,
    /// How often a cached file is checked against the disk.
    #[serde(deserialize_with = "duration")]
    pub revalidate: Duration,
    /// Large files each worker keeps open for streaming; the least recently used is closed first.
    pub max_open_files: usize,
}

impl Default for StaticCacheSettings {
    fn default() -> Self {
        StaticCacheSettings {
            max_bytes: 256 * 1024 * 1024,
            max_file_bytes: 8 * 1024 * 1024,
            gzip_level: 9,
            gzip_min_bytes: 256,
            revalidate: Duration::from_secs(1),
            max_open_files: 64,
        }
    }
}

/// `[upstream]`: the Gunicorn servers every non-static request goes to.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Servers in the order given; at least one.
    pub servers: Vec<UpstreamAddress>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// Maximum time between two reads of the upstream response, as nginx's `proxy_read_timeout`.
    /// Past it: 504, or a closed connection once a streamed response began.
    pub read_timeout: Duration,
    /// Time allowed to write the request to the upstream.
    pub send_timeout: Duration,
    /// Idle keep-alive connections each worker keeps per server. 0 opens a connection per request.
    pub keepalive: usize,
    /// How long an idle pooled connection may wait for reuse.
    pub keepalive_timeout: Duration,
    /// Failed connection attempts in a row after which a server is skipped for `fail_timeout`.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    /// Request and response bodies up to this many bytes stay in memory; larger ones go to a
    /// temporary file in `temp_dir`.
    pub buffer_bytes: usize,
    pub temp_dir: PathBuf,
    /// Peers whose X-Forwarded-For is extended rather than replaced.
    pub trusted_proxies: Vec<IpNetwork>,
    /// How long an upgraded connection (WebSocket) may stay silent in both directions.
    pub upgrade_idle_timeout: Duration,
}

/// Address of an upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl fmt::Display for UpstreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            UpstreamAddress::Tcp(address) => write!(f, "{address}"),
        }
    }
}

/// Balancing method among several upstream servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    /// The server with the fewest requests in flight from this worker.
    LeastConnections,
}

/// An IP network in CIDR notation; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNetwork {
    /// Parses `"10.0.0.0/8"`, `"::1"` or `"fd00::/8"`. The prefix length is plain decimal
    /// digits. An IPv4-mapped network (`"::ffff:10.0.0.0/104"`) becomes the IPv4 network it
    /// maps, because peers are compared in their IPv4 form. A mapped network shorter than /96
    /// is invalid.
    pub fn parse(text: &str) -> Option<IpNetwork> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<std::net::IpAddr>().ok()?, Some(parse_prefix_length(prefix)?)),
            None => (text.parse::<std::net::IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        match address.to_canonical() {
            // A shorter prefix would mix IPv4-mapped and other IPv6 addresses and match no peer.
            mapped @ std::net::IpAddr::V4(_) if address.is_ipv6() => prefix.checked_sub(96).map(|prefix| IpNetwork { address: mapped, prefix }),
            _ => Some(IpNetwork { address, prefix }),
        }
    }

    /// Returns the network's first address: its address with every bit past the prefix cleared.
    pub fn first_address(&self) -> std::net::IpAddr {
        match self.address {
            std::net::IpAddr::V4(address) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                std::net::IpAddr::V4((u32::from(address) & mask).into())
            }
            std::net::IpAddr::V6(address) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                std::net::IpAddr::V6((u128::from(address) & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.address.is_ipv4() && IpNetwork { address: ip, prefix: self.prefix }.first_address() == self.first_address()
    }
}

/// Returns the reason an IPv6 listen address cannot be used as written, or `None` when it can.
fn unbindable_ipv6_reason(address: &std::net::SocketAddrV6) -> Option<String> {
    // IPv6 listeners are IPv6-only (IPV6_V6ONLY), and Linux refuses to bind such a socket to an
    // IPv4-mapped address (EINVAL), so the entry would fail at start.
    if let Some(v4) = address.ip().to_ipv4_mapped() {
        return Some(format!("an IPv4-mapped address cannot be listened on; write \"{v4}:{}\"", address.port()));
    }
    // Linux ignores a zone index on other addresses, so "[::1%1]:443" would bind the same socket
    // address as "[::1]:443" and pass the duplicate check.
    if address.scope_id() != 0 && !address.ip().is_unicast_link_local() {
        return Some(format!("a zone index (%{}) applies only to link-local addresses (fe80::/10); remove it", address.scope_id()));
    }
    // Linux rejects binding a link-local address without its interface (EINVAL).
    if address.scope_id() == 0 && address.ip().is_unicast_link_local() {
        return Some(format!(
            "a link-local address needs the number of its interface as a zone index, as in \"[{}%2]:{}\" (`ip link` lists the numbers)",
            address.ip(),
            address.port()
        ));
    }
    None
}

/// Parses a CIDR prefix length written as decimal digits without a sign or a leading zero, so
/// that `"/08"` or `"/+8"` are not taken for `/8`.
fn parse_prefix_length(text: &str) -> Option<u8> {
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    text.parse().ok()
}

/// Rejection of a configuration file.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line of the offending key, when known.
    pub line: Option<usize>,
    /// Dotted key path such as `https.certificate`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

// The raw file as serde parses it. Fields that need checks after parsing keep their span so the
// error can name the line.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    limits: LimitSettings,
    #[serde(default)]
    timeouts: TimeoutSettings,
    redirect: Option<RawListen>,
    https: Option<RawHttps>,
    http: Option<RawListen>,
    #[serde(default, rename = "static")]
    statics: Vec<RawStatic>,
    #[serde(default)]
    static_cache: StaticCacheSettings,
    upstream: Option<RawUpstream>,
    #[serde(default)]
    error_pages: std::collections::BTreeMap<String, Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    listen: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttps {
    listen: Spanned<Vec<Spanned<String>>>,
    certificate: Spanned<PathBuf>,
    private_key: Spanned<PathBuf>,
    server_names: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "default_session_timeout", deserialize_with = "timeout")]
    session_timeout: Duration,
}

/// H2O's default. nginx's `ssl_session_timeout` defaults to 5 minutes, which makes a browser
/// returning after a short break repeat the full handshake.
fn default_session_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// Longest `https.session_timeout`: the upper limit RFC 5246 (appendix F.1.4) suggests for
/// session IDs, since a resumed session reuses keys from its first handshake.
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    prefix: Spanned<String>,
    dir: Spanned<PathBuf>,
    #[serde(default = "default_index")]
    index: String,
    max_age: Option<u32>,
    #[serde(default)]
    dotfiles: bool,
    #[serde(default)]
    symlinks_outside: bool,
}

fn default_index() -> String {
    "index.html".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    unix: Option<Spanned<PathBuf>>,
    servers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default = "default_balance")]
    balance: Balance,
    #[serde(default = "default_connect_timeout", deserialize_with = "timeout")]
    connect_timeout: Duration,
    #[serde(default = "default_read_timeout", deserialize_with = "timeout")]
    read_timeout: Duration,
    #[serde(default = "default_send_timeout", deserialize_with = "timeout")]
    send_timeout: Duration,
    #[serde(default = "default_keepalive")]
    keepalive: usize,
    #[serde(default = "default_keepalive_timeout", deserialize_with = "duration")]
    keepalive_timeout: Duration,
    #[serde(default = "default_max_fails")]
    max_fails: u32,
    #[serde(default = "default_fail_timeout", deserialize_with = "duration")]
    fail_timeout: Duration,
    #[serde(default = "default_buffer_bytes")]
    buffer_bytes: usize,
    temp_dir: Option<PathBuf>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    #[serde(default = "default_upgrade_idle_timeout", deserialize_with = "timeout")]
    upgrade_idle_timeout: Duration,
}

fn default_balance() -> Balance {
    Balance::RoundRobin
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_send_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_keepalive() -> usize {
    16
}

/// Gunicorn's own default keep-alive is 2 s: idle connections leave the pool before Gunicorn
/// closes them, so a reused connection is rarely found closed.
fn default_keepalive_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_max_fails() -> u32 {
    1
}

fn default_fail_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_buffer_bytes() -> usize {
    1024 * 1024
}

fn default_upgrade_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

/// Largest value of any duration setting. Deadlines are the current time plus a setting, and a
/// value near the largest `Duration` would overflow that sum. No timeout or interval here needs
/// more than days.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses a duration written as `"500ms"`, `"10s"`, `"2m"`, `"1h"` or a whole number of
/// seconds, up to [`MAX_DURATION`].
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a duration such as \"10s\", \"500ms\", \"2m\" or \"1h\", or a whole number of seconds")
        }

        fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
            within_limit(Duration::from_secs(seconds), &seconds.to_string())
        }

        fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
            match u64::try_from(seconds) {
                Ok(seconds) => self.visit_u64(seconds),
                Err(_) => Err(E::custom(format!("invalid duration {seconds}: a duration cannot be negative"))),
            }
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            let shortened = shorten(text);
            match parse_duration(text) {
                Some(value) => within_limit(value, &format!("{shortened:?}")),
                None if leading_number_overflows(text) => {
                    Err(E::custom(format!("invalid duration {shortened:?}: the largest allowed is \"720h\" (30 days)")))
                }
                None => Err(E::custom(format!(
                    "invalid duration {shortened:?}: expected a number followed by ms, s, m or h, such as \"10s\""
                ))),
            }
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}

/// Maximum length in bytes of one file name on Linux file systems (NAME_MAX).
const MAX_FILE_NAME_BYTES: usize = 255;

/// Maximum number of symlinks [`final_link_target`] follows, as many as Linux does (MAXSYMLINKS).
const MAX_SYMLINK_HOPS: usize = 40;

/// Returns the path that `path` finally names once its symlinks are followed, also when the last
/// one points to a file that does not exist yet, or `None` for a loop of symlinks. Symlinks in
/// the directories on the way are left to the file system.
fn final_link_target(path: &Path) -> Option<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        let Ok(target) = std::fs::read_link(&current) else { return Some(current) };
        // A relative target is relative to the link's directory, and `join` keeps an absolute one.
        current = match current.parent() {
            Some(directory) => directory.join(target),
            None => target,
        };
    }
    None
}

/// Returns `prefix` as the static server matches it (percent-decoded, with `.`, `..` and
/// repeated `/` resolved, without the outer slashes), or why no request path can match it.
fn normal_prefix(prefix: &str) -> Result<Vec<u8>, &'static str> {
    use crate::files::path::{PathError, normalize_request_path};

    // In a request, `?` starts the query and `#` the fragment, so neither reaches the path.
    if prefix.contains(['?', '#']) {
        return Err("a '?' or '#' in a request ends its path (write them as %3F and %23)");
    }

    let normalized = normalize_request_path(prefix).map_err(|err| match err {
        PathError::InvalidEscape => "a '%' is not followed by two hex digits (write a '%' itself as %25)",
        PathError::NulByte => "it contains a NUL byte",
        PathError::Backslash => "it contains a backslash, which a request path cannot contain",
        PathError::EncodedSlash => "it contains %2F, which a request path cannot contain",
        PathError::AboveRoot => "its '..' segments climb above '/'",
        PathError::Dotfile => "it has a segment starting with '.'",
    })?;
    Ok(normalized.as_bytes().to_vec())
}

/// Returns whether `text` starts with digits that do not fit a `u64`.
fn leading_number_overflows(text: &str) -> bool {
    let trimmed = text.trim();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).map_or(trimmed, |end| trimmed.get(..end).unwrap_or(trimmed));
    !digits.is_empty() && digits.parse::<u64>().is_err()
}

/// Cuts a value quoted in an error message to a readable length.
fn shorten(text: &str) -> String {
    const SHOWN_CHARS: usize = 40;
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}...", text.get(..end).unwrap_or(text)),
        None => text.to_owned(),
    }
}

fn within_limit<E: de::Error>(value: Duration, written: &str) -> Result<Duration, E> {
    if value > MAX_DURATION {
        return Err(E::custom(format!("invalid duration {written}: the largest allowed is \"720h\" (30 days)")));
    }
    Ok(value)
}

/// Checks `server.log_level` and returns it in the form the `tracing` filter reads safely:
/// directives without spaces around them or around `=`. The filter takes a bare word that is not
/// a level, such as "warning", or a level with a space, such as "warn ", as a target name. That
/// silences every other line, errors included, so every directive must end in a level.
fn normalize_log_level(filter: &str) -> Result<String, String> {
    const LEVELS: [&str; 12] = ["trace", "debug", "info", "warn", "error", "off", "0", "1", "2", "3", "4", "5"];
    let hint = "use a level (trace, debug, info, warn, error, off) or target=level directives such as \"ringfront=debug,info\"";
    let mut directives = Vec::new();
    for directive in filter.split(',').map(str::trim).filter(|directive| !directive.is_empty()) {
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None => (None, directive),
        };
        if !LEVELS.iter().any(|known| known.eq_ignore_ascii_case(level)) || target.is_some_and(str::is_empty) {
            return Err(format!("{directive:?} is not a level or target=level: {hint}"));
        }
        directives.push(match target {
            Some(target) => format!("{target}={level}"),
            None => level.to_owned(),
        });
    }
    if directives.is_empty() {
        return Err(format!("empty filter: {hint}"));
    }
    let normalized = directives.join(",");
    match tracing_subscriber::EnvFilter::try_new(&normalized) {
        Ok(_) => Ok(normalized),
        Err(err) => Err(format!("invalid filter {:?} ({err}): {hint}", shorten(filter))),
    }
}

/// Parses a duration as [`duration`] does and rejects zero, for the timeouts: a zero timeout
/// would end every read, write or wait at once.
fn timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value = duration(deserializer)?;
    if value.is_zero() {
        return Err(de::Error::custom("invalid timeout 0: use a duration above zero, such as \"10s\""));
    }
    Ok(value)
}

/// Writes `duration` in the largest unit of [`parse_duration`] that shows it exactly.
fn duration_text(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        _ if millis.is_multiple_of(3_600_000) => format!("{}h", millis / 3_600_000),
        _ if millis.is_multiple_of(60_000) => format!("{}m", millis / 60_000),
        _ if millis.is_multiple_of(1000) => format!("{}s", millis / 1000),
        _ => format!("{millis}ms"),
    }
}

/// Parses `"<digits><unit>"` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(digits_end);
    let value: u64 = digits.parse().ok()?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.checked_mul(60)?),
        "h" => Duration::from_secs(value.checked_mul(3600)?),
        _ => return None,
    };
    Some(duration)
}

impl Config {
    /// Reads and checks the configuration file at `path`.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the file, and the line and key when the fault is in one
    /// place: a syntax error, an unknown key, a value of the wrong type, an address that does not
    /// parse, a file that cannot be read, or settings that contradict each other.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read the configuration file: {err}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, path, &base)
    }

    /// Reads and checks the configuration file at `path` again, for a reload. The file must be a
    /// regular file of at most [`MAX_CONFIG_BYTES`], unlike at start, where [`Config::load`] may
    /// read from a pipe. So a path that now leads to a FIFO or a device cannot hang the thread
    /// that handles signals.
    ///
    /// # Errors
    /// As [`Config::load`], and when the file is not a regular file or is too large.
    pub fn reload(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let unreadable = |message: String| ConfigError { file: path.to_owned(), line: None, key: None, message };
        // O_NONBLOCK makes opening a FIFO return at once, so that it is rejected below.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|err| unreadable(format!("cannot read the configuration file: {err}")))?;
        let metadata = file.metadata().map_err(|err| unreadable(format!("cannot read the configuration file: {err}")))?;
        if !metadata.is_file() {
            return Err(unreadable("the configuration file is not a regular file, and a reload reads only regular files".to_owned()));
        }
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|err| unreadable(format!("cannot read the configuration file: {err}")))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(unreadable(format!("the configuration file is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, path, &base)
    }

    /// Checks configuration text as if it had been read from `file`, resolving relative paths
    /// against `base`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let checker = Checker { text, file, base };
        let tree: std::collections::BTreeMap<Spanned<String>, toml::Value> = toml::from_str(text).map_err(|err| checker.syntax_error(&err))?;
        checker.table_kinds(&tree)?;
        let raw: RawConfig = toml::from_str(text).map_err(|err| checker.syntax_error(&err))?;
        checker.build(raw)
    }
}

/// The top-level tables written once, as `[name]`.
const SINGLE_TABLES: [&str; 9] = ["server", "limits", "timeouts", "redirect", "https", "http", "static_cache", "upstream", "error_pages"];

/// The top-level tables written once per entry, as `[[name]]`.
const LISTS_OF_TABLES: [&str; 1] = ["static"];

/// Rewrites the Rust type names that serde's messages end with (`expected u32`) as the values an
/// operator may write, and its other words for types (map, sequence, floating point) as TOML's.
fn plain_type_names(message: &str) -> String {
    // A value of the wrong type gets the kind of value to write, and an out-of-range one the
    // type's range, which the setting's own check may narrow further.
    const NAMES: [(&str, &str, &str); 10] = [
        ("expected a sequence", "expected a list", "expected a list"),
        ("expected a map", "expected a table", "expected a table"),
        ("expected path string", "expected a path in quotes", "expected a path in quotes"),
        ("expected usize", "expected a whole number", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number", "expected a whole number from 0 to 4294967295"),
        ("expected u16", "expected a whole number", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number", "expected a whole number from 0 to 255"),
        ("expected i32", "expected a whole number", "expected a whole number from -2147483648 to 2147483647"),
        ("expected i64", "expected a whole number", "expected a whole number from -9223372036854775808 to 9223372036854775807"),
    ];
    // toml reads an integer beyond i64 as i128, which no setting takes, and reports that as a
    // wrong type.
    if let Some(number) = message.strip_prefix("invalid type: integer `").and_then(|rest| rest.split_once("` as i128")).map(|(number, _)| number) {
        return format!("invalid value: integer `{number}` is out of range");
    }
    let mut plain = message
        .replace("floating point", "decimal number")
        .replace("invalid type: map", "invalid type: table")
        .replace("invalid type: sequence", "invalid type: list")
        .replace("unknown variant", "unknown value")
        // toml's message for a setting that takes one of several names.
        .replace("wanted string or table", "expected one of the setting's names, in quotes");
    if let Some(start) = plain.find("expected struct ") {
        plain.replace_range(start.., "expected a table");
    }
    let wrong_type = plain.starts_with("invalid type:");
    for (rust, wrong_type_text, out_of_range_text) in NAMES {
        if let Some(start) = plain.strip_suffix(rust).map(str::len) {
            plain.replace_range(start.., if wrong_type { wrong_type_text } else { out_of_range_text });
        }
    }
    plain
}

/// Largest configuration file a reload reads. A real one is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Largest custom error page, in bytes. Each worker's responses copy it, and a page this large
/// is already far more than an error needs.
const MAX_ERROR_PAGE_BYTES: u64 = 1024 * 1024;

struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
    base: &'a Path,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes().get(..end).map_or(0, |before| before.iter().filter(|&&b| b == b'\n').count()) + 1
    }

    fn syntax_error(&self, err: &toml::de::Error) -> ConfigError {
        let line = err.span().map(|span| self.line_of(span.start));
        ConfigError {
            file: self.file.to_owned(),
            line,
            key: err.span().and_then(|span| self.key_at(span.start)),
            message: plain_type_names(err.message().trim()),
        }
    }

    /// Checks that each top-level table has the kind its brackets give it. serde's structs also
    /// accept a list and fill their fields by position, so `server = [3]` would set `workers`,
    /// and a header with the wrong brackets gets a message about a value inside it.
    fn table_kinds(&self, tree: &std::collections::BTreeMap<Spanned<String>, toml::Value>) -> Result<(), ConfigError> {
        for (name, value) in tree {
            let (span, name) = (name.span(), name.get_ref());
            let message = if SINGLE_TABLES.contains(&name.as_str()) && !value.is_table() {
                format!("{name} is one table: write [{name}] with its settings under it")
            } else if LISTS_OF_TABLES.contains(&name.as_str()) && !value.as_array().is_some_and(|entries| entries.iter().all(toml::Value::is_table)) {
                format!("{name} is a list of tables: write [[{name}]] for each one")
            } else {
                continue;
            };
            return Err(self.error(span, name, message));
        }
        Ok(())
    }

    /// Returns the dotted key written on the line that contains `offset`, such as
    /// `timeouts.keepalive` or `static[1].dir`. `None` when the line has no key, as inside a
    /// value that spans lines.
    fn key_at(&self, offset: usize) -> Option<String> {
        let line_number = self.line_of(offset);
        self.keys_by_line().find(|(line, _)| *line == line_number).map(|(_, key)| key)
    }

    /// Returns the line where `dotted` is set, for the errors found after parsing.
    fn line_of_key(&self, dotted: &str) -> Option<usize> {
        self.keys_by_line().find(|(_, key)| key == dotted).map(|(line, _)| line)
    }

    /// Lists the lines that set a key, with the dotted key each sets: the line's `key =` under
    /// the table header above it, with the index of an array table. A header line gives its
    /// table's name. Lines inside multi-line strings are passed over. This reads the text, not
    /// the TOML tree, so a key set inside a multi-line inline table or array is not found.
    fn keys_by_line(&self) -> impl Iterator<Item = (usize, String)> + '_ {
        let mut table = String::new();
        let mut array_counts: Vec<(String, usize)> = Vec::new();
        // The closing delimiter of the multi-line string value being passed over.
        let mut open_string: Option<&'static str> = None;
        self.text.lines().enumerate().filter_map(move |(index, line)| {
            let line = line.trim();
            if let Some(delimiter) = open_string {
                if line.contains(delimiter) {
                    open_string = None;
                }
                return None;
            }
            // A comment may look like the start of a multi-line string.
            if line.starts_with('#') {
                return None;
            }
            if let Some((_, value)) = line.split_once('=') {
                let value = value.trim_start();
                for delimiter in ["\"\"\"", "'''"] {
                    if value.strip_prefix(delimiter).is_some_and(|rest| !rest.contains(delimiter)) {
                        open_string = Some(delimiter);
                    }
                }
            }
            if let Some(name) = line.strip_prefix("[[").and_then(|rest| rest.split_once("]]")).map(|(name, _)| name.trim()) {
                let position = match array_counts.iter_mut().find(|(seen, _)| seen == name) {
                    Some((_, count)) => {
                        *count += 1;
                        *count - 1
                    }
                    None => {
                        array_counts.push((name.to_owned(), 1));
                        0
                    }
                };
                table = format!("{name}[{position}]");
                return Some((index + 1, table.clone()));
            }
            if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.split_once(']')).map(|(name, _)| name.trim()) {
                table = name.to_owned();
                return Some((index + 1, table.clone()));
            }
            let (key, _) = line.split_once('=')?;
            let key = key.trim();
            let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !bare {
                return None;
            }
            let dotted = if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") };
            Some((index + 1, dotted))
        })
    }

    fn error(&self, span: std::ops::Range<usize>, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.line_of(span.start)),
            key: Some(key.to_owned()),
            message,
        }
    }

    /// Builds an error for a fault found after parsing, with the line where `key` is set when
    /// the text sets it.
    fn error_at_key(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.line_of_key(key),
            key: Some(key.to_owned()),
            message,
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    fn listen(&self, raw: &RawListen, table: &str) -> Result<Vec<SocketAddr>, ConfigError> {
        self.addresses(&raw.listen, &format!("{table}.listen"))
    }

    fn addresses(
        &self,
        list: &Spanned<Vec<Spanned<String>>>,
        key: &str,
    ) -> Result<Vec<SocketAddr>, ConfigError> {
        if list.get_ref().is_empty() {
            return Err(self.error(list.span(), key, "must list at least one address".to_owned()));
        }
        list.get_ref()
            .iter()
            .map(|entry| {
                let address = entry.get_ref().parse::<SocketAddr>().map_err(|_| {
                    self.error(
                        entry.span(),
                        key,
                        format!(
                            "invalid listen address {:?}: expected IP:PORT such as \"0.0.0.0:443\" or \"[::]:443\"",
                            entry.get_ref()
                        ),
                    )
                })?;
                let reason = match address {
                    _ if address.port() == 0 => {
                        // Each worker binds its own socket, so port 0 would give each worker
                        // a different random port, and redirects would name port 0.
                        Some("port 0 is not allowed: give the port to listen on".to_owned())
                    }
                    // std reads "0443" as 443, while some tools read a leading zero as octal.
                    _ if entry.get_ref().rsplit_once(':').is_some_and(|(_, port)| port.starts_with('0')) => {
                        Some(format!("write the port without leading zeros, as \"{address}\""))
                    }
                    _ if address.ip().is_multicast() => Some("a multicast address cannot take TCP connections".to_owned()),
                    SocketAddr::V4(v4) if v4.ip().is_broadcast() => Some("the broadcast address cannot take TCP connections".to_owned()),
                    SocketAddr::V6(v6) => unbindable_ipv6_reason(&v6),
                    SocketAddr::V4(_) => None,
                };
                if let Some(reason) = reason {
                    return Err(self.error(entry.span(), key, format!("invalid listen address {:?}: {reason}", entry.get_ref())));
                }
                Ok(address)
            })
            .collect()
    }

    fn readable_file(&self, raw: &Spanned<PathBuf>, key: &str) -> Result<PathBuf, ConfigError> {
        let path = self.resolve(raw.get_ref());
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(path),
            Ok(_) => Err(self.error(raw.span(), key, format!("{} is not a regular file", path.display()))),
            Err(err) => Err(self.error(raw.span(), key, format!("cannot read {}: {err}", path.display()))),
        }
    }

    fn build(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        self.check_ranges(&raw)?;

        let redirect = match &raw.redirect {
            Some(table) => Some(RedirectSettings { listen: self.listen(table, "redirect")? }),
            None => None,
        };
        let http = match &raw.http {
            Some(table) => Some(HttpSettings { listen: self.listen(table, "http")? }),
            None => None,
        };
        let https = match &raw.https {
            Some(table) => Some(self.https(table)?),
            None => None,
        };
        if redirect.is_some() && https.is_none() {
            return Err(self.error_at_key(
                "redirect",
                "a redirect listener needs an [https] table to send clients to".to_owned(),
            ));
        }
        if redirect.is_none() && https.is_none() && http.is_none() {
            return Err(self.error_at_key(
                "listen",
                "no listener is configured: add [https], [http] or [redirect] with a listen list".to_owned(),
            ));
        }
        self.check_duplicate_addresses(&[
            ("redirect.listen", redirect.as_ref().map(|r| &r.listen)),
            ("https.listen", https.as_ref().map(|h| &h.listen)),
            ("http.listen", http.as_ref().map(|h| &h.listen)),
        ])?;

        let mut statics = Vec::with_capacity(raw.statics.len());
        for (index, table) in raw.statics.iter().enumerate() {
            statics.push(self.static_route(table, index, &statics)?);
        }
        let upstream = match &raw.upstream {
            Some(table) => Some(self.upstream(table)?),
            None => None,
        };
        let error_pages = self.error_pages(&raw.error_pages)?;
        let mut server = raw.server;
        server.access_log = self.access_log(&server.access_log)?;
        server.log_level = normalize_log_level(&server.log_level).map_err(|message| self.error_at_key("server.log_level", message))?;

        Ok(Config {
            server,
            limits: raw.limits,
            timeouts: raw.timeouts,
            redirect,
            https,
            http,
            statics,
            static_cache: raw.static_cache,
            upstream,
            error_pages,
        })
    }

    fn upstream(&self, table: &RawUpstream) -> Result<UpstreamSettings, ConfigError> {
        let mut servers = Vec::new();
        if let Some(unix) = &table.unix {
            servers.push(UpstreamAddress::Unix(self.resolve(unix.get_ref())));
        }
        if let Some(list) = &table.servers {
            for entry in list.get_ref() {
                servers.push(self.upstream_address(entry)?);
            }
        }
        if servers.is_empty() {
            return Err(self.error_at_key(
                "upstream",
                "no upstream server: set unix = \"/run/gunicorn.sock\" or servers = [\"unix:/run/gunicorn.sock\", \"127.0.0.1:8000\"]".to_owned(),
            ));
        }
        let mut trusted_proxies = Vec::new();
        for entry in &table.trusted_proxies {
            let network = IpNetwork::parse(entry.get_ref()).ok_or_else(|| {
                self.error(
                    entry.span(),
                    "upstream.trusted_proxies",
                    format!("invalid address {:?}: expected an IP address or a network such as \"10.0.0.0/8\"", entry.get_ref()),
                )
            })?;
            // nginx only warns about such an entry. A single proxy's address written with a
            // network's prefix would trust the whole network, so it is an error here.
            if network.first_address() != network.address {
                return Err(self.error(
                    entry.span(),
                    "upstream.trusted_proxies",
                    format!(
                        "invalid network {:?}: the address has bits set after the /{} prefix; write \"{}/{}\" for the network, or the address alone for one proxy",
                        entry.get_ref(),
                        network.prefix,
                        network.first_address(),
                        network.prefix
                    ),
                ));
            }
            trusted_proxies.push(network);
        }
        if table.buffer_bytes == 0 {
            return Err(self.error_at_key("upstream.buffer_bytes", "must be at least 1".to_owned()));
        }
        Ok(UpstreamSettings {
            servers,
            balance: table.balance,
            connect_timeout: table.connect_timeout,
            read_timeout: table.read_timeout,
            send_timeout: table.send_timeout,
            keepalive: table.keepalive,
            keepalive_timeout: table.keepalive_timeout,
            max_fails: table.max_fails.max(1),
            fail_timeout: table.fail_timeout,
            buffer_bytes: table.buffer_bytes,
            temp_dir: self.temp_dir(table.temp_dir.as_deref())?,
            trusted_proxies,
            upgrade_idle_timeout: table.upgrade_idle_timeout,
        })
    }

    fn upstream_address(&self, entry: &Spanned<String>) -> Result<UpstreamAddress, ConfigError> {
        let text = entry.get_ref();
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(self.error(entry.span(), "upstream.servers", "empty socket path after \"unix:\"".to_owned()));
            }
            return Ok(UpstreamAddress::Unix(self.resolve(Path::new(path))));
        }
        text.parse::<SocketAddr>().map(UpstreamAddress::Tcp).map_err(|_| {
            self.error(
                entry.span(),
                "upstream.servers",
                format!("invalid server {text:?}: expected \"unix:/path/to.sock\" or IP:PORT such as \"127.0.0.1:8000\""),
            )
        })
    }

    fn error_pages(
        &self,
        table: &std::collections::BTreeMap<String, Spanned<PathBuf>>,
    ) -> Result<Vec<(u16, Vec<u8>)>, ConfigError> {
        let mut pages = Vec::with_capacity(table.len());
        for (status, path) in table {
            let key = format!("error_pages.{status}");
            let code = status.parse::<u16>().ok().filter(|code| (400..=599).contains(code)).ok_or_else(|| {
                self.error(path.span(), &key, format!("invalid status {status:?}: use a code from 400 to 599"))
            })?;
            let file = self.resolve(path.get_ref());
            match std::fs::metadata(&file) {
                Ok(meta) if meta.is_file() && meta.len() <= MAX_ERROR_PAGE_BYTES => {}
                Ok(meta) if meta.is_file() => {
                    return Err(self.error(path.span(), &key, format!("{} is larger than {MAX_ERROR_PAGE_BYTES} bytes", file.display())));
                }
                Ok(_) => return Err(self.error(path.span(), &key, format!("{} is not a regular file", file.display()))),
                Err(err) => return Err(self.error(path.span(), &key, format!("cannot read {}: {err}", file.display()))),
            }
            let body = std::fs::read(&file)
                .map_err(|err| self.error(path.span(), &key, format!("cannot read {}: {err}", file.display())))?;
            pages.push((code, body));
        }
        Ok(pages)
    }

    fn check_ranges(&self, raw: &RawConfig) -> Result<(), ConfigError> {
        let level = raw.static_cache.gzip_level;
        if !(1..=12).contains(&level) {
            return Err(self.error_at_key(
                "static_cache.gzip_level",
                format!("{level} is out of range: libdeflater levels run from 1 to 12"),
            ));
        }
        if raw.limits.max_head_bytes < 1024 {
            return Err(self.error_at_key(
                "limits.max_head_bytes",
                format!("{} is too small: use at least 1024", raw.limits.max_head_bytes),
            ));
        }
        if raw.server.max_connections == 0 {
            return Err(self.error_at_key("server.max_connections", "must be at least 1".to_owned()));
        }
        if raw.server.workers > MAX_WORKERS {
            return Err(self.error_at_key(
                "server.workers",
                format!("{} is too many: use at most {MAX_WORKERS}, or 0 for one per CPU", raw.server.workers),
            ));
        }
        if !(1..=MAX_RECEIVE_BUFFERS).contains(&raw.server.receive_buffers) {
            return Err(self.error_at_key(
                "server.receive_buffers",
                format!("{} is out of range: use 1 to {MAX_RECEIVE_BUFFERS}", raw.server.receive_buffers),
            ));
        }
        if raw.limits.max_headers == 0 {
            return Err(self.error_at_key("limits.max_headers", "must be at least 1".to_owned()));
        }
        if raw.limits.max_uri_bytes >= raw.limits.max_head_bytes {
            return Err(self.error_at_key(
                "limits.max_uri_bytes",
                format!(
                    "{} is not below limits.max_head_bytes ({}): the request line is part of the head",
                    raw.limits.max_uri_bytes, raw.limits.max_head_bytes
                ),
            ));
        }
        if raw.limits.max_uri_bytes == 0 {
            return Err(self.error_at_key("limits.max_uri_bytes", "must be at least 1".to_owned()));
        }
        // nginx reads `client_max_body_size 0` as no limit, and here 0 would reject every body,
        // so a value carried over from nginx is rejected instead of silently meaning the opposite.
        if raw.limits.max_body_bytes == 0 {
            return Err(self.error_at_key(
                "limits.max_body_bytes",
                "0 would reject every request body (nginx's 0 means no limit, which has no equivalent here): set the largest body to accept, such as 104857600 for 100 MiB".to_owned(),
            ));
        }
        Ok(())
    }

    /// Rejects an address listed twice, or a wildcard address next to another address of its
    /// family on the same port, naming the listen key of the later one.
    fn check_duplicate_addresses(&self, lists: &[(&str, Option<&Vec<SocketAddr>>)]) -> Result<(), ConfigError> {
        let mut seen: Vec<SocketAddr> = Vec::new();
        for &(key, list) in lists {
            for address in list.into_iter().flatten() {
                if seen.contains(address) {
                    return Err(self.error_at_key(key, format!("{address} is listed twice: each address may belong to one listener")));
                }
                // The kernel gives a connection to the most specific socket bound to its port, so
                // a wildcard next to a specific address of its family would split one port
                // between two listeners.
                let overlapping = seen.iter().find(|other| {
                    other.port() == address.port()
                        && other.is_ipv4() == address.is_ipv4()
                        && (other.ip().is_unspecified() || address.ip().is_unspecified())
                });
                if let Some(other) = overlapping {
                    return Err(self.error_at_key(
                        key,
                        format!("{other} and {address} overlap: a wildcard address takes every address of its family on its port, so list only one of them"),
                    ));
                }
                seen.push(*address);
            }
        }
        Ok(())
    }

    fn https(&self, table: &RawHttps) -> Result<HttpsSettings, ConfigError> {
        let listen = self.addresses(&table.listen, "https.listen")?;
        let certificate = self.readable_file(&table.certificate, "https.certificate")?;
        let private_key = self.readable_file(&table.private_key, "https.private_key")?;

        let names = table.server_names.get_ref();
        if names.is_empty() {
            return Err(self.error(
                table.server_names.span(),
                "https.server_names",
                "must list at least one host name; the first is used in redirects".to_owned(),
            ));
        }
        let mut server_names = Vec::with_capacity(names.len());
        for name in names {
            let valid = !name.get_ref().is_empty()
                && name.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(self.error(
                    name.span(),
                    "https.server_names",
                    format!("invalid host name {:?}: use letters, digits, '-' and '.' only, without a port", name.get_ref()),
                ));
            }
            server_names.push(name.get_ref().to_ascii_lowercase());
        }
        if table.session_timeout > MAX_SESSION_TIMEOUT {
            return Err(self.error_at_key(
                "https.session_timeout",
                format!("\"{}\" is too long: use at most \"24h\"", duration_text(table.session_timeout)),
            ));
        }
        Ok(HttpsSettings { listen, certificate, private_key, server_names, session_timeout: table.session_timeout })
    }

    /// Resolves the access log's path against the config file's directory, and checks what
    /// most often stops the start: a missing directory, a directory, or a FIFO, whose opening
    /// would wait for a reader. `"stdout"` and `"off"` are taken in any case.
    fn access_log(&self, destination: &str) -> Result<String, ConfigError> {
        for keyword in ["stdout", "off"] {
            if destination.eq_ignore_ascii_case(keyword) {
                return Ok(keyword.to_owned());
            }
        }

        // The process's own streams, as in containers: a pipe there has its reader already.
        // `-` is Gunicorn's spelling of stdout.
        if destination == "/dev/stdout" || destination == "-" {
            return Ok("stdout".to_owned());
        }
        if destination.eq_ignore_ascii_case("stderr") || destination == "/dev/stderr" {
            return Ok("stderr".to_owned());
        }
        if destination.starts_with("/proc/self/fd/") {
            return Ok(destination.to_owned());
        }

        if destination.is_empty() {
            return Err(self.error_at_key("server.access_log", "empty path: use a file path, \"stdout\" or \"off\"".to_owned()));
        }

        if destination.contains('\0') {
            return Err(self.error_at_key("server.access_log", "the path contains a NUL byte".to_owned()));
        }
        if destination.ends_with('/') || destination.ends_with("/.") || destination.ends_with("/..") || destination == "." || destination == ".." {
            return Err(self.error_at_key("server.access_log", format!("{destination} names a directory: name a file")));
        }
        let path = self.resolve(Path::new(destination));
        if path.is_dir() {
            return Err(self.error_at_key("server.access_log", format!("{} is a directory: name a file in it", path.display())));
        }
        if std::fs::metadata(&path).is_ok_and(|meta| std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type())) {
            return Err(self.error_at_key("server.access_log", format!("{} is a FIFO, whose opening would wait for a reader: name a regular file, or use \"stdout\"", path.display())));
        }
        // A symlink, dangling or not, is where the log is created: the checks look at what it
        // finally points to.
        let Some(target) = final_link_target(&path) else {
            return Err(self.error_at_key("server.access_log", format!("cannot write {}: its symlinks form a loop", path.display())));
        };
        // A bare file name next to a config given by a bare name has an empty parent: the
        // current directory.
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let problem = match std::fs::metadata(directory) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some(format!("{} is not a directory", directory.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(format!("the directory {} does not exist", directory.display())),
            Err(err) => Some(format!("the directory {}: {err}", directory.display())),
        };
        if let Some(problem) = problem {
            return Err(self.error_at_key("server.access_log", format!("cannot write {}: {problem}", target.display())));
        }
        if target.file_name().is_some_and(|name| name.len() > MAX_FILE_NAME_BYTES) {
            return Err(self.error_at_key(
                "server.access_log",
                format!("cannot write {}: the file name is longer than {MAX_FILE_NAME_BYTES} bytes", target.display()),
            ));
        }
        // Tested here, without leaving a file behind, so that `check` catches it: the workers
        // open the log only once they run, and then exit with no key or line to name.
        let writable = if target.exists() {
            std::fs::OpenOptions::new().append(true).open(&target).map(drop)
        } else {
            crate::server::create_unnamed_file(directory).map(drop)
        };
        if let Err(err) = writable {
            return Err(self.error_at_key("server.access_log", format!("cannot write {}: {err}", path.display())));
        }
        Ok(path.to_string_lossy().into_owned())
    }

    /// Checks `upstream.temp_dir`, or the system's temporary directory when it is unset, by
    /// creating a file there that leaves no trace. Large responses are spooled there, so a
    /// directory that cannot take files would fail only them, long after start-up.
    fn temp_dir(&self, configured: Option<&Path>) -> Result<PathBuf, ConfigError> {
        let dir = match configured {
            // An empty TMPDIR counts as unset, as mktemp(1) takes it.
            None => match std::env::var_os("TMPDIR") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir),
                _ => PathBuf::from("/tmp"),
            },
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(self.error_at_key("upstream.temp_dir", "empty path: name a directory".to_owned()));
            }
            Some(dir) => self.resolve(dir),
        };
        let origin = if configured.is_none() { " (the system's temporary directory, from TMPDIR, as upstream.temp_dir is unset)" } else { "" };
        if !dir.is_dir() {
            return Err(self.error_at_key("upstream.temp_dir", format!("{}{origin} is not a directory", dir.display())));
        }
        if let Err(err) = crate::server::create_unnamed_file(&dir) {
            return Err(self.error_at_key("upstream.temp_dir", format!("cannot create files in {}{origin}: {err}", dir.display())));
        }
        Ok(dir)
    }

    fn static_route(
        &self,
        table: &RawStatic,
        index: usize,
        earlier: &[StaticSettings],
    ) -> Result<StaticSettings, ConfigError> {
        let key = format!("static[{index}].prefix");
        let prefix = table.prefix.get_ref();
        if !prefix.starts_with('/') || !prefix.ends_with('/') {
            return Err(self.error(
                table.prefix.span(),
                &key,
                format!("invalid prefix {prefix:?}: it must start and end with '/', such as \"/static/\""),
            ));
        }
        // The static server normalizes each prefix as it does request paths, so two prefixes
        // written differently can be one, and one that does not normalize never matches.
        let normal = normal_prefix(prefix)
            .map_err(|reason| self.error(table.prefix.span(), &key, format!("prefix {prefix:?} can never match: {reason}")))?;
        if let Some(same) = earlier.iter().find(|route| normal_prefix(&route.prefix).is_ok_and(|other| other == normal)) {
            let message = if same.prefix == *prefix {
                format!("prefix {prefix:?} is configured twice")
            } else {
                format!("prefix {prefix:?} is the same as {:?} once decoded and normalized, so it is configured twice", same.prefix)
            };
            return Err(self.error(table.prefix.span(), &key, message));
        }

        let dir_key = format!("static[{index}].dir");
        if table.dir.get_ref().as_os_str().is_empty() {
            // An empty path would resolve to the config file's own directory, which often
            // contains the private key too.
            return Err(self.error(table.dir.span(), &dir_key, "empty directory: name the directory to serve".to_owned()));
        }
        let dir = self.resolve(table.dir.get_ref());
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(self.error(table.dir.span(), &dir_key, format!("{} is not a directory", dir.display()))),
            Err(err) => return Err(self.error(table.dir.span(), &dir_key, format!("cannot open {}: {err}", dir.display()))),
        }
        if table.index.is_empty() || table.index.contains('/') {
            return Err(self.error_at_key(
                &format!("static[{index}].index"),
                format!("invalid index file name {:?}: use a plain file name", table.index),
            ));
        }

        Ok(StaticSettings {
            prefix: prefix.clone(),
            dir,
            index: table.index.clone(),
            max_age: table.max_age,
            dotfiles: table.dotfiles,
            symlinks_outside: table.symlinks_outside,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"), Path::new("."))
    }

    #[test]
    fn durations_accept_units_and_integers() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("10s", Some(Duration::from_secs(10))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("10", None),
            ("s", None),
            ("-1s", None),
            ("1.5s", None),
            ("10 days", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "{text}");
        }
    }

    #[test]
    fn minimal_http_config_loads_defaults() {
        let config = parse("[http]\nlisten = [\"127.0.0.1:8080\"]\n").unwrap();
        assert_eq!(config.server.workers, 0);
        assert_eq!(config.limits.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(config.limits.max_head_bytes, 16 * 1024);
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(10));
        assert!(config.upstream.is_none());
    }

    #[test]
    fn unknown_key_names_line() {
        let err = parse("[http]\nlisten = [\"127.0.0.1:8080\"]\nlistne = 1\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("listne"), "{}", err.message);
    }

    #[test]
    fn unknown_table_is_rejected() {
        let err = parse("[http]\nlisten = [\"127.0.0.1:8080\"]\n[htps]\nlisten = []\n").unwrap_err();
        assert!(err.message.contains("htps"), "{}", err.message);
    }

    #[test]
    fn bad_address_names_key_and_line() {
        let err = parse("[http]\nlisten = [\n  \"127.0.0.1:8080\",\n  \"localhost\",\n]\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("http.listen"));
        assert_eq!(err.line, Some(4));
    }

    #[test]
    fn wildcard_listen_overlap_rejected() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let https = format!("[https]\nlisten = [\"127.0.0.1:8080\"]\ncertificate = {file:?}\nprivate_key = {file:?}\nserver_names = [\"example.org\"]\n");
        let cases = [
            format!("[http]\nlisten = [\"0.0.0.0:8080\"]\n{https}"),
            "[http]\nlisten = [\"127.0.0.1:8080\", \"0.0.0.0:8080\"]\n".to_owned(),
            "[http]\nlisten = [\"[::1]:8080\", \"[::]:8080\"]\n".to_owned(),
        ];
        for (text, key) in cases.iter().zip(["http.listen", "http.listen", "http.listen"]) {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains("overlap"), "{text}: {}", err.message);
            assert_eq!(err.key.as_deref(), Some(key), "{text}");
            assert!(err.line.is_some(), "{text}");
        }
        let separate = "[http]\nlisten = [\"0.0.0.0:8080\", \"[::]:8080\", \"127.0.0.1:8081\"]\n";
        assert_eq!(parse(separate).unwrap().http.unwrap().listen.len(), 3);
    }

    #[test]
    fn unusable_listen_addresses_rejected() {
        let cases = [
            ("127.0.0.1:0", "port 0"),
            ("[::1]:0", "port 0"),
            ("127.0.0.1:0443", "\"127.0.0.1:443\""),
            ("[::1]:00080", "\"[::1]:80\""),
            ("224.0.0.1:8081", "multicast"),
            ("[ff02::1]:8081", "multicast"),
            ("255.255.255.255:8081", "broadcast"),
            ("[fe80::1]:8081", "\"[fe80::1%2]:8081\""),
        ];
        for (address, reason) in cases {
            let err = parse(&format!("[http]\nlisten = [\"127.0.0.1:8080\", {address:?}]\n")).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("http.listen"), "{address}");
            assert_eq!(err.line, Some(2), "{address}");
            assert!(err.message.contains(reason), "{address}: {}", err.message);
        }
        let config = parse("[http]\nlisten = [\"127.0.0.1:10\", \"[::1]:8080\"]\n").unwrap();
        assert_eq!(config.http.unwrap().listen.len(), 2);
    }

    #[test]
    fn mapped_listen_address_rejected() {
        let err = parse("[http]\nlisten = [\"[::ffff:127.0.0.1]:8080\"]\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("http.listen"));
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("\"127.0.0.1:8080\""), "{}", err.message);
    }

    #[test]
    fn zone_index_only_on_link_local() {
        let err = parse("[http]\nlisten = [\"[::1%1]:8080\"]\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("http.listen"));
        assert!(err.message.contains("zone index"), "{}", err.message);
        let config = parse("[http]\nlisten = [\"[fe80::1%1]:8080\"]\n").unwrap();
        assert_eq!(config.http.map(|http| http.listen.len()), Some(1));
    }

    #[test]
    fn bad_duration_names_line() {
        let err = parse("[http]\nlisten = [\"127.0.0.1:1\"]\n[server]\nshutdown_grace = \"ten\"\n").unwrap_err();
        assert_eq!(err.line, Some(4));
        assert!(err.message.contains("invalid duration"), "{}", err.message);
    }

    #[test]
    fn missing_certificate_names_key() {
        let text = "[https]\nlisten = [\"127.0.0.1:8443\"]\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\nserver_names = [\"example.org\"]\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("https.certificate"));
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn session_timeout_bounded() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let https = |extra: &str| {
            format!("[https]\nlisten = [\"127.0.0.1:8443\"]\ncertificate = {file:?}\nprivate_key = {file:?}\nserver_names = [\"example.org\"]\n{extra}")
        };
        let session_timeout = |extra: &str| parse(&https(extra)).unwrap().https.unwrap().session_timeout;
        assert_eq!(session_timeout(""), Duration::from_secs(3600));
        assert_eq!(session_timeout("session_timeout = \"10m\"\n"), Duration::from_secs(600));
        assert_eq!(session_timeout("session_timeout = \"24h\"\n"), Duration::from_secs(24 * 3600));
        for (value, reason) in [("\"25h\"", "\"25h\" is too long"), ("86401", "\"86401s\" is too long"), ("\"1441m\"", "\"1441m\""), ("\"0s\"", "above zero")] {
            let err = parse(&https(&format!("session_timeout = {value}\n"))).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("https.session_timeout"), "{value}");
            assert_eq!(err.line, Some(6), "{value}");
            assert!(err.message.contains(reason), "{value}: {}", err.message);
        }
    }

    #[test]
    fn redirect_without_https_is_rejected() {
        let err = parse("[redirect]\nlisten = [\"127.0.0.1:8080\"]\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("redirect"));
    }

    #[test]
    fn no_listener_is_rejected() {
        let err = parse("[server]\nworkers = 1\n").unwrap_err();
        assert!(err.message.contains("no listener"), "{}", err.message);
    }

    #[test]
    fn duplicate_address_is_rejected() {
        let text = "[http]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("listed twice"), "{}", err.message);
        assert_eq!(err.key.as_deref(), Some("http.listen"));
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn static_prefix_must_be_slashed() {
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[[static]]\nprefix = \"static\"\ndir = \".\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("static[0].prefix"));
        assert_eq!(err.line, Some(4));
    }

    /// A prefix is matched in its normalized form, so any form that normalizes is accepted, one
    /// that does not is rejected with the reason, and two forms of one prefix are a duplicate.
    #[test]
    fn static_prefix_normalization() {
        let cases = [
            ("/", None),
            ("/static/", None),
            ("/a/.well-known/", None),
            ("/.../", None),
            ("/a b/", None),
            ("/a/../b/", None),
            ("/%73tatic/", None),
            ("/100%25/", None),
            ("/caf%C3%A9/", None),
            ("/../x/", Some("climb above")),
            ("/a%2Fb/", Some("%2F")),
            ("/100%/", Some("write a '%' itself as %25")),
            ("/a?b/", Some("%3F")),
            ("/a#b/", Some("%23")),
            ("/a%3Fb/", None),
        ];
        for (prefix, rejection) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[[static]]\nprefix = {prefix:?}\ndir = \".\"\n");
            let result = parse(&text);
            match rejection {
                None => assert!(result.is_ok(), "{prefix}: {:?}", result.err().map(|err| err.message)),
                Some(reason) => {
                    let err = result.expect_err(prefix);
                    assert_eq!(err.key.as_deref(), Some("static[0].prefix"), "{prefix}");
                    assert_eq!(err.line, Some(4), "{prefix}");
                    assert!(err.message.contains("can never match"), "{prefix}: {}", err.message);
                    assert!(err.message.contains(reason), "{prefix}: {}", err.message);
                }
            }
        }

        let pairs = [("/static/", "/static/"), ("/static/", "/%73tatic/"), ("/b/", "/a/../b/"), ("/", "/%2e/")];
        for (first, second) in pairs {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[[static]]\nprefix = {first:?}\ndir = \".\"\n[[static]]\nprefix = {second:?}\ndir = \".\"\n");
            let err = parse(&text).expect_err(second);
            assert_eq!(err.key.as_deref(), Some("static[1].prefix"), "{first} {second}");
            assert!(err.message.contains("configured twice"), "{first} {second}: {}", err.message);
        }
    }

    #[test]
    fn zero_body_limit_rejected() {
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[limits]\nmax_body_bytes = 0\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("limits.max_body_bytes"));
        assert_eq!(err.line, Some(4));
        assert!(err.message.contains("no limit"), "{}", err.message);
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[limits]\nmax_body_bytes = 1\n";
        assert!(parse(text).is_ok(), "a one-byte limit is a choice, not a mistake");
    }

    #[test]
    fn gzip_level_out_of_range() {
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[static_cache]\ngzip_level = 13\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("static_cache.gzip_level"));
    }

    #[test]
    fn zero_timeouts_rejected() {
        let cases = [
            ("[timeouts]\nkeepalive = \"0s\"\n", "timeouts.keepalive"),
            ("[timeouts]\nsend = 0\n", "timeouts.send"),
            ("[upstream]\nservers = [\"unix:/run/a.sock\"]\nread_timeout = \"0ms\"\n", "upstream.read_timeout"),
        ];
        for (section, key) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n{section}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{section}");
            assert!(err.line.is_some(), "{section}: no line");
            assert!(err.message.contains("above zero"), "{section}: {}", err.message);
        }
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\nshutdown_grace = \"0s\"\n";
        assert_eq!(parse(text).unwrap().server.shutdown_grace, Duration::ZERO);
    }

    #[test]
    fn out_of_range_durations_rejected() {
        let cases = [
            ("[timeouts]\nrequest_head = 9223372036854775807\n", "timeouts.request_head", "largest"),
            ("[timeouts]\nsend = \"18446744073709551615s\"\n", "timeouts.send", "largest"),
            ("[server]\nshutdown_grace = \"721h\"\n", "server.shutdown_grace", "largest"),
            ("[timeouts]\nkeepalive = -1\n", "timeouts.keepalive", "negative"),
            ("[timeouts]\nkeepalive = 1.5\n", "timeouts.keepalive", "whole number of seconds"),
            ("[timeouts]\nkeepalive = true\n", "timeouts.keepalive", "whole number of seconds"),
        ];
        for (section, key, message) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n{section}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{section}");
            assert!(err.message.contains(message), "{section}: {}", err.message);
        }
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\nshutdown_grace = \"720h\"\n";
        assert_eq!(parse(text).unwrap().server.shutdown_grace, Duration::from_secs(720 * 3600));
    }

    #[test]
    fn server_settings_checked() {
        let cases = [
            ("workers = 1025\n", "server.workers"),
            ("log_level = \"[[[\"\n", "server.log_level"),
            ("access_log = \"/nonexistent-directory/access.log\"\n", "server.access_log"),
            ("access_log = \"\"\n", "server.access_log"),
        ];
        for (line, key) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\n{line}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{line}");
        }
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\naccess_log = \"access.log\"\n";
        let config = Config::parse(text, Path::new("/etc/ringfront/ringfront.toml"), Path::new("/tmp")).unwrap();
        assert_eq!(config.server.access_log, "/tmp/access.log");
    }

    /// The name itself is checked, not only its directory, and a symlink by what it points to.
    #[test]
    fn access_log_name_checked() {
        let dir = std::env::temp_dir().join(format!("ringfront-config-test-{}-links", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = |name: &str, target: &str| {
            let path = dir.join(name);
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(target, &path).unwrap();
            path.display().to_string()
        };
        let long_name = format!("{}/{}.log", dir.display(), "a".repeat(300));
        link("loop-b.log", "loop-a.log");
        let cases = [
            (format!("{}/logs/", dir.display()), "names a directory"),
            (format!("{}/missing.log/.", dir.display()), "names a directory"),
            (link("loop-a.log", "loop-b.log"), "loop"),
            (format!("{}/{}/access.log", dir.display(), "d".repeat(300)), "File name too long"),
            (format!("{}/a\u{0}b.log", dir.display()), "NUL"),
            (long_name, "longer than 255 bytes"),
            (link("missing-dir.log", "/nonexistent-directory/access.log"), "does not exist"),
            (link("proc.log", "/proc/ringfront-access.log"), "cannot write"),
        ];
        for (path, reason) in &cases {
            // TOML writes NUL as \u0000, where Rust's debug form writes \0.
            let value = path.replace('\0', "\\u0000");
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\naccess_log = \"{value}\"\n");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("server.access_log"), "{path}");
            assert!(err.message.contains(reason), "{path}: {}", err.message);
        }

        let usable = link("usable.log", "written.log");
        let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\naccess_log = {usable:?}\n");
        assert!(parse(&text).is_ok(), "a symlink to a file yet to be created in a writable directory");
        assert!(!dir.join("written.log").exists(), "the check left a file behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// procfs takes no new files, even from root, which the test suite may run as.
    #[test]
    fn unwritable_paths_rejected() {
        let cases = [
            ("[server]\naccess_log = \"/proc/ringfront-access.log\"\n", "server.access_log", 4),
            ("[upstream]\nservers = [\"unix:/run/a.sock\"]\ntemp_dir = \"/proc\"\n", "upstream.temp_dir", 5),
        ];
        for (section, key, line) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n{section}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{section}");
            assert_eq!(err.line, Some(line), "{section}");
            assert!(err.message.contains("cannot "), "{section}: {}", err.message);
        }
    }

    #[test]
    fn odd_settings_rejected_with_line() {
        let cases = [
            ("[server]\nlog_level = \"warning\"\n", "server.log_level", Some(5)),
            ("[server]\nlog_level = \"\"\n", "server.log_level", Some(5)),
            ("[server]\nlog_level = \",\"\n", "server.log_level", Some(5)),
            ("[server]\nlog_level = \"ringfront=\"\n", "server.log_level", Some(5)),
            ("[server]\nlog_level = \"=debug\"\n", "server.log_level", Some(5)),
            ("[upstream]\nservers = [\"unix:/run/a.sock\"]\ntemp_dir = \"\"\n", "upstream.temp_dir", Some(6)),
            ("[server]\nworkers = 4\naccess_log = \"/tmp/\"\n", "server.access_log", Some(6)),
            ("[server]\nworkers = 2000\n", "server.workers", Some(5)),
            ("[upstream]\nservers = [\"unix:/run/a.sock\"]\ntemp_dir = \"/nonexistent-directory\"\n", "upstream.temp_dir", Some(6)),
            ("[timeouts]\nsend = \"18446744073709551616s\"\n", "timeouts.send", Some(5)),
        ];
        for (section, key, line) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n\n{section}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{section}");
            assert_eq!(err.line, line, "{section}");
        }
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[timeouts]\nsend = \"18446744073709551616s\"\n";
        assert!(parse(text).unwrap_err().message.contains("largest"));
        let cases = [
            ("warn,ringfront=debug", "warn,ringfront=debug"),
            (" warn ", "warn"),
            ("info, ringfront = debug ", "info,ringfront=debug"),
            ("ringfront[conn]=DEBUG,3", "ringfront[conn]=DEBUG,3"),
        ];
        for (written, used) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\nlog_level = {written:?}\n");
            assert_eq!(parse(&text).unwrap().server.log_level, used, "{written:?}");
        }
        let streams = [("/dev/stdout", "stdout"), ("-", "stdout"), ("Off", "off"), ("stderr", "stderr"), ("STDERR", "stderr"), ("/dev/stderr", "stderr")];
        for (written, used) in streams {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\naccess_log = {written:?}\n");
            assert_eq!(parse(&text).unwrap().server.access_log, used, "{written:?}");
        }
    }

    #[test]
    fn fifo_access_log_rejected() {
        let fifo = std::env::temp_dir().join(format!("ringfront-config-test-{}.fifo", std::process::id()));
        let mkfifo = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
        assert!(mkfifo.success(), "mkfifo failed: {mkfifo}");
        let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\naccess_log = {:?}\n", fifo.display().to_string());

        let result = parse(&text);

        std::fs::remove_file(&fifo).expect("remove the FIFO");
        let err = result.unwrap_err();
        assert_eq!(err.key.as_deref(), Some("server.access_log"));
        assert!(err.message.contains("FIFO"), "{}", err.message);
    }

    #[test]
    fn key_found_past_multiline_string() {
        // A multi-line string whose text looks like a table header.
        let checker = Checker { text: "[server]\nx = \"\"\"\n[upstream]\n\"\"\"\nworkers = \"two\"\n", file: Path::new("t.toml"), base: Path::new(".") };
        assert_eq!(checker.line_of_key("server.workers"), Some(5));
        assert_eq!(checker.line_of_key("upstream.workers"), None);
        // Three quotes inside a one-line string open nothing.
        let checker = Checker { text: "[server]\naccess_log = 'a\"\"\"b.log'\n[upstream]\ntemp_dir = \"/x\"\n", file: Path::new("t.toml"), base: Path::new(".") };
        assert_eq!(checker.line_of_key("upstream.temp_dir"), Some(4));
        // Nor do they in a comment.
        let checker = Checker { text: "# note = \"\"\" see nginx.conf\n[server]\nworkers = \"auto\"\n", file: Path::new("t.toml"), base: Path::new(".") };
        assert_eq!(checker.line_of_key("server.workers"), Some(3));
    }

    #[test]
    fn empty_static_dir_rejected() {
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[[static]]\nprefix = \"/s/\"\ndir = \"\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("static[0].dir"));
        assert_eq!(err.line, Some(5));
    }

    #[test]
    fn value_errors_name_key() {
        let cases = [
            ("[timeouts]\nkeepalive = \"5x\"\n", "timeouts.keepalive", 4),
            ("[server]\nworkers = \"two\"\n", "server.workers", 4),
            ("[[static]]\nprefix = \"/a/\"\ndir = \".\"\n[[static]]\nprefix = \"/b/\"\ndri = \".\"\n", "static[1].dri", 8),
        ];
        for (section, key, line) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n{section}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{section}");
            assert_eq!(err.line, Some(line), "{section}");
        }
    }

    /// Errors for values of the wrong type name the values to write, not serde's Rust types.
    #[test]
    fn type_errors_name_values() {
        let cases = [
            ("[server]\nworkers = -1\n", "invalid value: integer `-1`, expected a whole number, 0 or more"),
            ("[server]\nworkers = 1.5\n", "invalid type: decimal number `1.5`, expected a whole number"),
            ("[server]\nworkers = 99999999999999999999\n", "invalid value: integer `99999999999999999999` is out of range"),
            ("[limits]\nmax_body_bytes = -99999999999999999999\n", "invalid value: integer `-99999999999999999999` is out of range"),
            ("[upstream]\nbalance = \"fastest\"\n", "unknown value `fastest`, expected `round_robin` or `least_connections`"),
            ("[server]\nreceive_buffers = 99999999999\n", "invalid value: integer `99999999999`, expected a whole number from 0 to 4294967295"),
            ("[server]\nreceive_buffers = \"512\"\n", "invalid type: string \"512\", expected a whole number"),
            ("[static_cache]\ngzip_level = \"high\"\n", "invalid type: string \"high\", expected a whole number"),
            ("[static_cache]\ngzip_level = 99999999999\n", "invalid value: integer `99999999999`, expected a whole number from -2147483648 to 2147483647"),
            ("[server]\nworkers = true\n", "invalid type: boolean `true`, expected a whole number"),
            ("[upstream]\nservers = \"unix:/x\"\n", "invalid type: string \"unix:/x\", expected a list"),
            ("[error_pages]\n\"404\" = 5\n", "invalid type: integer `5`, expected a path in quotes"),
            ("[upstream]\nbalance = 5\n", "expected one of the setting's names, in quotes"),
        ];
        for (section, message) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n{section}");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.message, message, "{section}");
            assert_eq!(err.line, Some(4), "{section}");
        }


        // A table where a list of tables belongs, and the other way round, in headers and in
        // values. The error names the header or the key.
        let cases = [
            ("[static]\nprefix = \"/s/\"\n", "static", "static is a list of tables: write [[static]] for each one"),
            ("static = 5\n", "static", "static is a list of tables: write [[static]] for each one"),
            ("static = [5]\n", "static", "static is a list of tables: write [[static]] for each one"),
            ("[[server]]\nworkers = 1\n", "server", "server is one table: write [server] with its settings under it"),
            ("[[error_pages]]\n", "error_pages", "error_pages is one table: write [error_pages] with its settings under it"),
            ("[[\"server\"]]\nworkers = 1\n", "server", "server is one table: write [server] with its settings under it"),
            ("\"server\" = 5\n", "server", "server is one table: write [server] with its settings under it"),
            ("static.prefix = \"/s/\"\n", "static", "static is a list of tables: write [[static]] for each one"),
            ("['static']\nprefix = \"/s/\"\n", "static", "static is a list of tables: write [[static]] for each one"),
            ("server = [3]\n", "server", "server is one table: write [server] with its settings under it"),
            ("timeouts = ['5s']\n", "timeouts", "timeouts is one table: write [timeouts] with its settings under it"),
            ("server = [{workers = 1}]\n", "server", "server is one table: write [server] with its settings under it"),
        ];
        for (text, key, message) in cases {
            let err = parse(&format!("{text}[http]\nlisten = [\"127.0.0.1:8080\"]\n")).unwrap_err();
            assert_eq!(err.message, message, "{text}");
            assert_eq!(err.key.as_deref(), Some(key), "{text}");
            assert_eq!(err.line, Some(1), "{text}");
        }

        // A header that names a value rather than a top-level table gets the plain type error.
        let cases = [
            ("[https.listen]\n", "invalid type: table, expected a list"),
            ("[[https.listen]]\n", "invalid type: table, expected a string"),
            ("[server.workers]\n", "invalid type: table, expected a whole number"),
        ];
        for (header, message) in cases {
            let err = parse(&format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n{header}")).unwrap_err();
            assert_eq!(err.message, message, "{header}");
        }
    }

    /// The tables whose kind `table_kinds` checks are the configuration's top-level tables.
    #[test]
    fn checked_table_names_exist() {
        for name in super::SINGLE_TABLES {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[{name}]\n");
            let message = parse(&text).map_or_else(|err| err.message, |_| String::new());
            assert!(!message.contains("unknown field"), "[{name}]: {message}");
        }
        for name in super::LISTS_OF_TABLES {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[[{name}]]\n");
            let message = parse(&text).map_or_else(|err| err.message, |_| String::new());
            assert!(!message.contains("unknown field"), "[[{name}]]: {message}");
        }
    }

    #[test]
    fn receive_buffers_out_of_range() {
        for value in ["0", "32769", "70000"] {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\nreceive_buffers = {value}\n");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("server.receive_buffers"), "{value}");
        }
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[server]\nreceive_buffers = 32768\n";
        assert_eq!(parse(text).unwrap().server.receive_buffers, 32_768);
    }

    #[test]
    fn networks_parse_and_match() {
        let network = IpNetwork::parse("10.0.0.0/8").unwrap();
        assert!(network.contains("10.1.2.3".parse().unwrap()));
        assert!(!network.contains("11.0.0.1".parse().unwrap()));
        assert!(network.contains("::ffff:10.0.0.1".parse().unwrap()));
        let single = IpNetwork::parse("::1").unwrap();
        assert_eq!(single.prefix, 128);
        assert!(single.contains("::1".parse().unwrap()));
        assert!(IpNetwork::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert_eq!(IpNetwork::parse("10.0.0.0/33"), None);
        assert_eq!(IpNetwork::parse("example.org"), None);
    }

    #[test]
    fn trusted_proxy_host_bits_rejected() {
        let cases = [("10.0.0.1/8", "\"10.0.0.0/8\""), ("2001:db8::1/32", "\"2001:db8::/32\""), ("::ffff:10.0.0.1/104", "\"10.0.0.0/8\"")];
        for (entry, written) in cases {
            let text = format!("[http]\nlisten = [\"127.0.0.1:8080\"]\n[upstream]\nunix = \"/run/a.sock\"\ntrusted_proxies = [{entry:?}]\n");
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("upstream.trusted_proxies"), "{entry}");
            assert_eq!(err.line, Some(5), "{entry}");
            assert!(err.message.contains(written), "{entry}: {}", err.message);
        }
        let text = "[http]\nlisten = [\"127.0.0.1:8080\"]\n[upstream]\nunix = \"/run/a.sock\"\ntrusted_proxies = [\"10.0.0.1\", \"10.0.0.0/8\", \"0.0.0.0/0\", \"fd00::/8\"]\n";
        assert_eq!(parse(text).unwrap().upstream.unwrap().trusted_proxies.len(), 4);
    }

    #[test]
    fn networks_mapped_and_prefix_forms() {
        let mapped = IpNetwork::parse("::ffff:127.0.0.1").unwrap();
        assert_eq!(mapped, IpNetwork::parse("127.0.0.1/32").unwrap());
        assert!(mapped.contains("127.0.0.1".parse().unwrap()));
        let all_mapped = IpNetwork::parse("::ffff:0:0/96").unwrap();
        assert!(all_mapped.contains("192.0.2.1".parse().unwrap()));
        assert!(!all_mapped.contains("2001:db8::1".parse().unwrap()));
        let mapped_range = IpNetwork::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped_range.contains("10.200.0.1".parse().unwrap()));
        assert!(!mapped_range.contains("11.0.0.1".parse().unwrap()));
        for text in ["10.0.0.0/08", "10.0.0.0/+8", "10.0.0.0/", "10.0.0.0/ 8", "::1/-1", "::ffff:127.0.0.0/95"] {
            assert_eq!(IpNetwork::parse(text), None, "{text}");
        }
        assert_eq!(IpNetwork::parse("0.0.0.0/0").map(|network| network.prefix), Some(0));
    }

    #[test]
    fn upstream_servers_parse() {
        let text = "[http]\nlisten = [\"127.0.0.1:1\"]\n[upstream]\nservers = [\"unix:/run/a.sock\", \"127.0.0.1:8000\"]\nbalance = \"least_connections\"\n";
        let config = parse(text).unwrap();
        let upstream = config.upstream.unwrap();
        assert_eq!(upstream.servers.len(), 2);
        assert_eq!(upstream.servers[1], UpstreamAddress::Tcp("127.0.0.1:8000".parse().unwrap()));
        assert_eq!(upstream.balance, Balance::LeastConnections);
    }

    #[test]
    fn upstream_bad_server_names_line() {
        let text = "[http]\nlisten = [\"127.0.0.1:1\"]\n[upstream]\nservers = [\n\"localhost:8000\"]\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("upstream.servers"));
        assert_eq!(err.line, Some(5));
    }

    #[test]
    fn upstream_without_server_is_rejected() {
        let err = parse("[http]\nlisten = [\"127.0.0.1:1\"]\n[upstream]\nkeepalive = 2\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("upstream"));
    }

    #[test]
    fn error_page_status_checked() {
        let err = parse("[http]\nlisten = [\"127.0.0.1:1\"]\n[error_pages]\n\"302\" = \"x.html\"\n").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("error_pages.302"));
    }

    #[test]
    fn display_has_file_line_key() {
        let err = ConfigError {
            file: PathBuf::from("/etc/ringfront.toml"),
            line: Some(7),
            key: Some("https.listen".to_owned()),
            message: "bad".to_owned(),
        };
        assert_eq!(err.to_string(), "/etc/ringfront.toml:7: https.listen: bad");
    }
}
