//! Stored bytes → f32, straight from a memory-mapped file.
//!
//! Quantized GGUF blocks go through candle's own `GgmlType::to_float` (the
//! kernel `QTensor::dequantize` runs), so results are bit-identical to
//! dequantizing a whole `QTensor`; F16/BF16 → f32 is exact. Blocks are read
//! in place when the mapped bytes are aligned for the block type (they are
//! in every GGUF: tensor data is 32-byte aligned), else through a small
//! aligned copy per chunk — never a copy of the whole tensor.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType};
use candle_core::quantized::GgmlDType;
use half::{bf16, f16};
use std::mem::MaybeUninit;

/// Dequantizes `raw` (whole blocks of `dtype`, little-endian) into `out`.
/// `false` if `dtype` is not one we read, or if the sizes disagree
/// (`raw` must hold exactly `out.len()` values).
pub fn to_f32(dtype: GgmlDType, raw: &[u8], out: &mut [f32]) -> bool {
    use GgmlDType as G;
    match dtype {
        G::F32 => blocks::<f32>(raw, out),
        G::F16 => blocks::<f16>(raw, out),
        G::BF16 => blocks::<bf16>(raw, out),
        G::Q4_0 => blocks::<BlockQ4_0>(raw, out),
        // SAFETY (both): the kernels only write initialized f32 values.
        G::Q4_1 => q4_1(raw, unsafe { as_uninit(out) }).is_some(),
        G::Q8_0 => q8_0(raw, unsafe { as_uninit(out) }).is_some(),
        G::Q4K => blocks::<BlockQ4K>(raw, out),
        G::Q5K => blocks::<BlockQ5K>(raw, out),
        G::Q6K => blocks::<BlockQ6K>(raw, out),
        _ => false,
    }
}

/// A kernel that dequantizes whole blocks of `raw` into `out`, writing
/// every value of uninitialized memory once, and checks them for NaN/Inf as
/// it writes: `Some(every value finite)`, `None` when the sizes disagree
/// (`raw` must hold exactly `out.len()` values).
pub type Kernel = fn(&[u8], &mut [MaybeUninit<f32>]) -> Option<bool>;

/// The [`Kernel`] for `dtype`: Q4_1 and Q8_0 (the types of the streamed
/// SmolLM2 layers and of its embedding / output layer); `None` for the
/// other types, which go through [`to_f32`] into zeroed memory.
pub fn kernel(dtype: GgmlDType) -> Option<Kernel> {
    match dtype {
        GgmlDType::Q4_1 => Some(q4_1),
        GgmlDType::Q8_0 => Some(q8_0),
        _ => None,
    }
}

/// Values dequantized into a new vector.
pub struct Dequantized {
    pub values: Vec<f32>,
    /// `Some(every value finite)` when the kernel checked as it wrote;
    /// `None` when nothing was checked (the caller checks).
    pub finite: Option<bool>,
}

/// [`to_f32`] into a new vector of `n` values: by the type's [`Kernel`]
/// when it has one (no zeroing pass, finiteness checked on the way), else
/// into zeroed memory, unchecked. `None` as for `to_f32`.
pub fn to_f32_vec(dtype: GgmlDType, raw: &[u8], n: usize) -> Option<Dequantized> {
    let Some(kernel) = kernel(dtype) else {
        let mut values = vec![0f32; n];
        return to_f32(dtype, raw, &mut values).then_some(Dequantized { values, finite: None });
    };
    let mut values: Vec<f32> = Vec::with_capacity(n);
    let finite = kernel(raw, &mut values.spare_capacity_mut()[..n])?;
    // SAFETY: the kernel returned Some, so it wrote all n values.
    unsafe { values.set_len(n) };
    Some(Dequantized { values, finite: Some(finite) })
}

/// Whether none of `v` is NaN or ±∞ (exponent bits not all set): a
/// branch-free reduction the kernels run on each block they wrote.
#[inline(always)]
fn block_finite(v: &[MaybeUninit<f32>; 32]) -> bool {
    // SAFETY: called on blocks the kernel has just written in full.
    let v: &[f32; 32] = unsafe { &*(v as *const [MaybeUninit<f32>; 32] as *const [f32; 32]) };
    v.iter().fold(0u32, |acc, x| acc | u32::from(x.to_bits() & 0x7f80_0000 == 0x7f80_0000)) == 0
}

/// `out` as a slice of possibly uninitialized values.
///
/// # Safety
/// The caller must write only initialized values through the result.
unsafe fn as_uninit(out: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller writes only
    // initialized values, so `out` stays initialized.
    unsafe { &mut *(out as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// Q4_1: blocks of 20 bytes (f16 scale d, f16 minimum m, 16 bytes of
/// nibbles) → 32 values `q·d + m`, low nibbles first. The same f32
/// expression as candle's `BlockQ4_1::to_float` (a rounded product, then a
/// rounded sum: no FMA), so the same bits; over fixed-size arrays, read in
/// place at any alignment, in a loop the compiler vectorizes (AVX2 when the
/// CPU has it): the dequantization of a streamed layer is on every pass.
/// A [`Kernel`].
fn q4_1(raw: &[u8], out: &mut [MaybeUninit<f32>]) -> Option<bool> {
    let (blocks, rest) = raw.as_chunks::<20>();
    let (outs, out_rest) = out.as_chunks_mut::<32>();
    if !rest.is_empty() || !out_rest.is_empty() || blocks.len() != outs.len() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was detected just above.
        return Some(unsafe { q4_1_avx2(blocks, outs) });
    }
    Some(q4_1_blocks(blocks, outs))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn q4_1_avx2(blocks: &[[u8; 20]], outs: &mut [[MaybeUninit<f32>; 32]]) -> bool {
    q4_1_blocks(blocks, outs)
}

/// Dequantizes every block; whether every value is finite.
#[inline(always)]
fn q4_1_blocks(blocks: &[[u8; 20]], outs: &mut [[MaybeUninit<f32>; 32]]) -> bool {
    let mut finite = true;
    for (b, o) in blocks.iter().zip(outs) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
        for j in 0..16 {
            let q = b[4 + j];
            o[j].write(f32::from(q & 0x0F) * d + m);
            o[j + 16].write(f32::from(q >> 4) * d + m);
        }
        finite &= block_finite(o);
    }
    finite
}

/// Q8_0: blocks of 34 bytes (f16 scale d, 32 signed bytes) → 32 values
/// `q·d`, the expression of candle's `BlockQ8_0::to_float` (one rounded
/// product), so the same bits; read in place at any alignment and
/// vectorized like [`q4_1`]. SmolLM2's GGUF stores its embedding, which is
/// also its output layer, as Q8_0: 28 M values read on every pass that
/// asks for logits. A [`Kernel`].
fn q8_0(raw: &[u8], out: &mut [MaybeUninit<f32>]) -> Option<bool> {
    let (blocks, rest) = raw.as_chunks::<34>();
    let (outs, out_rest) = out.as_chunks_mut::<32>();
    if !rest.is_empty() || !out_rest.is_empty() || blocks.len() != outs.len() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was detected just above.
        return Some(unsafe { q8_0_avx2(blocks, outs) });
    }
    Some(q8_0_blocks(blocks, outs))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn q8_0_avx2(blocks: &[[u8; 34]], outs: &mut [[MaybeUninit<f32>; 32]]) -> bool {
    q8_0_blocks(blocks, outs)
}

/// Dequantizes every block; whether every value is finite.
#[inline(always)]
fn q8_0_blocks(blocks: &[[u8; 34]], outs: &mut [[MaybeUninit<f32>; 32]]) -> bool {
    let mut finite = true;
    for (b, o) in blocks.iter().zip(outs) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        for j in 0..32 {
            o[j].write(f32::from(b[2 + j] as i8) * d);
        }
        finite &= block_finite(o);
    }
    finite
}

/// Marker for the block types above: `repr(C)` structs of f16, u8 and i8
/// fields (or a bare float), for which every bit pattern is a valid value.
///
/// # Safety
/// Implement only for plain-old-data types with no invalid bit patterns.
unsafe trait Pod: GgmlType {}
// SAFETY: floats and repr(C) blocks of f16/u8/i8 arrays; any bits are valid.
unsafe impl Pod for f32 {}
unsafe impl Pod for f16 {}
unsafe impl Pod for bf16 {}
unsafe impl Pod for BlockQ4_0 {}
unsafe impl Pod for BlockQ4_1 {}
unsafe impl Pod for BlockQ8_0 {}
unsafe impl Pod for BlockQ4K {}
unsafe impl Pod for BlockQ5K {}
unsafe impl Pod for BlockQ6K {}

/// Values per aligned copy when the mapped bytes are misaligned.
const CHUNK_BLOCKS: usize = 4096;

fn blocks<T: Pod>(raw: &[u8], out: &mut [f32]) -> bool {
    let size = std::mem::size_of::<T>();
    let per = T::BLCK_SIZE;
    if !out.len().is_multiple_of(per) || raw.len() != out.len() / per * size {
        return false;
    }
    let n_blocks = raw.len() / size;
    if (raw.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        // SAFETY: `raw` holds exactly n_blocks·size_of::<T>() bytes, is
        // aligned for T, lives as long as `xs`, and every bit pattern is a
        // valid T (`Pod`).
        let xs = unsafe { std::slice::from_raw_parts(raw.as_ptr() as *const T, n_blocks) };
        T::to_float(xs, out);
        return true;
    }
    // Misaligned: copy CHUNK_BLOCKS blocks at a time into an aligned buffer.
    let mut buf: Vec<u64> = vec![0; (CHUNK_BLOCKS * size).div_ceil(8)];
    for (src, dst) in raw.chunks(CHUNK_BLOCKS * size).zip(out.chunks_mut(CHUNK_BLOCKS * per)) {
        let nb = src.len() / size;
        // SAFETY: `buf` has at least CHUNK_BLOCKS·size bytes, u64 alignment
        // covers every block type (≤ 8), and u8 has no alignment needs.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) };
        bytes[..src.len()].copy_from_slice(src);
        // SAFETY: as above; `nb` blocks were just copied in.
        let xs = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const T, nb) };
        T::to_float(xs, dst);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{ggml_file::qtensor_from_ggml, QTensor};
    use candle_core::{Device, Tensor};

    /// Aligned and misaligned reads equal candle's `QTensor::dequantize`
    /// bit for bit, for every type we read.
    #[test]
    fn equals_candle_dequantize_for_every_type() {
        let dev = Device::Cpu;
        let n = 3 * 256 * 5; // whole blocks of every type, several chunks of small ones
        let x = Tensor::randn(0f32, 1.0, (3, n / 3), &dev).unwrap();
        for dt in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::BF16,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&x, dt).unwrap();
            let bytes = q.data().unwrap().to_vec();
            let want = qtensor_from_ggml(dt, &bytes, vec![3, n / 3], &dev).unwrap().dequantize(&dev).unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // aligned (Vec<u64> storage) and shifted by one byte
            let mut store = vec![0u64; bytes.len().div_ceil(8) + 1];
            let all = unsafe { std::slice::from_raw_parts_mut(store.as_mut_ptr() as *mut u8, store.len() * 8) };
            for shift in [0usize, 1] {
                all[shift..shift + bytes.len()].copy_from_slice(&bytes);
                let mut got = vec![0f32; n];
                assert!(to_f32(dt, &all[shift..shift + bytes.len()], &mut got), "{dt:?}");
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{dt:?} shift {shift}");
                let vec = to_f32_vec(dt, &all[shift..shift + bytes.len()], n).unwrap();
                assert!(vec.values.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{dt:?} shift {shift}: to_f32_vec");
                assert_eq!(vec.finite, kernel(dt).map(|_| true), "{dt:?}");
            }
            let mut short = vec![0f32; n - per_block(dt)];
            assert!(!to_f32(dt, &bytes, &mut short), "{dt:?}: size mismatch accepted");
            assert!(to_f32_vec(dt, &bytes, n - per_block(dt)).is_none(), "{dt:?}: size mismatch accepted");
        }
    }

    /// The kernels flag a NaN or ±∞ among the values they wrote, in any
    /// block, and only then.
    #[test]
    fn kernels_flag_non_finite_values() {
        let f16b = |x: f32| f16::from_f32(x).to_le_bytes();
        // Five Q4_1 blocks (d = 0.5, m = −1, nibbles 1..); then block 3's m is NaN or its d +∞.
        let mut q41: Vec<u8> = (0..5).flat_map(|_| [f16b(0.5), f16b(-1.0)].concat().into_iter().chain(1..=16u8)).collect();
        let mut out = vec![MaybeUninit::uninit(); 5 * 32];
        assert_eq!(q4_1(&q41, &mut out), Some(true));
        q41[3 * 20 + 2..3 * 20 + 4].copy_from_slice(&f16b(f32::NAN));
        assert_eq!(q4_1(&q41, &mut out), Some(false));
        q41[3 * 20 + 2..3 * 20 + 4].copy_from_slice(&f16b(-1.0));
        q41[3 * 20..3 * 20 + 2].copy_from_slice(&f16b(f32::INFINITY));
        assert_eq!(q4_1(&q41, &mut out), Some(false));
        // Q8_0: d = +∞ in the last block.
        let mut q80: Vec<u8> = (0..5).flat_map(|_| f16b(0.25).into_iter().chain((0..32).map(|j| j as u8)).collect::<Vec<_>>()).collect();
        assert_eq!(q8_0(&q80, &mut out), Some(true));
        q80[4 * 34..4 * 34 + 2].copy_from_slice(&f16b(f32::INFINITY));
        assert_eq!(q8_0(&q80, &mut out), Some(false));
        assert_eq!(q8_0(&q80[..4 * 34], &mut out), None, "size mismatch");
    }

    fn per_block(dt: GgmlDType) -> usize {
        dt.block_size()
    }
}
