//! The measures of one head, named exactly as in docs/definitions.md (serde names = the documented names).

use serde::{Deserialize, Serialize};

use crate::params::Method;

/// Which logit transform the field was computed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformKind {
    /// Plain logits: the rank bound applies.
    None,
    /// Soft-capped logits: the rank bound does not apply (reported, not asserted).
    Softcap,
}

/// Every measure (docs/definitions.md §1–5) of one head on one sequence, plus the singular spectrum.
///
/// Units: logits are natural-log units (nats); spectra are singular values of E
/// in logit units. All values are computed in f64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadField {
    /// Sequence length.
    pub n: usize,
    /// Head dimension.
    pub d: usize,
    /// The implementation that produced these numbers (`"factored"` or `"dense"` in JSON).
    pub method: Method,
    /// Logit transform in force.
    pub logit_transform: TransformKind,
    /// The soft-cap c when `logit_transform` is softcap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softcap: Option<f64>,
    /// How many rows the row checks (zero-sum, shift, entropy) used.
    pub check_rows: usize,

    // §1 zero-sum and shift consistency
    /// max over check rows of |Σ_{C_i} E_ij| / Σ_{C_i} |E_ij| (0 for rows whose field is at rounding level).
    pub zero_sum_residual: f64,
    /// max |E_ij − (log P_ij − mean_{C_i} log P_i·)| over the support of the check rows,
    /// P from a softmax in the model's precision.
    pub shift_consistency: f64,
    /// Mean over check rows of the entropy of the attention row (nats), from the
    /// softmax in the model's precision (the one shift_consistency compares against).
    pub attention_entropy: f64,

    // §2 rank bound
    /// d + 1, + 1 with ALiBi.
    pub rank_bound: usize,
    /// #σ > σ₁·max(n, d)·ε_f64 (0 when the field is numerically zero).
    pub numerical_rank: usize,
    /// numerical_rank ≤ rank_bound.
    pub rank_bound_holds: bool,
    /// False under soft-capping: then `rank_bound_holds` is reported, not expected.
    pub rank_bound_applicable: bool,

    // §3 spectrum
    /// The top min(n, rank_bound) singular values of E, non-increasing.
    pub spectrum: Vec<f64>,
    /// Fewest components holding 90 % of Σσ².
    pub k90: usize,
    /// Fewest components holding 99 % of Σσ².
    pub k99: usize,
    /// exp(−Σ p log p), p_k = σ_k / Σσ.
    pub effective_rank: f64,
    /// Σσ² / σ₁².
    pub stable_rank: f64,
    /// Singular values of the learned interaction M = W_Q W_Kᵀ (d values,
    /// non-increasing; null without weights), for plots beside `spectrum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spectrum_learned: Option<Vec<f64>>,
    /// k90 of the learned interaction M = W_Q W_Kᵀ (null without weights).
    pub k90_learned: Option<usize>,
    /// Effective rank of M (null without weights).
    pub effective_rank_learned: Option<f64>,
    /// effective_rank_learned / effective_rank (null without weights or when effective_rank = 0).
    pub spectral_gap: Option<f64>,
    /// k90_learned / k90 (null without weights or when k90 = 0): how many
    /// more directions the learned interaction spreads 90 % of its energy
    /// over than the field does (the companion paper's "gap").
    #[serde(default)]
    pub k90_gap: Option<f64>,

    // §4 delocalization
    /// (Σc)² / (n Σc²) ∈ [1/n, 1]; 1 when every c_j = 0.
    pub participation_ratio: f64,
    /// Share of Σc held by the top max(1, ⌊n/100⌋) keys.
    pub top1pct_share: f64,
    /// argmax_j c_j (first on ties).
    pub argmax_key: usize,

    // §5 incoherence
    /// (n / r)·max_j ℓ_j of B = [K, 1].
    pub key_coherence: f64,
    /// Spearman correlation of c_j and ℓ_j (null when either is constant or n < 2).
    pub energy_leverage_spearman: Option<f64>,

    /// Key energies c_j (only with `Params::keep_key_energy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_energy: Option<Vec<f64>>,
    /// Leverage scores ℓ_j of [K, 1] (only with `Params::keep_leverage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<Vec<f64>>,
}
