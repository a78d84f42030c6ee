//! Stage timings of one analysis, for the benchmark's breakdown by measure
//! (`field::testing::analyze_laps`). Disabled (the default path of
//! [`crate::analyze`]) it never reads the clock.

use std::sync::OnceLock;
use std::time::Instant;

/// Seconds on a clock: the wall clock by default ([`wall_seconds`]), or any
/// other monotonic clock (the benchmark passes the process CPU time).
pub type Clock = fn() -> f64;

/// Seconds of wall time since the first call.
pub fn wall_seconds() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Time of each stage of one analysis, in the order run.
#[derive(Default)]
pub(crate) struct Laps(Option<LapState>);

/// (clock, the time of the last lap, (stage, seconds) so far).
type LapState = (Clock, f64, Vec<(&'static str, f64)>);

impl Laps {
    /// A recorder that reads `clock` at every [`Laps::lap`].
    pub fn on(clock: Clock) -> Self {
        Laps(Some((clock, clock(), Vec::new())))
    }
    /// Closes the stage `name`: the time since the previous lap (or the start).
    #[inline]
    pub fn lap(&mut self, name: &'static str) {
        if let Some((clock, t, v)) = &mut self.0 {
            let now = clock();
            v.push((name, now - *t));
            *t = now;
        }
    }
    fn into_vec(self) -> Vec<(&'static str, f64)> {
        self.0.map(|(_, _, v)| v).unwrap_or_default()
    }
}

/// [`crate::analyze`] (factored, no soft-cap) with the seconds of `clock`
/// spent in each stage: validation, features, leverage (QR of B), QR of A, spectrum, key energy (the
/// blocked sweep; folded into the row checks when every row is checked), row
/// checks, learned spectrum, summaries. Not API: the benchmark's breakdown.
#[doc(hidden)]
pub fn analyze_laps(
    head: &crate::HeadInput<'_>,
    params: &crate::Params,
    clock: Clock,
) -> crate::Result<(crate::HeadField, Vec<(&'static str, f64)>)> {
    let mut laps = Laps::on(clock);
    head.validate()?;
    laps.lap("validate");
    let parts = crate::factored::analyze_timed(head, params, crate::features::Fault::None, &mut laps)?;
    let out = crate::finish_timed(head, params, parts, &mut laps)?;
    Ok((out, laps.into_vec()))
}
