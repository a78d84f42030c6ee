//! `attnscope analyze` on the tiny random models of the families Gemma 3,
//! Phi-3, StableLM 2, BLOOM and MPT, through the binary: real forward passes of our decoder (the
//! same weights that match transformers in crates/models/tests/parity.rs).
//!
//! - BLOOM and MPT (ALiBi): the report says `position_bias: "alibi"`, every
//!   head's `rank_bound` is d + 2, and `numerical_rank ≤ d + 2` holds on
//!   the real Q and K, with the factored route agreeing with the dense one
//!   (`--dense-check`). This is the SPEC's "+1 for ALiBi" on real models.
//! - Gemma 3: the report's windows follow the layer types (5 sliding
//!   layers of window 8, then a global one).

use crate::common;

use std::path::{Path, PathBuf};

use common::{run, tempdir};
use serde_json::Value;

fn tiny(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/tiny").join(family)
}

/// A Shakespeare-like text of a few hundred tiny-BPE tokens.
fn text(dir: &Path) -> PathBuf {
    let p = dir.join("text.txt");
    let para = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. \
                First Citizen: You are all resolved rather to die than to famish? ";
    std::fs::write(&p, para.repeat(8)).unwrap();
    p
}

/// Runs analyze on a tiny fixture at context `ctx`; returns report.json.
fn analyze(family: &str, ctx: usize, dir: &Path) -> Value {
    let out = dir.join(format!("out-{family}"));
    let model = tiny(family);
    let text = text(dir);
    let ctx = ctx.to_string();
    let o = run(&[
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        &ctx,
        "--out",
        out.to_str().unwrap(),
        "--dense-check",
        "--quiet",
    ]);
    assert!(o.status.success(), "{family}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn alibi_models_report_alibi_and_rank_at_most_d_plus_2() {
    let dir = tempdir("alibi");
    for family in ["bloom", "mpt"] {
        let ctx = 48;
        let report = analyze(family, ctx, &dir);
        let m = &report["model"];
        assert_eq!(m["family"], family);
        assert_eq!(m["position_bias"], "alibi", "{family}");
        let d = m["head_dim"].as_u64().unwrap();
        assert!(d + 2 < ctx as u64, "the bound must be below n to mean anything");
        let heads = report["runs"][0]["heads"].as_array().unwrap();
        assert_eq!(heads.len() as u64, m["n_layers"].as_u64().unwrap() * m["n_heads"].as_u64().unwrap());
        let mut ranks = Vec::new();
        for h in heads {
            let at = format!("{family} layer {} head {}", h["layer"], h["head"]);
            assert_eq!(h["rank_bound"].as_u64(), Some(d + 2), "{at}");
            let r = h["numerical_rank"].as_u64().unwrap();
            assert!(r <= d + 2, "{at}: numerical_rank {r} > d + 2 = {}", d + 2);
            assert_eq!(h["rank_bound_holds"], true, "{at}");
            ranks.push(r);
        }
        // The bias is a real extra direction: some head needs more than d + 1.
        assert!(ranks.iter().any(|&r| r == d + 2), "{family}: ranks {ranks:?} never reach d + 2");
        eprintln!("{family}: n = {ctx}, d = {d}, numerical_rank per head {ranks:?} (bound d + 2 = {})", d + 2);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gemma3_windows_follow_the_layer_types() {
    let dir = tempdir("gemma3");
    let report = analyze("gemma3", 32, &dir);
    let m = &report["model"];
    assert_eq!(m["family"], "gemma3_text");
    assert_eq!(m["position_bias"], "none");
    assert_eq!(m["window"], 8);
    let windows: Vec<Value> = m["layer_windows"].as_array().unwrap().clone();
    assert_eq!(windows, [8, 8, 8, 8, 8].into_iter().map(Value::from).chain([Value::Null]).collect::<Vec<_>>());
    for h in report["runs"][0]["heads"].as_array().unwrap() {
        assert_eq!(h["rank_bound_holds"], true);
    }
    std::fs::remove_dir_all(&dir).ok();
}
