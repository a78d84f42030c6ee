//! `key_spread`: the share of a KV head's centred-key variance outside its
//! top direction, the one scale-sensitive key-side measure of the monitor
//! (docs/definitions.md, docs/monitor.md).
//!
//! For keys K (n × d, post-rotary, as the decoder captures them) centred over
//! the n positions, K_c = K − 1·k̄ᵀ, and λ₁ ≥ … ≥ λ_d the eigenvalues of the
//! d × d Gram K_cᵀK_c:
//! `key_spread = 1 − λ₁ / Σλ = 1 − ‖K_c‖₂² / ‖K_c‖_F²` (= 1 − 1 / stable rank),
//! in [0, 1 − 1/d]: 0 when one direction carries all the keys' variance,
//! 1 − 1/d when it spreads evenly over d directions. Cost O(n·d²) for the
//! Gram and O(d³) for its eigenvalues. The math is [`field::key_spread`];
//! this module only records it per KV head while the monitor observes.
//!
//! Why it exists: key_coherence (a leverage of [K, 1]) is invariant to any
//! invertible right transform of K, so a spike that makes one direction of
//! the keys dominate barely moves it. The keys of the trained heads here are
//! already dominated by one direction (stable rank 1.05–1.9), so the stable
//! rank itself moves little in ln (1.48 → 1.10 under the key fault); the share
//! outside the top direction moves several-fold (0.32 → 0.09), which the ln
//! band sees.

use std::collections::BTreeMap;

use models::{LayerCapture, Observer, ObserverError};

use crate::observer::FieldObserver;
use field::key_spread;

/// A [`FieldObserver`] that also records every KV head's [`key_spread`],
/// keyed by (layer, kv_head).
pub struct MonitorObserver<'a> {
    pub field: FieldObserver<'a>,
    pub key_spread: BTreeMap<(usize, usize), f64>,
}

impl Observer for MonitorObserver<'_> {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> Result<(), ObserverError> {
        if self.field.layers.contains(cap.layer) {
            let (hkv, n, d) = cap.k.dims3()?;
            let k = cap.k.flatten_all()?.to_vec1::<f32>()?;
            for kv in 0..hkv {
                self.key_spread.insert((cap.layer, kv), key_spread(&k[kv * n * d..(kv + 1) * n * d], n, d));
            }
        }
        self.field.on_layer(cap)
    }

    fn last_layer(&self) -> Option<usize> {
        self.field.last_layer()
    }
}
