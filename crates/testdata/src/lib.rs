//! Where tests and benchmarks find real models and texts. A dev-dependency
//! only: nothing here is part of the `models` or `attnscope` API.
//!
//! A test never passes because its model is missing: every lookup here
//! panics with the path it expected and how to get it (`scripts/setup.sh`
//! fetches the SmolLM2 GGUF; `../shared` holds stories260K and the texts).
//! So a test that needs a model either runs or fails, under `CI=true` as
//! everywhere else.

use std::path::{Path, PathBuf};

/// The model cache (`$ATTNSCOPE_CACHE`, else `~/.cache/attnscope`): the
/// same definition the CLI uses ([`models::paths::cache_dir`]).
pub use models::paths::cache_dir;

/// `path` if it exists; otherwise a panic naming `what`, the path, and `how`
/// to get it.
#[track_caller]
pub fn require(path: PathBuf, what: &str, how: &str) -> PathBuf {
    assert!(path.exists(), "{what} not found at {} ({how}); tests that need it fail rather than pass without it", path.display());
    path
}

/// The workplace's shared folder: `$ATTNSCOPE_SHARED`, else `../shared`
/// beside the repository.
pub fn shared_root() -> PathBuf {
    std::env::var_os("ATTNSCOPE_SHARED").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// `shared/models/stories260K` (llama2.c checkpoint and tokenizer).
#[track_caller]
pub fn stories_dir() -> PathBuf {
    require(shared_root().join("models/stories260K"), "stories260K", "set ATTNSCOPE_SHARED to the shared folder")
}

/// `shared/texts/tinyshakespeare.txt`.
#[track_caller]
pub fn shakespeare() -> PathBuf {
    require(shared_root().join("texts/tinyshakespeare.txt"), "tinyshakespeare.txt", "set ATTNSCOPE_SHARED to the shared folder")
}

/// The default model, SmolLM2-135M-Instruct Q4_1 GGUF ([`models::paths::default_model`]).
#[track_caller]
pub fn smollm2_path() -> PathBuf {
    require(models::paths::default_model(), "SmolLM2-135M-Instruct Q4_1", "run scripts/setup.sh")
}

/// A Debian license text (`/usr/share/common-licenses/NAME`), the CLI's default texts.
#[track_caller]
pub fn license_text(name: &str) -> PathBuf {
    require(Path::new("/usr/share/common-licenses").join(name), name, "install Debian's base-files")
}
