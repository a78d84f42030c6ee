//! Matrix products of the CPU f32 inference path without the zeroed output
//! buffer.
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

use candle_core::{DType, Device, Storage, Tensor};

use crate::Result;

/// `a · b` for a (.., m, k), b (.., k, n) → (.., m, n) with rank 2 or 3,
/// bit-identical to `a.matmul(b)` (see the module docs); `Tensor::matmul`
/// whenever the fast path does not apply.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.track_op() || b.track_op() {
        return Ok(a.matmul(b)?);
    }
    match gemm_f32(a, b) {
        Some(out) => out,
        None => Ok(a.matmul(b)?),
    }
}

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

/// The fast path; `None` when it does not apply.
fn gemm_f32(a: &Tensor, b: &Tensor) -> Option<Result<Tensor>> {
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
    // candle stacks the batches of a into one (b·m, k) matrix when b is
    // shared by every batch; the same here, for the same call.
    let (batches, m) = if b_skip == 0 && a_skip == m * k { (1, batches * m) } else { (batches, m) };
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let len = batches * m * n;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    for step in 0..batches {
        // SAFETY: the offsets of every element read were bounds-checked
        // above; `out` has capacity for `batches` blocks of m·n values, the
        // destination is row-major (m, n) at block `step`; with
        // `read_dst = false` and `alpha = 0` gemm writes every element of
        // the block before it reads any (later depth blocks add to what the
        // first wrote).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr().add(step * m * n),
                1,
                n as isize,
                false,
                xa.as_ptr().add(step * a_skip),
                a_cs as isize,
                a_rs as isize,
                xb.as_ptr().add(step * b_skip),
                b_cs as isize,
                b_rs as isize,
                0f32,
                1f32,
                false,
                false,
                false,
                parallelism,
            )
        }
    }
    // SAFETY: gemm wrote all `len` values (above).
    unsafe { out.set_len(len) };
    let mut shape = a.dims()[..a.rank() - 2].to_vec();
    shape.extend([a.dim(a.rank() - 2).ok()?, n]);
    Some(Tensor::from_vec(out, shape, &Device::Cpu).map_err(Into::into))
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
