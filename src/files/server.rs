//! [`StaticFiles`], the per-worker static file server: it responds from memory and hands disk
//! work to [`LoadJob`]s.

use std::io;
use std::time::{Duration, Instant};

use libdeflater::CompressionLvl;

use super::cache::{Cache, CacheEntry, EntryKind, KeyRef};
use super::load::{CacheKey, FileStamp, LoadJob, LoadOptions, LoadResult, Loaded};
use super::load_wait::LoadWait;
use super::path::{NormalizedPath, PathError, normalize_path, normalize_request_path};
use super::range::RangeLimits;
use super::response::{self, FileResponse, ServeOptions};
use super::route::{StaticRoute, StaticSettings};
use crate::http::RequestHead;

/// The decision of [`StaticFiles::respond`].
#[derive(Debug)]
pub enum Outcome {
    /// Send this response.
    Response(FileResponse),
    /// Run this job on a blocking thread, pass its result to [`StaticFiles::insert`], then call
    /// [`StaticFiles::respond`] again with the same request. If the job cannot finish, pass its
    /// key to [`StaticFiles::abandon_load`].
    Load(LoadJob),
    /// Another request on this worker is loading the same path. Wait until that load ends (its
    /// `insert` or `abandon_load`), then call [`StaticFiles::respond_after_wait`].
    Wait(LoadWait),
}

/// A request path matched to a static route by [`StaticFiles::route_for`]: the route's index
/// and the normalized path below its prefix, or the reason that path names no file.
#[derive(Debug, Clone)]
pub struct StaticTarget<'a> {
    route: usize,
    path: Result<NormalizedPath<'a>, PathError>,
}

impl<'a> StaticTarget<'a> {
    /// Returns the index of the route in the list given to [`StaticFiles::new`].
    pub fn route(&self) -> usize {
        self.route
    }

    /// Returns the path below the route's prefix, or why it names no file.
    pub fn path(&self) -> Result<&NormalizedPath<'a>, PathError> {
        self.path.as_ref().map_err(|&error| error)
    }
}

/// The static file server of one worker thread: its routes and its cache.
///
/// # Calling order
///
/// For each request whose path [`route_for`](Self::route_for) matched, with the
/// [`StaticTarget`] it returned:
///
/// 1. [`respond`](Self::respond) builds a response from memory, or returns [`Outcome::Load`].
/// 2. On `Load`, the server runs [`LoadJob::run`] on a blocking thread and passes the result to
///    [`insert`](Self::insert) on the worker thread.
/// 3. The server calls `respond` again with the same request and target. This second call always returns
///    [`Outcome::Response`], provided nothing else touches this `StaticFiles` between `insert`
///    and it: `insert` keeps the new entry even when the cache is over budget, and an entry not
///    yet used by a request is fresh without a `stat`.
///
/// Requests that miss the cache for a path while its load is in flight get [`Outcome::Wait`],
/// so a burst of requests for a file not yet cached reads and compresses it once. Each load
/// wakes only the requests that wait for it.
pub struct StaticFiles {
    routes: Vec<StaticRoute>,
    /// Each route's prefix, normalized like request paths. None for a prefix that does not
    /// normalize, which then only matches request paths as sent.
    prefixes: Vec<Option<NormalizedPath<'static>>>,
    settings: StaticSettings,
    gzip_level: CompressionLvl,
    cache: Cache,
    /// The paths whose loads are in flight, with the wait of each: one entry per file being
    /// loaded, so a list.
    loading: Vec<(CacheKey, LoadWait)>,
}

impl StaticFiles {
    /// Builds a server for `routes`, which should have passed [`StaticRoute::validate`] with a
    /// canonical `dir`.
    pub fn new(routes: Vec<StaticRoute>, settings: StaticSettings) -> Self {
        let mut settings = settings;
        // Half the budget for one file keeps a file and its gzip variant (smaller than the file)
        // within the budget together.
        let half_budget = u64::try_from(settings.cache_bytes / 2).unwrap_or(u64::MAX);
        settings.max_cached_file_bytes = settings.max_cached_file_bytes.min(half_budget);
        let gzip_level = CompressionLvl::new(settings.gzip_level).unwrap_or_default();

        let prefixes = routes
            .iter()
            .map(|route| {
                normalize_request_path(&route.prefix)
                    .ok()
                    .map(NormalizedPath::into_owned)
            })
            .collect();

        StaticFiles {
            cache: Cache::new(settings.cache_bytes, settings.max_open_files),
            prefixes,
            routes,
            settings,
            gzip_level,
            loading: Vec::new(),
        }
    }

    /// Empties the cache, for a configuration a reload replaced. Responses being sent keep the
    /// entries they use.
    pub fn clear_cache(&mut self) {
        self.cache = Cache::new(self.settings.cache_bytes, self.settings.max_open_files);
    }

    /// Finds the route with the longest prefix that `path` lies below, and the path below it.
    ///
    /// `path` is compared after normalization: percent-decoding, merging `//` and resolving
    /// `.` and `..`, so `/st%61tic/a.css` and `/api/../static/a.css` reach the `/static/` route
    /// as nginx routes them, and `/static/../api/x` does not. A path that does not normalize
    /// (a bad escape, NUL, `%2F`, a backslash, or `..` above `/`) is matched as sent instead,
    /// so that a static route still rejects it with 400 or 404.
    ///
    /// The path is normalized once here and the result carried to [`respond`](Self::respond).
    /// It borrows `path` unless normalization changed it.
    pub fn route_for<'a>(&self, path: &'a str) -> Option<StaticTarget<'a>> {
        let normalized = normalize_request_path(path).ok();
        let mut best: Option<(usize, &StaticRoute)> = None;
        for (index, route) in self.routes.iter().enumerate() {
            let prefix = self.prefixes.get(index).and_then(Option::as_ref);
            let below = match (&normalized, prefix) {
                (Some(normalized), Some(prefix)) => normalized.is_below(prefix),
                _ => path.starts_with(&route.prefix),
            };
            // Of several equally long prefixes, the later route wins.
            let longer = best.is_none_or(|(_, chosen)| route.prefix.len() >= chosen.prefix.len());
            if below && longer {
                best = Some((index, route));
            }
        }

        let (index, route) = best?;
        let path = self.relative_path(index, route, path, normalized)?;
        Some(StaticTarget { route: index, path })
    }

    /// Returns the path below route `route`, or None when `path` is not below its prefix.
    /// Uses the same rule as [`route_for`](Self::route_for). `normalized` is `path` normalized
    /// by [`normalize_request_path`], None when that failed.
    fn relative_path<'a>(
        &self,
        route: usize,
        config: &StaticRoute,
        path: &'a str,
        normalized: Option<NormalizedPath<'a>>,
    ) -> Option<Result<NormalizedPath<'a>, PathError>> {
        let prefix = self.prefixes.get(route).and_then(Option::as_ref);
        if let (Some(normalized), Some(prefix)) = (normalized, prefix) {
            let rest = normalized.strip_prefix(prefix)?;
            if !config.serve_dotfiles && rest.has_dot_segment() {
                return Some(Err(PathError::Dotfile));
            }
            return Some(Ok(rest));
        }
        let rest = path.strip_prefix(config.prefix.as_str())?;
        Some(normalize_path(rest, config.serve_dotfiles))
    }

    /// Builds the response to `head` for `target`, which [`route_for`](Self::route_for) returned
    /// for `head.path()`, from memory, or returns a load job.
    ///
    /// It never reads or compresses a file. Its only system calls are a `stat` of a cached file
    /// and of its three sibling names (`.br`, `.zst`, `.gz`), at most once per
    /// `revalidate_interval` per entry, cheap enough for the event loop. A `target` from a
    /// server with other routes may name a route this one lacks, which gets 404.
    pub fn respond(&mut self, target: &StaticTarget<'_>, head: &RequestHead, now: Instant) -> Outcome {
        self.respond_with(target, head, now, self.settings.revalidate_interval)
    }

    /// Like [`respond`](Self::respond), for a request that waited for a load
    /// ([`Outcome::Wait`]). The request came before that load's result, so the entry the load
    /// stored is used for it without a check against the disk. Otherwise, with a short
    /// `revalidate_interval` and a file that keeps changing, each waiting request would throw
    /// the entry away and load the file again, one after another.
    pub fn respond_after_wait(&mut self, target: &StaticTarget<'_>, head: &RequestHead, now: Instant) -> Outcome {
        self.respond_with(target, head, now, Duration::MAX)
    }

    fn respond_with(&mut self, target: &StaticTarget<'_>, head: &RequestHead, now: Instant, revalidate_interval: Duration) -> Outcome {
        let head_only = head.is_head();
        let route = target.route;
        let Some(config) = self.routes.get(route) else {
            return Outcome::Response(response::error(404, head_only));
        };
        if head.method != "GET" && head.method != "HEAD" {
            return Outcome::Response(response::error(405, head_only));
        }
        let path = match &target.path {
            Ok(path) => path,
            Err(error) => {
                tracing::debug!(request_target = %head.target, ?error, "static path rejected");
                return Outcome::Response(response::error(error.status(), head_only));
            }
        };
        let key = KeyRef { route, path };

        match check_freshness(&mut self.cache, revalidate_interval, key, now) {
            Freshness::Fresh => {}
            Freshness::Deleted => return Outcome::Response(response::error(404, head_only)),
            Freshness::Missing => return self.start_load(key, head_only),
        }
        let Some(entry) = self.cache.get_mut(key) else {
            return self.start_load(key, head_only);
        };

        let answer = match &entry.kind {
            EntryKind::File(file) => {
                let options = ServeOptions {
                    range_limits: RangeLimits {
                        max_header_bytes: self.settings.max_range_header_bytes,
                        max_ranges: self.settings.max_ranges,
                    },
                };
                response::serve(file, head, &options)
            }
            EntryKind::Redirect => {
                let mut location = format!("{}{}/", config.prefix, path.to_url_path());
                if let Some(query) = head.query() {
                    location.push('?');
                    location.push_str(query);
                }
                response::redirect(location, head_only)
            }
            EntryKind::Failed(error) => response::error(error.status(), head_only),
        };
        Outcome::Response(answer)
    }

    /// Stores what a [`LoadJob`] produced. Call it on the worker thread that created the job.
    pub fn insert(&mut self, loaded: Loaded) {
        let key = loaded.key;
        let kind = match loaded.result {
            LoadResult::File(file) => EntryKind::File(file),
            LoadResult::Redirect => EntryKind::Redirect,
            LoadResult::Failed(error) => EntryKind::Failed(error),
        };
        let entry = CacheEntry {
            kind,
            checked_at: None,
        };
        // The requests waiting for this load run only after this call, and find the entry.
        self.end_load(&key);
        self.cache.insert(key, entry);
    }

    /// Returns the bytes the cache counts against `cache_bytes`.
    pub fn cached_bytes(&self) -> usize {
        self.cache.used_bytes()
    }

    /// Returns the number of cached paths, including redirects and errors.
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Ends the load of `key` without a result, because its job panicked or the request that
    /// ran it went away, so that the next request for the path loads it again.
    pub(crate) fn abandon_load(&mut self, key: &CacheKey) {
        self.end_load(key);
    }

    fn end_load(&mut self, key: &CacheKey) {
        if let Some(index) = self.loading.iter().position(|(loading, _)| loading == key) {
            let (_, wait) = self.loading.swap_remove(index);
            wait.end();
        }
    }

    /// Returns a load job for `key`, or [`Outcome::Wait`] when one is in flight.
    fn start_load(&mut self, key: KeyRef<'_>, head_only: bool) -> Outcome {
        if let Some((_, wait)) = self.loading.iter().find(|(loading, _)| key.matches(loading)) {
            return Outcome::Wait(wait.clone());
        }
        let Some(route) = self.routes.get(key.route) else {
            return Outcome::Response(response::error(404, head_only));
        };
        let job = self.load_job(key, route);
        self.loading.push((job.key.clone(), LoadWait::default()));
        Outcome::Load(job)
    }

    fn load_job(&self, key: KeyRef<'_>, route: &StaticRoute) -> LoadJob {
        LoadJob {
            key: CacheKey {
                route: key.route,
                path: key.path.clone().into_owned(),
            },
            options: LoadOptions {
                root: route.dir.clone(),
                index: route.index.clone(),
                serve_dotfiles: route.serve_dotfiles,
                follow_symlinks_outside: route.follow_symlinks_outside,
                max_cached_file_bytes: self.settings.max_cached_file_bytes,
                gzip_level: self.gzip_level,
                gzip_min_bytes: self.settings.gzip_min_bytes,
                max_age: route.max_age,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// The cached entry may answer.
    Fresh,
    /// No usable entry: load the path.
    Missing,
    /// The cached file is gone: answer 404; the next request loads the path again.
    Deleted,
}

/// Decides whether the cached entry for `key` may answer at `now`, dropping it when not.
fn check_freshness(
    cache: &mut Cache,
    interval: Duration,
    key: KeyRef<'_>,
    now: Instant,
) -> Freshness {
    let Some(entry) = cache.get_mut(key) else {
        return Freshness::Missing;
    };
    let due = match entry.checked_at {
        None => false,
        Some(checked_at) => now.saturating_duration_since(checked_at) >= interval,
    };
    if !due {
        entry.checked_at.get_or_insert(now);
        return Freshness::Fresh;
    }

    // Redirects and errors are simply loaded again. Files are checked with one `stat` of the
    // file and one of each sibling name, so a new or changed sibling reloads the entry too.
    let verdict = match &entry.kind {
        EntryKind::File(file) => match std::fs::metadata(&file.stat_path) {
            Ok(metadata) if FileStamp::of(&metadata) == file.stamp => {
                if file.siblings_unchanged() {
                    Freshness::Fresh
                } else {
                    Freshness::Missing
                }
            }
            Ok(_) => Freshness::Missing,
            Err(error) if is_gone(&error) => Freshness::Deleted,
            Err(_) => Freshness::Missing,
        },
        EntryKind::Redirect | EntryKind::Failed(_) => Freshness::Missing,
    };
    if verdict == Freshness::Fresh {
        entry.checked_at = Some(now);
    } else {
        cache.remove(key);
    }
    verdict
}

fn is_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
