//! Key-side rank-r projectors (the key-cache experiment of docs/compress.md).
//!
//! One KV head serves the g query heads of its group. Its logits (up to a
//! per-row constant, which the softmax ignores) are S = Q_g·K̃ᵀ with Q_g the
//! stacked queries of the group and K̃ the keys minus a constant vector. With
//! Gram matrices G_K = K̃ᵀK̃ and G_Q = Q_gᵀQ_g (d × d), the best rank-r
//! approximation of S that touches only the key side is S·P with P the
//! projector on its top-r right singular directions; in key coordinates that is
//! k ↦ T_r·k with
//!
//!   T_r = G_K^{1/2} · Y_r Y_rᵀ · G_K^{-1/2},   Y = eigenvectors of G_K^{1/2} G_Q G_K^{1/2}
//!
//! (an oblique projector of rank ≤ r; T_d = I when G_K has full rank). Keys
//! can then be stored as r coefficients (Y_rᵀ G_K^{-1/2} k) and rebuilt by
//! G_K^{1/2} Y_r.
//!
//! * data: G_K, G_Q from a calibration text's post-rotary keys (centred) and queries.
//! * weights: G_K = W_Kᵀ W_K, G_Q = Σ_h W_Q^hᵀ W_Q^h: the top-r right singular
//!   directions of the group's stacked M_h = W_Q^h W_Kᵀ, seen in key space.
//! * random: [`random_key_projector`], T_r = W Wᵀ with W the seeded random
//!   orthonormal d × r of [`crate::Basis::Random`] (an orthogonal projector).
//!
//! Every matrix here is d × d, row-major, f64.

use crate::error::{FieldError, Result};
use crate::linalg::{matmul, thin_qr, thin_svd};
use crate::rng::Rng;
use crate::spectrum::rank_tolerance;
use faer::{Mat, MatRef};

/// XᵀX (d × d row-major, f64) of X, n × d row-major f32; with `centre`, of X
/// minus its column means. Accumulated in f64.
pub fn gram(x: &[f32], n: usize, d: usize, centre: bool) -> Vec<f64> {
    let mut mean = vec![0.0; d];
    if centre && n > 0 {
        for i in 0..n {
            for c in 0..d {
                mean[c] += x[i * d + c] as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
    }
    let mut g = vec![0.0; d * d];
    let mut row = vec![0.0; d];
    for i in 0..n {
        for c in 0..d {
            row[c] = x[i * d + c] as f64 - mean[c];
        }
        for a in 0..d {
            for b in 0..d {
                g[a * d + b] += row[a] * row[b];
            }
        }
    }
    g
}

/// `key_spread` of keys K (n × d row-major f32): the share of the centred
/// keys' variance outside their top direction, 1 − λ₁/Σλ with λ the
/// eigenvalues of the centred Gram K_cᵀK_c (= 1 − ‖K_c‖₂²/‖K_c‖_F² = 1 − 1/stable
/// rank), in [0, 1 − 1/d]: 0 when one direction carries all the variance,
/// 1 − 1/d when it spreads evenly over d directions (docs/definitions.md).
/// O(n·d²) + O(d³). NaN when the centred keys are all zero (n < 2, identical
/// keys), not finite, or the lengths disagree.
pub fn key_spread(k: &[f32], n: usize, d: usize) -> f64 {
    if n < 2 || d == 0 || k.len() != n * d || k.iter().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let g = gram(k, n, d, true);
    let trace: f64 = (0..d).map(|a| g[a * d + a]).sum();
    let Ok(g) = square(&g, d, "gram") else { return f64::NAN };
    let top = match psd_eig(g.as_ref()) {
        Ok((lam, _)) => lam.first().copied().unwrap_or(0.0),
        Err(_) => return f64::NAN,
    };
    if !(top > 0.0 && trace > 0.0) {
        return f64::NAN;
    }
    (1.0 - top / trace).max(0.0)
}

/// Eigen-decomposition of a symmetric positive semi-definite d × d matrix:
/// (eigenvalues, non-increasing; eigenvectors as columns). Through faer's SVD
/// (the sequential QR iteration of `linalg`), which for a PSD matrix is its
/// eigen-decomposition; eigenvalues at the rounding level may come back as
/// |λ| instead of λ, which callers drop by [`rank_tolerance`] anyway.
fn psd_eig(a: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let (u, s, _) = thin_svd(a)?;
    Ok((s, u))
}

fn square(a: &[f64], d: usize, what: &'static str) -> Result<Mat<f64>> {
    if a.len() != d * d {
        return Err(FieldError::Length { what, expected: d * d, actual: a.len() });
    }
    if let Some(index) = a.iter().position(|x| !x.is_finite()) {
        return Err(FieldError::NonFinite { what, index });
    }
    Ok(Mat::from_fn(d, d, |r, c| a[r * d + c]))
}

/// The r-independent part of the key-side projector T_r of one KV head:
/// S = G_K^{1/2}, S⁺ = (G_K^{1/2})⁺ and Y (see the module docs).
#[derive(Clone, Debug)]
pub struct KeyBasis {
    d: usize,
    s: Mat<f64>,
    s_inv: Mat<f64>,
    y: Mat<f64>,
}

impl KeyBasis {
    /// From G_K (keys' Gram) and G_Q (the group's summed query Grams), both
    /// d × d row-major, symmetric PSD. Eigenvalues of G_K at or below
    /// [`rank_tolerance`]`(λ₁, d, d)` are treated as zero (S⁺ drops them).
    /// Errors: wrong lengths, non-finite entries, SVD failure.
    pub fn new(gk: &[f64], gq: &[f64], d: usize) -> Result<KeyBasis> {
        let (gk, gq) = (square(gk, d, "g_k")?, square(gq, d, "g_q")?);
        let (lam, v) = psd_eig(gk.as_ref())?;
        let top = lam.first().copied().unwrap_or(0.0).max(0.0);
        let tol = rank_tolerance(top, d, d);
        let keep: Vec<usize> = (0..lam.len()).filter(|&k| lam[k] > tol && lam[k] > 0.0).collect();
        let sandwich = |f: &dyn Fn(f64) -> f64| Mat::from_fn(d, d, |a, b| keep.iter().map(|&k| f(lam[k]) * v[(a, k)] * v[(b, k)]).sum());
        let s = sandwich(&|l| l.sqrt());
        let s_inv = sandwich(&|l| 1.0 / l.sqrt());
        let h = matmul(matmul(s.as_ref(), gq.as_ref()).as_ref(), s.as_ref());
        // symmetrise against rounding
        let h = Mat::from_fn(d, d, |a, b| 0.5 * (h[(a, b)] + h[(b, a)]));
        let (_, y) = psd_eig(h.as_ref())?;
        Ok(KeyBasis { d, s, s_inv, y })
    }

    /// Head dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// T_r (d × d row-major, k' = T_r·k); r is clamped to d.
    pub fn projector(&self, r: usize) -> Vec<f64> {
        let d = self.d;
        let r = r.min(d).min(self.y.ncols());
        let yr = self.y.as_ref().get(.., ..r);
        let sy = matmul(self.s.as_ref(), yr); // d × r
        let ys = matmul(yr.transpose(), self.s_inv.as_ref()); // r × d
        let t = matmul(sy.as_ref(), ys.as_ref());
        (0..d * d).map(|x| t[(x / d, x % d)]).collect()
    }
}

/// W, a seeded random orthonormal d × min(r, d): a Gaussian matrix
/// ([`Rng::normal`] seeded by `seed`, drawn row by row) orthonormalised by
/// thin QR. The basis of [`crate::Basis::Random`].
pub(crate) fn random_orthonormal(d: usize, r: usize, seed: u64) -> Mat<f64> {
    let k = r.min(d);
    if k == 0 {
        return Mat::zeros(d, 0);
    }
    let mut rng = Rng::new(seed);
    let draws: Vec<f64> = (0..d * k).map(|_| rng.normal()).collect();
    let gauss = Mat::from_fn(d, k, |i, j| draws[i * k + j]);
    thin_qr(gauss.as_ref()).0
}

/// W Wᵀ as a d × d faer matrix (zeros when r = 0).
pub(crate) fn random_projector_mat(d: usize, r: usize, seed: u64) -> Mat<f64> {
    let w = random_orthonormal(d, r, seed);
    if w.ncols() == 0 {
        return Mat::zeros(d, d);
    }
    matmul(w.as_ref(), w.as_ref().transpose())
}

/// The random key-side projector T_r = W Wᵀ (d × d row-major, orthogonal,
/// rank min(r, d)): the same seeded directions as [`crate::Basis::Random`], so
/// it equals the head block of `projector(.., &Basis::Random { seed }, r)`.
pub fn random_key_projector(d: usize, r: usize, seed: u64) -> Vec<f64> {
    let t = random_projector_mat(d, r, seed);
    (0..d * d).map(|x| t[(x / d, x % d)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    fn mm(a: &[f64], b: &[f64], n: usize, m: usize, p: usize) -> Vec<f64> {
        (0..n * p).map(|x| (0..m).map(|k| a[(x / p) * m + k] * b[k * p + x % p]).sum()).collect()
    }

    fn transpose_nd(a: &[f64], n: usize, d: usize) -> Vec<f64> {
        (0..n * d).map(|x| a[(x % n) * d + x / n]).collect()
    }

    #[test]
    fn psd_eig_reconstructs() {
        let d = 7;
        let x: Vec<f32> = lcg(1, 20 * d).iter().map(|&v| v as f32).collect();
        let g = gram(&x, 20, d, false);
        let (lam, v) = psd_eig(Mat::from_fn(d, d, |a, b| g[a * d + b]).as_ref()).unwrap();
        assert!(lam.windows(2).all(|w| w[0] >= w[1]));
        for a in 0..d {
            for b in 0..d {
                let r: f64 = (0..d).map(|k| v[(a, k)] * lam[k] * v[(b, k)]).sum();
                assert!((r - g[a * d + b]).abs() < 1e-10, "{r} vs {}", g[a * d + b]);
            }
        }
    }

    #[test]
    fn key_projector_is_rank_r_idempotent_identity_at_d_and_optimal() {
        let (n, d) = (40, 6);
        let k: Vec<f32> = lcg(2, n * d).iter().map(|&v| v as f32).collect();
        let q: Vec<f32> = lcg(3, n * d).iter().map(|&v| (v * 2.0) as f32).collect();
        let basis = KeyBasis::new(&gram(&k, n, d, true), &gram(&q, n, d, false), d).unwrap();
        let t_d = basis.projector(d);
        for a in 0..d {
            for b in 0..d {
                assert!((t_d[a * d + b] - f64::from(u8::from(a == b))).abs() < 1e-10);
            }
        }
        for r in 1..d {
            let t = basis.projector(r);
            let tt = mm(&t, &t, d, d, d);
            assert!(t.iter().zip(&tt).all(|(x, y)| (x - y).abs() < 1e-9), "idempotent");
            let trace: f64 = (0..d).map(|i| t[i * d + i]).sum();
            assert!((trace - r as f64).abs() < 1e-9, "rank r");
            // residual ‖Q K̃ᵀ − Q (T K̃)ᵀ‖² equals the tail Σ_{k>r} σ_k² of Q K̃ᵀ
            let kd: Vec<f64> = k.iter().map(|&v| v as f64).collect();
            let mean: Vec<f64> = (0..d).map(|c| (0..n).map(|i| kd[i * d + c]).sum::<f64>() / n as f64).collect();
            let kc: Vec<f64> = (0..n * d).map(|x| kd[x] - mean[x % d]).collect();
            let qd: Vec<f64> = q.iter().map(|&v| v as f64).collect();
            let kt: Vec<f64> = (0..n * d).map(|x| (0..d).map(|c| t[(x % d) * d + c] * kc[(x / d) * d + c]).sum()).collect();
            let diff: Vec<f64> = kc.iter().zip(&kt).map(|(a, b)| a - b).collect();
            let resid: f64 = mm(&qd, &transpose_nd(&diff, n, d), n, d, n).iter().map(|x| x * x).sum();
            let s = mm(&qd, &transpose_nd(&kc, n, d), n, d, n);
            let sig = crate::linalg::singular_values(Mat::from_fn(n, n, |a, b| s[a * n + b]).as_ref()).unwrap();
            let tail: f64 = sig[r..].iter().map(|x| x * x).sum();
            assert!((resid - tail).abs() <= 1e-8 * (1.0 + tail), "r {r}: {resid} vs {tail}");
        }
    }

    #[test]
    fn rank_deficient_keys_drop_the_null_directions() {
        // keys in a 2-dim subspace of d = 5: T_d is the identity on that subspace only
        let (n, d) = (30, 5);
        let c: Vec<f64> = lcg(4, n * 2);
        let k: Vec<f32> = (0..n * d).map(|x| if x % d < 2 { c[(x / d) * 2 + x % d] as f32 } else { 0.0 }).collect();
        let q: Vec<f32> = lcg(5, n * d).iter().map(|&v| v as f32).collect();
        let basis = KeyBasis::new(&gram(&k, n, d, false), &gram(&q, n, d, false), d).unwrap();
        let t = basis.projector(d);
        let trace: f64 = (0..d).map(|i| t[i * d + i]).sum();
        assert!((trace - 2.0).abs() < 1e-9, "{trace}");
        assert!(t.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(KeyBasis::new(&[1.0; 3], &[1.0; 4], 2), Err(FieldError::Length { .. })));
        assert!(matches!(KeyBasis::new(&[f64::NAN, 0.0, 0.0, 1.0], &[1.0; 4], 2), Err(FieldError::NonFinite { .. })));
    }

    #[test]
    fn random_key_projector_is_the_head_block_of_the_random_basis() {
        let (n, d, r, seed) = (10, 6, 3, 42);
        let q: Vec<f64> = lcg(6, n * d);
        let k: Vec<f64> = lcg(7, n * d);
        let head = crate::HeadInput::new(&q, &k, n, d, 0.5);
        let p = crate::projector(&head, &crate::Basis::Random { seed }, r).unwrap();
        let t = random_key_projector(d, r, seed);
        let pd = p.feature_dim();
        for (x, &tx) in t.iter().enumerate() {
            assert_eq!(tx, p.pi()[(x / d) * pd + x % d]);
        }
        let tt = mm(&t, &t, d, d, d);
        assert!(t.iter().zip(&tt).all(|(x, y)| (x - y).abs() < 1e-12), "orthogonal projector");
        let trace: f64 = (0..d).map(|i| t[i * d + i]).sum();
        assert!((trace - r as f64).abs() < 1e-12);
        assert_ne!(t, random_key_projector(d, r, seed + 1));
        assert!(random_key_projector(d, 0, seed).iter().all(|&x| x == 0.0));
    }

    // key_spread
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
}
