//! Order statistics shared by the report summary, compress and the monitor.

/// The q-quantile (0 ≤ q ≤ 1) of `sorted` (non-decreasing), linearly
/// interpolated between the two nearest ranks; NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The finite values of `v`, sorted (non-finite values are dropped: a NaN
/// must not move an order statistic).
pub fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s
}

/// The median of the finite values of `v` (the middle one, or the midpoint
/// of the two middle ones); NaN when none is finite.
pub fn median(v: &[f64]) -> f64 {
    quantile(&sorted_finite(v), 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantiles() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 3.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 5.0], 1.0), 5.0);
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, f64::INFINITY, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan() && median(&[f64::NAN]).is_nan());
    }
}
