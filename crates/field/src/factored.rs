//! The factored implementation: every measure in O(n·d²) time and O(n·d)
//! memory, never forming an n×n matrix (docs/definitions.md, "How it is computed").
//!
//! E = Ã·B̃ᵀ (see [`crate::features`]). σ(E) = σ(R_A·R_Bᵀ) from thin QRs;
//! key energies from a running Gram matrix G = Σ_{i∈R_j} ã_i ã_iᵀ;
//! leverage from the thin QR of B̃ = [K − 1k̄ᵀ, 1]; row checks stream rows.

use crate::error::Result;
use crate::features::{build, Fault, Features};
use crate::input::{HeadInput, Support};
use crate::kernels::{tile_f64, Panel, ROWS};
use crate::laps::Laps;
use crate::leverage;
use crate::linalg::dot;
use crate::output::HeadField;
use crate::params::{Method, Params};
use crate::rows::{check_rows, row_checks};
use crate::small_svd::small_singular_values;
use crate::spectrum::rows_view;
use crate::Parts;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use std::ops::Range;

/// Keys per block of the key-energy sweep.
const KEY_BLOCK: usize = 256;

/// G += sign·Ã[rows]ᵀ·Ã[rows] (p × p, one GEMM).
fn gram_update(g: &mut Mat<f64>, f: &Features, rows: Range<usize>, sign: f64) {
    if rows.is_empty() {
        return;
    }
    let a = rows_view(&f.a[rows.start * f.p..rows.end * f.p], rows.len(), f.p);
    matmul(g.as_mut(), Accum::Add, a.transpose(), a, sign, Par::Seq);
}

/// Key energies c_j = (1/|R_j|)·Σ_{i∈R_j} (ã_i·b̃_j)², R_j = [j, min(n, j + w)),
/// in blocks J = [j0, j1) of keys, last block first, all by GEMM:
///
/// * rows inside the block, [j, j1): from the block product B̃_J·Ã_Jᵀ;
/// * rows [j1, min(n, j0 + w)) shared by every key of the block: b̃_jᵀ G b̃_j with
///   G = Σ ã_i ã_iᵀ over those rows, slid down block by block (windows subtract
///   the rows that leave and rebuild G from scratch after w removed rows, so
///   rounding cannot drift);
/// * windows only, rows [max(j1, j0 + w), j + w): from one more block product.
///
/// O(n·p²) time, O(p² + block·p) extra memory. Tiny negatives clamp to 0.
pub(crate) fn key_energy(head: &HeadInput<'_>, f: &Features) -> Vec<f64> {
    let (n, p) = (f.n, f.p);
    let w = match head.support {
        Support::Window(w) if w < n => w,
        _ => n,
    };
    let mut c = vec![0.0; n];
    let mut g = Mat::<f64>::zeros(p, p);
    let (mut g_lo, mut g_hi) = (n, n); // G holds rows [g_lo, g_hi)
    let mut removed = 0usize;
    for blk in (0..n.div_ceil(KEY_BLOCK)).rev() {
        let j0 = blk * KEY_BLOCK;
        let j1 = (j0 + KEY_BLOCK).min(n);
        let m = j1 - j0;
        let c_hi = (j0 + w).min(n).max(j1); // shared rows [j1, c_hi)
        if removed >= w {
            g.fill(0.0);
            gram_update(&mut g, f, j1..c_hi, 1.0);
            removed = 0;
        } else {
            gram_update(&mut g, f, j1..g_lo, 1.0);
            gram_update(&mut g, f, c_hi..g_hi, -1.0);
            removed += g_hi - c_hi;
        }
        (g_lo, g_hi) = (j1, c_hi);
        let bj = rows_view(&f.b[j0 * p..j1 * p], m, p);
        // shared rows
        if c_hi > j1 {
            let bg = matmul_seq(bj, g.as_ref());
            for t in 0..m {
                c[j0 + t] = (0..p).map(|r| bg[(t, r)] * bj[(t, r)]).sum::<f64>();
            }
        }
        // rows inside the block
        let aj = rows_view(&f.a[j0 * p..j1 * p], m, p);
        let inside = matmul_seq(aj, bj.transpose()); // (i − j0, j − j0)
        for t in 0..m {
            let hi = (t + w).min(m);
            c[j0 + t] += (t..hi).map(|u| inside[(u, t)] * inside[(u, t)]).sum::<f64>();
        }
        // windows: rows past the shared range, [max(j1, j0 + w), min(n, j1 − 1 + w))
        let (e0, e1) = ((j0 + w).max(j1), (j1 - 1 + w).min(n));
        if e1 > e0 {
            let ae = rows_view(&f.a[e0 * p..e1 * p], e1 - e0, p);
            let extra = matmul_seq(ae, bj.transpose()); // (i − e0, j − j0)
            for t in 0..m {
                let hi = (j0 + t + w).min(e1);
                if hi > e0 {
                    c[j0 + t] += (e0..hi).map(|i| extra[(i - e0, t)] * extra[(i - e0, t)]).sum::<f64>();
                }
            }
        }
        for t in 0..m {
            let j = j0 + t;
            c[j] = (c[j] / head.readers_range(j).len() as f64).max(0.0);
        }
    }
    c
}

fn matmul_seq(a: faer::MatRef<'_, f64>, b: faer::MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, Par::Seq);
    out
}

/// All measures, factored. `fault` is a test hook (see [`Fault`]).
pub(crate) fn analyze(head: &HeadInput<'_>, params: &Params, fault: Fault) -> Result<Parts> {
    analyze_timed(head, params, fault, &mut Laps::default())
}

/// [`analyze`], closing a lap of `laps` after each stage.
///
/// When every row is a check row (n ≤ `params.max_check_rows`) the row checks
/// form every E_ij of the support anyway, so the key energies are summed there
/// (Σ_i E_ij² over R_j, the same entries as the blocked sweep's in-block
/// products) instead of by [`key_energy`].
pub(crate) fn analyze_timed(head: &HeadInput<'_>, params: &Params, fault: Fault, laps: &mut Laps) -> Result<Parts> {
    let (n, d) = (head.n, head.d);
    let mut f = build(head, fault);
    let p = f.p;
    laps.lap("features (centred A, B)");
    // leverage of [K − 1k̄ᵀ, 1] (never the ALiBi column): same span as [K, 1];
    // shared by the query heads of a KV head when the caller built it once
    let (lev, r_k) = match head.key_factor {
        Some(kf) => (kf.leverage.clone(), kf.r.clone()),
        None => crate::shared::factor(&head.k, n, d, &f.shift[..d])?,
    };
    laps.lap("leverage (QR of B)");
    // spectrum: σ(E) = σ(R_A R_Bᵀ), R factors by blocked QR (no n × p copies);
    // without ALiBi B̃ = [K̃, 1] and its R came with the leverage
    let r_a = leverage::blocked_r_rows(&f.a, n, p);
    let r_b = if head.alibi_slope.is_none() { r_k } else { leverage::blocked_r_rows(&f.b, n, p) };
    laps.lap("QR of A");
    let core = crate::linalg::matmul(r_a.as_ref(), r_b.as_ref().transpose());
    let sv = small_singular_values(core.as_ref())?;
    laps.lap("spectrum (SVD of R_A R_Bᵀ)");
    let rows = check_rows(n, params.max_check_rows);
    let all_rows = rows.len() == n;
    let swept = (!all_rows).then(|| key_energy(head, &f));
    laps.lap("key energy (blocked sweep, n > max_check_rows only)");
    let b_norm: Vec<f64> = (0..n).map(|j| dot(f.b_row(j), f.b_row(j)).sqrt()).collect();
    // max of b_norm over 0..=j (the causal supports' maxima, without a scan per row)
    let b_prefix_max: Vec<f64> = b_norm
        .iter()
        .scan(0.0f64, |m, &x| {
            *m = m.max(x);
            Some(*m)
        })
        .collect();
    // B̃ transposed for the register tiles (one O(n·p) copy per head)
    let bt = Panel::new(&f.b, n, p, |v| v);
    // B̃ is read only through the panel from here on: free it, so the panel
    // adds no memory at long contexts (n × p f64 either way)
    f.b = Vec::new();
    let (checks, sums) = row_checks(head, &rows, all_rows, |brows, span, e, ld, rho| {
        // E rows = Ã[rows]·B̃[keys]ᵀ, ROWS rows at a time over the keys their
        // supports reach (sorted rows: the first one's support starts first)
        for (g, grp) in brows.chunks(ROWS).enumerate() {
            let lo = head.support_range(grp[0]).start;
            tile_f64(&f.a, p, grp, &bt, lo..grp[grp.len() - 1] + 1, &mut e[g * ROWS * ld + lo - span.start..], ld);
        }
        for (t, &i) in brows.iter().enumerate() {
            let sup = head.support_range(i);
            let bmax = if sup.start == 0 { b_prefix_max[i] } else { sup.fold(0.0f64, |a, j| a.max(b_norm[j])) };
            rho[t] = dot(f.a_row(i), f.a_row(i)).sqrt() * bmax;
        }
    });
    let c = match (swept, sums) {
        (Some(c), _) => c,
        (None, Some(mut s)) => {
            for (j, x) in s.iter_mut().enumerate() {
                *x = (*x / head.readers_range(j).len() as f64).max(0.0);
            }
            s
        }
        (None, None) => unreachable!("row_checks returns the sums when asked"),
    };
    laps.lap("row checks (zero-sum, shift, entropy; key energy when every row is checked)");
    Ok(Parts { method: Method::Factored, sv_all: sv, checks, check_rows: rows.len(), key_energy: c, leverage: lev })
}

/// Convenience for tests: the factored field with a fault injected.
#[doc(hidden)]
pub fn analyze_with_fault(head: &HeadInput<'_>, params: &Params, fault: Fault) -> Result<HeadField> {
    head.validate()?;
    crate::finish(head, params, analyze(head, params, fault)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::build;

    /// The blocked sweep equals the naive O(n²·p) sum for many windows and block splits.
    #[test]
    fn blocked_key_energy_equals_the_naive_sum() {
        let (n, d) = (1100, 5);
        let q: Vec<f64> = (0..n * d).map(|x| ((x * 37 % 101) as f64 / 50.0 - 1.0) * 1.3).collect();
        let k: Vec<f64> = (0..n * d).map(|x| ((x * 53 % 97) as f64 / 48.0 - 1.0) + 3.0).collect();
        for support in [
            Support::Causal,
            Support::Window(1),
            Support::Window(7),
            Support::Window(256),
            Support::Window(257),
            Support::Window(700),
            Support::Window(1099),
        ] {
            let mut head = HeadInput::new(&q, &k, n, d, 0.4);
            head.support = support;
            let f = build(&head, Fault::None);
            let c = key_energy(&head, &f);
            for (j, &cj) in c.iter().enumerate() {
                let r = head.readers_range(j);
                let want = r.clone().map(|i| dot(f.a_row(i), f.b_row(j)).powi(2)).sum::<f64>() / r.len() as f64;
                assert!((cj - want).abs() <= 1e-11 * (1.0 + want), "{support:?} j={j}: {} vs {want}", c[j]);
            }
        }
    }
}
