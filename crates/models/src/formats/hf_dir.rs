//! HF model directories: `config.json` + one or more `*.safetensors`
//! (sharded through `model.safetensors.index.json`), memory-mapped.
//! Names and layouts are kept exactly as stored; F32/F16/BF16 become f32.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

use super::{io_err, mmap_file};
use crate::formats::TensorSource;
use crate::{Error, Result};

const FORMAT: &str = "safetensors";

struct Shard {
    path: PathBuf,
    mmap: memmap2::Mmap,
    /// Byte offset of the data section (8 + header length).
    data_start: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte range in the shard.
    start: usize,
    end: usize,
}

/// Tensor source over the safetensors shards of one HF directory.
pub struct SafetensorsSource {
    dir: PathBuf,
    shards: Vec<Shard>,
    map: BTreeMap<String, Entry>,
}

/// Reads and checks `dir/config.json` (a JSON object with `model_type`).
pub fn read_config(dir: &Path) -> Result<Json> {
    let path = dir.join("config.json");
    let text = super::read_capped_string(&path, super::JSON_MAX_BYTES)?;
    let config: Json =
        serde_json::from_str(&text).map_err(|e| Error::Format { path: path.clone(), format: "config.json", reason: e.to_string() })?;
    if !matches!(config.get("model_type"), Some(Json::String(_))) {
        return Err(Error::Format { path, format: "config.json", reason: "no string `model_type` field".into() });
    }
    // Per-layer tables are sized from the layer count before any weight is
    // read (fuzz: 2^32 layers aborted on a 68 GB allocation in ArchSpec).
    for key in ["num_hidden_layers", "n_layer", "num_layers"] {
        if let Some(n) = config.get(key).and_then(Json::as_u64) {
            if n > MAX_LAYERS {
                return Err(Error::Format {
                    path,
                    format: "config.json",
                    reason: format!("`{key}` = {n} is implausible (more than {MAX_LAYERS} layers)"),
                });
            }
        }
    }
    Ok(config)
}

/// Pickled weight files transformers also reads; attnscope refuses them.
const PICKLED: &[&str] = &["pytorch_model.bin", "pytorch_model.bin.index.json"];

/// More layers than any real model has: the one bound of [`crate::arch::MAX_LAYERS`].
const MAX_LAYERS: u64 = crate::arch::MAX_LAYERS as u64;

/// The safetensors files of `dir`: the shards named by
/// `model.safetensors.index.json` if present, else `model.safetensors`, else
/// every `*.safetensors` in the directory.
pub fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = super::read_capped_string(&index, super::JSON_MAX_BYTES)?;
        let bad = |reason: String| Error::Format { path: index.clone(), format: "safetensors index", reason };
        let v: Json = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut files = BTreeSet::new();
        for (name, f) in map {
            let f = f.as_str().ok_or_else(|| bad(format!("`{name}` maps to a non-string")))?;
            if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                return Err(bad(format!("shard name `{f}` is not a plain file name")));
            }
            files.insert(dir.join(f));
        }
        return Ok(files.into_iter().collect());
    }
    // transformers reads `model.safetensors` when there is no index.
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    for entry in rd {
        let p = entry.map_err(|e| io_err(dir, e))?.path();
        if p.extension().is_some_and(|e| e == "safetensors") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        if let Some(pickled) = PICKLED.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
            return Err(Error::Format {
                path: pickled,
                format: "HF directory",
                reason: format!(
                    "pickled PyTorch weights are not read (unpickling can run code); convert them to safetensors, e.g. \
                     python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('{0}').save_pretrained('{0}')\"",
                    dir.display()
                ),
            });
        }
        return Err(Error::Format {
            path: dir.to_path_buf(),
            format: "HF directory",
            reason: "no *.safetensors files (and no model.safetensors.index.json)".into(),
        });
    }
    Ok(files)
}

impl SafetensorsSource {
    /// Maps and validates every shard (header JSON, offsets against the
    /// file length — done by `safetensors::read_metadata`).
    pub fn open(dir: &Path, files: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::new();
        let mut map = BTreeMap::new();
        for (i, path) in files.iter().enumerate() {
            let mmap = mmap_file(path)?;
            let (n, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| Error::Format {
                path: path.clone(),
                format: FORMAT,
                reason: format!("{e} (the file is {} bytes: truncated or corrupt)", mmap.len()),
            })?;
            let data_start = 8 + n;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                let entry = Entry { shard: i, dtype: info.dtype, shape: info.shape.clone(), start: data_start + s, end: data_start + e };
                if map.insert(name.clone(), entry).is_some() {
                    return Err(Error::Format {
                        path: path.clone(),
                        format: FORMAT,
                        reason: format!("tensor `{name}` appears in more than one shard"),
                    });
                }
            }
            shards.push(Shard { path: path.clone(), mmap, data_start });
        }
        Ok(Self { dir: dir.to_path_buf(), shards, map })
    }
}

impl SafetensorsSource {
    /// Rows `rows` (along the outermost dim) of tensor `name` as f32 of
    /// shape `shape`, then the mapped pages read handed back. A 0-D or 1-D
    /// tensor is one row.
    fn read_rows(&self, name: &str, e: &Entry, shape: &[usize], rows: impl Iterator<Item = u32>) -> Result<Tensor> {
        let shard = &self.shards[e.shard];
        let err = |reason: String| Error::Tensor { path: shard.path.clone(), name: name.to_string(), reason };
        let dtype = match e.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::Unsupported {
                    path: shard.path.clone(),
                    what: "safetensors dtype",
                    detail: format!("tensor `{name}` is {other:?} (supported: F32, F16, BF16)"),
                })
            }
        };
        debug_assert!(e.start >= shard.data_start);
        let raw = shard.mmap.get(e.start..e.end).ok_or_else(|| err("data range outside the file".into()))?;
        let n: usize = e.shape.iter().product();
        if raw.len() != n * dtype.size_in_bytes() {
            return Err(err(format!("{} bytes for shape {:?} of {dtype:?}", raw.len(), e.shape)));
        }
        let n_rows = e.shape.first().copied().unwrap_or(1).max(1);
        let row = raw.len() / n_rows;
        let t = if shape == e.shape.as_slice() {
            Tensor::from_raw_buffer(raw, dtype, shape, &Device::Cpu)?
        } else {
            let mut bytes = Vec::with_capacity(shape.iter().product::<usize>() * dtype.size_in_bytes());
            for r in rows {
                let r = r as usize;
                let b = raw.get(r * row..(r + 1) * row).ok_or_else(|| err(format!("has no row {r}")))?;
                bytes.extend_from_slice(b);
            }
            Tensor::from_raw_buffer(&bytes, dtype, shape, &Device::Cpu)?
        };
        let t = t.to_dtype(DType::F32)?;
        super::release(&shard.mmap, e.start, e.end - e.start);
        Ok(t)
    }
}

impl TensorSource for SafetensorsSource {
    fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.map.get(name).map(|e| e.shape.clone())
    }
    fn load(&self, name: &str) -> Result<Tensor> {
        let e = crate::formats::entry(&self.map, name, self)?;
        let n = e.shape.first().copied().unwrap_or(1);
        self.read_rows(name, e, &e.shape, (0..n).map(|r| r as u32))
    }
    fn load_rows(&self, name: &str, rows: &[u32]) -> Result<Tensor> {
        let e = crate::formats::entry(&self.map, name, self)?;
        if e.shape.len() != 2 {
            let t = self.load(name)?;
            let ids = Tensor::from_slice(rows, rows.len(), t.device())?;
            return Ok(t.index_select(&ids, 0)?);
        }
        self.read_rows(name, e, &[rows.len(), e.shape[1]], rows.iter().copied())
    }
    fn stored_bytes(&self, name: &str) -> Option<u64> {
        self.map.get(name).map(|e| (e.end - e.start) as u64)
    }
    fn describe(&self) -> String {
        if self.shards.len() == 1 {
            self.shards[0].path.display().to_string()
        } else {
            format!("{} ({} safetensors shards)", self.dir.display(), self.shards.len())
        }
    }
}
