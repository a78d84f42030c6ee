//! The bilinear form of the field: E_ij = ã_iᵀ b̃_j with ã_i, b̃_j ∈ R^p.
//!
//! Canonical features (text-independent coordinates):
//!   a_i = [s·q_i, (slope), −m_i],  b_j = [k_j, (j), 1]   (p = d + 1, + 1 with ALiBi).
//! ALiBi's b_ij = −slope·(i − j) equals slope·j up to a per-row constant, which
//! the centring removes, so it adds exactly one feature.
//!
//! Stored (centred) features, used for every computation because they avoid
//! cancellation when keys share a large common offset:
//!   b̃_j = T·b_j = [k_j − k̄, (j − j̄), 1],  ã_i = T⁻ᵀ·a_i = [s·q_i, (slope), −m̃_i],
//! with k̄ the mean key, j̄ = (n−1)/2, and m̃_i = mean_{C_i} of s·q_i·(k_j − k̄) + slope·(j − j̄).
//! T = I − c·e_pᵀ with c = [k̄, (j̄), 0]; ãᵀb̃ = aᵀb, so E is unchanged and
//! span(B̃) = span(B) (same spectrum, same leverage scores).

use crate::input::HeadInput;
use crate::linalg::compensated_sum;

/// A deliberately wrong field, for tests that show the checks catch errors.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    /// The correct field.
    #[default]
    None,
    /// m_i taken over all keys 0..n instead of the support C_i.
    MeanOverAllKeys,
}

/// Centred features of one head (row-major n × p each).
pub(crate) struct Features {
    pub n: usize,
    pub p: usize,
    /// ã, n × p row-major.
    pub a: Vec<f64>,
    /// b̃, n × p row-major.
    pub b: Vec<f64>,
    /// c of T = I − c·e_pᵀ: [k̄, (j̄), 0] (length p).
    pub shift: Vec<f64>,
}

impl Features {
    /// ã_i.
    #[inline]
    pub fn a_row(&self, i: usize) -> &[f64] {
        &self.a[i * self.p..(i + 1) * self.p]
    }
    /// b̃_j.
    #[inline]
    pub fn b_row(&self, j: usize) -> &[f64] {
        &self.b[j * self.p..(j + 1) * self.p]
    }
}

/// The mean key k̄ (length d) of the n × d row-major `k`, compensated so that
/// equal keys centre to (almost) exactly zero. Every user of the centred keys
/// (the features here, [`crate::KeyFactor`]) takes k̄ from this one function,
/// so they see bit-identical b̃.
pub(crate) fn key_mean(k: &crate::input::Values<'_>, n: usize, d: usize) -> Vec<f64> {
    (0..d).map(|t| compensated_sum((0..n).map(|j| k.get(j * d + t))) / n as f64).collect()
}

/// Builds ã, b̃ in O(n·d) time and memory (window means by running sums,
/// re-summed from scratch every w rows so subtraction error cannot drift).
pub(crate) fn build(head: &HeadInput<'_>, fault: Fault) -> Features {
    let (n, d) = (head.n, head.d);
    let alibi = head.alibi_slope;
    let p = head.feature_dim();
    // k̄ came with a key factor built from these very keys (the same function,
    // so the same bits); else it is summed here
    let k_mean = match head.key_factor {
        Some(kf) if kf.check(&head.k, n, d).is_ok() => kf.mean.clone(),
        _ => key_mean(&head.k, n, d),
    };
    let j_mean = (n as f64 - 1.0) / 2.0;
    let mut b = vec![0.0; n * p];
    for j in 0..n {
        let row = &mut b[j * p..(j + 1) * p];
        for t in 0..d {
            row[t] = head.k.get(j * d + t) - k_mean[t];
        }
        if alibi.is_some() {
            row[d] = j as f64 - j_mean;
        }
        row[p - 1] = 1.0;
    }
    // mean of k̃ over C_i: running sum over the support
    let mut a = vec![0.0; n * p];
    let mut sum = vec![0.0; d];
    let window = match head.support {
        crate::input::Support::Window(w) if w < n => Some(w),
        _ => None,
    };
    for i in 0..n {
        let range = head.support_range(i);
        match window {
            Some(w) if i % w == 0 => {
                // re-sum from scratch
                sum.iter_mut().for_each(|x| *x = 0.0);
                for j in range.clone() {
                    for t in 0..d {
                        sum[t] += b[j * p + t];
                    }
                }
            }
            _ => {
                for t in 0..d {
                    sum[t] += b[i * p + t];
                }
                if range.start > 0 && window.is_some() {
                    let out = range.start - 1;
                    for t in 0..d {
                        sum[t] -= b[out * p + t];
                    }
                }
            }
        }
        let (cnt, mean_j) = match fault {
            Fault::None => (range.len() as f64, (range.start + i) as f64 / 2.0 - j_mean),
            Fault::MeanOverAllKeys => (f64::NAN, 0.0),
        };
        let row = &mut a[i * p..(i + 1) * p];
        let mut qk = 0.0;
        for t in 0..d {
            let sq = head.scale * head.q.get(i * d + t);
            row[t] = sq;
            qk += sq * sum[t];
        }
        // Fault: the mean over all keys of k̃ is 0, so m̃ = 0
        let mut m = if fault == Fault::None { qk / cnt } else { 0.0 };
        if let Some(slope) = alibi {
            row[d] = slope;
            m += slope * mean_j;
        }
        row[p - 1] = -m;
    }
    let mut shift = vec![0.0; p];
    shift[..d].copy_from_slice(&k_mean);
    if alibi.is_some() {
        shift[d] = j_mean;
    }
    Features { n, p, a, b, shift }
}

/// T·Π·T⁻¹ for T = I − c·e_pᵀ (sign = +1) or T⁻¹·Π·T (sign = −1); Π is p×p row-major.
///
/// Converts an operator between canonical coordinates (Π_can) and the centred
/// coordinates of one text: Π̃ = T Π_can T⁻¹, Π_can = T⁻¹ Π̃ T.
pub(crate) fn conjugate(pi: &[f64], c: &[f64], sign: f64) -> Vec<f64> {
    let p = c.len();
    let mut x = pi.to_vec();
    // left: (I − s·c e_pᵀ)·Π  → row r −= s·c_r·row p−1
    for r in 0..p - 1 {
        let cr = sign * c[r];
        if cr != 0.0 {
            for col in 0..p {
                x[r * p + col] -= cr * pi[(p - 1) * p + col];
            }
        }
    }
    // right: X·(I + s·c e_pᵀ) → column p−1 += s·Σ_r X[:, r]·c_r
    for row in 0..p {
        let mut add = 0.0;
        for r in 0..p - 1 {
            add += x[row * p + r] * c[r];
        }
        x[row * p + p - 1] += sign * add;
    }
    x
}
