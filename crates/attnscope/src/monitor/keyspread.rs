//! `key_spread`: the share of a KV head's centred-key variance outside its
//! top direction, the one scale-sensitive key-side measure of the monitor
//! (docs/definitions.md, docs/monitor.md).
//!
//! For keys K (n × d, post-rotary, as the decoder captures them) centred over
//! the n positions, K_c = K − 1·k̄ᵀ, and λ₁ ≥ … ≥ λ_d the eigenvalues of the
//! d × d Gram K_cᵀK_c:
//! `key_spread = 1 − λ₁ / Σλ = 1 − ‖K_c‖₂² / ‖K_c‖_F²` (= 1 − 1 / stable rank),
//! in [0, 1 − 1/d]: 0 when one direction carries all the keys' variance,
//! 1 − 1/d when it spreads evenly over d directions. Cost O(n·d²) (the Gram)
//! + O(d³) (its eigenvalues).
//!
//! Why it exists: key_coherence (a leverage of [K, 1]) is invariant to any
//! invertible right transform of K, so a spike that makes one direction of
//! the keys dominate barely moves it. The keys of the trained heads here are
//! already dominated by one direction (stable rank 1.05–1.9), so the stable
//! rank itself moves little in ln (1.48 → 1.10 under the key fault); the share
//! outside the top direction moves several-fold (0.32 → 0.09), which the ln
//! band sees.

use std::collections::BTreeMap;

use models::{LayerCapture, Observer, ObserverError};

use crate::observer::FieldObserver;

/// 1 − λ₁ / Σλ of the centred keys `k` (n × d row-major). NaN when the
/// centred keys are all zero (n < 2 or identical keys) or not finite.
pub fn key_spread(k: &[f32], n: usize, d: usize) -> f64 {
    if n < 2 || d == 0 || k.len() != n * d || k.iter().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let g = field::gram(k, n, d, true);
    let trace: f64 = (0..d).map(|a| g[a * d + a]).sum();
    let top = sym_eigenvalues(g, d).into_iter().fold(0.0, f64::max);
    if top <= 0.0 || trace <= 0.0 {
        return f64::NAN;
    }
    (1.0 - top / trace).max(0.0)
}

/// Eigenvalues of a symmetric d × d matrix (row-major) by cyclic Jacobi
/// rotations, to rounding (off-diagonal mass below 1e-30 of the total).
fn sym_eigenvalues(mut a: Vec<f64>, d: usize) -> Vec<f64> {
    let total: f64 = a.iter().map(|v| v * v).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..d).flat_map(|p| (0..d).filter(move |&q| q != p).map(move |q| (p, q))).map(|(p, q)| a[p * d + q].powi(2)).sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J with the rotation in the (p, q) plane.
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..d).map(|i| a[i * d + i]).collect()
}

/// A [`FieldObserver`] that also records every KV head's [`key_spread`],
/// keyed by (layer, kv_head).
pub struct MonitorObserver<'a> {
    pub field: FieldObserver<'a>,
    pub key_spread: BTreeMap<(usize, usize), f64>,
}

impl Observer for MonitorObserver<'_> {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> Result<(), ObserverError> {
        if self.field.layers.contains(cap.layer) {
            let (hkv, n, d) = cap.k.dims3()?;
            let k = cap.k.flatten_all()?.to_vec1::<f32>()?;
            for kv in 0..hkv {
                self.key_spread.insert((cap.layer, kv), key_spread(&k[kv * n * d..(kv + 1) * n * d], n, d));
            }
        }
        self.field.on_layer(cap)
    }

    fn last_layer(&self) -> Option<usize> {
        self.field.last_layer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys whose centred columns are orthogonal with norms² s_c: 1 − max s / Σs.
    #[test]
    fn spread_of_known_spectrum() {
        let (n, d) = (8usize, 4usize);
        let scales = [3.0f32, 1.0, 2.0, 0.5];
        // Column c is scales[c] × a ±1 pattern (Walsh functions: orthogonal, mean 0).
        let walsh = |c: usize, i: usize| if ((i >> c) & 1) == 0 { 1.0f32 } else { -1.0 };
        let pattern = |c: usize, i: usize| if c < 3 { walsh(c, i) } else { walsh(0, i) * walsh(1, i) };
        let k: Vec<f32> = (0..n).flat_map(|i| (0..d).map(move |c| 5.0 + scales[c] * pattern(c, i))).collect();
        let s2: Vec<f64> = scales.iter().map(|&s| (s as f64).powi(2)).collect();
        let want = 1.0 - 9.0 / s2.iter().sum::<f64>();
        assert!((key_spread(&k, n, d) - want).abs() < 1e-9, "{} vs {want}", key_spread(&k, n, d));
    }

    #[test]
    fn rotation_invariant_and_rank_one() {
        // A rotated copy has the same value; keys on one line (plus a shared offset) give 0.
        let (n, d) = (16usize, 3usize);
        let k: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 101) as f32 / 50.0) - 1.0).collect();
        let (c, s) = (0.6f32, 0.8f32);
        let rot: Vec<f32> = (0..n).flat_map(|i| [c * k[i * d] - s * k[i * d + 1], s * k[i * d] + c * k[i * d + 1], k[i * d + 2]]).collect();
        let (a, b) = (key_spread(&k, n, d), key_spread(&rot, n, d));
        assert!((a - b).abs() < 1e-6 * a && a > 0.0 && a <= 2.0 / 3.0, "{a} vs {b}");
        let line: Vec<f32> = (0..n).flat_map(|i| [1.0 + i as f32, 2.0 - 2.0 * i as f32, 0.5]).collect();
        assert!(key_spread(&line, n, d).abs() < 1e-9);
        assert!(key_spread(&[1.0; 6], 2, 3).is_nan());
    }

    #[test]
    fn jacobi_matches_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1.
        let mut e = sym_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2);
        e.sort_by(f64::total_cmp);
        assert!((e[0] - 1.0).abs() < 1e-12 && (e[1] - 3.0).abs() < 1e-12, "{e:?}");
    }
}
