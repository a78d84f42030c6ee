//! Defaults that make `attnscope analyze` work on a fresh machine after
//! `scripts/setup.sh`: the model cache and the texts every Debian has.

use std::path::PathBuf;

/// The cache directory and the default model file (fetched by
/// `scripts/setup.sh`): one definition, in `models`.
pub use models::paths::default_model;

/// English texts present on every Debian machine.
pub fn default_texts() -> Vec<PathBuf> {
    ["GPL-3", "Apache-2.0", "MPL-2.0"]
        .iter()
        .map(|n| PathBuf::from("/usr/share/common-licenses").join(n))
        .collect()
}
