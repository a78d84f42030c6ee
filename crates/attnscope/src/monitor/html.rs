//! monitor.html: one self-contained page (inline SVG, no scripts, no
//! network): per measure, one line per head over steps with alerts marked;
//! a layer × head heatmap of key_coherence per observed step; the alerts.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{Alert, HeadPoint, Measure, Rule, RuleState};
use crate::svg::{band_plot, esc, ramp};

fn colour(i: usize, n: usize) -> String {
    format!("hsl({:.0},70%,42%)", 360.0 * i as f64 / n.max(1) as f64)
}

fn lines(measure: Measure, points: &[HeadPoint], alerts: &[Alert]) -> String {
    let heads: BTreeSet<(usize, usize)> = points.iter().map(|p| (p.layer, p.head)).collect();
    let (w, h, ml, mb, mt, mr) = (640.0, 260.0, 50.0, 30.0, 10.0, 90.0);
    let xs: Vec<f64> = points.iter().map(|p| p.step as f64).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.get(measure)).filter(|v| v.is_finite()).collect();
    let (x0, x1) = (xs.iter().cloned().fold(f64::INFINITY, f64::min), xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    let (y0, y1) = (ys.iter().cloned().fold(f64::INFINITY, f64::min), ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    let (x1, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, if y1 > y0 { y1 } else { y0 + 1.0 });
    let px = |x: f64| ml + (x - x0) / (x1 - x0) * (w - ml - mr);
    let py = |y: f64| mt + (1.0 - (y - y0) / (y1 - y0)) * (h - mt - mb);
    let mut s = format!(
        r#"<figure><figcaption>{measure} per head over steps (red rings: alerts on this measure)</figcaption><svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="10">"#
    );
    let _ = write!(s, r##"<rect x="{ml}" y="{mt}" width="{}" height="{}" fill="none" stroke="#999"/>"##, w - ml - mr, h - mt - mb);
    let _ =
        write!(s, r#"<text x="{ml}" y="{}">{x0}</text><text x="{}" y="{}" text-anchor="end">step {x1}</text>"#, h - 12.0, w - mr, h - 12.0);
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{y1:.3}</text><text x="{}" y="{}" text-anchor="end">{y0:.3}</text>"#,
        ml - 3.0,
        mt + 8.0,
        ml - 3.0,
        h - mb
    );
    for (i, &(l, hd)) in heads.iter().enumerate() {
        let c = colour(i, heads.len());
        let pts: Vec<String> = points
            .iter()
            .filter(|p| p.layer == l && p.head == hd && p.get(measure).is_finite())
            .map(|p| format!("{:.1},{:.1}", px(p.step as f64), py(p.get(measure))))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.2" points="{}"><title>layer {l} head {hd}</title></polyline>"#,
            pts.join(" ")
        );
        let _ = write!(s, r#"<text x="{}" y="{}" fill="{c}">L{l}H{hd}</text>"#, w - mr + 6.0, mt + 10.0 + 11.0 * i as f64);
    }
    for a in alerts.iter().filter(|a| a.measure == measure) {
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="red" stroke-width="1.5"><title>{}</title></circle>"#,
            px(a.step as f64),
            py(a.value),
            esc(&a.to_string())
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn heatmap(step: u64, points: &[&HeadPoint], lo: f64, hi: f64) -> String {
    let cell = 18.0;
    let nl = points.iter().map(|p| p.layer).max().map_or(0, |m| m + 1);
    let nh = points.iter().map(|p| p.head).max().map_or(0, |m| m + 1);
    let (w, h) = (30.0 + nh as f64 * cell, 16.0 + nl as f64 * cell);
    let mut s = format!(
        r#"<figure class="hm"><figcaption>step {step}</figcaption><svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="9">"#
    );
    for p in points {
        let t = if hi > lo { (p.key_coherence - lo) / (hi - lo) } else { 0.5 };
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="{cell}" height="{cell}" fill="{}"><title>layer {} head {}: key_coherence {:.4}</title></rect>"#,
            30.0 + p.head as f64 * cell,
            p.layer as f64 * cell,
            ramp(t),
            p.layer,
            p.head,
            p.key_coherence
        );
    }
    for l in 0..nl {
        let _ = write!(s, r#"<text x="2" y="{}">L{l}</text>"#, l as f64 * cell + 12.0);
    }
    s.push_str("</svg></figure>");
    s
}

/// Each alerted (head, measure): its trace with the band it was checked against.
fn alerted_traces(alerts: &[Alert], state: &RuleState) -> String {
    let mut keys: Vec<(usize, usize, Measure)> = Vec::new();
    // In order of each pair's most severe alert.
    let mut sorted: Vec<&Alert> = alerts.iter().collect();
    sorted.sort_by(|a, b| b.severity.total_cmp(&a.severity));
    for a in sorted {
        if !keys.contains(&(a.layer, a.head, a.measure)) {
            keys.push((a.layer, a.head, a.measure));
        }
    }
    let mut s = String::new();
    if keys.is_empty() {
        return s;
    }
    s.push_str("<div><h2>Alerted heads: trace and band</h2><p>Each alerted head's measure over steps (line), the band it was checked against at each observation (shaded: median ± z_max robust scales of its history; absent during the head's warm-up), and its alerts (red rings). Threshold rules (coherence, collapse) have no band here. A step alert can lie inside the shaded band: it left the range that one usual step from the previous observation allows, given under its plot; so does a jump alert (a head not yet watched by its band whose entropy changed by the factor --jump or more in one observation).</p>");
    for (l, h, m) in keys.into_iter().take(48) {
        let tr = state.trace(l, h, m);
        let pts: Vec<(f64, f64, Option<[f64; 2]>)> = tr.iter().map(|t| (t.step as f64, t.value, t.band)).collect();
        let marks: Vec<f64> = alerts.iter().filter(|a| (a.layer, a.head, a.measure) == (l, h, m)).map(|a| a.step as f64).collect();
        let steps: Vec<String> = alerts
            .iter()
            .filter(|a| (a.layer, a.head, a.measure) == (l, h, m) && matches!(a.rule, Rule::Step | Rule::Jump))
            .map(|a| format!("{} rule at step {}: {:.4} outside [{:.4}, {:.4}]", a.rule, a.step, a.value, a.band[0], a.band[1]))
            .collect();
        let cap = if steps.is_empty() { String::new() } else { format!("<figcaption>{}</figcaption>", esc(&steps.join("; "))) };
        let _ = write!(s, "<figure>{}{cap}</figure>", band_plot(320.0, 150.0, &pts, &marks, &format!("L{l}H{h} {m}")));
    }
    s.push_str("</div>");
    s
}

pub fn render(title: &str, points: &[HeadPoint], alerts: &[Alert], state: &RuleState) -> String {
    let mut s = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px}}figure{{display:inline-block;margin:.5em}}figure.hm{{margin:.2em}}table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style></head><body><h1>{t}</h1>",
        t = esc(title)
    );
    let steps: BTreeSet<u64> = points.iter().map(|p| p.step).collect();
    let _ = write!(
        s,
        "<p>{} observations, {} heads, {} alerts.</p>",
        steps.len(),
        points.iter().map(|p| (p.layer, p.head)).collect::<BTreeSet<_>>().len(),
        alerts.len()
    );
    s.push_str(&alerted_traces(alerts, state));
    for m in Measure::ALL {
        s.push_str(&lines(m, points, alerts));
    }
    s.push_str("<h2>key_coherence, layer × head, per step</h2>");
    let lo = points.iter().map(|p| p.key_coherence).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.key_coherence).fold(f64::NEG_INFINITY, f64::max);
    let _ = write!(s, "<p>Colour scale shared by all steps: {lo:.3} (dark) – {hi:.3} (yellow).</p>");
    // At most 24 steps, evenly chosen.
    let st: Vec<u64> = steps.iter().copied().collect();
    let keep = st.len().min(24);
    for i in 0..keep {
        let step = st[if keep > 1 { i * (st.len() - 1) / (keep - 1) } else { 0 }];
        let ps: Vec<&HeadPoint> = points.iter().filter(|p| p.step == step).collect();
        s.push_str(&heatmap(step, &ps, lo, hi));
    }
    s.push_str("<h2>Alerts</h2><p>Most severe first.</p><table><tr><th>step</th><th>layer</th><th>head</th><th>measure</th><th>value</th><th>band</th><th>rule</th><th>severity</th><th>detail</th></tr>");
    let mut sorted: Vec<&Alert> = alerts.iter().collect();
    sorted.sort_by(|a, b| b.severity.total_cmp(&a.severity).then(a.step.cmp(&b.step)));
    for a in sorted {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>[{:.4}, {:.4}]</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            a.step, a.layer, a.head, a.measure, a.value, a.band[0], a.band[1], a.rule, a.severity, esc(&a.detail)
        );
    }
    s.push_str("</table></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Rules;

    #[test]
    fn an_alerted_head_has_its_trace_and_a_step_alert_its_range() {
        let p = |step: u64, ks: f64| HeadPoint {
            checkpoint: None,
            step,
            layer: 0,
            head: 1,
            kv_head: 1,
            n: 64,
            d: 16,
            key_coherence: 2.0,
            participation_ratio: 0.5,
            k90: 2,
            attention_entropy: 2.0,
            key_spread: ks,
        };
        let rules = Rules::default();
        let mut st = RuleState::default();
        let (mut points, mut alerts) = (Vec::new(), Vec::new());
        // key_spread grows 9 % per observation, then jumps back into its wide band.
        for s in 0..36u64 {
            let x = if s < 35 { 0.02 * (0.09 * s as f64).exp() } else { 0.07 };
            points.push(p(s * 10, x));
            alerts.extend(st.observe(&rules, &points[points.len() - 1..]));
        }
        assert_eq!(alerts.iter().map(|a| (a.rule, a.step)).collect::<Vec<_>>(), [(Rule::Step, 350)]);
        let html = render("t", &points, &alerts, &st);
        assert!(html.contains("Alerted heads: trace and band") && html.contains("L0H1 key_spread"), "{html}");
        assert!(html.contains("<figcaption>step rule at step 350: 0.0700 outside ["), "{html}");
    }
}
