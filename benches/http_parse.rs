//! Throughput of the HTTP/1.1 core on typical inputs: request heads of two sizes, parsed alone
//! and through a decoder that recycles them as a keep-alive connection does, a chunked body and
//! a response head. Run with `cargo bench --bench http_parse`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringfront::http::{
    ChunkedDecoder, Event, Limits, RequestDecoder, parse_request_head, write_head,
};

/// A head as curl sends it.
const SMALL_HEAD: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

/// A head as a desktop browser sends it on a page load with session cookies: 12 headers.
const BROWSER_HEAD: &[u8] = b"GET /account/settings?tab=profile HTTP/1.1\r\n\
Host: app.example.com\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Referer: https://app.example.com/account\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: session=eyJ1c2VyX2lkIjo0MiwiZXhwIjoxNzAwMDAwMDAwfQ.Zm9vYmFyYmF6cXV4; csrftoken=3f9a1c2b7d8e4f60a1b2c3d4e5f60718; theme=dark; _ga=GA1.1.123456789.1700000000\r\n\
\r\n";

/// Builds a 64 KiB body in 4 KiB chunks, as an upload client might send it.
fn chunked_body() -> Vec<u8> {
    let chunk = vec![b'x'; 4096];
    let mut body = Vec::with_capacity(64 * 1024 + 256);
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

fn request_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_request_head");
    for (name, head) in [("curl", SMALL_HEAD), ("browser", BROWSER_HEAD)] {
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse_request_head(black_box(head), &limits))
        });
    }
    group.finish();
}

/// Parses each head through one decoder, resetting it and recycling the head between rounds, so
/// after the first round no buffer is allocated.
fn recycled_request_heads(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_request_head_recycled");
    for (name, head) in [("curl", SMALL_HEAD), ("browser", BROWSER_HEAD)] {
        let mut decoder = RequestDecoder::new(Limits::default());
        let mut body = Vec::new();
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                decoder.reset();
                if let Ok((_, Event::Head(parsed))) = decoder.decode(black_box(head), &mut body) {
                    decoder.recycle(parsed);
                }
            })
        });
    }
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let limits = Limits::default();
    let input = chunked_body();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("chunked_decode");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("64KiB_4KiB_chunks", |b| {
        b.iter(|| {
            out.clear();
            let mut decoder = ChunkedDecoder::new(&limits);
            decoder.decode(black_box(&input), &mut out)
        })
    });
    group.finish();
}

fn response_head(c: &mut Criterion) {
    let date: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let headers: [(&str, &[u8]); 5] = [
        ("Date", date),
        ("Server", b"ringfront"),
        ("Content-Type", b"text/html; charset=utf-8"),
        ("Content-Length", b"5120"),
        ("Cache-Control", b"public, max-age=3600"),
    ];
    let mut out = Vec::with_capacity(512);
    c.bench_function("write_head", |b| {
        b.iter(|| {
            out.clear();
            write_head(&mut out, black_box(200), black_box(&headers));
            out.len()
        })
    });
}

criterion_group!(
    benches,
    request_heads,
    recycled_request_heads,
    chunked,
    response_head
);
criterion_main!(benches);
