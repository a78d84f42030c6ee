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
//! - Tensors are dequantized to f32 on `get`, checked for NaN/Inf. File
//!   sources keep their memory-mapped bytes in the stored type (GGUF blocks,
//!   safetensors F16/BF16/F32): nothing is dequantized before it is asked
//!   for, and the mapped pages a `get` read are handed back to the page cache
//!   afterwards, so they do not stay in the process's resident set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;

use crate::formats::TensorSource;
use crate::{Result, TextTokenizer};

/// Which kind of file a checkpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// config.json + *.safetensors (+ tokenizer.json), possibly from the hub cache.
    HfDir,
    /// A single `.gguf` file.
    Gguf,
    /// A llama2.c `.bin` checkpoint.
    Llama2c,
    /// Tensors already in memory ([`Checkpoint::from_tensors`]).
    Memory,
}

/// Tensors of one checkpoint, loaded on demand. Cloning shares the source
/// (the decoder keeps a clone to stream layers from the mapped file).
#[derive(Clone)]
pub struct TensorStore {
    source: Arc<dyn TensorSource>,
}

impl TensorStore {
    pub fn new(source: Box<dyn TensorSource>) -> Self {
        Self { source: Arc::from(source) }
    }
    /// f32 tensor `name` (HF name and layout). Errors if missing, if its f32
    /// form cannot be allocated ([`crate::Error::Alloc`], asked of the
    /// allocator before the read, so a header that claims a huge tensor is
    /// an error, not an abort), or if it holds NaN/Inf
    /// ([`crate::Error::NonFinite`]).
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let Some(shape) = self.source.shape(name) else {
            return Err(crate::Error::MissingTensor { name: name.to_string(), source_desc: self.source.describe() });
        };
        let bytes = shape.iter().try_fold(4usize, |a, &d| a.checked_mul(d));
        let mut probe: Vec<u8> = Vec::new();
        if bytes.is_none_or(|b| probe.try_reserve_exact(b).is_err()) {
            let n: u128 = shape.iter().fold(4u128, |a, &d| a.saturating_mul(d as u128));
            return Err(crate::Error::Alloc { name: name.to_string(), source_desc: self.source.describe(), bytes: n });
        }
        drop(probe);
        match self.source.load_checked(name)? {
            (t, Some(true)) => Ok(t),
            (_, Some(false)) => Err(crate::Error::NonFinite { name: name.to_string(), source_desc: self.source.describe() }),
            (t, None) => self.finite(name, t),
        }
    }
    /// Rows `rows` of the 2-D tensor `name` as f32 (len(rows), cols), equal
    /// to `get(name)` then `index_select`, without dequantizing the other
    /// rows. Errors if missing, if a row is out of range, or on NaN/Inf in
    /// the rows read.
    pub fn get_rows(&self, name: &str, rows: &[u32]) -> Result<Tensor> {
        let Some(shape) = self.source.shape(name) else {
            return Err(crate::Error::MissingTensor { name: name.to_string(), source_desc: self.source.describe() });
        };
        let n = if shape.len() == 2 { shape[0] } else { 0 };
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n) {
            return Err(crate::Error::RowOutOfRange { name: name.to_string(), row: bad, shape });
        }
        let t = self.source.load_rows(name, rows)?;
        self.finite(name, t)
    }
    fn finite(&self, name: &str, t: Tensor) -> Result<Tensor> {
        if !self.source.prechecked() && !crate::host::all_finite(&t)? {
            return Err(crate::Error::NonFinite { name: name.to_string(), source_desc: self.source.describe() });
        }
        Ok(t)
    }
    /// Bytes `name` takes in its stored type (what the mapped file holds).
    pub fn stored_bytes(&self, name: &str) -> Option<u64> {
        self.source.stored_bytes(name)
    }
    /// See [`TensorSource::resident`].
    pub fn resident(&self) -> bool {
        self.source.resident()
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
    ///
    /// Detection, in order: an existing directory (or its `config.json` /
    /// `*.safetensors`) → HF directory; a `.gguf` name or the GGUF magic →
    /// GGUF; any other existing file → llama2.c; a non-existent `owner/name`
    /// → hub. Tokenizer, unless overridden: `tokenizer.json` in the HF
    /// directory; the GGUF's own metadata; `tokenizer.bin`, else a
    /// `tok*.bin` with the right vocabulary size, beside a llama2.c file.
    /// `None` when there is none.
    ///
    /// Every header size, count and offset is checked against the file
    /// length before use; errors name the file ([`crate::Error`]).
    pub fn open(source: &str, tokenizer: Option<&Path>) -> Result<Checkpoint> {
        let given = Path::new(source);
        let path = if given.exists() {
            given.to_path_buf()
        } else if crate::hub::looks_like_repo_id(source) {
            crate::hub::resolve(source)?
        } else {
            return Err(crate::Error::Io {
                path: given.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file, directory or hub id"),
            });
        };
        // A FIFO, device or socket is refused by `stat` before anything opens it.
        if !path.is_dir() {
            crate::formats::regular_file_len(&path)?;
        }
        let tok = tokenizer.map(TextTokenizer::from_path).transpose()?;
        // A config.json or *.safetensors inside an HF directory means that directory.
        let path = match path.file_name().and_then(|n| n.to_str()) {
            Some(n) if path.is_file() && (n == "config.json" || n.ends_with(".safetensors")) => {
                path.parent().filter(|p| p.join("config.json").is_file()).map(Path::to_path_buf).unwrap_or(path)
            }
            _ => path,
        };
        let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) || crate::formats::gguf::has_magic(&path);
        let (format, config, tensors, tokenizer): (Format, serde_json::Value, Box<dyn TensorSource>, _) = if path.is_dir() {
            let (config, src, t) = open_hf_dir(&path, tok)?;
            (Format::HfDir, config, Box::new(src), t)
        } else if is_gguf {
            let (config, src) = crate::formats::gguf_model::open(&path)?;
            let t = match tok {
                Some(t) => Some(t),
                None => crate::tokenizer::gguf::from_gguf(src.file())?,
            };
            (Format::Gguf, config, Box::new(src), t)
        } else {
            let (config, src, t) = open_llama2c(&path, tok)?;
            (Format::Llama2c, config, Box::new(src), t)
        };
        Ok(Checkpoint { source: source.to_string(), path, format, config, tensors: TensorStore::new(tensors), tokenizer })
    }
}

impl Checkpoint {
    /// A checkpoint over weights already in memory (a training loop's live
    /// weights), under HF names and layouts for `config`'s `model_type`.
    ///
    /// `config` is parsed once here (an unsupported one is an error now,
    /// not at [`crate::Model::load`]), and every tensor is checked for
    /// NaN/Inf once, here. The tensors are then shared, not copied: reads
    /// return the same storage and autograd identity, so in-place updates
    /// (an optimizer step on candle `Var`s) are seen by every model built on
    /// this checkpoint, and reads do not check them again. `source` and
    /// `path` are `"in-memory"`; the format is [`Format::Memory`].
    pub fn from_tensors(
        config: serde_json::Value,
        tensors: std::collections::BTreeMap<String, Tensor>,
        tokenizer: Option<TextTokenizer>,
    ) -> Result<Checkpoint> {
        crate::ArchSpec::from_hf_config(&config)?;
        let src = crate::formats::memory::MemorySource::new(tensors, "in-memory weights")?;
        Ok(Checkpoint {
            source: "in-memory".into(),
            path: PathBuf::from("in-memory"),
            format: Format::Memory,
            config,
            tensors: TensorStore::new(Box::new(src)),
            tokenizer,
        })
    }

    /// Why [`Checkpoint::tokenizer`] is `None`, as one line for the user:
    /// names the file that is missing, and says what to do.
    pub fn missing_tokenizer_reason(&self) -> String {
        let spm = self.path.join("tokenizer.model");
        if self.format == Format::HfDir && spm.is_file() {
            format!(
                "{} has tokenizer.model (SentencePiece) but no tokenizer.json, and attnscope reads tokenizer.json only; \
                 write one with python -c \"from transformers import AutoTokenizer as T; T.from_pretrained('{1}').save_pretrained('{1}')\" \
                 or pass --tokenizer",
                self.path.display(),
                self.path.display()
            )
        } else {
            match self.format {
                Format::HfDir => format!(
                    "no tokenizer found for {}: {} is missing; pass --tokenizer",
                    self.source,
                    self.path.join("tokenizer.json").display()
                ),
                _ => format!("no tokenizer found for {}; pass --tokenizer", self.source),
            }
        }
    }
}

type Opened<S> = (serde_json::Value, S, Option<TextTokenizer>);

/// HF directory: config.json + safetensors; tokenizer.json beside them
/// unless `tok` overrides it.
fn open_hf_dir(path: &Path, tok: Option<TextTokenizer>) -> Result<Opened<crate::formats::hf_dir::SafetensorsSource>> {
    use crate::formats::hf_dir;
    if !path.join("config.json").is_file() {
        return Err(crate::Error::Format { path: path.to_path_buf(), format: "HF directory", reason: "no config.json".into() });
    }
    let config = hf_dir::read_config(path)?;
    let files = hf_dir::shard_files(path)?;
    let src = hf_dir::SafetensorsSource::open(path, &files)?;
    let tok = match tok {
        Some(t) => Some(t),
        None => {
            let tj = path.join("tokenizer.json");
            tj.is_file().then(|| TextTokenizer::from_tokenizer_json(&tj)).transpose()?
        }
    };
    Ok((config, src, tok))
}

/// llama2.c checkpoint; tokenizer from `tok`, else `tokenizer.bin` /
/// `tok*.bin` beside it. Its vocabulary size must match the header's.
fn open_llama2c(path: &Path, tok: Option<TextTokenizer>) -> Result<Opened<crate::formats::llama2c::Llama2cSource>> {
    let is_bin = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("bin"));
    let (config, src) = crate::formats::llama2c::open(path).map_err(|e| match e {
        // Not a .bin either: say what we looked for.
        crate::Error::Format { path, reason, .. } if !is_bin => crate::Error::Format {
            path,
            format: "model",
            reason: format!(
                "not recognised (expected an HF directory with config.json, a GGUF file, or a llama2.c .bin); read as llama2.c: {reason}"
            ),
        },
        e => e,
    })?;
    let vocab = src.header.vocab_size;
    let tok = match tok {
        Some(t) => Some(t),
        None => find_llama2c_tokenizer(path, vocab)?,
    };
    if let Some(t) = &tok {
        if t.vocab_size() != vocab {
            return Err(crate::Error::Tokenizer(format!(
                "tokenizer has {} tokens but {} declares vocab_size {vocab}",
                t.vocab_size(),
                path.display()
            )));
        }
    }
    Ok((config, src, tok))
}

/// llama2.c tokenizer next to `model`: `tokenizer.bin`, else `tok*.bin`
/// (sorted) whose vocabulary size matches the model's.
fn find_llama2c_tokenizer(model: &Path, vocab: usize) -> Result<Option<TextTokenizer>> {
    let dir = model.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let named = dir.join("tokenizer.bin");
    if named.is_file() && named != model {
        return TextTokenizer::from_llama2c(&named).map(Some);
    }
    let mut cands: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| crate::Error::Io { path: dir.to_path_buf(), source: e })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("tok") && name.ends_with(".bin") && p != model
        })
        .collect();
    cands.sort();
    for c in cands {
        if let Ok(t) = TextTokenizer::from_llama2c(&c) {
            if t.vocab_size() == vocab {
                return Ok(Some(t));
            }
        }
    }
    Ok(None)
}
