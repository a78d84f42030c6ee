//! Read-only capture of each layer's queries and keys, exactly as the model
//! uses them in its attention dot products.
//!
//! The decoder calls [`Observer::on_layer`] once per layer, after Q and K are
//! final (projection biases, QK-norm and rotary applied) and before the
//! attention itself. The tensors are dropped after the observer returns.
//! With no observer, capture costs nothing.

/// The tensor type of captures and of [`Observer::transform_keys`], re-exported
/// so that observers outside this crate can name and build it.
pub use candle_core::Tensor;

pub use crate::arch::LogitTransform;

/// Everything one layer's attention logits depend on.
///
/// Shapes use t = tokens, h = query heads, h_kv = KV heads, d = d_head.
/// Query head `hq` reads KV head `hq / (h / h_kv)`.
pub struct LayerCapture<'a> {
    pub layer: usize,
    /// (h, t, d) f32: queries after biases, QK-norm and rotary.
    pub q: &'a Tensor,
    /// (h_kv, t, d) f32: keys after biases, QK-norm and rotary (not repeated for GQA).
    pub k: &'a Tensor,
    /// Logit scale s: the model's logit is s·q·k (+ bias).
    pub scale: f64,
    /// Sliding window w (query i sees i−w < j ≤ i), or `None` for plain causal.
    pub window: Option<usize>,
    /// ALiBi slopes per query head, if the model uses ALiBi.
    pub alibi_slopes: Option<&'a [f64]>,
    /// Non-linear transform applied to the logits before softmax.
    pub logit_transform: LogitTransform,
    /// (d_model, h·d) f32: the query projection as `x @ w_q` (no rotary);
    /// head `hq`'s W_Q^h is columns hq·d .. (hq+1)·d.
    pub w_q: &'a Tensor,
    /// (d_model, h_kv·d) f32: the key projection, likewise per KV head.
    pub w_k: &'a Tensor,
}

/// Error type observers may return; it aborts the forward pass.
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Receives each layer's capture during a forward pass.
pub trait Observer {
    /// Called once per layer, in order. An error aborts the forward pass.
    fn on_layer(&mut self, capture: &LayerCapture<'_>) -> Result<(), ObserverError>;

    /// The last layer this observer needs; the forward pass may stop after
    /// it when no logits are requested. `None` = all layers.
    fn last_layer(&self) -> Option<usize> {
        None
    }

    /// Called right after [`Observer::on_layer`] with the same keys
    /// (h_kv, t, d), post-rotary. A returned tensor of the same shape replaces
    /// K for this layer's attention (and only for that: the capture above
    /// already saw the model's own keys). Default: `None`, keys unchanged.
    fn transform_keys(&mut self, _layer: usize, _k: &Tensor) -> Result<Option<Tensor>, ObserverError> {
        Ok(None)
    }
}
