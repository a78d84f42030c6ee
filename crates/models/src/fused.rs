//! Fused element-wise kernels of the decoder's inference path (CPU, f32,
//! no gradient tracking): SwiGLU, and the residual add with the RMSNorm
//! that follows it, each one parallel pass over data in place instead of
//! two or three candle ops with a fresh buffer each.
//!
//! Every kernel computes the same f32 expressions, in the same order, as
//! the candle ops it replaces (exp through [`crate::expf`], which has the
//! bits of `f32::exp`), so results are bit-identical to the op path; the
//! unit tests below check that bit for bit. Each returns `None`/`false`
//! and leaves its inputs alone when it does not apply (gradients tracked,
//! not a contiguous f32 CPU tensor, mismatched shapes): the caller then
//! runs the candle ops, which training differentiates.
//!
//! In-place kernels write into the storage of a tensor the caller has just
//! computed (a GEMM's output) and no other live tensor shares.

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use crate::Result;

/// Elements per parallel work item of the element-wise passes.
const GRAIN: usize = 1 << 14;

/// Whether `t` is a contiguous f32 CPU tensor without gradient tracking.
fn plain(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() && !t.track_op()
}

/// `(dst, src)` contiguous f32 slices of an in-place op's operands.
fn slices<'a>(dst: &'a mut CpuStorage, dl: &Layout, src: &'a CpuStorage, sl: &Layout) -> candle_core::Result<(&'a mut [f32], &'a [f32])> {
    match (dst, src, dl.contiguous_offsets(), sl.contiguous_offsets()) {
        (CpuStorage::F32(d), CpuStorage::F32(s), Some((d0, d1)), Some((s0, s1))) if d1 - d0 == s1 - s0 => Ok((&mut d[d0..d1], &s[s0..s1])),
        _ => candle_core::bail!("fused kernel: operands are not contiguous f32 tensors of one size"),
    }
}

/// g ← silu(g)·u in place, one parallel pass; g and u (t, d_ff).
///
/// Bit-identical to candle's `g.silu()? * u`: the same f32 expression
/// `g / (1 + e^−g) · u`, with e^−g from [`crate::expf::exp_in_place`]
/// (the bits of `f32::exp`). Returns false, leaving `g` alone, unless both
/// are contiguous f32 CPU tensors of one shape without gradient tracking.
/// `g` must not share its storage with another live tensor.
pub fn swiglu_in_place(g: &Tensor, u: &Tensor) -> Result<bool> {
    if !plain(g) || !plain(u) || g.dims() != u.dims() {
        return Ok(false);
    }
    g.inplace_op2(u, &SwiGlu)?;
    Ok(true)
}

struct SwiGlu;

impl InplaceOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, gs: &mut CpuStorage, gl: &Layout, us: &CpuStorage, ul: &Layout) -> candle_core::Result<()> {
        let (g, u) = slices(gs, gl, us, ul)?;
        g.par_chunks_mut(GRAIN).zip(u.par_chunks(GRAIN)).for_each(|(g, u)| {
            let mut e = [0f32; GRAIN];
            let e = &mut e[..g.len()];
            for (e, &g) in e.iter_mut().zip(g.iter()) {
                *e = -g;
            }
            crate::expf::exp_in_place(e);
            for ((g, &e), &u) in g.iter_mut().zip(e.iter()).zip(u) {
                *g = *g / (1.0 + e) * u;
            }
        });
        Ok(())
    }
}

/// a ← x + a in place (the residual add), one parallel pass; a and x of one
/// shape. Bit-identical to `x + a` (one rounded f32 sum per element).
/// Returns false, leaving `a` alone, when it does not apply (see the module
/// docs). `a` must not share its storage with another live tensor.
pub fn add_in_place(a: &Tensor, x: &Tensor) -> Result<bool> {
    if !plain(a) || !plain(x) || a.dims() != x.dims() {
        return Ok(false);
    }
    a.inplace_op2(x, &AddRmsNorm { norm: None })?;
    Ok(true)
}

/// a ← x + a in place, and returns RMSNorm(a)·w over the last dim, from one
/// parallel pass over the rows; a and x (t, n), w (n,).
///
/// Bit-identical to `x + a` then `candle_nn::ops::rms_norm(·, w, eps)`: the
/// row's sum of squares as one sequential f32 sum, `√(sum/n + eps)`, and
/// `v / rms · w` per element, in candle's order. `None`, leaving `a` alone,
/// when it does not apply (see the module docs). `a` must not share its
/// storage with another live tensor.
pub fn add_rms_norm(a: &Tensor, x: &Tensor, w: &Tensor, eps: f32) -> Result<Option<Tensor>> {
    let n = a.dim(candle_core::D::Minus1)?;
    if !plain(a) || !plain(x) || !plain(w) || a.dims() != x.dims() || w.dims() != [n] || n == 0 {
        return Ok(None);
    }
    let weight = w.flatten_all()?.to_vec1::<f32>()?;
    let op = AddRmsNorm { norm: Some(RmsOut { w: weight, eps, out: std::sync::Mutex::new(Vec::new()) }) };
    a.inplace_op2(x, &op)?;
    let out = op.norm.map(|r| r.out.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)).unwrap_or_default();
    Ok(Some(Tensor::from_vec(out, a.dims(), a.device())?))
}

/// The normalised copy [`add_rms_norm`] writes besides the sum.
struct RmsOut {
    /// (n,) scale.
    w: Vec<f32>,
    eps: f32,
    /// (t, n) output, filled by the op.
    out: std::sync::Mutex<Vec<f32>>,
}

/// a ← x + a, then (optionally) the RMSNorm of each row of a.
struct AddRmsNorm {
    norm: Option<RmsOut>,
}

impl InplaceOp2 for AddRmsNorm {
    fn name(&self) -> &'static str {
        "add-rms-norm"
    }

    fn cpu_fwd(&self, as_: &mut CpuStorage, al: &Layout, xs: &CpuStorage, xl: &Layout) -> candle_core::Result<()> {
        let (a, x) = slices(as_, al, xs, xl)?;
        let Some(norm) = &self.norm else {
            a.par_chunks_mut(GRAIN).zip(x.par_chunks(GRAIN)).for_each(|(a, x)| {
                for (a, &x) in a.iter_mut().zip(x) {
                    *a += x; // = x + a: IEEE addition commutes
                }
            });
            return Ok(());
        };
        let n = norm.w.len();
        let mut out = vec![0f32; a.len()];
        // Whole rows per work item, about GRAIN elements each.
        let rows = (GRAIN / n).max(1) * n;
        out.par_chunks_mut(rows).zip(a.par_chunks_mut(rows).zip(x.par_chunks(rows))).for_each(|(o, (a, x))| {
            for ((o, a), x) in o.chunks_exact_mut(n).zip(a.chunks_exact_mut(n)).zip(x.chunks_exact(n)) {
                for (a, &x) in a.iter_mut().zip(x) {
                    *a += x; // = x + a: IEEE addition commutes
                }
                // candle-nn's rms_row: a sequential f32 sum of squares.
                let sum2 = a.iter().map(|&v| v * v).sum::<f32>();
                let m = (sum2 / n as f32 + norm.eps).sqrt();
                for ((o, &s), &w) in o.iter_mut().zip(a.iter()).zip(&norm.w) {
                    *o = s / m * w;
                }
            }
        });
        *norm.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = out;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The fused SwiGLU equals candle's silu-then-mul bit for bit, over a
    /// range that reaches exp's underflow and overflow, with a last work
    /// item shorter than the grain.
    #[test]
    fn swiglu_equals_silu_times_up() {
        let dev = Device::Cpu;
        let g = (Tensor::randn(0f32, 4.0, (37, 1000), &dev).unwrap() * 30.0).unwrap();
        let u = Tensor::randn(0f32, 1.0, (37, 1000), &dev).unwrap();
        let ops = (g.silu().unwrap() * &u).unwrap();
        let fused = g.copy().unwrap();
        assert!(swiglu_in_place(&fused, &u).unwrap());
        assert_eq!(bits(&fused), bits(&ops));
        // strided or mismatched inputs are left alone (the op path runs)
        let before = bits(&g);
        assert!(!swiglu_in_place(&g.t().unwrap(), &u.t().unwrap()).unwrap());
        assert!(!swiglu_in_place(&g, &u.narrow(0, 0, 36).unwrap()).unwrap());
        assert_eq!(bits(&g), before);
    }

    /// The residual add in place equals `x + a`, and the fused add + RMSNorm
    /// equals `x + a` then candle-nn's rms_norm, bit for bit, for row
    /// lengths below, at and above the grain.
    #[test]
    fn add_and_rms_norm_equal_the_op_path() {
        let dev = Device::Cpu;
        for (t, n) in [(1usize, 1usize), (3, 7), (129, 576), (5, GRAIN + 3)] {
            let a = Tensor::randn(0f32, 2.0, (t, n), &dev).unwrap();
            let x = Tensor::randn(0f32, 5.0, (t, n), &dev).unwrap();
            let w = Tensor::randn(1f32, 0.5, n, &dev).unwrap();
            let sum = (&x + &a).unwrap();
            let normed = candle_nn::ops::rms_norm(&sum, &w, 1e-5).unwrap();
            let a1 = a.copy().unwrap();
            assert!(add_in_place(&a1, &x).unwrap());
            assert_eq!(bits(&a1), bits(&sum), "add, t {t} n {n}");
            let a2 = a.copy().unwrap();
            let fused = add_rms_norm(&a2, &x, &w, 1e-5).unwrap().unwrap();
            assert_eq!(bits(&a2), bits(&sum), "sum, t {t} n {n}");
            assert_eq!(bits(&fused), bits(&normed), "norm, t {t} n {n}");
        }
        // a tracked tensor takes the op path
        let v = candle_core::Var::randn(0f32, 1.0, (2, 3), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3), &dev).unwrap();
        let w = Tensor::ones(3, DType::F32, &dev).unwrap();
        assert!(add_rms_norm(v.as_tensor(), &x, &w, 1e-5).unwrap().is_none());
        assert!(!add_in_place(v.as_tensor(), &x).unwrap());
    }
}
