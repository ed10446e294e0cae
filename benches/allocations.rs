//! Heap allocations per request on the static cache-hit path, counted with a counting global
//! allocator. It parses a request head as a keep-alive connection does, recycling the last
//! head's buffers. Then it routes the request, responds from a warm cache entry and writes the
//! response head as the connection does, once without `Accept-Encoding` and once for the gzip
//! variant. Run with `cargo bench --bench allocations`, which prints the counts. Zero is the
//! goal, and each count above zero is a place where the hot path still allocates.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::BROWSER_HEAD;
use ringfront::files::{Outcome, StaticFiles, StaticRoute, StaticSettings};
use ringfront::http::{self, Event, Limits, RequestDecoder, RequestHead};

/// The system allocator, counting every allocation and reallocation.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged,
// so the system allocator's guarantees hold; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout, as the trait requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Requests measured per step; the printed counts are averages over them.
const ROUNDS: usize = 1000;

const REQUEST: &[u8] = b"GET /static/small.txt HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

const GZIP_REQUEST: &[u8] = b"GET /static/app.css HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n";

const DATE: [u8; 29] = *b"Fri, 04 Dec 2026 20:39:01 GMT";

fn count<T>(mut step: impl FnMut() -> T) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        std::hint::black_box(step());
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / ROUNDS as f64
}

/// Counts the allocations of parsing `request` over and over on one decoder, as a keep-alive
/// connection does. It resets the decoder after each request and recycles the finished head, so
/// the head's buffers serve the next one.
fn count_parse(request: &[u8]) -> f64 {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut body = Vec::new();
    let mut parse = || {
        decoder.reset();
        let mut head = None;
        let mut offset = 0;
        while let Ok((used, event)) = decoder.decode(request.get(offset..).unwrap_or_default(), &mut body) {
            offset += used;
            match event {
                Event::Head(parsed) => head = Some(parsed),
                Event::Complete | Event::NeedMore => break,
                Event::Body => {}
            }
        }
        let fields = head.as_ref().map_or(0, |head| head.headers.len());
        if let Some(head) = head {
            decoder.recycle(head);
        }
        fields
    };
    // The first request on a connection allocates the buffers that later ones reuse.
    parse();
    count(parse)
}

/// Parses a request that must be a complete head.
fn parse_head(request: &[u8]) -> RequestHead {
    let mut decoder = RequestDecoder::new(Limits::default());
    let Ok((_, Event::Head(head))) = decoder.decode(request, &mut Vec::new()) else {
        panic!("the sample request must parse");
    };
    head
}

/// Loads the file `head` names, then counts the allocations of what `Connection::serve_static`
/// does on a cache hit: route, respond, and write the head into a reused buffer.
fn count_cache_hit(files: &mut StaticFiles, head: &RequestHead, now: Instant, encoding: Option<&str>) -> f64 {
    let target = files.route_for(head.path()).expect("a static route");
    if let Outcome::Load(job) = files.respond(&target, head, now) {
        files.insert(job.run());
    }
    let Outcome::Response(response) = files.respond(&target, head, now) else {
        panic!("the file must be cached after its load");
    };
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), encoding);

    let mut out = Vec::with_capacity(1024);
    count(|| {
        let target = files.route_for(head.path()).expect("a static route");
        let Outcome::Response(response) = files.respond(&target, head, now) else {
            panic!("a warm cache must not load");
        };
        out.clear();
        response.write_head(&mut out, &[("Date", &DATE), ("Server", b"ringfront")], None);
        response
    })
}

fn main() {
    let dir = std::env::temp_dir().join(format!("ringfront-alloc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    std::fs::write(dir.join("small.txt"), vec![b'a'; 1024]).expect("write small.txt");
    let css: String = (0..64).map(|index| format!(".card-{index} {{ padding: {}px; }}\n", index % 7)).collect();
    std::fs::write(dir.join("app.css"), css).expect("write app.css");
    let route = StaticRoute::new("/static/", &dir).expect("a valid route");
    let settings = StaticSettings { revalidate_interval: Duration::from_secs(3600), ..StaticSettings::default() };
    let mut files = StaticFiles::new(vec![route], settings);

    let head = parse_head(REQUEST);
    let gzip_head = parse_head(GZIP_REQUEST);
    let now = Instant::now();

    let parse_count = count_parse(REQUEST);
    let browser_parse_count = count_parse(BROWSER_HEAD);
    let identity_count = count_cache_hit(&mut files, &head, now, None);
    let gzip_count = count_cache_hit(&mut files, &gzip_head, now, Some("gzip"));
    let mut out = Vec::with_capacity(1024);
    let write_count = count(|| {
        out.clear();
        http::write_head(&mut out, 200, &[("Date", &DATE), ("Content-Length", b"1024"), ("Content-Type", b"text/plain")]);
    });

    println!("allocations per request (average of {ROUNDS}):");
    println!("  parse request head, buffers recycled (3 header fields): {parse_count:.1}");
    println!("  parse browser request head, buffers recycled (12 header fields): {browser_parse_count:.1}");
    println!("  static cache hit, no Accept-Encoding (route, respond, write head): {identity_count:.1}");
    println!("  static cache hit, gzip variant (route, respond, write head): {gzip_count:.1}");
    println!("  http::write_head into a reused buffer: {write_count:.1}");
    let _ = std::fs::remove_dir_all(&dir);
}
