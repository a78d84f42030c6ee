//! llama.cpp's SentencePiece ("SPM") tokenizer for GGUF files whose
//! `tokenizer.ggml.model` is `llama`: `llm_tokenizer_spm_session` in
//! llama.cpp's `llama-vocab.cpp`, reproduced step by step.
//!
//! 1. If `add_space_prefix` (default true) and the text is non-empty, prepend
//!    a space; then every space becomes `▁` (U+2581).
//! 2. Split into UTF-8 characters (symbols in a linked list).
//! 3. Seed a max-heap with every adjacent pair whose concatenation is a
//!    vocabulary token, keyed by that token's score (ties: leftmost first).
//! 4. Pop the best pair; skip it if either side was merged since; merge,
//!    then push the new pairs with the left and right neighbours.
//! 5. Each final symbol is its token, or else its bytes as `<0xXX>` tokens.

use std::collections::{BinaryHeap, HashMap};

/// GGUF token types (llama.cpp `llama_token_type`).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
pub const TOKEN_TYPE_BYTE: i32 = 6;

pub struct Spm {
    pub tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
    /// text → id; on duplicates the lowest id wins (llama.cpp keeps the first).
    index: HashMap<String, u32>,
    pub add_space_prefix: bool,
    unk: Option<u32>,
}

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}
impl Eq for Bigram {}
impl Ord for Bigram {
    // Max-heap: higher score first; equal scores → smaller `left` first
    // (llama.cpp: `l.score < r.score || (l.score == r.score && l.left > r.left)`).
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then_with(|| o.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

struct Sym {
    start: usize,
    n: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// `tokens`, `scores`, `types` are parallel arrays (scores/types may be
    /// empty: scores 0, type normal).
    pub fn new(tokens: Vec<String>, scores: Vec<f32>, types: Vec<i32>, add_space_prefix: bool, unk: Option<u32>) -> Self {
        let mut index = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            index.entry(t.clone()).or_insert(i as u32);
        }
        Self { tokens, scores, types, index, add_space_prefix, unk }
    }

    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    fn byte_token(&self, b: u8) -> Option<u32> {
        self.index.get(&format!("<0x{b:02X}>")).or_else(|| self.index.get(&(b as char).to_string())).copied().or(self.unk)
    }

    /// Ids of `text`, without BOS.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut s = String::with_capacity(text.len() + 3);
        if self.add_space_prefix {
            s.push(' ');
        }
        s.push_str(text);
        let s = s.replace(' ', "\u{2581}");

        let mut syms: Vec<Sym> = Vec::new();
        for (i, (start, ch)) in s.char_indices().enumerate() {
            syms.push(Sym { start, n: ch.len_utf8(), prev: i.checked_sub(1), next: None });
            if i > 0 {
                syms[i - 1].next = Some(i);
            }
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, b) = (&syms[l], &syms[r]);
            let text = &s[a.start..a.start + a.n + b.n];
            if let Some(&id) = self.index.get(text) {
                heap.push(Bigram { score: self.score(id), left: l, right: r, size: text.len() });
            }
        };
        for i in 1..syms.len() {
            try_add(&mut heap, &syms, Some(i - 1), Some(i));
        }
        while let Some(bg) = heap.pop() {
            let (ln, rn) = (syms[bg.left].n, syms[bg.right].n);
            if ln == 0 || rn == 0 || ln + rn != bg.size {
                continue;
            }
            syms[bg.left].n += rn;
            syms[bg.right].n = 0;
            let next = syms[bg.right].next;
            syms[bg.left].next = next;
            if let Some(nx) = next {
                syms[nx].prev = Some(bg.left);
            }
            let prev = syms[bg.left].prev;
            try_add(&mut heap, &syms, prev, Some(bg.left));
            try_add(&mut heap, &syms, Some(bg.left), next);
        }
        let mut out = Vec::new();
        let mut i = if syms.is_empty() { None } else { Some(0) };
        while let Some(k) = i {
            let sym = &syms[k];
            let text = &s[sym.start..sym.start + sym.n];
            match self.index.get(text) {
                Some(&id) => out.push(id),
                None => out.extend(text.bytes().filter_map(|b| self.byte_token(b))),
            }
            i = sym.next;
        }
        out
    }

    /// Text of `ids`: `▁` → space, byte tokens → bytes, control tokens
    /// dropped, and the prefix space removed when `add_space_prefix`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(t) = self.tokens.get(id as usize) else {
                continue;
            };
            match self.types.get(id as usize).copied().unwrap_or(1) {
                TOKEN_TYPE_CONTROL => {}
                TOKEN_TYPE_BYTE => {
                    if let Some(b) = parse_byte_token(t) {
                        bytes.push(b);
                    }
                }
                _ => bytes.extend_from_slice(t.replace('\u{2581}', " ").as_bytes()),
            }
        }
        let s = String::from_utf8_lossy(&bytes).into_owned();
        match (self.add_space_prefix, s.strip_prefix(' ')) {
            (true, Some(rest)) => rest.to_string(),
            _ => s,
        }
    }
}

/// `<0xAB>` → 0xAB.
pub fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Spm {
        let toks = ["<unk>", "<s>", "</s>", "\u{2581}", "a", "b", "ab", "\u{2581}ab", "<0x63>"];
        let scores = [0., 0., 0., -1., -2., -2., -0.5, -0.1, 0.];
        let types = [2, 3, 3, 1, 1, 1, 1, 1, 6];
        Spm::new(toks.iter().map(|s| s.to_string()).collect(), scores.to_vec(), types.to_vec(), true, Some(0))
    }

    #[test]
    fn merges_best_pairs_and_falls_back_to_bytes() {
        let t = toy();
        assert_eq!(t.encode("ab"), vec![7]);
        assert_eq!(t.encode("abc"), vec![7, 8]);
        assert_eq!(t.encode(""), Vec::<u32>::new());
        assert_eq!(t.decode(&[1, 7, 8]), "abc");
    }
}
