//! Where tests and benchmarks find real models (test support, not API).
//! Outside this workplace `../shared` and the
//! cache may be absent: tests then skip and say so; under CI (`CI=true`) a
//! missing model is a failure, not a skip.

use std::path::{Path, PathBuf};

/// True under CI, where missing models fail instead of skipping.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `Some(path)` when it exists; otherwise skip (None) or, under CI, panic.
pub fn require(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if under_ci() {
        panic!("{what} not found at {} (CI=true: a missing model is a failure)", path.display());
    }
    eprintln!("SKIP: {what} not found at {}", path.display());
    None
}

/// The workplace's shared folder: `$ATTNSCOPE_SHARED`, else `../shared` beside the repo.
pub fn shared_root() -> PathBuf {
    std::env::var_os("ATTNSCOPE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// `shared/models/stories260K`, if present.
pub fn stories_dir() -> Option<PathBuf> {
    require(shared_root().join("models/stories260K"), "stories260K")
}

/// The attnscope cache: `$ATTNSCOPE_CACHE`, else `~/.cache/attnscope`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ATTNSCOPE_CACHE") {
        return PathBuf::from(d);
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/attnscope")
}

/// SmolLM2-135M-Instruct Q4_1 GGUF (fetched by scripts/setup.sh), if present.
pub fn smollm2_path() -> Option<PathBuf> {
    require(cache_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"), "SmolLM2-135M-Instruct Q4_1 (run scripts/setup.sh)")
}
