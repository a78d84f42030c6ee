//! `attnscope monitor-eval` on a tiny study (one family, one seed, one
//! fault, a 32-wide model, 90 steps; about 10 s): it trains the runs, scores
//! them, names the heads the fault hit, and re-scores the saved series with
//! other rules without training.

use crate::common;

use std::path::Path;

use common::{run, tempdir};
use serde_json::Value;

fn eval(out: &Path, t: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "monitor-eval",
        "--text",
        t.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--families",
        "llama",
        "--seeds",
        "1",
        "--faults",
        "collapse",
        "--steps",
        "90",
        "--fault-at",
        "60",
        "--window",
        "20",
        "--monitor-every",
        "5",
    ];
    for a in ["--d-model", "32", "--ctx", "32", "--batch", "4", "--eval-windows", "4", "--lr", "1e-2", "--warmup", "5"] {
        args.push("--train-arg");
        args.push(a);
    }
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "exit {:?}\n{}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap()
}

#[test]
fn tiny_study_scores_a_healthy_run_and_a_head_collapse() {
    let dir = tempdir("eval");
    let t = common::learnable_text(&dir);
    let out = dir.join("study");
    let doc = eval(&out, &t, &[]);
    // Healthy: 19 observations (steps 0, 5, …, 90) × 2 layers × 4 heads, no alert.
    let h = &doc["healthy"]["runs"][0];
    assert_eq!(h["run"], "llama-s1-healthy");
    assert_eq!(h["head_observations"], 19 * 8);
    assert_eq!(h["alerts"], 0, "{h}");
    // The collapse: 3 query heads of layer 0 on both KV heads (GQA) hit all 4 heads of layer 0.
    let f = &doc["faults"][0];
    assert_eq!(f["fault"], "collapse");
    assert_eq!(f["hit_heads"], serde_json::json!(["L0H0", "L0H1", "L0H2", "L0H3"]));
    assert_eq!(f["detected"], true, "{f}");
    assert!(f["recall"].as_f64().unwrap() >= 0.5 && f["precision"].as_f64().unwrap() >= 0.5, "{f}");
    assert!(f["delay"].as_u64().unwrap() <= 20, "{f}");
    assert!(f["val_before"].as_f64().unwrap().is_finite() && f["val_change_at_detection"].as_f64().is_some(), "{f}");
    let fault: Value = serde_json::from_str(&std::fs::read_to_string(out.join("runs/llama-s1-collapse/fault.json")).unwrap()).unwrap();
    assert_eq!(fault["kind"], "collapse");
    assert_eq!(fault["kv_heads"], serde_json::json!([0, 1]));
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("## False alarms") && md.contains("| collapse | llama | 1 | L0H0 L0H1 L0H2 L0H3 |"), "{md}");
    assert!(std::fs::read_to_string(out.join("runs.csv")).unwrap().lines().count() == 3);

    // Re-scoring needs no training, and follows the rules: with no rule able to fire, nothing is flagged.
    let before = std::fs::metadata(out.join("runs/llama-s1-collapse/train.jsonl")).unwrap().modified().unwrap();
    let doc = eval(
        &out,
        &t,
        &[
            "--rescore",
            "--z-max",
            "1e9",
            "--step-max",
            "0",
            "--no-collapse-alert",
            "--coherence-frac",
            "100",
            "--jump",
            "0",
            "--revert-frac",
            "0",
        ],
    );
    let f = &doc["faults"][0];
    assert_eq!((f["detected"].as_bool(), f["recall"].as_f64()), (Some(false), Some(0.0)), "{f}");
    assert!(f["precision"].is_null());
    assert_eq!(std::fs::metadata(out.join("runs/llama-s1-collapse/train.jsonl")).unwrap().modified().unwrap(), before);
    // A fault set plans the same run once (no training: it exists) and the pooled table sums over seeds.
    let doc = eval(&out, &t, &["--rescore", "--fault-set", "collapse:1"]);
    assert_eq!(doc["faults"].as_array().unwrap().len(), 1, "{doc}");
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("## Faults pooled over seeds") && md.contains("| collapse | **all** | 1 | 1/1 |"), "{md}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let dir = tempdir("bad");
    let t = common::learnable_text(&dir);
    for (extra, want) in [
        (vec!["--faults", "meteor"], "meteor"),
        (vec!["--families", "bert"], "bert"),
        (vec!["--fault-at", "900"], "--fault-at"),
        (vec!["--history-window", "1"], "window"),
        (vec!["--fault-set", "key:x"], "--fault-set"),
        (vec![], "does not exist"),
        (vec!["--fault-set", "meteor:2"], "meteor"),
    ] {
        let o = dir.join("o");
        let mut args = vec!["monitor-eval", "--text", t.to_str().unwrap(), "--out", o.to_str().unwrap(), "--rescore"];
        args.extend(extra);
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}
