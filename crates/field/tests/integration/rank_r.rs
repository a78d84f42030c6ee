//! Rank-r rebuilding (docs/definitions.md §6) and the learned interaction (docs/definitions.md §3).

use crate::common;
use common::*;
use faer::Mat;
use field::testing::dense_truncated_fidelity;
use field::{analyze, projector, rank_r_fidelity, Basis, HeadInput, Method, Params};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A head whose q, k really come from weights: q_i = x_i W_Q, k_j = x_j W_K.
struct Model {
    n: usize,
    d: usize,
    dm: usize,
    x: Vec<f64>,
    wq: Vec<f64>,
    wk: Vec<f64>,
    q: Vec<f64>,
    k: Vec<f64>,
}

impl Model {
    fn new(seed: u64, n: usize, d: usize, dm: usize) -> Model {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = gauss_vec(&mut rng, n * dm);
        let wq = gauss_vec(&mut rng, dm * d);
        let wk = gauss_vec(&mut rng, dm * d);
        let mul = |w: &[f64]| -> Vec<f64> {
            (0..n * d).map(|t| (0..dm).map(|u| x[(t / d) * dm + u] * w[u * d + t % d]).sum::<f64>() / (dm as f64).sqrt()).collect()
        };
        let (q, k) = (mul(&wq), mul(&wk));
        Model { n, d, dm, x, wq, wk, q, k }
    }
    fn head(&self) -> HeadInput<'_> {
        HeadInput::new(&self.q, &self.k, self.n, self.d, 1.0 / (self.d as f64).sqrt()).with_weights(&self.wq, &self.wk, self.dm)
    }
}

fn fid(h: &HeadInput<'_>, basis: Basis, calib: &HeadInput<'_>, r: usize, method: Method) -> field::Fidelity {
    let p = projector(calib, &basis, r).unwrap();
    rank_r_fidelity(h, &p, &Params { method, ..Params::default() }).unwrap()
}

#[test]
fn full_rank_reproduces_the_pattern_for_every_basis() {
    for (s, c) in
        [Case::new(31, 120, 8, Keys::Offset, 1.0, None, None, false), Case::new(32, 90, 6, Keys::Random, 3.0, Some(17), Some(0.05), true)]
            .iter()
            .enumerate()
    {
        let m = Model::new(40 + s as u64, c.n, c.d, 24);
        let wh = c.head().with_weights(&m.wq, &m.wk, m.dm);
        let rb = c.d + 1 + usize::from(c.alibi.is_some());
        for (basis, r) in [(Basis::Data, rb), (Basis::Weights, c.d), (Basis::Random { seed: 7 }, c.d)] {
            for method in [Method::Factored, Method::Dense] {
                let f = fid(&wh, basis, &wh, r, method);
                assert!(f.kl <= 1e-10, "{basis:?} {method:?}: {}", f.kl);
                assert_eq!(f.top1, 1.0, "{basis:?} {method:?}");
                assert_eq!(f.check_rows, c.n);
            }
        }
    }
}

#[test]
fn rank_zero_is_the_uniform_pattern() {
    let c = Case::new(33, 100, 8, Keys::Random, 2.0, None, None, false);
    let a = analyze(&c.head(), &Params::default()).unwrap();
    let mean_log_c = (1..=c.n).map(|m| (m as f64).ln()).sum::<f64>() / c.n as f64;
    for basis in [Basis::Data, Basis::Random { seed: 1 }] {
        let f = fid(&c.head(), basis, &c.head(), 0, Method::Factored);
        // KL(P‖uniform) = log|C_i| − H(P_i)
        assert!((f.kl - (mean_log_c - a.attention_entropy)).abs() < 1e-10, "{basis:?}: {} vs {}", f.kl, mean_log_c - a.attention_entropy);
    }
}

#[test]
fn data_basis_is_eckart_young_on_its_calibration_text() {
    for c in [
        Case::new(34, 150, 8, Keys::Random, 2.0, None, None, false),
        Case::new(35, 200, 12, Keys::Offset, 1.0, Some(40), Some(0.02), false),
    ] {
        let h = c.head();
        let rb = c.d + 1 + usize::from(c.alibi.is_some());
        let mut prev = f64::INFINITY;
        for r in 0..=rb {
            let f = fid(&h, Basis::Data, &h, r, Method::Factored);
            let g = fid(&h, Basis::Data, &h, r, Method::Dense);
            let e = dense_truncated_fidelity(&h, r, &Params::default()).unwrap();
            assert!((f.kl - e.kl).abs() <= 1e-8 * (1.0 + e.kl), "{} r={r}: {} vs {}", c.label, f.kl, e.kl);
            assert!((f.kl - g.kl).abs() <= 1e-9 * (1.0 + g.kl), "{} r={r}: {} vs {}", c.label, f.kl, g.kl);
            assert_eq!(f.top1, e.top1, "{} r={r}", c.label);
            assert_eq!(f.top1, g.top1, "{} r={r}", c.label);
            // more directions never hurt much on the text they were fitted to
            assert!(f.kl <= prev * 1.05 + 1e-9, "{} r={r}: {} after {}", c.label, f.kl, prev);
            prev = f.kl;
        }
        assert!(prev <= 1e-10);
    }
}

#[test]
fn projectors_transfer_between_texts_and_methods_agree() {
    let m1 = Model::new(50, 160, 8, 32);
    let mut m2 = Model::new(51, 140, 8, 32);
    // same weights, a different text
    m2.wq = m1.wq.clone();
    m2.wk = m1.wk.clone();
    let eval = Case::new(52, 140, 8, Keys::Offset, 1.0, Some(50), None, true);
    for r in [1, 3, 8] {
        for basis in [Basis::Data, Basis::Weights, Basis::Random { seed: 3 }] {
            let f = fid(&eval.head(), basis, &m1.head(), r, Method::Factored);
            let g = fid(&eval.head(), basis, &m1.head(), r, Method::Dense);
            assert!((f.kl - g.kl).abs() <= 1e-9 * (1.0 + g.kl), "{basis:?} r={r}: {} vs {}", f.kl, g.kl);
            assert_eq!(f.top1, g.top1, "{basis:?} r={r}");
            assert!(f.kl >= 0.0 && (0.0..=1.0).contains(&f.top1));
        }
    }
    let a = projector(&m1.head(), &Basis::Random { seed: 3 }, 4).unwrap();
    let b = projector(&m2.head(), &Basis::Random { seed: 3 }, 4).unwrap();
    let c = projector(&m1.head(), &Basis::Random { seed: 4 }, 4).unwrap();
    assert_eq!(a.pi(), b.pi());
    assert_ne!(a.pi(), c.pi());
}

/// Weights basis against a hand-built M_r = top-r SVD of W_Q W_Kᵀ in model space.
#[test]
fn weights_basis_matches_the_truncated_learned_interaction() {
    let m = Model::new(60, 80, 6, 20);
    let (n, d, dm) = (m.n, m.d, m.dm);
    let wq = Mat::from_fn(dm, d, |i, j| m.wq[i * d + j]);
    let wk = Mat::from_fn(dm, d, |i, j| m.wk[i * d + j]);
    let mm = &wq * wk.transpose();
    let svd = mm.thin_svd().unwrap();
    let s = 1.0 / (d as f64).sqrt();
    let x = Mat::from_fn(n, dm, |i, j| m.x[i * dm + j] / (dm as f64).sqrt());
    for r in 1..d {
        let us = Mat::from_fn(dm, r, |i, t| svd.U()[(i, t)] * svd.S()[t]);
        let mr = &us * svd.V().get(.., ..r).transpose();
        let lr = &(&x * &mr) * x.transpose(); // rank-r logits / s
        let (mut kl, mut agree) = (0.0, 0);
        for i in 0..n {
            let row: Vec<f64> = (0..=i).map(|j| s * (0..d).map(|t| m.q[i * d + t] * m.k[j * d + t]).sum::<f64>()).collect();
            let rowr: Vec<f64> = (0..=i).map(|j| s * lr[(i, j)]).collect();
            let lse = |v: &[f64]| {
                let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                mx + v.iter().map(|y| (y - mx).exp()).sum::<f64>().ln()
            };
            let (a, b) = (lse(&row), lse(&rowr));
            kl += row.iter().zip(&rowr).map(|(u, v)| (u - a).exp() * ((u - a) - (v - b))).sum::<f64>();
            let am = (0..=i).max_by(|&p, &q| row[p].total_cmp(&row[q])).unwrap();
            let bm = (0..=i).max_by(|&p, &q| rowr[p].total_cmp(&rowr[q])).unwrap();
            agree += usize::from(am == bm);
        }
        let f = fid(&m.head(), Basis::Weights, &m.head(), r, Method::Factored);
        assert!((f.kl - kl / n as f64).abs() <= 1e-9 * (1.0 + f.kl), "r={r}: {} vs {}", f.kl, kl / n as f64);
        assert_eq!(f.top1, agree as f64 / n as f64, "r={r}");
    }
}

#[test]
fn learned_interaction_factored_equals_dense() {
    let m = Model::new(70, 60, 8, 48);
    let f = analyze(&m.head(), &Params::default()).unwrap();
    let g = analyze(&m.head(), &Params::dense()).unwrap();
    assert_eq!(f.k90_learned, g.k90_learned);
    let (ef, eg) = (f.effective_rank_learned.unwrap(), g.effective_rank_learned.unwrap());
    assert!(rel(ef, eg) <= 1e-12, "{ef} {eg}");
    assert!(ef > 1.0 && ef <= 8.0 + 1e-9);
    assert!(f.k90_learned.unwrap() <= 8);
    assert!(rel(f.spectral_gap.unwrap(), ef / f.effective_rank) <= 1e-15);
    assert!(f.k90 > 0);
    assert_eq!(f.k90_gap, Some(f.k90_learned.unwrap() as f64 / f.k90 as f64));
    assert_eq!(f.k90_gap, g.k90_gap);
    // a rank-2 interaction
    let mut m2 = Model::new(71, 60, 8, 48);
    for u in 0..48 {
        for t in 2..8 {
            m2.wk[u * 8 + t] = 0.0;
        }
    }
    let f2 = analyze(&m2.head(), &Params::default()).unwrap();
    let g2 = analyze(&m2.head(), &Params::dense()).unwrap();
    assert!(f2.k90_learned.unwrap() <= 2);
    assert!(rel(f2.effective_rank_learned.unwrap(), g2.effective_rank_learned.unwrap()) <= 1e-10);
    assert!(f2.effective_rank_learned.unwrap() <= 2.0 + 1e-9);
}
