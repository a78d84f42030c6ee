//! Forward-pass benchmark: tokens/s of a model over `t` tokens, the share of
//! this machine's measured f32 GEMM throughput that it achieves, and where
//! the time goes.
//!
//!     cargo run --release -p attnscope-models --example forward_bench -- [MODEL] [T] [REPS]
//!
//! MODEL defaults to SmolLM2-135M-Instruct Q4_1 in the attnscope cache, T to
//! 1024 (a comma list such as `512,4096` runs each), REPS to 3. Everything
//! is measured in one run, so ratios are fair on a shared machine; each
//! figure is the best of REPS (a shared machine only ever slows a run down).
//!
//! Two GEMM references, both candle's own f32 matmul:
//! - **2048³**: one square GEMM, the machine's GEMM peak as candle reaches it;
//!   "share of GEMM" = the forward's GFLOP/s over it (FLOPs counted:
//!   2·(non-embedding linear params)·t for the projections and MLP, the LM
//!   head of the last position, and 4·h·d·(keys seen) per query for
//!   attention, causal).
//! - **same shapes**: the time candle takes for exactly the GEMMs the forward
//!   pass runs (every projection, MLP matrix and per-chunk attention batch at
//!   its real shape, weights as the same transposed views), with nothing
//!   else; "GEMM-only / forward" is the share of the forward's wall time a
//!   pure-GEMM pass would need. Forward passes and GEMM-only passes
//!   alternate, so both see the same load; the ratio is given best over
//!   best, and per adjacent pair (median, max).
//!
//! CPU time (all threads, the prefetch thread's dequantization included,
//! from /proc/self/stat at 10 ms resolution) is printed beside wall time:
//! on a shared machine it moves much less with the load than wall time
//! does. Run with `RAYON_NUM_THREADS=1` to compare CPU work: with more
//! threads it also counts the pool's spinning while it waits.
//!
//! The breakdown comes from `models::profile` (wall time of the main thread
//! per phase, summed over the REPS timed passes and divided by REPS). Peak
//! RSS from /proc/self/status (VmHWM).

use std::time::Instant;

use candle_core::{Device, Tensor};
use models::arch::{ArchSpec, Mlp};
use models::{profile, Checkpoint, Logits, Model};

#[path = "common/timing.rs"]
#[allow(dead_code)]
mod timing;

/// The best of `reps` timed calls of `f`, after one warm-up call.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    timing::best(reps, f)
}

/// CPU seconds (user + system) of the whole process so far, threads that
/// have exited included; 10 ms resolution (USER_HZ = 100).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    if f.len() == 2 {
        (f[0] + f[1]) / 100.0
    } else {
        f64::NAN
    }
}

/// GFLOP/s of candle's 2048³ GEMM: (best wall, mean CPU time).
fn gemm_gflops(reps: usize) -> (f64, f64) {
    let n = 2048;
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (n, n), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, (n, n), &dev).unwrap();
    let c0 = cpu_s();
    let best = best_of(reps, || drop(a.matmul(&b).unwrap()));
    let cpu = (cpu_s() - c0) / (reps + 1) as f64;
    let flop = 2.0 * (n * n * n) as f64 / 1e9;
    (flop / best, flop / cpu)
}

/// Every GEMM of one forward pass over `t` tokens at its real shapes, run
/// by candle's matmul alone: random operands of the forward's shapes, the
/// weights as the same transposed views, attention chunked as the decoder
/// chunks it (keys read in place with row stride t, as it reads them).
struct SameShapeGemms {
    n_layers: usize,
    chunk: usize,
    g: usize,
    x: Tensor,
    xf: Tensor,
    xa: Tensor,
    w: [Tensor; 3],
    mlp_in: Vec<Tensor>,
    w_down: Tensor,
    q: Tensor,
    kt: Tensor,
    p: Tensor,
    v: Tensor,
    row: Tensor,
    head: Tensor,
}

impl SameShapeGemms {
    fn new(s: &ArchSpec, t: usize) -> Self {
        let dev = Device::Cpu;
        let (dm, h, hkv, d, ff, g) = (s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, s.d_ff, s.group_size());
        let r = |dims: &[usize]| Tensor::randn(0f32, 1.0, dims, &dev).unwrap();
        let n_mlp_in = if matches!(s.mlp, Mlp::Gated(_)) { 2 } else { 1 };
        let chunk = (models::decoder::attention_scores_per_chunk(h, t) / (h * t) as u64) as usize;
        SameShapeGemms {
            n_layers: s.n_layers,
            chunk,
            g,
            x: r(&[t, dm]),
            xf: r(&[t, ff]),
            xa: r(&[t, h * d]),
            // nn.Linear weights are (out, in): q, k (also v), o.
            w: [r(&[h * d, dm]), r(&[hkv * d, dm]), r(&[dm, h * d])],
            mlp_in: (0..n_mlp_in).map(|_| r(&[ff, dm])).collect(),
            w_down: r(&[dm, ff]),
            q: r(&[hkv, g * chunk, d]),
            kt: r(&[hkv, d, t]),
            p: r(&[hkv, g * chunk, t]),
            v: r(&[hkv, t, d]),
            row: r(&[1, dm]),
            head: r(&[s.vocab_size, dm]),
        }
    }

    /// Seconds for every layer's GEMMs plus the LM head row: (wall, CPU).
    fn run(&self) -> (f64, f64) {
        let (t0, c0) = (Instant::now(), cpu_s());
        for _ in 0..self.n_layers {
            self.layer();
        }
        self.mm(&self.row, &self.head);
        (t0.elapsed().as_secs_f64(), cpu_s() - c0)
    }

    fn mm(&self, a: &Tensor, w: &Tensor) {
        drop(a.matmul(&w.t().unwrap()).unwrap())
    }

    /// One layer's GEMMs.
    fn layer(&self) {
        let mm = |a: &Tensor, w: &Tensor| self.mm(a, w);
        mm(&self.x, &self.w[0]);
        mm(&self.x, &self.w[1]); // k
        mm(&self.x, &self.w[1]); // v
        mm(&self.xa, &self.w[2]);
        for w in &self.mlp_in {
            mm(&self.x, w);
        }
        mm(&self.xf, &self.w_down);
        let t = self.v.dim(1).unwrap();
        for c0 in (0..t).step_by(self.chunk) {
            let len = self.chunk.min(t - c0);
            let nk = c0 + len;
            let qc = self.q.narrow(1, 0, self.g * len).unwrap();
            drop(qc.matmul(&self.kt.narrow(2, 0, nk).unwrap()).unwrap());
            let pc = self.p.narrow(1, 0, self.g * len).unwrap().narrow(2, 0, nk).unwrap().contiguous().unwrap();
            drop(pc.matmul(&self.v.narrow(1, 0, nk).unwrap()).unwrap());
        }
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn gflop(s: &ArchSpec, t: usize) -> f64 {
    let (dm, h, hkv, d, ff) = (s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, s.d_ff);
    let mlp_mats = if matches!(s.mlp, Mlp::Gated(_)) { 3 } else { 2 };
    let per_layer = dm * h * d * 2 + dm * hkv * d * 2 + mlp_mats * dm * ff;
    let linear = 2.0 * (per_layer * s.n_layers) as f64 * t as f64 + 2.0 * (dm * s.vocab_size) as f64;
    let keys_seen: f64 = (0..t).map(|i| (i + 1) as f64).sum();
    let attn = 4.0 * (h * d) as f64 * keys_seen * s.n_layers as f64;
    (linear + attn) / 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    models::alloc::tune(); // as the attnscope binary does
    let args: Vec<String> = std::env::args().collect();
    let default = format!("{}/.cache/attnscope/models/SmolLM2-135M-Instruct.Q4_1.gguf", std::env::var("HOME").unwrap_or_default());
    let path = args.get(1).cloned().unwrap_or(default);
    let ts: Vec<usize> = args.get(2).map_or(Ok(vec![1024]), |s| s.split(',').map(str::parse).collect())?;
    let reps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3).max(1);

    let t0 = Instant::now();
    let ck = Checkpoint::open(&path, None)?;
    let model = Model::load(&ck)?;
    let load_s = t0.elapsed().as_secs_f64();
    let rss_loaded = peak_rss_mb();
    let s = &model.spec;
    println!("model            {path}");
    println!("load             {load_s:.2} s (peak RSS after load {rss_loaded:.0} MB)");
    let (peak, peak_cpu) = gemm_gflops(5 * reps);
    println!("f32 GEMM 2048³   {peak:.1} GFLOP/s (candle, this machine, best of {}); {peak_cpu:.1} GFLOP per CPU second", 5 * reps);
    for &t in &ts {
        let ids: Vec<u32> = (0..t).map(|i| (i * 7919 % (s.vocab_size - 1)) as u32 + 1).collect();
        let _ = model.forward_logits(&ids[..t.min(64)], Logits::Last, None)?; // warm-up
        let gemms = SameShapeGemms::new(s, t);
        gemms.run(); // warm-up
        profile::reset();
        // Forward and same-shape GEMMs alternate, so both see the same load.
        let (mut times, mut gemm_times) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
        let (mut cpu, mut gemm_cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..reps {
            profile::enable(true);
            let (t1, c1) = (Instant::now(), cpu_s());
            let _ = model.forward_logits(&ids, Logits::Last, None)?;
            times.push(t1.elapsed().as_secs_f64());
            cpu = cpu.min(cpu_s() - c1);
            profile::enable(false);
            let (wall, c) = gemms.run();
            gemm_times.push(wall);
            gemm_cpu = gemm_cpu.min(c);
        }
        let phases = profile::snapshot();
        let mut ratios: Vec<f64> = gemm_times.iter().zip(&times).map(|(g, f)| g / f).collect();
        ratios.sort_by(f64::total_cmp);
        times.sort_by(f64::total_cmp);
        gemm_times.sort_by(f64::total_cmp);
        let (fwd_s, gemm_s) = (times[0], gemm_times[0]);
        let work = gflop(s, t);
        println!();
        println!("tokens           {t}");
        println!("forward          {fwd_s:.3} s = {:.0} tokens/s (best of {reps}; median {:.3} s)", t as f64 / fwd_s, times[reps / 2]);
        println!("work             {work:.1} GFLOP ({:.1} GFLOP/s)", work / fwd_s);
        println!("share of GEMM    {:.0} % of the 2048³ GEMM", 100.0 * work / fwd_s / peak);
        println!(
            "same-shape GEMM  {gemm_s:.3} s ({:.1} GFLOP/s): GEMM-only / forward = {:.0} % (best over best; per adjacent pair: median {:.0} %, max {:.0} %)",
            work / gemm_s,
            100.0 * gemm_s / fwd_s,
            100.0 * ratios[reps / 2],
            100.0 * ratios[reps - 1]
        );
        println!(
            "cpu time         forward {cpu:.2} s, same-shape GEMM {gemm_cpu:.2} s (least of {reps}): GEMM-only / forward = {:.0} %; share of the 2048³ GEMM per CPU second {:.0} %",
            100.0 * gemm_cpu / cpu,
            100.0 * work / cpu / peak_cpu
        );
        let mean: f64 = times.iter().sum::<f64>() / reps as f64;
        let accounted: f64 = phases.iter().map(|p| p.1).sum::<f64>() / reps as f64;
        println!("breakdown        (mean of the {reps} passes, {mean:.3} s each)");
        for (p, secs) in phases {
            let secs = secs / reps as f64;
            println!("  {:<22} {:>8.3} s {:>5.1} %", p.name(), secs, 100.0 * secs / mean);
        }
        println!("  {:<22} {:>8.3} s {:>5.1} %", "other", mean - accounted, 100.0 * (mean - accounted) / mean);
    }
    println!();
    println!("peak RSS         {:.0} MB", peak_rss_mb());
    Ok(())
}
