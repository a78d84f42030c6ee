//! Spectral summaries of a list of singular values (docs/definitions.md §2–3) and the learned
//! interaction M = W_Q W_Kᵀ of a head.

use crate::error::Result;
use crate::input::HeadWeights;
use crate::linalg::{householder_r, matmul, singular_values};
use faer::{Mat, MatRef};

/// Summaries of one singular spectrum.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SpectrumStats {
    pub numerical_rank: usize,
    pub k90: usize,
    pub k99: usize,
    pub effective_rank: f64,
    pub stable_rank: f64,
}

/// Relative slack on the 90 % / 99 % thresholds, so that exactly tied spectra
/// (e.g. ten equal values, 90 % reached at k = 9 up to rounding) give the same
/// k in every implementation.
const K_SLACK: f64 = 1e-9;

/// Fewest leading components whose Σσ² reaches `frac` of the total (0 if all zero).
pub(crate) fn k_energy(sv: &[f64], frac: f64) -> usize {
    let total: f64 = sv.iter().map(|s| s * s).sum();
    if total <= 0.0 {
        return 0;
    }
    let target = frac * total * (1.0 - K_SLACK);
    let mut cum = 0.0;
    for (k, s) in sv.iter().enumerate() {
        cum += s * s;
        if cum >= target {
            return k + 1;
        }
    }
    sv.len()
}

/// exp(−Σ p log p) with p_k = σ_k / Σσ; zero components contribute 0; 0 for an all-zero spectrum.
pub(crate) fn effective_rank(sv: &[f64]) -> f64 {
    let total: f64 = sv.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = sv
        .iter()
        .filter(|&&s| s > 0.0)
        .map(|&s| {
            let p = s / total;
            -p * p.ln()
        })
        .sum();
    h.exp()
}

/// Σσ² / σ₁² (0 for an all-zero spectrum).
pub(crate) fn stable_rank(sv: &[f64]) -> f64 {
    match sv.first() {
        Some(&s1) if s1 > 0.0 => sv.iter().map(|s| s * s).sum::<f64>() / (s1 * s1),
        _ => 0.0,
    }
}

/// The numerical-rank tolerance of an r × c matrix with largest singular
/// value `s1`: σ₁·max(r, c)·ε_f64. Singular values at or below it are rounding
/// noise (numerical rank, pseudo-inverses, key-side projectors).
pub fn rank_tolerance(s1: f64, rows: usize, cols: usize) -> f64 {
    s1 * (rows.max(cols) as f64) * f64::EPSILON
}

/// #σ > [`rank_tolerance`]`(σ₁, n, d)`.
pub(crate) fn numerical_rank(sv: &[f64], n: usize, d: usize) -> usize {
    let s1 = sv.first().copied().unwrap_or(0.0);
    let tol = rank_tolerance(s1, n, d);
    sv.iter().filter(|&&s| s > tol && s > 0.0).count()
}

/// True when σ₁ is at the rounding level of the logits it came from:
/// σ₁ ≤ max(n, d)·ε·`logit_norm`, with `logit_norm` a bound on ‖S‖_F
/// (see [`logit_norm_bound`]). Such a field is reported as exactly zero.
pub(crate) fn is_numerically_zero(s1: f64, n: usize, d: usize, logit_norm: f64) -> bool {
    s1 <= (n.max(d) as f64) * f64::EPSILON * logit_norm
}

/// Bound on ‖S‖_F: ‖s·Q‖_F·‖K‖_F + |slope|·n² (the ALiBi term bounds ‖[m(j−i)]‖_F).
pub(crate) fn logit_norm_bound(q_norm: f64, k_norm: f64, scale: f64, slope: Option<f64>, n: usize) -> f64 {
    scale.abs() * q_norm * k_norm + slope.map_or(0.0, |m| m.abs() * (n as f64) * (n as f64))
}

/// All summaries of a spectrum (already zeroed if the field is numerically zero).
pub(crate) fn stats(sv: &[f64], n: usize, d: usize) -> SpectrumStats {
    SpectrumStats {
        numerical_rank: numerical_rank(sv, n, d),
        k90: k_energy(sv, 0.90),
        k99: k_energy(sv, 0.99),
        effective_rank: effective_rank(sv),
        stable_rank: stable_rank(sv),
    }
}

fn weight_mat(w: &crate::input::Values<'_>, rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| w.get(i * cols + j))
}

/// Singular values of M = W_Q W_Kᵀ (d_model × d_model) from thin QRs
/// W_Q = Q1 R1, W_K = Q2 R2: σ(M) = σ(R1 R2ᵀ); min(d_model, d) values, O(d_model·d²).
pub(crate) fn learned_sv_factored(w: &HeadWeights<'_>, d: usize) -> Result<Vec<f64>> {
    let wq = weight_mat(&w.w_q, w.d_model, d);
    let wk = weight_mat(&w.w_k, w.d_model, d);
    let r1 = householder_r(wq.as_ref());
    let r2 = householder_r(wk.as_ref());
    let core = matmul(r1.as_ref(), r2.as_ref().transpose());
    crate::small_svd::small_singular_values(core.as_ref())
}

/// Reference: forms M = W_Q W_Kᵀ (d_model × d_model) and takes its SVD; the top
/// min(d_model, d) values (the rest are rounding noise of a rank-≤d matrix).
pub(crate) fn learned_sv_dense(w: &HeadWeights<'_>, d: usize) -> Result<Vec<f64>> {
    let wq = weight_mat(&w.w_q, w.d_model, d);
    let wk = weight_mat(&w.w_k, w.d_model, d);
    let m = matmul(wq.as_ref(), wk.as_ref().transpose());
    let mut sv = singular_values(m.as_ref())?;
    sv.truncate(w.d_model.min(d));
    Ok(sv)
}

/// k90, effective rank of the learned spectrum, and the spectral gap.
pub(crate) fn learned_stats(sv: &[f64], effective_rank_field: f64) -> (usize, f64, Option<f64>) {
    let k = k_energy(sv, 0.90);
    let e = effective_rank(sv);
    let gap = if effective_rank_field > 0.0 { Some(e / effective_rank_field) } else { None };
    (k, e, gap)
}

/// Reads a row-major n×p slice as a faer matrix view.
pub(crate) fn rows_view(data: &[f64], n: usize, p: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(data, n, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_energy_counts_fewest_components() {
        assert_eq!(k_energy(&[3.0, 1.0], 0.9), 1); // 9/10 = 0.9 exactly
        assert_eq!(k_energy(&[1.0; 10], 0.9), 9);
        assert_eq!(k_energy(&[1.0; 10], 0.99), 10);
        assert_eq!(k_energy(&[0.0, 0.0], 0.9), 0);
    }

    #[test]
    fn effective_rank_of_flat_spectrum_is_its_length() {
        assert!((effective_rank(&[2.0; 7]) - 7.0).abs() < 1e-12);
        assert!((effective_rank(&[5.0, 0.0, 0.0]) - 1.0).abs() < 1e-15);
        assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn stable_rank_and_numerical_rank() {
        assert!((stable_rank(&[2.0, 1.0]) - 1.25).abs() < 1e-15);
        assert_eq!(stable_rank(&[]), 0.0);
        assert_eq!(numerical_rank(&[1.0, 1e-10, 1e-17, 0.0], 10, 4), 2);
        assert_eq!(numerical_rank(&[0.0], 1, 1), 0);
    }
}
