//! Stage timings of one analysis, for the benchmark's breakdown by measure
//! (`field::testing::analyze_laps`). Disabled (the default path of
//! [`crate::analyze`]) it never reads the clock.

use std::time::Instant;

/// Wall time of each stage of one analysis, in the order run.
#[derive(Default)]
pub(crate) struct Laps(Option<(Instant, Vec<(&'static str, f64)>)>);

impl Laps {
    /// A recorder that reads the clock at every [`Laps::lap`].
    pub fn on() -> Self {
        Laps(Some((Instant::now(), Vec::new())))
    }
    /// Closes the stage `name`: the time since the previous lap (or the start).
    #[inline]
    pub fn lap(&mut self, name: &'static str) {
        if let Some((t, v)) = &mut self.0 {
            let now = Instant::now();
            v.push((name, (now - *t).as_secs_f64()));
            *t = now;
        }
    }
    fn into_vec(self) -> Vec<(&'static str, f64)> {
        self.0.map(|(_, v)| v).unwrap_or_default()
    }
}

/// [`crate::analyze`] (factored, no soft-cap) with the seconds spent in each
/// stage: features, leverage (QR of B), QR of A, spectrum, key energy (the
/// blocked sweep; folded into the row checks when every row is checked), row
/// checks, learned spectrum, summaries. Not API: the benchmark's breakdown.
#[doc(hidden)]
pub fn analyze_laps(
    head: &crate::HeadInput<'_>,
    params: &crate::Params,
) -> crate::Result<(crate::HeadField, Vec<(&'static str, f64)>)> {
    let mut laps = Laps::on();
    head.validate()?;
    laps.lap("validate");
    let parts = crate::factored::analyze_timed(head, params, crate::features::Fault::None, &mut laps)?;
    let out = crate::finish_timed(head, params, parts, &mut laps)?;
    Ok((out, laps.into_vec()))
}
