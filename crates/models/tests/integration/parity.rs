//! Parity with HF transformers: token ids, Q, K (exactly as used in the
//! attention dot product) and final logits, for every family and format,
//! against the fixtures written by `tools/reference/make_fixtures.py`.
//!
//! Tolerance: max |ours − reference| ≤ 1e-4 · max |reference| per tensor
//! ("1e-4 relative, f32"), for Q, K and logits alike.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use models::{Checkpoint, LayerCapture, Logits, Model, Observer, ObserverError};
use serde_json::Value;

const REL_TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reference tensors of one fixture.
struct Reference {
    json: Value,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    ids: Vec<u32>,
}

fn load_reference(dir: &Path) -> Reference {
    let json: Value = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = BTreeMap::new();
    let mut ids = Vec::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        match view.dtype() {
            safetensors::Dtype::F32 => {
                let v = data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                tensors.insert(name.clone(), (view.shape().to_vec(), v));
            }
            safetensors::Dtype::I64 if name == "token_ids" => {
                ids = data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32).collect();
            }
            _ => {}
        }
    }
    Reference { json, tensors, ids }
}

/// max |a − b| / max |b|.
fn rel_err(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "length mismatch");
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    let diff = ours.iter().zip(reference).fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
    diff / scale
}

/// Captures Q and K of the listed layers.
struct Capture {
    layers: Vec<usize>,
    q: BTreeMap<usize, Tensor>,
    k: BTreeMap<usize, Tensor>,
}

impl Observer for Capture {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> Result<(), ObserverError> {
        if self.layers.contains(&cap.layer) {
            self.q.insert(cap.layer, cap.q.clone());
            self.k.insert(cap.layer, cap.k.clone());
        }
        Ok(())
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Checks ids, per-layer Q/K and logits of `checkpoint` against a fixture.
fn check_against(label: &str, checkpoint: &Checkpoint, fixture: &Path) -> Model {
    let r = load_reference(fixture);
    let text = r.json["text"].as_str().unwrap();
    let tok = checkpoint.tokenizer.as_ref().unwrap_or_else(|| panic!("{label}: no tokenizer"));
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids, r.ids, "{label}: token ids differ from transformers'");

    let model = Model::load(checkpoint).unwrap_or_else(|e| panic!("{label}: {e}"));
    let layers: Vec<usize> = r.json["captured_layers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let mut cap = Capture { layers: layers.clone(), q: BTreeMap::new(), k: BTreeMap::new() };
    let mut worst = 0f64;
    let logits = model.forward_logits(&ids, Logits::All, Some(&mut cap)).unwrap();
    for l in &layers {
        for (name, got) in [("q", &cap.q[l]), ("k", &cap.k[l])] {
            let (shape, want) = &r.tensors[&format!("{name}.{l}")];
            assert_eq!(got.dims(), shape.as_slice(), "{label}: {name}.{l} shape");
            let e = rel_err(&flat(got), want);
            assert!(e <= REL_TOL, "{label}: {name}.{l} relative error {e:.2e} > {REL_TOL:e}");
            worst = worst.max(e);
        }
        // Settings the field depends on.
        let lj = &r.json["layers"][*l];
        if let Some(s) = lj["scaling"].as_f64() {
            assert!((model.spec.attn_scale - s).abs() <= 1e-12 * s, "{label}: layer {l} scaling");
        }
        assert_eq!(model.spec.windows[*l], lj["sliding_window"].as_u64().map(|w| w as usize), "{label}: layer {l} window");
    }
    let logits_v = logits.to_vec2::<f32>().unwrap();
    if let Some((shape, want)) = r.tensors.get("logits") {
        assert_eq!(&[logits_v.len(), logits_v[0].len()], shape.as_slice());
        let e = rel_err(&logits_v.concat(), want);
        assert!(e <= REL_TOL, "{label}: logits relative error {e:.2e}");
        worst = worst.max(e);
    }
    if let Some((_, want)) = r.tensors.get("logits_rows") {
        let pos: Vec<usize> = r.json["logits_rows_positions"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let ours: Vec<f32> = pos.iter().flat_map(|&p| logits_v[p].clone()).collect();
        let e = rel_err(&ours, want);
        assert!(e <= REL_TOL, "{label}: logits rows relative error {e:.2e}");
        worst = worst.max(e);
    }
    eprintln!("{label}: ids, Q/K of layers {layers:?} and logits match transformers (worst relative error {worst:.1e})");
    model
}

#[test]
fn tiny_models_of_every_family_match_transformers() {
    let tiny = fixtures().join("tiny");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&tiny).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("config.json").exists() {
            continue;
        }
        let label = dir.file_name().unwrap().to_string_lossy().into_owned();
        let ck = Checkpoint::open(dir.to_str().unwrap(), None).unwrap_or_else(|e| panic!("{label}: {e}"));
        check_against(&label, &ck, &dir);
        checked.push(label);
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "bloom",
            "gemma2",
            "gemma3",
            "gemma3_multimodal",
            "gpt2",
            "gpt_neox",
            "llama",
            "llama3_scaled",
            "mistral",
            "mpt",
            "olmo2",
            "phi3",
            "qwen2",
            "qwen3",
            "stablelm"
        ],
        "every family fixture must be checked"
    );
}

/// Gemma 3 as GGUF (architecture `gemma3`, written with the `gguf` package
/// from tiny/gemma3's weights, norms stored as 1 + w) against transformers
/// loading the same GGUF. Its layer pattern (5 sliding, 1 global) and rope
/// bases come from transformers' GGUF defaults, as ours do.
#[test]
fn gemma3_gguf_matches_transformers() {
    let dir = fixtures().join("tiny/gemma3_gguf");
    let ck = Checkpoint::open(dir.join("model.gguf").to_str().unwrap(), None).unwrap();
    assert_eq!(ck.config["model_type"], "gemma3_text");
    let model = check_against("gemma3_gguf", &ck, &dir);
    assert_eq!(model.spec.windows, [Some(8), Some(8), Some(8), Some(8), Some(8), None]);
    assert_eq!(model.spec.local_rope_theta, Some(10_000.0));
}

/// The tensors of a tiny fixture, by name, as (dtype, shape, bytes).
fn fixture_tensors(dir: &Path) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes `tensors` into `dir` as `n_shards` safetensors files (round-robin)
/// with a `model.safetensors.index.json`, as `save_pretrained` shards them;
/// copies config and tokenizer files from `src`.
fn write_sharded(src: &Path, dir: &Path, tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)], n_shards: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut weight_map = serde_json::Map::new();
    for s in 0..n_shards {
        let file = format!("model-{:05}-of-{:05}.safetensors", s + 1, n_shards);
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .enumerate()
            .filter(|(i, _)| i % n_shards == s)
            .map(|(_, (n, dt, shape, data))| (n.clone(), safetensors::tensor::TensorView::new(*dt, shape.clone(), data).unwrap()))
            .collect();
        for (n, _) in &views {
            weight_map.insert(n.clone(), Value::String(file.clone()));
        }
        safetensors::tensor::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnscope-parity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tiny_family_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<_> = std::fs::read_dir(fixtures().join("tiny"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("config.json").exists())
        .map(|d| (d.file_name().unwrap().to_string_lossy().into_owned(), d))
        .collect();
    dirs.sort();
    dirs
}

/// Every family loads from sharded safetensors (three shards named by
/// `model.safetensors.index.json`, tensors spread round-robin) to the same
/// ids, Q, K and logits as transformers gives for the single file.
#[test]
fn sharded_checkpoints_of_every_family_match_transformers() {
    let dirs = tiny_family_dirs();
    assert!(dirs.len() >= 15);
    for (family, src) in dirs {
        let dir = scratch(&format!("sharded-{family}"));
        write_sharded(&src, &dir, &fixture_tensors(&src), 3);
        let ck = Checkpoint::open(dir.to_str().unwrap(), None).unwrap_or_else(|e| panic!("{family}: {e}"));
        assert!(ck.tensors.describe().contains("3 safetensors shards"), "{family}: {}", ck.tensors.describe());
        check_against(&format!("{family} (3 shards)"), &ck, &src);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The output-layer name of each family, for tied checkpoints saved as
/// the output layer only.
fn head_and_embed(family: &str) -> (&'static str, &'static str) {
    match family {
        "gpt2" | "mpt" => ("lm_head.weight", "transformer.wte.weight"),
        "gpt_neox" => ("embed_out.weight", "gpt_neox.embed_in.weight"),
        "bloom" => ("lm_head.weight", "transformer.word_embeddings.weight"),
        // save_pretrained's layout of Gemma3ForConditionalGeneration
        "gemma3_multimodal" => ("language_model.lm_head.weight", "language_model.model.embed_tokens.weight"),
        _ => ("lm_head.weight", "model.embed_tokens.weight"),
    }
}

/// `tie_word_embeddings: true` with the shared matrix stored only as the
/// output layer (`lm_head.weight`, no embedding), as some save paths write
/// it: loads and matches transformers, in every tied family. (The usual
/// case, the embedding only, is every tiny fixture itself.)
#[test]
fn tied_embeddings_stored_as_lm_head_only_load() {
    let mut checked = 0;
    for (family, src) in tiny_family_dirs() {
        let config: Value = serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
        if config["tie_word_embeddings"] == Value::Bool(false) {
            continue; // tiny/llama is untied: both matrices are stored
        }
        let (head, embed) = head_and_embed(&family);
        let mut tensors = fixture_tensors(&src);
        let e = tensors.iter_mut().find(|t| t.0 == embed).unwrap_or_else(|| panic!("{family}: no {embed}"));
        e.0 = head.to_string();
        let dir = scratch(&format!("tied-{family}"));
        write_sharded(&src, &dir, &tensors, 1);
        let ck = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
        assert!(!ck.tensors.contains(embed) && ck.tensors.contains(head));
        check_against(&format!("{family} (tied, stored as {head})"), &ck, &src);
        let _ = std::fs::remove_dir_all(dir);
        checked += 1;
    }
    assert!(checked >= 14, "{checked} tied families checked");
}

fn stories_greedy_text(model: &Model, ck: &Checkpoint) -> String {
    let g: Value = serde_json::from_slice(&std::fs::read(fixtures().join("stories260K/greedy.json")).unwrap()).unwrap();
    let prompt: Vec<u32> = g["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let want: Vec<u32> = g["generated_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let got = model.greedy(&prompt, want.len(), Some(1)).unwrap();
    assert_eq!(got, want, "stories260K greedy ids");
    let mut all = prompt.clone();
    all.extend(&got);
    ck.tokenizer.as_ref().unwrap().decode(&all).unwrap()
}

#[test]
fn stories260k_bin_and_gguf_match_reference_and_sample() {
    let dir = common::stories_dir();
    let md = std::fs::read_to_string(dir.join("stories260K.md")).unwrap();
    for file in ["stories260K.bin", "stories260K.gguf"] {
        let tok = (file == "stories260K.bin").then(|| dir.join("tok512.bin"));
        let ck = Checkpoint::open(dir.join(file).to_str().unwrap(), tok.as_deref()).unwrap();
        let model = check_against(file, &ck, &fixtures().join("stories260K"));
        let text = stories_greedy_text(&model, &ck);
        let text = text.trim_start();
        assert!(text.len() > 100 && md.contains(text), "{file}: greedy sample not in stories260K.md: {text:?}");
    }
}

#[test]
fn smollm2_matches_transformers_and_greedy_continuation() {
    let path = common::smollm2_path();
    let ck = Checkpoint::open(path.to_str().unwrap(), None).unwrap();
    let model = check_against("smollm2", &ck, &fixtures().join("smollm2"));
    let g: Value = serde_json::from_slice(&std::fs::read(fixtures().join("smollm2/greedy.json")).unwrap()).unwrap();
    let tok = ck.tokenizer.as_ref().unwrap();
    let prompt = tok.encode(g["prompt"].as_str().unwrap()).unwrap();
    let want: Vec<u32> = g["generated_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(prompt.len(), g["prompt_ids"].as_array().unwrap().len());
    let got = model.greedy(&prompt, want.len(), None).unwrap();
    assert_eq!(got, want, "SmolLM2 greedy continuation");
    assert_eq!(tok.decode(&got).unwrap(), g["text"].as_str().unwrap());
}

/// SmolLM2 over 300 tokens: attention runs in three query chunks (128, 128,
/// 44), so this checks that chunks, key ranges and masks are stitched
/// exactly; the 32-token fixture fits in one chunk.
#[test]
fn smollm2_long_context_matches_transformers() {
    let path = common::smollm2_path();
    let ck = Checkpoint::open(path.to_str().unwrap(), None).unwrap();
    let dir = fixtures().join("smollm2_long");
    let r = load_reference(&dir);
    let ids = ck.tokenizer.as_ref().unwrap().encode(r.json["text"].as_str().unwrap()).unwrap();
    assert_eq!(ids, r.ids, "token ids differ from transformers'");
    assert!(ids.len() > 2 * 128, "the fixture must span more than two query chunks");
    let model = Model::load(&ck).unwrap();
    let mut cap = Capture { layers: vec![29], q: BTreeMap::new(), k: BTreeMap::new() };
    let logits = model.forward_logits(&ids, Logits::All, Some(&mut cap)).unwrap();
    let q0 = cap.q[&29].narrow(0, 0, 1).unwrap();
    let mut worst = 0f64;
    for (name, got) in [("k.29", &cap.k[&29]), ("q.29.head0", &q0)] {
        let (shape, want) = &r.tensors[name];
        assert_eq!(got.dims(), shape.as_slice(), "{name} shape");
        let e = rel_err(&flat(got), want);
        assert!(e <= REL_TOL, "{name}: relative error {e:.2e} > {REL_TOL:e}");
        worst = worst.max(e);
    }
    let rows: Vec<usize> = r.json["logits_rows_positions"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let n_vocab = r.json["logits_vocab_prefix"].as_u64().unwrap() as usize;
    let ours: Vec<f32> = rows.iter().flat_map(|&p| flat(&logits.get(p).unwrap().narrow(0, 0, n_vocab).unwrap())).collect();
    let e = rel_err(&ours, &r.tensors["logits_rows_vocab_prefix"].1);
    assert!(e <= REL_TOL, "logits: relative error {e:.2e} > {REL_TOL:e}");
    worst = worst.max(e);
    eprintln!(
        "smollm2 over {} tokens: k.29, q.29 head 0 and logits rows {rows:?} match transformers (worst relative error {worst:.1e})",
        ids.len()
    );
}

/// The decoder's query chunking is an implementation detail: every chunk
/// size from 1 query to the whole text gives the same Q, K and logits (to
/// f32 rounding of the score GEMMs), in every family, including Mistral's
/// sliding window (8 < t), Gemma 2's soft-capped logits, BLOOM/MPT's ALiBi
/// bias (offset by each chunk's first query) and Gemma 3's local/global layers.
#[test]
fn query_chunk_size_does_not_change_results() {
    let tiny = fixtures().join("tiny");
    for family in ["mistral", "gemma2", "gpt2", "gpt_neox", "qwen2", "bloom", "mpt", "gemma3"] {
        let dir = tiny.join(family);
        let r = load_reference(&dir);
        let ck = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
        let mut model = Model::load(&ck).unwrap();
        let t = r.ids.len();
        let run = |model: &Model| {
            let layers: Vec<usize> = (0..model.spec.n_layers).collect();
            let mut cap = Capture { layers: layers.clone(), q: BTreeMap::new(), k: BTreeMap::new() };
            let logits = model.forward_logits(&r.ids, Logits::All, Some(&mut cap)).unwrap();
            let last = model.spec.n_layers - 1;
            (flat(&logits), flat(&cap.q[&last]), flat(&cap.k[&last]))
        };
        model.set_query_chunk(t);
        let whole = run(&model);
        for chunk in [1, 2, 5, 8, t - 1] {
            model.set_query_chunk(chunk);
            let got = run(&model);
            for (what, a, b) in [("logits", &got.0, &whole.0), ("q", &got.1, &whole.1), ("k", &got.2, &whole.2)] {
                let e = rel_err(a, b);
                assert!(e <= 1e-6, "{family}: chunk {chunk} vs {t}: {what} relative error {e:.2e}");
            }
        }
    }
}

/// With two or more pool threads the decoder runs attention's query chunks
/// as two one-thread tasks: the same bits as one chunk after another on a
/// one-thread pool, in every family (sliding window, soft-capped logits,
/// ALiBi, local/global layers), for chunk sizes that make 2 to t chunks.
#[test]
fn attention_chunk_tasks_give_the_sequential_bits() {
    let tiny = fixtures().join("tiny");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
    for family in ["mistral", "gemma2", "gpt2", "qwen2", "bloom", "gemma3"] {
        let dir = tiny.join(family);
        let r = load_reference(&dir);
        let ck = Checkpoint::open(dir.to_str().unwrap(), None).unwrap();
        let mut model = Model::load(&ck).unwrap();
        let t = r.ids.len();
        for chunk in [1, 3, t - 1] {
            model.set_query_chunk(chunk);
            let run = |model: &Model| {
                let last = model.spec.n_layers - 1;
                let mut cap = Capture { layers: (0..=last).collect(), q: BTreeMap::new(), k: BTreeMap::new() };
                let logits = model.forward_logits(&r.ids, Logits::All, Some(&mut cap)).unwrap();
                (bits(flat(&logits)), bits(flat(&cap.q[&last])))
            };
            let sequential = one.install(|| run(&model));
            let tasks = two.install(|| run(&model));
            assert!(sequential == tasks, "{family}, chunk {chunk}: the chunk tasks changed the logits or q bits");
        }
    }
}
