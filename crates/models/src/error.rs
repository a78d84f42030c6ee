//! Typed errors for loading and running models. Every variant that comes
//! from a file names the file; the CLI prints `Display` as one line and exits 2.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not of the format it claims, or is corrupt/truncated.
    #[error("{path}: {format} file is invalid: {reason}")]
    Format { path: PathBuf, format: &'static str, reason: String },
    #[error("{path}: tensor `{name}` {reason}")]
    Tensor { path: PathBuf, name: String, reason: String },
    #[error("tensor `{name}` not found in {source_desc}")]
    MissingTensor { name: String, source_desc: String },
    #[error("tensor `{name}`: expected shape {expected:?}, found {actual:?}")]
    Shape { name: String, expected: Vec<usize>, actual: Vec<usize> },
    #[error("unknown architecture `{found}`; supported: {supported}")]
    UnknownArchitecture { found: String, supported: String },
    #[error("{path}: unsupported {what}: {detail}")]
    Unsupported { path: PathBuf, what: &'static str, detail: String },
    #[error("config: {0}")]
    Config(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{source_desc}: tensor `{name}` holds NaN or Inf values")]
    NonFinite { name: String, source_desc: String },
    /// The f32 form of a tensor is more than the system can allocate.
    #[error("{source_desc}: tensor `{name}` needs {bytes} bytes as f32, which the system cannot allocate")]
    Alloc { name: String, source_desc: String, bytes: u128 },
    #[error("hub: {0}")]
    Hub(String),
    #[error("observer: {0}")]
    Observer(String),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}
