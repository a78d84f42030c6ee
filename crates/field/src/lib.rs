//! # field — the energy field of one softmax attention head
//!
//! Given one head's queries and keys exactly as the model uses them, computes
//! every measure of docs/definitions.md §1–6 (zero-sum and shift consistency, rank bound,
//! singular spectrum, key energy, leverage/coherence, rank-r rebuilding).
//!
//! E_ij = S_ij − m_i with S_ij = s·q_i·k_j + b_ij over all i, j, and m_i the mean
//! of S_i· over the causal support C_i. Without soft-capping E = A·Bᵀ with
//! A = [s·Q, (slope), −m], B = [K, (j), 1] (n × p, p = d + 1, + 1 with ALiBi).
//!
//! Two implementations behind one API ([`Method`]): [`Method::Factored`]
//! (default; O(n·d²) time, O(n·d) memory, f64 internally) and [`Method::Dense`]
//! (reference; forms E and takes its full SVD). They agree within the
//! tolerances of the crate README. See docs/definitions.md for every choice.
//!
//! ```
//! use field::{analyze, HeadInput, Params};
//! let (n, d) = (8, 2);
//! let q: Vec<f64> = (0..n * d).map(|x| ((x * 7 % 11) as f64 - 5.0) / 3.0).collect();
//! let k: Vec<f64> = (0..n * d).map(|x| ((x * 5 % 13) as f64 - 6.0) / 4.0).collect();
//! let head = HeadInput::new(&q, &k, n, d, 1.0 / (d as f64).sqrt());
//! let out = analyze(&head, &Params::default()).unwrap();
//! assert!(out.zero_sum_residual <= 1e-10);
//! assert!(out.numerical_rank <= out.rank_bound);
//! ```

mod compare;
mod dense;
mod error;
mod factored;
mod features;
mod input;
mod kernels;
mod keys;
mod laps;
mod leverage;
mod linalg;
mod measures;
mod output;
mod params;
mod rank_r;
pub mod rng;
mod rows;
mod shared;
mod small_svd;
mod spectrum;
mod tile;

pub use compare::compare;
pub use error::{FieldError, Result};
pub use input::{HeadInput, HeadWeights, LogitTransform, Support, Values};
pub use keys::{gram, key_spread, random_key_projector, KeyBasis};
pub use output::{HeadField, TransformKind};
pub use params::{Method, Params};
pub use rank_r::{projector, rank_r_fidelity, Basis, Fidelity, Projector};
pub use rng::Rng;
pub use rows::check_rows;
pub use shared::{learned_spectrum, KeyFactor};
pub use spectrum::rank_tolerance;
pub use tile::{energy_tile, tile_len};

/// Test hooks: a deliberately wrong field, to show the checks catch it. Not API.
#[doc(hidden)]
pub mod testing {
    pub use crate::factored::analyze_with_fault;
    pub use crate::features::Fault;
    pub use crate::laps::{analyze_laps, wall_seconds, Clock};
    pub use crate::rank_r::dense_truncated_fidelity;
}

use input::LogitTransform as LT;

/// What an implementation hands to [`finish`].
pub(crate) struct Parts {
    method: Method,
    /// Every singular value the method computed (factored: min(n, p); dense: n).
    sv_all: Vec<f64>,
    checks: rows::RowChecks,
    check_rows: usize,
    key_energy: Vec<f64>,
    leverage: leverage::Leverage,
}

/// Reads Q and K of one head (and W_Q, W_K if given) and returns every
/// measure of docs/definitions.md §1–5; guarantees no panic on any input (bad input is an `Err`).
///
/// Precision: f64 throughout; the shift-consistency check mimics the model's
/// softmax in f32 when Q or K is f32. Soft-capped heads are computed densely
/// (both methods) up to `params.max_dense_n`, else [`FieldError::SoftcapTooLong`].
pub fn analyze(head: &HeadInput<'_>, params: &Params) -> Result<HeadField> {
    head.validate()?;
    if params.max_check_rows == 0 {
        return Err(FieldError::InvalidParam("max_check_rows must be ≥ 1".into()));
    }
    let parts = match (head.transform, params.method) {
        (LT::Softcap(_), _) => {
            if head.n > params.max_dense_n {
                return Err(FieldError::SoftcapTooLong { n: head.n, max: params.max_dense_n });
            }
            dense::analyze(head, params)?
        }
        (LT::None, Method::Factored) => factored::analyze(head, params, features::Fault::None)?,
        (LT::None, Method::Dense) => dense::analyze(head, params)?,
    };
    finish(head, params, parts)
}

/// Turns the raw parts into the reported measures (shared by both methods).
pub(crate) fn finish(head: &HeadInput<'_>, params: &Params, parts: Parts) -> Result<HeadField> {
    finish_timed(head, params, parts, &mut laps::Laps::default())
}

/// [`finish`], closing a lap after the learned spectrum and after the summaries.
pub(crate) fn finish_timed(head: &HeadInput<'_>, params: &Params, parts: Parts, laps: &mut laps::Laps) -> Result<HeadField> {
    let (n, d) = (head.n, head.d);
    let rank_bound = head.feature_dim();
    let applicable = head.transform == LT::None;
    let keep = n.min(rank_bound);
    let mut sv = parts.sv_all;
    let mut c = parts.key_energy;
    // a field at the rounding level of its logits is reported as exactly zero
    let (q_norm, k_norm) = (head.q.sum_squares().sqrt(), head.k.sum_squares().sqrt());
    let logit_norm = spectrum::logit_norm_bound(q_norm, k_norm, head.scale, head.alibi_slope, n);
    let s1 = sv.first().copied().unwrap_or(0.0);
    if spectrum::is_numerically_zero(s1, n, d, logit_norm) {
        sv.iter_mut().for_each(|x| *x = 0.0);
        c.iter_mut().for_each(|x| *x = 0.0);
    }
    if head.support == Support::Window(1) {
        // every support is {i}: E_ii = 0 by algebra, so every c_j is exactly 0
        c.iter_mut().for_each(|x| *x = 0.0);
    }
    let numerical_rank = spectrum::numerical_rank(&sv, n, d);
    let stats_sv: &[f64] = if applicable { &sv[..keep.min(sv.len())] } else { &sv };
    let st = spectrum::stats(stats_sv, n, d);
    let (k90_learned, effective_rank_learned, spectral_gap, spectrum_learned) = match &head.weights {
        None => (None, None, None, None),
        Some(w) => {
            let lsv = match params.method {
                Method::Factored => match head.learned_spectrum {
                    Some(sv) => sv.to_vec(),
                    None => spectrum::learned_sv_factored(w, d)?,
                },
                Method::Dense => spectrum::learned_sv_dense(w, d)?,
            };
            let (k, e, g) = spectrum::learned_stats(&lsv, st.effective_rank);
            (Some(k), Some(e), g, Some(lsv))
        }
    };
    laps.lap("learned spectrum (W_Q W_Kᵀ)");
    let (participation_ratio, top1pct_share, argmax_key) = measures::key_stats(&c);
    let key_coherence = leverage::coherence(&parts.leverage);
    let energy_leverage_spearman = measures::spearman(&c, &parts.leverage.scores);
    let mut spectrum_out = sv;
    spectrum_out.truncate(keep);
    spectrum_out.resize(keep, 0.0);
    laps.lap("summaries (ranks, shares, Spearman)");
    Ok(HeadField {
        n,
        d,
        method: parts.method,
        logit_transform: if applicable { TransformKind::None } else { TransformKind::Softcap },
        softcap: match head.transform {
            LT::Softcap(c) => Some(c),
            LT::None => None,
        },
        check_rows: parts.check_rows,
        zero_sum_residual: parts.checks.zero_sum_residual,
        shift_consistency: parts.checks.shift_consistency,
        attention_entropy: parts.checks.attention_entropy,
        rank_bound,
        numerical_rank,
        rank_bound_holds: numerical_rank <= rank_bound,
        rank_bound_applicable: applicable,
        spectrum: spectrum_out,
        k90: st.k90,
        k99: st.k99,
        effective_rank: st.effective_rank,
        stable_rank: st.stable_rank,
        spectrum_learned,
        k90_learned,
        effective_rank_learned,
        spectral_gap,
        k90_gap: k90_learned.filter(|_| st.k90 > 0).map(|k| k as f64 / st.k90 as f64),
        participation_ratio,
        top1pct_share,
        argmax_key,
        key_coherence,
        energy_leverage_spearman,
        key_energy: params.keep_key_energy.then_some(c),
        leverage: params.keep_leverage.then(|| parts.leverage.scores.clone()),
    })
}
