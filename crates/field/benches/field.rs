//! One head, d = 64: factored at n = 512 … 32768, dense at n = 512 and 2048.
//!
//! `cargo bench -p field` (a few minutes; dense 2048 is an n×n SVD per sample).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use field::{analyze, HeadInput, Method, Params};
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

/// Synthetic f32 head like the example's: decaying spectrum, keys with a common offset.
fn head_data(n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut gauss = move || {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let decay: Vec<f64> = (0..d)
        .map(|t| 3.0 * (-(t as f64) / 8.0).exp() + 0.3)
        .collect();
    let offset: Vec<f64> = (0..d).map(|_| 2.0 * gauss()).collect();
    let q = (0..n * d)
        .map(|x| (gauss() * decay[x % d]) as f32)
        .collect();
    let k = (0..n * d)
        .map(|x| (gauss() * decay[x % d] + offset[x % d]) as f32)
        .collect();
    (q, k)
}

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
