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

/// Where Debian keeps the license texts the default texts are taken from.
const LICENSES: &str = "/usr/share/common-licenses";

/// English texts present on every Debian machine: GPL-3, Apache-2.0 and
/// MPL-2.0 (`analyze`'s default texts, in this order).
pub fn default_texts() -> Vec<PathBuf> {
    ["GPL-3", "Apache-2.0", "MPL-2.0"].iter().map(|n| PathBuf::from(LICENSES).join(n)).collect()
}

/// `compress`'s default calibration text: the first default text (GPL-3).
pub fn default_calib_text() -> PathBuf {
    default_texts().swap_remove(0)
}

/// `compress`'s default evaluation text: the second default text (Apache-2.0).
pub fn default_eval_text() -> PathBuf {
    default_texts().swap_remove(1)
}
