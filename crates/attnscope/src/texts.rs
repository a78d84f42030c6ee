//! Texts in, token windows out: each text is read as UTF-8, tokenized whole
//! with the model's tokenizer (BOS exactly when its settings add it), and cut
//! to exactly `ctx` tokens.

use std::path::Path;

use anyhow::{bail, Context, Result};
use models::TextTokenizer;

/// Reads a text file, refusing non-UTF-8 and empty texts with a clear message.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read text {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("text {} is not valid UTF-8 (first bad byte at offset {})", path.display(), e.utf8_error().valid_up_to()))?;
    if text.trim().is_empty() {
        bail!("text {} is empty", path.display());
    }
    Ok(text)
}

/// The first `ctx` tokens of the whole text's tokenization.
pub fn first_tokens(ids: &[u32], ctx: usize, path: &Path) -> Result<Vec<u32>> {
    if ids.len() < ctx {
        bail!(
            "text {} has only {} tokens, fewer than the context length {ctx}",
            path.display(),
            ids.len()
        );
    }
    Ok(ids[..ctx].to_vec())
}

/// Tokenizes a whole text.
pub fn tokenize(tokenizer: &TextTokenizer, text: &str, path: &Path) -> Result<Vec<u32>> {
    tokenizer
        .encode(text)
        .with_context(|| format!("cannot tokenize {}", path.display()))
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

    #[test]
    fn non_utf8_and_empty_are_errors() {
        let dir = std::env::temp_dir().join(format!("attnscope-texts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, [b'a', 0xff, b'b']).unwrap();
        assert!(read_text(&bad).unwrap_err().to_string().contains("not valid UTF-8"));
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "  \n").unwrap();
        assert!(read_text(&empty).unwrap_err().to_string().contains("empty"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
