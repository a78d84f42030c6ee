//! Typed errors for loading and running models. Every variant that comes
//! from a file names the file; the CLI prints the chain of causes as one
//! line and exits 2. A variant that wraps another error keeps it as its
//! `source()`, so callers can inspect the cause (an `io::ErrorKind`, a
//! candle error) instead of parsing a message.

use std::path::PathBuf;

/// `std::result::Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A boxed cause from a library whose error type is itself boxed
/// (tokenizers, observers).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong opening a checkpoint or running the decoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or mapping `path` failed (missing, not a regular file,
    /// permission, too large to read whole); `source` is the OS error.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not of the format it claims, or is corrupt/truncated.
    #[error("{path}: {format} file is invalid: {reason}")]
    Format { path: PathBuf, format: &'static str, reason: String },
    /// One tensor's entry in a file is unusable (bad type, offsets, size).
    #[error("{path}: tensor `{name}` {reason}")]
    Tensor { path: PathBuf, name: String, reason: String },
    /// The family's name table asks for a tensor the checkpoint lacks.
    #[error("tensor `{name}` not found in {source_desc}")]
    MissingTensor { name: String, source_desc: String },
    /// A tensor's shape disagrees with the config.
    #[error("tensor `{name}`: expected shape {expected:?}, found {actual:?}")]
    Shape { name: String, expected: Vec<usize>, actual: Vec<usize> },
    /// `model_type` is not one the decoder implements.
    #[error("unknown architecture `{found}`; supported: {supported}")]
    UnknownArchitecture { found: String, supported: String },
    /// A valid file uses a feature this crate does not read (a GGUF
    /// quantization type, a llama2.c version …).
    #[error("{path}: unsupported {what}: {detail}")]
    Unsupported { path: PathBuf, what: &'static str, detail: String },
    /// config.json lacks a field the decoder needs, or holds a value it
    /// cannot use (a static property of the checkpoint, never a runtime state).
    #[error("config: {0}")]
    Config(String),
    /// A tokenizer file is unusable, or none fits the model.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tokenizers library failed to encode or decode (`what`).
    #[error("tokenizer: {what} failed: {source}")]
    TokenizerCall { what: &'static str, source: BoxError },
    /// A tensor holds NaN or ±Inf (checked as it is read).
    #[error("{source_desc}: tensor `{name}` holds NaN or Inf values")]
    NonFinite { name: String, source_desc: String },
    /// The f32 form of a tensor is more than the system can allocate.
    #[error("{source_desc}: tensor `{name}` needs {bytes} bytes as f32, which the system cannot allocate")]
    Alloc { name: String, source_desc: String, bytes: u128 },
    /// A hub id could not be resolved, online or from the cache.
    #[error("hub: {0}")]
    Hub(String),
    /// A forward pass was asked to run over no tokens.
    #[error("forward pass over zero tokens")]
    EmptyInput,
    /// A token id is not below the model's vocabulary size.
    #[error("token id {id} is outside the model's vocabulary of {vocab}")]
    TokenOutOfRange { id: u32, vocab: usize },
    /// More tokens than a learned-position model has positions.
    #[error("{tokens} tokens exceed the model's {positions} learned positions")]
    TooManyTokens { tokens: usize, positions: usize },
    /// Rows asked of a 2-D tensor that it does not have.
    #[error("row {row} of tensor `{name}` {shape:?} does not exist")]
    RowOutOfRange { name: String, row: u32, shape: Vec<usize> },
    /// The observer handed Q/K returned an error (its own, kept as the source).
    #[error("observer: {0}")]
    Observer(#[source] BoxError),
    /// A broken internal invariant (a bug, not bad input): what broke.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A tensor operation failed in candle.
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}
