//! report.html: one self-contained page (inline SVG, CSS and script, no
//! network): mechanism checks, the paper table, layer × head heat maps with
//! measure / run selectors and colour scales, the per-head panel
//! (`#head-panel`, opened by a click or by the URL fragment `#head=L3H2`),
//! spectra per layer, key-energy profiles, and the invariance table.
//! Static parts are rendered here; the heat maps and the panel are drawn by
//! report.js from the data of [`super::embed::page_data`].

use std::fmt::Write;

use serde_json::Value;

use super::summary::Measure;
use super::{embed, paper, ModelInfo, RunRecord};
use crate::svg::{esc, fmt, ramp, LinePlot, Series};

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1240px;color:#222}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}\
figcaption{font-size:13px;margin-bottom:4px;font-weight:bold}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
.ok{background:#e6f4ea;padding:8px}.bad{background:#fde7e9;padding:8px}code{background:#f3f3f3}\
.controls{font-size:12px;margin-bottom:4px}.controls div{margin-bottom:2px}.controls select{font-size:12px;width:170px}.readout{font-size:11px;color:#444;min-height:2.6em;max-width:240px}\
svg.heatmap rect.cell{cursor:pointer}svg.heatmap rect.cell:hover{stroke:#000;stroke-width:1}.legend-label{font-size:10px}.axis-label{font-size:11px;fill:#333}\
.plot-title{font-size:12px;font-weight:bold}.vlabel{font-size:11px;font-weight:bold}.key-label{font-size:10px;fill:#a00}\
#head-panel{border:2px solid #e8003d;border-radius:6px;padding:10px 14px;margin:1em 0 2em}#head-panel .panel-head h2{display:inline;margin-right:.6em}\
#head-panel .sub{color:#555;margin-right:1em}#head-panel .permalink{margin-left:1em;font-size:12px}.panel-grid{display:flex;flex-wrap:wrap;gap:8px 18px;margin-top:10px}\
.panel-fig{margin:0}.panel-fig.wide{flex-basis:100%}.note{font-size:11px;color:#555;max-width:900px}.borrowed{color:#8a4b00}\
table.measures td,table.measures th{padding:1px 6px}#paper-table td.verdict{text-align:left}.verdicts{max-width:1000px}\
#tip{position:absolute;display:none;background:#fff;border:1px solid #888;padding:3px 6px;font-size:12px;pointer-events:none;z-index:10;box-shadow:0 1px 4px rgba(0,0,0,.2);max-width:420px}";

/// JSON for a `<script type="application/json">`: `<` escaped so that no
/// string in it (a token such as `</script>`) can end the element.
fn script_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into()).replace('<', "\\u003c")
}

/// Values against their index (0, 1, …); each series is (label, colour, values).
fn line_plot(title: &str, xlabel: &str, series: &[(String, String, Vec<f64>)], log_y: bool) -> String {
    let series: Vec<Series> = series
        .iter()
        .map(|(l, c, v)| Series {
            label: l.clone(),
            colour: c.clone(),
            points: v.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
        })
        .collect();
    LinePlot { log_y, ..LinePlot::new(title, xlabel, &series) }.render()
}

/// Mean over heads of σ_k/σ₁, per layer, for one run.
fn layer_spectra(run: &RunRecord, learned: bool) -> Vec<(String, String, Vec<f64>)> {
    let n_layers = run.heads.iter().map(|h| h.layer + 1).max().unwrap_or(0);
    let mut out = Vec::new();
    for layer in 0..n_layers {
        let specs: Vec<&Vec<f64>> = run
            .heads
            .iter()
            .filter(|h| h.layer == layer)
            .filter_map(|h| if learned { h.field.spectrum_learned.as_ref() } else { Some(&h.field.spectrum) })
            .collect();
        let len = specs.iter().map(|s| s.len()).max().unwrap_or(0);
        if len == 0 {
            continue;
        }
        let mean: Vec<f64> = (0..len)
            .map(|k| {
                let v: Vec<f64> = specs.iter().filter(|s| s[0] > 0.0).map(|s| s.get(k).copied().unwrap_or(0.0) / s[0]).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            })
            .collect();
        out.push((format!("layer {layer}"), ramp(layer as f64 / n_layers.max(2) as f64 - 0.0), mean));
    }
    out
}

pub fn render(info: &ModelInfo, runs: &[RunRecord], summary: &Value) -> String {
    let mut s =
        format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>attnscope report</title><style>{STYLE}</style></head><body>");
    let _ = write!(
        s,
        "<h1>attnscope report</h1><p><b>{}</b> — family <code>{}</code>, {} layers × {} heads ({} KV heads), d_head {}, d_model {}, logit transform {}, window {}. {} runs. Definitions: docs/definitions.md.</p>",
        esc(&info.source), info.family, info.n_layers, info.n_heads, info.n_kv_heads, info.head_dim, info.d_model, info.logit_transform,
        info.window.map_or("none".into(), |w| w.to_string()), runs.len()
    );
    // Mechanism checks.
    let checks = &summary["checks"];
    let failures = checks["failures"].as_array().cloned().unwrap_or_default();
    let _ = write!(
        s,
        "<h2>Mechanism invariants</h2><div class=\"{}\">{} of {} head-runs pass: zero_sum_residual ≤ {:e} (max {}), shift_consistency ≤ {:e} (max {}), numerical_rank ≤ rank_bound. numerical_rank counts: {}.</div>",
        if failures.is_empty() { "ok" } else { "bad" },
        checks["heads_checked"].as_u64().unwrap_or(0) as usize - failures.len(),
        checks["heads_checked"],
        checks["zero_sum_tolerance"].as_f64().unwrap_or(0.0),
        fmt(checks["zero_sum_residual_max"].as_f64().unwrap_or(f64::NAN)),
        checks["shift_consistency_tolerance"].as_f64().unwrap_or(0.0),
        fmt(checks["shift_consistency_max"].as_f64().unwrap_or(f64::NAN)),
        esc(&checks["numerical_rank_counts"].to_string())
    );
    if !failures.is_empty() {
        s.push_str("<ul>");
        for f in failures.iter().take(30) {
            let _ = write!(
                s,
                "<li>{} @{} layer {} head {}: {}</li>",
                esc(f["text"].as_str().unwrap_or("")),
                f["ctx"],
                f["layer"],
                f["head"],
                esc(f["why"].as_str().unwrap_or(""))
            );
        }
        s.push_str("</ul>");
    }
    s.push_str(&paper::render(info, summary));
    // Heat maps and the head panel, drawn by report.js.
    s.push_str("<h2>Layer × head</h2><p class=\"note\">Each map: one measure for every head (rows: layers, columns: heads), for one run or the median over runs. \
Hover a cell for its value; click it to open that head below (or open <code>report.html#head=L3H2</code>).</p>\
<noscript><p class=\"bad\">The heat maps and the head panel need JavaScript.</p></noscript><div class=\"heatmaps\">");
    for m in ["k90", "participation_ratio", "key_coherence"] {
        let _ = write!(s, "<figure class=\"heatmap-figure\" data-measure=\"{m}\"></figure>");
    }
    s.push_str("</div><section id=\"head-panel\" hidden></section>");
    // Spectra and profiles for the longest run of the first text.
    if let Some(run) = runs.iter().filter(|r| r.text == runs[0].text).max_by_key(|r| r.ctx) {
        let _ = write!(s, "<h2>Singular spectra ({} @{})</h2>", esc(&run.text), run.ctx);
        s.push_str(&line_plot("energy field E: mean σ_k/σ₁ per layer", "k", &layer_spectra(run, false), true));
        let learned = layer_spectra(run, true);
        if !learned.is_empty() {
            s.push_str(&line_plot("learned interaction W_Q W_Kᵀ: mean σ_k/σ₁ per layer", "k", &learned, true));
        }
        let series: Vec<(String, String, Vec<f64>)> = run
            .profiles
            .iter()
            .zip(["#1b9e77", "#d95f02"])
            .map(|(p, c)| (format!("L{} H{} (PR {:.2})", p.layer, p.head, p.participation_ratio), c.to_string(), p.key_energy.clone()))
            .collect();
        s.push_str("<h2>Key-energy profiles c_j</h2>");
        s.push_str(&line_plot("most vs least delocalized head (log c_j)", "key position j", &series, true));
    }
    // Invariance table.
    s.push_str("<h2>Invariance across texts and context lengths</h2><table><tr><th>measure</th>");
    let per_run = summary["per_run"].as_array().cloned().unwrap_or_default();
    for r in &per_run {
        let name = r["text"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
        let _ = write!(s, "<th>{}@{}</th>", esc(&name), r["ctx"]);
    }
    s.push_str("<th>spread across texts</th><th>spread across ctx</th></tr>");
    for m in Measure::ALL.map(Measure::name) {
        let _ = write!(s, "<tr><th>{m}</th>");
        for r in &per_run {
            let _ = write!(s, "<td>{}</td>", fmt(r["distribution"][m]["median"].as_f64().unwrap_or(f64::NAN)));
        }
        let pm = &summary["per_model"][m];
        let _ = write!(
            s,
            "<td>{}</td><td>{}</td></tr>",
            fmt(pm["median_spread_across_texts"].as_f64().unwrap_or(f64::NAN)),
            fmt(pm["median_spread_across_ctx"].as_f64().unwrap_or(f64::NAN))
        );
    }
    s.push_str("</table><p>Cells: the median over heads. Spreads: max − min of those medians, over texts at one ctx (median over ctx) and over ctx for one text (median over texts).</p>");
    let _ = write!(
        s,
        "<script type=\"application/json\" id=\"attnscope-data\">{}</script><script>{}</script></body></html>",
        script_json(&embed::page_data(info, runs)),
        include_str!("report.js")
    );
    s
}
