//! Task-level parallelism measured before building it into the decoder:
//! one layer's GEMMs of SmolLM2-135M at t tokens (a) as today, each GEMM on
//! every thread of the pool in turn, against (b) the same products as
//! pairs of one-thread GEMMs under `rayon::join` (row halves of q, o and
//! down, k ∥ v, gate ∥ up), and (b') every GEMM split in row halves; the
//! attention GEMMs of the four 128-query chunks (q·kᵀ and p·v, batched over
//! the KV heads, keys read in place) each on every thread against two
//! one-thread tasks of balanced causal work (chunks 0 + 3 ∥ 1 + 2); and
//! (c) candle's 2048³ GEMM, the reference of issue 18's bar. Cases alternate
//! round by round, so all see the same load; each round's figure is the
//! best of REPS calls; the best and the median over rounds are printed,
//! with every round's (a)/(b) ratio.
//!
//!     cargo run --release -p attnscope-models --example gemm_tasks -- [T] [ROUNDS] [REPS]
//!
//! Shapes are SmolLM2-135M's (D = 576, h = 9, h_kv = 3, d = 64, d_ff = 1536);
//! weights are transposed views of (out, in), as the decoder holds them.

use candle_core::Tensor;
use models::matmul::{matmul, matmul_one_thread, matmul_pair, matmul_split_rows};

#[path = "common/timing.rs"]
#[allow(dead_code)]
mod timing;
use timing::{best, randn as r};

fn main() {
    models::alloc::tune(); // as the attnscope binary does
    let args: Vec<String> = std::env::args().collect();
    let t: usize = args.get(1).map_or(512, |s| s.parse().unwrap());
    let rounds: usize = args.get(2).map_or(5, |s| s.parse().unwrap());
    let reps: usize = args.get(3).map_or(10, |s| s.parse().unwrap());
    let (dm, h, hkv, d, ff) = (576, 9, 3, 64, 1536);
    let g = h / hkv;
    let x = r(&[t, dm]); // normed input (t, D)
    let xa = r(&[t, h * d]); // attention output (t, h·d)
    let xf = r(&[t, ff]); // MLP hidden (t, d_ff)
    let wt = |n: usize, k: usize| r(&[n, k]).t().unwrap(); // (k, n) view of (n, k)
    let (wq, wk, wv, wo) = (wt(h * d, dm), wt(hkv * d, dm), wt(hkv * d, dm), wt(dm, h * d));
    let (wg, wu, wd) = (wt(ff, dm), wt(ff, dm), wt(dm, ff));
    let layer_flop = (2 * t * dm * ((h + 2 * hkv) * d + h * d + 3 * ff)) as f64;
    // Attention: per 128-query chunk, q (h_kv, g·c, d), kᵀ (h_kv, d, t), p (h_kv, g·c, keys), v (h_kv, t, d).
    let c = 128.min(t);
    let chunks: Vec<(usize, usize)> = (0..t).step_by(c).map(|c0| (c0, (c0 + c).min(t))).collect();
    let q = r(&[hkv, g * c, d]);
    let kt = r(&[hkv, d, t]);
    let v = r(&[hkv, t, d]);
    let ps: Vec<Tensor> = chunks.iter().map(|&(_, c1)| r(&[hkv, g * c, c1])).collect();
    let attn_flop: f64 = chunks.iter().map(|&(_, c1)| (4 * hkv * g * c * d * c1) as f64).sum();
    let chunk = |i: usize, mm: fn(&Tensor, &Tensor) -> models::Result<Tensor>| {
        let c1 = chunks[i].1;
        drop(mm(&q, &kt.narrow(2, 0, c1).unwrap()).unwrap());
        drop(mm(&ps[i], &v.narrow(1, 0, c1).unwrap()).unwrap());
    };
    // Chunk indices of the two balanced tasks: first + last, and so on.
    let n = chunks.len();
    let (ta, tb): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| i < n / 4 || i >= n - n.div_ceil(4));
    let a = r(&[2048, 2048]);
    let b = r(&[2048, 2048]);
    type Case<'a> = (&'a str, f64, Box<dyn Fn() + 'a>);
    let cases: Vec<Case> = vec![
        (
            "(a) layer, each GEMM on all threads",
            layer_flop,
            Box::new(|| {
                for w in [&wq, &wk, &wv] {
                    drop(matmul(&x, w).unwrap());
                }
                drop(matmul(&xa, &wo).unwrap());
                drop(matmul(&x, &wg).unwrap());
                drop(matmul(&x, &wu).unwrap());
                drop(matmul(&xf, &wd).unwrap());
            }),
        ),
        (
            "(b) layer, pairs of one-thread GEMMs",
            layer_flop,
            Box::new(|| {
                drop(matmul_split_rows(&x, &wq).unwrap());
                drop(matmul_pair(&x, &wk, &x, &wv).unwrap());
                drop(matmul_split_rows(&xa, &wo).unwrap());
                drop(matmul_pair(&x, &wg, &x, &wu).unwrap());
                drop(matmul_split_rows(&xf, &wd).unwrap());
            }),
        ),
        (
            "(b') layer, every GEMM in row halves",
            layer_flop,
            Box::new(|| {
                for w in [&wq, &wk, &wv, &wg, &wu] {
                    drop(matmul_split_rows(&x, w).unwrap());
                }
                drop(matmul_split_rows(&xa, &wo).unwrap());
                drop(matmul_split_rows(&xf, &wd).unwrap());
            }),
        ),
        (
            "(a) attention GEMMs, all threads",
            attn_flop,
            Box::new(|| {
                for i in 0..n {
                    chunk(i, matmul);
                }
            }),
        ),
        (
            "(b) attention GEMMs, two chunk tasks",
            attn_flop,
            Box::new(|| {
                rayon::join(
                    || ta.iter().for_each(|&i| chunk(i, matmul_one_thread)),
                    || tb.iter().for_each(|&i| chunk(i, matmul_one_thread)),
                );
            }),
        ),
        ("(c) 2048³, candle, all threads", 2.0 * 2048f64.powi(3), Box::new(|| drop(a.matmul(&b).unwrap()))),
    ];
    for (_, _, f) in &cases {
        f(); // warm-up
    }
    let mut per_round = vec![vec![]; cases.len()];
    for _ in 0..rounds {
        for (i, (_, _, f)) in cases.iter().enumerate() {
            per_round[i].push(best(if i == cases.len() - 1 { 3 } else { reps }, f.as_ref()));
        }
    }
    println!("t = {t}, {} threads, best of {rounds} rounds × {reps} (2048³: × 3)", rayon::current_num_threads());
    for ((name, flop, _), times) in cases.iter().zip(&per_round) {
        let b = times.iter().copied().fold(f64::INFINITY, f64::min);
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let med = sorted[sorted.len() / 2];
        println!("{name:<40} {:>8.3} ms {:>7.1} GFLOP/s (median round {:>7.1})", b * 1e3, flop / b / 1e9, flop / med / 1e9);
    }
    let ratios =
        |i: usize, j: usize| -> Vec<String> { per_round[i].iter().zip(&per_round[j]).map(|(a, b)| format!("{:.3}", a / b)).collect() };
    println!("layer (a)/(b) per round:     {}", ratios(0, 1).join(" "));
    println!("layer (a)/(b') per round:    {}", ratios(0, 2).join(" "));
    println!("attention (a)/(b) per round: {}", ratios(3, 4).join(" "));
    println!(
        "2048³ GFLOP/s per round:     {}",
        per_round[5].iter().map(|s| format!("{:.1}", cases[5].1 / s / 1e9)).collect::<Vec<_>>().join(" ")
    );
}
