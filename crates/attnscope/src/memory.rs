//! Memory guard: estimates the peak memory of an `analyze` command before
//! any weight is loaded (weights streamed one layer at a time, as the
//! decoder holds them), and refuses (exit 2) when it exceeds the memory
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
/// decoder.rs `QUERY_CHUNK`: most queries per attention chunk.
const QUERY_CHUNK: u64 = 128;
/// See [`Estimate::base`].
pub const BASE: u64 = 48 << 20;

/// Peak memory of one `analyze` command, by term, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The process before any model: binary and libraries, thread stacks,
    /// tokenizer, texts ([`BASE`]; measured 17 MB with stories260K, ≈ 40 MiB
    /// with SmolLM2's 49k-token tokenizer).
    pub base: u64,
    /// The weights as the decoder streams them: two layers as f32 (the one
    /// running and the one the prefetch thread loads), the transient f32
    /// copy of an un-permuted Q projection and the stored bytes of the
    /// largest layer tensor while it is dequantized, the embedding rows of
    /// the tokens in use, and the small tensors every pass keeps (norms,
    /// learned positions). Mapped file
    /// pages are not counted beyond that: the loader hands them back to the
    /// page cache once read, so the model file's size does not matter.
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

    /// What would lower the estimate, by its largest term.
    pub fn hint(&self) -> String {
        let per_ctx = self.activations.saturating_add(self.analysis);
        if self.weights >= per_ctx {
            format!(
                "the weights term ({}: two layers of this model as f32) does not shrink with --ctx, --layers or --threads; free memory, or pass --force to run anyway",
                gib(self.weights)
            )
        } else {
            format!(
                "activations and analysis ({}) grow with the context: use a shorter --ctx, fewer --threads or no --dense-check, or pass --force to run anyway",
                gib(per_ctx)
            )
        }
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
    let elems = |name: &str| tensors.shape(name).map_or(0, |s| s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64)));
    // Per layer: its tensors' elements; the largest tensor's elements and stored bytes.
    let mut layers: std::collections::BTreeMap<usize, u64> = std::collections::BTreeMap::new();
    let (mut largest, mut largest_stored, mut kept) = (0u64, 0u64, 0u64);
    for name in tensors.names() {
        let n = elems(&name);
        match layer_of(&name) {
            Some(l) => {
                let e = layers.entry(l).or_insert(0);
                *e = e.saturating_add(n);
                largest = largest.max(n);
                largest_stored = largest_stored.max(tensors.stored_bytes(&name).unwrap_or(n.saturating_mul(4)));
            }
            // Embedding and output layer (vocab rows) stay in the file; the
            // rest (final norm, learned positions) is kept as f32.
            None if tensors.shape(&name).and_then(|s| s.first().copied()) != Some(spec.vocab_size) => kept = kept.saturating_add(n),
            None => {}
        }
    }
    let max_layer = layers.values().copied().max().unwrap_or(0);
    // Transient while one tensor loads: its stored bytes (mapped pages, or
    // the raw copy safetensors converts from), and the f32 copy the Q/K
    // un-permutation of GGUF-llama and llama2.c makes (a Q projection).
    let q_proj = (spec.d_model as u64).saturating_mul((spec.n_heads * spec.head_dim) as u64).min(largest);
    let weights = f32s(max_layer.saturating_mul(2))
        .saturating_add(f32s(q_proj))
        .saturating_add(largest_stored)
        .saturating_add(f32s(kept))
        .saturating_add(f32s((t as u64).saturating_mul(spec.d_model as u64)));

    let t = t as u64;
    let (dm, ff) = (spec.d_model as u64, spec.d_ff as u64);
    let (h, hkv, d) = (spec.n_heads as u64, spec.n_kv_heads as u64, spec.head_dim as u64);
    // x, x1, the norm outputs and the residual sums (≈ 8·t·D); Q/K/V and their
    // head-major and rotated copies (≈ 3·t·(h + 2·h_kv)·d); gated MLP hidden
    // (≈ 4·t·d_ff); cos/sin tables (2·t·d).
    let stream = t.saturating_mul(8 * dm + 4 * ff + 3 * (h + 2 * hkv) * d + 2 * d);
    // Scores of one query chunk: logits, masked logits, softmax (3 × budget).
    // A chunk holds at most QUERY_CHUNK queries over at most t keys.
    let scores = 3 * SCORE_BUDGET.min(h.saturating_mul(t.min(QUERY_CHUNK)).saturating_mul(t));
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

/// The layer a tensor belongs to: the first all-digit part of its HF name
/// (`model.layers.7.…`, `h.7.…`, `gpt_neox.layers.7.…`).
fn layer_of(name: &str) -> Option<usize> {
    name.split('.').find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).and_then(|p| p.parse().ok())
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
        bail!("estimated peak memory {} exceeds the {} available ({source}); {}", est.describe(), gib(*avail), est.hint());
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
        assert!(e.contains("weights term") && !e.contains('\n'), "{e}");
        let ctx_bound = Estimate { base: 0, weights: 1 << 20, activations: 3 << 30, analysis: 1 << 30 };
        let e = check(&ctx_bound, Some(&avail), false).unwrap_err().to_string();
        assert!(e.contains("shorter --ctx") && e.contains("--force"), "{e}");
        assert!(check(&est, Some(&avail), true).is_ok());
        assert!(check(&est, None, false).is_ok());
        assert!(check(&est, Some(&(5u64 << 30, "x".into())), false).is_ok());
    }

    #[test]
    fn layer_of_reads_the_layer_index_of_every_family() {
        assert_eq!(layer_of("model.layers.12.self_attn.q_proj.weight"), Some(12));
        assert_eq!(layer_of("transformer.h.3.attn.c_attn.weight"), Some(3));
        assert_eq!(layer_of("gpt_neox.layers.0.attention.dense.bias"), Some(0));
        assert_eq!(layer_of("model.embed_tokens.weight"), None);
        assert_eq!(layer_of("lm_head.weight"), None);
    }
}
