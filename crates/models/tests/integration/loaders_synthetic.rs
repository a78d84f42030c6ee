//! Synthetic GGUF files for the paths real files here do not cover: qwen2
//! names and biases (no un-permute), K un-permuted by KV heads, and
//! Q8_0 / Q4_0 / F16 data dequantized to exact expected values.

use crate::loaders_util as util;

use models::Checkpoint;
use util::*;

#[test]
fn synthetic_llama_gguf_opens_and_unpermutes_k_by_kv_heads() {
    let dir = tmpdir("ok");
    let p = write(&dir, "tiny.gguf", &tiny_model("llama", vec![], vec![]));
    let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
    assert_eq!(c.config["num_key_value_heads"], 1);
    assert_eq!(c.config["tie_word_embeddings"], true);
    assert_eq!(c.config["head_dim"], 4);
    assert!(c.tokenizer.is_none());
    // k_proj: (kv_dim 4, in 8); one KV head → rows [0,2,1,3] of the raw (4, 8).
    let k = c.tensors.get("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.dims(), &[4, 8]);
    let row1 = k.get(1).unwrap().to_vec1::<f32>().unwrap();
    assert!((row1[0] - 2.0 * 8.0 * 0.001).abs() < 1e-7, "{row1:?}");
    // q_proj: 2 heads of 4 rows: row 1 ← raw row 2, row 5 ← raw row 6.
    let q = c.tensors.get("model.layers.0.self_attn.q_proj.weight").unwrap();
    let row5 = q.get(5).unwrap().to_vec1::<f32>().unwrap();
    assert!((row5[0] - 6.0 * 8.0 * 0.001).abs() < 1e-7, "{row5:?}");
}

#[test]
fn synthetic_qwen2_gguf_keeps_rows_and_maps_biases() {
    let dir = tmpdir("qwen2");
    let bias = f32_tensor("blk.0.attn_q.bias", &[D], |i| i as f32);
    let p = write(&dir, "q.gguf", &tiny_model("qwen2", vec![("qwen2.rope.freq_base", Kv::F32(1e6))], vec![bias]));
    let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
    assert_eq!(c.config["model_type"], "qwen2");
    assert_eq!(c.config["rope_theta"].as_f64(), Some(1e6));
    let b = c.tensors.get("model.layers.0.self_attn.q_proj.bias").unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(b, (0..8).map(|i| i as f32).collect::<Vec<_>>(), "qwen2 is not un-permuted");
}

fn f16_bits(x: f32) -> [u8; 2] {
    // Exact for the small powers of two used here.
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let h = (((bits >> 16) & 0x8000) | ((exp as u32) << 10) | ((bits >> 13) & 0x3ff)) as u16;
    h.to_le_bytes()
}

#[test]
fn quantized_and_f16_tensors_dequantize() {
    let dir = tmpdir("quant");
    // ffn_up: ne [32, 4] = 128 values = 4 Q8_0 blocks (one per row), q = i-64 (as i8), scale 0.5.
    let mut q8 = Vec::new();
    for blk in 0..4 {
        q8.extend(f16_bits(0.5));
        q8.extend((0..32).map(|j| (blk * 32 + j - 64i32) as i8 as u8));
    }
    // ffn_gate: ne [32, 4] as 4 Q4_0 blocks, scale 0.25, nibbles: byte j = (j & 15) | ((15 - j) << 4).
    let mut q4 = Vec::new();
    for _ in 0..4 {
        q4.extend(f16_bits(0.25));
        q4.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    }
    let norm16: Vec<u8> = (0..8).flat_map(|i| f16_bits(if i == 0 { 1.0 } else { 0.5 })).collect();
    let ts = vec![
        T { name: "blk.0.ffn_up.weight".into(), ne: vec![32, 4], ty: 8, data: q8 },
        T { name: "blk.0.ffn_gate.weight".into(), ne: vec![32, 4], ty: 2, data: q4 },
        T { name: "output_norm.weight".into(), ne: vec![8], ty: 1, data: norm16 },
    ];
    let p = write(&dir, "quant.gguf", &tiny_model("llama", vec![], ts));
    let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
    let e = c.tensors.get("model.layers.0.mlp.up_proj.weight").unwrap();
    assert_eq!(e.dims(), &[4, 32]);
    let e = e.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, v) in e.iter().enumerate() {
        assert_eq!(*v, 0.5 * (i as f32 - 64.0), "Q8_0 value {i}");
    }
    let g = c.tensors.get("model.layers.0.mlp.gate_proj.weight").unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Q4_0 block: values 0..16 are low nibbles, 16..32 high nibbles, minus 8.
    for j in 0..16 {
        assert_eq!(g[j], 0.25 * (j as f32 - 8.0));
        assert_eq!(g[16 + j], 0.25 * ((15 - j) as f32 - 8.0));
    }
    let n = c.tensors.get("model.norm.weight").unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(n[0], 1.0);
    assert_eq!(n[7], 0.5);
    // Rows that are not whole blocks are rejected with the tensor's name.
    let t = T { name: "blk.0.ffn_up.weight".into(), ne: vec![8, 16], ty: 8, data: vec![0; 136] };
    let m = expect_err(&write(&dir, "rows.gguf", &tiny_model("llama", vec![], vec![t])), None).to_string();
    assert!(m.contains("blk.0.ffn_up.weight") && m.contains("block size"), "{m}");
}

#[test]
fn gguf_spm_tokenizer_flags_bos_eos_and_space_prefix() {
    let dir = tmpdir("spmflags");
    let mut toks: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    toks.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    toks.extend(["\u{2581}", "h", "i", "hi", "\u{2581}hi"].iter().map(|s| s.to_string()));
    let n = toks.len();
    let hi = (n - 2) as u32; // "hi"
    let space_hi = (n - 1) as u32; // "▁hi"
    let make = |add_eos: bool, space_prefix: bool| {
        let extra = vec![
            ("tokenizer.ggml.model", Kv::Str("llama")),
            ("tokenizer.ggml.tokens", Kv::Strs(toks.clone())),
            ("tokenizer.ggml.scores", Kv::F32s((0..n).map(|i| i as f32).collect())),
            // unknown, control ×2, byte ×256, normal
            (
                "tokenizer.ggml.token_type",
                Kv::I32s(
                    (0..n)
                        .map(|i| match i {
                            0 => 2,
                            1 | 2 => 3,
                            3..=258 => 6,
                            _ => 1,
                        })
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
            ("tokenizer.ggml.eos_token_id", Kv::U32(2)),
            ("tokenizer.ggml.add_eos_token", Kv::Bool(add_eos)),
            ("tokenizer.ggml.add_space_prefix", Kv::Bool(space_prefix)),
        ];
        tiny_model("llama", extra, vec![])
    };
    let open = |name: &str, bytes: Vec<u8>| {
        let p = write(&dir, name, &bytes);
        Checkpoint::open(p.to_str().unwrap(), None).unwrap().tokenizer.unwrap()
    };
    // add_bos_token absent: SentencePiece vocabularies add BOS.
    let t = open("a.gguf", make(true, true));
    assert!(t.adds_bos());
    assert_eq!(t.encode("hi").unwrap(), vec![1, space_hi, 2]);
    let t = open("b.gguf", make(false, false));
    assert_eq!(t.encode("hi").unwrap(), vec![1, hi]);
    assert_eq!(t.decode(&[1, hi]).unwrap(), "hi");
}

#[test]
fn gguf_v2_and_custom_alignment_open() {
    let dir = tmpdir("align");
    let reference = Checkpoint::open(write(&dir, "ref.gguf", &tiny_model("llama", vec![], vec![])).to_str().unwrap(), None).unwrap();
    let want = reference.tensors.get("model.layers.0.mlp.up_proj.weight").unwrap();
    let mut v2 = tiny_model("llama", vec![], vec![]);
    v2[4] = 2;
    let aligned = tiny_model("llama", vec![("general.alignment", Kv::U32(128))], vec![]);
    for (name, bytes) in [("v2.gguf", v2), ("a128.gguf", aligned)] {
        let c = Checkpoint::open(write(&dir, name, &bytes).to_str().unwrap(), None).unwrap();
        let got = c.tensors.get("model.layers.0.mlp.up_proj.weight").unwrap();
        let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
    // A non-power-of-two alignment is rejected.
    let bad = tiny_model("llama", vec![("general.alignment", Kv::U32(48))], vec![]);
    let e = Checkpoint::open(write(&dir, "a48.gguf", &bad).to_str().unwrap(), None).err().unwrap();
    assert!(e.to_string().contains("alignment"), "{e}");
}

/// Q8_0 rows (32 values each): row r holds q = j − 16 + r (as i8), scale 0.5,
/// except `inf_row`, whose scale is +∞.
fn q8_rows(rows: usize, inf_row: Option<usize>) -> Vec<u8> {
    let mut q8 = Vec::new();
    for r in 0..rows {
        q8.extend(if inf_row == Some(r) { [0x00, 0x7c] } else { f16_bits(0.5) }); // f16 +∞ = 0x7c00
        q8.extend((0..32).map(|j| (j - 16 + r as i32) as i8 as u8));
    }
    q8
}

#[test]
fn quantized_q_rows_are_unpermuted_as_they_dequantize() {
    // Q8_0 goes through the kernel that writes each row into its HF place:
    // 2 heads of d_head 4 (dim 2): HF row h·4 + p·2 + j is stored row h·4 + 2j + p.
    let dir = tmpdir("quant-unpermute");
    let ts = vec![T { name: "blk.0.attn_q.weight".into(), ne: vec![32, 8], ty: 8, data: q8_rows(8, None) }];
    let p = write(&dir, "q.gguf", &tiny_model("llama", vec![], ts));
    let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
    let q = c.tensors.get("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.dims(), &[8, 32]);
    let q = q.to_vec2::<f32>().unwrap();
    for (i, stored) in [0, 2, 1, 3, 4, 6, 5, 7].into_iter().enumerate() {
        let want: Vec<f32> = (0..32).map(|j| 0.5 * (j - 16 + stored) as f32).collect();
        assert_eq!(q[i], want, "HF row {i} = stored row {stored}");
    }
}

#[test]
fn quantized_non_finite_values_are_reported_on_get() {
    // The Q8_0 kernel checks finiteness as it writes (the store does not
    // check again): an infinite scale in the last row, in a permuted
    // projection and in a plain one.
    for (gguf_name, hf_name) in
        [("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"), ("blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight")]
    {
        let dir = tmpdir("quant-inf");
        let ts = vec![T { name: gguf_name.into(), ne: vec![32, 8], ty: 8, data: q8_rows(8, Some(7)) }];
        let p = write(&dir, "inf.gguf", &tiny_model("llama", vec![], ts));
        let c = Checkpoint::open(p.to_str().unwrap(), None).unwrap();
        let e = c.tensors.get(hf_name).unwrap_err();
        assert!(matches!(e, models::Error::NonFinite { .. }), "{gguf_name}: {e}");
        assert!(e.to_string().contains("inf.gguf"), "{e}");
    }
}
