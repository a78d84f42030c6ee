//! `attnscope compress` (SPEC §6): how few directions each head needs.
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
mod keys;
mod observers;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use field::Params;
use models::{Logits, Model};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::progress::Progress;
use crate::report::{self, ModelInfo};
use crate::session::{self, Loaded};
use crate::texts;
use observers::{CalibObserver, EvalObserver, KeyObserver};

pub const ABOUT: &str = "How few directions does each attention head need? (SPEC §6)

For every head and every r in --r, three rank-r bases of the energy field E:
  data     the top-r singular directions of E on the --calib text, applied to the --eval text
  weights  the top-r singular directions of M = W_Q W_Kᵀ (weights only; no text)
  random   r random orthonormal directions (the control; seed = --seed + 1000·layer + head)
Per (layer, head, basis, r), on the --eval text:
  kl       mean row KL(P‖P_r), nats, P_r the attention pattern rebuilt from the rank-r field
  top1     fraction of rows whose most likely key is unchanged

The key-cache experiment: each layer's keys replaced, inside the forward pass, by
their rank-r key-side projection of the same basis (docs/compress.md), and the mean
next-token loss on the --eval text measured:
  loss_delta  (loss_r − loss_full) / loss_full     loss_delta_abs  loss_r − loss_full (nats)
  ratio       min(r, d)/d, the fraction of the key cache kept
for all layers at a uniform r (every r of --r), and for one layer at a time
(--layer-r ranks, --layer-bases bases: one forward pass each; default d/4, data).

Writes OUT/compress.json (records + table), OUT/compress.csv (the same records),
OUT/compress.html (curves and table, self-contained), and prints the table:
k90 of E and of M (median, range), the spectral gap, the r needed for a mean
KL ≤ 0.01 nats and for a |loss change| ≤ 1 %, and whether data beats weights at equal r.

Cost, SmolLM2-135M at ctx 256 on 2 shared cores: the default command takes about 150 s
of CPU time (pattern experiment with the default --r, 9 ranks = 7,290 fidelity calls;
24 uniform + 30 per-layer key-cache forward passes, about 2 CPU-s each), a few
minutes of wall time. `--r all` (65 ranks) costs about 7× the pattern time; `--layer-r none` skips
the per-layer runs. Measured times: docs/compress.md.

Exit codes: 0 success, 2 any user-facing error.";

#[derive(Args, Debug, Clone)]
pub struct CompressArgs {
    #[command(flatten)]
    pub source: crate::cli::ModelArgs,

    /// Calibration text (the data basis is fitted on it). Default: /usr/share/common-licenses/GPL-3.
    #[arg(long)]
    pub calib: Option<PathBuf>,

    /// Evaluation text (every number is measured on it). Default: /usr/share/common-licenses/Apache-2.0.
    #[arg(long)]
    pub eval: Option<PathBuf>,

    /// Context length: both texts are cut to exactly this many tokens.
    #[arg(long, default_value_t = 256)]
    pub ctx: usize,

    /// Ranks r, comma-separated (1 ≤ r ≤ d+1), or `all` for 1..d+1. Default: the
    /// powers of two below d, then d/2, 3d/4, d, d+1 (d = 64: 1,2,4,8,16,32,48,64,65).
    #[arg(long = "r")]
    pub r: Option<String>,

    /// Key ranks of the per-layer key-cache runs (one forward pass per layer,
    /// rank and basis), comma-separated, or `none`. Default: d/4 (e.g. `--layer-r 8,16,32`
    /// for d/8, d/4, d/2 at d = 64: three times the cost).
    #[arg(long)]
    pub layer_r: Option<String>,

    /// Bases of the per-layer key-cache runs, comma-separated (data, weights, random).
    #[arg(long, value_delimiter = ',', default_value = "data")]
    pub layer_bases: Vec<String>,

    /// Base seed of the random bases.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Output directory.
    #[arg(long, default_value = "out/compress")]
    pub out: PathBuf,

    /// Allow a context length past the model's trained context.
    #[arg(long)]
    pub beyond_trained_context: bool,

    #[command(flatten)]
    pub run: crate::cli::RunArgs,

    /// Run even when the estimated peak memory exceeds the memory available
    /// (see docs/hardening.md).
    #[arg(long)]
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
    fn parse(s: &str) -> Result<BasisKind> {
        Ok(match s.trim() {
            "data" => BasisKind::Data,
            "weights" => BasisKind::Weights,
            "random" => BasisKind::Random,
            other => bail!("--layer-bases: unknown basis `{other}` (use data, weights, random)"),
        })
    }
}

/// One row of compress.json `records` and of compress.csv.
///
/// experiment `pattern`: one (layer, head, basis, r): kl, top1.
/// experiment `keys`: the key-cache run of (basis, r), all layers (`layer` null)
/// or one layer; loss, loss_delta, loss_delta_abs, ratio.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub experiment: String,
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

pub const COLUMNS: [&str; 11] = ["experiment", "layer", "head", "basis", "r", "kl", "top1", "loss", "loss_delta", "loss_delta_abs", "ratio"];

impl Record {
    pub fn pattern(layer: usize, head: usize, basis: BasisKind, r: usize, kl: f64, top1: f64) -> Record {
        Record {
            experiment: "pattern".into(),
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
            experiment: "keys".into(),
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

/// Mean next-token cross-entropy (nats) of logits (t, V) for `ids`:
/// positions 0..t−1 predict ids[1..t]; log-softmax in f64.
fn mean_loss(logits: &models::capture::Tensor, ids: &[u32]) -> Result<f64> {
    let (t, v) = logits.dims2()?;
    if t != ids.len() || t < 2 {
        bail!("need at least 2 tokens for a next-token loss");
    }
    let x = logits.flatten_all()?.to_vec1::<f32>()?;
    let mut total = 0.0;
    for i in 0..t - 1 {
        let row = &x[i * v..(i + 1) * v];
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let lse = m + row.iter().map(|&z| (z as f64 - m).exp()).sum::<f64>().ln();
        total += lse - row[ids[i + 1] as usize] as f64;
    }
    Ok(total / (t - 1) as f64)
}

fn forward_loss(model: &Model, ids: &[u32], observer: Option<&mut dyn models::Observer>) -> Result<f64> {
    let logits = model.forward_logits(ids, Logits::All, observer)?;
    mean_loss(&logits, ids)
}

pub fn run(args: &CompressArgs) -> Result<()> {
    let started = Instant::now();
    let threads = session::set_threads(args.run.threads, args.run.quiet)?;
    if args.ctx < 2 {
        bail!("--ctx must be at least 2 (the loss needs a next token)");
    }
    let layer_bases: Vec<BasisKind> = args.layer_bases.iter().filter(|s| !s.trim().is_empty()).map(|s| BasisKind::parse(s)).collect::<Result<_>>()?;
    let progress = Progress::new(args.run.quiet);

    let source = session::model_source(args.source.model.as_deref())?;
    let calib_path = args.calib.clone().unwrap_or_else(|| PathBuf::from("/usr/share/common-licenses/GPL-3"));
    let eval_path = args.eval.clone().unwrap_or_else(|| PathBuf::from("/usr/share/common-licenses/Apache-2.0"));
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

    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    report::check_writable(&args.out)?;

    report::remove_leftover_temp_files(&args.out);
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
    let loss_full = forward_loss(&model, &eval_ids, Some(&mut eval)).with_context(|| format!("forward pass on {}", eval_path.display()))?;
    bar.finish_and_clear();
    let t_eval = t0.elapsed().as_secs_f64();
    let EvalObserver { mut records, spectral, key_t, .. } = eval;
    drop(calib);

    // 3. Key-cache experiment.
    let t0 = Instant::now();
    let n_runs = 3 * key_ranks.iter().filter(|kr| r_list.iter().any(|&r| r.min(d) == **kr)).count() + layer_bases.len() * layer_r.len() * spec.n_layers;
    let bar = progress.bar(n_runs as u64, "key cache");
    let run_keys = |pick: &dyn Fn(usize) -> Option<(BasisKind, usize)>| -> Result<f64> {
        let transforms = (0..spec.n_layers).map(|l| pick(l).and_then(|key| key_t[l].get(&key).map(Vec::as_slice))).collect();
        let mut obs = KeyObserver { transforms };
        let loss = forward_loss(&model, &eval_ids, Some(&mut obs)).context("key-cache forward pass")?;
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
    let info = ModelInfo::new(&source, &checkpoint, spec);
    let table = build_table(&source, spec, args.ctx, &r_list, &records, &spectral, loss_full);
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
    report::write_atomic(&args.out.join("compress.json"), &serde_json::to_vec_pretty(&doc)?)?;
    report::write_atomic(&args.out.join("compress.csv"), &to_csv(&records)?)?;
    report::write_atomic(&args.out.join("compress.html"), html::render(&info, &doc).as_bytes())?;
    print!("{}", table_text(&table));
    if !args.run.quiet {
        eprintln!("attnscope: compress.json, compress.csv, compress.html written to {} ({:.0} s)", args.out.display(), started.elapsed().as_secs_f64());
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
            r.experiment.clone(),
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

fn median_range(mut v: Vec<f64>) -> Value {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    json!({ "median": med, "min": v[0], "max": v[n - 1] })
}

/// Mean over heads of a pattern measure, per (basis, r).
fn pattern_mean(records: &[Record], kind: BasisKind, r: usize, top1: bool) -> f64 {
    let v: Vec<f64> = records
        .iter()
        .filter(|x| x.experiment == "pattern" && x.basis == kind && x.r == r)
        .filter_map(|x| if top1 { x.top1 } else { x.kl })
        .collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn model_loss_delta(records: &[Record], kind: BasisKind, r: usize) -> Option<f64> {
    records.iter().find(|x| x.experiment == "keys" && x.layer.is_none() && x.basis == kind && x.r == r).and_then(|x| x.loss_delta)
}

/// The table of the companion paper's format, plus the per-r curves it summarises.
fn build_table(source: &str, spec: &models::ArchSpec, ctx: usize, r_list: &[usize], records: &[Record], spectral: &[observers::HeadSpectral], loss_full: f64) -> Value {
    let d = spec.head_dim;
    let by_basis = |f: &dyn Fn(BasisKind) -> Value| -> Value {
        let mut m = serde_json::Map::new();
        for k in BasisKind::ALL {
            m.insert(k.name().into(), f(k));
        }
        Value::Object(m)
    };
    // The smallest r of the list from which on every listed r meets the criterion.
    let from_on = |ok: &dyn Fn(usize) -> bool| -> Value {
        let mut best = None;
        for &r in r_list.iter().rev() {
            if !ok(r) {
                break;
            }
            best = Some(r);
        }
        best.map_or(Value::Null, Value::from)
    };
    let r_kl = by_basis(&|k| from_on(&|r| pattern_mean(records, k, r, false) <= 0.01));
    let r_loss = by_basis(&|k| from_on(&|r| model_loss_delta(records, k, r).is_some_and(|x| x.abs() <= 0.01)));
    // data vs weights at equal r, over the ranks where the two can differ (r < d + 1 for the
    // pattern; key rank < d for the loss, where every basis keeps all keys).
    let (mut kl_w, mut kl_n, mut t1_w, mut t1_n, mut ls_w, mut ls_n) = (0, 0, 0, 0, 0, 0);
    let mut by_r = Vec::new();
    for &r in r_list {
        let kl = |k| pattern_mean(records, k, r, false);
        let t1 = |k| pattern_mean(records, k, r, true);
        let ld = |k| model_loss_delta(records, k, r);
        if r <= d {
            kl_n += 1;
            kl_w += usize::from(kl(BasisKind::Data) < kl(BasisKind::Weights));
            t1_n += 1;
            t1_w += usize::from(t1(BasisKind::Data) > t1(BasisKind::Weights));
        }
        if r < d {
            if let (Some(a), Some(b)) = (ld(BasisKind::Data), ld(BasisKind::Weights)) {
                ls_n += 1;
                ls_w += usize::from(a < b);
            }
        }
        by_r.push(json!({
            "r": r,
            "ratio": r.min(d) as f64 / d as f64,
            "mean_kl": by_basis(&|k| json!(kl(k))),
            "mean_top1": by_basis(&|k| json!(t1(k))),
            "loss_delta": by_basis(&|k| ld(k).map_or(Value::Null, Value::from)),
        }));
    }
    let wins = |w: usize, n: usize| json!({ "data_wins": w, "of": n });
    json!({
        "model": source,
        "n_layers": spec.n_layers,
        "n_heads": spec.n_heads,
        "head_dim": d,
        "ctx": ctx,
        "heads": spectral.len(),
        "loss_full": loss_full,
        "k90_E": median_range(spectral.iter().map(|s| s.k90 as f64).collect()),
        "k90_M": median_range(spectral.iter().filter_map(|s| s.k90_learned.map(|k| k as f64)).collect()),
        "spectral_gap": median_range(spectral.iter().filter_map(|s| s.spectral_gap).collect()),
        "r_mean_kl_le_0.01": r_kl,
        "r_abs_loss_delta_le_1pct": r_loss,
        "data_beats_weights": {
            "kl": wins(kl_w, kl_n),
            "top1": wins(t1_w, t1_n),
            "loss": wins(ls_w, ls_n),
        },
        "by_r": by_r,
    })
}

fn f(v: &Value) -> String {
    match v.as_f64() {
        None => "–".into(),
        Some(x) if x == x.round() && x.abs() < 1e6 => format!("{x:.0}"),
        Some(x) if x.abs() >= 0.01 => format!("{x:.3}"),
        Some(x) => format!("{x:.2e}"),
    }
}

/// The table as plain text (stdout, docs).
pub fn table_text(t: &Value) -> String {
    let mr = |v: &Value| format!("median {}  range {}–{}", f(&v["median"]), f(&v["min"]), f(&v["max"]));
    let mut s = format!(
        "attnscope compress: {} ({} layers × {} heads, d = {}), ctx {}, full loss {:.4} nats\n",
        t["model"].as_str().unwrap_or(""),
        t["n_layers"],
        t["n_heads"],
        t["head_dim"],
        t["ctx"],
        t["loss_full"].as_f64().unwrap_or(f64::NAN)
    );
    s += &format!("  k90 of E          {}\n", mr(&t["k90_E"]));
    s += &format!("  k90 of M          {}\n", mr(&t["k90_M"]));
    s += &format!("  spectral gap      {}   (effective rank of M / of E)\n", mr(&t["spectral_gap"]));
    s += "                              data  weights   random\n";
    let row = |name: &str, v: &Value| format!("  {name:<26}{:>6}{:>9}{:>9}\n", f(&v["data"]), f(&v["weights"]), f(&v["random"]));
    s += &row("r for mean KL ≤ 0.01", &t["r_mean_kl_le_0.01"]);
    s += &row("r for |loss change| ≤ 1 %", &t["r_abs_loss_delta_le_1pct"]);
    let w = &t["data_beats_weights"];
    s += &format!(
        "  data beats weights at equal r: mean KL {}/{}, top-1 {}/{}, key-cache loss {}/{}\n",
        w["kl"]["data_wins"], w["kl"]["of"], w["top1"]["data_wins"], w["top1"]["of"], w["loss"]["data_wins"], w["loss"]["of"]
    );
    s += "     r  ratio |   mean KL: data   weights    random | top-1: data weights random | loss Δ: data   weights    random\n";
    for b in t["by_r"].as_array().into_iter().flatten() {
        let (kl, t1, ld) = (&b["mean_kl"], &b["mean_top1"], &b["loss_delta"]);
        s += &format!(
            "  {:>4} {:>6.3} | {:>14} {:>9} {:>9} | {:>11} {:>7} {:>6} | {:>12} {:>9} {:>9}\n",
            b["r"].as_u64().unwrap_or(0),
            b["ratio"].as_f64().unwrap_or(f64::NAN),
            f(&kl["data"]),
            f(&kl["weights"]),
            f(&kl["random"]),
            f(&t1["data"]),
            f(&t1["weights"]),
            f(&t1["random"]),
            f(&ld["data"]),
            f(&ld["weights"]),
            f(&ld["random"])
        );
    }
    s
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
