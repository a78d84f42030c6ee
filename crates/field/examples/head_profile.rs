//! Runs the factored analysis of one synthetic head (f32 Q/K like a model,
//! with W_Q/W_K of d_model = 576 like SmolLM2-135M) `reps` times, for
//! profilers: `valgrind --tool=callgrind target/release/examples/head_profile 512 64 5`.
//!
//! ```text
//! cargo run --release -p attnscope-field --example head_profile -- [n] [d] [reps] [shared]
//! ```
//!
//! With `shared`, the key factor and the learned spectrum are built once before
//! the loop and handed in, as `analyze` shares them between heads. Both are
//! built in either mode, so `reps = 0` counts the same setup.

use field::{analyze, learned_spectrum, HeadInput, KeyFactor, Params};
use std::hint::black_box;
use std::time::Instant;
#[path = "common/synthetic_head.rs"]
mod synthetic_head;
use synthetic_head::{synthetic_head, synthetic_weights};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // "shared": hand in the key factor and the learned spectrum, computed once
    // before the loop (what analyze pays per query head when they are shared)
    let shared = args.last().is_some_and(|a| a == "shared");
    if shared {
        args.pop();
    }
    let args: Vec<usize> = args
        .iter()
        .map(|a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("usage: head_profile [n] [d] [reps] [shared]");
                std::process::exit(2)
            })
        })
        .collect();
    let (n, d, reps) = (args.first().copied().unwrap_or(512), args.get(1).copied().unwrap_or(64), args.get(2).copied().unwrap_or(20));
    let (q, k) = synthetic_head(n, d);
    let d_model = 576;
    let (wq, wk) = synthetic_weights(d_model, d);
    let mut head = HeadInput::new(&q, &k, n, d, 1.0 / (d as f64).sqrt()).with_weights(&wq, &wk, d_model);
    let kf = KeyFactor::new(&k, n, d).unwrap();
    let sv = learned_spectrum(head.weights.as_ref().unwrap(), d).unwrap();
    if shared {
        head = head.with_key_factor(&kf).with_learned_spectrum(&sv);
    }
    let params = Params { keep_key_energy: true, keep_leverage: true, ..Params::default() };
    let t0 = Instant::now();
    // the fastest single run as well: on a loaded machine most runs are
    // interrupted, the fastest is the least disturbed
    let mut fastest = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        black_box(analyze(black_box(&head), &params).unwrap());
        fastest = fastest.min(t.elapsed().as_secs_f64());
    }
    let per = t0.elapsed().as_secs_f64() / reps as f64;
    let what = if shared { "shared work handed in" } else { "alone" };
    println!(
        "n={n} d={d} ({what}): {:.3} ms per head (mean of {reps}; wall clock, shared machine), fastest run {:.3} ms",
        per * 1e3,
        fastest * 1e3
    );
    // the fastest time of each stage over as many more runs (wall clock,
    // this thread: run with RAYON_NUM_THREADS=1 for stages that use workers)
    let mut stages: Vec<(&str, f64)> = Vec::new();
    for _ in 0..reps {
        let (_, laps) = field::testing::analyze_laps(&head, &params, field::testing::wall_seconds).unwrap();
        if stages.is_empty() {
            stages = laps.iter().map(|&(k, _)| (k, f64::INFINITY)).collect();
        }
        for (st, (_, t)) in stages.iter_mut().zip(&laps) {
            st.1 = st.1.min(*t);
        }
    }
    for (k, t) in &stages {
        println!("  {:8.3} ms  {k} (fastest of {reps})", t * 1e3);
    }
}
