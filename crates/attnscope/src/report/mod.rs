//! The output contract (docs/definitions.md and README, "Output"): `report.json`,
//! `heads.csv`, `heads.parquet`, `report.html`, plus one file per finished
//! run in `runs/` for resuming. Every file is written atomically (temp file
//! in the same directory, then rename), so a half-written file never looks
//! complete.

mod embed;
mod html;
mod paper;
pub mod schema;
mod summary;
mod table;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use models::arch::PositionBias;
use models::{ArchSpec, Checkpoint, LogitTransform};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::observer::{HeadRecord, Mismatch};
pub use embed::{token_labels, Drill, TILE_TOKENS};

/// `report.json` → `model`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub source: String,
    pub format: models::Format,
    pub family: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_model: usize,
    pub logit_transform: &'static str,
    pub position_bias: &'static str,
    /// The widest sliding window of any layer (`null`: no layer has one).
    pub window: Option<usize>,
    /// Each layer's window (`null`: full causal), in layer order: Gemma 2/3
    /// interleave local and global layers, and each head's support follows its layer.
    pub layer_windows: Vec<Option<usize>>,
    pub trained_context: Option<usize>,
    pub logit_scale: f64,
    /// Config fields (or GGUF metadata keys) that were absent, so that a
    /// default applied. A present but invalid value is an error instead.
    pub config_defaults_used: Vec<String>,
}

impl ModelInfo {
    pub fn new(source: &str, checkpoint: &Checkpoint, spec: &ArchSpec) -> Self {
        ModelInfo {
            source: source.to_string(),
            format: checkpoint.format,
            family: spec.family.name().to_string(),
            n_layers: spec.n_layers,
            n_heads: spec.n_heads,
            n_kv_heads: spec.n_kv_heads,
            head_dim: spec.head_dim,
            d_model: spec.d_model,
            logit_transform: match spec.attn_logit_transform {
                LogitTransform::None => "none",
                LogitTransform::Softcap(_) => "softcap",
            },
            position_bias: match spec.position_bias {
                PositionBias::None => "none",
                PositionBias::Alibi { .. } => "alibi",
            },
            window: spec.windows.iter().flatten().copied().max(),
            layer_windows: spec.windows.clone(),
            trained_context: spec.max_positions,
            logit_scale: spec.attn_scale,
            config_defaults_used: ArchSpec::from_hf_config_with_defaults(&checkpoint.config).map_or_else(|_| Vec::new(), |(_, d)| d),
        }
    }
}

/// What a finished run was computed with: its identity. A run file is
/// reused only when every field matches the current command, so a report
/// never mixes models, tokenizers or texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub attnscope_version: String,
    pub model_source: String,
    pub layers: Option<Vec<usize>>,
    pub max_check_rows: usize,
    /// [`crate::fingerprint::of_path`] of the model file or directory:
    /// size, mtime, hash of the header and of sampled tensor bytes.
    pub model_fingerprint: String,
    /// Of the `--tokenizer` file, or `"the model's"`.
    pub tokenizer_fingerprint: String,
    /// FNV-1a of the run's token ids (the text and the tokenization).
    pub tokens_fnv: String,
}

impl RunSettings {
    /// Why a run computed with `self` cannot stand for one with `now`
    /// (`None`: it can).
    pub fn mismatch(&self, now: &RunSettings) -> Option<&'static str> {
        if self.model_fingerprint != now.model_fingerprint || self.model_source != now.model_source {
            Some("the model changed (source or fingerprint)")
        } else if self.tokenizer_fingerprint != now.tokenizer_fingerprint {
            Some("the tokenizer changed")
        } else if self.tokens_fnv != now.tokens_fnv {
            Some("the text's tokens changed")
        } else if self != now {
            Some("the settings changed (version, layers or check rows)")
        } else {
            None
        }
    }
}

/// What to do with a run file. (One value per run, short-lived: the size
/// of the `Reuse` variant does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Finished {
    /// No usable file: compute the run.
    Absent,
    /// A finished run of another model, tokenizer, text or settings: recompute.
    Stale(&'static str),
    Reused(RunRecord),
}

/// Key energies c_j of one head, for the report's profile plots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub layer: usize,
    pub head: usize,
    pub participation_ratio: f64,
    pub key_energy: Vec<f64>,
}

/// `report.json` → `runs[]`: one (text, ctx).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub text: String,
    pub ctx: usize,
    pub n_tokens: usize,
    /// The first 8 ids (kept for readers written before `token_ids`).
    pub token_ids_head: Vec<u32>,
    /// Every token id the run fed the model (n_tokens of them), so the exact
    /// same input can be given to another implementation.
    #[serde(default)]
    pub token_ids: Vec<u32>,
    pub heads: Vec<HeadRecord>,
    /// Most and least delocalized heads (max / min participation_ratio).
    pub profiles: Vec<Profile>,
    /// With --dense-check: every measure that differed beyond tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense_check: Option<Vec<Mismatch>>,
    pub elapsed_s: f64,
    pub settings: RunSettings,
    /// Drill-down data for report.html (c_j, ℓ_j, field tiles, token
    /// labels): kept in the run file, left out of report.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Drill>,
}

impl RunRecord {
    pub fn new(
        text: &str,
        ctx: usize,
        ids: &[u32],
        mut heads: Vec<HeadRecord>,
        dense_check: Option<Vec<Mismatch>>,
        elapsed_s: f64,
        settings: RunSettings,
    ) -> Self {
        heads.sort_by_key(|h| (h.layer, h.head));
        let pick = |best: &HeadRecord| Profile {
            layer: best.layer,
            head: best.head,
            participation_ratio: best.field.participation_ratio,
            key_energy: best.field.key_energy.clone().unwrap_or_default(),
        };
        let by_pr = |a: &&HeadRecord, b: &&HeadRecord| a.field.participation_ratio.total_cmp(&b.field.participation_ratio);
        let mut profiles = Vec::new();
        if let Some(max) = heads.iter().max_by(by_pr) {
            profiles.push(pick(max));
        }
        if let Some(min) = heads.iter().min_by(by_pr) {
            profiles.push(pick(min));
        }
        for h in &mut heads {
            h.field.key_energy = None;
            h.field.leverage = None;
        }
        RunRecord {
            text: text.to_string(),
            ctx,
            n_tokens: ids.len(),
            token_ids_head: ids.iter().take(8).copied().collect(),
            token_ids: ids.to_vec(),
            heads,
            profiles,
            dense_check,
            elapsed_s,
            settings,
            drill: None,
        }
    }
}

/// `runs/<text name>-<path hash>__ctx<N>.json`.
pub fn run_file_name(text: &Path, ctx: usize) -> String {
    let name: String = text
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    // FNV-1a of the full path keeps same-named texts in different folders apart.
    let hash = text.to_string_lossy().bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    format!("{name}-{:08x}__ctx{ctx}.json", hash as u32)
}

/// The run file at `path`, judged against the current settings. A file
/// that cannot be read or parsed (a truncated write, an older format) is
/// [`Finished::Absent`].
pub fn load_finished_run(path: &Path, settings: &RunSettings) -> Finished {
    let Ok(bytes) = std::fs::read(path) else { return Finished::Absent };
    let Ok(run) = serde_json::from_slice::<RunRecord>(&bytes) else { return Finished::Absent };
    if run.token_ids.len() != run.n_tokens {
        return Finished::Stale("the run file was written before full token ids were kept");
    }
    if run.drill.is_none() {
        return Finished::Stale("the run file was written before the report's head panel existed");
    }
    match run.settings.mismatch(settings) {
        Some(why) => Finished::Stale(why),
        None => Finished::Reused(run),
    }
}

pub fn write_run(path: &Path, run: &RunRecord) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(run)?)
}

/// Writes `bytes` to a temp file beside `path` (`<name>.tmp-<pid>`),
/// fsyncs it, renames it over `path`, then fsyncs the directory, so that
/// after a crash or power loss `path` is either the old file or the whole
/// new one. On any error (a full disk: ENOSPC, EFBIG) the temp file is
/// removed before the error is returned; leftovers of killed runs are
/// removed by [`remove_leftover_temp_files`] at the next start.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        std::fs::remove_file(&tmp).ok();
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        std::fs::remove_file(&tmp).ok();
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    // The rename is durable once the directory entry is.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync directory {}", dir.display()))?;
    Ok(())
}

/// Deletes `<name>.tmp-<pid>` files that a killed or failed run left in
/// `dir`: they were never renamed into place, so they hold nothing
/// finished. A temp file of a process that is still running (another
/// attnscope writing into the same directory) is kept.
pub fn remove_leftover_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, pid)) = name.rsplit_once(".tmp-") else { continue };
        let alive = pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && Path::new("/proc").join(p.to_string()).exists());
        if !alive {
            std::fs::remove_file(entry.path()).ok();
        }
    }
}

/// Fails early, with the path in the message, when `dir` is not writable.
pub fn check_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("output directory {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// The JSON object of one head as it appears in report.json.
pub(crate) fn head_json(h: &HeadRecord) -> Value {
    serde_json::to_value(h).unwrap_or(Value::Null)
}

/// heads.parquet's columns for bare head records (no run): `layer`, `head`,
/// `kv_head`, then every scalar measure, with the same types as heads.parquet.
pub fn records_parquet(records: &[HeadRecord]) -> Result<Vec<u8>> {
    table::heads_parquet(records)
}

/// Writes report.json, heads.csv, heads.parquet and report.html; returns
/// the summary (`report.json` → `summary`).
pub fn write_all(out: &Path, info: &ModelInfo, runs: &[RunRecord]) -> Result<Value> {
    let summary = summary::summarise(runs);
    let slim: Vec<RunRecord> = runs.iter().map(|r| RunRecord { drill: None, ..r.clone() }).collect();
    let report = serde_json::json!({
        "attnscope_version": env!("CARGO_PKG_VERSION"),
        "model": info,
        "runs": slim,
        "summary": summary,
    });
    write_atomic(&out.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    write_atomic(&out.join("heads.csv"), &table::to_csv(runs)?)?;
    write_atomic(&out.join("heads.parquet"), &table::to_parquet(runs)?)?;
    write_atomic(&out.join("report.html"), html::render(info, runs, &summary).as_bytes())?;
    Ok(summary)
}
