//! `report.json` → `summary`: the mechanism checks over every head, and how
//! much each measure varies across texts and context lengths (SPEC,
//! "Robustness of the results"), per head and per model.
//!
//! Spreads are max − min. `across_texts` is the median over context lengths
//! of the spread over texts at that length; `across_ctx` the median over
//! texts of the spread over context lengths.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{head_json, RunRecord};

/// Measures summarised for invariance.
pub const MEASURES: &[&str] = &[
    "numerical_rank",
    "k90",
    "k99",
    "effective_rank",
    "stable_rank",
    "k90_learned",
    "spectral_gap",
    "k90_gap",
    "participation_ratio",
    "top1pct_share",
    "key_coherence",
    "energy_leverage_spearman",
];

/// Mechanism-check tolerances (docs/definitions.md explains them).
pub const ZERO_SUM_TOL: f64 = 1e-10;
/// The model's softmax runs in f32; its log-probabilities carry ~1e-6
/// relative rounding, so the two fields agree to about 1e-4 nats on logits
/// of size 10–100.
pub const SHIFT_TOL: f64 = 1e-3;

pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn stats(mut v: Vec<f64>) -> Value {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Value::Null;
    }
    json!({
        "median": quantile(&v, 0.5), "min": v[0], "max": v[v.len() - 1],
        "p10": quantile(&v, 0.1), "p90": quantile(&v, 0.9),
    })
}

fn spread(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return f64::NAN;
    }
    f.iter().copied().fold(f64::MIN, f64::max) - f.iter().copied().fold(f64::MAX, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
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
    let across_texts = median(by_ctx.values().filter(|v| v.len() > 1).map(|v| spread(v)).collect());
    let across_ctx = median(by_text.values().filter(|v| v.len() > 1).map(|v| spread(v)).collect());
    (across_texts, across_ctx)
}

fn num(v: &Value, key: &str) -> f64 {
    match v.get(key) {
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(x) => x.as_f64().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

pub fn summarise(runs: &[RunRecord]) -> Value {
    // (layer, head) → measure → (text, ctx) → value
    let mut per_head: BTreeMap<(usize, usize), BTreeMap<&str, BTreeMap<(String, usize), f64>>> = BTreeMap::new();
    let mut per_run_model = Vec::new();
    let mut failures = Vec::new();
    let (mut heads_checked, mut zero_sum_max, mut shift_max) = (0usize, 0f64, 0f64);
    let mut ranks: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs {
        let key = (run.text.clone(), run.ctx);
        let mut run_vals: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for h in &run.heads {
            let v = head_json(h);
            for m in MEASURES {
                let x = num(&v, m);
                per_head.entry((h.layer, h.head)).or_default().entry(m).or_default().insert(key.clone(), x);
                run_vals.entry(m).or_default().push(x);
            }
            heads_checked += 1;
            let f = &h.field;
            zero_sum_max = zero_sum_max.max(f.zero_sum_residual);
            shift_max = shift_max.max(f.shift_consistency);
            *ranks.entry(f.numerical_rank.to_string()).or_default() += 1;
            let mut why = Vec::new();
            if !(f.zero_sum_residual <= ZERO_SUM_TOL) {
                why.push(format!("zero_sum_residual {:.3e} > {ZERO_SUM_TOL:e}", f.zero_sum_residual));
            }
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
        let dist: serde_json::Map<String, Value> = run_vals.into_iter().map(|(m, v)| (m.to_string(), stats(v))).collect();
        per_run_model.push(json!({"text": run.text, "ctx": run.ctx, "distribution": dist}));
    }
    // Per model: the per-run medians, and how they move across texts / ctx.
    let mut per_model = serde_json::Map::new();
    for m in MEASURES {
        let medians: BTreeMap<(String, usize), f64> = per_run_model
            .iter()
            .map(|r| {
                let med = r["distribution"][*m]["median"].as_f64().unwrap_or(f64::NAN);
                ((r["text"].as_str().unwrap_or("").to_string(), r["ctx"].as_u64().unwrap_or(0) as usize), med)
            })
            .collect();
        let all: Vec<f64> = runs.iter().flat_map(|r| r.heads.iter().map(|h| num(&head_json(h), m))).collect();
        let (across_texts, across_ctx) = invariance(&medians);
        per_model.insert(
            m.to_string(),
            json!({
                "all_runs": stats(all),
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
                    m.to_string(),
                    json!({"median": median(v.clone()), "spread": spread(&v), "spread_across_texts": across_texts, "spread_across_ctx": across_ctx}),
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
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 3.0], 0.5), 2.0);
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
