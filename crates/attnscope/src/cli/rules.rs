//! The monitor's alert rules as command-line options (shared by `train`,
//! `monitor` and `monitor-eval`). The library's [`Rules`] knows nothing of
//! clap; every default here is `Rules::default()`'s.

use clap::Args;

use crate::monitor::{Measure, Rules};

#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// Alert when a head's measure is more than this many robust z-units
    /// (|x − median| / max(1.4826·MAD, --band-rel-floor·|median|) over its recent history) from its band.
    #[arg(long, default_value_t = Rules::default().z_max, value_parser = positive_finite)]
    pub z_max: f64,
    /// Observations of a head (since it formed) before the band rule applies.
    #[arg(long, default_value_t = Rules::default().min_history)]
    pub min_history: usize,
    /// Recent observations the band (median, MAD) is computed over.
    #[arg(long, default_value_t = Rules::default().window)]
    pub history_window: usize,
    /// Smallest band scale, as a fraction of |median|.
    #[arg(long, default_value_t = Rules::default().rel_floor, value_parser = non_negative_finite)]
    pub band_rel_floor: f64,
    /// Measures the band rule watches (comma-separated: key_coherence,
    /// participation_ratio, k90, attention_entropy, key_spread).
    #[arg(long, value_delimiter = ',', value_parser = measure)]
    pub band_measures: Option<Vec<Measure>>,
    /// Watched measures that do not wait for the head to form (their warm-up is their own
    /// settling; comma-separated, or `none`; default key_spread).
    #[arg(long, value_delimiter = ',', value_parser = measure_or_none)]
    pub unformed_measures: Option<Vec<Option<Measure>>>,
    /// Warm-up: a head must be formed, and a measure settled, over this many observations.
    #[arg(long, default_value_t = Rules::default().settle)]
    pub settle: usize,
    /// Warm-up: a measure is settled when its last --settle values spread over at most this × |median|.
    #[arg(long, default_value_t = Rules::default().settle_tol, value_parser = non_negative_finite)]
    pub settle_tol: f64,
    /// Warm-up: a head is formed when its median entropy over --settle
    /// observations is at most this × the entropy of uniform causal attention.
    #[arg(long, default_value_t = Rules::default().formed_frac, value_parser = positive_finite)]
    pub formed_frac: f64,
    /// Out of band this many observations in a row before the alert.
    #[arg(long, default_value_t = Rules::default().consecutive)]
    pub consecutive: usize,
    /// Band: an out-of-band episode alerts only once one of its observations jumped there: its step
    /// from the previous observation carries at least this fraction of its distance from the band's
    /// median (a head that learns drifts out over several observations; 0: off).
    #[arg(long, default_value_t = Rules::default().band_step_frac, value_parser = non_negative_finite)]
    pub band_step_frac: f64,
    /// Step rule: alert when a head's step from its previous observation (in ln) is more than this
    /// many robust z-units from its usual steps over the same history (0: off).
    #[arg(long, default_value_t = Rules::default().step_max, value_parser = non_negative_finite)]
    pub step_max: f64,
    /// Step rule: observations of history (since the head formed, or the measure settled) before it
    /// applies (the band's --min-history if larger).
    #[arg(long, default_value_t = Rules::default().step_min_history)]
    pub step_min_history: usize,
    /// Of the heads out of band at one observation, only those with |z| at
    /// least this fraction of the largest alert (0: all).
    #[arg(long, default_value_t = Rules::default().relative, value_parser = non_negative_finite)]
    pub relative: f64,
    /// Alert when key_coherence exceeds this (default: --coherence-frac of its bound n/(d+1)).
    #[arg(long, value_parser = positive_finite)]
    pub coherence_max: Option<f64>,
    #[arg(long, default_value_t = Rules::default().coherence_frac, value_parser = positive_finite)]
    pub coherence_frac: f64,
    /// Apply the band rule only from this training step on (default 0: the
    /// per-head warm-up decides).
    #[arg(long, default_value_t = Rules::default().band_after)]
    pub band_after: u64,
    /// Disable the collapse rule (participation_ratio < 2/n).
    #[arg(long)]
    pub no_collapse_alert: bool,
    /// Also count k90 = 1 as a collapse (off by default: small healthy heads often have k90 = 1).
    #[arg(long)]
    pub collapse_k90: bool,
    /// Band on the measure itself instead of its logarithm (then --band-rel-floor
    /// is a fraction of |median| and --settle-tol of |median|).
    #[arg(long)]
    pub linear_band: bool,
    /// A head that has left uniform attention (--left-frac; formed or not) and whose attention
    /// entropy reaches this × the entropy of uniform causal attention has reverted (0: off).
    #[arg(long, default_value_t = Rules::default().revert_frac, value_parser = non_negative_finite)]
    pub revert_frac: f64,
    /// While a head's entropy band is not warm yet (not formed, or in its warm-up), alert when its
    /// attention entropy changes by at least this factor from one observation to the next (0: off).
    #[arg(long, default_value_t = Rules::default().jump, value_parser = non_negative_finite)]
    pub jump: f64,
    /// A head has left uniform attention once its median entropy over --settle observations is at
    /// most this × the uniform entropy (it need not have formed).
    #[arg(long, default_value_t = Rules::default().left_frac, value_parser = positive_finite)]
    pub left_frac: f64,
}

/// A threshold: a finite number above 0 (NaN would silently disable a
/// rule, since every comparison with NaN is false).
fn positive_finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("not a finite number above 0".into()),
    }
}

/// A finite number ≥ 0.
fn non_negative_finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("not a finite number ≥ 0".into()),
    }
}

fn measure(s: &str) -> Result<Measure, String> {
    Measure::parse(s.trim()).ok_or_else(|| "not a measure (key_coherence, participation_ratio, k90, attention_entropy, key_spread)".into())
}

fn measure_or_none(s: &str) -> Result<Option<Measure>, String> {
    if s.trim() == "none" {
        return Ok(None);
    }
    measure(s).map(Some)
}

impl RuleArgs {
    /// The rules, checked (an inconsistent combination is an error, exit 2).
    pub fn rules(&self) -> anyhow::Result<Rules> {
        let r = Rules {
            z_max: self.z_max,
            min_history: self.min_history,
            window: self.history_window,
            rel_floor: self.band_rel_floor,
            band_measures: self.band_measures.clone().unwrap_or_else(|| Rules::default().band_measures),
            unformed_measures: match &self.unformed_measures {
                Some(v) => v.iter().flatten().copied().collect(),
                None => Rules::default().unformed_measures,
            },
            settle: self.settle,
            settle_tol: self.settle_tol,
            formed_frac: self.formed_frac,
            consecutive: self.consecutive,
            band_step_frac: self.band_step_frac,
            step_max: self.step_max,
            step_min_history: self.step_min_history,
            relative: self.relative,
            band_after: self.band_after,
            coherence_max: self.coherence_max,
            coherence_frac: self.coherence_frac,
            collapse: !self.no_collapse_alert,
            collapse_k90: self.collapse_k90,
            log_band: !self.linear_band,
            revert_frac: self.revert_frac,
            jump: self.jump,
            left_frac: self.left_frac,
        };
        r.validate().map_err(|e| anyhow::anyhow!("rules: {e}"))?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        r: RuleArgs,
    }

    #[test]
    fn cli_defaults_are_the_library_defaults() {
        let r = P::try_parse_from(["x"]).unwrap().r.rules().unwrap();
        assert_eq!(r, Rules::default());
        let r = P::try_parse_from(["x", "--band-measures", "k90,attention_entropy", "--relative", "0.3"]).unwrap().r.rules().unwrap();
        assert_eq!(r.band_measures, [Measure::K90, Measure::AttentionEntropy]);
        assert_eq!(r.relative, 0.3);
        assert!(P::try_parse_from(["x", "--band-measures", "loss"]).is_err());
        assert_eq!(Rules::default().unformed_measures, [Measure::KeySpread]);
        let r = P::try_parse_from(["x", "--unformed-measures", "none"]).unwrap().r.rules().unwrap();
        assert!(r.unformed_measures.is_empty());
        let r = P::try_parse_from(["x", "--unformed-measures", "key_spread,key_coherence"]).unwrap().r.rules().unwrap();
        assert_eq!(r.unformed_measures, [Measure::KeySpread, Measure::KeyCoherence]);
        assert!(P::try_parse_from(["x", "--unformed-measures", "loss"]).is_err());
        assert!(P::try_parse_from(["x", "--z-max", "nan"]).is_err());
        assert!(P::try_parse_from(["x", "--history-window", "1"]).unwrap().r.rules().is_err());
        let r = P::try_parse_from(["x", "--jump", "0", "--left-frac", "0.95"]).unwrap().r.rules().unwrap();
        assert_eq!((r.jump, r.left_frac), (0.0, 0.95));
        assert!(P::try_parse_from(["x", "--jump", "0.5"]).unwrap().r.rules().is_err());
        assert!(P::try_parse_from(["x", "--left-frac", "1.5"]).unwrap().r.rules().is_err());
    }
}
