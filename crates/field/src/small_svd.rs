//! Singular values of a small dense matrix (the (d+1) × (d+1) cores
//! R_A·R_Bᵀ of every head and R1·R2ᵀ of the learned interaction), without
//! faer's general SVD driver.
//!
//! The same two classical steps as faer's QR-iteration SVD (the route
//! [`crate::linalg::singular_values`] takes): Householder bidiagonalisation
//! (Golub–Kahan), then the implicitly shifted bidiagonal QR iteration
//! (Golub–Kahan SVD step, Wilkinson shift of BᵀB, the deflation test of
//! faer 0.24's `qr_algorithm`). Unblocked, on one column-major work array,
//! with the fused dot/axpy loops of [`crate::linalg`]: for p ≤ 100 or so
//! faer's blocked driver spends most of its time in bookkeeping (a 65 × 65
//! core: ≈ 1.9 M instructions per call in faer, see docs/performance.md).
//!
//! Contract: min(r, c) values, non-negative, non-increasing; backward stable
//! like any Householder bidiagonalisation, so each value is within a small
//! multiple of ε·‖m‖₂ of the exact one (tested against faer's SVD below).
//! The matrix is scaled by a power of two first (exact), so no intermediate
//! overflows or underflows for any finite input.

use crate::error::{FieldError, Result};
use crate::linalg::{axpy_fma, dot_fma};
use faer::MatRef;

/// Singular values of `m` (any shape), largest first.
pub(crate) fn small_singular_values(m: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let (r, c) = m.shape();
    if r == 0 || c == 0 {
        return Ok(Vec::new());
    }
    // work on the tall orientation (r ≥ c): σ(m) = σ(mᵀ)
    let (rows, cols, tall) = if r >= c { (r, c, true) } else { (c, r, false) };
    let (mut max, mut finite) = (0.0f64, true);
    for j in 0..c {
        for i in 0..r {
            let x = m[(i, j)];
            finite &= x.is_finite();
            max = max.max(x.abs());
        }
    }
    if !finite {
        return Err(FieldError::Svd);
    }
    if max == 0.0 {
        return Ok(vec![0.0; cols]);
    }
    // scale by a power of two so the largest entry is in [1, 2): exact
    // (clamped so that 2^±e stays finite for subnormal or huge entries)
    let e = (max.log2().floor() as i32).clamp(-1020, 1020);
    let (down, up) = (2f64.powi(-e), 2f64.powi(e));
    let mut a = vec![0.0f64; rows * cols];
    for j in 0..cols {
        for i in 0..rows {
            a[j * rows + i] = down * if tall { m[(i, j)] } else { m[(j, i)] };
        }
    }
    let (mut d, mut f) = bidiagonalise(&mut a, rows, cols);
    bidiag_qr(&mut d, &mut f)?;
    let mut sv: Vec<f64> = d.iter().map(|x| x.abs() * up).collect();
    sv.sort_by(|x, y| y.total_cmp(x));
    Ok(sv)
}

/// Householder vector of `x` in place: x[0] ← β, x[1..] ← v[1..] (v[0] = 1);
/// returns (β, τ) with (I − τ·v·vᵀ)·x = β·e₀. τ = 0 when x[1..] is already 0.
#[inline(always)]
fn house(x: &mut [f64]) -> (f64, f64) {
    let sigma = dot_fma(&x[1..], &x[1..]);
    let alpha = x[0];
    if sigma == 0.0 {
        return (alpha, 0.0);
    }
    let norm = (alpha * alpha + sigma).sqrt();
    let beta = if alpha >= 0.0 { -norm } else { norm };
    let tau = (beta - alpha) / beta;
    let inv = 1.0 / (alpha - beta);
    x[0] = beta;
    for v in x[1..].iter_mut() {
        *v *= inv;
    }
    (beta, tau)
}

/// Upper bidiagonal form of the column-major rows × cols `a` (rows ≥ cols):
/// returns (diagonal, superdiagonal); `a` is overwritten.
fn bidiagonalise(a: &mut [f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { bidiagonalise_fma(a, rows, cols) };
        }
    }
    bidiagonalise_body(a, rows, cols)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bidiagonalise_fma(a: &mut [f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    bidiagonalise_body(a, rows, cols)
}

#[inline(always)]
fn bidiagonalise_body(a: &mut [f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let (r, c) = (rows, cols);
    let mut d = vec![0.0; c];
    let mut f = vec![0.0; c.saturating_sub(1)];
    let mut u = vec![0.0; c];
    let mut w = vec![0.0; r];
    for k in 0..c {
        // left reflector: column k, rows k..r; applied to columns k+1..c
        let (left, right) = a.split_at_mut((k + 1) * r);
        let x = &mut left[k * r + k..];
        let (beta, tau) = house(x);
        d[k] = beta;
        if tau != 0.0 {
            // every column's coefficient first (independent dot products),
            // then the updates: the same arithmetic per column as one
            // dot-then-axpy pass, without a dependency between the two
            let v = &x[1..];
            let coef = &mut u[..c - k - 1];
            for (j, s) in coef.iter_mut().enumerate() {
                let col = &right[j * r + k..(j + 1) * r];
                *s = tau * (col[0] + dot_fma(v, &col[1..]));
            }
            for (j, &s) in coef.iter().enumerate() {
                let col = &mut right[j * r + k..(j + 1) * r];
                col[0] -= s;
                axpy_fma(&mut col[1..], s, v);
            }
        }
        if k + 1 >= c {
            break;
        }
        // right reflector: row k, columns k+1..c; applied to rows k+1..r
        let m = c - k - 1;
        let u = &mut u[..m];
        for (t, ut) in u.iter_mut().enumerate() {
            *ut = a[(k + 1 + t) * r + k];
        }
        let (beta, tau) = house(u);
        f[k] = beta;
        if tau == 0.0 || k + 1 >= r {
            continue;
        }
        // w = A[k+1.., k+1..]·v (v[0] = 1), then A −= τ·w·vᵀ, column by column
        let w = &mut w[..r - k - 1];
        w.copy_from_slice(&a[(k + 1) * r + k + 1..(k + 2) * r]);
        for (t, &vt) in u.iter().enumerate().skip(1) {
            let col = &a[(k + 1 + t) * r + k + 1..(k + 2 + t) * r];
            axpy_fma(w, -vt, col);
        }
        for t in 0..m {
            let vt = if t == 0 { 1.0 } else { u[t] };
            let col = &mut a[(k + 1 + t) * r + k + 1..(k + 2 + t) * r];
            axpy_fma(col, tau * vt, w);
        }
    }
    (d, f)
}

/// Givens rotation (c, s) with c·p − s·q = r and s·p + c·q = 0 (faer's
/// `JacobiRotation::make_givens` convention: c = p/r, s = −q/r with
/// r = √(p² + q²) > 0). The QR sweep is one long dependency chain
/// through these, so r comes from one square root and c, s from two
/// independent divisions (libm's `hypot` and a ratio form were each about
/// twice that latency). Inputs are scaled to at most about 1 by the caller,
/// so p² + q² cannot overflow; when it would underflow, the ratio form is used.
#[inline(always)]
fn givens(p: f64, q: f64) -> (f64, f64) {
    if q == 0.0 {
        return (if p < 0.0 { -1.0 } else { 1.0 }, 0.0);
    }
    if p == 0.0 {
        return (0.0, if q < 0.0 { 1.0 } else { -1.0 });
    }
    let r2 = p * p + q * q;
    if r2 >= 1e-290 {
        let r = r2.sqrt();
        return (p / r, -q / r);
    }
    if p.abs() > q.abs() {
        let t = q / p;
        let u = (t * t + 1.0).sqrt().copysign(p);
        let c = 1.0 / u;
        (c, -t * c)
    } else {
        let t = p / q;
        let u = (t * t + 1.0).sqrt().copysign(q);
        let s = -1.0 / u;
        (-t * s, s)
    }
}

/// Singular values of the upper bidiagonal (d, f) in place (|d| on return,
/// unsorted): implicitly shifted QR iteration with the deflation and shift
/// of faer 0.24's `bidiag_svd::qr_algorithm`, without singular vectors.
fn bidiag_qr(d: &mut [f64], f: &mut [f64]) -> Result<()> {
    let n = d.len();
    if n <= 1 {
        return Ok(());
    }
    let (eps, sml) = (f64::EPSILON, f64::MIN_POSITIVE);
    let max_iters = 30usize.saturating_mul(n).saturating_mul(n);
    let max = d.iter().chain(f.iter()).fold(0.0f64, |a, &x| a.max(x.abs()));
    if max == 0.0 {
        return Ok(());
    }
    let inv = 1.0 / max;
    d.iter_mut().chain(f.iter_mut()).for_each(|x| *x *= inv);
    let eps2 = eps * eps;
    let last = n - 1;
    let mut converged = false;
    for _ in 0..max_iters {
        for i in 0..last {
            if f[i] * f[i] <= eps2 * (d[i] * d[i + 1]).abs() + sml {
                f[i] = 0.0;
            }
        }
        let mut end = n;
        while end >= 2 && f[end - 2] * f[end - 2] <= sml {
            end -= 1;
        }
        if end == 1 {
            converged = true;
            break;
        }
        let mut start = end - 1;
        while start >= 1 && f[start - 1] != 0.0 {
            start -= 1;
        }
        // a zero on the diagonal: chase its row's superdiagonal out with rotations
        let mut found_zero = false;
        for i in start..end - 1 {
            if d[i].abs() <= eps {
                found_zero = true;
                let mut val = f[i];
                f[i] = 0.0;
                for j in i + 1..end {
                    let (c, s) = givens(d[j], val);
                    d[j] = c * d[j] - s * val;
                    if j + 1 < end {
                        val = s * f[j];
                        f[j] *= c;
                    }
                }
            }
        }
        if found_zero {
            continue;
        }
        // Wilkinson shift from the trailing 2 × 2 of BᵀB
        let (e2, e1) = (end - 2, end - 1);
        let t00 = if end - start == 2 { d[e2] * d[e2] } else { d[e2] * d[e2] + f[end - 3] * f[end - 3] };
        let t11 = d[e1] * d[e1] + f[e2] * f[e2];
        let t01 = d[e2] * f[e2];
        let t01_2 = t01 * t01;
        let mu = if t01_2 > sml {
            let h = (t00 - t11) * 0.5;
            let mut delta = (h * h + t01_2).sqrt();
            if h < 0.0 {
                delta = -delta;
            }
            t11 - t01_2 / (h + delta)
        } else {
            t11
        };
        let mut y = d[start] * d[start] - mu;
        let mut z = d[start] * f[start];
        for k in start..e1 {
            let (c, s) = givens(y, z);
            if k > start {
                f[k - 1] = (c * y - s * z).abs();
            }
            let dk = c * d[k] - s * f[k];
            f[k] = s * d[k] + c * f[k];
            let k1 = k + 1;
            y = dk;
            z = -s * d[k1];
            d[k1] *= c;
            let (c, s) = givens(y, z);
            d[k] = c * y - s * z;
            let fk = c * f[k] - s * d[k1];
            d[k1] = s * f[k] + c * d[k1];
            f[k] = fk;
            if k < end - 2 {
                y = f[k];
                z = -s * f[k1];
                f[k1] *= c;
            }
        }
    }
    if !converged {
        return Err(FieldError::Svd);
    }
    d.iter_mut().for_each(|x| *x = x.abs() * max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::singular_values;
    use faer::Mat;

    fn agree(m: &Mat<f64>, what: &str) {
        agree_scaled(m, 1.0, what)
    }

    /// σ(scale·m) against faer's σ(m)·scale (faer itself overflows at 1e200).
    fn agree_scaled(m: &Mat<f64>, scale: f64, what: &str) {
        let got = small_singular_values(Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] * scale).as_ref())
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let want: Vec<f64> = singular_values(m.as_ref()).unwrap().iter().map(|s| s * scale).collect();
        assert_eq!(got.len(), want.len(), "{what}");
        let s1 = want.first().copied().unwrap_or(0.0);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-14 * s1.max(f64::MIN_POSITIVE) * (m.nrows().max(m.ncols()) as f64), "{what} σ{k}: {g:e} vs {w:e}");
        }
        assert!(got.windows(2).all(|w| w[0] >= w[1]) && got.iter().all(|&x| x >= 0.0), "{what}: order");
    }

    /// Agrees with faer's SVD on full-rank, rank-deficient, graded, wide,
    /// tiny, huge, zero and single-entry matrices.
    #[test]
    fn small_svd_matches_faer() {
        let gen = |r: usize, c: usize, seed: usize| {
            Mat::from_fn(r, c, |i, j| ((((i * 37 + j * 11 + seed * 7) * 7919) % 211) as f64 - 105.0) / 53.0)
        };
        for (r, c) in [(65usize, 65usize), (66, 66), (64, 64), (40, 7), (7, 40), (1, 1), (1, 5), (5, 1), (2, 2), (3, 3), (128, 100)] {
            agree(&gen(r, c, 1), &format!("{r}x{c}"));
        }
        // rank deficient: duplicated columns, and a rank-3 product
        let mut m = gen(30, 30, 2);
        for i in 0..30 {
            m[(i, 5)] = m[(i, 4)];
            m[(i, 9)] = m[(i, 4)];
        }
        agree(&m, "duplicated columns");
        let (x, y) = (gen(30, 3, 3), gen(3, 30, 4));
        agree(&(&x * &y), "rank 3");
        // graded: columns scaled over 12 orders of magnitude, then the same matrix at extreme scales
        let g = Mat::from_fn(20, 20, |i, j| gen(20, 20, 5)[(i, j)] * 10f64.powi(-(j as i32) * 12 / 19));
        agree(&g, "graded");
        agree_scaled(&g, 1e200, "huge");
        agree_scaled(&g, 1e-200, "tiny");
        agree_scaled(&Mat::from_fn(20, 20, |i, j| gen(20, 20, 5)[(i, j)]), 1e-310, "subnormal");
        agree_scaled(&Mat::from_fn(20, 20, |i, j| gen(20, 20, 5)[(i, j)]), 1e306, "near overflow");
        // upper triangular products, as the cores are
        let (ra, rb) = (crate::linalg::householder_r(gen(200, 65, 6).as_ref()), crate::linalg::householder_r(gen(200, 65, 7).as_ref()));
        agree(&(&ra * rb.transpose()), "core");
        assert_eq!(small_singular_values(Mat::<f64>::zeros(4, 3).as_ref()).unwrap(), vec![0.0; 3]);
        let mut one = Mat::<f64>::zeros(3, 3);
        one[(1, 2)] = -2.5;
        assert_eq!(small_singular_values(one.as_ref()).unwrap(), vec![2.5, 0.0, 0.0]);
        assert!(small_singular_values(Mat::from_fn(2, 2, |_, _| f64::NAN).as_ref()).is_err());
    }
}
