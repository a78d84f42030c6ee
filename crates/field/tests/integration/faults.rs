//! A deliberately wrong field is caught by the invariant checks.

use crate::common;
use common::*;
use field::testing::{analyze_with_fault, Fault};
use field::Params;

#[test]
fn mean_over_the_wrong_support_is_caught() {
    for &(n, d, w, f32) in &[(100usize, 8usize, None, false), (300, 16, Some(20), true), (50, 4, None, true)] {
        let c = Case::new(21, n, d, Keys::Random, 1.0, w, None, f32);
        let good = analyze_with_fault(&c.head(), &Params::default(), Fault::None).unwrap();
        let bad = analyze_with_fault(&c.head(), &Params::default(), Fault::MeanOverAllKeys).unwrap();
        assert!(good.zero_sum_residual <= 1e-10);
        assert!(bad.zero_sum_residual >= 1e-2, "{}: {}", c.label, bad.zero_sum_residual);
        let l = 1.0 + c.max_logit();
        assert!(good.shift_consistency <= 2e-6 * l);
        assert!(bad.shift_consistency >= 1e-2 * l, "{}: {}", c.label, bad.shift_consistency);
    }
}
