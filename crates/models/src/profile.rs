//! Opt-in wall-time breakdown of the forward pass by phase, for benchmarks
//! (`examples/forward_bench.rs`). Off by default: then each probe is one
//! relaxed atomic load and the decoder runs exactly as without it.
//!
//! Times are wall-clock nanoseconds of the calling (main) thread, summed
//! over every call since [`reset`]. A phase that runs on the rayon pool
//! (GEMMs, fused passes) is timed from the caller, so its figure includes
//! its parallel work; probes inside tasks that run on the pool's threads
//! (attention's query chunks) count nothing, the span of the tasks counts
//! as [`Phase::AttnTasks`]; [`Phase::WaitWeights`] is the time the forward pass
//! waited for the prefetch thread to dequantize the next layer (the rest of
//! dequantization overlaps with compute and is not on the critical path).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The phases of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Q, K, V and output projections (GEMMs, biases).
    Projections,
    /// Rotary embedding and QK-norm.
    Rope,
    /// Attention scores q·kᵀ (GEMMs).
    AttnQk,
    /// Scale, mask and softmax of the scores.
    AttnSoftmax,
    /// Probabilities times values (GEMMs), and the head merge.
    AttnPv,
    /// The query chunks run as concurrent tasks: their q·kᵀ, softmax and
    /// p·v together (wall time of the span).
    AttnTasks,
    /// Feed-forward block (GEMMs and activation).
    Mlp,
    /// RMSNorm / LayerNorm and residual adds.
    NormsResidual,
    /// Waiting for the prefetch thread to hand over the next layer's f32 weights.
    WaitWeights,
    /// Final norm and LM head.
    LmHead,
}

/// Every phase, in report order.
pub const PHASES: [Phase; 10] = [
    Phase::Projections,
    Phase::Rope,
    Phase::AttnQk,
    Phase::AttnSoftmax,
    Phase::AttnPv,
    Phase::AttnTasks,
    Phase::Mlp,
    Phase::NormsResidual,
    Phase::WaitWeights,
    Phase::LmHead,
];

impl Phase {
    /// Short label for reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Projections => "projections q/k/v/o",
            Phase::Rope => "rope + qk-norm",
            Phase::AttnQk => "attention q·kᵀ",
            Phase::AttnSoftmax => "attention softmax",
            Phase::AttnPv => "attention p·v",
            Phase::AttnTasks => "attention chunk tasks",
            Phase::Mlp => "mlp",
            Phase::NormsResidual => "norms + residual",
            Phase::WaitWeights => "wait for dequant",
            Phase::LmHead => "lm head",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];

/// Turns the probes on or off (process-wide).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Zeroes every phase's total.
pub fn reset() {
    for n in &NANOS {
        n.store(0, Ordering::Relaxed);
    }
}

/// (phase, seconds) summed since [`reset`], in [`PHASES`] order.
pub fn snapshot() -> Vec<(Phase, f64)> {
    PHASES.iter().map(|&p| (p, NANOS[p as usize].load(Ordering::Relaxed) as f64 * 1e-9)).collect()
}

/// Runs `f`, adding its wall time to `phase` when the probes are on and
/// the caller is not one of rayon's pool threads (a task's probes would
/// count time the caller's own span already counts).
#[inline]
pub fn time<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) || rayon::current_thread_index().is_some() {
        return f();
    }
    let t0 = Instant::now();
    let out = f();
    NANOS[phase as usize].fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes add only when enabled, and only off the pool's threads.
    #[test]
    fn probes_count_only_when_enabled() {
        reset();
        time(Phase::Mlp, || std::thread::sleep(std::time::Duration::from_millis(2)));
        assert_eq!(snapshot()[Phase::Mlp as usize].1, 0.0);
        enable(true);
        time(Phase::Mlp, || std::thread::sleep(std::time::Duration::from_millis(2)));
        // On a pool thread (a task), nothing is counted.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| time(Phase::Rope, || std::thread::sleep(std::time::Duration::from_millis(2))));
        enable(false);
        let s = snapshot();
        assert!(s[Phase::Mlp as usize].1 >= 0.002, "{s:?}");
        assert_eq!(s[Phase::Rope as usize].1, 0.0, "{s:?}");
    }
}
