//! Forward-pass benchmark: tokens/s of a model over `t` tokens, and the share
//! of this machine's measured f32 GEMM throughput that it achieves.
//!
//!     cargo run --release -p attnscope-models --example forward_bench -- [MODEL] [T] [REPS]
//!
//! MODEL defaults to SmolLM2-135M-Instruct Q4_1 in the attnscope cache, T to
//! 1024, REPS to 3. Both the forward pass and the GEMM are timed REPS times
//! and the best time of each is used (a shared machine only ever slows a run
//! down; the same rule for both keeps the ratio fair). FLOPs counted: 2·(non-embedding linear params)·t for the
//! projections, MLP and LM head of the last position, plus 4·h·d·(keys seen)
//! per query for attention as computed (causal chunks). Peak RSS from
//! /proc/self/status (VmHWM).

use std::time::Instant;

use candle_core::{Device, Tensor};
use models::{Checkpoint, Logits, Model};

fn gemm_gflops(reps: usize) -> f64 {
    let n = 2048;
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (n, n), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, (n, n), &dev).unwrap();
    let _ = a.matmul(&b).unwrap(); // warm-up
    let best = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            let _ = a.matmul(&b).unwrap();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n * n * n) as f64 / best / 1e9
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    models::alloc::tune(); // as the attnscope binary does
    let args: Vec<String> = std::env::args().collect();
    let default = format!("{}/.cache/attnscope/models/SmolLM2-135M-Instruct.Q4_1.gguf", std::env::var("HOME").unwrap_or_default());
    let path = args.get(1).cloned().unwrap_or(default);
    let t: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let reps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3).max(1);

    let t0 = Instant::now();
    let ck = Checkpoint::open(&path, None)?;
    let model = Model::load(&ck)?;
    let load_s = t0.elapsed().as_secs_f64();
    let rss_loaded = peak_rss_mb();
    let s = &model.spec;
    let ids: Vec<u32> = (0..t).map(|i| (i * 7919 % (s.vocab_size - 1)) as u32 + 1).collect();

    let _ = model.forward_logits(&ids[..t.min(64)], Logits::Last, None)?; // warm-up
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t1 = Instant::now();
        let _ = model.forward_logits(&ids, Logits::Last, None)?;
        times.push(t1.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let fwd_s = times[0];

    let (dm, h, hkv, d, ff) = (s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, s.d_ff);
    let mlp_mats = if matches!(s.mlp, models::arch::Mlp::Gated(_)) { 3 } else { 2 };
    let per_layer = dm * h * d * 2 + dm * hkv * d * 2 + mlp_mats * dm * ff;
    let linear = 2.0 * (per_layer * s.n_layers) as f64 * t as f64 + 2.0 * (dm * s.vocab_size) as f64;
    // Attention as computed: each query chunk sees keys up to its chunk end.
    let keys_seen: f64 = (0..t).map(|i| (i + 1) as f64).sum();
    let attn = 4.0 * (h * d) as f64 * keys_seen * s.n_layers as f64;
    let gflop = (linear + attn) / 1e9;
    let peak = gemm_gflops(5 * reps);
    println!("model            {path}");
    println!("tokens           {t}");
    println!("load             {load_s:.2} s (peak RSS after load {rss_loaded:.0} MB)");
    println!("forward          {fwd_s:.2} s = {:.0} tokens/s (best of {reps}; median {:.2} s)", t as f64 / fwd_s, times[reps / 2]);
    println!("work             {gflop:.1} GFLOP ({:.1} GFLOP/s)", gflop / fwd_s);
    println!("f32 GEMM 2048³   {peak:.1} GFLOP/s (candle, this machine, best of {})", 5 * reps);
    println!("share of GEMM    {:.0} %", 100.0 * gflop / fwd_s / peak);
    println!("peak RSS         {:.0} MB", peak_rss_mb());
    Ok(())
}
