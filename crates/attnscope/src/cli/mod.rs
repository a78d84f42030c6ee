//! Every command-line flag (clap), kept apart from what it drives: each
//! subcommand's flags parse into the plain option struct its library module
//! takes (`analyze::AnalyzeOptions`, …). Shared groups live in `shared`.

mod analyze;
mod compress;
mod monitor;
mod monitor_eval;
mod rules;
mod shared;
mod train;

use clap::{Parser, Subcommand};

pub use analyze::AnalyzeArgs;
pub use compress::CompressArgs;
pub use monitor::MonitorArgs;
pub use monitor_eval::MonitorEvalArgs;
pub use rules::RuleArgs;
pub use shared::{ModelArgs, RunArgs};
pub use train::TrainArgs;

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
    #[command(long_about = analyze::ABOUT)]
    Analyze(AnalyzeArgs),
    /// Rank-r compression of every head (data / weights / random bases) and the key-cache experiment; write compress.json, compress.csv, compress.html.
    #[command(long_about = compress::ABOUT)]
    Compress(CompressArgs),
    /// Train a small gpt2 / gpt_neox / llama decoder on a text (CPU), with HF checkpoints and the head monitor.
    #[command(long_about = train::ABOUT)]
    Train(TrainArgs),
    /// Per-head monitor over a series of checkpoints: monitor.jsonl, monitor.csv, alerts.jsonl, monitor.html.
    #[command(long_about = monitor::ABOUT)]
    Monitor(MonitorArgs),
    /// The monitor's study: false alarms on healthy runs, recall / precision / delay on injected faults; eval.json, runs.csv, eval.md.
    #[command(name = "monitor-eval", long_about = monitor_eval::ABOUT)]
    MonitorEval(MonitorEvalArgs),
}

impl Command {
    /// Validates the flags into the subcommand's options and runs it.
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            Command::Analyze(args) => crate::analyze::run(&args.options()),
            Command::Compress(args) => crate::compress::run(&args.options()?),
            Command::Train(args) => crate::train::run(&args.options()?),
            Command::Monitor(args) => crate::monitor::run(&args.options()?),
            Command::MonitorEval(args) => crate::monitor::eval::run(&args.options()?),
        }
    }
}
