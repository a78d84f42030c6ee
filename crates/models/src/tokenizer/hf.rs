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
    let t = std::fs::read(&p).map_err(|e| crate::formats::io_err(&p, e))?;
    serde_json::from_slice(&t)
        .map_err(|e| Error::Tokenizer(format!("{}: cannot parse: {e}", p.display())))
}

pub fn from_tokenizer_json(path: &Path) -> Result<TextTokenizer> {
    let err = |m: String| Error::Tokenizer(format!("{}: {m}", path.display()));
    let text = std::fs::read(path).map_err(|e| crate::formats::io_err(path, e))?;
    let mut tok =
        tokenizers::Tokenizer::from_bytes(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
    // transformers calls `no_truncation()` / `no_padding()` unless asked:
    // a max_length or padding stored in tokenizer.json does not apply.
    tok.with_truncation(None)
        .map_err(|e| err(format!("disabling truncation: {e}")))?;
    tok.with_padding(None);
    let raw: Json = serde_json::from_slice(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
    let has_post = raw.get("post_processor").is_some_and(|p| !p.is_null());

    let cfg = sibling_json(path, "tokenizer_config.json")?;
    let map = sibling_json(path, "special_tokens_map.json")?;
    let lookup = |key: &str| {
        token_text(cfg.get(key))
            .or_else(|| token_text(map.get(key)))
            .and_then(|t| tok.token_to_id(&t))
    };
    let mut bos = lookup("bos_token");
    let eos = lookup("eos_token");
    let class = cfg
        .get("tokenizer_class")
        .and_then(Json::as_str)
        .unwrap_or("");
    let neox = class.starts_with("GPTNeoXTokenizer");
    let use_post = has_post && !neox;
    if use_post && bos.is_none() {
        // Nothing names BOS: take the special token the post-processor puts first, if any.
        let with = tok.encode("a", true).map_err(|e| err(e.to_string()))?;
        let without = tok.encode("a", false).map_err(|e| err(e.to_string()))?;
        if with.get_ids().len() > without.get_ids().len()
            && with.get_special_tokens_mask().first() == Some(&1)
        {
            bos = with.get_ids().first().copied();
        }
    }
    let vocab_size = tok.get_vocab_size(true);
    let backend = Backend::Hf {
        tok: Box::new(tok),
        add_special_tokens: use_post,
    };
    Ok(TextTokenizer::new(backend, bos, eos, false, vocab_size))
}
