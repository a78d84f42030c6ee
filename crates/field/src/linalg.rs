//! Small dense linear-algebra helpers over faer (f64): thin QR factors, SVDs,
//! pseudo-inverses, vectorisable dot products and compensated sums.

use crate::error::{FieldError, Result};
use faer::{Mat, MatRef};

/// Householder QR of `m` (r × c), sequential: returns (Q r×min(r,c) if asked, R min(r,c)×c).
///
/// Sequential on purpose: the blocks here are tall and skinny (≤ 4096 × d+2),
/// where faer's thread pool only adds synchronisation; the row checks already
/// run blocks in parallel.
fn qr_seq(m: MatRef<'_, f64>, want_q: bool) -> (Option<Mat<f64>>, Mat<f64>) {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::householder::{
        apply_block_householder_sequence_on_the_left_in_place_scratch, apply_block_householder_sequence_on_the_left_in_place_with_conj,
    };
    use faer::linalg::qr::no_pivoting::factor::{qr_in_place, qr_in_place_scratch, recommended_block_size};
    let (r, c) = m.shape();
    let size = r.min(c);
    if size == 0 {
        return (want_q.then(|| Mat::zeros(r, 0)), Mat::zeros(0, c));
    }
    let mut a = m.to_owned();
    let bs = recommended_block_size::<f64>(r, c);
    let mut coeff = Mat::<f64>::zeros(bs, size);
    let par = faer::Par::Seq;
    let mut buf = MemBuffer::new(qr_in_place_scratch::<f64>(r, c, bs, par, Default::default()));
    qr_in_place(a.as_mut(), coeff.as_mut(), par, MemStack::new(&mut buf), Default::default());
    let rf = Mat::from_fn(size, c, |i, j| if j >= i { a[(i, j)] } else { 0.0 });
    let q = want_q.then(|| {
        // Householder basis: unit lower trapezoid of the factored matrix
        let basis = Mat::from_fn(r, size, |i, j| match i.cmp(&j) {
            std::cmp::Ordering::Greater => a[(i, j)],
            std::cmp::Ordering::Equal => 1.0,
            std::cmp::Ordering::Less => 0.0,
        });
        let mut q = Mat::<f64>::identity(r, size);
        let mut buf = MemBuffer::new(apply_block_householder_sequence_on_the_left_in_place_scratch::<f64>(r, bs, size));
        apply_block_householder_sequence_on_the_left_in_place_with_conj(
            basis.as_ref(),
            coeff.as_ref(),
            faer::Conj::No,
            q.as_mut(),
            par,
            MemStack::new(&mut buf),
        );
        q
    });
    (q, rf)
}

/// R factor (min(r,c) × c, upper trapezoidal) of the thin QR of `m` by
/// unblocked Householder reflections on a column-major copy, with AVX2/FMA
/// dot and axpy loops: for tall, skinny matrices (c ≤ 100 or so) this beats
/// the blocked factorisation's bookkeeping (callgrind: 576 × 64 in about a
/// third of [`thin_r`]'s instructions). Backward-stable like any Householder
/// QR; σ(R) = σ(m). Falls back to [`thin_r`] without AVX2/FMA, or when a
/// column's squared norm leaves the safe range of f64 (so no scaling is
/// needed). R's diagonal signs may differ from [`thin_r`]'s: use it only where
/// R alone matters (σ, RᵀR).
pub(crate) fn householder_r(m: MatRef<'_, f64>) -> Mat<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            if let Some(r) = unsafe { householder_r_fma(m) } {
                return r;
            }
        }
    }
    thin_r(m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn householder_r_fma(m: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let (r, c) = m.shape();
    householder_r_body(r, c, |a| {
        for j in 0..c {
            for i in 0..r {
                a[j * r + i] = m[(i, j)];
            }
        }
    })
}

/// Dot product with 16 independent fused accumulators (4 AVX2 registers).
#[inline(always)]
pub(crate) fn dot_fma(a: &[f64], b: &[f64]) -> f64 {
    const L: usize = 16;
    let mut acc = [0.0f64; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for t in 0..L {
            acc[t] = x[t].mul_add(y[t], acc[t]);
        }
    }
    let mut s = 0.0;
    for (x, y) in ta.iter().zip(tb) {
        s = x.mul_add(*y, s);
    }
    for t in 0..L / 2 {
        acc[t] += acc[t + L / 2];
    }
    for t in 0..L / 4 {
        acc[t] += acc[t + L / 4];
    }
    s + (acc[0] + acc[2]) + (acc[1] + acc[3])
}

/// y −= w·v, fused.
#[inline(always)]
pub(crate) fn axpy_fma(y: &mut [f64], w: f64, v: &[f64]) {
    for (y, &v) in y.iter_mut().zip(v) {
        *y = (-w).mul_add(v, *y);
    }
}

/// [`householder_r`] of the r × c row-major `x` (row i at `x[i·c..]`), read
/// in place: no intermediate matrix. The same factorisation, so the same bits
/// as `householder_r` of the same values.
pub(crate) fn householder_r_rows(x: &[f64], r: usize, c: usize) -> Mat<f64> {
    debug_assert_eq!(x.len(), r * c);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            if let Some(r) = unsafe { householder_r_rows_fma(x, r, c) } {
                return r;
            }
        }
    }
    thin_r(faer::MatRef::from_row_major_slice(x, r, c))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn householder_r_rows_fma(x: &[f64], r: usize, c: usize) -> Option<Mat<f64>> {
    householder_r_body(r, c, |a| {
        for (i, row) in x.chunks_exact(c).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                a[j * r + i] = v;
            }
        }
    })
}

/// Reflectors per group of the blocked factorisation ([`householder_r_body`]).
const QR_GROUP: usize = 4;
// apply_group and its kernels are written out for exactly four reflectors
const _: () = assert!(QR_GROUP == 4);

/// The factorisation behind [`householder_r`]: `fill` writes the r × c
/// matrix column-major into the zeroed work array.
///
/// Blocked by [`QR_GROUP`] reflectors (compact WY, as LAPACK's dgeqrt): the
/// group's own columns are factored one reflector at a time, then every
/// trailing column gets the whole group at once, C ← (I − V·Tᵀ·Vᵀ)·C: the
/// group's dot products in one pass over the column, the update in a
/// second. Per reflector and column the unblocked form was a dot product
/// then an axpy, each waiting on the one before; here the four products
/// share their loads and are independent. Same reflectors, same
/// backward stability; the last bits differ from the unblocked order.
#[inline(always)]
fn householder_r_body(r: usize, c: usize, fill: impl FnOnce(&mut [f64])) -> Option<Mat<f64>> {
    let size = r.min(c);
    let mut a = vec![0.0f64; r * c];
    fill(&mut a);
    let mut k0 = 0;
    while k0 < size {
        let end = (k0 + QR_GROUP).min(size);
        let mut taus = [0.0f64; QR_GROUP];
        for k in k0..end {
            let (left, right) = a.split_at_mut((k + 1) * r);
            let tau = reflector(&mut left[k * r + k..])?;
            taus[k - k0] = tau;
            if tau == 0.0 {
                continue; // already zero below the diagonal: H = I
            }
            let v = &left[k * r + k + 1..(k + 1) * r];
            // the group's own later columns
            for j in 0..end - k - 1 {
                apply_reflector(&mut right[j * r + k..(j + 1) * r], tau, v);
            }
        }
        let (left, right) = a.split_at_mut(end * r);
        if end - k0 == QR_GROUP && r - end >= 8 {
            let t = wy_t(left, r, k0, &taus);
            for col in right.chunks_exact_mut(r) {
                apply_group(col, left, r, k0, &t);
            }
        } else {
            // a short last group or few rows: one reflector at a time
            for col in right.chunks_exact_mut(r) {
                for k in k0..end {
                    if taus[k - k0] != 0.0 {
                        apply_reflector(&mut col[k..], taus[k - k0], &left[k * r + k + 1..(k + 1) * r]);
                    }
                }
            }
        }
        k0 = end;
    }
    Some(Mat::from_fn(size, c, |i, j| if j >= i { a[j * r + i] } else { 0.0 }))
}

/// Element i (row index of the whole matrix) of the group's reflector t:
/// 0 above its diagonal row k0 + t, 1 on it, the stored vector below.
#[inline(always)]
fn v_at(a: &[f64], r: usize, k0: usize, t: usize, i: usize) -> f64 {
    let k = k0 + t;
    match i.cmp(&k) {
        std::cmp::Ordering::Less => 0.0,
        std::cmp::Ordering::Equal => 1.0,
        std::cmp::Ordering::Greater => a[k * r + i],
    }
}

/// T of the compact WY form H_0·H_1·…·H_3 = I − V·T·Vᵀ (upper triangular,
/// LAPACK dlarft's forward recurrence): T_tt = τ_t, T[..t, t] = −τ_t·T[..t, ..t]·V[:, ..t]ᵀ·v_t.
#[allow(clippy::needless_range_loop)] // indices into T, g and the rows read as the formulas state them
#[inline(always)]
fn wy_t(a: &[f64], r: usize, k0: usize, taus: &[f64; QR_GROUP]) -> [[f64; QR_GROUP]; QR_GROUP] {
    const G: usize = QR_GROUP;
    let mut t = [[0.0f64; G]; G];
    for j in 0..G {
        t[j][j] = taus[j];
        if j == 0 || taus[j] == 0.0 {
            continue;
        }
        // g_s = v_sᵀ v_j over rows k0 + j.. (v_j is zero above them)
        let mut g = [0.0f64; G];
        let vj = &a[(k0 + j) * r + k0 + j + 1..(k0 + j + 1) * r];
        for (s, gs) in g.iter_mut().enumerate().take(j) {
            let vs = &a[(k0 + s) * r + k0 + j + 1..(k0 + s + 1) * r];
            *gs = v_at(a, r, k0, s, k0 + j) + dot_fma(vs, vj);
        }
        for s in 0..j {
            let mut acc = 0.0;
            for (u, gu) in g.iter().enumerate().take(j).skip(s) {
                acc += t[s][u] * gu;
            }
            t[s][j] = -taus[j] * acc;
        }
    }
    t
}

/// col ← (I − V·Tᵀ·Vᵀ)·col = H_3·…·H_0·col for the group of reflectors
/// starting at row k0 (column-major `a`, r rows, r − k0 − 4 ≥ 8).
#[allow(clippy::needless_range_loop)] // row indices shared by col and v_at
#[inline(always)]
fn apply_group(col: &mut [f64], a: &[f64], r: usize, k0: usize, t: &[[f64; QR_GROUP]; QR_GROUP]) {
    const G: usize = QR_GROUP;
    const L: usize = 8;
    let base = k0 + G; // rows where every v_t is a full stored vector
    let v: [&[f64]; G] = std::array::from_fn(|s| &a[(k0 + s) * r + base..(k0 + s + 1) * r]);
    // w = Vᵀ·col: the triangle head, then the rows shared by all four
    let mut w = [0.0f64; G];
    for (s, ws) in w.iter_mut().enumerate() {
        for i in k0 + s..base {
            *ws += v_at(a, r, k0, s, i) * col[i];
        }
    }
    let body = &col[base..];
    let m = body.len();
    let vv = [&v[0][..m], &v[1][..m], &v[2][..m], &v[3][..m]];
    let n8 = m / L * L;
    // SAFETY: householder_r_body runs only inside the AVX2/FMA builds
    // (householder_r_fma, householder_r_rows_fma), after the CPU check;
    // every slice is m long and n8 ≤ m.
    let acc = unsafe { group_dots(body, vv, n8) };
    for s in 0..G {
        let mut tail = 0.0;
        for i in n8..m {
            tail = v[s][i].mul_add(body[i], tail);
        }
        let a4 = [acc[s][0] + acc[s][4], acc[s][1] + acc[s][5], acc[s][2] + acc[s][6], acc[s][3] + acc[s][7]];
        w[s] += ((a4[0] + a4[2]) + (a4[1] + a4[3])) + tail;
    }
    // y = Tᵀ·w
    let y: [f64; G] = std::array::from_fn(|j| (0..=j).map(|s| t[s][j] * w[s]).sum());
    // col −= V·y
    for i in k0..base {
        let mut d = 0.0;
        for (s, ys) in y.iter().enumerate() {
            d += v_at(a, r, k0, s, i) * ys;
        }
        col[i] -= d;
    }
    let body = &mut col[base..];
    let m = body.len();
    let vv = [&v[0][..m], &v[1][..m], &v[2][..m], &v[3][..m]];
    let ny = [-y[0], -y[1], -y[2], -y[3]];
    let n4 = m / 4 * 4;
    // SAFETY: as for group_dots above.
    unsafe { group_update(body, vv, ny, n4) };
    for i in n4..m {
        body[i] = ny[3].mul_add(vv[3][i], ny[2].mul_add(vv[2][i], ny[1].mul_add(vv[1][i], ny[0].mul_add(vv[0][i], body[i]))));
    }
}

/// The four dot products v_sᵀ·body over the first n8 rows (a multiple of
/// 8), lane-wise: acc[s][l] sums rows ≡ l (mod 8).
///
/// # Safety
/// AVX2 and FMA; every v_s at least as long as body, n8 ≤ body.len().
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_dots(body: &[f64], v: [&[f64]; QR_GROUP], n8: usize) -> [[f64; 8]; QR_GROUP] {
    use std::arch::x86_64::*;
    debug_assert!(n8 <= body.len() && v.iter().all(|x| x.len() >= body.len()));
    let mut lo = [_mm256_setzero_pd(); QR_GROUP];
    let mut hi = [_mm256_setzero_pd(); QR_GROUP];
    let b = body.as_ptr();
    let vp: [*const f64; QR_GROUP] = std::array::from_fn(|s| v[s].as_ptr());
    let mut i = 0;
    while i < n8 {
        let (x0, x1) = (_mm256_loadu_pd(b.add(i)), _mm256_loadu_pd(b.add(i + 4)));
        for s in 0..QR_GROUP {
            lo[s] = _mm256_fmadd_pd(_mm256_loadu_pd(vp[s].add(i)), x0, lo[s]);
            hi[s] = _mm256_fmadd_pd(_mm256_loadu_pd(vp[s].add(i + 4)), x1, hi[s]);
        }
        i += 8;
    }
    std::array::from_fn(|s| {
        let mut out = [0.0f64; 8];
        _mm256_storeu_pd(out.as_mut_ptr(), lo[s]);
        _mm256_storeu_pd(out.as_mut_ptr().add(4), hi[s]);
        out
    })
}

/// body[i] += Σ_s ny[s]·v_s[i] (fused, s = 0..3 in order) for i < n4 (a multiple of 4).
///
/// # Safety
/// AVX2 and FMA; every v_s at least as long as body, n4 ≤ body.len().
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_update(body: &mut [f64], v: [&[f64]; QR_GROUP], ny: [f64; QR_GROUP], n4: usize) {
    use std::arch::x86_64::*;
    debug_assert!(n4 <= body.len() && v.iter().all(|x| x.len() >= body.len()));
    let c: [__m256d; QR_GROUP] = std::array::from_fn(|s| _mm256_set1_pd(ny[s]));
    let b = body.as_mut_ptr();
    let vp: [*const f64; QR_GROUP] = std::array::from_fn(|s| v[s].as_ptr());
    let mut i = 0;
    while i < n4 {
        let mut x = _mm256_loadu_pd(b.add(i));
        for s in 0..QR_GROUP {
            x = _mm256_fmadd_pd(c[s], _mm256_loadu_pd(vp[s].add(i)), x);
        }
        _mm256_storeu_pd(b.add(i), x);
        i += 4;
    }
}

/// Householder reflector of `x` in place (x[0] ← β, x[1..] ← v[1..], v[0] = 1);
/// returns τ (0: x[1..] is already zero, H = I), or None when ‖x‖² leaves
/// the safe range of f64.
#[inline(always)]
fn reflector(x: &mut [f64]) -> Option<f64> {
    let sigma = dot_fma(&x[1..], &x[1..]);
    let alpha = x[0];
    let nn = alpha * alpha + sigma;
    if !(nn.is_finite() && (nn == 0.0 || nn > 1e-280)) {
        return None;
    }
    if sigma == 0.0 {
        return Some(0.0);
    }
    let norm = nn.sqrt();
    let beta = if alpha >= 0.0 { -norm } else { norm };
    let tau = (beta - alpha) / beta;
    let inv = 1.0 / (alpha - beta);
    x[0] = beta;
    for v in x[1..].iter_mut() {
        *v *= inv;
    }
    Some(tau)
}

/// col ← (I − τ·v·vᵀ)·col with v = [1, `v`] (col.len() = v.len() + 1).
#[inline(always)]
fn apply_reflector(col: &mut [f64], tau: f64, v: &[f64]) {
    let w = tau * (col[0] + dot_fma(v, &col[1..]));
    col[0] -= w;
    axpy_fma(&mut col[1..], w, v);
}

/// Upper-trapezoidal R of the thin QR of `m` (min(r,c) × c); R·Rᵀ-invariants
/// (singular values, column space of Rᵀ) are those of `m`.
pub(crate) fn thin_r(m: MatRef<'_, f64>) -> Mat<f64> {
    qr_seq(m, false).1
}

/// Thin QR of `m`: (Q, R) with Q r×min(r,c) orthonormal columns, R min(r,c)×c.
pub(crate) fn thin_qr(m: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>) {
    let (q, r) = qr_seq(m, true);
    (q.unwrap_or_else(|| Mat::zeros(m.nrows(), 0)), r)
}

/// SVD through faer's bidiagonal QR iteration (never its divide-and-conquer).
///
/// faer 0.24.4's divide-and-conquer bidiagonal SVD (used above size 128)
/// returns wrong singular values for exactly rank-deficient matrices with
/// repeated columns (e.g. a field with duplicated keys: σ₂.. come back as
/// 1e-306). The QR iteration is exact there and, without vectors, O(n²) on
/// the bidiagonal, so it costs little.
fn svd_qr_iteration(m: MatRef<'_, f64>, vectors: bool) -> Result<(Mat<f64>, Vec<f64>, Mat<f64>)> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::svd::{svd, svd_scratch, ComputeSvdVectors, SvdParams};
    let (r, c) = m.shape();
    let size = r.min(c);
    let spec = || {
        let mut params = <SvdParams as faer::Auto<f64>>::auto();
        params.recursion_threshold = usize::MAX;
        faer::Spec::<SvdParams, f64>::new(params)
    };
    let compute = if vectors { ComputeSvdVectors::Thin } else { ComputeSvdVectors::No };
    // Sequential: callers already run one head per thread, and faer's
    // parallel SVD takes a different code path per pool size, which made
    // the last bits of the leverage scores depend on --threads.
    let par = faer::Par::Seq;
    let mut s = faer::diag::Diag::<f64>::zeros(size);
    let (mut u, mut v) = if vectors { (Mat::zeros(r, size), Mat::zeros(c, size)) } else { (Mat::zeros(0, 0), Mat::zeros(0, 0)) };
    let mut buf = MemBuffer::new(svd_scratch::<f64>(r, c, compute, compute, par, spec()));
    let (uo, vo) = if vectors { (Some(u.as_mut()), Some(v.as_mut())) } else { (None, None) };
    svd(m, s.as_mut(), uo, vo, par, MemStack::new(&mut buf), spec()).map_err(|_| FieldError::Svd)?;
    let s: Vec<f64> = s.column_vector().iter().copied().collect();
    Ok((u, s, v))
}

/// Singular values of `m`, non-negative, non-increasing (min(r,c) of them).
pub(crate) fn singular_values(m: MatRef<'_, f64>) -> Result<Vec<f64>> {
    if m.nrows() == 0 || m.ncols() == 0 {
        return Ok(Vec::new());
    }
    Ok(svd_qr_iteration(m, false)?.1)
}

/// Thin SVD (U, σ, V) of `m`: m = U·diag(σ)·Vᵀ, σ non-increasing.
pub(crate) fn thin_svd(m: MatRef<'_, f64>) -> Result<(Mat<f64>, Vec<f64>, Mat<f64>)> {
    let (r, c) = m.shape();
    if r == 0 || c == 0 {
        return Ok((Mat::zeros(r, 0), Vec::new(), Mat::zeros(c, 0)));
    }
    svd_qr_iteration(m, true)
}

/// Moore–Penrose pseudo-inverse of `m` (c × r), dropping singular values at or
/// below σ₁·max(r,c)·ε (so rounding noise is never amplified).
pub(crate) fn pinv(m: MatRef<'_, f64>) -> Result<Mat<f64>> {
    let (r, c) = (m.nrows(), m.ncols());
    if r == 0 || c == 0 {
        return Ok(Mat::zeros(c, r));
    }
    let (u, s, v) = thin_svd(m)?;
    let tol = crate::spectrum::rank_tolerance(s.first().copied().unwrap_or(0.0), r, c);
    let k = s.iter().take_while(|&&x| x > tol).count();
    // pinv = V_k · diag(1/σ_k) · U_kᵀ
    Ok(Mat::from_fn(c, r, |i, j| {
        let mut acc = 0.0;
        for t in 0..k {
            acc += v[(i, t)] * u[(j, t)] / s[t];
        }
        acc
    }))
}

/// Dense product a·b (faer GEMM). Small products (≤ [`SEQ_MATMUL_FLOPS`]
/// multiply-adds, e.g. the (d+1)² cores of every head) run sequentially:
/// faer's global parallelism would wake its thread pool (spindle) for each,
/// while the callers already run heads or row blocks in parallel. Larger
/// ones (the dense reference's n × n products) keep faer's global setting.
pub(crate) fn matmul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let work = a.nrows().saturating_mul(a.ncols()).saturating_mul(b.ncols());
    let par = if work <= SEQ_MATMUL_FLOPS { faer::Par::Seq } else { faer::get_global_parallelism() };
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(out.as_mut(), faer::Accum::Replace, a, b, 1.0, par);
    out
}

/// Multiply-adds below which [`matmul`] stays on the calling thread (128³).
const SEQ_MATMUL_FLOPS: usize = 1 << 21;

/// Dot product of two f64 slices with 4 independent accumulators (vectorises).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let (ca, ra) = (a.chunks_exact(4), a.len() % 4);
    let cb = b.chunks_exact(4);
    for (x, y) in ca.zip(cb) {
        for t in 0..4 {
            acc[t] += x[t] * y[t];
        }
    }
    let tail = a.len() - ra;
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for t in tail..a.len() {
        s += a[t] * b[t];
    }
    s
}

/// Neumaier-compensated sum (error O(ε) independent of the length).
pub(crate) fn compensated_sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        if s.abs() >= x.abs() {
            c += (s - t) + x;
        } else {
            c += (x - t) + s;
        }
        s = t;
    }
    s + c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unblocked Householder R has the blocked one's singular values and RᵀR = mᵀm.
    #[test]
    fn householder_r_matches_the_blocked_factorisation() {
        for (r, c) in [(576usize, 64usize), (65, 65), (40, 7), (5, 9), (1, 3)] {
            let m = Mat::from_fn(r, c, |i, j| (((i * 37 + j * 11) % 23) as f64 - 11.0) / 7.0 + 1e-3 * (i * j) as f64);
            let (h, f) = (householder_r(m.as_ref()), thin_r(m.as_ref()));
            assert_eq!(h.shape(), f.shape());
            let (sh, sf) = (singular_values(h.as_ref()).unwrap(), singular_values(f.as_ref()).unwrap());
            for (a, b) in sh.iter().zip(&sf) {
                assert!((a - b).abs() <= 1e-12 * sf[0], "{r}×{c}: {a} vs {b}");
            }
            let (gh, gm) = (h.transpose() * &h, m.transpose() * &m);
            let scale = (0..c).map(|j| gm[(j, j)]).fold(0.0, f64::max);
            for i in 0..c {
                for j in 0..c {
                    assert!((gh[(i, j)] - gm[(i, j)]).abs() <= 1e-12 * scale, "{r}×{c} ({i},{j})");
                }
            }
        }
        // a zero column inside a blocked group (τ = 0: H = I) and a repeated one
        let m = Mat::from_fn(100, 12, |i, j| match j {
            2 => 0.0,
            6 => (((i * 37 + 5 * 11) % 23) as f64 - 11.0) / 7.0,
            _ => (((i * 37 + j * 11) % 23) as f64 - 11.0) / 7.0 + 1e-3 * (i * j) as f64,
        });
        let h = householder_r(m.as_ref());
        let (gh, gm) = (h.transpose() * &h, m.transpose() * &m);
        for i in 0..12 {
            for j in 0..12 {
                assert!((gh[(i, j)] - gm[(i, j)]).abs() <= 1e-12 * 100.0, "zero column ({i},{j})");
            }
        }
        // a zero column and a zero matrix
        let z = Mat::from_fn(6, 3, |i, j| if j == 1 { 0.0 } else { (i + j) as f64 });
        assert_eq!(singular_values(householder_r(z.as_ref()).as_ref()).unwrap().len(), 3);
        assert!(householder_r(Mat::<f64>::zeros(4, 2).as_ref()).norm_l2() == 0.0);
    }
}
