//! Fuzz entry points for every parser attnscope reads untrusted bytes with
//! (issue 7). Each takes arbitrary bytes, drives the same code path the CLI
//! takes (open → load every tensor → build the decoder → a 3-token forward
//! pass → tokenize and detokenize), and returns a short *outcome* string:
//! `ok…` or the error message with numbers and paths normalised away. The
//! libFuzzer targets ignore it; `fuzz_loop` uses new outcomes as a cheap
//! coverage signal. A panic, abort or hang is a bug; an `Err` is fine.
//!
//! The loaders read files (they memory-map them), so every input is written
//! to a per-process scratch directory (in /dev/shm when it exists) first:
//! the real path, no test-only entry points.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use models::{ArchSpec, Checkpoint, Logits, Model, TextTokenizer};

/// Texts every tokenizer is run on: ASCII, digits, accents, CJK, emoji,
/// control characters, literal special-token text, the SentencePiece space.
const TEXTS: &[&str] = &[
    "Hello world, 123 héllo",
    " \t\n\r  x  ",
    "<s></s><|endoftext|><unk> ▁▁a",
    "日本語 🎉 \u{0} \u{FFFD} ab'll 99999999",
    "",
];

/// The scratch directory of this process (created once).
pub fn work() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let d = base.join(format!("attnscope-fuzz-{}", std::process::id()));
        for sub in ["", "hf", "cfg", "tok", "tokcfg"] {
            std::fs::create_dir_all(d.join(sub)).expect("scratch dir");
        }
        // Fixed halves of the two-file inputs.
        std::fs::write(d.join("hf/config.json"), TINY_CONFIG).expect("scratch");
        std::fs::write(d.join("cfg/model.safetensors"), tiny_safetensors()).expect("scratch");
        std::fs::write(d.join("tokcfg/tokenizer.json"), TINY_TOKENIZER_JSON).expect("scratch");
        d
    })
}

fn put(rel: &str, data: &[u8]) -> PathBuf {
    let p = work().join(rel);
    std::fs::write(&p, data).expect("write scratch input");
    p
}

/// Error message → outcome key: the scratch path, digits, and whatever is
/// quoted (`names`, "strings", [arrays], (details)) removed, so that the key
/// says which check fired, not with which values.
fn shape(e: impl std::fmt::Display) -> String {
    let msg = e.to_string().replace(&*work().to_string_lossy(), "");
    let mut out = String::from("err:");
    let mut last_digit = false;
    let mut close: Option<char> = None;
    let mut depth = 0usize;
    for c in msg.chars() {
        if let Some(cl) = close {
            if c == cl {
                depth -= 1;
                if depth == 0 {
                    close = None;
                }
            } else if (cl == ']' && c == '[') || (cl == ')' && c == '(') {
                depth += 1;
            }
            continue;
        }
        match c {
            '`' | '"' | '[' | '(' | '{' => {
                close = Some(match c { '[' => ']', '(' => ')', '{' => '}', q => q });
                depth = 1;
                out.push('_');
            }
            c if c.is_ascii_digit() => {
                if !last_digit {
                    out.push('#');
                }
                last_digit = true;
                continue;
            }
            c => out.push(c),
        }
        last_digit = false;
        // The check that fired is named early; the rest is mostly values.
        if out.len() > 64 {
            break;
        }
    }
    out
}

/// Everything the CLI does with an opened checkpoint, short of the analysis.
fn exercise(c: &Checkpoint) -> String {
    let mut outcome = String::from("ok");
    for name in c.tensors.names() {
        let _ = c.tensors.shape(&name);
        if let Err(e) = c.tensors.get(&name) {
            outcome = format!("ok-open {}", shape(e));
        }
    }
    if let Some(t) = &c.tokenizer {
        outcome.push_str(&tokenize(t));
    }
    match ArchSpec::from_hf_config(&c.config) {
        Err(e) => outcome.push_str(&format!(" spec {}", shape(e))),
        Ok(spec) => {
            // Only small models are built: the fuzzer is after parser bugs,
            // not after allocating a declared 10^12-parameter model.
            if spec.d_model.saturating_mul(spec.vocab_size.max(spec.d_ff)) > 1 << 22 {
                return outcome + " big";
            }
            match Model::load(c) {
                Err(e) => outcome.push_str(&format!(" load {}", shape(e))),
                Ok(m) => {
                    let v = m.spec.vocab_size.max(1) as u32;
                    let ids = [0, 1 % v, v - 1];
                    match m.forward(&ids, Logits::Last, None) {
                        Err(e) => outcome.push_str(&format!(" fwd {}", shape(e))),
                        Ok(_) => outcome.push_str(" fwd-ok"),
                    }
                }
            }
        }
    }
    outcome
}

fn tokenize(t: &TextTokenizer) -> String {
    let mut n = 0;
    for text in TEXTS {
        if let Ok(ids) = t.encode(text) {
            n += ids.len();
            let _ = t.decode(&ids);
        }
    }
    let v = t.vocab_size() as u32;
    let _ = t.decode(&[0, v.saturating_sub(1), v, v.saturating_add(7), u32::MAX]);
    format!(" tok{}", n.min(1))
}

fn open(path: &Path, tok: Option<&Path>) -> String {
    match Checkpoint::open(&path.to_string_lossy(), tok) {
        Err(e) => shape(e),
        Ok(c) => exercise(&c),
    }
}

/// A GGUF file (header, metadata, tensor table, tensor data, embedded
/// SentencePiece / byte-level BPE tokenizer).
pub fn gguf(data: &[u8]) -> String {
    let p = put("m.gguf", data);
    open(&p, None)
}

/// `model.safetensors` of an HF directory (its config.json is fixed: the
/// tiny llama of [`TINY_CONFIG`]).
pub fn safetensors(data: &[u8]) -> String {
    put("hf/model.safetensors", data);
    open(&work().join("hf"), None)
}

/// A llama2.c `.bin` checkpoint (no tokenizer beside it).
pub fn llama2c(data: &[u8]) -> String {
    let p = put("m.bin", data);
    open(&p, None)
}

/// `config.json` of an HF directory (its safetensors are fixed: the tiny
/// llama of [`tiny_safetensors`]): read and checked as the CLI reads it,
/// then `ArchSpec::from_hf_config` and the whole load + forward path.
/// (`ArchSpec::from_hf_config` called directly on unchecked JSON sizes a
/// per-layer table from `num_hidden_layers`; the loaders bound it first.)
pub fn config(data: &[u8]) -> String {
    if serde_json::from_slice::<serde_json::Value>(data).is_err() {
        return "err:json".into();
    }
    put("cfg/config.json", data);
    open(&work().join("cfg"), None)
}

/// Tokenizer files; the first byte picks the kind: 0 a `tokenizer.json`,
/// 1 a llama2.c `tokenizer.bin`, 2 a `tokenizer_config.json` beside a fixed
/// tokenizer.json (it names BOS/EOS and the tokenizer class).
pub fn tokenizer(data: &[u8]) -> String {
    let Some((&kind, rest)) = data.split_first() else { return "empty".into() };
    let path = match kind % 3 {
        0 => put("tok/tokenizer.json", rest),
        1 => put("tok/tok.bin", rest),
        _ => {
            put("tokcfg/tokenizer_config.json", rest);
            work().join("tokcfg/tokenizer.json")
        }
    };
    match TextTokenizer::from_path(&path) {
        Err(e) => format!("{}:{}", kind % 3, shape(e)),
        Ok(t) => format!("{}:ok{}", kind % 3, tokenize(&t)),
    }
}

/// Runs target `name` on `data` (for the loop harness and reproducers).
pub fn run_target(name: &str, data: &[u8]) -> Option<String> {
    Some(match name {
        "gguf" => gguf(data),
        "safetensors" => safetensors(data),
        "llama2c" => llama2c(data),
        "config" => config(data),
        "tokenizer" => tokenizer(data),
        _ => return None,
    })
}

pub const TARGETS: &[&str] = &["gguf", "safetensors", "llama2c", "config", "tokenizer"];

/// config.json of the tiny llama used as the fixed half of the
/// safetensors and config targets: D 8, 2 heads × 4 (1 KV head), 1 layer,
/// MLP 16, vocabulary 16.
pub const TINY_CONFIG: &str = r#"{"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 16, "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false, "hidden_act": "silu"}"#;

/// The tiny tokenizer.json fixture of the repository (byte-level BPE, 384).
pub const TINY_TOKENIZER_JSON: &str = include_str!("../../crates/models/tests/fixtures/tiny/llama/tokenizer.json");

/// safetensors of the [`TINY_CONFIG`] model: F32 matrices, norm weights in
/// F16 / BF16 (1.0) so every supported dtype is read.
pub fn tiny_safetensors() -> Vec<u8> {
    let (d, kv, ff, v) = (8usize, 4usize, 16usize, 16usize);
    let mut tensors: Vec<(String, &str, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), "F32", vec![v, d]),
        ("model.norm.weight".into(), "F16", vec![d]),
        ("lm_head.weight".into(), "F32", vec![v, d]),
    ];
    let l = |s: &str| format!("model.layers.0.{s}");
    tensors.extend([
        (l("input_layernorm.weight"), "BF16", vec![d]),
        (l("self_attn.q_proj.weight"), "F32", vec![d, d]),
        (l("self_attn.k_proj.weight"), "F32", vec![kv, d]),
        (l("self_attn.v_proj.weight"), "F32", vec![kv, d]),
        (l("self_attn.o_proj.weight"), "F32", vec![d, d]),
        (l("post_attention_layernorm.weight"), "F32", vec![d]),
        (l("mlp.gate_proj.weight"), "F32", vec![ff, d]),
        (l("mlp.up_proj.weight"), "F32", vec![ff, d]),
        (l("mlp.down_proj.weight"), "F32", vec![d, ff]),
    ]);
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape) in &tensors {
        let n: usize = shape.iter().product();
        let start = data.len();
        for i in 0..n {
            match *dtype {
                "F16" => data.extend(0x3C00u16.to_le_bytes()),
                "BF16" => data.extend(0x3F80u16.to_le_bytes()),
                _ => data.extend((((i * 7919) % 97) as f32 * 0.01 - 0.48).to_le_bytes()),
            }
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let h = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}
