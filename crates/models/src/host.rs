//! Host (CPU) helpers for whole-tensor passes on the f32 data in place: a
//! finiteness check at load time without a copy of the tensor.

use candle_core::{DType, Storage, Tensor};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_check_sees_nan_and_inf_in_contiguous_and_strided_tensors() {
        use candle_core::Device;
        let t = Tensor::arange(0f32, 60.0, &Device::Cpu).unwrap().reshape((6, 10)).unwrap();
        assert!(all_finite(&t).unwrap());
        assert!(all_finite(&t.t().unwrap()).unwrap());
        let mut v = vec![1f32; 200_000];
        v[123_456] = f32::NAN;
        assert!(!all_finite(&Tensor::from_vec(v, 200_000, &Device::Cpu).unwrap()).unwrap());
        let inf = Tensor::from_vec(vec![1f32, f32::INFINITY], 2, &Device::Cpu).unwrap();
        assert!(!all_finite(&inf).unwrap());
    }
}
