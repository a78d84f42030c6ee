//! Corrupt, truncated and hostile inputs: every one must give an `Err` whose
//! message names the file — never a panic, never a huge allocation.

use crate::loaders_util as util;

use std::path::Path;

use models::{Checkpoint, Error};
use util::*;

#[test]
fn gguf_truncated_anywhere_is_an_error() {
    let dir = tmpdir("gguf-trunc");
    let good = tiny_model("llama", vec![], vec![]);
    let n = good.len();
    for cut in [0, 2, 4, 6, 8, 12, 16, 20, 24, 30, 40, 60, 100, 200, 300, 400, 500, 700, n / 2, n - 33, n - 1] {
        let p = write(&dir, &format!("cut{cut}.gguf"), &good[..cut.min(n - 1)]);
        expect_err(&p, None);
    }
}

#[test]
fn gguf_wrong_magic_and_version() {
    let dir = tmpdir("gguf-magic");
    let mut b = tiny_model("llama", vec![], vec![]);
    b[0] = b'X';
    let p = write(&dir, "magic.gguf", &b);
    assert!(matches!(expect_err(&p, None), Error::Format { .. }));
    let mut b = tiny_model("llama", vec![], vec![]);
    b[4] = 1; // version 1 (u32 counts) is not supported
    let p = write(&dir, "v1.gguf", &b);
    assert!(expect_err(&p, None).to_string().contains("version"));
}

#[test]
fn gguf_declared_sizes_larger_than_file() {
    let dir = tmpdir("gguf-sizes");
    let good = tiny_model("llama", vec![], vec![]);
    // tensor count / kv count = u64::MAX
    for at in [8usize, 16] {
        let mut b = good.clone();
        b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let p = write(&dir, &format!("count{at}.gguf"), &b);
        expect_err(&p, None);
    }
    // first key length = 2^60
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    expect_err(&write(&dir, "keylen.gguf", &b), None);
    // a string array claiming 2^40 elements
    let huge = gguf(&[("general.architecture", Kv::Str("llama")), ("tokenizer.ggml.tokens", Kv::Strs(vec!["a".into()]))], &[]);
    let mut b = huge.clone();
    let pos = b.windows(21).position(|w| w == b"tokenizer.ggml.tokens").unwrap() + 21 + 8;
    b[pos..pos + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect_err(&write(&dir, "arr.gguf", &b), None);
    // a tensor whose dims overflow / exceed the data section
    let big = T { name: "blk.0.ffn_up.weight".into(), ne: vec![1 << 31, 1 << 31], ty: 0, data: vec![] };
    expect_err(&write(&dir, "dims.gguf", &tiny_model("llama", vec![], vec![big])), None);
    let big = T { name: "blk.0.ffn_up.weight".into(), ne: vec![u64::MAX, 3], ty: 0, data: vec![] };
    expect_err(&write(&dir, "dims2.gguf", &tiny_model("llama", vec![], vec![big])), None);
}

#[test]
fn gguf_unknown_architecture_lists_supported() {
    let dir = tmpdir("gguf-arch");
    let p = write(&dir, "arch.gguf", &tiny_model("gpt7", vec![], vec![]));
    let e = expect_err(&p, None);
    assert!(matches!(e, Error::UnknownArchitecture { .. }));
    assert!(e.to_string().contains("llama") && e.to_string().contains("qwen2"), "{e}");
}

#[test]
fn gguf_unsupported_tensor_type_names_tensor_and_type() {
    let dir = tmpdir("gguf-type");
    // Q5_0 (type 6): 32 values per 22-byte block; ne [32, 4] = 4 blocks.
    let t = T { name: "blk.0.ffn_up.weight".into(), ne: vec![32, 4], ty: 6, data: vec![0; 88] };
    let p = write(&dir, "q5.gguf", &tiny_model("llama", vec![], vec![t]));
    let e = expect_err(&p, None);
    assert!(matches!(e, Error::Unsupported { .. }));
    let m = e.to_string();
    assert!(m.contains("blk.0.ffn_up.weight") && m.contains("Q5_0"), "{m}");
    // An unknown type id (e.g. an IQ type) too.
    let t = T { name: "blk.0.ffn_up.weight".into(), ne: vec![32, 4], ty: 23, data: vec![0; 64] };
    let m = expect_err(&write(&dir, "iq.gguf", &tiny_model("llama", vec![], vec![t])), None).to_string();
    assert!(m.contains("blk.0.ffn_up.weight") && m.contains("23"), "{m}");
}

#[test]
fn gguf_nan_weights_are_reported_on_get() {
    let dir = tmpdir("gguf-nan");
    let t = f32_tensor("blk.0.ffn_up.weight", &[D, 16], |i| if i == 5 { f32::NAN } else { 0.0 });
    let p = write(&dir, "nan.gguf", &tiny_model("llama", vec![], vec![t]));
    let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
    let e = c.tensors.get("model.layers.0.mlp.up_proj.weight").unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }));
    assert!(e.to_string().contains("nan.gguf"), "{e}");
}

#[test]
fn gguf_unknown_pre_tokenizer_is_an_error() {
    let dir = tmpdir("gguf-pre");
    let toks: Vec<String> = ["a", "b", "ab"].iter().map(|s| s.to_string()).collect();
    let extra = vec![
        ("tokenizer.ggml.model", Kv::Str("gpt2")),
        ("tokenizer.ggml.pre", Kv::Str("mystery-bpe")),
        ("tokenizer.ggml.tokens", Kv::Strs(toks)),
        ("tokenizer.ggml.merges", Kv::Strs(vec!["a b".into()])),
        ("tokenizer.ggml.token_type", Kv::I32s(vec![1, 1, 1])),
        ("tokenizer.ggml.add_bos_token", Kv::Bool(false)),
    ];
    let p = write(&dir, "pre.gguf", &tiny_model("llama", extra, vec![]));
    let m = expect_err(&p, None).to_string();
    assert!(m.contains("mystery-bpe") && m.contains("smollm"), "{m}");
    let _ = Kv::F32s(vec![]);
}

#[test]
fn llama2c_synthetic_opens_both_layouts() {
    let dir = tmpdir("l2c-ok");
    for (vocab, freq) in [(300, true), (300, false), (-300, true), (-300, false)] {
        let p = write(&dir, &format!("m{vocab}{freq}.bin"), &tiny_llama2c(vocab, 4, freq));
        let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
        assert_eq!(c.tensors.contains("lm_head.weight"), vocab < 0);
        assert_eq!(c.config["tie_word_embeddings"], vocab > 0);
        assert!(c.tokenizer.is_none(), "no tokenizer beside it");
    }
}

#[test]
fn llama2c_truncated_or_padded_is_an_error() {
    let dir = tmpdir("l2c-trunc");
    let good = tiny_llama2c(300, 4, true);
    let n = good.len();
    for cut in [0, 3, 4, 12, 27, 28, 100, n / 2, n - 4, n - 1] {
        let p = write(&dir, &format!("cut{cut}.bin"), &good[..cut]);
        expect_err(&p, None);
    }
    let mut padded = good.clone();
    padded.extend([0u8; 8]);
    let m = expect_err(&write(&dir, "padded.bin", &padded), None).to_string();
    assert!(m.contains("implies"), "{m}");
}

#[test]
fn llama2c_hostile_headers_are_errors() {
    let dir = tmpdir("l2c-hdr");
    for (i, hdr) in [
        [8, 16, 1, 2, 1, i32::MAX, 4],
        [i32::MAX, i32::MAX, i32::MAX, 1, 1, 300, 4],
        [-8, 16, 1, 2, 1, 300, 4],
        [8, 16, 1, 3, 1, 300, 4], // 3 heads do not divide dim 8
        [8, 16, 1, 2, 0, 300, 4],
        [8, 16, 1, 2, 1, i32::MIN, 4],
    ]
    .iter()
    .enumerate()
    {
        let mut b = tiny_llama2c(300, 4, true);
        for (j, x) in hdr.iter().enumerate() {
            b[4 * j..4 * j + 4].copy_from_slice(&x.to_le_bytes());
        }
        expect_err(&write(&dir, &format!("h{i}.bin"), &b), None);
    }
}

#[test]
fn missing_or_corrupt_tokenizer_is_an_error() {
    let dir = tmpdir("tok");
    let model = write(&dir, "m.bin", &tiny_llama2c(300, 4, true));
    let missing = dir.join("no-such-tokenizer.bin");
    expect_err(&model, Some(&missing));
    let bad = write(&dir, "tok-bad.bin", &[16, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 127]);
    expect_err(&model, Some(&bad));
    let bad_json = write(&dir, "tokenizer.json", b"{not json");
    expect_err(&model, Some(&bad_json));
}

// ---------- HF directories / safetensors ----------

fn safetensors_bytes(n: usize) -> Vec<u8> {
    let header = format!(r#"{{"model.embed_tokens.weight":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#, 4 * n);
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend((0..n).flat_map(|i| (i as f32).to_le_bytes()));
    b
}

#[test]
fn hf_dir_good_then_truncated_safetensors() {
    let dir = tmpdir("st");
    write(&dir, "config.json", br#"{"model_type": "llama"}"#);
    let good = safetensors_bytes(16);
    write(&dir, "model.safetensors", &good);
    let c = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
    assert_eq!(c.tensors.get("model.embed_tokens.weight").unwrap().dims(), &[16]);
    for cut in [0, 4, 8, 20, good.len() - 64, good.len() - 1] {
        write(&dir, "model.safetensors", &good[..cut]);
        let e = Checkpoint::open(dir.to_str().unwrap(), None).err().expect("truncated safetensors must fail");
        assert!(e.to_string().contains("model.safetensors"), "{e}");
    }
    // header length larger than the file
    let mut b = good.clone();
    b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    write(&dir, "model.safetensors", &b);
    let e = Checkpoint::open(dir.to_str().unwrap(), None).err().unwrap();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn hf_dir_bad_config_and_index() {
    let dir = tmpdir("cfg");
    write(&dir, "model.safetensors", &safetensors_bytes(4));
    let e = Checkpoint::open(dir.to_str().unwrap(), None).err().unwrap();
    assert!(e.to_string().contains("config.json"), "{e}");
    write(&dir, "config.json", br#"{"hidden_size": 4}"#);
    let e = Checkpoint::open(dir.to_str().unwrap(), None).err().unwrap();
    assert!(e.to_string().contains("model_type"), "{e}");
    write(&dir, "config.json", br#"{"model_type": "llama"}"#);
    write(&dir, "model.safetensors.index.json", br#"{"weight_map": {"a": "../../etc/passwd"}}"#);
    let e = Checkpoint::open(dir.to_str().unwrap(), None).err().unwrap();
    assert!(e.to_string().contains("index"), "{e}");
    write(&dir, "model.safetensors.index.json", br#"{"weight_map": {"a": "model-00002.safetensors"}}"#);
    let e = Checkpoint::open(dir.to_str().unwrap(), None).err().unwrap();
    assert!(e.to_string().contains("model-00002.safetensors"), "{e}");
}

#[test]
fn nonexistent_source_is_an_error() {
    let e = Checkpoint::open("/no/such/model.gguf", None).err().unwrap();
    assert!(e.to_string().contains("/no/such/model.gguf"), "{e}");
}

// ---------- random corruption: Err or Ok, never a panic ----------

/// Deterministic xorshift generator (no rand dependency needed).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Opens `bytes` as `name`, then loads every tensor and encodes a text:
/// any panic fails the test; errors are fine.
fn exercise(dir: &Path, name: &str, bytes: &[u8]) {
    let p = write(dir, name, bytes);
    let r = std::panic::catch_unwind(|| {
        if let Ok(c) = Checkpoint::open(p.to_str().unwrap(), None) {
            for n in c.tensors.names() {
                let _ = c.tensors.get(&n);
            }
            if let Some(t) = &c.tokenizer {
                if let Ok(ids) = t.encode("Hello world, 123 héllo") {
                    let _ = t.decode(&ids);
                }
            }
        }
    });
    assert!(r.is_ok(), "panic on corrupted {name}");
}

fn tiny_model_with_tokenizer(spm: bool) -> Vec<u8> {
    let toks: Vec<String> = if spm {
        let mut v: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        v.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        v.extend(["\u{2581}", "H", "e", "l", "o", "He", "ll", "\u{2581}w"].iter().map(|s| s.to_string()));
        v
    } else {
        ["<|endoftext|>", "H", "e", "l", "o", "He", "ll", "Hell", "Ġ", "w"].iter().map(|s| s.to_string()).collect()
    };
    let n = toks.len();
    let mut extra = vec![
        ("tokenizer.ggml.tokens", Kv::Strs(toks)),
        ("tokenizer.ggml.token_type", Kv::I32s((0..n).map(|i| if i < 3 { 3 } else { 1 }).collect())),
        ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
    ];
    if spm {
        extra.push(("tokenizer.ggml.model", Kv::Str("llama")));
        extra.push(("tokenizer.ggml.scores", Kv::F32s((0..n).map(|i| -(i as f32)).collect())));
    } else {
        extra.push(("tokenizer.ggml.model", Kv::Str("gpt2")));
        extra.push(("tokenizer.ggml.pre", Kv::Str("smollm")));
        extra.push(("tokenizer.ggml.merges", Kv::Strs(vec!["H e".into(), "l l".into(), "He ll".into()])));
    }
    tiny_model("llama", extra, vec![])
}

#[test]
fn random_corruption_never_panics() {
    let dir = tmpdir("fuzz");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("f.gguf", tiny_model("llama", vec![], vec![])),
        ("spm.gguf", tiny_model_with_tokenizer(true)),
        ("bpe.gguf", tiny_model_with_tokenizer(false)),
        ("m.bin", tiny_llama2c(300, 4, true)),
    ];
    for (name, good) in &inputs {
        // The uncorrupted file opens (with its tokenizer, where it has one).
        let p = write(&dir, name, good);
        let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
        if name.ends_with("pe.gguf") || name.starts_with("spm") {
            let ids = c.tokenizer.as_ref().unwrap().encode("Hello").unwrap();
            assert!(!ids.is_empty(), "{name}");
        }
        for round in 0..150 {
            let mut b = good.clone();
            // Mostly hit the header/metadata region, where lengths live.
            let span = if round % 3 == 0 { b.len() } else { b.len().min(4096) };
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % span;
                b[i] = match rng.next() % 4 {
                    0 => 0xFF,
                    1 => 0x00,
                    2 => b[i] ^ (1 << (rng.next() % 8)),
                    _ => rng.next() as u8,
                };
            }
            if round % 10 == 9 {
                let cut = (rng.next() as usize) % b.len();
                b.truncate(cut);
            }
            exercise(&dir, name, &b);
        }
    }
}

#[test]
fn unrecognised_file_says_what_was_expected() {
    let dir = tmpdir("unrec");
    let p = write(&dir, "weights.pt", b"PK\x03\x04 not a model at all, just some bytes....");
    let m = expect_err(&p, None).to_string();
    assert!(m.contains("not recognised") && m.contains("GGUF"), "{m}");
}

// ---------- regressions from fuzzing (fuzz/, docs/hardening.md) ----------

/// fuzz gguf: a `block_count` of 2^32 − 1 sized ArchSpec's per-layer table
/// (a 68 GB allocation: abort). Now an error naming the file.
#[test]
fn gguf_huge_block_count_is_an_error_not_an_abort() {
    let dir = tmpdir("gguf-blocks");
    let b = tiny_model("llama", vec![("llama.block_count", Kv::U32(u32::MAX))], vec![]);
    let p = write(&dir, "blocks.gguf", &b);
    let m = expect_err(&p, None).to_string();
    assert!(m.contains("block_count") && m.contains("tensors"), "{m}");
}

/// fuzz config: `num_hidden_layers` of 2^32 in config.json, same abort.
#[test]
fn hf_config_huge_layer_count_is_an_error_not_an_abort() {
    let dir = tmpdir("cfg-layers");
    write(&dir, "model.safetensors", &safetensors_bytes(4));
    for key in ["num_hidden_layers", "n_layer"] {
        let cfg = format!(
            r#"{{"model_type": "llama", "{key}": 4294967296, "hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 8, "vocab_size": 4}}"#
        );
        write(&dir, "config.json", cfg.as_bytes());
        let e = Checkpoint::open(dir.to_str().unwrap(), None).err().unwrap();
        assert!(e.to_string().contains("config.json") && e.to_string().contains(key), "{e}");
    }
}

/// fuzz tokenizer: three tokenizer.json files on which `tokenizers` 0.23.2
/// panics instead of returning an error, now refused with a message naming
/// the file: a JSON syntax error inside `decoder`; a BPE merge that does not
/// fit `continuing_subword_prefix`; a template naming an undefined special token.
#[test]
fn tokenizer_json_that_panics_tokenizers_is_an_error() {
    let dir = tmpdir("tok-panics");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/llama/tokenizer.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let good: serde_json::Value = serde_json::from_str(&text).unwrap();

    let decoder_at = text.find("\"decoder\"").unwrap();
    let brace = decoder_at + text[decoder_at..].find('{').unwrap();
    let broken = format!("{}{{,{}", &text[..brace], &text[brace + 1..]);
    let mut prefix = good.clone();
    prefix["model"]["continuing_subword_prefix"] = "olmo2".into();
    let mut template = good.clone();
    template["post_processor"]["single"][0]["SpecialToken"]["id"] = "[CLS]".into();
    // tokenizers reads post-processors untagged: a template without `type` is one too.
    let mut untyped = template.clone();
    untyped["post_processor"].as_object_mut().unwrap().remove("type");

    for (name, bytes, want) in [
        ("decoder.json", broken.into_bytes(), "cannot parse"),
        ("prefix.json", serde_json::to_vec(&prefix).unwrap(), "continuing_subword_prefix"),
        ("template.json", serde_json::to_vec(&template).unwrap(), "[CLS]"),
        ("untyped.json", serde_json::to_vec(&untyped).unwrap(), "[CLS]"),
    ] {
        let p = write(&dir, name, &bytes);
        let r = std::panic::catch_unwind(|| models::TextTokenizer::from_path(&p));
        let e = r.unwrap_or_else(|_| panic!("{name}: panicked")).err().unwrap_or_else(|| panic!("{name}: accepted"));
        let m = e.to_string();
        assert!(m.contains(name) && m.contains(want), "{name}: {m}");
    }
}

// ---------- Hardening: corrupt values are errors, not defaults ----------

/// Offset field (u64) of tensor `name` in the tensor table of GGUF `bytes`
/// (a 1-D tensor: name, n_dims u32, one u64 dim, type u32, offset u64).
fn offset_at(bytes: &[u8], name: &str) -> usize {
    let at = bytes.windows(name.len()).position(|w| w == name.as_bytes()).unwrap() + name.len();
    assert_eq!(bytes[at..at + 4], 1u32.to_le_bytes(), "{name} is 1-D");
    at + 4 + 8 + 4
}

#[test]
fn gguf_overlapping_tensors_are_an_error() {
    let dir = tmpdir("overlap");
    let mut b = tiny_model("llama", vec![], vec![]);
    let (a, c) = (offset_at(&b, "output_norm.weight"), offset_at(&b, "blk.0.attn_norm.weight"));
    let off = b[a..a + 8].to_vec();
    b[c..c + 8].copy_from_slice(&off);
    let p = write(&dir, "overlap.gguf", &b);
    let msg = expect_err(&p, None).to_string();
    assert!(msg.contains("overlap") && msg.contains("output_norm.weight") && msg.contains("blk.0.attn_norm.weight"), "{msg}");
}

#[test]
fn gguf_non_finite_or_mistyped_metadata_names_the_key() {
    let dir = tmpdir("meta");
    for (key, kv, want) in [
        ("llama.rope.freq_base", Kv::F32(f32::NAN), "not a finite number"),
        ("llama.rope.freq_base", Kv::F32(-1.0), "not a positive number"),
        ("llama.attention.sliding_window", Kv::Str("4096"), "not a non-negative integer"),
        ("tokenizer.ggml.add_bos_token", Kv::U32(1), "not a bool"),
    ] {
        let mut kvs = vec![(key, kv)];
        if key.starts_with("tokenizer") {
            kvs.push(("tokenizer.ggml.model", Kv::Str("llama")));
            kvs.push(("tokenizer.ggml.tokens", Kv::Strs((0..16).map(|i| format!("t{i}")).collect())));
        }
        let p = write(&dir, "m.gguf", &tiny_model("llama", kvs, vec![]));
        let msg = expect_err(&p, None).to_string();
        assert!(msg.contains(key) && msg.contains(want), "{key}: {msg}");
    }
}

/// A llama2.c tokenizer.bin: BOS/EOS, the 256 byte tokens, then `extra`.
fn llama2c_tokenizer(scores: impl Fn(usize) -> f32, byte_token: impl Fn(usize) -> String) -> Vec<u8> {
    let mut toks: Vec<String> = vec!["<unk>".into(), "\n<s>\n".into(), "\n</s>\n".into()];
    toks.extend((0..256).map(&byte_token));
    toks.extend(["a", "b", "ab", " "].iter().map(|s| s.to_string()));
    let mut b = 16i32.to_le_bytes().to_vec();
    for (i, t) in toks.iter().enumerate() {
        b.extend(scores(i).to_le_bytes());
        b.extend((t.len() as i32).to_le_bytes());
        b.extend(t.as_bytes());
    }
    b
}

#[test]
fn llama2c_tokenizer_nan_scores_and_wrong_byte_tokens_are_errors() {
    let dir = tmpdir("tokbin");
    let bytes = |b: usize| format!("<0x{b:02X}>");
    let good = write(&dir, "good.bin", &llama2c_tokenizer(|_| 0.0, bytes));
    assert!(models::TextTokenizer::from_path(&good).is_ok());
    let nan = write(&dir, "nan.bin", &llama2c_tokenizer(|i| if i == 261 { f32::NAN } else { 0.0 }, bytes));
    let msg = models::TextTokenizer::from_path(&nan).err().expect("NaN score refused").to_string();
    assert!(msg.contains("nan.bin") && msg.contains("token 261") && msg.contains("not a finite number"), "{msg}");
    let wrong = write(&dir, "wrong.bin", &llama2c_tokenizer(|_| 0.0, |b| if b == 10 { "x".into() } else { bytes(b) }));
    let msg = models::TextTokenizer::from_path(&wrong).err().expect("byte token refused").to_string();
    assert!(msg.contains("wrong.bin") && msg.contains("token 13") && msg.contains("<0x0A>"), "{msg}");
}

#[test]
fn fifo_model_and_tokenizer_are_refused_without_opening() {
    let dir = tmpdir("fifo");
    let fifo = dir.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let msg = expect_err(&fifo, None).to_string();
    assert!(msg.contains("not a regular file (a FIFO)"), "{msg}");
    let msg = models::TextTokenizer::from_path(&fifo).err().expect("refused").to_string();
    assert!(msg.contains("pipe") && msg.contains("a FIFO"), "{msg}");
}
