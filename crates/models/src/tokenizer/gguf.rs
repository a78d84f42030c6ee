//! Tokenizers embedded in GGUF metadata (`tokenizer.ggml.*`).
//!
//! - `model = "llama"`: SentencePiece vocabulary (tokens, scores,
//!   token_type) → [`super::spm::Spm`], llama.cpp's algorithm.
//! - `model = "gpt2"`: byte-level BPE (tokens, merges) → a `tokenizers` BPE
//!   with the pre-tokenizer chosen from `tokenizer.ggml.pre`, control tokens
//!   (type 3) added as special tokens and user-defined ones (type 4) as
//!   added tokens, as transformers' `gguf_tokenizer_mapping.py` does.
//!   Known `pre`: `smollm` (digits split one by one, then GPT-2 byte-level
//!   regex — SmolLM2's own tokenizer.json), `default`/`gpt2`,
//!   `llama-bpe`/`llama3`/`llama-v3`, `qwen2`.
//!
//! BOS: `tokenizer.ggml.add_bos_token`; when absent, true for `llama`
//! (llama.cpp and transformers both add it to SentencePiece vocabularies)
//! and false for `gpt2` (transformers' GPT2 default). EOS is appended only
//! when `tokenizer.ggml.add_eos_token` is true (transformers' template).
//!
//! Not done: literal special-token text (e.g. "<s>") inside the input is
//! matched as a special token by the byte-level BPE (added tokens, as
//! transformers), but NOT by the SentencePiece path (as llama.cpp without
//! `parse_special` and run.c).

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::spm::Spm;
use super::{Backend, TextTokenizer};
use crate::formats::gguf::{GgufFile, Value};
use crate::{Error, Result};

const LLAMA3_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values we build exactly.
pub const SUPPORTED_PRE: &[&str] = &["smollm", "default", "gpt2", "llama-bpe", "llama3", "llama-v3", "qwen2"];

fn terr(file: &GgufFile, msg: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{}: {msg}", file.path.display()))
}

fn strings(file: &GgufFile, key: &str) -> Result<Option<Vec<String>>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => {
            let arr = v.as_array().ok_or_else(|| terr(file, format!("`{key}` is not an array")))?;
            arr.iter()
                .map(|x| x.as_str().map(str::to_string).ok_or_else(|| terr(file, format!("`{key}` holds a non-string"))))
                .collect::<Result<Vec<_>>>()
                .map(Some)
        }
    }
}

/// A numeric array: absent → empty; not an array, or holding a
/// non-number, NaN or ±Inf → an error naming the key and the index.
fn numbers(file: &GgufFile, key: &str) -> Result<Vec<f64>> {
    let Some(v) = file.get(key) else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| terr(file, format!("`{key}` is not an array")))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| terr(file, format!("`{key}`[{i}] is not a finite number"))))
        .collect()
}

/// A token id: absent → None; present but not an id below `n` → an error
/// naming the key.
fn id(file: &GgufFile, key: &str, n: usize) -> Result<Option<u32>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&i| (i as usize) < n)
            .map(|i| Some(i as u32))
            .ok_or_else(|| terr(file, format!("`{key}` is not a token id below the vocabulary size {n}"))),
    }
}

/// The tokenizer described by `file`'s metadata, or `Ok(None)` if it has
/// none (no `tokenizer.ggml.model`).
pub fn from_gguf(file: &GgufFile) -> Result<Option<TextTokenizer>> {
    let Some(model) = file.get("tokenizer.ggml.model") else {
        return Ok(None);
    };
    let model = model.as_str().ok_or_else(|| terr(file, "`tokenizer.ggml.model` is not a string"))?;
    let tokens = strings(file, "tokenizer.ggml.tokens")?.ok_or_else(|| terr(file, "no `tokenizer.ggml.tokens`"))?;
    let n = tokens.len();
    let types: Vec<i32> = numbers(file, "tokenizer.ggml.token_type")?.into_iter().map(|x| x as i32).collect();
    let bos = id(file, "tokenizer.ggml.bos_token_id", n)?;
    let eos = id(file, "tokenizer.ggml.eos_token_id", n)?;
    let add_bos_meta = file.opt_bool("tokenizer.ggml.add_bos_token")?;
    if add_bos_meta == Some(true) && bos.is_none() {
        return Err(terr(file, "`tokenizer.ggml.add_bos_token` is true but there is no `tokenizer.ggml.bos_token_id`"));
    }
    let space_prefix = file.opt_bool("tokenizer.ggml.add_space_prefix")?;
    let (backend, add_bos) = match model {
        "llama" => {
            let scores = numbers(file, "tokenizer.ggml.scores")?.into_iter().map(|x| x as f32).collect();
            let unk = id(file, "tokenizer.ggml.unknown_token_id", n)?;
            let spm = Spm::new(tokens, scores, types, space_prefix.unwrap_or(true), unk);
            (Backend::Spm(Box::new(spm)), add_bos_meta.unwrap_or(true))
        }
        "gpt2" => {
            let pre = file.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
            let merges =
                strings(file, "tokenizer.ggml.merges")?.ok_or_else(|| terr(file, "gpt2 tokenizer without `tokenizer.ggml.merges`"))?;
            let tok = byte_level_bpe(file, tokens, &types, merges, pre, space_prefix.unwrap_or(false))?;
            (Backend::Hf { tok: Box::new(tok), add_special_tokens: false }, add_bos_meta.unwrap_or(false))
        }
        other => {
            return Err(Error::Unsupported {
                path: file.path.clone(),
                what: "GGUF tokenizer model",
                detail: format!("tokenizer.ggml.model = `{other}` (supported: llama, gpt2)"),
            })
        }
    };
    let add_eos = file.opt_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    Ok(Some(TextTokenizer::new(backend, bos, eos, add_bos && bos.is_some(), n).with_append_eos(add_eos)))
}

/// GPT-2's byte → printable-char table (`bytes_to_unicode`).
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs = bs.clone();
    let mut k = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + k);
            k += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in bs.iter().zip(cs) {
        table[*b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    table
}

fn byte_level_bpe(
    file: &GgufFile,
    tokens: Vec<String>,
    types: &[i32],
    merges: Vec<String>,
    pre: &str,
    add_prefix_space: bool,
) -> Result<Tokenizer> {
    let table = bytes_to_unicode();
    let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    // As transformers: a token outside the byte alphabet is re-spelled in it.
    let spelled: Vec<String> =
        tokens.iter().map(|t| if in_alphabet(t) { t.clone() } else { t.bytes().map(|b| table[b as usize]).collect() }).collect();
    let mut vocab = Vocab::default();
    for (i, t) in spelled.iter().enumerate() {
        vocab.entry(t.clone()).or_insert(i as u32);
    }
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| terr(file, format!("merge `{m}` is not two space-separated tokens")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| terr(file, format!("building BPE: {e}")))?;
    let byte_level = |prefix: bool, regex: bool| -> PreTokenizerWrapper { ByteLevel::new(prefix, true, regex).into() };
    let split = |re: &str| -> Result<PreTokenizerWrapper> {
        Ok(Split::new(SplitPattern::Regex(re.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| terr(file, format!("pre-tokenizer regex: {e}")))?
            .into())
    };
    let pre_tok: PreTokenizerWrapper = match pre {
        // SmolLM2's tokenizer.json: Sequence[Digits(individual), ByteLevel(no prefix, regex)].
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level(add_prefix_space, true)]).into(),
        "default" | "gpt2" => byte_level(add_prefix_space, true),
        "llama-bpe" | "llama3" | "llama-v3" => Sequence::new(vec![split(LLAMA3_SPLIT)?, byte_level(false, false)]).into(),
        "qwen2" => Sequence::new(vec![split(QWEN2_SPLIT)?, byte_level(false, false)]).into(),
        other => {
            return Err(Error::Unsupported {
                path: file.path.clone(),
                what: "GGUF pre-tokenizer",
                detail: format!("tokenizer.ggml.pre = `{other}` (supported: {})", SUPPORTED_PRE.join(", ")),
            })
        }
    };
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tok));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    let control: Vec<AddedToken> =
        spelled.iter().zip(types).filter(|(t, &ty)| ty == 3 && in_alphabet(t)).map(|(t, _)| AddedToken::from(t.clone(), true)).collect();
    tok.add_special_tokens(control).map_err(|e| terr(file, format!("adding control tokens: {e}")))?;
    let user: Vec<AddedToken> =
        spelled.iter().zip(types).filter(|(_, &ty)| ty == 4).map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false)).collect();
    tok.add_tokens(user).map_err(|e| terr(file, format!("adding user-defined tokens: {e}")))?;
    Ok(tok)
}
