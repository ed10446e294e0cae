//! Cost of the static file server's in-memory paths: a cache hit through
//! `StaticFiles::respond` for a 1 KiB file and for the gzip variant of a CSS file of about
//! 100 KiB, then `range::parse_range` and `conditional::evaluate` on their own. Run with
//! `cargo bench --bench static_files`.
//!
//! The cache hits include building the header list, but no `stat`: the revalidate interval is
//! longer than the run.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use ringfront::files::conditional::{self, Conditions, Validators};
use ringfront::files::range::{self, RangeLimits};
use ringfront::files::{Outcome, StaticFiles, StaticRoute, StaticSettings};
use ringfront::http::{BodyFraming, Header, RequestHead, Version};

/// A directory under the system temporary directory, removed on drop.
struct BenchDir {
    path: PathBuf,
}

impl BenchDir {
    fn new() -> BenchDir {
        let path = std::env::temp_dir().join(format!("ringfront-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create the bench directory");
        BenchDir { path }
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn request(target: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: String::from("GET"),
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

/// Loads the file `head` names into the cache, as the server does on a miss.
fn warm(files: &mut StaticFiles, head: &RequestHead, now: Instant) {
    let target = files.route_for(head.path()).expect("a static route");
    if let Outcome::Load(job) = files.respond(&target, head, now) {
        files.insert(job.run());
    }
    assert!(matches!(
        files.respond(&target, head, now),
        Outcome::Response(_)
    ));
}

/// About 100 KiB of CSS rules, varied enough that gzip does real work.
fn stylesheet() -> String {
    let mut css = String::with_capacity(110 * 1024);
    let mut index = 0u32;
    while css.len() < 100 * 1024 {
        css.push_str(&format!(
            ".card-{index} {{ padding: {}px; margin: {}px 0; color: #{:06x}; }}\n",
            index % 17,
            index % 5,
            index.wrapping_mul(2_654_435_761) & 0xff_ffff
        ));
        index += 1;
    }
    css
}

fn cache_hits(c: &mut Criterion) {
    let dir = BenchDir::new();
    std::fs::write(dir.path.join("small.txt"), vec![b'a'; 1024]).expect("write small.txt");
    std::fs::write(dir.path.join("app.css"), stylesheet()).expect("write app.css");
    let route = StaticRoute::new("/static/", &dir.path).expect("a valid route");
    let settings = StaticSettings {
        revalidate_interval: Duration::from_secs(3600),
        ..StaticSettings::default()
    };
    let mut files = StaticFiles::new(vec![route], settings);
    let now = Instant::now();

    let small = request("/static/small.txt", &[]);
    let css_gzip = request("/static/app.css", &[("Accept-Encoding", "gzip, deflate")]);
    warm(&mut files, &small, now);
    warm(&mut files, &css_gzip, now);

    // Routing included, because `respond` takes the target that `route_for` returns.
    let mut group = c.benchmark_group("route_and_respond_cache_hit");
    for (name, head) in [("1KiB", &small), ("css_100KiB_gzip", &css_gzip)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let head = black_box(head);
                let target = files.route_for(head.path()).expect("a static route");
                files.respond(&target, head, now)
            })
        });
    }
    group.finish();
}

fn ranges(c: &mut Criterion) {
    let limits = RangeLimits::default();
    let mut group = c.benchmark_group("parse_range");
    let cases: [(&str, &[u8]); 3] = [
        ("single", b"bytes=0-1023"),
        ("suffix", b"bytes=-500"),
        ("four_parts", b"bytes=0-99, 200-299, 400-499, -100"),
    ];
    for (name, value) in cases {
        group.bench_function(name, |b| {
            b.iter(|| range::parse_range(black_box(value), 100_000, &limits))
        });
    }
    group.finish();
}

fn preconditions(c: &mut Criterion) {
    let validators = Validators {
        etag: "\"0123456789abcdef\"",
        last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let tag_list: &[u8] = b"\"aaaaaaaaaaaaaaaa\", W/\"bbbbbbbbbbbbbbbb\", \"0123456789abcdef\"";
    let date: &[u8] = b"Tue, 14 Nov 2023 22:13:20 GMT";

    let mut group = c.benchmark_group("conditional_evaluate");
    let if_none_match = Conditions {
        if_none_match: vec![tag_list],
        ..Conditions::default()
    };
    group.bench_function("if_none_match_list", |b| {
        b.iter(|| conditional::evaluate(black_box(&if_none_match), &validators, true))
    });
    let if_modified_since = Conditions {
        if_modified_since: vec![date],
        ..Conditions::default()
    };
    group.bench_function("if_modified_since", |b| {
        b.iter(|| conditional::evaluate(black_box(&if_modified_since), &validators, true))
    });
    group.finish();
}

criterion_group!(benches, cache_hits, ranges, preconditions);
criterion_main!(benches);
