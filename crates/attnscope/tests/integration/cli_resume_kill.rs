//! kill -9 in the middle of a multi-run `analyze` sweep, then the same
//! command again: finished runs are kept, the rest computed, and
//! the final report.json equals an uninterrupted run's apart from
//! `elapsed_s`. A half-written file never looks complete: every
//! `runs/*.json` present after the kill parses, and `*.tmp-*` leftovers
//! (what a kill during a write leaves) and a corrupt run file are ignored.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, tempdir};
use serde_json::Value;

/// report.json with the per-run timings removed.
fn stable(p: &Path) -> Value {
    let mut v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    for run in v["runs"].as_array_mut().unwrap() {
        run.as_object_mut().unwrap().remove("elapsed_s");
    }
    v
}

fn run_files(runs: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(runs).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "json"));
    v.sort();
    v
}

#[test]
fn sigkill_mid_sweep_then_resume_equals_uninterrupted() {
    let stories = testdata::stories_dir();
    let dir = tempdir("sweep");
    // Four texts (slices of the model card and a story) × three contexts.
    let card = std::fs::read_to_string(stories.join("stories260K.md")).unwrap();
    let story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. \
                 One day, she saw a big red ball in the park. She ran to it and kicked it high into the sky. ";
    let texts: Vec<PathBuf> = (0..4)
        .map(|i| {
            let p = dir.join(format!("text{i}.txt"));
            let body = if i % 2 == 0 { card.repeat(2 + i) } else { story.repeat(12 + i) };
            std::fs::write(&p, body).unwrap();
            p
        })
        .collect();
    let total = texts.len() * 3;
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = ["analyze", "--model"].iter().map(|s| s.to_string()).collect();
        a.push(stories.join("stories260K.bin").display().to_string());
        a.extend(["--tokenizer".to_string(), stories.join("tok512.bin").display().to_string()]);
        for t in &texts {
            a.extend(["--text".to_string(), t.display().to_string()]);
        }
        a.extend(["--ctx", "64,128,256", "--threads", "1", "--quiet", "--out"].iter().map(|s| s.to_string()));
        a.push(out.display().to_string());
        a
    };

    // The reference: one uninterrupted sweep.
    let reference = dir.join("reference");
    let o = bin().args(args(&reference)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The same sweep, SIGKILLed once one or two runs are on disk. Retried a
    // few times in case a run finishes between two polls of a fast machine.
    let out = dir.join("killed");
    let runs = out.join("runs");
    let mut killed_at = 0;
    for _attempt in 0..3 {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = bin().args(args(&out)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let t0 = Instant::now();
        let mut finished = false;
        loop {
            if !run_files(&runs).is_empty() {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no run finished within 60 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().ok(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        killed_at = run_files(&runs).len();
        if !finished && !status.success() && killed_at < total {
            break;
        }
    }
    assert!(killed_at >= 1 && killed_at < total, "could not kill mid-sweep ({killed_at} of {total} runs on disk)");
    assert!(!out.join("report.json").exists(), "no report before the sweep ends");
    // Nothing that looks finished is half-written.
    for p in run_files(&runs) {
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{} is half-written after the kill: {e}", p.display()));
        assert!(v["heads"].as_array().is_some_and(|h| h.len() == 40), "{}", p.display());
    }
    let kept: Vec<(PathBuf, std::time::SystemTime)> = run_files(&runs)
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect();
    // What a kill during a write leaves behind, and a corrupt run file for a
    // run that is not finished: both must be ignored (the run recomputed).
    let first_name = kept[0].0.file_name().unwrap().to_str().unwrap().to_string();
    let leftover = runs.join(first_name.replace(".json", ".tmp-999999"));
    std::fs::write(&leftover, b"{\"text\": \"half").unwrap();
    let ref_names: Vec<String> =
        run_files(&reference.join("runs")).iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
    let missing = ref_names.iter().find(|n| !runs.join(n).exists()).unwrap().clone();
    std::fs::write(runs.join(&missing), b"{\"text\": \"trunc").unwrap();

    let o = bin().args(args(&out)).output().unwrap();
    assert!(o.status.success(), "resume: {}", String::from_utf8_lossy(&o.stderr));
    for (p, t) in &kept {
        assert_eq!(&std::fs::metadata(p).unwrap().modified().unwrap(), t, "{} was recomputed", p.display());
    }
    assert_eq!(run_files(&runs).len(), total);
    assert!(!leftover.exists(), "a killed write's temp file is cleaned up");
    let v: Value = serde_json::from_slice(&std::fs::read(runs.join(&missing)).unwrap()).expect("corrupt run file recomputed");
    assert!(v["heads"].is_array());
    assert_eq!(stable(&out.join("report.json")), stable(&reference.join("report.json")), "resumed report differs");
    assert_eq!(std::fs::read(out.join("heads.csv")).unwrap(), std::fs::read(reference.join("heads.csv")).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}
