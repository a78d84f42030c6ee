//! Factored = dense for every measure, over a seeded sweep of shapes and inputs,
//! within the size-scaled tolerances of the crate README.

use crate::common;
use common::*;
use field::{analyze, HeadField, Method, Params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn params(method: Method) -> Params {
    Params { method, keep_key_energy: true, keep_leverage: true, ..Params::default() }
}

/// κ = max|logit| / RMS(E): how far the field sits below the logits it came from.
/// Dense rounding is relative to the logits, so every tolerance scales with κ.
fn kappa(c: &Case, g: &HeadField) -> f64 {
    let fro = g.spectrum.iter().map(|s| s * s).sum::<f64>().sqrt();
    let rms = fro / c.n as f64;
    if rms == 0.0 {
        return 1.0;
    }
    (c.max_logit() / rms).max(1.0)
}

/// The README's tolerance table, asserted.
fn check(c: &Case) {
    let f = analyze(&c.head(), &params(Method::Factored)).unwrap();
    let g = analyze(&c.head(), &params(Method::Dense)).unwrap();
    let ctx = &c.label;
    let k = kappa(c, &g);
    let dv = deviation(&f, &g);
    let well_conditioned_keys = !matches!(c.keys, Keys::RankDeficient(_));
    let lev_tol = if well_conditioned_keys { 1e-10 } else { 1e-6 };
    assert_eq!(f.check_rows, g.check_rows, "{ctx}");
    assert_eq!(f.rank_bound, c.d + 1 + usize::from(c.alibi.is_some()), "{ctx}");
    assert_eq!(f.spectrum.len(), c.n.min(f.rank_bound), "{ctx}");
    assert_eq!(g.spectrum.len(), f.spectrum.len(), "{ctx}");
    assert!(dv.spectrum <= 1e-11 * k, "{ctx}: spectrum {:e} (κ {k:e})", dv.spectrum);
    assert!(dv.effective_rank <= 1e-10 * k, "{ctx}: effective_rank {:e}", dv.effective_rank);
    assert!(dv.stable_rank <= 1e-10 * k, "{ctx}: stable_rank {:e}", dv.stable_rank);
    assert!(dv.key_energy <= 1e-10 * k, "{ctx}: key_energy {:e}", dv.key_energy);
    assert!(dv.participation_ratio <= 1e-10 * k, "{ctx}: participation {:e}", dv.participation_ratio);
    assert!(dv.top1pct_share <= 1e-10 * k, "{ctx}: top1pct {:e}", dv.top1pct_share);
    assert!(dv.leverage <= lev_tol, "{ctx}: leverage {:e}", dv.leverage);
    assert!(dv.key_coherence <= lev_tol, "{ctx}: key_coherence {:e}", dv.key_coherence);
    assert!(dv.spearman <= 1e-6, "{ctx}: spearman {:e}", dv.spearman);
    assert!(dv.entropy <= 1e-12 * (1.0 + (c.n as f64).ln()), "{ctx}: entropy {:e}", dv.entropy);
    // shift consistency: f32 models agree to f32 rounding of the logits, f64 ones to f64 rounding
    let l = 1.0 + c.max_logit();
    let sc_tol = if c.f32 { 2e-6 * l } else { 1e-12 * l };
    for r in [&f, &g] {
        assert!(r.shift_consistency <= sc_tol, "{ctx}: shift_consistency {:e} > {sc_tol:e}", r.shift_consistency);
        assert!(r.numerical_rank <= r.rank_bound && r.rank_bound_holds && r.rank_bound_applicable, "{ctx}");
        assert!(r.participation_ratio >= 1.0 / c.n as f64 - 1e-12 && r.participation_ratio <= 1.0 + 1e-12, "{ctx}");
        assert!(r.key_coherence >= 1.0 - 1e-9, "{ctx}: coherence {}", r.key_coherence);
    }
    if k <= 1e3 {
        // the field is not buried under its logits' rounding: counts agree exactly
        assert!(
            f.zero_sum_residual <= 1e-10 && g.zero_sum_residual <= 1e-10,
            "{ctx}: zero-sum {:e} {:e}",
            f.zero_sum_residual,
            g.zero_sum_residual
        );
        assert_eq!(f.numerical_rank, g.numerical_rank, "{ctx}");
        assert_eq!((f.k90, f.k99), (g.k90, g.k99), "{ctx}");
        let cf = f.key_energy.as_ref().unwrap();
        // argmax may differ only between near-tied keys
        assert!(rel(cf[f.argmax_key], cf[g.argmax_key]) <= 1e-9, "{ctx}: argmax {} vs {}", f.argmax_key, g.argmax_key);
        // and `analyze --dense-check` (field::compare) finds nothing on such heads
        let diff = field::compare(&f, &g);
        assert!(diff.is_empty(), "{ctx}: compare reports {diff:?}");
    } else {
        assert!(f.numerical_rank <= g.numerical_rank, "{ctx}");
    }
    // generic inputs: the bound is attained
    let p = f.rank_bound;
    let generic = matches!(c.keys, Keys::Random | Keys::Offset | Keys::Dominant) && c.n > p && k <= 1e3;
    if generic && c.window != Some(1) {
        assert_eq!(f.numerical_rank, p, "{ctx}");
    }
    if let (Keys::RankDeficient(r), false) = (c.keys, c.f32) {
        if c.n > p && r + 1 < c.d && k <= 1e3 {
            assert_eq!(f.numerical_rank, r + 1 + usize::from(c.alibi.is_some()), "{ctx}");
        }
    }
}

#[test]
fn factored_equals_dense_on_a_seeded_sweep() {
    let mut rng = ChaCha8Rng::seed_from_u64(20_261_129);
    let ns = [1usize, 2, 3, 5, 9, 17, 33, 64, 65, 66, 100, 129, 200, 300, 600];
    let ds = [1usize, 2, 3, 8, 16, 33, 64, 128];
    let kinds = [Keys::Random, Keys::RankDeficient(2), Keys::Duplicated, Keys::Dominant, Keys::Offset];
    let scales = [1.0, 1e3, 1e-6, 30.0];
    let mut dense_work = 0.0;
    for t in 0..240u64 {
        let n = ns[rng.random_range(0..ns.len())];
        let d = ds[rng.random_range(0..ds.len())];
        let keys = kinds[rng.random_range(0..kinds.len())];
        let scale = scales[rng.random_range(0..scales.len())];
        let window = match rng.random_range(0..5) {
            0 => Some(1),
            1 => Some(7),
            2 => Some(n / 2 + 1),
            3 => Some(n + 5),
            _ => None,
        };
        let alibi = if rng.random_bool(0.3) { Some(0.05) } else { None };
        let f32 = rng.random_bool(0.4);
        dense_work += (n as f64).powi(3);
        check(&Case::new(1000 + t, n, d, keys, scale, window, alibi, f32));
    }
    // keep the suite cheap on a 2-core box (≈ 50 dense 600² SVDs at most)
    assert!(dense_work < 1.2e10, "sweep too expensive: {dense_work:e}");
}

#[test]
fn factored_equals_dense_at_the_corners() {
    let corners = [
        (600, 128, Keys::Random, None, None, false),
        (600, 64, Keys::Offset, Some(64), Some(0.1), true),
        (600, 1, Keys::Random, None, None, true),
        (1, 128, Keys::Random, None, None, false),
        (5, 128, Keys::Random, None, Some(0.2), false), // n < d
        (300, 1, Keys::Dominant, Some(1), None, false),
        (130, 64, Keys::Duplicated, None, None, false), // > 128: exercises the SVD work-around
        (257, 16, Keys::RankDeficient(3), Some(300), None, false), // window longer than n
    ];
    for (s, &(n, d, keys, w, al, f32)) in corners.iter().enumerate() {
        check(&Case::new(77 + s as u64, n, d, keys, 1.0, w, al, f32));
    }
}

#[test]
fn subsampled_check_rows_are_shared_by_both_methods() {
    let c = Case::new(5, 300, 8, Keys::Random, 1.0, Some(40), None, false);
    let p = Params { max_check_rows: 50, ..params(Method::Factored) };
    let f = analyze(&c.head(), &p).unwrap();
    let g = analyze(&c.head(), &Params { method: Method::Dense, ..p }).unwrap();
    assert_eq!((f.check_rows, g.check_rows), (50, 50));
    assert!((f.attention_entropy - g.attention_entropy).abs() < 1e-12);
    assert!(f.zero_sum_residual <= 1e-10);
    // rows are a subset: the entropy differs from the all-rows value
    let all = analyze(&c.head(), &params(Method::Factored)).unwrap();
    assert_eq!(all.check_rows, 300);
    assert!((all.attention_entropy - f.attention_entropy).abs() > 1e-6);
}

#[test]
fn long_factored_head_keeps_the_invariants() {
    // no dense reference at this size; the invariants still must hold
    let c = Case::new(9, 6000, 16, Keys::Offset, 1.0, Some(1000), Some(0.01), true);
    let f = analyze(&c.head(), &Params { max_check_rows: 64, ..Params::default() }).unwrap();
    assert_eq!(f.numerical_rank, 18);
    assert_eq!(f.check_rows, 64);
    assert!(f.zero_sum_residual <= 1e-10);
    assert!(f.shift_consistency <= 2e-6 * (1.0 + c.max_logit()));
}
