//! HF `tokenizer.json`, with special tokens added exactly as transformers
//! 5.x's `tokenizer(text)["input_ids"]` adds them (checked against 5.24):
//!
//! - When a `tokenizer.json` is present, transformers *drops*
//!   `add_bos_token` / `add_eos_token` from `tokenizer_config.json`
//!   (`tokenization_utils_base.py`, `_from_pretrained`), so the
//!   post-processor in `tokenizer.json` (often a `TemplateProcessing` that
//!   adds BOS) is authoritative: we encode with `add_special_tokens = true`.
//! - A null post-processor is rebuilt from the (dropped, hence false)
//!   flags: nothing is added.
//! - `GPTNeoXTokenizer` always rebuilds it from its class defaults
//!   (add_bos/add_eos false): nothing is added.
//!
//! So BOS appears at most once, and exactly when transformers puts it there.
//! Truncation and padding stored in `tokenizer.json` are switched off, as
//! transformers does for a plain `tokenizer(text)` call.
//! `tokenizer_config.json` (or `special_tokens_map.json`) still names the
//! BOS/EOS tokens for [`TextTokenizer::bos_id`] / `eos_id`.

use std::path::Path;

use serde_json::Value as Json;

use super::{Backend, TextTokenizer};
use crate::{Error, Result};

/// `"<s>"` or `{"content": "<s>", ...}` → "<s>".
fn token_text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

/// A JSON file beside the tokenizer, or Null if absent.
fn sibling_json(path: &Path, name: &str) -> Result<Json> {
    let p = path.with_file_name(name);
    if !p.is_file() {
        return Ok(Json::Null);
    }
    let t = crate::formats::read_capped(&p, crate::formats::JSON_MAX_BYTES)?;
    serde_json::from_slice(&t).map_err(|e| Error::Tokenizer(format!("{}: cannot parse: {e}", p.display())))
}

pub fn from_tokenizer_json(path: &Path) -> Result<TextTokenizer> {
    let err = |m: String| Error::Tokenizer(format!("{}: {m}", path.display()));
    let text = crate::formats::read_capped(path, crate::formats::TOKENIZER_MAX_BYTES)?;
    // Checked before `tokenizers` sees the bytes: it panics on some malformed
    // files (fuzz, tokenizers 0.23.2; see `check_before_tokenizers`).
    let raw: Json = serde_json::from_slice(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
    check_before_tokenizers(&raw).map_err(err)?;
    let mut tok = tokenizers::Tokenizer::from_bytes(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
    // transformers calls `no_truncation()` / `no_padding()` unless asked:
    // a max_length or padding stored in tokenizer.json does not apply.
    tok.with_truncation(None).map_err(|e| err(format!("disabling truncation: {e}")))?;
    tok.with_padding(None);
    let has_post = raw.get("post_processor").is_some_and(|p| !p.is_null());

    let cfg = sibling_json(path, "tokenizer_config.json")?;
    let map = sibling_json(path, "special_tokens_map.json")?;
    let lookup = |key: &str| token_text(cfg.get(key)).or_else(|| token_text(map.get(key))).and_then(|t| tok.token_to_id(&t));
    let mut bos = lookup("bos_token");
    let eos = lookup("eos_token");
    let class = cfg.get("tokenizer_class").and_then(Json::as_str).unwrap_or("");
    let neox = class.starts_with("GPTNeoXTokenizer");
    let use_post = has_post && !neox;
    if use_post && bos.is_none() {
        // Nothing names BOS: take the special token the post-processor puts first, if any.
        let with = tok.encode("a", true).map_err(|e| err(e.to_string()))?;
        let without = tok.encode("a", false).map_err(|e| err(e.to_string()))?;
        if with.get_ids().len() > without.get_ids().len() && with.get_special_tokens_mask().first() == Some(&1) {
            bos = with.get_ids().first().copied();
        }
    }
    let vocab_size = tok.get_vocab_size(true);
    let backend = Backend::Hf { tok: Box::new(tok), add_special_tokens: use_post };
    Ok(TextTokenizer::new(backend, bos, eos, false, vocab_size))
}

/// What `tokenizers` 0.23.2 would panic on instead of returning an error
/// (found by fuzz/, target `tokenizer`):
///
/// - JSON syntax errors inside `decoder` hit `.expect("Helper")` in its
///   decoder deserializer: the caller parses the JSON first.
/// - BPE merges whose second token is shorter than, or does not start with,
///   `continuing_subword_prefix`, or whose concatenation is longer than any
///   vocabulary token: `BPE::build` slices out of bounds
///   (`bpe/model.rs`, `b.len() - prefix_len`).
/// - A `TemplateProcessing` that names a special token missing from its
///   `special_tokens` map: encoding indexes the map and panics (the builder
///   checks this; deserialization does not).
fn check_before_tokenizers(raw: &Json) -> std::result::Result<(), String> {
    let model = raw.get("model").unwrap_or(&Json::Null);
    if let (Some(vocab), Some(merges)) = (model.get("vocab").and_then(Json::as_object), model.get("merges").and_then(Json::as_array)) {
        let prefix = model.get("continuing_subword_prefix").and_then(Json::as_str).unwrap_or("");
        let max_len = vocab.keys().map(String::len).max().unwrap_or(0);
        for m in merges {
            let (a, b) = match m {
                Json::String(s) => match s.split_once(' ') {
                    Some((a, b)) => (a, b),
                    None => continue, // tokenizers reports it
                },
                Json::Array(v) if v.len() == 2 => match (v[0].as_str(), v[1].as_str()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => continue,
                },
                _ => continue,
            };
            if !(vocab.contains_key(a) && vocab.contains_key(b)) {
                continue; // tokenizers reports an out-of-vocabulary merge
            }
            if !b.starts_with(prefix) || a.len() + b.len() - prefix.len() > max_len {
                return Err(format!(
                    "BPE merge `{a} {b}` does not fit the vocabulary (continuing_subword_prefix `{prefix}`, longest token {max_len} bytes)"
                ));
            }
        }
    }
    check_templates(raw.get("post_processor").unwrap_or(&Json::Null))
}

/// Every special token a `TemplateProcessing` uses is in its map (also
/// inside a `Sequence` of processors). Recognised by shape, not by `type`:
/// `tokenizers` deserializes post-processors untagged, so a template with a
/// misspelt or missing `type` is still a template.
fn check_templates(pp: &Json) -> std::result::Result<(), String> {
    for p in pp.get("processors").and_then(Json::as_array).into_iter().flatten() {
        check_templates(p)?;
    }
    let known = pp.get("special_tokens").and_then(Json::as_object);
    for key in ["single", "pair"] {
        for piece in pp.get(key).and_then(Json::as_array).into_iter().flatten() {
            let Some(id) = piece.get("SpecialToken").and_then(|t| t.get("id")).and_then(Json::as_str) else {
                continue;
            };
            if !known.is_some_and(|k| k.contains_key(id)) {
                return Err(format!("post_processor template uses special token `{id}`, which its special_tokens do not define"));
            }
        }
    }
    Ok(())
}
