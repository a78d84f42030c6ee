//! `attnscope analyze`, run as a binary: the output contract, resuming,
//! --dense-check, exit codes, and the golden SmolLM2 numbers the README quotes.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{run, tempdir};
use serde_json::Value;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// report.json without the fields that legitimately change between runs.
fn stable(mut report: Value) -> Value {
    for run in report["runs"].as_array_mut().unwrap() {
        run.as_object_mut().unwrap().remove("elapsed_s");
    }
    report
}

#[test]
fn stories260k_end_to_end_contract_resume_and_dense_check() {
    let dir = testdata::stories_dir();
    let out = tempdir("stories");
    let text2 = out.join("story.txt");
    std::fs::write(&text2, std::fs::read_to_string(dir.join("stories260K.md")).unwrap()).unwrap();
    let shakespeare = testdata::shared_root().join("texts/tinyshakespeare.txt");
    let model = dir.join("stories260K.bin");
    let tok = dir.join("tok512.bin");
    let args = [
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--text",
        shakespeare.to_str().unwrap(),
        "--text",
        text2.to_str().unwrap(),
        "--ctx",
        "64,128",
        "--out",
        out.to_str().unwrap(),
        "--dense-check",
        "--quiet",
    ];
    let o = run(&args);
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));

    let report = read_json(&out.join("report.json"));
    let m = &report["model"];
    assert_eq!(
        (m["family"].as_str(), m["n_layers"].as_u64(), m["n_heads"].as_u64(), m["n_kv_heads"].as_u64(), m["head_dim"].as_u64()),
        (Some("llama"), Some(5), Some(8), Some(4), Some(8))
    );
    assert_eq!(m["logit_transform"], "none");
    assert_eq!(m["position_bias"], "none");
    assert!(m["window"].is_null());
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["n_tokens"], r["ctx"]);
        assert_eq!(r["token_ids_head"][0], 1, "llama2.c models add BOS");
        assert_eq!(r["token_ids_head"].as_array().unwrap().len(), 8);
        assert_eq!(r["dense_check"].as_array().map(Vec::len), Some(0), "factored = dense");
        let heads = r["heads"].as_array().unwrap();
        assert_eq!(heads.len(), 40);
        for h in heads {
            for key in [
                "layer",
                "head",
                "kv_head",
                "zero_sum_residual",
                "shift_consistency",
                "rank_bound",
                "numerical_rank",
                "rank_bound_holds",
                "spectrum",
                "k90",
                "k99",
                "effective_rank",
                "stable_rank",
                "k90_learned",
                "effective_rank_learned",
                "spectral_gap",
                "participation_ratio",
                "top1pct_share",
                "argmax_key",
                "key_coherence",
                "energy_leverage_spearman",
            ] {
                assert!(h.get(key).is_some(), "head lacks `{key}`");
            }
            assert_eq!(h["numerical_rank"], 9, "stories260K: d_head + 1 = 9");
            assert_eq!(h["kv_head"].as_u64().unwrap(), h["head"].as_u64().unwrap() / 2);
        }
    }
    assert_eq!(report["summary"]["checks"]["all_pass"], true);

    let csv = std::fs::read_to_string(out.join("heads.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("text,ctx,layer,head,kv_head,"));
    assert_eq!(lines.count(), 160);
    assert_eq!(&std::fs::read(out.join("heads.parquet")).unwrap()[..4], b"PAR1");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("key_coherence"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<script src"), "self-contained");
    assert!(html.contains("id=\"paper-table\"") && html.contains("id=\"head-panel\""));

    // Rerun: finished runs are skipped (their files untouched), the report is the same.
    let runs_dir = out.join("runs");
    let before: Vec<_> = std::fs::read_dir(&runs_dir).unwrap().map(|e| e.unwrap().path()).collect();
    let mtimes: Vec<_> = before.iter().map(|p| std::fs::metadata(p).unwrap().modified().unwrap()).collect();
    assert_eq!(before.len(), 4);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for (p, t) in before.iter().zip(&mtimes) {
        assert_eq!(&std::fs::metadata(p).unwrap().modified().unwrap(), t, "{} was recomputed", p.display());
    }
    let first = stable(report);
    assert_eq!(stable(read_json(&out.join("report.json"))), first);

    // A lost run is recomputed, and gives the same numbers.
    std::fs::remove_file(&before[0]).unwrap();
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(before[0].exists());
    assert_eq!(stable(read_json(&out.join("report.json"))), first);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn user_errors_exit_2_with_one_clear_line() {
    let dir = testdata::stories_dir();
    let out = tempdir("errors");
    let model = dir.join("stories260K.bin");
    let tok = dir.join("tok512.bin");
    let short = out.join("short.txt");
    std::fs::write(&short, "Once upon a time.").unwrap();
    let base = ["analyze", "--model", model.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap(), "--quiet"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--text", short.to_str().unwrap(), "--ctx", "64", "--out", out.to_str().unwrap()], "fewer than the context length 64"),
        (vec!["--text", short.to_str().unwrap(), "--ctx", "600", "--out", out.to_str().unwrap()], "trained context of 512"),
        (vec!["--text", "/nonexistent/text.txt", "--ctx", "8", "--out", out.to_str().unwrap()], "/nonexistent/text.txt"),
        (vec!["--text", short.to_str().unwrap(), "--ctx", "4", "--layers", "7", "--out", out.to_str().unwrap()], "--layers"),
    ];
    for (extra, want) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: stderr lacks `{want}`: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = run(&["analyze", "--model", "/nonexistent/model.gguf", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/model.gguf"));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn help_explains_measures_and_points_to_definitions() {
    let o = run(&["analyze", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for word in ["docs/definitions.md", "participation_ratio", "key_coherence", "zero_sum_residual", "--dense-check", "Exit codes"] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

/// The numbers the README and SPEC quote for SmolLM2-135M-Instruct Q4_1 on
/// the first 256 tokens of GPL-3.
#[test]
fn smollm2_gpl3_256_golden() {
    let model = testdata::smollm2_path();
    let gpl = testdata::license_text("GPL-3");
    let gpl = gpl.as_path();
    let out = tempdir("smollm2");
    let o = run(&[
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--text",
        gpl.to_str().unwrap(),
        "--ctx",
        "256",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_json(&out.join("report.json"));
    let heads = report["runs"][0]["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 270);
    assert!(heads.iter().all(|h| h["numerical_rank"] == 65), "numerical_rank = d + 1 = 65 on every head");
    assert!(heads.iter().all(|h| h["zero_sum_residual"].as_f64().unwrap() <= 1e-13));
    let mut k90: Vec<u64> = heads.iter().map(|h| h["k90"].as_u64().unwrap()).collect();
    k90.sort_unstable();
    assert_eq!((k90[0], (k90[134] + k90[135]) / 2, k90[269]), (3, 9, 16), "k90 min / median / max");
    std::fs::remove_dir_all(&out).ok();
}
