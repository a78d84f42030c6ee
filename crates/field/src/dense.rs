//! The dense reference: forms E (n×n, f64) entry by entry and takes its full
//! SVD. O(n²·d + n³) time, O(n²) memory. Used by tests, by
//! `analyze --dense-check`, and for soft-capped logits (which are not bilinear).

use crate::error::Result;
use crate::input::{HeadInput, LogitTransform};
use crate::leverage;
use crate::linalg::{compensated_sum, matmul, singular_values};
use crate::params::{Method, Params};
use crate::rows::{check_rows, row_checks};
use crate::Parts;
use faer::Mat;

/// The extended logits S_ij = s·q_i·k_j + slope·(j − i) (then the transform), all i, j.
pub(crate) fn logits(head: &HeadInput<'_>) -> Mat<f64> {
    let (n, d) = (head.n, head.d);
    let q = Mat::from_fn(n, d, |i, t| head.q.get(i * d + t));
    let k = Mat::from_fn(n, d, |i, t| head.k.get(i * d + t));
    let mut s = matmul(q.as_ref(), k.as_ref().transpose());
    for j in 0..n {
        for i in 0..n {
            let mut x = head.scale * s[(i, j)];
            if let Some(m) = head.alibi_slope {
                x += m * (j as f64 - i as f64);
            }
            if let LogitTransform::Softcap(c) = head.transform {
                x = c * (x / c).tanh();
            }
            s[(i, j)] = x;
        }
    }
    s
}

/// The energy field E_ij = S_ij − m_i, m_i the (compensated) mean of S_i· over C_i.
pub(crate) fn field(head: &HeadInput<'_>) -> Mat<f64> {
    field_and_mean(head).0
}

/// E and the row means m.
pub(crate) fn field_and_mean(head: &HeadInput<'_>) -> (Mat<f64>, Vec<f64>) {
    let mut e = logits(head);
    let mut means = Vec::with_capacity(head.n);
    for i in 0..head.n {
        let range = head.support_range(i);
        let m = compensated_sum(range.clone().map(|j| e[(i, j)])) / range.len() as f64;
        for j in 0..head.n {
            e[(i, j)] -= m;
        }
        means.push(m);
    }
    (e, means)
}

/// Key energies c_j = mean over R_j of E_ij², directly from E.
pub(crate) fn key_energy(head: &HeadInput<'_>, e: &Mat<f64>) -> Vec<f64> {
    (0..head.n)
        .map(|j| {
            let r = head.readers_range(j);
            let len = r.len() as f64;
            r.map(|i| e[(i, j)] * e[(i, j)]).sum::<f64>() / len
        })
        .collect()
}

/// All measures, densely.
pub(crate) fn analyze(head: &HeadInput<'_>, params: &Params) -> Result<Parts> {
    let (n, d) = (head.n, head.d);
    let (e, means) = field_and_mean(head);
    let sv = singular_values(e.as_ref())?;
    let c = key_energy(head, &e);
    let bk = Mat::from_fn(n, d + 1, |j, t| if t < d { head.k.get(j * d + t) } else { 1.0 });
    let lev = leverage::dense(bk.as_ref())?;
    let rows = check_rows(n, params.max_check_rows);
    let (checks, _) = row_checks(head, &rows, false, |brows, span, eb, ld, rho| {
        for (t, &i) in brows.iter().enumerate() {
            for j in span.clone() {
                eb[t * ld + j - span.start] = e[(i, j)];
            }
            // S_ij = E_ij + m_i: rounding of the row is relative to the logits
            rho[t] = head.support_range(i).fold(0.0f64, |a, j| a.max((e[(i, j)] + means[i]).abs()));
        }
    });
    Ok(Parts { method: Method::Dense, sv_all: sv, checks, check_rows: rows.len(), key_energy: c, leverage: lev })
}
