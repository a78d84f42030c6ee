//! compress.html: one self-contained page (inline SVG and CSS, no scripts):
//! the table, mean KL / top-1 / loss change against r per basis, and the
//! per-layer key-cache losses.

use std::fmt::Write;

use serde_json::Value;

use crate::svg::{esc, fmt};
use super::BasisKind;
use crate::report::ModelInfo;

fn colour(k: BasisKind) -> &'static str {
    match k {
        BasisKind::Data => "#1b9e77",
        BasisKind::Weights => "#d95f02",
        BasisKind::Random => "#7570b3",
    }
}

/// Polylines of (x, y) points, legend on the right. Log axes drop values ≤ 0;
/// a log y axis also drops values below 1e-10 (rounding level: exact rebuilds).
fn plot(title: &str, xlabel: &str, series: &[(String, &str, Vec<(f64, f64)>)], log_x: bool, log_y: bool) -> String {
    let (pw, h, m) = (520.0, 300.0, 50.0);
    let w = pw + 110.0;
    let ty = |v: f64| if log_y { v.log10() } else { v };
    let tx = |v: f64| if log_x { v.log2() } else { v };
    let ok = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > 1e-10) && (!log_x || p.0 > 0.0);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().filter(ok).map(|p| (tx(p.0), ty(p.1)))).collect();
    let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| pts.iter().map(sel).fold(init, f);
    let (xlo, xhi) = (fold(f64::min, f64::INFINITY, |p| p.0), fold(f64::max, f64::NEG_INFINITY, |p| p.0));
    let (ylo, yhi) = (fold(f64::min, f64::INFINITY, |p| p.1), fold(f64::max, f64::NEG_INFINITY, |p| p.1));
    let (xlo, xhi) = if xhi > xlo { (xlo, xhi) } else { (xlo - 1.0, xlo + 1.0) };
    let (ylo, yhi) = if yhi > ylo { (ylo, yhi) } else if ylo.is_finite() { (ylo - 1.0, ylo + 1.0) } else { (0.0, 1.0) };
    let px = |x: f64| m + (pw - m - 10.0) * (x - xlo) / (xhi - xlo);
    let py = |y: f64| 10.0 + (h - m - 10.0) * (1.0 - (y - ylo) / (yhi - ylo));
    let mut s = format!(r#"<figure><figcaption>{}</figcaption><svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="10">"#, esc(title));
    let _ = write!(s, r##"<rect x="{m}" y="10" width="{}" height="{}" fill="none" stroke="#999"/>"##, pw - m - 10.0, h - m - 10.0);
    for (label, c, p) in series {
        let path: Vec<String> = p.iter().filter(ok).map(|q| format!("{:.1},{:.1}", px(tx(q.0)), py(ty(q.1)))).collect();
        let _ = write!(s, r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#, path.join(" "), esc(label));
        for q in p.iter().filter(ok) {
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{c}"><title>{}: {} → {}</title></circle>"#, px(tx(q.0)), py(ty(q.1)), esc(label), fmt(q.0), fmt(q.1));
        }
    }
    let snap = |v: f64| (v * 1e9).round() / 1e9;
    let xl = |v: f64| if log_x { fmt(snap(v.exp2())) } else { fmt(v) };
    let yl = |v: f64| if log_y { format!("{:.1e}", 10f64.powf(v)) } else { fmt(v) };
    let _ = write!(s, r#"<text x="2" y="16">{}</text><text x="2" y="{}">{}</text>"#, yl(yhi), h - m, yl(ylo));
    let _ = write!(
        s,
        r#"<text x="{}" y="{}">{}</text><text x="{m}" y="{}">{}</text><text x="{}" y="{}">{}</text>"#,
        w / 2.0 - 30.0,
        h - 8.0,
        esc(xlabel),
        h - m + 14.0,
        xl(xlo),
        pw - 40.0,
        h - m + 14.0,
        xl(xhi)
    );
    for (i, (label, c, _)) in series.iter().enumerate().take(20) {
        let _ = write!(s, r#"<text x="{}" y="{}" fill="{c}">{}</text>"#, pw + 5.0, 24.0 + 12.0 * i as f64, esc(label));
    }
    s.push_str("</svg></figure>");
    s
}

pub fn render(info: &ModelInfo, doc: &Value) -> String {
    let t = &doc["table"];
    let set = &doc["settings"];
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>attnscope compress</title><style>\
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}\
figcaption{font-size:13px;margin-bottom:4px}table{border-collapse:collapse;font-size:12px;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
pre{background:#f6f6f6;padding:8px;font-size:12px}code{background:#f3f3f3}</style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>attnscope compress</h1><p><b>{}</b> — {} layers × {} heads ({} KV heads), d_head {}. Calibration text <code>{}</code>, evaluation text <code>{}</code>, ctx {}. Full-model next-token loss on the evaluation text: {} nats. Definitions: docs/compress.md, docs/definitions.md §6.</p>",
        esc(&info.source),
        info.n_layers,
        info.n_heads,
        info.n_kv_heads,
        info.head_dim,
        esc(set["calib"].as_str().unwrap_or("")),
        esc(set["eval"].as_str().unwrap_or("")),
        set["ctx"],
        fmt(doc["loss_full"].as_f64().unwrap_or(f64::NAN))
    );
    s.push_str("<h2>Table</h2><pre>");
    s.push_str(&esc(&super::table_text(t)));
    s.push_str("</pre>");
    let by_r = t["by_r"].as_array().cloned().unwrap_or_default();
    let curve = |key: &str, x_ratio: bool| -> Vec<(String, &'static str, Vec<(f64, f64)>)> {
        BasisKind::ALL
            .iter()
            .map(|&k| {
                let pts = by_r
                    .iter()
                    .map(|b| {
                        let x = if x_ratio { b["ratio"].as_f64() } else { b["r"].as_f64() }.unwrap_or(f64::NAN);
                        (x, b[key][k.name()].as_f64().unwrap_or(f64::NAN))
                    })
                    .collect();
                (k.name().to_string(), colour(k), pts)
            })
            .collect()
    };
    s.push_str("<h2>Attention pattern rebuilt from the rank-r field (mean over heads)</h2>");
    s.push_str(&plot("mean row KL(P‖P_r), nats (log scales; values < 1e-10, exact rebuilds, omitted)", "r (log scale)", &curve("mean_kl", false), true, true));
    s.push_str(&plot("top-1 agreement", "r (log scale)", &curve("mean_top1", false), true, false));
    s.push_str("<h2>Key cache: every layer's keys at rank r</h2>");
    let abs: Vec<(String, &str, Vec<(f64, f64)>)> =
        curve("loss_delta", true).into_iter().map(|(l, c, p)| (l, c, p.into_iter().map(|(x, y)| (x, y.abs())).collect())).collect();
    s.push_str(&plot("|relative change of next-token loss| (log scales; zeros omitted)", "ratio r/d (log scale)", &abs, true, true));
    s.push_str(&plot("relative change of next-token loss", "ratio r/d", &curve("loss_delta", true), false, false));
    // Per-layer runs.
    let recs = doc["records"].as_array().cloned().unwrap_or_default();
    let mut series: Vec<(String, &str, Vec<(f64, f64)>)> = Vec::new();
    let dashes = ["#1b9e77", "#66a61e", "#a6761d", "#e7298a", "#e6ab02", "#666666", "#d95f02", "#7570b3", "#1f78b4"];
    for k in BasisKind::ALL {
        let mut ranks: Vec<u64> = recs
            .iter()
            .filter(|x| x["experiment"] == "keys" && !x["layer"].is_null() && x["basis"] == k.name())
            .filter_map(|x| x["r"].as_u64())
            .collect();
        ranks.sort_unstable();
        ranks.dedup();
        for r in ranks {
            let pts = recs
                .iter()
                .filter(|x| x["experiment"] == "keys" && x["basis"] == k.name() && x["r"].as_u64() == Some(r))
                .filter_map(|x| Some((x["layer"].as_f64()?, x["loss_delta"].as_f64()?)))
                .collect();
            let c = dashes[series.len() % dashes.len()];
            series.push((format!("{} r={r}", k.name()), c, pts));
        }
    }
    if !series.is_empty() {
        s.push_str("<h2>Key cache: one layer at a time</h2>");
        s.push_str(&plot("relative change of next-token loss, keys of one layer at rank r", "layer", &series, false, false));
    }
    s.push_str("<p>All numbers are in compress.json / compress.csv (one record per layer, head, basis, r).</p></body></html>");
    s
}
