//! One head, d = 64: factored at n = 512 … 32768, dense at n = 512 and 2048.
//!
//! `cargo bench -p field` (a few minutes; dense 2048 is an n×n SVD per sample).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use field::{analyze, HeadInput, Method, Params};
use std::hint::black_box;
use std::time::Duration;

#[path = "../examples/common/synthetic_head.rs"]
mod synthetic_head;
use synthetic_head::synthetic_head as head_data;

fn bench(c: &mut Criterion) {
    let d = 64;
    let mut g = c.benchmark_group("head_d64");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for n in [512usize, 2048, 8192, 32768] {
        let (q, k) = head_data(n, d);
        let head = HeadInput::new(&q, &k, n, d, 0.125);
        g.bench_with_input(BenchmarkId::new("factored", n), &head, |b, h| {
            b.iter(|| black_box(analyze(h, &Params::default()).unwrap()))
        });
    }
    g.sampling_mode(SamplingMode::Flat);
    for n in [512usize, 2048] {
        let (q, k) = head_data(n, d);
        let head = HeadInput::new(&q, &k, n, d, 0.125);
        let p = Params {
            method: Method::Dense,
            ..Params::default()
        };
        if n > 1000 {
            g.measurement_time(Duration::from_secs(20));
        }
        g.bench_with_input(BenchmarkId::new("dense", n), &head, |b, h| {
            b.iter(|| black_box(analyze(h, &p).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
