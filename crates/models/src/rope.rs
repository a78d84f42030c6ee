//! Rotary position embedding tables, computed the way HF transformers does
//! (inverse frequencies and angles in f32), so that Q and K match it to f32
//! rounding.

use candle_core::{Device, Tensor};

use crate::arch::RopeScaling;
use crate::Result;

/// Inverse frequencies for a rotary dim `dim` (dim/2 values), with scaling.
pub fn inv_freq(theta: f64, dim: usize, scaling: RopeScaling) -> Vec<f32> {
    let base = theta as f32;
    let mut inv: Vec<f32> = (0..dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32)).collect();
    match scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => {
            // HF divides positions by the factor; dividing frequencies is the
            // same angle up to one f32 rounding.
            for f in &mut inv {
                *f /= factor as f32;
            }
        }
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            let (factor, low, high, old) =
                (factor as f32, low_freq_factor as f32, high_freq_factor as f32, original_max_position_embeddings as f32);
            let low_freq_wavelen = old / low;
            let high_freq_wavelen = old / high;
            for f in &mut inv {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                let scaled = if wavelen > low_freq_wavelen { *f / factor } else { *f };
                let smooth = (old / wavelen - low) / (high - low);
                let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
                // As transformers writes it: ~(wavelen < high) & ~(wavelen > low).
                #[allow(clippy::neg_cmp_op_on_partial_ord)]
                let is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
                *f = if is_medium { smoothed } else { scaled };
            }
        }
    }
    inv
}

/// cos and sin tables, each (t, rotary_dim) f32, halves duplicated as in
/// HF's `cat((freqs, freqs), -1)`.
pub fn tables(inv: &[f32], t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = inv.len();
    let mut cos = Vec::with_capacity(t * 2 * half);
    let mut sin = Vec::with_capacity(t * 2 * half);
    for pos in 0..t {
        for _half in 0..2 {
            for &f in inv {
                let angle = pos as f32 * f; // f32 product, as torch does
                cos.push((angle as f64).cos() as f32);
                sin.push((angle as f64).sin() as f32);
            }
        }
    }
    Ok((Tensor::from_vec(cos, (t, 2 * half), device)?, Tensor::from_vec(sin, (t, 2 * half), device)?))
}

/// Applies rotate-half rotary to the first `cos.dim(1)` features of `x`
/// (heads, t, d); the remaining features pass through (partial rotary).
/// Inference (no gradient tracking) runs one fused pass over the data,
/// bit-identical to the op-by-op graph that training differentiates.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        if let Some(out) = apply_fused(x, cos, sin)? {
            return Ok(out);
        }
    }
    apply_ops(x, cos, sin)
}

/// One pass: out_i = x_i·cos_i + rot_i·sin_i with rot = [−x₂, x₁] on the
/// rotary features (two rounded products and a rounded sum, as the op graph
/// does), the rest copied. `None` unless every tensor is contiguous f32 on
/// the CPU.
fn apply_fused(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Option<Tensor>> {
    use crate::host::with_f32_slice;
    let (heads, t, d) = x.dims3()?;
    let r = cos.dim(1)?;
    let half = r / 2;
    let out = with_f32_slice(x, |xs| {
        with_f32_slice(cos, |cs| {
            with_f32_slice(sin, |ss| {
                let mut out = vec![0f32; heads * t * d];
                for (orow, (xrow, p)) in out.chunks_exact_mut(d).zip(xs.chunks_exact(d).zip((0..t).cycle())) {
                    let (c, s) = (&cs[p * r..(p + 1) * r], &ss[p * r..(p + 1) * r]);
                    for i in 0..half {
                        orow[i] = xrow[i] * c[i] + (-xrow[i + half]) * s[i];
                        orow[i + half] = xrow[i + half] * c[i + half] + xrow[i] * s[i + half];
                    }
                    orow[r..].copy_from_slice(&xrow[r..]);
                }
                out
            })
        })
    });
    match out.flatten().flatten() {
        Some(v) => Ok(Some(Tensor::from_vec(v, (heads, t, d), x.device())?)),
        None => Ok(None),
    }
}

/// The op graph (differentiable): HF's `x·cos + rotate_half(x)·sin`.
fn apply_ops(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (_, _, d) = x.dims3()?;
    let r = cos.dim(1)?;
    let (rot, pass) = if r == d { (x.clone(), None) } else { (x.narrow(2, 0, r)?, Some(x.narrow(2, r, d - r)?)) };
    let x1 = rot.narrow(2, 0, r / 2)?;
    let x2 = rot.narrow(2, r / 2, r / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], 2)?;
    let out = (rot.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?;
    Ok(match pass {
        Some(p) => Tensor::cat(&[&out, &p], 2)?,
        None => out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused pass equals the op graph bit for bit, full and partial rotary.
    #[test]
    fn fused_rotary_equals_the_op_graph() {
        let dev = Device::Cpu;
        for (d, rd, heads, t) in [(8usize, 8usize, 3usize, 5usize), (16, 4, 2, 7), (64, 64, 9, 33)] {
            let inv = inv_freq(10000.0, rd, RopeScaling::None);
            let (cos, sin) = tables(&inv, t, &dev).unwrap();
            let x = Tensor::randn(0f32, 3.0, (heads, t, d), &dev).unwrap();
            let fused = apply_fused(&x, &cos, &sin).unwrap().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let ops = apply_ops(&x, &cos, &sin).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(fused.iter().zip(&ops).all(|(a, b)| a.to_bits() == b.to_bits()), "d {d} rotary {rd}");
        }
    }

    #[test]
    fn rotation_preserves_norm_and_position_zero_is_identity() {
        let dev = Device::Cpu;
        let inv = inv_freq(10000.0, 8, RopeScaling::None);
        let (cos, sin) = tables(&inv, 3, &dev).unwrap();
        let x = Tensor::arange(0f32, 24.0, &dev).unwrap().reshape((1, 3, 8)).unwrap();
        let y = apply(&x, &cos, &sin).unwrap();
        let xv = x.to_vec3::<f32>().unwrap();
        let yv = y.to_vec3::<f32>().unwrap();
        assert_eq!(xv[0][0], yv[0][0]);
        for p in 0..3 {
            let nx: f32 = xv[0][p].iter().map(|v| v * v).sum();
            let ny: f32 = yv[0][p].iter().map(|v| v * v).sum();
            assert!((nx - ny).abs() < 1e-3 * nx.max(1.0));
        }
    }
}
