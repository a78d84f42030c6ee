//! The "paper table" section of report.html: this model's k90 of E, k90 of
//! W_Q W_Kᵀ, the two gaps and the numerical rank, beside the values of the
//! companion paper (arXiv 2604.04384), and where this model sits.

use std::fmt::Write;

use serde_json::Value;

use super::ModelInfo;
use crate::svg::{esc, fmt};

/// The companion paper's ranges across GPT-2 124M, LLaMA 1B and 3B, Qwen 3B
/// and Mistral 7B: (measure, what it is, low, high).
pub const PUBLISHED: [(&str, &str, f64, f64); 3] =
    [("k90", "k90 of E", 2.0, 11.0), ("k90_learned", "k90 of W_Q W_Kᵀ", 38.0, 75.0), ("k90_gap", "gap k90_learned / k90", 5.0, 25.0)];

/// Where [min, max] (with its median) lies against the published [lo, hi].
pub fn placement(min: f64, median: f64, max: f64, lo: f64, hi: f64) -> String {
    if !(min.is_finite() && max.is_finite()) {
        return "not measured (no weights)".into();
    }
    if min >= lo && max <= hi {
        "inside: the whole range".into()
    } else if max < lo {
        format!("outside: below (all ≤ {})", fmt(max))
    } else if min > hi {
        format!("outside: above (all ≥ {})", fmt(min))
    } else if median >= lo && median <= hi {
        let side = match (min < lo, max > hi) {
            (true, true) => "reaches past both ends",
            (true, false) => "reaches below",
            _ => "reaches above",
        };
        format!("median inside; the range {side}")
    } else if median < lo {
        "median below; the range overlaps".into()
    } else {
        "median above; the range overlaps".into()
    }
}

fn stat(summary: &Value, m: &str, key: &str) -> f64 {
    summary["per_model"][m]["all_runs"][key].as_f64().unwrap_or(f64::NAN)
}

/// The `<section id="paper-table">`.
pub fn render(info: &ModelInfo, summary: &Value) -> String {
    let mut s = String::from("<section id=\"paper-table\"><h2>This model beside the companion paper</h2>");
    let _ = write!(
        s,
        "<p>Every value is over all heads × runs of this report (median, and min – max). Published: arXiv 2604.04384, \
         across GPT-2 124M, LLaMA 1B and 3B, Qwen 3B and Mistral 7B. {} has d_head = {}, so k90 of W_Q W_Kᵀ cannot pass {}.</p>",
        esc(info.source.rsplit('/').next().unwrap_or(&info.source)),
        info.head_dim,
        info.head_dim
    );
    s.push_str("<table><tr><th>measure</th><th>this model: median</th><th>min – max</th><th>p10 – p90</th><th>paper</th><th>where this model sits</th></tr>");
    let mut verdicts = Vec::new();
    for (m, what, lo, hi) in PUBLISHED {
        let (min, med, max) = (stat(summary, m, "min"), stat(summary, m, "median"), stat(summary, m, "max"));
        let place = placement(min, med, max, lo, hi);
        let unit = if m == "k90_gap" { "×" } else { "" };
        let _ = write!(
            s,
            "<tr data-measure=\"{m}\"><th>{what} (<code>{m}</code>)</th><td>{}{unit}</td><td>{} – {}</td><td>{} – {}</td><td>{}–{}{unit}</td><td class=\"verdict\">{}</td></tr>",
            fmt(med), fmt(min), fmt(max), fmt(stat(summary, m, "p10")), fmt(stat(summary, m, "p90")), fmt(lo), fmt(hi), esc(&place)
        );
        verdicts.push(format!("{what}: median {}{unit} against {}–{}{unit}, {place}", fmt(med), fmt(lo), fmt(hi)));
    }
    let (gmin, gmed, gmax) =
        (stat(summary, "spectral_gap", "min"), stat(summary, "spectral_gap", "median"), stat(summary, "spectral_gap", "max"));
    let _ = write!(
        s,
        "<tr data-measure=\"spectral_gap\"><th>gap of effective ranks (<code>spectral_gap</code>)</th><td>{}×</td><td>{} – {}</td><td>{} – {}</td><td>—</td><td>a different ratio from the paper's \"5–25×\": see docs/definitions.md</td></tr>",
        fmt(gmed), fmt(gmin), fmt(gmax), fmt(stat(summary, "spectral_gap", "p10")), fmt(stat(summary, "spectral_gap", "p90"))
    );
    // Numerical rank against d + 1.
    let counts = summary["checks"]["numerical_rank_counts"].as_object().cloned().unwrap_or_default();
    let total: u64 = counts.values().filter_map(Value::as_u64).sum();
    let bound = info.head_dim + 1;
    let at_bound = counts.get(&bound.to_string()).and_then(Value::as_u64).unwrap_or(0);
    let above = counts.iter().filter(|(k, _)| k.parse::<usize>().is_ok_and(|r| r > bound)).filter_map(|(_, v)| v.as_u64()).sum::<u64>();
    let _ = write!(
        s,
        "<tr data-measure=\"numerical_rank\"><th>numerical rank vs d + 1</th><td>{}</td><td>{} – {}</td><td colspan=\"2\">{at_bound} of {total} head-runs at d + 1 = {bound}; {above} above</td><td>{}</td></tr></table>",
        fmt(stat(summary, "numerical_rank", "median")),
        fmt(stat(summary, "numerical_rank", "min")),
        fmt(stat(summary, "numerical_rank", "max")),
        if above == 0 { "the rank bound holds for every head" } else { "the rank bound fails for some heads (see the invariants above)" }
    );
    s.push_str("<p class=\"verdicts\"><b>In short.</b> ");
    s.push_str(&esc(&verdicts.join(". ")));
    s.push_str(".</p></section>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_says_inside_outside_and_partly() {
        assert_eq!(placement(3.0, 5.0, 9.0, 2.0, 11.0), "inside: the whole range");
        assert_eq!(placement(3.0, 9.0, 16.0, 2.0, 11.0), "median inside; the range reaches above");
        assert_eq!(placement(1.0, 9.0, 16.0, 2.0, 11.0), "median inside; the range reaches past both ends");
        assert_eq!(placement(1.0, 1.5, 4.0, 5.0, 25.0), "outside: below (all ≤ 4)");
        assert_eq!(placement(30.0, 40.0, 50.0, 5.0, 25.0), "outside: above (all ≥ 30)");
        assert_eq!(placement(1.0, 3.0, 6.0, 5.0, 25.0), "median below; the range overlaps");
        assert!(placement(f64::NAN, f64::NAN, f64::NAN, 5.0, 25.0).starts_with("not measured"));
    }
}
