//! Tokenizers against their references: stories260K (llama2.c tok512.bin
//! and the GGUF's SentencePiece vocabulary through llama.cpp's algorithm must
//! both give run.c's ids), SmolLM2 GGUF byte-level BPE (the real SmolLM2
//! tokenizer's ids, from the reference fixtures and from transformers).

use crate::common;

use std::path::{Path, PathBuf};

use models::{Checkpoint, TextTokenizer};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `[{text, ids}]` from a fixture file.
fn cases(path: &Path) -> Vec<(String, Vec<u32>)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| (c["text"].as_str().unwrap().to_string(), serde_json::from_value(c["ids"].clone()).unwrap()))
        .collect()
}

fn check(tok: &TextTokenizer, cases: &[(String, Vec<u32>)], what: &str) {
    for (text, want) in cases {
        assert_eq!(&tok.encode(text).unwrap(), want, "{what}: {text:?}");
    }
}

#[test]
fn stories260k_llama2c_tokenizer_matches_run_c() {
    let dir = common::stories_dir();
    let tok = TextTokenizer::from_llama2c(&dir.join("tok512.bin")).unwrap();
    assert_eq!(tok.vocab_size(), 512);
    check(&tok, &cases(&fixtures().join("stories260K/tokenization.json")), "tok512.bin");
    assert_eq!(tok.encode("").unwrap(), vec![1]);
}

#[test]
fn stories260k_gguf_tokenizer_equals_llama2c_tokenizer() {
    let dir = common::stories_dir();
    let c = Checkpoint::open(dir.join("stories260K.gguf").to_str().unwrap(), None).unwrap();
    let tok = c.tokenizer.expect("GGUF has a tokenizer");
    assert!(tok.adds_bos());
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    let fixture = cases(&fixtures().join("stories260K/tokenization.json"));
    check(&tok, &fixture, "stories260K.gguf");
    let bin = TextTokenizer::from_llama2c(&dir.join("tok512.bin")).unwrap();
    for text in ["Lily and Tom went to the park. They saw a big dog!", "naïve café 🙂", "a\tb\n\nc  d ", "x"] {
        assert_eq!(tok.encode(text).unwrap(), bin.encode(text).unwrap(), "{text:?}");
    }
}

#[test]
fn stories260k_decode_round_trips() {
    let dir = common::stories_dir();
    let bin = TextTokenizer::from_llama2c(&dir.join("tok512.bin")).unwrap();
    let c = Checkpoint::open(dir.join("stories260K.gguf").to_str().unwrap(), None).unwrap();
    let gguf = c.tokenizer.unwrap();
    for text in ["Once upon a time, Lily saw a cat.", "naïve café 🙂", "two  spaces"] {
        assert_eq!(bin.decode(&bin.encode(text).unwrap()).unwrap(), text);
        assert_eq!(gguf.decode(&gguf.encode(text).unwrap()).unwrap(), text);
    }
}

#[test]
fn smollm2_gguf_tokenizer_matches_real_smollm2_tokenizer() {
    let path = common::smollm2_path();
    let c = Checkpoint::open(path.to_str().unwrap(), None).unwrap();
    let tok = c.tokenizer.unwrap();
    assert!(!tok.adds_bos());
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.vocab_size(), 49152);
    check(&tok, &cases(&fixtures().join("smollm2/tokenization.json")), "SmolLM2 fixture");
    // Generated with transformers 5.24 AutoTokenizer(gguf_file=...) on this
    // file (none of these hits its whitespace-before-digit difference).
    let tf: &[(&str, &[u32])] = &[
        ("The", &[504]),
        ("Hello world", &[19556, 905]),
        ("The quick brown fox jumps over the lazy dog.", &[504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30]),
        (
            "In 2024, 12345 people paid $3.50 each.",
            &[788, 216, 34, 32, 34, 36, 28, 216, 33, 34, 35, 36, 37, 701, 5940, 1885, 35, 30, 37, 32, 971, 30],
        ),
        ("  leading spaces", &[216, 2899, 5600]),
        ("trailing space ", &[4861, 4966, 1898, 216]),
        ("multiple   spaces\tand\ttabs\nnewline\n\nparagraph", &[30404, 256, 5600, 197, 397, 197, 100, 7366, 198, 28160, 198, 198, 41099]),
        (
            "Unicode: café naïve 日本語 🙂 emoji",
            &[3706, 15817, 42, 37366, 15486, 46494, 17097, 241, 115, 40993, 179, 120, 248, 47526, 649, 33777],
        ),
        ("<|im_start|>user\nHi<|im_end|>", &[1, 4093, 198, 26843, 2]),
        ("don't won't it's I'm we'll", &[12420, 982, 3763, 982, 357, 506, 339, 5248, 392, 3060]),
        ("a", &[81]),
        ("", &[]),
        ("x=1+2; y = [3,4]", &[104, 45, 33, 27, 34, 43, 329, 446, 933, 35, 28, 36, 77]),
        ("Once upon a time, there was a little girl named Lily.", &[6403, 1980, 253, 655, 28, 665, 436, 253, 1838, 8180, 3365, 14176, 30]),
    ];
    for (text, want) in tf {
        assert_eq!(&tok.encode(text).unwrap(), want, "{text:?}");
    }
    for text in ["Hello world", "naïve café 🙂", "In 2024, 12345 people"] {
        assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
    }
}

#[test]
fn tokenizer_from_path_dispatches_on_kind() {
    let tiny = fixtures().join("tiny/llama/tokenizer.json");
    let t = TextTokenizer::from_path(&tiny).unwrap();
    assert!(t.adds_bos());
    assert_eq!(t.encode("Before").unwrap()[0], 1);
    let dir = common::stories_dir();
    let g = TextTokenizer::from_path(&dir.join("stories260K.gguf")).unwrap();
    let b = TextTokenizer::from_path(&dir.join("tok512.bin")).unwrap();
    assert_eq!(g.encode("Once upon a time").unwrap(), b.encode("Once upon a time").unwrap());
}
