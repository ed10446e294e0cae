//! Cost of compressing a stylesheet of about 110 KiB with libdeflater at levels 6, 9 and 12,
//! which is what a static file miss pays once per file version (on the blocking pool, not the
//! event loop). Run with `cargo bench --bench compression`; the compressed sizes are printed
//! once so the ratio each level buys is visible beside its time.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use libdeflater::{CompressionLvl, Compressor};

/// About 110 KiB of CSS rules with varied selectors, values and comments, so the compressor
/// does the work a real stylesheet asks of it.
fn stylesheet() -> Vec<u8> {
    let properties = ["padding", "margin", "color", "background-color", "border-radius", "font-size", "line-height"];
    let mut css = String::with_capacity(112 * 1024);
    let mut index = 0u32;
    while css.len() < 110 * 1024 {
        let hash = index.wrapping_mul(2_654_435_761);
        if index.is_multiple_of(40) {
            css.push_str(&format!("/* section {index}: layout of the card grid */\n"));
        }
        css.push_str(&format!(".component-{index} > .item:nth-child({}) {{\n", index % 7 + 1));
        for (slot, property) in properties.iter().enumerate() {
            if hash >> slot & 1 == 1 {
                css.push_str(&format!("  {property}: {}px #{:06x};\n", (hash >> 8) % 48, hash & 0xff_ffff));
            }
        }
        css.push_str("}\n");
        index += 1;
    }
    css.into_bytes()
}

fn compress(level: i32, input: &[u8], output: &mut Vec<u8>) -> usize {
    let level = CompressionLvl::new(level).unwrap_or_default();
    let mut compressor = Compressor::new(level);
    output.resize(compressor.gzip_compress_bound(input.len()), 0);
    compressor.gzip_compress(input, output).unwrap_or(0)
}

fn gzip_levels(c: &mut Criterion) {
    let css = stylesheet();
    let mut output = Vec::new();
    let mut group = c.benchmark_group("gzip_css_110KiB");
    group.throughput(Throughput::Bytes(css.len() as u64));
    for level in [6, 9, 12] {
        let size = compress(level, &css, &mut output);
        println!("level {level}: {} bytes -> {size} bytes", css.len());
        group.bench_with_input(BenchmarkId::from_parameter(level), &level, |b, &level| {
            b.iter(|| compress(black_box(level), black_box(&css), &mut output));
        });
    }
    group.finish();
}

criterion_group!(benches, gzip_levels);
criterion_main!(benches);
