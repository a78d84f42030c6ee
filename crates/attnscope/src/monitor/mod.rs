//! Per-head training monitor (docs/monitor.md): every head's `key_coherence`,
//! `participation_ratio`, `k90` (factored path of the `field` crate),
//! attention entropy and `key_spread` ([`field::key_spread`] of each KV head's keys), over training steps or over a series of checkpoints,
//! with alerts when a head leaves its normal band.
//!
//! Library use, from a training loop (tested in `tests/integration/monitor_lib.rs`):
//! ```no_run
//! use attnscope::monitor::{Monitor, Rules};
//! # fn main() -> anyhow::Result<()> {
//! let ck = models::Checkpoint::open("model.gguf", None)?;
//! let model = models::Model::load(&ck)?;
//! let probe: Vec<u32> = ck.tokenizer.as_ref().unwrap().encode("a fixed probe text")?;
//! let mut mon = Monitor::new(probe, Rules::default(), Some(std::path::Path::new("out/monitor")))?;
//! for step in (0..1000).step_by(50) {
//!     // ... train for 50 steps, updating `model` ...
//!     for alert in mon.observe(step, &model)? {
//!         eprintln!("{alert}");
//!     }
//! }
//! mon.finish("my run")?; // monitor.html
//! # Ok(()) }
//! ```
//! Writes `monitor.jsonl` and `monitor.csv` (one row per step × layer × head)
//! and `alerts.jsonl`; `finish` adds `monitor.html`.

pub mod eval;
pub mod html;
pub mod rules;

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use field::Params;
use indicatif::ProgressBar;
use models::Model;
use serde::Serialize;
use serde_json::{json, Value};

use crate::observer::{FieldObserver, LayerSet};
use crate::options::RunOptions;
pub use rules::{robust_z, Alert, Measure, Rule, RuleState, Rules, TracePoint};

/// One head at one step.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HeadPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    pub step: u64,
    pub layer: usize,
    pub head: usize,
    pub kv_head: usize,
    pub n: usize,
    pub d: usize,
    pub key_coherence: f64,
    pub participation_ratio: f64,
    pub k90: usize,
    pub attention_entropy: f64,
    /// Share of the head's centred-key variance outside its top direction ([`field::key_spread`], in [0, 1 − 1/d];
    /// shared by the query heads of one KV head). NaN (`null` in JSON) when not
    /// measured: series written before it existed, or a caller that does not give it.
    #[serde(default = "nan", deserialize_with = "null_as_nan")]
    pub key_spread: f64,
}

fn nan() -> f64 {
    f64::NAN
}

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl HeadPoint {
    /// The monitored measures of one analysed head.
    /// `key_spread`: the record's KV head's value (NaN if not measured).
    pub fn from_record(step: u64, checkpoint: Option<String>, rec: &crate::observer::HeadRecord, key_spread: f64) -> Self {
        let f = &rec.field;
        HeadPoint {
            checkpoint,
            step,
            layer: rec.layer,
            head: rec.head,
            kv_head: rec.kv_head,
            n: f.n,
            d: f.d,
            key_coherence: f.key_coherence,
            participation_ratio: f.participation_ratio,
            k90: f.k90,
            attention_entropy: f.attention_entropy,
            key_spread,
        }
    }

    /// The value of one measure.
    pub fn get(&self, m: Measure) -> f64 {
        m.of(self)
    }
}

struct Writers {
    dir: PathBuf,
    jsonl: BufWriter<std::fs::File>,
    csv: BufWriter<std::fs::File>,
    alerts: BufWriter<std::fs::File>,
}

/// Watches every head of a model on a fixed probe sequence.
pub struct Monitor {
    probe: Vec<u32>,
    rules: Rules,
    state: RuleState,
    points: Vec<HeadPoint>,
    alerts: Vec<Alert>,
    out: Option<Writers>,
    time: Duration,
}

impl Monitor {
    /// `probe`: the token ids every observation runs. `out`: directory for
    /// monitor.jsonl / monitor.csv / alerts.jsonl (created), or none.
    pub fn new(probe: Vec<u32>, rules: Rules, out: Option<&Path>) -> Result<Self> {
        if let Err(e) = rules.validate() {
            bail!("monitor rules: {e}");
        }
        let out = match out {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let f = |n: &str| -> Result<BufWriter<std::fs::File>> {
                    Ok(BufWriter::new(
                        std::fs::File::create(dir.join(n)).with_context(|| format!("cannot create {}", dir.join(n).display()))?,
                    ))
                };
                let mut csv = f("monitor.csv")?;
                writeln!(csv, "checkpoint,step,layer,head,kv_head,n,d,{}", Measure::ALL.map(Measure::name).join(","))?;
                Some(Writers { dir: dir.to_path_buf(), jsonl: f("monitor.jsonl")?, csv, alerts: f("alerts.jsonl")? })
            }
            None => None,
        };
        Ok(Self { probe, rules, state: RuleState::default(), points: Vec::new(), alerts: Vec::new(), out, time: Duration::ZERO })
    }

    /// Measures every head of `model` on the probe, logs, and returns the new alerts.
    pub fn observe(&mut self, step: u64, model: &Model) -> Result<Vec<Alert>> {
        let probe = std::mem::take(&mut self.probe);
        let r = self.observe_ids(step, None, model, &probe);
        self.probe = probe;
        r
    }

    /// As [`Monitor::observe`], on `ids`, labelled with a checkpoint name.
    pub fn observe_ids(&mut self, step: u64, checkpoint: Option<&str>, model: &Model, ids: &[u32]) -> Result<Vec<Alert>> {
        let t0 = Instant::now();
        let bar = ProgressBar::hidden();
        let mut obs = FieldObserver {
            layers: LayerSet(None),
            params: Params::default(),
            dense_check: false,
            records: Vec::new(),
            mismatches: Vec::new(),
            bar: &bar,
            key_spread: Some(Default::default()),
        };
        model.forward_capture(ids, &mut obs)?;
        let label = checkpoint.map(str::to_string);
        let spread = obs.key_spread.unwrap_or_default();
        let points = obs
            .records
            .iter()
            .map(|rec| {
                let ks = spread.get(&(rec.layer, rec.kv_head)).copied().unwrap_or(f64::NAN);
                HeadPoint::from_record(step, label.clone(), rec, ks)
            })
            .collect();
        let r = self.observe_points(points);
        self.time += t0.elapsed();
        r
    }

    /// Applies the rules to heads measured elsewhere (e.g. by the Python
    /// binding from a PyTorch model), logs them, and returns the new alerts.
    /// All points of one observation are given in one call, in (layer, head) order.
    pub fn observe_points(&mut self, points: Vec<HeadPoint>) -> Result<Vec<Alert>> {
        let new_alerts = self.state.observe(&self.rules, &points);
        if let Some(w) = self.out.as_mut() {
            for p in &points {
                writeln!(w.jsonl, "{}", serde_json::to_string(p)?)?;
                writeln!(
                    w.csv,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    p.checkpoint.as_deref().unwrap_or(""),
                    p.step,
                    p.layer,
                    p.head,
                    p.kv_head,
                    p.n,
                    p.d,
                    p.key_coherence,
                    p.participation_ratio,
                    p.k90,
                    p.attention_entropy,
                    if p.key_spread.is_finite() { p.key_spread.to_string() } else { String::new() }
                )?;
            }
            for a in &new_alerts {
                writeln!(w.alerts, "{}", serde_json::to_string(a)?)?;
            }
            w.jsonl.flush()?;
            w.csv.flush()?;
            w.alerts.flush()?;
        }
        self.points.extend(points);
        self.alerts.extend(new_alerts.iter().cloned());
        Ok(new_alerts)
    }

    /// The rules' state: per head and measure, the observed values and bands.
    pub fn state(&self) -> &RuleState {
        &self.state
    }

    #[allow(dead_code)]
    pub fn points(&self) -> &[HeadPoint] {
        &self.points
    }
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }
    /// Wall time spent in `observe` so far.
    pub fn time_spent(&self) -> Duration {
        self.time
    }

    /// Writes monitor.html (if an output directory was given) and returns a summary.
    pub fn finish(&mut self, title: &str) -> Result<Value> {
        let first = |rule: Rule| self.alerts.iter().filter(|a| a.rule == rule).map(|a| a.step).min();
        let summary = json!({
            "observations": self.points.iter().map(|p| p.step).collect::<BTreeSet<_>>().len(),
            "alerts": self.alerts.len(),
            "first_alert_step": self.alerts.iter().map(|a| a.step).min(),
            "first_band_alert_step": first(Rule::Band),
            "first_coherence_alert_step": first(Rule::Coherence),
            "first_collapse_alert_step": first(Rule::Collapse),
            "first_jump_alert_step": first(Rule::Jump),
            "first_reverted_alert_step": first(Rule::Reverted),
            "flagged_heads": self.alerts.iter().map(|a| format!("L{}H{}", a.layer, a.head)).collect::<BTreeSet<_>>(),
            "monitor_time_s": self.time.as_secs_f64(),
        });
        if let Some(w) = &self.out {
            std::fs::write(w.dir.join("monitor.html"), html::render(title, &self.points, &self.alerts, &self.state))?;
        }
        Ok(summary)
    }
}

/// What `monitor` runs over a series of checkpoints.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Checkpoints: HF directories, .gguf files, llama2.c .bin files.
    pub checkpoints: Vec<String>,
    /// Probe text (UTF-8).
    pub text: PathBuf,
    /// Probe length in tokens.
    pub ctx: usize,
    /// Tokenizer override (tokenizer.json or llama2.c .bin).
    pub tokenizer: Option<PathBuf>,
    /// Allow a probe length past the checkpoints' trained context.
    pub beyond_trained_context: bool,
    /// Run even when the estimated peak memory exceeds the memory available.
    pub force: bool,
    pub rules: Rules,
    pub run: RunOptions,
}

/// A checkpoint's training step: trainer_state.json `global_step` beside it,
/// else the number its file or directory name ends with (`step-000600`,
/// `checkpoint-1000`, `model_5000.gguf`; not `stories260K`).
pub fn checkpoint_step(path: &Path) -> Option<u64> {
    let dir = if path.is_dir() { Some(path) } else { path.parent() };
    if let Some(d) = dir {
        if let Ok(s) = models::formats::read_capped_string(&d.join("trainer_state.json"), models::formats::JSON_MAX_BYTES) {
            if let Some(v) = serde_json::from_str::<Value>(&s).ok().and_then(|v| v.get("global_step").and_then(Value::as_u64)) {
                return Some(v);
            }
        }
    }
    // A directory's whole name (`step-0.5`-like dots are not extensions); a file's stem.
    let name = if path.is_dir() { path.file_name()?.to_str()? } else { path.file_stem()?.to_str()? };
    let digits: String = name.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    digits.parse().ok()
}

/// What must agree between the checkpoints of one series.
fn series_shape(spec: &models::ArchSpec) -> String {
    format!(
        "{} with {} layers × {} heads ({} KV) of d_head {}, d_model {}",
        spec.family.name(),
        spec.n_layers,
        spec.n_heads,
        spec.n_kv_heads,
        spec.head_dim,
        spec.d_model
    )
}

pub fn run(args: &MonitorOptions) -> Result<()> {
    if args.ctx < 2 {
        bail!("--ctx must be at least 2");
    }
    let threads = crate::session::set_threads(args.run.threads, args.run.quiet)?;
    crate::texts::regular_file(&args.text, "text")?;
    let mut cks: Vec<(u64, usize, &String)> =
        args.checkpoints.iter().enumerate().map(|(i, c)| (checkpoint_step(Path::new(c)).unwrap_or(i as u64), i, c)).collect();
    cks.sort();
    std::fs::create_dir_all(&args.run.out).with_context(|| format!("cannot create output directory {}", args.run.out.display()))?;
    crate::report::remove_leftover_temp_files(&args.run.out);
    let mut mon = Monitor::new(Vec::new(), args.rules.clone(), Some(&args.run.out))?;
    let texts_term = crate::texts::memory_term(std::slice::from_ref(&args.text), args.ctx);
    let mut first: Option<(String, &String)> = None;
    for (step, _, source) in &cks {
        let plan = crate::session::MemoryPlan {
            longest_ctx: args.ctx,
            threads,
            dense_check: false,
            force: args.force,
            quiet: true,
            extra: Box::new(move |_| vec![("texts", texts_term)]),
        };
        let loaded = crate::session::Loaded::open(source, args.tokenizer.as_deref(), &crate::progress::Progress::new(true), Some(&plan))?;
        let model = &loaded.model;
        // One series, one architecture: heads of different shapes are not the same heads.
        let shape = series_shape(&model.spec);
        match &first {
            None => first = Some((shape, source)),
            Some((s0, src0)) if *s0 != shape => {
                bail!("checkpoint {source} is a {shape}, but {src0} is a {s0}: one monitor series needs checkpoints of one shape");
            }
            Some(_) => {}
        }
        loaded.check_ctx(&[args.ctx], args.beyond_trained_context)?;
        if let Some(max) = model.spec.max_positions {
            if args.ctx > max && model.spec.positions == models::arch::Positions::Learned {
                bail!("--ctx {} exceeds the {max} learned positions of {source}", args.ctx);
            }
        }
        let tok = loaded.tokenizer()?;
        let ids = crate::texts::read_tokens(tok, &args.text, args.ctx)?;
        let ids = crate::texts::first_tokens(&ids, args.ctx, &args.text)?;
        let alerts = mon.observe_ids(*step, Some(source), model, &ids)?;
        if !args.run.quiet {
            eprintln!(
                "attnscope monitor: step {step} {source}: {} heads, {} alerts",
                model.spec.n_layers * model.spec.n_heads,
                alerts.len()
            );
        }
        for a in &alerts {
            eprintln!("attnscope: alert: {a}");
        }
    }
    let summary = mon.finish("attnscope monitor")?;
    eprintln!("attnscope monitor: {} checkpoints, {} alerts; wrote {}", cks.len(), summary["alerts"], args.run.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_from_name() {
        let p = |s: &str| checkpoint_step(Path::new(s));
        assert_eq!(p("/nonexistent/step-000600"), Some(600));
        assert_eq!(p("/nonexistent/model_5000.gguf"), Some(5000));
        assert_eq!(p("/nonexistent/stories260K.bin"), None);
    }
}
