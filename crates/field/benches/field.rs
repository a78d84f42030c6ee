//! One head, d = 64: factored at n = 512 … 32768, dense at n = 512 and 2048,
//! and the factored analysis with W_Q/W_K (d_model = 576, SmolLM2-135M's
//! width: every measure) at n = 512 and 2048, whose breakdown by measure
//! (mean CPU time of each stage over 50 runs) is printed first: for the head
//! alone, and with the work that `analyze` shares between heads handed in
//! (the key factor, per KV head; the learned spectrum, per head and model),
//! whose own cost is printed between the two.
//!
//! `cargo bench -p field` (a few minutes; dense 2048 is an n×n SVD per sample);
//! `cargo bench -p field -- with_weights` for the per-head bar alone.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use field::{analyze, HeadInput, KeyFactor, Method, Params};
use std::hint::black_box;
use std::time::Duration;

#[path = "../examples/common/synthetic_head.rs"]
mod synthetic_head;
use synthetic_head::{synthetic_head as head_data, synthetic_weights};

/// CPU seconds of this process, all threads (steadier than wall time on a
/// shared machine; includes the row checks' rayon workers).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Prints the mean CPU time of each stage of [`field::testing::analyze_laps`].
fn breakdown(head: &HeadInput<'_>, params: &Params, reps: usize) {
    let mut total: Vec<(&'static str, f64)> = Vec::new();
    for _ in 0..reps {
        let (_, laps) = field::testing::analyze_laps(head, params, cpu_seconds).unwrap();
        if total.is_empty() {
            total = laps.iter().map(|&(k, _)| (k, 0.0)).collect();
        }
        for (t, (_, s)) in total.iter_mut().zip(&laps) {
            t.1 += s;
        }
    }
    let sum: f64 = total.iter().map(|t| t.1).sum::<f64>() / reps as f64;
    println!("breakdown n={} d={} (mean of {reps}, CPU ms of the process, all threads):", head.n, head.d);
    for (k, s) in &total {
        let ms = s / reps as f64 * 1e3;
        println!("  {ms:8.3}  {:4.1} %  {k}", 100.0 * ms / (sum * 1e3));
    }
    println!("  {:8.3}  total", sum * 1e3);
}

fn bench(c: &mut Criterion) {
    let d = 64;
    let d_model = 576;
    let (wq, wk) = synthetic_weights(d_model, d);
    let every = Params { keep_key_energy: true, keep_leverage: true, ..Params::default() };
    let mut heads = Vec::new();
    for n in [512usize, 2048] {
        heads.push((n, head_data(n, d)));
    }
    for (n, (q, k)) in &heads {
        let head = HeadInput::new(q, k, *n, d, 0.125).with_weights(&wq, &wk, d_model);
        println!("one head alone:");
        breakdown(&head, &every, 50);
        // what analyze pays per query head when the work shared between heads
        // is handed in, and the shared work itself
        let reps = 50;
        let t0 = cpu_seconds();
        for _ in 0..reps {
            black_box(KeyFactor::new(k, *n, d).unwrap());
        }
        let kf_ms = (cpu_seconds() - t0) / reps as f64 * 1e3;
        let t0 = cpu_seconds();
        for _ in 0..reps {
            black_box(field::learned_spectrum(head.weights.as_ref().unwrap(), d).unwrap());
        }
        let learned_ms = (cpu_seconds() - t0) / reps as f64 * 1e3;
        let kf = KeyFactor::new(k, *n, d).unwrap();
        let sv = field::learned_spectrum(head.weights.as_ref().unwrap(), d).unwrap();
        println!("shared work: KeyFactor::new {kf_ms:.3} ms (once per KV head and text), learned_spectrum {learned_ms:.3} ms (once per head and model)");
        println!("with both handed in (HeadInput::with_key_factor, with_learned_spectrum):");
        breakdown(&head.with_key_factor(&kf).with_learned_spectrum(&sv), &every, 50);
    }
    let mut g = c.benchmark_group("head_d64");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    for n in [512usize, 2048, 8192, 32768] {
        let (q, k) = head_data(n, d);
        let head = HeadInput::new(&q, &k, n, d, 0.125);
        g.bench_with_input(BenchmarkId::new("factored", n), &head, |b, h| b.iter(|| black_box(analyze(h, &Params::default()).unwrap())));
    }
    for (n, (q, k)) in &heads {
        let head = HeadInput::new(q, k, *n, d, 0.125).with_weights(&wq, &wk, d_model);
        g.bench_with_input(BenchmarkId::new("with_weights", n), &head, |b, h| b.iter(|| black_box(analyze(h, &every).unwrap())));
    }
    g.sampling_mode(SamplingMode::Flat);
    for n in [512usize, 2048] {
        let (q, k) = head_data(n, d);
        let head = HeadInput::new(&q, &k, n, d, 0.125);
        let p = Params { method: Method::Dense, ..Params::default() };
        if n > 1000 {
            g.measurement_time(Duration::from_secs(20));
        }
        g.bench_with_input(BenchmarkId::new("dense", n), &head, |b, h| b.iter(|| black_box(analyze(h, &p).unwrap())));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
