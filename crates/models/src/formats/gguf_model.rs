//! GGUF → [`Checkpoint`] contract: HF `config.json` synthesised from the
//! metadata and tensors renamed to HF names, as transformers'
//! `modeling_gguf_pytorch_utils.py` does.
//!
//! Supported `general.architecture`: `llama` (also SmolLM2 and
//! Mistral-in-GGUF), `qwen2` and `gemma3` (→ `gemma3_text`; llama.cpp
//! stores every Gemma norm weight as 1 + w, which is undone here as
//! transformers' `Gemma2TensorProcessor` does). For `llama`, Q/K rows are un-permuted from
//! llama.cpp's interleaved rotary layout (transformers'
//! `LlamaTensorProcessor`, applied by architecture, so Mistral too); `qwen2`'s
//! converter never permutes, so nothing is undone there.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;
use serde_json::{json, Map, Value as Json};

use super::gguf::{ggml_type_name, ggml_type_supported, GgufFile, TensorInfo, SUPPORTED_TYPES};
use crate::formats::TensorSource;
use crate::{Error, Result};

pub const SUPPORTED_ARCHS: &[&str] = &["llama", "qwen2", "gemma3"];

/// How one HF tensor is made from a GGUF tensor.
#[derive(Debug, Clone)]
struct Entry {
    gguf_name: String,
    /// Some(n_head): un-permute rows in groups of n_head heads.
    unpermute: Option<usize>,
    /// Gemma norm weight stored as 1 + w: subtract 1.
    minus_one: bool,
}

/// Tensor source over a GGUF file, under HF names.
pub struct GgufSource {
    file: GgufFile,
    map: BTreeMap<String, Entry>,
}

/// Per-block GGUF suffix → HF suffix (`model.layers.N.` prefix).
const BLOCK_NAMES: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.bias", "self_attn.o_proj.bias"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// Gemma 3 blocks: llama.cpp's names for the sandwich norms and QK-norm
/// (gguf-py's tensor map). `ffn_norm` is the *pre*-feedforward norm here.
const GEMMA3_BLOCK_NAMES: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_q_norm.weight", "self_attn.q_norm.weight"),
    ("attn_k_norm.weight", "self_attn.k_norm.weight"),
    ("post_attention_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_norm.weight", "pre_feedforward_layernorm.weight"),
    ("post_ffw_norm.weight", "post_feedforward_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// Opens a GGUF checkpoint: the HF config and a tensor source under HF
/// names. The tokenizer is built separately from [`GgufSource::file`].
/// GGUF tensors with no HF counterpart here (e.g. `rope_freqs.weight`) are
/// not exposed; every exposed tensor must have a supported type.
pub fn open(path: &Path) -> Result<(Json, GgufSource)> {
    let file = GgufFile::open(path)?;
    let arch = file
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .ok_or_else(|| file.meta_err("general.architecture", "a string"))?
        .to_string();
    if !SUPPORTED_ARCHS.contains(&arch.as_str()) {
        return Err(Error::UnknownArchitecture {
            found: format!("{arch} (GGUF general.architecture in {})", path.display()),
            supported: SUPPORTED_ARCHS.join(", "),
        });
    }
    let config = build_config(&file, &arch)?;
    let n_head = config["num_attention_heads"].as_u64().unwrap_or(0) as usize;
    let n_kv = config["num_key_value_heads"].as_u64().unwrap_or(0) as usize;
    let n_layers = config["num_hidden_layers"].as_u64().unwrap_or(0) as usize;

    let mut map = BTreeMap::new();
    let gemma = arch == "gemma3";
    let mut add = |hf: String, gguf: &str, unpermute: Option<usize>| {
        let minus_one = gemma && hf.ends_with("norm.weight");
        map.insert(hf, Entry { gguf_name: gguf.to_string(), unpermute, minus_one });
    };
    let block_names = if gemma { GEMMA3_BLOCK_NAMES } else { BLOCK_NAMES };
    for name in file.tensors.keys() {
        let permute = arch == "llama";
        match name.as_str() {
            "token_embd.weight" => add("model.embed_tokens.weight".into(), name, None),
            "output_norm.weight" => add("model.norm.weight".into(), name, None),
            "output.weight" => add("lm_head.weight".into(), name, None),
            _ => {
                let Some(rest) = name.strip_prefix("blk.") else {
                    continue;
                };
                let Some((idx, suffix)) = rest.split_once('.') else {
                    continue;
                };
                let Ok(layer) = idx.parse::<usize>() else {
                    continue;
                };
                if layer >= n_layers {
                    return Err(file_err(&file, format!("tensor `{name}` is for layer {layer} but block_count is {n_layers}")));
                }
                let Some((_, hf)) = block_names.iter().find(|(g, _)| *g == suffix) else {
                    continue;
                };
                let unpermute = match suffix {
                    "attn_q.weight" | "attn_q.bias" if permute => Some(n_head),
                    "attn_k.weight" | "attn_k.bias" if permute => Some(n_kv),
                    _ => None,
                };
                add(format!("model.layers.{layer}.{hf}"), name, unpermute);
            }
        }
    }
    file.release_header();
    let source = GgufSource { file, map };
    for (hf, e) in &source.map {
        let info = &source.file.tensors[&e.gguf_name];
        if !ggml_type_supported(info.ggml_type) {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "GGUF tensor type",
                detail: format!(
                    "tensor `{}` ({hf}) has type {} (supported: {SUPPORTED_TYPES})",
                    e.gguf_name,
                    ggml_type_name(info.ggml_type)
                ),
            });
        }
    }
    if !source.map.contains_key("model.embed_tokens.weight") {
        return Err(file_err(&source.file, "no `token_embd.weight` tensor".into()));
    }
    Ok((config, source))
}

impl GgufSource {
    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

/// A value that must be positive (an epsilon, a rotary base): 0 or less is
/// an error naming the key.
fn positive(file: &GgufFile, key: &str, v: Option<f64>) -> Result<Option<f64>> {
    match v {
        Some(x) if x <= 0.0 => Err(file_err(file, format!("metadata `{key}` is {x}, not a positive number"))),
        v => Ok(v),
    }
}

fn file_err(file: &GgufFile, reason: String) -> Error {
    Error::Format { path: file.path.clone(), format: "GGUF", reason }
}

/// HF config from `<arch>.*` metadata, following transformers'
/// `GGUF_CONFIG_MAPPING` field names.
fn build_config(file: &GgufFile, arch: &str) -> Result<Json> {
    let key = |k: &str| format!("{arch}.{k}");
    let req_u64 = |k: &str| -> Result<u64> {
        let full = key(k);
        file.get(&full).and_then(|v| v.as_u64()).ok_or_else(|| file.meta_err(&full, "an integer"))
    };
    // Absent → None (a default applies); present but invalid → an error
    // naming the key (a NaN rope.freq_base once became 10000 silently).
    let opt_u64 = |k: &str| file.opt_u64(&key(k));
    let opt_f64 = |k: &str| file.opt_finite(&key(k));

    let hidden = req_u64("embedding_length")?;
    let n_head = req_u64("attention.head_count")?;
    let n_kv = opt_u64("attention.head_count_kv")?.unwrap_or(n_head);
    if n_head == 0 || n_kv == 0 || n_head % n_kv != 0 {
        return Err(file.meta_err(&key("attention.head_count_kv"), "a divisor of head_count"));
    }
    let emb = file.tensors.get("token_embd.weight");
    let vocab = opt_u64("vocab_size")?
        .or_else(|| file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len() as u64))
        .or_else(|| emb.and_then(|t: &TensorInfo| t.ne.get(1).map(|&d| d as u64)))
        .ok_or_else(|| file.meta_err(&key("vocab_size"), "present (nor a tokenizer/embedding)"))?;
    let mut c = Map::new();
    // transformers turns GGUF `gemma3` into the text-only `gemma3_text`.
    c.insert("model_type".into(), json!(if arch == "gemma3" { "gemma3_text" } else { arch }));
    c.insert(
        "architectures".into(),
        json!([match arch {
            "qwen2" => "Qwen2ForCausalLM",
            "gemma3" => "Gemma3ForCausalLM",
            _ => "LlamaForCausalLM",
        }]),
    );
    c.insert("hidden_size".into(), json!(hidden));
    c.insert("intermediate_size".into(), json!(req_u64("feed_forward_length")?));
    let n_layers = req_u64("block_count")?;
    // Every block holds tensors: more blocks than tensors is corrupt, and
    // per-layer tables are sized from this number (fuzz: a block_count of
    // 2^32 aborted on a 68 GB allocation in ArchSpec).
    if n_layers > file.tensors.len() as u64 {
        return Err(Error::Format {
            path: file.path.clone(),
            format: "GGUF",
            reason: format!("`{}` is {n_layers} but the file holds only {} tensors", key("block_count"), file.tensors.len()),
        });
    }
    c.insert("num_hidden_layers".into(), json!(n_layers));
    c.insert("num_attention_heads".into(), json!(n_head));
    c.insert("num_key_value_heads".into(), json!(n_kv));
    c.insert(
        "rms_norm_eps".into(),
        json!(positive(file, &key("attention.layer_norm_rms_epsilon"), opt_f64("attention.layer_norm_rms_epsilon")?)?
            .map(f32_to_f64)
            .unwrap_or(1e-6)),
    );
    c.insert(
        "rope_theta".into(),
        json!(positive(file, &key("rope.freq_base"), opt_f64("rope.freq_base")?)?.map(f32_to_f64).unwrap_or(10000.0)),
    );
    if let Some(n) = opt_u64("context_length")? {
        c.insert("max_position_embeddings".into(), json!(n));
    }
    c.insert("vocab_size".into(), json!(vocab));
    // head_dim: `attention.key_length` if stated; for llama, transformers maps
    // `rope.dimension_count` to head_dim; else hidden / heads.
    let rope_dims = if arch == "llama" { opt_u64("rope.dimension_count")? } else { None };
    let head_dim = opt_u64("attention.key_length")?.or(rope_dims).or_else(|| (hidden % n_head == 0).then(|| hidden / n_head));
    if let Some(d) = head_dim {
        c.insert("head_dim".into(), json!(d));
    }
    if let Some(w) = opt_u64("attention.sliding_window")? {
        c.insert("sliding_window".into(), json!(w));
    }
    let scaling = match file.get(&key("rope.scaling.type")) {
        None => None,
        Some(v) => Some(v.as_str().ok_or_else(|| file.meta_err(&key("rope.scaling.type"), "a string"))?),
    };
    if let Some(kind) = scaling {
        if kind != "none" {
            let mut rs = Map::new();
            rs.insert("rope_type".into(), json!(kind));
            if let Some(f) = opt_f64("rope.scaling.factor")? {
                rs.insert("factor".into(), json!(f32_to_f64(f)));
            }
            if let Some(n) = opt_u64("rope.scaling.original_context_length")? {
                rs.insert("original_max_position_embeddings".into(), json!(n));
            }
            c.insert("rope_scaling".into(), Json::Object(rs));
        }
    }
    c.insert("tie_word_embeddings".into(), json!(!file.tensors.contains_key("output.weight")));
    if arch == "gemma3" {
        // No query_pre_attn_scalar, layer pattern or local rope base in the
        // metadata: transformers' defaults apply (256, every 6th layer
        // global, 10000), as in its GGUF loader.
        c.insert("hidden_activation".into(), json!("gelu_pytorch_tanh"));
    } else {
        c.insert("hidden_act".into(), json!("silu"));
    }
    if arch == "qwen2" {
        c.insert("attention_bias".into(), json!(true));
    }
    if let Some(id) = file.opt_u64("tokenizer.ggml.bos_token_id")? {
        c.insert("bos_token_id".into(), json!(id));
    }
    if let Some(id) = file.opt_u64("tokenizer.ggml.eos_token_id")? {
        c.insert("eos_token_id".into(), json!(id));
    }
    // Metadata that was absent, so that a default applied (reported).
    let defaulted: Vec<String> = ["attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base"]
        .iter()
        .map(|k| key(k))
        .filter(|k| file.get(k).is_none())
        .collect();
    if !defaulted.is_empty() {
        c.insert(crate::arch::DEFAULTS_USED_KEY.into(), json!(defaulted));
    }
    Ok(Json::Object(c))
}

/// f32 metadata (e.g. 1e-5) printed as its shortest decimal, as Python does
/// when transformers reads it, rather than 9.999999747378752e-06.
fn f32_to_f64(v: f64) -> f64 {
    let s = format!("{}", v as f32);
    s.parse().unwrap_or(v)
}

impl TensorSource for GgufSource {
    fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let e = self.map.get(name)?;
        Some(self.file.tensors[&e.gguf_name].shape())
    }
    fn load(&self, name: &str) -> Result<Tensor> {
        self.load_checked(name).map(|(t, _)| t)
    }
    fn load_checked(&self, name: &str) -> Result<(Tensor, Option<bool>)> {
        let e = crate::formats::entry(&self.map, name, self)?;
        let info = &self.file.tensors[&e.gguf_name];
        let (t, finite) = self.file.load_f32_checked(info, e.unpermute)?;
        if e.minus_one {
            // x − 1 of a finite f32 is finite; the check is kept for the others.
            let t =
                (t - 1.0).map_err(|err| Error::Tensor { path: self.file.path.clone(), name: name.to_string(), reason: err.to_string() })?;
            return Ok((t, finite.filter(|&f| !f)));
        }
        Ok((t, finite))
    }
    fn load_rows(&self, name: &str, rows: &[u32]) -> Result<Tensor> {
        let e = crate::formats::entry(&self.map, name, self)?;
        let info = &self.file.tensors[&e.gguf_name];
        if e.unpermute.is_some() || info.ne.len() != 2 {
            let t = self.load(name)?;
            let ids = Tensor::from_slice(rows, rows.len(), t.device())?;
            return Ok(t.index_select(&ids, 0)?);
        }
        self.file.load_rows_f32(info, rows)
    }
    fn stored_bytes(&self, name: &str) -> Option<u64> {
        let e = self.map.get(name)?;
        Some(self.file.tensors[&e.gguf_name].len as u64)
    }
    fn describe(&self) -> String {
        self.file.path.display().to_string()
    }
}
