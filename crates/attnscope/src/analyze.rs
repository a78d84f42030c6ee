//! `attnscope analyze`: text → tokens → forward pass → per-head field
//! measures → report. Each finished (text, ctx) run is written to
//! `OUT/runs/` atomically as soon as it is done; a rerun with the same
//! `--out` and settings skips finished runs (resume after a crash or kill).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use field::Params;
use models::{Checkpoint, Logits, Model};

use crate::cli::AnalyzeArgs;
use crate::observer::{FieldObserver, LayerSet};
use crate::progress::Progress;
use crate::report::{self, ModelInfo, RunRecord, RunSettings};
use crate::{defaults, texts, CheckFailed};

pub fn run(args: &AnalyzeArgs) -> Result<()> {
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().ok();
    }
    if args.ctx.is_empty() || args.ctx.contains(&0) {
        bail!("--ctx needs positive context lengths, e.g. --ctx 256,512");
    }
    let progress = Progress::new(args.quiet);

    let source = match &args.model {
        Some(m) => m.clone(),
        None => {
            let p = defaults::default_model();
            if !p.exists() {
                bail!("default model not found at {}; run scripts/setup.sh first, or pass --model", p.display());
            }
            p.display().to_string()
        }
    };
    let spinner = progress.spinner(&format!("loading {source}"));
    let checkpoint = Checkpoint::open(&source, args.tokenizer.as_deref()).with_context(|| format!("cannot load model {source}"))?;
    if let Ok(spec) = models::ArchSpec::from_hf_config(&checkpoint.config) {
        let threads = args.threads.unwrap_or_else(rayon::current_num_threads);
        let longest = args.ctx.iter().copied().max().unwrap_or(0);
        let est = crate::memory::estimate(&spec, &checkpoint.tensors, longest, threads, args.dense_check);
        let avail = crate::memory::available();
        if !args.quiet {
            let of = avail.as_ref().map(|(b, s)| format!(" of {} available ({s})", crate::memory::gib(*b))).unwrap_or_default();
            eprintln!("attnscope: estimated peak memory {}{of}", est.describe());
        }
        crate::memory::check(&est, avail.as_ref(), args.force)?;
    }
    let model = Model::load(&checkpoint).with_context(|| format!("cannot load model {source}"))?;
    spinner.finish_and_clear();
    let tokenizer = checkpoint
        .tokenizer
        .as_ref()
        .with_context(|| format!("no tokenizer found for {source}; pass --tokenizer"))?;
    let spec = &model.spec;
    if tokenizer.vocab_size() > spec.vocab_size {
        bail!(
            "tokenizer vocabulary ({}) does not match the model {source} (vocabulary {})",
            tokenizer.vocab_size(),
            spec.vocab_size
        );
    }
    if let Some(trained) = spec.max_positions {
        if let Some(&too_long) = args.ctx.iter().find(|&&c| c > trained) {
            if !args.beyond_trained_context {
                bail!("--ctx {too_long} is past the model's trained context of {trained} tokens; pass --beyond-trained-context to go past it");
            }
        }
    }
    let layers = LayerSet::parse(args.layers.as_deref(), spec.n_layers)?;

    let runs_dir = args.out.join("runs");
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("cannot create output directory {}", runs_dir.display()))?;
    report::check_writable(&args.out)?;

    let info = ModelInfo::new(&source, &checkpoint, spec);
    let settings = RunSettings {
        attnscope_version: env!("CARGO_PKG_VERSION").to_string(),
        model_source: source.clone(),
        layers: layers.0.clone(),
        max_check_rows: Params::default().max_check_rows,
    };

    let text_paths = if args.texts.is_empty() { defaults::default_texts() } else { args.texts.clone() };
    let spinner = progress.spinner("tokenizing texts");
    let mut tokenized = Vec::new();
    for path in &text_paths {
        let text = texts::read_text(path)?;
        tokenized.push((path.clone(), texts::tokenize(tokenizer, &text, path)?));
    }
    spinner.finish_and_clear();
    // Check every text is long enough before any compute.
    for (path, ids) in &tokenized {
        for &ctx in &args.ctx {
            texts::first_tokens(ids, ctx, path)?;
        }
    }

    let mut runs = Vec::new();
    let mut mismatches = 0usize;
    for (path, ids) in &tokenized {
        for &ctx in &args.ctx {
            let run_file = runs_dir.join(report::run_file_name(path, ctx));
            if let Some(done) = report::load_finished_run(&run_file, &settings) {
                runs.push(done);
                continue;
            }
            let window = texts::first_tokens(ids, ctx, path)?;
            let label = format!("{} @{ctx}", path.file_name().map_or("text".into(), |n| n.to_string_lossy()));
            let bar = progress.bar(layers.count(spec.n_layers) as u64, &label);
            let mut observer = FieldObserver {
                layers: layers.clone(),
                params: Params { keep_key_energy: true, ..Params::default() },
                dense_check: args.dense_check,
                records: Vec::new(),
                mismatches: Vec::new(),
                bar: &bar,
            };
            let started = Instant::now();
            model
                .forward(&window, Logits::None, Some(&mut observer))
                .with_context(|| format!("forward pass on {} at ctx {ctx}", path.display()))?;
            bar.finish_and_clear();
            mismatches += observer.mismatches.len();
            let run = RunRecord::new(
                &display_path(path),
                ctx,
                &window,
                observer.records,
                args.dense_check.then_some(observer.mismatches),
                started.elapsed().as_secs_f64(),
                settings.clone(),
            );
            report::write_run(&run_file, &run)?;
            runs.push(run);
        }
    }
    let spinner = progress.spinner("writing report");
    report::write_all(&args.out, &info, &runs)?;
    spinner.finish_and_clear();
    if !args.quiet {
        eprintln!("attnscope: {} runs written to {}", runs.len(), args.out.display());
    }
    if mismatches > 0 {
        return Err(CheckFailed(format!(
            "--dense-check: {mismatches} measures differ between the factored and the dense path (see report.json runs[].dense_check)"
        ))
        .into());
    }
    Ok(())
}

fn display_path(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}
