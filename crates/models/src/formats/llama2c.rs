//! llama2.c checkpoints (legacy "version 0" `.bin`, as written by
//! `export.py --version 0` / the tinyllamas release), read exactly as
//! `run.c`'s `memory_map_weights` lays them out.
//!
//! Header: 7 × i32 `dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//! vocab_size, seq_len`; a negative `vocab_size` means the classifier is not
//! shared with the embedding (a `wcls` array follows). Then f32 arrays:
//!
//! ```text
//! token_embedding (vocab, dim)       rms_att (L, dim)
//! wq  (L, dim, dim)                  wk  (L, kv_dim, dim)   kv_dim = dim·n_kv/n_heads
//! wv  (L, kv_dim, dim)               wo  (L, dim, dim)
//! rms_ffn (L, dim)                   w1  (L, hidden, dim)
//! w2  (L, dim, hidden)               w3  (L, hidden, dim)
//! rms_final (dim)                    [freq_cis_real, freq_cis_imag (seq_len, head_size/2)]
//! [wcls (vocab, dim) if unshared]
//! ```
//!
//! Every matrix is already (out, in) row-major like HF. Exposed under HF
//! llama names (w1→gate_proj, w3→up_proj, w2→down_proj); wq/wk are
//! un-permuted from the interleaved rotary layout exactly like GGUF-llama.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value as Json};

use super::{mmap_file, reverse_permute, ByteReader};
use crate::formats::TensorSource;
use crate::{Error, Result};

const FORMAT: &str = "llama2.c";

/// The 7-int header, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub dim: usize,
    pub hidden_dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub vocab_size: usize,
    pub seq_len: usize,
    /// Classifier shares the token embedding (header vocab_size > 0).
    pub shared_classifier: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Byte offset in the file.
    start: usize,
    shape: Vec<usize>,
    unpermute: Option<usize>,
}

/// Tensor source over a mapped llama2.c checkpoint, under HF names.
pub struct Llama2cSource {
    path: PathBuf,
    mmap: memmap2::Mmap,
    map: BTreeMap<String, Entry>,
    pub header: Header,
}

fn parse_header(buf: &[u8], path: &Path) -> Result<Header> {
    let mut r = ByteReader::new(buf, path, FORMAT);
    let mut v = [0i32; 7];
    for (i, name) in ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"].iter().enumerate() {
        v[i] = r.i32(&format!("header field {name}"))?;
    }
    let [dim, hidden, layers, heads, kv, vocab, seq] = v;
    let pos = |x: i32, what: &str| -> Result<usize> {
        if x <= 0 || x > 1 << 24 {
            Err(r.err(format!("header {what} = {x} is not a plausible positive size")))
        } else {
            Ok(x as usize)
        }
    };
    let h = Header {
        dim: pos(dim, "dim")?,
        hidden_dim: pos(hidden, "hidden_dim")?,
        n_layers: pos(layers, "n_layers")?,
        n_heads: pos(heads, "n_heads")?,
        n_kv_heads: pos(kv, "n_kv_heads")?,
        vocab_size: pos(vocab.checked_abs().unwrap_or(0), "vocab_size")?,
        seq_len: pos(seq, "seq_len")?,
        shared_classifier: vocab > 0,
    };
    if !h.dim.is_multiple_of(h.n_heads) || !h.n_heads.is_multiple_of(h.n_kv_heads) || !(h.dim / h.n_heads).is_multiple_of(2) {
        return Err(r.err(format!(
            "header dim {} / n_heads {} / n_kv_heads {} are inconsistent (need heads | dim, kv | heads, even head size)",
            h.dim, h.n_heads, h.n_kv_heads
        )));
    }
    Ok(h)
}

/// Opens a llama2.c checkpoint: (HF config, tensor source).
pub fn open(path: &Path) -> Result<(Json, Llama2cSource)> {
    let mmap = mmap_file(path)?;
    let h = parse_header(&mmap, path)?;
    let (d, hd, l, v) = (h.dim as u128, h.hidden_dim as u128, h.n_layers as u128, h.vocab_size as u128);
    let head = d / h.n_heads as u128;
    let kv_dim = head * h.n_kv_heads as u128;
    // Element counts in file order (u128: no overflow for any i32 header).
    let arrays: [(&str, u128); 11] = [
        ("token_embedding", v * d),
        ("rms_att", l * d),
        ("wq", l * d * d),
        ("wk", l * kv_dim * d),
        ("wv", l * kv_dim * d),
        ("wo", l * d * d),
        ("rms_ffn", l * d),
        ("w1", l * hd * d),
        ("w2", l * d * hd),
        ("w3", l * hd * d),
        ("rms_final", d),
    ];
    let base: u128 = 28 + 4 * arrays.iter().map(|a| a.1).sum::<u128>();
    let freq = 4 * 2 * h.seq_len as u128 * (head / 2);
    let cls = if h.shared_classifier { 0 } else { 4 * v * d };
    let len = mmap.len() as u128;
    let with_freq = if len == base + freq + cls {
        true
    } else if len == base + cls {
        false
    } else {
        return Err(Error::Format {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: format!(
                "file is {len} bytes but the header (dim {}, hidden_dim {}, {} layers, {} heads, {} KV heads, vocab_size {}, seq_len {}) implies {} bytes (or {} without freq_cis): truncated, or not a llama2.c v0 checkpoint",
                h.dim,
                h.hidden_dim,
                h.n_layers,
                h.n_heads,
                h.n_kv_heads,
                h.vocab_size,
                h.seq_len,
                base + freq + cls,
                base + cls
            ),
        });
    };
    // Offsets of each array (all < len, so they fit in usize).
    let mut offs = BTreeMap::new();
    let mut at = 28usize;
    for (name, n) in arrays {
        offs.insert(name, at);
        at += 4 * n as usize;
    }
    if with_freq {
        at += freq as usize;
    }
    let wcls = if h.shared_classifier { None } else { Some(at) };

    let (dim, hid, kvd) = (h.dim, h.hidden_dim, kv_dim as usize);
    let mut map = BTreeMap::new();
    let mut put = |name: String, start: usize, shape: Vec<usize>, unpermute: Option<usize>| {
        map.insert(name, Entry { start, shape, unpermute });
    };
    put("model.embed_tokens.weight".into(), offs["token_embedding"], vec![h.vocab_size, dim], None);
    put("model.norm.weight".into(), offs["rms_final"], vec![dim], None);
    if let Some(s) = wcls {
        put("lm_head.weight".into(), s, vec![h.vocab_size, dim], None);
    }
    for i in 0..h.n_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        // Per-layer slice of a stacked (L, rows, cols) array.
        let at = |name: &str, rows: usize, cols: usize| offs[name] + 4 * i * rows * cols;
        put(p("input_layernorm.weight"), at("rms_att", 1, dim), vec![dim], None);
        put(p("self_attn.q_proj.weight"), at("wq", dim, dim), vec![dim, dim], Some(h.n_heads));
        put(p("self_attn.k_proj.weight"), at("wk", kvd, dim), vec![kvd, dim], Some(h.n_kv_heads));
        put(p("self_attn.v_proj.weight"), at("wv", kvd, dim), vec![kvd, dim], None);
        put(p("self_attn.o_proj.weight"), at("wo", dim, dim), vec![dim, dim], None);
        put(p("post_attention_layernorm.weight"), at("rms_ffn", 1, dim), vec![dim], None);
        put(p("mlp.gate_proj.weight"), at("w1", hid, dim), vec![hid, dim], None);
        put(p("mlp.down_proj.weight"), at("w2", dim, hid), vec![dim, hid], None);
        put(p("mlp.up_proj.weight"), at("w3", hid, dim), vec![hid, dim], None);
    }
    let config = json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": h.dim,
        "intermediate_size": h.hidden_dim,
        "num_hidden_layers": h.n_layers,
        "num_attention_heads": h.n_heads,
        "num_key_value_heads": h.n_kv_heads,
        "head_dim": h.dim / h.n_heads,
        "vocab_size": h.vocab_size,
        "max_position_embeddings": h.seq_len,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": h.shared_classifier,
        "bos_token_id": 1,
        "eos_token_id": 2,
    });
    Ok((config, Llama2cSource { path: path.to_path_buf(), mmap, map, header: h }))
}

impl TensorSource for Llama2cSource {
    fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.map.get(name).map(|e| e.shape.clone())
    }
    fn load(&self, name: &str) -> Result<Tensor> {
        let e = crate::formats::entry(&self.map, name, self)?;
        let n: usize = e.shape.iter().product();
        let tensor_err = |reason: String| Error::Tensor { path: self.path.clone(), name: name.to_string(), reason };
        let raw = self.mmap.get(e.start..e.start + 4 * n).ok_or_else(|| tensor_err("data range lies outside the file".into()))?;
        let t = Tensor::from_raw_buffer(raw, DType::F32, &e.shape, &Device::Cpu)?;
        super::release(&self.mmap, e.start, 4 * n);
        match e.unpermute {
            Some(heads) => reverse_permute(&t, heads).map_err(|err| tensor_err(format!("Q/K un-permute: {err}"))),
            None => Ok(t),
        }
    }
    fn load_rows(&self, name: &str, rows: &[u32]) -> Result<Tensor> {
        let e = crate::formats::entry(&self.map, name, self)?;
        if e.unpermute.is_some() || e.shape.len() != 2 {
            let t = self.load(name)?;
            let ids = Tensor::from_slice(rows, rows.len(), t.device())?;
            return Ok(t.index_select(&ids, 0)?);
        }
        let cols = e.shape[1];
        let mut bytes = Vec::with_capacity(rows.len() * cols * 4);
        for &r in rows {
            let at = e.start + 4 * cols * r as usize;
            let b = self.mmap.get(at..at + 4 * cols).ok_or_else(|| Error::Tensor {
                path: self.path.clone(),
                name: name.to_string(),
                reason: format!("row {r} lies outside the file"),
            })?;
            bytes.extend_from_slice(b);
        }
        Ok(Tensor::from_raw_buffer(&bytes, DType::F32, &[rows.len(), cols], &Device::Cpu)?)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
