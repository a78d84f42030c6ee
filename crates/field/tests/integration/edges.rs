//! Edge shapes and degenerate inputs, on both methods.

use crate::common;
use common::*;
use field::{analyze, HeadField, HeadInput, Method, Params};

fn both(h: &HeadInput<'_>) -> (HeadField, HeadField) {
    let p = Params { keep_key_energy: true, keep_leverage: true, ..Params::default() };
    let f = analyze(h, &p).unwrap();
    let g = analyze(h, &Params { method: Method::Dense, ..p }).unwrap();
    (f, g)
}

#[test]
fn single_token_has_a_zero_field() {
    let (q, k) = ([0.3, -1.0, 2.0], [1.5, 0.2, -0.7]);
    {
        let (f, _) = both(&HeadInput::new(&q[..], &k[..], 1, 3, 0.5));
        assert_eq!(f.spectrum, vec![0.0]);
        assert_eq!((f.numerical_rank, f.k90, f.k99), (0, 0, 0));
        assert_eq!((f.effective_rank, f.stable_rank), (0.0, 0.0));
        assert_eq!((f.participation_ratio, f.top1pct_share, f.argmax_key), (1.0, 1.0, 0));
        assert_eq!(f.key_coherence, 1.0);
        assert_eq!(f.energy_leverage_spearman, None);
        assert_eq!((f.zero_sum_residual, f.attention_entropy), (0.0, 0.0));
        assert!(f.shift_consistency <= 1e-15);
    }
    let (f, g) = both(&HeadInput::new(&q[..], &k[..], 1, 3, 0.5));
    assert_eq!(f.spectrum, g.spectrum);
    assert_eq!(f.numerical_rank, g.numerical_rank);
}

#[test]
fn all_keys_equal_is_reported_as_an_exactly_zero_field() {
    for &(n, d, f32) in &[(50usize, 8usize, false), (200, 3, true), (7, 16, false)] {
        let c = Case::new(3, n, d, Keys::AllEqual, 1.0, None, None, f32);
        let (f, g) = both(&c.head());
        for r in [&f, &g] {
            assert!(r.spectrum.iter().all(|&s| s == 0.0), "{}: {:?}", c.label, &r.spectrum[..2]);
            assert_eq!((r.numerical_rank, r.k90, r.k99), (0, 0, 0), "{}", c.label);
            assert_eq!(r.effective_rank, 0.0);
            assert_eq!(r.participation_ratio, 1.0);
            assert_eq!(r.energy_leverage_spearman, None);
            assert!(r.zero_sum_residual <= 1e-10);
            // a uniform pattern: entropy = mean log|C_i|
            let want = (1..=n).map(|m| (m as f64).ln()).sum::<f64>() / n as f64;
            // (the entropy comes from the model's softmax: f32 rounding for f32 heads)
            let tol = if f32 { 1e-5 } else { 1e-9 };
            assert!((r.attention_entropy - want).abs() < tol, "{} {}", r.attention_entropy, want);
            // B = [K, 1] has rank 1: every leverage is 1/n, μ = 1
            assert!((r.key_coherence - 1.0).abs() < 1e-9, "{}", r.key_coherence);
        }
        assert_eq!(f.spectral_gap, None);
        assert_eq!(f.k90_gap, None);
    }
}

#[test]
fn fewer_tokens_than_dimensions() {
    let c = Case::new(11, 4, 32, Keys::Random, 1.0, None, None, false);
    let (f, g) = both(&c.head());
    assert_eq!(f.spectrum.len(), 4);
    // E = A Bᵀ is 4×4 with zero-sum rows on the causal support: rank ≤ 4
    assert_eq!(f.numerical_rank, g.numerical_rank);
    assert!(f.numerical_rank <= 4);
    // B = [K, 1] is 4 × 33 with rank 4: every key has leverage 1, μ = 1
    assert!(f.leverage.unwrap().iter().all(|&l| (l - 1.0).abs() < 1e-12));
    assert!((f.key_coherence - 1.0).abs() < 1e-12);
}

#[test]
fn head_dimension_one() {
    let c = Case::new(12, 120, 1, Keys::Random, 1.0, None, None, false);
    let (f, g) = both(&c.head());
    assert_eq!((f.rank_bound, f.numerical_rank, g.numerical_rank), (2, 2, 2));
    assert!(f.zero_sum_residual <= 1e-10);
}

#[test]
fn window_longer_than_n_is_plain_causal() {
    let c = Case::new(13, 90, 8, Keys::Random, 1.0, Some(1000), None, false);
    let mut plain = c.clone();
    plain.window = None;
    let p = Params { keep_key_energy: true, ..Params::default() };
    let a = analyze(&c.head(), &p).unwrap();
    let b = analyze(&plain.head(), &p).unwrap();
    assert_eq!(a, b);
}

#[test]
fn window_of_one_has_no_field_on_the_support() {
    let c = Case::new(14, 80, 8, Keys::Random, 1.0, Some(1), None, false);
    let (f, g) = both(&c.head());
    for r in [&f, &g] {
        assert_eq!(r.zero_sum_residual, 0.0);
        assert_eq!(r.attention_entropy, 0.0);
        assert!(r.key_energy.as_ref().unwrap().iter().all(|&x| x == 0.0));
        assert_eq!(r.participation_ratio, 1.0);
        // the extended field E_ij = S_ij − S_ii still has rank d + 1
        assert_eq!(r.numerical_rank, 9);
    }
}

#[test]
fn wider_window_sees_more_keys() {
    // windowed and causal differ, and the window's key energies use R_j = {j ≤ i < j + w}
    let c = Case::new(15, 60, 4, Keys::Random, 1.0, Some(5), None, false);
    let (f, g) = both(&c.head());
    let causal = Case { window: None, ..c.clone() };
    let (h, _) = both(&causal.head());
    assert!((f.attention_entropy - h.attention_entropy).abs() > 1e-3);
    let (cf, cg) = (f.key_energy.unwrap(), g.key_energy.unwrap());
    for j in 0..60 {
        assert!((cf[j] - cg[j]).abs() <= 1e-10 * (1.0 + cg[j]));
    }
}

#[test]
fn f32_and_f64_inputs_give_the_same_field() {
    // same numbers, different declared precision: only shift_consistency differs
    let c32 = Case::new(16, 200, 16, Keys::Offset, 1.0, None, None, true);
    let c64 = Case { f32: false, ..c32.clone() };
    let a = analyze(&c32.head(), &Params::default()).unwrap();
    let b = analyze(&c64.head(), &Params::default()).unwrap();
    assert_eq!(a.spectrum, b.spectrum);
    assert_eq!(a.participation_ratio, b.participation_ratio);
    let l = 1.0 + c32.max_logit();
    assert!(a.shift_consistency > 10.0 * b.shift_consistency, "{} vs {}", a.shift_consistency, b.shift_consistency);
    assert!(a.shift_consistency <= 2e-6 * l && a.shift_consistency >= 1e-9 * l);
    assert!(b.shift_consistency <= 1e-12 * l);
}

#[test]
fn alibi_adds_one_to_the_rank() {
    let c = Case::new(17, 100, 8, Keys::Random, 1.0, None, Some(0.1), false);
    let (f, g) = both(&c.head());
    assert_eq!((f.rank_bound, f.numerical_rank, g.numerical_rank), (10, 10, 10));
    // leverage is of [K, 1] only, with or without ALiBi
    let plain = Case { alibi: None, ..c.clone() };
    let (h, _) = both(&plain.head());
    assert_eq!(f.leverage, h.leverage);
}

#[test]
fn softcap_is_reported_not_hidden() {
    let c = Case::new(18, 150, 8, Keys::Random, 8.0, None, None, false);
    let h = c.head().with_softcap(5.0);
    let (f, g) = both(&h);
    for r in [&f, &g] {
        assert!(!r.rank_bound_applicable);
        assert_eq!(r.logit_transform, field::TransformKind::Softcap);
        assert_eq!(r.softcap, Some(5.0));
        // tanh makes the field full rank: the bound is computed and fails
        assert!(r.numerical_rank > r.rank_bound, "{}", r.numerical_rank);
        assert!(!r.rank_bound_holds);
        assert!(r.zero_sum_residual <= 1e-10);
        assert!(r.shift_consistency <= 1e-12 * 6.0);
    }
    assert_eq!(f.spectrum, g.spectrum);
    let plain = analyze(&c.head(), &Params::default()).unwrap();
    assert!(plain.rank_bound_applicable && plain.rank_bound_holds);
    assert_eq!(plain.logit_transform, field::TransformKind::None);
}

#[test]
fn json_uses_the_spec_names() {
    let c = Case::new(19, 40, 4, Keys::Random, 1.0, None, None, false);
    let f = analyze(&c.head(), &Params::default()).unwrap();
    let v: serde_json::Value = serde_json::to_value(&f).unwrap();
    for name in [
        "zero_sum_residual",
        "shift_consistency",
        "rank_bound",
        "numerical_rank",
        "rank_bound_holds",
        "spectrum",
        "k90",
        "k99",
        "effective_rank",
        "stable_rank",
        "k90_learned",
        "effective_rank_learned",
        "spectral_gap",
        "k90_gap",
        "participation_ratio",
        "top1pct_share",
        "argmax_key",
        "key_coherence",
        "energy_leverage_spearman",
        "attention_entropy",
        "n",
        "d",
        "check_rows",
        "logit_transform",
        "rank_bound_applicable",
    ] {
        assert!(v.get(name).is_some(), "missing {name}");
    }
    assert!(v.get("key_energy").is_none() && v.get("leverage").is_none());
    assert!(v["k90_learned"].is_null());
    assert_eq!(v["logit_transform"], "none");
    let back: HeadField = serde_json::from_value(v).unwrap();
    assert_eq!(back, f);
}
