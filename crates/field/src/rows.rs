//! Row checks (docs/definitions.md §1): zero-sum residual, shift consistency against the
//! model's own softmax, and attention entropy, streamed one row at a time.
//!
//! Both implementations feed the same rows here (see [`check_rows`]) and only
//! differ in how they produce E_ij on the support, so they agree by construction
//! up to the rounding of E itself.

use crate::input::{HeadInput, LogitTransform, Values};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::borrow::Cow;
use std::ops::Range;

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
    (0..max).map(|t| ((t as f64) * ((n - 1) as f64) / ((max - 1) as f64)).round() as usize).collect()
}

/// Results of the row checks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RowChecks {
    pub zero_sum_residual: f64,
    pub shift_consistency: f64,
    pub attention_entropy: f64,
}

/// The model's logits, recomputed in the model's precision, a block of rows at a time.
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

/// Per-row results of the row checks.
#[derive(Clone, Copy, Default)]
struct RowStat {
    zs: f64,
    sc: f64,
    ent: f64,
}

/// One row, fused: the model's logits `x` (its precision $t), the field `e` on
/// the support (f64) and the rounding floor → zero-sum ratio, shift consistency
/// and entropy, with one exp per entry.
///
/// log P = x − lse (max-subtracted, in $t); shift consistency is
/// max_j |E_j − (logP_j − mean logP)| = max(|max D + μ|, |min D + μ|) with
/// D_j = E_j − logP_j and μ = mean logP, so one pass suffices.
macro_rules! row_stat {
    ($x:expr, $e:expr, $floor:expr, $t:ty) => {{
        let x = $x;
        let e = $e;
        let mx = x.iter().fold(<$t>::NEG_INFINITY, |a, &v| a.max(v));
        let (mut z, mut zx): ($t, $t) = (0.0, 0.0);
        for &v in x.iter() {
            let w = (v - mx).exp();
            z += w;
            zx += w * (v - mx);
        }
        let lse = mx + z.ln();
        let ent = ((z.ln() - zx / z) as f64).max(0.0);
        let (mut sum, mut abs, mut emax) = (0.0f64, 0.0f64, 0.0f64);
        let (mut slp, mut dmax, mut dmin) = (0.0f64, f64::NEG_INFINITY, f64::INFINITY);
        for (&v, &ej) in x.iter().zip(e.iter()) {
            let lp = (v - lse) as f64;
            slp += lp;
            let dj = ej - lp;
            dmax = dmax.max(dj);
            dmin = dmin.min(dj);
            sum += ej;
            abs += ej.abs();
            emax = emax.max(ej.abs());
        }
        let mu = slp / x.len() as f64;
        let sc = (dmax + mu).abs().max((dmin + mu).abs());
        let zs = if x.len() > 1 && emax > $floor && abs > 0.0 { sum.abs() / abs } else { 0.0 };
        RowStat { zs, sc, ent }
    }};
}

/// The row statistics in the model's precision.
trait RowPrecision: Sized {
    fn row_stat(x: &[Self], e: &[f64], floor: f64) -> RowStat;
}

impl RowPrecision for f64 {
    fn row_stat(x: &[f64], e: &[f64], floor: f64) -> RowStat {
        row_stat!(x, e, floor, f64)
    }
}

impl RowPrecision for f32 {
    /// As [`row_stat!`] in f32, written for SIMD: 8 (f32) and 4 (f64)
    /// independent accumulators (a fixed summation order, so results are
    /// deterministic) and a polynomial e^x ([`exp_nonpos_f32`]). Agrees with
    /// the scalar libm version to f32 rounding (tested below).
    fn row_stat(x: &[f32], e: &[f64], floor: f64) -> RowStat {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { row_stat_f32_avx2(x, e, floor) };
            }
        }
        row_stat_f32(x, e, floor)
    }
}

/// [`row_stat_f32`] compiled for AVX2 (8 f32 / 4 f64 lanes per instruction).
/// The same operations in the same order as the baseline build, so both give
/// bit-identical results (no FMA contraction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_stat_f32_avx2(x: &[f32], e: &[f64], floor: f64) -> RowStat {
    row_stat_f32(x, e, floor)
}

/// The body of `<f32 as RowPrecision>::row_stat`.
#[inline(always)]
fn row_stat_f32(x: &[f32], e: &[f64], floor: f64) -> RowStat {
    const L: usize = 8;
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder();
    let mut m = [f32::NEG_INFINITY; L];
    for c in chunks.clone() {
        for l in 0..L {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    let mx = tail.iter().fold(m.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)), |a, &v| a.max(v));
    let (mut z, mut zx) = ([0f32; L], [0f32; L]);
    for c in chunks {
        for l in 0..L {
            let u = c[l] - mx;
            let w = exp_nonpos_f32(u);
            z[l] += w;
            zx[l] += w * u;
        }
    }
    let (mut zs, mut zxs) = (z.iter().sum::<f32>(), zx.iter().sum::<f32>());
    for &v in tail {
        let u = v - mx;
        let w = exp_nonpos_f32(u);
        zs += w;
        zxs += w * u;
    }
    let lse = mx + zs.ln();
    let ent = ((zs.ln() - zxs / zs) as f64).max(0.0);

    const F: usize = 4;
    let (mut slp, mut sum, mut abs) = ([0f64; F], [0f64; F], [0f64; F]);
    let (mut dmax, mut dmin, mut emax) = ([f64::NEG_INFINITY; F], [f64::INFINITY; F], [0f64; F]);
    let n4 = x.len() / F * F;
    for (xc, ec) in x[..n4].chunks_exact(F).zip(e[..n4].chunks_exact(F)) {
        for l in 0..F {
            let lp = (xc[l] - lse) as f64;
            let ej = ec[l];
            let dj = ej - lp;
            slp[l] += lp;
            dmax[l] = if dj > dmax[l] { dj } else { dmax[l] };
            dmin[l] = if dj < dmin[l] { dj } else { dmin[l] };
            sum[l] += ej;
            abs[l] += ej.abs();
            emax[l] = if ej.abs() > emax[l] { ej.abs() } else { emax[l] };
        }
    }
    let (mut slp, mut sum, mut abs) = (slp.iter().sum::<f64>(), sum.iter().sum::<f64>(), abs.iter().sum::<f64>());
    let mut dmax = dmax.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
    let mut dmin = dmin.iter().fold(f64::INFINITY, |a, &v| a.min(v));
    let mut emax = emax.iter().fold(0f64, |a, &v| a.max(v));
    for (&v, &ej) in x[n4..].iter().zip(&e[n4..]) {
        let lp = (v - lse) as f64;
        let dj = ej - lp;
        slp += lp;
        dmax = dmax.max(dj);
        dmin = dmin.min(dj);
        sum += ej;
        abs += ej.abs();
        emax = emax.max(ej.abs());
    }
    let mu = slp / x.len() as f64;
    let sc = (dmax + mu).abs().max((dmin + mu).abs());
    let zsr = if x.len() > 1 && emax > floor && abs > 0.0 { sum.abs() / abs } else { 0.0 };
    RowStat { zs: zsr, sc, ent }
}

/// e^x for x ≤ 0 in f32 (Cephes `expf` polynomial, within 2.5·ε relative,
/// tested; ≈ 1e-38 below −87.3, where the true value is below f32's normal
/// range). Branch-free arithmetic, so loops over it vectorize; libm's `expf` was 12 % of a
/// head's analysis time.
#[inline(always)]
pub(crate) fn exp_nonpos_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to an integer
    let x = x.max(-87.3);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // the same integer from t's bits (t ∈ [2^23, 2^24): unit spacing, so the
    // mantissa is linear in t): integer lanes vectorise, where `n as i32` (a
    // saturating cast) made the compiler fall back to one scalar cvttss2si a lane
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5e-1;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((ni + 127) as u32) << 23)
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

    /// Logits block L = K[span]·Q[rows]ᵀ (span.len() × rows.len(), column t = row
    /// rows[t]) by one sequential GEMM in the model's precision, then the fused
    /// row statistics of each row against its field column `eb` (same layout).
    fn block_stats(
        &self,
        rows: &[usize],
        supports: &[Range<usize>],
        span: Range<usize>,
        eb: &Mat<f64>,
        floors: &[f64],
        bufs: &mut Buffers,
    ) -> RowStat {
        let mut acc = RowStat::default();
        let mut add = |r: RowStat| {
            acc.zs = acc.zs.max(r.zs);
            acc.sc = acc.sc.max(r.sc);
            acc.ent += r.ent;
        };
        macro_rules! run {
            ($q:expr, $k:expr, $d:expr, $scale:expr, $slope:expr, $cap:expr, $t:ty, $l:expr) => {{
                let d = $d;
                // consecutive rows are read in place, others gathered
                let gathered;
                let qb = if rows.windows(2).all(|w| w[1] == w[0] + 1) {
                    MatRef::from_row_major_slice(&$q[rows[0] * d..(rows[rows.len() - 1] + 1) * d], rows.len(), d)
                } else {
                    gathered = Mat::<$t>::from_fn(rows.len(), d, |t, c| $q[rows[t] * d + c]);
                    gathered.as_ref()
                };
                let kb = MatRef::from_row_major_slice(&$k[span.start * d..span.end * d], span.len(), d);
                let l = $l;
                grow(l, span.len(), rows.len());
                matmul(l.as_mut().get_mut(..span.len(), ..rows.len()), Accum::Replace, kb, qb.transpose(), 1.0, Par::Seq);
                let mut x: Vec<$t> = Vec::new();
                for (t, (&i, sup)) in rows.iter().zip(supports).enumerate() {
                    let (lo, hi) = (sup.start - span.start, sup.end - span.start);
                    x.clear();
                    x.extend(l.col_as_slice(t)[lo..hi].iter().zip(sup.clone()).map(|(&v, j)| {
                        let mut v = $scale * v;
                        if let Some(m) = $slope {
                            v += m * (j as $t - i as $t);
                        }
                        if let Some(c) = $cap {
                            v = c * (v / c).tanh();
                        }
                        v
                    }));
                    add(<$t as RowPrecision>::row_stat(&x, &eb.col_as_slice(t)[lo..hi], floors[t]));
                }
            }};
        }
        match self {
            ModelLogits::F32 { q, k, d, scale, slope, cap } => run!(q, k, *d, *scale, *slope, *cap, f32, &mut bufs.l32),
            ModelLogits::F64 { q, k, d, scale, slope, cap } => run!(q, k, *d, *scale, *slope, *cap, f64, &mut bufs.l64),
        }
        acc
    }
}

/// log Σ exp(x), max-subtracted (never overflows, never −inf for finite x).
pub(crate) fn log_sum_exp(x: &[f64]) -> f64 {
    let mx = x.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
    mx + x.iter().map(|&v| (v - mx).exp()).sum::<f64>().ln()
}

/// Entropy (nats) of softmax(x), f64.
#[cfg(test)]
pub(crate) fn softmax_entropy(x: &[f64]) -> f64 {
    row_stat!(x, x, 0.0, f64).ent
}

/// Reusable per-worker matrices of the row checks (top-left corner used).
pub(crate) struct Buffers {
    e: Mat<f64>,
    l32: Mat<f32>,
    l64: Mat<f64>,
}

impl Buffers {
    fn new() -> Self {
        Buffers { e: Mat::zeros(0, 0), l32: Mat::zeros(0, 0), l64: Mat::zeros(0, 0) }
    }
}

/// Makes `m` at least rows × cols (contents unspecified).
fn grow<T: faer::traits::ComplexField>(m: &mut Mat<T>, rows: usize, cols: usize) {
    if m.nrows() < rows || m.ncols() < cols {
        *m = Mat::zeros(rows.max(m.nrows()), cols.max(m.ncols()));
    }
}

/// Most rows per block of the row checks (one GEMM per block).
const BLOCK_ROWS: usize = 16;

/// Splits sorted check rows into blocks whose key span stays close to their
/// own supports (at most BLOCK_ROWS rows; span ≤ 2·largest support + 64 keys).
pub(crate) fn blocks(head: &HeadInput<'_>, rows: &[usize]) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    let mut t = 0;
    while t < rows.len() {
        let lo = head.support_range(rows[t]).start;
        let mut u = t + 1;
        while u < rows.len() && u - t < BLOCK_ROWS {
            let sup = head.support_range(rows[u]);
            if rows[u] + 1 - lo > 2 * sup.len() + 64 {
                break;
            }
            u += 1;
        }
        out.push((t..u, lo..rows[u - 1] + 1));
        t = u;
    }
    out
}

/// Runs the row checks on `rows` (sorted), blocks of rows in parallel.
///
/// `e_block(rows, span, e, rho)` must fill `e` (span.len() × rows.len(); column
/// t holds E_{rows[t], j} for j ∈ span) and `rho[t]` with row t's rounding scale
/// ρ_i (E_ij is accurate to about (|C_i| + d)·ε·ρ_i). Only supports are read.
///
/// A row whose field is at that rounding level (max |E_ij| ≤ 8·(|C_i| + d)·ε·ρ_i),
/// or which has a single key (E_ii = 0 by algebra), has no meaningful
/// |ΣE|/Σ|E| and contributes a zero-sum residual of 0.
///
/// With `key_sums`, also returns Σ_{i ∈ rows, j ∈ C_i} E_ij² for every key j
/// (length n), summed in a fixed order (rows within a block, then blocks in
/// order), so the result does not depend on the number of threads.
pub(crate) fn row_checks(
    head: &HeadInput<'_>,
    rows: &[usize],
    key_sums: bool,
    e_block: impl Fn(&[usize], Range<usize>, MatMut<'_, f64>, &mut [f64]) + Sync,
) -> (RowChecks, Option<Vec<f64>>) {
    let model = ModelLogits::new(head);
    let blocks = blocks(head, rows);
    // per-worker buffers, allocated once at the largest block size and reused,
    // so the row checks add O(threads · span · 16) memory, not one block per task
    let partial: Vec<(RowStat, Vec<f64>)> = blocks
        .par_iter()
        .map_init(Buffers::new, |bufs, (trange, span)| {
            let (trange, span) = (trange.clone(), span.clone());
            let brows = &rows[trange];
            let supports: Vec<Range<usize>> = brows.iter().map(|&i| head.support_range(i)).collect();
            let mut eb = std::mem::replace(&mut bufs.e, Mat::zeros(0, 0));
            grow(&mut eb, span.len(), brows.len());
            let mut rho = vec![0.0; brows.len()];
            e_block(brows, span.clone(), eb.as_mut().get_mut(..span.len(), ..brows.len()), &mut rho);
            let floors: Vec<f64> =
                supports.iter().zip(&rho).map(|(r, &rho)| 8.0 * ((r.len() + head.d) as f64) * f64::EPSILON * rho).collect();
            let stat = model.block_stats(brows, &supports, span.clone(), &eb, &floors, bufs);
            let mut sums = Vec::new();
            if key_sums {
                sums.resize(span.len(), 0.0);
                for (t, sup) in supports.iter().enumerate() {
                    let (lo, hi) = (sup.start - span.start, sup.end - span.start);
                    for (s, &x) in sums[lo..hi].iter_mut().zip(&eb.col_as_slice(t)[lo..hi]) {
                        *s += x * x;
                    }
                }
            }
            bufs.e = eb;
            (stat, sums)
        })
        .collect();
    let (mut zs, mut sc, mut ent) = (0.0f64, 0.0f64, 0.0f64);
    let mut c = key_sums.then(|| vec![0.0; head.n]);
    for ((r, sums), (_, span)) in partial.into_iter().zip(&blocks) {
        zs = zs.max(r.zs);
        sc = sc.max(r.sc);
        ent += r.ent;
        if let Some(c) = &mut c {
            for (cj, s) in c[span.clone()].iter_mut().zip(sums) {
                *cj += s;
            }
        }
    }
    let checks = RowChecks {
        zero_sum_residual: zs,
        shift_consistency: sc,
        attention_entropy: if rows.is_empty() { 0.0 } else { ent / rows.len() as f64 },
    };
    (checks, c)
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
    fn polynomial_exp_is_within_two_ulp_of_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpos_f32(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.000_731;
        }
        assert!(worst <= 2.5 * f32::EPSILON as f64, "worst relative error {worst:e}");
        assert_eq!(exp_nonpos_f32(0.0), 1.0);
        assert!(exp_nonpos_f32(-1e4) < 1e-37 && exp_nonpos_f32(-1e4) >= 0.0);
    }

    /// The SIMD-shaped f32 row statistics equal the scalar libm version to
    /// f32 rounding, on rows of every length around the lane widths.
    #[test]
    fn f32_row_stats_match_the_scalar_reference() {
        for len in [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100, 513] {
            let x: Vec<f32> = (0..len).map(|j| ((j * 7919 % 113) as f32 / 9.0 - 6.0) * 1.7).collect();
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
            let e: Vec<f64> = x.iter().map(|&v| v as f64 - mean + 1e-9 * (v as f64).sin()).collect();
            let fast = <f32 as RowPrecision>::row_stat(&x, &e, 0.0);
            let baseline = row_stat_f32(&x, &e, 0.0);
            // the runtime-dispatched (AVX2) build and the baseline build agree bit for bit
            assert_eq!(
                (fast.ent.to_bits(), fast.sc.to_bits(), fast.zs.to_bits()),
                (baseline.ent.to_bits(), baseline.sc.to_bits(), baseline.zs.to_bits()),
                "{len}"
            );
            let slow = row_stat!(&x, &e, 0.0, f32);
            assert!((fast.ent - slow.ent).abs() <= 1e-5 * slow.ent.max(1e-3), "{len}: entropy {} vs {}", fast.ent, slow.ent);
            assert!((fast.sc - slow.sc).abs() <= 1e-5, "{len}: shift {} vs {}", fast.sc, slow.sc);
            assert!((fast.zs - slow.zs).abs() <= 1e-9, "{len}: zero-sum {} vs {}", fast.zs, slow.zs);
        }
    }

    #[test]
    fn entropy_of_uniform_is_log_len() {
        assert!((softmax_entropy(&[0.3; 8]) - 8f64.ln()).abs() < 1e-14);
        assert!(softmax_entropy(&[0.0, -1e4]).abs() < 1e-12);
    }
}
