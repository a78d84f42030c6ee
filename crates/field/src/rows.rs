//! Row checks (SPEC §1): zero-sum residual, shift consistency against the
//! model's own softmax, and attention entropy, streamed one row at a time.
//!
//! Both implementations feed the same rows here (see [`check_rows`]) and only
//! differ in how they produce E_ij on the support, so they agree by construction
//! up to the rounding of E itself.

use crate::input::{HeadInput, LogitTransform, Values};
use crate::linalg::{dot, dot32};
use std::borrow::Cow;

/// The rows the row checks use: all of 0..n when n ≤ `max`, else `max` evenly
/// spaced rows round(t·(n−1)/(max−1)), t = 0..max, always including 0 and n−1.
pub fn check_rows(n: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    if n <= max {
        return (0..n).collect();
    }
    if max == 1 {
        return vec![n - 1];
    }
    (0..max)
        .map(|t| ((t as f64) * ((n - 1) as f64) / ((max - 1) as f64)).round() as usize)
        .collect()
}

/// Results of the row checks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RowChecks {
    pub zero_sum_residual: f64,
    pub shift_consistency: f64,
    pub attention_entropy: f64,
}

/// The model's logits for one row, recomputed in the model's precision.
pub(crate) enum ModelLogits<'a> {
    F32 { q: Cow<'a, [f32]>, k: Cow<'a, [f32]>, d: usize, scale: f32, slope: Option<f32>, cap: Option<f32> },
    F64 { q: Cow<'a, [f64]>, k: Cow<'a, [f64]>, d: usize, scale: f64, slope: Option<f64>, cap: Option<f64> },
}

fn f32s<'a>(v: &Values<'a>) -> Cow<'a, [f32]> {
    match v {
        Values::F32(s) => Cow::Borrowed(s),
        Values::F64(_) => Cow::Owned(v.to_f32()),
    }
}
fn f64s<'a>(v: &Values<'a>) -> Cow<'a, [f64]> {
    match v {
        Values::F64(s) => Cow::Borrowed(s),
        Values::F32(_) => Cow::Owned(v.to_f64()),
    }
}

impl<'a> ModelLogits<'a> {
    /// f32 when Q or K came in f32 (the model ran in f32), else f64.
    pub fn new(head: &HeadInput<'a>) -> Self {
        let cap = match head.transform {
            LogitTransform::None => None,
            LogitTransform::Softcap(c) => Some(c),
        };
        if head.model_is_f32() {
            ModelLogits::F32 {
                q: f32s(&head.q),
                k: f32s(&head.k),
                d: head.d,
                scale: head.scale as f32,
                slope: head.alibi_slope.map(|m| m as f32),
                cap: cap.map(|c| c as f32),
            }
        } else {
            ModelLogits::F64 { q: f64s(&head.q), k: f64s(&head.k), d: head.d, scale: head.scale, slope: head.alibi_slope, cap }
        }
    }

    /// Writes log P_ij (j in `range`, max-subtracted log-softmax in the model's
    /// precision, widened to f64) into `out`; returns max_j |logit_ij|.
    pub fn log_probs(&self, i: usize, range: std::ops::Range<usize>, out: &mut Vec<f64>) -> f64 {
        out.clear();
        match self {
            ModelLogits::F32 { q, k, d, scale, slope, cap } => {
                let qi = &q[i * d..(i + 1) * d];
                let mut l: Vec<f32> = range
                    .clone()
                    .map(|j| {
                        let mut x = scale * dot32(qi, &k[j * d..(j + 1) * d]);
                        if let Some(m) = slope {
                            x += m * (j as f32 - i as f32);
                        }
                        if let Some(c) = cap {
                            x = c * (x / c).tanh();
                        }
                        x
                    })
                    .collect();
                let big = l.iter().fold(0.0f32, |a, &x| a.max(x.abs())) as f64;
                let mx = l.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
                let z: f32 = l.iter().map(|&x| (x - mx).exp()).sum();
                let lse = mx + z.ln();
                for x in l.iter_mut() {
                    *x -= lse;
                }
                out.extend(l.iter().map(|&x| x as f64));
                big
            }
            ModelLogits::F64 { q, k, d, scale, slope, cap } => {
                let qi = &q[i * d..(i + 1) * d];
                out.extend(range.clone().map(|j| {
                    let mut x = scale * dot(qi, &k[j * d..(j + 1) * d]);
                    if let Some(m) = slope {
                        x += m * (j as f64 - i as f64);
                    }
                    if let Some(c) = cap {
                        x = c * (x / c).tanh();
                    }
                    x
                }));
                let big = out.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
                let lse = log_sum_exp(out);
                for x in out.iter_mut() {
                    *x -= lse;
                }
                big
            }
        }
    }
}

/// log Σ exp(x), max-subtracted (never overflows, never −inf for finite x).
pub(crate) fn log_sum_exp(x: &[f64]) -> f64 {
    let mx = x.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
    mx + x.iter().map(|&v| (v - mx).exp()).sum::<f64>().ln()
}

/// Entropy (nats) of softmax(x).
pub(crate) fn softmax_entropy(x: &[f64]) -> f64 {
    let lse = log_sum_exp(x);
    -x.iter()
        .map(|&v| {
            let lp = v - lse;
            lp.exp() * lp
        })
        .sum::<f64>()
}

/// Runs the row checks on `rows`; `e_row(i, out)` must write E_ij for j in
/// C_i (in order) into `out` and return the row's rounding scale ρ_i (E_ij is
/// accurate to about (|C_i| + d)·ε·ρ_i).
///
/// A row whose field is at that rounding level (max |E_ij| ≤ 8·(|C_i| + d)·ε·ρ_i),
/// or which has a single key (E_ii = 0 by algebra), has no meaningful
/// |ΣE|/Σ|E| and contributes a zero-sum residual of 0.
pub(crate) fn row_checks(head: &HeadInput<'_>, rows: &[usize], mut e_row: impl FnMut(usize, &mut Vec<f64>) -> f64) -> RowChecks {
    let model = ModelLogits::new(head);
    let (mut zs, mut sc, mut ent) = (0.0f64, 0.0f64, 0.0f64);
    let mut e = Vec::new();
    let mut lp = Vec::new();
    for &i in rows {
        let range = head.support_range(i);
        let rho = e_row(i, &mut e);
        debug_assert_eq!(e.len(), range.len());
        model.log_probs(i, range.clone(), &mut lp);
        // zero-sum
        let sum: f64 = e.iter().sum();
        let abs: f64 = e.iter().map(|x| x.abs()).sum();
        let emax = e.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
        let floor = 8.0 * ((range.len() + head.d) as f64) * f64::EPSILON * rho;
        if range.len() > 1 && emax > floor && abs > 0.0 {
            zs = zs.max(sum.abs() / abs);
        }
        // shift consistency: E vs centred log P, in f64
        let mean_lp = lp.iter().sum::<f64>() / lp.len() as f64;
        for (x, l) in e.iter().zip(&lp) {
            sc = sc.max((x - (l - mean_lp)).abs());
        }
        ent += softmax_entropy(&e);
    }
    RowChecks {
        zero_sum_residual: zs,
        shift_consistency: sc,
        attention_entropy: if rows.is_empty() { 0.0 } else { ent / rows.len() as f64 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rows_cover_ends() {
        assert_eq!(check_rows(5, 10), vec![0, 1, 2, 3, 4]);
        let r = check_rows(10_000, 1024);
        assert_eq!(r.len(), 1024);
        assert_eq!(r[0], 0);
        assert_eq!(*r.last().unwrap(), 9_999);
        assert!(r.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(check_rows(7, 1), vec![6]);
    }

    #[test]
    fn entropy_of_uniform_is_log_len() {
        assert!((softmax_entropy(&[0.3; 8]) - 8f64.ln()).abs() < 1e-14);
        assert!(softmax_entropy(&[0.0, -1e4]).abs() < 1e-12);
    }
}
