//! Analyse one synthetic attention head and print a readable summary and the JSON.
//!
//! ```text
//! cargo run --release -p attnscope-field --example synthetic -- [n] [d] [--dense] [--window W] [--alibi SLOPE] [--json]
//! ```
//! Defaults: n = 2048, d = 64. The head imitates a real one: keys share a large
//! common offset (an "attention sink" direction), queries and keys have a
//! decaying spectrum, and the logit scale is 1/√d.

use field::{analyze, HeadInput, Method, Params};
#[path = "common/synthetic_head.rs"]
mod synthetic_head;
use std::time::Instant;
use synthetic_head::synthetic_head;

fn usage() -> ! {
    eprintln!("usage: synthetic [n] [d] [--dense] [--window W] [--alibi SLOPE] [--json]");
    std::process::exit(2);
}

fn main() {
    let mut pos = Vec::new();
    let (mut dense, mut json_only, mut window, mut alibi) = (false, false, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dense" => dense = true,
            "--json" => json_only = true,
            "--window" => window = Some(args.next().and_then(|v| v.parse::<usize>().ok()).unwrap_or_else(|| usage())),
            "--alibi" => alibi = Some(args.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            _ => pos.push(a.parse::<usize>().unwrap_or_else(|_| usage())),
        }
    }
    let n = pos.first().copied().unwrap_or(2048);
    let d = pos.get(1).copied().unwrap_or(64);

    let (q, k) = synthetic_head(n, d);
    let mut head = HeadInput::new(&q, &k, n, d, 1.0 / (d as f64).sqrt());
    if let Some(w) = window {
        head = head.with_window(w);
    }
    if let Some(m) = alibi {
        head = head.with_alibi(m);
    }
    let params = Params { method: if dense { Method::Dense } else { Method::Factored }, ..Params::default() };

    let t0 = Instant::now();
    let out = match analyze(&head, &params) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let json = serde_json::to_string_pretty(&out).expect("HeadField serialises");
    if json_only {
        println!("{json}");
        return;
    }
    println!("one synthetic head: n = {n}, d = {d}, method = {}, {:.3} s", out.method, secs);
    println!(
        "  invariants   zero_sum_residual = {:.2e}   shift_consistency = {:.2e} (f32 softmax)   check_rows = {}",
        out.zero_sum_residual, out.shift_consistency, out.check_rows
    );
    println!("  rank         numerical_rank = {} ≤ rank_bound = {}: {}", out.numerical_rank, out.rank_bound, out.rank_bound_holds);
    let top: Vec<String> = out.spectrum.iter().take(5).map(|s| format!("{s:.3}")).collect();
    println!(
        "  spectrum     σ = [{} …]   k90 = {}   k99 = {}   effective_rank = {:.2}   stable_rank = {:.2}",
        top.join(", "),
        out.k90,
        out.k99,
        out.effective_rank,
        out.stable_rank
    );
    println!(
        "  keys         participation_ratio = {:.3}   top1pct_share = {:.3}   argmax_key = {}",
        out.participation_ratio, out.top1pct_share, out.argmax_key
    );
    let sp = out.energy_leverage_spearman.map_or("null".to_string(), |x| format!("{x:.3}"));
    println!(
        "  incoherence  key_coherence = {:.3} (bound n/r = {:.1})   energy_leverage_spearman = {sp}",
        out.key_coherence,
        n as f64 / (d + 1).min(n) as f64
    );
    println!("  attention    mean entropy = {:.3} nats", out.attention_entropy);
    println!("JSON:\n{json}");
}
