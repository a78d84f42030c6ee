//! The monitor's alert rules: typed measures, typed rules, per-head state.
//!
//! A head's measure is compared with a band (median ± `z_max` robust scales
//! over its last `window` observations). The band applies only after the
//! head's own warm-up: the head has *formed* (median attention entropy of
//! its last `settle` observations at most `formed_frac` × the entropy of
//! uniform causal attention) and the measure has *settled* (its last
//! `settle` observations spread over at most `settle_tol` × |median|); both
//! are latched once reached. A head out of band for `consecutive`
//! observations in a row raises one alert (on entry; re-armed once it is back
//! in band) once an observation of the episode got there by a jump (its step
//! carries `band_step_frac` of its distance from the median: a head that
//! learns drifts out of a flat history, a fault jumps), and, among the heads
//! out of band at one observation, only those within `relative` × the largest
//! robust z of that observation alert: a fault hits few heads hard, the heads
//! downstream of it move less.
//! A head in band can still alert through the *step* rule: its step from the
//! previous observation, Δ = ln x_t − ln x_{t−1}, is a robust z of more than
//! `step_max` against the consecutive steps of the same history (a fault is a
//! jump; a head that is learning drifts, however far it drifts over the window),
//! once its history has `step_min_history` observations.
//! While a head's entropy band is not warm yet (not formed, or in its warm-up),
//! the *jump* rule watches its entropy for a change by the factor `jump` or more
//! between two observations (a collapse; forming is a drift).
//! The measures in `unformed_measures` (key_spread by default: it depends on
//! the keys only) do not wait for the head to form: their warm-up is their own
//! settling, their history restarts when they settle and not when the head forms.
//! Threshold rules (coherence, collapse) alert on entry, on formed heads; the
//! coherence rule only once key_coherence is past the band's warm-up (formed,
//! settled, `min_history` observations since the head formed). The reverted
//! rule alerts on entry when a head that has left uniform attention
//! (`left_frac`, formed or not) is back to it (`revert_frac`).
//! Alerts of one observation are sorted by severity (largest first).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Serialize, Serializer};

use super::HeadPoint;

/// A measure the monitor records (the columns of monitor.csv, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    KeyCoherence,
    ParticipationRatio,
    K90,
    AttentionEntropy,
    KeySpread,
}

impl Measure {
    pub const ALL: [Measure; 5] =
        [Measure::KeyCoherence, Measure::ParticipationRatio, Measure::K90, Measure::AttentionEntropy, Measure::KeySpread];

    pub fn name(self) -> &'static str {
        match self {
            Self::KeyCoherence => "key_coherence",
            Self::ParticipationRatio => "participation_ratio",
            Self::K90 => "k90",
            Self::AttentionEntropy => "attention_entropy",
            Self::KeySpread => "key_spread",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The measure's value in a head point.
    pub fn of(self, p: &HeadPoint) -> f64 {
        match self {
            Self::KeyCoherence => p.key_coherence,
            Self::ParticipationRatio => p.participation_ratio,
            Self::K90 => p.k90 as f64,
            Self::AttentionEntropy => p.attention_entropy,
            Self::KeySpread => p.key_spread,
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Measure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The rule that raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// The measure left the head's own band.
    Band,
    /// The measure jumped: its step from the previous observation is far out of the head's usual steps.
    Step,
    /// key_coherence above its threshold.
    Coherence,
    /// participation_ratio < 2/n (or k90 = 1 with `collapse_k90`).
    Collapse,
    /// A head that had left uniform attention (`left_frac`; formed or not) is back to it: its entropy
    /// ≥ `revert_frac` × uniform.
    Reverted,
    /// While a head's entropy band is not warm yet (the head has not formed, or is in its warm-up),
    /// its attention entropy changed by at least the factor `jump` from the previous observation.
    Jump,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Self::Band => "band",
            Self::Step => "step",
            Self::Coherence => "coherence",
            Self::Collapse => "collapse",
            Self::Reverted => "reverted",
            Self::Jump => "jump",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Alert rules. One default, used by the library, `train`, `monitor`,
/// `monitor-eval` and the Python binding; chosen on seen seeds, each change
/// then scored once on fresh held-out seeds (docs/monitor.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Band: |x − median| / scale above this (robust z), scale = max(1.4826·MAD, rel_floor·|median|).
    pub z_max: f64,
    /// Band on ln(x) (every monitored measure is positive): z = (ln x − median) / max(1.4826·MAD, rel_floor),
    /// so a head whose entropy falls 50-fold is far out of band while a ±10 % drift is not.
    pub log_band: bool,
    /// Band: median and MAD over at most this many recent observations.
    pub window: usize,
    /// Band: the least history (observations) before the band applies.
    pub min_history: usize,
    /// Smallest band scale, as a fraction of |median|.
    pub rel_floor: f64,
    /// Measures the band rule watches.
    pub band_measures: Vec<Measure>,
    /// Watched measures whose band and step rules do not wait for the head to form: their warm-up is
    /// their own settling (`settle`, `settle_tol`, then `min_history` observations), their history
    /// restarts when they settle, and is not restarted when the head forms. For measures of the keys
    /// alone, whose meaning does not depend on the head's attention pattern.
    pub unformed_measures: Vec<Measure>,
    /// Warm-up: observations over which a head must be formed and a measure settled.
    pub settle: usize,
    /// Warm-up: settled when (max − min) of the last `settle` values ≤ this × |median|.
    pub settle_tol: f64,
    /// Warm-up: formed when the median entropy of the last `settle`
    /// observations ≤ this × the entropy of uniform causal attention.
    pub formed_frac: f64,
    /// Band: out of band this many observations in a row before the alert.
    pub consecutive: usize,
    /// Band: an out-of-band episode alerts only once one of its observations got there by a jump: its
    /// step from the previous observation, in the direction of its departure, carries at least this
    /// fraction of its distance from the band's median (a fault is a jump; a head that learns drifts
    /// out over several observations). 0: off.
    pub band_step_frac: f64,
    /// Step rule: alert when |Δ − median step| / max(1.4826·MAD of steps, rel_floor) exceeds this
    /// (Δ = ln x − the previous ln x; the steps are the consecutive differences of the band's
    /// history; same warm-up and measures as the band; 0: off). On the linear band, Δ is on x and
    /// the floor is rel_floor × |median|.
    pub step_max: f64,
    /// Step rule: the least history (observations) before it applies (at least the band's
    /// `min_history`: the larger of the two).
    pub step_min_history: usize,
    /// Band: of the heads out of band at one observation, only those with
    /// |z| ≥ this × the largest |z| alert (0: all).
    pub relative: f64,
    /// The band rule applies only from this step on (0: from the start; the warm-up above decides).
    pub band_after: u64,
    /// key_coherence above this alerts (absolute value) ...
    pub coherence_max: Option<f64>,
    /// ... else above this fraction of its bound n / (d + 1).
    pub coherence_frac: f64,
    /// Alert when a head collapses: participation_ratio < 2/n ...
    pub collapse: bool,
    /// ... or (when set) k90 = 1.
    pub collapse_k90: bool,
    /// A head that has left uniform attention (`left_frac`) and whose attention entropy reaches this
    /// × the uniform entropy has reverted (0: off).
    pub revert_frac: f64,
    /// Jump rule: while a head's entropy band is not warm, alert when its attention entropy changes
    /// by at least this factor between consecutive observations (0: off; else above 1).
    pub jump: f64,
    /// A head has left uniform attention once the median entropy of its last `settle` observations
    /// is at most this × the uniform entropy (latched; the head need not have formed; a formed head
    /// has left).
    pub left_frac: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            z_max: 10.0,
            log_band: true,
            window: 30,
            // A band from fewer observations is heavy-tailed: in the healthy
            // tuning runs |z| > 4 was 9–16× as frequent with 5–9 observations
            // of history as with ≥ 10 (docs/monitor.md).
            min_history: 10,
            rel_floor: 0.05,
            // k90 is a small integer in small heads (1–3 at d_head 16): a change
            // of one direction is not a fault; participation_ratio moves by
            // ±40 % in healthy heads (tuning seeds: robust z up to 11 on ln).
            // key_spread is the key-side measure that sees a key spike, which
            // key_coherence (invariant to K → K·A) cannot.
            band_measures: vec![Measure::KeyCoherence, Measure::AttentionEntropy, Measure::KeySpread],
            // key_spread is a property of the keys alone; a head's keys can be hit before its
            // attention has formed (tuning seeds 101–104: healthy unformed heads' key_spread steps
            // stay within |z| 5.0, docs/monitor.md, "Session 5").
            unformed_measures: vec![Measure::KeySpread],
            settle: 5,
            settle_tol: 0.5,
            formed_frac: 0.9,
            consecutive: 1,
            // Session 8 (docs/monitor.md): on the seen seeds (1–25, 101–104) the recall and precision of
            // faults 1–3 and the LR spike's detections are the same for every value from 0.2 to 0.9; the
            // one healthy band alert (llama seed 23) drifted out over three observations, its last step
            // carrying 17 %. Most of the distance in one observation: one half.
            band_step_frac: 0.5,
            // 1.5 × the largest healthy |step z| on the band measures in the tuning runs
            // (5.0, seeds 101–103), rounded up (docs/monitor.md, "Step rule").
            step_max: 8.0,
            // Session 7 (docs/monitor.md): every step-rule alert of the 72 healthy runs of seeds
            // 1–20 and 101–104 (4) had 10–14 observations of history, the step's scale then coming
            // from 9–13 differences; 1.5 × the band's minimum history.
            step_min_history: 15,
            relative: 0.0,
            band_after: 0,
            coherence_max: None,
            coherence_frac: 0.9,
            collapse: true,
            collapse_k90: false,
            // Session 7 (docs/monitor.md): after leaving 0.98 × uniform, healthy heads came back to
            // at most 0.9985 × uniform (seeds 1–15, 101–104; a formed gpt2 head of seed 13 reached
            // 0.9907, an alert under the old 0.99); re-initialised heads sit at ≥ 0.99994 × uniform.
            revert_frac: 0.9995,
            // Chosen on the seen seeds (1–10, 101–104; docs/monitor.md, "Session 7"): healthy heads'
            // entropy never moved more than 3.6-fold (ln 1.29) between observations; 1.5 × that
            // (6.9-fold) rounded up to an order of magnitude.
            jump: 10.0,
            // 100× further from uniform than a head at initialisation (≥ 0.9999 × uniform).
            left_frac: 0.98,
        }
    }
}

impl Rules {
    /// Checks the settings (one line per problem, for exit 2).
    pub fn validate(&self) -> Result<(), String> {
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if !finite_pos(self.z_max) || !finite_pos(self.coherence_frac) || self.coherence_max.is_some_and(|c| !finite_pos(c)) {
            return Err("z_max, coherence_frac and coherence_max must be finite numbers above 0".into());
        }
        let finite_non_negative = |x: f64| x.is_finite() && x >= 0.0;
        if !finite_non_negative(self.rel_floor) || !finite_non_negative(self.settle_tol) || !finite_non_negative(self.step_max) {
            return Err("rel_floor, settle_tol and step_max must be finite numbers ≥ 0".into());
        }
        if !(0.0..=1.0).contains(&self.band_step_frac) {
            return Err("band_step_frac must be in [0, 1]".into());
        }
        if !finite_pos(self.formed_frac) || !(0.0..=1.0).contains(&self.relative) || !finite_non_negative(self.revert_frac) {
            return Err("formed_frac must be above 0, relative in [0, 1], revert_frac ≥ 0".into());
        }
        if !(self.jump == 0.0 || self.jump.is_finite() && self.jump > 1.0) {
            return Err("jump must be 0 (off) or a finite factor above 1".into());
        }
        if !(finite_pos(self.left_frac) && self.left_frac <= 1.0) {
            return Err("left_frac must be in (0, 1]".into());
        }
        if self.min_history < 2 || self.window < self.min_history || self.settle < 1 || self.consecutive < 1 {
            return Err("need min_history ≥ 2, window ≥ min_history, settle ≥ 1, consecutive ≥ 1".into());
        }
        Ok(())
    }
}

/// Mean over query rows i = 0..n−1 of ln(i + 1): the attention entropy of a
/// head that attends uniformly over its causal prefix.
pub fn uniform_entropy(n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    (1..=n).map(|i| (i as f64).ln()).sum::<f64>() / n as f64
}

/// (robust z, median, scale) of `x` against `hist`.
pub fn robust_z(x: f64, hist: &[f64], rel_floor: f64) -> (f64, f64, f64) {
    let med = crate::stats::median(hist);
    let dev: Vec<f64> = hist.iter().map(|v| (v - med).abs()).collect();
    let mad = crate::stats::median(&dev);
    let scale = (1.4826 * mad).max(rel_floor * med.abs()).max(1e-12);
    ((x - med) / scale, med, scale)
}

/// (robust z, median, scale) of `x` against `hist`, the scale floored at
/// `floor` itself (for values on a log scale, where a relative floor is an absolute one).
pub fn robust_z_abs(x: f64, hist: &[f64], floor: f64) -> (f64, f64, f64) {
    let med = crate::stats::median(hist);
    let dev: Vec<f64> = hist.iter().map(|v| (v - med).abs()).collect();
    let mad = crate::stats::median(&dev);
    let scale = (1.4826 * mad).max(floor).max(1e-12);
    ((x - med) / scale, med, scale)
}

/// An alert: which head, which measure, its value, the band it left.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    pub step: u64,
    pub layer: usize,
    pub head: usize,
    pub measure: Measure,
    pub value: f64,
    pub rule: Rule,
    /// The band [lo, hi] the value left: median ± z_max robust scales (band rule), the values one usual
    /// step (± step_max scales of the steps) from the previous observation allows (step rule), or
    /// [−∞ / 0, threshold] (threshold rules).
    pub band: [f64; 2],
    /// |robust z| against the head's band (band rule) or of its step (step rule), or the value over its
    /// threshold times z_max (threshold rules).
    pub severity: f64,
    pub detail: String,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} L{}H{} {} = {:.4} outside [{:.4}, {:.4}] ({} rule, severity {:.1}: {})",
            self.step, self.layer, self.head, self.measure, self.value, self.band[0], self.band[1], self.rule, self.severity, self.detail
        )?;
        if let Some(c) = &self.checkpoint {
            write!(f, " [{c}]")?;
        }
        Ok(())
    }
}

/// One observation of one head's measure with the band it was checked against.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TracePoint {
    pub step: u64,
    pub value: f64,
    /// None while the head is in warm-up.
    pub band: Option<[f64; 2]>,
}

#[derive(Default)]
struct Track {
    hist: VecDeque<f64>,
    settled: bool,
    streak: usize,
    /// Alerted in the current out-of-band episode.
    fired: bool,
    /// The current out-of-band episode has had an observation that jumped there (`band_step_frac`).
    jumped: bool,
    trace: Vec<TracePoint>,
}

/// The rules' state over every (layer, head).
#[derive(Default)]
pub struct RuleState {
    tracks: BTreeMap<(usize, usize, Measure), Track>,
    /// The head's last `settle` attention entropies, oldest first (the last: its previous observation's).
    entropy: BTreeMap<(usize, usize), VecDeque<f64>>,
    formed: BTreeMap<(usize, usize), bool>,
    /// The head has left uniform attention (`left_frac`, latched).
    left: BTreeMap<(usize, usize), bool>,
    active: BTreeMap<(usize, usize, Rule), bool>,
}

struct Candidate {
    idx: usize,
    measure: Measure,
    rule: Rule,
    x: f64,
    z: f64,
    lo: f64,
    hi: f64,
    detail: String,
}

/// The step rule's check of `x` (band coordinate) against the history `h`
/// (oldest first, ≥ 2 values): (robust z of the step, median step, scale).
fn step_z(x: f64, h: &[f64], floor: f64) -> (f64, f64, f64) {
    let steps: Vec<f64> = h.windows(2).map(|w| w[1] - w[0]).collect();
    let prev = h[h.len() - 1];
    robust_z_abs(x - prev, &steps, floor)
}

impl RuleState {
    /// The (step, value, band) series of one head's measure.
    pub fn trace(&self, layer: usize, head: usize, m: Measure) -> &[TracePoint] {
        self.tracks.get(&(layer, head, m)).map_or(&[], |t| &t.trace)
    }

    /// Applies `rules` to one observation (all heads of one step) and
    /// updates the state; returns the alerts sorted by severity.
    pub fn observe(&mut self, rules: &Rules, points: &[HeadPoint]) -> Vec<Alert> {
        let mut cands: Vec<Candidate> = Vec::new();
        let mut out: Vec<Alert> = Vec::new();
        for (idx, p) in points.iter().enumerate() {
            let key = (p.layer, p.head);
            // Formed: the head left uniform attention (latched).
            let ent = self.entropy.entry(key).or_default();
            // The head's entropy at its previous observation (the jump rule's reference).
            let prev_entropy = ent.back().copied();
            ent.push_back(p.attention_entropy);
            while ent.len() > rules.settle {
                ent.pop_front();
            }
            let formed = self.formed.entry(key).or_insert(false);
            if !*formed && ent.len() >= rules.settle {
                let e: Vec<f64> = ent.iter().copied().collect();
                *formed = crate::stats::median(&e) <= rules.formed_frac * uniform_entropy(p.n);
                if *formed {
                    // The band starts from the formed head: its history before (uniform
                    // attention) is another regime. Not for the measures that do not wait for it.
                    for m in Measure::ALL.into_iter().filter(|m| !rules.unformed_measures.contains(m)) {
                        if let Some(t) = self.tracks.get_mut(&(p.layer, p.head, m)) {
                            t.hist.clear();
                            t.settled = false;
                        }
                    }
                }
            }
            let formed = *formed;
            let left = self.left.entry(key).or_insert(false);
            if !*left && ent.len() >= rules.settle {
                let e: Vec<f64> = ent.iter().copied().collect();
                *left = crate::stats::median(&e) <= rules.left_frac * uniform_entropy(p.n);
            }
            let left = *left;
            let mut coherence_watched = false;
            let mut entropy_watched = false;
            for m in Measure::ALL {
                let raw = m.of(p);
                // The band's coordinate: ln x (log_band), else x.
                // A measure not measured (NaN) is neither checked nor kept (`max` would turn NaN into 1e-12).
                let x = if raw.is_nan() {
                    f64::NAN
                } else if rules.log_band {
                    raw.max(1e-12).ln()
                } else {
                    raw
                };
                let back = |v: f64| if rules.log_band { v.exp() } else { v };
                let t = self.tracks.entry((p.layer, p.head, m)).or_default();
                let watched = rules.band_measures.contains(&m);
                let unformed_ok = rules.unformed_measures.contains(&m);
                let warm = (formed || unformed_ok) && t.settled && t.hist.len() >= rules.min_history;
                if m == Measure::KeyCoherence {
                    coherence_watched = formed && warm;
                }
                if m == Measure::AttentionEntropy {
                    entropy_watched = watched && warm && p.step >= rules.band_after;
                }
                let mut band = None;
                if watched && warm && p.step >= rules.band_after && x.is_finite() {
                    let h: Vec<f64> = t.hist.iter().copied().collect();
                    let (z, med, scale) =
                        if rules.log_band { robust_z_abs(x, &h, rules.rel_floor) } else { robust_z(x, &h, rules.rel_floor) };
                    let (lo, hi) = (back(med - rules.z_max * scale), back(med + rules.z_max * scale));
                    band = Some([lo, hi]);
                    let mut band_alert = false;
                    if z.abs() > rules.z_max {
                        t.streak += 1;
                        // The share of its distance from the median that this observation's step
                        // carries (x ≠ med out of band; negative for a step back towards it).
                        let carried = (x - h[h.len() - 1]) / (x - med);
                        t.jumped |= rules.band_step_frac == 0.0 || carried >= rules.band_step_frac;
                        if t.streak >= rules.consecutive && !t.fired && t.jumped {
                            band_alert = true;
                            let detail = format!(
                                "robust z {z:+.1} against median {:.4} of its last {} observations; its last step carried {:.0} % of that distance",
                                back(med),
                                h.len(),
                                100.0 * carried
                            );
                            cands.push(Candidate { idx, measure: m, rule: Rule::Band, x: raw, z, lo, hi, detail });
                        }
                    } else {
                        t.streak = 0;
                        t.fired = false;
                        t.jumped = false;
                    }
                    // Step rule: a jump from the previous observation, unless this
                    // episode has already alerted (or alerts now) through the band.
                    if rules.step_max > 0.0 && h.len() >= rules.step_min_history && !band_alert && !t.fired {
                        let floor = if rules.log_band { rules.rel_floor } else { rules.rel_floor * crate::stats::median(&h).abs() };
                        let (j, dmed, dscale) = step_z(x, &h, floor);
                        if j.abs() > rules.step_max {
                            let prev = h[h.len() - 1];
                            let (lo, hi) = (back(prev + dmed - rules.step_max * dscale), back(prev + dmed + rules.step_max * dscale));
                            let detail = format!(
                                "step {:+.3}{} from the previous observation {:.4}: robust z {j:+.1} against its last {} steps",
                                x - prev,
                                if rules.log_band { " in ln" } else { "" },
                                back(prev),
                                h.len() - 1
                            );
                            cands.push(Candidate { idx, measure: m, rule: Rule::Step, x: raw, z: j, lo, hi, detail });
                        }
                    }
                }
                t.trace.push(TracePoint { step: p.step, value: raw, band });
                if x.is_finite() {
                    t.hist.push_back(x);
                    while t.hist.len() > rules.window {
                        t.hist.pop_front();
                    }
                }
                // Settled: the last `settle` values lie close together (latched).
                if !t.settled && t.hist.len() >= rules.settle {
                    let last: Vec<f64> = t.hist.iter().rev().take(rules.settle).copied().collect();
                    let (lo, hi) = last.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                    let spread_ok = if rules.log_band {
                        hi - lo <= rules.settle_tol
                    } else {
                        hi - lo <= rules.settle_tol * crate::stats::median(&last).abs()
                    };
                    t.settled = spread_ok;
                    if spread_ok && unformed_ok {
                        // Its history starts from the settled measure (the early, fast-moving
                        // values are another regime), as a formed-gated measure's starts from the formed head.
                        while t.hist.len() > rules.settle {
                            t.hist.pop_front();
                        }
                    }
                }
            }
            // Jump rule: the heads the entropy band does not watch yet.
            if let Some(prev) = prev_entropy.filter(|&v| v > 0.0 && p.attention_entropy > 0.0) {
                let d = (p.attention_entropy / prev).ln();
                if rules.jump > 0.0 && !entropy_watched && d.abs() >= rules.jump.ln() {
                    out.push(Alert {
                        checkpoint: p.checkpoint.clone(),
                        step: p.step,
                        layer: p.layer,
                        head: p.head,
                        measure: Measure::AttentionEntropy,
                        value: p.attention_entropy,
                        rule: Rule::Jump,
                        band: [prev / rules.jump, prev * rules.jump],
                        severity: rules.z_max * d.abs() / rules.jump.ln(),
                        detail: format!(
                            "entropy {} {:.1}-fold from the previous observation {prev:.4}, while its band is not warm yet ({})",
                            if d < 0.0 { "fell" } else { "rose" },
                            d.abs().exp(),
                            if formed { "formed, in warm-up" } else { "head not formed" }
                        ),
                    });
                }
            }
            self.thresholds(rules, p, formed, left, coherence_watched, &mut out);
        }
        // Relative severity: keep the heads that moved most at this observation.
        let zmax = cands.iter().map(|c| c.z.abs()).fold(0.0, f64::max);
        for c in cands.into_iter().filter(|c| c.z.abs() >= rules.relative * zmax) {
            let p = &points[c.idx];
            if c.rule == Rule::Band {
                if let Some(t) = self.tracks.get_mut(&(p.layer, p.head, c.measure)) {
                    t.fired = true;
                }
            }
            out.push(Alert {
                checkpoint: p.checkpoint.clone(),
                step: p.step,
                layer: p.layer,
                head: p.head,
                measure: c.measure,
                value: c.x,
                rule: c.rule,
                band: [c.lo, c.hi],
                severity: c.z.abs(),
                detail: c.detail,
            });
        }
        out.sort_by(|a, b| b.severity.total_cmp(&a.severity).then((a.layer, a.head, a.measure).cmp(&(b.layer, b.head, b.measure))));
        out
    }

    /// Threshold rules, alerting when a head enters the state; the coherence rule only when
    /// `coherence_watched` (key_coherence past the band's warm-up: healthy heads reach
    /// 0.96–0.99 × its bound for one observation while they form, tuning seed 104).
    /// The coherence and collapse rules apply to formed heads, the reverted rule to heads that have
    /// left uniform attention (formed or not).
    fn thresholds(&mut self, rules: &Rules, p: &HeadPoint, formed: bool, left: bool, coherence_watched: bool, out: &mut Vec<Alert>) {
        let bound = p.n as f64 / (p.d + 1).min(p.n).max(1) as f64;
        let thr = rules.coherence_max.unwrap_or(rules.coherence_frac * bound);
        let mut enter = |on: bool, rule: Rule| -> bool {
            let was = self.active.insert((p.layer, p.head, rule), on).unwrap_or(false);
            on && !was
        };
        let mk = |measure: Measure, value: f64, rule: Rule, band: [f64; 2], severity: f64, detail: String| Alert {
            checkpoint: p.checkpoint.clone(),
            step: p.step,
            layer: p.layer,
            head: p.head,
            measure,
            value,
            rule,
            band,
            severity,
            detail,
        };
        if coherence_watched && enter(p.key_coherence > thr, Rule::Coherence) {
            out.push(mk(
                Measure::KeyCoherence,
                p.key_coherence,
                Rule::Coherence,
                [1.0, thr],
                rules.z_max * p.key_coherence / thr,
                format!("above threshold {thr:.3} (bound n/(d+1) = {bound:.3})"),
            ));
        }
        if rules.revert_frac > 0.0 && (formed || left) {
            let u = uniform_entropy(p.n);
            let thr = rules.revert_frac * u;
            if enter(p.attention_entropy >= thr, Rule::Reverted) {
                out.push(mk(
                    Measure::AttentionEntropy,
                    p.attention_entropy,
                    Rule::Reverted,
                    [0.0, thr],
                    rules.z_max * p.attention_entropy / thr,
                    format!(
                        "{}'s attention is uniform again (entropy ≥ {} × {u:.4}, the entropy of uniform causal attention)",
                        if formed { "a formed head" } else { "a head that had left uniform attention (not formed)" },
                        rules.revert_frac
                    ),
                ));
            }
        }
        if !formed {
            return;
        }
        if rules.collapse {
            let floor = 2.0 / p.n.max(1) as f64;
            let pr_low = p.participation_ratio < floor;
            let k90_one = rules.collapse_k90 && p.k90 == 1;
            if enter(pr_low || k90_one, Rule::Collapse) {
                let (m, v, band, sev) = if pr_low {
                    (
                        Measure::ParticipationRatio,
                        p.participation_ratio,
                        [floor, 1.0],
                        rules.z_max * floor / p.participation_ratio.max(1e-12),
                    )
                } else {
                    (Measure::K90, 1.0, [2.0, p.d as f64], rules.z_max)
                };
                out.push(mk(
                    m,
                    v,
                    Rule::Collapse,
                    band,
                    sev,
                    format!("head collapsed (k90 = {}, participation_ratio {:.4} vs 2/n = {floor:.4})", p.k90, p.participation_ratio),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn point(step: u64, head: usize, entropy: f64, pr: f64, kc: f64) -> HeadPoint {
        HeadPoint {
            checkpoint: None,
            step,
            layer: 1,
            head,
            kv_head: head / 2,
            n: 64,
            d: 16,
            key_coherence: kc,
            participation_ratio: pr,
            k90: 1,
            attention_entropy: entropy,
            key_spread: f64::NAN,
        }
    }

    /// Head 0 of [`point`] (formed: entropy 2.0) with key_spread `ks`.
    fn spread_point(step: u64, ks: f64) -> HeadPoint {
        HeadPoint { key_spread: ks, ..point(step, 0, 2.0, 0.5, 2.0) }
    }

    #[test]
    fn robust_z_uses_median_and_mad_with_a_floor() {
        let h = [1.0, 2.0, 3.0, 4.0, 100.0];
        let (z, med, scale) = robust_z(3.0 + 1.4826 * 6.0, &h, 0.0);
        assert_eq!(med, 3.0);
        assert!((scale - 1.4826).abs() < 1e-12 && (z - 6.0).abs() < 1e-9);
        // MAD 0: the floor (5 % of |median|) keeps z finite.
        let (z, _, scale) = robust_z(2.2, &[2.0; 6], 0.05);
        assert!((scale - 0.1).abs() < 1e-12 && (z - 2.0).abs() < 1e-9);
    }

    #[test]
    fn uniform_entropy_of_64_causal_rows() {
        // The 3.21 nats of an untrained head (docs/monitor.md).
        assert!((uniform_entropy(64) - 3.2058).abs() < 1e-3, "{}", uniform_entropy(64));
        assert_eq!(uniform_entropy(1), 0.0);
    }

    #[test]
    fn measures_and_rules_have_names() {
        assert_eq!(Measure::ALL.map(Measure::name), ["key_coherence", "participation_ratio", "k90", "attention_entropy", "key_spread"]);
        assert_eq!(Measure::parse("k90"), Some(Measure::K90));
        assert_eq!(Measure::parse("nope"), None);
        assert_eq!(serde_json::to_string(&Rule::Collapse).unwrap(), "\"collapse\"");
        assert!(Rules::default().validate().is_ok());
        assert!(Rules { window: 1, ..Rules::default() }.validate().is_err());
        assert!(Rules { z_max: f64::NAN, ..Rules::default() }.validate().is_err());
        assert!(Rules { jump: 1.0, ..Rules::default() }.validate().is_err());
        assert!(Rules { jump: 0.0, ..Rules::default() }.validate().is_ok());
        assert_eq!(serde_json::to_string(&Rule::Jump).unwrap(), "\"jump\"");
    }

    #[test]
    fn unformed_head_is_silent_then_a_formed_head_alerts_once_with_its_band() {
        let rules = Rules { relative: 0.0, consecutive: 1, log_band: false, z_max: 6.0, min_history: 5, ..Rules::default() };
        let mut st = RuleState::default();
        // Head 2 attends uniformly (3.2 nats) then forms (2.0): no alert, it was never formed.
        for s in 0..10 {
            assert!(st.observe(&rules, &[point(s * 10, 2, 3.2, 0.5, 2.0)]).is_empty());
        }
        for s in 10..20 {
            assert!(st.observe(&rules, &[point(s * 10, 2, 2.0 + 0.01 * (s % 3) as f64, 0.5, 2.0)]).is_empty(), "step {s}");
        }
        // Now formed and settled: the entropy falls far out of its band.
        let a = st.observe(&rules, &[point(200, 2, 0.2, 0.5, 2.0)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].rule, a[0].measure, a[0].layer, a[0].head), (Rule::Band, Measure::AttentionEntropy, 1, 2));
        assert!(a[0].band[0] > 0.2 && a[0].band[0] < 2.0 && a[0].band[1] > 2.0 && a[0].severity > 6.0, "{a:?}");
        assert!(a[0].to_string().contains("L1H2 attention_entropy = 0.2000 outside ["), "{}", a[0]);
        // Still out of band: no second alert in the same episode.
        assert!(st.observe(&rules, &[point(210, 2, 0.2, 0.5, 2.0)]).is_empty());
        let tr = st.trace(1, 2, Measure::AttentionEntropy);
        assert_eq!(tr.len(), 22);
        assert!(tr[0].band.is_none() && tr[20].band.is_some());
    }

    #[test]
    fn consecutive_and_relative_rules() {
        let feed = |rules: &Rules| -> Vec<Vec<Alert>> {
            let mut st = RuleState::default();
            let mut all = Vec::new();
            for s in 0..12 {
                // Head 0 collapses hard from step 100 (z −19), head 1 leaves its band by less (z −8).
                let (e0, e1) = if s >= 10 { (0.1, 1.2) } else { (2.0 + 0.01 * (s % 2) as f64, 2.0 + 0.01 * (s % 2) as f64) };
                all.push(st.observe(rules, &[point(s * 10, 0, e0, 0.5, 2.0), point(s * 10, 1, e1, 0.5, 2.0)]));
            }
            all
        };
        // The band rule alone (the step rule would see the jump at once; it ignores `consecutive`).
        let base = Rules { relative: 0.0, consecutive: 1, log_band: false, z_max: 6.0, min_history: 5, step_max: 0.0, ..Rules::default() };
        let a = feed(&base);
        assert_eq!(a[10].len(), 2, "{:?}", a[10]);
        // Sorted by severity: head 0 first.
        assert_eq!((a[10][0].head, a[10][1].head), (0, 1));
        let a = feed(&Rules { relative: 0.5, ..base.clone() });
        assert_eq!(a[10].iter().map(|x| x.head).collect::<Vec<_>>(), [0]);
        let a = feed(&Rules { consecutive: 2, ..base.clone() });
        assert!(a[10].is_empty() && a[11].len() == 2, "{a:?}");
    }

    #[test]
    fn log_band_flags_a_collapse_not_a_drift_and_reports_the_band_in_units() {
        let rules = Rules::default();
        assert!(rules.log_band);
        let mut st = RuleState::default();
        // Formed at the 5th observation; the band needs `min_history` (10) more.
        for s in 0..16 {
            assert!(st.observe(&rules, &[point(s * 10, 0, 2.0 + 0.02 * (s % 3) as f64, 0.5, 2.0)]).is_empty());
        }
        // A 20 % drift: ln(1.6/2.02) = −0.23, z −4.7 against the 0.05 floor: in band.
        assert!(st.observe(&rules, &[point(160, 0, 1.6, 0.5, 2.0)]).is_empty());
        assert!(st.trace(1, 0, Measure::AttentionEntropy)[16].band.is_some());
        // A 40-fold fall: z = ln(0.05/2.02)/0.05 = −74.
        let a = st.observe(&rules, &[point(170, 0, 0.05, 0.5, 2.0)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].severity > 60.0 && a[0].severity < 90.0, "{a:?}");
        // The band is in the measure's units: median · exp(± z_max · 0.05).
        assert!((a[0].band[0] - 2.02 * (-0.5f64).exp()).abs() < 0.05 && (a[0].band[1] - 2.02 * 0.5f64.exp()).abs() < 0.1, "{a:?}");
    }

    #[test]
    fn key_spread_is_watched_by_default_and_a_missing_value_is_not() {
        let rules = Rules::default();
        assert!(rules.band_measures.contains(&Measure::KeySpread));
        let mut st = RuleState::default();
        for s in 0..16 {
            let a = st.observe(&rules, &[spread_point(s * 10, 0.3 + 0.01 * (s % 3) as f64)]);
            assert!(a.is_empty(), "{a:?}");
        }
        // Not measured (NaN): neither checked nor kept in the history.
        assert!(st.observe(&rules, &[spread_point(160, f64::NAN)]).is_empty());
        // One direction takes over the keys: 0.31 → 0.05, z = ln(0.05/0.31)/0.05 = −36.
        let a = st.observe(&rules, &[spread_point(170, 0.05)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].rule, a[0].measure), (Rule::Band, Measure::KeySpread));
        assert!(a[0].severity > 30.0 && a[0].severity < 40.0, "{a:?}");
    }

    /// A head whose key_spread grows 9 % per observation (0.02 → 0.3 over 30
    /// observations, as gpt2 seed 102's L0H0 did), with a small wiggle.
    fn trending(s: u64) -> f64 {
        0.02 * (0.09 * s as f64).exp() * (1.0 + 0.01 * (s % 3) as f64)
    }

    #[test]
    fn step_rule_flags_a_jump_inside_a_wide_band() {
        let rules = Rules::default();
        let mut st = RuleState::default();
        for s in 0..35 {
            let a = st.observe(&rules, &[spread_point(s * 10, trending(s))]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        // 0.49 → 0.07: back inside the range of its last 30 observations, so the band
        // (median ≈ 0.1, scale ≈ 1 in ln: the trend) does not see it ...
        let tr = st.trace(1, 0, Measure::KeySpread);
        let band = tr[tr.len() - 1].band.unwrap();
        assert!(band[0] < 0.07 && band[1] > 0.07, "{band:?}");
        // ... but the step, ln(0.07/0.49) = −1.9 against usual steps of +0.09 ± 0.05, is z ≈ −40.
        let a = st.observe(&rules, &[spread_point(350, 0.07)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].rule, a[0].measure, a[0].layer, a[0].head), (Rule::Step, Measure::KeySpread, 1, 0));
        assert!(a[0].severity > 30.0 && a[0].severity < 50.0, "{a:?}");
        // Its band: the values one usual step from the previous observation allows.
        let prev = trending(34);
        assert!(a[0].band[0] > 0.07 && a[0].band[0] < prev && a[0].band[1] > prev * 1.09, "{a:?}");
        assert!(a[0].to_string().contains("step rule"), "{}", a[0]);
        // Staying at the new level is no new step.
        assert!(st.observe(&rules, &[spread_point(360, 0.07)]).is_empty());
        // Off: silent.
        let mut st = RuleState::default();
        let off = Rules { step_max: 0.0, ..Rules::default() };
        for s in 0..35 {
            st.observe(&off, &[spread_point(s * 10, trending(s))]);
        }
        assert!(st.observe(&off, &[spread_point(350, 0.07)]).is_empty());
    }

    #[test]
    fn step_rule_waits_for_its_own_minimum_history() {
        // A steady head (formed at the 5th observation, its history restarted then) whose key_spread
        // falls 5-fold: with 12 observations of history only the band may see it, with 15 the step rule too.
        let rules = Rules { band_measures: vec![Measure::KeySpread], unformed_measures: vec![], z_max: 1e6, ..Rules::default() };
        for (n, want) in [(12, 0), (15, 1)] {
            let mut st = RuleState::default();
            for s in 0..(4 + n) {
                let ks = 0.3 * (1.0 + 0.02 * (s % 3) as f64);
                assert!(st.observe(&rules, &[spread_point(s as u64 * 10, ks)]).is_empty(), "step {s}");
            }
            let a = st.observe(&rules, &[spread_point((4 + n) as u64 * 10, 0.06)]);
            assert_eq!(a.iter().filter(|x| x.rule == Rule::Step).count(), want, "history {n}: {a:?}");
        }
    }

    #[test]
    fn band_rule_alerts_on_a_jump_out_of_band_not_on_a_drift_there() {
        // A formed, settled head at entropy 2.0 (within 2 %), then either a drift to 1.0 over three
        // observations (a head that sharpens as it learns) or the same fall in one observation.
        let run = |rules: &Rules, tail: &[f64]| -> Vec<Alert> {
            let mut st = RuleState::default();
            for s in 0..20 {
                assert!(st.observe(rules, &[point(s * 10, 0, 2.0 + 0.02 * (s % 3) as f64, 0.5, 2.0)]).is_empty(), "step {s}");
            }
            tail.iter().enumerate().flat_map(|(i, &e)| st.observe(rules, &[point(200 + 10 * i as u64, 0, e, 0.5, 2.0)])).collect()
        };
        let drift = [1.6, 1.25, 1.0, 1.0, 1.0];
        // The last step (ln 1.25 → ln 1.0) carries 32 % of the distance from the median: no alert, by
        // the band (default 0.5) nor by the step rule (each step is 4.5 floor units, under 8).
        assert!(run(&Rules::default(), &drift).is_empty());
        let old = run(&Rules { band_step_frac: 0.0, ..Rules::default() }, &drift);
        assert_eq!(old.len(), 1, "{old:?}");
        assert!(
            old[0].rule == Rule::Band && old[0].step == 220 && old[0].detail.contains("its last step carried 32 % of that distance"),
            "{old:?}"
        );
        let jump = run(&Rules::default(), &[1.0, 1.0]);
        assert_eq!(jump.len(), 1, "{jump:?}");
        assert!(jump[0].rule == Rule::Band && jump[0].step == 200 && jump[0].detail.contains("carried 100 %"), "{jump:?}");
        assert!(Rules { band_step_frac: 1.5, ..Rules::default() }.validate().is_err());
    }

    #[test]
    fn step_rule_is_silent_on_drift_and_on_noise_of_the_usual_size() {
        let rules = Rules::default();
        // The trend goes on, however far it drifts.
        let mut st = RuleState::default();
        for s in 0..60 {
            let a = st.observe(&rules, &[spread_point(s * 10, trending(s).min(0.9))]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        // A noisy head (±20 % from one observation to the next): a 40 % fall is one of its usual steps.
        let noisy = |s: u64| 0.3 * [1.0, 1.2, 0.85, 1.15, 0.9, 1.2, 0.85][(s % 7) as usize];
        let mut st = RuleState::default();
        for s in 0..30 {
            assert!(st.observe(&rules, &[spread_point(s * 10, noisy(s))]).is_empty(), "step {s}");
        }
        assert!(st.observe(&rules, &[spread_point(300, noisy(29) * 0.6)]).is_empty());
        // (checked: the head is watched, its band applies)
        assert!(st.trace(1, 0, Measure::KeySpread).last().unwrap().band.is_some());
    }

    #[test]
    fn a_formed_head_back_to_uniform_attention_has_reverted() {
        let rules = Rules::default();
        let mut st = RuleState::default();
        for s in 0..8 {
            st.observe(&rules, &[point(s * 10, 0, 2.5, 0.5, 2.0)]);
        }
        let u = uniform_entropy(64);
        let a = st.observe(&rules, &[point(80, 0, u, 0.5, 2.0)]);
        assert!(a.iter().any(|x| x.rule == Rule::Reverted && x.measure == Measure::AttentionEntropy), "{a:?}");
        // On entry only.
        assert!(st.observe(&rules, &[point(90, 0, u, 0.5, 2.0)]).iter().all(|x| x.rule != Rule::Reverted));
        // Back to 0.9907 × uniform, as a healthy formed gpt2 head of held-out seed 13 at step 110
        // (an alert under session 5's threshold 0.99): not uniform again.
        let mut st = RuleState::default();
        for s in 0..8 {
            st.observe(&rules, &[point(s * 10, 0, 2.5, 0.5, 2.0)]);
        }
        assert!(st.observe(&rules, &[point(80, 0, u * 0.9907, 0.5, 2.0)]).iter().all(|x| x.rule != Rule::Reverted));
        // A head that never formed (nor left uniform attention) never reverts.
        let mut st = RuleState::default();
        for s in 0..10 {
            assert!(st.observe(&rules, &[point(s * 10, 1, u, 0.5, 2.0)]).is_empty());
        }
    }

    #[test]
    fn jump_rule_flags_an_unformed_head_whose_entropy_falls_tenfold_not_a_forming_one() {
        // As gpt2 held-out seeds 6 and 8, L0H0: a head at 0.94–0.97 × uniform (not formed) whose
        // W_Q and W_K are scaled ×10: its entropy falls 35-fold in one observation.
        let rules = Rules::default();
        let u = uniform_entropy(64);
        let mut st = RuleState::default();
        for s in 0..30 {
            let e = u * (0.97 - 0.001 * s as f64);
            assert!(st.observe(&rules, &[point(s * 10, 0, e, 0.5, 2.0)]).is_empty(), "step {s}");
        }
        let a = st.observe(&rules, &[point(300, 0, 0.089, 0.5, 2.0)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].rule, a[0].measure, a[0].head), (Rule::Jump, Measure::AttentionEntropy, 0), "{a:?}");
        assert!(a[0].severity > 14.0 && a[0].severity < 17.0, "{a:?}");
        assert!(a[0].band[0] > 0.28 && a[0].band[0] < 0.31, "{a:?}");
        assert!(a[0].detail.contains("fell 33.") && a[0].detail.contains("head not formed"), "{}", a[0].detail);
        // A head that forms, even fast (3.2 → 0.4 nats over four observations, 1.5–2.5-fold each), is silent.
        let mut st = RuleState::default();
        for (s, e) in [u, u, 2.2, 1.2, 0.6, 0.4, 0.4, 0.41, 0.4].into_iter().enumerate() {
            let a = st.observe(&rules, &[point(s as u64 * 10, 1, e, 0.5, 2.0)]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        // Off: silent.
        let off = Rules { jump: 0.0, ..Rules::default() };
        let mut st = RuleState::default();
        for s in 0..30 {
            st.observe(&off, &[point(s * 10, 0, u * 0.96, 0.5, 2.0)]);
        }
        assert!(st.observe(&off, &[point(300, 0, 0.089, 0.5, 2.0)]).is_empty());
    }

    #[test]
    fn jump_rule_leaves_a_watched_head_to_its_band() {
        // A formed head past its warm-up: the band (and step) rules see a 40-fold fall; no jump alert too.
        let rules = Rules::default();
        let mut st = RuleState::default();
        for s in 0..16 {
            st.observe(&rules, &[point(s * 10, 0, 2.0 + 0.02 * (s % 3) as f64, 0.5, 2.0)]);
        }
        let a = st.observe(&rules, &[point(160, 0, 0.05, 0.5, 2.0)]);
        assert!(!a.is_empty() && a.iter().all(|x| x.rule != Rule::Jump), "{a:?}");
        // In the warm-up (formed at the 5th observation, band from the 15th), the jump rule watches it.
        let mut st = RuleState::default();
        for s in 0..8 {
            st.observe(&rules, &[point(s * 10, 0, 2.0 + 0.02 * (s % 3) as f64, 0.5, 2.0)]);
        }
        let a = st.observe(&rules, &[point(80, 0, 0.05, 0.5, 2.0)]);
        assert!(a.iter().any(|x| x.rule == Rule::Jump && x.detail.contains("in warm-up")), "{a:?}");
    }

    #[test]
    fn a_head_that_left_uniform_attention_and_returns_to_it_has_reverted() {
        // As gpt2 held-out seed 8, L1H2: at 0.95–0.97 × uniform (left, not formed), re-initialised:
        // its attention is uniform to 5 digits.
        let rules = Rules::default();
        let u = uniform_entropy(64);
        let mut st = RuleState::default();
        for s in 0..20 {
            let a = st.observe(&rules, &[point(s * 10, 0, u * (0.97 - 0.001 * (s % 3) as f64), 0.5, 2.0)]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        let a = st.observe(&rules, &[point(200, 0, u * 0.99998, 0.5, 2.0)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].rule, a[0].measure), (Rule::Reverted, Measure::AttentionEntropy), "{a:?}");
        assert!(a[0].detail.contains("not formed"), "{}", a[0].detail);
        // Back to 0.9985 × uniform (the closest a healthy head came in the seen runs): silent.
        let mut st = RuleState::default();
        for s in 0..20 {
            st.observe(&rules, &[point(s * 10, 0, u * 0.97, 0.5, 2.0)]);
        }
        assert!(st.observe(&rules, &[point(200, 0, u * 0.9985, 0.5, 2.0)]).is_empty());
        // A head that never left 0.98 × uniform never reverts.
        let mut st = RuleState::default();
        for s in 0..20 {
            assert!(st.observe(&rules, &[point(s * 10, 0, u * 0.985, 0.5, 2.0)]).is_empty());
        }
        assert!(st.observe(&rules, &[point(200, 0, u, 0.5, 2.0)]).is_empty());
        // Off: silent.
        let off = Rules { revert_frac: 0.0, ..Rules::default() };
        let mut st = RuleState::default();
        for s in 0..20 {
            st.observe(&off, &[point(s * 10, 0, u * 0.97, 0.5, 2.0)]);
        }
        assert!(st.observe(&off, &[point(200, 0, u, 0.5, 2.0)]).is_empty());
    }

    #[test]
    fn threshold_rules_alert_on_entry() {
        let rules = Rules::default();
        let mut st = RuleState::default();
        // Formed at the 5th observation; key_coherence watched after `min_history` (10) more.
        for s in 0..16 {
            st.observe(&rules, &[point(s * 10, 0, 2.0, 0.5, 2.0 + 0.02 * (s % 3) as f64)]);
        }
        let a = st.observe(&rules, &[point(160, 0, 2.0, 0.01, 3.6)]);
        assert!(a.iter().any(|x| x.rule == Rule::Coherence) && a.iter().any(|x| x.rule == Rule::Collapse), "{a:?}");
        let a = st.observe(&rules, &[point(170, 0, 2.0, 0.01, 3.6)]);
        assert!(a.iter().all(|x| x.rule == Rule::Band || x.rule == Rule::Step), "{a:?}");
    }

    #[test]
    fn coherence_rule_is_silent_during_the_warm_up() {
        // As gpt2 tuning seed 104's layer-1 heads: key_coherence at 0.98 × its bound for one
        // observation while the head forms (formed at the 5th observation, band from the 15th).
        let rules = Rules::default();
        let mut st = RuleState::default();
        for s in 0..15 {
            let kc = if s == 11 { 3.7 } else { 2.8 + 0.05 * (s % 3) as f64 };
            let a = st.observe(&rules, &[point(s * 10, 0, 2.5, 0.5, kc)]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        // Past the warm-up, the same value alerts (and, 3.7 against a band around 2.85, the band too).
        let a = st.observe(&rules, &[point(150, 0, 2.5, 0.5, 3.7)]);
        assert!(a.iter().any(|x| x.rule == Rule::Coherence && x.measure == Measure::KeyCoherence), "{a:?}");
    }

    #[test]
    fn key_spread_of_an_unformed_head_is_watched_once_settled() {
        // Head 0 attends uniformly all along (never formed); its keys' spread is steady
        // (after a fast first 40 steps), then falls 10-fold in one observation (a key fault).
        let rules = Rules::default();
        let u = uniform_entropy(64);
        let with = |step: u64, ks: f64| HeadPoint { key_spread: ks, ..point(step, 0, u, 0.5, 2.0) };
        let ks = |s: u64| if s < 4 { 0.9 / (s + 1) as f64 } else { 0.3 * (1.0 + 0.03 * (s % 3) as f64) };
        let mut st = RuleState::default();
        for s in 0..30 {
            let a = st.observe(&rules, &[with(s * 10, ks(s))]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        let a = st.observe(&rules, &[with(300, 0.03)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].rule, a[0].measure), (Rule::Band, Measure::KeySpread), "{a:?}");
        // Its history started when it settled (7th observation, keeping its last 5 values):
        // 28 observations, not the 30 of the window; the fast start (0.9, 0.45) is not in the band.
        assert!(a[0].detail.contains("of its last 28 observations"), "{}", a[0].detail);
        // The old warm-up (formed heads only): silent.
        let old = Rules { unformed_measures: vec![], ..Rules::default() };
        let mut st = RuleState::default();
        for s in 0..30 {
            st.observe(&old, &[with(s * 10, ks(s))]);
        }
        assert!(st.observe(&old, &[with(300, 0.03)]).is_empty());
        // Forming does not restart its history: a head that forms just before the fault is still watched.
        let mut st = RuleState::default();
        for s in 0..30 {
            let e = if s < 24 { u } else { 2.0 };
            let a = st.observe(&rules, &[HeadPoint { key_spread: ks(s), ..point(s * 10, 0, e, 0.5, 2.0) }]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        let a = st.observe(&rules, &[HeadPoint { key_spread: 0.03, ..point(300, 0, 2.0, 0.5, 2.0) }]);
        assert!(a.iter().any(|x| x.measure == Measure::KeySpread), "{a:?}");
    }

    #[test]
    fn key_spread_noise_of_an_unformed_head_is_silent() {
        // ±15 % from one observation to the next, around a slow drift, attention uniform.
        let rules = Rules::default();
        let u = uniform_entropy(64);
        let noisy = |s: u64| 0.3 * (1.0 + 0.01 * s as f64) * [1.0, 1.15, 0.87, 1.1, 0.9, 1.15, 0.86][(s % 7) as usize];
        let mut st = RuleState::default();
        for s in 0..60 {
            let a = st.observe(&rules, &[HeadPoint { key_spread: noisy(s), ..point(s * 10, 0, u, 0.5, 2.0) }]);
            assert!(a.is_empty(), "step {s}: {a:?}");
        }
        assert!(st.trace(1, 0, Measure::KeySpread).last().unwrap().band.is_some());
    }
}
