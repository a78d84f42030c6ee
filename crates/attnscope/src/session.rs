//! What every subcommand does before its own work: size the thread pool,
//! resolve the model source, load it (after the memory guard), and check
//! that the tokenizer and the context lengths fit the model.

use std::path::Path;

use anyhow::{bail, Context, Result};
use models::{Checkpoint, Model, TextTokenizer};

use crate::progress::Progress;
use crate::{defaults, memory};

/// Sizes rayon's global pool (the heads of a layer run on it); `None` = all cores.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().ok();
    }
    Ok(())
}

/// `--model` as given, or the default model fetched by scripts/setup.sh.
pub fn model_source(model: Option<&str>) -> Result<String> {
    if let Some(m) = model {
        return Ok(m.to_string());
    }
    let p = defaults::default_model();
    if !p.exists() {
        bail!("default model not found at {}; run scripts/setup.sh first, or pass --model", p.display());
    }
    Ok(p.display().to_string())
}

/// What the memory guard needs to estimate a run's peak.
pub struct MemoryPlan {
    pub longest_ctx: usize,
    pub threads: Option<usize>,
    pub dense_check: bool,
    pub force: bool,
    pub quiet: bool,
}

/// A loaded model with its checkpoint (config, tokenizer).
pub struct Loaded {
    pub source: String,
    pub checkpoint: Checkpoint,
    pub model: Model,
}

impl Loaded {
    /// Opens `source`, applies the memory guard if a plan is given, builds the decoder.
    pub fn open(source: &str, tokenizer: Option<&Path>, progress: &Progress, plan: Option<&MemoryPlan>) -> Result<Loaded> {
        let spinner = progress.spinner(&format!("loading {source}"));
        let checkpoint = Checkpoint::open(source, tokenizer).with_context(|| format!("cannot load model {source}"))?;
        if let Some(plan) = plan {
            if let Ok(spec) = models::ArchSpec::from_hf_config(&checkpoint.config) {
                let threads = plan.threads.unwrap_or_else(rayon::current_num_threads);
                let est = memory::estimate(&spec, &checkpoint.tensors, plan.longest_ctx, threads, plan.dense_check);
                let avail = memory::available();
                if !plan.quiet {
                    let of = avail.as_ref().map(|(b, s)| format!(" of {} available ({s})", memory::gib(*b))).unwrap_or_default();
                    eprintln!("attnscope: estimated peak memory {}{of}", est.describe());
                }
                memory::check(&est, avail.as_ref(), plan.force)?;
            }
        }
        let model = Model::load(&checkpoint).with_context(|| format!("cannot load model {source}"))?;
        spinner.finish_and_clear();
        Ok(Loaded { source: source.to_string(), checkpoint, model })
    }

    /// The model's tokenizer, refused when its vocabulary exceeds the model's.
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        let source = &self.source;
        let tokenizer = self
            .checkpoint
            .tokenizer
            .as_ref()
            .with_context(|| self.checkpoint.missing_tokenizer_reason())?;
        let vocab = self.model.spec.vocab_size;
        if tokenizer.vocab_size() > vocab {
            bail!("tokenizer vocabulary ({}) does not match the model {source} (vocabulary {vocab})", tokenizer.vocab_size());
        }
        Ok(tokenizer)
    }

    /// Refuses context lengths past the trained context unless `beyond` is set.
    pub fn check_ctx(&self, ctxs: &[usize], beyond: bool) -> Result<()> {
        if let Some(trained) = self.model.spec.max_positions {
            if let Some(&too_long) = ctxs.iter().find(|&&c| c > trained) {
                if !beyond {
                    bail!("--ctx {too_long} is past the model's trained context of {trained} tokens; pass --beyond-trained-context to go past it");
                }
            }
        }
        Ok(())
    }
}
