//! Defaults that make `attnscope analyze` work on a fresh machine after
//! `scripts/setup.sh`: the model cache and the texts every Debian has.

use std::path::PathBuf;

/// The cache directory: `$ATTNSCOPE_CACHE`, else `~/.cache/attnscope`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATTNSCOPE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("attnscope")
}

/// The default model file, fetched by `scripts/setup.sh`.
pub fn default_model() -> PathBuf {
    cache_dir().join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// English texts present on every Debian machine.
pub fn default_texts() -> Vec<PathBuf> {
    ["GPL-3", "Apache-2.0", "MPL-2.0"]
        .iter()
        .map(|n| PathBuf::from("/usr/share/common-licenses").join(n))
        .collect()
}
