//! Row checks (docs/definitions.md §1): zero-sum residual, shift consistency against the
//! model's own softmax, and attention entropy, streamed one row at a time.
//!
//! Both implementations feed the same rows here (see [`check_rows`]) and only
//! differ in how they produce E_ij on the support, so they agree by construction
//! up to the rounding of E itself.

use crate::input::{HeadInput, LogitTransform, Values};
use crate::kernels::{tile_f32, Panel, PAD, ROWS};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::RefCell;
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
    /// `kt`: K transposed for the register tiles of [`crate::kernels`].
    F32 {
        q: Cow<'a, [f32]>,
        kt: Panel<f32>,
        d: usize,
        scale: f32,
        slope: Option<f32>,
        cap: Option<f32>,
    },
    F64 {
        q: Cow<'a, [f64]>,
        k: Cow<'a, [f64]>,
        d: usize,
        scale: f64,
        slope: Option<f64>,
        cap: Option<f64>,
    },
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
    // SAFETY: AVX2 is enabled for this function, and so for the pass inlined into it.
    row_stat_f32_by(x, e, floor, |x, e, lse| unsafe { lanes_f64_avx2(x, e, lse) })
}

/// The body of `<f32 as RowPrecision>::row_stat`.
#[inline(always)]
fn row_stat_f32(x: &[f32], e: &[f64], floor: f64) -> RowStat {
    row_stat_f32_by(x, e, floor, lanes_f64)
}

/// Lane-wise accumulators of the f64 pass: lane l sums entries j ≡ l (mod 4).
struct Lanes {
    slp: [f64; 4],
    sum: [f64; 4],
    abs: [f64; 4],
    dmax: [f64; 4],
    dmin: [f64; 4],
    emax: [f64; 4],
}

/// The f64 pass over x.len() (a multiple of 4) entries: log P_j = x_j − lse
/// (f32, widened), D_j = E_j − log P_j; sums and extremes per lane.
#[inline(always)]
fn lanes_f64(x: &[f32], e: &[f64], lse: f32) -> Lanes {
    const F: usize = 4;
    let (mut slp, mut sum, mut abs) = ([0f64; F], [0f64; F], [0f64; F]);
    let (mut dmax, mut dmin, mut emax) = ([f64::NEG_INFINITY; F], [f64::INFINITY; F], [0f64; F]);
    for (xc, ec) in x.chunks_exact(F).zip(e.chunks_exact(F)) {
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
    Lanes { slp, sum, abs, dmax, dmin, emax }
}

/// [`lanes_f64`] in AVX2 intrinsics (the compiler spilled the 24
/// accumulators of the plain loop): the same operation per lane, in the same
/// order (maxpd/minpd select exactly as the comparisons there), so the same bits.
///
/// # Safety
/// AVX2; x.len() = e.len() is a multiple of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_f64_avx2(x: &[f32], e: &[f64], lse: f32) -> Lanes {
    use std::arch::x86_64::*;
    debug_assert!(x.len().is_multiple_of(4) && e.len() == x.len());
    let lse4 = _mm_set1_ps(lse);
    let sign = _mm256_set1_pd(-0.0);
    let (mut slp, mut sum, mut abs) = (_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd());
    let (mut dmax, mut dmin, mut emax) = (_mm256_set1_pd(f64::NEG_INFINITY), _mm256_set1_pd(f64::INFINITY), _mm256_setzero_pd());
    let (xp, ep) = (x.as_ptr(), e.as_ptr());
    let mut j = 0;
    while j < x.len() {
        let lp = _mm256_cvtps_pd(_mm_sub_ps(_mm_loadu_ps(xp.add(j)), lse4));
        let ej = _mm256_loadu_pd(ep.add(j));
        let dj = _mm256_sub_pd(ej, lp);
        slp = _mm256_add_pd(slp, lp);
        dmax = _mm256_max_pd(dj, dmax);
        dmin = _mm256_min_pd(dj, dmin);
        sum = _mm256_add_pd(sum, ej);
        let ea = _mm256_andnot_pd(sign, ej);
        abs = _mm256_add_pd(abs, ea);
        emax = _mm256_max_pd(ea, emax);
        j += 4;
    }
    let out = |v: __m256d| {
        let mut a = [0f64; 4];
        _mm256_storeu_pd(a.as_mut_ptr(), v);
        a
    };
    Lanes { slp: out(slp), sum: out(sum), abs: out(abs), dmax: out(dmax), dmin: out(dmin), emax: out(emax) }
}

/// The row statistics in f32 with the f64 pass `lanes`.
#[inline(always)]
fn row_stat_f32_by(x: &[f32], e: &[f64], floor: f64, lanes: impl Fn(&[f32], &[f64], f32) -> Lanes) -> RowStat {
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

    let n4 = x.len() / 4 * 4;
    let Lanes { slp, sum, abs, dmax, dmin, emax } = lanes(&x[..n4], &e[..n4], lse);
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
            let k = f32s(&head.k);
            let kt = Panel::new(&k, head.n, head.d, |v| v);
            ModelLogits::F32 {
                q: f32s(&head.q),
                kt,
                d: head.d,
                scale: head.scale as f32,
                slope: head.alibi_slope.map(|m| m as f32),
                cap: cap.map(|c| c as f32),
            }
        } else {
            ModelLogits::F64 { q: f64s(&head.q), k: f64s(&head.k), d: head.d, scale: head.scale, slope: head.alibi_slope, cap }
        }
    }

    /// The model's logits of `rows` on `span` (row t of `l` at `l[t·ld..]`,
    /// key j at column j − span.start; every support filled), then the fused
    /// row statistics of each row against its field row in `e` (same layout).
    #[allow(clippy::too_many_arguments)]
    fn block_stats(
        &self,
        rows: &[usize],
        supports: &[Range<usize>],
        span: Range<usize>,
        e: &[f64],
        ld: usize,
        floors: &[f64],
        bufs: &mut Buffers,
    ) -> RowStat {
        let mut acc = RowStat::default();
        let mut add = |r: RowStat| {
            acc.zs = acc.zs.max(r.zs);
            acc.sc = acc.sc.max(r.sc);
            acc.ent += r.ent;
        };
        // logit of row i, key j from the raw product v: scale, ALiBi, soft-cap
        macro_rules! transform {
            ($x:expr, $i:expr, $sup:expr, $scale:expr, $slope:expr, $cap:expr, $t:ty) => {{
                let x = $x;
                match ($slope, $cap) {
                    (None, None) => x.iter_mut().for_each(|v| *v *= $scale),
                    (slope, cap) => {
                        for (v, j) in x.iter_mut().zip($sup.clone()) {
                            let mut y = $scale * *v;
                            if let Some(m) = slope {
                                y += m * (j as $t - $i as $t);
                            }
                            if let Some(c) = cap {
                                y = c * (y / c).tanh();
                            }
                            *v = y;
                        }
                    }
                }
            }};
        }
        match self {
            ModelLogits::F32 { q, kt, d, scale, slope, cap } => {
                let l = grow_vec(&mut bufs.l32, rows.len().div_ceil(ROWS) * ROWS * ld);
                for (g, grp) in rows.chunks(ROWS).enumerate() {
                    let lo = supports[g * ROWS].start;
                    let off = lo - span.start;
                    tile_f32(q, *d, grp, kt, lo..grp[grp.len() - 1] + 1, &mut l[g * ROWS * ld + off..], ld);
                }
                for (t, (&i, sup)) in rows.iter().zip(supports).enumerate() {
                    let (lo, hi) = (t * ld + sup.start - span.start, t * ld + sup.end - span.start);
                    let x = &mut l[lo..hi];
                    transform!(&mut *x, i, sup, *scale, *slope, *cap, f32);
                    add(<f32 as RowPrecision>::row_stat(x, &e[lo..hi], floors[t]));
                }
            }
            ModelLogits::F64 { q, k, d, scale, slope, cap } => {
                let d = *d;
                // consecutive rows are read in place, others gathered
                let gathered;
                let qb = if rows.windows(2).all(|w| w[1] == w[0] + 1) {
                    MatRef::from_row_major_slice(&q[rows[0] * d..(rows[rows.len() - 1] + 1) * d], rows.len(), d)
                } else {
                    gathered = Mat::<f64>::from_fn(rows.len(), d, |t, c| q[rows[t] * d + c]);
                    gathered.as_ref()
                };
                let kb = MatRef::from_row_major_slice(&k[span.start * d..span.end * d], span.len(), d);
                let l = &mut bufs.l64;
                grow(l, span.len(), rows.len());
                matmul(l.as_mut().get_mut(..span.len(), ..rows.len()), Accum::Replace, kb, qb.transpose(), 1.0, Par::Seq);
                let mut x: Vec<f64> = Vec::new();
                for (t, (&i, sup)) in rows.iter().zip(supports).enumerate() {
                    let (lo, hi) = (sup.start - span.start, sup.end - span.start);
                    x.clear();
                    x.extend_from_slice(&l.col_as_slice(t)[lo..hi]);
                    transform!(&mut x, i, sup, *scale, *slope, *cap, f64);
                    add(<f64 as RowPrecision>::row_stat(&x, &e[t * ld + lo..t * ld + hi], floors[t]));
                }
            }
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

/// Reusable per-thread buffers of the row checks (prefix used), kept across
/// heads so the row checks allocate nothing once warm.
pub(crate) struct Buffers {
    /// The field of a block: row t at `e[t·ld..]`.
    e: Vec<f64>,
    /// The model's f32 logits of a block, same layout.
    l32: Vec<f32>,
    /// The model's f64 logits of a block (span × rows, faer's GEMM).
    l64: Mat<f64>,
}

impl Buffers {
    fn new() -> Self {
        Buffers { e: Vec::new(), l32: Vec::new(), l64: Mat::zeros(0, 0) }
    }
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::new());
}

/// The first `len` values of `v`, grown (zeros) when shorter.
fn grow_vec<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

/// Makes `m` at least rows × cols (contents unspecified).
fn grow<T: faer::traits::ComplexField>(m: &mut Mat<T>, rows: usize, cols: usize) {
    if m.nrows() < rows || m.ncols() < cols {
        *m = Mat::zeros(rows.max(m.nrows()), cols.max(m.ncols()));
    }
}

/// Most rows per block of the row checks (one product per 4 rows).
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
/// `e_block(rows, span, e, ld, rho)` must fill row t of `e` (at `e[t·ld..]`,
/// key j at column j − span.start; `e` holds rows.len() rounded up to
/// [`ROWS`] rows, and ld ≥ span.len() + [`PAD`]) with E_{rows[t], j} on the
/// support of rows[t], and `rho[t]` with row t's rounding scale ρ_i (E_ij is
/// accurate to about (|C_i| + d)·ε·ρ_i). Only supports are read.
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
    e_block: impl Fn(&[usize], Range<usize>, &mut [f64], usize, &mut [f64]) + Sync,
) -> (RowChecks, Option<Vec<f64>>) {
    let model = ModelLogits::new(head);
    let blocks = blocks(head, rows);
    let block = |bufs: &mut Buffers, trange: Range<usize>, span: Range<usize>| {
        let brows = &rows[trange];
        let supports: Vec<Range<usize>> = brows.iter().map(|&i| head.support_range(i)).collect();
        let ld = span.len() + PAD;
        let mut eb = std::mem::take(&mut bufs.e);
        let e = grow_vec(&mut eb, brows.len().div_ceil(ROWS) * ROWS * ld);
        let mut rho = vec![0.0; brows.len()];
        e_block(brows, span.clone(), e, ld, &mut rho);
        let floors: Vec<f64> = supports.iter().zip(&rho).map(|(r, &rho)| 8.0 * ((r.len() + head.d) as f64) * f64::EPSILON * rho).collect();
        let stat = model.block_stats(brows, &supports, span.clone(), e, ld, &floors, bufs);
        let mut sums = Vec::new();
        if key_sums {
            sums.resize(span.len(), 0.0);
            for (t, sup) in supports.iter().enumerate() {
                let (lo, hi) = (sup.start - span.start, sup.end - span.start);
                for (s, &x) in sums[lo..hi].iter_mut().zip(&e[t * ld + lo..t * ld + hi]) {
                    *s += x * x;
                }
            }
        }
        bufs.e = eb;
        (stat, sums)
    };
    // per-thread buffers, kept across blocks and heads (a thread that is
    // already inside a block, e.g. by work stealing, uses fresh ones)
    let run = |(trange, span): &(Range<usize>, Range<usize>)| {
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => block(&mut bufs, trange.clone(), span.clone()),
            Err(_) => block(&mut Buffers::new(), trange.clone(), span.clone()),
        })
    };
    // blocks in parallel even for a small head: in analyze (heads already in
    // parallel) they fill the threads the last heads of a layer leave idle
    // (running them on the calling thread measured slower there: idle
    // workers spin)
    let partial: Vec<(RowStat, Vec<f64>)> = blocks.par_iter().map(run).collect();
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
