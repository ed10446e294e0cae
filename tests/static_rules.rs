//! Static file rules over TLS, one behaviour per test: revalidation of changed and truncated
//! files, large bodies, pre-compressed siblings, preconditions, ranges, HEAD, 405,
//! Cache-Control, dotfiles and prefix matching on the normalized path.

mod common;

use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::ringfront::toml_string;
use common::{
    Config, Connection, Response, Ringfront, StubUpstream, TempDir, TestCert, https_request,
    noise_bytes, plain_request,
};

/// Cache revalidation interval of the test server. Short, so that tests of changed files run
/// fast.
const REVALIDATE: &str = "200ms";

/// Files above this size are streamed from an open file handle instead of held in memory.
const MAX_FILE_BYTES: usize = 64 * 1024;

/// Time a change on disk may take to show: the revalidate interval plus a wide margin for a
/// machine busy with parallel tests.
const CHANGE_DEADLINE: Duration = Duration::from_secs(5);

/// ringfront serving `dir` under `/static/` over HTTPS and plain HTTP, with a stub upstream.
struct Fixture {
    ringfront: Ringfront,
    cert: TestCert,
    dir: TempDir,
    _upstream: StubUpstream,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(|dir| dir.write("app.css", stylesheet()))
    }

    /// Starts the server after `populate` wrote the files into the served directory.
    fn start_with(populate: impl FnOnce(&TempDir) -> PathBuf) -> Fixture {
        let dir = TempDir::new("static-rules");
        populate(&dir);
        let cert = TestCert::generate(&["localhost"]);
        let upstream = StubUpstream::start();
        let mut config = Config::new()
            .https(&cert)
            .http()
            .to_toml(upstream.socket_path());
        config.push_str(&format!(
            "\n[[static]]\nprefix = \"/static/\"\ndir = {}\nmax_age = 600\n",
            toml_string(&dir.path().to_string_lossy())
        ));
        config.push_str(&format!(
            "\n[static_cache]\nrevalidate = \"{REVALIDATE}\"\nmax_file_bytes = {MAX_FILE_BYTES}\n"
        ));
        let ringfront = Ringfront::start(&config);
        Fixture {
            ringfront,
            cert,
            dir,
            _upstream: upstream,
        }
    }

    /// Sends `METHOD target` with `extra_headers` (each line ending in CRLF) over a new TLS
    /// connection and reads the response.
    fn request(&self, method: &str, target: &str, extra_headers: &str) -> Response {
        let request =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}\r\n");
        let mut connection = Connection::https(self.ringfront.https_port(), &self.cert);
        connection.request(request.as_bytes())
    }

    fn get(&self, target: &str, extra_headers: &str) -> Response {
        self.request("GET", target, extra_headers)
    }
}

/// Returns a stylesheet of about 6 KiB that compresses well.
fn stylesheet() -> String {
    (0..120)
        .map(|index| {
            format!(
                ".rule-{index} {{ margin: {}px; color: #333; }}\n",
                index % 9
            )
        })
        .collect()
}

/// Sets the modification time of `path` to `seconds` after the epoch.
fn set_mtime(path: &PathBuf, seconds: u64) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
}

/// Writes `app.css` and marker siblings, all with the same modification time.
fn write_siblings(dir: &TempDir) -> PathBuf {
    let path = dir.write("app.css", stylesheet());
    set_mtime(&path, 1_700_000_000);
    for (extension, marker) in [("br", "BROTLI"), ("gz", "GZIP")] {
        let sibling = dir.write(format!("app.css.{extension}"), marker);
        set_mtime(&sibling, 1_700_000_000);
    }
    path
}

/// Returns `count` bytes of the repeating digits 0 to 9, for range tests.
fn digits(count: usize) -> Vec<u8> {
    (0..count).map(|index| b'0' + (index % 10) as u8).collect()
}

#[test]
fn changed_file_served_new() {
    let fixture = Fixture::start_with(|dir| dir.write("note.txt", "version one\n"));
    let first = fixture.get("/static/note.txt", "");
    assert_eq!(first.body, b"version one\n");

    fixture.dir.write("note.txt", "version two, longer\n");
    let changed = Instant::now();
    let mut latest = first.body;
    while latest != b"version two, longer\n" && changed.elapsed() < CHANGE_DEADLINE {
        thread::sleep(Duration::from_millis(50));
        latest = fixture.get("/static/note.txt", "").body;
    }

    assert_eq!(latest, b"version two, longer\n");
}

#[test]
fn truncated_file_never_garbage() {
    let old = noise_bytes(4 * MAX_FILE_BYTES);
    let fixture = Fixture::start_with(|dir| {
        dir.write("ok.txt", "still serving\n");
        dir.write("big.bin", &old)
    });
    // Two requests on separate connections so that both workers likely cache the file.
    for _ in 0..2 {
        assert_eq!(fixture.get("/static/big.bin", "").body, old);
    }

    let new_len = MAX_FILE_BYTES + 100;
    let file = fs::File::options()
        .write(true)
        .open(fixture.dir.join("big.bin"))
        .unwrap();
    file.set_len(new_len as u64).unwrap();
    let new = old.get(..new_len).unwrap();

    for attempt in 0..6 {
        let mut connection = Connection::https(fixture.ringfront.https_port(), &fixture.cert);
        connection
            .send(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let raw = connection.read_until_close();
        let head_end = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("attempt {attempt}: no response head"));
        let body = raw.get(head_end + 4..).unwrap();
        assert!(
            body.len() <= new_len,
            "attempt {attempt}: {} body bytes for a file of {new_len}",
            body.len()
        );
        assert!(
            new.starts_with(body),
            "attempt {attempt}: body is not a prefix of the file"
        );
        thread::sleep(Duration::from_millis(100));
    }

    let other = fixture.get("/static/ok.txt", "");
    assert_eq!(other.body, b"still serving\n");
    let after = fixture.get("/static/big.bin", "");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, new);
}

/// A file streamed from disk that shrank after the cache's last look at it is cut short, and
/// the error log gets a warning, because the access log shows only a 200 with fewer bytes.
#[test]
fn shrunk_file_logged() {
    let dir = TempDir::new("static-shrunk");
    let old = noise_bytes(4 * MAX_FILE_BYTES);
    dir.write("big.bin", &old);
    let cert = TestCert::generate(&["localhost"]);
    let upstream = StubUpstream::start();
    // One worker, and a revalidate interval longer than the test, so that the second request
    // is served from the stale size.
    let mut config = Config::new().workers(1).https(&cert).http().to_toml(upstream.socket_path());
    config.push_str(&format!(
        "\n[[static]]\nprefix = \"/static/\"\ndir = {}\n\n[static_cache]\nrevalidate = \"60s\"\nmax_file_bytes = {MAX_FILE_BYTES}\n",
        toml_string(&dir.path().to_string_lossy())
    ));
    let ringfront = Ringfront::start(&config);
    let request = b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_eq!(plain_request(ringfront.http_port(), request).body, old);

    let new_len = MAX_FILE_BYTES + 100;
    fs::File::options().write(true).open(dir.join("big.bin")).unwrap().set_len(new_len as u64).unwrap();
    let mut plain = Connection::plain(ringfront.http_port());
    plain.send(request);
    let plain_raw = plain.read_until_close();
    let mut tls = Connection::https(ringfront.https_port(), &cert);
    tls.send(request);
    let tls_raw = tls.read_until_close();

    assert!(plain_raw.len() < old.len(), "plain: {} bytes", plain_raw.len());
    assert!(tls_raw.len() < old.len(), "TLS: {} bytes", tls_raw.len());
    let output = ringfront.wait_for_output("static file shrank", 2, CHANGE_DEADLINE);
    assert_eq!(output.matches("static file shrank").count(), 2, "{output}");
    assert!(output.contains("target=/static/big.bin"), "{output}");
}

#[test]
fn sixteen_mib_identical_tls_and_plain() {
    let content = noise_bytes(16 * 1024 * 1024);
    let fixture = Fixture::start_with(|dir| dir.write("large.bin", &content));
    let request = b"GET /static/large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";

    let tls = https_request(fixture.ringfront.https_port(), &fixture.cert, request);
    let plain = plain_request(fixture.ringfront.http_port(), request);

    assert_eq!(tls.status, 200);
    assert_eq!(plain.status, 200);
    assert!(tls.body == content, "TLS body differs from the file");
    assert!(plain.body == content, "plain body differs from the file");
}

#[test]
fn sibling_br_preferred() {
    let fixture = Fixture::start_with(write_siblings);
    let response = fixture.get("/static/app.css", "Accept-Encoding: gzip, deflate, br\r\n");
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    assert_eq!(response.body, b"BROTLI");
}

#[test]
fn sibling_gzip_by_q_value() {
    let fixture = Fixture::start_with(write_siblings);
    let cases = [
        "Accept-Encoding: br;q=0.5, gzip;q=0.9\r\n",
        "Accept-Encoding: br;q=0, gzip\r\n",
        "Accept-Encoding: gzip\r\n",
    ];
    for header in cases {
        let response = fixture.get("/static/app.css", header);
        assert_eq!(
            response.header("content-encoding"),
            Some("gzip"),
            "{header}"
        );
        assert_eq!(response.body, b"GZIP", "{header}");
    }
}

#[test]
fn sibling_identity_when_refused() {
    let fixture = Fixture::start_with(write_siblings);
    let cases = [
        "",
        "Accept-Encoding: br;q=0, gzip;q=0\r\n",
        "Accept-Encoding: gzip;q=0.5, br;q=0.5, identity\r\n",
    ];
    for header in cases {
        let response = fixture.get("/static/app.css", header);
        assert_eq!(response.header("content-encoding"), None, "{header:?}");
        assert_eq!(response.body, stylesheet().as_bytes(), "{header:?}");
        assert_eq!(
            response.header("vary"),
            Some("Accept-Encoding"),
            "{header:?}"
        );
    }
}

#[test]
fn sibling_requested_directly() {
    let fixture = Fixture::start_with(write_siblings);
    let response = fixture.get("/static/app.css.gz", "Accept-Encoding: gzip\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/gzip"));
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.body, b"GZIP");
}

#[test]
fn if_none_match_list_and_star() {
    let fixture = Fixture::start();
    let etag = fixture
        .get("/static/app.css", "")
        .header("etag")
        .unwrap()
        .to_owned();

    let list = format!("If-None-Match: \"nope\", {etag}\r\n");
    assert_eq!(fixture.get("/static/app.css", &list).status, 304);
    let star = fixture.get("/static/app.css", "If-None-Match: *\r\n");
    assert_eq!(star.status, 304);
    assert!(star.body.is_empty());
    let other = fixture.get("/static/app.css", "If-None-Match: \"nope\", \"other\"\r\n");
    assert_eq!(other.status, 200);
}

#[test]
fn if_none_match_weak_comparison() {
    let fixture = Fixture::start();
    let etag = fixture
        .get("/static/app.css", "")
        .header("etag")
        .unwrap()
        .to_owned();

    let weak = format!("If-None-Match: W/{etag}\r\n");
    let response = fixture.get("/static/app.css", &weak);

    assert_eq!(response.status, 304);
    assert_eq!(response.header("etag"), Some(etag.as_str()));
}

#[test]
fn modified_since_ignored_with_none_match() {
    let fixture = Fixture::start();
    let first = fixture.get("/static/app.css", "");
    let last_modified = first.header("last-modified").unwrap();

    let headers = format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {last_modified}\r\n");
    let response = fixture.get("/static/app.css", &headers);

    assert_eq!(response.status, 200);
    let alone = format!("If-Modified-Since: {last_modified}\r\n");
    assert_eq!(fixture.get("/static/app.css", &alone).status, 304);
}

#[test]
fn if_match_failure_412() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/app.css", "If-Match: \"other\"\r\n");
    assert_eq!(response.status, 412);
    assert_eq!(response.body_text(), "<html><body><h1>412 Precondition Failed</h1></body></html>\n");
    assert!(response.header("etag").is_some(), "{:?}", response.headers);
}

#[test]
fn if_unmodified_since_failure_412() {
    let fixture = Fixture::start();
    let headers = "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    assert_eq!(fixture.get("/static/app.css", headers).status, 412);
}

fn range_fixture() -> Fixture {
    Fixture::start_with(|dir| dir.write("digits.txt", digits(1000)))
}

#[test]
fn range_single() {
    let fixture = range_fixture();
    let response = fixture.get("/static/digits.txt", "Range: bytes=10-19\r\n");
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(response.header("content-length"), Some("10"));
    assert_eq!(response.body, digits(20).get(10..).unwrap());
}

#[test]
fn range_suffix() {
    let fixture = range_fixture();
    let response = fixture.get("/static/digits.txt", "Range: bytes=-5\r\n");
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), Some("bytes 995-999/1000"));
    assert_eq!(response.body, b"56789");
}

#[test]
fn range_open_ended() {
    let fixture = range_fixture();
    let response = fixture.get("/static/digits.txt", "Range: bytes=990-\r\n");
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(response.body, b"0123456789");
}

#[test]
fn range_multipart() {
    let fixture = range_fixture();
    let response = fixture.get("/static/digits.txt", "Range: bytes=0-2, 995-\r\n");

    assert_eq!(response.status, 206);
    let content_type = response.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("content type {content_type}"));
    let expected = format!(
        "\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Range: bytes 0-2/1000\r\n\r\n012\
         \r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Range: bytes 995-999/1000\r\n\r\n56789\
         \r\n--{boundary}--\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&response.body), expected);
    let length = expected.len().to_string();
    assert_eq!(response.header("content-length"), Some(length.as_str()));
}

#[test]
fn range_overlapping_whole_file() {
    let fixture = range_fixture();
    let response = fixture.get("/static/digits.txt", "Range: bytes=0-99, 50-149\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, digits(1000));
}

#[test]
fn range_unsatisfiable_416() {
    let fixture = range_fixture();
    let response = fixture.get("/static/digits.txt", "Range: bytes=1000-\r\n");
    assert_eq!(response.status, 416);
    assert_eq!(response.header("content-range"), Some("bytes */1000"));
    assert_eq!(response.body_text(), "<html><body><h1>416 Range Not Satisfiable</h1></body></html>\n");
    assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn if_range_match_partial() {
    let fixture = range_fixture();
    let etag = fixture
        .get("/static/digits.txt", "")
        .header("etag")
        .unwrap()
        .to_owned();

    let headers = format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n");
    let response = fixture.get("/static/digits.txt", &headers);

    assert_eq!(response.status, 206);
    assert_eq!(response.body, b"01234");
}

#[test]
fn if_range_mismatch_whole() {
    let fixture = range_fixture();
    let cases = [
        "Range: bytes=0-4\r\nIf-Range: \"stale\"\r\n",
        "Range: bytes=0-4\r\nIf-Range: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
    ];
    for headers in cases {
        let response = fixture.get("/static/digits.txt", headers);
        assert_eq!(response.status, 200, "{headers:?}");
        assert_eq!(response.body, digits(1000), "{headers:?}");
    }
}

#[test]
fn head_same_headers_as_get() {
    let fixture = Fixture::start();
    let get = fixture.get("/static/app.css", "Accept-Encoding: gzip\r\n");
    let head = fixture.request("HEAD", "/static/app.css", "Accept-Encoding: gzip\r\n");

    assert_eq!(head.status, get.status);
    assert!(head.body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "content-encoding",
        "etag",
        "last-modified",
        "cache-control",
        "vary",
        "accept-ranges",
    ] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
}

#[test]
fn post_gets_405_with_allow() {
    let fixture = Fixture::start();
    let response = fixture.request("POST", "/static/app.css", "Content-Length: 0\r\n");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}

#[test]
fn max_age_sets_cache_control() {
    let fixture = Fixture::start();
    let response = fixture.get("/static/app.css", "");
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=600")
    );
}

#[test]
fn dotfiles_404_by_default() {
    let fixture = Fixture::start_with(|dir| {
        dir.write(".env", "SECRET=1\n");
        dir.write(".git/config", "[core]\n")
    });
    for target in ["/static/.env", "/static/.git/config", "/static/%2eenv"] {
        let response = fixture.get(target, "");
        assert_eq!(response.status, 404, "{target}");
        assert!(!response.body.starts_with(b"SECRET"), "{target}");
    }
}

#[test]
fn normalized_prefix_reaches_route() {
    let fixture = Fixture::start();
    for target in [
        "/st%61tic/app.css",
        "//static/app.css",
        "/x/../static/app.css",
    ] {
        let response = fixture.get(target, "");
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.body, stylesheet().as_bytes(), "{target}");
    }
}
