//! Host (CPU) helpers for whole-tensor passes at load time, on the f32 data
//! in place: a finiteness check without a copy, and a cache-blocked,
//! parallel 2-D transpose (candle's strided copy walks the source one
//! element at a time: 37 % of SmolLM2's load time before this).

use candle_core::{DType, Device, Storage, Tensor};
use rayon::prelude::*;

use crate::Result;

/// Runs `f` on the f32 data of a contiguous f32 CPU tensor; `None` for any
/// other tensor (other dtype or device, or a strided view).
pub fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(cpu) => cpu.as_slice::<f32>().ok().map(|s| f(&s[a..b])),
        _ => None,
    }
}

/// Whether every element of `t` is finite (no NaN, no ±∞).
pub fn all_finite(t: &Tensor) -> Result<bool> {
    // Exponent bits all set = NaN or ±∞; a branch-free count vectorizes.
    let bad = |c: &[f32]| c.iter().map(|v| u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000)).sum::<u32>();
    if let Some(ok) = with_f32_slice(t, |s| s.par_chunks(1 << 16).all(|c| bad(c) == 0)) {
        return Ok(ok);
    }
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().all(|v| v.is_finite()))
}

/// `tᵀ` as a new contiguous tensor, for a 2-D (rows, cols) tensor. Exactly
/// the values of `t.t().contiguous()` (a permutation, no arithmetic); a
/// tensor that tracks gradients keeps candle's op so autograd sees it.
pub fn transpose_2d(t: &Tensor) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    if !t.track_op() {
        if let Some(v) = with_f32_slice(t, |s| transpose_f32(s, rows, cols)) {
            return Ok(Tensor::from_vec(v, (cols, rows), &Device::Cpu)?);
        }
    }
    Ok(t.t()?.contiguous()?)
}

/// Row-major (rows, cols) → row-major (cols, rows), in 32 × 32 tiles; each
/// band of 32 output rows (source columns) is one parallel task; writes are
/// contiguous, reads stride through at most 32 source rows at a time.
fn transpose_f32(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const B: usize = 32;
    let mut dst = vec![0f32; rows * cols];
    if rows == 0 || cols == 0 {
        return dst;
    }
    dst.par_chunks_mut(B * rows).enumerate().for_each(|(band, out)| {
        let c0 = band * B;
        let cn = out.len() / rows;
        for r0 in (0..rows).step_by(B) {
            let rn = B.min(rows - r0);
            for c in 0..cn {
                let o = &mut out[c * rows + r0..c * rows + r0 + rn];
                let column = src[r0 * cols + c0 + c..].iter().step_by(cols);
                for (slot, &v) in o.iter_mut().zip(column) {
                    *slot = v;
                }
            }
        }
    });
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_equals_candle_and_finite_check_sees_nan() {
        for (r, c) in [(1, 1), (3, 70), (70, 3), (33, 65), (64, 64), (100, 1)] {
            let v: Vec<f32> = (0..r * c).map(|i| i as f32 * 0.5 - 7.0).collect();
            let t = Tensor::from_vec(v, (r, c), &Device::Cpu).unwrap();
            let want = t.t().unwrap().contiguous().unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(transpose_2d(&t).unwrap().to_vec2::<f32>().unwrap(), want, "{r}x{c}");
            assert!(all_finite(&t).unwrap());
        }
        // a strided view takes candle's path and still gives the same values
        let t = Tensor::arange(0f32, 60.0, &Device::Cpu).unwrap().reshape((6, 10)).unwrap();
        let view = t.narrow(1, 2, 5).unwrap();
        assert_eq!(
            transpose_2d(&view).unwrap().to_vec2::<f32>().unwrap(),
            view.t().unwrap().contiguous().unwrap().to_vec2::<f32>().unwrap()
        );
        let mut v = vec![1f32; 200_000];
        v[123_456] = f32::NAN;
        assert!(!all_finite(&Tensor::from_vec(v, 200_000, &Device::Cpu).unwrap()).unwrap());
        let inf = Tensor::from_vec(vec![1f32, f32::INFINITY], 2, &Device::Cpu).unwrap();
        assert!(!all_finite(&inf).unwrap());
    }
}
