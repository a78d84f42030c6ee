//! Determinism: identical commands give byte-identical report.json
//! apart from the `elapsed_s` timing lines, and byte-identical heads.csv and
//! report.html, whatever candle's matmul thread count (`RAYON_NUM_THREADS`)
//! and whatever `--threads`. `key_coherence` used to differ in the last bit
//! or two between `--threads 1` and `≥ 2` (faer's SVD took the rayon pool's
//! size as its parallelism; fixed in crates/field, f766081). `compare` still
//! names a tolerance for it (1e-13 relative) so that a regression shows the
//! size of the difference, but every test here requires zero differences
//! (docs/hardening.md, "Determinism").

use crate::common;

use std::path::Path;

use common::{bin, tempdir};
use serde_json::Value;

/// Relative tolerance of `key_coherence` between different `--threads`.
const COHERENCE_TOL: f64 = 1e-13;

/// report.json bytes without the `"elapsed_s": …` lines (pretty-printed, one key a line).
fn without_timings(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("\"elapsed_s\":")).collect();
    assert!(kept.len() < text.lines().count(), "report.json has no elapsed_s lines to drop");
    kept.join("\n")
}

fn analyze(model: &[&str], text: &Path, ctx: &str, threads: &str, candle_threads: Option<&str>, out: &Path) {
    let mut c = bin();
    c.arg("analyze").args(model).args([
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        ctx,
        "--threads",
        threads,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    if let Some(n) = candle_threads {
        c.env("RAYON_NUM_THREADS", n);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "--threads {threads}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Byte-identical outputs (report.json apart from timings).
#[track_caller]
fn assert_same(a: &Path, b: &Path, what: &str) {
    let (ra, rb) = (without_timings(&a.join("report.json")), without_timings(&b.join("report.json")));
    if ra != rb {
        let line = ra.lines().zip(rb.lines()).position(|(x, y)| x != y).unwrap_or(0);
        panic!("{what}: report.json differs at line {line}: {:?} vs {:?}", ra.lines().nth(line), rb.lines().nth(line));
    }
    for f in ["heads.csv", "report.html"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{what}: {f} differs");
    }
}

/// Every JSON leaf equal, except numbers under a `key_coherence` key, which
/// may differ by COHERENCE_TOL relative. Returns how many differed.
fn compare(a: &Value, b: &Value, path: &str, differing: &mut usize) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: different keys");
            for (k, v) in x {
                if k != "elapsed_s" {
                    compare(v, &y[k], &format!("{path}.{k}"), differing);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: different lengths");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                compare(u, v, &format!("{path}[{i}]"), differing);
            }
        }
        (Value::Number(x), Value::Number(y)) if x != y && path.contains("key_coherence") => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let rel = (x - y).abs() / x.abs().max(y.abs());
            assert!(rel <= COHERENCE_TOL, "{path}: {x} vs {y} (relative {rel:e})");
            *differing += 1;
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p.join("report.json")).unwrap()).unwrap()
}

/// `--threads 2` twice (once with candle's matmul on 5 threads) is
/// byte-identical; `--threads 1` agrees within the key_coherence tolerance.
fn check(model: &[&str], text: &Path, ctx: &str, dir: &Path, twice: bool) -> usize {
    let (one, two, again) = (dir.join("t1"), dir.join("t2"), dir.join("t2-again"));
    analyze(model, text, ctx, "1", Some("1"), &one);
    analyze(model, text, ctx, "2", None, &two);
    if twice {
        analyze(model, text, ctx, "2", Some("5"), &again);
        assert_same(&two, &again, "two runs at --threads 2 (candle on 2 and 5 threads)");
    }
    let mut differing = 0;
    compare(&read(&one), &read(&two), "report", &mut differing);
    differing
}

#[test]
fn stories260k_deterministic_across_runs_and_threads() {
    let stories = testdata::stories_dir();
    let dir = tempdir("stories");
    let text = dir.join("story.txt");
    std::fs::write(&text, std::fs::read_to_string(stories.join("stories260K.md")).unwrap().repeat(2)).unwrap();
    let model = stories.join("stories260K.gguf");
    assert_eq!(check(&["--model", model.to_str().unwrap()], &text, "64,300", &dir, true), 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// The tiny HF llama: wider matrices (D = 64), another loader and tokenizer.
#[test]
fn tiny_hf_llama_deterministic_across_runs_and_threads() {
    let dir = tempdir("tiny");
    let text = dir.join("text.txt");
    std::fs::write(&text, "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. ".repeat(8)).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/tiny/llama");
    assert_eq!(check(&["--model", model.to_str().unwrap()], &text, "64", &dir, true), 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// SmolLM2 (d_head 64) is where `--threads 1` vs 2 used to show the SVD's
/// last-bit difference in key_coherence.
#[test]
fn smollm2_bit_identical_across_threads() {
    let model = testdata::smollm2_path();
    let gpl = testdata::license_text("GPL-3");
    let gpl = gpl.as_path();
    let dir = tempdir("smollm2");
    let n = check(&["--model", model.to_str().unwrap(), "--layers", "0-1"], gpl, "256", &dir, false);
    assert_eq!(n, 0, "key_coherence values that differ between --threads 1 and 2");
    std::fs::remove_dir_all(&dir).ok();
}
