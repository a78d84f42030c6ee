//! Real autoregressive LMs in, exact per-head Q/K out.
//!
//! Data flows one way: a model source (HF directory, GGUF file, llama2.c
//! checkpoint, or hub id) is read into a [`Checkpoint`]: an HF-style
//! `config.json` value plus tensors under their HF names (kept in the mapped
//! file in their stored type, dequantized to f32 when read), plus a
//! [`TextTokenizer`]. Every format is normalised to that one shape, the way
//! transformers itself loads GGUF. The decoder then reads only HF names and
//! HF config fields, one layer at a time.

pub mod alloc;
pub mod arch;
pub mod capture;
pub mod checkpoint;
pub mod decoder;
pub mod error;
pub mod expf;
pub mod formats;
pub mod fused;
pub mod host;
pub mod hub;
pub mod matmul;
pub mod paths;
pub mod profile;
pub mod rope;
mod softmax;
pub mod synth;
pub mod tokenizer;
pub mod weights;

// The curated API: what a caller needs to open a checkpoint, run the
// decoder and observe its queries and keys. The modules stay public for the
// format-level pieces (GGUF readers, tokenizer internals) that tools use.
pub use arch::{ArchSpec, Family, LogitTransform};
pub use capture::{LayerCapture, Observer, ObserverError};
pub use checkpoint::{Checkpoint, Format, TensorStore};
pub use decoder::{Logits, Model};
pub use error::{BoxError, Error, Result};
pub use formats::memory::MemorySource;
pub use formats::TensorSource;
pub use tokenizer::TextTokenizer;
pub use weights::{weight_specs, WeightSpec};
