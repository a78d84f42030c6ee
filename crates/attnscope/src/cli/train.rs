//! `attnscope train` flags.

use std::path::PathBuf;

use clap::Args;

use super::rules::RuleArgs;
use super::shared::RunArgs;
use crate::train::TrainOptions;

pub(super) const ABOUT: &str = "Train a small decoder (gpt2, gpt_neox or llama) on a text, byte-level, on CPU.

Writes OUT/train.jsonl (one line per step: lr, train_loss, grad_norm; val_loss every
--eval-every steps), OUT/checkpoints/step-NNNNNN/ (HF format: config.json,
model.safetensors, tokenizer.json, tokenizer_config.json, trainer_state.json) at
--save-every / --save-at steps and at the end, and OUT/summary.json. Every
--monitor-every N steps (default 10; 0 = off), every head's key_coherence, participation_ratio, k90 and attention
entropy are measured every N steps on a fixed probe window of the validation split
(OUT/monitor/monitor.jsonl, monitor.csv, alerts.jsonl, monitor.html); alerts are
printed as they fire.

--fault KIND@STEP injects a controlled fault for the monitor (docs/monitor.md):
lr-spike (learning rate × --fault-factor for --fault-steps steps, default 10),
collapse (W_Q, W_K of 3 heads × 10), reset (2 heads' Q/K/V/O re-initialised),
key (rank-1 spike on one KV head's W_K), data (--fault-steps, default 50, steps
of one repeated token). OUT/fault.json names the heads hit.";

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Architecture: gpt2, gpt_neox or llama.
    #[arg(long, default_value = "llama")]
    pub family: String,
    /// Training text (UTF-8); the last --val-fraction of its bytes is the validation split.
    #[arg(long)]
    pub text: PathBuf,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// KV heads (llama only; default heads/2).
    #[arg(long)]
    pub kv_heads: Option<usize>,
    /// Context length of training windows (and of the model's positions).
    #[arg(long, default_value_t = 64)]
    pub ctx: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 300)]
    pub steps: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: u64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    #[arg(long, default_value_t = 25)]
    pub eval_every: u64,
    /// Validation windows (fixed, evenly spaced over the validation split).
    #[arg(long, default_value_t = 16)]
    pub eval_windows: usize,
    /// Save a checkpoint every N steps (0: only --save-at and the last step).
    #[arg(long, default_value_t = 0)]
    pub save_every: u64,
    /// Save checkpoints at these steps (comma-separated; 0 = the initial weights).
    #[arg(long, value_delimiter = ',')]
    pub save_at: Vec<u64>,
    /// Run the head monitor every N steps (0: off).
    #[arg(long, default_value_t = 10)]
    pub monitor_every: u64,
    /// Probe length for the monitor (default: --ctx).
    #[arg(long)]
    pub probe_ctx: Option<usize>,
    /// Controlled fault: `KIND@STEP`, KIND one of lr-spike, collapse, reset, key, data.
    #[arg(long)]
    pub fault: Option<String>,
    /// Learning-rate factor of the lr-spike fault.
    #[arg(long, default_value_t = 50.0)]
    pub fault_factor: f64,
    /// Duration of the lr-spike (default 10) and data (default 50) faults.
    #[arg(long)]
    pub fault_steps: Option<u64>,
    /// Stop after this step (the learning-rate schedule still spans --steps):
    /// a fault run that only needs the steps around its fault.
    #[arg(long)]
    pub stop_at: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Run even when the estimated peak memory exceeds the memory available
    /// (see docs/hardening.md).
    #[arg(long)]
    pub force: bool,
}

impl TrainArgs {
    pub fn options(&self) -> anyhow::Result<TrainOptions> {
        Ok(TrainOptions {
            family: self.family.clone(),
            text: self.text.clone(),
            val_fraction: self.val_fraction,
            d_model: self.d_model,
            layers: self.layers,
            heads: self.heads,
            kv_heads: self.kv_heads,
            ctx: self.ctx,
            batch: self.batch,
            steps: self.steps,
            lr: self.lr,
            warmup: self.warmup,
            min_lr_ratio: self.min_lr_ratio,
            weight_decay: self.weight_decay,
            clip: self.clip,
            eval_every: self.eval_every,
            eval_windows: self.eval_windows,
            save_every: self.save_every,
            save_at: self.save_at.clone(),
            monitor_every: self.monitor_every,
            probe_ctx: self.probe_ctx,
            fault: self.fault.clone(),
            fault_factor: self.fault_factor,
            fault_steps: self.fault_steps,
            stop_at: self.stop_at,
            seed: self.seed,
            rules: self.rules.rules()?,
            run: self.run.options("out/train"),
            force: self.force,
        })
    }
}
