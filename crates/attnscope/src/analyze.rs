//! `attnscope analyze`: text → tokens → forward pass → per-head field
//! measures → report. Each finished (text, ctx) run is written to
//! `OUT/runs/` atomically as soon as it is done; a rerun with the same
//! `--out` and settings skips finished runs (resume after a crash or kill).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use field::Params;

use crate::observer::{FieldObserver, LayerSet, TileObserver};
use crate::options::{ModelOptions, RunOptions};
use crate::progress::Progress;
use crate::report::{self, Finished, ModelInfo, RunRecord, RunSettings};
use crate::session::{self, Loaded, MemoryPlan};
use crate::{defaults, fingerprint, texts, CheckFailed, InvariantsFailed};

/// What `analyze` runs: which model, texts, context lengths and layers.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    pub source: ModelOptions,
    /// UTF-8 text files; empty: [`defaults::default_texts`].
    pub texts: Vec<PathBuf>,
    /// Context lengths (tokens); each text is cut to exactly each of them.
    pub ctx: Vec<usize>,
    /// Layers to analyse, e.g. `0-3,7`; `None`: all.
    pub layers: Option<String>,
    /// Also compute every head densely and fail when a measure differs.
    pub dense_check: bool,
    /// Allow context lengths past the model's trained context.
    pub beyond_trained_context: bool,
    pub run: RunOptions,
    /// Run even when the estimated peak memory exceeds the memory available.
    pub force: bool,
}

pub fn run(args: &AnalyzeOptions) -> Result<()> {
    let threads = session::set_threads(args.run.threads, args.run.quiet)?;
    if args.ctx.is_empty() || args.ctx.contains(&0) {
        bail!("--ctx needs positive context lengths, e.g. --ctx 256,512");
    }
    // `--ctx 64,64,32` is two runs, not three (a repeated run was counted twice).
    let ctxs = dedup(&args.ctx);
    let longest_ctx = ctxs.iter().copied().max().unwrap_or(0);
    let text_paths = dedup(&if args.texts.is_empty() { defaults::default_texts() } else { args.texts.clone() });
    let progress = Progress::new(args.run.quiet);
    let source = session::model_source(args.source.model.as_deref())?;
    let texts_term = texts::memory_term(&text_paths, longest_ctx);
    let plan = MemoryPlan {
        longest_ctx,
        threads,
        dense_check: args.dense_check,
        force: args.force,
        quiet: args.run.quiet,
        extra: {
            let (layers_arg, run_ctxs, n_texts) = (args.layers.clone(), ctxs.clone(), text_paths.len() as u64);
            Box::new(move |spec| {
                let layers = LayerSet::parse(layers_arg.as_deref(), spec.n_layers).map_or(spec.n_layers, |l| l.count(spec.n_layers));
                let heads = (layers * spec.n_heads) as u64;
                let results = crate::memory::results_bytes(heads, spec.head_dim as u64, n_texts, &run_ctxs, report::TILE_TOKENS);
                vec![("texts", texts_term), ("results", results)]
            })
        },
    };
    let loaded = Loaded::open(&source, args.source.tokenizer.as_deref(), &progress, Some(&plan))?;
    let (checkpoint, model) = (&loaded.checkpoint, &loaded.model);
    let tokenizer = loaded.tokenizer()?;
    loaded.check_ctx(&ctxs, args.beyond_trained_context)?;
    let spec = &model.spec;
    let layers = LayerSet::parse(args.layers.as_deref(), spec.n_layers)?;

    let runs_dir = args.run.out.join("runs");
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("cannot create output directory {}", runs_dir.display()))?;
    report::check_writable(&args.run.out)?;
    report::remove_leftover_temp_files(&runs_dir);
    report::remove_leftover_temp_files(&args.run.out);

    let info = ModelInfo::new(&source, checkpoint, spec);
    let settings = RunSettings {
        attnscope_version: env!("CARGO_PKG_VERSION").to_string(),
        model_source: source.clone(),
        layers: layers.0.clone(),
        max_check_rows: Params::default().max_check_rows,
        model_fingerprint: fingerprint::of_path(&checkpoint.path)?,
        tokenizer_fingerprint: match &args.source.tokenizer {
            Some(t) => fingerprint::of_path(t)?,
            None => "the model's".into(),
        },
        tokens_fnv: String::new(),
    };

    let spinner = progress.spinner("tokenizing texts");
    let mut tokenized = Vec::new();
    for path in &text_paths {
        let mut ids = texts::read_tokens(tokenizer, path, longest_ctx)?;
        ids.truncate(longest_ctx);
        tokenized.push((path.clone(), ids));
    }
    spinner.finish_and_clear();
    // Check every text is long enough before any compute.
    for (path, ids) in &tokenized {
        for &ctx in &ctxs {
            texts::first_tokens(ids, ctx, path)?;
        }
    }

    let mut runs = Vec::new();
    let mut mismatches = 0usize;
    // one model, so one set of learned spectra for every run
    let mut learned = crate::observer::LearnedSpectra::new();
    for (path, ids) in &tokenized {
        for &ctx in &ctxs {
            let run_file = runs_dir.join(report::run_file_name(path, ctx));
            let window = texts::first_tokens(ids, ctx, path)?;
            let settings = RunSettings { tokens_fnv: fingerprint::of_ids(&window), ..settings.clone() };
            let name = run_file.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
            match report::load_finished_run(&run_file, &settings) {
                // --dense-check on a run computed without it: compute it again, with the check.
                Finished::Reused(done) if args.dense_check && done.dense_check.is_none() => {
                    if !args.run.quiet {
                        eprintln!("attnscope: recomputing runs/{name}: it was computed without --dense-check");
                    }
                }
                Finished::Reused(done) => {
                    if !args.run.quiet {
                        eprintln!("attnscope: reusing runs/{name} (same model, tokenizer, tokens and settings)");
                    }
                    // A reused run's recorded mismatches count as if found now.
                    mismatches += done.dense_check.as_ref().map_or(0, Vec::len);
                    runs.push(done);
                    continue;
                }
                Finished::Stale(why) => {
                    if !args.run.quiet {
                        eprintln!("attnscope: recomputing runs/{name}: {why}");
                    }
                }
                Finished::Absent => {}
            }
            let label = format!("{} @{ctx}", path.file_name().map_or("text".into(), |n| n.to_string_lossy()));
            let bar = progress.bar(layers.count(spec.n_layers) as u64, &label);
            let mut observer = FieldObserver {
                layers: layers.clone(),
                params: Params { keep_key_energy: true, keep_leverage: true, ..Params::default() },
                dense_check: args.dense_check,
                records: Vec::new(),
                mismatches: Vec::new(),
                bar: &bar,
                key_spread: None,
            };
            let started = Instant::now();
            let mut tiles = TileObserver { inner: &mut observer, tokens: report::TILE_TOKENS, tiles: Vec::new(), learned: &mut learned };
            model.forward_capture(&window, &mut tiles).with_context(|| format!("forward pass on {} at ctx {ctx}", path.display()))?;
            let tiles = tiles.tiles;
            let drill = report::Drill::collect(
                &observer.records,
                tiles,
                report::token_labels(tokenizer, &window),
                report::TILE_TOKENS.min(window.len()),
            );
            bar.finish_and_clear();
            if !args.run.quiet {
                // The forward pass runs every layer up to the last one analysed.
                let ran = layers.last().map_or(spec.n_layers, |l| l + 1);
                let secs = started.elapsed().as_secs_f64();
                eprintln!("attnscope: {label}: {ran} layers in {secs:.1} s ({:.2} s per layer, forward and analysis)", secs / ran as f64);
            }
            mismatches += observer.mismatches.len();
            let mut run = RunRecord::new(
                &display_path(path),
                ctx,
                &window,
                observer.records,
                args.dense_check.then_some(observer.mismatches),
                started.elapsed().as_secs_f64(),
                settings,
            );
            run.drill = Some(drill);
            report::write_run(&run_file, &run)?;
            runs.push(run);
        }
    }
    let spinner = progress.spinner("writing report");
    let summary = report::write_all(&args.run.out, &info, &runs)?;
    spinner.finish_and_clear();
    if !args.run.quiet {
        eprintln!("attnscope: {} runs written to {}", runs.len(), crate::oneline::escape(&args.run.out.display().to_string()));
    }
    let failures = summary["checks"]["failures"].as_array().map_or(0, Vec::len);
    let invariants =
        (failures > 0).then(|| format!("{failures} head runs fail the mechanism invariants (see report.json summary.checks.failures)"));
    if mismatches > 0 {
        if let Some(w) = &invariants {
            eprintln!("attnscope: warning: {w}");
        }
        return Err(CheckFailed(format!(
            "--dense-check: {mismatches} measures differ between the factored and the dense path (see report.json runs[].dense_check)"
        ))
        .into());
    }
    if let Some(w) = invariants {
        return Err(InvariantsFailed(w).into());
    }
    Ok(())
}

/// `v` without repeats, first occurrences in order.
fn dedup<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

fn display_path(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}
