//! Memory guard: estimates the peak memory of a command (analyze,
//! compress, monitor, train) before any weight is loaded (weights streamed
//! one layer at a time, as the decoder holds them), and refuses (exit 2)
//! when it exceeds the memory available, unless `--force`. The estimate and
//! its terms are documented in docs/hardening.md ("Memory guard"); it errs
//! on the high side. [`estimate`] gives the model terms every subcommand
//! shares; each subcommand adds its own terms (texts, logits, training
//! state) to a [`Peak`] and calls [`guard`].
//!
//! Available memory: `ATTNSCOPE_MEMORY_LIMIT_BYTES` if set (tests, or a
//! user who wants a lower ceiling: a whole number of bytes, anything else is
//! an error), else `MemAvailable` of /proc/meminfo, lowered to the cgroup's
//! headroom (v2 `memory.max − memory.current`, or v1
//! `memory.limit_in_bytes − memory.usage_in_bytes`) when one is set.
//!
//! `--force` skips the refusal, never the allocation checks: [`probe`]
//! asks the allocator for a buffer before a step that will need it, so an
//! allocation the system cannot satisfy is an error with one line, not an
//! abort (Rust aborts the process when an infallible allocation fails).

use anyhow::{bail, Result};
use models::{ArchSpec, TensorStore};

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

#[allow(dead_code)] // total and describe: the analyze estimate on its own
impl Estimate {
    pub fn total(&self) -> u64 {
        self.base + self.weights + self.activations + self.analysis
    }

    /// The terms, named, for a [`Peak`].
    pub fn terms(&self) -> Vec<(&'static str, u64)> {
        vec![("base", self.base), ("weights", self.weights), ("activations", self.activations), ("analysis", self.analysis)]
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
    // Scores of one query chunk, as the decoder sizes it: logits, masked
    // logits, softmax (3 copies).
    let scores = 3u64.saturating_mul(models::decoder::attention_scores_per_chunk(h as usize, t as usize));
    let activations = f32s(stream.saturating_add(scores));

    // One layer: q, k flattened to f32 Vecs, W_Q/W_K as Vec<Vec<f32>> plus
    // the per-KV-head column copies.
    let layer = f32s((h + hkv).saturating_mul(t).saturating_mul(d) + dm.saturating_mul((h + 2 * hkv) * d));
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

/// The environment variable that sets the memory available, in bytes.
pub const LIMIT_ENV: &str = "ATTNSCOPE_MEMORY_LIMIT_BYTES";

/// `ATTNSCOPE_MEMORY_LIMIT_BYTES`, strictly: unset → `None`; a whole
/// number of bytes (ASCII digits, surrounding blanks allowed) → it; anything
/// else (`1G`, `abc`, `-5`, `1.5e9`, empty, past 2⁶⁴ − 1) → an error that
/// names the variable and the value.
pub fn limit_from_env() -> Result<Option<u64>> {
    let Some(raw) = std::env::var_os(LIMIT_ENV) else { return Ok(None) };
    let v = raw.to_string_lossy();
    let t = v.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{LIMIT_ENV}=`{v}` is not a whole number of bytes (e.g. {LIMIT_ENV}=2000000000)");
    }
    match t.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        Ok(_) => bail!("{LIMIT_ENV}=`{v}`: the limit must be at least 1 byte"),
        Err(_) => bail!("{LIMIT_ENV}=`{v}` is larger than 2^64 - 1 bytes"),
    }
}

/// Memory available to this process, and where the figure came from.
/// Errors only for a malformed `ATTNSCOPE_MEMORY_LIMIT_BYTES`.
pub fn available() -> Result<Option<(u64, String)>> {
    if let Some(n) = limit_from_env()? {
        return Ok(Some((n, LIMIT_ENV.into())));
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
    Ok(best)
}

/// A command's estimated peak, as named terms in bytes (what the guard
/// prints and compares).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peak(pub Vec<(&'static str, u64)>);

impl Peak {
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, (_, b)| a.saturating_add(*b))
    }

    /// Adds a term (saturating: a corrupt header cannot wrap the sum).
    pub fn add(mut self, name: &'static str, bytes: u64) -> Self {
        self.0.push((name, bytes));
        self
    }

    pub fn describe(&self) -> String {
        let terms: Vec<String> = self.0.iter().map(|(n, b)| format!("{n} {}", gib(*b))).collect();
        format!("{} ({})", gib(self.total()), terms.join(", "))
    }

    /// What would lower the estimate, by its largest term.
    pub fn hint(&self) -> String {
        let largest = self.0.iter().max_by_key(|(_, b)| *b).map(|(n, b)| (*n, *b));
        let per_ctx = self.0.iter().filter(|(n, _)| matches!(*n, "activations" | "analysis")).fold(0u64, |a, (_, b)| a.saturating_add(*b));
        match largest {
            Some(("weights", w)) if w >= per_ctx => format!(
                "the weights term ({}: two layers of this model as f32) does not shrink with --ctx, --layers or --threads; free memory, or pass --force to run anyway",
                gib(w)
            ),
            Some(("activations" | "analysis", _)) => format!(
                "activations and analysis ({}) grow with the context: use a shorter --ctx, fewer --threads or no --dense-check, or pass --force to run anyway",
                gib(per_ctx)
            ),
            _ => "use a smaller model, context or batch, or pass --force to run anyway".to_string(),
        }
    }
}

impl From<Estimate> for Peak {
    fn from(e: Estimate) -> Peak {
        Peak(e.terms())
    }
}

/// Refuses when the estimate exceeds the memory available (unless `force`).
/// Unknown availability (no /proc) never refuses.
pub fn check(peak: &Peak, available: Option<&(u64, String)>, force: bool) -> Result<()> {
    let Some((avail, source)) = available else { return Ok(()) };
    if peak.total() > *avail && !force {
        bail!("estimated peak memory {} exceeds the {} available ({source}); {}", peak.describe(), gib(*avail), peak.hint());
    }
    Ok(())
}

/// The guard every subcommand runs before it allocates: prints the
/// estimate (unless `quiet`), then [`check`]s it against [`available`].
/// With `force`, a refusal becomes a warning line.
pub fn guard(peak: &Peak, force: bool, quiet: bool) -> Result<()> {
    let avail = available()?;
    if !quiet {
        let of = avail.as_ref().map(|(b, s)| format!(" of {} available ({s})", gib(*b))).unwrap_or_default();
        eprintln!("attnscope: estimated peak memory {}{of}", peak.describe());
    }
    check(peak, avail.as_ref(), force)?;
    if let Some((a, _)) = &avail {
        if force && peak.total() > *a && !quiet {
            eprintln!("attnscope: warning: --force: running although the estimate exceeds the memory available");
        }
    }
    Ok(())
}

/// Asks the allocator for `bytes` and gives them back at once (no page is
/// touched): an error naming `what` when the system cannot provide them.
/// Called before a step that will need that much at once, so that a
/// failure is one line and exit 2 rather than Rust's abort on a failed
/// allocation.
pub fn probe(bytes: u64, what: &str) -> Result<()> {
    let mut v: Vec<u8> = Vec::new();
    let ok = usize::try_from(bytes).is_ok_and(|n| v.try_reserve_exact(n).is_ok());
    if !ok {
        bail!("{what} needs {} at once, which the system cannot allocate", gib(bytes));
    }
    Ok(())
}

/// The finished runs `analyze` keeps in memory until the report is
/// written: per head and run, the record (spectrum and scalar measures,
/// ≈ 1 KiB plus the (d+1)-value spectrum in f64) and the report's drill-down
/// data (the packed f64 field tile of the first `tile_tokens` tokens, c_j and
/// ℓ_j in f64), for `n_texts` texts at each of `ctxs`.
pub fn results_bytes(heads: u64, head_dim: u64, n_texts: u64, ctxs: &[usize], tile_tokens: usize) -> u64 {
    let per_text: u64 = ctxs
        .iter()
        .map(|&n| {
            let t = n.min(tile_tokens) as u64;
            let tile = t.saturating_mul(t + 1) / 2 * 8;
            tile.saturating_add((n as u64).saturating_mul(16)).saturating_add(1024 + 8 * (head_dim + 1))
        })
        .fold(0u64, u64::saturating_add);
    per_text.saturating_mul(heads).saturating_mul(n_texts)
}

/// The working memory of tokenizing `bytes` bytes of text: the text itself,
/// the tokenizer's per-byte intermediate state (offsets, pre-token strings,
/// word caches: measured ≈ 50 bytes per input byte for the `tokenizers`
/// byte-level BPE on a 100 MB text), and the ids. Rounded up to 64.
pub fn text_bytes(bytes: u64) -> u64 {
    bytes.saturating_mul(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_above_limit_unless_forced() {
        let est: Peak = Estimate { base: 0, weights: 3 << 30, activations: 1 << 30, analysis: 1 << 20 }.into();
        let avail = (2u64 << 30, "test".to_string());
        let e = check(&est, Some(&avail), false).unwrap_err().to_string();
        assert!(e.contains("4.00 GiB") && e.contains("2.00 GiB") && e.contains("--force"), "{e}");
        assert!(e.contains("weights term") && !e.contains('\n'), "{e}");
        let ctx_bound = Estimate { base: 0, weights: 1 << 20, activations: 3 << 30, analysis: 1 << 30 };
        let e = check(&ctx_bound.into(), Some(&avail), false).unwrap_err().to_string();
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

    #[test]
    fn limit_env_is_parsed_strictly() {
        // One test touches the variable (tests run in threads of one process).
        for (v, ok) in [
            ("1G", None),
            ("abc", None),
            ("-5", None),
            ("1.5e9", None),
            ("", None),
            ("0", None),
            ("99999999999999999999", None),
            (" 4096 ", Some(4096u64)),
        ] {
            std::env::set_var(LIMIT_ENV, v);
            let r = limit_from_env();
            match ok {
                Some(n) => assert_eq!(r.unwrap(), Some(n), "{v:?}"),
                None => {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(LIMIT_ENV) && e.contains(&format!("`{v}`")), "{v:?}: {e}");
                }
            }
        }
        std::env::remove_var(LIMIT_ENV);
        assert_eq!(limit_from_env().unwrap(), None);
    }

    #[test]
    fn probe_refuses_what_cannot_be_allocated() {
        assert!(probe(1 << 20, "x").is_ok());
        let e = probe(u64::MAX, "tensor t").unwrap_err().to_string();
        assert!(e.contains("tensor t") && e.contains("cannot allocate"), "{e}");
    }

    #[test]
    fn peak_sums_and_names_terms() {
        let p = Peak::default().add("a", 1 << 20).add("b", u64::MAX);
        assert_eq!(p.total(), u64::MAX);
        assert!(p.describe().contains("a 1.0 MiB"));
    }
}
