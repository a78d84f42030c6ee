//! [`ArchSpec`]: one validated description of a decoder, built from an HF
//! `config.json` value. Family differences live here, as data (enums and
//! numbers), never as separate code paths in the decoder.
//!
//! Detection reads `model_type` only, never a model's name.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

mod alibi;
mod gemma3;

pub use alibi::{bloom_alibi_slopes, mpt_alibi_slopes};
use gemma3::{gemma3_rope, gemma3_text_config};

/// The decoder families attnscope can run. Detected from `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Llama 2/3, SmolLM/SmolLM2, TinyLlama, llama2.c models.
    Llama,
    /// Llama layout with a sliding window.
    Mistral,
    /// Llama layout with q/k/v projection biases.
    Qwen2,
    /// Llama layout with per-head RMS QK-norm.
    Qwen3,
    /// Post-norm blocks with RMS QK-norm over the whole projection.
    Olmo2,
    /// Sandwich norms, GeGLU, logit soft-capping, alternating windows.
    Gemma2,
    /// Learned positions, LayerNorm, Conv1D, fused c_attn.
    Gpt2,
    /// Parallel residual, partial rotary, fused per-head qkv.
    GptNeox,
    /// Gemma 2 layout plus per-head (1 + w) QK-norm, interleaved local/global
    /// layers with separate rope bases (`gemma3_text`; `gemma3` reads its `text_config`).
    Gemma3,
    /// Llama layout with fused `qkv_proj` and `gate_up_proj`.
    Phi3,
    /// Llama layout with LayerNorm (with bias) and partial rotary.
    StableLm,
    /// ALiBi, fused per-head `query_key_value`, LayerNorm on the word embeddings.
    Bloom,
    /// ALiBi, fused `Wqkv`, bias-free LayerNorm.
    Mpt,
}

impl Family {
    pub const SUPPORTED: &'static [(&'static str, Family)] = &[
        ("llama", Family::Llama),
        ("mistral", Family::Mistral),
        ("qwen2", Family::Qwen2),
        ("qwen3", Family::Qwen3),
        ("olmo2", Family::Olmo2),
        ("gemma2", Family::Gemma2),
        ("gpt2", Family::Gpt2),
        ("gpt_neox", Family::GptNeox),
        ("gemma3_text", Family::Gemma3),
        ("gemma3", Family::Gemma3),
        ("phi3", Family::Phi3),
        ("stablelm", Family::StableLm),
        ("bloom", Family::Bloom),
        ("mpt", Family::Mpt),
    ];

    /// The family of an HF `model_type`, or a clear error listing the supported ones.
    pub fn from_model_type(model_type: &str) -> Result<Family> {
        Self::SUPPORTED.iter().find(|(name, _)| *name == model_type).map(|(_, f)| *f).ok_or_else(|| Error::UnknownArchitecture {
            found: model_type.to_string(),
            supported: Self::SUPPORTED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn name(self) -> &'static str {
        Self::SUPPORTED.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// x · rsqrt(mean(x²) + eps) · (w + offset); Gemma uses offset 1.
    Rms { eps: f64, weight_offset: f32 },
    /// (x − mean) / sqrt(var + eps) · w + b.
    Layer { eps: f64 },
}

/// Rotary frequency scaling, as in HF `rope_scaling`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// Rotate-half rotary on the first `rotary_dim` dims of each head.
    Rotary { theta: f64, rotary_dim: usize, scaling: RopeScaling },
    /// Learned absolute position embeddings added to the token embeddings.
    Learned,
    /// No position embedding at all: positions enter only through the
    /// attention bias ([`PositionBias::Alibi`]).
    None,
}

/// An additive bias b_ij on the attention logits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionBias {
    None,
    /// ALiBi: b_ij = −m_h·(i − j) for query head h (one slope per head).
    /// Softmax is shift-invariant per row, so BLOOM's m_h·j and MPT's
    /// m_h·(j − t + 1) give the same attention; (j − i) keeps the f32
    /// values small at long contexts.
    Alibi {
        slopes: Vec<f64>,
    },
}

impl PositionBias {
    /// The slope of query head `h`, if ALiBi.
    pub fn slopes(&self) -> Option<&[f64]> {
        match self {
            PositionBias::None => None,
            PositionBias::Alibi { slopes } => Some(slopes),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Silu,
    /// tanh approximation (gelu_new, gelu_pytorch_tanh).
    GeluTanh,
    /// erf form (torch `gelu`).
    GeluErf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mlp {
    /// down(act(gate(x)) · up(x)).
    Gated(Activation),
    /// down(act(up(x))).
    Plain(Activation),
}

/// How a block wires its norms and residuals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// x += attn(norm1 x); x += mlp(norm2 x).
    PreNorm,
    /// x += attn(norm1 x) + mlp(norm2 x) (GPT-NeoX parallel residual).
    Parallel,
    /// x += norm1(attn x); x += norm2(mlp x) (OLMo 2).
    PostNorm,
    /// x += post1(attn(pre1 x)); x += post2(mlp(pre2 x)) (Gemma 2).
    Sandwich,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    None,
    /// RMS norm over each head's d_head features (Qwen3).
    PerHead,
    /// RMS norm over the whole h·d_head projection, before the head split (OLMo 2).
    Full,
}

/// A non-linear transform of the logits before softmax. Breaks the rank bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "cap")]
pub enum LogitTransform {
    None,
    /// S ← cap · tanh(S / cap).
    Softcap(f64),
}

/// Validated architecture of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchSpec {
    pub family: Family,
    pub n_layers: usize,
    pub d_model: usize,
    /// Query heads h.
    pub n_heads: usize,
    /// Key/value heads h_kv (h_kv divides h).
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_ff: usize,
    pub vocab_size: usize,
    /// Trained context (max_position_embeddings), if known.
    pub max_positions: Option<usize>,
    pub norm: NormKind,
    pub positions: Positions,
    /// Rotary base of the sliding-window layers when it differs from the
    /// global one (Gemma 3 `rope_local_base_freq`); those layers use no
    /// rope scaling. `None`: every layer uses `positions`.
    pub local_rope_theta: Option<f64>,
    pub position_bias: PositionBias,
    /// A norm on the token embeddings before the first block (BLOOM).
    pub embed_norm: bool,
    pub mlp: Mlp,
    pub block: BlockKind,
    pub qk_norm: QkNorm,
    pub qkv_bias: bool,
    /// Bias on o_proj / MLP linears (GPT-2, NeoX).
    pub linear_bias: bool,
    /// Logit scale s per layer (usually 1/√d_head).
    pub attn_scale: f64,
    /// Sliding window per layer: `None` = full causal. Window w means
    /// query i sees keys i−w < j ≤ i.
    pub windows: Vec<Option<usize>>,
    pub attn_logit_transform: LogitTransform,
    pub final_logit_transform: LogitTransform,
    /// Token embeddings multiplied by √d_model (Gemma).
    pub embed_scale: Option<f64>,
    pub tie_embeddings: bool,
}

/// Key of a synthesised config (GGUF) listing the metadata keys that were
/// absent, so that a default applied.
pub const DEFAULTS_USED_KEY: &str = "attnscope_defaults_used";

/// Upper bound on `num_hidden_layers`: a config claiming more is corrupt,
/// and per-layer tables are allocated from it.
pub const MAX_LAYERS: usize = 1 << 16;

/// Typed access to config.json fields, with the field name in errors.
///
/// Every family reads its config through these helpers, so every family
/// gets the same rule: an absent (or `null`) field takes the default its
/// caller gives, and is recorded (`.2`, reported as the defaults used); a
/// field that is present with an invalid value (a string where a number
/// belongs, a negative count, NaN) is an error that names the key (`.1`,
/// checked by [`ArchSpec::from_hf_config`] once the spec is built), never a
/// silent default.
struct Cfg<'a>(&'a Value, RefCell<Vec<String>>, RefCell<BTreeSet<String>>);

impl<'a> Cfg<'a> {
    fn new(v: &'a Value) -> Self {
        Cfg(v, RefCell::new(Vec::new()), RefCell::new(BTreeSet::new()))
    }
    /// The value of `key`, or `None` (recorded as a default) when absent or null.
    fn field(&self, key: &str) -> Option<&'a Value> {
        match self.0.get(key) {
            None | Some(Value::Null) => {
                self.2.borrow_mut().insert(key.to_string());
                None
            }
            Some(v) => Some(v),
        }
    }
    fn invalid(&self, key: &str, v: &Value, want: &str) {
        let mut shown = v.to_string();
        if shown.len() > 40 {
            shown = format!("{}…", shown.chars().take(40).collect::<String>());
        }
        self.1.borrow_mut().push(format!("config field `{key}` is {shown}, not {want}"));
    }
    /// The first invalid field seen, as an error.
    fn check(&self) -> Result<()> {
        match self.1.borrow().first() {
            Some(m) => Err(Error::Config(m.clone())),
            None => Ok(()),
        }
    }
    fn opt_f64(&self, key: &str) -> Option<f64> {
        let v = self.field(key)?;
        match v.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.invalid(key, v, "a finite number");
                None
            }
        }
    }
    fn opt_usize(&self, key: &str) -> Option<usize> {
        let v = self.field(key)?;
        match v.as_u64().and_then(|x| usize::try_from(x).ok()) {
            Some(x) => Some(x),
            None => {
                self.invalid(key, v, "a non-negative integer");
                None
            }
        }
    }
    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key).ok_or_else(|| {
            self.1.borrow().first().map_or_else(|| Error::Config(format!("missing integer field `{key}`")), |m| Error::Config(m.clone()))
        })
    }
    /// A layer count, refused above [`MAX_LAYERS`] before anything is sized by it.
    fn layers(&self, keys: &[&str]) -> Result<usize> {
        let n = self.usize_any(keys)?;
        if n > MAX_LAYERS {
            return Err(Error::Config(format!("{n} layers is implausible (more than {MAX_LAYERS})")));
        }
        Ok(n)
    }
    /// The first of `keys` that is present (alternative names: the absent
    /// ones are not defaults); present but invalid is an error.
    fn usize_any(&self, keys: &[&str]) -> Result<usize> {
        for k in keys {
            match self.0.get(*k) {
                None | Some(Value::Null) => continue,
                Some(v) => {
                    return v.as_u64().and_then(|x| usize::try_from(x).ok()).ok_or_else(|| {
                        self.invalid(k, v, "a non-negative integer");
                        Error::Config(self.1.borrow().last().cloned().unwrap_or_default())
                    })
                }
            }
        }
        Err(Error::Config(format!("missing integer field, one of {}", keys.join(", "))))
    }
    fn bool_or(&self, key: &str, default: bool) -> bool {
        let Some(v) = self.field(key) else { return default };
        v.as_bool().unwrap_or_else(|| {
            self.invalid(key, v, "true or false");
            default
        })
    }
    fn str(&self, key: &str) -> Option<&'a str> {
        let v = self.field(key)?;
        let s = v.as_str();
        if s.is_none() {
            self.invalid(key, v, "a string");
        }
        s
    }
}

fn activation(name: &str) -> Result<Activation> {
    match name {
        "silu" | "swish" => Ok(Activation::Silu),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
        "gelu" => Ok(Activation::GeluErf),
        other => Err(Error::Config(format!("unsupported activation `{other}`"))),
    }
}

fn rope_scaling(cfg: &Cfg) -> Result<RopeScaling> {
    rope_scaling_of(cfg.0.get("rope_scaling"))
}

/// A `rope_scaling` object (or a transformers-5 `rope_parameters` entry,
/// which has the same keys); null or absent means none.
fn rope_scaling_of(rs: Option<&Value>) -> Result<RopeScaling> {
    let Some(rs) = rs.filter(|v| !v.is_null()) else {
        return Ok(RopeScaling::None);
    };
    let kind = rs.get("rope_type").or_else(|| rs.get("type")).and_then(Value::as_str).unwrap_or("default");
    let f = |k: &str| rs.get(k).and_then(Value::as_f64);
    let need = |k: &str| f(k).ok_or_else(|| Error::Config(format!("rope_scaling: missing `{k}`")));
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: need("factor")? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: need("original_max_position_embeddings")?,
        }),
        other => Err(Error::Config(format!("unsupported rope_scaling type `{other}`"))),
    }
}

/// HF `rope_theta`, which transformers 5 may nest under `rope_parameters`.
fn rope_theta(cfg: &Cfg, default: f64) -> f64 {
    if cfg.0.get("rope_theta").is_none_or(Value::is_null) {
        if let Some(v) = cfg.0.get("rope_parameters").and_then(|r| r.get("rope_theta")) {
            return match v.as_f64().filter(|x| x.is_finite()) {
                Some(x) => x,
                None => {
                    cfg.invalid("rope_parameters.rope_theta", v, "a finite number");
                    default
                }
            };
        }
    }
    cfg.opt_f64("rope_theta").unwrap_or(default)
}

impl ArchSpec {
    /// Builds and validates the spec from an HF config.json value. A field
    /// that is present with an invalid value is an error naming it.
    pub fn from_hf_config(config: &Value) -> Result<ArchSpec> {
        Self::from_hf_config_with_defaults(config).map(|(spec, _)| spec)
    }

    /// [`ArchSpec::from_hf_config`], and the config fields that were absent
    /// (or null) so that a default applied, sorted. A synthesised config
    /// (GGUF) lists the metadata keys it defaulted under
    /// [`DEFAULTS_USED_KEY`]; they are included.
    pub fn from_hf_config_with_defaults(config: &Value) -> Result<(ArchSpec, Vec<String>)> {
        let cfg = Cfg::new(config);
        let model_type = cfg.str("model_type").ok_or_else(|| Error::Config("config has no `model_type`".into()))?;
        let family = Family::from_model_type(model_type)?;
        let gemma3_text;
        let cfg = if family == Family::Gemma3 {
            gemma3_text = gemma3_text_config(config)?;
            Cfg::new(&gemma3_text)
        } else {
            cfg
        };
        let spec = match family {
            Family::Gpt2 => Self::gpt2(&cfg)?,
            Family::GptNeox => Self::gpt_neox(&cfg)?,
            Family::Bloom => Self::bloom(&cfg)?,
            Family::Mpt => Self::mpt(&cfg)?,
            _ => Self::llama_like(&cfg, family)?,
        };
        cfg.check()?;
        spec.validate()?;
        let mut defaults: Vec<String> = cfg.2.borrow().iter().cloned().collect();
        if let Some(extra) = config.get(DEFAULTS_USED_KEY).and_then(Value::as_array) {
            defaults.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
        }
        defaults.sort();
        defaults.dedup();
        Ok((spec, defaults))
    }

    fn llama_like(cfg: &Cfg, family: Family) -> Result<ArchSpec> {
        let d_model = cfg.usize("hidden_size")?;
        let n_heads = cfg.usize("num_attention_heads")?;
        let n_kv_heads = cfg.opt_usize("num_key_value_heads").unwrap_or(n_heads);
        let head_dim = cfg.opt_usize("head_dim").unwrap_or(d_model / n_heads.max(1));
        let n_layers = cfg.layers(&["num_hidden_layers"])?;
        let eps = cfg.opt_f64("rms_norm_eps").unwrap_or(1e-6);
        let act_name = cfg.str("hidden_act").or_else(|| cfg.str("hidden_activation")).unwrap_or("silu");
        let mut act = activation(act_name)?;
        let theta = rope_theta(cfg, 10000.0);
        let mut spec = ArchSpec {
            family,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            d_ff: cfg.usize("intermediate_size")?,
            vocab_size: cfg.usize("vocab_size")?,
            max_positions: cfg.opt_usize("max_position_embeddings"),
            norm: NormKind::Rms { eps, weight_offset: 0.0 },
            positions: Positions::Rotary { theta, rotary_dim: head_dim, scaling: rope_scaling(cfg)? },
            local_rope_theta: None,
            position_bias: PositionBias::None,
            embed_norm: false,
            mlp: Mlp::Gated(act),
            block: BlockKind::PreNorm,
            qk_norm: QkNorm::None,
            qkv_bias: cfg.bool_or("attention_bias", false),
            linear_bias: false,
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
            windows: vec![None; n_layers],
            attn_logit_transform: LogitTransform::None,
            final_logit_transform: LogitTransform::None,
            embed_scale: None,
            tie_embeddings: cfg.bool_or("tie_word_embeddings", false),
        };
        match family {
            Family::Mistral => {
                if let Some(w) = cfg.opt_usize("sliding_window") {
                    spec.windows = vec![Some(w); n_layers];
                }
            }
            Family::Qwen2 => {
                spec.qkv_bias = true;
                if cfg.bool_or("use_sliding_window", false) {
                    let w = cfg.usize("sliding_window")?;
                    let max_window_layers = cfg.opt_usize("max_window_layers").unwrap_or(n_layers);
                    for l in max_window_layers..n_layers {
                        spec.windows[l] = Some(w);
                    }
                }
            }
            Family::Qwen3 => {
                spec.qk_norm = QkNorm::PerHead;
                if cfg.bool_or("use_sliding_window", false) {
                    return Err(Error::Config("qwen3 with use_sliding_window is not supported".into()));
                }
            }
            Family::Olmo2 => {
                spec.qk_norm = QkNorm::Full;
                spec.block = BlockKind::PostNorm;
            }
            Family::Gemma2 => {
                act = activation(cfg.str("hidden_activation").unwrap_or("gelu_pytorch_tanh"))?;
                spec.mlp = Mlp::Gated(act);
                spec.norm = NormKind::Rms { eps, weight_offset: 1.0 };
                spec.block = BlockKind::Sandwich;
                spec.embed_scale = Some((d_model as f64).sqrt());
                spec.tie_embeddings = cfg.bool_or("tie_word_embeddings", true);
                let scalar = cfg.opt_f64("query_pre_attn_scalar").unwrap_or(head_dim as f64);
                spec.attn_scale = 1.0 / scalar.sqrt();
                if let Some(c) = cfg.opt_f64("attn_logit_softcapping") {
                    spec.attn_logit_transform = LogitTransform::Softcap(c);
                }
                if let Some(c) = cfg.opt_f64("final_logit_softcapping") {
                    spec.final_logit_transform = LogitTransform::Softcap(c);
                }
                let window = cfg.opt_usize("sliding_window");
                spec.windows = layer_windows(cfg, n_layers, window, |l| l % 2 == 0)?;
            }
            Family::Gemma3 => {
                spec.mlp = Mlp::Gated(activation(cfg.str("hidden_activation").unwrap_or("gelu_pytorch_tanh"))?);
                spec.norm = NormKind::Rms { eps, weight_offset: 1.0 };
                spec.block = BlockKind::Sandwich;
                spec.qk_norm = QkNorm::PerHead;
                spec.embed_scale = Some((d_model as f64).sqrt());
                spec.tie_embeddings = cfg.bool_or("tie_word_embeddings", true);
                let scalar = cfg.opt_f64("query_pre_attn_scalar").unwrap_or(256.0);
                spec.attn_scale = 1.0 / scalar.sqrt();
                if let Some(c) = cfg.opt_f64("attn_logit_softcapping") {
                    spec.attn_logit_transform = LogitTransform::Softcap(c);
                }
                if let Some(c) = cfg.opt_f64("final_logit_softcapping") {
                    spec.final_logit_transform = LogitTransform::Softcap(c);
                }
                if cfg.bool_or("use_bidirectional_attention", false) {
                    return Err(Error::Config("gemma3 with use_bidirectional_attention is not supported".into()));
                }
                // transformers: layer l is sliding unless (l + 1) is a multiple of the pattern (6).
                let pattern = cfg.opt_usize("sliding_window_pattern").unwrap_or(6).max(1);
                let window = cfg.opt_usize("sliding_window");
                spec.windows = layer_windows(cfg, n_layers, window, |l| (l + 1) % pattern != 0)?;
                let (global, scaling, local) = gemma3_rope(cfg)?;
                spec.positions = Positions::Rotary { theta: global, rotary_dim: head_dim, scaling };
                spec.local_rope_theta = Some(local);
            }
            Family::Phi3 => {
                let rotary_dim = (head_dim as f64 * partial_rotary_factor(cfg).unwrap_or(1.0)) as usize;
                if let Positions::Rotary { theta, scaling, .. } = spec.positions {
                    spec.positions = Positions::Rotary { theta, rotary_dim, scaling };
                }
                // transformers' Phi3 masks with `sliding_window` on every layer when it is set.
                if let Some(w) = cfg.opt_usize("sliding_window") {
                    spec.windows = vec![Some(w); n_layers];
                }
            }
            Family::StableLm => {
                if cfg.bool_or("qk_layernorm", false) {
                    return Err(Error::Config("stablelm with qk_layernorm (one LayerNorm per head) is not supported".into()));
                }
                spec.norm = NormKind::Layer { eps: cfg.opt_f64("layer_norm_eps").unwrap_or(1e-5) };
                spec.qkv_bias = cfg.bool_or("use_qkv_bias", false);
                let rotary_dim = (head_dim as f64 * partial_rotary_factor(cfg).unwrap_or(0.25)) as usize;
                if let Positions::Rotary { theta, scaling, .. } = spec.positions {
                    spec.positions = Positions::Rotary { theta, rotary_dim, scaling };
                }
                if cfg.bool_or("use_parallel_residual", false) {
                    spec.block = BlockKind::Parallel;
                }
            }
            _ => {}
        }
        Ok(spec)
    }

    fn gpt2(cfg: &Cfg) -> Result<ArchSpec> {
        let d_model = cfg.usize_any(&["n_embd", "hidden_size"])?;
        let n_heads = cfg.usize_any(&["n_head", "num_attention_heads"])?;
        let n_layers = cfg.layers(&["n_layer", "num_hidden_layers"])?;
        let head_dim = d_model / n_heads.max(1);
        let d_ff = cfg.opt_usize("n_inner").unwrap_or(4 * d_model);
        let scale = if cfg.bool_or("scale_attn_weights", true) { 1.0 / (head_dim as f64).sqrt() } else { 1.0 };
        if cfg.bool_or("scale_attn_by_inverse_layer_idx", false) {
            return Err(Error::Config("gpt2 scale_attn_by_inverse_layer_idx is not supported".into()));
        }
        Ok(ArchSpec {
            family: Family::Gpt2,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            head_dim,
            d_ff,
            vocab_size: cfg.usize("vocab_size")?,
            max_positions: cfg.opt_usize("n_positions").or_else(|| cfg.opt_usize("max_position_embeddings")),
            norm: NormKind::Layer { eps: cfg.opt_f64("layer_norm_epsilon").unwrap_or(1e-5) },
            positions: Positions::Learned,
            local_rope_theta: None,
            position_bias: PositionBias::None,
            embed_norm: false,
            mlp: Mlp::Plain(activation(cfg.str("activation_function").unwrap_or("gelu_new"))?),
            block: BlockKind::PreNorm,
            qk_norm: QkNorm::None,
            qkv_bias: true,
            linear_bias: true,
            attn_scale: scale,
            windows: vec![None; n_layers],
            attn_logit_transform: LogitTransform::None,
            final_logit_transform: LogitTransform::None,
            embed_scale: None,
            tie_embeddings: cfg.bool_or("tie_word_embeddings", true),
        })
    }

    fn gpt_neox(cfg: &Cfg) -> Result<ArchSpec> {
        let d_model = cfg.usize("hidden_size")?;
        let n_heads = cfg.usize("num_attention_heads")?;
        let n_layers = cfg.layers(&["num_hidden_layers"])?;
        let head_dim = d_model / n_heads.max(1);
        let pct = cfg
            .opt_f64("rotary_pct")
            .or_else(|| cfg.0.get("rope_parameters").and_then(|r| r.get("partial_rotary_factor")).and_then(Value::as_f64))
            .or_else(|| cfg.opt_f64("partial_rotary_factor"))
            .unwrap_or(1.0);
        let rotary_dim = (head_dim as f64 * pct) as usize;
        let theta = cfg.opt_f64("rotary_emb_base").unwrap_or_else(|| rope_theta(cfg, 10000.0));
        Ok(ArchSpec {
            family: Family::GptNeox,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            head_dim,
            d_ff: cfg.usize("intermediate_size")?,
            vocab_size: cfg.usize("vocab_size")?,
            max_positions: cfg.opt_usize("max_position_embeddings"),
            norm: NormKind::Layer { eps: cfg.opt_f64("layer_norm_eps").unwrap_or(1e-5) },
            positions: Positions::Rotary { theta, rotary_dim, scaling: rope_scaling(cfg)? },
            local_rope_theta: None,
            position_bias: PositionBias::None,
            embed_norm: false,
            mlp: Mlp::Plain(activation(cfg.str("hidden_act").unwrap_or("gelu"))?),
            block: if cfg.bool_or("use_parallel_residual", true) { BlockKind::Parallel } else { BlockKind::PreNorm },
            qk_norm: QkNorm::None,
            qkv_bias: cfg.bool_or("attention_bias", true),
            linear_bias: true,
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
            windows: vec![None; n_layers],
            attn_logit_transform: LogitTransform::None,
            final_logit_transform: LogitTransform::None,
            embed_scale: None,
            tie_embeddings: cfg.bool_or("tie_word_embeddings", false),
        })
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.n_layers == 0 || self.d_model == 0 || self.n_heads == 0 || self.head_dim == 0 || self.vocab_size == 0 {
            return bad(format!(
                "degenerate dimensions: {} layers, d_model {}, {} heads of d_head {}, vocabulary {}",
                self.n_layers, self.d_model, self.n_heads, self.head_dim, self.vocab_size
            ));
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!("{} heads cannot share {} KV heads", self.n_heads, self.n_kv_heads));
        }
        if let Positions::Rotary { rotary_dim, .. } = self.positions {
            if rotary_dim % 2 != 0 || rotary_dim > self.head_dim {
                return bad(format!("rotary dim {rotary_dim} invalid for head dim {}", self.head_dim));
            }
        }
        if self.windows.contains(&Some(0)) {
            return bad("sliding window of 0".into());
        }
        if let Some(slopes) = self.position_bias.slopes() {
            if slopes.len() != self.n_heads {
                return bad(format!("{} ALiBi slopes for {} heads", slopes.len(), self.n_heads));
            }
            // The decoder adds the bias with the mask, after any soft-cap: no
            // family combines the two, so refuse rather than guess the order.
            if self.attn_logit_transform != LogitTransform::None {
                return bad("ALiBi together with attention logit soft-capping is not supported".into());
            }
        }
        Ok(())
    }

    /// Query heads per KV head.
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

/// `partial_rotary_factor`, top-level or (transformers 5) under `rope_parameters`.
fn partial_rotary_factor(cfg: &Cfg) -> Option<f64> {
    cfg.opt_f64("partial_rotary_factor")
        .or_else(|| cfg.0.get("rope_parameters").and_then(|r| r.get("partial_rotary_factor")).and_then(Value::as_f64))
}

/// Per-layer windows from `layer_types` (transformers ≥ 4.5x) or a default rule.
fn layer_windows(cfg: &Cfg, n_layers: usize, window: Option<usize>, default_sliding: impl Fn(usize) -> bool) -> Result<Vec<Option<usize>>> {
    let Some(w) = window else { return Ok(vec![None; n_layers]) };
    if let Some(types) = cfg.0.get("layer_types").and_then(Value::as_array) {
        if types.len() != n_layers {
            return Err(Error::Config(format!("layer_types has {} entries for {n_layers} layers", types.len())));
        }
        return Ok(types.iter().map(|t| (t.as_str() == Some("sliding_attention")).then_some(w)).collect());
    }
    Ok((0..n_layers).map(|l| default_sliding(l).then_some(w)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_model_type_lists_supported() {
        let err = ArchSpec::from_hf_config(&json!({"model_type": "bert"})).unwrap_err().to_string();
        assert!(err.contains("bert") && err.contains("gpt_neox") && err.contains("llama"), "{err}");
    }

    #[test]
    fn smollm2_like_config() {
        let spec = ArchSpec::from_hf_config(&json!({
            "model_type": "llama", "hidden_size": 576, "num_attention_heads": 9,
            "num_key_value_heads": 3, "num_hidden_layers": 30, "intermediate_size": 1536,
            "vocab_size": 49152, "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 8192, "tie_word_embeddings": true
        }))
        .unwrap();
        assert_eq!(spec.head_dim, 64);
        assert_eq!(spec.group_size(), 3);
        assert!((spec.attn_scale - 0.125).abs() < 1e-15);
        assert_eq!(spec.max_positions, Some(8192));
    }

    #[test]
    fn absurd_layer_count_is_an_error_not_an_allocation() {
        for model_type in ["llama", "gpt2", "gpt_neox"] {
            let err = ArchSpec::from_hf_config(&json!({
                "model_type": model_type, "hidden_size": 64, "n_embd": 64, "num_attention_heads": 4, "n_head": 4,
                "num_hidden_layers": 4294967296u64, "n_layer": 4294967296u64, "intermediate_size": 8, "vocab_size": 10
            }))
            .unwrap_err()
            .to_string();
            assert!(err.contains("implausible"), "{model_type}: {err}");
        }
    }

    #[test]
    fn unsupported_variants_are_refused_by_name() {
        for (cfg, what) in [
            (
                json!({"model_type": "stablelm", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
                    "intermediate_size": 8, "vocab_size": 10, "qk_layernorm": true}),
                "qk_layernorm",
            ),
            (
                json!({"model_type": "mpt", "d_model": 64, "n_heads": 4, "n_layers": 1, "vocab_size": 10,
                    "attn_config": {"qk_ln": true}}),
                "qk_ln",
            ),
            (
                json!({"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 1, "vocab_size": 10,
                    "apply_residual_connection_post_layernorm": true}),
                "apply_residual_connection_post_layernorm",
            ),
            (
                json!({"model_type": "phi3", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
                    "intermediate_size": 8, "vocab_size": 10, "rope_scaling": {"type": "longrope"}}),
                "longrope",
            ),
        ] {
            let err = ArchSpec::from_hf_config(&cfg).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
        let bloom =
            ArchSpec::from_hf_config(&json!({"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 2, "vocab_size": 10}))
                .unwrap();
        assert_eq!(bloom.position_bias.slopes().map(<[f64]>::len), Some(4));
        assert_eq!(bloom.positions, Positions::None);
    }

    #[test]
    fn bad_gqa_is_an_error() {
        let err = ArchSpec::from_hf_config(&json!({
            "model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 3, "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 10
        }));
        assert!(err.is_err());
    }
}
