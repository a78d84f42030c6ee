//! Memory guard: estimates the peak memory of an `analyze` command before
//! any weight is loaded, and refuses (exit 2) when it exceeds the memory
//! available, unless `--force`. The estimate and its terms are documented
//! in docs/hardening.md ("Memory guard"); it errs on the high side.
//!
//! Available memory: `ATTNSCOPE_MEMORY_LIMIT_BYTES` if set (tests, or a
//! user who wants a lower ceiling), else `MemAvailable` of /proc/meminfo,
//! lowered to the cgroup's headroom (v2 `memory.max − memory.current`, or
//! v1 `memory.limit_in_bytes − memory.usage_in_bytes`) when one is set.

use anyhow::{bail, Result};
use models::{ArchSpec, TensorStore};

/// decoder.rs `SCORE_BUDGET`: attention score elements held at once (f32).
const SCORE_BUDGET: u64 = 1 << 24;
/// See [`Estimate::base`].
pub const BASE: u64 = 64 << 20;

/// Peak memory of one `analyze` command, by term, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The process before any model: binary and libraries, thread stacks,
    /// tokenizer, texts, resident pages of the memory-mapped model file
    /// ([`BASE`]; measured ≈ 35–60 MB).
    pub base: u64,
    /// Every tensor of the checkpoint as f32 (what `Model::load` keeps), plus
    /// the transient copies of the largest one while it is loaded.
    pub weights: u64,
    /// One forward pass at the longest context: residual stream, Q/K/V, MLP
    /// hidden, rotary tables, and the chunked attention scores.
    pub activations: u64,
    /// One layer's analysis: Q/K as f32 and f64, W_Q/W_K copies, and the
    /// per-head working set of every worker thread.
    pub analysis: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.base + self.weights + self.activations + self.analysis
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (base {}, weights {}, activations {}, analysis {})",
            gib(self.total()),
            gib(self.base),
            gib(self.weights),
            gib(self.activations),
            gib(self.analysis)
        )
    }
}

pub fn gib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// The estimate for `spec` with the checkpoint's tensors, the longest
/// context `t`, `threads` analysis workers, and `--dense-check`.
pub fn estimate(spec: &ArchSpec, tensors: &TensorStore, t: usize, threads: usize, dense_check: bool) -> Estimate {
    let f32s = |n: u64| n.saturating_mul(4);
    let f64s = |n: u64| n.saturating_mul(8);
    let (mut all, mut largest) = (0u64, 0u64);
    for name in tensors.names() {
        let n = tensors.shape(&name).map_or(0, |s| s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64)));
        all = all.saturating_add(n);
        largest = largest.max(n);
    }
    // Loading: every tensor as f32, plus transient buffers of up to two
    // tensors at once (two loader threads; a quantized GGUF tensor's block
    // buffer is smaller than its f32 form). Kept at 2 × largest, an upper
    // bound: linear weights are views (no transposed copy), and the finite
    // check reads tensors in place.
    let weights = f32s(all).saturating_add(f32s(largest).saturating_mul(2));

    let t = t as u64;
    let (dm, ff) = (spec.d_model as u64, spec.d_ff as u64);
    let (h, hkv, d) = (spec.n_heads as u64, spec.n_kv_heads as u64, spec.head_dim as u64);
    // x, x1, the norm outputs and the residual sums (≈ 8·t·D); Q/K/V and their
    // head-major and rotated copies (≈ 3·t·(h + 2·h_kv)·d); gated MLP hidden
    // (≈ 4·t·d_ff); cos/sin tables (2·t·d).
    let stream = t.saturating_mul(8 * dm + 4 * ff + 3 * (h + 2 * hkv) * d + 2 * d);
    // Scores of one query chunk: logits, masked logits, softmax (3 × budget).
    let scores = 3 * SCORE_BUDGET.min(h.saturating_mul(t).saturating_mul(t));
    let activations = f32s(stream.saturating_add(scores));

    // One layer: q, k flattened to f32 Vecs, W_Q/W_K as Vec<Vec<f32>> plus
    // the per-KV-head column copies.
    let layer = f32s(
        (h + hkv).saturating_mul(t).saturating_mul(d) + dm.saturating_mul((h + 2 * hkv) * d),
    );
    // Per head and worker: Q and K widened to f64, W^h columns, and the
    // factored algorithms' O(n·d) work arrays (≈ 8 more n×(d+1) f64 arrays
    // and their d×d / (d+1)×(d+1) Gram matrices); with --dense-check the
    // n×n f64 field and its SVD workspace (≈ 4 n×n).
    let mut per_head = f64s(t.saturating_mul(d).saturating_mul(2) + t.saturating_mul(d + 1).saturating_mul(8) + 8 * (d + 1) * (d + 1))
        .saturating_add(f32s(2 * dm * d));
    if dense_check {
        per_head = per_head.saturating_add(f64s(t.saturating_mul(t).saturating_mul(4)));
    }
    let workers = (threads as u64).clamp(1, h.max(1));
    let analysis = layer.saturating_add(per_head.saturating_mul(workers));
    Estimate { base: BASE, weights, activations, analysis }
}

/// Memory available to this process, and where the figure came from.
pub fn available() -> Option<(u64, String)> {
    if let Ok(v) = std::env::var("ATTNSCOPE_MEMORY_LIMIT_BYTES") {
        if let Ok(n) = v.trim().parse::<u64>() {
            return Some((n, "ATTNSCOPE_MEMORY_LIMIT_BYTES".into()));
        }
    }
    let read_u64 = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let mut best = meminfo.map(|b| (b, "MemAvailable".to_string()));
    // cgroup v2, then v1 (v1 reports "no limit" as a huge number).
    let cgroup = match (read_u64("/sys/fs/cgroup/memory.max"), read_u64("/sys/fs/cgroup/memory.current")) {
        (Some(max), cur) => Some(max.saturating_sub(cur.unwrap_or(0))),
        _ => match (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes"), read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes")) {
            (Some(max), cur) if max < 1 << 60 => Some(max.saturating_sub(cur.unwrap_or(0))),
            _ => None,
        },
    };
    if let Some(c) = cgroup {
        if best.as_ref().is_none_or(|(b, _)| c < *b) {
            best = Some((c, "cgroup memory limit".into()));
        }
    }
    best
}

/// Refuses when the estimate exceeds the memory available (unless `force`).
/// Unknown availability (no /proc) never refuses.
pub fn check(est: &Estimate, available: Option<&(u64, String)>, force: bool) -> Result<()> {
    let Some((avail, source)) = available else { return Ok(()) };
    if est.total() > *avail && !force {
        bail!(
            "estimated peak memory {} exceeds the {} available ({source}); use shorter --ctx or fewer --threads, or pass --force to run anyway",
            est.describe(),
            gib(*avail)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_above_limit_unless_forced() {
        let est = Estimate { base: 0, weights: 3 << 30, activations: 1 << 30, analysis: 1 << 20 };
        let avail = (2u64 << 30, "test".to_string());
        let e = check(&est, Some(&avail), false).unwrap_err().to_string();
        assert!(e.contains("4.00 GiB") && e.contains("2.00 GiB") && e.contains("--force"), "{e}");
        assert!(check(&est, Some(&avail), true).is_ok());
        assert!(check(&est, None, false).is_ok());
        assert!(check(&est, Some(&(5u64 << 30, "x".into())), false).is_ok());
    }
}
