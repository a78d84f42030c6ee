//! Factored vs dense: which differences between two [`HeadField`]s of the
//! same head are beyond tolerance. Used by `attnscope analyze --dense-check`
//! (one line per measure that differs). The tolerances are the loosest of
//! the crate README's table at κ ≤ 1e3 (ordinary heads of real models),
//! fixed so a report is judged the same way on every head.

use crate::output::HeadField;

/// Relative tolerance for smooth scalar measures (effective/stable rank,
/// participation ratio, shares, coherence, entropy, learned measures).
pub const REL_TOL: f64 = 1e-7;
/// Absolute tolerance for rounding-level checks (zero_sum_residual,
/// shift_consistency), which are compared in value, not in relative terms.
pub const CHECK_ABS_TOL: f64 = 1e-9;
/// Singular values: |σ_k − σ'_k| ≤ this · σ₁.
pub const SPECTRUM_TOL: f64 = 1e-9;
/// key_coherence: relative (leverage of nearly rank-deficient keys is
/// amplified by cond(B)², README).
pub const COHERENCE_TOL: f64 = 1e-6;
/// Spearman correlations: absolute (ties among key energies may break differently).
pub const SPEARMAN_TOL: f64 = 1e-6;
/// k90/k99 may differ by one only when the cumulative share of Σσ² at the
/// smaller k is within this of the threshold (a true tie at the boundary).
pub const BOUNDARY_TOL: f64 = 1e-9;

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300) || (a.is_nan() && b.is_nan())
}

fn opt_close(a: Option<f64>, b: Option<f64>, close: impl Fn(f64, f64) -> bool) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Fewest-k boundary check: ks may differ by one only at a tie of the share.
fn k_close(ka: usize, kb: usize, spectrum: &[f64], frac: f64) -> bool {
    if ka == kb {
        return true;
    }
    if ka.abs_diff(kb) > 1 {
        return false;
    }
    let total: f64 = spectrum.iter().map(|s| s * s).sum();
    let k = ka.min(kb);
    let share: f64 = spectrum.iter().take(k).map(|s| s * s).sum::<f64>() / total.max(1e-300);
    (share - frac).abs() <= BOUNDARY_TOL
}

/// Every measure of `a` that differs from `b` beyond the tolerance table,
/// as one readable line each. Empty = the two agree.
pub fn compare(a: &HeadField, b: &HeadField) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, name: &str, va: String, vb: String| {
        if !ok {
            out.push(format!("{name}: {va} vs {vb}"));
        }
    };
    let f = |x: f64| format!("{x:.12e}");
    let of = |x: Option<f64>| x.map_or("null".into(), |v| format!("{v:.12e}"));
    check(a.n == b.n && a.d == b.d, "shape", format!("{}x{}", a.n, a.d), format!("{}x{}", b.n, b.d));
    check(a.check_rows == b.check_rows, "check_rows", a.check_rows.to_string(), b.check_rows.to_string());
    check(
        (a.zero_sum_residual - b.zero_sum_residual).abs() <= CHECK_ABS_TOL,
        "zero_sum_residual",
        f(a.zero_sum_residual),
        f(b.zero_sum_residual),
    );
    check(
        (a.shift_consistency - b.shift_consistency).abs() <= CHECK_ABS_TOL,
        "shift_consistency",
        f(a.shift_consistency),
        f(b.shift_consistency),
    );
    check(
        rel_close(a.attention_entropy, b.attention_entropy, REL_TOL),
        "attention_entropy",
        f(a.attention_entropy),
        f(b.attention_entropy),
    );
    check(a.rank_bound == b.rank_bound, "rank_bound", a.rank_bound.to_string(), b.rank_bound.to_string());
    check(a.numerical_rank == b.numerical_rank, "numerical_rank", a.numerical_rank.to_string(), b.numerical_rank.to_string());
    check(a.rank_bound_holds == b.rank_bound_holds, "rank_bound_holds", a.rank_bound_holds.to_string(), b.rank_bound_holds.to_string());
    let s1 = a.spectrum.first().copied().unwrap_or(0.0).max(b.spectrum.first().copied().unwrap_or(0.0));
    let spectra_ok = a.spectrum.len() == b.spectrum.len()
        && a.spectrum.iter().zip(&b.spectrum).all(|(x, y)| (x - y).abs() <= SPECTRUM_TOL * s1.max(1e-300));
    check(
        spectra_ok,
        "spectrum",
        format!("{:?}", &a.spectrum[..a.spectrum.len().min(4)]),
        format!("{:?}", &b.spectrum[..b.spectrum.len().min(4)]),
    );
    check(k_close(a.k90, b.k90, &b.spectrum, 0.9), "k90", a.k90.to_string(), b.k90.to_string());
    check(k_close(a.k99, b.k99, &b.spectrum, 0.99), "k99", a.k99.to_string(), b.k99.to_string());
    check(rel_close(a.effective_rank, b.effective_rank, REL_TOL), "effective_rank", f(a.effective_rank), f(b.effective_rank));
    check(rel_close(a.stable_rank, b.stable_rank, REL_TOL), "stable_rank", f(a.stable_rank), f(b.stable_rank));
    check(a.k90_learned == b.k90_learned, "k90_learned", format!("{:?}", a.k90_learned), format!("{:?}", b.k90_learned));
    check(
        opt_close(a.effective_rank_learned, b.effective_rank_learned, |x, y| rel_close(x, y, REL_TOL)),
        "effective_rank_learned",
        of(a.effective_rank_learned),
        of(b.effective_rank_learned),
    );
    check(
        opt_close(a.spectral_gap, b.spectral_gap, |x, y| rel_close(x, y, REL_TOL)),
        "spectral_gap",
        of(a.spectral_gap),
        of(b.spectral_gap),
    );
    // k90_gap is a ratio of two counts that are compared above; equal
    // counts give the same ratio, so only the boundary case can differ.
    check(a.k90_gap == b.k90_gap || (a.k90 != b.k90 && k_close(a.k90, b.k90, &a.spectrum, 0.9)), "k90_gap", of(a.k90_gap), of(b.k90_gap));
    check(
        rel_close(a.participation_ratio, b.participation_ratio, REL_TOL),
        "participation_ratio",
        f(a.participation_ratio),
        f(b.participation_ratio),
    );
    check(rel_close(a.top1pct_share, b.top1pct_share, REL_TOL), "top1pct_share", f(a.top1pct_share), f(b.top1pct_share));
    check(a.argmax_key == b.argmax_key, "argmax_key", a.argmax_key.to_string(), b.argmax_key.to_string());
    check(rel_close(a.key_coherence, b.key_coherence, COHERENCE_TOL), "key_coherence", f(a.key_coherence), f(b.key_coherence));
    check(
        opt_close(a.energy_leverage_spearman, b.energy_leverage_spearman, |x, y| (x - y).abs() <= SPEARMAN_TOL),
        "energy_leverage_spearman",
        of(a.energy_leverage_spearman),
        of(b.energy_leverage_spearman),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analyze, HeadInput, Params};

    fn head_fields() -> (HeadField, HeadField) {
        let (n, d) = (40, 4);
        let q: Vec<f64> = (0..n * d).map(|x| ((x * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let k: Vec<f64> = (0..n * d).map(|x| ((x * 5 % 13) as f64 - 6.0) / 4.0).collect();
        let head = HeadInput::new(&q, &k, n, d, 0.5);
        (analyze(&head, &Params::default()).unwrap(), analyze(&head, &Params::dense()).unwrap())
    }

    #[test]
    fn factored_and_dense_agree_and_perturbations_are_caught() {
        let (f, d) = head_fields();
        assert!(compare(&f, &d).is_empty(), "{:?}", compare(&f, &d));
        let mut bad = f.clone();
        bad.participation_ratio *= 1.0 + 1e-5;
        bad.numerical_rank += 1;
        bad.spectrum[0] *= 1.0 + 1e-6;
        let found = compare(&bad, &d);
        for name in ["participation_ratio", "numerical_rank", "spectrum"] {
            assert!(found.iter().any(|l| l.starts_with(name)), "{name} not caught: {found:?}");
        }
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
