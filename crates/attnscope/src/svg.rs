//! Small helpers shared by the self-contained HTML pages (report, compress,
//! monitor): escaping, number formatting, one colour ramp and one line plot.

use std::fmt::Write;

/// Escapes text for HTML/SVG content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A perceptually ordered colour ramp (viridis, 5 stops, linear in between),
/// t in [0, 1]; non-finite t maps to the low end.
pub fn ramp(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let c = |u: f64, v: f64| (u + (v - u) * f).round() as u8;
    format!("#{:02x}{:02x}{:02x}", c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// A number for a table cell: integers plainly, 3 decimals, or scientific below 0.01.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v == v.round() && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if v.abs() >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// One series over steps with a shaded band around it: `points` are
/// (x, y, Some([lo, hi]) where a band applies); `marks` are x positions to
/// ring in red (alerts). A self-contained `<svg>` of `w` × `h` pixels;
/// non-finite values are skipped; the band is drawn in runs of consecutive
/// points that have one.
pub fn band_plot(w: f64, h: f64, points: &[(f64, f64, Option<[f64; 2]>)], marks: &[f64], label: &str) -> String {
    let (ml, mr, mt, mb) = (46.0, 8.0, 14.0, 18.0);
    let fin = |v: f64| v.is_finite();
    let mm = |v: &[f64]| v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    // The y range: the values, widened by the band up to one value range
    // either side (a band that blows up after a fault does not flatten the trace).
    let vals: Vec<f64> = points.iter().map(|p| p.1).filter(|v| fin(*v)).collect();
    let (v0, v1) = mm(&vals);
    let pad = (v1 - v0).max(1e-9);
    let mut ys = vals.clone();
    for p in points {
        if let Some([lo, hi]) = p.2 {
            ys.extend([lo.max(v0 - pad), hi.min(v1 + pad)].into_iter().filter(|v| fin(*v)));
        }
    }
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ((x0, x1), (y0, y1)) = (mm(&xs), mm(&ys));
    let (x1, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, if y1 > y0 { y1 } else { y0 + 1.0 });
    let px = |x: f64| ml + (x - x0) / (x1 - x0) * (w - ml - mr);
    let py = |y: f64| mt + (1.0 - (y.clamp(y0, y1) - y0) / (y1 - y0)) * (h - mt - mb);
    let mut s = format!(
        r##"<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="9"><rect x="{ml}" y="{mt}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        w - ml - mr,
        h - mt - mb
    );
    let _ = write!(
        s,
        r#"<text x="{ml}" y="10">{}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
        esc(label),
        ml - 3.0,
        mt + 7.0,
        fmt(y1),
        ml - 3.0,
        h - mb,
        fmt(y0)
    );
    let _ = write!(s, r#"<text x="{ml}" y="{}">{x0}</text><text x="{}" y="{}" text-anchor="end">{x1}</text>"#, h - 5.0, w - mr, h - 5.0);
    // The band, in runs of consecutive points with one.
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    let flush = |run: &mut Vec<(f64, f64, f64)>, s: &mut String| {
        if run.len() >= 2 {
            let top: Vec<String> = run.iter().map(|(x, _, hi)| format!("{:.1},{:.1}", px(*x), py(*hi))).collect();
            let bot: Vec<String> = run.iter().rev().map(|(x, lo, _)| format!("{:.1},{:.1}", px(*x), py(*lo))).collect();
            let _ =
                write!(s, r##"<polygon points="{} {}" fill="#8ab4f8" fill-opacity="0.35" stroke="none"/>"##, top.join(" "), bot.join(" "));
        }
        run.clear();
    };
    for p in points {
        match p.2 {
            Some([lo, hi]) if fin(lo) && fin(hi) => run.push((p.0, lo, hi)),
            _ => flush(&mut run, &mut s),
        }
    }
    flush(&mut run, &mut s);
    let line: Vec<String> = points.iter().filter(|p| fin(p.1)).map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1))).collect();
    let _ = write!(s, r##"<polyline fill="none" stroke="#222" stroke-width="1.2" points="{}"/>"##, line.join(" "));
    for &m in marks {
        if let Some(p) = points.iter().find(|p| p.0 == m && fin(p.1)) {
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="red" stroke-width="1.5"/>"#, px(p.0), py(p.1));
        }
    }
    s.push_str("</svg>");
    s
}

/// One line of a [`LinePlot`]: (x, y) points, drawn in order.
pub struct Series {
    pub label: String,
    pub colour: String,
    pub points: Vec<(f64, f64)>,
}

/// A line plot as inline SVG in a `<figure>`: one polyline per series, the
/// legend in the right margin (at most 20 entries, evenly spread over the
/// series, first and last included). Non-finite points are dropped; a log
/// axis also drops points at or below its floor.
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub xlabel: &'a str,
    pub series: &'a [Series],
    /// log₂ x axis (x ≤ 0 dropped).
    pub log_x: bool,
    /// log₁₀ y axis (y ≤ `y_floor` dropped).
    pub log_y: bool,
    pub y_floor: f64,
    /// A dot at every point, its value as a tooltip.
    pub markers: bool,
}

impl<'a> LinePlot<'a> {
    /// Linear axes, no markers.
    pub fn new(title: &'a str, xlabel: &'a str, series: &'a [Series]) -> Self {
        LinePlot { title, xlabel, series, log_x: false, log_y: false, y_floor: 0.0, markers: false }
    }

    pub fn render(&self) -> String {
        const LEGEND: usize = 20;
        let (pw, h, m) = (520.0, 300.0, 50.0);
        let w = pw + 110.0;
        let (log_x, log_y, floor) = (self.log_x, self.log_y, self.y_floor);
        let ty = |v: f64| if log_y { v.log10() } else { v };
        let tx = |v: f64| if log_x { v.log2() } else { v };
        let ok = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > floor) && (!log_x || p.0 > 0.0);
        let pts: Vec<(f64, f64)> = self.series.iter().flat_map(|s| s.points.iter().filter(ok).map(|p| (tx(p.0), ty(p.1)))).collect();
        let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| pts.iter().map(sel).fold(init, f);
        let (xlo, xhi) = (fold(f64::min, f64::INFINITY, |p| p.0), fold(f64::max, f64::NEG_INFINITY, |p| p.0));
        let (ylo, yhi) = (fold(f64::min, f64::INFINITY, |p| p.1), fold(f64::max, f64::NEG_INFINITY, |p| p.1));
        let (xlo, xhi) = if xhi > xlo {
            (xlo, xhi)
        } else if xlo.is_finite() {
            (xlo - 1.0, xlo + 1.0)
        } else {
            (0.0, 1.0)
        };
        let (ylo, yhi) = if yhi > ylo {
            (ylo, yhi)
        } else if ylo.is_finite() {
            (ylo - 1.0, ylo + 1.0)
        } else {
            (0.0, 1.0)
        };
        let px = |x: f64| m + (pw - m - 10.0) * (x - xlo) / (xhi - xlo);
        let py = |y: f64| 10.0 + (h - m - 10.0) * (1.0 - (y - ylo) / (yhi - ylo));
        let mut s = format!(
            r#"<figure><figcaption>{}</figcaption><svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="10">"#,
            esc(self.title)
        );
        let _ = write!(s, r##"<rect x="{m}" y="10" width="{}" height="{}" fill="none" stroke="#999"/>"##, pw - m - 10.0, h - m - 10.0);
        for Series { label, colour: c, points } in self.series {
            let path: Vec<String> = points.iter().filter(ok).map(|q| format!("{:.1},{:.1}", px(tx(q.0)), py(ty(q.1)))).collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
                path.join(" "),
                esc(label)
            );
            if self.markers {
                for q in points.iter().filter(ok) {
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{c}"><title>{}: {} → {}</title></circle>"#,
                        px(tx(q.0)),
                        py(ty(q.1)),
                        esc(label),
                        fmt(q.0),
                        fmt(q.1)
                    );
                }
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
            esc(self.xlabel),
            h - m + 14.0,
            xl(xlo),
            pw - 40.0,
            h - m + 14.0,
            xl(xhi)
        );
        let n = self.series.len();
        let shown: Vec<usize> = if n <= LEGEND { (0..n).collect() } else { (0..LEGEND).map(|i| i * (n - 1) / (LEGEND - 1)).collect() };
        for (row, &i) in shown.iter().enumerate() {
            let Series { label, colour: c, .. } = &self.series[i];
            let _ = write!(s, r#"<text x="{}" y="{}" fill="{c}">{}</text>"#, pw + 5.0, 24.0 + 12.0 * row as f64, esc(label));
        }
        s.push_str("</svg></figure>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
        assert_eq!(ramp(0.0), "#440154");
        assert_eq!(ramp(1.0), "#fde725");
        assert_eq!(ramp(f64::NAN), ramp(0.0));
        assert_eq!(fmt(3.0), "3");
        assert_eq!(fmt(0.12345), "0.123");
        assert_eq!(fmt(0.001), "1.00e-3");
        assert_eq!(fmt(f64::NAN), "–");
    }

    #[test]
    fn band_plot_draws_the_band_where_it_applies_and_rings_marks() {
        let pts = [(0.0, 3.0, None), (10.0, 2.0, Some([1.5, 2.5])), (20.0, 2.1, Some([1.6, 2.6])), (30.0, 0.2, Some([1.6, 2.6]))];
        let s = band_plot(300.0, 120.0, &pts, &[30.0], "L0H1 attention_entropy");
        assert_eq!(s.matches("<polygon").count(), 1);
        assert_eq!(s.matches("<circle").count(), 1);
        assert!(s.contains("L0H1 attention_entropy") && s.starts_with("<svg") && s.ends_with("</svg>"));
        // No band at all: no polygon.
        let s = band_plot(300.0, 120.0, &[(0.0, 1.0, None), (1.0, f64::NAN, None)], &[], "x");
        assert_eq!(s.matches("<polygon").count(), 0);
    }

    #[test]
    fn line_plot_drops_what_its_axes_cannot_show() {
        let series = [
            Series { label: "a<b".into(), colour: "#000".into(), points: vec![(1.0, 1.0), (2.0, 0.0), (4.0, f64::NAN), (8.0, 1e-3)] },
            Series { label: "c".into(), colour: "#111".into(), points: vec![] },
        ];
        let linear = LinePlot { markers: true, ..LinePlot::new("t", "x", &series) }.render();
        assert_eq!(linear.matches("<polyline").count(), 2);
        assert_eq!(linear.matches("<circle").count(), 3, "NaN dropped");
        assert!(linear.contains("a&lt;b") && linear.ends_with("</svg></figure>"));
        let log = LinePlot { log_x: true, log_y: true, markers: true, ..LinePlot::new("t", "x", &series) }.render();
        assert_eq!(log.matches("<circle").count(), 2, "y = 0 dropped on a log axis");
        assert!(log.contains(">8</text>"), "log₂ x labels are the values: {log}");
        // No finite point: still a well-formed, empty plot.
        let empty = LinePlot::new("t", "x", &series[1..]).render();
        assert!(empty.contains("<polyline") && !empty.contains("NaN"));
    }
}
