//! GGUF byte-level BPE pre-tokenizers other than SmolLM2's `smollm`:
//! SmolLM2's vocabulary and merges with `tokenizer.ggml.pre` set to `qwen2`
//! and `llama-bpe`, against transformers 5.24 loading a GGUF written with
//! the same metadata (gguf-py `GGUFWriter`, `AutoTokenizer(gguf_file=...)`).
//! Fails when SmolLM2 is absent (`testdata`: run scripts/setup.sh).

use crate::common;

use models::formats::gguf::{GgufFile, Value};
use models::tokenizer::gguf::from_gguf;

fn with_pre(pre: &str) -> models::TextTokenizer {
    let path = common::smollm2_path();
    let mut f = GgufFile::open(&path).unwrap();
    f.metadata.insert("tokenizer.ggml.pre".into(), Value::Str(pre.into()));
    from_gguf(&f).unwrap().unwrap()
}

fn check(pre: &str, cases: &[(&str, &[u32])]) {
    let tok = with_pre(pre);
    assert!(!tok.adds_bos());
    for (text, want) in cases {
        assert_eq!(&tok.encode(text).unwrap(), want, "pre={pre}: {text:?}");
    }
}

/// Ids transformers gives for these texts; qwen2 and llama-bpe agree on all of them.
const CASES: &[(&str, &[u32])] = &[
    (
        "In 2024, 12345 people paid $3.50 each.",
        &[788, 216, 34, 32, 34, 36, 28, 216, 33, 34, 35, 36, 37, 701, 5940, 1885, 35, 30, 37, 32, 971, 30],
    ),
    ("don't won't it's I'm we'll WE'LL", &[12420, 982, 3763, 982, 357, 506, 339, 5248, 392, 3060, 26587, 23, 16421]),
    ("  leading spaces and   runs\n\n\tx", &[216, 2899, 5600, 284, 256, 7313, 1116, 197, 104]),
    ("Version 3,  29 June", &[22348, 216, 35, 28, 216, 216, 34, 41, 4019]),
    ("total:\n\n2 items", &[9712, 42, 1116, 34, 3723]),
    ("café naïve 日本語 🙂", &[83, 1939, 2756, 15486, 46494, 17097, 241, 115, 40993, 179, 120, 248, 47526]),
    ("<|im_start|>user\nHi<|im_end|>", &[1, 4093, 198, 26843, 2]),
    ("a1b22c333d4444", &[81, 33, 82, 34, 34, 83, 35, 35, 35, 84, 36, 36, 36, 36]),
];

#[test]
fn qwen2_pre_tokenizer_matches_transformers() {
    check("qwen2", CASES);
}

#[test]
fn llama_bpe_pre_tokenizer_matches_transformers() {
    check("llama-bpe", CASES);
}
