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
        let buf = crate::formats::read_capped(path, crate::formats::TOKENIZER_MAX_BYTES)?;
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
            if !score.is_finite() {
                // Merges pick the highest score: a NaN would reorder them silently.
                return Err(r.err(format!("token {i} has score {score}, not a finite number")));
            }
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
        // run.c's byte fallback encodes byte b as token b + 3: tokens 3..259
        // must be <0x00>..<0xFF>, or unknown characters become other tokens.
        for b in 0..256usize {
            let want = format!("<0x{b:02X}>");
            if vocab[b + 3] != want.as_bytes() {
                return Err(r.err(format!(
                    "token {} is {:?}, not the byte token {want} (tokens 3..259 must be <0x00>..<0xFF>)",
                    b + 3,
                    String::from_utf8_lossy(&vocab[b + 3]).chars().take(20).collect::<String>()
                )));
            }
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
        self.merge(toks)
    }

    /// run.c's merge loop, in O(n log n): repeatedly merge the adjacent pair
    /// whose concatenated text is a token with the highest score, the
    /// leftmost such pair on ties. A max-heap with lazy invalidation yields
    /// exactly the same sequence of merges as run.c's full rescans.
    fn merge(&self, toks: Vec<u32>) -> Vec<u32> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let n = toks.len();
        let mut id = toks;
        let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
        let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let mut alive = vec![true; n];
        // (score bits ordered, Reverse(left position), left id, right id, merged id)
        let mut heap: BinaryHeap<(OrdF32, Reverse<usize>, u32, u32, u32)> = BinaryHeap::new();
        let mut buf = Vec::new();
        let mut push = |heap: &mut BinaryHeap<_>, l: usize, a: u32, b: u32| {
            buf.clear();
            buf.extend_from_slice(&self.vocab[a as usize]);
            buf.extend_from_slice(&self.vocab[b as usize]);
            if let Some(&m) = self.index.get(&buf) {
                let sc = self.scores[m as usize];
                if sc > -1e10 {
                    heap.push((OrdF32(sc + 0.0), Reverse(l), a, b, m)); // +0.0: -0.0 ties 0.0 as in C
                }
            }
        };
        for i in 0..n.saturating_sub(1) {
            push(&mut heap, i, id[i], id[i + 1]);
        }
        while let Some((_, Reverse(l), a, b, m)) = heap.pop() {
            let Some(r) = next[l] else { continue };
            if !alive[l] || id[l] != a || id[r] != b {
                continue; // stale: one side changed since this pair was queued
            }
            id[l] = m;
            alive[r] = false;
            next[l] = next[r];
            if let Some(nn) = next[r] {
                prev[nn] = Some(l);
            }
            if let Some(p) = prev[l] {
                push(&mut heap, p, id[p], m);
            }
            if let Some(nn) = next[l] {
                push(&mut heap, l, m, id[nn]);
            }
        }
        let mut out = Vec::new();
        let mut i = (n > 0).then_some(0);
        while let Some(k) = i {
            out.push(id[k]);
            i = next[k];
        }
        out
    }

    /// run.c's merge loop verbatim (full rescan per merge); reference for tests.
    #[cfg(test)]
    fn merge_naive(&self, mut toks: Vec<u32>) -> Vec<u32> {
        let mut pair = Vec::new();
        loop {
            let mut best: Option<(f32, u32, usize)> = None;
            for i in 0..toks.len().saturating_sub(1) {
                pair.clear();
                pair.extend_from_slice(&self.vocab[toks[i] as usize]);
                pair.extend_from_slice(&self.vocab[toks[i + 1] as usize]);
                if let Some(&id) = self.index.get(&pair) {
                    let sc = self.scores[id as usize];
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
            let Some(piece) = self.vocab.get(id as usize) else {
                continue;
            };
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

/// f32 with a total order (scores are finite in practice; NaN sorts lowest).
#[derive(Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: BOS/EOS/unk, 256 byte tokens, single letters and
    /// some merges with deliberately tied scores.
    fn toy() -> Llama2cTokenizer {
        let mut vocab: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
        vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
        let pieces = [" ", "a", "b", "c", "ab", "bc", "ca", "abc", " a", "aa", "aaa", " ab", "cab"];
        let scores_p = [-1.0, -2.0, -2.0, -2.0, -0.5, -0.5, -0.5, -0.2, -0.7, -0.5, -0.3, -0.1, -0.5];
        let mut scores = vec![0.0; vocab.len()];
        for (p, s) in pieces.iter().zip(scores_p) {
            vocab.push(p.as_bytes().to_vec());
            scores.push(s);
        }
        let mut index = HashMap::new();
        for (i, t) in vocab.iter().enumerate() {
            index.entry(t.clone()).or_insert(i as u32);
        }
        Llama2cTokenizer { path: PathBuf::from("toy"), vocab, scores, index }
    }

    #[test]
    fn heap_merge_equals_run_c_rescan() {
        let t = toy();
        let mut x = 12345u64;
        for len in 0..60 {
            for _ in 0..20 {
                let text: String = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        ['a', 'b', 'c', ' ', 'é', 'a'][(x % 6) as usize]
                    })
                    .collect();
                let fast = t.encode(&text, true);
                // Recompute with the naive loop from the same initial sequence.
                let mut init = vec![BOS];
                if !text.is_empty() {
                    init.push(t.index[b" ".as_slice()]);
                }
                let mut b = [0u8; 4];
                for ch in text.chars() {
                    let s = ch.encode_utf8(&mut b).as_bytes();
                    match t.index.get(s) {
                        Some(&id) => init.push(id),
                        None => init.extend(s.iter().map(|&c| c as u32 + 3)),
                    }
                }
                assert_eq!(fast, t.merge_naive(init), "{text:?}");
            }
        }
    }

    /// On the real tok512.bin (when present) and the release notes' text.
    #[test]
    fn heap_merge_equals_run_c_rescan_on_tok512() {
        let shared = std::env::var_os("ATTNSCOPE_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
        let dir = shared.join("models/stories260K");
        let (Ok(t), Ok(text)) = (Llama2cTokenizer::open(&dir.join("tok512.bin")), std::fs::read_to_string(dir.join("stories260K.md")))
        else {
            // Same rule as tests/common: under CI a missing model is a failure.
            assert!(!std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"), "stories260K not found under {} (CI=true)", dir.display());
            eprintln!("SKIP: stories260K not found under {}", dir.display());
            return;
        };
        for chunk in text.as_bytes().chunks(700) {
            let chunk = String::from_utf8_lossy(chunk);
            let fast = t.encode(&chunk, true);
            let slow_init = {
                let mut v = vec![BOS, t.index[b" ".as_slice()]];
                let mut b = [0u8; 4];
                for ch in chunk.chars() {
                    let s = ch.encode_utf8(&mut b).as_bytes();
                    match t.index.get(s) {
                        Some(&id) => v.push(id),
                        None => v.extend(s.iter().map(|&c| c as u32 + 3)),
                    }
                }
                v
            };
            assert_eq!(fast, t.merge_naive(slow_init));
        }
    }
}
