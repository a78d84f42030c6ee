//! Rotary position embedding tables, computed the way HF transformers does
//! (inverse frequencies and angles in f32), so that Q and K match it to f32
//! rounding.

use candle_core::{Device, Tensor};

use crate::arch::RopeScaling;
use crate::Result;

/// Inverse frequencies for a rotary dim `dim` (dim/2 values), with scaling.
pub fn inv_freq(theta: f64, dim: usize, scaling: RopeScaling) -> Vec<f32> {
    let base = theta as f32;
    let mut inv: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
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
    Ok((
        Tensor::from_vec(cos, (t, 2 * half), device)?,
        Tensor::from_vec(sin, (t, 2 * half), device)?,
    ))
}

/// Applies rotate-half rotary to the first `cos.dim(1)` features of `x`
/// (heads, t, d); the remaining features pass through (partial rotary).
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
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
