//! Leverage scores of B = [K, 1] (SPEC §5) and the key coherence μ.
//!
//! ℓ_j = b_jᵀ(BᵀB)⁺b_j = Σ_{k<r} U_jk² with U the left singular vectors of B and
//! r = #σ > σ₁·max(n, d+1)·ε. ℓ depends on span(B) only, so the centred
//! [K − 1k̄ᵀ, 1] gives the same scores. ALiBi never enters B here (SPEC §5).

use crate::error::Result;
use crate::linalg::{matmul, thin_qr, thin_svd};
use faer::MatRef;

/// Leverage scores and the numerical rank r of B (n × (d+1)).
pub(crate) struct Leverage {
    pub scores: Vec<f64>,
    pub rank: usize,
}

fn rank_of(s: &[f64], n: usize, cols: usize) -> usize {
    let tol = s.first().copied().unwrap_or(0.0) * (n.max(cols) as f64) * f64::EPSILON;
    s.iter().filter(|&&x| x > tol).count()
}

/// Factored route: thin QR B = Q_B R_B, SVD R_B = X Σ Yᵀ, U = Q_B X_r. O(n·d²).
pub(crate) fn from_qr(q_b: MatRef<'_, f64>, r_b: MatRef<'_, f64>, n: usize) -> Result<Leverage> {
    let cols = r_b.ncols();
    let (x, s, _) = thin_svd(r_b)?;
    let r = rank_of(&s, n, cols).max(1);
    let u = matmul(q_b, x.as_ref().get(.., ..r));
    let scores = (0..n).map(|j| (0..r).map(|k| u[(j, k)] * u[(j, k)]).sum()).collect();
    Ok(Leverage { scores, rank: r })
}

/// Factored route on a row-major n × cols matrix.
pub(crate) fn factored(b: MatRef<'_, f64>) -> Result<Leverage> {
    let (q, r) = thin_qr(b);
    from_qr(q.as_ref(), r.as_ref(), b.nrows())
}

/// Reference route: thin SVD of B = [K, 1] directly (uncentred).
pub(crate) fn dense(b: MatRef<'_, f64>) -> Result<Leverage> {
    let n = b.nrows();
    let (u, s, _) = thin_svd(b)?;
    let r = rank_of(&s, n, b.ncols()).max(1);
    let scores = (0..n).map(|j| (0..r).map(|k| u[(j, k)] * u[(j, k)]).sum()).collect();
    Ok(Leverage { scores, rank: r })
}

/// μ = (n / r)·max_j ℓ_j.
pub(crate) fn coherence(lev: &Leverage) -> f64 {
    let n = lev.scores.len() as f64;
    let mx = lev.scores.iter().fold(0.0f64, |a, &x| a.max(x));
    n / lev.rank as f64 * mx
}
