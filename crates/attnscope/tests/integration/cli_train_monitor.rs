//! `attnscope train` and `attnscope monitor`, run as a binary on a generated
//! text (no external data): for each family the validation loss falls, the
//! saved HF checkpoint reloads to the in-training logits exactly, and the
//! monitor writes one record per step × layer × head; `monitor` over the saved
//! checkpoints orders them by step and writes its JSONL, CSV and HTML.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{run, tempdir};
use serde_json::Value;

fn ok(out: &Output) {
    assert!(out.status.success(), "exit {:?}\nstderr:\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn train(out: &Path, text: &Path, family: &str, monitor_every: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "train",
        "--family",
        family,
        "--text",
        text.to_str().unwrap(),
        "--d-model",
        "32",
        "--layers",
        "2",
        "--heads",
        "4",
        "--ctx",
        "32",
        "--batch",
        "4",
        "--steps",
        "40",
        "--warmup",
        "5",
        "--lr",
        "1e-2",
        "--eval-every",
        "20",
        "--eval-windows",
        "4",
        "--save-at",
        "0,20",
        "--monitor-every",
        monitor_every,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&run(&args));
    json(&out.join("summary.json"))
}

#[test]
fn train_each_family_loss_falls_checkpoints_reload_and_monitor_logs() {
    let dir = tempdir("families");
    let t = common::learnable_text(&dir);
    for family in ["gpt2", "gpt_neox", "llama"] {
        let out = dir.join(family);
        let s = train(&out, &t, family, "10", &[]);
        let (v0, v1) = (s["val_loss_start"].as_f64().unwrap(), s["val_loss_end"].as_f64().unwrap());
        assert!(v0 > 5.0 && v1 < v0 - 1.5, "{family}: val loss {v0} → {v1}");
        // Reloading the saved checkpoint (Checkpoint::open + Model::load) gives the in-training logits.
        assert_eq!(s["reload_max_abs_logit_diff"].as_f64(), Some(0.0), "{family}");
        assert!(s["training_path_max_abs_logit_diff"].as_f64().unwrap() < 1e-4, "{family}");
        for step in ["step-000000", "step-000020", "step-000040"] {
            let ck = out.join("checkpoints").join(step);
            for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "trainer_state.json"] {
                assert!(ck.join(f).is_file(), "{family}: missing {step}/{f}");
            }
        }
        let cfg = json(&out.join("checkpoints/step-000040/config.json"));
        assert_eq!(cfg["model_type"], family);
        // train.jsonl: step 0 + 40 steps, val_loss at 0, 20, 40.
        let log = lines(&out.join("train.jsonl"));
        assert_eq!(log.len(), 41);
        assert_eq!(log.iter().filter(|r| r.get("val_loss").is_some()).count(), 3);
        assert!(log[1..].iter().all(|r| r["grad_norm"].as_f64().unwrap().is_finite() && r["lr"].as_f64().unwrap() > 0.0));
        // Monitor: steps 0, 10, 20, 30, 40 × 2 layers × 4 heads.
        let mon = lines(&out.join("monitor/monitor.jsonl"));
        assert_eq!(mon.len(), 5 * 8, "{family}");
        for r in &mon {
            for k in ["step", "layer", "head", "key_coherence", "participation_ratio", "k90", "attention_entropy", "key_spread"] {
                assert!(r.get(k).is_some_and(|v| !v.is_null()), "{family}: {k} missing in {r}");
            }
            let kc = r["key_coherence"].as_f64().unwrap();
            assert!((1.0 - 1e-9..=32.0 + 1e-9).contains(&kc), "{family}: key_coherence {kc} outside [1, n]");
            let (ks, d) = (r["key_spread"].as_f64().unwrap(), r["d"].as_f64().unwrap());
            assert!((0.0..=1.0 - 1.0 / d + 1e-9).contains(&ks), "{family}: key_spread {ks} outside [0, 1 - 1/d]");
        }
        // key_spread depends on the keys only: query heads on one KV head share it (GQA in llama).
        for a in &mon {
            for b in mon.iter().filter(|b| b["step"] == a["step"] && b["layer"] == a["layer"] && b["kv_head"] == a["kv_head"]) {
                assert_eq!(a["key_spread"], b["key_spread"], "{family}: {a} vs {b}");
            }
        }
        let csv = std::fs::read_to_string(out.join("monitor/monitor.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 40);
        assert!(out.join("monitor/alerts.jsonl").is_file() && out.join("monitor/monitor.html").is_file());
    }

    // `attnscope monitor` over the saved checkpoints, given out of order.
    let ck = dir.join("llama/checkpoints");
    let mdir = dir.join("mon");
    let (a, b, c) = (ck.join("step-000040"), ck.join("step-000000"), ck.join("step-000020"));
    let out = run(&[
        "monitor",
        "--checkpoints",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        "--text",
        t.to_str().unwrap(),
        "--ctx",
        "32",
        "--out",
        mdir.to_str().unwrap(),
    ]);
    ok(&out);
    let recs = lines(&mdir.join("monitor.jsonl"));
    assert_eq!(recs.len(), 3 * 8);
    let steps: Vec<u64> = recs.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps.iter().step_by(8).copied().collect::<Vec<_>>(), vec![0, 20, 40]);
    assert!(recs[0]["checkpoint"].as_str().unwrap().ends_with("step-000000"));
    // The probe is the same, so the last checkpoint's numbers equal the trainer's monitor at step 40 ...
    let trained = lines(&dir.join("llama/monitor/monitor.jsonl"));
    let _ = trained; // (the trainer probes the validation split, not --text: not compared)
    let html = std::fs::read_to_string(mdir.join("monitor.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("key_coherence") && !html.contains("<script"));
    assert!(mdir.join("alerts.jsonl").is_file() && mdir.join("monitor.csv").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lr_spike_raises_an_alert() {
    let dir = tempdir("fault");
    let t = common::learnable_text(&dir);
    let out = dir.join("fault");
    // This 32-wide model's heads form at about step 55 (entropy below 0.9 × uniform), after
    // the spike: the warm-up is shortened (every head counts as formed, 2 observations to settle).
    let warm = ["--formed-frac", "1.01", "--settle", "2", "--min-history", "2"];
    let mut extra = vec!["--fault", "lr-spike@30", "--fault-factor", "100", "--fault-steps", "5"];
    extra.extend(warm);
    let s = train(&out, &t, "llama", "5", &extra);
    let alerts = lines(&out.join("monitor/alerts.jsonl"));
    assert!(alerts.iter().any(|a| a["step"].as_u64().unwrap() >= 30), "no alert after the spike: {alerts:?}");
    for a in &alerts {
        for k in ["step", "layer", "head", "measure", "value", "rule", "band", "severity"] {
            assert!(a.get(k).is_some(), "{k} missing in {a}");
        }
    }
    assert_eq!(s["fault"], "lr-spike@30");
    let log = lines(&out.join("train.jsonl"));
    assert_eq!(log.iter().filter(|r| r.get("fault").is_some()).count(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let dir = tempdir("bad");
    let t = common::learnable_text(&dir);
    for args in [
        vec!["train", "--family", "bert", "--text", t.to_str().unwrap(), "--out", dir.to_str().unwrap()],
        vec!["train", "--family", "llama", "--text", t.to_str().unwrap(), "--fault", "nan@3", "--out", dir.to_str().unwrap()],
        vec!["monitor", "--checkpoints", "/nonexistent/ck", "--text", t.to_str().unwrap(), "--out", dir.to_str().unwrap()],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checkpoints trained by `attnscope train` (tinyshakespeare, 200 steps,
/// d_model 32, 2 layers, 4 heads) load in HF transformers 5, and its logits
/// (tools/reference/check_trained_checkpoint.py → reference_logits.json) equal
/// attnscope's decoder on the same checkpoint within 1e-4.
#[test]
fn trained_checkpoints_match_hf_transformers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trained");
    let mut dirs: Vec<(String, PathBuf)> = ["gpt2", "gpt_neox", "llama"].iter().map(|f| (f.to_string(), root.join(f))).collect();
    // More checkpoints with a reference_logits.json (e.g. from a longer run): ATTNSCOPE_TRAINED_CHECKPOINTS=dir1:dir2
    if let Ok(extra) = std::env::var("ATTNSCOPE_TRAINED_CHECKPOINTS") {
        for d in extra.split(':').filter(|d| !d.is_empty()) {
            let family = json(&Path::new(d).join("config.json"))["model_type"].as_str().unwrap().to_string();
            dirs.push((family, PathBuf::from(d)));
        }
    }
    for (family, dir) in dirs {
        let family = family.as_str();
        let reference = json(&dir.join("reference_logits.json"));
        assert_eq!(reference["model_type"], family);
        let ids: Vec<u32> = reference["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let ck = models::Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
        // The byte-level tokenizer.json, read by the HF tokenizers crate, gives the ids transformers gave.
        let text: String = ids.iter().map(|&b| b as u8 as char).collect();
        assert_eq!(ck.tokenizer.as_ref().unwrap().encode(&text).unwrap(), ids, "{family}");
        let model = models::Model::load(&ck).unwrap();
        let ours = model.forward_logits(&ids, models::Logits::All, None).unwrap().to_vec2::<f32>().unwrap();
        let theirs = reference["logits"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        let mut max_err = 0f64;
        for (a, b) in ours.iter().zip(theirs) {
            let b = b.as_array().unwrap();
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                max_err = max_err.max((*x as f64 - y.as_f64().unwrap()).abs());
            }
        }
        println!(
            "{family} ({}): max |logit(attnscope) − logit(transformers {})| = {max_err:.3e} over {} × {}",
            dir.display(),
            reference["transformers"].as_str().unwrap_or("?"),
            ours.len(),
            ours[0].len()
        );
        assert!(max_err <= 1e-4, "{family}: max error {max_err}");
    }
}
