//! The plain option groups the library's subcommands take (no clap here:
//! the command line parses into these in `cli/`).

use std::path::PathBuf;

/// Which model to read.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// An HF directory, a .gguf file, a llama2.c .bin, or a hub id;
    /// `None`: the default model of `scripts/setup.sh`.
    pub model: Option<String>,
    /// A tokenizer.json or llama2.c tokenizer .bin overriding the model's.
    pub tokenizer: Option<PathBuf>,
}

/// How to run, shared by every subcommand.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads: `None` = all cores; more than the cores is capped.
    pub threads: Option<usize>,
    /// No progress bars or progress lines.
    pub quiet: bool,
    /// Output directory.
    pub out: PathBuf,
}
