//! Streaming the layers from the mapped file changes nothing the
//! decoder computes: for every family fixture, llama2.c and GGUF, the Q, K,
//! W_Q, W_K each layer hands its observer and the logits are bit-identical
//! to a model with every weight loaded up front.

use std::path::{Path, PathBuf};

use models::{Checkpoint, LayerCapture, Logits, Model, Observer, ObserverError};

#[derive(Default)]
struct Capture(Vec<Vec<u32>>);

impl Observer for Capture {
    fn on_layer(&mut self, c: &LayerCapture<'_>) -> Result<(), ObserverError> {
        for t in [c.q, c.k, c.w_q, c.w_k] {
            self.0.push(t.flatten_all()?.to_vec1::<f32>()?.iter().map(|x| x.to_bits()).collect());
        }
        Ok(())
    }
}

fn bits(model: &Model, ids: &[u32]) -> (Vec<Vec<u32>>, Vec<u32>) {
    let mut cap = Capture::default();
    let logits = model.forward_logits(ids, Logits::All, Some(&mut cap)).unwrap();
    (cap.0, logits.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect())
}

fn same_streamed_and_resident(source: &Path, tok: Option<&Path>, n: usize) {
    let ck = Checkpoint::open(source.to_str().unwrap(), tok).unwrap();
    let streamed = Model::load_with(&ck, false).unwrap();
    let resident = Model::load_with(&ck, true).unwrap();
    assert!(!streamed.is_resident() && resident.is_resident());
    let vocab = streamed.spec.vocab_size as u32;
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % vocab).collect();
    let (a, b) = (bits(&streamed, &ids), bits(&resident, &ids));
    assert_eq!(a.0.len(), 4 * streamed.spec.n_layers, "{}", source.display());
    assert!(a == b, "{}: streamed and resident weights give different Q/K/logits", source.display());
}

fn tiny(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny").join(family)
}

#[test]
fn every_family_fixture_is_bit_identical_streamed() {
    for family in ["llama", "gpt2", "gpt_neox", "qwen2", "qwen3", "gemma2", "mistral", "olmo2", "llama3_scaled"] {
        same_streamed_and_resident(&tiny(family), None, 12);
    }
}

#[test]
fn llama2c_gguf_and_smollm2_are_bit_identical_streamed() {
    let dir = testdata::stories_dir();
    same_streamed_and_resident(&dir.join("stories260K.bin"), Some(&dir.join("tok512.bin")), 40);
    same_streamed_and_resident(&dir.join("stories260K.gguf"), None, 40);
    same_streamed_and_resident(&testdata::smollm2_path(), None, 24);
}
