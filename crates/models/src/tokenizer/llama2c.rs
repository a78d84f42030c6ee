//! llama2.c's tokenizer (`tokenizer.bin`, e.g. `tok512.bin`), exactly as
//! `run.c`'s `build_tokenizer` / `encode` / `decode`.
//!
//! File: i32 `max_token_length`, then per token: f32 score, i32 len, `len`
//! bytes. The token count is not stored (run.c takes it from the model
//! header), so we read entries until the end of the file.
//!
//! Encode: [BOS=1] + dummy-prefix token " " (if text non-empty) + one token
//! per UTF-8 character (or its bytes as ids byte+3), then repeatedly merge
//! the adjacent pair whose concatenation has the highest score (first such
//! pair on ties) until no pair is in the vocabulary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::formats::ByteReader;
use crate::Result;

pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

pub struct Llama2cTokenizer {
    pub path: PathBuf,
    vocab: Vec<Vec<u8>>,
    scores: Vec<f32>,
    /// bytes → id (lowest id on duplicates).
    index: HashMap<Vec<u8>, u32>,
}

impl Llama2cTokenizer {
    pub fn open(path: &Path) -> Result<Self> {
        let buf = std::fs::read(path).map_err(|e| crate::formats::io_err(path, e))?;
        Self::parse(&buf, path)
    }

    pub fn parse(buf: &[u8], path: &Path) -> Result<Self> {
        let mut r = ByteReader::new(buf, path, "llama2.c tokenizer");
        let max_len = r.i32("max_token_length")?;
        if !(1..=1 << 16).contains(&max_len) {
            return Err(r.err(format!("max_token_length {max_len} is implausible")));
        }
        let (mut vocab, mut scores) = (Vec::new(), Vec::new());
        while r.remaining() > 0 {
            let i = vocab.len();
            let score = r.f32(&format!("score of token {i}"))?;
            let len = r.i32(&format!("length of token {i}"))?;
            if len < 0 || len > max_len {
                return Err(r.err(format!("token {i} has length {len} (max_token_length {max_len})")));
            }
            vocab.push(r.bytes(len as usize, &format!("bytes of token {i}"))?.to_vec());
            scores.push(score);
        }
        if vocab.len() < 3 + 256 {
            return Err(r.err(format!("only {} tokens; need BOS/EOS and 256 byte tokens", vocab.len())));
        }
        let mut index = HashMap::with_capacity(vocab.len());
        for (i, t) in vocab.iter().enumerate() {
            index.entry(t.clone()).or_insert(i as u32);
        }
        Ok(Self { path: path.to_path_buf(), vocab, scores, index })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// run.c `encode(text, bos, eos=0)`.
    pub fn encode(&self, text: &str, bos: bool) -> Vec<u32> {
        let mut toks: Vec<u32> = Vec::new();
        if bos {
            toks.push(BOS);
        }
        if !text.is_empty() {
            if let Some(&id) = self.index.get(b" ".as_slice()) {
                toks.push(id);
            }
        }
        let mut buf = [0u8; 4];
        for ch in text.chars() {
            let s = ch.encode_utf8(&mut buf).as_bytes();
            match self.index.get(s) {
                Some(&id) => toks.push(id),
                None => toks.extend(s.iter().map(|&b| b as u32 + 3)),
            }
        }
        let mut pair = Vec::new();
        loop {
            let mut best: Option<(f32, u32, usize)> = None;
            for i in 0..toks.len().saturating_sub(1) {
                pair.clear();
                pair.extend_from_slice(&self.vocab[toks[i] as usize]);
                pair.extend_from_slice(&self.vocab[toks[i + 1] as usize]);
                if let Some(&id) = self.index.get(&pair) {
                    let sc = self.scores[id as usize];
                    // run.c: strictly greater than the best so far (first pair wins ties).
                    let better = match best {
                        None => sc > -1e10,
                        Some((b, _, _)) => sc > b,
                    };
                    if better {
                        best = Some((sc, id, i));
                    }
                }
            }
            let Some((_, id, i)) = best else { break };
            toks[i] = id;
            toks.remove(i + 1);
        }
        toks
    }

    /// run.c `decode`: the leading space of a piece right after BOS is
    /// dropped, `<0xXX>` pieces are raw bytes; BOS/EOS themselves print nothing.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = Vec::new();
        let mut prev: Option<u32> = None;
        for &id in ids {
            if id == BOS || id == EOS {
                prev = Some(id);
                continue;
            }
            let Some(piece) = self.vocab.get(id as usize) else { continue };
            let mut piece: &[u8] = piece;
            if prev == Some(BOS) && piece.first() == Some(&b' ') {
                piece = &piece[1..];
            }
            match std::str::from_utf8(piece).ok().and_then(super::spm::parse_byte_token) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(piece),
            }
            prev = Some(id);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
