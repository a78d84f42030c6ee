//! [`Checkpoint`]: any model source, normalised to an HF-style config plus
//! f32 tensors under HF names.
//!
//! Contract (every loader keeps it):
//! - `config` is a JSON object with HF `config.json` field names and a
//!   `model_type` (e.g. "llama", "gpt2"). GGUF and llama2.c loaders synthesise
//!   it from their metadata/header, as transformers does for GGUF.
//! - Tensor names and layouts are the HF ones for that `model_type`
//!   (e.g. `model.layers.0.self_attn.q_proj.weight`, shape (out, in)).
//!   Q/K projections of GGUF-llama and llama2.c files, which store rotary
//!   pairs interleaved, are un-permuted to HF's rotate-half layout, exactly as
//!   transformers' GGUF loader does, so our Q/K equal HF's element-wise.
//! - Tensors are dequantized to f32 on `get`, checked for NaN/Inf.

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::{Result, TextTokenizer};

/// Which kind of file a checkpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// config.json + *.safetensors (+ tokenizer.json), possibly from the hub cache.
    HfDir,
    Gguf,
    Llama2c,
}

/// A source of raw tensors under HF names. Implemented once per format.
pub trait TensorSource: Send + Sync {
    /// All tensor names (HF names), sorted.
    fn names(&self) -> Vec<String>;
    /// Shape of `name` in the HF layout, without reading its data.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Reads and dequantizes `name` to an f32 CPU tensor in the HF layout.
    fn load(&self, name: &str) -> Result<Tensor>;
    /// One-line description used in error messages (usually the file path).
    fn describe(&self) -> String;
}

/// Tensors of one checkpoint, loaded on demand.
pub struct TensorStore {
    source: Box<dyn TensorSource>,
}

impl TensorStore {
    pub fn new(source: Box<dyn TensorSource>) -> Self {
        Self { source }
    }
    /// f32 tensor `name` (HF name and layout). Errors if missing, or if it
    /// holds NaN/Inf ([`crate::Error::NonFinite`]).
    pub fn get(&self, name: &str) -> Result<Tensor> {
        if self.source.shape(name).is_none() {
            return Err(crate::Error::MissingTensor {
                name: name.to_string(),
                source_desc: self.source.describe(),
            });
        }
        let t = self.source.load(name)?;
        let finite = t
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err(crate::Error::NonFinite {
                name: name.to_string(),
                source_desc: self.source.describe(),
            });
        }
        Ok(t)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.source.shape(name).is_some()
    }
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.source.shape(name)
    }
    pub fn names(&self) -> Vec<String> {
        self.source.names()
    }
    pub fn describe(&self) -> String {
        self.source.describe()
    }
}

/// A model source normalised to HF config + HF-named tensors + tokenizer.
pub struct Checkpoint {
    /// What the user passed (path or hub id).
    pub source: String,
    /// The main file or directory that was read.
    pub path: PathBuf,
    pub format: Format,
    /// HF-style config.json object, with `model_type`.
    pub config: serde_json::Value,
    pub tensors: TensorStore,
    /// The model's tokenizer, if one was found (tokenizer.json, GGUF
    /// metadata, or llama2.c tokenizer .bin).
    pub tokenizer: Option<TextTokenizer>,
}

impl Checkpoint {
    /// Opens `source`: an HF directory, a `.gguf` file, a llama2.c `.bin`,
    /// or a hub id (`owner/name`, resolved through the HF cache; offline use
    /// from the cache when `HF_HUB_OFFLINE=1` or the network is down).
    /// `tokenizer` overrides where the tokenizer is read from (a
    /// tokenizer.json, or a llama2.c tokenizer .bin).
    pub fn open(source: &str, tokenizer: Option<&Path>) -> Result<Checkpoint> {
        let _ = (source, tokenizer);
        todo!("format detection and loaders")
    }
}
