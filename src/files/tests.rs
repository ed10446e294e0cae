//! Tests of [`StaticFiles`] against real files in temporary directories, driving the
//! respond, load, insert, respond loop with plain function calls.

use std::fs;
use std::os::unix::fs::{FileExt, symlink};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::http::{BodyFraming, Header, RequestHead, Version};

/// A directory under the system temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "ringfront-files-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        fs::create_dir_all(&path).unwrap();
        TempDir {
            path: path.canonicalize().unwrap(),
        }
    }

    fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A site root `public/` with a sibling `outside/` that must never be served.
struct Site {
    temp: TempDir,
}

impl Site {
    fn new() -> Self {
        let temp = TempDir::new();
        fs::create_dir_all(temp.path.join("public")).unwrap();
        temp.write("outside/secret.txt", b"secret");
        Site { temp }
    }

    fn root(&self) -> PathBuf {
        self.temp.path.join("public")
    }

    fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        self.temp.write(&format!("public/{relative}"), bytes)
    }

    fn route(&self) -> StaticRoute {
        StaticRoute::new("/static/", self.root()).unwrap()
    }

    fn server(&self) -> StaticFiles {
        self.server_with(self.route(), StaticSettings::default())
    }

    fn server_with(&self, route: StaticRoute, settings: StaticSettings) -> StaticFiles {
        StaticFiles::new(vec![route], settings)
    }
}

fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: Version::Http11,
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: (*name).to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
        framing: BodyFraming::Empty,
        keep_alive: true,
        expect_continue: false,
    }
}

fn get(target: &str) -> RequestHead {
    request("GET", target, &[])
}

/// Routes `head` and responds once, as the server does before any load.
fn respond(files: &mut StaticFiles, head: &RequestHead, now: Instant) -> Outcome {
    let target = files
        .route_for(head.path())
        .unwrap_or_else(|| panic!("no static route for {}", head.target));
    files.respond(&target, head, now)
}

/// Runs the server loop: respond, and on `Load` run the job, insert, respond again. A path no
/// route matches gets 404.
fn drive(files: &mut StaticFiles, head: &RequestHead, now: Instant) -> FileResponse {
    let Some(target) = files.route_for(head.path()) else {
        return response::error(404, head.is_head());
    };
    let job = match files.respond(&target, head, now) {
        Outcome::Response(response) => return response,
        Outcome::Load(job) => job,
        Outcome::Wait(_) => panic!("{} waits for a load that no request runs", head.target),
    };
    files.insert(job.run());
    match files.respond(&target, head, now) {
        Outcome::Response(response) => response,
        Outcome::Load(job) => panic!("second load for {}: {job:?}", head.target),
        Outcome::Wait(_) => panic!("{} waits after its load", head.target),
    }
}

/// Returns the body bytes, reading file bodies with positional reads as the server does.
fn body(response: &FileResponse) -> Vec<u8> {
    match &response.body {
        FileBody::Empty => Vec::new(),
        FileBody::Memory { bytes, range } => bytes.get(range.clone()).unwrap().to_vec(),
        FileBody::File { file, offset, len } => {
            let mut buffer = vec![0u8; usize::try_from(*len).unwrap()];
            file.read_exact_at(&mut buffer, *offset).unwrap();
            buffer
        }
        FileBody::Static(bytes) => bytes.to_vec(),
    }
}

fn gunzip(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let written = libdeflater::Decompressor::new()
        .gzip_decompress(bytes, &mut out)
        .unwrap();
    out.truncate(written);
    out
}

/// Text long and repetitive enough to compress well.
fn stylesheet() -> Vec<u8> {
    b"body { margin: 0; padding: 0; color: #333; }\n".repeat(100)
}

#[test]
fn serve_small_file_bytes() {
    let site = Site::new();
    let content = stylesheet();
    site.write("app.css", &content);
    let mut files = site.server();

    let response = drive(&mut files, &get("/static/app.css"), Instant::now());

    assert_eq!(response.status, 200);
    assert_eq!(body(&response), content);
    assert_eq!(
        response.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        response.header("content-length"),
        Some(content.len().to_string().as_str())
    );
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.header("cache-control"), None);
    assert!(matches!(response.body, FileBody::Memory { .. }));
    let etag = response.header("etag").unwrap();
    assert_eq!(etag.len(), 18, "etag {etag}");
    assert!(etag.starts_with('"'), "etag {etag}");
    assert!(etag.ends_with('"'), "etag {etag}");
    let last_modified = response.header("last-modified").unwrap();
    assert!(
        httpdate::parse_http_date(last_modified).is_ok(),
        "{last_modified}"
    );
}

#[test]
fn serve_gzip_variant() {
    let site = Site::new();
    let content = stylesheet();
    site.write("app.css", &content);
    let mut files = site.server();
    let plain = drive(&mut files, &get("/static/app.css"), Instant::now());

    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "gzip, br")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    let gzip = body(&response);
    assert!(gzip.len() < content.len());
    assert_eq!(
        response.header("content-length"),
        Some(gzip.len().to_string().as_str())
    );
    assert_eq!(gunzip(&gzip, content.len()), content);
    let plain_tag = plain.header("etag").unwrap().trim_matches('"');
    assert_eq!(
        response.header("etag"),
        Some(format!("\"{plain_tag}-gz\"").as_str())
    );
}

#[test]
fn gzip_refused_with_q_zero() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut files = site.server();

    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "gzip;q=0")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(body(&response), stylesheet());
}

#[test]
fn image_never_gzipped() {
    let site = Site::new();
    site.write("logo.png", &[0u8; 4096]);
    let mut files = site.server();

    let head = request("GET", "/static/logo.png", &[("Accept-Encoding", "gzip")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.header("vary"), None);
    assert_eq!(response.header("content-type"), Some("image/png"));
}

#[test]
fn small_text_not_gzipped() {
    let site = Site::new();
    site.write("tiny.txt", b"hello hello hello");
    let mut files = site.server();

    let head = request("GET", "/static/tiny.txt", &[("Accept-Encoding", "gzip")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(body(&response), b"hello hello hello");
}

#[test]
fn identical_content_keeps_etag() {
    let site = Site::new();
    site.write("a.css", &stylesheet());
    site.write("b.css", &stylesheet());
    let mut files = site.server();

    let a = drive(&mut files, &get("/static/a.css"), Instant::now());
    let b = drive(&mut files, &get("/static/b.css"), Instant::now());

    assert_eq!(a.header("etag"), b.header("etag"));
}

#[test]
fn cache_control_from_max_age() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut route = site.route();
    route.max_age = Some(3600);
    let mut files = site.server_with(route, StaticSettings::default());

    let response = drive(&mut files, &get("/static/app.css"), Instant::now());

    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=3600")
    );
}

#[test]
fn head_has_headers_only() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut files = site.server();

    let head = request("HEAD", "/static/app.css", &[("Range", "bytes=0-9")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.status, 200);
    assert!(matches!(response.body, FileBody::Empty));
    assert_eq!(
        response.header("content-length"),
        Some(stylesheet().len().to_string().as_str())
    );
}

#[test]
fn other_methods_get_405() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut files = site.server();

    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let response = drive(
            &mut files,
            &request(method, "/static/app.css", &[]),
            Instant::now(),
        );
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn conditional_responses_table() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut files = site.server();
    let first = drive(&mut files, &get("/static/app.css"), Instant::now());
    let etag = first.header("etag").unwrap().to_owned();
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let gzip_etag = format!("\"{}-gz\"", etag.trim_matches('"'));

    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("If-None-Match", &etag)], 304),
        (vec![("If-None-Match", "\"other\"")], 200),
        (vec![("If-None-Match", "*")], 304),
        (vec![("If-None-Match", &gzip_etag)], 200),
        (
            vec![("If-None-Match", &gzip_etag), ("Accept-Encoding", "gzip")],
            304,
        ),
        (vec![("If-Modified-Since", &last_modified)], 304),
        (
            vec![("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
            200,
        ),
        (vec![("If-Match", &etag)], 200),
        (vec![("If-Match", "\"other\"")], 412),
        (
            vec![("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
            412,
        ),
    ];
    for (headers, status) in cases {
        let head = request("GET", "/static/app.css", &headers);
        let response = drive(&mut files, &head, Instant::now());
        assert_eq!(response.status, status, "{headers:?}");
        if status == 304 {
            assert!(matches!(response.body, FileBody::Empty), "{headers:?}");
            assert!(response.header("etag").is_some(), "{headers:?}");
            assert!(response.header("last-modified").is_some(), "{headers:?}");
            assert_eq!(
                response.header("vary"),
                Some("Accept-Encoding"),
                "{headers:?}"
            );
            assert_eq!(response.header("content-length"), None, "{headers:?}");
        }
    }
}

#[test]
fn range_responses_table() {
    let site = Site::new();
    let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    site.write("data.txt", &content);
    let mut files = site.server();
    let first = drive(&mut files, &get("/static/data.txt"), Instant::now());
    let etag = first.header("etag").unwrap().to_owned();

    /// Request headers, status, Content-Range, expected body as a range of `content`.
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        u16,
        Option<&'a str>,
        std::ops::Range<usize>,
    );
    let cases: Vec<Case> = vec![
        (
            vec![("Range", "bytes=0-9")],
            206,
            Some("bytes 0-9/1000"),
            0..10,
        ),
        (
            vec![("Range", "bytes=990-")],
            206,
            Some("bytes 990-999/1000"),
            990..1000,
        ),
        (
            vec![("Range", "bytes=-5")],
            206,
            Some("bytes 995-999/1000"),
            995..1000,
        ),
        (
            vec![("Range", "bytes=1000-")],
            416,
            Some("bytes */1000"),
            0..0,
        ),
        (vec![("Range", "bytes=0-5,5-6")], 200, None, 0..1000),
        (vec![("Range", "bytes=5-1")], 200, None, 0..1000),
        (
            vec![("Range", "bytes=0-9"), ("If-Range", &etag)],
            206,
            Some("bytes 0-9/1000"),
            0..10,
        ),
        (
            vec![("Range", "bytes=0-9"), ("If-Range", "\"old\"")],
            200,
            None,
            0..1000,
        ),
        // A Range request is served identity even when gzip is accepted.
        (
            vec![("Range", "bytes=0-9"), ("Accept-Encoding", "gzip")],
            206,
            Some("bytes 0-9/1000"),
            0..10,
        ),
        // Preconditions come before Range.
        (
            vec![("Range", "bytes=0-9"), ("If-None-Match", &etag)],
            304,
            None,
            0..0,
        ),
    ];
    for (headers, status, content_range, part) in cases {
        let head = request("GET", "/static/data.txt", &headers);
        let response = drive(&mut files, &head, Instant::now());
        assert_eq!(response.status, status, "{headers:?}");
        assert_eq!(
            response.header("content-range"),
            content_range,
            "{headers:?}"
        );
        assert_eq!(response.header("content-encoding"), None, "{headers:?}");
        if status == 416 {
            assert_eq!(body(&response), b"<html><body><h1>416 Range Not Satisfiable</h1></body></html>\n", "{headers:?}");
            assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"), "{headers:?}");
        } else {
            assert_eq!(body(&response), content.get(part).unwrap(), "{headers:?}");
        }
    }
}

#[test]
fn missing_file_gets_404() {
    let site = Site::new();
    let mut files = site.server();

    let response = drive(&mut files, &get("/static/nope.css"), Instant::now());
    assert_eq!(response.status, 404);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(matches!(response.body, FileBody::Static(_)));

    let head = drive(
        &mut files,
        &request("HEAD", "/static/nope.css", &[]),
        Instant::now(),
    );
    assert_eq!(head.status, 404);
    assert!(matches!(head.body, FileBody::Empty));
}

#[test]
fn traversal_attempts_table() {
    let site = Site::new();
    site.write("ok.txt", b"ok");
    site.write(".env", b"SECRET=1");
    site.write(".git/config", b"[core]");
    site.write("sub/index.html", b"index");
    symlink(
        site.temp.path.join("outside/secret.txt"),
        site.root().join("out.txt"),
    )
    .unwrap();
    symlink(site.temp.path.join("outside"), site.root().join("outdir")).unwrap();
    symlink(site.root().join(".env"), site.root().join("env.txt")).unwrap();
    symlink(site.root().join("ok.txt"), site.root().join("alias.txt")).unwrap();
    symlink(site.root().join("loop.txt"), site.root().join("loop.txt")).unwrap();
    let mut files = site.server();

    let cases = [
        ("/static/ok.txt", 200),
        ("/static/alias.txt", 200),
        ("/static/../outside/secret.txt", 404),
        ("/static/sub/../../outside/secret.txt", 404),
        ("/static/%2e%2e/outside/secret.txt", 404),
        ("/static/%2E%2E/%2E%2E/etc/passwd", 404),
        ("/static/..%2foutside%2fsecret.txt", 404),
        ("/static/sub%2findex.html", 404),
        ("/static/..\\outside\\secret.txt", 404),
        ("/static/%5c..%5coutside", 404),
        ("/static/ok.txt%00.css", 400),
        ("/static/ok.txt\0", 400),
        ("/static/ok%zz", 400),
        ("/static/out.txt", 404),
        ("/static/outdir/secret.txt", 404),
        ("/static/.env", 404),
        ("/static/%2eenv", 404),
        ("/static/.git/config", 404),
        ("/static/env.txt", 404),
        ("/static/loop.txt", 404),
        ("/static/sub/./../ok.txt", 200),
    ];
    for (target, status) in cases {
        let response = drive(&mut files, &get(target), Instant::now());
        assert_eq!(response.status, status, "{target}");
        if status == 200 {
            assert_eq!(body(&response), b"ok", "{target}");
        }
    }
}

#[test]
fn symlink_outside_when_allowed() {
    let site = Site::new();
    symlink(
        site.temp.path.join("outside/secret.txt"),
        site.root().join("out.txt"),
    )
    .unwrap();
    let mut route = site.route();
    route.follow_symlinks_outside = true;
    let mut files = site.server_with(route, StaticSettings::default());

    let response = drive(&mut files, &get("/static/out.txt"), Instant::now());

    assert_eq!(response.status, 200);
    assert_eq!(body(&response), b"secret");
}

#[test]
fn dotfiles_when_allowed() {
    let site = Site::new();
    site.write(".well-known/security.txt", b"Contact: x");
    let mut route = site.route();
    route.serve_dotfiles = true;
    let mut files = site.server_with(route, StaticSettings::default());

    let response = drive(
        &mut files,
        &get("/static/.well-known/security.txt"),
        Instant::now(),
    );

    assert_eq!(response.status, 200);
    assert_eq!(body(&response), b"Contact: x");
}

#[test]
fn directory_redirect_and_index() {
    let site = Site::new();
    site.write("docs/index.html", b"<p>docs</p>");
    site.write("index.html", b"<p>home</p>");
    fs::create_dir_all(site.root().join("empty")).unwrap();
    site.write("file.txt", b"x");
    let mut files = site.server();

    let redirect = drive(&mut files, &get("/static/docs?lang=en"), Instant::now());
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/static/docs/?lang=en"));

    let plain = drive(&mut files, &get("/static/docs"), Instant::now());
    assert_eq!(plain.header("location"), Some("/static/docs/"));

    let index = drive(&mut files, &get("/static/docs/"), Instant::now());
    assert_eq!(index.status, 200);
    assert_eq!(body(&index), b"<p>docs</p>");
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    let root = drive(&mut files, &get("/static/"), Instant::now());
    assert_eq!(body(&root), b"<p>home</p>");

    let empty = drive(&mut files, &get("/static/empty/"), Instant::now());
    assert_eq!(empty.status, 404);

    let file_as_dir = drive(&mut files, &get("/static/file.txt/"), Instant::now());
    assert_eq!(file_as_dir.status, 404);
}

#[test]
fn redirect_location_is_encoded() {
    let site = Site::new();
    fs::create_dir_all(site.root().join("a b")).unwrap();
    let mut files = site.server();

    let response = drive(&mut files, &get("/static/x/../a%20b"), Instant::now());

    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some("/static/a%20b/"));
}

#[test]
fn fifo_is_not_served() {
    let site = Site::new();
    let fifo = site.root().join("pipe.txt");
    // Creating a FIFO from Rust needs libc and `unsafe`, so the coreutils tool makes it.
    let mkfifo_status = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(
        mkfifo_status.is_ok_and(|status| status.success()),
        "mkfifo failed"
    );
    let mut files = site.server();

    let response = drive(&mut files, &get("/static/pipe.txt"), Instant::now());

    assert_eq!(response.status, 404);
}

#[test]
fn change_seen_after_interval() {
    let site = Site::new();
    let path = site.write("app.js", b"let a = 1;");
    let mut files = site.server();
    let start = Instant::now();
    let first = drive(&mut files, &get("/static/app.js"), start);
    assert_eq!(body(&first), b"let a = 1;");

    fs::write(&path, b"let a = 22;").unwrap();
    let early = start + Duration::from_millis(500);
    match respond(&mut files, &get("/static/app.js"), early) {
        Outcome::Response(response) => assert_eq!(body(&response), b"let a = 1;"),
        Outcome::Load(_) | Outcome::Wait(_) => panic!("revalidated before the interval"),
    }

    let late = start + Duration::from_millis(1500);
    let job = expect_load(respond(&mut files, &get("/static/app.js"), late), "no load after the interval");
    files.insert(job.run());
    let fresh = drive(&mut files, &get("/static/app.js"), late);
    assert_eq!(body(&fresh), b"let a = 22;");
    assert_ne!(fresh.header("etag"), first.header("etag"));
}

/// Returns whether `wait` has ended, polling its future once.
fn has_ended(wait: &LoadWait) -> bool {
    use std::future::Future;
    let mut future = std::pin::pin!(wait.wait());
    future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())).is_ready()
}

/// Returns the job of a `Load` outcome. Panics with `case` on any other.
fn expect_load(outcome: Outcome, case: &str) -> LoadJob {
    match outcome {
        Outcome::Load(job) => job,
        other => panic!("{case}: expected a load, got {other:?}"),
    }
}

/// Returns the wait of a `Wait` outcome. Panics with `case` on any other.
fn expect_wait(outcome: Outcome, case: &str) -> LoadWait {
    match outcome {
        Outcome::Wait(wait) => wait,
        other => panic!("{case}: expected a wait, got {other:?}"),
    }
}

/// Requests that miss the cache for a path while its load is in flight wait for that load,
/// so a burst of requests for a file not yet cached reads and compresses it once. Other paths
/// load on their own, and each load ends only its own waits.
#[test]
fn misses_during_a_load_wait_for_it() {
    let site = Site::new();
    site.write("app.js", b"let a = 1;");
    site.write("other.js", b"let b = 2;");
    let mut files = site.server();
    let now = Instant::now();

    let job = expect_load(respond(&mut files, &get("/static/app.js"), now), "no load for the first request");
    let wait = expect_wait(respond(&mut files, &get("/static/app.js"), now), "a second request for the path does not wait");
    assert!(matches!(respond(&mut files, &request("HEAD", "/static/app.js", &[]), now), Outcome::Wait(_)));
    let other = expect_load(respond(&mut files, &get("/static/other.js"), now), "a request for another path waits");
    let other_wait = expect_wait(respond(&mut files, &get("/static/other.js"), now), "a second request for the other path does not wait");
    assert!(!has_ended(&wait));

    files.insert(job.run());
    assert!(has_ended(&wait));
    assert!(!has_ended(&other_wait), "another path's load ended this wait");
    match files.respond_after_wait(&files.route_for("/static/app.js").unwrap(), &get("/static/app.js"), now) {
        Outcome::Response(response) => assert_eq!(body(&response), b"let a = 1;"),
        outcome => panic!("after the load: {outcome:?}"),
    }
    files.insert(other.run());
    assert!(has_ended(&other_wait));
    assert!(matches!(respond(&mut files, &get("/static/other.js"), now), Outcome::Response(_)));
}

/// A request that waited for a load takes the entry that load stored, without the check
/// against the disk that a later request makes once `revalidate_interval` has passed since
/// the entry's first use.
#[test]
fn waiting_request_takes_the_loaded_entry() {
    let site = Site::new();
    let path = site.write("app.js", b"let a = 1;");
    let mut files = site.server();
    let start = Instant::now();
    let job = expect_load(respond(&mut files, &get("/static/app.js"), start), "no load for the first request");
    files.insert(job.run());
    let target = files.route_for("/static/app.js").unwrap();
    assert!(matches!(files.respond(&target, &get("/static/app.js"), start), Outcome::Response(_)), "the loading request");
    fs::write(&path, b"let a = 22;").unwrap();

    let late = start + Duration::from_secs(5);
    match files.respond_after_wait(&target, &get("/static/app.js"), late) {
        Outcome::Response(response) => assert_eq!(body(&response), b"let a = 1;"),
        outcome => panic!("after the wait: {outcome:?}"),
    }
    let later = late + Duration::from_secs(5);
    assert!(matches!(files.respond(&target, &get("/static/app.js"), later), Outcome::Load(_)));
}

/// A load that ends without a result lets the next request load the path.
#[test]
fn abandoned_load_is_run_again() {
    let site = Site::new();
    site.write("app.js", b"let a = 1;");
    let mut files = site.server();
    let now = Instant::now();

    let job = expect_load(respond(&mut files, &get("/static/app.js"), now), "no load for the first request");
    let wait = expect_wait(respond(&mut files, &get("/static/app.js"), now), "a second request for the path does not wait");
    files.abandon_load(&job.key);
    assert!(has_ended(&wait));
    assert!(matches!(respond(&mut files, &get("/static/app.js"), now), Outcome::Load(_)));
}

#[test]
fn unchanged_file_stays_cached() {
    let site = Site::new();
    site.write("app.js", b"let a = 1;");
    let mut files = site.server();
    let start = Instant::now();
    drive(&mut files, &get("/static/app.js"), start);

    for step in 1..5u64 {
        let now = start + Duration::from_secs(step * 2);
        let outcome = respond(&mut files, &get("/static/app.js"), now);
        assert!(matches!(outcome, Outcome::Response(_)), "step {step}");
    }
}

#[test]
fn deleted_file_gets_404() {
    let site = Site::new();
    let path = site.write("app.js", b"let a = 1;");
    let mut files = site.server();
    let start = Instant::now();
    drive(&mut files, &get("/static/app.js"), start);
    assert_eq!(files.cached_entries(), 1);

    fs::remove_file(&path).unwrap();
    let later = start + Duration::from_secs(2);
    match respond(&mut files, &get("/static/app.js"), later) {
        Outcome::Response(response) => assert_eq!(response.status, 404),
        Outcome::Load(_) | Outcome::Wait(_) => panic!("a deleted file needs no load"),
    }
    assert_eq!(files.cached_entries(), 0);
}

#[test]
fn created_file_seen_after_404() {
    let site = Site::new();
    let mut files = site.server();
    let start = Instant::now();
    let missing = drive(&mut files, &get("/static/new.txt"), start);
    assert_eq!(missing.status, 404);

    site.write("new.txt", b"new");
    let later = start + Duration::from_secs(2);
    let found = drive(&mut files, &get("/static/new.txt"), later);
    assert_eq!(found.status, 200);
    assert_eq!(body(&found), b"new");
}

#[test]
fn large_file_streams_from_disk() {
    let site = Site::new();
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    site.write("big.js", &content);
    let settings = StaticSettings {
        max_cached_file_bytes: 4096,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);

    let head = request("GET", "/static/big.js", &[("Accept-Encoding", "gzip")]);
    let response = drive(&mut files, &head, Instant::now());
    assert_eq!(response.status, 200);
    assert!(matches!(
        response.body,
        FileBody::File {
            offset: 0,
            len: 10_000,
            ..
        }
    ));
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(body(&response), content);

    let ranged = request("GET", "/static/big.js", &[("Range", "bytes=5000-5009")]);
    let part = drive(&mut files, &ranged, Instant::now());
    assert_eq!(part.status, 206);
    assert!(matches!(
        part.body,
        FileBody::File {
            offset: 5000,
            len: 10,
            ..
        }
    ));
    assert_eq!(body(&part), content.get(5000..5010).unwrap());
}

#[test]
fn lru_stays_within_budget() {
    let site = Site::new();
    let budget = 64 * 1024;
    let settings = StaticSettings {
        cache_bytes: budget,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);
    for index in 0..40 {
        let name = format!("file{index}.bin");
        site.write(&name, &vec![b'x'; 10_000]);
        let response = drive(&mut files, &get(&format!("/static/{name}")), Instant::now());
        assert_eq!(response.status, 200, "{name}");
        assert!(
            files.cached_bytes() <= budget,
            "after {name}: {}",
            files.cached_bytes()
        );
    }
    assert!(files.cached_entries() < 40);
    assert!(files.cached_entries() >= 5);
}

#[test]
fn open_files_limit_evicts() {
    let site = Site::new();
    let settings = StaticSettings {
        max_cached_file_bytes: 16,
        max_open_files: 3,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);
    for index in 0..10 {
        let name = format!("big{index}.bin");
        site.write(&name, &[b'y'; 100]);
        drive(&mut files, &get(&format!("/static/{name}")), Instant::now());
        assert!(files.cached_entries() <= 3, "after {name}");
    }
}

#[test]
fn second_respond_never_loads() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    // A budget smaller than one entry: the new entry must survive its own insert.
    let settings = StaticSettings {
        cache_bytes: 1,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);
    let head = get("/static/app.css");
    let far_future = Instant::now() + Duration::from_secs(3600);

    let job = expect_load(respond(&mut files, &head, far_future), "an empty cache must load");
    let loaded = std::thread::spawn(move || job.run()).join().unwrap();
    files.insert(loaded);
    let Outcome::Response(response) = respond(&mut files, &head, far_future) else {
        panic!("second load after insert");
    };
    assert_eq!(response.status, 200);
    assert_eq!(body(&response), stylesheet());
}

#[test]
fn route_for_longest_prefix() {
    let site = Site::new();
    fs::create_dir_all(site.root().join("img")).unwrap();
    let routes = vec![
        StaticRoute::new("/static/", site.root()).unwrap(),
        StaticRoute::new("/static/img/", site.root().join("img")).unwrap(),
        StaticRoute::new("/resources/", site.root()).unwrap(),
    ];
    let files = StaticFiles::new(routes, StaticSettings::default());

    let cases = [
        ("/static/a.css", Some(0)),
        ("/static/img/a.png", Some(1)),
        ("/static/img", Some(0)),
        ("/resources/x", Some(2)),
        ("/static", None),
        ("/api/static/", None),
        ("/", None),
        // Matched after normalization.
        ("/st%61tic/a.css", Some(0)),
        ("//static//a.css", Some(0)),
        ("/static/img/../a.css", Some(0)),
        ("/static/./img/a.png", Some(1)),
        ("/static/im%67/a.png", Some(1)),
        ("/api/../static/a.css", Some(0)),
        ("/static/../api/x", None),
        ("/static/img/..", Some(0)),
        // Paths that do not normalize are matched as sent.
        ("/static/%zz", Some(0)),
        ("/static/a%00", Some(0)),
        ("/static/../../etc/passwd", Some(0)),
        ("/st%61tic/%zz", None),
        ("/../static/a.css", None),
    ];
    for (path, expected) in cases {
        let route = files.route_for(path).map(|target| target.route());
        assert_eq!(route, expected, "{path}");
    }
}

#[test]
fn normalized_prefix_serves_file() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    site.write(".env", b"SECRET=1");
    let mut files = site.server();

    let cases = [
        ("/st%61tic/app.css", 200),
        ("//static/app.css", 200),
        ("/other/../static/app.css", 200),
        ("/static/sub/../app.css", 200),
        ("/st%61tic/.env", 404),
        ("/st%61tic/%2eenv", 404),
    ];
    for (target, status) in cases {
        let response = drive(&mut files, &get(target), Instant::now());
        assert_eq!(response.status, status, "{target}");
        if status == 200 {
            assert_eq!(body(&response), stylesheet(), "{target}");
        }
    }
}

#[test]
fn jobs_are_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<LoadJob>();
    assert_send::<Loaded>();
    assert_send::<FileResponse>();
}

#[test]
fn unknown_route_gets_404() {
    let site = Site::new();
    let mut files = site.server();
    // A target from a server with eight routes names route 7, which `files` lacks.
    let wide = StaticFiles::new(vec![site.route(); 8], StaticSettings::default());
    let head = get("/static/a");
    let target = wide.route_for(head.path()).unwrap();
    assert_eq!(target.route(), 7);
    let outcome = files.respond(&target, &head, Instant::now());
    assert!(matches!(
        outcome,
        Outcome::Response(FileResponse { status: 404, .. })
    ));
}

/// Writes `bytes` to `path` and sets its modification time to `seconds` after the epoch.
fn write_with_mtime(path: &std::path::Path, bytes: &[u8], seconds: u64) {
    fs::write(path, bytes).unwrap();
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
}

/// A stylesheet with `.br`, `.zst` and `.gz` siblings whose bytes are markers, not real
/// compressed data: the server must send them as they are.
fn site_with_siblings() -> (Site, Vec<u8>) {
    let site = Site::new();
    let content = stylesheet();
    let path = site.write("app.css", &content);
    write_with_mtime(&path, &content, 1_000_000);
    for (extension, marker) in [("br", "BR"), ("zst", "ZSTD"), ("gz", "GZ")] {
        let sibling = site.root().join(format!("app.css.{extension}"));
        write_with_mtime(&sibling, marker.as_bytes(), 1_000_000);
    }
    (site, content)
}

#[test]
fn sibling_chosen_by_accept_encoding() {
    let (site, content) = site_with_siblings();
    let mut files = site.server();

    let cases: &[(&str, Option<&str>, &[u8])] = &[
        ("gzip, deflate, br, zstd", Some("br"), b"BR"),
        ("gzip, zstd", Some("zstd"), b"ZSTD"),
        ("gzip", Some("gzip"), b"GZ"),
        ("br;q=0.5, gzip;q=0.8", Some("gzip"), b"GZ"),
        ("br;q=0, zstd;q=0, gzip;q=0", None, &[]),
        ("identity", None, &[]),
        ("*", Some("br"), b"BR"),
    ];
    for &(accept, coding, expected) in cases {
        let head = request("GET", "/static/app.css", &[("Accept-Encoding", accept)]);
        let response = drive(&mut files, &head, Instant::now());
        assert_eq!(response.status, 200, "{accept}");
        assert_eq!(response.header("content-encoding"), coding, "{accept}");
        assert_eq!(response.header("vary"), Some("Accept-Encoding"), "{accept}");
        let expected = if coding.is_some() {
            expected.to_vec()
        } else {
            content.clone()
        };
        assert_eq!(body(&response), expected, "{accept}");
        assert_eq!(
            response.header("content-length"),
            Some(expected.len().to_string().as_str()),
            "{accept}"
        );
    }
}

#[test]
fn sibling_etags_distinct() {
    let (site, _) = site_with_siblings();
    let mut files = site.server();

    let mut tags = Vec::new();
    for accept in ["identity", "br", "zstd", "gzip"] {
        let head = request("GET", "/static/app.css", &[("Accept-Encoding", accept)]);
        let response = drive(&mut files, &head, Instant::now());
        tags.push(response.header("etag").unwrap().to_owned());
    }
    let expected_suffixes = ["", "-br\"", "-zst\"", "-gz\""];
    for (tag, suffix) in tags.iter().zip(expected_suffixes) {
        assert!(tag.ends_with(suffix), "{tag} lacks {suffix}");
    }
    let mut unique = tags.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{tags:?}");

    // Each tag revalidates only its own representation.
    let br_tag = tags.get(1).unwrap().as_str();
    let revalidate = request(
        "GET",
        "/static/app.css",
        &[("Accept-Encoding", "br"), ("If-None-Match", br_tag)],
    );
    assert_eq!(drive(&mut files, &revalidate, Instant::now()).status, 304);
    let other = request(
        "GET",
        "/static/app.css",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", br_tag)],
    );
    assert_eq!(drive(&mut files, &other, Instant::now()).status, 200);
}

#[test]
fn stale_sibling_ignored() {
    let site = Site::new();
    let content = stylesheet();
    let path = site.write("app.css", &content);
    write_with_mtime(&site.root().join("app.css.br"), b"OLD", 1_000_000);
    write_with_mtime(&path, &content, 1_000_001);
    let mut files = site.server();

    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "br, gzip")]);
    let response = drive(&mut files, &head, Instant::now());

    // The stale `.br` is skipped and the server's own gzip takes its place.
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&body(&response), content.len()), content);
}

#[test]
fn gz_sibling_replaces_own_gzip() {
    let (site, _) = site_with_siblings();
    fs::remove_file(site.root().join("app.css.br")).unwrap();
    fs::remove_file(site.root().join("app.css.zst")).unwrap();
    let mut files = site.server();

    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "gzip")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(body(&response), b"GZ");
}

#[test]
fn sibling_not_smaller_skipped() {
    let site = Site::new();
    let path = site.write("tiny.js", b"a()");
    write_with_mtime(&path, b"a()", 1_000_000);
    write_with_mtime(&site.root().join("tiny.js.br"), b"LONGER", 1_000_000);
    let mut files = site.server();

    let head = request("GET", "/static/tiny.js", &[("Accept-Encoding", "br")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(body(&response), b"a()");
}

#[test]
fn sibling_outside_root_skipped() {
    let site = Site::new();
    let content = stylesheet();
    let path = site.write("app.css", &content);
    write_with_mtime(&path, &content, 1_000_000);
    let outside = site.temp.path.join("outside/app.css.br");
    write_with_mtime(&outside, b"SECRET", 1_000_000);
    symlink(&outside, site.root().join("app.css.br")).unwrap();
    fs::create_dir_all(site.root().join("app.css.zst")).unwrap();
    let mut files = site.server();

    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "br, zstd")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(body(&response), content);
}

#[test]
fn sibling_requested_directly() {
    let (site, _) = site_with_siblings();
    let mut files = site.server();

    let cases = [
        ("/static/app.css.gz", "application/gzip", b"GZ".as_slice()),
        (
            "/static/app.css.zst",
            "application/zstd",
            b"ZSTD".as_slice(),
        ),
        (
            "/static/app.css.br",
            "application/octet-stream",
            b"BR".as_slice(),
        ),
    ];
    for (target, content_type, expected) in cases {
        let head = request("GET", target, &[("Accept-Encoding", "br, zstd, gzip")]);
        let response = drive(&mut files, &head, Instant::now());
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{target}"
        );
        assert_eq!(response.header("content-encoding"), None, "{target}");
        assert_eq!(body(&response), expected, "{target}");
    }
}

#[test]
fn sibling_change_seen_after_interval() {
    let (site, _) = site_with_siblings();
    let mut files = site.server();
    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "br")]);
    let start = Instant::now();
    assert_eq!(body(&drive(&mut files, &head, start)), b"BR");

    write_with_mtime(&site.root().join("app.css.br"), b"BR2", 1_000_005);
    let late = start + Duration::from_secs(2);
    let job = expect_load(respond(&mut files, &head, late), "no load after the sibling changed");
    files.insert(job.run());
    assert_eq!(body(&drive(&mut files, &head, late)), b"BR2");

    fs::remove_file(site.root().join("app.css.br")).unwrap();
    let later = start + Duration::from_secs(4);
    let response = drive(&mut files, &head, later);
    assert_eq!(response.header("content-encoding"), None);
}

#[test]
fn new_sibling_seen_after_interval() {
    let site = Site::new();
    let content = stylesheet();
    let path = site.write("app.css", &content);
    write_with_mtime(&path, &content, 1_000_000);
    let mut files = site.server();
    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "br, gzip")]);
    let start = Instant::now();
    let first = drive(&mut files, &head, start);
    assert_eq!(first.header("content-encoding"), Some("gzip"));

    write_with_mtime(&site.root().join("app.css.br"), b"BR", 1_000_000);
    let late = start + Duration::from_secs(2);
    let second = drive(&mut files, &head, late);
    assert_eq!(second.header("content-encoding"), Some("br"));
    assert_eq!(body(&second), b"BR");
}

#[test]
fn siblings_for_streamed_file() {
    let site = Site::new();
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let path = site.write("big.js", &content);
    write_with_mtime(&path, &content, 1_000_000);
    write_with_mtime(&site.root().join("big.js.br"), b"BR", 1_000_000);
    let settings = StaticSettings {
        max_cached_file_bytes: 4096,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);

    let encoded = request("GET", "/static/big.js", &[("Accept-Encoding", "br")]);
    let response = drive(&mut files, &encoded, Instant::now());
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(body(&response), b"BR");

    let plain = drive(&mut files, &get("/static/big.js"), Instant::now());
    assert!(matches!(plain.body, FileBody::File { len: 10_000, .. }));
}

/// Splits a `multipart/byteranges` body into (headers, data) per part, checking the framing.
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("\r\n--{boundary}");
    let text = body.to_vec();
    let close = format!("{delimiter}--\r\n");
    assert!(text.ends_with(close.as_bytes()), "no close delimiter");
    let mut parts = Vec::new();
    let mut rest = text.get(..text.len() - close.len()).unwrap();
    while !rest.is_empty() {
        assert!(rest.starts_with(delimiter.as_bytes()), "no delimiter");
        rest = rest.get(delimiter.len() + 2..).unwrap();
        let blank = rest
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap();
        let headers = String::from_utf8(rest.get(..blank).unwrap().to_vec()).unwrap();
        rest = rest.get(blank + 4..).unwrap();
        let end = rest
            .windows(delimiter.len())
            .position(|window| window == delimiter.as_bytes())
            .unwrap_or(rest.len());
        parts.push((headers, rest.get(..end).unwrap().to_vec()));
        rest = rest.get(end..).unwrap();
    }
    parts
}

#[test]
fn multipart_range_body() {
    let site = Site::new();
    let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    site.write("data.txt", &content);
    let mut files = site.server();

    let head = request(
        "GET",
        "/static/data.txt",
        &[("Range", "bytes=900-,0-9, 20-29")],
    );
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), None);
    assert_eq!(response.header("content-encoding"), None);
    let content_type = response.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap();
    assert!(boundary.len() <= 70, "{boundary}");
    let bytes = body(&response);
    assert_eq!(
        response.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    let parts = multipart_parts(&bytes, boundary);
    let expected = [
        (900..1000, "bytes 900-999/1000"),
        (0..10, "bytes 0-9/1000"),
        (20..30, "bytes 20-29/1000"),
    ];
    assert_eq!(parts.len(), expected.len());
    for ((headers, data), (range, content_range)) in parts.iter().zip(expected) {
        assert!(
            headers.contains("Content-Type: text/plain; charset=utf-8"),
            "{headers}"
        );
        assert!(
            headers.contains(&format!("Content-Range: {content_range}")),
            "{headers}"
        );
        assert_eq!(data.as_slice(), content.get(range).unwrap());
    }
}

#[test]
fn multipart_head_and_limits() {
    let site = Site::new();
    let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    site.write("data.txt", &content);
    let settings = StaticSettings {
        max_ranges: 2,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);

    let two = request("GET", "/static/data.txt", &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(drive(&mut files, &two, Instant::now()).status, 206);
    let three = request("GET", "/static/data.txt", &[("Range", "bytes=0-1,5-6,9-9")]);
    let whole = drive(&mut files, &three, Instant::now());
    assert_eq!(whole.status, 200);
    assert_eq!(body(&whole), content);
}

#[test]
fn multipart_streamed_file_whole() {
    let site = Site::new();
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    site.write("big.bin", &content);
    let settings = StaticSettings {
        max_cached_file_bytes: 4096,
        ..StaticSettings::default()
    };
    let mut files = site.server_with(site.route(), settings);

    let head = request("GET", "/static/big.bin", &[("Range", "bytes=0-9,100-109")]);
    let response = drive(&mut files, &head, Instant::now());

    assert_eq!(response.status, 200);
    assert!(matches!(
        response.body,
        FileBody::File {
            offset: 0,
            len: 10_000,
            ..
        }
    ));
}

#[test]
fn write_head_cached_gzip_200() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut route = site.route();
    route.max_age = Some(60);
    let mut files = site.server_with(route, StaticSettings::default());
    let head = request("GET", "/static/app.css", &[("Accept-Encoding", "gzip")]);
    let response = drive(&mut files, &head, Instant::now());

    let mut out = Vec::new();
    let date: &[u8] = b"Fri, 04 Dec 2026 20:39:01 GMT";
    response.write_head(&mut out, &[("Date", date), ("Server", b"ringfront")], Some(b"close"));
    let text = String::from_utf8(out).unwrap();
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.pop(), Some(""));
    assert_eq!(lines.pop(), Some(""));
    assert_eq!(lines.first(), Some(&"HTTP/1.1 200 OK"));
    assert_eq!(lines.last(), Some(&"Connection: close"));

    let length = body(&response).len().to_string();
    let etag = response.header("etag").unwrap().to_owned();
    let last_modified = response.header("last-modified").unwrap().to_owned();
    let expected = [
        ("Date", "Fri, 04 Dec 2026 20:39:01 GMT"),
        ("Server", "ringfront"),
        ("ETag", etag.as_str()),
        ("Last-Modified", last_modified.as_str()),
        ("Cache-Control", "public, max-age=60"),
        ("Vary", "Accept-Encoding"),
        ("Accept-Ranges", "bytes"),
        ("Content-Type", "text/css; charset=utf-8"),
        ("Content-Length", length.as_str()),
        ("Content-Encoding", "gzip"),
        ("Connection", "close"),
    ];
    let fields: Vec<(&str, &str)> = lines
        .iter()
        .skip(1)
        .map(|line| line.split_once(": ").unwrap())
        .collect();
    assert_eq!(fields.len(), expected.len(), "{fields:?}");
    for field in expected {
        assert!(fields.contains(&field), "{field:?} missing from {fields:?}");
    }
}

#[test]
fn not_modified_repeats_validators() {
    let site = Site::new();
    site.write("app.css", &stylesheet());
    let mut route = site.route();
    route.max_age = Some(60);
    let mut files = site.server_with(route, StaticSettings::default());
    let first = drive(&mut files, &get("/static/app.css"), Instant::now());
    let etag = first.header("etag").unwrap().to_owned();

    let head = request("GET", "/static/app.css", &[("If-None-Match", &etag)]);
    let response = drive(&mut files, &head, Instant::now());
    assert_eq!(response.status, 304);
    let names: Vec<&str> = response.headers().map(|(name, _)| name).collect();
    assert_eq!(names, ["ETag", "Last-Modified", "Cache-Control", "Vary"]);
    assert_eq!(response.header("etag"), Some(etag.as_str()));
}
