//! Command-line arguments (clap), kept apart from what they drive.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Measure the invariants of softmax attention in real language models, head by head.

For every attention head, attnscope computes the energy field E (the row-centred
attention logit, E_ij = s·q_i·k_j + b_ij − mean_{j'∈C_i} S_ij') with exact O(n·d²)
algorithms, never an n×n matrix, and reports:

  mechanism invariants (verified)    zero_sum_residual, shift_consistency,
                                     numerical_rank ≤ rank_bound = d_head + 1
  spectral signature                 spectrum, k90, k99, effective_rank, stable_rank,
                                     k90_learned, effective_rank_learned, spectral_gap, k90_gap
  delocalization over keys           participation_ratio, top1pct_share, argmax_key
  key incoherence                    key_coherence, energy_leverage_spearman

Every quantity is defined in docs/definitions.md.";

#[derive(Parser, Debug)]
#[command(name = "attnscope", version, about = "Measure the invariants of softmax attention in real LMs, head by head.", long_about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compute every measure for every head, on texts × context lengths; write report.json, heads.csv, heads.parquet, report.html.
    #[command(long_about = ANALYZE_ABOUT)]
    Analyze(AnalyzeArgs),
    /// Rank-r compression of every head (data / weights / random bases) and the key-cache experiment; write compress.json, compress.csv, compress.html.
    #[command(long_about = crate::compress::ABOUT)]
    Compress(crate::compress::CompressArgs),
    /// Train a small gpt2 / gpt_neox / llama decoder on a text (CPU), with HF checkpoints and the head monitor.
    #[command(long_about = crate::train::ABOUT)]
    Train(crate::train::TrainArgs),
    /// Per-head monitor over a series of checkpoints: monitor.jsonl, monitor.csv, alerts.jsonl, monitor.html.
    #[command(long_about = crate::monitor::ABOUT)]
    Monitor(crate::monitor::MonitorArgs),
    /// The monitor's study: false alarms on healthy runs, recall / precision / delay on injected faults; eval.json, runs.csv, eval.md.
    #[command(name = "monitor-eval", long_about = crate::monitor::eval::ABOUT)]
    MonitorEval(crate::monitor::eval::MonitorEvalArgs),
}

const ANALYZE_ABOUT: &str = "Compute every measure for every head of a model, on each text at each context length.

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

    /// Output directory.
    #[arg(long, default_value = "out/analyze")]
    pub out: PathBuf,

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

/// Which model to read: shared by every subcommand that loads one.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: an HF directory, a .gguf file, a llama2.c .bin, or a hub id (owner/name).
    /// Default: SmolLM2-135M-Instruct Q4_1 from the cache filled by scripts/setup.sh.
    #[arg(long)]
    pub model: Option<String>,

    /// Tokenizer override: a tokenizer.json, or a llama2.c tokenizer .bin.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

/// How to run: shared by analyze and compress.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Worker threads (default: all cores; more than the number of cores is
    /// capped at it).
    #[arg(long)]
    pub threads: Option<usize>,

    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}
