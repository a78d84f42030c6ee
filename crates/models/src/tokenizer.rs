//! [`TextTokenizer`]: text → token ids, exactly as the model's own tokenizer.

use std::path::Path;

use crate::Result;

/// Text → ids, with BOS exactly when the model's tokenizer settings add it.
pub struct TextTokenizer {
    // filled in by the tokenizer implementation
}

impl TextTokenizer {
    /// An HF `tokenizer.json` (with `tokenizer_config.json` beside it, if
    /// present, for `add_bos_token`).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let _ = path;
        todo!()
    }
    /// Ids of `text`, BOS prepended iff the model's settings say so.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let _ = text;
        todo!()
    }
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let _ = ids;
        todo!()
    }
    pub fn vocab_size(&self) -> usize {
        todo!()
    }
    pub fn bos_id(&self) -> Option<u32> {
        todo!()
    }
    pub fn eos_id(&self) -> Option<u32> {
        todo!()
    }
    /// Whether `encode` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        todo!()
    }
}
