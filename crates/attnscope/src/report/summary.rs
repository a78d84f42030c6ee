//! `report.json` → `summary`: the mechanism checks over every head, and how
//! much each measure varies across texts and context lengths, per head and
//! per model (docs/definitions.md, "Invariance summary"). It reads the typed
//! head records ([`Measure::value`]), never their JSON.
//!
//! Spreads are max − min. `across_texts` is the median over context lengths
//! of the spread over texts at that length; `across_ctx` the median over
//! texts of the spread over context lengths.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::RunRecord;
use crate::observer::HeadRecord;
use crate::stats::{self, median, quantile};

/// A measure summarised for invariance, read from a typed head record.
/// Ordered by name, so that maps keyed by it list measures as report.json
/// always has (alphabetically).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    NumericalRank,
    K90,
    K99,
    EffectiveRank,
    StableRank,
    K90Learned,
    SpectralGap,
    K90Gap,
    ParticipationRatio,
    Top1pctShare,
    KeyCoherence,
    EnergyLeverageSpearman,
}

impl Measure {
    /// Every measure, in report order.
    pub const ALL: [Measure; 12] = [
        Measure::NumericalRank,
        Measure::K90,
        Measure::K99,
        Measure::EffectiveRank,
        Measure::StableRank,
        Measure::K90Learned,
        Measure::SpectralGap,
        Measure::K90Gap,
        Measure::ParticipationRatio,
        Measure::Top1pctShare,
        Measure::KeyCoherence,
        Measure::EnergyLeverageSpearman,
    ];

    /// The column / JSON name (docs/definitions.md).
    pub fn name(self) -> &'static str {
        match self {
            Measure::NumericalRank => "numerical_rank",
            Measure::K90 => "k90",
            Measure::K99 => "k99",
            Measure::EffectiveRank => "effective_rank",
            Measure::StableRank => "stable_rank",
            Measure::K90Learned => "k90_learned",
            Measure::SpectralGap => "spectral_gap",
            Measure::K90Gap => "k90_gap",
            Measure::ParticipationRatio => "participation_ratio",
            Measure::Top1pctShare => "top1pct_share",
            Measure::KeyCoherence => "key_coherence",
            Measure::EnergyLeverageSpearman => "energy_leverage_spearman",
        }
    }

    /// The head's value; `None` where the measure is undefined (no weights,
    /// a constant key energy, …).
    pub fn value(self, h: &HeadRecord) -> Option<f64> {
        let f = &h.field;
        match self {
            Measure::NumericalRank => Some(f.numerical_rank as f64),
            Measure::K90 => Some(f.k90 as f64),
            Measure::K99 => Some(f.k99 as f64),
            Measure::EffectiveRank => Some(f.effective_rank),
            Measure::StableRank => Some(f.stable_rank),
            Measure::K90Learned => f.k90_learned.map(|k| k as f64),
            Measure::SpectralGap => f.spectral_gap,
            Measure::K90Gap => f.k90_gap,
            Measure::ParticipationRatio => Some(f.participation_ratio),
            Measure::Top1pctShare => Some(f.top1pct_share),
            Measure::KeyCoherence => Some(f.key_coherence),
            Measure::EnergyLeverageSpearman => f.energy_leverage_spearman,
        }
    }

    /// [`Self::value`], NaN when undefined (every statistic below skips
    /// non-finite values).
    fn of(self, h: &HeadRecord) -> f64 {
        self.value(h).unwrap_or(f64::NAN)
    }
}

impl Ord for Measure {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Measure {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Mechanism-check tolerances (docs/definitions.md explains them).
pub const ZERO_SUM_TOL: f64 = 1e-10;
/// The model's softmax runs in f32; its log-probabilities carry ~1e-6
/// relative rounding, so the two fields agree to about 1e-4 nats on logits
/// of size 10–100.
pub const SHIFT_TOL: f64 = 1e-3;

/// Median, range and 10 %/90 % quantiles of `v` (sorted, finite); null when empty.
fn distribution(v: &[f64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    json!({
        "median": quantile(v, 0.5), "min": v[0], "max": v[v.len() - 1],
        "p10": quantile(v, 0.1), "p90": quantile(v, 0.9),
    })
}

fn spread(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return f64::NAN;
    }
    f.iter().copied().fold(f64::MIN, f64::max) - f.iter().copied().fold(f64::MAX, f64::min)
}

/// Spread over texts (median over ctx) and over ctx (median over texts) of
/// values keyed by (text, ctx).
fn invariance(values: &BTreeMap<(String, usize), f64>) -> (f64, f64) {
    let mut by_ctx: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut by_text: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for ((text, ctx), v) in values {
        by_ctx.entry(*ctx).or_default().push(*v);
        by_text.entry(text).or_default().push(*v);
    }
    let across_texts = median(&by_ctx.values().filter(|v| v.len() > 1).map(|v| spread(v)).collect::<Vec<_>>());
    let across_ctx = median(&by_text.values().filter(|v| v.len() > 1).map(|v| spread(v)).collect::<Vec<_>>());
    (across_texts, across_ctx)
}

/// (text, ctx) → value.
type ByRun = BTreeMap<(String, usize), f64>;

pub fn summarise(runs: &[RunRecord]) -> Value {
    // (layer, head) → measure → (text, ctx) → value
    let mut per_head: BTreeMap<(usize, usize), BTreeMap<Measure, ByRun>> = BTreeMap::new();
    // measure → (text, ctx) → median over the run's heads
    let mut run_medians: BTreeMap<Measure, BTreeMap<(String, usize), f64>> = BTreeMap::new();
    let mut per_run_model = Vec::new();
    let mut failures = Vec::new();
    let (mut heads_checked, mut zero_sum_max, mut shift_max) = (0usize, 0f64, 0f64);
    let mut ranks: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs {
        let key = (run.text.clone(), run.ctx);
        let mut run_vals: BTreeMap<Measure, Vec<f64>> = BTreeMap::new();
        for h in &run.heads {
            for m in Measure::ALL {
                let x = m.of(h);
                per_head.entry((h.layer, h.head)).or_default().entry(m).or_default().insert(key.clone(), x);
                run_vals.entry(m).or_default().push(x);
            }
            heads_checked += 1;
            let f = &h.field;
            zero_sum_max = zero_sum_max.max(f.zero_sum_residual);
            shift_max = shift_max.max(f.shift_consistency);
            *ranks.entry(f.numerical_rank.to_string()).or_default() += 1;
            let mut why = Vec::new();
            // `!(x <= tol)`: a NaN residual fails too.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(f.zero_sum_residual <= ZERO_SUM_TOL) {
                why.push(format!("zero_sum_residual {:.3e} > {ZERO_SUM_TOL:e}", f.zero_sum_residual));
            }
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(f.shift_consistency <= SHIFT_TOL) {
                why.push(format!("shift_consistency {:.3e} > {SHIFT_TOL:e}", f.shift_consistency));
            }
            if f.rank_bound_applicable && !f.rank_bound_holds {
                why.push(format!("numerical_rank {} > rank_bound {}", f.numerical_rank, f.rank_bound));
            }
            if !why.is_empty() {
                failures.push(json!({"text": run.text, "ctx": run.ctx, "layer": h.layer, "head": h.head, "why": why.join("; ")}));
            }
        }
        let mut dist = serde_json::Map::new();
        for (m, v) in run_vals {
            let sorted = stats::sorted_finite(&v);
            run_medians.entry(m).or_default().insert(key.clone(), quantile(&sorted, 0.5));
            dist.insert(m.name().to_string(), distribution(&sorted));
        }
        per_run_model.push(json!({"text": run.text, "ctx": run.ctx, "distribution": dist}));
    }
    // Per model: the per-run medians, and how they move across texts / ctx.
    let mut per_model = serde_json::Map::new();
    for m in Measure::ALL {
        let medians = run_medians.remove(&m).unwrap_or_default();
        let all: Vec<f64> = runs.iter().flat_map(|r| r.heads.iter().map(|h| m.of(h))).collect();
        let (across_texts, across_ctx) = invariance(&medians);
        per_model.insert(
            m.name().to_string(),
            json!({
                "all_runs": distribution(&stats::sorted_finite(&all)),
                "median_spread_across_runs": spread(&medians.values().copied().collect::<Vec<_>>()),
                "median_spread_across_texts": across_texts,
                "median_spread_across_ctx": across_ctx,
            }),
        );
    }
    let heads: Vec<Value> = per_head
        .iter()
        .map(|((layer, head), measures)| {
            let mut o = serde_json::Map::new();
            o.insert("layer".into(), json!(layer));
            o.insert("head".into(), json!(head));
            for (m, vals) in measures {
                let v: Vec<f64> = vals.values().copied().collect();
                let (across_texts, across_ctx) = invariance(vals);
                o.insert(
                    m.name().to_string(),
                    json!({"median": median(&v), "spread": spread(&v), "spread_across_texts": across_texts, "spread_across_ctx": across_ctx}),
                );
            }
            Value::Object(o)
        })
        .collect();
    json!({
        "checks": {
            "heads_checked": heads_checked,
            "all_pass": failures.is_empty(),
            "zero_sum_residual_max": zero_sum_max,
            "zero_sum_tolerance": ZERO_SUM_TOL,
            "shift_consistency_max": shift_max,
            "shift_consistency_tolerance": SHIFT_TOL,
            "numerical_rank_counts": ranks,
            "failures": failures,
        },
        "per_model": per_model,
        "per_run": per_run_model,
        "per_head": heads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_spreads() {
        assert_eq!(spread(&[1.0, 4.0, f64::NAN, 2.0]), 3.0);
        let mut m = BTreeMap::new();
        m.insert(("a".to_string(), 1), 1.0);
        m.insert(("b".to_string(), 1), 3.0);
        m.insert(("a".to_string(), 2), 2.0);
        m.insert(("b".to_string(), 2), 2.5);
        let (t, c) = invariance(&m);
        assert_eq!(t, (2.0 + 0.5) / 2.0);
        assert_eq!(c, (1.0 + 0.5) / 2.0);
    }
}
