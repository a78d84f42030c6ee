//! Bad input is an Err, never a panic.

use field::{analyze, projector, rank_r_fidelity, Basis, FieldError, HeadInput, Params};

#[test]
fn non_finite_values_are_rejected() {
    let mut q = vec![0.5f64; 12];
    let k = vec![0.25f64; 12];
    q[7] = f64::NAN;
    let e = analyze(&HeadInput::new(&q, &k, 4, 3, 1.0), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::NonFinite { what: "q", index: 7 });
    let q = vec![0.5f32; 12];
    let mut k32 = vec![0.5f32; 12];
    k32[0] = f32::INFINITY;
    let e = analyze(&HeadInput::new(&q, &k32, 4, 3, 1.0), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::NonFinite { what: "k", index: 0 });
    let k = vec![0.5f32; 12];
    let e = analyze(&HeadInput::new(&q, &k, 4, 3, f64::NAN), &Params::default()).unwrap_err();
    assert!(matches!(e, FieldError::NonFinite { what: "scale", .. }));
    let e = analyze(&HeadInput::new(&q, &k, 4, 3, 1.0).with_alibi(f64::INFINITY), &Params::default()).unwrap_err();
    assert!(matches!(e, FieldError::NonFinite { what: "alibi_slope", .. }));
    let mut w = vec![1.0f64; 6];
    w[5] = f64::NEG_INFINITY;
    let e = analyze(&HeadInput::new(&q, &k, 4, 3, 1.0).with_weights(&w, &w, 2), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::NonFinite { what: "w_q", index: 5 });
}

#[test]
fn shape_errors_are_rejected() {
    let q = vec![0.5f64; 12];
    let k = vec![0.5f64; 11];
    let e = analyze(&HeadInput::new(&q, &k, 4, 3, 1.0), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::Length { what: "k", expected: 12, actual: 11 });
    let e = analyze(&HeadInput::new(&q, &q, 4, 4, 1.0), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::Length { what: "q", expected: 16, actual: 12 });
    let empty: Vec<f64> = vec![];
    assert_eq!(analyze(&HeadInput::new(&empty, &empty, 0, 3, 1.0), &Params::default()).unwrap_err(), FieldError::EmptySequence);
    assert_eq!(analyze(&HeadInput::new(&empty, &empty, 3, 0, 1.0), &Params::default()).unwrap_err(), FieldError::ZeroDim { what: "d" });
    let e = analyze(&HeadInput::new(&q, &q, usize::MAX, 3, 1.0), &Params::default()).unwrap_err();
    assert!(matches!(e, FieldError::Length { what: "q", .. }));
    let w = vec![1.0f64; 5];
    let e = analyze(&HeadInput::new(&q, &q, 4, 3, 1.0).with_weights(&w, &w, 2), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::Length { what: "w_q", expected: 6, actual: 5 });
    let e = analyze(&HeadInput::new(&q, &q, 4, 3, 1.0).with_weights(&empty, &empty, 0), &Params::default()).unwrap_err();
    assert_eq!(e, FieldError::ZeroDim { what: "d_model" });
}

#[test]
fn parameter_errors_are_rejected() {
    let q = vec![0.5f64; 12];
    let h = HeadInput::new(&q, &q, 4, 3, 1.0);
    assert_eq!(analyze(&h.with_window(0), &Params::default()).unwrap_err(), FieldError::InvalidWindow);
    assert!(matches!(analyze(&h.with_softcap(0.0), &Params::default()).unwrap_err(), FieldError::InvalidParam(_)));
    assert!(matches!(analyze(&h.with_softcap(-2.0), &Params::default()).unwrap_err(), FieldError::InvalidParam(_)));
    let p = Params { max_check_rows: 0, ..Params::default() };
    assert!(matches!(analyze(&h, &p).unwrap_err(), FieldError::InvalidParam(_)));
    let p = Params { max_dense_n: 3, ..Params::default() };
    assert_eq!(analyze(&h.with_softcap(30.0), &p).unwrap_err(), FieldError::SoftcapTooLong { n: 4, max: 3 });
    // error messages are one readable line
    assert!(!FieldError::InvalidWindow.to_string().contains('\n'));
}

#[test]
fn rank_r_errors_are_rejected() {
    let q: Vec<f64> = (0..12).map(|x| (x as f64).sin()).collect();
    let h = HeadInput::new(&q, &q, 4, 3, 1.0);
    assert_eq!(projector(&h, &Basis::Weights, 2).unwrap_err(), FieldError::MissingWeights);
    assert_eq!(projector(&h.with_softcap(5.0), &Basis::Data, 2).unwrap_err(), FieldError::SoftcapUnsupported);
    let p = projector(&h, &Basis::Data, 2).unwrap();
    let q2: Vec<f64> = (0..16).map(|x| (x as f64).cos()).collect();
    let other = HeadInput::new(&q2, &q2, 4, 4, 1.0);
    assert!(matches!(rank_r_fidelity(&other, &p, &Params::default()).unwrap_err(), FieldError::ProjectorMismatch { .. }));
    assert!(matches!(rank_r_fidelity(&h.with_alibi(0.1), &p, &Params::default()).unwrap_err(), FieldError::ProjectorMismatch { .. }));
    assert_eq!(rank_r_fidelity(&h.with_softcap(5.0), &p, &Params::default()).unwrap_err(), FieldError::SoftcapUnsupported);
    let mut bad = q.clone();
    bad[3] = f64::NAN;
    assert!(matches!(projector(&HeadInput::new(&bad, &q, 4, 3, 1.0), &Basis::Data, 2).unwrap_err(), FieldError::NonFinite { .. }));
}
