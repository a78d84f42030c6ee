//! Register-tiled products for the row checks: a tile of up to [`ROWS`] rows
//! (queries) against a run of consecutive keys, out[t][j] = Σ_c x[rows[t]][c]·yᵀ[c][j],
//! with no packing and no allocation (faer's GEMM packed its operands for
//! every 16-row block: about 2 M of a head's 23.8 M instructions at n = 512).
//!
//! Contract shared by both precisions:
//! * `x` is row-major (row i at `x[i·p..]`, p values read), `yt` is the key
//!   side transposed and zero-padded ([`Panel`]: value c of key j at
//!   `yt[c·ld + j]`, at least [`PAD`] zero keys past the last real one);
//! * each entry is one sequential fused multiply-add chain over c = 0..p,
//!   starting from 0: the order of faer's microkernel, so the products are
//!   those of the GEMM they replace, to the last bit where both fuse;
//! * the tile writes whole vectors: keys j0..j0 + round_up(j1 − j0, vector
//!   block) for every one of the ROWS rows (rows past `rows.len()` repeat the
//!   last row), so `out` needs `ROWS` rows of stride `ld_out`, the last one
//!   at least that rounded length long (a row shorter than its stride plus
//!   [`PAD`] spills into the next one: callers keep `off + j1 − j0 + PAD ≤ ld_out`
//!   for a tile written at column `off`).
//!
//! Without AVX2/FMA a scalar loop computes the same sums (unfused: a·b + acc).

/// Rows per tile (each row's key vector is broadcast once per c).
pub(crate) const ROWS: usize = 4;
/// Zero keys past the end of a [`Panel`] and spare columns an output row needs.
pub(crate) const PAD: usize = 24;

/// The key side of a product, transposed and zero-padded: value c of key j
/// at `data[c·ld + j]`, ld ≥ n + [`PAD`] (keys n..ld are 0). O(n·p) to build.
pub(crate) struct Panel<T> {
    pub data: Vec<T>,
    pub ld: usize,
}

impl<T: Copy + Default> Panel<T> {
    /// From row-major `y` (n × p, row j = key j), each value through `f`.
    pub fn new<S: Copy>(y: &[S], n: usize, p: usize, f: impl Fn(S) -> T) -> Self {
        let ld = n + PAD;
        let mut data = vec![T::default(); p * ld];
        // column by column: sequential writes, strided reads
        for (c, col) in data.chunks_exact_mut(ld).enumerate() {
            for (dst, row) in col[..n].iter_mut().zip(y.chunks_exact(p)) {
                *dst = f(row[c]);
            }
        }
        Panel { data, ld }
    }
}

/// The ROWS row indices of a tile: `rows`, the last one repeated.
#[inline(always)]
fn tile_rows(rows: &[usize]) -> [usize; ROWS] {
    debug_assert!(!rows.is_empty() && rows.len() <= ROWS);
    std::array::from_fn(|t| rows[t.min(rows.len() - 1)])
}

macro_rules! scalar_tile {
    ($name:ident, $t:ty, $step:expr) => {
        /// Scalar fallback of the tile (same chains, unfused).
        fn $name(x: &[$t], p: usize, rows: &[usize], yt: &Panel<$t>, keys: std::ops::Range<usize>, out: &mut [$t], ld_out: usize) {
            let r = tile_rows(rows);
            let len = (keys.end - keys.start).div_ceil($step) * $step;
            for (t, &i) in r.iter().enumerate() {
                let xi = &x[i * p..(i + 1) * p];
                for u in 0..len {
                    let j = keys.start + u;
                    let mut acc: $t = 0.0;
                    for (c, &xv) in xi.iter().enumerate() {
                        acc += xv * yt.data[c * yt.ld + j];
                    }
                    out[t * ld_out + u] = acc;
                }
            }
        }
    };
}
scalar_tile!(tile_f64_scalar, f64, 12);
scalar_tile!(tile_f32_scalar, f32, 24);

/// f64 tile: out[t·ld_out + (j − keys.start)] = Σ_c x[rows[t]·p + c]·yt[c·ld + j]
/// for t < ROWS, j ∈ keys rounded up to 12 keys (3 vectors of 4).
pub(crate) fn tile_f64(x: &[f64], p: usize, rows: &[usize], yt: &Panel<f64>, keys: std::ops::Range<usize>, out: &mut [f64], ld_out: usize) {
    check(x.len(), p, rows, yt.data.len(), yt.ld, &keys, out.len(), ld_out, 12);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); every
            // index the kernel reads or writes was bounds-checked by `check`.
            unsafe { avx::tile_f64(x, p, rows, yt, keys, out, ld_out) };
            return;
        }
    }
    tile_f64_scalar(x, p, rows, yt, keys, out, ld_out)
}

/// f32 tile, as [`tile_f64`] with keys rounded up to 24 (3 vectors of 8).
pub(crate) fn tile_f32(x: &[f32], p: usize, rows: &[usize], yt: &Panel<f32>, keys: std::ops::Range<usize>, out: &mut [f32], ld_out: usize) {
    check(x.len(), p, rows, yt.data.len(), yt.ld, &keys, out.len(), ld_out, 24);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as in tile_f64.
            unsafe { avx::tile_f32(x, p, rows, yt, keys, out, ld_out) };
            return;
        }
    }
    tile_f32_scalar(x, p, rows, yt, keys, out, ld_out)
}

/// Bounds of one tile (panics on a caller bug, before any unsafe access).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn check(
    x_len: usize,
    p: usize,
    rows: &[usize],
    y_len: usize,
    ld: usize,
    keys: &std::ops::Range<usize>,
    out_len: usize,
    ld_out: usize,
    step: usize,
) {
    let len = (keys.end - keys.start).div_ceil(step) * step;
    assert!(!rows.is_empty() && rows.len() <= ROWS && p > 0 && keys.start < keys.end);
    assert!(rows.iter().all(|&i| (i + 1) * p <= x_len), "tile row out of range");
    assert!(keys.start + len <= ld && p * ld <= y_len, "tile keys past the panel");
    assert!(len <= ld_out && (ROWS - 1) * ld_out + len <= out_len, "tile output too small");
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{tile_rows, Panel, ROWS};
    use std::arch::x86_64::*;

    macro_rules! avx_tile {
        ($name:ident, $t:ty, $lanes:expr, $reg:ty, $zero:ident, $bcast:ident, $load:ident, $fma:ident, $store:ident) => {
            /// The AVX2/FMA tile: 4 rows × 3 vectors of accumulators (12 of the
            /// 16 registers), one load of 3 key vectors and 4 broadcasts per c.
            ///
            /// # Safety
            /// AVX2 and FMA; indices as checked by `super::check`.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $name(
                x: &[$t],
                p: usize,
                rows: &[usize],
                yt: &Panel<$t>,
                keys: std::ops::Range<usize>,
                out: &mut [$t],
                ld_out: usize,
            ) {
                const W: usize = 3 * $lanes;
                let r = tile_rows(rows);
                let xp = x.as_ptr();
                let yp = yt.data.as_ptr();
                let op = out.as_mut_ptr();
                let mut j = keys.start;
                let mut u = 0;
                while j < keys.end {
                    let mut acc: [[$reg; 3]; ROWS] = [[$zero(); 3]; ROWS];
                    for c in 0..p {
                        let y = yp.add(c * yt.ld + j);
                        let yv = [$load(y), $load(y.add($lanes)), $load(y.add(2 * $lanes))];
                        for t in 0..ROWS {
                            let a = $bcast(&*xp.add(r[t] * p + c));
                            for v in 0..3 {
                                acc[t][v] = $fma(a, yv[v], acc[t][v]);
                            }
                        }
                    }
                    for t in 0..ROWS {
                        for v in 0..3 {
                            $store(op.add(t * ld_out + u + v * $lanes), acc[t][v]);
                        }
                    }
                    j += W;
                    u += W;
                }
            }
        };
    }
    avx_tile!(tile_f64, f64, 4, __m256d, _mm256_setzero_pd, _mm256_broadcast_sd, _mm256_loadu_pd, _mm256_fmadd_pd, _mm256_storeu_pd);
    avx_tile!(tile_f32, f32, 8, __m256, _mm256_setzero_ps, _mm256_broadcast_ss, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile shape (1..=4 rows, key runs of every length around the
    /// vector blocks, offsets) equals the plain dot products, and the SIMD
    /// build equals the scalar one to the rounding of a fused chain.
    #[test]
    fn tiles_equal_plain_dot_products() {
        let (n, p) = (61, 7);
        let x: Vec<f64> = (0..n * p).map(|v| ((v * 7919 % 97) as f64 - 48.0) / 13.0).collect();
        let y: Vec<f64> = (0..n * p).map(|v| ((v * 104_729 % 89) as f64 - 44.0) / 11.0).collect();
        let (yt64, x32) = (Panel::new(&y, n, p, |v| v), x.iter().map(|&v| v as f32).collect::<Vec<f32>>());
        let yt32 = Panel::new(&y, n, p, |v| v as f32);
        let ld_out = n + PAD;
        for rows in [vec![0usize], vec![5, 9], vec![60, 3, 17], vec![1, 2, 3, 4]] {
            for (j0, j1) in [(0, 1), (0, 12), (3, 16), (10, 61), (59, 61), (0, 61), (30, 55)] {
                let mut o64 = vec![f64::NAN; ROWS * ld_out];
                let mut o32 = vec![f32::NAN; ROWS * ld_out];
                tile_f64(&x, p, &rows, &yt64, j0..j1, &mut o64, ld_out);
                tile_f32(&x32, p, &rows, &yt32, j0..j1, &mut o32, ld_out);
                let mut s64 = vec![f64::NAN; ROWS * ld_out];
                tile_f64_scalar(&x, p, &rows, &yt64, j0..j1, &mut s64, ld_out);
                for (t, &i) in rows.iter().enumerate() {
                    for j in j0..j1 {
                        let want: f64 = (0..p).map(|c| x[i * p + c] * y[j * p + c]).sum();
                        let got = o64[t * ld_out + j - j0];
                        assert!((got - want).abs() <= 1e-13 * (1.0 + want.abs()), "{rows:?} {j}: {got} vs {want}");
                        assert!((s64[t * ld_out + j - j0] - got).abs() <= 1e-13 * (1.0 + want.abs()));
                        let got32 = o32[t * ld_out + j - j0] as f64;
                        assert!((got32 - want).abs() <= 1e-5 * (1.0 + want.abs()), "f32 {rows:?} {j}: {got32} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "tile keys past the panel")]
    fn a_tile_past_the_panel_panics_before_reading() {
        let y = vec![1.0f64; 4 * 2];
        let yt = Panel::new(&y, 4, 2, |v| v);
        let mut out = vec![0.0; ROWS * 64];
        tile_f64(&y, 2, &[0], &yt, 20..40, &mut out, 64);
    }
}
