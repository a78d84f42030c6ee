//! The next-token loss, defined once for `compress` (a measurement) and
//! `train` (an objective): row i of the logits (t, V) scores target i, and
//! the loss is the mean over rows of −log softmax(row)[target], in nats.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

/// The precision the loss is evaluated in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// candle ops in the logits' dtype; gradients flow (training).
    Model,
    /// log-sum-exp per row in f64 on the host (measurements); a scalar F64
    /// tensor, not differentiable.
    F64,
}

/// Mean next-token cross-entropy (nats) of the first `targets.len()` rows
/// of `logits` (t, V), row i scoring `targets[i]`. Errors when there is no
/// target, more targets than rows, or a target outside the vocabulary.
pub fn next_token_loss(logits: &Tensor, targets: &[u32], precision: Precision) -> Result<Tensor> {
    let (t, v) = logits.dims2()?;
    let n = targets.len();
    if n == 0 || n > t {
        bail!("a next-token loss needs 1..={t} targets, got {n}");
    }
    if let Some(&bad) = targets.iter().find(|&&y| y as usize >= v) {
        bail!("target token {bad} is outside the vocabulary of {v}");
    }
    let rows = if n == t { logits.clone() } else { logits.narrow(0, 0, n)? };
    match precision {
        Precision::Model => {
            let target = Tensor::from_slice(targets, n, logits.device())?;
            Ok(candle_nn::loss::cross_entropy(&rows, &target)?)
        }
        Precision::F64 => {
            let x = rows.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let mut total = 0.0;
            for (i, &y) in targets.iter().enumerate() {
                let row = &x[i * v..(i + 1) * v];
                let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let lse = m + row.iter().map(|&z| (z as f64 - m).exp()).sum::<f64>().ln();
                total += lse - row[y as usize] as f64;
            }
            Ok(Tensor::new(total / n as f64, logits.device())?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both precisions give the same loss; uniform logits give ln V; a
    /// confident right answer gives ≈ 0; bad targets are errors.
    #[test]
    fn both_precisions_agree_with_the_definition() {
        let dev = candle_core::Device::Cpu;
        let v = 5usize;
        let vals: Vec<f32> = (0..3 * v).map(|i| ((i * 7 % 11) as f32 - 5.0) / 2.0).collect();
        let logits = Tensor::from_vec(vals.clone(), (3, v), &dev).unwrap();
        let targets = [1u32, 4];
        let f64_loss = next_token_loss(&logits, &targets, Precision::F64).unwrap().to_scalar::<f64>().unwrap();
        let model = next_token_loss(&logits, &targets, Precision::Model).unwrap().to_scalar::<f32>().unwrap() as f64;
        let by_hand: f64 = targets
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let row = &vals[i * v..(i + 1) * v];
                row.iter().map(|&z| (z as f64).exp()).sum::<f64>().ln() - row[y as usize] as f64
            })
            .sum::<f64>()
            / 2.0;
        assert!((f64_loss - by_hand).abs() < 1e-12, "{f64_loss} vs {by_hand}");
        assert!((model - by_hand).abs() < 1e-5, "{model} vs {by_hand}");
        let uniform = Tensor::zeros((2, v), DType::F32, &dev).unwrap();
        let u = next_token_loss(&uniform, &[0, 3], Precision::F64).unwrap().to_scalar::<f64>().unwrap();
        assert!((u - (v as f64).ln()).abs() < 1e-12);
        let sure = Tensor::from_vec(vec![0f32, 0.0, 50.0, 0.0, 0.0], (1, v), &dev).unwrap();
        assert!(next_token_loss(&sure, &[2], Precision::F64).unwrap().to_scalar::<f64>().unwrap() < 1e-20);
        assert!(next_token_loss(&logits, &[], Precision::F64).is_err());
        assert!(next_token_loss(&logits, &[0, 0, 0, 0], Precision::Model).is_err());
        assert!(next_token_loss(&logits, &[5], Precision::F64).is_err());
    }
}
