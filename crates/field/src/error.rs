//! Typed errors: every bad input is reported, never a panic.

use thiserror::Error;

/// Everything that can go wrong when measuring one head.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FieldError {
    /// The sequence is empty (n = 0).
    #[error("empty sequence: n = 0")]
    EmptySequence,
    /// The head dimension is zero (d = 0), or d_model = 0 for the weights.
    #[error("{what} = 0")]
    ZeroDim {
        /// Which dimension.
        what: &'static str,
    },
    /// A slice does not have the length its shape says.
    #[error("{what}: expected {expected} values, got {actual}")]
    Length {
        /// Which slice (`"q"`, `"k"`, `"w_q"`, `"w_k"`).
        what: &'static str,
        /// rows × columns claimed by the caller.
        expected: usize,
        /// Length of the slice.
        actual: usize,
    },
    /// A NaN or ±Inf value in the input.
    #[error("{what}: non-finite value at index {index}")]
    NonFinite {
        /// Which slice or scalar.
        what: &'static str,
        /// Flat index of the first bad value (0 for scalars).
        index: usize,
    },
    /// A sliding window of width 0 (every support would be empty).
    #[error("invalid sliding window: width must be at least 1, got 0")]
    InvalidWindow,
    /// A parameter out of its domain (soft-cap ≤ 0, max_check_rows = 0, ...).
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    /// A soft-capped field is only computed densely, up to `Params::max_dense_n`.
    #[error("soft-capped logits: the field is not low-rank and is computed densely; n = {n} exceeds max_dense_n = {max}")]
    SoftcapTooLong {
        /// Sequence length.
        n: usize,
        /// The limit in force.
        max: usize,
    },
    /// A computation needs the head's W_Q / W_K and they were not given.
    #[error("this basis needs the head's W_Q and W_K weights, which were not given")]
    MissingWeights,
    /// A projector built for one head shape is applied to another.
    #[error(
        "projector mismatch: projector is for d = {projector_d} (ALiBi: {projector_alibi}), head has d = {head_d} (ALiBi: {head_alibi})"
    )]
    ProjectorMismatch {
        /// Head dimension of the projector.
        projector_d: usize,
        /// Whether the projector has the ALiBi feature.
        projector_alibi: bool,
        /// Head dimension of the head.
        head_d: usize,
        /// Whether the head has an ALiBi bias.
        head_alibi: bool,
    },
    /// Rank-r rebuilding is defined for the bilinear field only.
    #[error("rank-r fidelity is not defined for soft-capped logits (the field is not bilinear)")]
    SoftcapUnsupported,
    /// faer's SVD did not converge.
    #[error("SVD did not converge")]
    Svd,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, FieldError>;
