//! Texts in, token windows out. A text is read incrementally, only as far as
//! the longest context needs: a never-ending or huge file costs what a short
//! one does. Non-regular files (FIFOs, devices, directories) are refused
//! before they are opened, so a FIFO with no writer cannot block.
//!
//! Where the read stops: a prefix is tokenized only up to a *cut* (the last
//! line break, else the last space, else the last character boundary), and
//! it is accepted only when two prefixes cut at different places (about
//! half and all of what was read) agree on the first `need` tokens, with
//! [`MARGIN`] more tokens after them. A tokenizer's merges are local, so
//! once two cuts agree, the text after the cut cannot change those tokens
//! (tested against whole-text tokenization for every tokenizer kind). When
//! they disagree, the read doubles; at the end of the file the whole text
//! is tokenized, exactly as before. BOS is added exactly when the
//! tokenizer's settings add it, as for the whole text.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use models::TextTokenizer;

/// Tokens past `need` that a prefix must hold before it is trusted.
pub const MARGIN: usize = 16;

/// A text read whole (`train`, which learns from all of it) may not be
/// larger than this.
pub const WHOLE_TEXT_MAX_BYTES: u64 = 1 << 30;

/// An incremental read gives up (one line, exit 2) past this many bytes.
pub const PREFIX_MAX_BYTES: u64 = 1 << 30;

/// The first read of a text for `need` tokens: ample for 32 bytes a token.
pub fn first_chunk(need: usize) -> usize {
    need.saturating_mul(32).max(64 << 10)
}

/// The bytes an incremental read for `need` tokens usually reads from a
/// text of `size` bytes (two doublings of [`first_chunk`]); for the memory guard.
pub fn expected_read(size: u64, need: usize) -> u64 {
    size.min((first_chunk(need) as u64).saturating_mul(4))
}

/// The size of `path` when it is a regular file (after symlinks); an error
/// naming it (as `what`) when it is missing, a directory, a FIFO, a socket
/// or a device. Only `stat` is called: nothing is opened.
pub fn regular_file(path: &Path, what: &str) -> Result<u64> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!("{what} {} is not a regular file ({})", path.display(), models::formats::file_kind(&meta));
    }
    Ok(meta.len())
}

fn not_utf8(path: &Path, offset: usize) -> anyhow::Error {
    anyhow::anyhow!("text {} is not valid UTF-8 (first bad byte at offset {offset})", path.display())
}

/// Reads a whole text file (at most [`WHOLE_TEXT_MAX_BYTES`]), refusing
/// non-regular files, non-UTF-8 and empty texts with a clear message.
pub fn read_text(path: &Path) -> Result<String> {
    let size = regular_file(path, "text")?;
    if size > WHOLE_TEXT_MAX_BYTES {
        bail!("text {} is {size} bytes, more than the {WHOLE_TEXT_MAX_BYTES} read whole", path.display());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(WHOLE_TEXT_MAX_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read text {}", path.display()))?;
    if bytes.len() as u64 > WHOLE_TEXT_MAX_BYTES {
        bail!("text {} grew past {WHOLE_TEXT_MAX_BYTES} bytes while it was read", path.display());
    }
    let text = String::from_utf8(bytes).map_err(|e| not_utf8(path, e.utf8_error().valid_up_to()))?;
    if text.trim().is_empty() {
        bail!("text {} is empty", path.display());
    }
    Ok(text)
}

/// The token ids of `path`, read incrementally: at least the first `need`
/// ids of the whole text's tokenization (all of them when the text is
/// shorter). See the module docs for why the cut cannot change them.
pub fn read_tokens(tokenizer: &TextTokenizer, path: &Path, need: usize) -> Result<Vec<u32>> {
    Ok(read_tokens_from(tokenizer, path, need, first_chunk(need))?.0)
}

/// [`read_tokens`] with the first chunk given; also returns the bytes read.
pub(crate) fn read_tokens_from(tokenizer: &TextTokenizer, path: &Path, need: usize, chunk: usize) -> Result<(Vec<u32>, u64)> {
    regular_file(path, "text")?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read text {}", path.display()))?;
    let mut file = file.take(PREFIX_MAX_BYTES);
    let mut buf: Vec<u8> = Vec::new();
    let mut target = chunk.max(1);
    loop {
        let want = target.saturating_sub(buf.len()) as u64;
        let got = (&mut file).take(want).read_to_end(&mut buf).with_context(|| format!("cannot read text {}", path.display()))?;
        let eof = (got as u64) < want;
        if eof {
            if buf.len() as u64 >= PREFIX_MAX_BYTES {
                bail!("text {}: {PREFIX_MAX_BYTES} bytes read without {need} stable tokens", path.display());
            }
            let text = std::str::from_utf8(&buf).map_err(|e| not_utf8(path, e.valid_up_to()))?;
            if text.trim().is_empty() {
                bail!("text {} is empty", path.display());
            }
            let ids = tokenize(tokenizer, text, path)?;
            return Ok((ids, buf.len() as u64));
        }
        // Everything read so far must be UTF-8, but for a character cut at the end.
        let valid = match std::str::from_utf8(&buf) {
            Ok(s) => s,
            Err(e) if e.error_len().is_none() => std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
            Err(e) => return Err(not_utf8(path, e.valid_up_to())),
        };
        let b2 = cut(valid, valid.len());
        let b1 = cut(valid, b2 / 2);
        if b1 > 0 && b1 < b2 {
            let ids1 = tokenize(tokenizer, &valid[..b1], path)?;
            if ids1.len() >= need + MARGIN {
                let ids2 = tokenize(tokenizer, &valid[..b2], path)?;
                if ids2.len() >= need + MARGIN && ids1[..need] == ids2[..need] {
                    return Ok((ids2, buf.len() as u64));
                }
            }
        }
        target = target.saturating_mul(2);
    }
}

/// A cut at or before `at`: just after the last line break in the second
/// half of `s[..at]`, else after the last space there, else the last
/// character boundary.
fn cut(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    let head = &s[..at];
    let half = at / 2;
    if let Some(i) = head.rfind('\n').filter(|&i| i >= half) {
        return i + 1;
    }
    if let Some(i) = head.rfind(' ').filter(|&i| i >= half) {
        return i + 1;
    }
    at
}

/// The first `ctx` tokens of the whole text's tokenization.
pub fn first_tokens(ids: &[u32], ctx: usize, path: &Path) -> Result<Vec<u32>> {
    if ids.len() < ctx {
        bail!("text {} has only {} tokens, fewer than the context length {ctx}", path.display(), ids.len());
    }
    Ok(ids[..ctx].to_vec())
}

/// Tokenizes a whole text.
pub fn tokenize(tokenizer: &TextTokenizer, text: &str, path: &Path) -> Result<Vec<u32>> {
    tokenizer.encode(text).with_context(|| format!("cannot tokenize {}", path.display()))
}

/// The memory guard's `texts` term for reading `paths` for `need` tokens,
/// one text at a time ([`crate::memory::text_bytes`] of the largest read).
/// Unreadable paths count 0 here; reading them reports the error.
pub fn memory_term(paths: &[std::path::PathBuf], need: usize) -> u64 {
    let largest = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| expected_read(m.len(), need)).max().unwrap_or(0);
    crate::memory::text_bytes(largest).saturating_add((need as u64).saturating_mul(4 * paths.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_error_names_text_and_count() {
        let err = first_tokens(&[1, 2, 3], 5, Path::new("a.txt")).unwrap_err().to_string();
        assert!(err.contains("a.txt") && err.contains("only 3 tokens") && err.contains('5'), "{err}");
        assert_eq!(first_tokens(&[1, 2, 3], 2, Path::new("a")).unwrap(), vec![1, 2]);
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("attnscope-texts-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn non_utf8_empty_and_non_regular_are_errors() {
        let dir = scratch("bad");
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, [b'a', 0xff, b'b']).unwrap();
        assert!(read_text(&bad).unwrap_err().to_string().contains("not valid UTF-8"));
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "  \n").unwrap();
        assert!(read_text(&empty).unwrap_err().to_string().contains("empty"));
        let e = read_text(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file (a device)"), "{e}");
        let e = read_text(&dir).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn cut_prefers_line_breaks_then_spaces_and_char_boundaries() {
        assert_eq!(cut("ab\ncd ef gh", 11), 3 + 6); // last space (the break is in the first half)
        assert_eq!(cut("abcdef\ngh", 9), 7);
        assert_eq!(cut("ééé", 3), 2); // not inside the second é
        assert_eq!(cut("", 0), 0);
    }

    /// The first `need` tokens of an incremental read equal the whole
    /// text's, for every tokenizer kind, many needs and tiny first chunks
    /// (so that prefixes are cut many times, mid-paragraph and mid-word).
    #[test]
    fn incremental_read_keeps_the_first_tokens_of_the_whole_text() {
        let mut tokenizers = Vec::new();
        let stories = testdata::stories_dir();
        tokenizers.push(("llama2.c tok512", TextTokenizer::from_path(&stories.join("tok512.bin")).unwrap()));
        let hf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/tiny/llama/tokenizer.json");
        tokenizers.push(("tokenizer.json", TextTokenizer::from_path(&hf).unwrap()));
        let f = models::formats::gguf::GgufFile::open(&testdata::smollm2_path()).unwrap();
        tokenizers.push(("GGUF byte-level BPE", models::tokenizer::gguf::from_gguf(&f).unwrap().unwrap()));
        let dir = scratch("incr");
        let mut texts: Vec<std::path::PathBuf> = crate::defaults::default_texts().into_iter().filter(|p| p.is_file()).collect();
        let odd = dir.join("odd.txt");
        // No line breaks, long words, CJK and emoji: cuts fall back to spaces and char boundaries.
        std::fs::write(&odd, "東京は日本の首都です。🙂 supercalifragilistic ".repeat(400) + "naïve café\r\n\r\n".repeat(50).as_str())
            .unwrap();
        texts.push(odd);
        for (name, tok) in &tokenizers {
            for path in &texts {
                let whole = tokenize(tok, &std::fs::read_to_string(path).unwrap(), path).unwrap();
                for need in [1usize, 7, 64, 300] {
                    if whole.len() < need + MARGIN {
                        continue;
                    }
                    for chunk in [16usize, 1000, first_chunk(need)] {
                        let (ids, read) = read_tokens_from(tok, path, need, chunk).unwrap();
                        assert_eq!(ids[..need], whole[..need], "{name} {} need {need} chunk {chunk}", path.display());
                        if chunk < 1000 && need < 100 {
                            let size = std::fs::metadata(path).unwrap().len();
                            assert!(read < size, "{name} {}: read {read} of {size} bytes for {need} tokens", path.display());
                        }
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
