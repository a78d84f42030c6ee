//! The byte-level tokenizer of trained models: ids 0–255 are the bytes,
//! 256 is `<|endoftext|>`. Saved as an HF `tokenizer.json` (GPT-2's
//! byte-to-unicode alphabet, a BPE model with no merges, ByteLevel
//! pre-tokenizer and decoder, no regex split), so the HF `tokenizers` crate
//! and transformers load it and encode any text to exactly its bytes.

use serde_json::{json, Map, Value};

/// Number of ids: 256 bytes + `<|endoftext|>`.
pub const VOCAB: usize = 257;
pub const EOS: u32 = 256;
pub const EOS_TOKEN: &str = "<|endoftext|>";

/// GPT-2's reversible byte → printable character map.
fn byte_to_char(b: u8) -> char {
    let direct = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let b = b as u32;
    if direct(b) {
        return char::from_u32(b).unwrap_or('?');
    }
    // The k-th byte (in order) that is not printable maps to 256 + k.
    let k = (0..b).filter(|&x| !direct(x)).count() as u32;
    char::from_u32(256 + k).unwrap_or('?')
}

/// Text → ids (its UTF-8 bytes), exactly what tokenizer.json encodes.
pub fn encode(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// The tokenizer.json document.
pub fn tokenizer_json() -> Value {
    let mut vocab = Map::new();
    for b in 0..=255u8 {
        vocab.insert(byte_to_char(b).to_string(), json!(b as u32));
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": EOS, "content": EOS_TOKEN, "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": Value::Object(vocab), "merges": []}
    })
}

/// tokenizer_config.json: tells transformers which class and EOS to use; no BOS.
pub fn tokenizer_config_json(ctx: usize) -> Value {
    json!({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOS_TOKEN, "bos_token": null,
           "add_bos_token": false, "add_eos_token": false, "model_max_length": ctx})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_a_bijection() {
        let mut cs: Vec<char> = (0..=255u8).map(byte_to_char).collect();
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        cs.sort();
        cs.dedup();
        assert_eq!(cs.len(), 256);
    }
}
