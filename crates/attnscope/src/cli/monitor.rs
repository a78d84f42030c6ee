//! `attnscope monitor` flags.

use std::path::PathBuf;

use clap::Args;

use super::rules::RuleArgs;
use super::shared::RunArgs;
use crate::monitor::MonitorOptions;

pub(super) const ABOUT: &str = "Run the per-head monitor over a series of checkpoints (any format analyze reads).

For each checkpoint (sorted by training step: trainer_state.json's global_step beside it,
else the number its name ends with), measures every head's key_coherence,
participation_ratio, k90 and attention entropy on the first --ctx tokens of --text, and
applies the alert rules in checkpoint order. Writes OUT/monitor.jsonl, monitor.csv,
alerts.jsonl and monitor.html.";

#[derive(Args, Debug, Clone)]
pub struct MonitorArgs {
    /// Checkpoints: HF directories, .gguf files, llama2.c .bin files.
    #[arg(long, num_args = 1.., required = true)]
    pub checkpoints: Vec<String>,
    /// Probe text (UTF-8).
    #[arg(long)]
    pub text: PathBuf,
    /// Probe length in tokens.
    #[arg(long, default_value_t = 64)]
    pub ctx: usize,
    /// Tokenizer override (tokenizer.json or llama2.c .bin).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Allow a probe length past the checkpoints' trained context.
    #[arg(long)]
    pub beyond_trained_context: bool,
    /// Run even when the estimated peak memory exceeds the memory available
    /// (see docs/hardening.md).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

impl MonitorArgs {
    pub fn options(&self) -> anyhow::Result<MonitorOptions> {
        Ok(MonitorOptions {
            checkpoints: self.checkpoints.clone(),
            text: self.text.clone(),
            ctx: self.ctx,
            tokenizer: self.tokenizer.clone(),
            beyond_trained_context: self.beyond_trained_context,
            force: self.force,
            rules: self.rules.rules()?,
            run: self.run.options("out/monitor"),
        })
    }
}
