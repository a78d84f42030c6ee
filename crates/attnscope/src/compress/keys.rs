//! Key-side rank-r projectors for the key-cache experiment (docs/compress.md).
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
//! (an oblique projector of rank r; T_d = I when G_K has full rank). Keys are
//! then stored as r coefficients (Y_rᵀ G_K^{-1/2} k) and rebuilt by G_K^{1/2} Y_r.
//!
//! * data: G_K, G_Q from the calibration text's post-rotary keys (centred) and queries.
//! * weights: G_K = W_Kᵀ W_K, G_Q = Σ_h W_Q^hᵀ W_Q^h: the top-r right singular
//!   directions of the group's stacked M_h = W_Q^h W_Kᵀ, seen in key space.
//! * random: T_r = W Wᵀ with W the seeded random orthonormal d × r of
//!   `field::Basis::Random` (an orthogonal projector).

/// A symmetric d × d matrix (row-major) → (eigenvalues, eigenvectors as columns
/// of a row-major d × d matrix), sorted by decreasing eigenvalue. Cyclic Jacobi.
pub fn sym_eig(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d).flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| m[i * d + j].powi(2)).sum();
        let total: f64 = m.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * d + p], m[q * d + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // m ← Jᵀ m J on rows/columns p, q
                for k in 0..d {
                    let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| m[b * d + b].total_cmp(&m[a * d + a]));
    let vals = order.iter().map(|&i| m[i * d + i]).collect();
    let mut vecs = vec![0.0; d * d];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..d {
            vecs[k * d + new] = v[k * d + old];
        }
    }
    (vals, vecs)
}

/// a (n × m) · b (m × p), row-major.
pub fn mm(a: &[f64], b: &[f64], n: usize, m: usize, p: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * p];
    for i in 0..n {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..p {
                c[i * p + j] += aik * b[k * p + j];
            }
        }
    }
    c
}

/// XᵀX for X n × d row-major (f32 input), accumulated in f64.
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
    for i in 0..n {
        let row: Vec<f64> = (0..d).map(|c| x[i * d + c] as f64 - mean[c]).collect();
        for a in 0..d {
            for b in 0..d {
                g[a * d + b] += row[a] * row[b];
            }
        }
    }
    g
}

/// The r-independent part of T_r: S = G_K^{1/2}, S⁺ = (G_K^{1/2})⁺ and Y.
#[derive(Clone, Debug)]
pub struct KeyBasis {
    pub d: usize,
    s: Vec<f64>,
    s_inv: Vec<f64>,
    y: Vec<f64>,
}

impl KeyBasis {
    pub fn new(gk: &[f64], gq: &[f64], d: usize) -> KeyBasis {
        let (lam, v) = sym_eig(gk, d);
        let top = lam.first().copied().unwrap_or(0.0).max(0.0);
        let tol = top * d as f64 * 1e-13;
        let (mut s, mut s_inv) = (vec![0.0; d * d], vec![0.0; d * d]);
        for (k, &l) in lam.iter().enumerate() {
            if l <= tol || l <= 0.0 {
                continue;
            }
            let (r, ri) = (l.sqrt(), 1.0 / l.sqrt());
            for a in 0..d {
                for b in 0..d {
                    let vv = v[a * d + k] * v[b * d + k];
                    s[a * d + b] += r * vv;
                    s_inv[a * d + b] += ri * vv;
                }
            }
        }
        let h = mm(&mm(&s, gq, d, d, d), &s, d, d, d);
        // symmetrise against rounding
        let h: Vec<f64> = (0..d * d).map(|x| 0.5 * (h[x] + h[(x % d) * d + x / d])).collect();
        let (_, y) = sym_eig(&h, d);
        KeyBasis { d, s, s_inv, y }
    }

    /// T_r (d × d row-major, k' = T_r·k).
    pub fn projector(&self, r: usize) -> Vec<f64> {
        let d = self.d;
        let r = r.min(d);
        let sy = Mat::cols(&mm(&self.s, &self.y, d, d, d), d, r); // d × r
        let ys = Mat::rows(&mm(&transpose(&self.y, d), &self.s_inv, d, d, d), d, r); // r × d
        mm(&sy, &ys, d, r, d)
    }
}

struct Mat;
impl Mat {
    /// First r columns of a d × d matrix as d × r.
    fn cols(a: &[f64], d: usize, r: usize) -> Vec<f64> {
        (0..d * r).map(|x| a[(x / r) * d + x % r]).collect()
    }
    /// First r rows of a d × d matrix as r × d.
    fn rows(a: &[f64], d: usize, r: usize) -> Vec<f64> {
        a[..r * d].to_vec()
    }
}

fn transpose(a: &[f64], d: usize) -> Vec<f64> {
    (0..d * d).map(|x| a[(x % d) * d + x / d]).collect()
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

    #[test]
    fn eig_reconstructs() {
        let d = 7;
        let x = lcg(1, 20 * d);
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let g = gram(&xf, 20, d, false);
        let (lam, v) = sym_eig(&g, d);
        assert!(lam.windows(2).all(|w| w[0] >= w[1]));
        for a in 0..d {
            for b in 0..d {
                let r: f64 = (0..d).map(|k| v[a * d + k] * lam[k] * v[b * d + k]).sum();
                assert!((r - g[a * d + b]).abs() < 1e-10, "{r} vs {}", g[a * d + b]);
            }
        }
    }

    #[test]
    fn key_projector_is_rank_r_idempotent_identity_at_d_and_optimal() {
        let (n, d) = (40, 6);
        let k: Vec<f32> = lcg(2, n * d).iter().map(|&v| v as f32).collect();
        let q: Vec<f32> = lcg(3, n * d).iter().map(|&v| (v * 2.0) as f32).collect();
        let basis = KeyBasis::new(&gram(&k, n, d, true), &gram(&q, n, d, false), d);
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
            let (sig2, _) = sym_eig(&mm(&transpose_nd(&s, n, n), &s, n, n, n), n);
            let tail: f64 = sig2[r..].iter().map(|x| x.max(0.0)).sum();
            assert!((resid - tail).abs() <= 1e-8 * (1.0 + tail), "r {r}: {resid} vs {tail}");
        }
    }

    fn transpose_nd(a: &[f64], n: usize, d: usize) -> Vec<f64> {
        (0..n * d).map(|x| a[(x % n) * d + x / n]).collect()
    }
}
