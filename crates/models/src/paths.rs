//! Where attnscope keeps models: the one definition of its cache directory
//! and of the default model's path, used by the CLI, the benchmarks and the
//! tests.

use std::path::PathBuf;

/// The cache directory: `$ATTNSCOPE_CACHE`, else `~/.cache/attnscope`
/// (`./.cache/attnscope` when `$HOME` is unset).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATTNSCOPE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("attnscope")
}

/// The default model file, SmolLM2-135M-Instruct Q4_1 GGUF, which
/// `scripts/setup.sh` fetches into the cache.
pub fn default_model() -> PathBuf {
    cache_dir().join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf")
}
