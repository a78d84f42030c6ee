//! `attnscope compress`, run as a binary on stories260K: the output contract
//! (compress.json records and table, compress.csv, compress.html), the algebraic
//! facts (full rank rebuilds the pattern and the loss exactly), and exit codes.

use crate::common;

use std::path::{Path, PathBuf};

use common::{run, tempdir};
use serde_json::Value;

/// The greedy story that stories260K.md quotes: a text in the model's own domain.
fn story(dir: &Path, out: &Path) -> PathBuf {
    let md = std::fs::read_to_string(dir.join("stories260K.md")).unwrap();
    let start = md.find("Once upon a time").expect("story in stories260K.md");
    let end = start + md[start..].find("```").unwrap();
    let p = out.join("story.txt");
    std::fs::write(&p, &md[start..end]).unwrap();
    p
}

const KEYS: [&str; 11] = ["experiment", "layer", "head", "basis", "r", "kl", "top1", "loss", "loss_delta", "loss_delta_abs", "ratio"];

#[test]
fn stories260k_compress_contract_and_full_rank_is_exact() {
    let dir = testdata::stories_dir();
    let out = tempdir("stories");
    let eval = story(&dir, &out);
    let calib = testdata::shared_root().join("texts/tinyshakespeare.txt");
    let (model, tok) = (dir.join("stories260K.bin"), dir.join("tok512.bin"));
    let o = run(&[
        "compress",
        "--model",
        model.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--calib",
        calib.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
        "--ctx",
        "64",
        "--r",
        "all",
        "--layer-bases",
        "data,weights,random",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for line in
        ["k90 of E", "k90 of M", "spectral gap", "r for mean KL ≤ 0.01", "r for |loss change| ≤ 1 %", "data beats weights at equal r"]
    {
        assert!(stdout.contains(line), "stdout lacks `{line}`:\n{stdout}");
    }

    let doc: Value = serde_json::from_slice(&std::fs::read(out.join("compress.json")).unwrap()).unwrap();
    let (layers, heads, d) = (5u64, 8u64, 8u64);
    assert_eq!(doc["model"]["head_dim"], d);
    assert_eq!(doc["settings"]["r"], serde_json::json!((1..=d + 1).collect::<Vec<_>>()));
    assert_eq!(doc["settings"]["layer_r"], serde_json::json!([2]), "default d/4");
    let loss_full = doc["loss_full"].as_f64().unwrap();
    assert!(loss_full.is_finite() && loss_full > 0.0);
    let recs = doc["records"].as_array().unwrap();
    for r in recs {
        for k in KEYS {
            assert!(r.get(k).is_some(), "record lacks `{k}`: {r}");
        }
    }
    let pattern: Vec<&Value> = recs.iter().filter(|r| r["experiment"] == "pattern").collect();
    let model_keys: Vec<&Value> = recs.iter().filter(|r| r["experiment"] == "keys" && r["layer"].is_null()).collect();
    let layer_keys: Vec<&Value> = recs.iter().filter(|r| r["experiment"] == "keys" && !r["layer"].is_null()).collect();
    assert_eq!(pattern.len() as u64, layers * heads * 3 * (d + 1));
    assert_eq!(model_keys.len() as u64, 3 * (d + 1));
    assert_eq!(layer_keys.len() as u64, 3 * layers);
    assert_eq!(recs.len(), pattern.len() + model_keys.len() + layer_keys.len());

    for p in &pattern {
        let (kl, top1, r) = (p["kl"].as_f64().unwrap(), p["top1"].as_f64().unwrap(), p["r"].as_u64().unwrap());
        assert!(kl >= 0.0 && (0.0..=1.0).contains(&top1), "{p}");
        assert!(p["loss"].is_null() && p["ratio"].is_null());
        // Algebra: r = d + 1 keeps every direction of every basis; for weights and
        // random r = d already gives the identity on head space.
        let exact = r == d + 1 || (r == d && p["basis"] != "data");
        if exact {
            assert!(kl <= 1e-9 && top1 == 1.0, "full rank must rebuild the pattern: {p}");
        }
    }
    for k in model_keys.iter().chain(&layer_keys) {
        let (r, ld, loss) = (k["r"].as_u64().unwrap(), k["loss_delta"].as_f64().unwrap(), k["loss"].as_f64().unwrap());
        assert!(k["head"].is_null() && k["kl"].is_null());
        assert_eq!(k["ratio"].as_f64().unwrap(), r.min(d) as f64 / d as f64);
        assert!((loss - loss_full - k["loss_delta_abs"].as_f64().unwrap()).abs() < 1e-12);
        assert!((ld - (loss - loss_full) / loss_full).abs() < 1e-12);
        if r >= d {
            assert!(ld.abs() <= 1e-6, "keys at full rank must leave the loss unchanged: {k}");
        }
    }
    // The hook is wired: projected keys do change the loss somewhere below full rank.
    assert!(model_keys.iter().any(|k| k["r"].as_u64().unwrap() < d && k["loss_delta"].as_f64().unwrap().abs() > 1e-6));
    // Every basis and rank has its key-cache record.
    for b in ["data", "weights", "random"] {
        for r in 1..=d + 1 {
            assert!(model_keys.iter().any(|k| k["basis"] == b && k["r"] == r), "no key-cache record for {b} r={r}");
        }
    }

    let t = &doc["table"];
    for k in ["k90_E", "k90_M", "spectral_gap"] {
        let (lo, med, hi) = (t[k]["min"].as_f64().unwrap(), t[k]["median"].as_f64().unwrap(), t[k]["max"].as_f64().unwrap());
        assert!(lo <= med && med <= hi, "{k}: {}", t[k]);
    }
    assert!(t["k90_E"]["max"].as_f64().unwrap() <= (d + 1) as f64);
    assert!(t["k90_M"]["max"].as_f64().unwrap() <= d as f64);
    for b in ["data", "weights", "random"] {
        // r = d + 1 is exact for every basis, so the KL criterion is met at the latest there.
        assert!(t["r_mean_kl_le_0.01"][b].as_u64().is_some_and(|r| r <= d + 1), "{}", t["r_mean_kl_le_0.01"]);
        assert!(t["r_abs_loss_delta_le_1pct"][b].as_u64().is_some_and(|r| r <= d + 1));
    }
    for m in ["kl", "top1", "loss"] {
        let w = &t["data_beats_weights"][m];
        assert!(w["data_wins"].as_u64().unwrap() <= w["of"].as_u64().unwrap(), "{w}");
    }
    assert_eq!(t["by_r"].as_array().unwrap().len() as u64, d + 1);

    // CSV: the same rows.
    let csv = std::fs::read_to_string(out.join("compress.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), KEYS.join(","));
    assert_eq!(lines.count(), recs.len());

    let html = std::fs::read_to_string(out.join("compress.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("data beats weights"));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="), "self-contained");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn compress_user_errors_exit_2() {
    let dir = testdata::stories_dir();
    let out = tempdir("errors");
    let eval = story(&dir, &out);
    let (model, tok) = (dir.join("stories260K.bin"), dir.join("tok512.bin"));
    let base = [
        "compress",
        "--model",
        model.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--calib",
        eval.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    for (extra, want) in [
        (vec!["--ctx", "32", "--r", "10"], "above d + 1"),
        (vec!["--ctx", "32", "--layer-r", "9"], "--layer-r"),
        (vec!["--ctx", "32", "--layer-bases", "pca"], "unknown basis"),
        (vec!["--ctx", "500"], "fewer than the context length"),
    ] {
        let o = run(&[&base[..], &extra[..]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{extra:?}: {err}");
    }
    std::fs::remove_dir_all(&out).ok();
}
