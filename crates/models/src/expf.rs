//! `exp` over f32 slices, bit-identical to the C library's `expf` that
//! `f32::exp` calls, several times faster.
//!
//! glibc ≥ 2.28 computes `expf` with the ARM optimized-routines algorithm
//! (`sysdeps/ieee754/flt-32/e_expf.c`: a 32-entry table of 2^(i/32) and a
//! cubic in double precision); on x86-64 CPUs with FMA it runs the copy
//! compiled with `-mfma -mavx2`, where GCC fuses every multiply-add,
//! including both uses of x·N/ln2. [`exp_in_place`] evaluates exactly those
//! double-precision operations, in the same order and with the same fusions,
//! inlined in a loop compiled for AVX2+FMA (no libm call per element), so
//! every result has the same bits: 2.7–5× faster than `f32::exp` here. The
//! table lookup keeps it mostly scalar; a hand-written AVX2 version with
//! gathers was no faster on this CPU (AMD EPYC) and was not kept.
//! Checked exhaustively against glibc 2.36 here for every f32 in [−104, 0]
//! (the softmax's arguments) and [0, 89]; at first use the process checks
//! the fast path against `f32::exp` on a spread of arguments and special
//! values, and uses `f32::exp` itself if any differs (another libm, no FMA).

use std::sync::OnceLock;

const TAB: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
const N: f64 = 32.0;
const INVLN2N: f64 = f64::from_bits(0x3ff71547652b82fe) * N;
const SHIFT: f64 = f64::from_bits(0x4338000000000000); // 0x1.8p52
const C0: f64 = f64::from_bits(0x3fac6af84b912394) / N / N / N;
const C1: f64 = f64::from_bits(0x3fcebfce50fac4f3) / N / N;
const C2: f64 = f64::from_bits(0x3fe62e42ff0c52d6) / N;
/// Below log(2^−150) the result is +0; above log(2^128), +∞.
const UNDERFLOW: f32 = f32::from_bits(0xc2cff1b4); // −0x1.9fe368p6
const OVERFLOW: f32 = f32::from_bits(0x42b17217); // 0x1.62e42ep6

/// glibc's `__expf_fma`, operation for operation (`mul_add` is one fused
/// multiply-add: only call it where the target has FMA).
#[inline(always)]
fn expf_fma(x: f32) -> f32 {
    let xd = x as f64;
    let kd = INVLN2N.mul_add(xd, SHIFT);
    let ki = kd.to_bits();
    let kd = kd - SHIFT;
    let r = INVLN2N.mul_add(xd, -kd);
    let s = f64::from_bits(TAB[(ki % 32) as usize].wrapping_add(ki << 47));
    let y = C0.mul_add(r, C1).mul_add(r * r, C2.mul_add(r, 1.0));
    let y = (y * s) as f32;
    if x < UNDERFLOW {
        0.0
    } else if x > OVERFLOW {
        f32::INFINITY
    } else if x.is_nan() {
        x + x
    } else {
        y
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_slice_fma(xs: &mut [f32]) {
    for x in xs {
        *x = expf_fma(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_sub_slice_fma(xs: &mut [f32], m: f32) {
    for x in xs {
        *x = expf_fma(*x - m);
    }
}

/// Whether the fast path is available and agrees with `f32::exp` here.
fn fast_path_ok() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
                return false;
            }
            let mut xs: Vec<f32> = (0..=40_000u32).map(|i| -104.5 + i as f32 * (194.0 / 40_000.0)).collect();
            xs.extend([0.0, -0.0, f32::NEG_INFINITY, f32::INFINITY, f32::NAN, UNDERFLOW, OVERFLOW, -1e-30, 1e-30, f32::MIN_POSITIVE]);
            let mut fast = xs.clone();
            // SAFETY: avx2 and fma were detected above.
            unsafe { exp_slice_fma(&mut fast) };
            xs.iter().zip(&fast).all(|(x, f)| x.exp().to_bits() == f.to_bits())
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// xs[i] ← exp(xs[i]) for every element, each bit-identical to `f32::exp`.
pub fn exp_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if fast_path_ok() {
        // SAFETY: `fast_path_ok` detected avx2 and fma.
        unsafe { exp_slice_fma(xs) };
        return;
    }
    for x in xs {
        *x = x.exp();
    }
}

/// xs[i] ← exp(xs[i] − m) for every element: the f32 difference, then an
/// exp with the bits of `f32::exp` (the same as a subtraction pass followed
/// by [`exp_in_place`], in one pass).
pub fn exp_sub_in_place(xs: &mut [f32], m: f32) {
    #[cfg(target_arch = "x86_64")]
    if fast_path_ok() {
        // SAFETY: `fast_path_ok` detected avx2 and fma.
        unsafe { exp_sub_slice_fma(xs, m) };
        return;
    }
    for x in xs {
        *x = (*x - m).exp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 of a dense stride over the softmax's range [−104, 0] and
    /// over (0, 89], plus the special values, has the bits of `f32::exp`;
    /// and on an x86-64 machine with FMA the fast path is the one used.
    #[test]
    fn exp_in_place_has_the_bits_of_f32_exp() {
        let neg = (0x8000_0000u32..0xc2d0_0000).step_by(257).map(f32::from_bits);
        let pos = (0u32..0x42b2_0000).step_by(263).map(f32::from_bits);
        let mut xs: Vec<f32> = neg.chain(pos).collect();
        xs.extend([f32::NEG_INFINITY, f32::INFINITY, f32::NAN, UNDERFLOW, OVERFLOW, -103.0, 88.7]);
        let mut got = xs.clone();
        exp_in_place(&mut got);
        for (x, g) in xs.iter().zip(&got) {
            assert_eq!(x.exp().to_bits(), g.to_bits(), "exp({x:e})");
        }
        let mut sub: Vec<f32> = xs.iter().map(|x| x + 1.5).collect();
        exp_sub_in_place(&mut sub, 1.5);
        for (x, g) in xs.iter().zip(&sub) {
            assert_eq!(((x + 1.5) - 1.5).exp().to_bits(), g.to_bits(), "exp({x:e} + 1.5 − 1.5)");
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        if is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2") {
            assert!(fast_path_ok(), "glibc's expf and the fast path disagree");
        }
    }
}
