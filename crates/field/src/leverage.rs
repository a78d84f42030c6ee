//! Leverage scores of B = [K, 1] (docs/definitions.md §5) and the key coherence μ.
//!
//! ℓ_j = b_jᵀ(BᵀB)⁺b_j = Σ_{k<r} U_jk² with U the left singular vectors of B and
//! r = #σ > σ₁·max(n, d+1)·ε. ℓ depends on span(B) only, so the centred
//! [K − 1k̄ᵀ, 1] gives the same scores. ALiBi never enters B here (docs/definitions.md §5).

use crate::error::Result;
use crate::linalg::{householder_r, householder_r_rows, matmul, singular_values, thin_qr, thin_r, thin_svd};
use faer::{Mat, MatRef};

/// Leverage scores and the numerical rank r of B (n × (d+1)).
#[derive(Clone, Debug)]
pub(crate) struct Leverage {
    pub scores: Vec<f64>,
    pub rank: usize,
}

fn rank_of(s: &[f64], n: usize, cols: usize) -> usize {
    let tol = crate::spectrum::rank_tolerance(s.first().copied().unwrap_or(0.0), n, cols);
    s.iter().filter(|&&x| x > tol).count()
}

/// Rows per block of the blocked (TSQR) factorisations.
pub(crate) const QR_BLOCK: usize = 4096;

/// R factor of the thin QR of the n × cols matrix `get(j, t)`, by blocks of
/// rows (TSQR: R = qr([R_prev; block]).R), so no n × cols copy is ever made.
/// Householder-stable; R has min(n, cols) rows.
pub(crate) fn blocked_r(n: usize, cols: usize, get: impl Fn(usize, usize) -> f64) -> Mat<f64> {
    blocked_r_by(n, cols, QR_BLOCK, get)
}

/// [`blocked_r`] of the n × cols row-major `x`: up to [`QR_BLOCK`] rows
/// factored in place ([`householder_r_rows`], no copy into a matrix first;
/// the same values, so the same R as `blocked_r`), longer ones by blocks.
pub(crate) fn blocked_r_rows(x: &[f64], n: usize, cols: usize) -> Mat<f64> {
    if n <= QR_BLOCK {
        return householder_r_rows(x, n, cols);
    }
    blocked_r(n, cols, |i, t| x[i * cols + t])
}

fn blocked_r_by(n: usize, cols: usize, block: usize, get: impl Fn(usize, usize) -> f64) -> Mat<f64> {
    let mut r = Mat::<f64>::zeros(0, cols);
    let mut start = 0;
    while start < n {
        let end = (start + block).min(n);
        let k = r.nrows();
        let stacked = Mat::from_fn(k + end - start, cols, |i, t| if i < k { r[(i, t)] } else { get(start + i - k, t) });
        r = householder_r(stacked.as_ref());
        start = end;
    }
    r
}

/// Factored route, O(n·d²) time and O(QR_BLOCK·d) extra memory: block QRs
/// B_i = Q_i R_i, one QR of the stacked [R_1; …] = Q_s R, SVD R = X Σ Yᵀ; the
/// rows of U in block i are Q_i·(Q_s)_i·X_r (Q_i kept when there is one block,
/// else recomputed in a second pass). Also returns R (B's thin-QR R factor).
pub(crate) fn factored(n: usize, cols: usize, get: impl Fn(usize, usize) -> f64) -> Result<(Leverage, Mat<f64>)> {
    factored_by(n, cols, QR_BLOCK, get)
}

fn factored_by(n: usize, cols: usize, bs: usize, get: impl Fn(usize, usize) -> f64) -> Result<(Leverage, Mat<f64>)> {
    let block = |start: usize| {
        let end = (start + bs).min(n);
        Mat::from_fn(end - start, cols, |i, t| get(start + i, t))
    };
    if n <= bs {
        let b = block(0);
        let r = householder_r(b.as_ref());
        // cond_F(R) = ‖R‖_F·‖R⁻¹‖_F ≥ cond₂(R): when it is small, B has full
        // column rank (σ_min ≫ the rank tolerance) and no SVD is needed
        if r.nrows() == cols && frobenius_cond(r.as_ref()) <= SOLVE_MAX_COND {
            return Ok((Leverage { scores: solved_scores(b.as_ref(), r.as_ref()), rank: cols }, r));
        }
        let s = singular_values(r.as_ref())?;
        let rank = rank_of(&s, n, cols).max(1);
        let cond = s.first().copied().unwrap_or(0.0) / s.last().copied().unwrap_or(0.0);
        if rank == r.nrows() && rank == cols && cond <= SOLVE_MAX_COND {
            return Ok((Leverage { scores: solved_scores(b.as_ref(), r.as_ref()), rank }, r));
        }
        // rank-deficient or ill-conditioned: B = Q R directly
        let (q, r) = thin_qr(b.as_ref());
        let (x, rank) = rank_basis(r.as_ref(), n, cols)?;
        let u = match &x {
            Some(x) => matmul(q.as_ref(), x.as_ref()),
            None => q,
        };
        return Ok((Leverage { scores: row_norms2(&u), rank }, r));
    }
    let starts: Vec<usize> = (0..n).step_by(bs).collect();
    let rs: Vec<Mat<f64>> = starts.iter().map(|&s| thin_r(block(s).as_ref())).collect();
    let total: usize = rs.iter().map(|r| r.nrows()).sum();
    let mut stacked = Mat::<f64>::zeros(total, cols);
    let mut off = 0;
    for r in &rs {
        stacked.as_mut().get_mut(off..off + r.nrows(), ..).copy_from(r.as_ref());
        off += r.nrows();
    }
    let (q_s, r) = thin_qr(stacked.as_ref());
    let (x, rank) = rank_basis(r.as_ref(), n, cols)?;
    let qx = match &x {
        Some(x) => matmul(q_s.as_ref(), x.as_ref()), // total × rank
        None => q_s,
    };
    let mut scores = Vec::with_capacity(n);
    let mut off = 0;
    for (&st, r) in starts.iter().zip(&rs) {
        let (q_i, _) = thin_qr(block(st).as_ref());
        let u = matmul(q_i.as_ref(), qx.as_ref().get(off..off + r.nrows(), ..));
        scores.extend(row_norms2(&u));
        off += r.nrows();
    }
    Ok((Leverage { scores, rank }, r))
}

/// Largest cond(B) = σ₁/σ_min for which leverage comes from a triangular
/// solve with R instead of forming Q: the solve's relative error is about
/// cond·cols·ε (≤ 1e-11 here, far inside the 1e-10 absolute agreement
/// tolerance on ℓ_j ≤ 1); worse-conditioned keys keep the orthogonal route.
const SOLVE_MAX_COND: f64 = 1e3;

/// ‖R‖_F·‖R⁻¹‖_F of a square upper-triangular R (an upper bound on its
/// 2-norm condition number, within a factor cols), by back substitution,
/// O(cols³/6); infinite when a diagonal entry is 0 or the inverse overflows.
fn frobenius_cond(r: MatRef<'_, f64>) -> f64 {
    let p = r.nrows();
    let mut inv = vec![0.0f64; p * p]; // column-major, upper
    let (mut nr, mut ni) = (0.0f64, 0.0f64);
    for j in 0..p {
        if r[(j, j)] == 0.0 {
            return f64::INFINITY;
        }
        inv[j * p + j] = 1.0 / r[(j, j)];
        for i in (0..j).rev() {
            let acc: f64 = (i + 1..=j).map(|k| r[(i, k)] * inv[j * p + k]).sum();
            inv[j * p + i] = -acc / r[(i, i)];
        }
        for i in 0..=j {
            nr += r[(i, j)] * r[(i, j)];
            ni += inv[j * p + i] * inv[j * p + i];
        }
    }
    let c = (nr * ni).sqrt();
    if c.is_finite() {
        c
    } else {
        f64::INFINITY
    }
}

/// ℓ_j = ‖R⁻ᵀ b_j‖² (B = QR with R square and invertible, so Q = B R⁻¹):
/// column-oriented forward substitution Y = B R⁻¹ (column k of Y from the
/// columns before it, long axpys that vectorise), O(n·cols²/2). Sums over
/// columns in a fixed order.
fn solved_scores(b: MatRef<'_, f64>, r: MatRef<'_, f64>) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { solved_scores_fma(b, r) };
        }
    }
    solved_scores_body(b, r)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn solved_scores_fma(b: MatRef<'_, f64>, r: MatRef<'_, f64>) -> Vec<f64> {
    solved_scores_body(b, r)
}

#[inline(always)]
fn solved_scores_body(b: MatRef<'_, f64>, r: MatRef<'_, f64>) -> Vec<f64> {
    let (n, p) = b.shape();
    let mut y = vec![0.0f64; n * p]; // column-major n × p
    let mut scores = vec![0.0f64; n];
    for k in 0..p {
        let (done, rest) = y.split_at_mut(k * n);
        let col = &mut rest[..n];
        for (j, v) in col.iter_mut().enumerate() {
            *v = b[(j, k)];
        }
        for t in 0..k {
            crate::linalg::axpy_fma(col, r[(t, k)], &done[t * n..(t + 1) * n]);
        }
        let inv = 1.0 / r[(k, k)];
        for (s, v) in scores.iter_mut().zip(col.iter_mut()) {
            *v *= inv;
            *s = v.mul_add(*v, *s);
        }
    }
    scores
}

/// The numerical rank r of B from its R factor, and the basis X_r (R's first
/// r left singular vectors) that maps Q to U's first r columns — or
/// `None` when B has full column rank: then U = Q·X with X orthogonal, and
/// ℓ_j = ‖U_j‖² = ‖Q_j‖² needs no SVD vectors at all.
fn rank_basis(r: MatRef<'_, f64>, n: usize, cols: usize) -> Result<(Option<Mat<f64>>, usize)> {
    let s = singular_values(r)?;
    let rank = rank_of(&s, n, cols).max(1);
    if rank == r.nrows() {
        return Ok((None, rank));
    }
    let (x, _, _) = thin_svd(r)?;
    Ok((Some(x.as_ref().get(.., ..rank).to_owned()), rank))
}

/// ‖u_j‖² of every row.
fn row_norms2(u: &Mat<f64>) -> Vec<f64> {
    (0..u.nrows()).map(|j| (0..u.ncols()).map(|k| u[(j, k)] * u[(j, k)]).sum::<f64>()).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// cond_F bounds cond₂ from above and is infinite for a singular R.
    #[test]
    fn frobenius_cond_bounds_the_two_norm_condition() {
        let r = Mat::from_fn(6, 6, |i, j| if j >= i { 1.0 + ((i * 7 + j * 3) % 5) as f64 } else { 0.0 });
        let s = singular_values(r.as_ref()).unwrap();
        let c = frobenius_cond(r.as_ref());
        assert!(c >= s[0] / s[5] && c <= 6.0 * s[0] / s[5], "{c} vs {}", s[0] / s[5]);
        let mut z = r.clone();
        z[(3, 3)] = 0.0;
        assert_eq!(frobenius_cond(z.as_ref()), f64::INFINITY);
    }

    /// The triangular-solve scores (well-conditioned B) equal ‖Q_j‖² from the
    /// orthogonal factor, and an ill-conditioned B takes the orthogonal route.
    #[test]
    fn solved_scores_equal_the_orthogonal_ones() {
        let (n, cols) = (300, 9);
        let b = Mat::from_fn(n, cols, |j, t| {
            if t == cols - 1 {
                1.0
            } else {
                (((j * 13 + t * 7) % 17) as f64 - 8.0) / 5.0 + ((j * t) % 5) as f64 * 0.1
            }
        });
        let (q, r) = thin_qr(b.as_ref());
        let want: Vec<f64> = (0..n).map(|j| (0..cols).map(|k| q[(j, k)] * q[(j, k)]).sum()).collect();
        let got = solved_scores(b.as_ref(), householder_r(b.as_ref()).as_ref());
        let got_faer_r = solved_scores(b.as_ref(), r.as_ref());
        for j in 0..n {
            assert!((got[j] - want[j]).abs() <= 1e-13, "{j}: {} vs {}", got[j], want[j]);
            assert!((got_faer_r[j] - want[j]).abs() <= 1e-13, "{j}");
        }
        let (lev, _) = factored(n, cols, |j, t| b[(j, t)]).unwrap();
        assert_eq!(lev.rank, cols);
        for (j, (got, want)) in lev.scores.iter().zip(&want).enumerate() {
            assert!((got - want).abs() <= 1e-13, "{j}");
        }
        // cond ≈ 1e6 > SOLVE_MAX_COND: the orthogonal route, same scores
        let ill = Mat::from_fn(n, 3, |j, t| match t {
            0 => (j % 7) as f64,
            1 => (j % 7) as f64 + 1e-6 * ((j % 3) as f64),
            _ => 1.0,
        });
        let (q, _) = thin_qr(ill.as_ref());
        let (lev, _) = factored(n, 3, |j, t| ill[(j, t)]).unwrap();
        for j in 0..n {
            let w: f64 = (0..3).map(|k| q[(j, k)] * q[(j, k)]).sum();
            assert!((lev.scores[j] - w).abs() <= 1e-12, "{j}");
        }
    }

    /// Blocked QR / leverage with tiny blocks (many blocks, blocks shorter than cols) = one-shot.
    #[test]
    fn blocked_factorisations_equal_the_direct_ones() {
        let (n, cols) = (203, 6);
        let get = |j: usize, t: usize| {
            if t == cols - 1 {
                1.0
            } else {
                (((j * 31 + t * 17) % 29) as f64 - 14.0) / 7.0 + (j as f64 * 0.01) * (t as f64)
            }
        };
        let b = Mat::from_fn(n, cols, get);
        let want_sv = singular_values(b.as_ref()).unwrap();
        let want = dense(b.as_ref()).unwrap();
        for bs in [1, 4, 7, 64, 203, 4096] {
            let r = blocked_r_by(n, cols, bs, get);
            let sv = singular_values(r.as_ref()).unwrap();
            for (a, w) in sv.iter().zip(&want_sv) {
                assert!((a - w).abs() <= 1e-12 * want_sv[0], "bs={bs}");
            }
            let (lev, r2) = factored_by(n, cols, bs, get).unwrap();
            let sv2 = singular_values(r2.as_ref()).unwrap();
            for (a, w) in sv2.iter().zip(&want_sv) {
                assert!((a - w).abs() <= 1e-12 * want_sv[0], "bs={bs}");
            }
            assert_eq!(lev.rank, want.rank);
            for (a, w) in lev.scores.iter().zip(&want.scores) {
                assert!((a - w).abs() <= 1e-12, "bs={bs}: {a} vs {w}");
            }
        }
    }
}
