//! Throughput of the HTTP/1.1 core on typical inputs: request heads of two sizes, parsed alone
//! and through a decoder that recycles them as a keep-alive connection does, a chunked body and
//! a response head. Run with `cargo bench --bench http_parse`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
mod common;

use common::BROWSER_HEAD;
use ringfront::http::{
    ChunkedDecoder, Event, Limits, RequestDecoder, parse_request_head, write_head,
};

/// A head as curl sends it.
const SMALL_HEAD: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";


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
