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
        let (xlo, xhi) = if xhi > xlo { (xlo, xhi) } else if xlo.is_finite() { (xlo - 1.0, xlo + 1.0) } else { (0.0, 1.0) };
        let (ylo, yhi) = if yhi > ylo { (ylo, yhi) } else if ylo.is_finite() { (ylo - 1.0, ylo + 1.0) } else { (0.0, 1.0) };
        let px = |x: f64| m + (pw - m - 10.0) * (x - xlo) / (xhi - xlo);
        let py = |y: f64| 10.0 + (h - m - 10.0) * (1.0 - (y - ylo) / (yhi - ylo));
        let mut s = format!(r#"<figure><figcaption>{}</figcaption><svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="10">"#, esc(self.title));
        let _ = write!(s, r##"<rect x="{m}" y="10" width="{}" height="{}" fill="none" stroke="#999"/>"##, pw - m - 10.0, h - m - 10.0);
        for Series { label, colour: c, points } in self.series {
            let path: Vec<String> = points.iter().filter(ok).map(|q| format!("{:.1},{:.1}", px(tx(q.0)), py(ty(q.1)))).collect();
            let _ = write!(s, r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#, path.join(" "), esc(label));
            if self.markers {
                for q in points.iter().filter(ok) {
                    let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{c}"><title>{}: {} → {}</title></circle>"#, px(tx(q.0)), py(ty(q.1)), esc(label), fmt(q.0), fmt(q.1));
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
