//! In-memory tensors under HF names as a [`crate::formats::TensorSource`]:
//! lets a training loop run its live weights (candle `Var`s, gradients
//! tracked) through the same [`crate::Checkpoint`] → [`crate::Model`] path as
//! files on disk.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::formats::TensorSource;
use crate::{Error, Result};

/// Tensors held in memory, by HF name. `load` returns the tensor itself
/// (shared storage, same autograd identity), not a copy, so a caller that
/// updates them in place (an optimizer step on candle `Var`s) is seen by
/// every later read.
pub struct MemorySource {
    tensors: BTreeMap<String, Tensor>,
    desc: String,
}

impl MemorySource {
    /// Wraps `tensors`, checking each for NaN/Inf once, here
    /// ([`Error::NonFinite`] names the first bad one). After that the
    /// tensors are the caller's: one that changes them in place owns their
    /// finiteness (reads do not check again, see
    /// [`TensorSource::prechecked`]).
    pub fn new(tensors: BTreeMap<String, Tensor>, desc: impl Into<String>) -> Result<Self> {
        let desc = desc.into();
        for (name, t) in &tensors {
            if !crate::host::all_finite(t)? {
                return Err(Error::NonFinite { name: name.clone(), source_desc: desc.clone() });
            }
        }
        Ok(Self { tensors, desc })
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
        self.tensors.get(name).cloned().ok_or_else(|| Error::MissingTensor { name: name.to_string(), source_desc: self.desc.clone() })
    }
    fn describe(&self) -> String {
        self.desc.clone()
    }
    fn resident(&self) -> bool {
        true
    }
    fn prechecked(&self) -> bool {
        true
    }
}
