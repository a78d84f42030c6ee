//! Matrix products of the CPU f32 inference path without the zeroed output
//! buffer, and two ways to run GEMMs as tasks on one thread each.
//!
//! candle's CPU matmul allocates its output with `vec![0; b·m·n]` and then
//! has `gemm` overwrite every element (`read_dst = false`): with freed
//! buffers kept in the heap ([`crate::alloc::tune`]) that zeroing is a
//! memset over every GEMM output, about 0.53 GB per SmolLM2 pass at 512
//! tokens. [`matmul`] makes exactly candle's `gemm::gemm` call (same
//! dimensions, strides, batch steps, `alpha = 0`, `beta = 1`, the same
//! thread count) into uninitialized memory, so its result has the same bits
//! as `Tensor::matmul`; anything else (tracked tensors, which need candle's
//! op for their gradient; other devices, dtypes or ranks; layouts candle
//! would reject) goes to `Tensor::matmul` itself.
//!
//! [`matmul_pair`] and [`matmul_split_rows`] run independent GEMMs
//! concurrently, each on one thread of rayon's pool, instead of one GEMM
//! after the other on every thread: the forward's GEMMs are small (512×576
//! by 576×1536 at 512 tokens) and scale poorly over two threads, while two
//! one-thread GEMMs each run at the core's own rate. Same bits as
//! [`matmul`]: gemm accumulates each output element over the depth in
//! blocks whose size depends on k alone (and on m, n only when both are
//! ≤ 64, which the row split avoids), so neither the thread count nor the
//! rows a call covers change the order of its additions (unit tests).

use candle_core::{DType, Device, Storage, Tensor};

use crate::Result;

/// `a · b` for a (.., m, k), b (.., k, n) → (.., m, n) with rank 2 or 3,
/// bit-identical to `a.matmul(b)` (see the module docs); `Tensor::matmul`
/// whenever the fast path does not apply.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.track_op() || b.track_op() {
        return Ok(a.matmul(b)?);
    }
    match with_gemm(a, b, |g| g.run(parallelism(candle_core::utils::get_num_threads()))) {
        Some(out) => out,
        None => Ok(a.matmul(b)?),
    }
}

/// [`matmul`] on one thread whatever the pool's size: for a product that
/// is itself one of several tasks running concurrently. Bit-identical to
/// [`matmul`].
pub fn matmul_one_thread(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.track_op() || b.track_op() {
        return Ok(a.matmul(b)?);
    }
    match with_gemm(a, b, |g| g.run(gemm::Parallelism::None)) {
        Some(out) => out,
        None => Ok(a.matmul(b)?),
    }
}

/// `(a1 · b1, a2 · b2)`, the two products computed concurrently on one
/// thread each (`rayon::join`) when both take the fast path and rayon's
/// pool has at least two threads; else [`matmul`] twice. Bit-identical to
/// [`matmul`] of each pair.
pub fn matmul_pair(a1: &Tensor, b1: &Tensor, a2: &Tensor, b2: &Tensor) -> Result<(Tensor, Tensor)> {
    if tasks_apply(&[a1, b1, a2, b2]) {
        let both = with_gemm(a1, b1, |g1| {
            with_gemm(a2, b2, |g2| {
                let (r1, r2) = rayon::join(|| g1.run(gemm::Parallelism::None), || g2.run(gemm::Parallelism::None));
                Ok::<_, crate::Error>((r1?, r2?))
            })
        });
        if let Some(Some(out)) = both {
            return out;
        }
    }
    Ok((matmul(a1, b1)?, matmul(a2, b2)?))
}

/// `a · b` for a (m, k), b (k, n) with the rows of the output split in two
/// halves, each computed on one thread (`rayon::join`) into its half of one
/// buffer; [`matmul`] when rayon's pool has one thread, a half would have
/// ≤ 64 rows with n ≤ 64 (gemm's depth blocks would differ), the operands
/// are batched, or the fast path does not apply. Bit-identical to
/// [`matmul`].
pub fn matmul_split_rows(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if tasks_apply(&[a, b]) && a.rank() == 2 && b.rank() == 2 {
        if let Some(out) = with_gemm(a, b, |g| g.run_split_rows()) {
            return out;
        }
    }
    matmul(a, b)
}

/// Whether the one-thread task paths may run: untracked operands and a pool
/// of at least two threads (else the tasks would only run one after the
/// other, at no gain).
fn tasks_apply(ts: &[&Tensor]) -> bool {
    rayon::current_num_threads() > 1 && ts.iter().all(|t| !t.track_op())
}

fn parallelism(threads: usize) -> gemm::Parallelism {
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// One GEMM as candle's CPU matmul would call it: operand slices from
/// their start offsets, (batches, m, n, k), batch steps and element
/// strides, and the output's dims.
struct Gemm<'a> {
    xa: &'a [f32],
    xb: &'a [f32],
    batches: usize,
    m: usize,
    n: usize,
    k: usize,
    a_skip: usize,
    b_skip: usize,
    a_rs: usize,
    a_cs: usize,
    b_rs: usize,
    b_cs: usize,
    dims: Vec<usize>,
}

/// A pointer into an output buffer that one task writes, disjoint from
/// the other task's rows.
struct Dst(*mut f32);
// SAFETY: each task writes only its own rows (see `run_split_rows`).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

/// The operands' shape as (batches, m, n, k, a_skip, b_skip), as candle's
/// CPU matmul derives it; `None` where this module leaves it to candle.
fn plan(a: &Tensor, b: &Tensor) -> Option<(usize, usize, usize, usize, usize, usize)> {
    let (ad, bd) = (a.dims(), b.dims());
    let (al, bl) = (a.layout(), b.layout());
    let (as_, bs) = (al.stride(), bl.stride());
    match (ad, bd) {
        (&[m, k], &[k2, n]) if k == k2 => Some((1, m, n, k, m * k, n * k)),
        (&[ba, m, k], &[bb, k2, n]) if k == k2 && ba == bb => Some((ba, m, n, k, as_[0], bs[0])),
        _ => None,
    }
}

/// Calls `f` with the fast path's [`Gemm`] for `a · b`; `None` when the
/// fast path does not apply (the operands' storage stays locked for `f`).
fn with_gemm<R>(a: &Tensor, b: &Tensor, f: impl FnOnce(&Gemm) -> R) -> Option<R> {
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 || !a.device().is_cpu() || !b.device().is_cpu() {
        return None;
    }
    let (batches, m, n, k, a_skip, b_skip) = plan(a, b)?;
    if m == 0 || n == 0 || k == 0 || batches == 0 {
        return None;
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let (Storage::Cpu(ca), Storage::Cpu(cb)) = (&*sa, &*sb) else { return None };
    let (Ok(xa), Ok(xb)) = (ca.as_slice::<f32>(), cb.as_slice::<f32>()) else { return None };
    let (ra, rb) = (la.stride().len(), lb.stride().len());
    let (a_cs, a_rs) = (la.stride()[ra - 1], la.stride()[ra - 2]);
    let (b_cs, b_rs) = (lb.stride()[rb - 1], lb.stride()[rb - 2]);
    // Every element either operand addresses must lie in its storage (a
    // layout candle built always does; checked, as the reads are raw).
    let last = |batches: usize, skip: usize, rows: usize, rs: usize, cols: usize, cs: usize| {
        (batches - 1) * skip + (rows - 1) * rs + (cols - 1) * cs
    };
    if la.start_offset() + last(batches, a_skip, m, a_rs, k, a_cs) >= xa.len()
        || lb.start_offset() + last(batches, b_skip, k, b_rs, n, b_cs) >= xb.len()
    {
        return None;
    }
    let (xa, xb) = (&xa[la.start_offset()..], &xb[lb.start_offset()..]);
    let mut dims = a.dims()[..a.rank() - 2].to_vec();
    dims.extend([m, n]);
    // candle stacks the batches of a into one (b·m, k) matrix when b is
    // shared by every batch; the same here, for the same call.
    let (batches, m) = if b_skip == 0 && a_skip == m * k { (1, batches * m) } else { (batches, m) };
    Some(f(&Gemm { xa, xb, batches, m, n, k, a_skip, b_skip, a_rs, a_cs, b_rs, b_cs, dims }))
}

impl Gemm<'_> {
    /// The whole product on `par`'s threads, into a new tensor.
    fn run(&self, par: gemm::Parallelism) -> Result<Tensor> {
        let (m, n) = (self.m, self.n);
        let len = self.batches * m * n;
        let mut out: Vec<f32> = Vec::with_capacity(len);
        for step in 0..self.batches {
            // SAFETY: `out` has capacity for `batches` blocks of m·n values.
            unsafe { self.rows(out.as_mut_ptr().add(step * m * n), step, 0..m, par) }
        }
        // SAFETY: gemm wrote all `len` values (`rows`).
        unsafe { out.set_len(len) };
        Ok(Tensor::from_vec(out, self.dims.clone(), &Device::Cpu)?)
    }

    /// A single batch's product with its rows in two halves, one thread
    /// each, into one buffer; the whole product on one thread where a
    /// half's gemm could block the depth differently (both ≤ 64).
    fn run_split_rows(&self) -> Result<Tensor> {
        let (m, n) = (self.m, self.n);
        let half = m / 2;
        if self.batches != 1 || half == 0 || (half <= 64 && n <= 64) {
            return self.run(gemm::Parallelism::None);
        }
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        let dst = Dst(out.as_mut_ptr());
        let dst = &dst;
        // SAFETY: the two calls write the disjoint row ranges [0, half) and
        // [half, m) of a buffer with capacity m·n, and read only operands.
        rayon::join(
            || unsafe { self.rows(dst.0, 0, 0..half, gemm::Parallelism::None) },
            || unsafe { self.rows(dst.0, 0, half..m, gemm::Parallelism::None) },
        );
        // SAFETY: together the two calls wrote all m·n values.
        unsafe { out.set_len(m * n) };
        Ok(Tensor::from_vec(out, self.dims.clone(), &Device::Cpu)?)
    }

    /// Rows `rows` of batch `step` into `block`, the start of that batch's
    /// row-major (m, n) output block.
    ///
    /// # Safety
    /// `block` must be valid for writes of m·n values; concurrent calls
    /// must cover disjoint rows.
    unsafe fn rows(&self, block: *mut f32, step: usize, rows: std::ops::Range<usize>, par: gemm::Parallelism) {
        let (n, k) = (self.n, self.k);
        // SAFETY: the offsets of every element read were bounds-checked in
        // `with_gemm` (rows ⊆ 0..m); with `read_dst = false` and
        // `alpha = 0` gemm writes every element of its rows before it
        // reads any (later depth blocks add to what the first wrote).
        unsafe {
            gemm::gemm(
                rows.len(),
                n,
                k,
                block.add(rows.start * n),
                1,
                n as isize,
                false,
                self.xa.as_ptr().add(step * self.a_skip + rows.start * self.a_rs),
                self.a_cs as isize,
                self.a_rs as isize,
                self.xb.as_ptr().add(step * self.b_skip),
                self.b_cs as isize,
                self.b_rs as isize,
                0f32,
                1f32,
                false,
                false,
                false,
                par,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// Seeded values in [−1, 1) (xorshift64*).
    fn randn(dims: &[usize], seed: u64) -> Tensor {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    /// Same bits as `Tensor::matmul` for the decoder's operand layouts:
    /// contiguous, transposed views (nn.Linear weights), narrowed row
    /// ranges with a row stride (attention keys/values read in place),
    /// batched, single rows (gemv), small and large depths (one or several
    /// of gemm's depth blocks).
    #[test]
    fn equals_candle_matmul_bit_for_bit() {
        for &(m, k, n) in &[(1, 1, 1), (1, 576, 49), (3, 7, 5), (64, 64, 64), (130, 576, 192), (257, 1536, 70), (512, 64, 300)] {
            let a = randn(&[m, k], 1);
            let w = randn(&[n, k], 2).t().unwrap(); // (k, n) transposed view
            let b = randn(&[k, n], 3);
            for rhs in [&w, &b] {
                let got = matmul(&a, rhs).unwrap();
                assert_eq!(got.dims(), &[m, n]);
                assert_eq!(bits(&got), bits(&a.matmul(rhs).unwrap()), "({m}, {k}, {n})");
            }
        }
        // Batched with in-place key ranges: (h, g·c, d) · (h, d, t)[.., lo..hi].
        let q = randn(&[3, 96, 64], 4);
        let kt = randn(&[3, 64, 200], 5);
        let kc = kt.narrow(2, 40, 150).unwrap();
        assert_eq!(bits(&matmul(&q, &kc).unwrap()), bits(&q.matmul(&kc).unwrap()));
        let p = randn(&[3, 96, 150], 6);
        let v = randn(&[3, 200, 64], 7).narrow(1, 30, 150).unwrap();
        assert_eq!(bits(&matmul(&p, &v).unwrap()), bits(&p.matmul(&v).unwrap()));
    }

    /// The one-thread task paths give `Tensor::matmul`'s bits for the
    /// decoder's layouts: row halves of projections (contiguous input,
    /// transposed weight view; even, odd and small m, depths of one and two
    /// blocks) and pairs of batched attention products with in-place key
    /// and value ranges. Run in a two-thread pool so the tasks really split.
    #[test]
    fn tasks_equal_candle_matmul_bit_for_bit() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            for &(m, k, n) in &[(1, 5, 3), (2, 64, 64), (129, 64, 64), (130, 576, 192), (257, 1536, 70), (512, 576, 1536), (512, 1536, 576)]
            {
                let a = randn(&[m, k], 20);
                let w = randn(&[n, k], 21).t().unwrap();
                let want = bits(&a.matmul(&w).unwrap());
                assert_eq!(bits(&matmul_split_rows(&a, &w).unwrap()), want, "split ({m}, {k}, {n})");
                let a2 = randn(&[m, k], 22);
                let (p1, p2) = matmul_pair(&a, &w, &a2, &w).unwrap();
                assert_eq!(bits(&p1), want, "pair ({m}, {k}, {n})");
                assert_eq!(bits(&p2), bits(&a2.matmul(&w).unwrap()), "pair 2 ({m}, {k}, {n})");
            }
            let q = randn(&[3, 384, 64], 23);
            let kt = randn(&[3, 64, 512], 24);
            let (k1, k2) = (kt.narrow(2, 0, 128).unwrap(), kt.narrow(2, 0, 512).unwrap());
            let (s1, s2) = matmul_pair(&q, &k1, &q, &k2).unwrap();
            assert_eq!(bits(&s1), bits(&q.matmul(&k1).unwrap()));
            assert_eq!(bits(&s2), bits(&q.matmul(&k2).unwrap()));
            let p = randn(&[3, 384, 384], 25);
            let v = randn(&[3, 512, 64], 26).narrow(1, 0, 384).unwrap();
            let (o1, o2) = matmul_pair(&p, &v, &q, &k1).unwrap();
            assert_eq!(bits(&o1), bits(&p.matmul(&v).unwrap()));
            assert_eq!(bits(&o2), bits(&q.matmul(&k1).unwrap()));
        });
    }

    /// Tracked operands keep candle's op, so gradients flow.
    #[test]
    fn tracked_operands_keep_the_gradient() {
        let w = Var::from_tensor(&randn(&[4, 3], 10)).unwrap();
        let x = randn(&[2, 4], 11);
        let y = matmul(&x, w.as_tensor()).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(w.as_tensor()).is_some());
    }
}
