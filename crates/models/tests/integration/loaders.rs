//! Loaders on real files: llama2.c `.bin` and GGUF of stories260K (same
//! weights, so the two loaders must agree element-wise), SmolLM2 Q4_1 GGUF,
//! and the tiny HF directories of every family. A model that is absent
//! fails its test with the path and how to get it (`testdata`).

use crate::common;

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use models::{Checkpoint, Format};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn cfg_u64(c: &Checkpoint, key: &str) -> u64 {
    c.config[key].as_u64().unwrap_or_else(|| panic!("config has no integer `{key}`: {}", c.config))
}

#[test]
fn stories260k_bin_opens_with_hf_config_and_names() {
    let dir = common::stories_dir();
    let c = Checkpoint::open(dir.join("stories260K.bin").to_str().unwrap(), None).unwrap();
    assert_eq!(c.format, Format::Llama2c);
    assert_eq!(c.config["model_type"], "llama");
    for (k, v) in [
        ("hidden_size", 64),
        ("intermediate_size", 172),
        ("num_hidden_layers", 5),
        ("num_attention_heads", 8),
        ("num_key_value_heads", 4),
        ("vocab_size", 512),
        ("max_position_embeddings", 512),
        ("head_dim", 8),
    ] {
        assert_eq!(cfg_u64(&c, k), v, "{k}");
    }
    assert_eq!(c.config["tie_word_embeddings"], true);
    assert_eq!(c.tensors.shape("model.layers.4.self_attn.k_proj.weight"), Some(vec![32, 64]));
    assert_eq!(c.tensors.shape("model.layers.0.mlp.gate_proj.weight"), Some(vec![172, 64]));
    assert_eq!(c.tensors.shape("model.layers.0.mlp.down_proj.weight"), Some(vec![64, 172]));
    assert!(!c.tensors.contains("lm_head.weight"));
    assert_eq!(c.tensors.names().len(), 2 + 5 * 9);
    let tok = c.tokenizer.as_ref().expect("tok512.bin found next to the model");
    assert_eq!(tok.vocab_size(), 512);
    assert!(tok.adds_bos());
    assert_eq!(tok.bos_id(), Some(1));
}

#[test]
fn stories260k_bin_and_gguf_tensors_agree() {
    let dir = common::stories_dir();
    let bin = Checkpoint::open(dir.join("stories260K.bin").to_str().unwrap(), None).unwrap();
    let gguf = Checkpoint::open(dir.join("stories260K.gguf").to_str().unwrap(), None).unwrap();
    assert_eq!(gguf.format, Format::Gguf);
    for name in bin.tensors.names() {
        let a = bin.tensors.get(&name).unwrap();
        let b = gguf.tensors.get(&name).unwrap();
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{name}");
    }
    // The GGUF stores the shared classifier as its own `output.weight`.
    let emb = bin.tensors.get("model.embed_tokens.weight").unwrap();
    let head = gguf.tensors.get("lm_head.weight").unwrap();
    assert_eq!(max_abs_diff(&emb, &head), 0.0);
    for k in
        ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size", "head_dim"]
    {
        assert_eq!(bin.config[k], gguf.config[k], "{k}");
    }
    assert_eq!(gguf.config["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(gguf.config["rope_theta"].as_f64(), Some(10000.0));
}

#[test]
fn stories260k_unpermute_is_not_identity() {
    // The raw GGUF rows (interleaved rotary pairs) differ from the HF rows we expose.
    let dir = common::stories_dir();
    let path = dir.join("stories260K.gguf");
    let f = models::formats::gguf::GgufFile::open(&path).unwrap();
    let raw = f.load_f32(&f.tensors["blk.0.attn_q.weight"]).unwrap();
    let c = Checkpoint::open(path.to_str().unwrap(), None).unwrap();
    let hf = c.tensors.get("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert!(max_abs_diff(&raw, &hf) > 0.0);
    // Row 1 of HF head 0 is raw row 2 (pairs (0,1),(2,3),… → halves).
    let hf_row = hf.get(1).unwrap();
    let raw_row = raw.get(2).unwrap();
    assert_eq!(max_abs_diff(&hf_row, &raw_row), 0.0);
}

#[test]
fn smollm2_gguf_config_and_tensors() {
    let path = common::smollm2_path();
    let c = Checkpoint::open(path.to_str().unwrap(), None).unwrap();
    assert_eq!(c.format, Format::Gguf);
    assert_eq!(c.config["model_type"], "llama");
    for (k, v) in [
        ("hidden_size", 576),
        ("intermediate_size", 1536),
        ("num_hidden_layers", 30),
        ("num_attention_heads", 9),
        ("num_key_value_heads", 3),
        ("head_dim", 64),
        ("vocab_size", 49152),
        ("max_position_embeddings", 8192),
    ] {
        assert_eq!(cfg_u64(&c, k), v, "{k}");
    }
    assert_eq!(c.config["rope_theta"].as_f64(), Some(100000.0));
    assert_eq!(c.config["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(c.config["tie_word_embeddings"], true);
    assert!(!c.tensors.contains("lm_head.weight"));
    assert_eq!(c.tensors.names().len(), 2 + 30 * 9);
    assert_eq!(c.tensors.shape("model.embed_tokens.weight"), Some(vec![49152, 576]));
    assert_eq!(c.tensors.shape("model.layers.0.self_attn.k_proj.weight"), Some(vec![192, 576]));
    assert_eq!(c.tensors.shape("model.layers.29.mlp.down_proj.weight"), Some(vec![576, 1536]));
    for name in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.input_layernorm.weight"] {
        let t = c.tensors.get(name).unwrap();
        assert_eq!(t.dims().to_vec(), c.tensors.shape(name).unwrap());
    }
    let tok = c.tokenizer.as_ref().unwrap();
    assert!(!tok.adds_bos());
    assert_eq!(tok.encode("The").unwrap(), vec![504]);
}

#[test]
fn tiny_hf_dirs_open_with_tokenizer_matching_transformers() {
    let tiny = fixtures().join("tiny");
    let mut n = 0;
    for entry in std::fs::read_dir(&tiny).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("config.json").is_file() {
            continue;
        }
        n += 1;
        let c = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
        assert_eq!(c.format, Format::HfDir);
        let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
        assert_eq!(c.config["model_type"], reference["model_type"], "{}", dir.display());
        let tok = c.tokenizer.as_ref().unwrap();
        let text = reference["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(reference["token_ids"].clone()).unwrap();
        assert_eq!(tok.encode(text).unwrap(), want, "{}", dir.display());
        assert_eq!(tok.adds_bos(), reference["add_bos"].as_bool().unwrap(), "{}", dir.display());
        for name in c.tensors.names() {
            let t = c.tensors.get(&name).unwrap();
            assert_eq!(t.dims().to_vec(), c.tensors.shape(&name).unwrap(), "{name}");
        }
    }
    assert!(n >= 9, "expected the tiny family fixtures, found {n}");
}

#[test]
fn hf_dir_tokenizer_override_is_used() {
    let tiny = fixtures().join("tiny");
    let dir = tiny.join("gpt2");
    let c = Checkpoint::open(dir.to_str().unwrap(), Some(&tiny.join("llama/tokenizer.json"))).unwrap();
    let ids = c.tokenizer.unwrap().encode("Before").unwrap();
    assert_eq!(ids[0], 1, "llama's tokenizer (with its BOS) was used");
}

#[test]
fn sharded_hf_dir_equals_single_file() {
    use safetensors::{tensor::TensorView, SafeTensors};
    let src = fixtures().join("tiny/llama");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let dir = std::env::temp_dir().join(format!("attnscope-sharded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for shard in 0..2 {
        let file = format!("model-0000{}-of-00002.safetensors", shard + 1);
        let views: Vec<(String, TensorView)> =
            names.iter().enumerate().filter(|(i, _)| i % 2 == shard).map(|(_, n)| (n.clone(), st.tensor(n).unwrap())).collect();
        for (n, _) in &views {
            weight_map.insert(n.clone(), serde_json::json!(file));
        }
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let one = Checkpoint::open(src.to_str().unwrap(), None).unwrap();
    let two = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
    assert_eq!(one.tensors.names(), two.tensors.names());
    assert!(two.tensors.describe().contains("2 safetensors shards"));
    for n in one.tensors.names() {
        let a = one.tensors.get(&n).unwrap();
        let b = two.tensors.get(&n).unwrap();
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{n}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hf_dir_f16_and_bf16_become_f32() {
    let dir = std::env::temp_dir().join(format!("attnscope-halves-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"model_type": "llama"}"#).unwrap();
    // 1.5 and -2.0: bf16 0x3FC0 / 0xC000, f16 0x3E00 / 0xC000.
    let header = r#"{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[1,2],"data_offsets":[4,8]},"c":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend([0xC0, 0x3F, 0x00, 0xC0, 0x00, 0x3E, 0x00, 0xC0, 1, 0, 0, 0]);
    std::fs::write(dir.join("model.safetensors"), b).unwrap();
    let c = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
    assert!(c.tokenizer.is_none());
    assert_eq!(c.tensors.get("a").unwrap().to_vec1::<f32>().unwrap(), vec![1.5, -2.0]);
    assert_eq!(c.tensors.get("b").unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1.5, -2.0]);
    let e = c.tensors.get("c").unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("I32"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_json_path_opens_its_directory() {
    let dir = fixtures().join("tiny/qwen2");
    let c = Checkpoint::open(dir.join("config.json").to_str().unwrap(), None).unwrap();
    assert_eq!(c.format, Format::HfDir);
    assert_eq!(c.path, dir);
    let c = Checkpoint::open(dir.join("model.safetensors").to_str().unwrap(), None).unwrap();
    assert_eq!(c.format, Format::HfDir);
}
