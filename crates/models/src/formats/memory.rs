//! In-memory tensors under HF names as a [`crate::formats::TensorSource`]:
//! lets a training loop run its live weights (candle `Var`s, gradients
//! tracked) through the same [`crate::Checkpoint`] → [`crate::Model`] path as
//! files on disk.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::formats::TensorSource;
use crate::{Error, Result};

/// Tensors held in memory, by HF name. `load` returns the tensor itself
/// (shared storage, same autograd identity), not a copy.
pub struct MemorySource {
    tensors: BTreeMap<String, Tensor>,
    desc: String,
}

impl MemorySource {
    pub fn new(tensors: BTreeMap<String, Tensor>, desc: impl Into<String>) -> Self {
        Self { tensors, desc: desc.into() }
    }
}

impl TensorSource for MemorySource {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.dims().to_vec())
    }
    fn load(&self, name: &str) -> Result<Tensor> {
        self.tensors.get(name).cloned().ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            source_desc: self.desc.clone(),
        })
    }
    fn describe(&self) -> String {
        self.desc.clone()
    }
    fn resident(&self) -> bool {
        true
    }
}
