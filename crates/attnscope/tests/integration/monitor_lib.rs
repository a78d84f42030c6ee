//! The monitor as a library, the way a training loop calls it: build a
//! `Monitor` once with a probe, call `observe(step, &model)` every N steps.
//! On the real stories260K model, observed at six "steps" with unchanged
//! weights: one point per layer × head per step, every measure equal to the
//! `field` crate's on the captured Q/K, no alert, and the logs written.

use attnscope::monitor::{Monitor, Rules};
use models::{Checkpoint, LayerCapture, Model, Observer, ObserverError};

/// Captures layer 2's Q and K, to recompute one head with `field` directly.
struct Grab(Option<(candle_core::Tensor, candle_core::Tensor, f64)>);

impl Observer for Grab {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> Result<(), ObserverError> {
        if cap.layer == 2 {
            self.0 = Some((cap.q.clone(), cap.k.clone(), cap.scale));
        }
        Ok(())
    }
}

#[test]
fn monitor_library_api_on_stories260k() {
    let dir = testdata::stories_dir();
    let ck = Checkpoint::open(dir.join("stories260K.bin").to_str().unwrap(), Some(&dir.join("tok512.bin"))).unwrap();
    let model = Model::load(&ck).unwrap();
    let text = std::fs::read_to_string(dir.join("stories260K.md")).unwrap();
    let probe: Vec<u32> = ck.tokenizer.as_ref().unwrap().encode(&text).unwrap().into_iter().take(64).collect();
    assert_eq!(probe.len(), 64);
    let out = std::env::temp_dir().join(format!("attnscope-monitor-lib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);

    let mut mon = Monitor::new(probe.clone(), Rules::default(), Some(&out)).unwrap();
    for step in 0..6u64 {
        let alerts = mon.observe(step * 100, &model).unwrap();
        assert!(alerts.is_empty(), "unchanged weights raised alerts at step {step}: {alerts:?}");
    }
    let (layers, heads) = (model.spec.n_layers, model.spec.n_heads);
    assert_eq!(mon.points().len(), 6 * layers * heads);

    // Layer 2, head 3 against the field crate on the same Q/K.
    let mut grab = Grab(None);
    model.forward_capture(&probe, &mut grab).unwrap();
    let (q, k, scale) = grab.0.unwrap();
    let g = model.spec.n_heads / model.spec.n_kv_heads;
    let (n, d) = (probe.len(), model.spec.head_dim);
    let q3: Vec<f32> = q.get(3).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let k3: Vec<f32> = k.get(3 / g).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let want = field::analyze(&field::HeadInput::new(&q3, &k3, n, d, scale), &field::Params::default()).unwrap();
    let got = mon.points().iter().find(|p| p.step == 500 && p.layer == 2 && p.head == 3).unwrap();
    assert!((got.key_coherence - want.key_coherence).abs() <= 1e-9 * want.key_coherence, "{} vs {}", got.key_coherence, want.key_coherence);
    assert!((got.participation_ratio - want.participation_ratio).abs() <= 1e-9);
    assert_eq!(got.k90, want.k90);

    mon.finish("stories260K, unchanged weights").unwrap();
    for f in ["monitor.jsonl", "monitor.csv", "alerts.jsonl", "monitor.html"] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    let csv_rows = std::fs::read_to_string(out.join("monitor.csv")).unwrap().lines().count();
    assert_eq!(csv_rows, 1 + 6 * layers * heads);
    assert_eq!(std::fs::read_to_string(out.join("alerts.jsonl")).unwrap().trim(), "");
    let _ = std::fs::remove_dir_all(&out);
}
