//! HF `tokenizer.json`, with BOS/EOS decided as transformers v5's
//! `TokenizersBackend` decides them (`tokenization_utils_tokenizers.py`):
//!
//! - If `tokenizer_config.json` beside it sets `add_bos_token` or
//!   `add_eos_token` explicitly, or `tokenizer.json` has no post-processor,
//!   transformers replaces the post-processor by
//!   `[bos if add_bos_token] $A [eos if add_eos_token]` (both default false).
//!   We then encode without special tokens and prepend BOS ourselves.
//! - Otherwise the post-processor in `tokenizer.json` (often a
//!   `TemplateProcessing` that already adds BOS) is used as is:
//!   `encode(text, add_special_tokens=true)`.
//!
//! Either way BOS appears exactly once, as in `tokenizer(text)["input_ids"]`
//! (and EOS is appended exactly when transformers appends it).

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

pub fn from_tokenizer_json(path: &Path) -> Result<TextTokenizer> {
    let err = |m: String| Error::Tokenizer(format!("{}: {m}", path.display()));
    let text = std::fs::read(path).map_err(|e| crate::formats::io_err(path, e))?;
    let tok = tokenizers::Tokenizer::from_bytes(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
    let raw: Json = serde_json::from_slice(&text).map_err(|e| err(format!("cannot parse: {e}")))?;
    let has_post = raw.get("post_processor").is_some_and(|p| !p.is_null());

    let cfg_path = path.with_file_name("tokenizer_config.json");
    let cfg: Json = if cfg_path.exists() {
        let t = std::fs::read(&cfg_path).map_err(|e| crate::formats::io_err(&cfg_path, e))?;
        serde_json::from_slice(&t)
            .map_err(|e| Error::Tokenizer(format!("{}: cannot parse: {e}", cfg_path.display())))?
    } else {
        Json::Null
    };
    let add_bos_cfg = cfg.get("add_bos_token").and_then(Json::as_bool);
    let explicit = cfg.get("add_bos_token").is_some() || cfg.get("add_eos_token").is_some();
    let lookup = |key: &str| token_text(cfg.get(key)).and_then(|t| tok.token_to_id(&t));
    let mut bos = lookup("bos_token");
    let eos = lookup("eos_token");
    let vocab_size = tok.get_vocab_size(true);

    if explicit || !has_post {
        let add = add_bos_cfg.unwrap_or(false) && bos.is_some();
        let append_eos = cfg.get("add_eos_token").and_then(Json::as_bool).unwrap_or(false) && eos.is_some();
        let backend = Backend::Hf { tok: Box::new(tok), add_special_tokens: false, append_eos };
        return Ok(TextTokenizer::new(backend, bos, eos, add, vocab_size));
    }
    if bos.is_none() {
        // No tokenizer_config: the token the post-processor puts in front, if any.
        let with = tok.encode("a", true).map_err(|e| err(e.to_string()))?;
        let without = tok.encode("a", false).map_err(|e| err(e.to_string()))?;
        if with.get_ids().len() > without.get_ids().len() && with.get_special_tokens_mask().first() == Some(&1) {
            bos = with.get_ids().first().copied();
        }
    }
    Ok(TextTokenizer::new(Backend::Hf { tok: Box::new(tok), add_special_tokens: true, append_eos: false }, bos, eos, false, vocab_size))
}
