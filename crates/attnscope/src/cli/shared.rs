//! The flag groups several subcommands share.

use std::path::PathBuf;

use clap::Args;

use crate::options::{ModelOptions, RunOptions};

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

impl ModelArgs {
    pub fn options(&self) -> ModelOptions {
        ModelOptions { model: self.model.clone(), tokenizer: self.tokenizer.clone() }
    }
}

/// How to run: shared by analyze, compress, train and monitor.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Worker threads (default: all cores; more than the number of cores is
    /// capped at it).
    #[arg(long)]
    pub threads: Option<usize>,

    /// No progress bars or progress lines.
    #[arg(long, short)]
    pub quiet: bool,

    /// Output directory (default: out/<subcommand>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl RunArgs {
    /// The options, with `default_out` when `--out` is not given.
    pub fn options(&self, default_out: &str) -> RunOptions {
        RunOptions { threads: self.threads, quiet: self.quiet, out: self.out.clone().unwrap_or_else(|| PathBuf::from(default_out)) }
    }
}
