//! `attnscope analyze` flags.

use std::path::PathBuf;

use clap::Args;

use super::shared::{ModelArgs, RunArgs};
use crate::analyze::AnalyzeOptions;

pub(super) const ABOUT: &str = "Compute every measure for every head of a model, on each text at each context length.

Per head (one row of heads.csv):
  zero_sum_residual        max_i |Σ_{C_i} E_ij| / Σ_{C_i} |E_ij|: rows of E sum to zero (≤ 1e-10)
  shift_consistency        max |E_ij − centred log P_ij|: the field from logits equals the field from the model's softmax
  rank_bound               d_head + 1 (+1 with ALiBi): the algebraic bound on rank(E)
  numerical_rank           singular values of E above σ₁·max(n,d)·ε
  rank_bound_holds         numerical_rank ≤ rank_bound
  k90, k99                 fewest singular directions holding 90 % / 99 % of Σσ²
  effective_rank           exp(entropy of σ/Σσ)
  stable_rank              Σσ² / σ₁²
  k90_learned, effective_rank_learned
                           the same for the learned interaction M = W_Q W_Kᵀ (weights only, no rotary)
  spectral_gap             effective_rank_learned / effective_rank
  k90_gap                  k90_learned / k90 (the companion paper’s “gap”)
  participation_ratio      (Σc)²/(n Σc²) of the key energies c_j: 1 = spread evenly, 1/n = one key
  top1pct_share            share of Σc held by the top 1 % of keys
  argmax_key               the key position with the most energy
  key_coherence            (n/r)·max leverage of [K, 1]: 1 = perfectly incoherent keys
  energy_leverage_spearman rank correlation of key energy and key leverage

Definitions: docs/definitions.md. Output contract: report.json, heads.csv, heads.parquet,
report.html in --out. Finished (text, ctx) runs are kept in OUT/runs/ and skipped when
the same command is run again, so an interrupted sweep resumes where it stopped.

Exit codes: 0 success, 1 --dense-check found a mismatch (reused runs included), 2 any
user-facing error (one line on stderr, argument errors included), 3 the mechanism
invariants failed for some head (one warning line; the report is written).
--threads beyond the number of cores is capped at it.";

#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub source: ModelArgs,

    /// A UTF-8 text file; repeat for several. Default: the GPL-3, Apache-2.0 and
    /// MPL-2.0 texts of /usr/share/common-licenses.
    #[arg(long = "text")]
    pub texts: Vec<PathBuf>,

    /// Context lengths, comma-separated. Each text is cut to exactly this many
    /// tokens; a shorter text is an error.
    #[arg(long, value_delimiter = ',', default_values_t = vec![256usize, 512, 1024])]
    pub ctx: Vec<usize>,

    /// Layers to analyse, e.g. `0-3,7` (default: all).
    #[arg(long)]
    pub layers: Option<String>,

    /// Also compute every head densely (n×n, the reference path) and exit 1 if
    /// any measure differs beyond its tolerance.
    #[arg(long)]
    pub dense_check: bool,

    /// Allow context lengths past the model's trained context.
    #[arg(long)]
    pub beyond_trained_context: bool,

    #[command(flatten)]
    pub run: RunArgs,

    /// Run even when the estimated peak memory exceeds the memory available
    /// (see docs/hardening.md).
    #[arg(long)]
    pub force: bool,
}

impl AnalyzeArgs {
    pub fn options(&self) -> AnalyzeOptions {
        AnalyzeOptions {
            source: self.source.options(),
            texts: self.texts.clone(),
            ctx: self.ctx.clone(),
            layers: self.layers.clone(),
            dense_check: self.dense_check,
            beyond_trained_context: self.beyond_trained_context,
            run: self.run.options("out/analyze"),
            force: self.force,
        }
    }
}
