//! Helpers shared by the GEMM and forward-pass benchmark examples (each
//! includes this file with `#[path]`; it is not an example itself).

use std::time::Instant;

use candle_core::{Device, Tensor};

/// A tensor of the given dims with standard normal f32 values, on the CPU.
pub fn randn(dims: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap()
}

/// The best wall time of `f` over `reps` calls, in seconds (no warm-up call:
/// the caller makes one where it wants it).
pub fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
