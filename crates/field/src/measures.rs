//! Scalar summaries of per-key vectors (docs/definitions.md §4–5): participation ratio,
//! top-1 % share, argmax, and the Spearman correlation with average ranks.

/// (participation_ratio, top1pct_share, argmax_key) of the key energies c.
///
/// participation_ratio = (Σc)² / (n·Σc²), 1 when every c_j = 0 (an even spread);
/// top1pct_share = share of Σc held by the k = max(1, ⌊n/100⌋) largest c_j
/// (k/n when Σc = 0); argmax_key = first index of the largest c_j.
pub(crate) fn key_stats(c: &[f64]) -> (f64, f64, usize) {
    let n = c.len();
    let sum: f64 = c.iter().sum();
    let sum2: f64 = c.iter().map(|x| x * x).sum();
    let pr = if sum2 > 0.0 { sum * sum / (n as f64 * sum2) } else { 1.0 };
    let k = (n / 100).max(1);
    let share = if sum > 0.0 {
        let mut sorted = c.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        sorted[..k].iter().sum::<f64>() / sum
    } else {
        k as f64 / n as f64
    };
    let mut arg = 0;
    for (j, &x) in c.iter().enumerate() {
        if x > c[arg] {
            arg = j;
        }
    }
    (pr, share, arg)
}

/// Relative tolerance under which two values count as a tie when ranking
/// (so that rounding noise of 1e-15 never decides an order).
pub(crate) const TIE_RTOL: f64 = 1e-9;

/// Average ranks (1-based) with ties: sorted neighbours closer than
/// TIE_RTOL·max|x| share the mean of their ranks.
pub(crate) fn average_ranks(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = TIE_RTOL * scale;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && x[idx[end]] - x[idx[end - 1]] <= tol {
            end += 1;
        }
        let r = (start + end + 1) as f64 / 2.0; // mean of ranks start+1..=end
        for &i in &idx[start..end] {
            ranks[i] = r;
        }
        start = end;
    }
    ranks
}

/// Spearman rank correlation with average ranks for ties; None when n < 2 or
/// either vector is constant (all tied).
pub(crate) fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    debug_assert_eq!(x.len(), y.len());
    let n = x.len();
    if n < 2 {
        return None;
    }
    let rx = average_ranks(x);
    let ry = average_ranks(y);
    let mean = (n as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (a, b) = (rx[i] - mean, ry[i] - mean);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_stats_extremes() {
        let (pr, share, arg) = key_stats(&[1.0; 200]);
        assert!((pr - 1.0).abs() < 1e-15);
        assert!((share - 0.01).abs() < 1e-15);
        assert_eq!(arg, 0);
        let mut c = vec![0.0; 50];
        c[7] = 3.0;
        let (pr, share, arg) = key_stats(&c);
        assert!((pr - 1.0 / 50.0).abs() < 1e-15);
        assert_eq!(share, 1.0);
        assert_eq!(arg, 7);
        assert_eq!(key_stats(&[0.0; 4]), (1.0, 0.25, 0));
    }

    #[test]
    fn spearman_known_values() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&x, &[10.0, 20.0, 30.0, 40.0]).unwrap() - 1.0).abs() < 1e-15);
        assert!((spearman(&x, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-15);
        assert_eq!(spearman(&x, &[1.0; 4]), None);
        assert_eq!(spearman(&[1.0], &[2.0]), None);
        // ties get average ranks: ranks of [1,1,2] = [1.5,1.5,3]
        assert_eq!(average_ranks(&[1.0, 1.0, 2.0]), vec![1.5, 1.5, 3.0]);
        // rounding-level differences are ties
        assert_eq!(spearman(&x, &[1.0, 1.0 + 1e-15, 1.0 - 1e-15, 1.0]), None);
    }
}
