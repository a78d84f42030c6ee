//! `attnscope compress` flags.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::shared::{ModelArgs, RunArgs};
use crate::compress::{BasisKind, CompressOptions};

pub(super) const ABOUT: &str = "How few directions does each attention head need?

For every head and every r in --r, three rank-r bases of the energy field E:
  data     the top-r singular directions of E on the --calib text, applied to the --eval text
  weights  the top-r singular directions of M = W_Q W_Kᵀ (weights only; no text)
  random   r random orthonormal directions (the control; seed = --seed + 1000·layer + head)
Per (layer, head, basis, r), on the --eval text:
  kl       mean row KL(P‖P_r), nats, P_r the attention pattern rebuilt from the rank-r field
  top1     fraction of rows whose most likely key is unchanged

The key-cache experiment: each layer's keys replaced, inside the forward pass, by
their rank-r key-side projection of the same basis (docs/compress.md), and the mean
next-token loss on the --eval text measured:
  loss_delta  (loss_r − loss_full) / loss_full     loss_delta_abs  loss_r − loss_full (nats)
  ratio       min(r, d)/d, the fraction of the key cache kept
for all layers at a uniform r (every r of --r), and for one layer at a time
(--layer-r ranks, --layer-bases bases: one forward pass each; default d/4, data).

Writes OUT/compress.json (records + table), OUT/compress.csv (the same records),
OUT/compress.html (curves and table, self-contained), and prints the table:
k90 of E and of M (median, range), the spectral gap, the r needed for a mean
KL ≤ 0.01 nats and for a |loss change| ≤ 1 %, and whether data beats weights at equal r.

Cost: one fidelity call per (layer, head, basis, r), one forward pass per uniform
key-cache run (per basis and distinct key rank) and per (layer, --layer-r rank,
--layer-bases basis). `--r all` (d + 1 ranks) multiplies the pattern time; `--layer-r none`
skips the per-layer runs. Measured times: docs/compress.md.

Exit codes: 0 success, 2 any user-facing error.";

#[derive(Args, Debug, Clone)]
pub struct CompressArgs {
    #[command(flatten)]
    pub source: ModelArgs,

    /// Calibration text (the data basis is fitted on it). Default: /usr/share/common-licenses/GPL-3.
    #[arg(long)]
    pub calib: Option<PathBuf>,

    /// Evaluation text (every number is measured on it). Default: /usr/share/common-licenses/Apache-2.0.
    #[arg(long)]
    pub eval: Option<PathBuf>,

    /// Context length: both texts are cut to exactly this many tokens.
    #[arg(long, default_value_t = 256)]
    pub ctx: usize,

    /// Ranks r, comma-separated (1 ≤ r ≤ d+1), or `all` for 1..d+1. Default: the
    /// powers of two below d, then d/2, 3d/4, d, d+1 (d = 64: 1,2,4,8,16,32,48,64,65).
    #[arg(long = "r")]
    pub r: Option<String>,

    /// Key ranks of the per-layer key-cache runs (one forward pass per layer,
    /// rank and basis), comma-separated, or `none`. Default: d/4 (e.g. `--layer-r 8,16,32`
    /// for d/8, d/4, d/2 at d = 64: three times the cost).
    #[arg(long)]
    pub layer_r: Option<String>,

    /// Bases of the per-layer key-cache runs, comma-separated (data, weights, random).
    #[arg(long, value_delimiter = ',', default_value = "data")]
    pub layer_bases: Vec<String>,

    /// Base seed of the random bases.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Allow a context length past the model's trained context.
    #[arg(long)]
    pub beyond_trained_context: bool,

    #[command(flatten)]
    pub run: RunArgs,

    /// Run even when the estimated peak memory exceeds the memory available
    /// (see docs/hardening.md).
    #[arg(long)]
    pub force: bool,
}

impl CompressArgs {
    /// The options; an unknown `--layer-bases` name is an error.
    pub fn options(&self) -> Result<CompressOptions> {
        Ok(CompressOptions {
            source: self.source.options(),
            calib: self.calib.clone(),
            eval: self.eval.clone(),
            ctx: self.ctx,
            r: self.r.clone(),
            layer_r: self.layer_r.clone(),
            layer_bases: self.layer_bases.iter().filter(|s| !s.trim().is_empty()).map(|s| BasisKind::parse(s)).collect::<Result<_>>()?,
            seed: self.seed,
            beyond_trained_context: self.beyond_trained_context,
            run: self.run.options("out/compress"),
            force: self.force,
        })
    }
}
