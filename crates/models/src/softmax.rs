//! The attention's scale, mask and softmax, fused and in place on each
//! query chunk's score GEMM output (CPU f32 inference path), and the
//! additive masks the op path (training, other devices, soft-capping) adds.
//! Bit-identical to the op path (unit test below).

use candle_core::{DType, Device, Tensor, D};

use crate::Result;

/// Which keys the queries of one attention chunk see: queries c0..c0+len
/// over keys lo.., causal and (optionally) within a sliding window; and
/// the ALiBi slope of each query head, if any.
#[derive(Clone, Copy)]
pub(crate) struct Support<'a> {
    pub(crate) c0: usize,
    pub(crate) len: usize,
    pub(crate) lo: usize,
    pub(crate) window: Option<usize>,
    /// (h,) ALiBi slopes m_h: bias −m_h·(i − j), in f32.
    pub(crate) slopes: Option<&'a [f32]>,
}

impl Support<'_> {
    /// Whether query c0 + r sees key lo + c.
    fn visible(&self, r: usize, c: usize) -> bool {
        let (i, j) = (self.c0 + r, self.lo + c);
        j <= i && self.window.is_none_or(|w| i < j + w)
    }
    /// The additive bias of query head `head`, query c0 + r, key lo + c
    /// (0 without ALiBi): −m·(i − j), one f32 product.
    fn bias(&self, head: usize, r: usize, c: usize) -> f32 {
        match self.slopes {
            None => 0.0,
            Some(m) => m[head] * ((self.lo + c) as f32 - (self.c0 + r) as f32),
        }
    }
}

/// softmax(s·QKᵀ + bias + mask) over the last dim of `qk` (.., rows, nk), in
/// place, rows cycling over the chunk's `len` queries, in one parallel pass.
/// Bit-identical to `qk * s`, `+ causal_mask`, `softmax_last_dim` (the same
/// f32 product, −∞ off the support, candle's own max/sum reductions, and
/// exp with the bits of `f32::exp`, [`crate::expf`]). Returns false, leaving
/// `qk` alone, unless it is a contiguous f32 CPU tensor; it must not share
/// its storage with another live tensor (a fresh matmul output).
pub(crate) fn masked_softmax_in_place(qk: &Tensor, scale: f32, support: Support) -> Result<bool> {
    if !qk.device().is_cpu() || qk.dtype() != DType::F32 || !qk.is_contiguous() {
        return Ok(false);
    }
    let nk = qk.dim(D::Minus1)?;
    qk.inplace_op1(&MaskedSoftmax { nk, scale, support })?;
    Ok(true)
}

/// [`masked_softmax_in_place`]'s in-place op.
struct MaskedSoftmax<'a> {
    nk: usize,
    scale: f32,
    support: Support<'a>,
}

impl candle_core::InplaceOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut candle_core::CpuStorage, layout: &candle_core::Layout) -> candle_core::Result<()> {
        use rayon::prelude::*;
        let (candle_core::CpuStorage::F32(data), Some((o1, o2))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("masked softmax: not a contiguous f32 tensor")
        };
        data[o1..o2].par_chunks_mut(self.nk).enumerate().for_each(|(row, d)| softmax_row(d, row, self.scale, self.support));
        Ok(())
    }
}

/// One row of [`masked_softmax_in_place`]: row `row` of the (h_kv, g, len)
/// flattened rows, i.e. query head row / len, query c0 + row % len.
fn softmax_row(d: &mut [f32], row: usize, scale: f32, support: Support) {
    use candle_core::cpu::kernels::VecOps;
    let nk = d.len();
    let (head, r) = (row / support.len, row % support.len);
    if support.slopes.is_none() {
        // Visible keys are one range: lo + c ≤ i, and i < lo + c + w in a window.
        let i = support.c0 + r;
        let end = (i + 1 - support.lo).min(nk);
        let start = support.window.map_or(0, |w| (i + 1).saturating_sub(w).saturating_sub(support.lo)).min(end);
        let max = scale_max(&mut d[start..end], scale);
        if max.is_finite() {
            // Off the support exp(−∞ − max) = +0 and +0 / sum = +0: write the
            // zeros, exponentiate only the visible keys. The sum still runs
            // over the whole row, zeros included, so it keeps candle's order.
            d[..start].fill(0.0);
            d[end..].fill(0.0);
            crate::expf::exp_sub_in_place(&mut d[start..end], max);
            let mut sum = 0f32;
            // SAFETY: `d` holds nk initialised f32s.
            unsafe { f32::vec_reduce_sum(d.as_ptr(), &mut sum, nk) };
            for v in &mut d[start..end] {
                *v /= sum;
            }
            return;
        }
        // ±∞ or NaN scores: the general path below, as the ops compute it.
        d[..start].fill(f32::NEG_INFINITY);
        d[end..].fill(f32::NEG_INFINITY);
    } else {
        for (c, v) in d.iter_mut().enumerate() {
            *v = if support.visible(r, c) { *v * scale + support.bias(head, r, c) } else { f32::NEG_INFINITY };
        }
    }
    let mut max = f32::NEG_INFINITY;
    // SAFETY: `d` holds nk initialised f32s.
    unsafe { f32::vec_reduce_max(d.as_ptr(), &mut max, nk) };
    for v in d.iter_mut() {
        *v -= max;
    }
    crate::expf::exp_in_place(d);
    let mut sum = 0f32;
    // SAFETY: as above.
    unsafe { f32::vec_reduce_sum(d.as_ptr(), &mut sum, nk) };
    for v in d.iter_mut() {
        *v /= sum;
    }
}

/// d ← d·scale, and returns the largest of the products (−∞ for none; NaN
/// ignored, as candle's max reduction ignores it). Eight running maxima
/// that vectorize: the maximum of finite values does not depend on the
/// order they are compared in.
fn scale_max(d: &mut [f32], scale: f32) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut chunks = d.chunks_exact_mut(8);
    for c in &mut chunks {
        for (v, m) in c.iter_mut().zip(&mut m) {
            *v *= scale;
            *m = m.max(*v);
        }
    }
    let mut max = m.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    for v in chunks.into_remainder() {
        *v *= scale;
        max = max.max(*v);
    }
    max
}

/// Additive ALiBi bias plus mask (h, len, nk) f32: [`Support::bias`] on the
/// support, −∞ elsewhere.
pub(crate) fn alibi_mask(support: Support, nk: usize, dev: &Device) -> Result<Tensor> {
    let (len, h) = (support.len, support.slopes.map_or(0, <[f32]>::len));
    let mut m = vec![0f32; h * len * nk];
    for head in 0..h {
        for r in 0..len {
            for c in 0..nk {
                m[(head * len + r) * nk + c] = if support.visible(r, c) { support.bias(head, r, c) } else { f32::NEG_INFINITY };
            }
        }
    }
    Ok(Tensor::from_vec(m, (h, len, nk), dev)?)
}

/// Additive mask (len, nk) f32 for the chunk's queries over keys lo..lo+nk:
/// 0 where the key is in the query's support ([`Support::visible`]), −∞ elsewhere.
pub(crate) fn causal_mask(support: Support, nk: usize, dev: &Device) -> Result<Tensor> {
    let len = support.len;
    let mut m = vec![0f32; len * nk];
    for r in 0..len {
        for c in 0..nk {
            if !support.visible(r, c) {
                m[r * nk + c] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(m, (len, nk), dev)?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused masked softmax equals scale, mask (and ALiBi bias) and
    /// candle's softmax bit for bit, causal and windowed, with and without
    /// ALiBi, chunk inside the sequence.
    #[test]
    fn fused_masked_softmax_equals_the_op_path() {
        let dev = Device::Cpu;
        let (hkv, g) = (2usize, 3usize);
        let alibi = [0.5f32, 0.25, 0.125, 0.0625, 0.03125, 0.015625];
        let cases = [(None, None), (Some(4), None), (None, Some(&alibi[..])), (Some(4), Some(&alibi[..])), (Some(29), None)];
        // Short rows, and rows longer than the 8-wide max reduction with a remainder.
        for ((window, slopes), (len, c0)) in cases.into_iter().flat_map(|c| [(c, (5usize, 7usize)), (c, (37, 50))]) {
            let lo = window.map_or(0, |w| (c0 + 1).saturating_sub(w));
            let nk = c0 + len - lo;
            let qk = Tensor::randn(0f32, 6.0, (hkv, g * len, nk), &dev).unwrap();
            let scale = 0.3f32;
            let support = Support { c0, len, lo, window, slopes };
            let fused = qk.copy().unwrap();
            assert!(masked_softmax_in_place(&fused, scale, support).unwrap());
            let s = (&qk * scale as f64).unwrap().reshape((hkv, g, len, nk)).unwrap();
            let s = match slopes {
                None => s.broadcast_add(&causal_mask(support, nk, &dev).unwrap()).unwrap(),
                Some(_) => (s + alibi_mask(support, nk, &dev).unwrap().reshape((hkv, g, len, nk)).unwrap()).unwrap(),
            };
            let ops = candle_nn::ops::softmax_last_dim(&s).unwrap().reshape((hkv, g * len, nk)).unwrap();
            let (a, b) = (fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(), ops.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "window {window:?}, ALiBi {}, len {len}", slopes.is_some());
            // a strided tensor is left alone (the op path handles it)
            let strided = qk.transpose(1, 2).unwrap();
            let before = strided.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(!masked_softmax_in_place(&strided, scale, support).unwrap());
            assert_eq!(before, strided.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }
}
