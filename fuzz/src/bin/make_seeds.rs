//! Writes the seed corpora in fuzz/seeds/<target>/ (committed; rerun to
//! regenerate): `cargo run --release --manifest-path fuzz/Cargo.toml --bin make_seeds`.
//! Synthetic, small files built with the loader tests' GGUF / llama2.c
//! writers, plus the repository's tiny fixtures.

#[allow(dead_code, unused_imports)]
#[path = "../../../crates/models/tests/loaders_util.rs"]
mod util;

use std::path::{Path, PathBuf};

use util::{f32_tensor, gguf, tiny_llama2c, tiny_model, Kv, T};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn seed(target: &str, name: &str, bytes: &[u8]) {
    let d = root().join("seeds").join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

fn prefixed(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(bytes);
    v
}

/// GGUF metadata of a SentencePiece (`llama`) or byte-level BPE (`gpt2`) tokenizer.
fn tokenizer_kvs(spm: bool) -> Vec<(&'static str, Kv)> {
    let toks: Vec<String> = if spm {
        let mut v: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        v.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        v.extend(["\u{2581}", "H", "e", "l", "o", "He", "ll", "\u{2581}w", "\u{2581}H"].iter().map(|s| s.to_string()));
        v
    } else {
        ["<|endoftext|>", "H", "e", "l", "o", "He", "ll", "Hell", "Ġ", "w", "1", "2"].iter().map(|s| s.to_string()).collect()
    };
    let n = toks.len();
    let mut extra = vec![
        ("tokenizer.ggml.tokens", Kv::Strs(toks)),
        ("tokenizer.ggml.token_type", Kv::I32s((0..n).map(|i| if i < 3 { 3 } else if spm && i < 259 { 6 } else { 1 }).collect())),
        ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
        ("tokenizer.ggml.eos_token_id", Kv::U32(2)),
    ];
    if spm {
        extra.push(("tokenizer.ggml.model", Kv::Str("llama")));
        extra.push(("tokenizer.ggml.scores", Kv::F32s((0..n).map(|i| -(i as f32)).collect())));
        extra.push(("tokenizer.ggml.unknown_token_id", Kv::U32(0)));
    } else {
        extra.push(("tokenizer.ggml.model", Kv::Str("gpt2")));
        extra.push(("tokenizer.ggml.pre", Kv::Str("smollm")));
        extra.push(("tokenizer.ggml.add_bos_token", Kv::Bool(false)));
        extra.push(("tokenizer.ggml.merges", Kv::Strs(vec!["H e".into(), "l l".into(), "He ll".into()])));
    }
    extra
}

/// A GGUF llama (D 32, 2 heads × 16, 1 KV head, MLP 256, vocab 16) whose
/// tensors use every dequantized type: Q8_0, Q4_0, Q4_1, Q4_K, F16, BF16, F32.
fn quantized_gguf() -> Vec<u8> {
    let (d, ff, v) = (32u64, 256u64, 16u64);
    let a = |k: &str| -> &'static str { Box::leak(format!("llama.{k}").into_boxed_str()) };
    let kvs = vec![
        ("general.architecture", Kv::Str("llama")),
        (a("embedding_length"), Kv::U32(d as u32)),
        (a("feed_forward_length"), Kv::U32(ff as u32)),
        (a("block_count"), Kv::U32(1)),
        (a("attention.head_count"), Kv::U32(2)),
        (a("attention.head_count_kv"), Kv::U32(1)),
        (a("context_length"), Kv::U32(64)),
        (a("rope.freq_base"), Kv::F32(10000.0)),
    ];
    // Blocks with a small positive f16 scale (0x2C00 = 1/16) and varied quants.
    let blocks = |ne: [u64; 2], block: u64, bytes: usize, scales: usize| -> Vec<u8> {
        let n = (ne[0] * ne[1] / block) as usize;
        let mut out = Vec::new();
        for b in 0..n {
            let mut blk: Vec<u8> = (0..bytes).map(|i| ((i * 31 + b * 7) % 251) as u8).collect();
            for s in 0..scales {
                blk[2 * s..2 * s + 2].copy_from_slice(&0x2C00u16.to_le_bytes());
            }
            out.extend(blk);
        }
        out
    };
    let qt = |name: &str, ne: [u64; 2], ty: u32, block: u64, bytes: usize, scales: usize| T {
        name: name.into(),
        ne: ne.to_vec(),
        ty,
        data: blocks(ne, block, bytes, scales),
    };
    let half = |name: &str, ne: [u64; 2], ty: u32, one: u16| T {
        name: name.into(),
        ne: ne.to_vec(),
        ty,
        data: (0..ne[0] * ne[1]).flat_map(|_| one.to_le_bytes()).collect(),
    };
    let w = |i: usize| ((i % 13) as f32 - 6.0) * 0.01;
    let tensors = vec![
        f32_tensor("token_embd.weight", &[d, v], w),
        f32_tensor("output_norm.weight", &[d], |_| 1.0),
        f32_tensor("blk.0.attn_norm.weight", &[d], |_| 1.0),
        qt("blk.0.attn_q.weight", [d, d], 2, 32, 18, 1),
        half("blk.0.attn_k.weight", [d, 16], 1, 0x2000),
        half("blk.0.attn_v.weight", [d, 16], 30, 0x3C00),
        qt("blk.0.attn_output.weight", [d, d], 8, 32, 34, 1),
        f32_tensor("blk.0.ffn_norm.weight", &[d], |_| 1.0),
        qt("blk.0.ffn_gate.weight", [d, ff], 3, 32, 20, 2),
        qt("blk.0.ffn_up.weight", [d, ff], 8, 32, 34, 1),
        // Q4_K: 256 values / 144 bytes (d, dmin, 12 scale bytes, 128 quant bytes).
        qt("blk.0.ffn_down.weight", [ff, d], 12, 256, 144, 2),
    ];
    gguf(&kvs, &tensors)
}

/// A small llama2.c tokenizer: <unk>, <s>, </s>, 256 byte tokens, merges.
fn llama2c_tokenizer() -> Vec<u8> {
    let mut toks: Vec<(f32, Vec<u8>)> = vec![(0.0, b"<unk>".to_vec()), (0.0, b"\n<s>\n".to_vec()), (0.0, b"\n</s>\n".to_vec())];
    toks.extend((0..=255u8).map(|b| (0.0, format!("<0x{b:02X}>").into_bytes())));
    for (i, p) in [" ", "a", "b", "c", "ab", "bc", " a", "abc", "é"].iter().enumerate() {
        toks.push((-(i as f32) * 0.5, p.as_bytes().to_vec()));
    }
    let mut b = 8i32.to_le_bytes().to_vec();
    for (s, t) in toks {
        b.extend(s.to_le_bytes());
        b.extend((t.len() as i32).to_le_bytes());
        b.extend(t);
    }
    b
}

fn main() {
    let repo = root().join("..");
    let tiny = repo.join("crates/models/tests/fixtures/tiny");

    seed("gguf", "tiny-llama.gguf", &tiny_model("llama", vec![], vec![]));
    seed("gguf", "tiny-qwen2.gguf", &tiny_model("qwen2", vec![("general.alignment", Kv::U32(64))], vec![]));
    seed("gguf", "tiny-spm.gguf", &tiny_model("llama", tokenizer_kvs(true), vec![]));
    seed("gguf", "tiny-bpe.gguf", &tiny_model("llama", tokenizer_kvs(false), vec![]));
    seed("gguf", "quantized.gguf", &quantized_gguf());

    seed("safetensors", "tiny-llama.safetensors", &attnscope_fuzz::tiny_safetensors());

    seed("llama2c", "shared.bin", &tiny_llama2c(32, 8, true));
    seed("llama2c", "unshared-nofreq.bin", &tiny_llama2c(-32, 8, false));

    seed("config", "tiny.json", attnscope_fuzz::TINY_CONFIG.as_bytes());
    for fam in ["gemma2", "gpt2", "gpt_neox", "llama", "llama3_scaled", "mistral", "olmo2", "qwen2", "qwen3"] {
        seed("config", &format!("{fam}.json"), &std::fs::read(tiny.join(fam).join("config.json")).unwrap());
    }

    seed("tokenizer", "0-tiny.json", &prefixed(0, &std::fs::read(tiny.join("tokenizer.json")).unwrap()));
    seed("tokenizer", "0-llama.json", &prefixed(0, &std::fs::read(tiny.join("llama/tokenizer.json")).unwrap()));
    seed("tokenizer", "1-llama2c.bin", &prefixed(1, &llama2c_tokenizer()));
    for fam in ["llama", "gpt_neox", "qwen2"] {
        seed("tokenizer", &format!("2-{fam}-config.json"), &prefixed(2, &std::fs::read(tiny.join(fam).join("tokenizer_config.json")).unwrap()));
    }
    // Every seed opens as intended (a seed that errors seeds nothing).
    for t in attnscope_fuzz::TARGETS {
        let d = root().join("seeds").join(t);
        let mut names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            let out = attnscope_fuzz::run_target(t, &std::fs::read(&p).unwrap()).unwrap();
            println!("{t:12} {:28} {out}", p.file_name().unwrap().to_string_lossy());
        }
    }
}
