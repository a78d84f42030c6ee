//! Small helpers shared by the self-contained HTML pages (report, compress,
//! monitor): escaping, number formatting and one colour ramp.

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
}
