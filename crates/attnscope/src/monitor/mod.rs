//! Per-head training monitor (SPEC §7): every head's `key_coherence`,
//! `participation_ratio`, `k90` (factored path of the `field` crate) and
//! attention entropy, over training steps or over a series of checkpoints,
//! with alerts when a head leaves its normal band.
//!
//! Library use, from a training loop (tested in `tests/monitor_lib.rs`):
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

pub mod html;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use field::Params;
use indicatif::ProgressBar;
use models::{Logits, Model};
use serde::Serialize;
use serde_json::{json, Value};

use crate::observer::{FieldObserver, LayerSet};
use crate::options::RunOptions;

/// The measures the monitor records, in column order.
pub const MEASURES: [&str; 4] = ["key_coherence", "participation_ratio", "k90", "attention_entropy"];

/// Alert rules (all configurable from the command line).
#[derive(Debug, Clone)]
pub struct Rules {
    /// Band rule: |robust z| = |x − median| / (1.4826·MAD) above this.
    pub z_max: f64,
    /// Band rule applies once a head has this many earlier observations.
    pub min_history: usize,
    /// Band rule: median and MAD over at most this many recent observations.
    pub window: usize,
    /// The band's scale is at least this fraction of |median| (so that an
    /// integer measure such as k90 moving by one does not alert).
    pub rel_floor: f64,
    /// Measures the band rule watches.
    pub band_measures: Vec<&'static str>,
    /// The band rule applies only from this step on (heads form early in
    /// training: a legitimate regime change, not a fault).
    pub band_after: u64,
    /// key_coherence above this alerts (absolute value) ...
    pub coherence_max: Option<f64>,
    /// ... else above this fraction of its bound n / (d + 1).
    pub coherence_frac: f64,
    /// Alert when a head collapses: participation_ratio < 2/n ...
    pub collapse: bool,
    /// ... or (when set) k90 = 1.
    pub collapse_k90: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            z_max: 6.0,
            min_history: 5,
            window: 20,
            rel_floor: 0.05,
            // k90 is a small integer in small heads (1–3 at d_head 16): a change
            // of one direction is not a fault, so the band rule skips it.
            band_measures: vec!["key_coherence", "participation_ratio", "attention_entropy"],
            band_after: 0,
            coherence_max: None,
            coherence_frac: 0.9,
            collapse: true,
            collapse_k90: false,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// Alert when a head's measure is more than this many robust z-units
    /// (|x − median| / 1.4826·MAD over its recent history) from its band.
    #[arg(long, default_value_t = 6.0, value_parser = positive_finite)]
    pub z_max: f64,
    /// Observations of a head before the band rule applies.
    #[arg(long, default_value_t = 5)]
    pub min_history: usize,
    /// Recent observations the band (median, MAD) is computed over.
    #[arg(long, default_value_t = 20)]
    pub history_window: usize,
    /// Smallest band scale, as a fraction of |median|.
    #[arg(long, default_value_t = 0.05, value_parser = non_negative_finite)]
    pub band_rel_floor: f64,
    /// Alert when key_coherence exceeds this (default: --coherence-frac of its bound n/(d+1)).
    #[arg(long, value_parser = positive_finite)]
    pub coherence_max: Option<f64>,
    #[arg(long, default_value_t = 0.9, value_parser = positive_finite)]
    pub coherence_frac: f64,
    /// Apply the band rule only from this training step on (heads form during
    /// the first ~100 steps of a small model: a legitimate regime change).
    #[arg(long, default_value_t = 100)]
    pub band_after: u64,
    /// Disable the collapse rule (participation_ratio < 2/n).
    #[arg(long)]
    pub no_collapse_alert: bool,
    /// Also count k90 = 1 as a collapse (off by default: small healthy heads often have k90 = 1).
    #[arg(long)]
    pub collapse_k90: bool,
}

/// A threshold: a finite number above 0 (NaN would silently disable a
/// rule, since every comparison with NaN is false).
fn positive_finite(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("not a finite number above 0".into()),
    }
}

/// A finite number ≥ 0.
fn non_negative_finite(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("not a finite number ≥ 0".into()),
    }
}

impl RuleArgs {
    pub fn rules(&self) -> Rules {
        Rules {
            z_max: self.z_max,
            min_history: self.min_history.max(2),
            window: self.history_window.max(self.min_history.max(2)),
            rel_floor: self.band_rel_floor,
            coherence_max: self.coherence_max,
            coherence_frac: self.coherence_frac,
            collapse: !self.no_collapse_alert,
            collapse_k90: self.collapse_k90,
            band_after: self.band_after,
            ..Rules::default()
        }
    }
}

/// One head at one step.
#[derive(Debug, Clone, Serialize)]
pub struct HeadPoint {
    #[serde(skip_serializing_if = "Option::is_none")]
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
}

impl HeadPoint {
    /// The monitored measures of one analysed head.
    pub fn from_record(step: u64, checkpoint: Option<String>, rec: &crate::observer::HeadRecord) -> Self {
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
        }
    }

    pub fn get(&self, measure: &str) -> f64 {
        match measure {
            "key_coherence" => self.key_coherence,
            "participation_ratio" => self.participation_ratio,
            "k90" => self.k90 as f64,
            "attention_entropy" => self.attention_entropy,
            _ => f64::NAN,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    pub step: u64,
    pub layer: usize,
    pub head: usize,
    pub measure: &'static str,
    pub value: f64,
    /// `band`, `coherence` or `collapse`.
    pub rule: &'static str,
    pub detail: String,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} layer {} head {}: {} = {:.4} ({}: {})",
            self.step, self.layer, self.head, self.measure, self.value, self.rule, self.detail
        )?;
        if let Some(c) = &self.checkpoint {
            write!(f, " [{c}]")?;
        }
        Ok(())
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
    history: BTreeMap<(usize, usize, &'static str), Vec<f64>>,
    /// (layer, head, rule) currently in alert for threshold rules (alert on entry only).
    active: BTreeSet<(usize, usize, &'static str)>,
    points: Vec<HeadPoint>,
    alerts: Vec<Alert>,
    out: Option<Writers>,
    time: Duration,
}

/// (robust z, median, scale) of `x` against `hist`.
pub fn robust_z(x: f64, hist: &[f64], rel_floor: f64) -> (f64, f64, f64) {
    let med = crate::stats::median(hist);
    let dev: Vec<f64> = hist.iter().map(|v| (v - med).abs()).collect();
    let mad = crate::stats::median(&dev);
    let scale = (1.4826 * mad).max(rel_floor * med.abs()).max(1e-12);
    ((x - med) / scale, med, scale)
}

impl Monitor {
    /// `probe`: the token ids every observation runs. `out`: directory for
    /// monitor.jsonl / monitor.csv / alerts.jsonl (created), or none.
    pub fn new(probe: Vec<u32>, rules: Rules, out: Option<&Path>) -> Result<Self> {
        let out = match out {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let f = |n: &str| -> Result<BufWriter<std::fs::File>> {
                    Ok(BufWriter::new(std::fs::File::create(dir.join(n)).with_context(|| format!("cannot create {}", dir.join(n).display()))?))
                };
                let mut csv = f("monitor.csv")?;
                writeln!(csv, "checkpoint,step,layer,head,kv_head,n,d,{}", MEASURES.join(","))?;
                Some(Writers { dir: dir.to_path_buf(), jsonl: f("monitor.jsonl")?, csv, alerts: f("alerts.jsonl")? })
            }
            None => None,
        };
        Ok(Self { probe, rules, history: BTreeMap::new(), active: BTreeSet::new(), points: Vec::new(), alerts: Vec::new(), out, time: Duration::ZERO })
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
        };
        model.forward(ids, Logits::None, Some(&mut obs))?;
        let label = checkpoint.map(str::to_string);
        let points = obs.records.iter().map(|rec| HeadPoint::from_record(step, label.clone(), rec)).collect();
        let r = self.observe_points(points);
        self.time += t0.elapsed();
        r
    }

    /// Applies the rules to heads measured elsewhere (e.g. by the Python
    /// binding from a PyTorch model), logs them, and returns the new alerts.
    /// All points of one observation are given in one call, in (layer, head) order.
    pub fn observe_points(&mut self, points: Vec<HeadPoint>) -> Result<Vec<Alert>> {
        let mut new_alerts = Vec::new();
        for p in points {
            new_alerts.extend(self.check(&p));
            for m in MEASURES {
                let h = self.history.entry((p.layer, p.head, m)).or_default();
                h.push(p.get(m));
                let excess = h.len().saturating_sub(self.rules.window);
                h.drain(..excess);
            }
            if let Some(w) = self.out.as_mut() {
                writeln!(w.jsonl, "{}", serde_json::to_string(&p)?)?;
                writeln!(
                    w.csv,
                    "{},{},{},{},{},{},{},{},{},{},{}",
                    p.checkpoint.as_deref().unwrap_or(""),
                    p.step, p.layer, p.head, p.kv_head, p.n, p.d,
                    p.key_coherence, p.participation_ratio, p.k90, p.attention_entropy
                )?;
            }
            self.points.push(p);
        }
        if let Some(w) = self.out.as_mut() {
            for a in &new_alerts {
                writeln!(w.alerts, "{}", serde_json::to_string(a)?)?;
            }
            w.jsonl.flush()?;
            w.csv.flush()?;
            w.alerts.flush()?;
        }
        self.alerts.extend(new_alerts.iter().cloned());
        Ok(new_alerts)
    }

    fn check(&mut self, p: &HeadPoint) -> Vec<Alert> {
        let mut out = Vec::new();
        let alert = |measure: &'static str, value: f64, rule: &'static str, detail: String| Alert {
            checkpoint: p.checkpoint.clone(),
            step: p.step,
            layer: p.layer,
            head: p.head,
            measure,
            value,
            rule,
            detail,
        };
        for &m in &self.rules.band_measures {
            let x = p.get(m);
            if let Some(h) = self.history.get(&(p.layer, p.head, m)) {
                if h.len() >= self.rules.min_history && p.step >= self.rules.band_after && x.is_finite() {
                    let (z, med, _) = robust_z(x, h, self.rules.rel_floor);
                    if z.abs() > self.rules.z_max {
                        out.push(alert(m, x, "band", format!("robust z {z:+.1} against median {med:.4} of its last {} observations", h.len())));
                    }
                }
            }
        }
        // Threshold rules alert when a head enters the state, not while it stays.
        let bound = p.n as f64 / (p.d + 1).min(p.n) as f64;
        let thr = self.rules.coherence_max.unwrap_or(self.rules.coherence_frac * bound);
        let mut state = |on: bool, rule: &'static str, a: Alert, out: &mut Vec<Alert>| {
            let key = (p.layer, p.head, rule);
            if on && self.active.insert(key) {
                out.push(a);
            } else if !on {
                self.active.remove(&key);
            }
        };
        let coh = p.key_coherence > thr;
        state(coh, "coherence", alert("key_coherence", p.key_coherence, "coherence", format!("above threshold {thr:.3} (bound n/(d+1) = {bound:.3})")), &mut out);
        if self.rules.collapse {
            let pr_low = p.participation_ratio < 2.0 / p.n as f64;
            let k90_one = self.rules.collapse_k90 && p.k90 == 1;
            let collapsed = k90_one || pr_low;
            let (m, v) = if pr_low { ("participation_ratio", p.participation_ratio) } else { ("k90", 1.0) };
            state(collapsed, "collapse", alert(m, v, "collapse", format!("head collapsed (k90 = {}, participation_ratio {:.4} vs 2/n = {:.4})", p.k90, p.participation_ratio, 2.0 / p.n as f64)), &mut out);
        }
        out
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
        let first = |rule: &str| self.alerts.iter().filter(|a| a.rule == rule).map(|a| a.step).min();
        let summary = json!({
            "observations": self.points.iter().map(|p| p.step).collect::<BTreeSet<_>>().len(),
            "alerts": self.alerts.len(),
            "first_alert_step": self.alerts.iter().map(|a| a.step).min(),
            "first_band_alert_step": first("band"),
            "first_coherence_alert_step": first("coherence"),
            "first_collapse_alert_step": first("collapse"),
            "flagged_heads": self.alerts.iter().map(|a| format!("L{}H{}", a.layer, a.head)).collect::<BTreeSet<_>>(),
            "monitor_time_s": self.time.as_secs_f64(),
        });
        if let Some(w) = &self.out {
            std::fs::write(w.dir.join("monitor.html"), html::render(title, &self.points, &self.alerts))?;
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
    let digits: String = name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
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
    let mut cks: Vec<(u64, usize, &String)> = args
        .checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| (checkpoint_step(Path::new(c)).unwrap_or(i as u64), i, c))
        .collect();
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
            eprintln!("attnscope monitor: step {step} {source}: {} heads, {} alerts", model.spec.n_layers * model.spec.n_heads, alerts.len());
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
    fn robust_z_uses_median_and_mad_with_a_floor() {
        let h = [1.0, 2.0, 3.0, 4.0, 100.0];
        let (z, med, scale) = robust_z(3.0 + 1.4826 * 6.0, &h, 0.0);
        assert_eq!(med, 3.0);
        assert!((scale - 1.4826).abs() < 1e-12 && (z - 6.0).abs() < 1e-9);
        // MAD 0: the floor (5 % of |median|) keeps z finite.
        let (z, _, scale) = robust_z(2.2, &[2.0; 6], 0.05);
        assert!((scale - 0.1).abs() < 1e-12 && (z - 2.0).abs() < 1e-9);
    }

    #[test]
    fn step_from_name() {
        let p = |s: &str| checkpoint_step(Path::new(s));
        assert_eq!(p("/nonexistent/step-000600"), Some(600));
        assert_eq!(p("/nonexistent/model_5000.gguf"), Some(5000));
        assert_eq!(p("/nonexistent/stories260K.bin"), None);
    }

    fn point(step: u64, entropy: f64, pr: f64, kc: f64) -> HeadPoint {
        HeadPoint {
            checkpoint: None,
            step,
            layer: 1,
            head: 2,
            kv_head: 1,
            n: 64,
            d: 16,
            key_coherence: kc,
            participation_ratio: pr,
            k90: 1,
            attention_entropy: entropy,
        }
    }

    fn feed(m: &mut Monitor, p: &HeadPoint) -> Vec<Alert> {
        let a = m.check(p);
        for k in MEASURES {
            m.history.entry((p.layer, p.head, k)).or_default().push(p.get(k));
        }
        a
    }

    #[test]
    fn rules_band_coherence_collapse() {
        let mut m = Monitor::new(Vec::new(), Rules::default(), None).unwrap();
        // Stable head: no alert, k90 = 1 is not a collapse by default.
        for s in 0..6 {
            assert!(feed(&mut m, &point(s * 10, 2.0 + 0.01 * s as f64, 0.5, 2.0)).is_empty());
        }
        // Entropy falls far out of its band.
        let a = feed(&mut m, &point(60, 0.2, 0.5, 2.0));
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].rule, a[0].measure, a[0].layer, a[0].head), ("band", "attention_entropy", 1, 2));
        // Coherence above 0.9 · 64/17 and a collapse: alerted once on entry.
        let a = feed(&mut m, &point(70, 2.0, 0.01, 3.6));
        assert!(a.iter().any(|x| x.rule == "coherence") && a.iter().any(|x| x.rule == "collapse"), "{a:?}");
        let a = feed(&mut m, &point(80, 2.0, 0.01, 3.6));
        assert!(a.iter().all(|x| x.rule == "band"), "{a:?}");
        // Band rule silent before band_after.
        let mut m = Monitor::new(Vec::new(), Rules { band_after: 100, ..Rules::default() }, None).unwrap();
        for s in 0..6 {
            feed(&mut m, &point(s * 10, 2.0, 0.5, 2.0));
        }
        assert!(feed(&mut m, &point(60, 0.2, 0.5, 2.0)).is_empty());
    }
}
