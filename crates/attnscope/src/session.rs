//! What every subcommand does before its own work: size the thread pool,
//! resolve the model source, load it (after the memory guard), and check
//! that the tokenizer and the context lengths fit the model.

use std::path::Path;

use anyhow::{bail, Context, Result};
use models::{Checkpoint, Model, TextTokenizer};

use crate::progress::Progress;
use crate::{defaults, memory};

/// The number of cores this process may use (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sizes rayon's global pool (the heads of a layer run on it) and returns
/// its size: `None` = all cores; more than [`cores`] is capped at it (a
/// note says so unless `quiet`): threads beyond the cores only add
/// contention (docs/hardening.md).
pub fn set_threads(threads: Option<usize>, quiet: bool) -> Result<usize> {
    let cores = cores();
    let Some(t) = threads else { return Ok(rayon::current_num_threads()) };
    if t == 0 {
        bail!("--threads must be at least 1");
    }
    let n = t.min(cores);
    if n < t && !quiet {
        eprintln!("attnscope: note: --threads {t} is more than the {cores} cores; using {n}");
    }
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().ok();
    Ok(n)
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

/// Terms a subcommand adds to the shared model estimate, from the model's
/// architecture (e.g. compress's full logits, t × vocabulary).
pub type ExtraTerms = Box<dyn Fn(&models::ArchSpec) -> Vec<(&'static str, u64)>>;

/// What the memory guard needs to estimate a run's peak.
pub struct MemoryPlan {
    pub longest_ctx: usize,
    pub threads: usize,
    pub dense_check: bool,
    pub force: bool,
    pub quiet: bool,
    /// The subcommand's own terms (texts, logits, …).
    pub extra: ExtraTerms,
}

impl MemoryPlan {
    /// The peak for `spec` and the checkpoint's tensors: [`memory::estimate`]
    /// plus the subcommand's terms.
    pub fn peak(&self, spec: &models::ArchSpec, tensors: &models::TensorStore) -> memory::Peak {
        let est = memory::estimate(spec, tensors, self.longest_ctx, self.threads, self.dense_check);
        let mut peak = memory::Peak::from(est);
        peak.0.extend((self.extra)(spec));
        peak
    }
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
        let mut working_set = None;
        if let Some(plan) = plan {
            if let Ok(spec) = models::ArchSpec::from_hf_config(&checkpoint.config) {
                let peak = plan.peak(&spec, &checkpoint.tensors);
                memory::guard(&peak, plan.force, plan.quiet)?;
                working_set =
                    Some(peak.0.iter().filter(|(n, _)| !matches!(*n, "base" | "weights")).fold(0u64, |a, (_, b)| a.saturating_add(*b)));
            }
        }
        // Each tensor is probed before it is read (models::TensorStore::get);
        // the forward pass and the analysis are probed here, before any weight.
        if let Some(bytes) = working_set {
            memory::probe(bytes, &format!("{source}: the forward pass and analysis"))?;
        }
        let model = Model::load(&checkpoint).with_context(|| format!("cannot load model {source}"))?;
        spinner.finish_and_clear();
        Ok(Loaded { source: source.to_string(), checkpoint, model })
    }

    /// The model's tokenizer, refused when its vocabulary exceeds the model's.
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        let source = &self.source;
        let tokenizer = self.checkpoint.tokenizer.as_ref().with_context(|| self.checkpoint.missing_tokenizer_reason())?;
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
