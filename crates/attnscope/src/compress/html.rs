//! compress.html: one self-contained page (inline SVG and CSS, no scripts):
//! the table, mean KL / top-1 / loss change against r per basis, and the
//! per-layer key-cache losses.

use std::fmt::Write;

use std::path::Path;

use super::table::{ByR, Table};
use super::{BasisKind, Experiment, Record};
use crate::report::ModelInfo;
use crate::svg::{esc, fmt, LinePlot, Series};

fn colour(k: BasisKind) -> &'static str {
    match k {
        BasisKind::Data => "#1b9e77",
        BasisKind::Weights => "#d95f02",
        BasisKind::Random => "#7570b3",
    }
}

/// Curves of compress: log axes drop y below 1e-10 (rounding level: exact
/// rebuilds); every point is marked.
/// One curve: (legend label, colour, (x, y) points).
type Curve<'a> = (String, &'a str, Vec<(f64, f64)>);

fn plot(title: &str, xlabel: &str, series: &[Curve], log_x: bool, log_y: bool) -> String {
    let series: Vec<Series> =
        series.iter().map(|(l, c, p)| Series { label: l.clone(), colour: c.to_string(), points: p.clone() }).collect();
    LinePlot { log_x, log_y, y_floor: 1e-10, markers: true, ..LinePlot::new(title, xlabel, &series) }.render()
}

/// What the page shows: the run's settings, the table and the records.
pub struct Page<'a> {
    pub info: &'a ModelInfo,
    pub calib: &'a Path,
    pub eval: &'a Path,
    pub ctx: usize,
    pub loss_full: f64,
    pub table: &'a Table,
    pub records: &'a [Record],
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let (info, t) = (self.info, self.table);
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
            esc(&self.calib.display().to_string()),
            esc(&self.eval.display().to_string()),
            self.ctx,
            fmt(self.loss_full)
        );
        s.push_str("<h2>Table</h2><pre>");
        s.push_str(&esc(&t.text()));
        s.push_str("</pre>");
        let curve = |y: fn(&ByR, BasisKind) -> f64, x_ratio: bool| -> Vec<Curve<'static>> {
            BasisKind::ALL
                .iter()
                .map(|&k| {
                    let pts = t.by_r.iter().map(|b| (if x_ratio { b.ratio } else { b.r as f64 }, y(b, k))).collect();
                    (k.name().to_string(), colour(k), pts)
                })
                .collect()
        };
        s.push_str("<h2>Attention pattern rebuilt from the rank-r field (mean over heads)</h2>");
        s.push_str(&plot(
            "mean row KL(P‖P_r), nats (log scales; values < 1e-10, exact rebuilds, omitted)",
            "r (log scale)",
            &curve(|b, k| *b.mean_kl.get(k), false),
            true,
            true,
        ));
        s.push_str(&plot("top-1 agreement", "r (log scale)", &curve(|b, k| *b.mean_top1.get(k), false), true, false));
        s.push_str("<h2>Key cache: every layer's keys at rank r</h2>");
        let abs: Vec<Curve> =
            curve(loss_delta, true).into_iter().map(|(l, c, p)| (l, c, p.into_iter().map(|(x, y)| (x, y.abs())).collect())).collect();
        s.push_str(&plot("|relative change of next-token loss| (log scales; zeros omitted)", "ratio r/d (log scale)", &abs, true, true));
        s.push_str(&plot("relative change of next-token loss", "ratio r/d", &curve(loss_delta, true), false, false));
        // Per-layer runs.
        let per_layer = |k: BasisKind| self.records.iter().filter(move |x| x.experiment == Experiment::Keys && x.basis == k);
        let mut series: Vec<Curve> = Vec::new();
        let dashes = ["#1b9e77", "#66a61e", "#a6761d", "#e7298a", "#e6ab02", "#666666", "#d95f02", "#7570b3", "#1f78b4"];
        for k in BasisKind::ALL {
            let mut ranks: Vec<usize> = per_layer(k).filter(|x| x.layer.is_some()).map(|x| x.r).collect();
            ranks.sort_unstable();
            ranks.dedup();
            for r in ranks {
                let pts = per_layer(k).filter(|x| x.r == r).filter_map(|x| Some((x.layer? as f64, x.loss_delta?))).collect();
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
}

fn loss_delta(b: &ByR, k: BasisKind) -> f64 {
    b.loss_delta.get(k).unwrap_or(f64::NAN)
}
