//! `attnscope train`: a small, real training loop on CPU (candle), for the
//! three decoder families GPT-2, GPT-NeoX and Llama.
//!
//! The weights are candle `Var`s under their HF names, wrapped once in a
//! [`models::Checkpoint::from_tensors`] and run through the SAME decoder
//! `analyze` uses (`models::Model::load` + `forward`), so what is trained is
//! exactly what is analysed. The optimizer updates the Vars in place; the
//! decoder is built once and only re-reads its weights after a step. AdamW, linear warmup then cosine
//! decay, global-norm gradient clipping; byte-level tokens; validation loss
//! logged as JSONL; HF-format checkpoints (config.json + model.safetensors +
//! tokenizer.json + trainer_state.json) that `Checkpoint::open` and HF
//! transformers read back. An optional [`crate::monitor::Monitor`] watches
//! every head's field during training.

pub mod family;
pub mod faults;
pub mod tokenizer;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use models::{Checkpoint, Logits, Model};
use serde_json::{json, Value};

use crate::monitor::{Monitor, Rules};
use crate::options::RunOptions;
use family::{Init, Shape};

/// What `train` runs (the flags of `attnscope train`, parsed).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Architecture: gpt2, gpt_neox or llama.
    pub family: String,
    /// Training text (UTF-8); the last --val-fraction of its bytes is the validation split.
    pub text: PathBuf,
    pub val_fraction: f64,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    /// KV heads (llama only; default heads/2).
    pub kv_heads: Option<usize>,
    /// Context length of training windows (and of the model's positions).
    pub ctx: usize,
    /// Sequences per step.
    pub batch: usize,
    pub steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup: u64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    pub clip: f64,
    pub eval_every: u64,
    /// Validation windows (fixed, evenly spaced over the validation split).
    pub eval_windows: usize,
    /// Save a checkpoint every N steps (0: only --save-at and the last step).
    pub save_every: u64,
    /// Save checkpoints at these steps (comma-separated; 0 = the initial weights).
    pub save_at: Vec<u64>,
    /// Run the head monitor every N steps (0: off).
    pub monitor_every: u64,
    /// Probe length for the monitor (default: --ctx).
    pub probe_ctx: Option<usize>,
    /// Controlled fault: `KIND@STEP`, KIND one of lr-spike, collapse, reset, key, data.
    pub fault: Option<String>,
    /// Learning-rate factor of the lr-spike fault.
    pub fault_factor: f64,
    /// Duration of the lr-spike (default 10) and data (default 50) faults.
    pub fault_steps: Option<u64>,
    /// Stop after this step (the learning-rate schedule still spans `steps`).
    pub stop_at: Option<u64>,
    pub seed: u64,
    pub rules: Rules,
    pub run: RunOptions,
    /// Run even when the estimated peak memory exceeds the memory available
    /// (see docs/hardening.md).
    pub force: bool,
}

/// The memory guard's estimate for training `shape` with `batch` windows
/// per step on a text of `text_bytes` bytes, from the arguments alone
/// (nothing is allocated first; u128 arithmetic, saturated to u64):
/// parameters (an upper bound over the families: 2·V·D + ctx·D +
/// L·(4·D² + 3·D·d_ff + 6·D)) × 5 f32 copies (weights, gradients, AdamW's
/// two moments, the per-step model); activations kept for the backward
/// pass (batch·ctx·L·(16·D + 4·d_ff + 3·h·ctx) f32, twice: values and
/// gradients); logits (batch·ctx·V f32, three times); the text (bytes and
/// u32 ids).
pub fn memory_peak(shape: &Shape, batch: usize, text_bytes: u64) -> crate::memory::Peak {
    let (v, dm, l, h, ctx) = (shape.vocab as u128, shape.d_model as u128, shape.n_layers as u128, shape.n_heads as u128, shape.ctx as u128);
    let ff = dm * 4; // gpt2 / gpt_neox: 4·D; llama's SwiGLU ≈ 8/3·D
    let sat = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    let params = 2 * v * dm + ctx * dm + l * (4 * dm * dm + 3 * dm * ff + 6 * dm);
    let b = batch as u128;
    let acts = b * ctx * l * (16 * dm + 4 * ff + 3 * h * ctx) * 4 * 2;
    let logits = b * ctx * v * 4 * 3;
    crate::memory::Peak::default()
        .add("base", crate::memory::BASE)
        .add("parameters and optimizer", sat(params.saturating_mul(20)))
        // Names, shapes and variables: about 1 KiB per layer.
        .add("parameter table", sat(l * 1024))
        .add("activations", sat(acts))
        .add("logits", sat(logits))
        .add("text", sat(text_bytes as u128 * 9))
}

/// The seeded generator of training (init, batches, faults): field's one RNG.
pub use field::Rng;

/// The trainable weights: HF name → Var, plus the model description and
/// the decoder over them, built once.
pub struct Trainable {
    pub shape: Shape,
    pub config: Value,
    pub vars: Vec<(String, Var)>,
    /// The decoder over the Vars themselves: gradients flow to them.
    tracked: Model,
    /// The decoder over their detached views (same storage, no graph).
    detached: Model,
    /// Whether `tracked` / `detached` must re-read their weights (set by
    /// [`Trainable::updated`]).
    stale: [bool; 2],
}

impl Trainable {
    /// Fresh weights, initialised as HF does (normal 0.02, norms 1, biases 0).
    pub fn init(shape: Shape, rng: &mut Rng) -> Result<Self> {
        shape.validate()?;
        let config = shape.hf_config(tokenizer::EOS)?;
        let mut vars = Vec::new();
        for p in shape.params(&config)? {
            let n: usize = p.shape.iter().product();
            let data: Vec<f32> = match p.init {
                Init::Normal(std) => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
                Init::Ones => vec![1.0; n],
                Init::Zeros => vec![0.0; n],
            };
            let t = Tensor::from_vec(data, p.shape.clone(), &Device::Cpu)?;
            vars.push((p.name, Var::from_tensor(&t)?));
        }
        // Two in-memory checkpoints over the same storage: the optimizer's
        // in-place updates reach both. The config is parsed and the initial
        // weights NaN-checked here, once (the loop checks its loss).
        let over = |tracked: bool| -> Result<Model> {
            let tensors: BTreeMap<String, Tensor> = vars
                .iter()
                .map(|(n, v): &(String, Var)| (n.clone(), if tracked { v.as_tensor().clone() } else { v.as_tensor().detach() }))
                .collect();
            Ok(Model::load(&Checkpoint::from_tensors(config.clone(), tensors, None)?)?)
        };
        let (tracked, detached) = (over(true)?, over(false)?);
        Ok(Self { shape, config, vars, tracked, detached, stale: [false; 2] })
    }

    /// The decoder over the live weights. `tracked`: gradients flow to the
    /// Vars (training); otherwise the weights are detached (evaluation,
    /// monitoring: no graph is built, the fused inference kernels run).
    /// Built once; after [`Trainable::updated`] it re-reads its weights
    /// first ([`Model::refresh`]: the table's copies, e.g. GPT-2's `c_attn`
    /// split, are remade from the updated Vars).
    pub fn model(&mut self, tracked: bool) -> Result<&Model> {
        let i = usize::from(!tracked);
        let m = if tracked { &mut self.tracked } else { &mut self.detached };
        if self.stale[i] {
            m.refresh()?;
            self.stale[i] = false;
        }
        Ok(m)
    }

    /// Marks both decoders stale: call after the Vars changed (an optimizer step).
    pub fn updated(&mut self) {
        self.stale = [true; 2];
    }

    /// Writes an HF checkpoint directory.
    pub fn save(&self, dir: &Path, state: &Value) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .vars
            .iter()
            .map(|(n, v)| {
                let data = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                let b: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                Ok((n.clone(), v.dims().to_vec(), b))
            })
            .collect::<Result<_>>()?;
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?)))
            .collect::<Result<_>>()?;
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::tensor::serialize_to_file(views, Some(meta), &dir.join("model.safetensors"))?;
        let write = |name: &str, v: &Value| -> Result<()> {
            std::fs::write(dir.join(name), serde_json::to_string_pretty(v)? + "\n")
                .with_context(|| format!("cannot write {}", dir.join(name).display()))
        };
        write("config.json", &self.config)?;
        write("tokenizer.json", &tokenizer::tokenizer_json())?;
        write("tokenizer_config.json", &tokenizer::tokenizer_config_json(self.shape.ctx))?;
        write("trainer_state.json", state)?;
        Ok(())
    }
}

/// Mean next-token cross-entropy of `model` over windows (each ctx+1 ids).
pub fn loss_over(model: &Model, windows: &[&[u32]]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for w in windows {
        let (x, y) = (&w[..w.len() - 1], &w[1..]);
        let logits = model.forward_logits(x, Logits::All, None)?;
        let l = crate::loss::next_token_loss(&logits, y, crate::loss::Precision::Model)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    Ok((total.context("no windows")? / windows.len() as f64)?)
}

/// Learning rate at 1-based `step`: linear warmup, cosine decay to min_ratio·peak.
pub fn lr_at(step: u64, peak: f64, warmup: u64, total: u64, min_ratio: f64) -> f64 {
    if warmup > 0 && step <= warmup {
        return peak * step as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
    let min = peak * min_ratio;
    min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

pub fn run(args: &TrainOptions) -> Result<()> {
    crate::session::set_threads(args.run.threads, args.run.quiet)?;
    let family = family::parse_family(&args.family)?;
    let fault = args.fault.as_deref().map(faults::FaultSpec::parse).transpose()?;
    if args.ctx < 2 || args.batch == 0 || args.steps == 0 {
        bail!("--ctx must be ≥ 2, --batch and --steps ≥ 1");
    }
    let last_step = args.stop_at.unwrap_or(args.steps);
    if last_step == 0 || last_step > args.steps {
        bail!("--stop-at must be in 1..=--steps");
    }
    let fault_steps = fault.map(|f| args.fault_steps.unwrap_or(f.kind.default_steps()).max(1));
    if !(0.0..1.0).contains(&args.val_fraction) || args.val_fraction == 0.0 {
        bail!("--val-fraction must be in (0, 1)");
    }
    let text_bytes = crate::texts::regular_file(&args.text, "text")?;
    let pre_shape = Shape {
        family,
        d_model: args.d_model,
        n_layers: args.layers,
        n_heads: args.heads,
        n_kv_heads: args.heads,
        ctx: args.ctx,
        vocab: tokenizer::VOCAB,
    };
    let peak = memory_peak(&pre_shape, args.batch, text_bytes);
    crate::memory::guard(&peak, args.force, args.run.quiet)?;
    // With --force, what cannot be allocated at all is still an error, not an abort.
    crate::memory::probe(peak.0.iter().filter(|(n, _)| *n != "base").fold(0u64, |a, (_, b)| a.saturating_add(*b)), "training")?;
    let text = crate::texts::read_text(&args.text)?;
    let ids = tokenizer::encode(&text);
    let n_val = ((ids.len() as f64) * args.val_fraction) as usize;
    let (train_ids, val_ids) = ids.split_at(ids.len() - n_val);
    let need = args.ctx + 1;
    if train_ids.len() < need || val_ids.len() < need {
        bail!("text {} is too short for --ctx {} with --val-fraction {}", args.text.display(), args.ctx, args.val_fraction);
    }
    let shape = Shape {
        family,
        d_model: args.d_model,
        n_layers: args.layers,
        n_heads: args.heads,
        n_kv_heads: match family {
            models::Family::Llama => args.kv_heads.unwrap_or((args.heads / 2).max(1)),
            _ => args.heads,
        },
        ctx: args.ctx,
        vocab: tokenizer::VOCAB,
    };
    let mut rng = Rng::new(args.seed);
    let mut trainable = Trainable::init(shape, &mut rng)?;
    let repeat_token = faults::most_frequent(train_ids);
    let mut fault_record: Option<faults::FaultRecord> = None;
    let n_params: usize = trainable.vars.iter().map(|(_, v)| v.elem_count()).sum();
    std::fs::create_dir_all(&args.run.out).with_context(|| format!("cannot create {}", args.run.out.display()))?;

    // Fixed validation windows, evenly spaced.
    let n_win = args.eval_windows.max(1);
    let span = val_ids.len() - need;
    let val_windows: Vec<&[u32]> = (0..n_win)
        .map(|i| {
            let s = if n_win == 1 { 0 } else { i * span / (n_win - 1) };
            &val_ids[s..s + need]
        })
        .collect();
    let probe_ctx = args.probe_ctx.unwrap_or(args.ctx);
    if probe_ctx > val_ids.len() || probe_ctx > args.ctx {
        bail!("--probe-ctx {probe_ctx} exceeds the validation split or --ctx");
    }
    let probe = val_ids[..probe_ctx].to_vec();

    let mut monitor =
        if args.monitor_every > 0 { Some(Monitor::new(probe, args.rules.clone(), Some(&args.run.out.join("monitor")))?) } else { None };

    let vars: Vec<Var> = trainable.vars.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(vars.clone(), ParamsAdamW { lr: args.lr, weight_decay: args.weight_decay, ..ParamsAdamW::default() })?;
    let mut log = std::io::BufWriter::new(std::fs::File::create(args.run.out.join("train.jsonl"))?);
    let ckpt_dir = args.run.out.join("checkpoints");
    let save_due =
        |step: u64| args.save_at.contains(&step) || (args.save_every > 0 && step.is_multiple_of(args.save_every)) || step == last_step;

    let eval = |t: &mut Trainable| -> Result<f64> { Ok(loss_over(t.model(false)?, &val_windows)?.to_scalar::<f32>()? as f64) };
    let val0 = eval(&mut trainable)?;
    let mut curve: Vec<(u64, f64)> = vec![(0, val0)];
    writeln!(log, "{}", json!({"step": 0, "val_loss": val0}))?;
    eprintln!(
        "attnscope train: {} d_model {} × {} layers × {} heads ({} KV), ctx {}, {} params; {} train / {} val bytes; step 0 val_loss {val0:.4}",
        family.name(), args.d_model, args.layers, args.heads, trainable.shape.n_kv_heads, args.ctx, n_params, train_ids.len(), val_ids.len()
    );
    let state = |step: u64, val: Option<f64>| json!({"global_step": step, "val_loss": val, "family": family.name(), "fault": args.fault});
    if args.save_at.contains(&0) {
        trainable.save(&ckpt_dir.join("step-000000"), &state(0, Some(val0)))?;
    }
    if let Some(m) = monitor.as_mut() {
        report_alerts(&m.observe(0, trainable.model(false)?)?);
    }

    let t_start = Instant::now();
    let mut train_time = Duration::ZERO;
    let mut last_train_loss = f64::NAN;
    let mut saved = Vec::new();
    let repeated = vec![repeat_token; need];
    for step in 1..=last_step {
        let t0 = Instant::now();
        let mut lr = lr_at(step, args.lr, args.warmup, args.steps, args.min_lr_ratio);
        let faulty = match (fault, fault_steps) {
            (Some(f), Some(n)) => step >= f.at && step < f.at + n,
            _ => false,
        };
        if let (Some(f), Some(n)) = (fault, fault_steps) {
            if step == f.at {
                let rec = faults::apply(f, n, &trainable.shape, &trainable.vars, args.seed)?;
                trainable.updated();
                std::fs::write(args.run.out.join("fault.json"), serde_json::to_string_pretty(&rec)? + "\n")?;
                eprintln!(
                    "attnscope train: fault at step {step}: {} (heads hit: {})",
                    rec.description,
                    rec.hit_heads.iter().map(|(l, h)| format!("L{l}H{h}")).collect::<Vec<_>>().join(" ")
                );
                fault_record = Some(rec);
            }
        }
        let data_fault = faulty && fault.is_some_and(|f| f.kind == faults::FaultKind::Data);
        if faulty && fault.is_some_and(|f| f.kind == faults::FaultKind::LrSpike) {
            lr *= args.fault_factor;
        }
        opt.set_learning_rate(lr);
        // The windows are drawn even during a data fault, so that later batches
        // are those of the healthy run with the same seed.
        let windows: Vec<&[u32]> = (0..args.batch)
            .map(|_| {
                let s = rng.below(train_ids.len() - need + 1);
                if data_fault {
                    &repeated[..]
                } else {
                    &train_ids[s..s + need]
                }
            })
            .collect();
        let loss = loss_over(trainable.model(true)?, &windows)?;
        let mut grads = loss.backward()?;
        let mut sq = 0f64;
        for v in &vars {
            if let Some(g) = grads.get(v) {
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let grad_norm = sq.sqrt();
        if grad_norm > args.clip {
            let scale = args.clip / (grad_norm + 1e-6);
            for v in &vars {
                if let Some(g) = grads.remove(v) {
                    grads.insert(v, (g * scale)?);
                }
            }
        }
        opt.step(&grads)?;
        trainable.updated();
        train_time += t0.elapsed();
        let train_loss = loss.to_scalar::<f32>()? as f64;
        last_train_loss = train_loss;
        if !train_loss.is_finite() {
            bail!("training diverged at step {step} (loss {train_loss})");
        }
        let mut rec =
            json!({"step": step, "lr": lr, "train_loss": train_loss, "grad_norm": grad_norm, "elapsed_s": t_start.elapsed().as_secs_f64()});
        if faulty {
            rec["fault"] = json!(true);
        }
        let mut val = None;
        if step % args.eval_every.max(1) == 0 || step == last_step {
            let v = eval(&mut trainable)?;
            rec["val_loss"] = json!(v);
            curve.push((step, v));
            val = Some(v);
        }
        writeln!(log, "{rec}")?;
        log.flush()?;
        if !args.run.quiet && (val.is_some() || step == 1) {
            eprintln!(
                "step {step:5}  lr {lr:.2e}  train {train_loss:.4}  grad {grad_norm:.3}{}  ({:.1} s)",
                val.map(|v| format!("  val {v:.4}")).unwrap_or_default(),
                t_start.elapsed().as_secs_f64()
            );
        }
        if let Some(m) = monitor.as_mut() {
            if step % args.monitor_every == 0 {
                report_alerts(&m.observe(step, trainable.model(false)?)?);
            }
        }
        if save_due(step) {
            let dir = ckpt_dir.join(format!("step-{step:06}"));
            trainable.save(&dir, &state(step, val))?;
            saved.push(dir);
        }
    }

    // The saved last checkpoint must give the in-training model's logits.
    let last = saved.last().context("no checkpoint saved")?;
    let probe_ids = &val_ids[..args.ctx];
    let logits_of =
        |m: &Model| -> Result<Vec<f32>> { Ok(m.forward_logits(probe_ids, Logits::All, None)?.flatten_all()?.to_vec1::<f32>()?) };
    let live = logits_of(trainable.model(false)?)?;
    let live_tracked = logits_of(trainable.model(true)?)?;
    let ck = Checkpoint::open(last.to_str().context("non-UTF-8 path")?, None)?;
    let reloaded = logits_of(&Model::load(&ck)?)?;
    let maxdiff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) as f64;
    let reload_diff = maxdiff(&live, &reloaded);
    let tracked_diff = maxdiff(&live_tracked, &reloaded);
    let tok = ck.tokenizer.as_ref().context("saved checkpoint has no tokenizer")?;
    let tok_ok = tok.encode("To be, or not")? == tokenizer::encode("To be, or not");
    if reload_diff != 0.0 || tracked_diff > 1e-4 || !tok_ok {
        bail!("reloaded checkpoint differs from the in-training model: max |Δlogit| {reload_diff:e} (training path {tracked_diff:e}), tokenizer round trip {tok_ok}");
    }

    let monitor_time = monitor.as_ref().map_or(Duration::ZERO, |m| m.time_spent());
    let (alerts, monitor_summary) = match monitor.as_mut() {
        Some(m) => (
            m.alerts().len(),
            Some(m.finish(&format!("attnscope train {} ({})", family.name(), args.fault.as_deref().unwrap_or("healthy")))?),
        ),
        None => (0, None),
    };
    let summary = json!({
        "family": family.name(), "params": n_params, "d_model": args.d_model, "layers": args.layers,
        "heads": args.heads, "kv_heads": trainable.shape.n_kv_heads, "ctx": args.ctx, "batch": args.batch,
        "steps": args.steps, "stopped_at": last_step, "lr": args.lr, "fault": args.fault, "fault_factor": args.fault_factor, "fault_steps": fault_steps, "fault_record": fault_record,
        "val_loss_start": val0, "val_loss_end": curve.last().map(|c| c.1), "train_loss_end": last_train_loss,
        "val_curve": curve.iter().map(|(s, v)| json!([s, v])).collect::<Vec<_>>(),
        "train_time_s": train_time.as_secs_f64(), "wall_time_s": t_start.elapsed().as_secs_f64(),
        "monitor_every": args.monitor_every, "monitor_time_s": monitor_time.as_secs_f64(),
        "monitor_overhead": monitor_time.as_secs_f64() / train_time.as_secs_f64().max(1e-9),
        "alerts": alerts, "monitor": monitor_summary,
        "reload_max_abs_logit_diff": reload_diff, "training_path_max_abs_logit_diff": tracked_diff,
        "checkpoints": saved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    std::fs::write(args.run.out.join("summary.json"), serde_json::to_string_pretty(&summary)? + "\n")?;
    eprintln!(
        "attnscope train: val_loss {val0:.4} → {:.4} in {} steps ({:.1} s training, monitor {:.2} s = {:.1} %, {alerts} alerts); reload max |Δlogit| {reload_diff:e}; wrote {}",
        curve.last().map_or(f64::NAN, |c| c.1),
        last_step,
        train_time.as_secs_f64(),
        monitor_time.as_secs_f64(),
        100.0 * monitor_time.as_secs_f64() / train_time.as_secs_f64().max(1e-9),
        args.run.out.display()
    );
    Ok(())
}

fn report_alerts(alerts: &[crate::monitor::Alert]) {
    for a in alerts {
        eprintln!("attnscope: alert: {a}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let lr = |s| lr_at(s, 1.0, 10, 110, 0.1);
        assert!((lr(1) - 0.1).abs() < 1e-12 && (lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(60) - 0.55).abs() < 1e-12, "{}", lr(60));
        assert!((lr(110) - 0.1).abs() < 1e-12);
        assert!((2..=110).all(|s| lr(s) <= lr(s - 1) || s <= 10));
    }
}
