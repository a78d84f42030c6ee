//! Rank-r rebuilding of the attention pattern (docs/definitions.md §6).
//!
//! The field is bilinear in feature space, E_ij = a_iᵀ b_j (canonical features
//! a_i = [s·q_i, (slope), −m_i], b_j = [k_j, (j), 1], p = d + 1 (+ 1)). A rank-r
//! field is E_r(i,j) = a_iᵀ Π b_j with a p×p operator Π of rank ≤ r + 1, stored in
//! these text-independent coordinates, so a basis found on one text
//! (calibration) can be applied to another (evaluation).
//!
//! P(i,·) = softmax over C_i of E_i·, P_r(i,·) = softmax over C_i of E_r(i,·);
//! reported: mean row KL(P‖P_r) in nats and top-1 agreement, over the check rows.

use crate::dense;
use crate::error::{FieldError, Result};
use crate::features::{build, conjugate, Fault};
use crate::input::{HeadInput, LogitTransform, Values};
use crate::keys::random_projector_mat;
use crate::linalg::{matmul, pinv, thin_r, thin_svd};
use crate::params::{Method, Params};
use crate::rows::{blocks, check_rows, log_sum_exp};
use crate::spectrum::rows_view;
use faer::Mat;
use serde::{Deserialize, Serialize};

/// Where the r directions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Top-r singular directions of E on the calibration head (Eckart–Young on that text).
    Data,
    /// Top-r singular directions of M = W_Q W_Kᵀ, mapped to head space (weights only).
    Weights,
    /// r random orthonormal directions of head space (seeded).
    Random {
        /// Seed of the generator ([`crate::Rng`], SplitMix64).
        seed: u64,
    },
}

/// A rank-r operator Π on the p-dimensional feature space, in canonical coordinates.
#[derive(Clone, Debug, PartialEq)]
///
/// Built only by [`projector`]; read through the accessors.
pub struct Projector {
    basis: Basis,
    r: usize,
    d: usize,
    alibi: bool,
    pi: Vec<f64>,
}

impl Projector {
    /// The basis it came from.
    pub fn basis(&self) -> Basis {
        self.basis
    }
    /// The rank that was asked for.
    pub fn rank(&self) -> usize {
        self.r
    }
    /// Head dimension d it applies to.
    pub fn head_dim(&self) -> usize {
        self.d
    }
    /// Whether the feature space has the ALiBi coordinate.
    pub fn alibi(&self) -> bool {
        self.alibi
    }
    /// Π, p × p row-major (p = [`Self::feature_dim`]), canonical coordinates.
    pub fn pi(&self) -> &[f64] {
        &self.pi
    }
    /// The head-space d × d block of Π (row-major): the operator applied to
    /// keys and queries (for `Weights` and `Random`, Π = diag(this, 1, (1))).
    pub fn head_block(&self) -> Vec<f64> {
        let (d, p) = (self.d, self.feature_dim());
        (0..d * d).map(|x| self.pi[(x / d) * p + x % d]).collect()
    }
    /// Feature dimension p.
    pub fn feature_dim(&self) -> usize {
        self.d + 1 + usize::from(self.alibi)
    }
    fn check(&self, head: &HeadInput<'_>) -> Result<()> {
        if self.d != head.d || self.alibi != head.alibi_slope.is_some() {
            return Err(FieldError::ProjectorMismatch {
                projector_d: self.d,
                projector_alibi: self.alibi,
                head_d: head.d,
                head_alibi: head.alibi_slope.is_some(),
            });
        }
        Ok(())
    }
}

/// Pattern fidelity of a rank-r field.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Mean over check rows of KL(P‖P_r), nats (≥ 0).
    pub kl: f64,
    /// Fraction of check rows whose P_r argmax is an argmax of P (ties in P count as agreement).
    pub top1: f64,
    /// How many rows were used.
    pub check_rows: usize,
}

/// Head-space d×d block diag(G, 1, (1)) as a p×p row-major operator.
fn block(g: &Mat<f64>, d: usize, p: usize) -> Vec<f64> {
    let mut pi = vec![0.0; p * p];
    for r in 0..d {
        for c in 0..d {
            pi[r * p + c] = g[(r, c)];
        }
    }
    for t in d..p {
        pi[t * p + t] = 1.0;
    }
    pi
}

/// x·U_r·Σ_r·V_rᵀ·yᵀ for an SVD core = U Σ Vᵀ (r clamped to the number of values).
fn truncated_sandwich(x: &Mat<f64>, core: &Mat<f64>, y: &Mat<f64>, r: usize) -> Result<Mat<f64>> {
    let (u, s, v) = thin_svd(core.as_ref())?;
    let r = r.min(s.len());
    let us = Mat::from_fn(u.nrows(), r, |i, k| u[(i, k)] * s[k]);
    let mid = matmul(us.as_ref(), v.as_ref().get(.., ..r).transpose());
    Ok(matmul(matmul(x.as_ref(), mid.as_ref()).as_ref(), y.as_ref().transpose()))
}

/// Builds the rank-r operator of `basis` from `head` (the calibration head);
/// guarantees rank(Π restricted to the bilinear part) ≤ r.
///
/// * `Data`: Π = R_A⁺ X_r Σ_r Y_rᵀ (R_Bᵀ)⁺ from thin QRs A = Q_A R_A, B = Q_B R_B
///   and R_A R_Bᵀ = X Σ Yᵀ; on the calibration head A Π Bᵀ is the Eckart–Young
///   truncation E_r when R_A, R_B have full row rank. r ≥ min(n, p) keeps all.
/// * `Weights`: Π = diag(G_r, 1, (1)), G_r = R1⁺ U_r Σ_r V_rᵀ (R2ᵀ)⁺ from W_Q = Q1R1,
///   W_K = Q2R2, R1R2ᵀ = UΣVᵀ; r ≥ d gives the identity. Needs `head.weights`.
///   Applied to post-rotary q, k as they are (rotary does not commute with G_r).
/// * `Random { seed }`: Π = diag(W Wᵀ, 1, (1)), W a seeded random orthonormal d × min(r, d).
pub fn projector(head: &HeadInput<'_>, basis: &Basis, r: usize) -> Result<Projector> {
    head.validate()?;
    let (d, p) = (head.d, head.feature_dim());
    let pi = match basis {
        Basis::Data => {
            if head.transform != LogitTransform::None {
                return Err(FieldError::SoftcapUnsupported);
            }
            let f = build(head, Fault::None);
            let r_a = thin_r(rows_view(&f.a, head.n, p));
            let r_b = thin_r(rows_view(&f.b, head.n, p));
            let core = matmul(r_a.as_ref(), r_b.as_ref().transpose());
            let pa = pinv(r_a.as_ref())?;
            let pb = pinv(r_b.as_ref())?;
            let pi_c = truncated_sandwich(&pa, &core, &pb, r)?; // p × p, centred coordinates
            let flat: Vec<f64> = (0..p * p).map(|x| pi_c[(x / p, x % p)]).collect();
            conjugate(&flat, &f.shift, -1.0)
        }
        Basis::Weights => {
            let w = head.weights.as_ref().ok_or(FieldError::MissingWeights)?;
            let g = if r >= d {
                Mat::<f64>::identity(d, d)
            } else {
                let wm = |v: &Values<'_>| Mat::from_fn(w.d_model, d, |i, j| v.get(i * d + j));
                let r1 = thin_r(wm(&w.w_q).as_ref());
                let r2 = thin_r(wm(&w.w_k).as_ref());
                let core = matmul(r1.as_ref(), r2.as_ref().transpose());
                truncated_sandwich(&pinv(r1.as_ref())?, &core, &pinv(r2.as_ref())?, r)?
            };
            block(&g, d, p)
        }
        Basis::Random { seed } => block(&random_projector_mat(d, r, *seed), d, p),
    };
    Ok(Projector { basis: *basis, r, d, alibi: head.alibi_slope.is_some(), pi })
}

/// Accumulates KL and top-1 over rows given E and E_r on the support.
#[derive(Default)]
struct Acc {
    kl: f64,
    agree: usize,
    rows: usize,
}

impl Acc {
    fn row(&mut self, e: &[f64], er: &[f64]) {
        let (l, lr) = (log_sum_exp(e), log_sum_exp(er));
        let kl: f64 = e
            .iter()
            .zip(er)
            .map(|(&x, &y)| {
                let lp = x - l;
                lp.exp() * (lp - (y - lr))
            })
            .sum();
        self.kl += kl.max(0.0);
        let emax = e.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x));
        let mut jr = 0;
        for (j, &y) in er.iter().enumerate() {
            if y > er[jr] {
                jr = j;
            }
        }
        let big = e.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
        if e[jr] >= emax - 1e-9 * (1.0 + big) {
            self.agree += 1;
        }
        self.rows += 1;
    }
    fn finish(self) -> Fidelity {
        let r = self.rows.max(1) as f64;
        Fidelity { kl: self.kl / r, top1: self.agree as f64 / r, check_rows: self.rows }
    }
}

/// Reads `head` (the evaluation head) and `proj`, and returns the mean row
/// KL(P‖P_r) and top-1 agreement over the check rows of `params`.
///
/// Factored: blocks of check rows, E and E_r = Ã·Π̃·B̃ᵀ by one GEMM per block, O(n·p)
/// memory. Dense: builds
/// E and E_r = A Π Bᵀ (n×n). Soft-capped heads are an error (the field is not bilinear).
pub fn rank_r_fidelity(head: &HeadInput<'_>, proj: &Projector, params: &Params) -> Result<Fidelity> {
    head.validate()?;
    proj.check(head)?;
    if head.transform != LogitTransform::None {
        return Err(FieldError::SoftcapUnsupported);
    }
    if params.max_check_rows == 0 {
        return Err(FieldError::InvalidParam("max_check_rows must be ≥ 1".into()));
    }
    let rows = check_rows(head.n, params.max_check_rows);
    let p = proj.feature_dim();
    let mut acc = Acc::default();
    match params.method {
        Method::Factored => {
            let f = build(head, Fault::None);
            let pi = conjugate(&proj.pi, &f.shift, 1.0);
            let pim = Mat::from_fn(p, p, |r, c| pi[r * p + c]);
            for (trange, span) in blocks(head, &rows) {
                let brows = &rows[trange];
                let m = brows.len();
                // [Ã_rows; Ã_rows·Π̃] (2m × p), then one GEMM with B̃[span]: columns are E and E_r rows
                let ab = Mat::from_fn(m, p, |t, c| f.a[brows[t] * p + c]);
                let abp = matmul(ab.as_ref(), pim.as_ref());
                let both = Mat::from_fn(2 * m, p, |t, c| if t < m { ab[(t, c)] } else { abp[(t - m, c)] });
                let bb = rows_view(&f.b[span.start * p..span.end * p], span.len(), p);
                let eb = matmul(bb, both.as_ref().transpose()); // span × 2m
                for (t, &i) in brows.iter().enumerate() {
                    let sup = head.support_range(i);
                    let (lo, hi) = (sup.start - span.start, sup.end - span.start);
                    acc.row(&eb.col_as_slice(t)[lo..hi], &eb.col_as_slice(m + t)[lo..hi]);
                }
            }
        }
        Method::Dense => {
            let (n, d) = (head.n, head.d);
            let s = dense::logits(head);
            let e = dense::field(head);
            let slope = head.alibi_slope;
            // canonical features; the dense row mean S_ij − E_ij (any j) uses the
            // bias slope·(j − i); the canonical one uses slope·j, so add slope·i
            let a = Mat::from_fn(n, p, |i, t| {
                if t < d {
                    head.scale * head.q.get(i * d + t)
                } else if t == p - 1 {
                    -(s[(i, 0)] - e[(i, 0)] + slope.unwrap_or(0.0) * i as f64)
                } else {
                    slope.unwrap_or(0.0)
                }
            });
            let b = Mat::from_fn(n, p, |j, t| {
                if t < d {
                    head.k.get(j * d + t)
                } else if t == p - 1 {
                    1.0
                } else {
                    j as f64
                }
            });
            let pim = Mat::from_fn(p, p, |r, c| proj.pi[r * p + c]);
            let er = matmul(matmul(a.as_ref(), pim.as_ref()).as_ref(), b.as_ref().transpose());
            for &i in &rows {
                let range = head.support_range(i);
                let ei: Vec<f64> = range.clone().map(|j| e[(i, j)]).collect();
                let eri: Vec<f64> = range.map(|j| er[(i, j)]).collect();
                acc.row(&ei, &eri);
            }
        }
    }
    Ok(acc.finish())
}

/// Reference for the data basis on its own calibration head: E_r = the
/// Eckart–Young truncation of the dense E (full SVD), then KL / top-1.
#[doc(hidden)]
pub fn dense_truncated_fidelity(head: &HeadInput<'_>, r: usize, params: &Params) -> Result<Fidelity> {
    head.validate()?;
    let n = head.n;
    let e = dense::field(head);
    let (u, s, v) = thin_svd(e.as_ref())?;
    let r = r.min(s.len());
    let us = Mat::from_fn(n, r, |i, k| u[(i, k)] * s[k]);
    let er = matmul(us.as_ref(), v.as_ref().get(.., ..r).transpose());
    let mut acc = Acc::default();
    for &i in &check_rows(n, params.max_check_rows) {
        let range = head.support_range(i);
        let ei: Vec<f64> = range.clone().map(|j| e[(i, j)]).collect();
        let eri: Vec<f64> = range.map(|j| er[(i, j)]).collect();
        acc.row(&ei, &eri);
    }
    Ok(acc.finish())
}
