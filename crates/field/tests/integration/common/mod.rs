//! Seeded synthetic heads for the integration tests.
#![allow(dead_code)]

use field::{HeadField, HeadInput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the keys are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Keys {
    /// i.i.d. Gaussian.
    Random,
    /// K = Z·W with Z n×r, W r×d: rank r.
    RankDeficient(usize),
    /// Only 3 distinct keys, repeated.
    Duplicated,
    /// Gaussian plus one key 1000× larger.
    Dominant,
    /// Gaussian plus a large common offset (real models' keys look like this).
    Offset,
    /// Every key equal (E = 0).
    AllEqual,
}

/// One synthetic head, stored in f64 and in f32.
#[derive(Clone, Debug)]
pub struct Case {
    pub label: String,
    pub n: usize,
    pub d: usize,
    pub q: Vec<f64>,
    pub k: Vec<f64>,
    pub q32: Vec<f32>,
    pub k32: Vec<f32>,
    pub scale: f64,
    pub window: Option<usize>,
    pub alibi: Option<f64>,
    pub f32: bool,
    pub keys: Keys,
}

pub fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn gauss_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| gauss(rng)).collect()
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    pub fn new(seed: u64, n: usize, d: usize, keys: Keys, scale_mult: f64, window: Option<usize>, alibi: Option<f64>, f32: bool) -> Case {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let q = gauss_vec(&mut rng, n * d);
        let mut k = match keys {
            Keys::Random | Keys::Dominant | Keys::Offset => gauss_vec(&mut rng, n * d),
            Keys::RankDeficient(r) => {
                let z = gauss_vec(&mut rng, n * r);
                let w = gauss_vec(&mut rng, r * d);
                (0..n * d).map(|x| (0..r).map(|t| z[(x / d) * r + t] * w[t * d + x % d]).sum()).collect()
            }
            Keys::Duplicated => {
                let base = gauss_vec(&mut rng, 3 * d);
                (0..n * d).map(|x| base[((x / d) % 3) * d + x % d]).collect()
            }
            Keys::AllEqual => {
                let base = gauss_vec(&mut rng, d);
                (0..n * d).map(|x| base[x % d]).collect()
            }
        };
        if keys == Keys::Dominant {
            let j = rng.random_range(0..n);
            for t in 0..d {
                k[j * d + t] *= 1000.0;
            }
        }
        if keys == Keys::Offset {
            let off = gauss_vec(&mut rng, d);
            for x in 0..n * d {
                k[x] += 20.0 * off[x % d];
            }
        }
        let (mut q, mut k) = (q, k);
        if f32 {
            // the model's values are f32: round once, both stores hold the same numbers
            q.iter_mut().for_each(|x| *x = *x as f32 as f64);
            k.iter_mut().for_each(|x| *x = *x as f32 as f64);
        }
        let q32 = q.iter().map(|&x| x as f32).collect();
        let k32 = k.iter().map(|&x| x as f32).collect();
        let scale = scale_mult / (d as f64).sqrt();
        let label = format!("seed={seed} n={n} d={d} keys={keys:?} scale={scale:e} window={window:?} alibi={alibi:?} f32={f32}");
        Case { label, n, d, q, k, q32, k32, scale, window, alibi, f32, keys }
    }

    pub fn head(&self) -> HeadInput<'_> {
        let mut h = if self.f32 {
            HeadInput::new(&self.q32, &self.k32, self.n, self.d, self.scale)
        } else {
            HeadInput::new(&self.q, &self.k, self.n, self.d, self.scale)
        };
        if let Some(w) = self.window {
            h = h.with_window(w);
        }
        if let Some(m) = self.alibi {
            h = h.with_alibi(m);
        }
        h
    }

    /// max over the support of |logit|, for tolerances relative to logit size.
    pub fn max_logit(&self) -> f64 {
        let h = self.head();
        let mut big = 0.0f64;
        for i in 0..self.n {
            for j in h.support_range(i) {
                let mut x = self.scale * (0..self.d).map(|t| self.q[i * self.d + t] * self.k[j * self.d + t]).sum::<f64>();
                if let Some(m) = self.alibi {
                    x += m * (j as f64 - i as f64);
                }
                big = big.max(x.abs());
            }
        }
        big
    }
}

/// Largest deviations between two results, each relative to its natural scale.
#[derive(Clone, Debug, Default)]
pub struct Dev {
    pub spectrum: f64,
    pub effective_rank: f64,
    pub stable_rank: f64,
    pub key_energy: f64,
    pub participation_ratio: f64,
    pub top1pct_share: f64,
    pub leverage: f64,
    pub key_coherence: f64,
    pub spearman: f64,
    pub entropy: f64,
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

pub fn deviation(f: &HeadField, g: &HeadField) -> Dev {
    let s1 = f.spectrum.first().copied().unwrap_or(0.0).max(g.spectrum.first().copied().unwrap_or(0.0));
    let spectrum =
        f.spectrum.iter().zip(&g.spectrum).map(|(a, b)| if s1 > 0.0 { (a - b).abs() / s1 } else { (a - b).abs() }).fold(0.0, f64::max);
    let (cf, cg) = (f.key_energy.as_ref().unwrap(), g.key_energy.as_ref().unwrap());
    let cmax = cf.iter().chain(cg).fold(0.0f64, |a, &x| a.max(x));
    let key_energy = cf.iter().zip(cg).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / cmax.max(f64::MIN_POSITIVE);
    let (lf, lg) = (f.leverage.as_ref().unwrap(), g.leverage.as_ref().unwrap());
    let leverage = lf.iter().zip(lg).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let spearman = match (f.energy_leverage_spearman, g.energy_leverage_spearman) {
        (Some(a), Some(b)) => (a - b).abs(),
        (None, None) => 0.0,
        _ => f64::INFINITY,
    };
    Dev {
        spectrum,
        effective_rank: rel(f.effective_rank, g.effective_rank),
        stable_rank: rel(f.stable_rank, g.stable_rank),
        key_energy,
        participation_ratio: rel(f.participation_ratio, g.participation_ratio),
        top1pct_share: rel(f.top1pct_share, g.top1pct_share),
        leverage,
        key_coherence: rel(f.key_coherence, g.key_coherence),
        spearman,
        entropy: (f.attention_entropy - g.attention_entropy).abs(),
    }
}
