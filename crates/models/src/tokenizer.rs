//! [`TextTokenizer`]: text → token ids, exactly as the model's own tokenizer.
//!
//! Backends (chosen by the loader, see `tokenizer/`):
//! - `tokenizer.json` through the `tokenizers` crate, BOS as transformers
//!   v5's `tokenizer(text)["input_ids"]` adds it ([`hf`]);
//! - GGUF SentencePiece vocabularies, llama.cpp's algorithm ([`spm`]);
//! - GGUF byte-level BPE, rebuilt as a `tokenizers` BPE ([`gguf`]);
//! - llama2.c `tokenizer.bin`, run.c's algorithm ([`llama2c`]).
//!
//! Contract: `encode` returns the ids the reference tokenizer returns, with
//! BOS prepended exactly once iff [`TextTokenizer::adds_bos`].

pub mod gguf;
pub mod hf;
pub mod llama2c;
pub mod spm;

use std::path::Path;

use crate::{Error, Result};

pub(crate) enum Backend {
    /// `add_special_tokens`: let the tokenizer's post-processor add BOS/EOS
    /// (true only when that post-processor is what transformers uses).
    Hf {
        tok: Box<tokenizers::Tokenizer>,
        add_special_tokens: bool,
    },
    Spm(Box<spm::Spm>),
    Llama2c(Box<llama2c::Llama2cTokenizer>),
}

/// Text → ids, with BOS exactly when the model's tokenizer settings add it.
pub struct TextTokenizer {
    backend: Backend,
    bos: Option<u32>,
    eos: Option<u32>,
    /// Prepend `bos` ourselves (if not already first).
    prepend_bos: bool,
    /// Whether `encode` output starts with BOS (ours or the post-processor's).
    adds_bos: bool,
    /// Append `eos` ourselves (GGUF `tokenizer.ggml.add_eos_token`, which
    /// transformers turns into an EOS in its template).
    append_eos: bool,
    vocab_size: usize,
}

impl TextTokenizer {
    pub(crate) fn new(backend: Backend, bos: Option<u32>, eos: Option<u32>, prepend_bos: bool, vocab_size: usize) -> Self {
        let mut t = Self { backend, bos, eos, prepend_bos, adds_bos: prepend_bos, append_eos: false, vocab_size };
        if let (Backend::Hf { add_special_tokens: true, .. }, Some(b)) = (&t.backend, t.bos) {
            // The post-processor decides: probe it.
            t.adds_bos = t.encode("a").map(|ids| ids.first() == Some(&b)).unwrap_or(false);
        }
        t
    }

    /// An HF `tokenizer.json` (with `tokenizer_config.json` beside it, if
    /// present, naming the BOS/EOS tokens). BOS is added exactly as
    /// transformers 5.x adds it: by the file's post-processor, which overrides
    /// `add_bos_token` (see [`hf`]).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        hf::from_tokenizer_json(path)
    }

    /// A llama2.c `tokenizer.bin` (run.c's tokenizer; BOS = 1 always added).
    pub fn from_llama2c(path: &Path) -> Result<Self> {
        let t = llama2c::Llama2cTokenizer::open(path)?;
        let n = t.vocab_size();
        Ok(Self::new(Backend::Llama2c(Box::new(t)), Some(llama2c::BOS), Some(llama2c::EOS), true, n))
    }

    /// Reads a tokenizer from `path` by its kind: `*.json` → tokenizer.json,
    /// `*.gguf` or GGUF magic → the GGUF's embedded tokenizer, `*.model`
    /// (SentencePiece) → a clear refusal, else llama2.c.
    pub fn from_path(path: &Path) -> Result<Self> {
        crate::formats::regular_file_len(path)?;
        if path.extension().is_some_and(|e| e == "model") {
            // A SentencePiece protobuf (tokenizer.model): not parsed here.
            return Err(Error::Tokenizer(format!(
                "{}: SentencePiece .model files are not read; pass a tokenizer.json (transformers writes one: \
                 AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR))",
                path.display()
            )));
        }
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_tokenizer_json(path)
        } else if crate::formats::gguf::has_magic(path) {
            let f = crate::formats::gguf::GgufFile::open(path)?;
            gguf::from_gguf(&f)?.ok_or_else(|| Error::Tokenizer(format!("{}: GGUF file has no tokenizer", path.display())))
        } else {
            Self::from_llama2c(path)
        }
    }

    /// Ids of `text`, BOS prepended iff the model's settings say so.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = match &self.backend {
            Backend::Hf { tok, add_special_tokens } => tok
                .encode(text, *add_special_tokens)
                .map_err(|source| Error::TokenizerCall { what: "encoding", source })?
                .get_ids()
                .to_vec(),
            Backend::Spm(s) => s.encode(text),
            // run.c merges with BOS already in the sequence: let it add BOS.
            Backend::Llama2c(t) => return Ok(t.encode(text, self.prepend_bos)),
            // (llama2.c never appends EOS to prompts: run.c calls encode(.., eos=0).)
        };
        if let (true, Some(b)) = (self.prepend_bos, self.bos) {
            ids.insert(0, b);
        }
        if let (true, Some(e)) = (self.append_eos, self.eos) {
            ids.push(e);
        }
        Ok(ids)
    }

    /// Sets whether `encode` appends EOS (GGUF `add_eos_token`).
    pub(crate) fn with_append_eos(mut self, on: bool) -> Self {
        self.append_eos = on && self.eos.is_some();
        self
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.backend {
            Backend::Hf { tok, .. } => tok.decode(ids, false).map_err(|source| Error::TokenizerCall { what: "decoding", source }),
            Backend::Spm(s) => Ok(s.decode(ids)),
            Backend::Llama2c(t) => Ok(t.decode(ids)),
        }
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }
    /// Whether `encode` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.adds_bos
    }
}
