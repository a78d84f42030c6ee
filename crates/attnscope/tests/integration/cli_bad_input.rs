//! Bad input, run through the binary: every case exits with code 2
//! and prints exactly one line on stderr that names the offending file (or
//! flag) and the problem — never a panic, never a huge allocation.
//!
//! Models: stories260K (GGUF and llama2.c, from the shared folder; a
//! failure when absent) and the tiny HF
//! llama fixture of crates/models (always present). Every model file is
//! copied into a temp dir before it is truncated or patched.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{bin, tempdir};

fn tiny_llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/tiny/llama")
}

/// A copy of the tiny HF llama (config.json, model.safetensors, tokenizer files).
fn copy_tiny(dst: &Path) -> PathBuf {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny_llama().join(f), dst.join(f)).unwrap();
    }
    dst.to_path_buf()
}

/// An English text long enough for every context used here.
fn long_text(dir: &Path) -> PathBuf {
    let p = dir.join("long.txt");
    let para = "Once upon a time, in a quiet town by the sea, a little girl named Lily found a shiny shell. \
                She showed it to her mother, who smiled and said it was the most beautiful shell she had ever seen. ";
    std::fs::write(&p, para.repeat(40)).unwrap();
    p
}

/// Runs `attnscope analyze ARGS --quiet` with extra environment.
fn analyze(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.arg("analyze").args(args).arg("--quiet");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("runs the binary")
}

/// Exit code 2, one line on stderr, no panic; the line names `names` and
/// contains one of `problem`.
#[track_caller]
fn expect_user_error(o: &Output, what: &str, names: &str, problem: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{what}: exit {:?}: {err}", o.status);
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{what}: panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: not one line: {err}");
    assert!(err.starts_with("attnscope: error: "), "{what}: {err}");
    assert!(err.contains(names), "{what}: does not name `{names}`: {err}");
    assert!(problem.iter().any(|p| err.contains(p)), "{what}: names none of {problem:?}: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn gguf_truncated_wrong_magic_and_oversized_counts() {
    let stories = testdata::stories_dir();
    let dir = tempdir("gguf");
    let good = std::fs::read(stories.join("stories260K.gguf")).unwrap();
    let text = long_text(&dir);
    let n = good.len();
    // Inside the magic, the version, the counts, the first key, the vocabulary
    // array, the tensor table; in the data; one byte short.
    for cut in [0, 3, 6, 14, 30, 100, 4_000, 20_000, n / 2, n - 1] {
        let p = dir.join(format!("cut{cut}.gguf"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let o = analyze(&["--model", s(&p), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
        expect_user_error(
            &o,
            &format!("cut at {cut}"),
            &format!("cut{cut}.gguf"),
            &["truncated", "beyond", "needs", "GGUF file is invalid", "failed to fill whole buffer", "tokenizer"],
        );
    }
    let mut b = good.clone();
    b[..4].copy_from_slice(b"GGUX");
    let p = dir.join("magic.gguf");
    std::fs::write(&p, &b).unwrap();
    let o = analyze(&["--model", s(&p), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
    expect_user_error(&o, "wrong magic", "magic.gguf", &["wrong magic"]);
    // Tensor count, metadata count = u64::MAX; the first key's length = 2^60.
    for (at, val, name) in [(8usize, u64::MAX, "tensors"), (16, u64::MAX, "kvs"), (24, 1u64 << 60, "keylen")] {
        let mut b = good.clone();
        b[at..at + 8].copy_from_slice(&val.to_le_bytes());
        let p = dir.join(format!("{name}.gguf"));
        std::fs::write(&p, &b).unwrap();
        let o = analyze(&["--model", s(&p), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
        expect_user_error(&o, name, &format!("{name}.gguf"), &["declared count", "remain"]);
    }
    // A tensor whose declared dims need 2^40 × 64 values: refused from the
    // table, before any byte of it is read or allocated.
    let name = b"token_embd.weight";
    let at = good.windows(name.len()).rposition(|w| w == name).expect("tensor table entry") + name.len();
    let mut b = good.clone();
    b[at + 4..at + 12].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let p = dir.join("dims.gguf");
    std::fs::write(&p, &b).unwrap();
    let o = analyze(&["--model", s(&p), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
    expect_user_error(&o, "huge tensor dims", "dims.gguf", &["lies beyond the data section"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn llama2c_truncated_and_oversized_header() {
    let stories = testdata::stories_dir();
    let dir = tempdir("l2c");
    let good = std::fs::read(stories.join("stories260K.bin")).unwrap();
    let tok = stories.join("tok512.bin");
    let text = long_text(&dir);
    let n = good.len();
    for cut in [0, 3, 12, 27, 28, 1_000, n / 2, n - 1] {
        let p = dir.join(format!("cut{cut}.bin"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let o = analyze(&["--model", s(&p), "--tokenizer", s(&tok), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
        expect_user_error(&o, &format!("cut at {cut}"), &format!("cut{cut}.bin"), &["truncated", "implies"]);
    }
    // vocab_size and n_layers far larger than the file.
    for (field, val) in [(5usize, 1i32 << 24), (2, 1 << 20)] {
        let mut b = good.clone();
        b[4 * field..4 * field + 4].copy_from_slice(&val.to_le_bytes());
        let p = dir.join(format!("hdr{field}.bin"));
        std::fs::write(&p, &b).unwrap();
        let o = analyze(&["--model", s(&p), "--tokenizer", s(&tok), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
        expect_user_error(&o, "oversized header", &format!("hdr{field}.bin"), &["implies"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn safetensors_truncated_oversized_header_nan_and_unknown_architecture() {
    let dir = tempdir("hf");
    let text = long_text(&dir);
    let good = std::fs::read(tiny_llama().join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let n = good.len();
    let model = copy_tiny(&dir.join("tiny"));
    let st = model.join("model.safetensors");
    let run = |out: &str| analyze(&["--model", s(&model), "--text", s(&text), "--ctx", "16", "--out", s(&dir.join(out))], &[]);
    for cut in [0, 5, 8, 100, 8 + header_len / 2, 8 + header_len + 10, n / 2, n - 1] {
        std::fs::write(&st, &good[..cut]).unwrap();
        expect_user_error(
            &run("out"),
            &format!("cut at {cut}"),
            "model.safetensors",
            &["safetensors file is invalid", "truncated or corrupt"],
        );
    }
    // A header length of 2^40 bytes, and a tensor whose data_offsets reach past the file.
    let mut b = good.clone();
    b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&st, &b).unwrap();
    expect_user_error(&run("out"), "header length 2^40", "model.safetensors", &["safetensors file is invalid", "truncated or corrupt"]);
    let header = String::from_utf8(good[8..8 + header_len].to_vec()).unwrap();
    let grown = header.replacen("[0, 98304]", "[0, 98305]", 1).replacen("[0,98304]", "[0,98305]", 1);
    assert_ne!(grown, header, "fixture header layout changed");
    let mut b = (grown.len() as u64).to_le_bytes().to_vec();
    b.extend(grown.as_bytes());
    b.extend(&good[8 + header_len..]);
    std::fs::write(&st, &b).unwrap();
    expect_user_error(&run("out"), "offsets past the data", "model.safetensors", &["safetensors file is invalid", "truncated or corrupt"]);

    // One NaN in a weight the decoder loads.
    let mut b = good.clone();
    let meta: serde_json::Value = serde_json::from_slice(&good[8..8 + header_len]).unwrap();
    let name = "model.layers.0.mlp.down_proj.weight";
    let start = 8 + header_len + meta[name]["data_offsets"][0].as_u64().unwrap() as usize;
    b[start + 40..start + 44].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&st, &b).unwrap();
    let err = expect_user_error(&run("out"), "NaN weight", "model.safetensors", &["NaN"]);
    assert!(err.contains(name), "{err}");

    // config.json of an architecture attnscope does not implement.
    std::fs::write(&st, &good).unwrap();
    let cfg = std::fs::read_to_string(model.join("config.json")).unwrap().replace("\"llama\"", "\"bert\"");
    std::fs::write(model.join("config.json"), cfg).unwrap();
    expect_user_error(&run("out"), "model_type bert", s(&model), &["unknown architecture `bert`"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_texts_contexts_and_output() {
    let dir = tempdir("texts");
    let model = tiny_llama();
    let text = long_text(&dir);
    let out = dir.join("out");
    let run = |text: &Path, ctx: &str, out: &Path, extra: &[&str]| {
        let mut a = vec!["--model", s(&model), "--text", s(text), "--ctx", ctx, "--out", s(out)];
        a.extend(extra);
        analyze(&a, &[])
    };
    let bad = dir.join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait, na\xefve r\xe9sum\xe9 ".repeat(20)).unwrap();
    expect_user_error(&run(&bad, "8", &out, &[]), "non-UTF-8", "latin1.txt", &["not valid UTF-8"]);
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    expect_user_error(&run(&empty, "8", &out, &[]), "empty text", "empty.txt", &["is empty"]);
    let short = dir.join("short.txt");
    std::fs::write(&short, "Once upon a time.").unwrap();
    expect_user_error(&run(&short, "32", &out, &[]), "short text", "short.txt", &["fewer than the context length 32"]);
    // The tiny llama was trained on 64 positions.
    expect_user_error(&run(&text, "65", &out, &[]), "ctx past trained", "--ctx 65", &["trained context of 64"]);
    // --out under a regular file.
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under = file.join("out");
    expect_user_error(&run(&text, "8", &under, &[]), "unwritable --out", s(&under), &["cannot create output directory", "not writable"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tokenizer_larger_than_the_model_vocabulary() {
    let stories = testdata::stories_dir();
    let dir = tempdir("tok");
    let text = long_text(&dir);
    // tok512.bin (512 tokens) with the tiny llama (vocabulary 384).
    let tok = stories.join("tok512.bin");
    let model = tiny_llama();
    let o = analyze(&["--model", s(&model), "--tokenizer", s(&tok), "--text", s(&text), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
    expect_user_error(&o, "tokenizer 512 > vocab 384", s(&tiny_llama()), &["tokenizer vocabulary (512)"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn memory_guard_refuses_unless_forced() {
    let dir = tempdir("mem");
    let text = long_text(&dir);
    let out = dir.join("out");
    let model = tiny_llama();
    let args = ["--model", s(&model), "--text", s(&text), "--ctx", "16", "--out", s(&out)];
    let limit = [("ATTNSCOPE_MEMORY_LIMIT_BYTES", "100000")];
    let err = expect_user_error(&analyze(&args, &limit), "memory guard", "ATTNSCOPE_MEMORY_LIMIT_BYTES", &["estimated peak memory"]);
    assert!(err.contains("--force") && err.contains("weights"), "{err}");
    assert!(!out.join("report.json").exists());
    let mut forced = args.to_vec();
    forced.push("--force");
    let o = analyze(&forced, &limit);
    assert!(o.status.success(), "--force: {}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("report.json").exists());
    // Without --quiet the estimate is printed.
    let o = bin().arg("analyze").args(args).env("ATTNSCOPE_MEMORY_LIMIT_BYTES", "100000000000").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("estimated peak memory") && err.contains("available"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Checkpoints in the shapes people save them: pickled weights
/// only, a SentencePiece `tokenizer.model` without `tokenizer.json`, and an
/// architecture attnscope does not implement: each one line that names
/// the file or the architecture and says what to do.
#[test]
fn pickled_weights_sentencepiece_only_and_unknown_architecture_are_refused_clearly() {
    let dir = tempdir("shapes");
    let text = long_text(&dir);
    let run = |model: &Path| analyze(&["--model", s(model), "--text", s(&text), "--ctx", "16", "--out", s(&dir.join("out"))], &[]);

    // pytorch_model.bin only (the bytes do not matter: it must never be unpickled).
    let pickled = copy_tiny(&dir.join("pickled"));
    std::fs::rename(pickled.join("model.safetensors"), pickled.join("pytorch_model.bin")).unwrap();
    let err = expect_user_error(&run(&pickled), "pytorch_model.bin only", "pytorch_model.bin", &["pickled PyTorch weights are not read"]);
    assert!(err.contains("safetensors") && err.contains("save_pretrained"), "says how to convert: {err}");

    // tokenizer.model (SentencePiece) but no tokenizer.json.
    let spm = copy_tiny(&dir.join("spm"));
    std::fs::remove_file(spm.join("tokenizer.json")).unwrap();
    std::fs::write(spm.join("tokenizer.model"), b"\x0a\x03\x0a\x01a").unwrap();
    let err = expect_user_error(&run(&spm), "tokenizer.model only", "tokenizer.model", &["no tokenizer.json"]);
    assert!(err.contains("--tokenizer"), "{err}");
    // ... also when passed explicitly with --tokenizer.
    let o = analyze(
        &[
            "--model",
            s(&spm),
            "--tokenizer",
            s(&spm.join("tokenizer.model")),
            "--text",
            s(&text),
            "--ctx",
            "16",
            "--out",
            s(&dir.join("out")),
        ],
        &[],
    );
    expect_user_error(&o, "--tokenizer tokenizer.model", "tokenizer.model", &["SentencePiece .model files are not read"]);
    // ... and with neither, the missing tokenizer.json is named.
    std::fs::remove_file(spm.join("tokenizer.model")).unwrap();
    expect_user_error(&run(&spm), "no tokenizer", "tokenizer.json", &["no tokenizer found"]);

    // An unsupported model_type lists every supported one, the new families included.
    let t5 = copy_tiny(&dir.join("t5"));
    let cfg = std::fs::read_to_string(t5.join("config.json")).unwrap().replace("\"llama\"", "\"t5\"");
    std::fs::write(t5.join("config.json"), cfg).unwrap();
    let err = expect_user_error(&run(&t5), "model_type t5", "t5", &["unknown architecture `t5`"]);
    for family in ["llama", "gemma3_text", "phi3", "stablelm", "bloom", "mpt"] {
        assert!(err.contains(family), "does not list {family}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---------- Hardening: one test per class, through the binary ----------

#[path = "../../../models/tests/integration/loaders_util.rs"]
mod loaders_util;

/// Runs the binary, killed after `secs` (a FIFO must never block the suite).
fn run_bounded(mut c: std::process::Command, secs: u64) -> Output {
    use std::process::Stdio;
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runs the binary");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() >= secs {
            child.kill().ok();
            let o = child.wait_with_output().unwrap();
            panic!("still running after {secs} s (blocked?): {}", String::from_utf8_lossy(&o.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Class 1: a never-ending text, FIFOs with no writer, oversized files read
/// whole. Each is refused with one line, quickly, before anything blocks or
/// grows.
#[test]
fn unbounded_reads_are_refused_or_bounded() {
    let dir = tempdir("reads");
    let text = long_text(&dir);
    let out = dir.join("out");
    let model = copy_tiny(&dir.join("tiny"));
    let o = analyze(&["--model", s(&model), "--text", "/dev/zero", "--ctx", "8", "--out", s(&out)], &[]);
    expect_user_error(&o, "/dev/zero", "/dev/zero", &["not a regular file (a device)"]);
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (flag, args) in [
        ("--text", vec!["--model", s(&model), "--text", s(&fifo)]),
        ("--model", vec!["--model", s(&fifo), "--text", s(&text)]),
        ("--tokenizer", vec!["--model", s(&model), "--tokenizer", s(&fifo), "--text", s(&text)]),
    ] {
        let mut c = bin();
        c.arg("analyze").args(&args).args(["--ctx", "8", "--quiet", "--out", s(&out)]);
        expect_user_error(&run_bounded(c, 60), flag, "fifo", &["not a regular file (a FIFO)"]);
    }
    // Files read whole are capped: a 600 MB tokenizer.json, a 100 MB config.json (sparse).
    let big = copy_tiny(&dir.join("big"));
    std::fs::File::options().write(true).open(big.join("tokenizer.json")).unwrap().set_len(600 << 20).unwrap();
    let o = analyze(&["--model", s(&big), "--text", s(&text), "--ctx", "8", "--out", s(&out)], &[]);
    expect_user_error(&o, "huge tokenizer.json", "tokenizer.json", &["more than the"]);
    std::fs::File::options().write(true).open(big.join("config.json")).unwrap().set_len(100 << 20).unwrap();
    let o = analyze(&["--model", s(&big), "--text", s(&text), "--ctx", "8", "--out", s(&out)], &[]);
    expect_user_error(&o, "huge config.json", "config.json", &["more than the"]);
    // A long text is read only as far as the context needs: same tokens as a short copy.
    let long = dir.join("long8mb.txt");
    let para = std::fs::read_to_string(&text).unwrap();
    std::fs::write(&long, para.repeat((8 << 20) / para.len() + 1)).unwrap();
    for (t, o) in [(&text, "o1"), (&long, "o2")] {
        let r = analyze(&["--model", s(&model), "--text", s(t), "--ctx", "16", "--out", s(&dir.join(o))], &[]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let ids = |o: &str| {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(o).join("report.json")).unwrap()).unwrap();
        r["runs"][0]["token_ids_head"].clone()
    };
    assert_eq!(ids("o1"), ids("o2"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A 1-layer GGUF whose `token_embd.weight` claims 8 × 1.5·10⁹ f32 (48 GB),
/// backed by a sparse file: the header is honest about the data's place.
fn huge_tensor_gguf(dir: &Path) -> PathBuf {
    let t = loaders_util::T { name: "token_embd.weight".into(), ne: vec![8, 1_500_000_000], ty: 0, data: Vec::new() };
    let bytes = loaders_util::tiny_model("llama", vec![], vec![t]);
    let p = dir.join("huge.gguf");
    std::fs::write(&p, &bytes).unwrap();
    std::fs::File::options().write(true).open(&p).unwrap().set_len(bytes.len() as u64 + 48_000_000_000).unwrap();
    p
}

/// Class 2: every subcommand runs the memory guard; --force never turns a
/// refusal into an abort; ATTNSCOPE_MEMORY_LIMIT_BYTES is parsed strictly.
#[test]
fn one_memory_guard_for_every_subcommand() {
    let dir = tempdir("guard");
    let text = long_text(&dir);
    let huge = huge_tensor_gguf(&dir);
    let out = s(&dir.join("out")).to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["analyze", "--model", s(&huge), "--text", s(&text), "--ctx", "8", "--out", &out],
        vec!["compress", "--model", s(&huge), "--calib", s(&text), "--eval", s(&text), "--ctx", "8", "--out", &out],
        vec!["monitor", "--checkpoints", s(&huge), "--text", s(&text), "--ctx", "8", "--out", &out],
    ];
    for args in &cases {
        // (monitor has no --quiet: it prints the guard's line only on refusal)
        let quiet: &[&str] = if args[0] == "monitor" { &[] } else { &["--quiet"] };
        // The header's 48 GB claim never aborts, with or without --force:
        // exit 2 and one line. (Weights stream from the mapped file, so
        // analyze and monitor never read the embedding table beyond the rows
        // in use and stop at the missing tokenizer; compress, which needs the
        // full logits, is refused by the guard or by the allocation probe.)
        for force in [&[][..], &["--force"][..]] {
            let o = bin().args(args).args(quiet).args(force).output().unwrap();
            expect_user_error(
                &o,
                &format!("{} {force:?}", args[0]),
                "attnscope: error: ",
                &["cannot allocate", "estimated peak memory", "no tokenizer found"],
            );
        }
        // Every subcommand runs the guard: a limit below its estimate refuses.
        let o = bin().args(args).args(quiet).env("ATTNSCOPE_MEMORY_LIMIT_BYTES", "1000000").output().unwrap();
        expect_user_error(&o, args[0], "estimated peak memory", &["--force"]);
    }
    let train =
        |extra: &[&str]| bin().args(["train", "--text", s(&text), "--steps", "1", "--quiet", "--out", &out]).args(extra).output().unwrap();
    for extra in [["--d-model", "1000000"], ["--layers", "100000000"], ["--batch", "1000000000"]] {
        expect_user_error(&train(&extra), extra[0], "estimated peak memory", &["--force"]);
    }
    let mut forced = bin();
    forced.args(["train", "--text", s(&text), "--steps", "1", "--quiet", "--force", "--layers", "100000000", "--out", &out]);
    expect_user_error(&run_bounded(forced, 60), "train --force", "training", &["cannot allocate"]);
    for bad in ["1G", "abc", "-5", ""] {
        let o = bin().args(&cases[0]).arg("--quiet").env("ATTNSCOPE_MEMORY_LIMIT_BYTES", bad).output().unwrap();
        expect_user_error(&o, bad, "ATTNSCOPE_MEMORY_LIMIT_BYTES", &["not a whole number of bytes"]);
        let o = bin().args(&cases[2]).env("ATTNSCOPE_MEMORY_LIMIT_BYTES", bad).output().unwrap();
        expect_user_error(&o, bad, "ATTNSCOPE_MEMORY_LIMIT_BYTES", &["not a whole number of bytes"]);
    }
    let o = bin()
        .args(["train", "--text", s(&text), "--steps", "1", "--quiet", "--out", &out])
        .env("ATTNSCOPE_MEMORY_LIMIT_BYTES", "1G")
        .output()
        .unwrap();
    expect_user_error(&o, "train 1G", "ATTNSCOPE_MEMORY_LIMIT_BYTES", &["not a whole number of bytes"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Class 3: --threads past the cores is capped (and says so), never a hang.
#[test]
fn threads_are_capped_at_the_cores() {
    let dir = tempdir("threads");
    let text = long_text(&dir);
    let model = tiny_llama();
    let mut c = bin();
    c.args([
        "analyze",
        "--model",
        s(&model),
        "--text",
        s(&text),
        "--ctx",
        "8",
        "--threads",
        "18446744073709551615",
        "--out",
        s(&dir.join("out")),
    ]);
    let o = run_bounded(c, 120);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("--threads 18446744073709551615 is more than the") && err.contains("cores; using"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Class 4: a replaced model, another tokenizer, or --dense-check over runs
/// made without it recompute (and say why); duplicate ctx values are one run.
#[test]
fn resume_never_mixes_results() {
    let dir = tempdir("resume");
    let text = long_text(&dir);
    let model = copy_tiny(&dir.join("tiny"));
    let out = dir.join("out");
    let run = |extra: &[&str]| {
        let o = bin()
            .args(["analyze", "--model", s(&model), "--text", s(&text), "--ctx", "16,16,8", "--out", s(&out)])
            .args(extra)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 2, "--ctx 16,16,8 is two runs");
    let (code, err) = run(&[]);
    assert_eq!((code, err.matches("reusing runs/").count()), (Some(0), 2), "{err}");
    // Replace the model at the same path: one weight changed, same size.
    let st = model.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x01; // low mantissa bits of the last f32: still finite
    std::fs::write(&st, &bytes).unwrap();
    let (code, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches("the model changed").count(), 2, "{err}");
    let (_, err) = run(&["--tokenizer", s(&model.join("tokenizer.json"))]);
    assert_eq!(err.matches("the tokenizer changed").count(), 2, "{err}");
    let (code, err) = run(&["--tokenizer", s(&model.join("tokenizer.json")), "--dense-check"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches("computed without --dense-check").count(), 2, "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Class 5: values present but invalid are errors naming the key.
#[test]
fn corrupt_values_are_errors_naming_the_key() {
    let dir = tempdir("values");
    let text = long_text(&dir);
    let out = dir.join("out");
    let tiny = copy_tiny(&dir.join("tiny"));
    let cfg = std::fs::read_to_string(tiny.join("config.json")).unwrap();
    std::fs::write(tiny.join("config.json"), cfg.replace("\"rope_theta\": 10000.0,", "\"rope_theta\": \"1000000.0\",")).unwrap();
    let o = analyze(&["--model", s(&tiny), "--text", s(&text), "--ctx", "8", "--out", s(&out)], &[]);
    expect_user_error(&o, "string rope_theta", "`rope_theta`", &["not a finite number"]);
    for (key, v) in [("llama.rope.freq_base", f32::NAN), ("llama.attention.layer_norm_rms_epsilon", f32::INFINITY)] {
        // rope.freq_base is added; the tiny model's own rms_epsilon is overwritten in place.
        let extra = if key.contains("rms") { vec![] } else { vec![(key, loaders_util::Kv::F32(v))] };
        let bytes = patch_f32_after(&loaders_util::tiny_model("llama", extra, vec![]), key, v);
        let p = dir.join("nan.gguf");
        std::fs::write(&p, bytes).unwrap();
        let o = analyze(&["--model", s(&p), "--text", s(&text), "--ctx", "8", "--out", s(&out)], &[]);
        expect_user_error(&o, key, key, &["not a finite number"]);
    }
    // Monitor: a NaN threshold, checkpoints of two shapes, a probe past the trained context.
    let o = bin().args(["monitor", "--checkpoints", s(&tiny), "--text", s(&text), "--z-max", "NaN"]).output().unwrap();
    expect_user_error(&o, "--z-max NaN", "--z-max", &["not a finite number"]);
    let tiny2 = copy_tiny(&dir.join("tiny2"));
    let stories = Some(testdata::stories_dir());
    if let Some(stories) = &stories {
        // The first checkpoint is observed (its progress lines), then the second refused.
        let o = bin()
            .args([
                "monitor",
                "--checkpoints",
                s(&tiny2),
                s(&stories.join("stories260K.gguf")),
                "--text",
                s(&text),
                "--ctx",
                "8",
                "--out",
                s(&out),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err.trim_end().lines().last().unwrap_or_default();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(last.starts_with("attnscope: error: checkpoint") && last.contains("one shape") && last.contains("tiny2"), "{err}");
    }
    let o = bin().args(["monitor", "--checkpoints", s(&tiny2), "--text", s(&text), "--ctx", "65", "--out", s(&out)]).output().unwrap();
    expect_user_error(&o, "monitor ctx", "--ctx 65", &["trained context"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// The GGUF bytes with the f32 value of metadata `key` replaced by `v`.
fn patch_f32_after(bytes: &[u8], key: &str, v: f32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = b.windows(key.len()).position(|w| w == key.as_bytes()).expect("key present") + key.len();
    assert_eq!(b[at..at + 4], 6u32.to_le_bytes(), "an f32 value");
    b[at + 4..at + 8].copy_from_slice(&v.to_le_bytes());
    b
}

/// Class 6: a full disk (writes past RLIMIT_FSIZE fail with EFBIG) leaves
/// no temp file behind; stale ones are removed at start.
#[test]
fn full_disk_leaves_no_temp_files() {
    let dir = tempdir("disk");
    let text = long_text(&dir);
    let model = tiny_llama();
    let out = dir.join("out");
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 40; exec '{}' analyze --model '{}' --text '{}' --ctx 16 --quiet --out '{}'",
        env!("CARGO_BIN_EXE_attnscope"),
        s(&model),
        s(&text),
        s(&out)
    );
    let o = std::process::Command::new("sh").args(["-c", &cmd]).output().unwrap();
    expect_user_error(&o, "full disk", "cannot write", &["File too large", "os error 27"]);
    let leftovers = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    };
    assert!(leftovers(&out).is_empty() && leftovers(&out.join("runs")).is_empty(), "{:?}", leftovers(&out));
    // Stale temp files of a dead process are cleaned at the next start.
    std::fs::write(out.join("report.tmp-999999999"), b"x").unwrap();
    std::fs::write(out.join("runs").join("a.tmp-999999999"), b"x").unwrap();
    let o = analyze(&["--model", s(&model), "--text", s(&text), "--ctx", "16", "--out", s(&out)], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(leftovers(&out).is_empty() && leftovers(&out.join("runs")).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

/// Class 7: argument errors are one line; names from files are escaped;
/// failed invariants warn in one line and exit 3.
#[test]
fn one_line_always() {
    let dir = tempdir("oneline");
    for args in [vec!["analyze", "--no-such-flag"], vec!["analyze", "--ctx", "abc"], vec![], vec!["frobnicate"]] {
        let o = bin().args(&args).output().unwrap();
        expect_user_error(&o, &format!("{args:?}"), "attnscope --help", &["argument", "invalid value", "subcommand"]);
    }
    let evil = dir.join("evil\nname\x1b[31m.txt");
    std::fs::write(&evil, "").unwrap();
    let o = analyze(&["--model", s(&tiny_llama()), "--text", s(&evil), "--ctx", "8", "--out", s(&dir.join("out"))], &[]);
    let err = expect_user_error(&o, "escaped name", "evil\\nname\\u{1b}[31m.txt", &["is empty"]);
    assert!(!err.contains('\x1b'));
    // Q weights of layer 0 scaled by 10⁴: f32 softmax rounding breaks shift consistency.
    let stories = testdata::stories_dir();
    let text = long_text(&dir);
    let mut b = std::fs::read(stories.join("stories260K.bin")).unwrap();
    let h: Vec<i32> = (0..7).map(|i| i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())).collect();
    let (dim, layers, vocab) = (h[0] as usize, h[2] as usize, h[5].unsigned_abs() as usize);
    let wq = 28 + 4 * (vocab * dim + layers * dim);
    for i in 0..layers * dim * dim {
        let at = wq + 4 * i;
        let x = f32::from_le_bytes(b[at..at + 4].try_into().unwrap()) * 1e4;
        b[at..at + 4].copy_from_slice(&x.to_le_bytes());
    }
    let scaled = dir.join("scaled");
    std::fs::create_dir_all(&scaled).unwrap();
    std::fs::write(scaled.join("stories260K.bin"), b).unwrap();
    std::fs::copy(stories.join("tok512.bin"), scaled.join("tok512.bin")).unwrap();
    let o =
        analyze(&["--model", s(&scaled.join("stories260K.bin")), "--text", s(&text), "--ctx", "32", "--out", s(&dir.join("out3"))], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("attnscope: warning: ") && err.contains("fail the mechanism invariants"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
