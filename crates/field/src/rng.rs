//! The one seeded random generator of attnscope: SplitMix64 (Steele, Lea and
//! Flood, 2014), with Box–Muller normals.
//!
//! Small, fast, reproducible on every machine and platform (integer
//! arithmetic only up to the final conversion to f64). Used by the random
//! basis ([`crate::Basis::Random`]), by training's weight initialisation and
//! batch sampling, and by its fault injection. The stream for a given seed is
//! part of the contract: changing it changes every seeded result.

/// SplitMix64 state. `Rng::new(seed)` always yields the same stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded by `seed` (the state starts at seed ⊕ the golden-ratio constant).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1): the top 53 bits, centred in their cell.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform integer in 0..n (modulo reduction; the bias is ≤ n / 2⁶⁴).
    /// Panics if n = 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal by Box–Muller (cosine branch; two uniforms per draw):
    /// √(−2 ln u) · cos(2π v).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_fixed() {
        // SplitMix64 with state 0 ⊕ golden → first output of the reference generator seeded 0x9E37..
        let mut a = Rng::new(0);
        let mut b = Rng(0x9E37_79B9_7F4A_7C15);
        assert_eq!(a.next_u64(), b.next_u64());
        // reference value: SplitMix64 seeded with 0 returns 0xE220A8397B1DCDAF first
        let mut z = Rng(0);
        assert_eq!(z.next_u64(), 0xE220_A839_7B1D_CDAF);
        let (mut c, mut d) = (Rng::new(5), Rng::new(5));
        assert!((0..100).all(|_| c.next_u64() == d.next_u64()));
        assert_ne!(Rng::new(5).next_u64(), Rng::new(6).next_u64());
    }

    #[test]
    fn uniform_and_below_stay_in_range() {
        let mut r = Rng::new(3);
        assert!((0..10000).all(|_| {
            let u = r.uniform();
            u > 0.0 && u < 1.0
        }));
        assert!((0..10000).all(|_| r.below(7) < 7));
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(1);
        let v: Vec<f64> = (0..20000).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }
}
