//! The input of one head: Q, K (row-major, f32 or f64), the logit scale, the
//! causal support, an optional ALiBi slope, a logit transform and optionally
//! the head's projection weights.

use crate::error::{FieldError, Result};

/// A borrowed row-major matrix in the precision the model used.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// Single precision (the model ran in f32; its softmax is mimicked in f32).
    F32(&'a [f32]),
    /// Double precision.
    F64(&'a [f64]),
}

impl<'a> From<&'a [f32]> for Values<'a> {
    fn from(v: &'a [f32]) -> Self {
        Values::F32(v)
    }
}
impl<'a> From<&'a [f64]> for Values<'a> {
    fn from(v: &'a [f64]) -> Self {
        Values::F64(v)
    }
}
impl<'a> From<&'a Vec<f32>> for Values<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Values::F32(v)
    }
}
impl<'a> From<&'a Vec<f64>> for Values<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        Values::F64(v)
    }
}

impl Values<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }
    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True for single precision.
    pub fn is_f32(&self) -> bool {
        matches!(self, Values::F32(_))
    }
    /// Value `i` widened to f64 (exact for f32).
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Values::F32(v) => v[i] as f64,
            Values::F64(v) => v[i],
        }
    }
    /// All values widened to f64 (exact).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Values::F64(v) => v.to_vec(),
        }
    }
    /// All values rounded to f32 (exact for f32 input).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Values::F32(v) => v.to_vec(),
            Values::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// Σx², widened to f64: 8 independent accumulators (a fixed order, so
    /// deterministic; it vectorises, where one running sum waited on each add).
    pub(crate) fn sum_squares(&self) -> f64 {
        fn lanes<T: Copy>(v: &[T], f: impl Fn(T) -> f64) -> f64 {
            const L: usize = 8;
            let mut acc = [0.0f64; L];
            let chunks = v.chunks_exact(L);
            let tail: f64 = chunks.remainder().iter().map(|&x| f(x) * f(x)).sum();
            for c in chunks {
                for l in 0..L {
                    acc[l] += f(c[l]) * f(c[l]);
                }
            }
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
        }
        match self {
            Values::F32(v) => lanes(v, |x| x as f64),
            Values::F64(v) => lanes(v, |x| x),
        }
    }
    /// Ok when there are rows × cols values, all finite.
    pub(crate) fn check(&self, what: &'static str, rows: usize, cols: usize) -> Result<()> {
        let expected = rows.checked_mul(cols).ok_or(FieldError::Length { what, expected: usize::MAX, actual: self.len() })?;
        if self.len() != expected {
            return Err(FieldError::Length { what, expected, actual: self.len() });
        }
        // a branch-free pass first (it vectorises); the position only on failure
        let bad = match self {
            Values::F32(v) if !v.iter().fold(true, |ok, x| ok & x.is_finite()) => v.iter().position(|x| !x.is_finite()),
            Values::F64(v) if !v.iter().fold(true, |ok, x| ok & x.is_finite()) => v.iter().position(|x| !x.is_finite()),
            _ => None,
        };
        match bad {
            Some(index) => Err(FieldError::NonFinite { what, index }),
            None => Ok(()),
        }
    }
}

/// The causal support C_i of query i.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Support {
    /// C_i = {j ≤ i}.
    #[default]
    Causal,
    /// Sliding window: C_i = {i − w < j ≤ i}; w ≥ 1 (w ≥ n is plain causal).
    Window(usize),
}

/// A non-linear transform applied to the logits before the softmax.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum LogitTransform {
    /// The logits go to the softmax as they are.
    #[default]
    None,
    /// Soft-capping S' = c·tanh(S/c), c > 0 (Gemma 2 style). Breaks the rank bound.
    Softcap(f64),
}

/// The head's projection weights W_Q^h and W_K^h, each d_model × d, row-major,
/// so that q = x·W_Q before rotary (used for the learned interaction M = W_Q W_Kᵀ).
#[derive(Clone, Copy, Debug)]
pub struct HeadWeights<'a> {
    /// W_Q^h, d_model × d, row-major.
    pub w_q: Values<'a>,
    /// W_K^h, d_model × d, row-major (the KV head that this query head reads).
    pub w_k: Values<'a>,
    /// Model width.
    pub d_model: usize,
}

/// One head on one sequence: everything the field depends on.
#[derive(Clone, Copy, Debug)]
pub struct HeadInput<'a> {
    /// Queries q_i, n × d row-major, exactly as the model's dot product uses them.
    pub q: Values<'a>,
    /// Keys k_j, n × d row-major, exactly as the model's dot product uses them.
    pub k: Values<'a>,
    /// Sequence length.
    pub n: usize,
    /// Head dimension.
    pub d: usize,
    /// Logit scale s (usually 1/√d).
    pub scale: f64,
    /// Causal support.
    pub support: Support,
    /// ALiBi slope m > 0: bias b_ij = −m·(i − j) (extended linearly to j > i).
    pub alibi_slope: Option<f64>,
    /// Logit transform before the softmax.
    pub transform: LogitTransform,
    /// Optional W_Q^h, W_K^h for the learned-interaction measures.
    pub weights: Option<HeadWeights<'a>>,
    /// Optional σ(W_Q W_Kᵀ) computed beforehand by [`crate::learned_spectrum`]
    /// from these weights (the factored method then skips that work).
    pub learned_spectrum: Option<&'a [f64]>,
    /// Optional key side built beforehand from this K by [`crate::KeyFactor::new`]
    /// (the factored method then skips the QR of B and the leverage).
    pub key_factor: Option<&'a crate::KeyFactor<'a>>,
}

impl<'a> HeadInput<'a> {
    /// A plain causal head without bias, transform or weights.
    pub fn new(q: impl Into<Values<'a>>, k: impl Into<Values<'a>>, n: usize, d: usize, scale: f64) -> Self {
        HeadInput {
            q: q.into(),
            k: k.into(),
            n,
            d,
            scale,
            support: Support::Causal,
            alibi_slope: None,
            transform: LogitTransform::None,
            weights: None,
            learned_spectrum: None,
            key_factor: None,
        }
    }
    /// Use a sliding window of width `w`.
    pub fn with_window(mut self, w: usize) -> Self {
        self.support = Support::Window(w);
        self
    }
    /// Add an ALiBi bias with this slope.
    pub fn with_alibi(mut self, slope: f64) -> Self {
        self.alibi_slope = Some(slope);
        self
    }
    /// Soft-cap the logits at `c`.
    pub fn with_softcap(mut self, c: f64) -> Self {
        self.transform = LogitTransform::Softcap(c);
        self
    }
    /// Attach W_Q^h and W_K^h (each d_model × d, row-major).
    pub fn with_weights(mut self, w_q: impl Into<Values<'a>>, w_k: impl Into<Values<'a>>, d_model: usize) -> Self {
        self.weights = Some(HeadWeights { w_q: w_q.into(), w_k: w_k.into(), d_model });
        self
    }

    /// Use σ(W_Q W_Kᵀ) from [`crate::learned_spectrum`] of this head's weights
    /// (which must be attached too: the dense method still reads them).
    pub fn with_learned_spectrum(mut self, sv: &'a [f64]) -> Self {
        self.learned_spectrum = Some(sv);
        self
    }
    /// Use the key side `kf`, built by [`crate::KeyFactor::new`] from this very K
    /// slice (a factor of other keys is an error, never a wrong result).
    pub fn with_key_factor(mut self, kf: &'a crate::KeyFactor<'a>) -> Self {
        self.key_factor = Some(kf);
        self
    }

    /// Checks shapes, finiteness and parameter domains; every analysis calls it first.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(FieldError::EmptySequence);
        }
        if self.d == 0 {
            return Err(FieldError::ZeroDim { what: "d" });
        }
        self.q.check("q", self.n, self.d)?;
        self.k.check("k", self.n, self.d)?;
        if !self.scale.is_finite() {
            return Err(FieldError::NonFinite { what: "scale", index: 0 });
        }
        if let Support::Window(0) = self.support {
            return Err(FieldError::InvalidWindow);
        }
        if let Some(m) = self.alibi_slope {
            if !m.is_finite() {
                return Err(FieldError::NonFinite { what: "alibi_slope", index: 0 });
            }
        }
        if let LogitTransform::Softcap(c) = self.transform {
            if !c.is_finite() {
                return Err(FieldError::NonFinite { what: "softcap", index: 0 });
            }
            if c <= 0.0 {
                return Err(FieldError::InvalidParam(format!("softcap must be > 0, got {c}")));
            }
        }
        if let Some(w) = &self.weights {
            if w.d_model == 0 {
                return Err(FieldError::ZeroDim { what: "d_model" });
            }
            w.w_q.check("w_q", w.d_model, self.d)?;
            w.w_k.check("w_k", w.d_model, self.d)?;
        }
        if let Some(sv) = self.learned_spectrum {
            let w = self.weights.as_ref().ok_or(FieldError::MissingWeights)?;
            let want = w.d_model.min(self.d);
            if sv.len() != want || sv.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(FieldError::InvalidParam(format!(
                    "learned spectrum: expected {want} finite non-negative singular values, got {}",
                    sv.len()
                )));
            }
        }
        if let Some(kf) = self.key_factor {
            kf.check(&self.k, self.n, self.d)?;
        }
        Ok(())
    }

    /// The support C_i as the half-open range `lo..i+1`.
    #[inline]
    pub fn support_range(&self, i: usize) -> std::ops::Range<usize> {
        let lo = match self.support {
            Support::Causal => 0,
            Support::Window(w) => (i + 1).saturating_sub(w),
        };
        lo..i + 1
    }

    /// The rows that see key j, R_j = {i : j ∈ C_i}, as a half-open range.
    #[inline]
    pub fn readers_range(&self, j: usize) -> std::ops::Range<usize> {
        let hi = match self.support {
            Support::Causal => self.n,
            Support::Window(w) => j.saturating_add(w).min(self.n),
        };
        j..hi
    }

    /// Feature dimension p of the bilinear field: d + 1, plus 1 with ALiBi.
    pub fn feature_dim(&self) -> usize {
        self.d + 1 + usize::from(self.alibi_slope.is_some())
    }

    /// True when the model's logits were computed in f32 (either Q or K is f32).
    pub fn model_is_f32(&self) -> bool {
        self.q.is_f32() || self.k.is_f32()
    }
}

#[cfg(test)]
mod tests {
    use super::Values;

    /// The 8-lane Σx² equals the plain sum to rounding, for every length
    /// around the lane width, f32 and f64.
    #[test]
    fn sum_squares_matches_the_plain_sum() {
        for len in [0usize, 1, 7, 8, 9, 17, 1000] {
            let x: Vec<f64> = (0..len).map(|i| ((i * 7919 % 101) as f64 - 50.0) / 7.0).collect();
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let want: f64 = x.iter().map(|v| v * v).sum();
            let want32: f64 = x32.iter().map(|&v| (v as f64) * (v as f64)).sum();
            assert!((Values::from(&x).sum_squares() - want).abs() <= 1e-13 * want.max(1.0), "{len}");
            assert!((Values::from(&x32).sum_squares() - want32).abs() <= 1e-13 * want32.max(1.0), "{len} f32");
        }
    }
}
