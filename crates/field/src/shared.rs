//! Work that several heads share, computed once and handed to [`crate::analyze`]
//! (factored method only; the dense reference always computes everything itself).
//!
//! * [`KeyFactor`]: the key side of one KV head on one sequence, the leverage
//!   scores of B = [K, 1], the R factor of the centred [K − 1k̄ᵀ, 1] and k̄. With
//!   grouped-query attention every query head of a group reads the same K, so
//!   the group computes it once (SmolLM2-135M: 9 query heads on 3 KV heads).
//! * [`learned_spectrum`]: σ(W_Q W_Kᵀ) of one head. It depends on the weights
//!   only, so a caller that analyses several texts with the same model can
//!   compute it once per (layer, head).
//!
//! Both are the very computations [`crate::analyze`] runs without them (same
//! code, same order), so handing them in changes no result, not even in the
//! last bit (tested).

use crate::error::{FieldError, Result};
use crate::features::key_mean;
use crate::input::{HeadWeights, Values};
use crate::leverage::{self, Leverage};
use faer::Mat;

/// Leverage scores and the R factor of the keys of one KV head on one
/// sequence (n × d), for every query head that reads these keys
/// ([`crate::HeadInput::with_key_factor`]). O(n·d²) to build, O(n + d²) memory.
///
/// It borrows the keys it was built from, so while it lives they can be
/// neither freed nor changed, and "the same keys" (same slice: address,
/// length, element type) is a sound check.
#[derive(Debug)]
pub struct KeyFactor<'k> {
    n: usize,
    d: usize,
    /// The K slice it was built from.
    keys: Values<'k>,
    pub(crate) leverage: Leverage,
    /// k̄, the mean key ([`key_mean`]), length d.
    pub(crate) mean: Vec<f64>,
    /// R factor of the thin QR of [K − 1k̄ᵀ, 1], (d + 1) × (d + 1) upper triangular.
    pub(crate) r: Mat<f64>,
}

/// Whether `a` and `b` are the very same slice (not merely equal values).
fn same_slice(a: &Values<'_>, b: &Values<'_>) -> bool {
    match (a, b) {
        (Values::F32(a), Values::F32(b)) => std::ptr::eq(*a, *b),
        (Values::F64(a), Values::F64(b)) => std::ptr::eq(*a, *b),
        _ => false,
    }
}

impl<'k> KeyFactor<'k> {
    /// Factors the keys `k` (n × d, row-major, finite). Errors as
    /// [`crate::analyze`] would report them for these keys.
    pub fn new(k: impl Into<Values<'k>>, n: usize, d: usize) -> Result<Self> {
        let k = k.into();
        if n == 0 {
            return Err(FieldError::EmptySequence);
        }
        if d == 0 {
            return Err(FieldError::ZeroDim { what: "d" });
        }
        k.check("k", n, d)?;
        let mean = key_mean(&k, n, d);
        let (leverage, r) = factor(&k, n, d, &mean)?;
        Ok(KeyFactor { n, d, keys: k, leverage, mean, r })
    }

    /// Ok when this factor was built from exactly the slice `k` (n × d).
    pub(crate) fn check(&self, k: &Values<'_>, n: usize, d: usize) -> Result<()> {
        if (self.n, self.d) != (n, d) || !same_slice(&self.keys, k) {
            return Err(FieldError::InvalidParam("the key factor was built from other keys than this head's K".into()));
        }
        Ok(())
    }
}

/// Leverage of [K − 1k̄ᵀ, 1] (never the ALiBi column: same span as [K, 1]) and
/// its R factor: the one routine behind both [`KeyFactor::new`] and the
/// factored analysis without one.
/// `mean` is k̄ from [`key_mean`].
pub(crate) fn factor(k: &Values<'_>, n: usize, d: usize, mean: &[f64]) -> Result<(Leverage, Mat<f64>)> {
    leverage::factored(n, d + 1, |j, t| if t < d { k.get(j * d + t) - mean[t] } else { 1.0 })
}

/// Singular values of the head's learned interaction M = W_Q W_Kᵀ, largest
/// first, min(d_model, d) of them: exactly what [`crate::analyze`] (factored)
/// reports as `spectrum_learned`. Hand them back with
/// [`crate::HeadInput::with_learned_spectrum`]. O(d_model·d²).
pub fn learned_spectrum(w: &HeadWeights<'_>, d: usize) -> Result<Vec<f64>> {
    check_weights(w, d)?;
    crate::spectrum::learned_sv_factored(w, d)
}

/// Shapes and finiteness of W_Q, W_K (d_model × d each).
pub(crate) fn check_weights(w: &HeadWeights<'_>, d: usize) -> Result<()> {
    if d == 0 {
        return Err(FieldError::ZeroDim { what: "d" });
    }
    if w.d_model == 0 {
        return Err(FieldError::ZeroDim { what: "d_model" });
    }
    w.w_q.check("w_q", w.d_model, d)?;
    w.w_k.check("w_k", w.d_model, d)
}

#[cfg(test)]
mod tests {
    use crate::{analyze, FieldError, HeadInput, KeyFactor, Params};

    fn data(n: usize, d: usize, seed: usize) -> Vec<f32> {
        (0..n * d).map(|x| (((x * 7919 + seed * 131) % 211) as f32 / 70.0 - 1.5) * (1.0 + (x % d) as f32 / d as f32)).collect()
    }

    /// Two query heads reading one K (GQA), plain, windowed and with ALiBi: the
    /// shared key factor and the precomputed learned spectrum change no bit.
    #[test]
    fn shared_work_gives_bit_identical_fields() {
        let (n, d, d_model) = (300, 8, 24);
        let k = data(n, d, 1);
        let (wq, wk) = (data(d_model, d, 2), data(d_model, d, 3));
        let kf = KeyFactor::new(&k, n, d).unwrap();
        let every = Params { keep_key_energy: true, keep_leverage: true, ..Params::default() };
        for (seed, window, alibi) in [(4, None, None), (5, Some(37), None), (6, None, Some(0.25)), (7, Some(300), Some(0.5))] {
            let q = data(n, d, seed);
            let mut head = HeadInput::new(&q, &k, n, d, 0.35).with_weights(&wq, &wk, d_model);
            if let Some(w) = window {
                head = head.with_window(w);
            }
            if let Some(m) = alibi {
                head = head.with_alibi(m);
            }
            let sv = super::learned_spectrum(head.weights.as_ref().unwrap(), d).unwrap();
            let want = analyze(&head, &every).unwrap();
            let got = analyze(&head.with_key_factor(&kf).with_learned_spectrum(&sv), &every).unwrap();
            assert_eq!(serde_json::to_string(&got).unwrap(), serde_json::to_string(&want).unwrap(), "seed {seed}");
        }
    }

    /// A factor of other keys, or a spectrum of the wrong length or without
    /// weights, is an error.
    #[test]
    fn mismatched_shared_work_is_an_error() {
        let (n, d, d_model) = (40, 4, 12);
        let (q, k) = (data(n, d, 1), data(n, d, 2));
        let other = k.clone();
        let (wq, wk) = (data(d_model, d, 3), data(d_model, d, 4));
        let kf = KeyFactor::new(&other, n, d).unwrap();
        let head = HeadInput::new(&q, &k, n, d, 0.5).with_weights(&wq, &wk, d_model);
        assert!(matches!(analyze(&head.with_key_factor(&kf), &Params::default()), Err(FieldError::InvalidParam(_))));
        let sv = vec![1.0; d - 1];
        assert!(matches!(analyze(&head.with_learned_spectrum(&sv), &Params::default()), Err(FieldError::InvalidParam(_))));
        let sv = vec![1.0; d];
        let bare = HeadInput::new(&q, &k, n, d, 0.5).with_learned_spectrum(&sv);
        assert_eq!(analyze(&bare, &Params::default()).unwrap_err(), FieldError::MissingWeights);
        assert!(matches!(KeyFactor::new(&k, n, d + 1), Err(FieldError::Length { .. })));
    }
}
