//! The factored implementation: every measure in O(n·d²) time and O(n·d)
//! memory, never forming an n×n matrix (SPEC "How to compute it fast").
//!
//! E = Ã·B̃ᵀ (see [`crate::features`]). σ(E) = σ(R_A·R_Bᵀ) from thin QRs;
//! key energies from a running Gram matrix G = Σ_{i∈R_j} ã_i ã_iᵀ;
//! leverage from the thin QR of B̃ = [K − 1k̄ᵀ, 1]; row checks stream rows.

use crate::error::Result;
use crate::features::{build, Fault, Features};
use crate::input::{HeadInput, Support};
use crate::leverage;
use crate::linalg::{dot, matmul, singular_values, thin_qr, thin_r};
use crate::output::HeadField;
use crate::params::Params;
use crate::rows::{check_rows, row_checks};
use crate::spectrum::rows_view;
use crate::Parts;
use faer::Mat;

/// Key energies c_j = b̃_jᵀ G_j b̃_j / |R_j|, G_j = Σ_{i∈R_j} ã_i ã_iᵀ, streaming j = n−1 … 0.
///
/// Windowed supports subtract the row leaving R_j and rebuild G from scratch
/// every w steps (bounded rounding drift). Tiny negatives are clamped to 0.
pub(crate) fn key_energy(head: &HeadInput<'_>, f: &Features) -> Vec<f64> {
    let (n, p) = (f.n, f.p);
    let w = match head.support {
        Support::Window(w) if w < n => Some(w),
        _ => None,
    };
    let mut g = vec![0.0; p * p];
    let mut gb = vec![0.0; p];
    let mut c = vec![0.0; n];
    let add = |g: &mut [f64], a: &[f64], sign: f64| {
        for r in 0..p {
            let ar = sign * a[r];
            let row = &mut g[r * p..(r + 1) * p];
            for (x, &y) in row.iter_mut().zip(a) {
                *x += ar * y;
            }
        }
    };
    for j in (0..n).rev() {
        let readers = head.readers_range(j);
        match w {
            Some(w) if (n - 1 - j) % w == 0 => {
                g.iter_mut().for_each(|x| *x = 0.0);
                for i in readers.clone() {
                    add(&mut g, f.a_row(i), 1.0);
                }
            }
            _ => {
                add(&mut g, f.a_row(j), 1.0);
                if let Some(w) = w {
                    if j + w < n {
                        add(&mut g, f.a_row(j + w), -1.0);
                    }
                }
            }
        }
        let bj = f.b_row(j);
        for r in 0..p {
            gb[r] = dot(&g[r * p..(r + 1) * p], bj);
        }
        c[j] = (dot(bj, &gb) / readers.len() as f64).max(0.0);
    }
    c
}

/// All measures, factored. `fault` is a test hook (see [`Fault`]).
pub(crate) fn analyze(head: &HeadInput<'_>, params: &Params, fault: Fault) -> Result<Parts> {
    let (n, d) = (head.n, head.d);
    let f = build(head, fault);
    let p = f.p;
    // spectrum: σ(E) = σ(R_A R_Bᵀ)
    let r_a = thin_r(rows_view(&f.a, n, p));
    let (q_b, r_b) = thin_qr(rows_view(&f.b, n, p));
    let core = matmul(r_a.as_ref(), r_b.as_ref().transpose());
    let sv = singular_values(core.as_ref())?;
    drop(core);
    // leverage of [K − 1k̄ᵀ, 1]: reuse the QR of B̃ unless ALiBi added a column
    let lev = if head.alibi_slope.is_none() {
        leverage::from_qr(q_b.as_ref(), r_b.as_ref(), n)?
    } else {
        drop(q_b);
        let bk = Mat::from_fn(n, d + 1, |j, t| if t < d { f.b[j * p + t] } else { 1.0 });
        leverage::factored(bk.as_ref())?
    };
    let c = key_energy(head, &f);
    let rows = check_rows(n, params.max_check_rows);
    let b_norm: Vec<f64> = (0..n).map(|j| dot(f.b_row(j), f.b_row(j)).sqrt()).collect();
    let checks = row_checks(head, &rows, |i, out| {
        out.clear();
        let ai = f.a_row(i);
        let mut bmax = 0.0f64;
        out.extend(head.support_range(i).map(|j| {
            bmax = bmax.max(b_norm[j]);
            dot(ai, f.b_row(j))
        }));
        dot(ai, ai).sqrt() * bmax
    });
    Ok(Parts { method: "factored", sv_all: sv, checks, check_rows: rows.len(), key_energy: c, leverage: lev })
}

/// Convenience for tests: the factored field with a fault injected.
#[doc(hidden)]
pub fn analyze_with_fault(head: &HeadInput<'_>, params: &Params, fault: Fault) -> Result<HeadField> {
    head.validate()?;
    crate::finish(head, params, analyze(head, params, fault)?)
}
