//! GFLOP/s of candle's f32 matmul at the forward pass's GEMM shapes, split
//! against fused: Q, K, V as three GEMMs or one (weights concatenated), gate
//! and up as two or one, attention heads one call each or batched. Weights
//! are transposed views of (out, in), as the decoder holds them. Variants
//! alternate round by round, so all see the same load; best of the rounds.
//!
//!     cargo run --release -p attnscope-models --example gemm_shapes -- [T] [ROUNDS]
//!
//! Shapes are SmolLM2-135M's (D = 576, h = 9, h_kv = 3, d = 64, d_ff = 1536).

use candle_core::Tensor;

#[path = "common/timing.rs"]
#[allow(dead_code)]
mod timing;
use timing::{best, randn as r};

/// x (m, k) contiguous times wᵀ for w (n, k) contiguous, into `buf` (m·n),
/// by the same gemm call candle's matmul makes.
fn gemm_into(x: &Tensor, w: &Tensor, buf: &std::cell::RefCell<Vec<f32>>) {
    let (m, k) = x.dims2().unwrap();
    let n = w.dim(0).unwrap();
    let (xs, _) = x.storage_and_layout();
    let (ws, _) = w.storage_and_layout();
    let (candle_core::Storage::Cpu(xs), candle_core::Storage::Cpu(ws)) = (&*xs, &*ws) else { panic!() };
    let (xs, ws) = (xs.as_slice::<f32>().unwrap(), ws.as_slice::<f32>().unwrap());
    let mut buf = buf.borrow_mut();
    let par =
        if rayon::current_num_threads() > 1 { gemm::Parallelism::Rayon(rayon::current_num_threads()) } else { gemm::Parallelism::None };
    // SAFETY: the slices hold m·k, n·k and m·n values; strides match.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            buf.as_mut_ptr(),
            1,
            n as isize,
            false,
            xs.as_ptr(),
            1,
            k as isize,
            ws.as_ptr(),
            k as isize,
            1,
            0f32,
            1f32,
            false,
            false,
            false,
            par,
        )
    }
}

fn main() {
    models::alloc::tune(); // as the attnscope binary does
    let args: Vec<String> = std::env::args().collect();
    let t: usize = args.get(1).map_or(512, |s| s.parse().unwrap());
    let rounds: usize = args.get(2).map_or(5, |s| s.parse().unwrap());
    let (dm, h, hkv, d, ff) = (576, 9, 3, 64, 1536);
    let x = r(&[t, dm]);
    let wq = r(&[h * d, dm]);
    let wk = r(&[hkv * d, dm]);
    let wv = r(&[hkv * d, dm]);
    let wqkv = Tensor::cat(&[&wq, &wk, &wv], 0).unwrap();
    let wg = r(&[ff, dm]);
    let wu = r(&[ff, dm]);
    let wgu = Tensor::cat(&[&wg, &wu], 0).unwrap();
    let mm = |w: &Tensor| drop(x.matmul(&w.t().unwrap()).unwrap());
    // Attention, one 128-query chunk of the last block: per KV head (g·c, d)·(d, t).
    let c = 128.min(t);
    let g = h / hkv;
    let q = r(&[hkv, g * c, d]);
    let kt = r(&[hkv, d, t]);
    let p = r(&[hkv, g * c, t]);
    let v = r(&[hkv, t, d]);
    let q1: Vec<Tensor> = (0..hkv).map(|i| q.narrow(0, i, 1).unwrap().contiguous().unwrap()).collect();
    let reps = 10;
    type Case<'a> = (&'a str, f64, Box<dyn Fn() + 'a>);
    let cases: Vec<Case> = vec![
        ("q (t×576·576)", (2 * t * dm * h * d) as f64, Box::new(|| mm(&wq))),
        ("k (t×576·192)", (2 * t * dm * hkv * d) as f64, Box::new(|| mm(&wk))),
        (
            "q,k,v separate",
            (2 * t * dm * (h + 2 * hkv) * d) as f64,
            Box::new(|| {
                mm(&wq);
                mm(&wk);
                mm(&wv)
            }),
        ),
        ("qkv fused (·960)", (2 * t * dm * (h + 2 * hkv) * d) as f64, Box::new(|| mm(&wqkv))),
        (
            "gate,up separate",
            (4 * t * dm * ff) as f64,
            Box::new(|| {
                mm(&wg);
                mm(&wu)
            }),
        ),
        ("gate|up fused (·3072)", (4 * t * dm * ff) as f64, Box::new(|| mm(&wgu))),
        ("q·kᵀ batched (h_kv)", (2 * hkv * g * c * d * t) as f64, Box::new(|| drop(q.matmul(&kt).unwrap()))),
        (
            "q·kᵀ per kv head",
            (2 * hkv * g * c * d * t) as f64,
            Box::new(|| {
                for (i, qi) in q1.iter().enumerate() {
                    drop(qi.matmul(&kt.narrow(0, i, 1).unwrap()).unwrap());
                }
            }),
        ),
        ("p·v batched (h_kv)", (2 * hkv * g * c * d * t) as f64, Box::new(|| drop(p.matmul(&v).unwrap()))),
    ];
    // One layer's projection and MLP GEMMs: candle, separate; candle, fused;
    // gemm called directly (fused) into buffers reused across calls.
    let wo = r(&[dm, h * d]);
    let wd = r(&[dm, ff]);
    let xa = r(&[t, h * d]);
    let xf = r(&[t, ff]);
    let layer_flop = (2 * t * dm * ((h + 2 * hkv) * d + h * d + 3 * ff)) as f64;
    let bufs: Vec<std::cell::RefCell<Vec<f32>>> =
        [(h + 2 * hkv) * d, dm, 2 * ff, dm].iter().map(|&n| std::cell::RefCell::new(vec![0f32; t * n])).collect();
    let cases: Vec<Case> = cases
        .into_iter()
        .chain([
            (
                "layer candle separate",
                layer_flop,
                Box::new(|| {
                    mm(&wq);
                    mm(&wk);
                    mm(&wv);
                    drop(xa.matmul(&wo.t().unwrap()).unwrap());
                    mm(&wg);
                    mm(&wu);
                    drop(xf.matmul(&wd.t().unwrap()).unwrap());
                }) as Box<dyn Fn()>,
            ),
            (
                "layer candle fused",
                layer_flop,
                Box::new(|| {
                    mm(&wqkv);
                    drop(xa.matmul(&wo.t().unwrap()).unwrap());
                    mm(&wgu);
                    drop(xf.matmul(&wd.t().unwrap()).unwrap());
                }),
            ),
            (
                "layer gemm fused reuse",
                layer_flop,
                Box::new(|| {
                    gemm_into(&x, &wqkv, &bufs[0]);
                    gemm_into(&xa, &wo, &bufs[1]);
                    gemm_into(&x, &wgu, &bufs[2]);
                    gemm_into(&xf, &wd, &bufs[3]);
                }),
            ),
        ])
        .collect();
    let mut bests = vec![f64::INFINITY; cases.len()];
    for (_, _, f) in &cases {
        f(); // warm-up
    }
    for _ in 0..rounds {
        for (i, (_, _, f)) in cases.iter().enumerate() {
            bests[i] = bests[i].min(best(reps, f.as_ref()));
        }
    }
    println!("t = {t}, best of {rounds} rounds × {reps}");
    for ((name, flop, _), b) in cases.iter().zip(&bests) {
        println!("{name:<24} {:>8.3} ms {:>7.1} GFLOP/s", b * 1e3, flop / b / 1e9);
    }
}
