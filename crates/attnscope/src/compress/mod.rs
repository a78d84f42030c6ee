//! `attnscope compress`: how few directions each head needs.
//!
//! 1. Calibration pass on the first `ctx` tokens of `--calib`: every layer's
//!    Q and K are kept (O(L·h·n·d) f32).
//! 2. Evaluation pass on the first `ctx` tokens of `--eval` (all logits): per
//!    head and r, the rank-r operator Π of each basis (data: fitted on the
//!    calibration head; weights: from W_Q, W_K; random: seeded) is applied to
//!    the evaluation head: mean row KL(P‖P_r) and top-1 agreement
//!    (`field::rank_r_fidelity`). The same pass gives the full-model loss, the
//!    spectral measures of the table and the key-side projectors.
//! 3. Key-cache experiment: forward passes on the evaluation text with each
//!    layer's keys replaced by their key-side rank-r projection (all layers at
//!    a uniform r, then one layer at a time for a few r): the change in mean
//!    next-token loss. See docs/compress.md.

mod html;
mod observers;
mod table;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use field::Params;
use models::{Logits, Model};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::options::{ModelOptions, RunOptions};
use crate::progress::Progress;
use crate::report::{self, ModelInfo};
use crate::session::{self, Loaded};
use crate::texts;
use observers::{CalibObserver, EvalObserver, KeyObserver};
pub use table::Table;

/// What `compress` runs.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    pub source: ModelOptions,
    /// Calibration text (the data basis is fitted on it); `None`: GPL-3.
    pub calib: Option<PathBuf>,
    /// Evaluation text (every number is measured on it); `None`: Apache-2.0.
    pub eval: Option<PathBuf>,
    /// Context length (tokens) both texts are cut to.
    pub ctx: usize,
    /// Ranks of the pattern experiment, `1,2,…` or `all`; `None`: the default list.
    pub r: Option<String>,
    /// Key ranks of the per-layer key-cache runs, or `none`; `None`: d/4.
    pub layer_r: Option<String>,
    /// Bases of the per-layer key-cache runs.
    pub layer_bases: Vec<BasisKind>,
    /// Base seed of the random bases.
    pub seed: u64,
    /// Allow a context length past the model's trained context.
    pub beyond_trained_context: bool,
    pub run: RunOptions,
    /// Run even when the estimated peak memory exceeds the memory available.
    pub force: bool,
}

/// The three bases, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BasisKind {
    Data,
    Weights,
    Random,
}

impl BasisKind {
    pub const ALL: [BasisKind; 3] = [BasisKind::Data, BasisKind::Weights, BasisKind::Random];
    pub fn name(self) -> &'static str {
        match self {
            BasisKind::Data => "data",
            BasisKind::Weights => "weights",
            BasisKind::Random => "random",
        }
    }
    pub fn parse(s: &str) -> Result<BasisKind> {
        Ok(match s.trim() {
            "data" => BasisKind::Data,
            "weights" => BasisKind::Weights,
            "random" => BasisKind::Random,
            other => bail!("--layer-bases: unknown basis `{other}` (use data, weights, random)"),
        })
    }
}

/// The two experiments of a [`Record`] (`"pattern"` / `"keys"` in JSON and CSV).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Experiment {
    /// One head's attention pattern rebuilt from a rank-r field.
    Pattern,
    /// The model's loss with keys replaced by their rank-r projection.
    Keys,
}

impl Experiment {
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Pattern => "pattern",
            Experiment::Keys => "keys",
        }
    }
}

/// One row of compress.json `records` and of compress.csv.
///
/// experiment `pattern`: one (layer, head, basis, r): kl, top1.
/// experiment `keys`: the key-cache run of (basis, r), all layers (`layer` null)
/// or one layer; loss, loss_delta, loss_delta_abs, ratio.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub experiment: Experiment,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    pub basis: BasisKind,
    pub r: usize,
    pub kl: Option<f64>,
    pub top1: Option<f64>,
    pub loss: Option<f64>,
    pub loss_delta: Option<f64>,
    pub loss_delta_abs: Option<f64>,
    pub ratio: Option<f64>,
}

pub const COLUMNS: [&str; 11] =
    ["experiment", "layer", "head", "basis", "r", "kl", "top1", "loss", "loss_delta", "loss_delta_abs", "ratio"];

impl Record {
    pub fn pattern(layer: usize, head: usize, basis: BasisKind, r: usize, kl: f64, top1: f64) -> Record {
        Record {
            experiment: Experiment::Pattern,
            layer: Some(layer),
            head: Some(head),
            basis,
            r,
            kl: Some(kl),
            top1: Some(top1),
            loss: None,
            loss_delta: None,
            loss_delta_abs: None,
            ratio: None,
        }
    }
    fn keys(layer: Option<usize>, basis: BasisKind, r: usize, d: usize, loss: f64, loss_full: f64) -> Record {
        Record {
            experiment: Experiment::Keys,
            layer,
            head: None,
            basis,
            r,
            kl: None,
            top1: None,
            loss: Some(loss),
            loss_delta: Some((loss - loss_full) / loss_full),
            loss_delta_abs: Some(loss - loss_full),
            ratio: Some(r.min(d) as f64 / d as f64),
        }
    }
}

/// `--r`: the ranks of the pattern experiment and of the uniform key-cache runs.
fn parse_r_list(spec: Option<&str>, d: usize) -> Result<Vec<usize>> {
    let mut v: Vec<usize> = match spec.map(str::trim) {
        None => {
            let mut v: Vec<usize> = std::iter::successors(Some(1usize), |x| Some(x * 2)).take_while(|&x| x < d).collect();
            v.extend([d / 2, 3 * d / 4, d, d + 1]);
            v
        }
        Some("all") => (1..=d + 1).collect(),
        Some(s) => parse_list(s, "--r")?,
    };
    v.retain(|&r| r >= 1);
    v.sort_unstable();
    v.dedup();
    if let Some(&bad) = v.iter().find(|&&r| r > d + 1) {
        bail!("--r {bad} is above d + 1 = {} (the field has rank ≤ d + 1)", d + 1);
    }
    if v.is_empty() {
        bail!("--r selects no rank");
    }
    Ok(v)
}

fn parse_list(s: &str, what: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<usize>().map_err(|_| anyhow::anyhow!("{what}: `{p}` is not a whole number")))
        .collect()
}

/// `--layer-r`: key ranks of the per-layer runs (empty = none).
fn parse_layer_r(spec: Option<&str>, d: usize) -> Result<Vec<usize>> {
    let mut v = match spec.map(str::trim) {
        None => vec![(d / 4).max(1)],
        Some("none") | Some("") => vec![],
        Some(s) => parse_list(s, "--layer-r")?,
    };
    if let Some(&bad) = v.iter().find(|&&r| r == 0 || r > d) {
        bail!("--layer-r {bad} is outside 1..d = 1..{d}");
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn forward_loss(model: &Model, ids: &[u32], observer: Option<&mut dyn models::Observer>) -> Result<f64> {
    let logits = model.forward_logits(ids, Logits::All, observer)?;
    // Row i predicts ids[i + 1]; the last row has no target.
    Ok(crate::loss::next_token_loss(&logits, &ids[1..], crate::loss::Precision::F64)?.to_scalar::<f64>()?)
}

pub fn run(args: &CompressOptions) -> Result<()> {
    let started = Instant::now();
    let threads = session::set_threads(args.run.threads, args.run.quiet)?;
    if args.ctx < 2 {
        bail!("--ctx must be at least 2 (the loss needs a next token)");
    }
    let layer_bases = args.layer_bases.clone();
    let progress = Progress::new(args.run.quiet);

    let source = session::model_source(args.source.model.as_deref())?;
    let calib_path = args.calib.clone().unwrap_or_else(crate::defaults::default_calib_text);
    let eval_path = args.eval.clone().unwrap_or_else(crate::defaults::default_eval_text);
    let ctx = args.ctx;
    let texts_term = texts::memory_term(&[calib_path.clone(), eval_path.clone()], ctx);
    let plan = session::MemoryPlan {
        longest_ctx: ctx,
        threads,
        dense_check: false,
        force: args.force,
        quiet: args.run.quiet,
        // Every layer's calibration Q and K (f32), and the full logits
        // (t × vocabulary f32: the tensor, its host copy, the loss pass).
        extra: Box::new(move |spec| {
            let t = ctx as u64;
            let qk = (spec.n_heads + spec.n_kv_heads) as u64 * spec.head_dim as u64;
            vec![
                ("texts", texts_term),
                ("calibration", (spec.n_layers as u64).saturating_mul(qk).saturating_mul(t).saturating_mul(4)),
                ("logits", t.saturating_mul(spec.vocab_size as u64).saturating_mul(12)),
            ]
        }),
    };
    let loaded = Loaded::open(&source, args.source.tokenizer.as_deref(), &progress, Some(&plan))?;
    let (checkpoint, model) = (&loaded.checkpoint, &loaded.model);
    let tokenizer = loaded.tokenizer()?;
    loaded.check_ctx(&[args.ctx], args.beyond_trained_context)?;
    let spec = &model.spec;
    let d = spec.head_dim;
    let r_list = parse_r_list(args.r.as_deref(), d)?;
    let layer_r = parse_layer_r(args.layer_r.as_deref(), d)?;
    let mut key_ranks: Vec<usize> = r_list.iter().map(|&r| r.min(d)).chain(layer_r.iter().copied()).collect();
    key_ranks.sort_unstable();
    key_ranks.dedup();

    std::fs::create_dir_all(&args.run.out).with_context(|| format!("cannot create output directory {}", args.run.out.display()))?;
    report::check_writable(&args.run.out)?;

    report::remove_leftover_temp_files(&args.run.out);
    let window = |p: &PathBuf| -> Result<Vec<u32>> { texts::first_tokens(&texts::read_tokens(tokenizer, p, args.ctx)?, args.ctx, p) };
    let calib_ids = window(&calib_path)?;
    let eval_ids = window(&eval_path)?;
    if !args.run.quiet && calib_ids == eval_ids {
        eprintln!("attnscope: note: the calibration and evaluation windows are the same tokens; the data basis is then measured in-sample");
    }

    // 1. Calibration pass.
    let t0 = Instant::now();
    let bar = progress.bar(spec.n_layers as u64, "calibration");
    let mut calib = CalibObserver { layers: Vec::new(), bar: Some(&bar) };
    model.forward_capture(&calib_ids, &mut calib).with_context(|| format!("forward pass on {}", calib_path.display()))?;
    bar.finish_and_clear();
    let t_calib = t0.elapsed().as_secs_f64();

    // 2. Evaluation pass: fidelity of every head, basis and r; full loss; key projectors.
    let t0 = Instant::now();
    let bar = progress.bar(spec.n_layers as u64, "fidelity");
    let mut eval = EvalObserver {
        calib: &calib.layers,
        r_list: &r_list,
        key_ranks: &key_ranks,
        seed: args.seed,
        params: Params::default(),
        records: Vec::new(),
        spectral: Vec::new(),
        key_t: Vec::new(),
        bar: &bar,
    };
    let loss_full = forward_loss(model, &eval_ids, Some(&mut eval)).with_context(|| format!("forward pass on {}", eval_path.display()))?;
    bar.finish_and_clear();
    let t_eval = t0.elapsed().as_secs_f64();
    let EvalObserver { mut records, spectral, key_t, .. } = eval;
    drop(calib);

    // 3. Key-cache experiment.
    let t0 = Instant::now();
    let n_runs = 3 * key_ranks.iter().filter(|kr| r_list.iter().any(|&r| r.min(d) == **kr)).count()
        + layer_bases.len() * layer_r.len() * spec.n_layers;
    let bar = progress.bar(n_runs as u64, "key cache");
    let run_keys = |pick: &dyn Fn(usize) -> Option<(BasisKind, usize)>| -> Result<f64> {
        let transforms = (0..spec.n_layers).map(|l| pick(l).and_then(|key| key_t[l].get(&key).map(Vec::as_slice))).collect();
        let mut obs = KeyObserver { transforms };
        let loss = forward_loss(model, &eval_ids, Some(&mut obs)).context("key-cache forward pass")?;
        bar.inc(1);
        Ok(loss)
    };
    for kind in BasisKind::ALL {
        let mut done: Vec<(usize, f64)> = Vec::new();
        for &r in &r_list {
            let kr = r.min(d);
            let loss = match done.iter().find(|x| x.0 == kr) {
                Some(&(_, l)) => l,
                None => {
                    let l = run_keys(&|_| Some((kind, kr)))?;
                    done.push((kr, l));
                    l
                }
            };
            records.push(Record::keys(None, kind, r, d, loss, loss_full));
        }
    }
    for &kind in &layer_bases {
        for &kr in &layer_r {
            for layer in 0..spec.n_layers {
                let loss = run_keys(&|l| (l == layer).then_some((kind, kr)))?;
                records.push(Record::keys(Some(layer), kind, kr, d, loss, loss_full));
            }
        }
    }
    bar.finish_and_clear();
    let t_keys = t0.elapsed().as_secs_f64();

    // Report.
    let info = ModelInfo::new(&source, checkpoint, spec);
    let table = Table::build(&source, spec, args.ctx, &r_list, &records, &spectral, loss_full);
    let doc = json!({
        "attnscope_version": env!("CARGO_PKG_VERSION"),
        "model": info,
        "settings": {
            "calib": calib_path.display().to_string(),
            "eval": eval_path.display().to_string(),
            "ctx": args.ctx,
            "calib_token_ids_head": calib_ids.iter().take(8).collect::<Vec<_>>(),
            "eval_token_ids_head": eval_ids.iter().take(8).collect::<Vec<_>>(),
            "r": r_list,
            "layer_r": layer_r,
            "layer_bases": layer_bases,
            "seed": args.seed,
            "random_seed_rule": "pattern: seed + 1000·layer + head; keys: seed + 1000·layer + 500 + kv_head",
            "key_projection": "per KV head, T_r = G_K^{1/2} Y_r Y_rᵀ G_K^{-1/2} (docs/compress.md); data: calibration Gram matrices, weights: W_K, W_Q Gram matrices, random: W Wᵀ",
            "max_check_rows": Params::default().max_check_rows,
        },
        "loss_full": loss_full,
        "records": records,
        "table": table,
        "elapsed_s": { "calibration": t_calib, "fidelity": t_eval, "key_cache": t_keys, "total": started.elapsed().as_secs_f64() },
    });
    report::write_atomic(&args.run.out.join("compress.json"), &serde_json::to_vec_pretty(&doc)?)?;
    report::write_atomic(&args.run.out.join("compress.csv"), &to_csv(&records)?)?;
    let page = html::Page { info: &info, calib: &calib_path, eval: &eval_path, ctx: args.ctx, loss_full, table: &table, records: &records };
    report::write_atomic(&args.run.out.join("compress.html"), page.render().as_bytes())?;
    print!("{}", table.text());
    if !args.run.quiet {
        eprintln!(
            "attnscope: compress.json, compress.csv, compress.html written to {} ({:.0} s)",
            args.run.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn to_csv(records: &[Record]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    let o = |v: Option<f64>| v.map_or(String::new(), |x| serde_json::to_string(&x).unwrap_or_default());
    let u = |v: Option<usize>| v.map_or(String::new(), |x| x.to_string());
    for r in records {
        w.write_record([
            r.experiment.name().to_string(),
            u(r.layer),
            u(r.head),
            r.basis.name().to_string(),
            r.r.to_string(),
            o(r.kl),
            o(r.top1),
            o(r.loss),
            o(r.loss_delta),
            o(r.loss_delta_abs),
            o(r.ratio),
        ])?;
    }
    Ok(w.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_lists() {
        assert_eq!(parse_r_list(None, 64).unwrap(), vec![1, 2, 4, 8, 16, 32, 48, 64, 65]);
        assert_eq!(parse_r_list(None, 8).unwrap(), vec![1, 2, 4, 6, 8, 9]);
        assert_eq!(parse_r_list(Some("all"), 3).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(parse_r_list(Some("5,1,5"), 8).unwrap(), vec![1, 5]);
        assert!(parse_r_list(Some("10"), 8).is_err());
        assert!(parse_r_list(Some("x"), 8).is_err());
        assert_eq!(parse_layer_r(None, 64).unwrap(), vec![16]);
        assert_eq!(parse_layer_r(Some("32,8,16"), 64).unwrap(), vec![8, 16, 32]);
        assert_eq!(parse_layer_r(Some("none"), 64).unwrap(), Vec::<usize>::new());
        assert!(parse_layer_r(Some("65"), 64).is_err());
    }
}
