//! The synthetic head shared by `examples/synthetic.rs` and `benches/field.rs`
//! (included with `#[path]`): q, k = Gaussian · a decaying spectrum, keys plus
//! a common offset (an "attention sink" direction), f32 like a model, seeded.

use rand::{Rng, SeedableRng};

/// Q and K (each n × d, row-major, f32) of the synthetic head.
pub fn synthetic_head(n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut gauss = move || {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let decay: Vec<f64> = (0..d).map(|t| 3.0 * (-(t as f64) / 8.0).exp() + 0.3).collect();
    let offset: Vec<f64> = (0..d).map(|_| 2.0 * gauss()).collect();
    let q = (0..n * d).map(|x| (gauss() * decay[x % d]) as f32).collect();
    let k = (0..n * d).map(|x| (gauss() * decay[x % d] + offset[x % d]) as f32).collect();
    (q, k)
}

/// W_Q and W_K (each d_model × d, row-major, f32) of the synthetic head: Gaussian / √d_model.
#[allow(dead_code)]
pub fn synthetic_weights(d_model: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2027);
    let s = 1.0 / (d_model as f64).sqrt();
    let mut w = || -> Vec<f32> {
        (0..d_model * d)
            .map(|_| {
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * s) as f32
            })
            .collect()
    };
    (w(), w())
}
