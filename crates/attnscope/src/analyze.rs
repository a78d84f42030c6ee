//! `attnscope analyze`: text → tokens → forward pass → per-head field
//! measures → report. Each finished (text, ctx) run is written to
//! `OUT/runs/` atomically as soon as it is done; a rerun with the same
//! `--out` and settings skips finished runs (resume after a crash or kill).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use field::Params;
use models::Logits;

use crate::cli::AnalyzeArgs;
use crate::observer::{FieldObserver, LayerSet, TileObserver};
use crate::progress::Progress;
use crate::report::{self, ModelInfo, RunRecord, RunSettings};
use crate::session::{self, Loaded, MemoryPlan};
use crate::{defaults, texts, CheckFailed};

pub fn run(args: &AnalyzeArgs) -> Result<()> {
    session::set_threads(args.run.threads)?;
    if args.ctx.is_empty() || args.ctx.contains(&0) {
        bail!("--ctx needs positive context lengths, e.g. --ctx 256,512");
    }
    let progress = Progress::new(args.run.quiet);
    let source = session::model_source(args.source.model.as_deref())?;
    let plan = MemoryPlan {
        longest_ctx: args.ctx.iter().copied().max().unwrap_or(0),
        threads: args.run.threads,
        dense_check: args.dense_check,
        force: args.force,
        quiet: args.run.quiet,
    };
    let loaded = Loaded::open(&source, args.source.tokenizer.as_deref(), &progress, Some(&plan))?;
    let (checkpoint, model) = (&loaded.checkpoint, &loaded.model);
    let tokenizer = loaded.tokenizer()?;
    loaded.check_ctx(&args.ctx, args.beyond_trained_context)?;
    let spec = &model.spec;
    let layers = LayerSet::parse(args.layers.as_deref(), spec.n_layers)?;

    let runs_dir = args.out.join("runs");
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("cannot create output directory {}", runs_dir.display()))?;
    report::check_writable(&args.out)?;
    report::remove_leftover_temp_files(&runs_dir);

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
                params: Params { keep_key_energy: true, keep_leverage: true, ..Params::default() },
                dense_check: args.dense_check,
                records: Vec::new(),
                mismatches: Vec::new(),
                bar: &bar,
            };
            let started = Instant::now();
            let mut tiles = TileObserver { inner: &mut observer, tokens: report::TILE_TOKENS, tiles: Vec::new() };
            model
                .forward(&window, Logits::None, Some(&mut tiles))
                .with_context(|| format!("forward pass on {} at ctx {ctx}", path.display()))?;
            let tiles = tiles.tiles;
            let drill = report::Drill::collect(&observer.records, tiles, report::token_labels(tokenizer, &window), report::TILE_TOKENS.min(window.len()));
            bar.finish_and_clear();
            mismatches += observer.mismatches.len();
            let mut run = RunRecord::new(
                &display_path(path),
                ctx,
                &window,
                observer.records,
                args.dense_check.then_some(observer.mismatches),
                started.elapsed().as_secs_f64(),
                settings.clone(),
            );
            run.drill = Some(drill);
            report::write_run(&run_file, &run)?;
            runs.push(run);
        }
    }
    let spinner = progress.spinner("writing report");
    report::write_all(&args.out, &info, &runs)?;
    spinner.finish_and_clear();
    if !args.run.quiet {
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
