//! attnscope as a library: what the `attnscope` command runs, callable from
//! Rust. The entry points a training loop or a script uses:
//!
//! - [`monitor::Monitor`]: the per-head training monitor (docs/monitor.md). Build it
//!   once with a probe sequence, call [`monitor::Monitor::observe`] every N
//!   steps with the current [`models::Model`]; it returns the new alerts and
//!   (optionally) logs monitor.jsonl / monitor.csv / alerts.jsonl.
//! - [`analyze::run`], [`compress::run`], [`train::run`], [`monitor::run`]:
//!   the subcommands, driven by their argument structs.
//!
//! A framework that is not built on candle depends on the `field` crate
//! alone: one head's Q and K in, every measure out.

pub mod analyze;
pub mod cli;
pub mod compress;
mod defaults;
mod fingerprint;
pub mod loss;
mod memory;
pub mod monitor;
pub mod observer;
pub mod oneline;
pub mod options;
mod progress;
pub mod report;
mod session;
mod stats;
mod svg;
mod texts;
pub mod train;

/// Process settings for the command line, applied at the start of `main`
/// while it is the only thread: candle's CPU thread pool spins for 25 000
/// iterations after every elementwise op before it sleeps, which steals a
/// core from the field analysis that runs between layers (README, "Speed").
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` set by the user is kept. Also keeps freed tensor buffers in the heap
/// ([`models::alloc::tune`]), which the `models` library itself never does.
pub fn tune_process() {
    models::alloc::tune();
    const SPIN: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN).is_none() {
        std::env::set_var(SPIN, "0");
    }
}

/// A failed check (not a user error): the command exits with code 1.
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CheckFailed {}

/// The mechanism invariants (zero-sum rows, shift consistency, rank bound)
/// failed for some head: the report is written, the command exits with
/// code 3 after a one-line warning.
#[derive(Debug)]
pub struct InvariantsFailed(pub String);

impl std::fmt::Display for InvariantsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for InvariantsFailed {}
